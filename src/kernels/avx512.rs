//! x86-64 AVX-512 (F + BW) kernels (one function per format), reached only through [`decoder`].

use crate::formats::DecodeFn;
use crate::QuantType;

/// Whether this CPU runs the AVX-512 kernels.
pub fn supported() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
}

/// The AVX-512 decoder of a format, if there is one.
pub fn decoder(_qtype: QuantType) -> Option<DecodeFn> {
    None
}
