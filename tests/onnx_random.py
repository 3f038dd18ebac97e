"""Random int8 ONNX graphs (QDQ and QOperator) for differential testing against onnxruntime.

`random_graph(seed)` builds a float NCHW graph with `onnx.helper`: chains, branches (two ops
reading one tensor, joined by Add/Sub/Mul/Concat), second graph inputs and several outputs,
weights drawn from the seeded rng and scaled by their fan-in so activations stay near unit
range. `quantized_model(g, workdir)` quantizes it with `onnxruntime.quantization.quantize_static`
in the graph's format (QDQ or QOperator, per-channel or per-tensor weights, both drawn from the
seed) on seeded random calibration batches; `run_case(seed, workdir)` compiles that model for
host, runs random int8 inputs through the C and through onnxruntime with ORT_DISABLE_ALL
(`tvm_tinyml.verify`), requires <= 1 LSB on every output and replays the memory plan.

Adding an operator is one entry in `OPS` (an `OpEntry` of tests/tflite_random.py: unary, reads one
activation) or `JOINS` (reads two)::

    def _gen_relu(g: OnnxGraph, x: Act) -> Act:
        return g.node("Relu", [x.name], x.shape)

    OPS["Relu"] = OpEntry(_gen_relu, accepts=lambda x: True, weight=1.0)

`build(g, x) -> Act` adds the node with random but valid attributes drawn from `g.rng` and
returns its output; `accepts(x)` says whether it can read `x`; a join returns None when the two
shapes cannot be combined. The generator states every output shape itself and `model_proto`
checks each against onnx's strict shape inference, so a generator bug is not mistaken for a
compiler bug. Tensors stay small (`MAX_ELEMENTS`) so a graph compiles and runs in seconds.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tflite_random import (CaseResult, OpEntry, RandomGraph, _broadcast_partner_shape, _factor_shape, _plan_problems, _small,
                           degenerate_outputs)

MAX_ELEMENTS = 1024  # largest activation tensor
OPSET = 17
CALIBRATION_BATCHES = 8
FORMATS = ("QDQ", "QOperator")
# What onnxruntime's quantizer leaves float, so the generator avoids it (an int8 model has none):
# - QDQ: Relu and Clip (QDQ_NO_INPUT_QUANTIZE) do not quantize a float graph input they read.
# - QOperator: only QOPERATOR_QUANTIZING quantize a float tensor they read and give a quantized
#   graph output; its other operators stay float on a float input or at a graph output. The unary
#   ops it has no QLinear kernel for are int8 islands (DequantizeLinear -> op -> QuantizeLinear)
#   between quantized tensors; QOPERATOR_FLOAT would keep float weights or operands: not used.
QDQ_NO_INPUT_QUANTIZE = frozenset({"Relu", "Clip"})
QOPERATOR_QUANTIZING = frozenset({"Conv", "Gemm", "MatMul", "Add", "Mul", "LeakyRelu", "Sigmoid", "AveragePool",
                                  "Concat", "Softmax"})
QOPERATOR_ISLANDS = frozenset({"HardSigmoid", "HardSwish", "Tanh", "Slice"})
QOPERATOR_FLOAT = frozenset({"ConvTranspose", "Sub", "PRelu"})


@dataclass(frozen=True, eq=False)
class Act:
    """A float activation of the graph being built (quantized later by onnxruntime)."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)


class OnnxGraph:
    """The nodes, initializers and random state of one random ONNX graph."""

    choice = RandomGraph.choice
    chance = RandomGraph.chance
    integer = RandomGraph.integer

    def __init__(self, seed: int, quant_format: str) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.quant_format = quant_format
        self.per_channel = self.chance(0.5)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[Act] = []
        self.acts: list[Act] = []
        self.readers: Counter[str] = Counter()
        self.op_names: list[str] = []
        self.floats: set[str] = set()  # tensors onnxruntime keeps float: graph inputs, QOperator islands' outputs
        self.producer: dict[str, str] = {}  # tensor -> operator writing it

    def _name(self, prefix: str) -> str:
        return f"{prefix}{len(self.acts) + len(self.initializers)}"

    def input(self, shape) -> Act:
        """A new float graph input (calibrated and tested on uniform values in [-1, 1])."""
        act = Act(f"input{len(self.inputs)}", tuple(int(d) for d in shape))
        self.inputs.append(act)
        self.floats.add(act.name)
        self.acts.append(act)
        return act

    def const(self, values, dtype=np.float32) -> str:
        """An initializer (shape from `values`); returns its name."""
        name = self._name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    def weight(self, shape, fan_in: int) -> str:
        """Random float weights of `shape`, scaled so a sum of `fan_in` products keeps unit range."""
        std = self.rng.uniform(0.8, 1.6) / math.sqrt(max(fan_in, 1))
        return self.const(self.rng.normal(0.0, std, shape))

    def bias(self, channels: int) -> list[str]:
        """A random bias input (or none)."""
        return [self.const(self.rng.normal(0.0, 0.2, channels))] if self.chance(0.8) else []

    def nodes_out(self, op: str, inputs: list[str], shapes: list[tuple[int, ...]], **attrs) -> list[Act]:
        """Adds node `op` reading tensor names `inputs` ("" for absent) and writing one output per shape."""
        outs = [Act(self._name("t") + f"_{i}", tuple(int(d) for d in s)) for i, s in enumerate(shapes)]
        self.nodes.append(helper.make_node(op, inputs, [a.name for a in outs], **attrs))
        self.readers.update(set(i for i in inputs if i))
        self.op_names.append(op)
        self.acts.extend(outs)
        self.producer.update((a.name, op) for a in outs)
        if self.quant_format == "QOperator" and op in QOPERATOR_ISLANDS:
            self.floats.update(a.name for a in outs)
        return outs

    def quantizes(self, entry: str) -> bool:
        """Whether onnxruntime quantizes a float tensor that OPS entry `entry` reads, in this graph's format."""
        op = entry.split("/")[0]  # "Conv/grouped" is a Conv
        return op not in QDQ_NO_INPUT_QUANTIZE if self.quant_format == "QDQ" else op in QOPERATOR_QUANTIZING

    def may_end(self, a: Act) -> bool:
        """Whether `a` may be a graph output: written by an operator, quantized, and (QOperator) by
        an operator onnxruntime quantizes there."""
        if a.name in self.floats or a.name not in self.producer:
            return False
        return self.quant_format == "QDQ" or self.producer[a.name] in QOPERATOR_QUANTIZING

    def node(self, op: str, inputs: list[str], shape, **attrs) -> Act:
        """Adds node `op` with one output of `shape`."""
        return self.nodes_out(op, inputs, [shape], **attrs)[0]


# ---------------------------------------------------------------- option helpers


def _window(g: OnnxGraph, x: Act, max_kernel: int = 3, dilate: bool = False) -> dict:
    """Random kernel, strides, dilations and pads (each smaller than the kernel) for NCHW `x`."""
    _, _, h, w = x.shape
    kh = g.integer(1, min(max_kernel, h))
    kw = min(kh if g.chance(0.7) else g.integer(1, max_kernel), w)
    strides = g.choice([[1, 1], [2, 2], [1, 2], [2, 1]], p=[0.5, 0.35, 0.075, 0.075])
    dilations = [1, 1]
    if dilate and g.chance(0.2):
        dilations = [2 if (kh - 1) * 2 < h else 1, 2 if (kw - 1) * 2 < w else 1]
    if g.chance(0.4):
        pads = [0, 0, 0, 0]
    elif g.chance(0.6):
        pads = [(kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2]  # "same"-like
    else:
        pads = [g.integer(0, kh - 1), g.integer(0, kw - 1), g.integer(0, kh - 1), g.integer(0, kw - 1)]
    out = [(size + pads[a] + pads[a + 2] - d * (k - 1) - 1) // s + 1
           for a, (size, k, s, d) in enumerate(zip((h, w), (kh, kw), strides, dilations))]
    return dict(kernel_shape=[kh, kw], strides=strides, dilations=dilations, pads=pads, out_hw=out)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# ---------------------------------------------------------------- unary generators


def _gen_conv(kinds: dict[str, float]) -> Callable[[OnnxGraph, Act], Act]:
    """Conv of a kind drawn from `kinds` (dense, depthwise with a channel multiplier, or grouped:
    relative weights); a kind `x` cannot take (grouped on a prime channel count) becomes dense."""

    def build(g: OnnxGraph, x: Act) -> Act:
        n, cin, _, _ = x.shape
        win = _window(g, x, dilate=True)
        oh, ow = win.pop("out_hw")
        limit = max(1, MAX_ELEMENTS // (n * oh * ow))
        kind = g.choice(list(kinds), p=list(kinds.values()))
        groups = 1
        if kind == "depthwise" and cin <= limit:
            groups = cin
        elif kind == "grouped" and len(_divisors(cin)) > 2:
            groups = g.choice(_divisors(cin)[1:-1])
        per_group = max(1, min(8, limit) // groups) if groups > 1 else 1
        cout = groups * g.integer(1, min(2, per_group)) if groups > 1 else g.integer(1, max(1, min(8, limit)))
        kh, kw = win["kernel_shape"]
        weights = g.weight((cout, cin // groups, kh, kw), kh * kw * cin // groups)
        return g.node("Conv", [x.name, weights, *g.bias(cout)], (n, cout, oh, ow), group=groups, **win)

    return build


def _gen_conv_transpose(g: OnnxGraph, x: Act) -> Act:
    n, cin, h, w = x.shape
    k = g.integer(1, 3)
    stride = g.integer(1, 2)
    pads = [g.integer(0, k - 1) // 2 for _ in range(2)] * 2
    oh, ow = [(size - 1) * stride - 2 * p + k for size, p in zip((h, w), pads[:2])]
    cout = g.integer(1, max(1, min(6, MAX_ELEMENTS // (n * oh * ow))))
    weights = g.weight((cin, cout, k, k), k * k * cin // (stride * stride))
    return g.node("ConvTranspose", [x.name, weights, *g.bias(cout)], (n, cout, oh, ow), kernel_shape=[k, k],
                  strides=[stride, stride], pads=pads)


def _gen_gemm(g: OnnxGraph, x: Act) -> Act:
    rows, depth = x.shape
    units = g.integer(1, max(1, min(16, MAX_ELEMENTS // rows)))
    trans_b = int(g.chance(0.5))
    weights = g.weight((units, depth) if trans_b else (depth, units), depth)
    return g.node("Gemm", [x.name, weights, *g.bias(units)], (rows, units), transB=trans_b)


def _gen_matmul(g: OnnxGraph, x: Act) -> Act:
    depth = x.shape[-1]
    rows = x.size // depth
    units = g.integer(1, max(1, min(16, MAX_ELEMENTS // rows)))
    return g.node("MatMul", [x.name, g.weight((depth, units), depth)], (*x.shape[:-1], units))


def _binary(g: OnnxGraph, op: str, a: Act, b: Act) -> Act | None:
    """Add, Sub or Mul of two tensors (numpy broadcasting), operands in random order."""
    try:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        return None
    if int(np.prod(shape)) > MAX_ELEMENTS:
        return None
    lhs, rhs = (a, b) if g.chance(0.5) else (b, a)
    return g.node(op, [lhs.name, rhs.name], shape)


def _unary_binary(op: str) -> Callable[[OnnxGraph, Act], Act]:
    """`op` reading `x` and `x` itself, a new graph input or a constant broadcasting against it."""

    def build(g: OnnxGraph, x: Act) -> Act:
        kind = g.choice(["self", "input", "const"], p=[0.15, 0.5, 0.35])
        if kind == "self":
            return _binary(g, op, x, x)
        shape = _broadcast_partner_shape(g, x.shape)
        if kind == "input":
            return _binary(g, op, x, g.input(shape))
        low = 0.5 if op == "Mul" else -1.0
        return _binary(g, op, x, Act(g.const(g.rng.uniform(low, 1.5, shape)), shape))

    return build


def _gen_clip(g: OnnxGraph, x: Act) -> Act:
    low, high = g.choice([(0.0, 6.0), (-1.0, 1.0), (0.0, 1.0), (-0.5, 2.0), (0.0, None)])
    bounds = [g.const(low), g.const(high) if high is not None else ""]
    return g.node("Clip", [x.name, *bounds], x.shape)


def _gen_prelu(g: OnnxGraph, x: Act) -> Act:
    """PRelu with one slope per channel (NCHW) or per element of the last axis."""
    shape = (x.shape[1], 1, 1) if x.rank == 4 and g.chance(0.7) else (x.shape[-1],)
    return g.node("PRelu", [x.name, g.const(g.rng.uniform(0.0, 0.5, shape))], x.shape)


def _elementwise(op: str, **attrs: Callable[[OnnxGraph], float]) -> Callable[[OnnxGraph, Act], Act]:
    """Elementwise `op`; each attribute drawn by its function of the graph."""

    def build(g: OnnxGraph, x: Act) -> Act:
        return g.node(op, [x.name], x.shape, **{k: draw(g) for k, draw in attrs.items()})

    return build


def _gen_pool(op: str) -> Callable[[OnnxGraph, Act], Act]:
    def build(g: OnnxGraph, x: Act) -> Act:
        n, c, _, _ = x.shape
        win = _window(g, x)
        oh, ow = win.pop("out_hw")
        del win["dilations"]
        if op == "AveragePool":
            win["count_include_pad"] = int(g.chance(0.5))
        return g.node(op, [x.name], (n, c, oh, ow), **win)

    return build


def _gen_global_average_pool(g: OnnxGraph, x: Act) -> Act:
    return g.node("GlobalAveragePool", [x.name], (*x.shape[:2], 1, 1))


def _concat(g: OnnxGraph, parts: list[Act], axis: int) -> Act:
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    written = axis - len(shape) if g.chance(0.3) else axis
    return g.node("Concat", [p.name for p in parts], shape, axis=written)


def _gen_concat(g: OnnxGraph, x: Act) -> Act:
    """`x` concatenated with itself or new graph inputs along one axis."""
    axis = g.integer(1, x.rank - 1)
    parts = [x]
    for _ in range(g.integer(1, 2)):
        shape = list(x.shape)
        shape[axis] = g.integer(1, 3)
        parts.append(x if g.chance(0.3) else g.input(shape))
    g.rng.shuffle(parts)
    return _concat(g, parts, axis)


def _gen_reshape(g: OnnxGraph, x: Act) -> Act:
    shape = _factor_shape(g, x.size, g.choice([2, 3, 4], p=[0.4, 0.2, 0.4]))
    written = list(shape)
    if g.chance(0.2):
        written[g.integer(0, len(shape) - 1)] = -1
    return g.node("Reshape", [x.name, g.const(written, np.int64)], shape)


def _gen_flatten(g: OnnxGraph, x: Act) -> Act:
    axis = 1 if g.chance(0.8) else g.integer(0, x.rank - 1)
    rows = int(np.prod(x.shape[:axis]))
    return g.node("Flatten", [x.name], (rows, x.size // rows), axis=axis)


def _gen_transpose(g: OnnxGraph, x: Act) -> Act:
    perm = [int(p) for p in g.rng.permutation(x.rank)]
    return g.node("Transpose", [x.name], [x.shape[p] for p in perm], perm=perm)


def _gen_pad(g: OnnxGraph, x: Act) -> Act:
    """Constant (zero or a random value), edge or reflect padding of the last two axes."""
    mode = g.choice(["constant", "edge", "reflect"], p=[0.6, 0.2, 0.2])
    begin, end = [0] * x.rank, [0] * x.rank
    for axis in range(x.rank - 2, x.rank):
        limit = 2 if mode != "reflect" else min(2, x.shape[axis] - 1)
        begin[axis], end[axis] = g.integer(0, limit), g.integer(0, limit)
    shape = [d + b + e for d, b, e in zip(x.shape, begin, end)]
    inputs = [x.name, g.const(begin + end, np.int64)]
    if mode == "constant" and g.chance(0.4):
        inputs.append(g.const(g.rng.uniform(-1.0, 1.0)))
    return g.node("Pad", inputs, shape, mode=mode)


def _gen_resize(g: OnnxGraph, x: Act) -> Act:
    """Nearest (with a random coordinate mode) or linear resize of H and W, by scales or sizes."""
    n, c, h, w = x.shape
    mode = g.choice(["nearest", "linear"], p=[0.7, 0.3])
    limit = max(1, int(math.sqrt(MAX_ELEMENTS / (n * c))))
    attrs = dict(mode=mode, coordinate_transformation_mode=g.choice(["asymmetric", "half_pixel", "align_corners"]))
    if mode == "nearest":
        attrs["nearest_mode"] = g.choice(["floor", "round_prefer_floor", "round_prefer_ceil"])
    if g.chance(0.5):
        sh, sw = [g.choice([1, 2]) if 2 * s <= limit else 1 for s in (h, w)]
        return g.node("Resize", [x.name, "", g.const([1.0, 1.0, sh, sw])], (n, c, h * sh, w * sw), **attrs)
    oh, ow = g.integer(1, min(2 * h + 1, limit)), g.integer(1, min(2 * w + 1, limit))
    return g.node("Resize", [x.name, "", "", g.const([n, c, oh, ow], np.int64)], (n, c, oh, ow), **attrs)


def _gen_softmax(g: OnnxGraph, x: Act) -> Act:
    return g.node("Softmax", [x.name], x.shape, axis=-1 if g.chance(0.7) else g.integer(1, x.rank - 1))


def _gen_squeeze(g: OnnxGraph, x: Act) -> Act:
    ones = [a for a in range(1, x.rank) if x.shape[a] == 1]
    axes = [a for a in ones if g.chance(0.6)] or ones[:1]
    shape = [d for a, d in enumerate(x.shape) if a not in axes]
    return g.node("Squeeze", [x.name, g.const(axes, np.int64)], shape)


def _gen_unsqueeze(g: OnnxGraph, x: Act) -> Act:
    axis = g.integer(1, x.rank)
    shape = list(x.shape)
    shape.insert(axis, 1)
    return g.node("Unsqueeze", [x.name, g.const([axis], np.int64)], shape)


def _gen_split(g: OnnxGraph, x: Act) -> Act:
    """Split along an axis of size >= 2 into 2 or 3 parts (given sizes or equal); one part continues."""
    axis = g.choice([a for a in range(1, x.rank) if x.shape[a] >= 2])
    size = x.shape[axis]
    parts = g.integer(2, min(3, size))
    inputs = [x.name]
    if size % parts == 0 and g.chance(0.5):
        sizes = [size // parts] * parts
    else:
        cuts = sorted(int(c) for c in g.rng.choice(np.arange(1, size), parts - 1, replace=False))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, size])]
        inputs.append(g.const(sizes, np.int64))
    shapes = [tuple(s if a == axis else d for a, d in enumerate(x.shape)) for s in sizes]
    outs = g.nodes_out("Split", inputs, shapes, axis=axis)
    return g.choice(outs)


def _gen_slice(g: OnnxGraph, x: Act) -> Act:
    """Slice of one or two non-batch axes, step 1, 2 or -1, with random (sometimes negative) bounds."""
    axes = sorted(set(g.integer(1, x.rank - 1) for _ in range(g.integer(1, 2))))
    starts, ends, steps, shape = [], [], [], list(x.shape)
    for axis in axes:
        size = x.shape[axis]
        step = g.choice([1, 2, -1], p=[0.6, 0.25, 0.15])
        lo = g.integer(0, size - 1)
        hi = g.integer(lo + 1, size)
        if step > 0:
            starts.append(lo - size if g.chance(0.2) else lo)
            ends.append(hi if hi < size or g.chance(0.5) else 2**31)
        else:
            starts.append(hi - 1)
            ends.append(lo - 1 if lo > 0 else -size - 1)
        steps.append(step)
        shape[axis] = len(range(lo, hi, abs(step)))
    inputs = [x.name, g.const(starts, np.int64), g.const(ends, np.int64), g.const(axes, np.int64)]
    if steps != [1] * len(axes) or g.chance(0.3):
        inputs.append(g.const(steps, np.int64))
    return g.node("Slice", inputs, shape)


# ---------------------------------------------------------------- the tables


def _nchw(x: Act) -> bool:
    return x.rank == 4


def _uniform(low: float, high: float) -> Callable[[OnnxGraph], float]:
    return lambda g: float(np.float32(g.rng.uniform(low, high)))


OPS: dict[str, OpEntry] = {
    "Conv": OpEntry(_gen_conv({"dense": 0.65, "depthwise": 0.35}), _nchw, 3.0),
    "Conv/grouped": OpEntry(_gen_conv({"grouped": 1.0}), lambda x: _nchw(x) and x.shape[1] in (4, 6), 0.3),
    "ConvTranspose": OpEntry(_gen_conv_transpose, lambda x: _nchw(x) and _small(4)(x), 0.8),
    "Gemm": OpEntry(_gen_gemm, lambda x: x.rank == 2 and x.shape[1] <= 512, 1.0),
    "MatMul": OpEntry(_gen_matmul, lambda x: x.rank >= 2 and x.shape[-1] <= 512, 0.8),
    "Add": OpEntry(_unary_binary("Add"), weight=1.0),
    "Sub": OpEntry(_unary_binary("Sub"), weight=0.6),
    "Mul": OpEntry(_unary_binary("Mul"), weight=0.8),
    "Relu": OpEntry(_elementwise("Relu"), weight=0.8),
    "Clip": OpEntry(_gen_clip, weight=0.6),
    "LeakyRelu": OpEntry(_elementwise("LeakyRelu", alpha=_uniform(0.01, 0.3)), weight=0.5),
    "PRelu": OpEntry(_gen_prelu, weight=0.5),
    "Sigmoid": OpEntry(_elementwise("Sigmoid"), weight=0.5),
    "HardSigmoid": OpEntry(_elementwise("HardSigmoid", alpha=_uniform(0.1, 0.3), beta=_uniform(0.4, 0.6)), weight=0.5),
    "HardSwish": OpEntry(_elementwise("HardSwish"), weight=0.5),
    "Tanh": OpEntry(_elementwise("Tanh"), weight=0.5),
    "MaxPool": OpEntry(_gen_pool("MaxPool"), _nchw, 0.8),
    "AveragePool": OpEntry(_gen_pool("AveragePool"), _nchw, 0.8),
    "GlobalAveragePool": OpEntry(_gen_global_average_pool, _nchw, 0.5),
    "Concat": OpEntry(_gen_concat, lambda x: x.rank >= 2 and _small(3)(x), 0.7),
    "Reshape": OpEntry(_gen_reshape, weight=0.7),
    "Flatten": OpEntry(_gen_flatten, lambda x: x.rank > 2, 0.6),
    "Transpose": OpEntry(_gen_transpose, lambda x: x.rank >= 2, 0.7),
    "Pad": OpEntry(_gen_pad, lambda x: x.rank >= 2 and min(x.shape[-2:]) >= 2 and _small(3)(x), 0.6),
    "Resize": OpEntry(_gen_resize, _nchw, 0.6),
    "Softmax": OpEntry(_gen_softmax, lambda x: x.rank >= 2 and x.shape[-1] > 1, 0.5),
    "Squeeze": OpEntry(_gen_squeeze, lambda x: any(d == 1 for d in x.shape[1:]) and x.rank > 2, 0.4),
    "Unsqueeze": OpEntry(_gen_unsqueeze, lambda x: x.rank < 4, 0.4),
    "Split": OpEntry(_gen_split, lambda x: any(d >= 2 for d in x.shape[1:]), 0.5),
    "Slice": OpEntry(_gen_slice, lambda x: x.rank >= 2, 0.5),
}


# The entries tvm-tinyml compiles from ONNX QDQ today: random graphs use these by default, the
# rest of OPS waits for the ONNX operator coverage (benchmarks/fuzz_models.py --onnx-ops all).
SUPPORTED = ("Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Relu", "LeakyRelu", "MaxPool", "AveragePool",
             "GlobalAveragePool", "Reshape", "Flatten", "Transpose", "Tanh", "HardSigmoid", "Squeeze", "Unsqueeze")


def _join_concat(g: OnnxGraph, a: Act, b: Act) -> Act | None:
    """Concatenate along the one non-batch axis where the shapes differ (any if equal)."""
    if a.rank != b.rank or a.rank < 2 or a.size + b.size > MAX_ELEMENTS or a.shape[0] != b.shape[0]:
        return None
    differ = [i for i, (p, q) in enumerate(zip(a.shape, b.shape)) if p != q]
    if len(differ) > 1:
        return None
    return _concat(g, [a, b], differ[0] if differ else g.integer(1, a.rank - 1))


JOINS: dict[str, Callable[[OnnxGraph, Act, Act], Act | None]] = {
    "Add": lambda g, a, b: _binary(g, "Add", a, b),
    "Sub": lambda g, a, b: _binary(g, "Sub", a, b),
    "Mul": lambda g, a, b: _binary(g, "Mul", a, b),
    "Concat": _join_concat,
}


# ---------------------------------------------------------------- graphs


def _apply_random_op(g: OnnxGraph, x: Act, ops: dict[str, OpEntry]) -> Act:
    names = [n for n, e in ops.items() if e.accepts(x) and (x.name not in g.floats or g.quantizes(n))]
    name = g.choice(names, p=[ops[n].weight for n in names])
    return ops[name].build(g, x)


def _input_shape(g: OnnxGraph) -> tuple[int, ...]:
    if g.chance(0.15):
        return (1, g.integer(2, 48))
    return (1, g.integer(1, 6), g.integer(2, 10), g.integer(2, 10))


def _join(g: OnnxGraph, a: Act, b: Act, joins: dict) -> Act | None:
    """Joins two branches with the first join (in random order) that accepts their shapes."""
    for name in g.rng.permutation(list(joins)):
        y = joins[str(name)](g, a, b)
        if y is not None:
            return y
    return None


def random_graph(seed: int, max_ops: int = 6, ops: dict[str, OpEntry] | None = None,
                 quant_format: str | None = None) -> OnnxGraph:
    """A random graph of about `max_ops` operators from `ops` (default: SUPPORTED): chains, joined
    branches, several outputs. Its quantization format is `quant_format`, else QDQ for even seeds
    and QOperator for odd ones; operators follow the format's rules (see QOPERATOR_QUANTIZING): a
    tensor that may not be an output gets one more operator."""
    g = OnnxGraph(seed, quant_format or FORMATS[seed % 2])
    ops = {k: OPS[k] for k in SUPPORTED} if ops is None else ops
    if g.quant_format == "QOperator":
        ops = {k: v for k, v in ops.items() if k not in QOPERATOR_FLOAT}
    joins = {k: v for k, v in JOINS.items() if k in ops}
    last = g.input(_input_shape(g))
    target = g.integer(2, max_ops)
    while len(g.op_names) < target:
        source = last if g.chance(0.7) else g.choice(g.acts)
        if joins and g.chance(0.3):
            left = _apply_random_op(g, source, ops)
            right = _apply_random_op(g, source, ops) if g.chance(0.7) else source
            last = _join(g, left, right, joins) or left
        else:
            last = _apply_random_op(g, source, ops)
    closing = {k: v for k, v in ops.items() if g.quantizes(k)}
    while dangling := [a for a in g.acts if a.name in g.producer and a.name not in g.readers and not g.may_end(a)]:
        _apply_random_op(g, dangling[0], closing)
    return g


def graph_inputs(g: OnnxGraph) -> list[Act]:
    """The graph inputs some node reads, in order."""
    return [a for a in g.inputs if a.name in g.readers]


def _value_info(a: Act) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(a.name, TensorProto.FLOAT, a.shape)


def model_proto(g: OnnxGraph) -> onnx.ModelProto:
    """The float model: outputs are all unread activations, sometimes one read one too. Every
    stated shape is checked against onnx's strict shape inference (a generator self-check)."""
    outputs = [a for a in g.acts if a.name not in g.readers and a.name in g.producer]
    inner = [a for a in g.acts if a.name in g.readers and g.may_end(a)]
    if inner and g.chance(0.15):
        outputs.append(g.choice(inner))
    graph = helper.make_graph(g.nodes, f"random_{g.seed}", [_value_info(a) for a in graph_inputs(g)],
                              [_value_info(a) for a in outputs], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(inferred, full_check=True)
    shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in inferred.graph.value_info}
    for a in g.acts:
        if a.name in shapes and shapes[a.name] != a.shape:
            raise AssertionError(f"generator: {a.name} stated {a.shape}, onnx infers {shapes[a.name]}")
    return model


def calibration_batches(g: OnnxGraph) -> list[dict[str, np.ndarray]]:
    """Seeded uniform [-1, 1) batches for every graph input."""
    rng = np.random.default_rng(g.seed + 2 * 10**6)
    return [{a.name: rng.uniform(-1.0, 1.0, a.shape).astype(np.float32) for a in graph_inputs(g)}
            for _ in range(CALIBRATION_BATCHES)]


def float_leaks(model: onnx.ModelProto) -> list[str]:
    """Where a quantized model computes in float outside DequantizeLinear -> op -> QuantizeLinear: a
    float operator reading a graph input or a float constant (Clip's bounds and Resize's scales
    are attributes in effect), or writing a graph output."""
    graph = model.graph
    floats = {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT}
    inputs, outputs = {v.name for v in graph.input}, {v.name for v in graph.output}
    leaks = []
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or node.domain == "com.microsoft" \
                or node.op_type.startswith("QLinear"):
            continue
        operands = node.input[:1] if node.op_type in ("Clip", "Resize") else node.input
        leaks += [f"{node.op_type} reads float {name}" for name in operands if name in inputs | floats]
        leaks += [f"{node.op_type} writes output {name}" for name in node.output if name in outputs]
    return leaks


def quantized_model(g: OnnxGraph, workdir: Path) -> Path:
    """The graph quantized by `quantize_static` in its format (int8, per-channel weights or not)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(calibration_batches(g))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    float_path = Path(workdir) / f"onnx_random_{g.seed}_float.onnx"
    path = Path(workdir) / f"onnx_random_{g.seed}.onnx"
    onnx.save(model_proto(g), float_path)
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static logs advice on every model
    quantize_static(str(float_path), str(path), Reader(), quant_format=getattr(QuantFormat, g.quant_format),
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=g.per_channel,
                    op_types_to_quantize=sorted(set(g.op_names)), extra_options={"ForceQuantizeNoInputCheck": True})
    leaks = float_leaks(onnx.load(path))
    if leaks:
        raise AssertionError(f"generator: onnxruntime left float operators: {', '.join(leaks)}")
    return path


def case_ops(g: OnnxGraph) -> list[str]:
    """The graph's operators tagged with its format (how the fuzz table counts them)."""
    return [f"{op} ({g.quant_format})" for op in g.op_names]


def run_case(seed: int, workdir: Path, inputs: int = 2, ops: dict[str, OpEntry] | None = None,
             **build_options) -> CaseResult:
    """Builds random graph `seed`, quantizes it, compiles it for host (or with `tvm_tinyml.build`
    keyword arguments `build_options`), compares `inputs` random int8 input sets with onnxruntime
    (<= 1 LSB) and replays the memory plan."""
    import tvm_tinyml
    from tvm_tinyml.errors import UnsupportedOperatorError
    from tvm_tinyml.verify import TOLERANCE, compare, entry_inputs, random_inputs, reference_outputs

    g = random_graph(seed, ops=ops)
    names = case_ops(g)
    try:
        path = quantized_model(g, workdir)
    except Exception as e:  # noqa: BLE001 - the generator made a model onnx or onnxruntime refuses
        return CaseResult(seed, names, "invalid", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                          traceback.format_exc().splitlines()[-12:])
    try:
        artifact = tvm_tinyml.build(str(path), **{"target": "host", **build_options})
        meta = artifact.metadata
        sets = random_inputs(artifact, inputs, seed)
        refs = reference_outputs(str(path), meta, sets)
        ours = [artifact.run_host(xs) for xs in entry_inputs(sets, meta)]
        max_diff, mismatched = compare(ours, refs, meta)
        replayed, problems = _plan_problems(artifact)
    except UnsupportedOperatorError as e:
        return CaseResult(seed, names, "unsupported", str(e).splitlines()[0])
    except Exception as e:  # noqa: BLE001 - any crash is a finding, reported with its seed
        return CaseResult(seed, names, "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                          traceback.format_exc().splitlines()[-12:])
    if max_diff > TOLERANCE["onnx"]:
        return CaseResult(seed, names, "mismatch", f"max |diff| {max_diff} LSB on {mismatched}/{inputs} input sets",
                          replayed=replayed)
    if problems:
        return CaseResult(seed, names, "plan", problems[0], problems, replayed)
    if degenerate_outputs(refs):
        return CaseResult(seed, names, "degenerate", f"outputs {degenerate_outputs(refs)} are constant", replayed=replayed)
    return CaseResult(seed, names, "pass", replayed=replayed)
