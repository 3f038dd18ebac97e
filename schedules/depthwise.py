"""Tunable int8 depthwise convolution (NHWC, channel multiplier 1), ordinary and in-place.

Ordinary: output pixels in row-major order (the overlap contract); a pixel whose 3x3 window lies
inside the input goes to `tinyml_dw3_pixel_s8` (nine taps unrolled, constant offsets), a border
pixel's clipped window to `tinyml_dw_pixel_s8`; both four channels at a time (SXTAB16 +
SMLABB/SMLATT) when `simd`, the remaining channels by `tinyml_dw_pixel_scalar_s8`.
In-place: channel by channel, `tinyml_dw_gather_s8` saves the input plane in the H*W scratch and
the channel's outputs are computed over it: 3x3, stride 1 or 2, pads <= 1 by `tinyml_dw3_plane_s8`
when `simd` (word loads of plane rows, two stride-1 outputs per SMLAD step, edge words padded with
the zero point, clipped first/last rows specialised), anything else by `tinyml_dw_plane_s8`.

Weights are int16 (kh, kw, c): within each group of four channels stored (c0, c2, c1, c3) so one
word load gives the pair SXTAB16 pairs with (`weight_transform_grouped`); the in-place kernel
keeps them in natural order (it packs a channel's nine weights once per plane).
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script import tirx as T


def weight_transform_grouped(weight: np.ndarray) -> np.ndarray:
    """HWC int8 -> HWC int16 with channels (c0, c2, c1, c3) inside every whole group of four."""
    kh, kw, c = weight.shape
    out = weight.astype(np.int16).copy()
    groups = c // 4
    if groups:
        body = out[:, :, : groups * 4].reshape(kh, kw, groups, 4)
        out[:, :, : groups * 4] = body[:, :, :, [0, 2, 1, 3]].reshape(kh, kw, groups * 4)
    return np.ascontiguousarray(out)


def weight_transform_int16(weight: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(weight.astype(np.int16))


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
    scalar_from = groups * 4

    @T.prim_func
    def depthwise_conv2d(
        data: T.Buffer((n, h, w, c), "int8"),
        weight: T.Buffer((kh, kw, c), "int16"),
        bias: T.Buffer((c,), "int32"),
        mult: T.Buffer((c,), "int32"),
        shift: T.Buffer((c,), "int32"),
        out: T.Buffer((n, oh, ow, c), "int8"),
    ):
        x = T.decl_buffer((n * h * w * c,), "int8", data=data.data)
        wf = T.decl_buffer((kh * kw * c,), "int16", data=weight.data)
        o = T.decl_buffer((n * oh * ow * c,), "int8", data=out.data)
        for b, oy, ox in T.grid(n, oh, ow):
            iy = T.meta_var(oy * sh - top)
            ix = T.meta_var(ox * sw - left)
            ky0 = T.meta_var(T.max(0, -iy))
            ky1 = T.meta_var(T.min(kh, h - iy))
            kx0 = T.meta_var(T.max(0, -ix))
            kx1 = T.meta_var(T.min(kw, w - ix))
            if groups > 0:
                if kh == 3 and kw == 3 and iy >= 0 and iy + kh <= h and ix >= 0 and ix + kw <= w:
                    T.evaluate(T.call_extern(
                        "void", "tinyml_dw3_pixel_s8", T.address_of(x[((b * h + iy) * w + ix) * c]), w * c, c,
                        T.address_of(wf[0]), groups, in_off,
                        T.address_of(bias[0]), T.address_of(mult[0]), T.address_of(shift[0]),
                        T.address_of(o[((b * oh + oy) * ow + ox) * c]), out_zp, act_min, act_max))
                else:
                    T.evaluate(T.call_extern(
                        "void", "tinyml_dw_pixel_s8",
                        T.address_of(x[((b * h + iy + ky0) * w + ix + kx0) * c]), w * c, c,
                        T.address_of(wf[(ky0 * kw + kx0) * c]), kw, c, ky1 - ky0, kx1 - kx0, 0, groups, in_off,
                        T.address_of(bias[0]), T.address_of(mult[0]), T.address_of(shift[0]),
                        T.address_of(o[((b * oh + oy) * ow + ox) * c]), out_zp, act_min, act_max))
            if scalar_from < c:
                T.evaluate(T.call_extern(
                    "void", "tinyml_dw_pixel_scalar_s8",
                    T.address_of(x[((b * h + iy + ky0) * w + ix + kx0) * c]), w * c, c,
                    T.address_of(wf[(ky0 * kw + kx0) * c]), kw, c, ky1 - ky0, kx1 - kx0, scalar_from, c, in_off,
                    T.address_of(bias[0]), T.address_of(mult[0]), T.address_of(shift[0]),
                    T.address_of(o[((b * oh + oy) * ow + ox) * c]), out_zp, act_min, act_max))

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
        weight: T.Buffer((kh, kw, c), "int16"),
        bias: T.Buffer((c,), "int32"),
        mult: T.Buffer((c,), "int32"),
        shift: T.Buffer((c,), "int32"),
        out: T.Buffer((n, oh, ow, c), "int8"),
        scratch: T.Buffer((h * w,), "int8"),
    ):
        x = T.decl_buffer((n * h * w * c,), "int8", data=data.data)
        o = T.decl_buffer((n * oh * ow * c,), "int8", data=out.data)
        wf = T.decl_buffer((kh * kw * c,), "int16", data=weight.data)
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
