"""Depthwise convolution that runs in place (MCUNet / TinyEngine style).

Channel by channel: copy the input plane of channel c into a scratch buffer of H*W bytes,
then compute output channel c from the scratch and write it into the same buffer as the
input. Output (y, x, c) lands on a byte of input channel c (NHWC, stride >= 1, multiplier 1),
which is already saved in the scratch, so input and output may share one buffer exactly.
Padding positions contribute (zero_point - zero_point) * w = 0 and are skipped.
"""

from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T


def depthwise_conv2d_inplace(
    shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    out_hw: tuple[int, int],
    *,
    strides,
    pads,
    dilation,
    in_zp: int,
    out_zp: int,
    act_min: int,
    act_max: int,
) -> tirx.PrimFunc:
    """The in-place kernel: (data, weight, bias, mult, shift) -> (out, scratch[H*W])."""
    n, h, w, c = shape
    kh, kw = kernel
    oh, ow = out_hw
    sh, sw = strides
    dh, dw = dilation
    top, left = pads[0], pads[1]

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
        acc = T.alloc_buffer((1,), "int32")
        for b in range(n):
            for ch in range(c):
                for y, x in T.grid(h, w):
                    scratch[y * w + x] = data[b, y, x, ch]
                for oy, ox in T.grid(oh, ow):
                    acc[0] = 0
                    for ky, kx in T.grid(kh, kw):
                        if 0 <= oy * sh - top + ky * dh and oy * sh - top + ky * dh < h and 0 <= ox * sw - left + kx * dw and ox * sw - left + kx * dw < w:
                            acc[0] = acc[0] + (T.Cast("int32", scratch[(oy * sh - top + ky * dh) * w + ox * sw - left + kx * dw]) - in_zp) * T.Cast("int32", weight[ky, kx, ch])
                    out[b, oy, ox, ch] = T.call_extern("int8", "tinyml_requant_i8", acc[0] + bias[ch], mult[ch], shift[ch], out_zp, act_min, act_max)

    return depthwise_conv2d_inplace
