"""Prepare-time parameters and lookup tables of the int8 activation kernels, as TFLite Micro
computes them (LEAKY_RELU, PRELU, TANH, ELU, RSQRT).

Parameter functions return the arguments of the matching `tinyml_*_i8` helper of
`codegen/runtime/tinyml_math.h` (after the input values), in order. Table functions return
the 256 int8 outputs for the inputs -128..127, in that order; the kernel looks `x + 128` up.
Float32 vs. double arithmetic follows TFLM expression by expression.
"""

from __future__ import annotations

import math

import numpy as np

from .quant_params import INT8_MAX, INT8_MIN, logistic_params, quantize_multiplier, round_half_away

_F32 = np.float32
INT8_VALUES = np.arange(INT8_MIN, INT8_MAX + 1)


def _f32(x: float) -> float:
    return float(_F32(x))


def leaky_relu_params(input_scale: float, input_zp: int, alpha: float, output_scale: float,
                      output_zp: int) -> dict[str, int]:
    """CalculateOpDataLeakyRelu (micro/kernels/leaky_relu_common.cc), int8.

    The pinned tflite-micro build computes both real multipliers (`input_scale * alpha /
    output_scale`, `input_scale / output_scale`) in double from the float32 values, not in
    float32 as the source's casts suggest (tests/test_ops_activations.py pins this). A
    negative alpha gives a negative multiplier.
    """
    s_in, s_out = _f32(input_scale), _f32(output_scale)
    alpha_mult, alpha_shift = quantize_multiplier(s_in * _f32(alpha) / s_out)
    identity_mult, identity_shift = quantize_multiplier(s_in / s_out)
    return dict(input_zp=input_zp, output_zp=output_zp, identity_mult=identity_mult,
                identity_shift=identity_shift, alpha_mult=alpha_mult, alpha_shift=alpha_shift)


def prelu_params(input_scale: float, input_zp: int, alpha_scale: float, alpha_zp: int,
                 output_scale: float, output_zp: int) -> dict[str, int]:
    """CalculatePreluParams (micro/kernels/prelu_common.cc), int8: double arithmetic."""
    s_in, s_alpha, s_out = _f32(input_scale), _f32(alpha_scale), _f32(output_scale)
    mult_1, shift_1 = quantize_multiplier(s_in / s_out)
    mult_2, shift_2 = quantize_multiplier(s_in * s_alpha / s_out)
    return dict(input_offset=-input_zp, alpha_offset=-alpha_zp, mult_1=mult_1, shift_1=shift_1,
                mult_2=mult_2, shift_2=shift_2, output_zp=output_zp)


def tanh_params(input_scale: float, input_zp: int) -> dict[str, int]:
    """CalculateArithmeticOpData (micro/kernels/tanh.cc), int8: the same Q4.27 input rescale
    as LOGISTIC. TFLM ignores the output quantization (the result is raw Q0.7)."""
    return logistic_params(input_scale, input_zp)


def elu_table(input_scale: float, input_zp: int, output_scale: float, output_zp: int) -> np.ndarray:
    """PopulateLookupTable (micro/kernels/elu.cc): float32 dequantize, `exp(x) - 1` for x < 0,
    float32 requantize with TfLiteRound. `expf` is the correctly rounded float32 exp."""
    inverse_scale = _F32(1.0) / _F32(output_scale)
    table = []
    for val in INT8_VALUES:
        x = _F32(input_scale) * _F32(int(val) - input_zp)
        y = _F32(_F32(math.exp(float(x))) - _F32(1.0)) if x < 0 else x
        quantized = round_half_away(float(_F32(y * inverse_scale))) + output_zp
        table.append(min(max(quantized, INT8_MIN), INT8_MAX))
    return np.array(table, np.int8)


# ---------------------------------------------------------------- RSQRT (elementwise.cc)


def _srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul<int32_t>."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _trunc_div(ab + nudge, 1 << 31)


def _trunc_div(a: int, b: int) -> int:
    """C integer division (truncation toward zero) for b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT<int32_t>."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def _wrap32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def _saturating_pot(x: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32."""
    if exponent < 0:
        return _rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return (1 << 31) - 1
    if x < -threshold:
        return -(1 << 31)
    return _wrap32(x << exponent)


def _mbqm(x: int, multiplier: int, shift: int) -> int:
    """tflite::MultiplyByQuantizedMultiplier (double rounding)."""
    left, right = max(shift, 0), max(-shift, 0)
    return _rounding_divide_by_pot(_srdhm(_wrap32(x * (1 << left)), multiplier), right)


def _inv_sqrt_multiplier_exp(value: int) -> tuple[int, int]:
    """tflite::GetInvSqrtQuantizedMultiplierExp(value, kReverseShift) (internal/common.h)."""
    if value <= 1:
        return (1 << 31) - 1, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    pairs = (32 - value.bit_length() - 1) // 2 - 1  # CountLeadingZeros(value) - 1, in bit pairs
    shift -= pairs
    value <<= 2 * pairs
    # F3 fixed point (3 integer bits): a * b of two F3 is an F6, Rescale<3> shifts it left by 3.
    fp_input = value >> 1
    half_input = _saturating_pot(fp_input, -1)
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28  # F3 one
    for _ in range(5):
        x3 = _saturating_pot(_srdhm(_srdhm(x, x), x), 6)  # F9 -> F3
        x = _saturating_pot(_wrap32(_srdhm(half_three, x) - _srdhm(half_input, x3)), 3)  # F6 -> F3
    x = _srdhm(x, 1518500250)  # times sqrt(2)/2 (F0): stays F3
    if shift < 0:
        x = _wrap32(x << -shift)
        shift = 0
    return x, -shift


def rsqrt_table(input_scale: float, input_zp: int, output_scale: float, output_zp: int) -> np.ndarray:
    """RsqrtEvalQuantized (micro/kernels/elementwise.cc), int8, for every input value.

    The multiplier is `1 / (sqrtf(input_scale) * output_scale)` (float32 product, then double).
    Inputs below the zero point (negative reals) make TFLM fail; they map to 0 + zero point.
    """
    multiplier, shift = quantize_multiplier(1.0 / float(_F32(math.sqrt(_f32(input_scale))) * _F32(output_scale)))
    k_shift = 20
    table = []
    for val in INT8_VALUES:
        value = int(val) - input_zp
        if value == 0:
            table.append(INT8_MAX)
            continue
        if value < 0:
            table.append(min(max(output_zp, INT8_MIN), INT8_MAX))
            continue
        inv_mult, inv_shift = _inv_sqrt_multiplier_exp(value)
        data = _mbqm(1, inv_mult, inv_shift + k_shift)
        out = _mbqm(data, multiplier, shift - k_shift) + output_zp
        table.append(min(max(out, INT8_MIN), INT8_MAX))
    return np.array(table, np.int8)
