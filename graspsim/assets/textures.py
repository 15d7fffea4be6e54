"""Procedural product textures: a 256 x 256 RGB atlas per variant, pure numpy/OpenCV.

Atlas layout in UV space (u right, v UP, OBJ/OpenGL convention: texel row
``= (1 - v) * 256``, i.e. v = 0 is the bottom row of the PNG):

* ``SIDE_UV_V``: v range of the side wrap (bottom 62 % of the image); u runs
  around the product (0 = back middle, 0.5 = front middle, see
  :mod:`graspsim.assets.meshes`), v is the height fraction.
* ``BOTTOM_CAP_UV`` / ``TOP_CAP_UV``: (u0, v0, u1, v1) boxes in the top strip of
  the image for the bottom and top discs, mapped planar (+x to the right, +y up).
* ``PLAIN_U``: a u range at the back kept in plain body colour (handles use it).

Painting works in metres on the product surface (a :class:`Canvas` maps metres
to texels per axis), so lettering and emblems keep their proportions on
products as different as a tall bottle and a flat toothpaste box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from graspsim.assets.catalog import get_class, variant_palette, variant_rng

TEX = 256
SIDE_UV_V = (0.004, 0.621)
BOTTOM_CAP_UV = (2 / TEX, 162 / TEX, 126 / TEX, 254 / TEX)
TOP_CAP_UV = (130 / TEX, 162 / TEX, 254 / TEX, 254 / TEX)
PLAIN_U = (0.004, 0.03)
_SIDE_ROW0 = 94  # first image row painted as side (2 guard rows above the side UVs)

WHITE = (250, 250, 250)
PATTERN_ALPHA = {"diag": 0.35, "checker": 0.3, "dots": 0.5, "hstripes": 0.35, "vstripes": 0.3, "waves": 0.9,
                 "zigzag": 0.5, "rays": 0.3, "claw": 0.95, "spots": 0.9, "flowers": 0.8}
DARK = (30, 30, 35)
METAL = (196, 198, 204)  # can ends and bottoms


# ----------------------------------------------------------------------- styles
@dataclass(frozen=True)
class Style:
    """How a class's label looks. Colours are indices into the variant palette
    (0 body, 1 secondary, 2 accent, 3 cap/lid) or -1 white / -2 dark.

    ``bands``: (z0, z1, colour) in fractions of the label zone; ``brand_z`` and
    ``emblem_z`` heights of the brand word and emblem in the label zone;
    ``pattern``/``emblem`` for seen variants, ``pattern_b``/``emblem_b`` for the
    unseen ones (whose layout is also mirrored top-to-bottom)."""

    brand: str
    flavours: tuple[str, str, str, str, str]
    pattern: str
    pattern_b: str
    pattern_col: int
    emblem: str
    emblem_b: str
    emblem_col: int
    bands: tuple[tuple[float, float, int], ...] = ()
    brand_z: float = 0.6
    brand_col: int = -1
    brand_bg: int | None = None
    emblem_z: float = 0.35
    emblem_size: float = 0.3  # emblem radius as a fraction of the front face width
    cap_col: int = 3
    glyph_col: int = -2
    vertical_brand: bool = False
    pattern_zone: tuple[float, float] = (0.0, 1.0)  # part of the label zone the pattern fills


STYLES: dict[str, Style] = {
    "soda_can": Style("FIZZO", ("COLA", "ORANGE", "CHERRY", "GINGER", "GRAPE"), "waves", "diag", -1,
                      "drops", "star", -1, ((0.0, 0.05, 2), (0.95, 1.0, 2)), 0.78, -1, None, 0.15,
                      pattern_zone=(0.0, 0.5)),
    "water_bottle": Style("AQUA", ("PURE", "SPRING", "ALPINE", "MINERAL", "SPARKLE"), "hstripes", "waves", -1,
                          "drop", "diamond", -1, ((0.45, 0.85, 1),), 0.72, -1, None, 0.58, 0.22, 1),
    "juice_carton": Style("SUNNY", ("ORANGE", "MANGO", "PEACH", "APPLE", "GUAVA"), "dots", "rays", 2,
                          "fruit", "fruit", 0, ((0.0, 0.14, 1),), 0.82, -2, None, 0.45, 0.32, 1),
    "milk_carton": Style("MILK", ("FRESH", "LIGHT", "RICH", "LOWFAT", "ORGANIC"), "waves", "spots", 2,
                         "drop", "circle", 1, ((0.0, 0.22, 1),), 0.7, 1, None, 0.42, 0.25, 1),
    "cereal_box": Style("CRUNCH", ("HONEY", "CHOCO", "BERRY", "MAPLE", "NUTTY"), "rays", "checker", 3,
                        "bowl", "star", 2, ((0.0, 0.1, 1),), 0.78, -1, 1, 0.42, 0.4, 1, -2, True),
    "chips_bag": Style("CRISPY", ("SALTED", "PAPRIKA", "ONION", "CHEESE", "BBQ"), "diag", "dots", 3,
                       "chip", "chip", 1, (), 0.72, -1, None, 0.38, 0.38, 3, -1),
    "candy_bar": Style("CHOCO", ("MILK", "NUTS", "CARAMEL", "WAFER", "COCONUT"), "zigzag", "dots", 3,
                       "none", "none", 2, ((0.28, 0.72, 1),), 0.5, -1, None, 0.5, 0.3, 1, -1, True),
    "cup_noodle": Style("NOODLE", ("SHOYU", "CURRY", "SEAFOOD", "MISO", "CHILI"), "none", "checker", 2,
                        "circle", "diamond", 2, ((0.52, 0.58, 2), (0.6, 0.9, 1)), 0.75, -1, None, 0.3, 0.18, 3),
    "yogurt_cup": Style("YOGO", ("BERRY", "PEACH", "VANILLA", "MANGO", "KIWI"), "dots", "hstripes", -1,
                        "fruit", "fruit", 2, ((0.3, 0.72, 1),), 0.58, 2, None, 0.15, 0.12, 3),
    "canned_coffee": Style("BREW", ("BLACK", "LATTE", "MOCHA", "SWEET", "ICED"), "vstripes", "diag", 2,
                           "bean", "bean", 2, ((0.55, 0.82, 1),), 0.69, 0, None, 0.3, 0.22, 3),
    "energy_drink": Style("VOLT", ("ORIGINAL", "ZERO", "TROPIC", "ULTRA", "PUNCH"), "claw", "rays", 1,
                          "none", "none", 1, ((0.0, 0.04, 1),), 0.5, -1, None, 0.5, 0.2, 3, -1, True),
    "shampoo_bottle": Style("SILK", ("SMOOTH", "VOLUME", "REPAIR", "CLEAN", "SHINE"), "waves", "dots", -1,
                            "ellipse", "diamond", -1, (), 0.55, 2, None, 0.55, 0.45, 1),
    "toothpaste_box": Style("DENTA", ("MINT", "WHITE", "FRESH", "HERBAL", "CHARCOAL"), "waves", "diag", 2,
                            "none", "none", 1, ((0.0, 0.3, 1),), 0.62, 2, 1, 0.5, 0.3, 1, -2, True),
    "tissue_box": Style("SOFT", ("CLASSIC", "LOTION", "ALOE", "FAMILY", "BAMBOO"), "flowers", "hstripes", 2,
                        "none", "none", 2, ((0.0, 0.12, 3),), 0.6, 3, 1, 0.5, 0.3, 1, -2, True),
    "chocolate_box": Style("CACAO", ("DARK", "PRALINE", "TRUFFLE", "ORANGE", "ALMOND"), "checker", "diag", 3,
                           "diamond", "circle", 1, ((0.1, 0.14, 1), (0.86, 0.9, 1)), 0.5, 1, None, 0.25, 0.35, 1,
                           -1, True),
    "soup_can": Style("SOUP", ("TOMATO", "CHICKEN", "ONION", "BEAN", "PUMPKIN"), "none", "hstripes", 2,
                      "circle", "star", 2, ((0.55, 1.0, 1),), 0.76, -1, None, 0.3, 0.2, 3),
    "ketchup_bottle": Style("TOMA", ("CLASSIC", "HOT", "SWEET", "SMOKY", "GARLIC"), "none", "dots", 2,
                            "fruit", "leaf", 0, ((0.3, 0.8, 1),), 0.68, 0, None, 0.45, 0.22, 1),
    "instant_rice_bowl": Style("RICE", ("WHITE", "BROWN", "JASMINE", "BASMATI", "SUSHI"), "none", "diag", 2,
                               "bowl", "circle", 2, ((0.2, 0.9, 1),), 0.55, -1, None, 0.5, 0.2, 3),
    "tea_bottle": Style("OCHA", ("GREEN", "ROAST", "JASMINE", "OOLONG", "BARLEY"), "none", "waves", 0,
                        "leaf", "leaf", 0, ((0.2, 0.9, 1),), 0.6, 3, None, 0.28, 0.25, 2, -2, True),
    "gum_pack": Style("MINT", ("COOL", "SPEAR", "ICE", "LIME", "BERRY"), "hstripes", "dots", -1,
                      "none", "none", 2, (), 0.5, 2, 1, 0.5, 0.3, 1, -2, True),
    "cookie_box": Style("BISCO", ("CHOC", "BUTTER", "OAT", "MATCHA", "STRAW"), "dots", "diag", 1,
                        "cookie", "cookie", 1, ((0.0, 0.08, 2),), 0.8, 2, None, 0.45, 0.35, 1, -1, True),
    "sauce_jar": Style("PASTA", ("BASIL", "ARRABB", "OLIVE", "CHEESE", "MUSHRM"), "none", "hstripes", 2,
                       "leaf", "circle", 2, ((0.2, 0.85, 1),), 0.62, 2, None, 0.38, 0.22, 3),
    "detergent_bottle": Style("CLEAN", ("FRESH", "LEMON", "OCEAN", "LAVENDR", "SPRING"), "dots", "diag", -1,
                              "ellipse", "ellipse", -1, (), 0.55, 0, None, 0.55, 0.5, 2),
    "snack_tube": Style("STAX", ("ORIGINAL", "SOUR", "PEPPER", "CHEDDAR", "RANCH"), "none", "diag", 2,
                        "circle", "diamond", 1, ((0.88, 1.0, 2),), 0.68, 2, None, 0.38, 0.3, 1),
}


# ----------------------------------------------------------------------- canvas
class Canvas:
    """Paints in metres on a rectangular texel region of an RGB float image.

    ``x`` runs along the image columns (left to right), ``y`` UP the image rows;
    ``rows``/``cols``: the (fractional) image rows at y = 0 and y = ``height_m``, the
    columns at x = 0 and x = ``width_m`` (the metric size the region covers on the
    product); nothing outside ``clip_rows``/``clip_cols`` is painted.
    """

    def __init__(self, img: np.ndarray, rows: tuple[float, float], cols: tuple[float, float],
                 width_m: float, height_m: float, clip_rows: tuple[int, int], clip_cols: tuple[int, int]):
        self.img, self.w = img, width_m
        self.r_y0, self.c_x0 = rows[0], cols[0]
        self.cr, self.cc = clip_rows, clip_cols
        self.sx = (cols[1] - cols[0]) / width_m  # texels per metre
        self.sy = (rows[0] - rows[1]) / height_m

    def px(self, x: float, y: float) -> tuple[float, float]:
        return self.c_x0 + x * self.sx, self.r_y0 - y * self.sy

    def _blend(self, mask: np.ndarray, rgb, alpha: float = 1.0) -> None:
        r0, r1 = self.cr
        c0, c1 = self.cc
        x, y, w, h = cv2.boundingRect(mask[r0:r1, c0:c1])  # only touch the painted window
        if w == 0 or h == 0:
            return
        r0, c0 = r0 + y, c0 + x
        r1, c1 = r0 + h, c0 + w
        m = mask[r0:r1, c0:c1, None].astype(np.float32) * (alpha / 255.0)
        sub = self.img[r0:r1, c0:c1]
        sub *= 1.0 - m
        sub += m * np.asarray(rgb, np.float32)

    def _mask(self) -> np.ndarray:
        return np.zeros(self.img.shape[:2], np.uint8)

    def rect(self, x0, y0, x1, y1, rgb, alpha=1.0) -> None:
        (a, b), (c, d) = self.px(x0, y0), self.px(x1, y1)
        m = self._mask()
        cv2.rectangle(m, (int(round(a)), int(round(d))), (int(round(c)) - 1, int(round(b)) - 1), 255, -1)
        self._blend(m, rgb, alpha)

    def ellipse(self, x, y, rx, ry, rgb, alpha=1.0, angle_deg=0.0) -> None:
        cx, cy = self.px(x, y)
        m = self._mask()
        axes = (max(1, int(round(rx * self.sx))), max(1, int(round(ry * self.sy))))
        cv2.ellipse(m, (int(round(cx)), int(round(cy))), axes, -angle_deg, 0, 360, 255, -1, cv2.LINE_AA)
        self._blend(m, rgb, alpha)

    def poly(self, pts_m, rgb, alpha=1.0) -> None:
        pts = np.array([self.px(x, y) for x, y in pts_m], np.float64)
        m = self._mask()
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        self._blend(m, rgb, alpha)

    def text(self, word, x, y, max_w, h, rgb, vertical=False, alpha=1.0) -> None:
        """``word`` centred at (x, y), letters ``h`` metres tall, at most ``max_w`` long;
        vertical text reads bottom to top (like a book spine)."""
        font, th = cv2.FONT_HERSHEY_DUPLEX, 2
        (tw, tht), base = cv2.getTextSize(word, font, 1.0, th)
        glyph = np.zeros((tht + base + 4, tw + 4), np.uint8)
        cv2.putText(glyph, word, (2, tht + 2), font, 1.0, 255, th, cv2.LINE_AA)
        ys, xs = np.nonzero(glyph)
        glyph = glyph[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        ar = glyph.shape[1] / glyph.shape[0]
        length = min(max_w, h * ar)
        h = length / ar
        if vertical:
            glyph = cv2.rotate(glyph, cv2.ROTATE_90_COUNTERCLOCKWISE)
            w_px, h_px = h * self.sx, length * self.sy
        else:
            w_px, h_px = length * self.sx, h * self.sy
        w_px, h_px = max(2, int(round(w_px))), max(2, int(round(h_px)))
        glyph = cv2.resize(glyph, (w_px, h_px), interpolation=cv2.INTER_AREA)
        cx, cy = self.px(x, y)
        c0, r0 = int(round(cx - w_px / 2)), int(round(cy - h_px / 2))
        m = self._mask()
        H, W = m.shape
        rs, cs = slice(max(r0, 0), min(r0 + h_px, H)), slice(max(c0, 0), min(c0 + w_px, W))
        m[rs, cs] = glyph[rs.start - r0: rs.stop - r0, cs.start - c0: cs.stop - c0]
        self._blend(m, rgb, alpha)

    def grid(self):
        """Metric coordinates (X, Y) of every texel of the image (for patterns)."""
        rows, cols = np.mgrid[0: self.img.shape[0], 0: self.img.shape[1]].astype(np.float32)
        return (cols - self.c_x0) / self.sx, (self.r_y0 - rows) / self.sy

    def pattern(self, kind, y0, y1, rgb, alpha, rng) -> None:
        """Fill the band y0..y1 (metres) with a repeating pattern ``kind``."""
        if kind == "none":
            return
        X, Y = self.grid()
        inside = (Y >= y0) & (Y <= y1)
        p = 0.012  # pattern period, metres
        if kind == "diag":
            m = ((X + Y) % p) < p * 0.35
        elif kind == "hstripes":
            m = (Y % (p * 0.8)) < p * 0.25
        elif kind == "vstripes":
            m = (X % (p * 0.6)) < p * 0.15
        elif kind == "checker":
            m = ((np.floor(X / p) + np.floor(Y / p)) % 2) == 0
        elif kind in ("dots", "flowers"):
            q = p * (1.2 if kind == "flowers" else 1.0)
            off = (np.floor(Y / q) % 2) * q / 2
            dx, dy = (X + off) % q - q / 2, Y % q - q / 2
            m = dx**2 + dy**2 < (q * (0.3 if kind == "flowers" else 0.22)) ** 2
        elif kind == "waves":
            yc = (y0 + y1) / 2
            amp = 0.15 * (y1 - y0)
            m = np.abs(Y - yc - amp * np.sin(2 * math.pi * X / (6 * p))) < 0.08 * (y1 - y0)
        elif kind == "zigzag":
            tri = np.abs((X / (2 * p)) % 1.0 - 0.5) * 2 * p
            m = (((Y - tri) % (2 * p)) < 0.5 * p)
        elif kind == "rays":
            cx = self.w / 2
            ang = np.arctan2(Y - (y0 + y1) / 2, X - cx)
            m = (np.floor(ang / (math.pi / 12)) % 2) == 0
        elif kind == "claw":  # three slanted slashes (energy-drink style)
            m = np.zeros_like(X, bool)
            cx = self.w / 2
            for k in (-1, 0, 1):
                m |= np.abs((X - cx - k * 0.009) - 0.25 * (Y - (y0 + y1) / 2)) < 0.0022
        elif kind == "spots":  # cow spots
            m = np.zeros_like(X, bool)
            for _ in range(14):
                sx_, sy_ = rng.uniform(0, self.w), rng.uniform(y0, y1)
                r = rng.uniform(0.004, 0.009)
                m |= ((X - sx_) / r) ** 2 + ((Y - sy_) / (0.7 * r)) ** 2 < 1
        else:
            raise ValueError(f"unknown pattern {kind!r}")
        mask = np.where(inside & m, 255, 0).astype(np.uint8)
        self._blend(mask, rgb, alpha)

    def emblem(self, kind, x, y, r, rgb, accent, alpha=1.0) -> None:
        """A simple pictogram of radius ``r`` metres at (x, y)."""
        if kind == "none":
            return
        if kind == "circle":
            self.ellipse(x, y, r, r, rgb, alpha)
            self.ellipse(x, y, 0.7 * r, 0.7 * r, accent, alpha)
            self.ellipse(x, y, 0.55 * r, 0.55 * r, rgb, alpha)
        elif kind == "ellipse":
            self.ellipse(x, y, r, 1.35 * r, rgb, alpha)
        elif kind == "diamond":
            self.poly([(x, y + r), (x + r, y), (x, y - r), (x - r, y)], rgb, alpha)
        elif kind == "star":
            pts = [(x + (r if i % 2 == 0 else 0.45 * r) * math.sin(i * math.pi / 5),
                    y + (r if i % 2 == 0 else 0.45 * r) * math.cos(i * math.pi / 5)) for i in range(10)]
            self.poly(pts, rgb, alpha)
        elif kind in ("drop", "drops"):
            centres = [(x, y)] if kind == "drop" else [(x - r, y - 0.3 * r), (x + 0.2 * r, y + 0.5 * r), (x + r, y - 0.6 * r)]
            rr = r if kind == "drop" else 0.4 * r
            for cx, cy in centres:
                self.ellipse(cx, cy - 0.3 * rr, 0.7 * rr, 0.7 * rr, rgb, alpha)
                self.poly([(cx - 0.66 * rr, cy - 0.2 * rr), (cx, cy + rr), (cx + 0.66 * rr, cy - 0.2 * rr)], rgb, alpha)
        elif kind == "fruit":
            self.ellipse(x, y, r, r, rgb, alpha)
            self.ellipse(x - 0.3 * r, y + 0.3 * r, 0.25 * r, 0.25 * r, WHITE, 0.5 * alpha)
            self.ellipse(x + 0.35 * r, y + 1.05 * r, 0.45 * r, 0.2 * r, accent, alpha, angle_deg=30)
        elif kind == "leaf":
            self.ellipse(x, y, 0.45 * r, r, rgb, alpha, angle_deg=35)
            self.poly([(x - 0.55 * r, y - 0.8 * r), (x + 0.55 * r, y + 0.8 * r), (x + 0.6 * r, y + 0.75 * r),
                       (x - 0.5 * r, y - 0.85 * r)], accent, alpha)
        elif kind == "bean":
            self.ellipse(x, y, 0.7 * r, r, rgb, alpha, angle_deg=20)
            self.poly([(x - 0.1 * r, y - 0.9 * r), (x + 0.15 * r, y), (x - 0.1 * r, y + 0.9 * r),
                       (x + 0.05 * r, y)], accent, alpha)
        elif kind == "bowl":
            self.ellipse(x, y + 0.15 * r, 0.9 * r, 0.45 * r, accent, alpha)
            self.poly([(x - r, y + 0.1 * r), (x + r, y + 0.1 * r), (x + 0.6 * r, y - 0.7 * r),
                       (x - 0.6 * r, y - 0.7 * r)], rgb, alpha)
        elif kind == "chip":
            self.ellipse(x, y, r, 0.75 * r, rgb, alpha, angle_deg=-15)
            for dx, dy in ((-0.4, 0.1), (0.3, -0.2), (0.0, 0.35)):
                self.ellipse(x + dx * r, y + dy * r, 0.1 * r, 0.1 * r, accent, 0.6 * alpha)
        elif kind == "cookie":
            for dx, dy in ((-0.5, -0.2), (0.5, 0.3)):
                self.ellipse(x + dx * r, y + dy * r, 0.6 * r, 0.6 * r, rgb, alpha)
                for ex, ey in ((-0.2, 0.15), (0.2, -0.1), (0.05, 0.3), (-0.15, -0.25)):
                    self.ellipse(x + (dx + ex) * r, y + (dy + ey) * r, 0.08 * r, 0.08 * r, accent, alpha)
        else:
            raise ValueError(f"unknown emblem {kind!r}")

    def glyph_rows(self, x0, x1, y0, y1, rgb, rng, letter_h=0.0022, alpha=0.9) -> None:
        """Rows of small rectangles that read as lettering (nutrition panels, small print)."""
        if x1 - x0 < 0.004 or y1 - y0 < letter_h * 1.5:
            return
        m = self._mask()
        y = y1 - letter_h
        while y >= y0:
            x = x0 + rng.uniform(0, 0.003)
            while x < x1:
                wlen = rng.uniform(0.003, 0.011)
                xe = min(x + wlen, x1)
                (a, b), (c, d) = self.px(x, y), self.px(xe, y + letter_h)
                cv2.rectangle(m, (int(round(a)), int(round(d))), (max(int(round(a)), int(round(c)) - 1),
                                                                   max(int(round(d)), int(round(b)) - 1)), 255, -1)
                x = xe + rng.uniform(0.0018, 0.003)
            y -= letter_h * 2.0
        self._blend(m, rgb, alpha)


# ------------------------------------------------------------------------ painter
def _colour(pal, idx):
    return WHITE if idx == -1 else DARK if idx == -2 else pal[idx]


def _contrast(bg, *candidates):
    """The first candidate colour that stands out from ``bg`` (else the one that stands out most)."""
    dist = [float(np.linalg.norm(np.subtract(c, bg, dtype=float))) for c in candidates]
    return next((c for c, d in zip(candidates, dist) if d > 120), candidates[int(np.argmax(dist))])


def _shade(rgb, f):
    return tuple(float(min(255.0, c * f)) for c in rgb)


@dataclass(frozen=True)
class _Label:
    """The label zone of one variant on its side canvas, ``z0``..``z1`` metres above the product bottom.

    Unseen variants mirror the layout top-to-bottom (:meth:`z`); ``jitter`` (a
    fraction of the zone, 0 for unseen variants) moves the bands and brand of
    seen variants a little. ``pal`` is the variant palette.
    """

    side: Canvas
    st: Style
    pal: tuple
    z0: float
    z1: float
    unseen: bool
    jitter: float

    def z(self, f: float) -> float:
        """A fraction of the label zone -> metres above the product bottom."""
        if self.unseen:
            f = 1.0 - f
        return self.z0 + f * (self.z1 - self.z0)


def _side_canvas(img: np.ndarray, body, P: float, H: float) -> Canvas:
    """Canvas of the side wrap (x = u * perimeter ``P``, y = height, metres), painted in the body colour."""
    su0, su1 = SIDE_UV_V
    side = Canvas(img, rows=((1 - su0) * TEX - 0.5, (1 - su1) * TEX - 0.5), cols=(-0.5, TEX - 0.5),
                  width_m=P, height_m=H, clip_rows=(_SIDE_ROW0, TEX), clip_cols=(0, TEX))
    # Subtle vertical shading: products are not flat-lit cards.
    X, Y = side.grid()
    shade = (0.94 + 0.08 * np.clip(Y / H, 0, 1))[..., None]
    img[_SIDE_ROW0:] = np.asarray(body, np.float32) * shade[_SIDE_ROW0:]
    return side


def _paint_label_fill(lab: _Label, P: float, rng: np.random.Generator) -> None:
    """The pattern over (part of) the label zone, then the colour bands, all the way round."""
    st, pal = lab.st, lab.pal
    pat = st.pattern_b if lab.unseen else st.pattern
    p0, p1 = sorted((lab.z(st.pattern_zone[0]), lab.z(st.pattern_zone[1])))
    lab.side.pattern(pat, p0, p1, _colour(pal, st.pattern_col), PATTERN_ALPHA.get(pat, 0.5), rng)
    for b0, b1, c in st.bands:
        y0, y1 = sorted((lab.z(b0 + lab.jitter), lab.z(b1 + lab.jitter)))
        lab.side.rect(-0.01, y0, P + 0.01, y1, _colour(pal, c))


def _art_centres(family: str, fu: dict, P: float) -> list[float]:
    """x (metres along the side) of each copy of the brand art; the front face first."""
    centres = [0.5 * P]
    if family == "box":  # the big side panels of spine-out boxes get the art too
        centres += [np.mean(fu["left"]) * P, np.mean(fu["right"]) * P]
    elif P > 0.16:  # round products: copies 120 degrees round, clear of the back seam
        centres += [P / 6, 5 * P / 6]
    return centres


def _paint_vertical_brand(lab: _Label, x: float, face_w: float, flavour: str) -> None:
    """Brand and flavour up a narrow face centred at ``x`` (``face_w`` wide, metres), read bottom to top."""
    st, side, brand_col = lab.st, lab.side, _colour(lab.pal, lab.st.brand_col)
    length = 0.75 * (lab.z1 - lab.z0)
    hgt = 0.6 * face_w
    if st.brand_bg is not None:
        side.rect(x - 0.4 * face_w, lab.z(0.5) - length / 2 - 0.004, x + 0.4 * face_w,
                  lab.z(0.5) + length / 2 + 0.004, _colour(lab.pal, st.brand_bg))
    side.text(st.brand, x - 0.1 * face_w, lab.z(0.5), length, hgt * 0.75, brand_col, vertical=True)
    side.text(flavour, x + 0.3 * face_w, lab.z(0.5), 0.6 * length, hgt * 0.3, brand_col, vertical=True)


def _paint_emblem_and_brand(lab: _Label, x: float, face_w: float, flavour: str) -> None:
    """Emblem, brand word and flavour on a face centred at ``x`` (``face_w`` wide, metres)."""
    st, pal, side = lab.st, lab.pal, lab.side
    emb = st.emblem_b if lab.unseen else st.emblem
    r = min(st.emblem_size * min(face_w, 0.06), 0.22 * (lab.z1 - lab.z0))
    xb, wb = x, 0.85 * face_w
    if emb != "none":
        xe = x
        # A label-shaped emblem sits behind the brand; a pictogram next to it when
        # both would share the same height.
        if emb not in ("ellipse",) and abs(st.emblem_z - st.brand_z) < 0.3:
            xe, xb, wb = x - 0.3 * face_w, x + 0.15 * face_w, 0.55 * face_w
            r = min(r, 0.18 * face_w)
        accent = _colour(pal, 2 if st.emblem_col != 2 else 1)
        side.emblem(emb, xe, lab.z(st.emblem_z), r, _colour(pal, st.emblem_col), accent)
    hgt = min(0.022, 0.16 * (lab.z1 - lab.z0) + 0.004)
    yb = lab.z(st.brand_z + lab.jitter)
    if st.brand_bg is not None:
        side.rect(xb - wb / 2 - 0.002, yb - 0.7 * hgt, xb + wb / 2 + 0.002, yb + 0.7 * hgt, _colour(pal, st.brand_bg))
    brand_col = _colour(pal, st.brand_col)
    side.text(st.brand, xb, yb, wb, hgt, brand_col)
    side.text(flavour, xb, yb - 0.9 * hgt, 0.7 * wb, 0.45 * hgt, brand_col)


def _paint_small_print(lab: _Label, family: str, centres: list[float], fu: dict, P: float, front_w: float,
                       rng: np.random.Generator) -> None:
    """Small print (ingredients, nutrition table): the back spine of boxes, the gaps
    between the brand copies of round products, else the left and right faces."""
    glyph_col = lab.st.glyph_col if not lab.unseen else (-1 if lab.st.glyph_col == -2 else -2)
    if family == "box":
        b0, b1 = fu["back"][0] * P, fu["back"][1] * P  # the back face spans the seam
        spans = [(b0, P), (0.0, b1)]
    elif len(centres) > 1:
        spans = [(P / 6 + front_w / 2, P / 2 - front_w / 2), (P / 2 + front_w / 2, 5 * P / 6 - front_w / 2)]
    else:
        spans = [(fu["right"][0] * P, fu["right"][1] * P), (fu["left"][0] * P, fu["left"][1] * P)]
    g0, g1 = sorted((lab.z(0.08), lab.z(0.4)))
    for xa, xb in spans:
        lab.side.glyph_rows(xa + 0.002, xb - 0.002, g0, g1, _colour(lab.pal, glyph_col), rng)


def make_texture(class_name: str, variant: int, layout: dict) -> np.ndarray:
    """(256, 256, 3) uint8 RGB atlas of one variant.

    ``layout`` comes from :func:`graspsim.assets.meshes.mesh_shape`: height ``zones``
    (fractions), ``faces_u`` (u ranges of the front/left/right/back faces),
    ``perimeter_m``, ``size_m`` and the metric extents of the top/bottom discs.
    The variant's texture generator is drawn from in a fixed order (jitter,
    label pattern, small print, lid pattern), so an atlas never changes.
    """
    unseen = variant in get_class(class_name).variants_unseen
    rng = variant_rng(class_name, variant, "texture")
    band_shift = 0.0 if unseen else rng.uniform(-0.02, 0.02)
    return paint_atlas(class_name, layout, STYLES[class_name], variant_palette(class_name, variant),
                       STYLES[class_name].flavours[variant], unseen, band_shift, rng)


def paint_atlas(class_name: str, layout: dict, st: Style, pal, flavour: str, mirrored: bool, band_shift: float,
                rng: np.random.Generator) -> np.ndarray:
    """(256, 256, 3) uint8 RGB atlas of a label design on a product of ``class_name``: the one painter of
    catalog variants (:func:`make_texture`) and of domain-randomised labels
    (:mod:`graspsim.assets.random_textures`).

    ``st``: the label :class:`Style`; ``pal``: 4 RGB colours, body first; ``flavour``: the brand line;
    ``mirrored``: the label zone laid out top to bottom (``st.pattern_b`` / ``emblem_b``); ``band_shift``:
    colour bands and brand moved by this fraction of the label zone; ``rng`` is drawn from in a fixed order
    (label pattern, small print, lid pattern).
    """
    family = get_class(class_name).family
    H, P, fu = layout["size_m"][2], layout["perimeter_m"], layout["faces_u"]
    img = np.empty((TEX, TEX, 3), np.float32)
    img[:] = pal[0]
    side = _side_canvas(img, pal[0], P, H)
    lz0, lz1 = (z * H for z in layout["zones"]["label"])
    lab = _Label(side, st, pal, lz0, lz1, mirrored, band_shift)
    _paint_label_fill(lab, P, rng)
    # Emblem and brand on the front; big faces of boxes get a copy too.
    front_w = (fu["front"][1] - fu["front"][0]) * P
    centres = _art_centres(family, fu, P)
    for i, x in enumerate(centres):
        face_w = front_w if (i == 0 or family != "box") else (fu["left"][1] - fu["left"][0]) * P
        if st.vertical_brand and face_w < 0.07 and (lz1 - lz0) > 1.5 * face_w:  # no room for an emblem beside it
            _paint_vertical_brand(lab, x, face_w, flavour)
        else:
            _paint_emblem_and_brand(lab, x, face_w, flavour)
    _paint_small_print(lab, family, centres, fu, P, front_w, rng)
    _paint_zones(side, family, layout["zones"], pal, st, H, P)  # zones outside the label
    if family == "handle_bottle":  # the handle maps onto a plain strip at the back
        side.rect(PLAIN_U[0] * P - 0.01, lz0, (PLAIN_U[1] + 0.01) * P, lz1, pal[0])
    _paint_caps(img, family, layout, pal, st, rng, tissue_slot=class_name == "tissue_box")
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _paint_zones(side: Canvas, family: str, zones, pal, st: Style, H: float, P: float) -> None:
    def band(y0, y1, rgb):  # all the way round, past the seam
        side.rect(-0.01, y0, P + 0.01, y1, rgb)

    lo = {name: z0 * H for name, (z0, _) in zones.items()}  # bottom and top of each zone, metres
    hi = {name: z1 * H for name, (_, z1) in zones.items()}
    if "lid" in zones:  # can ends: bare metal
        band(lo["lid"], hi["lid"] + 0.01, METAL)
        band(lo["lid"], lo["lid"] + 0.0008, _shade(METAL, 0.8))
    if "base" in zones:
        band(-0.01, hi["base"], METAL if family == "cylinder" else _shade(pal[0], 0.85))
    if "cap" in zones:
        cap = _colour(pal, st.cap_col)
        band(lo["cap"], hi["cap"] + 0.01, cap)
        side.pattern("vstripes", lo["cap"], hi["cap"], _shade(cap, 0.8), 0.6, None)  # grip ridges
    if "neck" in zones:
        band(lo["neck"], hi["neck"], _shade(pal[0], 1.08))
    if "roof" in zones:  # carton gable: a second colour with the brand
        band(lo["roof"], hi["roof"], _colour(pal, 2))
        for xc in (0.0, 0.5 * P, P):
            side.text(st.brand, xc, lo["roof"] + 0.3 * (hi["roof"] - lo["roof"]), 0.2 * P / 4,
                      0.25 * (hi["roof"] - lo["roof"]), _colour(pal, 1))
    if "fin" in zones:
        band(lo["fin"], hi["fin"] + 0.01, WHITE)
    if "seal" in zones:  # crimped heat seal
        band(lo["seal"], hi["seal"] + 0.01, _shade(pal[0], 0.8))
        side.pattern("vstripes", lo["seal"], hi["seal"], _shade(pal[0], 0.6), 0.8, None)
    if "rim" in zones:
        band(lo["rim"], hi["rim"] + 0.01, WHITE)


def _cap_canvas(img, box, extent) -> Canvas:
    """Canvas on a disc's atlas box; x along the product +x, y along +y (metres)."""
    u0, v0, u1, v1 = box
    rows = ((1 - v0) * TEX - 0.5, (1 - v1) * TEX - 0.5)
    cols = (u0 * TEX - 0.5, u1 * TEX - 0.5)
    clip_r = (max(0, int(math.floor(rows[1])) - 1), int(math.ceil(rows[0])) + 1)
    clip_c = (int(math.floor(cols[0])) - 1, int(math.ceil(cols[1])) + 2)
    return Canvas(img, rows, cols, extent[0], extent[1], clip_r, clip_c)


def _paint_caps(img, family, layout, pal, st: Style, rng, tissue_slot: bool = False) -> None:
    """Top disc (what a top-down camera sees) and bottom disc; ``tissue_slot``: a tissue box's dispenser slot."""
    ew, eh = layout["bottom_extent_m"]
    _cap_canvas(img, BOTTOM_CAP_UV, (ew, eh)).rect(-1, -1, ew + 1, eh + 1,
                                                    METAL if family == "cylinder" else _shade(pal[0], 0.8))
    ew, eh = layout["top_extent_m"]
    cv = _cap_canvas(img, TOP_CAP_UV, (ew, eh))
    cx, cy, r = ew / 2, eh / 2, min(ew, eh) / 2
    if family == "cylinder":  # can lid: metal, rim ring, pull tab
        cv.rect(-1, -1, ew + 1, eh + 1, METAL)
        cv.ellipse(cx, cy, 0.93 * r, 0.93 * r, _shade(METAL, 0.85))
        cv.ellipse(cx, cy, 0.88 * r, 0.88 * r, METAL)
        cv.ellipse(cx, cy + 0.25 * r, 0.22 * r, 0.32 * r, _shade(METAL, 0.75))
        cv.ellipse(cx, cy + 0.25 * r, 0.1 * r, 0.16 * r, METAL)
        cv.ellipse(cx, cy - 0.35 * r, 0.18 * r, 0.28 * r, (60, 60, 65))
    elif family in ("bottle", "jar", "tube", "handle_bottle"):
        cap = _colour(pal, st.cap_col)
        cv.rect(-1, -1, ew + 1, eh + 1, cap)
        cv.ellipse(cx, cy, 0.9 * r, 0.9 * r, _shade(cap, 0.88))
        if family in ("jar", "tube"):
            cv.emblem(st.emblem if st.emblem != "none" else "circle", cx, cy, 0.45 * r, _colour(pal, 0),
                      _colour(pal, 1))
            cv.text(st.brand, cx, cy - 0.6 * r, 1.2 * r, 0.25 * r, _colour(pal, 0))
    elif family in ("cup", "bowl", "box"):
        lid = _colour(pal, st.cap_col) if family != "box" else pal[0]
        cv.rect(-1, -1, ew + 1, eh + 1, lid)
        if family == "box":
            cv.pattern(st.pattern, 0, eh, _colour(pal, st.pattern_col), 0.35, rng)
        emb = st.emblem if st.emblem != "none" else "circle"
        size = 0.35 * min(ew, eh)
        ink = _contrast(lid, pal[1], pal[2], pal[0], DARK)  # legible on the lid
        cv.emblem(emb, cx, cy + 0.15 * eh, size, ink, _contrast(ink, pal[2], pal[1], WHITE))
        hgt = min(0.2 * eh, 0.02)
        if family == "box" and eh > 1.6 * ew:  # long narrow top: run the brand along it
            cv.text(st.brand, cx, cy - 0.2 * eh, 0.35 * eh, 0.5 * ew, ink, vertical=True)
        else:
            cv.text(st.brand, cx, cy - 0.25 * eh, 0.8 * ew, hgt, ink)
        if tissue_slot:  # with a tissue poking out
            cv.ellipse(ew / 2, eh / 2, 0.28 * ew, 0.36 * eh, (70, 70, 70))
            cv.ellipse(ew / 2, eh / 2, 0.2 * ew, 0.28 * eh, WHITE)
    else:  # carton fin, bag seal: tiny strips in the body colour
        cv.rect(-1, -1, ew + 1, eh + 1, _shade(pal[0], 0.9))
