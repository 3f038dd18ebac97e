"""Run a reference interpreter (TFLite Micro, onnxruntime) in a child process.

A crash inside the reference (a signal in its C++ code) or a hang then becomes one TinyMLError
line instead of killing or stalling the caller. Arrays travel through .npz files.

    python -m tvm_tinyml.reference_child FORMAT MODEL INPUTS.npz OUTPUTS.npz
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tvm_tinyml.errors import TinyMLError

REFERENCE_TIMEOUT_SEC = 600.0
_NAMES = {"tflite": "TFLite Micro", "onnx": "onnxruntime"}


def run_reference(fmt: str, model_path: str, input_sets: list[list[np.ndarray]], timeout_sec: float = REFERENCE_TIMEOUT_SEC) -> list[list[np.ndarray]]:
    """The reference's outputs for each input set, computed in a child process."""
    with tempfile.TemporaryDirectory(prefix="tvm-tinyml-ref-") as tmp:
        inputs, outputs = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        _save(inputs, input_sets)
        command = [sys.executable, "-m", "tvm_tinyml.reference_child", fmt, model_path, str(inputs), str(outputs)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_sec)
        except subprocess.TimeoutExpired:
            raise TinyMLError(f"{model_path}: the reference ({_NAMES[fmt]}) did not finish within {timeout_sec:.0f} s") from None
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise TinyMLError(f"{model_path}: the reference ({_NAMES[fmt]}) crashed on this model: signal {-proc.returncode} ({name})")
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit {proc.returncode}"
            raise TinyMLError(f"{model_path}: the reference ({_NAMES[fmt]}) refused this model: {reason}")
        return _load(outputs)


def _save(path: Path, sets: list[list[np.ndarray]]) -> None:
    np.savez(path, **{f"s{i}_{j}": np.asarray(a) for i, arrays in enumerate(sets) for j, a in enumerate(arrays)})


def _load(path: Path) -> list[list[np.ndarray]]:
    with np.load(path) as data:
        keys = sorted(data.files, key=lambda k: tuple(int(p) for p in k[1:].split("_")))
        sets: dict[int, list[np.ndarray]] = {}
        for key in keys:
            sets.setdefault(int(key[1:].split("_")[0]), []).append(data[key])
    return [sets[i] for i in sorted(sets)]


def _main(fmt: str, model_path: str, inputs: str, outputs: str) -> None:
    from tvm_tinyml import reference

    input_sets = _load(Path(inputs))
    if fmt == "tflite":
        results = reference.run_tflm_batch(model_path, input_sets)
    else:
        results = [reference.run_onnxruntime(model_path, xs) for xs in input_sets]
    _save(Path(outputs), results)


if __name__ == "__main__":
    try:
        _main(*sys.argv[1:5])
    except Exception as e:  # reported to the parent as the last stderr line
        print(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}", file=sys.stderr)
        sys.exit(1)
