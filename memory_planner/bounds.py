"""Lower bounds on the arena for a fixed execution order."""

from __future__ import annotations

from memory_planner.graph import BufferRequirement, Overlap


def live_bytes(requirements: list[BufferRequirement], steps: int) -> list[int]:
    """Bytes alive at each step when nothing overlaps."""
    live = [0] * (steps + 1)
    for r in requirements:
        for step in range(r.first, r.last + 1):
            live[step] += r.size
    return live


def classic_bound(requirements: list[BufferRequirement], steps: int) -> int:
    """The largest set of tensors alive together, no op overwriting its own input."""
    return max(live_bytes(requirements, steps), default=0)


def _max_shared(size_in: int, size_out: int, max_delta: int) -> int:
    """Most bytes an input and an output can share when out - in <= max_delta."""
    # Input at [0, size_in), output at [d, d + size_out): the shared length grows with d up to
    # d = 0 and shrinks after, so the best allowed d is min(max_delta, 0).
    return max(0, min(size_in, size_out + min(max_delta, 0)))


def lower_bound(requirements: list[BufferRequirement], overlaps: list[Overlap], steps: int) -> int:
    """No placement can do better: at each step, live bytes minus the most the allowed overlaps can share."""
    live = live_bytes(requirements, steps)
    by_name = {r.name: r for r in requirements}
    shared = [0] * (steps + 1)
    per_output: dict[tuple[int, str], int] = {}
    for o in overlaps:
        a, b = by_name[o.input], by_name[o.output]
        # A streaming overlap shares bytes at the one step the input dies and the output is born;
        # a loop-level one at every step both are alive.
        for step in range(max(a.first, b.first), min(a.last, b.last) + 1):
            key = (step, o.output)
            per_output[key] = per_output.get(key, 0) + _max_shared(a.size, b.size, o.max_delta)
    for (step, output), total in per_output.items():
        shared[step] += min(total, by_name[output].size)
    return max((b - s for b, s in zip(live, shared)), default=0)
