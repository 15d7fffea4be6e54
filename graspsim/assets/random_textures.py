"""Randomised product labels for domain randomisation: new colours and label layouts, never the unseen ones.

A :class:`LabelDraw` is one random label design for a product of a class: a
recoloured class palette and a recomposed :class:`~graspsim.assets.textures.Style`
(pattern, emblem, band and brand heights, top-to-bottom mirroring).
:func:`make_random_texture` paints it with the catalog's own painters onto the
product's usual UV atlas (256 x 256 RGB, :mod:`graspsim.assets.textures`), so
only the look changes: mesh, size, mass and grasp parts stay the seen variant's.

Disjointness from the unseen variants (:data:`~graspsim.assets.catalog.UNSEEN_VARIANTS`),
which the ``*-unseen`` suites show and training data must never contain:

* colour: an unseen variant shifts the class palette's hue by +-40 degrees
  (:data:`~graspsim.assets.catalog.VARIANT_HUE_SHIFT_DEG`; seen ones by 0 and
  +-20); a draw shifts every colour by a hue in :data:`HUE_SHIFT_BAND_DEG`
  (60 .. 300 degrees), so each saturated palette colour lies at least
  :data:`MIN_HUE_GAP_DEG` (20 degrees) of hue away from the same colour of
  every seen and unseen variant;
* layout: an unseen variant's label uses the class's ``pattern_b`` (always
  different from the seen ``pattern``), ``emblem_b`` and a mirrored layout; a
  draw never uses ``pattern_b`` (:func:`allowed_patterns`), so its design is
  never an unseen one.

``tests/test_domain_rand.py`` checks both rules for every class and that the
painted textures stay far from the unseen variants' textures.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import asdict, dataclass, replace

import numpy as np

from graspsim.assets.catalog import BODY_HUE_SCALE, VARIANT_HUE_SHIFT_DEG, get_class, variant_palette
from graspsim.assets.textures import STYLES, paint_atlas

#: Every label pattern the painter knows (:meth:`graspsim.assets.textures.Canvas.pattern`).
PATTERNS = ("none", "diag", "hstripes", "vstripes", "checker", "dots", "flowers", "waves", "zigzag", "rays",
            "claw", "spots")
#: Every emblem the painter knows (:meth:`graspsim.assets.textures.Canvas.emblem`).
EMBLEMS = ("none", "circle", "ellipse", "diamond", "star", "drop", "drops", "fruit", "leaf", "bean", "bowl", "chip",
           "cookie")
#: Hue shifts (degrees) a randomised label draws from: as far from the unseen variants' +-40 as from 0.
HUE_SHIFT_BAND_DEG = (60.0, 300.0)
#: Least hue distance (degrees) between a randomised palette colour and that colour of any catalog variant.
MIN_HUE_GAP_DEG = min(min(abs(HUE_SHIFT_BAND_DEG[0] - abs(s)), abs(360.0 - HUE_SHIFT_BAND_DEG[1] - abs(s)))
                      for s in VARIANT_HUE_SHIFT_DEG.values())
#: Hue shifts (degrees) of a new layout that keeps the class's colours (``keep_colours``): the seen variants'
#: range (the body's scaled as theirs), so every colour is as far from the unseen variants' as a seen variant's.
CLASS_HUE_BAND_DEG = (-20.0, 20.0)


@dataclass(frozen=True)
class LabelDraw:
    """One random label design (plain values: it is stored in each scene's ``meta.json``).

    * ``hue_shift_deg``: added to the hue of every class palette colour, in :data:`HUE_SHIFT_BAND_DEG` (or
      :data:`CLASS_HUE_BAND_DEG` for a design that keeps the class's colours).
    * ``saturation_scale`` / ``value_scale``: multiply saturation of every colour / brightness of the body colour.
    * ``swap_body``: the body takes the label colour (palette 1) and the label the body colour.
    * ``pattern`` / ``emblem``: from :data:`PATTERNS` / :data:`EMBLEMS`; never the class's unseen ``pattern_b``.
    * ``pattern_col`` / ``brand_col``: palette index (0-3, or -1 white / -2 dark) of the pattern and the brand.
    * ``mirrored``: the label zone is laid out top to bottom (as the unseen variants', with other contents).
    * ``band_shift``: moves colour bands and brand by this fraction of the label zone (+-0.15).
    * ``brand_z`` / ``emblem_z``: heights of brand (before ``band_shift``) and emblem as fractions of the label
      zone; the brand ends up in 0.45 .. 0.84 of it, the heights catalog labels use (lower or higher, its
      flavour line would leave the product's canvas).
    * ``seed``: seeds the painter's own draws (pattern spots, small print).
    * ``body_hue_scale``: the body colour turns by ``hue_shift_deg`` times this (1, or for a design in the class's
      colours the catalog's :data:`~graspsim.assets.catalog.BODY_HUE_SCALE`, as its variants' bodies turn).
    """

    hue_shift_deg: float
    saturation_scale: float
    value_scale: float
    swap_body: bool
    pattern: str
    emblem: str
    pattern_col: int
    brand_col: int
    mirrored: bool
    band_shift: float
    brand_z: float
    emblem_z: float
    seed: int
    body_hue_scale: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def allowed_patterns(class_name: str) -> tuple[str, ...]:
    """The patterns a randomised label of ``class_name`` may use: all but its unseen variants' ``pattern_b``."""
    return tuple(p for p in PATTERNS if p != STYLES[class_name].pattern_b)


def sample_label_draw(rng: np.random.Generator, class_name: str, keep_colours: bool = False) -> LabelDraw:
    """A random label design for ``class_name`` (13 draws from ``rng``, in field order).

    ``keep_colours``: a new layout in the class's own colours (hue within :data:`CLASS_HUE_BAND_DEG`, saturation
    and brightness within 15 %, body and label colours never swapped): what changes is pattern, emblem, band and
    brand heights and mirroring, so a model learns that a product's layout, not only its colours, may differ.
    The same number of draws either way.
    """
    get_class(class_name)  # validates the name
    patterns = allowed_patterns(class_name)
    hues, saturation, value = ((CLASS_HUE_BAND_DEG, (0.85, 1.15), (0.85, 1.15)) if keep_colours
                               else (HUE_SHIFT_BAND_DEG, (0.6, 1.3), (0.7, 1.15)))
    return LabelDraw(
        hue_shift_deg=float(rng.uniform(*hues)),
        saturation_scale=float(rng.uniform(*saturation)),
        value_scale=float(rng.uniform(*value)),
        swap_body=bool(rng.random() < (0.0 if keep_colours else 0.3)),
        pattern=patterns[int(rng.integers(len(patterns)))],
        emblem=EMBLEMS[int(rng.integers(len(EMBLEMS)))],
        pattern_col=int(rng.integers(-2, 4)),
        brand_col=int(rng.choice([-1, -2, 1, 2])),
        mirrored=bool(rng.random() < 0.5),
        band_shift=(shift := float(rng.uniform(-0.15, 0.15))),
        brand_z=float(rng.uniform(0.45, 0.84)) - shift,
        emblem_z=float(rng.uniform(0.15, 0.55)),
        seed=int(rng.integers(2**31)),
        body_hue_scale=BODY_HUE_SCALE.get(class_name, 1.0) if keep_colours else 1.0,
    )


def _recolour(rgb, hue_deg: float, sat_scale: float, value_scale: float) -> tuple[int, int, int]:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    h = (h + hue_deg / 360.0) % 1.0
    s, v = min(1.0, s * sat_scale), min(1.0, v * value_scale)
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def random_palette(class_name: str, draw: LabelDraw) -> tuple[tuple[int, int, int], ...]:
    """The class palette (variant 0's) recoloured by ``draw``: 4 RGB colours, body first."""
    body, label, *rest = variant_palette(class_name, 0)
    if draw.swap_body:
        body, label = label, body
    return (_recolour(body, draw.hue_shift_deg * draw.body_hue_scale, draw.saturation_scale, draw.value_scale),
            *(_recolour(c, draw.hue_shift_deg, draw.saturation_scale, 1.0) for c in (label, *rest)))


@functools.lru_cache(maxsize=None)
def texture_layout(class_name: str, variant: int) -> dict:
    """The atlas layout of a variant's mesh (what the painter needs; ~60 ms to build, so cached per process)."""
    from graspsim.assets.meshes import build_mesh

    return build_mesh(class_name, variant).layout


def make_random_texture(class_name: str, variant: int, draw: LabelDraw) -> np.ndarray:
    """(256, 256, 3) uint8 RGB atlas of ``draw`` on variant ``variant``'s mesh of ``class_name``.

    Painted by :func:`graspsim.assets.textures.paint_atlas`, the catalog's own painter, with the recomposed
    style; the flavour word stays the variant's.
    """
    base = STYLES[class_name]
    # _Label reads pattern_b / emblem_b when mirrored: give both slots the drawn design.
    st = replace(base, pattern=draw.pattern, pattern_b=draw.pattern, emblem=draw.emblem, emblem_b=draw.emblem,
                 pattern_col=draw.pattern_col, brand_col=draw.brand_col, brand_z=draw.brand_z,
                 emblem_z=draw.emblem_z, pattern_zone=(0.0, 1.0))
    return paint_atlas(class_name, texture_layout(class_name, variant), st, random_palette(class_name, draw),
                       base.flavours[variant], draw.mirrored, draw.band_shift, np.random.default_rng(draw.seed))
