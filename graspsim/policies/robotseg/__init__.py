"""RobotSeg: segmenting the robot (arm, gripper, whole) in images and videos (issue 16, seed 003).

* :mod:`.config`: network size (:class:`~.config.RobotSegConfig`), prompt modes, the shipped checkpoint's place;
* :mod:`.model`: a small SAM 2 (transformers ``Sam2Model``) + robot prompt generator + video memory encoder;
* :mod:`.predictor`: numpy in, masks out (letterbox, prompts in image pixels, video with memory);
* :mod:`.prompts`: clicks and boxes derived deterministically from true masks;
* :mod:`.data` / :mod:`.train`: the training pictures, augmentation, batches and losses on :mod:`graspsim.learn`
  (fully supervised and label-efficient);
* :mod:`.evaluate`: ``graspsim evaluate robot-masks`` (J, F, J&F per part / embodiment / split, video, SAM
  baseline, frames per second) on :mod:`.metrics`;
* :mod:`.cli`: the click commands.

Importing this package does not import torch.
"""
