"""Random valid int8 TFLite graphs for differential testing against TFLite Micro.

`random_model(seed)` builds a graph of chains, branches (two ops reading one tensor, joined
by ADD/MUL/CONCATENATION) and several outputs with `tflite_builder.ModelBuilder`;
`run_case(seed, workdir)` compiles it for host, runs random inputs through the C and TFLM,
requires bit-exact outputs and replays the memory plan (tests/replay.py).

Quantization is "calibrated" the way a converter would do it: every activation carries a
sample of plausible real values (`Act.samples`, propagated op by op from uniform int8 graph
inputs), and a new output quantization covers that sample's range (`RandomGraph.quant_for`),
so outputs neither saturate nor collapse to a few values.

Adding an operator is one entry in `OPS` (unary: reads one activation) or `JOINS` (reads
two, for branches)::

    def _gen_relu(g: RandomGraph, x: Act) -> Act:
        y = g.output(x.shape, np.maximum(x.samples, 0.0))     # new quantization from samples
        g.op("RELU", [x.index], y)                             # ModelBuilder.add_operator kwargs
        return y

    OPS["RELU"] = OpEntry(_gen_relu, accepts=lambda x: True, weight=1.0)

An `OpEntry` has `build(g, x) -> Act` (adds the op reading `x` with random but valid options
drawn from `g.rng` and returns its output), `accepts(x) -> bool` (can it read `x`: rank, size)
and `weight` (relative frequency). A join is `build(g, a, b) -> Act | None` (None when the two
shapes cannot be combined). Generators must only produce variants the compiler supports;
graph tensors stay small (`MAX_ELEMENTS`) so a graph compiles and runs in about a second.

Tools for a build function, all on `g` (a `RandomGraph`): `g.rng`, `g.choice`, `g.chance`,
`g.integer` for random options; `g.output(shape, samples, quant=None)` for the output tensor
(`quant=x.quant` when the op requires equal input and output quantization, a fixed pair such
as `(1 / 256, -128)` when TFLM requires one); `g.const(values, dtype, **quant)` for constant
operands (axes, shapes, weights), `g.const_act(shape)` for a constant int8 operand and
`g.input(shape, quant=None)` for a second graph input; `g.op(name, input_indices, y, **options)`
to add the operator (options as for `ModelBuilder.add_operator`); `g.requantized(x, quant)`
inserts a QUANTIZE when an operand needs another quantization. The samples of `y` should be
what the op computes on the samples of its inputs (`g.mix` decorrelates a second operand).
"""

from __future__ import annotations

import math
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tflite_builder import ModelBuilder, run_tflm, schema
from test_ops_sequence import add_lstm, add_svdf

MAX_ELEMENTS = 1536  # largest activation tensor
NUM_SAMPLES = 512  # real values carried per activation to choose quantization
I8 = np.int8
_STANDARD_NORMAL = np.random.default_rng(0).standard_normal(NUM_SAMPLES)


@dataclass(frozen=True, eq=False)
class Act:
    """An int8 activation tensor of the graph being built."""

    index: int  # tensor index in the ModelBuilder
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    samples: np.ndarray  # plausible real values (already clipped to the int8 range)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def quant(self) -> tuple[float, int]:
        return self.scale, self.zero_point


class RandomGraph:
    """A ModelBuilder plus the random state and bookkeeping of one random graph."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.builder = ModelBuilder()
        self.inputs: list[Act] = []
        self.acts: list[Act] = []
        self.readers: Counter[int] = Counter()  # tensor index -> operators reading it
        self.op_names: list[str] = []
        self.sealed: set[int] = set()  # tensors no further operator or output may read (a patch head's inside)
        self.terminals: list[int] = []  # non-int8 model outputs (ARG_MAX indices, DEQUANTIZE floats)

    # ------------------------------------------------------------ random helpers

    def choice(self, options, p=None):
        """One element of `options` (a list of anything), optionally weighted."""
        if p is not None:
            p = np.asarray(p, float) / np.sum(p)
        return options[int(self.rng.choice(len(options), p=p))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def integer(self, low: int, high: int) -> int:
        """Uniform in [low, high] (inclusive)."""
        return int(self.rng.integers(low, high + 1))

    def mix(self, samples: np.ndarray) -> np.ndarray:
        """An independent-looking copy of a sample (a permutation)."""
        return self.rng.permutation(samples)

    # ------------------------------------------------------------ tensors

    def quant_for(self, samples: np.ndarray) -> tuple[float, int]:
        """Scale and zero point covering the sample's range, as a min/max calibration would."""
        lo, hi = np.percentile(samples, [0.5, 99.5]) * self.rng.uniform(0.9, 1.3)
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)  # TFLite ranges include 0
        if hi - lo < 1e-6:
            hi = lo + 1e-3
        scale = float(np.float32((hi - lo) / 255.0))
        zero_point = int(np.clip(round(-128 - lo / scale), -128, 127))
        return scale, zero_point

    def _tensor(self, shape, quant, samples: np.ndarray) -> Act:
        scale, zero_point = quant
        index = self.builder.add_tensor(list(shape), I8, scale=scale, zero_point=zero_point)
        clipped = np.clip(samples, (-128 - zero_point) * scale, (127 - zero_point) * scale)
        act = Act(index, tuple(int(d) for d in shape), scale, zero_point, clipped)
        self.acts.append(act)
        return act

    def output(self, shape, samples: np.ndarray, quant: tuple[float, int] | None = None) -> Act:
        """A new activation; quantization `quant`, or one calibrated on `samples`."""
        return self._tensor(shape, quant or self.quant_for(samples), samples)

    def input(self, shape, quant: tuple[float, int] | None = None) -> Act:
        """A new graph input (fed with uniform random int8 data)."""
        if quant is None:
            quant = (float(np.float32(self.rng.uniform(0.01, 0.1))), self.integer(-20, 20))
        scale, zero_point = quant
        q = self.rng.integers(-128, 128, NUM_SAMPLES)
        act = self._tensor(shape, quant, (q - zero_point) * scale)
        self.inputs.append(act)
        return act

    def const_act(self, shape) -> Act:
        """A constant int8 tensor of random values and quantization (not a graph activation)."""
        scale, zero_point = float(np.float32(self.rng.uniform(0.01, 0.1))), self.integer(-20, 20)
        q = self.rng.integers(-128, 128, shape)
        index = self.const(q, I8, scale=scale, zero_point=zero_point)
        samples = (self.rng.choice(q.reshape(-1), NUM_SAMPLES) - zero_point) * scale
        return Act(index, tuple(int(d) for d in shape), scale, zero_point, samples)

    def const(self, values, dtype=np.int32, **quant) -> int:
        """A constant tensor (shape from `values`)."""
        values = np.asarray(values, dtype)
        return self.builder.add_tensor(list(values.shape), dtype, data=values, **quant)

    def op(self, name: str, inputs: list[int], out: Act | list[Act], **options) -> None:
        """Adds builtin `name` reading tensor indices `inputs` (-1: absent) and writing `out` (one or several)."""
        outs = out if isinstance(out, list) else [out]
        self.builder.add_operator(name, inputs, [o.index for o in outs], **options)
        self.record(name, inputs)

    def record(self, name: str, inputs: list[int]) -> None:
        """Books operator `name` reading `inputs` (for one added to `builder` directly)."""
        self.readers.update(set(i for i in inputs if i >= 0))
        self.op_names.append(name)

    def adopt(self, index: int, shape, samples: np.ndarray) -> Act:
        """The activation of an int8 tensor added to `builder` directly (by an op test's builder)."""
        scale, zero_point = self.builder.quantization(index)
        act = Act(index, tuple(int(d) for d in shape), scale, zero_point,
                  np.clip(samples, (-128 - zero_point) * scale, (127 - zero_point) * scale))
        self.acts.append(act)
        return act

    def terminal(self, name: str, inputs: list[int], shape, dtype, **options) -> None:
        """Adds `name` reading `inputs` into a new non-int8 model output of `shape` and `dtype`."""
        index = self.builder.add_tensor(list(shape), dtype)
        self.builder.add_operator(name, inputs, [index], **options)
        self.record(name, inputs)
        self.terminals.append(index)

    def requantized(self, x: Act, quant: tuple[float, int]) -> Act:
        """`x` in quantization `quant` (a QUANTIZE int8 -> int8 when it differs)."""
        if x.quant == quant:
            return x
        y = self.output(x.shape, x.samples, quant)
        self.op("QUANTIZE", [x.index], y)
        return y


# ---------------------------------------------------------------- option helpers


def _out_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """TFLite's output size of a window along one axis."""
    if padding == "SAME":
        return -(-size // stride)
    return -(-(size - (kernel - 1) * dilation) // stride)


def _window(g: RandomGraph, x: Act, max_kernel: int = 3, dilate: bool = False) -> dict:
    """Random kernel size, strides, dilation and padding giving a non-empty output for NHWC `x`."""
    _, h, w, _ = x.shape
    kh = g.integer(1, min(max_kernel, h))
    kw = kh if g.chance(0.7) else g.integer(1, min(max_kernel, w))
    kw = min(kw, w)
    sh, sw = g.choice([(1, 1), (2, 2), (1, 2), (2, 1)], p=[0.5, 0.35, 0.075, 0.075])
    dh = dw = 1
    if dilate and g.chance(0.2):
        dh = 2 if (kh - 1) * 2 < h else 1
        dw = 2 if (kw - 1) * 2 < w else 1
    padding = g.choice(["SAME", "VALID"])
    oh, ow = _out_size(h, kh, sh, padding, dh), _out_size(w, kw, sw, padding, dw)
    return dict(kernel=(kh, kw), strides=(sh, sw), dilation=(dh, dw), padding=padding, out_hw=(oh, ow))


_ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
_ACTIVATION_RANGE = {"NONE": (-np.inf, np.inf), "RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def _activation(g: RandomGraph, allowed=_ACTIVATIONS) -> str:
    """A random fused activation among `allowed` (NONE most often)."""
    weights = {"NONE": 0.45, "RELU": 0.25, "RELU6": 0.2, "RELU_N1_TO_1": 0.1}
    return g.choice(list(allowed), p=[weights[a] for a in allowed])


def _activated(samples: np.ndarray, activation: str) -> np.ndarray:
    """The samples through a fused activation."""
    lo, hi = _ACTIVATION_RANGE[activation]
    return np.clip(samples, lo, hi)


# Accumulator std that makes a clipping fused activation clip some values but not most.
_CLIP_STD = {"RELU6": 4.0, "RELU_N1_TO_1": 0.8}


def _weighted(g: RandomGraph, x: Act, shape, channels: int, per_channel: bool, quantized_dimension: int,
              terms: int, activation: str, bias: bool) -> tuple[int, int, np.ndarray]:
    """Random symmetric int8 weights of `shape` and an int32 bias (or -1) for a weighted sum of
    `terms` inputs of `x` over `channels` outputs; returns them and the activated output samples."""
    scales = g.rng.uniform(0.002, 0.02, channels if per_channel else 1)
    w_std = math.sqrt(terms) * 73.3 * float(np.median(scales))  # of a sum of `terms` weights
    offset_std, noise_std = w_std * abs(float(np.mean(x.samples))), w_std * float(np.std(x.samples))
    acc_std = math.hypot(offset_std, noise_std) + 1e-12
    if activation in _CLIP_STD:  # scale the weights so the activation's bounds matter
        factor = _CLIP_STD[activation] / acc_std
        scales, offset_std, noise_std, acc_std = scales * factor, offset_std * factor, noise_std * factor, acc_std * factor
    scales = scales.astype(np.float32)
    weights = g.const(g.rng.integers(-127, 128, shape), I8, scale=scales, zero_point=0,
                      quantized_dimension=quantized_dimension)
    # The input's mean times each channel's weight sum: a per-channel offset, plus noise.
    offsets = g.rng.normal(0.0, offset_std, channels)
    bias_index = -1
    if bias:  # biased up a little under RELU-like activations, so they do not zero whole channels
        bias_scales = (x.scale * np.broadcast_to(scales, channels)).astype(np.float32)
        lift = 0.5 * acc_std if activation != "NONE" else 0.0
        bias_real = g.rng.normal(lift, 0.3 * acc_std, channels)
        bias_int = np.clip(np.round(bias_real / bias_scales), -(2**31), 2**31 - 1)
        bias_index = g.const(bias_int, np.int32, scale=bias_scales if per_channel else bias_scales[:1], zero_point=0)
        offsets = offsets + bias_real
    samples = g.rng.choice(offsets, NUM_SAMPLES) + g.rng.normal(0.0, noise_std, NUM_SAMPLES)
    return weights, bias_index, _activated(samples, activation)


def _bias_inputs(g: RandomGraph, bias: int, absent_ok: bool) -> list[int]:
    """A convolution's bias input(s): the tensor, or none, or (when `absent_ok`) -1 for "absent".

    (TFLM's depthwise convolution crashes on a -1 bias, so it only gets two inputs.)
    """
    if bias >= 0:
        return [bias]
    return [-1] if absent_ok and g.chance(0.5) else []


# ---------------------------------------------------------------- unary generators


def _gen_conv_2d(g: RandomGraph, x: Act) -> Act:
    n, h, w, cin = x.shape
    win = _window(g, x, dilate=True)
    oh, ow = win["out_hw"]
    cout = g.integer(1, max(1, min(8, MAX_ELEMENTS // (n * oh * ow))))
    (kh, kw), (dh, dw) = win["kernel"], win["dilation"]
    activation = _activation(g)
    weights, bias, samples = _weighted(g, x, (cout, kh, kw, cin), cout, True, 0, kh * kw * cin, activation,
                                       g.chance(0.9))
    y = g.output((n, oh, ow, cout), samples)
    g.op("CONV_2D", [x.index, weights, *_bias_inputs(g, bias, absent_ok=True)], y, padding=win["padding"], stride_h=win["strides"][0],
         stride_w=win["strides"][1], dilation_h_factor=dh, dilation_w_factor=dw, fused_activation_function=activation)
    return y


def _gen_depthwise_conv_2d(g: RandomGraph, x: Act, multiplier: int | None = None) -> Act:
    n, h, w, cin = x.shape
    win = _window(g, x, dilate=True)
    oh, ow = win["out_hw"]
    if multiplier is None:
        multiplier = 2 if g.chance(0.3) and 2 * x.size <= MAX_ELEMENTS else 1
    cout = cin * multiplier
    (kh, kw), (dh, dw) = win["kernel"], win["dilation"]
    activation = _activation(g)
    weights, bias, samples = _weighted(g, x, (1, kh, kw, cout), cout, True, 3, kh * kw, activation, g.chance(0.9))
    y = g.output((n, oh, ow, cout), samples)
    g.op("DEPTHWISE_CONV_2D", [x.index, weights, *_bias_inputs(g, bias, absent_ok=False)], y, padding=win["padding"], stride_h=win["strides"][0],
         stride_w=win["strides"][1], dilation_h_factor=dh, dilation_w_factor=dw, depth_multiplier=multiplier,
         fused_activation_function=activation)
    return y


def _gen_fully_connected(g: RandomGraph, x: Act) -> Act:
    depth = x.size // x.shape[0]
    keep_num_dims = False
    if x.rank > 2 and g.chance(0.35):
        depth = x.shape[-1]  # every leading position is a batch row
        keep_num_dims = g.chance(0.5)  # output [..., units] instead of [rows, units]
    rows = x.size // depth
    units = g.integer(1, max(1, min(16, MAX_ELEMENTS // rows)))
    activation = _activation(g, ["NONE", "RELU", "RELU6"])
    weights, bias, samples = _weighted(g, x, (units, depth), units, g.chance(0.3), 0, depth, activation, g.chance(0.8))
    y = g.output((*x.shape[:-1], units) if keep_num_dims else (rows, units), samples)
    g.op("FULLY_CONNECTED", [x.index, weights, bias], y, fused_activation_function=activation,
         keep_num_dims=keep_num_dims)
    return y


def _broadcast_partner_shape(g: RandomGraph, shape: tuple[int, ...]) -> tuple[int, ...]:
    """`shape` with some dimensions set to 1 (or a trailing suffix of it): broadcasts against `shape`."""
    partner = tuple(d if g.chance(0.6) else 1 for d in shape)
    if g.chance(0.2):
        partner = partner[g.integer(1, len(shape) - 1):] if len(shape) > 1 else partner
    return partner


_FUSED_BINARY = ("ADD", "SUB", "MUL")  # binary operators whose options carry a fused activation
_RAW_BINARY = {"MAXIMUM": np.maximum, "MINIMUM": np.minimum}  # TFLM compares raw int8 values
_REAL_BINARY = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply,
                "SQUARED_DIFFERENCE": lambda a, b: (a - b) ** 2}
BINARY = (*_FUSED_BINARY, *_RAW_BINARY, "SQUARED_DIFFERENCE")


def _binary(g: RandomGraph, op: str, a: Act, b: Act) -> Act | None:
    """Binary `op` of two int8 tensors (numpy broadcasting), ADD/SUB/MUL with a random fused activation.

    MAXIMUM/MINIMUM compare raw int8 values and write them with `a`'s quantization, as TFLM does."""
    try:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        return None
    if int(np.prod(shape)) > MAX_ELEMENTS or not shape:
        return None
    other = b.samples if a.index == b.index else g.mix(b.samples)
    lhs, rhs = (a, b) if g.chance(0.5) else (b, a)
    if op in _RAW_BINARY:
        raw = _RAW_BINARY[op](np.round(a.samples / a.scale) + a.zero_point, np.round(other / b.scale) + b.zero_point)
        y = g.output(shape, (raw - a.zero_point) * a.scale, a.quant)
        g.op(op, [lhs.index, rhs.index], y)
        return y
    samples = _REAL_BINARY[op](a.samples, other)
    if op not in _FUSED_BINARY:
        y = g.output(shape, samples)
        g.op(op, [lhs.index, rhs.index], y)
        return y
    activation = _activation(g, ["NONE", "RELU", "RELU6"])
    if activation == "RELU6" and np.mean(samples >= 6.0) > 0.2:
        activation = "RELU"  # RELU6 would saturate most of the output
    y = g.output(shape, _activated(samples, activation))
    g.op(op, [lhs.index, rhs.index], y, fused_activation_function=activation)
    return y


def _unary_binary(op: str) -> Callable[[RandomGraph, Act], Act]:
    """Binary `op` reading `x` and a second operand: `x` itself, or a new graph input or a constant
    (sometimes 0-d) of a shape broadcasting against `x`."""

    def build(g: RandomGraph, x: Act) -> Act:
        kind = g.choice(["self", "input", "const"], p=[0.15, 0.55, 0.3])
        if kind == "self" and op not in ("SUB", "SQUARED_DIFFERENCE"):  # those are 0 on x, x
            return _binary(g, op, x, x)
        shape = _broadcast_partner_shape(g, x.shape)
        if kind != "const":
            return _binary(g, op, x, g.input(shape))
        return _binary(g, op, x, g.const_act(() if g.chance(0.2) else shape))

    return build


def _gen_pool(op: str) -> Callable[[RandomGraph, Act], Act]:
    def build(g: RandomGraph, x: Act) -> Act:
        n, _, _, c = x.shape
        win = _window(g, x)
        (kh, kw), (oh, ow) = win["kernel"], win["out_hw"]
        activation = _activation(g, ["NONE", "RELU", "RELU6"])
        draws = g.rng.choice(x.samples, (kh * kw, NUM_SAMPLES))
        samples = draws.mean(0) if op == "AVERAGE_POOL_2D" else draws.max(0)
        y = g.output((n, oh, ow, c), _activated(samples, activation), x.quant)
        g.op(op, [x.index], y, padding=win["padding"], stride_h=win["strides"][0], stride_w=win["strides"][1],
             filter_height=kh, filter_width=kw, fused_activation_function=activation)
        return y

    return build


_REDUCERS = {"MEAN": np.mean, "SUM": np.sum, "REDUCE_MAX": np.max, "REDUCE_MIN": np.min}


def _gen_reduce(op: str) -> Callable[[RandomGraph, Act], Act]:
    """MEAN / SUM (requantized) or REDUCE_MAX / REDUCE_MIN (same quantization) over random axes."""

    def build(g: RandomGraph, x: Act) -> Act:
        axes = [a for a in range(x.rank) if g.chance(0.5 if a else 0.1)] or [g.integer(1, x.rank - 1)]
        count = int(np.prod([x.shape[a] for a in axes]))
        keep_dims = g.chance(0.5) or len(axes) == x.rank  # no rank-0 results
        shape = [1 if a in axes else d for a, d in enumerate(x.shape)]
        if not keep_dims:
            shape = [d for a, d in enumerate(x.shape) if a not in axes]
        written = [a - x.rank if g.chance(0.2) else a for a in axes]  # negative axes are valid too
        samples = _REDUCERS[op](g.rng.choice(x.samples, (count, NUM_SAMPLES)), axis=0)
        same = op.startswith("REDUCE_") or (op == "MEAN" and g.chance(0.3))
        y = g.output(shape, samples, x.quant if same else None)
        g.op(op, [x.index, g.const(written)], y, keep_dims=keep_dims)
        return y

    return build


def _gen_arg(op: str) -> Callable[[RandomGraph, Act], Act]:
    """ARG_MAX / ARG_MIN over one axis into an int32 model output (the graph goes on from `x`)."""

    def build(g: RandomGraph, x: Act) -> Act:
        axis = g.integer(0 if x.shape[0] > 1 else 1, x.rank - 1)
        shape = [d for a, d in enumerate(x.shape) if a != axis]
        written = axis - x.rank if g.chance(0.3) else axis
        g.terminal(op, [x.index, g.const([written])], shape, np.int32, output_type=schema.TensorType.INT32)
        return x

    return build


def _gen_dequantize(g: RandomGraph, x: Act) -> Act:
    """DEQUANTIZE into a float model output (the graph goes on from `x`)."""
    g.terminal("DEQUANTIZE", [x.index], x.shape, np.float32)
    return x


def _gen_concatenation(g: RandomGraph, x: Act) -> Act:
    """`x` concatenated with itself or with new graph inputs (same quantization) along one axis."""
    axis = g.integer(0 if x.shape[0] > 1 else 1, x.rank - 1) if x.rank > 1 else 0
    parts = [x]
    for _ in range(g.integer(1, 2)):
        if g.chance(0.3):
            parts.append(x)
            continue
        shape = list(x.shape)
        shape[axis] = g.integer(1, 3)
        parts.append(g.input(shape, x.quant))
    g.rng.shuffle(parts)
    return _concat(g, parts, axis)


def _concat(g: RandomGraph, parts: list[Act], axis: int) -> Act:
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    samples = np.concatenate([p.samples for p in parts])[g.rng.permutation(NUM_SAMPLES * len(parts))[:NUM_SAMPLES]]
    y = g.output(shape, samples, parts[0].quant)
    written = axis - len(shape) if g.chance(0.3) else axis
    g.op("CONCATENATION", [p.index for p in parts], y, axis=written, fused_activation_function="NONE")
    return y


def _random_pads(g: RandomGraph, x: Act, limit: Callable[[int], int]) -> list[list[int]]:
    """[before, after] pads of each axis of `x` (at most `limit(size)` each; spatial axes most often)."""
    pads = [[0, 0] for _ in x.shape]
    axes = [1, 2] if x.rank == 4 and g.chance(0.6) else [a for a in range(x.rank) if g.chance(0.5)]
    for a in axes:
        pads[a] = [g.integer(0, limit(x.shape[a])), g.integer(0, limit(x.shape[a]))]
    return pads


def _border_samples(x: Act, value: float | None) -> np.ndarray:
    """`x`'s samples, with some padding `value` (None: values of `x`, as a mirror pad copies)."""
    border = np.full(max(1, NUM_SAMPLES // 8), value) if value is not None else x.samples[: NUM_SAMPLES // 8]
    return np.concatenate([x.samples, border])[:NUM_SAMPLES]


def _gen_pad(op: str) -> Callable[[RandomGraph, Act], Act]:
    """PAD (with the zero point) or PADV2 (with a random int8 constant) of any axes."""

    def build(g: RandomGraph, x: Act) -> Act:
        pads = _random_pads(g, x, lambda d: 2)
        shape = [d + sum(p) for d, p in zip(x.shape, pads)]
        inputs = [x.index, g.const(pads)]
        value = 0.0
        if op == "PADV2":
            q = g.integer(-128, 127)
            inputs.append(g.const([q], I8, scale=x.scale, zero_point=x.zero_point))
            value = (q - x.zero_point) * x.scale
        y = g.output(shape, _border_samples(x, value), x.quant)
        g.op(op, inputs, y)
        return y

    return build


def _gen_mirror_pad(g: RandomGraph, x: Act) -> Act:
    """MIRROR_PAD, REFLECT (pads below the size) or SYMMETRIC (up to the size)."""
    mode = g.choice(["REFLECT", "SYMMETRIC"])
    reach = 1 if mode == "REFLECT" else 0
    pads = _random_pads(g, x, lambda d: min(2, d - reach))
    shape = [d + sum(p) for d, p in zip(x.shape, pads)]
    y = g.output(shape, _border_samples(x, None), x.quant)
    g.op("MIRROR_PAD", [x.index, g.const(pads)], y, mode=getattr(schema.MirrorPadMode, mode))
    return y


def _factor_shape(g: RandomGraph, size: int, rank: int) -> list[int]:
    """A random shape [1, ...] of `rank` dimensions holding `size` elements."""
    dims = [1] * rank
    primes, k, rest = [], 2, size
    while rest > 1:
        while rest % k == 0:
            primes.append(k)
            rest //= k
        k += 1
    for p in primes:
        dims[g.integer(1, rank - 1) if rank > 1 else 0] *= p
    return dims


def _gen_reshape(g: RandomGraph, x: Act) -> Act:
    shape = _factor_shape(g, x.size, g.choice([2, 3, 4], p=[0.4, 0.2, 0.4]))
    written = list(shape)
    if g.chance(0.2):
        written[g.integer(0, len(shape) - 1)] = -1
    y = g.output(shape, x.samples, x.quant)
    g.op("RESHAPE", [x.index, g.const(written)], y, new_shape=written)
    return y


def _gen_softmax(g: RandomGraph, x: Act) -> Act:
    beta = g.choice([1.0, 0.5, 2.0, 0.7], p=[0.55, 0.15, 0.15, 0.15])
    rows = beta * g.rng.choice(x.samples, (NUM_SAMPLES, x.shape[-1]))
    rows = np.exp(rows - rows.max(1, keepdims=True))
    y = g.output(x.shape, rows[:, 0] / rows.sum(1), (1.0 / 256, -128))
    g.op("SOFTMAX", [x.index], y, beta=beta)
    return y


def _gen_transpose(g: RandomGraph, x: Act) -> Act:
    perm = [int(p) for p in g.rng.permutation(x.rank)]
    y = g.output([x.shape[p] for p in perm], x.samples, x.quant)
    g.op("TRANSPOSE", [x.index, g.const(perm)], y)
    return y


def _gen_quantize(g: RandomGraph, x: Act) -> Act:
    y = g.output(x.shape, x.samples)
    g.op("QUANTIZE", [x.index], y)
    return y


def _gen_resize_nearest_neighbor(g: RandomGraph, x: Act) -> Act:
    n, h, w, c = x.shape
    limit = max(1, int(math.sqrt(MAX_ELEMENTS / (n * c))))
    oh, ow = g.integer(1, min(2 * h + 1, limit)), g.integer(1, min(2 * w + 1, limit))
    align_corners, half_pixel = g.choice([(False, False), (True, False), (False, True)])
    y = g.output((n, oh, ow, c), x.samples, x.quant)
    g.op("RESIZE_NEAREST_NEIGHBOR", [x.index, g.const([oh, ow])], y, align_corners=align_corners,
         half_pixel_centers=half_pixel)
    return y


def _gen_activation(op: str, function: Callable[[np.ndarray], np.ndarray], fixed_quant=None):
    """Elementwise activation `op`; output quantization `fixed_quant`, else calibrated (or kept)."""

    def build(g: RandomGraph, x: Act) -> Act:
        samples = function(x.samples)
        quant = fixed_quant or (x.quant if g.chance(0.3) else None)
        y = g.output(x.shape, samples, quant)
        g.op(op, [x.index], y)
        return y

    return build


def _hard_swish(v: np.ndarray) -> np.ndarray:
    return v * np.clip(v + 3.0, 0.0, 6.0) / 6.0


def _gen_hard_swish(g: RandomGraph, x: Act) -> Act:
    """HARD_SWISH needs an output scale of at least the input scale / 128."""
    scale, zero_point = g.quant_for(_hard_swish(x.samples))
    quant = (max(scale, float(np.float32(x.scale / 100))), zero_point)
    y = g.output(x.shape, _hard_swish(x.samples), quant)
    g.op("HARD_SWISH", [x.index], y)
    return y


def _gen_leaky_relu(g: RandomGraph, x: Act) -> Act:
    alpha = g.choice([0.2, 0.1, 0.01, 1.5, -0.3, 0.0])
    y = g.output(x.shape, np.where(x.samples >= 0, x.samples, alpha * x.samples))
    g.op("LEAKY_RELU", [x.index], y, alpha=alpha)
    return y


def _gen_prelu(g: RandomGraph, x: Act) -> Act:
    """PRELU with an alpha ([C], [1, 1, C], [H, W, C], [1] ...) that is a constant or a graph input."""
    shape = _broadcast_partner_shape(g, x.shape[1:]) if g.chance(0.85) else (1,)
    alpha = g.const_act(shape) if g.chance(0.7) else g.input(shape)
    y = g.output(x.shape, np.where(x.samples >= 0, x.samples, x.samples * g.mix(alpha.samples)))
    g.op("PRELU", [x.index, alpha.index], y)
    return y


def _elu(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v, np.expm1(np.minimum(v, 0.0)))


def _gen_rsqrt(g: RandomGraph, x: Act) -> Act:
    """RSQRT of a non-negative tensor (TFLM fails below the zero point): of a RELU of `x` unless
    `x`'s zero point is -128."""
    if x.zero_point != -128:
        relu = np.maximum(x.samples, 0.0)
        source, x = x, g.output(x.shape, relu, (g.quant_for(relu)[0], -128))
        g.op("RELU", [source.index], x)
    y = g.output(x.shape, 1.0 / np.sqrt(np.maximum(x.samples, x.scale)))
    g.op("RSQRT", [x.index], y)
    return y


def _gen_resize_bilinear(g: RandomGraph, x: Act) -> Act:
    """RESIZE_BILINEAR up or down (TFLM interpolates raw values: the output keeps x's quantization)."""
    n, h, w, c = x.shape
    limit = max(1, int(math.sqrt(MAX_ELEMENTS / (n * c))))
    oh, ow = g.integer(1, min(2 * h + 1, limit)), g.integer(1, min(2 * w + 1, limit))
    align_corners, half_pixel = g.choice([(False, False), (True, False), (False, True)])
    y = g.output((n, oh, ow, c), x.samples, x.quant)
    g.op("RESIZE_BILINEAR", [x.index, g.const([oh, ow])], y, align_corners=align_corners,
         half_pixel_centers=half_pixel)
    return y


def _gen_log_softmax(g: RandomGraph, x: Act) -> Act:
    rows = g.rng.choice(x.samples, (NUM_SAMPLES, x.shape[-1]))
    logs = rows - rows.max(1, keepdims=True)
    logs = logs - np.log(np.exp(logs).sum(1, keepdims=True))
    y = g.output(x.shape, logs[:, 0], (16.0 / 256, 127))
    g.op("LOG_SOFTMAX", [x.index], y)
    return y


# ---------------------------------------------------------------- data movement (bytes kept as they are)


def _moved(g: RandomGraph, op: str, inputs: list[int], x: Act, shape, **options) -> Act:
    """`op` moving the bytes of `x` into one output of `shape` (same quantization)."""
    y = g.output(shape, x.samples, x.quant)
    g.op(op, inputs, y, **options)
    return y


def _gen_squeeze(g: RandomGraph, x: Act) -> Act:
    ones = [a for a, d in enumerate(x.shape) if d == 1]
    dims = [a for a in ones if g.chance(0.6)] or ones[:1]
    if len(dims) == x.rank:
        dims = dims[1:]
    if g.chance(0.3) and len(ones) < x.rank:
        dims = []  # no squeeze_dims: every size-1 axis
    gone = set(dims or ones)
    options = dict(squeeze_dims=[a - x.rank if g.chance(0.3) else a for a in dims]) if dims else {}
    return _moved(g, "SQUEEZE", [x.index], x, [d for a, d in enumerate(x.shape) if a not in gone], **options)


def _gen_expand_dims(g: RandomGraph, x: Act) -> Act:
    axis = g.integer(-x.rank - 1, x.rank)
    shape = list(x.shape)
    shape.insert(axis % (x.rank + 1), 1)
    return _moved(g, "EXPAND_DIMS", [x.index, g.const([axis])], x, shape)


def _gen_pack(g: RandomGraph, x: Act) -> Act:
    """PACK of `x` with itself or new graph inputs of its shape and quantization."""
    parts = [x if g.chance(0.3) else g.input(x.shape, x.quant) for _ in range(g.integer(1, 2))] + [x]
    g.rng.shuffle(parts)
    axis = g.integer(0, x.rank)
    shape = list(x.shape)
    shape.insert(axis, len(parts))
    samples = np.concatenate([p.samples for p in parts])[g.rng.permutation(NUM_SAMPLES * len(parts))[:NUM_SAMPLES]]
    y = g.output(shape, samples, x.quant)
    written = axis - x.rank - 1 if g.chance(0.3) else axis
    g.op("PACK", [p.index for p in parts], y, values_count=len(parts), axis=written)
    return y


def _split_axis(g: RandomGraph, x: Act, parts: Callable[[int], bool]) -> int | None:
    """A random axis of `x` whose size `parts` accepts (None if none)."""
    axes = [a for a, d in enumerate(x.shape) if parts(d)]
    return g.choice(axes) if axes else None


def _several(g: RandomGraph, op: str, inputs: list[int], x: Act, shapes, **options) -> Act:
    """`op` writing one output per shape of `shapes` (x's quantization); returns one of them (the
    others become model outputs)."""
    ys = [g.output(shape, x.samples, x.quant) for shape in shapes]
    g.op(op, inputs, ys, **options)
    return g.choice(ys)


def _gen_unpack(g: RandomGraph, x: Act) -> Act:
    axis = _split_axis(g, x, lambda d: 2 <= d <= 4)
    count = x.shape[axis]
    shape = [d for a, d in enumerate(x.shape) if a != axis]
    written = axis - x.rank if g.chance(0.3) else axis
    return _several(g, "UNPACK", [x.index], x, [shape] * count, num=count, axis=written)


def _splittable(size: int) -> bool:
    return size % 2 == 0 or size % 3 == 0


def _gen_split(g: RandomGraph, x: Act) -> Act:
    axis = _split_axis(g, x, _splittable)
    size = x.shape[axis]
    count = g.choice([n for n in range(2, min(size, 4) + 1) if size % n == 0])
    shape = list(x.shape)
    shape[axis] = size // count
    written = axis - x.rank if g.chance(0.3) else axis
    return _several(g, "SPLIT", [g.const([written]), x.index], x, [shape] * count, num_splits=count)


def _gen_split_v(g: RandomGraph, x: Act) -> Act:
    axis = _split_axis(g, x, lambda d: d > 1)
    size = x.shape[axis]
    cuts = sorted(int(c) for c in g.rng.choice(np.arange(1, size), g.integer(1, min(2, size - 1)), replace=False))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, size])]
    written = list(sizes)
    if g.chance(0.3):
        written[g.integer(0, len(sizes) - 1)] = -1
    shapes = [[s if a == axis else d for a, d in enumerate(x.shape)] for s in sizes]
    return _several(g, "SPLIT_V", [x.index, g.const(written), g.const([axis])], x, shapes, num_splits=len(sizes))


def _gen_slice(g: RandomGraph, x: Act) -> Act:
    begin = [g.integer(0, d - 1) for d in x.shape]
    size = [g.integer(1, d - b) for d, b in zip(x.shape, begin)]
    written = [-1 if g.chance(0.2) else s for s in size]
    shape = [d - b if s == -1 else s for d, b, s in zip(x.shape, begin, written)]
    return _moved(g, "SLICE", [x.index, g.const(begin), g.const(written)], x, shape)


def _gen_strided_slice(g: RandomGraph, x: Act) -> Act:
    """STRIDED_SLICE with random (negative too) begins, ends, strides and masks; output shape as
    Python's slicing, which TFLM's clamping matches for indices in [-size, size]."""
    begin, end, strides, shape = [], [], [], []
    begin_mask = end_mask = shrink = 0
    for a, d in enumerate(x.shape):
        stride = g.choice([1, 1, 2, 3, -1, -2])
        if g.chance(0.15) and a < x.rank - 1:
            b = g.integer(-d, d - 1)
            begin, end, strides, shrink = begin + [b], end + [b + 1], strides + [1], shrink | 1 << a
            continue
        b, e = g.integer(-d, d), g.integer(-d - 1, d)
        if g.chance(0.2):
            begin_mask |= 1 << a
        if g.chance(0.2):
            end_mask |= 1 << a
        start = None if begin_mask >> a & 1 else b
        stop = None if end_mask >> a & 1 else e
        count = len(range(d)[slice(start, stop, stride)])
        if count == 0:  # reach the end instead: never empty
            begin_mask, end_mask = begin_mask | 1 << a, end_mask | 1 << a
            count = len(range(d)[slice(None, None, stride)])
        begin, end, strides, shape = begin + [b], end + [e], strides + [stride], shape + [count]
    return _moved(g, "STRIDED_SLICE", [x.index, g.const(begin), g.const(end), g.const(strides)], x, shape,
                  begin_mask=begin_mask, end_mask=end_mask, shrink_axis_mask=shrink)


def _gen_gather(g: RandomGraph, x: Act) -> Act:
    """GATHER of constant indices (rank 0-2) along an axis, sometimes with batch_dims 1."""
    axis = g.integer(0, x.rank - 1)
    batch_dims = 1 if axis >= 1 and g.chance(0.25) else 0
    lead = list(x.shape[:batch_dims])
    index_shape = lead + g.choice([[], [g.integer(1, 4)], [g.integer(1, 3), g.integer(1, 3)]], p=[0.2, 0.5, 0.3])
    shape = list(x.shape[:axis]) + index_shape[batch_dims:] + list(x.shape[axis + 1:])
    if not shape or np.prod(shape) > MAX_ELEMENTS:  # no rank-0 or oversized outputs: one index
        index_shape = lead + [1]
        shape = list(x.shape[:axis]) + [1] + list(x.shape[axis + 1:])
    indices = g.rng.integers(0, x.shape[axis], index_shape)
    written = axis - x.rank if g.chance(0.3) else axis
    return _moved(g, "GATHER", [x.index, g.const(indices)], x, shape, axis=written, batch_dims=batch_dims)


def _gen_space_to_depth(g: RandomGraph, x: Act) -> Act:
    n, h, w, c = x.shape
    block = g.choice([k for k in (2, 3) if h % k == 0 and w % k == 0])
    return _moved(g, "SPACE_TO_DEPTH", [x.index], x, (n, h // block, w // block, c * block * block), block_size=block)


def _gen_depth_to_space(g: RandomGraph, x: Act) -> Act:
    n, h, w, c = x.shape
    block = g.choice([k for k in (2, 3) if c % (k * k) == 0])
    return _moved(g, "DEPTH_TO_SPACE", [x.index], x, (n, h * block, w * block, c // (block * block)), block_size=block)


def _blocks(g: RandomGraph, sizes) -> list[int]:
    """A block per spatial axis, dividing its size (1, 2 or 3), not all 1."""
    while True:
        blocks = [g.choice([k for k in (1, 2, 3) if d % k == 0]) for d in sizes]
        if max(blocks) > 1:
            return blocks


def _gen_space_to_batch_nd(g: RandomGraph, x: Act) -> Act:
    """SPACE_TO_BATCH_ND of 4-D or 3-D `x`, unpadded (TFLM leaves padding bytes undefined)."""
    spatial = x.shape[1:-1]
    blocks = _blocks(g, spatial)
    shape = [x.shape[0] * int(np.prod(blocks)), *(d // k for d, k in zip(spatial, blocks)), x.shape[-1]]
    return _moved(g, "SPACE_TO_BATCH_ND", [x.index, g.const(blocks), g.const([[0, 0]] * len(blocks))], x, shape)


def _gen_batch_to_space_nd(g: RandomGraph, x: Act) -> Act:
    """BATCH_TO_SPACE_ND of 4-D or 3-D `x` whose batch the blocks divide, with random crops."""
    spatial = x.shape[1:-1]
    while True:
        blocks = [g.choice([1, 2, 3]) for _ in spatial]
        if max(blocks) > 1 and x.shape[0] % int(np.prod(blocks)) == 0:
            break
    crops = [[0, 0] if g.chance(0.5) else [g.integer(0, k - 1), g.integer(0, k - 1)] for k in blocks]
    cropped = [d * k - sum(c) for d, k, c in zip(spatial, blocks, crops)]
    shape = [x.shape[0] // int(np.prod(blocks)), *cropped, x.shape[-1]]
    return _moved(g, "BATCH_TO_SPACE_ND", [x.index, g.const(blocks), g.const(crops)], x, shape)


def _space_to_depth_fits(x: Act) -> bool:
    return _nhwc(x) and any(x.shape[1] % k == 0 == x.shape[2] % k for k in (2, 3))


def _depth_to_space_fits(x: Act) -> bool:
    return _nhwc(x) and any(x.shape[3] % (k * k) == 0 for k in (2, 3)) and _small(4)(x)


def _space_to_batch_fits(x: Act) -> bool:
    return x.rank in (3, 4) and any(_splittable(d) for d in x.shape[1:-1])


def _batch_divisible(x: Act) -> bool:
    return x.rank in (3, 4) and x.shape[0] in (2, 3, 4, 6, 8, 9)


# ---------------------------------------------------------------- matrix and sequence operators


def _gen_batch_matmul(g: RandomGraph, x: Act) -> Act:
    """BATCH_MATMUL of `x` [..., M, K] (adj_x: stored transposed) and an activation (x itself, a new
    graph input broadcasting over the batch) or a constant [K, N]."""
    adj_x = g.chance(0.3)
    m, k = (x.shape[-1], x.shape[-2]) if adj_x else (x.shape[-2], x.shape[-1])
    batch = x.shape[:-2]
    kind = g.choice(["self", "input", "const"], p=[0.2, 0.4, 0.4])
    adj_y = g.chance(0.4)
    if kind == "self":
        rhs, adj_y, n = x, not adj_x, m  # x^T x or x x^T
    else:
        n = g.integer(1, 8)
        rhs_batch = () if kind == "const" or g.chance(0.3) else _broadcast_partner_shape(g, batch) if batch else ()
        stored = (*rhs_batch, *((n, k) if adj_y else (k, n)))
        rhs = g.const_act(stored) if kind == "const" else g.input(stored)
        batch = tuple(np.broadcast_shapes(batch, rhs_batch))
    shape = (*batch, m, n)
    if np.prod(shape) > MAX_ELEMENTS:
        return _gen_transpose(g, x)
    products = g.rng.choice(x.samples, (k, NUM_SAMPLES)) * g.rng.choice(rhs.samples, (k, NUM_SAMPLES))
    y = g.output(shape, products.sum(0))
    g.op("BATCH_MATMUL", [x.index, rhs.index], y, adj_x=adj_x, adj_y=adj_y)
    return y


def _gen_transpose_conv(g: RandomGraph, x: Act) -> Act:
    """TRANSPOSE_CONV with the converter's output size (SAME: size x stride, kernel >= stride)."""
    n, h, w, cin = x.shape
    stride = g.choice([1, 2, 3], p=[0.3, 0.6, 0.1])
    kernel = g.integer(stride if g.chance(0.7) else 1, 4)
    padding = "SAME" if kernel >= stride and g.chance(0.6) else "VALID"
    oh, ow = [d * stride if padding == "SAME" else (d - 1) * stride + kernel for d in (h, w)]
    cout = g.integer(1, max(1, min(6, MAX_ELEMENTS // (n * oh * ow))))
    activation = _activation(g, ["NONE", "RELU", "RELU6"])
    terms = max(1, (kernel // stride) ** 2) * cin
    weights, bias, samples = _weighted(g, x, (cout, kernel, kernel, cin), cout, g.chance(0.7), 0, terms, activation,
                                       g.chance(0.7))
    y = g.output((n, oh, ow, cout), samples)
    g.op("TRANSPOSE_CONV", [g.const([n, oh, ow, cout]), weights, x.index, *([bias] if bias >= 0 else [])], y,
         padding=padding, stride_h=stride, stride_w=stride, fused_activation_function=activation)
    return y


def _transpose_conv_fits(x: Act) -> bool:
    return x.rank == 4 and x.size * 9 <= MAX_ELEMENTS


def _gen_lstm(g: RandomGraph, x: Act) -> Act:
    """An int8 UNIDIRECTIONAL_SEQUENCE_LSTM of `x` [B, T, I] (or time-major), tests/test_ops_sequence.py's builder."""
    time_major = g.chance(0.3)
    state = g.integer(2, 8)
    options = dict(time_major=time_major, hidden_zp=g.integer(-10, 10), cell_power=g.choice([-12, -11, -10]),
                   cell_clip=g.choice([10.0, 3.0, 0.0]), in_q=dict(scale=x.scale, zero_point=x.zero_point),
                   seed=g.integer(0, 10**6))
    y, shape = add_lstm(g.builder, x.index, x.shape, state, **options)
    g.record("UNIDIRECTIONAL_SEQUENCE_LSTM", [x.index])
    return g.adopt(y, shape, 0.7 * np.tanh(g.rng.normal(0.0, 1.0, NUM_SAMPLES)))


def _gen_svdf(g: RandomGraph, x: Act) -> Act:
    """An int8 SVDF of `x` [batch, inputs] (int16 or int8 state), tests/test_ops_sequence.py's builder."""
    batch, n_in = x.shape
    rank, units = g.integer(1, 3), g.integer(1, 4)
    state_type = g.choice([np.int16, np.int8])
    y = add_svdf(g.builder, x.index, batch, n_in, rank * units, rank, g.integer(1, 6),
                 in_q=dict(scale=x.scale, zero_point=x.zero_point), state_zp=0 if state_type == np.int16 else g.integer(-8, 8), out_zp=g.integer(-20, 20),
                 state_type=state_type, seed=g.integer(0, 10**6))
    g.record("SVDF", [x.index])
    scale, _ = g.builder.quantization(y)
    return g.adopt(y, (batch, units), g.rng.normal(0.0, 40 * scale, NUM_SAMPLES))


# ---------------------------------------------------------------- the tables


@dataclass(frozen=True)
class OpEntry:
    """How to add one operator reading one activation (see the module docstring)."""

    build: Callable[[RandomGraph, Act], Act]
    accepts: Callable[[Act], bool] = lambda x: True
    weight: float = 1.0


def _nhwc(x: Act) -> bool:
    return x.rank == 4


def _small(factor: int) -> Callable[[Act], bool]:
    return lambda x: x.size * factor <= MAX_ELEMENTS


OPS: dict[str, OpEntry] = {
    "CONV_2D": OpEntry(_gen_conv_2d, _nhwc, 3.0),
    "DEPTHWISE_CONV_2D": OpEntry(_gen_depthwise_conv_2d, _nhwc, 2.0),
    "FULLY_CONNECTED": OpEntry(_gen_fully_connected, lambda x: x.size // x.shape[0] <= 512, 1.0),
    **{op: OpEntry(_unary_binary(op), lambda x: True, 1.0 if op in ("ADD", "MUL") else 0.5) for op in BINARY},
    "AVERAGE_POOL_2D": OpEntry(_gen_pool("AVERAGE_POOL_2D"), _nhwc, 1.0),
    "MAX_POOL_2D": OpEntry(_gen_pool("MAX_POOL_2D"), _nhwc, 1.0),
    **{op: OpEntry(_gen_reduce(op), lambda x: x.rank >= 2, 1.0 if op == "MEAN" else 0.5) for op in _REDUCERS},
    "CONCATENATION": OpEntry(_gen_concatenation, _small(3), 1.0),
    "PAD": OpEntry(_gen_pad("PAD"), lambda x: _nhwc(x) and _small(3)(x), 0.7),
    "PADV2": OpEntry(_gen_pad("PADV2"), lambda x: _nhwc(x) and _small(3)(x), 0.5),
    "RESHAPE": OpEntry(_gen_reshape, lambda x: True, 1.0),
    "SOFTMAX": OpEntry(_gen_softmax, lambda x: x.rank >= 2 and x.shape[-1] > 1, 0.7),
    "TRANSPOSE": OpEntry(_gen_transpose, lambda x: x.rank >= 2, 1.0),
    "QUANTIZE": OpEntry(_gen_quantize, lambda x: True, 0.7),
    "RESIZE_NEAREST_NEIGHBOR": OpEntry(_gen_resize_nearest_neighbor, _nhwc, 0.8),
    "RELU": OpEntry(_gen_activation("RELU", lambda v: np.maximum(v, 0.0)), lambda x: True, 0.7),
    "RELU6": OpEntry(_gen_activation("RELU6", lambda v: np.clip(v, 0.0, 6.0)), lambda x: True, 0.7),
    "LOGISTIC": OpEntry(_gen_activation("LOGISTIC", lambda v: 1 / (1 + np.exp(-v)), (1.0 / 256, -128)), lambda x: True, 0.7),
    "HARD_SWISH": OpEntry(_gen_hard_swish, lambda x: True, 0.7),
    "TANH": OpEntry(_gen_activation("TANH", np.tanh, (1.0 / 128, 0)), lambda x: True, 0.5),
    "ELU": OpEntry(_gen_activation("ELU", _elu), lambda x: True, 0.5),
    "LEAKY_RELU": OpEntry(_gen_leaky_relu, lambda x: True, 0.5),
    "PRELU": OpEntry(_gen_prelu, lambda x: 2 <= x.rank <= 4, 0.5),
    "RSQRT": OpEntry(_gen_rsqrt, lambda x: True, 0.4),
    "RESIZE_BILINEAR": OpEntry(_gen_resize_bilinear, _nhwc, 0.6),
    "LOG_SOFTMAX": OpEntry(_gen_log_softmax, lambda x: x.rank >= 2 and x.shape[-1] > 1, 0.4),
    "ARG_MAX": OpEntry(_gen_arg("ARG_MAX"), lambda x: x.rank >= 2, 0.3),
    "ARG_MIN": OpEntry(_gen_arg("ARG_MIN"), lambda x: x.rank >= 2, 0.3),
    "DEQUANTIZE": OpEntry(_gen_dequantize, lambda x: True, 0.4),
    "MIRROR_PAD": OpEntry(_gen_mirror_pad, _small(3), 0.5),
    "SQUEEZE": OpEntry(_gen_squeeze, lambda x: x.rank >= 2 and 1 in x.shape, 0.6),
    "EXPAND_DIMS": OpEntry(_gen_expand_dims, lambda x: x.rank <= 4, 0.5),
    "PACK": OpEntry(_gen_pack, lambda x: x.rank <= 4 and _small(3)(x), 0.5),
    "UNPACK": OpEntry(_gen_unpack, lambda x: x.rank >= 2 and any(2 <= d <= 4 for d in x.shape), 0.5),
    "SPLIT": OpEntry(_gen_split, lambda x: any(_splittable(d) for d in x.shape), 0.5),
    "SPLIT_V": OpEntry(_gen_split_v, lambda x: max(x.shape) > 1, 0.5),
    "SLICE": OpEntry(_gen_slice, lambda x: True, 0.5),
    "STRIDED_SLICE": OpEntry(_gen_strided_slice, lambda x: True, 0.6),
    "GATHER": OpEntry(_gen_gather, lambda x: True, 0.5),
    "SPACE_TO_DEPTH": OpEntry(_gen_space_to_depth, _space_to_depth_fits, 1.2),
    "DEPTH_TO_SPACE": OpEntry(_gen_depth_to_space, _depth_to_space_fits, 0.6),
    "SPACE_TO_BATCH_ND": OpEntry(_gen_space_to_batch_nd, _space_to_batch_fits, 0.5),
    "BATCH_TO_SPACE_ND": OpEntry(_gen_batch_to_space_nd, lambda x: _batch_divisible(x) and _small(9)(x), 1.5),
    "BATCH_MATMUL": OpEntry(_gen_batch_matmul, lambda x: x.rank >= 2, 0.6),
    "TRANSPOSE_CONV": OpEntry(_gen_transpose_conv, _transpose_conv_fits, 0.8),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": OpEntry(_gen_lstm, lambda x: x.rank == 3 and x.shape[1] <= 12 and x.shape[2] <= 32, 1.5),
    "SVDF": OpEntry(_gen_svdf, lambda x: x.rank == 2 and x.shape[-1] <= 64, 1.0),
}


def _join_concatenation(g: RandomGraph, a: Act, b: Act) -> Act | None:
    """Concatenate along the one axis where the shapes differ (any axis if equal); b takes a's quantization."""
    if a.rank != b.rank or a.size + b.size > MAX_ELEMENTS:
        return None
    differ = [i for i, (p, q) in enumerate(zip(a.shape, b.shape)) if p != q]
    if len(differ) > 1:
        return None
    axis = differ[0] if differ else g.integer(0 if a.shape[0] > 1 else min(1, a.rank - 1), a.rank - 1)
    return _concat(g, [a, g.requantized(b, a.quant)], axis)


JOINS: dict[str, Callable[[RandomGraph, Act, Act], Act | None]] = {
    **{op: (lambda g, a, b, op=op: _binary(g, op, a, b)) for op in BINARY},
    "CONCATENATION": _join_concatenation,
}


# ---------------------------------------------------------------- graphs


def _apply_random_op(g: RandomGraph, x: Act) -> Act:
    names = [n for n, e in OPS.items() if e.accepts(x)]
    name = g.choice(names, p=[OPS[n].weight for n in names])
    return OPS[name].build(g, x)


def _input_shape(g: RandomGraph) -> tuple[int, ...]:
    """A vector batch, a sequence [B, T, I] or (most often) an NHWC image."""
    if g.chance(0.15):
        return (g.choice([1, 1, 2]), g.integer(2, 48))
    if g.chance(0.12):
        return (g.choice([1, 1, 2]), g.integer(2, 8), g.integer(2, 16))
    return (1 if g.chance(0.9) else 2, g.integer(2, 10), g.integer(2, 10), g.integer(1, 6))


def _join(g: RandomGraph, a: Act, b: Act) -> Act | None:
    """Joins two branches with the first join (in random order) that accepts their shapes."""
    for name in g.rng.permutation(list(JOINS)):
        y = JOINS[str(name)](g, a, b)
        if y is not None:
            return y
    return None


# Operators patch-based inference can run patch by patch (the head of `random_graph`).
PATCHABLE: dict[str, Callable[[RandomGraph, Act], Act]] = {
    "CONV_2D": _gen_conv_2d,
    "DEPTHWISE_CONV_2D": lambda g, x: _gen_depthwise_conv_2d(g, x, multiplier=1),
}


def random_graph(seed: int, max_ops: int = 6, head: int = 0) -> RandomGraph:
    """A random graph of about `max_ops` operators: chains, joined branches, several outputs.

    With `head`, the graph starts with a chain of `head` PATCHABLE operators on an image.
    """
    g = RandomGraph(seed)
    last = g.input((1, g.integer(10, 16), g.integer(10, 16), g.integer(1, 4)) if head else _input_shape(g))
    for _ in range(head):
        last = PATCHABLE[g.choice(list(PATCHABLE))](g, last)
    tail = len(g.acts) - 1  # the rest reads no tensor inside the head: it stays one chain
    g.sealed = {a.index for a in g.acts[1:tail]}
    target = g.integer(2, max_ops) + head
    while len(g.op_names) < target:
        source = last if g.chance(0.7) else g.choice(g.acts[tail:])
        if g.chance(0.3):
            left = _apply_random_op(g, source)
            right = _apply_random_op(g, source) if g.chance(0.7) else source
            last = _join(g, left, right) or left
        else:
            last = _apply_random_op(g, source)
    return g


def graph_inputs(g: RandomGraph) -> list[Act]:
    """The graph inputs the model keeps (those some operator reads), in model order."""
    return [a for a in g.inputs if a.index in g.readers]


def build_model(g: RandomGraph) -> bytes:
    """The graph's .tflite: outputs are all unconsumed activations, sometimes one consumed one too."""
    inputs = {a.index for a in g.inputs}
    outputs = [a.index for a in g.acts if a.index not in g.readers and a.index not in inputs]
    inner = [a.index for a in g.acts if a.index in g.readers and a.index not in inputs | g.sealed]
    if inner and g.chance(0.15):
        outputs.append(g.choice(inner))
    outputs += g.terminals
    return g.builder.build([a.index for a in graph_inputs(g)], outputs)


def random_model(seed: int, head: int = 0) -> tuple[bytes, list[str]]:
    """The .tflite of random graph `seed` (see `random_graph`) and the operators it contains."""
    g = random_graph(seed, head=head)
    return build_model(g), g.op_names


# ---------------------------------------------------------------- differential run


@dataclass
class CaseResult:
    """Outcome of one random graph: status is pass, degenerate (bit-exact, but an output is constant),
    mismatch, unsupported, error or plan (an unsafe memory plan)."""

    seed: int
    ops: list[str]
    status: str
    message: str = ""
    details: list[str] = field(default_factory=list)
    replayed: int = 0  # overlapping input/output pairs of the memory plan replayed safely

    @property
    def passed(self) -> bool:
        """Bit-exact, compiled cleanly and planned safely (a degenerate output is only uninformative)."""
        return self.status in ("pass", "degenerate")


def degenerate_outputs(runs: list[list[np.ndarray]]) -> list[int]:
    """Outputs (of `runs`, one list of outputs per input set) of 4 or more elements that are
    constant over all runs: they tell nothing."""
    constant = [len(np.unique(np.concatenate([run[i].reshape(-1) for run in runs]))) < 2 for i in range(len(runs[0]))]
    return [i for i, c in enumerate(constant) if c and runs[0][i].size >= 4]


def input_sets(shapes, seed: int, count: int) -> list[list[np.ndarray]]:
    """`count` sets of uniform random int8 graph inputs of `shapes`, seeded by the graph's seed."""
    rng = np.random.default_rng(seed + 10**6)
    return [[rng.integers(-128, 128, shape).astype(I8) for shape in shapes] for _ in range(count)]


def _mismatch(model: bytes, artifact, sets: list[list[np.ndarray]]) -> tuple[str | None, list]:
    """Runs the input sets through C and TFLM: (the first difference or None, TFLM's outputs)."""
    from tvm_tinyml.verify import _from_int8

    runs = []
    for k, xs in enumerate(sets):
        refs = run_tflm(model, xs)
        ours = artifact.run_host(xs)
        if len(ours) != len(refs):
            return f"{len(ours)} outputs, TFLM has {len(refs)}", runs
        for i, (o, r, spec) in enumerate(zip(ours, refs, artifact.metadata["outputs"])):
            if o.size != r.size:
                return f"output {i} has {o.size} elements, TFLM {list(r.shape)}", runs
            if o.dtype != r.dtype:  # the int8 output at a float model end (DEQUANTIZE), dequantized exactly
                o = _from_int8(o, str(r.dtype), spec)
            if not np.array_equal(o.reshape(r.shape), r):
                diff = np.abs(o.reshape(-1).astype(float) - r.reshape(-1).astype(float))
                return f"output {i} {list(r.shape)} differs on input set {k}: max |diff| {diff.max()} at {int(np.sum(diff > 0))}/{r.size}", runs
        runs.append(refs)
    return None, runs


def _plan_problems(artifact) -> tuple[int, list[str]]:
    """(overlaps replayed, problems): overlaps the independent replay finds unsafe, arena clobbers."""
    from replay import arena_clobbers, overlap_problems
    from tvm_tinyml.lower import lower

    graph = artifact.graph
    # Patch kernels read their origin from a constant: lowering again names constants the same.
    patched = any(op.attrs.get("full_input") or op.op == "patch_place_inplace" for op in graph.ops)
    constants = lower(artifact.modules["integer"]).constants if patched else {}
    replayed, problems = overlap_problems(graph, artifact.plan)
    return replayed, problems + arena_clobbers(graph, artifact.plan, constants)


def run_case(seed: int, workdir: Path, inputs: int = 2, patch_head: int = 0, **build_options) -> CaseResult:
    """Builds random graph `seed`, compiles it (for host, or `tvm_tinyml.build` keyword arguments
    `build_options`), compares it with TFLM bit-exactly on `inputs` random input sets through
    the host C compiler and replays its memory plan. With `patch_head`, the graph starts with
    that many patchable operators, run in 2x2 or 2x3 patches."""
    import tvm_tinyml
    from tvm_tinyml.errors import UnsupportedOperatorError

    model, ops = random_model(seed, head=patch_head)
    if patch_head:
        build_options["patch"] = (patch_head, (2, 2 + seed % 2))
    path = Path(workdir) / f"random_{seed}.tflite"
    path.write_bytes(model)
    try:
        artifact = tvm_tinyml.build(str(path), **{"target": "host", **build_options})
        sets = input_sets([spec["shape"] for spec in artifact.metadata["inputs"]], seed, inputs)
        mismatch, runs = _mismatch(model, artifact, sets)
        replayed, problems = _plan_problems(artifact)
    except UnsupportedOperatorError as e:
        return CaseResult(seed, ops, "unsupported", str(e).splitlines()[0])
    except Exception as e:  # noqa: BLE001 - any crash is a finding, reported with its seed
        return CaseResult(seed, ops, "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                          traceback.format_exc().splitlines()[-12:])
    if mismatch:
        return CaseResult(seed, ops, "mismatch", mismatch, replayed=replayed)
    if problems:
        return CaseResult(seed, ops, "plan", problems[0], problems, replayed)
    constant = degenerate_outputs(runs)
    if constant:
        return CaseResult(seed, ops, "degenerate", f"outputs {constant} are constant", replayed=replayed)
    return CaseResult(seed, ops, "pass", replayed=replayed)
