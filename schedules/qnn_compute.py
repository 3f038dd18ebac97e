"""Integer (int8 in/out, int32 accumulation) compute definitions for MCU kernels, TOPI style.

Each function takes `te` tensors plus plain Python quantization parameters and returns the
output tensor. Fixed-point requantization calls the static inline helpers of
`tvm_tinyml/codegen/runtime/tinyml_math.h`, which mirror TFLite Micro's reference kernels so
results are bit-exact. Layouts: activations NHWC (spatial kernels also take NCHW, as ONNX
models come), conv weights HWIO, depthwise weights HWC (channel multiplier folded into C),
dense weights [N, K].
"""

from __future__ import annotations

from typing import Sequence

from tvm import te, tirx

INT8 = "int8"
INT32 = "int32"


class _Layout:
    """Index NHWC or NCHW activations by (batch, y, x, channel)."""

    def __init__(self, layout: str) -> None:
        if layout not in ("NHWC", "NCHW"):
            raise ValueError(f"unsupported layout {layout}")
        self.nchw = layout == "NCHW"

    def dims(self, tensor) -> tuple:
        n, a, b, c = tensor.shape
        return (n, b, c, a) if self.nchw else (n, a, b, c)

    def shape(self, n, h, w, c) -> tuple:
        return (n, c, h, w) if self.nchw else (n, h, w, c)

    def index(self, b, y, x, c) -> tuple:
        return (b, c, y, x) if self.nchw else (b, y, x, c)

    def compute(self, shape, fn, name: str):
        """te.compute over (b, y, x, c) whatever the memory layout."""
        if self.nchw:
            return te.compute(self.shape(*shape), lambda b, c, y, x: fn(b, y, x, c), name=name)
        return te.compute(shape, fn, name=name)


def _padded(data: te.Tensor, pads: Sequence[int], pad_value: int, layout: _Layout, name: str = "pad") -> te.Tensor:
    """Spatial padding with `pad_value` (the input zero point); pads = top, left, bottom, right."""
    top, left, bottom, right = pads
    if not any(pads):
        return data
    n, h, w, c = layout.dims(data)

    def _value(b, y, x, ch):
        inside = tirx.all(y >= top, y < h + top, x >= left, x < w + left)
        src = data[layout.index(b, y - top, x - left, ch)]
        return tirx.if_then_else(inside, src, tirx.const(pad_value, data.dtype))

    return layout.compute((n, h + top + bottom, w + left + right, c), _value, name=name)


def _requant(acc, mult, shift, out_zp: int, act_min: int, act_max: int):
    return tirx.call_extern(INT8, "tinyml_requant_i8", acc, mult, shift, out_zp, act_min, act_max)


def conv2d(data, weight, bias, mult, shift, *, strides, pads, dilation, in_zp, out_zp, act_min, act_max, layout="NHWC"):
    """Conv2D (NHWC or NCHW activations) x HWIO weights -> int8 with per-channel requantization."""
    return _conv(data, weight, bias, mult, shift, strides, pads, dilation, in_zp, out_zp, act_min, act_max, layout, False)


def depthwise_conv2d(data, weight, bias, mult, shift, *, strides, pads, dilation, in_zp, out_zp, act_min, act_max, layout="NHWC"):
    """Depthwise Conv2D x HWC weights; output channel o reads input channel o // multiplier."""
    return _conv(data, weight, bias, mult, shift, strides, pads, dilation, in_zp, out_zp, act_min, act_max, layout, True)


def _conv(data, weight, bias, mult, shift, strides, pads, dilation, in_zp, out_zp, act_min, act_max, layout, depthwise):
    lay = _Layout(layout)
    n, _, _, ci = lay.dims(data)
    kh, kw = weight.shape[0], weight.shape[1]
    co = weight.shape[-1]
    (sh, sw), (dh, dw) = strides, dilation
    padded = _padded(data, pads, in_zp, lay)
    _, ph, pw, _ = lay.dims(padded)
    oh = (ph - (kh - 1) * dh - 1) // sh + 1
    ow = (pw - (kw - 1) * dw - 1) // sw + 1
    ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    if depthwise:
        multiplier = co // ci

        def _acc(b, y, x, o):
            pixel = padded[lay.index(b, y * sh + ry * dh, x * sw + rx * dw, o // multiplier)]
            return te.sum((pixel.astype(INT32) - in_zp) * weight[ry, rx, o].astype(INT32), axis=[ry, rx])

    else:
        rc = te.reduce_axis((0, ci), "rc")

        def _acc(b, y, x, o):
            pixel = padded[lay.index(b, y * sh + ry * dh, x * sw + rx * dw, rc)]
            return te.sum((pixel.astype(INT32) - in_zp) * weight[ry, rx, rc, o].astype(INT32), axis=[ry, rx, rc])

    acc = lay.compute((n, oh, ow, co), _acc, name="acc")
    return lay.compute(
        (n, oh, ow, co),
        lambda b, y, x, o: _requant(acc[lay.index(b, y, x, o)] + bias[o], mult[o], shift[o], out_zp, act_min, act_max),
        name="out",
    )


def dense(data, weight, bias, mult, shift, *, in_zp, out_zp, act_min, act_max):
    """Fully connected [M, K] x [N, K] -> [M, N] int8."""
    m, k = data.shape
    nout, _ = weight.shape
    rk = te.reduce_axis((0, k), "rk")
    acc = te.compute(
        (m, nout),
        lambda i, j: te.sum((data[i, rk].astype(INT32) - in_zp) * weight[j, rk].astype(INT32), axis=rk),
        name="acc",
    )
    return te.compute(
        (m, nout),
        lambda i, j: _requant(acc[i, j] + bias[j], mult[j], shift[j], out_zp, act_min, act_max),
        name="out",
    )


def _pool_window(data, pool, strides, pads, lay: _Layout):
    n, h, w, c = lay.dims(data)
    (ph, pw), (sh, sw) = pool, strides
    top, left, bottom, right = pads
    oh = (h + top + bottom - ph) // sh + 1
    ow = (w + left + right - pw) // sw + 1
    return (n, oh, ow, c), te.reduce_axis((0, ph), "ry"), te.reduce_axis((0, pw), "rx")


def avg_pool2d(data, *, pool, strides, pads, act_min, act_max, layout="NHWC"):
    """Average pool int8 with TFLite's rounding division by the count of in-image elements."""
    lay = _Layout(layout)
    shape, ry, rx = _pool_window(data, pool, strides, pads, lay)
    _, h, w, _ = lay.dims(data)
    (sh, sw), (top, left) = strides, pads[:2]

    def _inside(y, x):
        return tirx.all(y >= 0, y < h, x >= 0, x < w)

    def _sum(b, oy, ox, c):
        y, x = oy * sh - top + ry, ox * sw - left + rx
        return te.sum(tirx.if_then_else(_inside(y, x), data[lay.index(b, y, x, c)].astype(INT32), 0), axis=[ry, rx])

    acc = lay.compute(shape, _sum, name="acc")
    cy, cx = te.reduce_axis((0, pool[0]), "cy"), te.reduce_axis((0, pool[1]), "cx")
    count = lay.compute(
        shape,
        lambda b, oy, ox, c: te.sum(tirx.if_then_else(_inside(oy * sh - top + cy, ox * sw - left + cx), 1, 0), axis=[cy, cx]),
        name="count",
    )
    return te.compute(
        lay.shape(*shape),
        lambda *i: tirx.call_extern(INT8, "tinyml_avgpool_round_i8", acc[i], count[i], act_min, act_max),
        name="out",
    )


def max_pool2d(data, *, pool, strides, pads, act_min, act_max, layout="NHWC"):
    """Max pool int8 (padding never wins), clamped to the activation range."""
    lay = _Layout(layout)
    shape, ry, rx = _pool_window(data, pool, strides, pads, lay)
    _, h, w, _ = lay.dims(data)
    (sh, sw), (top, left) = strides, pads[:2]

    def _max(b, oy, ox, c):
        y, x = oy * sh - top + ry, ox * sw - left + rx
        inside = tirx.all(y >= 0, y < h, x >= 0, x < w)
        return te.max(tirx.if_then_else(inside, data[lay.index(b, y, x, c)], tirx.const(-128, INT8)), axis=[ry, rx])

    acc = lay.compute(shape, _max, name="acc")
    # A helper call, not T.min/T.max: TVM's C codegen caches `acc` loads in min/max temporaries
    # and reuses a stale one after the store when the window is 1x1 (no reduction loop left).
    return te.compute(
        lay.shape(*shape),
        lambda *i: tirx.call_extern(INT8, "tinyml_clamp_i8", acc[i].astype(INT32), act_min, act_max),
        name="out",
    )


def elementwise_add(lhs, rhs, out_shape, params: Sequence[int]):
    """Broadcasting int8 ADD; `params` are the scalar arguments of tinyml_add_i8 after the inputs."""
    return _broadcast_binary(lhs, rhs, out_shape, "tinyml_add_i8", params)


def elementwise_mul(lhs, rhs, out_shape, params: Sequence[int]):
    """Broadcasting int8 MUL; `params` are the scalar arguments of tinyml_mul_i8 after the inputs."""
    return _broadcast_binary(lhs, rhs, out_shape, "tinyml_mul_i8", params)


def _broadcast_index(tensor, index):
    rank = len(tensor.shape)
    tail = index[len(index) - rank:]
    return tuple(0 if int(dim) == 1 else i for dim, i in zip(tensor.shape, tail))


def _broadcast_binary(lhs, rhs, out_shape, helper: str, params: Sequence[int]):
    return te.compute(
        tuple(out_shape),
        lambda *i: tirx.call_extern(
            INT8,
            helper,
            lhs[_broadcast_index(lhs, i)].astype(INT32),
            rhs[_broadcast_index(rhs, i)].astype(INT32),
            *params,
        ),
        name="out",
    )


def mean(data, axes: Sequence[int], params: Sequence[int]):
    """Mean over `axes` (kept as size 1), TFLM arithmetic in tinyml_mean_i8."""
    reduce = {a: te.reduce_axis((0, data.shape[a]), f"r{a}") for a in axes}
    shape = [1 if a in reduce else d for a, d in enumerate(data.shape)]

    def _sum(*i):
        index = tuple(reduce[a] if a in reduce else i[a] for a in range(len(shape)))
        return te.sum(data[index].astype(INT32), axis=list(reduce.values()))

    acc = te.compute(shape, _sum, name="acc")
    return te.compute(shape, lambda *i: tirx.call_extern(INT8, "tinyml_mean_i8", acc[i], *params), name="out")


def requantize(data, params: Sequence[int], out_dtype: str = INT8):
    """Elementwise int8/uint8 -> int8 rescale: ((x - in_zp) * multiplier >> shift) + out_zp, clamped.

    For a uint8 result the same arithmetic runs 128 lower (zero point and clamps) and the int8
    value is shifted back up, which is exact.
    """
    in_zp, mult, shift, out_zp, act_min, act_max = params
    if out_dtype == "uint8":
        low = lambda *i: _requant(data[i].astype(INT32) - in_zp, mult, shift, out_zp - 128, act_min - 128, act_max - 128)
        return te.compute(data.shape, lambda *i: (low(*i).astype(INT32) + 128).astype("uint8"), name="out")
    return te.compute(
        data.shape,
        lambda *i: _requant(data[i].astype(INT32) - in_zp, mult, shift, out_zp, act_min, act_max),
        name="out",
    )


def quantize_f32(data, scale, zero_point: int):
    """float32 -> int8 as TFLite's QUANTIZE: round(x / scale) + zero_point, saturated.

    `scale` is a one-element float32 tensor (a C array prints it exactly; a literal would not).
    """
    return te.compute(
        data.shape, lambda *i: tirx.call_extern(INT8, "tinyml_quantize_f32", data[i], scale[0], zero_point), name="out"
    )


def dequantize_i8(data, scale, zero_point: int):
    """int8 -> float32 as TFLite's DEQUANTIZE: scale * (q - zero_point); `scale` as in quantize_f32."""
    return te.compute(
        data.shape,
        lambda *i: tirx.call_extern("float32", "tinyml_dequantize_i8", data[i].astype(INT32), scale[0], zero_point),
        name="out",
    )


def softmax(data, *, input_multiplier: int, input_left_shift: int, diff_min: int):
    """Softmax over the last axis, one tinyml_softmax_i8 call per row."""
    return rows_extern(data, "tinyml_softmax_rows_i8", [input_multiplier, input_left_shift, diff_min])


def rows_extern(data, helper: str, params: Sequence[int], dtype: str = INT8):
    """A kernel over the last axis: one call `helper(in, out, rows, depth, *params)`; output `dtype`."""
    depth = int(data.shape[-1])
    rows = 1
    for dim in data.shape[:-1]:
        rows *= int(dim)

    def _body(ins, outs):
        return tirx.call_extern("int32", helper, ins[0].data, outs[0].data, rows, depth, *params)

    return te.extern(data.shape, [data], _body, dtype=dtype, name="out")


def pad(data, *, pads, pad_value: int, layout="NHWC"):
    """Standalone spatial pad (when it could not be fused into a convolution)."""
    padded = _padded(data, pads, pad_value, _Layout(layout), name="out")
    if padded is data:
        return te.compute(data.shape, lambda *i: data[i], name="out")
    return padded


def transpose(data, axes: Sequence[int]):
    """Permute dimensions."""
    shape = [data.shape[a] for a in axes]

    def _value(*i):
        src = [0] * len(axes)
        for dst, a in enumerate(axes):
            src[a] = i[dst]
        return data[tuple(src)]

    return te.compute(shape, _value, name="out")


def concatenate(inputs, axis: int):
    """Concatenate int8 tensors with identical quantization along `axis`."""
    offsets = [0]
    for t in inputs:
        offsets.append(offsets[-1] + int(t.shape[axis]))
    shape = list(inputs[0].shape)
    shape[axis] = offsets[-1]

    def _value(*i):
        value = inputs[-1][i[:axis] + (i[axis] - offsets[-2],) + i[axis + 1:]]
        for k in range(len(inputs) - 2, -1, -1):
            src = inputs[k][i[:axis] + (i[axis] - offsets[k],) + i[axis + 1:]]
            value = tirx.if_then_else(i[axis] < offsets[k + 1], src, value)
        return value

    return te.compute(shape, _value, name="out")


def resize_nearest(data, out_hw: Sequence[int], *, align_corners: bool, half_pixel_centers: bool):
    """TFLite RESIZE_NEAREST_NEIGHBOR on NHWC, integer index arithmetic."""
    n, h, w, c = (int(d) for d in data.shape)
    oh, ow = out_hw

    def _src(o, out_size: int, in_size: int):
        # TFLite computes in float: scale = in/out (or (in-1)/(out-1) with align_corners).
        if align_corners and out_size > 1:
            num, den = in_size - 1, out_size - 1
        else:
            num, den = in_size, out_size
        if half_pixel_centers:
            # floor((o + 0.5) * num/den) computed exactly as floor((2*o + 1) * num / (2*den))
            idx = tirx.floordiv((2 * o + 1) * num, 2 * den)
        elif align_corners:
            # round((o * num) / den) half away from zero, non-negative here
            idx = tirx.floordiv(2 * o * num + den, 2 * den)
        else:
            idx = tirx.floordiv(o * num, den)
        return tirx.min(idx, in_size - 1)

    return te.compute(
        (n, oh, ow, c), lambda b, y, x, ch: data[b, _src(y, oh, h), _src(x, ow, w), ch], name="out"
    )


def logistic(data, params: Sequence[int], *, act_min: int, act_max: int):
    """TFLM int8 LOGISTIC per element (tinyml_logistic_i8), clamped to the activation range."""
    return _unary(data, "tinyml_logistic_i8", params, act_min, act_max)


def hard_swish(data, params: Sequence[int], *, act_min: int, act_max: int):
    """TFLM int8 HARD_SWISH per element (tinyml_hard_swish_i8), clamped to the activation range."""
    return _unary(data, "tinyml_hard_swish_i8", params, act_min, act_max)


def _unary(data, helper: str, params: Sequence[int], act_min: int, act_max: int):
    def _value(*i):
        y = tirx.call_extern(INT8, helper, data[i].astype(INT32), *params)
        if (act_min, act_max) == (-128, 127):
            return y
        return tirx.call_extern(INT8, "tinyml_clamp_i8", y.astype(INT32), act_min, act_max)

    return te.compute(data.shape, _value, name="out")
