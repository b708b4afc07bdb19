//! Loom models of the cell: every interleaving (up to a preemption bound) and every value
//! the memory model allows a load to return.
//!
//! The payload keeps its value in a loom `UnsafeCell`, written when the table is built and
//! overwritten (poisoned) when it is dropped. Loom reports any read of the value that is not
//! ordered after the write that built it (a half-published table) or not ordered before the
//! write that poisons it (a use after free), and the readers also check the value itself.
//!
//! Run with `crates/rcu/loom.sh` (`RUSTFLAGS="--cfg loom" cargo test --release --test loom`).

#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use wccp_rcu::{cell, Publisher, Reader};

const POISON: u64 = u64::MAX;

/// A table: one value, the generation it was published as.
struct Table {
    value: UnsafeCell<u64>,
    drops: Arc<AtomicUsize>,
}

// SAFETY: `value` is written only by `Table::new` (before the table is shared) and by
// `Drop` (through `&mut self`), and read through `&Table`; whether those accesses are
// ordered is exactly what the cell under test must guarantee, and loom's `UnsafeCell`
// checks it on every access.
unsafe impl Sync for Table {}

impl Table {
    fn new(value: u64, drops: &Arc<AtomicUsize>) -> Box<Self> {
        Box::new(Table {
            value: UnsafeCell::new(value),
            drops: Arc::clone(drops),
        })
    }

    fn get(&self) -> u64 {
        // SAFETY: a read through `&Table`; loom reports it if it races with `Drop`.
        let value = self.value.with(|v| unsafe { *v });
        assert_ne!(value, POISON, "read a freed table");
        value
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Loom is unwinding after a reported failure; touching loom objects now would
            // panic again and abort the whole test binary.
            return;
        }
        // SAFETY: a write through `&mut self`; loom reports it if a reader's `get` is not
        // ordered before it, i.e. if the table is freed while still in use.
        self.value.with_mut(|v| unsafe { *v = POISON });
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// A reader's loop body: read, check, report; `rounds` times. The generation it sees must
/// never go back.
fn lcore(mut reader: Reader<Table>, rounds: usize) {
    let mut last = 0;
    for _ in 0..rounds {
        let value = reader.read().get();
        assert!(value >= last, "went back from {last} to {value}");
        last = value;
        reader.quiescent();
    }
}

fn publish(publisher: &mut Publisher<Table>, value: u64, drops: &Arc<AtomicUsize>) {
    assert_eq!(publisher.publish(Table::new(value, drops)), value);
}

/// Runs `f` under loom with at most `preemptions` preemptions per execution, unless
/// `LOOM_MAX_PREEMPTIONS` asks for another bound (deeper runs take minutes).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(f);
}

/// One publisher doing two publications with a reclaim after each, two readers doing two
/// read → quiescent rounds.
#[test]
fn two_publications_two_readers() {
    // Three threads: a bound of 3 takes minutes on two cores; 2 takes seconds.
    model(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut publisher, readers) = cell(Table::new(0, &drops), 2);
        let lcores: Vec<_> = readers
            .into_iter()
            .map(|reader| thread::spawn(move || lcore(reader, 2)))
            .collect();

        publish(&mut publisher, 1, &drops);
        publisher.reclaim();
        publish(&mut publisher, 2, &drops);
        publisher.reclaim();

        for lcore in lcores {
            lcore.join().expect("reader");
        }
        // The readers are gone: everything retired is reclaimable now.
        publisher.reclaim();
        assert_eq!(publisher.pending(), 0);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
        assert_eq!(publisher.current().get(), 2);
        drop(publisher);
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    });
}

/// A reader that goes offline and online again while the publisher publishes and
/// reclaims: exercises the SeqCst fences of `online` and `reclaim`.
#[test]
fn offline_online_reader() {
    model(3, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut publisher, mut readers) = cell(Table::new(0, &drops), 1);
        let mut reader = readers.pop().expect("one reader");
        let lcore = thread::spawn(move || {
            let first = reader.read().get();
            reader.offline();
            reader.online();
            let second = reader.read().get();
            assert!(second >= first);
            reader.quiescent();
            reader.read().get();
        });

        publish(&mut publisher, 1, &drops);
        publisher.reclaim();
        publish(&mut publisher, 2, &drops);
        publisher.reclaim();

        lcore.join().expect("reader");
        publisher.reclaim();
        assert_eq!(publisher.pending(), 0);
        drop(publisher);
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    });
}

/// The publisher is dropped while a reader may still hold the table it retired: the table
/// must survive until the reader is gone, and everything is freed exactly once.
#[test]
fn publisher_dropped_before_reader() {
    model(3, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut publisher, mut readers) = cell(Table::new(0, &drops), 1);
        let reader = readers.pop().expect("one reader");
        let lcore = thread::spawn(move || lcore(reader, 2));

        publish(&mut publisher, 1, &drops);
        drop(publisher);

        lcore.join().expect("reader");
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// `synchronize` returns only once the reader has passed, and then has freed the table.
///
/// The reader loops like an lcore until told to stop: a single report is not enough, since
/// it may see the new table but still the old generation (the generation is stored after
/// the pointer), and it stays online after the loop.
#[test]
fn synchronize_waits_for_the_reader() {
    model(3, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (mut publisher, mut readers) = cell(Table::new(0, &drops), 1);
        let mut reader = readers.pop().expect("one reader");
        let lcore = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    reader.read().get();
                    reader.quiescent();
                    thread::yield_now();
                }
                reader
            })
        };

        publish(&mut publisher, 1, &drops);
        assert!(publisher.synchronize(std::time::Duration::from_secs(3600)));
        assert_eq!(publisher.pending(), 0);
        assert_eq!(drops.load(Ordering::Relaxed), 1);

        stop.store(true, Ordering::Relaxed);
        let reader = lcore.join().expect("reader");
        assert!(reader.is_online());
        assert_eq!(reader.read().get(), 1);
    });
}
