"""Greedy-by-size placement, as in TFLite Micro's GreedyMemoryPlanner."""

from __future__ import annotations

from memory_planner.graph import BufferRequirement


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def place_greedy_by_size(requirements: list[BufferRequirement], alignment: int = 16) -> dict[str, int]:
    """Largest buffer first, each at the lowest aligned offset clear of every placed buffer alive with it."""
    placed: list[tuple[BufferRequirement, int]] = []
    offsets: dict[str, int] = {}
    for req in sorted(requirements, key=lambda r: (-r.size, r.first, r.name)):
        conflicts = sorted(
            (off, off + other.size)
            for other, off in placed
            if other.first <= req.last and req.first <= other.last
        )
        offset = 0
        for start, stop in conflicts:
            if offset + req.size <= start:
                break
            offset = max(offset, _align(stop, alignment))
        placed.append((req, offset))
        offsets[req.name] = offset
    return offsets
