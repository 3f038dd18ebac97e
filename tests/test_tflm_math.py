"""Bit-exactness of tinyml_math.h + quant_params.py against gemmlowp and TFLM.

The header is compiled into a shared library (thin exported wrappers around
the static inline functions) and driven through ctypes. Each op is checked
against the TFLite Micro interpreter running a one-operator model.
"""

from __future__ import annotations

import ctypes
import math
import os
import subprocess

import numpy as np
import pytest

from tflite_builder import ModelBuilder, build_single_op_model, run_tflm
from tvm_tinyml import quant_params as qp

HEADER = os.path.join(os.path.dirname(__file__), os.pardir, "tvm_tinyml", "codegen",
                      "runtime", "tinyml_math.h")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ACTIVATIONS = ["none", "relu", "relu6", "relu_n1_to_1"]

WRAPPERS = r"""
#include "tinyml_math.h"
int32_t w_srdhm(int32_t a, int32_t b) { return tinyml_sat_rounding_doubling_high_mul(a, b); }
int32_t w_rdbpot(int32_t x, int32_t e) { return tinyml_rounding_divide_by_pot(x, e); }
void w_mbqm(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *out, int32_t n) {
  for (int32_t i = 0; i < n; ++i) out[i] = tinyml_mul_by_quantized_multiplier(x[i], m[i], s[i]);
}
void w_requant(const int32_t *acc, const int32_t *m, const int32_t *s, int32_t channels,
               int8_t *out, int32_t n, int32_t zp, int32_t lo, int32_t hi) {
  for (int32_t i = 0; i < n; ++i)
    out[i] = tinyml_requant_i8(acc[i], m[i % channels], s[i % channels], zp, lo, hi);
}
void w_add(const int8_t *a, const int8_t *b, int8_t *out, int32_t n, const int32_t *p) {
  for (int32_t i = 0; i < n; ++i)
    out[i] = tinyml_add_i8(a[i], b[i], p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8],
                           p[9], p[10], p[11]);
}
void w_mul(const int8_t *a, const int8_t *b, int8_t *out, int32_t n, const int32_t *p) {
  for (int32_t i = 0; i < n; ++i)
    out[i] = tinyml_mul_i8(a[i], b[i], p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
}
void w_avgpool(const int32_t *sum, const int32_t *count, int8_t *out, int32_t n, int32_t lo,
               int32_t hi) {
  for (int32_t i = 0; i < n; ++i) out[i] = tinyml_avgpool_round_i8(sum[i], count[i], lo, hi);
}
void w_mean(const int32_t *sum, int8_t *out, int32_t n, const int32_t *p) {
  for (int32_t i = 0; i < n; ++i) out[i] = tinyml_mean_i8(sum[i], p[0], p[1], p[2], p[3], p[4]);
}
void w_softmax(const int8_t *in, int8_t *out, int32_t rows, int32_t depth, int32_t mult,
               int32_t shift, int32_t diff_min) {
  for (int32_t r = 0; r < rows; ++r)
    tinyml_softmax_i8(in + r * depth, out + r * depth, depth, mult, shift, diff_min);
}
void w_logistic(const int8_t *in, int8_t *out, int32_t n, const int32_t *p) {
  for (int32_t i = 0; i < n; ++i) out[i] = tinyml_logistic_i8(in[i], p[0], p[1], p[2], p[3]);
}
void w_hard_swish(const int8_t *in, int8_t *out, int32_t n, const int32_t *p) {
  for (int32_t i = 0; i < n; ++i)
    out[i] = tinyml_hard_swish_i8(in[i], p[0], p[1], p[2], p[3], p[4], p[5]);
}
"""

STRICT_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


# ---------------------------------------------------------------- C library --

@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    d = tmp_path_factory.mktemp("tinyml_math")
    (d / "wrap.c").write_text(WRAPPERS)
    so = d / "libtinyml_math.so"
    subprocess.run(["cc", *STRICT_FLAGS, "-pedantic", "-fPIC", "-shared",
                    "-I", os.path.dirname(HEADER), str(d / "wrap.c"), "-o", str(so)],
                   check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(so))


def _p(a: np.ndarray) -> ctypes.c_void_p:
    return a.ctypes.data_as(ctypes.c_void_p)


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def c_mbqm(lib, x, m, s) -> np.ndarray:
    x, m, s = (_i32(np.broadcast_to(v, np.shape(x))) for v in (x, m, s))
    out = np.empty_like(x)
    lib.w_mbqm(_p(x), _p(m), _p(s), _p(out), len(x))
    return out


def c_requant(lib, acc, mult, shift, zp, act) -> np.ndarray:
    """Requantizes acc whose last axis is the output channel."""
    acc = _i32(acc)
    mult, shift = _i32(mult), _i32(shift)
    out = np.empty(acc.shape, np.int8)
    lib.w_requant(_p(acc), _p(mult), _p(shift), len(mult), _p(out), acc.size, zp, *act)
    return out


def c_binary(lib, fn: str, a: np.ndarray, b: np.ndarray, params: dict) -> np.ndarray:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    p = _i32(list(params.values()))
    out = np.empty_like(a)
    getattr(lib, fn)(_p(a), _p(b), _p(out), a.size, _p(p))
    return out


# ------------------------------------------------- gemmlowp big-int models --

def ref_srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    n = a * b + ((1 << 30) if a * b >= 0 else 1 - (1 << 30))
    q = abs(n) >> 31  # division truncating toward zero
    return q if n >= 0 else -q


def ref_rdbpot(x: int, e: int) -> int:
    if e == 0:
        return x
    q, r = divmod(abs(x), 1 << e)
    q += 2 * r >= (1 << e)  # round half away from zero
    return q if x >= 0 else -q


def ref_mbqm(x: int, m: int, s: int) -> int:
    shifted = ((x << max(s, 0)) + 2**31) % 2**32 - 2**31  # int32 wrap-around
    return ref_rdbpot(ref_srdhm(shifted, m), max(-s, 0))


def test_srdhm_and_rdbpot_edges(lib) -> None:
    vals = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30,
            INT32_MAX - 1, INT32_MAX]
    for a in vals:
        for b in vals:
            assert lib.w_srdhm(a, b) == ref_srdhm(a, b), (a, b)
        for e in range(32):
            assert lib.w_rdbpot(a, e) == ref_rdbpot(a, e), (a, e)
    assert lib.w_srdhm(INT32_MIN, INT32_MIN) == INT32_MAX  # the saturating case
    assert [lib.w_rdbpot(x, 1) for x in (-3, -1, 1, 3)] == [-2, -1, 1, 2]  # ties away


def test_mbqm_random_and_edges(lib) -> None:
    rng = np.random.default_rng(0)
    n = 50000
    x = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    x[: n // 2] >>= rng.integers(0, 31, n // 2)  # many magnitudes
    m = rng.integers(1 << 30, INT32_MAX, n, endpoint=True)
    s = rng.integers(-31, 8, n)
    edges = [(xv, mv, sv)
             for xv in (INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX, 12345, -12345)
             for mv in (0, 1, 1 << 30, INT32_MAX, INT32_MIN)
             for sv in (-31, -30, -16, -1, 0, 1, 7, 30)]
    # exact ties: srdhm(2n, 2^30) == n, and n odd then hits .5 in the 1-bit right shift
    edges += [((2 * k + 1) * 2, 1 << 30, -1) for k in range(-40, 40)]
    ex, em, es = (np.array(c) for c in zip(*edges))
    x, m, s = np.concatenate([x, ex]), np.concatenate([m, em]), np.concatenate([s, es])
    got = c_mbqm(lib, x, m, s)
    want = [ref_mbqm(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)]
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------- Python-side params --

@pytest.mark.parametrize("real, expected", [
    (0.0, (0, 0)),
    (0.5, (1 << 30, 0)),                 # frexp 0.5 * 2^0
    (1.0, (1 << 30, 1)),                 # frexp 0.5 * 2^1
    (3.0, (3 << 29, 2)),                 # 0.75 * 2^2, 0.75 * 2^31 = 3 * 2^29
    (0.1, (1717986918, -3)),             # 0.8 * 2^31 = 1717986918.4 -> down
    (0.5 + 2.0**-32, ((1 << 30) + 1, 0)),  # q * 2^31 = 2^30 + 0.5: tie, away from 0
    (1.0 - 2.0**-40, (1 << 30, 1)),      # rounds to 2^31 -> halved, shift + 1
    (2.0**-31, (1 << 30, -30)),
    (2.0**-32, (1 << 30, -31)),          # smallest kept shift
    (2.0**-33, (0, 0)),                  # shift -32 < -31: flushed to zero
    (1e-12, (0, 0)),
])
def test_quantize_multiplier(real: float, expected: tuple[int, int]) -> None:
    assert qp.quantize_multiplier(real) == expected


def test_quantize_multiplier_roundtrip() -> None:
    rng = np.random.default_rng(1)
    for real in np.exp(rng.uniform(-20, 20, 2000)):
        m, s = qp.quantize_multiplier(float(real))
        assert 1 << 30 <= m < 1 << 31
        assert abs(m * 2.0 ** (s - 31) / real - 1) <= 2.0**-30


@pytest.mark.parametrize("act, scale, zp, expected", [
    ("none", 0.1, -10, (-128, 127)),
    ("relu", 0.1, -10, (-10, 127)),
    ("relu6", 0.1, -10, (-10, 50)),        # float32 6 / 0.1 rounds to 60
    ("relu_n1_to_1", 0.1, -10, (-20, 0)),
    ("relu6", 4.0, 0, (0, 2)),             # 6 / 4 = 1.5: tie, away from zero
    ("relu6", 0.01, 0, (0, 127)),          # clamped to int8
    ("relu", 0.1, -200, (-128, 127)),
])
def test_activation_range(act: str, scale: float, zp: int, expected: tuple[int, int]) -> None:
    assert qp.activation_range(act, scale, zp) == expected


def test_softmax_and_mean_params_by_hand() -> None:
    # 1/16 * 2^26 = 2^22 = 0.5 * 2^23; radius = floor(31 * 2^26 / 2^23) = 248
    assert qp.softmax_params(1 / 16) == (1 << 30, 23, -248)
    # in/out = 1 -> (2^30, 1); n = 16: multiplier * 2^4 / 16, shift 1 - 4
    assert qp.mean_params(0.5, 3, 0.5, -1, 16) == dict(
        num_elements=16, in_zp=3, multiplier=1 << 30, shift=-3, out_zp=-1)
    # n = 3: shift floor(log2 3) = 1, multiplier = 2^31 // 3
    assert qp.mean_params(0.5, 0, 0.5, 0, 3)["multiplier"] == (1 << 31) // 3


def test_params_use_float32_scales() -> None:
    """TFLM sees float32 scales: results must not change when the Python
    scales are rounded to float32 first."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        s = [math.exp(v) for v in rng.uniform(-6, 0, 3)]
        f = [float(np.float32(v)) for v in s]
        assert qp.add_params(s[0], 1, s[1], 2, s[2], 3, -128, 127) == \
            qp.add_params(f[0], 1, f[1], 2, f[2], 3, -128, 127)
        assert qp.mul_params(s[0], 1, s[1], 2, s[2], 3, -128, 127) == \
            qp.mul_params(f[0], 1, f[1], 2, f[2], 3, -128, 127)
        assert qp.mean_params(s[0], 1, s[1], 2, 49) == qp.mean_params(f[0], 1, f[1], 2, 49)
        beta = s[1] * 4
        assert qp.softmax_params(s[0], beta) == qp.softmax_params(f[0], float(np.float32(beta)))
        for a, b in zip(qp.conv_output_multipliers(s[0], s[1:], s[2]),
                        qp.conv_output_multipliers(f[0], f[1:], f[2])):
            np.testing.assert_array_equal(a, b)
        for act in ACTIVATIONS:
            assert qp.activation_range(act, s[2], 7) == qp.activation_range(act, f[2], 7)


# --------------------------------------------------------- compile checks --

def test_header_strict_host_compile(tmp_path) -> None:
    src = tmp_path / "use.c"
    src.write_text(WRAPPERS)
    subprocess.run(["cc", *STRICT_FLAGS, "-pedantic", "-Wconversion", "-c",
                    "-I", os.path.dirname(HEADER), str(src), "-o", str(tmp_path / "use.o")],
                   check=True)


def test_header_cortex_m7_compile(tmp_path) -> None:
    src = tmp_path / "use.c"
    src.write_text(WRAPPERS)
    obj = tmp_path / "use.o"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m7", "-mthumb",
                    "-mfloat-abi=hard", "-mfpu=fpv5-d16", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-c", "-I", os.path.dirname(HEADER), str(src), "-o", str(obj)], check=True)
    undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], check=True,
                               capture_output=True, text=True).stdout
    assert undefined.strip() == ""  # no libc / libgcc helper calls (e.g. 64-bit division)


# ------------------------------------------------------ TFLM bit-exactness --

def _scale(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform scale, deliberately NOT float32-rounded: the flatbuffer
    stores float32 and quant_params must round exactly as TFLM sees it."""
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _i8(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, shape, dtype=np.int8)


@pytest.mark.parametrize("seed", range(8))
def test_softmax_matches_tflm(lib, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, depth = [(1, 1), (3, 10), (2, 100), (4, 7), (1, 1000), (5, 2), (2, 33), (1, 12)][seed]
    s_in = _scale(rng, 0.002, 2.0)
    beta = [1.0, 1.0, 0.5, 2.0, 1.0, 1.0, 0.3, 1.0][seed]
    x = _i8(rng, (rows, depth))
    if seed == 3:
        x[:, :3] = x[:, :1]  # ties for the max
    model = build_single_op_model(
        "SOFTMAX",
        [dict(shape=x.shape, dtype=np.int8, scale=s_in, zero_point=int(rng.integers(-128, 128)))],
        [dict(shape=x.shape, dtype=np.int8, scale=1 / 256, zero_point=-128)], beta=beta)
    (want,) = run_tflm(model, [x])

    mult, shift, diff_min = qp.softmax_params(s_in, beta)
    got = np.empty_like(x)
    lib.w_softmax(_p(x), _p(got), rows, depth, mult, shift, diff_min)
    np.testing.assert_array_equal(got, want)


def _binary_case(rng: np.random.Generator, op: str, seed: int):
    shape2 = (1, 6, 5, 4) if seed % 2 == 0 else (1, 1, 1, 4)  # odd seeds broadcast
    a, b = _i8(rng, (1, 6, 5, 4)), _i8(rng, shape2)
    s1, s2, s_out = (_scale(rng, 0.005, 0.5) for _ in range(3))
    if seed == 2:
        s2 = s1  # equal input scales: multipliers exactly 0.5
    zp1, zp2, zp_out = (int(v) for v in rng.integers(-128, 128, 3))
    act = ACTIVATIONS[seed % 4]
    m = ModelBuilder()
    t1 = m.add_tensor(a.shape, np.int8, scale=s1, zero_point=zp1)
    t2 = m.add_tensor(b.shape, np.int8, scale=s2, zero_point=zp2)
    to = m.add_tensor(a.shape, np.int8, scale=s_out, zero_point=zp_out)
    m.add_operator(op, [t1, t2], [to], fused_activation_function=act.upper())
    (want,) = run_tflm(m.build([t1, t2], [to]), [a, b])
    args = (s1, zp1, s2, zp2, s_out, zp_out, *qp.activation_range(act, s_out, zp_out))
    return a, np.broadcast_to(b, a.shape), args, want


@pytest.mark.parametrize("seed", range(8))
def test_add_matches_tflm(lib, seed: int) -> None:
    a, b, args, want = _binary_case(np.random.default_rng(100 + seed), "ADD", seed)
    np.testing.assert_array_equal(c_binary(lib, "w_add", a, b, qp.add_params(*args)), want)


@pytest.mark.parametrize("seed", range(8))
def test_mul_matches_tflm(lib, seed: int) -> None:
    a, b, args, want = _binary_case(np.random.default_rng(200 + seed), "MUL", seed)
    np.testing.assert_array_equal(c_binary(lib, "w_mul", a, b, qp.mul_params(*args)), want)


@pytest.mark.parametrize("hw, keep_dims", [((7, 7), True), ((4, 4), True), ((3, 5), True),
                                           ((1, 1), True), ((5, 5), False), ((12, 10), True)])
def test_mean_matches_tflm(lib, hw: tuple[int, int], keep_dims: bool) -> None:
    rng = np.random.default_rng(hw[0] * 31 + hw[1])
    x = _i8(rng, (1, *hw, 6))
    s_in, s_out = _scale(rng, 0.01, 0.2), _scale(rng, 0.005, 0.2)
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    m = ModelBuilder()
    t_in = m.add_tensor(x.shape, np.int8, scale=s_in, zero_point=zp_in)
    t_axis = m.add_tensor([2], np.int32, data=[1, 2])
    t_out = m.add_tensor([1, 1, 1, 6] if keep_dims else [1, 6], np.int8,
                         scale=s_out, zero_point=zp_out)
    m.add_operator("MEAN", [t_in, t_axis], [t_out], keep_dims=keep_dims)
    (want,) = run_tflm(m.build([t_in], [t_out]), [x])

    p = _i32(list(qp.mean_params(s_in, zp_in, s_out, zp_out, hw[0] * hw[1]).values()))
    sums = _i32(x.astype(np.int32).sum(axis=(1, 2)))
    got = np.empty(sums.shape, np.int8)
    lib.w_mean(_p(sums), _p(got), sums.size, _p(p))
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def _pool_sums(x: np.ndarray, k: int, stride: int, padding: str):
    """Window sums and element counts exactly as TFLM's AveragePool clips them."""
    _, h, w, c = x.shape
    if padding == "SAME":
        oh, ow = -(-h // stride), -(-w // stride)
        ph = max((oh - 1) * stride + k - h, 0) // 2
        pw = max((ow - 1) * stride + k - w, 0) // 2
    else:
        oh, ow, ph, pw = (h - k) // stride + 1, (w - k) // stride + 1, 0, 0
    sums = np.zeros((1, oh, ow, c), np.int32)
    counts = np.zeros((1, oh, ow, c), np.int32)
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * stride - ph, ox * stride - pw
            win = x[0, max(y0, 0):min(y0 + k, h), max(x0, 0):min(x0 + k, w)].astype(np.int32)
            sums[0, oy, ox] = win.sum(axis=(0, 1))
            counts[0, oy, ox] = win.shape[0] * win.shape[1]
    return sums, counts


@pytest.mark.parametrize("k, stride, padding, act", [
    (3, 2, "SAME", "none"), (3, 2, "VALID", "relu"), (2, 2, "VALID", "none"),
    (4, 1, "SAME", "relu6"), (9, 1, "VALID", "none"), (5, 3, "SAME", "relu_n1_to_1")])
def test_avgpool_matches_tflm(lib, k: int, stride: int, padding: str, act: str) -> None:
    rng = np.random.default_rng(k * 10 + stride)
    x = _i8(rng, (1, 9, 9, 3))
    s, zp = _scale(rng, 0.01, 0.2), int(rng.integers(-20, 20))
    sums, counts = _pool_sums(x, k, stride, padding)
    m = ModelBuilder()
    t_in = m.add_tensor(x.shape, np.int8, scale=s, zero_point=zp)
    t_out = m.add_tensor(sums.shape, np.int8, scale=s, zero_point=zp)
    m.add_operator("AVERAGE_POOL_2D", [t_in], [t_out], padding=padding, stride_w=stride,
                   stride_h=stride, filter_width=k, filter_height=k,
                   fused_activation_function=act.upper())
    (want,) = run_tflm(m.build([t_in], [t_out]), [x])

    lo, hi = qp.activation_range(act, s, zp)
    got = np.empty(sums.shape, np.int8)
    lib.w_avgpool(_p(sums), _p(counts), _p(got), sums.size, lo, hi)
    np.testing.assert_array_equal(got, want)


def _weights_case(rng: np.random.Generator, n_out: int, n_in: int, per_channel: bool):
    """Random int8 weights, per-tensor or per-channel scales, int32 bias."""
    w = _i8(rng, (n_out, n_in))
    w[w == -128] = -127  # symmetric weights
    s_in = _scale(rng, 0.01, 0.1)
    s_w = np.array([_scale(rng, 0.001, 0.02) for _ in range(n_out if per_channel else 1)])
    bias = rng.integers(-5000, 5000, n_out, dtype=np.int32)
    s_out = _scale(rng, 0.02, 0.3) * float(s_w.mean()) / 0.01
    return w, s_in, s_w, bias, s_out


@pytest.mark.parametrize("seed, per_channel", [(0, False), (1, False), (2, True), (3, True)])
def test_fully_connected_requant_matches_tflm(lib, seed: int, per_channel: bool) -> None:
    rng = np.random.default_rng(300 + seed)
    w, s_in, s_w, bias, s_out = _weights_case(rng, 8, 40, per_channel)
    zp_in, zp_out = (int(v) for v in rng.integers(-100, 100, 2))
    act = ACTIVATIONS[seed]
    x = _i8(rng, (3, 40))
    m = ModelBuilder()
    t_in = m.add_tensor(x.shape, np.int8, scale=s_in, zero_point=zp_in)
    t_w = m.add_tensor(w.shape, np.int8, scale=s_w, zero_point=0, data=w)
    t_b = m.add_tensor([8], np.int32, scale=np.float32(s_in) * s_w.astype(np.float32),
                       zero_point=0, data=bias)
    t_out = m.add_tensor([3, 8], np.int8, scale=s_out, zero_point=zp_out)
    m.add_operator("FULLY_CONNECTED", [t_in, t_w, t_b], [t_out],
                   fused_activation_function=act.upper())
    (want,) = run_tflm(m.build([t_in], [t_out]), [x])

    acc = (x.astype(np.int32) - zp_in) @ w.T.astype(np.int32) + bias
    mult, shift = qp.fully_connected_multiplier(s_in, s_w, s_out, num_channels=8)
    got = c_requant(lib, acc, mult, shift, zp_out, qp.activation_range(act, s_out, zp_out))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed, per_channel", [(0, True), (1, True), (2, False), (3, True)])
def test_conv1x1_requant_matches_tflm(lib, seed: int, per_channel: bool) -> None:
    rng = np.random.default_rng(400 + seed)
    w, s_in, s_w, bias, s_out = _weights_case(rng, 6, 8, per_channel)
    zp_in, zp_out = (int(v) for v in rng.integers(-100, 100, 2))
    act = ACTIVATIONS[seed]
    x = _i8(rng, (1, 5, 5, 8))
    m = ModelBuilder()
    t_in = m.add_tensor(x.shape, np.int8, scale=s_in, zero_point=zp_in)
    t_w = m.add_tensor([6, 1, 1, 8], np.int8, scale=s_w, zero_point=0, data=w)
    t_b = m.add_tensor([6], np.int32, scale=np.float32(s_in) * s_w.astype(np.float32),
                       zero_point=0, data=bias)
    t_out = m.add_tensor([1, 5, 5, 6], np.int8, scale=s_out, zero_point=zp_out)
    m.add_operator("CONV_2D", [t_in, t_w, t_b], [t_out], padding="VALID", stride_w=1,
                   stride_h=1, fused_activation_function=act.upper())
    (want,) = run_tflm(m.build([t_in], [t_out]), [x])

    acc = (x.astype(np.int32) - zp_in) @ w.T.astype(np.int32) + bias
    mult, shift = qp.conv_output_multipliers(s_in, s_w, s_out, num_channels=6)
    got = c_requant(lib, acc, mult, shift, zp_out, qp.activation_range(act, s_out, zp_out))
    np.testing.assert_array_equal(got, want)


def test_fc_per_tensor_scale_product_matches_tflm(lib) -> None:
    """Per-tensor FC: TFLM sources have multiplied input_scale * filter_scale
    in float32 or in double depending on the version. Pick scales where the
    two give different multipliers, and bias values (inputs at the zero
    point, so acc == bias) where the outputs differ; the pinned tflite-micro
    must agree with quant_params (double) and not with the float32 variant."""
    rng = np.random.default_rng(7)
    accs = np.arange(-2**22, 2**22, dtype=np.int32)
    for _ in range(1000):
        s_in, s_w, s_out = _scale(rng, 0.01, 0.1), _scale(rng, 1e-5, 1e-4), _scale(rng, 0.01, 0.1)
        m, sh = qp.fully_connected_multiplier(s_in, [s_w], s_out)
        m32, sh32 = qp.quantize_multiplier(
            float(np.float32(s_in) * np.float32(s_w)) / float(np.float32(s_out)))
        y, y32 = c_mbqm(lib, accs, m[0], sh[0]), c_mbqm(lib, accs, m32, sh32)
        differ = accs[(y != y32) & (np.abs(y) < 100)]
        if differ.size >= 8:
            break
    else:
        pytest.fail("no discriminating scales found")
    bias = differ[:: differ.size // 8][:8]
    zp_in = 5
    b = ModelBuilder()
    t_in = b.add_tensor([1, 4], np.int8, scale=s_in, zero_point=zp_in)
    t_w = b.add_tensor([8, 4], np.int8, scale=s_w, data=_i8(rng, (8, 4)))
    t_b = b.add_tensor([8], np.int32, scale=float(np.float32(s_in) * np.float32(s_w)),
                       data=bias)
    t_out = b.add_tensor([1, 8], np.int8, scale=s_out, zero_point=0)
    b.add_operator("FULLY_CONNECTED", [t_in, t_w, t_b], [t_out])
    (want,) = run_tflm(b.build([t_in], [t_out]), [np.full((1, 4), zp_in, np.int8)])

    np.testing.assert_array_equal(c_requant(lib, bias[None], m, sh, 0, (-128, 127)), want)
    assert not np.array_equal(c_requant(lib, bias[None], [m32], [sh32], 0, (-128, 127)), want)


def _relu6_tie_scales() -> list[float]:
    """float32 scales where float32 6/scale is an exact .5 tie (rounded away
    from zero) but the double quotient is just below it."""
    out = []
    for k in range(2, 60):
        s0 = np.float32(6 / (k + 0.5))
        for s in (np.nextafter(s0, np.float32(0)), s0, np.nextafter(s0, np.float32(1))):
            if np.float32(6) / s == k + 0.5 and 6.0 / float(s) < k + 0.5:
                out.append(float(s))
    return out


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_range_matches_tflm(act: str) -> None:
    """A 1x1 AVERAGE_POOL_2D is the identity clamped to the activation range;
    feeding all 256 int8 values reveals TFLM's (act_min, act_max)."""
    rng = np.random.default_rng(len(act))
    ties = _relu6_tie_scales()[:8]
    assert len(ties) == 8
    cases = [(_scale(rng, 0.001, 0.5), int(rng.integers(-128, 128))) for _ in range(6)]
    cases += [(s, -100) for s in ties]  # zp keeps 6/s unclamped
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    for s, zp in cases:
        m = ModelBuilder()
        t_in = m.add_tensor(x.shape, np.int8, scale=s, zero_point=zp)
        t_out = m.add_tensor(x.shape, np.int8, scale=s, zero_point=zp)
        m.add_operator("AVERAGE_POOL_2D", [t_in], [t_out], padding="VALID", stride_w=1,
                       stride_h=1, filter_width=1, filter_height=1,
                       fused_activation_function=act.upper())
        (y,) = run_tflm(m.build([t_in], [t_out]), [x])
        assert (int(y.min()), int(y.max())) == qp.activation_range(act, s, zp), (s, zp)


def _unary_matches_tflm(lib, op: str, wrapper: str, cases, params_fn) -> None:
    """All 256 int8 inputs through a one-op model and through the C helper."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for s_in, zp_in, s_out, zp_out in cases:
        model = build_single_op_model(
            op, [dict(shape=x.shape, dtype=np.int8, scale=s_in, zero_point=zp_in)],
            [dict(shape=x.shape, dtype=np.int8, scale=s_out, zero_point=zp_out)])
        (want,) = run_tflm(model, [x])
        p = _i32(list(params_fn(s_in, zp_in, s_out, zp_out).values()))
        got = np.empty_like(x)
        getattr(lib, wrapper)(_p(x), _p(got), x.size, _p(p))
        np.testing.assert_array_equal(got, want, err_msg=f"{op} {(s_in, zp_in, s_out, zp_out)}")


def test_logistic_matches_tflm(lib) -> None:
    """gemmlowp Q4.27 logistic path, from saturating everywhere to never."""
    rng = np.random.default_rng(11)
    cases = [(_scale(rng, 0.0005, 2.0), int(rng.integers(-128, 128)), 1 / 256, -128) for _ in range(40)]
    cases += [(1 / 16, 0, 1 / 256, -128), (0.05, -7, 1 / 256, -128), (2.0**-20, 3, 1 / 256, -128)]
    _unary_matches_tflm(lib, "LOGISTIC", "w_logistic", cases,
                        lambda s_in, zp_in, _s, _zp: qp.logistic_params(s_in, zp_in))


def test_hard_swish_matches_tflm(lib) -> None:
    """Reluish exponents from negative to large positive; output exponents <= 0."""
    rng = np.random.default_rng(12)
    cases = []
    for _ in range(40):
        s_in = _scale(rng, 0.0005, 3.0)
        s_out = s_in * _scale(rng, 0.01, 3.0)
        cases.append((s_in, int(rng.integers(-128, 128)), s_out, int(rng.integers(-128, 128))))
    # output exponent 0 with zero points at both ends; output exponent -17 (int16 mask wrap)
    cases += [(0.1, -128, 0.1 / 127, 127), (0.1, 127, 0.1 / 127, -128), (0.05, -128, 60.0, -128)]
    _unary_matches_tflm(lib, "HARD_SWISH", "w_hard_swish", cases, qp.hard_swish_params)
