//! Q4_0: 32 weights in 18 bytes. `d: f16 @0, qs[16] @2`; weight j (0..16) is the low nibble of
//! `qs[j]`, weight j + 16 its high nibble; `y = (q - 8) * d`.

use super::f16_at;

pub const BLOCK_WEIGHTS: usize = 32;
pub const BLOCK_BYTES: usize = 18;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
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
        b[0..2].copy_from_slice(&h(-0.5));
        for j in 0..16 {
            b[2 + j] = (j as u8) | (((15 - j) as u8) << 4);
        }
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * -0.5);
            assert_eq!(y[j + 16], (7.0 - j as f32) * -0.5);
        }
        // q == 8 times a negative scale is -0.0, as in C.
        assert_eq!(y[8].to_bits(), (-0.0f32).to_bits());
    }
}
