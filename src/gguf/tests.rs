//! Unit tests of the GGUF reader on files built byte by byte, plus a bounded deterministic mutation
//! fuzzer (`fuzz_mutations`).

use super::*;
use crate::error::GgufErrorKind as K;

/// A little-endian byte writer for hand-made GGUF files.
#[derive(Default, Clone)]
struct W(Vec<u8>);

impl W {
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    fn header(&mut self, version: u32, n_tensors: u64, n_kv: u64) -> &mut Self {
        self.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }
    fn pad(&mut self, align: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
}

/// A valid file: every value type (and a nested array), three tensors, alignment `align`.
/// Returns the bytes and the offsets where each section starts.
fn sample(align: u32) -> (Vec<u8>, Vec<usize>) {
    let mut w = W::default();
    let mut marks = vec![0];
    w.header(3, 3, 16);
    marks.push(w.0.len());
    w.str("general.alignment").u32(4).u32(align);
    w.str("u8").u32(0).bytes(&[200]);
    w.str("i8").u32(1).bytes(&[0xff]);
    w.str("u16").u32(2).bytes(&60000u16.to_le_bytes());
    w.str("i16").u32(3).bytes(&(-3i16).to_le_bytes());
    w.str("i32").u32(5).bytes(&(-7i32).to_le_bytes());
    w.str("f32").u32(6).bytes(&1.5f32.to_le_bytes());
    w.str("bool").u32(7).bytes(&[1]);
    w.str("str").u32(8).str("héllo");
    w.str("u64").u32(10).u64(1 << 40);
    w.str("i64").u32(11).bytes(&(-5i64).to_le_bytes());
    w.str("f64").u32(12).bytes(&2.25f64.to_le_bytes());
    w.str("arr.i32").u32(9).u32(5).u64(3).u32(1).u32(2).u32(3);
    w.str("arr.str").u32(9).u32(8).u64(2).str("a").str("bc");
    w.str("arr.nested").u32(9).u32(9).u64(2).u32(0).u64(2).bytes(&[1, 2]).u32(7).u64(1).bytes(&[0]);
    w.str("arr.empty").u32(9).u32(6).u64(0);
    marks.push(w.0.len());
    let a = u64::from(align);
    let off2 = (64u64).div_ceil(a) * a;
    let off3 = (off2 + 18 * 2).div_ceil(a) * a;
    w.tensor("f32", &[4, 4], 0, 0);
    w.tensor("q40", &[64], 2, off2);
    w.tensor("odd", &[7], 1000, off3);
    marks.push(w.0.len());
    w.pad(align as usize);
    marks.push(w.0.len());
    let data_start = w.0.len();
    w.0.resize(data_start + off3 as usize + 8, 0);
    for i in 0..16 {
        let b = (i as f32).to_le_bytes();
        w.0[data_start + 4 * i..data_start + 4 * i + 4].copy_from_slice(&b);
    }
    marks.push(w.0.len());
    (w.0, marks)
}

fn kind(bytes: &[u8]) -> (u64, K) {
    match parse(bytes) {
        Err(Error::Gguf { offset, kind }) => (offset, kind),
        other => panic!("expected a GGUF error, got {other:?}"),
    }
}

#[test]
fn parses_every_value_type() {
    for align in [1, 8, 32, 64, 256] {
        let (bytes, marks) = sample(align);
        let g = parse(&bytes).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.alignment, u64::from(align));
        assert_eq!(g.metadata.len(), 16);
        assert_eq!(g.get("u8"), Some(&Value::U8(200)));
        assert_eq!(g.get("i8"), Some(&Value::I8(-1)));
        assert_eq!(g.get("u16"), Some(&Value::U16(60000)));
        assert_eq!(g.get("i16"), Some(&Value::I16(-3)));
        assert_eq!(g.get("i32"), Some(&Value::I32(-7)));
        assert_eq!(g.get("f32"), Some(&Value::F32(1.5)));
        assert_eq!(g.get("bool"), Some(&Value::Bool(true)));
        assert_eq!(g.get("str").unwrap().as_str(), Some("héllo"));
        assert_eq!(g.get("u64"), Some(&Value::U64(1 << 40)));
        assert_eq!(g.get("i64"), Some(&Value::I64(-5)));
        assert_eq!(g.get("f64"), Some(&Value::F64(2.25)));
        let arr = |k: &str| g.get(k).and_then(Value::as_array).unwrap();
        assert_eq!(arr("arr.i32").values(), ArrayValues::I32(vec![1, 2, 3]));
        assert_eq!((arr("arr.i32").len(), arr("arr.i32").raw()), (3, &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0][..]));
        assert_eq!(arr("arr.str").values(), ArrayValues::String(vec![b"a".to_vec(), b"bc".to_vec()]));
        assert_eq!(arr("arr.str").strings().unwrap().collect::<Vec<_>>(), [&b"a"[..], b"bc"]);
        assert!(arr("arr.str").arrays().is_none() && arr("arr.i32").strings().is_none());
        assert_eq!(
            arr("arr.nested").values(),
            ArrayValues::Array(vec![ArrayValues::U8(vec![1, 2]), ArrayValues::Bool(vec![false])])
        );
        let inner: Vec<Array> = arr("arr.nested").arrays().unwrap().collect();
        assert_eq!((inner.len(), inner[0].element_type(), inner[1].len()), (2, ValueType::U8, 1));
        assert_eq!(g.get("arr.nested").unwrap().type_description(), "ARRAY[ARRAY[UINT8]]");
        assert_eq!(arr("arr.empty").values(), ArrayValues::F32(vec![]));
        assert!(arr("arr.empty").is_empty() && g.get("arr.empty").unwrap().type_description() == "ARRAY[FLOAT32]");
        for k in ["arr.i32", "arr.str", "arr.nested", "arr.empty"] {
            // Built from its values, an array is the one read from the file.
            assert_eq!(&Array::from(arr(k).values()), arr(k), "{k}");
        }
        assert_eq!(g.get("nope"), None);
        assert_eq!(g.tensor("nope"), None);
        assert_eq!(g.data_offset as usize, marks[4]);
        let t = g.tensor("f32").unwrap();
        assert_eq!((t.shape(), t.nbytes, t.quant_type()), (vec![4, 4], Some(64), Some(QuantType::F32)));
        let q = g.tensor("q40").unwrap();
        assert_eq!((q.n_elements, q.nbytes, q.quant_type()), (64, Some(36), Some(QuantType::Q4_0)));
        let odd = g.tensor("odd").unwrap();
        assert_eq!((odd.nbytes, odd.ggml_type(), odd.quant_type()), (None, None, None));
        let f = GgufFile::from_bytes(bytes.clone()).unwrap();
        let y = f.dequantize("f32").unwrap();
        assert_eq!(y, (0..16).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(f.tensor_data("q40").unwrap().len(), 36);
        assert!(f.tensor_data("odd").unwrap_err().to_string().contains("1000"));
        assert!(f.tensor_data("nope").is_err());
    }
}

#[test]
fn truncated_at_every_byte() {
    let (bytes, marks) = sample(32);
    // The last tensor ("odd") has unknown size, so the file is valid from the end of the data of
    // "q40" on; before that every prefix must fail cleanly.
    let g = parse(&bytes).unwrap();
    let min_len = (g.data_offset + g.tensor("odd").unwrap().offset) as usize;
    for n in 0..bytes.len() {
        let r = parse(&bytes[..n]);
        if n >= min_len {
            assert!(r.is_ok(), "prefix {n}");
            continue;
        }
        let (offset, k) = kind(&bytes[..n]);
        assert!(offset <= n as u64 || matches!(k, K::OutOfBounds { .. }), "prefix {n}: {offset} {k:?}");
        let msg = Error::Gguf { offset, kind: k.clone() }.to_string();
        assert!(msg.contains(&format!("byte offset {offset}")), "{msg}");
        if marks.contains(&n) && n > 0 && n < marks[3] {
            assert!(matches!(k, K::Truncated { .. } | K::CountTooLarge { .. }), "prefix {n}: {k:?}");
        }
    }
    assert_eq!(kind(&[]), (0, K::Empty));
}

#[test]
fn header_errors() {
    assert!(matches!(kind(b"GGML\x03\0\0\0"), (0, K::BadMagic { .. })));
    let mut w = W::default();
    w.bytes(b"GGUF").bytes(&3u32.to_be_bytes()).u64(0).u64(0);
    assert_eq!(kind(&w.0), (4, K::BigEndian { raw_version: 0x0300_0000, version: 3 }));
    assert!(kind(&w.0).1.to_string().contains("big-endian"));
    let mut w = W::default();
    w.bytes(b"FUGG").bytes(&2u32.to_be_bytes());
    assert!(matches!(kind(&w.0), (4, K::BigEndian { version: 2, .. })));
    for v in [0, 1, 4, 7] {
        let mut w = W::default();
        w.header(v, 0, 0);
        assert_eq!(kind(&w.0), (4, K::UnsupportedVersion(v)));
    }
    let mut w = W::default();
    w.header(2, 0, 0);
    let g = parse(&w.0).unwrap();
    assert_eq!((g.version, g.tensors.len(), g.metadata.len()), (2, 0, 0));
}

#[test]
fn absurd_counts_fail_fast() {
    for (nt, nkv, at) in [(u64::MAX, 0, 8), (0, u64::MAX, 16), (1 << 40, 0, 8), (0, 1 << 60, 16), (1, 1, 16)] {
        let mut w = W::default();
        w.header(3, nt, nkv);
        let (offset, k) = kind(&w.0);
        assert_eq!(offset, at, "{k:?}");
        assert!(matches!(k, K::CountTooLarge { .. } | K::Truncated { .. }), "{k:?}");
    }
    // An array count near 2^64 for every element type.
    for et in 0..=12u32 {
        for n in [u64::MAX, u64::MAX / 2 + 1, 1 << 61, 1000] {
            let mut w = W::default();
            w.header(3, 0, 1).str("k").u32(9).u32(et).u64(n).bytes(&[0; 16]);
            let (offset, k) = kind(&w.0);
            assert_eq!(offset, 24 + 9 + 4 + 4, "type {et} count {n}: {k:?}");
            assert!(matches!(k, K::CountTooLarge { .. }), "{k:?}");
        }
    }
}

#[test]
fn string_lengths_past_the_end() {
    for len in [u64::MAX, u64::MAX - 7, 1 << 63, 100] {
        let mut w = W::default();
        w.header(3, 0, 1).u64(len).bytes(b"abc").bytes(&[0; 16]);
        let (offset, k) = kind(&w.0);
        assert_eq!(offset, 24);
        assert!(matches!(k, K::Truncated { needed, .. } if needed == len), "{k:?}");
        let mut w = W::default();
        w.header(3, 0, 1).str("k").u32(8).u64(len).bytes(b"abcdefgh");
        assert_eq!(kind(&w.0).0, 24 + 9 + 4);
    }
}

#[test]
fn value_errors() {
    let mut w = W::default();
    w.header(3, 0, 1).str("k").u32(13).u64(0);
    assert_eq!(kind(&w.0), (33, K::UnknownValueType { what: "metadata \"k\"".into(), type_id: 13 }));
    let mut w = W::default();
    w.header(3, 0, 1).str("k").u32(9).u32(0xdead).u64(0);
    assert!(matches!(kind(&w.0), (37, K::UnknownValueType { type_id: 0xdead, .. })));
    let mut w = W::default();
    w.header(3, 0, 1).str("k").u32(7).bytes(&[2]);
    assert!(matches!(kind(&w.0), (37, K::BadBool { byte: 2, .. })));
    let mut w = W::default();
    w.header(3, 0, 1).u64(2).bytes(&[0xff, 0xfe]).u32(0).bytes(&[0]);
    assert!(matches!(kind(&w.0), (24, K::InvalidUtf8 { .. })));
    let mut w = W::default();
    w.header(3, 0, 2).str("k").u32(0).bytes(&[0]).str("k").u32(0).bytes(&[0]);
    assert!(matches!(kind(&w.0), (38, K::DuplicateKey(_))));
    // Deep nesting: bounded, no stack overflow.
    let mut w = W::default();
    w.header(3, 0, 1).str("k").u32(9);
    for _ in 0..100_000 {
        w.u32(9).u64(1);
    }
    w.u32(0).u64(0);
    assert!(matches!(kind(&w.0).1, K::NestingTooDeep { .. }));
    let mut w = W::default();
    w.header(3, 0, 1).str("k").u32(9);
    for _ in 1..parse::MAX_NESTING {
        w.u32(9).u64(1);
    }
    w.u32(0).u64(0);
    assert!(parse(&w.0).is_ok());
}

#[test]
fn alignment_errors() {
    for (vt, val) in [(4u32, 0u32), (4, 3), (4, 48), (4, 1 << 31)] {
        let mut w = W::default();
        w.header(3, 0, 1).str("general.alignment").u32(vt).u32(val);
        assert!(matches!(kind(&w.0), (_, K::BadAlignment(_))), "{val}");
    }
    let mut w = W::default();
    w.header(3, 0, 1).str("general.alignment").u32(10).u64(32);
    assert!(matches!(kind(&w.0), (_, K::BadAlignment(m)) if m.contains("UINT64")));
}

fn one_tensor(dims: &[u64], type_id: u32, offset: u64, data: usize) -> Vec<u8> {
    let mut w = W::default();
    w.header(3, 1, 0).tensor("t", dims, type_id, offset).pad(32);
    w.0.resize(w.0.len() + data, 0);
    w.0
}

#[test]
fn tensor_errors() {
    let e = kind(&one_tensor(&[1, 1, 1, 1, 1], 0, 0, 4));
    assert_eq!(e, (24 + 9, K::TooManyDims { name: "t".into(), n_dims: 5, max: 4 }));
    assert!(matches!(kind(&one_tensor(&[u64::MAX], 0, 0, 4)), (37, K::BadShape { .. })));
    assert!(matches!(kind(&one_tensor(&[1 << 32, 1 << 32], 0, 0, 4)), (45, K::BadShape { .. })));
    let (_, k) = kind(&one_tensor(&[1 << 40, 1 << 40], 0, 0, 4));
    assert!(k.to_string().contains("overflows"), "{k}");
    // Bytes overflow u64 even though the element count does not.
    assert!(
        matches!(kind(&one_tensor(&[1 << 31, 1 << 31], 28, 0, 4)), (_, K::BadShape { msg, .. }) if msg.contains("2^64"))
    );
    assert!(matches!(kind(&one_tensor(&[33], 2, 0, 64)), (_, K::BadShape { .. })));
    assert!(matches!(kind(&one_tensor(&[4], 0, 16, 64)), (_, K::Misaligned { offset: 16, alignment: 32, .. })));
    assert!(matches!(kind(&one_tensor(&[17], 0, 0, 64)), (24, K::OutOfBounds { nbytes: 68, data_len: 64, .. })));
    assert!(matches!(kind(&one_tensor(&[4], 0, u64::MAX - 31, 64)), (_, K::OutOfBounds { .. })));
    assert!(matches!(kind(&one_tensor(&[4], 999, 64, 32)), (_, K::OutOfBounds { nbytes: 0, .. })));
    // No data section at all.
    let mut w = W::default();
    w.header(3, 1, 0).tensor("t", &[4], 0, 0);
    assert!(matches!(kind(&w.0), (_, K::OutOfBounds { data_len: 0, .. })));
    // Unknown type with in-range offset is fine; a 0-dim tensor is a scalar.
    let g = parse(&one_tensor(&[4], 999, 0, 32)).unwrap();
    assert_eq!(g.tensors[0].nbytes, None);
    let g = parse(&one_tensor(&[], 0, 0, 4)).unwrap();
    assert_eq!((g.tensors[0].n_elements, g.tensors[0].nbytes), (1, Some(4)));
    let g = parse(&one_tensor(&[0, 1 << 62], 0, 0, 0)).unwrap();
    assert_eq!(g.tensors[0].nbytes, Some(0));

    let two = |name2: &str, off2: u64| {
        let mut w = W::default();
        w.header(3, 2, 0).tensor("a", &[16], 0, 0).tensor(name2, &[8], 0, off2).pad(32);
        w.0.resize(w.0.len() + 128, 0);
        w.0
    };
    assert!(parse(&two("b", 64)).is_ok());
    let (offset, k) = kind(&two("b", 32));
    assert!(matches!(k, K::Overlap { ref name, ref other, other_end: 64 } if name == "b" && other == "a"), "{k:?}");
    assert_eq!(offset, parse(&two("b", 64)).unwrap().data_offset + 32);
    assert!(matches!(kind(&two("a", 64)), (_, K::DuplicateTensor(_))));
}

#[test]
fn open_from_disk() {
    let dir = std::env::temp_dir().join(format!("realizar-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("a.gguf");
    std::fs::write(&p, sample(32).0).unwrap();
    let f = GgufFile::open(&p).unwrap();
    assert_eq!(f.tensors().len(), 3);
    assert!(matches!(f.storage().as_ref(), Storage::Mmap(_)));
    drop(f); // Windows cannot truncate a mapped file
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(GgufFile::open(&p), Err(Error::Gguf { offset: 0, kind: K::Empty })));
    assert!(matches!(GgufFile::open(dir.join("missing")), Err(Error::Io { kind: std::io::ErrorKind::NotFound, .. })));
    assert!(matches!(GgufFile::open(&dir), Err(Error::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tiny deterministic PRNG (splitmix64) so the fuzzer needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Mutates a valid file: byte flips, interesting integers written over 4/8-byte fields, cuts and
/// splices. Every result must parse or fail with a GGUF error, and every tensor byte range of a
/// successful parse must lie inside the file.
fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    const INTERESTING: [u64; 12] = [0, 1, 2, 3, 4, 9, 12, 13, 0x7fff_ffff, 0xffff_ffff, 1 << 63, u64::MAX];
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            break;
        }
        let at = rng.below(v.len());
        match rng.below(6) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v[at] = rng.next() as u8,
            2 => {
                let x = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let n = if rng.below(2) == 0 { 4 } else { 8 };
                for (i, b) in x.iter().take(n).enumerate() {
                    if let Some(p) = v.get_mut(at + i) {
                        *p = *b;
                    }
                }
            }
            3 => v.truncate(at),
            4 => {
                let len = rng.below(16).min(v.len() - at);
                v.drain(at..at + len);
            }
            _ => {
                let src = rng.below(v.len());
                let len = rng.below(16).min(v.len() - src);
                let chunk = v[src..src + len].to_vec();
                v.splice(at..at, chunk);
            }
        }
    }
    v
}

fn check_one(bytes: &[u8]) {
    match parse(bytes) {
        Ok(g) => {
            // Reading every value of a file the parser accepted never panics.
            for (k, v) in &g.metadata {
                assert!(g.get(k).is_some());
                if let Value::Array(a) = v {
                    let _ = (a.values(), a.type_description(), format!("{a:?}"));
                }
            }
            for t in &g.tensors {
                assert_eq!(g.tensor(&t.name), Some(t));
                if let Some(n) = t.nbytes {
                    assert!(t.data_start + n <= bytes.len() as u64);
                    assert_eq!(g.tensor_bytes(bytes, t).map(<[u8]>::len), Some(n as usize));
                }
            }
        }
        Err(Error::Gguf { offset, kind }) => {
            assert!(offset <= bytes.len() as u64, "{offset} {kind:?}");
        }
        Err(e) => panic!("unexpected error kind {e:?}"),
    }
}

/// Bounded deterministic fuzzing: `REALIZAR_FUZZ_SECS` seconds (default 2) of mutations of the
/// sample files, seeds taken from `REALIZAR_FUZZ_SEED` (default 0). A crash prints the seed and
/// iteration; save the input under `tests/gguf_crashers/` and it becomes a regression test.
#[test]
fn fuzz_mutations() {
    let secs: f64 = std::env::var("REALIZAR_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let seed: u64 = std::env::var("REALIZAR_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let bases: Vec<Vec<u8>> = [1, 32, 64].into_iter().map(|a| sample(a).0).collect();
    let mut rng = Rng(seed);
    let start = std::time::Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs || n < 1000 {
        let base = &bases[rng.below(bases.len())];
        let m = mutate(&mut rng, base);
        let r = std::panic::catch_unwind(|| check_one(&m));
        if r.is_err() {
            let p = std::env::temp_dir().join(format!("gguf-crash-{seed}-{n}.gguf"));
            std::fs::write(&p, &m).unwrap();
            panic!("crasher saved to {}", p.display());
        }
        n += 1;
    }
    eprintln!("fuzz_mutations: {n} inputs in {:.1} s", start.elapsed().as_secs_f64());
}

/// Every file ever saved under `tests/gguf_crashers/` must parse or fail cleanly.
#[test]
fn crasher_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf_crashers");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "gguf") {
            check_one(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

/// The largest single allocation made by this thread, tracked by a test-only global allocator.
mod alloc_track {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Tracking;

    fn note(size: usize) {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    unsafe impl GlobalAlloc for Tracking {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            note(l.size());
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            unsafe { System.realloc(p, l, new_size) }
        }
    }

    #[global_allocator]
    static A: Tracking = Tracking;

    /// Runs `f` and returns the largest single allocation it made on this thread.
    pub fn largest_during(f: impl FnOnce()) -> usize {
        LARGEST.with(|c| c.set(0));
        f();
        LARGEST.with(Cell::get)
    }

    /// Runs `f` and returns how many allocations (and reallocations) it made on this thread.
    pub fn count_during(f: impl FnOnce()) -> usize {
        COUNT.with(|c| c.set(0));
        f();
        COUNT.with(Cell::get)
    }
}

/// Opening a file allocates nothing per array element: a 200,000-token vocabulary and a million
/// empty nested arrays cost a handful of allocations (one copy of each array's bytes), not one
/// per element, and their memory is about their size in the file.
#[test]
fn arrays_are_not_materialized_on_open() {
    let n_tokens = 200_000u64;
    let n_nested = 1_000_000u64;
    let mut w = W::default();
    w.header(3, 1, 2).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(n_tokens);
    for i in 0..n_tokens {
        w.str(&format!("tok{i}"));
    }
    w.str("nested").u32(9).u32(9).u64(n_nested);
    for _ in 0..n_nested {
        w.u32(9).u64(0);
    }
    w.tensor("t", &[4], 0, 0).pad(32).bytes(&[0; 16]);
    let file_len = w.0.len();
    let mut g = None;
    let count = alloc_track::count_during(|| g = Some(parse(&w.0).unwrap()));
    assert!(count < 100, "{count} allocations to open a file of {} array elements", n_tokens + n_nested);
    let largest = alloc_track::largest_during(|| g = Some(parse(&w.0).unwrap()));
    assert!(largest <= file_len, "largest allocation {largest} bytes for a {file_len}-byte file");
    let g = g.unwrap();
    let tokens = g.get("tokenizer.ggml.tokens").and_then(Value::as_array).unwrap();
    assert_eq!((tokens.len(), tokens.strings().unwrap().nth(123_456)), (n_tokens as usize, Some(&b"tok123456"[..])));
    let nested = g.get("nested").and_then(Value::as_array).unwrap();
    assert_eq!((nested.len(), nested.type_description()), (n_nested as usize, "ARRAY[ARRAY[ARRAY]]".to_owned()));
    assert_eq!(nested.arrays().unwrap().filter(Array::is_empty).count(), n_nested as usize);
}

/// Lookups by name go through an index: none of 20,000 lookups scans the tensor list (checked by
/// making the list disagree with the index, which a linear search would not notice).
#[test]
fn lookups_use_the_index() {
    let n = 20_000u64;
    let mut w = W::default();
    w.header(3, n, 0);
    for i in 0..n {
        w.tensor(&format!("t{i}"), &[1], 0, 32 * i);
    }
    w.pad(32).bytes(&vec![0; 32 * n as usize]);
    let mut g = parse(&w.0).unwrap();
    for i in (0..n).step_by(997) {
        let t = g.tensor(&format!("t{i}")).unwrap();
        assert_eq!(t.data_start, g.data_offset + 32 * i);
    }
    // Found by hash: the entry at the indexed position is the one returned, also for the last one.
    assert!(std::ptr::eq(g.tensor("t19999").unwrap(), &g.tensors[19_999]));
    // A name changed in place is not found until the index is rebuilt; a moved entry still is.
    g.tensors[5].name = "renamed".into();
    assert_eq!(g.tensor("renamed"), None);
    g.reindex();
    assert_eq!(g.tensor("renamed").unwrap().data_start, g.data_offset + 32 * 5);
    g.tensors.swap(0, 1);
    assert_eq!(g.tensor("t0").unwrap().data_start, g.data_offset);
}

/// A big file claiming as many entries as could fit must not make the parser reserve memory for all
/// of them up front (each is a larger struct in memory than its smallest encoding in the file).
#[test]
fn claimed_counts_do_not_preallocate() {
    let size = 16 << 20;
    // Metadata count: 13-byte minimum per entry -> about 1.3 M claimed; the 2nd key is truncated.
    let mut w = W::default();
    w.header(3, 0, (size as u64 - 24) / 13).str("k").u32(0).bytes(&[1]).u64(u64::MAX);
    w.0.resize(size, 0);
    let largest = alloc_track::largest_during(|| assert!(parse(&w.0).is_err()));
    assert!(largest < 1 << 20, "largest allocation {largest} bytes for a {size}-byte file");
    // A string array: 8-byte minimum per string -> about 2 M claimed; the 2nd string is too long.
    let mut w = W::default();
    w.header(3, 0, 1).str("k").u32(9).u32(8).u64((size as u64 - 49) / 8).u64(0).u64(u64::MAX);
    w.0.resize(size, 0);
    let largest = alloc_track::largest_during(|| assert!(parse(&w.0).is_err()));
    assert!(largest < 1 << 20, "largest allocation {largest} bytes for a {size}-byte file");
    // Tensor infos: 24-byte minimum -> about 700 k claimed; the 2nd name is too long.
    let mut w = W::default();
    w.header(3, (size as u64 - 24) / 24, 0).tensor("t", &[1], 0, 0).u64(u64::MAX);
    w.0.resize(size, 0);
    let largest = alloc_track::largest_during(|| assert!(parse(&w.0).is_err()));
    assert!(largest < 1 << 20, "largest allocation {largest} bytes for a {size}-byte file");
}
