//! Q6_K: 256 weights in 210 bytes. `ql[128] @0, qh[64] @128, scales: i8[16] @192, d: f16 @208`.
//! Two halves of 128; half h uses `ql[64h..]`, `qh[32h..]`, `scales[8h..]`. For l in 0..32 the
//! four 6-bit quants (minus 32) land at l, l+32, l+64, l+96 with scale index l/16 + 0, 2, 4, 6.
//! `y = (d * sc) * q`.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

use super::f16_at;
use super::kquant_search::{make_qx_quants, nearest_int, put_f16, GROUP_MAX_EPS};

pub const BLOCK_WEIGHTS: usize = 256;
pub const BLOCK_BYTES: usize = 210;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | (qh[l] & 3) << 4) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) as i32 - 32;
            let q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
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
// Encoding (ggml's `quantize_row_q6_K_ref` and `quantize_q6_K` with an importance matrix).
// Block: ql[128] @0, qh[64] @128, scales:i8[16] @192, d @208.

#[allow(non_snake_case)]
#[inline(always)]
fn encode(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0i8; 256];
    let mut scales = [0f32; 16];
    let mut max_scale = 0f32;
    let mut max_abs_scale = 0f32;
    for ib in 0..16 {
        let w = qw.map(|q| &q[16 * ib..16 * ib + 16]);
        let scale = make_qx_quants(16, 32, &x[16 * ib..], &mut L[16 * ib..], 1, w);
        scales[ib] = scale;
        let abs_scale = scale.abs();
        if abs_scale > max_abs_scale {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        y[..BLOCK_BYTES].fill(0);
        put_f16(y, 208, 0.0);
        return;
    }
    let iscale = -128.0f32 / max_scale;
    let d_all = put_f16(y, 208, 1.0 / iscale);
    for ib in 0..16 {
        y[192 + ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }
    for j in 0..16 {
        let d = d_all * (y[192 + j] as i8) as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / d).min(31).max(-32);
            L[16 * j + ii] = (l + 32) as i8;
        }
    }
    pack(y, &L);
}

/// Packs the 6-bit quants `L` (0..63) into ql and qh, as ggml does.
#[allow(non_snake_case)]
#[inline(always)]
fn pack(y: &mut [u8], L: &[i8; 256]) {
    for (h, j) in (0..256).step_by(128).enumerate() {
        let (ql, qh) = (64 * h, 128 + 32 * h);
        for l in 0..32 {
            let q1 = L[j + l] as u8 & 0xF;
            let q2 = L[j + l + 32] as u8 & 0xF;
            let q3 = L[j + l + 64] as u8 & 0xF;
            let q4 = L[j + l + 96] as u8 & 0xF;
            y[ql + l] = q1 | (q3 << 4);
            y[ql + l + 32] = q2 | (q4 << 4);
            y[qh + l] = ((L[j + l] >> 4) as u8)
                | (((L[j + l + 32] >> 4) as u8) << 2)
                | (((L[j + l + 64] >> 4) as u8) << 4)
                | (((L[j + l + 96] >> 4) as u8) << 6);
        }
    }
}

/// Encodes one block exactly as ggml's `quantize_row_q6_K_ref`.
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    encode(x, None, y);
}

/// Encodes whole blocks (`quantize_row_q6_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one block with its 256 importance weights, exactly as ggml's `quantize_row_q6_K_impl`.
pub fn quantize_block_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
    encode(x, Some(qw), y);
}

/// Encodes one row with importance weights `qw` (`quantize_q6_K` with quant_weights).
pub fn quantize_row_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
    for ((x, qw), y) in
        x.chunks_exact(BLOCK_WEIGHTS).zip(qw.chunks_exact(BLOCK_WEIGHTS)).zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        quantize_block_imatrix(x, qw, y);
    }
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    use super::super::kquant_lanes::avx2::*;
    use super::super::kquant_search::{nearest_int, put_f16, GROUP_MAX_EPS};
    use super::{BLOCK_BYTES, BLOCK_WEIGHTS};
    use std::arch::x86_64::*;

    /// The 16 sub-blocks of a block as two groups of 8 lanes, and their weights (`qw`, or `x * x`
    /// without an importance matrix).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn halves(x: &[f32], qw: Option<&[f32]>) -> ([[__m256; 16]; 2], [[__m256; 16]; 2]) {
        let h = halves16(x);
        let w = match qw {
            Some(q) => halves16(q),
            None => {
                let mut w = [[_mm256_setzero_ps(); 16]; 2];
                for g in 0..2 {
                    for i in 0..16 {
                        w[g][i] = _mm256_mul_ps(h[g][i], h[g][i]);
                    }
                }
                w
            }
        };
        (h, w)
    }

    /// The rest of `quantize_row_q6_K_ref` / `_impl` after the sub-block search (scales `a`, `b`
    /// of the two lane groups, quants `lq`): 8-bit scales, d, the second pass in weight order and
    /// the packing of ql and qh, 32 bytes at a time.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish(x: &[f32], y: &mut [u8], a: __m256, b: __m256, lq: &[[__m256; 16]; 2]) {
        let mut scales = [0f32; 16];
        scales[..8].copy_from_slice(&to_arr(a));
        scales[8..].copy_from_slice(&to_arr(b));
        let mut max_scale = 0f32;
        let mut max_abs_scale = 0f32;
        for ib in 0..16 {
            let abs_scale = scales[ib].abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scales[ib];
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            y[..BLOCK_BYTES].fill(0);
            put_f16(y, 208, 0.0);
            return;
        }
        let iscale = -128.0f32 / max_scale;
        let d_all = put_f16(y, 208, 1.0 / iscale);
        let mut dv = [0f32; 16];
        for ib in 0..16 {
            let sc = nearest_int(iscale * scales[ib]).min(127) as i8;
            y[192 + ib] = sc as u8;
            dv[ib] = d_all * sc as f32;
        }
        let L = requant_bytes::<16>(x, &dv, None, -32, 31, 32, |j, i| to_arr(lq[j / 8][i])[j % 8] as u8);
        // Chunk c = 4h + j holds weights 128h + 32j + l: its low nibbles go to ql[64h + 32(j % 2) + l]
        // (bits 4(j / 2)..), its high two bits to bits 2j.. of qh[32h + l].
        let mut c = [_mm256_setzero_si256(); 8];
        for k in 0..8 {
            c[k] = _mm256_loadu_si256(L[32 * k..].as_ptr() as *const __m256i);
        }
        let (f, three) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3));
        for h in 0..2 {
            let lo = |j: usize| _mm256_and_si256(c[4 * h + j], f);
            let hi = |j: usize| _mm256_and_si256(_mm256_srli_epi16::<4>(c[4 * h + j]), three);
            let ql0 = _mm256_or_si256(lo(0), _mm256_slli_epi16::<4>(lo(2)));
            let ql1 = _mm256_or_si256(lo(1), _mm256_slli_epi16::<4>(lo(3)));
            let qh = _mm256_or_si256(
                _mm256_or_si256(hi(0), _mm256_slli_epi16::<2>(hi(1))),
                _mm256_or_si256(_mm256_slli_epi16::<4>(hi(2)), _mm256_slli_epi16::<6>(hi(3))),
            );
            _mm256_storeu_si256(y[64 * h..].as_mut_ptr() as *mut __m256i, ql0);
            _mm256_storeu_si256(y[64 * h + 32..].as_mut_ptr() as *mut __m256i, ql1);
            _mm256_storeu_si256(y[128 + 32 * h..].as_mut_ptr() as *mut __m256i, qh);
        }
    }

    /// `quantize_row_q6_K_ref` (or `_impl` with `qw`) of one block, its 16 sub-blocks in two groups
    /// of 8 AVX2 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
        let (h, w) = halves(x, qw);
        let mut lq2 = [[_mm256_setzero_ps(); 2]; 16];
        let sv = make_qx_g::<16, 2>(&group(&h), &group(&w), &mut lq2, 32);
        finish(x, y, sv[0], sv[1], &ungroup2(&lq2, 0));
    }

    /// Two blocks at once, their 32 sub-blocks in four groups of 8 AVX2 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn blocks2(x: &[f32], qw: Option<&[f32]>, y: &mut [u8]) {
        let (x0, x1) = (&x[..256], &x[256..512]);
        let (h0, w0) = halves(x0, qw.map(|q| &q[..256]));
        let (h1, w1) = halves(x1, qw.map(|q| &q[256..512]));
        let mut lq4 = [[_mm256_setzero_ps(); 4]; 16];
        let xg = group(&[h0[0], h0[1], h1[0], h1[1]]);
        let sv = make_qx_g::<16, 4>(&xg, &group(&[w0[0], w0[1], w1[0], w1[1]]), &mut lq4, 32);
        let (y0, y1) = y[..2 * BLOCK_BYTES].split_at_mut(BLOCK_BYTES);
        finish(x0, y0, sv[0], sv[1], &ungroup2(&lq4, 0));
        finish(x1, y1, sv[2], sv[3], &ungroup2(&lq4, 2));
    }

    /// Blocks of `x` (with their importance weights `qw`, when given).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn run(x: &[f32], qw: Option<&[f32]>, dst: &mut [u8]) {
        let n2 = x.len() / (2 * BLOCK_WEIGHTS);
        for b in 0..n2 {
            let r = 2 * BLOCK_WEIGHTS * b..2 * BLOCK_WEIGHTS * (b + 1);
            let q = qw.map(|q| &q[r.clone()]);
            blocks2(&x[r], q, &mut dst[2 * BLOCK_BYTES * b..2 * BLOCK_BYTES * (b + 1)]);
        }
        for b in 2 * n2..x.len() / BLOCK_WEIGHTS {
            let r = BLOCK_WEIGHTS * b..BLOCK_WEIGHTS * (b + 1);
            let q = qw.map(|q| &q[r.clone()]);
            block(&x[r], q, &mut dst[BLOCK_BYTES * b..BLOCK_BYTES * (b + 1)]);
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize(src: &[f32], dst: &mut [u8]) {
        run(src, None, dst)
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
        run(x, Some(qw), dst)
    }
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
    use super::super::testutil::{bytes, h};
    use super::*;

    #[test]
    fn hand_built_block() {
        let d = 0.001953125f32;
        let mut b = bytes(BLOCK_BYTES, 6);
        let sc: [i8; 16] = [-128, 127, 1, -1, 64, -64, 3, 99, -7, 13, 120, -100, 55, -33, 2, 77];
        for (i, s) in sc.iter().enumerate() {
            b[192 + i] = *s as u8;
        }
        b[208..210].copy_from_slice(&h(d));
        let mut y = vec![0f32; 256];
        dequantize(&b, &mut y);
        for (e, &got) in y.iter().enumerate() {
            // Independent formulation: position within the half -> (quarter, l).
            let (half, r) = (e / 128, e % 128);
            let (quarter, l) = (r / 32, r % 32);
            let low = b[64 * half + l + 32 * (quarter & 1)];
            let nib = if quarter < 2 { low & 0xF } else { low >> 4 };
            let hi = (b[128 + 32 * half + l] >> (2 * quarter)) & 3;
            let q = (nib | hi << 4) as i32 - 32;
            let s = sc[8 * half + l / 16 + 2 * quarter] as f32;
            assert_eq!(got, (d * s) * q as f32, "weight {e}");
        }
    }
}
