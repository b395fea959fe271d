"""GGUF model files: open, inspect and decode the tensors of llama.cpp's ``.gguf`` files.

The Rust core memory-maps the file and validates all of it (header, metadata, tensor infos, every
tensor's byte range) once, on open; a malformed file raises :class:`GGUFError` naming the problem
and its byte offset. Opening and listing cost milliseconds whatever the file size: tensor bytes are
only touched when a tensor is read, and metadata values are converted to Python when first asked for.

>>> import realizar
>>> with realizar.GGUFFile("model.gguf") as f:                    # doctest: +SKIP
...     print(f.metadata["general.architecture"], len(f))
...     w = f.dequantize("token_embd.weight", dtype="float16")
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Final, SupportsIndex, cast

import numpy as np
import numpy.typing as npt

from . import _realizar
from ._api import dequantize as _dequantize
from ._api import threads_arg
from ._realizar import GGUFError, RealizarError
from ._types import QuantType

__all__ = ["GGUFError", "GGUFFile", "TensorInfo", "load_gguf"]

LONG_ARRAY: Final = 64
"""Numeric and bool metadata arrays longer than this are read-only NumPy arrays; shorter ones lists."""

_CHUNK_WEIGHTS: Final = 1 << 18
"""Weights decoded at a time when converting to float16 / bfloat16: bounds the float32 scratch (1 MiB)
and the other per-chunk buffers, so that such an output costs little more than itself."""

_MANY_JOBS: Final = 256
"""Tensors decoded per call by :func:`load_gguf`. The extension checks the outputs of one call
against each other (no two may overlap), which costs more than linear time in the number of
outputs; batches keep a file of 100,000 small tensors linear."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF file.

    Attributes:
        name: the tensor's name.
        shape: NumPy (row-major) shape, i.e. the GGUF dims reversed.
        qtype: a :class:`QuantType`, or the raw ggml type id (``int``) for types realizar does not
            decode (these still list and expose raw bytes; decoding them raises ``RealizarError``).
        type_name: ggml's name of the type (``"Q4_K"``, ``"IQ2_XS"``), or ``"type<id>"`` if ggml has
            no such type.
        nbytes: bytes of data, or ``None`` if the type id is unknown to ggml (size unknown).
        offset: absolute byte offset of the data in the file.
    """

    name: str
    shape: tuple[int, ...]
    qtype: QuantType | int
    type_name: str
    nbytes: int | None
    offset: int

    @property
    def n_elements(self) -> int:
        """Number of weights."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def decodable(self) -> bool:
        """True if realizar can decode this tensor's type."""
        return isinstance(self.qtype, QuantType)


def _resolve_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    if isinstance(dtype, str) and dtype.lower() in ("bf16", "bfloat16"):
        return _bfloat16()
    if isinstance(dtype, str) and dtype.lower() in ("f16", "f32"):
        dtype = {"f16": np.float16, "f32": np.float32}[dtype.lower()]
    dt: np.dtype[Any] = np.dtype(dtype)
    if dt == np.float32 or dt == np.float16 or dt.name == "bfloat16":
        return dt
    raise TypeError(f"dtype must be float32, float16 or bfloat16 (ml_dtypes), got {dt}")


def _bfloat16() -> np.dtype[Any]:
    try:
        import ml_dtypes
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("dtype bfloat16 needs the ml_dtypes package (pip install ml_dtypes)") from e
    bf16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
    return bf16


def _bfloat16_bits(
    x: npt.NDArray[np.float32], out: npt.NDArray[np.uint16], nan: npt.NDArray[np.bool_]
) -> None:
    """``x`` rounded to bfloat16 (to nearest, ties to even), as bit patterns into ``out``; ``nan`` is
    scratch of ``x``'s size. The same bits as ``x.astype(ml_dtypes.bfloat16)``, NaN included (a NaN
    becomes the quiet NaN of its sign, 0x7FC0 / 0xFFC0, as ml_dtypes's conversion makes it), but
    computed in place: ``x`` is overwritten, and no temporary of ``x``'s size is made."""
    u = x.view(np.uint32)
    np.isnan(x, out=nan)
    nan_at = np.flatnonzero(nan) if nan.any() else None
    nan_sign = None if nan_at is None else (u[nan_at] >> 31).astype(np.uint16)
    np.right_shift(u, 16, out=out, casting="unsafe")  # the truncated bits ...
    np.bitwise_and(out, 1, out=out)  # ... whose lowest bit breaks ties to even:
    np.add(u, 0x7FFF, out=u)  # u + 0x7FFF + lsb carries into bit 16 exactly when rounding up
    np.add(u, out, out=u)  # (a NaN may wrap around here; it is replaced below)
    np.right_shift(u, 16, out=out, casting="unsafe")
    if nan_at is not None and nan_sign is not None:
        out[nan_at] = 0x7FC0 | (nan_sign << 15)


class _Metadata(Mapping[str, Any]):
    """A GGUF file's metadata: a read-only mapping in file order whose values are converted to Python
    from the file's bytes on first access, one key at a time, then kept."""

    __slots__ = ("_cache", "_f", "_types")

    def __init__(self, f: _realizar._GGUFFile, types: Mapping[str, str]) -> None:
        self._f = f
        self._types = types
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            if key not in self._types:
                raise KeyError(key) from None
        value = self._f.metadata_value(key, LONG_ARRAY)
        self._cache[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, key: object) -> bool:
        return key in self._types

    def __repr__(self) -> str:
        keys = list(self._types)
        shown = ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
        return f"<GGUF metadata, {len(keys)} keys: {shown}>"


class GGUFFile:
    """An open GGUF file (versions 2 and 3, little-endian), memory-mapped and validated.

    Use it as a context manager, or call :meth:`close`. Closing drops this object's reference to the
    mapping; arrays returned by :meth:`raw` hold their own reference, so they stay valid (the mapping
    is released when the last of them is garbage-collected). The metadata and the tensor list stay
    readable after closing.

    Iterating yields tensor names in file order; ``len`` is the number of tensors; ``name in f``
    tests for a tensor.

    What is guaranteed: everything but the tensor bytes (header, metadata, tensor list) is read
    and validated on open, and every tensor's byte range lies inside the file as it was then.
    Tensor bytes are read from the mapping when asked for, so, as with every memory-mapped reader
    (gguf-py's ``np.memmap`` too), the file must not change while it is mapped: bytes rewritten in
    place by another process show through, and reading a tensor of a file that another process
    truncated kills this process with ``SIGBUS``. Replacing the file by renaming a new one over it
    (what atomic writers do) is safe: the mapping keeps the old file.

    Raises:
        GGUFError: the file is not a valid GGUF file (the message says what and at which byte).
        OSError: the file cannot be opened (``FileNotFoundError``, ``PermissionError``, ...), or is
            not a regular file (a directory, a FIFO, a device).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._f: _realizar._GGUFFile | None = _realizar._GGUFFile(self._path)
        f = self._f
        self._header = f  # metadata stays readable after close; only the mapping is released
        self._meta: _Metadata | None = None
        self._types: Mapping[str, str] | None = None
        tensors: dict[str, TensorInfo] = {}
        for name, shape, type_id, type_name, nbytes, offset in f.tensors():
            qtype: QuantType | int = QuantType(type_id) if type_id in _DECODABLE else type_id
            tensors[name] = TensorInfo(
                name=name,
                shape=tuple(int(s) for s in shape),
                qtype=qtype,
                type_name=type_name if type_name is not None else f"type{type_id}",
                nbytes=nbytes,
                offset=offset,
            )
        self._tensors: Mapping[str, TensorInfo] = MappingProxyType(tensors)

    # -- the file ---------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The path the file was opened with."""
        return self._path

    @property
    def version(self) -> int:
        """GGUF version (2 or 3)."""
        return self._header.version

    @property
    def alignment(self) -> int:
        """Alignment of tensor data in bytes (``general.alignment``, default 32)."""
        return self._header.alignment

    @property
    def data_offset(self) -> int:
        """Absolute byte offset of the data section (tensor offsets are absolute already)."""
        return self._header.data_offset

    @property
    def file_size(self) -> int:
        """Size of the file in bytes, as it was when opened."""
        return self._header.file_size

    @property
    def tensors(self) -> Mapping[str, TensorInfo]:
        """Tensor name -> :class:`TensorInfo`, in file order (a read-only mapping)."""
        return self._tensors

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Metadata in file order (a read-only mapping): ints, floats, bools, strs (bytes if not
        UTF-8), lists; numeric and bool arrays longer than ``LONG_ARRAY`` are read-only 1-D NumPy
        arrays of the matching dtype. A value is converted to Python when first asked for, so
        that reading ``general.architecture`` does not convert a 50,000-token vocabulary."""
        if self._meta is None:
            self._meta = _Metadata(self._header, self.metadata_types)
        return self._meta

    @property
    def metadata_types(self) -> Mapping[str, str]:
        """The GGUF type of each metadata value: ``"UINT32"``, ``"ARRAY[STRING]"``, ..."""
        if self._types is None:
            self._types = MappingProxyType(dict(self._header.metadata_keys()))
        return self._types

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Release this object's reference to the mapping (idempotent). Views from :meth:`raw` stay
        valid; the metadata and the tensor list stay readable."""
        if self._f is not None:
            self._f.close()
            self._f = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (tensor data can no longer be read through this object)."""
        return self._f is None

    def __enter__(self) -> GGUFFile:
        """The file itself: ``with GGUFFile(path) as f: ...`` closes it when the block ends."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the file (see :meth:`close`); exceptions propagate."""
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._f is None else "open"
        return f"<GGUFFile {self._path!r} v{self.version}, {len(self._tensors)} tensors, {state}>"

    # -- container protocol -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        """The tensor names, in file order."""
        return iter(self._tensors)

    def __len__(self) -> int:
        """The number of tensors."""
        return len(self._tensors)

    def __contains__(self, name: object) -> bool:
        """True if the file has a tensor of this name."""
        return name in self._tensors

    # -- data -------------------------------------------------------------------------------------
    def _open(self) -> _realizar._GGUFFile:
        if self._f is None:
            raise ValueError(f"I/O operation on closed GGUF file {self._path!r}")
        return self._f

    def _info(self, name: str) -> TensorInfo:
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in {self._path}") from None

    def raw(self, name: str) -> npt.NDArray[np.uint8]:
        """The tensor's bytes as a zero-copy, read-only 1-D ``uint8`` view onto the mapping.

        The view keeps the mapping alive and stays valid after :meth:`close`.

        Raises:
            KeyError: no such tensor.
            RealizarError: the tensor's type id is unknown to ggml, so its size is unknown.
        """
        f = self._open()
        info = self._info(name)
        buf = f.raw(info.name)
        return np.frombuffer(cast(Any, buf), dtype=np.uint8)

    def dequantize(
        self,
        name: str,
        *,
        out: npt.NDArray[Any] | None = None,
        dtype: npt.DTypeLike | None = None,
    ) -> npt.NDArray[Any]:
        """Decode a tensor into an array of its :attr:`TensorInfo.shape`.

        Args:
            name: the tensor.
            out: optional C-contiguous writable array of the tensor's shape to fill; its dtype is used
                when ``dtype`` is not given.
            dtype: ``float32`` (the default), ``float16``, or ``bfloat16`` (``ml_dtypes.bfloat16``, or
                the string ``"bfloat16"``). Decoding is to float32 bit-exact with ggml, then rounded
                to nearest-even for float16 / bfloat16 (the same bits as NumPy's ``astype``), in
                chunks, so that the output is all the memory the call needs.

        Raises:
            KeyError: no such tensor.
            RealizarError: realizar cannot decode the tensor's type, or ``out`` does not fit.
            TypeError: unsupported dtype, or ``out`` is not a NumPy array.
            ValueError: ``out`` is not C-contiguous or is read-only; the file is closed.
        """
        if out is not None and not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray, not {type(out).__name__}")
        info = self._info(name)
        if not isinstance(info.qtype, QuantType):
            raise RealizarError(
                f"tensor {name!r} has type {info.type_name} (ggml id {info.qtype}), which realizar cannot "
                f"decode; supported: {', '.join(q.name for q in QuantType)}"
            )
        qt = info.qtype
        if dtype is None:
            dt = np.dtype(np.float32) if out is None else _resolve_dtype(out.dtype)
        else:
            dt = _resolve_dtype(dtype)
        if out is None:
            out = np.empty(info.shape, dtype=dt)
        else:
            if out.dtype != dt:
                raise TypeError(f"out has dtype {out.dtype} but dtype {dt} was asked for")
            if tuple(out.shape) != info.shape:
                raise RealizarError(
                    f"out has shape {tuple(out.shape)}, tensor {name!r} has shape {info.shape}"
                )
            if not out.flags.c_contiguous:
                raise ValueError("out must be C-contiguous")
            if not out.flags.writeable:
                raise ValueError("out is read-only (flags.writeable is False)")
        raw = self.raw(name)
        if out.size == 0:
            return out
        if dt == np.float32:
            _dequantize(raw, qt, out=out)
            return out
        bfloat16 = dt.name == "bfloat16"
        flat = out.reshape(-1)
        if bfloat16:
            flat = flat.view(np.uint16)
        bs, ts = qt.block_size, qt.type_size
        blocks_per_chunk = max(1, _CHUNK_WEIGHTS // bs)
        nblocks = raw.size // ts
        scratch = np.empty(min(nblocks, blocks_per_chunk) * bs, dtype=np.float32)
        nan = np.empty(scratch.size, dtype=np.bool_) if bfloat16 else None
        for b0 in range(0, nblocks, blocks_per_chunk):
            b1 = min(nblocks, b0 + blocks_per_chunk)
            n = (b1 - b0) * bs
            _dequantize(raw[b0 * ts : b1 * ts], qt, out=scratch[:n])
            dst = flat[b0 * bs : b0 * bs + n]
            if nan is not None:
                _bfloat16_bits(scratch[:n], dst, nan[:n])
            else:
                with np.errstate(over="ignore"):  # beyond the float16 range is inf, as IEEE rounding says
                    dst[...] = scratch[:n]
        return out


_DECODABLE: Final = frozenset(int(q) for q in QuantType)


_ARENA_ALIGN: Final = 64
"""Byte alignment of every array :func:`load_gguf` returns (a cache line; AVX-512 width)."""


def load_gguf(
    path: str | os.PathLike[str],
    *,
    dtype: npt.DTypeLike = np.float32,
    names: Iterable[str] | None = None,
    threads: SupportsIndex | None = None,
    skip_unsupported: bool = False,
) -> dict[str, npt.NDArray[Any]]:
    """Decode tensors of a GGUF file into a dict name -> array (in file order).

    All the arrays are views into one allocation, each starting on a 64-byte boundary; the memory
    is released when the last of them is gone (``arr.base`` holds it). One allocation gets the
    operating system's huge pages for the whole model where small per-tensor arrays would
    first-touch 4 KiB pages one by one, and all the tensors' blocks are decoded in one parallel pass
    (float32), so that loading a model costs little more than touching its memory once.

    Args:
        path: the ``.gguf`` file.
        dtype: ``float32`` (default), ``float16`` or ``bfloat16``.
        names: the tensors to load (default: all). Unknown names raise ``KeyError``.
        threads: threads to use (default: all cores for a model, one for a few small tensors).
        skip_unsupported: leave out tensors of types realizar cannot decode (IQ*, I8..I64, ...)
            instead of raising; their bytes stay readable with :meth:`GGUFFile.raw`.

    Raises:
        GGUFError: malformed file. RealizarError: a requested tensor's type cannot be decoded (and
        ``skip_unsupported`` is false). KeyError: a name in ``names`` is not in the file.
    """
    if isinstance(names, str):
        names = [names]
    dt = _resolve_dtype(dtype)
    nthreads = threads_arg(threads)
    with GGUFFile(path) as f:
        wanted = list(f) if names is None else list(dict.fromkeys(names))
        infos = [f._info(n) for n in wanted]
        undecodable = [i for i in infos if not i.decodable]
        if undecodable and not skip_unsupported:
            listed = ", ".join(f"{i.name!r} ({i.type_name})" for i in undecodable[:5])
            more = f" and {len(undecodable) - 5} more" if len(undecodable) > 5 else ""
            raise RealizarError(
                f"{len(undecodable)} tensor(s) of {f.path} have types realizar cannot decode: {listed}{more} "
                f"(supported: {', '.join(q.name for q in QuantType)}); pass skip_unsupported=True to "
                "leave them out, or names= to choose the tensors"
            )
        infos = [i for i in infos if i.decodable]
        offsets, total = [], 0
        for info in infos:
            offsets.append(total)
            total += -(-info.n_elements * dt.itemsize // _ARENA_ALIGN) * _ARENA_ALIGN
        arena = np.empty(total + _ARENA_ALIGN, dtype=np.uint8)
        start = -arena.ctypes.data % _ARENA_ALIGN
        out = {}
        for info, off in zip(infos, offsets, strict=True):
            nbytes = info.n_elements * dt.itemsize
            a = start + off
            out[info.name] = arena[a : a + nbytes].view(dt).reshape(info.shape)
        if dt == np.float32:
            jobs = [(f.raw(i.name), int(i.qtype), out[i.name].reshape(-1)) for i in infos]
            for j in range(0, len(jobs), _MANY_JOBS):
                _realizar._dequantize_many(jobs[j : j + _MANY_JOBS], threads=nthreads)
        else:
            for info in infos:
                f.dequantize(info.name, out=out[info.name])
        return out
