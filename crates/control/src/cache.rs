//! Cache agent: HERE_I_AM, Web-Cache View, designated-cache election and REDIRECT_ASSIGN
//! (docs/protocol.md §5.4, §10; the patent's FIG. 3 loop on the cache side).
//!
//! Sans-IO like [`crate::router`]: [`CacheAgent`] implements [`Machine`]; it never reads a clock.
//!
//! # Behaviour, per configured service group
//! * A HERE_I_AM goes to every configured router every TRANSMIT_T (the first at the first
//!   `handle_timeout`). It carries our Web-Cache Identity (U set until a router reports us
//!   assigned or accepts an assignment of ours that gives us buckets; our weight; status 0) and
//!   our Web-Cache View: each router with the last Receive ID heard from it (0 before the first
//!   I_SEE_YOU) and every cache learnt from the routers' views; its change number is bumped
//!   whenever that cache set or the router list (a router given up, a router ID learnt) changes.
//! * An I_SEE_YOU is accepted only from a configured router, with the configured security,
//!   service definition, and our address among its Received-From addresses. Its Receive ID,
//!   member change number, router list, cache list and assignment key are recorded. Capabilities
//!   are negotiated: for each type the router offers we choose our most preferred acceptable
//!   value and put exactly that in the next HERE_I_AM; if the router offers nothing we accept, we
//!   stop joining it and [`CacheAgent::status`] says why.
//! * A REMOVAL_QUERY for us is answered with three HERE_I_AMs 1 s (0.1·T) apart echoing its
//!   Receive ID.
//! * A router that sends no I_SEE_YOU for 3·T is dropped back to the seed state (its view is
//!   forgotten), so a dead router does not block the election forever.
//! * **Designated cache** = the numerically lowest address (big-endian `u32`, docs/protocol.md A6) among
//!   the caches listed by *every* router we are joined to. The designated cache waits until
//!   membership has been stable for 1.5·T (no member change number, router set, cache set or
//!   weight change), then sends a REDIRECT_ASSIGN to every joined router, built with
//!   [`assign::spread`], with one Router Assignment Element per joined router (its last Receive
//!   ID and member change number) and the Assignment Key = our address + a change number bumped
//!   for every new assignment. It resends to a router whose I_SEE_YOU shows a different key, at
//!   most once per T.
//! * With a password every message is MD5-signed and every received one verified.
//! * **Health** ([`CacheAgent::set_healthy`]): the daemon probes the proxy beside the agent and
//!   reports each change. Unhealthy: the agent *leaves* every group at once (a HERE_I_AM
//!   carrying SHUTDOWN to every router, so the routers drain it without waiting 3·T), forgets
//!   what the routers told it, sends nothing and ignores what arrives. Healthy again: it
//!   *rejoins* (HERE_I_AMs at once, then every T, as at start).

mod config;
mod status;

use core::net::Ipv4Addr;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use assign::spread::{self, MaskSpread, BUCKETS};
use wire::Addr;
use wire::{
    AddressTable, AltAssignmentBody, AlternateAssignment, Assignment, AssignmentData,
    AssignmentInfo, AssignmentKey, Capabilities, Capability, Command, CommandExtension,
    ExtendedData, HashAssignmentData, HashBuckets, HereIAm, ISeeYou, IdentityFlags,
    MaskAssignmentData, MaskElement, MaskValueSet, Message, MessageRepr, RedirectAssign,
    RemovalQuery, RouterAssignment, RouterIdElement, Security, ServiceInfo, ServiceType,
    ValueElement, Version, WebCacheIdentity, WebCacheViewInfo,
};

pub use config::{
    AssignMethod, CacheConfig, CacheService, ConfigError, HashField, HashFields, MaskConfig,
    Method, PortsAre, ServiceDefinition, SpreadAlgorithm, DEFAULT_TRANSMIT_T, DEFAULT_WEIGHT,
    MAX_PASSWORD_LEN,
};
pub use status::{
    AgentHealth, AssignmentKeyStatus, CacheBuckets, CacheStatus, RouterLinkState, RouterStatus,
    ServiceStatus,
};

use crate::{Datagram, DropReason, Event, Instant, Machine, Output, ServiceKey};

/// An I_SEE_YOU whose Receive ID is less than this much behind the last one is older (reordered
/// or duplicated); further back counts as newer (wrap-around).
const STALE_WINDOW: u32 = 1 << 16;

/// Weight assumed for a cache whose identity element carries none (2.01 "no data").
const UNKNOWN_WEIGHT: u16 = DEFAULT_WEIGHT;

/// What was negotiated with one router from its latest I_SEE_YOU.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Negotiated {
    forwarding: Method,
    assignment: AssignMethod,
    packet_return: Method,
    /// The Capabilities component for our next HERE_I_AM (`None` if the router sent none).
    reply: Option<Capabilities>,
}

/// One cache as listed in a router's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SeenCache {
    addr: Ipv4Addr,
    weight: u16,
    unassigned: bool,
}

/// Per-router state inside one service.
#[derive(Clone, Debug)]
struct RouterState {
    /// Where we send (the configured address; I_SEE_YOUs come from here).
    addr: Ipv4Addr,
    /// Router ID from its Router Identity (defaults to `addr`).
    id: Ipv4Addr,
    /// Last Receive ID heard (0 before the first I_SEE_YOU).
    receive_id: u32,
    /// Last member change number heard.
    change_number: u32,
    last_isy: Option<Instant>,
    key: AssignmentKey,
    routers: Vec<Ipv4Addr>,
    caches: Vec<SeenCache>,
    negotiated: Option<Negotiated>,
    link: RouterLinkState,
    reason: Option<String>,
    /// When we last sent this router a REDIRECT_ASSIGN (for the resend rule).
    ra_sent: Option<Instant>,
    /// Mask values per cache from the router's Assignment Map, if it sends one.
    map_counts: Vec<(Ipv4Addr, usize)>,
    /// The previous I_SEE_YOU was dropped as stale.
    stale_seen: bool,
}

impl RouterState {
    fn new(addr: Ipv4Addr) -> Self {
        RouterState {
            addr,
            id: addr,
            receive_id: 0,
            change_number: 0,
            last_isy: None,
            key: AssignmentKey::default(),
            routers: Vec::new(),
            caches: Vec::new(),
            negotiated: None,
            link: RouterLinkState::Joining,
            reason: None,
            ra_sent: None,
            map_counts: Vec::new(),
            stale_seen: false,
        }
    }

    fn joined(&self) -> bool {
        self.link == RouterLinkState::Joined
    }

    fn forget(&mut self) {
        self.receive_id = 0;
        self.change_number = 0;
        self.key = AssignmentKey::default();
        self.routers.clear();
        self.caches.clear();
        self.negotiated = None;
        self.ra_sent = None;
        self.map_counts.clear();
    }
}

/// The assignment this cache built as designated cache.
#[derive(Clone, Debug)]
struct Built {
    key_change: u32,
    caches: Vec<Ipv4Addr>,
    buckets: [u8; BUCKETS],
    mask: MaskSpread,
}

/// What must stay unchanged for 1.5·T before assigning.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Membership {
    routers: Vec<(Ipv4Addr, u32)>,
    caches: Vec<(Ipv4Addr, u16)>,
    designated: Option<Ipv4Addr>,
}

#[derive(Debug)]
struct Service {
    cfg: CacheService,
    key: ServiceKey,
    info: ServiceInfo,
    routers: Vec<RouterState>,
    next_hia: Instant,
    /// Rapid HERE_I_AMs answering REMOVAL_QUERYs: (when, router index).
    rapid: Vec<(Instant, usize)>,
    view_change: u32,
    view_caches: BTreeSet<u32>,
    /// Router IDs in our view (configured routers we have not given up on).
    view_routers: Vec<Ipv4Addr>,
    membership: Option<Membership>,
    ra_due: Option<Instant>,
    key_change: u32,
    built: Option<Built>,
    /// Caches listed by every joined router (recomputed on every change).
    members: Vec<(Ipv4Addr, u16)>,
    /// First time each cache was seen by every router (slow start).
    first_seen: BTreeMap<u32, Option<Instant>>,
    /// Re-evaluate a slow-start ramp at this time.
    ramp_check: Option<Instant>,
    shutdown: bool,
}

/// The cache agent state machine.
#[derive(Debug)]
pub struct CacheAgent {
    cfg: CacheConfig,
    services: Vec<Service>,
    out: VecDeque<Output>,
    /// Latest time handed in, for ages in [`CacheAgent::status`].
    now: Instant,
    /// The proxy passes its health check ([`CacheAgent::set_healthy`]); `false`: left.
    healthy: bool,
    /// Times the agent left because the proxy became unhealthy, and rejoined.
    leaves: u64,
    rejoins: u64,
    /// When health last changed.
    health_changed: Option<Instant>,
}

/// The reason a router link shows while the agent has left for health.
const LEFT_UNHEALTHY: &str = "left: the proxy failed its health check";

impl CacheAgent {
    /// Builds an agent from a configuration.
    ///
    /// # Errors
    /// [`ConfigError`] if the configuration is invalid (every problem listed).
    pub fn new(cfg: CacheConfig) -> Result<CacheAgent, ConfigError> {
        cfg.validate()?;
        let services = cfg
            .services
            .iter()
            .map(|s| Service {
                cfg: s.clone(),
                key: ServiceKey::of(&s.definition),
                info: s.definition.service_info(),
                routers: cfg.routers.iter().map(|&r| RouterState::new(r)).collect(),
                next_hia: Instant(0),
                rapid: Vec::new(),
                view_change: 1,
                view_caches: BTreeSet::new(),
                view_routers: cfg.routers.clone(),
                membership: None,
                ra_due: None,
                key_change: 0,
                built: None,
                members: Vec::new(),
                first_seen: BTreeMap::new(),
                ramp_check: None,
                shutdown: false,
            })
            .collect();
        Ok(CacheAgent {
            cfg,
            services,
            out: VecDeque::new(),
            now: Instant(0),
            healthy: true,
            leaves: 0,
            rejoins: 0,
            health_changed: None,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    /// Leaves every service group: sends each router a HERE_I_AM carrying a Command Extension
    /// SHUTDOWN (docs/protocol.md §2.13) and stops all timers.
    pub fn shutdown(&mut self, now: Instant) {
        self.now = self.now.max(now);
        for si in 0..self.services.len() {
            if self.services[si].shutdown {
                continue;
            }
            for ri in 0..self.services[si].routers.len() {
                // Routers already left for health have had their SHUTDOWN.
                if self.healthy
                    && self.services[si].routers[ri].link != RouterLinkState::Incompatible
                {
                    self.send_hia(si, ri, true);
                }
                self.services[si].routers[ri].link = RouterLinkState::Shutdown;
            }
            let s = &mut self.services[si];
            s.shutdown = true;
            s.rapid.clear();
            s.ra_due = None;
            s.ramp_check = None;
        }
    }

    /// The health of the proxy beside the agent, as the daemon's probe judges it (after its
    /// threshold of consecutive results). A change from healthy to unhealthy *leaves* every
    /// service group at once: each router not found incompatible gets a HERE_I_AM carrying a
    /// SHUTDOWN command (as [`CacheAgent::shutdown`]), so it drains this cache without
    /// waiting 3·T; then nothing is sent and whatever arrives is ignored, while the routers'
    /// state is forgotten. Back to healthy *rejoins*: every router gets a HERE_I_AM at once
    /// and every T after, as at start. Repeating the current state does nothing.
    pub fn set_healthy(&mut self, now: Instant, healthy: bool) {
        self.now = self.now.max(now);
        if healthy == self.healthy {
            return;
        }
        self.healthy = healthy;
        self.health_changed = Some(now);
        if healthy {
            self.rejoins += 1;
            for si in 0..self.services.len() {
                if self.services[si].shutdown {
                    continue;
                }
                for r in &mut self.services[si].routers {
                    r.forget();
                    r.last_isy = None;
                    r.stale_seen = false;
                    r.link = RouterLinkState::Joining;
                    r.reason = None;
                }
                self.services[si].next_hia = now;
                self.reevaluate(now, si);
                self.timers(now, si);
            }
        } else {
            self.leaves += 1;
            for si in 0..self.services.len() {
                if self.services[si].shutdown {
                    continue;
                }
                for ri in 0..self.services[si].routers.len() {
                    if self.services[si].routers[ri].link != RouterLinkState::Incompatible {
                        self.send_hia(si, ri, true);
                    }
                    let r = &mut self.services[si].routers[ri];
                    r.forget();
                    r.link = RouterLinkState::Shutdown;
                    r.reason = Some(LEFT_UNHEALTHY.to_owned());
                }
                let s = &mut self.services[si];
                s.rapid.clear();
                s.ra_due = None;
                s.ramp_check = None;
                s.built = None;
                self.reevaluate(now, si);
            }
        }
    }

    /// Whether the agent is in its groups as far as health goes (`false`: left, see
    /// [`CacheAgent::set_healthy`]).
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Whether this cache is currently the designated cache of `service`.
    pub fn is_designated(&self, service: ServiceKey) -> bool {
        self.services
            .iter()
            .find(|s| s.key == service)
            .is_some_and(|s| s.designated() == Some(self.cfg.address))
    }

    /// The current bucket table of `service` if this cache built one (designated cache):
    /// cache list and one cache index per bucket.
    pub fn assignment(&self, service: ServiceKey) -> Option<(Vec<Ipv4Addr>, [u8; BUCKETS])> {
        let s = self.services.iter().find(|s| s.key == service)?;
        s.built.as_ref().map(|b| (b.caches.clone(), b.buckets))
    }

    /// A snapshot for `wccpd show`; ages are relative to the latest time handed in.
    pub fn status(&self) -> CacheStatus {
        self.status_at(self.now)
    }

    /// A snapshot with ages relative to `now`.
    pub fn status_at(&self, now: Instant) -> CacheStatus {
        CacheStatus {
            address: self.cfg.address,
            health: AgentHealth {
                healthy: self.healthy,
                leaves: self.leaves,
                rejoins: self.rejoins,
                changed_ms_ago: self
                    .health_changed
                    .map(|at| now.saturating_since(at).as_millis() as u64),
            },
            services: self
                .services
                .iter()
                .map(|s| s.status(self.cfg.address, now))
                .collect(),
        }
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn drop_msg(&mut self, peer: Ipv4Addr, reason: DropReason, detail: String) {
        self.event(Event::Dropped {
            peer,
            reason,
            detail,
        });
    }

    fn send(&mut self, peer: Ipv4Addr, payload: Vec<u8>) {
        self.out.push_back(Output::Send(Datagram {
            local: self.cfg.address,
            peer,
            payload,
        }));
    }

    /// Emits and (with a password) signs a message; failures become a drop event.
    fn finish<M: MessageRepr>(&mut self, si: usize, peer: Ipv4Addr, msg: &M) {
        let password = self.services[si].cfg.password.clone();
        let bytes = msg.to_vec().and_then(|mut v| {
            if let Some(p) = &password {
                wire::sign(&mut v, p)?;
            }
            Ok(v)
        });
        match bytes {
            Ok(v) => self.send(peer, v),
            Err(e) => self.drop_msg(peer, DropReason::Malformed, format!("cannot emit: {e}")),
        }
    }

    fn security(&self, si: usize) -> Security {
        if self.services[si].cfg.password.is_some() {
            Security::MD5_UNSIGNED
        } else {
            Security::None
        }
    }

    fn send_hia(&mut self, si: usize, ri: usize, shutdown: bool) {
        let me = self.cfg.address;
        let s = &self.services[si];
        let r = &s.routers[ri];
        let method = r
            .negotiated
            .as_ref()
            .map_or(s.cfg.assignment[0], |n| n.assignment);
        let assigned = s.assigned_at(ri, me);
        let weight = s.cfg.weight;
        let data = match method {
            AssignMethod::Hash => AssignmentData::Hash(HashAssignmentData {
                buckets: s.bitmap(me),
                weight,
                status: 0,
            }),
            AssignMethod::Mask => {
                let (sa, da, sp, dp) = s.cfg.mask_element();
                AssignmentData::Mask(MaskAssignmentData {
                    sets: vec![MaskValueSet {
                        mask: MaskElement {
                            src_addr: Addr(sa),
                            dst_addr: Addr(da),
                            src_port: sp,
                            dst_port: dp,
                        },
                        values: Vec::new(),
                    }],
                    weight,
                    status: 0,
                })
            }
        };
        let identity = WebCacheIdentity {
            addr: Addr::from_ipv4(me),
            hash_revision: 0,
            flags: if assigned {
                IdentityFlags::EMPTY
            } else {
                IdentityFlags::UNASSIGNED
            },
            data,
        };
        let view = WebCacheViewInfo {
            change_number: s.view_change,
            routers: s
                .routers
                .iter()
                .filter(|r| r.link != RouterLinkState::Incompatible)
                .map(|r| RouterIdElement {
                    addr: Addr::from_ipv4(r.id),
                    receive_id: r.receive_id,
                })
                .collect(),
            caches: s.view_caches.iter().map(|&c| Addr(c)).collect(),
        };
        let hia = HereIAm {
            version: Version::V2_00,
            security: self.security(si),
            service: s.info,
            identity,
            view,
            capabilities: r.negotiated.as_ref().and_then(|n| n.reply.clone()),
            command: shutdown.then(|| CommandExtension {
                commands: vec![Command::Shutdown(Addr::from_ipv4(me))],
            }),
            address_table: None,
        };
        let peer = r.addr;
        self.finish(si, peer, &hia);
    }

    fn handle_message(&mut self, now: Instant, dg: &Datagram) {
        let peer = dg.peer;
        let msg = match Message::parse(&dg.payload) {
            Ok(m) => m,
            Err(e) => return self.drop_msg(peer, DropReason::Malformed, e.to_string()),
        };
        let svc = msg.service();
        let key = ServiceKey {
            dynamic: svc.service_type == ServiceType::Dynamic,
            id: svc.id,
        };
        let Some(si) = self
            .services
            .iter()
            .position(|s| s.key == key && !s.shutdown)
        else {
            return self.drop_msg(
                peer,
                DropReason::ServiceMismatch,
                format!("{key} is not configured"),
            );
        };
        let password = self.services[si].cfg.password.clone();
        if let Err(e) = wire::authenticate(&dg.payload, password.as_deref()) {
            return self.drop_msg(peer, DropReason::Security, e.to_string());
        }
        if *svc != self.services[si].info {
            return self.drop_msg(
                peer,
                DropReason::ServiceMismatch,
                format!("{key} definition differs from ours"),
            );
        }
        let Some(ri) = self.services[si]
            .routers
            .iter()
            .position(|r| r.addr == peer)
        else {
            return self.drop_msg(
                peer,
                DropReason::NotAllowed,
                "sender is not a configured router".to_owned(),
            );
        };
        match msg {
            Message::ISeeYou(isy) => self.on_isy(now, si, ri, &isy),
            Message::RemovalQuery(rq) => self.on_rq(now, si, ri, &rq),
            other => self.drop_msg(
                peer,
                DropReason::UnexpectedType,
                format!("{} is not for a cache", other.msg_type().as_str()),
            ),
        }
    }

    fn on_isy(&mut self, now: Instant, si: usize, ri: usize, isy: &ISeeYou) {
        let me = self.cfg.address;
        let peer = self.services[si].routers[ri].addr;
        if self.services[si].routers[ri].link == RouterLinkState::Incompatible {
            return self.drop_msg(
                peer,
                DropReason::NotAllowed,
                "router is incompatible; not joining it".to_owned(),
            );
        }
        // A reordered, older I_SEE_YOU would make us echo a stale Receive ID and report a stale
        // membership: drop one. Two in a row mean the router restarted its counter: accept.
        let r = &mut self.services[si].routers[ri];
        let last = r.receive_id;
        let back = last.wrapping_sub(isy.identity.router.receive_id);
        let older = last != 0 && back != 0 && back < STALE_WINDOW;
        let restarted = older && r.stale_seen;
        r.stale_seen = older && !restarted;
        if older && !restarted {
            return self.drop_msg(
                peer,
                DropReason::Stale,
                format!(
                    "Receive ID {} older than {last}",
                    isy.identity.router.receive_id
                ),
            );
        }
        let table = isy.address_table.as_ref();
        let rf: Vec<Option<Ipv4Addr>> = isy
            .identity
            .received_from
            .iter()
            .map(|a| v4(*a, table))
            .collect();
        if !rf.contains(&Some(me)) {
            return self.drop_msg(
                peer,
                DropReason::NotForUs,
                "our address is not among Received-From".to_owned(),
            );
        }
        let Some(id) = v4(isy.identity.router.addr, table) else {
            return self.drop_msg(
                peer,
                DropReason::Malformed,
                "router ID is not IPv4".to_owned(),
            );
        };
        let mut caches = Vec::with_capacity(isy.view.caches.len());
        for c in &isy.view.caches {
            let Some(addr) = v4(c.addr, table) else {
                return self.drop_msg(
                    peer,
                    DropReason::Malformed,
                    "cache address in Router View is not IPv4".to_owned(),
                );
            };
            caches.push(SeenCache {
                addr,
                weight: weight_of(&c.data),
                unassigned: c.flags.unassigned(),
            });
        }
        let routers: Vec<Ipv4Addr> = isy
            .view
            .routers
            .iter()
            .filter_map(|a| v4(*a, table))
            .collect();
        let key = AssignmentKey {
            addr: v4(isy.view.key.addr, table).map_or(isy.view.key.addr, Addr::from_ipv4),
            change_number: isy.view.key.change_number,
        };
        let negotiated = negotiate(
            isy.capabilities.as_ref(),
            &self.services[si].cfg,
            self.cfg.transmit_t,
        );
        let map_counts = isy
            .assignment_map
            .as_ref()
            .map(|m| mask_counts(&m.sets, table));

        let s = &mut self.services[si];
        let r = &mut s.routers[ri];
        r.id = id;
        r.receive_id = isy.identity.router.receive_id;
        r.change_number = isy.view.change_number;
        r.last_isy = Some(now);
        r.key = key;
        r.routers = routers;
        r.caches = caches;
        r.map_counts = map_counts.unwrap_or_default();
        match negotiated {
            Ok(n) => {
                r.negotiated = Some(n);
                r.link = RouterLinkState::Joined;
                r.reason = None;
            }
            Err(why) => {
                r.forget();
                r.link = RouterLinkState::Incompatible;
                r.reason = Some(why.clone());
                self.drop_msg(
                    peer,
                    DropReason::NotAllowed,
                    format!("incompatible capabilities: {why}"),
                );
            }
        }
        self.reevaluate(now, si);

        // Resend rule: a router showing another key than our current assignment gets it again,
        // at most once per T.
        let t = self.cfg.transmit_t;
        let s = &self.services[si];
        if let Some(b) = &s.built {
            let r = &s.routers[ri];
            let ours = AssignmentKey {
                addr: Addr::from_ipv4(me),
                change_number: b.key_change,
            };
            let due = r.ra_sent.is_none_or(|at| now >= at + t);
            if s.designated() == Some(me)
                && s.ra_due.is_none()
                && r.joined()
                && r.key != ours
                && due
            {
                self.send_ra(now, si, &[ri]);
            }
        }
    }

    fn on_rq(&mut self, now: Instant, si: usize, ri: usize, rq: &RemovalQuery) {
        let me = self.cfg.address;
        let peer = self.services[si].routers[ri].addr;
        let table = rq.address_table.as_ref();
        if v4(rq.query.target, table) != Some(me) {
            return self.drop_msg(
                peer,
                DropReason::NotForUs,
                "query targets another cache".to_owned(),
            );
        }
        if self.services[si].routers[ri].link == RouterLinkState::Incompatible {
            return;
        }
        let step = self.cfg.transmit_t / 10;
        let s = &mut self.services[si];
        s.routers[ri].receive_id = rq.query.receive_id;
        s.rapid.retain(|&(_, r)| r != ri);
        for k in 0..3u32 {
            s.rapid.push((now + step * k, ri));
        }
        self.run_rapid(now, si);
    }

    fn run_rapid(&mut self, now: Instant, si: usize) {
        let due: Vec<usize> = self.services[si]
            .rapid
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|&(_, r)| r)
            .collect();
        self.services[si].rapid.retain(|(at, _)| *at > now);
        for ri in due {
            self.send_hia(si, ri, false);
        }
    }

    /// Recomputes the view, the election and the assignment timer after any change.
    fn reevaluate(&mut self, now: Instant, si: usize) {
        let me = self.cfg.address;
        let t = self.cfg.transmit_t;
        let s = &mut self.services[si];
        // Our view: every cache learnt from any router we are joined to.
        let caches: BTreeSet<u32> = s
            .routers
            .iter()
            .filter(|r| r.joined())
            .flat_map(|r| r.caches.iter().map(|c| c.addr.to_bits()))
            .collect();
        let routers: Vec<Ipv4Addr> = s
            .routers
            .iter()
            .filter(|r| r.link != RouterLinkState::Incompatible)
            .map(|r| r.id)
            .collect();
        let mut changed_view = None;
        if caches != s.view_caches || routers != s.view_routers {
            s.view_caches = caches;
            s.view_routers = routers;
            s.view_change = s.view_change.wrapping_add(1).max(1);
            changed_view = Some(s.view_change);
        }
        let members = s.candidates();
        s.members = members.clone();
        // Slow start applies to caches joining a group that already has an assignment; the
        // caches present at the first assignment start at full weight.
        let established = s.key_change > 0;
        for (addr, _) in &members {
            s.first_seen
                .entry(addr.to_bits())
                .or_insert(established.then_some(now));
        }
        s.first_seen.retain(|a, _| {
            members
                .binary_search_by_key(a, |(m, _)| m.to_bits())
                .is_ok()
        });
        let m = Membership {
            routers: s
                .routers
                .iter()
                .filter(|r| r.joined())
                .map(|r| (r.addr, r.change_number))
                .collect(),
            caches: members,
            designated: members_first(&s.members),
        };
        if s.membership.as_ref() != Some(&m) {
            let designated = m.designated == Some(me);
            let has_caches = !m.caches.is_empty();
            s.membership = Some(m);
            s.ra_due = (designated && has_caches).then(|| now + t * 3 / 2);
            s.ramp_check = None;
            if !designated {
                s.built = None;
            }
        }
        let key = s.key;
        if let Some(c) = changed_view {
            self.event(Event::MembershipChanged {
                service: key,
                change_number: c,
            });
        }
    }

    /// Builds a new assignment (new key change number) and sends it to every joined router.
    fn assign(&mut self, now: Instant, si: usize) {
        let t = self.cfg.transmit_t;
        let s = &mut self.services[si];
        let Some(m) = s.membership.clone() else {
            return;
        };
        if m.caches.is_empty() {
            return;
        }
        // Effective weights (slow start ramps recently joined caches).
        let mut ramping = false;
        let weights: Vec<u16> = m
            .caches
            .iter()
            .map(
                |(a, w)| match (&s.cfg.slow_start, s.first_seen.get(&a.to_bits())) {
                    (Some(ss), Some(&Some(since))) => {
                        let el = now.saturating_since(since);
                        ramping |= ss.ramping(el);
                        ss.effective_weight(*w, el)
                    }
                    _ => *w,
                },
            )
            .collect();
        let caches: Vec<Ipv4Addr> = m.caches.iter().map(|(a, _)| *a).collect();
        let buckets = match s.cfg.spread {
            SpreadAlgorithm::Squid => spread::squid_hash(&weights),
            SpreadAlgorithm::Stable => {
                let mut prev = [None; BUCKETS];
                if let Some(b) = &s.built {
                    for (slot, &i) in prev.iter_mut().zip(b.buckets.iter()) {
                        *slot = b.caches.get(usize::from(i)).copied();
                    }
                }
                let cw: Vec<(Ipv4Addr, u16)> = caches
                    .iter()
                    .copied()
                    .zip(weights.iter().copied())
                    .collect();
                spread::stable_hash(&cw, &prev)
            }
        };
        let mask = spread::squid_mask(s.cfg.mask_field(), &weights);
        if let Some(b) = &s.built {
            if b.caches == caches && b.buckets == buckets && b.mask == mask && s.ra_due.is_none() {
                // A slow-start step that changed nothing.
                s.ramp_check = ramping.then(|| now + t);
                return;
            }
        }
        s.key_change = s.key_change.wrapping_add(1).max(1);
        s.built = Some(Built {
            key_change: s.key_change,
            caches,
            buckets,
            mask,
        });
        s.ra_due = None;
        s.ramp_check = ramping.then(|| now + t);
        let targets: Vec<usize> = (0..s.routers.len())
            .filter(|&i| s.routers[i].joined())
            .collect();
        self.send_ra(now, si, &targets);
    }

    /// Sends the current assignment to the given routers.
    fn send_ra(&mut self, now: Instant, si: usize, targets: &[usize]) {
        let me = self.cfg.address;
        let security = self.security(si);
        let s = &self.services[si];
        let Some(b) = &s.built else { return };
        let key = AssignmentKey {
            addr: Addr::from_ipv4(me),
            change_number: b.key_change,
        };
        let elements: Vec<RouterAssignment> = s
            .routers
            .iter()
            .filter(|r| r.joined())
            .map(|r| RouterAssignment {
                addr: Addr::from_ipv4(r.id),
                receive_id: r.receive_id,
                change_number: r.change_number,
            })
            .collect();
        let mut msgs = Vec::new();
        for &ri in targets {
            let r = &s.routers[ri];
            let method = r
                .negotiated
                .as_ref()
                .map_or(s.cfg.assignment[0], |n| n.assignment);
            let assignment = match method {
                AssignMethod::Hash => Assignment::Hash(AssignmentInfo {
                    key,
                    routers: elements.clone(),
                    hash: HashBuckets {
                        caches: b.caches.iter().map(|&c| Addr::from_ipv4(c)).collect(),
                        buckets: b.buckets,
                    },
                }),
                AssignMethod::Mask => Assignment::Alternate(AlternateAssignment {
                    key,
                    routers: elements.clone(),
                    body: AltAssignmentBody::Mask(vec![mask_set(&b.mask, &b.caches)]),
                }),
            };
            let ra = RedirectAssign {
                version: Version::V2_00,
                security,
                service: s.info,
                assignment,
                address_table: None,
            };
            msgs.push((ri, r.addr, ra));
        }
        let skey = s.key;
        let key_change = b.key_change;
        for (ri, peer, ra) in msgs {
            self.finish(si, peer, &ra);
            self.services[si].routers[ri].ra_sent = Some(now);
        }
        self.event(Event::Assignment {
            service: skey,
            key_address: me,
            key_change,
        });
    }

    fn timers(&mut self, now: Instant, si: usize) {
        if self.services[si].shutdown || !self.healthy {
            return;
        }
        let t = self.cfg.transmit_t;
        // Routers silent for 3·T go back to the seed state.
        let mut expired = false;
        for r in &mut self.services[si].routers {
            if r.joined() && r.last_isy.is_some_and(|at| now >= at + t * 3) {
                r.forget();
                r.link = RouterLinkState::Joining;
                r.reason = Some("no I_SEE_YOU for 3·T".to_owned());
                expired = true;
            }
        }
        if expired {
            self.reevaluate(now, si);
        }
        if self.services[si].next_hia <= now {
            self.services[si].next_hia = now + t;
            for ri in 0..self.services[si].routers.len() {
                if self.services[si].routers[ri].link != RouterLinkState::Incompatible {
                    self.send_hia(si, ri, false);
                }
            }
        }
        self.run_rapid(now, si);
        if self.services[si].ra_due.is_some_and(|at| at <= now)
            || self.services[si].ramp_check.is_some_and(|at| at <= now)
        {
            self.services[si].ramp_check = None;
            self.assign(now, si);
        }
    }
}

impl Service {
    /// Caches listed by every joined router, ascending by address, with the weight the first
    /// joined router reports.
    fn candidates(&self) -> Vec<(Ipv4Addr, u16)> {
        let mut joined = self.routers.iter().filter(|r| r.joined());
        let Some(first) = joined.next() else {
            return Vec::new();
        };
        // Address -> (weight from the first joined router, number of joined routers listing it).
        let mut seen: BTreeMap<u32, (u16, usize)> = BTreeMap::new();
        for c in &first.caches {
            seen.entry(c.addr.to_bits()).or_insert((c.weight, 1));
        }
        let mut routers = 1;
        for r in joined {
            routers += 1;
            let listed: BTreeSet<u32> = r.caches.iter().map(|c| c.addr.to_bits()).collect();
            for a in listed {
                if let Some(e) = seen.get_mut(&a) {
                    e.1 += 1;
                }
            }
        }
        // BTreeMap order is numeric address order (docs/protocol.md A6).
        seen.into_iter()
            .filter(|(_, (_, n))| *n == routers)
            .map(|(a, (w, _))| (Ipv4Addr::from_bits(a), w))
            .take(spread::MAX_CACHES)
            .collect()
    }

    /// The designated cache: lowest candidate.
    fn designated(&self) -> Option<Ipv4Addr> {
        members_first(&self.members)
    }

    /// Whether router `ri` should see us as assigned.
    fn assigned_at(&self, ri: usize, me: Ipv4Addr) -> bool {
        let r = &self.routers[ri];
        if r.caches.iter().any(|c| c.addr == me && !c.unassigned) {
            return true;
        }
        self.built.as_ref().is_some_and(|b| {
            let ours = AssignmentKey {
                addr: Addr::from_ipv4(me),
                change_number: b.key_change,
            };
            r.key == ours
                && b.caches
                    .iter()
                    .position(|&c| c == me)
                    .is_some_and(|i| b.buckets.contains(&(i as u8)))
        })
    }

    /// Our bucket bitmap (informational; all zero unless we built the assignment ourselves).
    /// Bit order: bucket n -> octet n>>3, mask 1<<(n&7) (docs/protocol.md A4, [WS]/[ATS]).
    fn bitmap(&self, me: Ipv4Addr) -> [u8; 32] {
        let mut bm = [0u8; 32];
        if let Some(b) = &self.built {
            if let Some(i) = b.caches.iter().position(|&c| c == me) {
                for (n, &o) in b.buckets.iter().enumerate() {
                    if usize::from(o) == i {
                        bm[n >> 3] |= 1 << (n & 7);
                    }
                }
            }
        }
        bm
    }

    fn next_timer(&self, t: Duration) -> Option<Instant> {
        if self.shutdown {
            return None;
        }
        let mut next = Some(self.next_hia);
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                next = Some(next.map_or(x, |n| n.min(x)));
            }
        };
        for (at, _) in &self.rapid {
            consider(Some(*at));
        }
        consider(self.ra_due);
        consider(self.ramp_check);
        for r in &self.routers {
            if r.joined() {
                consider(r.last_isy.map(|at| at + t * 3));
            }
        }
        next
    }

    fn status(&self, me: Ipv4Addr, now: Instant) -> ServiceStatus {
        let designated = self.designated();
        let buckets: Vec<CacheBuckets> = if let Some(b) = &self.built {
            let counts = spread::bucket_counts(&b.buckets, b.caches.len());
            b.caches
                .iter()
                .zip(counts)
                .map(|(&addr, buckets)| CacheBuckets { addr, buckets })
                .collect()
        } else {
            self.routers
                .iter()
                .find(|r| r.joined() && !r.map_counts.is_empty())
                .map(|r| {
                    r.map_counts
                        .iter()
                        .map(|&(addr, buckets)| CacheBuckets { addr, buckets })
                        .collect()
                })
                .unwrap_or_default()
        };
        ServiceStatus {
            service: self.key.to_string(),
            view_change_number: self.view_change,
            routers: self
                .routers
                .iter()
                .map(|r| RouterStatus {
                    address: r.addr,
                    router_id: r.id,
                    receive_id: r.receive_id,
                    change_number: r.change_number,
                    last_i_see_you_age_ms: r
                        .last_isy
                        .map(|at| now.saturating_since(at).as_millis() as u64),
                    state: r.link,
                    reason: r.reason.clone(),
                    assignment_key: (r.key.addr.0 != 0).then(|| AssignmentKeyStatus {
                        address: r.key.addr.to_ipv4(),
                        change_number: r.key.change_number,
                    }),
                    forwarding: r.negotiated.as_ref().map(|n| n.forwarding),
                    assignment: r.negotiated.as_ref().map(|n| n.assignment),
                    packet_return: r.negotiated.as_ref().map(|n| n.packet_return),
                })
                .collect(),
            caches_seen: self
                .view_caches
                .iter()
                .map(|&c| Ipv4Addr::from_bits(c))
                .collect(),
            designated: designated == Some(me),
            designated_cache: designated,
            assignment_key: self.built.as_ref().map(|b| AssignmentKeyStatus {
                address: me,
                change_number: b.key_change,
            }),
            buckets,
        }
    }
}

impl Machine for CacheAgent {
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram) {
        self.now = self.now.max(now);
        if datagram.local != self.cfg.address {
            return self.drop_msg(
                datagram.peer,
                DropReason::NotForUs,
                format!("sent to {}, not to {}", datagram.local, self.cfg.address),
            );
        }
        if !self.healthy {
            // Left for health: the answer to our SHUTDOWN and anything else is not for a
            // member.
            return;
        }
        self.handle_message(now, &datagram);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        for si in 0..self.services.len() {
            self.timers(now, si);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if !self.healthy {
            return None;
        }
        let t = self.cfg.transmit_t;
        self.services.iter().filter_map(|s| s.next_timer(t)).min()
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn local_addresses(&self) -> Vec<Ipv4Addr> {
        vec![self.cfg.address]
    }
}

/// The lowest of the (sorted) members.
fn members_first(m: &[(Ipv4Addr, u16)]) -> Option<Ipv4Addr> {
    m.first().map(|c| c.0)
}

/// An address element as IPv4 (resolving an Address Table index when present).
fn v4(a: Addr, table: Option<&AddressTable>) -> Option<Ipv4Addr> {
    match a.resolve(table) {
        Ok(core::net::IpAddr::V4(v)) => Some(v),
        _ => None,
    }
}

/// The weight carried by an identity element (default when it carries none).
fn weight_of(d: &AssignmentData) -> u16 {
    if let Some((w, _)) = d.weight_status() {
        return w;
    }
    match d.decode_extended() {
        Ok(Some(ExtendedData::Hash(h))) => h.weight,
        Ok(Some(ExtendedData::Mask(m))) => m.weight,
        Ok(Some(
            ExtendedData::AltMask { weight, .. } | ExtendedData::WeightStatus { weight, .. },
        )) => weight,
        _ => UNKNOWN_WEIGHT,
    }
}

/// Values per cache in an Assignment Map.
fn mask_counts(sets: &[MaskValueSet], table: Option<&AddressTable>) -> Vec<(Ipv4Addr, usize)> {
    let mut m: BTreeMap<u32, usize> = BTreeMap::new();
    for v in sets.iter().flat_map(|s| &s.values) {
        if let Some(a) = v4(v.cache, table) {
            *m.entry(a.to_bits()).or_default() += 1;
        }
    }
    m.into_iter()
        .map(|(a, n)| (Ipv4Addr::from_bits(a), n))
        .collect()
}

/// The single Mask/Value Set of a Squid-style mask assignment.
fn mask_set(m: &MaskSpread, caches: &[Ipv4Addr]) -> MaskValueSet {
    use spread::MaskField;
    let (sa, da, sp, dp) = match m.field {
        MaskField::SrcIp => (m.mask, 0, 0, 0),
        MaskField::DstIp => (0, m.mask, 0, 0),
        MaskField::SrcPort => (0, 0, m.mask as u16, 0),
        MaskField::DstPort => (0, 0, 0, m.mask as u16),
    };
    MaskValueSet {
        mask: MaskElement {
            src_addr: Addr(sa),
            dst_addr: Addr(da),
            src_port: sp,
            dst_port: dp,
        },
        values: m
            .values
            .iter()
            .filter_map(|v| {
                let cache = *caches.get(usize::from(v.cache))?;
                let x = v.value;
                let (sa, da, sp, dp) = match m.field {
                    MaskField::SrcIp => (x, 0, 0, 0),
                    MaskField::DstIp => (0, x, 0, 0),
                    MaskField::SrcPort => (0, 0, x as u16, 0),
                    MaskField::DstPort => (0, 0, 0, x as u16),
                };
                Some(ValueElement {
                    src_addr: Addr(sa),
                    dst_addr: Addr(da),
                    src_port: sp,
                    dst_port: dp,
                    cache: Addr::from_ipv4(cache),
                })
            })
            .collect(),
    }
}

/// Chooses one value per capability the router offers (docs/protocol.md §2.10, [R1]§3.5).
fn negotiate(
    offer: Option<&Capabilities>,
    cfg: &CacheService,
    t: Duration,
) -> Result<Negotiated, String> {
    fn pick<T: Copy>(
        name: &str,
        offered: Option<u32>,
        prefs: &[T],
        bit: impl Fn(T) -> u32,
    ) -> Result<T, String> {
        // Absent = the default (bit 0x1: GRE / hash).
        let mask = offered.unwrap_or(0x1);
        prefs
            .iter()
            .copied()
            .find(|&p| bit(p) & mask != 0)
            .ok_or_else(|| {
                format!("{name}: router offers {mask:#x}, none of which is enabled here")
            })
    }
    let c = offer;
    let forwarding = pick(
        "forwarding method",
        c.and_then(|c| c.forwarding_method()),
        &cfg.forwarding,
        Method::bit,
    )?;
    let assignment = pick(
        "assignment method",
        c.and_then(|c| c.assignment_method()),
        &cfg.assignment,
        AssignMethod::bit,
    )?;
    let packet_return = pick(
        "packet return method",
        c.and_then(|c| c.packet_return_method()),
        &cfg.packet_return,
        Method::bit,
    )?;
    let reply = match c {
        None => None,
        Some(c) => {
            let mut el = Vec::new();
            for e in &c.elements {
                match e {
                    Capability::ForwardingMethod(_) => {
                        el.push(Capability::ForwardingMethod(forwarding.bit()))
                    }
                    Capability::AssignmentMethod(_) => {
                        el.push(Capability::AssignmentMethod(assignment.bit()))
                    }
                    Capability::PacketReturnMethod(_) => {
                        el.push(Capability::PacketReturnMethod(packet_return.bit()))
                    }
                    Capability::TransmitT { upper, lower } => {
                        let ms = u16::try_from(t.as_millis()).unwrap_or(u16::MAX);
                        let (lo, hi) = range(*lower, *upper);
                        if !(lo..=hi).contains(&ms) {
                            return Err(format!(
                                "TRANSMIT_T: router offers {lo}..={hi} ms, ours is {ms} ms"
                            ));
                        }
                        el.push(Capability::TransmitT {
                            upper: 0,
                            lower: ms,
                        });
                    }
                    Capability::TimerScale {
                        timeout_upper,
                        timeout_lower,
                        ra_upper,
                        ra_lower,
                    } => {
                        let (tl, th) = range(*timeout_lower, *timeout_upper);
                        let (rl, rh) = range(*ra_lower, *ra_upper);
                        if !(tl..=th).contains(&1) || !(rl..=rh).contains(&1) {
                            return Err("TIMER_SCALE: router does not offer scale 1".to_owned());
                        }
                        el.push(Capability::TimerScale {
                            timeout_upper: 0,
                            timeout_lower: 1,
                            ra_upper: 0,
                            ra_lower: 1,
                        });
                    }
                    Capability::Unknown { .. } => {}
                }
            }
            Some(Capabilities { elements: el })
        }
    };
    Ok(Negotiated {
        forwarding,
        assignment,
        packet_return,
        reply,
    })
}

/// A capability range `(lower, upper)`; `upper == 0` means the single value `lower`.
fn range<T: Ord + Copy + Default>(lower: T, upper: T) -> (T, T) {
    if upper == T::default() {
        (lower, lower)
    } else {
        (lower.min(upper), lower.max(upper))
    }
}
