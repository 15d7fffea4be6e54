"""Grasp parts: each product class split into named, non-overlapping parts that a part-aware pick is scored on.

The catalog's ``ProductClass.parts`` are *mesh-building* regions (a bottle's
``top`` overlaps its ``cap`` and ``neck``; every class has a ``side`` band
inside its ``body``): :mod:`graspsim.assets.meshes` builds necks, caps and lids
from them and clip_sam's part prompts use their words. Scoring "pick the
ketchup bottle by its cap" needs something else: a *partition* of the product,
so that every point of the product belongs to exactly one named part. This
module is that partition, derived from the same catalog boxes (a cap part
starts where the cap box starts), so the two never drift apart.

Frame and units: a part is an axis-aligned box ``(lo, hi)`` in FRACTIONS of the
variant's ``size_m`` in the product frame (origin at the bounding-box centre,
+z up in the upright pose, -y facing a shelf camera; see
:mod:`graspsim.assets.catalog`), so its metres follow each variant's jitter.
The boxes of a class tile ``[-0.5, 0.5]^3`` exactly: cover, no overlap
(boundaries are shared faces; a point on a face belongs to the part listed
first). Most partitions are slabs along the product's z axis (bottom to top);
the detergent bottle's handle is the block behind its body (+y).

Part names come from one retail vocabulary (:data:`PART_WORDS`):

===============  ===========================  ===========================================================
family           parts (product bottom->top)  where the boundaries come from
===============  ===========================  ===========================================================
cylinder (cans)  bottom, body, top            lower / upper 30 % of the height (the lid is the top 1 cm
                                              and narrower than the wall: fingers close on the wall below)
bottle           body, [neck,] cap            cap box; ``neck`` = the upper 60 % of the shoulder and the
                                              neck up to the cap, where that is >= 2.5 cm tall (water,
                                              tea, ketchup), else in the body
carton           bottom, body, top            ``top`` = the gable roof, its fin and 1.5 cm of the walls
                                              below; bottom 25 %
box              bottom, [body,] top          thirds; boxes under 10 cm tall: the lower 40 % and the rest
cup, bowl        body / bottom, top           ``top`` = the upper 35 % (cups) / half (bowl) with the rim
bag              bottom, body, top            thirds at 30 % / 70 % (``top`` holds the seal)
jar              body, lid                    ``lid`` = the screw lid and the neck under it
tube             bottom, body, top            ``top`` = the lid (1 mm wider than the tube) and 2 cm of the
                                              wall below it; bottom 30 %
handle_bottle    body, handle, cap            ``cap`` = cap and neck; ``handle`` = everything behind the
                                              body (+y) below the shoulder
===============  ===========================  ===========================================================

Graspable: every part offers a place where the Franka fingers (2.1 cm pads,
8 cm opening) close on it before anything else of the product; the tests check
this on the meshes (``tests/test_parts.py``).

Why not a field of ``ProductClass``: ``catalog.py`` is part of the asset cache's
fingerprint (:mod:`graspsim.assets.library`), so any edit there regenerates every
cached mesh; the partition does not change a mesh.
"""

from __future__ import annotations

import functools

import numpy as np

from graspsim.assets.catalog import CATALOG, Box, get_class

#: Every part name used by some class (the vocabulary of part-aware instructions).
PART_WORDS = ("cap", "lid", "neck", "top", "body", "bottom", "handle")

# Where a bottle's neck part starts, as a fraction of the way up the shoulder (the shoulder's radius there is
# 81 % of the way from the neck's to the body's, 3-4 mm inside the body's), and the shortest neck part.
_NECK_START = 0.4
_MIN_NECK_M = 0.025
# How far down a carton's walls its top part reaches below the gable roof, and a snack tube's below its lid.
_CARTON_TOP_WALL_M = 0.015
_TUBE_TOP_WALL_M = 0.02


def _z_slabs(*parts: tuple[str, float]) -> dict[str, Box]:
    """Slabs along z: ``(name, upper z fraction)`` from the bottom up; the last must end at 0.5."""
    out, z0 = {}, -0.5
    for name, z1 in parts:
        if not z0 < z1 <= 0.5:
            raise ValueError(f"part {name!r}: slab ({z0}, {z1}) is empty or outside the box")
        out[name] = ((-0.5, -0.5, z0), (0.5, 0.5, z1))
        z0 = z1
    if z0 != 0.5:
        raise ValueError("the slabs must reach the top of the box (0.5)")
    return out


def _partition(class_name: str) -> dict[str, Box]:
    """The grasp parts of one class (module docstring), from its catalog boxes."""
    cls = get_class(class_name)
    w, d, h = cls.size_m
    p = cls.parts
    family = cls.family
    if family == "cylinder":
        return _z_slabs(("bottom", -0.2), ("body", 0.2), ("top", 0.5))
    if family == "bottle":
        cap0, shoulder, neck0 = p["cap"][0][2], p["body"][1][2], p["neck"][0][2]
        # The shoulder narrows from the body's width to the neck's: its lower part is as wide as the body
        # (fingers there press both), so the neck starts _NECK_START of the way up the shoulder.
        neck_start = shoulder + _NECK_START * (neck0 - shoulder)
        if (cap0 - neck_start) * h >= _MIN_NECK_M:
            return _z_slabs(("body", neck_start), ("neck", cap0), ("cap", 0.5))
        return _z_slabs(("body", cap0), ("cap", 0.5))
    if family == "carton":
        # The gable narrows from the body's width: fingers closing across it press its base, so the top part
        # reaches _CARTON_TOP_WALL_M down the walls below the roof.
        return _z_slabs(("bottom", -0.25), ("body", p["roof"][0][2] - _CARTON_TOP_WALL_M / h), ("top", 0.5))
    if family == "box":
        if h < 0.10:  # a grip from above presses down to 3-4 cm under the top: most of such a box is its top
            return _z_slabs(("bottom", -0.1), ("top", 0.5))
        return _z_slabs(("bottom", -1 / 6), ("body", 1 / 6), ("top", 0.5))
    if family == "cup":
        return _z_slabs(("body", 0.15), ("top", 0.5))
    if family == "bowl":
        return _z_slabs(("bottom", 0.0), ("top", 0.5))
    if family == "bag":
        return _z_slabs(("bottom", -0.2), ("body", 0.2), ("top", 0.5))
    if family == "jar":
        return _z_slabs(("body", p["neck"][0][2]), ("lid", 0.5))
    if family == "tube":
        # The lid is 1.3 cm tall and only 1 mm wider than the tube: fingers on it press the wall under it too,
        # so the top part is the lid and _TUBE_TOP_WALL_M of the wall below.
        return _z_slabs(("bottom", -0.2), ("body", p["cap"][0][2] - _TUBE_TOP_WALL_M / h), ("top", 0.5))
    if family == "handle_bottle":
        y_back, z_cap = p["body"][1][1], p["shoulder"][1][2]  # the body ends at y_back; the neck starts at z_cap
        return {"body": ((-0.5, -0.5, -0.5), (0.5, y_back, z_cap)),
                "handle": ((-0.5, y_back, -0.5), (0.5, 0.5, z_cap)),
                "cap": ((-0.5, -0.5, z_cap), (0.5, 0.5, 0.5))}
    raise ValueError(f"no grasp parts for family {family!r}")


@functools.lru_cache(maxsize=None)
def _boxes(class_name: str) -> tuple[tuple[str, ...], np.ndarray]:
    parts = _partition(class_name)
    return tuple(parts), np.array([[lo, hi] for lo, hi in parts.values()], dtype=np.float64)  # (P, 2, 3)


def part_names(class_name: str) -> tuple[str, ...]:
    """The grasp parts of ``class_name``, in label order: ``part_seg`` value ``k + 1`` is ``part_names(c)[k]``."""
    return _boxes(class_name)[0]


def part_boxes(class_name: str) -> dict[str, Box]:
    """Part name -> ``(lo, hi)`` box in fractions of the variant's size (product frame), in label order."""
    names, boxes = _boxes(class_name)
    return {n: (tuple(b[0]), tuple(b[1])) for n, b in zip(names, boxes.tolist())}


def part_index(class_name: str, part: str) -> int:
    """Index of ``part`` in :func:`part_names`; ValueError naming the valid parts otherwise."""
    names = part_names(class_name)
    if part not in names:
        raise ValueError(f"{class_name} has no part {part!r}; its parts: {', '.join(names)}")
    return names.index(part)


def label_to_word(class_name: str) -> np.ndarray:
    """(256,) uint8 lookup table from a ``part_seg`` label of a ``class_name`` product (``k + 1`` = its part
    ``k``) to ``1 +`` that part's :data:`PART_WORDS` index (0 stays 0: not a product; labels the class does not
    have map to 0). Its inverse for one class: :func:`word_to_label`."""
    lut = np.zeros(256, dtype=np.uint8)
    for k, name in enumerate(part_names(class_name)):
        lut[k + 1] = PART_WORDS.index(name) + 1
    return lut


def word_to_label(class_name: str) -> np.ndarray:
    """(256,) int64 lookup table from ``1 +`` a :data:`PART_WORDS` index to the ``part_seg`` label of that part
    on a ``class_name`` product (0 for words the class has no part of): the inverse of :func:`label_to_word`."""
    lut = np.zeros(256, dtype=np.int64)
    forward = label_to_word(class_name)
    for k in range(1, len(part_names(class_name)) + 1):
        lut[forward[k]] = k
    return lut


def all_pairs() -> list[tuple[str, str]]:
    """Every (class, part) pair of the catalog, in class-index then label order."""
    return [(c.name, part) for c in CATALOG for part in part_names(c.name)]


#: The most grasp parts any class has (``part_seg`` values are 0..MAX_PARTS).
MAX_PARTS = max(len(part_names(c.name)) for c in CATALOG)


@functools.lru_cache(maxsize=256)
def surface_samples(class_name: str, variant: int, count: int = 8000) -> np.ndarray:
    """(count, 3) points spread uniformly (by area) over the variant's visual mesh, product frame, metres.

    Deterministic (a generator seeded with the variant) and read-only (cached): the
    surface a finger pad can press on, e.g. to see which part a pad covers.
    """
    from graspsim.assets.library import load_product_asset

    asset = load_product_asset(class_name, variant)
    tri = np.asarray(asset.vertices)[np.asarray(asset.indices).reshape(-1, 3)]  # (T, 3 corners, 3)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    rng = np.random.default_rng([variant, *class_name.encode()])
    pick = rng.choice(len(tri), size=count, p=area / area.sum())
    # Uniform in a triangle: sqrt-warped barycentric coordinates.
    r1, r2 = np.sqrt(rng.random(count)), rng.random(count)
    a, b, c = tri[pick, 0], tri[pick, 1], tri[pick, 2]
    points = (1 - r1)[:, None] * a + (r1 * (1 - r2))[:, None] * b + (r1 * r2)[:, None] * c
    points.setflags(write=False)
    return points


def part_at(class_name: str, size_m, points_m: np.ndarray) -> np.ndarray:
    """Part index (N,) int of each product-frame point (N, 3) metres, for a variant of size ``size_m`` (3,).

    A point inside the product's box gets the part whose box contains it;
    points outside (a contact point a fraction of a millimetre off the mesh,
    a depth pixel on the silhouette) get the nearest part box, so every point
    has a part and boundaries need no special case.
    """
    _, boxes = _boxes(class_name)
    f = np.asarray(points_m, dtype=np.float64).reshape(-1, 3) / np.asarray(size_m, dtype=np.float64)
    # Distance (in size fractions scaled back to metres) from each point to each box: 0 inside.
    gap = np.maximum(boxes[None, :, 0, :] - f[:, None, :], 0.0) + np.maximum(f[:, None, :] - boxes[None, :, 1, :], 0.0)
    dist = np.linalg.norm(gap * np.asarray(size_m, dtype=np.float64), axis=2)  # (N, P)
    return np.argmin(dist, axis=1).astype(np.int64)  # ties (shared faces): the part listed first
