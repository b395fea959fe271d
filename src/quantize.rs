//! Quantizers: `f32` rows to GGML blocks, byte for byte as llama.cpp's ggml produces them.
//!
//! Without an importance matrix every block format matches ggml's `quantize_row_<t>_ref`; with one
//! (per-column weights, `n_per_row` of them) it matches ggml's importance-weighted
//! `quantize_<t>(src, dst, nrow, n_per_row, imatrix)` as called by `ggml_quantize_chunk`
//! (Q8_0, F32, F16 and BF16 ignore the importance matrix, as ggml does).
//!
//! The per-format encoders live next to the decoders in `formats/<t>.rs`, the shared scale searches
//! in `formats/kquant_search.rs`. Threads split the input on row boundaries (on block boundaries
//! when there is no importance matrix, where a block does not depend on its row); every block is
//! computed the same way whatever the split, so the output is identical for any thread count.
//!
//! ```
//! use realizar::{quantize, QuantType};
//! let x: Vec<f32> = (0..64).map(|i| i as f32 / 8.0 - 4.0).collect();
//! let q = quantize::quantize(&x, QuantType::Q8_0).unwrap();
//! assert_eq!(q.len(), 2 * 34);
//! let y = realizar::dequantize(&q, QuantType::Q8_0).unwrap();
//! assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.02));
//! ```

use crate::formats::{self, kquant_search::fp32_to_fp16};
use crate::{Error, QuantType, Result};

/// An encoder of whole blocks without importance weights: `src.len() / block_size * type_size ==
/// dst.len()`.
pub type EncodeFn = fn(src: &[f32], dst: &mut [u8]);

/// An importance-weighted encoder of one row: `qw.len() == row.len()`.
pub type ImatrixEncodeFn = fn(row: &[f32], qw: &[f32], dst: &mut [u8]);

/// Options of [`quantize_rows_into_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct QuantizeOptions<'a> {
    /// Weights per row; `None` means one row holding the whole input. Blocks never span rows.
    pub n_per_row: Option<usize>,
    /// Importance weights, one per column (`n_per_row` values, finite, >= 0).
    pub imatrix: Option<&'a [f32]>,
    /// Threads to use; 0 lets realizar choose (all cores for large inputs, one for small).
    pub threads: usize,
}

fn f32_encode(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.iter().zip(dst.chunks_exact_mut(4)) {
        y.copy_from_slice(&x.to_le_bytes());
    }
}

fn f16_encode(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.iter().zip(dst.chunks_exact_mut(2)) {
        y.copy_from_slice(&fp32_to_fp16(*x).to_le_bytes());
    }
}

/// ggml's `ggml_compute_fp32_to_bf16`: round to nearest even (NaN cannot reach it here).
fn bf16_encode(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.iter().zip(dst.chunks_exact_mut(2)) {
        let u = x.to_bits();
        let h = if (u & 0x7fff_ffff) > 0x7f80_0000 {
            ((u >> 16) | 64) as u16
        } else {
            ((u.wrapping_add(0x7fff + ((u >> 16) & 1))) >> 16) as u16
        };
        y.copy_from_slice(&h.to_le_bytes());
    }
}

/// The reference encoder of a type (ggml's `quantize_row_<t>_ref`).
pub fn encoder(qtype: QuantType) -> EncodeFn {
    match qtype {
        QuantType::F32 => f32_encode,
        QuantType::F16 => f16_encode,
        QuantType::BF16 => bf16_encode,
        QuantType::Q4_0 => formats::q4_0::quantize,
        QuantType::Q4_1 => formats::q4_1::quantize,
        QuantType::Q5_0 => formats::q5_0::quantize,
        QuantType::Q5_1 => formats::q5_1::quantize,
        QuantType::Q8_0 => formats::q8_0::quantize,
        QuantType::Q2_K => formats::q2_k::quantize,
        QuantType::Q3_K => formats::q3_k::quantize,
        QuantType::Q4_K => formats::q4_k::quantize,
        QuantType::Q5_K => formats::q5_k::quantize,
        QuantType::Q6_K => formats::q6_k::quantize,
    }
}

/// The fastest encoder of a type for this CPU and the active kernel: the same bytes as
/// [`encoder`] (independent blocks / sub-blocks side by side in SIMD lanes), or [`encoder`] itself
/// when the scalar kernel is forced.
pub fn fast_encoder(qtype: QuantType) -> EncodeFn {
    match qtype {
        QuantType::Q4_0 => formats::q4_0::quantize_fast,
        QuantType::Q4_1 => formats::q4_1::quantize_fast,
        QuantType::Q5_0 => formats::q5_0::quantize_fast,
        QuantType::Q5_1 => formats::q5_1::quantize_fast,
        QuantType::Q8_0 => formats::q8_0::quantize_fast,
        QuantType::Q2_K => formats::q2_k::quantize_fast,
        QuantType::Q3_K => formats::q3_k::quantize_fast,
        QuantType::Q4_K => formats::q4_k::quantize_fast,
        QuantType::Q5_K => formats::q5_k::quantize_fast,
        QuantType::Q6_K => formats::q6_k::quantize_fast,
        _ => encoder(qtype),
    }
}

/// An encoder that also screens its input: returns `false` when every value of `src` is finite,
/// `true` when some may be a NaN or an infinity (the caller then looks for it exactly).
pub type ScreenedEncodeFn = fn(src: &[f32], dst: &mut [u8]) -> bool;

/// [`fast_encoder`] with the finiteness screen folded into the encoding pass, for the types whose
/// encoding is so cheap that a separate pass over the input would cost as much.
pub fn screened_encoder(qtype: QuantType) -> Option<ScreenedEncodeFn> {
    Some(match qtype {
        QuantType::Q4_0 => formats::q4_0::quantize_screened,
        QuantType::Q4_1 => formats::q4_1::quantize_screened,
        QuantType::Q5_0 => formats::q5_0::quantize_screened,
        QuantType::Q5_1 => formats::q5_1::quantize_screened,
        QuantType::Q8_0 => formats::q8_0::quantize_screened,
        _ => return None,
    })
}

/// The fastest importance-weighted encoder of a type for this CPU and the active kernel (the same
/// bytes as [`imatrix_encoder`]).
pub fn fast_imatrix_encoder(qtype: QuantType) -> Option<ImatrixEncodeFn> {
    Some(match qtype {
        QuantType::Q4_0 => formats::q4_0::quantize_row_imatrix_fast,
        QuantType::Q4_1 => formats::q4_1::quantize_row_imatrix_fast,
        QuantType::Q5_0 => formats::q5_0::quantize_row_imatrix_fast,
        QuantType::Q5_1 => formats::q5_1::quantize_row_imatrix_fast,
        QuantType::Q2_K => formats::q2_k::quantize_row_imatrix_fast,
        QuantType::Q3_K => formats::q3_k::quantize_row_imatrix_fast,
        QuantType::Q4_K => formats::q4_k::quantize_row_imatrix_fast,
        QuantType::Q5_K => formats::q5_k::quantize_row_imatrix_fast,
        QuantType::Q6_K => formats::q6_k::quantize_row_imatrix_fast,
        _ => return imatrix_encoder(qtype),
    })
}

/// The importance-weighted encoder of a type, or `None` where ggml ignores the importance matrix.
pub fn imatrix_encoder(qtype: QuantType) -> Option<ImatrixEncodeFn> {
    Some(match qtype {
        QuantType::Q4_0 => formats::q4_0::quantize_row_imatrix,
        QuantType::Q4_1 => formats::q4_1::quantize_row_imatrix,
        QuantType::Q5_0 => formats::q5_0::quantize_row_imatrix,
        QuantType::Q5_1 => formats::q5_1::quantize_row_imatrix,
        QuantType::Q2_K => formats::q2_k::quantize_row_imatrix,
        QuantType::Q3_K => formats::q3_k::quantize_row_imatrix,
        QuantType::Q4_K => formats::q4_k::quantize_row_imatrix,
        QuantType::Q5_K => formats::q5_k::quantize_row_imatrix,
        QuantType::Q6_K => formats::q6_k::quantize_row_imatrix,
        QuantType::F32 | QuantType::F16 | QuantType::BF16 | QuantType::Q8_0 => return None,
    })
}

/// Bytes that `n` values of `qtype` encode to (`n` must be a whole number of blocks).
pub fn encoded_len(qtype: QuantType, n: usize) -> Result<usize> {
    let bs = qtype.block_size();
    if !n.is_multiple_of(bs) {
        return Err(Error::BadValueCount {
            what: format!("{qtype} quantization input (blocks of {bs} weights)"),
            len: n,
            multiple: bs,
        });
    }
    Ok(n / bs * qtype.type_size())
}

/// Quantizes `x` (a whole number of blocks) into a new vector, as ggml's `quantize_row_<t>_ref`.
pub fn quantize(x: &[f32], qtype: QuantType) -> Result<Vec<u8>> {
    let mut out = vec![0u8; encoded_len(qtype, x.len())?];
    quantize_rows_into_with(x, qtype, &mut out, QuantizeOptions::default())?;
    Ok(out)
}

/// Quantizes `x` into `out`, which must hold exactly the encoded size.
pub fn quantize_into(x: &[f32], qtype: QuantType, out: &mut [u8]) -> Result<()> {
    quantize_rows_into_with(x, qtype, out, QuantizeOptions::default())
}

/// Quantizes rows of `n_per_row` values, with an optional importance matrix (`n_per_row` weights),
/// into a new vector.
pub fn quantize_rows(x: &[f32], qtype: QuantType, n_per_row: usize, imatrix: Option<&[f32]>) -> Result<Vec<u8>> {
    let mut out = vec![0u8; encoded_len(qtype, x.len())?];
    let opts = QuantizeOptions { n_per_row: Some(n_per_row), imatrix, threads: 0 };
    quantize_rows_into_with(x, qtype, &mut out, opts)?;
    Ok(out)
}

/// [`quantize_rows`] into `out`.
pub fn quantize_rows_into(
    x: &[f32],
    qtype: QuantType,
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    out: &mut [u8],
) -> Result<()> {
    quantize_rows_into_with(x, qtype, out, QuantizeOptions { n_per_row: Some(n_per_row), imatrix, threads: 0 })
}

/// Index and value of the first NaN or infinity in `x`.
fn first_non_finite(x: &[f32]) -> Option<(usize, f32)> {
    #[cfg(target_arch = "x86_64")]
    if formats::kquant_lanes::use_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        if !unsafe { formats::kquant_lanes::avx2::any_non_finite(x) } {
            return None;
        }
        let i = x.iter().position(|v| !v.is_finite())?;
        return Some((i, x[i]));
    }
    // Branch-free and vectorisable for the common (all finite) case.
    let mut acc = 0u32;
    for v in x {
        acc |= ((v.to_bits() & 0x7f80_0000) == 0x7f80_0000) as u32;
    }
    if acc == 0 {
        return None;
    }
    let i = x.iter().position(|v| !v.is_finite())?;
    Some((i, x[i]))
}

/// The general entry point: checks everything, then quantizes on `opts.threads` threads.
pub fn quantize_rows_into_with(x: &[f32], qtype: QuantType, out: &mut [u8], opts: QuantizeOptions<'_>) -> Result<()> {
    let n = x.len();
    let bs = qtype.block_size();
    let n_per_row = opts.n_per_row.unwrap_or(n);
    if opts.n_per_row == Some(0) {
        return Err(Error::InvalidArgument("n_per_row must be positive".into()));
    }
    if !n_per_row.is_multiple_of(bs) {
        return Err(Error::BadValueCount {
            what: format!("{qtype} row length n_per_row (blocks of {bs} weights)"),
            len: n_per_row,
            multiple: bs,
        });
    }
    let expected = encoded_len(qtype, n)?;
    if n_per_row > 0 && !n.is_multiple_of(n_per_row) {
        return Err(Error::BadValueCount {
            what: "quantization input (whole rows)".into(),
            len: n,
            multiple: n_per_row,
        });
    }
    if out.len() != expected {
        return Err(Error::BadQuantizedLength { qtype, n_values: n, expected, actual: out.len() });
    }
    if let Some(qw) = opts.imatrix {
        if qw.len() != n_per_row {
            return Err(Error::BadImatrix(format!(
                "it holds {} weights but rows have {n_per_row} values (one weight per column)",
                qw.len()
            )));
        }
        if let Some((index, v)) = first_non_finite(qw) {
            return Err(Error::NonFiniteValue { what: "importance matrix".into(), index, value: format!("{v}") });
        }
        if let Some(index) = qw.iter().position(|&w| w < 0.0) {
            return Err(Error::BadImatrix(format!("weight {} at index {index} is negative", qw[index])));
        }
    }
    if n == 0 {
        return Ok(());
    }
    let row_bytes = n_per_row / bs * qtype.type_size();
    let nrows = n / n_per_row;
    let threads = auto_threads(qtype, opts.imatrix.is_some(), n, opts.threads);
    // The finiteness check runs chunk by chunk right after each chunk is encoded, while the chunk
    // is in cache (a separate pass over the input would cost as much as the encoding itself); the
    // encoders are safe (if meaningless) on NaN and infinities. On error the output is left partly
    // written.
    let bad = match (opts.imatrix, fast_imatrix_encoder(qtype)) {
        (Some(qw), Some(enc)) => {
            let rows_per_chunk = (CHECK_CHUNK / n_per_row).max(1);
            let run = |x: &[f32], out: &mut [u8], base: usize| -> Option<(usize, f32)> {
                for (ci, (xc, oc)) in
                    x.chunks(rows_per_chunk * n_per_row).zip(out.chunks_mut(rows_per_chunk * row_bytes)).enumerate()
                {
                    for (row, dst) in xc.chunks_exact(n_per_row).zip(oc.chunks_exact_mut(row_bytes)) {
                        enc(row, qw, dst);
                    }
                    if let Some((i, v)) = first_non_finite(xc) {
                        return Some((base + ci * rows_per_chunk * n_per_row + i, v));
                    }
                }
                None
            };
            split(x, out, nrows, n_per_row, row_bytes, (threads, PIECE_VALUES_COSTLY), &run)
        }
        _ => {
            let enc = fast_encoder(qtype);
            let screened = screened_encoder(qtype);
            let ts = qtype.type_size();
            // The screened encoders check as they go; a chunk is re-read only when it may hold a
            // non-finite value, so their chunks can be larger (fewer calls).
            let chunk = if screened.is_some() { SCREENED_CHUNK } else { CHECK_CHUNK };
            let blocks_per_chunk = (chunk / bs).max(1);
            let run = |x: &[f32], out: &mut [u8], base: usize| -> Option<(usize, f32)> {
                for (ci, (xc, oc)) in
                    x.chunks(blocks_per_chunk * bs).zip(out.chunks_mut(blocks_per_chunk * ts)).enumerate()
                {
                    let maybe_bad = match screened {
                        Some(enc) => enc(xc, oc),
                        None => {
                            enc(xc, oc);
                            true
                        }
                    };
                    if !maybe_bad {
                        continue;
                    }
                    if let Some((i, v)) = first_non_finite(xc) {
                        return Some((base + ci * blocks_per_chunk * bs + i, v));
                    }
                }
                None
            };
            let piece = if bs == 256 { PIECE_VALUES_COSTLY } else { PIECE_VALUES };
            split(x, out, n / bs, bs, ts, (threads, piece), &run)
        }
    };
    match bad {
        Some((index, v)) => Err(Error::NonFiniteValue { what: "input".into(), index, value: format!("{v}") }),
        None => Ok(()),
    }
}

/// Inputs of K-quants, or of any type with an importance matrix, smaller than this many weights
/// are quantized on the calling thread when the caller leaves the thread count to realizar. These
/// encoders run at 30-250 Mweights/s on one thread, so 8 Ki weights are 30-250 us of work, as much
/// as a pool thread needs to wake up on the project's VM (spawn to start: about 1 us when the pool
/// thread is still spinning from a previous call, 90-160 us after 1-10 ms idle); with
/// [`crate::parallel::run_helped`] a late helper is not waited for, so two threads cost at most
/// the spawn (a few us) more than one. Measured 2 threads over 1 (`Q4_K`, back-to-back calls,
/// medians): 4 Ki weights 1.46x, 8 Ki 1.56x, 16 Ki 1.62x, 64 Ki 1.78x.
/// The other encoders (legacy types and Q8_0 without an importance matrix, float types) run at
/// 3-5 Gweights/s and keep [`crate::parallel::AUTO_THREADS_MIN_WEIGHTS`].
pub const AUTO_THREADS_MIN_WEIGHTS_COSTLY: usize = 1 << 13;

/// Number of threads for quantizing `n` weights of `qtype` when asked for `requested` (0 =
/// automatic).
fn auto_threads(qtype: QuantType, imatrix: bool, n: usize, requested: usize) -> usize {
    let costly = qtype.block_size() == 256 || (imatrix && imatrix_encoder(qtype).is_some());
    if requested == 0 && costly && n >= AUTO_THREADS_MIN_WEIGHTS_COSTLY {
        return rayon::current_num_threads();
    }
    crate::parallel::threads_for(n, requested)
}

/// Values checked for finiteness, then encoded, at a time (fits in L1/L2 cache).
const CHECK_CHUNK: usize = 4096;

/// Values encoded per call of a [`ScreenedEncodeFn`] (64 KiB of input, in L2 cache).
const SCREENED_CHUNK: usize = 16384;

type ChunkFn<'a> = dyn Fn(&[f32], &mut [u8], usize) -> Option<(usize, f32)> + Sync + 'a;

/// Values per piece handed to a thread (whole units: rows or blocks) by the 3-5 Gweights/s
/// encoders: about 4 us of work, small enough that two threads stay balanced when one starts late,
/// large enough that taking a piece (one uncontended lock) costs nothing.
const PIECE_VALUES: usize = 1 << 14;

/// [`PIECE_VALUES`] for the K-quants and the importance-weighted encoders (30-300 Mweights/s):
/// 16 super-blocks, 15-130 us of work. Short pieces also bound how long the caller can wait at the
/// end for a piece held by a pool thread that lost its core to another process. Not fewer than 16:
/// Q3_K's search regroups the sub-blocks of up to 16 blocks into full lanes, and pieces of 8 made
/// two threads 0.91-0.92x of two separate one-thread loops against 0.92-0.97x with 16 (1.43-1.80x
/// one thread against 1.90-1.92x, same runs).
const PIECE_VALUES_COSTLY: usize = 1 << 12;

/// Runs `f` on pieces of whole units (rows or blocks) with `threads` threads: the calling thread
/// and `threads - 1` pool threads take pieces from one shared list, in order, so a thread that
/// starts late takes fewer, and one that has not started when the work is done is not waited for
/// ([`crate::parallel::run_helped`]). `f` gets the index of its piece's first value and returns the first
/// non-finite input value it met; once one is found no new piece is started (every later piece
/// starts after it). Returns the one with the lowest index, which is the input's first.
fn split(
    x: &[f32],
    out: &mut [u8],
    units: usize,
    unit_values: usize,
    unit_bytes: usize,
    (threads, piece_values): (usize, usize),
    f: &ChunkFn<'_>,
) -> Option<(usize, f32)> {
    let threads = threads.clamp(1, units.max(1));
    if threads == 1 {
        return f(x, out, 0);
    }
    // At least four pieces per thread, at most `piece_values` values (or one unit) each.
    let per = units.div_ceil(4 * threads).clamp(1, (piece_values / unit_values).max(1));
    let pieces = x.chunks(per * unit_values).zip(out.chunks_mut(per * unit_bytes)).enumerate();
    let queue = std::sync::Mutex::new(pieces);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let found = std::sync::Mutex::new(None::<(usize, f32)>);
    let work = || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // The lock is held only to take the next piece, not while encoding it.
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            let Some((k, (x, out))) = next else { break };
            if let Some(e) = f(x, out, k * per * unit_values) {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let mut g = found.lock().unwrap_or_else(|p| p.into_inner());
                if g.is_none_or(|(i, _)| e.0 < i) {
                    *g = Some(e);
                }
            }
        }
    };
    crate::parallel::run_helped(threads, &work);
    found.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_finite_and_bad_sizes() {
        let mut x = vec![0.5f32; 64];
        x[37] = f32::NAN;
        match quantize(&x, QuantType::Q4_0) {
            Err(Error::NonFiniteValue { index, .. }) => assert_eq!(index, 37),
            other => panic!("{other:?}"),
        }
        assert!(matches!(quantize(&[0.0; 33], QuantType::Q8_0), Err(Error::BadValueCount { .. })));
        let x = vec![1.0f32; 512];
        assert!(matches!(quantize_rows(&x, QuantType::Q4_K, 256, Some(&[1.0; 255])), Err(Error::BadImatrix(_))));
        let mut qw = vec![1.0f32; 256];
        qw[3] = -1.0;
        assert!(matches!(quantize_rows(&x, QuantType::Q4_K, 256, Some(&qw)), Err(Error::BadImatrix(_))));
        assert!(matches!(quantize_rows(&x, QuantType::Q4_0, 96, None), Err(Error::BadValueCount { .. })));
    }

    #[test]
    fn names_the_first_non_finite_value_anywhere() {
        // 83 legacy blocks (groups of 8 in lanes and 3 left over) or 11 K-quant super-blocks, and a
        // second bad value later, so the reported one must be the first.
        for &t in &QuantType::ALL {
            let n = if t.block_size() == 32 { 32 * 83 } else { 256 * 11 };
            let base: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for pos in [0, 1, 31, 32, 255, 256, 257, 1000, n - 97, n - 33, n - 1] {
                    let qw = vec![1.0f32; n];
                    for (threads, imatrix) in [(1, None), (2, None), (1, Some(qw.as_slice()))] {
                        let mut x = base.clone();
                        x[pos] = bad;
                        if pos + 50 < n {
                            x[pos + 50] = f32::NAN;
                        }
                        let mut out = vec![0u8; encoded_len(t, n).unwrap()];
                        let opts = QuantizeOptions { n_per_row: None, imatrix, threads };
                        match quantize_rows_into_with(&x, t, &mut out, opts) {
                            Err(Error::NonFiniteValue { index, .. }) => {
                                assert_eq!(index, pos, "{t} {bad} at {pos}, {threads} threads")
                            }
                            other => panic!("{t} {bad} at {pos}: {other:?}"),
                        }
                    }
                }
            }
        }
    }

    /// Pseudo-random rows with every kind of trouble: zeros, constants, ties, tiny and huge values.
    fn nasty(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        (0..n)
            .map(|i| {
                let r = next();
                let g = ((r >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0;
                match (i / 256 + (r as usize & 7)) % 12 {
                    0 => 0.0,
                    1 => 0.25,
                    2 => g * 1e-8,
                    3 => g * 3e5,
                    4 => (g * 4.0).round() / 2.0,
                    5 => g.abs(),
                    6 => -g.abs(),
                    7 if r & 0x100 == 0 => 0.0,
                    8 if r & 0x200 == 0 => f32::MIN_POSITIVE * g,
                    9 if r & 0x200 == 0 => 1e-40 * g,
                    _ => g,
                }
            })
            .collect()
    }

    #[test]
    fn fast_encoders_equal_reference() {
        for seed in 1..6u64 {
            let x = nasty(256 * 64, seed);
            for &t in &QuantType::ALL {
                let n = encoded_len(t, x.len()).unwrap();
                let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
                encoder(t)(&x, &mut a);
                fast_encoder(t)(&x, &mut b);
                if a != b {
                    let bs = t.type_size();
                    let i = (0..n / bs).find(|&i| a[i * bs..(i + 1) * bs] != b[i * bs..(i + 1) * bs]).unwrap();
                    panic!(
                        "{t} seed {seed}: block {i} differs:\n{:?}\n{:?}",
                        &a[i * bs..(i + 1) * bs],
                        &b[i * bs..(i + 1) * bs]
                    );
                }
            }
        }
    }

    /// Blocks whose scale is so small that `1 / d` is infinite (`x * id` is then infinite or, for a
    /// zero weight, NaN: the AVX2 legacy encoders take their exact path for such groups of 8), or
    /// so large that `max - min` overflows, next to ordinary blocks.
    #[test]
    fn fast_encoders_equal_reference_at_extreme_scales() {
        let scales = [1e-45f32, 3e-45, 1e-44, 6e-42, 1e-40, 2.9e-39, 5.9e-39, 1.2e-38, 1.0, 1e30, 3e38];
        let x = nasty(256 * 64, 7);
        for (i, &s) in scales.iter().enumerate() {
            for sign in [1.0f32, -1.0] {
                // Block `k` of each group of 8 gets scale `s` when `k` is in `pattern`.
                for pattern in [0x01u32, 0x80, 0xff, 0x5a] {
                    let scaled = |v: f32, j: usize, b: usize| {
                        if (j + b + i).is_multiple_of(9) {
                            0.0
                        } else {
                            sign * s * (v / 4.0).clamp(-1.0, 1.0)
                        }
                    };
                    assert_fast_equals_reference_patterned(&x, pattern, scaled, &format!("scale {s} sign {sign}"));
                }
            }
        }
    }

    /// Blocks of one sign only (positive, negative, zeros of either sign, mixes of zeros and one
    /// sign) next to ordinary blocks: the AVX2 legacy encoders find the blocks' extremes on the
    /// float bits only for groups of 8 where every block holds both signs.
    #[test]
    fn fast_encoders_equal_reference_on_one_signed_blocks() {
        let x = nasty(256 * 64, 11);
        let kinds: [fn(f32, usize) -> f32; 6] = [
            |v, _| v.abs(),
            |v, _| -v.abs(),
            |_, _| 0.0,
            |_, _| -0.0,
            |v, j| if j % 3 == 0 { -0.0 } else { v.abs() },
            |v, j| if j % 5 == 1 { 0.0 } else { -v.abs() },
        ];
        for (ki, kind) in kinds.iter().enumerate() {
            for pattern in [0x01u32, 0x10, 0xff, 0x5a] {
                assert_fast_equals_reference_patterned(&x, pattern, |v, j, _| kind(v, j), &format!("kind {ki}"));
            }
        }
    }

    /// Gives the blocks `b` of `x` with bit `b % 8` set in `pattern` the values `f(value, j, b)`
    /// (`j`: the position in the block), then checks every fast encoder against the reference.
    fn assert_fast_equals_reference_patterned(
        x: &[f32],
        pattern: u32,
        f: impl Fn(f32, usize, usize) -> f32,
        what: &str,
    ) {
        let mut y = x.to_vec();
        for (b, blk) in y.chunks_exact_mut(32).enumerate() {
            if pattern & (1 << (b % 8)) != 0 {
                for (j, v) in blk.iter_mut().enumerate() {
                    *v = f(*v, j, b);
                }
            }
        }
        for &t in &QuantType::ALL {
            let n = encoded_len(t, y.len()).unwrap();
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            encoder(t)(&y, &mut a);
            fast_encoder(t)(&y, &mut b);
            assert!(a == b, "{t} {what} pattern {pattern:#x}");
        }
    }

    /// The legacy AVX2 encoders work on groups of 8 blocks (the next group's reductions issued
    /// before the current group's weights) and on single blocks after the last group: the
    /// reference's bytes for every block count, and a screen that reports a NaN or an infinity
    /// wherever it sits (in the first group, the second, the blocks left over).
    #[test]
    fn screened_encoders_equal_reference_for_every_block_count() {
        let x = nasty(32 * 90, 13);
        for &t in QuantType::ALL.iter().filter(|t| t.block_size() == 32) {
            let Some(screened) = screened_encoder(t) else { continue };
            for nb in (0..=26).chain([63, 64, 65, 90]) {
                let xs = &x[..32 * nb];
                let n = encoded_len(t, xs.len()).unwrap();
                let (mut a, mut b) = (vec![0u8; n], vec![0x5Au8; n]);
                encoder(t)(xs, &mut a);
                let bad = screened(xs, &mut b);
                assert!(a == b, "{t}: {nb} blocks");
                assert!(first_non_finite(xs).is_none() || bad, "{t}: {nb} blocks");
                for pos in [0, 31, 32 * 8 + 3, (32 * nb).saturating_sub(25)] {
                    if pos >= xs.len() {
                        continue;
                    }
                    for v in [f32::NAN, f32::NEG_INFINITY] {
                        let mut y = xs.to_vec();
                        y[pos] = v;
                        assert!(screened(&y, &mut b), "{t}: {nb} blocks, {v} at {pos}");
                    }
                }
            }
        }
    }

    /// Every encoder writes every output byte and reads none: the Python binding hands them
    /// uninitialised memory.
    #[test]
    fn encoders_write_every_byte() {
        let x = nasty(256 * 24, 5);
        let qw: Vec<f32> = nasty(768, 9).iter().map(|v| v.abs()).collect();
        for &t in &QuantType::ALL {
            let n = encoded_len(t, x.len()).unwrap();
            let mut outs = Vec::new();
            for fill in [0x00u8, 0xFF, 0x5A] {
                for imatrix in [None, Some(qw.as_slice())] {
                    for threads in [1, 2] {
                        let mut o = vec![fill; n];
                        let opts = QuantizeOptions { n_per_row: Some(768), imatrix, threads };
                        quantize_rows_into_with(&x, t, &mut o, opts).unwrap();
                        outs.push((imatrix.is_some(), o));
                    }
                }
                let (mut a, mut b) = (vec![fill; n], vec![fill; n]);
                encoder(t)(&x, &mut a);
                fast_encoder(t)(&x, &mut b);
                outs.push((false, a));
                outs.push((false, b));
                if let (Some(slow), Some(fast)) = (imatrix_encoder(t), fast_imatrix_encoder(t)) {
                    let (mut a, mut b) = (vec![fill; n], vec![fill; n]);
                    for ((row, ya), yb) in
                        x.chunks_exact(768).zip(a.chunks_exact_mut(n / 8)).zip(b.chunks_exact_mut(n / 8))
                    {
                        slow(row, &qw, ya);
                        fast(row, &qw, yb);
                    }
                    outs.push((true, a));
                    outs.push((true, b));
                }
            }
            let plain = &outs.iter().find(|(im, _)| !im).unwrap().1;
            let weighted = &outs.iter().find(|(im, _)| *im).unwrap().1;
            for (im, o) in &outs {
                assert!(o == if *im { weighted } else { plain }, "{t} imatrix {im}");
            }
        }
    }

    #[test]
    fn fast_imatrix_encoders_equal_reference() {
        for seed in 1..4u64 {
            let x = nasty(256 * 16, seed);
            let qw: Vec<f32> = nasty(256 * 4, seed + 100).iter().map(|v| v.abs()).collect();
            for &t in &QuantType::ALL {
                let (Some(a_fn), Some(b_fn)) = (imatrix_encoder(t), fast_imatrix_encoder(t)) else { continue };
                // 352 = 11 legacy blocks: one group of 8 in lanes and 3 left over.
                let npr = if t.block_size() == 32 { 352 } else { 1024 };
                let n = encoded_len(t, 4 * npr).unwrap();
                let rb = n / 4;
                let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
                for r in 0..4 {
                    let row = &x[r * npr..(r + 1) * npr];
                    a_fn(row, &qw[..npr], &mut a[r * rb..(r + 1) * rb]);
                    b_fn(row, &qw[..npr], &mut b[r * rb..(r + 1) * rb]);
                }
                assert!(a == b, "{t} seed {seed}");
            }
        }
    }

    #[test]
    fn automatic_thread_counts() {
        let all = rayon::current_num_threads();
        let costly = AUTO_THREADS_MIN_WEIGHTS_COSTLY;
        assert_eq!(auto_threads(QuantType::Q4_K, false, costly, 0), all);
        assert_eq!(auto_threads(QuantType::Q4_K, false, costly - 256, 0), 1);
        assert_eq!(auto_threads(QuantType::Q4_0, true, costly, 0), all);
        assert_eq!(auto_threads(QuantType::Q4_0, false, costly, 0), 1);
        assert_eq!(auto_threads(QuantType::Q8_0, true, costly, 0), 1);
        assert_eq!(auto_threads(QuantType::Q4_0, false, crate::parallel::AUTO_THREADS_MIN_WEIGHTS, 0), all);
        assert_eq!(auto_threads(QuantType::Q6_K, true, 256, 3), 3);
    }

    #[test]
    fn same_bytes_for_every_thread_count() {
        let x: Vec<f32> = (0..256 * 37).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 77.0).collect();
        let qw: Vec<f32> = (0..256).map(|i| (i % 13) as f32 + 0.5).collect();
        for &t in &QuantType::ALL {
            let one = {
                let mut o = vec![0u8; encoded_len(t, x.len()).unwrap()];
                let opts = QuantizeOptions { n_per_row: Some(256), imatrix: Some(&qw), threads: 1 };
                quantize_rows_into_with(&x, t, &mut o, opts).unwrap();
                o
            };
            for threads in [2, 3, 8] {
                let mut o = vec![0u8; one.len()];
                let opts = QuantizeOptions { n_per_row: Some(256), imatrix: Some(&qw), threads };
                quantize_rows_into_with(&x, t, &mut o, opts).unwrap();
                assert_eq!(o, one, "{t} threads {threads}");
            }
        }
    }
}
