//! Q2_K: 256 weights in 84 bytes. `scales[16] @0` (low nibble scale, high nibble min),
//! `qs[64] @16, d: f16 @80, dmin: f16 @82`. Weight e: h = e/128, j = (e%128)/32, l = e%32;
//! `q = (qs[32h + l] >> 2j) & 3`, sub-block e/16. `y = (d * sc) * q - (dmin * m)`.

use super::f16_at;

pub const BLOCK_WEIGHTS: usize = 256;
pub const BLOCK_BYTES: usize = 84;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    for e in 0..256 {
        let (h, j, l) = (e / 128, (e % 128) / 32, e % 32);
        let q = (qs[32 * h + l] >> (2 * j)) & 3;
        let sc = scales[e / 16];
        let dl = d * (sc & 0xF) as f32;
        let ml = dmin * (sc >> 4) as f32;
        y[e] = dl * q as f32 - ml;
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

    #[test]
    fn hand_built_block() {
        let (d, dmin) = (0.5f32, 0.25f32);
        let mut b = bytes(BLOCK_BYTES, 2);
        for i in 0..16 {
            b[i] = ((i as u8 * 3 + 1) & 0xF) | (((15 - i) as u8) << 4);
        }
        b[80..82].copy_from_slice(&h(d));
        b[82..84].copy_from_slice(&h(dmin));
        let mut y = vec![0f32; 256];
        dequantize(&b, &mut y);
        // Walk the layout the way ggml's loop does: 2 halves x 4 shifts x 2 groups of 16.
        let mut e = 0;
        for half in 0..2 {
            for shift in 0..4 {
                for group in 0..2 {
                    let s = 8 * half + 2 * shift + group;
                    let sc = ((s as u8 * 3 + 1) & 0xF) as f32;
                    let m = (15 - s) as f32;
                    for l in 0..16 {
                        let q = (b[16 + 32 * half + 16 * group + l] >> (2 * shift)) & 3;
                        assert_eq!(y[e], (d * sc) * q as f32 - dmin * m, "weight {e}");
                        e += 1;
                    }
                }
            }
        }
        assert_eq!(e, 256);
    }
}
