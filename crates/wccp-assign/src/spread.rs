//! The designated cache's assignment algorithms (docs/protocol.md §3.5): how buckets (hash assignment)
//! or mask values (mask assignment) are spread over the usable caches.
//!
//! Nothing here is part of the protocol: routers accept whatever the designated cache sends. The
//! default algorithms reproduce Squid's output exactly (TV-10), so a group led by this
//! implementation behaves like one led by Squid:
//!
//! * [`squid_hash`] — Squid's weighted round-robin walk over the 256 buckets;
//! * [`squid_mask`] — one Mask/Value Set, mask `0x1741` on one field, 64 values handed out in
//!   ascending order;
//! * [`stable_hash`] — an optional "minimal movement" variant: when the cache set changes, only the
//!   buckets that must move to respect the new per-cache quotas move (Squid's walk reshuffles
//!   almost every bucket on any change);
//! * [`SlowStart`] — an optional ramp of a newly joined cache's effective weight.
//!
//! # Conventions
//! Every function takes the caches in *list order*: the index of a cache in the slice is the cache
//! index that ends up in the Assignment Info bucket octets. Callers sort caches by
//! [`cache_order`] (numerically ascending address, docs/protocol.md A6) before calling. Every function
//! is deterministic and never panics.

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::method::Named;
use crate::service::HashField;

/// Number of hash buckets (docs/protocol.md §2.8).
pub const BUCKETS: usize = 256;

/// Bucket octet meaning "no cache: forward normally" (docs/protocol.md §2.8).
pub const UNASSIGNED: u8 = 0xFF;

/// Most caches a hash assignment can address (7-bit index, docs/protocol.md §2.8; Cisco limit 32).
pub const MAX_CACHES: usize = 32;

/// The mask Squid applies to one field under mask assignment: 6 bits, 64 values (docs/protocol.md §3.3).
pub const SQUID_MASK: u32 = 0x1741;

/// Sort key for the cache list: numerically ascending IPv4 address (big-endian `u32`,
/// docs/protocol.md A6). Use as `caches.sort_by_key(|c| cache_order(c.addr))`.
pub const fn cache_order(addr: Ipv4Addr) -> u32 {
    addr.to_bits()
}

/// Squid's weighted bucket spreading over `weights.len()` caches (docs/protocol.md §3.5, TV-10).
///
/// Returns one cache index per bucket. With no caches every bucket is [`UNASSIGNED`]; if every
/// weight is 0, bucket `b` goes to cache `b mod N`; otherwise a rotating cursor walks the caches,
/// skipping weight-0 ones, and gives each bucket to the next cache whose accumulated share does not
/// exceed the work done so far. Equal weights give plain round-robin (`0,1,2,0,1,2…`).
///
/// Caches beyond [`MAX_CACHES`] are ignored (they get no bucket).
pub fn squid_hash(weights: &[u16]) -> [u8; BUCKETS] {
    let mut out = [UNASSIGNED; BUCKETS];
    for (slot, cache) in squid_walk(weights, BUCKETS).into_iter().enumerate() {
        out[slot] = cache;
    }
    out
}

/// Squid's walk over `slots` slots (256 buckets for hash, 64 values for mask). The arithmetic is
/// Squid's, on 64-bit unsigned integers: weights scaled by 4096, `per_bucket = Σw / slots`,
/// `step_i = per_bucket · Σw / w_i`.
fn squid_walk(weights: &[u16], slots: usize) -> Vec<u8> {
    let weights = &weights[..weights.len().min(MAX_CACHES)];
    let n = weights.len();
    if n == 0 || slots == 0 {
        return vec![UNASSIGNED; slots];
    }
    let scaled: Vec<u64> = weights.iter().map(|&w| u64::from(w) << 12).collect();
    let total: u64 = scaled.iter().sum();
    if total == 0 {
        // `n <= MAX_CACHES`, so every index fits a bucket octet.
        return (0..slots).map(|s| (s % n) as u8).collect();
    }
    let per_bucket = total / slots as u64;
    let mut assigned = vec![0u64; n];
    let mut done = 0u64;
    // Squid starts its cursor at -1 so the first probe is cache 0.
    let mut cursor = n - 1;
    let mut out = Vec::with_capacity(slots);
    for _ in 0..slots {
        // Probe at most `n` caches with a non-zero weight; if none has fallen behind, the last
        // probed one takes the bucket (Squid's loop exits with the cursor where it stopped).
        let mut probes = 0;
        loop {
            cursor = (cursor + 1) % n;
            if scaled[cursor] == 0 {
                continue;
            }
            probes += 1;
            if assigned[cursor] <= done || probes >= n {
                break;
            }
        }
        out.push(cursor as u8);
        // `total` fits 32 · 65535 · 4096 < 2^33 and `per_bucket <= total`, so the product fits
        // u128 trivially and u64 in practice; u128 keeps it obviously overflow-free.
        let step = u128::from(per_bucket) * u128::from(total) / u128::from(scaled[cursor]);
        assigned[cursor] = assigned[cursor].saturating_add(u64::try_from(step).unwrap_or(u64::MAX));
        done += per_bucket;
    }
    out
}

/// Which packet field the single mask of [`squid_mask`] applies to: one of the fields a hash
/// may use.
pub use crate::service::HashField as MaskField;

impl HashField {
    /// The mask field of a service, Squid's choice (docs/protocol.md §3.5): source IP if a
    /// source-IP (primary or alternate) hash flag is set, else destination IP (always for
    /// standard services), else source port, else destination port. A dynamic service with no hash flag at all gets destination IP
    /// (Squid refuses to run; destination IP is what standard services use).
    pub const fn for_service(standard: bool, flags: u32) -> MaskField {
        if flags & either(HashField::SrcIp) != 0 {
            MaskField::SrcIp
        } else if standard || flags & either(HashField::DstIp) != 0 {
            MaskField::DstIp
        } else if flags & either(HashField::SrcPort) != 0 {
            MaskField::SrcPort
        } else if flags & either(HashField::DstPort) != 0 {
            MaskField::DstPort
        } else {
            MaskField::DstIp
        }
    }
}

/// The primary and alternate hash flags of `field`.
const fn either(field: HashField) -> u32 {
    field.primary_flag() | field.primary_flag() << 8
}

/// One mask value and the cache it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaskValue {
    /// The value of the masked field (a subset of [`SQUID_MASK`]'s bits).
    pub value: u32,
    /// Index of the owning cache in the caller's list.
    pub cache: u8,
}

/// A single-set mask assignment: the field, the mask, and 64 values in ascending order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MaskSpread {
    /// Which field the mask applies to (all other masks are 0).
    pub field: MaskField,
    /// The mask (always [`SQUID_MASK`]).
    pub mask: u32,
    /// The values, ascending; empty when there are no caches.
    pub values: Vec<MaskValue>,
}

/// The 64 values `v` with `v & SQUID_MASK == v`, ascending.
pub fn squid_mask_values() -> impl Iterator<Item = u32> {
    (0..=SQUID_MASK).filter(|v| v & SQUID_MASK == *v)
}

/// Squid-style mask assignment (docs/protocol.md §3.5): one Mask/Value Set with mask `0x1741` on
/// `field`, 64 values in ascending order.
///
/// When all weights are equal (Squid's case: every cache at the default 10000, or all 0) the
/// values go round-robin in list order — exactly Squid's output. With unequal weights Squid would
/// still round-robin; here the values are spread with Squid's weighted walk over 64 slots instead
/// (same arithmetic as [`squid_hash`]), so weights are respected, deterministically. Empty
/// `weights` gives no values (all traffic forwarded normally).
pub fn squid_mask(field: MaskField, weights: &[u16]) -> MaskSpread {
    let weights = &weights[..weights.len().min(MAX_CACHES)];
    let values: Vec<u32> = squid_mask_values().collect();
    let owners: Vec<u8> = if weights.is_empty() {
        Vec::new()
    } else if weights.iter().all(|&w| w == weights[0]) {
        (0..values.len())
            .map(|i| (i % weights.len()) as u8)
            .collect()
    } else {
        squid_walk(weights, values.len())
    };
    MaskSpread {
        field,
        mask: SQUID_MASK,
        values: values
            .into_iter()
            .zip(owners)
            .map(|(value, cache)| MaskValue { value, cache })
            .collect(),
    }
}

/// How many buckets each cache should own: `256 · w_i / Σw` rounded by largest remainder
/// (all weights 0 counts as all equal). Ties for the leftover buckets go first to caches listed
/// in `prefer` order (callers pass the caches sorted by how many buckets they already own,
/// descending, to minimise movement), then to lower indices.
fn quotas(weights: &[u16], prefer: &[usize]) -> Vec<usize> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let all_zero = weights.iter().all(|&w| w == 0);
    let w: Vec<u64> = weights
        .iter()
        .map(|&w| if all_zero { 1 } else { u64::from(w) })
        .collect();
    let total: u64 = w.iter().sum();
    let exact: Vec<(usize, u64)> = w
        .iter()
        .map(|&wi| {
            let scaled = wi * BUCKETS as u64;
            ((scaled / total) as usize, scaled % total)
        })
        .collect();
    let mut q: Vec<usize> = exact.iter().map(|e| e.0).collect();
    let left = BUCKETS - q.iter().sum::<usize>();
    // Largest remainder first; among equal remainders, the caller's preference, then index.
    let rank = |i: usize| prefer.iter().position(|&p| p == i).unwrap_or(usize::MAX);
    let mut order: Vec<usize> = (0..n).filter(|&i| w[i] > 0).collect();
    order.sort_by(|&a, &b| {
        exact[b]
            .1
            .cmp(&exact[a].1)
            .then(rank(a).cmp(&rank(b)))
            .then(a.cmp(&b))
    });
    for &i in order.iter().take(left) {
        q[i] += 1;
    }
    q
}

/// Minimal-movement hash assignment (an option; not Squid-equal).
///
/// `caches` are the new cache list (address and weight, list order = cache index) and `previous`
/// the bucket owners of the last assignment by address (`None` = unassigned). Each cache gets a
/// quota of `256 · w_i / Σw` buckets (largest remainder). A bucket stays with its previous owner
/// while that owner is still present and under quota; only the remaining buckets move, in
/// ascending order, round-robin over the caches still below quota.
///
/// Properties (tested): the number of buckets that change owner is exactly the number that must
/// (buckets of departed caches plus each surviving cache's excess over its new quota); with equal
/// weights, adding one cache moves buckets only to the new cache and removing one moves only the
/// removed cache's buckets. With `previous` all `None` this is a plain quota fill.
///
/// Caches beyond [`MAX_CACHES`] are ignored.
pub fn stable_hash(
    caches: &[(Ipv4Addr, u16)],
    previous: &[Option<Ipv4Addr>; BUCKETS],
) -> [u8; BUCKETS] {
    let caches = &caches[..caches.len().min(MAX_CACHES)];
    let mut out = [UNASSIGNED; BUCKETS];
    if caches.is_empty() {
        return out;
    }
    let index_of = |a: Ipv4Addr| caches.iter().position(|c| c.0 == a);
    let mut prev_count = vec![0usize; caches.len()];
    for owner in previous.iter().flatten() {
        if let Some(i) = index_of(*owner) {
            prev_count[i] += 1;
        }
    }
    let mut prefer: Vec<usize> = (0..caches.len()).collect();
    prefer.sort_by(|&a, &b| prev_count[b].cmp(&prev_count[a]).then(a.cmp(&b)));
    let weights: Vec<u16> = caches.iter().map(|c| c.1).collect();
    let quota = quotas(&weights, &prefer);

    // Keep: each bucket stays with its previous owner while that owner is under quota.
    let mut have = vec![0usize; caches.len()];
    for (b, owner) in previous.iter().enumerate() {
        if let Some(i) = owner.and_then(index_of) {
            if have[i] < quota[i] {
                have[i] += 1;
                out[b] = i as u8;
            }
        }
    }
    // Fill: free buckets, ascending, round-robin over caches below quota.
    let mut cursor = 0usize;
    for slot in out.iter_mut().filter(|s| **s == UNASSIGNED) {
        let n = caches.len();
        let Some(i) = (0..n)
            .map(|k| (cursor + k) % n)
            .find(|&i| have[i] < quota[i])
        else {
            break;
        };
        *slot = i as u8;
        have[i] += 1;
        cursor = (i + 1) % n;
    }
    out
}

/// How the designated cache spreads buckets (hash assignment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpreadAlgorithm {
    /// Squid's weighted walk ([`squid_hash`], default; Squid-equal output).
    #[default]
    Squid,
    /// Minimal movement on membership changes ([`stable_hash`]).
    Stable,
}

impl SpreadAlgorithm {
    /// Name in the configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpreadAlgorithm::Squid => "squid",
            SpreadAlgorithm::Stable => "stable",
        }
    }
}

impl Named for SpreadAlgorithm {
    const ALL: &'static [SpreadAlgorithm] = &[SpreadAlgorithm::Squid, SpreadAlgorithm::Stable];

    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Optional slow start: a newly joined cache's effective weight ramps linearly from
/// `initial_permille`‰ of its configured weight to the full weight over `duration`
/// (the patent's "slow-starting a web cache system" idea; not part of the protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowStart {
    /// How long the ramp lasts. Zero disables slow start.
    pub duration: Duration,
    /// Starting share of the full weight, in thousandths (e.g. 100 = 10 %).
    pub initial_permille: u16,
}

impl SlowStart {
    /// A ramp over `duration` starting at 10 % of the full weight.
    pub const fn over(duration: Duration) -> SlowStart {
        SlowStart {
            duration,
            initial_permille: 100,
        }
    }

    /// The effective weight of a cache whose configured weight is `full`, `elapsed` after it
    /// joined. Never 0 for a non-zero `full` (a weight-0 cache would get nothing at all), never
    /// more than `full`, non-decreasing in `elapsed`, and exactly `full` once `elapsed >=
    /// duration`.
    pub fn effective_weight(&self, full: u16, elapsed: Duration) -> u16 {
        if full == 0 || self.duration.is_zero() || elapsed >= self.duration {
            return full;
        }
        let full64 = u128::from(full);
        let start = full64 * u128::from(self.initial_permille.min(1000)) / 1000;
        let span = full64 - start;
        let num = span * elapsed.as_millis();
        let w = start + num / self.duration.as_millis().max(1);
        // `w <= full`, which fits u16.
        u16::try_from(w.clamp(1, full64)).unwrap_or(full)
    }

    /// Whether the ramp is still running `elapsed` after the join.
    pub fn ramping(&self, elapsed: Duration) -> bool {
        !self.duration.is_zero() && elapsed < self.duration
    }
}

/// Per-cache bucket counts of a bucket table over `n` caches (unassigned buckets not counted).
pub fn bucket_counts(buckets: &[u8; BUCKETS], n: usize) -> Vec<usize> {
    let mut c = vec![0usize; n];
    for &b in buckets {
        if let Some(slot) = c.get_mut(usize::from(b)) {
            *slot += 1;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_terminates_with_zero_weights_mixed() {
        let t = squid_hash(&[0, 0, 7]);
        assert!(t.iter().all(|&b| b == 2));
    }

    #[test]
    fn no_caches_unassigned() {
        assert!(squid_hash(&[]).iter().all(|&b| b == UNASSIGNED));
        assert!(squid_mask(MaskField::DstIp, &[]).values.is_empty());
    }

    #[test]
    fn quotas_sum_to_256() {
        for ws in [
            &[1u16, 2, 3][..],
            &[10000; 7],
            &[0, 0, 0],
            &[65535, 1],
            &[5, 0, 5],
        ] {
            let q = quotas(ws, &[]);
            assert_eq!(q.iter().sum::<usize>(), BUCKETS, "{ws:?}");
        }
        assert_eq!(quotas(&[5, 0, 5], &[]), vec![128, 0, 128]);
    }
}
