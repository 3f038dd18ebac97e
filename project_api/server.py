"""Project API server: microTVM's protocol, JSON-RPC 2.0 with one message per line over two pipes.

A template's `microtvm_api_server.py` subclasses `ProjectAPIHandler` and calls `main(handler)`;
the client starts it with `--read-fd R --write-fd W`. Method names, parameters and result
fields follow microTVM's Project API (protocol version 1):

    server_info_query(tvm_version)            -> {platform_name, is_template,
                                                  model_library_format_path, project_options,
                                                  protocol_version}
    generate_project(model_library_format_path, standalone_crt_dir, project_dir, options)
    build(options), flash(options)
    open_transport(options)                   -> {timeouts: {...}}
    close_transport()
    read_transport(n, timeout_sec)            -> {data: base85}
    write_transport(data: base85, timeout_sec)

Plain Python, standard library only: never imports tvm.
"""

from __future__ import annotations

import abc
import argparse
import base64
import enum
import json
import os
import pathlib
import re
import select
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class ProjectOption:
    """A typed option a server accepts; `required`/`optional` list the methods that take it."""

    name: str
    type: str  # "str", "int", "bool"
    help: str
    choices: list | None = None
    default: Any = None
    required: list[str] | None = None
    optional: list[str] | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ServerInfo:
    """What `server_info_query` returns."""

    platform_name: str
    is_template: bool
    model_library_format_path: str | None
    project_options: list[ProjectOption] = field(default_factory=list)


@dataclass(frozen=True)
class TransportTimeouts:
    """Timeouts the client should use on this transport (microTVM's fields)."""

    session_start_retry_timeout_sec: float
    session_start_timeout_sec: float
    session_established_timeout_sec: float


class ErrorCode(enum.IntEnum):
    """JSON-RPC 2.0 error codes, plus microTVM's server error in the reserved range."""

    SERVER_ERROR = -32000
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603


class JSONRPCError(Exception):
    """An error with the fields of a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.data = data

    def to_json(self) -> dict:
        return {"code": self.code, "message": self.message, "data": self.data}

    def __str__(self) -> str:
        return self.message


class ServerError(JSONRPCError):
    """A valid request failed on the server; the message is meant for the user, on one line."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(ErrorCode.SERVER_ERROR, message, data)


class IoTimeoutError(ServerError):
    """No data arrived (or could be written) before the timeout."""

    def __init__(self, message: str = "transport I/O timed out") -> None:
        super().__init__(message, {"kind": "IoTimeoutError"})


class TransportClosedError(ServerError):
    """The transport's other end went away (process exited, cable pulled)."""

    def __init__(self, message: str = "transport closed") -> None:
        super().__init__(message, {"kind": "TransportClosedError"})


class ProjectAPIHandler(metaclass=abc.ABCMeta):
    """What a template implements. Parameter names are the JSON-RPC parameter names."""

    @abc.abstractmethod
    def server_info_query(self, tvm_version: str) -> ServerInfo: ...

    @abc.abstractmethod
    def generate_project(
        self, model_library_format_path: pathlib.Path, standalone_crt_dir: pathlib.Path, project_dir: pathlib.Path, options: dict
    ) -> None: ...

    @abc.abstractmethod
    def build(self, options: dict) -> None: ...

    @abc.abstractmethod
    def flash(self, options: dict) -> None: ...

    @abc.abstractmethod
    def open_transport(self, options: dict) -> TransportTimeouts: ...

    @abc.abstractmethod
    def close_transport(self) -> None: ...

    @abc.abstractmethod
    def read_transport(self, n: int, timeout_sec: float | None) -> bytes: ...

    @abc.abstractmethod
    def write_transport(self, data: bytes, timeout_sec: float | None) -> None: ...


# Parameters of each method, with the JSON types they must have.
_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))
METHOD_PARAMS: dict[str, dict[str, tuple[type, ...]]] = {
    "server_info_query": {"tvm_version": (str,)},
    "generate_project": {
        "model_library_format_path": (str,),
        "standalone_crt_dir": (str,),
        "project_dir": (str,),
        "options": (dict,),
    },
    "build": {"options": (dict,)},
    "flash": {"options": (dict,)},
    "open_transport": {"options": (dict,)},
    "close_transport": {},
    "read_transport": {"n": (int,), "timeout_sec": _OPTIONAL_NUMBER},
    "write_transport": {"data": (str,), "timeout_sec": _OPTIONAL_NUMBER},
}
_METHOD_NAME = re.compile(r"^[a-zA-Z0-9_]+$")


class ProjectAPIServer:
    """Serves one request at a time from `read_file` until it reaches end of file."""

    def __init__(self, read_file: BinaryIO, write_file: BinaryIO, handler: ProjectAPIHandler) -> None:
        self._read_file = read_file
        self._write_file = write_file
        self._handler = handler

    def serve_forever(self) -> None:
        while self.serve_one_request():
            pass

    def serve_one_request(self) -> bool:
        """Answer one line; False at end of input."""
        line = self._read_file.readline()
        if not line:
            return False
        request_id = None
        try:
            try:
                request = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise JSONRPCError(ErrorCode.PARSE_ERROR, f"parse error: {err}") from None
            if isinstance(request, dict):
                request_id = request.get("id") if isinstance(request.get("id"), (str, int)) else None
            method, params = self._validate(request)
            self._reply(request_id, result=self._dispatch(method, params))
        except JSONRPCError as err:
            self._reply(request_id, error=err.to_json())
        except Exception as err:  # noqa: BLE001 - every failure goes back to the client
            data = {"traceback": "".join(traceback.format_exception(err))}
            self._reply(request_id, error=ServerError(f"{type(err).__name__}: {err}", data).to_json())
        return True

    @staticmethod
    def _validate(request: Any) -> tuple[str, dict]:
        if not isinstance(request, dict):
            raise JSONRPCError(ErrorCode.INVALID_REQUEST, f"request must be an object, got {type(request).__name__}")
        if request.get("jsonrpc") != "2.0":
            raise JSONRPCError(ErrorCode.INVALID_REQUEST, f'request["jsonrpc"] must be "2.0", got {request.get("jsonrpc")!r}')
        method = request.get("method")
        if not isinstance(method, str) or not _METHOD_NAME.match(method):
            raise JSONRPCError(ErrorCode.INVALID_REQUEST, f'request["method"] must be a method name, got {method!r}')
        if not isinstance(request.get("id"), (str, int, type(None))):
            raise JSONRPCError(ErrorCode.INVALID_REQUEST, 'request["id"] must be a string, number or null')
        params = request.get("params", {})
        if not isinstance(params, dict):
            raise JSONRPCError(ErrorCode.INVALID_REQUEST, f'request["params"] must be an object, got {type(params).__name__}')
        if method not in METHOD_PARAMS:
            raise JSONRPCError(ErrorCode.METHOD_NOT_FOUND, f"{method}: no such method")
        expected = METHOD_PARAMS[method]
        for name, types in expected.items():
            if name not in params:
                raise JSONRPCError(ErrorCode.INVALID_PARAMS, f"{method}: parameter {name} not given")
            if not isinstance(params[name], types) or isinstance(params[name], bool) and bool not in types:
                raise JSONRPCError(
                    ErrorCode.INVALID_PARAMS, f"{method}: parameter {name} has type {type(params[name]).__name__}"
                )
        extra = sorted(set(params) - set(expected))
        if extra:
            raise JSONRPCError(ErrorCode.INVALID_PARAMS, f"{method}: extra parameters: {', '.join(extra)}")
        return method, params

    def _dispatch(self, method: str, params: dict) -> Any:
        handler = self._handler
        if method == "server_info_query":
            info = handler.server_info_query(params["tvm_version"])
            return {
                "platform_name": info.platform_name,
                "is_template": info.is_template,
                "model_library_format_path": info.model_library_format_path,
                "project_options": [o.to_json() for o in info.project_options],
                "protocol_version": PROTOCOL_VERSION,
            }
        if method == "generate_project":
            handler.generate_project(
                pathlib.Path(params["model_library_format_path"]),
                pathlib.Path(params["standalone_crt_dir"]),
                pathlib.Path(params["project_dir"]),
                params["options"],
            )
            return None
        if method == "open_transport":
            return {"timeouts": asdict(handler.open_transport(params["options"]))}
        if method == "read_transport":
            data = handler.read_transport(params["n"], params["timeout_sec"])
            return {"data": base64.b85encode(data).decode("ascii")}
        if method == "write_transport":
            try:
                data = base64.b85decode(params["data"])
            except ValueError as err:
                raise JSONRPCError(ErrorCode.INVALID_PARAMS, f"write_transport: data is not base85: {err}") from None
            handler.write_transport(data, params["timeout_sec"])
            return None
        if method == "close_transport":
            handler.close_transport()
            return None
        getattr(handler, method)(params["options"])  # build, flash
        return None

    def _reply(self, request_id: Any, result: Any = None, error: dict | None = None) -> None:
        reply = {"jsonrpc": "2.0", "id": request_id}
        if error is not None:
            reply["error"] = error
        else:
            reply["result"] = result
        self._write_file.write((json.dumps(reply) + "\n").encode("utf-8"))
        self._write_file.flush()


def check_options(server_options: list[ProjectOption], method: str, options: dict) -> dict:
    """`options` with defaults filled in; a ServerError names a missing required or bad option."""
    known = {o.name: o for o in server_options}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ServerError(f"{method}: unknown project options: {', '.join(unknown)}")
    resolved = {}
    for option in server_options:
        value = options.get(option.name, option.default)
        if value is None and method in (option.required or []):
            raise ServerError(f"{method}: project option {option.name!r} is required ({option.help})")
        if value is not None and option.choices is not None and value not in option.choices:
            raise ServerError(f"project option {option.name}={value!r}: choose one of {', '.join(map(str, option.choices))}")
        resolved[option.name] = value
    return resolved


def read_with_timeout(fd: int, n: int, timeout_sec: float | None) -> bytes:
    """Between 1 and `n` bytes from `fd`; IoTimeoutError if none within `timeout_sec`."""
    ready, _, _ = select.select([fd], [], [], timeout_sec)
    if not ready:
        raise IoTimeoutError(f"no data within {timeout_sec} s")
    data = os.read(fd, n)
    if not data:
        raise TransportClosedError()
    return data


def write_with_timeout(fd: int, data: bytes, timeout_sec: float | None) -> None:
    """All of `data` to `fd` (a pipe), or IoTimeoutError."""
    deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
    view = memoryview(data)
    while view:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        _, ready, _ = select.select([], [fd], [], remaining)
        if not ready:
            raise IoTimeoutError(f"could not write {len(view)} bytes within {timeout_sec} s")
        try:
            written = os.write(fd, view[: 1 << 16])
        except BrokenPipeError:
            raise TransportClosedError() from None
        view = view[written:]


def main(handler: ProjectAPIHandler, argv: list[str] | None = None) -> None:
    """Entry point of a template's `microtvm_api_server.py`."""
    parser = argparse.ArgumentParser(description="tvm-tinyml Project API server")
    parser.add_argument("--read-fd", type=int, required=True, help="file descriptor requests are read from")
    parser.add_argument("--write-fd", type=int, required=True, help="file descriptor replies are written to")
    parser.add_argument("--debug", action="store_true", help="accepted for microTVM compatibility")
    args = parser.parse_args(argv)
    with os.fdopen(args.read_fd, "rb") as read_file, os.fdopen(args.write_fd, "wb", buffering=0) as write_file:
        ProjectAPIServer(read_file, write_file, handler).serve_forever()
    sys.exit(0)
