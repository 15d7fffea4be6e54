"""Keep test runs from writing outside the project: caches go to a temporary directory.

Set at import time so subprocesses started by tests (the CLI) inherit them too.
GRASPSIM_CACHE is respected when the caller set it (CI sets a fresh one).
"""

import os
import tempfile
from pathlib import Path

import pytest

_TMP = tempfile.mkdtemp(prefix="graspsim-tests-")
os.environ.setdefault("GRASPSIM_CACHE", os.path.join(_TMP, "graspsim"))
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(_TMP, "xdg"))  # Mesa's shader cache
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_TMP, "matplotlib"))
# Tests never download: models are built from configs or saved to tmp dirs.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def cpu_kind() -> str:
    """"AVX512" or "AVX2" (else "other"): the widest vector kernels numpy dispatches to here. Rendered bytes depend
    on it (numpy's and OpenCV's transcendental kernels round a last bit differently), so byte-for-byte digests are
    recorded per kind."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return "AVX512" if features.get("AVX512F") else "AVX2" if features.get("AVX2") else "other"


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny finished runs shared by the comparison and report tests (a few seconds, once per session):
    oracle and random on 3 tabletop-test scenes, random on other seeds and on shelf-test."""
    from graspsim.bench.runner import RunSpec, run_bench

    small = dict(suite="tabletop-test", episodes=3, width=160, height=120, renderer="tiny")
    specs = {
        "oracle": RunSpec(policy="oracle", **small),
        "random": RunSpec(policy="random", **small),
        "random-seed3": RunSpec(policy="random", seed=3, **small),
        "random-shelf": RunSpec(policy="random", **{**small, "suite": "shelf-test"}),
    }
    base = tmp_path_factory.getbasetemp() / "tiny-compare-runs"
    dirs = {}
    for name, spec in specs.items():
        run_bench(spec, base / name, progress=False)
        dirs[name] = base / name
    return dirs


@pytest.fixture(scope="session")
def seg_data(tmp_path_factory) -> Path:
    """4 tabletop-train scenes at 160x120, images and masks only (no grasp labels; seed 0 is the held-out one): ~5 s.
    Shared by the clip_sam training and verification tests."""
    from graspsim.data.labels import LabelConfig
    from graspsim.data.render import render_dataset

    out = tmp_path_factory.mktemp("segdata") / "d"
    s = render_dataset("tabletop-train", 4, out, width=160, height=120, renderer="tiny", progress=False,
                       labels=LabelConfig(max_candidates=0))
    assert s["rendered"] == 4 and s["labels"] == 0
    return out
