"""Export a rendered dataset to the Cornell and OCID_grasp layouts, so other grasp-detection code can read it.

``cornell`` (the layout GG-CNN / GR-ConvNet style loaders read)::

    OUT/01/pcd0000r.png       RGB, 8-bit
    OUT/01/pcd0000d.tiff      depth, float32 metres along the camera z axis (0 = no depth, or
                              inpainted with ``inpaint_depth=True``, as Cornell loaders inpaint)
    OUT/01/pcd0000cpos.txt    positive grasps: 4 lines "x y" per rectangle (pixels)
    OUT/01/pcd0000cneg.txt    negative grasps: empty (graspsim keeps only the grasps that held)
    OUT/02/pcd0100r.png ...   100 scenes per folder, numbered from 0 in dataset order

Cornell's point-cloud files ``pcdXXXX.txt`` are not written (the depth TIFF,
which Cornell loaders derive from them, is). Corners follow Cornell: corners
0-1 and 2-3 are the sides along the jaw closing axis (their length is the
opening ``w``), 1-2 and 3-0 the finger sides (``h``): the order of
:func:`graspsim.grasping.rect_geometry.rect_corners`. Angles: graspsim's
``theta`` is measured in the image with y pointing down; GR-ConvNet's Cornell
loader measures with y up, so its angle for the same rectangle is ``-theta``
(the corners are the same; only the angle a loader derives from them differs).

``ocid_grasp`` (the layout of Ainetter & Fraundorfer's OCID_grasp)::

    OUT/<suite>/seqXX/rgb/scene-<seed>.png                     RGB
    OUT/<suite>/seqXX/depth/scene-<seed>.png                   uint16 millimetres
    OUT/<suite>/seqXX/seg_mask_labeled_combi/scene-<seed>.png  uint8 class map, 0 background, c + 1 = class c
    OUT/<suite>/seqXX/label/scene-<seed>.png                   uint16 instance map, 0 background
    OUT/<suite>/seqXX/Annotations/scene-<seed>.txt             4 lines "x y" per grasp
    OUT/<suite>/seqXX/Annotations_per_class/scene-<seed>/<id>/scene-<seed>.txt   the grasps of class id
    OUT/<suite>.txt                                            split file: "<suite>/seqXX,scene-<seed>.png" per line

``XX`` is the dataset's shard (100 scenes). As in OCID_grasp, a grasp's class
is the class under its centre in ``seg_mask_labeled_combi``.
``Annotations_per_class`` is what the authors' evaluation and test scripts
(``scripts/evaluate_det_seg_OCID.py`` in their grasp_det_seg_cnn) read: one
folder per class present in the scene's grasps, named by its label value in
``seg_mask_labeled_combi`` (catalog class + 1, 0 is background), holding that
class's grasps in the ``Annotations`` format. A grasp's class there is the
class of the product it was labelled on (the class under its centre for all but
one of the 11,107 shelf-test labels).

Both write ``OUT/classes.json`` (label value -> class name) and
``OUT/graspsim_export.json`` (format, source dataset, suite, and for every
exported scene its seed and file stem). Export is idempotent: re-running over
an earlier export of the same format rewrites it; any other non-empty
directory is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from graspsim.data.format import DatasetError, check_dataset, has_grasp_labels, read_scene
from graspsim.fileio import atomic_write_text
from graspsim.grasping.rect_geometry import rect_corners
from graspsim.types import GraspRect

FORMATS = ("cornell", "ocid_grasp")
MARKER = "graspsim_export.json"
CORNELL_PER_FOLDER = 100


class ExportError(ValueError):
    """The output directory cannot take this export."""


def corners_text(rects: np.ndarray) -> str:
    """Cornell / OCID_grasp text of ``rects`` ``(N, 5)`` ``[x, y, w, h, theta]``: 4 lines "x y" per rectangle."""
    return "".join(f"{x:.3f} {y:.3f}\n" for r in np.asarray(rects, dtype=np.float64).reshape(-1, 5)
                   for x, y in rect_corners(GraspRect(*r)))


def read_corners(path: str | Path) -> np.ndarray:
    """Rectangles ``(N, 5)`` ``[x, y, w, h, theta]`` (theta in ``[-pi/2, pi/2)``) from a corner file.

    The inverse of :func:`corners_text` for any rectangle written in Cornell's
    corner order: centre = mean of the corners, ``w`` = |corner 1 - corner 0|,
    ``h`` = |corner 2 - corner 1|, theta = direction of corner 0 -> 1. Lines
    with NaN (as in a few original Cornell files) drop their rectangle.
    """
    values = [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(values) % 4:
        raise ValueError(f"{path}: {len(values)} corner lines, not a multiple of 4")
    pts = np.asarray(values, dtype=np.float64).reshape(-1, 4, 2)
    pts = pts[np.isfinite(pts).all(axis=(1, 2))]
    out = np.zeros((len(pts), 5))
    for i, p in enumerate(pts):
        along, across = p[1] - p[0], p[2] - p[1]
        theta = float(np.arctan2(along[1], along[0]))
        theta = (theta + np.pi / 2) % np.pi - np.pi / 2
        out[i] = [*p.mean(axis=0), np.linalg.norm(along), np.linalg.norm(across), theta]
    return out


def _prepare_out(out: Path, fmt: str) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        marker = out / MARKER
        try:
            previous = json.loads(marker.read_text(encoding="utf-8")).get("format") if marker.is_file() else None
        except (OSError, ValueError):
            previous = None
        if previous != fmt:
            raise ExportError(f"{out} is not empty and holds no earlier {fmt} export; choose an empty --out")
    out.mkdir(parents=True, exist_ok=True)


def export_dataset(data_dir: str | Path, out_dir: str | Path, fmt: str, progress: bool = False,
                   inpaint_depth: bool = False) -> dict:
    """Write the dataset in ``data_dir`` to ``out_dir`` in layout ``fmt`` (``cornell`` | ``ocid_grasp``).

    ``inpaint_depth`` (Cornell only): fill the depth TIFF's zeros (nothing hit)
    from their neighbours (:func:`inpaint_depth_m`), as Cornell's TIFFs are.

    Returns the export record (also written to ``out_dir/graspsim_export.json``).
    Raises :class:`~graspsim.data.format.DatasetError` for a bad dataset (and
    for a ``--no-grasps`` dataset exported to Cornell, which is grasps only),
    :class:`ExportError` for an unusable output directory, ValueError for an
    unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if inpaint_depth and fmt != "cornell":
        raise ExportError("--inpaint-depth is for --format cornell (OCID_grasp's depth keeps its zeros, as OCID's)")
    manifest, scene_dirs = check_dataset(data_dir)
    if fmt == "cornell" and not has_grasp_labels(manifest):
        raise DatasetError(f"{data_dir} was rendered with --no-grasps: there are no grasps to export to Cornell "
                           "(render it without --no-grasps, or export --format ocid_grasp for the images and masks)")
    out = Path(out_dir)
    _prepare_out(out, fmt)
    suite = str(manifest.get("suite", "dataset"))
    from tqdm import tqdm

    bar = tqdm(total=len(scene_dirs), desc=f"export {fmt}", unit="scene", leave=False, disable=not progress)
    scenes, split_lines, n_grasps = [], [], 0
    for index, d in enumerate(scene_dirs):
        s = read_scene(d)
        seed = int(s["meta"]["scene_seed"])
        n_grasps += len(s["grasps"])
        if fmt == "cornell":
            folder = out / f"{index // CORNELL_PER_FOLDER + 1:02d}"
            folder.mkdir(exist_ok=True)
            stem = f"pcd{index:04d}"
            _write_cornell(folder, stem, d, s, inpaint_depth)
            scenes.append({"seed": seed, "file": f"{folder.name}/{stem}"})
        else:
            seq = f"{suite}/seq{int(d.parent.name.split('-')[-1]):02d}"
            _write_ocid(out / seq, d.name, d, s)
            split_lines.append(f"{seq},{d.name}.png")
            scenes.append({"seed": seed, "file": f"{seq}/rgb/{d.name}.png"})
        bar.update(1)
    bar.close()
    if fmt == "ocid_grasp":
        atomic_write_text(out / f"{suite}.txt", "".join(line + "\n" for line in split_lines))
    classes = {"0": "background", **{str(int(k) + 1): v for k, v in manifest.get("classes", {}).items()}}
    atomic_write_text(out / "classes.json", json.dumps(classes, indent=2) + "\n")
    record = {"format": fmt, "source": str(Path(data_dir).resolve()), "suite": suite, "scenes": len(scenes),
              "grasps": n_grasps, "inpaint_depth": inpaint_depth, "labels": has_grasp_labels(manifest), "files": scenes}
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")
    return record


def inpaint_depth_m(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float32 metres with its zeros (no depth) filled from the neighbours.

    OpenCV's Navier-Stokes inpainting (radius 1 px) on the depth scaled to
    [0, 1], with a one-pixel reflected border so edge pixels have neighbours:
    the way Cornell loaders (GG-CNN's and GR-ConvNet's ``DepthImage.inpaint``)
    fill the holes of Cornell's depth. Pixels with depth keep their values.
    """
    import cv2

    depth = np.asarray(depth_m, dtype=np.float32)
    missing = depth == 0
    scale = float(np.abs(depth).max())
    if not missing.any() or scale == 0:
        return depth.copy()
    padded = cv2.copyMakeBorder(depth / scale, 1, 1, 1, 1, cv2.BORDER_DEFAULT)
    mask = cv2.copyMakeBorder(missing.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_DEFAULT)
    filled = depth.copy()  # measured pixels keep their exact values; only the holes are written
    filled[missing] = cv2.inpaint(padded, mask, 1, cv2.INPAINT_NS)[1:-1, 1:-1][missing] * scale
    return filled


def _write_cornell(folder: Path, stem: str, scene_dir: Path, s: dict, inpaint_depth: bool) -> None:
    import cv2

    shutil.copyfile(scene_dir / "rgb.png", folder / f"{stem}r.png")
    depth = inpaint_depth_m(s["depth_m"]) if inpaint_depth else s["depth_m"].astype(np.float32)
    if not cv2.imwrite(str(folder / f"{stem}d.tiff"), depth):
        raise OSError(f"cannot write {folder / (stem + 'd.tiff')}")
    atomic_write_text(folder / f"{stem}cpos.txt", corners_text(s["grasps"]))
    atomic_write_text(folder / f"{stem}cneg.txt", "")


def _write_ocid(seq_dir: Path, name: str, scene_dir: Path, s: dict) -> None:
    for sub, src in (("rgb", "rgb.png"), ("depth", "depth.png"), ("seg_mask_labeled_combi", "class.png"),
                     ("label", "instance.png")):
        (seq_dir / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scene_dir / src, seq_dir / sub / f"{name}.png")
    (seq_dir / "Annotations").mkdir(parents=True, exist_ok=True)
    atomic_write_text(seq_dir / "Annotations" / f"{name}.txt", corners_text(s["grasps"]))
    labels = s["grasp_classes"] + 1  # label values of seg_mask_labeled_combi
    for label in np.unique(labels):
        class_dir = seq_dir / "Annotations_per_class" / name / str(int(label))
        class_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(class_dir / f"{name}.txt", corners_text(s["grasps"][labels == label]))
