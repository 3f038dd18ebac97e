"""Quantization metadata TFLite Micro accepts and we must too: uint8 model ends, a quantized
dimension copied onto 1-D biases, per-channel arrays of length 1. Each model is checked
bit-exact against TFLite Micro through `verify` (uint8 ends are compared in their own dtype)."""

from __future__ import annotations

import numpy as np
import pytest

import tvm_tinyml
from tflite_builder import ModelBuilder
from tvm_tinyml.errors import UnsupportedOperatorError
from tvm_tinyml.verify import verify

I8, U8 = np.int8, np.uint8


def _verify(tmp_path, model: bytes, name: str = "model") -> None:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model)
    result = verify(str(path), inputs=4)
    assert result.bit_exact, result


def _conv(b: ModelBuilder, x: int, cin: int, cout: int, out_scale: float, *, bias_dim: int = 0, seed: int = 0) -> int:
    """A 3x3 SAME convolution with per-channel weights; `bias_dim` is the bias's quantized_dimension."""
    rng = np.random.default_rng(seed)
    w_scales = rng.uniform(0.002, 0.02, cout)
    w = b.add_tensor([cout, 3, 3, cin], I8, scale=w_scales, quantized_dimension=0,
                     data=rng.integers(-127, 128, (cout, 3, 3, cin)))
    bias = b.add_tensor([cout], np.int32, scale=0.05 * w_scales, quantized_dimension=bias_dim,
                        data=rng.integers(-3000, 3000, cout))
    y = b.add_tensor([1, 6, 6, cout], I8, scale=out_scale, zero_point=3)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    return y


@pytest.mark.parametrize("out_q", [dict(scale=1 / 255, zero_point=-128), dict(scale=0.011, zero_point=5)],
                         ids=["shift_128", "rescale"])
def test_uint8_input_quantize(tmp_path, out_q):
    """uint8 input -> QUANTIZE to int8 (the exact 128 shift of camera models, and a real rescale)."""
    b = ModelBuilder()
    x = b.add_tensor([1, 6, 6, 3], U8, scale=1 / 255, zero_point=0)
    q = b.add_tensor([1, 6, 6, 3], I8, **out_q)
    b.add_operator("QUANTIZE", [x], [q])
    y = _conv(b, q, 3, 4, 0.05)
    _verify(tmp_path, b.build([x], [y]))


@pytest.mark.parametrize("out_zp", [0, 77])
def test_uint8_output_quantize(tmp_path, out_zp):
    """An int8 result -> QUANTIZE to a uint8 model output."""
    b = ModelBuilder()
    x = b.add_tensor([1, 6, 6, 3], I8, scale=0.05, zero_point=-7)
    y = _conv(b, x, 3, 4, 0.05)
    out = b.add_tensor([1, 6, 6, 4], U8, scale=0.04, zero_point=out_zp)
    b.add_operator("QUANTIZE", [y], [out])
    _verify(tmp_path, b.build([x], [out]))


def test_bias_with_weight_quantized_dimension(tmp_path):
    """person_detect's converter copied the depthwise weight's quantized_dimension 3 onto the 1-D bias."""
    b = ModelBuilder()
    rng = np.random.default_rng(1)
    x = b.add_tensor([1, 6, 6, 8], I8, scale=0.05, zero_point=-7)
    w_scales = rng.uniform(0.002, 0.02, 8)
    w = b.add_tensor([1, 3, 3, 8], I8, scale=w_scales, quantized_dimension=3,
                     data=rng.integers(-127, 128, (1, 3, 3, 8)))
    bias = b.add_tensor([8], np.int32, scale=0.05 * w_scales, quantized_dimension=3,
                        data=rng.integers(-3000, 3000, 8))
    y = b.add_tensor([1, 6, 6, 8], I8, scale=0.01, zero_point=2)
    b.add_operator("DEPTHWISE_CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1,
                   depth_multiplier=1)
    conv_out = _conv(b, y, 8, 4, 0.05, bias_dim=3)
    _verify(tmp_path, b.build([x], [conv_out]))


def test_per_channel_arrays_of_length_one(tmp_path):
    """A one-output-channel convolution: its 'per-channel' scale arrays hold one value."""
    b = ModelBuilder()
    x = b.add_tensor([1, 6, 6, 3], I8, scale=0.05, zero_point=-7)
    y = _conv(b, x, 3, 1, 0.02)
    _verify(tmp_path, b.build([x], [y]))


def test_refusal_names_model_and_operator(tmp_path):
    """A variant we refuse deep in the lowering still names the model file and the operator."""
    b = ModelBuilder()
    x = b.add_tensor([1, 6, 6, 3], I8, scale=0.05, zero_point=-7)
    y = _conv(b, x, 3, 4, 0.05)
    out = b.add_tensor([1, 6, 6, 4], I8, scale=0.01, zero_point=0)  # int8 softmax needs scale 1/256
    b.add_operator("SOFTMAX", [y], [out], beta=1.0)
    path = tmp_path / "bad_softmax.tflite"
    path.write_bytes(b.build([x], [out]))
    with pytest.raises(UnsupportedOperatorError) as err:
        tvm_tinyml.build(str(path), target="host")
    message = str(err.value)
    assert message.startswith(f"{path}: operator #1 (SOFTMAX): ") and "\n" not in message
