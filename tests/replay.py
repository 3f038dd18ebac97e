"""Brute-force replay of what each generated kernel reads and writes, step by step.

Written from the kernels' loop nests (schedules/), independently of tvm_tinyml/overlap.py:
a kernel is a sequence of steps; at each step it reads some input elements and then writes at
most one output element. `overlap_is_safe` places the output `d` bytes after the input and
checks that no input byte is read after the step that overwrote it.
"""

from __future__ import annotations

import itertools

import numpy as np


def _window_trace(op: str, attrs: dict, in_shape, out_shape, kernel):
    """Conv / depthwise / pooling over NHWC, pixel by pixel. Within a pixel a (tuned) kernel may
    read and write its channels in any order, so the worst case is replayed: a pixel's writes
    come before its reads (read steps are pixel + 1/2, write steps the pixel)."""
    _, h, w, c_in = in_shape
    _, oh, ow, c_out = out_shape
    kh, kw = kernel
    sh, sw = attrs["strides"]
    dh, dw = attrs.get("dilation", (1, 1))
    top, left = attrs["pads"][:2]
    steps, reads = [], []
    oy, ox, o = (a.ravel() for a in np.meshgrid(np.arange(oh), np.arange(ow), np.arange(c_out), indexing="ij"))
    pixel = (oy * ow + ox).astype(np.float64)
    channels = [np.full_like(o, ci) for ci in range(c_in)] if op == "conv2d" else [o // (c_out // c_in)]
    for ky, kx, ch in itertools.product(range(kh), range(kw), channels):
        iy, ix = oy * sh - top + ky * dh, ox * sw - left + kx * dw
        ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        steps.append(pixel[ok] + 0.5)
        reads.append(((iy * w + ix) * c_in + ch)[ok])
    return pixel, np.concatenate(steps), np.concatenate(reads)


def _inplace_depthwise_trace(in_shape, out_shape):
    """Channel by channel: read the whole input plane (one step), then write the output plane."""
    _, h, w, c = in_shape
    _, oh, ow, _ = out_shape
    plane = oh * ow
    pixels = np.arange(h * w)
    # Step layout per channel: step ch*(plane+1) reads the plane, the next `plane` steps write.
    read_steps = np.repeat(np.arange(c) * (plane + 1), h * w)
    read_index = (np.tile(pixels, c) * c) + np.repeat(np.arange(c), h * w)
    out_pixel, ch = np.meshgrid(np.arange(plane), np.arange(c), indexing="ij")
    write_step = ch * (plane + 1) + 1 + out_pixel  # output element (pixel, ch) is pixel * c + ch
    return write_step.ravel(), read_steps, read_index


def kernel_trace(op: str, attrs: dict, in_shapes, out_shape, input_index: int, weight_shape=None):
    """(write step per output element in memory order, read steps, read element indices) for one input."""
    in_shape = in_shapes[input_index]
    n_out = int(np.prod(out_shape))
    if op in ("conv2d", "depthwise_conv2d", "avg_pool2d", "max_pool2d"):
        kernel = attrs["pool"] if "pool" in attrs else weight_shape[:2]
        return _window_trace(op, attrs, in_shape, out_shape, kernel)
    if op == "depthwise_conv2d_inplace":
        return _inplace_depthwise_trace(in_shape, out_shape)
    if op in ("requantize", "clip", "quantize", "dequantize", "leaky_relu", "tanh", "lookup", "lookup_channel", "logistic",
              "hard_swish"):
        e = np.arange(n_out)
        return e, e, e
    if op in ("softmax", "log_softmax"):  # per row: all reads (max, sum), then read c / write c
        depth = out_shape[-1]
        rows = n_out // depth
        row, c = np.divmod(np.arange(n_out), depth)
        write_step = row * (depth + 1) + 1 + c
        first_pass = np.repeat(np.arange(rows) * (depth + 1), depth)
        return write_step, np.concatenate([first_pass, write_step]), np.concatenate([np.arange(n_out)] * 2)
    if op in ("add", "mul", "sub", "squared_difference", "maximum", "minimum", "prelu", "add_exact", "sub_exact", "mul_exact"):
        padded = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
        source = np.broadcast_to(np.arange(int(np.prod(in_shape))).reshape(padded), out_shape).ravel()
        e = np.arange(n_out)
        return e, e, source
    if op == "dense":
        rows, units = out_shape
        depth = in_shape[1]
        e = np.arange(n_out)
        return e, np.repeat(e, depth), (e // units)[:, None].repeat(depth, 1).ravel() * depth + np.tile(np.arange(depth), n_out)
    if op in ("mean", "sum", "reduce_max", "reduce_min"):  # one output element at a time
        axes = attrs["axes"]
        coords = np.indices(in_shape).reshape(len(in_shape), -1)
        kept = [np.zeros_like(c) if a in axes else c for a, c in enumerate(coords)]
        target = np.ravel_multi_index(kept, [1 if a in axes else d for a, d in enumerate(in_shape)])
        return np.arange(n_out), target, np.arange(coords.shape[1])
    if op == "transpose":
        source = np.arange(int(np.prod(in_shape))).reshape(in_shape).transpose(attrs["axes"]).ravel()
        e = np.arange(n_out)
        return e, e, source
    if op in ("pad_nd", "strided_slice"):  # element by element; a pad element reads nothing
        coords = np.indices(out_shape).reshape(len(out_shape), -1)
        if op == "pad_nd":
            src = coords - np.array(attrs["before"])[:, None]
        else:
            src = np.array(attrs["begin"])[:, None] + np.array(attrs["strides"])[:, None] * coords
        inside = np.all((src >= 0) & (src < np.array(in_shape)[:, None]), axis=0)
        e = np.arange(n_out)
        return e, e[inside], np.ravel_multi_index(tuple(src[:, inside]), in_shape)
    if op in ("pad", "concatenate"):  # output element by element, each a copy of one input element (or none)
        source = _copy_source(op, attrs, in_shapes, input_index)
        e = np.arange(n_out)
        return e, e[source >= 0], source[source >= 0]
    raise NotImplementedError(f"no replay for {op}")


def _copy_source(op: str, attrs: dict, in_shapes, input_index: int) -> np.ndarray:
    """Per output element of a pad (NHWC) or concatenate, the element of input `input_index` it copies, -1 if none."""
    elements = np.arange(int(np.prod(in_shapes[input_index]))).reshape(in_shapes[input_index])
    if op == "pad":
        top, left, bottom, right = attrs["pads"]
        return np.pad(elements, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-1).ravel()
    parts = [np.full(shape, -1) for shape in in_shapes]
    parts[input_index] = elements
    return np.concatenate(parts, axis=attrs["axis"]).ravel()


def overlap_problems(graph, plan) -> tuple[int, list[str]]:
    """Replays every input/output pair the plan lets share bytes at the actual offsets: how many
    were replayed, and the unsafe ones. A patch loop's own overlaps (`graph.loop_overlaps`,
    between patches) are left to `arena_clobbers`."""
    checked, problems = 0, []
    for overlap in plan.overlaps:
        delta = plan.offsets[overlap.output] - plan.offsets[overlap.input]
        size_in = graph.tensors[overlap.input].nbytes
        if overlap in graph.loop_overlaps or delta >= size_in or delta <= -graph.tensors[overlap.output].nbytes:
            continue  # between patches, or placed apart: nothing to replay here
        op = next(o for o in graph.ops if graph.storage(o.outputs[0]) == overlap.output
                  and overlap.input in map(graph.storage, o.inputs))
        index = next(i for i, t in enumerate(op.inputs) if graph.storage(t) == overlap.input)
        shapes = [graph.tensors[t].shape for t in op.inputs]
        weight = shapes[1] if len(shapes) > 1 else None
        trace = kernel_trace(op.op, op.attrs, shapes, graph.tensors[op.outputs[0]].shape, index, weight)
        if not overlap_is_safe(trace, delta, size_in):
            problems.append(f"{op.op} overlaps {overlap.input} -> {overlap.output} unsafely at delta {delta}")
        checked += 1
    return checked, problems


def overlap_is_safe(trace, delta: int, in_size: int) -> bool:
    """With the output `delta` bytes after the input (int8 both sides): is every read done
    before the write that lands on its byte?"""
    write_step, read_steps, read_index = trace
    overwritten = np.full(in_size, np.inf)
    target = np.arange(write_step.size) + delta
    inside = (target >= 0) & (target < in_size)
    overwritten[target[inside]] = write_step[inside]
    return bool(np.all(read_steps <= overwritten[read_index]))


def arena_clobbers(graph, plan, constants, limit: int = 5) -> list[str]:
    """Replay a whole plan byte by byte, kernel call after kernel call, in the plan's order.

    Every arena byte remembers which (storage root, byte) last wrote it; a kernel reading a
    byte of a tensor must find that tensor's own byte there. Written from the kernels'
    semantics, independently of the planner's rules: a full-input patch kernel
    (`attrs["full_input"]`) reads only its window (origin = its last, int32 [y, x] argument,
    clipped to the image), `patch_place_inplace` writes only its patch's block into the stage
    (its other stores put back the byte they load from the same buffer), every other kernel
    reads and writes whole tensors. Within one call reads come first: streaming overlaps
    inside a kernel are the business of `overlap_is_safe`. Returns the clashes found.
    """
    owner = np.full(plan.arena_bytes, -1, np.int64)
    roots = sorted({graph.storage(t) for t in graph.tensors if not graph.tensors[t].const})
    ids = {r: i for i, r in enumerate(roots)}
    shift = 1 << 32

    def span(t):
        root = graph.storage(t)
        base = plan.offsets[root]
        return root, base, graph.tensors[t].nbytes

    for t in graph.inputs:
        root, base, size = span(t)
        owner[base : base + size] = ids[root] * shift + np.arange(size)
    problems = []
    for index in plan.order:
        op = graph.ops[index]
        for i, t in enumerate(op.inputs):
            if graph.tensors[t].const or (op.op == "patch_place_inplace" and i == 0):
                continue
            root, base, size = span(t)
            item = size // int(np.prod(graph.tensors[t].shape))
            if op.attrs.get("full_input") and i == 0:
                _, h, w, c = graph.tensors[t].shape
                oy, ox = (int(v) for v in constants[op.inputs[-1]].reshape(-1))
                wh, ww = op.attrs["window_hw"]
                ys = np.arange(max(oy, 0), min(oy + wh, h))
                xs = np.arange(max(ox, 0), min(ox + ww, w))
                elements = ((ys[:, None, None] * w + xs[None, :, None]) * c + np.arange(c)[None, None, :]).ravel()
                k = (elements[:, None] * item + np.arange(item)[None, :]).ravel()
            else:
                k = np.arange(size)
            bad = owner[base + k] != ids[root] * shift + k
            if bad.any():
                problems.append(f"{op.kernel} (op {index}) reads {t} byte {int(k[bad][0])}: overwritten")
                if len(problems) >= limit:
                    return problems
        for t in op.outputs:
            root, base, size = span(t)
            if op.op == "patch_place_inplace":
                _, h, w, c = graph.tensors[t].shape
                _, ph, pw, _ = graph.tensors[op.inputs[1]].shape
                oy, ox = (int(v) for v in constants[op.inputs[2]].reshape(-1))
                k = ((np.arange(oy, oy + ph)[:, None, None] * w + np.arange(ox, ox + pw)[None, :, None]) * c + np.arange(c)[None, None, :]).ravel()
            else:
                k = np.arange(size)
            owner[base + k] = ids[root] * shift + k
    return problems
