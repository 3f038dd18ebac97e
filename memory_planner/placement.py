"""Offsets for buffers with known lifetimes: greedy orders, local search, and an exact search.

Two buffers alive at the same step must not share bytes, except an op's streaming
input/output pair (an `Overlap`), which may as long as `out - in <= max_delta`.
Every placer puts buffers one at a time at the lowest aligned offset that breaks no rule
with those already placed; the strategies differ in the order they place them.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass

from memory_planner.graph import BufferRequirement, Overlap


@dataclass(frozen=True)
class Placement:
    """Offsets and the arena they need."""

    offsets: dict[str, int]
    arena: int
    method: str


class _Rules:
    """For each pair of buffers alive together: the offsets of one forbidden by the other."""

    def __init__(self, requirements: list[BufferRequirement], overlaps: list[Overlap]) -> None:
        self.by_name = {r.name: r for r in requirements}
        self.delta = {(o.input, o.output): o.max_delta for o in overlaps}
        self.min_delta = {(o.input, o.output): o.min_delta for o in overlaps if o.min_delta is not None}
        self.conflicts: dict[str, list[str]] = {r.name: [] for r in requirements}
        for a, b in itertools.combinations(requirements, 2):
            if a.first <= b.last and b.first <= a.last:
                self.conflicts[a.name].append(b.name)
                self.conflicts[b.name].append(a.name)

    def forbidden(self, name: str, other: str, other_offset: int) -> list[tuple[int, int]]:
        """Open intervals of offsets of `name` that clash with `other` placed at `other_offset`."""
        size, other_size = self.by_name[name].size, self.by_name[other].size
        clash = (other_offset - size, other_offset + other_size)
        for source, output, sign in ((other, name, 1), (name, other, -1)):
            if (source, output) not in self.delta:
                continue
            # Allowed: min_delta <= offset(output) - offset(source) <= max_delta, or no overlap.
            high = self.delta[(source, output)]
            low = self.min_delta.get((source, output))
            if sign == 1:  # `name` is the output
                allowed = (other_offset + low if low is not None else None, other_offset + high)
            else:  # `name` is the input: offset(name) = offset(other) - delta
                allowed = (other_offset - high, other_offset - low if low is not None else None)
            below = (clash[0], allowed[0]) if allowed[0] is not None else None
            above = (allowed[1], clash[1]) if allowed[1] is not None else None
            return [i for i in (below, above) if i is not None]
        return [clash]


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _lowest_offset(intervals: list[tuple[int, int]], alignment: int) -> int:
    candidates = {0}
    for lo, hi in intervals:
        candidates.add(_align_up(max(hi, 0), alignment))
        if lo >= 0:
            candidates.add(lo // alignment * alignment)
    for offset in sorted(candidates):
        if all(offset <= lo or offset >= hi for lo, hi in intervals):
            return offset
    raise AssertionError("unreachable: the end of the highest interval is always free")


def place_in_order(rules: _Rules, names: list[str], alignment: int) -> dict[str, int]:
    """Place buffers in the given order, each at its lowest legal aligned offset."""
    offsets: dict[str, int] = {}
    for name in names:
        intervals = [i for other in rules.conflicts[name] if other in offsets for i in rules.forbidden(name, other, offsets[other])]
        offsets[name] = _lowest_offset(intervals, alignment)
    return offsets


def _candidates(rules: _Rules, name: str, offsets: dict[str, int], alignment: int) -> tuple[list[int], list]:
    """Offsets worth trying for `name` (touching a placed neighbour, or at its overlap limit), and the clashes."""
    size = rules.by_name[name].size
    placed = [o for o in rules.conflicts[name] if o in offsets]
    intervals = [i for o in placed for i in rules.forbidden(name, o, offsets[o])]
    candidates = {0}
    for lo, hi in intervals:
        candidates |= {lo // alignment * alignment, _align_up(hi, alignment), (lo - size) // alignment * alignment}
    for other in placed:
        if (other, name) in rules.delta:
            candidates.add((offsets[other] + rules.delta[(other, name)]) // alignment * alignment)
    return [c for c in candidates if all(c <= lo or c >= hi for lo, hi in intervals)], intervals


def place_beam(rules: _Rules, names: list[str], alignment: int, width: int = 24) -> dict[str, int]:
    """Beam search over where each buffer goes (in first-use order), offsets may go below zero.

    A chain of streaming ops can then slide down by each op's overlap step, or alternate
    sides when sliding would drift too far; the best plan is shifted to start at zero.
    """
    beam: list[tuple[int, int, dict[str, int]]] = [(0, 0, {})]
    for name in names:
        size, now = rules.by_name[name].size, rules.by_name[name].first
        children = {}
        for low, high, offsets in beam:
            legal, _ = _candidates(rules, name, offsets, alignment)
            for c in legal:
                new_low, new_high = min(low, c), max(high, c + size)
                # States that agree on the span and on where the still-live buffers sit are equivalent.
                live = tuple(sorted((n, o - new_low) for n, o in offsets.items() if rules.by_name[n].last >= now))
                key = (new_high - new_low, c - new_low, live)
                if key not in children:
                    children[key] = (new_low, new_high, offsets, c)
        ranked = sorted(children.items(), key=lambda item: item[0][0])[:width]
        beam = [(low, high, {**offsets, name: c}) for _, (low, high, offsets, c) in ranked]
    low, _, offsets = beam[0]
    return {n: o - low for n, o in offsets.items()}


def _arena(rules: _Rules, offsets: dict[str, int]) -> int:
    return max((offsets[n] + rules.by_name[n].size for n in offsets), default=0)


def _greedy_orders(requirements: list[BufferRequirement], rules: _Rules) -> dict[str, list[str]]:
    def names(key) -> list[str]:
        return [r.name for r in sorted(requirements, key=key)]

    return {
        "size": names(lambda r: (-r.size, r.first, r.name)),
        "lifetime": names(lambda r: (-(r.last - r.first), -r.size, r.name)),
        "first-use": names(lambda r: (r.first, -r.size, r.name)),
        "conflicts": names(lambda r: (-sum(rules.by_name[c].size for c in rules.conflicts[r.name]) - r.size, r.name)),
        "size-x-lifetime": names(lambda r: (-r.size * (r.last - r.first + 1), r.name)),
    }


def place(
    requirements: list[BufferRequirement],
    overlaps: list[Overlap],
    *,
    alignment: int = 16,
    lower_bound: int = 0,
    exact_limit: int = 8,
    search_seconds: float = 2.0,
    seed: int = 0,
) -> Placement:
    """Best placement found: exact search for few buffers, else greedy orders plus local search."""
    rules = _Rules(requirements, overlaps)
    names = [r.name for r in requirements]
    if len(names) <= exact_limit:
        return _exact(rules, names, alignment, lower_bound)
    best_method, best = "", None
    for method, order in _greedy_orders(requirements, rules).items():
        offsets = place_in_order(rules, order, alignment)
        if best is None or _arena(rules, offsets) < _arena(rules, best[1]):
            best_method, best = f"greedy by {method}", (order, offsets)
    by_first_use = [r.name for r in sorted(requirements, key=lambda r: (r.first, -r.size, r.name))]
    beam = place_beam(rules, by_first_use, alignment)
    if _arena(rules, beam) < _arena(rules, best[1]):
        best_method, best = "beam search", (by_first_use, beam)
    order, offsets = best
    target = _align_up(lower_bound, alignment)  # nothing aligned can do better
    if _arena(rules, offsets) > target:
        improved = _local_search(rules, order, alignment, target, search_seconds, random.Random(seed))
        if improved is not None and _arena(rules, improved) < _arena(rules, offsets):
            return Placement(improved, _arena(rules, improved), f"{best_method} + local search")
    return Placement(offsets, _arena(rules, offsets), best_method)


def _local_search(rules, order, alignment, lower_bound, seconds, rng) -> dict[str, int] | None:
    """Move one buffer earlier in the placement order while that lowers the arena (time-boxed)."""
    best_order = list(order)
    best_arena = _arena(rules, place_in_order(rules, best_order, alignment))
    improved = None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and best_arena > lower_bound:
        i, j = sorted(rng.sample(range(len(best_order)), 2))
        trial = best_order[:i] + [best_order[j]] + best_order[i:j] + best_order[j + 1 :]
        offsets = place_in_order(rules, trial, alignment)
        arena = _arena(rules, offsets)
        if arena < best_arena:
            best_order, best_arena, improved = trial, arena, offsets
    return improved


def _exact(rules: _Rules, names: list[str], alignment: int, lower_bound: int) -> Placement:
    """Branch and bound over placement orders (an optimal packing can be built bottom-up in some order)."""
    best: dict = {"arena": None, "offsets": {}}

    def search(offsets: dict[str, int], remaining: list[str]) -> None:
        arena = _arena(rules, offsets)
        if best["arena"] is not None and (arena >= best["arena"] or best["arena"] <= lower_bound):
            return
        if not remaining:
            best["arena"], best["offsets"] = arena, dict(offsets)
            return
        for name in remaining:
            intervals = [i for o in rules.conflicts[name] if o in offsets for i in rules.forbidden(name, o, offsets[o])]
            offsets[name] = _lowest_offset(intervals, alignment)
            search(offsets, [n for n in remaining if n != name])
            del offsets[name]

    search({}, sorted(names, key=lambda n: -rules.by_name[n].size))
    return Placement(best["offsets"], best["arena"] or 0, "exact (branch and bound)")


def conflicts(requirements: list[BufferRequirement], overlaps: list[Overlap], offsets: dict[str, int]) -> list[tuple[str, str]]:
    """Pairs of buffers alive together whose bytes clash (empty for a legal plan)."""
    rules = _Rules(requirements, overlaps)
    return [
        (name, other)
        for name in rules.conflicts
        for other in rules.conflicts[name]
        if name < other and any(lo < offsets[name] < hi for lo, hi in rules.forbidden(name, other, offsets[other]))
    ]
