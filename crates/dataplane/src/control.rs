//! The control lcore: everything the workers punt (ARP, WCCP over UDP 2048, fragments to us,
//! frames held for an unresolved next hop), the WCCP router state machine driven through its
//! sans-IO interface, ARP resolution with a neighbour table, IPv4 reassembly and fragmentation
//! of control datagrams, and the compilation and RCU publication of [`Tables`].
//!
//! It owns no queue: frames it builds are handed to a worker through the inject channel (the
//! caller drains [`ControlPlane::take_output`]). `control` never sees an mbuf; this module turns
//! frames into [`control::Datagram`]s and back.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use control::router::Router;
use control::{Datagram, Event, Instant, Machine, Output, ServiceKey, WCCP_PORT};
use serde::Serialize;
use wire::arp::{ArpRepr, Operation};
use wire::ethernet::{self, BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use wire::ipv4::{FLAG_MF, FRAG_OFFSET_MASK, PROTOCOL_UDP};
use wire::l4::{self, UdpPacket};
use wire::Ipv4Packet;

use crate::buf::PacketBuf;
use crate::counters::{LcoreCounters, Reason};
use crate::pipeline::{process, Action, Ctx, RateLimit};
use crate::tables::{compile, NeighbourEntry, State, Tables, Topology};

mod reload;

/// Makes buffers for frames the control lcore builds.
pub trait Alloc {
    /// The buffer type.
    type Buf: PacketBuf;
    /// A buffer holding a copy of `frame`, or `None` when the pool is empty.
    fn alloc(&mut self, frame: &[u8]) -> Option<Self::Buf>;
}

/// ARP request retry interval for an unresolved next hop.
const ARP_RETRY: Duration = Duration::from_secs(1);
/// ARP requests without an answer after which the frames held for a next hop are dropped.
const ARP_TRIES: u32 = 3;
/// A dynamic neighbour that a table needs is re-confirmed after this long.
const ARP_REFRESH: Duration = Duration::from_secs(60);
/// A dynamic neighbour not confirmed for this long is forgotten.
const ARP_EXPIRE: Duration = Duration::from_secs(300);
/// Frames held per unresolved next hop, and in total.
const HELD_PER_HOP: usize = 8;
const HELD_TOTAL: usize = 256;
/// Reassembly limits: datagrams in flight, octets per datagram, lifetime.
const REASM_MAX: usize = 16;
const REASM_BYTES: usize = 65_535;
const REASM_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters of the control lcore's own work (shown by `wccpd show`).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct ControlStats {
    /// WCCP datagrams handed to the router state machine.
    pub wccp_rx: u64,
    /// WCCP datagrams sent.
    pub wccp_tx: u64,
    /// WCCP datagrams that could not be sent (no route, pool empty).
    pub wccp_tx_errors: u64,
    /// UDP datagrams to port 2048 with a bad checksum or length.
    pub wccp_malformed: u64,
    /// ARP packets received.
    pub arp_rx: u64,
    /// ARP requests sent.
    pub arp_requests: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// Malformed or foreign ARP packets ignored.
    pub arp_ignored: u64,
    /// Frames held for an unresolved next hop.
    pub held: u64,
    /// Held frames released after resolution.
    pub released: u64,
    /// Held frames dropped (queue full, or never resolved).
    pub held_dropped: u64,
    /// Fragments received for reassembly.
    pub fragments_rx: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Fragments or partial datagrams dropped (limits, timeouts, overlaps).
    pub reassembly_dropped: u64,
    /// Datagrams sent in fragments.
    pub fragmented_tx: u64,
    /// Tables published.
    pub publications: u64,
    /// Membership changes seen.
    pub membership_changes: u64,
    /// Assignments accepted.
    pub assignments: u64,
    /// Control messages dropped by the router state machine, by reason.
    #[serde(deserialize_with = "control::label::deserialize_keys")]
    pub drops: BTreeMap<&'static str, u64>,
}

#[derive(Debug)]
struct Pending<B> {
    port: u16,
    next_try: Instant,
    held: VecDeque<B>,
    /// ARP requests sent so far.
    tries: u32,
}

#[derive(Debug)]
struct Partial {
    first_seen: Instant,
    /// (offset, data) of each fragment, in arrival order.
    parts: Vec<(usize, Vec<u8>)>,
    /// Total payload length, once the last fragment arrived.
    end: Option<usize>,
    bytes: usize,
    header: Vec<u8>,
}

/// The control lcore's state.
pub struct ControlPlane<B: PacketBuf> {
    router: Router,
    topo: Topology,
    state: State,
    publisher: rcu::Publisher<Tables>,
    generation: u64,
    dirty: bool,
    counters: Arc<LcoreCounters>,
    icmp: RateLimit,
    confirmed: BTreeMap<Ipv4Addr, Instant>,
    pending: BTreeMap<Ipv4Addr, Pending<B>>,
    held_total: usize,
    reasm: BTreeMap<(u32, u32, u16), Partial>,
    out: Vec<B>,
    stats: ControlStats,
    ident: u16,
    wanted: Vec<(Ipv4Addr, u16)>,
    /// One log line per rejected source per minute (MD5 failures, refused caches).
    rejections: control::log_limit::LogLimiter,
}

impl<B: PacketBuf> std::fmt::Debug for ControlPlane<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl<B: PacketBuf> ControlPlane<B> {
    /// A control plane for `router` over `topo`, publishing into `publisher` (whose initial
    /// table should be [`initial_tables`]`(topo)`).
    pub fn new(
        router: Router,
        topo: Topology,
        publisher: rcu::Publisher<Tables>,
        counters: Arc<LcoreCounters>,
    ) -> Self {
        let mut cp = ControlPlane {
            router,
            topo,
            state: State::default(),
            publisher,
            generation: 0,
            dirty: true,
            counters,
            icmp: RateLimit::new(1000, 100, 1000),
            confirmed: BTreeMap::new(),
            pending: BTreeMap::new(),
            held_total: 0,
            reasm: BTreeMap::new(),
            out: Vec::new(),
            stats: ControlStats::default(),
            ident: 1,
            wanted: Vec::new(),
            rejections: control::log_limit::LogLimiter::default(),
        };
        cp.republish();
        cp
    }

    /// The router state machine (status for `wccpd show`).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The tables the workers read now.
    pub fn tables(&self) -> &Tables {
        self.publisher.current()
    }

    /// The control lcore's counters.
    pub fn stats(&self) -> &ControlStats {
        &self.stats
    }

    /// Dynamic and static neighbours, for status.
    pub fn neighbours(&self) -> Vec<(Ipv4Addr, NeighbourEntry, bool)> {
        let t = self.tables();
        let mut v: Vec<_> = t
            .neighbours
            .iter()
            .map(|(a, n)| {
                let ip = Ipv4Addr::from(*a);
                (ip, *n, !self.state.neighbours.contains_key(&ip))
            })
            .collect();
        v.sort_by_key(|x| x.0);
        v
    }

    /// RCU tables waiting for every worker to pass a quiescent point.
    pub fn pending_reclaim(&self) -> usize {
        self.publisher.pending()
    }

    /// Frames to send (each names its port): hand them to a worker's inject channel.
    pub fn take_output(&mut self) -> std::vec::Drain<'_, B> {
        self.out.drain(..)
    }

    /// The earliest instant at which [`ControlPlane::tick`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let arp = self.pending.values().map(|p| p.next_try).min();
        match (self.router.poll_timeout(), arp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One frame punted by a worker.
    pub fn handle_punt(&mut self, now: Instant, mut b: B, alloc: &mut impl Alloc<Buf = B>) {
        if crate::worker::is_held(&b) {
            self.hold(now, b, alloc);
            return;
        }
        let in_port = b.port();
        let Ok(eth) = ethernet::Packet::new_checked(b.as_ref()) else {
            return;
        };
        let l2 = eth.header_len();
        match eth.ethertype() {
            ETHERTYPE_ARP => {
                let arp = ArpRepr::parse(&b.as_ref()[l2..]);
                self.handle_arp(now, in_port, arp, alloc);
            }
            ETHERTYPE_IPV4 => {
                let data = &b.as_ref()[l2..];
                let Ok(ip) = Ipv4Packet::new_checked(data) else {
                    return;
                };
                if ip.is_fragment() {
                    self.fragment(now, &ip, alloc);
                } else if ip.protocol() == PROTOCOL_UDP {
                    let (src, dst) = (ip.src(), ip.dst());
                    let payload = ip.payload().to_vec();
                    self.udp(now, src, dst, &payload, alloc);
                } else {
                    // Not for the control lcore: run it through the pipeline (e.g. a frame
                    // punted by an older table); the result is injected.
                    let mut cx = Ctx {
                        tables: self.publisher.current(),
                        counters: &self.counters,
                        icmp: &mut self.icmp,
                        now: now.as_millis(),
                    };
                    if let Action::Tx(p) = process(&mut cx, in_port, &mut b) {
                        b.set_port(p);
                        self.out.push(b);
                    }
                }
            }
            _ => {}
        }
    }

    /// Timers: the router's, ARP retries and refreshes, reassembly expiry; then publish.
    pub fn tick(&mut self, now: Instant, alloc: &mut impl Alloc<Buf = B>) {
        self.router.handle_timeout(now);
        self.drain_router(now, alloc);
        // Reassembly expiry.
        let before = self.reasm.len();
        self.reasm
            .retain(|_, p| now.saturating_since(p.first_seen) < REASM_TIMEOUT);
        self.stats.reassembly_dropped += (before - self.reasm.len()) as u64;
        // Dynamic neighbours: forget old ones, refresh the ones the tables need.
        let expired: Vec<Ipv4Addr> = self
            .confirmed
            .iter()
            .filter(|(_, t)| now.saturating_since(**t) >= ARP_EXPIRE)
            .map(|(a, _)| *a)
            .collect();
        for a in expired {
            self.confirmed.remove(&a);
            if self.state.neighbours.remove(&a).is_some() {
                self.dirty = true;
            }
        }
        let refresh: Vec<(Ipv4Addr, u16)> = self
            .needed_hops()
            .into_iter()
            .filter(|(a, _)| {
                self.confirmed
                    .get(a)
                    .is_some_and(|t| now.saturating_since(*t) >= ARP_REFRESH)
                    && !self.pending.contains_key(a)
            })
            .collect();
        for (a, port) in refresh {
            self.pending.insert(
                a,
                Pending {
                    port,
                    next_try: now,
                    held: VecDeque::new(),
                    tries: 0,
                },
            );
        }
        self.republish();
        for (a, port) in std::mem::take(&mut self.wanted) {
            self.pending.entry(a).or_insert(Pending {
                port,
                next_try: now,
                held: VecDeque::new(),
                tries: 0,
            });
        }
        // ARP requests for everything pending whose retry time has come. A hop that is no
        // longer needed and holds nothing is given up after its request.
        let due: Vec<(Ipv4Addr, u16)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_try <= now)
            .map(|(a, p)| (*a, p.port))
            .collect();
        let needed = self.needed_hops();
        for (a, port) in due {
            let Some(p) = self.pending.get_mut(&a) else {
                continue;
            };
            let needed_hop = needed.iter().any(|(n, _)| *n == a);
            if p.tries >= ARP_TRIES {
                // No answer to ARP_TRIES requests: drop what is held (RFC 1122 2.3.2.2 asks
                // for a bounded queue; Linux gives up after three probes too), so that a dead
                // host does not keep buffers forever. A hop the tables need is still asked.
                let n = p.held.len();
                p.held.clear();
                self.held_total -= n;
                self.stats.held_dropped += n as u64;
                self.counters.add(Reason::NeighbourMiss, n as u64);
                if !needed_hop {
                    self.pending.remove(&a);
                    continue;
                }
            }
            p.next_try = now + ARP_RETRY;
            p.tries = p.tries.saturating_add(1);
            if p.held.is_empty() && !needed_hop {
                self.pending.remove(&a);
            }
            self.arp_request(port, a, alloc);
        }
    }

    /// Next hops the current tables need (targets' and static routes'), resolved or not.
    fn needed_hops(&self) -> Vec<(Ipv4Addr, u16)> {
        let t = self.publisher.current();
        let mut v: Vec<(Ipv4Addr, u16)> = Vec::new();
        for (_, via) in &self.topo.routes {
            if let Some((p, nh)) = t.route(*via) {
                v.push((nh, p));
            }
        }
        for s in &t.services {
            if let Some(table) = &s.table {
                for target in table.targets().iter().filter(|t| !t.drained) {
                    if let Some((p, nh)) = t.route(target.addr) {
                        v.push((nh, p));
                    }
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Sets the redirection table of `service` as if the router state machine had published
    /// it (`None` withdraws it: the `static_assignment`, if any, applies again), then compiles
    /// and publishes new tables at once. `wccpd bench` changes bucket owners this way.
    pub fn set_redirect(&mut self, service: ServiceKey, table: Option<Arc<assign::RedirectTable>>) {
        self.publish(service, table);
        self.republish();
    }

    /// Compiles and publishes new tables if anything changed; reclaims old ones.
    pub fn republish(&mut self) {
        if self.dirty {
            self.generation += 1;
            let c = compile(&self.topo, &self.state, self.generation);
            self.wanted = c.unresolved;
            self.publisher.publish(Box::new(c.tables));
            self.stats.publications += 1;
            self.dirty = false;
            tracing::debug!(generation = self.generation, "tables published");
        }
        self.publisher.reclaim();
    }

    fn handle_arp(
        &mut self,
        now: Instant,
        in_port: u16,
        arp: Result<ArpRepr, wire::Error>,
        alloc: &mut impl Alloc<Buf = B>,
    ) {
        self.stats.arp_rx += 1;
        let Ok(arp) = arp else {
            self.stats.arp_ignored += 1;
            return;
        };
        let Some(port) = self.topo.ports.get(usize::from(in_port)).cloned() else {
            return;
        };
        let on_link = |a: Ipv4Addr| {
            port.addrs.iter().any(|(p, len)| {
                ipnet::Ipv4Net::new(*p, *len).is_ok_and(|n| n.contains(&a)) && a != *p
            })
        };
        let for_us = port.addrs.iter().any(|(a, _)| *a == arp.target_ip);
        let known = self.state.neighbours.contains_key(&arp.sender_ip)
            || self.pending.contains_key(&arp.sender_ip);
        // RFC 826: update a known sender; add it when the packet is for us.
        if on_link(arp.sender_ip) && arp.sender_mac[0] & 1 == 0 && (for_us || known) {
            self.learn(now, in_port, arp.sender_ip, arp.sender_mac);
        } else if !for_us {
            self.stats.arp_ignored += 1;
        }
        if for_us && arp.operation == Operation::Request {
            let reply = ArpRepr {
                operation: Operation::Reply,
                sender_mac: port.mac,
                sender_ip: arp.target_ip,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            let mut f = [0u8; 42];
            ethernet::write_header(&mut f, arp.sender_mac, port.mac, ETHERTYPE_ARP);
            reply.emit(&mut f[14..]);
            if self.send_frame(in_port, &f, alloc) {
                self.stats.arp_replies += 1;
            }
        }
    }

    fn learn(&mut self, now: Instant, port: u16, ip: Ipv4Addr, mac: [u8; 6]) {
        self.confirmed.insert(ip, now);
        let entry = NeighbourEntry { mac, port };
        if self.state.neighbours.insert(ip, entry) != Some(entry) {
            self.dirty = true;
            tracing::debug!(%ip, port, "neighbour learnt");
        }
        if let Some(p) = self.pending.remove(&ip) {
            for mut b in p.held {
                self.held_total -= 1;
                if p.port == port {
                    b.as_mut()[..6].copy_from_slice(&mac);
                    b.set_port(port);
                    self.out.push(b);
                    self.stats.released += 1;
                } else {
                    self.stats.held_dropped += 1;
                    self.counters.count(Reason::NeighbourMiss);
                }
            }
        }
    }

    fn hold(&mut self, now: Instant, b: B, alloc: &mut impl Alloc<Buf = B>) {
        let dst = Ipv4Packet::new_checked(&b.as_ref()[ethernet::HEADER_LEN..]).map(|p| p.dst());
        let hop = dst.ok().and_then(|d| self.publisher.current().route(d));
        let Some((port, nh)) = hop else {
            self.stats.held_dropped += 1;
            self.counters.count(Reason::NeighbourMiss);
            return;
        };
        // Resolved meanwhile (the worker read an older table): send at once.
        if let Some(n) = self.state.neighbours.get(&nh).filter(|n| n.port == port) {
            let mut b = b;
            b.as_mut()[..6].copy_from_slice(&n.mac);
            b.set_port(port);
            self.out.push(b);
            self.stats.released += 1;
            return;
        }
        let new = !self.pending.contains_key(&nh);
        // A new entry's first request is sent below.
        let p = self.pending.entry(nh).or_insert(Pending {
            port,
            next_try: now + ARP_RETRY,
            held: VecDeque::new(),
            tries: 1,
        });
        if p.held.len() >= HELD_PER_HOP || self.held_total >= HELD_TOTAL {
            self.stats.held_dropped += 1;
            self.counters.count(Reason::NeighbourMiss);
        } else {
            p.held.push_back(b);
            self.held_total += 1;
            self.stats.held += 1;
        }
        if new {
            self.arp_request(port, nh, alloc);
        }
    }

    fn arp_request(&mut self, port: u16, ip: Ipv4Addr, alloc: &mut impl Alloc<Buf = B>) {
        let Some(p) = self.topo.ports.get(usize::from(port)) else {
            return;
        };
        // Ask from the port address on the target's subnet.
        let sender = p
            .addrs
            .iter()
            .find(|(a, len)| ipnet::Ipv4Net::new(*a, *len).is_ok_and(|n| n.contains(&ip)))
            .map_or(p.primary(), |a| a.0);
        let req = ArpRepr {
            operation: Operation::Request,
            sender_mac: p.mac,
            sender_ip: sender,
            target_mac: [0; 6],
            target_ip: ip,
        };
        let mut f = [0u8; 42];
        ethernet::write_header(&mut f, BROADCAST, p.mac, ETHERTYPE_ARP);
        req.emit(&mut f[14..]);
        if self.send_frame(port, &f, alloc) {
            self.stats.arp_requests += 1;
        }
    }

    fn send_frame(&mut self, port: u16, f: &[u8], alloc: &mut impl Alloc<Buf = B>) -> bool {
        match alloc.alloc(f) {
            Some(mut b) => {
                b.set_port(port);
                self.out.push(b);
                true
            }
            None => false,
        }
    }

    fn fragment(&mut self, now: Instant, ip: &Ipv4Packet<&[u8]>, alloc: &mut impl Alloc<Buf = B>) {
        self.stats.fragments_rx += 1;
        let key = (u32::from(ip.src()), u32::from(ip.dst()), ip.ident());
        let offset = usize::from(ip.flags_frag() & FRAG_OFFSET_MASK) * 8;
        let more = ip.flags_frag() & FLAG_MF != 0;
        let data = ip.payload();
        if ip.protocol() != PROTOCOL_UDP || offset + data.len() > REASM_BYTES {
            self.stats.reassembly_dropped += 1;
            return;
        }
        if !self.reasm.contains_key(&key) && self.reasm.len() >= REASM_MAX {
            self.stats.reassembly_dropped += 1;
            return;
        }
        let p = self.reasm.entry(key).or_insert_with(|| Partial {
            first_seen: now,
            parts: Vec::new(),
            end: None,
            bytes: 0,
            header: Vec::new(),
        });
        if offset == 0 {
            p.header = ip.into_inner()[..ip.header_len()].to_vec();
        }
        if !more {
            p.end = Some(offset + data.len());
        }
        p.bytes += data.len();
        p.parts.push((offset, data.to_vec()));
        if p.bytes > REASM_BYTES || p.parts.len() > 64 {
            self.reasm.remove(&key);
            self.stats.reassembly_dropped += 1;
            return;
        }
        let Some(end) = p.end else { return };
        // Data past the end the last fragment gave is inconsistent (overlapping or forged
        // fragments): drop the whole datagram, as RFC 815 hosts do.
        if p.parts.iter().any(|(o, d)| o + d.len() > end) {
            self.reasm.remove(&key);
            self.stats.reassembly_dropped += 1;
            return;
        }
        // Complete when the fragments cover [0, end) without a gap.
        let mut parts: Vec<&(usize, Vec<u8>)> = p.parts.iter().collect();
        parts.sort_by_key(|x| x.0);
        let mut covered = 0usize;
        for (o, d) in &parts {
            if *o > covered {
                return;
            }
            covered = covered.max(o + d.len());
        }
        if covered < end || p.header.is_empty() {
            return;
        }
        let mut payload = vec![0u8; end];
        for (o, d) in &parts {
            let stop = (o + d.len()).min(end);
            payload[*o..stop].copy_from_slice(&d[..stop - o]);
        }
        self.reasm.remove(&key);
        self.stats.reassembled += 1;
        let (src, dst) = (Ipv4Addr::from(key.0), Ipv4Addr::from(key.1));
        self.udp(now, src, dst, &payload, alloc);
    }

    fn udp(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        seg: &[u8],
        alloc: &mut impl Alloc<Buf = B>,
    ) {
        let Ok(u) = UdpPacket::new_checked(seg) else {
            self.stats.wccp_malformed += 1;
            return;
        };
        if u.dst_port() != WCCP_PORT {
            return;
        }
        if !u.verify_checksum(src.octets(), dst.octets()) {
            self.stats.wccp_malformed += 1;
            return;
        }
        if !self.publisher.current().is_local(u32::from(dst)) {
            return;
        }
        self.stats.wccp_rx += 1;
        if self.state.cache_local.get(&src) != Some(&dst) {
            self.state.cache_local.insert(src, dst);
            self.dirty = true;
        }
        self.router.handle_datagram(
            now,
            Datagram {
                local: dst,
                peer: src,
                payload: u.payload().to_vec(),
            },
        );
        self.drain_router(now, alloc);
    }

    fn drain_router(&mut self, now: Instant, alloc: &mut impl Alloc<Buf = B>) {
        while let Some(o) = self.router.poll_output() {
            match o {
                Output::Send(dg) => self.send_datagram(now, &dg, alloc),
                Output::Publish { service, table } => self.publish(service, table),
                Output::Event(e) => self.event(now, e),
            }
        }
        self.republish();
    }

    fn publish(&mut self, service: ServiceKey, table: Option<Arc<assign::RedirectTable>>) {
        match table {
            Some(t) => {
                self.state.redirect.insert(service, t);
            }
            None => {
                self.state.redirect.remove(&service);
            }
        }
        self.dirty = true;
    }

    fn event(&mut self, now: Instant, e: Event) {
        control::log_limit::log_event(&mut self.rejections, now, &e);
        match e {
            Event::Dropped { reason, .. } => {
                *self.stats.drops.entry(reason.as_str()).or_insert(0) += 1;
            }
            Event::MembershipChanged { .. } => self.stats.membership_changes += 1,
            Event::Assignment { .. } => self.stats.assignments += 1,
        }
    }

    /// Builds the IPv4/UDP frames of one WCCP datagram, fragmenting to the egress MTU.
    fn send_datagram(&mut self, now: Instant, dg: &Datagram, alloc: &mut impl Alloc<Buf = B>) {
        let Some((port, nh)) = self.publisher.current().route(dg.peer) else {
            self.stats.wccp_tx_errors += 1;
            return;
        };
        let mtu = usize::from(self.topo.ports[usize::from(port)].mtu);
        let mac = self.topo.ports[usize::from(port)].mac;
        let mut seg = vec![0u8; l4::UDP_HEADER_LEN + dg.payload.len()];
        seg[l4::UDP_HEADER_LEN..].copy_from_slice(&dg.payload);
        l4::write_udp(
            &mut seg,
            dg.local.octets(),
            dg.peer.octets(),
            WCCP_PORT,
            WCCP_PORT,
            dg.payload.len(),
        );
        let ident = self.ident;
        self.ident = self.ident.wrapping_add(1);
        // Fragment payloads are multiples of 8 octets except the last.
        let max = (mtu - 20) & !7;
        let chunks: Vec<&[u8]> = if seg.len() + 20 <= mtu {
            vec![&seg[..]]
        } else {
            self.stats.fragmented_tx += 1;
            seg.chunks(max).collect()
        };
        let n = chunks.len();
        let mut offset = 0usize;
        let dst_mac = self
            .state
            .neighbours
            .get(&nh)
            .filter(|e| e.port == port)
            .map(|e| e.mac)
            .or_else(|| {
                self.publisher
                    .current()
                    .neighbours
                    .get(&u32::from(nh))
                    .filter(|e| e.port == port)
                    .map(|e| e.mac)
            });
        for (i, c) in chunks.into_iter().enumerate() {
            let mut f = vec![0u8; 14 + 20 + c.len()];
            ethernet::write_header(&mut f, dst_mac.unwrap_or([0; 6]), mac, ETHERTYPE_IPV4);
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            wire::Ipv4Repr {
                src: dg.local,
                dst: dg.peer,
                protocol: PROTOCOL_UDP,
                ttl: 64,
                payload_len: c.len() as u16,
            }
            .emit(&mut ip);
            ip.set_ident(ident);
            let mf = if i + 1 < n { FLAG_MF } else { 0 };
            ip.set_flags_frag(mf | (offset / 8) as u16);
            ip.fill_checksum();
            f[34..].copy_from_slice(c);
            offset += c.len();
            let Some(mut b) = alloc.alloc(&f) else {
                self.stats.wccp_tx_errors += 1;
                return;
            };
            b.set_port(port);
            if dst_mac.is_some() {
                self.out.push(b);
            } else {
                self.hold(now, b, alloc);
            }
        }
        self.stats.wccp_tx += 1;
    }
}

/// The tables before the control plane ran: topology only.
pub fn initial_tables(topo: &Topology) -> Box<Tables> {
    Box::new(compile(topo, &State::default(), 0).tables)
}
