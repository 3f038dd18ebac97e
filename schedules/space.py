"""Knob spaces of the tunable kernels, workload keys, and scheduling a kernel with a config.

A *workload* is what decides a kernel's speed: its kind, buffer shapes, strides, pads and
dilation (zero points and activation ranges do not), so identical layers of a model, or of
several models, share one tuning task. A *config* is a dict of knob values; `space(kind, ...)`
lists every config of a workload and `default_config` the one used untuned.

`schedule_kernel(func, config)` returns the scheduled PrimFunc and, for the parameters whose
layout the schedule changes (weights), a numpy transform the code generator applies to the
constant it passes there. Kernels without a template (pooling, elementwise, NCHW layouts...)
keep `schedules.default.default_schedule`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tvm import tirx

from schedules import conv2d as conv_t
from schedules import depthwise as dw_t
from schedules.default import default_schedule

TUNABLE = ("conv2d", "dense", "depthwise_conv2d", "depthwise_conv2d_inplace")

_KNOBS = {
    "conv2d": {"tile_m": [1, 2], "tile_n": [1, 2, 4], "simd": [0, 1, 2, 3], "unroll": [1, 2]},
    "dense": {"tile_m": [1, 2], "tile_n": [1, 2, 4], "simd": [0, 1, 2, 3], "unroll": [1, 2]},
    "depthwise_conv2d": {"simd": [0, 1]},
    "depthwise_conv2d_inplace": {"simd": [0, 1]},
}
_DEFAULTS = {
    "conv2d": {"tile_m": 2, "tile_n": 2, "simd": 3, "unroll": 2},
    "dense": {"tile_m": 1, "tile_n": 2, "simd": 3, "unroll": 2},
    "depthwise_conv2d": {"simd": 1},
    "depthwise_conv2d_inplace": {"simd": 1},
}


@dataclass
class Scheduled:
    """A scheduled kernel and the layout transforms of its constant parameters (by index)."""

    func: tirx.PrimFunc
    transforms: dict[int, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)
    templated: bool = False


def kernel_info(func: tirx.PrimFunc) -> tuple[str, dict, list[tuple[int, ...]]]:
    """(op kind, kernel attrs, parameter buffer shapes) of a kernel from schedules.qnn_compute."""
    op = str(func.attrs.get("tinyml.op", "")) if func.attrs is not None else ""
    attrs = json.loads(str(func.attrs.get("tinyml.attrs", "{}"))) if func.attrs is not None else {}
    shapes = [tuple(int(d) for d in p.shape) for p in func.params]
    return op, attrs, shapes


def supported(op: str, attrs: dict, shapes: list) -> bool:
    """Whether the templates cover this kernel (else it keeps the default schedule)."""
    if op not in TUNABLE or attrs.get("patch"):
        return False
    if op == "dense":
        return len(shapes) == 6
    if attrs.get("layout", "NHWC") != "NHWC":
        return False
    if op == "depthwise_conv2d_inplace":
        return len(shapes) == 7
    if tuple(attrs.get("dilation", (1, 1))) != (1, 1):
        return False
    if op == "depthwise_conv2d":
        return shapes[1][2] == shapes[0][3]
    return len(shapes) == 6


def workload_key(func: tirx.PrimFunc) -> str | None:
    """A string naming the kernel's workload, or None when it is not tunable."""
    op, attrs, shapes = kernel_info(func)
    if not supported(op, attrs, shapes):
        return None
    geometry = {k: attrs[k] for k in ("strides", "pads", "dilation") if k in attrs}
    return json.dumps({"op": op, "shapes": shapes, **geometry}, sort_keys=True, separators=(",", ":"))


def knobs(op: str) -> dict[str, list]:
    return _KNOBS[op]


def canonical(op: str, config: dict) -> dict:
    """`config` with the knobs its SIMD path ignores set to the default's values, so that configs
    generating the same kernel are one config: the GEMM paths (simd 2, 3) compute every output
    channel of a block two at a time (no `tile_n`), the scalar path (simd 0) has no unrolling."""
    out = dict(config)
    if op in ("conv2d", "dense"):
        if out.get("simd") in conv_t.GEMM_SIMD:
            out["tile_n"] = _DEFAULTS[op]["tile_n"]
        if out.get("simd") == 0:
            out["unroll"] = _DEFAULTS[op]["unroll"]
    return out


def space(op: str) -> list[dict]:
    """Every distinct config of kind `op` (no two generate the same kernel), in a fixed order."""
    names = list(_KNOBS[op])
    configs: dict[str, dict] = {}
    for values in itertools.product(*(_KNOBS[op][n] for n in names)):
        config = canonical(op, dict(zip(names, values)))
        configs.setdefault(config_key(config), config)
    return list(configs.values())


def default_config(op: str) -> dict:
    return dict(_DEFAULTS[op])


WEIGHTS = ("int8", "int16")  # how the conv / dense templates store weights: `build(..., weights=)`


def int8_weight_config(op: str) -> dict | None:
    """The default config of `op` with weights kept int8 (None: `op` has no int16-weight path)."""
    return {"simd": 3} if op in ("conv2d", "dense") else None


def int16_weight_config(op: str) -> dict | None:
    """The config of `op` that stores its weights as int16 (`--weights int16`), None: no such path."""
    return {"simd": 2} if op in ("conv2d", "dense") else None


def seed_configs(op: str) -> list[dict]:
    """The configs a search measures first: the default, and its int16-weight variant (the two
    fixed rules `--weights int8|int16`, so a flash-budgeted choice always has both to pick from)."""
    int16 = int16_weight_config(op)
    return [default_config(op)] + ([canonical(op, {**default_config(op), **int16})] if int16 else [])


def config_key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def features(op: str, config: dict, key: str | None = None) -> list[float]:
    """Numeric features of a (workload, config) for the cost model: knob values + workload sizes."""
    values = [float(config[k]) for k in _KNOBS[op]]
    if key is not None:
        shapes = json.loads(key)["shapes"]
        values += [float(np.log2(1 + int(np.prod(s)))) for s in shapes[:2]]
    return values


def template_config(func: tirx.PrimFunc, config: dict | None = None) -> dict | None:
    """The template config `func` gets from `config` over its defaults (None: not tunable)."""
    op, attrs, shapes = kernel_info(func)
    return {**default_config(op), **(config or {})} if supported(op, attrs, shapes) else None


def constant_transforms(func: tirx.PrimFunc, config: dict | None = None) -> dict[int, Callable[[np.ndarray], np.ndarray]]:
    """The layout transforms `schedule_kernel(func, config)` gives the constant parameters (by
    index), without building the kernel: what a config stores in flash."""
    op, attrs, shapes = kernel_info(func)
    cfg = template_config(func, config)
    if cfg is None:
        return {}
    if op in ("conv2d", "dense"):
        return conv_t.transforms(shapes[1], cfg, hwio=op == "conv2d")
    if op == "depthwise_conv2d":
        return {4: dw_t.requant_transform(attrs["out_zp"])}
    return {}


def schedule_kernel(func: tirx.PrimFunc, config: dict | None = None) -> Scheduled:
    """The kernel scheduled with `config` (None: the template's default; not tunable: default_schedule)."""
    op, attrs, shapes = kernel_info(func)
    cfg = template_config(func, config)
    if cfg is None:
        return Scheduled(default_schedule(func))
    geometry = {k: attrs[k] for k in ("strides", "pads", "dilation", "in_zp", "out_zp", "act_min", "act_max") if k in attrs}
    if op == "conv2d":
        new = conv_t.conv2d_nhwc(shapes[0], shapes[1], shapes[5], **geometry, **cfg)
    elif op == "dense":
        new = conv_t.dense(shapes[0], shapes[1], **geometry, **cfg)
    elif op == "depthwise_conv2d":
        new = dw_t.depthwise_nhwc(shapes[0], shapes[1], shapes[5], **geometry, **cfg)
    else:
        new = dw_t.depthwise_inplace_nhwc(shapes[0], shapes[1], shapes[5], **geometry, **cfg)
    return Scheduled(_keep_attrs(new, func), constant_transforms(func, cfg), True)


def _keep_attrs(new: tirx.PrimFunc, old: tirx.PrimFunc) -> tirx.PrimFunc:
    for k in ("tinyml.op", "tinyml.attrs"):
        if old.attrs is not None and k in old.attrs:
            new = new.with_attr(k, old.attrs[k])
    return new
