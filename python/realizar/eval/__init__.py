"""Quality evaluation: perplexity of GGUF language models under re-quantization.

A NumPy float32 forward pass for llama.cpp's ``llama`` and ``qwen2`` architectures
(:mod:`realizar.eval.model`), the perplexity protocol of ``docs/perplexity-protocol.md``
(:mod:`realizar.eval.perplexity`), the model's own tokenizer from its GGUF metadata with llama.cpp's
token ids (:mod:`realizar.eval.tokenizer`), and all weight loading behind
:mod:`realizar.eval.weights`.
"""

from __future__ import annotations

from .model import HParams, Model, ModelError
from .perplexity import PerplexityResult, format_table, perplexity, summary_rows, window_nll
from .tokenizer import Tokenizer
from .weights import load_model, requantize

__all__ = [
    "HParams",
    "Model",
    "ModelError",
    "PerplexityResult",
    "Tokenizer",
    "format_table",
    "load_model",
    "perplexity",
    "requantize",
    "summary_rows",
    "window_nll",
]
