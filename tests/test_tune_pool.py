"""Measurement workers: a pool of 2 (spawned processes, Ray actors on a local cluster) measures
the same workloads as the sequential run, never a config twice, and a worker killed mid-batch
loses nothing: its batch is measured again by its replacement and written once, by the driver."""

from __future__ import annotations

import collections
import os
import signal

import pytest

from conftest import MODELS
from schedules.space import config_key
from schedules.tuning_log import TuningLog, read_log
from tvm_tinyml.tune import allocate_trials, extract_tasks, search
from tvm_tinyml.tune_pool import InlinePool, LocalPool, RayPool

MODEL = str(MODELS / "ad01_int8.tflite")
TRIALS = 6


@pytest.fixture(scope="module")
def tasks():
    return extract_tasks(MODEL, "qemu-m7")


def _measured(path) -> list[tuple[str, str]]:
    return [(r["workload"], config_key(r["config"])) for r in read_log(path)]


@pytest.fixture(scope="module")
def sequential(tasks, tmp_path_factory):
    log = TuningLog(tmp_path_factory.mktemp("seq") / "log.jsonl")
    with InlinePool(MODEL, "qemu-m7", "qemu-m7", [None], tasks) as pool:
        search(tasks, allocate_trials(tasks, TRIALS), log, pool, tuner="grid", batch=2)
    return _measured(log.path)


def _run_killing_a_worker(pool, tasks, path) -> list[tuple[str, str]]:
    """Search with `pool`, killing worker 1's process as soon as the first batch is back."""
    victim = pool.pid(1)
    killed = []

    def kill(task, n, best):
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    search(tasks, allocate_trials(tasks, TRIALS), TuningLog(path), pool, tuner="grid", batch=2, on_batch=kill)
    assert killed and pool.restarts >= 1
    return _measured(path)


def _same_as_sequential(measured, sequential):
    assert len(measured) == len(set(measured)) == TRIALS  # nothing measured twice, nothing lost
    assert sorted(measured) == sorted(sequential)  # the grid tuner's configs: the same workloads and configs
    assert collections.Counter(w for w, _ in measured) == collections.Counter(w for w, _ in sequential)


def test_two_local_workers_match_the_sequential_run_after_a_kill(tasks, sequential, tmp_path):
    with LocalPool(MODEL, "qemu-m7", "qemu-m7", [None, None]) as pool:
        measured = _run_killing_a_worker(pool, tasks, tmp_path / "log.jsonl")
    _same_as_sequential(measured, sequential)


def test_ray_actors_match_the_sequential_run_after_a_kill_and_resume(tasks, sequential, tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    try:
        with RayPool(MODEL, "qemu-m7", "qemu-m7", [None, None], None) as pool:
            measured = _run_killing_a_worker(pool, tasks, tmp_path / "log.jsonl")
            _same_as_sequential(measured, sequential)
            # resume: a second session over the complete log measures nothing again
            search(tasks, allocate_trials(tasks, TRIALS), TuningLog(tmp_path / "log.jsonl"), pool, tuner="grid", batch=2)
        assert _measured(tmp_path / "log.jsonl") == measured
    finally:
        ray.shutdown()
