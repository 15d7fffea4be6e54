"""The shared run-directory layouts (graspsim.runs) beyond the benchmark's, and the one worker pool (graspsim.pool)."""

from __future__ import annotations

import json
import os
import time
import pytest

from graspsim.pool import WorkerDiedError, run_jobs
from graspsim.runs import (JsonlWriter, RecordsFileError, RunDirError, RunLayout, check_run_dir, config_differences,
                           prepare_run_dir, read_jsonl)

TRAIN_LIKE = RunLayout(config_name="train.json", records_name="metrics.jsonl", key="epoch",
                       volatile=frozenset({"threads", "config.version"}), what="training run", empty_for_new=True,
                       resume_from_nothing=True)


def test_nested_volatile_key_is_skipped_and_other_nested_keys_are_named():
    stored = {"suite": "s", "config": {"width": 160, "version": "0.1"}, "threads": 1}
    same = {"suite": "s", "config": {"width": 160, "version": "0.2"}, "threads": 4}
    assert config_differences(stored, same, TRAIN_LIKE.volatile) == []
    other = {"suite": "s", "config": {"width": 64, "version": "0.1"}, "threads": 1}
    assert config_differences(stored, other, TRAIN_LIKE.volatile) == [("config.width", 160, 64)]
    # without a dotted volatile entry the nested dict is compared whole
    assert config_differences(stored, other, frozenset()) == [("config", stored["config"], other["config"])]


def test_layout_needing_an_empty_dir(tmp_path):
    run = tmp_path / "run"
    assert check_run_dir(run, {"lr": 1}, resume=True, layout=TRAIN_LIKE) is None  # resume from nothing: new run
    prepare_run_dir(run, {"lr": 1, "threads": 1}, resume=False, layout=TRAIN_LIKE)
    with pytest.raises(RunDirError, match="not empty .*train.json.*--resume"):
        prepare_run_dir(run, {"lr": 1}, resume=False, layout=TRAIN_LIKE)
    with pytest.raises(RunDirError, match="(?s)'lr'.*stored 1, requested 2"):
        prepare_run_dir(run, {"lr": 2, "threads": 1}, resume=True, layout=TRAIN_LIKE)
    with JsonlWriter(run / "metrics.jsonl", key="epoch") as w:
        w.append({"epoch": 1, "loss": 0.5})
        with pytest.raises(ValueError, match="epoch 1 was already appended"):
            w.append({"epoch": 1, "loss": 0.4})
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b'{"epoch": 2, "lo')  # a kill in the middle of a write
    with pytest.warns(UserWarning, match="partial last line"):
        done = prepare_run_dir(run, {"lr": 1, "threads": 8}, resume=True, layout=TRAIN_LIKE)
    assert done == {1}
    assert json.loads((run / "train.json").read_text())["threads"] == 8
    assert read_jsonl(run / "metrics.jsonl", "epoch") == [{"epoch": 1, "loss": 0.5}]


def test_unkeyed_records_and_damage_in_the_middle(tmp_path):
    path = tmp_path / "log.jsonl"
    with JsonlWriter(path, key=None) as w:
        w.append({"a": 1})
        w.append({"a": 1})  # no key: repeats are fine
    assert read_jsonl(path, None) == [{"a": 1}, {"a": 1}]
    path.write_bytes(b'{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(RecordsFileError, match="line 2"):
        read_jsonl(path, None)


# --------------------------------------------------------------------------- pool


class SquareRunner:
    """A job runner for the pool tests: counts how often it was built in this process."""

    built = 0

    def __init__(self, offset: int):
        SquareRunner.built += 1
        self.offset = offset

    def run(self, job_id: int, value: int):
        if value < 0:
            os._exit(3)  # a worker that dies (as if killed or out of memory)
        return job_id, value * value + self.offset, os.getpid(), SquareRunner.built

    def close(self) -> None:
        pass


def test_pool_gives_the_serial_results_and_builds_one_runner_per_worker():
    jobs = [(i, i + 1) for i in range(8)]
    serial = list(run_jobs(SquareRunner, (10,), jobs, workers=1))
    assert [r[:2] for r in serial] == [(i, (i + 1) ** 2 + 10) for i in range(8)]
    parallel = list(run_jobs(SquareRunner, (10,), jobs, workers=2))
    assert sorted(r[:2] for r in parallel) == [r[:2] for r in serial]
    pids = {r[2] for r in parallel}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert {r[3] for r in parallel} == {1}  # each worker built its runner once
    assert list(run_jobs(SquareRunner, (0,), [], workers=2)) == []


def test_a_dying_worker_fails_the_run_naming_its_job_instead_of_hanging():
    jobs = [(0, 1), (1, -1), (2, 2), (3, 3)]
    t0 = time.monotonic()
    with pytest.raises(WorkerDiedError) as caught:
        list(run_jobs(SquareRunner, (0,), jobs, workers=2, label=lambda job: f"job {job[0]}"))
    assert time.monotonic() - t0 < 60
    assert caught.value.jobs == ["job 1"]
    message = str(caught.value)
    assert "\n" not in message and "exited with status 3 while running job 1" in message and "--resume" in message


def test_fresh_pools_give_the_same_results_from_new_processes():
    """jobs_per_pool: each batch of jobs runs on new processes (one worker too, then in a child process)."""
    jobs = [(i, i + 1) for i in range(5)]
    expected = [(i, (i + 1) ** 2 + 10) for i in range(5)]
    one = list(run_jobs(SquareRunner, (10,), jobs, workers=1, jobs_per_pool=2))
    assert [r[:2] for r in one] == expected
    pids = [r[2] for r in one]
    assert os.getpid() not in pids and pids[0] == pids[1] != pids[2] == pids[3] != pids[4] != pids[0]
    assert [r[3] for r in one] == [1, 1, 1, 1, 1]  # every process built its runner once
    two = list(run_jobs(SquareRunner, (10,), jobs, workers=2, jobs_per_pool=2))
    assert sorted(r[:2] for r in two) == expected
    batches = [{r[2] for r in two if r[0] // 2 == b} for b in range(3)]
    assert all(len(p) <= 2 for p in batches) and not (batches[0] & batches[1] or batches[1] & batches[2]
                                                      or batches[0] & batches[2])
    with pytest.raises(ValueError, match="jobs_per_pool must be >= 1"):
        list(run_jobs(SquareRunner, (10,), jobs, workers=1, jobs_per_pool=0))
