//! Q4_0: 32 weights in 18 bytes. `d: f16 @0, qs[16] @2`; weight j (0..16) is the low nibble of
//! `qs[j]`, weight j + 16 its high nibble; `y = (q - 8) * d`.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

use super::f16_at;
use super::kquant_search::{cvtt, make_qx_quants, put_f16, sum_sq};

pub const BLOCK_WEIGHTS: usize = 32;
pub const BLOCK_BYTES: usize = 18;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Decodes whole blocks (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(BLOCK_WEIGHTS)) {
        decode_block(b, y);
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q4_0_ref` and `quantize_q4_0` with an importance matrix).

/// Encodes one block exactly as ggml's `quantize_row_q4_0_ref`.
#[inline(always)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut amax = 0f32;
    let mut max = 0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    for j in 0..16 {
        let x0 = x[j] * id;
        let x1 = x[16 + j] * id;
        let xi0 = (cvtt(x0 + 8.5f32) as i8 as i32).min(15) as u8;
        let xi1 = (cvtt(x1 + 8.5f32) as i8 as i32).min(15) as u8;
        y[2 + j] = xi0 | (xi1 << 4);
    }
}

/// Encodes whole blocks (`quantize_row_q4_0_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one row with importance weights `qw` (one per weight of the row), exactly as ggml's
/// `quantize_row_q4_0_impl`.
#[allow(non_snake_case)]
pub fn quantize_row_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
    imatrix_blocks(x, qw, sum_sq(x) / x.len() as f32, dst)
}

/// The blocks of [`quantize_row_imatrix`], given the row's `sigma2` (mean of `x^2` over the row).
#[allow(non_snake_case)]
pub(crate) fn imatrix_blocks(x: &[f32], qw: &[f32], sigma2: f32, dst: &mut [u8]) {
    let mut weight = [0f32; BLOCK_WEIGHTS];
    let mut L = [0i8; BLOCK_WEIGHTS];
    for ((xb, qw), y) in
        x.chunks_exact(BLOCK_WEIGHTS).zip(qw.chunks_exact(BLOCK_WEIGHTS)).zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        for j in 0..BLOCK_WEIGHTS {
            weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
        }
        let d = make_qx_quants(BLOCK_WEIGHTS, 8, xb, &mut L, 1, Some(&weight));
        put_f16(y, 0, d);
        for j in 0..16 {
            y[2 + j] = (L[j] as u8) | ((L[j + 16] as u8) << 4);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    use super::super::kquant_lanes::avx2::*;
    use super::super::kquant_search::{put_f16, sum_sq};
    use super::{imatrix_blocks, BLOCK_BYTES, BLOCK_WEIGHTS};
    use std::arch::x86_64::*;

    /// `quantize_row_q4_0_ref` of one block.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block(x: &[f32], y: &mut [u8]) {
        let v = load4(x);
        let max = signed_absmax(x, &v);
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(y, 0, d);
        let (idv, c) = (_mm256_set1_ps(id), _mm256_set1_ps(8.5));
        let mut q = [_mm256_setzero_si256(); 4];
        for r in 0..4 {
            let t = to_i8_trunc(_mm256_add_ps(_mm256_mul_ps(v[r], idv), c));
            q[r] = _mm256_min_epi32(t, _mm256_set1_epi32(15));
        }
        let ff = _mm256_set1_epi32(0xFF);
        let b0 = _mm256_or_si256(_mm256_and_si256(q[0], ff), _mm256_slli_epi32::<4>(q[2]));
        let b1 = _mm256_or_si256(_mm256_and_si256(q[1], ff), _mm256_slli_epi32::<4>(q[3]));
        _mm_storeu_si128(y[2..18].as_mut_ptr() as *mut __m128i, bytes16(b0, b1));
    }

    #[allow(non_snake_case)]
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
        let sigma2 = sum_sq(x) / x.len() as f32;
        let groups = x.len() / 256;
        for g in 0..groups {
            let (d, _, l) = legacy_imatrix8(&x[256 * g..256 * g + 256], &qw[256 * g..256 * g + 256], sigma2, 8, false);
            for k in 0..8 {
                let y = &mut dst[(8 * g + k) * BLOCK_BYTES..(8 * g + k + 1) * BLOCK_BYTES];
                put_f16(y, 0, d[k]);
                for j in 0..16 {
                    y[2 + j] = l[k][j] | (l[k][j + 16] << 4);
                }
            }
        }
        let done = groups * 256;
        imatrix_blocks(&x[done..], &qw[done..], sigma2, &mut dst[done / BLOCK_WEIGHTS * BLOCK_BYTES..]);
    }

    /// Returns whether the input may hold a NaN or an infinity.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn quantize(src: &[f32], dst: &mut [u8]) -> bool {
        pipelined_by_eights(src, dst, AbsMaxHalves::<4>(BLOCK_BYTES, (-8.0, 8.5, 15)), |x, y| block(x, y))
    }
}

/// Whole blocks, like [`quantize`] and with the same bytes, with AVX2 when the CPU has it: the
/// 32 independent per-weight computations of a block side by side, reductions (max / min) exact.
pub fn quantize_fast(src: &[f32], dst: &mut [u8]) {
    quantize_screened(src, dst);
}

/// [`quantize_fast`], also screening the input: returns `false` if every value is finite, `true`
/// if some may be a NaN or an infinity (the caller then looks for it).
pub fn quantize_screened(src: &[f32], dst: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if super::kquant_lanes::use_avx2() {
        // SAFETY: the CPU supports AVX2 and F16C (checked at run time).
        return unsafe { lanes::quantize(src, dst) };
    }
    quantize(src, dst);
    true
}

/// [`quantize_row_imatrix`] with 8 blocks side by side in AVX2 lanes when the CPU has AVX2; the
/// same bytes.
pub fn quantize_row_imatrix_fast(x: &[f32], qw: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if super::kquant_lanes::use_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        unsafe { lanes::quantize_imatrix(x, qw, dst) };
        return;
    }
    quantize_row_imatrix(x, qw, dst)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::h;
    use super::*;

    #[test]
    fn hand_built_block() {
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(-0.5));
        for j in 0..16 {
            b[2 + j] = (j as u8) | (((15 - j) as u8) << 4);
        }
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * -0.5);
            assert_eq!(y[j + 16], (7.0 - j as f32) * -0.5);
        }
        // q == 8 times a negative scale is -0.0, as in C.
        assert_eq!(y[8].to_bits(), (-0.0f32).to_bits());
    }
}
