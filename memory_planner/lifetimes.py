"""Buffer requirements (size, first use, last use) from a Graph's call order."""

from __future__ import annotations

from memory_planner.graph import BufferRequirement, Graph


def buffer_requirements(graph: Graph) -> list[BufferRequirement]:
    """One requirement per storage root; inputs live from the start, outputs to the end."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    end = len(graph.ops)

    def touch(name: str, index: int) -> None:
        if graph.tensors[name].const:
            return
        root = graph.storage(name)
        first[root] = min(first.get(root, index), index)
        last[root] = max(last.get(root, index), index)

    for name in graph.inputs:
        touch(name, 0)
    for index, op in enumerate(graph.ops):
        for name in op.inputs + op.outputs:
            touch(name, index)
    for name in graph.outputs:
        touch(name, end)
    return [BufferRequirement(root, graph.tensors[root].nbytes, first[root], last[root]) for root in first]
