"""Tunable int8 depthwise convolution (NHWC, channel multiplier 1), ordinary and in-place.

Ordinary: output pixels in row-major order (the overlap contract); per pixel the clipped window
is handed to `tinyml_dw_pixel_s8`, four channels at a time (SXTAB16 + SMLABB/SMLATT) when
`simd`, the remaining channels by `tinyml_dw_pixel_scalar_s8`.
In-place (`schedules/depthwise_inplace.py`'s contract): channel by channel, the input plane is
saved in the H*W scratch and `tinyml_dw_plane_s8` computes the channel's outputs over it, a 3x3
stride-1 interior two outputs at a time with SMLAD when `simd`.

Weights are int16 (kh, kw, c): within each group of four channels stored (c0, c2, c1, c3) so one
word load gives the pair SXTAB16 pairs with (`weight_transform`); the in-place kernel keeps
them in natural order.
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
            ky0 = T.meta_var(T.max(0, top - oy * sh))
            ky1 = T.meta_var(T.min(kh, h + top - oy * sh))
            kx0 = T.meta_var(T.max(0, left - ox * sw))
            kx1 = T.meta_var(T.min(kw, w + left - ox * sw))
            if groups > 0:
                T.evaluate(T.call_extern(
                    "void", "tinyml_dw_pixel_s8",
                    T.address_of(x[((b * h + oy * sh - top + ky0) * w + ox * sw - left + kx0) * c]), w * c, c,
                    T.address_of(wf[(ky0 * kw + kx0) * c]), kw, c, ky1 - ky0, kx1 - kx0, 0, groups, in_off,
                    T.address_of(bias[0]), T.address_of(mult[0]), T.address_of(shift[0]),
                    T.address_of(o[((b * oh + oy) * ow + ox) * c]), out_zp, act_min, act_max))
            if scalar_from < c:
                T.evaluate(T.call_extern(
                    "void", "tinyml_dw_pixel_scalar_s8",
                    T.address_of(x[((b * h + oy * sh - top + ky0) * w + ox * sw - left + kx0) * c]), w * c, c,
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
        o = T.decl_buffer((n * oh * ow * c,), "int8", data=out.data)
        w9 = T.alloc_buffer((kh * kw,), "int16")
        for b in range(n):
            for ch in range(c):
                for y, xx in T.grid(h, w):
                    scratch[y * w + xx] = data[b, y, xx, ch]
                for ky, kx in T.grid(kh, kw):
                    w9[ky * kw + kx] = weight[ky, kx, ch]
                T.evaluate(T.call_extern(
                    "void", "tinyml_dw_plane_s8", T.address_of(scratch[0]), h, w, kh, kw, sh, sw, dh, dw, top, left,
                    oh, ow, T.address_of(w9[0]), in_off, bias[ch], mult[ch], shift[ch],
                    T.address_of(o[b * oh * ow * c + ch]), c, out_zp, act_min, act_max, simd))

    return depthwise_conv2d_inplace
