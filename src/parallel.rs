//! Splitting a decode across threads on block boundaries. Each thread runs the same decoder on a
//! contiguous run of whole blocks, so the output is identical for every thread count.

use crate::formats::DecodeFn;
use crate::QuantType;

/// Outputs smaller than this many weights are decoded on the calling thread when the caller
/// leaves the thread count to realizar: below it, waking a second thread costs more than it gains.
///
/// Measured with `cargo bench --bench dequantize -- threads` on the project's 2-core EPYC VM
/// (shared, load 7-9), 2 threads over 1 (Q4_K / Q6_K / Q8_0): 64Ki weights 0.2-0.6x, 128Ki
/// 0.7-0.9x, 256Ki 0.8-1.3x, 512Ki 0.8-1.5x, 1Mi 0.8-1.7x. Waking a pool thread costs 10-30 us
/// there, about what one thread needs for 128Ki-256Ki weights, so the second thread pays from
/// about 512Ki weights (2 MiB of output) on.
pub const AUTO_THREADS_MIN_WEIGHTS: usize = 1 << 19;

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
    // The calling thread decodes the first chunk itself while the pool takes the others: one
    // wake-up less than handing everything to the pool (`rayon::scope` from a non-pool thread).
    rayon::in_place_scope(|s| {
        let mut chunks = src.chunks(per * bb).zip(dst.chunks_mut(per * bw));
        let first = chunks.next();
        for (src, dst) in chunks {
            s.spawn(move |_| decode(src, dst));
        }
        if let Some((src, dst)) = first {
            decode(src, dst);
        }
    });
}

/// Weights per piece in [`run_many`]: 1 MiB of output, small enough to balance two to a few dozen
/// threads over a model's tensors, large enough that handing a piece to a thread costs nothing.
pub const PIECE_WEIGHTS: usize = 1 << 18;

/// Decodes several `(decoder, type, input, output)` jobs with `threads` threads: each job is cut
/// into pieces of at most [`PIECE_WEIGHTS`] weights on block boundaries, and the threads take
/// pieces from one shared list, in order.
pub fn run_many<'a, I>(jobs: I, threads: usize)
where
    I: IntoIterator<Item = (DecodeFn, QuantType, &'a [u8], &'a mut [f32])>,
{
    let mut pieces: Vec<(DecodeFn, &'a [u8], &'a mut [f32])> = Vec::new();
    for (decode, qtype, src, dst) in jobs {
        let (bb, bw) = (qtype.type_size(), qtype.block_size());
        // Whole 64-byte lines of output per piece, as in `run`, so aligned outputs stay aligned.
        let per = (PIECE_WEIGHTS / bw).max(1).next_multiple_of((16 / bw).max(1));
        pieces.extend(src.chunks(per * bb).zip(dst.chunks_mut(per * bw)).map(|(s, d)| (decode, s, d)));
    }
    if threads <= 1 || pieces.len() <= 1 {
        for (decode, src, dst) in pieces {
            decode(src, dst);
        }
        return;
    }
    let helpers = threads.min(pieces.len()) - 1;
    let queue = std::sync::Mutex::new(pieces.into_iter());
    let work = || loop {
        // The lock is held only to take the next piece, not while decoding it.
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
        let Some((decode, src, dst)) = next else { break };
        decode(src, dst);
    };
    rayon::in_place_scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| work());
        }
        work();
    });
}
