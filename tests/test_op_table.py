"""The README's operator table is the one tools/op_table.py writes, and every supported TFLite
builtin has its options described and at least one test file that builds it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tvm_tinyml.frontend import SUPPORTED_TFLITE_OPS

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("op_table", ROOT / "tools" / "op_table.py")
op_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(op_table)


def test_every_supported_op_is_described_and_tested():
    assert not SUPPORTED_TFLITE_OPS - set(op_table.OPTIONS), "describe the options of new ops in tools/op_table.py"
    assert not set(op_table.OPTIONS) - SUPPORTED_TFLITE_OPS
    assert [op for op in SUPPORTED_TFLITE_OPS if not op_table.tested_in(op)] == []


def test_readme_table_is_current():
    text = (ROOT / "README.md").read_text()
    start, end = text.index(op_table.BEGIN) + len(op_table.BEGIN), text.index(op_table.END)
    assert text[start:end].strip() == op_table.table(), "run: python tools/op_table.py --write"
