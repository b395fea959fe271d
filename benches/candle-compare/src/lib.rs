//! Empty: the comparison lives in benches/compare.rs.
