"""Project API JSON-RPC server and firmware framing, in process (no toolchain, no tvm)."""

from __future__ import annotations

import base64
import io
import json
import struct

import pytest

from project_api.firmware_protocol import (
    FaultReport,
    FirmwareError,
    FirmwareFault,
    FirmwareSession,
    FirmwareTimeout,
    FrameDecoder,
    Msg,
    encode_frame,
)
from project_api.server import ErrorCode, ProjectAPIHandler, ProjectAPIServer, ProjectOption, ServerError, ServerInfo, TransportTimeouts


class EchoHandler(ProjectAPIHandler):
    """A handler whose transport loops written bytes back; build always fails."""

    def __init__(self) -> None:
        self.buffer = b""

    def server_info_query(self, tvm_version):
        return ServerInfo("echo", True, None, [ProjectOption("board", "str", "a board", choices=["a"], required=["build"])])

    def generate_project(self, model_library_format_path, standalone_crt_dir, project_dir, options):
        pass

    def build(self, options):
        raise ServerError("arm-none-eabi-gcc not found on PATH")

    def flash(self, options):
        raise RuntimeError("unexpected")

    def open_transport(self, options):
        return TransportTimeouts(0, 5, 10)

    def close_transport(self):
        pass

    def read_transport(self, n, timeout_sec):
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def write_transport(self, data, timeout_sec):
        self.buffer += data


def serve(*requests) -> list[dict]:
    """Replies of a server fed `requests` (dicts are sent as JSON, strings as is)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in requests]
    out = io.BytesIO()
    ProjectAPIServer(io.BytesIO("".join(line + "\n" for line in lines).encode()), out, EchoHandler()).serve_forever()
    return [json.loads(line) for line in out.getvalue().decode().splitlines()]


def request(method, params=None, id=1):
    return {"jsonrpc": "2.0", "method": method, "params": params if params is not None else {}, "id": id}


def test_server_info_query_has_microtvm_fields():
    (reply,) = serve(request("server_info_query", {"tvm_version": "x"}))
    result = reply["result"]
    assert set(result) == {"platform_name", "is_template", "model_library_format_path", "project_options", "protocol_version"}
    option = result["project_options"][0]
    assert set(option) == {"name", "type", "help", "choices", "default", "required", "optional"}
    assert option["choices"] == ["a"] and reply["id"] == 1


@pytest.mark.parametrize(
    "line, code",
    [
        ("{not json", ErrorCode.PARSE_ERROR),
        ("[1, 2]", ErrorCode.INVALID_REQUEST),
        (json.dumps({"jsonrpc": "1.0", "method": "build", "params": {}, "id": 1}), ErrorCode.INVALID_REQUEST),
        (json.dumps({"jsonrpc": "2.0", "method": "build", "params": [], "id": 1}), ErrorCode.INVALID_REQUEST),
        (json.dumps(request("no_such_method")), ErrorCode.METHOD_NOT_FOUND),
        (json.dumps(request("build")), ErrorCode.INVALID_PARAMS),
        (json.dumps(request("build", {"options": "x"})), ErrorCode.INVALID_PARAMS),
        (json.dumps(request("build", {"options": {}, "extra": 1})), ErrorCode.INVALID_PARAMS),
        (json.dumps(request("read_transport", {"n": True, "timeout_sec": 1})), ErrorCode.INVALID_PARAMS),
        (json.dumps(request("write_transport", {"data": "\x7f", "timeout_sec": 1})), ErrorCode.INVALID_PARAMS),
    ],
)
def test_bad_requests_get_json_rpc_error_codes(line, code):
    (reply,) = serve(line)
    assert reply["error"]["code"] == code
    assert "result" not in reply


def test_server_errors_carry_the_message_and_the_server_keeps_serving():
    replies = serve(request("build", {"options": {}}, 1), request("flash", {"options": {}}, 2), request("close_transport", {}, 3))
    assert replies[0]["error"] == {"code": ErrorCode.SERVER_ERROR, "message": "arm-none-eabi-gcc not found on PATH", "data": None}
    assert replies[1]["error"]["code"] == ErrorCode.SERVER_ERROR and "unexpected" in replies[1]["error"]["message"]
    assert "traceback" in replies[1]["error"]["data"]
    assert replies[2] == {"jsonrpc": "2.0", "id": 3, "result": None}


def test_transport_payloads_are_base85():
    payload = bytes(range(256))
    encoded = base64.b85encode(payload).decode()
    replies = serve(
        request("write_transport", {"data": encoded, "timeout_sec": 1}, 1),
        request("read_transport", {"n": 1000, "timeout_sec": None}, 2),
    )
    assert base64.b85decode(replies[1]["result"]["data"]) == payload


def test_frames_survive_noise_and_splitting():
    frames = encode_frame(Msg.READY) + encode_frame(Msg.RUN, b"\x01\x02TM\x03")
    decoder = FrameDecoder()
    stream = b"garbage T" + frames
    got = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
    assert got == [(Msg.READY, b""), (Msg.RUN, b"\x01\x02TM\x03")]


def test_corrupt_frame_is_detected():
    frame = bytearray(encode_frame(Msg.RUN_REPLY, b"\x00" * 30))
    frame[10] ^= 0x40
    with pytest.raises(FirmwareError, match="checksum"):
        FrameDecoder().feed(bytes(frame))


def scripted_session(*frames: bytes) -> FirmwareSession:
    stream = bytearray(b"".join(frames))

    def read(n, timeout):
        if not stream:
            raise FirmwareTimeout("silent")
        data = bytes(stream[:n])
        del stream[:n]
        return data

    return FirmwareSession(read, lambda data, timeout: None, timeout_sec=1)


def test_session_decodes_run_reply_and_skips_ready():
    reply = struct.pack("<iIQQ", 0, 3, 1234, 999) + b"\x05\x06"
    result = scripted_session(encode_frame(Msg.READY), encode_frame(Msg.RUN_REPLY, reply)).run([b"\x00"])
    assert (result.status, result.cycles, result.instructions, result.data) == (0, 1234, 999, b"\x05\x06")


def test_session_raises_fault_frames_and_errors():
    fault = struct.pack("<8I", 1, 0x1540, 0x4A3, 0x20001000, 0, 0x10000, 0x40000000, 0)
    with pytest.raises(FirmwareFault, match="HardFault at pc=0x00001540") as info:
        scripted_session(encode_frame(Msg.FAULT, fault)).run([b""])
    assert info.value.report == FaultReport(1, 0x1540, 0x4A3, 0x20001000, 0, 0x10000, 0x40000000, 0)
    with pytest.raises(FirmwareError, match="bad length"):
        scripted_session(encode_frame(Msg.ERROR, struct.pack("<I", 3) + b"RUN")).run([b""])
    with pytest.raises(FirmwareTimeout):
        scripted_session().info()
