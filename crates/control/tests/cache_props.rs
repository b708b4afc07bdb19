//! The cache agent and the packet-return parser never panic on peer input, and bad input leaves
//! the agent's view of the group unchanged (the crate's invariant: "a bad message is counted and
//! described in an Event, never lost state").

mod cache_support;

use cache_support::squid::*;
use cache_support::*;
use proptest::prelude::*;
use wccp_control::packet_return::{self, ReturnPolicy};
use wccp_control::{Datagram, Event, Machine};

fn squid_isy() -> Vec<u8> {
    unhex(SQUIDFIX_I_SEE_YOU_1)
}

proptest! {
    #[test]
    fn random_bytes_are_dropped_not_fatal(payload in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut a = agent(&[R1], web_cache());
        tick(&mut a, 0);
        a.handle_datagram(ms(1), Datagram { local: US, peer: R1, payload });
        let out = drain(&mut a);
        prop_assert!(sent(&out).is_empty());
        let all_drops = events(&out).iter().all(|e| matches!(e, Event::Dropped { .. }));
        prop_assert!(all_drops, "only drop events");
        prop_assert_eq!(a.status().services[0].routers[0].receive_id, 0);
        run_until(&mut a, 100_000);
    }

    /// Real I_SEE_YOUs with a few octets changed: whatever happens, no panic, timers go on.
    #[test]
    fn mutated_i_see_you(edits in prop::collection::vec((0usize..600, any::<u8>()), 1..6)) {
        let cache = std::net::Ipv4Addr::new(10, 200, 0, 2);
        let router = std::net::Ipv4Addr::new(10, 200, 0, 1);
        let mut a = wccp_control::cache::CacheAgent::new(wccp_control::cache::CacheConfig::new(
            cache,
            vec![router],
            vec![web_cache()],
        ))
        .unwrap();
        tick(&mut a, 0);
        let mut p = squid_isy();
        for (at, v) in edits {
            let n = p.len();
            p[at % n] = v;
        }
        let before = a.status_at(ms(1));
        a.handle_datagram(ms(1), Datagram { local: cache, peer: router, payload: p });
        let now = drain(&mut a);
        // A drop reported means the message changed nothing, with one exception by design: a
        // valid I_SEE_YOU offering no capability we accept makes the router incompatible (we stop
        // joining it, docs/protocol.md 2.10), and that decision is reported as a drop.
        let drops: Vec<&str> = events(&now)
            .iter()
            .filter_map(|e| match e {
                Event::Dropped { detail, .. } => Some(detail.as_str()),
                _ => None,
            })
            .collect();
        if !drops.is_empty() {
            prop_assert!(sent(&now).is_empty(), "a dropped message is not answered: {:?}", now);
            let after = a.status_at(ms(1));
            let incompatible = drops.len() == 1
                && drops[0].starts_with("incompatible capabilities")
                && after.services[0].routers[0].state
                    == wccp_control::cache::RouterLinkState::Incompatible;
            if !incompatible {
                prop_assert_eq!(after, before, "dropped ({:?}), yet the state changed", drops);
            }
        }
        let out = run_until(&mut a, 60_000);
        // Unless the edit made the router offer no capability we accept, HIAs continue.
        let st = a.status();
        if st.services[0].routers[0].state != wccp_control::cache::RouterLinkState::Incompatible {
            prop_assert!(!out.is_empty(), "HERE_I_AMs continue");
        }
    }

    #[test]
    fn packet_return_never_panics(pkt in prop::collection::vec(any::<u8>(), 0..200), load in any::<u32>()) {
        let policy = ReturnPolicy { max_load: Some(50), ..ReturnPolicy::default() };
        let _ = packet_return::process(&policy, &pkt, load, 1);
    }

    /// Any well-formed redirected packet round-trips through return and parse.
    #[test]
    fn packet_return_round_trip(
        inner_len in 20usize..120,
        hdr in prop::option::of(any::<[u8; 4]>()),
        src in any::<u32>(),
        dst in any::<u32>(),
    ) {
        // Outer IPv4 + GRE + optional redirect header + inner IPv4 (no options).
        let hdr = hdr.map(|mut h| { if h[0] >> 4 == 4 { h[0] = 0x05; } h });
        let mut inner = vec![0u8; inner_len];
        inner[0] = 0x45;
        inner[2..4].copy_from_slice(&(inner_len as u16).to_be_bytes());
        inner[9] = 6;
        inner[12..16].copy_from_slice(&src.to_be_bytes());
        inner[16..20].copy_from_slice(&dst.to_be_bytes());
        let total = 20 + 4 + hdr.map_or(0, |_| 4) + inner_len;
        let mut pkt = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 255, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        pkt.extend_from_slice(&[0, 0, 0x88, 0x3e]);
        if let Some(h) = hdr { pkt.extend_from_slice(&h); }
        pkt.extend_from_slice(&inner);
        let r = packet_return::parse_redirected(&pkt).unwrap();
        prop_assert_eq!(r.inner, &inner[..]);
        let back = packet_return::build_return(&r, 9).unwrap();
        prop_assert_eq!(wire::checksum::checksum(&back[..20]), 0);
        let again = packet_return::parse_redirected(&back).unwrap();
        prop_assert_eq!(again.inner, &inner[..]);
        prop_assert_eq!(again.redirect_header, Some(hdr.unwrap_or([0x04, 0, 0, 0])));
        prop_assert_eq!((again.router, again.cache), (r.cache, r.router));
    }

    /// Rewriting any TCP/UDP packet with valid checksums keeps them valid.
    #[test]
    fn rewrite_keeps_checksums_valid(
        udp in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        src in any::<u32>(),
        dst in any::<u32>(),
        to in any::<u32>(),
    ) {
        let l4_len = if udp { 8 } else { 20 } + payload.len();
        let total = 20 + l4_len;
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, if udp { 17 } else { 6 }, 0, 0];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&src.to_be_bytes());
        p.extend_from_slice(&dst.to_be_bytes());
        let mut l4 = vec![0u8; l4_len - payload.len()];
        l4[0..4].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        if udp {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            l4[12] = 0x50;
        }
        p.extend_from_slice(&l4);
        p.extend_from_slice(&payload);
        let h = wire::checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&h.to_be_bytes());
        let at = if udp { 26 } else { 36 };
        let mut c = l4_sum(&p);
        if udp && c == 0 {
            c = 0xFFFF;
        }
        p[at..at + 2].copy_from_slice(&c.to_be_bytes());
        prop_assert_eq!(l4_sum(&p), 0);
        packet_return::rewrite_destination(&mut p, std::net::Ipv4Addr::from_bits(to)).unwrap();
        prop_assert_eq!(&p[16..20], &to.to_be_bytes()[..]);
        prop_assert_eq!(wire::checksum::checksum(&p[..20]), 0);
        prop_assert_eq!(l4_sum(&p), 0);
    }
}

/// Transport checksum over pseudo-header + segment (0 when the stored checksum is valid).
fn l4_sum(ip: &[u8]) -> u16 {
    let seg = &ip[20..];
    let mut v = Vec::new();
    v.extend_from_slice(&ip[12..20]);
    v.extend_from_slice(&[0, ip[9]]);
    v.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    v.extend_from_slice(seg);
    wire::checksum::checksum(&v)
}
