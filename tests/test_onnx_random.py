"""Differential random testing of the ONNX path: random int8 graphs (tests/onnx_random.py), half
QDQ (even seeds) and half QOperator (odd seeds), compiled for host and within 1 LSB of
onnxruntime run with ORT_DISABLE_ALL, their memory plans replayed.

A failure names its seed; rerun it with
`PYTHONPATH=$PWD python benchmarks/fuzz_models.py --graphs 0 --onnx-graphs 1 --seed SEED -v`.
"""

from __future__ import annotations

from collections import Counter

import onnx
import pytest

from onnx_random import FORMATS, float_leaks, graph_inputs, model_proto, quantized_model, random_graph, run_case

SEEDS = range(30)
# Beyond them, seeds that once failed: 81 (QOperator HardSigmoid island after a float Flatten),
# 91 (QOperator MaxPool between two quantizations).
REGRESSION_SEEDS = (81, 91)
# Open compiler defects these seeds hit (reported; strict: each must fail until it is fixed).
KNOWN_DEFECTS = {
    3: "QLinearConv requantizes in float (onnxruntime) where our conv kernel rounds twice (TFLite's "
       "fixed point): 1 LSB, and QLinearAveragePool's rounding at ties another: 2 LSB",
}


@pytest.mark.parametrize("seed", [pytest.param(s, marks=pytest.mark.xfail(reason=KNOWN_DEFECTS[s], strict=True))
                                  if s in KNOWN_DEFECTS else s for s in [*SEEDS, *REGRESSION_SEEDS]])
def test_random_onnx_graph_within_one_lsb(tmp_path, seed):
    result = run_case(seed, tmp_path, inputs=2)
    assert result.passed, (
        f"random ONNX graph seed {seed}: {result.status}: {result.message} [{' '.join(result.ops)}]\n"
        f"reproduce: PYTHONPATH=$PWD python benchmarks/fuzz_models.py --graphs 0 --onnx-graphs 1 --seed {seed} -v\n"
        + "\n".join(result.details)
    )


def test_seeds_cover_both_formats_and_graph_shapes():
    """The fixed seeds: half QDQ, half QOperator, per-channel and per-tensor weights, branches,
    second graph inputs and several outputs."""
    graphs = [random_graph(seed) for seed in SEEDS]
    assert Counter(g.quant_format for g in graphs) == {f: len(SEEDS) // 2 for f in FORMATS}
    assert 5 <= sum(g.per_channel for g in graphs) <= len(SEEDS) - 5
    assert sum(len(graph_inputs(g)) > 1 for g in graphs) >= 5
    assert sum(max(g.readers.values()) > 1 for g in graphs) >= 10  # a tensor read by two operators
    assert sum(len(model_proto(g).graph.output) > 1 for g in graphs) >= 5


def test_quantized_graphs_are_int8(tmp_path):
    """onnxruntime's quantizer leaves no float operator at the graph's ends (the generator's rules),
    and the check would see one: a float Relu on a graph input."""
    for seed in SEEDS:
        model = onnx.load(quantized_model(random_graph(seed), tmp_path))
        assert not float_leaks(model), seed
        assert any(n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in model.graph.node)
    leaky = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])
    assert float_leaks(onnx.helper.make_model(leaky)) == ["Relu reads float x", "Relu writes output y"]


def test_random_onnx_models_are_deterministic():
    def serialized(seed: int) -> bytes:
        return model_proto(random_graph(seed)).SerializeToString()

    assert serialized(7) == serialized(7)
    assert serialized(7) != serialized(8)
