//! aarch64 NEON kernels (one function per format), reached only through [`decoder`], which hands
//! them out only after [`supported`] said yes.
//!
//! Every kernel equals the portable decoder of `formats/` bit for bit for any input bytes: the
//! quants are widened from bytes to 32-bit lanes and converted exactly, and the float arithmetic is
//! the scalar code's, operation for operation and in the same order (separate `fmul` and
//! `fadd`/`fsub`, never a fused multiply-add; products rounded before sums).
//!
//! fp16 values (the F16 format and every scale) are converted with integer operations
//! ([`h4_to_f32`]), exactly as `formats::fp16_to_f32`: signalling NaNs stay signalling. The
//! hardware conversion (`fcvtl`) would quiet them, which the F16 format shows directly; and unlike
//! x86, ARM's `fadd` returns a signalling NaN operand (quieted) in preference to a quiet one, so in
//! Q4_1 / Q5_1's `q * d + m` with both scales NaN, which payload comes out would then depend on the
//! operand order the compiler picks for the (commutative) add. With exact scales both orders give
//! the portable result. The 32-weight formats convert the scales of four blocks at once.
//!
//! Loads are unaligned byte loads (`vld1q_u8`) and never reach past the input; each block is read
//! only inside its own bytes. Only little-endian aarch64 runs these kernels.

// Index loops mirror the block layouts (h, g, j, k are positions, not just iteration).
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;

use super::{portable_values, u32_at};
use crate::formats::DecodeFn;
use crate::QuantType;

/// Whether this CPU runs the NEON kernels (NEON is part of the aarch64 baseline; the kernels read
/// little-endian fields with vector loads, so big-endian aarch64 keeps the portable decoders).
pub fn supported() -> bool {
    cfg!(target_endian = "little") && std::arch::is_aarch64_feature_detected!("neon")
}

/// The NEON decoder of a format, if there is one (never where [`supported`] is false).
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

/// The safe wrapper of a block kernel: checks the lengths.
macro_rules! block_decoder {
    ($(#[$doc:meta])* $name:ident => $kernel:ident, $bytes:expr, $weights:expr) => {
        $(#[$doc])*
        fn $name(src: &[u8], dst: &mut [f32]) {
            let nb = src.len() / $bytes;
            assert!(dst.len() >= nb * $weights, "output too short for {} blocks", nb);
            // SAFETY: `decoder` hands this function out only where `supported()` (NEON); the kernel
            // reads `nb` whole blocks of `src` and writes `nb * weights` floats of `dst`, both
            // checked above.
            unsafe { $kernel(src.as_ptr(), dst.as_mut_ptr(), nb) }
        }
    };
}

block_decoder!(
    /// Q4_0: `y = (q - 8) * d`.
    q4_0 => q4_0_neon, 18, 32
);
block_decoder!(
    /// Q4_1: `y = q * d + m`.
    q4_1 => q4_1_neon, 20, 32
);
block_decoder!(
    /// Q5_0: `y = (q - 16) * d`.
    q5_0 => q5_0_neon, 22, 32
);
block_decoder!(
    /// Q5_1: `y = q * d + m`.
    q5_1 => q5_1_neon, 24, 32
);
block_decoder!(
    /// Q8_0: `y = q * d`.
    q8_0 => q8_0_neon, 34, 32
);
block_decoder!(
    /// Q2_K: `y = (d * sc) * q - dmin * m`.
    q2_k => q2_k_neon, 84, 256
);
block_decoder!(
    /// Q3_K: `y = (d * s) * q`.
    q3_k => q3_k_neon, 110, 256
);
block_decoder!(
    /// Q4_K: `y = (d * sc) * q - dmin * m`.
    q4_k => q4_k_neon, 144, 256
);
block_decoder!(
    /// Q5_K: `y = (d * sc) * q - dmin * m`.
    q5_k => q5_k_neon, 176, 256
);
block_decoder!(
    /// Q6_K: `y = (d * sc) * q`.
    q6_k => q6_k_neon, 210, 256
);
block_decoder!(
    /// F16: exact widening, signalling NaNs kept.
    f16 => f16_neon, 2, 1
);
block_decoder!(
    /// BF16: a shift.
    bf16 => bf16_neon, 2, 1
);
block_decoder!(
    /// F32: a copy of the little-endian bytes.
    f32_copy => f32_neon, 4, 1
);

// ---------------------------------------------------------------------------------------------
// Helpers. NEON is enabled for every aarch64 target, so these inline into the kernels.

/// Four fp16 values (bits in u16 lanes) as f32, exactly as `formats::fp16_to_f32`: normals are
/// rebased, subnormals normalised with a leading-zero count, infinities and NaNs keep sign and
/// payload bit for bit (a signalling NaN stays signalling). Integer operations only, so the result
/// does not depend on the floating-point control register (flush-to-zero, default NaN).
#[inline(always)]
unsafe fn h4_to_f32(h: uint16x4_t) -> float32x4_t {
    let w = vmovl_u16(h);
    let sign = vshlq_n_u32::<16>(vandq_u32(w, vdupq_n_u32(0x8000)));
    let em = vandq_u32(w, vdupq_n_u32(0x7FFF));
    let shifted = vshlq_n_u32::<13>(em);
    // Normal: exponent rebased from bias 15 to 127.
    let normal = vaddq_u32(shifted, vdupq_n_u32(112 << 23));
    // Infinity / NaN: all-ones exponent, the 10 payload bits on top of f32's 23.
    let special = vorrq_u32(shifted, vdupq_n_u32(0x7F80_0000));
    // Subnormal em * 2^-24 with em in 1..0x400: its top bit (at 31 - lz) moves to bit 23, the
    // implicit one, and the exponent field becomes (31 - lz) - 24 + 127 = 134 - lz, of which the
    // implicit one already adds 1.
    let lz = vclzq_u32(em);
    let mant = vshlq_u32(em, vreinterpretq_s32_u32(vsubq_u32(lz, vdupq_n_u32(8))));
    let sub = vaddq_u32(mant, vshlq_n_u32::<23>(vsubq_u32(vdupq_n_u32(133), lz)));
    let is_special = vcgeq_u32(em, vdupq_n_u32(0x7C00));
    let is_normal = vcgeq_u32(em, vdupq_n_u32(0x0400));
    let is_zero = vceqq_u32(em, vdupq_n_u32(0));
    let mag = vbslq_u32(is_special, special, vbslq_u32(is_normal, normal, sub));
    let mag = vbicq_u32(mag, is_zero);
    vreinterpretq_f32_u32(vorrq_u32(mag, sign))
}

/// The fp16 at `p` (2 bytes, little-endian) in all 4 lanes.
#[inline(always)]
unsafe fn h_dup(p: *const u8) -> float32x4_t {
    h4_to_f32(vdup_n_u16(u16::from_le(p.cast::<u16>().read_unaligned())))
}

/// The two fp16 at `p` and `p + 2`, each in all 4 lanes.
#[inline(always)]
unsafe fn h2_dup(p: *const u8) -> (float32x4_t, float32x4_t) {
    let v = h4_to_f32(vreinterpret_u16_u32(vdup_n_u32(u32_at(p))));
    (vdupq_laneq_f32::<0>(v), vdupq_laneq_f32::<1>(v))
}

/// 16 unsigned bytes as four vectors of f32 (exact).
#[inline(always)]
unsafe fn u8_f32(v: uint8x16_t) -> [float32x4_t; 4] {
    let (lo, hi) = (vmovl_u8(vget_low_u8(v)), vmovl_high_u8(v));
    [
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))),
        vcvtq_f32_u32(vmovl_high_u16(lo)),
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))),
        vcvtq_f32_u32(vmovl_high_u16(hi)),
    ]
}

/// 16 signed bytes as four vectors of f32 (exact).
#[inline(always)]
unsafe fn i8_f32(v: int8x16_t) -> [float32x4_t; 4] {
    let (lo, hi) = (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
    [
        vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))),
        vcvtq_f32_s32(vmovl_high_s16(lo)),
        vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))),
        vcvtq_f32_s32(vmovl_high_s16(hi)),
    ]
}

/// `a - b` on bytes taken as signed (the results fit).
#[inline(always)]
unsafe fn sub_i8(a: uint8x16_t, b: i8) -> int8x16_t {
    vsubq_s8(vreinterpretq_s8_u8(a), vdupq_n_s8(b))
}

/// The 16 bytes at `p`.
#[inline(always)]
unsafe fn ld(p: *const u8) -> uint8x16_t {
    vld1q_u8(p)
}

/// Stores 16 floats at `p`.
#[inline(always)]
unsafe fn st16(p: *mut f32, v: [float32x4_t; 4]) {
    vst1q_f32_x4(p, float32x4x4_t(v[0], v[1], v[2], v[3]))
}

/// `q * d` for each vector (one rounding).
#[inline(always)]
unsafe fn mul(q: [float32x4_t; 4], d: float32x4_t) -> [float32x4_t; 4] {
    [vmulq_f32(q[0], d), vmulq_f32(q[1], d), vmulq_f32(q[2], d), vmulq_f32(q[3], d)]
}

/// `d * q` for each vector (one rounding; the operand order of the scalar code, which decides which
/// NaN comes out when both are NaN).
#[inline(always)]
unsafe fn dmul(d: float32x4_t, q: [float32x4_t; 4]) -> [float32x4_t; 4] {
    [vmulq_f32(d, q[0]), vmulq_f32(d, q[1]), vmulq_f32(d, q[2]), vmulq_f32(d, q[3])]
}

/// `q * d + m`, two roundings in that order (never fused).
#[inline(always)]
unsafe fn mul_add(q: [float32x4_t; 4], d: float32x4_t, m: float32x4_t) -> [float32x4_t; 4] {
    mul(q, d).map(|p| vaddq_f32(p, m))
}

/// `d * q - m`, two roundings in that order (never fused).
#[inline(always)]
unsafe fn mul_sub(d: float32x4_t, q: [float32x4_t; 4], m: float32x4_t) -> [float32x4_t; 4] {
    dmul(d, q).map(|p| vsubq_f32(p, m))
}

/// Byte k of the result is 0x10 if bit k of `bits` is set, else 0 (k = 0..16).
#[inline(always)]
unsafe fn bits_to_0x10(bits: u32) -> uint8x16_t {
    const SEL: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let v = vcombine_u8(vdup_n_u8(bits as u8), vdup_n_u8((bits >> 8) as u8));
    vandq_u8(vtstq_u8(v, vld1q_u8(SEL.as_ptr())), vdupq_n_u8(0x10))
}

/// Runs `body(i, d, m)` for blocks `0..nb` of a 32-weight format (blocks `stride` bytes apart),
/// where `d` and `m` are the fp16 at bytes 0 and 2 of block `i` in all lanes (`m` is unused, and
/// optimised away, for formats with one scale; bytes 2..4 are then the block's next field). The
/// scales are converted four blocks at a time; only blocks that exist are read.
#[inline(always)]
unsafe fn per_block<F: FnMut(usize, float32x4_t, float32x4_t)>(src: *const u8, nb: usize, stride: usize, mut body: F) {
    let mut i = 0;
    while i < nb {
        let n = (nb - i).min(4);
        let mut w = [0u32; 4];
        for k in 0..n {
            w[k] = u32_at(src.add(stride * (i + k)));
        }
        let v = vreinterpretq_u16_u32(vld1q_u32(w.as_ptr()));
        let d = h4_to_f32(vget_low_u16(vuzp1q_u16(v, v)));
        let m = h4_to_f32(vget_low_u16(vuzp2q_u16(v, v)));
        let ds = [vdupq_laneq_f32::<0>(d), vdupq_laneq_f32::<1>(d), vdupq_laneq_f32::<2>(d), vdupq_laneq_f32::<3>(d)];
        let ms = [vdupq_laneq_f32::<0>(m), vdupq_laneq_f32::<1>(m), vdupq_laneq_f32::<2>(m), vdupq_laneq_f32::<3>(m)];
        for k in 0..n {
            body(i + k, ds[k], ms[k]);
        }
        i += 4;
    }
}

// ---------------------------------------------------------------------------------------------
// The kernels. `src` holds `nb` whole blocks, `dst` room for `nb * block_weights` floats.

/// Q4_0: `d: f16 @0, qs[16] @2`; `y[j] = (lo(qs[j]) - 8) * d`, `y[j + 16] = (hi(qs[j]) - 8) * d`.
#[target_feature(enable = "neon")]
unsafe fn q4_0_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = vdupq_n_u8(0xF);
    per_block(src, nb, 18, |i, d, _| {
        let b = src.add(18 * i);
        let y = dst.add(32 * i);
        let x = ld(b.add(2));
        st16(y, mul(i8_f32(sub_i8(vandq_u8(x, m4), 8)), d));
        st16(y.add(16), mul(i8_f32(sub_i8(vshrq_n_u8::<4>(x), 8)), d));
    });
}

/// Q4_1: `d: f16 @0, m: f16 @2, qs[16] @4`; `y = q * d + m`.
#[target_feature(enable = "neon")]
unsafe fn q4_1_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = vdupq_n_u8(0xF);
    per_block(src, nb, 20, |i, d, m| {
        let b = src.add(20 * i);
        let y = dst.add(32 * i);
        let x = ld(b.add(4));
        st16(y, mul_add(u8_f32(vandq_u8(x, m4)), d, m));
        st16(y.add(16), mul_add(u8_f32(vshrq_n_u8::<4>(x)), d, m));
    });
}

/// Q5_0: `d: f16 @0, qh: u32 @2, qs[16] @6`; `y = (q - 16) * d`; bit j of `qh` is weight j's fifth.
#[target_feature(enable = "neon")]
unsafe fn q5_0_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = vdupq_n_u8(0xF);
    per_block(src, nb, 22, |i, d, _| {
        let b = src.add(22 * i);
        let y = dst.add(32 * i);
        let qh = u32_at(b.add(2));
        let x = ld(b.add(6));
        let lo = vorrq_u8(vandq_u8(x, m4), bits_to_0x10(qh));
        let hi = vorrq_u8(vshrq_n_u8::<4>(x), bits_to_0x10(qh >> 16));
        st16(y, mul(i8_f32(sub_i8(lo, 16)), d));
        st16(y.add(16), mul(i8_f32(sub_i8(hi, 16)), d));
    });
}

/// Q5_1: `d: f16 @0, m: f16 @2, qh: u32 @4, qs[16] @8`; `y = q * d + m`.
#[target_feature(enable = "neon")]
unsafe fn q5_1_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = vdupq_n_u8(0xF);
    per_block(src, nb, 24, |i, d, m| {
        let b = src.add(24 * i);
        let y = dst.add(32 * i);
        let qh = u32_at(b.add(4));
        let x = ld(b.add(8));
        let lo = vorrq_u8(vandq_u8(x, m4), bits_to_0x10(qh));
        let hi = vorrq_u8(vshrq_n_u8::<4>(x), bits_to_0x10(qh >> 16));
        st16(y, mul_add(u8_f32(lo), d, m));
        st16(y.add(16), mul_add(u8_f32(hi), d, m));
    });
}

/// Q8_0: `d: f16 @0, qs: i8[32] @2`; `y = q * d`.
#[target_feature(enable = "neon")]
unsafe fn q8_0_neon(src: *const u8, dst: *mut f32, nb: usize) {
    per_block(src, nb, 34, |i, d, _| {
        let b = src.add(34 * i);
        let y = dst.add(32 * i);
        st16(y, mul(i8_f32(vreinterpretq_s8_u8(ld(b.add(2)))), d));
        st16(y.add(16), mul(i8_f32(vreinterpretq_s8_u8(ld(b.add(18)))), d));
    });
}

/// Stores four vectors to `a[0..16]` (to read lanes back one at a time with `vld1q_dup_f32`).
#[inline(always)]
unsafe fn spill(a: &mut [f32; 16], v: [float32x4_t; 4]) {
    st16(a.as_mut_ptr(), v)
}

/// Q2_K: `scales[16] @0, qs[64] @16, d: f16 @80, dmin: f16 @82`.
/// Weight `128h + 32j + l` is `(qs[32h + l] >> 2j) & 3`, in sub-block `8h + 2j + l/16`.
#[target_feature(enable = "neon")]
unsafe fn q2_k_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, m3) = (vdupq_n_u8(0xF), vdupq_n_u8(3));
    let (mut dl, mut ml) = ([0f32; 16], [0f32; 16]);
    for i in 0..nb {
        let b = src.add(84 * i);
        let y = dst.add(256 * i);
        let (d, dmin) = h2_dup(b.add(80));
        let sc = ld(b);
        // The 16 sub-block scales d * sc and mins dmin * m, as the scalar code rounds them.
        spill(&mut dl, dmul(d, u8_f32(vandq_u8(sc, m4))));
        spill(&mut ml, dmul(dmin, u8_f32(vshrq_n_u8::<4>(sc))));
        for h in 0..2 {
            let x = [ld(b.add(16 + 32 * h)), ld(b.add(32 + 32 * h))];
            for j in 0..4 {
                let shift = vdupq_n_s8(-2 * j as i8);
                for g in 0..2 {
                    let q = vandq_u8(vshlq_u8(x[g], shift), m3);
                    let s = 8 * h + 2 * j + g;
                    let v = mul_sub(vld1q_dup_f32(&dl[s]), u8_f32(q), vld1q_dup_f32(&ml[s]));
                    st16(y.add(128 * h + 32 * j + 16 * g), v);
                }
            }
        }
    }
}

/// Q3_K: `hmask[32] @0, qs[64] @32, scales[12] @96, d: f16 @108`.
/// Weight `128h + 32j + l`: low bits `(qs[32h + l] >> 2j) & 3`, minus 4 unless bit `4h + j` of
/// `hmask[l]` is set; scale `d * (s - 32)` of sub-block `8h + 2j + l/16`.
#[target_feature(enable = "neon")]
unsafe fn q3_k_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let (m3, four) = (vdupq_n_u8(3), vdupq_n_u8(4));
    let (n4, n2) = (0x0F0F_0F0Fu32, 0x0303_0303u32);
    let mut dl = [0f32; 16];
    for i in 0..nb {
        let b = src.add(110 * i);
        let y = dst.add(256 * i);
        let d = h_dup(b.add(108));
        let (a0, a1, a2) = (u32_at(b.add(96)), u32_at(b.add(100)), u32_at(b.add(104)));
        // The 16 six-bit scales, byte k the scale of sub-block k (`q3_k::unpack_scales`).
        let s = [
            (a0 & n4) | ((a2 & n2) << 4),
            (a1 & n4) | (((a2 >> 2) & n2) << 4),
            ((a0 >> 4) & n4) | (((a2 >> 4) & n2) << 4),
            ((a1 >> 4) & n4) | (((a2 >> 6) & n2) << 4),
        ];
        let s = vreinterpretq_u8_u32(vld1q_u32(s.as_ptr()));
        // d * (s - 32): the subtraction in i8, as the scalar code's.
        spill(&mut dl, dmul(d, i8_f32(sub_i8(s, 32))));
        let hm = [ld(b), ld(b.add(16))];
        for h in 0..2 {
            let x = [ld(b.add(32 + 32 * h)), ld(b.add(48 + 32 * h))];
            for j in 0..4 {
                let shift = vdupq_n_s8(-2 * j as i8);
                let bit = vdupq_n_u8(1 << (4 * h + j));
                for g in 0..2 {
                    let low = vandq_u8(vshlq_u8(x[g], shift), m3);
                    let high = vandq_u8(vtstq_u8(hm[g], bit), four);
                    let q = sub_i8(vorrq_u8(low, high), 4);
                    let v = dmul(vld1q_dup_f32(&dl[8 * h + 2 * j + g]), i8_f32(q));
                    st16(y.add(128 * h + 32 * j + 16 * g), v);
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

/// `d * sc` of the 8 sub-blocks of a Q4_K / Q5_K block at `b` in `sm[0..8]`, `dmin * m` in
/// `sm[8..16]`.
#[inline(always)]
unsafe fn k4_scale_floats(b: *const u8, sm: &mut [f32; 16]) {
    let (d, dmin) = h2_dup(b);
    let (sc, mn) = k4_scales(b.add(4));
    let f = u8_f32(vcombine_u8(vcreate_u8(sc), vcreate_u8(mn)));
    spill(sm, [vmulq_f32(d, f[0]), vmulq_f32(d, f[1]), vmulq_f32(dmin, f[2]), vmulq_f32(dmin, f[3])]);
}

/// Q4_K: `d: f16 @0, dmin: f16 @2, scales[12] @4, qs[128] @16`. Chunk c of 64 weights: low
/// nibbles of `qs[32c..32c+32]` with sub-block 2c, high nibbles with 2c + 1.
#[target_feature(enable = "neon")]
unsafe fn q4_k_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let m4 = vdupq_n_u8(0xF);
    let mut sm = [0f32; 16];
    for i in 0..nb {
        let b = src.add(144 * i);
        let y = dst.add(256 * i);
        k4_scale_floats(b, &mut sm);
        for c in 0..4 {
            let (d1, m1) = (vld1q_dup_f32(&sm[2 * c]), vld1q_dup_f32(&sm[8 + 2 * c]));
            let (d2, m2) = (vld1q_dup_f32(&sm[2 * c + 1]), vld1q_dup_f32(&sm[9 + 2 * c]));
            for g in 0..2 {
                let x = ld(b.add(16 + 32 * c + 16 * g));
                st16(y.add(64 * c + 16 * g), mul_sub(d1, u8_f32(vandq_u8(x, m4)), m1));
                st16(y.add(64 * c + 32 + 16 * g), mul_sub(d2, u8_f32(vshrq_n_u8::<4>(x)), m2));
            }
        }
    }
}

/// Q5_K: `d: f16 @0, dmin: f16 @2, scales[12] @4, qh[32] @16, qs[128] @48`. As Q4_K, plus bit 2c
/// (low half) or 2c + 1 (high half) of `qh[l]` as the fifth bit.
#[target_feature(enable = "neon")]
unsafe fn q5_k_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, b4) = (vdupq_n_u8(0xF), vdupq_n_u8(0x10));
    let mut sm = [0f32; 16];
    for i in 0..nb {
        let b = src.add(176 * i);
        let y = dst.add(256 * i);
        k4_scale_floats(b, &mut sm);
        let qh = [ld(b.add(16)), ld(b.add(32))];
        for c in 0..4 {
            let (d1, m1) = (vld1q_dup_f32(&sm[2 * c]), vld1q_dup_f32(&sm[8 + 2 * c]));
            let (d2, m2) = (vld1q_dup_f32(&sm[2 * c + 1]), vld1q_dup_f32(&sm[9 + 2 * c]));
            // Bit 2c (2c + 1) of qh moved to bit 4: a shift left by 4 - 2c (3 - 2c), right if negative.
            let (s1, s2) = (vdupq_n_s8(4 - 2 * c as i8), vdupq_n_s8(3 - 2 * c as i8));
            for g in 0..2 {
                let x = ld(b.add(48 + 32 * c + 16 * g));
                let lo = vorrq_u8(vandq_u8(x, m4), vandq_u8(vshlq_u8(qh[g], s1), b4));
                let hi = vorrq_u8(vshrq_n_u8::<4>(x), vandq_u8(vshlq_u8(qh[g], s2), b4));
                st16(y.add(64 * c + 16 * g), mul_sub(d1, u8_f32(lo), m1));
                st16(y.add(64 * c + 32 + 16 * g), mul_sub(d2, u8_f32(hi), m2));
            }
        }
    }
}

/// Q6_K: `ql[128] @0, qh[64] @128, scales: i8[16] @192, d: f16 @208`; `y = (d * sc) * q`.
#[target_feature(enable = "neon")]
unsafe fn q6_k_neon(src: *const u8, dst: *mut f32, nb: usize) {
    let (m4, m30) = (vdupq_n_u8(0xF), vdupq_n_u8(0x30));
    let mut ds = [0f32; 16];
    for i in 0..nb {
        let b = src.add(210 * i);
        let y = dst.add(256 * i);
        let d = h_dup(b.add(208));
        spill(&mut ds, dmul(d, i8_f32(vreinterpretq_s8_u8(ld(b.add(192))))));
        for h in 0..2 {
            let (ql, qh, y) = (b.add(64 * h), b.add(128 + 32 * h), y.add(128 * h));
            for g in 0..2 {
                let a = ld(ql.add(16 * g));
                let c = ld(ql.add(32 + 16 * g));
                let hh = ld(qh.add(16 * g));
                let q = [
                    vorrq_u8(vandq_u8(a, m4), vandq_u8(vshlq_n_u8::<4>(hh), m30)),
                    vorrq_u8(vandq_u8(c, m4), vandq_u8(vshlq_n_u8::<2>(hh), m30)),
                    vorrq_u8(vshrq_n_u8::<4>(a), vandq_u8(hh, m30)),
                    vorrq_u8(vshrq_n_u8::<4>(c), vandq_u8(vshrq_n_u8::<2>(hh), m30)),
                ];
                for k in 0..4 {
                    let v = dmul(vld1q_dup_f32(&ds[8 * h + g + 2 * k]), i8_f32(sub_i8(q[k], 32)));
                    st16(y.add(32 * k + 16 * g), v);
                }
            }
        }
    }
}

/// F16: 8 values at a time through the exact integer conversion ([`h4_to_f32`]).
#[target_feature(enable = "neon")]
unsafe fn f16_neon(src: *const u8, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        let v = vreinterpretq_u16_u8(ld(src.add(2 * i)));
        vst1q_f32(dst.add(i), h4_to_f32(vget_low_u16(v)));
        vst1q_f32(dst.add(i + 4), h4_to_f32(vget_high_u16(v)));
        i += 8;
    }
    portable_values(QuantType::F16, src.add(2 * i), dst.add(i), n - i);
}

/// F32: 16 values at a time, copied.
#[target_feature(enable = "neon")]
unsafe fn f32_neon(src: *const u8, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 16 <= n {
        let p = src.add(4 * i);
        let v = [ld(p), ld(p.add(16)), ld(p.add(32)), ld(p.add(48))];
        st16(dst.add(i), v.map(|x| vreinterpretq_f32_u8(x)));
        i += 16;
    }
    portable_values(QuantType::F32, src.add(4 * i), dst.add(i), n - i);
}

/// BF16: each value shifted into the upper half of an f32.
#[target_feature(enable = "neon")]
unsafe fn bf16_neon(src: *const u8, dst: *mut f32, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        let v = vreinterpretq_u16_u8(ld(src.add(2 * i)));
        vst1q_f32(dst.add(i), vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(v))));
        vst1q_f32(dst.add(i + 4), vreinterpretq_f32_u32(vshll_high_n_u16::<16>(v)));
        i += 8;
    }
    portable_values(QuantType::BF16, src.add(2 * i), dst.add(i), n - i);
}
