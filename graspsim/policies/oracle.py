"""The upper-bound baseline: grasps planned on the ground-truth segmentation.

The oracle reads the privileged ``class_seg`` / ``instance_seg`` images, so it
knows exactly which pixels belong to each visible instance of the target class;
its success rate measures how well the grasp planner and the simulator do when
perception is perfect. For a part-aware instruction (``obs.target_part``) it
also reads ``part_seg`` and keeps only grasps whose predicted finger contacts
are both on the named part (:mod:`graspsim.grasping.part_grasps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from graspsim.assets.parts import part_index
from graspsim.config import GripperSpec
from graspsim.grasping.mask_grasps import ScoredGrasp, fallback_grasp, object_grasps
from graspsim.grasping.part_grasps import part_grasps, scene_points
from graspsim.policies.base import PolicyError, PolicyOutput, as_observation, catalog, copy_config, first_executable
from graspsim.policies.config import GraspPlanConfig, arg
from graspsim.types import Observation


@dataclass(frozen=True)
class OraclePolicyConfig(GraspPlanConfig):
    """Every ``--policy-arg`` of the oracle (the grasp planner's settings)."""

    policy_name: ClassVar[str] = "oracle"

    n_angles: int = arg(12, min=1)
    """Closing-axis angles tried in [0, pi) (the mask's minor axis is always tried too)."""
    max_instances: int = arg(8, min=1)
    """Most visible instances of the target class tried, largest first."""
    surface_slab_m: float = arg(0.02, min=0.0)
    """Depth slab (metres) behind the nearest surface that counts as the grasped face."""
    part_candidates: int = arg(20, min=1)
    """Part-aware task: grasps planned on the named part per instance before the contact filter."""


class OraclePolicy:
    """Best grasp over every visible instance of the target class (ground-truth masks).

    Instances are tried largest visible area first (at most ``max_instances``);
    each goes through :func:`~graspsim.grasping.mask_grasps.mask_to_grasps` and
    the best-scoring grasp overall wins. ``PolicyOutput.mask`` is the chosen
    instance's (H, W) bool mask; ``candidates`` the other grasps, best first.
    If nothing is graspable the output is a rectangle across the largest
    instance's minor axis with the opening clamped to the gripper's maximum
    (``info["fallback"] = True``). Raises :class:`PolicyError` when the
    observation has no segmentation or the target class is not visible.

    Part-aware task: the instances showing most of the named part are tried
    (most part pixels first), each with the planner restricted to the part's
    pixels and its grasps filtered by their predicted contacts
    (:func:`~graspsim.grasping.part_grasps.part_grasps`); with the arm the best
    one the arm can execute, keeping clear of the other products it sees (their
    depth pixels, :func:`~graspsim.grasping.arm_motion.arm_clear_of_points`).
    When no instance has such a grasp the ordinary
    best grasp on the product is returned (``info["part_fallback"] = True``).
    """

    name: ClassVar[str] = "oracle"
    needs_privileged: ClassVar[bool] = True

    config_class: ClassVar[type[OraclePolicyConfig]] = OraclePolicyConfig

    def __init__(self, config: OraclePolicyConfig | None = None, **kwargs: Any) -> None:
        """Build from ``config`` or from its fields as keyword arguments (``OraclePolicy(n_angles=8)``)."""
        self.config = cfg = OraclePolicyConfig.resolve(config, kwargs)
        copy_config(self, cfg)
        self.gripper = cfg.gripper or GripperSpec()

    def reset(self, rng: np.random.Generator) -> None:
        pass  # deterministic

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        obs = as_observation(obs)  # the environment's observation dict is accepted too
        if obs.class_seg is None or obs.instance_seg is None:
            raise PolicyError("the oracle needs privileged segmentation (class_seg and instance_seg) in the observation")
        try:
            class_idx = catalog().class_index(obs.target_class)
        except (LookupError, ValueError) as exc:
            raise PolicyError(f"unknown target class {obs.target_class!r}") from exc
        target = np.asarray(obs.class_seg) == class_idx
        if not target.any():
            raise PolicyError(f"no visible pixel of target class {obs.target_class!r}")
        instance_seg = np.asarray(obs.instance_seg)
        ids, counts = np.unique(instance_seg[target], return_counts=True)
        info: dict = {"n_instances": int(len(ids)), "visible_px": int(target.sum())}
        if obs.target_part is not None:
            output = self._act_on_part(obs, target, instance_seg, info)
            if output is not None:
                return output
            info["part_fallback"] = True  # no grasp on the part: the best grasp on the product
        order = np.argsort(-counts, kind="stable")[: self.max_instances]
        masks = {int(ids[i]): target & (instance_seg == ids[i]) for i in order}
        output = self._choose(obs, masks, info, None, lambda mask: object_grasps(
            mask, obs.depth_m, obs.camera, obs.scene_kind, obs.approach_world, self.gripper,
            surface_slab_m=self.surface_slab_m, grasp_depth_m=self.grasp_depth_m, margin_m=self.margin_m,
            n_angles=self.n_angles, max_candidates=self.max_candidates))
        if output is not None:
            return output
        largest = int(ids[order[0]])
        rect = fallback_grasp(masks[largest], obs.depth_m, obs.camera.K, self.gripper, margin_m=self.margin_m)
        info.update(fallback=True, instance=largest)
        return PolicyOutput(rect=rect, mask=masks[largest], info=info)

    def _act_on_part(self, obs: Observation, target: np.ndarray, instance_seg: np.ndarray,
                     info: dict) -> PolicyOutput | None:
        """The part-aware task: the best grasp whose predicted finger contacts are both on ``obs.target_part``
        (:func:`~graspsim.grasping.part_grasps.part_grasps` on the privileged ``part_seg``), over the instances
        showing most of the part; None when no instance shows a grasp on it."""
        if obs.part_seg is None:
            raise PolicyError("the oracle needs privileged part_seg for a part-aware instruction")
        try:
            label = part_index(obs.target_class, obs.target_part) + 1
        except ValueError as exc:
            raise PolicyError(str(exc)) from None
        part_seg = np.asarray(obs.part_seg)
        on_part = target & (part_seg == label)
        info.update(target_part=obs.target_part, part_px=int(on_part.sum()))
        if not on_part.any():
            return None
        ids, counts = np.unique(instance_seg[on_part], return_counts=True)
        masks = {int(ids[i]): target & (instance_seg == ids[i])
                 for i in np.argsort(-counts, kind="stable")[: self.max_instances]}
        # Grips on small parts bring the arm close to the neighbours: it must keep clear of the products it sees.
        neighbours = scene_points((np.asarray(obs.class_seg) >= 0) & ~target, obs.depth_m, obs.camera)
        return self._choose(obs, masks, info, neighbours, lambda mask: part_grasps(
            label, mask, part_seg, obs.depth_m, obs.camera, obs.scene_kind, obs.approach_world, self.gripper,
            surface_slab_m=self.surface_slab_m, grasp_depth_m=self.grasp_depth_m, margin_m=self.margin_m,
            n_angles=self.n_angles, max_candidates=self.part_candidates))

    def _choose(self, obs: Observation, masks: dict[int, np.ndarray], info: dict, obstacles: np.ndarray | None,
                plan: Callable[[np.ndarray], list[ScoredGrasp]]) -> PolicyOutput | None:
        """The best of ``plan(mask)``'s grasps over the instances ``masks`` (body -> (H, W) bool, tried in order);
        with the arm the best one it can execute (keeping clear of ``obstacles``, (N, 3) world points, when
        given). None when no instance has a grasp."""
        scored = [(g, body) for body, mask in masks.items() for g in plan(mask)]
        if not scored:
            return None
        # Stable sort: on equal scores the larger instance (tried first) wins.
        scored.sort(key=lambda item: (item[0].palm_blocked, -item[0].score))
        # With the arm: the best grasp it can execute (an arm's planner is asked; the floating hand takes the best).
        chosen, checked = first_executable([g.rect for g, _ in scored], obs, self.gripper, self.grasp_depth_m,
                                           obstacles=obstacles)
        best, body = scored[chosen]
        info.update(fallback=False, instance=body, score=round(best.score, 4), opening_m=round(best.opening_m, 4),
                    width_m=round(best.width_m, 4), free_fraction=round(best.free_fraction, 4),
                    palm_blocked=best.palm_blocked)
        if checked:
            info.update(arm_checked=checked, arm_choice=chosen)
        candidates = [g.rect for i, (g, _) in enumerate(scored) if i != chosen][: self.max_candidates]
        return PolicyOutput(rect=best.rect, candidates=candidates, mask=masks[body], info=info)
