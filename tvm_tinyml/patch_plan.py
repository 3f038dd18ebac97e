"""Patch planner: which segment to run patch by patch, and over which grid.

Candidates are (start, split, grid): kernel calls [start, split) of the integer module (a chain
`relax_passes.patch_fusion` can patch) over an n x m grid of the stage tensor (1x1 ... 8x8;
non-square grids where the stage tensor is not square). Each candidate's MAC overhead comes
from its geometry (the halo every patch recomputes); those within the limit are lowered with
`PatchFusion` and scored with `memory_planner`'s lower bound, and the best few are planned in
full. "No patch" is always a candidate, so patching never raises the peak: the plan with the
lowest arena wins (ties: fewer MACs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm

import memory_planner
from memory_planner import Plan
from memory_planner.bounds import lower_bound
from memory_planner.lifetimes import buffer_requirements, usable_overlaps
from relax_passes.patch_fusion import PatchFusion, patch_windows, segment_layers, _kernel_calls
from tvm_tinyml.errors import TinyMLError
from tvm_tinyml.lower import Lowered, lower
from tvm_tinyml.macs import model_macs
from tvm_tinyml.progress import progress_bar

MAX_GRID = 8
MAX_START = 3  # the segment may start after a few unpatched layers (e.g. one that streams over the image)
FULL_PLANS = 3  # candidates planned in full after screening by the lower bound
EXTRA_SEGMENTS = 6  # and the best candidates of up to this many other (start, split) segments


@dataclass(frozen=True)
class PatchChoice:
    """A patched segment: kernel calls [start, split) over an n x m grid."""

    start: int
    split: int
    grid: tuple[int, int]
    mac_overhead: float = 0.0

    def to_dict(self) -> dict:
        return {"start": self.start, "split": self.split, "grid": list(self.grid), "mac_overhead": round(self.mac_overhead, 4)}

    def describe(self) -> str:
        head = f"layers {self.start}..{self.split - 1}" if self.start else f"first {self.split} layers"
        return f"{head} in {self.grid[0]}x{self.grid[1]} patches (+{self.mac_overhead:.1%} MACs)"


@dataclass
class PatchResult:
    """The chosen module with its lowering and plan; `choice` None means no patch."""

    choice: PatchChoice | None
    module: tvm.IRModule
    lowered: Lowered
    plan: Plan
    unpatched_peak_bytes: int
    evaluated: list[dict] = field(default_factory=list)


def parse_patch(spec) -> str | PatchChoice:
    """"auto" | "off" | (split, n) | (split, (n, m)) | (start, split, n or (n, m)) | "K,N" | "K,NxM" | "S:K,N"."""
    if spec is None or spec is False or spec == "off":
        return "off"
    if spec == "auto":
        return "auto"
    if isinstance(spec, PatchChoice):
        return spec
    if isinstance(spec, str):
        try:
            start, _, rest = spec.rpartition(":")
            split, grid = rest.split(",")
            n, _, m = grid.lower().partition("x")
            return _checked(spec, PatchChoice(int(start or 0), int(split), (int(n), int(m or n))))
        except ValueError:
            raise TinyMLError(f"bad patch plan {spec!r}: use auto, off, K,N (first K layers in NxN patches), K,NxM or S:K,N") from None
    items = tuple(spec)
    if len(items) == 2:
        items = (0, *items)
    if len(items) != 3:
        raise TinyMLError(f"bad patch plan {spec!r}: use (split, n), (split, (n, m)) or (start, split, n)")
    start, split, grid = items
    grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
    return _checked(spec, PatchChoice(int(start), int(split), (int(grid[0]), int(grid[1]))))


def _checked(spec, choice: PatchChoice) -> PatchChoice:
    """`choice`, if its layer range and grid make sense."""
    if choice.start < 0 or choice.split <= choice.start:
        raise TinyMLError(f"bad patch plan {spec!r}: the patched layers S..K-1 need 0 <= S < K")
    if min(choice.grid) < 1:
        raise TinyMLError(f"bad patch plan {spec!r}: a patch grid needs at least 1x1 patches")
    return choice


def mac_overhead(mod: tvm.IRModule, start: int, split: int, grid: tuple[int, int], base_macs: int) -> float:
    """Extra multiply-accumulates of the patched segment (halo recomputation), as a fraction of the model's."""
    layers = segment_layers(mod, start, split)
    windows = patch_windows(layers, grid)
    calls = _kernel_calls(mod["main"])[start:split]
    extra = 0
    for j, (layer, call) in enumerate(zip(layers, calls)):
        weight = tuple(int(d) for d in call.value.args[1].fields[1].ty.shape)
        per_pixel = layer.out_shape[3] * (int(np.prod(weight[:2])) if layer.depthwise else int(np.prod(weight[:3])))
        patched = sum(int(np.prod(w[j + 1].size)) for w in windows)
        extra += per_pixel * (patched - layer.out_shape[1] * layer.out_shape[2])
    return extra / base_macs if base_macs else 0.0


def grids(stage_hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Square grids, and grids following the stage's aspect ratio when it is not square."""
    h, w = stage_hw
    result = set()
    for n in range(1, MAX_GRID + 1):
        result.add((n, n))
        if h != w:
            result.add((n, max(1, min(MAX_GRID, round(n * w / h)))))
            result.add((max(1, min(MAX_GRID, round(n * h / w))), n))
    return sorted(g for g in result if g != (1, 1) and g[0] <= h and g[1] <= w)


def candidates(mod: tvm.IRModule, base_macs: int, max_mac_overhead: float) -> list[PatchChoice]:
    """Every patchable (start, split, grid) within the MAC limit."""
    count = len(_kernel_calls(mod["main"]))
    found = []
    for start in range(min(MAX_START + 1, count)):
        for split in range(start + 1, count + 1):
            try:
                layers = segment_layers(mod, start, split)
            except ValueError:
                break
            h, w = layers[-1].out_shape[1:3]
            if h * w < 2:
                break
            for grid in grids((h, w)):
                overhead = mac_overhead(mod, start, split, grid, base_macs)
                if overhead <= max_mac_overhead + 1e-12:
                    found.append(PatchChoice(start, split, grid, overhead))
    return found


def _screen_bound(graph) -> int:
    order = list(range(len(graph.ops)))
    requirements = buffer_requirements(graph, order)
    return lower_bound(requirements, usable_overlaps(graph, order, requirements), len(order))


def apply(mod: tvm.IRModule, choice: PatchChoice) -> tvm.IRModule:
    return PatchFusion(choice.split, choice.grid, start=choice.start)(mod)


def plan_patches(mod: tvm.IRModule, spec="auto", max_mac_overhead: float = 0.20, search_seconds: float = 2.0) -> PatchResult:
    """Choose (or apply) a patch plan for an integer module; returns the module to build and its plan."""
    spec = parse_patch(spec)
    lowered = lower(mod)
    base_plan = memory_planner.plan(lowered.graph, search_seconds=search_seconds)
    base_macs = model_macs(lowered.graph)
    best = PatchResult(None, mod, lowered, base_plan, base_plan.arena_bytes)
    if spec == "off":
        return best
    if isinstance(spec, PatchChoice):
        try:
            overhead = mac_overhead(mod, spec.start, spec.split, spec.grid, base_macs)
            patched = apply(mod, spec)
        except ValueError as err:
            raise TinyMLError(f"cannot patch {spec.to_dict()}: {err}") from None
        low = lower(patched)
        choice = PatchChoice(spec.start, spec.split, spec.grid, overhead)
        return PatchResult(choice, patched, low, memory_planner.plan(low.graph, search_seconds=search_seconds), base_plan.arena_bytes)
    screened = []
    for choice in progress_bar("patch search: screening", candidates(mod, base_macs, max_mac_overhead), unit="plan"):
        patched = apply(mod, choice)
        low = lower(patched)
        screened.append((_screen_bound(low.graph), choice.mac_overhead, choice, patched, low))
    screened.sort(key=lambda item: (item[0], item[1]))
    evaluated = [{**c.to_dict(), "bound_bytes": b} for b, _, c, _, _ in screened]
    # The best few, and the best of every other segment: the bound is per step, and where
    # streaming and loop overlaps chain, the placement can drift above it.
    full = screened[:FULL_PLANS]
    for item in screened:
        if (item[2].start, item[2].split) not in {(c.start, c.split) for _, _, c, _, _ in full}:
            full.append(item)
    for bound, _, choice, patched, low in progress_bar("patch search: planning", full[: FULL_PLANS + EXTRA_SEGMENTS], unit="plan"):
        if bound >= best.plan.arena_bytes:
            continue
        plan = memory_planner.plan(low.graph, search_seconds=search_seconds / 4)
        if low.graph.loop_overlaps:  # the placers are greedy: loop-level overlaps can lead them astray
            plain = lower(patched, loop_overlaps=False)
            plain_plan = memory_planner.plan(plain.graph, search_seconds=search_seconds / 4)
            if plain_plan.arena_bytes < plan.arena_bytes:
                low, plan = plain, plain_plan
        if plan.arena_bytes < best.plan.arena_bytes:
            best = PatchResult(choice, patched, low, plan, base_plan.arena_bytes)
    best.evaluated = evaluated
    return best
