"""The GGUF subcommands of the ``realizar`` command line: ``info`` and ``dequantize``.

Kept apart from ``cli.py`` (which only registers them) so the command line stays one small file.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

import numpy as np
import numpy.typing as npt

from .gguf import GGUFFile, TensorInfo

DTYPES = {"f32": ("float32", "F32", 4), "f16": ("float16", "F16", 2), "bf16": ("bfloat16", "BF16", 2)}


class UsageError(Exception):
    """Bad combination of arguments: exit code 2."""


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _short(value: Any, width: int = 70) -> str:
    if isinstance(value, np.ndarray):
        head = ", ".join(str(x) for x in value[:6].tolist())
        s = f"[{head}, ...] ({value.size} items, {value.dtype})"
    elif isinstance(value, list) and len(value) > 6:
        s = f"{value[:6]!r} ... ({len(value)} items)"
    else:
        s = repr(value) if not isinstance(value, str) else value
    s = s.replace("\n", "\\n")
    return s if len(s) <= width else s[: width - 3] + "..."


def cmd_info(args: argparse.Namespace) -> int:
    """Print a GGUF file's metadata and a table of its tensors with totals per type."""
    try:
        return _info(args)
    except BrokenPipeError:  # `realizar info FILE | head`: the reader left, which is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _info(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    with GGUFFile(args.file) as f:
        print(f"file: {f.path}")
        print(
            f"GGUF version {f.version}, {_human(f.file_size)} ({f.file_size} bytes), "
            f"alignment {f.alignment}, data section at byte {f.data_offset}"
        )
        print(f"{len(f.metadata)} metadata keys, {len(f.tensors)} tensors")
        print("\nmetadata:")
        kw = max((len(k) for k in f.metadata), default=3)
        tw = max((len(t) for t in f.metadata_types.values()), default=4)
        for key, value in f.metadata.items():
            print(f"  {key:<{kw}}  {f.metadata_types[key]:<{tw}}  {_short(value)}")
        selected = _select(f, args.tensors)
        print(f"\ntensors{'' if args.tensors is None else ' matching ' + ' '.join(args.tensors)}:")
        nw = max((len(t.name) for t in selected), default=4)
        print(f"  {'name':<{nw}}  {'type':<8} {'shape':<22} {'bytes':>12}  {'offset':>12}")
        per_type: dict[str, list[int]] = {}
        for t in selected:
            shape = "x".join(str(s) for s in t.shape) or "scalar"
            size = "?" if t.nbytes is None else str(t.nbytes)
            note = "" if t.decodable else "  (not decodable by realizar)"
            print(f"  {t.name:<{nw}}  {t.type_name:<8} {shape:<22} {size:>12}  {t.offset:>12}{note}")
            acc = per_type.setdefault(t.type_name, [0, 0, 0])
            acc[0] += 1
            acc[1] += t.n_elements
            acc[2] += t.nbytes or 0
        print("\ntotals by type:")
        print(f"  {'type':<8} {'tensors':>8} {'weights':>14} {'bytes':>14} {'bits/weight':>12}")
        total = [0, 0, 0]
        for name, (n, w, b) in sorted(per_type.items(), key=lambda kv: -kv[1][2]):
            bpw = f"{8 * b / w:.4g}" if w else "-"
            print(f"  {name:<8} {n:>8} {w:>14} {b:>14} {bpw:>12}")
            total = [total[0] + n, total[1] + w, total[2] + b]
        bpw = f"{8 * total[2] / total[1]:.4g}" if total[1] else "-"
        print(f"  {'all':<8} {total[0]:>8} {total[1]:>14} {total[2]:>14} {bpw:>12}")
    print(f"\n(read in {1e3 * (time.perf_counter() - t0):.1f} ms)", file=sys.stderr)
    return 0


def _select(f: GGUFFile, patterns: list[str] | None) -> list[TensorInfo]:
    if patterns is None:
        return list(f.tensors.values())
    chosen = [t for t in f.tensors.values() if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)]
    if not chosen:
        raise ValueError(
            f"no tensor of {f.path} matches {' '.join(patterns)} ({len(f.tensors)} tensors in file)"
        )
    return chosen


def _safetensors_header(tensors: list[TensorInfo], st_dtype: str, itemsize: int, source: str) -> bytes:
    header: dict[str, Any] = {"__metadata__": {"source": source, "written_by": "realizar dequantize"}}
    pos = 0
    for t in tensors:
        n = t.n_elements * itemsize
        header[t.name] = {"dtype": st_dtype, "shape": list(t.shape), "data_offsets": [pos, pos + n]}
        pos += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned
    return struct.pack("<Q", len(raw)) + raw


def _as_bytes(a: npt.NDArray[Any]) -> memoryview:
    return memoryview(cast(Any, np.ascontiguousarray(a).reshape(-1).view(np.uint8)))


@contextlib.contextmanager
def _atomic_output(path: str) -> Iterator[IO[bytes]]:
    """A temporary file next to ``path``, renamed to ``path`` only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the output gets the usual permissions
        with os.fdopen(fd, "wb") as fp:
            yield fp
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cmd_dequantize(args: argparse.Namespace) -> int:
    """Decode tensors of a GGUF file into a .safetensors or .npz file, one tensor at a time."""
    out: str = args.output
    kind = "safetensors" if out.endswith(".safetensors") else "npz" if out.endswith(".npz") else None
    if kind is None:
        raise UsageError(f"output must end in .safetensors or .npz, got {out!r}")
    np_dtype, st_dtype, itemsize = DTYPES[args.dtype]
    if kind == "npz" and args.dtype == "bf16":
        raise UsageError(
            "npz cannot hold bfloat16 (NumPy has no such dtype); use .safetensors or --dtype f16/f32"
        )
    t0 = time.perf_counter()
    with GGUFFile(args.file) as f:
        chosen = _select(f, args.tensors)
        skipped = [t for t in chosen if not t.decodable]
        if skipped and not args.skip_unsupported:
            names = ", ".join(f"{t.name} ({t.type_name})" for t in skipped[:5])
            raise ValueError(
                f"{len(skipped)} selected tensor(s) have types realizar cannot decode: {names}"
                f"{' ...' if len(skipped) > 5 else ''}; pass --skip-unsupported to leave them out, "
                "or --tensors to choose"
            )
        todo = [t for t in chosen if t.decodable]
        if not todo:
            raise ValueError("no selected tensor can be decoded; nothing to write")
        total = sum(t.n_elements for t in todo) * itemsize
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="dequantize",
            disable=True if args.quiet else None,
            file=sys.stderr,
        )
        written = 0
        with bar, _atomic_output(out) as fp:
            step: Callable[[TensorInfo, npt.NDArray[Any]], None]
            if kind == "safetensors":
                fp.write(_safetensors_header(todo, st_dtype, itemsize, os.path.basename(f.path)))

                def step(t: TensorInfo, a: npt.NDArray[Any]) -> None:
                    fp.write(_as_bytes(a))
            else:
                zf = zipfile.ZipFile(fp, "w", zipfile.ZIP_STORED, allowZip64=True)

                def step(t: TensorInfo, a: npt.NDArray[Any]) -> None:
                    with zf.open(t.name + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, a, allow_pickle=False)

            for t in todo:
                bar.set_postfix_str(t.name[-40:], refresh=False)
                a = f.dequantize(t.name, dtype=np_dtype)
                step(t, a)
                written += a.nbytes
                bar.update(a.nbytes)
                del a
            if kind == "npz":
                zf.close()
    dt = time.perf_counter() - t0
    weights = sum(t.n_elements for t in todo)
    print(
        f"wrote {len(todo)} tensors ({weights} weights, {_human(written)} of {args.dtype}) to {out} "
        f"in {dt:.2f} s ({written / max(dt, 1e-9) / 2**20:.0f} MiB/s)"
    )
    if skipped:
        print(
            f"skipped {len(skipped)} tensor(s) of undecodable types: "
            + ", ".join(f"{t.name} ({t.type_name})" for t in skipped)
        )
    return 0


def add_parsers(sub: Any) -> None:
    """Registers ``info`` and ``dequantize`` on the subparsers object of ``cli.build_parser``."""
    p = sub.add_parser(
        "info",
        help="show a GGUF file's metadata and tensors",
        description="Show a GGUF file's metadata, a table of its tensors (name, type, shape, bytes, offset) "
        "and totals per type with bits per weight. Exit status: 0 ok, 1 unreadable or malformed file, "
        "2 bad usage.",
    )
    p.add_argument("file", metavar="FILE", help="a .gguf file")
    p.add_argument("--tensors", metavar="GLOB", nargs="+", help="only list tensors whose names match a glob")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "dequantize",
        help="decode a GGUF file's tensors into .safetensors or .npz",
        description="Decode the tensors of a GGUF file (bit-exact with ggml) and write them to OUT, "
        "tensor by tensor so memory stays bounded by the largest tensor. OUT is written to a temporary "
        "file in the same directory and renamed at the end: an error or a full disk never leaves a "
        "partial OUT. Exit status: 0 ok, 1 error (nothing written), 2 bad usage.",
    )
    p.add_argument("file", metavar="FILE", help="a .gguf file")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file: *.safetensors or *.npz")
    p.add_argument(
        "--dtype", choices=sorted(DTYPES), default="f32", help="output dtype (default: %(default)s)"
    )
    p.add_argument("--tensors", metavar="GLOB", nargs="+", help="only tensors whose names match a glob")
    p.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="leave out tensors of types realizar cannot decode instead of failing",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dequantize)
