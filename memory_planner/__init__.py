"""Static arena planning for MCU inference. Plain Python: never imports tvm."""

from __future__ import annotations

from memory_planner.graph import BufferRequirement, Graph, OpCall, Plan, Tensor
from memory_planner.greedy import place_greedy_by_size
from memory_planner.lifetimes import buffer_requirements

__all__ = ["BufferRequirement", "Graph", "OpCall", "Plan", "Tensor", "plan"]


def plan(graph: Graph, alignment: int = 16) -> Plan:
    """Place every activation of `graph` in one arena (greedy by size)."""
    requirements = buffer_requirements(graph)
    offsets = place_greedy_by_size(requirements, alignment)
    arena = max((offsets[r.name] + r.size for r in requirements), default=0)
    return Plan(arena_bytes=arena, offsets=offsets, requirements=requirements, method="greedy-by-size")
