//! x86-64 AVX2 kernels (one function per format). Each is `#[target_feature(enable = "avx2,f16c")]`
//! (Q5_1's also `fma`) and reached only through [`decoder`], which hands them out only after
//! [`supported`] said yes.
//!
//! Every kernel equals the portable decoder of `formats/` bit for bit for any input bytes: the
//! quants are widened to 32-bit lanes and converted exactly, and the float arithmetic is the
//! scalar code's, operation for operation and in the same order (products rounded before sums).
//! The one fused multiply-add, in Q5_1, is taken only where the product is exact (finite scales),
//! so its single rounding is the sum's own, as FORMATS.md notes. Scales go through F16C's
//! `vcvtph2ps`, which differs from the portable conversion only by quieting a signalling NaN;
//! every block format multiplies its scales, which quiets the NaN anyway, so the result is the
//! same. The F16 format itself keeps signalling NaNs (see `formats::fp16_to_f32`): its kernel
//! takes the portable path for any 16 values holding a NaN.
//!
//! Loads are unaligned and never reach past the input; each block is read only inside its own
//! bytes. Outputs of at least [`STREAM_MIN_BYTES`] (per call, so per thread) that are 32-byte
//! aligned are written with non-temporal stores, which skip reading the destination lines into the
//! cache first; the values written are the same.

// Index loops mirror the block layouts (h, g, j, k are positions, not just iteration).
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{portable_values, u32_at};
use crate::formats::DecodeFn;
use crate::QuantType;

/// Outputs (per call, so per thread) at least this large are written with streaming stores when
/// 32-byte aligned. Measured with `cargo bench --bench dequantize -- stream` on the 2-core EPYC VM
/// (Zen 3, 512 KiB L2 per core, 32 MiB L3, shared and noisy) this project runs on, Q8_0, one
/// thread, streaming over plain stores: 4 MiB 0.3-0.65x, 8 MiB 1.0-1.9x, 16 MiB 2.1-4x, 32 MiB
/// 1.0-1.5x; at 256 MiB 1.1-2.1x depending on the format and the run.
pub const STREAM_MIN_BYTES: usize = 8 << 20;

/// The threshold in force ([`STREAM_MIN_BYTES`] unless changed, which only benchmarks do).
static STREAM_MIN: AtomicUsize = AtomicUsize::new(STREAM_MIN_BYTES);

/// Sets the streaming-store threshold (`usize::MAX`: never stream); for benchmarks and tests.
#[doc(hidden)]
pub fn set_stream_min_bytes(bytes: usize) {
    STREAM_MIN.store(bytes, Ordering::Relaxed);
}

/// The streaming-store threshold in force (the AVX-512 kernels use it too).
pub(super) fn stream_min_bytes() -> usize {
    STREAM_MIN.load(Ordering::Relaxed)
}

/// Whether this CPU runs the AVX2 kernels (AVX2, F16C and FMA: every AVX2 CPU has the other two).
pub fn supported() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("f16c")
        && std::is_x86_feature_detected!("fma")
}

/// The AVX2 decoder of a format, if there is one (never on a CPU without AVX2, F16C and FMA).
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
/// 32-byte streaming stores (the output is 32-byte aligned).
const STREAM32: u8 = 1;

/// How to write `dst`: streaming stores for large 32-byte aligned outputs. (Outputs that are only
/// 16-byte aligned, as NumPy's large arrays are, get plain stores: pairs of 16-byte streaming
/// stores and staging through an L1 buffer both measured between 0.6x and 1.7x of plain stores.)
fn store_kind(dst: &[f32]) -> u8 {
    if std::mem::size_of_val(dst) >= STREAM_MIN.load(Ordering::Relaxed) && (dst.as_ptr() as usize).is_multiple_of(32) {
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
            // SAFETY: `decoder` hands this function out only where `supported()` (AVX2 + F16C + FMA);
            // the kernel reads `nb` whole blocks of `src` and writes `nb * weights` floats of `dst`,
            // both checked above.
            unsafe {
                let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
                if store_kind(dst) == STREAM32 {
                    $kernel::<STREAM32>(s, d, nb);
                    _mm_sfence();
                } else {
                    $kernel::<PLAIN>(s, d, nb);
                }
            }
        }
    };
}

block_decoder!(
    /// Q4_0: `y = (q - 8) * d`.
    q4_0 => q4_0_avx2, 18, 32
);
block_decoder!(
    /// Q4_1: `y = q * d + m`.
    q4_1 => q4_1_avx2, 20, 32
);
block_decoder!(
    /// Q5_0: `y = (q - 16) * d`.
    q5_0 => q5_0_avx2, 22, 32
);
block_decoder!(
    /// Q5_1: `y = q * d + m`.
    q5_1 => q5_1_avx2, 24, 32
);
block_decoder!(
    /// Q8_0: `y = q * d`.
    q8_0 => q8_0_avx2, 34, 32
);
block_decoder!(
    /// Q2_K: `y = (d * sc) * q - dmin * m`.
    q2_k => q2_k_avx2, 84, 256
);
block_decoder!(
    /// Q3_K: `y = (d * s) * q`.
    q3_k => q3_k_avx2, 110, 256
);
block_decoder!(
    /// Q4_K: `y = (d * sc) * q - dmin * m`.
    q4_k => q4_k_avx2, 144, 256
);
block_decoder!(
    /// Q5_K: `y = (d * sc) * q - dmin * m`.
    q5_k => q5_k_avx2, 176, 256
);
block_decoder!(
    /// Q6_K: `y = (d * sc) * q`.
    q6_k => q6_k_avx2, 210, 256
);
block_decoder!(
    /// F16: exact widening, signalling NaNs kept.
    f16 => f16_avx2, 2, 1
);
block_decoder!(
    /// BF16: a shift.
    bf16 => bf16_avx2, 2, 1
);

block_decoder!(
    /// F32: a copy of the little-endian bytes (x86-64 is little-endian). An explicit vector loop:
    /// glibc's `memcpy` (`rep movsb`) ran at 2 GB/s for 256 KiB on this project's Zen 3 VM.
    f32_copy => f32_avx2, 4, 1
);

// ---------------------------------------------------------------------------------------------
// Helpers. All `#[inline]` with the same target features, so they inline into the kernels.

/// Stores 8 floats at `p`: unaligned ([`PLAIN`]), or streaming to a 32-byte aligned `p`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn st<const ST: u8>(p: *mut f32, v: __m256) {
    if ST == STREAM32 {
        _mm256_stream_ps(p, v)
    } else {
        _mm256_storeu_ps(p, v)
    }
}

/// The fp16 at `p` (2 bytes, little-endian) in all 8 lanes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn h_bcast(p: *const u8) -> __m256 {
    let h = p.cast::<u16>().read_unaligned();
    _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// The 8 bytes at `p`, zero-extended to 32-bit lanes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn u8x8(p: *const u8) -> __m256i {
    _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast::<__m128i>()))
}

/// The 8 bytes at `p`, sign-extended to 32-bit lanes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn i8x8(p: *const u8) -> __m256i {
    _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast::<__m128i>()))
}

/// Lane `i` of `v` in all 8 lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn lane(v: __m256, i: i32) -> __m256 {
    _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(i))
}

#[target_feature(enable = "avx2")]
#[inline]
fn and(a: __m256i, b: __m256i) -> __m256i {
    _mm256_and_si256(a, b)
}

#[target_feature(enable = "avx2")]
#[inline]
fn or(a: __m256i, b: __m256i) -> __m256i {
    _mm256_or_si256(a, b)
}

#[target_feature(enable = "avx2")]
#[inline]
fn splat(x: i32) -> __m256i {
    _mm256_set1_epi32(x)
}

/// `a >> n` in each 32-bit lane (logical).
#[target_feature(enable = "avx2")]
#[inline]
fn shr(a: __m256i, n: i32) -> __m256i {
    _mm256_srlv_epi32(a, _mm256_set1_epi32(n))
}

/// Lanes as f32 (exact: all are small integers).
#[target_feature(enable = "avx2")]
#[inline]
fn fl(a: __m256i) -> __m256 {
    _mm256_cvtepi32_ps(a)
}

/// `x * d` (one rounding).
#[target_feature(enable = "avx2")]
#[inline]
fn mul(a: __m256, b: __m256) -> __m256 {
    _mm256_mul_ps(a, b)
}

/// `a * b - c`, two roundings in that order (never fused).
#[target_feature(enable = "avx2")]
#[inline]
fn mul_sub(a: __m256, b: __m256, c: __m256) -> __m256 {
    _mm256_sub_ps(_mm256_mul_ps(a, b), c)
}

/// `a * b + c`, two roundings in that order (never fused).
#[target_feature(enable = "avx2")]
#[inline]
fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
    _mm256_add_ps(_mm256_mul_ps(a, b), c)
}

/// Bytes of a u64 (little-endian, 8 of them) zero-extended to 8 lanes, as f32.
#[target_feature(enable = "avx2")]
#[inline]
fn bytes_f32(x: u64) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(x as i64)))
}

// Byte-wise decoding. A format's quants are assembled 32 at a time in the bytes of one register
// (masks, shifts and ORs on all 32 at once), then widened to 32-bit lanes 8 at a time with one
// in-lane `vpshufb` each: `spread` first reorders the dwords (0, 2, 4, 6 | 1, 3, 5, 7), so that
// the bytes 8k..8k+8 of the original order lie as 4 + 4 in the two 128-bit lanes, and
// `widen_ctl(k, _)` picks them out. Signed quants are placed in the top byte of each lane (the
// lane holds `q * 2^24`, converted exactly) and the scale multiplied by 2^-24 beforehand: scaling
// by a power of two is exact here (scales are 0 or at least 2^-24 in magnitude: no subnormal, no
// overflow; NaN and infinity stay what they are), so the product is the same real number
// `scale * q`, rounded once: bit for bit the portable result.

/// `2^-24`, the scale factor that goes with `widen_ctl(k, true)`.
const TWO_M24: f32 = 1.0 / 16_777_216.0;

/// Reorders the dwords of `v` by `idx` (which is always [`spread_idx`]) for [`widen_ctl`].
#[target_feature(enable = "avx2")]
#[inline]
fn spread(v: __m256i, idx: __m256i) -> __m256i {
    _mm256_permutevar8x32_epi32(v, idx)
}

/// The dword order (0, 2, 4, 6, 1, 3, 5, 7) of [`spread`], hidden from the optimizer, which would
/// otherwise turn the one `vpermd` into two shuffles (`vpshufd` + `vpermq`), measurably slower.
#[target_feature(enable = "avx2")]
#[inline]
fn spread_idx() -> __m256i {
    std::hint::black_box(_mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7))
}

/// The `vpshufb` control that widens bytes 8k..8k+8 of a [`spread`] register to 8 dwords: into
/// the low byte (zero-extended) or, if `top`, into the top byte (`q * 2^24`, sign kept).
#[target_feature(enable = "avx2")]
#[inline]
fn widen_ctl(k: i32, top: bool) -> __m256i {
    let w = |j: i32| -> i32 {
        let idx = (4 * k + j) as u32;
        (if top { 0x0080_8080 | (idx << 24) } else { 0x8080_8000 | idx }) as i32
    };
    _mm256_setr_epi32(w(0), w(1), w(2), w(3), w(0), w(1), w(2), w(3))
}

/// The four [`widen_ctl`] controls.
#[target_feature(enable = "avx2")]
#[inline]
fn widen_ctls(top: bool) -> [__m256i; 4] {
    [widen_ctl(0, top), widen_ctl(1, top), widen_ctl(2, top), widen_ctl(3, top)]
}

/// The 32 bytes at `p`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load32(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p.cast::<__m256i>())
}

// ---------------------------------------------------------------------------------------------
// The kernels. `src` holds `nb` whole blocks, `dst` room for `nb * block_weights` floats.

/// Q4_0: `d: f16 @0, qs[16] @2`; `y[j] = (lo(qs[j]) - 8) * d`, `y[j + 16] = (hi(qs[j]) - 8) * d`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_0_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, eight) = (splat(0xF), splat(8));
    for i in 0..nb {
        let b = src.add(18 * i);
        let y = dst.add(32 * i);
        let d = h_bcast(b);
        let x0 = u8x8(b.add(2));
        let x1 = u8x8(b.add(10));
        st::<ST>(y, mul(fl(_mm256_sub_epi32(and(x0, m4), eight)), d));
        st::<ST>(y.add(8), mul(fl(_mm256_sub_epi32(and(x1, m4), eight)), d));
        st::<ST>(y.add(16), mul(fl(_mm256_sub_epi32(_mm256_srli_epi32(x0, 4), eight)), d));
        st::<ST>(y.add(24), mul(fl(_mm256_sub_epi32(_mm256_srli_epi32(x1, 4), eight)), d));
    }
}

/// Q4_1: `d: f16 @0, m: f16 @2, qs[16] @4`; `y = q * d + m`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_1_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = splat(0xF);
    for i in 0..nb {
        let b = src.add(20 * i);
        let y = dst.add(32 * i);
        let d = h_bcast(b);
        let m = h_bcast(b.add(2));
        let x0 = u8x8(b.add(4));
        let x1 = u8x8(b.add(12));
        st::<ST>(y, mul_add(fl(and(x0, m4)), d, m));
        st::<ST>(y.add(8), mul_add(fl(and(x1, m4)), d, m));
        st::<ST>(y.add(16), mul_add(fl(_mm256_srli_epi32(x0, 4)), d, m));
        st::<ST>(y.add(24), mul_add(fl(_mm256_srli_epi32(x1, 4)), d, m));
    }
}

/// The fifth bits of a Q5_0 / Q5_1 block, from its `qh: u32` at `p`, in 32-bit lanes for the
/// weights 0..8, 8..16, 16..24, 24..32 (bit j of `qh` is weight j's): `(qh >> j) & 1` moved to
/// bit 4 by a variable shift of the broadcast `qh` (no shuffles: they are the scarce resource on
/// Zen 3), then `op(that, 16)`: AND gives 16 where the bit is set, ANDNOT 16 where it is clear.
/// The weights 0..8 shift the u32 at `p - 1` (the block's byte before `qh`, then `qh`'s first three
/// bytes: `qh << 8` plus bits the mask drops) right by 4..12, a second broadcast load where `qh`
/// would need a left shift first (Q5_1 1.01-1.03x; Q5_0 unchanged). `qh` is never a block's first
/// field, so `p - 1` is inside the block.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q5_fifth_bits<const SET: bool>(p: *const u8) -> [__m256i; 4] {
    let v = _mm256_set1_epi32(u32_at(p) as i32);
    let v8 = _mm256_set1_epi32(u32_at(p.sub(1)) as i32);
    let s = |o: i32| _mm256_setr_epi32(o, o + 1, o + 2, o + 3, o + 4, o + 5, o + 6, o + 7);
    let m = splat(0x10);
    let op = |a: __m256i| if SET { _mm256_and_si256(a, m) } else { _mm256_andnot_si256(a, m) };
    [
        op(_mm256_srlv_epi32(v8, s(4))),
        op(_mm256_srlv_epi32(v, s(4))),
        op(_mm256_srlv_epi32(v, s(12))),
        op(_mm256_srlv_epi32(v, s(20))),
    ]
}

/// Q5_0: `d: f16 @0, qh: u32 @2, qs[16] @6`; `y = (q - 16) * d`, `q - 16` computed as the
/// nibble minus (16 where the fifth bit is clear).
#[target_feature(enable = "avx2,f16c")]
unsafe fn q5_0_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = splat(0xF);
    for i in 0..nb {
        let b = src.add(22 * i);
        let y = dst.add(32 * i);
        let d = h_bcast(b);
        let minus = q5_fifth_bits::<false>(b.add(2));
        let x0 = u8x8(b.add(6));
        let x1 = u8x8(b.add(14));
        let q = [and(x0, m4), and(x1, m4), _mm256_srli_epi32(x0, 4), _mm256_srli_epi32(x1, 4)];
        for k in 0..4 {
            st::<ST>(y.add(8 * k), mul(fl(_mm256_sub_epi32(q[k], minus[k])), d));
        }
    }
}

/// How [`q5_1_block`] adds `m` to `p = q * d`: for finite `d` and `m`, one fused multiply-add
/// (`q * d` is exact in f32, 5 bits times fp16's 11, so rounding `q * d + m` once equals rounding
/// the exact product and then the sum, bit for bit; one `vfmadd` instead of a `vmulps` and a
/// `vaddps` measured 1.04-1.08x). With a non-finite scale the two differ in which NaN comes out of
/// `0 * inf + NaN`, so those blocks round twice: `p + m`, or `p - m` when `m` is a NaN.
const Q51_FUSED: u8 = 0;
const Q51_ADD: u8 = 1;
const Q51_SUB_NAN_M: u8 = 2;

/// One Q5_1 block (see [`q5_1_avx2`]), `m` added as `HOW` says.
#[target_feature(enable = "avx2,f16c,fma")]
#[inline]
unsafe fn q5_1_block<const ST: u8, const HOW: u8>(b: *const u8, y: *mut f32) {
    let m4 = splat(0xF);
    // d and m converted together (lanes 0 and 1), then each broadcast.
    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(u32_at(b) as i32));
    let d = _mm256_broadcastss_ps(dm);
    let m = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
    let high = q5_fifth_bits::<true>(b.add(4));
    let x0 = u8x8(b.add(8));
    let x1 = u8x8(b.add(16));
    let q = [and(x0, m4), and(x1, m4), _mm256_srli_epi32(x0, 4), _mm256_srli_epi32(x1, 4)];
    for k in 0..4 {
        let q = fl(or(q[k], high[k]));
        let v = match HOW {
            Q51_FUSED => _mm256_fmadd_ps(q, d, m),
            Q51_ADD => _mm256_add_ps(mul(q, d), m),
            // With a NaN `m`, `p - m` gives p's NaN if p is one, else m's, as the portable `p + m`
            // does (x86 returns the first operand's NaN): a subtraction keeps its operand order,
            // an addition may be commuted by the compiler.
            _ => _mm256_sub_ps(mul(q, d), m),
        };
        st::<ST>(y.add(8 * k), v);
    }
}

/// Q5_1: `d: f16 @0, m: f16 @2, qh: u32 @4, qs[16] @8`; `y = q * d + m`.
#[target_feature(enable = "avx2,f16c,fma")]
unsafe fn q5_1_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    for i in 0..nb {
        let b = src.add(24 * i);
        let y = dst.add(32 * i);
        let dm = u32_at(b);
        // A half whose exponent is all ones (Inf, NaN) sets bit 15 or 31 when 0x0400 is added to
        // its exponent bits; no other exponent does, and the low half cannot carry into the high.
        // (One test for both halves instead of two: 3 instructions fewer per block, 1.03-1.05x.)
        if ((dm & 0x7C00_7C00) + 0x0400_0400) & 0x8000_8000 == 0 {
            q5_1_block::<ST, Q51_FUSED>(b, y);
        } else if (dm >> 16) & 0x7FFF > 0x7C00 {
            q5_1_block::<ST, Q51_SUB_NAN_M>(b, y);
        } else {
            q5_1_block::<ST, Q51_ADD>(b, y);
        }
    }
}

/// Q8_0: `d: f16 @0, qs: i8[32] @2`; `y = q * d`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q8_0_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    for i in 0..nb {
        let b = src.add(34 * i);
        let y = dst.add(32 * i);
        let d = h_bcast(b);
        for k in 0..4 {
            st::<ST>(y.add(8 * k), mul(fl(i8x8(b.add(2 + 8 * k))), d));
        }
    }
}

/// Q2_K: `scales[16] @0, qs[64] @16, d: f16 @80, dmin: f16 @82`.
/// Weight `128h + 32j + l` is `(qs[32h + l] >> 2j) & 3`, in sub-block `8h + 2j + l/16`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q2_k_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let three = splat(3);
    for i in 0..nb {
        let b = src.add(84 * i);
        let y = dst.add(256 * i);
        let d = h_bcast(b.add(80));
        let dmin = h_bcast(b.add(82));
        let s_lo = b.cast::<u64>().read_unaligned();
        let s_hi = b.add(8).cast::<u64>().read_unaligned();
        let nib = 0x0F0F_0F0F_0F0F_0F0Fu64;
        // Per half h: the 8 sub-block scales d * sc and mins dmin * m, as the scalar code rounds them.
        let dl = [mul(d, bytes_f32(s_lo & nib)), mul(d, bytes_f32(s_hi & nib))];
        let ml = [mul(dmin, bytes_f32((s_lo >> 4) & nib)), mul(dmin, bytes_f32((s_hi >> 4) & nib))];
        // Output in order (h, j, g), so that streaming stores fill whole lines one after another.
        for h in 0..2 {
            let x: [__m256i; 4] = [0, 8, 16, 24].map(|o| u8x8(b.add(16 + 32 * h + o)));
            for j in 0..4 {
                for g in 0..4 {
                    let q = and(shr(x[g], 2 * j as i32), three);
                    let s = (2 * j + g / 2) as i32;
                    let v = mul_sub(lane(dl[h], s), fl(q), lane(ml[h], s));
                    st::<ST>(y.add(128 * h + 32 * j + 8 * g), v);
                }
            }
        }
    }
}

/// Q3_K: `hmask[32] @0, qs[64] @32, scales[12] @96, d: f16 @108`.
/// Weight `128h + 32j + l`: low bits `(qs[32h + l] >> 2j) & 3`, minus 4 unless bit `4h + j` of
/// `hmask[l]` is set; scale `d * (s - 32)` of sub-block `8h + 2j + l/16`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q3_k_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
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
        let thirty_two = _mm256_set1_ps(32.0);
        // d * (s - 32): the subtraction is exact in f32, as the scalar code's i8 arithmetic.
        let dl = [
            mul(d, _mm256_sub_ps(bytes_f32(s[0] as u64 | (s[1] as u64) << 32), thirty_two)),
            mul(d, _mm256_sub_ps(bytes_f32(s[2] as u64 | (s[3] as u64) << 32), thirty_two)),
        ];
        // Output in order (h, j, g), so that streaming stores fill whole lines one after another.
        let hm: [__m256i; 4] = [0, 8, 16, 24].map(|o| _mm256_slli_epi32(u8x8(b.add(o)), 2));
        for h in 0..2 {
            let x: [__m256i; 4] = [0, 8, 16, 24].map(|o| u8x8(b.add(32 + 32 * h + o)));
            for j in 0..4 {
                for g in 0..4 {
                    let low = and(shr(x[g], 2 * j as i32), three);
                    let high = and(shr(hm[g], (4 * h + j) as i32), four);
                    let q = _mm256_sub_epi32(or(low, high), four);
                    let v = mul(lane(dl[h], (2 * j + g / 2) as i32), fl(q));
                    st::<ST>(y.add(128 * h + 32 * j + 8 * g), v);
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

/// Q4_K: `d: f16 @0, dmin: f16 @2, scales[12] @4, qs[128] @16`. Chunk c of 64 weights: low
/// nibbles of `qs[32c..32c+32]` with sub-block 2c, high nibbles with 2c + 1.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_k_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = splat(0xF);
    for i in 0..nb {
        let b = src.add(144 * i);
        let y = dst.add(256 * i);
        let d = h_bcast(b);
        let dmin = h_bcast(b.add(2));
        let (sc, mn) = k4_scales(b.add(4));
        let dv = mul(d, bytes_f32(sc));
        let mv = mul(dmin, bytes_f32(mn));
        for c in 0..4 {
            let (d1, m1) = (lane(dv, 2 * c as i32), lane(mv, 2 * c as i32));
            let (d2, m2) = (lane(dv, 2 * c as i32 + 1), lane(mv, 2 * c as i32 + 1));
            for g in 0..4 {
                let x = u8x8(b.add(16 + 32 * c + 8 * g));
                st::<ST>(y.add(64 * c + 8 * g), mul_sub(d1, fl(and(x, m4)), m1));
                st::<ST>(y.add(64 * c + 32 + 8 * g), mul_sub(d2, fl(_mm256_srli_epi32(x, 4)), m2));
            }
        }
    }
}

/// Q5_K: `d: f16 @0, dmin: f16 @2, scales[12] @4, qh[32] @16, qs[128] @48`. Chunk c of 64
/// weights: `qs[32c + l]`'s low nibble with bit 2c of `qh[l]` as the fifth bit (sub-block 2c),
/// its high nibble with bit 2c + 1 (sub-block 2c + 1). Byte-wise, 32 weights at a time; the
/// sub-block scales and mins go through memory so that each is one broadcast load.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q5_k_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, b4) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x10));
    let (idx, ctl) = (spread_idx(), widen_ctls(false));
    let (mut ds, mut ms) = ([0f32; 8], [0f32; 8]);
    for i in 0..nb {
        let b = src.add(176 * i);
        let y = dst.add(256 * i);
        let d = h_bcast(b);
        let dmin = h_bcast(b.add(2));
        let (sc, mn) = k4_scales(b.add(4));
        _mm256_storeu_ps(ds.as_mut_ptr(), mul(d, bytes_f32(sc)));
        _mm256_storeu_ps(ms.as_mut_ptr(), mul(dmin, bytes_f32(mn)));
        // Keeps them in memory (else the compiler broadcasts from the register, two shuffles each).
        std::hint::black_box((&mut ds, &mut ms));
        let qh = spread(load32(b.add(16)), idx);
        // Bit 2c (low) and 2c + 1 (high) of each qh byte moved to bit 4 (16-bit shifts: the bits
        // crossing into the neighbouring byte are masked off).
        let high = [
            (_mm256_slli_epi16::<4>(qh), _mm256_slli_epi16::<3>(qh)),
            (_mm256_slli_epi16::<2>(qh), _mm256_slli_epi16::<1>(qh)),
            (qh, _mm256_srli_epi16::<1>(qh)),
            (_mm256_srli_epi16::<2>(qh), _mm256_srli_epi16::<3>(qh)),
        ];
        for c in 0..4 {
            let x = spread(load32(b.add(48 + 32 * c)), idx);
            let lo = or(and(x, m4), and(high[c].0, b4));
            let hi = or(and(_mm256_srli_epi16::<4>(x), m4), and(high[c].1, b4));
            let (d1, m1) = (_mm256_broadcast_ss(&ds[2 * c]), _mm256_broadcast_ss(&ms[2 * c]));
            let (d2, m2) = (_mm256_broadcast_ss(&ds[2 * c + 1]), _mm256_broadcast_ss(&ms[2 * c + 1]));
            for g in 0..4 {
                st::<ST>(y.add(64 * c + 8 * g), mul_sub(d1, fl(_mm256_shuffle_epi8(lo, ctl[g])), m1));
            }
            for g in 0..4 {
                st::<ST>(y.add(64 * c + 32 + 8 * g), mul_sub(d2, fl(_mm256_shuffle_epi8(hi, ctl[g])), m2));
            }
        }
    }
}

/// Q6_K: `ql[128] @0, qh[64] @128, scales: i8[16] @192, d: f16 @208`; `y = (d * sc) * q`. Half h
/// of 128 weights, l in 0..32: `ql[64h + l]` low nibble | `qh[32h + l]` bits 0-1 at l, `ql[64h +
/// 32 + l]` low | bits 2-3 at l + 32, the high nibbles with bits 4-5 and 6-7 at l + 64, l + 96.
/// Byte-wise, 32 weights at a time, in output order (streaming stores fill whole lines); `q - 32`
/// is widened signed (see [`widen_ctl`]), so the scales `d * sc` are stored times 2^-24.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q6_k_avx2<const ST: u8>(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, m30, off) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30), _mm256_set1_epi8(32));
    let (idx, ctl, p24) = (spread_idx(), widen_ctls(true), _mm256_set1_ps(TWO_M24));
    let mut s = [0f32; 16];
    for i in 0..nb {
        let b = src.add(210 * i);
        let y = dst.add(256 * i);
        // The input 8 blocks ahead (a hint: never faults, so past the end is harmless; wrapping
        // arithmetic keeps the pointer computation defined). Out of cache: 1.14-1.24x measured.
        for o in [0, 64, 128, 192] {
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(8 * 210 + o).cast::<i8>());
        }
        let d = h_bcast(b.add(208));
        // (d * sc), rounded as the portable code rounds it, then scaled by 2^-24 (exact).
        _mm256_storeu_ps(s.as_mut_ptr(), mul(mul(d, fl(i8x8(b.add(192)))), p24));
        _mm256_storeu_ps(s.as_mut_ptr().add(8), mul(mul(d, fl(i8x8(b.add(200)))), p24));
        // Keeps them in memory (else the compiler broadcasts from the register, two shuffles each).
        std::hint::black_box(&mut s);
        for h in 0..2 {
            let ql0 = spread(load32(b.add(64 * h)), idx);
            let ql1 = spread(load32(b.add(64 * h + 32)), idx);
            let qh = spread(load32(b.add(128 + 32 * h)), idx);
            // The two high bits moved to bits 4-5 (16-bit shifts; crossing bits are masked off).
            let q = [
                or(and(ql0, m4), and(_mm256_slli_epi16::<4>(qh), m30)),
                or(and(ql1, m4), and(_mm256_slli_epi16::<2>(qh), m30)),
                or(and(_mm256_srli_epi16::<4>(ql0), m4), and(qh, m30)),
                or(and(_mm256_srli_epi16::<4>(ql1), m4), and(_mm256_srli_epi16::<2>(qh), m30)),
            ];
            for k in 0..4 {
                let q = _mm256_sub_epi8(q[k], off);
                for g in 0..4 {
                    let sc = _mm256_broadcast_ss(&s[8 * h + 2 * k + g / 2]);
                    st::<ST>(y.add(128 * h + 32 * k + 8 * g), mul(sc, fl(_mm256_shuffle_epi8(q, ctl[g]))));
                }
            }
        }
    }
}

/// F16: 16 values at a time through F16C; any 16 holding a NaN go through the portable
/// conversion, which keeps signalling NaNs signalling (F16C would quiet them).
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_avx2<const ST: u8>(src: *const u8, dst: *mut f32, n: usize) {
    let (abs, inf) = (_mm256_set1_epi16(0x7FFF), _mm256_set1_epi16(0x7C00));
    let mut i = 0;
    while i + 16 <= n {
        let v = _mm256_loadu_si256(src.add(2 * i).cast::<__m256i>());
        let nan = _mm256_cmpgt_epi16(_mm256_and_si256(v, abs), inf);
        if _mm256_testz_si256(nan, nan) != 0 {
            st::<ST>(dst.add(i), _mm256_cvtph_ps(_mm256_castsi256_si128(v)));
            st::<ST>(dst.add(i + 8), _mm256_cvtph_ps(_mm256_extracti128_si256(v, 1)));
        } else {
            portable_values(QuantType::F16, src.add(2 * i), dst.add(i), 16);
        }
        i += 16;
    }
    portable_values(QuantType::F16, src.add(2 * i), dst.add(i), n - i);
}

/// F32: 8 values at a time, copied.
#[target_feature(enable = "avx2")]
unsafe fn f32_avx2<const ST: u8>(src: *const u8, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 16 <= n {
        let a = _mm256_loadu_ps(src.add(4 * i).cast::<f32>());
        let b = _mm256_loadu_ps(src.add(4 * i + 32).cast::<f32>());
        st::<ST>(dst.add(i), a);
        st::<ST>(dst.add(i + 8), b);
        i += 16;
    }
    portable_values(QuantType::F32, src.add(4 * i), dst.add(i), n - i);
}

/// BF16: each value shifted into the upper half of an f32.
#[target_feature(enable = "avx2")]
unsafe fn bf16_avx2<const ST: u8>(src: *const u8, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(src.add(2 * i).cast::<__m128i>()));
        st::<ST>(dst.add(i), _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        i += 8;
    }
    portable_values(QuantType::BF16, src.add(2 * i), dst.add(i), n - i);
}
