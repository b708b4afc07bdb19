//! The redirection table: built once by the control plane from an accepted assignment, published,
//! then read by the data plane for every packet. Immutable after construction.
//!
//! ```text
//!   RedirectTable
//!   ├── service: ServiceDef            which packets belong to the group (ServiceDef::matches)
//!   ├── targets: [Target]              cache address, forwarding method, encap data, drained flag
//!   ├── members: [u32]                 every usable cache (packets FROM them are never redirected)
//!   ├── closed: bool                   unassigned traffic is dropped instead of forwarded
//!   └── distribution
//!       ├── Hash { buckets: [Bucket; 256] }   docs/protocol.md 3.2
//!       ├── Mask(MaskMatcher)                 docs/protocol.md 3.3 / 3.4
//!       └── Empty                             nothing assigned
//! ```
//!
//! [`RedirectTable::lookup`] never allocates: the hash path is two array reads, the mask path a
//! few octet-table reads per set.

use core::fmt;
use std::net::Ipv4Addr;

use crate::hash::{alternate_bucket, primary_bucket, FlowKey};
use crate::mask::{expand_alternate, AltMaskSet, MaskError, MaskMatcher, MaskSet, MaskTuple};
use crate::service::ServiceDef;

/// Most targets a table can name: bucket octets carry a 7-bit cache index (2.8).
pub const MAX_TARGETS: usize = 128;

/// How packets reach a target: the negotiated Forwarding Method (capability, 2.10), the one
/// [`Method`](crate::method::Method) of the configuration and the state machines.
pub use crate::method::Method as ForwardingMethod;

/// One cache traffic can be sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The cache's address (GRE destination / next hop for L2).
    pub addr: Ipv4Addr,
    /// Forwarding method negotiated with this cache.
    pub method: ForwardingMethod,
    /// Precomputed encapsulation data (outer IPv4 + GRE + redirect header template, or MAC
    /// rewrite). Empty when the builder of the table does not provide it; the data plane then
    /// builds the headers itself.
    pub encap: Vec<u8>,
    /// `true` when the cache was removed or drained after this assignment was accepted: its
    /// buckets behave as unassigned.
    pub drained: bool,
}

impl Target {
    /// An active target without precomputed encapsulation data.
    pub fn new(addr: Ipv4Addr, method: ForwardingMethod) -> Self {
        Target {
            addr,
            method,
            encap: Vec::new(),
            drained: false,
        }
    }
}

/// One octet of the hash bucket table, as in Assignment Info (2.8): low 7 bits = target index,
/// `0x80` = use the alternate hash, `0xFF` = unassigned.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bucket(pub u8);

impl Bucket {
    /// The unassigned bucket (`0xFF`).
    pub const UNASSIGNED: Bucket = Bucket(0xFF);
    /// The alternate-hash flag.
    pub const ALT: u8 = 0x80;

    /// Bucket pointing at target `index` (< 128), optionally with the alternate flag.
    pub const fn to(index: u8, alt: bool) -> Bucket {
        Bucket((index & 0x7F) | if alt { Self::ALT } else { 0 })
    }

    /// `true` for `0xFF`.
    pub const fn is_unassigned(self) -> bool {
        self.0 == 0xFF
    }

    /// `true` when the alternate flag is set (and the bucket is assigned).
    pub const fn alt(self) -> bool {
        !self.is_unassigned() && self.0 & Self::ALT != 0
    }

    /// The target index, `None` when unassigned.
    pub const fn target(self) -> Option<u8> {
        if self.is_unassigned() {
            None
        } else {
            Some(self.0 & 0x7F)
        }
    }
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.target() {
            None => f.write_str("unassigned"),
            Some(t) if self.alt() => write!(f, "t{t}+alt"),
            Some(t) => write!(f, "t{t}"),
        }
    }
}

/// How a service's traffic is spread over its targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Hash assignment: 256 buckets (3.2).
    Hash {
        /// Bucket `b` = table entry for primary/alternate bucket number `b`.
        buckets: Box<[Bucket; 256]>,
    },
    /// Mask assignment: compiled mask/value sets (3.3).
    Mask(MaskMatcher),
    /// Nothing assigned: every packet is unassigned.
    Empty,
}

/// The decision for one packet of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Send to `target` (index into [`RedirectTable::targets`]).
    Redirect {
        /// Target index.
        target: u8,
        /// Primary bucket (hash; 0 under mask assignment), for the redirect header.
        primary: u8,
        /// Alternate bucket (hash; 0 under mask assignment).
        alt: u8,
        /// `true` when the alternate bucket chose the target (redirect header A flag).
        used_alt: bool,
    },
    /// Not assigned: forward normally, or drop when [`RedirectTable::closed`].
    Forward,
}

/// Why a table cannot be built from an assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableError {
    /// A bucket names a cache index beyond the cache list.
    BucketOutOfRange {
        /// The bucket number.
        bucket: u8,
        /// The octet found there.
        value: u8,
        /// Number of caches in the assignment.
        caches: usize,
    },
    /// More targets than a 7-bit index can name.
    TooManyTargets {
        /// How many were given.
        count: usize,
    },
    /// Invalid mask data.
    Mask(MaskError),
    /// An Alternate Assignment type other than 0 (hash), 1 (mask), 2 (alternate mask).
    UnknownAssignmentType {
        /// The assignment type field.
        kind: u16,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TableError::BucketOutOfRange {
                bucket,
                value,
                caches,
            } => write!(
                f,
                "bucket {bucket}: octet {value:#04x} names cache index {} but the assignment lists {caches} caches",
                value & 0x7F
            ),
            TableError::TooManyTargets { count } => {
                write!(f, "{count} caches in one assignment (at most {MAX_TARGETS})")
            }
            TableError::Mask(e) => e.fmt(f),
            TableError::UnknownAssignmentType { kind } => {
                write!(f, "Alternate Assignment: unknown assignment type {kind}")
            }
        }
    }
}

impl std::error::Error for TableError {}

impl From<MaskError> for TableError {
    fn from(e: MaskError) -> Self {
        TableError::Mask(e)
    }
}

/// The immutable redirection table of one service group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectTable {
    service: ServiceDef,
    targets: Vec<Target>,
    members: Vec<u32>,
    closed: bool,
    distribution: Distribution,
}

impl RedirectTable {
    /// A hash table: `caches` in assignment order (list position = index), `buckets` the 256
    /// bucket octets of Assignment Info (2.8).
    ///
    /// # Errors
    /// [`TableError::BucketOutOfRange`] naming the first bucket whose index is not below the
    /// number of caches; [`TableError::TooManyTargets`].
    pub fn hash(
        service: ServiceDef,
        targets: Vec<Target>,
        buckets: &[u8; 256],
    ) -> Result<RedirectTable, TableError> {
        if targets.len() > MAX_TARGETS {
            return Err(TableError::TooManyTargets {
                count: targets.len(),
            });
        }
        let mut out = Box::new([Bucket::UNASSIGNED; 256]);
        for (b, (&v, slot)) in buckets.iter().zip(out.iter_mut()).enumerate() {
            let bucket = Bucket(v);
            if let Some(t) = bucket.target() {
                if usize::from(t) >= targets.len() {
                    return Err(TableError::BucketOutOfRange {
                        bucket: b as u8,
                        value: v,
                        caches: targets.len(),
                    });
                }
            }
            *slot = bucket;
        }
        let members = sorted_members(&targets);
        Ok(RedirectTable {
            service,
            targets,
            members,
            closed: false,
            distribution: Distribution::Hash { buckets: out },
        })
    }

    /// A hash table from Assignment Info data: cache addresses in list order, each forwarded
    /// with `method`.
    ///
    /// # Errors
    /// As [`RedirectTable::hash`].
    pub fn from_hash_assignment(
        service: ServiceDef,
        caches: &[Ipv4Addr],
        buckets: &[u8; 256],
        method: ForwardingMethod,
    ) -> Result<RedirectTable, TableError> {
        let targets = caches.iter().map(|&a| Target::new(a, method)).collect();
        RedirectTable::hash(service, targets, buckets)
    }

    /// A hash table from the wire cache list + bucket octets (Assignment Info, Alternate
    /// Assignment type 0). Address elements are taken as IPv4 addresses.
    ///
    /// # Errors
    /// As [`RedirectTable::hash`].
    pub fn from_wire_hash(
        service: ServiceDef,
        hash: &wire::HashBuckets,
        method: ForwardingMethod,
    ) -> Result<RedirectTable, TableError> {
        let caches: Vec<Ipv4Addr> = hash.caches.iter().map(|a| a.to_ipv4()).collect();
        RedirectTable::from_hash_assignment(service, &caches, &hash.buckets, method)
    }

    /// A table from the body of an Alternate Assignment (type 13) or Alternate Assignment Map
    /// (type 16): hash buckets, mask sets, or 2.01 alternate mask sets (expanded with
    /// [`crate::mask::expand_alternate`]).
    ///
    /// # Errors
    /// [`TableError::BucketOutOfRange`], [`TableError::Mask`], [`TableError::TooManyTargets`],
    /// or [`TableError::UnknownAssignmentType`].
    pub fn from_wire_alt_body(
        service: ServiceDef,
        body: &wire::AltAssignmentBody,
        method: ForwardingMethod,
    ) -> Result<RedirectTable, TableError> {
        match body {
            wire::AltAssignmentBody::Hash(h) => RedirectTable::from_wire_hash(service, h, method),
            wire::AltAssignmentBody::Mask(sets) => {
                let plain: Vec<MaskSet> = sets.iter().map(MaskSet::from).collect();
                RedirectTable::from_mask_sets(service, &plain, method)
            }
            wire::AltAssignmentBody::AltMask(sets) => {
                let alt: Vec<AltMaskSet> = sets.iter().map(AltMaskSet::from).collect();
                let plain = expand_alternate(&alt)?;
                RedirectTable::from_mask_sets(service, &plain, method)
            }
            wire::AltAssignmentBody::Unknown { kind, .. } => {
                Err(TableError::UnknownAssignmentType { kind: *kind })
            }
        }
    }

    /// A table from the assignment of a REDIRECT_ASSIGN (Assignment Info or Alternate
    /// Assignment), every target forwarded with `method`.
    ///
    /// # Errors
    /// As [`RedirectTable::from_wire_alt_body`].
    pub fn from_wire_assignment(
        service: ServiceDef,
        assignment: &wire::Assignment,
        method: ForwardingMethod,
    ) -> Result<RedirectTable, TableError> {
        match assignment {
            wire::Assignment::Hash(a) => RedirectTable::from_wire_hash(service, &a.hash, method),
            wire::Assignment::Alternate(a) => {
                RedirectTable::from_wire_alt_body(service, &a.body, method)
            }
        }
    }

    /// A mask table from Mask/Value Sets naming caches by address (2.17; for 2.01 alternate
    /// sets expand them first with [`crate::mask::expand_alternate`]). The targets are the
    /// distinct cache addresses in order of first appearance, each forwarded with `method`.
    ///
    /// # Errors
    /// [`TableError::Mask`] naming the set; [`TableError::TooManyTargets`].
    pub fn from_mask_sets(
        service: ServiceDef,
        sets: &[MaskSet],
        method: ForwardingMethod,
    ) -> Result<RedirectTable, TableError> {
        let mut targets: Vec<Target> = Vec::new();
        let mut compiled: Vec<(MaskTuple, Vec<(MaskTuple, u8)>)> = Vec::with_capacity(sets.len());
        for s in sets {
            let mut values = Vec::with_capacity(s.values.len());
            for v in &s.values {
                let addr = Ipv4Addr::from(v.cache);
                let idx = match targets.iter().position(|t| t.addr == addr) {
                    Some(i) => i,
                    None => {
                        if targets.len() >= MAX_TARGETS {
                            return Err(TableError::TooManyTargets {
                                count: targets.len() + 1,
                            });
                        }
                        targets.push(Target::new(addr, method));
                        targets.len() - 1
                    }
                };
                values.push((v.value, idx as u8));
            }
            compiled.push((s.mask, values));
        }
        RedirectTable::mask(service, targets, &compiled)
    }

    /// A mask table from compiled sets whose values name target indexes.
    ///
    /// # Errors
    /// [`TableError::Mask`]; [`TableError::TooManyTargets`].
    pub fn mask(
        service: ServiceDef,
        targets: Vec<Target>,
        sets: &[(MaskTuple, Vec<(MaskTuple, u8)>)],
    ) -> Result<RedirectTable, TableError> {
        if targets.len() > MAX_TARGETS {
            return Err(TableError::TooManyTargets {
                count: targets.len(),
            });
        }
        let matcher = MaskMatcher::new(sets, targets.len())?;
        let members = sorted_members(&targets);
        Ok(RedirectTable {
            service,
            targets,
            members,
            closed: false,
            distribution: Distribution::Mask(matcher),
        })
    }

    /// A table with nothing assigned (every packet of the service unassigned): with `closed`
    /// this makes the data plane drop the service's traffic.
    pub fn empty(service: ServiceDef) -> RedirectTable {
        RedirectTable {
            service,
            targets: Vec::new(),
            members: Vec::new(),
            closed: false,
            distribution: Distribution::Empty,
        }
    }

    /// The same table with the closed flag set or cleared.
    #[must_use]
    pub fn with_closed(mut self, closed: bool) -> RedirectTable {
        self.closed = closed;
        self
    }

    /// The same table with every target whose address is not accepted by `keep` drained
    /// (its buckets / values behave as unassigned).
    #[must_use]
    pub fn with_drained(mut self, mut keep: impl FnMut(Ipv4Addr) -> bool) -> RedirectTable {
        for t in &mut self.targets {
            if !keep(t.addr) {
                t.drained = true;
            }
        }
        self
    }

    /// The same table with each target's forwarding method set to `f(address)` (per-cache
    /// negotiated methods).
    #[must_use]
    pub fn with_methods(
        mut self,
        mut f: impl FnMut(Ipv4Addr) -> ForwardingMethod,
    ) -> RedirectTable {
        for t in &mut self.targets {
            t.method = f(t.addr);
        }
        self
    }

    /// The same table with the cache-source exclusion list replaced by `members` (every cache of
    /// the group, assigned or not; packets from them are never redirected, 3.1).
    #[must_use]
    pub fn with_members(mut self, members: impl IntoIterator<Item = Ipv4Addr>) -> RedirectTable {
        let mut m: Vec<u32> = members.into_iter().map(u32::from).collect();
        m.sort_unstable();
        m.dedup();
        self.members = m;
        self
    }

    /// The same table with per-target encapsulation data filled in by `f(index, target)`.
    #[must_use]
    pub fn with_encap(mut self, mut f: impl FnMut(usize, &Target) -> Vec<u8>) -> RedirectTable {
        for i in 0..self.targets.len() {
            let e = f(i, &self.targets[i]);
            self.targets[i].encap = e;
        }
        self
    }

    /// The service definition (use [`ServiceDef::matches`] before [`RedirectTable::lookup`]).
    pub fn service(&self) -> &ServiceDef {
        &self.service
    }

    /// The targets; [`Lookup::Redirect::target`] indexes this.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// `true`: unassigned packets of the service must be dropped instead of forwarded.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// The distribution.
    pub fn distribution(&self) -> &Distribution {
        &self.distribution
    }

    /// The group's caches (host order, sorted): what [`RedirectTable::is_member`] searches.
    pub fn members(&self) -> &[u32] {
        &self.members
    }

    /// Is `src` one of the group's caches? Packets from caches are never redirected (3.1).
    #[inline]
    pub fn is_member(&self, src: u32) -> bool {
        self.members.binary_search(&src).is_ok()
    }

    /// The decision for a packet already known to match the service (3.2 / 3.3). Never
    /// allocates.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Lookup {
        match &self.distribution {
            Distribution::Hash { buckets } => {
                let flags = self.service.flags;
                let primary = primary_bucket(flags, key);
                let alt = alternate_bucket(flags, key);
                let e = buckets[usize::from(primary)];
                let (entry, used_alt) = if e.alt() {
                    // The alternate entry's own alt flag is ignored ([R1] 3.11.1).
                    (buckets[usize::from(alt)], true)
                } else {
                    (e, false)
                };
                match entry.target() {
                    Some(t) if self.active(t) => Lookup::Redirect {
                        target: t,
                        primary,
                        alt,
                        used_alt,
                    },
                    _ => Lookup::Forward,
                }
            }
            Distribution::Mask(m) => match m.lookup(key) {
                Some(t) if self.active(t) => Lookup::Redirect {
                    target: t,
                    primary: 0,
                    alt: 0,
                    used_alt: false,
                },
                _ => Lookup::Forward,
            },
            Distribution::Empty => Lookup::Forward,
        }
    }

    #[inline]
    fn active(&self, t: u8) -> bool {
        self.targets.get(usize::from(t)).is_some_and(|t| !t.drained)
    }

    /// Per target, how many buckets (hash: primary buckets without the alternate flag) or value
    /// slots (mask) point at it; drained targets count 0.
    pub fn share_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.targets.len()];
        let mut add = |t: u8| {
            if self.active(t) {
                if let Some(c) = counts.get_mut(usize::from(t)) {
                    *c += 1;
                }
            }
        };
        match &self.distribution {
            Distribution::Hash { buckets } => buckets
                .iter()
                .filter(|b| !b.alt())
                .filter_map(|b| b.target())
                .for_each(&mut add),
            Distribution::Mask(m) => m.for_each_target(&mut add),
            Distribution::Empty => {}
        }
        counts
    }
}

/// Target addresses, sorted and deduplicated, for [`RedirectTable::is_member`].
fn sorted_members(targets: &[Target]) -> Vec<u32> {
    let mut m: Vec<u32> = targets.iter().map(|t| u32::from(t.addr)).collect();
    m.sort_unstable();
    m.dedup();
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::ValueElement;
    use crate::service::flags::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn svc(flags: u32) -> ServiceDef {
        ServiceDef::dynamic(90, 100, 6, flags, [0; 8]).unwrap()
    }

    fn two() -> Vec<Ipv4Addr> {
        vec![a("10.0.0.2"), a("10.0.0.3")]
    }

    /// Source address whose src-IP hash is `b` (first octet = b, the rest 0).
    fn src_for(b: u8) -> u32 {
        u32::from(b) << 24
    }

    #[test]
    fn hash_primary_paths() {
        let mut buckets = [0u8; 256];
        buckets[1] = 1;
        buckets[2] = 0xFF;
        let t = RedirectTable::from_hash_assignment(
            svc(SRC_IP_HASH),
            &two(),
            &buckets,
            ForwardingMethod::Gre,
        )
        .unwrap();
        let k = |b| FlowKey::new(src_for(b), 0, 0, 0);
        assert_eq!(
            t.lookup(&k(0)),
            Lookup::Redirect {
                target: 0,
                primary: 0,
                alt: 0,
                used_alt: false
            }
        );
        assert_eq!(
            t.lookup(&k(1)),
            Lookup::Redirect {
                target: 1,
                primary: 1,
                alt: 0,
                used_alt: false
            }
        );
        assert_eq!(t.lookup(&k(2)), Lookup::Forward);
        assert!(!t.closed());
        assert_eq!(t.share_counts(), vec![254, 1]);
    }

    #[test]
    fn hash_alternate_paths() {
        // Primary on src IP, alternate on dst IP.
        let f = SRC_IP_HASH | DST_IP_ALT_HASH;
        let mut buckets = [0u8; 256];
        buckets[10] = Bucket::to(0, true).0; // defer to the alternate bucket
        buckets[20] = 1;
        buckets[21] = Bucket::to(1, true).0; // alt flag on the alternate entry: ignored
        buckets[22] = 0xFF;
        let t = RedirectTable::from_hash_assignment(svc(f), &two(), &buckets, ForwardingMethod::L2)
            .unwrap();
        let k = |p: u8, al: u8| FlowKey::new(src_for(p), u32::from(al), 0, 0);
        assert_eq!(
            t.lookup(&k(10, 20)),
            Lookup::Redirect {
                target: 1,
                primary: 10,
                alt: 20,
                used_alt: true
            }
        );
        assert_eq!(
            t.lookup(&k(10, 21)),
            Lookup::Redirect {
                target: 1,
                primary: 10,
                alt: 21,
                used_alt: true
            }
        );
        assert_eq!(t.lookup(&k(10, 22)), Lookup::Forward);
        // Alternate bucket computed and reported even when not used.
        assert_eq!(
            t.lookup(&k(20, 22)),
            Lookup::Redirect {
                target: 1,
                primary: 20,
                alt: 22,
                used_alt: false
            }
        );
        // Alt entry pointing at itself (primary == alt): no loop, its index is used.
        assert_eq!(
            t.lookup(&k(21, 21)),
            Lookup::Redirect {
                target: 1,
                primary: 21,
                alt: 21,
                used_alt: true
            }
        );
        assert_eq!(t.targets()[1].method, ForwardingMethod::L2);
    }

    #[test]
    fn hash_validation_names_bucket() {
        let mut buckets = [0u8; 256];
        buckets[77] = 2;
        assert_eq!(
            RedirectTable::from_hash_assignment(
                svc(SRC_IP_HASH),
                &two(),
                &buckets,
                ForwardingMethod::Gre
            ),
            Err(TableError::BucketOutOfRange {
                bucket: 77,
                value: 2,
                caches: 2
            })
        );
        buckets[77] = 0x82;
        let e = RedirectTable::from_hash_assignment(
            svc(SRC_IP_HASH),
            &two(),
            &buckets,
            ForwardingMethod::Gre,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bucket 77"), "{e}");
        // No caches: every bucket must be unassigned.
        let t = RedirectTable::from_hash_assignment(
            svc(SRC_IP_HASH),
            &[],
            &[0xFF; 256],
            ForwardingMethod::Gre,
        )
        .unwrap();
        assert_eq!(t.lookup(&FlowKey::default()), Lookup::Forward);
        let many: Vec<Ipv4Addr> = (0..129u32).map(Ipv4Addr::from).collect();
        assert_eq!(
            RedirectTable::from_hash_assignment(svc(0), &many, &[0xFF; 256], ForwardingMethod::Gre),
            Err(TableError::TooManyTargets { count: 129 })
        );
    }

    #[test]
    fn from_wire_hash_buckets() {
        let mut hb = wire::HashBuckets {
            caches: vec![wire::Addr::from_ipv4(a("10.200.0.2"))],
            ..Default::default()
        };
        assert!(matches!(
            RedirectTable::from_wire_hash(svc(SRC_IP_HASH), &hb, ForwardingMethod::Gre)
                .unwrap()
                .lookup(&FlowKey::default()),
            Lookup::Forward
        ));
        hb.buckets = [0; 256];
        let t =
            RedirectTable::from_wire_hash(svc(SRC_IP_HASH), &hb, ForwardingMethod::Gre).unwrap();
        assert_eq!(t.targets()[0].addr, a("10.200.0.2"));
        assert_eq!(t.share_counts(), vec![256]);
        hb.buckets[255] = 1;
        assert_eq!(
            RedirectTable::from_wire_hash(svc(SRC_IP_HASH), &hb, ForwardingMethod::Gre),
            Err(TableError::BucketOutOfRange {
                bucket: 255,
                value: 1,
                caches: 1
            })
        );
    }

    #[test]
    fn from_wire_assignments() {
        let cache = wire::Addr::from_ipv4(a("10.0.0.2"));
        let hash = wire::Assignment::Hash(wire::AssignmentInfo {
            hash: wire::HashBuckets {
                caches: vec![cache],
                buckets: [0; 256],
            },
            ..Default::default()
        });
        let t = RedirectTable::from_wire_assignment(svc(SRC_IP_HASH), &hash, ForwardingMethod::Gre)
            .unwrap();
        assert_eq!(t.share_counts(), vec![256]);
        let alt = |body| {
            wire::Assignment::Alternate(wire::AlternateAssignment {
                key: wire::AssignmentKey::default(),
                routers: vec![],
                body,
            })
        };
        let mask = wire::MaskElement {
            src_addr: wire::Addr(0),
            dst_addr: wire::Addr(1),
            src_port: 0,
            dst_port: 0,
        };
        let m = alt(wire::AltAssignmentBody::Mask(vec![wire::MaskValueSet {
            mask,
            values: vec![wire::ValueElement {
                src_addr: wire::Addr(0),
                dst_addr: wire::Addr(1),
                src_port: 0,
                dst_port: 0,
                cache,
            }],
        }]));
        let t = RedirectTable::from_wire_assignment(svc(0), &m, ForwardingMethod::Gre).unwrap();
        assert!(matches!(
            t.lookup(&FlowKey::new(0, 1, 0, 0)),
            Lookup::Redirect { target: 0, .. }
        ));
        assert_eq!(t.lookup(&FlowKey::new(0, 2, 0, 0)), Lookup::Forward);
        let am = alt(wire::AltAssignmentBody::AltMask(vec![
            wire::AltMaskValueSet {
                mask,
                caches: vec![wire::CacheValueElement {
                    cache,
                    vsns: vec![0],
                }],
            },
        ]));
        let t = RedirectTable::from_wire_assignment(svc(0), &am, ForwardingMethod::Gre).unwrap();
        assert!(matches!(
            t.lookup(&FlowKey::new(0, 2, 0, 0)),
            Lookup::Redirect { target: 0, .. }
        ));
        assert_eq!(t.lookup(&FlowKey::new(0, 1, 0, 0)), Lookup::Forward);
        let bad_vsn = alt(wire::AltAssignmentBody::AltMask(vec![
            wire::AltMaskValueSet {
                mask,
                caches: vec![wire::CacheValueElement {
                    cache,
                    vsns: vec![2],
                }],
            },
        ]));
        assert!(matches!(
            RedirectTable::from_wire_assignment(svc(0), &bad_vsn, ForwardingMethod::Gre),
            Err(TableError::Mask(MaskError::VsnOutOfRange { vsn: 2, .. }))
        ));
        let unknown = alt(wire::AltAssignmentBody::Unknown {
            kind: 9,
            data: vec![],
        });
        assert_eq!(
            RedirectTable::from_wire_assignment(svc(0), &unknown, ForwardingMethod::Gre),
            Err(TableError::UnknownAssignmentType { kind: 9 })
        );
    }

    #[test]
    fn drained_target_forwards_and_closed_flag() {
        let mut buckets = [0u8; 256];
        for (i, b) in buckets.iter_mut().enumerate() {
            *b = (i % 2) as u8;
        }
        let t = RedirectTable::from_hash_assignment(
            svc(SRC_IP_HASH),
            &two(),
            &buckets,
            ForwardingMethod::Gre,
        )
        .unwrap()
        .with_drained(|addr| addr != a("10.0.0.3"))
        .with_closed(true);
        assert!(t.closed());
        assert!(matches!(
            t.lookup(&FlowKey::new(src_for(0), 0, 0, 0)),
            Lookup::Redirect { target: 0, .. }
        ));
        assert_eq!(
            t.lookup(&FlowKey::new(src_for(1), 0, 0, 0)),
            Lookup::Forward
        );
        assert_eq!(t.share_counts(), vec![128, 0]);
    }

    #[test]
    fn mask_lookup_and_targets() {
        let sets = vec![MaskSet {
            mask: MaskTuple::new(0, 0x1, 0, 0),
            values: vec![
                ValueElement {
                    value: MaskTuple::new(0, 0, 0, 0),
                    cache: u32::from(a("10.0.0.3")),
                },
                ValueElement {
                    value: MaskTuple::new(0, 1, 0, 0),
                    cache: u32::from(a("10.0.0.2")),
                },
            ],
        }];
        let t =
            RedirectTable::from_mask_sets(svc(DST_IP_HASH), &sets, ForwardingMethod::Gre).unwrap();
        assert_eq!(t.targets()[0].addr, a("10.0.0.3"));
        assert_eq!(
            t.lookup(&FlowKey::new(0, 4, 1, 1)),
            Lookup::Redirect {
                target: 0,
                primary: 0,
                alt: 0,
                used_alt: false
            }
        );
        assert_eq!(
            t.lookup(&FlowKey::new(0, 5, 1, 1)),
            Lookup::Redirect {
                target: 1,
                primary: 0,
                alt: 0,
                used_alt: false
            }
        );
        assert_eq!(t.share_counts(), vec![1, 1]);
        let t = t.with_drained(|x| x == a("10.0.0.3"));
        assert_eq!(t.lookup(&FlowKey::new(0, 5, 1, 1)), Lookup::Forward);
        // Unmatched traffic forwards.
        let partial = vec![MaskSet {
            mask: MaskTuple::new(0, 0x3, 0, 0),
            values: vec![ValueElement {
                value: MaskTuple::new(0, 1, 0, 0),
                cache: 7,
            }],
        }];
        let t = RedirectTable::from_mask_sets(svc(0), &partial, ForwardingMethod::Gre).unwrap();
        assert_eq!(t.lookup(&FlowKey::new(0, 2, 0, 0)), Lookup::Forward);
        assert!(matches!(
            t.lookup(&FlowKey::new(0, 5, 0, 0)),
            Lookup::Redirect { target: 0, .. }
        ));
    }

    #[test]
    fn empty_and_members() {
        let t = RedirectTable::empty(ServiceDef::WEB_CACHE).with_closed(true);
        assert_eq!(t.lookup(&FlowKey::new(1, 2, 3, 80)), Lookup::Forward);
        assert!(t.closed());
        assert!(t.targets().is_empty());
        let t = t.with_members([a("10.0.0.9"), a("10.0.0.1")]);
        assert!(t.is_member(u32::from(a("10.0.0.1"))));
        assert!(!t.is_member(u32::from(a("10.0.0.2"))));
        let h = RedirectTable::from_hash_assignment(
            svc(0),
            &[a("10.0.0.9"), a("10.0.0.1")],
            &[0; 256],
            ForwardingMethod::Gre,
        )
        .unwrap();
        assert!(h.is_member(u32::from(a("10.0.0.1"))) && h.is_member(u32::from(a("10.0.0.9"))));
        assert!(!h.is_member(u32::from(a("10.0.0.5"))));
    }

    #[test]
    fn encap_field() {
        let t =
            RedirectTable::from_hash_assignment(svc(0), &two(), &[1; 256], ForwardingMethod::Gre)
                .unwrap()
                .with_encap(|i, tg| vec![i as u8, tg.addr.octets()[3]]);
        assert_eq!(t.targets()[1].encap, vec![1, 3]);
        let t = t.with_methods(|a| {
            if a.octets()[3] == 3 {
                ForwardingMethod::L2
            } else {
                ForwardingMethod::Gre
            }
        });
        assert_eq!(t.targets()[0].method, ForwardingMethod::Gre);
        assert_eq!(t.targets()[1].method, ForwardingMethod::L2);
        // No hash flags: every packet in bucket 0.
        assert!(matches!(
            t.lookup(&FlowKey::new(9, 9, 9, 9)),
            Lookup::Redirect {
                target: 1,
                primary: 0,
                ..
            }
        ));
    }

    #[test]
    fn lookup_does_not_allocate_sized() {
        // Lookup is Copy and small: the data plane keeps it in registers.
        assert!(core::mem::size_of::<Lookup>() <= 8);
    }
}
