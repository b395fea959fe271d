"""The Python API: accepted inputs, out=, shape=, qtype spellings, every error path, the GIL."""

from __future__ import annotations

import mmap
import sys
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest
import realizar
from realizar import QuantType, RealizarError

from .conftest import assert_bits_equal


def q8_blocks(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, 34), dtype=np.uint8)
    raw[:, 0:2] = np.frombuffer(np.float16(0.25).tobytes(), np.uint8)
    return raw.tobytes()


def expected_q8(data: bytes) -> np.ndarray:
    b = np.frombuffer(data, np.uint8).reshape(-1, 34)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)
    return (b[:, 2:].view(np.int8).astype(np.float32) * d).reshape(-1)


# --- QuantType --------------------------------------------------------------------------------


def test_quanttype_matches_rust_table_and_gguf_py() -> None:
    table = realizar._realizar._type_table()
    assert [(t.name, t.ggml_id, t.block_size, t.type_size) for t in QuantType] == table
    for t in QuantType:
        g = gguf.GGMLQuantizationType[t.name]
        assert int(g) == t.ggml_id
        assert t == g  # type: ignore[comparison-overlap]  # both are IntEnums of the same id
        assert (t.block_size, t.type_size) == gguf.GGML_QUANT_SIZES[g]
        assert t.bits_per_weight == t.type_size * 8 / t.block_size
    assert QuantType.Q4_0.bits_per_weight == 4.5 and QuantType.Q8_0.bits_per_weight == 8.5


@pytest.mark.parametrize(
    "spelling", ["Q6_K", "q6_k", " q6_K ", 14, QuantType.Q6_K, gguf.GGMLQuantizationType.Q6_K]
)
def test_qtype_spellings(spelling: object) -> None:
    assert QuantType.parse(spelling) is QuantType.Q6_K  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["q7_k", "", "IQ2_XXS", 4, 9, 16, 31, 99999])
def test_unknown_qtype_lists_supported(bad: object) -> None:
    with pytest.raises(RealizarError, match=r"supported: .*Q4_0 \(2\).*Q6_K \(14\)") as e:
        realizar.dequantize(b"", bad)  # type: ignore[arg-type]
    assert str(bad).strip() in str(e.value)


@pytest.mark.parametrize("bad", [-1, 2**40])
def test_out_of_range_qtype_id(bad: int) -> None:
    with pytest.raises((RealizarError, OverflowError)):
        realizar.dequantize(b"", bad)


@pytest.mark.parametrize("bad", [1.0, None, b"Q4_0", True])
def test_qtype_of_wrong_type(bad: object) -> None:
    with pytest.raises(TypeError, match="qtype must be"):
        realizar.dequantize(b"", bad)  # type: ignore[arg-type]


# --- inputs -----------------------------------------------------------------------------------


def test_every_kind_of_buffer(tmp_path: Path) -> None:
    data = q8_blocks(5)
    want = expected_q8(data)
    path = tmp_path / "blocks.bin"
    path.write_bytes(data)
    arr = np.frombuffer(data, np.uint8)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        inputs = {
            "bytes": data,
            "bytearray": bytearray(data),
            "memoryview": memoryview(data),
            "uint8 array": arr,
            "int8 array": arr.view(np.int8),
            "2-D array": arr.reshape(5, 34),
            "contiguous slice": np.concatenate([arr, arr])[len(data) :],
            "memmap": np.memmap(path, dtype=np.uint8, mode="r"),
            "mmap": mm,
        }
        for name, obj in inputs.items():
            assert_bits_equal(realizar.dequantize(obj, "Q8_0"), want, name)


def test_gguf_py_reader_tensor_slices(tmp_path: Path) -> None:
    path = tmp_path / "t.gguf"
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    q = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("w", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    t = gguf.GGUFReader(str(path)).tensors[0]
    want = gguf.quants.dequantize(t.data, t.tensor_type)
    assert_bits_equal(realizar.dequantize(t.data, t.tensor_type, shape=want.shape), want, "reader tensor")
    assert_bits_equal(realizar.dequantize(t.data[1:3], "Q8_0"), want[1:3], "row slice")


def test_empty_input_gives_empty_array() -> None:
    y = realizar.dequantize(b"", "Q4_K")
    assert y.shape == (0,) and y.dtype == np.float32


@pytest.mark.parametrize(("qt", "n"), [("Q4_0", 17), ("Q6_K", 211), ("Q6_K", 419), ("F32", 7), ("BF16", 3)])
def test_length_not_whole_blocks(qt: str, n: int) -> None:
    t = QuantType.parse(qt)
    with pytest.raises(RealizarError) as e:
        realizar.dequantize(bytes(n), qt)
    msg = str(e.value)
    assert (
        t.name in msg and str(t.type_size) in msg and str(n) in msg and f"{n % t.type_size} bytes left" in msg
    )


def test_non_contiguous_input() -> None:
    arr = np.frombuffer(q8_blocks(4) * 2, np.uint8).reshape(8, 34)[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        realizar.dequantize(arr, "Q8_0")
    with pytest.raises(ValueError, match="C-contiguous"):
        realizar.dequantize(memoryview(q8_blocks(2))[::2], "Q8_0")


@pytest.mark.parametrize("bad", [[1, 2, 3], "text", 3, None])
def test_not_a_buffer(bad: object) -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        realizar.dequantize(bad, "Q8_0")


# --- output -----------------------------------------------------------------------------------


def test_result_is_a_fresh_owning_float32_array() -> None:
    data = bytearray(q8_blocks(3))
    y = realizar.dequantize(data, "Q8_0")
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.flags.writeable
    data[2:] = bytes(len(data) - 2)  # the result does not alias the input
    assert_bits_equal(y, expected_q8(q8_blocks(3)), "after input change")


def test_out_is_filled_in_place_and_returned() -> None:
    data = q8_blocks(4)
    out = np.full((4, 32), 7.0, np.float32)
    y = realizar.dequantize(data, "Q8_0", out=out)
    assert y is out
    assert_bits_equal(out, expected_q8(data), "out")
    out2 = np.empty(128, np.float32)
    assert realizar.dequantize(data, "Q8_0", out=out2, shape=128) is out2


def test_out_errors() -> None:
    data = q8_blocks(2)
    with pytest.raises(TypeError, match="dtype float32, got float64"):
        realizar.dequantize(data, "Q8_0", out=np.empty(64))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numpy.ndarray"):
        realizar.dequantize(data, "Q8_0", out=bytearray(256))  # type: ignore[arg-type]
    with pytest.raises(RealizarError, match="65 elements.*64 weights"):
        realizar.dequantize(data, "Q8_0", out=np.empty(65, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        realizar.dequantize(data, "Q8_0", out=np.empty((64, 2), np.float32)[:, 0])
    with pytest.raises(ValueError, match="C-contiguous"):
        realizar.dequantize(data, "Q8_0", out=np.empty((8, 8), np.float32).T)
    ro = np.empty(64, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        realizar.dequantize(data, "Q8_0", out=ro)
    with pytest.raises(RealizarError, match="does not match out.shape"):
        realizar.dequantize(data, "Q8_0", out=np.empty(64, np.float32), shape=(2, 32))


def test_out_overlapping_input_is_refused() -> None:
    buf = np.zeros(64, np.float32)
    data = buf.view(np.uint8)[: 34 * 2]
    with pytest.raises(ValueError, match="overlap"):
        realizar.dequantize(data, "Q8_0", out=buf)


def test_shape() -> None:
    data = q8_blocks(4)
    assert realizar.dequantize(data, "Q8_0", shape=(2, 2, 32)).shape == (2, 2, 32)
    assert realizar.dequantize(data, "Q8_0", shape=[4, 32]).shape == (4, 32)
    assert realizar.dequantize(data, "Q8_0", shape=np.int64(128)).shape == (128,)
    bad: tuple[int, ...]
    for bad in [(3, 32), (128, 2)]:
        with pytest.raises(RealizarError, match=r"shape .* holds .* decodes to 128 weights"):
            realizar.dequantize(data, "Q8_0", shape=bad)
    for bad in [(-4, -32), (-1, -1, 32), (2, -2)]:
        with pytest.raises(RealizarError, match=r"at most one may be -1.*decodes to 128 weights"):
            realizar.dequantize(data, "Q8_0", shape=bad)
    for bad in [(-1, 3, 32), (0, -1), (-1, 0)]:
        with pytest.raises(RealizarError, match=r"no size for the -1 fits.*decodes to 128 weights"):
            realizar.dequantize(data, "Q8_0", shape=bad)


def test_shape_infers_minus_one_as_numpy_does() -> None:
    data = q8_blocks(4)
    want = realizar.dequantize(data, "Q8_0")
    shapes: list[int | tuple[int, ...]] = [(-1, 32), (4, -1), (2, -1, 32), -1, (-1,), (1, -1, 1)]
    for shape in shapes:
        got = realizar.dequantize(data, "Q8_0", shape=shape)
        assert got.shape == want.reshape(shape).shape, shape
        assert_bits_equal(got, want, str(shape))
    out = np.empty((4, 32), np.float32)
    assert realizar.dequantize(data, "Q8_0", out=out, shape=(-1, 32)) is out
    with pytest.raises(RealizarError, match="does not match out.shape"):
        realizar.dequantize(data, "Q8_0", out=out, shape=(-1, 64))


@pytest.mark.parametrize("bad", [0, -1, True])
def test_bad_threads(bad: int) -> None:
    with pytest.raises(ValueError, match="threads"):
        realizar.dequantize(q8_blocks(1), "Q8_0", threads=bad)


@pytest.mark.parametrize("threads", [1, 2, 3, 7, 64])
def test_thread_counts_give_identical_results(threads: int) -> None:
    data = q8_blocks(1001, seed=threads)
    assert_bits_equal(
        realizar.dequantize(data, "Q8_0", threads=threads), expected_q8(data), f"{threads} threads"
    )


def test_weights_in() -> None:
    assert realizar.weights_in(420, "Q6_K") == 512
    with pytest.raises(RealizarError, match="210 bytes"):
        realizar.weights_in(421, "Q6_K")


# --- kernels ----------------------------------------------------------------------------------


def test_kernel_selection() -> None:
    avail = realizar.available_kernels()
    assert "scalar" in avail and realizar.kernel() in avail
    try:
        for k in avail:
            assert realizar.set_kernel(k) == k == realizar.kernel()
        with pytest.raises(RealizarError, match="unknown kernel"):
            realizar.set_kernel("sse9")
        for k in {"avx2", "avx512", "neon"} - set(avail):
            with pytest.raises(RealizarError, match="not supported"):
                realizar.set_kernel(k)
    finally:
        realizar.set_kernel("auto")
    assert realizar.kernel() == avail[-1] or realizar.kernel() in avail


# --- the GIL ----------------------------------------------------------------------------------


def test_gil_is_released_while_decoding() -> None:
    """With a 1 s switch interval the main thread can only run during the call if the call
    releases the GIL; it counts how often it ran before the worker's call returned."""
    data = q8_blocks(1 << 18)  # 8M weights, 32 MiB of output: tens of milliseconds
    started, finished = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        realizar.dequantize(data, "Q8_0", threads=1)
        finished.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        t = threading.Thread(target=work)
        t.start()
        started.wait()
        ran_during_call = 0
        while not finished.is_set():
            ran_during_call += 1
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert ran_during_call > 100
