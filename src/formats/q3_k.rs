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
    use super::super::kquant_search::{make_qx_quants, put_f16, sum_sq};
    use super::super::q2_k::lanes::imatrix_weights;
    use super::{pack_scale, BLOCK_BYTES, BLOCK_WEIGHTS};
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// The 16 sub-block scales of one block from its two lane groups.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn scales16(a: __m256, b: __m256) -> [f32; 16] {
        let mut scales = [0f32; 16];
        scales[..8].copy_from_slice(&to_arr(a));
        scales[8..].copy_from_slice(&to_arr(b));
        scales
    }

    /// The rest of `quantize_row_q3_K_ref` after the sub-block search (`sc`: the 16 sub-block
    /// scales in two vectors): 6-bit scales, d, then the second pass.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish(x: &[f32], y: &mut [u8], sc: [__m256; 2], search: impl Fn(usize, usize) -> u8) {
        // ggml's `max_scale`: the first scale with the largest |scale| (strictly above 0; a NaN
        // never compares above).
        let ord = |v: __m256| _mm256_and_ps(abs(v), _mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
        let a = [ord(sc[0]), ord(sc[1])];
        let amax = hmax(_mm256_max_ps(a[0], a[1]));
        let mut max_scale = 0f32;
        if amax > 0.0 {
            let s = _mm256_set1_ps(amax);
            let hit = (_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(a[0], s)) as u32)
                | ((_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(a[1], s)) as u32) << 8);
            // `amax` is one of the lanes, so `hit != 0`.
            if hit != 0 {
                let j = hit.trailing_zeros() as usize;
                max_scale = to_arr(sc[j / 8])[j % 8];
            }
        }
        let mut l = [_mm256_setzero_si256(); 2];
        let d_all;
        if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            let is = _mm256_set1_ps(iscale);
            for h in 0..2 {
                // `(int8_t)nearest_int(iscale * scale)`, clamped to -32..=31, plus 32.
                let v = _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(ni(_mm256_mul_ps(is, sc[h]))));
                let v = _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(31)), _mm256_set1_epi32(-32));
                l[h] = _mm256_add_epi32(v, _mm256_set1_epi32(32));
            }
            d_all = put_f16(y, 108, 1.0 / iscale);
        } else {
            d_all = put_f16(y, 108, 0.0);
        }
        // The 12 scale bytes: low nibbles of scales j and j + 8 in byte j < 8, the top two bits of
        // scale m + 4q at bits 2q of byte 8 + m.
        let b = bytes16(l[0], l[1]);
        let lo = _mm_and_si128(b, _mm_set1_epi8(0xF));
        let low8 = _mm_or_si128(lo, _mm_slli_epi16::<4>(_mm_srli_si128::<8>(lo)));
        let hb = _mm_and_si128(_mm_srli_epi16::<4>(b), _mm_set1_epi8(3));
        let top = _mm_or_si128(
            _mm_or_si128(hb, _mm_slli_epi32::<2>(_mm_srli_si128::<4>(hb))),
            _mm_or_si128(_mm_slli_epi32::<4>(_mm_srli_si128::<8>(hb)), _mm_slli_epi32::<6>(_mm_srli_si128::<12>(hb))),
        );
        y[96..104].copy_from_slice(&(_mm_cvtsi128_si64(low8) as u64).to_le_bytes());
        y[104..108].copy_from_slice(&(_mm_cvtsi128_si32(top) as u32).to_le_bytes());
        // The stored scales, `d_all * (l - 32)`, as ggml reads them back.
        let mut dv = [0f32; 16];
        for h in 0..2 {
            let s = _mm256_cvtepi32_ps(_mm256_sub_epi32(l[h], _mm256_set1_epi32(32)));
            _mm256_storeu_ps(dv[8 * h..].as_mut_ptr(), _mm256_mul_ps(_mm256_set1_ps(d_all), s));
        }
        tail(x, search, y, &dv);
    }

    /// The rest of `quantize_row_q3_K_impl` after the sub-block search.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn finish_imatrix(x: &[f32], y: &mut [u8], scales: &[f32; 16], sw: &[f32; 16], lq: &[[__m256; 16]; 2]) {
        y[96..108].fill(0);
        let mut Ls = [0i8; 16];
        let d_block = make_qx_quants(16, 32, scales, &mut Ls, 1, Some(sw));
        for j in 0..16 {
            pack_scale(&mut y[96..108], j, Ls[j] as i32);
        }
        let d_all = put_f16(y, 108, d_block);
        let mut dv = [0f32; 16];
        for j in 0..16 {
            let s = &y[96..108];
            let mut sc: i8 = if j < 8 { (s[j] & 0xF) as i8 } else { (s[j - 8] >> 4) as i8 };
            sc = ((sc as i32 | ((((s[8 + j % 4] >> (2 * (j / 4))) & 3) as i32) << 4)) - 32) as i8;
            dv[j] = d_all * sc as f32;
        }
        tail(x, |j, i| to_arr(lq[j / 8][i])[j % 8] as u8, y, &dv);
    }

    /// Blocks per call of [`chunk`] (at most): the sub-blocks still changing after a pass of the
    /// search are gathered from this many blocks into full groups of 8 lanes.
    const CHUNK: usize = 16;

    /// The search state of a chunk's sub-blocks. Sub-block `p` (weights `16p..16p + 16` of the
    /// chunk) is lane `p % 8` of group `p / 8`. After the first pass its quants (as f32, without
    /// the `nmax` offset) are in `lq[p / 8][i]`, lane `p % 8`; where the group has lanes that need
    /// more passes (`rows_ok`), they are also in `rows[p]` (one row per sub-block, which is how
    /// [`refine`] gathers and updates them) and that copy is the current one. `lq` and `rows` are
    /// left uninitialised (32 KiB): [`start`] writes `lq` for every group of the chunk and `rows`
    /// for every group with `rows_ok` before anything reads them.
    #[repr(C, align(32))]
    struct Search {
        lq: [MaybeUninit<[__m256; 16]>; 2 * CHUNK],
        rows: [MaybeUninit<[f32; 16]>; 16 * CHUNK],
        sumlx: [f32; 16 * CHUNK],
        suml2: [f32; 16 * CHUNK],
        small: [u8; 2 * CHUNK],
        small_v: [__m256; 2 * CHUNK],
        rows_ok: [bool; 2 * CHUNK],
    }

    /// Rows `k` of the 8 x 16 matrix whose columns are `v[i]` (lane `k` of `v[i]` is element
    /// `(k, i)`): `(row k, elements 0..8)` and `(row k, elements 8..16)`.
    #[inline(always)]
    unsafe fn to_rows(v: &[__m256; 16]) -> ([__m256; 8], [__m256; 8]) {
        let lo: [__m256; 8] = v[..8].try_into().unwrap();
        let hi: [__m256; 8] = v[8..].try_into().unwrap();
        (transpose8(&lo), transpose8(&hi))
    }

    /// The start and first pass of the search of `G / 2` blocks (`G` groups of 8 sub-blocks, `G`
    /// = 2 or 4) into groups `g0..g0 + G` of `st`. Returns bit `8g + k` set where lane `k` of group
    /// `g0 + g` changed in the pass (and is not a zero sub-block): those need another pass.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn start<const G: usize>(x: &[f32], st: &mut Search, g0: usize) -> u32 {
        let mut h = [[_mm256_setzero_ps(); 16]; G];
        for b in 0..G / 2 {
            let hb = halves16(&x[256 * b..]);
            h[2 * b] = hb[0];
            h[2 * b + 1] = hb[1];
        }
        let xg = group(&h);
        let mut lg = [[_mm256_setzero_ps(); G]; 16];
        let (mut slx, mut sl2, small) = q3_start(&xg, &mut lg, 4);
        let ch = q3_pass(&xg, &mut lg, &mut slx, &mut sl2, 4);
        let mut bits = 0u32;
        for g in 0..G {
            let gg = g0 + g;
            let mut col = [_mm256_setzero_ps(); 16];
            for i in 0..16 {
                col[i] = lg[i][g];
            }
            st.lq[gg].write(col);
            _mm256_storeu_ps(st.sumlx[8 * gg..].as_mut_ptr(), slx[g]);
            _mm256_storeu_ps(st.suml2[8 * gg..].as_mut_ptr(), sl2[g]);
            let sm = _mm256_movemask_ps(small[g]) as u32;
            st.small[gg] = sm as u8;
            st.small_v[gg] = small[g];
            let pend = _mm256_movemask_ps(ch[g]) as u32 & !sm;
            st.rows_ok[gg] = pend != 0;
            if pend != 0 {
                let (lo, hi) = to_rows(&col);
                for k in 0..8 {
                    let r = st.rows[8 * gg + k].as_mut_ptr() as *mut f32;
                    _mm256_storeu_ps(r, lo[k]);
                    _mm256_storeu_ps(r.add(8), hi[k]);
                }
            }
            bits |= pend << (8 * g);
        }
        bits
    }

    /// One more pass over the sub-blocks `items` (at most `8 * G`), 8 to a group, `G` groups
    /// interleaved; idle lanes hold zeros, which never change. The sub-blocks that changed are
    /// written back and appended to `next[*nn..]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn refine_batch<const G: usize>(
        x: &[f32],
        st: &mut Search,
        items: &[u16],
        next: &mut [u16],
        nn: &mut usize,
    ) {
        let zero = _mm256_setzero_ps();
        let (mut px, mut pl) = ([[zero; G]; 16], [[zero; G]; 16]);
        let (mut slx, mut sl2) = ([zero; G], [zero; G]);
        for (q, pack) in items.chunks(8).enumerate() {
            let (mut xl, mut xh, mut ll, mut lh) = ([zero; 8], [zero; 8], [zero; 8], [zero; 8]);
            let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
            for (t, &p) in pack.iter().enumerate() {
                let p = p as usize;
                xl[t] = _mm256_loadu_ps(x[16 * p..].as_ptr());
                xh[t] = _mm256_loadu_ps(x[16 * p + 8..].as_ptr());
                // Written by `start` (the group of a pending sub-block has `rows_ok`).
                let r = st.rows[p].as_ptr() as *const f32;
                ll[t] = _mm256_loadu_ps(r);
                lh[t] = _mm256_loadu_ps(r.add(8));
                a[t] = st.sumlx[p];
                b[t] = st.suml2[p];
            }
            let (xl, xh, ll, lh) = (transpose8(&xl), transpose8(&xh), transpose8(&ll), transpose8(&lh));
            for i in 0..8 {
                px[i][q] = xl[i];
                px[8 + i][q] = xh[i];
                pl[i][q] = ll[i];
                pl[8 + i][q] = lh[i];
            }
            slx[q] = _mm256_loadu_ps(a.as_ptr());
            sl2[q] = _mm256_loadu_ps(b.as_ptr());
        }
        let ch = q3_pass(&px, &mut pl, &mut slx, &mut sl2, 4);
        for (q, pack) in items.chunks(8).enumerate() {
            let mut m = _mm256_movemask_ps(ch[q]) as u32;
            if m == 0 {
                continue;
            }
            let mut col = [zero; 16];
            for i in 0..16 {
                col[i] = pl[i][q];
            }
            let (lo, hi) = to_rows(&col);
            let (a, b) = (to_arr(slx[q]), to_arr(sl2[q]));
            while m != 0 {
                let t = m.trailing_zeros() as usize;
                m &= m - 1;
                let p = pack[t] as usize;
                let r = st.rows[p].as_mut_ptr() as *mut f32;
                _mm256_storeu_ps(r, lo[t]);
                _mm256_storeu_ps(r.add(8), hi[t]);
                st.sumlx[p] = a[t];
                st.suml2[p] = b[t];
                next[*nn] = p as u16;
                *nn += 1;
            }
        }
    }

    /// Passes 2 to 5 of the search, each over the sub-blocks `pend[..np]` that changed in the pass
    /// before (ggml loops over a sub-block until a pass changes nothing, at most five times).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn refine(x: &[f32], st: &mut Search, pend: &mut [u16; 16 * CHUNK], mut np: usize) {
        let mut next = [0u16; 16 * CHUNK];
        for _pass in 1..5 {
            if np == 0 {
                break;
            }
            let mut nn = 0;
            for items in pend[..np].chunks(32) {
                match items.len().div_ceil(8) {
                    4 => refine_batch::<4>(x, st, items, &mut next, &mut nn),
                    3 => refine_batch::<3>(x, st, items, &mut next, &mut nn),
                    2 => refine_batch::<2>(x, st, items, &mut next, &mut nn),
                    _ => refine_batch::<1>(x, st, items, &mut next, &mut nn),
                }
            }
            pend[..nn].copy_from_slice(&next[..nn]);
            np = nn;
        }
    }

    /// `make_q3_quants(16, 4, .., true)` of every sub-block of up to [`CHUNK`] blocks `x` into
    /// `st`: the start and first pass of all, the later passes only for the sub-blocks that need
    /// them ([`refine`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn search(x: &[f32], st: &mut Search) {
        let nb = x.len() / BLOCK_WEIGHTS;
        debug_assert!(nb <= CHUNK);
        let mut pend = [0u16; 16 * CHUNK];
        let mut np = 0;
        let mut b = 0;
        while b < nb {
            // The next two blocks into L1 while these two are searched.
            if b + 4 <= nb {
                prefetch_l1(&x[BLOCK_WEIGHTS * (b + 2)..BLOCK_WEIGHTS * (b + 4)]);
            }
            let xb = &x[BLOCK_WEIGHTS * b..];
            let mut bits = if b + 2 <= nb { start::<4>(xb, st, 2 * b) } else { start::<2>(xb, st, 2 * b) };
            while bits != 0 {
                pend[np] = (16 * b) as u16 + bits.trailing_zeros() as u16;
                np += 1;
                bits &= bits - 1;
            }
            b += 2;
        }
        refine(x, st, &mut pend, np);
    }

    impl Search {
        #[inline(always)]
        fn new() -> Search {
            let zero = [0f32; 16 * CHUNK];
            Search {
                lq: [const { MaybeUninit::uninit() }; 2 * CHUNK],
                rows: [const { MaybeUninit::uninit() }; 16 * CHUNK],
                sumlx: zero,
                suml2: zero,
                small: [0; 2 * CHUNK],
                // SAFETY: only the AVX2 encoders (run after the CPU check) make a `Search`.
                small_v: [unsafe { _mm256_setzero_ps() }; 2 * CHUNK],
                rows_ok: [false; 2 * CHUNK],
            }
        }

        /// The returned scales of block `b`'s 16 sub-blocks (sub-block `8h + k` in lane `k` of
        /// vector `h`): `sumlx / suml2`, or 0 where `suml2 <= 0` or the sub-block is all but zero.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn scales(&self, b: usize) -> [__m256; 2] {
            let zero = _mm256_setzero_ps();
            let mut sc = [zero; 2];
            for h in 0..2 {
                let g = 2 * b + h;
                let (sx, s2) =
                    (_mm256_loadu_ps(self.sumlx[8 * g..].as_ptr()), _mm256_loadu_ps(self.suml2[8 * g..].as_ptr()));
                let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(s2, zero);
                sc[h] = _mm256_andnot_ps(self.small_v[g], sel(pos, _mm256_div_ps(sx, s2), zero));
            }
            sc
        }

        /// ggml's `L[16 * j + i]` after `make_q3_quants` for sub-block `p = 16b + j`: `nmax + l`,
        /// or 0 for an all but zero sub-block.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn quant(&self, p: usize, i: usize) -> u8 {
            let (g, k) = (p / 8, p % 8);
            if self.small[g] & (1 << k) != 0 {
                return 0;
            }
            // SAFETY: `start` wrote `lq` of every group of the chunk and `rows` of those with
            // `rows_ok`.
            let l = if self.rows_ok[g] {
                self.rows[p].assume_init_ref()[i]
            } else {
                to_arr(self.lq[g].assume_init_ref()[i])[k]
            };
            (l as i32 + 4) as u8
        }
    }

    /// `quantize_row_q3_K_ref` of up to [`CHUNK`] blocks: [`search`], then each block's scales
    /// and second pass.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn chunk(x: &[f32], y: &mut [u8], st: &mut Search) {
        let nb = x.len() / BLOCK_WEIGHTS;
        debug_assert!(nb <= CHUNK && y.len() == nb * BLOCK_BYTES);
        search(x, st);
        for b in 0..nb {
            let (xb, yb) =
                (&x[BLOCK_WEIGHTS * b..BLOCK_WEIGHTS * (b + 1)], &mut y[BLOCK_BYTES * b..BLOCK_BYTES * (b + 1)]);
            let st = &*st;
            finish(xb, yb, st.scales(b), |j, i| unsafe { st.quant(16 * b + j, i) });
        }
    }

    /// The scales and quants `L` of `make_q3_quants(16, 4, .., true)` of every sub-block of `x`
    /// (whole blocks), as [`search`] finds them.
    #[cfg(test)]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn search_all(x: &[f32]) -> (Vec<f32>, Vec<u8>) {
        let s = &mut Search::new();
        let (mut scales, mut quants) = (Vec::new(), Vec::new());
        for xc in x.chunks(CHUNK * BLOCK_WEIGHTS) {
            search(xc, s);
            for b in 0..xc.len() / BLOCK_WEIGHTS {
                for v in s.scales(b) {
                    scales.extend(to_arr(v));
                }
                for j in 0..16 {
                    for i in 0..16 {
                        quants.push(s.quant(16 * b + j, i));
                    }
                }
            }
        }
        (scales, quants)
    }

    /// `quantize_row_q3_K_impl` of one block, its 16 sub-blocks in two groups of 8 AVX2 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
        let h = halves16(x);
        let (w, sw) = imatrix_weights(&h, qw, 2.0 * sum_sq(&x[..256]) / 256.0);
        let mut lq2 = [[_mm256_setzero_ps(); 2]; 16];
        let sv = make_qx_g::<16, 2>(&group(&h), &group(&w), &mut lq2, 4);
        finish_imatrix(x, y, &scales16(sv[0], sv[1]), &sw, &ungroup2(&lq2, 0));
    }

    /// `quantize_row_q3_K_impl` of two blocks in four groups of 8 AVX2 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn blocks2_imatrix(x: &[f32], qw: &[f32], y: &mut [u8]) {
        let (x0, x1) = (&x[..256], &x[256..512]);
        let (h0, h1) = (halves16(x0), halves16(x1));
        let (w0, sw0) = imatrix_weights(&h0, &qw[..256], 2.0 * sum_sq(x0) / 256.0);
        let (w1, sw1) = imatrix_weights(&h1, &qw[256..512], 2.0 * sum_sq(x1) / 256.0);
        let mut lq4 = [[_mm256_setzero_ps(); 4]; 16];
        let xg = group(&[h0[0], h0[1], h1[0], h1[1]]);
        let sv = make_qx_g::<16, 4>(&xg, &group(&[w0[0], w0[1], w1[0], w1[1]]), &mut lq4, 4);
        let (y0, y1) = y[..2 * BLOCK_BYTES].split_at_mut(BLOCK_BYTES);
        finish_imatrix(x0, y0, &scales16(sv[0], sv[1]), &sw0, &ungroup2(&lq4, 0));
        finish_imatrix(x1, y1, &scales16(sv[2], sv[3]), &sw1, &ungroup2(&lq4, 2));
    }

    /// Second pass (quants from the stored scales), hmask and packing, shared by both encoders:
    /// the bytes of ggml's `L` in weight order (`search(j, i)`: quant `i` of sub-block `j` from the
    /// search, kept where the stored scale is zero), then `hmask` and `qs` 32 bytes at a time.
    #[allow(non_snake_case)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn tail(x: &[f32], search: impl Fn(usize, usize) -> u8, y: &mut [u8], dv: &[f32; 16]) {
        let L = requant_bytes::<16>(x, dv, None, -4, 3, 4, search);
        // Chunk c = 4h + j of 32 quants (weights 128h + 32j + l) sets bit c of hmask[l] where the
        // quant is above 3 and gives its low two bits to bits 2j..2j+2 of qs[32h + l].
        let mut c = [_mm256_setzero_si256(); 8];
        for k in 0..8 {
            c[k] = _mm256_loadu_si256(L[32 * k..].as_ptr() as *const __m256i);
        }
        let (three, mut hmask) = (_mm256_set1_epi8(3), _mm256_setzero_si256());
        for k in 0..8 {
            let bit = _mm256_set1_epi8((1u8 << k) as i8);
            hmask = _mm256_or_si256(hmask, _mm256_and_si256(_mm256_cmpgt_epi8(c[k], three), bit));
        }
        _mm256_storeu_si256(y[0..32].as_mut_ptr() as *mut __m256i, hmask);
        for h in 0..2 {
            let q = |j: usize| _mm256_and_si256(c[4 * h + j], three);
            let v = _mm256_or_si256(
                _mm256_or_si256(q(0), _mm256_slli_epi16::<2>(q(1))),
                _mm256_or_si256(_mm256_slli_epi16::<4>(q(2)), _mm256_slli_epi16::<6>(q(3))),
            );
            _mm256_storeu_si256(y[32 + 32 * h..64 + 32 * h].as_mut_ptr() as *mut __m256i, v);
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize(src: &[f32], dst: &mut [u8]) {
        let nb = (src.len() / BLOCK_WEIGHTS).min(dst.len() / BLOCK_BYTES);
        let (src, dst) = (&src[..nb * BLOCK_WEIGHTS], &mut dst[..nb * BLOCK_BYTES]);
        let mut st = Search::new();
        for (x, y) in src.chunks(CHUNK * BLOCK_WEIGHTS).zip(dst.chunks_mut(CHUNK * BLOCK_BYTES)) {
            chunk(x, y, &mut st);
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
        let n2 = x.len() / (2 * BLOCK_WEIGHTS);
        for b in 0..n2 {
            let r = 2 * BLOCK_WEIGHTS * b..2 * BLOCK_WEIGHTS * (b + 1);
            blocks2_imatrix(&x[r.clone()], &qw[r], &mut dst[2 * BLOCK_BYTES * b..2 * BLOCK_BYTES * (b + 1)]);
        }
        let done = 2 * BLOCK_WEIGHTS * n2;
        for ((x, qw), y) in x[done..]
            .chunks_exact(BLOCK_WEIGHTS)
            .zip(qw[done..].chunks_exact(BLOCK_WEIGHTS))
            .zip(dst[2 * BLOCK_BYTES * n2..].chunks_exact_mut(BLOCK_BYTES))
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

    /// The last refinement pass of `make_q3_quants(16, 4, x, .., true)` that changed a quant, as
    /// ggml runs it (0: none did, or `x` is all but zero).
    #[cfg(target_arch = "x86_64")]
    fn last_changing_pass(x: &[f32]) -> usize {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        if amax < super::super::kquant_search::GROUP_MAX_EPS {
            return 0;
        }
        let max = *x.iter().find(|v| v.abs() == amax).unwrap();
        let iscale = -4.0 / max;
        let mut l: Vec<i32> = x.iter().map(|&v| nearest_int(iscale * v).clamp(-4, 3)).collect();
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for i in 0..16 {
            let w = x[i] * x[i];
            sumlx += w * x[i] * l[i] as f32;
            suml2 += w * l[i] as f32 * l[i] as f32;
        }
        let mut last = 0;
        for pass in 1..=5 {
            for i in 0..16 {
                let (w, li) = (x[i] * x[i], l[i] as f32);
                let mut slx = sumlx - w * x[i] * li;
                if slx > 0.0 {
                    let mut sl2 = suml2 - w * li * li;
                    let nl = nearest_int(x[i] * sl2 / slx).clamp(-4, 3);
                    if nl != l[i] {
                        slx += w * x[i] * nl as f32;
                        sl2 += w * nl as f32 * nl as f32;
                        if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            (l[i], sumlx, suml2, last) = (nl, slx, sl2, pass);
                        }
                    }
                }
            }
            if last != pass {
                break;
            }
        }
        last
    }

    /// Weights on which ggml's search changes quants in every one of its five passes somewhere,
    /// with zero, tiny, ordinary and large blocks.
    fn searched_weights(n: usize) -> Vec<f32> {
        let mut next = super::super::testutil::unit_uniform(0x2545_F491_4F6C_DD1D);
        (0..n)
            .map(|i| {
                let g = next() + next() + next() + next() - 2.0;
                let scale = [0.0, 0.01, 0.06, 1.0, 3e4][(i / 256) % 5] * if (i / 16) % 13 == 0 { 1e-3 } else { 1.0 };
                if next() < 0.02 {
                    g * scale * 8.0
                } else {
                    g * scale
                }
            })
            .collect()
    }

    /// The AVX2 search (all sub-blocks of a chunk of up to 16 blocks in lanes, then the ones that
    /// still change regrouped into new lanes, pass after pass) finds exactly the scales and quants
    /// of the scalar `make_q3_quants` for every sub-block, including those whose fifth pass
    /// changes something.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn lane_search_equals_make_q3_quants() {
        if !super::super::kquant_lanes::use_avx2() {
            return;
        }
        let x = searched_weights(256 * 301);
        let mut hist = [0usize; 6];
        for sub in x.chunks_exact(16) {
            hist[last_changing_pass(sub)] += 1;
        }
        assert!(hist.iter().all(|&c| c > 0), "some sub-block's last change in every pass: {hist:?}");
        // SAFETY: the CPU has AVX2 (checked above).
        let (scales, quants) = unsafe { lanes::search_all(&x) };
        for (j, sub) in x.chunks_exact(16).enumerate() {
            let mut l = [0i8; 16];
            let scale = make_q3_quants(16, 4, sub, &mut l, true);
            assert_eq!(scales[j].to_bits(), scale.to_bits(), "sub-block {j}");
            assert!(quants[16 * j..16 * j + 16].iter().zip(&l).all(|(&a, &b)| a == b as u8), "sub-block {j}");
        }
    }

    /// The same bytes as the scalar reference for every number of blocks (odd, partial and whole
    /// chunks of the AVX2 encoder).
    #[test]
    fn fast_encoder_equals_reference_over_chunks() {
        let x = searched_weights(256 * 301);
        for nb in [1, 2, 3, 15, 16, 17, 31, 32, 33, 301] {
            let (xs, bytes) = (&x[..256 * nb], BLOCK_BYTES * nb);
            let (mut a, mut b) = (vec![0u8; bytes], vec![0xA5u8; bytes]);
            quantize(xs, &mut a);
            quantize_fast(xs, &mut b);
            let blk = |v: &[u8], i: usize| v[i * BLOCK_BYTES..(i + 1) * BLOCK_BYTES].to_vec();
            if let Some(i) = (0..nb).find(|&i| blk(&a, i) != blk(&b, i)) {
                panic!("{nb} blocks: block {i} differs");
            }
        }
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
