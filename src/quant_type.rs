//! The one table of formats: ggml type id, name, weights per block, bytes per block.
//!
//! Adding a format means adding one row to [`QuantType`] and [`QuantType::ALL`], one file under
//! `formats/`, and one arm in `formats::decoder`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A GGML tensor type that realizar can decode.
///
/// The discriminant is the ggml / GGUF type id (`enum ggml_type` in ggml.h).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum QuantType {
    /// 32-bit IEEE float, stored little-endian.
    F32 = 0,
    /// 16-bit IEEE half float.
    F16 = 1,
    /// 32 weights: fp16 scale `d`, 4-bit quants, `y = (q - 8) * d`.
    Q4_0 = 2,
    /// 32 weights: fp16 `d` and `m`, 4-bit quants, `y = q * d + m`.
    Q4_1 = 3,
    /// 32 weights: fp16 `d`, 5-bit quants (high bits in a u32), `y = (q - 16) * d`.
    Q5_0 = 6,
    /// 32 weights: fp16 `d` and `m`, 5-bit quants, `y = q * d + m`.
    Q5_1 = 7,
    /// 32 weights: fp16 `d`, signed 8-bit quants, `y = q * d`.
    Q8_0 = 8,
    /// 256-weight super-block of 16 sub-blocks with 4-bit scales and mins, 2-bit quants.
    Q2_K = 10,
    /// 256-weight super-block of 16 sub-blocks with 6-bit scales, 3-bit quants.
    Q3_K = 11,
    /// 256-weight super-block of 8 sub-blocks with 6-bit scales and mins, 4-bit quants.
    Q4_K = 12,
    /// 256-weight super-block of 8 sub-blocks with 6-bit scales and mins, 5-bit quants.
    Q5_K = 13,
    /// 256-weight super-block of 16 sub-blocks with 8-bit scales, 6-bit quants.
    Q6_K = 14,
    /// bfloat16 (the upper half of an f32).
    BF16 = 30,
}

impl QuantType {
    /// Every type realizar decodes, in ggml id order.
    pub const ALL: [QuantType; 13] = [
        QuantType::F32,
        QuantType::F16,
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
        QuantType::Q2_K,
        QuantType::Q3_K,
        QuantType::Q4_K,
        QuantType::Q5_K,
        QuantType::Q6_K,
        QuantType::BF16,
    ];

    /// The ggml / GGUF type id.
    pub const fn ggml_id(self) -> u32 {
        self as u32
    }

    /// The canonical name, as ggml and gguf-py spell it (`"Q4_K"`, `"BF16"`).
    pub const fn name(self) -> &'static str {
        match self {
            QuantType::F32 => "F32",
            QuantType::F16 => "F16",
            QuantType::Q4_0 => "Q4_0",
            QuantType::Q4_1 => "Q4_1",
            QuantType::Q5_0 => "Q5_0",
            QuantType::Q5_1 => "Q5_1",
            QuantType::Q8_0 => "Q8_0",
            QuantType::Q2_K => "Q2_K",
            QuantType::Q3_K => "Q3_K",
            QuantType::Q4_K => "Q4_K",
            QuantType::Q5_K => "Q5_K",
            QuantType::Q6_K => "Q6_K",
            QuantType::BF16 => "BF16",
        }
    }

    /// Weights per block (`QK` in ggml; 1 for the float types).
    pub const fn block_size(self) -> usize {
        match self {
            QuantType::F32 | QuantType::F16 | QuantType::BF16 => 1,
            QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1 | QuantType::Q8_0 => 32,
            QuantType::Q2_K | QuantType::Q3_K | QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => 256,
        }
    }

    /// Bytes per block (`sizeof(block_xxx)` in ggml).
    pub const fn type_size(self) -> usize {
        match self {
            QuantType::F32 => 4,
            QuantType::F16 | QuantType::BF16 => 2,
            QuantType::Q4_0 => 18,
            QuantType::Q4_1 => 20,
            QuantType::Q5_0 => 22,
            QuantType::Q5_1 => 24,
            QuantType::Q8_0 => 34,
            QuantType::Q2_K => 84,
            QuantType::Q3_K => 110,
            QuantType::Q4_K => 144,
            QuantType::Q5_K => 176,
            QuantType::Q6_K => 210,
        }
    }

    /// Storage bits per weight, scales included (Q4_0 is 4.5, Q6_K 6.5625).
    pub fn bits_per_weight(self) -> f64 {
        (self.type_size() * 8) as f64 / self.block_size() as f64
    }

    /// True for the block-quantized types (everything but F32, F16 and BF16).
    pub const fn is_quantized(self) -> bool {
        !matches!(self, QuantType::F32 | QuantType::F16 | QuantType::BF16)
    }

    /// The type with this ggml / GGUF id.
    pub fn from_ggml_id(id: u32) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.ggml_id() == id)
            .ok_or_else(|| Error::UnknownTypeId { id, supported: Self::supported_list() })
    }

    /// The type with this name, in any case (`"q6_k"`, `"Q6_K"`).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| Error::UnknownTypeName { name: name.to_owned(), supported: Self::supported_list() })
    }

    /// Number of weights in `nbytes` bytes of this type, or the error explaining why it is not whole.
    pub fn weights_in(self, nbytes: usize) -> Result<usize> {
        let bs = self.type_size();
        if !nbytes.is_multiple_of(bs) {
            return Err(Error::BadInputLength {
                qtype: self,
                block_bytes: bs,
                block_weights: self.block_size(),
                len: nbytes,
                remainder: nbytes % bs,
            });
        }
        Ok(nbytes / bs * self.block_size())
    }

    /// "F32 (0), F16 (1), ..." for error messages.
    pub fn supported_list() -> String {
        Self::ALL.iter().map(|t| format!("{} ({})", t.name(), t.ggml_id())).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuantType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

impl TryFrom<u32> for QuantType {
    type Error = Error;
    fn try_from(id: u32) -> Result<Self> {
        Self::from_ggml_id(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_ggml() {
        let expect = [
            ("F32", 0, 1, 4),
            ("F16", 1, 1, 2),
            ("Q4_0", 2, 32, 18),
            ("Q4_1", 3, 32, 20),
            ("Q5_0", 6, 32, 22),
            ("Q5_1", 7, 32, 24),
            ("Q8_0", 8, 32, 34),
            ("Q2_K", 10, 256, 84),
            ("Q3_K", 11, 256, 110),
            ("Q4_K", 12, 256, 144),
            ("Q5_K", 13, 256, 176),
            ("Q6_K", 14, 256, 210),
            ("BF16", 30, 1, 2),
        ];
        assert_eq!(expect.len(), QuantType::ALL.len());
        for (t, (name, id, bs, ts)) in QuantType::ALL.into_iter().zip(expect) {
            assert_eq!((t.name(), t.ggml_id(), t.block_size(), t.type_size()), (name, id, bs, ts));
            assert_eq!(QuantType::from_name(&name.to_lowercase()).unwrap(), t);
            assert_eq!(QuantType::from_ggml_id(id).unwrap(), t);
        }
        assert_eq!(QuantType::Q4_0.bits_per_weight(), 4.5);
        assert_eq!(QuantType::Q6_K.bits_per_weight(), 6.5625);
    }

    #[test]
    fn unknown_names_and_ids() {
        for id in [4, 5, 9, 15, 16, 31, 1000] {
            let e = QuantType::from_ggml_id(id).unwrap_err().to_string();
            assert!(e.contains(&id.to_string()) && e.contains("Q6_K (14)"), "{e}");
        }
        let e = QuantType::from_name("q7_k").unwrap_err().to_string();
        assert!(e.contains("\"q7_k\"") && e.contains("Q4_0 (2)"), "{e}");
    }

    #[test]
    fn weights_in_reports_remainder() {
        assert_eq!(QuantType::Q6_K.weights_in(420).unwrap(), 512);
        let e = QuantType::Q6_K.weights_in(421).unwrap_err();
        assert_eq!(
            e,
            Error::BadInputLength {
                qtype: QuantType::Q6_K,
                block_bytes: 210,
                block_weights: 256,
                len: 421,
                remainder: 1
            }
        );
        assert!(e.to_string().contains("421") && e.to_string().contains("210"));
    }
}
