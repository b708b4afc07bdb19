//! Packet-buffer pools (`rte_pktmbuf_pool_create`).
//!
//! A [`Mempool`] is a cheap, cloneable handle; ports keep a clone for as long as their RX queues
//! may allocate from it. When the last handle goes, the pool is freed (`rte_mempool_free`) only
//! if no mbuf is still outstanding and EAL still runs; otherwise its memory is leaked rather than
//! freed under live buffers.
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::burst::Burst;
use crate::errno::{code, Errno};
use crate::mbuf::Mbuf;

/// Why a pool could not be created or an mbuf not allocated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MempoolError {
    /// EAL is not running.
    #[error("EAL is not running")]
    EalNotRunning,
    /// The name contains a NUL byte or is too long for DPDK (`RTE_MEMPOOL_NAMESIZE`).
    #[error("invalid mempool name {0:?}")]
    InvalidName(String),
    /// `EEXIST`: a pool with this name exists.
    #[error("mempool {0:?} already exists")]
    Exists(String),
    /// `ENOMEM` / `ENOSPC`: not enough memory for the pool.
    #[error("not enough memory for mempool {0:?}")]
    NoMemory(String),
    /// `EINVAL`: invalid size parameters.
    #[error("invalid mempool parameters for {0:?}")]
    InvalidParameters(String),
    /// The pool is empty (or, for a bulk allocation, holds fewer mbufs than asked for).
    #[error("mempool exhausted")]
    Exhausted,
    /// A bulk allocation asked for more mbufs than the burst has free slots.
    #[error("cannot allocate {need} mbufs into a burst with {spare} free slots")]
    NoRoom {
        /// Mbufs requested.
        need: usize,
        /// Free slots in the burst.
        spare: usize,
    },
    /// Any other errno.
    #[error("mempool operation failed: {0}")]
    Unknown(Errno),
}

/// `RTE_MEMPOOL_NAMESIZE` (a computed macro bindgen cannot see): `RTE_MEMZONE_NAMESIZE` (32)
/// minus the `"RG_"` and `"MP_"` prefixes, NUL included.
const MEMPOOL_NAMESIZE: usize = dpdk_sys::RTE_MEMZONE_NAMESIZE as usize - 6;

struct PoolInner {
    ptr: NonNull<dpdk_sys::rte_mempool>,
}

// SAFETY: DPDK mempools are multi-thread safe for get/put (per-lcore caches plus a lock-free
// ring; non-EAL threads bypass the cache), and the counters we read are plain loads; the pool is
// freed only in `Drop` of the last handle.
unsafe impl Send for PoolInner {}
// SAFETY: as for `Send`: every method takes `&self` and maps to an MT-safe mempool operation.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if !crate::eal::is_running() {
            return; // EAL memory is gone; nothing to free.
        }
        // SAFETY: `ptr` is a live pool (created in `pktmbuf_pool`, freed only here, by the last
        // handle); EAL runs (checked above).
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use == 0 {
            // SAFETY: as above, and no mbuf of the pool is outstanding (checked just now; no
            // other handle exists that could allocate), so nothing refers to its memory.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        }
    }
}

/// A pool of packet mbufs. Cloning makes another handle to the same pool.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
    name: Arc<str>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name)
            .field("in_use", &self.in_use())
            .field("avail", &self.avail())
            .finish()
    }
}

impl Mempool {
    /// Creates a packet-mbuf pool of `n` mbufs with a per-lcore cache of `cache_size` and
    /// `data_room` bytes of buffer each (including `RTE_PKTMBUF_HEADROOM`; use
    /// [`Mempool::DEFAULT_DATA_ROOM`] for standard frames), on the caller's NUMA socket.
    ///
    /// # Errors
    ///
    /// [`MempoolError`] with the mapped `rte_errno`.
    pub fn pktmbuf_pool(
        name: &str,
        n: u32,
        cache_size: u32,
        data_room: u16,
    ) -> Result<Self, MempoolError> {
        if !crate::eal::is_running() {
            return Err(MempoolError::EalNotRunning);
        }
        let cname = CString::new(name).map_err(|_| MempoolError::InvalidName(name.to_owned()))?;
        if name.len() >= MEMPOOL_NAMESIZE {
            return Err(MempoolError::InvalidName(name.to_owned()));
        }
        // SAFETY: EAL runs (checked above); `cname` is a valid C string that DPDK copies.
        let socket = unsafe { dpdk_sys::rte_socket_id() };
        // SAFETY: EAL runs; `cname` outlives the call; DPDK copies the name.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                n,
                cache_size,
                0,
                data_room,
                i32::try_from(socket).unwrap_or(-1),
            )
        };
        let Some(ptr) = NonNull::new(p) else {
            let e = Errno::last();
            let name = name.to_owned();
            return Err(match e.0 {
                code::EEXIST => MempoolError::Exists(name),
                code::ENOMEM | code::ENOSPC => MempoolError::NoMemory(name),
                code::EINVAL => MempoolError::InvalidParameters(name),
                _ => MempoolError::Unknown(e),
            });
        };
        Ok(Self {
            inner: Arc::new(PoolInner { ptr }),
            name: name.into(),
        })
    }

    /// Default mbuf data room: 2048 bytes of data plus the 128-byte headroom.
    pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

    /// The pool's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Mbufs currently allocated (`rte_mempool_in_use_count`), including those held by
    /// drivers; per-lcore caches count as available. 0 once EAL is gone.
    #[must_use]
    pub fn in_use(&self) -> u32 {
        if !crate::eal::is_running() {
            return 0;
        }
        // SAFETY: the pool lives as long as `self.inner`; EAL runs (checked above).
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs available for allocation (`rte_mempool_avail_count`). 0 once EAL is gone.
    #[must_use]
    pub fn avail(&self) -> u32 {
        if !crate::eal::is_running() {
            return 0;
        }
        // SAFETY: the pool lives as long as `self.inner`; EAL runs (checked above).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Allocates one mbuf with empty data (`rte_pktmbuf_alloc`).
    ///
    /// # Errors
    ///
    /// [`MempoolError::Exhausted`] when the pool is empty.
    pub fn alloc(&self) -> Result<Mbuf, MempoolError> {
        if !crate::eal::is_running() {
            return Err(MempoolError::EalNotRunning);
        }
        // SAFETY: the pool lives as long as `self.inner`; EAL runs (checked above); allocation
        // is MT-safe.
        let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_alloc(self.inner.ptr.as_ptr()) };
        let p = NonNull::new(p).ok_or(MempoolError::Exhausted)?;
        // SAFETY: `p` is a freshly allocated, non-null mbuf that nobody else owns.
        Ok(unsafe { Mbuf::from_raw(p) })
    }

    /// Allocates exactly `n` mbufs with empty data into the free slots of `out`, all or none
    /// (`rte_pktmbuf_alloc_bulk`: one call, one pass over the per-lcore cache).
    ///
    /// # Errors
    ///
    /// [`MempoolError::NoRoom`] when `out` has fewer than `n` free slots;
    /// [`MempoolError::Exhausted`] when the pool cannot provide `n` mbufs (nothing is
    /// allocated, `out` is unchanged).
    pub fn alloc_bulk<const N: usize>(
        &self,
        out: &mut Burst<N>,
        n: usize,
    ) -> Result<(), MempoolError> {
        if !crate::eal::is_running() {
            return Err(MempoolError::EalNotRunning);
        }
        let (ptr, spare) = out.spare_ptr();
        if n > spare {
            return Err(MempoolError::NoRoom { need: n, spare });
        }
        if n == 0 {
            return Ok(());
        }
        let count = u32::try_from(n).map_err(|_| MempoolError::NoRoom { need: n, spare })?;
        // SAFETY: the pool lives as long as `self.inner`; EAL runs (checked above); `ptr` has
        // room for `spare >= n` pointers (the burst's free slots); allocation is MT-safe.
        let ret =
            unsafe { dpdk_sys::dpdk_shim_pktmbuf_alloc_bulk(self.inner.ptr.as_ptr(), ptr, count) };
        if ret != 0 {
            // All or nothing: on failure no mbuf was taken and no slot written.
            return Err(MempoolError::Exhausted);
        }
        // SAFETY: on success DPDK wrote `n <= spare` freshly allocated, non-null mbuf pointers
        // that nobody else owns into the free slots.
        unsafe { out.set_filled(n) };
        Ok(())
    }

    /// Allocates one mbuf and copies `bytes` into it.
    ///
    /// # Errors
    ///
    /// [`MempoolError::Exhausted`] when the pool is empty; `InvalidParameters` when `bytes` does
    /// not fit into one mbuf's tailroom.
    pub fn alloc_with(&self, bytes: &[u8]) -> Result<Mbuf, MempoolError> {
        let mut m = self.alloc()?;
        let len = u16::try_from(bytes.len())
            .map_err(|_| MempoolError::InvalidParameters(self.name.to_string()))?;
        let dst = m
            .append(len)
            .map_err(|_| MempoolError::InvalidParameters(self.name.to_string()))?;
        dst.copy_from_slice(bytes);
        Ok(m)
    }

    /// The raw pool pointer, for FFI calls inside this crate.
    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}
