"""The arena plan: never two tensors alive together in the same bytes, except an op's streaming
input/output pair in the way its kernel's read/write order allows (replayed here, brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memory_planner
import tvm_tinyml
from conftest import BUNDLED, MODELS
from memory_planner import BufferRequirement, Graph, OpCall, Overlap, Tensor
from memory_planner.bounds import classic_bound, lower_bound
from memory_planner.lifetimes import buffer_requirements
from memory_planner.placement import place
from replay import kernel_trace, overlap_is_safe, overlap_problems
from tvm_tinyml.overlap import max_overlap_delta


def assert_plan_is_legal(requirements, overlaps, offsets, arena) -> None:
    """Independent of the planner: check every pair of buffers alive together."""
    allowed = {(o.input, o.output): o.max_delta for o in overlaps}
    for r in requirements:
        assert 0 <= offsets[r.name] and offsets[r.name] + r.size <= arena
    for a, b in itertools.combinations(requirements, 2):
        if not (a.first <= b.last and b.first <= a.last):
            continue
        disjoint = offsets[a.name] + a.size <= offsets[b.name] or offsets[b.name] + b.size <= offsets[a.name]
        if disjoint:
            continue
        pair = (a.name, b.name) if (a.name, b.name) in allowed else (b.name, a.name)
        assert pair in allowed, (a, b, offsets[a.name], offsets[b.name])
        assert offsets[pair[1]] - offsets[pair[0]] <= allowed[pair], (pair, offsets)


def chain(sizes: list[int], overlap: int | None = None) -> Graph:
    graph = Graph()
    for i, size in enumerate(sizes):
        graph.tensors[f"t{i}"] = Tensor(f"t{i}", (size,), "int8", size)
    graph.inputs, graph.outputs = ["t0"], [f"t{len(sizes) - 1}"]
    graph.ops = [OpCall("k", "op", (f"t{i}",), (f"t{i + 1}",), (overlap,)) for i in range(len(sizes) - 1)]
    return graph


def test_chain_reuses_dead_buffers():
    plan = memory_planner.plan(chain([100, 50, 100, 50]))
    assert plan.classic_bound == plan.lower_bound == 150
    assert plan.arena_bytes == 162  # 100 + 50 at the next 16-byte boundary (112)
    assert_plan_is_legal(plan.requirements, plan.overlaps, plan.offsets, plan.arena_bytes)


def test_streaming_chain_slides_below_the_classic_bound():
    plan = memory_planner.plan(chain([1000, 1000, 1000, 1000], overlap=-16), alignment=16)
    assert plan.classic_bound == 2000 and plan.lower_bound == 1016
    assert plan.arena_bytes == 1000 + 3 * 16
    assert_plan_is_legal(plan.requirements, plan.overlaps, plan.offsets, plan.arena_bytes)


def test_inputs_live_from_start_outputs_to_end():
    graph = chain([10, 20, 30])
    reqs = {r.name: r for r in buffer_requirements(graph, [0, 1])}
    assert reqs["t0"].first == 0 and reqs["t2"].last == 2


def test_reshape_alias_shares_storage():
    graph = chain([64, 64])
    graph.tensors["r"] = Tensor("r", (8, 8), "int8", 64, alias_of="t1")
    graph.tensors["t2"] = Tensor("t2", (4,), "int8", 4)
    graph.ops.append(OpCall("k", "op", ("r",), ("t2",), (None,)))
    graph.outputs = ["t2"]
    reqs = {r.name: r for r in buffer_requirements(graph, [0, 1])}
    assert "r" not in reqs and reqs["t1"].last == 1


def test_execution_order_finishes_one_branch_before_starting_the_other():
    """x -> a (1000 B) -> a2 and x -> b (1000 B) -> b2, joined: the graph lists both big ops
    first (2010 B alive at once); running each branch to its small end first needs 1020 B."""
    graph = Graph()
    for name, size in {"x": 10, "a": 1000, "b": 1000, "a2": 10, "b2": 10, "y": 10}.items():
        graph.tensors[name] = Tensor(name, (size,), "int8", size)
    graph.inputs, graph.outputs = ["x"], ["y"]
    graph.ops = [
        OpCall("k", "op", ("x",), ("a",), (None,)),
        OpCall("k", "op", ("x",), ("b",), (None,)),
        OpCall("k", "op", ("a",), ("a2",), (None,)),
        OpCall("k", "op", ("b",), ("b2",), (None,)),
        OpCall("k", "op", ("a2", "b2"), ("y",), (None, None)),
    ]
    plan = memory_planner.plan(graph, alignment=1)
    assert plan.classic_bound == 1020 and plan.arena_bytes == 1020
    assert plan.order.index(2) < plan.order.index(1)


# ---------------------------------------------------------------- the kernels' overlap rule, replayed


@settings(max_examples=80, deadline=None)
@given(
    op=st.sampled_from(["conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d"]),
    hw=st.integers(2, 6),
    c_in=st.integers(1, 4),
    mult=st.integers(1, 2),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    pad=st.integers(0, 1),
)
def test_overlap_rule_is_safe_and_tight_against_a_replay(op, hw, c_in, mult, k, stride, pad):
    c_out = c_in * mult if op in ("conv2d", "depthwise_conv2d") else c_in
    oh = (hw + 2 * pad - k) // stride + 1
    if oh < 1:
        return
    attrs = {"strides": [stride, stride], "pads": [pad, pad, pad, pad], "dilation": [1, 1]}
    if op.endswith("pool2d"):
        attrs["pool"] = [k, k]
    weights = (k, k, c_in, c_out) if op == "conv2d" else (k, k, c_out)
    in_shape, out_shape = (1, hw, hw, c_in), (1, oh, oh, c_out)
    delta = max_overlap_delta(op, attrs, 0, [in_shape, weights], 1, out_shape, 1)
    trace = kernel_trace(op, attrs, [in_shape, weights], out_shape, 0, weights)
    in_size, out_size = int(np.prod(in_shape)), int(np.prod(out_shape))
    assert overlap_is_safe(trace, delta, in_size)
    # Tight: the rule gives the largest safe overlap at or below zero offset.
    assert delta > 0 or delta == max(d for d in range(-out_size, 1) if overlap_is_safe(trace, d, in_size))


def assert_overlaps_replay_safely(graph: Graph, plan) -> int:
    """For every input/output pair the plan lets share bytes, replay the kernel at the actual offsets."""
    checked, problems = overlap_problems(graph, plan)
    assert not problems, problems
    return checked


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["conv2d", "depthwise_conv2d", "max_pool2d"]), st.integers(1, 3),
                          st.integers(1, 2), st.integers(1, 3)), min_size=1, max_size=5),
       st.integers(4, 9), st.integers(1, 4))
def test_random_kernel_chains_plan_and_replay_safely(layers, hw, channels):
    """Random chains of real kernels, planned by the real planner, replayed at the chosen offsets."""
    graph = Graph()
    shape = (1, hw, hw, channels)
    graph.tensors["t0"] = Tensor("t0", shape, "int8", int(np.prod(shape)))
    graph.inputs = ["t0"]
    for i, (op, k, stride, grow) in enumerate(layers):
        c_in = shape[3]
        c_out = c_in * grow if op == "conv2d" else c_in
        pad = k // 2
        oh = (shape[1] + 2 * pad - k) // stride + 1
        out_shape = (1, oh, oh, c_out)
        attrs = {"strides": [stride, stride], "pads": [pad] * 4, "dilation": [1, 1]}
        if op == "max_pool2d":
            attrs["pool"] = [k, k]
        weights = (k, k, c_in, c_out) if op == "conv2d" else (k, k, c_out)
        graph.tensors[f"w{i}"] = Tensor(f"w{i}", weights, "int8", int(np.prod(weights)), const=True)
        graph.tensors[f"t{i + 1}"] = Tensor(f"t{i + 1}", out_shape, "int8", int(np.prod(out_shape)))
        delta = max_overlap_delta(op, attrs, 0, [shape, weights], 1, out_shape, 1)
        graph.ops.append(OpCall("k", op, (f"t{i}", f"w{i}"), (f"t{i + 1}",), (delta, None), (), attrs))
        shape = out_shape
    graph.outputs = [f"t{len(layers)}"]
    plan = memory_planner.plan(graph, search_seconds=0.05)
    assert_plan_is_legal(plan.requirements, plan.overlaps, plan.offsets, plan.arena_bytes)
    assert_overlaps_replay_safely(graph, plan)


# ---------------------------------------------------------------- whole models and random problems


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_plans_are_legal(name):
    artifact = tvm_tinyml.build(str(MODELS / f"{name}.tflite"), target="host")
    plan = artifact.plan
    assert_plan_is_legal(plan.requirements, plan.overlaps, plan.offsets, plan.arena_bytes)
    replayed = assert_overlaps_replay_safely(artifact.graph, plan)
    assert replayed > 0 or name == "ad01_int8"  # every conv model shares bytes somewhere
    assert plan.lower_bound <= plan.arena_bytes
    assert plan.arena_bytes <= plan.classic_bound


requirement_lists = st.lists(
    st.tuples(st.integers(1, 5000), st.integers(0, 30), st.integers(0, 10)), min_size=1, max_size=30
).map(lambda rows: [BufferRequirement(f"b{i}", size, first, first + span) for i, (size, first, span) in enumerate(rows)])


@settings(max_examples=300, deadline=None)
@given(requirement_lists, st.sampled_from([1, 4, 16]), st.data())
def test_random_problems_are_placed_legally(requirements, alignment, data):
    # Random streaming overlaps between a buffer and one born when it dies.
    overlaps = []
    for a, b in itertools.product(requirements, repeat=2):
        if a.last == b.first and a.first < b.first and data.draw(st.booleans()):  # an op input predates its output
            overlaps.append(Overlap(a.name, b.name, data.draw(st.integers(-b.size, 0))))
    steps = max(r.last for r in requirements)
    bound = lower_bound(requirements, overlaps, steps)
    result = place(requirements, overlaps, alignment=alignment, lower_bound=bound, search_seconds=0.05)
    assert_plan_is_legal(requirements, overlaps, result.offsets, result.arena)
    assert all(result.offsets[r.name] % alignment == 0 for r in requirements)
    assert bound <= result.arena
    assert bound <= classic_bound(requirements, steps)
