"""Check generated C against the reference interpreter on random inputs, in the int8 domain.

TFLite models are compared with TFLite Micro (tolerance 0: bit-exact), ONNX QDQ models with
onnxruntime (tolerance 1 LSB, its float QDQ arithmetic rounds differently). Float model ends
are exact affine maps, so float inputs are fed as dequantized int8 values and float outputs
are quantized back before comparing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tvm_tinyml.reference_child import run_reference
from tvm_tinyml.builder import Artifact, build

TOLERANCE = {"tflite": 0, "onnx": 1}
REFERENCE_NAME = {"tflite": "tflite-micro", "onnx": "onnxruntime"}


@dataclass
class VerifyResult:
    """Outcome of a verification run (the fields of `verify --json`)."""

    model: str
    target: str
    inputs: int
    bit_exact: bool
    max_abs_diff: int
    tolerance: int
    reference: str
    mismatched_inputs: int

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _from_int8(value: np.ndarray, dtype: str, spec: dict) -> np.ndarray:
    """An int8-domain tensor as `dtype`: itself, the uint8 with the same offset from the range's
    bottom, or its exactly dequantized float value."""
    if dtype == "int8":
        return value
    if dtype == "uint8":
        return (value.astype(np.int16) + 128).astype(np.uint8)
    return (value.astype(np.float32) - np.float32(spec["zero_point"])) * np.float32(spec["scale"])


def _to_int8(value: np.ndarray, spec: dict) -> np.ndarray:
    """A tensor in the int8 domain (float outputs quantized back exactly)."""
    if value.dtype == np.int8:
        return value
    if value.dtype == np.uint8:
        return (value.astype(np.int16) - 128).astype(np.int8)
    q = np.round(value.astype(np.float32) / np.float32(spec["scale"])) + spec["zero_point"]
    return np.clip(q, -128, 127).astype(np.int8)


def random_inputs(artifact: Artifact, count: int, seed: int) -> list[list[np.ndarray]]:
    """`count` sets of uniformly random int8 inputs for the artifact's entry."""
    rng = np.random.default_rng(seed)
    return [
        [rng.integers(-128, 128, size=spec["shape"]).astype(np.int8) for spec in artifact.metadata["inputs"]]
        for _ in range(count)
    ]


def entry_inputs(input_sets: list[list[np.ndarray]], meta: dict, key: str = "dtype") -> list[list[np.ndarray]]:
    """int8-domain input sets as the model entry (`key="dtype"`) or the source model (`"source_dtype"`) takes them."""
    return [[_from_int8(x, spec[key], spec) for x, spec in zip(xs, meta["inputs"])] for xs in input_sets]


def reference_outputs(model_path: str, meta: dict, input_sets: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """The reference interpreter's outputs for int8-domain input sets."""
    return run_reference(meta["format"], model_path, entry_inputs(input_sets, meta, "source_dtype"))


def compare(our_outputs: list[list[np.ndarray]], ref_outputs: list[list[np.ndarray]], meta: dict) -> tuple[int, int]:
    """(max |difference| in int8 steps, number of input sets that differ). Float outputs on both
    sides must be equal to the bit; any float difference counts at least one step, as does any
    difference in an output without an int8 domain."""
    max_diff, mismatched = 0, 0
    for ours, refs in zip(our_outputs, ref_outputs):
        diffs = []
        for o, r, spec in zip(ours, refs, meta["outputs"]):
            r = np.asarray(r).reshape(o.shape)
            if spec["scale"] is None:  # no int8 domain (a float op's output, or int32 indices)
                diffs.append(int(not np.array_equal(o, r)))
                continue
            diff = int(np.max(np.abs(_to_int8(o, spec).astype(np.int32) - _to_int8(r, spec).astype(np.int32))))
            if o.dtype == r.dtype == np.float32 and not np.array_equal(o, r):
                diff = max(diff, 1)
            diffs.append(diff)
        max_diff = max(max_diff, *diffs)
        mismatched += any(diffs)
    return max_diff, mismatched


def verify(model_path: str, target: str = "host", inputs: int = 20, seed: int = 0, **build_options) -> VerifyResult:
    """Build `model_path` for `target` (with `build`'s keyword options), run it on the host and the
    reference, compare."""
    artifact = build(model_path, target=target, **build_options)
    meta = artifact.metadata
    fmt = meta["format"]
    input_sets = random_inputs(artifact, inputs, seed)
    ours = [artifact.run_host(xs) for xs in entry_inputs(input_sets, meta)]
    max_diff, mismatched = compare(ours, reference_outputs(model_path, meta, input_sets), meta)
    return VerifyResult(
        model=artifact.name,
        target=target,
        inputs=inputs,
        bit_exact=max_diff == 0,
        max_abs_diff=max_diff,
        tolerance=TOLERANCE[fmt],
        reference=REFERENCE_NAME[fmt],
        mismatched_inputs=mismatched,
    )
