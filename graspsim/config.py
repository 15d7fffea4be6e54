"""Every physical parameter of a pick attempt, in one documented place.

Change a value here (or pass a modified copy to the environment) rather than
scattering literals through the simulator: results files record the values used.
Figures follow VGN's PyBullet clutter benchmark where it sets one (time step,
solver iterations, an 8 cm gripper), and the Franka Emika hand's data sheet for
the gripper (80 mm stroke, 70 N continuous force).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Grasp-planning defaults shared by the rectangle -> pose conversion, the mask
# planner, the policies and the label validation. Module constants rather than
# PhysicsConfig fields: they are the planners' and converters' defaults (each
# caller may pass its own), and adding fields to PhysicsConfig would change
# every stored run.json / dataset manifest.

#: How far past the visible surface the grasp point sits along the approach, at
#: most (metres; :func:`graspsim.grasping.conversion.grasp_depth_for` uses
#: ``clip(opening / 2 - 0.01, 0.01, GRASP_DEPTH_M)``).
GRASP_DEPTH_M = 0.025
#: Free space a planner adds on each side of the object to the jaw opening (metres).
GRASP_MARGIN_M = 0.012
#: How far the fingertips are kept above the support (shelf board, table top)
#: under a grasp (metres, :func:`graspsim.grasping.workspace.clear_supports`).
SUPPORT_CLEARANCE_M = 0.004


def check_fields(cls: type, data: Mapping[str, Any]) -> None:
    """ValueError naming the keys of ``data`` that are not fields of dataclass ``cls``."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}; valid: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class GripperSpec:
    """The parallel-jaw gripper (Franka Emika hand, from pybullet_data's meshes).

    ``max_opening_m``: widest jaw opening (two fingers x 0.04 m stroke).
    ``finger_width_m``: finger pad size perpendicular to the closing axis.
    ``finger_length_m``: how far the finger pads reach beyond the palm.
    ``finger_thickness_m``: finger thickness along the closing axis (for
    free-space checks beside the object).
    ``palm_to_grasp_m``: distance along the approach axis from the hand base frame
    to the grasp point between the pads (pybullet_data's ``panda_grasptarget``
    sits 0.105 m in front of ``panda_hand``; we grasp a little deeper in the pads).
    ``finger_base_m``: where the fingers start in front of the hand base frame;
    ``palm_front_m``: the front of the hand body; ``palm_half_span_m`` /
    ``palm_half_thickness_m``: half the hand body's size along / across the
    closing axis (all from the Franka hand meshes in pybullet_data).
    """

    max_opening_m: float = 0.08
    finger_width_m: float = 0.021
    finger_length_m: float = 0.054
    finger_thickness_m: float = 0.012
    palm_to_grasp_m: float = 0.095
    finger_base_m: float = 0.0584
    palm_front_m: float = 0.066
    palm_half_span_m: float = 0.104
    palm_half_thickness_m: float = 0.032

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GripperSpec":
        """A spec from (a subset of) :func:`dataclasses.asdict`'s keys; ValueError names unknown keys."""
        check_fields(cls, data)
        return cls(**data)

    @property
    def fingertip_beyond_grasp_m(self) -> float:
        """How far the fingertips reach past the grasp point along the approach."""
        return self.finger_base_m + self.finger_length_m - self.palm_to_grasp_m

    @property
    def palm_behind_grasp_m(self) -> float:
        """How far behind the grasp point the front of the hand body (palm) is."""
        return self.palm_to_grasp_m - self.palm_front_m


@dataclass(frozen=True)
class PhysicsConfig:
    """Simulation and grasp-execution parameters.

    Times are in seconds of simulated time; steps are at ``time_step_s``.

    * ``time_step_s``, ``solver_iterations``: pybullet's fixed step and solver
      iterations (VGN: 1/240 s, 150 iterations; we use fewer, measured to give
      the same outcomes on our scenes at a fraction of the cost).
    * ``product_lateral_friction``, ``product_rolling_friction``,
      ``product_spinning_friction``: friction of every product (rolling and
      spinning friction stop round items from rolling forever).
    * ``product_mass_scale``: multiplies every product's catalog mass (kg) when it
      is spawned (1.0 = the catalog masses; robustness sweeps vary it). Must be
      > 0: pybullet treats a body of mass 0 as static.
    * ``support_lateral_friction``: shelf boards, table top, floor.
    * ``finger_lateral_friction``: the finger pads (rubber-like).
    * ``gripper_force_n``: bounded closing force per finger (Franka: 70 N
      continuous for the hand; we use a gentler 40 N per finger).
    * ``finger_speed_mps``: closing speed of each finger.
    * ``approach_distance_m``: the pre-grasp pose stands this far back from the
      grasp pose along the approach axis.
    * ``approach_speed_mps``, ``lift_speed_mps``: hand speeds.
    * ``lift_height_m``: how far the hand lifts after closing (>= 0.15 m).
    * ``hold_time_s``: how long the lifted hand holds still before judging.
    * ``close_time_s``: time allowed for the jaws to close.
    * ``settle_max_time_s``: the longest a new scene may take to come to rest.
    * ``settle_speed_mps`` / ``settle_angular_speed_rps``: a scene is at rest when
      every product moves slower than these.
    * ``max_penetration_m``: deeper contacts than this count as interpenetration
      (the scene is resampled).
    * ``tip_angle_deg``: a product whose up axis turned more than this during an
      attempt counts as knocked down; ``drop_height_m``: one that sank more than
      this fell off its support.
    * ``constraint_max_force_n``: the strength of the constraint that carries the
      floating hand.
    """

    time_step_s: float = 1.0 / 240.0
    solver_iterations: int = 50
    product_lateral_friction: float = 0.8
    product_rolling_friction: float = 0.0005
    product_spinning_friction: float = 0.002
    product_mass_scale: float = 1.0
    support_lateral_friction: float = 0.6
    finger_lateral_friction: float = 1.2
    gripper_force_n: float = 40.0
    finger_speed_mps: float = 0.2
    approach_distance_m: float = 0.10
    approach_speed_mps: float = 0.5
    lift_speed_mps: float = 0.5
    lift_height_m: float = 0.15
    hold_time_s: float = 0.25
    close_time_s: float = 0.3
    settle_max_time_s: float = 2.0
    settle_speed_mps: float = 0.01
    settle_angular_speed_rps: float = 0.1
    max_penetration_m: float = 0.004
    tip_angle_deg: float = 45.0
    drop_height_m: float = 0.05
    constraint_max_force_n: float = 500.0
    gripper: GripperSpec = field(default_factory=GripperSpec)

    def __post_init__(self):
        # A zero or negative mass would silently turn products into static bodies.
        if not self.product_mass_scale > 0:
            raise ValueError(f"product_mass_scale must be > 0, got {self.product_mass_scale!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PhysicsConfig":
        """Inverse of :meth:`to_dict` (as stored in run.json and dataset manifests).

        Missing keys keep their defaults; a nested ``gripper`` mapping becomes a
        :class:`GripperSpec`; unknown keys (here or in ``gripper``) raise ValueError.
        """
        check_fields(cls, data)
        values = dict(data)
        if isinstance(values.get("gripper"), Mapping):
            values["gripper"] = GripperSpec.from_dict(values["gripper"])
        return cls(**values)


DEFAULT_PHYSICS = PhysicsConfig()
