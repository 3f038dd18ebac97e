"""Regression tests for the hostile-input defects a fuzzer found: each bad model or flag value is
refused before TVM, TFLite Micro or onnxruntime sees it, in exactly one stderr line naming the
problem, with exit 2 (and, under --json, a JSON error object as the last stdout line)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from input_fuzz import onnx_seed, write_bad_logs
from tflite_builder import ModelBuilder
from tvm_tinyml.cli import main
from tvm_tinyml.errors import TinyMLError
from tvm_tinyml.reference_child import run_reference

I8 = np.int8


def refusal(capsys, argv: list[str], code: int = 2) -> str:
    """Run the CLI; require exit `code` and one stderr line; return that line."""
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    if "--json" in argv:
        record = json.loads(captured.out.strip().splitlines()[-1])
        assert record["exit_code"] == code and record["error"]
    return lines[0]


def small_model(tmp_path: Path, *, shape=(1, 4, 4, 3), in_scale=0.05, in_zp=-7, weight_bytes=None, out_const=False) -> str:
    """input -> 1x1 conv (4 channels) -> output, with one property made wrong by the caller."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_tensor(list(shape), I8, scale=in_scale, zero_point=in_zp)
    w = b.add_tensor([4, 1, 1, 3], I8, scale=[0.01] * 4, data=rng.integers(-100, 100, (4, 1, 1, 3)))
    bias = b.add_tensor([4], np.int32, scale=[0.0005] * 4, data=np.zeros(4))
    out_shape = [1, 4, 4, 4]
    y = b.add_tensor(out_shape, I8, scale=0.1, zero_point=2, data=np.zeros(out_shape) if out_const else None)
    b.add_operator("CONV_2D", [x, w, bias], [y], padding="VALID", stride_w=1, stride_h=1)
    data = b.build([x], [y])
    if weight_bytes is not None:  # cut the weights buffer short (it holds 12 bytes)
        data = _truncated_buffer(data, 12, weight_bytes)
    path = tmp_path / "model.tflite"
    path.write_bytes(data)
    return str(path)


def _truncated_buffer(data: bytes, length: int, keep: int) -> bytes:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from input_fuzz import _pack

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    buf = next(b for b in model.buffers if b.data is not None and len(b.data) == length)
    buf.data = buf.data[:keep]
    return _pack(model)


@pytest.mark.parametrize("dim", [-1, 0, (1 << 31) - 1], ids=["negative", "zero", "huge"])
def test_bad_dimension(tmp_path, capsys, dim):
    line = refusal(capsys, ["verify", small_model(tmp_path, shape=(1, dim, 4, 3)), "--json"])
    assert "tensor #0 't0'" in line and ("dimension 1 is" in line or "more than any microcontroller" in line)


@pytest.mark.parametrize("scale", [0.0, -0.05, float("nan")], ids=["zero", "negative", "nan"])
def test_bad_scale(tmp_path, capsys, scale):
    line = refusal(capsys, ["compile", small_model(tmp_path, in_scale=scale), "-o", str(tmp_path / "out")])
    assert "tensor #0 't0': quantization scale" in line and "is not a finite positive number" in line


def test_zero_point_out_of_range(tmp_path, capsys):
    line = refusal(capsys, ["verify", small_model(tmp_path, in_zp=200)])
    assert "zero point 200 is outside the int8 range" in line


def test_weights_shorter_than_their_shape(tmp_path, capsys):
    line = refusal(capsys, ["verify", small_model(tmp_path, weight_bytes=5)])
    assert "its data has 5 B but shape [4, 1, 1, 3] of int8 needs 12 B" in line


def test_activation_turned_into_a_constant(tmp_path, capsys):
    line = refusal(capsys, ["verify", small_model(tmp_path, out_const=True)])
    assert "operator #0 (CONV_2D) writes tensor #3" in line and "constant data" in line


def test_operators_out_of_order(tmp_path, capsys):
    b = ModelBuilder()
    x = b.add_tensor([1, 4, 4, 3], I8, scale=0.05, zero_point=0)
    y = b.add_tensor([1, 4, 4, 3], I8, scale=0.05, zero_point=0)
    z = b.add_tensor([1, 4, 4, 3], I8, scale=0.05, zero_point=0)
    b.add_operator("RELU", [y], [z])  # reads y before the next operator writes it
    b.add_operator("RELU", [x], [y])
    path = tmp_path / "order.tflite"
    path.write_bytes(b.build([x], [z]))
    line = refusal(capsys, ["verify", str(path)])
    assert "operator #0 (RELU) reads tensor #1 't1' before operator #1 (RELU) writes it (operators out of order)" in line


def test_onnx_graph_without_outputs(tmp_path, capsys):
    model = onnx.load_from_string(onnx_seed())
    del model.graph.output[:]
    path = tmp_path / "no_outputs.onnx"
    path.write_bytes(model.SerializeToString())
    assert "the graph has no outputs" in refusal(capsys, ["verify", str(path), "--json"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--inputs", "0"], "argument --inputs: 0 is less than 1"),
        (["--inputs", "-1"], "argument --inputs: -1 is less than 1"),
        (["--inputs", "x"], "argument --inputs: 'x' is not a whole number"),
        (["--seed", "-3"], "argument --seed: -3 is less than 0"),
        (["--patch", "1,2x0"], "a patch grid needs at least 1x1 patches"),
        (["--patch-mac-overhead", "-1"], "-1 is not a fraction between 0 and 10"),
        (["--patch-mac-overhead", "nan"], "nan is not a fraction between 0 and 10"),
        (["--tuning-log", "{tmp}/random.log"], "random.log: line 1 is not a JSON record (UnicodeDecodeError)"),
        (["--tuning-log", "{tmp}/array.log"], "array.log: line 1 is not a tuning record"),
        (["--tuning-log", "{tmp}/truncated.log"], "truncated.log: line 1 is not a JSON record (JSONDecodeError)"),
        (["--tuning-log", "{tmp}/badconfig.log"], "badconfig.log: line 1 is not a tuning record"),
    ],
)
def test_bad_flag_values(tmp_path, capsys, flags, message):
    write_bad_logs(tmp_path, np.random.default_rng(0))
    argv = ["verify", small_model(tmp_path), *[f.replace("{tmp}", str(tmp_path)) for f in flags], "--json"]
    assert message in refusal(capsys, argv)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compile", "{model}", "-o", ""], "empty output directory path"),
        (["compile", "{model}", "-o", "/proc/tvm-tinyml/out"], "cannot create the directory"),
        (["memory", "{model}", "--plot", "/proc/tvm-tinyml/arena.png"], "cannot write the file"),
        (["tune", "{model}", "--board", "qemu-m7", "--trials", "-5", "--log", "{tmp}/t.jsonl"], "argument --trials: -5 is less than 1"),
    ],
)
def test_bad_paths_and_counts(tmp_path, capsys, argv, message):
    model = small_model(tmp_path)
    line = refusal(capsys, [a.replace("{model}", model).replace("{tmp}", str(tmp_path)) for a in argv])
    assert message in line


def test_unexpected_exception_is_one_internal_error_line(tmp_path, capsys, monkeypatch):
    import tvm_tinyml.builder

    def broken(*args, **kwargs):
        raise KeyError("t7")

    monkeypatch.setattr(tvm_tinyml.builder, "build", broken)
    line = refusal(capsys, ["compile", small_model(tmp_path), "-o", str(tmp_path / "o"), "--json"], code=3)
    assert line.startswith("tvm-tinyml: error: internal error: KeyError: 't7' (please report; rerun with TVM_TINYML_DEBUG=1")


def test_reference_that_does_not_finish_is_one_error(tmp_path):
    model = small_model(tmp_path)
    with pytest.raises(TinyMLError, match=r"the reference \(TFLite Micro\) did not finish within 0 s"):
        run_reference("tflite", model, [[np.zeros((1, 4, 4, 3), I8)]], timeout_sec=0.01)


def test_declared_shape_disagrees_with_the_operator(tmp_path, capsys):
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.add_tensor([1, 16], I8, scale=0.05, zero_point=0)
    w = b.add_tensor([4, 16], I8, scale=0.01, data=rng.integers(-100, 100, (4, 16)))
    y = b.add_tensor([1, 4096], I8, scale=0.1, zero_point=2)  # the weights make 4 outputs
    b.add_operator("FULLY_CONNECTED", [x, w, -1], [y])
    path = tmp_path / "fc.tflite"
    path.write_bytes(b.build([x], [y]))
    line = refusal(capsys, ["verify", str(path)])
    assert "operator #0 (FULLY_CONNECTED): output tensor #2 't2' is declared [1, 4096] but the operator computes [1, 4]" in line


def test_failed_tvm_import_leaves_no_warning_behind(tmp_path, capfd):
    """TVM's importer fails inside an open BlockBuilder block (ADD given one input); the builder's
    "destroyed with remaining blocks" warning must not reach fd 2 at a later garbage collection."""
    import gc

    b = ModelBuilder()
    x, y, z = (b.add_tensor([1, 4], I8, scale=0.05, zero_point=0) for _ in range(3))
    b.add_operator("RELU", [x], [y])
    b.add_operator("ADD", [y], [z])
    path = tmp_path / "add.tflite"
    path.write_bytes(b.build([x], [z]))
    assert main(["verify", str(path)]) == 2
    gc.collect()
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "operator #1 (ADD): TVM import failed: input tensors length should be 2" in lines[0], lines


def test_operator_options_outside_the_file(tmp_path, capsys):
    """A CONV_2D whose options table points past the end of the file (flatbuffers reads options
    unchecked, so TVM's importer would fail mid-read) is refused by the validator."""
    import struct

    import tflite

    data = bytearray(Path(small_model(tmp_path)).read_bytes())
    options = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0).Operators(0).BuiltinOptions()
    struct.pack_into("<i", data, options.Pos, options.Pos - len(data) - 64)  # its vtable beyond the end
    path = tmp_path / "options.tflite"
    path.write_bytes(bytes(data))
    line = refusal(capsys, ["verify", str(path), "--json"])
    assert "operator #0 (CONV_2D): its options table lies outside the file (truncated or corrupt)" in line
