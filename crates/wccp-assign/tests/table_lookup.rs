//! RedirectTable lookups against a literal transcription of docs/protocol.md 3.2 / 3.3, and a
//! throughput probe (`cargo test -p wccp-assign --release --test table_lookup -- --ignored
//! --nocapture`).

use std::net::Ipv4Addr;
use std::time::Instant;

use proptest::prelude::*;
use wccp_assign::hash::{alternate_bucket, primary_bucket, FlowKey};
use wccp_assign::mask::{match_sets, MaskSet, MaskTuple, ValueElement};
use wccp_assign::service::ServiceDef;
use wccp_assign::table::{ForwardingMethod, Lookup, RedirectTable};

fn caches(n: usize) -> Vec<Ipv4Addr> {
    (0..n)
        .map(|i| Ipv4Addr::new(10, 0, 0, 10 + i as u8))
        .collect()
}

/// docs/protocol.md 3.2, word for word.
fn reference(flags: u32, buckets: &[u8; 256], k: &FlowKey) -> Option<u8> {
    let p = primary_bucket(flags, k);
    let e = buckets[usize::from(p)];
    if e == 0xFF {
        return None;
    }
    if e & 0x80 == 0 {
        return Some(e & 0x7F);
    }
    let e2 = buckets[usize::from(alternate_bucket(flags, k))];
    if e2 == 0xFF {
        None
    } else {
        Some(e2 & 0x7F)
    }
}

fn bucket_octet(n: u8) -> impl Strategy<Value = u8> {
    prop_oneof![
        (0..n).prop_map(|i| i),
        (0..n).prop_map(|i| i | 0x80),
        Just(0xFFu8),
    ]
}

proptest! {
    #[test]
    fn hash_lookup_matches_reference(
        n in 1u8..8,
        seed in proptest::collection::vec(any::<u8>(), 256),
        flags in 0u32..0x1000,
        keys in proptest::collection::vec((any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()), 1..64),
    ) {
        // Buckets from the seed: a third unassigned, a third alternate, a third plain.
        let mut b = [0u8; 256];
        for (o, s) in b.iter_mut().zip(&seed) {
            *o = match s % 3 {
                0 => 0xFF,
                1 => ((s / 3) % n) | 0x80,
                _ => (s / 3) % n,
            };
        }
        let flags = flags & 0x0F0F;
        let svc = ServiceDef::dynamic(90, 1, 6, flags, [0; 8]).unwrap();
        let t = RedirectTable::from_hash_assignment(svc, &caches(usize::from(n)), &b, ForwardingMethod::Gre).unwrap();
        for (s, d, sp, dp) in keys {
            let k = FlowKey::new(s, d, sp, dp);
            let got = match t.lookup(&k) {
                Lookup::Redirect { target, primary, alt, used_alt } => {
                    prop_assert_eq!(primary, primary_bucket(flags, &k));
                    prop_assert_eq!(alt, alternate_bucket(flags, &k));
                    prop_assert_eq!(used_alt, b[usize::from(primary)] & 0x80 != 0);
                    Some(target)
                }
                Lookup::Forward => None,
            };
            prop_assert_eq!(got, reference(flags, &b, &k));
        }
    }

    #[test]
    fn bucket_strategy_is_valid(n in 1u8..32, o in bucket_octet(31)) {
        let svc = ServiceDef::dynamic(90, 1, 6, 1, [0; 8]).unwrap();
        let r = RedirectTable::from_hash_assignment(svc, &caches(usize::from(n)), &[o; 256], ForwardingMethod::Gre);
        prop_assert_eq!(r.is_ok(), o == 0xFF || (o & 0x7F) < n);
    }
}

fn squid_mask_table() -> (RedirectTable, Vec<MaskSet>) {
    // Squid's mask assignment: 0x1741 on the destination address, 64 values round-robin over 4
    // caches (docs/protocol.md 3.5).
    let mask = MaskTuple::new(0, 0x1741, 0, 0);
    let map = wccp_assign::mask::VsnMap::new(&mask).unwrap();
    let cs = caches(4);
    let values = (0..64u32)
        .map(|v| ValueElement {
            value: map.value_of(v).unwrap(),
            cache: u32::from(cs[v as usize % 4]),
        })
        .collect();
    let sets = vec![MaskSet { mask, values }];
    let t =
        RedirectTable::from_mask_sets(ServiceDef::WEB_CACHE, &sets, ForwardingMethod::Gre).unwrap();
    (t, sets)
}

#[test]
fn squid_mask_lookup_matches_reference() {
    let (t, sets) = squid_mask_table();
    let mut x = 0x1234_5678u32;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let k = FlowKey::new(x.rotate_left(7), x, 40000, 80);
        let want = match_sets(&sets, &k).map(|v| v.cache);
        let got = match t.lookup(&k) {
            Lookup::Redirect { target, .. } => {
                Some(u32::from(t.targets()[usize::from(target)].addr))
            }
            Lookup::Forward => None,
        };
        assert_eq!(got, want);
        assert!(
            got.is_some(),
            "a full 64-value assignment covers every address"
        );
    }
    assert_eq!(t.share_counts(), vec![16, 16, 16, 16]);
}

#[test]
#[ignore = "throughput probe; run in release with --ignored --nocapture"]
fn lookup_throughput() {
    let mut b = [0u8; 256];
    for (i, o) in b.iter_mut().enumerate() {
        *o = (i % 8) as u8;
    }
    let svc = ServiceDef::dynamic(90, 1, 6, 0x0201, [0; 8]).unwrap();
    let hash =
        RedirectTable::from_hash_assignment(svc, &caches(8), &b, ForwardingMethod::Gre).unwrap();
    let (mask, _) = squid_mask_table();
    const N: u32 = 20_000_000;
    for (name, t) in [("hash", &hash), ("mask 0x1741", &mask)] {
        let start = Instant::now();
        let mut acc = 0u64;
        for i in 0..N {
            let k = FlowKey::new(i.wrapping_mul(2_654_435_761), i ^ 0x5bd1_e995, i as u16, 80);
            if let Lookup::Redirect { target, .. } = t.lookup(std::hint::black_box(&k)) {
                acc += u64::from(target);
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(N);
        println!("{name}: {ns:.2} ns/lookup (checksum {acc})");
        assert!(acc > 0);
        assert!(ns < 1_000.0, "{name}: {ns} ns per lookup");
    }
}
