//! BF16: the upper 16 bits of an f32; widening is a shift, exact for every value (NaN payloads
//! kept bit for bit, signalling NaNs stay signalling).

pub const BLOCK_WEIGHTS: usize = 1;
pub const BLOCK_BYTES: usize = 2;

/// Decodes whole values (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_bits() {
        let src: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        let mut y = vec![0f32; 65536];
        dequantize(&src, &mut y);
        for h in 0..=u16::MAX as u32 {
            assert_eq!(y[h as usize].to_bits(), h << 16);
        }
    }
}
