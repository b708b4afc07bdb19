//! Router side: per-service Router View, I_SEE_YOU, REMOVAL_QUERY, REDIRECT_ASSIGN acceptance.
//!
//! A sans-IO [`Router`] (implements [`Machine`]) holding one state machine per configured service
//! group (docs/protocol.md 5 and 10, "what a router must do"; patent FIG. 4-5):
//!
//! ```text
//!  HERE_I_AM ─> header ─> MD5 (group password) ─> service definition ─> echoed Receive ID
//!            ─> capabilities ─> group list ─> Router View update ─> I_SEE_YOU (from the address
//!               the cache sent to, Receive ID + 1, Member Change Number, usable caches)
//!  REDIRECT_ASSIGN ─> MD5 ─> sender usable? ─> our Router Assignment Element carries a Receive
//!               ID sent to the sender at the current change number, and that number? ─>
//!               RedirectTable ─> Output::Publish
//!  timers: REMOVAL_QUERY at 2.5·TIMEOUT_BASE_T of silence, removal at 3·TIMEOUT_BASE_T,
//!          flush 5·RA_TIMER_BASE_T after a membership change without a valid assignment
//!  membership change ─> unsolicited I_SEE_YOU to every other usable cache
//! ```
//!
//! On every Member Change Number change, each usable cache other than the one whose HERE_I_AM
//! caused it (that one gets its normal answer) is sent an unsolicited I_SEE_YOU built exactly like
//! an answer (next Receive ID, Sent To = the address it last sent to, from that address). So a
//! removal at 3·TIMEOUT_BASE_T reaches the designated cache at once, and its 1.5·RA_TIMER_BASE_T
//! assignment wait starts then rather than at its next HERE_I_AM (up to TRANSMIT_T later): a
//! crashed cache's buckets move 3·T + 1.5·T after its last HERE_I_AM. Caches treat it like any
//! I_SEE_YOU (Squid and ATS accept an I_SEE_YOU at any time); a HERE_I_AM already in flight that
//! echoes the previous Receive ID is still accepted (the last few IDs are remembered). A
//! REDIRECT_ASSIGN must carry the current change number and a Receive ID sent to its sender since
//! that change number was announced: the newest one, or an earlier one when the assignment,
//! timed from an unsolicited I_SEE_YOU, crossed the answer to the sender's own HERE_I_AM (then it
//! must not be older, by Assignment Key, than the assignment already accepted from that cache).
//!
//! # Invariants
//! * The Receive ID of a group is never 0 and moves by one per I_SEE_YOU or REMOVAL_QUERY.
//! * The Member Change Number starts at 1 and moves only when the set of usable caches (or the
//!   routers they report) changes, so a repeated HERE_I_AM never re-arms the caches' 15 s
//!   assignment timer (docs/protocol.md 10.5).
//! * When a cache leaves, a table without its buckets is published at once.
//! * Only unicast is supported: replies leave from [`Datagram::local`] of the HERE_I_AM.
//! * Messages carrying a 2.01 Address Table are dropped (not supported).

mod caps;
mod config;
mod group;
mod limit;
mod reload;
mod status;

use std::collections::VecDeque;
use std::net::Ipv4Addr;

pub use caps::{AssignMethod, CacheCaps, GroupMethod, Mismatch};
pub use config::{
    ConfigError, Offer, RouterConfig, ServiceConfig, ASSIGN_HASH, ASSIGN_MASK, METHOD_GRE,
    METHOD_L2,
};
pub use limit::ReplyLimits;
pub use reload::{ReloadError, ReloadSummary, ServiceUpdate};
pub use status::{
    AssignmentStatus, CacheStatus, Counters, NotUsable, ReplyLimiterStatus, RouterStatus,
    ServiceStatus,
};

use group::{Ctx, Group};
use limit::ReplyLimiter;
use wire::{Message, ServiceType};

use crate::{Datagram, DropReason, Event, Instant, Machine, Output, ServiceKey};

/// The router side of WCCPv2 for every configured service group.
#[derive(Debug)]
pub struct Router {
    addresses: Vec<Ipv4Addr>,
    router_id: Option<Ipv4Addr>,
    groups: Vec<Group>,
    out: VecDeque<Output>,
    unattributed: Counters,
    last_now: Instant,
    limiter: ReplyLimiter,
}

impl Router {
    /// A router for `cfg`. Closed services with a known definition get an initial
    /// [`Output::Publish`] of a table that drops their traffic.
    ///
    /// # Errors
    /// [`ConfigError`] from [`RouterConfig::validate`].
    pub fn new(cfg: RouterConfig) -> Result<Router, ConfigError> {
        cfg.validate()?;
        let mut r = Router {
            addresses: cfg.addresses,
            router_id: cfg.router_id,
            groups: cfg.services.into_iter().map(Group::new).collect(),
            out: VecDeque::new(),
            unattributed: Counters::default(),
            last_now: Instant::default(),
            limiter: ReplyLimiter::new(ReplyLimits::default()),
        };
        let now = r.last_now;
        r.each_group(now, |g, ctx| g.initial_publish(ctx));
        Ok(r)
    }

    /// The same router with other limits on answers to HERE_I_AM (default:
    /// [`ReplyLimits::default`]).
    #[must_use]
    pub fn with_reply_limits(mut self, limits: ReplyLimits) -> Router {
        self.limiter = ReplyLimiter::new(limits);
        self
    }

    /// A snapshot for `wccpd show`, ages relative to the last instant the router was given.
    pub fn status(&self) -> RouterStatus {
        self.status_at(self.last_now)
    }

    /// A snapshot with ages relative to `now`.
    pub fn status_at(&self, now: Instant) -> RouterStatus {
        RouterStatus {
            services: self.groups.iter().map(|g| g.status(now)).collect(),
            unattributed: self.unattributed.clone(),
            reply_limiter: ReplyLimiterStatus {
                tracked_peers: self.limiter.tracked(),
                max_peers: self.limiter.limits().max_peers,
                replies_rate_limited: self
                    .groups
                    .iter()
                    .map(|g| g.counters.replies_rate_limited)
                    .sum(),
            },
        }
    }

    fn each_group(&mut self, now: Instant, mut f: impl FnMut(&mut Group, &mut Ctx<'_>)) {
        let mut ctx = Ctx {
            now,
            out: &mut self.out,
            addresses: &self.addresses,
            router_id: self.router_id,
            limiter: &mut self.limiter,
        };
        for g in &mut self.groups {
            f(g, &mut ctx);
        }
    }

    fn drop_unattributed(&mut self, peer: Ipv4Addr, reason: DropReason, detail: String) {
        *self.unattributed.drops.entry(reason.as_str()).or_insert(0) += 1;
        self.out.push_back(Output::Event(Event::Dropped {
            peer,
            reason,
            detail,
        }));
    }
}

impl Machine for Router {
    fn handle_datagram(&mut self, now: Instant, dg: Datagram) {
        self.last_now = self.last_now.max(now);
        let msg = match Message::parse(&dg.payload) {
            Ok(m) => m,
            Err(e) => {
                self.unattributed.messages_in += 1;
                return self.drop_unattributed(dg.peer, DropReason::Malformed, e.to_string());
            }
        };
        let info = msg.service();
        let key = ServiceKey {
            dynamic: info.service_type == ServiceType::Dynamic,
            id: info.id,
        };
        let Some(gi) = self.groups.iter().position(|g| g.key() == key) else {
            self.unattributed.messages_in += 1;
            return self.drop_unattributed(
                dg.peer,
                DropReason::ServiceMismatch,
                format!("service {key} is not configured"),
            );
        };
        let mut ctx = Ctx {
            now,
            out: &mut self.out,
            addresses: &self.addresses,
            router_id: self.router_id,
            limiter: &mut self.limiter,
        };
        let g = &mut self.groups[gi];
        g.counters.messages_in += 1;
        if let Err(e) = wire::authenticate(&dg.payload, g.cfg.password.as_deref()) {
            return g.security_failed(&mut ctx, &dg, e.to_string());
        }
        g.authenticated(dg.peer);
        if msg.address_table().is_some() {
            *g.counters
                .drops
                .entry(DropReason::Malformed.as_str())
                .or_insert(0) += 1;
            ctx.out.push_back(Output::Event(Event::Dropped {
                peer: dg.peer,
                reason: DropReason::Malformed,
                detail: "Address Table (2.01) not supported".into(),
            }));
            return;
        }
        match msg {
            Message::HereIAm(hia) => g.on_here_i_am(&mut ctx, &dg, hia),
            Message::RedirectAssign(ra) => g.on_redirect_assign(&mut ctx, &dg, ra),
            other => {
                *g.counters
                    .drops
                    .entry(DropReason::UnexpectedType.as_str())
                    .or_insert(0) += 1;
                ctx.out.push_back(Output::Event(Event::Dropped {
                    peer: dg.peer,
                    reason: DropReason::UnexpectedType,
                    detail: format!("{} is not accepted by a router", other.msg_type().as_str()),
                }));
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        self.each_group(now, |g, ctx| {
            if g.poll_timeout().is_some_and(|t| t <= ctx.now) {
                g.handle_timeout(ctx);
            }
        });
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.groups.iter().filter_map(Group::poll_timeout).min()
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn local_addresses(&self) -> Vec<Ipv4Addr> {
        self.addresses.clone()
    }
}
