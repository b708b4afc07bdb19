//! The lab every data-plane test runs in, and the frame builders and checkers they share.
//!
//! ```text
//!   client 10.0.1.10 ── port 0 "client" 10.0.1.1/24  redirect in
//!   server 10.0.2.20 ── port 1 "server" 10.0.2.1/24   (198.51.100.0/24 via 10.0.2.254)
//!   caches 10.0.3.x  ── port 2 "cache"  10.0.3.1/24   exclude in
//! ```
//!
//! Services (priority order): standard 0 web-cache (TCP 80, hash on the destination, three GRE
//! targets A, B and C, C unresolved), dynamic 70 (TCP 8080, mask on the destination's low bit,
//! A and B in GRE), dynamic 71 (TCP 80, everything to B; only reached through
//! `check_all_services`) and dynamic 90 (TCP 443, everything to the L2 cache).
//!
//! Input frames are built with `etherparse::PacketBuilder`; expected output frames are built
//! independently of the code under test (etherparse computes every checksum), so comparing
//! bytes checks our in-place rewrites.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use assign::hash::{alternate_bucket, primary_bucket, FlowKey};
use assign::mask::{MaskSet, MaskTuple, ValueElement};
use assign::service::{flags, ServiceDef};
use assign::table::{ForwardingMethod, Target};
use assign::RedirectTable;
use config::{RedirectRule, RuleAction};
use control::router::{Router, RouterConfig, ServiceConfig};
use control::ServiceKey;
use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement,
    TransportSlice,
};
use ipnet::Ipv4Net;
use wccp_dataplane::control::{initial_tables, Alloc, ControlPlane};
use wccp_dataplane::pipeline::{process, Action, Ctx, RateLimit};
use wccp_dataplane::tables::{compile, PortInfo, State, Tables, Topology};
use wccp_dataplane::PacketBuf;
use wccp_dataplane::{LcoreCounters, Reason, VecBuf};

pub const CLIENT: u16 = 0;
pub const SERVER: u16 = 1;
pub const CACHE: u16 = 2;

/// The router's port MACs, by port index.
pub const PORT_MAC: [[u8; 6]; 3] = [
    [0x02, 0, 0, 0, 1, 1],
    [0x02, 0, 0, 0, 2, 1],
    [0x02, 0, 0, 0, 3, 1],
];
/// The router's port addresses, by port index.
pub const PORT_IP: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 0, 1, 1),
    Ipv4Addr::new(10, 0, 2, 1),
    Ipv4Addr::new(10, 0, 3, 1),
];
pub const ROUTER_ID: Ipv4Addr = PORT_IP[0];

pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 0x0a];
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 20);
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 0x14];
/// The next hop to the remote network.
pub const GW_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 254);
pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 0xfe];
/// A host on the server subnet nobody has resolved.
pub const UNKNOWN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 50);
pub const UNKNOWN_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 0x32];
/// A host on the cache subnet that is not a cache.
pub const CACHE_NET_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 50);
pub const CACHE_NET_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 3, 0x32];

pub const CACHE_A: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 10);
pub const CACHE_A_MAC: [u8; 6] = [0x02, 0, 0, 0, 3, 0x0a];
pub const CACHE_B: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 11);
pub const CACHE_B_MAC: [u8; 6] = [0x02, 0, 0, 0, 3, 0x0b];
/// A GRE target without a neighbour entry.
pub const CACHE_C: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 12);
/// A usable member of the web-cache group that holds no bucket.
pub const CACHE_IDLE: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 13);
pub const CACHE_IDLE_MAC: [u8; 6] = [0x02, 0, 0, 0, 3, 0x0d];
pub const CACHE_L2: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 20);
pub const CACHE_L2_MAC: [u8; 6] = [0x02, 0, 0, 0, 3, 0x14];

/// The remote network behind [`GW_IP`] and the web-cache destinations in it.
pub const REMOTE_NET: &str = "198.51.100.0/24";
/// Hashes to a bucket of cache A.
pub const DST_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// Hashes to a bucket of cache B.
pub const DST_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
/// Hashes to a bucket flagged "use the alternate hash" (the client's source bucket: B).
pub const DST_ALT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 12);
/// Hashes to an unassigned bucket.
pub const DST_UNASSIGNED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 13);
/// Hashes to a bucket of the unresolved cache C.
pub const DST_UNRESOLVED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 14);
/// Denied by the redirect list of [`Lab::with_deny`].
pub const DST_DENIED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 15);
/// Not routed anywhere.
pub const NOWHERE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

pub const S_WEB: ServiceKey = ServiceKey {
    dynamic: false,
    id: 0,
};
pub const S_MASK: ServiceKey = ServiceKey {
    dynamic: true,
    id: 70,
};
pub const S_FALLBACK: ServiceKey = ServiceKey {
    dynamic: true,
    id: 71,
};
pub const S_L2: ServiceKey = ServiceKey {
    dynamic: true,
    id: 90,
};

/// Counter slots (position in the topology's service list).
pub const SLOT_WEB: usize = 0;
pub const SLOT_MASK: usize = 1;
pub const SLOT_FALLBACK: usize = 2;
pub const SLOT_L2: usize = 3;

pub fn web_def() -> ServiceDef {
    ServiceDef::well_known(0).expect("web-cache")
}

pub fn mask_def() -> ServiceDef {
    ServiceDef::dynamic(
        S_MASK.id,
        200,
        6,
        flags::PORTS_DEFINED,
        [8080, 0, 0, 0, 0, 0, 0, 0],
    )
    .expect("mask service")
}

pub fn fallback_def() -> ServiceDef {
    ServiceDef::dynamic(
        S_FALLBACK.id,
        150,
        6,
        flags::PORTS_DEFINED | flags::SRC_IP_HASH,
        [80, 0, 0, 0, 0, 0, 0, 0],
    )
    .expect("fallback service")
}

pub fn l2_def() -> ServiceDef {
    ServiceDef::dynamic(
        S_L2.id,
        100,
        6,
        flags::PORTS_DEFINED | flags::SRC_IP_HASH,
        [443, 0, 0, 0, 0, 0, 0, 0],
    )
    .expect("L2 service")
}

/// The primary bucket of a web-cache packet to `dst` (hash on the destination).
pub fn web_bucket(src: Ipv4Addr, dst: Ipv4Addr) -> u8 {
    primary_bucket(
        web_def().flags,
        &FlowKey::new(u32::from(src), u32::from(dst), 40000, 80),
    )
}

/// The alternate bucket of a web-cache packet from `src` (hash on the source).
pub fn web_alt_bucket(src: Ipv4Addr, dst: Ipv4Addr) -> u8 {
    alternate_bucket(
        web_def().flags,
        &FlowKey::new(u32::from(src), u32::from(dst), 40000, 80),
    )
}

/// The web-cache bucket octets: everything to A (index 0) except the named destinations.
pub fn web_buckets() -> [u8; 256] {
    let mut b = [0u8; 256];
    let special = [
        (web_bucket(CLIENT_IP, DST_B), 1),
        (web_bucket(CLIENT_IP, DST_ALT), 0x80),
        (web_bucket(CLIENT_IP, DST_UNASSIGNED), 0xff),
        (web_bucket(CLIENT_IP, DST_UNRESOLVED), 2),
        (web_alt_bucket(CLIENT_IP, DST_ALT), 1),
    ];
    let mut seen = Vec::new();
    for (bucket, v) in special {
        assert!(!seen.contains(&bucket), "lab buckets collide: {bucket}");
        seen.push(bucket);
        b[usize::from(bucket)] = v;
    }
    assert!(!seen.contains(&web_bucket(CLIENT_IP, DST_A)));
    b
}

pub fn web_table() -> RedirectTable {
    RedirectTable::hash(
        web_def(),
        vec![
            Target::new(CACHE_A, ForwardingMethod::Gre),
            Target::new(CACHE_B, ForwardingMethod::Gre),
            Target::new(CACHE_C, ForwardingMethod::Gre),
        ],
        &web_buckets(),
    )
    .expect("web table")
}

/// Mask on the destination's low bit: even to A, odd to B.
pub fn mask_table() -> RedirectTable {
    let mask = MaskTuple::new(0, 1, 0, 0);
    let set = MaskSet {
        mask,
        values: vec![
            ValueElement {
                value: MaskTuple::new(0, 0, 0, 0),
                cache: u32::from(CACHE_A),
            },
            ValueElement {
                value: MaskTuple::new(0, 1, 0, 0),
                cache: u32::from(CACHE_B),
            },
        ],
    };
    RedirectTable::from_mask_sets(mask_def(), &[set], ForwardingMethod::Gre).expect("mask table")
}

pub fn fallback_table() -> RedirectTable {
    RedirectTable::hash(
        fallback_def(),
        vec![Target::new(CACHE_B, ForwardingMethod::Gre)],
        &[0u8; 256],
    )
    .expect("fallback table")
}

pub fn l2_table() -> RedirectTable {
    RedirectTable::hash(
        l2_def(),
        vec![Target::new(CACHE_L2, ForwardingMethod::L2)],
        &[0u8; 256],
    )
    .expect("L2 table")
}

fn port(name: &str, i: usize) -> PortInfo {
    PortInfo {
        name: name.into(),
        mac: PORT_MAC[i],
        addrs: vec![(PORT_IP[i], 24)],
        mtu: 1500,
        redirect_in: false,
        redirect_out: false,
        exclude_in: false,
    }
}

/// The three-port topology (no services' tables: those are [`State`]).
pub fn topology() -> Topology {
    let mut client = port("client", 0);
    client.redirect_in = true;
    let server = port("server", 1);
    let mut cache = port("cache", 2);
    cache.exclude_in = true;
    Topology {
        ports: vec![client, server, cache],
        routes: vec![(REMOTE_NET.parse::<Ipv4Net>().expect("net"), GW_IP)],
        neighbours: vec![
            (CLIENT_IP, CLIENT_MAC),
            (SERVER_IP, SERVER_MAC),
            (GW_IP, GW_MAC),
            (CACHE_A, CACHE_A_MAC),
            (CACHE_B, CACHE_B_MAC),
            (CACHE_IDLE, CACHE_IDLE_MAC),
            (CACHE_L2, CACHE_L2_MAC),
            (CACHE_NET_HOST, CACHE_NET_HOST_MAC),
        ],
        services: vec![
            (S_WEB, Vec::new()),
            (S_MASK, Vec::new()),
            (S_FALLBACK, Vec::new()),
            (S_L2, Vec::new()),
        ],
        check_all: false,
        router_id: ROUTER_ID,
        statics: Default::default(),
    }
}

/// A topology and the changing state the tables are compiled from.
#[derive(Clone, Debug)]
pub struct Lab {
    pub topo: Topology,
    pub state: State,
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

/// The lab with the web-cache service alone: the burst pre-pass's case (`lanes`).
pub fn web_only() -> Lab {
    Lab::new()
        .table(S_MASK, None)
        .table(S_FALLBACK, None)
        .table(S_L2, None)
}

impl Lab {
    /// Every service active; caches A and B sent their HERE_I_AMs to 10.0.3.1.
    pub fn new() -> Lab {
        let mut state = State::default();
        state.redirect.insert(S_WEB, Arc::new(web_table()));
        state.redirect.insert(S_MASK, Arc::new(mask_table()));
        state
            .redirect
            .insert(S_FALLBACK, Arc::new(fallback_table()));
        state.redirect.insert(S_L2, Arc::new(l2_table()));
        state.cache_local.insert(CACHE_A, PORT_IP[2]);
        state.cache_local.insert(CACHE_B, PORT_IP[2]);
        Lab {
            topo: topology(),
            state,
        }
    }

    /// Replaces (or with `None` removes) a service's table.
    pub fn table(mut self, key: ServiceKey, t: Option<RedirectTable>) -> Lab {
        match t {
            Some(t) => self.state.redirect.insert(key, Arc::new(t)),
            None => self.state.redirect.remove(&key),
        };
        self
    }

    /// A web-cache redirect list denying [`DST_DENIED`] and permitting the rest.
    pub fn with_deny(mut self) -> Lab {
        let deny = RedirectRule {
            dst: Ipv4Net::from(DST_DENIED),
            ..RedirectRule::any(RuleAction::Deny)
        };
        self.topo.services[SLOT_WEB].1 = vec![deny, RedirectRule::any(RuleAction::Permit)];
        self
    }

    /// Changes one port.
    pub fn port(mut self, p: u16, f: impl FnOnce(&mut PortInfo)) -> Lab {
        f(&mut self.topo.ports[usize::from(p)]);
        self
    }

    /// The compiled tables.
    pub fn tables(&self) -> Tables {
        compile(&self.topo, &self.state, 1).tables
    }
}

/// One frame through [`process`] with fresh counters and an ICMP budget.
pub struct Run {
    pub action: Action,
    pub buf: VecBuf,
    pub counters: LcoreCounters,
}

impl Run {
    /// The output frame.
    pub fn frame(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// The terminal reasons counted (exactly one for every processed frame).
    pub fn terminal(&self) -> Vec<Reason> {
        Reason::ALL
            .iter()
            .copied()
            .filter(|r| r.is_terminal() && self.counters.get(*r) > 0)
            .collect()
    }

    /// Asserts the frame was sent on `port`, counting `reason` as its one terminal verdict.
    #[track_caller]
    pub fn expect_tx(&self, port: u16, reason: Reason) -> &[u8] {
        assert_eq!(self.action, Action::Tx(port), "action");
        assert_eq!(self.terminal(), vec![reason], "terminal verdict");
        assert_eq!(self.counters.get(Reason::Rx), 1);
        self.frame()
    }

    /// Asserts the frame was dropped for `reason` (and counted once).
    #[track_caller]
    pub fn expect_drop(&self, reason: Reason) {
        assert_eq!(self.action, Action::Drop(reason), "action");
        assert_eq!(self.terminal(), vec![reason], "terminal verdict");
        assert_eq!(self.counters.get(reason), 1);
    }

    /// Asserts the frame was punted.
    #[track_caller]
    pub fn expect_punt(&self) {
        assert_eq!(self.action, Action::Punt, "action");
        assert_eq!(self.terminal(), vec![Reason::Punted], "terminal verdict");
    }
}

/// A pipeline entry point: `process` (the fast path first) or `process_general`.
pub type Process = fn(&mut Ctx<'_>, u16, &mut VecBuf) -> Action;

/// Runs `buf` through `f` on `in_port` with the ICMP budget `icmp` at tick `now`.
pub fn run_with(
    t: &Tables,
    in_port: u16,
    mut buf: VecBuf,
    f: Process,
    mut icmp: RateLimit,
    now: u64,
) -> Run {
    let counters = LcoreCounters::default();
    let mut cx = Ctx {
        tables: t,
        counters: &counters,
        icmp: &mut icmp,
        now,
    };
    let action = f(&mut cx, in_port, &mut buf);
    Run {
        action,
        buf,
        counters,
    }
}

/// Runs `buf` through the pipeline on `in_port` with a generous ICMP budget.
pub fn run_buf(t: &Tables, in_port: u16, buf: VecBuf) -> Run {
    let icmp = RateLimit::new(1000, 100, 1_000_000);
    run_with(t, in_port, buf, process, icmp, 1)
}

/// Runs `buf` through the pipeline with an exhausted ICMP budget (every ICMP error is
/// rate-limited).
pub fn run_limited(t: &Tables, in_port: u16, buf: VecBuf) -> Run {
    run_with(t, in_port, buf, process, RateLimit::new(1, 0, 1_000_000), 0)
}

/// Runs `frame` through the pipeline on `in_port`.
pub fn run(t: &Tables, in_port: u16, frame: &[u8]) -> Run {
    run_buf(t, in_port, VecBuf::new(in_port, frame))
}

/// An Ethernet II frame.
pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A frame from the host with MAC `from` to the router's port `p`.
pub fn to_port(p: u16, from: [u8; 6], ip: &[u8]) -> Vec<u8> {
    eth(PORT_MAC[usize::from(p)], from, 0x0800, ip)
}

/// The frame the router sends out of port `p` to `to`.
pub fn from_port(p: u16, to: [u8; 6], ip: &[u8]) -> Vec<u8> {
    eth(to, PORT_MAC[usize::from(p)], 0x0800, ip)
}

/// A TCP segment in IPv4, described field by field so that the expected output can be built
/// from the same description with other values.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    pub df: bool,
    pub ident: u16,
    /// IPv4 options (a multiple of 4 octets).
    pub ip_options: Vec<u8>,
    pub syn: bool,
    pub ack: bool,
    pub mss: Option<u16>,
    /// Put a NOP before the MSS option, so the option starts at an odd offset.
    pub nop_before_mss: bool,
    pub payload: Vec<u8>,
}

impl Tcp {
    /// A data segment with 16 octets of payload, TTL 64, DF set.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Tcp {
        Tcp {
            src,
            dst,
            sport,
            dport,
            ttl: 64,
            df: true,
            ident: 0x4242,
            ip_options: Vec::new(),
            syn: false,
            ack: true,
            mss: None,
            nop_before_mss: false,
            payload: (0..16).collect(),
        }
    }

    /// The client's web request to `dst`.
    pub fn web(dst: Ipv4Addr) -> Tcp {
        Tcp::new(CLIENT_IP, dst, 40000, 80)
    }

    /// A SYN with an MSS option.
    pub fn syn(mut self, mss: u16) -> Tcp {
        self.syn = true;
        self.ack = false;
        self.mss = Some(mss);
        self.payload.clear();
        self
    }

    /// A SYN-ACK with an MSS option.
    pub fn syn_ack(mut self, mss: u16) -> Tcp {
        self.syn = true;
        self.ack = true;
        self.mss = Some(mss);
        self.payload.clear();
        self
    }

    pub fn ttl(mut self, ttl: u8) -> Tcp {
        self.ttl = ttl;
        self
    }

    pub fn df(mut self, df: bool) -> Tcp {
        self.df = df;
        self
    }

    pub fn payload_len(mut self, n: usize) -> Tcp {
        self.payload = (0..n).map(|i| i as u8).collect();
        self
    }

    /// The IPv4 packet.
    pub fn ip(&self) -> Vec<u8> {
        let mut h = Ipv4Header::new(
            0,
            self.ttl,
            IpNumber::TCP,
            self.src.octets(),
            self.dst.octets(),
        )
        .expect("header");
        h.dont_fragment = self.df;
        h.identification = self.ident;
        h.options = self.ip_options.as_slice().try_into().expect("IPv4 options");
        let mut b = PacketBuilder::ip(IpHeaders::Ipv4(h, Default::default()))
            .tcp(self.sport, self.dport, 1_000, 64_240);
        if self.syn {
            b = b.syn();
        }
        if self.ack {
            b = b.ack(77);
        }
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            b = if self.nop_before_mss {
                b.options_raw(&[1, 2, 4, m[0], m[1], 1, 1, 1])
            } else {
                b.options(&[TcpOptionElement::MaximumSegmentSize(mss)])
            }
            .expect("options");
        }
        let mut v = Vec::new();
        b.write(&mut v, &self.payload).expect("write");
        v
    }
}

/// A UDP datagram in IPv4 (DF clear).
pub fn udp_ip(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, src.octets(), dst.octets()).expect("hdr");
    h.dont_fragment = false;
    let b = PacketBuilder::ip(IpHeaders::Ipv4(h, Default::default())).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("write");
    v
}

/// An ICMP echo request in IPv4.
pub fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ip(IpHeaders::Ipv4(
        Ipv4Header::new(0, ttl, IpNumber::ICMP, src.octets(), dst.octets()).expect("hdr"),
        Default::default(),
    ))
    .icmpv4_echo_request(0x1234, 7);
    let mut v = Vec::new();
    b.write(&mut v, b"ping payload").expect("write");
    v
}

/// An IPv4 header (20 octets, valid checksum) for `payload_len` octets of `proto`.
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpNumber,
    ttl: u8,
    payload_len: usize,
) -> Vec<u8> {
    let mut h = Ipv4Header::new(payload_len as u16, ttl, proto, src.octets(), dst.octets())
        .expect("header");
    h.dont_fragment = false;
    let mut v = Vec::new();
    h.write(&mut v).expect("write");
    v
}

/// The WCCP GRE packet (outer IPv4 + GRE 0x883E + redirect header + inner) the router sends to
/// a cache, built independently: outer TTL 255, ident 0, DF clear.
pub fn wccp_gre(outer_src: Ipv4Addr, cache: Ipv4Addr, rh: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut v = ipv4_header(outer_src, cache, IpNumber::GRE, 255, 8 + inner.len());
    v.extend_from_slice(&[0, 0, 0x88, 0x3e]);
    v.extend_from_slice(&rh);
    v.extend_from_slice(inner);
    v
}

/// A cache's GRE packet return: GRE protocol `proto` (0x883E with `rh`, or 0x0800 without).
pub fn gre_return(cache: Ipv4Addr, proto: u16, rh: Option<[u8; 4]>, inner: &[u8]) -> Vec<u8> {
    let extra = 4 + rh.map_or(0, |_| 4);
    let mut v = ipv4_header(cache, PORT_IP[2], IpNumber::GRE, 64, extra + inner.len());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&proto.to_be_bytes());
    if let Some(rh) = rh {
        v.extend_from_slice(&rh);
    }
    v.extend_from_slice(inner);
    v
}

/// Parses an Ethernet frame with etherparse, asserting a valid IPv4 header checksum.
#[track_caller]
pub fn parse(frame: &[u8]) -> SlicedPacket<'_> {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse parses the frame");
    if let Some(NetSlice::Ipv4(ip)) = &p.net {
        let h = ip.header().to_header();
        assert_eq!(
            h.calc_header_checksum(),
            h.header_checksum,
            "IPv4 header checksum"
        );
    }
    p
}

/// The IPv4 header of a parsed frame.
#[track_caller]
pub fn ipv4(p: &SlicedPacket<'_>) -> Ipv4Header {
    match &p.net {
        Some(NetSlice::Ipv4(ip)) => ip.header().to_header(),
        other => panic!("not IPv4: {other:?}"),
    }
}

/// Parses an IPv4 packet (no link layer), asserting a valid header checksum.
#[track_caller]
pub fn parse_ip(ip: &[u8]) -> SlicedPacket<'_> {
    let p = SlicedPacket::from_ip(ip).expect("etherparse parses the IPv4 packet");
    let h = ipv4(&p);
    assert_eq!(
        h.calc_header_checksum(),
        h.header_checksum,
        "inner checksum"
    );
    p
}

/// Asserts the TCP checksum of a parsed packet is valid (etherparse computes it) and returns
/// the MSS option's value, if any.
#[track_caller]
pub fn tcp_checked(p: &SlicedPacket<'_>) -> Option<u16> {
    let h = ipv4(p);
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        panic!("not TCP");
    };
    let want = tcp
        .calc_checksum_ipv4(h.source, h.destination)
        .expect("checksum");
    assert_eq!(tcp.checksum(), want, "TCP checksum");
    tcp.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    })
}

/// Asserts an ICMP message's checksum is valid.
#[track_caller]
pub fn icmp_checked(p: &SlicedPacket<'_>) -> etherparse::Icmpv4Type {
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("not ICMP");
    };
    let sum = etherparse::checksum::Sum16BitWords::new()
        .add_slice(icmp.slice())
        .ones_complement();
    assert_eq!(sum, 0, "ICMP checksum");
    icmp.icmp_type()
}

// ---- control plane ----

/// Makes `VecBuf`s.
pub struct VecAlloc;

impl Alloc for VecAlloc {
    type Buf = VecBuf;
    fn alloc(&mut self, frame: &[u8]) -> Option<VecBuf> {
        Some(VecBuf::new(0, frame))
    }
}

/// The HERE_I_AM Squid 5.7 sent (service 0, cache 10.200.0.2 to router 10.200.0.1), from the
/// copy the wire crate's vector tests use (crates/wccp-wire/tests/vectors, identical to
/// shared/wccp/vectors), read at test time.
pub fn squid_here_i_am() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wccp-wire/tests/vectors/squid_here_i_am.hex");
    let hex = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "test vector {} is missing ({e}): it is part of the repository \
             (crates/wccp-wire/tests/vectors, copied from shared/wccp/vectors)",
            path.display()
        )
    });
    let hex = hex.trim();
    assert!(hex.len() % 2 == 0, "odd hex in {}", path.display());
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A control plane running the web-cache service on `topo`: every port address is a router
/// address, the router ID is the first one, and the RCU cell has no readers.
pub fn control_plane(topo: Topology) -> ControlPlane<VecBuf> {
    let mut addresses: Vec<Ipv4Addr> = topo
        .ports
        .iter()
        .flat_map(|p| p.addrs.iter().map(|a| a.0))
        .collect();
    addresses.sort();
    let router = Router::new(RouterConfig {
        router_id: Some(ROUTER_ID),
        addresses,
        services: vec![ServiceConfig::web_cache()],
    })
    .expect("router config");
    let (publisher, _readers) = rcu::cell(initial_tables(&topo), 0);
    ControlPlane::new(router, topo, publisher, Arc::new(LcoreCounters::default()))
}

/// Runs `frame` through the pipeline on the control plane's tables; a punt goes to the control
/// plane with the port a worker gives it (the arrival port, or the egress port of a held
/// frame). Returns the pipeline's run.
pub fn deliver(
    cp: &mut ControlPlane<VecBuf>,
    now: control::Instant,
    port: u16,
    frame: &[u8],
) -> Run {
    let r = run(cp.tables(), port, frame);
    if r.action == Action::Punt {
        let mut b = r.buf.clone();
        if !wccp_dataplane::worker::is_held(&b) {
            b.set_port(port);
        }
        cp.handle_punt(now, b, &mut VecAlloc);
    }
    r
}
