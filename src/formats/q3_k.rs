//! Q3_K: 256 weights in 110 bytes. `hmask[32] @0, qs[64] @32, scales[12] @96, d: f16 @108`.
//! Low two bits as Q2_K; the third bit of weight e (h = e/128, j = (e%128)/32, l = e%32) is bit
//! 4h + j of `hmask[l]`, and a clear bit subtracts 4. Sixteen packed 6-bit scales, minus 32.
//! `y = (d * s) * q`.

use super::f16_at;

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
