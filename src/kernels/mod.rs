//! SIMD kernels: one file per instruction set, one function per format in each, and the dispatch
//! table that picks them from the CPU's features at run time.
//!
//! The portable decoders in `formats/` are the reference; every kernel must equal them bit for bit.
//! A kernel that has no function for a format falls back to the portable one, so adding an ISA or a
//! format never leaves a hole. Which path runs is chosen once (the best the CPU supports, or the one
//! named by the `REALIZAR_KERNEL` environment variable) and can be changed with [`set_kernel`].

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::formats::{self, DecodeFn};
use crate::QuantType;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// A code path for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The portable Rust decoders of `formats/` (the reference), on every CPU.
    Scalar,
    /// x86-64 AVX2 (with F16C for scales and FMA, used only where a product is exact).
    Avx2,
    /// x86-64 AVX-512 F + BW.
    Avx512,
    /// aarch64 NEON.
    Neon,
}

impl Kernel {
    /// Every kernel realizar knows, whether or not this CPU runs it.
    pub const ALL: [Kernel; 4] = [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512, Kernel::Neon];

    /// Lower-case name: `"scalar"`, `"avx2"`, `"avx512"`, `"neon"`.
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::Neon => "neon",
        }
    }

    /// Parses a name (any case).
    pub fn from_name(name: &str) -> Result<Kernel> {
        Self::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown kernel {name:?}; expected one of auto, {}",
                Self::ALL.map(Kernel::name).join(", ")
            ))
        })
    }

    /// Whether this CPU (and this build) can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::supported(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::supported(),
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => neon::supported(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(c: u8) -> Kernel {
        Self::ALL[(c - 1) as usize]
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Kernels this CPU supports, best last.
pub fn available() -> Vec<Kernel> {
    Kernel::ALL.into_iter().filter(|k| k.is_supported()).collect()
}

/// The best kernel this CPU supports.
pub fn best() -> Kernel {
    [Kernel::Avx512, Kernel::Avx2, Kernel::Neon].into_iter().find(|k| k.is_supported()).unwrap_or(Kernel::Scalar)
}

/// 0: not chosen yet; otherwise `Kernel::code`.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The kernel decoding uses now. On first use it is `REALIZAR_KERNEL` if that is set to a
/// supported kernel (an unknown or unsupported value is ignored with a warning on stderr), else
/// [`best`].
pub fn active() -> Kernel {
    match ACTIVE.load(Ordering::Relaxed) {
        0 => {
            let k = from_env().unwrap_or_else(best);
            // Another thread may have chosen meanwhile; the first choice wins.
            match ACTIVE.compare_exchange(0, k.code(), Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => k,
                Err(c) => Kernel::from_code(c),
            }
        }
        c => Kernel::from_code(c),
    }
}

fn from_env() -> Option<Kernel> {
    let v = std::env::var("REALIZAR_KERNEL").ok()?;
    if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("auto") {
        return None;
    }
    match Kernel::from_name(&v) {
        Ok(k) if k.is_supported() => Some(k),
        Ok(k) => {
            eprintln!("realizar: REALIZAR_KERNEL={v}: this CPU does not support {k}; using {}", best());
            None
        }
        Err(e) => {
            eprintln!("realizar: REALIZAR_KERNEL: {e}; using {}", best());
            None
        }
    }
}

/// Forces a kernel for every later call in this process (`None`: back to the best one). Fails,
/// changing nothing, if the CPU does not support it.
pub fn set_kernel(kernel: Option<Kernel>) -> Result<Kernel> {
    let k = kernel.unwrap_or_else(best);
    if !k.is_supported() {
        return Err(Error::InvalidArgument(format!(
            "kernel {k} is not supported on this CPU; available: {}",
            available().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
        )));
    }
    ACTIVE.store(k.code(), Ordering::Relaxed);
    Ok(k)
}

/// The little-endian u32 at `p` (unaligned), for the SIMD kernels.
///
/// # Safety
/// `p` must be readable for 4 bytes.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) unsafe fn u32_at(p: *const u8) -> u32 {
    // SAFETY: the caller's guarantee.
    u32::from_le(unsafe { p.cast::<u32>().read_unaligned() })
}

/// The little-endian u16 at `p` (unaligned), for the SIMD kernels.
///
/// # Safety
/// `p` must be readable for 2 bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn u16_at(p: *const u8) -> u16 {
    // SAFETY: the caller's guarantee.
    u16::from_le(unsafe { p.cast::<u16>().read_unaligned() })
}

/// The portable decoder of a one-value-per-element format (F32, F16, BF16) on `n` values at raw
/// pointers: the SIMD kernels' tails, and the groups they leave to the reference (F16 NaNs).
///
/// # Safety
/// `src` must be readable for `n * qtype.type_size()` bytes and `dst` writable for `n` floats, and
/// the two must not overlap.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) unsafe fn portable_values(qtype: QuantType, src: *const u8, dst: *mut f32, n: usize) {
    debug_assert_eq!(qtype.block_size(), 1);
    // SAFETY: the caller's guarantees.
    let (src, dst) =
        unsafe { (std::slice::from_raw_parts(src, n * qtype.type_size()), std::slice::from_raw_parts_mut(dst, n)) };
    formats::portable(qtype)(src, dst);
}

/// The decoder of `qtype` on `kernel` (the portable one where the kernel has none for it).
/// `kernel` must be supported by this CPU: the SIMD functions are only sound there.
pub fn decoder(qtype: QuantType, kernel: Kernel) -> DecodeFn {
    assert!(kernel.is_supported(), "kernel {kernel} used on a CPU without it");
    let simd: Option<DecodeFn> = match kernel {
        Kernel::Scalar => None,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => avx2::decoder(qtype),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => avx512::decoder(qtype).or_else(|| avx2::decoder(qtype)),
        #[cfg(target_arch = "aarch64")]
        Kernel::Neon => neon::decoder(qtype),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    simd.unwrap_or_else(|| formats::portable(qtype))
}
