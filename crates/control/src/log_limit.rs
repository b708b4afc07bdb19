//! At most one log line per source per interval (a minute by default), so that a cache with a
//! wrong password, or a flood of spoofed rejected HERE_I_AMs, cannot fill the log. Pure and
//! time-injected like the state machines: the daemon (socket transport) and the control lcore
//! (DPDK transport) ask [`LogLimiter::allow`] before logging a rejection, and count every
//! rejection whatever it answers.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::{DropReason, Event, Instant};

/// Default interval between two lines about one source.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default number of sources remembered; a newcomer beyond it is not logged until the oldest
/// ones have been quiet for an interval.
pub const DEFAULT_MAX_SOURCES: usize = 1024;

/// Whether a dropped control message is a rejection worth one line per source: an MD5 failure
/// or a cache the group refuses (group list, service definition).
pub fn is_rejection(reason: DropReason) -> bool {
    matches!(
        reason,
        DropReason::Security | DropReason::NotAllowed | DropReason::ServiceMismatch
    )
}

/// Logs one state-machine event the same way for every driver (the socket driver and the DPDK
/// control lcore): rejections at most once per source per interval (`limiter`), other drops at
/// debug level, membership changes and assignments at info level. Counting is the caller's.
pub fn log_event(limiter: &mut LogLimiter, now: Instant, e: &Event) {
    match e {
        Event::Dropped {
            peer,
            reason,
            detail,
        } => {
            if is_rejection(*reason) {
                if let Some(held) = limiter.allow(now, *peer) {
                    tracing::warn!(%peer, reason = reason.as_str(), %detail, suppressed = held, "cache rejected (at most one line per source per minute)");
                }
            } else {
                tracing::debug!(%peer, reason = reason.as_str(), %detail, "control message dropped");
            }
        }
        Event::MembershipChanged {
            service,
            change_number,
        } => {
            tracing::info!(
                service = service.id,
                dynamic = service.dynamic,
                change_number,
                "membership changed"
            );
        }
        Event::Assignment {
            service,
            key_address,
            key_change,
        } => {
            tracing::info!(service = service.id, dynamic = service.dynamic, %key_address, key_change, "assignment accepted");
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    logged: Instant,
    suppressed: u64,
}

/// Remembers when each source was last logged.
#[derive(Clone, Debug)]
pub struct LogLimiter {
    interval: Duration,
    max_sources: usize,
    sources: BTreeMap<Ipv4Addr, Entry>,
    suppressed: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new(DEFAULT_INTERVAL, DEFAULT_MAX_SOURCES)
    }
}

impl LogLimiter {
    /// At most one line per source per `interval`, remembering at most `max_sources`.
    pub fn new(interval: Duration, max_sources: usize) -> LogLimiter {
        LogLimiter {
            interval,
            max_sources: max_sources.max(1),
            sources: BTreeMap::new(),
            suppressed: 0,
        }
    }

    /// May a line about `source` be logged at `now`? `Some(n)`: yes, and `n` lines about it
    /// were held back since its previous one; `None`: not now (held back and counted).
    pub fn allow(&mut self, now: Instant, source: Ipv4Addr) -> Option<u64> {
        if let Some(e) = self.sources.get_mut(&source) {
            if now.saturating_since(e.logged) >= self.interval {
                let held = e.suppressed;
                *e = Entry {
                    logged: now,
                    suppressed: 0,
                };
                return Some(held);
            }
            e.suppressed += 1;
            self.suppressed += 1;
            return None;
        }
        if self.sources.len() >= self.max_sources {
            let interval = self.interval;
            self.sources
                .retain(|_, e| now.saturating_since(e.logged) < interval);
            if self.sources.len() >= self.max_sources {
                self.suppressed += 1;
                return None;
            }
        }
        self.sources.insert(
            source,
            Entry {
                logged: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    /// Lines held back so far, all sources together.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Sources remembered now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    #[test]
    fn one_line_per_source_per_minute() {
        let mut l = LogLimiter::default();
        assert_eq!(l.allow(Instant(0), A), Some(0));
        assert_eq!(l.allow(Instant(1000), A), None);
        assert_eq!(l.allow(Instant(59_999), A), None);
        // Another source is not held back by A.
        assert_eq!(l.allow(Instant(2000), B), Some(0));
        assert_eq!(l.allow(Instant(60_000), A), Some(2));
        assert_eq!(l.allow(Instant(60_001), A), None);
        assert_eq!(l.suppressed(), 3);
    }

    #[test]
    fn bounded_table_forgets_quiet_sources() {
        let mut l = LogLimiter::new(Duration::from_secs(60), 2);
        assert_eq!(l.allow(Instant(0), A), Some(0));
        assert_eq!(l.allow(Instant(0), B), Some(0));
        // Full of fresh sources: a newcomer waits.
        assert_eq!(l.allow(Instant(1), C), None);
        assert_eq!(l.tracked(), 2);
        // A minute later the quiet ones make room.
        assert_eq!(l.allow(Instant(60_000), C), Some(0));
        assert!(l.tracked() <= 2);
    }

    #[test]
    fn rejections_are_security_group_list_and_definition() {
        assert!(is_rejection(DropReason::Security));
        assert!(is_rejection(DropReason::NotAllowed));
        assert!(is_rejection(DropReason::ServiceMismatch));
        assert!(!is_rejection(DropReason::Malformed));
        assert!(!is_rejection(DropReason::Stale));
    }
}
