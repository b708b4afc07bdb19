//! RX and TX queues: the per-lcore fast path.
//!
//! DPDK rule: a given RX or TX queue of a port must be polled by one thread at a time. Queue
//! handles are created once per queue by [`Port::configure`](crate::Port::configure), are
//! `Send` (they may move to the lcore that polls them) and `!Sync` (a shared reference cannot
//! poll), and take `&mut self` for every burst call, so the rule holds by construction.
//!
//! Each queue handle shares the port's claim: the device is not stopped or closed while a queue
//! handle exists, even after the [`Port`](crate::Port) itself was dropped (see
//! [`crate::ethdev`], "Lifetime"). Dropping the last handle (possibly on a worker lcore) stops
//! and closes the device.
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::burst::Burst;
use crate::ethdev::{PortClaim, PortId};

/// One RX queue of a port, owned by one lcore.
#[derive(Debug)]
pub struct RxQueue {
    port: PortId,
    queue: u16,
    _claim: Arc<PortClaim>,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    pub(crate) fn new(port: PortId, queue: u16, claim: Arc<PortClaim>) -> Self {
        Self {
            port,
            queue,
            _claim: claim,
            _not_sync: PhantomData,
        }
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue index.
    #[must_use]
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the **empty** burst `out`, asking the driver for its full capacity `N`
    /// (`rte_eth_rx_burst(.., N)`, at most 65535); returns the number received. Never blocks.
    ///
    /// `out` must be empty: vector RX paths of real NIC drivers (ixgbe, i40e, ...) round the
    /// requested count down to a multiple of 4 and return nothing for fewer than 4, so topping
    /// up a partly filled burst can starve a queue. Drain or clear the burst first.
    ///
    /// If `out` is not empty, this returns 0 **without calling the driver** and leaves `out`
    /// unchanged (and panics in debug builds, where it is a bug to catch).
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, out: &mut Burst<N>) -> usize {
        debug_assert!(
            out.is_empty(),
            "RxQueue::rx_burst needs an empty burst (it holds {})",
            out.len()
        );
        if !out.is_empty() || !crate::eal::is_running() {
            return 0;
        }
        let (ptr, spare) = out.spare_ptr();
        let want = u16::try_from(spare).unwrap_or(u16::MAX);
        if want == 0 {
            return 0;
        }
        // SAFETY: EAL runs; the queue was set up by `Port::configure`, this handle is its only
        // poller (`&mut self`, `!Sync`, one handle per queue) and keeps the device from being
        // stopped or closed (shared claim); `ptr` has room for `want <= spare` pointers (the
        // spare slots of `out`).
        let n =
            unsafe { dpdk_sys::dpdk_shim_eth_rx_burst(self.port.as_u16(), self.queue, ptr, want) };
        let n = usize::from(n).min(spare);
        // SAFETY: the driver wrote `n <= spare` valid, non-null mbuf pointers whose ownership
        // passes to us, into the spare slots.
        unsafe { out.set_filled(n) };
        n
    }
}

/// Result of [`TxQueue::tx_burst_or_drop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxOutcome {
    /// Mbufs accepted by the driver.
    pub sent: usize,
    /// Mbufs the driver did not accept, freed by us.
    pub dropped: usize,
}

/// One TX queue of a port, owned by one lcore.
#[derive(Debug)]
pub struct TxQueue {
    port: PortId,
    queue: u16,
    _claim: Arc<PortClaim>,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    pub(crate) fn new(port: PortId, queue: u16, claim: Arc<PortClaim>) -> Self {
        Self {
            port,
            queue,
            _claim: claim,
            _not_sync: PhantomData,
        }
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue index.
    #[must_use]
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Offers all mbufs of `pkts` to the driver once (`rte_eth_tx_burst`); returns how many it
    /// took. Sent mbufs leave the burst (the driver frees them after transmission); the
    /// **unsent tail stays in `pkts`**, in order, owned by the caller, who may retry later or
    /// drop it. Never busy-waits.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, pkts: &mut Burst<N>) -> usize {
        if !crate::eal::is_running() {
            return 0;
        }
        let (ptr, len) = pkts.held_ptr();
        let want = u16::try_from(len).unwrap_or(u16::MAX);
        if want == 0 {
            return 0;
        }
        // SAFETY: EAL runs; the queue was set up by `Port::configure`, this handle is its only
        // user (`&mut self`, `!Sync`) and keeps the device from being stopped or closed (shared
        // claim); `ptr` points to `want <= len` owned, valid mbufs.
        let n =
            unsafe { dpdk_sys::dpdk_shim_eth_tx_burst(self.port.as_u16(), self.queue, ptr, want) };
        let n = usize::from(n).min(len);
        // SAFETY: the driver took ownership of the first `n <= len` mbufs.
        unsafe { pkts.consume_front(n) };
        n
    }

    /// Like [`TxQueue::tx_burst`], but **frees the unsent tail** itself; `pkts` is empty
    /// afterwards. Never busy-waits, never leaks.
    #[inline]
    pub fn tx_burst_or_drop<const N: usize>(&mut self, pkts: &mut Burst<N>) -> TxOutcome {
        let sent = self.tx_burst(pkts);
        let dropped = pkts.len();
        pkts.clear();
        TxOutcome { sent, dropped }
    }
}
