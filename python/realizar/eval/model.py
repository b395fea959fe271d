"""A NumPy float32 forward pass for llama.cpp's ``llama`` and ``qwen2`` architectures (no torch).

Hyperparameters are read from GGUF metadata under the same keys and with the same defaults as
llama.cpp's ``llama_model::load_hparams``; tensors use llama.cpp's names and GGUF storage order
(a linear layer's weight is ``(n_out, n_in)`` in NumPy order, so ``y = x @ W.T``).

RoPE follows ``llama_model_rope_type``: ``llama`` is ``LLAMA_ROPE_TYPE_NORM`` (rotation of
consecutive pairs ``(2i, 2i+1)``; llama.cpp's converter permutes the rows of the Q and K weights of
Hugging Face checkpoints so that this equals HF's ``rotate_half``), ``qwen2`` is
``LLAMA_ROPE_TYPE_NEOX`` (pairs ``(i, i + n_rot/2)``, weights stored unpermuted).

The whole window goes through each layer at once: every projection is one float32 ``np.matmul``
over all positions, and attention is one batched matmul per layer with the query heads that share a
KV head stacked on the row axis.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F32Array = npt.NDArray[np.float32]

# architecture -> RoPE pairing, as in llama.cpp's llama_model_rope_type()
ROPE_TYPES: dict[str, str] = {"llama": "norm", "qwen2": "neox"}
SUPPORTED_ARCHITECTURES = tuple(ROPE_TYPES)


class ModelError(ValueError):
    """The GGUF file describes a model this forward pass cannot run (with what is missing)."""


def _scalar(md: Mapping[str, Any], key: str, kind: type, default: Any = None, required: bool = True) -> Any:
    if key not in md:
        if required:
            raise ModelError(f"missing GGUF metadata key '{key}'")
        return default
    value = md[key]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):  # llama.cpp allows per-layer arrays; we need them all equal
        if not value or any(v != value[0] for v in value):
            raise ModelError(f"metadata key '{key}' varies per layer ({value!r}); not supported")
        value = value[0]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if kind is str and isinstance(value, str):
        return value
    raise ModelError(f"metadata key '{key}' should be {kind.__name__}, got {value!r}")


@dataclass(frozen=True)
class HParams:
    """The hyperparameters of a llama / qwen2 model, as llama.cpp reads them."""

    arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    eps: float
    rope_base: float
    rope_freq_scale: float
    rope_type: str
    n_ctx_train: int

    @classmethod
    def from_metadata(cls, md: Mapping[str, Any]) -> HParams:
        """Read the hyperparameters; a :class:`ModelError` names any missing or unsupported key."""
        arch = _scalar(md, "general.architecture", str)
        if arch not in ROPE_TYPES:
            raise ModelError(
                f"unsupported architecture '{arch}' (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
            )
        n_embd = _scalar(md, f"{arch}.embedding_length", int)
        n_head = _scalar(md, f"{arch}.attention.head_count", int)
        if n_head <= 0 or n_embd <= 0:
            raise ModelError(f"invalid sizes: embedding_length={n_embd}, head_count={n_head}")
        n_head_kv = _scalar(md, f"{arch}.attention.head_count_kv", int, n_head, required=False)
        if n_head_kv <= 0 or n_head % n_head_kv:
            raise ModelError(f"head_count ({n_head}) must be a multiple of head_count_kv ({n_head_kv})")
        if n_embd % n_head and f"{arch}.attention.key_length" not in md:
            raise ModelError(f"embedding_length ({n_embd}) is not a multiple of head_count ({n_head})")
        head_dim = _scalar(md, f"{arch}.attention.key_length", int, n_embd // n_head, required=False)
        v_dim = _scalar(md, f"{arch}.attention.value_length", int, head_dim, required=False)
        if v_dim != head_dim:
            raise ModelError(f"attention.value_length ({v_dim}) != key_length ({head_dim}): not supported")
        n_rot = _scalar(md, f"{arch}.rope.dimension_count", int, head_dim, required=False)
        if n_rot <= 0 or n_rot > head_dim or n_rot % 2:
            raise ModelError(
                f"rope.dimension_count ({n_rot}) must be even and at most the head size {head_dim}"
            )
        if arch == "llama" and n_rot != head_dim:  # llama.cpp's load_hparams rejects this too
            raise ModelError(
                f"invalid {arch}.rope.dimension_count {n_rot}: expected the head size {head_dim}"
            )
        # llama.cpp: scaling type defaults to "linear"; factor from rope.scaling.factor, else the older
        # rope.scale_linear; freq_scale = 1/factor (0 or absent means no scaling).
        scaling = _scalar(md, f"{arch}.rope.scaling.type", str, "linear", required=False)
        if scaling not in ("none", "linear"):
            raise ModelError(
                f"unsupported RoPE scaling type '{scaling}' ({arch}.rope.scaling.type); "
                "supported: none, linear"
            )
        factor = _scalar(md, f"{arch}.rope.scaling.factor", float, None, required=False)
        if factor is None:
            factor = _scalar(md, f"{arch}.rope.scale_linear", float, 0.0, required=False)
        if factor < 0 or not math.isfinite(factor):
            raise ModelError(f"invalid RoPE scaling factor {factor}")
        return cls(
            arch=arch,
            n_layer=_scalar(md, f"{arch}.block_count", int),
            n_embd=n_embd,
            n_ff=_scalar(md, f"{arch}.feed_forward_length", int),
            n_head=n_head,
            n_head_kv=n_head_kv,
            head_dim=head_dim,
            n_rot=n_rot,
            eps=_scalar(md, f"{arch}.attention.layer_norm_rms_epsilon", float),
            rope_base=_scalar(md, f"{arch}.rope.freq_base", float, 10000.0, required=False),
            rope_freq_scale=1.0 if factor == 0.0 else 1.0 / factor,
            rope_type=ROPE_TYPES[arch],
            n_ctx_train=_scalar(md, f"{arch}.context_length", int),
        )


@dataclass
class _Layer:
    attn_norm: F32Array
    wq: F32Array
    wk: F32Array
    wv: F32Array
    wo: F32Array
    bq: F32Array | None
    bk: F32Array | None
    bv: F32Array | None
    bo: F32Array | None
    ffn_norm: F32Array
    w_gate: F32Array
    w_up: F32Array
    w_down: F32Array


def _rms_norm(x: F32Array, w: F32Array, eps: float) -> F32Array:
    ms = np.mean(np.square(x, dtype=np.float32), axis=-1, keepdims=True, dtype=np.float32)
    return np.asarray((x * (np.float32(1.0) / np.sqrt(ms + np.float32(eps)))) * w, dtype=np.float32)


def _silu(x: F32Array) -> F32Array:
    # x * sigmoid(x) with sigmoid(x) = (1 + tanh(x/2)) / 2: no overflow for large |x|
    out: F32Array = x * (np.float32(0.5) + np.float32(0.5) * np.tanh(np.float32(0.5) * x))
    return out


class Model:
    """A llama / qwen2 model held as float32 NumPy arrays; :meth:`logits` runs one window."""

    def __init__(self, metadata: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> None:
        self.hp = hp = HParams.from_metadata(metadata)
        used: set[str] = set()

        def get(name: str, shape: tuple[int, ...], required: bool = True) -> F32Array | None:
            if name not in tensors:
                if required:
                    raise ModelError(f"missing tensor '{name}' (architecture {hp.arch})")
                return None
            t = tensors[name]
            if tuple(t.shape) != shape:
                raise ModelError(
                    f"tensor '{name}' has shape {tuple(t.shape)}, expected {shape} (NumPy order)"
                )
            used.add(name)
            return np.ascontiguousarray(t, dtype=np.float32)

        def need(name: str, shape: tuple[int, ...]) -> F32Array:
            t = get(name, shape)
            assert t is not None
            return t

        if "token_embd.weight" not in tensors:
            raise ModelError("missing tensor 'token_embd.weight'")
        self.n_vocab = int(tensors["token_embd.weight"].shape[0])
        e, d = hp.n_embd, hp.head_dim
        nq, nkv = hp.n_head * d, hp.n_head_kv * d
        self.tok_embd = need("token_embd.weight", (self.n_vocab, e))
        bias = hp.arch == "qwen2"  # qwen2: q/k/v biases are required; llama: optional, as in llama.cpp
        self.layers: list[_Layer] = []
        for i in range(hp.n_layer):
            p = f"blk.{i}."
            self.layers.append(
                _Layer(
                    attn_norm=need(p + "attn_norm.weight", (e,)),
                    wq=need(p + "attn_q.weight", (nq, e)),
                    wk=need(p + "attn_k.weight", (nkv, e)),
                    wv=need(p + "attn_v.weight", (nkv, e)),
                    wo=need(p + "attn_output.weight", (e, nq)),
                    bq=get(p + "attn_q.bias", (nq,), bias),
                    bk=get(p + "attn_k.bias", (nkv,), bias),
                    bv=get(p + "attn_v.bias", (nkv,), bias),
                    bo=get(p + "attn_output.bias", (e,), False),
                    ffn_norm=need(p + "ffn_norm.weight", (e,)),
                    w_gate=need(p + "ffn_gate.weight", (hp.n_ff, e)),
                    w_up=need(p + "ffn_up.weight", (hp.n_ff, e)),
                    w_down=need(p + "ffn_down.weight", (e, hp.n_ff)),
                )
            )
        self.output_norm = need("output_norm.weight", (e,))
        out = get("output.weight", (self.n_vocab, e), False)
        self.tied_output = out is None
        self.output = self.tok_embd if out is None else out
        # llama.cpp's optional per-dimension frequency factors (Llama 3.1 style "rope_freqs.weight")
        self.rope_freqs = get("rope_freqs.weight", (hp.n_rot // 2,), False)
        unused = sorted(set(tensors) - used)
        if unused:
            raise ModelError(
                f"tensors not used by the {hp.arch} forward pass (unsupported model variant?): "
                f"{', '.join(unused[:8])}{' ...' if len(unused) > 8 else ''}"
            )
        self._rope_cache: dict[int, tuple[F32Array, F32Array]] = {}

    def _rope_tables(self, n: int) -> tuple[F32Array, F32Array]:
        """cos and sin of the rotation angles, shape ``(n, 1, n_rot/2)`` (positions, heads, pairs)."""
        if n not in self._rope_cache:
            hp = self.hp
            inv = hp.rope_base ** (-np.arange(0, hp.n_rot, 2, dtype=np.float64) / hp.n_rot)
            if self.rope_freqs is not None:
                inv = inv / self.rope_freqs.astype(np.float64)
            theta = (np.arange(n, dtype=np.float64) * hp.rope_freq_scale)[:, None] * inv[None, :]
            self._rope_cache[n] = (
                np.cos(theta).astype(np.float32)[:, None, :],
                np.sin(theta).astype(np.float32)[:, None, :],
            )
        return self._rope_cache[n]

    def _rope(self, x: F32Array, cos: F32Array, sin: F32Array) -> F32Array:
        """Rotate ``x`` of shape ``(T, heads, head_dim)`` in place (first n_rot dims) and return it."""
        r = self.hp.n_rot
        if self.hp.rope_type == "norm":
            x0, x1 = x[..., 0:r:2], x[..., 1:r:2]
        else:
            x0, x1 = x[..., : r // 2], x[..., r // 2 : r]
        a = x0 * cos - x1 * sin
        b = x0 * sin + x1 * cos
        x0[...] = a
        x1[...] = b
        return x

    def _attention(self, h: F32Array, ly: _Layer, cos: F32Array, sin: F32Array, mask: F32Array) -> F32Array:
        hp = self.hp
        t, d, nkv = h.shape[0], hp.head_dim, hp.n_head_kv
        g = hp.n_head // nkv
        q = h @ ly.wq.T
        k = h @ ly.wk.T
        v = h @ ly.wv.T
        if ly.bq is not None:
            q += ly.bq
        if ly.bk is not None:
            k += ly.bk
        if ly.bv is not None:
            v += ly.bv
        q3 = self._rope(q.reshape(t, hp.n_head, d), cos, sin)
        k3 = self._rope(k.reshape(t, nkv, d), cos, sin)
        # query head j uses KV head j // g (ggml's broadcast in mul_mat): stack each group's g heads
        # on the row axis so that attention is one batched matmul per KV head.
        qg = q3.reshape(t, nkv, g, d).transpose(1, 2, 0, 3).reshape(nkv, g * t, d)
        kt = k3.transpose(1, 2, 0)  # (nkv, d, t)
        vh = np.ascontiguousarray(v.reshape(t, nkv, d).transpose(1, 0, 2))  # (nkv, t, d)
        s = np.matmul(qg, kt) * np.float32(1.0 / math.sqrt(d))  # (nkv, g*t, t)
        s = s.reshape(nkv, g, t, t)
        s += mask
        s -= s.max(axis=-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        o = np.matmul(s.reshape(nkv, g * t, t), vh)  # (nkv, g*t, d)
        o = o.reshape(nkv, g, t, d).transpose(2, 0, 1, 3).reshape(t, hp.n_head * d)
        out: F32Array = o @ ly.wo.T
        if ly.bo is not None:
            out += ly.bo
        return out

    def logits(self, tokens: npt.ArrayLike) -> F32Array:
        """Logits of shape ``(len(tokens), n_vocab)`` for one window evaluated from an empty cache."""
        toks = np.asarray(tokens)
        if toks.ndim != 1 or toks.size == 0 or not np.issubdtype(toks.dtype, np.integer):
            raise ValueError("tokens must be a non-empty 1-D array of integer token ids")
        if toks.min() < 0 or toks.max() >= self.n_vocab:
            raise ValueError(f"token ids must be in [0, {self.n_vocab}); got {toks.min()}..{toks.max()}")
        hp = self.hp
        t = toks.size
        cos, sin = self._rope_tables(t)
        mask = np.triu(np.full((t, t), -np.inf, dtype=np.float32), k=1)
        x = self.tok_embd[toks]  # fancy indexing: a copy
        for ly in self.layers:
            x += self._attention(_rms_norm(x, ly.attn_norm, hp.eps), ly, cos, sin, mask)
            h = _rms_norm(x, ly.ffn_norm, hp.eps)
            x += (_silu(h @ ly.w_gate.T) * (h @ ly.w_up.T)) @ ly.w_down.T
        result: F32Array = _rms_norm(x, self.output_norm, hp.eps) @ self.output.T
        return result
