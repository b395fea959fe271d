//! Q8_0: 32 weights in 34 bytes. `d: f16 @0, qs: i8[32] @2`; `y = q * d`.

use super::f16_at;
use super::kquant_search::put_f16;

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

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q8_0_ref`; ggml's `quantize_q8_0` ignores an importance matrix).

/// Encodes one block exactly as ggml's `quantize_row_q8_0_ref` (C `roundf`: half away from zero).
#[inline(always)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut amax = 0f32;
    for &v in x {
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    for j in 0..BLOCK_WEIGHTS {
        y[2 + j] = (x[j] * id).round() as i32 as i8 as u8;
    }
}

/// Encodes whole blocks (`quantize_row_q8_0_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
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
