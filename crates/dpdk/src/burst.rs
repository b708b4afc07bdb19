//! Fixed-capacity bursts of mbufs, filled by `rx_burst`/`dequeue`/`Mempool::alloc_bulk` and
//! drained by `tx_burst`/`enqueue` without allocating.
//!
//! Freeing is batched: [`Burst::free_all`] (also used by [`Burst::clear`] and by dropping the
//! burst), the mbufs [`Burst::retain_mut`] rejects, and the rest of a dropped [`Drain`] each go
//! to DPDK in one `rte_pktmbuf_free_bulk` call instead of one call per mbuf.
use std::mem::MaybeUninit;
use std::ptr;

use crate::mbuf::Mbuf;

/// Default burst size (l3fwd's `MAX_PKT_BURST`).
pub const MAX_BURST: usize = 32;

/// Up to `N` owned mbufs in an inline array; the first `len` slots are initialised.
///
/// Dropping a burst frees the mbufs it still holds (one `rte_pktmbuf_free_bulk` call).
pub struct Burst<const N: usize = MAX_BURST> {
    // Invariant: slots `0..len` hold initialised, owned `Mbuf`s; slots `len..N` are
    // uninitialised and never read. `Mbuf` is `repr(transparent)` over a non-null
    // `*mut rte_mbuf`, so the storage is also a valid `*mut rte_mbuf` array for C.
    slots: [MaybeUninit<Mbuf>; N],
    len: usize,
}

impl<const N: usize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Debug for Burst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<const N: usize> Burst<N> {
    /// An empty burst.
    #[must_use]
    pub fn new() -> Self {
        Self {
            slots: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }

    /// Number of mbufs held.
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the burst is empty.
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the burst is full.
    #[must_use]
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Maximum number of mbufs (`N`).
    #[must_use]
    #[inline]
    pub fn capacity(&self) -> usize {
        N
    }

    /// Appends `m`, or gives it back when the burst is full.
    ///
    /// # Errors
    ///
    /// Returns `m` when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        let len = self.len;
        if len >= N {
            return Err(m);
        }
        // SAFETY: `len < N` (checked above), so the slot exists; it is outside `0..len`, so
        // nothing is overwritten without being dropped. Unchecked because the indexed form
        // compiled to a second bounds check and a reload of `len` on every packet.
        unsafe { self.slots.get_unchecked_mut(len).write(m) };
        self.len = len + 1;
        Ok(())
    }

    /// Removes and returns the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` (old `len - 1`) was initialised (type invariant) and is now outside
        // `0..len`, so it is read exactly once and never dropped by the burst.
        Some(unsafe { self.slots[self.len].assume_init_read() })
    }

    /// The mbufs held.
    #[must_use]
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots `0..len` are initialised (type invariant); `MaybeUninit<Mbuf>` has the
        // layout of `Mbuf`.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, mutably.
    #[must_use]
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterates over the mbufs held.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates mutably over the mbufs held.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Keeps the mbufs for which `keep` returns true (in order) and frees the others, all in
    /// one `rte_pktmbuf_free_bulk` call at the end.
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let len = self.len;
        // Shrink first so that a panic in `keep` leaks at most, never double-frees.
        self.len = 0;
        let mut kept = 0;
        // Rejected mbufs, freed together at the end (leaked if `keep` panics).
        let mut rejected: [MaybeUninit<*mut dpdk_sys::rte_mbuf>; N] =
            [const { MaybeUninit::uninit() }; N];
        let mut n_rejected = 0;
        for i in 0..len {
            // SAFETY: slot `i < len` was initialised (type invariant) and is read exactly once
            // here; it is either written back into slot `kept <= i` or moved to `rejected`.
            let mut m = unsafe { self.slots[i].assume_init_read() };
            if keep(&mut m) {
                self.slots[kept].write(m);
                kept += 1;
                self.len = kept;
            } else {
                rejected[n_rejected].write(m.into_raw().as_ptr());
                n_rejected += 1;
            }
        }
        // SAFETY: the first `n_rejected` entries hold owned, valid mbuf pointers taken out of
        // their `Mbuf`s above, so they are freed exactly once; `MaybeUninit<*mut T>` has the
        // layout of `*mut T`.
        unsafe { free_raw(rejected.as_mut_ptr().cast(), n_rejected) };
    }

    /// Moves all mbufs out, in order, leaving the burst empty. Mbufs not consumed from the
    /// iterator are freed when it is dropped.
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = self.len;
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// Moves all mbufs out, in order, into `f` with their index, leaving the burst empty: the
    /// packet loop's form of [`Burst::drain`], whose position lives in a register rather than
    /// in an iterator that unwinding must find in memory. If `f` panics, the mbufs not yet
    /// passed to it are leaked, not freed (a panicking packet loop stops the data plane).
    #[inline(always)]
    pub fn drain_each(&mut self, mut f: impl FnMut(usize, Mbuf)) {
        let end = self.len;
        self.len = 0;
        for i in 0..end {
            // SAFETY: slots `0..end` were initialised (type invariant) and the burst no longer
            // owns them (`len` is 0): each is read once, here; `i < end <= N`, so the slot
            // exists (unchecked: this runs once per packet).
            f(i, unsafe { self.slots.get_unchecked(i).assume_init_read() });
        }
    }

    /// Frees all mbufs held with one `rte_pktmbuf_free_bulk` call; the burst is empty
    /// afterwards. Same as [`Burst::clear`] and [`crate::mbuf::free_bulk`].
    #[inline]
    pub fn free_all(&mut self) {
        let len = self.len;
        if len == 0 {
            return;
        }
        let (ptr, _) = self.held_ptr();
        self.len = 0;
        // SAFETY: slots `0..len` hold owned, valid, non-null mbuf pointers (type invariant,
        // `Mbuf` is `repr(transparent)`); with `len` reset they are freed exactly once here and
        // never dropped again.
        unsafe { free_raw(ptr, len) };
    }

    /// Frees all mbufs held (one `rte_pktmbuf_free_bulk` call).
    #[inline]
    pub fn clear(&mut self) {
        self.free_all();
    }

    /// Pointer to the free slots, for C to write up to `capacity - len` mbuf pointers.
    #[inline]
    pub(crate) fn spare_ptr(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        let len = self.len;
        // `len <= N`, so the pointer is at most one past the end of `slots`.
        (
            self.slots[len..]
                .as_mut_ptr()
                .cast::<*mut dpdk_sys::rte_mbuf>(),
            N - len,
        )
    }

    /// Marks `n` more slots (after `len`) as initialised.
    ///
    /// # Safety
    ///
    /// C must have written `n <= capacity - len` valid, owned, non-null mbuf pointers to the
    /// slots returned by `spare_ptr`.
    #[inline]
    pub(crate) unsafe fn set_filled(&mut self, n: usize) {
        debug_assert!(n <= N - self.len);
        self.len += n;
    }

    /// Pointer to the held mbufs, for C to take ownership of a prefix.
    #[inline]
    pub(crate) fn held_ptr(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        (
            self.slots.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>(),
            self.len,
        )
    }

    /// Forgets the first `n` held mbufs (C now owns them) and moves the rest to the front.
    ///
    /// # Safety
    ///
    /// `n <= len`, and ownership of the first `n` mbufs has passed to C.
    #[inline]
    pub(crate) unsafe fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        // SAFETY: `n + rest == len <= N`, both ranges lie in `slots`; `ptr::copy` handles the
        // overlap. The first `n` slots are no longer ours (caller contract) and are overwritten
        // without being dropped.
        unsafe {
            ptr::copy(self.slots.as_ptr().add(n), self.slots.as_mut_ptr(), rest);
        }
        self.len = rest;
    }
}

/// Frees `n` owned mbufs at `ptr` with one `rte_pktmbuf_free_bulk` call (leaks them once EAL
/// is gone, like `Mbuf::drop`).
///
/// # Safety
///
/// `ptr` must point to `n` owned, valid, non-null mbuf pointers that nobody uses afterwards.
#[inline]
unsafe fn free_raw(ptr: *mut *mut dpdk_sys::rte_mbuf, n: usize) {
    if n == 0 || !crate::eal::is_running() {
        return; // Nothing to do, or EAL memory is gone: leak rather than touch it.
    }
    // Bursts hold at most `N` mbufs; a count beyond `u32` cannot occur, but stay in bounds.
    let mut done = 0;
    while done < n {
        let chunk = u32::try_from(n - done).unwrap_or(u32::MAX);
        // SAFETY: EAL runs (checked); by the caller contract `ptr + done` starts `chunk <=
        // n - done` owned, valid mbuf pointers, each freed exactly once here.
        unsafe { dpdk_sys::rte_pktmbuf_free_bulk(ptr.add(done), chunk) };
        done += chunk as usize;
    }
}

impl<const N: usize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// Iterator returned by [`Burst::drain`].
pub struct Drain<'a, const N: usize> {
    burst: &'a mut Burst<N>,
    next: usize,
    end: usize,
}

impl<const N: usize> std::fmt::Debug for Drain<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &(self.end - self.next))
            .finish()
    }
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // SAFETY: slots `next..end` were initialised when `drain` started (the burst's `len`
        // was reset to 0 there, so the burst no longer owns them) and each is read once;
        // `i < end <= N`, so the slot exists (unchecked: this runs once per packet).
        Some(unsafe { self.burst.slots.get_unchecked(i).assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        // Free what the caller did not take, in one call.
        let (next, end) = (self.next, self.end);
        self.next = end;
        // SAFETY: slots `next..end` were initialised when `drain` started and were not yet read
        // (the burst's `len` is 0, so it does not own them); with `next` advanced they are freed
        // exactly once here. `Mbuf` is `repr(transparent)` over a non-null mbuf pointer.
        unsafe {
            free_raw(self.burst.slots.as_mut_ptr().add(next).cast(), end - next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_burst_needs_no_eal() {
        let mut b: Burst<4> = Burst::new();
        assert!(b.is_empty() && !b.is_full());
        assert_eq!(b.capacity(), 4);
        assert!(b.pop().is_none());
        assert_eq!(b.drain().count(), 0);
        let (_, spare) = b.spare_ptr();
        assert_eq!(spare, 4);
        assert_eq!(std::mem::size_of::<Mbuf>(), std::mem::size_of::<*mut u8>());
    }
}
