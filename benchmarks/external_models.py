"""Real-world models written by other people: compile, verify, memory and emulated run, one table.

    python benchmarks/external_models.py [--models DIR] [--target stm32h743] [--inputs 20] [--board-inputs 3]

DIR defaults to the steering repository's corpus (`../shared/models/external`) when it is there,
else the vendored `models/external`. Each model is built for the target, checked bit-exact against
TFLite Micro on the host (`--inputs`) and on qemu-m7 with the target's limits (`--board-inputs`).
A model we refuse shows the one-line reason. Columns: peak = our arena; TFLM = pip tflite-micro's
arena; flash = weights as written by the generated C; constants = non-empty buffers of the .tflite;
instr/MAC = instructions per inference on qemu-m7 / multiply-accumulates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

import tvm_tinyml
from tvm_tinyml.errors import TinyMLError
from tvm_tinyml.frontend import tflite_constant_bytes
from tvm_tinyml.reference import tflm_arena_bytes
from tvm_tinyml.run import run_on_board
from tvm_tinyml.verify import verify

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "models" / "external"


def measure(path: Path, target: str, inputs: int, board_inputs: int) -> dict:
    """One table row; `error` holds the first refusal or mismatch."""
    row = {"model": path.stem, "tflm": tflm_arena_bytes(str(path))["total"], "constants": tflite_constant_bytes(path)}
    try:
        artifact = tvm_tinyml.build(str(path), target=target)
        row.update(peak=artifact.memory.peak_bytes, flash=artifact.memory.flash_bytes, macs=artifact.metadata["macs"])
        checked = verify(str(path), inputs=inputs)
        row["verify"] = "bit-exact" if checked.bit_exact else f"max diff {checked.max_abs_diff}"
        ran = run_on_board(str(path), "qemu-m7", inputs=board_inputs, target=target)
        row["run"] = "bit-exact" if ran.bit_exact else f"max diff {ran.max_abs_diff}"
        row["instructions"] = ran.instructions
    except TinyMLError as err:
        row["error"] = str(err).replace(str(path), path.name)
    return row


def _cell(row: dict, key: str, fmt: str = "{:,}") -> str:
    return fmt.format(row[key]) if row.get(key) is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=CORPUS if CORPUS.is_dir() else ROOT / "models" / "external")
    parser.add_argument("--target", default="stm32h743")
    parser.add_argument("--inputs", type=int, default=20, help="random inputs per model for verify (host)")
    parser.add_argument("--board-inputs", type=int, default=3, help="random inputs per model on qemu-m7")
    args = parser.parse_args()
    paths = sorted(args.models.glob("*.tflite"))
    rows = [measure(p, args.target, args.inputs, args.board_inputs) for p in tqdm(paths, desc="models", unit="model")]
    print(f"\n{len(paths)} models from {args.models}; target {args.target}; bytes.\n")
    print("| model | MACs | verify | qemu-m7 run | peak | TFLM arena | peak/TFLM | flash | constants | flash/constants | instructions | instr/MAC |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['peak'] / r['tflm']:.3f}" if "peak" in r else "-"
        flash_ratio = f"{r['flash'] / r['constants']:.2f}" if "flash" in r else "-"
        per_mac = f"{r['instructions'] / r['macs']:.2f}" if r.get("instructions") and r.get("macs") else "-"
        print(
            f"| {r['model']} | {_cell(r, 'macs')} | {r.get('verify', '-')} | {r.get('run', '-')} | {_cell(r, 'peak')} | {r['tflm']:,} "
            f"| {ratio} | {_cell(r, 'flash')} | {r['constants']:,} | {flash_ratio} | {_cell(r, 'instructions')} | {per_mac} |"
        )
    refused = [r for r in rows if "error" in r]
    for r in refused:
        print(f"- {r['model']}: {r['error']}")
    passed = sum(r.get("verify") == r.get("run") == "bit-exact" for r in rows)
    print(f"\n{passed}/{len(rows)} models compile and are bit-exact on the host and on qemu-m7")


if __name__ == "__main__":
    main()
