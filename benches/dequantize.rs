//! `cargo bench --bench dequantize`: Gweights/s (criterion's elements/s) per format and kernel, one
//! thread, output into a reused buffer, at 262,144 weights (in cache) and 67,108,864 (not), plus
//! the ceiling (a loop that only writes as many f32), streaming vs plain stores for large outputs,
//! and 1 vs 2 threads around the automatic-threading threshold.
//!
//! Filter as usual: `cargo bench --bench dequantize -- 'Q4_K'`. `REALIZAR_BENCH_QUICK=1` runs only
//! the small size.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_imports))] // `Kernel` names x86 kernels only
use realizar::kernels::{self, Kernel};
use realizar::{dequantize_into_with, Options, QuantType};

const SMALL: usize = 262_144;
const LARGE: usize = 67_108_864;

/// Realistic input: random quants, ordinary finite scales (the F16 kernel's NaN path is not the
/// one to time), random ordinary values for F32/F16/BF16.
fn input(q: QuantType, n_weights: usize) -> Vec<u8> {
    let bb = q.type_size();
    let nb = n_weights / q.block_size();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut b: Vec<u8> = (0..nb * bb).map(|_| (next() >> 24) as u8).collect();
    let scale = |r: u64| (0x1800 + (r % 0x1000) as u16).to_le_bytes(); // about 1e-4 .. 4e-3
    for blk in b.chunks_exact_mut(bb) {
        let offs: &[usize] = match q {
            QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q8_0 => &[0],
            QuantType::Q4_1 | QuantType::Q5_1 | QuantType::Q4_K | QuantType::Q5_K => &[0, 2],
            QuantType::Q2_K => &[80, 82],
            QuantType::Q3_K => &[108],
            QuantType::Q6_K => &[208],
            QuantType::F16 => &[0],
            QuantType::BF16 => {
                blk.copy_from_slice(&(0x3C00 + (next() % 0x200) as u16).to_le_bytes());
                &[]
            }
            QuantType::F32 => {
                blk.copy_from_slice(&(0.01 * (next() % 1000) as f32).to_le_bytes());
                &[]
            }
        };
        for &o in offs {
            blk[o..o + 2].copy_from_slice(&scale(next()));
        }
    }
    b
}

fn sizes() -> Vec<usize> {
    if std::env::var_os("REALIZAR_BENCH_QUICK").is_some() {
        vec![SMALL]
    } else {
        vec![SMALL, LARGE]
    }
}

fn label(n: usize) -> &'static str {
    if n == SMALL {
        "256Ki"
    } else {
        "64Mi"
    }
}

/// Per format and kernel, one thread, reused output.
fn formats(c: &mut Criterion) {
    for n in sizes() {
        let mut out = vec![0f32; n];
        for q in QuantType::ALL {
            let src = input(q, n);
            let mut g = c.benchmark_group(format!("{}/{}", q, label(n)));
            g.throughput(Throughput::Elements(n as u64));
            g.sample_size(10).warm_up_time(Duration::from_millis(300));
            g.measurement_time(Duration::from_millis(if n == SMALL { 700 } else { 1500 }));
            for kernel in kernels::available() {
                let opts = Options { threads: 1, kernel: Some(kernel) };
                g.bench_function(BenchmarkId::from_parameter(kernel.name()), |b| {
                    b.iter(|| dequantize_into_with(black_box(&src), q, &mut out, opts).unwrap())
                });
            }
            g.finish();
        }
    }
}

/// The ceiling: only writing `n` f32 (plain stores, and on x86-64 also streaming stores).
fn ceiling(c: &mut Criterion) {
    for n in sizes() {
        let mut out = vec![0f32; n + 8];
        let mut g = c.benchmark_group(format!("ceiling/{}", label(n)));
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(1000));
        g.bench_function("fill", |b| {
            b.iter(|| {
                out[..n].fill(black_box(1.0));
                black_box(&mut out);
            })
        });
        #[cfg(target_arch = "x86_64")]
        if kernels::available().contains(&Kernel::Avx2) {
            let off = (0..8).find(|&o| (out[o..].as_ptr() as usize).is_multiple_of(32)).unwrap();
            g.bench_function("fill_stream", |b| {
                b.iter(|| {
                    // SAFETY: AVX2 was checked; the pointer is 32-byte aligned and n + off <= len.
                    unsafe { stream_fill(out[off..off + n].as_mut_ptr(), n, black_box(1.0)) };
                    black_box(&mut out);
                })
            });
        }
        // The two-thread ceiling: what the memory takes when both cores write (halves, 32-byte aligned).
        if n == LARGE && rayon::current_num_threads() >= 2 {
            let off = (0..8).find(|&o| (out[o..].as_ptr() as usize).is_multiple_of(32)).unwrap();
            let (a, b) = out[off..off + n].split_at_mut(n / 2);
            g.bench_function("fill_2t", |bch| {
                bch.iter(|| rayon::join(|| a.fill(black_box(1.0)), || b.fill(black_box(1.0))))
            });
            #[cfg(target_arch = "x86_64")]
            if kernels::available().contains(&Kernel::Avx2) {
                g.bench_function("fill_stream_2t", |bch| {
                    bch.iter(|| {
                        // SAFETY: AVX2 was checked; both halves are 32-byte aligned (n / 2 is a multiple of 8).
                        rayon::join(
                            || unsafe { stream_fill(a.as_mut_ptr(), a.len(), black_box(1.0)) },
                            || unsafe { stream_fill(b.as_mut_ptr(), b.len(), black_box(1.0)) },
                        )
                    })
                });
            }
        }
        g.finish();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn stream_fill(p: *mut f32, n: usize, v: f32) {
    use std::arch::x86_64::*;
    let v = _mm256_set1_ps(v);
    let mut i = 0;
    while i + 8 <= n {
        _mm256_stream_ps(p.add(i), v);
        i += 8;
    }
    _mm_sfence();
}

/// Streaming vs plain stores (one thread, reused buffer): at 64Mi weights for several formats with
/// 32- and 16-byte aligned outputs, and for Q8_0 at sizes around the threshold.
fn stream(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    {
        if !kernels::available().contains(&Kernel::Avx2) || std::env::var_os("REALIZAR_BENCH_QUICK").is_some() {
            return;
        }
        let mut out = vec![0f32; LARGE + 8];
        let off = (0..8).find(|&o| (out[o..].as_ptr() as usize).is_multiple_of(32)).unwrap();
        let mut one = |name: String, q: QuantType, n: usize, variants: &[(&str, usize, usize)]| {
            let src = input(q, n);
            let mut g = c.benchmark_group(name);
            g.throughput(Throughput::Elements(n as u64));
            g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(1200));
            for &(label, min, shift) in variants {
                kernels::avx2::set_stream_min_bytes(min);
                let opts = Options { threads: 1, kernel: Some(Kernel::Avx2) };
                let dst = &mut out[off + shift..off + shift + n];
                g.bench_function(label, |b| b.iter(|| dequantize_into_with(black_box(&src), q, dst, opts).unwrap()));
            }
            kernels::avx2::set_stream_min_bytes(kernels::avx2::STREAM_MIN_BYTES);
            g.finish();
        };
        let all = [("plain", usize::MAX, 0), ("stream32", 0, 0)];
        for q in [QuantType::Q4_0, QuantType::Q8_0, QuantType::Q4_K, QuantType::Q6_K, QuantType::BF16] {
            one(format!("stream/{q}/64Mi"), q, LARGE, &all);
        }
        for n in [1 << 20, 1 << 21, 1 << 22, 1 << 23] {
            one(format!("stream_size/Q8_0/{n}"), QuantType::Q8_0, n, &all[..2]);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = c;
}

/// 1 vs 2 threads at sizes around `parallel::AUTO_THREADS_MIN_WEIGHTS` (best kernel).
fn threads(c: &mut Criterion) {
    if rayon::current_num_threads() < 2 {
        return;
    }
    let quick = std::env::var_os("REALIZAR_BENCH_QUICK").is_some();
    let ns: &[usize] = if quick { &[1 << 16] } else { &[1 << 14, 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20, LARGE] };
    for q in QuantType::ALL {
        // Every format at the large size (against the two-thread ceiling); three around the threshold.
        let around = matches!(q, QuantType::Q8_0 | QuantType::Q4_K | QuantType::Q6_K);
        for &n in ns.iter().filter(|&&n| around || n == LARGE) {
            let src = input(q, n);
            let mut out = vec![0f32; n];
            let mut g = c.benchmark_group(format!("threads/{q}/{n}"));
            g.throughput(Throughput::Elements(n as u64));
            g.sample_size(10).warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(600));
            for t in [1, 2] {
                let opts = Options { threads: t, kernel: None };
                g.bench_function(BenchmarkId::from_parameter(t), |b| {
                    b.iter(|| dequantize_into_with(black_box(&src), q, &mut out, opts).unwrap())
                });
            }
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = ceiling, formats, stream, threads
}
criterion_main!(benches);
