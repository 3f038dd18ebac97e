"""Project API client: start a template's (or project's) server script and call it, with timeouts.

Templates are the directories under `project_api/templates/` (or any directory passed in)
holding a `microtvm_api_server.py`; a third party adds a board by adding such a directory.
Plain Python, standard library only: never imports tvm.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from project_api.firmware_protocol import FirmwareError, FirmwareSession, FirmwareTimeout

SERVER_SCRIPT = "microtvm_api_server.py"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT_SEC = 30.0


class ProjectAPIError(Exception):
    """A Project API call failed; the message is one line naming the method and the cause."""


class ProjectAPITimeoutError(ProjectAPIError):
    """The server did not answer within the call's timeout (it has been stopped)."""


class ProjectAPIServerError(ProjectAPIError):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, method: str, error: dict) -> None:
        self.code = error.get("code")
        self.data = error.get("data")
        self.kind = self.data.get("kind") if isinstance(self.data, dict) else None
        super().__init__(f"{method}: {error.get('message')}")


def list_templates(root: Path = TEMPLATES_DIR) -> dict[str, Path]:
    """Template name -> directory, for every directory under `root` with a server script."""
    return {d.name: d for d in sorted(root.iterdir()) if (d / SERVER_SCRIPT).is_file()}


class ProjectAPIClient:
    """One running server process; use as a context manager (the process is always stopped)."""

    def __init__(self, directory: str | os.PathLike, start_timeout_sec: float = DEFAULT_TIMEOUT_SEC) -> None:
        self.directory = Path(directory)
        script = self.directory / SERVER_SCRIPT
        if not script.is_file():
            raise ProjectAPIError(f"{self.directory} has no {SERVER_SCRIPT}: not a Project API template or project")
        self._start_timeout_sec = start_timeout_sec
        self._next_id = 1
        self._buffer = b""
        to_server_read, self._to_server = os.pipe()
        self._from_server, from_server_write = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, str(script), "--read-fd", str(to_server_read), "--write-fd", str(from_server_write)],
            pass_fds=(to_server_read, from_server_write),
            cwd=self.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
        )
        os.close(to_server_read)
        os.close(from_server_write)

    def __enter__(self) -> "ProjectAPIClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, timeout_sec: float = 10.0) -> None:
        """Close the pipes (the server then exits) and reap the process, killing it if needed."""
        for fd in (self._to_server, self._from_server):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self._process.wait(timeout=timeout_sec)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=timeout_sec)
        self._stderr.close()

    def call(self, method: str, params: dict, timeout_sec: float = DEFAULT_TIMEOUT_SEC) -> Any:
        """Send one request and wait at most `timeout_sec` for its reply."""
        request_id = self._next_id
        self._next_id += 1
        line = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}) + "\n"
        self._send(method, line.encode("utf-8"), timeout_sec)
        reply = self._receive(method, timeout_sec)
        if reply.get("id") != request_id:
            raise ProjectAPIError(f"{method}: reply id {reply.get('id')!r} does not match request id {request_id}")
        if "error" in reply:
            raise ProjectAPIServerError(method, reply["error"])
        return reply.get("result")

    def _send(self, method: str, data: bytes, timeout_sec: float) -> None:
        deadline = time.monotonic() + timeout_sec
        while data:
            _, ready, _ = select.select([], [self._to_server], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self._fail_timeout(method, timeout_sec)
            try:
                data = data[os.write(self._to_server, data) :]
            except BrokenPipeError:
                self._fail_exited(method)

    def _receive(self, method: str, timeout_sec: float) -> dict:
        deadline = time.monotonic() + timeout_sec
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._from_server], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self._fail_timeout(method, timeout_sec)
            chunk = os.read(self._from_server, 1 << 16)
            if not chunk:
                self._fail_exited(method)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError as err:
            raise ProjectAPIError(f"{method}: server sent invalid JSON ({err})") from None

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""

    def _fail_timeout(self, method: str, timeout_sec: float) -> None:
        self._process.kill()
        self._process.wait()
        raise ProjectAPITimeoutError(f"{method}: no answer from the Project API server within {timeout_sec:g} s")

    def _fail_exited(self, method: str) -> None:
        code = self._process.wait(timeout=self._start_timeout_sec)
        raise ProjectAPIError(f"{method}: Project API server exited with code {code}: {self._stderr_tail()}")

    # ---- the Project API methods ----

    def server_info_query(self, tvm_version: str = "tvm-tinyml") -> dict:
        return self.call("server_info_query", {"tvm_version": tvm_version}, self._start_timeout_sec)

    def generate_project(
        self, model_library_format_path: str | os.PathLike, project_dir: str | os.PathLike, options: dict,
        standalone_crt_dir: str | os.PathLike = FIRMWARE_DIR, timeout_sec: float = 120.0,
    ) -> None:
        # Absolute: the server runs in its own directory, where a relative path would land.
        params = {
            "model_library_format_path": str(Path(model_library_format_path).resolve()),
            "standalone_crt_dir": str(Path(standalone_crt_dir).resolve()),
            "project_dir": str(Path(project_dir).resolve()),
            "options": options,
        }
        self.call("generate_project", params, timeout_sec)

    def build(self, options: dict, timeout_sec: float = 600.0) -> None:
        self.call("build", {"options": options}, timeout_sec)

    def flash(self, options: dict, timeout_sec: float = 120.0) -> None:
        self.call("flash", {"options": options}, timeout_sec)

    def open_transport(self, options: dict, timeout_sec: float = DEFAULT_TIMEOUT_SEC) -> dict:
        return self.call("open_transport", {"options": options}, timeout_sec)["timeouts"]

    def close_transport(self, timeout_sec: float = DEFAULT_TIMEOUT_SEC) -> None:
        self.call("close_transport", {}, timeout_sec)

    def read_transport(self, n: int, timeout_sec: float) -> bytes:
        """Between 1 and `n` bytes; the server raises IoTimeoutError when nothing arrives in time."""
        result = self.call("read_transport", {"n": n, "timeout_sec": timeout_sec}, timeout_sec + DEFAULT_TIMEOUT_SEC)
        return base64.b85decode(result["data"])

    def write_transport(self, data: bytes, timeout_sec: float) -> None:
        params = {"data": base64.b85encode(data).decode("ascii"), "timeout_sec": timeout_sec}
        self.call("write_transport", params, timeout_sec + DEFAULT_TIMEOUT_SEC)


def template_for_board(board: str, root: Path = TEMPLATES_DIR) -> Path:
    """The template whose directory is named `board`, or whose `board` option offers it."""
    templates = list_templates(root)
    if board in templates:
        return templates[board]
    for directory in templates.values():
        with ProjectAPIClient(directory) as client:
            options = client.server_info_query()["project_options"]
        if any(o["name"] == "board" and board in (o["choices"] or []) for o in options):
            return directory
    raise ProjectAPIError(f"no Project API template supports board {board!r} (templates: {', '.join(templates)})")


def firmware_session(client: ProjectAPIClient, timeout_sec: float) -> FirmwareSession:
    """A firmware protocol session over an open Project API transport."""
    def read(n: int, timeout: float) -> bytes:
        try:
            return client.read_transport(n, timeout)
        except ProjectAPIServerError as err:
            if err.kind == "IoTimeoutError":
                raise FirmwareTimeout(f"the board sent nothing for {timeout:.0f} s (board silent?)") from None
            raise FirmwareError(str(err)) from None

    def write(data: bytes, timeout: float) -> None:
        try:
            client.write_transport(data, timeout)
        except ProjectAPIServerError as err:
            raise FirmwareError(str(err)) from None

    return FirmwareSession(read, write, timeout_sec)
