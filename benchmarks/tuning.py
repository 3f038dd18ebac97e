"""Autotuning benchmark on qemu-m7 (deterministic instruction counts, estimated cycles).

For each bundled model: whole-model cycles and instructions per inference with the TE default
schedules (`schedules/default.py`), with the SIMD templates' default configs (untuned build),
and with the best configs after `--trials` tuning trials; speed-up, cycles/MAC and
instructions/MAC. Then, on one convolution workload with a small space (24 configs), the best
config found by the XGBoost tuner vs random search after equal trials (25% of the space),
against the exhaustive optimum (every config measured once on the board; the searches replay
those deterministic measurements, averaged over seeds).

    python benchmarks/tuning.py [--trials 300] [--models vww_96_int8 ...] [--logs DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from schedules.dispatch import use_default_schedules  # noqa: E402
from schedules.space import config_key  # noqa: E402
from schedules.tuner import make_tuner  # noqa: E402
from tvm_tinyml.run import run_on_board  # noqa: E402
from tvm_tinyml.tune import exhaustive, extract_tasks, tune  # noqa: E402

BOARD = "qemu-m7"


def model_row(model: Path, trials: int, logs: Path) -> dict:
    with use_default_schedules():
        te = run_on_board(str(model), BOARD, inputs=1)
    untuned = run_on_board(str(model), BOARD, inputs=1)
    log = logs / f"{model.stem}.jsonl"
    result = tune(str(model), BOARD, trials=trials, log_path=str(log), measure_model=False)
    tuned = run_on_board(str(model), BOARD, inputs=1, tuning_log=str(log))
    macs = tuned.macs or 1
    return {
        "model": model.stem, "trials": result.trials, "tasks": result.tasks,
        "te_default_cycles": te.cycles, "te_default_instructions": te.instructions,
        "untuned_cycles": untuned.cycles, "untuned_instructions": untuned.instructions,
        "tuned_cycles": tuned.cycles, "tuned_instructions": tuned.instructions,
        "speedup_vs_te_default": te.cycles / tuned.cycles, "speedup_vs_untuned": untuned.cycles / tuned.cycles,
        "cycles_per_mac": tuned.cycles / macs, "instructions_per_mac": tuned.instructions / macs,
        "bit_exact": te.bit_exact and untuned.bit_exact and tuned.bit_exact, "macs": macs,
    }


def small_space(model: Path, seeds: int = 10) -> dict:
    task = next(t for t in extract_tasks(str(model), BOARD) if t.op == "conv2d" and json.loads(t.key)["shapes"][1][0] == 3)
    table = {config_key(m.config): m.cycles for m in exhaustive(task, BOARD) if m.error is None}
    optimum = min(table.values())
    budget = max(1, len(task.space) // 4)

    def search(kind: str, seed: int) -> float:
        tuner = make_tuner(kind, task.op, task.key, seed=seed)
        while len(tuner.seen) < budget:
            batch = tuner.next_batch(min(2, budget - len(tuner.seen)))
            if not batch:
                break
            for config in batch:
                tuner.update(config, table.get(config_key(config)))
        return tuner.best_cost

    xgb = [search("xgb", s) for s in range(seeds)]
    rnd = [search("random", s) for s in range(seeds)]
    return {"workload": task.key, "space": len(task.space), "trials": budget, "exhaustive_best": optimum,
            "xgb_best_mean": float(np.mean(xgb)), "random_best_mean": float(np.mean(rnd)),
            "xgb_fraction_of_optimum": float(np.mean([optimum / x for x in xgb])),
            "random_fraction_of_optimum": float(np.mean([optimum / x for x in rnd]))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--logs", default=str(REPO / "out" / "tuning"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    models = [REPO / "models" / f"{m}.tflite" for m in args.models] if args.models else sorted((REPO / "models").glob("*.tflite"))
    rows = [model_row(m, args.trials, logs) for m in models]
    small = small_space(REPO / "models" / "pretrainedResnet_quant.tflite")
    if args.json:
        print(json.dumps({"models": rows, "small_space": small}, indent=2))
        return
    print("| model | TE default cycles | untuned cycles | tuned cycles | tuned instructions | speed-up vs TE default | cycles / MAC | instructions / MAC | trials | bit-exact |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['te_default_cycles']:,} | {r['untuned_cycles']:,} | {r['tuned_cycles']:,} | {r['tuned_instructions']:,} | "
              f"{r['speedup_vs_te_default']:.2f}x | {r['cycles_per_mac']:.2f} | {r['instructions_per_mac']:.2f} | {r['trials']} | "
              f"{'yes' if r['bit_exact'] else 'NO'} |")
    print()
    print(f"Small space ({small['space']} configs, {small['trials']} trials = 25%): exhaustive best {small['exhaustive_best']:,} cycles; "
          f"XGBoost reaches {small['xgb_fraction_of_optimum']:.1%} of it on average, random search {small['random_fraction_of_optimum']:.1%}.")


if __name__ == "__main__":
    main()
