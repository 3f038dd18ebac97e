"""PAD on any axes of an int8 tensor of any rank (family: binary, for the channel PADs of
residual blocks; spatial-only 4-D PADs keep `qnn_compute.pad`, which convolutions can absorb)."""

from __future__ import annotations

from typing import Sequence

from tvm import te, tirx


def pad_nd(data, *, widths: Sequence[Sequence[int]], pad_value: int):
    """Pad axis k with widths[k] = (before, after) elements of `pad_value` (an int8 value)."""
    shape = [int(d) + before + after for d, (before, after) in zip(data.shape, widths)]

    def _value(*i):
        inside = tirx.all(*(tirx.all(i[k] >= before, i[k] < before + int(data.shape[k])) for k, (before, _) in enumerate(widths)))
        src = tuple(i[k] - before for k, (before, _) in enumerate(widths))
        return tirx.if_then_else(inside, data[src], tirx.const(pad_value, data.dtype))

    return te.compute(shape, _value, name="out")
