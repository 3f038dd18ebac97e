"""Autotuning benchmark on qemu-m7 (deterministic instruction counts, estimated cycles).

For each model: `--trials` tuning trials on `--workers` emulated boards, then the tuned build
(the fastest measured choice of the tuned configs within the budget, `tune_budget`) at three
flash budgets: the int8 minimum (the model's int8 weights + 10%), the target default (3/4 of
the flash, the builder's rule for int16 weights) and unlimited (all the board's flash), each
against the untuned build and the best fixed rule (all int8 weights, or all int16 weights where
they fit). Then measurements per second with 1 and 2 workers (kws, steady state), and on one
convolution workload with a small space (every config measured once on the board), the best
config found by the XGBoost tuner vs random search after equal trials (25% of the space),
against the exhaustive optimum (the searches replay those measurements, averaged over seeds).

    python benchmarks/tuning.py [--trials 300] [--workers 2] [--models vww_96_int8 ...] [--logs DIR]
                                [--skip models|throughput|small_space] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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


def model_row(model: Path, trials: int, logs: Path, workers: int) -> dict:
    """Tune `model` once, then the tuned build at three flash budgets against the fixed rules."""
    from schedules.tuning_log import TuningLog
    from tvm_tinyml.targets import get_target
    from tvm_tinyml.tune import TuneResult, load_searches
    from tvm_tinyml.tune_budget import measure_budgeted

    log = logs / f"{model.stem}.jsonl"
    result = tune(str(model), BOARD, trials=trials, log_path=str(log), measure_model=False, workers=workers)
    tasks = extract_tasks(str(model), BOARD)
    searches = load_searches(tasks, [0] * len(tasks), TuningLog(log))
    mcu = get_target(BOARD)
    with use_default_schedules():
        te = run_on_board(str(model), BOARD, inputs=1)
    int16 = run_on_board(str(model), BOARD, inputs=1, weights="int16", flash_budget=mcu.flash_bytes)
    cache: dict = {}
    row = {"model": model.stem, "trials": result.trials, "tasks": result.tasks, "te_default_cycles": te.cycles,
           "int16_rule_cycles": int16.cycles, "int16_rule_flash": int16.weights_bytes, "budgets": []}
    # unlimited: all the board's flash; target: the builder's default (3/4, a quarter left to the
    # application); int8_min: the model's int8 weights + 10% (known after the first, untuned build)
    budgets = {"unlimited": mcu.flash_bytes, "target": mcu.flash_bytes * 3 // 4, "int8_min": None}
    for name, budget in budgets.items():
        tuned = TuneResult(model.stem, BOARD, result.trials, result.tasks, sram_budget=mcu.sram_bytes,
                           flash_budget=budget or int(row["budgets"][0]["untuned_flash"] * 1.1))
        measure_budgeted(tuned, str(model), BOARD, searches, te_default=False, cache=cache)
        untuned = tuned.builds[0]
        rules = [untuned["cycles"]] + ([int16.cycles] if int16.weights_bytes <= tuned.flash_budget else [])
        row["budgets"].append({
            "budget": name, "flash_budget": tuned.flash_budget, "untuned_cycles": untuned["cycles"],
            "untuned_flash": untuned["flash_bytes"], "best_rule_cycles": min(rules), "tuned_cycles": tuned.tuned_cycles,
            "flash_bytes": tuned.flash_bytes, "peak_bytes": tuned.peak_bytes,
            "gain_vs_untuned": 1 - tuned.tuned_cycles / untuned["cycles"],
            "bit_exact": all(b["bit_exact"] for b in tuned.builds)})
    return row


def throughput(model: Path, trials: int, logs: Path) -> dict:
    """Measurements per second with 1 and 2 workers (steady state: from the first batch back to the last)."""
    out = {}
    for workers in (1, 2):
        log = logs / f"throughput_{workers}.jsonl"
        log.unlink(missing_ok=True)
        stamps: list[tuple[float, int]] = []
        tune(str(model), BOARD, trials=trials, log_path=str(log), measure_model=False, workers=workers, batch=4,
             on_batch=lambda task, n, best: stamps.append((time.monotonic(), n)))
        done = sum(n for _, n in stamps[1:])
        out[f"workers_{workers}"] = done / (stamps[-1][0] - stamps[0][0])
    out["speedup"] = out["workers_2"] / out["workers_1"]
    return out


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
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--logs", default=str(REPO / "out" / "tuning"))
    parser.add_argument("--throughput-trials", type=int, default=40)
    parser.add_argument("--skip", nargs="*", default=[], choices=["models", "throughput", "small_space"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    models = [REPO / "models" / f"{m}.tflite" for m in args.models] if args.models else sorted((REPO / "models").glob("*.tflite"))
    out = {}
    if "models" not in args.skip:
        out["models"] = [model_row(m, args.trials, logs, args.workers) for m in models]
        print(json.dumps(out["models"]), file=sys.stderr, flush=True)
    if "throughput" not in args.skip:
        out["throughput"] = throughput(REPO / "models" / "kws_ref_model.tflite", args.throughput_trials, logs)
        print(json.dumps(out["throughput"]), file=sys.stderr, flush=True)
    if "small_space" not in args.skip:
        out["small_space"] = small_space(REPO / "models" / "pretrainedResnet_quant.tflite")
    if args.json:
        print(json.dumps(out, indent=2))
        return
    if "models" in out:
        print("| model | flash budget | budget B | untuned cycles | best fixed rule | tuned cycles | gain vs untuned | flash B | peak B | trials | bit-exact |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in out["models"]:
            for b in r["budgets"]:
                print(f"| {r['model']} | {b['budget']} | {b['flash_budget']:,} | {b['untuned_cycles']:,} | {b['best_rule_cycles']:,} | "
                      f"{b['tuned_cycles']:,} | {b['gain_vs_untuned']:.1%} | {b['flash_bytes']:,} | {b['peak_bytes']:,} | {r['trials']} | "
                      f"{'yes' if b['bit_exact'] else 'NO'} |")
    if "throughput" in out:
        t = out["throughput"]
        print(f"\nMeasurements per second: {t['workers_1']:.3f} with 1 worker, {t['workers_2']:.3f} with 2 ({t['speedup']:.2f}x).")
    if "small_space" in out:
        small = out["small_space"]
        print(f"Small space ({small['space']} configs, {small['trials']} trials = 25%): exhaustive best {small['exhaustive_best']:,} cycles; "
              f"XGBoost reaches {small['xgb_fraction_of_optimum']:.1%} of it on average, random search {small['random_fraction_of_optimum']:.1%}.")


if __name__ == "__main__":
    main()
