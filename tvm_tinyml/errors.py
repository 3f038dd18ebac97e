"""Errors that name a user-facing problem (bad model, unsupported op, too big for the target).

Both are registered with TVM's FFI so that raising them inside a `tvm.transform` pass (which
runs behind the FFI) reaches the caller with its own type instead of a plain RuntimeError.
"""

import tvm_ffi


@tvm_ffi.register_error
class TinyMLError(Exception):
    """A problem with the user's input; the CLI prints its message on one line and exits 2."""


@tvm_ffi.register_error
class UnsupportedOperatorError(TinyMLError):
    """The model uses an operator (or operator variant) we cannot compile."""
