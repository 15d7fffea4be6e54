"""Training shared by every perception stack: ONE loop, its sampling and learning-rate schedules, checkpoint I/O.

* :mod:`.loop`: :func:`~.loop.train` runs a stack's model on its batches:
  seeded, resumable bit for bit after any epoch, ``--max-minutes``, per-epoch
  validation in ``OUT/metrics.jsonl``, the run directory checked through
  :mod:`graspsim.runs`.
* :mod:`.sampling`: what an epoch is (a shuffled pass over the training items,
  or a fixed number of draws from one run-long generator).
* :mod:`.schedule`: learning-rate factors ``f(step, total_steps)``.
* :mod:`.checkpoint`: ``model.safetensors`` + ``metadata.json`` (with the
  weights' sha256), read by the stacks' inference modules too.

The rendered datasets are read by :mod:`graspsim.data.reader` (data/ owns the
on-disk format both ways; learn/ depends on data/, never the reverse). Nothing
is imported eagerly: ``graspsim.learn.checkpoint`` does not load the loop.
"""
