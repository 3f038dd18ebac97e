"""Prepare-time quantization parameters, computed exactly as TFLite Micro does.

Each function mirrors the TFLM ``Prepare``-time code named in its docstring
(default double-rounding build) and returns the arguments of the matching
function in ``codegen/runtime/tinyml_math.h``. Tensor scales are float32 in the
flatbuffer; they are rounded to float32 here first, and float32 vs. double
arithmetic follows TFLM expression by expression.

Conventions: ``shift > 0`` is a left shift; ``*_offset`` is a negated input
zero point (TFLM's ``input_offset = -zero_point``).
"""

from __future__ import annotations

import math

import numpy as np

from tvm_tinyml.errors import UnsupportedOperatorError

INT8_MIN, INT8_MAX = -128, 127


def _f32(x: float) -> float:
    """Round a Python float to float32 and back (a TfLiteTensor scale)."""
    return float(np.float32(x))


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound: nearest integer, ties away from zero."""
    a = abs(x)
    n = math.floor(a)
    n += a - n >= 0.5  # exact: a - floor(a) is representable
    return n if x >= 0 else -n


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: real ~= multiplier * 2^(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    assert q_fixed <= 1 << 31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def _multipliers(reals: list[float]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(r) for r in reals]
    return (np.array([m for m, _ in pairs], dtype=np.int32),
            np.array([s for _, s in pairs], dtype=np.int32))


def conv_output_multipliers(input_scale: float, filter_scales: np.ndarray,
                            output_scale: float, num_channels: int | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """PopulateConvolutionQuantizationParams (CONV_2D, DEPTHWISE_CONV_2D).

    ``double(input_scale) * double(filter_scale) / double(output_scale)`` per
    output channel. A single (per-tensor) filter scale is broadcast to
    ``num_channels`` entries (default 1). Returns int32 (multiplier, shift).
    """
    fs = np.atleast_1d(np.asarray(filter_scales, dtype=np.float32))
    if fs.size == 1 and num_channels is not None:
        fs = np.repeat(fs, num_channels)
    return _multipliers([_f32(input_scale) * float(s) / _f32(output_scale) for s in fs])


def fully_connected_multiplier(input_scale: float, filter_scales: np.ndarray,
                               output_scale: float, num_channels: int | None = None
                               ) -> tuple[np.ndarray, np.ndarray]:
    """CalculateOpDataFullyConnected (FULLY_CONNECTED).

    Per-channel filters use the conv formula; per-tensor filters go through
    GetQuantizedConvolutionMultipler, which in the pinned tflite-micro build
    also multiplies ``double(input_scale) * double(filter_scale)`` (older
    TFLM sources multiplied in float32; tests/test_tflm_math.py pins this).
    So both cases equal :func:`conv_output_multipliers`.
    """
    return conv_output_multipliers(input_scale, filter_scales, output_scale, num_channels)


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output tensor.

    ``activation`` is one of "none", "relu", "relu6", "relu_n1_to_1"
    (case-insensitive). Quantization uses float32 ``round(f / scale)``.
    """
    def quantize(f: float) -> int:
        return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))

    act = activation.lower()
    if act == "none":
        return INT8_MIN, INT8_MAX
    if act == "relu":
        return max(INT8_MIN, quantize(0.0)), INT8_MAX
    if act == "relu6":
        return max(INT8_MIN, quantize(0.0)), min(INT8_MAX, quantize(6.0))
    if act == "relu_n1_to_1":
        return max(INT8_MIN, quantize(-1.0)), min(INT8_MAX, quantize(1.0))
    raise ValueError(f"unsupported fused activation {activation!r}")


def _smaller_than_one_exp(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp."""
    assert 0.0 < real < 1.0, real
    m, s = quantize_multiplier(real)
    assert s <= 0
    return m, s


def add_params(s1: float, zp1: int, s2: float, zp2: int, s_out: float, zp_out: int,
               act_min: int, act_max: int) -> dict[str, int]:
    """CalculateOpDataAdd (micro/kernels/add_common.cc), int8 output.

    Keys are the arguments of ``tinyml_add_i8`` after ``a, b``, in order.
    """
    left_shift = 20
    twice_max_input_scale = 2 * float(max(np.float32(s1), np.float32(s2)))
    in1_mult, in1_shift = _smaller_than_one_exp(_f32(s1) / twice_max_input_scale)
    in2_mult, in2_shift = _smaller_than_one_exp(_f32(s2) / twice_max_input_scale)
    out_ratio = twice_max_input_scale / ((1 << left_shift) * _f32(s_out))
    if out_ratio >= 1.0:
        raise UnsupportedOperatorError(
            f"ADD/SUB with output scale {s_out:.3g} below 2^-19 times the larger input scale "
            f"{max(s1, s2):.3g} (TFLite Micro's kernel rejects it)")
    out_mult, out_shift = _smaller_than_one_exp(out_ratio)
    return dict(in1_offset=-zp1, in1_mult=in1_mult, in1_shift=in1_shift,
                in2_offset=-zp2, in2_mult=in2_mult, in2_shift=in2_shift,
                left_shift=left_shift, out_mult=out_mult, out_shift=out_shift,
                out_zp=zp_out, act_min=act_min, act_max=act_max)


def mul_params(s1: float, zp1: int, s2: float, zp2: int, s_out: float, zp_out: int,
               act_min: int, act_max: int) -> dict[str, int]:
    """CalculateOpDataMul (micro/kernels/mul_common.cc), int8.

    Keys are the arguments of ``tinyml_mul_i8`` after ``a, b``, in order.
    """
    out_mult, out_shift = quantize_multiplier(_f32(s1) * _f32(s2) / _f32(s_out))
    return dict(in1_offset=-zp1, in2_offset=-zp2, out_mult=out_mult,
                out_shift=out_shift, out_zp=zp_out, act_min=act_min, act_max=act_max)


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """CalculateSoftmaxParams (micro/kernels/softmax_common.cc), int8 -> int8.

    PreprocessSoftmaxScaling + CalculateInputRadius with
    kScaledDiffIntegerBits = 5. Returns (input_multiplier, input_left_shift,
    diff_min) for ``tinyml_softmax_i8``. The output tensor must have
    scale 1/256 and zero point -128 (TFLM rejects anything else).
    """
    integer_bits = 5
    real = min(_f32(beta) * _f32(input_scale) * (1 << (31 - integer_bits)),
               (1 << 31) - 1.0)
    assert real > 1.0, real  # QuantizeMultiplierGreaterThanOne
    multiplier, left_shift = quantize_multiplier(real)
    assert left_shift >= 0
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits))
                        / (1 << left_shift))
    return multiplier, left_shift, -radius


def mean_params(input_scale: float, input_zp: int, output_scale: float,
                output_zp: int, num_elements: int) -> dict[str, int]:
    """PrepareMeanOrSumHelper + QuantizedMeanOrSum (reference/reduce.h), int8.

    TFLM quantizes ``input_scale / output_scale`` and then folds
    ``1 / num_elements`` into the multiplier (integer division) at Eval time;
    both steps are done here. Keys are the arguments of ``tinyml_mean_i8``
    after ``sum``, in order.
    """
    multiplier, shift = quantize_multiplier(_f32(input_scale) / _f32(output_scale))
    s = min(num_elements.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << s) // num_elements
    return dict(num_elements=num_elements, in_zp=input_zp, multiplier=multiplier,
                shift=shift - s, out_zp=output_zp)


def logistic_params(input_scale: float, input_zp: int) -> dict[str, int]:
    """CalculateArithmeticOpDataLogistic (micro/kernels/logistic_common.cc), int8.

    The input is rescaled to Q4.27 (kInputIntegerBits = 4) with an unnormalized
    ``frexp`` multiplier; inputs beyond ``input_range_radius`` saturate. TFLM
    requires output zero point -128 (scale 1/256 is implied). Keys are the
    arguments of ``tinyml_logistic_i8`` after ``x``, in order.
    """
    integer_bits = 4
    q, left_shift = math.frexp(_f32(input_scale) * (1 << (31 - integer_bits)))
    multiplier = round_half_away(q * (1 << 31))
    assert multiplier < 1 << 31  # q has float32 precision, so it never rounds up to 1
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / 2.0**left_shift)
    return dict(input_zp=input_zp, input_range_radius=radius, input_multiplier=multiplier,
                input_left_shift=left_shift)


def _int16_multiplier(multiplier: int) -> int:
    """DownScaleInt32ToInt16Multiplier (kernels/internal/common.h)."""
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (multiplier + (1 << 15)) >> 16


def hard_swish_params(input_scale: float, input_zp: int, output_scale: float,
                      output_zp: int) -> dict[str, int]:
    """HardSwishPrepare (micro/kernels/hard_swish_common.cc), int8.

    Scales are combined in float32 as TFLM does, then quantized with
    QuantizeMultiplier and rounded to int16 multipliers. TFLM requires
    ``output_exponent <= 0``. Keys are the arguments of
    ``tinyml_hard_swish_i8`` after ``x``, in order.
    """
    hires_input_scale = np.float32(1.0 / 128.0) * np.float32(input_scale)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    out_mult, out_exp = quantize_multiplier(float(hires_input_scale / np.float32(output_scale)))
    reluish_mult, reluish_exp = quantize_multiplier(float(hires_input_scale / reluish_scale))
    return dict(input_zp=input_zp, output_zp=output_zp,
                reluish_multiplier=_int16_multiplier(reluish_mult), reluish_exponent=reluish_exp,
                output_multiplier=_int16_multiplier(out_mult), output_exponent=out_exp)


# ---------------------------------------------------------------- binary elementwise ops (family: binary)


def sub_params(s1: float, zp1: int, s2: float, zp2: int, s_out: float, zp_out: int,
               act_min: int, act_max: int) -> dict[str, int]:
    """CalculateOpDataSub (micro/kernels/sub_common.cc), int8 output.

    The pinned tflite-micro build computes these exactly as ADD does (double
    ratios; the sources in /work/ref keep them in float32, which differs in
    the multipliers' low bits; tests/test_ops_binary.py::test_every_input_pair
    pins this). Keys are the arguments of ``tinyml_sub_i8`` after ``a, b``, in
    order (the layout of ``add_params``).
    """
    return add_params(s1, zp1, s2, zp2, s_out, zp_out, act_min, act_max)


def squared_difference_params(s1: float, zp1: int, s2: float, zp2: int, s_out: float,
                              zp_out: int) -> dict[str, int]:
    """PrepareQuantized (micro/kernels/squared_difference.cc), int8, left_shift 7.

    Ratios in double; the output multiplier goes through QuantizeMultiplier (it may
    exceed 1). Keys are the arguments of ``tinyml_squared_difference_i8`` after
    ``a, b``, in order.
    """
    left_shift = 7
    twice_max_input_scale = 2 * float(max(np.float32(s1), np.float32(s2)))
    in1_mult, in1_shift = _smaller_than_one_exp(_f32(s1) / twice_max_input_scale)
    in2_mult, in2_shift = _smaller_than_one_exp(_f32(s2) / twice_max_input_scale)
    scaled_out = float(np.float32(1 << (2 * left_shift)) * np.float32(s_out))
    out_mult, out_shift = quantize_multiplier(twice_max_input_scale * twice_max_input_scale / scaled_out)
    return dict(in1_offset=-zp1, in1_mult=in1_mult, in1_shift=in1_shift,
                in2_offset=-zp2, in2_mult=in2_mult, in2_shift=in2_shift,
                left_shift=left_shift, out_mult=out_mult, out_shift=out_shift, out_zp=zp_out)
# ---------------------------------------------------------------- reduce family (LOG_SOFTMAX, SUM)


def sum_params(input_scale: float, input_zp: int, output_scale: float,
               output_zp: int, num_elements: int) -> dict[str, int]:
    """PrepareMeanOrSumHelper + QuantizedMeanOrSum with compute_sum (SUM), int8.

    As :func:`mean_params` without the ``1 / num_elements`` fold; same keys.
    """
    multiplier, shift = quantize_multiplier(_f32(input_scale) / _f32(output_scale))
    return dict(num_elements=num_elements, in_zp=input_zp, multiplier=multiplier,
                shift=shift, out_zp=output_zp)


LOG_SOFTMAX_OUTPUT = (16.0 / 256, 127)  # the only int8 output quantization TFLM accepts


def log_softmax_params(input_scale: float) -> dict[str, int]:
    """CalculateOpData of micro/kernels/log_softmax.cc, int8 (beta 1).

    PreprocessLogSoftmaxScalingExp: the softmax input multiplier, plus the reverse scaling
    ``2^(31 - left_shift) / multiplier`` as a multiplier smaller than one (shift <= 0);
    diff_min as for softmax. Keys are the arguments of ``tinyml_log_softmax_rows_i8``
    after ``depth``, in order.
    """
    multiplier, left_shift, diff_min = softmax_params(input_scale)
    reverse_mult, reverse_shift = _smaller_than_one_exp((1 << (31 - left_shift)) / float(multiplier))
    return dict(input_multiplier=multiplier, input_left_shift=left_shift,
                reverse_scaling_divisor=reverse_mult, reverse_scaling_left_shift=reverse_shift,
                diff_min=diff_min)
