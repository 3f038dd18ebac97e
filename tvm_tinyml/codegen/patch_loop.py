"""The patch loop of the entry function (patch-based inference, `relax_passes.patch_fusion`).

The planner sees every patch's calls and buffers (one tensor per patch and layer); in the
plan's order they come patch after patch, each patch the same kernels with only arena offsets
and window origins changing. Instead of unrolling them, the entry gets one loop:

    /* layers 3..50: 16 patches (4x4), 3 kernels and the place into the stage tensor per patch */
    static const uint32_t m_patch3_offsets[16][4] = {{...}, ...};
    static const int32_t m_patch3_origins[16][4][2] = {{{-1, -1}, ...}, ...};
    for (int p = 0; p < 16; ++p) {
      m_patch_conv2d((const int8_t *)(arena + 12800), ..., m_patch3_origins[p][0], (int8_t *)(arena + m_patch3_offsets[p][0]));
      ...
    }

Offsets the same in every patch stay literals; the origins (int32 [y, x] per patch kernel)
move from the weights into the loop's table.
"""

from __future__ import annotations

from memory_planner import Graph, Plan
from tvm_tinyml.codegen.kernel_c import ctype


class PatchLoops:
    """Runs of plan positions that form a patch loop, and the C that runs them."""

    def __init__(self, name: str, graph: Graph, plan: Plan, constants: dict, constant_data: dict) -> None:
        self.name, self.graph, self.plan, self.constants = name, graph, plan, constants
        self.constant_data = constant_data
        self.loops: dict[int, tuple[int, int]] = {}  # first position -> (calls per patch, patches)
        self.covered: set[int] = set()
        self.loop_constants: set[str] = set()  # per-patch origins, printed in the loop tables instead
        order = plan.order
        position = 0
        while position < len(order):
            end = position
            while end < len(order) and graph.ops[order[end]].attrs.get("patch"):
                end += 1
            if end > position:
                self._add(position, end)
            position = max(end, position + 1)

    def _ops(self, start: int, count: int) -> list:
        return [self.graph.ops[i] for i in self.plan.order[start : start + count]]

    def _add(self, start: int, end: int) -> None:
        ops = self._ops(start, end - start)
        places = [i for i, op in enumerate(ops) if op.op == "patch_place_inplace"]
        if not places:
            return
        period = places[0] + 1
        patches = (end - start) // period
        if patches < 2 or patches * period != end - start:
            return
        first = ops[:period]
        varying: set[str] = set()
        for p in range(1, patches):
            for a, b in zip(first, ops[p * period : (p + 1) * period]):
                if a.kernel != b.kernel or len(a.inputs) != len(b.inputs) or len(a.outputs) != len(b.outputs):
                    return
                for x, y in zip(a.inputs + a.outputs, b.inputs + b.outputs):
                    tx, ty = self.graph.tensors[x], self.graph.tensors[y]
                    if tx.const != ty.const or tx.dtype != ty.dtype:
                        return
                    if tx.const and x != y:
                        if tx.shape != (2,) or ty.shape != (2,) or tx.dtype != "int32":
                            return
                        varying.update((x, y))
        self.loops[start] = (period, patches)
        self.covered.update(range(start, end))
        self.loop_constants |= varying

    def covers(self, position: int) -> bool:
        return position in self.covered

    def lines(self, position: int, kernels: dict) -> list[str]:
        """The loop, at its first position (nothing at the others)."""
        if position not in self.loops:
            return []
        period, patches = self.loops[position]
        graph, plan = self.graph, self.plan
        patch_ops = [self._ops(position + p * period, period) for p in range(patches)]
        tag = f"{self.name}_patch{position}"
        offset_slots: list[tuple[int, int]] = []  # (call, argument) whose offset changes per patch
        origin_slots: list[tuple[int, int]] = []
        for c, op in enumerate(patch_ops[0]):
            for a, t in enumerate(op.inputs + op.outputs):
                tensor = graph.tensors[t]
                if tensor.const:
                    if t in self.loop_constants:
                        origin_slots.append((c, a))
                    continue
                values = {plan.offsets[graph.storage((ops[c].inputs + ops[c].outputs)[a])] for ops in patch_ops}
                if len(values) > 1:
                    offset_slots.append((c, a))

        def arg(c: int, a: int) -> str:
            op = patch_ops[0][c]
            t = (op.inputs + op.outputs)[a]
            tensor = graph.tensors[t]
            writable = a >= len(op.inputs)
            if tensor.const:
                if (c, a) in origin_slots:
                    return f"{tag}_origins[p][{origin_slots.index((c, a))}]"
                return self.constants[t]
            qualifier = "" if writable else "const "
            if (c, a) in offset_slots:
                return f"({qualifier}{ctype(tensor.dtype)} *)(arena + {tag}_offsets[p][{offset_slots.index((c, a))}])"
            return f"({qualifier}{ctype(tensor.dtype)} *)(arena + {plan.offsets[graph.storage(t)]})"

        first, last = plan.order[position], plan.order[position + period * patches - 1]
        kinds = ", ".join(op.op for op in patch_ops[0])
        lines = [f"  /* layers {first}..{last}: patch loop, {patches} patches of {period} calls ({kinds}) */"]
        if offset_slots:
            rows = []
            for ops in patch_ops:
                values = [plan.offsets[graph.storage((ops[c].inputs + ops[c].outputs)[a])] for c, a in offset_slots]
                rows.append("{" + ", ".join(str(v) for v in values) + "}")
            lines.append(f"  static const uint32_t {tag}_offsets[{patches}][{len(offset_slots)}] = {{{', '.join(rows)}}};")
        if origin_slots:
            rows = []
            for ops in patch_ops:
                pairs = []
                for c, a in origin_slots:
                    data = self.constant_data[(ops[c].inputs + ops[c].outputs)[a]].reshape(-1)
                    pairs.append("{" + ", ".join(str(int(v)) for v in data) + "}")
                rows.append("{" + ", ".join(pairs) + "}")
            lines.append(f"  static const int32_t {tag}_origins[{patches}][{len(origin_slots)}][2] = {{{', '.join(rows)}}};")
        lines.append(f"  for (int p = 0; p < {patches}; ++p) {{")
        for c, op in enumerate(patch_ops[0]):
            args = [arg(c, a) for a in range(len(op.inputs) + len(op.outputs))]
            lines.append(f"    {kernels[op.kernel].name}({', '.join(args)});")
        lines.append("  }")
        return lines
