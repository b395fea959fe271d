//! The K-quant scale searches of [`super::kquant_search`], run on 8 independent sub-blocks at
//! once ("lanes"): element `i` of sub-block `k` is lane `k` of vector `i`. Every lane performs exactly the
//! scalar reference's float operations in the reference's order (sums accumulate over `i` in
//! order, per lane); only independent sub-blocks are side by side, so the results are bit for bit
//! those of the scalar functions. Data-dependent branches of the reference become per-lane
//! selects: a lane whose branch is not taken keeps its values unchanged.
//!
//! The lanes are AVX2 registers (8 sub-blocks per `__m256`), used only after a run-time check
//! ([`use_avx2`]); otherwise the scalar reference runs. No FMA: every product and sum is its own
//! `_mm256_mul_ps` / `_mm256_add_ps`, rounded once, as in the C reference.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

/// `x[i][k] = src[k * N + i]`: `W` consecutive sub-blocks of `N` values as lanes.
#[inline(always)]
pub fn transpose_in<const N: usize, const W: usize>(src: &[f32]) -> [[f32; W]; N] {
    let src = &src[..N * W];
    let mut x = [[0f32; W]; N];
    for k in 0..W {
        for i in 0..N {
            x[i][k] = src[k * N + i];
        }
    }
    x
}

/// Whether the AVX2 build of the lane code may run (the CPU has AVX2 and F16C, as every AVX2 CPU
/// does, and the user did not force the scalar kernel).
#[inline]
pub fn use_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::kernels::active() != crate::Kernel::Scalar
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The same searches with explicit AVX2 intrinsics on 8 lanes (one `__m256` holds element `i` of
/// 8 independent sub-blocks). Quants are kept as exact small integers in `f32` lanes.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// ggml's `nearest_int` on 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn ni(v: __m256) -> __m256i {
        let t = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.0)));
        _mm256_sub_epi32(_mm256_and_si256(t, _mm256_set1_epi32(0x007f_ffff)), _mm256_set1_epi32(0x0040_0000))
    }

    /// `nearest_int(v)` clamped to `lo..=hi`, as exact `f32`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn ni_clamp(v: __m256, lo: i32, hi: i32) -> __m256 {
        let l = _mm256_max_epi32(_mm256_min_epi32(ni(v), _mm256_set1_epi32(hi)), _mm256_set1_epi32(lo));
        _mm256_cvtepi32_ps(l)
    }

    /// `clamp(nearest_int(v), lo, hi)` as exact `f32`, computed in floats: `(v + 1.5 * 2^23) -
    /// 1.5 * 2^23` is the same round-half-to-even integer that `nearest_int` reads from the bits,
    /// for `|v| <= 4194303`. Only for callers that guarantee that bound (the searches of
    /// `make_qx_quants`, where `|v| <= nmax + 1` since `|x| <= |max|`; lanes whose `max` is below
    /// `GROUP_MAX_EPS` are zeroed afterwards whatever they computed).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn rint_clamp(v: __m256, lo: __m256, hi: __m256) -> __m256 {
        let c = _mm256_set1_ps(12582912.0);
        _mm256_max_ps(_mm256_min_ps(_mm256_sub_ps(_mm256_add_ps(v, c), c), hi), lo)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn abs(v: __m256) -> __m256 {
        _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)))
    }

    /// `if c { a } else { b }` per lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn sel(c: __m256, a: __m256, b: __m256) -> __m256 {
        _mm256_blendv_ps(b, a, c)
    }

    /// [`sel`] for a value stored back where `b` was loaded from (`*p = if c { a } else { *p }`).
    /// LLVM turns that select-and-store into a masked store (`vmaskmovps`), which AMD CPUs run in
    /// microcode and which stalls the next load of `*p`; this blend is opaque to it and stays a
    /// register `vblendvps` followed by a plain store.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn sel_mem(c: __m256, a: __m256, b: __m256) -> __m256 {
        let r: __m256;
        std::arch::asm!(
            "vblendvps {r}, {b}, {a}, {c}",
            r = lateout(ymm_reg) r,
            a = in(ymm_reg) a,
            b = in(ymm_reg) b,
            c = in(ymm_reg) c,
            options(pure, nomem, nostack, preserves_flags),
        );
        r
    }

    /// Exact maximum of the 8 lanes (no NaN).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn hmax(v: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
        _mm_cvtss_f32(m)
    }

    /// Exact minimum of the 8 lanes (no NaN).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn hmin(v: __m256) -> f32 {
        let m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let m = _mm_min_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_min_ss(m, _mm_shuffle_ps::<1>(m, m));
        _mm_cvtss_f32(m)
    }

    /// Bit `8 * r + j` set where lane `j` of `c[r]` is true (one bit per weight of a 32-block).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn mask32(c: [__m256; 4]) -> u32 {
        (_mm256_movemask_ps(c[0]) as u32)
            | ((_mm256_movemask_ps(c[1]) as u32) << 8)
            | ((_mm256_movemask_ps(c[2]) as u32) << 16)
            | ((_mm256_movemask_ps(c[3]) as u32) << 24)
    }

    /// The 32 values of one legacy block in four registers (unaligned loads inside `x[..32]`).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn load4(x: &[f32]) -> [__m256; 4] {
        let x = &x[..32];
        [
            _mm256_loadu_ps(x.as_ptr()),
            _mm256_loadu_ps(x[8..].as_ptr()),
            _mm256_loadu_ps(x[16..].as_ptr()),
            _mm256_loadu_ps(x[24..].as_ptr()),
        ]
    }

    /// ggml's `max`: the first element whose |x| is the largest, or +0.0 if all are zero.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn signed_absmax(x: &[f32], v: &[__m256; 4]) -> f32 {
        let a = [abs(v[0]), abs(v[1]), abs(v[2]), abs(v[3])];
        let amax = hmax(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
        if amax == 0.0 {
            return 0.0;
        }
        let s = _mm256_set1_ps(amax);
        let hit = mask32([
            _mm256_cmp_ps::<_CMP_EQ_OQ>(a[0], s),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(a[1], s),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(a[2], s),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(a[3], s),
        ]);
        // hit == 0 only with NaN in the block (rejected by the caller, which checks afterwards).
        if hit == 0 {
            return amax;
        }
        x[hit.trailing_zeros() as usize]
    }

    /// ggml's sequential `min` and `max` (strict comparisons): exact values; a zero result is the
    /// first zero element, with its sign, as the C loop leaves it.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn min_max(x: &[f32], v: &[__m256; 4]) -> (f32, f32) {
        let mut min = hmin(_mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3])));
        let mut max = hmax(_mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3])));
        if min == 0.0 || max == 0.0 {
            let z = _mm256_setzero_ps();
            let hit = mask32([
                _mm256_cmp_ps::<_CMP_EQ_OQ>(v[0], z),
                _mm256_cmp_ps::<_CMP_EQ_OQ>(v[1], z),
                _mm256_cmp_ps::<_CMP_EQ_OQ>(v[2], z),
                _mm256_cmp_ps::<_CMP_EQ_OQ>(v[3], z),
            ]);
            // A zero min or max is one of the lanes, so hit != 0 (the guard is for NaN input,
            // which the caller rejects after encoding).
            let first_zero = if hit == 0 { 0.0 } else { x[hit.trailing_zeros() as usize] };
            if min == 0.0 {
                min = first_zero;
            }
            if max == 0.0 {
                max = first_zero;
            }
        }
        (min, max)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn minmax<const MAX: bool>(a: __m256, b: __m256) -> __m256 {
        if MAX {
            _mm256_max_ps(a, b)
        } else {
            _mm256_min_ps(a, b)
        }
    }

    /// Lane `k` of the result is the maximum (`MAX`) or minimum of the 8 lanes of `v[k]`: eight
    /// horizontal reductions at once, exact (no NaN; the sign of a zero result is unspecified).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn reduce8<const MAX: bool>(v: &[__m256; 8]) -> __m256 {
        // Pairs of rows interleaved: [a02 b02 a13 b13 | a46 b46 a57 b57] (a02 = op(a0, a2)).
        let mut t = [_mm256_setzero_ps(); 4];
        for p in 0..4 {
            let (a, b) = (v[2 * p], v[2 * p + 1]);
            t[p] = minmax::<MAX>(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
        }
        // Four rows: [a0123 b0123 c0123 d0123 | a4567 b4567 c4567 d4567].
        let u0 = minmax::<MAX>(_mm256_shuffle_ps::<0x44>(t[0], t[1]), _mm256_shuffle_ps::<0xEE>(t[0], t[1]));
        let u1 = minmax::<MAX>(_mm256_shuffle_ps::<0x44>(t[2], t[3]), _mm256_shuffle_ps::<0xEE>(t[2], t[3]));
        minmax::<MAX>(_mm256_permute2f128_ps::<0x20>(u0, u1), _mm256_permute2f128_ps::<0x31>(u0, u1))
    }

    /// ggml's `GGML_FP32_TO_FP16` of 8 lanes: F16C's round-to-nearest-even conversion, which gives
    /// the bits of ggml's software conversion for every non-NaN `f32` (checked over all 2^32).
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn fp16x8(v: __m256) -> [u16; 8] {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
        let mut a = [0u16; 8];
        _mm_storeu_si128(a.as_mut_ptr() as *mut __m128i, h);
        a
    }

    /// The fp16 `a` and `b` of each of 8 lanes as one little-endian `u32`: `a` in the low half
    /// (a `_1` block's `d, m` header).
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn fp16_pairs8(a: __m256, b: __m256) -> [u32; 8] {
        let ha = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(a);
        let hb = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(b);
        let mut r = [0u32; 8];
        _mm_storeu_si128(r.as_mut_ptr() as *mut __m128i, _mm_unpacklo_epi16(ha, hb));
        _mm_storeu_si128(r[4..].as_mut_ptr() as *mut __m128i, _mm_unpackhi_epi16(ha, hb));
        r
    }

    /// `if d != 0 { 1 / d } else { 0 }` per lane (ggml's `id = d ? 1.0f/d : 0.0f`).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn inv_or_zero(d: __m256) -> __m256 {
        let nz = _mm256_cmp_ps::<_CMP_NEQ_UQ>(d, _mm256_setzero_ps());
        _mm256_and_ps(nz, _mm256_div_ps(_mm256_set1_ps(1.0), d))
    }

    /// Lanes where one of the four vectors is NaN (accumulated into `acc`).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn nan4(acc: __m256, v: &[__m256; 4]) -> __m256 {
        let a = _mm256_cmp_ps::<_CMP_UNORD_Q>(v[0], v[1]);
        let b = _mm256_cmp_ps::<_CMP_UNORD_Q>(v[2], v[3]);
        _mm256_or_ps(acc, _mm256_or_ps(a, b))
    }

    /// Per legacy block `k` of `x[32 * k..32 * k + 32]` (8 blocks), lane `k` of (maximum, minimum),
    /// and lanes that are true where block `k` holds an infinity, provided it holds no NaN (the
    /// caller screens for NaN with [`nan4`]). The sign of a zero result is unspecified.
    #[inline(always)]
    pub unsafe fn block_max_min8(x: &[f32]) -> (__m256, __m256, __m256) {
        let x = &x[..256];
        let (mut mx, mut mn) = ([_mm256_setzero_ps(); 8], [_mm256_setzero_ps(); 8]);
        for k in 0..8 {
            let v = load4(&x[32 * k..]);
            mx[k] = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
            mn[k] = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
        }
        let (mx, mn) = (reduce8::<true>(&mx), reduce8::<false>(&mn));
        // Without NaN, an infinity is the maximum or the minimum of its block.
        let inf = _mm256_set1_ps(f32::INFINITY);
        let bad = _mm256_or_ps(
            _mm256_cmp_ps::<_CMP_EQ_OQ>(mx, inf),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(mn, _mm256_xor_ps(inf, _mm256_set1_ps(-0.0))),
        );
        (mx, mn, bad)
    }

    /// [`signed_absmax`] of 8 consecutive legacy blocks (lane `k` = block `k`), the non-finite
    /// screen of [`block_max_min8_bits`] or [`block_max_min8`], and whether it was the former (exact,
    /// NaN included).
    #[inline(always)]
    pub unsafe fn signed_absmax8(x: &[f32]) -> (__m256, __m256, bool) {
        let (mx, mn, bad, exact) = match block_max_min8_bits(x) {
            Some((a, b, c)) => (a, b, c, true),
            None => {
                let (a, b, c) = block_max_min8_cold(x);
                (a, b, c, false)
            }
        };
        let sign = _mm256_set1_ps(-0.0);
        let amax = _mm256_max_ps(mx, _mm256_xor_ps(mn, sign));
        let pos = _mm256_cmp_ps::<_CMP_EQ_OQ>(mx, amax);
        let neg = _mm256_cmp_ps::<_CMP_EQ_OQ>(mn, _mm256_xor_ps(amax, sign));
        let zero = _mm256_cmp_ps::<_CMP_EQ_OQ>(amax, _mm256_setzero_ps());
        // Only +amax or only -amax occurs: that value; all zero: +0.0 (the C loop never updates).
        let m = _mm256_andnot_ps(zero, sel(neg, mn, mx));
        // Both +amax and -amax occur: the first one wins, found as the scalar loop does.
        let tie = _mm256_movemask_ps(_mm256_andnot_ps(zero, _mm256_and_ps(pos, neg)));
        if tie == 0 {
            return (m, bad, exact);
        }
        (signed_absmax_ties(x, m, tie), bad, exact)
    }

    /// `m` with lane `k` replaced by [`signed_absmax`] of block `k` where bit `k` of `tie` is set.
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx2")]
    unsafe fn signed_absmax_ties(x: &[f32], m: __m256, tie: i32) -> __m256 {
        let mut a = to_arr(m);
        for k in 0..8 {
            if tie & (1 << k) != 0 {
                let xb = &x[32 * k..32 * k + 32];
                a[k] = signed_absmax(xb, &load4(xb));
            }
        }
        _mm256_loadu_ps(a.as_ptr())
    }

    /// [`min_max`] of 8 consecutive legacy blocks (lane `k` = block `k`): (min, max, the screen and
    /// its exactness as in [`signed_absmax8`]).
    #[inline(always)]
    pub unsafe fn min_max8(x: &[f32]) -> (__m256, __m256, __m256, bool) {
        let (mx, mn, bad, exact) = match block_max_min8_bits(x) {
            Some((a, b, c)) => (a, b, c, true),
            None => {
                let (a, b, c) = block_max_min8_cold(x);
                (a, b, c, false)
            }
        };
        let z = _mm256_setzero_ps();
        // A zero min or max carries the sign of the block's first zero: the scalar search finds it.
        let zero =
            _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(mx, z), _mm256_cmp_ps::<_CMP_EQ_OQ>(mn, z)));
        if zero == 0 {
            return (mn, mx, bad, exact);
        }
        let (mn, mx) = min_max_zeros(x, mn, mx, zero);
        (mn, mx, bad, exact)
    }

    /// [`block_max_min8`] out of line, for the rare groups [`block_max_min8_bits`] does not take.
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx2")]
    unsafe fn block_max_min8_cold(x: &[f32]) -> (__m256, __m256, __m256) {
        block_max_min8(x)
    }

    /// Lane `k` of the result is the maximum of the 8 i32 (or, `UNSIGNED`, u32) lanes of `v[k]`.
    #[inline(always)]
    unsafe fn reduce8_bits<const UNSIGNED: bool>(v: &[__m256i; 8]) -> __m256i {
        let op = |a, b| if UNSIGNED { _mm256_max_epu32(a, b) } else { _mm256_max_epi32(a, b) };
        let mut t = [_mm256_setzero_si256(); 4];
        for p in 0..4 {
            let (a, b) = (v[2 * p], v[2 * p + 1]);
            t[p] = op(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
        }
        let u0 = op(_mm256_unpacklo_epi64(t[0], t[1]), _mm256_unpackhi_epi64(t[0], t[1]));
        let u1 = op(_mm256_unpacklo_epi64(t[2], t[3]), _mm256_unpackhi_epi64(t[2], t[3]));
        op(_mm256_permute2x128_si256::<0x20>(u0, u1), _mm256_permute2x128_si256::<0x31>(u0, u1))
    }

    /// [`block_max_min8`] on the float bits with integer maxima, which leaves the float
    /// add/compare pipes to the per-weight pass: the largest bits as i32 are the largest value with
    /// a clear sign bit, which is the block's maximum when the block holds one; the largest bits as
    /// u32 are the most negative value, the block's minimum when the block holds a value with the
    /// sign bit set. `None` when some block lacks either (all of one sign: the caller takes
    /// [`block_max_min8`]). Unlike [`block_max_min8`]'s, the screen is exact: true in the lanes of
    /// the blocks that hold a NaN or an infinity (either then comes out as the maximum or minimum).
    #[inline(always)]
    pub unsafe fn block_max_min8_bits(x: &[f32]) -> Option<(__m256, __m256, __m256)> {
        let x = &x[..256];
        let (mut s, mut u) = ([_mm256_setzero_si256(); 8], [_mm256_setzero_si256(); 8]);
        for k in 0..8 {
            let p = x[32 * k..32 * k + 32].as_ptr() as *const __m256i;
            let v = [
                _mm256_loadu_si256(p),
                _mm256_loadu_si256(p.add(1)),
                _mm256_loadu_si256(p.add(2)),
                _mm256_loadu_si256(p.add(3)),
            ];
            s[k] = _mm256_max_epi32(_mm256_max_epi32(v[0], v[1]), _mm256_max_epi32(v[2], v[3]));
            u[k] = _mm256_max_epu32(_mm256_max_epu32(v[0], v[1]), _mm256_max_epu32(v[2], v[3]));
        }
        let (mx, mn) = (reduce8_bits::<false>(&s), reduce8_bits::<true>(&u));
        // Every block must hold a value with the sign bit clear (mx's sign clear) and one with it
        // set (mn's sign set).
        if _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(mx, mn))) != 0xFF {
            return None;
        }
        // Every NaN and infinity: bits above the largest finite value's, with either sign.
        let ninf = _mm256_set1_epi32(0xff80_0000u32 as i32);
        let bad = _mm256_or_si256(
            _mm256_cmpgt_epi32(mx, _mm256_set1_epi32(0x7f7f_ffff)),
            _mm256_cmpeq_epi32(_mm256_max_epu32(mn, ninf), mn),
        );
        Some((_mm256_castsi256_ps(mx), _mm256_castsi256_ps(mn), _mm256_castsi256_ps(bad)))
    }

    /// `(mn, mx)` with lane `k` replaced by [`min_max`] of block `k` where bit `k` of `zero` is set.
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx2")]
    unsafe fn min_max_zeros(x: &[f32], mn: __m256, mx: __m256, zero: i32) -> (__m256, __m256) {
        let (mut a, mut b) = (to_arr(mn), to_arr(mx));
        for k in 0..8 {
            if zero & (1 << k) != 0 {
                let xb = &x[32 * k..32 * k + 32];
                (a[k], b[k]) = min_max(xb, &load4(xb));
            }
        }
        (_mm256_loadu_ps(a.as_ptr()), _mm256_loadu_ps(b.as_ptr()))
    }

    /// `x` itself, but the compiler no longer knows that: loads through the result are not merged
    /// with earlier loads of the same values. The 8-block encoders read each block twice (the
    /// reductions, then the weights); merged, the first loads' 32 registers would be kept alive and
    /// spilled to the stack (32 extra stores per 8 blocks) instead of re-read from L1.
    #[inline(always)]
    #[allow(clippy::pointers_in_nomem_asm_block)] // the asm neither reads nor writes through `p`
    pub fn opaque(x: &[f32]) -> &[f32] {
        let mut p = x.as_ptr();
        // SAFETY: an empty asm block that only "modifies" the register holding `p`.
        unsafe { std::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags)) };
        // SAFETY: `p` is `x.as_ptr()` unchanged.
        unsafe { std::slice::from_raw_parts(p, x.len()) }
    }

    /// The driver of the legacy encoders: `blocks8` over each run of 8 whole blocks of `bw` weights
    /// and `bb` bytes, then `block` and a finiteness check over the blocks left. Returns whether the
    /// input may hold a NaN or an infinity.
    #[inline(always)]
    pub unsafe fn by_eights(
        src: &[f32],
        dst: &mut [u8],
        (bw, bb): (usize, usize),
        blocks8: impl Fn(&[f32], &mut [u8]) -> bool,
        block: impl Fn(&[f32], &mut [u8]),
    ) -> bool {
        let mut bad = false;
        let mut xs = src.chunks_exact(8 * bw);
        let mut ys = dst.chunks_exact_mut(8 * bb);
        for (x, y) in (&mut xs).zip(&mut ys) {
            bad |= blocks8(x, y);
        }
        for (x, y) in xs.remainder().chunks_exact(bw).zip(ys.into_remainder().chunks_exact_mut(bb)) {
            block(x, y);
            bad |= maybe_non_finite(x);
        }
        bad
    }

    /// Whether the 32 values of a legacy block may hold a NaN or an infinity.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn maybe_non_finite(x: &[f32]) -> bool {
        let mut acc = _mm256_setzero_si256();
        for v in load4(x) {
            acc = _mm256_max_epu32(acc, _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7fff_ffff)));
        }
        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(acc, _mm256_set1_epi32(0x7f7f_ffff)))) != 0
    }

    /// Whether `x` holds a NaN or an infinity (exact), 32 values per step.
    #[target_feature(enable = "avx2")]
    pub unsafe fn any_non_finite(x: &[f32]) -> bool {
        let mask = _mm256_set1_epi32(0x7fff_ffff);
        let mut acc = _mm256_setzero_si256();
        let mut chunks = x.chunks_exact(32);
        for c in &mut chunks {
            for v in load4(c) {
                acc = _mm256_max_epu32(acc, _mm256_and_si256(_mm256_castps_si256(v), mask));
            }
        }
        let big = _mm256_cmpgt_epi32(acc, _mm256_set1_epi32(0x7f7f_ffff));
        _mm256_movemask_ps(_mm256_castsi256_ps(big)) != 0 || chunks.remainder().iter().any(|v| !v.is_finite())
    }

    /// The low bytes of the 32 i32 lanes of `q` (elements 0..32 of a block), in order.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn bytes32(q: &[__m256i; 4]) -> __m256i {
        let ff = _mm256_set1_epi32(0xFF);
        let a = _mm256_packus_epi32(_mm256_and_si256(q[0], ff), _mm256_and_si256(q[1], ff));
        let b = _mm256_packus_epi32(_mm256_and_si256(q[2], ff), _mm256_and_si256(q[3], ff));
        let p = _mm256_packus_epi16(a, b);
        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// 16 bytes `lo[j] | (hi[j] & 0x0F) << 4` from bytes 0..16 (`lo`) and 16..32 (`hi`) of `b`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn nibbles(b: __m256i) -> __m128i {
        let hi = _mm_and_si128(_mm256_extracti128_si256::<1>(b), _mm_set1_epi8(0x0F));
        _mm_or_si128(_mm256_castsi256_si128(b), _mm_slli_epi16::<4>(hi))
    }

    /// Bit `j` set where bit 4 of byte `j` of `b` is.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn bit4_mask(b: __m256i) -> u32 {
        _mm256_movemask_epi8(_mm256_slli_epi16::<3>(b)) as u32
    }

    /// Stores 32 four-bit quants (bytes of `b`, high bits clear) as ggml's `qs[16]` nibbles.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn put_q4(b: __m256i, qs: &mut [u8]) {
        _mm_storeu_si128(qs[..16].as_mut_ptr() as *mut __m128i, nibbles(b));
    }

    /// Stores 32 five-bit quants (bytes of `b`) as ggml's `qh: u32` then `qs[16]` (20 bytes).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn put_q5(b: __m256i, y: &mut [u8]) {
        y[..4].copy_from_slice(&bit4_mask(b).to_le_bytes());
        put_q4(_mm256_and_si256(b, _mm256_set1_epi8(0x0F)), &mut y[4..20]);
    }

    /// The truncated quants `q` of one legacy block (elements 0..32, i32 lanes) as i16 by signed
    /// saturation, `(elements 0-3 8-11 | 4-7 12-15, elements 16-19 24-27 | 20-23 28-31)`, or-ed
    /// into `neg`. A finite lane is a small non-negative integer (below 34: `|x * id|` is at most
    /// the format's range), which C's `(int8_t)` keeps. The 0x80000000 that `cvttps` makes of a NaN
    /// or infinite value becomes -32768, which every packer below stores as 0 (with its partner
    /// nibble); C stores 0 for it too, and with finite inputs such lanes only come from an
    /// infinite `id` (a subnormal `d`: every lane of the block) or, in the `_1` formats, from
    /// `max - min` overflowing (then `id` is 0 and every other lane is 0 as well), so the bytes are
    /// C's. With a NaN input they may differ, so a caller without an exact NaN screen redoes the
    /// group exactly when `neg` has a sign bit (and reports it).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn quants_i16(q: &[__m256i; 4], neg: &mut __m256i) -> (__m256i, __m256i) {
        let (a, b) = (_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        *neg = _mm256_or_si256(*neg, _mm256_or_si256(a, b));
        (a, b)
    }

    /// Whether one of the i16 lanes or-ed into `neg` by [`quants_i16`] was negative.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn any_neg_i16(neg: __m256i) -> bool {
        _mm256_movemask_epi8(neg) as u32 & 0xAAAA_AAAA != 0
    }

    /// Stores the quants of [`quants_i16`] of two blocks `a` and `b` (`(lo, hi)`: elements `j` and
    /// `j + 16`), at most `nmax` each (ggml's `MIN(nmax, q)`; 4-bit quants need one of at most 15),
    /// as `BITS`-bit quants (4: [`put_q4`]'s layout, 5: [`put_q5`]'s). Bytes first: the saturating
    /// packs keep 0..=255 and make a negative quant (the i16 -32768 of an out-of-range conversion)
    /// 0, so capping the bytes gives the bytes of the capped i16 lanes; 4-bit quants of both blocks
    /// are then paired into nibbles and ordered at once.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn put_quants_i16_pair<const BITS: u32>(
        a: (__m256i, __m256i),
        b: (__m256i, __m256i),
        nmax: Option<i8>,
        ya: &mut [u8],
        yb: &mut [u8],
    ) {
        let cap = |v| match nmax {
            Some(n) => _mm256_min_epu8(v, _mm256_set1_epi8(n)),
            None => v,
        };
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        if BITS == 4 {
            // Bytes of elements j < 16 of a and b, then of elements j + 16, in the same positions;
            // at most 15, so the 16-bit shift moves nothing across bytes.
            let lo = cap(_mm256_packus_epi16(a.0, b.0));
            let hi = cap(_mm256_packus_epi16(a.1, b.1));
            let p = _mm256_permutevar8x32_epi32(_mm256_or_si256(lo, _mm256_slli_epi16::<4>(hi)), order);
            _mm_storeu_si128(ya[..16].as_mut_ptr() as *mut __m128i, _mm256_castsi256_si128(p));
            _mm_storeu_si128(yb[..16].as_mut_ptr() as *mut __m128i, _mm256_extracti128_si256::<1>(p));
        } else {
            put_q5(cap(_mm256_permutevar8x32_epi32(_mm256_packus_epi16(a.0, a.1), order)), ya);
            put_q5(cap(_mm256_permutevar8x32_epi32(_mm256_packus_epi16(b.0, b.1), order)), yb);
        }
    }

    /// Stores 32 quants (bytes of `b`) as `BITS`-bit quants ([`put_q4`] or [`put_q5`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn put_bytes<const BITS: u32>(b: __m256i, y: &mut [u8]) {
        if BITS == 4 {
            put_q4(b, y)
        } else {
            put_q5(b, y)
        }
    }

    /// `quantize_row_q{4,5}_0_ref` of 8 consecutive blocks, first half: per block (lane `k` = block
    /// `k`), from the signed absolute maximum, `d = max / div`, `id`, the fp16 `d`, the non-finite
    /// screen and its exactness.
    pub struct AbsMax8 {
        id: [f32; 8],
        h: [u16; 8],
        bad: __m256,
        exact: bool,
    }

    /// The reduction and division of [`AbsMax8`] for the 8 blocks of `x[..256]`.
    #[inline(always)]
    pub unsafe fn absmax_stats8(x: &[f32], div: f32) -> AbsMax8 {
        let (max, bad, exact) = signed_absmax8(&x[..8 * 32]);
        let d = _mm256_div_ps(max, _mm256_set1_ps(div));
        AbsMax8 { id: to_arr(inv_or_zero(d)), h: fp16x8(d), bad, exact }
    }

    /// The second half, given [`absmax_stats8`]: each block's 32 weights side by side,
    /// `MIN(nmax, (int8_t)(x * id + offset))`, stored as `BITS`-bit quants after the fp16 `d`.
    /// Returns whether the input may hold a NaN or an infinity.
    #[inline(always)]
    pub unsafe fn absmax_emit8<const BITS: u32>(
        x: &[f32],
        y: &mut [u8],
        bb: usize,
        (offset, nmax): (f32, i8),
        s: &AbsMax8,
    ) -> bool {
        let (x, y) = (&x[..8 * 32], &mut y[..8 * bb]);
        let xo = opaque(x);
        let run = (bb, &s.id, &s.h, (offset, nmax));
        let mut neg = _mm256_setzero_si256();
        if s.exact {
            // `bad` already covers NaN, and without one the saturating packs store C's bytes
            // (see `quants_i16`): `neg` is not needed (and, unread, not computed).
            absmax_run::<BITS>(xo, y, run, &mut neg);
            return _mm256_movemask_ps(s.bad) != 0;
        }
        absmax_run::<BITS>(xo, y, run, &mut neg);
        if any_neg_i16(neg) {
            return absmax_exact8::<BITS>(x, y, bb, &s.id, (offset, nmax), s.bad);
        }
        _mm256_movemask_ps(s.bad) != 0
    }

    /// The per-weight pass of [`absmax_emit8`], or-ing the quants into `neg` (see [`quants_i16`]).
    #[inline(always)]
    unsafe fn absmax_run<const BITS: u32>(
        xo: &[f32],
        y: &mut [u8],
        (bb, id, h, (offset, nmax)): (usize, &[f32; 8], &[u16; 8], (f32, i8)),
        neg: &mut __m256i,
    ) {
        for k in (0..8).step_by(2) {
            let (ya, yb) = y[bb * k..bb * (k + 2)].split_at_mut(bb);
            ya[0..2].copy_from_slice(&h[k].to_le_bytes());
            yb[0..2].copy_from_slice(&h[k + 1].to_le_bytes());
            let a = quants_i16(&scaled_quants(&xo[32 * k..32 * k + 32], id[k], offset), neg);
            let b = quants_i16(&scaled_quants(&xo[32 * k + 32..32 * k + 64], id[k + 1], offset), neg);
            put_quants_i16_pair::<BITS>(a, b, Some(nmax), &mut ya[2..], &mut yb[2..]);
        }
    }

    /// The per-weight part of [`absmax_emit8`] with every lane exactly as C converts it, for a
    /// group of 8 blocks that holds a NaN or an infinity (or whose `id` is infinite).
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn absmax_exact8<const BITS: u32>(
        x: &[f32],
        y: &mut [u8],
        bb: usize,
        id: &[f32; 8],
        (offset, nmax): (f32, i8),
        mut bad: __m256,
    ) -> bool {
        let c = _mm256_set1_ps(offset);
        for k in 0..8 {
            let (xb, yb) = (&x[32 * k..32 * k + 32], &mut y[bb * k..bb * (k + 1)]);
            let v = load4(xb);
            bad = nan4(bad, &v);
            let idv = _mm256_set1_ps(id[k]);
            let mut q = [_mm256_setzero_si256(); 4];
            for r in 0..4 {
                q[r] = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[r], idv), c));
            }
            // MIN(nmax, (int8_t)t) on the low bytes, as signed bytes.
            put_bytes::<BITS>(_mm256_min_epi8(bytes32(&q), _mm256_set1_epi8(nmax)), &mut yb[2..]);
        }
        _mm256_movemask_ps(bad) != 0
    }

    /// `quantize_row_q{4,5}_1_ref` of 8 consecutive blocks, first half: per block (lane `k` = block
    /// `k`), from the minimum and maximum, `d = (max - min) / div`, `id`, `min`, the fp16 header,
    /// the non-finite screen and its exactness.
    pub struct MinMax8 {
        id: [f32; 8],
        mins: [f32; 8],
        hdr: [u32; 8],
        bad: __m256,
        exact: bool,
    }

    /// The reductions and divisions of [`MinMax8`] for the 8 blocks of `x[..256]`.
    #[inline(always)]
    pub unsafe fn min_max_stats8(x: &[f32], div: f32) -> MinMax8 {
        let (min, max, bad, exact) = min_max8(&x[..8 * 32]);
        let d = _mm256_div_ps(_mm256_sub_ps(max, min), _mm256_set1_ps(div));
        MinMax8 { id: to_arr(inv_or_zero(d)), mins: to_arr(min), hdr: fp16_pairs8(d, min), bad, exact }
    }

    /// The second half, given [`min_max_stats8`]: each block's 32 weights side by side,
    /// `(int8_t)((x - min) * id + 0.5)` capped at `cap` if given (Q4_1's `MIN(15, ..)`; Q5_1 keeps
    /// the low byte), stored as `BITS`-bit quants after the fp16 `d` and `min`. Returns whether the
    /// input may hold a NaN or an infinity.
    #[inline(always)]
    pub unsafe fn min_max_emit8<const BITS: u32>(
        x: &[f32],
        y: &mut [u8],
        bb: usize,
        cap: Option<i8>,
        s: &MinMax8,
    ) -> bool {
        let (x, y) = (&x[..8 * 32], &mut y[..8 * bb]);
        let xo = opaque(x);
        let run = (bb, (&s.id, &s.mins), &s.hdr, cap);
        let mut neg = _mm256_setzero_si256();
        if s.exact {
            // As in `absmax_emit8`: `bad` already covers NaN.
            min_max_run::<BITS>(xo, y, run, &mut neg);
            return _mm256_movemask_ps(s.bad) != 0;
        }
        min_max_run::<BITS>(xo, y, run, &mut neg);
        if any_neg_i16(neg) {
            return min_max_exact8::<BITS>(x, y, bb, (&s.id, &s.mins), cap, s.bad);
        }
        _mm256_movemask_ps(s.bad) != 0
    }

    /// How many groups of 8 legacy blocks ahead the pipelined encoders prefetch their input.
    const PREFETCH_GROUPS: usize = 2;

    /// Prefetches `x` into L1: `4 * x.len() / 64` cache lines from its start.
    #[inline(always)]
    pub unsafe fn prefetch_l1(x: &[f32]) {
        let p = x.as_ptr() as *const i8;
        for l in 0..4 * x.len() / 64 {
            _mm_prefetch::<_MM_HINT_T0>(p.add(64 * l));
        }
    }

    /// A legacy encoder of 8 blocks split in two halves for [`pipelined_by_eights`]: `stats` (the
    /// reductions and divisions) and `emit` (the per-weight pass, returning whether the input may
    /// hold a NaN or an infinity). Methods rather than closures: `#[inline(always)]` puts them in
    /// the caller's AVX2 code (a closure would be compiled without its target features).
    pub trait Halves8 {
        type Stats;
        /// Bytes per encoded block.
        fn block_bytes(&self) -> usize;
        unsafe fn stats(&self, x: &[f32]) -> Self::Stats;
        unsafe fn emit(&self, x: &[f32], y: &mut [u8], s: &Self::Stats) -> bool;
    }

    /// [`by_eights`] for encoders split in [`Halves8`], software-pipelined: `stats` of the next 8
    /// blocks is issued before `emit` of the current 8, whose stores then do not wait on it; the
    /// input is prefetched [`PREFETCH_GROUPS`] groups ahead. The same bytes and result as
    /// `by_eights` with `blocks8 = emit(stats)`.
    #[inline(always)]
    pub unsafe fn pipelined_by_eights<H: Halves8>(
        src: &[f32],
        dst: &mut [u8],
        h: H,
        block: impl Fn(&[f32], &mut [u8]),
    ) -> bool {
        let bb = h.block_bytes();
        let n8 = (src.len() / 256).min(dst.len() / (8 * bb));
        let mut bad = false;
        if n8 > 0 {
            let mut cur = h.stats(&src[..256]);
            for g in 1..n8 {
                if g + PREFETCH_GROUPS < n8 {
                    prefetch_l1(&src[256 * (g + PREFETCH_GROUPS)..][..256]);
                }
                let next = h.stats(&src[256 * g..256 * g + 256]);
                bad |= h.emit(&src[256 * (g - 1)..], &mut dst[8 * bb * (g - 1)..], &cur);
                cur = next;
            }
            bad |= h.emit(&src[256 * (n8 - 1)..], &mut dst[8 * bb * (n8 - 1)..], &cur);
        }
        let rest = src.len() / 32 - 8 * n8;
        for (x, y) in src[256 * n8..].chunks_exact(32).zip(dst[8 * bb * n8..].chunks_exact_mut(bb)).take(rest) {
            block(x, y);
            bad |= maybe_non_finite(x);
        }
        bad
    }

    /// [`min_max_stats8`] and [`min_max_emit8`] as [`Halves8`]: `(bb, (div, cap))`.
    pub struct MinMaxHalves<const BITS: u32>(pub usize, pub (f32, Option<i8>));
    impl<const BITS: u32> Halves8 for MinMaxHalves<BITS> {
        type Stats = MinMax8;
        #[inline(always)]
        fn block_bytes(&self) -> usize {
            self.0
        }
        #[inline(always)]
        unsafe fn stats(&self, x: &[f32]) -> MinMax8 {
            min_max_stats8(x, self.1 .0)
        }
        #[inline(always)]
        unsafe fn emit(&self, x: &[f32], y: &mut [u8], s: &MinMax8) -> bool {
            min_max_emit8::<BITS>(x, y, self.0, self.1 .1, s)
        }
    }

    /// [`absmax_stats8`] and [`absmax_emit8`] as [`Halves8`]: `(bb, (div, offset, nmax))`.
    pub struct AbsMaxHalves<const BITS: u32>(pub usize, pub (f32, f32, i8));
    impl<const BITS: u32> Halves8 for AbsMaxHalves<BITS> {
        type Stats = AbsMax8;
        #[inline(always)]
        fn block_bytes(&self) -> usize {
            self.0
        }
        #[inline(always)]
        unsafe fn stats(&self, x: &[f32]) -> AbsMax8 {
            absmax_stats8(x, self.1 .0)
        }
        #[inline(always)]
        unsafe fn emit(&self, x: &[f32], y: &mut [u8], s: &AbsMax8) -> bool {
            absmax_emit8::<BITS>(x, y, self.0, (self.1 .1, self.1 .2), s)
        }
    }

    /// The per-weight pass of [`min_max_emit8`], or-ing the quants into `neg`.
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    unsafe fn min_max_run<const BITS: u32>(
        xo: &[f32],
        y: &mut [u8],
        (bb, (id, mins), hdr, cap): (usize, (&[f32; 8], &[f32; 8]), &[u32; 8], Option<i8>),
        neg: &mut __m256i,
    ) {
        for k in (0..8).step_by(2) {
            let (ya, yb) = y[bb * k..bb * (k + 2)].split_at_mut(bb);
            // One 4-byte store of the fp16 `d` and `min` per block (two 2-byte ones cost ~10%).
            ya[0..4].copy_from_slice(&hdr[k].to_le_bytes());
            yb[0..4].copy_from_slice(&hdr[k + 1].to_le_bytes());
            let a = quants_i16(&min_quants(&xo[32 * k..32 * k + 32], id[k], mins[k]), neg);
            let b = quants_i16(&min_quants(&xo[32 * k + 32..32 * k + 64], id[k + 1], mins[k + 1]), neg);
            put_quants_i16_pair::<BITS>(a, b, cap, &mut ya[4..], &mut yb[4..]);
        }
    }

    /// `x * id + offset` of one legacy block, truncated (`cvttps`).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn scaled_quants(xb: &[f32], id: f32, offset: f32) -> [__m256i; 4] {
        let v = load4(xb);
        let (idv, c) = (_mm256_set1_ps(id), _mm256_set1_ps(offset));
        let mut q = [_mm256_setzero_si256(); 4];
        for r in 0..4 {
            q[r] = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[r], idv), c));
        }
        q
    }

    /// `(x - min) * id + 0.5` of one legacy block, truncated (`cvttps`).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn min_quants(xb: &[f32], id: f32, min: f32) -> [__m256i; 4] {
        let v = load4(xb);
        let (idv, minv, c) = (_mm256_set1_ps(-id), _mm256_set1_ps(min), _mm256_set1_ps(0.5));
        let mut q = [_mm256_setzero_si256(); 4];
        for r in 0..4 {
            // `(min - x) * -id` is `(x - min) * id` bit for bit (round-to-nearest-even is symmetric
            // under negation) but for the sign of a zero, which the `+ 0.5` erases; `x` as the second
            // operand of the subtraction lets its load fold into it.
            q[r] = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(minv, v[r]), idv), c));
        }
        q
    }

    /// The per-weight part of [`min_max_emit8`] with every lane exactly as C converts it, for a
    /// group of 8 blocks that holds a NaN or an infinity (or whose `id` is infinite).
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn min_max_exact8<const BITS: u32>(
        x: &[f32],
        y: &mut [u8],
        bb: usize,
        (id, mins): (&[f32; 8], &[f32; 8]),
        cap: Option<i8>,
        mut bad: __m256,
    ) -> bool {
        for k in 0..8 {
            let (xb, yb) = (&x[32 * k..32 * k + 32], &mut y[bb * k..bb * (k + 1)]);
            bad = nan4(bad, &load4(xb));
            let b = bytes32(&min_quants(xb, id[k], mins[k]));
            put_bytes::<BITS>(cap.map_or(b, |n| _mm256_min_epi8(b, _mm256_set1_epi8(n))), &mut yb[4..]);
        }
        _mm256_movemask_ps(bad) != 0
    }

    /// Bit 4 of each i32 lane moved to the sign bit (for `movemask`).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn bit4(q: __m256i) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<27>(q))
    }

    /// C's float -> `int8_t` conversion as gcc compiles it (`cvttss2si`, then the low byte,
    /// sign-extended), on 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn to_i8_trunc(v: __m256) -> __m256i {
        _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(_mm256_cvttps_epi32(v)))
    }

    /// The low bytes of the 16 i32 lanes of `a` (elements 0..8) and `b` (8..16), in order.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn bytes16(a: __m256i, b: __m256i) -> __m128i {
        let ff = _mm256_set1_epi32(0xFF);
        let w = _mm256_packus_epi32(_mm256_and_si256(a, ff), _mm256_and_si256(b, ff));
        let w = _mm256_permute4x64_epi64::<0xD8>(w);
        _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w))
    }

    /// The 16 sub-blocks of 16 weights of a block as two groups of 8 lanes (sub-block `8g + k` in
    /// lane `k` of group `g`; vector `i` holds each one's weight `i`).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn halves16(x: &[f32]) -> [[__m256; 16]; 2] {
        let xt = transpose_in8::<16, 16>(x);
        [load_rows(&xt, 0), load_rows(&xt, 8)]
    }

    /// The K-quants' second pass in weight order, for sub-blocks of `S` weights (16 or 32): byte
    /// `S * j + i` is `clamp(nearest_int(v / d[j]), lo, hi) + off` with `v = x[S * j + i]`, or
    /// `v = x[S * j + i] + m[j]` when `m` is given, as ggml's loops compute it (each weight's own
    /// add and division). Sub-blocks with `d[j] == 0`, which ggml skips, keep the quants of the
    /// search: byte `S * j + i` is then `search(j, i)`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn requant_bytes<const S: usize>(
        x: &[f32],
        d: &[f32],
        m: Option<&[f32]>,
        lo: i32,
        hi: i32,
        off: i32,
        search: impl Fn(usize, usize) -> u8,
    ) -> [u8; 256] {
        let x = &x[..256];
        let mut out = [0u8; 256];
        let (lov, hiv, offv) = (_mm256_set1_epi32(lo), _mm256_set1_epi32(hi), _mm256_set1_epi32(off));
        for j in 0..256 / S {
            if d[j] == 0.0 {
                for i in 0..S {
                    out[S * j + i] = search(j, i);
                }
                continue;
            }
            let dv = _mm256_set1_ps(d[j]);
            let mut q = [_mm256_setzero_si256(); 4];
            for r in 0..S / 8 {
                let mut v = _mm256_loadu_ps(x[S * j + 8 * r..].as_ptr());
                if let Some(m) = m {
                    v = _mm256_add_ps(v, _mm256_set1_ps(m[j]));
                }
                let l = _mm256_max_epi32(_mm256_min_epi32(ni(_mm256_div_ps(v, dv)), hiv), lov);
                q[r] = _mm256_add_epi32(l, offv);
            }
            if S == 32 {
                _mm256_storeu_si256(out[32 * j..].as_mut_ptr() as *mut __m256i, bytes32(&q));
            } else {
                // Small non-negative values: the saturating packs keep them.
                let p = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(q[0], q[1]));
                let b = _mm_packs_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256::<1>(p));
                _mm_storeu_si128(out[16 * j..].as_mut_ptr() as *mut __m128i, b);
            }
        }
        out
    }

    /// `G` groups of `N` rows as `N` rows of `G` (for the `_g` searches).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn group<const N: usize, const G: usize>(h: &[[__m256; N]; G]) -> [[__m256; G]; N] {
        let mut r = [[_mm256_setzero_ps(); G]; N];
        for i in 0..N {
            for g in 0..G {
                r[i][g] = h[g][i];
            }
        }
        r
    }

    /// Groups `g0` and `g0 + 1` of `N` rows of `G` as two groups of rows (the inverse of [`group`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn ungroup2<const N: usize, const G: usize>(p: &[[__m256; G]; N], g0: usize) -> [[__m256; N]; 2] {
        let mut r = [[_mm256_setzero_ps(); N]; 2];
        for i in 0..N {
            r[0][i] = p[i][g0];
            r[1][i] = p[i][g0 + 1];
        }
        r
    }

    /// Loads lanes `off..off + 8` of every row.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn load_rows<const N: usize, const W: usize>(x: &[[f32; W]; N], off: usize) -> [__m256; N] {
        let mut v = [_mm256_setzero_ps(); N];
        for i in 0..N {
            v[i] = _mm256_loadu_ps(x[i][off..off + 8].as_ptr());
        }
        v
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn to_arr(v: __m256) -> [f32; 8] {
        let mut a = [0f32; 8];
        _mm256_storeu_ps(a.as_mut_ptr(), v);
        a
    }

    /// The transpose of 8 rows of 8 lanes: lane `k` of result `i` is lane `i` of `r[k]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn transpose8(r: &[__m256; 8]) -> [__m256; 8] {
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let s = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        [
            _mm256_permute2f128_ps::<0x20>(s[0], s[4]),
            _mm256_permute2f128_ps::<0x20>(s[1], s[5]),
            _mm256_permute2f128_ps::<0x20>(s[2], s[6]),
            _mm256_permute2f128_ps::<0x20>(s[3], s[7]),
            _mm256_permute2f128_ps::<0x31>(s[0], s[4]),
            _mm256_permute2f128_ps::<0x31>(s[1], s[5]),
            _mm256_permute2f128_ps::<0x31>(s[2], s[6]),
            _mm256_permute2f128_ps::<0x31>(s[3], s[7]),
        ]
    }

    /// [`super::transpose_in`] with 8x8 register transposes (`N` and `W` multiples of 8): the same
    /// values, moved by shuffles instead of one insert per value.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn transpose_in8<const N: usize, const W: usize>(src: &[f32]) -> [[f32; W]; N] {
        let src = &src[..N * W];
        let mut x = [[0f32; W]; N];
        for i0 in (0..N).step_by(8) {
            for k0 in (0..W).step_by(8) {
                let mut r = [_mm256_setzero_ps(); 8];
                for k in 0..8 {
                    r[k] = _mm256_loadu_ps(src[(k0 + k) * N + i0..][..8].as_ptr());
                }
                let c = transpose8(&r);
                for i in 0..8 {
                    _mm256_storeu_ps(x[i0 + i][k0..k0 + 8].as_mut_ptr(), c[i]);
                }
            }
        }
        x
    }

    /// `make_qkx2_quants` on 8 sub-blocks of `N` values; `lq` receives the quants (as f32).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn make_qkx2<const N: usize>(
        x: &[__m256; N],
        weights: &[__m256; N],
        lq: &mut [__m256; N],
        nmax: i32,
        rmin: f32,
        rdelta: f32,
        nstep: i32,
        use_mad: bool,
    ) -> (__m256, __m256) {
        make_qkx::<N, false>(x, weights, lq, nmax, rmin, rdelta, nstep, use_mad)
    }

    /// `make_qkx3_quants` (with weights) on 8 sub-blocks of `N` values.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn make_qkx3<const N: usize>(
        x: &[__m256; N],
        weights: &[__m256; N],
        lq: &mut [__m256; N],
        nmax: i32,
        rmin: f32,
        rdelta: f32,
        nstep: i32,
        use_mad: bool,
    ) -> (__m256, __m256) {
        make_qkx::<N, true>(x, weights, lq, nmax, rmin, rdelta, nstep, use_mad)
    }

    /// The two searches differ only in the degenerate test (`max == min` / `max <= min`) and in
    /// how a trial quant is formed (`clamp(nearest_int(v))` / `v > 0 ? nearest_int(min(v, nmax)) : 0`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn make_qkx<const N: usize, const QKX3: bool>(
        x: &[__m256; N],
        weights: &[__m256; N],
        lq: &mut [__m256; N],
        nmax: i32,
        rmin: f32,
        rdelta: f32,
        nstep: i32,
        use_mad: bool,
    ) -> (__m256, __m256) {
        let zero = _mm256_setzero_ps();
        let mut min = x[0];
        let mut max = x[0];
        let mut sum_w = weights[0];
        let mut sum_x = _mm256_mul_ps(sum_w, x[0]);
        for i in 1..N {
            let v = x[i];
            min = sel(_mm256_cmp_ps::<_CMP_LT_OQ>(v, min), v, min);
            max = sel(_mm256_cmp_ps::<_CMP_GT_OQ>(v, max), v, max);
            let w = weights[i];
            sum_w = _mm256_add_ps(sum_w, w);
            sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w, v));
        }
        min = sel(_mm256_cmp_ps::<_CMP_GT_OQ>(min, zero), zero, min);
        let degenerate =
            if QKX3 { _mm256_cmp_ps::<_CMP_LE_OQ>(max, min) } else { _mm256_cmp_ps::<_CMP_EQ_OQ>(max, min) };
        let min0 = min;
        let nmaxf = _mm256_set1_ps(nmax as f32);
        let iscale = _mm256_div_ps(nmaxf, _mm256_sub_ps(max, min));
        let mut scale = _mm256_div_ps(_mm256_set1_ps(1.0), iscale);
        let mut best_error = zero;
        for i in 0..N {
            let lf = ni_clamp(_mm256_mul_ps(iscale, _mm256_sub_ps(x[i], min)), 0, nmax);
            lq[i] = lf;
            let mut diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, lf), min), x[i]);
            diff = if use_mad { abs(diff) } else { _mm256_mul_ps(diff, diff) };
            best_error = _mm256_add_ps(best_error, _mm256_mul_ps(weights[i], diff));
        }
        let mut laux = [zero; N];
        for is in 0..=nstep {
            let num = _mm256_set1_ps(rmin + rdelta * is as f32 + nmax as f32);
            let iscale = _mm256_div_ps(num, _mm256_sub_ps(max, min));
            let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
            for i in 0..N {
                let v = _mm256_mul_ps(iscale, _mm256_sub_ps(x[i], min));
                let lf = if QKX3 {
                    let l = _mm256_cvtepi32_ps(ni(_mm256_min_ps(v, nmaxf)));
                    _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, zero), l)
                } else {
                    ni_clamp(v, 0, nmax)
                };
                laux[i] = lf;
                let wl = _mm256_mul_ps(weights[i], lf);
                sum_l = _mm256_add_ps(sum_l, wl);
                sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, lf));
                sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, x[i]));
            }
            let d = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
            let dpos = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
            let ts = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), d);
            let tm = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), d);
            let clip = _mm256_cmp_ps::<_CMP_GT_OQ>(tm, zero);
            let this_min = sel(clip, zero, tm);
            let this_scale = sel(clip, _mm256_div_ps(sum_xl, sum_l2), ts);
            let mut cur_error = zero;
            for i in 0..N {
                let mut diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, laux[i]), this_min), x[i]);
                diff = if use_mad { abs(diff) } else { _mm256_mul_ps(diff, diff) };
                cur_error = _mm256_add_ps(cur_error, _mm256_mul_ps(weights[i], diff));
            }
            let take = _mm256_and_ps(dpos, _mm256_cmp_ps::<_CMP_LT_OQ>(cur_error, best_error));
            if _mm256_movemask_ps(take) != 0 {
                for i in 0..N {
                    lq[i] = sel_mem(take, laux[i], lq[i]);
                }
                best_error = sel(take, cur_error, best_error);
                scale = sel(take, this_scale, scale);
                min = sel(take, this_min, min);
            }
        }
        if _mm256_movemask_ps(degenerate) != 0 {
            for q in lq.iter_mut() {
                *q = sel_mem(degenerate, zero, *q);
            }
            scale = sel(degenerate, zero, scale);
            min = sel(degenerate, min0, min);
        }
        (scale, _mm256_xor_ps(min, _mm256_set1_ps(-0.0)))
    }

    /// The importance-weighted search of 8 consecutive legacy blocks of 32 (one block per lane):
    /// weights `qw * sqrt(sigma2 + x^2)`, then `make_qkx3_quants(32, nmax, .., -0.9, 0.05, 36)`
    /// (`asym`, Q4_1 / Q5_1: returns d and `the_min`) or `make_qx_quants(32, nmax, .., 1, w)`
    /// (Q4_0 / Q5_0: returns d). The quants of block `k` are `L[k]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn legacy_imatrix8(
        x: &[f32],
        qw: &[f32],
        sigma2: f32,
        nmax: i32,
        asym: bool,
    ) -> ([f32; 8], [f32; 8], [[u8; 32]; 8]) {
        let xv = load_rows(&transpose_in8::<32, 8>(x), 0);
        let qv = load_rows(&transpose_in8::<32, 8>(qw), 0);
        let s2 = _mm256_set1_ps(sigma2);
        let mut w = [_mm256_setzero_ps(); 32];
        for i in 0..32 {
            w[i] = _mm256_mul_ps(qv[i], _mm256_sqrt_ps(_mm256_add_ps(s2, _mm256_mul_ps(xv[i], xv[i]))));
        }
        let mut lq = [_mm256_setzero_ps(); 32];
        let (d, m) = if asym {
            make_qkx3(&xv, &w, &mut lq, nmax, -0.9, 0.05, 36, false)
        } else {
            (make_qx(&xv, &w, &mut lq, nmax), _mm256_setzero_ps())
        };
        let mut l = [[0u8; 32]; 8];
        for i in 0..32 {
            let a = to_arr(lq[i]);
            for k in 0..8 {
                l[k][i] = a[k] as u8;
            }
        }
        (to_arr(d), to_arr(m), l)
    }

    /// Helpers for `G` groups of 8 lanes: the groups are independent sets of sub-blocks,
    /// interleaved so that their accumulation chains overlap in the pipeline.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn any<const G: usize>(m: &[__m256; G]) -> bool {
        let mut r = 0;
        for v in m {
            r |= _mm256_movemask_ps(*v);
        }
        r != 0
    }

    /// [`make_qkx2`] / [`make_qkx3`] on `G` groups of 8 sub-blocks at once.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn make_qkx_g<const N: usize, const G: usize, const QKX3: bool>(
        x: &[[__m256; G]; N],
        weights: &[[__m256; G]; N],
        lq: &mut [[__m256; G]; N],
        nmax: i32,
        rmin: f32,
        rdelta: f32,
        nstep: i32,
        use_mad: bool,
    ) -> ([__m256; G], [__m256; G]) {
        let zero = _mm256_setzero_ps();
        let mut min = x[0];
        let mut max = x[0];
        let mut sum_w = weights[0];
        let mut sum_x = [zero; G];
        for g in 0..G {
            sum_x[g] = _mm256_mul_ps(sum_w[g], x[0][g]);
        }
        for i in 1..N {
            for g in 0..G {
                let v = x[i][g];
                min[g] = sel(_mm256_cmp_ps::<_CMP_LT_OQ>(v, min[g]), v, min[g]);
                max[g] = sel(_mm256_cmp_ps::<_CMP_GT_OQ>(v, max[g]), v, max[g]);
                let w = weights[i][g];
                sum_w[g] = _mm256_add_ps(sum_w[g], w);
                sum_x[g] = _mm256_add_ps(sum_x[g], _mm256_mul_ps(w, v));
            }
        }
        let mut degenerate = [zero; G];
        for g in 0..G {
            min[g] = sel(_mm256_cmp_ps::<_CMP_GT_OQ>(min[g], zero), zero, min[g]);
            degenerate[g] = if QKX3 {
                _mm256_cmp_ps::<_CMP_LE_OQ>(max[g], min[g])
            } else {
                _mm256_cmp_ps::<_CMP_EQ_OQ>(max[g], min[g])
            };
        }
        let min0 = min;
        let nmaxf = _mm256_set1_ps(nmax as f32);
        let mut iscale = [zero; G];
        let mut scale = [zero; G];
        for g in 0..G {
            iscale[g] = _mm256_div_ps(nmaxf, _mm256_sub_ps(max[g], min[g]));
            scale[g] = _mm256_div_ps(_mm256_set1_ps(1.0), iscale[g]);
        }
        let mut best_error = [zero; G];
        for i in 0..N {
            for g in 0..G {
                let lf = ni_clamp(_mm256_mul_ps(iscale[g], _mm256_sub_ps(x[i][g], min[g])), 0, nmax);
                lq[i][g] = lf;
                let mut diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale[g], lf), min[g]), x[i][g]);
                diff = if use_mad { abs(diff) } else { _mm256_mul_ps(diff, diff) };
                best_error[g] = _mm256_add_ps(best_error[g], _mm256_mul_ps(weights[i][g], diff));
            }
        }
        let mut laux = [[zero; G]; N];
        for is in 0..=nstep {
            let num = _mm256_set1_ps(rmin + rdelta * is as f32 + nmax as f32);
            let mut isc = [zero; G];
            for g in 0..G {
                isc[g] = _mm256_div_ps(num, _mm256_sub_ps(max[g], min[g]));
            }
            let (mut sum_l, mut sum_l2, mut sum_xl) = ([zero; G], [zero; G], [zero; G]);
            for i in 0..N {
                for g in 0..G {
                    let v = _mm256_mul_ps(isc[g], _mm256_sub_ps(x[i][g], min[g]));
                    let lf = if QKX3 {
                        let l = _mm256_cvtepi32_ps(ni(_mm256_min_ps(v, nmaxf)));
                        _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, zero), l)
                    } else {
                        ni_clamp(v, 0, nmax)
                    };
                    laux[i][g] = lf;
                    let wl = _mm256_mul_ps(weights[i][g], lf);
                    sum_l[g] = _mm256_add_ps(sum_l[g], wl);
                    sum_l2[g] = _mm256_add_ps(sum_l2[g], _mm256_mul_ps(wl, lf));
                    sum_xl[g] = _mm256_add_ps(sum_xl[g], _mm256_mul_ps(wl, x[i][g]));
                }
            }
            let mut this_scale = [zero; G];
            let mut this_min = [zero; G];
            let mut dpos = [zero; G];
            for g in 0..G {
                let d = _mm256_sub_ps(_mm256_mul_ps(sum_w[g], sum_l2[g]), _mm256_mul_ps(sum_l[g], sum_l[g]));
                dpos[g] = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
                let ts = _mm256_div_ps(
                    _mm256_sub_ps(_mm256_mul_ps(sum_w[g], sum_xl[g]), _mm256_mul_ps(sum_x[g], sum_l[g])),
                    d,
                );
                let tm = _mm256_div_ps(
                    _mm256_sub_ps(_mm256_mul_ps(sum_l2[g], sum_x[g]), _mm256_mul_ps(sum_l[g], sum_xl[g])),
                    d,
                );
                let clip = _mm256_cmp_ps::<_CMP_GT_OQ>(tm, zero);
                this_min[g] = sel(clip, zero, tm);
                this_scale[g] = sel(clip, _mm256_div_ps(sum_xl[g], sum_l2[g]), ts);
            }
            let mut cur_error = [zero; G];
            for i in 0..N {
                for g in 0..G {
                    let mut diff =
                        _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale[g], laux[i][g]), this_min[g]), x[i][g]);
                    diff = if use_mad { abs(diff) } else { _mm256_mul_ps(diff, diff) };
                    cur_error[g] = _mm256_add_ps(cur_error[g], _mm256_mul_ps(weights[i][g], diff));
                }
            }
            let mut take = [zero; G];
            for g in 0..G {
                take[g] = _mm256_and_ps(dpos[g], _mm256_cmp_ps::<_CMP_LT_OQ>(cur_error[g], best_error[g]));
            }
            if any(&take) {
                for i in 0..N {
                    for g in 0..G {
                        lq[i][g] = sel_mem(take[g], laux[i][g], lq[i][g]);
                    }
                }
                for g in 0..G {
                    best_error[g] = sel(take[g], cur_error[g], best_error[g]);
                    scale[g] = sel(take[g], this_scale[g], scale[g]);
                    min[g] = sel(take[g], this_min[g], min[g]);
                }
            }
        }
        if any(&degenerate) {
            for q in lq.iter_mut() {
                for g in 0..G {
                    q[g] = sel_mem(degenerate[g], zero, q[g]);
                }
            }
            for g in 0..G {
                scale[g] = sel(degenerate[g], zero, scale[g]);
                min[g] = sel(degenerate[g], min0[g], min[g]);
            }
        }
        let mut the_min = [zero; G];
        for g in 0..G {
            the_min[g] = _mm256_xor_ps(min[g], _mm256_set1_ps(-0.0));
        }
        (scale, the_min)
    }

    /// [`make_qx`] on `G` groups of 8 sub-blocks at once.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn make_qx_g<const N: usize, const G: usize>(
        x: &[[__m256; G]; N],
        w: &[[__m256; G]; N],
        lq: &mut [[__m256; G]; N],
        nmax: i32,
    ) -> [__m256; G] {
        let zero = _mm256_setzero_ps();
        let mut max = [zero; G];
        let mut amax = [zero; G];
        for i in 0..N {
            for g in 0..G {
                let ax = abs(x[i][g]);
                let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(ax, amax[g]);
                amax[g] = sel(gt, ax, amax[g]);
                max[g] = sel(gt, x[i][g], max[g]);
            }
        }
        let nmaxv = _mm256_set1_ps(nmax as f32);
        let mut iscale = [zero; G];
        for g in 0..G {
            iscale[g] = _mm256_div_ps(_mm256_set1_ps((-nmax) as f32), max[g]);
        }
        let (lo, hi) = (_mm256_set1_ps((-nmax) as f32), _mm256_set1_ps((nmax - 1) as f32));
        // `w * x * l` is `(w * x) * l`: the product `w * x` is the same in every trial.
        let mut wx = [[zero; G]; N];
        for i in 0..N {
            for g in 0..G {
                wx[i][g] = _mm256_mul_ps(w[i][g], x[i][g]);
            }
        }
        let (mut sumlx, mut suml2) = ([zero; G], [zero; G]);
        for i in 0..N {
            for g in 0..G {
                let lf = rint_clamp(_mm256_mul_ps(iscale[g], x[i][g]), lo, hi);
                lq[i][g] = _mm256_add_ps(lf, nmaxv);
                sumlx[g] = _mm256_add_ps(sumlx[g], _mm256_mul_ps(wx[i][g], lf));
                suml2[g] = _mm256_add_ps(suml2[g], _mm256_mul_ps(_mm256_mul_ps(w[i][g], lf), lf));
            }
        }
        let mut scale = [zero; G];
        let mut best = [zero; G];
        for g in 0..G {
            let nz = _mm256_cmp_ps::<_CMP_NEQ_UQ>(suml2[g], zero);
            scale[g] = sel(nz, _mm256_div_ps(sumlx[g], suml2[g]), zero);
            best[g] = _mm256_mul_ps(scale[g], sumlx[g]);
        }
        let mut cand = [[zero; G]; N];
        for is in -9i32..=9 {
            if is == 0 {
                continue;
            }
            let num = _mm256_set1_ps(-(nmax as f32 + 0.1f32 * is as f32));
            let mut isc = [zero; G];
            for g in 0..G {
                isc[g] = _mm256_div_ps(num, max[g]);
            }
            let (mut slx, mut sl2) = ([zero; G], [zero; G]);
            for i in 0..N {
                for g in 0..G {
                    let lf = rint_clamp(_mm256_mul_ps(isc[g], x[i][g]), lo, hi);
                    cand[i][g] = lf;
                    slx[g] = _mm256_add_ps(slx[g], _mm256_mul_ps(wx[i][g], lf));
                    sl2[g] = _mm256_add_ps(sl2[g], _mm256_mul_ps(_mm256_mul_ps(w[i][g], lf), lf));
                }
            }
            let mut take = [zero; G];
            for g in 0..G {
                take[g] = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(sl2[g], zero),
                    _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_mul_ps(slx[g], slx[g]), _mm256_mul_ps(best[g], sl2[g])),
                );
            }
            if any(&take) {
                for i in 0..N {
                    for g in 0..G {
                        lq[i][g] = sel_mem(take[g], _mm256_add_ps(cand[i][g], nmaxv), lq[i][g]);
                    }
                }
                for g in 0..G {
                    scale[g] = sel(take[g], _mm256_div_ps(slx[g], sl2[g]), scale[g]);
                    best[g] = sel(take[g], _mm256_mul_ps(scale[g], slx[g]), best[g]);
                }
            }
        }
        let eps = _mm256_set1_ps(super::super::kquant_search::GROUP_MAX_EPS);
        let mut small = [zero; G];
        for g in 0..G {
            small[g] = _mm256_cmp_ps::<_CMP_LT_OQ>(amax[g], eps);
        }
        if any(&small) {
            for q in lq.iter_mut() {
                for g in 0..G {
                    q[g] = sel_mem(small[g], zero, q[g]);
                }
            }
            for g in 0..G {
                scale[g] = sel_mem(small[g], zero, scale[g]);
            }
        }
        scale
    }

    /// The start of `make_q3_quants(N, nmax, x, L, do_rmse = true)` on `G` groups of 8 sub-blocks:
    /// the signed absolute maximum, the first quants (`lq`, as f32, without the `nmax` offset) and
    /// their sums `sumlx`, `suml2`. Returns `(sumlx, suml2, small)`, `small` true in the lanes whose
    /// maximum is below `GROUP_MAX_EPS` (ggml returns zeros at once for them; here their values are
    /// meaningless and the caller must zero them). Then up to five [`q3_pass`]es, each only for the
    /// lanes that changed in the one before; the scale is `sumlx / suml2` if `suml2 > 0`, else 0.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn q3_start<const N: usize, const G: usize>(
        x: &[[__m256; G]; N],
        lq: &mut [[__m256; G]; N],
        nmax: i32,
    ) -> ([__m256; G], [__m256; G], [__m256; G]) {
        let zero = _mm256_setzero_ps();
        let mut max = [zero; G];
        let mut amax = [zero; G];
        for i in 0..N {
            for g in 0..G {
                let ax = abs(x[i][g]);
                let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(ax, amax[g]);
                amax[g] = sel(gt, ax, amax[g]);
                max[g] = sel(gt, x[i][g], max[g]);
            }
        }
        let mut iscale = [zero; G];
        for g in 0..G {
            iscale[g] = _mm256_div_ps(_mm256_set1_ps((-nmax) as f32), max[g]);
        }
        let (mut sumlx, mut suml2) = ([zero; G], [zero; G]);
        for i in 0..N {
            for g in 0..G {
                let lf = ni_clamp(_mm256_mul_ps(iscale[g], x[i][g]), -nmax, nmax - 1);
                lq[i][g] = lf;
                let w = _mm256_mul_ps(x[i][g], x[i][g]);
                sumlx[g] = _mm256_add_ps(sumlx[g], _mm256_mul_ps(_mm256_mul_ps(w, x[i][g]), lf));
                suml2[g] = _mm256_add_ps(suml2[g], _mm256_mul_ps(_mm256_mul_ps(w, lf), lf));
            }
        }
        let eps = _mm256_set1_ps(super::super::kquant_search::GROUP_MAX_EPS);
        let mut small = [zero; G];
        for g in 0..G {
            small[g] = _mm256_cmp_ps::<_CMP_LT_OQ>(amax[g], eps);
        }
        (sumlx, suml2, small)
    }

    /// One pass of `make_q3_quants`'s refinement loop (`for i in 0..n`) on `G` groups of 8
    /// sub-blocks. Returns the lanes where some quant changed (ggml's `n_changed != 0`): only they
    /// need another pass, which would change nothing in the others.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn q3_pass<const N: usize, const G: usize>(
        x: &[[__m256; G]; N],
        lq: &mut [[__m256; G]; N],
        sumlx: &mut [__m256; G],
        suml2: &mut [__m256; G],
        nmax: i32,
    ) -> [__m256; G] {
        let zero = _mm256_setzero_ps();
        let mut changed = [zero; G];
        for i in 0..N {
            for g in 0..G {
                let (xv, lf) = (x[i][g], lq[i][g]);
                let wk = _mm256_mul_ps(xv, xv);
                let wx = _mm256_mul_ps(wk, xv);
                let slx0 = _mm256_sub_ps(sumlx[g], _mm256_mul_ps(wx, lf));
                let sl20 = _mm256_sub_ps(suml2[g], _mm256_mul_ps(_mm256_mul_ps(wk, lf), lf));
                let nl = ni_clamp(_mm256_div_ps(_mm256_mul_ps(xv, sl20), slx0), -nmax, nmax - 1);
                let slx = _mm256_add_ps(slx0, _mm256_mul_ps(wx, nl));
                let sl2 = _mm256_add_ps(sl20, _mm256_mul_ps(_mm256_mul_ps(wk, nl), nl));
                let c1 = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(slx0, zero), _mm256_cmp_ps::<_CMP_NEQ_OQ>(nl, lf));
                let lhs = _mm256_mul_ps(_mm256_mul_ps(slx, slx), suml2[g]);
                let rhs = _mm256_mul_ps(_mm256_mul_ps(sumlx[g], sumlx[g]), sl2);
                let c2 = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(sl2, zero), _mm256_cmp_ps::<_CMP_GT_OQ>(lhs, rhs));
                let accept = _mm256_and_ps(c1, c2);
                lq[i][g] = sel_mem(accept, nl, lf);
                sumlx[g] = sel(accept, slx, sumlx[g]);
                suml2[g] = sel(accept, sl2, suml2[g]);
                changed[g] = _mm256_or_ps(changed[g], accept);
            }
        }
        changed
    }

    /// `make_qx_quants(N, nmax, x, L, rmse_type = 1, qw)` on 8 sub-blocks (`w` = `qw` or `x * x`);
    /// `lq` receives `nmax + l` (as f32). Returns the scale.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn make_qx<const N: usize>(x: &[__m256; N], w: &[__m256; N], lq: &mut [__m256; N], nmax: i32) -> __m256 {
        let (xg, wg) = (group(&[*x]), group(&[*w]));
        let mut lg = [[_mm256_setzero_ps(); 1]; N];
        let scale = make_qx_g::<N, 1>(&xg, &wg, &mut lg, nmax);
        for i in 0..N {
            lq[i] = lg[i][0];
        }
        scale[0]
    }
}
