"""Differential random testing: random int8 TFLite graphs (tests/tflite_random.py), compiled
for host and compared bit-exactly with TFLite Micro, their memory plans replayed; plus the
minimised regressions the fuzzer found.

A failure names its seed; rerun it with
`PYTHONPATH=$PWD python benchmarks/fuzz_models.py --seed SEED --graphs 1 -v`.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tflite_builder import ModelBuilder
from tflite_random import OPS, random_graph, random_model, run_case
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
