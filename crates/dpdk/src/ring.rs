//! `rte_ring` of mbufs for lcore-to-lcore hand-off.
//!
//! [`create`] returns one [`RingProducer`] and one [`RingConsumer`]. With
//! [`RingMode::SingleProducerSingleConsumer`] there is exactly one of each (DPDK's SP/SC rule:
//! one enqueuing thread, one dequeuing thread); with [`RingMode::MultiProducerSingleConsumer`]
//! producer handles can be duplicated with [`RingProducer::try_clone`] (many lcores feed one
//! consumer, for example the control lcore); with [`RingMode::MultiProducerMultiConsumer`] both
//! sides can. Enqueue leaves the mbufs that did not fit in the burst, owned by the caller. When
//! the last handle goes, the mbufs still in the ring are freed and the ring is freed.
//!
//! Multi-producer and multi-consumer rings use DPDK's default MP/MC sync mode, which assumes
//! that an enqueuing or dequeuing thread is not preempted in the middle of the operation
//! (lcores pinned to their own CPU; a preempted thread delays, never corrupts, the others).
use std::cell::Cell;
use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::burst::Burst;
use crate::errno::{code, Errno};

/// Synchronisation mode of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingMode {
    /// One producer thread, one consumer thread (`RING_F_SP_ENQ | RING_F_SC_DEQ`).
    SingleProducerSingleConsumer,
    /// Any number of producers (cloneable [`RingProducer`]), one consumer (`RING_F_SC_DEQ`).
    MultiProducerSingleConsumer,
    /// Any number of producers and consumers (no flags).
    MultiProducerMultiConsumer,
}

impl RingMode {
    /// `rte_ring_create` flags besides `RING_F_EXACT_SZ`.
    fn flags(self) -> u32 {
        match self {
            Self::SingleProducerSingleConsumer => dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ,
            Self::MultiProducerSingleConsumer => dpdk_sys::RING_F_SC_DEQ,
            Self::MultiProducerMultiConsumer => 0,
        }
    }

    fn multi_producer(self) -> bool {
        matches!(
            self,
            Self::MultiProducerSingleConsumer | Self::MultiProducerMultiConsumer
        )
    }

    fn multi_consumer(self) -> bool {
        self == Self::MultiProducerMultiConsumer
    }
}

/// Why a ring could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// EAL is not running.
    #[error("EAL is not running")]
    EalNotRunning,
    /// The name contains a NUL byte or is too long.
    #[error("invalid ring name {0:?}")]
    InvalidName(String),
    /// `EEXIST`: a ring with this name exists.
    #[error("ring {0:?} already exists")]
    Exists(String),
    /// `ENOMEM` / `ENOSPC`: not enough memory.
    #[error("not enough memory for ring {0:?}")]
    NoMemory(String),
    /// `EINVAL`: invalid size.
    #[error("invalid size for ring {0:?}")]
    InvalidSize(String),
    /// Any other errno.
    #[error("rte_ring_create failed: {0}")]
    Unknown(Errno),
}

struct RingInner {
    ptr: NonNull<dpdk_sys::rte_ring>,
    mode: RingMode,
}

// SAFETY: rte_ring enqueue/dequeue are lock-free and may be called from any thread as long as
// the single-producer/single-consumer rules of the ring's flags hold, which the handle types
// enforce (`try_clone` only for the multi sides of `RingMode`, `&mut self`, `!Sync`); count
// reads are atomic loads. The ring is freed only in `Drop` of the
// last handle.
unsafe impl Send for RingInner {}
// SAFETY: see `Send`; every shared operation is MT-safe under the handle discipline.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        if !crate::eal::is_running() {
            return;
        }
        // Last handle: no producer or consumer is left, so draining here is single-threaded.
        let mut b: Burst<32> = Burst::new();
        loop {
            let (p, spare) = b.spare_ptr();
            // SAFETY: EAL runs; the ring is live; we are its only user; `p` has room for
            // `spare` pointers.
            let n = unsafe {
                dpdk_sys::dpdk_shim_ring_dequeue_burst(
                    self.ptr.as_ptr(),
                    p.cast::<*mut c_void>(),
                    u32::try_from(spare).unwrap_or(0),
                )
            };
            if n == 0 {
                break;
            }
            // SAFETY: the ring only ever holds owned, non-null mbuf pointers (enqueued by
            // `RingProducer::enqueue_burst` from a `Burst`); `n <= spare` were written.
            unsafe { b.set_filled(n as usize) };
            b.clear();
        }
        // SAFETY: EAL runs; the ring is empty and nobody else references it.
        unsafe { dpdk_sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}

/// Creates a ring named `name` holding up to `capacity` mbufs.
///
/// # Errors
///
/// [`RingError`] with the mapped errno.
pub fn create(
    name: &str,
    capacity: u32,
    mode: RingMode,
) -> Result<(RingProducer, RingConsumer), RingError> {
    if !crate::eal::is_running() {
        return Err(RingError::EalNotRunning);
    }
    let cname = CString::new(name).map_err(|_| RingError::InvalidName(name.to_owned()))?;
    let flags = dpdk_sys::RING_F_EXACT_SZ | mode.flags();
    // SAFETY: EAL runs (checked); `cname` is a valid C string that DPDK copies.
    let socket = unsafe { dpdk_sys::rte_socket_id() };
    // SAFETY: EAL runs; valid name; DPDK validates size and flags.
    let p = unsafe {
        dpdk_sys::rte_ring_create(
            cname.as_ptr(),
            capacity,
            i32::try_from(socket).unwrap_or(-1),
            flags,
        )
    };
    let Some(ptr) = NonNull::new(p) else {
        let e = Errno::last();
        let name = name.to_owned();
        return Err(match e.0 {
            code::EEXIST => RingError::Exists(name),
            code::ENOMEM | code::ENOSPC => RingError::NoMemory(name),
            code::EINVAL => RingError::InvalidSize(name),
            code::ENAMETOOLONG => RingError::InvalidName(name),
            _ => RingError::Unknown(e),
        });
    };
    let inner = Arc::new(RingInner { ptr, mode });
    Ok((
        RingProducer {
            inner: Arc::clone(&inner),
            _not_sync: PhantomData,
        },
        RingConsumer {
            inner,
            _not_sync: PhantomData,
        },
    ))
}

fn count(inner: &RingInner) -> u32 {
    if !crate::eal::is_running() {
        return 0;
    }
    // SAFETY: EAL runs; the ring is live while `inner` exists; the count is an atomic read.
    unsafe { dpdk_sys::dpdk_shim_ring_count(inner.ptr.as_ptr()) }
}

fn free_count(inner: &RingInner) -> u32 {
    if !crate::eal::is_running() {
        return 0;
    }
    // SAFETY: as in `count`.
    unsafe { dpdk_sys::dpdk_shim_ring_free_count(inner.ptr.as_ptr()) }
}

/// The enqueue side of a ring (`Send`, `!Sync`).
#[derive(Debug)]
pub struct RingProducer {
    inner: Arc<RingInner>,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for RingInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("mode", &self.mode).finish()
    }
}

impl RingProducer {
    /// Enqueues as many mbufs of `pkts` as fit; returns the count. Enqueued mbufs leave the
    /// burst; the **unsent tail stays in `pkts`**, owned by the caller. Never blocks.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&mut self, pkts: &mut Burst<N>) -> usize {
        if !crate::eal::is_running() {
            return 0;
        }
        let (ptr, len) = pkts.held_ptr();
        if len == 0 {
            return 0;
        }
        // SAFETY: EAL runs; the ring is live; for single-producer rings this handle is the only
        // producer (`try_clone` refuses, `&mut self`, `!Sync`), multi-producer rings allow
        // concurrent enqueues; `ptr` points to `len` owned mbuf pointers.
        let n = unsafe {
            dpdk_sys::dpdk_shim_ring_enqueue_burst(
                self.inner.ptr.as_ptr(),
                ptr.cast::<*mut c_void>().cast_const(),
                u32::try_from(len).unwrap_or(u32::MAX),
            )
        } as usize;
        let n = n.min(len);
        // SAFETY: the ring now holds the first `n` mbufs; it owns them until dequeued.
        unsafe { pkts.consume_front(n) };
        n
    }

    /// Another producer handle, for multi-producer rings only
    /// ([`RingMode::MultiProducerSingleConsumer`], [`RingMode::MultiProducerMultiConsumer`]).
    #[must_use]
    pub fn try_clone(&self) -> Option<Self> {
        self.inner.mode.multi_producer().then(|| Self {
            inner: Arc::clone(&self.inner),
            _not_sync: PhantomData,
        })
    }

    /// Mbufs in the ring.
    #[must_use]
    pub fn len(&self) -> u32 {
        count(&self.inner)
    }

    /// Whether the ring is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots in the ring.
    #[must_use]
    pub fn free_count(&self) -> u32 {
        free_count(&self.inner)
    }
}

/// The dequeue side of a ring (`Send`, `!Sync`).
#[derive(Debug)]
pub struct RingConsumer {
    inner: Arc<RingInner>,
    _not_sync: PhantomData<Cell<()>>,
}

impl RingConsumer {
    /// Dequeues up to the burst's free capacity, appending to `out`; returns the count.
    /// Never blocks. (Unlike [`RxQueue::rx_burst`](crate::RxQueue::rx_burst), a partly filled
    /// burst is fine: rings have no vector rounding.)
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, out: &mut Burst<N>) -> usize {
        if !crate::eal::is_running() {
            return 0;
        }
        let (ptr, spare) = out.spare_ptr();
        if spare == 0 {
            return 0;
        }
        // SAFETY: EAL runs; the ring is live; for single-consumer rings this handle is the only
        // consumer (`try_clone` refuses, `&mut self`, `!Sync`), multi-consumer rings allow
        // concurrent dequeues; `ptr` has room for `spare` pointers.
        let n = unsafe {
            dpdk_sys::dpdk_shim_ring_dequeue_burst(
                self.inner.ptr.as_ptr(),
                ptr.cast::<*mut c_void>(),
                u32::try_from(spare).unwrap_or(u32::MAX),
            )
        } as usize;
        let n = n.min(spare);
        // SAFETY: the ring holds only owned, non-null mbuf pointers (see `enqueue_burst`);
        // `n <= spare` were written and their ownership passes to `out`.
        unsafe { out.set_filled(n) };
        n
    }

    /// Another consumer handle, for multi-consumer rings only
    /// ([`RingMode::MultiProducerMultiConsumer`]).
    #[must_use]
    pub fn try_clone(&self) -> Option<Self> {
        self.inner.mode.multi_consumer().then(|| Self {
            inner: Arc::clone(&self.inner),
            _not_sync: PhantomData,
        })
    }

    /// Mbufs in the ring.
    #[must_use]
    pub fn len(&self) -> u32 {
        count(&self.inner)
    }

    /// Whether the ring is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_ring_flags_and_clone_rules() {
        use dpdk_sys::{RING_F_SC_DEQ, RING_F_SP_ENQ};
        let m = RingMode::SingleProducerSingleConsumer;
        assert_eq!(m.flags(), RING_F_SP_ENQ | RING_F_SC_DEQ);
        assert!(!m.multi_producer() && !m.multi_consumer());
        let m = RingMode::MultiProducerSingleConsumer;
        assert_eq!(m.flags(), RING_F_SC_DEQ);
        assert!(m.multi_producer() && !m.multi_consumer());
        let m = RingMode::MultiProducerMultiConsumer;
        assert_eq!(m.flags(), 0);
        assert!(m.multi_producer() && m.multi_consumer());
    }
}
