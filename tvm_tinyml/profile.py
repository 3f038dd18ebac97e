"""`tvm-tinyml profile`: one inference on a board with a count at every layer, as TFLite Micro's
MicroProfiler and TinyEngine's per-layer table show them.

The model is built with its layer marks (`TINYML_LAYER(n)` in the generated entry, compiled in
with -DTINYML_PROFILE_LAYERS): the firmware's `tinyml_layer_mark` notes the board's counter there
(the QEMU plugin counts at its entry; a real board reads DWT->CYCCNT), and LAYERS sends the counts
back. A layer's count runs from its mark to the next one (the last to the end of the run), so the
layers add up to the whole run but for the few instructions before the first mark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from project_api.firmware_protocol import CYCLES_SOURCE, Counter
from tvm_tinyml.errors import TinyMLError
from tvm_tinyml.run import DEFAULT_TIMEOUT_SEC, board_runs
from tvm_tinyml.verify import TOLERANCE

PROFILE_BOARDS = ("qemu-m7", "qemu-m4", "stm32f746")  # boards with a counter


@dataclass
class LayerProfile:
    """One layer (or one patch stage) of the profiled inference."""

    index: int  # the layer's index in the compiled graph (the entry's `/* layer i */` comments)
    op: str
    kernel: str
    config: dict | None  # the kernel template's config (None: the plain default schedule)
    inputs: list[list[int]]
    output: list[int]
    macs: int
    instructions: int | None
    cycles: int | None


@dataclass
class ProfileResult:
    """What `tvm-tinyml profile --json` prints."""

    model: str
    board: str
    instructions: int | None
    cycles: int | None
    cycles_source: str | None
    macs: int
    bit_exact: bool
    max_abs_diff: int
    tolerance: int  # the reference's (0: TFLite Micro, 1 LSB: onnxruntime)
    layers: list[LayerProfile]

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def table(self) -> str:
        """The per-layer table for people: the share column shows where the time goes."""
        total = self.instructions or sum(layer.instructions or 0 for layer in self.layers) or 1
        head = ["layer", "op", "kernel", "config", "input -> output", "MACs", "instructions", "est. cycles", "instr/MAC", "share"]
        rows = [[
            str(layer.index), layer.op, layer.kernel.removeprefix(f"{self.model}_"),
            " ".join(f"{k}={v}" for k, v in (layer.config or {}).items()) or "default",
            f"{' '.join(_shape(s) for s in layer.inputs)} -> {_shape(layer.output)}", f"{layer.macs:,}",
            _count(layer.instructions), _count(layer.cycles), _ratio(layer.instructions, layer.macs),
            f"{100 * (layer.instructions or 0) / total:.1f}%",
        ] for layer in self.layers]
        rows.append(["", "total", "", "", "", f"{self.macs:,}", _count(self.instructions), _count(self.cycles),
                     _ratio(self.instructions, self.macs), "100.0%"])
        widths = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
        left = {1, 2, 3, 4}  # text columns; numbers are right-aligned
        lines = ["  ".join(v.ljust(w) if c in left else v.rjust(w) for c, (v, w) in enumerate(zip(r, widths))).rstrip()
                 for r in [head] + rows]
        verdict = "bit-exact" if self.bit_exact else f"max |diff| {self.max_abs_diff} (tolerance {self.tolerance})"
        lines.append(f"\n{self.model} on {self.board}: one inference, {verdict} vs the reference; cycles: {self.cycles_source}")
        return "\n".join(lines)


def _count(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"


def _ratio(instructions: int | None, macs: int) -> str:
    return f"{instructions / macs:.2f}" if instructions is not None and macs else "-"


def _shape(shape: list[int]) -> str:
    return "x".join(map(str, shape))


def _segments(starts: list[int | None], total: int | None) -> list[int | None]:
    """Counts from each mark to the next (the last to `total`)."""
    if total is None or any(s is None for s in starts):
        return [None] * len(starts)
    ends = starts[1:] + [total]
    return [end - start for start, end in zip(starts, ends)]


def profile_on_board(
    model: str,
    board: str,
    seed: int = 0,
    serial: str | None = None,
    timeout_sec: float = DEFAULT_TIMEOUT_SEC,
    target: str | None = None,
    **build_options,
) -> ProfileResult:
    """Build `model` with its layer marks, run one seeded random input on `board`, and return the
    counts per layer (with `build`'s keyword options: tuning_log, patch, ...)."""
    if board not in PROFILE_BOARDS:
        raise TinyMLError(f"profile needs a board with a counter ({', '.join(PROFILE_BOARDS)}), not {board!r}")
    runs = board_runs(model, board, 1, seed, serial, timeout_sec, target, profile_layers=True, **build_options)
    marks = runs.artifact.metadata["layer_marks"]
    counts, reply = runs.layers, runs.replies[0]
    if runs.counter == Counter.NONE or counts is None:
        raise TinyMLError(f"{board}: the firmware measured nothing (no counter)")
    if counts.marks != len(marks) or len(counts.cycles) != len(marks):
        raise TinyMLError(f"{runs.artifact.name} on {board}: {counts.marks} layer marks reached, {len(marks)} expected")
    instructions = _segments(counts.instructions, reply.instructions)
    cycles = _segments(counts.cycles, reply.cycles)
    layers = [LayerProfile(**mark, instructions=i, cycles=c) for mark, i, c in zip(marks, instructions, cycles)]
    max_diff, _ = runs.check(model)
    return ProfileResult(
        model=runs.artifact.name,
        board=board,
        instructions=reply.instructions,
        cycles=reply.cycles,
        cycles_source=CYCLES_SOURCE[runs.counter],
        macs=runs.artifact.metadata["macs"],
        bit_exact=max_diff == 0,
        max_abs_diff=max_diff,
        tolerance=TOLERANCE[runs.artifact.metadata["format"]],
        layers=layers,
    )
