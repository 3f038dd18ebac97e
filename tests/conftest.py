"""Shared fixtures: the bundled models and a generated ONNX QDQ model."""

from __future__ import annotations

from pathlib import Path

import pytest

from onnx_models import make_qdq_cnn

MODELS = Path(__file__).resolve().parent.parent / "models"
BUNDLED = sorted(p.stem for p in MODELS.glob("*.tflite"))


@pytest.fixture(scope="session")
def qdq_onnx(tmp_path_factory) -> str:
    """A small CNN quantized by onnxruntime.quantization.quantize_static (QDQ, per-channel)."""
    return make_qdq_cnn(tmp_path_factory.mktemp("onnx"))
