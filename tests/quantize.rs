//! Integration tests of the quantizers through the public API. Byte-exactness against ggml's own
//! output is checked by tests/test_quantize.py (golden vectors, gguf-py); here: properties.

use realizar::quantize::{encoded_len, quantize_rows_into_with, QuantizeOptions};
use realizar::{dequantize, kernels, quantize, Error, Kernel, QuantType};

const BLOCK_TYPES: [QuantType; 10] = [
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

fn rows(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let scale = [0.0, 1e-6, 0.02, 1.0, 300.0][(i / 512) % 5];
            if s & 0xff == 0 {
                u * scale * 20.0
            } else {
                u * scale
            }
        })
        .collect()
}

/// llama.cpp's tests/test-quantize-fns.cpp: `0.1 + 2 cos(i)`, error `sqrt(sum(d^2)) / n` (in f64),
/// bounds MAX_QUANTIZATION_TOTAL_ERROR (0.002), _2BITS (0.0075) for Q2_K, _3BITS (0.004) for Q3_K.
#[test]
fn round_trip_within_llama_cpp_bounds() {
    let n = 32 * 128;
    let x: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect();
    for t in BLOCK_TYPES {
        let q = quantize::quantize(&x, t).unwrap();
        let y = dequantize(&q, t).unwrap();
        let sum: f64 = x.iter().zip(&y).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        let err = (sum.sqrt() / n as f64) as f32;
        let bound = match t {
            QuantType::Q2_K => 0.0075,
            QuantType::Q3_K => 0.0040,
            _ => 0.002,
        };
        assert!(err < bound, "{t}: {err} >= {bound}");
    }
}

#[test]
fn float_types_round_trip() {
    // At most 8 significant bits: exact in BF16 and F16.
    let x: Vec<f32> = (0..4096).map(|i| ((i % 256) as f32 - 128.0) / 64.0 * 2f32.powi(i / 256 - 8)).collect();
    for t in [QuantType::F32, QuantType::F16, QuantType::BF16] {
        let q = quantize::quantize(&x, t).unwrap();
        assert_eq!(q.len(), x.len() * t.type_size());
        assert!(dequantize(&q, t).unwrap() == x, "{t}: values representable exactly");
    }
    // Round to nearest even, as ggml and NumPy do.
    let q = quantize::quantize(&[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11)], QuantType::F16).unwrap();
    assert_eq!(q, [0x00, 0x3C, 0x02, 0x3C]);
}

#[test]
fn identical_bytes_for_every_thread_count_and_kernel() {
    let n_per_row = 1024;
    let x = rows(n_per_row * 24, 7);
    let qw: Vec<f32> = (0..n_per_row).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
    for t in BLOCK_TYPES {
        for imatrix in [None, Some(qw.as_slice())] {
            let mut reference = vec![0u8; encoded_len(t, x.len()).unwrap()];
            kernels::set_kernel(Some(Kernel::Scalar)).unwrap();
            let opts = QuantizeOptions { n_per_row: Some(n_per_row), imatrix, threads: 1 };
            quantize_rows_into_with(&x, t, &mut reference, opts).unwrap();
            kernels::set_kernel(None).unwrap();
            for threads in [1, 2, 3, 5, 24, 64] {
                let mut out = vec![0u8; reference.len()];
                let opts = QuantizeOptions { n_per_row: Some(n_per_row), imatrix, threads };
                quantize_rows_into_with(&x, t, &mut out, opts).unwrap();
                assert!(out == reference, "{t} imatrix={} threads={threads}", imatrix.is_some());
            }
        }
    }
}

#[test]
fn errors_are_reported() {
    let mut x = rows(4096, 3);
    x[3000] = f32::INFINITY;
    x[4000] = f32::NAN;
    for threads in [1, 2, 4] {
        let mut out = vec![0u8; encoded_len(QuantType::Q4_K, x.len()).unwrap()];
        let opts = QuantizeOptions { n_per_row: Some(256), imatrix: None, threads };
        match quantize_rows_into_with(&x, QuantType::Q4_K, &mut out, opts) {
            Err(Error::NonFiniteValue { index, .. }) => assert_eq!(index, 3000),
            other => panic!("{other:?}"),
        }
    }
    let e = quantize::quantize(&x[..100], QuantType::Q8_0).unwrap_err();
    assert!(e.to_string().contains("multiple of 32"), "{e}");
    let ok = rows(512, 1);
    let e = quantize::quantize_rows(&ok, QuantType::Q6_K, 256, Some(&[1.0; 512])).unwrap_err();
    assert!(matches!(e, Error::BadImatrix(_)), "{e}");
    let e = quantize::quantize_rows(&ok, QuantType::Q6_K, 256, Some(&[f32::NAN; 256])).unwrap_err();
    assert!(matches!(e, Error::NonFiniteValue { index: 0, .. }), "{e}");
    let mut out = vec![0u8; 3];
    let e = quantize::quantize_into(&ok, QuantType::Q6_K, &mut out).unwrap_err();
    assert!(matches!(e, Error::BadQuantizedLength { expected: 420, .. }), "{e}");
}

/// Non-finite input never panics in any encoder (they run before the check reports it) and the
/// error names the first bad index, for every type, kernel and layout of the bad values.
#[test]
fn non_finite_input_is_reported_for_every_type_and_kernel() {
    let base = rows(4096, 11);
    let cases: [&[(usize, f32)]; 5] = [
        &[(0, f32::NAN)],
        &[(4095, f32::INFINITY)],
        &[(700, f32::NEG_INFINITY), (701, f32::INFINITY), (300, f32::NAN)],
        &[(33, f32::NAN), (34, f32::NAN), (35, f32::INFINITY)],
        &[(1000, -f32::NAN)],
    ];
    for kernel in kernels::available() {
        kernels::set_kernel(Some(kernel)).unwrap();
        for t in QuantType::ALL {
            for case in cases {
                let mut x = base.clone();
                for &(i, v) in case {
                    x[i] = v;
                }
                // A whole block of NaN too.
                if case.len() == 1 && case[0].0 == 1000 {
                    x[1024..1280].fill(f32::NAN);
                }
                let first = x.iter().position(|v| !v.is_finite()).unwrap();
                let qw: Vec<f32> = (0..1024).map(|i| (i % 5) as f32).collect();
                for imatrix in [None, Some(qw.as_slice())] {
                    let mut out = vec![0u8; encoded_len(t, x.len()).unwrap()];
                    let opts = QuantizeOptions { n_per_row: Some(1024), imatrix, threads: 2 };
                    match quantize_rows_into_with(&x, t, &mut out, opts) {
                        Err(Error::NonFiniteValue { index, .. }) => assert_eq!(index, first, "{t} {kernel:?}"),
                        other => panic!("{t} {kernel:?}: {other:?}"),
                    }
                }
            }
        }
    }
    kernels::set_kernel(None).unwrap();
}
