//! The packet-buffer and port traits the pipeline is generic over, and their in-memory
//! implementations ([`VecBuf`], [`VecPort`]) used by the tests and the simulation.
//!
//! `dpdk::Mbuf` implements [`PacketBuf`] in `dpdk_impl` (feature `dpdk`), so the very same
//! pipeline runs on hugepage mbufs in the router and on `Vec`s in `cargo test`.

use std::collections::VecDeque;

use arrayvec::ArrayVec;

/// Packets per burst (l3fwd's `MAX_PKT_BURST`).
pub const BURST: usize = 32;

/// A burst of packets: a fixed-capacity array, never a `Vec` per call. Each buffer type names
/// its own ([`PacketBuf::Batch`]): an `ArrayVec` for [`VecBuf`], DPDK's `dpdk::Burst` for
/// mbufs, which `rte_eth_rx_burst` fills and `rte_eth_tx_burst` drains in place, so a packet's
/// pointer is never copied from one array type to another on its way through a worker.
pub type Batch<B> = <B as PacketBuf>::Batch;

/// What the worker does with a [`Batch`]. Capacity is [`BURST`].
pub trait BatchOps<B>: Default {
    /// Packets held.
    fn len(&self) -> usize;
    /// Holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Holds [`BURST`].
    fn is_full(&self) -> bool;
    /// Appends `b`. Callers check [`BatchOps::is_full`] first; a full batch frees `b`.
    fn push(&mut self, b: B);
    /// Takes the last packet.
    fn pop(&mut self) -> Option<B>;
    /// The packets, in order.
    fn as_slice(&self) -> &[B];
    /// Takes every packet, in order (the batch is empty afterwards).
    fn drain_all(&mut self) -> impl Iterator<Item = B> + '_;
    /// Takes every packet, in order, into `f` with its index (the batch is empty afterwards):
    /// the packet loop's form of [`BatchOps::drain_all`]. If `f` panics, the packets not yet
    /// passed may be leaked.
    fn drain_each(&mut self, f: impl FnMut(usize, B));
    /// Frees every packet (DPDK: one bulk call instead of one per packet).
    fn clear(&mut self);
}

impl<B> BatchOps<B> for ArrayVec<B, BURST> {
    #[inline]
    fn len(&self) -> usize {
        ArrayVec::len(self)
    }
    #[inline]
    fn is_full(&self) -> bool {
        ArrayVec::is_full(self)
    }
    #[inline]
    fn push(&mut self, b: B) {
        let _ = self.try_push(b);
    }
    #[inline]
    fn pop(&mut self) -> Option<B> {
        ArrayVec::pop(self)
    }
    #[inline]
    fn as_slice(&self) -> &[B] {
        ArrayVec::as_slice(self)
    }
    #[inline]
    fn drain_all(&mut self) -> impl Iterator<Item = B> + '_ {
        self.drain(..)
    }
    #[inline]
    fn drain_each(&mut self, mut f: impl FnMut(usize, B)) {
        for (i, b) in self.drain(..).enumerate() {
            f(i, b);
        }
    }
    #[inline]
    fn clear(&mut self) {
        ArrayVec::clear(self);
    }
}

/// One packet in a buffer with headroom, edited in place.
pub trait PacketBuf: AsRef<[u8]> + AsMut<[u8]> + Sized {
    /// This buffer's burst type.
    type Batch: BatchOps<Self>;
    /// Octets free in front of the data.
    fn headroom(&self) -> usize;
    /// Grows the data by `n` octets at the front; `false` (nothing changed) without headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` octets from the front; `false` (nothing changed) if shorter.
    fn trim_front(&mut self, n: usize) -> bool;
    /// Removes `n` octets from the end; `false` (nothing changed) if shorter.
    fn trim_back(&mut self, n: usize) -> bool;
    /// May the data be edited in place (one segment, not shared, not indirect)?
    fn editable(&self) -> bool;
    /// Forgets receive offload results after a rewrite (checksum flags, packet type).
    fn reset_offloads(&mut self) {}
    /// The data-plane port index the packet is attached to (set on RX, on punt and on inject).
    fn port(&self) -> u16;
    /// Attaches the packet to data-plane port `port`.
    fn set_port(&mut self, port: u16);
}

/// A packet in a `Vec` with headroom: the test and simulation buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
    port: u16,
    shared: bool,
}

impl std::fmt::Debug for VecBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VecBuf(port {}, {} octets)", self.port, self.len())
    }
}

impl VecBuf {
    /// Headroom of a new buffer, as DPDK's `RTE_PKTMBUF_HEADROOM`.
    pub const HEADROOM: usize = 128;

    /// A buffer holding `data` on `port`, with [`VecBuf::HEADROOM`] octets of headroom.
    pub fn new(port: u16, data: &[u8]) -> Self {
        let mut buf = vec![0u8; Self::HEADROOM + data.len()];
        buf[Self::HEADROOM..].copy_from_slice(data);
        VecBuf {
            buf,
            start: Self::HEADROOM,
            port,
            shared: false,
        }
    }

    /// A buffer with exactly `headroom` octets of headroom.
    pub fn with_headroom(port: u16, data: &[u8], headroom: usize) -> Self {
        let mut b = Self::new(port, data);
        b.buf.drain(..Self::HEADROOM - headroom.min(Self::HEADROOM));
        b.start = headroom.min(Self::HEADROOM);
        b
    }

    /// Marks the buffer shared (like an mbuf with refcnt > 1): it is then not editable.
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }

    /// Data length.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// `true` when there is no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// Always inlined, like `Mbuf`'s in the DPDK build: as a call, the pipeline's benchmarks on
// `VecBuf` paid for a call and its spills that the router does not.
impl AsRef<[u8]> for VecBuf {
    #[inline(always)]
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl AsMut<[u8]> for VecBuf {
    #[inline(always)]
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
}

impl PacketBuf for VecBuf {
    type Batch = ArrayVec<VecBuf, BURST>;
    fn headroom(&self) -> usize {
        self.start
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.start += n;
        true
    }
    fn trim_back(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.buf.truncate(self.buf.len() - n);
        true
    }
    fn editable(&self) -> bool {
        !self.shared
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn set_port(&mut self, port: u16) {
        self.port = port;
    }
}

/// One RX/TX queue pair of one port, as a worker lcore sees it.
pub trait PortQueue {
    /// The packet type.
    type Buf: PacketBuf;
    /// Receives up to [`BURST`] packets into `out`, which is empty on entry.
    fn rx_burst(&mut self, out: &mut Batch<Self::Buf>);
    /// Sends the packets of `pkts` (emptying it); returns how many the device took. The rest
    /// are freed by the implementation (counted by the caller as `tx_full`).
    fn tx_burst(&mut self, pkts: &mut Batch<Self::Buf>) -> usize;
}

/// A hand-off channel between lcores (the punt and inject rings).
pub trait Channel {
    /// The packet type.
    type Buf: PacketBuf;
    /// Moves as many packets of `pkts` as fit into the channel; the rest stay in `pkts`.
    fn send(&mut self, pkts: &mut Batch<Self::Buf>);
    /// Moves up to the free space of `out` into it.
    fn recv(&mut self, out: &mut Batch<Self::Buf>);
}

/// In-memory port queue: frames to receive are pushed into `rx`, sent frames land in `tx`.
#[derive(Debug, Default)]
pub struct VecPort {
    /// Frames waiting to be received (`rx_burst` takes from the front).
    pub rx: VecDeque<VecBuf>,
    /// Frames sent, in order.
    pub tx: Vec<VecBuf>,
    /// Accept at most this many frames per `tx_burst` (models a full TX ring); `None`: all.
    pub tx_limit: Option<usize>,
}

impl PortQueue for VecPort {
    type Buf = VecBuf;
    fn rx_burst(&mut self, out: &mut Batch<VecBuf>) {
        while !out.is_full() {
            match self.rx.pop_front() {
                Some(b) => out.push(b),
                None => break,
            }
        }
    }
    fn tx_burst(&mut self, pkts: &mut Batch<VecBuf>) -> usize {
        let take = self.tx_limit.map_or(pkts.len(), |l| l.min(pkts.len()));
        let n = pkts.len();
        self.tx.extend(pkts.drain(..take));
        pkts.clear();
        take.min(n)
    }
}

/// In-memory bounded channel.
#[derive(Debug)]
pub struct VecChannel {
    /// Queued packets.
    pub queue: VecDeque<VecBuf>,
    /// Capacity.
    pub capacity: usize,
}

impl VecChannel {
    /// An empty channel of `capacity` packets.
    pub fn new(capacity: usize) -> Self {
        VecChannel {
            queue: VecDeque::new(),
            capacity,
        }
    }
}

impl Channel for VecChannel {
    type Buf = VecBuf;
    fn send(&mut self, pkts: &mut Batch<VecBuf>) {
        let room = self
            .capacity
            .saturating_sub(self.queue.len())
            .min(pkts.len());
        self.queue.extend(pkts.drain(..room));
    }
    fn recv(&mut self, out: &mut Batch<VecBuf>) {
        while !out.is_full() {
            match self.queue.pop_front() {
                Some(b) => out.push(b),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vecbuf_edits() {
        let mut b = VecBuf::with_headroom(3, &[1, 2, 3, 4], 2);
        assert_eq!((b.headroom(), b.port()), (2, 3));
        assert!(!b.prepend(3));
        assert!(b.prepend(2));
        assert_eq!(b.as_ref(), &[0, 0, 1, 2, 3, 4]);
        assert!(b.trim_front(3));
        assert!(b.trim_back(1));
        assert_eq!(b.as_ref(), &[2, 3]);
        assert!(!b.trim_back(3));
        assert!(b.editable());
        assert!(!b.shared().editable());
    }
}
