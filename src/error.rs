//! The one error type of the crate. The Python layer maps each variant to an exception in one place
//! (`python/errors.rs`).

use crate::QuantType;

/// Everything that can go wrong in realizar's core.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A type name that no format of realizar has.
    #[error("unknown quantization type name {name:?}; supported: {supported}")]
    UnknownTypeName { name: String, supported: String },

    /// A ggml type id that realizar does not know (or that was retired).
    #[error("unknown or unsupported ggml type id {id}; supported: {supported}")]
    UnknownTypeId { id: u32, supported: String },

    /// The input length is not a whole number of blocks.
    #[error(
        "{qtype} data must be a multiple of {block_bytes} bytes (one block of {block_weights} weights), \
         got {len} bytes ({remainder} bytes left over)"
    )]
    BadInputLength { qtype: QuantType, block_bytes: usize, block_weights: usize, len: usize, remainder: usize },

    /// The output slice does not have exactly the number of weights the input decodes to.
    #[error("output holds {actual} values but {qtype} input of {input_bytes} bytes decodes to {expected}")]
    BadOutputLength { qtype: QuantType, input_bytes: usize, expected: usize, actual: usize },

    /// The input to a quantizer is not a whole number of blocks / rows.
    #[error("{what}: got {len} values, which is not a multiple of {multiple}")]
    BadValueCount { what: String, len: usize, multiple: usize },

    /// A quantizer input (or importance matrix) holds NaN or an infinity.
    #[error("{what} holds a non-finite value {value} at index {index}; quantizers need finite input")]
    NonFiniteValue { what: String, index: usize, value: String },

    /// The importance matrix does not fit the rows, or holds a negative weight.
    #[error("bad importance matrix: {0}")]
    BadImatrix(String),

    /// The output buffer of a quantizer does not have exactly the encoded size.
    #[error("output holds {actual} bytes but {n_values} values of {qtype} encode to {expected} bytes")]
    BadQuantizedLength { qtype: QuantType, n_values: usize, expected: usize, actual: usize },

    /// Generic invalid argument (with the reason spelled out).
    #[error("{0}")]
    InvalidArgument(String),

    /// A malformed GGUF file: what is wrong, and the byte offset in the file where it was found.
    #[error("invalid GGUF file at byte offset {offset}: {kind}")]
    Gguf { offset: u64, kind: GgufErrorKind },

    /// An operating-system error while opening or mapping a file (kept as kind + message so that
    /// `Error` stays `Clone + Eq`; the Python layer turns it back into the matching `OSError`).
    #[error("{message}")]
    Io { kind: std::io::ErrorKind, message: String },
}

/// What is wrong with a malformed GGUF file (see [`Error::Gguf`], which adds the byte offset).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GgufErrorKind {
    /// The file has no bytes at all.
    #[error("the file is empty (0 bytes)")]
    Empty,
    /// The file ends in the middle of something.
    #[error("file truncated: {what} needs {needed} bytes but only {available} are left")]
    Truncated { what: String, needed: u64, available: u64 },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic { found: [u8; 4] },
    /// A file written in big-endian byte order (for s390x); realizar reads little-endian only.
    #[error(
        "big-endian GGUF file (version field reads 0x{raw_version:08x}, i.e. version {version} byte-swapped); \
         only little-endian GGUF is supported"
    )]
    BigEndian { raw_version: u32, version: u32 },
    /// A GGUF version other than 2 or 3.
    #[error("unsupported GGUF version {0}; supported: 2, 3")]
    UnsupportedVersion(u32),
    /// A count that cannot possibly fit in the rest of the file.
    #[error("{what} count {count} is impossible: each needs at least {min_size} bytes and only {available} are left")]
    CountTooLarge { what: String, count: u64, min_size: u64, available: u64 },
    /// A metadata value type id that GGUF does not define.
    #[error("unknown metadata value type {type_id} for {what} (valid: 0..=12)")]
    UnknownValueType { what: String, type_id: u32 },
    /// Arrays nested deeper than realizar accepts.
    #[error("arrays nested more than {max} levels deep in {what}")]
    NestingTooDeep { what: String, max: usize },
    /// A bool that is neither 0 nor 1.
    #[error("invalid bool byte {byte} in {what} (must be 0 or 1)")]
    BadBool { what: String, byte: u8 },
    /// A key or tensor name that is not UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    /// A metadata key that appears twice.
    #[error("duplicate metadata key {0:?}")]
    DuplicateKey(String),
    /// A tensor name that appears twice.
    #[error("duplicate tensor name {0:?}")]
    DuplicateTensor(String),
    /// A bad `general.alignment`.
    #[error("bad general.alignment: {0}")]
    BadAlignment(String),
    /// More dimensions than ggml allows.
    #[error("tensor {name:?} has {n_dims} dimensions; at most {max} are allowed")]
    TooManyDims { name: String, n_dims: u32, max: u32 },
    /// A dimension outside 0..=i64::MAX, or dimensions whose product overflows.
    #[error("tensor {name:?}: {msg}")]
    BadShape { name: String, msg: String },
    /// A tensor whose data starts at an offset that is not a multiple of the alignment.
    #[error("tensor {name:?} data offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned { name: String, offset: u64, alignment: u64 },
    /// A tensor whose data reaches past the end of the file.
    #[error(
        "tensor {name:?} data [{start}, {start}+{nbytes}) relative to the data section reaches past its end \
         (the data section has {data_len} bytes)"
    )]
    OutOfBounds { name: String, start: u64, nbytes: u64, data_len: u64 },
    /// Two tensors whose data overlap.
    #[error("tensor {name:?} data overlaps tensor {other:?} (which ends at data offset {other_end})")]
    Overlap { name: String, other: String, other_end: u64 },
}

/// `Result` with realizar's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
