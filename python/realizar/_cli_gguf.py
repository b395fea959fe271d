"""The GGUF subcommands of the ``realizar`` command line: ``info`` and ``dequantize``.

Kept apart from ``cli.py`` (which only registers them) so the command line stays one small file.
Everything read from a GGUF file that is printed goes through :func:`realizar._text.escape`.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import stat
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any, Final, cast

import numpy as np
import numpy.typing as npt

from ._text import escape, shorten
from .gguf import GGUFFile, TensorInfo

DTYPES = {"f32": ("float32", "F32", 4), "f16": ("float16", "F16", 2), "bf16": ("bfloat16", "BF16", 2)}

KEY_WIDTH: Final = 40
"""``info`` columns are padded to the longest entry up to these widths; longer entries are shortened
(as long values are), so that one huge key cannot pad every other line to its length."""
TYPE_WIDTH: Final = 24
NAME_WIDTH: Final = 48
VALUE_WIDTH: Final = 70
ARRAY_HEAD: Final = 6
"""Array elements ``info`` shows before the count."""

SAFETENSORS_MAX_HEADER: Final = 100_000_000
"""The largest header the safetensors reference reader accepts (its ``MAX_HEADER_SIZE``)."""

# llama.cpp's `enum llama_ftype` (llama.h), the meaning of `general.file_type`. The commented-out
# ids that llama.cpp no longer writes are kept, since old files still carry them.
FILE_TYPES: Final = {
    0: "ALL_F32", 1: "MOSTLY_F16", 2: "MOSTLY_Q4_0", 3: "MOSTLY_Q4_1", 4: "MOSTLY_Q4_1_SOME_F16",
    5: "MOSTLY_Q4_2", 6: "MOSTLY_Q4_3", 7: "MOSTLY_Q8_0", 8: "MOSTLY_Q5_0", 9: "MOSTLY_Q5_1",
    10: "MOSTLY_Q2_K", 11: "MOSTLY_Q3_K_S", 12: "MOSTLY_Q3_K_M", 13: "MOSTLY_Q3_K_L",
    14: "MOSTLY_Q4_K_S", 15: "MOSTLY_Q4_K_M", 16: "MOSTLY_Q5_K_S", 17: "MOSTLY_Q5_K_M",
    18: "MOSTLY_Q6_K", 19: "MOSTLY_IQ2_XXS", 20: "MOSTLY_IQ2_XS", 21: "MOSTLY_Q2_K_S",
    22: "MOSTLY_IQ3_XS", 23: "MOSTLY_IQ3_XXS", 24: "MOSTLY_IQ1_S", 25: "MOSTLY_IQ4_NL",
    26: "MOSTLY_IQ3_S", 27: "MOSTLY_IQ3_M", 28: "MOSTLY_IQ2_S", 29: "MOSTLY_IQ2_M",
    30: "MOSTLY_IQ4_XS", 31: "MOSTLY_IQ1_M", 32: "MOSTLY_BF16", 33: "MOSTLY_Q4_0_4_4",
    34: "MOSTLY_Q4_0_4_8", 35: "MOSTLY_Q4_0_8_8", 36: "MOSTLY_TQ1_0", 37: "MOSTLY_TQ2_0",
    38: "MOSTLY_MXFP4_MOE", 39: "MOSTLY_NVFP4", 40: "MOSTLY_Q1_0", 41: "MOSTLY_Q2_0", 1024: "GUESSED",
}  # fmt: skip


class UsageError(Exception):
    """Bad combination of arguments: exit code 2."""


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _item(x: Any) -> str:
    return repr(x) if isinstance(x, str | bytes | list) else str(x)


def _summary(f: GGUFFile, key: str) -> str:
    """One line for metadata ``key``: the value, or an array's first elements and always its count,
    escaped and at most ``VALUE_WIDTH`` characters. Only the shown elements are converted."""
    count, head = f._header.metadata_head(key, ARRAY_HEAD)
    if count is None:
        if key == "general.file_type" and isinstance(head, int) and not isinstance(head, bool):
            name = FILE_TYPES.get(head)
            return f"{name} ({head})" if name else str(head)
        text = head if isinstance(head, str) else repr(head)
        return shorten(escape(text), VALUE_WIDTH)
    suffix = f" ({_plural(count, 'item')})"
    items = ", ".join(_item(x) for x in head) + (", ..." if count > len(head) else "")
    return shorten(escape(f"[{items}]"), max(20, VALUE_WIDTH - len(suffix))) + suffix


def cmd_info(args: argparse.Namespace) -> int:
    """Print a GGUF file's metadata and a table of its tensors with totals per type."""
    try:
        return _info(args)
    except BrokenPipeError:  # `realizar info FILE | head`: the reader left, which is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _column(texts: list[str], cap: int) -> int:
    return min(cap, max((len(t) for t in texts), default=0))


def _info(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    with GGUFFile(args.file) as f:
        print(f"file: {escape(f.path)}")
        print(
            f"GGUF version {f.version}, {_human(f.file_size)} ({f.file_size} bytes), "
            f"alignment {f.alignment}, data section at byte {f.data_offset}"
        )
        print(f"{_plural(len(f.metadata_types), 'metadata key')}, {_plural(len(f.tensors), 'tensor')}")
        print("\nmetadata:")
        keys = [shorten(escape(k), KEY_WIDTH) for k in f.metadata_types]
        types = [shorten(t, TYPE_WIDTH) for t in f.metadata_types.values()]
        kw, tw = _column(keys, KEY_WIDTH), _column(types, TYPE_WIDTH)
        for key, shown, type_desc in zip(f.metadata_types, keys, types, strict=True):
            print(f"  {shown:<{kw}}  {type_desc:<{tw}}  {_summary(f, key)}")
        selected = _select(f, args.tensors)
        matching = "" if args.tensors is None else " matching " + escape(" ".join(args.tensors))
        print(f"\ntensors{matching}:")
        names = [shorten(escape(t.name), NAME_WIDTH) for t in selected]
        nw = _column([*names, "name"], NAME_WIDTH)
        print(f"  {'name':<{nw}}  {'type':<8} {'shape':<22} {'bytes':>12}  {'offset':>12}")
        per_type: dict[str, list[int]] = {}
        for t, name in zip(selected, names, strict=True):
            shape = "x".join(str(s) for s in t.shape) or "scalar"
            size = "?" if t.nbytes is None else str(t.nbytes)
            note = "" if t.decodable else "  (not decodable by realizar)"
            print(f"  {name:<{nw}}  {t.type_name:<8} {shape:<22} {size:>12}  {t.offset:>12}{note}")
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
            f"no tensor of {f.path} matches {' '.join(patterns)} ({_plural(len(f.tensors), 'tensor')} "
            "in file)"
        )
    return chosen


def _safetensors_header(tensors: list[TensorInfo], st_dtype: str, itemsize: int, source: str) -> bytes:
    """The header of a safetensors file of ``tensors``, or a ``ValueError`` if no reader could read it."""
    reserved = [t for t in tensors if t.name == "__metadata__"]
    if reserved:
        raise ValueError(
            "a tensor is named '__metadata__', which safetensors reserves for the file's metadata "
            "(a reader would fail on the file); choose the other tensors with --tensors, or write .npz"
        )
    header: dict[str, Any] = {"__metadata__": {"source": source, "written_by": "realizar dequantize"}}
    pos = 0
    for t in tensors:
        n = t.n_elements * itemsize
        header[t.name] = {"dtype": st_dtype, "shape": list(t.shape), "data_offsets": [pos, pos + n]}
        pos += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned
    if len(raw) > SAFETENSORS_MAX_HEADER:
        raise ValueError(
            f"the safetensors header would take {len(raw)} bytes (tensor names and shapes), more than "
            f"the {SAFETENSORS_MAX_HEADER} that safetensors readers accept; write .npz, or fewer "
            "tensors with --tensors"
        )
    return struct.pack("<Q", len(raw)) + raw


def _npz_members(tensors: list[TensorInfo]) -> list[str]:
    """The member name of each tensor in a .npz file, or a ``ValueError`` naming the tensors that
    a .npz cannot hold under their own names (``zipfile`` cuts a name at its first NUL, which GGUF
    allows, and would lose a tensor or rename it silently)."""
    members = [t.name + ".npy" for t in tensors]
    bad = [t for t, m in zip(tensors, members, strict=True) if zipfile.ZipInfo(m).filename != m]
    if bad:
        listed = ", ".join(repr(t.name) for t in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ValueError(
            f"{_plural(len(bad), 'tensor')} cannot be stored in .npz under their names ({listed}: a NUL "
            "or a path separator, which zip member names cannot hold); write .safetensors, which keeps "
            "any name, or choose the other tensors with --tensors"
        )
    return members


def _as_bytes(a: npt.NDArray[Any]) -> memoryview:
    return memoryview(cast(Any, np.ascontiguousarray(a).reshape(-1).view(np.uint8)))


def _write_error(path: str, e: OSError) -> OSError:
    """``e`` told about the user's output path, not the hidden temporary file next to it."""
    return OSError(e.errno, f"cannot write {path}: {e.strerror or e}")


def _check_output(path: str) -> None:
    """Fail before any work if ``path`` cannot become the output file."""
    if os.path.isdir(path):
        raise OSError(f"cannot write {path}: it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OSError(f"cannot write {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OSError(f"cannot write {path}: the directory {directory} is not writable")


@contextlib.contextmanager
def _atomic_output(path: str) -> Iterator[IO[bytes]]:
    """A temporary file next to ``path``, renamed to ``path`` only if the block succeeds.

    The temporary file gets the usual permissions through its descriptor (``fchmod``), never through
    its name, and must still be the file this process created when it is renamed (a regular file,
    same inode): where others may write to the directory, swapping it for a symbolic link can then
    neither make another file readable nor leave the output a link. ``os.replace`` renames the
    name ``path`` itself and follows no link.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the output gets the usual permissions
        else:  # pragma: no cover - Windows before Python 3.13
            os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fp:
            yield fp
            fp.flush()
            os.fsync(fp.fileno())
            mine, now = os.fstat(fp.fileno()), os.stat(tmp, follow_symlinks=False)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
                raise OSError(f"cannot write {path}: its temporary file was replaced by another process")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if e.errno is None:
            raise
        raise _write_error(path, e) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _abandon(zf: zipfile.ZipFile, member: IO[bytes] | None) -> None:
    """Close a .npz being abandoned after an error, so that neither it nor its member writes again
    (or prints "Exception ignored in ZipFile.__del__") when garbage-collected; the file is deleted."""
    for closeable in (member, zf):
        if closeable is not None:
            with contextlib.suppress(Exception):
                closeable.close()


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
    _check_output(out)
    t0 = time.perf_counter()
    with GGUFFile(args.file) as f:
        chosen = _select(f, args.tensors)
        skipped = [t for t in chosen if not t.decodable]
        if skipped and not args.skip_unsupported:
            names = ", ".join(f"{t.name} ({t.type_name})" for t in skipped[:5])
            raise ValueError(
                f"{_plural(len(skipped), 'selected tensor')} of types realizar cannot decode: {names}"
                f"{' ...' if len(skipped) > 5 else ''}; pass --skip-unsupported to leave them out, "
                "or --tensors to choose"
            )
        todo = [t for t in chosen if t.decodable]
        if not todo:
            raise ValueError("no selected tensor can be decoded; nothing to write")
        # Everything that can be known before decoding is checked before decoding.
        source = os.path.basename(f.path)
        header = _safetensors_header(todo, st_dtype, itemsize, source) if kind == "safetensors" else b""
        members = _npz_members(todo) if kind == "npz" else []
        total = sum(t.n_elements for t in todo) * itemsize
        from tqdm import tqdm

        written = 0
        with _atomic_output(out) as fp:
            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="dequantize",
                disable=True if args.quiet else None,
                file=sys.stderr,
            )
            with bar:
                step: Callable[[int, npt.NDArray[Any]], None]
                zf: zipfile.ZipFile | None = None
                member: IO[bytes] | None = None
                if kind == "safetensors":
                    fp.write(header)

                    def step(i: int, a: npt.NDArray[Any]) -> None:
                        fp.write(_as_bytes(a))
                else:
                    archive = zf = zipfile.ZipFile(fp, "w", zipfile.ZIP_STORED, allowZip64=True)

                    def step(i: int, a: npt.NDArray[Any]) -> None:
                        nonlocal member
                        member = archive.open(members[i], "w", force_zip64=True)
                        np.lib.format.write_array(member, a, allow_pickle=False)
                        member.close()
                        member = None

                try:
                    for i, t in enumerate(todo):
                        bar.set_postfix_str(shorten(escape(t.name), 40), refresh=False)
                        a = f.dequantize(t.name, dtype=np_dtype)
                        step(i, a)
                        written += a.nbytes
                        bar.update(a.nbytes)
                        del a
                    if zf is not None:
                        stored = [zi.filename for zi in zf.infolist()]
                        zf.close()
                        if stored != members:  # never report success with a tensor missing
                            raise ValueError(f"the .npz holds {len(stored)} members, not {len(members)}")
                except BaseException:
                    if zf is not None:
                        _abandon(zf, member)
                    raise
    dt = time.perf_counter() - t0
    weights = sum(t.n_elements for t in todo)
    print(
        f"wrote {_plural(len(todo), 'tensor')} ({weights} weights, {_human(written)} of {args.dtype}) "
        f"to {escape(out)} in {dt:.2f} s ({_human(written / max(dt, 1e-9))}/s)"
    )
    if skipped:
        print(
            f"skipped {_plural(len(skipped), 'tensor')} of undecodable types: "
            + ", ".join(f"{escape(t.name)} ({t.type_name})" for t in skipped)
        )
    return 0


def add_parsers(sub: Any) -> None:
    """Registers ``info`` and ``dequantize`` on the subparsers object of ``cli.build_parser``."""
    p = sub.add_parser(
        "info",
        help="show a GGUF file's metadata and tensors",
        description="Show a GGUF file's metadata, a table of its tensors (name, type, shape, bytes, offset) "
        "and totals per type with bits per weight. Text from the file is shown with control characters "
        "escaped. Exit status: 0 ok, 1 unreadable or malformed file, 2 bad usage.",
    )
    p.add_argument("file", metavar="FILE", help="a .gguf file")
    p.add_argument(
        "--tensors",
        metavar="GLOB",
        action="append",
        help="only list tensors whose names match this glob (repeat the option for more globs)",
    )
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "dequantize",
        help="decode a GGUF file's tensors into .safetensors or .npz",
        description="Decode the tensors of a GGUF file (bit-exact with ggml) and write them to OUT, "
        "tensor by tensor so memory stays bounded by the largest tensor. OUT is written to a temporary "
        "file in the same directory and renamed at the end: an error, a full disk, Ctrl-C or SIGTERM "
        "never leaves a partial OUT. Exit status: 0 ok, 1 error (nothing written), 2 bad usage, "
        "130 interrupted, 143 terminated.",
    )
    p.add_argument("file", metavar="FILE", help="a .gguf file")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file: *.safetensors or *.npz")
    p.add_argument(
        "--dtype", choices=sorted(DTYPES), default="f32", help="output dtype (default: %(default)s)"
    )
    p.add_argument(
        "--tensors",
        metavar="GLOB",
        action="append",
        help="only tensors whose names match this glob (repeat the option for more globs)",
    )
    p.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="leave out tensors of types realizar cannot decode instead of failing",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dequantize)
