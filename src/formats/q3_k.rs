//! Q3_K: 256 weights in 110 bytes. `hmask[32] @0, qs[64] @32, scales[12] @96, d: f16 @108`.
//! Low two bits as Q2_K; the third bit of weight e (h = e/128, j = (e%128)/32, l = e%32) is bit
//! 4h + j of `hmask[l]`, and a clear bit subtracts 4. Sixteen packed 6-bit scales, minus 32.
//! `y = (d * s) * q`.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

use super::f16_at;
use super::kquant_search::{make_q3_quants, make_qx_quants, nearest_int, put_f16, sum_sq};

pub const BLOCK_WEIGHTS: usize = 256;
pub const BLOCK_BYTES: usize = 110;

/// The 16 signed scales from the 12 packed bytes.
#[inline(always)]
pub(crate) fn unpack_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 { s[i] & 0xF } else { s[i - 8] >> 4 };
        let hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = ((hi << 4) | low) as i8 - 32;
    }
    out
}

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let scales = unpack_scales(&b[96..108]);
    let d = f16_at(b, 108);
    for e in 0..256 {
        let (h, j, l) = (e / 128, (e % 128) / 32, e % 32);
        let q2 = ((qs[32 * h + l] >> (2 * j)) & 3) as i32;
        let q = if hmask[l] & (1 << (4 * h + j)) != 0 { q2 } else { q2 - 4 };
        let dl = d * scales[e / 16] as f32;
        y[e] = dl * q as f32;
    }
}

/// Decodes whole blocks (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(BLOCK_WEIGHTS)) {
        decode_block(b, y);
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q3_K_ref` and `quantize_q3_K` with an importance matrix).
// Block: hmask[32] @0, qs[64] @32, scales[12] @96, d @108.

/// Packs the 6-bit value `l` (0..63) of sub-block `j` into the 12 scale bytes `s` (which start at 0).
#[inline(always)]
fn pack_scale(s: &mut [u8], j: usize, l: i32) {
    if j < 8 {
        s[j] = (l & 0xF) as u8;
    } else {
        s[j - 8] |= ((l & 0xF) << 4) as u8;
    }
    let l = l >> 4;
    s[j % 4 + 8] |= (l << (2 * (j / 4))) as u8;
}

/// Requantizes with the stored scales, then builds hmask and qs (the common tail).
#[allow(non_snake_case)]
#[inline(always)]
fn requantize_and_pack(x: &[f32], y: &mut [u8], L: &mut [i8; 256], d_all: f32) {
    for j in 0..16 {
        let s = &y[96..108];
        let mut sc: i8 = if j < 8 { (s[j] & 0xF) as i8 } else { (s[j - 8] >> 4) as i8 };
        sc = ((sc as i32 | ((((s[8 + j % 4] >> (2 * (j / 4))) & 3) as i32) << 4)) - 32) as i8;
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / d).min(3).max(-4);
            L[16 * j + ii] = (l + 4) as i8;
        }
    }
    pack(y, L);
}

/// Builds hmask and qs from the 3-bit quants `L` (0..7), as ggml does.
#[allow(non_snake_case)]
#[inline(always)]
fn pack(y: &mut [u8], L: &mut [i8; 256]) {
    y[..32].fill(0);
    let mut m = 0usize;
    let mut hm = 1u8;
    for j in 0..256 {
        if L[j] > 3 {
            y[m] |= hm;
            L[j] -= 4;
        }
        m += 1;
        if m == 32 {
            m = 0;
            hm = hm.wrapping_shl(1);
        }
    }
    for j in (0..256).step_by(128) {
        for l in 0..32 {
            y[32 + j / 4 + l] = (L[j + l] as u8)
                | ((L[j + l + 32] as u8) << 2)
                | ((L[j + l + 64] as u8) << 4)
                | ((L[j + l + 96] as u8) << 6);
        }
    }
}

/// Encodes one block exactly as ggml's `quantize_row_q3_K_ref`.
#[allow(non_snake_case)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0i8; 256];
    let mut scales = [0f32; 16];
    let mut max_scale = 0f32;
    let mut amax = 0f32;
    for j in 0..16 {
        scales[j] = make_q3_quants(16, 4, &x[16 * j..], &mut L[16 * j..], true);
        let scale = scales[j].abs();
        if scale > amax {
            amax = scale;
            max_scale = scales[j];
        }
    }
    y[96..108].fill(0);
    let d_all;
    if max_scale != 0.0 {
        let iscale = -32.0f32 / max_scale;
        for j in 0..16 {
            let l8 = nearest_int(iscale * scales[j]) as i8;
            let l = (l8 as i32).min(31).max(-32) + 32;
            pack_scale(&mut y[96..108], j, l as i8 as i32);
        }
        d_all = put_f16(y, 108, 1.0 / iscale);
    } else {
        d_all = put_f16(y, 108, 0.0);
    }
    requantize_and_pack(x, y, &mut L, d_all);
}

/// Encodes whole blocks (`quantize_row_q3_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one block with its 256 importance weights, exactly as ggml's `quantize_row_q3_K_impl`.
#[allow(non_snake_case)]
pub fn quantize_block_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0i8; 256];
    let mut scales = [0f32; 16];
    let mut weight = [0f32; 16];
    let mut sw = [0f32; 16];
    let mut Ls = [0i8; 16];
    let sigma2 = 2.0 * sum_sq(x) / 256.0;
    for j in 0..16 {
        let q = &qw[16 * j..16 * j + 16];
        for l in 0..16 {
            let xv = x[16 * j + l];
            weight[l] = q[l] * (sigma2 + xv * xv).sqrt();
        }
        let mut sumw = 0f32;
        for &w in &weight {
            sumw += w;
        }
        sw[j] = sumw;
        scales[j] = make_qx_quants(16, 4, &x[16 * j..], &mut L[16 * j..], 1, Some(&weight));
    }
    y[96..108].fill(0);
    let d_block = make_qx_quants(16, 32, &scales, &mut Ls, 1, Some(&sw));
    for j in 0..16 {
        pack_scale(&mut y[96..108], j, Ls[j] as i32);
    }
    let d_all = put_f16(y, 108, d_block);
    requantize_and_pack(x, y, &mut L, d_all);
}

/// Encodes one row with importance weights `qw` (`quantize_q3_K` with quant_weights).
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
    use super::super::kquant_lanes::transpose_in;
    use super::super::kquant_search::{make_qx_quants, nearest_int, put_f16, sum_sq};
    use super::super::q2_k::lanes::imatrix_weights;
    use super::{pack, pack_scale, BLOCK_BYTES, BLOCK_WEIGHTS};
    use std::arch::x86_64::*;

    /// `quantize_row_q3_K_ref` of one block, its 16 sub-blocks in two groups of 8 AVX2 lanes.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block(x: &[f32], y: &mut [u8]) {
        let xt = transpose_in::<16, 16>(x);
        let halves = [load_rows(&xt, 0), load_rows(&xt, 8)];
        let x2 = pair(&halves);
        let mut lq2 = [[_mm256_setzero_ps(); 2]; 16];
        let sv = make_q3_g::<16, 2>(&x2, &mut lq2, 4);
        let lq = unpair(&lq2);
        let mut scales = [0f32; 16];
        for h in 0..2 {
            scales[8 * h..8 * h + 8].copy_from_slice(&to_arr(sv[h]));
        }
        let mut max_scale = 0f32;
        let mut amax = 0f32;
        for j in 0..16 {
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }
        y[96..108].fill(0);
        let d_all;
        if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            for j in 0..16 {
                let l8 = nearest_int(iscale * scales[j]) as i8;
                let l = (l8 as i32).min(31).max(-32) + 32;
                pack_scale(&mut y[96..108], j, l as i8 as i32);
            }
            d_all = put_f16(y, 108, 1.0 / iscale);
        } else {
            d_all = put_f16(y, 108, 0.0);
        }
        tail(&halves, &lq, y, d_all);
    }

    /// `quantize_row_q3_K_impl` of one block, its 16 sub-blocks in two groups of 8 AVX2 lanes.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
        let xt = transpose_in::<16, 16>(x);
        let halves = [load_rows(&xt, 0), load_rows(&xt, 8)];
        let (w, sw) = imatrix_weights(&halves, qw, 2.0 * sum_sq(&x[..256]) / 256.0);
        let (x2, w2) = (pair(&halves), pair(&w));
        let mut lq2 = [[_mm256_setzero_ps(); 2]; 16];
        let sv = make_qx_g::<16, 2>(&x2, &w2, &mut lq2, 4);
        let lq = unpair(&lq2);
        let mut scales = [0f32; 16];
        for h in 0..2 {
            scales[8 * h..8 * h + 8].copy_from_slice(&to_arr(sv[h]));
        }
        y[96..108].fill(0);
        let mut Ls = [0i8; 16];
        let d_block = make_qx_quants(16, 32, &scales, &mut Ls, 1, Some(&sw));
        for j in 0..16 {
            pack_scale(&mut y[96..108], j, Ls[j] as i32);
        }
        let d_all = put_f16(y, 108, d_block);
        tail(&halves, &lq, y, d_all);
    }

    /// Second pass (quants from the stored scales), hmask and packing, shared by both encoders.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn tail(halves: &[[__m256; 16]; 2], lq: &[[__m256; 16]; 2], y: &mut [u8], d_all: f32) {
        let mut dv = [0f32; 16];
        for j in 0..16 {
            let s = &y[96..108];
            let mut sc: i8 = if j < 8 { (s[j] & 0xF) as i8 } else { (s[j - 8] >> 4) as i8 };
            sc = ((sc as i32 | ((((s[8 + j % 4] >> (2 * (j / 4))) & 3) as i32) << 4)) - 32) as i8;
            dv[j] = d_all * sc as f32;
        }
        let mut L = [0i8; 256];
        for h in 0..2 {
            let d = _mm256_loadu_ps(dv[8 * h..].as_ptr());
            let skip = _mm256_cmp_ps::<_CMP_EQ_OQ>(d, _mm256_setzero_ps());
            let four = _mm256_set1_ps(4.0);
            for i in 0..16 {
                let l = _mm256_add_ps(ni_clamp(_mm256_div_ps(halves[h][i], d), -4, 3), four);
                let q = to_arr(sel(skip, lq[h][i], l));
                for k in 0..8 {
                    L[16 * (8 * h + k) + i] = q[k] as i8;
                }
            }
        }
        pack(y, &mut L);
    }

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

    /// Packs 16 six-bit values the way ggml's quantize_row_q3_K_ref does.
    fn pack(ls: &[u8; 16]) -> [u8; 12] {
        let mut s = [0u8; 12];
        for j in 0..16 {
            let l = ls[j];
            if j < 8 {
                s[j] = l & 0xF;
            } else {
                s[j - 8] |= (l & 0xF) << 4;
            }
            s[8 + j % 4] |= (l >> 4) << (2 * (j / 4));
        }
        s
    }

    #[test]
    fn hand_built_block() {
        let ls: [u8; 16] = [0, 63, 32, 31, 1, 62, 17, 45, 5, 50, 33, 30, 12, 40, 60, 3];
        let d = 0.0078125f32;
        let mut b = bytes(BLOCK_BYTES, 3);
        b[96..108].copy_from_slice(&pack(&ls));
        b[108..110].copy_from_slice(&h(d));
        assert_eq!(unpack_scales(&b[96..108]).map(|s| (s as i32 + 32) as u8), ls);
        let mut y = vec![0f32; 256];
        dequantize(&b, &mut y);
        let mut e = 0;
        for half in 0..2 {
            for shift in 0..4 {
                for group in 0..2 {
                    let sc = ls[8 * half + 2 * shift + group] as i32 - 32;
                    for l in 0..16 {
                        let l = 16 * group + l;
                        let low = ((b[32 + 32 * half + l] >> (2 * shift)) & 3) as i32;
                        let bit = (b[l] >> (4 * half + shift)) & 1;
                        let q = low - if bit == 1 { 0 } else { 4 };
                        assert_eq!(y[e], (d * sc as f32) * q as f32, "weight {e}");
                        e += 1;
                    }
                }
            }
        }
    }
}
