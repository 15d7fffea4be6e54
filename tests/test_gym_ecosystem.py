"""graspsim with the tools users bring: Gymnasium's vector environments and pickling, policies on the Gym API."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import graspsim  # noqa: F401  (registers the environments)
from graspsim.envs.text_space import InstructionText
from graspsim.policies.base import PolicyError, as_observation, policy_rng
from graspsim.policies.registry import make_policy

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(width=160, height=120)


def _run_python(code: str, timeout: float) -> dict:
    """Run ``code`` in a fresh interpreter (no simulator or GL state inherited from this one); its last stdout line
    is JSON."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_async_vector_env_with_gymnasium_defaults_forks_and_matches_separate_envs():
    # Gymnasium's defaults: fork on Linux, shared memory, next-step autoreset. A fresh interpreter, as a user's
    # script would be; the timeout turns the old hang (EGL state forked into the workers) into a failure.
    code = """
        import json, numpy as np, gymnasium as gym, graspsim
        from graspsim.envs.pick_env import PickEnv
        seeds, action = [11, 12], np.array([80, 60, 30, 10, 0.0], dtype=np.float32)
        envs = gym.vector.AsyncVectorEnv([lambda: gym.make("graspsim/TabletopPick-v0", width=160, height=120)] * 2)
        assert envs.shared_memory and envs.context in (None, "fork")
        obs, _ = envs.reset(seed=seeds)
        obs2, reward, terminated, _, info = envs.step(np.stack([action, action]))
        vec = {"instruction": list(obs["instruction"]), "instruction_after_step": list(obs2["instruction"]),
               "rgb": [int(obs["rgb"][i].astype(np.int64).sum()) for i in range(2)],
               "reward": reward.tolist(), "terminated": terminated.tolist(), "reason": list(info["reason"])}
        # the step after an explicit reset is a real attempt again
        envs.reset(seed=seeds)
        _, _, terminated_again, _, info_again = envs.step(np.stack([action, action]))
        vec["terminated_after_reset"] = terminated_again.tolist()
        envs.close()
        sep = {"instruction": [], "rgb": [], "reward": [], "reason": []}
        for s in seeds:
            env = PickEnv(kind="tabletop", width=160, height=120)
            o, _ = env.reset(seed=s)
            _, r, _, _, i = env.step(action)
            env.close()
            sep["instruction"].append(o["instruction"]); sep["rgb"].append(int(o["rgb"].astype(np.int64).sum()))
            sep["reward"].append(r); sep["reason"].append(i["reason"])
        print(json.dumps({"vec": vec, "sep": sep}))
    """
    out = _run_python(code, timeout=180)
    vec, sep = out["vec"], out["sep"]
    assert all(text.startswith("pick the ") for text in vec["instruction"]), vec["instruction"]
    for key in ("instruction", "rgb", "reward", "reason"):
        assert vec[key] == sep[key], key
    assert vec["instruction_after_step"] == vec["instruction"]  # one attempt per episode: the obs is unchanged
    assert vec["terminated"] == [True, True] and vec["terminated_after_reset"] == [True, True]


def test_instruction_space_round_trips_through_shared_memory():
    from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

    space = gym.spaces.Dict({"instruction": InstructionText(max_length=40, charset="abcdefghijklmnopqrstuvwxyz "),
                             "k": gym.spaces.Discrete(3)})
    memory = create_shared_memory(space, n=2)
    batched = read_from_shared_memory(space, memory, n=2)  # read once, before anything is written (as the env does)
    write_to_shared_memory(space, 0, {"instruction": "pick the cap", "k": 1}, memory)
    write_to_shared_memory(space, 1, {"instruction": "pick the can", "k": 2}, memory)
    import copy

    assert copy.deepcopy(batched)["instruction"] == ("pick the cap", "pick the can")
    write_to_shared_memory(space, 1, {"instruction": "z", "k": 0}, memory)
    assert tuple(batched["instruction"]) == ("pick the cap", "z")
    assert batched["instruction"][::-1] == ("z", "pick the cap")


def test_gymnasium_pickle_pattern_and_independent_copies():
    env = gym.make("graspsim/TabletopPick-v0", **SMALL)
    pickled_env = pickle.loads(pickle.dumps(env))
    # Gymnasium's own pickle test (tests/envs/test_envs.py::test_pickle_env)
    data_equivalence(env.reset(seed=0), pickled_env.reset(seed=0))
    action = env.action_space.sample()
    data_equivalence(env.step(action), pickled_env.step(action))
    # the copy drives its own simulator: closing it leaves the original working, and vice versa
    assert pickled_env.unwrapped.world is not env.unwrapped.world
    pickled_env.close()
    obs, _ = env.reset(seed=3)
    assert obs["rgb"].shape == (120, 160, 3)
    # a copy of an environment in the middle of a run continues its generator: the same next (unseeded) scene
    copy_after = pickle.loads(pickle.dumps(env))
    first, first_info = env.reset()
    second, second_info = copy_after.reset()
    assert first_info["scene_seed"] == second_info["scene_seed"] and first["instruction"] == second["instruction"]
    env.close()
    obs, _ = copy_after.reset(seed=3)
    assert obs["rgb"].shape == (120, 160, 3)
    copy_after.close()


def test_unpickled_in_another_process_builds_the_same_scene(tmp_path):
    env = gym.make("graspsim/ShelfPick-v0", **SMALL)
    obs, info = env.reset(seed=1_000_004)
    (tmp_path / "env.pkl").write_bytes(pickle.dumps(env))
    code = f"""
        import json, pickle, numpy as np
        env = pickle.loads(open({str(tmp_path / 'env.pkl')!r}, "rb").read())
        obs, info = env.reset(seed=1_000_004)
        print(json.dumps({{"instruction": obs["instruction"], "rgb": int(obs["rgb"].astype(np.int64).sum())}}))
        env.close()
    """
    other = _run_python(code, timeout=120)
    assert other == {"instruction": obs["instruction"], "rgb": int(obs["rgb"].astype(np.int64).sum())}
    env.close()


def test_suite_seed_is_the_suites_scene_and_matches_an_absolute_seed():
    from graspsim.scenes.suites import get_suite

    suite = get_suite("tabletop-test")
    by_index = gym.make("graspsim/TabletopPick-v0", suite="tabletop-test", **SMALL)
    absolute = gym.make("graspsim/TabletopPick-v0", **SMALL)
    obs_i, info_i = by_index.reset(seed=2)
    obs_a, info_a = absolute.reset(seed=suite.first_seed + 2)
    assert info_i["scene_seed"] == info_a["scene_seed"] == suite.first_seed + 2
    assert obs_i["instruction"] == obs_a["instruction"] and np.array_equal(obs_i["rgb"], obs_a["rgb"])
    by_index.close()
    absolute.close()
    with pytest.raises(ValueError, match="suite 'shelf-test' has kind 'shelf', not 'tabletop'"):
        gym.make("graspsim/TabletopPick-v0", suite="shelf-test")


def test_builtin_policies_act_on_the_observation_dict():
    env = gym.make("graspsim/TabletopPick-v0", privileged=True, **SMALL)
    obs, info = env.reset(seed=10_000_001)
    observation = as_observation(obs)
    assert observation.target_class == info["target_class_name"] and observation.scene_kind == "tabletop"
    assert np.array_equal(observation.approach_world, info["approach_world"])
    for name in ("oracle", "heuristic", "random"):
        policy = make_policy(name)
        policy.reset(policy_rng(info["scene_seed"]))
        from_dict = policy.act(obs).rect.as_array()
        policy.reset(policy_rng(info["scene_seed"]))
        assert np.array_equal(from_dict, policy.act(observation).rect.as_array()), name
    env.close()
    plain = gym.make("graspsim/TabletopPick-v0", **SMALL)
    obs, _ = plain.reset(seed=10_000_001)
    with pytest.raises(PolicyError, match="privileged"):
        make_policy("oracle").act(obs)
    plain.close()


def _readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README.md lost its python block after <!-- {marker} -->"
    return match.group(1)


def test_readme_vector_loop_runs_the_oracle_like_bench(tmp_path):
    code = _readme_block("vector-loop") + textwrap.dedent("""
        import json
        print(json.dumps({"reward": reward.tolist(), "reason": [r for r in info["reason"]]}))
    """)
    out = _run_python(code, timeout=240)
    from click.testing import CliRunner

    from graspsim.cli import main

    result = CliRunner().invoke(main, ["bench", "--policy", "oracle", "--suite", "tabletop-test", "--episodes", "2",
                                       "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = sorted((json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()),
                  key=lambda row: row["episode_id"])
    assert out["reward"] == [float(row["success"]) for row in rows]
    assert out["reason"] == [row["reason"] for row in rows]


def test_readme_gym_loop_reaches_the_bench_outcome(tmp_path):
    from click.testing import CliRunner

    from graspsim.cli import main

    namespace: dict = {}
    exec(compile(_readme_block("gym-loop"), "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    suite, index, info = namespace["SUITE"], namespace["SCENE"], namespace["info"]
    result = CliRunner().invoke(main, ["bench", "--policy", "oracle", "--suite", suite, "--seed", str(index),
                                       "--episodes", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[0])
    assert row["scene_seed"] == namespace["scene_seed"]
    assert (row["success"], row["reason"]) == (info["success"], info["reason"])
    assert row["instruction"] == namespace["instruction"]
    assert np.allclose(list(row["rect"].values()), list(info["rect"].values()))
