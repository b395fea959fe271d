//! Sizes of every ggml tensor type, including those realizar does not decode, so that any GGUF file
//! can be opened, listed and validated (its tensors' byte sizes computed) even if some of its
//! tensors cannot be decoded. Values are ggml's `type_traits` (`blck_size`, `type_size`) as of
//! gguf-py 0.19 (`GGML_QUANT_SIZES`), except Q8_1, which is 36 bytes in ggml (`ggml_half d, s` +
//! 32 quants; gguf-py still says 40, from the old `float d, s` layout). Ids that ggml retired
//! (4, 5, 31..33, 36..38) are absent.

use crate::QuantType;

/// One ggml tensor type: id, name, weights per block, bytes per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    /// The ggml / GGUF type id.
    pub id: u32,
    /// The name as ggml and gguf-py spell it.
    pub name: &'static str,
    /// Weights per block.
    pub block_size: u64,
    /// Bytes per block.
    pub type_size: u64,
}

impl GgmlType {
    /// The realizar [`QuantType`] of this type, if realizar decodes it.
    pub fn quant_type(&self) -> Option<QuantType> {
        QuantType::from_ggml_id(self.id).ok()
    }

    /// Storage bits per weight.
    pub fn bits_per_weight(&self) -> f64 {
        (self.type_size * 8) as f64 / self.block_size as f64
    }
}

const fn t(id: u32, name: &'static str, block_size: u64, type_size: u64) -> GgmlType {
    GgmlType { id, name, block_size, type_size }
}

/// Every ggml tensor type, in id order.
pub const GGML_TYPES: [GgmlType; 34] = [
    t(0, "F32", 1, 4),
    t(1, "F16", 1, 2),
    t(2, "Q4_0", 32, 18),
    t(3, "Q4_1", 32, 20),
    t(6, "Q5_0", 32, 22),
    t(7, "Q5_1", 32, 24),
    t(8, "Q8_0", 32, 34),
    t(9, "Q8_1", 32, 36),
    t(10, "Q2_K", 256, 84),
    t(11, "Q3_K", 256, 110),
    t(12, "Q4_K", 256, 144),
    t(13, "Q5_K", 256, 176),
    t(14, "Q6_K", 256, 210),
    t(15, "Q8_K", 256, 292),
    t(16, "IQ2_XXS", 256, 66),
    t(17, "IQ2_XS", 256, 74),
    t(18, "IQ3_XXS", 256, 98),
    t(19, "IQ1_S", 256, 50),
    t(20, "IQ4_NL", 32, 18),
    t(21, "IQ3_S", 256, 110),
    t(22, "IQ2_S", 256, 82),
    t(23, "IQ4_XS", 256, 136),
    t(24, "I8", 1, 1),
    t(25, "I16", 1, 2),
    t(26, "I32", 1, 4),
    t(27, "I64", 1, 8),
    t(28, "F64", 1, 8),
    t(29, "IQ1_M", 256, 56),
    t(30, "BF16", 1, 2),
    t(34, "TQ1_0", 256, 54),
    t(35, "TQ2_0", 256, 66),
    t(39, "MXFP4", 32, 17),
    t(40, "NVFP4", 64, 36),
    t(41, "Q1_0", 128, 18),
];

/// The ggml type with this id, or `None` if ggml has no such (current) type.
pub fn ggml_type(id: u32) -> Option<&'static GgmlType> {
    GGML_TYPES.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_quant_type() {
        for q in QuantType::ALL {
            let g = ggml_type(q.ggml_id()).unwrap();
            assert_eq!(
                (g.name, g.block_size as usize, g.type_size as usize),
                (q.name(), q.block_size(), q.type_size())
            );
            assert_eq!(g.quant_type(), Some(q));
        }
        for id in [4, 5, 31, 36, 42, 1000, u32::MAX] {
            assert!(ggml_type(id).is_none(), "{id}");
        }
        assert_eq!(ggml_type(23).unwrap().bits_per_weight(), 4.25);
    }
}
