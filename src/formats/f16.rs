//! F16: little-endian IEEE binary16, widened exactly to f32. Every finite value, subnormal and
//! infinity converts exactly; a NaN keeps sign and payload bit for bit without being quieted, as
//! NumPy's `astype(np.float32)` and so gguf-py do (see [`super::fp16_to_f32`]).

use super::fp16_to_f32;

pub const BLOCK_WEIGHTS: usize = 1;
pub const BLOCK_BYTES: usize = 2;

/// Decodes whole values (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = fp16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_nan_value_is_exact() {
        let src: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        let mut y = vec![0f32; 65536];
        dequantize(&src, &mut y);
        for h in 0..=u16::MAX {
            let (sign, exp, man) = ((h >> 15) as i32, ((h >> 10) & 31) as i32, (h & 1023) as f64);
            let mag = match exp {
                0 => man * 2f64.powi(-24),
                31 if man == 0.0 => f64::INFINITY,
                31 => {
                    let want = ((h as u32 & 0x8000) << 16) | 0x7F80_0000 | ((h as u32 & 0x3FF) << 13);
                    assert_eq!(y[h as usize].to_bits(), want, "NaN {h:#06x}");
                    continue;
                }
                _ => (1024.0 + man) * 2f64.powi(exp - 25),
            };
            let want = if sign == 1 { -mag } else { mag } as f32;
            assert_eq!(y[h as usize].to_bits(), want.to_bits(), "fp16 {h:#06x}");
        }
    }
}
