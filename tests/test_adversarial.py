"""Adversarial use: files that are valid GGUF but hostile, the command line's output file under
attack or interruption, and arguments that are wrong in type or range.

Malformed files (every kind of bad byte) are in ``test_gguf.py``; this module is about inputs that
a careless implementation would accept and then hang, blow up, print raw, or lose data on. Every
test is bounded in time: a defect that would hang runs in a child process with a timeout, and the
timeouts are generous (tens of seconds where the fixed code needs well under one), so that they
fail only on the defect, never on a slow machine.

Sections: helpers; hostile-but-valid files (FIFO, many tensors, metadata blow-up, huge keys,
terminal escapes, names that .npz or safetensors cannot hold, a file truncated while mapped); the
CLI's output file (permissions, a symlink swap, full disk, Ctrl-C, SIGTERM) and token files; argument
abuse (type ids, integers, ``out=``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import realizar
from realizar import GGUFFile, QuantType, RealizarError, load_gguf
from realizar.cli import main

LINUX = sys.platform.startswith("linux")

# ---------------------------------------------------------------------------------------------
# Helpers: GGUF files written byte by byte (gguf-py's writer is too slow for 100,000 tensors and
# refuses some of the names needed here)
# ---------------------------------------------------------------------------------------------

U32, F32_T, STR, ARR = 4, 6, 8, 9  # GGUF metadata value type ids


def gstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv_str(key: str | bytes, value: str | bytes) -> bytes:
    return gstr(key) + struct.pack("<I", STR) + gstr(value)


def kv_u32(key: str | bytes, value: int) -> bytes:
    return gstr(key) + struct.pack("<II", U32, value)


def kv_str_array(key: str, values: Sequence[str | bytes]) -> bytes:
    return gstr(key) + struct.pack("<IIQ", ARR, STR, len(values)) + b"".join(gstr(v) for v in values)


def gguf_file(
    path: Path,
    kvs: Sequence[bytes] = (),
    tensors: Sequence[tuple[str | bytes, Sequence[int], int, bytes]] = (),
) -> Path:
    """A GGUF v3 file: ``kvs`` (encoded key/values), ``tensors`` as (name, GGUF dims, type id, data)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    infos, data = b"", b""
    for name, dims, type_id, raw in tensors:
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", type_id, len(data))
        data += raw + b"\0" * (-len(raw) % 32)
    body = head + infos
    body += b"\0" * (-len(body) % 32)
    path.write_bytes(body + data)
    return path


def f32_tensor(name: str | bytes, values: Sequence[float]) -> tuple[str | bytes, list[int], int, bytes]:
    return (name, [len(values)], int(QuantType.F32), np.asarray(values, "<f4").tobytes())


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (for hangs, signals and memory), with a timeout."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # every C0 control but newline, DEL, C1


def assert_no_control(text: str, what: str) -> None:
    found = CONTROL.findall(text)
    assert not found, f"{what} holds raw control characters {found[:5]!r}"


def no_leftovers(directory: Path) -> None:
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".partial")], list(directory.iterdir())


# ---------------------------------------------------------------------------------------------
# Hostile-but-valid files
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes (and ignores Ctrl-C meanwhile): the
    path's type is checked first. Run in a child: the defect is a hang."""
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    r = run_python(
        """
        import sys, realizar
        try:
            realizar.GGUFFile(sys.argv[1])
        except OSError as e:
            print(type(e).__name__, e)
        """,
        str(fifo),
    )
    assert r.returncode == 0, r.stderr
    assert "not a regular file" in r.stdout
    r = run_python("import sys, realizar.cli as c; sys.exit(c.main(['info', sys.argv[1]]))", str(fifo))
    assert r.returncode == 1 and "realizar: error:" in r.stderr and "not a regular file" in r.stderr
    for device in ["/dev/null", "/dev/zero"]:
        if os.path.exists(device):
            with pytest.raises(OSError, match="not a regular file"):
                GGUFFile(device)


def many_tensors_file(path: Path, n: int) -> Path:
    head = b"GGUF" + struct.pack("<IQQ", 3, n, 0)
    infos = b"".join(gstr(f"t{i}") + struct.pack("<IQIQ", 1, 1, 0, 32 * i) for i in range(n))
    body = head + infos
    body += b"\0" * (-len(body) % 32)
    data = np.zeros((n, 8), "<f4")
    data[:, 0] = np.arange(n)
    path.write_bytes(body + data.tobytes())
    return path


def test_load_gguf_decodes_in_bounded_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension checks the outputs of one call against each other in more than linear time,
    so load_gguf hands it at most ``_MANY_JOBS`` tensors at a time; the result is the same."""
    p = many_tensors_file(tmp_path / "many.gguf", 1000)
    calls: list[int] = []
    real = realizar._realizar._dequantize_many

    def spy(jobs: list[Any], threads: int = 0) -> None:
        calls.append(len(jobs))
        real(jobs, threads=threads)

    monkeypatch.setattr(realizar._realizar, "_dequantize_many", spy)
    loaded = load_gguf(p)
    assert sum(calls) == 1000 and max(calls) <= realizar.gguf._MANY_JOBS < 1000
    assert [float(a[0]) for a in loaded.values()] == list(range(1000))


def test_100000_tensors_load_in_linear_time(tmp_path: Path) -> None:
    """100,000 one-element tensors (a 7 MB file): lookups by name are by hash (see the Rust test
    ``lookups_use_the_index``), so loading takes seconds, not the minute and more it took when each
    lookup scanned the list. A generous bound in a child process."""
    p = many_tensors_file(tmp_path / "many.gguf", 100_000)
    r = run_python(
        """
        import sys, realizar
        with realizar.GGUFFile(sys.argv[1]) as f:
            assert len(f) == 100_000 and f.raw("t99999").size == 4
        d = realizar.load_gguf(sys.argv[1])
        assert len(d) == 100_000 and float(d["t12345"][0]) == 12345.0
        print("ok")
        """,
        str(p),
        timeout=45,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


MEASURE = """
import json, os, sys, realizar

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

def measure(fn):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = hwm()
    keep = fn()
    return hwm() - before, keep
"""


@pytest.mark.skipif(not LINUX, reason="peak resident set measured through /proc (Linux)")
def test_metadata_blow_up_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file of a million empty nested arrays (12 MB): opening it allocates nothing per
    element, reading another key converts nothing else, and converting the huge key costs a bounded
    multiple of its bytes (it took 2.3 GB for 100 MB when all metadata was converted, twice, on the
    first access). ``realizar info`` shows it without converting it."""
    n = 1_000_000
    nested = gstr("nested") + struct.pack("<IIQ", ARR, ARR, n) + struct.pack("<IQ", U32, 0) * n
    p = gguf_file(tmp_path / "blow.gguf", [kv_u32("small", 7), nested, kv_str("general.architecture", "x")])
    size = p.stat().st_size
    r = run_python(
        MEASURE
        + """
f = realizar.GGUFFile(sys.argv[1])
opened, _ = measure(lambda: None)
small, v = measure(lambda: (f.metadata["small"], f.metadata["general.architecture"], dict(f.metadata_types)))
assert v[0] == 7 and v[2]["nested"] == "ARRAY[ARRAY[UINT32]]", v
big, v = measure(lambda: f.metadata["nested"])
assert len(v) == 1_000_000 and v[0] == [] and v[-1] == []
print(json.dumps({"small": small, "big": big}))
""",
        str(p),
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["small"] < 1 << 20, f"reading two small keys grew the resident set by {got['small']} bytes"
    # One empty list and a pointer per element: about 7x the 12 bytes each takes in the file.
    assert got["big"] < 10 * size, f"{got['big'] / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB value"
    code, out, _ = run_cli(capsys, "info", str(p))
    assert code == 0 and "(1000000 items)" in out and "ARRAY[ARRAY[UINT32]]" in out


@pytest.mark.skipif(not LINUX, reason="peak resident set measured through /proc (Linux)")
def test_open_does_not_convert_the_vocabulary(tmp_path: Path) -> None:
    """Opening a file with a 300,000-token vocabulary neither converts it to Python nor allocates
    per token: its growth is about one copy of the array's bytes (and the file's mapped pages)."""
    tokens = [f"token{i}" for i in range(300_000)]
    p = gguf_file(tmp_path / "vocab.gguf", [kv_str_array("tokenizer.ggml.tokens", tokens)])
    size = p.stat().st_size
    r = run_python(
        MEASURE
        + """
grew, f = measure(lambda: realizar.GGUFFile(sys.argv[1]))
toks = f.metadata["tokenizer.ggml.tokens"]
assert len(toks) == 300_000 and toks[123_456] == "token123456"
print(grew)
""",
        str(p),
    )
    assert r.returncode == 0, r.stderr
    grew = int(r.stdout)
    # The file's mapped pages and one copy of the array's bytes: about twice the size. A Rust Vec
    # per token added 40 bytes each (3.9x the size in all), Python strings would add 60 more.
    assert grew < 3 * size, f"opening grew the resident set by {grew / 2**20:.1f} MiB"


def test_info_columns_are_capped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One 1 MiB key among 2,000 short ones (and a 100 KiB tensor name) used to pad every line to
    its length: gigabytes of output. Columns are capped and long keys and names shortened."""
    kvs = [kv_u32("k" * (1 << 20), 1)] + [kv_u32(f"short.{i}", i) for i in range(2000)]
    p = gguf_file(tmp_path / "wide.gguf", kvs, [f32_tensor("n" * 100_000, [1.0]), f32_tensor("w", [2.0])])
    code, out, _ = run_cli(capsys, "info", str(p))
    assert code == 0
    lines = out.splitlines()
    assert max(len(li) for li in lines) <= 200, max(len(li) for li in lines)
    assert len(out) < 2100 * 200
    assert any(li.startswith("  short.1999 ") for li in lines)
    assert any(li.strip().startswith("kkkk") and "..." in li for li in lines)
    assert any(li.strip().startswith("nnnn") and "..." in li for li in lines)


ESCAPES = "\x1b[2J\x1b]0;pwned\x07"  # clear the screen, retitle the terminal


def test_terminal_escapes_from_the_file_are_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CWE-150: metadata strings, keys, string arrays and tensor names with ESC, BEL, CR, DEL and
    C1 controls reach the terminal escaped (``\\x1b``), in ``info``, in error messages and in the
    progress bar."""
    kvs = [
        kv_str("general.name", ESCAPES + "\rfake row"),
        kv_u32("key\x9b31m\x7f", 1),
        kv_str_array("tokens", ["ok", "\x1b[31mred", "\x85nel"]),
    ]
    tensors = [
        f32_tensor("w\x1b[2J", [1.0]),
        ("iq\x1b]0;x\x07", [32], 20, bytes(18)),  # IQ4_NL: listed, not decodable
    ]
    p = gguf_file(tmp_path / "esc.gguf", kvs, tensors)
    code, out, err = run_cli(capsys, "info", str(p))
    assert code == 0
    assert_no_control(out + err, "info")
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\rfake row" in out and "key\\x9b31m\\x7f" in out
    assert "w\\x1b[2J" in out and "\\x1b[31mred" in out
    code, out, err = run_cli(capsys, "dequantize", str(p), "-o", str(tmp_path / "o.safetensors"))
    assert code == 1 and "iq\\x1b]0;x\\x07" in err
    assert_no_control(out + err, "the error message")


def test_progress_bar_text_is_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tqdm

    shown: list[str] = []
    real = tqdm.tqdm

    class Recording(real):  # type: ignore[misc,valid-type]
        def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
            shown.append(s)
            super().set_postfix_str(s, refresh)

    monkeypatch.setattr(tqdm, "tqdm", Recording)
    p = gguf_file(tmp_path / "esc.gguf", [], [f32_tensor("w\x1b[2J\r", [1.0, 2.0])])
    code, _, _ = run_cli(capsys, "dequantize", str(p), "-o", str(tmp_path / "o.safetensors"))
    assert code == 0 and shown == ["w\\x1b[2J\\r"]


def test_perplexity_summary_is_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .test_eval import hf_weights
    from .test_eval import write_gguf as write_model

    model = write_model(tmp_path / f"m{ESCAPES}.gguf", "llama", hf_weights(3, bias=False, tied=True))
    toks = tmp_path / "t\x1b[31m.npy"
    np.save(toks, np.arange(32, dtype=np.int32) % 100)
    code, out, err = run_cli(
        capsys, "perplexity", str(model), "--tokens", str(toks), "--ctx", "16", "--windows", "2"
    )
    assert code == 0, err
    assert_no_control(out, "the summary")
    assert "\\x1b[2J" in out and "t\\x1b[31m.npy" in out
    assert "\x1b" not in err  # the progress bar's description (tqdm itself writes only \r here)


def test_npz_refuses_names_it_cannot_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """zipfile cuts member names at NUL (valid in GGUF): two tensors became one and the CLI said
    it wrote both. Refused before decoding; .safetensors keeps such names."""
    p = gguf_file(tmp_path / "nul.gguf", [], [f32_tensor("w\0one", [1.0]), f32_tensor("w\0two", [2.0])])
    target = tmp_path / "o.npz"
    code, out, err = run_cli(capsys, "dequantize", str(p), "-o", str(target))
    assert code == 1 and "wrote" not in out and "NUL" in err and ".safetensors" in err
    assert not target.exists()
    no_leftovers(tmp_path)
    st = tmp_path / "o.safetensors"
    code, out, _ = run_cli(capsys, "dequantize", str(p), "-o", str(st))
    assert code == 0 and "wrote 2 tensors" in out
    from safetensors.numpy import load_file

    loaded = load_file(st)
    assert sorted(loaded) == ["w\0one", "w\0two"] and float(loaded["w\0two"][0]) == 2.0


def test_safetensors_refuses_a_tensor_named_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``__metadata__`` is the safetensors header's own key: such a file was written (and reported)
    but no reader could load it."""
    p = gguf_file(tmp_path / "m.gguf", [], [f32_tensor("__metadata__", [1.0]), f32_tensor("w", [2.0])])
    target = tmp_path / "o.safetensors"
    code, out, err = run_cli(capsys, "dequantize", str(p), "-o", str(target))
    assert code == 1 and "__metadata__" in err and "wrote" not in out
    assert not target.exists()
    code, _, _ = run_cli(capsys, "dequantize", str(p), "-o", str(target), "--tensors", "w")
    assert code == 0
    npz = tmp_path / "o.npz"
    code, _, _ = run_cli(capsys, "dequantize", str(p), "-o", str(npz))
    assert code == 0
    with np.load(npz) as z:
        assert sorted(z.files) == ["__metadata__", "w"]


@pytest.mark.skipif(not LINUX, reason="SIGBUS on a truncated mapping is what Linux does")
def test_truncated_while_mapped_is_sigbus_as_documented(tmp_path: Path) -> None:
    """What GGUFFile documents: the header, metadata and tensor list stay readable when another
    process truncates the file; reading tensor bytes past the new end kills the process with
    SIGBUS (as with gguf-py's np.memmap)."""
    data = np.arange(4096, dtype="<f4")
    tensor = ("w", [4096], int(QuantType.F32), data.tobytes())
    p = gguf_file(tmp_path / "t.gguf", [kv_str_array("tokens", ["a", "b"])], [tensor])
    r = run_python(
        """
        import os, sys, realizar
        f = realizar.GGUFFile(sys.argv[1])
        os.truncate(sys.argv[1], f.data_offset)
        assert f.metadata["tokens"] == ["a", "b"] and f.tensors["w"].shape == (4096,)
        print("header ok", flush=True)
        f.dequantize("w")
        print("not reached")
        """,
        str(p),
    )
    assert r.stdout.strip() == "header ok" and r.returncode == -signal.SIGBUS, (r.returncode, r.stderr)
    assert "SIGBUS" in (GGUFFile.__doc__ or "")


# ---------------------------------------------------------------------------------------------
# The command line's output file, and its token files
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    return gguf_file(tmp_path / "in" / "m.gguf", [], [f32_tensor(f"t{i}", [float(i)] * 64) for i in range(4)])


@pytest.mark.skipif(not hasattr(os, "fchmod") or not hasattr(os, "symlink"), reason="POSIX only")
def test_temporary_file_swapped_for_a_symlink(
    tmp_path: Path, small_model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who can write to the output directory replaces the temporary file by a symbolic
    link to a private file of the user. The mode is set through the descriptor, so the private file
    keeps its mode, and the link is never renamed to the output."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    secret = tmp_path / "secret"
    secret.write_bytes(b"private")
    secret.chmod(0o600)
    real = tempfile.mkstemp

    def swapped(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)
        os.unlink(name)
        os.symlink(secret, name)  # the attacker's move, right after the file was made
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", swapped)
    target = out_dir / "o.safetensors"
    code, _, err = run_cli(capsys, "dequantize", str(small_model), "-o", str(target))
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_bytes() == b"private"
    assert code == 1 and "replaced" in err and str(target) in err
    assert not os.path.lexists(target)
    assert list(out_dir.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX only")
def test_output_gets_the_usual_permissions(
    tmp_path: Path, small_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = os.umask(0o027)
    try:
        target = tmp_path / "o.npz"
        assert run_cli(capsys, "dequantize", str(small_model), "-o", str(target))[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


NPZ_CHILD = """
import errno, os, sys
import numpy as np
from realizar.cli import main

how, model, target = sys.argv[1:4]
calls = 0
real = np.lib.format.write_array

def failing(*args, **kwargs):
    global calls
    calls += 1
    if calls == 2:
        if how == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        if how == "sigint":
            raise KeyboardInterrupt
        if how == "sigterm":
            os.kill(os.getpid(), 15)
    return real(*args, **kwargs)

np.lib.format.write_array = failing
code = main(["dequantize", model, "-o", target, "-q"])
import gc; gc.collect()
sys.exit(code)
"""


@pytest.mark.parametrize(("how", "code", "message"), [
    ("enospc", 1, "No space left on device"),
    ("sigint", 130, "interrupted"),
    ("sigterm", 143, "terminated"),
])
def test_npz_writer_errors_and_signals_leave_nothing(
    tmp_path: Path, small_model: Path, how: str, code: int, message: str
) -> None:
    """A full disk, Ctrl-C or SIGTERM half-way through a .npz: the exit code says which, the
    previous output is untouched, no temporary file is left, and no "Exception ignored in
    ZipFile.__del__" traceback is printed (the archive is closed before its file is removed)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "o.npz"
    target.write_bytes(b"previous")
    r = run_python(NPZ_CHILD, how, str(small_model), str(target))
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    assert str(target) in r.stderr or how != "enospc"
    assert ".partial" not in r.stderr
    assert target.read_bytes() == b"previous"
    no_leftovers(out_dir)


def npy_header(shape: tuple[int, ...], dtype: str = "<i4") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_token_file_whose_header_lies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 100-byte .npy whose header claims 10**11 tokens: a clear error, not a MemoryError
    traceback (or an attempt to allocate 400 GB)."""
    model = gguf_file(tmp_path / "m.gguf", [], [f32_tensor("w", [1.0])])
    for shape, dtype, needle in [
        ((10**11,), "<i4", "header says 100000000000 tokens"),
        ((3,), "<i4", "header says 3 tokens"),  # 12 bytes claimed, 8 present
        ((2, 2), "<i4", "1-D integer"),
        ((2,), "<f4", "1-D integer"),
    ]:
        p = tmp_path / "t.npy"
        p.write_bytes(npy_header(shape, dtype) + bytes(8))
        code, _, err = run_cli(capsys, "perplexity", str(model), "--tokens", str(p))
        assert code == 1 and "realizar: error:" in err and needle in err, err
    p.write_bytes(b"not a numpy file at all")
    code, _, err = run_cli(capsys, "perplexity", str(model), "--tokens", str(p))
    assert code == 1 and "not a .npy file" in err


# ---------------------------------------------------------------------------------------------
# Argument abuse
# ---------------------------------------------------------------------------------------------

Q8 = np.float16(0.5).tobytes() + bytes(range(32))  # one Q8_0 block


@pytest.mark.parametrize("bad", [-1, 2**32, 2**64, -(2**63)])
def test_type_ids_out_of_range_are_realizar_errors(bad: int) -> None:
    with pytest.raises(RealizarError, match=f"unknown or unsupported ggml type id {bad}"):
        realizar.dequantize(Q8, bad)
    with pytest.raises(RealizarError, match="type id"):
        realizar.quantize(np.zeros(32, np.float32), bad)
    with pytest.raises(RealizarError, match="type id"):
        QuantType.parse(bad)


def test_type_ids_as_numpy_integers() -> None:
    goods: list[Any] = [np.int64(8), np.uint32(8), np.int8(8)]
    for good in goods:
        assert QuantType.parse(good) is QuantType.Q8_0
        assert realizar.dequantize(Q8, good)[1] == 0.5
    for bad in [8.0, np.float64(8), True, np.bool_(True), None, b"Q8_0"]:
        with pytest.raises(TypeError, match="qtype"):
            QuantType.parse(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [2.5, "2", np.float32(2), 2.0, [2]])
def test_threads_must_be_integers(bad: Any) -> None:
    with pytest.raises(TypeError, match="threads"):
        realizar.dequantize(Q8, "Q8_0", threads=bad)
    with pytest.raises(TypeError, match="threads"):
        realizar.quantize(np.zeros(32, np.float32), "Q8_0", threads=bad)


def test_threads_accept_numpy_integers() -> None:
    assert realizar.dequantize(Q8, "Q8_0", threads=np.int64(2))[1] == 0.5
    assert realizar.quantize(np.zeros(32, np.float32), "Q8_0", threads=np.uint8(3)).size == 34


@pytest.mark.parametrize("bad", [(4.5, 32), "128", b"128", 128.0, (np.float64(4), 32), ("4", "32")])
def test_shapes_must_be_integers(bad: Any) -> None:
    with pytest.raises(TypeError, match="shape"):
        realizar.dequantize(Q8 * 4, "Q8_0", shape=bad)


def test_shapes_accept_index_types() -> None:
    shapes: list[Any] = [(np.int64(4), 32), np.array([4, 32]), [np.uint16(4), 32], np.int64(128)]
    for shape in shapes:
        assert realizar.dequantize(Q8 * 4, "Q8_0", shape=shape).size == 128


def test_weights_in_refuses_non_integers() -> None:
    assert realizar.weights_in(np.int64(68), "Q8_0") == 64
    with pytest.raises(TypeError, match="nbytes"):
        realizar.weights_in(68.0, "Q8_0")  # type: ignore[arg-type]
    with pytest.raises(RealizarError, match="nbytes"):
        realizar.weights_in(-34, "Q8_0")


def test_quantize_with_no_columns_still_checks_out() -> None:
    """Nothing to encode, but ``out`` must still be what the call promises to fill."""
    x = np.zeros((3, 0), np.float32)
    out = np.empty((3, 0), np.uint8)
    assert realizar.quantize(x, "Q4_0", out=out) is out
    with pytest.raises(TypeError, match="numpy.ndarray"):
        realizar.quantize(x, "Q4_0", out="hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="uint8"):
        realizar.quantize(x, "Q4_0", out=np.empty((3, 0), np.float32))
    with pytest.raises(RealizarError, match="4 bytes"):
        realizar.quantize(x, "Q4_0", out=np.empty(4, np.uint8))
    ro = np.empty((3, 0), np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        realizar.quantize(x, "Q4_0", out=ro)
    assert realizar.quantize(x, "Q4_0").shape == (3, 0)


def test_file_dequantize_out_must_be_an_array(tmp_path: Path) -> None:
    p = gguf_file(tmp_path / "m.gguf", [], [f32_tensor("w", [1.0, 2.0])])
    with GGUFFile(p) as f:
        for bad in [[0.0, 0.0], "xx", memoryview(bytearray(8))]:
            with pytest.raises(TypeError, match="numpy.ndarray"):
                f.dequantize("w", out=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="numpy.ndarray"):
            f.dequantize("w", out=[0.0, 0.0], dtype="bfloat16")  # type: ignore[arg-type]
        assert f.dequantize("w", dtype="bfloat16").dtype == ml_dtypes.bfloat16


def test_cli_number_arguments_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = gguf_file(tmp_path / "m.gguf", [], [f32_tensor("w", [1.0])])
    for argv in [
        ["perplexity", str(model), "--tokens", "t.npy", "--ctx", "1"],
        ["perplexity", str(model), "--tokens", "t.npy", "--windows", "0"],
        ["perplexity", str(model), "--tokens", "t.npy", "--ctx", "2.5"],
        ["demo", "--blocks", "0"],
    ]:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "error" in err, argv
