//! realizar vs candle-core's `GgmlType::to_float`, per format, at 262,144 and 67,108,864 weights,
//! one thread, output into a reused buffer, plus the ceiling (a loop that only writes as many f32).
//!
//!     cd benches/candle-compare && cargo bench            # REALIZAR_BENCH_QUICK=1: small size only
//!
//! The blocks are made by candle's own quantizer (`from_float`) from a 1 Mi-weight random signal and
//! repeated to the size; realizar reads the same bytes (candle's blocks are `#[repr(C)]`, ggml's
//! layout). The run also counts, once per format, the weights where the two decoders' outputs
//! differ in their bits (candle's scalar code may round differently from ggml), and prints it.

use std::hint::black_box;
use std::time::Duration;

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, GgmlType,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use realizar::kernels;
use realizar::{dequantize_into_with, Options, QuantType};

const SMALL: usize = 262_144;
const LARGE: usize = 67_108_864;
const SIGNAL: usize = 1 << 20;

fn sizes() -> Vec<usize> {
    if std::env::var_os("REALIZAR_BENCH_QUICK").is_some() {
        vec![SMALL]
    } else {
        vec![SMALL, LARGE]
    }
}

/// A smooth-ish random signal (xorshift, no extra crate).
fn signal(n: usize) -> Vec<f32> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

fn bench_format<B: GgmlType>(c: &mut Criterion, q: QuantType) {
    assert_eq!(B::BLCK_SIZE, q.block_size());
    assert_eq!(std::mem::size_of::<B>(), q.type_size());
    let base = {
        let xs = signal(SIGNAL);
        let mut blocks = vec![B::zeros(); SIGNAL / B::BLCK_SIZE];
        B::from_float(&xs, &mut blocks);
        blocks
    };
    for n in sizes() {
        let blocks: Vec<B> = base.iter().cycle().take(n / B::BLCK_SIZE).cloned().collect();
        // SAFETY: candle's blocks are #[repr(C)] plain data of `type_size` bytes (asserted above).
        let bytes =
            unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(&blocks[..])) };
        let mut out = vec![0f32; n];
        let mut theirs = vec![0f32; n];
        B::to_float(&blocks, &mut theirs);
        dequantize_into_with(bytes, q, &mut out, Options { threads: 1, kernel: None }).unwrap();
        let differ = out.iter().zip(&theirs).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        eprintln!("{q} {n}: realizar and candle differ in {differ} of {n} weights");

        let mut g = c.benchmark_group(format!("{q}/{}", if n == SMALL { "256Ki" } else { "64Mi" }));
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(10).warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_millis(if n == SMALL { 700 } else { 1500 }));
        g.bench_function("candle", |b| b.iter(|| B::to_float(black_box(&blocks), &mut out)));
        for kernel in kernels::available() {
            let opts = Options { threads: 1, kernel: Some(kernel) };
            g.bench_function(BenchmarkId::new("realizar", kernel.name()), |b| {
                b.iter(|| dequantize_into_with(black_box(bytes), q, &mut out, opts).unwrap())
            });
        }
        g.bench_function("ceiling", |b| {
            b.iter(|| {
                out.fill(black_box(1.0));
                black_box(&mut out);
            })
        });
        g.finish();
    }
}

fn all(c: &mut Criterion) {
    bench_format::<BlockQ4_0>(c, QuantType::Q4_0);
    bench_format::<BlockQ4_1>(c, QuantType::Q4_1);
    bench_format::<BlockQ5_0>(c, QuantType::Q5_0);
    bench_format::<BlockQ5_1>(c, QuantType::Q5_1);
    bench_format::<BlockQ8_0>(c, QuantType::Q8_0);
    bench_format::<BlockQ2K>(c, QuantType::Q2_K);
    bench_format::<BlockQ3K>(c, QuantType::Q3_K);
    bench_format::<BlockQ4K>(c, QuantType::Q4_K);
    bench_format::<BlockQ5K>(c, QuantType::Q5_K);
    bench_format::<BlockQ6K>(c, QuantType::Q6_K);
}

criterion_group!(benches, all);
criterion_main!(benches);
