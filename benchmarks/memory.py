"""Peak SRAM of every bundled model: ours against its bounds, TFLite Micro and TVM's default plan.

    python benchmarks/memory.py [--target stm32f746] [--inputs 20]

Prints one markdown table (the README carries it). peak = the one arena the generated C
needs (inputs, outputs, activations and scratch; int8 model ends) without patches; patched
peak / patch plan / MAC overhead = the same with `patch="auto"` (layers run patch by patch,
grid, extra multiply-accumulates of the halos; "none": no patch helps). classic = the model graph's
largest set of tensors alive together with no op overwriting its input (TFLite Micro's ideal);
lower = the bound for the overlaps our planner may use. TFLM = pip tflite-micro's arena
(activations + persistent interpreter data, recording allocations). TVM = Relax
StaticPlanBlockMemory on the imported model (float intermediates).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from tqdm import tqdm

import tvm_tinyml
from tvm_tinyml.reference import tflm_arena_bytes
from tvm_tinyml.tvm_plan import tvm_plan_bytes
from tvm_tinyml.verify import verify

MODELS = Path(__file__).resolve().parent.parent / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="stm32f746")
    parser.add_argument("--inputs", type=int, default=20, help="random inputs per model for verify")
    args = parser.parse_args()
    rows = []
    for path in tqdm(sorted(MODELS.glob("*.tflite")), desc="models", unit="model"):
        start = time.perf_counter()
        artifact = tvm_tinyml.build(str(path), target=args.target)
        build_seconds = time.perf_counter() - start
        memory = artifact.memory
        tflm = tflm_arena_bytes(str(path))["total"]
        tvm_default = tvm_plan_bytes(artifact.modules["imported"])
        result = verify(str(path), inputs=args.inputs)
        patched = tvm_tinyml.build(str(path), target=args.target, patch="auto")
        rows.append((path.stem, memory, tflm, tvm_default, result.bit_exact and verify(str(path), inputs=args.inputs, patch="auto").bit_exact, build_seconds, patched.memory))
    print(f"\nTarget {args.target}; bytes. Ratios are peak / the column named.\n")
    print("| model | peak | patched peak | patch plan | MAC overhead | lower bound | classic bound | TFLM arena | TVM default | peak/lower | peak/classic | peak/TFLM | peak/TVM | planning s | bit-exact vs TFLM |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, m, tflm, tvm_default, exact, _, p in rows:
        plan = "none" if p.patch is None else f"layers {p.patch['start']}..{p.patch['split'] - 1}, {p.patch['grid'][0]}x{p.patch['grid'][1]}"
        overhead = "-" if p.patch is None else f"{p.patch['mac_overhead']:.1%}"
        print(
            f"| {name} | {m.peak_bytes:,} | {p.peak_bytes:,} | {plan} | {overhead} | {m.lower_bound_bytes:,} | {m.classic_bound_bytes:,} | {tflm:,} | {tvm_default:,} "
            f"| {m.peak_bytes / m.lower_bound_bytes:.3f} | {m.peak_bytes / m.classic_bound_bytes:.2f} | {m.peak_bytes / tflm:.2f} "
            f"| {m.peak_bytes / tvm_default:.2f} | {m.planning_seconds:.2f} | {'yes' if exact else 'NO'} ({args.inputs} inputs) |"
        )
    geomean = math.exp(sum(math.log(m.peak_bytes / tflm) for _, m, tflm, *_ in rows) / len(rows))
    print(f"\nGeometric mean of peak / TFLM arena: {geomean:.3f}")


if __name__ == "__main__":
    main()
