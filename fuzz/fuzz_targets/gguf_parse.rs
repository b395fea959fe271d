//! cargo-fuzz target for the GGUF parser: any input must parse or give `Error::Gguf`, and every
//! tensor byte range of a successful parse must lie inside the input.
//!
//! Run (needs a nightly toolchain and `cargo install cargo-fuzz`):
//!   cargo +nightly fuzz run gguf_parse -- -max_total_time=60
//! Seed corpus: `tests/gguf_crashers/*.gguf` and any valid GGUF files. A crash is written to
//! `fuzz/artifacts/gguf_parse/`; copy it to `tests/gguf_crashers/` to keep it as a regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realizar::gguf::parse;
use realizar::Error;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(g) => {
            for t in &g.tensors {
                if let Some(n) = t.nbytes {
                    assert!(t.data_start.checked_add(n).is_some_and(|end| end <= data.len() as u64));
                    assert_eq!(g.tensor_bytes(data, t).map(<[u8]>::len), Some(n as usize));
                }
            }
        }
        Err(Error::Gguf { offset, .. }) => assert!(offset <= data.len() as u64),
        Err(e) => panic!("parse returned a non-GGUF error: {e:?}"),
    }
});
