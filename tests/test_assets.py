"""Tests of the product catalog and the procedural assets (graspsim.assets)."""

from __future__ import annotations

import itertools
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from scipy.spatial import ConvexHull

from graspsim.assets import catalog, library
from graspsim.assets import (
    CATALOG,
    cache_dir,
    class_index,
    class_names,
    get_class,
    get_variant,
    load_product_asset,
    variants,
)

EXPECTED_NAMES = [
    "soda_can", "water_bottle", "juice_carton", "milk_carton", "cereal_box", "chips_bag", "candy_bar",
    "cup_noodle", "yogurt_cup", "canned_coffee", "energy_drink", "shampoo_bottle", "toothpaste_box",
    "tissue_box", "chocolate_box", "soup_can", "ketchup_bottle", "instant_rice_bowl", "tea_bottle", "gum_pack",
    "cookie_box", "sauce_jar", "detergent_bottle", "snack_tube",
]
ALL = [(n, v) for n in EXPECTED_NAMES for v in range(5)]
CONVEX_FAMILIES = {"box", "carton", "cylinder", "cup", "bowl", "tube", "bag"}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Every variant's asset, generated into a fresh cache directory."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRASPSIM_CACHE", str(root))
        library.clear_memory_cache()
        out = {key: load_product_asset(*key) for key in ALL}
        yield out
    library.clear_memory_cache()


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRASPSIM_CACHE", str(tmp_path))
    library.clear_memory_cache()
    yield tmp_path
    library.clear_memory_cache()


# ------------------------------------------------------------------------- catalog
def test_catalog_names_indices_and_lookup():
    assert class_names() == EXPECTED_NAMES
    assert [c.index for c in CATALOG] == list(range(len(CATALOG)))
    assert len({c.display_name for c in CATALOG}) == len(CATALOG)
    assert get_class("soda_can").display_name == "soda can"
    assert class_index("snack_tube") == 23
    with pytest.raises(KeyError, match="valid names: soda_can, water_bottle"):
        get_class("banana")
    with pytest.raises(KeyError, match="valid variants"):
        get_variant("soda_can", 7)
    with pytest.raises(ValueError):
        variants("soda_can", "train")


def test_known_answers():
    soda = get_class("soda_can")
    assert soda.family == "cylinder" and soda.size_m == (0.066, 0.066, 0.122) and soda.mass_kg == 0.38
    assert get_class("cereal_box").size_m == (0.05, 0.14, 0.2)
    assert get_class("chips_bag").tabletop_poses == ("upright",)
    assert get_class("water_bottle").tabletop_poses == ("upright", "lying")
    v = get_variant("soda_can", 0)
    assert v.split == "seen" and v.dominant_rgb == soda.palette[0]
    assert get_variant("soda_can", 3).split == "unseen"


def test_classes_are_well_formed():
    for c in CATALOG:
        assert c.family in catalog.FAMILIES
        assert set(c.tabletop_poses) <= set(catalog.POSES) and "upright" in c.tabletop_poses
        if c.family in ("bag", "cup", "bowl"):
            assert "lying" not in c.tabletop_poses, c.name
        if c.family == "box":
            assert c.size_m[0] <= c.size_m[1], f"{c.name}: boxes stand spine out (x narrow)"
        assert c.variants_seen == (0, 1, 2) and c.variants_unseen == (3, 4)
        assert not set(c.variants_seen) & set(c.variants_unseen)
        assert len(c.palette) >= 3
        for key in ("body", "top", "side", "bottom"):
            assert key in c.parts, (c.name, key)
        if c.family in ("bottle", "jar", "handle_bottle"):
            assert "cap" in c.parts, c.name
        for lo, hi in c.parts.values():
            assert np.all(np.asarray(lo) >= -0.5) and np.all(np.asarray(hi) <= 0.5)
            assert np.all(np.asarray(lo) <= np.asarray(hi))
    # Palettes differ across classes (main colours, or the secondary where the main is shared).
    pals = [c.palette[:2] for c in CATALOG]
    assert len(set(pals)) == len(pals)


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_variants_meet_hard_constraints(name):
    cls = get_class(name)
    vs = variants(name, "all")
    assert [v.variant for v in vs] == [0, 1, 2, 3, 4]
    assert [v.variant for v in variants(name, "seen")] == [0, 1, 2]
    assert [v.variant for v in variants(name, "unseen")] == [3, 4]
    colours = set()
    for v in vs:
        w, d, h = v.size_m
        assert 0.02 <= w <= 0.072 and d <= 0.20 and 0.04 <= h <= 0.22, (name, v)
        assert 0.03 <= v.mass_kg <= 0.6
        assert np.allclose(v.size_m, cls.size_m, rtol=0.03)  # jitter of a few percent
        if cls.family in ("cylinder", "cup", "tube", "jar"):
            assert w == d
        colours.add(v.dominant_rgb)
    assert len(colours) >= 4, "flavours should differ in colour"


# -------------------------------------------------------------------------- meshes
def test_mesh_arrays(assets):
    for (name, v), a in assets.items():
        size = np.asarray(get_variant(name, v).size_m)
        np.testing.assert_allclose(a.size_m, size)
        V, I, N, UV = a.vertices, a.indices, a.normals, a.uvs
        assert V.dtype == np.float64 and V.shape[1] == 3 and len(V) <= 2000
        assert I.dtype == np.int32 and I.ndim == 1 and len(I) % 3 == 0
        assert I.min() >= 0 and I.max() < len(V)
        np.testing.assert_allclose(V.min(0), -size / 2, atol=1e-6)
        np.testing.assert_allclose(V.max(0), size / 2, atol=1e-6)
        assert N.shape == V.shape and np.allclose(np.linalg.norm(N, axis=1), 1.0, atol=1e-6)
        assert UV.shape == (len(V), 2) and UV.min() >= 0.0 and UV.max() <= 1.0
        for key, (lo, hi) in a.parts.items():
            lo_f, hi_f = get_class(name).parts[key]
            np.testing.assert_allclose(lo, np.asarray(lo_f) * size)
            np.testing.assert_allclose(hi, np.asarray(hi_f) * size)


def test_meshes_are_closed_outward_and_dense_enough(assets):
    for name in EXPECTED_NAMES:
        a = assets[(name, 0)]
        m = trimesh.Trimesh(a.vertices, a.indices.reshape(-1, 3), process=False)
        m.merge_vertices(merge_tex=True, merge_norm=True)
        assert m.is_watertight, name
        assert m.volume > 0, f"{name}: faces must wind counter-clockwise seen from outside"
        # Plausible density for the nominal mass (crisps ~ 0.2 kg/l .. sauces ~ 1 kg/l).
        density = get_variant(name, 0).mass_kg / m.volume
        assert 100 < density < 1500, (name, density)
        # Vertex normals agree with the faces around them.
        fn = m.face_normals
        vn = a.normals[a.indices.reshape(-1, 3)[:, 0]]
        area = m.area_faces > 1e-10
        assert np.mean(np.sum(fn[area] * vn[area], axis=1) > 0.0) > 0.97, name


def test_bottle_caps_inside_their_part_box(assets):
    for name in EXPECTED_NAMES:
        cls = get_class(name)
        if "cap" not in cls.parts:
            continue
        a = assets[(name, 0)]
        lo, hi = a.parts["cap"]
        sel = a.vertices[:, 2] > lo[2] + 1e-4
        assert sel.any()
        pts = a.vertices[sel]
        assert np.all(pts[:, :2] >= lo[:2] - 1e-6) and np.all(pts[:, :2] <= hi[:2] + 1e-6), name


# ----------------------------------------------------------------------- collision
def test_collision_hulls_convex_and_covering(assets):
    for (name, v), a in assets.items():
        cls = get_class(name)
        size = a.size_m
        hulls = a.collision_hulls
        if cls.family in CONVEX_FAMILIES:
            assert len(hulls) == 1, name
        else:
            assert len(hulls) >= 2, name
        for h in hulls:
            assert h.dtype == np.float64 and h.ndim == 2 and h.shape[1] == 3 and 4 <= len(h) <= 64
            # Convex: every point is a vertex of its own hull, and trimesh agrees on the volume.
            assert len(ConvexHull(h).vertices) == len(h), name
            vol = trimesh.convex.convex_hull(h).volume
            assert abs(vol - ConvexHull(h).volume) <= 0.01 * vol
        allp = np.concatenate(hulls)
        np.testing.assert_allclose(allp.min(0), -size / 2, atol=0.003)
        np.testing.assert_allclose(allp.max(0), size / 2, atol=0.003)
        if v == 0:
            # The pieces together match the visual volume (within 10 %).
            m = trimesh.Trimesh(a.vertices, a.indices.reshape(-1, 3), process=False)
            m.merge_vertices(merge_tex=True, merge_norm=True)
            hv = sum(ConvexHull(h).volume for h in hulls)
            assert abs(hv - m.volume) < 0.1 * m.volume, (name, hv, m.volume)


# ------------------------------------------------------------------------ textures
def test_textures(assets):
    for (name, v), a in assets.items():
        t = a.texture
        assert t.shape == (256, 256, 3) and t.dtype == np.uint8
        # The dominant colour really dominates the side wrap (shading allowed).
        side = t[96:].reshape(-1, 3).astype(float)
        near = np.linalg.norm(side - np.asarray(get_variant(name, v).dominant_rgb), axis=1) < 25
        assert near.mean() > 0.15, (name, v, near.mean())


def test_textures_of_classes_differ(assets):
    tex = {n: assets[(n, 0)].texture.astype(float) for n in EXPECTED_NAMES}
    for a, b in itertools.combinations(EXPECTED_NAMES, 2):
        assert np.abs(tex[a] - tex[b]).mean() > 25, (a, b)
    # Look-alike cans differ in colour, not only in size.
    cans = [n for n in EXPECTED_NAMES if get_class(n).family == "cylinder"]
    for a, b in itertools.combinations(cans, 2):
        ma, mb = tex[a][96:].reshape(-1, 3).mean(0), tex[b][96:].reshape(-1, 3).mean(0)
        assert np.linalg.norm(ma - mb) > 30, (a, b)
        assert get_class(a).size_m != get_class(b).size_m


def test_flavours_differ_within_class(assets):
    for name in EXPECTED_NAMES:
        t = [assets[(name, v)].texture.astype(float) for v in range(5)]
        for i, j in itertools.combinations(range(5), 2):
            assert np.abs(t[i] - t[j]).mean() > 5, (name, i, j)


# ---------------------------------------------------------------- cache, determinism
def test_generation_is_deterministic_and_cached(tmp_cache, monkeypatch):
    import cv2

    for name, v in [("water_bottle", 3), ("chips_bag", 0), ("detergent_bottle", 1), ("milk_carton", 4)]:
        a1 = load_product_asset(name, v)
        assert load_product_asset(name, v) is a1  # in-memory cache
        assert a1.texture_path.startswith(str(tmp_cache))
        library.clear_memory_cache()
        a2 = load_product_asset(name, v)  # from disk
        assert a2 is not a1
        fresh = library.generate_arrays(name, v)  # regenerated from scratch
        for key in ("vertices", "indices", "normals", "uvs", "texture"):
            assert np.array_equal(getattr(a1, key), getattr(a2, key)), key
            assert np.array_equal(getattr(a1, key), fresh[key]), key
        for i, h in enumerate(a1.collision_hulls):
            assert np.array_equal(h, a2.collision_hulls[i]) and np.array_equal(h, fresh[f"hull_{i}"])
        png = cv2.cvtColor(cv2.imread(a1.texture_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(png, fresh["texture"])
        with pytest.raises(ValueError):
            a1.vertices[0, 0] = 1.0  # shared arrays are read-only
    folder = cache_dir() / "assets" / "v1"
    assert sorted(p.name for p in folder.iterdir() if "tmp" in p.name) == []
    assert (folder / "chips_bag_0.npz").exists() and (folder / "chips_bag_0.png").exists()
    # A second, independent cache holds byte-identical texture files.
    first = load_product_asset("chips_bag", 0).texture_path
    monkeypatch.setenv("GRASPSIM_CACHE", str(tmp_cache / "second"))
    second = load_product_asset("chips_bag", 0).texture_path
    assert first != second
    assert pathlib.Path(first).read_bytes() == pathlib.Path(second).read_bytes()


def test_stale_or_broken_cache_is_regenerated(tmp_cache):
    a = load_product_asset("soda_can", 0)
    folder = cache_dir() / "assets" / "v1"
    npz, png = folder / "soda_can_0.npz", folder / "soda_can_0.png"
    library.clear_memory_cache()
    npz.write_bytes(npz.read_bytes()[:100])  # truncated by a crash
    png.unlink()
    b = load_product_asset("soda_can", 0)
    assert np.array_equal(a.vertices, b.vertices) and png.exists()
    library.clear_memory_cache()
    np.savez(npz, fingerprint=np.array("old"), vertices=np.zeros((3, 3)))  # another generator version
    c = load_product_asset("soda_can", 0)
    assert np.array_equal(a.vertices, c.vertices)


def test_cache_dir_default(monkeypatch, tmp_path):
    monkeypatch.delenv("GRASPSIM_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "graspsim"
    monkeypatch.setenv("GRASPSIM_CACHE", str(tmp_path / "c"))
    assert cache_dir() == (tmp_path / "c").resolve()


def test_no_pybullet_import():
    code = "import sys, graspsim.assets; sys.exit(int('pybullet' in sys.modules))"
    repo = pathlib.Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo).returncode == 0
