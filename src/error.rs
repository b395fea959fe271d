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
    BadInputLength {
        qtype: QuantType,
        block_bytes: usize,
        block_weights: usize,
        len: usize,
        remainder: usize,
    },

    /// The output slice does not have exactly the number of weights the input decodes to.
    #[error("output holds {actual} values but {qtype} input of {input_bytes} bytes decodes to {expected}")]
    BadOutputLength {
        qtype: QuantType,
        input_bytes: usize,
        expected: usize,
        actual: usize,
    },

    /// The input to a quantizer is not a whole number of blocks / rows.
    #[error("{what}: got {len} values, which is not a multiple of {multiple}")]
    BadValueCount {
        what: String,
        len: usize,
        multiple: usize,
    },

    /// Generic invalid argument (with the reason spelled out).
    #[error("{0}")]
    InvalidArgument(String),
}

/// `Result` with realizar's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
