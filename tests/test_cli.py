"""The ``realizar`` command line: ``info`` and ``dequantize`` on GGUF files written by gguf-py, exit
codes, atomic output, and the written .safetensors / .npz read back independently."""

from __future__ import annotations

import errno
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import gguf
import ml_dtypes
import numpy as np
import pytest
import realizar
from realizar import QuantType
from realizar import _cli_gguf as cli_gguf
from realizar.cli import main
from safetensors.numpy import load_file

from .test_gguf import random_tensor_bytes, write_gguf


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    tensors: list[tuple[str, Any, QuantType | int]] = [
        ("tok.weight", random_tensor_bytes(QuantType.Q4_K, (4, 256), rng), QuantType.Q4_K),
        ("blk.0.q.weight", random_tensor_bytes(QuantType.Q8_0, (3, 64), rng), QuantType.Q8_0),
        ("blk.0.norm", random_tensor_bytes(QuantType.F32, (64,), rng), QuantType.F32),
        ("blk.1.q.weight", random_tensor_bytes(QuantType.Q6_K, (2, 256), rng), QuantType.Q6_K),
        ("blk.1.norm", random_tensor_bytes(QuantType.F16, (64,), rng), QuantType.F16),
    ]
    return write_gguf(tmp_path_factory.mktemp("cli") / "model.gguf", tensors)


@pytest.fixture(scope="module")
def iq_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(8)
    iq = rng.integers(0, 256, (2, 18), dtype=np.uint8)
    return write_gguf(
        tmp_path_factory.mktemp("cli") / "iq.gguf",
        [
            ("iq", iq, gguf.GGMLQuantizationType.IQ4_NL.value),
            ("w", random_tensor_bytes(QuantType.Q8_0, (1, 32), rng), QuantType.Q8_0),
        ],
        metadata=False,
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def no_leftovers(directory: Path) -> None:
    assert not [p for p in directory.iterdir() if p.name.endswith(".partial")], list(directory.iterdir())


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in [["--help"], ["info", "--help"], ["dequantize", "--help"], ["demo", "--help"]]:
        code, out, _ = run(capsys, *argv)
        assert code == 0 and "usage:" in out, argv
    code, out, _ = run(capsys, "dequantize", "--help")
    assert "--dtype" in out and "--tensors" in out and "Exit status" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    assert run(capsys, "info")[0] == 2
    assert run(capsys, "dequantize", str(model))[0] == 2  # -o missing
    assert run(capsys, "dequantize", str(model), "-o", str(tmp_path / "x.npz"), "--dtype", "f8")[0] == 2
    code, _, err = run(capsys, "dequantize", str(model), "-o", str(tmp_path / "x.bin"))
    assert code == 2 and ".safetensors or .npz" in err
    code, _, err = run(capsys, "dequantize", str(model), "-o", str(tmp_path / "x.npz"), "--dtype", "bf16")
    assert code == 2 and "bfloat16" in err
    assert run(capsys, "nosuchcommand")[0] == 2
    assert list(tmp_path.iterdir()) == []


def test_info(capsys: pytest.CaptureFixture[str], model: Path) -> None:
    code, out, _ = run(capsys, "info", str(model))
    assert code == 0
    with realizar.GGUFFile(model) as f:
        assert f"{len(f.metadata)} metadata keys, {len(f.tensors)} tensors" in out
        for name, t in f.tensors.items():
            line = next(li for li in out.splitlines() if li.split()[:1] == [name])
            assert t.type_name in line and "x".join(map(str, t.shape)) in line and str(t.nbytes) in line
        weights = sum(t.n_elements for t in f.tensors.values())
        nbytes = sum(t.nbytes or 0 for t in f.tensors.values())
    assert "m.str" in out and "héllo" in out and "ARRAY[FLOAT32]" in out
    total = next(li for li in out.splitlines() if li.split()[:1] == ["all"])
    assert total.split()[1:] == ["5", str(weights), str(nbytes), f"{8 * nbytes / weights:.4g}"]
    q4k = next(li for li in out.splitlines() if li.split()[:1] == ["Q4_K"] and len(li.split()) == 5)
    assert q4k.split()[-1] == "4.5"
    code, out, _ = run(capsys, "info", str(model), "--tensors", "blk.1.*")
    assert code == 0 and "blk.1.norm" in out and "tok.weight" not in out


def test_info_errors_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "info", str(tmp_path / "missing.gguf"))
    assert code == 1 and "No such file" in err
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**60, 0))
    code, _, err = run(capsys, "info", str(bad))
    assert code == 1 and "byte offset 8" in err and "impossible" in err


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_dequantize_safetensors(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path, dtype: str
) -> None:
    out = tmp_path / "m.safetensors"
    code, stdout, _ = run(capsys, "dequantize", str(model), "-o", str(out), "--dtype", dtype)
    assert code == 0, stdout
    assert "wrote 5 tensors" in stdout
    np_dtype = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16}[dtype]
    # Parse the file ourselves (the safetensors package's NumPy loader has no bfloat16).
    raw = out.read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hlen])
    assert (8 + hlen) % 8 == 0
    data = raw[8 + hlen :]
    with realizar.GGUFFile(model) as f:
        assert [k for k in header if k != "__metadata__"] == list(f)
        end = 0
        for name in f:
            want = f.dequantize(name, dtype=np_dtype)
            h = header[name]
            assert h["dtype"] == dtype.upper() and tuple(h["shape"]) == want.shape
            b, e = h["data_offsets"]
            assert b == end
            end = e
            got = np.frombuffer(data[b:e], dtype=np_dtype).reshape(want.shape)
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), name
        assert end == len(data)
        if dtype != "bf16":
            loaded = load_file(out)
            assert sorted(loaded) == sorted(f)
            for name in f:
                assert np.array_equal(
                    loaded[name].view(np.uint8), f.dequantize(name, dtype=np_dtype).view(np.uint8)
                )
    no_leftovers(tmp_path)


def test_dequantize_npz_with_glob(capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.npz"
    code, stdout, _ = run(
        capsys,
        "dequantize",
        str(model),
        "-o",
        str(out),
        "--tensors",
        "blk.*.q.weight",
        "--tensors",
        "tok*",
        "--dtype",
        "f16",
        "-q",
    )
    assert code == 0 and "wrote 3 tensors" in stdout
    with np.load(out) as z, realizar.GGUFFile(model) as f:
        assert sorted(z.files) == ["blk.0.q.weight", "blk.1.q.weight", "tok.weight"]
        for name in z.files:
            assert z[name].dtype == np.float16
            assert np.array_equal(
                z[name].view(np.uint16), f.dequantize(name, dtype=np.float16).view(np.uint16)
            )
    code, _, err = run(
        capsys, "dequantize", str(model), "-o", str(tmp_path / "n.npz"), "--tensors", "nothing*"
    )
    assert code == 1 and "no tensor" in err
    assert not (tmp_path / "n.npz").exists()
    no_leftovers(tmp_path)


def test_undecodable_tensors(capsys: pytest.CaptureFixture[str], iq_model: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "info", str(iq_model))
    assert code == 0 and "IQ4_NL" in out and "not decodable" in out
    target = tmp_path / "o.safetensors"
    code, _, err = run(capsys, "dequantize", str(iq_model), "-o", str(target))
    assert code == 1 and "IQ4_NL" in err and "--skip-unsupported" in err
    assert not target.exists()
    code, out, _ = run(capsys, "dequantize", str(iq_model), "-o", str(target), "--skip-unsupported")
    assert code == 0 and "wrote 1 tensor (" in out and "skipped 1 tensor " in out and "iq (IQ4_NL)" in out
    assert list(load_file(target)) == ["w"]


def test_unwritable_output(capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "dequantize", str(model), "-o", str(tmp_path / "no" / "dir" / "x.safetensors"))
    assert code == 1 and "realizar: error:" in err


def test_full_disk_leaves_nothing_behind(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write failing half-way (ENOSPC) gives exit 1, a clear message, and neither the output nor
    the temporary file."""
    target = tmp_path / "x.safetensors"
    target.write_bytes(b"previous contents")
    calls = {"n": 0}
    real = cli_gguf._as_bytes

    def failing(a: Any) -> memoryview:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(a)

    monkeypatch.setattr(cli_gguf, "_as_bytes", failing)
    code, _, err = run(capsys, "dequantize", str(model), "-o", str(target))
    assert code == 1 and "No space left on device" in err
    assert target.read_bytes() == b"previous contents"  # untouched
    no_leftovers(tmp_path)


def test_console_script_and_module(model: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "realizar", "info", str(model)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert r.returncode == 0 and "tok.weight" in r.stdout, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "realizar", "info", str(model) + ".missing"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1 and "error" in r.stderr


# --- a newcomer's first hour ------------------------------------------------------------------


def test_tensors_option_before_the_file(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path
) -> None:
    """``--tensors GLOB`` takes one glob (repeat it for more), so it cannot swallow FILE."""
    code, out, err = run(capsys, "info", "--tensors", "blk.0.*", str(model))
    assert code == 0, err
    assert "blk.0.norm" in out and "blk.1.norm" not in out and "tok.weight" not in out
    code, out, _ = run(capsys, "info", "--tensors", "blk.0.*", "--tensors", "tok*", str(model))
    assert code == 0 and "blk.0.q.weight" in out and "tok.weight" in out and "blk.1.norm" not in out
    target = tmp_path / "x.npz"
    code, out, _ = run(capsys, "dequantize", "--tensors", "blk.1.*", str(model), "-o", str(target), "-q")
    assert code == 0 and "wrote 2 tensors" in out
    with np.load(target) as z:
        assert sorted(z.files) == ["blk.1.norm", "blk.1.q.weight"]


def test_info_shows_array_lengths_and_the_file_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(p, arch="llama")
    w.add_file_type(15)
    w.add_array("tokenizer.ggml.tokens", ["<pad>" * 30, *[f"tok{i}" for i in range(49151)]])
    w.add_array("short", [1, 2, 3])
    w.add_array("floats", [0.5] * 100)
    w.add_tensor("w", np.ones(32, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    code, out, _ = run(capsys, "info", str(p))
    assert code == 0
    line = {li.split()[0]: li for li in out.splitlines() if li.startswith("  ")}
    tokens = line["tokenizer.ggml.tokens"]
    assert tokens.endswith("(49152 items)") and "<pad>" in tokens
    assert line["short"].endswith("[1, 2, 3] (3 items)")
    assert line["floats"].endswith("(100 items)") and "[0.5, 0.5" in line["floats"]
    assert line["general.file_type"].endswith("MOSTLY_Q4_K_M (15)")
    assert "metadata keys, 1 tensor\n" in out  # one tensor, not "1 tensors"


def test_written_summary_is_in_words(capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "dequantize", str(model), "-o", str(tmp_path / "x.npz"), "--tensors", "tok*")
    assert code == 0 and "wrote 1 tensor (" in out
    rate = re.search(r"\(([0-9.]+) (B|KiB|MiB|GiB)/s\)", out)
    assert rate is not None and float(rate.group(1)) > 0, out


def test_output_problems_are_found_before_decoding(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output that is a directory, or in a missing directory, fails at once, naming the output
    (never the hidden temporary file), and nothing is decoded."""

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded a tensor although the output cannot be written")

    monkeypatch.setattr(realizar.GGUFFile, "dequantize", no_decoding)
    existing_dir = tmp_path / "already.npz"
    existing_dir.mkdir()
    missing = tmp_path / "no" / "such" / "dir" / "x.safetensors"
    for target, needle in [(existing_dir, "is a directory"), (missing, "does not exist")]:
        code, out, err = run(capsys, "dequantize", str(model), "-o", str(target))
        assert code == 1 and f"cannot write {target}: " in err and needle in err, err
        assert ".partial" not in err and "wrote" not in out
    assert existing_dir.is_dir() and list(existing_dir.iterdir()) == []


def test_read_only_directory_is_found_before_decoding(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory the user cannot write to fails before any decoding, naming the output. Root may
    write anywhere, so besides a real read-only directory (when not root) the refusals are also
    made to happen: ``os.access`` saying no, and the temporary file's creation failing."""

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded a tensor although the output cannot be written")

    monkeypatch.setattr(realizar.GGUFFile, "dequantize", no_decoding)
    ro = tmp_path / "ro"
    ro.mkdir()
    target = ro / "x.safetensors"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        ro.chmod(0o555)
        try:
            code, _, err = run(capsys, "dequantize", str(model), "-o", str(target))
        finally:
            ro.chmod(0o755)
        assert code == 1 and f"cannot write {target}: " in err and "not writable" in err, err
    with monkeypatch.context() as m:
        real_access = os.access
        m.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro else real_access(p, mode, **kw))
        code, _, err = run(capsys, "dequantize", str(model), "-o", str(target))
        assert code == 1 and f"cannot write {target}: " in err and "not writable" in err, err

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(ro / ".x.safetensors.abc.partial"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    code, _, err = run(capsys, "dequantize", str(model), "-o", str(target))
    assert code == 1 and f"cannot write {target}: Permission denied" in err and ".partial" not in err, err
    assert list(ro.iterdir()) == []


def test_write_errors_name_the_output_not_the_temporary_file(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_room(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(str(tmp_path), ".x.partial"))

    monkeypatch.setattr(cli_gguf, "_as_bytes", no_room)
    target = tmp_path / "x.safetensors"
    code, _, err = run(capsys, "dequantize", str(model), "-o", str(target))
    assert code == 1 and f"cannot write {target}: No space left on device" in err and ".partial" not in err
    no_leftovers(tmp_path)


def test_exit_status_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in [["--help"], ["perplexity", "--help"], ["info", "--help"], ["dequantize", "--help"]]:
        code, out, _ = run(capsys, *argv)
        assert code == 0 and "2 bad usage" in " ".join(out.split()), argv
