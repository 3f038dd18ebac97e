"""Tunable int8 convolution (NHWC) and fully connected kernels built on tinyml_simd.h micro-kernels.

The TIR loop nest visits output pixels in row-major order (batch, y, then x) in its outermost
loops; a pixel block of `tile_m` consecutive pixels (1 or 2) is computed for all output channels
before the next block, channels `tile_n` at a time, so the streaming-overlap contract of
`tvm_tinyml/overlap.py` holds (a block's writes never land on bytes a later block reads).
Each (pixels x channels) tile calls `tinyml_conv_s8_<M>x<N>_s<S>u<U>`, which accumulates
int32 dot products over the window's contiguous segments (one per window row: the clipped
columns times the input channels, contiguous in NHWC) with SMLAD (S=1, unrolled U times) or
scalar MACs (S=0), then requantizes exactly as TFLite Micro.

Weights are laid out OHWI ([N, K] for dense) so that a channel's window row is contiguous:
`weight_transform` turns the graph's HWIO constant into it.
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script import tirx as T


def weight_transform_hwio_to_ohwi(weight: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(weight.transpose(3, 0, 1, 2))


def _tile_fn(m: int, n: int, simd: int, unroll: int) -> str:
    return f"tinyml_conv_s8_{m}x{n}_s{int(bool(simd))}u{unroll if simd else 1}"


def conv2d_nhwc(
    data_shape, weight_hwio_shape, out_shape, *, strides, pads, dilation, in_zp, out_zp, act_min, act_max,
    tile_m: int = 2, tile_n: int = 2, simd: int = 1, unroll: int = 1, param_shapes=None, **_unused,
) -> tirx.PrimFunc:
    """(data NHWC, weight OHWI, bias, mult, shift) -> out NHWC, for dilation 1."""
    n, h, w, ci = (int(d) for d in data_shape)
    kh, kw, _, co = (int(d) for d in weight_hwio_shape)
    _, oh, ow, _ = (int(d) for d in out_shape)
    sh, sw = (int(s) for s in strides)
    top, left = int(pads[0]), int(pads[1])
    if tuple(dilation) != (1, 1):
        raise ValueError("conv2d template: dilation 1 only")
    in_off = -int(in_zp)
    flat = kh == 1 and kw == 1 and sh == 1 and sw == 1 and top == 0 and left == 0 and oh == h and ow == w
    if tile_m > 1 and (co > 512 or (oh * ow if flat else ow) < tile_m):
        tile_m = 1  # the staged second pixel must stay a small stack buffer; no pair to block
    stage_bytes = co if tile_m > 1 else 1
    tn = min(tile_n, co)
    full_tiles, rem = co // tn, co % tn
    tile_full = _tile_fn(tile_m, tn, simd, unroll)
    tile_one = _tile_fn(1, tn, simd, unroll)
    rem_one = _tile_fn(1, 1, simd, unroll)
    rem_m = _tile_fn(tile_m, 1, simd, unroll)
    pixels = oh * ow
    wsz = kh * kw * ci
    x_row, w_row = w * ci, kw * ci
    dshape, wshape, oshape = param_shapes or ((n, h, w, ci), (co, kh, kw, ci), (n, oh, ow, co))

    if flat:
        blocks, tail = pixels // tile_m, pixels % tile_m

        @T.prim_func
        def conv2d_flat(
            data: T.Buffer(dshape, "int8"),
            weight: T.Buffer(wshape, "int8"),
            bias: T.Buffer((co,), "int32"),
            mult: T.Buffer((co,), "int32"),
            shift: T.Buffer((co,), "int32"),
            out: T.Buffer(oshape, "int8"),
        ):
            x = T.decl_buffer((n * h * w * ci,), "int8", data=data.data)
            o = T.decl_buffer((n * oh * ow * co,), "int8", data=out.data)
            wf = T.decl_buffer((co * ci,), "int8", data=weight.data)
            stage = T.alloc_buffer((stage_bytes,), "int8")
            for b, blk in T.grid(n, blocks):
                for t in range(full_tiles):
                    T.evaluate(T.call_extern("void", tile_full, T.address_of(x[(b * pixels + blk * tile_m) * ci]), ci, 0,
                                             T.address_of(wf[t * tn * ci]), ci, 0, 1, ci, in_off,
                                             T.address_of(bias[t * tn]), T.address_of(mult[t * tn]), T.address_of(shift[t * tn]),
                                             T.address_of(o[(b * pixels + blk * tile_m) * co + t * tn]), T.address_of(stage[t * tn]), out_zp, act_min, act_max))
                for r in range(rem):
                    T.evaluate(T.call_extern("void", rem_m, T.address_of(x[(b * pixels + blk * tile_m) * ci]), ci, 0,
                                             T.address_of(wf[(full_tiles * tn + r) * ci]), ci, 0, 1, ci, in_off,
                                             T.address_of(bias[full_tiles * tn + r]), T.address_of(mult[full_tiles * tn + r]),
                                             T.address_of(shift[full_tiles * tn + r]),
                                             T.address_of(o[(b * pixels + blk * tile_m) * co + full_tiles * tn + r]), T.address_of(stage[full_tiles * tn + r]), out_zp, act_min, act_max))
                if tile_m > 1:
                    for c in range(co):  # pixel 2 of the block is written after all of the block's reads
                        o[(b * pixels + blk * tile_m + 1) * co + c] = stage[c]
            for b, p in T.grid(n, tail):
                for t in range(full_tiles):
                    T.evaluate(T.call_extern("void", tile_one, T.address_of(x[(b * pixels + blocks * tile_m + p) * ci]), ci, 0,
                                             T.address_of(wf[t * tn * ci]), ci, 0, 1, ci, in_off,
                                             T.address_of(bias[t * tn]), T.address_of(mult[t * tn]), T.address_of(shift[t * tn]),
                                             T.address_of(o[(b * pixels + blocks * tile_m + p) * co + t * tn]), T.address_of(o[(b * pixels + blocks * tile_m + p) * co + t * tn]), out_zp, act_min, act_max))
                for r in range(rem):
                    T.evaluate(T.call_extern("void", rem_one, T.address_of(x[(b * pixels + blocks * tile_m + p) * ci]), ci, 0,
                                             T.address_of(wf[(full_tiles * tn + r) * ci]), ci, 0, 1, ci, in_off,
                                             T.address_of(bias[full_tiles * tn + r]), T.address_of(mult[full_tiles * tn + r]),
                                             T.address_of(shift[full_tiles * tn + r]),
                                             T.address_of(o[(b * pixels + blocks * tile_m + p) * co + full_tiles * tn + r]), T.address_of(o[(b * pixels + blocks * tile_m + p) * co + full_tiles * tn + r]), out_zp, act_min, act_max))

        return conv2d_flat

    # General window: per output pixel the clipped window [ky0, ky1) x [kx0, kx1).
    pairs = ow // tile_m if tile_m > 1 else 0
    single_from = pairs * tile_m

    @T.macro
    def one_pixel(x, wf, o, bias, mult, shift, b, oy, ox, ky0, ky1):
        """One output pixel, its window clipped in x: full channel tiles, then the remainder."""
        kx0 = T.meta_var(T.max(0, left - ox * sw))
        kx1 = T.meta_var(T.min(kw, w + left - ox * sw))
        for t in range(full_tiles):
            T.evaluate(T.call_extern(
                "void", tile_one,
                T.address_of(x[((b * h + oy * sh - top + ky0) * w + ox * sw - left + kx0) * ci]), 0, x_row,
                T.address_of(wf[(t * tn) * wsz + ky0 * w_row + kx0 * ci]), wsz, w_row, ky1 - ky0, (kx1 - kx0) * ci, in_off,
                T.address_of(bias[t * tn]), T.address_of(mult[t * tn]), T.address_of(shift[t * tn]),
                T.address_of(o[((b * oh + oy) * ow + ox) * co + t * tn]), T.address_of(o[((b * oh + oy) * ow + ox) * co + t * tn]), out_zp, act_min, act_max))
        for r in range(rem):
            T.evaluate(T.call_extern(
                "void", rem_one,
                T.address_of(x[((b * h + oy * sh - top + ky0) * w + ox * sw - left + kx0) * ci]), 0, x_row,
                T.address_of(wf[(full_tiles * tn + r) * wsz + ky0 * w_row + kx0 * ci]), wsz, w_row, ky1 - ky0, (kx1 - kx0) * ci, in_off,
                T.address_of(bias[full_tiles * tn + r]), T.address_of(mult[full_tiles * tn + r]),
                T.address_of(shift[full_tiles * tn + r]),
                T.address_of(o[((b * oh + oy) * ow + ox) * co + full_tiles * tn + r]), T.address_of(o[((b * oh + oy) * ow + ox) * co + full_tiles * tn + r]), out_zp, act_min, act_max))

    @T.prim_func
    def conv2d_window(
        data: T.Buffer((n, h, w, ci), "int8"),
        weight: T.Buffer((co, kh, kw, ci), "int8"),
        bias: T.Buffer((co,), "int32"),
        mult: T.Buffer((co,), "int32"),
        shift: T.Buffer((co,), "int32"),
        out: T.Buffer((n, oh, ow, co), "int8"),
    ):
        x = T.decl_buffer((n * h * w * ci,), "int8", data=data.data)
        o = T.decl_buffer((n * oh * ow * co,), "int8", data=out.data)
        wf = T.decl_buffer((co * wsz,), "int8", data=weight.data)
        stage = T.alloc_buffer((stage_bytes,), "int8")
        for b, oy in T.grid(n, oh):
            ky0 = T.meta_var(T.max(0, top - oy * sh))
            ky1 = T.meta_var(T.min(kh, h + top - oy * sh))
            for xp in range(pairs):
                # two pixels share one call when both windows are whole in x
                if xp * tile_m * sw - left >= 0 and (xp * tile_m + 1) * sw - left + kw <= w:
                    for t in range(full_tiles):
                        T.evaluate(T.call_extern(
                            "void", tile_full,
                            T.address_of(x[((b * h + oy * sh - top + ky0) * w + xp * tile_m * sw - left) * ci]), sw * ci, x_row,
                            T.address_of(wf[(t * tn) * wsz + ky0 * w_row]), wsz, w_row, ky1 - ky0, kw * ci, in_off,
                            T.address_of(bias[t * tn]), T.address_of(mult[t * tn]), T.address_of(shift[t * tn]),
                            T.address_of(o[((b * oh + oy) * ow + xp * tile_m) * co + t * tn]), T.address_of(stage[t * tn]), out_zp, act_min, act_max))
                    for r in range(rem):
                        T.evaluate(T.call_extern(
                            "void", rem_m,
                            T.address_of(x[((b * h + oy * sh - top + ky0) * w + xp * tile_m * sw - left) * ci]), sw * ci, x_row,
                            T.address_of(wf[(full_tiles * tn + r) * wsz + ky0 * w_row]), wsz, w_row, ky1 - ky0, kw * ci, in_off,
                            T.address_of(bias[full_tiles * tn + r]), T.address_of(mult[full_tiles * tn + r]),
                            T.address_of(shift[full_tiles * tn + r]),
                            T.address_of(o[((b * oh + oy) * ow + xp * tile_m) * co + full_tiles * tn + r]), T.address_of(stage[full_tiles * tn + r]), out_zp, act_min, act_max))
                    for c in range(co):  # pixel 2 of the pair is written after all of the pair's reads
                        o[((b * oh + oy) * ow + xp * tile_m + 1) * co + c] = stage[c]
                else:
                    for q in range(tile_m):
                        one_pixel(x, wf, o, bias, mult, shift, b, oy, xp * tile_m + q, ky0, ky1)
            for ox in range(single_from, ow):
                one_pixel(x, wf, o, bias, mult, shift, b, oy, ox, ky0, ky1)

    return conv2d_window


def dense(data_shape, weight_shape, *, in_zp, out_zp, act_min, act_max, tile_m: int = 1, tile_n: int = 2,
          simd: int = 1, unroll: int = 1, **_unused) -> tirx.PrimFunc:
    """[M, K] x [N, K] -> [M, N]: the flat 1x1 convolution over M one-pixel rows."""
    m, k = (int(d) for d in data_shape)
    nout = int(weight_shape[0])
    return conv2d_nhwc((1, 1, m, k), (1, 1, k, nout), (1, 1, m, nout), strides=(1, 1), pads=(0, 0, 0, 0),
                       dilation=(1, 1), in_zp=in_zp, out_zp=out_zp, act_min=act_min, act_max=act_max,
                       tile_m=tile_m, tile_n=tile_n, simd=simd, unroll=unroll,
                       param_shapes=((m, k), (nout, k), (m, nout)))
