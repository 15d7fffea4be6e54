"""Load-or-generate product assets, cached on disk and in memory.

An asset is everything the simulator needs for one variant: the visual mesh
(product frame, metres, see :mod:`graspsim.assets.meshes`), the texture PNG,
convex collision pieces and named parts in metres.

Disk cache: ``cache_dir()/assets/v1/<class>_<variant>.npz`` (+ ``.png``), where
``cache_dir()`` is ``$GRASPSIM_CACHE`` or ``~/.cache/graspsim``. Files are written
to a temporary name and moved into place with ``os.replace`` so parallel worker
processes never read half-written files. Each ``.npz`` records a fingerprint of
the generator source and the variant; a stale file (generator changed) is
regenerated. Generation is deterministic: regenerating gives bit-identical arrays.
"""

from __future__ import annotations

import functools
import os
import pathlib
import zipfile
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from graspsim.assets import catalog, meshes, textures
from graspsim.fileio import atomic_write

_MEMORY: dict[tuple[str, str, int], "ProductAsset"] = {}
_SOURCES = ("catalog.py", "meshes.py", "textures.py", "library.py")


@dataclass(frozen=True, eq=False)  # arrays inside: compare and hash by identity
class ProductAsset:
    """One product variant, ready for the simulator. Product frame (origin at the
    bounding-box centre, +z up, shelf camera looking along +y), metres.

    * ``size_m`` (3,): extents of the visual mesh bounding box (= variant size).
    * ``vertices``, ``indices``, ``normals``, ``uvs``, ``collision_hulls``: as in
      :class:`graspsim.assets.meshes.ProductMesh`.
    * ``texture`` (256, 256, 3) uint8 RGB, also a PNG at the absolute ``texture_path``.
    * ``parts``: part name -> (lo (3,), hi (3,)) box in metres.
    """

    variant: catalog.ProductVariant
    size_m: np.ndarray
    vertices: np.ndarray
    indices: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    texture_path: str
    collision_hulls: tuple[np.ndarray, ...]
    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    texture: np.ndarray


def cache_dir() -> pathlib.Path:
    """Root of graspsim's cache: ``$GRASPSIM_CACHE`` if set, else ``~/.cache/graspsim``."""
    env = os.environ.get("GRASPSIM_CACHE")
    return pathlib.Path(env).expanduser().resolve() if env else pathlib.Path.home() / ".cache" / "graspsim"


@functools.lru_cache(maxsize=None)
def _source_crc() -> int:
    """CRC-32 of the generator sources (read once per process)."""
    crc = 0
    for fname in _SOURCES:
        crc = zlib.crc32((pathlib.Path(__file__).parent / fname).read_bytes(), crc)
    return crc


def _fingerprint(name: str, variant: int) -> str:
    """Changes whenever the generator source or the variant's catalog entry changes."""
    entry = repr((catalog.get_class(name), catalog.get_variant(name, variant)))
    return f"{_source_crc():08x}-{zlib.crc32(entry.encode()):08x}"


def generate_arrays(class_name: str, variant: int) -> dict[str, np.ndarray]:
    """Generate (no cache) the arrays of one variant: vertices, indices, normals, uvs,
    texture (256, 256, 3) uint8 RGB, hull_<i> for each collision piece."""
    mesh = meshes.build_mesh(class_name, variant)
    tex = textures.make_texture(class_name, variant, mesh.layout)
    return {"vertices": mesh.vertices, "indices": mesh.indices, "normals": mesh.normals, "uvs": mesh.uvs,
            "texture": tex, **{f"hull_{i}": h for i, h in enumerate(mesh.collision_hulls)}}


def _write_png(path: pathlib.Path, rgb: np.ndarray) -> None:
    def w(tmp):
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write texture {tmp}")

    atomic_write(path, w)


def _write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray], fingerprint: str) -> None:
    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, fingerprint=np.array(fingerprint), **arrays)

    atomic_write(path, w)


def _read_npz(path: pathlib.Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            return {k: z[k] for k in z.files if k != "fingerprint"}
    except (OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile):
        return None  # missing, truncated by a crash, or an old format: regenerate


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)  # shared between callers through the memory cache
    return a


def load_product_asset(class_name: str, variant: int) -> ProductAsset:
    """The asset of ``class_name`` flavour ``variant``: from memory, else from the disk
    cache, else generated (and cached). Arrays are read-only."""
    var = catalog.get_variant(class_name, variant)  # validates name and variant
    folder = cache_dir() / "assets" / "v1"
    key = (str(folder), class_name, variant)
    hit = _MEMORY.get(key)
    if hit is not None:
        return hit
    folder.mkdir(parents=True, exist_ok=True)
    npz, png = folder / f"{class_name}_{variant}.npz", folder / f"{class_name}_{variant}.png"
    fp = _fingerprint(class_name, variant)
    arrays = _read_npz(npz, fp)  # None when missing (OSError) or stale
    if arrays is None:
        arrays = generate_arrays(class_name, variant)
        _write_png(png, arrays["texture"])
        _write_npz(npz, arrays, fp)
    elif not png.exists():
        _write_png(png, arrays["texture"])
    size = np.asarray(var.size_m, dtype=np.float64)
    cls = catalog.get_class(class_name)
    parts = {k: (_frozen(np.asarray(lo) * size), _frozen(np.asarray(hi) * size)) for k, (lo, hi) in cls.parts.items()}
    n_hulls = sum(1 for k in arrays if k.startswith("hull_"))
    asset = ProductAsset(variant=var, size_m=_frozen(size), texture_path=str(png.resolve()),
                         collision_hulls=tuple(_frozen(arrays[f"hull_{i}"]) for i in range(n_hulls)), parts=parts,
                         **{k: _frozen(arrays[k]) for k in ("vertices", "indices", "normals", "uvs", "texture")})
    _MEMORY[key] = asset
    return asset


def clear_memory_cache() -> None:
    """Forget the in-process cache (the disk cache stays)."""
    _MEMORY.clear()
