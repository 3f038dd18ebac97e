"""Differential fuzzing: random int8 TFLite graphs compiled for host, bit-exact against TFLite Micro;
random int8 ONNX graphs (QDQ and QOperator), within 1 LSB of onnxruntime.

    python benchmarks/fuzz_models.py --graphs N [--seed S] [--inputs 2] [--target T] [--patch auto]
                                     [--patch-head K] [--patch-mac-overhead F] [--memory-planner tinyml|tvm]
                                     [--board qemu-m7] [--onnx-graphs M] [--onnx-ops supported|all]

Graph i is random graph S + i of tests/tflite_random.py (rerun one with `--seed X --graphs 1`).
Prints, per operator, how many graphs containing it ended in each status, then every graph
that did not simply pass, with its seed. Statuses: pass; degenerate (bit-exact, but an output
is constant: uninformative, not a failure); mismatch (C differs from TFLM); unsupported (a
clean UnsupportedOperatorError: the generator asked for a variant we lack); error (any other
exception); plan (the memory plan fails the independent replay of tests/replay.py); board (with
`--board`: the graph passed on the host but not on the board). Exit 1 on
any failure (anything but pass and degenerate).

ONNX graph i (`--onnx-graphs`, default graphs / 3) is random graph S + i of tests/onnx_random.py
(even seeds QDQ, odd QOperator), compared with onnxruntime run with ORT_DISABLE_ALL (<= 1 LSB);
its table counts each operator per format, and status invalid means the generator built a model
onnx or onnxruntime's quantizer refuses (a generator bug).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import onnx_random  # noqa: E402
from tflite_random import CaseResult, run_case  # noqa: E402
from tvm_tinyml.run import run_on_board  # noqa: E402


def on_board(result: CaseResult, work: Path, board: str, inputs: int, build_options: dict) -> CaseResult:
    """A graph that passed on the host, run on `board` too (its status becomes "board" on a mismatch)."""
    if result.status != "pass":
        return result
    options = {k: v for k, v in build_options.items() if k != "target"}
    try:
        run = run_on_board(str(work / f"random_{result.seed}.tflite"), board, inputs=inputs, seed=result.seed, **options)
    except Exception as e:  # noqa: BLE001 - a crash is a finding, reported with its seed
        return CaseResult(result.seed, result.ops, "board", f"{type(e).__name__}: {e}")
    if not run.passed:
        return CaseResult(result.seed, result.ops, "board", run.summary())
    return result


def op_table(results: list[CaseResult]) -> str:
    """Per operator: graphs containing it that passed / failed, by failure status."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        for op in set(r.ops):
            counts[op][r.status] += 1
    statuses = ["pass"] + sorted({r.status for r in results} - {"pass"})
    lines = [f"{'operator':<26}" + "".join(f"{s:>12}" for s in statuses)]
    for op in sorted(counts):
        lines.append(f"{op:<26}" + "".join(f"{counts[op][s]:>12}" for s in statuses))
    total = Counter(r.status for r in results)
    lines.append(f"{'graphs':<26}" + "".join(f"{total[s]:>12}" for s in statuses))
    return "\n".join(lines)


def onnx_fuzz(graphs: int, first_seed: int, inputs: int, target: str, verbose: bool, all_ops: bool) -> bool:
    """Runs `graphs` random ONNX graphs from seed `first_seed` (of onnx_random.SUPPORTED, or of all
    its OPS), prints their table and failures; True when all passed."""
    ops = onnx_random.OPS if all_ops else None
    results = []
    with tempfile.TemporaryDirectory() as work:
        for seed in tqdm(range(first_seed, first_seed + graphs), desc="onnx graphs", unit="graph",
                         disable=not sys.stderr.isatty()):
            results.append(onnx_random.run_case(seed, Path(work), inputs=inputs, ops=ops, target=target))
    print(f"ONNX graphs (QDQ: even seeds, QOperator: odd), <= 1 LSB vs onnxruntime:\n{op_table(results)}")
    for r in results:
        if not r.passed:
            print(f"onnx seed {r.seed}: {r.status}: {r.message}  [{' '.join(r.ops)}]")
            if verbose:
                print("\n".join("    " + line for line in r.details))
    return all(r.passed for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, required=True, help="number of random graphs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first graph")
    parser.add_argument("--inputs", type=int, default=2, help="random input sets per graph")
    parser.add_argument("--target", default="host", help="target the C is generated for (always run on the host)")
    parser.add_argument("--patch", default="off", help='patch-based inference: "off", "auto" (see tvm-tinyml build)')
    parser.add_argument("--patch-head", type=int, default=0,
                        help="graphs start with K patchable operators, run in patches (overrides --patch)")
    parser.add_argument("--patch-mac-overhead", type=float, default=0.20, help="MAC overhead allowed to patches")
    parser.add_argument("--memory-planner", default="tinyml", choices=["tinyml", "tvm"])
    parser.add_argument("--board", help="also run every graph that passed on the host on this board (e.g. qemu-m7)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the traceback tail of errors")
    parser.add_argument("--onnx-graphs", type=int, help="number of random ONNX graphs (default: graphs / 3)")
    parser.add_argument("--onnx-ops", default="supported", choices=["supported", "all"],
                        help="ONNX graphs draw from the operators compiled today, or from all the generator has")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as work:
        seeds = range(args.seed, args.seed + args.graphs)
        for seed in tqdm(seeds, desc="graphs", unit="graph", disable=not sys.stderr.isatty()):
            options = dict(target=args.target, patch=args.patch, patch_mac_overhead=args.patch_mac_overhead,
                           memory_planner=args.memory_planner)
            result = run_case(seed, Path(work), inputs=args.inputs, patch_head=args.patch_head, **options)
            if args.board:
                result = on_board(result, Path(work), args.board, args.inputs, options)
            results.append(result)
    print(op_table(results))
    print(f"memory plans: {sum(r.replayed for r in results)} overlapping input/output pairs replayed safely")
    for r in results:
        if r.status != "pass":
            print(f"seed {r.seed}: {r.status}: {r.message}  [{' '.join(r.ops)}]")
            if args.verbose:
                print("\n".join("    " + line for line in r.details))
    onnx_graphs = args.graphs // 3 if args.onnx_graphs is None else args.onnx_graphs
    onnx_passed = not onnx_graphs or onnx_fuzz(onnx_graphs, args.seed, args.inputs, args.target, args.verbose,
                                                args.onnx_ops == "all")
    return 0 if all(r.passed for r in results) and onnx_passed else 1


if __name__ == "__main__":
    sys.exit(main())
