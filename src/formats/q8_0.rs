//! Q8_0: 32 weights in 34 bytes. `d: f16 @0, qs: i8[32] @2`; `y = q * d`.

use super::f16_at;

pub const BLOCK_WEIGHTS: usize = 32;
pub const BLOCK_BYTES: usize = 34;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
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
        b[0..2].copy_from_slice(&h(0.75));
        for j in 0..32 {
            b[2 + j] = (j as i32 * 8 - 128) as i8 as u8;
        }
        let mut y = [0f32; 32];
        dequantize(&b, &mut y);
        for j in 0..32 {
            assert_eq!(y[j], (j as f32 * 8.0 - 128.0) * 0.75);
        }
    }
}
