//! Q2_K: 256 weights in 84 bytes. `scales[16] @0` (low nibble scale, high nibble min),
//! `qs[64] @16, d: f16 @80, dmin: f16 @82`. Weight e: h = e/128, j = (e%128)/32, l = e%32;
//! `q = (qs[32h + l] >> 2j) & 3`, sub-block e/16. `y = (d * sc) * q - (dmin * m)`.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

use super::f16_at;
use super::kquant_search::{make_qkx2_quants, make_qkx3_quants, make_qp_quants, nearest_int, put_f16, sum_sq};

pub const BLOCK_WEIGHTS: usize = 256;
pub const BLOCK_BYTES: usize = 84;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    for e in 0..256 {
        let (h, j, l) = (e / 128, (e % 128) / 32, e % 32);
        let q = (qs[32 * h + l] >> (2 * j)) & 3;
        let sc = scales[e / 16];
        let dl = d * (sc & 0xF) as f32;
        let ml = dmin * (sc >> 4) as f32;
        y[e] = dl * q as f32 - ml;
    }
}

/// Decodes whole blocks (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(BLOCK_WEIGHTS)) {
        decode_block(b, y);
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q2_K_ref` and `quantize_q2_K` with an importance matrix).
// Block: scales[16] @0 (low nibble scale, high nibble min), qs[64] @16, d @80, dmin @82.

/// Requantizes with the stored scales and packs the 2-bit quants (the common tail of both
/// quantizers). `L` holds the search's quants for sub-blocks whose scale is zero.
#[allow(non_snake_case)]
#[inline(always)]
fn requantize_and_pack(x: &[f32], y: &mut [u8], L: &mut [u8; 256], dm: f32, mm: f32) {
    for j in 0..16 {
        let d = dm * (y[j] & 0xF) as f32;
        if d == 0.0 {
            continue;
        }
        let m = mm * (y[j] >> 4) as f32;
        for ii in 0..16 {
            let l = nearest_int((x[16 * j + ii] + m) / d).min(3).max(0);
            L[16 * j + ii] = l as u8;
        }
    }
    for j in (0..256).step_by(128) {
        for l in 0..32 {
            y[16 + j / 4 + l] = L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6);
        }
    }
}

/// Encodes one block exactly as ggml's `quantize_row_q2_K_ref`.
#[allow(non_snake_case)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0u8; 256];
    let mut Laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let mut mins = [0f32; 16];
    let mut scales = [0f32; 16];
    let q4scale = 15f32;
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    for j in 0..16 {
        for l in 0..16 {
            weights[l] = x[16 * j + l].abs();
        }
        scales[j] = make_qkx2_quants(
            16,
            3,
            &x[16 * j..],
            &weights,
            &mut L[16 * j..],
            &mut mins[j],
            &mut Laux,
            -0.5,
            0.1,
            15,
            true,
        );
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let dm;
    if max_scale > 0.0 {
        let iscale = q4scale / max_scale;
        for j in 0..16 {
            y[j] = nearest_int(iscale * scales[j]) as u8;
        }
        dm = put_f16(y, 80, max_scale / q4scale);
    } else {
        y[..16].fill(0);
        dm = put_f16(y, 80, 0.0);
    }
    let mm;
    if max_min > 0.0 {
        let iscale = q4scale / max_min;
        for j in 0..16 {
            let l = nearest_int(iscale * mins[j]);
            y[j] |= (l << 4) as u8;
        }
        mm = put_f16(y, 82, max_min / q4scale);
    } else {
        mm = put_f16(y, 82, 0.0);
    }
    requantize_and_pack(x, y, &mut L, dm, mm);
}

/// Encodes whole blocks (`quantize_row_q2_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one block with its 256 importance weights, exactly as ggml's `quantize_row_q2_K_impl`.
#[allow(non_snake_case)]
pub fn quantize_block_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0u8; 256];
    let mut Laux = [0u8; 16];
    let mut mins = [0f32; 16];
    let mut scales = [0f32; 16];
    let mut sw = [0f32; 16];
    let mut weight = [0f32; 16];
    let mut Ls = [0u8; 16];
    let mut Lm = [0u8; 16];
    let sigma2 = sum_sq(x) / 256.0;
    for j in 0..16 {
        let q = &qw[16 * j..16 * j + 16];
        for l in 0..16 {
            let xv = x[16 * j + l];
            weight[l] = q[l] * (sigma2 + xv * xv).sqrt();
        }
        for l in 0..16 {
            sw[j] += weight[l];
        }
        scales[j] = make_qkx3_quants(
            16,
            3,
            &x[16 * j..],
            Some(&weight),
            &mut L[16 * j..],
            &mut mins[j],
            &mut Laux,
            -0.9,
            0.05,
            36,
            false,
        );
    }
    let dm = make_qp_quants(16, 15, &scales, &mut Ls, &sw);
    let mm = make_qp_quants(16, 15, &mins, &mut Lm, &sw);
    let dm = put_f16(y, 80, dm);
    let mm = put_f16(y, 82, mm);
    for j in 0..16 {
        y[j] = Ls[j] | (Lm[j] << 4);
    }
    requantize_and_pack(x, y, &mut L, dm, mm);
}

/// Encodes one row with importance weights `qw` (`quantize_q2_K` with quant_weights).
pub fn quantize_row_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
    for ((x, qw), y) in
        x.chunks_exact(BLOCK_WEIGHTS).zip(qw.chunks_exact(BLOCK_WEIGHTS)).zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        quantize_block_imatrix(x, qw, y);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod lanes {
    use super::super::kquant_lanes::avx2::*;
    use super::super::kquant_search::{make_qp_quants, nearest_int, put_f16, sum_sq};
    use super::{BLOCK_BYTES, BLOCK_WEIGHTS};
    use std::arch::x86_64::*;

    /// `quantize_row_q2_K_ref` of one block, its 16 sub-blocks in two groups of 8 AVX2 lanes.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block(x: &[f32], y: &mut [u8]) {
        let h = halves16(x);
        let w = [abs16(&h[0]), abs16(&h[1])];
        let mut lq2 = [[_mm256_setzero_ps(); 2]; 16];
        let (sv, mv) = make_qkx_g::<16, 2, false>(&group(&h), &group(&w), &mut lq2, 3, -0.5, 0.1, 15, true);
        finish(x, y, &[sv[0], sv[1]], &[mv[0], mv[1]], &ungroup2(&lq2, 0));
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn abs16(h: &[__m256; 16]) -> [__m256; 16] {
        let mut w = [_mm256_setzero_ps(); 16];
        for i in 0..16 {
            w[i] = abs(h[i]);
        }
        w
    }

    /// The rest of `quantize_row_q2_K_ref` after the sub-block search.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish(x: &[f32], y: &mut [u8], sv: &[__m256; 2], mv: &[__m256; 2], lq: &[[__m256; 16]; 2]) {
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        for h in 0..2 {
            scales[8 * h..8 * h + 8].copy_from_slice(&to_arr(sv[h]));
            mins[8 * h..8 * h + 8].copy_from_slice(&to_arr(mv[h]));
        }
        let q4scale = 15f32;
        let mut max_scale = 0f32;
        let mut max_min = 0f32;
        for j in 0..16 {
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        let dm;
        if max_scale > 0.0 {
            let iscale = q4scale / max_scale;
            for j in 0..16 {
                y[j] = nearest_int(iscale * scales[j]) as u8;
            }
            dm = put_f16(y, 80, max_scale / q4scale);
        } else {
            y[..16].fill(0);
            dm = put_f16(y, 80, 0.0);
        }
        let mm;
        if max_min > 0.0 {
            let iscale = q4scale / max_min;
            for j in 0..16 {
                let l = nearest_int(iscale * mins[j]);
                y[j] |= (l << 4) as u8;
            }
            mm = put_f16(y, 82, max_min / q4scale);
        } else {
            mm = put_f16(y, 82, 0.0);
        }
        tail(x, lq, y, dm, mm);
    }

    /// Weights `qw * sqrt(sigma2 + x^2)` of the 16 sub-blocks in two lane groups, and their sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn imatrix_weights(
        halves: &[[__m256; 16]; 2],
        qw: &[f32],
        sigma2: f32,
    ) -> ([[__m256; 16]; 2], [f32; 16]) {
        let qt = transpose_in8::<16, 16>(qw);
        let s2 = _mm256_set1_ps(sigma2);
        let mut w = [[_mm256_setzero_ps(); 16]; 2];
        let mut sw = [0f32; 16];
        for h in 0..2 {
            let q = load_rows(&qt, 8 * h);
            let mut swv = _mm256_setzero_ps();
            for i in 0..16 {
                let xv = halves[h][i];
                w[h][i] = _mm256_mul_ps(q[i], _mm256_sqrt_ps(_mm256_add_ps(s2, _mm256_mul_ps(xv, xv))));
                swv = _mm256_add_ps(swv, w[h][i]);
            }
            sw[8 * h..8 * h + 8].copy_from_slice(&to_arr(swv));
        }
        (w, sw)
    }

    /// `quantize_row_q2_K_impl` of one block, its 16 sub-blocks in two groups of 8 AVX2 lanes.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
        let h = halves16(x);
        let (w, sw) = imatrix_weights(&h, qw, sum_sq(&x[..256]) / 256.0);
        let mut lq2 = [[_mm256_setzero_ps(); 2]; 16];
        let (sv, mv) = make_qkx_g::<16, 2, true>(&group(&h), &group(&w), &mut lq2, 3, -0.9, 0.05, 36, false);
        finish_imatrix(x, y, &[sv[0], sv[1]], &[mv[0], mv[1]], &sw, &ungroup2(&lq2, 0));
    }

    /// The rest of `quantize_row_q2_K_impl` after the sub-block search.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish_imatrix(
        x: &[f32],
        y: &mut [u8],
        sv: &[__m256; 2],
        mv: &[__m256; 2],
        sw: &[f32; 16],
        lq: &[[__m256; 16]; 2],
    ) {
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        for h in 0..2 {
            scales[8 * h..8 * h + 8].copy_from_slice(&to_arr(sv[h]));
            mins[8 * h..8 * h + 8].copy_from_slice(&to_arr(mv[h]));
        }
        let mut Ls = [0u8; 16];
        let mut Lm = [0u8; 16];
        let dm = make_qp_quants(16, 15, &scales, &mut Ls, sw);
        let mm = make_qp_quants(16, 15, &mins, &mut Lm, sw);
        let dm = put_f16(y, 80, dm);
        let mm = put_f16(y, 82, mm);
        for j in 0..16 {
            y[j] = Ls[j] | (Lm[j] << 4);
        }
        tail(x, lq, y, dm, mm);
    }

    /// Second pass (quants from the stored scales) in weight order and packing 32 bytes at a
    /// time, shared by both encoders.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn tail(x: &[f32], lq: &[[__m256; 16]; 2], y: &mut [u8], dm: f32, mm: f32) {
        let mut dv = [0f32; 16];
        let mut mv = [0f32; 16];
        for j in 0..16 {
            dv[j] = dm * (y[j] & 0xF) as f32;
            mv[j] = mm * (y[j] >> 4) as f32;
        }
        let L = requant_bytes::<16>(x, &dv, Some(&mv), 0, 3, 0, |j, i| to_arr(lq[j / 8][i])[j % 8] as u8);
        for h in 0..2 {
            let c = |j: usize| _mm256_loadu_si256(L[128 * h + 32 * j..].as_ptr() as *const __m256i);
            let v = _mm256_or_si256(
                _mm256_or_si256(c(0), _mm256_slli_epi16::<2>(c(1))),
                _mm256_or_si256(_mm256_slli_epi16::<4>(c(2)), _mm256_slli_epi16::<6>(c(3))),
            );
            _mm256_storeu_si256(y[16 + 32 * h..].as_mut_ptr() as *mut __m256i, v);
        }
    }

    // (Two blocks per search, four lane groups, measured slower than one here: the qkx search
    // keeps four arrays of rows per group and spills them.)
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize(src: &[f32], dst: &mut [u8]) {
        for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
            block(x, y);
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
        for ((x, qw), y) in
            x.chunks_exact(BLOCK_WEIGHTS).zip(qw.chunks_exact(BLOCK_WEIGHTS)).zip(dst.chunks_exact_mut(BLOCK_BYTES))
        {
            block_imatrix(x, qw, y);
        }
    }
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

/// [`quantize_row_imatrix`] with 16 sub-blocks side by side in AVX2 lanes when the CPU has AVX2;
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

#[cfg(test)]
mod tests {
    use super::super::testutil::{bytes, h};
    use super::*;

    #[test]
    fn hand_built_block() {
        let (d, dmin) = (0.5f32, 0.25f32);
        let mut b = bytes(BLOCK_BYTES, 2);
        for i in 0..16 {
            b[i] = ((i as u8 * 3 + 1) & 0xF) | (((15 - i) as u8) << 4);
        }
        b[80..82].copy_from_slice(&h(d));
        b[82..84].copy_from_slice(&h(dmin));
        let mut y = vec![0f32; 256];
        dequantize(&b, &mut y);
        // Walk the layout the way ggml's loop does: 2 halves x 4 shifts x 2 groups of 16.
        let mut e = 0;
        for half in 0..2 {
            for shift in 0..4 {
                for group in 0..2 {
                    let s = 8 * half + 2 * shift + group;
                    let sc = ((s as u8 * 3 + 1) & 0xF) as f32;
                    let m = (15 - s) as f32;
                    for l in 0..16 {
                        let q = (b[16 + 32 * half + 16 * group + l] >> (2 * shift)) & 3;
                        assert_eq!(y[e], (d * sc) * q as f32 - dmin * m, "weight {e}");
                        e += 1;
                    }
                }
            }
        }
        assert_eq!(e, 256);
    }
}
