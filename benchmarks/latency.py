"""Print the README's latency table: every bundled model on the emulated Cortex-M7 and Cortex-M4.

    python benchmarks/latency.py [--boards qemu-m7 qemu-m4] [--inputs 3]

Emulator figures: QEMU executes the firmware; instructions per inference are exact (counted by
the tinyml_cycles plugin between the firmware's markers), cycles are an estimate from ARM's
Cortex-M4 instruction timings (QEMU models no pipeline, caches or wait states). Each model is
also checked bit-exact against TFLite Micro on the same inputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from tvm_tinyml.errors import TinyMLError
from tvm_tinyml.frontend import tflite_constant_bytes
from tvm_tinyml.run import run_on_board

MODELS = Path(__file__).resolve().parent.parent / "models"
HEADER = (
    "| model | board | instructions | est. cycles (M4 table) | MACs | instr / MAC | firmware RAM | firmware flash | "
    "weights | model constants | weights / constants | vs TFLM |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def row(path: Path, board: str, inputs: int) -> str:
    try:
        r = run_on_board(str(path), board, inputs=inputs, timeout_sec=600)
    except TinyMLError as err:
        return f"| {path.stem} | {board} | {err} | | | | | | | | | |"
    verdict = f"bit-exact ({r.inputs} inputs)" if r.bit_exact else f"max diff {r.max_abs_diff}"
    constants = tflite_constant_bytes(path)
    return (
        f"| {r.model} | {board} | {r.instructions:,} | {r.cycles:,} | {r.macs:,} | {r.instructions / r.macs:.2f} | "
        f"{r.firmware_ram_bytes:,} | {r.flash_bytes:,} | {r.weights_bytes:,} | {constants:,} | "
        f"{r.weights_bytes / constants:.2f} | {verdict} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", nargs="+", default=["qemu-m7", "qemu-m4"])
    parser.add_argument("--inputs", type=int, default=3, help="random inputs per model (counts are their median)")
    args = parser.parse_args()
    jobs = [(path, board) for path in sorted(MODELS.glob("*.tflite")) for board in args.boards]
    rows = [row(path, board, args.inputs) for path, board in tqdm(jobs, desc="runs", unit="run")]
    print("\nEmulator figures (QEMU 7.2, mps2-an500 / mps2-an386, limits of an STM32F746): instructions are")
    print("exact, cycles estimated from ARM's Cortex-M4 timings; per inference, median over inputs.\n")
    print(HEADER)
    print("\n".join(rows))
    print("\nMeasured references (same QEMU instruction-count method, MCUNet VWW = tinyengine_vww, 11,578,816 MACs):")
    print("TinyEngine 33,454,857 instructions (2.89 / MAC, float requantization; 41,618,120 with integer")
    print("requantization), 469,432 B of weights; ARM CMSIS-NN on the vww_96 shapes 24,476,548 instructions.")


if __name__ == "__main__":
    main()
