"""Quality evaluation: perplexity of GGUF language models under re-quantization (issue 8).

A NumPy float32 forward pass for llama.cpp's ``llama`` and ``qwen2`` architectures
(:mod:`realizar.eval.model`), the perplexity protocol of ``shared/eval/PROTOCOL.md``
(:mod:`realizar.eval.perplexity`), and all weight loading behind :mod:`realizar.eval.weights`.
"""

from __future__ import annotations

from .model import HParams, Model, ModelError
from .perplexity import PerplexityResult, format_table, perplexity, summary_rows, window_nll
from .weights import load_model, requantize

__all__ = [
    "HParams",
    "Model",
    "ModelError",
    "PerplexityResult",
    "format_table",
    "load_model",
    "perplexity",
    "requantize",
    "summary_rows",
    "window_nll",
]
