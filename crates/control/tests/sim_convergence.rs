//! Whole-group simulations: the real router and cache state machines, R routers × C caches, over
//! a seeded network (delay, reordering, loss, duplication) in virtual time. Run with
//! `cargo test -p wccp-control --test sim_convergence -- --nocapture` to see the timings
//! (`SIM_TRACE=1` prints every event).
//!
//! Bounds asserted (T = TRANSMIT_T = 10 s), all measured from the crash / start instant:
//! * A crashed cache is removed by every router 3·T after its last HERE_I_AM, and the router
//!   publishes a table without its buckets at once: no traffic reaches it after 3·T (+ one
//!   crossing for its last HERE_I_AM, within [`NET_SLACK`]).
//! * The complete new assignment: a router tells every remaining usable cache of a membership
//!   change at once (unsolicited I_SEE_YOU), so the designated cache starts its 1.5·T wait at
//!   the removal: 3·T + 1.5·T + [`NET_SLACK`]. The critical path crosses the network three times
//!   (the crashed cache's last HERE_I_AM, the unsolicited I_SEE_YOU, the REDIRECT_ASSIGN), each at
//!   most [`HOP`]; virtual timers fire at their exact millisecond, so nothing else adds up.
//! * Under loss (0.5 % loss + 0.5 % duplication on top of reordering) [`LOSS_SLACK`] more: a lost
//!   unsolicited I_SEE_YOU is made up for by the answer to the designated cache's next HERE_I_AM
//!   (≤ T later); a lost REDIRECT_ASSIGN is resent when an I_SEE_YOU shows the old key, at most
//!   once per T (≤ 2·T later).
//!
//! Properties checked everywhere: all routers publish the same table; every bucket belongs to
//! exactly one alive cache; exactly one cache (the numerically lowest) is designated; with no
//! membership change no table changes at all.

mod sim_support;

use std::net::Ipv4Addr;

use sim_support::*;

/// Worst one-way delay of the network models (fixed delay + jitter), ms.
const HOP: u64 = NetModel::REORDER.delay_ms + NetModel::REORDER.jitter_ms;
/// Three network crossings on every critical path (≤ 3·HOP = 123 ms), rounded up.
const NET_SLACK: u64 = 250;
const _: () = assert!(3 * HOP <= NET_SLACK);
/// Under loss: one lost datagram on the critical path (see the module comment).
const LOSS_SLACK: u64 = 2 * T;
const BOUND_GONE: u64 = 3 * T + NET_SLACK;
/// The bound: a crashed cache's buckets move within 3·T + 1.5·T.
const BOUND_CONVERGED: u64 = 3 * T + 3 * T / 2 + NET_SLACK;
/// Caches starting within the first T: usable at their second HERE_I_AM (< 2·T), which the
/// designated cache hears of at once, then 1.5·T.
const BOUND_START: u64 = 2 * T + 3 * T / 2 + NET_SLACK;
/// A restarted cache: usable at its second HERE_I_AM (T), then 1.5·T.
const BOUND_REJOIN: u64 = T + 3 * T / 2 + NET_SLACK;

fn summary(sim: &Sim) -> Vec<Option<Vec<(Ipv4Addr, usize)>>> {
    sim.router_owners()
        .into_iter()
        .map(|o| {
            o.map(|o| {
                let mut m = std::collections::BTreeMap::new();
                for a in o.iter().flatten() {
                    *m.entry(a.to_bits()).or_insert(0usize) += 1;
                }
                m.into_iter()
                    .map(|(a, n)| (Ipv4Addr::from_bits(a), n))
                    .collect()
            })
        })
        .collect()
}

fn converge(sim: &mut Sim, within: u64, what: &str) -> u64 {
    let start = sim.now;
    let at = sim
        .run_until_pred(start + within, Sim::converged)
        .unwrap_or_else(|| {
            panic!(
                "{what}: no convergence within {within} ms; owners {:?}; events {:?}",
                summary(sim),
                sim.events
            )
        });
    println!(
        "{what}: converged after {:.3} s",
        (at - start) as f64 / 1000.0
    );
    at - start
}

/// Crashes `node`; checks both bounds (plus `slack`); returns (no traffic to it, complete new
/// table) in ms.
fn crash_and_measure(sim: &mut Sim, node: usize, what: &str, slack: u64) -> (u64, u64) {
    let (bound_gone, bound_conv) = (BOUND_GONE + slack, BOUND_CONVERGED + slack);
    let addr = sim.nodes[node].addr;
    let t0 = sim.now;
    sim.crash(node);
    let gone = sim
        .run_until_pred(t0 + bound_gone, |s| s.nobody_uses(addr))
        .unwrap_or_else(|| panic!("{what}: {addr} still used {bound_gone} ms after its crash"))
        - t0;
    let conv = sim
        .run_until_pred(t0 + bound_conv, Sim::converged)
        .unwrap_or_else(|| {
            panic!(
                "{what}: not re-converged {bound_conv} ms after the crash: {:?} {:?}",
                summary(sim),
                sim.events
            )
        })
        - t0;
    println!(
        "{what}: crash of {addr}: no traffic to it after {:.3} s, complete new table after {:.3} s",
        gone as f64 / 1000.0,
        conv as f64 / 1000.0
    );
    (gone, conv)
}

/// `duration` ms without membership change: no table changes at all.
fn assert_quiet(sim: &mut Sim, duration: u64, what: &str) {
    let before = sim.router_owners();
    let n = sim.changes.len();
    let m = sim.router_membership.len();
    let end = sim.now + duration;
    sim.run_until(end);
    assert_eq!(
        sim.router_membership.len(),
        m,
        "{what}: membership changed: {:?}",
        sim.events
    );
    let moved: Vec<(u64, usize)> = sim.changes[n..].iter().map(|c| (c.0, c.1)).collect();
    assert!(
        moved.is_empty(),
        "{what}: tables changed without a membership change: {moved:?}"
    );
    assert_eq!(sim.router_owners(), before, "{what}");
    assert!(sim.converged());
}

fn each_bucket_one_alive_cache(sim: &Sim) {
    let alive = sim.alive_caches();
    for (r, o) in sim.router_owners().into_iter().enumerate() {
        let o = o.unwrap_or_else(|| panic!("router {r} has no table"));
        for (b, owner) in o.iter().enumerate() {
            let owner = owner.unwrap_or_else(|| panic!("router {r} bucket {b} unassigned"));
            assert!(
                alive.contains(&owner),
                "router {r} bucket {b} -> {owner} (not alive)"
            );
        }
    }
}

fn lowest_alive(sim: &Sim) -> Ipv4Addr {
    sim.alive_caches()
        .into_iter()
        .min_by_key(|a| a.to_bits())
        .unwrap()
}

fn single_designated_is_lowest(sim: &Sim) {
    let d = sim.designated();
    assert_eq!(d.len(), 1, "exactly one designated cache");
    assert_eq!(sim.nodes[d[0]].addr, lowest_alive(sim));
}

#[test]
fn sim_2x4_clean_converges_and_stays_put() {
    let mut sim = Sim::new(2, 4, NetModel::CLEAN, 1);
    sim.stagger(T);
    // Each cache: first HIA at s < T -> ISY without it; HIA at s+T -> ISY listing it (membership
    // change, told to every usable cache at once). The last change is before 2·T; the designated
    // cache assigns 1.5·T after that.
    let t = converge(&mut sim, BOUND_START, "2x4 clean start");
    assert!(
        t >= 2 * T,
        "nobody can be assigned before its second HERE_I_AM"
    );
    each_bucket_one_alive_cache(&sim);
    single_designated_is_lowest(&sim);
    assert_quiet(&mut sim, 10 * 60_000, "2x4 clean, 10 min");
}

fn crash_scenario(routers: usize, caches: usize, seed: u64, quiet: u64, net: NetModel) {
    let kind = if net.loss_permille > 0 {
        "lossy"
    } else {
        "reorder"
    };
    let slack = if net.loss_permille > 0 || net.dup_permille > 0 {
        LOSS_SLACK
    } else {
        0
    };
    let what = format!("{routers}x{caches} {kind} seed {seed}");
    let mut sim = Sim::new(routers, caches, net, seed);
    sim.stagger(T);
    converge(&mut sim, BOUND_START + slack, &format!("{what}: start"));
    each_bucket_one_alive_cache(&sim);
    single_designated_is_lowest(&sim);
    assert_quiet(&mut sim, quiet, &format!("{what}: steady"));

    // A non-designated cache.
    let designated = sim.designated();
    let victim = sim
        .cache_nodes()
        .into_iter()
        .rev()
        .find(|i| !designated.contains(i))
        .unwrap();
    crash_and_measure(&mut sim, victim, &what, slack);
    each_bucket_one_alive_cache(&sim);
    single_designated_is_lowest(&sim);
    assert_quiet(&mut sim, quiet, &format!("{what}: after crash"));

    // The designated cache: the next lowest takes over.
    let d = sim.designated()[0];
    crash_and_measure(&mut sim, d, &format!("{what}, designated"), slack);
    each_bucket_one_alive_cache(&sim);
    single_designated_is_lowest(&sim);

    // The first victim comes back: membership change, then a complete table again.
    sim.restart(victim);
    converge(&mut sim, BOUND_REJOIN + slack, &format!("{what}: rejoin"));
    each_bucket_one_alive_cache(&sim);
    assert_quiet(&mut sim, quiet, &format!("{what}: after rejoin"));
    println!("{what}: {} datagrams delivered", sim.delivered);
}

#[test]
fn sim_4x16_crashes_and_rejoin() {
    crash_scenario(4, 16, 7, 2 * 60_000, NetModel::REORDER);
}

#[test]
fn sim_8x32_crashes_and_rejoin() {
    crash_scenario(8, 32, 42, 20_000, NetModel::REORDER);
}

#[test]
fn sim_seeds_small_groups() {
    for seed in 100..104u64 {
        crash_scenario(2, 5, seed, 60_000, NetModel::REORDER);
    }
}

#[test]
fn sim_lossy_seeds() {
    for seed in 200..203u64 {
        crash_scenario(3, 8, seed, 60_000, NetModel::LOSSY);
    }
    crash_scenario(4, 16, 9, 60_000, NetModel::LOSSY);
}

/// With 0.5 % loss and 0.5 % duplication: tables only ever point at alive caches or nowhere,
/// every table change follows a router membership change (within the 5·T a router may take to
/// flush plus 1.5·T assignment wait), and once the network heals the group converges within the
/// crash bound.
#[test]
fn sim_lossy_changes_follow_membership() {
    let mut sim = Sim::new(4, 12, NetModel::LOSSY, 3);
    sim.stagger(T);
    let victim = sim.cache_nodes()[5];
    sim.run_until(20 * T);
    sim.crash(victim);
    sim.run_until(40 * T);
    let alive = sim.alive_caches();
    for (t, r, owners) in &sim.changes {
        assert!(
            sim.router_membership
                .iter()
                .any(|&m| m <= *t && *t - m <= 5 * T + 3 * T / 2),
            "router {r} table change at {t} without a recent membership change"
        );
        if *t > 20 * T + BOUND_GONE {
            assert!(
                owners.iter().flatten().all(|a| alive.contains(a)),
                "router {r} at {t} sends to a crashed cache"
            );
        }
    }
    println!(
        "4x12 lossy: {} table changes, {} router membership changes in 400 s, {} dropped",
        sim.changes.len(),
        sim.router_membership.len(),
        sim.dropped
    );
    sim.heal();
    converge(&mut sim, BOUND_CONVERGED, "4x12 lossy: after healing");
    each_bucket_one_alive_cache(&sim);
    single_designated_is_lowest(&sim);
}

/// Under 0.5 % loss/duplication nothing but real joins and crashes changes membership: a lost
/// I_SEE_YOU or a duplicated HERE_I_AM (an older Receive ID echoed) must not evict a cache.
#[test]
fn sim_lossy_no_churn() {
    let mut sim = Sim::new(4, 12, NetModel::LOSSY, 3);
    sim.stagger(T);
    converge(&mut sim, 12 * T, "4x12 lossy start");
    assert_quiet(&mut sim, 5 * 60_000, "4x12 lossy steady");
}

/// With the minimal-movement option, a crash moves only the crashed cache's buckets and a rejoin
/// moves buckets only to the rejoining cache (as long as the designated cache survives: routers do
/// not report hash assignments back, so a new designated cache starts from scratch).
#[test]
fn sim_stable_spread_moves_only_what_must_move() {
    use wccp_control::cache::{CacheService, ServiceDefinition, SpreadAlgorithm};
    let mut svc = CacheService::new(ServiceDefinition::web_cache());
    svc.spread = SpreadAlgorithm::Stable;
    let mut sim = Sim::with_service(3, 10, NetModel::REORDER, 11, svc);
    sim.stagger(T);
    converge(&mut sim, BOUND_START, "3x10 stable start");
    let before = sim.router_owners()[0].unwrap();
    let designated = sim.designated();
    let victim = sim
        .cache_nodes()
        .into_iter()
        .find(|i| !designated.contains(i))
        .unwrap();
    let gone = sim.nodes[victim].addr;
    crash_and_measure(&mut sim, victim, "3x10 stable", 0);
    let after = sim.router_owners()[0].unwrap();
    let moved: Vec<usize> = (0..256).filter(|&b| before[b] != after[b]).collect();
    assert!(!moved.is_empty());
    assert!(
        moved.iter().all(|&b| before[b] == Some(gone)),
        "only {gone}'s buckets may move"
    );
    sim.restart(victim);
    converge(&mut sim, BOUND_REJOIN, "3x10 stable rejoin");
    let back = sim.router_owners()[0].unwrap();
    let moved: Vec<usize> = (0..256).filter(|&b| after[b] != back[b]).collect();
    assert!(
        moved.iter().all(|&b| back[b] == Some(gone)),
        "buckets only move to the rejoining {gone}"
    );
    println!(
        "3x10 stable: crash moved {} buckets, rejoin moved {}",
        before.iter().filter(|o| **o == Some(gone)).count(),
        moved.len()
    );
}

/// Mask assignment end to end: caches prefer mask, routers offer it; the designated cache sends
/// one 0x1741 set (Alternate Assignment) and every router ends up with the same value owners.
#[test]
fn sim_mask_assignment() {
    use wccp_control::cache::{AssignMethod, CacheService, ServiceDefinition};
    let mut svc = CacheService::new(ServiceDefinition::web_cache());
    svc.assignment = vec![AssignMethod::Mask, AssignMethod::Hash];
    let mut sim = Sim::with_service(3, 6, NetModel::REORDER, 5, svc);
    sim.stagger(T);
    converge(&mut sim, BOUND_START, "3x6 mask start");
    each_bucket_one_alive_cache(&sim);
    assert!(sim.tables.values().all(|t| matches!(
        t.as_deref().map(|t| t.distribution()),
        Some(assign::table::Distribution::Mask(_))
    )));
    let victim = sim.cache_nodes()[4];
    crash_and_measure(&mut sim, victim, "3x6 mask", 0);
    each_bucket_one_alive_cache(&sim);
    assert_quiet(&mut sim, 60_000, "3x6 mask steady");
}

/// Slow start with minimal movement: a rejoining cache's share grows step by step (one new
/// assignment per T) to its full share, and every step moves buckets only to it.
#[test]
fn sim_slow_start_with_stable_spread() {
    use wccp_control::cache::{CacheService, ServiceDefinition, SpreadAlgorithm};
    let mut svc = CacheService::new(ServiceDefinition::web_cache());
    svc.spread = SpreadAlgorithm::Stable;
    svc.slow_start = Some(assign::spread::SlowStart::over(
        std::time::Duration::from_secs(60),
    ));
    let mut sim = Sim::with_service(2, 4, NetModel::REORDER, 13, svc);
    sim.stagger(T);
    converge(&mut sim, BOUND_START, "2x4 slow start: start");
    let designated = sim.designated();
    let victim = sim
        .cache_nodes()
        .into_iter()
        .rev()
        .find(|i| !designated.contains(i))
        .unwrap();
    let addr = sim.nodes[victim].addr;
    crash_and_measure(&mut sim, victim, "2x4 slow start", 0);
    sim.restart(victim);
    let mut prev = sim.router_owners()[0].unwrap();
    let mut shares = Vec::new();
    let end = sim.now + 12 * T;
    while sim.now < end {
        let t = sim.now + 1_000;
        sim.run_until(t);
        let now = sim.router_owners()[0].unwrap();
        if now != prev {
            let moved: Vec<usize> = (0..256).filter(|&b| now[b] != prev[b]).collect();
            assert!(
                moved.iter().all(|&b| now[b] == Some(addr)),
                "a ramp step moved buckets elsewhere than to {addr}"
            );
            shares.push(now.iter().filter(|o| **o == Some(addr)).count());
            prev = now;
        }
    }
    println!("2x4 slow start: {addr} share per step {shares:?}");
    assert!(shares.len() >= 4, "several ramp steps: {shares:?}");
    assert!(shares[0] < 32, "starts below half its share: {shares:?}");
    assert!(shares.windows(2).all(|w| w[0] < w[1]), "grows: {shares:?}");
    assert_eq!(
        *shares.last().unwrap(),
        64,
        "ends at the full quarter: {shares:?}"
    );
    assert!(sim.converged());
}

/// A router dies: the caches give up on it after 3·T and the designated cache re-assigns to the
/// remaining routers without moving any bucket; when it comes back it gets the same table.
#[test]
fn sim_router_crash_and_restart() {
    let mut sim = Sim::new(3, 6, NetModel::REORDER, 17);
    sim.stagger(T);
    converge(&mut sim, BOUND_START, "3x6 router crash: start");
    let before = sim.router_owners()[0].unwrap();
    let r = sim.router_nodes()[2];
    sim.crash(r);
    let n = sim.changes.len();
    sim.run_until(sim.now + 10 * T);
    assert!(sim.converged(), "the other routers keep a complete table");
    assert_eq!(sim.router_owners()[0].unwrap(), before);
    assert!(
        sim.changes[n..].is_empty(),
        "no bucket moves when a router leaves: {:?}",
        sim.changes[n..]
            .iter()
            .map(|c| (c.0, c.1))
            .collect::<Vec<_>>()
    );
    let st = sim.cache(sim.designated()[0]).status();
    let dead = &st.services[0].routers[2];
    assert_eq!(dead.state, wccp_control::cache::RouterLinkState::Joining);
    sim.restart_router(r);
    converge(&mut sim, BOUND_START, "3x6 router restart");
    assert_eq!(
        sim.router_owners()[2].unwrap(),
        before,
        "same table on the new router"
    );
}

/// Many seeds, two crashes each (a non-designated cache, then the designated one) at varying
/// phases, 4 routers × 8 caches with reordering: every crash converges within
/// [`BOUND_CONVERGED`]. About 25 s in a debug build for the default 200 seeds (400 crashes), so
/// it runs with every test run; `SIM_SWEEP_SEEDS=n` sweeps more, and
/// `cargo test -p wccp-control --test sim_convergence sim_crash_sweep -- --nocapture` prints the
/// distribution.
#[test]
fn sim_crash_sweep() {
    let n: u64 = std::env::var("SIM_SWEEP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut times = Vec::new();
    for seed in 1000..1000 + n {
        let mut sim = Sim::new(4, 8, NetModel::REORDER, seed);
        sim.stagger(T);
        sim.run_until_pred(BOUND_START, Sim::converged)
            .unwrap_or_else(|| panic!("sweep seed {seed}: no convergence at start"));
        // Crash at a different phase of the HERE_I_AM cycles each time.
        sim.run_until(sim.now + 7_345 + seed * 37 % T);
        for round in 0..2 {
            let d = sim.designated();
            let victim = if round == 0 {
                sim.cache_nodes()
                    .into_iter()
                    .rev()
                    .find(|i| !d.contains(i))
                    .unwrap()
            } else {
                d[0]
            };
            let t0 = sim.now;
            sim.crash(victim);
            let at = sim
                .run_until_pred(t0 + BOUND_CONVERGED, Sim::converged)
                .unwrap_or_else(|| {
                    panic!(
                        "sweep seed {seed} crash {round}: not converged: {:?}",
                        sim.events
                    )
                });
            times.push(at - t0);
            sim.run_until(sim.now + 3_000 + seed * 53 % T);
        }
    }
    times.sort_unstable();
    println!(
        "sweep: {} crashes, complete new table after min {:.3} s, median {:.3} s, max {:.3} s",
        times.len(),
        times[0] as f64 / 1000.0,
        times[times.len() / 2] as f64 / 1000.0,
        times[times.len() - 1] as f64 / 1000.0
    );
}
