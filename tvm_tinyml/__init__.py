"""tvm-tinyml: int8 models -> standalone C for Cortex-M microcontrollers, with Apache TVM."""

from __future__ import annotations

import importlib

from tvm_tinyml import targets
from tvm_tinyml.errors import TinyMLError, UnsupportedOperatorError

# Heavy entry points load on first use, so `relax_passes` can use our small helper modules
# (quant_params, errors) without importing the whole compiler.
_LAZY = {
    "Artifact": "tvm_tinyml.builder",
    "MemoryReport": "tvm_tinyml.builder",
    "build": "tvm_tinyml.builder",
    "from_onnx": "tvm_tinyml.frontend",
    "from_tflite": "tvm_tinyml.frontend",
}

__all__ = ["TinyMLError", "UnsupportedOperatorError", "targets", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tvm_tinyml' has no attribute {name!r}")
