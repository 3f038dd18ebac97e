"""Progress on stderr for the steps that take more than a few seconds, shown only on a terminal.

tqdm's `disable=None` turns a bar off when its stream is not a TTY, so pipes, CI logs and
`--json` readers see nothing extra.
"""

from __future__ import annotations

import subprocess
import sys

from tqdm import tqdm

_ELAPSED_FORMAT = "{desc}: {elapsed}"
_POLL_SEC = 0.25


def progress_bar(desc: str, iterable=None, total: int | None = None, unit: str = "step", **kwargs) -> tqdm:
    """A tqdm bar on stderr (over `iterable`, or a context manager), disabled unless stderr is a terminal."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True,
                **kwargs)


def run_with_progress(command: list[str], desc: str, timeout_sec: float) -> subprocess.CompletedProcess:
    """`subprocess.run(command, capture_output=True, text=True)`, showing the elapsed time meanwhile."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc, progress_bar(
        desc, bar_format=_ELAPSED_FORMAT
    ) as bar:
        waited = 0.0
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=_POLL_SEC)
                break
            except subprocess.TimeoutExpired:
                waited += _POLL_SEC
                if waited >= timeout_sec:
                    proc.kill()
                    raise
                bar.refresh()
        return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
