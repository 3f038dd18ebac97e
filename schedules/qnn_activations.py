"""Integer compute definitions of the int8 activations (LEAKY_RELU, PRELU, TANH, lookup-table
ops such as ELU and RSQRT) and of RESIZE_BILINEAR, bit-exact with TFLite Micro.

Per-element arithmetic calls the `tinyml_*_i8` helpers of `tinyml_math.h`; parameters and
tables come from `tvm_tinyml/act_params.py`.
"""

from __future__ import annotations

from typing import Sequence

from tvm import te, tirx

from .qnn_compute import INT8, INT32, _broadcast_binary, _unary


def leaky_relu(data, params: Sequence[int], *, act_min: int, act_max: int):
    """TFLM int8 LEAKY_RELU per element (tinyml_leaky_relu_i8), clamped to the activation range."""
    return _unary(data, "tinyml_leaky_relu_i8", params, act_min, act_max)


def tanh(data, params: Sequence[int], *, act_min: int, act_max: int):
    """TFLM int8 TANH per element (tinyml_tanh_i8), clamped to the activation range."""
    return _unary(data, "tinyml_tanh_i8", params, act_min, act_max)


def prelu(data, alpha, out_shape, params: Sequence[int]):
    """TFLM int8 PRELU: `alpha` (constant or activation) broadcast against `data`."""
    return _broadcast_binary(data, alpha, out_shape, "tinyml_prelu_i8", params)


def lookup(data, table):
    """out = table[x + 128]: a 256-entry int8 table computed at compile time."""
    return te.compute(data.shape, lambda *i: table[data[i].astype(INT32) + 128], name="out")


def resize_bilinear(data, out_hw: Sequence[int], *, align_corners: bool, half_pixel_centers: bool):
    """reference_ops::ResizeBilinearInteger on NHWC int8: Q10 source coordinates, four weighted
    taps, rounded (half away from zero) division by 2^20. Quantization is ignored, as in TFLM
    (raw values are interpolated).

    TFLM sums in int64; int32 gives the same result: a tap weight is at most 1536 (the Q10
    fraction lies in [-512, 1024)), so each of the four terms is below 128 * 1536^2 < 2^29.
    """
    n, h, w, c = (int(d) for d in data.shape)
    oh, ow = out_hw
    ys = _source_coordinate(oh, h, align_corners, half_pixel_centers)
    xs = _source_coordinate(ow, w, align_corners, half_pixel_centers)

    def _value(b, y, x, ch):
        (sy, y0, y1), (sx, x0, x1) = ys(y), xs(x)
        dy, dx = sy - y0 * 1024, sx - x0 * 1024
        one = tirx.const(1024, INT32)

        def tap(yy, xx):
            return data[b, yy, xx, ch].astype(INT32)

        total = (tap(y0, x0) * (one - dy) * (one - dx) + tap(y1, x0) * dy * (one - dx)
                 + tap(y0, x1) * (one - dy) * dx + tap(y1, x1) * dy * dx)
        half = tirx.if_then_else(total > 0, tirx.const(1 << 19, INT32), tirx.const(-(1 << 19), INT32))
        return tirx.truncdiv(total + half, tirx.const(1 << 20, INT32)).astype(INT8)

    return te.compute((n, oh, ow, c), _value, name="out")


def _source_coordinate(out_size: int, in_size: int, align_corners: bool, half_pixel_centers: bool):
    """ComputeInterpolationValuesInteger: o -> (scaled Q10 coordinate, lower, upper index)."""
    if align_corners and out_size > 1:
        scale_10 = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale_10 = ((1 << 10) * in_size + out_size // 2) // out_size
    offset = scale_10 // 2 - (1 << 9) if half_pixel_centers else 0

    def _coordinate(o):
        scaled = o * scale_10 + offset
        lower = tirx.max(tirx.truncdiv(scaled, 1024), 0)
        upper = tirx.min(tirx.truncdiv(scaled + 1023, 1024), in_size - 1)
        return scaled, lower, upper

    return _coordinate


def lookup_channel(data, table, axis: int):
    """out = table[i[axis], x + 128]: 256 int8 entries per index along `axis` (compile time)."""
    return te.compute(data.shape, lambda *i: table[i[axis], data[i].astype(INT32) + 128], name="out")
