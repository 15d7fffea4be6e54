"""Training shared by every stack: :mod:`.loop` (the ONE loop), :mod:`.sampling`, :mod:`.schedule`, :mod:`.checkpoint`.

Datasets are read by :mod:`graspsim.data.reader` (data/ owns the on-disk format
both ways; learn/ imports data/, never the reverse). Nothing is imported
eagerly: inference code imports :mod:`.checkpoint` without the loop or torch's optimisers.
"""
