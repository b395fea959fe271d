//! Q4_1: 32 weights in 20 bytes. `d: f16 @0, m: f16 @2, qs[16] @4`; nibbles as Q4_0;
//! `y = q * d + m` (two roundings, no fused multiply-add).

use super::f16_at;

pub const BLOCK_WEIGHTS: usize = 32;
pub const BLOCK_BYTES: usize = 20;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0xF) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
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
    use super::super::testutil::h;
    use super::*;

    #[test]
    fn hand_built_block() {
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(0.25));
        b[2..4].copy_from_slice(&h(-1.5));
        for j in 0..16 {
            b[4 + j] = (j as u8) | (((15 - j) as u8) << 4);
        }
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.25 - 1.5);
            assert_eq!(y[j + 16], (15 - j) as f32 * 0.25 - 1.5);
        }
    }

    #[test]
    fn rounds_product_then_sum() {
        // d = 1 + 2^-10, m = 2^11: q*d = 15 + 15*2^-10 is exact, + 2048 rounds once.
        let d = 1.0 + 2f32.powi(-10);
        let m = 2048.0;
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(d));
        b[2..4].copy_from_slice(&h(m));
        b[4] = 15;
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        assert_eq!(y[0], 15.0 * d + m);
    }
}
