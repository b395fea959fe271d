use realizar::quantize::*;
use realizar::QuantType;
fn main() {
    let t = QuantType::from_name(&std::env::args().nth(1).unwrap()).unwrap();
    let n = 1 << 20;
    let x: Vec<f32> = (0..n).map(|i| ((i as u64 * 2654435761u64 % 1000) as f32 - 500.0) / 1e4).collect();
    let mut out = vec![0u8; encoded_len(t, n).unwrap()];
    let reps: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(20);
    let s = std::time::Instant::now();
    for _ in 0..reps {
        quantize_rows_into_with(&x, t, &mut out, QuantizeOptions { threads: 1, ..Default::default() }).unwrap();
    }
    println!("{t}: {:.0} Mw/s wall", (n * reps) as f64 / s.elapsed().as_secs_f64() / 1e6);
}
