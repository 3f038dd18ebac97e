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

simd=2 and 3 are the GEMM paths (`_conv2d_gemm`): a block of `tile_m` pixels (1x1 convolutions
and dense: consecutive pixels; other windows: in one output row, clipped windows zero-filled) is
expanded once to int16 (x - zero point) into a stack scratch, so all of the block's reads happen
before its writes, then every output channel is computed, two at a time; `tile_n` does not apply.
simd=3 (the default) keeps the weights int8 (`weight_transform_gemm8`) and widens them in
registers (`tinyml_conv_s8_gemm8{c,r}_<M>_u<U>`), up to 6 pixels a block, with the shifts as int8
(`shift_table8`); simd=2
(`--weights int16`) reads int16 weights (`weight_transform_gemm`) and requantizes with a
per-channel table built from the shift (`requant_table`).
"""

from __future__ import annotations

import numpy as np
from tvm import tirx
from tvm.script import tirx as T


def weight_transform_hwio_to_ohwi(weight: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(weight.transpose(3, 0, 1, 2))


SCRATCH_BYTES = 1020  # the GEMM path's expanded pixel block: TVM keeps allocations < 1 KiB on the stack


def _kp(k: int) -> int:
    return (k + 3) // 4 * 4


GEMM_SIMD = (2, 3)  # the GEMM paths: int16 weights, int8 weights


GEMM8_PIXELS = 6  # the int8-weight column kernels' widest block (13 registers)


def gemm_pixels(k: int, config: dict) -> int:
    """Pixels per block on a GEMM path for a window of k values, 0 when `config` does not take
    one: simd=2 blocks `tile_m` pixels, simd=3 with tile_m 2 as many as the scratch holds (up to
    GEMM8_PIXELS); fewer when the scratch would not fit."""
    most = GEMM8_PIXELS if config.get("simd") == 3 and config.get("tile_m", 1) > 1 else config.get("tile_m", 1)
    fits = [m for m in range(1, most + 1) if m * _kp(k) * 2 <= SCRATCH_BYTES]
    return max(fits) if config.get("simd") in GEMM_SIMD and fits else 0


def _oi(weight: np.ndarray, hwio: bool) -> np.ndarray:
    """Conv HWIO or dense [N, K] weights as [N, K] (OHWI order)."""
    return weight.reshape(-1, weight.shape[-1]).T if hwio else weight.reshape(weight.shape[0], -1)


def weight_transform_gemm8(weight: np.ndarray, hwio: bool, rows: bool) -> np.ndarray:
    """Conv HWIO (or dense [N, K]) weights -> int8 [n][kp] (OHWI order, zero padded, each group
    of four stored [w0 w2 w1 w3]): for the column kernels as is, for the row kernels (`rows`)
    with channel pairs interleaved four values at a time, an odd last channel alone."""
    w = _oi(weight, hwio)
    n, k = w.shape
    kp = _kp(k)
    padded = np.zeros((n, kp), np.int8)
    padded[:, :k] = w
    padded = np.ascontiguousarray(padded.reshape(n, kp // 4, 4)[:, :, [0, 2, 1, 3]].reshape(n, kp))
    if not rows:
        return padded.reshape(-1)
    pairs = padded[: n // 2 * 2].reshape(n // 2, 2, kp // 4, 4).transpose(0, 2, 1, 3)
    return np.concatenate([pairs.reshape(-1), padded[n // 2 * 2:].reshape(-1)])


def shift_table8(shift: np.ndarray) -> np.ndarray:
    """Per-channel shift (int32, within [-31, 30] as TFLite's) -> int8, four to an int32 word."""
    s = shift.astype(np.int64).reshape(-1)
    if s.size and (s.min() < -128 or s.max() > 127):
        raise ValueError("conv2d template: a requantization shift outside int8")
    packed = np.zeros(_kp(s.size), np.int8)
    packed[: s.size] = s
    return packed.view("<i4").astype(np.int32)


def weight_transform_gemm(weight: np.ndarray, hwio: bool) -> np.ndarray:
    """Conv HWIO (or dense [N, K]) weights -> int16 [n][kp] (OHWI order, zero padded) with
    channel pairs interleaved four values at a time, an odd last channel alone, as its
    little-endian bytes (an int8 parameter, so the kernel's signature keeps the graph's type)."""
    w = _oi(weight, hwio)
    n, k = w.shape
    kp = _kp(k)
    padded = np.zeros((n, kp), np.int16)
    padded[:, :k] = w
    pairs = padded[: n // 2 * 2].reshape(n // 2, 2, kp // 4, 4).transpose(0, 2, 1, 3)
    return np.concatenate([pairs.reshape(-1), padded[n // 2 * 2:].reshape(-1)]).astype("<i2").view(np.int8)


def requant_table(shift: np.ndarray) -> np.ndarray:
    """Per-channel shift -> the requantization table of tinyml_simd_conv.h: int32 [n][4]
    {C lo, C hi, r - 1, shift} with r = -shift, C = 2^30 + 2^(30+r); r - 1 = -1 (the general
    requantization) for a shift outside [-31, -1]."""
    s = shift.astype(np.int64).reshape(-1)
    fast = (s <= -1) & (s >= -31)
    r = np.where(fast, -s, 1)
    c = (1 << 30) + np.left_shift(1, 30 + r)
    rows = np.stack([(c & 0xFFFFFFFF).astype(np.uint32).view(np.int32), (c >> 32).astype(np.int32),
                     np.where(fast, r - 1, -1).astype(np.int32), s.astype(np.int32)], axis=1)
    return np.ascontiguousarray(rows.reshape(-1))


def transforms(weight_shape, config: dict, hwio: bool) -> dict:
    """Layout transforms of the constant parameters (1: weights, 4: shift) for `config`."""
    k = int(np.prod(weight_shape[:-1])) if hwio else int(weight_shape[1])
    if gemm_pixels(k, config) and config["simd"] == 3:
        rows = gemm_pixels(k, config) == 1
        return {1: lambda w: weight_transform_gemm8(w, hwio, rows), 4: shift_table8}
    if gemm_pixels(k, config):
        return {1: lambda w: weight_transform_gemm(w, hwio), 4: requant_table}
    return {1: weight_transform_hwio_to_ohwi} if hwio else {}


def _tile_fn(m: int, n: int, simd: int, unroll: int) -> str:
    return f"tinyml_conv_s8_{m}x{n}_s{int(bool(simd))}u{unroll if simd else 1}"


def conv2d_nhwc(
    data_shape, weight_hwio_shape, out_shape, *, strides, pads, dilation, in_zp, out_zp, act_min, act_max,
    tile_m: int = 2, tile_n: int = 2, simd: int = 1, unroll: int = 1, param_shapes=None, **_unused,
) -> tirx.PrimFunc:
    """(data NHWC, weight, bias, mult, shift) -> out NHWC, for dilation 1; weight OHWI int8, or on
    a GEMM path (`gemm_pixels`) weight and shift as `transforms` lays them out."""
    n, h, w, ci = (int(d) for d in data_shape)
    kh, kw, _, co = (int(d) for d in weight_hwio_shape)
    _, oh, ow, _ = (int(d) for d in out_shape)
    sh, sw = (int(s) for s in strides)
    top, left = int(pads[0]), int(pads[1])
    if tuple(dilation) != (1, 1):
        raise ValueError("conv2d template: dilation 1 only")
    in_off = -int(in_zp)
    flat = kh == 1 and kw == 1 and sh == 1 and sw == 1 and top == 0 and left == 0 and oh == h and ow == w
    gemm_m = gemm_pixels(kh * kw * ci, {"simd": simd, "tile_m": tile_m})
    if gemm_m:
        return _conv2d_gemm(data_shape, weight_hwio_shape, out_shape, strides=strides, pads=pads, in_off=in_off,
                            out_zp=out_zp, act_min=act_min, act_max=act_max, tile_m=gemm_m, unroll=unroll,
                            flat=flat, param_shapes=param_shapes, int8_weights=simd == 3)
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


def _conv2d_gemm(data_shape, weight_hwio_shape, out_shape, *, strides, pads, in_off, out_zp, act_min, act_max,
                 tile_m, unroll, flat, param_shapes, int8_weights) -> tirx.PrimFunc:
    """A GEMM path (int8 or int16 weights): per block of `tile_m` pixels (in one output row unless
    `flat`), the windows are expanded into a stack scratch (all the block's reads), then all
    channels computed."""
    n, h, w, ci = (int(d) for d in data_shape)
    kh, kw, _, co = (int(d) for d in weight_hwio_shape)
    _, oh, ow, _ = (int(d) for d in out_shape)
    sh, sw = (int(s) for s in strides)
    top, left = int(pads[0]), int(pads[1])
    wsz = kh * kw * ci
    kp = _kp(wsz)
    x_row, w_row = w * ci, kw * ci
    dshape, oshape = (param_shapes[0], param_shapes[2]) if param_shapes else ((n, h, w, ci), (n, oh, ow, co))
    rq_words = _kp(co) // 4 if int8_weights else 4 * co
    w_bytes = co * kp if int8_weights else 2 * co * kp
    kind = ("8r" if tile_m == 1 else "8c") if int8_weights else ""
    gemm = {m: f"tinyml_conv_s8_gemm{kind}_{m}_u{unroll}" for m in range(1, tile_m + 1)}
    pw = {m: f"tinyml_conv_s8_pw{kind}_{m}_u{unroll}" for m in range(1, tile_m + 1)}

    if flat:
        pixels = oh * ow
        blocks, tail = pixels // tile_m, pixels % tile_m

        @T.macro
        def pw_block(x, o, scratch, weight, bias, mult, rq, m, pixel):
            """Pixels [pixel, pixel + m) expanded into scratch, then all their channels."""
            T.evaluate(T.call_extern("void", pw[m], T.address_of(x[pixel * ci]), ci, kp, in_off, scratch.data,
                                     T.address_of(weight[0]), co, T.address_of(bias[0]), T.address_of(mult[0]),
                                     T.address_of(rq[0]), T.address_of(o[pixel * co]), out_zp, act_min, act_max))

        @T.prim_func
        def conv2d_gemm_flat(
            data: T.Buffer(dshape, "int8"),
            weight: T.Buffer((w_bytes,), "int8"),
            bias: T.Buffer((co,), "int32"),
            mult: T.Buffer((co,), "int32"),
            rq: T.Buffer((rq_words,), "int32"),
            out: T.Buffer(oshape, "int8"),
        ):
            x = T.decl_buffer((n * h * w * ci,), "int8", data=data.data)
            o = T.decl_buffer((n * oh * ow * co,), "int8", data=out.data)
            scratch = T.alloc_buffer((tile_m * kp // 2,), "int32")
            for b in range(n):
                for blk in range(blocks):
                    pw_block(x, o, scratch, weight, bias, mult, rq, tile_m, b * pixels + blk * tile_m)
                if tail > 0:
                    pw_block(x, o, scratch, weight, bias, mult, rq, tail, b * pixels + blocks * tile_m)

        return conv2d_gemm_flat

    row_m = min(tile_m, ow)  # pixels per block in an output row, then one block of the rest
    blocks, tail = ow // row_m, ow % row_m

    @T.macro
    def im2col(x, scratch, slot, b, oy, ox, ky0, ky1):
        """Pixel (oy, ox)'s window, clipped at the borders, into scratch slot `slot`."""
        kx0 = T.meta_var(T.max(0, left - ox * sw))
        kx1 = T.meta_var(T.min(kw, w + left - ox * sw))
        T.evaluate(T.call_extern(
            "void", "tinyml_im2col_s16",
            T.address_of(x[((b * h + oy * sh - top + ky0) * w + ox * sw - left + kx0) * ci]), x_row, ky1 - ky0,
            (kx1 - kx0) * ci, scratch.data, slot, ky0 * w_row + kx0 * ci, w_row, wsz, kp, in_off))

    @T.macro
    def block(o, scratch, weight, bias, mult, rq, m, pixel):
        T.evaluate(T.call_extern("void", gemm[m], scratch.data, kp, T.address_of(weight[0]), co,
                                 T.address_of(bias[0]), T.address_of(mult[0]), T.address_of(rq[0]),
                                 T.address_of(o[pixel * co]), out_zp, act_min, act_max))

    @T.prim_func
    def conv2d_gemm_window(
        data: T.Buffer((n, h, w, ci), "int8"),
        weight: T.Buffer((w_bytes,), "int8"),
        bias: T.Buffer((co,), "int32"),
        mult: T.Buffer((co,), "int32"),
        rq: T.Buffer((rq_words,), "int32"),
        out: T.Buffer((n, oh, ow, co), "int8"),
    ):
        x = T.decl_buffer((n * h * w * ci,), "int8", data=data.data)
        o = T.decl_buffer((n * oh * ow * co,), "int8", data=out.data)
        scratch = T.alloc_buffer((tile_m * kp // 2,), "int32")
        for b, oy in T.grid(n, oh):
            ky0 = T.meta_var(T.max(0, top - oy * sh))
            ky1 = T.meta_var(T.min(kh, h + top - oy * sh))
            for xp in range(blocks):
                for q in T.unroll(row_m):
                    im2col(x, scratch, q, b, oy, xp * row_m + q, ky0, ky1)
                block(o, scratch, weight, bias, mult, rq, row_m, (b * oh + oy) * ow + xp * row_m)
            if tail > 0:
                for q in T.unroll(tail):
                    im2col(x, scratch, q, b, oy, blocks * row_m + q, ky0, ky1)
                block(o, scratch, weight, bias, mult, rq, tail, (b * oh + oy) * ow + blocks * row_m)

    return conv2d_gemm_window


def dense(data_shape, weight_shape, *, in_zp, out_zp, act_min, act_max, tile_m: int = 1, tile_n: int = 2,
          simd: int = 1, unroll: int = 1, **_unused) -> tirx.PrimFunc:
    """[M, K] x [N, K] -> [M, N]: the flat 1x1 convolution over M one-pixel rows."""
    m, k = (int(d) for d in data_shape)
    nout = int(weight_shape[0])
    return conv2d_nhwc((1, 1, m, k), (1, 1, k, nout), (1, 1, m, nout), strides=(1, 1), pads=(0, 0, 0, 0),
                       dilation=(1, 1), in_zp=in_zp, out_zp=out_zp, act_min=act_min, act_max=act_max,
                       tile_m=tile_m, tile_n=tile_n, simd=simd, unroll=unroll,
                       param_shapes=((m, k), (nout, k), (m, nout)))
