"""Integer computes of the matrix family: BATCH_MATMUL and TRANSPOSE_CONV (int8 in/out).

(FULLY_CONNECTED is `qnn_compute.dense`.)
"""

from __future__ import annotations

from tvm import te

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
