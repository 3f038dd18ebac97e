"""PatchFusion and the patch planner: before/after on small Relax chains, bit-exact patched
outputs on random conv chains, legal plans, the patch loop in the entry, and the planner's
choices on the bundled models."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

import tvm_tinyml
from conftest import MODELS
from relax_passes import QuantizeRealize
from relax_passes.patch_fusion import PatchFusion, patch_origins
from replay import kernel_trace, overlap_is_safe
from test_memory_planner import assert_plan_is_legal
from tvm_tinyml.patch_plan import PatchChoice, parse_patch


def conv_chain(h: int, w: int, c: int, layers: list[tuple[str, int, int, int]], seed: int = 0) -> tvm.IRModule:
    """dequantize -> (conv | depthwise) + bias -> quantize, chained; layers = (kind, kernel, stride, channels out)."""
    rng = np.random.default_rng(seed)
    x = relax.Var("x", relax.TensorType((1, h, w, c), "int8"))
    bb = relax.BlockBuilder()
    scale, zp = 0.05, int(rng.integers(-20, 20))
    with bb.function("main", [x]):
        with bb.dataflow():
            cur = x
            for i, (kind, k, stride, co) in enumerate(layers):
                ci = int(cur.ty.shape[3])
                if kind == "dw":
                    co = ci
                    weight = rng.integers(-127, 128, (k, k, ci, 1)).astype(np.int8)
                    layout, groups = "HWOI", ci
                else:
                    weight = rng.integers(-127, 128, (k, k, ci, co)).astype(np.int8)
                    layout, groups = "HWIO", 1
                wscale = np.full(co, 0.01, np.float32)
                pad_total = k - 1
                pads = [pad_total // 2, pad_total // 2, pad_total - pad_total // 2, pad_total - pad_total // 2]
                lv = bb.emit(relax.op.dequantize(cur, relax.const(scale, "float32"), relax.const(zp, "int32"), axis=0, out_dtype="float32"))
                wq = bb.emit(relax.op.dequantize(relax.const(weight), relax.const(wscale), relax.const(0, "int32"), axis=2 if kind == "dw" else 3, out_dtype="float32"))
                conv = bb.emit(relax.op.nn.conv2d(lv, wq, strides=[stride, stride], padding=pads, groups=groups,
                                                  data_layout="NHWC", kernel_layout=layout, out_dtype="float32"))
                bias = rng.integers(-500, 500, co).astype(np.int32)
                bq = bb.emit(relax.op.dequantize(relax.const(bias), relax.const(wscale * np.float32(scale)), relax.const(0, "int32"), axis=0, out_dtype="float32"))
                y = bb.emit(relax.op.add(conv, bq))
                scale, zp = float(rng.uniform(0.03, 0.2)), int(rng.integers(-20, 20))
                q = relax.op.quantize(y, relax.const(scale, "float32"), relax.const(zp, "int32"), axis=-1, out_dtype="int8")
                cur = bb.emit_output(q) if i == len(layers) - 1 else bb.emit(q)
            out = cur
        bb.emit_func_output(out)
    return bb.finalize()


def kernel_ops(mod: tvm.IRModule) -> list[str]:
    calls = [b.value for block in mod["main"].body.blocks for b in block.bindings
             if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir"]
    return [str(mod[c.args[0]].attrs["tinyml.op"]) for c in calls]


def test_before_after_two_layers_2x2():
    before = QuantizeRealize()(conv_chain(8, 8, 4, [("conv", 3, 1, 4), ("dw", 3, 1, 4), ("conv", 1, 1, 6)]))
    assert kernel_ops(before) == ["conv2d", "depthwise_conv2d", "conv2d"]
    after = PatchFusion(2, 2)(before)
    per_patch = ["patch_conv2d", "patch_depthwise_conv2d", "patch_place_inplace"]
    assert kernel_ops(after) == per_patch * 4 + ["conv2d"]
    bindings = [b for block in after["main"].body.blocks for b in block.bindings]
    assert any(isinstance(b.value, relax.Call) and b.value.op.name == "relax.zeros" for b in bindings)
    shapes = [tuple(int(d) for d in b.var.ty.shape) for b in bindings
              if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir"]
    # a 4x4 stage patch needs a 6x6 depthwise input window, which needs an 8x8 conv input window
    assert shapes[:3] == [(1, 6, 6, 4), (1, 4, 4, 4), (1, 8, 8, 4)]
    # one kernel per layer serves every patch (origins are runtime arguments)
    names = {name.name_hint for name, f in after.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}
    assert {"patch_conv2d", "patch_depthwise_conv2d", "patch_place_inplace"} <= names
    assert len([n for n in names if n.startswith("patch_")]) == 3


def test_start_after_unpatched_layers_and_rejects_non_chains():
    before = QuantizeRealize()(conv_chain(8, 8, 4, [("conv", 3, 1, 4), ("dw", 3, 2, 4), ("conv", 1, 1, 6)]))
    after = PatchFusion(3, (2, 1), start=1)(before)
    assert kernel_ops(after) == ["conv2d"] + ["patch_depthwise_conv2d", "patch_conv2d", "patch_place_inplace"] * 2
    with pytest.raises(ValueError):
        PatchFusion(5, 2)(before)


def test_uneven_grid_overlaps_the_last_patch():
    assert patch_origins((5, 7), (2, 3)) == [(0, 0), (0, 3), (0, 4), (2, 0), (2, 3), (2, 4)]


def test_parse_patch():
    assert parse_patch("auto") == "auto" and parse_patch("off") == "off" and parse_patch(None) == "off"
    assert parse_patch("5,2") == PatchChoice(0, 5, (2, 2))
    assert parse_patch("3:6,4x2") == PatchChoice(3, 6, (4, 2))
    assert parse_patch((5, 2)) == PatchChoice(0, 5, (2, 2))
    assert parse_patch((1, 5, (3, 2))) == PatchChoice(1, 5, (3, 2))


def _random_chain(seed: int):
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(int(rng.integers(2, 5))):
        kind = str(rng.choice(["conv", "dw"]))
        layers.append((kind, int(rng.choice([1, 3, 5])), int(rng.choice([1, 1, 2])), int(rng.integers(2, 6))))
    h, w = int(rng.integers(9, 17)), int(rng.integers(9, 17))
    split = int(rng.integers(1, len(layers) + 1))
    start = int(rng.integers(0, split))
    grid = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    return conv_chain(h, w, int(rng.integers(1, 4)), layers, seed), (start, split, grid)


@pytest.mark.parametrize("seed", range(6))
def test_random_conv_chains_patched_equal_unpatched(seed):
    mod, spec = _random_chain(seed)
    unpatched = tvm_tinyml.build(mod, target="host", patch="off")
    if spec[2] == (1, 1):
        spec = (spec[0], spec[1], (2, 1))
    patched = tvm_tinyml.build(mod, target="host", patch=spec)
    assert patched.memory.patch is not None and patched.memory.patch["split"] == spec[1]
    rng = np.random.default_rng(seed + 100)
    for _ in range(2):
        x = rng.integers(-128, 128, patched.metadata["inputs"][0]["shape"]).astype(np.int8)
        np.testing.assert_array_equal(patched.run_host([x])[0], unpatched.run_host([x])[0])
    plan = patched.plan
    assert_plan_is_legal(plan.requirements, plan.overlaps, plan.offsets, plan.arena_bytes)
    # every streaming overlap the plan uses inside a patch is safe by the independent replay
    graph = patched.graph
    for o in plan.overlaps:
        if o in graph.loop_overlaps:  # loop-level: replayed by test_loop_overlaps_replay_clean_on_random_chains
            continue
        op = next(op for op in graph.ops if graph.storage(op.outputs[0]) == o.output and o.input in map(graph.storage, op.inputs))
        if op.op in ("conv2d", "depthwise_conv2d"):
            shapes = [graph.tensors[t].shape for t in op.inputs]
            trace = kernel_trace(op.op, op.attrs, shapes, graph.tensors[op.outputs[0]].shape, 0, shapes[1])
            assert overlap_is_safe(trace, o.max_delta, graph.tensors[op.inputs[0]].nbytes)


def test_patch_loop_in_the_entry():
    mod = conv_chain(12, 12, 3, [("conv", 3, 2, 8), ("dw", 3, 1, 8), ("conv", 1, 1, 4)], seed=3)
    patched = tvm_tinyml.build(mod, target="host", patch=(2, 3))
    source = next(text for name, text in patched.sources.items() if name.endswith(".c"))
    entry = source[source.index("_run(uint8_t *arena)"):]
    assert "for (int p = 0; p < 9; ++p) {" in entry
    assert entry.count("_patch_conv2d(") == 1  # called once, inside the loop
    x = np.random.default_rng(0).integers(-128, 128, (1, 12, 12, 3)).astype(np.int8)
    np.testing.assert_array_equal(patched.run_host([x])[0], tvm_tinyml.build(mod, target="host").run_host([x])[0])


@pytest.mark.parametrize("name", ["kws_ref_model", "ad01_int8"])
def test_auto_chooses_no_patch_where_it_does_not_help(name):
    memory = tvm_tinyml.build(str(MODELS / f"{name}.tflite"), patch="auto").memory
    assert memory.patch is None and memory.peak_bytes == memory.unpatched_peak_bytes


def test_mcunet_vww_auto_beats_tinyengine_bit_exact():
    from tvm_tinyml import verify as V

    path = str(MODELS / "tinyengine_vww.tflite")
    artifact = tvm_tinyml.build(path, target="host", patch="auto")
    memory = artifact.memory
    assert memory.patch is not None and memory.patch["mac_overhead"] <= 0.20
    assert memory.peak_bytes <= 62_352 < memory.unpatched_peak_bytes
    assert [t["bytes"] for t in memory.tensors if t["op"] == "input"] == [80 * 80 * 3]  # the image is in the arena
    sets = V.random_inputs(artifact, 3, 0)
    ours = [artifact.run_host(xs) for xs in V.entry_inputs(sets, artifact.metadata)]
    assert V.compare(ours, V.reference_outputs(path, artifact.metadata, sets), artifact.metadata) == (0, 0)


def _integer(model):
    from relax_passes import InplaceDepthwise
    from tvm_tinyml import frontend
    from tvm_tinyml.targets import get_target

    mod, _ = frontend.load(model)
    with tvm.target.Target(get_target("stm32f746").tvm_target):
        return InplaceDepthwise()(QuantizeRealize()(mod))


def _overlapping_loop_pairs(graph, plan):
    """Loop-level overlaps the plan really uses (the two buffers share bytes)."""
    size = {r.name: r.size for r in plan.requirements}
    return [o for o in graph.loop_overlaps if o.input in plan.offsets and o.output in plan.offsets
            and plan.offsets[o.input] < plan.offsets[o.output] + size[o.output]
            and plan.offsets[o.output] < plan.offsets[o.input] + size[o.input]]


@pytest.mark.parametrize("seed", range(8))
def test_loop_overlaps_replay_clean_on_random_chains(seed):
    """The stage and per-patch buffers may take bytes of the loop's input no later patch reads:
    replayed byte by byte (tests/replay.py, independent of the rule), nothing is overwritten
    before its last read, and the outputs stay bit-exact."""
    from replay import arena_clobbers
    from tvm_tinyml.patch_plan import plan_patches

    mod, (start, split, grid) = _random_chain(seed)
    if seed % 2 == 0:
        start = 0  # the patches read the model's input image itself
    grid = (2, 2) if grid == (1, 1) else grid
    result = plan_patches(_integer(mod), (start, split, grid), search_seconds=0.5)
    graph, plan = result.lowered.graph, result.plan
    assert graph.loop_overlaps
    assert arena_clobbers(graph, plan, result.lowered.constants) == []
    assert_plan_is_legal(plan.requirements, plan.overlaps, plan.offsets, plan.arena_bytes)
    patched = tvm_tinyml.build(mod, target="host", patch=(start, split, grid))
    x = np.random.default_rng(seed).integers(-128, 128, patched.metadata["inputs"][0]["shape"]).astype(np.int8)
    np.testing.assert_array_equal(patched.run_host([x])[0], tvm_tinyml.build(mod, target="host").run_host([x])[0])


def test_replay_catches_a_stage_over_bytes_still_to_read():
    """The replay is not vacuous: the stage moved one byte past its allowance over the loop's
    input clobbers a byte a later patch reads."""
    import dataclasses

    from replay import arena_clobbers
    from tvm_tinyml.patch_plan import plan_patches

    mod = conv_chain(16, 16, 3, [("conv", 3, 1, 4), ("dw", 3, 1, 4), ("conv", 1, 1, 4)], seed=5)
    result = plan_patches(_integer(mod), (0, 2, (4, 4)), search_seconds=0.5)
    graph, plan = result.lowered.graph, result.plan
    (stage_rule,) = [o for o in graph.loop_overlaps if graph.tensors[o.output].shape == (1, 16, 16, 4)]
    offsets = {name: offset + 4096 for name, offset in plan.offsets.items()}
    offsets[stage_rule.output] = offsets[stage_rule.input] + stage_rule.max_delta
    others = {stage_rule.input, stage_rule.output}
    for name in offsets:  # everything else out of the way
        if name not in others:
            offsets[name] = 0 if graph.tensors[name].nbytes <= 4096 and name not in graph.inputs else offsets[name]
    tight = dataclasses.replace(plan, offsets=offsets, arena_bytes=max(offsets.values()) + 3 * 16 * 16 * 16 * 4)
    reads_input = f"reads {stage_rule.input} byte"
    safe = [c for c in arena_clobbers(graph, tight, result.lowered.constants) if reads_input in c]
    offsets[stage_rule.output] += 1
    unsafe = [c for c in arena_clobbers(graph, tight, result.lowered.constants) if reads_input in c]
    assert safe == [] and unsafe


def test_vww_96_stage_reuses_consumed_input_bytes():
    """MLPerf vww_96: the patch loop's stage and window buffers sit in bytes of the loop's
    input that no later patch reads; the peak drops to the first layer's own streaming floor
    (image + the 102 bytes conv0's output runs ahead of its input, aligned: 27,760 B)."""
    from replay import arena_clobbers
    from tvm_tinyml.patch_plan import plan_patches

    result = plan_patches(_integer(str(MODELS / "vww_96_int8.tflite")), "auto")
    graph, plan = result.lowered.graph, result.plan
    assert result.choice is not None and result.unpatched_peak_bytes == 36_896
    assert plan.arena_bytes <= 27_760 < 0.76 * result.unpatched_peak_bytes
    assert _overlapping_loop_pairs(graph, plan)  # the loop-level overlap is what gets it there
    assert arena_clobbers(graph, plan, result.lowered.constants) == []
