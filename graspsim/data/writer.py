"""Crash-safe writing of dataset scenes and the manifest (see :mod:`graspsim.data.format`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from graspsim.data.format import MANIFEST, META, PART_SEG, ROBOT_SEG, TMP_PREFIX, is_complete
from graspsim.fileio import atomic_write_json, fsync_dir, to_jsonable
from graspsim.runs import RunLayout, check_run_dir

def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) or (H, W, 3) uint8/uint16 array (OpenCV channel order: BGR for colour)."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def encode_meta(meta: dict[str, Any]) -> bytes:
    """A meta.json file's bytes: strict JSON (numpy values converted), indented, newline-terminated."""
    return (json.dumps(to_jsonable(meta), indent=1, allow_nan=False) + "\n").encode("utf-8")


def write_dir(final_dir: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (path relative to ``final_dir``, subdirectories allowed -> bytes) as the directory
    ``final_dir``, atomically: a temp dir next to it (every file and directory fsync'd, in the order given,
    so the completeness marker ``meta.json`` goes last), then ``os.replace``. Replaces an incomplete leftover."""
    final_dir = Path(final_dir)
    if next(reversed(files)) != META:
        raise ValueError(f"{META} must be the last file written (it marks the directory complete)")
    shard = final_dir.parent
    shard.mkdir(parents=True, exist_ok=True)
    tmp = shard / f"{TMP_PREFIX}{final_dir.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        subdirs = []
        for name, data in files.items():
            path = tmp / name
            if path.parent != tmp and not path.parent.exists():
                path.parent.mkdir(parents=True)
                subdirs.append(path.parent)
            _write_bytes(path, data)
        for d in subdirs:
            fsync_dir(d)
        fsync_dir(tmp)
        if final_dir.exists():  # an incomplete leftover (cannot come from this writer): replace it
            shutil.rmtree(final_dir)
        os.replace(tmp, final_dir)
        fsync_dir(shard)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_scene(final_dir: Path, rgb: np.ndarray, depth_mm: np.ndarray, instance: np.ndarray,
                class_map: np.ndarray, meta: dict[str, Any], robot_seg: np.ndarray | None = None,
                part_seg: np.ndarray | None = None) -> None:
    """Write one scene into ``final_dir`` atomically (:func:`write_dir`, ``meta.json`` last).

    ``robot_seg``: (H, W) uint8 0/1/2, written as ``robot_seg.png`` when given (a scene with the arm).
    ``part_seg``: (H, W) uint8 grasp-part labels, written as ``part_seg.png`` when given.
    """
    import cv2

    files = {"rgb.png": encode_png(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)),
             "depth.png": encode_png(np.ascontiguousarray(depth_mm, dtype=np.uint16)),
             "instance.png": encode_png(np.ascontiguousarray(instance, dtype=np.uint16)),
             "class.png": encode_png(np.ascontiguousarray(class_map, dtype=np.uint8))}
    if robot_seg is not None:
        files[ROBOT_SEG] = encode_png(np.ascontiguousarray(robot_seg, dtype=np.uint8))
    if part_seg is not None:
        files[PART_SEG] = encode_png(np.ascontiguousarray(part_seg, dtype=np.uint8))
    files[META] = encode_meta(meta)
    write_dir(final_dir, files)


def remove_stray_temp_dirs(root: Path) -> int:
    """Delete ``.tmp-*`` scene directories (left by a killed run) and incomplete scene dirs; returns how many."""
    removed = 0
    for d in Path(root).glob("shards/*/*"):
        if d.is_dir() and (d.name.startswith(TMP_PREFIX) or not is_complete(d)):
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed


#: A dataset directory: its manifest is the settings file; scenes are directories, not records.
#: Resuming may ask for other scene seeds (they are merged) and a newer graspsim.
DATASET_LAYOUT = RunLayout(config_name=MANIFEST, records_name=None, key=None,
                           volatile=frozenset({"created", "scene_seeds", "skipped", "splits",
                                               "config.graspsim_version"}),
                           what="graspsim dataset", empty_for_new=True, resume_from_nothing=True)


def _layout_for(root: Path, manifest: dict[str, Any], resume: bool) -> RunLayout:
    """:data:`DATASET_LAYOUT`, except when resuming a dataset rendered before the robot was recorded.

    Such a manifest has no ``robot``; its images show none, as ``robot="hand"``
    renders them: resuming it with the hand is no change of settings (any other
    robot is refused, naming ``robot``).
    """
    path = Path(root) / MANIFEST
    if not resume or manifest.get("robot") != "hand" or not path.is_file():
        return DATASET_LAYOUT
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DATASET_LAYOUT  # check_run_dir reports the damage
    if isinstance(stored, dict) and "robot" not in stored:
        return replace(DATASET_LAYOUT, volatile=DATASET_LAYOUT.volatile | {"robot"})
    return DATASET_LAYOUT


def prepare_out_dir(root: Path, manifest: dict[str, Any], resume: bool) -> dict[str, Any]:
    """Create/check ``root`` and write the manifest; returns the manifest written.

    Without ``resume`` a non-empty ``root`` is refused. With ``resume`` the stored
    manifest must match on everything but :data:`DATASET_LAYOUT`'s volatile keys
    (the differing key is named, :class:`~graspsim.runs.RunDirError`); scene seeds
    and skipped scenes are merged.
    """
    root = Path(root)
    old = check_run_dir(root, manifest, resume, _layout_for(root, manifest, resume))
    if old is not None:
        manifest = dict(manifest)
        manifest["scene_seeds"] = sorted(set(old.get("scene_seeds", [])) | set(manifest["scene_seeds"]))
        manifest["skipped"] = {**old.get("skipped", {}), **manifest.get("skipped", {})}
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def render_scenes(root: Path, manifest: dict[str, Any], first_seed: int, seeds: list[int], runner: Any, spec: Any,
                  workers: int, resume: bool, progress: bool, desc: str,
                  jobs_per_pool: int | None = None) -> dict[str, Any]:
    """The fan-out every dataset command shares: prepare ``root`` (refuse / resume with the settings check of
    ``manifest``), clear torn scene folders, render the scenes of ``seeds`` not yet complete with ``runner(spec)``
    in ``workers`` processes (:func:`graspsim.pool.run_jobs`; each job ``(root, seed)`` returns a status dict,
    with ``"skipped"`` for a scene it could not use), and record the skipped ones in the manifest.
    ``jobs_per_pool``: scenes per batch of fresh worker processes (:func:`graspsim.pool.run_jobs`).

    Returns ``{"done": [status of each scene rendered now], "skipped": n, "already_done": n,
    "removed_temp_dirs": n, "wall_s": seconds}``.
    """
    from tqdm import tqdm

    from graspsim.data.format import scene_dir
    from graspsim.pool import run_jobs

    manifest = prepare_out_dir(root, manifest, resume)
    removed = remove_stray_temp_dirs(root)
    todo = [s for s in seeds if not is_complete(scene_dir(root, first_seed, s))]
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    with tqdm(total=len(seeds), initial=len(seeds) - len(todo), unit="scene", desc=desc, disable=not progress) as bar:
        for status in run_jobs(runner, (spec,), [(root, s) for s in todo], workers,
                               label=lambda job: f"scene seed {job[1]}", jobs_per_pool=jobs_per_pool):
            results.append(status)
            bar.update(1)
    wall = time.perf_counter() - t0
    skipped = {str(r["seed"]): r["skipped"] for r in results if "skipped" in r}
    if skipped:
        manifest["skipped"] = {**manifest.get("skipped", {}), **skipped}
        atomic_write_json(root / MANIFEST, manifest)
    return {"done": [r for r in results if "skipped" not in r], "skipped": len(skipped),
            "already_done": len(seeds) - len(todo), "removed_temp_dirs": removed, "wall_s": wall}
