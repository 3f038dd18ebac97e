"""`tvm-tinyml run`: build a model, run it on a board through the Project API, check it bit-exact.

The flow is the one an outside tool would follow: template server -> generate_project ->
the project's server -> build -> flash -> open_transport, then the firmware protocol over
read_transport/write_transport. Every wait is bounded; any failure (tool missing, serial port
absent, board silent, firmware crash) becomes one TinyMLError line.
"""

from __future__ import annotations

import json
import statistics
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from project_api.client import ProjectAPIClient, ProjectAPIError, firmware_session, template_for_board
from project_api.firmware_protocol import CYCLES_SOURCE, Counter, FirmwareError, FirmwareSession, LayerCounts, RunReply
from project_api.template_base import BUILD_DIR, FIRMWARE_INFO_FILE
from tvm_tinyml.builder import Artifact, build
from tvm_tinyml.errors import TinyMLError
from tvm_tinyml.progress import progress_bar
from tvm_tinyml.targets import get_target
from tvm_tinyml.verify import REFERENCE_NAME, TOLERANCE, compare, entry_inputs, random_inputs, reference_outputs

# Board -> the compile target whose limits and TVM target it has.
BOARD_TARGETS = {"qemu-m7": "qemu-m7", "qemu-m4": "qemu-m4", "stm32f746": "stm32f746", "host": "host"}
# The QEMU machines' memory: 4 MB of code SSRAM at 0 and 4 MB of data SSRAM at 0x20000000, so an
# emulated board can take the SRAM and flash limits of any target with its core.
QEMU_BOARD_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT_SEC = 120.0


@dataclass
class RunResult:
    """What `tvm-tinyml run --json` prints. Counts are per inference, the median over inputs."""

    model: str
    board: str
    inputs: int
    bit_exact: bool
    max_abs_diff: int
    mismatched_inputs: int
    reference: str
    tolerance: int
    cycles: int | None
    cycles_source: str | None
    instructions: int | None
    macs: int | None
    arena_bytes: int
    weights_bytes: int
    flash_bytes: int | None
    firmware_ram_bytes: int | None

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    @property
    def cycles_per_mac(self) -> float | None:
        return self.cycles / self.macs if self.cycles and self.macs else None

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "cycles_per_mac": self.cycles_per_mac}

    def summary(self) -> str:
        """One line for people."""
        verdict = "bit-exact" if self.bit_exact else f"max |diff| {self.max_abs_diff}"
        counts = f"{self.cycles:,} cycles ({self.cycles_source})" if self.cycles is not None else "no cycle counter"
        if self.instructions is not None:
            counts += f", {self.instructions:,} instructions"
        return f"{self.model} on {self.board}: {self.inputs} inputs {verdict} vs {self.reference}; {counts} per inference"


class BoardSession:
    """A model's firmware running on a board; a context manager that always stops everything."""

    def __init__(
        self, artifact: Artifact, board: str, work_dir: Path, options: dict, timeout_sec: float, project_options: dict | None = None
    ) -> None:
        self.board = board
        self.timeout_sec = timeout_sec
        self._options = options
        self._project_options = {"board": board, **(project_options or {})}
        model_dir = artifact.export(work_dir / "model")
        self._library = work_dir / "model.tar"
        with tarfile.open(self._library, "w") as archive:
            for path in sorted(model_dir.iterdir()):
                archive.add(path, arcname=path.name)
        self.project_dir = work_dir / "project"
        self._client: ProjectAPIClient | None = None
        self.firmware: FirmwareSession | None = None
        self.firmware_info: dict = {}

    def __enter__(self) -> "BoardSession":
        try:
            steps = [("generating the project", self._generate), ("building", self._build),
                     ("flashing", lambda: self._client.flash(self._options)), ("connecting", self._connect)]
            with progress_bar(f"firmware for {self.board}", steps) as bar:
                for label, step in bar:
                    bar.set_postfix_str(label)
                    step()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _generate(self) -> None:
        with ProjectAPIClient(template_for_board(self.board)) as template:
            template.server_info_query()
            template.generate_project(self._library, self.project_dir, self._project_options)
        self._client = ProjectAPIClient(self.project_dir)

    def _build(self) -> None:
        self._client.build({})
        self.firmware_info = json.loads((self.project_dir / BUILD_DIR / FIRMWARE_INFO_FILE).read_text())

    def _connect(self) -> None:
        self._client.open_transport(self._options)
        self.firmware = firmware_session(self._client, self.timeout_sec)

    def __exit__(self, *exc) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self.firmware is not None and (not exc or exc[0] is None):
                self.firmware.exit()
            client.close_transport()
        except (ProjectAPIError, FirmwareError):
            pass
        finally:
            client.close()


def _split_outputs(data: bytes, meta: dict) -> list[np.ndarray]:
    outputs, offset = [], 0
    for spec in meta["outputs"]:
        dtype = np.dtype(spec["dtype"])
        size = int(np.prod(spec["shape"])) * dtype.itemsize
        outputs.append(np.frombuffer(data[offset : offset + size], dtype).reshape(spec["shape"]))
        offset += size
    return outputs


def board_target(board: str, target: str | None) -> tuple[str, dict]:
    """The compile target for `board` and the project options that give the board its limits."""
    own = BOARD_TARGETS[board]
    if target is None or target == own:
        return own, {}
    mcu, board_mcu = get_target(target), get_target(own)
    if not board.startswith("qemu-"):
        raise TinyMLError(f"--target {target}: only an emulated board (qemu-m7, qemu-m4) takes another target's limits")
    if mcu.core != board_mcu.core:
        raise TinyMLError(f"--target {target}: its core {mcu.core} is not the {board} board's {board_mcu.core}")
    if max(mcu.sram_bytes, mcu.flash_bytes) > QEMU_BOARD_BYTES:
        raise TinyMLError(f"--target {target}: {board} emulates at most {QEMU_BOARD_BYTES:,} B of SRAM and of flash")
    return target, {"ram_bytes": mcu.sram_bytes, "flash_bytes": mcu.flash_bytes}


def _median(values: list[int | None]) -> int | None:
    return None if not values or values[0] is None else int(statistics.median(values))


@dataclass
class BoardRuns:
    """A model built for a board and run there on seeded random inputs."""

    artifact: Artifact
    input_sets: list
    replies: list[RunReply]  # one per input
    counter: Counter
    firmware: dict  # the project's firmware.json (flash and RAM sizes)
    layers: LayerCounts | None = None  # the counts at the last run's layer marks, when profiled
    outputs: list = field(default_factory=list)

    def check(self, model: str) -> tuple[int, int]:
        """(max |diff|, inputs that differ) of the outputs against the reference."""
        return compare(self.outputs, reference_outputs(model, self.artifact.metadata, self.input_sets), self.artifact.metadata)


def board_runs(
    model: str,
    board: str,
    inputs: int,
    seed: int = 0,
    serial: str | None = None,
    timeout_sec: float = DEFAULT_TIMEOUT_SEC,
    target: str | None = None,
    profile_layers: bool = False,
    **build_options,
) -> BoardRuns:
    """Build `model` for `board`, run `inputs` seeded random inputs there (with the layer marks
    compiled in and read back after the last run when `profile_layers`)."""
    if board not in BOARD_TARGETS:
        raise TinyMLError(f"unknown board {board!r}; boards: {', '.join(BOARD_TARGETS)}")
    target, project_options = board_target(board, target)
    if profile_layers:
        project_options["profile_layers"] = True
    artifact = build(model, target=target, **build_options)
    meta = artifact.metadata
    input_sets = random_inputs(artifact, inputs, seed)
    options = {"serial_port": serial} if serial else {}
    replies, layers = [], None
    try:
        with tempfile.TemporaryDirectory(prefix="tvm-tinyml-run-") as tmp, BoardSession(
            artifact, board, Path(tmp), options, timeout_sec, project_options
        ) as session:
            info = session.firmware.info()
            for xs in entry_inputs(input_sets, meta):
                reply = session.firmware.run([np.ascontiguousarray(x).tobytes() for x in xs])
                if reply.status != 0:
                    raise TinyMLError(f"{artifact.name} on {board}: the model returned status {reply.status}")
                replies.append(reply)
            if profile_layers:
                layers = session.firmware.layers()
            firmware = session.firmware_info
    except (ProjectAPIError, FirmwareError) as err:
        raise TinyMLError(f"{board}: {err}") from None
    outputs = [_split_outputs(reply.data, meta) for reply in replies]
    return BoardRuns(artifact, input_sets, replies, info.counter, firmware, layers, outputs)


def run_on_board(
    model: str,
    board: str,
    inputs: int = 5,
    seed: int = 0,
    serial: str | None = None,
    timeout_sec: float = DEFAULT_TIMEOUT_SEC,
    target: str | None = None,
    **build_options,
) -> RunResult:
    """Build `model` for `board` (with `build`'s keyword options: tuning_log, patch, ...), run
    `inputs` seeded random inputs on it, compare with the reference.

    `target` gives an emulated (QEMU) board the SRAM and flash limits of another target with the
    same core, e.g. qemu-m7 as an STM32H743; the default is the board's own limits.
    """
    runs = board_runs(model, board, inputs, seed, serial, timeout_sec, target, **build_options)
    artifact, meta, firmware = runs.artifact, runs.artifact.metadata, runs.firmware
    max_diff, mismatched = runs.check(model)
    return RunResult(
        model=artifact.name,
        board=board,
        inputs=inputs,
        bit_exact=max_diff == 0,
        max_abs_diff=max_diff,
        mismatched_inputs=mismatched,
        reference=REFERENCE_NAME[meta["format"]],
        tolerance=TOLERANCE[meta["format"]],
        cycles=_median([r.cycles for r in runs.replies]),
        cycles_source=CYCLES_SOURCE[runs.counter],
        instructions=_median([r.instructions for r in runs.replies]),
        macs=meta["macs"],
        arena_bytes=artifact.memory.arena_bytes,
        weights_bytes=artifact.memory.flash_bytes,
        flash_bytes=firmware.get("flash_bytes"),
        firmware_ram_bytes=firmware.get("ram_bytes"),
    )
