"""Domain randomisation of training scenes: how a scene looks, never what stands where (numpy only).

Sim-to-real work trains perception on images whose appearance varies far more
than the test world's, so that a model keys on shape and layout rather than on
one set of colours. ``graspsim render --domain-rand light|full`` does that for
the training suites (``*-train``; test and unseen suites are refused):

* product labels (``full``): each product is relabelled with probability
  ``label_prob`` by a random design (new hues, pattern, emblem, band and
  brand heights, mirrored layout; :mod:`graspsim.assets.random_textures`),
  never an unseen variant's;
* lighting: light direction, ambient / diffuse / specular coefficients (the
  ones pybullet's renderers take), image gain, cast shadows, and a colour cast
  (a per-channel gain on the image: the light's colour). TinyRenderer honours
  all of them; the EGL plugin only the direction (measured on a shelf scene:
  the same mean image for ambient 0.3 and 0.85, diffuse 0.2 and 0.8, specular
  0 and 0.5, shadow on and off; the direction moved it from 139.9 to 130.5),
  so with EGL the light varies by direction, gain and colour cast;
* camera pose: the eye swung about the target by up to ``camera_orbit_deg``,
  then eye and target moved by up to ``camera_jitter_m`` per axis
  (:func:`~graspsim.scenes.sampling.jitter_camera`); a pose that would push a
  product point out of the image that the kind's camera shows is redrawn
  (:func:`keeps_in_view`), up to :data:`CAMERA_TRIES` times, then the
  undisturbed camera is used;
* furniture and background: random colours for the shelf's frame and back or
  the table's top and legs, the floor, and the empty background behind
  (pixels where the camera hits nothing, a vertical two-colour gradient).

Physics is untouched: the plan's products, poses and masses are those of the
undisturbed scene, the scene settles identically, and the grasp labels
(validated with the floating hand on each product alone) are the same except
where the camera moved (rectangles are image coordinates).

Randomness: :func:`sample_appearance` draws everything from one generator per
scene, ``np.random.default_rng([DR_STREAM, seed, attempt])`` (apart from the
plan's ``[seed, attempt]``), split into four independent children (camera,
lighting, colours, labels), so a dataset re-renders identically and ``--resume``
continues it, and switching one aspect off leaves the others' draws unchanged.
"""

from __future__ import annotations

import colorsys
import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from graspsim.assets.catalog import get_variant
from graspsim.assets.random_textures import LabelDraw, sample_label_draw
from graspsim.geometry import intrinsics_from_fov, look_at, quat_to_matrix
from graspsim.scenes.plan import CameraSpec, Lighting, ScenePlan

#: The levels of ``graspsim render --domain-rand`` (and ``graspsim bench --domain-rand``).
LEVELS = ("none", "light", "full", "labels", "layouts")
#: Keeps the randomisation's draws apart from the plan's (CRC-32 of "domain_rand").
DR_STREAM = zlib.crc32(b"domain_rand")
#: Camera poses drawn before falling back to the undisturbed camera.
CAMERA_TRIES = 20

Range = tuple[float, float]


@dataclass(frozen=True)
class DomainRandSpec:
    """What is randomised and how much (a preset per level: :func:`domain_rand_spec`; stored in the manifest).

    * ``level``: the preset's name (:data:`LEVELS`).
    * ``label_prob``: chance that a product gets a random label (0: labels unchanged).
    * ``light_x`` / ``light_y`` / ``light_z``: ranges of the direction towards the light (world, unnormalised).
    * ``ambient`` / ``diffuse`` / ``specular``: ranges of the renderer's light coefficients.
    * ``gain``: range of the image gain; ``shadow_prob``: chance of cast shadows.
    * ``tint``: the colour cast, each channel's gain uniform in ``1 +- tint``.
    * ``camera_jitter_m`` (metres per axis) / ``camera_orbit_deg`` (degrees): camera pose noise.
    * ``furniture_colours``: random furniture and floor colours; ``background``: random background gradient.
    * ``colour_saturation`` / ``colour_value``: HSV ranges of those random colours.
    * ``label_colours``: ``"new"``: random labels take new colours (hues 60-300 degrees round the palette);
      ``"class"``: new layouts in the class's own colours (:func:`~graspsim.assets.random_textures.sample_label_draw`'s
      ``keep_colours``).
    * ``relight``: draw the lighting and colour cast (False: the plan's own light, no cast; only the ``labels``
      level, which changes nothing but the products' labels).
    """

    level: str = "none"
    label_prob: float = 0.0
    light_x: Range = (-1.0, 1.0)
    light_y: Range = (-1.5, -0.3)
    light_z: Range = (0.8, 2.0)
    ambient: Range = (0.6, 0.6)
    diffuse: Range = (0.5, 0.5)
    specular: Range = (0.1, 0.1)
    gain: Range = (1.0, 1.0)
    shadow_prob: float = 0.0
    tint: float = 0.0
    camera_jitter_m: float = 0.0
    camera_orbit_deg: float = 0.0
    furniture_colours: bool = False
    background: bool = False
    colour_saturation: Range = (0.0, 0.6)
    colour_value: Range = (0.25, 0.95)
    label_colours: str = "new"
    relight: bool = True

    def __post_init__(self) -> None:
        if self.label_colours not in ("new", "class"):
            raise ValueError(f"label_colours must be 'new' or 'class', got {self.label_colours!r}")
        if self.level not in LEVELS:
            raise ValueError(f"unknown domain randomisation level {self.level!r}; choose one of {', '.join(LEVELS)}")
        if not 0.0 <= self.label_prob <= 1.0 or not 0.0 <= self.shadow_prob <= 1.0:
            raise ValueError("label_prob and shadow_prob must be probabilities in [0, 1]")
        if not 0.0 <= self.tint < 1.0 or self.camera_jitter_m < 0 or self.camera_orbit_deg < 0:
            raise ValueError("tint must be in [0, 1); camera_jitter_m and camera_orbit_deg must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.level != "none"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        # Manifests written before these fields existed lack them: at their old values they stay out (resumable).
        for key, old in (("relight", True), ("label_colours", "new")):
            if out[key] == old:
                del out[key]
        return out


_PRESETS: dict[str, DomainRandSpec] = {
    "none": DomainRandSpec(),
    # Appearance of the room and the light, a small camera wobble; the products keep their labels.
    "light": DomainRandSpec(level="light", ambient=(0.45, 0.75), diffuse=(0.3, 0.7), specular=(0.0, 0.3),
                            gain=(0.8, 1.2), shadow_prob=0.3, tint=0.08, camera_jitter_m=0.02, camera_orbit_deg=3.0,
                            furniture_colours=True, background=True),
    # Everything, wider, and half of the products relabelled with designs no catalog variant has.
    "full": DomainRandSpec(level="full", label_prob=0.5, light_x=(-1.5, 1.5), light_y=(-2.0, 0.2),
                           light_z=(0.5, 2.0), ambient=(0.3, 0.85), diffuse=(0.2, 0.8), specular=(0.0, 0.5),
                           gain=(0.65, 1.3), shadow_prob=0.5, tint=0.15, camera_jitter_m=0.03, camera_orbit_deg=8.0,
                           furniture_colours=True, background=True),
    # Every product relabelled with a design no catalog variant has; scene, camera and light as the suite shows
    # them. A stand-in for the unseen suites' held-out labels on training scenes: a validation set for
    # appearance-invariant perception (``graspsim bench --domain-rand labels``).
    "labels": DomainRandSpec(level="labels", label_prob=1.0, relight=False),
}
# "light", and half of the products given a new label layout in their class's colours (pattern, emblem, band and
# brand heights, mirroring; never an unseen variant's pattern, hues within the seen variants' +-20).
_PRESETS["layouts"] = replace(_PRESETS["light"], level="layouts", label_prob=0.5, label_colours="class")


class DomainRandError(ValueError):
    """Domain randomisation asked of a suite that is not a training suite."""


def check_domain_rand(suite, level: str) -> DomainRandSpec:
    """The :class:`DomainRandSpec` of ``level`` for ``suite`` (a :class:`~graspsim.scenes.suites.Suite`), as
    ``graspsim render`` and ``graspsim bench`` / :class:`~graspsim.envs.pick_env.PickEnv` take it: ValueError for an
    unknown level, :class:`DomainRandError` for a randomised test or unseen suite (their images must stay what the
    benchmark shows)."""
    spec = domain_rand_spec(level)
    if spec.enabled and not suite.training:
        raise DomainRandError(f"--domain-rand {level} is for training suites only; {suite.name} is an evaluation "
                              f"suite and stays as the benchmark shows it (use --domain-rand none)")
    return spec


def domain_rand_spec(level: str) -> DomainRandSpec:
    """The preset of ``level``; ValueError listing :data:`LEVELS` otherwise."""
    if level not in _PRESETS:
        raise ValueError(f"unknown domain randomisation level {level!r}; choose one of {', '.join(LEVELS)}")
    return _PRESETS[level]


@dataclass(frozen=True)
class Appearance:
    """One scene's randomised look (every value drawn; plain values, stored as ``meta.json``'s ``domain_rand``).

    * ``camera`` / ``lighting``: replace the plan's (the plan stored with the scene holds them).
    * ``tint``: (3,) per-channel gain on the rendered RGB (after the lighting gain).
    * ``furniture_rgba``: furniture part name (``"board"``, ``"back"``, ``"top"``, ...) -> RGBA in [0, 1], or
      empty for the default colours; ``floor_rgba``: the floor's, or None.
    * ``background_rgb``: ((3,) top, (3,) bottom) uint8 colours of the gradient behind everything, or None.
    * ``labels``: per plan product, its :class:`~graspsim.assets.random_textures.LabelDraw` or None (its
      variant's own label).
    """

    level: str
    camera: CameraSpec
    lighting: Lighting
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    furniture_rgba: dict[str, tuple[float, float, float, float]] = field(default_factory=dict, hash=False)
    floor_rgba: tuple[float, float, float, float] | None = None
    background_rgb: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
    labels: tuple[LabelDraw | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = [None if d is None else d.to_dict() for d in self.labels]
        return out

    def apply_to_image(self, rgb: np.ndarray, empty: np.ndarray) -> np.ndarray:
        """The stored image: ``rgb`` (H, W, 3) uint8 with the background gradient painted where ``empty`` (H, W)
        bool (no body hit), then the colour cast. A new array; ``rgb`` is not changed."""
        out = np.asarray(rgb, dtype=np.float32).copy()
        if self.background_rgb is not None and empty.any():
            top, bottom = (np.asarray(c, np.float32) for c in self.background_rgb)
            t = np.linspace(0.0, 1.0, out.shape[0], dtype=np.float32)[:, None, None]
            gradient = np.broadcast_to(top * (1.0 - t) + bottom * t, out.shape)
            out[empty] = gradient[empty]
        out *= np.asarray(self.tint, np.float32)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


def appearance_rng(seed: int, attempt: int = 0) -> np.random.Generator:
    """The one generator of a scene's randomisation (its plan's is ``default_rng([seed, attempt])``)."""
    return np.random.default_rng([DR_STREAM, int(seed), int(attempt)])


def sample_appearance(spec: DomainRandSpec, plan: ScenePlan, rng: np.random.Generator | None = None) -> Appearance:
    """Draw the look of ``plan``'s scene under ``spec`` (``rng``: default :func:`appearance_rng` of the plan).

    ``spec.level == "none"`` gives the plan's own camera and lighting and nothing else.
    """
    if not spec.enabled:
        return Appearance(level="none", camera=plan.camera, lighting=plan.lighting)
    rng = rng if rng is not None else appearance_rng(plan.seed, plan.attempt)
    r_camera, r_light, r_colour, r_labels = rng.spawn(4)
    colours = _sample_colours(r_colour, spec, plan.kind)
    lighting, tint = plan.lighting, (1.0, 1.0, 1.0)
    if spec.relight:
        lighting = _sample_lighting(r_light, spec)
        tint = tuple(float(v) for v in r_light.uniform(1 - spec.tint, 1 + spec.tint, size=3))
    return Appearance(level=spec.level, camera=_sample_camera(r_camera, spec, plan), lighting=lighting, tint=tint,
        **colours, labels=tuple(sample_label_draw(r_labels, p.class_name, spec.label_colours == "class")
                                if r_labels.random() < spec.label_prob
                                else None for p in plan.products))


def _sample_lighting(rng: np.random.Generator, spec: DomainRandSpec) -> Lighting:
    direction = tuple(float(rng.uniform(*r)) for r in (spec.light_x, spec.light_y, spec.light_z))
    return Lighting(direction=direction, ambient=float(rng.uniform(*spec.ambient)),
                    diffuse=float(rng.uniform(*spec.diffuse)), specular=float(rng.uniform(*spec.specular)),
                    gain=float(rng.uniform(*spec.gain)), shadow=bool(rng.random() < spec.shadow_prob))


def _random_rgb(rng: np.random.Generator, spec: DomainRandSpec) -> tuple[float, float, float]:
    """An RGB colour in [0, 1]: uniform hue, saturation and value in the spec's ranges (3 draws)."""
    h, s, v = rng.random(), rng.uniform(*spec.colour_saturation), rng.uniform(*spec.colour_value)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


#: Furniture parts that share one random colour (:meth:`~graspsim.scenes.layout.ShelfLayout.boxes` names).
_COLOUR_GROUPS = {"shelf": (("board", "roof", "side"), ("back", "plinth")), "tabletop": (("top",), ("leg",))}


def _sample_colours(rng: np.random.Generator, spec: DomainRandSpec, kind: str) -> dict[str, Any]:
    """``furniture_rgba``, ``floor_rgba`` and ``background_rgb`` of :class:`Appearance` (fixed number of draws)."""
    groups = [_random_rgb(rng, spec) for _ in _COLOUR_GROUPS[kind]]
    floor = _random_rgb(rng, spec)
    background = [tuple(int(round(255 * c)) for c in _random_rgb(rng, spec)) for _ in range(2)]
    out: dict[str, Any] = {}
    if spec.furniture_colours:
        out["furniture_rgba"] = {part: (*rgb, 1.0) for names, rgb in zip(_COLOUR_GROUPS[kind], groups)
                                 for part in names}
        out["floor_rgba"] = (*floor, 1.0)
    if spec.background:
        out["background_rgb"] = tuple(background)
    return out


def product_points(plan: ScenePlan) -> np.ndarray:
    """(9 N, 3) world points of ``plan``'s products: each bounding box's centre and 8 corners (sampled poses)."""
    signs = np.array([[0, 0, 0]] + [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    points = []
    for p in plan.products:
        half = np.asarray(get_variant(p.class_name, p.variant).size_m) / 2
        points.append(np.asarray(p.position_m) + (signs * half) @ quat_to_matrix(p.quat_xyzw).T)
    return np.concatenate(points) if points else np.zeros((0, 3))


def in_image(camera: CameraSpec, points_world: np.ndarray) -> np.ndarray:
    """(N,) bool: which ``points_world`` (N, 3) project inside ``camera``'s image (and lie in front of it)."""
    K = intrinsics_from_fov(camera.width, camera.height, camera.vertical_fov_deg)
    T = look_at(camera.eye_m, camera.target_m, camera.up)  # camera -> world, OpenCV axes
    p = (np.asarray(points_world, float) - T[:3, 3]) @ T[:3, :3]
    z = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * p[:, 0] / z + K[0, 2]
        v = K[1, 1] * p[:, 1] / z + K[1, 2]
    return (z > camera.near_m) & (u >= 0) & (u <= camera.width - 1) & (v >= 0) & (v <= camera.height - 1)


def keeps_in_view(base: CameraSpec, moved: CameraSpec, points_world: np.ndarray) -> bool:
    """Whether every point of ``points_world`` inside ``base``'s image is inside ``moved``'s too."""
    shown = in_image(base, points_world)
    return bool(np.all(in_image(moved, points_world[shown])))


def _sample_camera(rng: np.random.Generator, spec: DomainRandSpec, plan: ScenePlan) -> CameraSpec:
    """The plan's camera swung and jittered (:func:`~graspsim.scenes.sampling.jitter_camera`), redrawn until it
    keeps every product point of the plan's view in the image (:func:`keeps_in_view`); else the plan's camera."""
    from graspsim.scenes.sampling import jitter_camera  # sampling imports the kinds, which import the products

    if spec.camera_jitter_m == 0 and spec.camera_orbit_deg == 0:
        return plan.camera
    points = product_points(plan)
    for _ in range(CAMERA_TRIES):
        moved = jitter_camera(rng, plan.camera, spec.camera_jitter_m, spec.camera_orbit_deg)
        if keeps_in_view(plan.camera, moved, points):
            return moved
    return plan.camera


def randomise_plan(plan: ScenePlan, look: Appearance) -> ScenePlan:
    """``plan`` with ``look``'s camera and lighting (products unchanged)."""
    return replace(plan, camera=look.camera, lighting=look.lighting)
