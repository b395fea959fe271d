//! Q4_K: 256 weights in 144 bytes. `d: f16 @0, dmin: f16 @2, scales[12] @4, qs[128] @16`.
//! Eight sub-blocks of 32 with packed 6-bit scales and mins ([`super::scale_min_k4`]). Chunk c
//! (0..4) of 64 weights uses `qs[32c..32c+32]`: low nibbles for sub-block 2c, high nibbles for 2c+1.
//! `y = (d * sc) * q - (dmin * m)`.

use super::{f16_at, scale_min_k4};

pub const BLOCK_WEIGHTS: usize = 256;
pub const BLOCK_BYTES: usize = 144;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let q = &qs[32 * c..32 * c + 32];
        let y = &mut y[64 * c..64 * c + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0xF) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
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
    use super::super::pack_scale_min_k4;
    use super::super::testutil::h;
    use super::*;

    #[test]
    fn hand_built_block() {
        let sc = [1u8, 63, 17, 40, 2, 33, 62, 5];
        let mn = [63u8, 7, 9, 21, 44, 1, 32, 60];
        let (d, dmin) = (0.03125f32, 0.0625f32);
        let mut b = vec![0u8; BLOCK_BYTES];
        b[0..2].copy_from_slice(&h(d));
        b[2..4].copy_from_slice(&h(dmin));
        b[4..16].copy_from_slice(&pack_scale_min_k4(&sc, &mn));
        for i in 0..128 {
            b[16 + i] = (i * 37 % 256) as u8;
        }
        let mut y = vec![0f32; 256];
        dequantize(&b, &mut y);
        for (e, &got) in y.iter().enumerate() {
            let (c, half, l) = (e / 64, (e % 64) / 32, e % 32);
            let byte = b[16 + 32 * c + l];
            let q = if half == 0 { byte & 0xF } else { byte >> 4 };
            let s = 2 * c + half;
            let want = (d * sc[s] as f32) * q as f32 - dmin * mn[s] as f32;
            assert_eq!(got, want, "weight {e}");
        }
    }
}
