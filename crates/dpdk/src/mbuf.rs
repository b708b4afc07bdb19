//! Owned packet buffers.
//!
//! # Ownership rules
//!
//! (a) An [`Mbuf`] owns exactly one `rte_mbuf` and frees it on drop (`rte_pktmbuf_free`).
//!     It is `Send` (buffers move between lcores, and the mempool put on drop is MT-safe) but not
//!     `Sync` (its data is edited in place without synchronisation).
//!
//! (b) Handing buffers to C (`rte_eth_tx_burst`, `rte_ring_enqueue_burst`) moves them out of a
//!     [`Burst`] as raw pointers; a single buffer leaves Rust through the explicit
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
//! (e) Edits ([`Mbuf::prepend`], [`Mbuf::trim_front`], [`Mbuf::append`], [`Mbuf::trim_back`])
//!     and views ([`Mbuf::data`], [`Mbuf::len`], [`Mbuf::headroom`], [`Mbuf::tailroom`]) are
//!     inline Rust over the `rte_mbuf` fields, with exactly the semantics of DPDK's
//!     `rte_pktmbuf_prepend`/`adj`/`append`/`trim`/`headroom`/`tailroom` (both `data_len` and
//!     `pkt_len` are updated; a refused edit leaves the mbuf unchanged): no FFI call per packet.
//!     The data views cover the first segment only. Edits at the front work on chains as in
//!     DPDK; edits at the end ([`Mbuf::append`], [`Mbuf::trim_back`]) refuse chains with
//!     [`MbufError::Segmented`], because DPDK would change the last segment, which the
//!     first-segment view does not show. The vdevs we use produce single-segment mbufs.
//!
//! (f) A buffer is safe to rewrite in place only when [`Mbuf::is_editable`] (one segment,
//!     direct, reference count 1). Receive paths and our pools always produce such mbufs; a
//!     shared buffer (indirect or external mbufs, `refcnt > 1`) must not be edited while another
//!     holder may read it. Rewritten packets should get [`Mbuf::reset_offloads`] so that stale
//!     RX flags and packet types do not reach the TX path.
//!
//! Freeing many mbufs at once goes through [`free_bulk`] (`rte_pktmbuf_free_bulk`), which is
//! what [`Burst`] uses when it is cleared or dropped.
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::burst::Burst;
use crate::errno::Errno;

/// Bytes reserved in front of the data of a freshly allocated mbuf (`RTE_PKTMBUF_HEADROOM`,
/// 128 in Debian's DPDK 22.11).
pub const HEADROOM: u16 = {
    assert!(dpdk_sys::RTE_PKTMBUF_HEADROOM <= u16::MAX as u32);
    dpdk_sys::RTE_PKTMBUF_HEADROOM as u16
};

/// `ol_flags` bits that say the data buffer is not the mbuf's own (`RTE_MBUF_F_INDIRECT`:
/// attached to another mbuf; `RTE_MBUF_F_EXTERNAL`: external buffer). DPDK's free path needs
/// them to detach, so [`Mbuf::reset_offloads`] keeps them.
const ATTACHED: u64 = dpdk_sys::RTE_MBUF_F_INDIRECT | dpdk_sys::RTE_MBUF_F_EXTERNAL;

/// Frees every mbuf of `burst` with one `rte_pktmbuf_free_bulk` call; `burst` is empty
/// afterwards. Same as [`Burst::free_all`].
#[inline]
pub fn free_bulk<const N: usize>(burst: &mut Burst<N>) {
    burst.free_all();
}

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
    /// The edit works on the end of the packet, which is in another segment than the data
    /// view (a chain of `nb_segs` segments).
    #[error("cannot edit the end of a packet of {nb_segs} segments")]
    Segmented {
        /// Number of segments.
        nb_segs: u16,
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
            .field("pkt_len", &self.pkt_len())
            .field("headroom", &self.headroom())
            .field("nb_segs", &self.nb_segs())
            .field("port", &self.port())
            .finish()
    }
}

/// Reads one field of the mbuf behind `$self` by value.
macro_rules! field {
    ($self:ident . $f:ident) => {
        // SAFETY: `ptr` points to a valid mbuf owned by this handle (constructor contract of
        // `from_raw`). The field is read by value through the raw pointer, without making a
        // reference to the whole struct (other holders of a shared buffer may change `refcnt`
        // atomically); only this handle writes the header's other fields.
        unsafe { (*$self.ptr.as_ptr()).$f }
    };
}

/// Offset of `pkt_len` in `rte_mbuf`, followed by `data_len` and `vlan_tci`: the 8 octets
/// [`Mbuf::grow_front`] updates with one add.
const LENS_AT: usize = std::mem::offset_of!(dpdk_sys::rte_mbuf, pkt_len);
const _: () = {
    assert!(std::mem::offset_of!(dpdk_sys::rte_mbuf, data_len) == LENS_AT + 4);
    assert!(std::mem::offset_of!(dpdk_sys::rte_mbuf, vlan_tci) == LENS_AT + 6);
};

/// Writes one field of the mbuf behind `$self` (which must be borrowed mutably).
macro_rules! set_field {
    ($self:ident . $f:ident = $v:expr) => {{
        let v = $v;
        // SAFETY: as in `field!`; `&mut self` gives this handle exclusive access to the header
        // fields other than `refcnt`, so no other reference or thread sees the write.
        unsafe { (*$self.ptr.as_ptr()).$f = v }
    }};
}

impl Mbuf {
    /// Bytes reserved in front of the data of a freshly allocated mbuf ([`HEADROOM`]).
    pub const HEADROOM: u16 = HEADROOM;

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid, allocated `rte_mbuf` that nobody else uses or frees
    /// afterwards, as returned by [`Mbuf::into_raw`] or by a DPDK allocation or receive function.
    /// If its data buffer is shared ([`Mbuf::is_editable`] is false: reference count above 1,
    /// indirect or external buffer), no other holder may access the data while it is edited
    /// through this handle.
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

    /// Bytes of data in the first segment (`data_len`).
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(field!(self.data_len))
    }

    /// Whether the first segment holds no data.
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        field!(self.data_len) == 0
    }

    /// Total packet length over all segments (`pkt_len`).
    #[must_use]
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        field!(self.pkt_len)
    }

    /// Number of segments (`nb_segs`).
    #[must_use]
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        field!(self.nb_segs)
    }

    /// Whether the packet is in one segment.
    #[must_use]
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        field!(self.nb_segs) == 1
    }

    /// Reference count of the mbuf (`rte_mbuf_refcnt_read`: a relaxed atomic load).
    #[must_use]
    #[inline]
    pub fn refcnt(&self) -> u16 {
        // SAFETY: `ptr` is a valid mbuf (constructor contract), so `refcnt` is a live, aligned
        // `u16`; DPDK changes it only atomically (`rte_mbuf_refcnt_update`), so reading it as an
        // `AtomicU16` (same size and alignment) is what `rte_mbuf_refcnt_read` does.
        let rc =
            unsafe { AtomicU16::from_ptr(std::ptr::addr_of_mut!((*self.ptr.as_ptr()).refcnt)) };
        rc.load(Ordering::Relaxed)
    }

    /// Whether the mbuf owns its data buffer: neither attached to another mbuf
    /// (`RTE_MBUF_F_INDIRECT`) nor to an external buffer (`RTE_MBUF_F_EXTERNAL`).
    #[must_use]
    #[inline]
    pub fn is_direct(&self) -> bool {
        field!(self.ol_flags) & ATTACHED == 0
    }

    /// Whether the data may be rewritten in place: one segment, direct, reference count 1.
    #[must_use]
    #[inline]
    pub fn is_editable(&self) -> bool {
        self.is_contiguous() && self.is_direct() && self.refcnt() == 1
    }

    /// Offload flags (`ol_flags`: RX results such as checksum status, TX requests).
    #[must_use]
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        field!(self.ol_flags)
    }

    /// Packet type recognised by the driver (`packet_type`, `RTE_PTYPE_*` bits; 0 unknown).
    #[must_use]
    #[inline]
    pub fn packet_type(&self) -> u32 {
        // SAFETY: as in `field!`; `packet_type` is the `u32` view of a union of plain integer
        // bit-fields, so every bit pattern is a valid `u32`.
        unsafe { (*self.ptr.as_ptr()).__bindgen_anon_1.packet_type }
    }

    /// Clears the offload flags (except the attached-buffer bits `RTE_MBUF_F_INDIRECT` and
    /// `RTE_MBUF_F_EXTERNAL`, which DPDK needs to free the mbuf correctly) and the packet type.
    /// Call it on rewritten packets, so that RX results (checksum status, RSS hash flag, VLAN
    /// stripped, ...) are not taken as TX offload requests.
    #[inline]
    pub fn reset_offloads(&mut self) {
        let keep = field!(self.ol_flags) & ATTACHED;
        set_field!(self.ol_flags = keep);
        // SAFETY: as in `set_field!`; writing the `u32` view of the union sets all of its bits.
        unsafe { (*self.ptr.as_ptr()).__bindgen_anon_1.packet_type = 0 };
    }

    /// Input port recorded by the driver on receive (`port`).
    #[must_use]
    #[inline]
    pub fn port(&self) -> u16 {
        field!(self.port)
    }

    /// Sets the mbuf's `port` field (for example to the output port after a rewrite).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        set_field!(self.port = port);
    }

    /// Data of the first segment.
    #[must_use]
    #[inline]
    pub fn data(&self) -> &[u8] {
        let (addr, off, len) = (
            field!(self.buf_addr),
            field!(self.data_off),
            field!(self.data_len),
        );
        // SAFETY: for a valid mbuf, `buf_addr + data_off .. + data_len` lies inside the buffer
        // (`data_off + data_len <= buf_len`, maintained by DPDK and by the checked edits below);
        // the bytes are initialised (written by the driver or by us) and borrowed via `&self`.
        unsafe {
            std::slice::from_raw_parts(
                addr.cast::<u8>().add(usize::from(off)).cast_const(),
                usize::from(len),
            )
        }
    }

    /// Mutable data of the first segment.
    ///
    /// For a shared buffer ([`Mbuf::is_editable`] false) the [`Mbuf::from_raw`] contract
    /// requires that no other holder reads it meanwhile; check `is_editable` before rewriting
    /// packets of unknown origin.
    #[must_use]
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (addr, off, len) = (
            field!(self.buf_addr),
            field!(self.data_off),
            field!(self.data_len),
        );
        // SAFETY: as in `data`; `&mut self` gives exclusive access (an `Mbuf` is the only handle
        // to its buffer, rule a; shared buffers are excluded by the `from_raw` contract).
        unsafe {
            std::slice::from_raw_parts_mut(
                addr.cast::<u8>().add(usize::from(off)),
                usize::from(len),
            )
        }
    }

    /// Free bytes in front of the data (`data_off`, `rte_pktmbuf_headroom`).
    #[must_use]
    #[inline]
    pub fn headroom(&self) -> u16 {
        field!(self.data_off)
    }

    /// Free bytes after the data of the first segment (`rte_pktmbuf_tailroom`:
    /// `buf_len - data_off - data_len`).
    #[must_use]
    #[inline]
    pub fn tailroom(&self) -> u16 {
        field!(self.buf_len)
            .wrapping_sub(field!(self.data_off))
            .wrapping_sub(field!(self.data_len))
    }

    /// Grows the packet at the front by `n` bytes (`rte_pktmbuf_prepend`: `data_off -= n`,
    /// `data_len += n`, `pkt_len += n`) and returns the first `n` bytes (their content is
    /// whatever was in the headroom). Works on chains (the first segment grows).
    ///
    /// # Errors
    ///
    /// [`MbufError::NoHeadroom`]; the mbuf is unchanged.
    #[inline(always)]
    pub fn prepend(&mut self, n: u16) -> Result<&mut [u8], MbufError> {
        if !self.grow_front(n) {
            let have = field!(self.data_off);
            return Err(MbufError::NoHeadroom { need: n, have });
        }
        Ok(&mut self.data_mut()[..usize::from(n)])
    }

    /// [`Mbuf::prepend`] without making a slice of the new bytes: `false`, and the mbuf
    /// unchanged, without `n` bytes of headroom. The packet path uses it: testing
    /// `prepend`'s result costs a test of the data pointer (the slice's niche).
    #[inline(always)]
    pub fn grow_front(&mut self, n: u16) -> bool {
        let have = field!(self.data_off);
        if n > have {
            return false;
        }
        set_field!(self.data_off = have - n);
        // `pkt_len` and `data_len` grow by `n` together, as one 64-bit add over them and
        // `vlan_tci` (`LENS_AT`): one store instead of two, for the packet path is bound by
        // its stores. No sum carries out of its field: `data_len + n` stays within `buf_len`
        // (`n <= data_off`, and `data_off + data_len <= buf_len` in every mbuf), and
        // `pkt_len + n` within 2^32 (at most 65,535 segments of at most 65,535 octets, plus
        // `n`). Built from native-order bytes, so the fields line up on either byte order.
        let mut inc = [0u8; 8];
        inc[..4].copy_from_slice(&u32::from(n).to_ne_bytes());
        inc[4..6].copy_from_slice(&n.to_ne_bytes());
        let inc = u64::from_ne_bytes(inc);
        // SAFETY: `ptr` is a valid mbuf (constructor contract) and `&mut self` gives this
        // handle exclusive access to the header fields other than `refcnt`; `LENS_AT..+8` is
        // `pkt_len`, `data_len` and `vlan_tci` (asserted at `LENS_AT`), plain integers inside
        // the header, read and written unaligned through a raw pointer (no reference made).
        unsafe {
            let lens = self.ptr.as_ptr().cast::<u8>().add(LENS_AT).cast::<u64>();
            lens.write_unaligned(lens.read_unaligned().wrapping_add(inc));
        }
        true
    }

    /// Removes `n` bytes from the front (`rte_pktmbuf_adj`: `data_len -= n`, `data_off += n`,
    /// `pkt_len -= n`). Works on chains (the first segment shrinks).
    ///
    /// # Errors
    ///
    /// [`MbufError::TooShort`] if the first segment holds fewer than `n` bytes; the mbuf is
    /// unchanged.
    #[inline(always)]
    pub fn trim_front(&mut self, n: u16) -> Result<(), MbufError> {
        let len = field!(self.data_len);
        if n > len {
            return Err(MbufError::TooShort {
                need: n,
                have: u32::from(len),
            });
        }
        set_field!(self.data_len = len - n);
        set_field!(self.data_off = field!(self.data_off).wrapping_add(n));
        set_field!(self.pkt_len = field!(self.pkt_len).wrapping_sub(u32::from(n)));
        Ok(())
    }

    /// Grows the packet at the end by `n` bytes (`rte_pktmbuf_append`: `data_len += n`,
    /// `pkt_len += n`) and returns them (their content is unspecified).
    ///
    /// # Errors
    ///
    /// [`MbufError::Segmented`] for a chain; [`MbufError::NoTailroom`]; the mbuf is unchanged.
    #[inline]
    pub fn append(&mut self, n: u16) -> Result<&mut [u8], MbufError> {
        let nb_segs = field!(self.nb_segs);
        if nb_segs != 1 {
            return Err(MbufError::Segmented { nb_segs });
        }
        let have = self.tailroom();
        if n > have {
            return Err(MbufError::NoTailroom { need: n, have });
        }
        let len = field!(self.data_len);
        set_field!(self.data_len = len.wrapping_add(n));
        set_field!(self.pkt_len = field!(self.pkt_len).wrapping_add(u32::from(n)));
        Ok(&mut self.data_mut()[usize::from(len)..])
    }

    /// Removes `n` bytes from the end (`rte_pktmbuf_trim`: `data_len -= n`, `pkt_len -= n`).
    ///
    /// # Errors
    ///
    /// [`MbufError::Segmented`] for a chain; [`MbufError::TooShort`] if the packet holds fewer
    /// than `n` bytes; the mbuf is unchanged.
    #[inline(always)]
    pub fn trim_back(&mut self, n: u16) -> Result<(), MbufError> {
        let nb_segs = field!(self.nb_segs);
        if nb_segs != 1 {
            return Err(MbufError::Segmented { nb_segs });
        }
        let len = field!(self.data_len);
        if n > len {
            return Err(MbufError::TooShort {
                need: n,
                have: u32::from(len),
            });
        }
        set_field!(self.data_len = len - n);
        set_field!(self.pkt_len = field!(self.pkt_len).wrapping_sub(u32::from(n)));
        Ok(())
    }
}

impl AsRef<[u8]> for Mbuf {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl AsMut<[u8]> for Mbuf {
    #[inline]
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
