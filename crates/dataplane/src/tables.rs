//! Everything a worker reads per packet, compiled by the control lcore into one immutable
//! [`Tables`] value and published through the RCU cell: ports, our addresses, the FIB (an LPM
//! trie), neighbours, and per service group the redirection table with one precomputed
//! encapsulation per target.
//!
//! A change of any input (a new assignment, a neighbour learnt or expired, a cache's router
//! address) compiles a whole new `Tables`; nothing is edited after publication.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use assign::service::Matcher;
use assign::RedirectTable;
use config::RedirectRule;
use control::ServiceKey;
use ipnet::Ipv4Net;
use prefix_trie::PrefixMap;
use rustc_hash::FxHashMap;
use wire::ethernet::{self, ETHERTYPE_IPV4};
use wire::gre::WCCP_ENCAP_LEN;

use crate::counters::MAX_SERVICES;

/// Octets in front of the inner IPv4 packet of a GRE-redirected frame: Ethernet 14 + outer IPv4
/// 20 + GRE 4 + redirect header 4.
pub const GRE_FRAME_HDR: usize = ethernet::HEADER_LEN + WCCP_ENCAP_LEN;
/// Offset of the outer IPv4 header in [`Encap::Gre`]'s template.
pub const OUTER_IP: usize = ethernet::HEADER_LEN;
/// Offset of the redirect header in the template.
pub const REDIRECT_HDR: usize = GRE_FRAME_HDR - 4;
/// IPv4 + TCP header octets subtracted from an MTU to get an MSS.
pub const TCP_IP_HEADERS: u16 = 40;

/// One data-plane port as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Configured name (for status and logs).
    pub name: String,
    /// The port's MAC address.
    pub mac: [u8; 6],
    /// Interface addresses with prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// IP MTU.
    pub mtu: u16,
    /// `ip wccp redirect in` on this port.
    pub redirect_in: bool,
    /// `ip wccp redirect out` on this port.
    pub redirect_out: bool,
    /// Packets arriving here are never redirected on egress elsewhere.
    pub exclude_in: bool,
}

impl PortInfo {
    /// The address ICMP errors leave from (the port's first address).
    pub fn primary(&self) -> Ipv4Addr {
        self.addrs.first().map_or(Ipv4Addr::UNSPECIFIED, |a| a.0)
    }
}

/// An egress port and a next hop.
pub type Hop = (u16, Ipv4Addr);

/// A FIB entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// Egress port index.
    pub port: u16,
    /// Next hop; `None` for a connected subnet (the destination itself is the next hop).
    pub via: Option<Ipv4Addr>,
}

/// A resolved neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourEntry {
    /// Its MAC address.
    pub mac: [u8; 6],
    /// The port it was learnt on.
    pub port: u16,
}

/// How a packet reaches one target cache, precomputed at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encap {
    /// GRE: the whole Ethernet + outer IPv4 + GRE + redirect-header prefix, with the outer
    /// total length 0 and the checksum computed for that (the worker adds the real length
    /// incrementally), and the redirect header's buckets 0.
    Gre {
        /// Egress port.
        port: u16,
        /// The frame prefix.
        header: [u8; GRE_FRAME_HDR],
        /// Egress MTU.
        mtu: u16,
        /// The outer header's checksum without its total length, for the incremental update
        /// (RFC 1624 eqn. 3): ~checksum + ~total length of the template, ones' complement,
        /// folded, over the template's octets in native byte order ([`gre_checksum`]).
        csum_base: u16,
    },
    /// L2 rewrite: destination MAC = the cache.
    L2 {
        /// Egress port (the cache's connected port).
        port: u16,
        /// The cache's MAC.
        mac: [u8; 6],
        /// Egress MTU.
        mtu: u16,
    },
}

impl Encap {
    /// The largest inner IPv4 packet this target can take.
    pub fn max_inner(&self) -> u16 {
        match self {
            Encap::Gre { mtu, .. } => mtu.saturating_sub(WCCP_ENCAP_LEN as u16),
            Encap::L2 { mtu, .. } => *mtu,
        }
    }
}

/// One service group, compiled.
#[derive(Clone, Debug)]
pub struct ServiceEntry {
    /// The group.
    pub key: ServiceKey,
    /// Counter slot (position in the configuration).
    pub slot: usize,
    /// The redirect list (empty: permit all).
    pub rules: Vec<RedirectRule>,
    /// The published table (`None`: nothing to redirect, route everything).
    pub table: Option<Arc<RedirectTable>>,
    /// Per target index of `table`: how to reach it, `None` while unresolved.
    pub targets: Vec<Option<Encap>>,
    /// The target's smallest GRE MSS, for clamping the SYN-ACKs caches send (GRE services).
    pub gre_mss: Option<u16>,
    /// (port, MAC) of every resolved GRE target's next hop (the cache itself when it is
    /// connected): frames from there are the caches' own, e.g. a proxy's SYN-ACK sent from the
    /// origin server's address.
    pub gre_sources: Vec<(u16, [u8; 6])>,
    /// A hash table's lookup, precomputed ([`FastHash::new`]); `None` for mask tables and
    /// services without a table.
    pub fast_hash: Option<Box<FastHash>>,
    /// The table's service definition compiled for matching packets
    /// (`ServiceDef::matcher`); `None` exactly when `table` is.
    pub matcher: Option<Matcher>,
    /// What the fast path needs to redirect this service's packets ([`FastService::new`]);
    /// `None` when it never can (no table, a mask table, a redirect list): the general path
    /// decides.
    pub fast: Option<Box<FastService>>,
}

/// A hash-table service's redirection, compiled for the fast path (`pipeline::fast`): the
/// hash masks, and per primary bucket the GRE target its packets go to, with everything the
/// rewrite needs in one place. Buckets whose packets need the general path (unassigned,
/// alternate-bucket, drained, unresolved or L2 owners) hold [`FastService::DECLINE`].
#[derive(Clone, Debug)]
pub struct FastService {
    /// The hash ([`BucketHash::buckets`]).
    pub hash: BucketHash,
    /// Per primary bucket: the index into `gre` of its owner, or [`FastService::DECLINE`].
    pub owners: [u8; 256],
    /// The GRE targets that own some bucket, then [`GreTarget::DECLINED`] up to index 255
    /// (so that `owners` indexes it without a bounds check; [`FastService::DECLINE`] finds a
    /// declined entry).
    pub gre: Box<[GreTarget; 256]>,
    /// The service's counter slot, below `MAX_SERVICES` (`LcoreCounters::service_below_max`).
    pub slot: u8,
}

/// A GRE target in [`FastService`]: [`Encap::Gre`] with the target's index (for its
/// counters) and its largest inner packet precomputed.
#[derive(Clone, Copy, Debug)]
pub struct GreTarget {
    /// The frame prefix ([`Encap::Gre`]).
    pub header: [u8; GRE_FRAME_HDR],
    /// Octets 16-23 and 24-31 of `header` (`u64::from_le_bytes`) with the outer IPv4 total
    /// length (16-17) and checksum (24-25) zeroed, for the fast path to fill them in with one
    /// store per word ([`GreTarget::middle`]).
    pub middle: [u64; 2],
    /// Egress port.
    pub port: u16,
    /// The largest inner IPv4 packet (egress MTU minus the GRE encapsulation).
    pub max_inner: u16,
    /// See [`Encap::Gre`].
    pub csum_base: u16,
    /// The target's index in the table (the per-target counters' index).
    pub target: u8,
}

impl GreTarget {
    /// No target: its largest inner packet is 0 octets, so the fast path declines every
    /// packet.
    pub const DECLINED: GreTarget = GreTarget {
        header: [0; GRE_FRAME_HDR],
        middle: [0; 2],
        port: 0,
        max_inner: 0,
        csum_base: 0,
        target: 0,
    };
}

impl GreTarget {
    /// [`GreTarget::middle`] of `header`.
    pub fn middle(header: &[u8; GRE_FRAME_HDR]) -> [u64; 2] {
        let word = |at: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(w) & !0xffff
        };
        [word(OUTER_IP + 2), word(OUTER_IP + 10)]
    }
}

impl FastService {
    /// In [`FastService::owners`]: the general path decides. Always a
    /// [`GreTarget::DECLINED`] entry of `gre`, which holds at most `MAX_TARGETS` (128)
    /// targets.
    pub const DECLINE: u8 = 0xFF;

    /// For `s`'s table when every packet of a bucket owned by a resolved GRE target can take
    /// the fast path: a hash table, and no redirect list.
    pub fn new(s: &ServiceEntry) -> Option<Box<FastService>> {
        if !s.rules.is_empty() {
            return None;
        }
        // Only a hash table has one.
        let fast_hash = s.fast_hash.as_deref()?;
        let mut gre = Box::new([GreTarget::DECLINED; 256]);
        let mut used = 0;
        // Per target index: its place in `gre`, made on first use.
        let mut index: Vec<Option<u8>> = vec![None; s.targets.len()];
        let mut owners = [Self::DECLINE; 256];
        for (o, &t) in owners.iter_mut().zip(fast_hash.owners.iter()) {
            let ti = usize::from(t);
            let Some(Some(Encap::Gre {
                port,
                header,
                mtu,
                csum_base,
            })) = s.targets.get(ti)
            else {
                continue; // OWNER_FORWARD, OWNER_LOOKUP, unresolved or L2.
            };
            *o = match index[ti] {
                Some(i) => i,
                None => {
                    let i = u8::try_from(used).ok().filter(|&i| i < Self::DECLINE)?;
                    used += 1;
                    gre[usize::from(i)] = GreTarget {
                        header: *header,
                        middle: GreTarget::middle(header),
                        port: *port,
                        max_inner: mtu.saturating_sub(WCCP_ENCAP_LEN as u16),
                        csum_base: *csum_base,
                        target: u8::try_from(ti).ok()?,
                    };
                    index[ti] = Some(i);
                    i
                }
            };
        }
        Some(Box::new(FastService {
            hash: fast_hash.hash,
            owners,
            gre,
            // `LcoreCounters::service`'s clamp, done here.
            slot: u8::try_from(s.slot.min(MAX_SERVICES - 1)).ok()?,
        }))
    }
}

/// A hash table's per-packet lookup, precomputed: the bucket owners ([`bucket_owners`]) and
/// the hash ([`BucketHash`]).
#[derive(Clone, Debug)]
pub struct FastHash {
    /// See [`bucket_owners`].
    pub owners: [u8; 256],
    /// The service's two hashes.
    pub hash: BucketHash,
}

impl FastHash {
    /// For a hash table; `None` for other distributions.
    pub fn new(table: &RedirectTable) -> Option<Box<FastHash>> {
        let owners = bucket_owners(table)?;
        Some(Box::new(FastHash {
            owners: *owners,
            hash: BucketHash::new(table.service().flags),
        }))
    }
}

/// A service's primary and alternate hash fields as AND masks over (source, destination,
/// source port, destination port), so that both buckets are a few ANDs, XORs and one fold
/// (`assign::hash::primary_bucket` decodes the flags on every call).
#[derive(Clone, Copy, Debug)]
pub struct BucketHash {
    /// Per field, the primary hash's mask in the low 32 bits and the alternate hash's in the
    /// high 32: both keys are computed at once in one 64-bit word ([`BucketHash::buckets`]).
    pub masks: [u64; 4],
    /// Either hash uses a port: without, the two port terms are skipped (web-cache hashes
    /// the addresses only).
    pub ports: bool,
}

impl BucketHash {
    /// The hashes selected by the service flags `f`.
    pub fn new(f: u32) -> BucketHash {
        let masks = |sel: u32| -> [u32; 4] {
            let m = |bit: u32, ones: u32| if sel & (1 << bit) != 0 { ones } else { 0 };
            [m(0, u32::MAX), m(1, u32::MAX), m(2, 0xffff), m(3, 0xffff)]
        };
        let (primary, alt) = (masks(f & 0xf), masks((f >> 8) & 0xf));
        let masks: [u64; 4] =
            std::array::from_fn(|i| u64::from(primary[i]) | u64::from(alt[i]) << 32);
        BucketHash {
            masks,
            ports: masks[2] | masks[3] != 0,
        }
    }

    /// The masks for keys read straight from the frame, for the burst pre-pass (`lanes`):
    /// `[primary, alternate]`, each over (source address, destination address, the ports
    /// word), every word as `u32::from_le_bytes` of its octets on the wire (the source port's
    /// in the low 16 bits of the ports word). A bucket is the XOR of its key's four octets
    /// (`assign::hash::fold`), which does not depend on the order of the octets, so keys in
    /// wire order give the same buckets as [`BucketHash::buckets`].
    pub fn wire_masks(&self) -> [[u32; 3]; 2] {
        let m = &self.masks;
        let half = |shift: u32| {
            let p = |w: u64| ((w >> shift) & 0xffff) as u32;
            [
                (m[0] >> shift) as u32,
                (m[1] >> shift) as u32,
                p(m[2]) | p(m[3]) << 16,
            ]
        };
        [half(0), half(32)]
    }

    /// The primary and alternate buckets of a flow, as `assign::hash` computes them. Each
    /// field is copied into both halves of a 64-bit word (a multiplication by 2^32 + 1) and
    /// masked, so the low half holds the primary key and the high half the alternate one;
    /// the fold (`assign::hash::fold`: XOR with the key shifted right by 16, then by 8) keeps
    /// its low eight bits free of the high half, and bits 32-39 free of anything beyond the
    /// word, so one fold gives both buckets.
    #[inline(always)]
    pub fn buckets(&self, src: u32, dst: u32, sport: u16, dport: u16) -> (u8, u8) {
        const BOTH: u64 = (1 << 32) | 1;
        let m = &self.masks;
        let mut k = ((u64::from(src) * BOTH) & m[0]) ^ ((u64::from(dst) * BOTH) & m[1]);
        if self.ports {
            k ^= ((u64::from(sport) * BOTH) & m[2]) ^ ((u64::from(dport) * BOTH) & m[3]);
        }
        let h = k ^ (k >> 16);
        let h = h ^ (h >> 8);
        (h as u8, (h >> 32) as u8)
    }
}

/// The outer IPv4 checksum of a GRE frame of outer total length `outer_total`, from its
/// target's `csum_base` ([`Encap::Gre`]), in native byte order: `checksum::update16` of the
/// template's checksum from its total length to the real one, without byte swaps (a ones'
/// complement sum does not depend on byte order, RFC 1071 2(B)). The base is at most 0xffff,
/// so one end-around carry suffices.
#[inline(always)]
pub fn gre_checksum(csum_base: u16, outer_total: u16) -> u16 {
    let s = u32::from(csum_base) + u32::from(u16::from_ne_bytes(outer_total.to_be_bytes()));
    !(((s & 0xffff) + (s >> 16)) as u16)
}

/// In [`FastHash::owners`]: the bucket's packets are forwarded (unassigned bucket, or a
/// drained or unknown target).
pub const OWNER_FORWARD: u8 = 0xFE;
/// In [`FastHash::owners`]: the bucket uses its alternate bucket; ask
/// `RedirectTable::lookup`.
pub const OWNER_LOOKUP: u8 = 0xFF;

/// Per primary bucket of a hash table: the target `RedirectTable::lookup` gives when the
/// bucket is not flagged "alternate" (`Lookup::Redirect { target, used_alt: false }`),
/// [`OWNER_FORWARD`] when it gives `Lookup::Forward`, [`OWNER_LOOKUP`] when the answer depends
/// on the alternate bucket. `None` for other distributions.
pub fn bucket_owners(table: &RedirectTable) -> Option<Box<[u8; 256]>> {
    let assign::table::Distribution::Hash { buckets } = table.distribution() else {
        return None;
    };
    let mut owners = Box::new([OWNER_FORWARD; 256]);
    for (o, e) in owners.iter_mut().zip(buckets.iter()) {
        *o = if e.alt() {
            OWNER_LOOKUP
        } else {
            match e.target() {
                Some(t)
                    if t < OWNER_FORWARD
                        && table
                            .targets()
                            .get(usize::from(t))
                            .is_some_and(|x| !x.drained) =>
                {
                    t
                }
                _ => OWNER_FORWARD,
            }
        };
    }
    Some(owners)
}

/// Everything a worker reads per packet. Immutable once published.
#[derive(Debug)]
pub struct Tables {
    /// Publication counter.
    pub generation: u64,
    /// Ports by index.
    pub ports: Vec<PortInfo>,
    /// Our addresses (host order, sorted).
    pub local: Vec<u32>,
    /// The broadcast addresses of connected subnets of /30 and shorter (host order, sorted):
    /// directed broadcasts are not forwarded (RFC 2644).
    pub broadcasts: Vec<u32>,
    /// Longest-prefix-match routes: connected subnets and static routes.
    pub fib: PrefixMap<Ipv4Net, RouteEntry>,
    /// Resolved neighbours (host-order address).
    pub neighbours: FxHashMap<u32, NeighbourEntry>,
    /// Service groups in priority order (highest first).
    pub services: Vec<ServiceEntry>,
    /// The FIB compiled for the per-packet lookup ([`Tables::route`]).
    pub lpm: Lpm,
    /// `local`, `broadcasts` and `members` compiled for the per-packet membership test
    /// ([`AddrSet`]).
    pub sets: [AddrSet; 3],
    /// The first octets of every destination that is a group address (224-239), the limited
    /// broadcast (255), one of ours (`local`) or a directed broadcast (`broadcasts`), as a
    /// filter over `dst >> 24` ([`Tables::dst_may_be_special`]). Transit traffic to other
    /// destinations skips those four checks with one test.
    pub dst_special: AddrFilter,
    /// Every target of every service's table and every cache the tables count as members
    /// without buckets (host order, sorted): [`Tables::is_member`]. Their packets are never
    /// redirected, and only they may return GRE.
    pub members: Vec<u32>,
    /// (port, MAC) of every L2 target: frames from them are L2 returns.
    pub l2_caches: Vec<(u16, [u8; 6])>,
    /// IOS `ip wccp check services all`: a redirect-list deny falls through to the next service.
    pub check_all: bool,
    /// The service the burst pre-pass (`lanes`) decides packets for, when the tables allow it
    /// ([`LaneService::of`]); `None`: the worker skips the pre-pass.
    pub lane: Option<LaneService>,
}

/// What the burst pre-pass (`lanes::Lanes`) needs of the tables: they have exactly one service
/// with a table, its definition is one protocol and one destination port
/// ([`Matcher::single`]), it has a fast form ([`FastService`]), and there are no L2 targets.
/// Then a packet that matches the protocol and port is that service's, and any other is
/// routed: the per-packet loop over services is one comparison, done for a whole burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneService {
    /// The service's position in [`Tables::services`].
    pub index: usize,
    /// Its protocol.
    pub protocol: u8,
    /// Its destination port.
    pub port: u16,
    /// Its hash masks for keys read from the frame ([`BucketHash::wire_masks`]).
    pub hash: [[u32; 3]; 2],
    /// Sources the pre-pass leaves to the usual path, which decides whether their packets
    /// are redirected ([`Tables::is_member`]): those equal to one of `members` (addresses as
    /// read from the frame, `u32::from_le_bytes` of their octets) or whose last octet is in
    /// `member_filter`. With at most [`AddrSet::FEW`] member caches, `members`
    /// holds them all (padded with copies) and the filter is empty, so the test is exact;
    /// with more, the filter is the members' last-octet filter.
    pub members: [u32; AddrSet::FEW],
    /// `members` holds every member cache and nothing else: there are one to
    /// [`AddrSet::FEW`] (an empty set's padding is zeros, not a member).
    pub members_exact: bool,
    /// See [`LaneService::members`].
    pub member_filter: AddrFilter,
    /// Our addresses (as read from the frame), for the pre-pass to find the caches' GRE
    /// returns: all of them, padded with copies, when there are one to [`AddrSet::FEW`] and
    /// none is also a group, broadcast or directed broadcast address (which the usual path
    /// tests first); `None` otherwise, and every return takes the usual path.
    pub locals: Option<[u32; AddrSet::FEW]>,
    /// Per first octet of the destination, the network and mask within which a destination
    /// is routed by [`Lpm::first_hit`] and is no special destination: [`Lpm::first`], or a
    /// network outside its mask for the octets [`Tables::dst_special`] holds; both as read
    /// from the frame (`u32::from_le_bytes` of their octets, like the destination word the
    /// pre-pass tests against them). The pre-pass's one table lookup for both tests.
    pub first: [(u32, u32); 256],
}

impl LaneService {
    /// The lane service of `t`, if the tables allow one (see [`LaneService`]).
    pub fn of(t: &Tables) -> Option<LaneService> {
        if !t.l2_caches.is_empty() {
            return None;
        }
        let mut with_table = t
            .services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.matcher.is_some());
        let (index, s) = with_table.next()?;
        if with_table.next().is_some() || s.fast.is_none() {
            return None;
        }
        let (protocol, port) = s.matcher.as_ref()?.single()?;
        Some(LaneService {
            index,
            protocol,
            port,
            hash: s.fast.as_ref()?.hash.wire_masks(),
            // Exact with few members (the filter then passes everything); with many, the
            // filter, and the limited broadcast (never a source we redirect) for `members`.
            members: t.sets[2]
                .few()
                .map_or([u32::MAX; AddrSet::FEW], |m| m.map(u32::swap_bytes)),
            members_exact: t.sets[2].few().is_some_and(|m| t.sets[2].contains(m[0])),
            member_filter: match t.sets[2].few() {
                Some(_) => AddrFilter::default(),
                None => t.sets[2].filter(),
            },
            // An empty set's `few` holds zeros, which it does not contain.
            locals: t.sets[0]
                .few()
                .filter(|l| t.sets[0].contains(l[0]))
                .filter(|l| {
                    l.iter()
                        .all(|&a| a >> 28 != 0xe && a != u32::MAX && !t.is_directed_broadcast(a))
                })
                .map(|l| l.map(u32::swap_bytes)),
            first: std::array::from_fn(|o| {
                let (net, mask) = if t.dst_special.has_octet(o as u32) {
                    (Octet::EMPTY.net, Octet::EMPTY.mask)
                } else {
                    t.lpm.first(o as u8)
                };
                (net.swap_bytes(), mask.swap_bytes())
            }),
        })
    }
}

impl Tables {
    /// `false`: `dst` (host order) is certainly not a group, broadcast, directed broadcast or
    /// local address (see [`Tables::dst_special`]).
    #[inline(always)]
    pub fn dst_may_be_special(&self, dst: u32) -> bool {
        self.dst_special.may_contain(dst >> 24)
    }

    /// Is `ip` (host order) one of ours?
    #[inline(always)]
    pub fn is_local(&self, ip: u32) -> bool {
        self.sets[0].contains(ip)
    }

    /// Is `ip` (host order) the broadcast address of a connected subnet?
    #[inline(always)]
    pub fn is_directed_broadcast(&self, ip: u32) -> bool {
        self.sets[1].contains(ip)
    }

    /// Is `ip` (host order) a current member cache of some service: a target of its table
    /// (drained or not), or a cache the router counts in the group without buckets
    /// (`RedirectTable::is_member`)?
    #[inline(always)]
    pub fn is_member(&self, ip: u32) -> bool {
        // `compile` merged the tables' own member lists into `members`.
        self.sets[2].contains(ip)
    }

    /// The route to `dst`: egress port and next hop.
    #[inline]
    pub fn route(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr)> {
        let e = self.lpm.lookup(u32::from(dst))?.entry;
        Some((e.port, e.via.unwrap_or(dst)))
    }

    /// The route to `dst` and its next hop's MAC when that is known without a neighbour
    /// lookup (a static route's resolved next hop); otherwise look the next hop up in
    /// `neighbours`.
    #[inline]
    pub fn route_mac(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr, Option<[u8; 6]>)> {
        let h = self.lpm.lookup(u32::from(dst))?;
        Some((h.entry.port, h.entry.via.unwrap_or(dst), h.via_mac))
    }

    /// The route and the resolved MAC of its next hop.
    #[inline]
    pub fn resolve(&self, dst: Ipv4Addr) -> Result<(u16, [u8; 6]), Option<Hop>> {
        let Some((port, nh)) = self.route(dst) else {
            return Err(None);
        };
        match self.neighbours.get(&u32::from(nh)) {
            Some(n) if n.port == port => Ok((port, n.mac)),
            _ => Err(Some((port, nh))),
        }
    }

    /// The service group `key`.
    #[inline]
    pub fn service_by_key(&self, key: ServiceKey) -> Option<&ServiceEntry> {
        self.services.iter().find(|s| s.key == key)
    }
}

/// The FIB compiled for the per-packet longest-prefix match: the prefixes longest first,
/// scanned linearly while there are few (a router in front of caches has a handful of
/// connected subnets and static routes), otherwise one hash probe per prefix length present,
/// longest first. Each route carries its next hop's MAC when the neighbour table resolves it
/// on the route's port at compile time (static routes), so a routed packet needs no
/// neighbour lookup. `prefix-trie`'s `get_lpm` took about 50 ns per packet; this a few.
#[derive(Clone, Debug)]
pub struct Lpm {
    /// With at most [`Lpm::LINEAR_MAX`] prefixes: per first octet of the destination, its
    /// candidate prefixes (a DIR-8 table: one load finds the few that can match).
    octets: Box<[Octet; 256]>,
    /// The candidates after each octet's first, longest first: (network, mask, route).
    scan: Vec<(u32, u32, RouteHit)>,
    /// (network, mask), host order, longest prefix first (equal lengths cannot overlap).
    prefixes: Vec<(u32, u32)>,
    /// Their routes, in the same order.
    hits: Vec<RouteHit>,
    /// With more than [`Lpm::LINEAR_MAX`] prefixes: per prefix length present, longest first,
    /// its mask and its networks (index into `hits`).
    by_len: Vec<(u32, FxHashMap<u32, u32>)>,
}

/// One first octet's candidates in [`Lpm`]: the longest inline (for most octets the only
/// one), the others in `Lpm::scan`.
#[derive(Clone, Copy, Debug)]
struct Octet {
    /// The first candidate's network.
    net: u32,
    /// Its mask.
    mask: u32,
    /// Its route (a copy of its entry in `Lpm::hits`: one load less per packet).
    hit: RouteHit,
    /// The range of `Lpm::scan` holding the others.
    rest: (u16, u16),
}

impl Octet {
    /// No candidate: a network outside its own mask matches nothing.
    const EMPTY: Octet = Octet {
        net: 1,
        mask: 0,
        hit: RouteHit {
            entry: RouteEntry { port: 0, via: None },
            via_mac: None,
            egress: None,
        },
        rest: (0, 0),
    };
}

/// A route as [`Lpm::lookup`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteHit {
    /// The FIB entry.
    pub entry: RouteEntry,
    /// The MAC of `entry.via` when it is a neighbour on `entry.port` (static routes whose
    /// next hop is resolved); `None` for connected routes and unresolved next hops.
    pub via_mac: Option<[u8; 6]>,
    /// What the fast path needs of the egress port `entry.port`, copied from its
    /// [`PortInfo`]; `None` when there is no such port (the packet path then drops).
    pub egress: Option<Egress>,
}

/// The egress port's fields the fast path reads, in its route ([`RouteHit::egress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Egress {
    /// [`PortInfo::mac`].
    pub mac: [u8; 6],
    /// [`PortInfo::mtu`].
    pub mtu: u16,
    /// [`PortInfo::redirect_out`].
    pub redirect_out: bool,
}

impl Default for Lpm {
    fn default() -> Lpm {
        Lpm {
            octets: Box::new([Octet::EMPTY; 256]),
            scan: Vec::new(),
            prefixes: Vec::new(),
            hits: Vec::new(),
            by_len: Vec::new(),
        }
    }
}

impl Lpm {
    /// Prefixes up to which the lookup is a linear scan.
    pub const LINEAR_MAX: usize = 16;

    /// The lookup is the DIR-8 table (at most [`Lpm::LINEAR_MAX`] prefixes): then
    /// [`Lpm::first`] and [`Lpm::first_hit`] hold each first octet's longest candidate.
    #[inline(always)]
    pub fn is_dir8(&self) -> bool {
        self.by_len.is_empty()
    }

    /// A network and mask for destinations whose first octet is `o`, for the burst pre-pass
    /// (its table, [`LaneService::first`]): a destination outside it needs [`Lpm::lookup`]. With [`Lpm::is_dir8`] it is
    /// the longest candidate prefix when its route has an egress port (a network outside its
    /// mask otherwise), and a destination within it is routed by [`Lpm::first_hit`]`(o)`,
    /// exactly as `lookup` routes it, to a port that exists; otherwise every destination is
    /// within it and `lookup` decides.
    #[inline(always)]
    pub fn first(&self, o: u8) -> (u32, u32) {
        let e = &self.octets[usize::from(o)];
        match (self.is_dir8(), e.hit.egress) {
            (false, _) => (0, 0),
            (true, Some(_)) => (e.net, e.mask),
            (true, None) => (Octet::EMPTY.net, Octet::EMPTY.mask),
        }
    }

    /// The route of [`Lpm::first`]`(o)`.
    #[inline(always)]
    pub fn first_hit(&self, o: u8) -> &RouteHit {
        &self.octets[usize::from(o)].hit
    }

    /// Compiles `fib`, resolving static next hops in `neighbours` and copying the egress
    /// ports' fields from `ports`.
    pub fn build(
        fib: &PrefixMap<Ipv4Net, RouteEntry>,
        neighbours: &FxHashMap<u32, NeighbourEntry>,
        ports: &[PortInfo],
    ) -> Lpm {
        let mut all: Vec<(u8, u32, u32, RouteEntry)> = fib
            .iter()
            .map(|(net, e)| {
                let mask = u32::from(net.netmask());
                (net.prefix_len(), u32::from(net.network()) & mask, mask, *e)
            })
            .collect();
        all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut lpm = Lpm::default();
        let mut last_len = None;
        for (i, (len, net, mask, entry)) in all.iter().copied().enumerate() {
            let via_mac = entry.via.and_then(|v| {
                neighbours
                    .get(&u32::from(v))
                    .filter(|n| n.port == entry.port)
                    .map(|n| n.mac)
            });
            let egress = ports.get(usize::from(entry.port)).map(|p| Egress {
                mac: p.mac,
                mtu: p.mtu,
                redirect_out: p.redirect_out,
            });
            lpm.prefixes.push((net, mask));
            lpm.hits.push(RouteHit {
                entry,
                via_mac,
                egress,
            });
            if all.len() > Self::LINEAR_MAX {
                if last_len != Some(len) {
                    lpm.by_len.push((mask, FxHashMap::default()));
                    last_len = Some(len);
                }
                if let Some((_, m)) = lpm.by_len.last_mut() {
                    m.insert(net, i as u32);
                }
            }
        }
        if lpm.by_len.is_empty() {
            // At most LINEAR_MAX prefixes, so at most 256 * 16 entries: u16 indices.
            for (o, entry) in (0u32..).zip(lpm.octets.iter_mut()) {
                let start = lpm.scan.len() as u16;
                let mut first = None;
                for (&(net, mask), hit) in lpm.prefixes.iter().zip(&lpm.hits) {
                    // The prefix contains some address whose first octet is `o`.
                    if (o << 24) & mask & 0xff00_0000 != net & 0xff00_0000 {
                        continue;
                    }
                    if first.is_none() {
                        first = Some((net, mask, *hit));
                    } else {
                        lpm.scan.push((net, mask, *hit));
                    }
                }
                let (net, mask, hit) =
                    first.unwrap_or((Octet::EMPTY.net, Octet::EMPTY.mask, Octet::EMPTY.hit));
                *entry = Octet {
                    net,
                    mask,
                    hit,
                    rest: (start, lpm.scan.len() as u16),
                };
            }
        }
        // With more prefixes, `lookup` does not read `octets`, and `first` lets every
        // destination through.
        lpm
    }

    /// The route of the longest prefix containing `dst` (host order).
    #[inline(always)]
    pub fn lookup(&self, dst: u32) -> Option<&RouteHit> {
        if self.by_len.is_empty() {
            let o = &self.octets[(dst >> 24) as usize];
            if dst & o.mask == o.net {
                return Some(&o.hit);
            }
            for i in usize::from(o.rest.0)..usize::from(o.rest.1) {
                let (net, mask, hit) = self.scan.get(i)?;
                if dst & mask == *net {
                    return Some(hit);
                }
            }
            return None;
        }
        self.by_len
            .iter()
            .find_map(|(mask, nets)| nets.get(&(dst & mask)))
            .and_then(|i| self.hits.get(*i as usize))
    }
}

/// A 256-bit set of last octets: a one-load pre-check before searching a set of addresses
/// (most packets' addresses are in none of the router's small sets). Eight 32-bit words, so
/// that the burst pre-pass (`lanes`) tests it for many frames at once with the same code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrFilter([u32; 8]);

impl AddrFilter {
    /// The filter of `set`.
    pub fn of(set: &[u32]) -> AddrFilter {
        let mut f = AddrFilter::default();
        for a in set {
            let o = (a & 0xff) as usize;
            f.0[o >> 5] |= 1 << (o & 31);
        }
        f
    }

    /// `false`: `ip` is certainly not in the set.
    #[inline(always)]
    pub fn may_contain(&self, ip: u32) -> bool {
        self.has_octet(ip & 0xff)
    }

    /// Is octet `o` (at most 255) in the filter?
    #[inline(always)]
    pub fn has_octet(&self, o: u32) -> bool {
        let o = o & 0xff;
        (self.0[(o >> 5) as usize] >> (o & 31)) & 1 != 0
    }
}

/// A set of addresses (host order) compiled for the per-packet membership test: the
/// last-octet [`AddrFilter`] first (most packets' addresses are in none of the router's small
/// sets), then up to [`AddrSet::FEW`] members compared all at once, or a binary search of more.
#[derive(Clone, Debug, Default)]
pub struct AddrSet {
    filter: AddrFilter,
    /// Up to `FEW` members, padded with copies of the first (a copy changes no answer), so
    /// that the test is one fixed-length comparison without a loop or a call.
    few: [u32; AddrSet::FEW],
    /// With more than `FEW` members: all of them, sorted.
    many: Vec<u32>,
}

impl AddrSet {
    /// Members tested without a search.
    pub const FEW: usize = 8;

    /// The last-octet filter: `false` from it means not in the set.
    pub fn filter(&self) -> AddrFilter {
        self.filter
    }

    /// With at most [`AddrSet::FEW`] members: all of them, padded with copies of the first
    /// (zeros for an empty set, whose filter is empty), for a comparison without a search.
    pub fn few(&self) -> Option<[u32; AddrSet::FEW]> {
        self.many.is_empty().then_some(self.few)
    }

    /// The set of `sorted` (ascending).
    pub fn of(sorted: &[u32]) -> AddrSet {
        let mut few = [sorted.first().copied().unwrap_or(0); AddrSet::FEW];
        let many = if sorted.len() <= AddrSet::FEW {
            few[..sorted.len()].copy_from_slice(sorted);
            Vec::new()
        } else {
            sorted.to_vec()
        };
        AddrSet {
            filter: AddrFilter::of(sorted),
            few,
            many,
        }
    }

    /// Is `ip` in the set?
    #[inline(always)]
    pub fn contains(&self, ip: u32) -> bool {
        // An empty set's filter is empty: `few` is never consulted for it.
        if !self.filter.may_contain(ip) {
            return false;
        }
        if self.many.is_empty() {
            // No early exit: the compiler compares the eight slots as two vectors.
            self.few.iter().fold(false, |m, &a| m | (a == ip))
        } else {
            self.many.binary_search(&ip).is_ok()
        }
    }
}

/// The static part of the configuration the tables are compiled from.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Ports with their MACs.
    pub ports: Vec<PortInfo>,
    /// Static routes.
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
    /// Static neighbours.
    pub neighbours: Vec<(Ipv4Addr, [u8; 6])>,
    /// Configured services in configuration order (the slot is the position), with their
    /// redirect lists.
    pub services: Vec<(ServiceKey, Vec<RedirectRule>)>,
    /// `check_all_services`.
    pub check_all: bool,
    /// The router ID (GRE source for caches whose HERE_I_AM destination is not known yet).
    pub router_id: Ipv4Addr,
    /// Configured tables (`static_assignment`), used while no cache-provided assignment is
    /// published for the service.
    pub statics: BTreeMap<ServiceKey, Arc<RedirectTable>>,
}

/// The service definition of a configured router service: the well-known one for a standard
/// service, the configured one for a dynamic service, `None` for a dynamic service learnt from
/// its first cache.
///
/// # Errors
/// The definition is invalid (e.g. ports without a protocol that has them).
pub fn service_def(
    s: &config::RouterService,
) -> Result<Option<assign::service::ServiceDef>, assign::service::ServiceError> {
    use assign::service::ServiceDef;
    match (&s.definition, s.dynamic) {
        (_, false) => Ok(ServiceDef::well_known(s.id)),
        (None, true) => Ok(None),
        (Some(d), true) => d.to_def().map(Some),
    }
}

/// The table of a `static_assignment`: bucket `b` to cache `b % n`.
fn static_table(s: &config::RouterService) -> Option<RedirectTable> {
    let st = s.static_assignment.as_ref()?;
    let def = service_def(s).ok().flatten()?;
    let n = st.caches.len().max(1);
    let mut buckets = [0u8; 256];
    for (b, slot) in buckets.iter_mut().enumerate() {
        *slot = (b % n) as u8;
    }
    RedirectTable::from_hash_assignment(def, &st.caches, &buckets, st.forwarding)
        .ok()
        .map(|t| t.with_closed(s.closed))
}

impl Topology {
    /// From the validated configuration and the ports' MAC addresses (by port index).
    pub fn from_config(
        router: &config::RouterSettings,
        dp: &config::Dataplane,
        macs: &[[u8; 6]],
    ) -> Topology {
        let ports = dp
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortInfo {
                name: p.name.clone(),
                mac: p.mac.or(macs.get(i).copied()).unwrap_or([0; 6]),
                addrs: p.addresses.iter().map(|a| (a.addr, a.len)).collect(),
                mtu: p.mtu,
                redirect_in: p.redirect_in,
                redirect_out: p.redirect_out,
                exclude_in: p.exclude_in,
            })
            .collect();
        Topology {
            ports,
            routes: dp.routes.iter().map(|r| (r.prefix, r.via)).collect(),
            neighbours: dp.neighbours.iter().map(|n| (n.address, n.mac)).collect(),
            services: router
                .services
                .iter()
                .map(|s| {
                    (
                        ServiceKey {
                            dynamic: s.dynamic,
                            id: s.id,
                        },
                        s.redirect_list.clone(),
                    )
                })
                .collect(),
            check_all: router.check_all_services,
            statics: router
                .services
                .iter()
                .filter_map(|s| {
                    let key = ServiceKey {
                        dynamic: s.dynamic,
                        id: s.id,
                    };
                    static_table(s).map(|t| (key, Arc::new(t)))
                })
                .collect(),
            router_id: router
                .addresses
                .first()
                .copied()
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// The changing inputs of a compilation.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Dynamic neighbours (ARP), by address.
    pub neighbours: BTreeMap<Ipv4Addr, NeighbourEntry>,
    /// The latest published table per service.
    pub redirect: BTreeMap<ServiceKey, Arc<RedirectTable>>,
    /// The router address each cache sends its HERE_I_AMs to (the GRE source it knows).
    pub cache_local: BTreeMap<Ipv4Addr, Ipv4Addr>,
    /// Counter slots of services that do not use their position in `Topology::services`: a
    /// reload keeps each service's slot (`ControlPlane::reconfigure`).
    pub slots: BTreeMap<ServiceKey, usize>,
}

/// A compiled [`Tables`] and the next hops it still needs resolved.
#[derive(Debug)]
pub struct Compiled {
    /// The tables.
    pub tables: Tables,
    /// Unresolved next hops (address, port) that targets or static routes need.
    pub unresolved: Vec<(Ipv4Addr, u16)>,
}

/// Compiles the tables.
pub fn compile(topo: &Topology, state: &State, generation: u64) -> Compiled {
    let mut fib = PrefixMap::new();
    let mut local = Vec::new();
    for (i, p) in topo.ports.iter().enumerate() {
        for &(a, len) in &p.addrs {
            local.push(u32::from(a));
            if let Ok(net) = Ipv4Net::new(a, len) {
                fib.insert(
                    net.trunc(),
                    RouteEntry {
                        port: i as u16,
                        via: None,
                    },
                );
            }
        }
    }
    local.sort_unstable();
    local.dedup();
    let mut broadcasts: Vec<u32> = topo
        .ports
        .iter()
        .flat_map(|p| p.addrs.iter())
        .filter(|(_, len)| *len <= 30)
        .filter_map(|&(a, len)| Ipv4Net::new(a, len).ok())
        .map(|n| u32::from(n.broadcast()))
        .collect();
    broadcasts.sort_unstable();
    broadcasts.dedup();
    // Static routes: the next hop must be on a connected subnet (validated by config).
    for &(net, via) in &topo.routes {
        if let Some((_, c)) = fib.get_lpm(&Ipv4Net::from(via)) {
            if c.via.is_none() {
                let port = c.port;
                fib.insert(
                    net.trunc(),
                    RouteEntry {
                        port,
                        via: Some(via),
                    },
                );
            }
        }
    }
    let mut neighbours: FxHashMap<u32, NeighbourEntry> = FxHashMap::default();
    for (a, n) in &state.neighbours {
        neighbours.insert(u32::from(*a), *n);
    }
    for &(a, mac) in &topo.neighbours {
        // A static neighbour lives on the port whose connected subnet holds it.
        let port = topo.ports.iter().position(|p| {
            p.addrs
                .iter()
                .any(|&(pa, len)| Ipv4Net::new(pa, len).is_ok_and(|n| n.contains(&a)))
        });
        if let Some(port) = port {
            neighbours.insert(
                u32::from(a),
                NeighbourEntry {
                    mac,
                    port: port as u16,
                },
            );
        }
    }
    let lpm = Lpm::build(&fib, &neighbours, &topo.ports);
    let mut t = Tables {
        generation,
        ports: topo.ports.clone(),
        sets: [
            AddrSet::of(&local),
            AddrSet::of(&broadcasts),
            AddrSet::default(),
        ],
        dst_special: AddrFilter::of(
            &local
                .iter()
                .chain(&broadcasts)
                .map(|a| a >> 24)
                .chain(224..=239)
                .chain([255])
                .collect::<Vec<u32>>(),
        ),
        local,
        broadcasts,
        lpm,
        fib,
        neighbours,
        services: Vec::new(),
        members: Vec::new(),
        l2_caches: Vec::new(),
        check_all: topo.check_all,
        lane: None,
    };
    let mut unresolved = Vec::new();
    for &(_, via) in &topo.routes {
        if let Err(Some((port, nh))) = t.resolve(via) {
            unresolved.push((nh, port));
        }
    }
    let mut services = Vec::new();
    let mut members = Vec::new();
    let mut l2_caches = Vec::new();
    for (index, (key, rules)) in topo.services.iter().enumerate().take(MAX_SERVICES) {
        let slot = state.slots.get(key).copied().unwrap_or(index);
        let table = state
            .redirect
            .get(key)
            .or_else(|| topo.statics.get(key))
            .cloned();
        let mut targets = Vec::new();
        let mut gre_mss: Option<u16> = None;
        let mut gre_sources = Vec::new();
        if let Some(table) = &table {
            for m in table.targets() {
                // Every cache of the table, drained or not, stays a member until the control
                // plane publishes a table without it: its own traffic is never redirected.
                members.push(u32::from(m.addr));
            }
            // And the caches the group counts without buckets.
            members.extend_from_slice(table.members());
            for target in table.targets() {
                let enc = encap(topo, state, &t, *key, target);
                match &enc {
                    Some(Encap::Gre {
                        port, header, mtu, ..
                    }) => {
                        let mss = mtu.saturating_sub(WCCP_ENCAP_LEN as u16 + TCP_IP_HEADERS);
                        gre_mss = Some(gre_mss.map_or(mss, |m| m.min(mss)));
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(&header[..6]);
                        gre_sources.push((*port, mac));
                    }
                    Some(Encap::L2 { port, mac, .. }) => l2_caches.push((*port, *mac)),
                    None => {
                        if !target.drained {
                            if let Err(Some((port, nh))) = t.resolve(target.addr) {
                                unresolved.push((nh, port));
                            }
                        }
                    }
                }
                targets.push(enc);
            }
        }
        let priority = table.as_ref().map_or(0, |t| t.service().priority);
        let mut entry = ServiceEntry {
            key: *key,
            slot,
            rules: rules.clone(),
            fast_hash: table.as_deref().and_then(FastHash::new),
            matcher: table.as_ref().map(|t| t.service().matcher()),
            table,
            targets,
            gre_mss,
            gre_sources,
            fast: None,
        };
        entry.fast = FastService::new(&entry);
        services.push(((priority, index), entry));
    }
    // Priority order: higher first; ties keep configuration order.
    services.sort_by_key(|&((priority, index), _)| (std::cmp::Reverse(priority), index));
    t.services = services.into_iter().map(|(_, s)| s).collect();
    members.sort_unstable();
    members.dedup();
    t.sets[2] = AddrSet::of(&members);
    t.members = members;
    l2_caches.sort_unstable();
    l2_caches.dedup();
    t.l2_caches = l2_caches;
    t.lane = LaneService::of(&t);
    unresolved.sort_unstable();
    unresolved.dedup();
    Compiled {
        tables: t,
        unresolved,
    }
}

fn encap(
    topo: &Topology,
    state: &State,
    t: &Tables,
    key: ServiceKey,
    target: &assign::table::Target,
) -> Option<Encap> {
    if target.drained {
        return None;
    }
    let (port, mac) = t.resolve(target.addr).ok()?;
    let p = t.ports.get(usize::from(port))?;
    match target.method {
        assign::table::ForwardingMethod::L2 => {
            // L2 is only for caches on a connected subnet.
            let (_, nh) = t.route(target.addr)?;
            (nh == target.addr).then_some(Encap::L2 {
                port,
                mac,
                mtu: p.mtu,
            })
        }
        assign::table::ForwardingMethod::Gre => {
            let src = state
                .cache_local
                .get(&target.addr)
                .copied()
                .unwrap_or(topo.router_id);
            let mut header = [0u8; GRE_FRAME_HDR];
            ethernet::write_header(&mut header, mac, p.mac, ETHERTYPE_IPV4);
            let outer = wire::Ipv4Repr {
                src,
                dst: target.addr,
                protocol: wire::ipv4::PROTOCOL_GRE,
                ttl: 255,
                payload_len: 0,
            };
            let flags = if key.dynamic {
                wire::RedirectFlags::DYNAMIC
            } else {
                wire::RedirectFlags::EMPTY
            };
            let rh = wire::RedirectHeader {
                flags,
                service_id: key.id,
                alt_bucket: 0,
                primary_bucket: 0,
            };
            wire::write_wccp_encap(&mut header[OUTER_IP..], &outer, &rh).ok()?;
            let word = |i: usize| u32::from(!u16::from_ne_bytes([header[i], header[i + 1]]));
            let s = word(OUTER_IP + 10) + word(OUTER_IP + 2);
            let csum_base = ((s & 0xffff) + (s >> 16)) as u16;
            Some(Encap::Gre {
                port,
                header,
                mtu: p.mtu,
                csum_base,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fib_of(prefixes: &[(u32, u8, u16)]) -> PrefixMap<Ipv4Net, RouteEntry> {
        let mut fib = PrefixMap::new();
        for &(a, len, port) in prefixes {
            if let Ok(net) = Ipv4Net::new(Ipv4Addr::from(a), len) {
                fib.insert(net.trunc(), RouteEntry { port, via: None });
            }
        }
        fib
    }

    proptest! {
        /// `BucketHash::buckets` (both hashes in one 64-bit word) gives the buckets of
        /// `assign::hash`, for every primary and alternate hash field selection.
        #[test]
        fn fast_hash_buckets_are_assign_hash(
            primary in 0u32..16,
            alt in 0u32..16,
            flows in proptest::collection::vec(any::<(u32, u32, u16, u16)>(), 16),
        ) {
            let flags = primary | alt << 8;
            let def = assign::service::ServiceDef::dynamic(90, 0, 6, flags, [0; 8]);
            prop_assume!(def.is_ok());
            let table = RedirectTable::from_hash_assignment(
                def.expect("checked"),
                &[Ipv4Addr::new(10, 0, 0, 1)],
                &[0; 256],
                assign::table::ForwardingMethod::Gre,
            );
            prop_assume!(table.is_ok());
            let table = table.expect("checked");
            let fh = FastHash::new(&table).expect("a hash table");
            for (src, dst, sport, dport) in flows {
                let key = assign::hash::FlowKey::new(src, dst, sport, dport);
                prop_assert_eq!(
                    fh.hash.buckets(src, dst, sport, dport),
                    (
                        assign::hash::primary_bucket(flags, &key),
                        assign::hash::alternate_bucket(flags, &key),
                    )
                );
            }
        }

        /// `AddrSet::contains` is set membership, for sets around `AddrSet::FEW` members and
        /// addresses in them, next to them and anywhere.
        #[test]
        fn addr_set_is_membership(
            mut set in proptest::collection::vec(any::<u32>(), 0..20),
            probes in proptest::collection::vec(any::<u32>(), 16),
        ) {
            set.sort_unstable();
            set.dedup();
            let s = AddrSet::of(&set);
            let near = set.iter().flat_map(|&a| [a, a ^ 1, a ^ 0x100]);
            for ip in probes.into_iter().chain(near).chain([0, u32::MAX]) {
                prop_assert_eq!(s.contains(ip), set.contains(&ip), "{:#x}", ip);
            }
        }

        /// The compiled FIB (per-octet scan up to LINEAR_MAX prefixes, hashes per length
        /// above) answers as the trie's longest-prefix match, for addresses in and around the
        /// prefixes and anywhere.
        #[test]
        fn lpm_is_longest_prefix_match(
            prefixes in proptest::collection::vec((any::<u32>(), 0u8..=32, any::<u16>()), 0..24),
            probes in proptest::collection::vec(any::<u32>(), 16),
        ) {
            // Ports 0 and 1 exist; routes out of others have no egress port.
            let prefixes: Vec<_> = prefixes.into_iter().map(|(a, l, p)| (a, l, p % 3)).collect();
            let fib = fib_of(&prefixes);
            let port = PortInfo {
                name: String::new(),
                mac: [2, 0, 0, 0, 0, 1],
                addrs: Vec::new(),
                mtu: 1500,
                redirect_in: false,
                redirect_out: false,
                exclude_in: false,
            };
            let ports = vec![port; 2];
            let lpm = Lpm::build(&fib, &FxHashMap::default(), &ports);
            let near = prefixes.iter().flat_map(|&(a, _, _)| [a, a ^ 1, a ^ 0x0100_0000, !a]);
            for dst in probes.into_iter().chain(near) {
                let want = fib
                    .get_lpm(&Ipv4Net::from(Ipv4Addr::from(dst)))
                    .map(|(_, e)| *e);
                prop_assert_eq!(lpm.lookup(dst).map(|h| h.entry), want, "{:#x}", dst);
                // The pre-pass's contract: a destination within `first` is routed by
                // `first_hit`, to a port that exists (DIR-8); any destination is within it
                // otherwise.
                let o = (dst >> 24) as u8;
                let (net, mask) = lpm.first(o);
                if lpm.is_dir8() {
                    let hit = lpm.first_hit(o);
                    let by_first = lpm.lookup(dst).is_some_and(|h| std::ptr::eq(h, hit));
                    let exists = want.is_some_and(|e| e.port < 2);
                    prop_assert_eq!(dst & mask == net, by_first && exists, "{:#x}", dst);
                    if by_first {
                        prop_assert_eq!(hit.egress.is_some(), hit.entry.port < 2);
                    }
                } else {
                    prop_assert_eq!((net, mask), (0, 0));
                }
            }
        }

        /// `dst_may_be_special` is false only for destinations that are none of group,
        /// limited broadcast, directed broadcast or ours.
        #[test]
        fn dst_special_covers_the_exact_checks(
            addrs in proptest::collection::vec((any::<u32>(), 8u8..=32), 1..4),
            probes in proptest::collection::vec(any::<u32>(), 16),
        ) {
            let ports = vec![PortInfo {
                name: "p".into(),
                mac: [2, 0, 0, 0, 0, 1],
                addrs: addrs.iter().map(|&(a, l)| (Ipv4Addr::from(a), l)).collect(),
                mtu: 1500,
                redirect_in: true,
                redirect_out: false,
                exclude_in: false,
            }];
            let topo = Topology {
                ports,
                routes: Vec::new(),
                neighbours: Vec::new(),
                services: Vec::new(),
                check_all: false,
                router_id: Ipv4Addr::UNSPECIFIED,
                statics: BTreeMap::new(),
            };
            let t = compile(&topo, &State::default(), 1).tables;
            let near = t.local.iter().chain(&t.broadcasts).flat_map(|&a| [a, a ^ 1]);
            let fixed = [0xe000_0001, 0xefff_ffff, 0xffff_ffff, 0xf000_0000];
            for dst in probes.into_iter().chain(near).chain(fixed) {
                let special = dst >> 28 == 0xe
                    || dst == u32::MAX
                    || t.is_directed_broadcast(dst)
                    || t.is_local(dst);
                prop_assert!(!special || t.dst_may_be_special(dst), "{:#x}", dst);
            }
        }
    }
}
