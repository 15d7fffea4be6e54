"""Sample scene plans from one seeded generator (numpy only, no simulator).

Same ``(kind, seed, variant_split, options, attempt)`` -> the same plan, bit for
bit: every random draw comes from ``np.random.default_rng([seed, attempt])``.
Placements (:mod:`graspsim.scenes.products`) never overlap by construction
(products stand on their support with a millimetre of clearance); the
simulator still checks the settled result.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from graspsim.geometry import rotation_about_axis
from graspsim.scenes.kinds import scene_kind
from graspsim.scenes.plan import CameraSpec, Lighting, ScenePlan

VARIANT_SPLITS = ("seen", "unseen")


@dataclass(frozen=True)
class SceneOptions:
    """Randomisation and size options of sampled scenes.

    ``width``/``height``: image size in pixels. ``camera_jitter_m``: uniform
    noise on the camera eye and target (each axis, +-metres).
    ``lighting_jitter``: randomise light direction, coefficients and image gain.
    ``tabletop_products``: (min, max) product count on the table.
    ``shelf_back_row_prob``: chance that a front-row product has another behind it.
    """

    width: int = 640
    height: int = 480
    camera_jitter_m: float = 0.0
    lighting_jitter: bool = False
    tabletop_products: tuple[int, int] = (6, 10)
    shelf_back_row_prob: float = 0.35
    shelf_gap_m: tuple[float, float] = (0.035, 0.06)

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ValueError(f"image size must be at least 32x32 pixels, got {self.width}x{self.height}")
        if self.camera_jitter_m < 0:
            raise ValueError(f"camera_jitter_m must be >= 0, got {self.camera_jitter_m}")
        lo, hi = self.tabletop_products
        if not 1 <= lo <= hi <= 30:
            raise ValueError(f"tabletop_products must satisfy 1 <= min <= max <= 30, got {self.tabletop_products}")


def sample_plan(kind: str, seed: int, variant_split: str = "seen", options: SceneOptions = SceneOptions(),
                attempt: int = 0) -> ScenePlan:
    """Sample the plan of scene ``seed`` of ``kind`` (a name in :data:`~graspsim.scenes.kinds.SCENE_KINDS`)."""
    spec = scene_kind(kind)
    if variant_split not in VARIANT_SPLITS:
        raise ValueError(f"unknown variant split {variant_split!r}; choose one of {', '.join(VARIANT_SPLITS)}")
    rng = np.random.default_rng([int(seed), int(attempt)])
    products = spec.sample_products(rng, variant_split, options, spec.furniture)
    camera = _camera(rng, options, spec.camera)
    lighting = _sample_lighting(rng, options)
    return ScenePlan(kind=kind, seed=int(seed), variant_split=variant_split, products=tuple(products),
                     camera=camera, lighting=lighting, attempt=int(attempt))


def _jitter(rng, scale: float) -> np.ndarray:
    return rng.uniform(-scale, scale, size=3) if scale > 0 else np.zeros(3)


def _camera(rng, options: SceneOptions, placement: CameraSpec) -> CameraSpec:
    """The kind's camera ``placement`` with jittered eye and target, at the options' image size."""
    return jitter_camera(rng, replace(placement, width=options.width, height=options.height),
                         options.camera_jitter_m)


def jitter_camera(rng: np.random.Generator, spec: CameraSpec, jitter_m: float, orbit_deg: float = 0.0) -> CameraSpec:
    """``spec`` with its eye, then its target, moved by uniform noise in +-``jitter_m`` metres per world axis
    (three draws each; none when ``jitter_m`` is 0, so an unjittered camera leaves ``rng`` untouched).

    ``orbit_deg`` > 0 first swings the eye around the target (two more draws, before the jitter's): up or
    down by a uniform angle in +-``orbit_deg / 2`` (about the camera's horizontal axis through the target),
    then sideways by a uniform angle in +-``orbit_deg`` about the vertical through the target: other
    viewpoints of the same work area, at the same distance.
    """
    eye, target = np.asarray(spec.eye_m, dtype=np.float64), np.asarray(spec.target_m, dtype=np.float64)
    if orbit_deg > 0:
        elevation = np.radians(rng.uniform(-orbit_deg / 2, orbit_deg / 2))
        azimuth = np.radians(rng.uniform(-orbit_deg, orbit_deg))
        side = np.cross(target - eye, spec.up)  # the camera's horizontal axis (image right)
        eye = target + rotation_about_axis(side, elevation) @ (eye - target)
        eye = target + rotation_about_axis((0.0, 0.0, 1.0), azimuth) @ (eye - target)
    eye = eye + _jitter(rng, jitter_m)
    target = target + _jitter(rng, jitter_m)
    return replace(spec, eye_m=tuple(map(float, eye)), target_m=tuple(map(float, target)))


def _sample_lighting(rng, options: SceneOptions) -> Lighting:
    if not options.lighting_jitter:
        return Lighting()
    direction = (float(rng.uniform(-1, 1)), float(rng.uniform(-1.5, -0.3)), float(rng.uniform(0.8, 2.0)))
    return Lighting(direction=direction, ambient=float(rng.uniform(0.4, 0.8)), diffuse=float(rng.uniform(0.3, 0.7)),
                    specular=float(rng.uniform(0.0, 0.3)), gain=float(rng.uniform(0.75, 1.25)),
                    shadow=bool(rng.random() < 0.5))
