"""Policy configs and the registry: --policy-arg checked before anything heavy loads, policies built once.

* an unknown key -> one line listing the valid keys; a bad value -> one line naming the key and what it takes;
* checking clip_sam / det_seg arguments imports no torch, transformers or pybullet (a subprocess looks);
* ``graspsim bench --policy clip_sam --policy-arg promt_mode=box`` exits 2 with that one line;
* ``bench`` builds the policy once per worker process and never in the parent just to check it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from graspsim.config import GripperSpec
from graspsim.policies import registry
from graspsim.policies.config import PolicyArgError, PolicyConfig
from graspsim.policies.registry import check_policy_args, make_policy, resolve_config

SMALL = ["--width", "320", "--height", "240", "--renderer", "tiny", "--no-progress"]

# The keyword arguments each policy's constructor took before the configs: every one must stay a field.
OLD_KEYWORDS = {
    "oracle": {"gripper", "grasp_depth_m", "margin_m", "n_angles", "max_candidates", "max_instances",
               "surface_slab_m", "part_candidates"},  # part_candidates: added with the part-aware task
    "heuristic": {"gripper", "grasp_depth_m", "margin_m", "color_threshold", "lightness_weight", "depth_jump_m",
                  "min_area_px", "max_segments", "max_candidates", "use_seen_variants"},
    "random": {"w_min_px", "w_max_px", "h_px"},
    "clip_sam": {"clip", "sam", "prompt_mode", "zoom", "cam_layer", "cam_method", "n_negative", "k_points",
                 "threshold", "verify", "n_candidates", "text_encoder", "threads", "box_refine", "gripper",
                 "grasp_depth_m", "margin_m", "max_candidates",
                 "robot_mask", "robot_mask_checkpoint",  # robot_mask*: added with the robot-mask exclusion
                 "shape_prior", "shape_weight", "sweep_max"},  # added with the shape prior and the point sweep
    "det_seg": {"checkpoint", "refine", "num_threads", "max_candidates", "min_region_px", "guided_seg",
                "robot_mask", "robot_mask_checkpoint"},
    "grconvnet": {"checkpoint", "num_threads", "max_candidates"},
}


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.parametrize("name", sorted(OLD_KEYWORDS))
def test_every_old_keyword_is_a_typed_documented_field(name):
    config_class = resolve_config(name)
    assert issubclass(config_class, PolicyConfig) and config_class.policy_name == name
    assert set(config_class.keys()) == OLD_KEYWORDS[name]
    assert config_class.__dataclass_params__.frozen
    config = config_class()  # every field has a default
    with pytest.raises(AttributeError):
        setattr(config, fields(config)[0].name, None)
    assert registry.resolve_policy(name).config_class is config_class


@pytest.mark.parametrize("name", sorted(OLD_KEYWORDS))
def test_unknown_key_lists_the_valid_keys(name):
    with pytest.raises(PolicyArgError) as info:
        check_policy_args(name, {"promt_mode": "box"}, check_files=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"unknown --policy-arg 'promt_mode' for policy {name}")
    assert message.endswith("valid keys: " + ", ".join(sorted(OLD_KEYWORDS[name])))


def test_unknown_key_suggests_the_nearest_one():
    with pytest.raises(PolicyArgError, match=r"did you mean 'prompt_mode'\?"):
        check_policy_args("clip_sam", {"promt_mode": "box"}, check_files=False)


@pytest.mark.parametrize("name, kwargs, expected", [
    ("clip_sam", {"prompt_mode": "boxx"}, "prompt_mode='boxx' for policy clip_sam: expected one of 'point', "
                                          "'points', 'box', 'box+points'"),
    ("clip_sam", {"cam_method": "gradcamm"}, "cam_method='gradcamm' for policy clip_sam: expected one of"),
    ("clip_sam", {"threshold": 1.5}, "threshold=1.5 for policy clip_sam: expected a number in [0, 1]"),
    ("clip_sam", {"box_refine": -1}, "box_refine=-1 for policy clip_sam: expected an integer >= 0"),
    ("clip_sam", {"zoom": "maybe"}, "zoom='maybe' for policy clip_sam: expected true or false"),
    ("clip_sam", {"threads": 0}, "threads=0 for policy clip_sam: expected an integer >= 1 or null"),
    ("det_seg", {"min_region_px": -5}, "min_region_px=-5 for policy det_seg: expected a number >= 0"),
    ("det_seg", {"refine": "sometimes"}, "refine='sometimes' for policy det_seg: expected true or false or null"),
    ("oracle", {"n_angles": 2.5}, "n_angles=2.5 for policy oracle: expected an integer >= 1"),
    ("oracle", {"n_angles": True}, "n_angles=True for policy oracle: expected an integer"),
    ("oracle", {"margin_m": "wide"}, "margin_m='wide' for policy oracle: expected a number >= 0"),
    ("oracle", {"margin_m": float("nan")}, "margin_m=nan for policy oracle"),
    ("oracle", {"gripper": {"max_opening": 0.1}}, "gripper={'max_opening': 0.1} for policy oracle: expected a "
                                                  "GripperSpec"),
    ("heuristic", {"color_threshold": 0}, "color_threshold=0 for policy heuristic: expected a number > 0"),
    ("random", {"w_min_px": 50, "w_max_px": 20}, "random: need 0 < w_min_px <= w_max_px, got 50, 20"),
])
def test_bad_value_names_the_key_and_what_it_takes(name, kwargs, expected):
    with pytest.raises(PolicyArgError) as info:
        check_policy_args(name, kwargs, check_files=False)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)  # callers that caught ValueError before still do


def test_values_are_coerced_as_the_policies_always_took_them(tmp_path):
    config = check_policy_args("clip_sam", {"zoom": "false", "verify": "yes", "k_points": "4", "cam_layer": -2.0,
                                            "clip": tmp_path, "threshold": 1}, check_files=False)
    assert (config.zoom, config.verify, config.k_points, config.cam_layer) == (False, True, 4, -2)
    assert config.clip == str(tmp_path) and isinstance(config.threshold, float)
    oracle = check_policy_args("oracle", {"gripper": {"max_opening_m": 0.1}})
    assert oracle.gripper == GripperSpec(max_opening_m=0.1)
    assert check_policy_args("det_seg", {"refine": None, "guided_seg": 0}, check_files=False).guided_seg is False


def test_policies_build_from_a_config_or_from_keywords():
    from graspsim.policies.oracle import OraclePolicy, OraclePolicyConfig
    from graspsim.policies.random_policy import RandomPolicy

    assert OraclePolicy(n_angles=8).n_angles == 8
    config = OraclePolicyConfig(n_angles=6, gripper={"max_opening_m": 0.09})
    policy = OraclePolicy(config)
    assert policy.config is config and policy.n_angles == 6 and policy.gripper.max_opening_m == 0.09
    with pytest.raises(TypeError, match="not both"):
        OraclePolicy(config, n_angles=3)
    with pytest.raises(PolicyArgError, match="unknown --policy-arg 'w_min' for policy random"):
        RandomPolicy(w_min=3)
    assert make_policy("random", h_px=12).h_px == 12.0


def test_missing_model_files_fail_the_check_without_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("GRASPSIM_WEIGHTS", str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError, match="no-such-clip"):
        check_policy_args("clip_sam", {"clip": str(tmp_path / "no-such-clip")})
    with pytest.raises(FileNotFoundError, match="graspsim weights fetch"):
        check_policy_args("clip_sam", {"sam": "sam-vit-base"})  # registered but not fetched
    with pytest.raises(FileNotFoundError, match="sam_tiny.pth"):
        check_policy_args("clip_sam", {"sam": str(tmp_path / "sam_tiny.pth")})
    with pytest.raises(FileNotFoundError, match="graspsim train det_seg"):
        check_policy_args("det_seg", {"checkpoint": "no_such_model"})
    with pytest.raises(FileNotFoundError, match="graspsim train grconvnet"):
        check_policy_args("grconvnet", {"checkpoint": str(tmp_path)})
    check_policy_args("clip_sam", {"clip": str(tmp_path / "no-such-clip")}, check_files=False)  # keys/values only


def test_checking_learned_policies_imports_no_torch():
    code = (
        "import sys\n"
        "from graspsim.policies.registry import check_policy_args\n"
        "check_policy_args('clip_sam', {'prompt_mode': 'box', 'zoom': 'false'})\n"
        "for name in ('det_seg', 'grconvnet'):\n"
        "    try:\n"
        "        check_policy_args(name, {})\n"
        "    except FileNotFoundError:\n"
        "        pass  # no shipped checkpoint in this checkout: the check still ran without torch\n"
        "print(sorted(m for m in ('torch', 'transformers', 'pybullet') if m in sys.modules))\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_refuses_a_misspelt_key_in_one_line_before_loading_anything(tmp_path):
    code = (
        "import sys\n"
        "from graspsim.cli import main\n"
        "try:\n"
        f"    main(['bench', '--policy', 'clip_sam', '--policy-arg', 'promt_mode=box', '--episodes', '1',"
        f" '--out', {str(tmp_path / 'run')!r}])\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, sorted(m for m in ('torch', 'transformers', 'pybullet') if m in sys.modules))\n"
    )
    result = _run_python(code)
    assert result.stdout.strip() == "exit 2 []", result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: unknown --policy-arg 'promt_mode' for policy clip_sam")
    assert "valid keys: box_refine, cam_layer, cam_method, clip," in lines[0]
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_bad_value_in_one_line():
    result = CliRunner().invoke(__import__("graspsim.cli", fromlist=["main"]).main,
                                ["bench", "--policy", "clip_sam", "--policy-arg", "prompt_mode=boxx", "--episodes",
                                 "1"])
    assert result.exit_code == 2
    assert "Error: bad --policy-arg prompt_mode='boxx' for policy clip_sam: expected one of 'point'" in result.output


class _ThirdPartyPolicy:
    name = "third_party"
    needs_privileged = False

    def __init__(self, width_px: float = 10.0, *, flavour: str = "plain"):
        self.width_px, self.flavour = width_px, flavour


class _AnythingGoesPolicy:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def test_third_party_policies_are_checked_against_their_signature(monkeypatch):
    targets = {"third_party": registry.PolicyTarget(f"{__name__}:_ThirdPartyPolicy"),
               "anything": registry.PolicyTarget(f"{__name__}:_AnythingGoesPolicy")}
    real_targets = registry._targets
    monkeypatch.setattr(registry, "_targets", lambda: {**real_targets(), **targets})
    assert resolve_config("third_party") is None
    with pytest.raises(PolicyArgError, match="unknown --policy-arg 'speed' for policy third_party; "
                                             "valid keys: flavour, width_px$"):
        check_policy_args("third_party", {"speed": 3})
    assert make_policy("third_party", flavour="salty").flavour == "salty"
    assert make_policy("anything", colour="red").kwargs == {"colour": "red"}


# --------------------------------------------------------------------------- built once per worker


class _CountingRunner:
    """An EpisodeRunner in a pool worker that reports, per job, how often its process built runners and policies."""

    def __init__(self, spec):
        from graspsim.bench.runner import EpisodeRunner

        self.runner = EpisodeRunner(spec)

    def run(self, episode_id, scene_seed):
        from graspsim.bench.runner import EpisodeRunner

        return os.getpid(), EpisodeRunner.built_in_process, registry.BUILT_IN_PROCESS["oracle"]

    def close(self):
        self.runner.close()


def test_each_worker_builds_its_policy_once():
    from graspsim.bench.runner import RunSpec
    from graspsim.pool import run_jobs

    spec = RunSpec(policy="oracle", suite="tabletop-test", episodes=6, renderer="tiny", width=320, height=240)
    results = list(run_jobs(_CountingRunner, (spec,), spec.jobs(), workers=2))
    assert len(results) == 6
    assert {(runners, policies) for _, runners, policies in results} == {(1, 1)}
    pids = {pid for pid, _, _ in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # a fast worker may take every job


@pytest.mark.parametrize("workers, built_here", [(1, 1), (2, 0)])
def test_bench_builds_no_policy_in_the_parent_just_to_check_it(tmp_path, workers, built_here):
    from graspsim.cli import main

    before = registry.BUILT_IN_PROCESS["oracle"]
    result = CliRunner().invoke(main, ["bench", "--policy", "oracle", "--suite", "tabletop-test", "--episodes", "2",
                                       "--workers", str(workers), "--out", str(tmp_path / "run"), *SMALL])
    assert result.exit_code == 0, result.output
    assert registry.BUILT_IN_PROCESS["oracle"] - before == built_here
    assert Path(tmp_path / "run" / "results.jsonl").read_text().count("\n") == 2
