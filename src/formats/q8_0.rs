//! Q8_0: 32 weights in 34 bytes. `d: f16 @0, qs: i8[32] @2`; `y = q * d`.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

use super::f16_at;
use super::kquant_search::{cvtt, put_f16};

pub const BLOCK_WEIGHTS: usize = 32;
pub const BLOCK_BYTES: usize = 34;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}

/// Decodes whole blocks (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(BLOCK_WEIGHTS)) {
        decode_block(b, y);
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q8_0_ref`; ggml's `quantize_q8_0` ignores an importance matrix).

/// Encodes one block exactly as ggml's `quantize_row_q8_0_ref` (C `roundf`: half away from zero).
#[inline(always)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut amax = 0f32;
    for &v in x {
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    for j in 0..BLOCK_WEIGHTS {
        y[2 + j] = cvtt((x[j] * id).round()) as i8 as u8;
    }
}

/// Encodes whole blocks (`quantize_row_q8_0_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    use super::super::kquant_lanes::avx2::*;
    use super::super::kquant_search::put_f16;
    use super::{BLOCK_BYTES, BLOCK_WEIGHTS};
    use std::arch::x86_64::*;

    /// C's `roundf` (half away from zero) on 8 lanes of values below 2^23 in magnitude.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn roundf(v: __m256) -> __m256 {
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
        let frac = abs(_mm256_sub_ps(v, t));
        let sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0));
        let one = _mm256_or_ps(_mm256_set1_ps(1.0), sign);
        let up = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
        _mm256_add_ps(t, _mm256_and_ps(up, one))
    }

    /// `quantize_row_q8_0_ref` of one block.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn block(x: &[f32], y: &mut [u8]) {
        let v = load4(x);
        let a = [abs(v[0]), abs(v[1]), abs(v[2]), abs(v[3])];
        let amax = hmax(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(y, 0, d);
        let idv = _mm256_set1_ps(id);
        let mut q = [_mm256_setzero_si256(); 4];
        for r in 0..4 {
            // The low byte of cvttps2dq, sign-extended, as C's (int8_t) conversion keeps it.
            let t = _mm256_cvttps_epi32(roundf(_mm256_mul_ps(v[r], idv)));
            q[r] = _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(t));
        }
        let a = _mm256_packs_epi32(q[0], q[1]);
        let b = _mm256_packs_epi32(q[2], q[3]);
        let p = _mm256_packs_epi16(a, b);
        let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(y[2..34].as_mut_ptr() as *mut __m256i, p);
    }

    /// `quantize_row_q8_0_ref` of 8 consecutive blocks: the reductions of the 8 blocks side by side
    /// (lane `k` = block `k`), then each block's 32 weights side by side.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn blocks8(x: &[f32], y: &mut [u8]) -> bool {
        let (x, y) = (&x[..8 * BLOCK_WEIGHTS], &mut y[..8 * BLOCK_BYTES]);
        let mut am = [_mm256_setzero_ps(); 8];
        for k in 0..8 {
            let v = load4(&x[32 * k..]);
            let a = [abs(v[0]), abs(v[1]), abs(v[2]), abs(v[3])];
            am[k] = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
        }
        // Exact maxima of non-negative values (NaN aside): ggml's `MAX(amax, fabsf(v))` loop.
        let amax = reduce8::<true>(&am);
        let mut bad = _mm256_cmp_ps::<_CMP_EQ_OQ>(amax, _mm256_set1_ps(f32::INFINITY));
        let d = _mm256_div_ps(amax, _mm256_set1_ps(127.0));
        let id = to_arr(inv_or_zero(d));
        let h = fp16x8(d);
        let (sign, half) = (_mm256_set1_ps(-0.0), _mm256_set1_ps(f32::from_bits(0x3EFF_FFFF)));
        for k in 0..8 {
            let (xb, yb) = (&x[32 * k..32 * k + 32], &mut y[34 * k..34 * k + 34]);
            yb[0..2].copy_from_slice(&h[k].to_le_bytes());
            let v = load4(xb);
            bad = nan4(bad, &v);
            let idv = _mm256_set1_ps(id[k]);
            let mut q = [_mm256_setzero_si256(); 4];
            for r in 0..4 {
                // (int8_t)roundf(v): adding the largest float below 0.5 with v's sign, then
                // truncating, gives cvtt(roundf(v)) for every f32 (checked over all 2^32).
                let m = _mm256_mul_ps(v[r], idv);
                q[r] = _mm256_cvttps_epi32(_mm256_add_ps(m, _mm256_or_ps(_mm256_and_ps(m, sign), half)));
            }
            _mm256_storeu_si256(yb[2..34].as_mut_ptr() as *mut __m256i, bytes32(&q));
        }
        _mm256_movemask_ps(bad) != 0
    }

    /// Returns whether the input may hold a NaN or an infinity.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn quantize(src: &[f32], dst: &mut [u8]) -> bool {
        by_eights(src, dst, (BLOCK_WEIGHTS, BLOCK_BYTES), |x, y| unsafe { blocks8(x, y) }, |x, y| block(x, y))
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

#[cfg(test)]
mod tests {
    use super::super::testutil::h;
    use super::*;

    #[test]
    fn hand_built_block() {
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(0.75));
        for j in 0..32 {
            b[2 + j] = (j as i32 * 8 - 128) as i8 as u8;
        }
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        for j in 0..32 {
            assert_eq!(y[j], (j as f32 * 8.0 - 128.0) * 0.75);
        }
    }
}
