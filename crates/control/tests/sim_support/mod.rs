//! Deterministic in-process simulation of R routers × C caches running the real
//! [`Router`] and [`CacheAgent`] state machines over a lossy, duplicating, reordering network
//! driven by a seeded PRNG, in virtual time.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use assign::RedirectTable;
use wccp_control::cache::{CacheAgent, CacheConfig, CacheService, ServiceDefinition};
use wccp_control::router::{Router, RouterConfig, ServiceConfig as RouterService};
use wccp_control::{Datagram, Instant, Machine, Output, ServiceKey};

/// Standard service 0.
pub const SVC: ServiceKey = ServiceKey {
    dynamic: false,
    id: 0,
};
/// TRANSMIT_T in ms.
pub const T: u64 = 10_000;

/// splitmix64: tiny, deterministic, good enough for a network model.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `permille`/1000.
    pub fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }
}

/// Network impairments.
#[derive(Clone, Copy, Debug)]
pub struct NetModel {
    /// Fixed one-way delay, ms.
    pub delay_ms: u64,
    /// Extra uniform delay 0..jitter (reorders messages closer than this), ms.
    pub jitter_ms: u64,
    /// Loss probability, per mille.
    pub loss_permille: u64,
    /// Duplication probability, per mille.
    pub dup_permille: u64,
}

impl NetModel {
    pub const CLEAN: NetModel = NetModel {
        delay_ms: 1,
        jitter_ms: 0,
        loss_permille: 0,
        dup_permille: 0,
    };
    /// Reordering only (40 ms jitter: HERE_I_AMs of different caches and I_SEE_YOUs overtake
    /// each other).
    pub const REORDER: NetModel = NetModel {
        delay_ms: 1,
        jitter_ms: 40,
        loss_permille: 0,
        dup_permille: 0,
    };
    /// Reordering plus 0.5 % loss and 0.5 % duplication.
    pub const LOSSY: NetModel = NetModel {
        delay_ms: 1,
        jitter_ms: 40,
        loss_permille: 5,
        dup_permille: 5,
    };
}

pub enum Kind {
    Router(Box<Router>),
    Cache(Box<CacheAgent>),
}

pub struct Node {
    pub addr: Ipv4Addr,
    pub kind: Kind,
    pub alive: bool,
    /// `poll_timeout()` as of the last time the node was touched.
    next: Option<u64>,
}

impl Node {
    fn machine(&mut self) -> &mut dyn Machine {
        match &mut self.kind {
            Kind::Router(r) => r.as_mut(),
            Kind::Cache(c) => c.as_mut(),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match &self.kind {
            Kind::Router(r) => r.poll_timeout(),
            Kind::Cache(c) => c.poll_timeout(),
        }
    }
}

/// A datagram on the wire: (arrival ms, sequence, destination node, payload, source address).
type InFlight = (u64, u64, usize, Vec<u8>, Ipv4Addr);

/// Owner of each bucket (by cache address) as a router's published table says.
pub type Owners = [Option<Ipv4Addr>; 256];

pub fn owners(t: &RedirectTable) -> Owners {
    let mut o = [None; 256];
    let target = |i: u8| {
        t.targets()
            .get(usize::from(i))
            .filter(|tg| !tg.drained)
            .map(|tg| tg.addr)
    };
    match t.distribution() {
        assign::table::Distribution::Hash { buckets } => {
            for (slot, b) in o.iter_mut().zip(buckets.iter()) {
                *slot = b.target().and_then(target);
            }
        }
        assign::table::Distribution::Mask(_) => {
            // Slot i: the i-th of the 64 values of mask 0x1741 on the destination address
            // (standard service 0), repeated four times.
            let values: Vec<u32> = assign::spread::squid_mask_values().collect();
            for (i, slot) in o.iter_mut().enumerate() {
                let key = assign::hash::FlowKey::new(0x0A00_0001, values[i % 64], 40_000, 80);
                *slot = match t.lookup(&key) {
                    assign::table::Lookup::Redirect { target: i, .. } => target(i),
                    assign::table::Lookup::Forward => None,
                };
            }
        }
        assign::table::Distribution::Empty => {}
    }
    o
}

pub struct Sim {
    pub now: u64,
    pub nodes: Vec<Node>,
    by_addr: BTreeMap<u32, usize>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    pub rng: Rng,
    pub net: NetModel,
    /// Latest published table per router node index.
    pub tables: BTreeMap<usize, Option<Arc<RedirectTable>>>,
    /// Bucket owners of `tables` (computed once per publication).
    owners: BTreeMap<usize, Option<Owners>>,
    /// (time, router node, owners) whenever a router's bucket ownership changes.
    pub changes: Vec<(u64, usize, Owners)>,
    pub delivered: u64,
    pub dropped: u64,
    /// Event counts by "who kind".
    pub events: BTreeMap<String, u64>,
    /// Times of every router Member Change Number change.
    pub router_membership: Vec<u64>,
    /// Print every event.
    pub trace: bool,
    /// The service every cache joins.
    pub service: CacheService,
    /// Caches not started yet: node -> start time.
    pending: BTreeMap<usize, u64>,
}

pub fn router_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, 1 + i as u8)
}

pub fn cache_addr(i: usize) -> Ipv4Addr {
    // Spread over several /24s so numeric order differs from last-octet order.
    Ipv4Addr::new(10, 2, (i % 3) as u8, 10 + (i * 7 % 200) as u8)
}

impl Sim {
    /// `routers` routers and `caches` caches; cache `i` starts at `start[i]` ms (its first
    /// HERE_I_AM).
    pub fn new(routers: usize, caches: usize, net: NetModel, seed: u64) -> Sim {
        Sim::with_service(
            routers,
            caches,
            net,
            seed,
            CacheService::new(ServiceDefinition::web_cache()),
        )
    }

    /// Like [`Sim::new`], every cache joining with `service` (standard 0 with other options).
    pub fn with_service(
        routers: usize,
        caches: usize,
        net: NetModel,
        seed: u64,
        service: CacheService,
    ) -> Sim {
        let mut sim = Sim {
            now: 0,
            nodes: Vec::new(),
            by_addr: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            net,
            tables: BTreeMap::new(),
            owners: BTreeMap::new(),
            changes: Vec::new(),
            delivered: 0,
            dropped: 0,
            pending: BTreeMap::new(),
            service: service.clone(),
            events: BTreeMap::new(),
            router_membership: Vec::new(),
            trace: std::env::var_os("SIM_TRACE").is_some(),
        };
        let raddrs: Vec<Ipv4Addr> = (0..routers).map(router_addr).collect();
        for &a in &raddrs {
            let cfg = RouterConfig {
                addresses: vec![a],
                router_id: None,
                services: vec![RouterService::web_cache()],
            };
            sim.add(a, Kind::Router(Box::new(Router::new(cfg).unwrap())));
        }
        for i in 0..caches {
            let a = cache_addr(i);
            sim.add(a, Kind::Cache(Box::new(new_cache(a, &raddrs, &service))));
        }
        sim
    }

    fn add(&mut self, addr: Ipv4Addr, kind: Kind) {
        let i = self.nodes.len();
        if matches!(kind, Kind::Router(_)) {
            self.tables.insert(i, None);
            self.owners.insert(i, None);
        }
        let next = match &kind {
            Kind::Router(r) => r.poll_timeout().map(|t| t.0),
            Kind::Cache(c) => c.poll_timeout().map(|t| t.0),
        };
        self.nodes.push(Node {
            addr,
            kind,
            alive: true,
            next,
        });
        self.by_addr.insert(addr.to_bits(), i);
    }

    pub fn router_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i].kind, Kind::Router(_)))
            .collect()
    }

    pub fn cache_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i].kind, Kind::Cache(_)))
            .collect()
    }

    pub fn alive_caches(&self) -> Vec<Ipv4Addr> {
        self.cache_nodes()
            .into_iter()
            .filter(|&i| self.nodes[i].alive)
            .map(|i| self.nodes[i].addr)
            .collect()
    }

    pub fn cache(&self, i: usize) -> &CacheAgent {
        match &self.nodes[i].kind {
            Kind::Cache(c) => c,
            Kind::Router(_) => panic!("node {i} is a router"),
        }
    }

    /// The cache node that believes it is designated (alive ones only).
    pub fn designated(&self) -> Vec<usize> {
        self.cache_nodes()
            .into_iter()
            .filter(|&i| self.nodes[i].alive && self.cache(i).is_designated(SVC))
            .collect()
    }

    /// Starts every cache at a random time in `0..max_ms` instead of all at 0.
    pub fn stagger(&mut self, max_ms: u64) {
        for i in self.cache_nodes() {
            self.nodes[i].alive = false;
            let at = self.rng.below(max_ms);
            self.pending.insert(i, at);
        }
    }

    /// Stops a node (no more input, output or timers); a crashed router forwards nothing, so its
    /// table is forgotten.
    pub fn crash(&mut self, node: usize) {
        self.nodes[node].alive = false;
        if let Some(o) = self.owners.get_mut(&node) {
            *o = None;
            self.tables.insert(node, None);
        }
    }

    /// Restarts a crashed router with fresh state (same configuration).
    pub fn restart_router(&mut self, node: usize) {
        let a = self.nodes[node].addr;
        let cfg = RouterConfig {
            addresses: vec![a],
            router_id: None,
            services: vec![RouterService::web_cache()],
        };
        self.nodes[node].kind = Kind::Router(Box::new(Router::new(cfg).unwrap()));
        self.nodes[node].alive = true;
        self.drain(node);
    }

    /// Restarts a crashed cache with fresh state.
    pub fn restart(&mut self, node: usize) {
        let raddrs: Vec<Ipv4Addr> = self
            .router_nodes()
            .into_iter()
            .map(|i| self.nodes[i].addr)
            .collect();
        let a = self.nodes[node].addr;
        let service = self.service.clone();
        self.nodes[node].kind = Kind::Cache(Box::new(new_cache(a, &raddrs, &service)));
        self.nodes[node].alive = true;
        self.nodes[node].next = self.nodes[node].poll_timeout().map(|t| t.0);
    }

    fn drain(&mut self, i: usize) {
        self.nodes[i].next = self.nodes[i].poll_timeout().map(|t| t.0);
        while let Some(o) = self.nodes[i].machine().poll_output() {
            match o {
                Output::Send(d) => self.transmit(d),
                Output::Publish { service, table } => {
                    assert_eq!(service, SVC);
                    let new = table.as_deref().map(owners);
                    let old = self.owners.get(&i).copied().flatten();
                    if new != old {
                        self.changes.push((self.now, i, new.unwrap_or([None; 256])));
                    }
                    self.owners.insert(i, new);
                    self.tables.insert(i, table);
                }
                Output::Event(e) => {
                    let k = match &e {
                        wccp_control::Event::Dropped { reason, .. } => {
                            format!("drop {}", reason.as_str())
                        }
                        wccp_control::Event::MembershipChanged { .. } => "membership".to_owned(),
                        wccp_control::Event::Assignment { .. } => "assignment".to_owned(),
                    };
                    let is_router = matches!(self.nodes[i].kind, Kind::Router(_));
                    if is_router && matches!(e, wccp_control::Event::MembershipChanged { .. }) {
                        self.router_membership.push(self.now);
                    }
                    let who = if is_router { "router" } else { "cache" };
                    *self.events.entry(format!("{who} {k}")).or_insert(0) += 1;
                    if self.trace {
                        println!("{:>8} {} {:?}", self.now, self.nodes[i].addr, e);
                    }
                }
            }
        }
    }

    fn transmit(&mut self, d: Datagram) {
        let Some(&to) = self.by_addr.get(&d.peer.to_bits()) else {
            return;
        };
        let copies = if self.rng.chance(self.net.dup_permille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.chance(self.net.loss_permille) {
                self.dropped += 1;
                continue;
            }
            let delay = self.net.delay_ms
                + if self.net.jitter_ms > 0 {
                    self.rng.below(self.net.jitter_ms)
                } else {
                    0
                };
            self.seq += 1;
            self.queue.push(Reverse((
                self.now + delay,
                self.seq,
                to,
                d.payload.clone(),
                d.local,
            )));
        }
    }

    fn next_event(&self) -> Option<u64> {
        let q = self.queue.peek().map(|Reverse(e)| e.0);
        let t = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .filter_map(|n| n.next)
            .map(|t| t.max(self.now))
            .min();
        let p = self.pending.values().copied().min();
        [q, t, p].into_iter().flatten().min()
    }

    /// Runs one instant: deliveries due now, then timers due now.
    fn step(&mut self, t: u64) {
        self.now = t;
        let due: Vec<usize> = self
            .pending
            .iter()
            .filter(|(_, &at)| at <= t)
            .map(|(&i, _)| i)
            .collect();
        for i in due {
            self.pending.remove(&i);
            self.restart(i);
        }
        while let Some(Reverse(e)) = self.queue.peek() {
            if e.0 > t {
                break;
            }
            let Some(Reverse((_, _, to, payload, from))) = self.queue.pop() else {
                break;
            };
            if !self.nodes[to].alive {
                self.dropped += 1;
                continue;
            }
            self.delivered += 1;
            let local = self.nodes[to].addr;
            self.nodes[to].machine().handle_datagram(
                Instant(t),
                Datagram {
                    local,
                    peer: from,
                    payload,
                },
            );
            self.drain(to);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].alive && self.nodes[i].next.is_some_and(|x| x <= t) {
                self.nodes[i].machine().handle_timeout(Instant(t));
                self.drain(i);
            }
        }
    }

    /// Runs until `until` (inclusive).
    pub fn run_until(&mut self, until: u64) {
        let mut spins = 0u32;
        while let Some(t) = self.next_event() {
            if t > until {
                break;
            }
            spins = if t == self.now { spins + 1 } else { 0 };
            assert!(spins < 100_000, "no progress at t={t}");
            self.step(t);
        }
        self.now = until;
    }

    /// Runs until `pred` holds (checked after every instant) or `until`; returns the time.
    pub fn run_until_pred(
        &mut self,
        until: u64,
        mut pred: impl FnMut(&Sim) -> bool,
    ) -> Option<u64> {
        if pred(self) {
            return Some(self.now);
        }
        while let Some(t) = self.next_event() {
            if t > until {
                break;
            }
            self.step(t);
            if pred(self) {
                return Some(t);
            }
        }
        self.now = until;
        None
    }

    /// Stops losing and duplicating (reordering stays).
    pub fn heal(&mut self) {
        self.net.loss_permille = 0;
        self.net.dup_permille = 0;
    }

    /// Every alive router's current bucket owners.
    pub fn router_owners(&self) -> Vec<Option<Owners>> {
        self.router_nodes()
            .into_iter()
            .filter(|&i| self.nodes[i].alive)
            .map(|i| self.owners.get(&i).copied().flatten())
            .collect()
    }

    /// All routers publish the same table, every bucket belongs to exactly one alive cache, and
    /// every alive cache owns at least one bucket.
    pub fn converged(&self) -> bool {
        let all = self.router_owners();
        let mut it = all.iter();
        let Some(Some(first)) = it.next() else {
            return false;
        };
        if !it.all(|o| o.as_ref() == Some(first)) {
            return false;
        }
        let alive: std::collections::BTreeSet<u32> = self
            .alive_caches()
            .into_iter()
            .map(Ipv4Addr::to_bits)
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for o in first {
            match o {
                Some(a) if alive.contains(&a.to_bits()) => {
                    seen.insert(a.to_bits());
                }
                _ => return false,
            }
        }
        seen == alive
    }

    /// No router's table sends anything to `addr`.
    pub fn nobody_uses(&self, addr: Ipv4Addr) -> bool {
        self.owners
            .values()
            .all(|o| o.is_none_or(|o| !o.contains(&Some(addr))))
    }
}

pub fn new_cache(addr: Ipv4Addr, routers: &[Ipv4Addr], service: &CacheService) -> CacheAgent {
    CacheAgent::new(CacheConfig::new(
        addr,
        routers.to_vec(),
        vec![service.clone()],
    ))
    .unwrap()
}
