//! Q5_1: 32 weights in 24 bytes. `d: f16 @0, m: f16 @2, qh: u32 LE @4, qs[16] @8`; 5-bit quants as
//! Q5_0; `y = q * d + m`.

use super::f16_at;

pub const BLOCK_WEIGHTS: usize = 32;
pub const BLOCK_BYTES: usize = 24;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = (((qs[j] & 0xF) as u32) | h0) as f32 * d + m;
        y[j + 16] = (((qs[j] >> 4) as u32) | h1) as f32 * d + m;
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
        b[0..2].copy_from_slice(&h(0.125));
        b[2..4].copy_from_slice(&h(-2.0));
        let qh: u32 = 0x1234_F0E1;
        b[4..8].copy_from_slice(&qh.to_le_bytes());
        for j in 0..16 {
            b[8 + j] = ((j * 5 + 1) % 16) as u8 | ((15 - j) as u8) << 4;
        }
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        for i in 0..32 {
            let nib = if i < 16 { (i * 5 + 1) % 16 } else { 15 - (i - 16) };
            let q = nib as u32 + 16 * ((qh >> i) & 1);
            assert_eq!(y[i], q as f32 * 0.125 - 2.0, "weight {i}");
        }
    }
}
