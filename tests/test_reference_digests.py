"""Stored digests from before the "one home" refactor (commit 30a2d9f): rendering and tiny training runs still
produce the very same bytes.

The datasets (PNGs + meta.json without timings) of 2 tabletop-train scenes, a tiny det_seg trained 2 epochs and a
tiny SAM trained 2 x 2 steps on them were digested with the code of commit 30a2d9f; the same calls must give the same
digests now. Float results of torch depend on the CPU's vector instructions and torch's version, so the weight
digests are only compared on the platform they were recorded on (torch 2.13.0, AVX2, as on CI). The rendered bytes
depend on the CPU too: numpy's and OpenCV's vector kernels (e.g. the transcendental functions of AVX-512) round a
last bit differently, so on an AVX-512 machine (2026-12-02) the same code renders other bytes and, rarely, a grasp
label validates differently. Rendering digests are therefore kept per CPU capability: AVX2 the ones recorded at
30a2d9f; AVX512 recorded on 2026-12-02 with the session-start commit 82af295 and the commit that added them (equal
digests, weights included), so they guard every change since. The trained weights differ between AVX-512 CPUs of
two vendors too (oneDNN picks other kernels; an AMD EPYC renders the AVX512 bytes but trains other last bits), so
weight digests are kept per capability and vendor: the AMD ones recorded on 2026-12-02 night with the code of
7dc5dbd and, equal, with 82af295's (whose rendering digests there equal the AVX512 record too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

TORCH_RECORDED = "2.13.0+cpu"
#: Rendering digests per CPU kind (the ``cpu_kind`` fixture; module docstring), compared with any torch.
RENDERED_BY_CPU = {
    "AVX2": {"data_grasps": "c46dd2e7ad7052c6", "data_seg": "0f6bf1d4bbca5cae"},
    "AVX512": {"data_grasps": "d68ee1c9df5e6637", "data_seg": "90fd3ef8dc2ac413"},
}
#: Weight digests per CPU kind and vendor (``"AVX512/AuthenticAMD"``; a kind alone: any vendor), compared only with
#: TORCH_RECORDED.
WEIGHTS_BY_PLATFORM = {
    "AVX2": {"det_seg": "1e6865eb5fa26e8e", "sam": "806aa2b3591b3d57"},
    "AVX512/GenuineIntel": {"det_seg": "001cb0e63cd3659a", "sam": "b0f0bfc3d70843e7"},
    "AVX512/AuthenticAMD": {"det_seg": "8e850b136865a9c1", "sam": "cbd5f3da923ef312"},
}


def cpu_vendor() -> str:
    """The CPU's ``vendor_id`` (GenuineIntel, AuthenticAMD) from /proc/cpuinfo, "unknown" elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
TINY_DET = dict(input_size=160, stem_channels=8, channels=[12, 16, 16, 16], depths=[0, 1, 0, 0], fpn_channels=16,
                det_head_channels=16, det_head_convs=1, seg_channels=8, refine_hidden=32, refine_crop=8)
TINY_SAM = dict(width=32, layers=2, channels=32, batch_size=4, val_instances=4)


def weights_digest(path: Path) -> str:
    """sha256 over the tensors of a safetensors file, in key order (names and raw bytes)."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def dataset_digest(root: Path) -> str:
    """sha256 over every PNG and every meta.json (timings and the ``robot`` recorded since removed) of a rendered
    dataset; ``part_seg.png`` and the grasps' ``part``, stored since, are left out."""
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.suffix == ".png" and p.name != "part_seg.png":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
        elif p.name == "meta.json":
            meta = json.loads(p.read_text())
            meta.pop("timing", None)
            meta.pop("robot", None)  # recorded since the digests were; the datasets are rendered with "hand"
            for obj in meta.get("objects", []):
                for grasp in obj["grasps"]:
                    grasp.pop("part", None)
            h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()[:16]


def compute_digests(tmp: Path) -> dict[str, str]:
    """Render the two tiny datasets and train the two tiny models under ``tmp``; their digests."""
    from graspsim.data.labels import LabelConfig
    from graspsim.data.render import render_dataset
    from graspsim.policies.clip_sam.train_sam import train_sam
    from graspsim.policies.det_seg.train import train_det_seg

    torch.set_num_threads(1)
    grasps, seg = tmp / "grasps", tmp / "seg"
    # robot="hand": no robot in the images, as every dataset was rendered when the digests were recorded.
    render_dataset("tabletop-train", 2, grasps, width=160, height=120, renderer="tiny", progress=False, robot="hand")
    render_dataset("tabletop-train", 3, seg, width=160, height=120, renderer="tiny", progress=False,
                   labels=LabelConfig(max_candidates=0), robot="hand")
    train_det_seg(grasps, tmp / "det", epochs=2, batch_size=2, seed=0, val_fraction=0.0, config=dict(TINY_DET),
                  progress=False, lr=1e-2)
    train_sam([seg], tmp / "sam", epochs=2, steps_per_epoch=2, lr=2e-3, seed=0, progress=False, log=lambda s: None,
              **TINY_SAM)
    return {"data_grasps": dataset_digest(grasps), "data_seg": dataset_digest(seg),
            "det_seg": weights_digest(tmp / "det" / "model.safetensors"),
            "sam": weights_digest(tmp / "sam" / "model.safetensors")}


def test_rendering_and_tiny_training_match_the_digests_recorded_before_the_refactor(tmp_path, cpu_kind):
    cpu = cpu_kind
    if cpu not in RENDERED_BY_CPU:
        pytest.skip(f"no digests recorded on a {cpu} CPU (recorded: {', '.join(RENDERED_BY_CPU)})")
    got = compute_digests(tmp_path)
    assert {k: got[k] for k in ("data_grasps", "data_seg")} == RENDERED_BY_CPU[cpu]
    if torch.__version__ != TORCH_RECORDED:
        pytest.skip(f"weight digests were recorded with torch {TORCH_RECORDED}")
    platform = f"{cpu}/{cpu_vendor()}"
    weights = WEIGHTS_BY_PLATFORM.get(platform, WEIGHTS_BY_PLATFORM.get(cpu))
    if weights is None:
        pytest.skip(f"no weight digests recorded on {platform} (recorded: {', '.join(WEIGHTS_BY_PLATFORM)})")
    assert {k: got[k] for k in ("det_seg", "sam")} == weights


if __name__ == "__main__":  # print the digests of the code on the path (how EXPECTED was recorded)
    import sys
    import tempfile

    print(json.dumps(compute_digests(Path(tempfile.mkdtemp())), indent=1))
    sys.exit(0)
