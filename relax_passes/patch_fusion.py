"""PatchFusion: run a chain of convolutions patch by patch (MCUNetV2-style patch-based inference).

The first blocks of a CNN hold its largest activations. Given a segment of kernel calls
[start, split) of the integer `main` (a chain of conv2d / depthwise_conv2d, NHWC, batch 1)
and an n x m grid over the segment's output (the "stage" tensor), the pass replaces the chain
by, for each patch p in row-major order:

    w_s   = patch_conv(x, W_s, ..., origin_s[p])        # reads its window of x (with halo)
    w_s+1 = patch_conv(w_s, W_s+1, ..., origin_s+1[p])  # window -> window
    ...
    acc   = patch_place_inplace(acc, w_split-1, out_origin[p])

with `acc` starting as `R.zeros` (never read: the patches cover the stage tensor). Windows are
traced back from the patch through each layer's stride, kernel and dilation, so every patch
recomputes its halo; window sizes are the same for every patch (a patch near the border
reaches outside the image, where the kernels read the zero point exactly as the unpadded
layer's padding does), so one kernel per layer serves every patch and the call sequence
repeats with only the origins and buffers changing. Results are bit-exact: each stage element
is the same integer computation as without patches. When the stage size is not a multiple of
the grid, the last patch of a row/column overlaps its neighbour (same values written twice).

Before (start=0, split=2, grid 2x2):
    a = R.call_tir(conv2d, (x, w0, b0, m0, s0), out_ty=R.Tensor((1, 8, 8, 4), "int8"))
    y = R.call_tir(depthwise_conv2d, (a, w1, b1, m1, s1), out_ty=R.Tensor((1, 8, 8, 4), "int8"))
After:
    acc0 = R.zeros((1, 8, 8, 4), "int8")
    p0 = R.call_tir(patch_conv2d, (x, w0, b0, m0, s0, [-1, -1]), out_ty=R.Tensor((1, 6, 6, 4), "int8"))
    q0 = R.call_tir(patch_depthwise_conv2d, (p0, w1, b1, m1, s1, [-1, -1]), out_ty=R.Tensor((1, 4, 4, 4), "int8"))
    acc1 = R.call_tir(patch_place_inplace, (acc0, q0, [0, 0]), out_ty=R.Tensor((1, 8, 8, 4), "int8"))
    ... three more patches ...
    y = acc4
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te
from tvm.ir.expr import Call

from schedules import patch as pk

PATCHABLE = ("conv2d", "depthwise_conv2d", "depthwise_conv2d_inplace")


@dataclass(frozen=True)
class Layer:
    """Geometry of one layer of the patched segment (NHWC)."""

    op: str
    in_shape: tuple[int, int, int, int]
    out_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]

    @property
    def depthwise(self) -> bool:
        return self.op.startswith("depthwise")

    def macs_per_pixel(self, weight_shape: tuple[int, ...]) -> int:
        return int(np.prod(weight_shape[:2])) * (1 if self.depthwise else int(weight_shape[2]))


@dataclass(frozen=True)
class Window:
    """Where a patch's window of a layer's input or output starts (y, x) and its size (h, w)."""

    origin: tuple[int, int]
    size: tuple[int, int]


def patch_origins(stage_hw: tuple[int, int], grid: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corner of every patch of the stage tensor, row-major; patch size is ceil(H/n) x ceil(W/m)."""
    (h, w), (n, m) = stage_hw, grid
    ph, pw = math.ceil(h / n), math.ceil(w / m)
    return [(min(r * ph, h - ph), min(c * pw, w - pw)) for r in range(n) for c in range(m)]


def patch_size(stage_hw: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    return math.ceil(stage_hw[0] / grid[0]), math.ceil(stage_hw[1] / grid[1])


def input_window(layer: Layer, out: Window) -> Window:
    """The input window a layer needs for an output window (halo included; may pass the border)."""
    origin = tuple(o * s - p for o, s, p in zip(out.origin, layer.strides, layer.pads[:2]))
    size = tuple((n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip(out.size, layer.strides, layer.kernel, layer.dilation))
    return Window(origin, size)


def patch_windows(layers: list[Layer], grid: tuple[int, int]) -> list[list[Window]]:
    """For each patch: the input window of every layer, then the stage window (len(layers) + 1)."""
    stage_hw = layers[-1].out_shape[1:3]
    size = patch_size(stage_hw, grid)
    result = []
    for origin in patch_origins(stage_hw, grid):
        windows = [Window(origin, size)]
        for layer in reversed(layers):
            windows.insert(0, input_window(layer, windows[0]))
        result.append(windows)
    return result


def _shape(ty) -> tuple[int, ...]:
    return tuple(int(d) for d in ty.shape)


def _kernel_calls(func: relax.Function) -> list[relax.VarBinding]:
    return [
        b for block in func.body.blocks for b in block.bindings
        if isinstance(b.value, Call) and b.value.op.name == "relax.call_tir"
    ]


def segment_layers(mod: tvm.IRModule, start: int, split: int) -> list[Layer]:
    """The layers of kernel calls [start, split) of `main`, checked to be a patchable chain."""
    func = mod["main"]
    calls = _kernel_calls(func)
    if not 0 <= start < split <= len(calls):
        raise ValueError(f"patch segment [{start}, {split}) outside the model's {len(calls)} kernel calls")
    users = _users(func)
    layers = []
    previous = None
    for j in range(start, split):
        binding = calls[j]
        prim = mod[binding.value.args[0]]
        op = str(prim.attrs.get("tinyml.op", ""))
        attrs = json.loads(str(prim.attrs.get("tinyml.attrs", "{}")))
        if op not in PATCHABLE or attrs.get("layout", "NHWC") != "NHWC":
            raise ValueError(f"kernel call {j} ({op or binding.value.args[0].name_hint}) cannot be patched")
        data, weight = binding.value.args[1].fields[:2]
        in_shape, out_shape = _shape(data.ty), _result_shape(binding)
        if in_shape[0] != 1 or len(in_shape) != 4:
            raise ValueError(f"kernel call {j}: only batch-1 NHWC activations can be patched")
        if op.startswith("depthwise") and out_shape[3] != in_shape[3]:
            raise ValueError(f"kernel call {j}: depthwise with a channel multiplier cannot be patched")
        if previous is not None:
            if not data.same_as(previous) or len(users.get(previous, [])) != 1:
                raise ValueError(f"kernel calls [{start}, {split}) are not a chain")
        previous = _result_var(func, binding)
        w = _shape(weight.ty)
        layers.append(Layer(op, in_shape, out_shape, (w[0], w[1]), tuple(attrs["strides"]), tuple(attrs["dilation"]), tuple(attrs["pads"])))
    return layers


def _users(func: relax.Function) -> dict:
    users: dict = {}
    for block in func.body.blocks:
        for b in block.bindings:
            for v in relax.analysis.free_vars(b.value):
                users.setdefault(v, []).append(b.var)
    for v in relax.analysis.free_vars(func.body.body):
        users.setdefault(v, []).append(None)
    return users


def _result_shape(binding) -> tuple[int, ...]:
    ty = binding.var.ty
    return _shape(ty.fields[0] if isinstance(ty, relax.TupleType) else ty)


def _result_var(func: relax.Function, binding):
    """The tensor a kernel call produces (for an (output, scratch) pair: the TupleGetItem of 0)."""
    if not isinstance(binding.var.ty, relax.TupleType):
        return binding.var
    for block in func.body.blocks:
        for b in block.bindings:
            if isinstance(b.value, relax.TupleGetItem) and b.value.tuple_value.same_as(binding.var) and b.value.index == 0:
                return b.var
    raise ValueError("in-place depthwise result is never used")


def _prim_func(compute, args: list[tuple[tuple[int, ...], str]], op: str, attrs: dict, **kwargs):
    placeholders = [te.placeholder(shape, dtype, name=f"arg{i}") for i, (shape, dtype) in enumerate(args)]
    out = compute(*placeholders, **kwargs)
    func = te.create_prim_func([*placeholders, out])
    return func.with_attrs({"tinyml.op": op, "tinyml.attrs": json.dumps(attrs)})


@relax.expr_functor.mutator
class _Patcher(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, start: int, split: int, grid: tuple[int, int]) -> None:
        super().__init__(mod)
        self.mod = mod
        func = mod["main"]
        self.calls = _kernel_calls(func)[start:split]
        self.layers = segment_layers(mod, start, split)
        self.grid = grid
        self.skip = set()
        for binding in self.calls:
            self.skip.add(binding.var)
            self.skip.add(_result_var(func, binding))
        self.stage = _result_var(func, self.calls[-1])

    def visit_var_binding_(self, binding) -> None:
        if binding.var in self.skip:
            if binding.var.same_as(self.stage):
                self.set_var_remap(binding.var, self._emit_patches())
            return
        super().visit_var_binding_(binding)

    def _emit_patches(self):
        bb = self.builder_
        windows = patch_windows(self.layers, self.grid)
        source = self.visit_expr(self.calls[0].value.args[1].fields[0])
        gvars, consts = [], []
        for j, (layer, binding) in enumerate(zip(self.layers, self.calls)):
            attrs = json.loads(str(self.mod[binding.value.args[0]].attrs["tinyml.attrs"]))
            args = list(binding.value.args[1].fields[1:5])
            consts.append(args)
            win_in = windows[0][j]
            full = j == 0
            attrs.update(
                pads=[0, 0, 0, 0], window_hw=list(win_in.size), image_hw=list(layer.in_shape[1:3]),
                full_input=full, patch=True, layout="NHWC",
            )
            compute = pk.patch_depthwise_conv2d if layer.depthwise else pk.patch_conv2d
            # Kind "patch_conv2d" / "patch_depthwise_conv2d": lowering plans them as conv2d /
            # depthwise_conv2d (same loop order, pads 0); schedule templates leave them alone.
            op = "patch_depthwise_conv2d" if layer.depthwise else "patch_conv2d"
            data_shape = layer.in_shape if full else (1, *win_in.size, layer.in_shape[3])
            arg_types = [(data_shape, "int8")] + [(_shape(a.ty), str(a.ty.dtype)) for a in args] + [((2,), "int32")]
            kwargs = {k: attrs[k] for k in ("strides", "dilation", "in_zp", "out_zp", "act_min", "act_max", "window_hw", "image_hw", "full_input")}
            func = _prim_func(compute, arg_types, op, attrs, **kwargs)
            gvars.append(bb.add_func(func, op))
        stage_shape = self.layers[-1].out_shape
        patch_shape = (1, *windows[0][-1].size, stage_shape[3])
        place = _prim_func(pk.patch_place, [(stage_shape, "int8"), (patch_shape, "int8"), ((2,), "int32")],
                           "patch_place_inplace", {"patch": True})
        place_gvar = bb.add_func(place, "patch_place_inplace")
        acc = bb.emit(relax.op.zeros(stage_shape, "int8"))
        for patch in windows:
            x = source
            for j, layer in enumerate(self.layers):
                origin = relax.const(np.array(patch[j].origin, np.int32))
                out_ty = relax.TensorType((1, *patch[j + 1].size, layer.out_shape[3]), "int8")
                x = bb.emit(relax.op.call_tir(gvars[j], relax.Tuple([x, *consts[j], origin]), out_ty))
            origin = relax.const(np.array(patch[-1].origin, np.int32))
            acc = bb.emit(relax.op.call_tir(place_gvar, relax.Tuple([acc, x, origin]), relax.TensorType(stage_shape, "int8")))
        return acc


@tvm.transform.module_pass(opt_level=0, name="PatchFusion")
class PatchFusion:
    """Run kernel calls [start, split) of `main` patch by patch over an n x m grid (see module doc)."""

    def __init__(self, split: int, grid: tuple[int, int] | int, start: int = 0) -> None:
        self.split = split
        self.grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
        self.start = start

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        patcher = _Patcher(mod, self.start, self.split, self.grid)
        for gvar, func in mod.functions.items():
            if isinstance(func, relax.Function):
                patcher.builder_.update_func(gvar, patcher.visit_expr(func))
        result = patcher.builder_.get()
        return relax.transform.DeadCodeElimination(["main"])(result)
