//! Q4_1: 32 weights in 20 bytes. `d: f16 @0, m: f16 @2, qs[16] @4`; nibbles as Q4_0;
//! `y = q * d + m` (two roundings, no fused multiply-add).

use super::f16_at;
use super::kquant_search::{make_qkx3_quants, put_f16, sum_sq};

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

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q4_1_ref` and `quantize_q4_1` with an importance matrix).

/// Encodes one block exactly as ggml's `quantize_row_q4_1_ref`.
#[inline(always)]
pub fn quantize_block(x: &[f32], y: &mut [u8]) {
    let x = &x[..BLOCK_WEIGHTS];
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let xi0 = ((x0 + 0.5f32) as i32 as i8 as i32).min(15) as u8;
        let xi1 = ((x1 + 0.5f32) as i32 as i8 as i32).min(15) as u8;
        y[4 + j] = xi0 | (xi1 << 4);
    }
}

/// Encodes whole blocks (`quantize_row_q4_1_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one row with importance weights `qw`, exactly as ggml's `quantize_row_q4_1_impl`.
#[allow(non_snake_case)]
pub fn quantize_row_imatrix(x: &[f32], qw: &[f32], dst: &mut [u8]) {
    let n_per_row = x.len();
    let sigma2 = sum_sq(x) / n_per_row as f32;
    let mut weight = [0f32; BLOCK_WEIGHTS];
    let mut L = [0u8; BLOCK_WEIGHTS];
    let mut Laux = [0u8; BLOCK_WEIGHTS];
    for ((xb, qw), y) in
        x.chunks_exact(BLOCK_WEIGHTS).zip(qw.chunks_exact(BLOCK_WEIGHTS)).zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        for j in 0..BLOCK_WEIGHTS {
            weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
        }
        let mut min = 0f32;
        let d =
            make_qkx3_quants(BLOCK_WEIGHTS, 15, xb, Some(&weight), &mut L, &mut min, &mut Laux, -0.9, 0.05, 36, false);
        put_f16(y, 0, d);
        put_f16(y, 2, -min);
        for j in 0..16 {
            y[4 + j] = L[j] | (L[j + 16] << 4);
        }
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
