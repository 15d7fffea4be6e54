"""The policy protocol: observations in, grasp rectangles out.

A policy never touches the simulator or the Gymnasium environment: it receives
an :class:`~graspsim.types.Observation` (numpy arrays, camera model,
instruction) and returns a :class:`PolicyOutput`. The benchmark runner builds one
policy per worker process and calls :meth:`Policy.reset` with a fresh seeded
generator before every attempt, so randomised policies are reproducible and
independent of how attempts are spread over workers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

import numpy as np

from graspsim.types import ROBOTS, CameraModel, GraspRect, Observation

#: Salt of the generator a policy gets for a scene (:func:`policy_rng`): keeps its stream apart from the scene's.
POLICY_SEED_SALT = 7919


@dataclass
class PolicyOutput:
    """A policy's decision for one attempt.

    * ``rect``: the grasp to execute (image pixels, see :class:`GraspRect`).
    * ``candidates``: further grasps, best first (``rect`` is not repeated).
    * ``mask``: (H, W) bool, the policy's estimate of the target, if it has one.
    * ``attention``: (H, W) float32 in [0, 1], an attention map, if it has one.
    * ``info``: small JSON-serialisable facts for the results file (e.g. the
      prompt mode used).
    """

    rect: GraspRect
    candidates: list[GraspRect] = field(default_factory=list)
    mask: np.ndarray | None = None
    attention: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Policy(Protocol):
    """What ``graspsim bench`` needs of a perception policy.

    ``name``: registry name. ``needs_privileged``: true if the policy reads
    ground-truth segmentation (the environment only provides it on request).

    The built-in policies also name their arguments' frozen dataclass as
    ``config_class`` (a :class:`~graspsim.policies.config.PolicyConfig`) and are
    built as ``Policy(config)``; ``graspsim bench`` checks the arguments with
    that class alone before any worker builds the policy.
    """

    name: ClassVar[str]
    needs_privileged: ClassVar[bool]

    def reset(self, rng: np.random.Generator) -> None:
        """Start a new attempt; ``rng`` is the only randomness the policy may use."""

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        """Choose a grasp for ``obs`` (an Observation or the environment's observation dict)."""


def policy_rng(scene_seed: int, attempt: int = 0) -> np.random.Generator:
    """The generator ``graspsim bench`` gives a policy (:meth:`Policy.reset`) before it acts on scene ``scene_seed``
    (``attempt``: the attempt's index in a clear-the-scene round; 0, the first, gets the single attempt's stream)."""
    return np.random.default_rng([int(scene_seed), POLICY_SEED_SALT] + ([int(attempt)] if attempt else []))


def as_observation(obs: Observation | Mapping[str, Any]) -> Observation:
    """``obs`` as an :class:`Observation`: as it is, or built from a graspsim environment's observation dict.

    The dict is what ``env.reset()`` / ``env.step()`` return (keys ``rgb``,
    ``depth``, ``instruction``, ``target_class``, ``K``, ``T_world_camera``,
    ``scene_kind``; ``instance_seg``, ``class_seg``, ``part_seg`` (and ``robot_seg`` with the arm) when the environment was
    made with ``privileged=True``; ``target_part``, an index into the target class's grasp parts,
    in the part-aware task). This is how the built-in policies act on Gymnasium observations:
    ``policy.act(obs)``.
    """
    if isinstance(obs, Observation):
        return obs
    from graspsim.scenes.kinds import SCENE_KINDS

    kind = list(SCENE_KINDS.values())[int(obs["scene_kind"])]
    height, width = np.shape(obs["depth"])
    camera = CameraModel(K=np.asarray(obs["K"]), width=width, height=height,
                         T_world_camera=np.asarray(obs["T_world_camera"]), near_m=kind.camera.near_m,
                         far_m=kind.camera.far_m)
    target_class = catalog().CATALOG[int(obs["target_class"])].name
    target_part = None
    if "target_part" in obs:
        from graspsim.assets.parts import part_names

        target_part = part_names(target_class)[int(obs["target_part"])]
    return Observation(
        rgb=obs["rgb"], depth_m=obs["depth"], camera=camera, instruction=str(obs["instruction"]),
        target_class=target_class, scene_kind=kind.name,
        approach_world=np.asarray(kind.approach_world, dtype=np.float64),
        instance_seg=obs.get("instance_seg"), class_seg=obs.get("class_seg"),
        robot=ROBOTS[int(obs.get("robot", 0))], target_part=target_part, part_seg=obs.get("part_seg"),
        robot_seg=obs.get("robot_seg"),
    )


def first_executable(rects: list[GraspRect], obs: Observation, gripper, grasp_depth_m: float,
                     max_checked: int = 8, obstacles: np.ndarray | None = None) -> tuple[int, int]:
    """``(index, checked)``: the first of ``rects`` (best first) the arm has a motion plan for, asking the robot
    model as a motion planner would (:func:`graspsim.grasping.arm_motion.arm_can_execute`; the floating hand
    executes anything: 0). At most ``max_checked`` are tried; when none is executable the first is kept.
    ``obstacles``: (N, 3) world points the arm must keep clear of too (None: the furniture only)."""
    if obs.robot != "panda":
        return 0, 0
    from graspsim.config import PhysicsConfig
    from graspsim.grasping.arm_motion import first_executable as arm_first_executable
    from graspsim.scenes.kinds import scene_kind

    index, checked = arm_first_executable(rects, obs.depth_m, obs.camera, obs.approach_world,
                                          scene_kind(obs.scene_kind), PhysicsConfig(gripper=gripper), grasp_depth_m,
                                          max_checked, obstacles)
    return (0 if index is None else index), checked


class PolicyError(RuntimeError):
    """A policy could not produce a grasp (recorded as an invalid action)."""


def catalog():
    """:mod:`graspsim.assets.catalog`, imported on use: policy modules import without it (tests swap it)."""
    return importlib.import_module("graspsim.assets.catalog")


def copy_config(policy: Any, config: Any) -> None:
    """Every field of a policy's ``config`` dataclass also as an attribute of ``policy`` (``policy.n_angles``)."""
    for f in fields(config):
        setattr(policy, f.name, getattr(config, f.name))
