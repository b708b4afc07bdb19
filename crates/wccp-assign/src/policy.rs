//! The cache's packet-return policy (`return_policy` in a cache service's configuration): which
//! redirected packets the cache hands back to the router instead of serving them. One type for
//! the configuration and the cache agent; pure, like the rest of this crate.

use core::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// When the cache refuses redirected packets (and returns them to the router).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReturnPolicy {
    /// Return packets whose (inner) source address lies in one of these prefixes, e.g. clients
    /// that need IP-based authentication at the origin (the patent's example).
    pub refuse_sources: Vec<Ipv4Net>,
    /// Return packets whose (inner) destination lies in one of these prefixes.
    pub refuse_destinations: Vec<Ipv4Net>,
    /// Return every packet while the load figure (percent) is strictly above this value
    /// (`None`: never).
    pub max_load: Option<u32>,
    /// Return packets to these destinations with the destination rewritten to the given address
    /// (the patent's claims 37-38: "a prohibited destination address may be modified").
    pub rewrite_destinations: Vec<(Ipv4Net, Ipv4Addr)>,
}

/// Why a packet is handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// Inner source address matched `refuse_sources`.
    Source,
    /// Inner destination matched `refuse_destinations`.
    Destination,
    /// Load above `max_load`.
    Overload,
    /// Inner destination matched `rewrite_destinations`: returned with a new destination.
    Rewritten,
}

impl RefuseReason {
    /// Stable label for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefuseReason::Source => "source",
            RefuseReason::Destination => "destination",
            RefuseReason::Overload => "overload",
            RefuseReason::Rewritten => "rewritten",
        }
    }
}

/// What to do with a redirected packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Serve it locally.
    Accept,
    /// Hand it back to the router.
    Refuse(RefuseReason),
}

impl ReturnPolicy {
    /// Decides whether to serve or return a packet from `src` to `dst` at the given load
    /// figure. Source prefixes are checked first, then destination prefixes, then rewrite
    /// rules, then load.
    pub fn decide_addresses(&self, src: Ipv4Addr, dst: Ipv4Addr, load: u32) -> Decision {
        if self.refuse_sources.iter().any(|p| p.contains(&src)) {
            Decision::Refuse(RefuseReason::Source)
        } else if self.refuse_destinations.iter().any(|p| p.contains(&dst)) {
            Decision::Refuse(RefuseReason::Destination)
        } else if self.rewrite_for(dst).is_some() {
            Decision::Refuse(RefuseReason::Rewritten)
        } else if self.max_load.is_some_and(|m| load > m) {
            Decision::Refuse(RefuseReason::Overload)
        } else {
            Decision::Accept
        }
    }

    /// The replacement destination for `dst`, if a rewrite rule matches (first match wins).
    pub fn rewrite_for(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.rewrite_destinations
            .iter()
            .find(|(p, _)| p.contains(&dst))
            .map(|(_, to)| *to)
    }

    /// `true` when the policy never refuses anything.
    pub fn is_empty(&self) -> bool {
        *self == ReturnPolicy::default()
    }
}
