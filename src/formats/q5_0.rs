//! Q5_0: 32 weights in 22 bytes. `d: f16 @0, qh: u32 LE @2, qs[16] @6`; nibbles as Q4_0, bit 4 of
//! weight i is bit i of `qh`; `y = (q - 16) * d`.

use super::f16_at;

pub const BLOCK_WEIGHTS: usize = 32;
pub const BLOCK_BYTES: usize = 22;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = ((((qs[j] & 0xF) as u32) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = ((((qs[j] >> 4) as u32) | h1) as i32 - 16) as f32 * d;
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
        b[0..2].copy_from_slice(&h(0.5));
        let qh: u32 = 0xA5C3_0F81;
        b[2..6].copy_from_slice(&qh.to_le_bytes());
        for j in 0..16 {
            b[6 + j] = (j as u8) | (((j * 7 + 3) % 16) as u8) << 4;
        }
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        for i in 0..32 {
            let nib = if i < 16 { i } else { ((i - 16) * 7 + 3) % 16 };
            let q = nib as i32 + 16 * ((qh >> i) & 1) as i32;
            assert_eq!(y[i], (q - 16) as f32 * 0.5, "weight {i}");
        }
    }
}
