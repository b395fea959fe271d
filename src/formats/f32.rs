//! F32: little-endian IEEE binary32, copied bit for bit (NaN payloads included).

pub const BLOCK_WEIGHTS: usize = 1;
pub const BLOCK_BYTES: usize = 4;

/// Decodes whole values (see [`super::DecodeFn`]).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32::from_bits(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_bits() {
        let vals = [1.5f32, -0.0, f32::INFINITY, f32::from_bits(0x7FA0_0001), f32::from_bits(1)];
        let src: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut y = [0f32; 5];
        dequantize(&src, &mut y);
        assert_eq!(y.map(f32::to_bits), vals.map(f32::to_bits));
    }
}
