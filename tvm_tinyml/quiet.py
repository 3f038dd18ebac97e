"""Keep native libraries' stderr chatter (TVM's LOG(WARNING) lines) out of the user's terminal.

TVM writes its warnings straight to file descriptor 2, below Python's `sys.stderr`. Inside
`native_stderr_captured()` that descriptor points at a temporary file; what was written is shown
only with TVM_TINYML_DEBUG=1, so a refusal stays exactly one line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

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
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if os.environ.get(DEBUG_ENV):
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
