"""A firmware channel over a child process's stdin/stdout (the host firmware, QEMU's UART).

`ProcessChannelHandler` is the transport half of the host and qemu template servers: `flash`
starts the process, the transport methods read and write its pipes with timeouts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from project_api.server import (
    ServerError,
    TransportClosedError,
    TransportTimeouts,
    read_with_timeout,
    write_with_timeout,
)
from project_api.template_base import TemplateHandler

_STOP_TIMEOUT_SEC = 5.0
_EXIT_GRACE_SEC = 1.0  # after EXIT the firmware ends by itself; past this it is stopped


class ProcessChannel:
    """A running process whose stdin/stdout carry the firmware protocol; stderr goes to `log`."""

    def __init__(self, command: list[str], cwd: Path, log: Path) -> None:
        self.log = log
        self._log_file = open(log, "wb")
        try:
            self._process = subprocess.Popen(
                command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file
            )
        except OSError as err:
            self._log_file.close()
            raise ServerError(f"cannot start {command[0]}: {err}") from None
        os.set_blocking(self._process.stdout.fileno(), False)

    def read(self, n: int, timeout_sec: float | None) -> bytes:
        try:
            return read_with_timeout(self._process.stdout.fileno(), n, timeout_sec)
        except TransportClosedError:
            raise TransportClosedError(self._exit_message()) from None

    def write(self, data: bytes, timeout_sec: float | None) -> None:
        try:
            write_with_timeout(self._process.stdin.fileno(), data, timeout_sec)
        except TransportClosedError:
            raise TransportClosedError(self._exit_message()) from None

    def _exit_message(self) -> str:
        try:
            code = self._process.wait(timeout=_STOP_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            return "firmware channel closed"
        tail = self.log.read_text(errors="replace").strip().splitlines()
        return f"firmware exited with code {code}" + (f": {tail[-1]}" if tail else "")

    def close(self) -> None:
        """Stop the process (it normally has exited after the EXIT request)."""
        for stream in (self._process.stdin, self._process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self._process.wait(timeout=_EXIT_GRACE_SEC)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log_file.close()


class ProcessChannelHandler(TemplateHandler):
    """Transport methods for templates whose firmware runs as a local process."""

    channel: ProcessChannel | None = None

    def start_process(self, command: list[str]) -> None:
        self.stop_process()
        self.channel = ProcessChannel(command, self.build_dir, self.build_dir / "firmware.log")

    def stop_process(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def _channel(self, method: str) -> ProcessChannel:
        if self.channel is None:
            raise ServerError(f"{method}: the firmware is not running: call flash first")
        return self.channel

    def open_transport(self, options: dict) -> TransportTimeouts:
        self._channel("open_transport")
        return TransportTimeouts(0.0, 10.0, 30.0)

    def close_transport(self) -> None:
        self.stop_process()

    def read_transport(self, n: int, timeout_sec: float | None) -> bytes:
        return self._channel("read_transport").read(n, timeout_sec)

    def write_transport(self, data: bytes, timeout_sec: float | None) -> None:
        self._channel("write_transport").write(data, timeout_sec)
