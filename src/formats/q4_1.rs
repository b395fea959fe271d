//! Q4_1: 32 weights in 20 bytes. `d: f16 @0, m: f16 @2, qs[16] @4`; nibbles as Q4_0;
//! `y = q * d + m` (two roundings, no fused multiply-add).
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

use super::f16_at;
use super::kquant_search::{cvtt, make_qkx3_quants, put_f16, sum_sq};

pub const BLOCK_WEIGHTS: usize = 32;
pub const BLOCK_BYTES: usize = 20;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0xF) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// Decodes whole blocks (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(BLOCK_WEIGHTS)) {
        decode_block(b, y);
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q4_1_ref` and `quantize_q4_1` with an importance matrix).

/// Encodes one block exactly as ggml's `quantize_row_q4_1_ref`.
#[inline(always)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let xi0 = (cvtt(x0 + 0.5f32) as i8 as i32).min(15) as u8;
        let xi1 = (cvtt(x1 + 0.5f32) as i8 as i32).min(15) as u8;
        y[4 + j] = xi0 | (xi1 << 4);
    }
}

/// Encodes whole blocks (`quantize_row_q4_1_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one row with importance weights `qw`, exactly as ggml's `quantize_row_q4_1_impl`.
#[allow(non_snake_case)]
pub fn quantize_row_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
    imatrix_blocks(x, qw, sum_sq(x) / x.len() as f32, dst)
}

/// The blocks of [`quantize_row_imatrix`], given the row's `sigma2` (mean of `x^2` over the row).
#[allow(non_snake_case)]
pub(crate) fn imatrix_blocks(x: &[f32], qw: &[f32], sigma2: f32, dst: &mut [u8]) {
    let mut weight = [0f32; BLOCK_WEIGHTS];
    let mut L = [0u8; BLOCK_WEIGHTS];
    let mut Laux = [0u8; BLOCK_WEIGHTS];
    for ((xb, qw), y) in
        x.chunks_exact(BLOCK_WEIGHTS).zip(qw.chunks_exact(BLOCK_WEIGHTS)).zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        for j in 0..BLOCK_WEIGHTS {
            weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
        }
        let mut min = 0f32;
        let d =
            make_qkx3_quants(BLOCK_WEIGHTS, 15, xb, Some(&weight), &mut L, &mut min, &mut Laux, -0.9, 0.05, 36, false);
        put_f16(y, 0, d);
        put_f16(y, 2, -min);
        for j in 0..16 {
            y[4 + j] = L[j] | (L[j + 16] << 4);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    use super::super::kquant_lanes::avx2::*;
    use super::super::kquant_search::{put_f16, sum_sq};
    use super::{imatrix_blocks, BLOCK_BYTES, BLOCK_WEIGHTS};
    use std::arch::x86_64::*;

    /// `quantize_row_q4_1_ref` of one block.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block(x: &[f32], y: &mut [u8]) {
        let v = load4(x);
        let (min, max) = min_max(x, &v);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(y, 0, d);
        put_f16(y, 2, min);
        let (idv, minv, c) = (_mm256_set1_ps(id), _mm256_set1_ps(min), _mm256_set1_ps(0.5));
        let mut q = [_mm256_setzero_si256(); 4];
        for r in 0..4 {
            let t = to_i8_trunc(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v[r], minv), idv), c));
            q[r] = _mm256_min_epi32(t, _mm256_set1_epi32(15));
        }
        let ff = _mm256_set1_epi32(0xFF);
        let b0 = _mm256_or_si256(_mm256_and_si256(q[0], ff), _mm256_slli_epi32::<4>(q[2]));
        let b1 = _mm256_or_si256(_mm256_and_si256(q[1], ff), _mm256_slli_epi32::<4>(q[3]));
        _mm_storeu_si128(y[4..20].as_mut_ptr() as *mut __m128i, bytes16(b0, b1));
    }

    #[allow(non_snake_case)]
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
        let sigma2 = sum_sq(x) / x.len() as f32;
        let groups = x.len() / 256;
        for g in 0..groups {
            let (d, m, l) = legacy_imatrix8(&x[256 * g..256 * g + 256], &qw[256 * g..256 * g + 256], sigma2, 15, true);
            for k in 0..8 {
                let y = &mut dst[(8 * g + k) * BLOCK_BYTES..(8 * g + k + 1) * BLOCK_BYTES];
                put_f16(y, 0, d[k]);
                put_f16(y, 2, -m[k]);
                for j in 0..16 {
                    y[4 + j] = l[k][j] | (l[k][j + 16] << 4);
                }
            }
        }
        let done = groups * 256;
        imatrix_blocks(&x[done..], &qw[done..], sigma2, &mut dst[done / BLOCK_WEIGHTS * BLOCK_BYTES..]);
    }

    /// Returns whether the input may hold a NaN or an infinity.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn quantize(src: &[f32], dst: &mut [u8]) -> bool {
        pipelined_by_eights(src, dst, MinMaxHalves::<4>(BLOCK_BYTES, (15.0, Some(15))), |x, y| block(x, y))
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

    /// Blocks at every binary scale from the subnormal to the largest (`d` zero, subnormal with an
    /// infinite `1 / d`, subnormal with a finite one, normal, infinite): the reference's bytes.
    #[test]
    fn fast_encoder_equals_reference_at_every_scale() {
        let mut next = super::super::testutil::unit_uniform(0x2545_F491_4F6C_DD1D);
        let nb = 8 * 300;
        let x: Vec<f32> = (0..32 * nb)
            .map(|i| {
                let b = i / 32;
                // Scale 2^e with e from -149 to 127 (blocks of one group differ).
                let e = (b * 37 % 277) as i32 - 149;
                let v = (next() - 0.5) * 2.0;
                let v = if i % 32 == b % 32 {
                    1.0
                } else if i % 32 == (b + 7) % 32 {
                    -1.0
                } else {
                    v
                };
                (v as f64 * 2f64.powi(e)) as f32
            })
            .collect();
        let (mut a, mut b) = (vec![0u8; BLOCK_BYTES * nb], vec![0u8; BLOCK_BYTES * nb]);
        quantize(&x, &mut a);
        quantize_fast(&x, &mut b);
        for i in 0..nb {
            assert_eq!(
                a[i * BLOCK_BYTES..(i + 1) * BLOCK_BYTES],
                b[i * BLOCK_BYTES..(i + 1) * BLOCK_BYTES],
                "block {i}"
            );
        }
    }

    #[test]
    fn hand_built_block() {
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(0.25));
        b[2..4].copy_from_slice(&h(-1.5));
        for j in 0..16 {
            b[4 + j] = (j as u8) | (((15 - j) as u8) << 4);
        }
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.25 - 1.5);
            assert_eq!(y[j + 16], (15 - j) as f32 * 0.25 - 1.5);
        }
    }

    #[test]
    fn rounds_product_then_sum() {
        // d = 1 + 2^-10, m = 2^11: q*d = 15 + 15*2^-10 is exact, + 2048 rounds once.
        let d = 1.0 + 2f32.powi(-10);
        let m = 2048.0;
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(d));
        b[2..4].copy_from_slice(&h(m));
        b[4] = 15;
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        assert_eq!(y[0], 15.0 * d + m);
    }
}
