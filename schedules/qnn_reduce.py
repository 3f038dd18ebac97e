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
