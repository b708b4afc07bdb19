//! The one publish/read cell for the data plane's tables, in the QSBR style of DPDK's
//! `lib/rcu/rte_rcu_qsbr.h` (quiescent-state-based reclamation).
//!
//! # What it is for
//!
//! The control thread builds a whole new table (a `RedirectTable`, say) off-line and
//! [`Publisher::publish`]es it.
//! Each lcore owns one [`Reader`], calls [`Reader::read`] for every burst and reports a
//! quiescent state with [`Reader::quiescent`] at the end of every iteration of its loop.
//! The replaced table is parked on the publisher's retire list and freed by
//! [`Publisher::reclaim`] on the control thread once every online reader has reported a
//! quiescent state after the publication.
//!
//! # What it must never do
//!
//! * The read side never locks, never allocates, never frees a table and never does an
//!   atomic read-modify-write: [`Reader::read`] is one `Acquire` load of an `AtomicPtr`,
//!   [`Reader::quiescent`] one `Acquire` load of the generation and at most one `Release`
//!   store into the reader's own cache line.
//! * The publisher never waits inside [`Publisher::publish`] or [`Publisher::reclaim`];
//!   only [`Publisher::synchronize`] waits, with a bounded back-off and a timeout.
//! * A table is never freed while a reader may still hold a reference to it, and is freed
//!   exactly once.
//!
//! # Contract
//!
//! * Tables are immutable once published (`read` hands out `&T` only).
//! * A reference returned by [`Reader::read`] borrows the reader, so it cannot be kept
//!   across [`Reader::quiescent`], [`Reader::offline`] or the reader's drop, which all take
//!   `&mut self`: the borrow checker enforces the QSBR rule "no references across a
//!   quiescent state".
//! * An offline reader ([`Reader::offline`], or a dropped reader) does not hold back
//!   reclamation; it must not read until it is [`Reader::online`] again (`read` panics).
//! * Frees happen in [`Publisher::reclaim`]/[`Publisher::synchronize`] on the control thread.
//!   The only exception is teardown: the state shared by the publisher and the readers is
//!   reference counted, and whichever of them is dropped last frees the current table and
//!   anything still retired.
//!   Drop the readers (or take them offline) before the publisher to keep even that on the
//!   control thread.
//! * A reader that never reports a quiescent state (a stuck lcore) makes the retire list
//!   grow; [`Publisher::pending`] shows it and [`Publisher::synchronize`] times out.
//!
//! # Memory ordering
//!
//! Generations count publications: the initial table belongs to generation 0 and each
//! [`Publisher::publish`] adds one.
//! Each reader has a slot holding the generation it last reported, or `OFFLINE`
//! (`u64::MAX`).
//! A table replaced by the publication that made generation `g` is retired with tag `g`
//! and may be freed once every slot holds a value `>= g` (offline slots hold the maximum,
//! so they never hold anything back).
//!
//! 1. `publish` swaps the pointer with `Release` (the new table's contents become visible
//!    to a reader that loads the pointer with `Acquire`), *then* stores the new generation
//!    with `Release`.
//! 2. `quiescent` loads the generation with `Acquire`: if it sees `g`, it synchronises with
//!    the publication of `g`, so every later pointer load of this reader returns the table
//!    of generation `g` or a newer one, never one retired with a tag `<= g`.
//!    It then stores `g` into its slot with `Release`: all earlier reads of older tables
//!    happen-before that store.
//! 3. `reclaim` loads every slot with `Acquire`; seeing `g` means the reader's reads of
//!    every table retired with a tag `<= g` happen-before the free.
//!    A plain store in `quiescent` is therefore enough: a later pointer load cannot return
//!    a table retired with a tag `<= g` (point 2), so it needs no store-load fence.
//! 4. Going online is the one store-load case: the publisher may have scanned the slot
//!    while it still said `OFFLINE`.
//!    `online` stores the slot and then issues a `SeqCst` fence before the reader's next
//!    pointer load; `reclaim` issues a `SeqCst` fence after the pointer swaps it is about to
//!    account for and before it loads the slots.
//!    Of the two fences, whichever comes first in the single total order `S` wins: either
//!    `reclaim` sees the online slot (and waits), or the reader's load sees the new pointer
//!    (and cannot hold the retired table).
//!
//! The same design is model-checked with loom (`crates/rcu/tests/loom.rs`, run by
//! `crates/rcu/loom.sh`).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! // One table, two lcores.
//! let (mut publisher, mut readers) = wccp_rcu::cell(Box::new(vec![0u32; 256]), 2);
//! let mut lcore1 = readers.pop().unwrap();
//! let mut lcore0 = readers.pop().unwrap();
//!
//! // The control thread publishes a new table; the old one is parked, not freed.
//! assert_eq!(publisher.publish(Box::new(vec![1u32; 256])), 1);
//! assert_eq!(publisher.pending(), 1);
//!
//! // Each lcore: read the table for a burst, then report a quiescent state.
//! assert_eq!(lcore0.read()[17], 1);
//! lcore0.quiescent();
//! // lcore1 has not passed yet, so nothing can be freed.
//! assert_eq!(publisher.reclaim(), 0);
//! lcore1.quiescent();
//! assert_eq!(publisher.reclaim(), 1);
//!
//! // At shutdown: readers go away first, then everything is reclaimed.
//! drop((lcore0, lcore1));
//! assert!(publisher.synchronize(Duration::from_secs(1)));
//! assert_eq!(publisher.pending(), 0);
//! ```

#![deny(missing_docs)]

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use sync::atomic::{fence, AtomicPtr, AtomicU64, Ordering};
use sync::{Arc, Mutex};

/// The synchronisation primitives: std's in a normal build, loom's under `--cfg loom`.
mod sync {
    #[cfg(loom)]
    pub(crate) use loom::sync::{atomic, Arc, Mutex};
    #[cfg(not(loom))]
    pub(crate) use std::sync::{atomic, Arc, Mutex};

    /// One step of a busy wait.
    #[cfg(loom)]
    pub(crate) fn spin_loop() {
        loom::hint::spin_loop();
    }
    /// One step of a busy wait.
    #[cfg(not(loom))]
    pub(crate) fn spin_loop() {
        std::hint::spin_loop();
    }

    /// Gives the processor to another thread.
    #[cfg(loom)]
    pub(crate) fn yield_now() {
        loom::thread::yield_now();
    }
    /// Gives the processor to another thread.
    #[cfg(not(loom))]
    pub(crate) fn yield_now() {
        std::thread::yield_now();
    }

    /// Sleeps; under loom, where time does not exist, yields instead.
    #[cfg(loom)]
    pub(crate) fn sleep(_: std::time::Duration) {
        loom::thread::yield_now();
    }
    /// Sleeps; under loom, where time does not exist, yields instead.
    #[cfg(not(loom))]
    pub(crate) fn sleep(d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

/// Slot value of a reader that is offline (or dropped): larger than any generation, so it
/// never lowers the minimum that [`Publisher::reclaim`] computes.
const OFFLINE: u64 = u64::MAX;

/// One reader's quiescent-state report, alone in its cache line.
///
/// 128 bytes rather than 64: x86's adjacent-line prefetcher and several Arm cores move
/// lines in pairs (crossbeam's `CachePadded` makes the same choice), and the slots are
/// written by different lcores.
#[repr(align(128))]
struct Slot {
    /// The generation this reader last reported, or [`OFFLINE`].
    seen: AtomicU64,
}

/// A table taken out of the cell by [`Publisher::publish`], waiting for its grace period.
///
/// It is a raw pointer, not a `Box`, on purpose: readers may still hold `&T` into it, and a
/// `Box` would claim unique access while they do.
/// Dropping a `Retired` leaks the table (the safe failure); only [`Retired::free`] frees.
struct Retired<T> {
    /// The generation whose publication replaced this table: it may be freed once every
    /// online reader has reported at least this generation.
    tag: u64,
    /// The table, from `Box::into_raw`.
    table: NonNull<T>,
    /// Owns a `T` like a `Box<T>` does (auto traits, drop check).
    _owns: PhantomData<Box<T>>,
}

// SAFETY: a `Retired<T>` owns its table exactly as a `Box<T>` would (it is the only owner
// and frees it at most once), so moving it to another thread moves a `T`: sound when
// `T: Send`, the same rule as for `Box<T>`.
unsafe impl<T: Send> Send for Retired<T> {}
// SAFETY: `&Retired<T>` gives no access to the table at all (only `free`, which takes the
// value), so sharing it is sound whenever sharing a `Box<T>` is, i.e. when `T: Sync`.
unsafe impl<T: Sync> Sync for Retired<T> {}

impl<T> Retired<T> {
    /// Frees the table.
    ///
    /// # Safety
    ///
    /// Its grace period must be over: every reader that could have loaded this pointer has
    /// since reported a quiescent state `>= self.tag` or gone offline, and that report
    /// happens-before this call (it was observed by an `Acquire` load, or the reader is
    /// gone and the shared state's reference count ordered its drop before this one).
    unsafe fn free(self) {
        // SAFETY: `table` came from `Box::into_raw` (`cell` or `publish`), was removed
        // from the cell by `publish`'s swap, and is owned only by this `Retired`, which is
        // consumed here, so it is freed once; the caller guarantees no reader still uses it.
        drop(unsafe { Box::from_raw(self.table.as_ptr()) });
    }
}

/// The state shared by the publisher and all readers.
struct Shared<T> {
    /// The current table, from `Box::into_raw`; never null.
    current: AtomicPtr<T>,
    /// The generation of the current table (number of publications so far).
    generation: AtomicU64,
    /// One slot per reader, indexed by `Reader::index`.
    slots: Box<[Slot]>,
    /// Tables still retired when the publisher was dropped; freed with the shared state.
    /// Locked only by `Publisher::drop`; readers never touch it.
    orphans: Mutex<Vec<Retired<T>>>,
    /// The cell owns `T`s: `Shared<T>` is `Send` only if `T: Send` and `Sync` only if
    /// `T: Sync` (an `AtomicPtr<T>` alone would be both for any `T`).
    _owns: PhantomData<T>,
}

impl<T> Shared<T> {
    /// The oldest generation that some online reader may still be using, i.e. the minimum
    /// over all slots ([`OFFLINE`] if every reader is offline).
    ///
    /// The caller must have issued a `SeqCst` fence after its last pointer swap (see the
    /// crate docs, point 4).
    fn horizon(&self) -> u64 {
        self.slots
            .iter()
            // Acquire: pairs with the reader's `Release` store in `quiescent`/`offline`, so
            // its reads of the tables it stopped using happen-before our free.
            .map(|slot| slot.seen.load(Ordering::Acquire))
            .min()
            .unwrap_or(OFFLINE)
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // We are the last owner: the publisher and every reader are gone, and `Arc`'s
        // release/acquire reference counting ordered their accesses before this point, so a
        // relaxed load sees the last pointer stored.
        let current = self.current.load(Ordering::Relaxed);
        // SAFETY: `current` came from `Box::into_raw` (`cell` or `publish`) and is still in
        // the cell, so nothing else owns it; no reader exists any more to use it.
        drop(unsafe { Box::from_raw(current) });
        let orphans = self
            .orphans
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for retired in orphans.drain(..) {
            // SAFETY: no reader exists any more (this is the last reference to the shared
            // state), so every grace period is over.
            unsafe { retired.free() };
        }
    }
}

/// Creates a cell holding `initial` (generation 0) with `readers` readers, all online.
///
/// Give one [`Reader`] to each lcore and keep the [`Publisher`] on the control thread.
///
/// # Example
///
/// ```
/// let (publisher, readers) = wccp_rcu::cell(Box::new([7u8; 4]), 3);
/// assert_eq!(readers.len(), 3);
/// assert_eq!(publisher.generation(), 0);
/// assert!(readers.iter().all(|r| r.read() == &[7u8; 4]));
/// ```
pub fn cell<T: Send + Sync + 'static>(
    initial: Box<T>,
    readers: usize,
) -> (Publisher<T>, Vec<Reader<T>>) {
    let shared = Arc::new(Shared {
        current: AtomicPtr::new(Box::into_raw(initial)),
        generation: AtomicU64::new(0),
        // Every reader starts online at generation 0; the readers are handed to their
        // threads later, which orders these stores before any use.
        slots: (0..readers)
            .map(|_| Slot {
                seen: AtomicU64::new(0),
            })
            .collect(),
        orphans: Mutex::new(Vec::new()),
        _owns: PhantomData,
    });
    let readers = (0..readers)
        .map(|index| Reader {
            shared: Arc::clone(&shared),
            index,
            online: true,
            reported: 0,
            _not_sync: PhantomData,
        })
        .collect();
    let publisher = Publisher {
        shared,
        generation: 0,
        retired: Vec::new(),
    };
    (publisher, readers)
}

/// The control side of a cell: publishes new tables and frees the replaced ones.
///
/// There is exactly one per cell (it is not `Clone`), which is what lets it publish and
/// reclaim without any atomic read-modify-write.
/// It is `Send` (when `T: Send + Sync`), so it may be created on one thread and used on the
/// control thread.
///
/// Dropping it frees whatever is already reclaimable; tables that readers may still use
/// stay with the shared state and are freed when the last reader is dropped.
///
/// ```compile_fail,E0599
/// let (publisher, _readers) = wccp_rcu::cell(Box::new(0u8), 1);
/// let _second = publisher.clone(); // a cell has one publisher
/// ```
pub struct Publisher<T> {
    /// The state shared with the readers.
    shared: Arc<Shared<T>>,
    /// The generation of the current table (the publisher is the only writer).
    generation: u64,
    /// Replaced tables in publication order, so their tags are increasing.
    retired: Vec<Retired<T>>,
}

impl<T> Publisher<T> {
    /// Makes `new` the current table and retires the previous one; returns the new
    /// generation.
    ///
    /// Readers see `new` from their next [`Reader::read`] on (at the latest after their next
    /// [`Reader::quiescent`]).
    /// The previous table is not freed here: call [`Publisher::reclaim`] later (for
    /// example on every control-loop tick) or [`Publisher::synchronize`].
    /// Never blocks; allocates only to grow the retire list.
    pub fn publish(&mut self, new: Box<T>) -> u64 {
        let new = Box::into_raw(new);
        // Release: the construction of `*new` happens-before any reader's `Acquire` load
        // that returns `new`. The old pointer was stored by this publisher, so no Acquire
        // is needed to read it back.
        let old = self.shared.current.swap(new, Ordering::Release);
        self.generation += 1;
        debug_assert!(self.generation < OFFLINE, "generation counter exhausted");
        // Release, and after the swap in program order: a reader whose `Acquire` load in
        // `quiescent` sees this generation also sees the swap (or a later one), so after
        // reporting it can no longer load `old`.
        self.shared
            .generation
            .store(self.generation, Ordering::Release);
        // `old` came from `Box::into_raw`, so it is not null; the fallback is unreachable.
        if let Some(table) = NonNull::new(old) {
            self.retired.push(Retired {
                tag: self.generation,
                table,
                _owns: PhantomData,
            });
        }
        self.generation
    }

    /// Frees every retired table whose grace period is over, i.e. that every online reader
    /// has passed (reported a quiescent state at or after the publication that replaced it);
    /// returns how many were freed.
    ///
    /// Never blocks: tables some reader may still use stay retired for a later call.
    /// This is the only place (with [`Publisher::synchronize`] and teardown) where tables
    /// are freed.
    pub fn reclaim(&mut self) -> usize {
        if self.retired.is_empty() {
            return 0;
        }
        // SeqCst fence between our pointer swaps (all earlier in program order) and the
        // slot loads below; it pairs with the fence in `Reader::online` (crate docs,
        // point 4): a reader coming online either is seen by the loads below, or sees the
        // new pointer and cannot hold any table retired so far.
        fence(Ordering::SeqCst);
        let horizon = self.shared.horizon();
        // Tags increase along the list, so the reclaimable tables are a prefix.
        let ready = self.retired.partition_point(|r| r.tag <= horizon);
        for retired in self.retired.drain(..ready) {
            // SAFETY: `retired.tag <= horizon`: every online reader's slot, loaded with
            // Acquire after the SeqCst fence above, holds a generation `>= tag`, so its
            // reads of this table happen-before this free and it cannot load the pointer
            // again (crate docs, points 2-3); every offline reader is covered by point 4.
            unsafe { retired.free() };
        }
        ready
    }

    /// Waits until every retired table can be freed, frees them, and returns `true`; returns
    /// `false` if some are still retired after `timeout` (a reader did not pass).
    ///
    /// For shutdown and tests, never for the control loop: it polls [`Publisher::reclaim`]
    /// with a bounded back-off (spin, then yield, then sleeps of at most 1 ms), so it needs
    /// every online reader to report a quiescent state or go offline meanwhile.
    pub fn synchronize(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut backoff = Backoff::default();
        loop {
            self.reclaim();
            if self.retired.is_empty() {
                return true;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return false;
            }
            backoff.snooze();
        }
    }

    /// The generation of the current table: 0 for the initial one, plus one per
    /// [`Publisher::publish`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many retired tables are not freed yet.
    pub fn pending(&self) -> usize {
        self.retired.len()
    }

    /// The current table (the one most recently published).
    pub fn current(&self) -> &T {
        // Relaxed: the publisher is the only writer of the pointer, so it reads its own
        // latest store (a move to another thread is ordered by that move).
        let current = self.shared.current.load(Ordering::Relaxed);
        // SAFETY: the pointer came from `Box::into_raw`, so it is non-null and aligned; it
        // is the current table, which only `publish` (taking `&mut self`, so not while this
        // borrow lives) can retire, and only `reclaim` frees retired tables.
        unsafe { &*current }
    }
}

impl<T> Drop for Publisher<T> {
    fn drop(&mut self) {
        // Free what is already safe to free here, on the control thread.
        self.reclaim();
        if !self.retired.is_empty() {
            // The rest may still be in use: hand them to the shared state, which frees them
            // when the last reader is gone.
            let mut orphans = self
                .shared
                .orphans
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            orphans.append(&mut self.retired);
        }
    }
}

impl<T> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("generation", &self.generation)
            .field("pending", &self.retired.len())
            .field("readers", &self.shared.slots.len())
            .finish()
    }
}

/// The read side of a cell, one per lcore.
///
/// `Send` (when `T: Send + Sync`), so it can be handed to its lcore, but not `Sync`: one
/// thread owns it and is the only one reporting in its slot.
///
/// A reference from [`Reader::read`] borrows the reader, so it cannot live across a
/// quiescent state:
///
/// ```compile_fail,E0502
/// let (_publisher, mut readers) = wccp_rcu::cell(Box::new(1u32), 1);
/// let reader = &mut readers[0];
/// let table = reader.read();
/// reader.quiescent(); // error: `table` is still borrowed
/// assert_eq!(*table, 1);
/// ```
///
/// ```compile_fail,E0277
/// fn shared_between_threads<S: Sync>() {}
/// shared_between_threads::<wccp_rcu::Reader<u32>>(); // a reader belongs to one lcore
/// ```
pub struct Reader<T> {
    /// The state shared with the publisher and the other readers.
    shared: Arc<Shared<T>>,
    /// This reader's slot in `shared.slots`.
    index: usize,
    /// Whether the slot holds a generation (online) or [`OFFLINE`].
    online: bool,
    /// The value this reader last stored in its slot while online.
    reported: u64,
    /// `Cell` is `Send` but not `Sync`, and so is a reader.
    _not_sync: PhantomData<Cell<()>>,
}

impl<T> Reader<T> {
    /// The current table, valid until this reader's next [`Reader::quiescent`] (or
    /// [`Reader::offline`], or its drop), which the borrow on `self` enforces.
    ///
    /// One `Acquire` load; no read-modify-write, no lock, no allocation.
    ///
    /// # Panics
    ///
    /// If the reader is offline: an offline reader does not hold back reclamation, so it
    /// must not read.
    #[inline]
    pub fn read(&self) -> &T {
        assert!(self.online, "wccp_rcu::Reader::read on an offline reader");
        // Acquire: pairs with the Release swap in `publish`, so the table's contents are
        // visible.
        let current = self.shared.current.load(Ordering::Acquire);
        // SAFETY: the pointer came from `Box::into_raw`, so it is non-null and aligned. The
        // table it points to stays allocated for as long as the returned borrow of `self`:
        // it is either current (freed only when the shared state, kept alive by our `Arc`,
        // is dropped) or retired with a tag greater than the generation in this online
        // reader's slot (crate docs, points 2 and 4), and `reclaim` frees it only after this
        // slot holds at least that tag, which only `quiescent`/`offline`/drop can store, all
        // of which need `&mut self` and so wait for the borrow to end.
        unsafe { &*current }
    }

    /// Reports a quiescent state: this reader holds no reference into any table.
    ///
    /// Call it once per loop iteration (after each burst).
    /// One `Acquire` load of the generation and, if it changed, one `Release` store into
    /// this reader's own slot; no read-modify-write, no fence.
    /// Does nothing while the reader is offline.
    #[inline]
    pub fn quiescent(&mut self) {
        if !self.online {
            return;
        }
        // Acquire: pairs with the Release store in `publish`, so our later `read`s return
        // the table of this generation or a newer one (crate docs, point 2).
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.reported {
            // Release: our reads of older tables happen-before the publisher's Acquire
            // load of this value, and hence before it frees them (crate docs, point 3).
            self.slot().store(generation, Ordering::Release);
            self.reported = generation;
        }
    }

    /// Takes this reader offline (for example before an lcore sleeps or stops polling): it
    /// no longer holds back reclamation and must not [`Reader::read`] until
    /// [`Reader::online`].
    pub fn offline(&mut self) {
        if self.online {
            // Release: our reads of every table happen-before the publisher's Acquire load
            // of `OFFLINE`, and hence before it frees them.
            self.slot().store(OFFLINE, Ordering::Release);
            self.online = false;
        }
    }

    /// Brings this reader back online at the current generation.
    pub fn online(&mut self) {
        if self.online {
            return;
        }
        // Acquire, as in `quiescent`: later reads return this generation's table or newer.
        let generation = self.shared.generation.load(Ordering::Acquire);
        self.slot().store(generation, Ordering::Release);
        // SeqCst fence between the slot store above and the pointer load of our next
        // `read`; pairs with the fence in `Publisher::reclaim` (crate docs, point 4).
        // Without it the publisher could still see `OFFLINE` and free a table that our
        // next `read` returns.
        fence(Ordering::SeqCst);
        self.reported = generation;
        self.online = true;
    }

    /// Whether this reader is online (holding back reclamation of what it may use).
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// This reader's slot.
    fn slot(&self) -> &AtomicU64 {
        &self.shared.slots[self.index].seen
    }
}

impl<T> Drop for Reader<T> {
    /// Takes the reader offline for good; if it is the last user of the cell (the publisher
    /// is already gone), frees the tables.
    fn drop(&mut self) {
        self.offline();
    }
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("index", &self.index)
            .field("online", &self.online)
            .field("reported", &self.reported)
            .finish()
    }
}

/// Exponential back-off for [`Publisher::synchronize`]: spin, then yield, then sleep.
#[derive(Default)]
struct Backoff {
    /// How many times `snooze` has been called.
    step: u32,
}

impl Backoff {
    /// Spins up to this step (2^step spins each time).
    const SPIN_LIMIT: u32 = 6;
    /// Yields up to this step, then sleeps.
    const YIELD_LIMIT: u32 = 10;
    /// The longest sleep.
    const MAX_SLEEP: Duration = Duration::from_millis(1);

    /// Waits a little longer than last time.
    fn snooze(&mut self) {
        // Under loom every spin is a scheduling point; one yield per round keeps the model
        // small and still lets the readers run.
        if cfg!(loom) {
            sync::yield_now();
        } else if self.step <= Self::SPIN_LIMIT {
            for _ in 0..1u32 << self.step {
                sync::spin_loop();
            }
        } else if self.step <= Self::YIELD_LIMIT {
            sync::yield_now();
        } else {
            let doublings = (self.step - Self::YIELD_LIMIT).min(5);
            let sleep = Duration::from_micros(32u64 << doublings).min(Self::MAX_SLEEP);
            sync::sleep(sleep);
        }
        self.step = self.step.saturating_add(1);
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
