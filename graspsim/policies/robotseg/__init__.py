"""RobotSeg: segmenting the robot (arm, gripper, whole) in images (issue 16). So far: the evaluation metrics
(:mod:`graspsim.policies.robotseg.metrics`); the data comes from ``graspsim render-robot-views``."""
