"""Relax passes that turn quantized models into MCU-ready integer modules (upstream-ready style)."""

from relax_passes.quantize_realize import QuantizeRealize

__all__ = ["QuantizeRealize"]
