//! resin's own thread pool: persistent workers, no allocation and no thread spawn per run.
//!
//! This module owns how kernels run in parallel. A [`ThreadPool`] is made once (a [`crate::Session`] owns
//! one) and [installed](ThreadPool::install) around the steps of a run; inside, a kernel calls [`run`]
//! (or [`for_chunks_mut`]) with a number of *parts*, and the parts are spread over the calling thread and
//! the pool's workers. Outside an installed pool, and inside a part (no nesting), [`run`] is a plain loop.
//! Kernels must not know more than that: how parts become threads is decided here alone.
//!
//! Why not rayon (which resin used before): rayon's job queues allocate as jobs are injected, so a
//! warmed-up session still allocated a few times per hundred runs, and its work-stealing machinery is
//! more than kernels need — they split work into at most a few parts of known size.
//!
//! # How a dispatch works
//! One 64-bit word holds the job's *ticket*: `epoch (32 bits) | parts (16) | next (16)`. The caller
//! stores the job (a `&dyn Fn(usize)`), resets the count of finished parts, and publishes a new ticket
//! with `next = 0`. Every participant — the caller included — claims parts by compare-and-swap on
//! `next`, so a part runs exactly once, and a worker that is slow to wake simply finds nothing left (the
//! caller does the work instead of waiting for it). A claim fails once the epoch moves on, so a late
//! worker never runs a part of a job that has finished. The caller returns when every part is finished;
//! a panic in a worker's part is caught there and raised again on the caller.
//!
//! Workers spin briefly on the ticket (steps follow each other within microseconds) and then sleep on
//! a condition variable; the caller wakes sleepers only when there are some.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins on the ticket before it sleeps.
const SPIN: Duration = Duration::from_micros(100);

/// The largest number of parts in one dispatch (`next` and `parts` are 16-bit fields).
pub const MAX_PARTS: usize = (1 << 16) - 1;

type Job = dyn Fn(usize) + Sync;

struct Inner {
    threads: usize,
    /// `epoch << 32 | parts << 16 | next`.
    ticket: AtomicU64,
    /// The current job, valid while its parts run (its lifetime is erased; see [`ThreadPool::dispatch`]).
    job: Cell<Option<*const Job>>,
    /// Parts of the current job that have finished.
    done: AtomicUsize,
    panicked: AtomicBool,
    /// Taken by the thread that dispatches: one job at a time per pool.
    busy: AtomicBool,
    sleepers: AtomicUsize,
    /// Workers that have started running (see [`ThreadPool::new`]).
    started: AtomicUsize,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the dispatching thread (which holds `busy`) before the ticket is
// published with Release ordering, and read by workers only after an Acquire claim on that ticket.
unsafe impl Sync for Inner {}
unsafe impl Send for Inner {}

fn pack(epoch: u64, parts: usize, next: usize) -> u64 {
    (epoch << 32) | ((parts as u64) << 16) | next as u64
}

fn unpack(t: u64) -> (u64, usize, usize) {
    (t >> 32, ((t >> 16) & 0xffff) as usize, (t & 0xffff) as usize)
}

impl Inner {
    /// Claims and runs parts of the job with ticket epoch `epoch` until none is left.
    fn work(&self, epoch: u64) {
        let mut t = self.ticket.load(Acquire);
        loop {
            let (e, parts, next) = unpack(t);
            if e != epoch || next >= parts {
                return;
            }
            match self.ticket.compare_exchange_weak(t, pack(e, parts, next + 1), AcqRel, Acquire) {
                Ok(_) => {
                    // SAFETY: part `next` of this epoch is unfinished, so the dispatcher is still
                    // waiting and the job it published is alive.
                    let job = unsafe { &*self.job.get().expect("a published job") };
                    if catch_unwind(AssertUnwindSafe(|| job(next))).is_err() {
                        self.panicked.store(true, Release);
                    }
                    self.done.fetch_add(1, Release);
                    t = self.ticket.load(Acquire);
                }
                Err(now) => t = now,
            }
        }
    }

    /// A worker's loop. It starts from epoch 0, the pool's first, not from the ticket it finds: a job
    /// may have been published before this thread got to run.
    fn worker(&self) {
        self.started.fetch_add(1, Release);
        let mut seen = 0;
        loop {
            let epoch = self.wait_for_epoch_after(seen);
            if self.shutdown.load(Acquire) {
                return;
            }
            seen = epoch;
            self.work(epoch);
        }
    }

    /// Spins, then sleeps, until the ticket's epoch differs from `seen`; returns the new epoch.
    fn wait_for_epoch_after(&self, seen: u64) -> u64 {
        let started = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = unpack(self.ticket.load(Acquire)).0;
            if e != seen || self.shutdown.load(Acquire) {
                return e;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || started.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            // Sleep. The dispatcher publishes the ticket, then reads `sleepers` (both SeqCst); we count
            // ourselves in, then re-read the ticket under the lock: one of us sees the other.
            let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.sleepers.fetch_add(1, SeqCst);
            let mut guard = guard;
            loop {
                let e = unpack(self.ticket.load(SeqCst)).0;
                if e != seen || self.shutdown.load(SeqCst) {
                    self.sleepers.fetch_sub(1, SeqCst);
                    return e;
                }
                guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

/// A fixed set of worker threads that run the parts of kernels (see the module docs).
pub struct ThreadPool {
    inner: Arc<Inner>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool").field("threads", &self.inner.threads).finish()
    }
}

impl ThreadPool {
    /// A pool in which `threads` threads (the caller and `threads - 1` workers) run parts. Returns once
    /// every worker has started.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let inner = Arc::new(Inner {
            threads,
            ticket: AtomicU64::new(0),
            job: Cell::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = ThreadPool { inner: inner.clone(), handles: Vec::with_capacity(threads - 1) };
        for i in 1..threads {
            let inner = inner.clone();
            // On failure `pool` is dropped, which stops the workers already started.
            let h = std::thread::Builder::new().name(format!("resin-{i}")).spawn(move || inner.worker())?;
            pool.handles.push(h);
        }
        // Wait until every worker runs: a thread's start-up allocates (std's per-thread bookkeeping), and
        // that must not happen later, inside somebody's runs.
        while inner.started.load(Acquire) < threads - 1 {
            std::thread::yield_now();
        }
        Ok(pool)
    }

    /// The number of threads that run parts, the caller included.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Runs `f` with this pool as the one [`run`] uses on this thread.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(*const ThreadPool);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(self)));
        f()
    }

    /// Runs `f(0)`, …, `f(parts - 1)` on the caller and the workers; returns when all have finished.
    /// If another thread is dispatching on this pool, the parts run on the caller alone.
    pub fn dispatch(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        let inner = &*self.inner;
        if parts <= 1 || inner.threads == 1 || inner.busy.swap(true, Acquire) {
            (0..parts).for_each(f);
            return;
        }
        // Parts beyond 16 bits run as chunks of parts.
        if parts > MAX_PARTS {
            let chunk = parts.div_ceil(MAX_PARTS);
            let g = move |c: usize| (c * chunk..((c + 1) * chunk).min(parts)).for_each(f);
            self.dispatch_locked(parts.div_ceil(chunk), &g);
        } else {
            self.dispatch_locked(parts, f);
        }
        inner.busy.store(false, Release);
        if inner.panicked.swap(false, AcqRel) {
            panic!("a part of a parallel kernel panicked on a resin worker thread");
        }
    }

    fn dispatch_locked(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        let inner = &*self.inner;
        // SAFETY: the reference is erased to a raw pointer that workers use only while a part of this
        // epoch is unfinished, and we return only after every part has finished.
        let job: *const Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(f) };
        inner.job.set(Some(job));
        inner.done.store(0, Relaxed);
        let epoch = (unpack(inner.ticket.load(Relaxed)).0 + 1) & 0xffff_ffff;
        inner.ticket.store(pack(epoch, parts, 0), SeqCst);
        if inner.sleepers.load(SeqCst) > 0 {
            let _guard = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
            inner.wake.notify_all();
        }
        // Nested calls to `run` inside our own parts stay sequential.
        let outer = CURRENT.with(|c| c.replace(std::ptr::null()));
        inner.work(epoch);
        CURRENT.with(|c| c.set(outer));
        let mut spins = 0u32;
        while inner.done.load(Acquire) < parts {
            spins = spins.wrapping_add(1);
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        inner.job.set(None);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let inner = &*self.inner;
        inner.shutdown.store(true, SeqCst);
        let (e, _, _) = unpack(inner.ticket.load(SeqCst));
        inner.ticket.store(pack((e + 1) & 0xffff_ffff, 0, 0), SeqCst);
        {
            let _guard = inner.lock.lock().unwrap_or_else(|e| e.into_inner());
            inner.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

thread_local! {
    /// The pool installed on this thread, or null.
    static CURRENT: Cell<*const ThreadPool> = const { Cell::new(std::ptr::null()) };
}

/// The number of threads [`run`] would use here: the installed pool's, or 1.
pub fn current_threads() -> usize {
    // SAFETY: a non-null CURRENT points to the pool whose `install` frame is still on this stack.
    CURRENT.with(|c| unsafe { c.get().as_ref() }.map_or(1, |p| p.threads()))
}

/// Runs `f(0)`, …, `f(parts - 1)`, in parallel on the installed pool if there is one.
pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    // SAFETY: as in `current_threads`.
    match CURRENT.with(|c| unsafe { c.get().as_ref() }) {
        Some(pool) => pool.dispatch(parts, f),
        None => (0..parts).for_each(f),
    }
}

/// A raw pointer that may cross threads; users guarantee that parts touch disjoint elements.
pub(crate) struct SendPtr<T>(pub *mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// The pointer. (A method, so that closures capture the whole `SendPtr`, which is `Sync`, rather
    /// than its raw-pointer field, which is not.)
    pub fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: see the type's doc; every use documents why its parts are disjoint.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

/// Runs `f(i, chunk_i)` for every `chunk`-long chunk of `data` (the last may be shorter), the chunks
/// spread in contiguous groups over the installed pool's threads.
pub fn for_chunks_mut<T: Send>(data: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    assert!(chunk > 0, "for_chunks_mut: chunk must be positive");
    let n = data.len().div_ceil(chunk);
    let parts = current_threads().min(n);
    let (len, ptr) = (data.len(), SendPtr(data.as_mut_ptr()));
    run(parts, &|p| {
        for i in p * n / parts..(p + 1) * n / parts {
            let (start, end) = (i * chunk, ((i + 1) * chunk).min(len));
            // SAFETY: chunk i covers [start, end) of `data`, and each chunk index is visited by exactly
            // one part, so the slices are disjoint and inside `data`, which we borrow mutably.
            let s = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(start), end - start) };
            f(i, s);
        }
    });
}

/// A process-wide pool of `threads` threads, started on first use and kept; for callers without a
/// session (such as [`crate::kernels::gemm::sgemm`]). Concurrent callers of one pool run sequentially.
pub fn global(threads: usize) -> &'static ThreadPool {
    static POOLS: OnceLock<Mutex<Vec<&'static ThreadPool>>> = OnceLock::new();
    let mut pools = POOLS.get_or_init(|| Mutex::new(Vec::new())).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pools.iter().find(|p| p.threads() == threads.max(1)) {
        return p;
    }
    let pool: &'static ThreadPool =
        Box::leak(Box::new(ThreadPool::new(threads).expect("cannot start the threads of a global pool")));
    pools.push(pool);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_part_runs_once_on_every_pool_size() {
        for threads in 1..=4 {
            let pool = ThreadPool::new(threads).unwrap();
            for parts in [0, 1, 2, 3, 7, 64, 1000] {
                for _ in 0..50 {
                    let hits: Vec<AtomicU32> = (0..parts).map(|_| AtomicU32::new(0)).collect();
                    pool.install(|| run(parts, &|i| _ = hits[i].fetch_add(1, Relaxed)));
                    assert!(hits.iter().all(|h| h.load(Relaxed) == 1), "threads {threads} parts {parts}");
                }
            }
        }
    }

    #[test]
    fn parts_use_the_workers() {
        let pool = ThreadPool::new(2).unwrap();
        let ids = Mutex::new(std::collections::HashSet::new());
        // A part that waits for the other makes the two run at the same time on two threads.
        let arrived = AtomicUsize::new(0);
        pool.install(|| {
            run(2, &|_| {
                ids.lock().unwrap().insert(std::thread::current().id());
                arrived.fetch_add(1, SeqCst);
                while arrived.load(SeqCst) < 2 {
                    std::hint::spin_loop();
                }
            })
        });
        assert_eq!(ids.lock().unwrap().len(), 2);
    }

    #[test]
    fn workers_wake_after_sleeping() {
        let pool = ThreadPool::new(3).unwrap();
        for _ in 0..3 {
            std::thread::sleep(SPIN * 20);
            let sum = AtomicUsize::new(0);
            pool.install(|| run(10, &|i| _ = sum.fetch_add(i, Relaxed)));
            assert_eq!(sum.load(Relaxed), 45);
        }
    }

    #[test]
    fn nested_runs_are_sequential_and_complete() {
        let pool = ThreadPool::new(2).unwrap();
        let total = AtomicUsize::new(0);
        pool.install(|| {
            run(4, &|_| run(5, &|_| _ = total.fetch_add(1, Relaxed)));
        });
        assert_eq!(total.load(Relaxed), 20);
    }

    #[test]
    fn chunks_cover_the_slice() {
        let pool = ThreadPool::new(2).unwrap();
        let mut v = vec![0usize; 103];
        pool.install(|| for_chunks_mut(&mut v, 10, |i, c| c.iter_mut().for_each(|x| *x += i + 1)));
        assert!(v.iter().enumerate().all(|(j, &x)| x == j / 10 + 1));
    }

    #[test]
    fn a_panicking_part_panics_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| pool.install(|| run(8, &|i| assert!(i != 5)))));
        assert!(r.is_err());
        let sum = AtomicUsize::new(0);
        pool.install(|| run(8, &|i| _ = sum.fetch_add(i, Relaxed)));
        assert_eq!(sum.load(Relaxed), 28);
    }

    #[test]
    fn concurrent_callers_of_one_pool_fall_back_to_sequential() {
        let pool = global(2);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let sum = AtomicUsize::new(0);
                        pool.install(|| run(16, &|i| _ = sum.fetch_add(i, Relaxed)));
                        assert_eq!(sum.load(Relaxed), 120);
                    }
                });
            }
        });
    }
}
