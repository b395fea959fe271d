//! Q4_K: 256 weights in 144 bytes. `d: f16 @0, dmin: f16 @2, scales[12] @4, qs[128] @16`.
//! Eight sub-blocks of 32 with packed 6-bit scales and mins ([`super::scale_min_k4`]). Chunk c
//! (0..4) of 64 weights uses `qs[32c..32c+32]`: low nibbles for sub-block 2c, high nibbles for 2c+1.
//! `y = (d * sc) * q - (dmin * m)`.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

use super::kquant_search::{make_qkx2_quants, make_qkx3_quants, make_qp_quants, nearest_int, put_f16, sum_sq};
use super::{f16_at, scale_min_k4};

pub const BLOCK_WEIGHTS: usize = 256;
pub const BLOCK_BYTES: usize = 144;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * c..32 * c + 32];
        let y = &mut y[64 * c..64 * c + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0xF) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
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
// Encoding (ggml's `quantize_row_q4_K_ref` and `quantize_q4_K` with an importance matrix).
// Block: d @0, dmin @2, scales[12] @4, qs[128] @16.

/// Packs 6-bit scale `ls` and min `lm` of sub-block `j` in ggml's order (`j` ascending).
#[inline(always)]
pub(crate) fn pack_k4(s: &mut [u8], j: usize, ls: u8, lm: u8) {
    if j < 4 {
        s[j] = ls;
        s[j + 4] = lm;
    } else {
        s[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
        s[j - 4] |= (ls >> 4) << 6;
        s[j] |= (lm >> 4) << 6;
    }
}

/// Requantizes 256 weights with the stored d/dmin and 6-bit scales into `L` (0..=nmax), as the
/// second pass of ggml's Q4_K / Q5_K quantizers.
#[allow(non_snake_case)]
#[inline(always)]
pub(crate) fn requantize_k(x: &[f32], s: &[u8], d_all: f32, m_all: f32, nmax: i32, L: &mut [u8; 256]) {
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, s);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = m_all * m as f32;
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / d).min(nmax).max(0);
            L[32 * j + ii] = l as u8;
        }
    }
}

/// The reference search of Q4_K / Q5_K: per sub-block weights `sqrt(mean(x^2)) + |x|` and
/// `make_qkx2_quants`, then 6-bit scales with `63 / max`. Writes d, dmin and scales; returns the
/// stored d and dmin.
#[allow(non_snake_case, clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn ref_scales_k(
    x: &[f32],
    y: &mut [u8],
    L: &mut [u8; 256],
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let mut Laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let av_x = (sum_sq(xs) / 32.0).sqrt();
        for l in 0..32 {
            weights[l] = av_x + xs[l].abs();
        }
        scales[j] = make_qkx2_quants(
            32,
            nmax,
            xs,
            &weights,
            &mut L[32 * j..],
            &mut mins[j],
            &mut Laux,
            rmin,
            rdelta,
            nstep,
            false,
        );
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        pack_k4(&mut y[4..16], j, ls, lm);
    }
    let d = put_f16(y, 0, max_scale / 63.0);
    let dmin = put_f16(y, 2, max_min / 63.0);
    (d, dmin)
}

/// The importance-weighted search of Q4_K / Q5_K (`quantize_row_q4_K_impl` / `q5_K_impl`).
#[allow(non_snake_case)]
#[inline(always)]
pub(crate) fn imatrix_scales_k(
    x: &[f32],
    qw: &[f32],
    y: &mut [u8],
    L: &mut [u8; 256],
    nmax: i32,
    clamp63: bool,
) -> (f32, f32) {
    let mut Laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut sw = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let sigma2 = 2.0 * sum_sq(&x[..256]) / 256.0;
    for j in 0..8 {
        let q = &qw[32 * j..32 * j + 32];
        for l in 0..32 {
            let xv = x[32 * j + l];
            weights[l] = q[l] * (sigma2 + xv * xv).sqrt();
        }
        let mut sumw = 0f32;
        for &w in &weights {
            sumw += w;
        }
        sw[j] = sumw;
        scales[j] = make_qkx3_quants(
            32,
            nmax,
            &x[32 * j..],
            Some(&weights),
            &mut L[32 * j..],
            &mut mins[j],
            &mut Laux,
            -0.9,
            0.05,
            36,
            false,
        );
    }
    put_qp_scales(y, &scales, &mins, &sw, clamp63)
}

/// The end of ggml's importance-weighted Q4_K/Q5_K scale search: the 8 sub-block scales and mins
/// quantized to 6 bits by `make_qp_quants` (weights `sw`), packed into `y[4..16]`, and `d`, `dmin`
/// written to `y[0..4]`; returns them as stored (fp16-rounded).
#[allow(non_snake_case)]
fn put_qp_scales(y: &mut [u8], scales: &[f32; 8], mins: &[f32; 8], sw: &[f32; 8], clamp63: bool) -> (f32, f32) {
    let mut Ls = [0u8; 8];
    let mut Lm = [0u8; 8];
    let d_block = make_qp_quants(8, 63, scales, &mut Ls, sw);
    let m_block = make_qp_quants(8, 63, mins, &mut Lm, sw);
    for j in 0..8 {
        let (mut ls, mut lm) = (Ls[j], Lm[j]);
        if clamp63 {
            ls = ls.min(63);
            lm = lm.min(63);
        }
        pack_k4(&mut y[4..16], j, ls, lm);
    }
    let d = put_f16(y, 0, d_block);
    let dmin = put_f16(y, 2, m_block);
    (d, dmin)
}

#[allow(non_snake_case)]
#[inline(always)]
fn pack(y: &mut [u8], L: &[u8; 256]) {
    for (c, j) in (0..256).step_by(64).enumerate() {
        for l in 0..32 {
            y[16 + 32 * c + l] = L[j + l] | (L[j + l + 32] << 4);
        }
    }
}

/// Encodes one block exactly as ggml's `quantize_row_q4_K_ref`.
#[allow(non_snake_case)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0u8; 256];
    let (d, dmin) = ref_scales_k(x, y, &mut L, 15, -1.0, 0.1, 20);
    requantize_k(x, &y[4..16], d, dmin, 15, &mut L);
    pack(y, &L);
}

/// Encodes whole blocks (`quantize_row_q4_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one block with its 256 importance weights, exactly as ggml's `quantize_row_q4_K_impl`.
#[allow(non_snake_case)]
pub fn quantize_block_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut L = [0u8; 256];
    let (d, dmin) = imatrix_scales_k(x, qw, y, &mut L, 15, false);
    requantize_k(x, &y[4..16], d, dmin, 15, &mut L);
    pack(y, &L);
}

/// Encodes one row with importance weights `qw` (`quantize_q4_K` with quant_weights).
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
    use super::super::kquant_search::{nearest_int, put_f16, sum_sq};
    use super::{pack, pack_k4, scale_min_k4, BLOCK_BYTES};
    use std::arch::x86_64::*;

    /// The 8 sub-blocks of a block in lanes and ggml's reference weights `av_x + |x|`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn prep(x: &[f32]) -> ([__m256; 32], [__m256; 32]) {
        let xv = load_rows(&transpose_in8::<32, 8>(x), 0);
        let mut sumsq = _mm256_setzero_ps();
        for v in &xv {
            sumsq = _mm256_add_ps(sumsq, _mm256_mul_ps(*v, *v));
        }
        let av_x = _mm256_sqrt_ps(_mm256_div_ps(sumsq, _mm256_set1_ps(32.0)));
        let mut w = [_mm256_setzero_ps(); 32];
        for i in 0..32 {
            w[i] = _mm256_add_ps(av_x, abs(xv[i]));
        }
        (xv, w)
    }

    /// The 8 sub-blocks of a block in lanes, the importance weights `qw * sqrt(sigma2 + x^2)`
    /// and their sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn prep_imatrix(x: &[f32], qw: &[f32]) -> ([__m256; 32], [__m256; 32], [f32; 8]) {
        let xv = load_rows(&transpose_in8::<32, 8>(x), 0);
        let qv = load_rows(&transpose_in8::<32, 8>(qw), 0);
        let sigma2 = 2.0 * sum_sq(&x[..256]) / 256.0;
        let s2 = _mm256_set1_ps(sigma2);
        let mut w = [_mm256_setzero_ps(); 32];
        let mut swv = _mm256_setzero_ps();
        for i in 0..32 {
            w[i] = _mm256_mul_ps(qv[i], _mm256_sqrt_ps(_mm256_add_ps(s2, _mm256_mul_ps(xv[i], xv[i]))));
            swv = _mm256_add_ps(swv, w[i]);
        }
        (xv, w, to_arr(swv))
    }

    /// The rest of `ref_scales_k` after the sub-block search (scales `sv`, mins `mv`, quants
    /// `lq`), then `requantize_k`: writes d, dmin and scales to `y` and returns the final quants.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish(x: &[f32], y: &mut [u8], sv: __m256, mv: __m256, lq: &[__m256; 32], nmax: i32) -> [u8; 256] {
        let (scales, mins) = (to_arr(sv), to_arr(mv));
        let mut max_scale = 0f32;
        let mut max_min = 0f32;
        for j in 0..8 {
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        for j in 0..8 {
            let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
            pack_k4(&mut y[4..16], j, ls, lm);
        }
        let d_all = put_f16(y, 0, max_scale / 63.0);
        let m_all = put_f16(y, 2, max_min / 63.0);
        requant(x, lq, y, d_all, m_all, nmax)
    }

    /// The rest of `imatrix_scales_k` after the sub-block search, then `requantize_k`.
    #[allow(non_snake_case, clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish_imatrix(
        x: &[f32],
        y: &mut [u8],
        sv: __m256,
        mv: __m256,
        sw: &[f32; 8],
        lq: &[__m256; 32],
        nmax: i32,
        clamp63: bool,
    ) -> [u8; 256] {
        let (d_all, m_all) = super::put_qp_scales(y, &to_arr(sv), &to_arr(mv), sw, clamp63);
        requant(x, lq, y, d_all, m_all, nmax)
    }

    /// The Q4_K / Q5_K reference encoder of one block with its 8 sub-blocks in AVX2 lanes: writes
    /// d, dmin and scales to `y` and returns the final quants. Bit for bit `ref_scales_k`
    /// followed by `requantize_k`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn encode_k(x: &[f32], y: &mut [u8], nmax: i32, rmin: f32, rdelta: f32, nstep: i32) -> [u8; 256] {
        let (xv, w) = prep(x);
        let mut lq = [_mm256_setzero_ps(); 32];
        let (sv, mv) = make_qkx2(&xv, &w, &mut lq, nmax, rmin, rdelta, nstep, false);
        finish(x, y, sv, mv, &lq, nmax)
    }

    /// [`encode_k`] of two blocks (`x[..512]`, `y[..2 * bb]`, `bb` the block size), their 16 sub-blocks in two
    /// lane groups searched together (two independent chains).
    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn encode_k2(
        x: &[f32],
        y: &mut [u8],
        bb: usize,
        nmax: i32,
        rmin: f32,
        rdelta: f32,
        nstep: i32,
    ) -> ([u8; 256], [u8; 256]) {
        let (x0, x1) = (&x[..256], &x[256..512]);
        let ((a, wa), (b, wb)) = (prep(x0), prep(x1));
        let mut lq = [[_mm256_setzero_ps(); 2]; 32];
        let (sv, mv) =
            make_qkx_g::<32, 2, false>(&group(&[a, b]), &group(&[wa, wb]), &mut lq, nmax, rmin, rdelta, nstep, false);
        let lq = ungroup2(&lq, 0);
        let (y0, y1) = y[..2 * bb].split_at_mut(bb);
        (finish(x0, y0, sv[0], mv[0], &lq[0], nmax), finish(x1, y1, sv[1], mv[1], &lq[1], nmax))
    }

    /// The second pass of Q4_K / Q5_K (quants from the stored d, dmin and 6-bit scales) in weight
    /// order; sub-blocks whose scale is zero keep the search's quants `lq` (lane `j` of `lq[i]`).
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn requant(x: &[f32], lq: &[__m256; 32], y: &[u8], d_all: f32, m_all: f32, nmax: i32) -> [u8; 256] {
        let mut dv = [0f32; 8];
        let mut dmv = [0f32; 8];
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, &y[4..16]);
            dv[j] = d_all * sc as f32;
            dmv[j] = m_all * m as f32;
        }
        requant_bytes::<32>(x, &dv, Some(&dmv), 0, nmax, 0, |j, i| to_arr(lq[i])[j] as u8)
    }

    /// The reference encoder over whole blocks of `bb` bytes (Q4_K or Q5_K), two at a time, each
    /// block's final quants to `pack`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn run(
        src: &[f32],
        dst: &mut [u8],
        bb: usize,
        nmax: i32,
        rmin: f32,
        rdelta: f32,
        nstep: i32,
        pack: fn(&mut [u8], &[u8; 256]),
    ) {
        let mut xs = src.chunks_exact(512);
        let mut ys = dst.chunks_exact_mut(2 * bb);
        for (x, y) in (&mut xs).zip(&mut ys) {
            let (l0, l1) = encode_k2(x, y, bb, nmax, rmin, rdelta, nstep);
            let (y0, y1) = y.split_at_mut(bb);
            pack(y0, &l0);
            pack(y1, &l1);
        }
        for (x, y) in xs.remainder().chunks_exact(256).zip(ys.into_remainder().chunks_exact_mut(bb)) {
            let l = encode_k(x, y, nmax, rmin, rdelta, nstep);
            pack(y, &l);
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize(src: &[f32], dst: &mut [u8]) {
        run(src, dst, BLOCK_BYTES, 15, -1.0, 0.1, 20, pack);
    }

    /// The importance-weighted Q4_K / Q5_K encoder of one block (`quantize_row_q4_K_impl` /
    /// `q5_K_impl`) with its 8 sub-blocks in lanes: bit for bit `imatrix_scales_k` followed by
    /// `requantize_k`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn encode_k_imatrix(x: &[f32], qw: &[f32], y: &mut [u8], nmax: i32, clamp63: bool) -> [u8; 256] {
        let (xv, w, sw) = prep_imatrix(x, qw);
        let mut lq = [_mm256_setzero_ps(); 32];
        let (sv, mv) = make_qkx3(&xv, &w, &mut lq, nmax, -0.9, 0.05, 36, false);
        finish_imatrix(x, y, sv, mv, &sw, &lq, nmax, clamp63)
    }

    /// [`encode_k_imatrix`] of two blocks, searched together in two lane groups.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn encode_k2_imatrix(
        x: &[f32],
        qw: &[f32],
        y: &mut [u8],
        bb: usize,
        nmax: i32,
        clamp63: bool,
    ) -> ([u8; 256], [u8; 256]) {
        let (x0, x1) = (&x[..256], &x[256..512]);
        let ((a, wa, swa), (b, wb, swb)) = (prep_imatrix(x0, &qw[..256]), prep_imatrix(x1, &qw[256..512]));
        let mut lq = [[_mm256_setzero_ps(); 2]; 32];
        let (sv, mv) =
            make_qkx_g::<32, 2, true>(&group(&[a, b]), &group(&[wa, wb]), &mut lq, nmax, -0.9, 0.05, 36, false);
        let lq = ungroup2(&lq, 0);
        let (y0, y1) = y[..2 * bb].split_at_mut(bb);
        (
            finish_imatrix(x0, y0, sv[0], mv[0], &swa, &lq[0], nmax, clamp63),
            finish_imatrix(x1, y1, sv[1], mv[1], &swb, &lq[1], nmax, clamp63),
        )
    }

    /// The importance-weighted encoder over one row of whole blocks of `bb` bytes, two at a time.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn run_imatrix(
        x: &[f32],
        qw: &[f32],
        dst: &mut [u8],
        bb: usize,
        nmax: i32,
        clamp63: bool,
        pack: fn(&mut [u8], &[u8; 256]),
    ) {
        let n2 = x.len() / 512;
        for b in 0..n2 {
            let r = 512 * b..512 * (b + 1);
            let y = &mut dst[2 * bb * b..2 * bb * (b + 1)];
            let (l0, l1) = encode_k2_imatrix(&x[r.clone()], &qw[r], y, bb, nmax, clamp63);
            let (y0, y1) = y.split_at_mut(bb);
            pack(y0, &l0);
            pack(y1, &l1);
        }
        for b in 2 * n2..x.len() / 256 {
            let r = 256 * b..256 * (b + 1);
            let y = &mut dst[bb * b..bb * (b + 1)];
            let l = encode_k_imatrix(&x[r.clone()], &qw[r], y, nmax, clamp63);
            pack(y, &l);
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
        run_imatrix(x, qw, dst, BLOCK_BYTES, 15, false, pack);
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
    use super::super::testutil::h;
    use super::*;

    #[test]
    fn hand_built_block() {
        let sc = [1u8, 63, 17, 40, 2, 33, 62, 5];
        let mn = [63u8, 7, 9, 21, 44, 1, 32, 60];
        let (d, dmin) = (0.03125f32, 0.0625f32);
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(d));
        b[2..4].copy_from_slice(&h(dmin));
        b[4..16].copy_from_slice(&pack_scale_min_k4(&sc, &mn));
        for i in 0..128 {
            b[16 + i] = (i * 37 % 256) as u8;
        }
        let mut y = vec![0f32; 256];
        dequantize(&b, &mut y);
        for (e, &got) in y.iter().enumerate() {
            let (c, half, l) = (e / 64, (e % 64) / 32, e % 32);
            let byte = b[16 + 32 * c + l];
            let q = if half == 0 { byte & 0xF } else { byte >> 4 };
            let s = 2 * c + half;
            let want = (d * sc[s] as f32) * q as f32 - dmin * mn[s] as f32;
            assert_eq!(got, want, "weight {e}");
        }
    }
}
