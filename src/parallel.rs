//! Splitting a decode across threads on block boundaries. Each thread runs the same decoder on a
//! contiguous run of whole blocks, so the output is identical for every thread count.

use crate::formats::DecodeFn;
use crate::QuantType;

/// Outputs smaller than this many weights are decoded on the calling thread when the caller
/// leaves the thread count to realizar: below it, waking a second thread costs more than it gains.
pub const AUTO_THREADS_MIN_WEIGHTS: usize = 1 << 18;

/// Number of threads realizar uses for `n_weights` when asked for `requested` (0 = automatic).
pub fn threads_for(n_weights: usize, requested: usize) -> usize {
    if requested > 0 {
        requested
    } else if n_weights < AUTO_THREADS_MIN_WEIGHTS {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Decodes `src` (whole blocks of `qtype`) into `dst` with `threads` threads.
pub fn run(decode: DecodeFn, qtype: QuantType, src: &[u8], dst: &mut [f32], threads: usize) {
    let (bb, bw) = (qtype.type_size(), qtype.block_size());
    let nblocks = src.len() / bb;
    let threads = threads.clamp(1, nblocks.max(1));
    if threads == 1 {
        decode(src, dst);
        return;
    }
    // Whole 64-byte lines of output per chunk (16 weights), so that each thread's output starts
    // as aligned as the whole (the streaming stores need 32-byte aligned outputs).
    let per = nblocks.div_ceil(threads).next_multiple_of((16 / bw).max(1));
    rayon::scope(|s| {
        for (src, dst) in src.chunks(per * bb).zip(dst.chunks_mut(per * bw)) {
            s.spawn(move |_| decode(src, dst));
        }
    });
}
