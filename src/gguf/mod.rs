//! GGUF model files (versions 2 and 3, little-endian), memory-mapped and validated.
//!
//! ```no_run
//! let f = realizar::gguf::GgufFile::open("model.gguf").unwrap();
//! for t in f.tensors() {
//!     println!("{} {:?} {:?} {:?}", t.name, t.shape(), t.ggml_type().map(|g| g.name), t.nbytes);
//! }
//! let w = f.dequantize("token_embd.weight").unwrap();
//! ```
//!
//! Layout of a file (ggml `docs/gguf.md`): magic `GGUF`, u32 version, u64 tensor count, u64
//! metadata count; the metadata key/value pairs; the tensor infos (name, n_dims, dims, ggml type,
//! offset); padding to `general.alignment` (default 32); the data section, in which each tensor's
//! offset is relative to the start of the data section and a multiple of the alignment.
//!
//! All validation happens once, in [`parse`] (`parse.rs`): after it succeeds, every tensor's byte
//! range lies inside the file, is aligned, does not overlap another tensor, and its size follows
//! from its shape with no overflow. Decisions made there:
//! - Tensor types ggml knows but realizar does not decode (IQ*, I8..I64, F64, TQ*, MXFP4, Q8_1,
//!   Q8_K) have known sizes ([`types`]) and are fully validated; they list and expose raw bytes,
//!   only decoding fails.
//! - A tensor type id unknown to ggml keeps its raw id; its size cannot be known, so `nbytes` is
//!   `None`, its data offset is still checked (aligned, inside the data section), but it is left out
//!   of the overlap check and has no raw bytes.
//! - `general.alignment` must be a UINT32 power of two (as ggml requires), at most 1 GiB.
//! - Metadata keys and tensor names must be UTF-8 and unique; string values may be any bytes.
//! - Big-endian files (version field byte-swapped, or magic `FUGG`) are refused with
//!   [`GgufErrorKind::BigEndian`](crate::error::GgufErrorKind::BigEndian).
//! - Arrays may nest up to [`parse::MAX_NESTING`] levels; bools must be 0 or 1.

pub mod parse;
pub mod types;
pub mod value;

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, GgufErrorKind, Result};
use crate::QuantType;
pub use parse::parse;
pub use types::{ggml_type, GgmlType, GGML_TYPES};
pub use value::{Array, ArrayValues, Value, ValueType};

/// One tensor's description from the file, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (unique in the file).
    pub name: String,
    /// Dimensions in GGUF / ggml order (`ne[0]`, the contiguous one, first).
    pub dims: Vec<u64>,
    /// The raw ggml type id.
    pub type_id: u32,
    /// Offset of the data relative to the start of the data section (as stored in the file).
    pub offset: u64,
    /// Number of weights (product of `dims`, 1 for no dims).
    pub n_elements: u64,
    /// Bytes of data, `None` if the type id is unknown to ggml.
    pub nbytes: Option<u64>,
    /// Where this tensor's info starts in the file (for error messages).
    pub info_offset: u64,
    /// Absolute offset of the data in the file.
    pub data_start: u64,
}

impl TensorInfo {
    /// Shape in NumPy / row-major order (the GGUF dims reversed).
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }

    /// The ggml type, if ggml has one with this id.
    pub fn ggml_type(&self) -> Option<&'static GgmlType> {
        ggml_type(self.type_id)
    }

    /// The realizar type, if realizar decodes this tensor's type.
    pub fn quant_type(&self) -> Option<QuantType> {
        QuantType::from_ggml_id(self.type_id).ok()
    }
}

/// A parsed, validated GGUF header: everything but the tensor bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Gguf {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Alignment of tensor data (`general.alignment`, default 32).
    pub alignment: u64,
    /// Metadata in file order (keys unique).
    pub metadata: Vec<(String, Value)>,
    /// Tensor infos in file order (names unique).
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Size of the file in bytes.
    pub file_len: u64,
    /// Metadata key -> its position in `metadata`, for lookups in constant time.
    metadata_index: HashMap<String, usize>,
    /// Tensor name -> its position in `tensors` (a file may hold 100,000 tensors: a linear search
    /// per lookup made loading every tensor quadratic).
    tensor_index: HashMap<String, usize>,
}

impl Gguf {
    /// The metadata value of `key`, found by hash (see [`Gguf::reindex`]).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self.metadata_index.get(key).and_then(|&i| self.metadata.get(i)) {
            Some((k, v)) if k == key => Some(v),
            _ if self.metadata_index.len() != self.metadata.len() || self.metadata_index.contains_key(key) => {
                self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The tensor named `name`, found by hash (see [`Gguf::reindex`]).
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        match self.tensor_index.get(name).and_then(|&i| self.tensors.get(i)) {
            Some(t) if t.name == name => Some(t),
            _ if self.tensor_index.len() != self.tensors.len() || self.tensor_index.contains_key(name) => {
                self.tensors.iter().find(|t| t.name == name)
            }
            _ => None,
        }
    }

    /// Rebuilds the indexes behind [`Gguf::get`] and [`Gguf::tensor`] after `metadata` or `tensors`
    /// were changed. Lookups notice a stale index (an entry moved, entries added or removed) and
    /// then search linearly; only a name changed in place is not found without this.
    pub fn reindex(&mut self) {
        self.metadata_index = self.metadata.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
        self.tensor_index = self.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    }

    /// The bytes of tensor `t` in `file` (the bytes this header was parsed from); `None` if the type
    /// is unknown (size unknown). Never panics for a `t` from this header and its own file.
    pub fn tensor_bytes<'a>(&self, file: &'a [u8], t: &TensorInfo) -> Option<&'a [u8]> {
        let n = t.nbytes?;
        let start = usize::try_from(t.data_start).ok()?;
        let end = start.checked_add(usize::try_from(n).ok()?)?;
        file.get(start..end)
    }
}

/// The bytes behind a [`GgufFile`]: a read-only memory map, or an owned buffer.
#[derive(Debug)]
pub enum Storage {
    /// A read-only mapping of the file.
    Mmap(memmap2::Mmap),
    /// Bytes held in memory.
    Bytes(Vec<u8>),
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Bytes(b) => b,
        }
    }
}

/// An open GGUF file: the validated header plus the (shared) bytes.
#[derive(Debug, Clone)]
pub struct GgufFile {
    storage: Arc<Storage>,
    header: Gguf,
}

fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Io { kind: e.kind(), message: format!("{}: {e}", path.display()) }
}

impl GgufFile {
    /// Opens and memory-maps `path`, then validates it.
    ///
    /// Only regular files are opened: a FIFO, a device or a directory is refused with an
    /// [`Error::Io`] of kind `InvalidInput` before anything is read (opening a FIFO for reading
    /// would block until some other process opened it for writing). On Unix the file is opened
    /// non-blocking, so that even a path swapped for a FIFO after that check cannot hang.
    ///
    /// Everything this returns (header, metadata, tensor infos) is read and validated here, once;
    /// tensor bytes are read from the mapping when asked for. Like every memory-mapped reader
    /// (gguf-py's `np.memmap` too), this relies on the file not being changed while it is mapped:
    /// bytes rewritten in place by another process show through, and reading tensor bytes beyond
    /// the end of a file that another process truncated raises `SIGBUS`, which kills the process.
    /// Replacing the file by renaming a new one over it (what atomic writers do) is safe: the
    /// mapping keeps the old file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let not_regular = || Error::Io {
            kind: std::io::ErrorKind::InvalidInput,
            message: format!("{}: not a regular file", path.display()),
        };
        if !std::fs::metadata(path).map_err(|e| io_error(path, &e))?.is_file() {
            return Err(not_regular());
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let file = options.open(path).map_err(|e| io_error(path, &e))?;
        let meta = file.metadata().map_err(|e| io_error(path, &e))?;
        if !meta.is_file() {
            return Err(not_regular());
        }
        if meta.len() == 0 {
            // mmap cannot map zero bytes; this is a malformed GGUF, not an I/O problem.
            return Err(Error::Gguf { offset: 0, kind: GgufErrorKind::Empty });
        }
        // SAFETY: read-only mapping; like every mmap-based reader we rely on the file not being
        // truncated or rewritten by someone else while mapped (documented above).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_error(path, &e))?;
        Self::from_storage(Storage::Mmap(map))
    }

    /// Validates a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_storage(Storage::Bytes(bytes))
    }

    fn from_storage(storage: Storage) -> Result<Self> {
        let header = parse(&storage)?;
        Ok(GgufFile { storage: Arc::new(storage), header })
    }

    /// The validated header.
    pub fn header(&self) -> &Gguf {
        &self.header
    }

    /// The shared bytes and the header, taken apart.
    pub fn into_parts(self) -> (Arc<Storage>, Gguf) {
        (self.storage, self.header)
    }

    /// The shared bytes of the whole file (hold a clone to keep them alive).
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// GGUF version.
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.header.metadata
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensor(name)
    }

    /// The raw bytes of the tensor named `name`, borrowed from the mapping.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8]> {
        let t = self.tensor(name).ok_or_else(|| Error::InvalidArgument(format!("no tensor named {name:?}")))?;
        self.header.tensor_bytes(&self.storage, t).ok_or_else(|| undecodable_size(t))
    }

    /// Decodes the tensor named `name` to `f32` (row-major, [`TensorInfo::shape`]).
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>> {
        let data = self.tensor_data(name)?;
        let t = self.tensor(name).expect("checked by tensor_data");
        let q = t.quant_type().ok_or_else(|| undecodable(t))?;
        crate::dequantize(data, q)
    }
}

/// The error for the bytes of a tensor whose type (hence size) ggml does not know.
pub fn undecodable_size(t: &TensorInfo) -> Error {
    Error::InvalidArgument(format!(
        "tensor {:?} has ggml type id {}, which ggml does not define; its size is unknown",
        t.name, t.type_id
    ))
}

/// The error for decoding a tensor whose type realizar cannot decode.
pub fn undecodable(t: &TensorInfo) -> Error {
    let name = t.ggml_type().map_or_else(|| format!("unknown type id {}", t.type_id), |g| g.name.to_owned());
    Error::InvalidArgument(format!(
        "tensor {:?} has type {name}, which realizar cannot decode (supported: {})",
        t.name,
        QuantType::supported_list()
    ))
}

#[cfg(test)]
mod tests;
