"""Hostile-input fuzzing of the command line: a table per mutator of clean errors, accepted
(bit-exact) models and defects.

    python benchmarks/fuzz_inputs.py [--cases 400] [--seed 0]

Cases: byte-level mutations (bit flips, truncation, overwrites, zero fills, duplicated regions) of
small TFLite and ONNX models, structured mutations that keep the flatbuffer valid but the model
wrong, and bad flag values (tests/input_fuzz.py). Exit 1 if any case broke the contract.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from input_fuzz import ACCEPTED, CLEAN_ERROR, DEFECT, CliWorker, cases, run_case  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table: dict[str, Counter] = defaultdict(Counter)
    defects = []
    worker = CliWorker()
    try:
        with tempfile.TemporaryDirectory(prefix="tvm-tinyml-fuzz-") as tmp:
            for case in tqdm(cases(args.cases, args.seed, Path(tmp)), desc="cases", unit="case"):
                outcome = run_case(worker, case, Path(tmp))
                table[case.mutator][outcome.kind] += 1
                if outcome.kind in (DEFECT, "internal error"):
                    defects.append(f"{case.mutator} {' '.join(case.argv[:2])}: {outcome.kind}: {outcome.detail}")
    finally:
        worker.close()
    kinds = [CLEAN_ERROR, ACCEPTED, "internal error", DEFECT]
    print(f"\n{args.cases} cases, seed {args.seed}\n")
    print("| mutator | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for mutator in sorted(table):
        print(f"| {mutator} | " + " | ".join(str(table[mutator][k]) for k in kinds) + " |")
    totals = Counter()
    for counts in table.values():
        totals.update(counts)
    print("| **all** | " + " | ".join(str(totals[k]) for k in kinds) + " |")
    for line in defects:
        print(f"- {line}")
    return 1 if totals[DEFECT] or totals["internal error"] > args.cases // 100 else 0


if __name__ == "__main__":
    sys.exit(main())
