//! Q5_1: 32 weights in 24 bytes. `d: f16 @0, m: f16 @2, qh: u32 LE @4, qs[16] @8`; 5-bit quants as
//! Q5_0; `y = q * d + m`.

use super::f16_at;
use super::kquant_search::{make_qkx3_quants, put_f16, sum_sq};

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

// ---------------------------------------------------------------------------------------------
// Encoding (ggml's `quantize_row_q5_1_ref` and `quantize_q5_1` with an importance matrix).

/// Encodes one block exactly as ggml's `quantize_row_q5_1_ref`.
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
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(y, 0, d);
    put_f16(y, 2, min);
    let mut qh = 0u32;
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let xi0 = (x0 + 0.5f32) as i32 as u8;
        let xi1 = (x1 + 0.5f32) as i32 as u8;
        y[8 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= (((xi0 & 0x10) as u32) >> 4) << j;
        qh |= (((xi1 & 0x10) as u32) >> 4) << (j + 16);
    }
    y[4..8].copy_from_slice(&qh.to_le_bytes());
}

/// Encodes whole blocks (`quantize_row_q5_1_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(BLOCK_WEIGHTS).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(x, y);
    }
}

/// Encodes one row with importance weights `qw`, exactly as ggml's `quantize_row_q5_1_impl`.
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
            make_qkx3_quants(BLOCK_WEIGHTS, 31, xb, Some(&weight), &mut L, &mut min, &mut Laux, -0.9, 0.05, 36, false);
        put_f16(y, 0, d);
        put_f16(y, 2, -min);
        let mut qh = 0u32;
        for j in 0..16 {
            let xi0 = L[j];
            let xi1 = L[j + 16];
            y[8 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= (((xi0 & 0x10) as u32) >> 4) << j;
            qh |= (((xi1 & 0x10) as u32) >> 4) << (j + 16);
        }
        y[4..8].copy_from_slice(&qh.to_le_bytes());
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
