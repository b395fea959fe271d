//! x86-64 AVX-512 (F + BW) kernels (one function per format). Each is
//! `#[target_feature(enable = "avx512f,avx512bw")]` and reached only through [`decoder`], which
//! hands them out only after [`supported`] said yes.
//!
//! They are the AVX2 kernels of [`super::avx2`] widened to 16 lanes, with the same rules: quants
//! widened to 32-bit lanes and converted exactly, the scalar code's float operations in its order
//! (no fused multiply-add, products rounded before sums), scales through `vcvtph2ps` (which
//! quiets a signalling NaN, as the multiplication that every block format applies to its scales
//! does anyway), and the F16 format through the portable conversion for any 32 values holding a
//! NaN (so signalling NaNs stay signalling). Single bits of the quants (Q5_0, Q5_1, Q5_K, Q3_K's
//! high bits) become lane masks (`k` registers) instead of shifted vectors.
//!
//! Loads are unaligned and never reach past the input; each block is read only inside its own
//! bytes. Large outputs (the AVX2 threshold, [`super::avx2::STREAM_MIN_BYTES`]) are written with
//! non-temporal stores: 64-byte ones where the output is 64-byte aligned, pairs of 32-byte ones
//! where it is 32-byte aligned; the values written are the same.
//!
//! AVX-512 intrinsics are stable since Rust 1.89 (the crate's `rust-version`). This machine has no
//! AVX-512: the kernels are tested under the Bochs emulator by `.ci/bochs-avx512`.

// Index loops mirror the block layouts (h, g, k are positions, not just iteration).
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::{portable_values, u16_at, u32_at};
use crate::formats::DecodeFn;
use crate::QuantType;

/// Whether this CPU runs the AVX-512 kernels (F and BW, with the OS saving the registers).
pub fn supported() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
}

/// The AVX-512 decoder of a format, if there is one (never on a CPU without AVX-512 F + BW).
pub fn decoder(qtype: QuantType) -> Option<DecodeFn> {
    if !supported() {
        return None;
    }
    Some(match qtype {
        QuantType::F32 => f32_copy,
        QuantType::F16 => f16,
        QuantType::BF16 => bf16,
        QuantType::Q4_0 => q4_0,
        QuantType::Q4_1 => q4_1,
        QuantType::Q5_0 => q5_0,
        QuantType::Q5_1 => q5_1,
        QuantType::Q8_0 => q8_0,
        QuantType::Q2_K => q2_k,
        QuantType::Q3_K => q3_k,
        QuantType::Q4_K => q4_k,
        QuantType::Q5_K => q5_k,
        QuantType::Q6_K => q6_k,
    })
}

/// Plain (unaligned) stores.
const PLAIN: u8 = 0;
/// 64-byte streaming stores (the output is 64-byte aligned).
const STREAM64: u8 = 1;
/// Pairs of 32-byte streaming stores (the output is 32-byte aligned).
const STREAM32: u8 = 2;

/// How to write `dst`: streaming stores for large 32- or 64-byte aligned outputs, as the AVX2
/// kernels decide (same threshold).
fn store_kind(dst: &[f32]) -> u8 {
    let addr = dst.as_ptr() as usize;
    if std::mem::size_of_val(dst) < super::avx2::stream_min_bytes() {
        PLAIN
    } else if addr.is_multiple_of(64) {
        STREAM64
    } else if addr.is_multiple_of(32) {
        STREAM32
    } else {
        PLAIN
    }
}

/// The safe wrapper of a block kernel: checks the lengths, picks the store kind.
macro_rules! block_decoder {
    ($(#[$doc:meta])* $name:ident => $kernel:ident, $bytes:expr, $weights:expr) => {
        $(#[$doc])*
        fn $name(src: &[u8], dst: &mut [f32]) {
            let nb = src.len() / $bytes;
            assert!(dst.len() >= nb * $weights, "output too short for {} blocks", nb);
            // SAFETY: `decoder` hands this function out only where `supported()` (AVX-512 F + BW);
            // the kernel reads `nb` whole blocks of `src` and writes `nb * weights` floats of `dst`,
            // both checked above.
            unsafe {
                let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
                match store_kind(dst) {
                    STREAM64 => {
                        $kernel::<STREAM64>(s, d, nb);
                        _mm_sfence();
                    }
                    STREAM32 => {
                        $kernel::<STREAM32>(s, d, nb);
                        _mm_sfence();
                    }
                    _ => $kernel::<PLAIN>(s, d, nb),
                }
            }
        }
    };
}

block_decoder!(
    /// Q4_0: `y = (q - 8) * d`.
    q4_0 => q4_0_avx512, 18, 32
);
block_decoder!(
    /// Q4_1: `y = q * d + m`.
    q4_1 => q4_1_avx512, 20, 32
);
block_decoder!(
    /// Q5_0: `y = (q - 16) * d`.
    q5_0 => q5_0_avx512, 22, 32
);
block_decoder!(
    /// Q5_1: `y = q * d + m`.
    q5_1 => q5_1_avx512, 24, 32
);
block_decoder!(
    /// Q8_0: `y = q * d`.
    q8_0 => q8_0_avx512, 34, 32
);
block_decoder!(
    /// Q2_K: `y = (d * sc) * q - dmin * m`.
    q2_k => q2_k_avx512, 84, 256
);
block_decoder!(
    /// Q3_K: `y = (d * s) * q`.
    q3_k => q3_k_avx512, 110, 256
);
block_decoder!(
    /// Q4_K: `y = (d * sc) * q - dmin * m`.
    q4_k => q4_k_avx512, 144, 256
);
block_decoder!(
    /// Q5_K: `y = (d * sc) * q - dmin * m`.
    q5_k => q5_k_avx512, 176, 256
);
block_decoder!(
    /// Q6_K: `y = (d * sc) * q`.
    q6_k => q6_k_avx512, 210, 256
);
block_decoder!(
    /// F16: exact widening, signalling NaNs kept.
    f16 => f16_avx512, 2, 1
);
block_decoder!(
    /// BF16: a shift.
    bf16 => bf16_avx512, 2, 1
);
block_decoder!(
    /// F32: a copy of the little-endian bytes (x86-64 is little-endian), 32 values at a time.
    f32_copy => f32_avx512, 4, 1
);

// ---------------------------------------------------------------------------------------------
// Helpers. All `#[inline]` with the same target features, so they inline into the kernels.

/// Stores 16 floats at `p`: unaligned ([`PLAIN`]), or streaming to a 64-byte ([`STREAM64`]) or
/// 32-byte ([`STREAM32`]) aligned `p`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn st<const ST: u8>(p: *mut f32, v: __m512) {
    if ST == STREAM64 {
        _mm512_stream_ps(p, v)
    } else if ST == STREAM32 {
        _mm256_stream_ps(p, _mm512_castps512_ps256(v));
        _mm256_stream_ps(p.add(8), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))));
    } else {
        _mm512_storeu_ps(p, v)
    }
}

/// The fp16 at `p` (2 bytes, little-endian) in all 16 lanes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn h_bcast(p: *const u8) -> __m512 {
    let h = p.cast::<u16>().read_unaligned();
    _mm512_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// The 16 bytes at `p`, zero-extended to 32-bit lanes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn u8x16(p: *const u8) -> __m512i {
    _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast::<__m128i>()))
}

/// The 16 bytes at `p`, sign-extended to 32-bit lanes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn i8x16(p: *const u8) -> __m512i {
    _mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast::<__m128i>()))
}

/// Lane `i` of `v` in all 16 lanes.
#[target_feature(enable = "avx512f")]
#[inline]
fn lane(v: __m512, i: i32) -> __m512 {
    _mm512_permutexvar_ps(_mm512_set1_epi32(i), v)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn and(a: __m512i, b: __m512i) -> __m512i {
    _mm512_and_si512(a, b)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn or(a: __m512i, b: __m512i) -> __m512i {
    _mm512_or_si512(a, b)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn splat(x: i32) -> __m512i {
    _mm512_set1_epi32(x)
}

/// `a >> n` in each 32-bit lane (logical).
#[target_feature(enable = "avx512f")]
#[inline]
fn shr(a: __m512i, n: u32) -> __m512i {
    _mm512_srlv_epi32(a, _mm512_set1_epi32(n as i32))
}

/// Lanes as f32 (exact: all are small integers).
#[target_feature(enable = "avx512f")]
#[inline]
fn fl(a: __m512i) -> __m512 {
    _mm512_cvtepi32_ps(a)
}

/// `x * d` (one rounding).
#[target_feature(enable = "avx512f")]
#[inline]
fn mul(a: __m512, b: __m512) -> __m512 {
    _mm512_mul_ps(a, b)
}

/// `a * b - c`, two roundings in that order (never fused).
#[target_feature(enable = "avx512f")]
#[inline]
fn mul_sub(a: __m512, b: __m512, c: __m512) -> __m512 {
    _mm512_sub_ps(_mm512_mul_ps(a, b), c)
}

/// `p + m` as the portable code computes it, for a product `p` and an offset `m` (both quiet,
/// being results of `vcvtph2ps` or a multiplication). With a NaN `m` (`NAN_M`), the NaN lanes are
/// set explicitly to what x86 returns for the portable `p + m`: p's NaN if p is one, else m's. An
/// addition may be commuted by the compiler, and subtracting instead (as the AVX2 kernel does)
/// relies on `vsubps` returning the second operand's NaN unchanged, which the Bochs emulator that
/// tests these kernels gets wrong (it flips its sign).
#[target_feature(enable = "avx512f")]
#[inline]
fn add_m<const NAN_M: bool>(p: __m512, m: __m512) -> __m512 {
    let r = _mm512_add_ps(p, m);
    if NAN_M {
        let p_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(p, p);
        _mm512_mask_mov_ps(_mm512_mask_mov_ps(r, !p_nan, m), p_nan, p)
    } else {
        r
    }
}

/// Bytes of a u64 and another (little-endian, 8 of each) zero-extended to 16 lanes, as f32:
/// lanes 0..8 from `lo`, 8..16 from `hi`.
#[target_feature(enable = "avx512f")]
#[inline]
fn bytes_f32(lo: u64, hi: u64) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_set_epi64x(hi as i64, lo as i64)))
}

/// Whether the fp16 at `p` is a NaN.
#[inline(always)]
unsafe fn h_is_nan(p: *const u8) -> bool {
    u16_at(p) & 0x7FFF > 0x7C00
}

// ---------------------------------------------------------------------------------------------
// The kernels. `src` holds `nb` whole blocks, `dst` room for `nb * block_weights` floats.

/// Q4_0: `d: f16 @0, qs[16] @2`; `y[j] = (lo(qs[j]) - 8) * d`, `y[j + 16] = (hi(qs[j]) - 8) * d`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q4_0_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, eight) = (splat(0xF), splat(8));
    for i in 0..nb {
        let b = src.add(18 * i);
        let y = dst.add(32 * i);
        let d = h_bcast(b);
        let x = u8x16(b.add(2));
        st::<ST>(y, mul(fl(_mm512_sub_epi32(and(x, m4), eight)), d));
        st::<ST>(y.add(16), mul(fl(_mm512_sub_epi32(_mm512_srli_epi32::<4>(x), eight)), d));
    }
}

/// One Q4_1 block (see [`q4_1_avx512`]); `NAN_M`: its `m` is a NaN.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn q4_1_block<const ST: u8, const NAN_M: bool>(b: *const u8, y: *mut f32) {
    let d = h_bcast(b);
    let m = h_bcast(b.add(2));
    let x = u8x16(b.add(4));
    st::<ST>(y, add_m::<NAN_M>(mul(fl(and(x, splat(0xF))), d), m));
    st::<ST>(y.add(16), add_m::<NAN_M>(mul(fl(_mm512_srli_epi32::<4>(x)), d), m));
}

/// Q4_1: `d: f16 @0, m: f16 @2, qs[16] @4`; `y = q * d + m`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q4_1_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    for i in 0..nb {
        let b = src.add(20 * i);
        let y = dst.add(32 * i);
        if h_is_nan(b.add(2)) {
            q4_1_block::<ST, true>(b, y);
        } else {
            q4_1_block::<ST, false>(b, y);
        }
    }
}

/// Q5_0: `d: f16 @0, qh: u32 @2, qs[16] @6`; `y = (q - 16) * d`, `q - 16` computed as the
/// nibble minus 16 in the lanes whose fifth bit (bit j of `qh` for weight j) is clear.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q5_0_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, sixteen) = (splat(0xF), splat(16));
    for i in 0..nb {
        let b = src.add(22 * i);
        let y = dst.add(32 * i);
        let d = h_bcast(b);
        let qh = u32_at(b.add(2));
        let (clear_lo, clear_hi) = (!(qh as u16), !((qh >> 16) as u16));
        let x = u8x16(b.add(6));
        let (lo, hi) = (and(x, m4), _mm512_srli_epi32::<4>(x));
        st::<ST>(y, mul(fl(_mm512_mask_sub_epi32(lo, clear_lo, lo, sixteen)), d));
        st::<ST>(y.add(16), mul(fl(_mm512_mask_sub_epi32(hi, clear_hi, hi, sixteen)), d));
    }
}

/// One Q5_1 block (see [`q5_1_avx512`]); `NAN_M`: its `m` is a NaN.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn q5_1_block<const ST: u8, const NAN_M: bool>(b: *const u8, y: *mut f32) {
    let sixteen = splat(16);
    let d = h_bcast(b);
    let m = h_bcast(b.add(2));
    let qh = u32_at(b.add(4));
    let x = u8x16(b.add(8));
    let (lo, hi) = (and(x, splat(0xF)), _mm512_srli_epi32::<4>(x));
    let lo = _mm512_mask_or_epi32(lo, qh as u16, lo, sixteen);
    let hi = _mm512_mask_or_epi32(hi, (qh >> 16) as u16, hi, sixteen);
    st::<ST>(y, add_m::<NAN_M>(mul(fl(lo), d), m));
    st::<ST>(y.add(16), add_m::<NAN_M>(mul(fl(hi), d), m));
}

/// Q5_1: `d: f16 @0, m: f16 @2, qh: u32 @4, qs[16] @8`; `y = q * d + m`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q5_1_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    for i in 0..nb {
        let b = src.add(24 * i);
        let y = dst.add(32 * i);
        if h_is_nan(b.add(2)) {
            q5_1_block::<ST, true>(b, y);
        } else {
            q5_1_block::<ST, false>(b, y);
        }
    }
}

/// Q8_0: `d: f16 @0, qs: i8[32] @2`; `y = q * d`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q8_0_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    for i in 0..nb {
        let b = src.add(34 * i);
        let y = dst.add(32 * i);
        let d = h_bcast(b);
        st::<ST>(y, mul(fl(i8x16(b.add(2))), d));
        st::<ST>(y.add(16), mul(fl(i8x16(b.add(18))), d));
    }
}

/// Q2_K: `scales[16] @0, qs[64] @16, d: f16 @80, dmin: f16 @82`.
/// Weight `128h + 32j + l` is `(qs[32h + l] >> 2j) & 3`, in sub-block `8h + 2j + l/16`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q2_k_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let three = splat(3);
    for i in 0..nb {
        let b = src.add(84 * i);
        let y = dst.add(256 * i);
        let d = h_bcast(b.add(80));
        let dmin = h_bcast(b.add(82));
        let sc = u8x16(b);
        // The 16 sub-block scales d * sc and mins dmin * m, as the scalar code rounds them.
        let dl = mul(d, fl(and(sc, splat(0xF))));
        let ml = mul(dmin, fl(_mm512_srli_epi32::<4>(sc)));
        // Output in order (h, j, g), so that streaming stores fill whole lines one after another.
        for h in 0..2 {
            let x = [u8x16(b.add(16 + 32 * h)), u8x16(b.add(32 + 32 * h))];
            for j in 0..4 {
                for g in 0..2 {
                    let q = and(shr(x[g], 2 * j as u32), three);
                    let s = (8 * h + 2 * j + g) as i32;
                    st::<ST>(y.add(128 * h + 32 * j + 16 * g), mul_sub(lane(dl, s), fl(q), lane(ml, s)));
                }
            }
        }
    }
}

/// Q3_K: `hmask[32] @0, qs[64] @32, scales[12] @96, d: f16 @108`.
/// Weight `128h + 32j + l`: low bits `(qs[32h + l] >> 2j) & 3`, minus 4 unless bit `4h + j` of
/// `hmask[l]` is set; scale `d * (s - 32)` of sub-block `8h + 2j + l/16`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q3_k_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let (three, four) = (splat(3), splat(4));
    let (n4, n2) = (0x0F0F_0F0Fu32, 0x0303_0303u32);
    for i in 0..nb {
        let b = src.add(110 * i);
        let y = dst.add(256 * i);
        let d = h_bcast(b.add(108));
        let (a0, a1, a2) = (u32_at(b.add(96)), u32_at(b.add(100)), u32_at(b.add(104)));
        let s = [
            (a0 & n4) | ((a2 & n2) << 4),
            (a1 & n4) | (((a2 >> 2) & n2) << 4),
            ((a0 >> 4) & n4) | (((a2 >> 4) & n2) << 4),
            ((a1 >> 4) & n4) | (((a2 >> 6) & n2) << 4),
        ];
        // d * (s - 32): the subtraction is exact in f32, as the scalar code's i8 arithmetic.
        let six = bytes_f32(s[0] as u64 | (s[1] as u64) << 32, s[2] as u64 | (s[3] as u64) << 32);
        let dl = mul(d, _mm512_sub_ps(six, _mm512_set1_ps(32.0)));
        let hm = [u8x16(b), u8x16(b.add(16))];
        // Output in order (h, j, g), so that streaming stores fill whole lines one after another.
        for h in 0..2 {
            let x = [u8x16(b.add(32 + 32 * h)), u8x16(b.add(48 + 32 * h))];
            for j in 0..4 {
                let bit = splat(1 << (4 * h + j));
                for g in 0..2 {
                    let low = and(shr(x[g], 2 * j as u32), three);
                    let clear = _mm512_testn_epi32_mask(hm[g], bit);
                    let q = _mm512_mask_sub_epi32(low, clear, low, four);
                    let v = mul(lane(dl, (8 * h + 2 * j + g) as i32), fl(q));
                    st::<ST>(y.add(128 * h + 32 * j + 16 * g), v);
                }
            }
        }
    }
}

/// The eight 6-bit scales and mins of Q4_K / Q5_K from their 12 packed bytes at `p`, each as
/// eight bytes of a u64 (ggml's `get_scale_min_k4` for all j at once).
#[inline(always)]
unsafe fn k4_scales(p: *const u8) -> (u64, u64) {
    let (a, b, c) = (u32_at(p), u32_at(p.add(4)), u32_at(p.add(8)));
    let (m6, n4, n2) = (0x3F3F_3F3Fu32, 0x0F0F_0F0Fu32, 0x0303_0303u32);
    let sc_hi = (c & n4) | (((a >> 6) & n2) << 4);
    let m_hi = ((c >> 4) & n4) | (((b >> 6) & n2) << 4);
    ((a & m6) as u64 | (sc_hi as u64) << 32, (b & m6) as u64 | (m_hi as u64) << 32)
}

/// The sub-block scales `d * sc` (lanes 0..8) and mins `dmin * m` (lanes 8..16) of a Q4_K / Q5_K
/// block at `b`, each rounded as the scalar code rounds it.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn k4_scales_mins(b: *const u8) -> __m512 {
    let (sc, mn) = k4_scales(b.add(4));
    let dd = _mm512_mask_blend_ps(0xFF00, h_bcast(b), h_bcast(b.add(2)));
    mul(dd, bytes_f32(sc, mn))
}

/// Q4_K: `d: f16 @0, dmin: f16 @2, scales[12] @4, qs[128] @16`. Chunk c of 64 weights: low
/// nibbles of `qs[32c..32c+32]` with sub-block 2c, high nibbles with 2c + 1.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q4_k_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = splat(0xF);
    for i in 0..nb {
        let b = src.add(144 * i);
        let y = dst.add(256 * i);
        let dm = k4_scales_mins(b);
        for c in 0..4 {
            let s = 2 * c as i32;
            let (d1, m1, d2, m2) = (lane(dm, s), lane(dm, s + 8), lane(dm, s + 1), lane(dm, s + 9));
            for g in 0..2 {
                let x = u8x16(b.add(16 + 32 * c + 16 * g));
                st::<ST>(y.add(64 * c + 16 * g), mul_sub(d1, fl(and(x, m4)), m1));
            }
            for g in 0..2 {
                let x = u8x16(b.add(16 + 32 * c + 16 * g));
                st::<ST>(y.add(64 * c + 32 + 16 * g), mul_sub(d2, fl(_mm512_srli_epi32::<4>(x)), m2));
            }
        }
    }
}

/// Q5_K: `d: f16 @0, dmin: f16 @2, scales[12] @4, qh[32] @16, qs[128] @48`. Chunk c of 64
/// weights: `qs[32c + l]`'s low nibble with bit 2c of `qh[l]` as the fifth bit (sub-block 2c),
/// its high nibble with bit 2c + 1 (sub-block 2c + 1).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q5_k_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, sixteen) = (splat(0xF), splat(16));
    for i in 0..nb {
        let b = src.add(176 * i);
        let y = dst.add(256 * i);
        let dm = k4_scales_mins(b);
        let qh = [u8x16(b.add(16)), u8x16(b.add(32))];
        for c in 0..4 {
            let s = 2 * c as i32;
            let (d1, m1, d2, m2) = (lane(dm, s), lane(dm, s + 8), lane(dm, s + 1), lane(dm, s + 9));
            let (bit_lo, bit_hi) = (splat(1 << (2 * c)), splat(2 << (2 * c)));
            for g in 0..2 {
                let x = u8x16(b.add(48 + 32 * c + 16 * g));
                let lo = and(x, m4);
                let q = _mm512_mask_or_epi32(lo, _mm512_test_epi32_mask(qh[g], bit_lo), lo, sixteen);
                st::<ST>(y.add(64 * c + 16 * g), mul_sub(d1, fl(q), m1));
            }
            for g in 0..2 {
                let x = u8x16(b.add(48 + 32 * c + 16 * g));
                let hi = _mm512_srli_epi32::<4>(x);
                let q = _mm512_mask_or_epi32(hi, _mm512_test_epi32_mask(qh[g], bit_hi), hi, sixteen);
                st::<ST>(y.add(64 * c + 32 + 16 * g), mul_sub(d2, fl(q), m2));
            }
        }
    }
}

/// Q6_K: `ql[128] @0, qh[64] @128, scales: i8[16] @192, d: f16 @208`; `y = (d * sc) * q`. Half h
/// of 128 weights, l in 0..32: `ql[64h + l]` low nibble | `qh[32h + l]` bits 0-1 at l, `ql[64h +
/// 32 + l]` low | bits 2-3 at l + 32, the high nibbles with bits 4-5 and 6-7 at l + 64, l + 96;
/// weight `128h + 32k + l` has scale `8h + 2k + l/16`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn q6_k_avx512<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, m30, off) = (splat(0xF), splat(0x30), splat(32));
    for i in 0..nb {
        let b = src.add(210 * i);
        let y = dst.add(256 * i);
        // The input 8 blocks ahead (a hint: never faults, so past the end is harmless; wrapping
        // arithmetic keeps the pointer computation defined), as the AVX2 kernel does.
        for o in [0, 64, 128, 192] {
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(8 * 210 + o).cast::<i8>());
        }
        // (d * sc), rounded as the portable code rounds it.
        let s = mul(h_bcast(b.add(208)), fl(i8x16(b.add(192))));
        for h in 0..2 {
            for g in 0..2 {
                let ql0 = u8x16(b.add(64 * h + 16 * g));
                let ql1 = u8x16(b.add(64 * h + 32 + 16 * g));
                let qh = u8x16(b.add(128 + 32 * h + 16 * g));
                let q = [
                    or(and(ql0, m4), and(_mm512_slli_epi32::<4>(qh), m30)),
                    or(and(ql1, m4), and(_mm512_slli_epi32::<2>(qh), m30)),
                    or(_mm512_srli_epi32::<4>(ql0), and(qh, m30)),
                    or(_mm512_srli_epi32::<4>(ql1), and(_mm512_srli_epi32::<2>(qh), m30)),
                ];
                for k in 0..4 {
                    let sc = lane(s, (8 * h + 2 * k + g) as i32);
                    st::<ST>(y.add(128 * h + 32 * k + 16 * g), mul(sc, fl(_mm512_sub_epi32(q[k], off))));
                }
            }
        }
    }
}

/// F16: 32 values at a time through `vcvtph2ps`; any 32 holding a NaN go through the portable
/// conversion, which keeps signalling NaNs signalling (`vcvtph2ps` would quiet them).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn f16_avx512<const ST: u8>(src: *const u8, dst: *mut f32, n: usize) {
    let (abs, inf) = (_mm512_set1_epi16(0x7FFF), _mm512_set1_epi16(0x7C00));
    let mut i = 0;
    while i + 32 <= n {
        let v = _mm512_loadu_si512(src.add(2 * i).cast::<__m512i>());
        if _mm512_cmpgt_epu16_mask(_mm512_and_si512(v, abs), inf) == 0 {
            st::<ST>(dst.add(i), _mm512_cvtph_ps(_mm512_castsi512_si256(v)));
            st::<ST>(dst.add(i + 16), _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(v)));
        } else {
            portable_values(QuantType::F16, src.add(2 * i), dst.add(i), 32);
        }
        i += 32;
    }
    portable_values(QuantType::F16, src.add(2 * i), dst.add(i), n - i);
}

/// F32: 32 values at a time, copied.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn f32_avx512<const ST: u8>(src: *const u8, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 32 <= n {
        let a = _mm512_loadu_ps(src.add(4 * i).cast::<f32>());
        let b = _mm512_loadu_ps(src.add(4 * i + 64).cast::<f32>());
        st::<ST>(dst.add(i), a);
        st::<ST>(dst.add(i + 16), b);
        i += 32;
    }
    portable_values(QuantType::F32, src.add(4 * i), dst.add(i), n - i);
}

/// BF16: each value shifted into the upper half of an f32, 16 at a time.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn bf16_avx512<const ST: u8>(src: *const u8, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 16 <= n {
        let v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(src.add(2 * i).cast::<__m256i>()));
        st::<ST>(dst.add(i), _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v)));
        i += 16;
    }
    portable_values(QuantType::BF16, src.add(2 * i), dst.add(i), n - i);
}
