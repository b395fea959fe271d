//! Quantizer throughput (weights/s), single thread and two threads, for every block format.
//! `cargo bench --bench quantize` (targets: see issue 6; ggml's reference quantizers run at, in
//! Mweights/s, Q4_0 1800, Q4_1 1900, Q5_0 1060, Q5_1 1150, Q8_0 410, Q2_K 26, Q3_K 107, Q4_K 21,
//! Q5_K 27, Q6_K 50 on this kind of machine).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use realizar::quantize::{quantize_rows_into_with, QuantizeOptions};
use realizar::QuantType;

const TYPES: [QuantType; 10] = [
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
];

/// Deterministic weights shaped like real ones: a different scale per 256 weights, some outliers.
fn weights(n: usize) -> Vec<f32> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|i| {
            let scale = 0.01 + 0.05 * ((i / 256) % 7) as f32;
            // Sum of uniforms: roughly Gaussian.
            let g = next() + next() + next() + next() - 2.0;
            if next() < 0.02 {
                g * scale * 8.0
            } else {
                g * scale
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n_per_row = 4096;
    let imatrix: Vec<f32> = (0..n_per_row).map(|i| 0.5 + (i % 17) as f32 / 8.0).collect();
    let mut g = c.benchmark_group("quantize");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for t in TYPES {
        // 256 Ki weights (1 MiB of input): in cache, as ggml's reference figures are measured. At
        // 4 Mi weights the fast legacy encoders only measure this machine's memory bandwidth.
        let n = 1 << 18;
        let x = weights(n);
        let mut out = vec![0u8; n / t.block_size() * t.type_size()];
        g.throughput(Throughput::Elements(n as u64));
        for (label, qw) in [("ref", None), ("imatrix", Some(imatrix.as_slice()))] {
            if qw.is_some() && t == QuantType::Q8_0 {
                continue;
            }
            for threads in [1usize, 2] {
                let id = BenchmarkId::new(format!("{}/{label}", t.name()), format!("{threads}t"));
                g.bench_with_input(id, &threads, |b, &threads| {
                    let opts = QuantizeOptions { n_per_row: Some(n_per_row), imatrix: qw, threads };
                    b.iter(|| quantize_rows_into_with(&x, t, &mut out, opts).unwrap());
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
