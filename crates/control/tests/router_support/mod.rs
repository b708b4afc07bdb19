//! Test support for the router tests: a scripted fake cache that builds real, encoded WCCP
//! messages with the `wire` Reprs, and helpers to drain and classify router outputs.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use assign::RedirectTable;
use wccp_control::router::{Router, RouterConfig, ServiceConfig};
use wccp_control::{Datagram, Event, Instant, Machine, Output, ServiceKey};
use wire::{
    AltAssignmentBody, AlternateAssignment, Assignment, AssignmentData, AssignmentInfo,
    AssignmentKey, Capabilities, Capability, Command, CommandExtension, HashAssignmentData,
    HashBuckets, HereIAm, ISeeYou, IdentityFlags, MaskValueSet, MessageRepr, RedirectAssign,
    RouterAssignment, RouterIdElement, Security, ServiceInfo, Version, WebCacheIdentity,
    WebCacheViewInfo,
};

/// The router's address in every test.
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);

pub fn cache_addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, 0, n)
}

pub fn secs(s: u64) -> Instant {
    Instant(s * 1000)
}

pub fn web_cache_key() -> ServiceKey {
    ServiceKey {
        dynamic: false,
        id: 0,
    }
}

pub fn dyn_key(id: u8) -> ServiceKey {
    ServiceKey { dynamic: true, id }
}

/// A dynamic Service Info: TCP, src-IP hash, the given destination ports.
pub fn dyn_service(id: u8, ports: &[u16]) -> ServiceInfo {
    let mut p = [0u16; 8];
    p[..ports.len()].copy_from_slice(ports);
    ServiceInfo {
        service_type: wire::ServiceType::Dynamic,
        id,
        priority: 240,
        protocol: 6,
        flags: wire::ServiceFlags(0x11),
        ports: p,
    }
}

pub fn router_with(services: Vec<ServiceConfig>) -> Router {
    Router::new(RouterConfig {
        addresses: vec![ROUTER],
        router_id: None,
        services,
    })
    .expect("valid config")
}

/// Everything the router has queued.
pub fn drain(r: &mut Router) -> Vec<Output> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

pub fn sends(outs: &[Output]) -> Vec<Datagram> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

pub fn publishes(outs: &[Output]) -> Vec<(ServiceKey, Option<Arc<RedirectTable>>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Publish { service, table } => Some((*service, table.clone())),
            _ => None,
        })
        .collect()
}

pub fn events(outs: &[Output]) -> Vec<Event> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub fn drop_reasons(outs: &[Output]) -> Vec<&'static str> {
    events(outs)
        .into_iter()
        .filter_map(|e| match e {
            Event::Dropped { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

/// Component types of an encoded message, in order.
pub fn component_types(payload: &[u8]) -> Vec<u16> {
    let len = usize::from(u16::from_be_bytes([payload[6], payload[7]]));
    let mut o = 8;
    let mut v = Vec::new();
    while o + 4 <= 8 + len {
        v.push(u16::from_be_bytes([payload[o], payload[o + 1]]));
        o += 4 + usize::from(u16::from_be_bytes([payload[o + 2], payload[o + 3]]));
    }
    v
}

/// The raw body of the first component of type `t`.
pub fn component_body(payload: &[u8], t: u16) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([payload[6], payload[7]]));
    let mut o = 8;
    while o + 4 <= 8 + len {
        let k = u16::from_be_bytes([payload[o], payload[o + 1]]);
        let l = usize::from(u16::from_be_bytes([payload[o + 2], payload[o + 3]]));
        if k == t {
            return payload.get(o + 4..o + 4 + l);
        }
        o += 4 + l;
    }
    None
}

/// A scripted cache: remembers what the router told it, like a real one.
#[derive(Clone, Debug)]
pub struct FakeCache {
    pub addr: Ipv4Addr,
    pub service: ServiceInfo,
    pub password: Option<Vec<u8>>,
    pub caps: Option<Capabilities>,
    pub weight: u16,
    pub version: Version,
    pub mask: bool,
    /// Last Receive ID and change number heard from the router.
    pub receive_id: u32,
    pub change_number: u32,
    pub key_change: u32,
}

impl FakeCache {
    pub fn new(n: u8, service: ServiceInfo) -> Self {
        FakeCache {
            addr: cache_addr(n),
            service,
            password: None,
            caps: None,
            weight: 10_000,
            version: Version::V2_00,
            mask: false,
            receive_id: 0,
            change_number: 0,
            key_change: 0,
        }
    }

    pub fn web_cache(n: u8) -> Self {
        FakeCache::new(n, ServiceInfo::standard(0))
    }

    fn security(&self) -> Security {
        if self.password.is_some() {
            Security::MD5_UNSIGNED
        } else {
            Security::None
        }
    }

    fn seal(&self, mut v: Vec<u8>) -> Datagram {
        if let Some(p) = &self.password {
            wire::sign(&mut v, p).expect("sign");
        }
        Datagram {
            local: ROUTER,
            peer: self.addr,
            payload: v,
        }
    }

    pub fn identity(&self) -> WebCacheIdentity {
        let data = if self.mask {
            AssignmentData::Mask(wire::MaskAssignmentData {
                sets: vec![MaskValueSet::default()],
                weight: self.weight,
                status: 0,
            })
        } else {
            AssignmentData::Hash(HashAssignmentData {
                buckets: [0; 32],
                weight: self.weight,
                status: 0,
            })
        };
        WebCacheIdentity {
            addr: wire::Addr::from_ipv4(self.addr),
            hash_revision: 0,
            flags: IdentityFlags::EMPTY,
            data,
        }
    }

    pub fn here_i_am_repr(&self) -> HereIAm {
        HereIAm {
            version: self.version,
            security: self.security(),
            service: self.service,
            identity: self.identity(),
            view: WebCacheViewInfo {
                change_number: 1,
                routers: vec![RouterIdElement {
                    addr: wire::Addr::from_ipv4(ROUTER),
                    receive_id: self.receive_id,
                }],
                caches: vec![],
            },
            capabilities: self.caps.clone(),
            command: None,
            address_table: None,
        }
    }

    /// A HERE_I_AM echoing the last Receive ID heard.
    pub fn here_i_am(&self) -> Datagram {
        self.seal(self.here_i_am_repr().to_vec().expect("emit"))
    }

    /// A HERE_I_AM edited by `f` before encoding.
    pub fn here_i_am_with(&self, f: impl FnOnce(&mut HereIAm)) -> Datagram {
        let mut h = self.here_i_am_repr();
        f(&mut h);
        self.seal(h.to_vec().expect("emit"))
    }

    pub fn shutdown(&self) -> Datagram {
        let addr = wire::Addr::from_ipv4(self.addr);
        self.here_i_am_with(|h| {
            h.command = Some(CommandExtension {
                commands: vec![Command::Shutdown(addr)],
            })
        })
    }

    /// Takes an I_SEE_YOU addressed to us: records the Receive ID and change number.
    pub fn hear(&mut self, d: &Datagram) -> ISeeYou {
        assert_eq!(d.peer, self.addr, "ISY sent to the cache");
        assert_eq!(d.local, ROUTER, "ISY sent from the address the cache used");
        if let Some(p) = &self.password {
            wire::verify(&d.payload, p).expect("ISY signed with the group password");
        }
        let isy = ISeeYou::parse(&d.payload).expect("ISY parses");
        self.receive_id = isy.identity.router.receive_id;
        self.change_number = isy.view.change_number;
        isy
    }

    fn router_elements(&self) -> Vec<RouterAssignment> {
        vec![RouterAssignment {
            addr: wire::Addr::from_ipv4(ROUTER),
            receive_id: self.receive_id,
            change_number: self.change_number,
        }]
    }

    /// REDIRECT_ASSIGN (Assignment Info) with `caches` in index order and `buckets`.
    pub fn redirect_assign(&mut self, caches: &[Ipv4Addr], buckets: [u8; 256]) -> Datagram {
        self.key_change += 1;
        let ra = RedirectAssign {
            version: Version::V2_00,
            security: self.security(),
            service: self.service,
            assignment: Assignment::Hash(AssignmentInfo {
                key: AssignmentKey {
                    addr: wire::Addr::from_ipv4(self.addr),
                    change_number: self.key_change,
                },
                routers: self.router_elements(),
                hash: HashBuckets {
                    caches: caches.iter().map(|&a| wire::Addr::from_ipv4(a)).collect(),
                    buckets,
                },
            }),
            address_table: None,
        };
        self.seal(ra.to_vec().expect("emit"))
    }

    /// REDIRECT_ASSIGN with the router element overridden.
    pub fn redirect_assign_raw(
        &mut self,
        routers: Vec<RouterAssignment>,
        caches: &[Ipv4Addr],
        buckets: [u8; 256],
    ) -> Datagram {
        self.key_change += 1;
        let ra = RedirectAssign {
            version: Version::V2_00,
            security: self.security(),
            service: self.service,
            assignment: Assignment::Hash(AssignmentInfo {
                key: AssignmentKey {
                    addr: wire::Addr::from_ipv4(self.addr),
                    change_number: self.key_change,
                },
                routers,
                hash: HashBuckets {
                    caches: caches.iter().map(|&a| wire::Addr::from_ipv4(a)).collect(),
                    buckets,
                },
            }),
            address_table: None,
        };
        self.seal(ra.to_vec().expect("emit"))
    }

    /// REDIRECT_ASSIGN with an Alternate Assignment (mask or alternate mask body).
    pub fn redirect_assign_alt(&mut self, body: AltAssignmentBody) -> Datagram {
        self.key_change += 1;
        let ra = RedirectAssign {
            version: Version::V2_00,
            security: self.security(),
            service: self.service,
            assignment: Assignment::Alternate(AlternateAssignment {
                key: AssignmentKey {
                    addr: wire::Addr::from_ipv4(self.addr),
                    change_number: self.key_change,
                },
                routers: self.router_elements(),
                body,
            }),
            address_table: None,
        };
        self.seal(ra.to_vec().expect("emit"))
    }

    /// Capabilities choosing mask assignment (GRE forwarding and return).
    pub fn mask_caps() -> Capabilities {
        Capabilities {
            elements: vec![
                Capability::ForwardingMethod(1),
                Capability::AssignmentMethod(2),
                Capability::PacketReturnMethod(1),
            ],
        }
    }
}

/// Sends `d` at `now` and returns the outputs.
pub fn feed(r: &mut Router, now: Instant, d: Datagram) -> Vec<Output> {
    r.handle_datagram(now, d);
    drain(r)
}

/// Advances timers to `now` and returns the outputs.
pub fn tick(r: &mut Router, now: Instant) -> Vec<Output> {
    r.handle_timeout(now);
    drain(r)
}

/// HIA, ISY, echo HIA, ISY: the cache ends up usable. Returns the outputs of the second round,
/// which may also hold unsolicited I_SEE_YOUs to the caches already usable (the join is a
/// membership change); the answer to `c` comes first and is the only datagram sent to it.
pub fn join(r: &mut Router, c: &mut FakeCache, now: Instant) -> Vec<Output> {
    let o = feed(r, now, c.here_i_am());
    let s = sends(&o);
    assert_eq!(s.len(), 1, "one ISY: {o:?}");
    c.hear(&s[0]);
    let o = feed(r, now, c.here_i_am());
    let s = sends(&o);
    assert!(!s.is_empty(), "an ISY: {o:?}");
    assert_eq!(
        s.iter().filter(|d| d.peer == c.addr).count(),
        1,
        "one ISY to the joining cache: {o:?}"
    );
    c.hear(&s[0]);
    for d in &s[1..] {
        ISeeYou::parse(&d.payload).expect("only I_SEE_YOUs to the other caches");
    }
    o
}
