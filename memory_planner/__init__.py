"""Static arena planning for MCU inference. Plain Python: never imports tvm.

    plan(graph) -> Plan

1. execution order: the topological order with the lowest lower bound (order.py);
2. lifetimes and the streaming overlaps that order makes usable (lifetimes.py);
3. bounds: classic (no overlap) and lower (with the overlaps) (bounds.py);
4. placement: exact for few buffers, else greedy orders and local search (placement.py).
"""

from __future__ import annotations

import time

from memory_planner.bounds import classic_bound, lower_bound
from memory_planner.graph import BufferRequirement, Graph, OpCall, Overlap, Plan, Tensor
from memory_planner.lifetimes import buffer_requirements, usable_overlaps
from memory_planner.order import best_order
from memory_planner.placement import conflicts, place

__all__ = ["BufferRequirement", "Graph", "OpCall", "Overlap", "Plan", "Tensor", "plan"]


def _bound(graph: Graph, order: list[int]) -> int:
    requirements = buffer_requirements(graph, order)
    return lower_bound(requirements, usable_overlaps(graph, order, requirements), len(order))


def plan(graph: Graph, alignment: int = 16, search_seconds: float = 2.0) -> Plan:
    """Place every activation of `graph` in one arena."""
    start = time.perf_counter()
    order, order_method = best_order(graph, lambda o: _bound(graph, o))
    requirements = buffer_requirements(graph, order)
    overlaps = usable_overlaps(graph, order, requirements)
    steps = len(order)
    bound = lower_bound(requirements, overlaps, steps)
    placement = place(requirements, overlaps, alignment=alignment, lower_bound=bound, search_seconds=search_seconds)
    clashes = conflicts(requirements, overlaps, placement.offsets)
    assert not clashes, f"planner bug: {clashes[:3]} share bytes"
    return Plan(
        arena_bytes=placement.arena,
        offsets=placement.offsets,
        requirements=requirements,
        order=order,
        method=f"{placement.method}; {order_method} execution order",
        lower_bound=bound,
        classic_bound=classic_bound(requirements, steps),
        overlaps=overlaps,
        planning_seconds=time.perf_counter() - start,
    )
