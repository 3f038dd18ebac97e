"""Execution order: among the topological orders of the kernel calls, the one with the lowest bound.

Exact (every order) while there are few, a greedy order (run the ready op that frees the
most bytes) beyond that; the graph's own order is always a candidate.
"""

from __future__ import annotations

from typing import Callable, Iterator

from memory_planner.graph import Graph


def dependencies(graph: Graph) -> list[set[int]]:
    """For each op, the ops producing its inputs."""
    producer = {o: i for i, op in enumerate(graph.ops) for o in op.outputs}

    def made_by(name: str) -> int | None:
        # Follow aliases only until a tensor some op writes (an in-place output aliases its input).
        while name not in producer and graph.tensors[name].alias_of is not None:
            name = graph.tensors[name].alias_of
        return producer.get(name)

    deps = [{made_by(t) for t in op.inputs} - {None} for op in graph.ops]
    for op, before in graph.after.items():
        deps[op] |= set(before)
    return deps


def topological_orders(deps: list[set[int]], limit: int) -> Iterator[list[int]]:
    """Up to `limit` topological orders, depth first."""
    count = 0
    order: list[int] = []
    done: set[int] = set()

    def visit() -> Iterator[list[int]]:
        nonlocal count
        if len(order) == len(deps):
            count += 1
            yield list(order)
            return
        for op in range(len(deps)):
            if count >= limit:
                return
            if op not in done and deps[op] <= done:
                order.append(op)
                done.add(op)
                yield from visit()
                done.discard(op)
                order.pop()

    yield from visit()


def greedy_order(graph: Graph, deps: list[set[int]]) -> list[int]:
    """Repeatedly run the ready op whose inputs' last use it is (frees the most bytes), then the smallest output."""
    remaining_uses: dict[str, int] = {}
    for op in graph.ops:
        for t in op.inputs:
            remaining_uses[graph.storage(t)] = remaining_uses.get(graph.storage(t), 0) + 1
    done: set[int] = set()
    order: list[int] = []
    while len(order) < len(graph.ops):
        ready = [i for i in range(len(graph.ops)) if i not in done and deps[i] <= done]

        def gain(i: int) -> tuple[int, int]:
            op = graph.ops[i]
            freed = sum(graph.tensors[t].nbytes for t in op.inputs if remaining_uses[graph.storage(t)] == 1)
            return (-freed + sum(graph.tensors[o].nbytes for o in op.outputs), i)

        best = min(ready, key=gain)
        for t in graph.ops[best].inputs:
            remaining_uses[graph.storage(t)] -= 1
        done.add(best)
        order.append(best)
    return order


def best_order(graph: Graph, cost: Callable[[list[int]], int], limit: int = 2000) -> tuple[list[int], str]:
    """The order with the lowest `cost`, and how it was found."""
    deps = dependencies(graph)
    candidates = list(topological_orders(deps, limit + 1))
    method = "exhaustive"
    if len(candidates) > limit:
        candidates = [list(range(len(graph.ops))), greedy_order(graph, deps)]
        method = "greedy"
    return min(candidates, key=cost), method
