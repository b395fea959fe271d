//! realizar: bit-exact, SIMD, multi-core decoding of the block-quantized weight formats of
//! llama.cpp / GGML (Q4_0 … Q6_K, F16, BF16) into `f32`.
//!
//! ```
//! use realizar::{dequantize, QuantType};
//! // One Q8_0 block: fp16 scale 0.5, then 32 signed 8-bit quants.
//! let mut block = vec![0x00, 0x38];
//! block.extend((0..32).map(|i| i as u8));
//! let y = dequantize(&block, QuantType::Q8_0).unwrap();
//! assert_eq!(y[3], 1.5);
//! ```
//!
//! Layout: `quant_type.rs` is the table of formats, `formats/` has one file per format (the portable
//! reference decoders), `kernels/` one file per instruction set, `parallel.rs` the threading, and
//! `python/` (feature `python`) the PyO3 bindings, which only convert types.

#![allow(clippy::needless_range_loop)] // index loops mirror ggml's C reference, which reviewers compare against

pub mod error;
pub mod formats;
pub mod gguf;
pub mod kernels;
pub mod parallel;
pub mod quant_type;
pub mod quantize;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};

/// The README's Rust example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use kernels::Kernel;
pub use quant_type::QuantType;

/// How to decode: how many threads, which kernel. `Default` is what [`dequantize`] uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Threads to use; 0 lets realizar choose (all cores for large inputs, one for small).
    pub threads: usize,
    /// Kernel to use; `None` is the active one ([`kernels::active`]).
    pub kernel: Option<Kernel>,
}

/// Decodes `data` (whole blocks of `qtype`) into a new vector of `f32`.
pub fn dequantize(data: &[u8], qtype: QuantType) -> Result<Vec<f32>> {
    let n = qtype.weights_in(data.len())?;
    let mut out = vec![0f32; n];
    dequantize_into_with(data, qtype, &mut out, Options::default())?;
    Ok(out)
}

/// Decodes `data` into `out`, which must hold exactly the number of weights `data` encodes.
pub fn dequantize_into(data: &[u8], qtype: QuantType, out: &mut [f32]) -> Result<()> {
    dequantize_into_with(data, qtype, out, Options::default())
}

/// [`dequantize_into`] with explicit [`Options`].
pub fn dequantize_into_with(data: &[u8], qtype: QuantType, out: &mut [f32], opts: Options) -> Result<()> {
    check_lengths(data, qtype, out)?;
    let decode = kernels::decoder(qtype, kernel_of(opts)?);
    parallel::run(decode, qtype, data, out, parallel::threads_for(out.len(), opts.threads));
    Ok(())
}

/// One decode of [`dequantize_many_into`]: input bytes, their type, the output.
pub type Job<'a, 'b> = (&'a [u8], QuantType, &'b mut [f32]);

/// Decodes several inputs into their outputs in one parallel pass: all the jobs are cut into
/// pieces of whole blocks that the threads share, so many small tensors (a model file's) keep every
/// core busy where one [`dequantize_into_with`] per tensor would run most of them on one thread.
/// Every job is checked before any is decoded; the output is identical for every thread count.
pub fn dequantize_many_into(jobs: &mut [Job<'_, '_>], opts: Options) -> Result<()> {
    for (i, (data, qtype, out)) in jobs.iter().enumerate() {
        check_lengths(data, *qtype, out).map_err(|e| Error::InvalidArgument(format!("job {i}: {e}")))?;
    }
    let kernel = kernel_of(opts)?;
    let total = jobs.iter().map(|j| j.2.len()).sum();
    let pieces =
        jobs.iter_mut().map(|(data, qtype, out)| (kernels::decoder(*qtype, kernel), *qtype, *data, &mut **out));
    parallel::run_many(pieces, parallel::threads_for(total, opts.threads));
    Ok(())
}

fn check_lengths(data: &[u8], qtype: QuantType, out: &[f32]) -> Result<()> {
    let n = qtype.weights_in(data.len())?;
    if out.len() != n {
        return Err(Error::BadOutputLength { qtype, input_bytes: data.len(), expected: n, actual: out.len() });
    }
    Ok(())
}

fn kernel_of(opts: Options) -> Result<Kernel> {
    match opts.kernel {
        Some(k) if !k.is_supported() => Err(Error::InvalidArgument(format!("kernel {k} is not supported on this CPU"))),
        Some(k) => Ok(k),
        None => Ok(kernels::active()),
    }
}
