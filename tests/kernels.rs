//! Every SIMD kernel this CPU runs must equal the portable decoder bit for bit, for any bytes:
//! random blocks, blocks whose fp16 fields are special (±Inf, quiet and signalling NaNs, ±0,
//! subnormals, ±max), block counts that are not multiples of any SIMD width or thread chunk,
//! unaligned input and output, several thread counts, and outputs large enough for streaming stores.
//!
//! Two environment variables serve the emulator run of `.ci/bochs-avx512` (AVX-512 under Bochs,
//! ~100x slower than this machine): `REALIZAR_TEST_KERNELS=avx512` tests only the named kernels
//! (comma list) and fails if this CPU does not run one of them; `REALIZAR_TEST_SCALE=0.05` shrinks
//! the large cases (block counts above 65, the fp16 scale walk, the streaming-store threshold).
//! Unset, every kernel this CPU runs is tested at full size; the first test prints which.

use std::io::Write;

use realizar::formats::portable;
use realizar::kernels::{self, Kernel};
use realizar::{dequantize_into_with, dequantize_many_into, Error, Options, QuantType};

/// Deterministic pseudo-random numbers (xorshift64*), so the test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = (self.next() >> 56) as u8;
        }
    }
}

/// fp16 bit patterns that stress the conversion and the arithmetic.
const SPECIAL_F16: [u16; 18] = [
    0x7C00, // +Inf
    0xFC00, // -Inf
    0x7E00, // quiet NaN
    0xFE00, // negative quiet NaN
    0x7E01, // quiet NaN with payload
    0x7C01, // signalling NaN
    0xFD55, // negative signalling NaN with payload
    0x7DFF, // signalling NaN, all payload bits
    0x0000, // +0
    0x8000, // -0
    0x0001, // smallest subnormal
    0x83FF, // largest negative subnormal
    0x0400, // smallest normal
    0x7BFF, // max
    0xFBFF, // -max
    0x3C00, // 1
    0xB800, // -0.5
    0x1400, // 2^-10
];

/// bf16 specials: ±Inf, quiet and signalling NaNs, ±0, subnormal, ±max.
const SPECIAL_BF16: [u16; 10] = [0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFA5, 0x0000, 0x8000, 0x0001, 0x7F7F, 0xFF7F];

/// Byte offsets of the fp16 fields in a block of each block format.
fn f16_fields(q: QuantType) -> &'static [usize] {
    match q {
        QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q8_0 => &[0],
        QuantType::Q4_1 | QuantType::Q5_1 | QuantType::Q4_K | QuantType::Q5_K => &[0, 2],
        QuantType::Q2_K => &[80, 82],
        QuantType::Q3_K => &[108],
        QuantType::Q6_K => &[208],
        QuantType::F16 | QuantType::BF16 | QuantType::F32 => &[],
    }
}

/// `nblocks` blocks of `q`: random bytes, with about half of the fp16 fields (or values, for the
/// float formats) replaced by special values and some by ordinary small scales.
fn input(q: QuantType, nblocks: usize, rng: &mut Rng) -> Vec<u8> {
    let bb = q.type_size();
    let mut b = vec![0u8; nblocks * bb];
    rng.fill(&mut b);
    for blk in b.chunks_exact_mut(bb) {
        match q {
            QuantType::F16 | QuantType::BF16 => {
                let specials: &[u16] = if q == QuantType::F16 { &SPECIAL_F16 } else { &SPECIAL_BF16 };
                if rng.below(4) == 0 {
                    blk.copy_from_slice(&specials[rng.below(specials.len())].to_le_bytes());
                }
            }
            QuantType::F32 => {
                if rng.below(4) == 0 {
                    let v: [u32; 5] = [0x7F80_0000, 0x7FA0_0001, 0xFFC0_0000, 0x8000_0000, 1];
                    blk.copy_from_slice(&v[rng.below(5)].to_le_bytes());
                }
            }
            _ => {
                for &off in f16_fields(q) {
                    let h = match rng.below(4) {
                        0 | 1 => SPECIAL_F16[rng.below(SPECIAL_F16.len())],
                        2 => 0x2000 + rng.below(0x1000) as u16, // a small, ordinary scale
                        _ => continue,                          // random bits
                    };
                    blk[off..off + 2].copy_from_slice(&h.to_le_bytes());
                }
            }
        }
    }
    // Runs of clean values too, so the F16 kernel's fast path (no NaN in 16 values) is taken.
    if q == QuantType::F16 {
        for v in b.chunks_exact_mut(2).take(64) {
            v.copy_from_slice(&(0x3000 + rng.below(0x2000) as u16).to_le_bytes());
        }
    }
    b
}

/// `REALIZAR_TEST_SCALE` (default 1; at most 1).
fn scale() -> f64 {
    std::env::var("REALIZAR_TEST_SCALE").ok().map_or(1.0, |v| {
        let s: f64 = v.trim().parse().expect("REALIZAR_TEST_SCALE must be a number");
        assert!(s > 0.0, "REALIZAR_TEST_SCALE must be positive");
        s.min(1.0)
    })
}

/// A block count of a test list at the test scale: counts up to 65 are kept, larger ones shrunk
/// (at least 65, odd, so still no multiple of a SIMD width or thread chunk).
fn scaled(n: usize) -> usize {
    if scale() >= 1.0 || n <= 65 {
        n
    } else {
        ((n as f64 * scale()).ceil() as usize).max(65) | 1
    }
}

/// The kernels under test: every one this CPU runs, or those named in `REALIZAR_TEST_KERNELS`,
/// each of which must be supported here.
fn kernels_under_test() -> Vec<Kernel> {
    match std::env::var("REALIZAR_TEST_KERNELS") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|name| {
                let k = Kernel::from_name(name).unwrap();
                assert!(k.is_supported(), "REALIZAR_TEST_KERNELS names {k}, which this CPU does not run");
                k
            })
            .collect(),
        _ => kernels::available(),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Panics with the first differing weight, if any.
fn assert_same(q: QuantType, what: &str, got: &[f32], want: &[f32], src: &[u8]) {
    assert_eq!(got.len(), want.len());
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits()) {
        let (bw, bb) = (q.block_size(), q.type_size());
        let blk = i / bw;
        panic!(
            "{q} {what}: weight {i} is {:#010x} ({}), portable gives {:#010x} ({}); block {blk}: {:02x?}",
            got[i].to_bits(),
            got[i],
            want[i].to_bits(),
            want[i],
            &src[blk * bb..(blk + 1) * bb]
        );
    }
}

fn reference(q: QuantType, src: &[u8]) -> Vec<f32> {
    let mut want = vec![0f32; src.len() / q.type_size() * q.block_size()];
    portable(q)(src, &mut want);
    want
}

#[test]
fn this_cpu_runs_some_kernel() {
    let av = kernels::available();
    let tested = kernels_under_test();
    let names = |ks: &[Kernel]| ks.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
    let skipped: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| !tested.contains(k)).collect();
    // Straight to stderr (not `eprintln!`, which the test harness captures): always shown.
    let _ = writeln!(
        std::io::stderr(),
        "kernels tested: {}; not tested: {} (this CPU runs: {})",
        names(&tested),
        if skipped.is_empty() { "none".to_string() } else { names(&skipped) },
        names(&av)
    );
    assert!(av.contains(&Kernel::Scalar));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
        assert!(av.contains(&Kernel::Avx2), "AVX2 CPU but the AVX2 kernel is not offered: {av:?}");
    }
    // AVX-512 F + BW: the kernel is offered, chosen by default, and has every format.
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        assert!(av.contains(&Kernel::Avx512), "AVX-512 CPU but the AVX-512 kernel is not offered: {av:?}");
        assert_eq!(kernels::best(), Kernel::Avx512);
        for q in QuantType::ALL {
            assert!(kernels::avx512::decoder(q).is_some(), "no AVX-512 decoder for {q}");
        }
    }
    // NEON is aarch64's baseline: the kernel is offered, chosen by default, and has every format.
    #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
    {
        assert!(av.contains(&Kernel::Neon), "aarch64 but the NEON kernel is not offered: {av:?}");
        assert_eq!(kernels::best(), Kernel::Neon);
        for q in QuantType::ALL {
            assert!(kernels::neon::decoder(q).is_some(), "no NEON decoder for {q}");
        }
    }
}

#[test]
fn every_kernel_equals_portable_on_odd_sizes_and_unaligned_slices() {
    let counts = [1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 100, 257];
    for kernel in kernels_under_test() {
        for q in QuantType::ALL {
            let decode = kernels::decoder(q, kernel);
            let mut rng = Rng::new(q.ggml_id() as u64 * 1000 + 7);
            for &n in &counts {
                let n = scaled(n);
                let n = if q.block_size() == 1 { n * 3 } else { n }; // more values for F32/F16/BF16
                let clean = input(q, n, &mut rng);
                let want = reference(q, &clean);
                for src_off in 0..4 {
                    let mut buf = vec![0u8; src_off + clean.len()];
                    buf[src_off..].copy_from_slice(&clean);
                    let src = &buf[src_off..];
                    for dst_off in 0..4 {
                        let mut out = vec![f32::from_bits(0x7FBA_D0D0); dst_off + want.len() + 1];
                        let dst = &mut out[dst_off..dst_off + want.len()];
                        decode(src, dst);
                        assert_same(q, &format!("{kernel} n={n} src+{src_off} dst+{dst_off}"), dst, &want, src);
                        // Nothing written outside the output slice.
                        assert!(out[..dst_off]
                            .iter()
                            .chain(&out[dst_off + want.len()..])
                            .all(|x| x.to_bits() == 0x7FBA_D0D0));
                    }
                }
            }
        }
    }
}

#[test]
fn every_kernel_and_thread_count_equals_portable() {
    let counts = [1usize, 2, 3, 7, 33, 1000, 4099];
    for kernel in kernels_under_test() {
        for q in QuantType::ALL {
            let mut rng = Rng::new(q.ggml_id() as u64 * 31 + 1);
            for &n in &counts {
                let n = scaled(n);
                let n = if q.block_size() == 1 { n * 5 } else { n };
                let src = input(q, n, &mut rng);
                let want = reference(q, &src);
                for threads in [1, 2, 3, 8] {
                    for dst_off in [0, 1, 3] {
                        let mut out = vec![0f32; dst_off + want.len()];
                        let dst = &mut out[dst_off..];
                        dequantize_into_with(&src, q, dst, Options { threads, kernel: Some(kernel) }).unwrap();
                        assert_same(q, &format!("{kernel} n={n} threads={threads} dst+{dst_off}"), dst, &want, &src);
                    }
                }
                // Automatic thread count.
                let mut out = vec![0f32; want.len()];
                dequantize_into_with(&src, q, &mut out, Options { threads: 0, kernel: Some(kernel) }).unwrap();
                assert_same(q, &format!("{kernel} n={n} threads=auto"), &out, &want, &src);
            }
        }
    }
}

/// Outputs past the streaming-store threshold (decoded through a staging buffer, streamed out),
/// 32-, 16- and 4-byte aligned.
#[test]
fn large_outputs_with_streaming_stores_equal_portable() {
    #[cfg(target_arch = "x86_64")]
    let min_bytes = if scale() < 1.0 {
        // A lower threshold, so that small outputs take the streaming path too. It is global:
        // other tests running meanwhile may stream as well, which changes no value.
        realizar::kernels::avx2::set_stream_min_bytes(64 << 10);
        64 << 10
    } else {
        realizar::kernels::avx2::STREAM_MIN_BYTES
    };
    #[cfg(not(target_arch = "x86_64"))]
    let min_bytes = 16 << 20;
    for kernel in kernels_under_test() {
        for q in [QuantType::Q4_0, QuantType::Q6_K, QuantType::Q3_K, QuantType::F16] {
            let mut rng = Rng::new(99 + q.ggml_id() as u64);
            let n_weights = min_bytes / 4 + 3 * 256;
            let src = input(q, n_weights / q.block_size(), &mut rng);
            let want = reference(q, &src);
            let mut out = vec![0f32; want.len() + 8];
            let aligned = (0..8).find(|&o| (out[o..].as_ptr() as usize).is_multiple_of(32)).unwrap();
            for off in [aligned, aligned + 4, aligned + 1] {
                let dst = &mut out[off..off + want.len()];
                kernels::decoder(q, kernel)(&src, dst);
                assert_same(q, &format!("{kernel} large dst+{off}"), dst, &want, &src);
            }
            // Two threads: each half is past the threshold too only when large enough; still equal.
            let dst = &mut out[aligned..aligned + want.len()];
            dst.fill(0.0);
            dequantize_into_with(&src, q, dst, Options { threads: 2, kernel: Some(kernel) }).unwrap();
            assert_same(q, &format!("{kernel} large threads=2"), dst, &want, &src);
        }
    }
}

/// Every fp16 scale value (all 65,536) in each block format, against the portable decoder.
#[test]
fn every_fp16_scale_value() {
    for kernel in kernels_under_test() {
        for q in QuantType::ALL {
            let fields = f16_fields(q);
            if fields.is_empty() {
                continue;
            }
            let mut rng = Rng::new(5 + q.ggml_id() as u64);
            // Every value; at a test scale below 1, every `1 / scale`-th (a prime step) and the
            // special ones.
            let values: Vec<u16> = if scale() >= 1.0 {
                (0..=u16::MAX).collect()
            } else {
                let step = [2usize, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61]
                    .into_iter()
                    .rfind(|&p| p as f64 * scale() <= 1.0)
                    .unwrap_or(2);
                (0..=u16::MAX).step_by(step).chain(SPECIAL_F16).collect()
            };
            let mut src = input(q, values.len(), &mut rng);
            for (&h, blk) in values.iter().zip(src.chunks_exact_mut(q.type_size())) {
                // First field walks the values; the second (if any) gets a shuffled one.
                blk[fields[0]..fields[0] + 2].copy_from_slice(&h.to_le_bytes());
                if let Some(&f) = fields.get(1) {
                    let other = h.wrapping_mul(40503).rotate_left(5);
                    blk[f..f + 2].copy_from_slice(&other.to_le_bytes());
                }
            }
            let want = reference(q, &src);
            let mut got = vec![0f32; want.len()];
            kernels::decoder(q, kernel)(&src, &mut got);
            assert_same(q, &format!("{kernel} all fp16 scales"), &got, &want, &src);
        }
        // And the F16 format over every value.
        let src: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        let want = reference(QuantType::F16, &src);
        for off in 0..3 {
            let mut got = vec![0f32; want.len() - off];
            kernels::decoder(QuantType::F16, kernel)(&src[2 * off..], &mut got);
            assert_eq!(bits(&got), bits(&want[off..]), "{kernel} F16 all values, offset {off}");
        }
    }
}

/// Many jobs of every type in one call (pieces shared by the threads, some jobs many pieces long,
/// some empty) equal the portable decoder job by job, for every kernel and thread count.
#[test]
fn many_jobs_in_one_call_equal_portable() {
    let mut rng = Rng::new(99);
    let mut inputs = Vec::new();
    for q in QuantType::ALL {
        for n in [0usize, 1, 3, scaled(1000)] {
            let n = if q.block_size() == 1 { n * 40 } else { n };
            inputs.push((q, input(q, n, &mut rng)));
        }
    }
    // Jobs of several pieces each (`parallel::PIECE_WEIGHTS` is 256 Ki weights).
    for (q, n) in [(QuantType::Q4_K, 2100), (QuantType::Q5_0, 20_000)] {
        inputs.insert(7, (q, input(q, n, &mut rng)));
    }
    let wants: Vec<Vec<f32>> = inputs.iter().map(|(q, src)| reference(*q, src)).collect();
    for kernel in kernels_under_test() {
        let threads_list: &[usize] = if scale() < 1.0 { &[0, 3] } else { &[0, 1, 2, 3, 8] };
        for &threads in threads_list {
            let mut outs: Vec<Vec<f32>> = wants.iter().map(|w| vec![f32::from_bits(0x7FBA_D0D0); w.len()]).collect();
            let mut jobs: Vec<_> =
                inputs.iter().zip(outs.iter_mut()).map(|((q, s), o)| (&s[..], *q, &mut o[..])).collect();
            dequantize_many_into(&mut jobs, Options { threads, kernel: Some(kernel) }).unwrap();
            for (((q, src), got), want) in inputs.iter().zip(&outs).zip(&wants) {
                assert_same(*q, &format!("{kernel} many threads={threads}"), got, want, src);
            }
        }
    }
}

/// A job whose output has the wrong length is refused before anything is written, naming the job.
#[test]
fn many_jobs_check_every_job_first() {
    let good = vec![0x11u8; QuantType::Q8_0.type_size() * 4];
    let (mut a, mut b) = (vec![7f32; 128], vec![7f32; 127]);
    let mut jobs = [(&good[..], QuantType::Q8_0, &mut a[..]), (&good[..], QuantType::Q8_0, &mut b[..])];
    let err = dequantize_many_into(&mut jobs, Options::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(ref m) if m.starts_with("job 1:") && m.contains("127")), "{err}");
    assert!(a.iter().chain(&b).all(|&x| x == 7.0), "a refused call wrote output");
}
