"""A new user's first hour: `python -m tvm_tinyml`, `--version`, progress only on a terminal, and one
line naming a missing tool with its `apt-get install` command instead of a traceback.

(The fresh `pip install <checkout>` check, which takes minutes, is tests/fresh_install.sh, a CI step.)
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
from importlib import metadata
from pathlib import Path

import pytest

from tvm_tinyml.cli import main
from tvm_tinyml.versions import PACKAGES, TOOLS

MODELS = Path(__file__).resolve().parent.parent / "models"
SMALL_MODEL = str(MODELS / "ad01_int8.tflite")
REPO = Path(__file__).resolve().parent.parent


def _python_m(*args: str, stderr=subprocess.PIPE, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tvm_tinyml", *args], stdout=subprocess.PIPE, stderr=stderr, text=True,
                          env=environment, timeout=600)


def _path_without(tmp_path: Path, *tools: str) -> str:
    """A PATH of one directory linking every program on the current PATH except `tools`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.listdir(directory):
            link = bin_dir / entry
            if entry not in tools and not link.exists():
                link.symlink_to(Path(directory) / entry)
    return str(bin_dir)


def test_python_m_is_the_console_script():
    result = _python_m("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: tvm-tinyml ")
    assert {"compile", "verify", "memory", "run", "tune", "--version"} <= set(result.stdout.replace(",", " ").replace("{", " ").replace("}", " ").split())


def test_version_names_package_tvm_and_tools():
    result = _python_m("--version")
    assert result.returncode == 0, result.stderr
    rows = dict(line.split(None, 1) for line in result.stdout.strip().splitlines())
    assert list(rows) == PACKAGES + list(TOOLS)
    assert rows["tvm-tinyml"] == metadata.version("tvm-tinyml")
    assert rows["apache-tvm"] == metadata.version("apache-tvm")
    assert "arm-none-eabi-gcc" in rows["arm-none-eabi-gcc"] and "QEMU emulator version" in rows["qemu-system-arm"]


def test_version_says_how_to_install_a_missing_tool(tmp_path):
    result = _python_m("--version", env={"PATH": _path_without(tmp_path, "qemu-system-arm")})
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("qemu-system-arm")]
    assert row.endswith("not found (for run --board qemu-m7|qemu-m4, tune): apt-get install qemu-system-arm")


def test_no_progress_without_a_terminal():
    result = _python_m("memory", SMALL_MODEL, "--patch", "auto", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def _stderr_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run `python -m tvm_tinyml ARGS` with stderr on a 100-column pseudo-terminal: (exit code, stdout, terminal text)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with open(os.devnull, "rb") as stdin, tempfile.TemporaryFile() as stdout:
        process = subprocess.Popen([sys.executable, "-m", "tvm_tinyml", *args], stdin=stdin, stdout=stdout, stderr=follower,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        os.close(follower)
        shown = b""
        while True:  # read while it runs, so a full terminal buffer never blocks it
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            shown += chunk
        os.close(leader)
        code = process.wait(timeout=600)
        stdout.seek(0)
        return code, stdout.read().decode(), shown.decode(errors="replace")


def test_progress_on_a_terminal():
    """The patch search and the TFLM arena measurement show progress on a terminal; stdout stays clean."""
    code, stdout, shown = _stderr_on_a_terminal("memory", SMALL_MODEL, "--patch", "auto", "--json")
    assert code == 0, shown
    assert "patch search: screening" in shown and "TFLM arena: " in shown, shown
    assert json.loads(stdout.strip().splitlines()[-1])["model"] == "ad01_int8"


def test_firmware_build_progress_on_a_terminal():
    code, stdout, shown = _stderr_on_a_terminal("run", SMALL_MODEL, "--board", "qemu-m7", "--inputs", "1", "--json")
    assert code == 0, shown
    assert "firmware for qemu-m7" in shown and "building" in shown, shown
    assert json.loads(stdout.strip().splitlines()[-1])["bit_exact"] is True


@pytest.mark.parametrize(
    "argv, missing, install",
    [
        (["verify", SMALL_MODEL, "--inputs", "1"], "cc", "apt-get install gcc"),
        (["run", SMALL_MODEL, "--board", "qemu-m7", "--inputs", "1"], "arm-none-eabi-gcc",
         "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"),
        (["run", SMALL_MODEL, "--board", "qemu-m7", "--inputs", "1"], "qemu-system-arm", "apt-get install qemu-system-arm"),
    ],
    ids=["verify-cc", "run-arm-gcc", "run-qemu"],
)
def test_missing_tool_is_one_line_with_the_install_command(tmp_path, monkeypatch, capsys, argv, missing, install):
    monkeypatch.setenv("PATH", _path_without(tmp_path, missing))
    assert shutil.which(missing) is None
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("tvm-tinyml: error: ") and f"{missing} not found on PATH" in err[0] and err[0].endswith(install)
