//! Q6_K: 256 weights in 210 bytes. `ql[128] @0, qh[64] @128, scales: i8[16] @192, d: f16 @208`.
//! Two halves of 128; half h uses `ql[64h..]`, `qh[32h..]`, `scales[8h..]`. For l in 0..32 the
//! four 6-bit quants (minus 32) land at l, l+32, l+64, l+96 with scale index l/16 + 0, 2, 4, 6.
//! `y = (d * sc) * q`.

use super::f16_at;

pub const BLOCK_WEIGHTS: usize = 256;
pub const BLOCK_BYTES: usize = 210;

/// Decodes one block (portable reference).
#[inline(always)]
pub fn decode_block(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | (qh[l] & 3) << 4) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) as i32 - 32;
            let q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
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
    use super::super::testutil::{bytes, h};
    use super::*;

    #[test]
    fn hand_built_block() {
        let d = 0.001953125f32;
        let mut b = bytes(BLOCK_BYTES, 6);
        let sc: [i8; 16] = [-128, 127, 1, -1, 64, -64, 3, 99, -7, 13, 120, -100, 55, -33, 2, 77];
        for (i, s) in sc.iter().enumerate() {
            b[192 + i] = *s as u8;
        }
        b[208..210].copy_from_slice(&h(d));
        let mut y = vec![0f32; 256];
        dequantize(&b, &mut y);
        for (e, &got) in y.iter().enumerate() {
            // Independent formulation: position within the half -> (quarter, l).
            let (half, r) = (e / 128, e % 128);
            let (quarter, l) = (r / 32, r % 32);
            let low = b[64 * half + l + 32 * (quarter & 1)];
            let nib = if quarter < 2 { low & 0xF } else { low >> 4 };
            let hi = (b[128 + 32 * half + l] >> (2 * quarter)) & 3;
            let q = (nib | hi << 4) as i32 - 32;
            let s = sc[8 * half + l / 16 + 2 * quarter] as f32;
            assert_eq!(got, (d * s) * q as f32, "weight {e}");
        }
    }
}
