"""Peak memory: a call needs its input, its output and a few MiB, never a full-size temporary.

Each case runs in a fresh interpreter so that the high-water mark of the resident set belongs to the
call alone: on Linux it is reset just before the call (`/proc/self/clear_refs`, value 5) and read
from `VmHWM`; elsewhere the peak (`ru_maxrss`, or the peak working set on Windows) is read before
the call (after the input is made, which is then the peak) and after. Only Linux's measurement is
exact enough to also check that the output itself was seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from realizar import QuantType

from .test_gguf import write_gguf

MIB = 1 << 20
# Slack for everything that is neither the input nor the output: thread stacks, the interpreter's
# own allocations, page-table pages of a large mapping.
SLACK = 12 * MIB

CHILD = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import realizar

    LINUX = os.path.exists("/proc/self/clear_refs")

    def rss_peak():
        if LINUX:
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        if sys.platform == "win32":
            import ctypes
            from ctypes import wintypes

            class Counters(ctypes.Structure):
                _fields_ = [("cb", wintypes.DWORD), ("faults", wintypes.DWORD)] + [
                    (k, ctypes.c_size_t) for k in ("peak_ws", "ws", "a", "b", "c", "d", "e", "f")
                ]

            c = Counters()
            c.cb = ctypes.sizeof(c)
            get = ctypes.WinDLL("psapi").GetProcessMemoryInfo
            get.argtypes = [wintypes.HANDLE, ctypes.POINTER(Counters), wintypes.DWORD]
            assert get(ctypes.WinDLL("kernel32").GetCurrentProcess(), ctypes.byref(c), c.cb)
            return c.peak_ws
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024

    def rss_now():
        if LINUX:
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return rss_peak()

    def measure(fn):
        if LINUX:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        before = rss_now()
        keep = fn()
        return rss_peak() - before, keep

    case = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    realizar.dequantize(np.zeros(realizar.QuantType.Q8_0.type_size, np.uint8), "Q8_0", threads=2)  # pool
    kind, n = case["kind"], case.get("n", 0)
    if kind in ("dequantize", "dequantize_out"):
        qt = realizar.QuantType.parse(case["qtype"])
        data = np.frombuffer(os.urandom(n // qt.block_size * qt.type_size), np.uint8)
        out = None
        if kind == "dequantize_out":
            out = np.ones(n, np.float32)
        grew, keep = measure(lambda: realizar.dequantize(data, qt, out=out, threads=case["threads"]))
        result = keep.nbytes if out is None else 0
    elif kind == "quantize":
        x = rng.standard_normal(n, dtype=np.float32)
        grew, keep = measure(lambda: realizar.quantize(x, case["qtype"]))
        result = keep.nbytes
    elif kind in ("load_gguf", "file_dequantize"):
        dtype = case["dtype"]
        if dtype == "bfloat16":
            # Imported before measuring, as by anyone who uses bfloat16: importing it is a one-time
            # cost of the process (7.3 MiB of resident set for ml_dtypes 0.7.0, less for 0.5), not
            # memory the call needs, and must not decide whether the call fits its budget.
            import ml_dtypes  # noqa: F401
        if kind == "load_gguf":
            path, threads = case["path"], case["threads"]
            grew, keep = measure(lambda: realizar.load_gguf(path, dtype=dtype, threads=threads))
            result = sum(a.nbytes for a in keep.values())
        else:
            def one():
                with realizar.GGUFFile(case["path"]) as f:
                    return f.dequantize("big", dtype=dtype)
            grew, keep = measure(one)
            result = keep.nbytes
    else:
        raise SystemExit(f"unknown case {kind}")
    print(json.dumps({"grew": grew, "result": result, "exact": LINUX}))
    """
)


def run_child(case: dict[str, Any]) -> tuple[int, int]:
    """(growth of the peak resident set during the call, bytes of its result); the growth is clamped
    up to the result where the measurement is not exact (so only upper bounds are checked there)."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(case)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    grew, result = int(got["grew"]), int(got["result"])
    return (grew if got["exact"] else max(grew, result)), result


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("qtype", ["Q4_K", "Q8_0", "BF16"])
def test_dequantize_fresh_output(qtype: str, threads: int) -> None:
    n = 1 << 25  # 128 MiB of float32
    grew, result = run_child({"kind": "dequantize", "qtype": qtype, "n": n, "threads": threads})
    assert result == 4 * n
    # The output must really be in memory (a measurement that could not see it proves nothing) ...
    assert grew >= result - SLACK, (grew, result)
    # ... and nothing else of its size.
    assert grew <= result + SLACK, f"{qtype}: the call grew the resident set by {grew / MIB:.1f} MiB"


def test_dequantize_into_out_allocates_nothing() -> None:
    grew, _ = run_child({"kind": "dequantize_out", "qtype": "Q6_K", "n": 1 << 25, "threads": 2})
    assert grew <= SLACK, f"dequantize(out=) grew the resident set by {grew / MIB:.1f} MiB"


def test_quantize() -> None:
    n = 1 << 25  # 128 MiB of float32 in, read in place
    grew, result = run_child({"kind": "quantize", "qtype": "Q4_K", "n": n})
    assert result == n // 256 * QuantType.Q4_K.type_size
    assert grew <= result + SLACK, f"quantize grew the resident set by {grew / MIB:.1f} MiB"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(1)
    qt = QuantType.Q8_0
    tensors: list[tuple[str, Any, QuantType | int]] = []
    for name, rows in (("big", 4096), ("small.0", 64), ("small.1", 96)):
        raw = rng.integers(0, 256, size=(rows, 4096 // qt.block_size * qt.type_size), dtype=np.uint8)
        raw[:, :2] = 0x20  # ordinary scales in every first block
        tensors.append((name, raw, qt))
    return write_gguf(tmp_path_factory.mktemp("mem") / "big.gguf", tensors)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_load_gguf(big_file: Path, dtype: str) -> None:
    grew, result = run_child({"kind": "load_gguf", "path": str(big_file), "dtype": dtype, "threads": 2})
    weights = (4096 + 64 + 96) * 4096
    assert result == weights * (4 if dtype == "float32" else 2)
    # The arrays, plus the file's pages the decoder read (mapped, counted once read).
    file_size = big_file.stat().st_size
    assert grew >= result - SLACK, (grew, result)
    assert grew <= result + file_size + SLACK, f"load_gguf grew the resident set by {grew / MIB:.1f} MiB"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_file_dequantize(big_file: Path, dtype: str) -> None:
    grew, result = run_child({"kind": "file_dequantize", "path": str(big_file), "dtype": dtype})
    tensor_bytes = 4096 * 4096 // 32 * QuantType.Q8_0.type_size
    assert result == 4096 * 4096 * (4 if dtype == "float32" else 2)
    assert grew <= result + tensor_bytes + SLACK, f"dequantize grew the resident set by {grew / MIB:.1f} MiB"
