"""Procedural product meshes: lofted cross-section rings, UVs, normals, convex collision pieces.

Every product is built as one or more "parts", each a loft of closed rings
stacked along z (a ring is a rounded rectangle whose corners may be fully
elliptical, so one ring type covers boxes, cans, ovals and squarish bottles).
A part is a list of sections; sections meet at sharp creases (their boundary
rings are duplicated so normals do not smooth across the crease). Flat discs
close each part at the bottom and the top.

Output frame and units: the product frame of :mod:`graspsim.assets.catalog`
(origin at the bounding-box centre, +z up, the shelf camera looks along +y at
the -y face), metres. The final mesh is scaled per axis so that its bounds are
exactly ``+-size_m / 2``; the tiny correction is applied to the collision pieces
too.

UVs follow the texture atlas of :mod:`graspsim.assets.textures`: the side of
every part is wrapped cylindrically (u = arc-length fraction around the ring,
starting at the back (+y) and running counter-clockwise seen from above, so
u = 0.5 is the middle of the front face; v = height fraction), the bottom and
top discs map planar into their own atlas boxes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import astuple, dataclass, field

import numpy as np

from graspsim.assets import textures as tx
from graspsim.assets.catalog import ProductClass, get_class, get_variant

CORNER_SAMPLES = 6  # ring points per rounded corner of the visual mesh
MAX_HULL_VERTICES = 64


# --------------------------------------------------------------------------- rings
@dataclass(frozen=True)
class Level:
    """One ring of a loft: height ``z``, half extents ``a`` (x) and ``b`` (y), corner
    radii ``rx``/``ry``, centre offset ``cy`` along y, and ``pinch``: the factor the
    thickness (y) keeps at the x ends (1 = none; pillow bags use < 1). Metres."""

    z: float
    a: float
    b: float
    rx: float
    ry: float
    cy: float = 0.0
    pinch: float = 1.0


def level(z: float, a: float, b: float, corner: float, cy: float = 0.0, pinch: float = 1.0) -> Level:
    """A :class:`Level` whose corner radius is ``corner`` times the smaller half extent
    (``corner >= 1``: a full ellipse)."""
    a, b = max(a, 2e-4), max(b, 2e-4)  # no zero-size rings: normals stay defined
    rx, ry = (a, b) if corner >= 1.0 else (corner * min(a, b),) * 2
    return Level(z, a, b, rx, ry, cy, pinch)


@functools.lru_cache(maxsize=None)
def _ring_template(k: int, m: int) -> np.ndarray:
    """(4, 4k + 4m) coefficients (A1, A2, B1, B2) with ring x = sx*A1 + rx*A2 and
    y = sy*B1 + ry*B2, where sx = a - rx and sy = b - ry are the straight half sides."""
    ts = (np.arange(m) + 0.5) / m  # positions along each straight side
    phis = (np.arange(k) + 0.5) / k * (math.pi / 2)
    one, zero_m, one_m = np.ones(k), np.zeros(m), np.ones(m)
    segs = [  # right side (x = a) going up, then corners and sides counter-clockwise.
        (one_m, one_m, 2 * ts - 1, zero_m),
        (one, np.cos(phis), one, np.sin(phis)),
        (1 - 2 * ts, zero_m, one_m, one_m),
        (-one, np.cos(phis + math.pi / 2), one, np.sin(phis + math.pi / 2)),
        (-one_m, -one_m, 1 - 2 * ts, zero_m),
        (-one, np.cos(phis + math.pi), -one, np.sin(phis + math.pi)),
        (2 * ts - 1, zero_m, -one_m, -one_m),
        (one, np.cos(phis + 1.5 * math.pi), -one, np.sin(phis + 1.5 * math.pi)),
    ]
    t = np.stack([np.concatenate([s_[i] for s_ in segs]) for i in range(4)])
    t = np.roll(t, -(m + k + m // 2), axis=1)  # start at the back midpoint (0, b)
    t.setflags(write=False)
    return t


def rings(levels: list[Level], k: int, m: int) -> np.ndarray:
    """(L, 4k + 4m, 3) ring points of ``levels``: counter-clockwise seen from above,
    starting at the middle of the back (+y) side. Each corner gets ``k`` arc points
    and each straight side ``m`` points (odd ``m`` keeps the side midpoints, so the
    extents are exact)."""
    A1, A2, B1, B2 = _ring_template(k, m)
    v = np.array([(lv.a, lv.b, lv.rx, lv.ry, lv.cy, lv.pinch, lv.z) for lv in levels], dtype=np.float64)
    a, b, cy, pinch, z = v[:, 0:1], v[:, 1:2], v[:, 4:5], v[:, 5:6], v[:, 6:7]
    rx, ry = np.minimum(v[:, 2:3], a), np.minimum(v[:, 3:4], b)
    x = (a - rx) * A1 + rx * A2
    y = (b - ry) * B1 + ry * B2
    # Pillow: thickness falls from full at x = 0 to pinch * b at the x ends.
    tt = np.clip(np.abs(x) / a, 0.0, 1.0)
    y = y * np.where(pinch != 1.0, pinch + (1.0 - pinch) * np.sqrt(1.0 - tt**2), 1.0)
    return np.stack([x, y + cy, np.broadcast_to(z, x.shape)], -1)


# ----------------------------------------------------------------------- structure
@dataclass
class Part:
    """A lofted part: consecutive sections (lists of levels, sharp between sections),
    the collision piece id of each section, and how its side is textured
    (``"wrap"``: cylindrical label; ``"plain"``: a strip of plain body colour)."""

    sections: list[list[Level]]
    pieces: list[int]
    uv: str = "wrap"
    m: int = 1  # straight-side samples of the rings


@dataclass
class Shape:
    """The design of one product before meshing.

    ``zones``: named height ranges as fractions of the product height (0 = bottom),
    used by the texture painter (label, cap, lid, roof, ...).
    """

    parts: list[Part]
    zones: dict[str, tuple[float, float]]


@dataclass
class ProductMesh:
    """A meshed product, product frame, metres.

    * ``vertices`` (N, 3) float64, ``normals`` (N, 3) unit, ``uvs`` (N, 2) in [0, 1];
    * ``indices`` (M*3,) int32 triangles, counter-clockwise seen from outside;
    * ``collision_hulls``: convex pieces, each (K <= 64, 3) float64 hull vertices;
    * ``layout``: what the texture painter needs (see :func:`graspsim.assets.textures.make_texture`).
    """

    vertices: np.ndarray
    indices: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    collision_hulls: tuple[np.ndarray, ...]
    layout: dict = field(default_factory=dict)


# ------------------------------------------------------------------------ families
def _frac_z(parts, name, i, h):
    """Height in metres (0 = bottom) of the lo (i=0) or hi (i=1) z of a part box."""
    return (parts[name][i][2] + 0.5) * h


def _scaled(r, z, s=1.0, corner=1.0, cy=0.0) -> Level:
    """:func:`level` at height ``z`` with the half extents ``r`` (x, y) scaled by ``s``."""
    return level(z, r[0] * s, r[1] * s, corner, cy)


def _box(cls: ProductClass, size) -> Shape:
    w, d, h = size
    a, b, c = w / 2, d / 2, cls.corner
    e = min(0.0015, 0.1 * min(a, b))  # small bevel: edges catch the light
    secs = [
        [level(0, a - e, b - e, c), level(e, a, b, c)],
        [level(e, a, b, c), level(h - e, a, b, c)],
        [level(h - e, a, b, c), level(h, a - e, b - e, c)],
    ]
    return Shape([Part(secs, [0, 0, 0])], {"label": (0.0, 1.0)})


def _carton(cls: ProductClass, size) -> Shape:
    w, d, h = size
    a, b, c, p = w / 2, d / 2, cls.corner, cls.parts
    e = 0.0015
    z_roof, z_fin = _frac_z(p, "roof", 0, h), _frac_z(p, "fin", 0, h)
    a_fin = p["fin"][1][0] * w
    secs = [
        [level(0, a - e, b - e, c), level(e, a, b, c)],
        [level(e, a, b, c), level(z_roof, a, b, c)],
        [level(z_roof, a, b, c), level(z_fin, a_fin, b, c)],
        [level(z_fin, a_fin, b, c), level(h, a_fin, b, c)],
    ]
    zones = {"label": (0.0, z_roof / h), "roof": (z_roof / h, z_fin / h), "fin": (z_fin / h, 1.0)}
    return Shape([Part(secs, [0] * 4)], zones)


def _can(cls: ProductClass, size) -> Shape:
    w, d, h = size
    a, p = w / 2, cls.parts
    lid_h = h - _frac_z(p, "top", 0, h)
    lid_r = p["top"][1][0] * w / a  # lid radius relative to the body radius
    base_h = min(0.008, lid_h)
    recess = min(0.0025, 0.3 * lid_h)
    L = functools.partial(_scaled, (a, a))
    body = [L(base_h, 1.0)]
    if cls.name == "soup_can":  # soup cans have rolled beads around the body
        z0, z1 = base_h + 0.01, h - lid_h - 0.01
        for zc in np.linspace(z0, z1, 5):
            body += [L(zc - 0.002, 1.0), L(zc, 0.982), L(zc + 0.002, 1.0)]
    body.append(L(h - lid_h, 1.0))
    secs = [
        [L(0, lid_r - 0.04), L(base_h * 0.4, lid_r + 0.03), L(base_h, 1.0)],
        body,
        [L(h - lid_h, 1.0), L(h - 0.65 * lid_h, 0.985), L(h - 0.3 * lid_h, lid_r + 0.01),
         L(h - 0.1 * lid_h, lid_r), L(h, lid_r - 0.005)],
        [L(h, lid_r - 0.005), L(h, lid_r - 0.06)],  # flat rim annulus
        [L(h, lid_r - 0.06), L(h - recess, lid_r - 0.06)],  # recessed lid panel
    ]
    zones = {"base": (0.0, base_h / h), "label": (base_h / h, 1 - lid_h / h), "lid": (1 - lid_h / h, 1.0)}
    return Shape([Part(secs, [0] * 5)], zones)


def _tube(cls: ProductClass, size) -> Shape:
    w, d, h = size
    a, p = w / 2, cls.parts
    rb = p["body"][1][0] * w / a  # the body is a little narrower than the lid
    z_cap = _frac_z(p, "cap", 0, h)
    L = functools.partial(_scaled, (a, a))
    secs = [
        [L(0, rb * 0.94), L(0.003, rb)],
        [L(0.003, rb), L(z_cap, rb)],
        [L(z_cap, rb), L(z_cap + 0.001, 1.0), L(h - 0.002, 1.0), L(h, 0.96)],
    ]
    zones = {"label": (0.003 / h, z_cap / h), "cap": (z_cap / h, 1.0)}
    return Shape([Part(secs, [0, 0, 0])], zones)


def _cup(cls: ProductClass, size, bottom_scale: float, rim_h: float) -> Shape:
    w, d, h = size
    a, b, c = w / 2, d / 2, cls.corner
    L = functools.partial(_scaled, (a, b), corner=c)
    wall_top = 0.965 if cls.family == "cup" else 0.95
    secs = [
        [L(0, bottom_scale - 0.02), L(0.003, bottom_scale)],
        [L(0.003, bottom_scale), L(h - rim_h, wall_top)],
        [L(h - rim_h, wall_top), L(h - rim_h * 0.8, 1.0), L(h, 1.0)],
    ]
    zones = {"label": (0.003 / h, 1 - rim_h / h), "rim": (1 - rim_h / h, 1.0)}
    return Shape([Part(secs, [0, 0, 0])], zones)


def _bag(cls: ProductClass, size) -> Shape:
    w, d, h = size
    a, b, c = w / 2, d / 2, cls.corner
    pinch = 0.35
    z_seal = _frac_z(cls.parts, "seal", 0, h)
    seal_b = 0.001
    t_mid, t_seal = 0.35, z_seal / h
    lv = [level(t * h, a * sa, b * sb, c, 0.0, pinch)
          for t, sa, sb in [(0.0, 0.93, 0.78), (0.02, 0.955, 0.88), (0.06, 0.97, 0.95), (0.14, 0.975, 0.99)]]
    for t in np.linspace(t_mid - 0.1, t_seal, 9):
        u = max(0.0, (t - t_mid) / (t_seal - t_mid))
        sb = max(seal_b / b, math.cos(0.5 * math.pi * u) ** 0.6)
        sa = 0.975 + 0.025 * u**2
        lv.append(level(t * h, a * sa, b * sb, c, 0.0, pinch))
    seal = [level(z_seal, a, seal_b, c, 0.0, pinch), level(h, a, seal_b, c, 0.0, pinch)]
    zones = {"label": (0.0, t_seal), "seal": (t_seal, 1.0)}
    return Shape([Part([lv, seal], [0, 0], m=7)], zones)


def _dome(z0, z1, lo: tuple, hi: tuple, n: int = 7):
    """Levels of a shoulder from ring ``lo`` (a, b, corner, cy) to ring ``hi``: the
    radius follows cos(pi t / 2), smooth on the body side, conical into the neck."""
    out = []
    for t in np.linspace(0.0, 1.0, n):
        g = math.cos(0.5 * math.pi * t)
        a, b, c, cy = (hv + (lv_ - hv) * g for lv_, hv in zip(lo, hi))
        out.append(level(z0 + t * (z1 - z0), a, b, c, cy))
    return out


def _bottle_top(p, w, d, h, neck_cy: float, shoulder: list[Level]):
    """Sections above the body: shoulder, neck with a support ring, cap. Neck and cap
    take their half extents from the part boxes (x from the width, y from the depth,
    so the round cap of an oval bottle stays round up to the variant's jitter)."""
    z_neck, z_cap = _frac_z(p, "neck", 0, h), _frac_z(p, "cap", 0, h)
    cr = _half_xy(p["cap"], w, d)
    nr = _half_xy(p["neck"], w, d)
    flange = tuple(min(c, 1.12 * n) for c, n in zip(cr, nr))
    zf = z_neck + 0.35 * (z_cap - z_neck)
    ft = min(0.0015, 0.3 * (z_cap - z_neck))
    R = functools.partial(_scaled, cy=neck_cy)
    return [
        shoulder,
        [R(nr, z_neck), R(nr, zf)],
        [R(nr, zf), R(flange, zf), R(flange, zf + ft), R(nr, zf + ft)],
        [R(nr, zf + ft), R(nr, z_cap)],
        [R(cr, z_cap, 0.97), R(cr, z_cap + 0.001), R(cr, h - 0.0015), R(cr, h, 0.93)],
    ]


def _half_xy(box, w, d) -> tuple[float, float]:
    """Half extents (x, y) in metres of a part box centred on its own axis."""
    (x0, y0, _), (x1, y1, _) = box
    return (x1 - x0) / 2 * w, (y1 - y0) / 2 * d


def _bottle(cls: ProductClass, size) -> Shape:
    w, d, h = size
    a, b, c, p = w / 2, d / 2, cls.corner, cls.parts
    z_sh, z_neck, z_cap = _frac_z(p, "body", 1, h), _frac_z(p, "neck", 0, h), _frac_z(p, "cap", 0, h)
    nx, ny = _half_xy(p["neck"], w, d)
    L = functools.partial(_scaled, (a, b), corner=c)
    body = [L(0.008)]
    if cls.name == "water_bottle":  # grip rings on the lower body
        for zc in np.linspace(0.3 * z_sh, 0.8 * z_sh, 4):
            body += [L(zc - 0.004), L(zc, 0.95), L(zc + 0.004)]
    body.append(L(z_sh))
    secs = [
        [L(0, 0.9), L(0.004, 0.97), L(0.008)],
        body,
    ] + _bottle_top(p, w, d, h, 0.0, _dome(z_sh, z_neck, (a, b, c, 0.0), (nx, ny, 1.0, 0.0)))
    return Shape([Part(secs, [0, 0, 1, 1, 1, 1, 2])], _bottle_zones(0.008, z_sh, z_neck, z_cap, h))


def _bottle_zones(base_h, z_sh, z_neck, z_cap, h) -> dict[str, tuple[float, float]]:
    """Texture zones of a bottle (heights in metres above the bottom, product height ``h``)."""
    return {"base": (0.0, base_h / h), "label": (base_h / h, z_sh / h), "shoulder": (z_sh / h, z_neck / h),
            "neck": (z_neck / h, z_cap / h), "cap": (z_cap / h, 1.0)}


def _jar(cls: ProductClass, size) -> Shape:
    w, d, h = size
    a, p = w / 2, cls.parts
    z_neck, z_lid = _frac_z(p, "neck", 0, h), _frac_z(p, "cap", 0, h)
    nr, lr = _half_xy(p["neck"], w, d), _half_xy(p["cap"], w, d)
    z_sh = z_neck - 0.012
    R, body = _scaled, (a, d / 2)
    secs = [
        [R(body, 0, 0.9), R(body, 0.004, 0.97), R(body, 0.007)],
        [R(body, 0.007), R(body, z_sh)],
        _dome(z_sh, z_neck, (body[0], body[1], 1.0, 0.0), (nr[0], nr[1], 1.0, 0.0), 5),
        [R(nr, z_neck), R(nr, z_lid)],
        [R(lr, z_lid, 0.97), R(lr, z_lid + 0.001), R(lr, h - 0.0015), R(lr, h, 0.95)],
    ]
    zones = {"label": (0.007 / h, z_sh / h), "shoulder": (z_sh / h, z_neck / h), "neck": (z_neck / h, z_lid / h),
             "cap": (z_lid / h, 1.0)}
    return Shape([Part(secs, [0, 0, 0, 0, 1])], zones)


def _handle_bottle(cls: ProductClass, size) -> Shape:
    w, d, h = size
    a, c, p = w / 2, cls.corner, cls.parts
    (_, y0, _), (_, y1, zb1) = p["body"]
    bb, bcy = (y1 - y0) / 2 * d, (y0 + y1) / 2 * d  # body half depth and centre (y)
    z_sh, z_neck = (zb1 + 0.5) * h, _frac_z(p, "neck", 0, h)
    nx, ny = _half_xy(p["neck"], w, d)
    ncy = (p["cap"][0][1] + p["cap"][1][1]) / 2 * d
    secs = [
        [level(0, a * 0.92, bb * 0.94, c, bcy), level(0.006, a, bb, c, bcy)],
        [level(0.006, a, bb, c, bcy), level(z_sh, a, bb, c, bcy)],
    ] + _bottle_top(p, w, d, h, ncy, _dome(z_sh, z_neck, (a, bb, c, bcy), (nx, ny, 1.0, ncy)))
    body = Part(secs, [0, 0, 1, 1, 1, 1, 2])
    # The handle: two connectors into the body and a vertical grip bar at the back.
    (hx0, hy0, hz0), (hx1, hy1, hz1) = p["handle"]
    ha = hx1 * w
    bar = 0.12 * d  # thickness of the grip and connectors (y)
    conn = 0.07 * h
    zlo, zhi = (hz0 + 0.5) * h, (hz1 + 0.5) * h
    yb0, yb1 = hy0 * d, hy1 * d

    def prism(y0_, y1_, z0_, z1_):
        cy_, hb = (y0_ + y1_) / 2, (y1_ - y0_) / 2
        return Part([[level(z0_, ha, hb, 0.5, cy_), level(z1_, ha, hb, 0.5, cy_)]], [3], uv="plain")

    handle = [
        prism(yb0, yb1, zhi - conn, zhi),
        prism(yb1 - bar, yb1, zlo, zhi),
        prism(yb0, yb1, zlo, zlo + conn),
    ]
    return Shape([body] + handle, _bottle_zones(0.006, z_sh, z_neck, _frac_z(p, "cap", 0, h), h))


_BUILDERS = {
    "box": _box, "carton": _carton, "cylinder": _can, "tube": _tube, "bag": _bag, "bottle": _bottle, "jar": _jar,
    "handle_bottle": _handle_bottle,
    "cup": functools.partial(_cup, bottom_scale=0.76, rim_h=0.005),
    "bowl": functools.partial(_cup, bottom_scale=0.84, rim_h=0.004),
}


def design(class_name: str, size) -> Shape:
    """The lofted design of class ``class_name`` at ``size`` (x, y, z metres)."""
    cls = get_class(class_name)
    if cls.family not in _BUILDERS:
        raise ValueError(f"no mesh builder for family {cls.family!r}")
    return _BUILDERS[cls.family](cls, tuple(float(s) for s in size))


# -------------------------------------------------------------------------- meshing
def _ring_segments(lv: Level, m: int) -> np.ndarray:
    """(N,) edge lengths (metres) around a reference ring, from the back; the last closes the ring."""
    p = rings([lv], CORNER_SAMPLES, m)[0, :, :2]
    return np.linalg.norm(np.diff(np.vstack([p, p[:1]]), axis=0), axis=1)


def _ring_u(lv: Level, m: int) -> np.ndarray:
    """(N+1,) arc-length fraction around a reference ring, 0 at the back, 1 at the seam copy."""
    seg = _ring_segments(lv, m)
    return np.concatenate([[0.0], np.cumsum(seg)]) / seg.sum()


def _disc_extent(shape: Shape, scale: np.ndarray, which: str) -> tuple[float, float]:
    """(x, y) full extents in metres of the first part's top or bottom disc (what that
    atlas box covers)."""
    lv = shape.parts[0].sections[-1][-1] if which == "top" else shape.parts[0].sections[0][0]
    return float(2 * lv.a * scale[0]), float(2 * lv.b * scale[1])


def _grid_normals(g: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals of a closed-around (L, N, 3) ring grid."""
    lo, hi = g[:-1], g[1:]
    lo1, hi1 = np.roll(lo, -1, axis=1), np.roll(hi, -1, axis=1)
    n1 = np.cross(lo1 - lo, hi1 - lo)  # triangle (lo, lo1, hi1)
    n2 = np.cross(hi1 - lo, hi - lo)  # triangle (lo, hi1, hi)
    acc = np.zeros_like(g)
    # Each triangle adds its (area-weighted) normal to its three corners.
    acc[:-1] += n1 + n2
    acc[:-1] += np.roll(n1, 1, axis=1)
    acc[1:] += np.roll(n1 + n2, 1, axis=1)
    acc[1:] += n2
    return acc


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > 1e-12, v / np.where(n > 1e-12, n, 1.0), fallback)


def _hull_vertices(points: np.ndarray) -> np.ndarray:
    from scipy.spatial import ConvexHull  # imported on use: costs 0.3 s per worker start-up

    hull = ConvexHull(points)
    return points[np.sort(hull.vertices)]


def _support_subset(verts: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` of ``verts``: the extreme points along the six axis directions
    (so the bounds are kept exactly) and along as many evenly spread directions
    (Fibonacci sphere) as fit; a good inner approximation of the hull."""
    axes = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    best = np.unique(np.argmax(verts @ axes.T, axis=0))
    for n in range(4, 8 * limit, 2):
        i = np.arange(n) + 0.5
        zc = 1 - 2 * i / n
        ang = math.pi * (1 + 5**0.5) * i
        rr = np.sqrt(1 - zc**2)
        dirs = np.concatenate([axes, np.column_stack([rr * np.cos(ang), rr * np.sin(ang), zc])])
        idx = np.unique(np.argmax(verts @ dirs.T, axis=0))
        if len(idx) > limit:
            break
        best = idx
    return verts[best]


def _piece_hull(levels: list[Level], m: int) -> np.ndarray:
    """Convex hull vertices (<= 64) of a piece's levels, built from coarse rings.

    The finest rings are used when their hull fits; otherwise a few coarser ring
    resolutions are tried, each reduced to 64 support points if needed. All are
    inscribed in the visual surface, so the largest volume is the closest fit."""
    from scipy.spatial import ConvexHull  # imported on use (see _hull_vertices)

    best, best_vol = None, -1.0
    # Finest first; rings with sampled straight sides (pillow bags) keep some side points.
    candidates = ((3, 1), (2, 1), (1, 1)) if m == 1 else ((2, 3), (1, 3), (2, 1))
    for k, mc in candidates:
        pts = rings(levels, k, mc).reshape(-1, 3)
        verts = _hull_vertices(np.unique(np.round(pts, 12), axis=0))
        if len(verts) <= MAX_HULL_VERTICES and best is None:
            return verts  # the finest candidate fits as it is
        if len(verts) > MAX_HULL_VERTICES:
            # A subset of hull vertices is still in convex position.
            verts = _hull_vertices(_support_subset(verts, MAX_HULL_VERTICES))
        vol = ConvexHull(verts).volume
        if vol > best_vol + 1e-12:
            best, best_vol = verts, vol
    return best


def _close_steps(shape: Shape) -> Shape:
    """Insert a flat annulus wherever one section does not start on the ring the previous
    one ended on (neck -> wider cap), so the mesh stays closed."""
    parts = []
    for part in shape.parts:
        secs, pieces = [part.sections[0]], [part.pieces[0]]
        for sec, pid in zip(part.sections[1:], part.pieces[1:]):
            prev = secs[-1][-1]
            if np.allclose(np.array(astuple(prev)), np.array(astuple(sec[0])), rtol=0, atol=1e-9):
                sec = [prev] + sec[1:]  # the same ring up to round-off: share it exactly
            else:
                secs.append([prev, sec[0]])
                pieces.append(pid)
            secs.append(sec)
            pieces.append(pid)
        parts.append(Part(secs, pieces, part.uv, part.m))
    return Shape(parts, shape.zones)


def _widest_level(part: Part) -> Level:
    """The widest ring of a part (its label area): the reference for u and the face layout."""
    return max((lv for sec in part.sections for lv in sec), key=lambda lv: lv.a + lv.b)


def _side_piece(gs: np.ndarray, u_ring: np.ndarray, height: float):
    """``(vertices, normals, uvs, triangles)`` of one section's side.

    ``gs`` (L, N, 3): the section's rings, product frame, metres; ``u_ring``
    (N + 1,): u of each ring point and of the seam copy; ``height``: product
    height (v is the height fraction inside the atlas's side strip). The ring's
    first point is duplicated at u = 1 so the texture wraps without a seam.
    """
    L, N, _ = gs.shape
    nrm = _unit(_grid_normals(gs), np.array([0.0, 0.0, 1.0]))
    gs = np.concatenate([gs, gs[:, :1]], axis=1)  # seam copy (u = 1)
    nrm = np.concatenate([nrm, nrm[:, :1]], axis=1)
    su0, su1 = tx.SIDE_UV_V
    zf = np.clip(gs[..., 2] / height + 0.5, 0.0, 1.0)
    uv = np.stack([np.broadcast_to(u_ring, (L, N + 1)), su0 + (su1 - su0) * zf], -1)
    r = np.arange(L - 1)[:, None] * (N + 1)
    j = np.arange(N)[None, :]
    a_, b_, c_, d_ = r + j, r + j + 1, r + (N + 1) + j + 1, r + (N + 1) + j
    t = np.concatenate([np.stack([a_, b_, c_], -1).reshape(-1, 3), np.stack([a_, c_, d_], -1).reshape(-1, 3)])
    return gs.reshape(-1, 3), nrm.reshape(-1, 3), uv.reshape(-1, 2), t


def _disc_piece(lv: Level, which: str, part: Part, tf):
    """``(vertices, normals, uvs, triangles)`` of the flat ``"bottom"`` or ``"top"`` disc closing ring ``lv``.

    A fan from the ring centre, facing -z or +z; ``tf`` maps design points to the
    product frame. Wrapped parts map the disc planar into its atlas box, plain
    parts (handles) onto the plain strip.
    """
    rp = tf(rings([lv], CORNER_SAMPLES, part.m)[0])
    cen = tf(np.array([[0.0, lv.cy, lv.z]]))
    v = np.concatenate([cen, rp])
    N = len(rp)
    n = np.tile([0.0, 0.0, 1.0 if which == "top" else -1.0], (N + 1, 1))
    if part.uv == "plain":
        su0, su1 = tx.SIDE_UV_V
        uv = np.column_stack([np.full(N + 1, np.mean(tx.PLAIN_U)), np.full(N + 1, (su0 + su1) / 2)])
    else:
        box = tx.TOP_CAP_UV if which == "top" else tx.BOTTOM_CAP_UV
        rel = (v[:, :2] - cen[0, :2]) / np.maximum(np.abs(rp[:, :2] - cen[0, :2]).max(0), 1e-9)
        uv = np.column_stack([
            box[0] + (box[2] - box[0]) * (0.5 + 0.5 * rel[:, 0]),
            box[1] + (box[3] - box[1]) * (0.5 + 0.5 * rel[:, 1]),
        ])
    j = np.arange(N)
    t = np.stack([np.zeros(N, int), 1 + j, 1 + (j + 1) % N], -1)
    # counter-clockwise seen from outside: above for the top, below for the bottom
    return v, n, uv, (t if which == "top" else t[:, [0, 2, 1]])


def _part_pieces(part: Part, grids: list[np.ndarray], tf, height: float) -> list[tuple]:
    """The side of every section (``grids``: their (L, N, 3) rings, design frame) and both discs of a part."""
    u_ring = _ring_u(_widest_level(part), part.m)
    if part.uv == "plain":  # squeeze into the plain back strip of the atlas
        u_ring = tx.PLAIN_U[0] + u_ring * (tx.PLAIN_U[1] - tx.PLAIN_U[0])
    pieces = [_side_piece(tf(g), u_ring, height) for g in grids]
    pieces.append(_disc_piece(part.sections[0][0], "bottom", part, tf))
    pieces.append(_disc_piece(part.sections[-1][-1], "top", part, tf))
    return pieces


def _collision_hulls(shape: Shape, tf, size: np.ndarray) -> tuple[np.ndarray, ...]:
    """One convex hull (K <= 64, 3) per collision piece id, product frame, inside ``+-size / 2``."""
    hulls = []
    for pid in sorted({p for part in shape.parts for p in part.pieces}):
        lvls = [lv for part in shape.parts for sec, p in zip(part.sections, part.pieces) if p == pid for lv in sec]
        m = max(part.m for part in shape.parts if pid in part.pieces)
        hv = tf(_piece_hull(lvls, m))
        hulls.append(np.ascontiguousarray(np.clip(hv, -size / 2, size / 2)))
    return tuple(hulls)


def _texture_layout(shape: Shape, scale: np.ndarray, size: np.ndarray) -> dict:
    """What :func:`graspsim.assets.textures.make_texture` needs to paint the atlas (see :class:`ProductMesh`)."""
    ref, m = _widest_level(shape.parts[0]), shape.parts[0].m
    return dict(
        zones=shape.zones,
        faces_u=face_u(ref, m),
        perimeter_m=float(float(_ring_segments(ref, m).sum()) * np.mean(scale[:2])),
        size_m=tuple(float(s) for s in size),
        top_extent_m=_disc_extent(shape, scale, "top"),
        bottom_extent_m=_disc_extent(shape, scale, "bottom"),
    )


def mesh_shape(shape: Shape, size) -> ProductMesh:
    """Triangulate a :class:`Shape` and scale it to bounds exactly ``+-size / 2`` (metres, product frame)."""
    size = np.asarray(size, dtype=np.float64)
    shape = _close_steps(shape)
    grids = [[rings(sec, CORNER_SAMPLES, part.m) for sec in part.sections] for part in shape.parts]
    allp = np.concatenate([g.reshape(-1, 3) for part_grids in grids for g in part_grids])
    lo, hi = allp.min(0), allp.max(0)
    centre, scale = (lo + hi) / 2, size / (hi - lo)

    def tf(p):  # design frame -> product frame
        return (p - centre) * scale

    # (vertices, normals, uvs, triangles) per piece, triangles indexing their own piece's vertices
    pieces = [p for part, part_grids in zip(shape.parts, grids) for p in _part_pieces(part, part_grids, tf, size[2])]
    verts, norms, uvs, tris = zip(*pieces)
    offsets = np.cumsum([0] + [len(v) for v in verts])
    # Snap the extremes: bounds exactly +-size/2 despite floating-point round-off.
    vertices = np.clip(np.concatenate(verts), -size / 2, size / 2)
    return ProductMesh(
        vertices=np.ascontiguousarray(vertices),
        indices=np.concatenate([t + int(o) for t, o in zip(tris, offsets)]).astype(np.int32).reshape(-1),
        normals=np.ascontiguousarray(np.concatenate(norms)),
        uvs=np.ascontiguousarray(np.clip(np.concatenate(uvs), 0.0, 1.0)),
        collision_hulls=_collision_hulls(shape, tf, size),
        layout=_texture_layout(shape, scale, size),
    )


def face_u(lv: Level, m: int) -> dict[str, tuple[float, float]]:
    """u ranges (lo, hi) of the four faces of a ring: front (-y) is centred at 0.5, back
    at 0 (its range wraps), left (-x) and right (+x) in between. For round rings each
    "face" is a quarter turn."""
    a, b, rx, ry = lv.a, lv.b, min(lv.rx, lv.a), min(lv.ry, lv.b)
    # Ramanujan's ellipse perimeter for the four corner quarter arcs together.
    arcs = math.pi * (3 * (rx + ry) - math.sqrt((3 * rx + ry) * (rx + 3 * ry)))
    sx, sy = 2 * (a - rx), 2 * (b - ry)
    per = 2 * sx + 2 * sy + arcs
    front = (sx + arcs / 4) / per  # the straight side plus half a corner each side
    side = (sy + arcs / 4) / per
    u_left = (sx / 2 + arcs / 4 + sy / 2) / per
    return {
        "front": (0.5 - front / 2, 0.5 + front / 2),
        "left": (u_left - side / 2, u_left + side / 2),
        "right": (1 - u_left - side / 2, 1 - u_left + side / 2),
        "back": (1 - front / 2, front / 2),
    }


def build_mesh(class_name: str, variant: int) -> ProductMesh:
    """Mesh of a catalog variant (its jittered size), product frame, metres."""
    size = get_variant(class_name, variant).size_m
    return mesh_shape(design(class_name, size), size)
