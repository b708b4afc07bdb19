//! One service group on the router: membership (patent FIG. 4-5), I_SEE_YOU / REMOVAL_QUERY
//! generation, REDIRECT_ASSIGN acceptance and the table the data plane gets.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use assign::service::ServiceDef;
use assign::table::{ForwardingMethod, RedirectTable};
use wire::{
    AltAssignmentBody, Assignment, AssignmentKey, AssignmentMap, Command, CommandExtension,
    HereIAm, ISeeYou, MessageRepr, RedirectAssign, RemovalQuery, RouterIdElement,
    RouterIdentityInfo, RouterQueryInfo, RouterViewInfo, Security, ServiceInfo, Version,
    WebCacheIdentity,
};

use super::caps::{advertise, negotiate, AssignMethod, CacheCaps, GroupMethod};
use super::config::ServiceConfig;
use super::limit::ReplyLimiter;
use super::status::{AssignmentStatus, CacheStatus, Counters, NotUsable, ServiceStatus};
use crate::{Datagram, DropReason, Event, Instant, Output, ServiceKey};

mod reload;

/// What a group needs from the router around it for one input.
pub(super) struct Ctx<'a> {
    pub now: Instant,
    pub out: &'a mut VecDeque<Output>,
    pub addresses: &'a [Ipv4Addr],
    pub router_id: Option<Ipv4Addr>,
    pub limiter: &'a mut ReplyLimiter,
}

impl Ctx<'_> {
    /// Is `a` one of our identities, given that the peer sent to `local`?
    fn is_ours(&self, a: Ipv4Addr, local: Ipv4Addr) -> bool {
        a == local || Some(a) == self.router_id || self.addresses.contains(&a)
    }

    /// The Router ID to put in messages to a peer that sent to `local`.
    fn router_id(&self, local: Ipv4Addr) -> Ipv4Addr {
        self.router_id.unwrap_or(local)
    }
}

/// Next value of a counter that must never be 0.
fn next_nonzero(v: u32) -> u32 {
    match v.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// One cache as the router sees it.
#[derive(Debug)]
struct Cache {
    addr: Ipv4Addr,
    /// Source address of its datagrams (replies go there).
    reply_to: Ipv4Addr,
    /// The address it sent to (replies come from there; Sent To).
    local: Ipv4Addr,
    identity: WebCacheIdentity,
    service: ServiceInfo,
    version: Version,
    last_isy_id: Option<u32>,
    last_rq_id: Option<u32>,
    /// The last few Receive IDs sent to this cache (ISY and RQ), newest last.
    /// With the Member Change Number current when each was sent.
    recent_ids: VecDeque<(u32, u32)>,
    usable: bool,
    reason: Option<NotUsable>,
    last_heard: Instant,
    query_sent: bool,
    routers: Vec<Ipv4Addr>,
    caps: Option<CacheCaps>,
    /// Removed (timed out / shut down): kept for status until `gone_at + GONE_KEEP`.
    gone_at: Option<Instant>,
    /// The last message received from it (type, e.g. `HERE_I_AM`) and when: status only.
    last_msg: Option<(&'static str, Instant)>,
}

impl Cache {
    fn remember(&mut self, id: u32, change_number: u32) {
        if self.recent_ids.len() == RECENT_IDS {
            self.recent_ids.pop_front();
        }
        self.recent_ids.push_back((id, change_number));
    }
}

/// How many past Receive IDs of a cache are remembered. A usable cache whose HERE_I_AM echoes
/// one of them (a duplicated or reordered datagram, or one sent before an unsolicited I_SEE_YOU
/// reached it) stays usable; only an echo we never sent it makes it invalid (FIG. 5 op. 518).
/// Per TRANSMIT_T a cache gets one answer, at most one REMOVAL_QUERY and one unsolicited
/// I_SEE_YOU per membership change; 8 covers a HERE_I_AM in flight during a burst of changes.
const RECENT_IDS: usize = 8;

/// How long a removed cache stays visible in status output.
const GONE_KEEP: Duration = Duration::from_secs(300);
/// Most caches (of any state) a group tracks; further newcomers are dropped.
const MAX_CACHES: usize = 256;
/// Most senders a group remembers as having been rejected (failed authentication, outside the
/// group list, conflicting service definition) without being a cache it tracks (shown in
/// status with the reason; they never join anything).
const MAX_AUTH_FAILURES: usize = 16;

/// A sender rejected without being a cache of the group: status only.
#[derive(Clone, Copy, Debug)]
struct Rejected {
    addr: Ipv4Addr,
    at: Instant,
    reason: NotUsable,
    /// The rejected message's type.
    msg: &'static str,
}

/// The type of a WCCP message, for status (`"message"` when it has none we know).
fn msg_label(payload: &[u8]) -> &'static str {
    payload
        .first_chunk::<4>()
        .and_then(|b| wire::MessageType::try_from(u32::from_be_bytes(*b)).ok())
        .map_or("message", wire::MessageType::as_str)
}

/// What the ISY reports about a mask assignment.
#[derive(Debug, Clone)]
enum IsyMap {
    None,
    Map(AssignmentMap),
    Alt(Box<wire::AlternateAssignmentMap>),
}

/// The last valid REDIRECT_ASSIGN.
#[derive(Debug)]
struct Accepted {
    key: AssignmentKey,
    method: AssignMethod,
    /// As built from the message, nothing drained.
    table: RedirectTable,
    at: Instant,
    map: IsyMap,
}

/// State of one service group.
#[derive(Debug)]
pub(super) struct Group {
    pub cfg: ServiceConfig,
    def: Option<ServiceDef>,
    def_fixed: bool,
    receive_id: u32,
    change_number: u32,
    caches: BTreeMap<Ipv4Addr, Cache>,
    method: Option<GroupMethod>,
    assignment: Option<Accepted>,
    /// What the data plane has now (`None`: nothing or flushed).
    published: Option<Arc<RedirectTable>>,
    flush_at: Option<Instant>,
    /// Membership changed and the usable caches have not been told yet (see
    /// [`Group::notify_members`]).
    notify: bool,
    /// Senders whose last message failed authentication and that are not caches of the group,
    /// with when (oldest first, at most [`MAX_AUTH_FAILURES`]): status only.
    auth_failures: VecDeque<Rejected>,
    /// Caches usable when the password changed (hot reload) that have not authenticated with
    /// the new one since: a failed authentication makes them not usable (`reload.rs`).
    reauth: BTreeSet<Ipv4Addr>,
    pub counters: Counters,
}

impl Group {
    pub fn new(cfg: ServiceConfig) -> Group {
        let fixed = cfg.definition.or_else(|| {
            if cfg.key.dynamic {
                None
            } else {
                ServiceDef::well_known(cfg.key.id)
            }
        });
        Group {
            def: fixed,
            def_fixed: fixed.is_some(),
            cfg,
            receive_id: 0,
            change_number: 1,
            caches: BTreeMap::new(),
            method: None,
            assignment: None,
            published: None,
            flush_at: None,
            notify: false,
            auth_failures: VecDeque::new(),
            reauth: BTreeSet::new(),
            counters: Counters::default(),
        }
    }

    pub fn key(&self) -> ServiceKey {
        self.cfg.key
    }

    /// At start: a closed service with a known definition drops its traffic until a cache takes it.
    pub fn initial_publish(&mut self, ctx: &mut Ctx<'_>) {
        if self.cfg.closed {
            self.republish(ctx);
        }
    }

    // ---- timers -------------------------------------------------------------------------

    /// TRANSMIT_T in ms for the group (negotiated, else configured).
    fn transmit_t(&self) -> u64 {
        match &self.method {
            Some(m) => u64::from(m.transmit_t_ms),
            None => self.default_t_ms().into(),
        }
    }

    fn default_t_ms(&self) -> u16 {
        u16::try_from(self.cfg.timer_base.as_millis()).unwrap_or(u16::MAX)
    }

    /// TIMEOUT_BASE_T of a cache, in ms.
    fn timeout_base(&self, c: &Cache) -> u64 {
        match c.caps.as_ref().map(|k| &k.group).or(self.method.as_ref()) {
            Some(m) => u64::from(m.timeout_scale) * u64::from(m.transmit_t_ms),
            None => self.transmit_t(),
        }
    }

    /// RA_TIMER_BASE_T in ms.
    fn ra_base(&self) -> u64 {
        match &self.method {
            Some(m) => u64::from(m.ra_scale) * u64::from(m.transmit_t_ms),
            None => self.transmit_t(),
        }
    }

    fn query_at(&self, c: &Cache) -> Instant {
        c.last_heard + Duration::from_millis(self.timeout_base(c) * 5 / 2)
    }

    fn remove_at(&self, c: &Cache) -> Instant {
        c.last_heard + Duration::from_millis(self.timeout_base(c) * 3)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.flush_at;
        let mut at = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        for c in self.caches.values() {
            match c.gone_at {
                Some(g) => at(g + GONE_KEEP),
                None => {
                    if c.usable && !c.query_sent {
                        at(self.query_at(c));
                    }
                    at(self.remove_at(c));
                }
            }
        }
        t
    }

    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        let addrs: Vec<Ipv4Addr> = self.caches.keys().copied().collect();
        let mut changed = false;
        for a in addrs {
            let Some(c) = self.caches.get(&a) else {
                continue;
            };
            if let Some(g) = c.gone_at {
                if now >= g + GONE_KEEP {
                    self.caches.remove(&a);
                }
                continue;
            }
            let (query_at, remove_at, usable) = (self.query_at(c), self.remove_at(c), c.usable);
            if now >= remove_at {
                if let Some(c) = self.caches.get_mut(&a) {
                    c.gone_at = Some(now);
                    c.usable = false;
                    if c.reason != Some(NotUsable::Shutdown) {
                        c.reason = Some(NotUsable::TimedOut);
                    }
                    c.last_isy_id = None;
                    c.last_rq_id = None;
                    c.recent_ids.clear();
                    c.caps = None;
                }
                changed |= usable;
            } else if usable && now >= query_at {
                let already = self.caches.get(&a).is_some_and(|c| c.query_sent);
                if !already {
                    self.send_removal_query(ctx, a);
                }
            }
        }
        if changed {
            self.membership_changed(ctx);
            self.notify_members(ctx, None);
        } else {
            self.reset_if_empty();
            // A pending cache that went away leaves the members list.
            self.republish(ctx);
        }
        if self.flush_at.is_some_and(|f| now >= f) {
            self.flush(ctx);
        }
    }

    // ---- membership ---------------------------------------------------------------------

    fn usable_count(&self) -> usize {
        self.caches.values().filter(|c| c.usable).count()
    }

    /// Routers reported by the usable caches (Router View, docs/protocol.md 2.6).
    fn view_routers(&self) -> Vec<Ipv4Addr> {
        let set: BTreeSet<Ipv4Addr> = self
            .caches
            .values()
            .filter(|c| c.usable)
            .flat_map(|c| c.routers.iter().copied())
            .collect();
        set.into_iter().collect()
    }

    /// The Member Change Number moves (only here), the assignment timer restarts, and the data
    /// plane stops sending to caches that left. The usable caches are told by
    /// [`Group::notify_members`] once the input that caused the change has been answered.
    fn membership_changed(&mut self, ctx: &mut Ctx<'_>) {
        self.change_number = next_nonzero(self.change_number);
        self.notify = true;
        ctx.out.push_back(Output::Event(Event::MembershipChanged {
            service: self.key(),
            change_number: self.change_number,
        }));
        self.flush_at = Some(ctx.now + Duration::from_millis(self.ra_base() * 5));
        if self.usable_count() == 0 {
            self.method = None;
        }
        self.reset_if_empty();
        self.republish(ctx);
    }

    /// After a membership change, an unsolicited I_SEE_YOU (new Receive ID, the new change
    /// number, the Router View) to every usable cache except `answered`, the cache whose
    /// HERE_I_AM caused the change and has just been answered. Without it a cache learns of a
    /// change caused by something else (a removal at 3·TIMEOUT_BASE_T, another cache's SHUTDOWN,
    /// join or view) only from the answer to its next HERE_I_AM, up to TRANSMIT_T later, and the
    /// designated cache's 1.5·RA_TIMER_BASE_T assignment wait starts that much later. A no-op
    /// when membership did not change.
    fn notify_members(&mut self, ctx: &mut Ctx<'_>, answered: Option<Ipv4Addr>) {
        if !std::mem::take(&mut self.notify) {
            return;
        }
        let to: Vec<Ipv4Addr> = self
            .caches
            .values()
            .filter(|c| c.usable && Some(c.addr) != answered)
            .map(|c| c.addr)
            .collect();
        for a in to {
            self.send_i_see_you(ctx, a, false);
        }
    }

    /// A dynamic definition learnt from caches is forgotten once no cache is left.
    fn reset_if_empty(&mut self) {
        if !self.def_fixed && self.caches.values().all(|c| c.gone_at.is_some()) {
            self.def = None;
        }
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) {
        self.flush_at = None;
        self.assignment = None;
        self.republish(ctx);
    }

    /// Publishes the table the data plane should have now, if it differs from the last one.
    fn republish(&mut self, ctx: &mut Ctx<'_>) {
        let members: Vec<Ipv4Addr> = self
            .caches
            .values()
            .filter(|c| c.gone_at.is_none())
            .map(|c| c.addr)
            .collect();
        let next = match (&self.assignment, self.def) {
            (Some(a), _) => {
                let usable: BTreeMap<Ipv4Addr, ForwardingMethod> = self
                    .caches
                    .values()
                    .filter(|c| c.usable)
                    .map(|c| {
                        (
                            c.addr,
                            c.caps.map_or(ForwardingMethod::Gre, |k| k.forwarding),
                        )
                    })
                    .collect();
                Some(
                    a.table
                        .clone()
                        .with_methods(|t| usable.get(&t).copied().unwrap_or(ForwardingMethod::Gre))
                        .with_drained(|t| usable.contains_key(&t))
                        .with_members(members)
                        .with_closed(self.cfg.closed),
                )
            }
            (None, Some(def)) if self.cfg.closed => Some(
                RedirectTable::empty(def)
                    .with_members(members)
                    .with_closed(true),
            ),
            (None, _) => None,
        };
        let same = match (&self.published, &next) {
            (None, None) => true,
            (Some(p), Some(n)) => **p == *n,
            _ => false,
        };
        if same {
            return;
        }
        self.published = next.map(Arc::new);
        ctx.out.push_back(Output::Publish {
            service: self.key(),
            table: self.published.clone(),
        });
    }

    fn drop_msg(&mut self, ctx: &mut Ctx<'_>, peer: Ipv4Addr, reason: DropReason, detail: String) {
        *self.counters.drops.entry(reason.as_str()).or_insert(0) += 1;
        ctx.out.push_back(Output::Event(Event::Dropped {
            peer,
            reason,
            detail,
        }));
    }

    /// Marks a cache unusable for `reason`; a membership change if it was usable.
    /// (Every caller rejects a HERE_I_AM; a sender that is no cache of the group is remembered
    /// for status.)
    fn make_unusable(&mut self, ctx: &mut Ctx<'_>, addr: Ipv4Addr, reason: NotUsable) {
        let was = match self.caches.get_mut(&addr) {
            Some(c) if c.gone_at.is_none() => {
                let was = c.usable;
                c.usable = false;
                c.reason = Some(reason);
                c.last_msg = Some(("HERE_I_AM", ctx.now));
                was
            }
            _ => {
                self.remember_rejected(Rejected {
                    addr,
                    at: ctx.now,
                    reason,
                    msg: "HERE_I_AM",
                });
                false
            }
        };
        if was {
            self.membership_changed(ctx);
            // The cache itself is not usable any more: every usable one is told.
            self.notify_members(ctx, None);
        }
    }

    /// A message for this group failed authentication.
    pub fn security_failed(&mut self, ctx: &mut Ctx<'_>, dg: &Datagram, detail: String) {
        // A cache still to authenticate with a password changed by a reload is not usable
        // any more (reload.rs).
        self.reauthentication_failed(ctx, dg.peer);
        // Only a cache that is not usable gets the reason: a forged packet must not be able to
        // evict a member.
        if let Some(c) = self
            .caches
            .values_mut()
            .find(|c| c.reply_to == dg.peer || c.addr == dg.peer)
        {
            if !c.usable && c.gone_at.is_none() {
                c.reason = Some(NotUsable::Md5Failure);
            }
            c.last_msg = Some((msg_label(&dg.payload), ctx.now));
        } else {
            // A sender we track nowhere else: remembered for status only (bounded), so that an
            // operator sees which address is failing and why.
            self.remember_rejected(Rejected {
                addr: dg.peer,
                at: ctx.now,
                reason: NotUsable::Md5Failure,
                msg: msg_label(&dg.payload),
            });
        }
        self.drop_msg(ctx, dg.peer, DropReason::Security, detail);
    }

    /// Remembers a rejected sender that is no cache of the group (bounded, newest kept).
    fn remember_rejected(&mut self, r: Rejected) {
        self.auth_failures.retain(|x| x.addr != r.addr);
        if self.auth_failures.len() == MAX_AUTH_FAILURES {
            self.auth_failures.pop_front();
        }
        self.auth_failures.push_back(r);
    }

    // ---- HERE_I_AM (FIG. 4 op. 407-411, FIG. 5) -------------------------------------------

    pub fn on_here_i_am(&mut self, ctx: &mut Ctx<'_>, dg: &Datagram, hia: HereIAm) {
        let peer = dg.peer;
        let addr = match hia.identity.addr.to_ipv4() {
            a if a.is_unspecified() => peer,
            a => a,
        };
        // Service definition (FIG. 5 op. 509).
        let def = match ServiceDef::from_wire(&hia.service) {
            Ok(d) => d,
            Err(e) => {
                self.make_unusable(ctx, addr, NotUsable::ServiceMismatch);
                return self.drop_msg(ctx, peer, DropReason::ServiceMismatch, e.to_string());
            }
        };
        if let Some(group_def) = &self.def {
            if let Some(conflict) = group_def.conflict_with(&def) {
                self.make_unusable(ctx, addr, NotUsable::ServiceMismatch);
                return self.drop_msg(
                    ctx,
                    peer,
                    DropReason::ServiceMismatch,
                    format!("service definition conflicts with the group's ({conflict})"),
                );
            }
        }
        // Echoed Receive ID (FIG. 5 op. 508/510; docs/protocol.md 5.2).
        let echoed = hia
            .view
            .routers
            .iter()
            .find(|r| ctx.is_ours(r.addr.to_ipv4(), dg.local))
            .map(|r| r.receive_id);
        // The echo must be the last ID we sent it (ISY, or RQ for caches that adopt it); a
        // usable cache may also echo an older one of ours (duplicated / reordered HIA).
        let rid_ok = match (self.caches.get(&addr), echoed) {
            (Some(c), Some(e)) if c.gone_at.is_none() => {
                c.last_isy_id == Some(e)
                    || c.last_rq_id == Some(e)
                    || (c.usable && c.recent_ids.iter().any(|&(id, _)| id == e))
            }
            _ => false,
        };
        // Capabilities.
        let caps = negotiate(
            hia.capabilities.as_ref(),
            &self.cfg.offer,
            self.method.as_ref(),
            self.default_t_ms(),
        );
        // Group list.
        if !self.cfg.allowed_caches.is_empty()
            && !self.cfg.allowed_caches.iter().any(|p| p.contains(&addr))
        {
            self.make_unusable(ctx, addr, NotUsable::NotAllowed);
            return self.drop_msg(
                ctx,
                peer,
                DropReason::NotAllowed,
                format!("cache {addr} is not in the group list"),
            );
        }
        let shutdown = hia
            .command
            .as_ref()
            .is_some_and(|c| c.commands.iter().any(|k| matches!(k, Command::Shutdown(_))));
        if !self.caches.contains_key(&addr) && self.caches.len() >= MAX_CACHES {
            self.caches.retain(|_, c| c.gone_at.is_none());
            if self.caches.len() >= MAX_CACHES {
                return self.drop_msg(
                    ctx,
                    peer,
                    DropReason::NotAllowed,
                    format!("group already tracks {MAX_CACHES} caches"),
                );
            }
        }
        if self.def.is_none() {
            self.def = Some(def);
        }
        let routers: Vec<Ipv4Addr> = hia.view.routers.iter().map(|r| r.addr.to_ipv4()).collect();
        let old_view_routers = self.view_routers();
        // Authenticated now: no longer a failing sender.
        self.auth_failures
            .retain(|r| r.addr != peer && r.addr != addr);
        let c = self.caches.entry(addr).or_insert_with(|| Cache {
            addr,
            reply_to: peer,
            local: dg.local,
            identity: hia.identity.clone(),
            service: hia.service,
            version: hia.version,
            last_isy_id: None,
            last_rq_id: None,
            recent_ids: VecDeque::with_capacity(RECENT_IDS),
            usable: false,
            reason: Some(NotUsable::BadReceiveId),
            last_heard: ctx.now,
            query_sent: false,
            routers: Vec::new(),
            caps: None,
            gone_at: None,
            last_msg: None,
        });
        if c.gone_at.is_some() {
            // Back after removal: a fresh handshake.
            c.gone_at = None;
            c.last_isy_id = None;
            c.last_rq_id = None;
            c.recent_ids.clear();
        }
        c.reply_to = peer;
        c.local = dg.local;
        c.identity = hia.identity;
        c.service = hia.service;
        c.version = hia.version;
        c.last_heard = ctx.now;
        c.last_msg = Some((
            if shutdown {
                "HERE_I_AM (SHUTDOWN)"
            } else {
                "HERE_I_AM"
            },
            ctx.now,
        ));
        c.query_sent = false;
        c.routers = routers;
        let was_usable = c.usable;
        let (usable, reason) = if shutdown {
            (false, Some(NotUsable::Shutdown))
        } else {
            // Checked in the order echoed Receive ID, then capabilities.
            match (rid_ok, &caps) {
                (false, _) => (false, Some(NotUsable::BadReceiveId)),
                (true, Err(_)) => (false, Some(NotUsable::CapabilityMismatch)),
                (true, Ok(_)) => (true, None),
            }
        };
        c.usable = usable;
        c.reason = reason;
        c.caps = if usable { caps.ok() } else { None };
        if usable && self.method.is_none() {
            // The first usable cache fixes the group's method (R1 3.5.2-3.5.5).
            self.method = c.caps.map(|k| k.group);
        }
        if was_usable != usable || (usable && old_view_routers != self.view_routers()) {
            self.membership_changed(ctx);
        } else {
            // No membership change, but a new cache joins the members list (its own traffic is
            // never redirected); a no-op when the table is unchanged.
            self.republish(ctx);
        }
        // The answer, within the reply rate limit (router/limit.rs); the state above is
        // updated either way. When it is not sent and membership changed, the cache is told
        // like every other usable cache.
        let t = self.transmit_t();
        if ctx.limiter.allow(ctx.now, self.key(), peer, t, usable) {
            self.send_i_see_you(ctx, addr, shutdown);
            self.notify_members(ctx, Some(addr));
        } else {
            self.counters.replies_rate_limited += 1;
            self.notify_members(ctx, None);
        }
    }

    // ---- I_SEE_YOU / REMOVAL_QUERY ----------------------------------------------------------

    fn security(&self) -> Security {
        if self.cfg.password.is_some() {
            Security::MD5_UNSIGNED
        } else {
            Security::None
        }
    }

    /// Encodes and signs; `None` (and a drop event) if encoding fails (cannot happen for
    /// messages under 64 KiB).
    fn finish(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: Ipv4Addr,
        bytes: Result<Vec<u8>, wire::Error>,
    ) -> Option<Vec<u8>> {
        let mut v = match bytes {
            Ok(v) => v,
            Err(e) => {
                self.drop_msg(
                    ctx,
                    peer,
                    DropReason::Malformed,
                    format!("cannot encode reply: {e}"),
                );
                return None;
            }
        };
        if let Some(p) = &self.cfg.password {
            if let Err(e) = wire::sign(&mut v, p) {
                self.drop_msg(
                    ctx,
                    peer,
                    DropReason::Security,
                    format!("cannot sign reply: {e}"),
                );
                return None;
            }
        }
        Some(v)
    }

    fn send(&mut self, ctx: &mut Ctx<'_>, local: Ipv4Addr, peer: Ipv4Addr, payload: Vec<u8>) {
        self.counters.messages_out += 1;
        ctx.out.push_back(Output::Send(Datagram {
            local,
            peer,
            payload,
        }));
    }

    fn send_i_see_you(&mut self, ctx: &mut Ctx<'_>, addr: Ipv4Addr, shutdown_ack: bool) {
        let Some(c) = self.caches.get(&addr) else {
            return;
        };
        self.receive_id = next_nonzero(self.receive_id);
        let id = self.receive_id;
        // Mirror the cache's version; a cache opening a 2.01 negotiation (V flag) gets our
        // highest (docs/protocol.md 5.5).
        let version = if c.identity.flags.version_min() {
            Version::V2_01
        } else {
            Version {
                major: 2,
                minor: c.version.minor.min(1),
            }
        };
        let mut usable: Vec<&Cache> = self.caches.values().filter(|c| c.usable).collect();
        usable.sort_by_key(|c| c.addr);
        let view = RouterViewInfo {
            change_number: self.change_number,
            key: self.assignment.as_ref().map(|a| a.key).unwrap_or_default(),
            routers: self
                .view_routers()
                .into_iter()
                .map(wire::Addr::from_ipv4)
                .collect(),
            caches: usable.iter().map(|c| c.identity.clone()).collect(),
        };
        let (assignment_map, alt_assignment_map) = match self.assignment.as_ref().map(|a| &a.map) {
            Some(IsyMap::Map(m)) => (Some(m.clone()), None),
            Some(IsyMap::Alt(m)) => (None, Some((**m).clone())),
            _ => (None, None),
        };
        let isy = ISeeYou {
            version,
            security: self.security(),
            service: c.service,
            identity: RouterIdentityInfo {
                router: RouterIdElement {
                    addr: wire::Addr::from_ipv4(ctx.router_id(c.local)),
                    receive_id: id,
                },
                sent_to: wire::Addr::from_ipv4(c.local),
                received_from: vec![wire::Addr::from_ipv4(c.addr)],
            },
            view,
            assignment_map,
            alt_assignment_map,
            capabilities: Some(advertise(&self.cfg.offer, self.method.as_ref())),
            command: shutdown_ack.then(|| CommandExtension {
                commands: vec![Command::ShutdownResponse(wire::Addr::from_ipv4(addr))],
            }),
            address_table: None,
        };
        let (local, peer) = (c.local, c.reply_to);
        if let Some(c) = self.caches.get_mut(&addr) {
            c.last_isy_id = Some(id);
            c.remember(id, self.change_number);
        }
        if let Some(bytes) = self.finish(ctx, peer, isy.to_vec()) {
            self.send(ctx, local, peer, bytes);
        }
    }

    fn send_removal_query(&mut self, ctx: &mut Ctx<'_>, addr: Ipv4Addr) {
        let Some(c) = self.caches.get(&addr) else {
            return;
        };
        self.receive_id = next_nonzero(self.receive_id);
        let id = self.receive_id;
        let rq = RemovalQuery {
            version: Version {
                major: 2,
                minor: c.version.minor.min(1),
            },
            security: self.security(),
            service: c.service,
            query: RouterQueryInfo {
                router: wire::Addr::from_ipv4(ctx.router_id(c.local)),
                receive_id: id,
                sent_to: wire::Addr::from_ipv4(c.local),
                target: wire::Addr::from_ipv4(c.addr),
            },
            address_table: None,
        };
        let (local, peer) = (c.local, c.reply_to);
        if let Some(c) = self.caches.get_mut(&addr) {
            c.last_rq_id = Some(id);
            c.remember(id, self.change_number);
            c.query_sent = true;
        }
        if let Some(bytes) = self.finish(ctx, peer, rq.to_vec()) {
            self.send(ctx, local, peer, bytes);
        }
    }

    // ---- REDIRECT_ASSIGN ------------------------------------------------------------------

    pub fn on_redirect_assign(&mut self, ctx: &mut Ctx<'_>, dg: &Datagram, ra: RedirectAssign) {
        let peer = dg.peer;
        if let Some(c) = self
            .caches
            .values_mut()
            .find(|c| c.gone_at.is_none() && (c.reply_to == peer || c.addr == peer))
        {
            c.last_msg = Some(("REDIRECT_ASSIGN", ctx.now));
        }
        let def = match (self.def, ServiceDef::from_wire(&ra.service)) {
            (Some(g), Ok(d)) => match g.conflict_with(&d) {
                None => g,
                Some(c) => {
                    return self.drop_msg(
                        ctx,
                        peer,
                        DropReason::ServiceMismatch,
                        format!("REDIRECT_ASSIGN service definition conflicts ({c})"),
                    )
                }
            },
            (None, _) => {
                return self.drop_msg(
                    ctx,
                    peer,
                    DropReason::ServiceMismatch,
                    "REDIRECT_ASSIGN for a group with no definition yet".into(),
                )
            }
            (_, Err(e)) => {
                return self.drop_msg(ctx, peer, DropReason::ServiceMismatch, e.to_string())
            }
        };
        let Some(sender) = self
            .caches
            .values()
            .find(|c| c.usable && (c.reply_to == peer || c.addr == peer))
        else {
            return self.drop_msg(
                ctx,
                peer,
                DropReason::NotAllowed,
                format!("REDIRECT_ASSIGN from {peer}, which is not a usable cache"),
            );
        };
        let (sender_isy, sender_rq) = (sender.last_isy_id, sender.last_rq_id);
        // Also an ID sent to the sender since the current change number was announced: a
        // REDIRECT_ASSIGN built from it crossed the answer to the sender's own HERE_I_AM, and the
        // membership it was built for is still current.
        let sender_recent: Vec<u32> = sender
            .recent_ids
            .iter()
            .filter(|&&(_, n)| n == self.change_number)
            .map(|&(id, _)| id)
            .collect();
        let (key, routers, body) = match ra.assignment {
            Assignment::Hash(a) => (a.key, a.routers, AltAssignmentBody::Hash(a.hash)),
            Assignment::Alternate(a) => (a.key, a.routers, a.body),
        };
        // Our Router Assignment Element: prefer the address the cache sent to.
        let mine = routers
            .iter()
            .find(|r| r.addr.to_ipv4() == dg.local)
            .or_else(|| {
                routers
                    .iter()
                    .find(|r| ctx.is_ours(r.addr.to_ipv4(), dg.local))
            });
        let Some(mine) = mine else {
            // An assignment that leaves us out: stop redirecting ([W] 4.8).
            if self.assignment.is_some() {
                self.flush(ctx);
            }
            return self.drop_msg(
                ctx,
                peer,
                DropReason::NotForUs,
                "REDIRECT_ASSIGN does not list this router; table flushed".into(),
            );
        };
        let latest = Some(mine.receive_id) == sender_isy || Some(mine.receive_id) == sender_rq;
        if !latest && !sender_recent.contains(&mine.receive_id) {
            return self.drop_msg(
                ctx,
                peer,
                DropReason::Stale,
                format!(
                    "REDIRECT_ASSIGN receive id {} but last sent to {peer} was {}",
                    mine.receive_id,
                    sender_isy.unwrap_or(0)
                ),
            );
        }
        if mine.change_number != self.change_number {
            return self.drop_msg(
                ctx,
                peer,
                DropReason::Stale,
                format!(
                    "REDIRECT_ASSIGN change number {} but current is {}",
                    mine.change_number, self.change_number
                ),
            );
        }
        // Built from a superseded Receive ID: never let it replace a newer assignment of the same
        // designated cache (a replayed or overtaken REDIRECT_ASSIGN).
        if let Some(a) = self
            .assignment
            .as_ref()
            .filter(|a| !latest && a.key.addr == key.addr)
        {
            if (a.key.change_number.wrapping_sub(key.change_number) as i32) > 0 {
                return self.drop_msg(
                    ctx,
                    peer,
                    DropReason::Stale,
                    format!(
                        "REDIRECT_ASSIGN key change {} older than the accepted {}",
                        key.change_number, a.key.change_number
                    ),
                );
            }
        }
        let (method, map) = match &body {
            AltAssignmentBody::Hash(_) => (AssignMethod::Hash, IsyMap::None),
            AltAssignmentBody::Mask(sets) => (
                AssignMethod::Mask,
                IsyMap::Map(AssignmentMap { sets: sets.clone() }),
            ),
            AltAssignmentBody::AltMask(_) => (
                AssignMethod::Mask,
                IsyMap::Alt(Box::new(wire::AlternateAssignmentMap {
                    body: body.clone(),
                })),
            ),
            AltAssignmentBody::Unknown { kind, .. } => {
                return self.drop_msg(
                    ctx,
                    peer,
                    DropReason::Malformed,
                    format!("Alternate Assignment type {kind} unknown"),
                )
            }
        };
        // Per-target forwarding methods are applied when publishing.
        let built = RedirectTable::from_wire_alt_body(def, &body, ForwardingMethod::Gre);
        if let Some(m) = &self.method {
            if m.assignment != method {
                return self.drop_msg(
                    ctx,
                    peer,
                    DropReason::ServiceMismatch,
                    format!(
                        "REDIRECT_ASSIGN uses {} assignment but the group negotiated {}",
                        method.as_str(),
                        m.assignment.as_str()
                    ),
                );
            }
        }
        let table = match built {
            Ok(t) => t,
            Err(e) => {
                return self.drop_msg(
                    ctx,
                    peer,
                    DropReason::Malformed,
                    format!("REDIRECT_ASSIGN: {e}"),
                )
            }
        };
        self.assignment = Some(Accepted {
            key,
            method,
            table,
            at: ctx.now,
            map,
        });
        self.flush_at = None;
        ctx.out.push_back(Output::Event(Event::Assignment {
            service: self.key(),
            key_address: key.addr.to_ipv4(),
            key_change: key.change_number,
        }));
        self.republish(ctx);
    }

    // ---- status -----------------------------------------------------------------------------

    pub fn status(&self, now: Instant) -> ServiceStatus {
        let shares: BTreeMap<Ipv4Addr, u32> = match &self.published {
            Some(t) => t
                .targets()
                .iter()
                .zip(t.share_counts())
                .map(|(tg, n)| (tg.addr, n))
                .collect(),
            None => BTreeMap::new(),
        };
        let assigned = self.assignment.is_some();
        let caches = self.caches.values().map(|c| {
            let buckets = shares.get(&c.addr).copied().unwrap_or(0);
            let reason = match c.reason {
                None if assigned && buckets == 0 => Some(NotUsable::NotInAssignment),
                r => r,
            };
            CacheStatus {
                address: c.addr,
                usable: c.usable,
                reason,
                buckets,
                weight: c.identity.data.weight_status().map_or(0, |w| w.0),
                last_heard_ms_ago: now.saturating_since(c.last_heard).as_millis() as u64,
                forwarding: c.caps.map(|k| k.forwarding.as_str()),
                last_message: c.last_msg.map(|(m, _)| m),
                last_message_ms_ago: c
                    .last_msg
                    .map(|(_, at)| now.saturating_since(at).as_millis() as u64),
            }
        });
        // Senders rejected (authentication, group list, definition) that are no cache of
        // ours: listed, never usable.
        let failing = self
            .auth_failures
            .iter()
            .filter(|r| {
                !self.caches.contains_key(&r.addr) && now.saturating_since(r.at) < GONE_KEEP
            })
            .map(|r| {
                let ago = now.saturating_since(r.at).as_millis() as u64;
                CacheStatus {
                    address: r.addr,
                    usable: false,
                    reason: Some(r.reason),
                    buckets: 0,
                    weight: 0,
                    last_heard_ms_ago: ago,
                    forwarding: None,
                    last_message: Some(r.msg),
                    last_message_ms_ago: Some(ago),
                }
            });
        let caches = caches.chain(failing).collect();
        ServiceStatus {
            id: self.cfg.key.id,
            dynamic: self.cfg.key.dynamic,
            change_number: self.change_number,
            receive_id: self.receive_id,
            security: if self.cfg.password.is_some() {
                "md5"
            } else {
                "none"
            },
            assignment_method: self.method.map(|m| m.assignment.as_str()),
            assignment: self.assignment.as_ref().map(|a| AssignmentStatus {
                address: a.key.addr.to_ipv4(),
                change_number: a.key.change_number,
                method: a.method.as_str(),
                age_ms: now.saturating_since(a.at).as_millis() as u64,
            }),
            routers: self.view_routers(),
            caches,
            counters: self.counters.clone(),
        }
    }
}
