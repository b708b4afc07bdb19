//! Assignment algorithms: Squid-equal vectors (docs/protocol.md §8 TV-10), mask spreading, the
//! minimal-movement option and slow start.

use std::net::Ipv4Addr;
use std::time::Duration;

use wccp_assign::spread::{
    bucket_counts, cache_order, squid_hash, squid_mask, squid_mask_values, stable_hash, MaskField,
    SlowStart, BUCKETS, SQUID_MASK, UNASSIGNED,
};

fn counts(weights: &[u16]) -> (Vec<usize>, [u8; BUCKETS]) {
    let t = squid_hash(weights);
    (bucket_counts(&t, weights.len()), t)
}

#[test]
fn tv10_single_cache_gets_everything() {
    let (c, t) = counts(&[10000]);
    assert_eq!(c, vec![256]);
    assert!(t.iter().all(|&b| b == 0));
}

#[test]
fn tv10_two_equal_alternate() {
    let (c, t) = counts(&[10000, 10000]);
    assert_eq!(c, vec![128, 128]);
    for (b, &o) in t.iter().enumerate() {
        assert_eq!(usize::from(o), b % 2, "bucket {b}");
    }
}

#[test]
fn tv10_three_equal_round_robin() {
    let (c, t) = counts(&[10000, 10000, 10000]);
    assert_eq!(c, vec![86, 85, 85]);
    for (b, &o) in t.iter().enumerate() {
        assert_eq!(usize::from(o), b % 3, "bucket {b}");
    }
}

#[test]
fn tv10_two_to_one() {
    let (c, t) = counts(&[10000, 5000]);
    assert_eq!(c, vec![170, 86]);
    assert_eq!(&t[..10], &[0, 1, 0, 1, 0, 0, 1, 0, 0, 1]);
}

#[test]
fn tv10_all_zero_is_mod_n() {
    let (c, t) = counts(&[0, 0, 0]);
    assert_eq!(c, vec![86, 85, 85]);
    for (b, &o) in t.iter().enumerate() {
        assert_eq!(usize::from(o), b % 3, "bucket {b}");
    }
}

#[test]
fn tv10_zero_weight_skipped() {
    let (c, t) = counts(&[10000, 0, 10000]);
    assert_eq!(c, vec![128, 0, 128]);
    for (b, &o) in t.iter().enumerate() {
        assert_eq!(o, if b % 2 == 0 { 0 } else { 2 }, "bucket {b}");
    }
}

#[test]
fn tv10_one_two_three() {
    let (c, _) = counts(&[1, 2, 3]);
    assert_eq!(c, vec![43, 86, 127]);
}

#[test]
fn squid_hash_ignores_caches_beyond_32() {
    let t = squid_hash(&[10000; 40]);
    assert!(t.iter().all(|&b| b < 32));
    assert_eq!(bucket_counts(&t, 32).iter().sum::<usize>(), 256);
}

#[test]
fn cache_order_is_numeric_big_endian() {
    let mut v = [
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(9, 255, 255, 255),
        Ipv4Addr::new(10, 0, 1, 1),
        Ipv4Addr::new(10, 0, 0, 10),
    ];
    v.sort_by_key(|a| cache_order(*a));
    assert_eq!(
        v,
        [
            Ipv4Addr::new(9, 255, 255, 255),
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 10),
            Ipv4Addr::new(10, 0, 1, 1),
        ]
    );
}

#[test]
fn mask_values_are_the_64_subsets_of_0x1741_ascending() {
    let v: Vec<u32> = squid_mask_values().collect();
    assert_eq!(v.len(), 64);
    assert_eq!(&v[..6], &[0x0, 0x1, 0x40, 0x41, 0x100, 0x101]);
    assert_eq!(*v.last().unwrap(), 0x1741);
    assert!(v.windows(2).all(|w| w[0] < w[1]));
    assert!(v.iter().all(|x| x & SQUID_MASK == *x));
}

#[test]
fn mask_round_robin_for_equal_weights() {
    let m = squid_mask(MaskField::DstIp, &[10000, 10000, 10000]);
    assert_eq!(m.mask, 0x1741);
    assert_eq!(m.values.len(), 64);
    for (i, v) in m.values.iter().enumerate() {
        assert_eq!(usize::from(v.cache), i % 3);
    }
    // All zero is "equal" too.
    let z = squid_mask(MaskField::DstIp, &[0, 0]);
    assert!(z
        .values
        .iter()
        .enumerate()
        .all(|(i, v)| usize::from(v.cache) == i % 2));
}

#[test]
fn mask_respects_unequal_weights() {
    let m = squid_mask(MaskField::SrcIp, &[10000, 0, 5000]);
    let mut c = [0usize; 3];
    for v in &m.values {
        c[usize::from(v.cache)] += 1;
    }
    assert_eq!(c[1], 0);
    assert_eq!(c[0] + c[2], 64);
    assert!((42..=43).contains(&c[0]), "{c:?}");
    // Deterministic.
    assert_eq!(m, squid_mask(MaskField::SrcIp, &[10000, 0, 5000]));
}

#[test]
fn mask_field_choice_follows_squid() {
    assert_eq!(MaskField::for_service(false, 0x0001), MaskField::SrcIp);
    assert_eq!(MaskField::for_service(false, 0x0100), MaskField::SrcIp);
    assert_eq!(MaskField::for_service(false, 0x0012), MaskField::DstIp);
    assert_eq!(MaskField::for_service(true, 0), MaskField::DstIp);
    assert_eq!(MaskField::for_service(true, 0x0004), MaskField::DstIp);
    assert_eq!(MaskField::for_service(false, 0x0004), MaskField::SrcPort);
    assert_eq!(MaskField::for_service(false, 0x0800), MaskField::DstPort);
    assert_eq!(
        MaskField::for_service(false, 0x0001 | 0x0002),
        MaskField::SrcIp
    );
}

fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i)
}

fn owners(caches: &[(Ipv4Addr, u16)], t: &[u8; BUCKETS]) -> [Option<Ipv4Addr>; BUCKETS] {
    let mut o = [None; BUCKETS];
    for (b, &i) in t.iter().enumerate() {
        if i != UNASSIGNED {
            o[b] = Some(caches[usize::from(i)].0);
        }
    }
    o
}

fn moved(a: &[Option<Ipv4Addr>; BUCKETS], b: &[Option<Ipv4Addr>; BUCKETS]) -> Vec<usize> {
    (0..BUCKETS).filter(|&i| a[i] != b[i]).collect()
}

#[test]
fn stable_from_scratch_fills_quotas() {
    let caches = [(ip(1), 10000), (ip(2), 5000)];
    let t = stable_hash(&caches, &[None; BUCKETS]);
    assert_eq!(bucket_counts(&t, 2), vec![171, 85]);
    let eq = [(ip(1), 1), (ip(2), 1), (ip(3), 1)];
    let t = stable_hash(&eq, &[None; BUCKETS]);
    assert_eq!(bucket_counts(&t, 3), vec![86, 85, 85]);
    assert!(stable_hash(&[], &[None; BUCKETS])
        .iter()
        .all(|&b| b == UNASSIGNED));
}

#[test]
fn stable_add_one_moves_only_to_new_cache() {
    for n in 1..32u8 {
        let old: Vec<(Ipv4Addr, u16)> = (1..=n).map(|i| (ip(i * 2), 10000)).collect();
        let t0 = stable_hash(&old, &[None; BUCKETS]);
        let o0 = owners(&old, &t0);
        // New cache with the lowest address, so every old index shifts by one.
        let mut new = vec![(ip(1), 10000)];
        new.extend(old.iter().copied());
        let t1 = stable_hash(&new, &o0);
        let o1 = owners(&new, &t1);
        let m = moved(&o0, &o1);
        assert!(m.iter().all(|&b| o1[b] == Some(ip(1))), "n={n}");
        assert_eq!(m.len(), bucket_counts(&t1, new.len())[0], "n={n}");
        assert_eq!(m.len(), 256 / (usize::from(n) + 1), "n={n}");
    }
}

#[test]
fn stable_remove_one_moves_only_its_buckets() {
    for n in 2..=32u8 {
        let old: Vec<(Ipv4Addr, u16)> = (1..=n).map(|i| (ip(i), 10000)).collect();
        let t0 = stable_hash(&old, &[None; BUCKETS]);
        let o0 = owners(&old, &t0);
        for gone in [0usize, usize::from(n) / 2, usize::from(n) - 1] {
            let mut new = old.clone();
            let (gone_addr, _) = new.remove(gone);
            let t1 = stable_hash(&new, &o0);
            let o1 = owners(&new, &t1);
            let m = moved(&o0, &o1);
            assert!(
                m.iter().all(|&b| o0[b] == Some(gone_addr)),
                "n={n} gone={gone}"
            );
            assert_eq!(
                m.len(),
                o0.iter().filter(|o| **o == Some(gone_addr)).count()
            );
            assert!(o1.iter().all(|o| o.is_some()));
        }
    }
}

#[test]
fn stable_moves_exactly_the_excess_with_unequal_weights() {
    let old = [(ip(1), 10000), (ip(2), 5000), (ip(3), 2500)];
    let t0 = stable_hash(&old, &[None; BUCKETS]);
    let o0 = owners(&old, &t0);
    let new = [(ip(1), 10000), (ip(3), 2500), (ip(4), 7000)];
    let t1 = stable_hash(&new, &o0);
    let o1 = owners(&new, &t1);
    let c0 = |a| o0.iter().filter(|o| **o == Some(a)).count();
    let c1 = bucket_counts(&t1, 3);
    let must = c0(ip(2)) + c0(ip(1)).saturating_sub(c1[0]) + c0(ip(3)).saturating_sub(c1[1]);
    assert_eq!(moved(&o0, &o1).len(), must);
    assert_eq!(c1.iter().sum::<usize>(), 256);
}

#[test]
fn squid_walk_is_not_stable_so_the_option_matters() {
    // Documents why `stable_hash` exists: Squid's walk moves far more than needed.
    let old = squid_hash(&[10000; 4]);
    let new = squid_hash(&[10000; 5]);
    let moved_squid = (0..BUCKETS)
        .filter(|&b| new[b] < 4 && old[b] != new[b] || new[b] == 4)
        .count();
    assert!(moved_squid > 2 * (256 / 5), "{moved_squid}");
}

#[test]
fn slow_start_ramps_linearly() {
    let s = SlowStart {
        duration: Duration::from_secs(100),
        initial_permille: 100,
    };
    assert_eq!(s.effective_weight(10000, Duration::ZERO), 1000);
    assert_eq!(s.effective_weight(10000, Duration::from_secs(50)), 5500);
    assert_eq!(s.effective_weight(10000, Duration::from_secs(100)), 10000);
    assert_eq!(s.effective_weight(10000, Duration::from_secs(1000)), 10000);
    assert_eq!(s.effective_weight(0, Duration::ZERO), 0);
    assert_eq!(
        s.effective_weight(5, Duration::ZERO),
        1,
        "never 0 for a non-zero weight"
    );
    let mut last = 0;
    for t in 0..=110 {
        let w = s.effective_weight(10000, Duration::from_secs(t));
        assert!(w >= last);
        last = w;
    }
    assert!(s.ramping(Duration::from_secs(99)));
    assert!(!s.ramping(Duration::from_secs(100)));
    let off = SlowStart {
        duration: Duration::ZERO,
        initial_permille: 0,
    };
    assert_eq!(off.effective_weight(10000, Duration::ZERO), 10000);
    assert!(!off.ramping(Duration::ZERO));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every bucket goes to a listed cache; weight-0 caches get nothing unless all are 0;
        /// each share is close to 256·w/Σw. Squid's walk is greedy (every cache with a weight
        /// gets a bucket in the first round), so the error grows with the number of caches:
        /// within max(2, N) buckets, N = caches with a non-zero weight.
        #[test]
        fn squid_hash_is_proportional(weights in prop::collection::vec(0u16..=20000, 1..=32)) {
            let t = squid_hash(&weights);
            let c = bucket_counts(&t, weights.len());
            prop_assert_eq!(c.iter().sum::<usize>(), 256);
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            let nz = weights.iter().filter(|&&w| w > 0).count();
            let bound = (nz as f64).max(2.0);
            for (i, &w) in weights.iter().enumerate() {
                if total == 0 {
                    prop_assert!(c[i] == 256 / weights.len() || c[i] == 256 / weights.len() + 1);
                } else if w == 0 {
                    prop_assert_eq!(c[i], 0);
                } else {
                    let exact = 256.0 * f64::from(w) / total as f64;
                    prop_assert!((c[i] as f64 - exact).abs() <= bound, "cache {} got {} want {:.2}", i, c[i], exact);
                }
            }
        }

        /// The minimal-movement variant moves exactly the buckets that must move, from any
        /// previous assignment.
        #[test]
        fn stable_moves_are_minimal(
            weights in prop::collection::vec(1u16..=10000, 1..=16),
            prev_raw in prop::collection::vec(0u8..24, 256),
        ) {
            let caches: Vec<(Ipv4Addr, u16)> =
                weights.iter().enumerate().map(|(i, &w)| (ip(i as u8 + 1), w)).collect();
            // Previous owners: addresses 1..=24, some of which are gone, some new.
            let mut prev = [None; BUCKETS];
            for (b, &r) in prev_raw.iter().enumerate() {
                prev[b] = (r < 20).then(|| ip(r + 1));
            }
            let t = stable_hash(&caches, &prev);
            prop_assert!(t.iter().all(|&i| usize::from(i) < caches.len()));
            let now = owners(&caches, &t);
            let counts = bucket_counts(&t, caches.len());
            // Buckets that stay: for each present cache, min(previous count, new quota).
            let kept: usize = caches
                .iter()
                .enumerate()
                .map(|(i, (a, _))| prev.iter().filter(|p| **p == Some(*a)).count().min(counts[i]))
                .sum();
            let stayed = (0..BUCKETS).filter(|&b| prev[b].is_some() && prev[b] == now[b]).count();
            prop_assert_eq!(stayed, kept);
        }
    }
}
