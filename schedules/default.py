"""The untuned schedule every kernel gets: padding inlined, accumulators kept in one scalar.

Reductions ("acc", "count") are computed at the innermost spatial loop of the block that
consumes them, so each accumulator shrinks to a single int32 and no intermediate tensor is
ever materialized; padding blocks become bounds checks in the load.
"""

from __future__ import annotations

from tvm import s_tir, tirx

_INLINED = ("pad",)
_ACCUMULATORS = ("acc", "count")


def default_schedule(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """Apply the default schedule to a kernel made by `schedules.qnn_compute`."""
    sch = s_tir.Schedule(func)
    names = [sch.get(block).name_hint for block in sch.get_child_blocks(sch.get_sblock("root"))] if _has_root(sch) else []
    for name in names:
        if name.startswith(_INLINED) and name != "out":
            sch.compute_inline(sch.get_sblock(name))
    if "out" in names:
        out = sch.get_sblock("out")
        loops = sch.get_loops(out)
        for name in names:
            if name in _ACCUMULATORS:
                block = sch.get_sblock(name)
                sch.compute_at(block, loops[-1])
                inner = sch.get_loops(block)[len(loops) :]
                if inner:  # reductions of extent 1 leave no loop to hoist the init out of
                    sch.decompose_reduction(block, inner[0])
    return sch.mod["main"]


def _has_root(sch: s_tir.Schedule) -> bool:
    try:
        sch.get_sblock("root")
    except s_tir.ScheduleError:
        return False
    return True
