"""Whole-model configurations under a flash budget, from measured per-layer costs.

Every measured, bit-exact config of a task is an option: its cost is the cycles measured for
the kernel times the layers sharing the workload, its flash the bytes the config stores for
those layers (weights and requantization tables in its layouts: int16 weights take twice the
int8 ones). Choosing one option per task so that the total cycles are least and the model's
weights stay within the budget is a multiple-choice knapsack; `front` solves it exactly by
merging the tasks' (flash, cycles) Pareto fronts one task at a time (a DP over layers whose
states are the non-dominated partial choices), and `choose` reads the budget off the front.
A model's other constants (non-tunable kernels) do not depend on the choice: the flash of a
choice is the untuned build's plus the options' differences from the default configs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from schedules.space import config_key, constant_transforms, default_config


@dataclass(frozen=True)
class Option:
    """One config of one task: its cycles and flash over all the task's layers."""

    config: dict
    cycles: float
    flash: int


@dataclass
class Choice:
    """A whole-model choice: config per workload, predicted cycles of the tuned kernels, flash change."""

    configs: dict[str, dict]
    cycles: float
    flash_delta: int  # bytes more (or fewer) than the default configs store


def config_flash(task, config: dict) -> int:
    """Bytes `config` stores in flash for the constants of all the task's layers."""
    transforms = constant_transforms(task.func, config)
    one = sum(int((transforms[i](data) if i in transforms else data).nbytes) for i, data in task.constants.items())
    return one * task.layers


def task_options(task, records: dict[str, dict]) -> list[Option]:
    """The task's non-dominated (flash, cycles) options from its valid measured records."""
    options = [Option(r["config"], float(r["cycles"]) * task.layers, config_flash(task, r["config"]))
               for r in records.values() if r.get("error") is None and r.get("cycles") is not None]
    return _pareto(options, lambda o: (o.flash, o.cycles))


def _pareto(items: list, key) -> list:
    """The items no other item beats in both coordinates of `key`, by the first coordinate."""
    out, best = [], float("inf")
    for item in sorted(items, key=key):
        if key(item)[1] < best:
            out.append(item)
            best = key(item)[1]
    return out


def front(keys: list[str], options: list[list[Option]], bases: list[int]) -> list[Choice]:
    """Every non-dominated whole-model choice (flash delta vs cycles), fewest flash first: one
    option per workload `keys[i]`, whose default config stores `bases[i]` bytes. A workload
    without a measured option keeps its default config (the same in every choice)."""
    states = [Choice({}, 0.0, 0)]
    for key, opts, base in zip(keys, options, bases):
        if not opts:
            continue
        merged = [Choice({**s.configs, key: o.config}, s.cycles + o.cycles, s.flash_delta + o.flash - base)
                  for s in states for o in opts]
        states = _pareto(merged, lambda c: (c.flash_delta, c.cycles))
    return states


def task_front(searches: list) -> list[Choice]:
    """`front` over the measured options of the tasks' searches (`tune.TaskSearch`)."""
    return front([s.task.key for s in searches], [task_options(s.task, s.done) for s in searches],
                 [config_flash(s.task, default_config(s.task.op)) for s in searches])


def choose(choices: list[Choice], max_delta: float) -> Choice | None:
    """The fastest choice whose flash delta is at most `max_delta` (None: none fits)."""
    fitting = [c for c in choices if c.flash_delta <= max_delta]
    return min(fitting, key=lambda c: c.cycles) if fitting else None



# ---------------------------------------------------------------- whole-model builds

PARETO_POINTS = 4  # choices measured between the least and the most flash with --pareto


def _build_entry(label: str, run, configs: dict, patch: str) -> dict:
    return {"label": label, "cycles": run.cycles, "instructions": run.instructions, "flash_bytes": run.weights_bytes,
            "peak_bytes": run.arena_bytes, "bit_exact": run.bit_exact, "configs": configs, "patch": patch}


def measure_budgeted(result, model: str, board: str, searches: list, *, seed: int = 0, pareto: str | None = None,
                     te_default: bool = True, cache: dict | None = None) -> None:
    """Measure whole-model builds on `board` and fill `result`: TVM's default schedules
    (`default_cycles`, unless not `te_default`), the untuned build, and the fastest choice of the
    measured configs within the budgets; the tuned build is the fastest of them measured within
    the budgets (bit-exact, else an error). With `pareto`, more choices along the flash front are
    measured and plotted. `cache` keeps runs across calls (key: configs and patch plan)."""
    from schedules.dispatch import use_default_schedules
    from tvm_tinyml.errors import TinyMLError
    from tvm_tinyml.run import run_on_board

    sram, flash = result.sram_budget, result.flash_budget
    cache = {} if cache is None else cache
    ops = {s.task.key: s.task.op for s in searches}

    def run(configs: dict, patch: str):
        key = (json.dumps(configs, sort_keys=True), patch)
        if key not in cache:
            cache[key] = run_on_board(model, board, inputs=1, seed=seed, configs=configs, flash_budget=flash, patch=patch)
            if not cache[key].bit_exact:
                raise TinyMLError(f"{model}: the tuned build is not bit-exact on {board}")
        return cache[key]

    if te_default:
        with use_default_schedules():
            result.default_cycles = run_on_board(model, board, inputs=1, seed=seed).cycles
    patch = "off"
    untuned = run({}, patch)
    if untuned.arena_bytes > sram:  # the memory planner in the loop: patches lower the peak
        patch = "auto"
        untuned = run({}, patch)
    if untuned.arena_bytes > sram or untuned.weights_bytes > flash:
        raise TinyMLError(f"{result.model}: the smallest build needs {untuned.arena_bytes:,} B of SRAM and "
                          f"{untuned.weights_bytes:,} B of flash; budgets {sram:,} B and {flash:,} B")
    builds = [_build_entry("untuned", untuned, {}, patch)]
    choices = task_front(searches)
    picks = [("at budget", choose(choices, flash - untuned.weights_bytes))]
    if pareto and choices:
        low, high = choices[0].flash_delta, choices[-1].flash_delta
        picks += [("front", choose(choices, low + (high - low) * i / (PARETO_POINTS - 1))) for i in range(PARETO_POINTS)]
    seen: list[dict] = [{}]
    for label, pick in picks:
        if pick is None:
            continue
        configs = {k: c for k, c in pick.configs.items() if config_key(c) != config_key(default_config(ops[k]))}
        if configs in seen:
            continue
        seen.append(configs)
        builds.append(_build_entry(label, run(configs, patch), configs, patch))
    fitting = [b for b in builds if b["flash_bytes"] <= flash and b["peak_bytes"] <= sram]
    best = min(fitting, key=lambda b: b["cycles"])
    result.tuned_cycles, result.peak_bytes, result.flash_bytes = best["cycles"], best["peak_bytes"], best["flash_bytes"]
    result.builds = builds
    if pareto:
        plot_pareto(builds, pareto, result.model, flash, sram)


def plot_pareto(builds: list[dict], path: str, model: str, flash_budget: int, sram_budget: int) -> None:
    """Measured latency against flash, SRAM peak as colour; the non-dominated builds joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = ax.scatter([b["flash_bytes"] for b in builds], [b["cycles"] for b in builds],
                        c=[b["peak_bytes"] for b in builds], cmap="viridis", zorder=3)
    fig.colorbar(points, ax=ax, label="peak SRAM (B)")
    best = _pareto(builds, lambda b: (b["flash_bytes"], b["cycles"]))
    ax.plot([b["flash_bytes"] for b in best], [b["cycles"] for b in best], "-", color="0.5", zorder=2, label="front")
    for b in builds:
        ax.annotate(b["label"], (b["flash_bytes"], b["cycles"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if flash_budget < 2 * max(b["flash_bytes"] for b in builds):
        ax.axvline(flash_budget, color="r", ls="--", lw=1, label=f"flash budget {flash_budget:,} B")
    ax.set_xlabel("flash: weights (B)")
    ax.set_ylabel("cycles per inference (measured)")
    ax.set_title(f"{model}: measured latency / flash / SRAM (SRAM budget {sram_budget:,} B)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
