//! A scripted fake router for the cache agent tests, built on the wire Reprs.

#![allow(dead_code)]

pub mod squid;

use std::net::Ipv4Addr;

use wccp_control::cache::{CacheAgent, CacheConfig, CacheService, ServiceDefinition};
use wccp_control::{Datagram, Event, Instant, Machine, Output};
use wire::{
    Addr, AssignmentData, AssignmentKey, Capabilities, HashAssignmentData, HereIAm, ISeeYou,
    IdentityFlags, Message, RemovalQuery, RouterIdElement, RouterIdentityInfo, RouterQueryInfo,
    RouterViewInfo, Security, ServiceInfo, Version, WebCacheIdentity,
};

pub const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
pub const R1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const R2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn ms(t: u64) -> Instant {
    Instant(t)
}

pub fn cfg(routers: &[Ipv4Addr], svc: CacheService) -> CacheConfig {
    CacheConfig::new(US, routers.to_vec(), vec![svc])
}

pub fn web_cache() -> CacheService {
    CacheService::new(ServiceDefinition::web_cache())
}

pub fn agent(routers: &[Ipv4Addr], svc: CacheService) -> CacheAgent {
    CacheAgent::new(cfg(routers, svc)).unwrap()
}

/// Everything the agent wants to do now.
pub fn drain(a: &mut CacheAgent) -> Vec<Output> {
    std::iter::from_fn(|| a.poll_output()).collect()
}

/// Advances to `t` and returns the outputs.
pub fn tick(a: &mut CacheAgent, t: u64) -> Vec<Output> {
    a.handle_timeout(ms(t));
    drain(a)
}

/// Runs every timer up to and including `t` (in order), returning all outputs with their time.
pub fn run_until(a: &mut CacheAgent, t: u64) -> Vec<(u64, Output)> {
    let mut out = Vec::new();
    while let Some(next) = a.poll_timeout() {
        if next.0 > t {
            break;
        }
        a.handle_timeout(next);
        out.extend(drain(a).into_iter().map(|o| (next.0, o)));
    }
    out
}

/// The REDIRECT_ASSIGNs the agent sends while its timers run until `t` ([`run_until`]).
pub fn ras_until(a: &mut CacheAgent, t: u64) -> Vec<(Ipv4Addr, wire::RedirectAssign)> {
    let outs: Vec<Output> = run_until(a, t).into_iter().map(|(_, o)| o).collect();
    ras(&outs)
}

pub fn sent(outs: &[Output]) -> Vec<&Datagram> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(d) => Some(d),
            _ => None,
        })
        .collect()
}

pub fn events(outs: &[Output]) -> Vec<&Event> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub fn hias(outs: &[Output]) -> Vec<(Ipv4Addr, HereIAm)> {
    sent(outs)
        .into_iter()
        .filter_map(|d| match Message::parse(&d.payload).unwrap() {
            Message::HereIAm(h) => Some((d.peer, h)),
            _ => None,
        })
        .collect()
}

pub fn ras(outs: &[Output]) -> Vec<(Ipv4Addr, wire::RedirectAssign)> {
    sent(outs)
        .into_iter()
        .filter_map(|d| match Message::parse(&d.payload).unwrap() {
            Message::RedirectAssign(r) => Some((d.peer, r)),
            _ => None,
        })
        .collect()
}

/// A cache entry as a router lists it in its view.
pub fn listed(addr: Ipv4Addr, weight: u16, unassigned: bool) -> WebCacheIdentity {
    WebCacheIdentity {
        addr: Addr::from_ipv4(addr),
        hash_revision: 0,
        flags: if unassigned {
            IdentityFlags::UNASSIGNED
        } else {
            IdentityFlags::EMPTY
        },
        data: AssignmentData::Hash(HashAssignmentData {
            buckets: [0; 32],
            weight,
            status: 0,
        }),
    }
}

/// Scripted router state.
#[derive(Clone, Debug)]
pub struct FakeRouter {
    pub addr: Ipv4Addr,
    pub receive_id: u32,
    pub change: u32,
    pub key: AssignmentKey,
    pub caches: Vec<WebCacheIdentity>,
    pub caps: Option<Capabilities>,
    pub password: Option<Vec<u8>>,
    pub service: ServiceInfo,
}

impl FakeRouter {
    pub fn new(addr: Ipv4Addr) -> Self {
        FakeRouter {
            addr,
            receive_id: 100,
            change: 1,
            key: AssignmentKey::default(),
            caches: Vec::new(),
            caps: None,
            password: None,
            service: ServiceInfo::standard(0),
        }
    }

    fn security(&self) -> Security {
        if self.password.is_some() {
            Security::MD5_UNSIGNED
        } else {
            Security::None
        }
    }

    fn sign(&self, mut v: Vec<u8>) -> Vec<u8> {
        if let Some(p) = &self.password {
            wire::sign(&mut v, p).unwrap();
        }
        v
    }

    /// The next I_SEE_YOU to `to` (Receive ID incremented first).
    pub fn isy_msg(&mut self, to: Ipv4Addr) -> ISeeYou {
        self.receive_id += 1;
        ISeeYou {
            version: Version::V2_00,
            security: self.security(),
            service: self.service,
            identity: RouterIdentityInfo {
                router: RouterIdElement {
                    addr: Addr::from_ipv4(self.addr),
                    receive_id: self.receive_id,
                },
                sent_to: Addr::from_ipv4(self.addr),
                received_from: vec![Addr::from_ipv4(to)],
            },
            view: RouterViewInfo {
                change_number: self.change,
                key: self.key,
                routers: vec![Addr::from_ipv4(self.addr)],
                caches: self.caches.clone(),
            },
            assignment_map: None,
            alt_assignment_map: None,
            capabilities: self.caps.clone(),
            command: None,
            address_table: None,
        }
    }

    pub fn encode(&self, to: Ipv4Addr, m: &impl wire::MessageRepr) -> Datagram {
        Datagram {
            local: to,
            peer: self.addr,
            payload: self.sign(m.to_vec().unwrap()),
        }
    }

    pub fn isy(&mut self, to: Ipv4Addr) -> Datagram {
        let m = self.isy_msg(to);
        self.encode(to, &m)
    }

    pub fn rq(&mut self, to: Ipv4Addr) -> Datagram {
        let m = RemovalQuery {
            version: Version::V2_00,
            security: self.security(),
            service: self.service,
            query: RouterQueryInfo {
                router: Addr::from_ipv4(self.addr),
                receive_id: self.receive_id + 1,
                sent_to: Addr::from_ipv4(self.addr),
                target: Addr::from_ipv4(to),
            },
            address_table: None,
        };
        self.encode(to, &m)
    }
}

/// The receive id our HIA echoes for router `r`.
pub fn echoed(h: &HereIAm, r: Ipv4Addr) -> Option<u32> {
    h.view
        .routers
        .iter()
        .find(|e| e.addr == Addr::from_ipv4(r))
        .map(|e| e.receive_id)
}
