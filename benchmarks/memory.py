"""Print the README's model table: our arena vs TFLite Micro's, weights, and verification.

    python benchmarks/memory.py [--target stm32f746] [--inputs 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

import tvm_tinyml
from tvm_tinyml.reference import tflm_arena_bytes
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
        memory = tvm_tinyml.build(str(path), target=args.target).memory
        seconds = time.perf_counter() - start
        tflm = tflm_arena_bytes(str(path))
        result = verify(str(path), inputs=args.inputs)
        verdict = f"bit-exact ({result.inputs} inputs)" if result.bit_exact else f"max diff {result.max_abs_diff}"
        rows.append((path.stem, memory.arena_bytes, tflm["head"], tflm["total"], memory.flash_bytes, verdict, seconds))
    print(f"\nTarget {args.target}. TFLM arena = activations (head) + persistent interpreter data (tail).\n")
    print("| model | arena (ours) | TFLM activations | TFLM arena total | ours / TFLM total | weights (flash) | verify vs TFLM | build s |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for name, arena, head, total, flash, verdict, seconds in rows:
        print(f"| {name} | {arena:,} | {head:,} | {total:,} | {arena / total:.2f} | {flash:,} | {verdict} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
