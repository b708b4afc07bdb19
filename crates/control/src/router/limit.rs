//! Rate limiting of the router's answers to HERE_I_AM.
//!
//! A HERE_I_AM is small, unauthenticated unless the group has a password, and its source address
//! is whatever the sender wrote: answered one for one, a flood of one valid HERE_I_AM makes the
//! router a reflector towards the (spoofed) source. So every HERE_I_AM is still processed (the
//! Router View and timers are updated), but its answer (an I_SEE_YOU) is sent only when
//!
//! * the destination's own budget allows it: per service group and destination address, a
//!   burst of [`ReplyLimits::peer_burst`] answers, refilled at
//!   [`ReplyLimits::peer_per_transmit_t`] per TRANSMIT_T of the group. A cache needs one answer
//!   per TRANSMIT_T, two to join, three more to answer a REMOVAL_QUERY and at most six fast
//!   retries (docs/protocol.md 5.1), all well inside it; and
//! * for a destination that is not a usable cache of the group, the budget shared by all such
//!   destinations allows it too: [`ReplyLimits::global_burst`], refilled at
//!   [`ReplyLimits::global_per_sec`]. Usable caches are exempt, so a flood from many spoofed
//!   sources cannot starve the members.
//!
//! Messages the protocol requires after a change (the unsolicited I_SEE_YOU on a membership
//! change, REMOVAL_QUERY) are not answers and are never limited: they are driven by state
//! changes and timers, not by the rate of incoming datagrams.
//!
//! The per-destination table holds at most [`ReplyLimits::max_peers`] entries. A full table
//! first forgets the entries whose budget is full again (they carry no information), then the
//! half that is least in debt: a destination being flooded is the most in debt and is kept.
//!
//! Budgets are GCRA ("virtual scheduling") cells: one theoretical arrival time per entry, in
//! microseconds, no floating point.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::{Instant, ServiceKey};

/// Limits on answers to HERE_I_AM (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Answers one destination may get back to back, per service group.
    pub peer_burst: u32,
    /// Sustained answers per destination and service group, per TRANSMIT_T.
    pub peer_per_transmit_t: u32,
    /// Answers to destinations that are not usable caches, all together, back to back.
    pub global_burst: u32,
    /// Sustained answers per second to destinations that are not usable caches, all together.
    pub global_per_sec: u32,
    /// Most (service group, destination) budgets kept.
    pub max_peers: usize,
}

impl Default for ReplyLimits {
    /// 8 answers back to back and 4 per TRANSMIT_T per destination; 256 back to back and 100
    /// per second to non-members; 1024 budgets.
    fn default() -> Self {
        ReplyLimits {
            peer_burst: 8,
            peer_per_transmit_t: 4,
            global_burst: 256,
            global_per_sec: 100,
            max_peers: 1024,
        }
    }
}

/// One GCRA cell: emission interval and tolerance in µs.
#[derive(Clone, Copy, Debug)]
struct Rate {
    interval: u64,
    tolerance: u64,
}

impl Rate {
    fn new(interval_us: u64, burst: u32) -> Rate {
        let interval = interval_us.max(1);
        Rate {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1)) - 1),
        }
    }

    /// The new theoretical arrival time if a message may go at `now` (µs), else `None`.
    fn admit(self, tat: u64, now: u64) -> Option<u64> {
        let tat = tat.max(now);
        (tat - now <= self.tolerance).then(|| tat + self.interval)
    }
}

/// The router's reply limiter: per-destination budgets and the shared budget.
#[derive(Debug)]
pub(super) struct ReplyLimiter {
    limits: ReplyLimits,
    global: Rate,
    global_tat: u64,
    peers: HashMap<(ServiceKey, Ipv4Addr), u64>,
}

fn micros(t: Instant) -> u64 {
    t.as_millis().saturating_mul(1000)
}

impl ReplyLimiter {
    pub fn new(limits: ReplyLimits) -> ReplyLimiter {
        ReplyLimiter {
            limits,
            global: Rate::new(
                1_000_000 / u64::from(limits.global_per_sec.max(1)),
                limits.global_burst,
            ),
            global_tat: 0,
            peers: HashMap::new(),
        }
    }

    pub fn limits(&self) -> ReplyLimits {
        self.limits
    }

    /// Budgets currently kept.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }

    /// May the group `service` (TRANSMIT_T `transmit_t_ms`) answer `peer` at `now`? `member`:
    /// `peer` is a usable cache of the group (exempt from the shared budget). Consumes the
    /// budgets only when the answer may go.
    pub fn allow(
        &mut self,
        now: Instant,
        service: ServiceKey,
        peer: Ipv4Addr,
        transmit_t_ms: u64,
        member: bool,
    ) -> bool {
        let now = micros(now);
        let per = u64::from(self.limits.peer_per_transmit_t.max(1));
        let rate = Rate::new(
            transmit_t_ms.saturating_mul(1000) / per,
            self.limits.peer_burst,
        );
        let key = (service, peer);
        let tat = match self.peers.get(&key) {
            Some(&t) => t,
            None => {
                self.make_room(now);
                now
            }
        };
        let Some(next) = rate.admit(tat, now) else {
            return false;
        };
        if !member {
            let Some(g) = self.global.admit(self.global_tat, now) else {
                return false;
            };
            self.global_tat = g;
        }
        self.peers.insert(key, next);
        true
    }

    /// Before inserting a new budget: keep the table under `max_peers`.
    fn make_room(&mut self, now: u64) {
        let max = self.limits.max_peers.max(1);
        if self.peers.len() < max {
            return;
        }
        // A budget that is full again is the same as none.
        self.peers.retain(|_, tat| *tat > now);
        if self.peers.len() < max {
            return;
        }
        // Forget the half least in debt (smallest theoretical arrival time).
        let mut tats: Vec<u64> = self.peers.values().copied().collect();
        let mid = tats.len() / 2;
        let (_, &mut cut, _) = tats.select_nth_unstable(mid);
        self.peers.retain(|_, tat| *tat > cut);
        // Ties at the cut could leave the table full: then forget everything.
        if self.peers.len() >= max {
            self.peers.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC: ServiceKey = ServiceKey {
        dynamic: false,
        id: 0,
    };

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + n)
    }

    #[test]
    fn peer_burst_then_rate_per_transmit_t() {
        let mut l = ReplyLimiter::new(ReplyLimits::default());
        let t = 10_000;
        let ok = (0..20)
            .filter(|_| l.allow(Instant(0), SVC, ip(1), t, true))
            .count();
        assert_eq!(ok, 8, "burst");
        // 4 per T: one every 2.5 s.
        assert!(!l.allow(Instant(2_499), SVC, ip(1), t, true));
        assert!(l.allow(Instant(2_500), SVC, ip(1), t, true));
        assert!(!l.allow(Instant(2_500), SVC, ip(1), t, true));
        // Another destination, or another group, has its own budget.
        assert!(l.allow(Instant(2_500), SVC, ip(2), t, true));
        let other = ServiceKey {
            dynamic: true,
            id: 80,
        };
        assert!(l.allow(Instant(2_500), other, ip(1), t, true));
        // A cache answering every T never runs out.
        let mut l = ReplyLimiter::new(ReplyLimits::default());
        for k in 0..100 {
            assert!(l.allow(Instant(k * t), SVC, ip(1), t, true));
        }
    }

    #[test]
    fn global_budget_applies_to_non_members_only() {
        let limits = ReplyLimits {
            global_burst: 10,
            global_per_sec: 10,
            ..ReplyLimits::default()
        };
        let mut l = ReplyLimiter::new(limits);
        let ok = (0..100)
            .filter(|&n| l.allow(Instant(0), SVC, ip(n), 10_000, false))
            .count();
        assert_eq!(ok, 10);
        // Members are exempt, and a refused answer consumed nothing.
        assert!(l.allow(Instant(0), SVC, ip(500), 10_000, true));
        assert!(!l.allow(Instant(99), SVC, ip(501), 10_000, false));
        assert!(l.allow(Instant(100), SVC, ip(501), 10_000, false));
    }

    #[test]
    fn table_is_bounded_and_keeps_the_flooded_destination() {
        let limits = ReplyLimits {
            max_peers: 64,
            global_per_sec: 1_000_000,
            global_burst: 1_000_000,
            ..ReplyLimits::default()
        };
        let mut l = ReplyLimiter::new(limits);
        let victim = ip(0xff_ffff);
        let mut victim_ok = 0;
        for n in 0..100_000u32 {
            let now = Instant(u64::from(n / 100));
            l.allow(now, SVC, ip(n), 10_000, false);
            if l.allow(now, SVC, victim, 10_000, false) {
                victim_ok += 1;
            }
            assert!(l.tracked() <= 64, "{} budgets", l.tracked());
        }
        // 1000 ms of flood: the burst plus nothing more (one per 2.5 s).
        assert_eq!(victim_ok, 8);
    }
}
