//! Stress test with real threads: readers loop read → validate → quiescent while the
//! publisher publishes a few thousand tables and reclaims as it goes.
//!
//! A table is 64 words that all equal its generation; dropping it poisons every word and
//! sets a flag, and the allocator may hand its memory to the next table. A reader that ever
//! sees a freed or half-built table sees a poisoned word, a raised flag or words that
//! disagree.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use wccp_rcu::{cell, Publisher, Reader};

const WORDS: usize = 64;
const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;
const READERS: usize = 3;
const PUBLICATIONS: u64 = 3_000;

/// How often each generation's table was dropped.
struct Ledger {
    drops: Vec<AtomicUsize>,
}

impl Ledger {
    fn new(tables: u64) -> Arc<Self> {
        Arc::new(Ledger {
            drops: (0..tables).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    fn drops(&self, generation: u64) -> usize {
        self.drops[generation as usize].load(Ordering::SeqCst)
    }
}

struct Table {
    generation: u64,
    // Atomics so that the test itself has no data race to report even when the cell is
    // broken; relaxed accesses, the cell's orderings are what is under test.
    words: [AtomicU64; WORDS],
    poisoned: AtomicBool,
    ledger: Arc<Ledger>,
}

impl Table {
    fn new(generation: u64, ledger: &Arc<Ledger>) -> Box<Self> {
        Box::new(Table {
            generation,
            words: std::array::from_fn(|_| AtomicU64::new(generation)),
            poisoned: AtomicBool::new(false),
            ledger: Arc::clone(ledger),
        })
    }

    /// Panics unless the table is whole and alive; returns its generation.
    fn validate(&self) -> u64 {
        assert!(!self.poisoned.load(Ordering::Relaxed), "read a freed table");
        let generation = self.generation;
        for (i, word) in self.words.iter().enumerate() {
            let value = word.load(Ordering::Relaxed);
            assert_ne!(value, POISON, "word {i} of a freed table");
            assert_eq!(value, generation, "word {i} of table {generation}");
        }
        generation
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        assert!(
            !self.poisoned.swap(true, Ordering::Relaxed),
            "dropped twice"
        );
        for word in &self.words {
            word.store(POISON, Ordering::Relaxed);
        }
        self.ledger.drops[self.generation as usize].fetch_add(1, Ordering::SeqCst);
    }
}

/// Reads until `stop`; every 512 rounds, goes offline and online again. Returns how many
/// reads it did and how many distinct generations it saw.
fn lcore(mut reader: Reader<Table>, start: &Barrier, stop: &AtomicBool) -> (u64, u64) {
    start.wait();
    let (mut reads, mut generations, mut last) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let generation = reader.read().validate();
        assert!(generation >= last, "went back from {last} to {generation}");
        if generation != last || reads == 0 {
            generations += 1;
        }
        last = generation;
        // A second read in the same round must be as valid as the first.
        reader.read().validate();
        reader.quiescent();
        reads += 1;
        if reads % 512 == 0 {
            reader.offline();
            // Give the publisher a chance on a machine with fewer cores than threads.
            thread::yield_now();
            reader.online();
            let generation = reader.read().validate();
            assert!(generation >= last, "went back from {last} to {generation}");
        }
    }
    (reads, generations)
}

fn spawn_readers(
    readers: Vec<Reader<Table>>,
    start: &Arc<Barrier>,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<(u64, u64)>> {
    readers
        .into_iter()
        .map(|reader| {
            let (start, stop) = (Arc::clone(start), Arc::clone(stop));
            thread::spawn(move || lcore(reader, &start, &stop))
        })
        .collect()
}

/// Publishes generations `1..=PUBLICATIONS`, reclaiming after each.
fn publish_all(publisher: &mut Publisher<Table>, ledger: &Arc<Ledger>) -> usize {
    let mut freed = 0;
    for generation in 1..=PUBLICATIONS {
        assert_eq!(
            publisher.publish(Table::new(generation, ledger)),
            generation
        );
        freed += publisher.reclaim();
        // Do not let a descheduled reader grow the list without bound.
        if publisher.pending() > 256 {
            assert!(publisher.synchronize(Duration::from_secs(10)));
        }
        if generation % 64 == 0 {
            thread::yield_now();
        }
    }
    freed
}

#[test]
fn readers_never_see_a_freed_or_partial_table() {
    let ledger = Ledger::new(PUBLICATIONS + 1);
    let (mut publisher, readers) = cell(Table::new(0, &ledger), READERS);
    let start = Arc::new(Barrier::new(READERS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let lcores = spawn_readers(readers, &start, &stop);

    start.wait();
    publish_all(&mut publisher, &ledger);
    stop.store(true, Ordering::Relaxed);
    for lcore in lcores {
        let (reads, generations) = lcore.join().expect("a reader failed");
        assert!(reads > 0 && generations > 0);
    }

    assert!(publisher.synchronize(Duration::from_secs(10)));
    assert_eq!(publisher.pending(), 0);
    assert_eq!(publisher.generation(), PUBLICATIONS);
    assert_eq!(publisher.current().validate(), PUBLICATIONS);
    for generation in 0..PUBLICATIONS {
        assert_eq!(ledger.drops(generation), 1, "table {generation}");
    }
    assert_eq!(ledger.drops(PUBLICATIONS), 0, "the current table is alive");
    drop(publisher);
    assert_eq!(ledger.drops(PUBLICATIONS), 1);
}

#[test]
fn publisher_dropped_while_readers_still_read() {
    let ledger = Ledger::new(PUBLICATIONS / 10 + 1);
    let (mut publisher, readers) = cell(Table::new(0, &ledger), READERS);
    let start = Arc::new(Barrier::new(READERS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let lcores = spawn_readers(readers, &start, &stop);

    start.wait();
    for generation in 1..=PUBLICATIONS / 10 {
        publisher.publish(Table::new(generation, &ledger));
        publisher.reclaim();
    }
    // Whatever is still retired moves to the shared state; the readers keep reading.
    drop(publisher);
    thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    for lcore in lcores {
        lcore.join().expect("a reader failed");
    }
    // The last reader's drop freed the rest.
    for generation in 0..=PUBLICATIONS / 10 {
        assert_eq!(ledger.drops(generation), 1, "table {generation}");
    }
}
