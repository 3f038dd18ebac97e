"""Tests for the reference runtimes in tvm_tinyml.reference and the ONNX test model."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tvm_tinyml import reference

from onnx_models import make_qdq_cnn, random_inputs

MODELS = os.path.join(os.path.dirname(__file__), os.pardir, "models")
KWS = os.path.join(MODELS, "kws_ref_model.tflite")


def _kws_input(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)


def test_tflite_io_kws() -> None:
    inputs, outputs = reference.tflite_io(KWS)
    assert [(t.shape, t.dtype) for t in inputs] == [((1, 49, 10, 1), np.dtype(np.int8))]
    assert [(t.shape, t.dtype) for t in outputs] == [((1, 12), np.dtype(np.int8))]
    assert inputs[0].scale > 0 and isinstance(inputs[0].zero_point, int)


def test_run_tflm_kws_deterministic_and_input_dependent() -> None:
    first = reference.run_tflm(KWS, [_kws_input(0)])
    assert len(first) == 1
    assert first[0].dtype == np.int8 and first[0].shape == (1, 12)
    again = reference.run_tflm(KWS, [_kws_input(0)])
    np.testing.assert_array_equal(first[0], again[0])
    other = reference.run_tflm(KWS, [_kws_input(1)])
    assert not np.array_equal(first[0], other[0])


def test_run_tflm_batch_matches_single_runs() -> None:
    input_sets = [[_kws_input(seed)] for seed in range(3)]
    batch = reference.run_tflm_batch(KWS, input_sets)
    assert len(batch) == 3
    for inputs, outputs in zip(input_sets, batch):
        np.testing.assert_array_equal(outputs[0], reference.run_tflm(KWS, inputs)[0])
    # Outputs are copies, not views of one reused interpreter buffer.
    assert not np.array_equal(batch[0][0], batch[1][0])


def test_tflm_arena_bytes_kws() -> None:
    arena = reference.tflm_arena_bytes(KWS)
    assert set(arena) == {"total", "head", "tail"}
    assert all(isinstance(v, int) and v > 0 for v in arena.values())
    assert arena["total"] == arena["head"] + arena["tail"]


def test_tflm_arena_bytes_bad_model(tmp_path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(RuntimeError):
        reference.tflm_arena_bytes(str(bad))


@pytest.fixture(scope="module")
def qdq_cnn(tmp_path_factory) -> str:
    return make_qdq_cnn(str(tmp_path_factory.mktemp("qdq_cnn")))


def test_qdq_cnn_io(qdq_cnn: str) -> None:
    inputs, outputs = reference.onnx_io(qdq_cnn)
    assert [(t.name, t.shape, t.dtype) for t in inputs] == [
        ("input", (1, 3, 16, 16), np.dtype(np.float32))
    ]
    assert [(t.shape, t.dtype) for t in outputs] == [((1, 10), np.dtype(np.float32))]
    assert inputs[0].scale is not None and inputs[0].scale > 0


def test_qdq_cnn_is_quantized(qdq_cnn: str) -> None:
    import onnx

    ops = {node.op_type for node in onnx.load(qdq_cnn).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Add", "Gemm"} <= ops


def test_qdq_cnn_close_to_float(qdq_cnn: str) -> None:
    float_path = os.path.join(os.path.dirname(qdq_cnn), "cnn_float.onnx")
    for x in random_inputs(4, seed=123):
        quantized = reference.run_onnxruntime(qdq_cnn, [x])[0]
        expected = reference.run_onnxruntime(float_path, [x])[0]
        assert quantized.shape == expected.shape == (1, 10)
        # A few output quantization steps (scale ~3e-3) of error, on outputs of magnitude ~0.5.
        np.testing.assert_allclose(quantized, expected, atol=0.02)
        assert np.argmax(quantized) == np.argmax(expected)
        np.testing.assert_array_equal(quantized, reference.run_onnxruntime(qdq_cnn, [x])[0])


def test_qdq_cnn_build_is_deterministic(tmp_path) -> None:
    a = make_qdq_cnn(str(tmp_path / "a"))
    b = make_qdq_cnn(str(tmp_path / "b"))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()
