"""Buffer requirements (size, first use, last use) and usable overlaps for one execution order."""

from __future__ import annotations

from memory_planner.graph import BufferRequirement, Graph, Overlap


def buffer_requirements(graph: Graph, order: list[int]) -> list[BufferRequirement]:
    """One requirement per storage root; inputs live from the start, outputs to the end."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}

    def touch(name: str, step: int) -> None:
        if graph.tensors[name].const:
            return
        root = graph.storage(name)
        first[root] = min(first.get(root, step), step)
        last[root] = max(last.get(root, step), step)

    for name in graph.inputs:
        touch(name, 0)
    for step, index in enumerate(order):
        op = graph.ops[index]
        for name in op.inputs + op.outputs:
            touch(name, step)
    for name in graph.outputs:
        touch(name, len(order))
    return [BufferRequirement(root, graph.tensors[root].nbytes, first[root], last[root]) for root in first]


def usable_overlaps(graph: Graph, order: list[int], requirements: list[BufferRequirement]) -> list[Overlap]:
    """The overlaps an op offers (streaming or in place) whose input dies at that op and whose
    output is born there."""
    by_name = {r.name: r for r in requirements}
    overlaps = []
    for step, index in enumerate(order):
        op = graph.ops[index]
        output = graph.storage(op.outputs[0])
        allowed = [(name, Overlap("", "", delta)) for name, delta in zip(op.inputs, op.overlap) if delta is not None]
        allowed += [(op.inputs[i], Overlap("", "", 0, 0)) for i in op.inplace]
        for name, rule in allowed:
            source = graph.storage(name)
            if graph.tensors[name].const or source == output:
                continue
            if by_name[source].last == step and by_name[output].first == step:
                overlaps.append(Overlap(source, output, rule.max_delta, rule.min_delta))
    # Loop-level overlaps hold whenever both buffers are alive (the loop's order is fixed by `graph.after`).
    for o in graph.loop_overlaps:
        a, b = by_name.get(o.input), by_name.get(o.output)
        if a is not None and b is not None and a.first <= b.last and b.first <= a.last:
            overlaps.append(o)
    return overlaps
