//! Property tests: the router never panics on hostile input, and its counters keep their
//! invariants over random sequences of valid, stale, corrupted and timed-out traffic.

mod router_support;

use proptest::prelude::*;
use router_support::*;
use wccp_control::router::ServiceConfig;
use wccp_control::{Datagram, Event, Instant, Machine, Output};
use wire::{ISeeYou, MessageRepr, RemovalQuery};

#[derive(Clone, Debug)]
enum Step {
    /// Cache n sends a HERE_I_AM echoing what it last heard.
    Hello(u8),
    /// Cache n sends a HERE_I_AM echoing a made-up id.
    BadEcho(u8, u32),
    /// Cache n sends a REDIRECT_ASSIGN giving everything to caches 0..=k.
    Assign(u8, u8),
    /// Cache n sends SHUTDOWN.
    Shutdown(u8),
    /// A HERE_I_AM of cache n with one octet flipped.
    Corrupt(u8, usize, u8),
    /// Time passes (ms).
    Wait(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..4).prop_map(Step::Hello),
        1 => (0u8..4, any::<u32>()).prop_map(|(n, id)| Step::BadEcho(n, id)),
        2 => (0u8..4, 0u8..4).prop_map(|(n, k)| Step::Assign(n, k)),
        1 => (0u8..4).prop_map(Step::Shutdown),
        2 => (0u8..4, any::<usize>(), 1u8..=255).prop_map(|(n, i, x)| Step::Corrupt(n, i, x)),
        3 => (0u32..40_000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn invariants_hold(steps in proptest::collection::vec(step(), 1..120), md5: bool) {
        let mut cfg = ServiceConfig::web_cache();
        if md5 {
            cfg.password = Some(b"pw".to_vec());
        }
        let mut r = router_with(vec![cfg]);
        let mut caches: Vec<FakeCache> = (0..4)
            .map(|i| {
                let mut c = FakeCache::web_cache(2 + i);
                if md5 {
                    c.password = Some(b"pw".to_vec());
                }
                c
            })
            .collect();
        let mut now = 0u64;
        let mut last_rid = 0u32;
        let mut last_change = 0u32;
        for s in steps {
            let out = match s {
                Step::Hello(n) => feed(&mut r, Instant(now), caches[usize::from(n)].here_i_am()),
                Step::BadEcho(n, id) => {
                    let mut c = caches[usize::from(n)].clone();
                    c.receive_id = id;
                    feed(&mut r, Instant(now), c.here_i_am())
                }
                Step::Assign(n, k) => {
                    let members: Vec<_> = caches[..=usize::from(k)].iter().map(|c| c.addr).collect();
                    let mut b = [0u8; 256];
                    for (i, o) in b.iter_mut().enumerate() {
                        *o = (i % members.len()) as u8;
                    }
                    let d = caches[usize::from(n)].redirect_assign(&members, b);
                    feed(&mut r, Instant(now), d)
                }
                Step::Shutdown(n) => feed(&mut r, Instant(now), caches[usize::from(n)].shutdown()),
                Step::Corrupt(n, i, x) => {
                    let mut d = caches[usize::from(n)].here_i_am();
                    let len = d.payload.len();
                    d.payload[i % len] ^= x;
                    feed(&mut r, Instant(now), d)
                }
                Step::Wait(ms) => {
                    now += u64::from(ms);
                    let mut out = Vec::new();
                    while let Some(t) = r.poll_timeout() {
                        if t.as_millis() > now {
                            break;
                        }
                        out.extend(tick(&mut r, t));
                    }
                    out.extend(tick(&mut r, Instant(now)));
                    out
                }
            };
            for o in &out {
                match o {
                    Output::Send(d) => {
                        prop_assert_eq!(d.local, ROUTER);
                        if md5 {
                            prop_assert!(wire::verify(&d.payload, b"pw").is_ok());
                        }
                        let rid = if let Ok(isy) = ISeeYou::parse(&d.payload) {
                            prop_assert_ne!(isy.view.change_number, 0);
                            prop_assert!(isy.view.change_number >= last_change);
                            last_change = isy.view.change_number;
                            // Only usable caches are listed, each once.
                            let mut seen: Vec<_> = isy.view.caches.iter().map(|c| c.addr).collect();
                            seen.sort();
                            seen.dedup();
                            prop_assert_eq!(seen.len(), isy.view.caches.len());
                            if let Some(c) = caches.iter_mut().find(|c| c.addr == d.peer) {
                                c.hear(d);
                            }
                            isy.identity.router.receive_id
                        } else {
                            let rq = RemovalQuery::parse(&d.payload);
                            prop_assert!(rq.is_ok(), "router sends only ISY and RQ");
                            rq.map(|q| q.query.receive_id).unwrap_or(0)
                        };
                        prop_assert_eq!(rid, last_rid + 1, "receive id +1 per message");
                        last_rid = rid;
                    }
                    Output::Event(Event::MembershipChanged { change_number, .. }) => {
                        prop_assert_ne!(*change_number, 0);
                    }
                    _ => {}
                }
            }
            // The table the data plane ends up with redirects only to caches usable now.
            let last = out.iter().rev().find_map(|o| match o {
                Output::Publish { table, .. } => Some(table.clone()),
                _ => None,
            });
            if let Some(Some(t)) = last {
                let st = r.status();
                for (tg, n) in t.targets().iter().zip(t.share_counts()) {
                    if n > 0 {
                        prop_assert!(st.services[0].caches.iter().any(|c| c.address == tg.addr && c.usable));
                    }
                }
            }
        }
        let _ = r.status();
    }

    #[test]
    fn arbitrary_bytes_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut r = router_with(vec![ServiceConfig::web_cache()]);
        r.handle_datagram(Instant(0), Datagram { local: ROUTER, peer: cache_addr(2), payload });
        let out = drain(&mut r);
        prop_assert!(sends(&out).is_empty() || sends(&out).len() == 1);
    }

    #[test]
    fn truncated_and_flipped_messages_never_panic(cut in 0usize..200, flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6)) {
        let mut r = router_with(vec![ServiceConfig::web_cache()]);
        let mut c = FakeCache::web_cache(2);
        join(&mut r, &mut c, Instant(0));
        let a = c.addr;
        for mut d in [c.here_i_am(), c.redirect_assign(&[a], [0; 256])] {
            for (i, x) in &flips {
                let len = d.payload.len();
                d.payload[i % len] ^= x;
            }
            let len = d.payload.len();
            d.payload.truncate(len.saturating_sub(cut));
            r.handle_datagram(Instant(1), d);
            drain(&mut r);
        }
    }
}
