"""Keep native libraries' stderr chatter (TVM's LOG(WARNING) lines) out of the user's terminal.

TVM writes its warnings straight to file descriptor 2, below Python's `sys.stderr`. Inside
`native_stderr_captured()` that descriptor points at a temporary file; what was written is shown
only with TVM_TINYML_DEBUG=1, so a refusal stays exactly one line. An error leaving the block
frees what its traceback held (a half-built Relax BlockBuilder warns when destroyed) while fd 2
is still redirected, not at some later garbage collection.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tempfile
import traceback

DEBUG_ENV = "TVM_TINYML_DEBUG"


@contextlib.contextmanager
def native_stderr_captured():
    """Redirect fd 2 to a temporary file for the block (replayed under TVM_TINYML_DEBUG)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException as error:
            _release(error)
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if os.environ.get(DEBUG_ENV):
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))


def _release(error: BaseException) -> None:
    """Drop the locals of the finished frames in `error`'s traceback and in those of the errors
    it chains to, and collect them now."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__
    gc.collect()
