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

/// How long a pool thread that helped a [`run_helped`] call keeps watching for the next call's
/// work before it returns to rayon (which lets it sleep). Waking a sleeping pool thread costs
/// 90-160 us on the project's 2-core VM, more than a whole legacy-format quantize call of 256 Ki
/// weights (60-80 us). With the caller's own spin ([`CALLER_SPIN`]; this one alone gained nothing
/// measurable) two threads of back-to-back calls, as in a model conversion, went from 1.4-1.6x
/// one thread to 1.6-2.1x. OpenMP runtimes and ggml's thread pool spin for the same reason;
/// 200 us bounds the CPU time this can cost per call.
const HELPER_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// How long the caller of [`run_helped`] spins, once its own copy of the work is done, for the pool
/// threads to finish their last piece before it parks (a parked thread's idle vCPU takes tens of
/// microseconds to wake on the project's VM).
const CALLER_SPIN: std::time::Duration = std::time::Duration::from_micros(100);

/// Bit of [`Job::state`] set once the caller's copy has returned: no copy may start after it.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// The address of a call's `work`, valid until its `Close` has seen every started copy finish: a
/// raw pointer, so that a pool thread that comes late holds no dangling reference.
#[derive(Clone, Copy)]
struct WorkPtr(*const (dyn Fn() + Sync + 'static));
// SAFETY: it points to a `Sync` closure, and is dereferenced only while that is alive (see `help`).
unsafe impl Send for WorkPtr {}
unsafe impl Sync for WorkPtr {}

/// One [`run_helped`] call, as its helpers see it.
struct Job {
    /// `CLOSED` and the number of helper copies running.
    state: std::sync::atomic::AtomicUsize,
    /// Helpers that may still join (`threads - 1` at first).
    slots: std::sync::atomic::AtomicUsize,
    caller: std::thread::Thread,
    work: WorkPtr,
}

impl Job {
    /// Runs the work as one more copy, unless every helper slot is taken or the caller's copy has
    /// already returned.
    fn help(&self) {
        use std::sync::atomic::Ordering;
        /// Leaves the running count (even if `work` panics) and wakes the caller if it waits.
        /// (The helper's own `Arc` keeps the job alive after the caller returned.)
        struct Running<'a>(&'a Job);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                if self.0.state.fetch_sub(1, Ordering::AcqRel) == CLOSED | 1 {
                    self.0.caller.unpark();
                }
            }
        }
        if self.slots.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| s.checked_sub(1)).is_err() {
            return;
        }
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & CLOSED != 0 {
                return;
            }
            match self.state.compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        let _running = Running(self);
        // SAFETY: this copy counted itself as running before the caller closed the state, and the
        // caller does not return (nor unwind) past `Close` while a copy runs, so `work` is alive.
        unsafe { (*self.work.0)() }
    }
}

/// The latest [`run_helped`] call's job, for the pool threads still spinning after helping an
/// earlier one, with a sequence number bumped (under the lock) at every new offer.
static OFFER: std::sync::Mutex<Option<std::sync::Arc<Job>>> = std::sync::Mutex::new(None);
static OFFER_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Pool threads spinning in [`helper`] for the next offer.
static SPINNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A pool thread's part of [`run_helped`]: helps `job` (offer number `seq`), then for
/// [`HELPER_SPIN`] takes every newer offer, as long as there are some.
fn helper(mut job: std::sync::Arc<Job>, mut seq: u64) {
    use std::sync::atomic::Ordering;
    loop {
        job.help();
        drop(job);
        SPINNING.fetch_add(1, Ordering::SeqCst);
        let since = std::time::Instant::now();
        let next = loop {
            if OFFER_SEQ.load(Ordering::SeqCst) != seq {
                let offer = OFFER.lock().unwrap_or_else(|e| e.into_inner());
                seq = OFFER_SEQ.load(Ordering::SeqCst);
                if let Some(j) = offer.as_ref() {
                    break Some(std::sync::Arc::clone(j));
                }
            }
            if since.elapsed() > HELPER_SPIN {
                break None;
            }
            for _ in 0..8 {
                std::hint::spin_loop();
            }
        };
        SPINNING.fetch_sub(1, Ordering::SeqCst);
        match next {
            Some(j) => job = j,
            None => return,
        }
    }
}

/// Runs `work` on the calling thread and on up to `threads - 1` pool threads at once, and returns
/// when every copy that started has finished. A pool thread that has not started by the time the
/// calling thread's copy returns never runs it: `work` must share its work through a queue (every
/// copy takes pieces until none are left), so the caller alone can do it all. On a busy machine,
/// where a pool thread may wait milliseconds for a core, the call then costs what one thread costs
/// instead of waiting for the late thread (`rayon::scope` would wait for every spawned job).
/// Pool threads that helped a call stay awake for [`HELPER_SPIN`] and help the next one at once.
pub fn run_helped(threads: usize, work: &(dyn Fn() + Sync)) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Closes the job, waits for its running copies (even if the caller's `work` panics:
    /// spinning for up to [`CALLER_SPIN`], then parked) and withdraws its offer.
    struct Close<'a>(&'a Arc<Job>);
    impl Drop for Close<'_> {
        fn drop(&mut self) {
            self.0.state.fetch_or(CLOSED, Ordering::AcqRel);
            let since = std::time::Instant::now();
            while self.0.state.load(Ordering::Acquire) != CLOSED {
                if since.elapsed() < CALLER_SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::park();
                }
            }
            let mut offer = OFFER.lock().unwrap_or_else(|e| e.into_inner());
            if offer.as_ref().is_some_and(|j| Arc::ptr_eq(j, self.0)) {
                *offer = None;
            }
        }
    }

    if threads <= 1 {
        work();
        return;
    }
    // SAFETY (of the transmute): a raw pointer whose trait object's lifetime bound is erased; it is
    // only dereferenced while `work` is alive (see `Job::help`).
    let ptr = unsafe { std::mem::transmute::<*const (dyn Fn() + Sync + '_), *const (dyn Fn() + Sync + 'static)>(work) };
    let job = Arc::new(Job {
        state: AtomicUsize::new(0),
        slots: AtomicUsize::new(threads - 1),
        caller: std::thread::current(),
        work: WorkPtr(ptr),
    });
    let seq = {
        let mut offer = OFFER.lock().unwrap_or_else(|e| e.into_inner());
        *offer = Some(Arc::clone(&job));
        OFFER_SEQ.fetch_add(1, Ordering::SeqCst) + 1
    };
    // Spinning helpers take the offer themselves; the pool wakes only the others. (A count that
    // is off by a race costs at most a helper that finds no slot left, or one helper less.)
    let spinning = SPINNING.load(Ordering::SeqCst);
    for _ in spinning.min(threads - 1)..threads - 1 {
        let job = Arc::clone(&job);
        rayon::spawn(move || helper(job, seq));
    }
    let _close = Close(&job);
    work();
}

#[cfg(test)]
mod tests {
    use super::run_helped;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// Every piece is done exactly once, whether the helpers start at once, late or never, and
    /// `run_helped` returns only after every helper that took a piece finished it.
    #[test]
    fn helped_work_is_done_once() {
        for threads in [1, 2, 3, 8] {
            for (pieces, slow) in [(0usize, false), (1, false), (7, false), (200, false), (5, true)] {
                let next = AtomicUsize::new(0);
                let done: Vec<AtomicUsize> = (0..pieces).map(|_| AtomicUsize::new(0)).collect();
                let finished = Mutex::new(0usize);
                let work = || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= pieces {
                        break;
                    }
                    if slow {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    done[i].fetch_add(1, Ordering::Relaxed);
                    *finished.lock().unwrap() += 1;
                };
                run_helped(threads, &work);
                assert_eq!(*finished.lock().unwrap(), pieces, "{threads} threads, {pieces} pieces");
                assert!(done.iter().all(|d| d.load(Ordering::Relaxed) == 1));
            }
        }
    }

    /// Callers on several threads at once, back to back, so that spinning helpers take offers that
    /// are replaced, withdrawn or already closed: every call's pieces are still done exactly once.
    #[test]
    fn concurrent_callers_each_get_their_work_done_once() {
        std::thread::scope(|s| {
            for caller in 0..4 {
                s.spawn(move || {
                    for round in 0..300 {
                        let pieces = 1 + (caller * 7 + round) % 40;
                        let next = AtomicUsize::new(0);
                        let done: Vec<AtomicUsize> = (0..pieces).map(|_| AtomicUsize::new(0)).collect();
                        let work = || loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= pieces {
                                break;
                            }
                            done[i].fetch_add(1, Ordering::Relaxed);
                        };
                        run_helped(2 + round % 3, &work);
                        assert!(done.iter().all(|d| d.load(Ordering::Relaxed) == 1), "caller {caller} round {round}");
                    }
                });
            }
        });
    }
}
