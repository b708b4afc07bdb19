//! Per-lcore counters: one declared list of verdicts and drop reasons (VPP's `error.def` idea),
//! plus per-service, per-bucket and per-cache counts.
//!
//! Each lcore owns one [`LcoreCounters`] and is the only writer; the control side and the
//! exporter read it through an `Arc` with relaxed loads. An increment is a relaxed load plus a
//! relaxed store (no read-modify-write, no lock, no shared cache line between lcores).

use std::sync::atomic::{AtomicU64, Ordering};

/// Most service groups the data plane counts separately (configured services).
pub const MAX_SERVICES: usize = 32;
/// Most targets per service (a 7-bit index, see `assign::table::MAX_TARGETS`).
pub const MAX_TARGETS: usize = assign::table::MAX_TARGETS;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident = $label:literal, $kind:ident; )*) => {
        /// Every verdict and drop reason of the pipeline, in one list. `as_str` is the stable
        /// metric label; `is_drop` says whether the packet was dropped; `is_terminal` whether
        /// it is the one final verdict of a received packet (every received packet counts
        /// exactly one terminal reason, so the terminal counters add up to `rx`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Reason {
            $( $(#[$doc])* $name, )*
        }

        impl Reason {
            /// All of them, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$name),*];

            /// The metric label value.
            pub const fn as_str(self) -> &'static str {
                match self { $(Reason::$name => $label,)* }
            }

            /// `true` for drop reasons, `false` for verdicts of delivered packets.
            pub const fn is_drop(self) -> bool {
                match self { $(Reason::$name => counters!(@drop $kind),)* }
            }

            /// `true` for the final verdict of a received packet.
            pub const fn is_terminal(self) -> bool {
                match self { $(Reason::$name => counters!(@terminal $kind),)* }
            }
        }
    };
    (@drop drop) => { true };
    (@drop pass) => { false };
    (@drop late_drop) => { true };
    (@drop info) => { false };
    (@terminal drop) => { true };
    (@terminal pass) => { true };
    (@terminal late_drop) => { false };
    (@terminal info) => { false };
}

counters! {
    /// Frames received from a port.
    Rx = "rx", info;
    /// Redirected to a cache in GRE.
    RedirectedGre = "redirected_gre", pass;
    /// Redirected to a cache by L2 rewrite.
    RedirectedL2 = "redirected_l2", pass;
    /// A cache's GRE-returned packet, decapsulated and routed.
    ReturnedGre = "returned_gre", pass;
    /// A cache's L2-returned packet (from its MAC on its port), routed.
    ReturnedL2 = "returned_l2", pass;
    /// Routed normally (no service matched, or excluded).
    Routed = "routed", pass;
    /// A service matched but its bucket had no usable cache: routed normally (open service).
    Unassigned = "unassigned", pass;
    /// The target cache's MAC (or its next hop's) is not resolved yet: treated as unassigned.
    TargetUnresolved = "target_unresolved", info;
    /// Handed to the control lcore (ARP, WCCP, to-us, unresolved next hop).
    Punted = "punted", pass;
    /// Control-lcore frames sent by this worker.
    Injected = "injected", info;
    /// ICMP echo reply sent.
    EchoReply = "icmp_echo_reply", pass;
    /// ICMP time exceeded sent.
    TimeExceededSent = "icmp_time_exceeded", pass;
    /// ICMP fragmentation needed sent.
    FragNeededSent = "icmp_frag_needed", pass;
    /// TCP MSS option lowered.
    MssClamped = "mss_clamped", info;
    /// Frame on a port the tables do not know (the worker and the tables disagree).
    UnknownPort = "unknown_port", drop;
    /// Frame shorter than an Ethernet header (or its 802.1Q tag).
    EthTruncated = "eth_truncated", drop;
    /// Frame for another station's MAC.
    NotOurMac = "not_our_mac", drop;
    /// Neither IPv4 nor ARP (IPv6, LLDP, ...).
    UnsupportedEthertype = "unsupported_ethertype", drop;
    /// IPv4 header malformed (version, IHL, lengths).
    Ipv4Malformed = "ipv4_malformed", drop;
    /// IPv4 header checksum wrong.
    Ipv4Checksum = "ipv4_bad_checksum", drop;
    /// Multicast or broadcast IPv4 destination (not routed).
    Ipv4Multicast = "ipv4_multicast", drop;
    /// TCP/UDP header truncated in a first fragment.
    L4Truncated = "l4_truncated", drop;
    /// TTL expired (an ICMP time exceeded may have been sent, rate-limited).
    TtlExpired = "ttl_expired", drop;
    /// No route to the destination.
    NoRoute = "no_route", drop;
    /// A service with no usable cache for the packet and `closed: true`.
    ClosedService = "closed_service", drop;
    /// GRE to us from a host that is not a current member cache.
    GreNotFromCache = "gre_not_from_cache", drop;
    /// GRE to us that is not WCCP GRE (flags, protocol) or has a malformed inner packet.
    GreMalformed = "gre_malformed", drop;
    /// Packet to one of our addresses that nothing handles (TCP, other ICMP, ...).
    LocalUnhandled = "local_unhandled", drop;
    /// Too big for the egress MTU with DF clear (the router does not fragment transit traffic).
    MtuExceeded = "mtu_exceeded", drop;
    /// Too big for the egress MTU with DF set (an ICMP fragmentation needed may have been sent).
    FragNeeded = "frag_needed", drop;
    /// ICMP error not sent: rate limit (the packet counts under its own drop reason).
    IcmpRateLimited = "icmp_rate_limited", info;
    /// Buffer shared, indirect or segmented: cannot be edited in place.
    NotEditable = "not_editable", drop;
    /// Not enough headroom to prepend the encapsulation.
    NoHeadroom = "no_headroom", drop;
    /// The punt ring to the control lcore was full.
    PuntRingFull = "punt_ring_full", late_drop;
    /// The TX queue did not take the packet.
    TxFull = "tx_full", late_drop;
    /// A packet punted for an unresolved next hop that could not be held (queue full, or
    /// resolution failed).
    NeighbourMiss = "neighbour_miss", late_drop;
    /// The inject ring to a worker was full: a control-lcore frame was dropped.
    InjectRingFull = "inject_ring_full", late_drop;
    /// A control-lcore frame with no usable output port.
    InjectBadPort = "inject_bad_port", late_drop;
}

/// Number of [`Reason`]s.
pub const REASONS: usize = Reason::ALL.len();

/// One counter: written by one lcore only, read by anyone.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning lcore may call this (a load and a store, not an atomic add).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of one service slot.
#[derive(Debug)]
pub struct ServiceCounters {
    /// Redirected packets.
    pub redirected: Counter,
    /// Returned packets (GRE with this service's redirect header, or L2 from its caches).
    pub returned: Counter,
    /// Matched but unassigned (routed).
    pub unassigned: Counter,
    /// Matched and dropped as a closed service.
    pub closed_drop: Counter,
    /// Denied by the redirect list (routed or checked against the next service).
    pub denied: Counter,
    /// Redirected packets per bucket that chose the target: the primary bucket, or the
    /// alternate one when its flag sent the packet there (hash); bucket 0 under mask
    /// assignment.
    pub buckets: [Counter; 256],
    /// Per target index of the current table: its packets and octets, side by side (a
    /// redirect updates both in one cache line).
    pub targets: [TargetCounters; MAX_TARGETS],
}

/// [`ServiceCounters::targets`]: one target's counters.
#[derive(Debug, Default)]
pub struct TargetCounters {
    /// Packets redirected to the target.
    pub packets: Counter,
    /// Their octets (inner IPv4 length).
    pub bytes: Counter,
}

impl Default for ServiceCounters {
    fn default() -> Self {
        ServiceCounters {
            redirected: Counter::default(),
            returned: Counter::default(),
            unassigned: Counter::default(),
            closed_drop: Counter::default(),
            denied: Counter::default(),
            buckets: std::array::from_fn(|_| Counter::default()),
            targets: std::array::from_fn(|_| TargetCounters::default()),
        }
    }
}

/// Every counter of one lcore. Aligned so that two lcores' blocks never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
pub struct LcoreCounters {
    reasons: [Counter; REASONS],
    /// Per service slot (see `Tables::services[].slot`). An array, so that a clamped slot
    /// needs no bounds check.
    pub services: Box<[ServiceCounters; MAX_SERVICES]>,
}

impl Default for LcoreCounters {
    fn default() -> Self {
        LcoreCounters {
            reasons: std::array::from_fn(|_| Counter::default()),
            // Built on the heap: 32 services of about 4 KiB each.
            services: (0..MAX_SERVICES)
                .map(|_| ServiceCounters::default())
                .collect::<Box<[ServiceCounters]>>()
                .try_into()
                .unwrap_or_else(|_| unreachable!("MAX_SERVICES counters")),
        }
    }
}

impl LcoreCounters {
    /// Counts one `r`.
    #[inline]
    pub fn count(&self, r: Reason) {
        self.reasons[r as usize].inc();
    }

    /// Adds `n` to `r`.
    #[inline]
    pub fn add(&self, r: Reason, n: u64) {
        self.reasons[r as usize].add(n);
    }

    /// The value of `r`.
    pub fn get(&self, r: Reason) -> u64 {
        self.reasons[r as usize].get()
    }

    /// The service slot's counters (slots beyond [`MAX_SERVICES`] share the last one).
    #[inline]
    pub fn service(&self, slot: usize) -> &ServiceCounters {
        &self.services[slot.min(MAX_SERVICES - 1)]
    }

    /// [`LcoreCounters::service`] for a slot already below [`MAX_SERVICES`] (the fast path's
    /// `FastService::slot`): masked instead of clamped, one instruction instead of three.
    #[inline(always)]
    pub fn service_below_max(&self, slot: u8) -> &ServiceCounters {
        const _: () = assert!(MAX_SERVICES.is_power_of_two());
        &self.services[usize::from(slot) & (MAX_SERVICES - 1)]
    }

    /// Packets dropped, all reasons together.
    pub fn dropped(&self) -> u64 {
        Reason::ALL
            .iter()
            .filter(|r| r.is_drop())
            .map(|r| self.get(*r))
            .sum()
    }

    /// A plain snapshot of the reason counters.
    pub fn snapshot(&self) -> Vec<(Reason, u64)> {
        Reason::ALL.iter().map(|r| (*r, self.get(*r))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_unique_and_drop_split() {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REASONS);
        assert!(!Reason::Rx.is_drop());
        assert!(Reason::NoRoute.is_drop());
        let c = LcoreCounters::default();
        c.count(Reason::NoRoute);
        c.add(Reason::Rx, 5);
        assert_eq!((c.get(Reason::NoRoute), c.get(Reason::Rx)), (1, 5));
        c.add(Reason::GreMalformed, 2);
        assert_eq!(c.dropped(), 3, "drop reasons only, Rx not among them");
        c.service(1000).redirected.inc();
        assert_eq!(c.service(MAX_SERVICES - 1).redirected.get(), 1);
    }
}
