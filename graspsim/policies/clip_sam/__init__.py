"""Library parts of the coming ``clip_sam`` policy (not registered as a policy yet).

The pipeline of Muttaqien et al., "Attention-Guided Integration of CLIP and SAM
for Precise Object Masking in Robotic Manipulation": CLIP scores the image
against the instruction text, Grad-CAM on CLIP's vision transformer turns that
score into an attention map, the map is turned into SAM prompts (single point,
several points, a box), and SAM returns the product mask.

* :mod:`.gradcam`: Grad-CAM on ``transformers.CLIPModel``; part-word text steering.
* :mod:`.prompts`: attention map -> SAM prompts (numpy only).
* :mod:`.models`: loading CLIP / SAM (hub id or local directory), tiny configs
  for tests and training, running SAM on a prompt.

Only :mod:`.prompts` is imported eagerly; the torch/transformers modules are
imported on use so that ``import graspsim.policies.clip_sam`` stays cheap.
"""

from graspsim.policies.clip_sam.prompts import PROMPT_MODES, Prompt, make_prompts

__all__ = ["PROMPT_MODES", "Prompt", "make_prompts"]
