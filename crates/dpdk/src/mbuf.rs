//! Owned packet buffers.
//!
//! # Ownership rules
//!
//! (a) An [`Mbuf`] owns exactly one `rte_mbuf` and frees it on drop (`rte_pktmbuf_free`).
//!     It is `Send` (buffers move between lcores, and the mempool put on drop is MT-safe) but not
//!     `Sync` (its data is edited in place without synchronisation).
//!
//! (b) Handing buffers to C (`rte_eth_tx_burst`, `rte_ring_enqueue_burst`) moves them out of a
//!     [`Burst`](crate::Burst) as raw pointers; a single buffer leaves Rust through the explicit
//!     [`Mbuf::into_raw`] and comes back through [`Mbuf::from_raw`]. Nothing in this crate uses
//!     `mem::forget`, on a buffer or on a collection of them (workspace lint `mem_forget`).
//!
//! (c) Transmit functions never busy-wait and never leak:
//!     [`TxQueue::tx_burst`](crate::TxQueue::tx_burst) leaves the unsent tail in the burst, owned by the caller, and
//!     [`TxQueue::tx_burst_or_drop`](crate::TxQueue::tx_burst_or_drop) frees it; ring enqueue
//!     leaves the unsent tail in the burst.
//!
//! (d) No handle is ever made from a null pointer: bursts are `MaybeUninit` arrays with a length,
//!     filled by C for the first `n` slots only, and `from_raw` takes a `NonNull`.
//!
//! The data views cover the first segment only; the vdevs we use produce single-segment mbufs
//! ([`Mbuf::is_contiguous`] tells).
use std::ptr::NonNull;

use crate::errno::Errno;

/// Why an mbuf edit was refused (the mbuf is left unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MbufError {
    /// Not enough headroom for a prepend.
    #[error("prepend of {need} bytes needs headroom, only {have} available")]
    NoHeadroom {
        /// Bytes requested.
        need: u16,
        /// Headroom available.
        have: u16,
    },
    /// Not enough tailroom for an append.
    #[error("append of {need} bytes needs tailroom, only {have} available")]
    NoTailroom {
        /// Bytes requested.
        need: u16,
        /// Tailroom available.
        have: u16,
    },
    /// Trim of more bytes than the packet (or its last segment) holds.
    #[error("cannot trim {need} bytes from a packet of {have}")]
    TooShort {
        /// Bytes requested.
        need: u16,
        /// Bytes available.
        have: u32,
    },
    /// DPDK refused with an errno.
    #[error("mbuf operation failed: {0}")]
    Unknown(Errno),
}

/// An owned packet buffer (`struct rte_mbuf`). See the module docs for the ownership rules.
#[repr(transparent)]
pub struct Mbuf {
    ptr: NonNull<dpdk_sys::rte_mbuf>,
}

// SAFETY: an `Mbuf` is the only handle to its buffer (rule a), so moving it to another thread
// moves exclusive access; freeing from any thread is allowed because mempool put is MT-safe.
unsafe impl Send for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("port", &self.port())
            .finish()
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid, allocated `rte_mbuf` (reference count 1) that nobody else
    /// uses or frees afterwards, as returned by [`Mbuf::into_raw`] or by a DPDK allocation or
    /// receive function.
    #[must_use]
    #[inline]
    pub unsafe fn from_raw(ptr: NonNull<dpdk_sys::rte_mbuf>) -> Self {
        Self { ptr }
    }

    /// Gives up ownership; the caller must free the mbuf or pass it on (for example by
    /// [`Mbuf::from_raw`]).
    #[must_use]
    #[inline]
    pub fn into_raw(self) -> NonNull<dpdk_sys::rte_mbuf> {
        let me = std::mem::ManuallyDrop::new(self);
        me.ptr
    }

    /// The raw pointer, still owned by `self`.
    #[must_use]
    #[inline]
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mbuf {
        self.ptr.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: `ptr` points to a valid mbuf owned by `self` (constructor contract of
        // `from_raw`); the shared borrow of `self` forbids concurrent mutation through `self`.
        unsafe { self.ptr.as_ref() }
    }

    /// Bytes of data in the first segment.
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Whether the first segment holds no data.
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw().data_len == 0
    }

    /// Total packet length over all segments.
    #[must_use]
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Whether the packet is in one segment.
    #[must_use]
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// Input port recorded by the driver on receive.
    #[must_use]
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Data of the first segment.
    #[must_use]
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: for a valid mbuf, `buf_addr + data_off .. + data_len` lies inside the buffer
        // (`data_off + data_len <= buf_len`, maintained by DPDK and by the checked edits below);
        // the bytes are initialised (written by the driver or by us) and borrowed via `&self`.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// Mutable data of the first segment.
    #[must_use]
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (addr, off, len) = {
            let m = self.raw();
            (m.buf_addr.cast::<u8>(), m.data_off, m.data_len)
        };
        // SAFETY: as in `data`; `&mut self` gives exclusive access (an `Mbuf` is the only handle
        // to its buffer, rule a, and mbufs from our pools are not shared with refcnt > 1).
        unsafe { std::slice::from_raw_parts_mut(addr.add(usize::from(off)), usize::from(len)) }
    }

    /// Free bytes in front of the data.
    #[must_use]
    #[inline]
    pub fn headroom(&self) -> u16 {
        self.raw().data_off
    }

    /// Free bytes after the data in the last segment.
    #[must_use]
    #[inline]
    pub fn tailroom(&self) -> u16 {
        // SAFETY: `ptr` is a valid mbuf (constructor contract); the function only reads it.
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_tailroom(self.ptr.as_ptr()) }
    }

    /// Grows the packet at the front by `n` bytes and returns the first `n` bytes (their
    /// content is whatever was in the headroom).
    ///
    /// # Errors
    ///
    /// [`MbufError::NoHeadroom`]; the mbuf is unchanged.
    #[inline]
    pub fn prepend(&mut self, n: u16) -> Result<&mut [u8], MbufError> {
        let have = self.headroom();
        if n > have {
            return Err(MbufError::NoHeadroom { need: n, have });
        }
        // SAFETY: valid mbuf owned exclusively through `&mut self`; `n <= headroom` (checked), so
        // `rte_pktmbuf_prepend` succeeds and returns the new data start.
        let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_prepend(self.ptr.as_ptr(), n) };
        if p.is_null() {
            return Err(MbufError::NoHeadroom { need: n, have });
        }
        Ok(&mut self.data_mut()[..usize::from(n)])
    }

    /// Removes `n` bytes from the front (`rte_pktmbuf_adj`).
    ///
    /// # Errors
    ///
    /// [`MbufError::TooShort`] if the first segment holds fewer than `n` bytes.
    #[inline]
    pub fn trim_front(&mut self, n: u16) -> Result<(), MbufError> {
        if usize::from(n) > self.len() {
            return Err(MbufError::TooShort {
                need: n,
                have: u32::from(self.raw().data_len),
            });
        }
        // SAFETY: valid mbuf owned exclusively through `&mut self`; `n <= data_len` (checked).
        let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_adj(self.ptr.as_ptr(), n) };
        if p.is_null() {
            return Err(MbufError::TooShort {
                need: n,
                have: self.pkt_len(),
            });
        }
        Ok(())
    }

    /// Grows the packet at the end by `n` bytes (`rte_pktmbuf_append`) and returns them (their
    /// content is unspecified).
    ///
    /// # Errors
    ///
    /// [`MbufError::NoTailroom`]; the mbuf is unchanged.
    #[inline]
    pub fn append(&mut self, n: u16) -> Result<&mut [u8], MbufError> {
        let have = self.tailroom();
        if n > have || !self.is_contiguous() {
            return Err(MbufError::NoTailroom { need: n, have });
        }
        // SAFETY: valid single-segment mbuf owned exclusively through `&mut self`;
        // `n <= tailroom` (checked), so the new bytes lie inside the buffer.
        let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_append(self.ptr.as_ptr(), n) };
        if p.is_null() {
            return Err(MbufError::NoTailroom { need: n, have });
        }
        let len = self.len();
        Ok(&mut self.data_mut()[len - usize::from(n)..])
    }

    /// Removes `n` bytes from the end (`rte_pktmbuf_trim`).
    ///
    /// # Errors
    ///
    /// [`MbufError::TooShort`] if the last segment holds fewer than `n` bytes.
    #[inline]
    pub fn trim_back(&mut self, n: u16) -> Result<(), MbufError> {
        // SAFETY: valid mbuf owned exclusively through `&mut self`; `rte_pktmbuf_trim` checks
        // the length itself and leaves the mbuf unchanged on failure.
        let rc = unsafe { dpdk_sys::dpdk_shim_pktmbuf_trim(self.ptr.as_ptr(), n) };
        if rc != 0 {
            return Err(MbufError::TooShort {
                need: n,
                have: self.pkt_len(),
            });
        }
        Ok(())
    }
}

impl AsRef<[u8]> for Mbuf {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl AsMut<[u8]> for Mbuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        if !crate::eal::is_running() {
            return; // EAL memory is gone: leak rather than touch it.
        }
        // SAFETY: `ptr` is a valid mbuf owned by `self` (rule a) and dropped exactly once; EAL
        // runs (checked above), so its pool still exists (pools holding live mbufs are never
        // freed, see `Mempool`).
        unsafe { dpdk_sys::dpdk_shim_pktmbuf_free(self.ptr.as_ptr()) };
    }
}
