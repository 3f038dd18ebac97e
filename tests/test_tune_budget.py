"""Budget-aware whole-model choice: the knapsack front is exact (against brute force), and the
flash a choice is predicted to store is what the build stores."""

from __future__ import annotations

import itertools
import random

from conftest import MODELS
from schedules.space import config_key, default_config, int16_weight_config, space
from tvm_tinyml.builder import build
from tvm_tinyml.tune import extract_tasks
from tvm_tinyml.tune_budget import Option, choose, config_flash, front


def test_front_is_the_exact_knapsack_optimum():
    rng = random.Random(3)
    for _ in range(20):
        keys = [f"w{i}" for i in range(4)]
        options = [[Option({"i": j}, rng.randint(50, 500), rng.randint(0, 300)) for j in range(rng.randint(1, 4))] for _ in keys]
        bases = [rng.randint(0, 200) for _ in keys]
        choices = front(keys, options, bases)
        assert [c.flash_delta for c in choices] == sorted(c.flash_delta for c in choices)
        for limit in (-300, -50, 0, 100, 400, 2000):
            combos = [(sum(o.flash - b for o, b in zip(combo, bases)), sum(o.cycles for o in combo), combo)
                      for combo in itertools.product(*options)]
            fitting = [c for c in combos if c[0] <= limit]
            best = choose(choices, limit)
            if not fitting:
                assert best is None
                continue
            assert best.cycles == min(c[1] for c in fitting) and best.flash_delta <= limit
            assert len(best.configs) == len(keys)


def test_predicted_flash_is_the_built_flash():
    model = str(MODELS / "kws_ref_model.tflite")
    tasks = extract_tasks(model, "host")
    untuned = build(model, target="host")
    configs, delta = {}, 0
    for task in tasks:  # int16 weights on every conv / dense, the other kernels their non-default config
        pick = ({**default_config(task.op), **int16_weight_config(task.op)} if int16_weight_config(task.op)
                else next(c for c in space(task.op) if config_key(c) != config_key(default_config(task.op))))
        configs[task.key] = pick
        delta += config_flash(task, pick) - config_flash(task, default_config(task.op))
    assert delta > 0
    tuned = build(model, target="host", configs=configs, flash_budget=10**9)
    assert tuned.memory.flash_bytes == untuned.memory.flash_bytes + delta
