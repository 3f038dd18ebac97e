"""Integer computes of the matrix family: BATCH_MATMUL and TRANSPOSE_CONV (int8 in/out).

(FULLY_CONNECTED is `qnn_compute.dense`.)
"""

from __future__ import annotations

from tvm import te, tirx

from .qnn_compute import INT32, _requant


def _batch_index(tensor, batch: tuple) -> tuple:
    """Index of `tensor`'s batch dimensions for output batch index `batch` (numpy broadcasting)."""
    rank = len(tensor.shape) - 2
    tail = batch[len(batch) - rank:] if rank else ()
    return tuple(0 if int(dim) == 1 else i for dim, i in zip(tensor.shape[:rank], tail))


def batch_matmul(lhs, rhs, *, out_shape, lhs_zp: int, rhs_zp: int, mult: int, shift: int, out_zp: int):
    """[..., M, K] x [..., K, N] -> [..., M, N] int8, batch dimensions broadcast; TFLM's
    reference_ops::BatchMatMul arithmetic (both zero points subtracted, one multiplier)."""
    rk = te.reduce_axis((0, lhs.shape[-1]), "rk")

    def _acc(*i):
        batch, m, n = i[:-2], i[-2], i[-1]
        a = lhs[_batch_index(lhs, batch) + (m, rk)].astype(INT32) - lhs_zp
        b = rhs[_batch_index(rhs, batch) + (rk, n)].astype(INT32) - rhs_zp
        return te.sum(a * b, axis=rk)

    acc = te.compute(tuple(out_shape), _acc, name="acc")
    return te.compute(tuple(out_shape), lambda *i: _requant(acc[i], mult, shift, out_zp, -128, 127), name="out")


def transpose_conv2d(data, weight, bias, mult, shift, *, strides, pads, out_hw, in_zp: int, out_zp: int, act_min: int, act_max: int):
    """TFLM reference_integer_ops::TransposeConv on NHWC x OHWI weights, as a gather: output
    (y, x) sums input (iy, ix) with iy * stride - pad + ky == y; per-channel requantization."""
    n, h, w, ci = data.shape
    co, kh, kw, _ = weight.shape
    (sh, sw), (top, left) = strides, pads
    ry, rx, rc = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx"), te.reduce_axis((0, ci), "rc")

    def _acc(b, y, x, o):
        ty, tx = y + top - ry, x + left - rx
        iy, ix = tirx.floordiv(ty, sh), tirx.floordiv(tx, sw)
        hit = tirx.all(ty >= 0, tx >= 0, tirx.floormod(ty, sh) == 0, tirx.floormod(tx, sw) == 0, iy < h, ix < w)
        term = (data[b, iy, ix, rc].astype(INT32) - in_zp) * weight[o, ry, rx, rc].astype(INT32)
        return te.sum(tirx.if_then_else(hit, term, 0), axis=[ry, rx, rc])

    shape = (n, out_hw[0], out_hw[1], co)
    acc = te.compute(shape, _acc, name="acc")
    return te.compute(
        shape, lambda b, y, x, o: _requant(acc[b, y, x, o] + bias[o], mult[o], shift[o], out_zp, act_min, act_max), name="out"
    )
