"""A GGUF model's own tokenizer, read from its metadata, with llama.cpp's token ids.

llama.cpp stores a model's tokenizer in the GGUF metadata (``tokenizer.ggml.*``). This module
reads the byte-level BPE kind (``tokenizer.ggml.model = "gpt2"``) and reproduces what llama.cpp's
``llama_tokenize(vocab, text, add_special, parse_special)`` returns, id for id:

1. User-defined tokens (token type 4, unless llama.cpp's loader makes them control tokens) are cut
   out of the text first, longest first, and emitted as they are; control and unknown tokens are
   plain text (``parse_special=false``, as ``llama-perplexity`` tokenizes; ``parse_special=True``
   cuts them out too, as ``llama-tokenize`` does by default).
2. Each remaining piece is decoded from UTF-8 as llama.cpp decodes it (an invalid byte becomes
   U+FFFD) and split into words by the pre-tokenizer that ``tokenizer.ggml.pre`` names: llama.cpp's
   hand-written splitters for the GPT-2, Llama 3 and Qwen2 regular expressions (and, for SmolLM and
   StarCoder, digits split off one by one first). They are expressed here as ``re`` patterns over a
   copy of the text in which every code point is replaced by a representative of its class (letter,
   number, white space, other), with the classes of llama.cpp's own Unicode tables
   (:mod:`._unicode_classes`), so the result does not depend on Python's Unicode version.
3. Each word's UTF-8 bytes are mapped to GPT-2's byte characters and merged by BPE: always the
   adjacent pair of lowest merge rank, the leftmost on a tie, one merge at a time, as llama.cpp's
   priority queue does. Symbols missing from the vocabulary fall back to single-byte tokens.
4. BOS first if ``add_special`` and ``tokenizer.ggml.add_bos_token`` (llama.cpp's default for the
   pre-tokenizer when the key is absent), EOS last if ``add_special`` and ``add_eos_token``.

>>> tok = Tokenizer.from_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")   # doctest: +SKIP
>>> tok.encode("Hello world")                                     # doctest: +SKIP
array([19556,  905], dtype=int32)
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ._unicode_classes import RANGE_CLASSES, RANGE_STARTS, WHITESPACE

__all__ = ["SUPPORTED_PRE_TOKENIZERS", "Tokenizer"]

# ---------------------------------------------------------------------------------------------
# Pre-tokenizers
# ---------------------------------------------------------------------------------------------

# The class text: ASCII stays as it is (llama.cpp's classes of ASCII are the obvious ones), every
# other code point becomes one ASCII representative of its class. The representatives are chosen
# so that no pattern below can tell them from a real member of the class: a letter becomes "a" (not
# one of the letters of the contractions 's 't 're 've 'm 'll 'd, and no code point >= 128 lowers
# to one of those), a number "0", white space "\v" (neither " " nor "\r" nor "\n", which the
# patterns name), anything else "#" (not the apostrophe).
_REPRESENTATIVE: Final = {"L": ord("a"), "N": ord("0"), "O": ord("#")}
_W = r"\t\n\x0b\x0c\r "  # llama.cpp's white space below 128
_L = "A-Za-z"
_N = "0-9"

# unicode_regex_split_custom_gpt2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
_GPT2 = re.compile(
    rf"'(?:[stmd]|re|ve|ll)| ?[{_L}]+| ?[{_N}]+| ?[^{_W}{_L}{_N}]+|[{_W}]+(?![^{_W}])|[{_W}]+"
)


def _llama3_like(numbers: str) -> re.Pattern[str]:
    # unicode_regex_split_custom_llama3 / _qwen2: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
    # \p{N}{1,3} (Qwen2: \p{N})| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    return re.compile(
        rf"'(?:[sStTmMdD]|[rR][eE]|[vV][eE]|[lL][lL])|[^\r\n{_L}{_N}]?[{_L}]+|[{_N}]{numbers}"
        rf"| ?[^{_W}{_L}{_N}]+[\r\n]*|[{_W}]*[\r\n]+|[{_W}]+(?![^{_W}])|[{_W}]+"
    )


_LLAMA3 = _llama3_like("{1,3}")
_QWEN2 = _llama3_like("")

# SmolLM, StarCoder: the regex "\p{N}" runs first (through std::regex in llama.cpp), making every
# number a piece of its own, and GPT-2's splitter then runs inside each piece. As one pattern: a
# number alone; nothing else can reach over a number; and "\s+(?!\S)" also ends before a number,
# where the piece ends (a splitter sees nothing past the end of its piece).
_DIGITS_GPT2 = re.compile(
    rf"'(?:[stmd]|re|ve|ll)| ?[{_L}]+|[{_N}]| ?[^{_W}{_L}{_N}]+|[{_W}]+(?![^{_W}{_N}])|[{_W}]+"
)


@dataclass(frozen=True)
class _Pre:
    """How llama.cpp's loader sets up one ``tokenizer.ggml.pre`` value (src/llama-vocab.cpp)."""

    split: re.Pattern[str]
    ignore_merges: bool = False  # a word that is a token is that token, without merging
    add_bos: bool = False  # the default when tokenizer.ggml.add_bos_token is absent


_LLAMA3_PRE = _Pre(_LLAMA3, ignore_merges=True, add_bos=True)
_PRE: Final[dict[str, _Pre]] = {
    # LLAMA_VOCAB_PRE_TYPE_LLAMA3
    **dict.fromkeys(("llama-bpe", "llama3", "llama-v3"), _LLAMA3_PRE),
    # LLAMA_VOCAB_PRE_TYPE_QWEN2 and STABLELM2 (same pattern)
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"), _Pre(_QWEN2)),
    # LLAMA_VOCAB_PRE_TYPE_GPT2 and MPT, OLMO (same pattern)
    **dict.fromkeys(("gpt-2", "phi-2", "mpt", "olmo"), _Pre(_GPT2)),
    # LLAMA_VOCAB_PRE_TYPE_SMOLLM, STARCODER, REFACT, COMMAND_R: "\p{N}" first, then GPT-2's pattern
    **dict.fromkeys(("smollm", "starcoder", "refact", "command-r"), _Pre(_DIGITS_GPT2)),
}
SUPPORTED_PRE_TOKENIZERS: Final = tuple(sorted(_PRE))
"""The values of ``tokenizer.ggml.pre`` this tokenizer reproduces llama.cpp for."""


class _ClassText(dict[int, int]):
    """``str.translate`` table from code points to their class representatives, filled on demand."""

    def __missing__(self, cp: int) -> int:
        if cp < 128:
            rep = cp
        elif cp in WHITESPACE:
            rep = 0x0B
        else:
            rep = _REPRESENTATIVE[RANGE_CLASSES[bisect.bisect_right(RANGE_STARTS, cp) - 1]]
        self[cp] = rep
        return rep


_CLASS_TEXT: Final = _ClassText()


def _split(pattern: re.Pattern[str], text: str) -> list[str]:
    """The words of ``text``: the matches of ``pattern`` in its class text, cut from ``text``."""
    if text.isascii():
        words: list[str] = pattern.findall(text)
        n = sum(map(len, words))
    else:
        ends = list(itertools.accumulate(map(len, pattern.findall(text.translate(_CLASS_TEXT)))))
        words = [text[a:b] for a, b in zip([0, *ends], ends, strict=False)]
        n = ends[-1] if ends else 0
    # Every code point starts a match of these patterns (llama.cpp's splitters have a "no match"
    # branch that cannot be reached either): a gap would be a bug here, never silently lost text.
    if n != len(text):
        raise AssertionError(f"pre-tokenizer {pattern.pattern!r} left text out of {text!r}")
    return words


# ---------------------------------------------------------------------------------------------
# UTF-8 as llama.cpp reads it, and GPT-2's byte characters
# ---------------------------------------------------------------------------------------------


def _utf8_like_llama_cpp(data: bytes) -> str:
    """``unicode_cpts_from_utf8``: well-formed UTF-8 as usual; an invalid lead byte or a truncated
    sequence becomes U+FFFD for that one byte; overlong forms and surrogates are decoded as they
    stand (llama.cpp does not check them)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            out.append(chr(b))
            i += 1
            continue
        if b & 0xE0 == 0xC0:
            need, cp = 1, b & 0x1F
        elif b & 0xF0 == 0xE0:
            need, cp = 2, b & 0x0F
        elif b & 0xF8 == 0xF0:
            need, cp = 3, b & 0x07
        else:  # a continuation byte or 0xF8..0xFF where a sequence should start
            out.append("\ufffd")
            i += 1
            continue
        tail = data[i + 1 : i + 1 + need]
        if i + need >= n or any(c & 0xC0 != 0x80 for c in tail):
            out.append("\ufffd")
            i += 1
            continue
        for c in tail:
            cp = (cp << 6) | (c & 0x3F)
        if cp > 0x10FFFF:
            # llama.cpp decodes it, then fails to encode it again (unicode_cpt_to_utf8 throws)
            raise ValueError(f"invalid UTF-8 at byte {i}: code point U+{cp:X} is beyond U+10FFFF")
        out.append(chr(cp))
        i += 1 + need
    return "".join(out)


def _byte_chars() -> str:
    """GPT-2's printable stand-in for each byte (unicode_byte_to_utf8_map)."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + n)
            n += 1
    return "".join(chars[b] for b in range(256))


_BYTE_TABLE: Final = str.maketrans({chr(b): c for b, c in enumerate(_byte_chars())})


def _byte_level(word: str) -> str:
    # "surrogatepass": a lone surrogate decoded from ill-formed input is re-encoded as llama.cpp's
    # unicode_cpt_to_utf8 does, as its three bytes
    return word.encode("utf-8", "surrogatepass").decode("latin-1").translate(_BYTE_TABLE)


# ---------------------------------------------------------------------------------------------
# Token attributes and special tokens, as llama.cpp's loader sets them
# ---------------------------------------------------------------------------------------------

_ATTR_UNKNOWN, _ATTR_NORMAL, _ATTR_CONTROL, _ATTR_USER_DEFINED = 1 << 0, 1 << 2, 1 << 3, 1 << 4
_ATTR_OF_TYPE: Final = {1: _ATTR_NORMAL, 2: _ATTR_UNKNOWN, 3: _ATTR_CONTROL, 4: _ATTR_USER_DEFINED,
                        5: 1 << 1, 6: 1 << 5}  # 5 unused, 6 byte; anything else: undefined (0)

# Texts llama.cpp's loader takes for end-of-generation tokens and makes control tokens (DeepSeek's
# use U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK).
_EOG_TEXTS: Final = frozenset((
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\uff5cend▁of▁sentence\uff5c>", "[e~[",
))
# Fill-in-the-middle tokens found by text when the metadata names none (made control tokens).
_FIM_TEXTS: Final = {
    "fim_pre": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\uff5cfim▁begin\uff5c>", "<PRE>",
                "▁<PRE>", "<|code_prefix|>", "<|prefix|>"),
    "fim_suf": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\uff5cfim▁hole\uff5c>", "<SUF>", "▁<SUF>",
                "<|code_suffix|>", "<|suffix|>"),
    "fim_mid": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\uff5cfim▁end\uff5c>", "<MID>", "▁<MID>",
                "<|code_middle|>", "<|middle|>"),
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}
_ALWAYS_USER_DEFINED: Final = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")  # gpt-oss


def _metadata_id(md: Mapping[str, Any], key: str, default: int | None, n_vocab: int) -> int | None:
    """A special token id as llama.cpp reads it: the default unless the key holds one in range."""
    if default is not None and default >= n_vocab:
        default = None
    if key not in md:
        return default
    value = md[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"GGUF metadata {key!r} must be an integer token id, got {type(value).__name__}")
    return value if 0 <= value < n_vocab else default  # llama.cpp warns and keeps the default


def _special_tokens(md: Mapping[str, Any], texts: list[str], attrs: list[int], to_id: dict[str, int],
                    eos: int | None) -> tuple[list[int], list[int]]:
    """Ids of the tokens that ``llama_tokenize`` cuts out of the text, longest text first: with
    ``parse_special=true`` all control, user-defined and unknown tokens, with ``false`` only the
    user-defined ones that are neither control nor unknown; the attributes as llama.cpp's loader
    has adjusted them by text."""
    n = len(texts)
    ids = {k: _metadata_id(md, f"tokenizer.ggml.{k}_token_id", None, n) for k in ("eot", "eom")}
    fim_keys = {"fim_pre": "prefix", "fim_suf": "suffix", "fim_mid": "middle"}  # deprecated names
    for kind in _FIM_TEXTS:
        ids[kind] = _metadata_id(md, f"tokenizer.ggml.{kind}_token_id", None, n)
        if kind in fim_keys:
            ids[kind] = _metadata_id(md, f"tokenizer.ggml.{fim_keys[kind]}_token_id", ids[kind], n)
    # A fill-in-the-middle kind the metadata leaves open takes a token of one of its texts and makes
    # it a control token. llama.cpp visits the texts in hash-map order; when a vocabulary has more
    # than one of a kind's texts, this takes the lowest id (llama.cpp's choice is unspecified).
    for kind, candidates in _FIM_TEXTS.items():
        if ids[kind] is None:
            found = sorted(to_id[t] for t in candidates if t in to_id)
            if found:
                ids[kind] = found[0]
                attrs[found[0]] |= _ATTR_CONTROL
    eog = {ids[k] for k in ("fim_pad", "fim_rep", "fim_sep")} - {None}
    for text in _EOG_TEXTS:
        if text in to_id:
            eog.add(to_id[text])
            attrs[to_id[text]] |= _ATTR_CONTROL
    for text in _ALWAYS_USER_DEFINED:
        if text in to_id:
            attrs[to_id[text]] = _ATTR_USER_DEFINED
    eog |= {eos, ids["eot"], ids["eom"]} - {None}
    eog_texts = {texts[i]: i for i in eog if i is not None}
    if "<|end|>" in eog_texts and (
        ("<|return|>" in eog_texts and "<|call|>" in eog_texts)
        or (("<|call|>" in eog_texts or "<|calls|>" in eog_texts) and "<|flush|>" in eog_texts)
    ):
        attrs[eog_texts["<|end|>"]] = _ATTR_USER_DEFINED
    if "</s>" in eog_texts and ("<|tool_response>" in eog_texts or "<|plamo:eos|>" in eog_texts):
        attrs[eog_texts["</s>"]] = _ATTR_NORMAL
    special = [i for i, a in enumerate(attrs) if a & (_ATTR_CONTROL | _ATTR_USER_DEFINED | _ATTR_UNKNOWN)]
    # llama.cpp sorts by length with std::sort, which leaves the order of equal lengths unspecified;
    # it matters only for two such tokens of one length that overlap in the text.
    special.sort(key=lambda i: (-len(texts[i].encode("utf-8")), i))
    return special, [i for i in special if not attrs[i] & (_ATTR_CONTROL | _ATTR_UNKNOWN)]


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------


_CACHE_WORDS: Final = 1 << 18  # distinct words whose ids are kept (bounds the memory on huge texts)


def _get(md: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in md:
        raise ValueError(f"GGUF metadata has no {key!r} ({what})")
    value = md[key]
    if not isinstance(value, kind):
        raise ValueError(f"GGUF metadata {key!r} must be {what}, got {type(value).__name__}")
    return value


def _get_bool(md: Mapping[str, Any], key: str, default: bool) -> bool:
    value = md.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"GGUF metadata {key!r} must be a bool, got {type(value).__name__}")
    return value


class Tokenizer:
    """A byte-level BPE tokenizer (``tokenizer.ggml.model = "gpt2"``) from GGUF metadata.

    Build it with :meth:`from_gguf` or :meth:`from_metadata`; :meth:`encode` gives llama.cpp's
    token ids for a text. ``tokenizer.ggml.pre`` must be one of :data:`SUPPORTED_PRE_TOKENIZERS`.

    Attributes:
        pre: the pre-tokenizer's name (``tokenizer.ggml.pre``).
        n_vocab: number of tokens.
        bos_id, eos_id: the BOS and EOS token ids (None if the model has none).
        add_bos, add_eos: whether :meth:`encode` with ``add_special=True`` adds them.
    """

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        md = metadata
        model = _get(md, "tokenizer.ggml.model", str, "the tokenizer's kind, a string")
        if model != "gpt2":
            raise ValueError(f"tokenizer.ggml.model is {model!r}; realizar reads only byte-level BPE, 'gpt2'")
        pre = md.get("tokenizer.ggml.pre", "")
        if pre not in _PRE:
            raise ValueError(
                f"tokenizer.ggml.pre is {pre!r}; realizar reproduces llama.cpp's pre-tokenizers "
                f"{', '.join(SUPPORTED_PRE_TOKENIZERS)}"
            )
        # llama.cpp changes token attributes by model name for these (strip spaces around special
        # tokens), which this tokenizer does not do
        name = str(md.get("general.name", "")).lower()
        arch = str(md.get("general.architecture", ""))
        if any(s in name for s in ("phi-3", "phi3", "modern-bert")) or any(
            s in arch for s in ("nomic-bert-moe", "jina-bert-v3")
        ):
            raise ValueError(f"model {name or arch!r}: llama.cpp strips spaces around its special tokens, "
                             "which realizar's tokenizer does not reproduce")
        self.pre: str = pre
        self._pre = _PRE[pre]

        texts = list(_get(md, "tokenizer.ggml.tokens", list, "the vocabulary, a list of strings"))
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("tokenizer.ggml.tokens must be a non-empty list of strings")
        n = len(texts)
        for i, t in enumerate(texts):
            if not t:
                texts[i] = f"[EMPTY_{i}]"  # as llama.cpp names an empty token
        self.n_vocab: int = n
        self._texts = texts
        self._to_id: dict[str, int] = {t: i for i, t in enumerate(texts)}  # a repeated text: the last id

        attrs = [_ATTR_NORMAL] * n
        if "tokenizer.ggml.token_type" in md:
            types = np.asarray(md["tokenizer.ggml.token_type"])
            if types.ndim != 1 or not np.issubdtype(types.dtype, np.integer):
                raise ValueError("tokenizer.ggml.token_type must be an array of integers")
            if types.size < n:
                raise ValueError(f"tokenizer.ggml.token_type has {types.size} entries for {n} tokens")
            attrs = [_ATTR_OF_TYPE.get(int(t), 0) for t in types[:n].tolist()]

        merges = _get(md, "tokenizer.ggml.merges", list, "the BPE merges, a list of strings")
        self._ranks: dict[tuple[str, str], int] = {}
        for rank, merge in enumerate(merges):
            if not isinstance(merge, str):
                raise ValueError(f"tokenizer.ggml.merges[{rank}] is {type(merge).__name__}, not a string")
            cut = merge.find(" ", 1)
            if cut >= 0:  # llama.cpp keeps the first rank of a repeated pair
                self._ranks.setdefault((merge[:cut], merge[cut + 1 :]), rank)

        # llama.cpp's defaults for "gpt2" vocabularies, then the metadata's ids where in range
        self.bos_id: int | None = _metadata_id(md, "tokenizer.ggml.bos_token_id", 11, n)
        self.eos_id: int | None = _metadata_id(md, "tokenizer.ggml.eos_token_id", 11, n)
        self.add_bos: bool = _get_bool(md, "tokenizer.ggml.add_bos_token", self._pre.add_bos)
        self.add_eos: bool = _get_bool(md, "tokenizer.ggml.add_eos_token", False)
        if self.add_bos and self.bos_id is None:
            raise ValueError("the model asks for a BOS token (add_bos_token) but has none in its vocabulary")
        if self.add_eos and self.eos_id is None:
            raise ValueError("the model asks for an EOS token (add_eos_token) but has none in its vocabulary")

        special, user = _special_tokens(md, texts, attrs, self._to_id, self.eos_id)
        self._cut = {flag: [(i, texts[i].encode("utf-8")) for i in ids] for flag, ids in ((True, special),
                                                                                        (False, user))}
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Tokenizer:
        """The tokenizer described by GGUF metadata (a mapping as :attr:`GGUFFile.metadata`)."""
        return cls(metadata)

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """The tokenizer of the GGUF file at ``path`` (only its metadata is read)."""
        from ..gguf import GGUFFile

        with GGUFFile(path) as f:
            return cls(f.metadata)

    def __repr__(self) -> str:
        return (f"Tokenizer(pre={self.pre!r}, n_vocab={self.n_vocab}, bos_id={self.bos_id}, "
                f"add_bos={self.add_bos}, add_eos={self.add_eos})")

    def encode(
        self, text: str | bytes, *, add_special: bool = True, parse_special: bool = False
    ) -> npt.NDArray[np.int32]:
        """Token ids of ``text`` as ``llama_tokenize(vocab, text, add_special, parse_special)``.

        Args:
            text: a ``str`` (encoded as UTF-8) or raw ``bytes`` (read as llama.cpp reads them:
                ill-formed UTF-8 is replaced byte by byte with U+FFFD, not rejected).
            add_special: add BOS first if the model's ``add_bos_token`` says so, and EOS last if its
                ``add_eos_token`` does (``llama-tokenize`` passes the model's ``add_bos`` here,
                ``llama-perplexity`` True).
            parse_special: also cut the texts of control tokens (``<|im_end|>``) out of the text as
                those tokens; by default (as ``llama-perplexity``, unlike ``llama-tokenize``) only
                user-defined tokens are, and a control token's text is tokenized as text.

        Returns:
            A 1-D int32 array of token ids.

        Raises:
            ValueError: ``text`` is a ``str`` that cannot be encoded (a lone surrogate), or bytes
                that decode to a code point beyond U+10FFFF (llama.cpp fails on those too).
        """
        if isinstance(text, str):
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(f"text cannot be encoded as UTF-8 at character {e.start}: {e.reason}") from e
        elif isinstance(text, bytes | bytearray | memoryview):
            data = bytes(text)
        else:
            raise TypeError(f"text must be str or bytes, got {type(text).__name__}")
        out: list[int] = []
        if add_special and self.add_bos:
            assert self.bos_id is not None
            out.append(self.bos_id)
        for piece in self._partition(data, self._cut[bool(parse_special)]):
            if isinstance(piece, int):
                out.append(piece)
            else:
                self._encode_text(piece, out)
        if add_special and self.add_eos:
            assert self.eos_id is not None
            out.append(self.eos_id)
        return np.asarray(out, dtype=np.int32)

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _partition(data: bytes, special: list[tuple[int, bytes]]) -> list[bytes | int]:
        """tokenizer_st_partition: the text cut at each occurrence of a special token's text, in
        the order llama.cpp cuts (token by token, left to right in each remaining piece)."""
        pieces: list[bytes | int] = [data] if data else []
        for tid, tb in special:
            if not any(isinstance(p, bytes) and tb in p for p in pieces):
                continue
            cut: list[bytes | int] = []
            for p in pieces:
                if isinstance(p, int) or tb not in p:
                    cut.append(p)
                    continue
                for k, part in enumerate(p.split(tb)):
                    if k:
                        cut.append(tid)
                    if part:
                        cut.append(part)
            pieces = cut
        return pieces

    def _encode_text(self, data: bytes, out: list[int]) -> None:
        cache = self._cache
        for word in _split(self._pre.split, _utf8_like_llama_cpp(data)):
            ids = cache.get(word)
            if ids is None:
                if len(cache) >= _CACHE_WORDS:
                    cache.clear()
                ids = cache[word] = self._bpe(_byte_level(word))
            out.extend(ids)

    def _bpe(self, word: str) -> tuple[int, ...]:
        """llm_tokenizer_bpe_session::tokenize for one word (in GPT-2's byte characters)."""
        to_id = self._to_id
        if self._pre.ignore_merges and word in to_id:
            return (to_id[word],)
        sym = _merge_short(word, self._ranks) if len(word) <= _SHORT_WORD else _merge_long(word, self._ranks)
        ids: list[int] = []
        for s in sym:
            tid = to_id.get(s)
            if tid is not None:
                ids.append(tid)
                continue
            # not in the vocabulary: one token per byte of the symbol's UTF-8 where there is one
            # (only ASCII bytes can be tokens of their own in a vocabulary of valid UTF-8 strings)
            ids.extend(to_id[chr(b)] for b in s.encode("utf-8") if b < 0x80 and chr(b) in to_id)
        return tuple(ids)


# Both merge loops do what llama.cpp's priority queue of pairs does: merge the adjacent pair of lowest
# rank, the leftmost of equal ranks, then look again. The queue pops the least (rank, left index) of
# the pairs it holds and skips those an earlier merge changed, and it holds every current pair, so
# its next merge is always that pair. The short loop finds it by scanning, the long one with a heap.

_SHORT_WORD: Final = 64  # characters; longer words use the heap (the scan is quadratic)
_NO_RANK: Final = 1 << 62


def _merge_short(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    sym = list(word)
    pair = [ranks.get((sym[i], sym[i + 1]), _NO_RANK) for i in range(len(sym) - 1)]
    while pair:
        best = min(pair)
        if best == _NO_RANK:
            break
        i = pair.index(best)  # the leftmost
        sym[i] += sym.pop(i + 1)
        del pair[i]
        if i > 0:
            pair[i - 1] = ranks.get((sym[i - 1], sym[i]), _NO_RANK)
        if i < len(pair):
            pair[i] = ranks.get((sym[i], sym[i + 1]), _NO_RANK)
    return sym


def _merge_long(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """llama.cpp's loop itself: symbols linked left and right, a heap of (rank, left, right, text)."""
    sym = list(word)
    n = len(sym)
    prev = list(range(-1, n - 1))
    nxt = [*range(1, n), -1]
    heap: list[tuple[int, int, int, str]] = []

    def bigram(left: int, right: int) -> None:
        if left >= 0 and right >= 0:
            rank = ranks.get((sym[left], sym[right]))
            if rank is not None:
                heapq.heappush(heap, (rank, left, right, sym[left] + sym[right]))

    for i in range(1, n):
        bigram(i - 1, i)
    while heap:
        _, left, right, merged = heapq.heappop(heap)
        # skip a pair that an earlier merge changed (as llama.cpp does: by comparing the text)
        if not sym[left] or not sym[right] or sym[left] + sym[right] != merged:
            continue
        sym[left], sym[right] = merged, ""
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        bigram(prev[left], left)
        bigram(left, nxt[left])
    return [s for s in sym if s]
