"""Dependencies point one way (../shared/ARCHITECTURE.md): every ``import graspsim.X`` in the package, read with ast.

core values -> assets -> scenes -> grasping -> sim -> envs -> (data, learn, policies) -> bench -> cli
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "graspsim"

#: Layer of each top-level module / subpackage: a module may import its own layer and the layers below.
LAYER = {
    "types": 0, "geometry": 0, "masks": 0, "config": 0, "fileio": 0, "runs": 0, "pool": 0, "clierror": 0,
    "assets": 1, "weights": 2, "scenes": 2, "grasping": 3, "viz": 4, "sim": 4, "video": 4, "envs": 5,
    "data": 6, "learn": 6, "policies": 6, "clitrain": 6, "bench": 7, "cli": 8,
}


def _imports() -> list[tuple[Path, int, str]]:
    """(file, line, imported graspsim module) for every absolute graspsim import, function-level ones included."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [(path, node.lineno, name) for name in names if name.startswith("graspsim.")]
    return found


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_top_level_module_has_a_layer():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts <= set(LAYER), parts - set(LAYER)


def test_imports_point_down_the_layers():
    upward = [f"{p.relative_to(PACKAGE)}:{line} imports {name}" for p, line, name in _imports()
              if _part(p) != "__init__" and LAYER[name.split(".")[1]] > LAYER[_part(p)]]
    assert not upward, "\n".join(upward)


def test_data_learn_and_policies_never_import_bench_and_policies_never_the_simulator():
    bad = []
    for path, line, name in _imports():
        part, target = _part(path), name.split(".")[1]
        if part in ("data", "learn", "policies") and target == "bench":
            bad.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
        # a stack's cli.py is its composition root (it may hand the stack an environment); nothing else may
        if part == "policies" and target in ("sim", "envs") and path.name != "cli.py":
            bad.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_inference_modules_never_import_training_modules():
    bad = [f"{p.relative_to(PACKAGE)}:{line} imports {name}" for p, line, name in _imports()
           if _part(p) == "policies" and not p.name.startswith(("train", "cli"))
           and name.rsplit(".", 1)[-1].startswith("train")]
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_command_line():
    bad = [f"{p.relative_to(PACKAGE)}:{line}" for p, line, name in _imports() if name == "graspsim.cli"]
    assert not bad, bad
