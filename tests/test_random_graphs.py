"""Differential random testing: random int8 TFLite graphs (tests/tflite_random.py), compiled
for host and compared bit-exactly with TFLite Micro, their memory plans replayed; plus the
minimised regressions the fuzzer found.

A failure names its seed; rerun it with
`PYTHONPATH=$PWD python benchmarks/fuzz_models.py --seed SEED --graphs 1 -v`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

import tvm_tinyml
from tflite_builder import ModelBuilder, run_tflm
from tflite_random import OPS, build_model, degenerate_outputs, graph_inputs, input_sets, random_graph, random_model, run_case
from test_ops import act, add_conv, check

SEEDS = range(100)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_graph_is_bit_exact(tmp_path, seed):
    result = run_case(seed, tmp_path, inputs=2)
    assert result.passed, (
        f"random graph seed {seed}: {result.status}: {result.message} [{' '.join(result.ops)}]\n"
        f"reproduce: PYTHONPATH=$PWD python benchmarks/fuzz_models.py --seed {seed} --graphs 1 -v\n"
        + "\n".join(result.details)
    )


def test_seeds_cover_every_operator_and_graph_shape():
    """The fixed seeds exercise every table entry, branches and several outputs."""
    graphs = [random_graph(seed) for seed in SEEDS]
    used = Counter(op for g in graphs for op in set(g.op_names))
    assert set(OPS) <= set(used), set(OPS) - set(used)
    assert sum(len(g.inputs) > 1 for g in graphs) >= 10
    assert sum(max(g.readers.values()) > 1 for g in graphs) >= 20  # a tensor read by two operators
    outputs = [schema.Model.GetRootAs(build_model(g), 0).Subgraphs(0).OutputsLength() for g in graphs]
    assert sum(n > 1 for n in outputs) >= 10


def test_random_memory_plans_share_bytes(tmp_path):
    """The plans replayed by the bit-exact tests do overlap inputs and outputs (the replay is not idle)."""
    assert sum(run_case(seed, tmp_path).replayed for seed in range(10)) > 0


def test_random_graph_outputs_are_informative():
    """The calibrated quantization keeps outputs varying: few graphs have a constant output."""
    constant = []
    for seed in SEEDS:
        g = random_graph(seed)
        model = build_model(g)
        runs = [run_tflm(model, xs) for xs in input_sets([a.shape for a in graph_inputs(g)], seed, 2)]
        constant += [seed] * bool(degenerate_outputs(runs))
    assert len(constant) <= 3, constant


def test_random_models_are_deterministic():
    assert random_model(7) == random_model(7)
    assert random_model(7)[0] != random_model(8)[0]


# ---------------------------------------------------------------- regressions found by the fuzzer


def test_concatenation_of_a_tensor_with_itself(tmp_path):
    """CONCATENATION [x, x]: the kernel takes one buffer twice (TVM's C names the second `x_1`)."""
    b = ModelBuilder()
    x = act(b, [1, 3, 3, 2])
    y = act(b, [1, 3, 3, 4])
    b.add_operator("CONCATENATION", [x, x], [y], axis=3)
    check(tmp_path, b.build([x], [y]))


def test_conv_with_absent_bias(tmp_path):
    """CONV_2D whose optional bias input is -1 (TFLM treats it as no bias)."""
    b = ModelBuilder()
    x = act(b, [1, 5, 5, 3])
    y, _ = add_conv(b, x, [1, 5, 5, 3], 4, kernel=3, seed=5)
    op = b._operators[-1]
    op.inputs = [op.inputs[0], op.inputs[1], -1]
    check(tmp_path, b.build([x], [y]))


def test_depthwise_with_one_channel_per_channel_quantized(tmp_path):
    """A 1-channel per-channel depthwise filter: one scale, quantized dimension 3 (TVM wanted 0)."""
    b = ModelBuilder()
    x = act(b, [1, 6, 6, 1])
    weights = b.add_tensor([1, 3, 3, 1], np.int8, scale=[0.01], zero_point=0, quantized_dimension=3,
                           data=np.random.default_rng(3).integers(-127, 128, (1, 3, 3, 1)))
    bias = b.add_tensor([1], np.int32, scale=[0.05 * 0.01], zero_point=0, data=np.array([700]))
    y = act(b, [1, 6, 6, 1], scale=0.02, zero_point=-3)
    b.add_operator("DEPTHWISE_CONV_2D", [x, weights, bias], [y], padding="SAME", stride_h=1, stride_w=1,
                   depth_multiplier=1)
    check(tmp_path, b.build([x], [y]))


@pytest.mark.parametrize("beta", [0.5, 2.0, 0.7])
def test_softmax_beta(tmp_path, beta):
    """SOFTMAX computes softmax(beta * x) (TVM's converter dropped beta)."""
    b = ModelBuilder()
    x = act(b, [1, 3, 12], scale=0.08, zero_point=-7)
    y = act(b, [1, 3, 12], scale=1.0 / 256, zero_point=-128)
    b.add_operator("SOFTMAX", [x], [y], beta=beta)
    check(tmp_path, b.build([x], [y]))


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("const_shape, const_first", [([1, 1, 1, 4], False), ([1, 4, 4, 4], True)])
def test_binary_with_a_constant_operand(tmp_path, op, const_shape, const_first):
    """ADD/MUL of an activation and a constant int8 tensor (either side, broadcast or not)."""
    b = ModelBuilder()
    x = act(b, [1, 4, 4, 4])
    c = b.add_tensor(const_shape, np.int8, scale=0.03, zero_point=4,
                     data=np.random.default_rng(1).integers(-128, 128, const_shape))
    y = act(b, [1, 4, 4, 4], scale=0.1 if op == "ADD" else 0.05, zero_point=-2)
    b.add_operator(op, [c, x] if const_first else [x, c], [y], fused_activation_function="NONE")
    check(tmp_path, b.build([x], [y]))


def test_patch_loop_keeps_an_input_that_is_also_a_model_output(tmp_path):
    """A patched depthwise conv whose input is also a model output (through a RESHAPE): the
    stage may not overlap that input (the loop's overlaps were computed before the outputs
    were known, so the stage overwrote the second output)."""
    b = ModelBuilder()
    x = act(b, [1, 6, 6, 3])
    g = np.random.default_rng(4)
    weights = b.add_tensor([1, 3, 3, 3], np.int8, scale=[0.01, 0.02, 0.015], zero_point=0, quantized_dimension=3,
                           data=g.integers(-127, 128, (1, 3, 3, 3)))
    bias = b.add_tensor([3], np.int32, scale=[0.05 * s for s in (0.01, 0.02, 0.015)], zero_point=0,
                        data=g.integers(-500, 500, 3))
    y = act(b, [1, 6, 6, 3], scale=0.03, zero_point=-3)
    b.add_operator("DEPTHWISE_CONV_2D", [x, weights, bias], [y], padding="SAME", stride_h=1, stride_w=1,
                   depth_multiplier=1)
    flat = act(b, [1, 108])
    b.add_operator("RESHAPE", [x, b.add_tensor([2], np.int32, data=np.array([1, 108]))], [flat], new_shape=[1, 108])
    model = b.build([x], [y, flat])
    path = tmp_path / "model.tflite"
    path.write_bytes(model)
    artifact = tvm_tinyml.build(str(path), target="host", patch=(1, 2))
    assert artifact.memory.patch is not None
    for seed in range(3):
        xs = [np.random.default_rng(seed).integers(-128, 128, [1, 6, 6, 3]).astype(np.int8)]
        for ours, ref in zip(artifact.run_host(xs), run_tflm(model, xs)):
            np.testing.assert_array_equal(ours.reshape(ref.shape), ref)


@pytest.mark.parametrize("op, shape, const", [
    ("TRANSPOSE", [2, 11], [0, 1]),  # identity
    ("TRANSPOSE", [1, 24], [1, 0]),  # only a size-1 axis moves
    ("TRANSPOSE", [1, 3, 1, 4], [0, 2, 1, 3]),
    ("PAD", [1, 3, 4, 2], [[0, 0], [0, 0], [0, 0], [0, 0]]),  # pads nothing
])
@pytest.mark.parametrize("planner", ["tinyml", "tvm"])
def test_byte_order_preserving_ops_build_with_both_planners(tmp_path, op, shape, const, planner):
    """A TRANSPOSE that keeps the bytes in order, or an empty PAD: TVM's plan treats such a copy
    as a reshape (a view), which memory_planner="tvm" once could not map (KeyError); both planners
    build it bit-exact."""
    const = np.array(const, np.int32)
    out_shape = [shape[p] for p in const] if op == "TRANSPOSE" else shape
    b = ModelBuilder()
    x = act(b, shape)
    t = act(b, out_shape)
    b.add_operator(op, [x, b.add_tensor(list(const.shape), np.int32, data=const)], [t])
    y = act(b, out_shape, scale=0.08, zero_point=3)
    b.add_operator("QUANTIZE", [t], [y])
    path = tmp_path / "model.tflite"
    model = b.build([x], [y])
    path.write_bytes(model)
    artifact = tvm_tinyml.build(str(path), target="host", memory_planner=planner)
    xs = [np.random.default_rng(0).integers(-128, 128, shape).astype(np.int8)]
    np.testing.assert_array_equal(artifact.run_host(xs)[0].reshape(out_shape), run_tflm(model, xs)[0])
