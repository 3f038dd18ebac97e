"""Draw the arena over time: x is the step (kernel call), y the address, one box per tensor."""

from __future__ import annotations

import os

from tvm_tinyml.builder import MemoryReport


def plot_arena(memory: MemoryReport, path: str | os.PathLike) -> None:
    """Write a PNG of the plan in `memory` to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    steps = max((t["last"] for t in memory.tensors), default=0) + 1
    fig, ax = plt.subplots(figsize=(min(4 + 0.35 * steps, 24), 6))
    colors = plt.get_cmap("tab20")
    for i, t in enumerate(memory.tensors):
        scratch = t["op"] == "scratch"
        box = Rectangle(
            (t["first"], t["offset"]), t["last"] - t["first"] + 1, t["bytes"],
            facecolor=colors(i % 20), edgecolor="black", linewidth=0.5, alpha=0.75, hatch="//" if scratch else None,
        )
        ax.add_patch(box)
        if t["bytes"] >= memory.arena_bytes * 0.04:
            ax.text(t["first"] + 0.05, t["offset"] + t["bytes"] / 2, f"{t['name']} {t['op']}\n{t['bytes']:,} B",
                    fontsize=6, va="center")
    ax.axhline(memory.arena_bytes, color="red", linewidth=1, label=f"arena {memory.arena_bytes:,} B")
    ax.axhline(memory.lower_bound_bytes, color="gray", linestyle="--", linewidth=1, label=f"lower bound {memory.lower_bound_bytes:,} B")
    ax.set_xlim(0, steps)
    ax.set_ylim(0, memory.arena_bytes * 1.05)
    ax.set_xlabel("step (kernel call)")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"{memory.model} on {memory.target}: {memory.planner}", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
