"""Hostile input: a fixed-seed set of fuzz cases (tests/input_fuzz.py) through the command line.

Every case must end in a bit-exact success or a one-line refusal (exit 2; exit 3 internal errors at
most 1%), never a traceback, a signal, a hang, a mismatch or an accepted bad flag."""

from __future__ import annotations

import pytest

from input_fuzz import ACCEPTED, CLEAN_ERROR, DEFECT, CliWorker, cases, run_case

NUM_CASES = 160


@pytest.fixture(scope="module")
def worker():
    w = CliWorker()
    yield w
    w.close()


def test_fuzz_cases_keep_the_contract(worker, tmp_path):
    outcomes = [(case, run_case(worker, case, tmp_path)) for case in cases(NUM_CASES, seed=2026, tmp=tmp_path)]
    defects = [f"{case.mutator} {case.argv[:2]}: {o.detail}" for case, o in outcomes if o.kind == DEFECT]
    assert not defects, "\n".join(defects)
    internal = sum(o.kind == "internal error" for _, o in outcomes)
    assert internal <= NUM_CASES // 100, [o.detail for _, o in outcomes if o.kind == "internal error"]
    kinds = {o.kind for _, o in outcomes}
    assert CLEAN_ERROR in kinds and ACCEPTED in kinds  # the set exercises both sides of the contract
