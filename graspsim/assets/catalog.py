"""The product catalog: 24 convenience-store product classes and their variants.

Frames and units: every size is in metres in the product's UPRIGHT pose, in the
product frame (origin at the centre of the axis-aligned bounding box, +z up,
+y pointing away from a shelf camera, so the -y face is the one on show).
The gripper closes across the product x axis, so x is always the narrow,
graspable dimension (<= 7.2 cm for an 8 cm Franka hand); boxes therefore stand
"spine out" (narrow side facing the camera).

``parts`` are named axis-aligned boxes given as FRACTIONS of ``size_m`` in
``[-0.5, 0.5]``. They are the single source of truth for part geometry:
:mod:`graspsim.assets.meshes` builds necks, caps, lids and handles from them,
and :mod:`graspsim.assets.library` turns them into metres. Every class has
``body``, ``top``, ``side`` (the middle band one would grasp) and ``bottom``;
bottles and jars also ``cap`` (and ``neck``/``shoulder``), detergent bottles
``handle``.

Variants: each class has 5 "flavours"; 0-2 are seen in training scenes and 3-4
form the unseen test suite. A variant has a deterministic size jitter of a few
percent (same factor for x and y on round products), mass scaled with volume,
and a flavour colour (hue-shifted palette; see :func:`variant_palette`).
"""

from __future__ import annotations

import colorsys
import functools
import zlib
from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]
Box = tuple[tuple[float, float, float], tuple[float, float, float]]

FAMILIES = ("box", "carton", "cylinder", "bottle", "cup", "bowl", "tube", "bag", "jar", "handle_bottle")
POSES = ("upright", "lying")

# Hard limits every variant must meet (the Franka hand opens 8 cm; shelves are
# 0.2 m deep and ~0.25 m high; masses stay within what 40 N jaws hold).
MIN_WIDTH_M, MAX_WIDTH_M = 0.02, 0.072
MAX_DEPTH_M = 0.20
MIN_HEIGHT_M, MAX_HEIGHT_M = 0.04, 0.22
MIN_MASS_KG, MAX_MASS_KG = 0.03, 0.6

SEEN_VARIANTS = (0, 1, 2)
UNSEEN_VARIANTS = (3, 4)
# Relative size jitter of a variant (uniform in +-SIZE_JITTER per axis).
SIZE_JITTER = 0.025
# Hue shifts (degrees) that turn the class palette into a variant's flavour
# colours: seen flavours stay near the class theme, unseen ones move further.
VARIANT_HUE_SHIFT_DEG = {0: 0.0, 1: 20.0, 2: -20.0, 3: 40.0, 4: -40.0}
# Classes whose body colour defines the product (ketchup is red, chocolate brown)
# shift the body hue less; their label colours carry the flavour instead.
BODY_HUE_SCALE = {"ketchup_bottle": 0.35, "sauce_jar": 0.35, "chocolate_box": 0.3, "canned_coffee": 0.4,
                  "tea_bottle": 0.5, "water_bottle": 0.6, "cookie_box": 0.6}
# Value (brightness) factor per variant, so that desaturated classes still vary.
VARIANT_VALUE_SCALE = {0: 1.0, 1: 0.92, 2: 1.06, 3: 0.85, 4: 1.1}


@dataclass(frozen=True)
class ProductClass:
    """One product class of the catalog.

    * ``name``: snake_case id (``"soda_can"``); ``display_name`` for instructions.
    * ``index``: position in :data:`CATALOG` (the class id in ``class_seg``).
    * ``family``: shape family, one of :data:`FAMILIES`.
    * ``size_m``: nominal (x width, y depth, z height) upright, metres.
    * ``mass_kg``: nominal mass.
    * ``parts``: part name -> (lo, hi) box in fractions of size, in [-0.5, 0.5].
    * ``palette``: dominant colours (RGB 0-255); ``palette[0]`` is the main body
      colour of variant 0, then label/secondary, accent, cap/lid colour.
    * ``tabletop_poses``: subset of :data:`POSES`; "lying" = turned +90 degrees
      about the product x axis (x stays horizontal).
    * ``variants_seen`` / ``variants_unseen``: variant ids of the two splits.
    * ``corner``: roundness of the body cross-section, 1.0 = elliptical/round,
      small = boxy (corner radius as a fraction of the smaller half-extent).
    """

    name: str
    display_name: str
    index: int
    family: str
    size_m: tuple[float, float, float]
    mass_kg: float
    parts: dict[str, Box]
    palette: tuple[RGB, ...]
    tabletop_poses: tuple[str, ...]
    variants_seen: tuple[int, ...] = SEEN_VARIANTS
    variants_unseen: tuple[int, ...] = UNSEEN_VARIANTS
    corner: float = 1.0

    def __hash__(self) -> int:  # parts is a dict; hash by name (names are unique)
        return hash(self.name)


@dataclass(frozen=True)
class ProductVariant:
    """One flavour of a class: actual size (m), mass (kg) and main body colour."""

    class_name: str
    variant: int
    split: str
    size_m: tuple[float, float, float]
    mass_kg: float
    dominant_rgb: RGB


# ---------------------------------------------------------------- part templates
def _slab(z0: float, z1: float, hx: float = 0.5, hy: float = 0.5, cy: float = 0.0) -> Box:
    return ((-hx, cy - hy, z0), (hx, cy + hy, z1))


def _plain_parts(top: float = 0.35) -> dict[str, Box]:
    """Parts of a convex product: whole body, top/bottom slabs, middle band."""
    return {"body": _slab(-0.5, 0.5), "top": _slab(top, 0.5), "bottom": _slab(-0.5, -top), "side": _slab(-0.25, 0.25)}


def _carton_parts(gable: float) -> dict[str, Box]:
    """Gable-top carton: box body below a roof of height ``gable`` (+ a 4 % fin)."""
    roof0 = 0.5 - gable - 0.04
    return {"body": _slab(-0.5, roof0), "roof": _slab(roof0, 0.46), "fin": _slab(0.46, 0.5, hx=0.03),
            "top": _slab(roof0, 0.5), "bottom": _slab(-0.5, -0.35), "side": _slab(-0.3, roof0 - 0.1)}


def _can_parts(lid: float = 0.42) -> dict[str, Box]:
    """Can: a straight body, lids slightly narrower (necked in) at both ends."""
    return {"body": _slab(-0.5, 0.5), "top": _slab(lid, 0.5, hx=0.45, hy=0.45),
            "bottom": _slab(-0.5, -lid, hx=0.45, hy=0.45), "side": _slab(-0.3, 0.3)}


def _tube_parts() -> dict[str, Box]:
    """Snack tube: a straight cylinder with a slightly wider plastic lid."""
    parts = _plain_parts(0.38)
    parts["cap"] = _slab(0.43, 0.5)
    parts["body"] = _slab(-0.5, 0.43, hx=0.485, hy=0.485)
    return parts


def _bottle_parts(size: tuple[float, float, float], cap_h: float, cap_d: float, neck_h: float,
                  neck_d: float, shoulder_z: float) -> dict[str, Box]:
    """Bottle from metres of cap/neck (heights and diameters) and the shoulder start (fraction)."""
    w, d, h = size
    cap0 = 0.5 - cap_h / h
    neck0 = cap0 - neck_h / h
    cx, cy = cap_d / 2 / w, cap_d / 2 / d
    nx, ny = neck_d / 2 / w, neck_d / 2 / d
    return {
        "body": _slab(-0.5, shoulder_z),
        "shoulder": _slab(shoulder_z, neck0),
        "neck": ((-nx, -ny, neck0), (nx, ny, cap0)),
        "cap": ((-cx, -cy, cap0), (cx, cy, 0.5)),
        "top": ((-max(cx, nx), -max(cy, ny), neck0), (max(cx, nx), max(cy, ny), 0.5)),
        "bottom": _slab(-0.5, -0.35),
        "side": _slab(-0.3, min(0.2, shoulder_z - 0.05)),
    }


def _jar_parts(size: tuple[float, float, float], lid_h: float, lid_d: float) -> dict[str, Box]:
    """Jar: body, a short neck, and a screw lid (metres) a little narrower than the body."""
    w, d, h = size
    lid0 = 0.5 - lid_h / h
    neck0 = lid0 - 0.06
    lx, ly = lid_d / 2 / w, lid_d / 2 / d
    return {
        "body": _slab(-0.5, neck0),
        "neck": ((-lx * 0.94, -ly * 0.94, neck0), (lx * 0.94, ly * 0.94, lid0)),
        "cap": ((-lx, -ly, lid0), (lx, ly, 0.5)),
        "top": ((-lx, -ly, neck0), (lx, ly, 0.5)),
        "bottom": _slab(-0.5, -0.35),
        "side": _slab(-0.3, 0.15),
    }


def _handle_bottle_parts(size: tuple[float, float, float]) -> dict[str, Box]:
    """Detergent bottle: body at the front, cap over the front, a grip handle at the back (+y)."""
    w, d, h = size
    cap_d = 0.034
    cx, cy = cap_d / 2 / w, cap_d / 2 / d
    ncy = -0.17  # neck and cap sit towards the front of the bottle
    return {
        "body": ((-0.5, -0.5, -0.5), (0.5, 0.22, 0.22)),
        "shoulder": ((-0.5, -0.5, 0.22), (0.5, 0.22, 0.33)),
        "neck": ((-cx * 0.85, ncy - cy * 0.85, 0.33), (cx * 0.85, ncy + cy * 0.85, 0.39)),
        "cap": ((-cx, ncy - cy, 0.39), (cx, ncy + cy, 0.5)),
        "handle": ((-0.2, 0.12, -0.12), (0.2, 0.5, 0.22)),
        "top": ((-0.5, -0.5, 0.22), (0.5, 0.5, 0.5)),
        "bottom": _slab(-0.5, -0.35),
        "side": ((-0.5, -0.5, -0.3), (0.5, 0.22, 0.1)),
    }


def _bag_parts() -> dict[str, Box]:
    """Stand-up pouch: fat middle, flat gusset bottom, thin heat seal on top."""
    parts = _plain_parts(0.35)
    parts["seal"] = _slab(0.42, 0.5, hy=0.05)
    return parts


# --------------------------------------------------------------------- catalog
def _c(name, family, size, mass, palette, poses, parts=None, corner=None, display=None) -> dict:
    """The :class:`ProductClass` fields of one catalog row (the index is added when :data:`CATALOG` is built)."""
    default_corner = {"box": 0.12, "carton": 0.1, "bowl": 0.55, "bag": 0.25, "handle_bottle": 0.45}
    return dict(name=name, display_name=display or name.replace("_", " "), family=family,
                size_m=tuple(float(s) for s in size), mass_kg=float(mass),
                parts=parts if parts is not None else _plain_parts(),
                palette=tuple(tuple(int(v) for v in c) for c in palette), tabletop_poses=tuple(poses),
                corner=float(corner if corner is not None else default_corner.get(family, 1.0)))


UP = ("upright",)
UP_LY = ("upright", "lying")

_SPECS = [
    # Cans: sizes differ (330 ml can, 185 g coffee can, slim energy can, squat soup can).
    _c("soda_can", "cylinder", (0.066, 0.066, 0.122), 0.38,
       [(205, 25, 35), (245, 245, 245), (190, 190, 196), (200, 200, 205)], UP_LY, _can_parts()),
    _c("water_bottle", "bottle", (0.065, 0.065, 0.21), 0.52,
       [(175, 215, 240), (30, 95, 185), (250, 250, 252), (235, 240, 245)], UP_LY,
       _bottle_parts((0.065, 0.065, 0.21), 0.02, 0.031, 0.014, 0.027, 0.12)),
    _c("juice_carton", "carton", (0.06, 0.06, 0.165), 0.45,
       [(250, 165, 30), (60, 150, 50), (250, 225, 70), (250, 250, 245)], UP_LY, _carton_parts(0.13)),
    _c("milk_carton", "carton", (0.068, 0.068, 0.195), 0.55,
       [(242, 242, 236), (40, 90, 190), (150, 195, 235), (250, 250, 250)], UP_LY, _carton_parts(0.12)),
    _c("cereal_box", "box", (0.05, 0.14, 0.2), 0.30,
       [(240, 205, 40), (200, 40, 40), (150, 90, 40), (250, 245, 230)], UP),
    _c("chips_bag", "bag", (0.064, 0.05, 0.16), 0.06,
       [(110, 45, 160), (245, 205, 70), (250, 250, 250), (60, 20, 90)], UP, _bag_parts()),
    _c("candy_bar", "box", (0.032, 0.135, 0.052), 0.06,
       [(215, 40, 120), (100, 55, 30), (250, 250, 250), (250, 200, 220)], UP),
    _c("cup_noodle", "cup", (0.068, 0.068, 0.09), 0.08,
       [(246, 246, 246), (215, 30, 30), (225, 175, 50), (235, 235, 235)], UP),
    _c("yogurt_cup", "cup", (0.058, 0.058, 0.07), 0.13,
       [(245, 185, 200), (250, 250, 250), (200, 40, 70), (225, 225, 230)], UP),
    _c("canned_coffee", "cylinder", (0.053, 0.053, 0.105), 0.21,
       [(115, 70, 40), (235, 215, 175), (205, 165, 60), (185, 185, 190)], UP_LY, _can_parts(0.4)),
    _c("energy_drink", "cylinder", (0.057, 0.057, 0.16), 0.36,
       [(28, 28, 34), (120, 230, 40), (200, 200, 210), (170, 170, 180)], UP_LY, _can_parts(0.44)),
    _c("shampoo_bottle", "bottle", (0.045, 0.07, 0.19), 0.42,
       [(30, 160, 170), (250, 250, 250), (20, 70, 110), (245, 245, 245)], UP,
       _bottle_parts((0.045, 0.07, 0.19), 0.03, 0.032, 0.006, 0.024, 0.2)),
    _c("toothpaste_box", "box", (0.048, 0.19, 0.042), 0.13,
       [(60, 140, 220), (250, 250, 250), (220, 35, 45), (20, 50, 120)], UP),
    _c("tissue_box", "box", (0.065, 0.13, 0.08), 0.10,
       [(175, 220, 165), (250, 250, 250), (230, 150, 180), (90, 140, 90)], UP),
    _c("chocolate_box", "box", (0.032, 0.15, 0.11), 0.20,
       [(75, 40, 25), (215, 175, 75), (240, 225, 200), (130, 20, 30)], UP),
    _c("soup_can", "cylinder", (0.0685, 0.0685, 0.1), 0.40,
       [(236, 222, 185), (190, 30, 30), (205, 170, 60), (185, 185, 190)], UP_LY, _can_parts(0.43)),
    _c("ketchup_bottle", "bottle", (0.062, 0.045, 0.19), 0.50,
       [(190, 28, 22), (248, 244, 232), (40, 125, 50), (245, 245, 245)], UP,
       _bottle_parts((0.062, 0.045, 0.19), 0.032, 0.034, 0.008, 0.03, 0.12)),
    _c("instant_rice_bowl", "bowl", (0.068, 0.1, 0.045), 0.20,
       [(236, 236, 226), (230, 95, 40), (60, 60, 60), (250, 250, 250)], UP),
    _c("tea_bottle", "bottle", (0.062, 0.062, 0.195), 0.52,
       [(55, 140, 65), (185, 225, 150), (245, 245, 235), (30, 90, 40)], UP_LY,
       _bottle_parts((0.062, 0.062, 0.195), 0.02, 0.03, 0.016, 0.026, 0.16), corner=0.4),
    _c("gum_pack", "box", (0.024, 0.076, 0.052), 0.04,
       [(80, 200, 160), (250, 250, 250), (20, 90, 60), (200, 240, 230)], UP),
    _c("cookie_box", "box", (0.03, 0.075, 0.14), 0.08,
       [(35, 45, 105), (215, 160, 90), (250, 240, 220), (90, 50, 25)], UP),
    _c("sauce_jar", "jar", (0.066, 0.066, 0.13), 0.55,
       [(150, 35, 30), (240, 230, 200), (40, 110, 40), (200, 165, 60)], UP,
       _jar_parts((0.066, 0.066, 0.13), 0.018, 0.058)),
    _c("detergent_bottle", "handle_bottle", (0.06, 0.11, 0.2), 0.55,
       [(25, 95, 205), (250, 250, 250), (250, 200, 30), (240, 240, 245)], UP,
       _handle_bottle_parts((0.06, 0.11, 0.2))),
    _c("snack_tube", "tube", (0.064, 0.064, 0.19), 0.20,
       [(245, 110, 25), (250, 235, 200), (120, 60, 20), (250, 250, 250)], UP_LY, _tube_parts()),
]

CATALOG: tuple[ProductClass, ...] = tuple(ProductClass(index=i, **spec) for i, spec in enumerate(_SPECS))
_BY_NAME = {c.name: c for c in CATALOG}


def class_names() -> list[str]:
    """Class names in index order."""
    return [c.name for c in CATALOG]


def get_class(name: str) -> ProductClass:
    """The class called ``name``; ``KeyError`` listing the valid names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown product class {name!r}; valid names: {', '.join(class_names())}") from None


def class_index(name: str) -> int:
    """Catalog index of class ``name`` (the id used in ``class_seg``)."""
    return get_class(name).index


def variant_rng(name: str, variant: int, purpose: str) -> np.random.Generator:
    """A generator seeded from a stable hash of (class, variant, purpose); never global random."""
    return np.random.default_rng(zlib.crc32(f"{name}:{variant}:{purpose}".encode()))


def _shift(rgb: RGB, hue_deg: float, value_scale: float) -> RGB:
    r, g, b = (c / 255.0 for c in rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    h = (h + hue_deg / 360.0) % 1.0
    v = min(1.0, v * value_scale)
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def variant_palette(name: str, variant: int) -> tuple[RGB, ...]:
    """The class palette recoloured for a flavour (hue shift + brightness).

    Only saturated colours change hue, so white/black bodies keep their colour
    and the flavour shows in their label colours instead; classes in
    :data:`BODY_HUE_SCALE` keep their body colour closer to the class theme.
    """
    cls = get_class(name)
    if variant not in cls.variants_seen and variant not in cls.variants_unseen:
        valid = sorted(cls.variants_seen + cls.variants_unseen)
        raise KeyError(f"{cls.name} has no variant {variant}; valid variants: {valid}")
    hue = VARIANT_HUE_SHIFT_DEG[variant]
    val = VARIANT_VALUE_SCALE[variant]
    # Brightness only varies for the body colour; label whites stay white.
    body, *rest = cls.palette
    return (_shift(body, hue * BODY_HUE_SCALE.get(name, 1.0), val), *(_shift(c, hue, 1.0) for c in rest))


@functools.lru_cache(maxsize=None)
def get_variant(name: str, variant: int) -> ProductVariant:
    """The flavour ``variant`` of class ``name`` with its jittered size and mass (cached: it is pure)."""
    dominant_rgb = variant_palette(name, variant)[0]  # also validates name and variant
    cls = get_class(name)
    jit = variant_rng(name, variant, "size").uniform(-SIZE_JITTER, SIZE_JITTER, size=3)
    w, d, h = cls.size_m
    round_xy = cls.family in ("cylinder", "cup", "tube", "jar") or (cls.family == "bottle" and w == d)
    fx, fz = 1.0 + jit[0], 1.0 + jit[2]
    fy = fx if round_xy else 1.0 + jit[1]
    size = (float(np.clip(round(w * fx, 5), MIN_WIDTH_M, MAX_WIDTH_M)), float(min(round(d * fy, 5), MAX_DEPTH_M)),
            float(np.clip(round(h * fz, 5), MIN_HEIGHT_M, MAX_HEIGHT_M)))
    vol_ratio = (size[0] * size[1] * size[2]) / (w * d * h)
    mass = float(np.clip(round(cls.mass_kg * vol_ratio, 4), MIN_MASS_KG, MAX_MASS_KG))
    split = "seen" if variant in cls.variants_seen else "unseen"
    return ProductVariant(name, variant, split, size, mass, dominant_rgb)


def variants(name: str, split: str = "all") -> list[ProductVariant]:
    """The variants of class ``name`` in split ``"seen"``, ``"unseen"`` or ``"all"``."""
    cls = get_class(name)
    ids = {"seen": cls.variants_seen, "unseen": cls.variants_unseen,
           "all": tuple(sorted(cls.variants_seen + cls.variants_unseen))}
    if split not in ids:
        raise ValueError(f"split must be 'seen', 'unseen' or 'all', got {split!r}")
    return [get_variant(name, v) for v in ids[split]]
