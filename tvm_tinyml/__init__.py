"""tvm-tinyml: int8 models -> standalone C for Cortex-M microcontrollers, with Apache TVM."""

from tvm_tinyml import targets
from tvm_tinyml.build import Artifact, MemoryReport, build
from tvm_tinyml.errors import TinyMLError, UnsupportedOperatorError
from tvm_tinyml.frontend import from_onnx, from_tflite

__all__ = ["Artifact", "MemoryReport", "TinyMLError", "UnsupportedOperatorError", "build", "from_onnx", "from_tflite", "targets"]
