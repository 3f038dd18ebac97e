"""`tvm_tinyml.build`: model -> integer Relax -> Graph -> memory plan -> C sources (an Artifact)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tvm

from memory_planner import Graph, Plan
from memory_planner.bounds import classic_bound
from memory_planner.lifetimes import buffer_requirements
from memory_planner.placement import conflicts
from relax_passes import InplaceDepthwise, QuantizeRealize
from schedules.dispatch import use_configs, use_weights
from schedules.space import WEIGHTS
from schedules.tuning_log import apply_history_best
from tvm_tinyml import frontend
from tvm_tinyml.codegen.build_files import build_files
from tvm_tinyml.codegen.model_c import RUNTIME_HEADER, IOQuant, generate
from tvm_tinyml.errors import TinyMLError, UnsupportedOperatorError
from tvm_tinyml.flash_fit import int8_weight_configs
from tvm_tinyml.lower import Lowered, lower
from tvm_tinyml.macs import model_macs
from tvm_tinyml.patch_plan import parse_patch, plan_patches
from tvm_tinyml.quiet import native_stderr_captured
from tvm_tinyml.targets import McuTarget, get_target
from tvm_tinyml.tvm_plan import tvm_offsets

RUNTIME_DIR = Path(__file__).parent / "codegen" / "runtime"


@dataclass
class MemoryReport:
    """What the model needs on the target: one arena in SRAM, weights in flash."""

    model: str
    target: str
    arena_bytes: int
    peak_bytes: int
    lower_bound_bytes: int
    classic_bound_bytes: int
    compiled_classic_bound_bytes: int
    flash_bytes: int
    sram_bytes_available: int
    flash_bytes_available: int
    planner: str
    planning_seconds: float
    tensors: list[dict] = field(default_factory=list)
    patch: dict | None = None  # {"start", "split", "grid": [n, m], "mac_overhead"} or None (no patch)
    unpatched_peak_bytes: int | None = None
    kernel_stack_bytes: int = 0  # the largest staging buffer a kernel keeps on the stack, beside the arena

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """Human-readable report."""
        lines = [
            f"model {self.model} on {self.target}",
            f"  arena (SRAM): {self.arena_bytes:>10,} B of {self.sram_bytes_available:,} B",
            f"  lower bound: {self.lower_bound_bytes:>11,} B (classic bound of the model's graph: {self.classic_bound_bytes:,} B)",
            f"  kernel stack: {self.kernel_stack_bytes:>10,} B (largest staging buffer of a kernel, beside the arena)",
            f"  weights (flash): {self.flash_bytes:>7,} B of {self.flash_bytes_available:,} B",
            f"  planner: {self.planner} ({self.planning_seconds:.2f} s)",
            f"  patches: {_patch_text(self.patch, self.unpatched_peak_bytes)}",
            "",
            f"  {'tensor':<8} {'op':<26} {'offset':>8} {'bytes':>8}  live",
        ]
        for t in self.tensors:
            lines.append(f"  {t['name']:<8} {t['op']:<26} {t['offset']:>8} {t['bytes']:>8}  {t['first']}..{t['last']}")
        return "\n".join(lines)


def _patch_text(patch: dict | None, unpatched: int | None) -> str:
    if patch is None:
        return "none" + (f" (unpatched peak {unpatched:,} B)" if unpatched is not None else "")
    start, split, (n, m) = patch["start"], patch["split"], patch["grid"]
    layers = f"layers {start}..{split - 1}" if start else f"first {split} layers"
    return f"{layers} in {n}x{m} patches, +{patch['mac_overhead']:.1%} MACs (unpatched peak {unpatched:,} B)"


def _io_quant(info: list) -> list[IOQuant]:
    """The int8 side's scale and zero point of each model input or output."""
    return [IOQuant(t.quant_scale, t.quant_zero_point) for t in info]


def _memory_report(
    name: str, target: McuTarget, lowered: Lowered, plan: Plan, source_bound: int | None, weights_bytes: int
) -> MemoryReport:
    graph = lowered.graph
    producer = {op.outputs[0]: ("patch " if op.attrs.get("patch") else "") + op.op for op in graph.ops}
    producer.update({scratch: "scratch" for op in graph.ops for scratch in op.outputs[1:]})
    producer.update({op.inputs[0]: "patch stage" for op in graph.ops if op.op == "patch_place_inplace"})
    tensors = [
        {
            "name": req.name,
            "op": producer.get(req.name, "input"),
            "offset": plan.offsets[req.name],
            "bytes": req.size,
            "first": req.first,
            "last": req.last,
        }
        for req in sorted(plan.requirements, key=lambda r: (r.first, r.name))
    ]
    return MemoryReport(
        model=name,
        target=target.name,
        arena_bytes=plan.arena_bytes,
        peak_bytes=plan.arena_bytes,  # kernels keep nothing in static RAM besides the arena
        lower_bound_bytes=plan.lower_bound,
        classic_bound_bytes=source_bound if source_bound is not None else plan.classic_bound,
        compiled_classic_bound_bytes=plan.classic_bound,
        flash_bytes=weights_bytes,
        sram_bytes_available=target.sram_bytes,
        flash_bytes_available=target.flash_bytes,
        planner=plan.method,
        planning_seconds=round(plan.planning_seconds, 3),
        tensors=tensors,
    )


class Artifact:
    """Generated C for one model and target, with its memory report."""

    def __init__(
        self,
        name: str,
        target: McuTarget,
        sources: dict[str, str],
        memory: MemoryReport,
        metadata: dict,
        plan: Plan,
        graph: Graph,
        modules: dict,
    ) -> None:
        self.name = name
        self.target = target
        self.sources = sources
        self.memory = memory
        self.metadata = metadata
        self.plan = plan
        self.graph = graph  # the kernel calls the plan places (memory_planner.Graph)
        self.modules = modules  # "imported" and "integer" Relax modules
        self._host_model = None

    def export(self, directory: str | os.PathLike) -> Path:
        """Write sources, the runtime header, memory.json, metadata.json and the build glue
        (CMakeLists.txt, `<name>.mk`, example_main.c, a toolchain file) into `directory`."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for filename, text in self.sources.items():
            (out / filename).write_text(text)
        (out / RUNTIME_HEADER).write_text((RUNTIME_DIR / RUNTIME_HEADER).read_text())
        (out / "memory.json").write_text(json.dumps(self.memory.to_dict(), indent=2) + "\n")
        (out / "metadata.json").write_text(json.dumps(self.metadata, indent=2) + "\n")
        for filename, text in build_files(self.metadata).items():
            (out / filename).write_text(text)
        return out

    def run_host(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Compile the C with the host `cc` (once) and run one inference through ctypes."""
        from tvm_tinyml.host import HostModel

        if self._host_model is None:
            self._host_model = HostModel(self)
        return self._host_model.run(inputs)



def realize_integer(mod: tvm.IRModule, info, float_io: bool = False) -> tvm.IRModule:
    """QuantizeRealize of an imported model (`frontend.load`'s module and info): ONNX models get
    onnxruntime's float semantics (`exact_float`), TFLite ones TFLite Micro's integer arithmetic."""
    return QuantizeRealize(float_io=float_io, origins=info.origins, exact_float=info.format == "onnx")(mod)

def build(
    model,
    target: str = "stm32f746",
    *,
    tuning_log: str | None = None,
    patch="off",
    memory_planner: str = "tinyml",
    float_io: bool = False,
    patch_mac_overhead: float = 0.20,
    weights: str = "int8",
    configs: dict[str, dict] | None = None,
    flash_budget: int | None = None,
) -> Artifact:
    """Compile an int8 model (path to .tflite/.onnx, or a Relax IRModule) into standalone C.
    `weights="int16"` stores conv / dense weights as int16 (faster, about twice the flash).
    `configs` (workload key -> config, as `tune` chooses them) win over the tuning log;
    `flash_budget` is the most weight bytes int16 weights may grow to (default 3/4 of the flash)."""
    if tuning_log is not None and not os.path.isfile(tuning_log):
        raise TinyMLError(f"tuning log {tuning_log} does not exist (write one with `tvm-tinyml tune`)")
    patch = parse_patch(patch)
    if patch != "off" and memory_planner != "tinyml":
        raise TinyMLError("patch-based inference needs memory_planner='tinyml'")
    if memory_planner not in ("tinyml", "tvm"):
        raise TinyMLError(f"unknown memory planner {memory_planner!r}; available: tinyml, tvm")
    if weights not in WEIGHTS:
        raise TinyMLError(f"unknown weights {weights!r}; available: {', '.join(WEIGHTS)}")
    mcu = get_target(target)
    mod, info = frontend.load(model)
    with tvm.target.Target(mcu.tvm_target), native_stderr_captured():
        try:
            integer = realize_integer(mod, info, float_io)
        except UnsupportedOperatorError as err:
            raise UnsupportedOperatorError(f"{info.path or info.name}: {err}") from None
        if memory_planner == "tinyml":
            integer = InplaceDepthwise()(integer)
    patched = None
    if memory_planner == "tinyml":
        patched = plan_patches(integer, patch, max_mac_overhead=patch_mac_overhead)
        integer, lowered, plan = patched.module, patched.lowered, patched.plan
    else:
        lowered = lower(integer)
        plan = _tvm_plan(integer, lowered.graph)
    with use_weights(weights), apply_history_best(tuning_log), use_configs(configs or {}):  # tuned configs win
        generated = generate(info.name, lowered, plan, _io_quant(info.inputs), _io_quant(info.outputs))
        # by default int16 weights leave a quarter of the flash to the application
        budget = mcu.flash_bytes * 3 // 4 if flash_budget is None else flash_budget
        if generated.weights_bytes > budget:
            with use_configs(int8_weight_configs(lowered, generated.weights_bytes - budget)):
                generated = generate(info.name, lowered, plan, _io_quant(info.inputs), _io_quant(info.outputs))
    source_bound = frontend.source_classic_bound(info.path) if info.format == "tflite" else None
    memory = _memory_report(info.name, mcu, lowered, plan, source_bound, generated.weights_bytes)
    memory.kernel_stack_bytes = generated.kernel_stack_bytes
    if patched is not None:
        memory.patch = patched.choice.to_dict() if patched.choice else None
        memory.unpatched_peak_bytes = patched.unpatched_peak_bytes
    if memory.arena_bytes > mcu.sram_bytes or memory.flash_bytes > mcu.flash_bytes:
        raise TinyMLError(
            f"{info.name} does not fit {mcu.name}: arena {memory.arena_bytes:,} B (SRAM {mcu.sram_bytes:,} B), "
            f"weights {memory.flash_bytes:,} B (flash {mcu.flash_bytes:,} B)"
        )
    graph = lowered.graph
    metadata = {
        "model": info.name,
        "format": info.format,
        "target": mcu.name,
        "tvm_target": mcu.tvm_target,
        "arena_bytes": plan.arena_bytes,
        "inputs": [_io_entry(graph, plan, n, t) for n, t in zip(graph.inputs, info.inputs)],
        "outputs": [_io_entry(graph, plan, n, t) for n, t in zip(graph.outputs, info.outputs)],
        "kernels": sorted(lowered.kernels),
        "macs": model_macs(graph),
        "layers": [op.op for op in graph.ops],
        "layer_marks": generated.layers,  # what each TINYML_LAYER mark of the entry measures (profile)
        "patch": memory.patch,
    }
    return Artifact(info.name, mcu, generated.files, memory, metadata, plan, graph, {"imported": mod, "integer": integer})


def _tvm_plan(integer: tvm.IRModule, graph: Graph) -> Plan:
    """Our graph placed where TVM's StaticPlanBlockMemory puts it (storages laid end to end)."""
    order = list(range(len(graph.ops)))
    requirements = buffer_requirements(graph, order)
    offsets, arena, views = tvm_offsets(integer, graph)
    clashes = conflicts(requirements, views, offsets)
    if clashes:
        raise RuntimeError(f"TVM's plan does not map onto the kernel graph: {clashes[:3]} share bytes")
    bound = classic_bound(requirements, len(order))
    return Plan(arena, offsets, requirements, order, "tvm (StaticPlanBlockMemory)", bound, bound, overlaps=views)


def _io_entry(graph: Graph, plan: Plan, name: str, info) -> dict:
    tensor = graph.tensors[name]
    return {
        "name": info.name,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "source_dtype": info.dtype,
        "offset": plan.offsets[graph.storage(name)],
        "scale": info.quant_scale,
        "zero_point": info.quant_zero_point,
    }
