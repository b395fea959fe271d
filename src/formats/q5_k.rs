//! Q5_K: 256 weights in 176 bytes. `d: f16 @0, dmin: f16 @2, scales[12] @4, qh[32] @16,
//! qs[128] @48`. As Q4_K plus a fifth bit: in chunk c (0..4), weight l of the low half takes bit
//! 2c of `qh[l]`, of the high half bit 2c+1. `y = (d * sc) * q - (dmin * m)`.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

use super::q4_k::{imatrix_scales_k, ref_scales_k, requantize_k};
use super::{f16_at, scale_min_k4};

pub const BLOCK_WEIGHTS: usize = 256;
pub const BLOCK_BYTES: usize = 176;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * c..32 * c + 32];
        let y = &mut y[64 * c..64 * c + 64];
        for l in 0..32 {
            let h1 = ((qh[l] >> (2 * c)) & 1) << 4;
            let h2 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
            y[l] = d1 * ((q[l] & 0xF) | h1) as f32 - m1;
            y[l + 32] = d2 * ((q[l] >> 4) | h2) as f32 - m2;
        }
    }
}

/// Decodes whole blocks (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(BLOCK_WEIGHTS)) {
        decode_block(b, y);
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q5_K_ref` and `quantize_q5_K` with an importance matrix).
// Block: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.

#[allow(non_snake_case)]
#[inline(always)]
fn pack(y: &mut [u8], L: &[u8; 256]) {
    y[16..48].fill(0);
    let (mut m1, mut m2) = (1u8, 2u8);
    for (c, n) in (0..256).step_by(64).enumerate() {
        for j in 0..32 {
            let mut l1 = L[n + j];
            if l1 > 15 {
                l1 -= 16;
                y[16 + j] |= m1;
            }
            let mut l2 = L[n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                y[16 + j] |= m2;
            }
            y[48 + 32 * c + j] = l1 | (l2 << 4);
        }
        m1 = m1.wrapping_shl(2);
        m2 = m2.wrapping_shl(2);
    }
}

/// Encodes one block exactly as ggml's `quantize_row_q5_K_ref`.
#[allow(non_snake_case)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0u8; 256];
    let (d, dmin) = ref_scales_k(x, y, &mut L, 31, -0.5, 0.1, 15);
    requantize_k(x, &y[4..16], d, dmin, 31, &mut L);
    pack(y, &L);
}

/// Encodes whole blocks (`quantize_row_q5_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one block with its 256 importance weights, exactly as ggml's `quantize_row_q5_K_impl`.
#[allow(non_snake_case)]
pub fn quantize_block_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0u8; 256];
    let (d, dmin) = imatrix_scales_k(x, qw, y, &mut L, 31, true);
    requantize_k(x, &y[4..16], d, dmin, 31, &mut L);
    pack(y, &L);
}

/// Encodes one row with importance weights `qw` (`quantize_q5_K` with quant_weights).
pub fn quantize_row_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
    for ((x, qw), y) in
        x.chunks_exact(BLOCK_WEIGHTS).zip(qw.chunks_exact(BLOCK_WEIGHTS)).zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        quantize_block_imatrix(x, qw, y);
    }
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    use super::super::q4_k::lanes::{run, run_imatrix};
    use super::BLOCK_BYTES;
    use std::arch::x86_64::*;

    /// [`super::pack`] 32 bytes at a time: chunk `2c` (weights `64c..64c + 32`) and chunk `2c + 1`
    /// give the low and high nibbles of qs[32c..] and bits `2c`, `2c + 1` of qh (quant above 15).
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn pack(y: &mut [u8], L: &[u8; 256]) {
        let (f, fifteen) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(15));
        let mut qh = _mm256_setzero_si256();
        for c in 0..4 {
            let a = _mm256_loadu_si256(L[64 * c..].as_ptr() as *const __m256i);
            let b = _mm256_loadu_si256(L[64 * c + 32..].as_ptr() as *const __m256i);
            let (m1, m2) = (_mm256_set1_epi8(1 << (2 * c)), _mm256_set1_epi8((2u8 << (2 * c)) as i8));
            qh = _mm256_or_si256(qh, _mm256_and_si256(_mm256_cmpgt_epi8(a, fifteen), m1));
            qh = _mm256_or_si256(qh, _mm256_and_si256(_mm256_cmpgt_epi8(b, fifteen), m2));
            let qs = _mm256_or_si256(_mm256_and_si256(a, f), _mm256_slli_epi16::<4>(_mm256_and_si256(b, f)));
            _mm256_storeu_si256(y[48 + 32 * c..].as_mut_ptr() as *mut __m256i, qs);
        }
        _mm256_storeu_si256(y[16..48].as_mut_ptr() as *mut __m256i, qh);
    }

    /// `fn` pointer to [`pack`] (the CPU has AVX2 wherever this module runs).
    fn pack_fn(y: &mut [u8], l: &[u8; 256]) {
        // SAFETY: only called from the AVX2 encoders below, after the run-time check.
        unsafe { pack(y, l) }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize(src: &[f32], dst: &mut [u8]) {
        run(src, dst, BLOCK_BYTES, 31, -0.5, 0.1, 15, pack_fn);
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
        run_imatrix(x, qw, dst, BLOCK_BYTES, 31, true, pack_fn);
    }
}

/// [`quantize_row_imatrix`] with the 8 sub-blocks of a block in AVX2 lanes when the CPU has AVX2;
/// the same bytes.
pub fn quantize_row_imatrix_fast(x: &[f32], qw: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if super::kquant_lanes::use_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        unsafe { lanes::quantize_imatrix(x, qw, dst) };
        return;
    }
    quantize_row_imatrix(x, qw, dst)
}

/// Whole blocks, like [`quantize`] and with the same bytes, with independent sub-blocks side by
/// side in AVX2 lanes when the CPU has AVX2 (the scalar reference otherwise).
pub fn quantize_fast(src: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if super::kquant_lanes::use_avx2() {
        // SAFETY: the CPU supports AVX2 (checked at run time).
        unsafe { lanes::quantize(src, dst) };
        return;
    }
    quantize(src, dst)
}

#[cfg(test)]
mod tests {
    use super::super::pack_scale_min_k4;
    use super::super::testutil::{bytes, h};
    use super::*;

    #[test]
    fn hand_built_block() {
        let sc = [5u8, 60, 18, 41, 3, 34, 61, 6];
        let mn = [62u8, 8, 10, 22, 45, 2, 31, 59];
        let (d, dmin) = (0.015625f32, -0.125f32);
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(d));
        b[2..4].copy_from_slice(&h(dmin));
        b[4..16].copy_from_slice(&pack_scale_min_k4(&sc, &mn));
        b[16..].copy_from_slice(&bytes(160, 5));
        let mut y = vec![0f32; 256];
        dequantize(&b, &mut y);
        for (e, &got) in y.iter().enumerate() {
            let (c, half, l) = (e / 64, (e % 64) / 32, e % 32);
            let byte = b[48 + 32 * c + l];
            let nib = if half == 0 { byte & 0xF } else { byte >> 4 };
            let hi = (b[16 + l] >> (2 * c + half)) & 1;
            let q = nib + 16 * hi;
            let s = 2 * c + half;
            let want = (d * sc[s] as f32) * q as f32 - dmin * mn[s] as f32;
            assert_eq!(got, want, "weight {e}");
        }
    }
}
