//! Keeping a rayon pool's workers awake across a sequence of parallel calls.
//!
//! A forward pass runs hundreds of short parallel kernels one after the
//! other. Between two of them, a rayon worker that found no work soon
//! parks on a futex, and waking it costs tens of microseconds, more on a
//! virtual machine, whose idle vCPU the host may deschedule. On a 16-token
//! text that wake-up is a large part of each matmul. [`with_workers_polling`]
//! keeps the other workers of the pool looking for work for the length of
//! one pass. Other runtimes spin between parallel regions too: ONNX
//! Runtime's intra-op pool by default (`session.intra_op.allow_spinning`,
//! <https://onnxruntime.ai/docs/performance/tune-performance/threading.html>),
//! and GNU libgomp's threads for 300,000 spins before they sleep when
//! `OMP_WAIT_POLICY` is unset
//! (<https://gcc.gnu.org/onlinedocs/libgomp/GOMP_005fSPINCOUNT.html>).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

thread_local! {
    /// Whether this thread is running a poller, so that a nested one returns at once.
    static POLLING: Cell<bool> = const { Cell::new(false) };
}

/// How long a poller waits without finding a job before it returns and
/// lets its thread sleep. An estimate: longer than the serial steps between
/// the kernels of a forward pass, short enough to bound the stall described
/// at [`with_workers_polling`].
pub const IDLE_LIMIT: Duration = Duration::from_millis(2);

/// Runs `work` on the calling thread while the other workers of the
/// current rayon pool poll for jobs instead of sleeping.
///
/// Called outside a rayon pool, or in a pool of one thread, it just runs
/// `work`. The pollers execute any job the pool offers, so results do not
/// change; they only spend the other cores' idle time while `work` runs.
///
/// Each poller is a job spawned before `work` starts. Thieves take the
/// oldest jobs first, so an idle worker usually picks up a poller before
/// any job of `work`. A poller that lands on the calling thread, or on a
/// thread already polling, returns at once. One that still lands under a
/// job that `work` waits for returns once it has found no job for
/// [`IDLE_LIMIT`], so that job resumes and the pass cannot deadlock. A
/// panic in `work` ends the pollers the same way.
pub fn with_workers_polling<R>(work: impl FnOnce() -> R) -> R {
    let threads = rayon::current_num_threads();
    let Some(owner) = rayon::current_thread_index() else {
        return work();
    };
    if threads < 2 {
        return work();
    }
    let done = AtomicBool::new(false);
    rayon::in_place_scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| poll(owner, &done));
        }
        let result = work();
        done.store(true, Ordering::Release);
        result
    })
}

/// Runs the pool's jobs until `done` is set or none came for [`IDLE_LIMIT`],
/// unless this is `owner` or a thread that already polls.
fn poll(owner: usize, done: &AtomicBool) {
    if rayon::current_thread_index() == Some(owner) || POLLING.get() {
        return;
    }
    /// Clears the flag however the poller ends, a job's panic included.
    struct Polling;
    impl Drop for Polling {
        fn drop(&mut self) {
            POLLING.set(false);
        }
    }
    POLLING.set(true);
    let _polling = Polling;
    let mut idle_since: Option<Instant> = None;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() > IDLE_LIMIT {
            return;
        }
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool")
    }

    #[test]
    fn returns_the_result_outside_a_pool() {
        assert_eq!(with_workers_polling(|| 7), 7);
    }

    #[test]
    fn nested_parallel_work_completes_on_every_pool_size() {
        for threads in [1, 2, 3, 5] {
            let sum = pool(threads).install(|| {
                with_workers_polling(|| {
                    (0..200u64)
                        .map(|round| {
                            (0..1000u64)
                                .into_par_iter()
                                .map(|i| (0..i % 7).into_par_iter().sum::<u64>() + round)
                                .sum::<u64>()
                        })
                        .sum::<u64>()
                })
            });
            let expected: u64 =
                (0..200u64).map(|round| (0..1000u64).map(|i| (0..i % 7).sum::<u64>() + round).sum::<u64>()).sum();
            assert_eq!(sum, expected, "{threads} threads");
        }
    }

    #[test]
    fn serial_pause_ends_polling() {
        // A serial step longer than IDLE_LIMIT sends the pollers back to
        // sleep, and the parallel work after it still completes.
        let sum = pool(3).install(|| {
            with_workers_polling(|| {
                let first: u64 = (0..1000u64).into_par_iter().sum();
                std::thread::sleep(IDLE_LIMIT * 3);
                first + (0..1000u64).into_par_iter().sum::<u64>()
            })
        });
        assert_eq!(sum, 2 * 499_500);
    }

    #[test]
    fn nested_calls_return() {
        let value =
            pool(3).install(|| with_workers_polling(|| with_workers_polling(|| (0..100).into_par_iter().sum::<i32>())));
        assert_eq!(value, 4950);
    }

    #[test]
    fn workers_run_jobs_while_polling() {
        // With pollers running, the jobs of `work` still spread over the pool.
        let seen = pool(2).install(|| {
            with_workers_polling(|| {
                let seen: Vec<Option<usize>> = (0..64)
                    .into_par_iter()
                    .map(|_| {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        rayon::current_thread_index()
                    })
                    .collect();
                seen
            })
        });
        assert!(seen.contains(&Some(0)), "worker 0 ran no job: {seen:?}");
        assert!(seen.contains(&Some(1)), "worker 1 ran no job: {seen:?}");
    }
}
