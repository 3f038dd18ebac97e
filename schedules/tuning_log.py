"""The tuning log: append-only JSON lines, one record per measurement, never lost.

Each record: {"workload", "op", "config", "cycles", "instructions", "error", "board",
"toolchain", "timestamp"}. `error` is null for a valid, bit-exact measurement, else a short
reason (wrong result, fault, build failure, timeout); failed records count as tried. Every
record is flushed and fsynced before the next measurement starts, so a killed session loses
nothing it reported, and a resumed one skips every (workload, config) already in the log.
A torn last line (killed mid-write) is ignored on reading.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from functools import lru_cache
from pathlib import Path

from schedules.space import TUNABLE, canonical, config_key, default_config

MIN_GAIN = 0.01  # a tuned config replaces a measured default only when at least this much faster


@lru_cache(maxsize=1)
def toolchain_versions() -> dict[str, str]:
    """First version lines of the tools a measurement depends on."""
    versions = {}
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        try:
            out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10).stdout
            versions[tool] = out.splitlines()[0].strip() if out else "unknown"
        except (OSError, subprocess.TimeoutExpired):
            versions[tool] = "missing"
    try:
        import tvm

        versions["tvm"] = tvm.__version__
    except Exception:  # pragma: no cover - tvm is a dependency
        versions["tvm"] = "unknown"
    return versions


def read_log(path: str | os.PathLike | None) -> list[dict]:
    """Every complete record of the log (missing file: none)."""
    if path is None or not Path(path).is_file():
        return []
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn write from a killed session
            if isinstance(record, dict) and "workload" in record and "config" in record:
                records.append(record)
    return records


def check_log(path: str | os.PathLike) -> None:
    """Raise ValueError naming the first line of `path` that is not a tuning record.

    A record is a JSON object with a string "workload" and an object "config". The last line may
    be torn (a killed session's unfinished write, no newline yet); it is ignored as `read_log` does.
    """
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        text = ""
        try:
            text = raw.decode("ascii")  # json.dumps writes ASCII
            record = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            if number == len(lines) and number > 1 and text.lstrip().startswith("{"):
                return  # a torn tail: the start of a record, cut off
            raise ValueError(f"line {number} is not a JSON record ({type(e).__name__})") from None
        if not isinstance(record, dict) or not isinstance(record.get("workload"), str) or not isinstance(record.get("config"), dict):
            raise ValueError(f"line {number} is not a tuning record (a JSON object with \"workload\" and a \"config\" object)")


class TuningLog:
    """Appends records to a log file, one fsynced line each."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()

    def _repair_torn_tail(self) -> None:
        """Make sure a new record starts on its own line after a torn write."""
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    with open(self.path, "ab") as out:
                        out.write(b"\n")
                        out.flush()
                        os.fsync(out.fileno())

    def append(self, workload: str, op: str, config: dict, *, cycles: int | None, instructions: int | None,
               error: str | None, board: str) -> dict:
        record = {
            "workload": workload,
            "op": op,
            "config": config,
            "cycles": cycles,
            "instructions": instructions,
            "error": error,
            "board": board,
            "toolchain": toolchain_versions(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return record


def measured(records: list[dict], workload: str) -> dict[str, dict]:
    """config key -> record, for the workload's records (first record of a config wins; configs
    written before the space had one config per kernel count as their canonical one)."""
    out: dict[str, dict] = {}
    for r in records:
        if r["workload"] == workload:
            config = canonical(r["op"], r["config"]) if r.get("op") in TUNABLE else r["config"]
            out.setdefault(config_key(config), r)
    return out


def best_configs(path: str | os.PathLike | None, board: str | None = None) -> dict[str, dict]:
    """workload key -> the config with the fewest cycles among valid records (optionally of one board).

    A workload whose default config was measured keeps it unless the best is at least `MIN_GAIN`
    faster: a kernel measured alone and the same kernel among a model's layers (other constants,
    other neighbours) differ by about that much, so smaller gains do not carry over."""
    best: dict[str, tuple[int, dict]] = {}
    default: dict[str, int] = {}
    for r in read_log(path):
        if r.get("error") is not None or r.get("cycles") is None:
            continue
        if board is not None and r.get("board") != board:
            continue
        if r.get("op") in TUNABLE and config_key(r["config"]) == config_key(default_config(r["op"])):
            default.setdefault(r["workload"], int(r["cycles"]))
        current = best.get(r["workload"])
        if current is None or r["cycles"] < current[0]:
            best[r["workload"]] = (int(r["cycles"]), r["config"])
    return {k: config for k, (cycles, config) in best.items()
            if k not in default or cycles < (1 - MIN_GAIN) * default[k]}


@contextlib.contextmanager
def apply_history_best(path: str | os.PathLike | None, board: str | None = None):
    """Within the block, kernels whose workload is in the log get its best config (None: no log)."""
    from schedules.dispatch import use_configs

    with use_configs(best_configs(path, board) if path is not None else {}):
        yield
