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
    """One kernel call in execution order: `args` are tensor names, outputs last."""

    kernel: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class Graph:
    """Ordered kernel calls over named tensors; `inputs`/`outputs` are the model's."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[OpCall] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def storage(self, name: str) -> str:
        """The tensor whose bytes `name` occupies (following reshape aliases)."""
        while self.tensors[name].alias_of is not None:
            name = self.tensors[name].alias_of
        return name


@dataclass(frozen=True)
class BufferRequirement:
    """What the placement step needs: a size and the first and last op index that touch it."""

    name: str
    size: int
    first: int
    last: int


@dataclass
class Plan:
    """Where every activation lives in the one arena."""

    arena_bytes: int
    offsets: dict[str, int]
    requirements: list[BufferRequirement]
    method: str
