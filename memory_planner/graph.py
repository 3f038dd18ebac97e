"""Plain data the planner works on: no TVM types, nothing but sizes, names and call order."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tensor:
    """A tensor of the lowered model. `const` tensors live in flash; `alias_of` shares storage."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    const: bool = False
    alias_of: str | None = None


@dataclass(frozen=True)
class OpCall:
    """One kernel call: `inputs` then `outputs` are tensor names.

    `overlap[i]`, when not None, says the kernel streams over input i so that its first output
    may overlap that input if the input dies here: any placement with
    `offset(output) - offset(input) <= overlap[i]` is safe (the kernel never writes a byte it
    has still to read). `inplace` lists inputs whose exact bytes the first output may take
    (offsets equal). Outputs after the first are scratch the kernel needs during the call.
    `attrs` are the kernel's parameters, for reports.
    """

    kernel: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    overlap: tuple[int | None, ...] = ()
    inplace: tuple[int, ...] = ()
    attrs: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Overlap:
    """`output` may overlap `input` when `min_delta <= offset(output) - offset(input) <= max_delta`
    (`min_delta` None: no lower limit)."""

    input: str
    output: str
    max_delta: int
    min_delta: int | None = None


@dataclass
class Graph:
    """Kernel calls in a valid execution order over named tensors; `inputs`/`outputs` are the model's."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[OpCall] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # Extra ordering: op index -> op indices that must run before it (a patch loop runs in graph order).
    after: dict[int, set[int]] = field(default_factory=dict)
    # Overlaps between storage roots that hold for as long as both are alive, not just where one
    # dies and the other is born: a patch loop's stage tensor over the bytes of the loop's input
    # that no later patch reads (`tvm_tinyml.lower.patch_loop_overlaps`).
    loop_overlaps: list[Overlap] = field(default_factory=list)

    def storage(self, name: str) -> str:
        """The tensor whose bytes `name` occupies (following reshape aliases)."""
        while self.tensors[name].alias_of is not None:
            name = self.tensors[name].alias_of
        return name


@dataclass(frozen=True)
class BufferRequirement:
    """What placement needs: a size and the first and last step (position in the order) that use it."""

    name: str
    size: int
    first: int
    last: int


@dataclass
class Plan:
    """Where every activation lives in the one arena, and how good that is."""

    arena_bytes: int
    offsets: dict[str, int]
    requirements: list[BufferRequirement]
    order: list[int]
    method: str
    lower_bound: int
    classic_bound: int
    overlaps: list[Overlap] = field(default_factory=list)
    planning_seconds: float = 0.0
