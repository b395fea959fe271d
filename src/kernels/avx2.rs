//! x86-64 AVX2 kernels (one function per format). Each is `#[target_feature(enable = "avx2")]`
//! and reached only through [`decoder`], after [`supported`] said yes.

use crate::formats::DecodeFn;
use crate::QuantType;

/// Whether this CPU runs the AVX2 kernels.
pub fn supported() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c")
}

/// The AVX2 decoder of a format, if there is one.
pub fn decoder(_qtype: QuantType) -> Option<DecodeFn> {
    None
}
