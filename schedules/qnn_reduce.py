"""Integer computes of the reduce family: LOG_SOFTMAX, REDUCE_MAX / REDUCE_MIN, ARG_MAX / ARG_MIN.

(MEAN and SUM share `qnn_compute.mean`; SOFTMAX is `qnn_compute.softmax`.) Reductions keep
their reduced axes as size 1, like `qnn_compute.mean`; the pass reshapes for keep_dims=False.
"""

from __future__ import annotations

from typing import Sequence

from tvm import te, tirx

from .qnn_compute import INT32, rows_extern

# ARG_MAX / ARG_MIN reduce one int32 key per element: the (order-adjusted) value in the high
# bits, the reversed index in the low ARG_INDEX_BITS, so the largest key is the first extreme.
ARG_INDEX_BITS = 23


def log_softmax(data, params: Sequence[int]):
    """TFLM int8 LOG_SOFTMAX over the last axis (tinyml_log_softmax_rows_i8)."""
    return rows_extern(data, "tinyml_log_softmax_rows_i8", params)


def log_softmax_f32(data):
    """TFLM float32 LOG_SOFTMAX over the last axis (tinyml_log_softmax_rows_f32), for float model ends."""
    return rows_extern(data, "tinyml_log_softmax_rows_f32", [], dtype="float32")


def _reduce_axes(data, axes: Sequence[int]):
    """Reduction axes for `axes` and the kept-dims output shape."""
    reduce = {a: te.reduce_axis((0, int(data.shape[a])), f"r{a}") for a in axes}
    shape = [1 if a in reduce else d for a, d in enumerate(data.shape)]
    return reduce, shape


def _source(data, reduce: dict, i) -> tuple:
    return tuple(reduce[a] if a in reduce else i[a] for a in range(len(data.shape)))


def reduce_min_max(data, axes: Sequence[int], kind: str):
    """REDUCE_MAX (kind "max") or REDUCE_MIN ("min") of int8 over `axes` (kept as size 1)."""
    reduce, shape = _reduce_axes(data, axes)
    reducer = te.max if kind == "max" else te.min
    acc = te.compute(shape, lambda *i: reducer(data[_source(data, reduce, i)], axis=list(reduce.values())), name="acc")
    return te.compute(shape, lambda *i: acc[i], name="out")


def arg_min_max(data, axis: int, kind: str, out_dtype: str):
    """ARG_MAX (kind "max") or ARG_MIN ("min") of int8 along `axis`: the first extreme's index.

    The output keeps `axis` as size 1; the axis must be shorter than 2^ARG_INDEX_BITS.
    """
    reduce, shape = _reduce_axes(data, [axis])
    last = (1 << ARG_INDEX_BITS) - 1

    def _key(*i):
        value = data[_source(data, reduce, i)].astype(INT32)
        ordered = value + 128 if kind == "max" else 127 - value
        return te.max(ordered * (1 << ARG_INDEX_BITS) + (last - reduce[axis]), axis=reduce[axis])

    acc = te.compute(shape, _key, name="acc")
    return te.compute(shape, lambda *i: (last - tirx.bitwise_and(acc[i], last)).astype(out_dtype), name="out")


def softmax_exact(data, exp_table, axis: int, inv_out_scale: float, out_zp: int):
    """ONNX int8 Softmax as onnxruntime's float semantics, over `axis`: e = exp(scale * (x - max))
    from a 256-entry float32 table (indexed by max - x), out = round_half_even(e / sum(e) / out
    scale) + zero point, clamped to int8. No libm call: the rounding is done on int32."""
    reduce, shape = _reduce_axes(data, [axis])
    r = list(reduce.values())
    row_max = te.compute(shape, lambda *i: te.max(data[_source(data, reduce, i)], axis=r), name="row_max")

    def keep(i):
        return tuple(0 if a == axis else v for a, v in enumerate(i))

    def exp_of(i):
        return exp_table[row_max[keep(i)].astype(INT32) - data[i].astype(INT32)]

    total = te.compute(shape, lambda *i: te.sum(exp_of(_source(data, reduce, i)), axis=r), name="row_sum")

    def out(*i):
        real = exp_of(i) / total[keep(i)] * tirx.const(inv_out_scale, "float32")
        half = tirx.const(0.5, "float32")
        nearest = (real + half).astype(INT32)  # real >= 0: truncation is floor
        tie = real - real.astype(INT32).astype("float32") == half
        even = ((real + half) * half).astype(INT32) * 2  # a tie k + 0.5 goes to the even of k, k + 1
        q = tirx.Select(tie, even, nearest) + out_zp
        return tirx.max(tirx.min(q, 127), -128).astype("int8")

    return te.compute(data.shape, out, name="out")


# ---------------------------------------------------------------- ONNX average pooling (float semantics)
F32 = "float32"


def round_half_even(value):
    """int32 nearest to a float32 expression, ties to even (QuantizeLinear's rounding), without
    libm: the value is clamped to +-2^20 first, where float32 floor and fraction are exact."""
    bound = tirx.const(float(1 << 20), F32)
    t = tirx.Var("t", F32)
    floor = tirx.Var("below", INT32)
    truncated = t.astype(INT32)
    frac = t - floor.astype(F32)
    half = tirx.const(0.5, F32)
    up = tirx.Select(frac > half, 1, tirx.Select(frac == half, tirx.bitwise_and(floor, 1), 0))
    body = tirx.Let(floor, truncated - tirx.Select(t < truncated.astype(F32), 1, 0), floor + up)
    return tirx.Let(t, tirx.max(tirx.min(value, bound), -bound), body)


def quantize_real(real, scale, out_zp: int, zp_in_float: bool, act_min: int, act_max: int):
    """int8 of a float32 result: round_half_even(real / scale) + zero point (QuantizeLinear), or
    round_half_even(real / scale + zero point) (onnxruntime's QLinearAveragePool); `scale` is a
    float32 value (from a one-element tensor: a C literal would not print it exactly)."""
    scaled = real / scale
    q = round_half_even(scaled + tirx.const(float(out_zp), F32)) if zp_in_float else round_half_even(scaled) + out_zp
    return tirx.max(tirx.min(q, act_max), act_min).astype("int8")


def _chain(terms):
    """terms[0] + terms[1] + ... added left to right (float sums keep their order)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def avg_pool_exact(data, table, out_scale, *, pool, strides, pads, count_include_pad: bool, order: str, out_zp: int,
                   zp_in_float: bool, act_min: int, act_max: int):
    """ONNX int8 AveragePool on NCHW as onnxruntime computes it in float: each input dequantized by
    the 256-entry float32 `table` (table[q + 128] = (q - zero point) * scale), the window summed in
    float32 in onnxruntime's order, divided by the element count (in-image, or the whole window
    with `count_include_pad`), then quantized with the one-element `out_scale` (`quantize_real`). `order`: "rows" (row by row, MLAS's
    generic kernel and QLinearAveragePool), "columns" (each window column summed down, then the
    columns left to right: MLAS's vector kernel) or "global" (kernel = image, no padding: four
    running lanes over the flat image, (l0 + l2) + (l1 + l3), then the tail: MLAS's global kernel)."""
    n, c, h, w = (int(d) for d in data.shape)
    (kh, kw), (sh, sw), (top, left, bottom, right) = pool, strides, pads
    oh, ow = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    zero = tirx.const(0.0, F32)

    def real(b, ch, y, x):
        return table[data[b, ch, y, x].astype(INT32) + 128]

    def masked(b, ch, y, x):
        return tirx.if_then_else(tirx.all(y >= 0, y < h, x >= 0, x < w), real(b, ch, y, x), zero)

    if order == "global":
        lanes, size = (h * w) // 4, h * w
        k = te.reduce_axis((0, max(lanes, 1)), "k")

        def lane(b, ch, j):
            flat = 4 * k + j
            return te.sum(tirx.if_then_else(k < lanes, real(b, ch, flat // w, flat % w), zero), axis=k)

        acc = te.compute((n, c, 4), lane, name="acc")

        def total(b, ch, oy, ox):
            tail = [real(b, ch, t // w, t % w) for t in range(4 * lanes, size)]
            return _chain([(acc[b, ch, 0] + acc[b, ch, 2]) + (acc[b, ch, 1] + acc[b, ch, 3]), *tail])
    elif order == "columns":
        ry = te.reduce_axis((0, kh), "ry")
        acc = te.compute((n, c, oh, ow, kw), lambda b, ch, oy, ox, kx: te.sum(
            masked(b, ch, oy * sh - top + ry, ox * sw - left + kx), axis=ry), name="acc")

        def total(b, ch, oy, ox):
            return _chain([acc[b, ch, oy, ox, kx] for kx in range(kw)])
    else:
        ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
        acc = te.compute((n, c, oh, ow), lambda b, ch, oy, ox: te.sum(
            masked(b, ch, oy * sh - top + ry, ox * sw - left + rx), axis=[ry, rx]), name="acc")

        def total(b, ch, oy, ox):
            return acc[b, ch, oy, ox]

    def count(oy, ox):
        if count_include_pad:
            return tirx.const(float(kh * kw), F32)
        y0, x0 = oy * sh - top, ox * sw - left
        rows = tirx.min(y0 + kh, h) - tirx.max(y0, 0)
        cols = tirx.min(x0 + kw, w) - tirx.max(x0, 0)
        return (rows * cols).astype(F32)

    return te.compute((n, c, oh, ow), lambda b, ch, oy, ox: quantize_real(
        total(b, ch, oy, ox) / count(oy, ox), out_scale[0], out_zp, zp_in_float, act_min, act_max), name="out")


def qlinear_global_avg_pool(data, scale, *, in_zp: int, out_zp: int, act_min: int, act_max: int):
    """onnxruntime's QLinearGlobalAveragePool on NCHW: the exact int32 sum of x - zero point over
    each image, times the one-element float32 `scale` (input scale / (output scale * count)),
    rounded half to even, plus the output zero point."""
    n, c, h, w = (int(d) for d in data.shape)
    ry, rx = te.reduce_axis((0, h), "ry"), te.reduce_axis((0, w), "rx")
    acc = te.compute((n, c, 1, 1), lambda b, ch, oy, ox: te.sum(data[b, ch, ry, rx].astype(INT32) - in_zp, axis=[ry, rx]),
                     name="acc")

    def out(b, ch, oy, ox):
        q = round_half_even(acc[b, ch, oy, ox].astype(F32) * scale[0]) + out_zp
        return tirx.max(tirx.min(q, act_max), act_min).astype("int8")

    return te.compute((n, c, 1, 1), out, name="out")
