"""Host side of the firmware protocol spoken by `firmware/tinyml_firmware.c` over a byte channel.

Every message is a frame:

    "TM" | type: u8 | length: u32 LE | payload: length bytes | crc32(type, length, payload): u32 LE

Host -> firmware: INFO, RUN (input bytes, model order), RUN_KERNEL (kernel id, bytes to place
in the arena, which arena bytes to send back), LAYERS (the counts at each layer mark of the last
run, for a model built with its layer marks), EXIT. The firmware answers each with the
matching reply, sends READY when it boots, ERROR for a request it rejects and FAULT (a fault
frame: pc, lr, sp, fault status registers) when the CPU faults. Plain Python, never imports tvm.
"""

from __future__ import annotations

import enum
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Callable

MAGIC = b"TM"
_HEADER = struct.Struct("<2sBI")
_U32 = struct.Struct("<I")
MAX_PAYLOAD = 16 << 20
PROTOCOL_VERSION = 1


class Msg(enum.IntEnum):
    """Frame types (firmware/tinyml_firmware.h has the same numbers)."""

    INFO = 0x01
    RUN = 0x02
    RUN_KERNEL = 0x03
    EXIT = 0x04
    LAYERS = 0x05
    INFO_REPLY = 0x81
    RUN_REPLY = 0x82
    KERNEL_REPLY = 0x83
    EXIT_REPLY = 0x84
    LAYERS_REPLY = 0x85
    READY = 0x90
    ERROR = 0xE0
    FAULT = 0xEF


class Counter(enum.IntEnum):
    """Which clock the firmware measures a run with."""

    NONE = 0
    DWT = 1  # DWT->CYCCNT on a real Cortex-M
    QEMU_PLUGIN = 2  # instructions and Cortex-M4-table cycles from the QEMU plugin


CYCLES_SOURCE = {Counter.NONE: None, Counter.DWT: "dwt", Counter.QEMU_PLUGIN: "estimate-m4-table"}
FAULT_KINDS = {1: "HardFault", 2: "stack overflow", 3: "signal"}
ERROR_CODES = {1: "bad checksum", 2: "unknown command", 3: "bad length", 4: "bad kernel id", 5: "bad arena range"}


class FirmwareError(Exception):
    """The firmware or the channel to it failed; the message is one line."""


class FirmwareTimeout(FirmwareError):
    """Nothing (or not a whole frame) arrived in time."""


class FirmwareFault(FirmwareError):
    """The firmware reported a CPU fault."""

    def __init__(self, report: "FaultReport") -> None:
        self.report = report
        super().__init__(report.describe())


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    """One frame, checksum included."""
    header = _HEADER.pack(MAGIC, kind, len(payload))
    return header + payload + _U32.pack(crc32(header[2:] + payload))


class FrameDecoder:
    """Cuts a byte stream into (type, payload) frames; bytes before a magic are skipped."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while True:
            start = self._buffer.find(MAGIC)
            if start < 0:
                del self._buffer[: max(0, len(self._buffer) - 1)]
                return frames
            del self._buffer[:start]
            if len(self._buffer) < _HEADER.size:
                return frames
            _, kind, length = _HEADER.unpack_from(self._buffer)
            if length > MAX_PAYLOAD:
                raise FirmwareError(f"frame of {length} bytes announced (more than {MAX_PAYLOAD}): stream is corrupt")
            end = _HEADER.size + length
            if len(self._buffer) < end + _U32.size:
                return frames
            body = bytes(self._buffer[2:end])
            (checksum,) = _U32.unpack_from(self._buffer, end)
            if checksum != crc32(body):
                raise FirmwareError(f"frame type 0x{kind:02x}: checksum mismatch (0x{checksum:08x} != 0x{crc32(body):08x})")
            frames.append((kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[: end + _U32.size]


def _words(payload: bytes, count: int, offset: int = 0) -> list[int]:
    return list(struct.unpack_from(f"<{count}I", payload, offset))


@dataclass(frozen=True)
class FirmwareInfo:
    """What INFO tells about the firmware and the model compiled into it."""

    version: int
    arena_bytes: int
    input_bytes: list[int]
    output_bytes: list[int]
    num_kernels: int
    counter: Counter
    model: str

    @classmethod
    def decode(cls, payload: bytes) -> "FirmwareInfo":
        version, arena, n_in, n_out, n_kernels, counter = _words(payload, 6)
        sizes = _words(payload, n_in + n_out, 24)
        name = payload[24 + 4 * (n_in + n_out) :].decode("utf-8", "replace")
        return cls(version, arena, sizes[:n_in], sizes[n_in:], n_kernels, Counter(counter), name)


@dataclass(frozen=True)
class RunReply:
    """One run: the model's status, its cycle and instruction counts (None if not measured), outputs."""

    status: int
    cycles: int | None
    instructions: int | None
    data: bytes

    @classmethod
    def decode(cls, payload: bytes) -> "RunReply":
        status, flags, cycles, instructions = struct.unpack_from("<iIQQ", payload)
        return cls(status, cycles if flags & 1 else None, instructions if flags & 2 else None, payload[24:])


@dataclass(frozen=True)
class LayerCounts:
    """The counts from the start of the last measured run to each of its layer marks."""

    marks: int  # marks the run made (more than `cycles` holds when past the firmware's table)
    cycles: list[int | None]
    instructions: list[int | None]

    @classmethod
    def decode(cls, payload: bytes) -> "LayerCounts":
        marks, n = _words(payload, 2)
        entries = [struct.unpack_from("<IQQ", payload, 8 + 20 * i) for i in range(n)]
        return cls(
            marks,
            [cycles if flags & 1 else None for flags, cycles, _ in entries],
            [instructions if flags & 2 else None for flags, _, instructions in entries],
        )


@dataclass(frozen=True)
class FaultReport:
    """A fault frame; on the host `fault_status`/`hard_fault_status` hold the signal and its code."""

    kind: int
    pc: int
    lr: int
    sp: int
    xpsr: int
    fault_status: int
    hard_fault_status: int
    address: int

    @classmethod
    def decode(cls, payload: bytes) -> "FaultReport":
        return cls(*_words(payload, 8))

    def describe(self) -> str:
        kind = FAULT_KINDS.get(self.kind, f"fault kind {self.kind}")
        if self.kind == 3:
            return f"firmware crashed: signal {self.fault_status} (code {self.hard_fault_status}) at address 0x{self.address:x}"
        if self.kind == 2:
            return (
                f"firmware crashed: stack overflow (sp=0x{self.sp:08x}, address=0x{self.address:08x}, "
                f"CFSR=0x{self.fault_status:08x}); raise the project option stack_bytes"
            )
        return (
            f"firmware crashed: {kind} at pc=0x{self.pc:08x} lr=0x{self.lr:08x} sp=0x{self.sp:08x} "
            f"CFSR=0x{self.fault_status:08x} HFSR=0x{self.hard_fault_status:08x} address=0x{self.address:08x}"
        )


ReadFn = Callable[[int, float], bytes]
WriteFn = Callable[[bytes, float], None]


class FirmwareSession:
    """Requests and replies over a transport given as `read(n, timeout)` and `write(data, timeout)`.

    `read` returns at least one byte or raises FirmwareTimeout; unsolicited READY frames are
    skipped, FAULT raises FirmwareFault, ERROR raises FirmwareError.
    """

    def __init__(self, read: ReadFn, write: WriteFn, timeout_sec: float = 10.0) -> None:
        self._read = read
        self._write = write
        self.timeout_sec = timeout_sec
        self._decoder = FrameDecoder()
        self._pending: list[tuple[int, bytes]] = []

    def info(self) -> FirmwareInfo:
        info = FirmwareInfo.decode(self._request(Msg.INFO, b"", Msg.INFO_REPLY, self.timeout_sec))
        if info.version != PROTOCOL_VERSION:
            raise FirmwareError(f"firmware speaks protocol {info.version}, this host {PROTOCOL_VERSION}")
        return info

    def run(self, inputs: list[bytes], timeout_sec: float | None = None) -> RunReply:
        """Run the model once on the concatenated input tensors; `data` is the outputs, concatenated."""
        return RunReply.decode(self._request(Msg.RUN, b"".join(inputs), Msg.RUN_REPLY, timeout_sec or self.timeout_sec))

    def run_kernel(
        self, kernel: int, arena_data: bytes, in_offset: int, out_offset: int, out_bytes: int, timeout_sec: float | None = None
    ) -> RunReply:
        """Place `arena_data` at `in_offset`, run kernel `kernel` of the firmware's table once and
        return arena[out_offset : out_offset + out_bytes]."""
        payload = struct.pack("<4I", kernel, in_offset, out_offset, out_bytes) + arena_data
        return RunReply.decode(self._request(Msg.RUN_KERNEL, payload, Msg.KERNEL_REPLY, timeout_sec or self.timeout_sec))

    def layers(self) -> LayerCounts:
        """The counts at each layer mark of the last RUN."""
        return LayerCounts.decode(self._request(Msg.LAYERS, b"", Msg.LAYERS_REPLY, self.timeout_sec))

    def exit(self) -> None:
        """Ask the firmware to end (QEMU exits through semihosting, the host process exits)."""
        self._request(Msg.EXIT, b"", Msg.EXIT_REPLY, self.timeout_sec)

    def wait_ready(self, timeout_sec: float | None = None) -> None:
        """Wait for the READY frame the firmware sends at boot."""
        self._next_frame(time.monotonic() + (timeout_sec or self.timeout_sec), skip_ready=False, want=Msg.READY)

    def _request(self, kind: Msg, payload: bytes, reply: Msg, timeout_sec: float) -> bytes:
        self._write(encode_frame(kind, payload), timeout_sec)
        return self._next_frame(time.monotonic() + timeout_sec, skip_ready=True, want=reply)

    def _next_frame(self, deadline: float, skip_ready: bool, want: Msg) -> bytes:
        while True:
            while not self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FirmwareTimeout(f"no {want.name} frame from the firmware in time (board silent?)")
                self._pending += self._decoder.feed(self._read(1 << 16, remaining))
            kind, payload = self._pending.pop(0)
            if kind == want:
                return payload
            if kind == Msg.READY and skip_ready:
                continue
            if kind == Msg.FAULT:
                raise FirmwareFault(FaultReport.decode(payload))
            if kind == Msg.ERROR:
                (code,) = _words(payload, 1)
                detail = payload[4:].decode("utf-8", "replace")
                raise FirmwareError(f"firmware rejected the request: {ERROR_CODES.get(code, code)} ({detail})")
            raise FirmwareError(f"expected a {want.name} frame, got type 0x{kind:02x}")
