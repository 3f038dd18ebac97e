"""Errors that name a user-facing problem (bad model, unsupported op, too big for the target)."""


class TinyMLError(Exception):
    """A problem with the user's input; the CLI prints its message on one line and exits 2."""


class UnsupportedOperatorError(TinyMLError):
    """The model uses an operator (or operator variant) we cannot compile."""
