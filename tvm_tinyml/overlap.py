"""How far a kernel's output may overlap its input: the streaming rule from its loop order.

The contract every kernel of `schedules/` keeps, whatever its schedule: it walks its output
in row-major order of *steps*, and a step's writes never land on bytes a later step reads.
A step is one output element for elementwise, dense and reduction kernels, and one output
pixel (all its channels, in any order, so tuned schedules may tile or vectorize channels) for
convolution and pooling kernels over NHWC. If L[j] is the output element at which input byte
j stops being needed (for a pixel step: the first element of the pixel after the last one
that reads j), placing the output `d` bytes after the input is safe when
d <= j - L[j] * output_itemsize for every byte j read (vMCU-style segment overlap).
`max_overlap_delta` returns that largest safe d, or None when the kernel offers no overlap
(layouts we do not model).
"""

from __future__ import annotations

import numpy as np

_ELEMENTWISE = {"requantize", "clip", "quantize", "dequantize", "softmax"}
# reduce family: LOG_SOFTMAX walks its rows as softmax does; SUM / REDUCE_MAX / REDUCE_MIN
# reduce into one output element at a time, as mean does (int8 outputs only)
_ELEMENTWISE |= {"log_softmax"}
_REDUCTIONS = ("mean", "sum", "reduce_max", "reduce_min")
_ELEMENTWISE |= {"leaky_relu", "tanh", "lookup", "logistic", "hard_swish"}  # activations (act): read x[i], write y[i]
_ELEMENTWISE |= {"lookup_channel"}  # ONNX exact tables (relax_passes/exact_lookup.py)
_WINDOWED = {"conv2d", "depthwise_conv2d", "avg_pool2d", "max_pool2d"}
# Broadcasting binary kernels: one output element per step reads one element of each operand
# (either may be a constant), schedules/qnn_compute._broadcast_binary.
_BROADCAST_BINARY = {"add", "mul", "sub", "squared_difference", "maximum", "minimum", "prelu"}
_BROADCAST_BINARY |= {"add_exact", "sub_exact", "mul_exact"}  # ONNX float semantics; inputs 2-4 are their tables


def max_overlap_delta(
    op: str,
    attrs: dict,
    input_index: int,
    input_shapes: list[tuple[int, ...]],
    input_itemsize: int,
    output_shape: tuple[int, ...],
    output_itemsize: int,
) -> int | None:
    """Largest safe `offset(output) - offset(input)` for input `input_index` of this kernel."""
    last = last_reader(op, attrs, input_index, input_shapes, output_shape)
    if last is None:
        return None
    byte_last = np.repeat(last, input_itemsize)
    read = np.nonzero(byte_last >= 0)[0]
    if read.size == 0:
        return None
    return int(np.min(read - byte_last[read] * output_itemsize))


def last_reader(op: str, attrs: dict, input_index: int, input_shapes: list[tuple[int, ...]], output_shape: tuple[int, ...]) -> np.ndarray | None:
    """For each element of input `input_index`, the last output element (row-major) that reads it; -1 if none."""
    in_shape = input_shapes[input_index]
    if input_index > 0 and op not in _BROADCAST_BINARY | {"concatenate"} or input_index > 1 and op in _BROADCAST_BINARY:
        return None  # weights, bias, tables and requantization parameters are constants
    if op in _ELEMENTWISE:
        return np.arange(int(np.prod(in_shape)))
    if op in _BROADCAST_BINARY:
        return _gather_last(_broadcast_source(in_shape, output_shape), int(np.prod(in_shape)))
    if op == "dense":
        rows, units = output_shape
        return np.repeat(np.arange(rows) * units + units - 1, in_shape[1])
    if op in _REDUCTIONS:
        return _gather_last(_reduced_target(in_shape, attrs["axes"]).ravel(), None, inverse=True)
    if op == "transpose":
        source = np.arange(int(np.prod(in_shape))).reshape(in_shape).transpose(attrs["axes"]).ravel()
        return _gather_last(source, int(np.prod(in_shape)))
    if op == "pad" and attrs.get("layout", "NHWC") == "NHWC":
        top, left, bottom, right = attrs["pads"]
        source = np.pad(np.arange(int(np.prod(in_shape))).reshape(in_shape), ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-1)
        return _gather_last(source.ravel(), int(np.prod(in_shape)))
    if op == "concatenate":
        parts = [np.full(shape, -1) for shape in input_shapes]
        parts[input_index] = np.arange(int(np.prod(in_shape))).reshape(in_shape)
        return _gather_last(np.concatenate(parts, axis=attrs["axis"]).ravel(), int(np.prod(in_shape)))
    # -- data movement (schedules/qnn_movement.py): one output element per step, row-major
    if op == "pad_nd":
        after = [o - i - b for o, i, b in zip(output_shape, in_shape, attrs["before"])]
        source = np.pad(np.arange(int(np.prod(in_shape))).reshape(in_shape), list(zip(attrs["before"], after)), constant_values=-1)
        return _gather_last(source.ravel(), int(np.prod(in_shape)))
    if op == "strided_slice":
        picks = [b + s * np.arange(n) for b, s, n in zip(attrs["begin"], attrs["strides"], output_shape)]
        source = np.arange(int(np.prod(in_shape))).reshape(in_shape)[np.ix_(*picks)]
        return _gather_last(source.ravel(), int(np.prod(in_shape)))
    if op in _WINDOWED and attrs.get("layout", "NHWC") == "NHWC":
        kernel = attrs["pool"] if "pool" in attrs else input_shapes[1][:2]
        return _windowed_last(attrs, in_shape, output_shape, kernel)
    return None


def _gather_last(source: np.ndarray, size: int | None, inverse: bool = False) -> np.ndarray:
    """`source[e]` is the input element output e reads (-1: none); returns the last e per input element.

    With `inverse`, `source[i]` is instead the output element that reads input element i.
    """
    if inverse:
        return source.astype(np.int64)
    last = np.full(size, -1, np.int64)
    valid = source >= 0
    np.maximum.at(last, source[valid], np.nonzero(valid)[0])
    return last


def _broadcast_source(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    padded = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    return np.broadcast_to(np.arange(int(np.prod(in_shape))).reshape(padded), out_shape).ravel()


def _reduced_target(in_shape: tuple[int, ...], axes: list[int]) -> np.ndarray:
    """Output element (reduced axes kept as size 1) each input element contributes to."""
    out_shape = [1 if a in axes else d for a, d in enumerate(in_shape)]
    grids = np.indices(in_shape)
    coords = [np.zeros_like(g) if a in axes else g for a, g in enumerate(grids)]
    return np.ravel_multi_index(coords, out_shape)


def _windowed_last(attrs: dict, in_shape, out_shape, kernel) -> np.ndarray:
    """Convolution and pooling over NHWC: windows of output pixels, channels innermost."""
    n, h, w, c_in = in_shape
    _, oh, ow, c_out = out_shape
    kh, kw = kernel
    dh, dw = attrs.get("dilation", (1, 1))
    sh, sw = attrs["strides"]
    top, left = attrs["pads"][0], attrs["pads"][1]
    # The last output pixel whose window covers each input pixel.
    last_pixel = np.full((n, h, w), -1, np.int64)
    oy, ox = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    for b in range(n):
        pixel = (b * oh + oy) * ow + ox
        for ky in range(kh):
            for kx in range(kw):
                iy, ix = oy * sh - top + ky * dh, ox * sw - left + kx * dw
                ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
                np.maximum.at(last_pixel[b], (iy[ok], ix[ok]), pixel[ok])
    # A pixel's channels may be computed in any order: its input is needed until the next pixel.
    last = np.broadcast_to((last_pixel[..., None] + 1) * c_out, (n, h, w, c_in))
    return np.where(last_pixel[..., None] >= 0, last, -1).ravel()
