//! aarch64 NEON kernels (one function per format), reached only through [`decoder`].

use crate::formats::DecodeFn;
use crate::QuantType;

/// Whether this CPU runs the NEON kernels (NEON is part of the aarch64 baseline).
pub fn supported() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

/// The NEON decoder of a format, if there is one.
pub fn decoder(_qtype: QuantType) -> Option<DecodeFn> {
    None
}
