"""The arena plan never overlaps two tensors that are alive at the same time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memory_planner
import tvm_tinyml
from conftest import BUNDLED, MODELS
from memory_planner import BufferRequirement, Graph, OpCall, Tensor
from memory_planner.greedy import place_greedy_by_size
from memory_planner.lifetimes import buffer_requirements


def assert_no_live_overlap(requirements: list[BufferRequirement], offsets: dict[str, int], arena: int) -> None:
    """Independent of the planner: check every pair of buffers by brute force."""
    for r in requirements:
        assert 0 <= offsets[r.name] and offsets[r.name] + r.size <= arena
    for i, a in enumerate(requirements):
        for b in requirements[i + 1 :]:
            alive_together = a.first <= b.last and b.first <= a.last
            disjoint = offsets[a.name] + a.size <= offsets[b.name] or offsets[b.name] + b.size <= offsets[a.name]
            assert not alive_together or disjoint, (a, b, offsets[a.name], offsets[b.name])


def chain(sizes: list[int]) -> Graph:
    graph = Graph()
    for i, size in enumerate(sizes):
        graph.tensors[f"t{i}"] = Tensor(f"t{i}", (size,), "int8", size)
    graph.inputs, graph.outputs = ["t0"], [f"t{len(sizes) - 1}"]
    graph.ops = [OpCall("k", "op", (f"t{i}",), (f"t{i + 1}",)) for i in range(len(sizes) - 1)]
    return graph


def test_chain_reuses_dead_buffers():
    plan = memory_planner.plan(chain([100, 50, 100, 50]))
    # t0 (ops 0..0) and t2 (1..2) share offset 0; t1 (0..1) and t3 (2..3) share the next
    # 16-byte aligned slot at 112: arena = 112 + 50.
    assert plan.offsets == {"t0": 0, "t2": 0, "t1": 112, "t3": 112}
    assert plan.arena_bytes == 162

def test_inputs_live_from_start_outputs_to_end():
    graph = chain([10, 20, 30])
    reqs = {r.name: r for r in buffer_requirements(graph)}
    assert reqs["t0"].first == 0 and reqs["t2"].last == len(graph.ops)


def test_reshape_alias_shares_storage():
    graph = chain([64, 64])
    graph.tensors["r"] = Tensor("r", (8, 8), "int8", 64, alias_of="t1")
    graph.ops.append(OpCall("k", "op", ("r",), ("t2",)))
    graph.tensors["t2"] = Tensor("t2", (4,), "int8", 4)
    graph.outputs = ["t2"]
    reqs = {r.name: r for r in buffer_requirements(graph)}
    assert "r" not in reqs and reqs["t1"].last == 1


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_plans_do_not_overlap(name):
    artifact = tvm_tinyml.build(str(MODELS / f"{name}.tflite"), target="host")
    tensors = artifact.memory.tensors
    requirements = [BufferRequirement(t["name"], t["bytes"], t["first"], t["last"]) for t in tensors]
    assert_no_live_overlap(requirements, {t["name"]: t["offset"] for t in tensors}, artifact.memory.arena_bytes)
    peak_live = max(sum(r.size for r in requirements if r.first <= i <= r.last) for i in range(len(artifact.metadata["layers"]) + 1))
    assert peak_live <= artifact.memory.arena_bytes


requirement_lists = st.lists(
    st.tuples(st.integers(1, 5000), st.integers(0, 30), st.integers(0, 10)), min_size=1, max_size=40
).map(lambda rows: [BufferRequirement(f"b{i}", size, first, first + span) for i, (size, first, span) in enumerate(rows)])


@settings(max_examples=300, deadline=None)
@given(requirement_lists, st.sampled_from([1, 4, 16]))
def test_random_requirements_never_overlap(requirements, alignment):
    offsets = place_greedy_by_size(requirements, alignment)
    arena = max(offsets[r.name] + r.size for r in requirements)
    assert_no_live_overlap(requirements, offsets, arena)
    assert all(offsets[r.name] % alignment == 0 for r in requirements)
