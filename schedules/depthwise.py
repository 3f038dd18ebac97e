"""Tunable int8 depthwise convolution (NHWC, channel multiplier 1), ordinary and in-place.

Ordinary: one call of `tinyml_dw_layer_s8`, which walks the output pixels in row-major order
(the overlap contract); a pixel whose 3x3 window lies inside the input goes to
`tinyml_dw3_pixel_s8` (nine taps unrolled, constant offsets), any other window, clipped to the
input, to `tinyml_dw_pixel_s8`; four channels at a time (SXTAB16 + SMLABB/SMLATT) when `simd`,
the remaining ones one by one.
In-place: channel by channel, `tinyml_dw_gather_s8` saves the input plane in the H*W scratch and
the channel's outputs are computed over it: 3x3, stride 1 or 2, pads <= 1 by `tinyml_dw3_plane_s8`
when `simd` (word loads of plane rows, two stride-1 outputs per SMLAD step, edge words padded with
the zero point, clipped first/last rows specialised), anything else by `tinyml_dw_plane_s8`.

Weights stay int8 (kh, kw, c) in their natural order: SXTB16 of a word of four channels gives
the weight pairs (c0, c2) and (c1, c3). Both kernels requantize with `tinyml_dw_requant2`
(SMMULR, one rounding add with the output zero point folded in, one shift) wherever it is exact
(`tinyml_dw_fast_ok`: shift in [-22, -1], |accumulator| < 2^30 from the bias bound), checked at
run time per layer (ordinary) or per channel plane (in-place); `requant_transform` stores the
ordinary kernel's shifts with their rounding terms.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from tvm import tirx
from tvm.script import tirx as T


def requant_transform(out_zp: int) -> Callable[[np.ndarray], np.ndarray]:
    """Per-channel shift -> (c, 2) int32 (right = -shift, rounding term with out_zp folded in, 0
    where the fast requantization does not apply), as tinyml_dw_layer_fast reads them."""

    def transform(shift: np.ndarray) -> np.ndarray:
        right = -shift.astype(np.int64)
        ok = (right >= 1) & (right <= 22)
        r = np.where(ok, right, 1)
        nudge = np.where(ok, (1 << (r - 1)) + (int(out_zp) << r), 0)
        return np.ascontiguousarray(np.stack([right, nudge], axis=1).astype(np.int32))

    return transform


def depthwise_nhwc(data_shape, weight_shape, out_shape, *, strides, pads, dilation, in_zp, out_zp, act_min, act_max,
                   simd: int = 1, **_unused) -> tirx.PrimFunc:
    n, h, w, c = (int(d) for d in data_shape)
    kh, kw, co = (int(d) for d in weight_shape)
    _, oh, ow, _ = (int(d) for d in out_shape)
    if co != c or tuple(dilation) != (1, 1):
        raise ValueError("depthwise template: multiplier 1 and dilation 1 only")
    sh, sw = (int(s) for s in strides)
    top, left = int(pads[0]), int(pads[1])
    in_off = -int(in_zp)
    groups = c // 4 if simd else 0

    @T.prim_func
    def depthwise_conv2d(
        data: T.Buffer((n, h, w, c), "int8"),
        weight: T.Buffer((kh, kw, c), "int8"),
        bias: T.Buffer((c,), "int32"),
        mult: T.Buffer((c,), "int32"),
        shift: T.Buffer((c, 2), "int32"),
        out: T.Buffer((n, oh, ow, c), "int8"),
    ):
        x = T.decl_buffer((n * h * w * c,), "int8", data=data.data)
        wf = T.decl_buffer((kh * kw * c,), "int8", data=weight.data)
        o = T.decl_buffer((n * oh * ow * c,), "int8", data=out.data)
        for b in range(n):
            T.evaluate(T.call_extern(
                "void", "tinyml_dw_layer_s8", T.address_of(x[b * h * w * c]), h, w, c, kh, kw, sh, sw, top, left, oh, ow,
                T.address_of(wf[0]), groups, in_off, T.address_of(bias[0]), T.address_of(mult[0]),
                T.address_of(shift[0, 0]), T.address_of(o[b * oh * ow * c]), out_zp, act_min, act_max))

    return depthwise_conv2d


def depthwise_inplace_nhwc(data_shape, weight_shape, out_shape, *, strides, pads, dilation, in_zp, out_zp, act_min,
                           act_max, simd: int = 1, **_unused) -> tirx.PrimFunc:
    n, h, w, c = (int(d) for d in data_shape)
    kh, kw, _ = (int(d) for d in weight_shape)
    _, oh, ow, _ = (int(d) for d in out_shape)
    sh, sw = (int(s) for s in strides)
    dh, dw = (int(d) for d in dilation)
    top, left = int(pads[0]), int(pads[1])
    in_off = -int(in_zp)
    fast = bool(simd) and (kh, kw, dh, dw) == (3, 3, 1, 1) and sh in (1, 2) and sw in (1, 2) \
        and all(int(p) in (0, 1) for p in pads) and h * w >= 4

    @T.prim_func
    def depthwise_conv2d_inplace(
        data: T.Buffer((n, h, w, c), "int8"),
        weight: T.Buffer((kh, kw, c), "int8"),
        bias: T.Buffer((c,), "int32"),
        mult: T.Buffer((c,), "int32"),
        shift: T.Buffer((c,), "int32"),
        out: T.Buffer((n, oh, ow, c), "int8"),
        scratch: T.Buffer((h * w,), "int8"),
    ):
        x = T.decl_buffer((n * h * w * c,), "int8", data=data.data)
        o = T.decl_buffer((n * oh * ow * c,), "int8", data=out.data)
        wf = T.decl_buffer((kh * kw * c,), "int8", data=weight.data)
        for b, ch in T.grid(n, c):
            T.evaluate(T.call_extern("void", "tinyml_dw_gather_s8", T.address_of(scratch[0]),
                                     T.address_of(x[b * h * w * c + ch]), c, h * w))
            if fast:
                T.evaluate(T.call_extern(
                    "void", "tinyml_dw3_plane_s8", T.address_of(scratch[0]), h, w, sh, sw, top, left, oh, ow,
                    T.address_of(wf[ch]), c, in_off, bias[ch], T.address_of(mult[ch]), shift[ch],
                    T.address_of(o[b * oh * ow * c + ch]), out_zp, act_min, act_max))
            else:
                T.evaluate(T.call_extern(
                    "void", "tinyml_dw_plane_s8", T.address_of(scratch[0]), h, w, kh, kw, sh, sw, dh, dw, top, left,
                    oh, ow, T.address_of(wf[ch]), c, in_off, bias[ch], mult[ch], shift[ch],
                    T.address_of(o[b * oh * ow * c + ch]), out_zp, act_min, act_max))

    return depthwise_conv2d_inplace
