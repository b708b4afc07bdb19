//! Unit tests: single-threaded sequences of publish/read/quiescent/reclaim, plus a few
//! two-thread checks of `synchronize`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::*;

/// Counts how often each table id was dropped.
#[derive(Default)]
struct Ledger {
    drops: [AtomicUsize; 16],
}

impl Ledger {
    fn drops(&self, id: usize) -> usize {
        self.drops[id].load(Ordering::SeqCst)
    }

    fn total(&self) -> usize {
        self.drops.iter().map(|d| d.load(Ordering::SeqCst)).sum()
    }

    /// Asserts that exactly the tables `ids` were dropped, each once.
    #[track_caller]
    fn assert_dropped_once(&self, ids: &[usize]) {
        for id in 0..self.drops.len() {
            let want = usize::from(ids.contains(&id));
            assert_eq!(self.drops(id), want, "drops of table {id}");
        }
    }
}

/// A table that records its drop and poisons itself.
struct Table {
    id: usize,
    live: bool,
    ledger: Arc<Ledger>,
}

impl Table {
    fn new(id: usize, ledger: &Arc<Ledger>) -> Box<Self> {
        Box::new(Table {
            id,
            live: true,
            ledger: Arc::clone(ledger),
        })
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        assert!(self.live, "table {} dropped twice", self.id);
        self.live = false;
        self.ledger.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

fn setup(readers: usize) -> (Arc<Ledger>, Publisher<Table>, Vec<Reader<Table>>) {
    let ledger = Arc::new(Ledger::default());
    let (publisher, readers) = cell(Table::new(0, &ledger), readers);
    (ledger, publisher, readers)
}

#[test]
fn readers_see_the_initial_table() {
    let (_ledger, publisher, readers) = setup(3);
    assert_eq!(readers.len(), 3);
    for reader in &readers {
        assert!(reader.is_online());
        assert_eq!(reader.read().id, 0);
    }
    assert_eq!(publisher.current().id, 0);
    assert_eq!(publisher.generation(), 0);
    assert_eq!(publisher.pending(), 0);
}

#[test]
fn publish_is_visible_to_read_and_current() {
    let (ledger, mut publisher, mut readers) = setup(1);
    assert_eq!(publisher.publish(Table::new(1, &ledger)), 1);
    assert_eq!(publisher.current().id, 1);
    assert_eq!(readers[0].read().id, 1);
    readers[0].quiescent();
    assert_eq!(readers[0].read().id, 1);
}

#[test]
fn generation_counts_publications() {
    let (ledger, mut publisher, _readers) = setup(0);
    for id in 1..=5 {
        assert_eq!(publisher.publish(Table::new(id, &ledger)), id as u64);
        assert_eq!(publisher.generation(), id as u64);
        assert_eq!(
            publisher.shared.generation.load(Ordering::SeqCst),
            id as u64
        );
    }
}

#[test]
fn publish_parks_the_old_table_without_freeing_it() {
    let (ledger, mut publisher, _readers) = setup(1);
    publisher.publish(Table::new(1, &ledger));
    publisher.publish(Table::new(2, &ledger));
    assert_eq!(publisher.pending(), 2);
    assert_eq!(ledger.total(), 0);
}

#[test]
fn reclaim_frees_nothing_while_an_online_reader_has_not_passed() {
    let (ledger, mut publisher, mut readers) = setup(2);
    publisher.publish(Table::new(1, &ledger));
    // The reader may still be using table 0 (and even reads it again before quiescent
    // would be legal); nothing may be freed.
    assert_eq!(publisher.reclaim(), 0);
    // One of the two readers passing is not enough.
    readers[0].quiescent();
    assert_eq!(publisher.reclaim(), 0);
    // A reader that merely reads, without reporting, does not pass either.
    assert_eq!(readers[1].read().id, 1);
    assert_eq!(publisher.reclaim(), 0);
    assert_eq!(publisher.pending(), 1);
    assert_eq!(ledger.total(), 0);
}

#[test]
fn reclaim_frees_once_every_online_reader_has_passed() {
    let (ledger, mut publisher, mut readers) = setup(2);
    publisher.publish(Table::new(1, &ledger));
    readers[0].quiescent();
    readers[1].quiescent();
    assert_eq!(publisher.reclaim(), 1);
    assert_eq!(publisher.pending(), 0);
    ledger.assert_dropped_once(&[0]);
    // Nothing more to free, and a second reclaim frees nothing twice.
    assert_eq!(publisher.reclaim(), 0);
    ledger.assert_dropped_once(&[0]);
}

#[test]
fn quiescent_before_a_publication_does_not_count_for_it() {
    let (ledger, mut publisher, mut readers) = setup(1);
    readers[0].quiescent();
    publisher.publish(Table::new(1, &ledger));
    assert_eq!(publisher.reclaim(), 0);
    readers[0].quiescent();
    assert_eq!(publisher.reclaim(), 1);
}

#[test]
fn reclaim_frees_only_the_prefix_every_reader_has_passed() {
    let (ledger, mut publisher, mut readers) = setup(2);
    publisher.publish(Table::new(1, &ledger)); // retires 0 with tag 1
    readers[0].quiescent(); // reader 0 at generation 1
    readers[1].quiescent(); // reader 1 at generation 1
    publisher.publish(Table::new(2, &ledger)); // retires 1 with tag 2
    publisher.publish(Table::new(3, &ledger)); // retires 2 with tag 3
    readers[0].quiescent(); // reader 0 at generation 3, reader 1 still at 1
    assert_eq!(publisher.reclaim(), 1);
    ledger.assert_dropped_once(&[0]);
    assert_eq!(publisher.pending(), 2);
    readers[1].quiescent();
    assert_eq!(publisher.reclaim(), 2);
    ledger.assert_dropped_once(&[0, 1, 2]);
    assert_eq!(readers[1].read().id, 3);
}

#[test]
fn an_offline_reader_does_not_block() {
    let (ledger, mut publisher, mut readers) = setup(2);
    readers[1].offline();
    assert!(!readers[1].is_online());
    publisher.publish(Table::new(1, &ledger));
    readers[0].quiescent();
    assert_eq!(publisher.reclaim(), 1);
    ledger.assert_dropped_once(&[0]);
}

#[test]
fn all_readers_offline_frees_immediately() {
    let (ledger, mut publisher, mut readers) = setup(2);
    readers.iter_mut().for_each(Reader::offline);
    publisher.publish(Table::new(1, &ledger));
    publisher.publish(Table::new(2, &ledger));
    assert_eq!(publisher.reclaim(), 2);
    ledger.assert_dropped_once(&[0, 1]);
}

#[test]
fn quiescent_while_offline_does_nothing() {
    let (ledger, mut publisher, mut readers) = setup(1);
    readers[0].offline();
    readers[0].quiescent();
    assert!(!readers[0].is_online());
    assert_eq!(readers[0].slot().load(Ordering::SeqCst), OFFLINE);
    publisher.publish(Table::new(1, &ledger));
    assert_eq!(publisher.reclaim(), 1);
}

#[test]
fn online_rereads_the_generation_and_blocks_later_publications() {
    let (ledger, mut publisher, mut readers) = setup(1);
    readers[0].offline();
    publisher.publish(Table::new(1, &ledger));
    readers[0].online();
    assert!(readers[0].is_online());
    // Online at generation 1: table 0 (tag 1) is free to go, and the reader sees table 1.
    assert_eq!(readers[0].slot().load(Ordering::SeqCst), 1);
    assert_eq!(readers[0].read().id, 1);
    assert_eq!(publisher.reclaim(), 1);
    // But it holds back what is published next, until it passes.
    publisher.publish(Table::new(2, &ledger));
    assert_eq!(publisher.reclaim(), 0);
    readers[0].quiescent();
    assert_eq!(publisher.reclaim(), 1);
    ledger.assert_dropped_once(&[0, 1]);
}

#[test]
fn online_and_offline_are_idempotent() {
    let (_ledger, _publisher, mut readers) = setup(1);
    readers[0].online();
    assert!(readers[0].is_online());
    readers[0].offline();
    readers[0].offline();
    assert!(!readers[0].is_online());
    readers[0].online();
    assert_eq!(readers[0].read().id, 0);
}

#[test]
#[should_panic(expected = "offline reader")]
fn read_while_offline_panics() {
    let (_ledger, _publisher, mut readers) = setup(1);
    readers[0].offline();
    let _ = readers[0].read();
}

#[test]
fn dropping_a_reader_unblocks() {
    let (ledger, mut publisher, mut readers) = setup(2);
    publisher.publish(Table::new(1, &ledger));
    readers[0].quiescent();
    assert_eq!(publisher.reclaim(), 0);
    drop(readers.pop());
    assert_eq!(publisher.reclaim(), 1);
    ledger.assert_dropped_once(&[0]);
}

#[test]
fn zero_readers_frees_on_the_first_reclaim() {
    let (ledger, mut publisher, readers) = setup(0);
    assert!(readers.is_empty());
    publisher.publish(Table::new(1, &ledger));
    assert_eq!(publisher.reclaim(), 1);
    ledger.assert_dropped_once(&[0]);
}

#[test]
fn synchronize_times_out_on_a_stalled_reader() {
    let (ledger, mut publisher, _readers) = setup(1);
    publisher.publish(Table::new(1, &ledger));
    assert!(!publisher.synchronize(Duration::from_millis(20)));
    assert_eq!(publisher.pending(), 1);
    assert_eq!(ledger.total(), 0);
}

#[test]
fn synchronize_with_nothing_retired_returns_at_once() {
    let (_ledger, mut publisher, _readers) = setup(1);
    assert!(publisher.synchronize(Duration::ZERO));
}

#[test]
fn synchronize_waits_for_a_reader_on_another_thread() {
    let (ledger, mut publisher, mut readers) = setup(1);
    let mut reader = readers.pop().expect("one reader");
    publisher.publish(Table::new(1, &ledger));
    let lcore = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        assert_eq!(reader.read().id, 1);
        reader.quiescent();
        // Keep the reader online: it is the quiescent report that must unblock.
        reader
    });
    assert!(publisher.synchronize(Duration::from_secs(10)));
    assert_eq!(publisher.pending(), 0);
    ledger.assert_dropped_once(&[0]);
    drop(lcore.join().expect("reader thread"));
}

#[test]
fn dropping_everything_frees_every_table_once_publisher_last() {
    let (ledger, mut publisher, mut readers) = setup(2);
    for id in 1..=4 {
        publisher.publish(Table::new(id, &ledger));
    }
    readers[0].quiescent();
    drop(readers);
    assert_eq!(
        ledger.total(),
        0,
        "readers never free while the publisher lives"
    );
    drop(publisher);
    ledger.assert_dropped_once(&[0, 1, 2, 3, 4]);
}

#[test]
fn dropping_everything_frees_every_table_once_readers_last() {
    let (ledger, mut publisher, mut readers) = setup(2);
    for id in 1..=3 {
        publisher.publish(Table::new(id, &ledger));
    }
    readers[0].quiescent();
    readers[1].quiescent();
    publisher.publish(Table::new(4, &ledger));
    drop(publisher);
    // Tables 0..=2 were reclaimable and freed by the publisher's drop; table 3 (retired by
    // the last publication) and the current table 4 live on with the readers.
    ledger.assert_dropped_once(&[0, 1, 2]);
    drop(readers.pop());
    ledger.assert_dropped_once(&[0, 1, 2]);
    drop(readers);
    ledger.assert_dropped_once(&[0, 1, 2, 3, 4]);
}

#[test]
fn a_reader_outliving_the_publisher_keeps_its_table() {
    let (ledger, mut publisher, mut readers) = setup(1);
    let old = readers[0].read().id;
    assert_eq!(old, 0);
    publisher.publish(Table::new(1, &ledger));
    drop(publisher);
    // The reader has not passed: table 0 must still be alive, and so must the current one.
    assert_eq!(ledger.total(), 0);
    readers[0].quiescent();
    assert_eq!(readers[0].read().id, 1);
    assert!(readers[0].read().live);
    drop(readers);
    ledger.assert_dropped_once(&[0, 1]);
}

#[test]
fn dropping_with_nothing_published_frees_the_initial_table() {
    let (ledger, publisher, readers) = setup(1);
    drop(publisher);
    assert_eq!(ledger.total(), 0);
    drop(readers);
    ledger.assert_dropped_once(&[0]);
}

#[test]
fn slots_have_their_own_cache_line() {
    assert!(core::mem::align_of::<Slot>() >= 64);
    assert!(core::mem::size_of::<Slot>() >= 64);
    let (_ledger, publisher, _readers) = setup(2);
    let a = &publisher.shared.slots[0] as *const Slot as usize;
    let b = &publisher.shared.slots[1] as *const Slot as usize;
    assert!(b - a >= 64);
    assert_eq!(a % 64, 0);
}

#[test]
fn publisher_and_reader_are_send() {
    fn send<S: Send>() {}
    send::<Publisher<Table>>();
    send::<Reader<Table>>();
}

#[test]
fn debug_output_names_the_state() {
    let (ledger, mut publisher, readers) = setup(1);
    publisher.publish(Table::new(1, &ledger));
    assert_eq!(
        format!("{publisher:?}"),
        "Publisher { generation: 1, pending: 1, readers: 1 }"
    );
    assert_eq!(
        format!("{:?}", readers[0]),
        "Reader { index: 0, online: true, reported: 0 }"
    );
}
