"""Relax passes that turn quantized models into MCU-ready integer modules (upstream-ready style)."""

from relax_passes.inplace_depthwise import InplaceDepthwise
from relax_passes.quantize_realize import QuantizeRealize

__all__ = ["InplaceDepthwise", "QuantizeRealize"]
