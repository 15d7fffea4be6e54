"""The ``clip_sam`` policy (registered as ``clip_sam``) and the parts it is made of.

After Muttaqien et al., "Attention-Guided Integration of CLIP and SAM for
Precise Object Masking in Robotic Manipulation": CLIP turns the instruction
into an attention map over the image (by default the dense patch-text
similarity; Grad-CAM / HiResCAM of the image-text score on request), the map is
turned into SAM prompts (one point, several points, a box), SAM returns the
product mask, and the shared grasp planner grasps it.

* :mod:`.config`: ``ClipSamPolicyConfig``, every ``--policy-arg`` (no torch: checked
  before any model loads);
* :mod:`.policy`: ``ClipSamPolicy`` and model loading;
* :mod:`.pipeline`: attention -> prompts -> SAM -> verified mask;
* :mod:`.gradcam`, :mod:`.embed`, :mod:`.windows`, :mod:`.segment`: its stages;
  :mod:`.prompts`: attention map -> SAM prompts (numpy only);
* :mod:`.models`, :mod:`.sam_convert`, :mod:`.minilm`, :mod:`.vocab`: loading
  CLIP / SAM / the MiniLM text side, tokenizer and texts;
* :mod:`.train_clip`, :mod:`.train_sam`, :mod:`.train_data` (on :mod:`graspsim.learn.loop`):
  ``graspsim train clip|sam``; :mod:`.evaluate`: ``graspsim evaluate masks``;
  :mod:`.cli`: the click commands.

Nothing is imported eagerly: ``import graspsim.policies.clip_sam`` stays cheap.
"""
