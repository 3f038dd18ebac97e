"""Kernels of patch-based inference (`relax_passes.patch_fusion`).

A patched layer computes one window of its output from one window of its input. The window's
place in the whole feature map is a runtime argument, `origin` (int32 [y, x]: where the
layer's input window starts, in the coordinates of the unpatched input; it may be negative or
run past the edge), so one kernel serves every patch of the grid and the entry can loop.

    patch_conv2d(data, weight, bias, mult, shift, origin)  -> window of the output
    patch_depthwise_conv2d(...)                              (same arguments)
    patch_place(acc, patch, origin)                          -> acc with the patch written in

Input positions outside the true image read as the input zero point, exactly as the
unpatched kernel's padding does, so every output element is the same integer computation
(same products, same int32 sum, same requantization). Output positions outside the image
are computed too (their values are never read: the next layer masks them the same way).
`data` is either a window (`full_input=False`: data[0, 0] is the pixel at `origin`) or the
whole unpatched input (`full_input=True`: the kernel reads data[origin + pos]).
"""

from __future__ import annotations

from typing import Sequence

from tvm import te, tirx

from schedules import qnn_compute as qc


def _masked_window(data, origin, window_hw: Sequence[int], image_hw: Sequence[int], pad_value: int, full_input: bool):
    """The conv input window (named "pad" so the default schedule inlines it into the loads)."""
    n, _, _, c = data.shape
    wh, ww = window_hw
    ih, iw = image_hw

    def _value(b, y, x, ch):
        gy, gx = origin[0] + y, origin[1] + x
        inside = tirx.all(gy >= 0, gy < ih, gx >= 0, gx < iw)
        src = data[b, gy, gx, ch] if full_input else data[b, y, x, ch]
        return tirx.if_then_else(inside, src, tirx.const(pad_value, data.dtype))

    return te.compute((n, wh, ww, c), _value, name="pad")


def _patch_conv(data, weight, bias, mult, shift, origin, depthwise: bool, *, window_hw, image_hw, full_input,
                strides, dilation, in_zp, out_zp, act_min, act_max, **_unused):
    window = _masked_window(data, origin, window_hw, image_hw, in_zp, full_input)
    return qc._conv(window, weight, bias, mult, shift, strides, (0, 0, 0, 0), dilation, in_zp, out_zp,
                    act_min, act_max, "NHWC", depthwise)


def patch_conv2d(data, weight, bias, mult, shift, origin, **kwargs):
    """Conv2D (NHWC x HWIO) of one patch window; see the module doc."""
    return _patch_conv(data, weight, bias, mult, shift, origin, False, **kwargs)


def patch_depthwise_conv2d(data, weight, bias, mult, shift, origin, **kwargs):
    """Depthwise Conv2D (NHWC x HWC) of one patch window; see the module doc."""
    return _patch_conv(data, weight, bias, mult, shift, origin, True, **kwargs)


def patch_place(acc, patch, origin):
    """(acc, patch, origin) -> `acc` with `patch` written at `origin` (int32 [y, x]; the last
    patch of a row or column may overlap its neighbour, writing the same values). Element by
    element, so the output may take the bytes of `acc` (op `patch_place_inplace`)."""
    _, ph, pw, _ = patch.shape

    def _value(b, y, x, ch):
        inside = tirx.all(y >= origin[0], y < origin[0] + ph, x >= origin[1], x < origin[1] + pw)
        return tirx.if_then_else(inside, patch[b, y - origin[0], x - origin[1], ch], acc[b, y, x, ch])

    return te.compute(acc.shape, _value, name="out")
