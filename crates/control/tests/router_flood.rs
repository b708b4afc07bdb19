//! A router under a flood, in virtual time: junk from random sources, one valid HERE_I_AM
//! repeated from one address, the same valid HERE_I_AM from ever new spoofed sources, and
//! HERE_I_AMs claiming ever new cache addresses, while a real [`CacheAgent`] joins, is assigned
//! and keeps working. Every authenticated HERE_I_AM is processed, but answers are rate limited
//! (router/limit.rs): per destination 8 back to back and 4 per TRANSMIT_T, and 256 back to back
//! plus 100 per second to every destination that is not a usable cache. The router's memory
//! (caches, rate-limit budgets) stays bounded and the legitimate cache never notices.

mod router_support;

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use assign::RedirectTable;
use router_support::{FakeCache, ROUTER};
use wccp_control::cache::{
    CacheAgent, CacheConfig, CacheService, RouterLinkState, ServiceDefinition,
};
use wccp_control::router::{ReplyLimits, Router, RouterConfig, ServiceConfig};
use wccp_control::{Datagram, Instant, Machine, Output};
use wire::{ISeeYou, MessageRepr};

/// TRANSMIT_T of the router and the legitimate cache.
const T_MS: u64 = 1_000;
/// The legitimate cache.
const LEGIT: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 5);
/// The address that repeats one valid HERE_I_AM.
const REPEATER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 66);
/// The cache address claimed from spoofed sources.
const CLAIMED: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 77);
/// Datagrams per millisecond of each kind.
const PER_MS: u64 = 2;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A source address outside 10.200.0.0/24 (never the legitimate cache).
fn spoofed(n: u64) -> Ipv4Addr {
    Ipv4Addr::from(0x0B00_0000 | (n as u32 & 0x00FF_FFFF))
}

fn hia_from(identity: Ipv4Addr, source: Ipv4Addr) -> Datagram {
    let mut c = FakeCache::web_cache(1);
    c.addr = identity;
    let mut d = c.here_i_am();
    d.peer = source;
    d
}

#[derive(Default, Debug)]
struct Tally {
    /// Datagrams the router sent, by destination.
    sent_to: BTreeMap<Ipv4Addr, u64>,
    /// Valid (authenticated, well-formed) flood HERE_I_AMs fed to the router.
    valid_flood: u64,
    junk: u64,
}

impl Tally {
    fn to_others(&self) -> u64 {
        self.sent_to
            .iter()
            .filter(|(a, _)| **a != LEGIT)
            .map(|(_, n)| n)
            .sum()
    }
}

struct World {
    router: Router,
    cache: CacheAgent,
    /// (arrival ms, to the router?, datagram)
    wire: VecDeque<(u64, bool, Datagram)>,
    table: Option<Arc<RedirectTable>>,
    tally: Tally,
    isy_to_legit: Vec<u64>,
    /// Most rate-limit budgets seen at once (sampled every 10 ms).
    max_tracked: usize,
}

impl World {
    fn drain(&mut self, now: u64) {
        while let Some(o) = self.router.poll_output() {
            match o {
                Output::Send(d) => {
                    *self.tally.sent_to.entry(d.peer).or_insert(0) += 1;
                    assert_eq!(d.local, ROUTER);
                    if d.peer == LEGIT {
                        ISeeYou::parse(&d.payload).expect("only I_SEE_YOUs to the cache");
                        self.isy_to_legit.push(now);
                        self.wire.push_back((now + 1, false, d));
                    }
                }
                Output::Publish { table, .. } => self.table = table,
                Output::Event(_) => {}
            }
        }
        while let Some(o) = self.cache.poll_output() {
            if let Output::Send(d) = o {
                assert_eq!((d.local, d.peer), (LEGIT, ROUTER));
                self.wire.push_back((now + 1, true, d));
            }
        }
    }

    fn step(&mut self, now: u64, flood: &mut dyn FnMut(&mut Router, &mut Tally)) {
        let t = Instant(now);
        while self.wire.front().is_some_and(|w| w.0 <= now) {
            let (_, to_router, sent) = self.wire.pop_front().expect("front");
            // Sent from `local` to `peer`; received by `peer` from `local`.
            let d = Datagram {
                local: sent.peer,
                peer: sent.local,
                payload: sent.payload,
            };
            if to_router {
                self.router.handle_datagram(t, d);
            } else {
                self.cache.handle_datagram(t, d);
            }
            self.drain(now);
        }
        flood(&mut self.router, &mut self.tally);
        self.drain(now);
        if self.router.poll_timeout().is_some_and(|x| x <= t) {
            self.router.handle_timeout(t);
        }
        if self.cache.poll_timeout().is_some_and(|x| x <= t) {
            self.cache.handle_timeout(t);
        }
        self.drain(now);
        if now % 10 == 0 {
            let n = self.router.status().reply_limiter.tracked_peers;
            self.max_tracked = self.max_tracked.max(n);
        }
    }
}

fn legit_buckets(w: &World) -> u32 {
    let Some(t) = &w.table else {
        return 0;
    };
    t.targets()
        .iter()
        .zip(t.share_counts())
        .filter(|(tg, _)| tg.addr == LEGIT && !tg.drained)
        .map(|(_, n)| n)
        .sum()
}

/// What a run leaves behind.
struct Run {
    w: World,
    /// Valid flood HERE_I_AMs and answers to the repeater in phase 1.
    phase1_valid: u64,
    phase1_repeater: u64,
    /// I_SEE_YOUs the legitimate cache got in phase 1.
    legit_isy_phase1: usize,
    /// Spoofed sources used.
    spoofed_sources: u64,
}

/// Phase 1 (`0..phase2_ms`): junk from random sources and one valid HERE_I_AM repeated from
/// one address, while the cache joins and is assigned. Phase 2 (`phase2_ms..end_ms`): also the
/// same valid HERE_I_AM from ever new spoofed sources, and HERE_I_AMs claiming ever new cache
/// addresses.
fn run(limits: ReplyLimits, phase2_ms: u64, end_ms: u64) -> Run {
    let mut svc = ServiceConfig::web_cache();
    svc.timer_base = Duration::from_millis(T_MS);
    let router = Router::new(RouterConfig {
        addresses: vec![ROUTER],
        router_id: None,
        services: vec![svc],
    })
    .expect("router")
    .with_reply_limits(limits);
    let mut cfg = CacheConfig::new(
        LEGIT,
        vec![ROUTER],
        vec![CacheService::new(ServiceDefinition::web_cache())],
    );
    cfg.transmit_t = Duration::from_millis(T_MS);
    let mut w = World {
        router,
        cache: CacheAgent::new(cfg).expect("cache"),
        wire: VecDeque::new(),
        table: None,
        tally: Tally::default(),
        isy_to_legit: Vec::new(),
        max_tracked: 0,
    };
    let mut rng = Rng(7);
    let repeated = hia_from(REPEATER, REPEATER);
    let mut spoof_n = 0u64;
    let mut phase1 = None;
    for now in 0..end_ms {
        if now == phase2_ms {
            phase1 = Some((
                w.tally.valid_flood,
                w.tally.sent_to.get(&REPEATER).copied().unwrap_or(0),
                w.isy_to_legit.len(),
            ));
            check_usable_and_assigned(&w, now);
        }
        let both = now >= phase2_ms;
        w.step(now, &mut |r, tally| {
            for _ in 0..PER_MS {
                let len = (rng.next() % 200) as usize;
                let payload = (0..len).map(|_| rng.next() as u8).collect();
                let peer = spoofed(rng.next());
                r.handle_datagram(
                    Instant(now),
                    Datagram {
                        local: ROUTER,
                        peer,
                        payload,
                    },
                );
                tally.junk += 1;
                r.handle_datagram(Instant(now), repeated.clone());
                tally.valid_flood += 1;
                if both {
                    spoof_n += 1;
                    r.handle_datagram(Instant(now), hia_from(CLAIMED, spoofed(spoof_n)));
                    spoof_n += 1;
                    let fresh = spoofed(spoof_n);
                    r.handle_datagram(Instant(now), hia_from(fresh, fresh));
                    tally.valid_flood += 2;
                }
            }
        });
    }
    let (phase1_valid, phase1_repeater, legit_isy_phase1) = phase1.expect("two phases");
    Run {
        w,
        phase1_valid,
        phase1_repeater,
        legit_isy_phase1,
        spoofed_sources: spoof_n,
    }
}

/// The legitimate cache is usable at the router with every bucket, the router accepted its
/// assignment, and it is joined and designated on its side, hearing an I_SEE_YOU every T.
fn check_usable_and_assigned(w: &World, now: u64) {
    let st = w.router.status_at(Instant(now));
    let svc = &st.services[0];
    let legit = svc
        .caches
        .iter()
        .find(|c| c.address == LEGIT)
        .expect("the cache is known");
    assert!(legit.usable && legit.reason.is_none(), "{legit:?}");
    assert!(legit.last_heard_ms_ago <= T_MS, "{legit:?}");
    assert_eq!(legit_buckets(w), 256, "the cache has every bucket");
    assert_eq!(svc.assignment.as_ref().map(|a| a.address), Some(LEGIT));
    let cs = w.cache.status_at(Instant(now));
    let r = &cs.services[0].routers[0];
    assert_eq!(r.state, RouterLinkState::Joined, "{r:?}");
    assert!(r.last_i_see_you_age_ms.is_some_and(|a| a <= T_MS), "{r:?}");
    assert!(cs.services[0].designated);
    assert_eq!(
        r.assignment_key.map(|k| k.address),
        Some(LEGIT),
        "the router reflects the cache's assignment"
    );
}

#[test]
fn a_flood_is_processed_but_answers_are_bounded_and_the_cache_keeps_working() {
    const PHASE2_MS: u64 = 6_000;
    const END_MS: u64 = 16_000;
    let limits = ReplyLimits::default();
    let Run {
        w,
        phase1_valid,
        phase1_repeater,
        legit_isy_phase1,
        spoofed_sources,
    } = run(limits, PHASE2_MS, END_MS);
    // Phase 1, the repeater: the burst, then 4 per TRANSMIT_T; everything else counted.
    let bound =
        u64::from(limits.peer_burst) + PHASE2_MS * u64::from(limits.peer_per_transmit_t) / T_MS;
    assert!(
        phase1_repeater <= bound && phase1_repeater + 2 >= bound,
        "{phase1_repeater} answers to the repeater, bound {bound}"
    );
    assert!(phase1_valid > 100 * phase1_repeater);

    let st = w.router.status_at(Instant(END_MS));
    let svc = &st.services[0];
    let tally = &w.tally;
    eprintln!(
        "flood: {} junk, {} valid HERE_I_AMs ({} spoofed sources) over {} s; answers to the \
         flood {} (repeater {}: {phase1_repeater} in the first {} s), rate limited {}, dropped \
         {:?}; {} caches tracked, at most {} rate-limit budgets; {} I_SEE_YOUs to the \
         legitimate cache",
        tally.junk,
        tally.valid_flood,
        spoofed_sources,
        END_MS / 1000,
        tally.to_others(),
        tally.sent_to.get(&REPEATER).copied().unwrap_or(0),
        PHASE2_MS / 1000,
        svc.counters.replies_rate_limited,
        svc.counters.drops,
        svc.caches.len(),
        w.max_tracked,
        w.isy_to_legit.len(),
    );

    // Memory: the caches a group tracks and the rate limiter's budgets are bounded.
    assert!(svc.caches.len() <= 256 + 16, "{} caches", svc.caches.len());
    assert!(
        w.max_tracked <= limits.max_peers,
        "{} budgets",
        w.max_tracked
    );
    assert_eq!(st.reply_limiter.max_peers, limits.max_peers);

    // Answers: every one to a destination that is not a usable cache took a shared token.
    let shared = u64::from(limits.global_burst) + END_MS * u64::from(limits.global_per_sec) / 1000;
    assert!(
        tally.to_others() <= shared,
        "{} answers to the flood, bound {shared}",
        tally.to_others()
    );
    assert!(tally.to_others() * 50 < tally.valid_flood);
    let bound =
        u64::from(limits.peer_burst) + END_MS * u64::from(limits.peer_per_transmit_t) / T_MS;
    // No destination got more than its own budget.
    let most = tally.sent_to.values().max().copied().unwrap_or(0);
    assert!(
        most <= bound,
        "{most} answers to one destination, bound {bound}"
    );
    // Every valid HERE_I_AM was processed: answered, counted as rate limited, or dropped
    // because the group already tracks 256 caches.
    let not_allowed = svc.counters.drops.get("not_allowed").copied().unwrap_or(0);
    assert_eq!(
        tally.to_others() + svc.counters.replies_rate_limited + not_allowed,
        tally.valid_flood,
        "answered {}, rate limited {}, not allowed {not_allowed}",
        tally.to_others(),
        svc.counters.replies_rate_limited
    );
    assert_eq!(
        st.reply_limiter.replies_rate_limited,
        svc.counters.replies_rate_limited
    );
    // The junk was dropped (it never parses as a message of a configured service).
    let dropped = |m: &std::collections::BTreeMap<&str, u64>| -> u64 { m.values().sum() };
    assert_eq!(dropped(&st.unattributed.drops), tally.junk);

    // The legitimate cache never noticed: still usable with every bucket, answered once per
    // TRANSMIT_T through the whole flood.
    check_usable_and_assigned(&w, END_MS);
    let phase2_isy = (w.isy_to_legit.len() - legit_isy_phase1) as u64;
    assert!(
        phase2_isy >= (END_MS - PHASE2_MS) / T_MS - 1,
        "{phase2_isy} I_SEE_YOUs in phase 2"
    );
}

/// Without the shared budget (a huge one), every spoofed source gets its own budget: the
/// table of budgets still never grows past its bound, and the repeater, the most indebted
/// destination, is never forgotten (its budget does not refill by eviction).
#[test]
fn the_budget_table_stays_bounded_without_a_shared_cap() {
    let limits = ReplyLimits {
        global_burst: u32::MAX,
        global_per_sec: 1_000_000,
        max_peers: 64,
        ..ReplyLimits::default()
    };
    const PHASE2_MS: u64 = 4_000;
    const END_MS: u64 = 7_000;
    let r = run(limits, PHASE2_MS, END_MS);
    let st = r.w.router.status_at(Instant(END_MS));
    eprintln!(
        "{} spoofed sources, at most {} budgets (bound {}), {} answers to the repeater",
        r.spoofed_sources, r.w.max_tracked, limits.max_peers, r.w.tally.sent_to[&REPEATER]
    );
    assert!(r.spoofed_sources > 10 * limits.max_peers as u64);
    // Full at times, never over.
    assert!(r.w.max_tracked <= limits.max_peers);
    assert!(
        r.w.max_tracked >= limits.max_peers / 2,
        "{}",
        r.w.max_tracked
    );
    assert!(st.reply_limiter.tracked_peers <= limits.max_peers);
    let bound =
        u64::from(limits.peer_burst) + END_MS * u64::from(limits.peer_per_transmit_t) / T_MS;
    assert!(r.w.tally.sent_to[&REPEATER] <= bound);
    check_usable_and_assigned(&r.w, END_MS);
}
