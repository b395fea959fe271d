//! One file per block format: its field offsets and its portable (scalar) decoder, which is the
//! reference every SIMD kernel in `kernels/` must equal bit for bit.
//!
//! Every decoder here has the signature [`DecodeFn`]: `src` holds whole blocks and `dst` exactly
//! the weights they decode to (the caller, [`crate::dequantize_into`], checks both lengths).
//! Multi-byte fields are read little-endian with `from_le_bytes`, never by casting.

pub mod bf16;
pub mod f16;
pub mod f32;
pub mod kquant_lanes;
pub mod kquant_search;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;

use crate::QuantType;

/// A decoder of whole blocks: `dst.len() == src.len() / type_size * block_size`.
pub type DecodeFn = fn(src: &[u8], dst: &mut [f32]);

/// The portable decoder of a format.
pub fn portable(qtype: QuantType) -> DecodeFn {
    match qtype {
        QuantType::F32 => f32::dequantize,
        QuantType::F16 => f16::dequantize,
        QuantType::BF16 => bf16::dequantize,
        QuantType::Q4_0 => q4_0::dequantize,
        QuantType::Q4_1 => q4_1::dequantize,
        QuantType::Q5_0 => q5_0::dequantize,
        QuantType::Q5_1 => q5_1::dequantize,
        QuantType::Q8_0 => q8_0::dequantize,
        QuantType::Q2_K => q2_k::dequantize,
        QuantType::Q3_K => q3_k::dequantize,
        QuantType::Q4_K => q4_k::dequantize,
        QuantType::Q5_K => q5_k::dequantize,
        QuantType::Q6_K => q6_k::dequantize,
    }
}

/// IEEE binary16 at `b[off..off + 2]` (little-endian) as f32, exactly (see [`fp16_to_f32`]).
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    fp16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// IEEE binary16 bits to f32, exactly: every finite value, subnormal and infinity; a NaN keeps its
/// sign and payload bit for bit and is NOT quieted (a signalling NaN stays signalling), as NumPy's
/// `astype(np.float32)` (and so gguf-py) does. The x86 F16C instruction would set the quiet bit;
/// only the F16 format can tell the difference, since every block format multiplies the scale,
/// which quiets a NaN anyway.
#[inline(always)]
pub(crate) fn fp16_to_f32(h: u16) -> f32 {
    if h & 0x7C00 == 0x7C00 {
        f32::from_bits(((h as u32 & 0x8000) << 16) | 0x7F80_0000 | ((h as u32 & 0x3FF) << 13))
    } else {
        half::f16::from_bits(h).to_f32()
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K / Q5_K
/// (ggml's `get_scale_min_k4`).
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Packs 8 six-bit scales and mins into the 12 bytes of Q4_K / Q5_K (the inverse of
/// [`scale_min_k4`]); used by quantizers and tests.
#[allow(dead_code)] // used by the quantizers and tests
pub(crate) fn pack_scale_min_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            q[j] = sc[j];
            q[j + 4] = m[j];
        } else {
            q[j + 4] = (sc[j] & 0xF) | ((m[j] & 0xF) << 4);
            q[j - 4] |= (sc[j] >> 4) << 6;
            q[j] |= (m[j] >> 4) << 6;
        }
    }
    q
}

/// Packs 32 five-bit quants (`l[j]` for weight `j`) as Q5_0 / Q5_1 store them, into the 20 bytes
/// of `y`: `qh: u32` (bit `j` = bit 4 of weight `j`), then `qs[16]` (weight `j` in the low nibble
/// of `qs[j]`, weight `j + 16` in the high one).
pub(crate) fn pack_q5(l: &[u8; 32], y: &mut [u8]) {
    let mut qh = 0u32;
    for j in 0..16 {
        let (xi0, xi1) = (l[j], l[j + 16]);
        y[4 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= (((xi0 & 0x10) as u32) >> 4) << j;
        qh |= (((xi1 & 0x10) as u32) >> 4) << (j + 16);
    }
    y[..4].copy_from_slice(&qh.to_le_bytes());
}

#[cfg(test)]
pub(crate) mod testutil {
    /// f16 bits of a value that fp16 represents exactly.
    pub fn h(x: f32) -> [u8; 2] {
        half::f16::from_f32(x).to_bits().to_le_bytes()
    }

    /// Deterministic uniform values in [0, 1) (xorshift, 24 bits each), so the tests need no extra
    /// crate.
    pub fn unit_uniform(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    /// Deterministic pseudo-random bytes (xorshift), so the tests need no extra crate.
    pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_min_k4_round_trips() {
        let sc = [1, 63, 17, 40, 2, 33, 62, 5];
        let m = [63, 0, 9, 21, 44, 1, 32, 60];
        let q = pack_scale_min_k4(&sc, &m);
        for j in 0..8 {
            assert_eq!(scale_min_k4(j, &q), (sc[j], m[j]), "sub-block {j}");
        }
    }

    #[test]
    fn fp16_specials() {
        assert_eq!(fp16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(fp16_to_f32(0x03FF), 1023.0 * 2f32.powi(-24));
        assert_eq!(fp16_to_f32(0x7BFF), 65504.0);
        assert_eq!(fp16_to_f32(0x7C00), f32::INFINITY);
        assert_eq!(fp16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(fp16_to_f32(0x7E00).to_bits(), 0x7FC0_0000);
        assert_eq!(fp16_to_f32(0xFC01).to_bits(), 0xFF80_2000, "signalling NaN kept as is");
    }
}
