"""Run generated C on the build machine: compile with `cc` into a shared library, call via ctypes."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from project_api.arm_build import HOST_CC_HINT
from tvm_tinyml.errors import TinyMLError

HOST_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"]
HOST_LIBS = ["-lm"]  # float model ends (LOG_SOFTMAX) call expf/logf


class HostModel:
    """A compiled artifact loaded into this process."""

    def __init__(self, artifact) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="tvm-tinyml-")
        directory = artifact.export(self._tmp.name)
        name = artifact.name
        library = Path(self._tmp.name) / f"lib{name}.so"
        cc = shutil.which("cc")
        if cc is None:
            raise TinyMLError(f"cc not found on PATH (it runs the model on the host): {HOST_CC_HINT}")
        command = [cc, *HOST_CFLAGS, "-I", str(directory), str(directory / f"{name}.c"), *HOST_LIBS, "-o", str(library)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"host compile of {name}.c failed:\n{result.stderr}")
        self._lib = ctypes.CDLL(str(library))
        self._run = getattr(self._lib, f"{name}_run")
        self._run.argtypes = [ctypes.c_void_p]
        self._run.restype = ctypes.c_int
        self._arena = np.zeros(artifact.memory.arena_bytes + 16, np.uint8)
        meta = artifact.metadata
        self._inputs = meta["inputs"]
        self._outputs = meta["outputs"]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One inference; inputs and outputs are int8 arrays in model order."""
        if len(inputs) != len(self._inputs):
            raise TinyMLError(f"model takes {len(self._inputs)} inputs, got {len(inputs)}")
        for spec, value in zip(self._inputs, inputs):
            data = np.ascontiguousarray(value, dtype=spec["dtype"]).reshape(-1).view(np.uint8)
            self._arena[spec["offset"] : spec["offset"] + data.size] = data
        status = self._run(self._arena.ctypes.data)
        if status != 0:
            raise RuntimeError(f"model run returned {status}")
        outputs = []
        for spec in self._outputs:
            size = int(np.prod(spec["shape"])) * np.dtype(spec["dtype"]).itemsize
            raw = self._arena[spec["offset"] : spec["offset"] + size].copy()
            outputs.append(raw.view(spec["dtype"]).reshape(spec["shape"]))
        return outputs
