"""Write the README's TFLite operator table: every builtin the frontend accepts, the options its
tests cover, and the test files that check it bit-exact against TFLite Micro.

    python tools/op_table.py            # print the table
    python tools/op_table.py --write    # replace the table in README.md (between its markers)

The "tested in" column is read from the test files themselves (each names the builtin it builds),
so an operator without a test shows up as untested; tests/test_op_table.py keeps both in sync.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tvm_tinyml.frontend import SUPPORTED_TFLITE_OPS  # noqa: E402

BEGIN, END = "<!-- op-table -->", "<!-- /op-table -->"

OPTIONS = {
    "CONV_2D": "SAME/VALID, strides, dilation, fused RELU/RELU6, per-channel weights, absent bias",
    "DEPTHWISE_CONV_2D": "SAME/VALID, strides, dilation, depth multiplier 1/2, in place or streaming",
    "TRANSPOSE_CONV": "per-channel/per-tensor weights, optional bias, SAME/VALID, strides 1-3, fused RELU/RELU6",
    "FULLY_CONNECTED": "rank 2-4 input, keep_num_dims, fused activations",
    "BATCH_MATMUL": "adj_x/adj_y, activation or constant RHS, broadcast batch dims",
    "ADD": "activation x activation / constant tensor / 0-d scalar, broadcast to rank 6, fused activations",
    "SUB": "as ADD",
    "MUL": "as ADD",
    "MAXIMUM": "raw int8 compare (as TFLM), every operand form, broadcast",
    "MINIMUM": "as MAXIMUM",
    "SQUARED_DIFFERENCE": "every operand form, broadcast",
    "RELU": "every input value",
    "RELU6": "raw clamp (as TFLM)",
    "LEAKY_RELU": "positive, negative and zero alpha",
    "PRELU": "alpha [C], [1,1,C], [H,W,C], scalar; constant or activation",
    "LOGISTIC": "output zero point -128",
    "TANH": "int8 path",
    "HARD_SWISH": "every input value, several quantizations",
    "ELU": "256-entry table as TFLM's Prepare",
    "RSQRT": "256-entry table as TFLM's Prepare",
    "AVERAGE_POOL_2D": "SAME/VALID, strides, fused activations",
    "MAX_POOL_2D": "SAME/VALID, strides, fused activations",
    "MEAN": "any axes, keep_dims, requantized",
    "SUM": "any axes, keep_dims, requantized",
    "REDUCE_MAX": "any axes, keep_dims",
    "REDUCE_MIN": "any axes, keep_dims",
    "ARG_MAX": "any axis, int32 output",
    "ARG_MIN": "any axis, int32 output",
    "RESHAPE": "view (no kernel)",
    "SQUEEZE": "view",
    "EXPAND_DIMS": "view",
    "TRANSPOSE": "rank 2-5",
    "CONCATENATION": "any axis, 2-5 inputs",
    "PACK": "any axis",
    "UNPACK": "any axis",
    "SPLIT": "several outputs",
    "SPLIT_V": "several outputs, -1 size",
    "SLICE": "size -1",
    "STRIDED_SLICE": "negative strides, begin/end/shrink masks",
    "GATHER": "axis, batch_dims, constant or input int32 indices",
    "PAD": "any axis, rank 1-5; spatial pads fold into the next convolution",
    "PADV2": "as PAD, explicit pad value",
    "MIRROR_PAD": "REFLECT, SYMMETRIC",
    "SPACE_TO_DEPTH": "block sizes",
    "DEPTH_TO_SPACE": "block sizes",
    "SPACE_TO_BATCH_ND": "3-D and 4-D (padding bytes: TFLM leaves them undefined; ours are the zero point)",
    "BATCH_TO_SPACE_ND": "3-D and 4-D, crops",
    "RESIZE_NEAREST_NEIGHBOR": "align_corners, half_pixel_centers",
    "RESIZE_BILINEAR": "align_corners, half_pixel_centers, up/down-sampling",
    "SOFTMAX": "beta, rank 2-4",
    "LOG_SOFTMAX": "int8 (scale 16/256, zero point 127) and float after DEQUANTIZE",
    "QUANTIZE": "int8->int8, uint8<->int8, float->int8",
    "DEQUANTIZE": "int8->float at model ends",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "integer LSTM (int16 cell), batch/time major, cell clip; state reset per inference",
    "SVDF": "int16 or int8 state, rank 1-4; state reset per inference",
}


def tested_in(op: str) -> list[str]:
    """Test files that name the builtin as a string literal."""
    pattern = re.compile(rf"[\"']{op}[\"']")
    return sorted(p.name for p in (ROOT / "tests").glob("test_*.py") if pattern.search(p.read_text()))


def table() -> str:
    rows = ["| TFLite builtin | options covered | tested in (bit-exact vs TFLite Micro) |", "|---|---|---|"]
    for op in sorted(SUPPORTED_TFLITE_OPS):
        rows.append(f"| {op} | {OPTIONS.get(op, '-')} | {', '.join(tested_in(op)) or 'untested'} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    if not args.write:
        print(table())
        return
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:start] + "\n" + table() + "\n" + text[end:])


if __name__ == "__main__":
    main()
