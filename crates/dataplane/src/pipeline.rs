//! The per-packet decision and rewrite: one function, [`process`], from a received frame to an
//! [`Action`], editing the frame in place.
//!
//! ```text
//!  Ethernet (+802.1Q) ── ARP ─────────────────────────────────────────────> punt
//!     │ IPv4 (checked, checksum)
//!     ├─ to us ── GRE from a member cache ── decap ──> route (never redirected again)
//!     │        ├─ ICMP echo request ─────────────────> echo reply (in place)
//!     │        ├─ UDP 2048 / fragments ──────────────> punt (WCCP control)
//!     │        └─ else ──────────────────────────────> drop local_unhandled
//!     ├─ TTL <= 1 ───────────────────────────────────> ICMP time exceeded (in place, limited)
//!     ├─ FIB ── redirect direction? ── services by priority ── redirect list ── table
//!     │            ├─ target (GRE) ─── MTU / MSS ─── prepend template ────> TX cache port
//!     │            ├─ target (L2) ──── MAC rewrite ───────────────────────> TX cache port
//!     │            ├─ unassigned / unresolved ── closed? drop : route
//!     └─ route ── neighbour? ── MTU ── SYN-ACK MSS clamp ── MAC rewrite, TTL ──> TX
//!                    └─ unresolved: L2 half-built, punted for ARP (held by control)
//! ```
//!
//! Nothing here allocates, locks, logs or calls into DPDK: counters are per-lcore relaxed
//! stores, tables are read through a reference that the caller keeps valid for the burst.

use std::net::Ipv4Addr;

use assign::hash::FlowKey;
use assign::table::Lookup;
use wire::ethernet::{self, BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use wire::ipv4::{PROTOCOL_GRE, PROTOCOL_ICMP, PROTOCOL_TCP, PROTOCOL_UDP};
use wire::l4::{self, TcpPacket};
use wire::{checksum, Ipv4Packet};

use crate::buf::PacketBuf;
use crate::counters::{LcoreCounters, Reason, ServiceCounters};
use crate::tables::{
    gre_checksum, Egress, Encap, FastService, GreTarget, PortInfo, RouteHit, ServiceEntry, Tables,
    GRE_FRAME_HDR, OUTER_IP, OWNER_FORWARD, OWNER_LOOKUP, REDIRECT_HDR,
};

/// What to do with a processed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send on this port.
    Tx(u16),
    /// Hand to the control lcore.
    Punt,
    /// Free; the reason was counted.
    Drop(Reason),
}

/// A token bucket for ICMP errors, in the caller's clock ticks (TSC cycles on an lcore).
#[derive(Clone, Debug)]
pub struct RateLimit {
    tokens: u32,
    burst: u32,
    ticks_per_token: u64,
    last: u64,
}

impl RateLimit {
    /// `per_second` tokens a second, at most `burst` saved, for a clock of `hz` ticks a second.
    pub fn new(per_second: u32, burst: u32, hz: u64) -> Self {
        RateLimit {
            tokens: burst,
            burst,
            ticks_per_token: hz / u64::from(per_second.max(1)),
            last: 0,
        }
    }

    /// Takes a token at time `now`.
    #[inline]
    pub fn take(&mut self, now: u64) -> bool {
        if self.tokens == 0 {
            let earned = now.saturating_sub(self.last) / self.ticks_per_token.max(1);
            if earned == 0 {
                return false;
            }
            self.tokens = self.burst.min(u32::try_from(earned).unwrap_or(u32::MAX));
            self.last = now;
        } else if self.tokens == self.burst {
            self.last = now;
        }
        self.tokens -= 1;
        true
    }
}

/// The state [`process`] needs besides the frame.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The current tables.
    pub tables: &'a Tables,
    /// This lcore's counters.
    pub counters: &'a LcoreCounters,
    /// ICMP error rate limit.
    pub icmp: &'a mut RateLimit,
    /// Now, in the rate limit's ticks.
    pub now: u64,
}

/// The IPv4 facts the pipeline uses, read once.
#[derive(Clone, Copy, Debug)]
struct Ip {
    hl: usize,
    total: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    df: bool,
    later_fragment: bool,
    fragment: bool,
}

impl Ip {
    /// The checks of `Ipv4Packet::new_checked` and `verify_checksum` (version 4, IHL >= 5,
    /// header and total length within the buffer, header checksum), reading the fixed header
    /// once through one bounds check; an option-less header is summed as five 32-bit words.
    #[inline]
    fn read(data: &[u8]) -> Result<Ip, Reason> {
        let Some(h) = data.first_chunk::<20>() else {
            return Err(Reason::Ipv4Malformed);
        };
        let hl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if h[0] >> 4 != 4 || hl < 20 || hl > data.len() || total < hl || total > data.len() {
            return Err(Reason::Ipv4Malformed);
        }
        let sum = if hl == 20 {
            checksum::sum(0, h)
        } else {
            checksum::sum(0, &data[..hl])
        };
        if checksum::finish(sum) != 0 {
            return Err(Reason::Ipv4Checksum);
        }
        let flags_frag = u16::from_be_bytes([h[6], h[7]]);
        Ok(Ip {
            hl,
            total,
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            proto: h[9],
            ttl: h[8],
            df: flags_frag & wire::ipv4::FLAG_DF != 0,
            later_fragment: flags_frag & wire::ipv4::FRAG_OFFSET_MASK != 0,
            fragment: flags_frag & (wire::ipv4::FLAG_MF | wire::ipv4::FRAG_OFFSET_MASK) != 0,
        })
    }
}

/// Decrements the TTL of the IPv4 header at the start of `ip` (TTL at least 1) and updates
/// the header checksum incrementally (RFC 1624 eqn. 3 with m = TTL:protocol, m' = m - 0x100:
/// ~m + m' is 0xfeff in ones' complement, so HC' = ~(~HC + 0xfeff)).
#[inline]
fn decrement_ttl(ip: &mut [u8]) {
    let Some(h) = ip.first_chunk_mut::<20>() else {
        return;
    };
    let w = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    h[8..12].copy_from_slice(&ttl_decremented(w).to_le_bytes());
}

/// [`decrement_ttl`] on the IPv4 header's third word (TTL, protocol, checksum) as
/// `u32::from_le_bytes` of its octets: the word to write back. The checksum is updated in
/// that byte order, which a ones' complement sum does not depend on (RFC 1071 2(B)): no byte
/// swaps, and the burst pre-pass (`lanes`) computes it for a whole burst at once.
#[inline(always)]
pub(crate) fn ttl_decremented(w: u32) -> u32 {
    let ttl = (w & 0xff).wrapping_sub(1) & 0xff;
    let hc = (w >> 16) & 0xffff;
    let s = (!hc & 0xffff) + u32::from(u16::from_le_bytes(0xfeff_u16.to_be_bytes()));
    let s = (s & 0xffff) + (s >> 16);
    (w & 0xff00) | ttl | ((!s & 0xffff) << 16)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A packet in transit: may be redirected; TTL is decremented.
    Transit,
    /// Decapsulated from a cache's GRE return: routed, never redirected, TTL untouched (it was
    /// decremented when the packet was redirected).
    Returned,
}

/// Processes one frame received on `in_port`, editing it in place. Counts `rx` and exactly one
/// terminal reason.
pub fn process<B: PacketBuf>(cx: &mut Ctx<'_>, in_port: u16, b: &mut B) -> Action {
    cx.counters.count(Reason::Rx);
    let t = cx.tables;
    process_with(cx, in_port, InPort::of(t, in_port), b, true)
}

/// [`process`] for a frame whose `rx` the caller has already counted: the worker counts a
/// whole burst at once, so that every received frame still counts `rx` and exactly one
/// terminal reason by the time the poll returns. `inp` is `cx.tables.ports[in_port]`, looked
/// up once per burst by the caller.
#[inline(always)]
pub(crate) fn process_received<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    inp: InPort<'_>,
    b: &mut B,
) -> Action {
    process_with(cx, in_port, inp, b, true)
}

/// [`process`] without the fast path for common transit packets: the reference that the
/// fast path is tested against (`tests/fast_path.rs`).
#[doc(hidden)]
pub fn process_general<B: PacketBuf>(cx: &mut Ctx<'_>, in_port: u16, b: &mut B) -> Action {
    cx.counters.count(Reason::Rx);
    let t = cx.tables;
    process_with(cx, in_port, InPort::of(t, in_port), b, false)
}

/// The low 48 bits of a little-endian word: a MAC address read with the two octets after it.
pub(crate) const MAC_BITS: u64 = (1 << 48) - 1;

/// The arrival port for [`fast`], with its MAC as the fast path compares it (once per burst in
/// the worker).
#[derive(Clone, Copy)]
pub(crate) struct InPort<'t> {
    pub(crate) info: &'t PortInfo,
    /// The MAC in the low 48 bits (little-endian); all ones, which no frame's 48 bits equal,
    /// when the port's MAC is a group address (such frames are the general path's) or the
    /// port is unknown.
    pub(crate) mac: u64,
    /// The tables have the port: the fast path may drop frames for other stations.
    known: bool,
}

/// [`InPort`] of a port the tables do not have: nothing matches its MAC, and the general path
/// drops the frames (`UnknownPort`).
static NO_PORT: PortInfo = PortInfo {
    name: String::new(),
    mac: [0xff; 6],
    addrs: Vec::new(),
    mtu: 0,
    redirect_in: false,
    redirect_out: false,
    exclude_in: false,
};

impl<'t> InPort<'t> {
    /// Port `in_port` of `t` in its fast-path form.
    #[inline]
    pub(crate) fn of(t: &'t Tables, in_port: u16) -> InPort<'t> {
        let Some(info) = t.ports.get(usize::from(in_port)) else {
            return InPort {
                info: &NO_PORT,
                mac: u64::MAX,
                known: false,
            };
        };
        let m = info.mac;
        let mac = if m[0] & 1 == 0 {
            u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0])
        } else {
            u64::MAX
        };
        InPort {
            info,
            mac,
            known: true,
        }
    }
}

/// The fast path alone: `Some` with the action (counted as [`process`] counts it) when it
/// decided the frame, `None` (nothing changed or counted, not even `rx`) when it left the
/// frame to the general path. For tests that the fast path really takes the common cases.
#[doc(hidden)]
pub fn process_fast_only<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    b: &mut B,
) -> Option<Action> {
    let t = cx.tables;
    let a = fast(cx, in_port, InPort::of(t, in_port), b)?;
    cx.counters.count(Reason::Rx);
    if let Action::Drop(r) = a {
        cx.counters.count(r);
    }
    Some(a)
}

#[inline(always)]
fn process_with<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    inp: InPort<'_>,
    b: &mut B,
    fast_path: bool,
) -> Action {
    let fast = if fast_path {
        fast(cx, in_port, inp, b)
    } else {
        None
    };
    let a = match fast {
        Some(a) => a,
        None => classify(cx, in_port, b),
    };
    match a {
        Action::Drop(r) => cx.counters.count(r),
        Action::Punt => cx.counters.count(Reason::Punted),
        Action::Tx(_) => {}
    }
    a
}

fn classify<B: PacketBuf>(cx: &mut Ctx<'_>, in_port: u16, b: &mut B) -> Action {
    let t = cx.tables;
    let Some(port) = t.ports.get(usize::from(in_port)) else {
        return Action::Drop(Reason::UnknownPort);
    };
    let Ok(eth) = ethernet::Packet::new_checked(b.as_ref()) else {
        return Action::Drop(Reason::EthTruncated);
    };
    let (l2len, ethertype, dmac, smac) = (eth.header_len(), eth.ethertype(), eth.dst(), eth.src());
    let group = dmac[0] & 1 != 0;
    if !group && dmac != port.mac {
        return Action::Drop(Reason::NotOurMac);
    }
    match ethertype {
        ETHERTYPE_ARP => return Action::Punt,
        ETHERTYPE_IPV4 if group => return Action::Drop(Reason::Ipv4Multicast),
        ETHERTYPE_IPV4 => {}
        _ => return Action::Drop(Reason::UnsupportedEthertype),
    }
    let ip = match Ip::read(&b.as_ref()[l2len..]) {
        Ok(ip) => ip,
        Err(r) => return Action::Drop(r),
    };
    if ip.dst.is_multicast() || ip.dst.is_broadcast() || ip.src.is_multicast() {
        return Action::Drop(Reason::Ipv4Multicast);
    }
    if t.is_directed_broadcast(u32::from(ip.dst)) {
        return Action::Drop(Reason::Ipv4Multicast);
    }
    if t.is_local(u32::from(ip.dst)) {
        return local(cx, in_port, b, l2len, &ip, smac);
    }
    forward(cx, in_port, b, l2len, &ip, smac, Mode::Transit)
}

/// The two cases that make up nearly all transit traffic, in one pass over the headers: a
/// TCP/UDP packet that a service's hash table sends to a GRE target, and one that is routed to
/// a resolved next hop. Anything else, or anything unusual about these (VLAN tag, IPv4
/// options, fragments, TTL 1, our own or group addresses, L2 returns, redirect lists,
/// unassigned buckets, MTU, SYN or SYN-ACK segments that may need an MSS clamp, no
/// headroom, shared buffers, unresolved next hops), returns `None` before anything was
/// changed or counted, and the general path below decides. One drop is decided here too: a
/// frame for another station's unicast MAC (`Drop(NotOurMac)`, counted by the caller).
///
/// The result, the rewritten frame and the counters are exactly those of the general path
/// (`classify` -> `forward` -> `services` -> `redirect`); the golden-frame and property tests
/// of the pipeline run through both. It exists because the general path costs several
/// hundred instructions per packet (docs/BENCHMARKS.md).
#[inline(always)]
fn fast<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    inp: InPort<'_>,
    b: &mut B,
) -> Option<Action> {
    let t = cx.tables;
    let (inp_mac, known) = (inp.mac, inp.known);
    let inp = inp.info;
    let d = b.as_ref();
    let len = d.len();
    // Ethernet (14, untagged, IPv4, to our unicast MAC), IPv4 (20, no options) and the
    // first four octets of TCP/UDP (the ports).
    let h = d.first_chunk::<38>()?;
    // The destination MAC and the source's first two octets as one word; only the former
    // is compared (`InPort::mac` never equals a group address).
    if u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) & MAC_BITS != inp_mac {
        // As `classify`: a unicast frame for another station is dropped (the frame is long
        // enough for any Ethernet header, so that is its first check); group destinations
        // and unknown ports take the general path.
        return (known && h[0] & 1 == 0).then_some(Action::Drop(Reason::NotOurMac));
    }
    let ip = HeaderWords::read(h[14..34].try_into().ok()?);
    // Ethertype IPv4 (08 00) and version 4 with a 20-octet header (45), as one word.
    if u32::from_le_bytes([h[12], h[13], h[14], h[15]]) & 0x00ff_ffff != 0x0045_0008
        || !ip.checksum_ok()
    {
        return None;
    }
    let total = ip.total();
    let proto = ip.protocol();
    if total < 24 || total > len - ethernet::HEADER_LEN || ip.fragment() {
        return None;
    }
    let (src, dst) = (ip.src(), ip.dst());
    // Group sources; group, broadcast and our own destinations (the exact tests only for
    // destinations whose first octet some such address has).
    if src >> 28 == 0xe {
        return None;
    }
    if t.dst_may_be_special(dst) {
        if dst >> 28 == 0xe || dst == u32::MAX || t.is_directed_broadcast(dst) {
            return None;
        }
        if t.is_local(dst) {
            return if proto == PROTOCOL_GRE {
                fast_return(cx, b, total, src, false).map(Action::Tx)
            } else {
                None
            };
        }
    }
    if ip.ttl() <= 1 || (proto != PROTOCOL_TCP && proto != PROTOCOL_UDP) {
        return None;
    }
    let route = t.lpm.lookup(dst)?;
    // The egress port's fields, copied into the route (`None`: no such port).
    let ep = route.egress.as_ref()?;
    if !t.l2_caches.is_empty() {
        let mut smac = [0u8; 6];
        smac.copy_from_slice(&h[6..12]);
        if t.l2_caches.binary_search(&(in_port, smac)).is_ok() {
            return None;
        }
    }
    let sport = u16::from_be_bytes([h[34], h[35]]);
    let dport = u16::from_be_bytes([h[36], h[37]]);
    // TCP flags, when the segment has a whole header: SYNs may need their MSS clamped.
    let flags = if proto == PROTOCOL_TCP {
        if total < 40 {
            return None;
        }
        *d.get(ethernet::HEADER_LEN + 20 + 13)?
    } else {
        0
    };
    if (inp.redirect_in || (ep.redirect_out && !inp.exclude_in)) && !t.is_member(src) {
        // As `redirect_applies`.
        for s in &t.services {
            // `matcher` is the table's definition, `None` without a table.
            let Some(m) = &s.matcher else { continue };
            if !m.matches(proto, sport, dport) {
                continue;
            }
            // No fast form (a mask table, a redirect list), or a SYN that may need its MSS
            // clamped: the general path.
            let Some(fs) = &s.fast else { return None };
            if flags & l4::TCP_SYN != 0 {
                return None;
            }
            let (primary, alt) = fs.hash.buckets(src, dst, sport, dport);
            let ctr = cx.counters.service_below_max(fs.slot);
            let ttl = ttl_decremented(ip.word(2));
            let buckets = u16::from_le_bytes([alt, primary]);
            return fast_gre::<_, true>(cx, b, fs, ctr, buckets, total, len, ttl).map(Action::Tx);
        }
    }
    // Routed: as `forward` for a packet no service took.
    fast_route(
        cx,
        b,
        route,
        ep,
        dst,
        total,
        len,
        flags,
        ttl_decremented(ip.word(2)),
    )
    .map(Action::Tx)
}

/// The fast paths' GRE redirect (as `redirect`) of a packet that service `fs` (counted in
/// `ctr`, its slot's counters) takes, whose buckets are `buckets` (the alternate bucket in
/// the low octet, the primary in the high one: the redirect header's last two octets as a
/// little-endian word), with IPv4 total length `total` in a frame of `len` octets and the
/// header's third word after the TTL decrement `ttl_word` ([`ttl_decremented`]): the egress
/// port, or `None`, with nothing changed or counted, when the primary bucket's owner is not a
/// GRE target of `fs` or the packet is too long, the buffer is shared or lacks headroom.
/// Without `TOTALS`, the caller counts the redirect in `redirected_gre` and the service's
/// `redirected` (the burst pre-pass does, once per burst).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn fast_gre<B: PacketBuf, const TOTALS: bool>(
    cx: &mut Ctx<'_>,
    b: &mut B,
    fs: &FastService,
    ctr: &ServiceCounters,
    buckets: u16,
    total: usize,
    len: usize,
    ttl_word: u32,
) -> Option<u16> {
    let primary = usize::from(buckets >> 8);
    // A bucket with another kind of owner holds DECLINE, a declined entry (`max_inner` 0).
    let g = &fs.gre[usize::from(fs.owners[primary])];
    let room = GRE_FRAME_HDR - ethernet::HEADER_LEN;
    if total > usize::from(g.max_inner) || !b.editable() || b.headroom() < room {
        return None;
    }
    // As `redirect`: strip padding, decrement the TTL, prepend the template.
    let tail = len - ethernet::HEADER_LEN - total;
    if (tail > 0 && !b.trim_back(tail)) || !b.prepend(room) {
        return None;
    }
    // (The frame now holds at least GRE_FRAME_HDR + 24 octets, so this never fails.)
    write_gre(b, g, buckets, total, ttl_word)?;
    if TOTALS {
        ctr.redirected.inc();
        cx.counters.count(Reason::RedirectedGre);
    }
    ctr.buckets[primary].inc();
    let tc = &ctr.targets[usize::from(g.target) % crate::counters::MAX_TARGETS];
    tc.packets.inc();
    tc.bytes.add(total as u64);
    Some(g.port)
}

/// The GRE rewrite after the prepend: `b` starts with [`GRE_FRAME_HDR`] free octets, then
/// the inner IPv4 header, whose third word becomes `ttl_word` ([`ttl_decremented`]); the
/// prefix becomes `g`'s template with the outer total length (of inner length `total`), its
/// checksum and the redirect header's `buckets` (as [`fast_gre`] takes them) filled in, and
/// the offload fields are reset. `None`, with nothing written, when the frame is shorter than
/// the prefix and an IPv4 header.
#[inline(always)]
pub(crate) fn write_gre<B: PacketBuf>(
    b: &mut B,
    g: &GreTarget,
    buckets: u16,
    total: usize,
    ttl_word: u32,
) -> Option<()> {
    // The new prefix and the inner IPv4 header, as one chunk: one length check.
    let (hd, inner) = b
        .as_mut()
        .first_chunk_mut::<{ GRE_FRAME_HDR + 20 }>()?
        .split_at_mut(GRE_FRAME_HDR);
    inner[8..12].copy_from_slice(&ttl_word.to_le_bytes());
    // The template's first and last 16 octets as they are, the 16 between as two words with
    // the outer total length and checksum filled in, then the buckets: five stores, where
    // copying the template and writing each field took seven (the loop is bound by its
    // stores: docs/BENCHMARKS.md, session 8).
    let outer_total = (total + wire::gre::WCCP_ENCAP_LEN) as u16;
    let csum = gre_checksum(g.csum_base, outer_total);
    let total_word = u64::from(u16::from_le_bytes(outer_total.to_be_bytes()));
    let csum_word = u64::from(u16::from_le_bytes(csum.to_ne_bytes()));
    let last = GRE_FRAME_HDR - 16;
    hd[..16].copy_from_slice(&g.header[..16]);
    hd[last..].copy_from_slice(&g.header[last..]);
    hd[OUTER_IP + 2..OUTER_IP + 10].copy_from_slice(&(g.middle[0] | total_word).to_le_bytes());
    hd[OUTER_IP + 10..OUTER_IP + 18].copy_from_slice(&(g.middle[1] | csum_word).to_le_bytes());
    // The primary bucket's owner took it: the alternate-bucket flag stays clear.
    hd[REDIRECT_HDR + 2..REDIRECT_HDR + 4].copy_from_slice(&buckets.to_le_bytes());
    b.reset_offloads();
    Some(())
}

/// The fast paths' routing (as `forward` for a packet no service took) of a packet to `dst`
/// by `route`, with IPv4 total length `total` in a frame of `len` octets, TCP flags `flags`
/// (0 for UDP) and the header's third word after the TTL decrement `ttl_word`
/// ([`ttl_decremented`]): the egress port, or `None`, with nothing changed or counted, under
/// the conditions of [`fast_next_hop`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn fast_route<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    b: &mut B,
    route: &RouteHit,
    ep: &Egress,
    dst: u32,
    total: usize,
    len: usize,
    flags: u8,
    ttl_word: u32,
) -> Option<u16> {
    let t = cx.tables;
    let mac = fast_next_hop(t, b, route, ep, dst, total, flags)?;
    let tail = len - ethernet::HEADER_LEN - total;
    if tail > 0 && !b.trim_back(tail) {
        return None;
    }
    // Ethernet and the IPv4 header's first three words: one length check.
    let f = b
        .as_mut()
        .first_chunk_mut::<{ ethernet::HEADER_LEN + 12 }>()?;
    f[ethernet::HEADER_LEN + 8..].copy_from_slice(&ttl_word.to_le_bytes());
    ethernet::write_header(f, mac, ep.mac, ETHERTYPE_IPV4);
    b.reset_offloads();
    cx.counters.count(Reason::Routed);
    Some(route.entry.port)
}

/// The fast paths' routing conditions: the packet fits the egress MTU, is not a SYN-ACK (which
/// may need its MSS clamped: the general path does that), can be edited in place, and its next
/// hop's MAC is known. `None`: take the general path.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fast_next_hop<B: PacketBuf>(
    t: &Tables,
    b: &B,
    route: &RouteHit,
    ep: &Egress,
    dst: u32,
    total: usize,
    flags: u8,
) -> Option<[u8; 6]> {
    let synack = l4::TCP_SYN | l4::TCP_ACK;
    if total > usize::from(ep.mtu) || flags & synack == synack || !b.editable() {
        return None;
    }
    match route.via_mac {
        Some(m) => Some(m),
        None => {
            let nh = route.entry.via.map_or(dst, u32::from);
            let n = t.neighbours.get(&nh)?;
            (n.port == route.entry.port).then_some(n.mac)
        }
    }
}

/// `fast` for a GRE return (`local` -> `gre_return` -> `forward` in `Mode::Returned`): WCCP GRE
/// (0x883E, no flags) with a redirect header from a member cache, around an option-less
/// TCP/UDP packet that is routed to a resolved next hop: the egress port. Anything else:
/// `None`, nothing changed or counted. With `checked`, the caller found the source a member
/// cache and the GRE header's first word WCCP's without flags (the burst pre-pass).
#[inline(always)]
pub(crate) fn fast_return<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    b: &mut B,
    total: usize,
    src: u32,
    checked: bool,
) -> Option<u16> {
    const GRE_AT: usize = ethernet::HEADER_LEN + 20;
    const INNER_AT: usize = GRE_AT + 8;
    let t = cx.tables;
    if (!checked && !t.is_member(src)) || total < 8 + 24 {
        return None;
    }
    let d = b.as_ref();
    let len = d.len();
    let f = d.first_chunk::<{ INNER_AT + 24 }>()?;
    // GRE without flags, WCCP protocol, a redirect header (the next nibble is not 4).
    if (!checked && f[GRE_AT..GRE_AT + 4] != [0, 0, 0x88, 0x3e]) || f[GRE_AT + 4] >> 4 == 4 {
        return None;
    }
    let inner = HeaderWords::read(f[INNER_AT..INNER_AT + 20].try_into().ok()?);
    let itotal = inner.total();
    let proto = inner.protocol();
    if inner.version_ihl() != 0x45
        || itotal < 24
        || itotal > ethernet::HEADER_LEN + total - INNER_AT
        || inner.fragment()
        || (proto != PROTOCOL_TCP && proto != PROTOCOL_UDP)
        || !inner.checksum_ok()
    {
        return None;
    }
    let idst = inner.dst();
    let key = control::ServiceKey {
        dynamic: f[GRE_AT + 4] & wire::RedirectFlags::DYNAMIC.0 != 0,
        id: f[GRE_AT + 5],
    };
    let route = t.lpm.lookup(idst)?;
    let eport = route.entry.port;
    let ep = route.egress.as_ref()?;
    // TCP flags, when the segment has a whole header: a cache's SYN-ACK may need a clamp.
    let flags = if proto == PROTOCOL_TCP {
        if itotal < 40 {
            return None;
        }
        *d.get(INNER_AT + 20 + 13)?
    } else {
        0
    };
    let mac = fast_next_hop(t, b, route, ep, idst, itotal, flags)?;
    // As `gre_return`: keep one Ethernet header in front of the inner packet.
    let tail = len - (INNER_AT + itotal);
    if (tail > 0 && !b.trim_back(tail)) || !b.trim_front(INNER_AT - ethernet::HEADER_LEN) {
        return None;
    }
    let h = b.as_mut().first_chunk_mut::<{ ethernet::HEADER_LEN }>()?;
    ethernet::write_header(h, mac, ep.mac, ETHERTYPE_IPV4);
    b.reset_offloads();
    cx.counters.count(Reason::ReturnedGre);
    if let Some(s) = t.service_by_key(key) {
        cx.counters.service(s.slot).returned.inc();
    }
    Some(eport)
}

/// A packet addressed to one of our addresses.
fn local<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    b: &mut B,
    l2len: usize,
    ip: &Ip,
    smac: [u8; 6],
) -> Action {
    match ip.proto {
        PROTOCOL_GRE if !ip.fragment => gre_return(cx, in_port, b, l2len, ip, smac),
        PROTOCOL_UDP if ip.fragment => Action::Punt,
        PROTOCOL_UDP => {
            let l4 = &b.as_ref()[l2len + ip.hl..l2len + ip.total];
            match l4::ports(l4, wire::Layer::Udp) {
                Ok((_, control::WCCP_PORT)) => Action::Punt,
                Ok(_) => Action::Drop(Reason::LocalUnhandled),
                Err(_) => Action::Drop(Reason::L4Truncated),
            }
        }
        PROTOCOL_ICMP if !ip.fragment => echo_reply(cx, in_port, b, l2len, ip, smac),
        _ => Action::Drop(Reason::LocalUnhandled),
    }
}

/// A cache hands a packet back (GRE to us): decapsulate and route the inner packet.
fn gre_return<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    b: &mut B,
    l2len: usize,
    ip: &Ip,
    smac: [u8; 6],
) -> Action {
    let t = cx.tables;
    if !t.is_member(u32::from(ip.src)) {
        return Action::Drop(Reason::GreNotFromCache);
    }
    let l3 = l2len + ip.hl;
    let payload = &b.as_ref()[l3..l2len + ip.total];
    let Ok(gre) = wire::GrePacket::new_checked(payload) else {
        return Action::Drop(Reason::GreMalformed);
    };
    if gre.flags_version() != 0 {
        return Action::Drop(Reason::GreMalformed);
    }
    let (inner_at, header) = match gre.protocol() {
        wire::gre::PROTOCOL_WCCP => match wire::decap_wccp(payload) {
            Ok(p) => {
                let header = match p {
                    wire::WccpPayload::Redirect { header, .. } => Some(header),
                    wire::WccpPayload::Ipv4(_) => None,
                };
                (payload.len() - p.inner().len(), header)
            }
            Err(_) => return Action::Drop(Reason::GreMalformed),
        },
        ETHERTYPE_IPV4 => (wire::gre::HEADER_LEN, None),
        _ => return Action::Drop(Reason::GreMalformed),
    };
    let off = l3 + inner_at;
    let inner = match Ip::read(&b.as_ref()[off..l2len + ip.total]) {
        Ok(i) => i,
        Err(_) => return Action::Drop(Reason::GreMalformed),
    };
    let slot = header.and_then(|h| {
        let key = control::ServiceKey {
            dynamic: h.flags.contains(wire::RedirectFlags::DYNAMIC),
            id: h.service_id,
        };
        t.service_by_key(key).map(|s| s.slot)
    });
    if !b.editable() {
        return Action::Drop(Reason::NotEditable);
    }
    // Keep one Ethernet header's worth of room in front of the inner packet; `forward`
    // rewrites it completely.
    let keep_from = off - ethernet::HEADER_LEN;
    let tail = b.as_ref().len() - (off + inner.total);
    if !b.trim_back(tail) || !b.trim_front(keep_from) {
        return Action::Drop(Reason::GreMalformed);
    }
    let a = forward(
        cx,
        in_port,
        b,
        ethernet::HEADER_LEN,
        &inner,
        smac,
        Mode::Returned,
    );
    // Counted per service only once the returned packet is really on its way.
    if let (Action::Tx(_), Some(slot)) = (a, slot) {
        cx.counters.service(slot).returned.inc();
    }
    a
}

/// The routing decision, redirection included, for a packet not addressed to us.
fn forward<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    b: &mut B,
    l2len: usize,
    ip: &Ip,
    smac: [u8; 6],
    mode: Mode,
) -> Action {
    let t = cx.tables;
    if mode == Mode::Transit && ip.ttl <= 1 {
        return icmp_error(cx, in_port, b, l2len, ip, smac, IcmpError::TimeExceeded);
    }
    let Some((eport, nh, via_mac)) = t.route_mac(ip.dst) else {
        return Action::Drop(Reason::NoRoute);
    };
    let inp = &t.ports[usize::from(in_port)];
    let Some(ep) = t.ports.get(usize::from(eport)) else {
        return Action::Drop(Reason::NoRoute);
    };
    let l2_return = t.l2_caches.binary_search(&(in_port, smac)).is_ok();
    let mut terminal = match mode {
        Mode::Returned => Reason::ReturnedGre,
        Mode::Transit if l2_return => Reason::ReturnedL2,
        Mode::Transit => Reason::Routed,
    };
    let ports = if ip.later_fragment {
        None
    } else {
        match ip.proto {
            PROTOCOL_TCP | PROTOCOL_UDP => {
                match l4::ports(
                    &b.as_ref()[l2len + ip.hl..l2len + ip.total],
                    wire::Layer::Tcp,
                ) {
                    Ok(p) => Some(p),
                    Err(_) => return Action::Drop(Reason::L4Truncated),
                }
            }
            _ => Some((0, 0)),
        }
    };
    if mode == Mode::Transit
        && !l2_return
        && redirect_applies(inp, ep)
        && !t.is_member(u32::from(ip.src))
    {
        if let Some((sport, dport)) = ports {
            match services(cx, ip, sport, dport) {
                Svc::Route => {}
                Svc::Unassigned => terminal = Reason::Unassigned,
                Svc::Drop(r) => return Action::Drop(r),
                Svc::Redirect {
                    slot,
                    enc,
                    target,
                    primary,
                    alt,
                    used_alt,
                } => {
                    return redirect(
                        cx, in_port, b, l2len, ip, smac, slot, enc, target, primary, alt, used_alt,
                    )
                }
            }
        }
    }
    if ip.total > usize::from(ep.mtu) {
        if !ip.df {
            return Action::Drop(Reason::MtuExceeded);
        }
        // The error goes back the way the packet came, except for a cache's returned packet:
        // that came from the cache, so the error is routed to the packet's source.
        let back = match mode {
            Mode::Transit => Some((in_port, smac)),
            Mode::Returned => t.resolve(ip.src).ok(),
        };
        return match back {
            Some((port, mac)) => {
                icmp_error(cx, port, b, l2len, ip, mac, IcmpError::FragNeeded(ep.mtu))
            }
            None => Action::Drop(Reason::FragNeeded),
        };
    }
    if !b.editable() {
        return Action::Drop(Reason::NotEditable);
    }
    if ip.proto == PROTOCOL_TCP && !ip.later_fragment {
        clamp_cache_synack(cx, b, l2len, ip, in_port, smac);
    }
    if !strip_to_l3(b, l2len, ip.total) {
        return Action::Drop(Reason::EthTruncated);
    }
    // A returned packet (GRE or L2) already lost its TTL when it was redirected: the cache
    // hands back the same hop.
    if mode == Mode::Transit && !l2_return {
        decrement_ttl(&mut b.as_mut()[ethernet::HEADER_LEN..]);
    }
    b.reset_offloads();
    // A static route's next hop was resolved when the tables were compiled.
    let neighbour = match via_mac {
        Some(mac) => Some(mac),
        None => t
            .neighbours
            .get(&u32::from(nh))
            .filter(|n| n.port == eport)
            .map(|n| n.mac),
    };
    let mac = match neighbour {
        Some(mac) => mac,
        None => {
            // Half-built: the control lcore fills the MAC once ARP answers (a zero destination
            // MAC marks a held frame; its port is the egress port).
            ethernet::write_header(b.as_mut(), [0; 6], ep.mac, ETHERTYPE_IPV4);
            b.set_port(eport);
            return Action::Punt;
        }
    };
    ethernet::write_header(b.as_mut(), mac, ep.mac, ETHERTYPE_IPV4);
    cx.counters.count(terminal);
    Action::Tx(eport)
}

/// Trims Ethernet padding after the IPv4 packet and makes the L2 header exactly 14 octets.
#[inline]
fn strip_to_l3<B: PacketBuf>(b: &mut B, l2len: usize, total: usize) -> bool {
    let tail = b.as_ref().len() - (l2len + total);
    b.trim_back(tail) && b.trim_front(l2len - ethernet::HEADER_LEN)
}

enum Svc<'t> {
    Route,
    Unassigned,
    Drop(Reason),
    Redirect {
        slot: usize,
        enc: &'t Encap,
        target: u8,
        primary: u8,
        alt: u8,
        used_alt: bool,
    },
}

/// Do the services apply to a packet arriving on `inp` and leaving through `ep`? Redirection
/// `in` on the arrival port, or `out` on the egress port unless the arrival port is
/// `exclude_in`. (The source must also not be a member cache, and the packet not a cache's L2
/// return.)
#[inline(always)]
pub fn redirect_applies(inp: &PortInfo, ep: &PortInfo) -> bool {
    inp.redirect_in || (ep.redirect_out && !inp.exclude_in)
}

/// Why [`decide`] went past a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passed {
    /// The service has no table (nothing published): it takes nothing.
    NoTable,
    /// Its definition (protocol, ports) does not match the packet.
    NoMatch,
    /// Its redirect list denies the packet.
    Denied,
}

/// What the services decide for a transit packet they apply to.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'t> {
    /// No service takes it: routed normally (none matched, or a redirect-list deny without
    /// `check_all_services`).
    Route,
    /// `service`'s table sends it to `target` (index into its table's targets; the target's
    /// [`Encap`] may still be unresolved).
    Redirect {
        /// The service.
        service: &'t ServiceEntry,
        /// Target index.
        target: u8,
        /// Primary bucket (hash; 0 under mask assignment).
        primary: u8,
        /// Alternate bucket.
        alt: u8,
        /// The alternate bucket chose the target.
        used_alt: bool,
    },
    /// `service` takes it but its table has no active cache for it: routed normally, or
    /// dropped when the table is closed.
    Unassigned {
        /// The service.
        service: &'t ServiceEntry,
    },
}

/// The services in priority order: protocol and ports, redirect list, table lookup. The one
/// decision of [`process`] (which counts `denied` through `passed`) and of `wccpd explain`
/// ([`crate::explain`], which records every service it went past). Pure.
#[inline(always)]
pub fn decide<'t>(
    t: &'t Tables,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    mut passed: impl FnMut(&'t ServiceEntry, Passed),
) -> Decision<'t> {
    for s in &t.services {
        let Some(table) = &s.table else {
            passed(s, Passed::NoTable);
            continue;
        };
        if !table.service().matches(proto, sport, dport) {
            passed(s, Passed::NoMatch);
            continue;
        }
        if !s.rules.is_empty()
            && !config::redirect_list_permits(&s.rules, proto, src, dst, sport, dport)
        {
            passed(s, Passed::Denied);
            if t.check_all {
                continue;
            }
            return Decision::Route;
        }
        let key = FlowKey::new(u32::from(src), u32::from(dst), sport, dport);
        return match lookup(s, table, &key) {
            Lookup::Redirect {
                target,
                primary,
                alt,
                used_alt,
            } => Decision::Redirect {
                service: s,
                target,
                primary,
                alt,
                used_alt,
            },
            Lookup::Forward => Decision::Unassigned { service: s },
        };
    }
    Decision::Route
}

/// Services in priority order ([`decide`]), counted.
#[inline]
fn services<'t>(cx: &Ctx<'t>, ip: &Ip, sport: u16, dport: u16) -> Svc<'t> {
    let decision = decide(
        cx.tables,
        ip.proto,
        ip.src,
        ip.dst,
        sport,
        dport,
        |s, why| {
            if why == Passed::Denied {
                cx.counters.service(s.slot).denied.inc();
            }
        },
    );
    match decision {
        Decision::Route => Svc::Route,
        Decision::Redirect {
            service: s,
            target,
            primary,
            alt,
            used_alt,
        } => match target_encap(s, target) {
            Some(enc) => Svc::Redirect {
                slot: s.slot,
                enc,
                target,
                primary,
                alt,
                used_alt,
            },
            None => {
                cx.counters.count(Reason::TargetUnresolved);
                unassigned(cx, s, s.table.as_ref().is_some_and(|t| t.closed()))
            }
        },
        Decision::Unassigned { service: s } => {
            unassigned(cx, s, s.table.as_ref().is_some_and(|t| t.closed()))
        }
    }
}

/// `table.lookup(key)`, through the service's precomputed bucket owners when it has them
/// (one array load instead of the table's general walk).
#[inline(always)]
fn lookup(s: &ServiceEntry, table: &assign::RedirectTable, key: &FlowKey) -> Lookup {
    lookup_flow(s, table, key.src, key.dst, key.sport, key.dport)
}

/// [`lookup`] of a flow given by its fields: the fast path builds a [`FlowKey`] only when the
/// table's own lookup needs one.
#[inline(always)]
fn lookup_flow(
    s: &ServiceEntry,
    table: &assign::RedirectTable,
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
) -> Lookup {
    let Some(fh) = &s.fast_hash else {
        return table.lookup(&FlowKey::new(src, dst, sport, dport));
    };
    let (primary, alt) = fh.hash.buckets(src, dst, sport, dport);
    match fh.owners[usize::from(primary)] {
        OWNER_FORWARD => Lookup::Forward,
        OWNER_LOOKUP => table.lookup(&FlowKey::new(src, dst, sport, dport)),
        target => Lookup::Redirect {
            target,
            primary,
            alt,
            used_alt: false,
        },
    }
}

/// The octets `at..at + 4` of `h` as a little-endian word (the byte order every header word
/// of the fast paths is read in).
#[inline(always)]
pub(crate) fn le_word<const N: usize>(h: &[u8; N], at: usize) -> u32 {
    u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

/// An option-less IPv4 header as five little-endian 32-bit words: one load each, the fields
/// taken out by shifts, and the header checksum summed from the same words. (Read octet by
/// octet, the compiler reassembles the checksum's words from the octets it already loaded,
/// which costs more than the sum.)
#[derive(Clone, Copy)]
pub(crate) struct HeaderWords(pub(crate) [u32; 5]);

impl HeaderWords {
    #[inline(always)]
    fn read(h: &[u8; 20]) -> HeaderWords {
        let w = |at| le_word(h, at);
        HeaderWords([w(0), w(4), w(8), w(12), w(16)])
    }

    /// Word `i` (octets `4i` to `4i + 3`).
    #[inline(always)]
    fn word(&self, i: usize) -> u32 {
        self.0[i % 5]
    }

    /// Version and IHL (octet 0).
    #[inline(always)]
    pub(crate) fn version_ihl(&self) -> u8 {
        self.0[0] as u8
    }

    /// Total length (octets 2-3).
    #[inline(always)]
    pub(crate) fn total(&self) -> usize {
        usize::from(((self.0[0] >> 16) as u16).swap_bytes())
    }

    /// MF or a fragment offset (octets 6-7): a fragment.
    #[inline(always)]
    pub(crate) fn fragment(&self) -> bool {
        ((self.0[1] >> 16) as u16).swap_bytes()
            & (wire::ipv4::FLAG_MF | wire::ipv4::FRAG_OFFSET_MASK)
            != 0
    }

    /// TTL (octet 8).
    #[inline(always)]
    pub(crate) fn ttl(&self) -> u8 {
        self.0[2] as u8
    }

    /// Protocol (octet 9).
    #[inline(always)]
    pub(crate) fn protocol(&self) -> u8 {
        (self.0[2] >> 8) as u8
    }

    /// Source address, host order (octets 12-15).
    #[inline(always)]
    fn src(&self) -> u32 {
        self.0[3].swap_bytes()
    }

    /// Destination address, host order (octets 16-19).
    #[inline(always)]
    fn dst(&self) -> u32 {
        self.0[4].swap_bytes()
    }

    /// Is the header checksum right? RFC 1071: the ones' complement sum of the header's ten
    /// 16-bit words is all ones. Each word's two halves are added in 32 bits, then folded
    /// twice with end-around carries: a ones' complement sum does not depend on byte order
    /// (RFC 1071 2(B); all ones reads the same both ways). Only 32-bit operations, so that the
    /// burst pre-pass (`lanes`) computes it for many headers at once with this same code.
    /// (Zero, the sum of an all-zero header, is not all ones.)
    #[inline(always)]
    pub(crate) fn checksum_ok(&self) -> bool {
        let half = |w: u32| (w & 0xffff) + (w >> 16);
        // At most 10 * 0xffff: after one fold at most 0xffff + 9, after two at most 0xffff.
        let s = self.0.iter().fold(0, |s, &w| s + half(w));
        let s = (s & 0xffff) + (s >> 16);
        let s = (s & 0xffff) + (s >> 16);
        s == 0xffff
    }
}

/// How target `target` of `s` is reached (`None`: unresolved or drained).
#[inline]
pub fn target_encap(s: &ServiceEntry, target: u8) -> Option<&Encap> {
    s.targets.get(usize::from(target)).and_then(Option::as_ref)
}

fn unassigned<'t>(cx: &Ctx<'t>, s: &ServiceEntry, closed: bool) -> Svc<'t> {
    let ctr = cx.counters.service(s.slot);
    ctr.unassigned.inc();
    if closed {
        ctr.closed_drop.inc();
        Svc::Drop(Reason::ClosedService)
    } else {
        Svc::Unassigned
    }
}

/// Sends the packet to its cache: a routed packet (TTL decremented) in GRE or by L2 rewrite.
#[allow(clippy::too_many_arguments)]
#[inline]
fn redirect<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    b: &mut B,
    l2len: usize,
    ip: &Ip,
    smac: [u8; 6],
    slot: usize,
    enc: &Encap,
    target: u8,
    primary: u8,
    alt: u8,
    used_alt: bool,
) -> Action {
    let max = enc.max_inner();
    if ip.total > usize::from(max) {
        return if ip.df {
            icmp_error(cx, in_port, b, l2len, ip, smac, IcmpError::FragNeeded(max))
        } else {
            Action::Drop(Reason::MtuExceeded)
        };
    }
    if !b.editable() {
        return Action::Drop(Reason::NotEditable);
    }
    // Only SYNs are clamped: look at the flags octet before building a TCP view.
    if ip.proto == PROTOCOL_TCP
        && !ip.later_fragment
        && b.as_ref()
            .get(l2len + ip.hl + 13)
            .is_some_and(|f| f & l4::TCP_SYN != 0 && f & l4::TCP_ACK == 0)
    {
        clamp(
            cx,
            b,
            l2len,
            ip,
            max.saturating_sub(crate::tables::TCP_IP_HEADERS),
            |f| f & l4::TCP_SYN != 0 && f & l4::TCP_ACK == 0,
        );
    }
    if !strip_to_l3(b, l2len, ip.total) {
        return Action::Drop(Reason::EthTruncated);
    }
    decrement_ttl(&mut b.as_mut()[ethernet::HEADER_LEN..]);
    let (port, reason) = match enc {
        Encap::Gre { port, header, .. } => {
            if !b.prepend(GRE_FRAME_HDR - ethernet::HEADER_LEN) {
                return Action::Drop(Reason::NoHeadroom);
            }
            let d = b.as_mut();
            d[..GRE_FRAME_HDR].copy_from_slice(header);
            let outer_total = (ip.total + wire::gre::WCCP_ENCAP_LEN) as u16;
            // The template's total length covers the outer header alone; add the rest to the
            // precomputed checksum incrementally.
            let tmpl_total = u16::from_be_bytes([d[OUTER_IP + 2], d[OUTER_IP + 3]]);
            let tmpl_csum = u16::from_be_bytes([d[OUTER_IP + 10], d[OUTER_IP + 11]]);
            let csum = checksum::update16(tmpl_csum, tmpl_total, outer_total);
            d[OUTER_IP + 2..OUTER_IP + 4].copy_from_slice(&outer_total.to_be_bytes());
            d[OUTER_IP + 10..OUTER_IP + 12].copy_from_slice(&csum.to_be_bytes());
            if used_alt {
                d[REDIRECT_HDR] |= wire::RedirectFlags::ALT_BUCKET_USED.0;
            }
            d[REDIRECT_HDR + 2] = alt;
            d[REDIRECT_HDR + 3] = primary;
            (*port, Reason::RedirectedGre)
        }
        Encap::L2 { port, mac, .. } => {
            let src = cx.tables.ports[usize::from(*port)].mac;
            ethernet::write_header(b.as_mut(), *mac, src, ETHERTYPE_IPV4);
            (*port, Reason::RedirectedL2)
        }
    };
    b.reset_offloads();
    let ctr = cx.counters.service(slot);
    ctr.redirected.inc();
    ctr.buckets[usize::from(if used_alt { alt } else { primary })].inc();
    let tc = &ctr.targets[usize::from(target) % crate::counters::MAX_TARGETS];
    tc.packets.inc();
    tc.bytes.add(ip.total as u64);
    cx.counters.count(reason);
    Action::Tx(port)
}

/// Lowers the MSS of a TCP segment whose flags satisfy `want` to `mss`.
#[inline]
fn clamp<B: PacketBuf>(
    cx: &Ctx<'_>,
    b: &mut B,
    l2len: usize,
    ip: &Ip,
    mss: u16,
    want: impl Fn(u8) -> bool,
) {
    let seg = &mut b.as_mut()[l2len + ip.hl..l2len + ip.total];
    if let Ok(mut tcp) = TcpPacket::new_checked(seg) {
        if want(tcp.flags()) && tcp.clamp_mss(mss) {
            cx.counters.count(Reason::MssClamped);
        }
    }
}

/// A SYN-ACK from a cache of a GRE service, answering a redirected SYN (its reversed tuple
/// matches the service): clamp its MSS so the client's segments fit the GRE tunnel.
///
/// An intercepting proxy answers from the origin server's address (docs/cache-host.md), so
/// "from a cache" is its address or the frame's source: a GRE target's next hop on the
/// arrival port.
fn clamp_cache_synack<B: PacketBuf>(
    cx: &Ctx<'_>,
    b: &mut B,
    l2len: usize,
    ip: &Ip,
    in_port: u16,
    smac: [u8; 6],
) {
    let seg = &b.as_ref()[l2len + ip.hl..l2len + ip.total];
    // Most segments are not SYN-ACKs: look at the flags before anything else.
    let synack = l4::TCP_SYN | l4::TCP_ACK;
    if seg.get(13).is_none_or(|f| f & synack != synack) {
        return;
    }
    let Ok((sport, dport)) = l4::ports(seg, wire::Layer::Tcp) else {
        return;
    };
    for s in &cx.tables.services {
        let (Some(table), Some(mss)) = (&s.table, s.gre_mss) else {
            continue;
        };
        let from_cache =
            table.is_member(u32::from(ip.src)) || s.gre_sources.contains(&(in_port, smac));
        if from_cache && table.service().matches(ip.proto, dport, sport) {
            clamp(cx, b, l2len, ip, mss, |f| {
                f & (l4::TCP_SYN | l4::TCP_ACK) == l4::TCP_SYN | l4::TCP_ACK
            });
            return;
        }
    }
}

#[derive(Clone, Copy)]
enum IcmpError {
    TimeExceeded,
    FragNeeded(u16),
}

/// Turns the frame into an ICMP error to its source, in place, and sends it out of `in_port`
/// to `smac`: the previous hop (the frame's source MAC on the arrival port), or for a cache's
/// returned packet the route back to the source. Rate-limited.
fn icmp_error<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    b: &mut B,
    l2len: usize,
    ip: &Ip,
    smac: [u8; 6],
    kind: IcmpError,
) -> Action {
    let (drop, sent, typ, code, mtu) = match kind {
        IcmpError::TimeExceeded => (
            Reason::TtlExpired,
            Reason::TimeExceededSent,
            l4::ICMP_TIME_EXCEEDED,
            0,
            0,
        ),
        IcmpError::FragNeeded(m) => (
            Reason::FragNeeded,
            Reason::FragNeededSent,
            l4::ICMP_DEST_UNREACHABLE,
            l4::ICMP_FRAG_NEEDED,
            m,
        ),
    };
    // Never about a later fragment, an unspecified or group source, or an ICMP error.
    if ip.later_fragment || ip.src.is_unspecified() || smac[0] & 1 != 0 {
        return Action::Drop(drop);
    }
    if ip.proto == PROTOCOL_ICMP {
        let t = b.as_ref().get(l2len + ip.hl).copied().unwrap_or(0xff);
        if t != l4::ICMP_ECHO_REQUEST && t != l4::ICMP_ECHO_REPLY {
            return Action::Drop(drop);
        }
    }
    if !b.editable() {
        return Action::Drop(drop);
    }
    if !cx.icmp.take(cx.now) {
        cx.counters.count(Reason::IcmpRateLimited);
        return Action::Drop(drop);
    }
    let Some(port) = cx.tables.ports.get(usize::from(in_port)) else {
        return Action::Drop(drop);
    };
    let quote_len = (ip.hl + 8).min(ip.total);
    let mut quote = [0u8; 60 + 8];
    quote[..quote_len].copy_from_slice(&b.as_ref()[l2len..l2len + quote_len]);
    let new_len = ethernet::HEADER_LEN + 20 + l4::ICMP_HEADER_LEN + quote_len;
    let cur = b.as_ref().len();
    let resized = if cur >= new_len {
        b.trim_back(cur - new_len)
    } else {
        b.prepend(new_len - cur)
    };
    if !resized {
        return Action::Drop(Reason::NoHeadroom);
    }
    let d = b.as_mut();
    ethernet::write_header(d, smac, port.mac, ETHERTYPE_IPV4);
    let repr = wire::Ipv4Repr {
        src: port.primary(),
        dst: ip.src,
        protocol: PROTOCOL_ICMP,
        ttl: 64,
        payload_len: (l4::ICMP_HEADER_LEN + quote_len) as u16,
    };
    repr.emit(&mut Ipv4Packet::new_unchecked(
        &mut d[ethernet::HEADER_LEN..],
    ));
    let icmp = &mut d[ethernet::HEADER_LEN + 20..];
    icmp[0] = typ;
    icmp[1] = code;
    icmp[4..6].copy_from_slice(&[0, 0]);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..8 + quote_len].copy_from_slice(&quote[..quote_len]);
    l4::fill_icmp_checksum(&mut icmp[..8 + quote_len]);
    b.reset_offloads();
    cx.counters.count(sent);
    Action::Tx(in_port)
}

/// Answers an ICMP echo request to one of our addresses in place.
fn echo_reply<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    b: &mut B,
    l2len: usize,
    ip: &Ip,
    smac: [u8; 6],
) -> Action {
    let l4 = l2len + ip.hl;
    let end = l2len + ip.total;
    let ok = l4::IcmpPacket::new_checked(&b.as_ref()[l4..end])
        .is_ok_and(|p| p.msg_type() == l4::ICMP_ECHO_REQUEST && p.verify_checksum());
    if !ok {
        return Action::Drop(Reason::LocalUnhandled);
    }
    if !b.editable() {
        return Action::Drop(Reason::NotEditable);
    }
    let Some(port) = cx.tables.ports.get(usize::from(in_port)) else {
        return Action::Drop(Reason::LocalUnhandled);
    };
    if !strip_to_l3(b, l2len, ip.total) {
        return Action::Drop(Reason::EthTruncated);
    }
    let d = b.as_mut();
    ethernet::write_header(d, smac, port.mac, ETHERTYPE_IPV4);
    let mut p = Ipv4Packet::new_unchecked(&mut d[ethernet::HEADER_LEN..]);
    let (src, dst) = (p.src(), p.dst());
    p.set_src(dst);
    p.set_dst(src);
    p.set_ttl(64);
    p.fill_checksum();
    let icmp = &mut p.payload_mut()[..];
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = l4::ICMP_ECHO_REPLY;
    let new = u16::from_be_bytes([icmp[0], icmp[1]]);
    let c = checksum::update16(u16::from_be_bytes([icmp[2], icmp[3]]), old, new);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    b.reset_offloads();
    cx.counters.count(Reason::EchoReply);
    Action::Tx(in_port)
}

/// Is `mac` the broadcast address?
pub fn is_broadcast(mac: [u8; 6]) -> bool {
    mac == BROADCAST
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `HeaderWords` reads the fields `Ip::read` reads and checks the checksum as
        /// `wire::checksum` does, on random headers and on the same headers with their
        /// checksum filled in (and then off by one bit).
        #[test]
        fn header_words_match_the_general_reader(mut h in any::<[u8; 20]>(), bit in 0u32..16) {
            h[0] = 0x45;
            for fill in [false, true] {
                if fill {
                    h[10..12].copy_from_slice(&[0, 0]);
                    let c = checksum::finish(checksum::sum(0, &h));
                    h[10..12].copy_from_slice(&c.to_be_bytes());
                }
                let w = HeaderWords::read(&h);
                let want = checksum::finish(checksum::sum(0, &h)) == 0;
                prop_assert_eq!(w.checksum_ok(), want);
                let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
                prop_assert_eq!(w.total(), total);
                let frag = u16::from_be_bytes([h[6], h[7]]);
                prop_assert_eq!(w.fragment(), frag & 0x3fff != 0);
                prop_assert_eq!((w.ttl(), w.protocol()), (h[8], h[9]));
                prop_assert_eq!(w.src(), u32::from_be_bytes([h[12], h[13], h[14], h[15]]));
                prop_assert_eq!(w.dst(), u32::from_be_bytes([h[16], h[17], h[18], h[19]]));
                if fill {
                    let mut bad = h;
                    bad[(bit / 8) as usize + 10] ^= 1 << (bit % 8);
                    prop_assert!(!HeaderWords::read(&bad).checksum_ok());
                }
            }
        }

        /// The TTL decrement's incremental checksum update gives a header that checks, with
        /// every other octet unchanged (TTL 1 to 255, any other content).
        #[test]
        fn ttl_decrement_keeps_the_checksum_valid(mut h in any::<[u8; 20]>(), ttl in 1u8..) {
            h[0] = 0x45;
            h[8] = ttl;
            h[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::finish(checksum::sum(0, &h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let mut d = h;
            decrement_ttl(&mut d);
            prop_assert_eq!(d[8], ttl - 1);
            prop_assert_eq!(checksum::finish(checksum::sum(0, &d)), 0, "{:02x?}", d);
            prop_assert_eq!((&d[..8], d[9], &d[12..]), (&h[..8], h[9], &h[12..]));
        }
    }
}
