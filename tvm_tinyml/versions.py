"""`tvm-tinyml --version`: the package, the Python packages it runs on, and the external tools."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata

PACKAGES = ["tvm-tinyml", "apache-tvm", "tflite-micro", "onnxruntime"]
# Tool -> how to install it (Debian); each is needed by some commands only.
TOOLS = {
    "cc": ("verify, run --board host, the QEMU plugin", "apt-get install gcc"),
    "arm-none-eabi-gcc": ("run, tune, compile --project", "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"),
    "qemu-system-arm": ("run --board qemu-m7|qemu-m4, tune", "apt-get install qemu-system-arm"),
    "openocd": ("run --board stm32f746 (flashing)", "apt-get install openocd"),
    "cmake": ("building an export with its CMakeLists.txt", "apt-get install cmake"),
}
_TIMEOUT_SEC = 10


def package_version(name: str) -> str:
    """The installed version of a distribution, or 'not installed'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_version(tool: str) -> str:
    """The first line of `tool --version`, or where to get the tool."""
    path = shutil.which(tool)
    if path is None:
        used_by, install = TOOLS[tool]
        return f"not found (for {used_by}): {install}"
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=_TIMEOUT_SEC)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{path}: cannot run --version ({err})"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else path


def version_report() -> str:
    """One line per package and tool."""
    width = max(map(len, PACKAGES + list(TOOLS)))
    rows = [f"{name:<{width}}  {package_version(name)}" for name in PACKAGES]
    rows += [f"{tool:<{width}}  {tool_version(tool)}" for tool in TOOLS]
    return "\n".join(rows)
