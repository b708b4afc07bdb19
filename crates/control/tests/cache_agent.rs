//! Cache agent in virtual time against a scripted router (docs/protocol.md §5.4, §10).

mod cache_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use cache_support::*;
use wccp_control::cache::{
    AssignMethod, CacheAgent, CacheConfig, CacheService, HashFields, Method, PortsAre,
    RouterLinkState, ServiceDefinition,
};
use wccp_control::{DropReason, Event, Instant, Machine, ServiceKey};
use wire::{
    Addr, AltAssignmentBody, Assignment, AssignmentData, AssignmentKey, Capabilities, Capability,
    Command, Message, MessageRepr, ServiceInfo,
};

const SVC0: ServiceKey = ServiceKey {
    dynamic: false,
    id: 0,
};

#[test]
fn first_here_i_am_immediately_then_every_t() {
    let mut a = agent(&[R1, R2], web_cache());
    assert_eq!(a.poll_timeout(), Some(Instant(0)));
    let out = tick(&mut a, 0);
    let h = hias(&out);
    assert_eq!(h.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![R1, R2]);
    for (_, m) in &h {
        assert_eq!(m.version.to_u16(), 0x0200);
        assert_eq!(m.service, ServiceInfo::standard(0));
        assert_eq!(m.identity.addr, Addr::from_ipv4(US));
        assert!(m.identity.flags.unassigned(), "U=1 until assigned");
        match &m.identity.data {
            AssignmentData::Hash(d) => {
                assert_eq!((d.weight, d.status), (10000, 0));
                assert_eq!(d.buckets, [0; 32]);
            }
            other => panic!("hash identity expected, got {other:?}"),
        }
        assert_eq!(m.view.change_number, 1);
        assert_eq!(echoed(m, R1), Some(0));
        assert_eq!(echoed(m, R2), Some(0));
        assert!(m.view.caches.is_empty());
        assert!(
            m.capabilities.is_none(),
            "no Capabilities before the router offers any"
        );
        assert!(m.command.is_none());
    }
    assert_eq!(a.poll_timeout(), Some(Instant(10_000)));
    assert!(tick(&mut a, 9_999).is_empty());
    assert_eq!(hias(&tick(&mut a, 10_000)).len(), 2);
    // Cadence over a minute: exactly one HIA per router per T.
    let all = run_until(&mut a, 60_000);
    let times: Vec<u64> = all
        .iter()
        .filter(|(_, o)| !hias(std::slice::from_ref(o)).is_empty())
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        times,
        vec![20_000, 20_000, 30_000, 30_000, 40_000, 40_000, 50_000, 50_000, 60_000, 60_000]
    );
}

#[test]
fn echoes_receive_id_and_learns_view() {
    let mut a = agent(&[R1, R2], web_cache());
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    r1.receive_id = 106;
    a.handle_datagram(ms(5), r1.isy(US));
    assert!(
        drain(&mut a).is_empty(),
        "first ISY (no caches) changes nothing visible"
    );
    let h = hias(&tick(&mut a, 10_000));
    assert_eq!(echoed(&h[0].1, R1), Some(107));
    assert_eq!(echoed(&h[1].1, R2), Some(0));
    assert_eq!(
        echoed(&h[1].1, R1),
        Some(107),
        "every HIA carries the whole view"
    );
    assert_eq!(h[0].1.view.change_number, 1);

    // The router now lists us and another cache: our view changes once.
    r1.change = 2;
    r1.caches = vec![
        listed(US, 10000, true),
        listed(Ipv4Addr::new(10, 0, 0, 9), 10000, true),
    ];
    a.handle_datagram(ms(10_001), r1.isy(US));
    let out = drain(&mut a);
    assert_eq!(
        events(&out),
        vec![&Event::MembershipChanged {
            service: SVC0,
            change_number: 2
        }]
    );
    let h = hias(&tick(&mut a, 20_000));
    assert_eq!(echoed(&h[0].1, R1), Some(108));
    assert_eq!(h[0].1.view.change_number, 2);
    assert_eq!(
        h[0].1.view.caches,
        vec![
            Addr::from_ipv4(US),
            Addr::from_ipv4(Ipv4Addr::new(10, 0, 0, 9))
        ]
    );
    // Same view again: no new change number.
    a.handle_datagram(ms(20_001), r1.isy(US));
    assert!(events(&drain(&mut a)).is_empty());
    let h = hias(&tick(&mut a, 30_000));
    assert_eq!(h[0].1.view.change_number, 2);
    let st = a.status_at(ms(30_000));
    let r = &st.services[0].routers[0];
    assert_eq!(
        (r.receive_id, r.change_number, r.state),
        (109, 2, RouterLinkState::Joined)
    );
    assert_eq!(r.last_i_see_you_age_ms, Some(9_999));
    assert_eq!(st.services[0].routers[1].state, RouterLinkState::Joining);
}

#[test]
fn drops_what_is_not_for_us() {
    let mut a = agent(&[R1], web_cache());
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    let reason = |a: &mut CacheAgent| match events(&drain(a)).as_slice() {
        [Event::Dropped { reason, .. }] => *reason,
        other => panic!("expected one drop, got {other:?}"),
    };
    // Not in Received-From.
    a.handle_datagram(ms(1), r1.isy(Ipv4Addr::new(10, 0, 0, 77)).with_local(US));
    assert_eq!(reason(&mut a), DropReason::NotForUs);
    // Another service.
    let mut other = r1.clone();
    other.service = ServiceInfo::standard(1);
    a.handle_datagram(ms(2), other.isy(US));
    assert_eq!(reason(&mut a), DropReason::ServiceMismatch);
    // A stranger.
    let mut stranger = FakeRouter::new(Ipv4Addr::new(192, 0, 2, 1));
    a.handle_datagram(ms(3), stranger.isy(US));
    assert_eq!(reason(&mut a), DropReason::NotAllowed);
    // Signed while we expect no security.
    let mut signed = r1.clone();
    signed.password = Some(b"x".to_vec());
    a.handle_datagram(ms(4), signed.isy(US));
    assert_eq!(reason(&mut a), DropReason::Security);
    // Garbage.
    a.handle_datagram(
        ms(5),
        wccp_control::Datagram {
            local: US,
            peer: R1,
            payload: vec![0, 0, 0, 11, 2, 0, 0, 9],
        },
    );
    assert_eq!(reason(&mut a), DropReason::Malformed);
    // A HERE_I_AM sent to a cache.
    let h = hias(&tick(&mut a, 10_000)).remove(0).1;
    a.handle_datagram(ms(10_001), r1.encode(US, &h));
    assert_eq!(reason(&mut a), DropReason::UnexpectedType);
    // None of it was recorded.
    assert_eq!(a.status().services[0].routers[0].receive_id, 0);
}

trait WithLocal {
    fn with_local(self, l: Ipv4Addr) -> Self;
}
impl WithLocal for wccp_control::Datagram {
    fn with_local(mut self, l: Ipv4Addr) -> Self {
        self.local = l;
        self
    }
}

fn cisco_caps() -> Capabilities {
    Capabilities {
        elements: vec![
            Capability::ForwardingMethod(0x3),
            Capability::AssignmentMethod(0x3),
            Capability::PacketReturnMethod(0x3),
            Capability::TransmitT {
                upper: 60_000,
                lower: 500,
            },
            Capability::TimerScale {
                timeout_upper: 5,
                timeout_lower: 1,
                ra_upper: 5,
                ra_lower: 1,
            },
        ],
    }
}

#[test]
fn capability_choice_one_value_per_offered_type() {
    let mut svc = web_cache();
    svc.forwarding = vec![Method::L2, Method::Gre];
    svc.assignment = vec![AssignMethod::Mask, AssignMethod::Hash];
    let mut a = agent(&[R1], svc);
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    r1.caps = Some(cisco_caps());
    a.handle_datagram(ms(1), r1.isy(US));
    let h = hias(&tick(&mut a, 10_000)).remove(0).1;
    assert_eq!(
        h.capabilities.unwrap().elements,
        vec![
            Capability::ForwardingMethod(0x2),
            Capability::AssignmentMethod(0x2),
            Capability::PacketReturnMethod(0x1),
            Capability::TransmitT {
                upper: 0,
                lower: 10_000
            },
            Capability::TimerScale {
                timeout_upper: 0,
                timeout_lower: 1,
                ra_upper: 0,
                ra_lower: 1
            },
        ]
    );
    // Mask chosen: the identity now carries mask data with one set (Cisco rejects zero sets).
    match &h.identity.data {
        AssignmentData::Mask(m) => {
            assert_eq!(m.sets.len(), 1);
            assert_eq!(m.sets[0].mask.dst_addr, Addr(0x1741));
            assert_eq!(m.weight, 10000);
        }
        other => panic!("mask identity expected, got {other:?}"),
    }
    // A router that only offers what we do not accept: stop joining it.
    let mut r1 = FakeRouter::new(R1);
    r1.caps = Some(Capabilities {
        elements: vec![Capability::ForwardingMethod(0x2)],
    });
    let mut b = agent(&[R1, R2], web_cache());
    tick(&mut b, 0);
    b.handle_datagram(ms(1), r1.isy(US));
    assert!(matches!(
        events(&drain(&mut b)).as_slice(),
        [
            Event::Dropped {
                reason: DropReason::NotAllowed,
                ..
            },
            Event::MembershipChanged {
                change_number: 2,
                ..
            }
        ]
    ));
    let st = b.status();
    assert_eq!(
        st.services[0].routers[0].state,
        RouterLinkState::Incompatible
    );
    assert!(st.services[0].routers[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("forwarding"));
    let h = hias(&tick(&mut b, 10_000));
    assert_eq!(h.len(), 1, "no more HIAs to the incompatible router");
    assert_eq!(h[0].0, R2);
    assert_eq!(echoed(&h[0].1, R1), None, "and it left our view");
    assert_eq!(h[0].1.view.change_number, 2, "which is a view change");
}

#[test]
fn capabilities_absent_means_defaults() {
    let mut svc = web_cache();
    svc.forwarding = vec![Method::L2];
    let mut a = agent(&[R1], svc);
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    a.handle_datagram(ms(1), r1.isy(US));
    let st = a.status();
    assert_eq!(
        st.services[0].routers[0].state,
        RouterLinkState::Incompatible,
        "default GRE not enabled"
    );
    let mut b = agent(&[R1], web_cache());
    tick(&mut b, 0);
    b.handle_datagram(ms(1), r1.isy(US));
    let st = b.status();
    assert_eq!(st.services[0].routers[0].forwarding, Some(Method::Gre));
    assert_eq!(
        st.services[0].routers[0].assignment,
        Some(AssignMethod::Hash)
    );
}

#[test]
fn removal_query_three_hias_one_second_apart() {
    let mut a = agent(&[R1, R2], web_cache());
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    a.handle_datagram(ms(1), r1.isy(US));
    tick(&mut a, 10_000);
    a.handle_datagram(ms(13_000), r1.rq(US));
    let now = drain(&mut a);
    let h = hias(&now);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].0, R1);
    assert_eq!(
        echoed(&h[0].1, R1),
        Some(102),
        "echoes the query's receive id"
    );
    let later = run_until(&mut a, 15_500);
    let t: Vec<(u64, Ipv4Addr, Option<u32>)> = later
        .iter()
        .flat_map(|(t, o)| {
            hias(std::slice::from_ref(o))
                .into_iter()
                .map(move |(p, h)| (*t, p, echoed(&h, R1)))
        })
        .collect();
    assert_eq!(t, vec![(14_000, R1, Some(102)), (15_000, R1, Some(102))]);
    // The periodic schedule is unchanged.
    assert_eq!(a.poll_timeout(), Some(ms(20_000)));
    // A query for someone else is dropped.
    let mut q = r1.rq(Ipv4Addr::new(10, 0, 0, 77));
    q.local = US;
    a.handle_datagram(ms(16_000), q);
    assert!(matches!(
        events(&drain(&mut a)).as_slice(),
        [Event::Dropped {
            reason: DropReason::NotForUs,
            ..
        }]
    ));
}

/// A REMOVAL_QUERY with a wrong password, without a digest, or signed where no password is
/// configured is dropped for security: no rapid HERE_I_AMs, the echoed Receive ID and the
/// schedule unchanged. The genuine one is answered at once.
#[test]
fn forged_removal_query_is_dropped_for_security() {
    let mut svc = web_cache();
    svc.password = Some(b"wccpTest".to_vec());
    let mut a = agent(&[R1], svc);
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    r1.password = Some(b"wccpTest".to_vec());
    a.handle_datagram(ms(1), r1.isy(US));
    drain(&mut a);
    tick(&mut a, 10_000);
    let joined = a.status_at(ms(13_000));
    assert_eq!(joined.services[0].routers[0].state, RouterLinkState::Joined);
    assert_eq!(joined.services[0].routers[0].receive_id, 101);
    let schedule = a.poll_timeout();
    assert_eq!(schedule, Some(ms(20_000)));
    for (pw, what) in [
        (Some(&b"wccpTesT"[..]), "wrong password"),
        (None, "no digest"),
    ] {
        let mut forger = r1.clone();
        forger.password = pw.map(<[u8]>::to_vec);
        a.handle_datagram(ms(13_000), forger.rq(US));
        let out = drain(&mut a);
        assert!(sent(&out).is_empty(), "{what}: {out:?}");
        assert!(
            matches!(
                events(&out).as_slice(),
                [Event::Dropped {
                    reason: DropReason::Security,
                    peer: R1,
                    ..
                }]
            ),
            "{what}: {out:?}"
        );
        assert_eq!(a.status_at(ms(13_000)), joined, "{what}: state changed");
        assert_eq!(a.poll_timeout(), schedule, "{what}: a timer was armed");
        assert!(
            run_until(&mut a, 15_500).is_empty(),
            "{what}: rapid HERE_I_AMs"
        );
    }
    // The genuine query: one HERE_I_AM at once, echoing its Receive ID.
    a.handle_datagram(ms(15_500), r1.rq(US));
    let h = hias(&drain(&mut a));
    assert_eq!(h.len(), 1);
    assert_eq!(echoed(&h[0].1, R1), Some(102));

    // Without a password configured, an MD5-signed query is refused too.
    let mut a = agent(&[R1], web_cache());
    tick(&mut a, 0);
    let mut plain = FakeRouter::new(R1);
    a.handle_datagram(ms(1), plain.isy(US));
    drain(&mut a);
    let before = a.status_at(ms(2));
    let mut signed = plain.clone();
    signed.password = Some(b"wccpTest".to_vec());
    a.handle_datagram(ms(2), signed.rq(US));
    let out = drain(&mut a);
    assert!(sent(&out).is_empty(), "{out:?}");
    assert!(matches!(
        events(&out).as_slice(),
        [Event::Dropped {
            reason: DropReason::Security,
            ..
        }]
    ));
    assert_eq!(a.status_at(ms(2)), before);
}

/// Joins `routers` (already ticked at 0) listing `caches` in every router's view.
fn join(a: &mut CacheAgent, routers: &mut [FakeRouter], t: u64, caches: &[Ipv4Addr]) {
    for r in routers.iter_mut() {
        r.caches = caches.iter().map(|&c| listed(c, 10000, true)).collect();
        a.handle_datagram(ms(t), r.isy(US));
    }
}

#[test]
fn designated_is_lowest_among_caches_seen_by_every_router() {
    let low = Ipv4Addr::new(10, 0, 0, 3);
    let mut a = agent(&[R1, R2], web_cache());
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    let mut r2 = FakeRouter::new(R2);
    r1.caches = vec![listed(low, 10000, true), listed(US, 10000, true)];
    r2.caches = vec![listed(US, 10000, true)];
    a.handle_datagram(ms(1), r1.isy(US));
    assert!(
        !a.is_designated(SVC0),
        "only R1 answered so far: {low} is lowest there"
    );
    a.handle_datagram(ms(2), r2.isy(US));
    assert!(a.is_designated(SVC0), "{low} is not seen by R2");
    r2.caches.push(listed(low, 10000, true));
    a.handle_datagram(ms(3), r2.isy(US));
    assert!(!a.is_designated(SVC0));
    assert_eq!(a.status().services[0].designated_cache, Some(low));
}

#[test]
fn election_compares_addresses_numerically() {
    // Squid compares byte-reversed words and would elect 10.0.0.5 here; we elect 9.255.0.200.
    let other = Ipv4Addr::new(9, 255, 0, 200);
    let mut a = agent(&[R1], web_cache());
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    r1.caches = vec![listed(US, 10000, true), listed(other, 10000, true)];
    a.handle_datagram(ms(1), r1.isy(US));
    assert!(!a.is_designated(SVC0));
    assert_eq!(a.status().services[0].designated_cache, Some(other));
    // Nothing is assigned by a non-designated cache.
    assert!(ras_until(&mut a, 100_000).is_empty());
}

#[test]
fn redirect_assign_after_exactly_one_and_a_half_t() {
    let mut a = agent(&[R1, R2], web_cache());
    tick(&mut a, 0);
    let mut rs = [FakeRouter::new(R1), FakeRouter::new(R2)];
    join(&mut a, &mut rs, 1, &[]);
    tick(&mut a, 10_000);
    rs[0].change = 2;
    rs[1].change = 5;
    join(&mut a, &mut rs, 10_003, &[US]);
    assert!(a.is_designated(SVC0));
    let before: Vec<_> = run_until(&mut a, 25_002)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert!(ras(&before).is_empty(), "nothing before 15 s of stability");
    let out = tick(&mut a, 25_003);
    let r = ras(&out);
    assert_eq!(r.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![R1, R2]);
    assert!(events(&out).contains(&&Event::Assignment {
        service: SVC0,
        key_address: US,
        key_change: 1
    }));
    for (_, ra) in &r {
        let Assignment::Hash(info) = &ra.assignment else {
            panic!("hash expected")
        };
        assert_eq!(
            info.key,
            AssignmentKey {
                addr: Addr::from_ipv4(US),
                change_number: 1
            }
        );
        assert_eq!(info.routers.len(), 2);
        assert_eq!(info.routers[0].addr, Addr::from_ipv4(R1));
        assert_eq!(info.routers[0].receive_id, rs[0].receive_id);
        assert_eq!(info.routers[0].change_number, 2);
        assert_eq!(info.routers[1].receive_id, rs[1].receive_id);
        assert_eq!(info.routers[1].change_number, 5);
        assert_eq!(info.hash.caches, vec![Addr::from_ipv4(US)]);
        assert!(info.hash.buckets.iter().all(|&b| b == 0));
        assert_eq!(
            ra.buffer_len(),
            8 + 8 + 28 + 4 + 8 + 4 + 24 + 4 + 4 + 256,
            "docs/protocol.md §6 size"
        );
    }
    // No periodic repeats while nothing changes and the routers reflect our key.
    for r in rs.iter_mut() {
        r.key = AssignmentKey {
            addr: Addr::from_ipv4(US),
            change_number: 1,
        };
    }
    let mut quiet = Vec::new();
    for t in [30_000u64, 40_000, 50_000, 60_000] {
        quiet.extend(tick(&mut a, t));
        join(&mut a, &mut rs, t + 1, &[US]);
        quiet.extend(drain(&mut a));
    }
    assert!(ras(&quiet).is_empty());

    // A membership change (second cache) re-arms the 15 s timer; the new assignment gets key 2.
    let c2 = Ipv4Addr::new(10, 0, 0, 8);
    rs[0].change = 3;
    rs[1].change = 6;
    join(&mut a, &mut rs, 62_000, &[US, c2]);
    let out: Vec<_> = run_until(&mut a, 77_000).into_iter().collect();
    let when: Vec<u64> = out
        .iter()
        .filter(|(_, o)| !ras(std::slice::from_ref(o)).is_empty())
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(when, vec![77_000, 77_000]);
    let all: Vec<_> = out.into_iter().map(|(_, o)| o).collect();
    let Assignment::Hash(info) = &ras(&all)[0].1.assignment else {
        panic!()
    };
    assert_eq!(info.key.change_number, 2);
    assert_eq!(
        info.hash.caches,
        vec![Addr::from_ipv4(US), Addr::from_ipv4(c2)]
    );
    assert_eq!(&info.hash.buckets[..4], &[0, 1, 0, 1]);
    assert_eq!(info.routers[0].change_number, 3);
    let st = a.status();
    assert_eq!(
        st.services[0]
            .buckets
            .iter()
            .map(|b| b.buckets)
            .collect::<Vec<_>>(),
        vec![128, 128]
    );
}

#[test]
fn view_change_during_wait_restarts_the_timer() {
    let mut a = agent(&[R1], web_cache());
    tick(&mut a, 0);
    let mut rs = [FakeRouter::new(R1)];
    rs[0].change = 2;
    join(&mut a, &mut rs, 1_000, &[US]);
    rs[0].change = 3;
    join(&mut a, &mut rs, 12_000, &[US, Ipv4Addr::new(10, 0, 0, 6)]);
    let out = run_until(&mut a, 40_000);
    let when: Vec<u64> = out
        .iter()
        .filter(|(_, o)| !ras(std::slice::from_ref(o)).is_empty())
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(when, vec![27_000]);
}

#[test]
fn resend_on_key_mismatch_at_most_once_per_t() {
    let mut a = agent(&[R1, R2], web_cache());
    tick(&mut a, 0);
    let mut rs = [FakeRouter::new(R1), FakeRouter::new(R2)];
    join(&mut a, &mut rs, 1, &[US]);
    assert_eq!(ras_until(&mut a, 15_001).len(), 2);
    let ours = AssignmentKey {
        addr: Addr::from_ipv4(US),
        change_number: 1,
    };
    // R1 accepted, R2 lost it.
    rs[0].key = ours;
    // Too soon (< T after sending): nothing.
    a.handle_datagram(ms(20_000), rs[1].isy(US));
    assert!(ras(&drain(&mut a)).is_empty());
    // After T: resent to R2 only, same key, fresh router elements.
    a.handle_datagram(ms(25_001), rs[0].isy(US));
    assert!(ras(&drain(&mut a)).is_empty());
    a.handle_datagram(ms(25_002), rs[1].isy(US));
    let r = ras(&drain(&mut a));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, R2);
    let Assignment::Hash(info) = &r[0].1.assignment else {
        panic!()
    };
    assert_eq!(info.key, ours);
    assert_eq!(info.routers[1].receive_id, rs[1].receive_id);
    // Again too soon.
    a.handle_datagram(ms(30_000), rs[1].isy(US));
    assert!(ras(&drain(&mut a)).is_empty());
    // R2 now reflects our key: no more resends.
    rs[1].key = ours;
    a.handle_datagram(ms(40_000), rs[1].isy(US));
    assert!(ras(&drain(&mut a)).is_empty());
}

#[test]
fn md5_everything_signed_and_checked() {
    let mut svc = web_cache();
    svc.password = Some(b"wccpTest".to_vec());
    let mut a = agent(&[R1], svc);
    let out = tick(&mut a, 0);
    let d = sent(&out)[0];
    wire::verify(&d.payload, b"wccpTest").unwrap();
    assert!(wire::verify(&d.payload, b"wrong").is_err());
    let mut r1 = FakeRouter::new(R1);
    r1.password = Some(b"wrong".to_vec());
    r1.change = 2;
    r1.caches = vec![listed(US, 10000, true)];
    a.handle_datagram(ms(1), r1.isy(US));
    assert!(matches!(
        events(&drain(&mut a)).as_slice(),
        [Event::Dropped {
            reason: DropReason::Security,
            ..
        }]
    ));
    // Unsigned is refused too.
    r1.password = None;
    a.handle_datagram(ms(2), r1.isy(US));
    assert!(matches!(
        events(&drain(&mut a)).as_slice(),
        [Event::Dropped {
            reason: DropReason::Security,
            ..
        }]
    ));
    r1.password = Some(b"wccpTest".to_vec());
    a.handle_datagram(ms(3), r1.isy(US));
    assert_eq!(
        a.status().services[0].routers[0].state,
        RouterLinkState::Joined
    );
    let out: Vec<_> = run_until(&mut a, 15_003)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    let ra = sent(&out)
        .into_iter()
        .find(|d| matches!(Message::parse(&d.payload), Ok(Message::RedirectAssign(_))))
        .unwrap();
    wire::verify(&ra.payload, b"wccpTest").unwrap();
}

#[test]
fn mask_assignment_uses_alternate_assignment() {
    let mut svc = CacheService::new(ServiceDefinition {
        dynamic: true,
        id: 80,
        priority: 240,
        protocol: 6,
        ports: vec![80, 8080],
        ports_are: PortsAre::Destination,
        hash: HashFields::SRC_IP,
        alt_hash: HashFields::NONE,
    });
    svc.assignment = vec![AssignMethod::Mask];
    let info = svc.definition.service_info();
    assert_eq!(info.flags.bits(), 0x0011);
    let mut a = agent(&[R1], svc);
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    r1.service = info;
    r1.caps = Some(Capabilities {
        elements: vec![Capability::AssignmentMethod(0x3)],
    });
    let c2 = Ipv4Addr::new(10, 0, 0, 200);
    r1.caches = vec![listed(US, 10000, true), listed(c2, 10000, true)];
    a.handle_datagram(ms(1), r1.isy(US));
    let out: Vec<_> = run_until(&mut a, 15_001)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    let r = ras(&out);
    assert_eq!(r.len(), 1);
    let Assignment::Alternate(alt) = &r[0].1.assignment else {
        panic!("alternate expected")
    };
    let AltAssignmentBody::Mask(sets) = &alt.body else {
        panic!("mask body expected")
    };
    assert_eq!(sets.len(), 1);
    assert_eq!(
        sets[0].mask.src_addr,
        Addr(0x1741),
        "src-IP flag: mask on source address"
    );
    assert_eq!(sets[0].values.len(), 64);
    assert_eq!(sets[0].values[0].cache, Addr::from_ipv4(US));
    assert_eq!(sets[0].values[1].cache, Addr::from_ipv4(c2));
    assert_eq!(sets[0].values[1].src_addr, Addr(0x1));
    assert_eq!(sets[0].values[63].src_addr, Addr(0x1741));
}

#[test]
fn u_flag_clears_once_a_router_reports_us_assigned() {
    let mut a = agent(&[R1], web_cache());
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    r1.caches = vec![
        listed(Ipv4Addr::new(10, 0, 0, 1), 10000, false),
        listed(US, 10000, false),
    ];
    a.handle_datagram(ms(1), r1.isy(US));
    let h = hias(&tick(&mut a, 10_000)).remove(0).1;
    assert!(!h.identity.flags.unassigned());
}

#[test]
fn router_silent_for_three_t_goes_back_to_seed() {
    let mut a = agent(&[R1], web_cache());
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    r1.caches = vec![listed(US, 10000, true)];
    a.handle_datagram(ms(1), r1.isy(US));
    run_until(&mut a, 30_000);
    assert_eq!(
        a.status().services[0].routers[0].state,
        RouterLinkState::Joined
    );
    let out: Vec<_> = run_until(&mut a, 30_001)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    let st = a.status();
    assert_eq!(st.services[0].routers[0].state, RouterLinkState::Joining);
    assert!(st.services[0].caches_seen.is_empty());
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::MembershipChanged { .. })));
    // HERE_I_AMs continue, echoing 0 again.
    let h = hias(&tick(&mut a, 40_000));
    assert_eq!(echoed(&h[0].1, R1), Some(0));
}

#[test]
fn shutdown_sends_command_and_stops() {
    let mut a = agent(&[R1, R2], web_cache());
    tick(&mut a, 0);
    a.shutdown(ms(500));
    let h = hias(&drain(&mut a));
    assert_eq!(h.len(), 2);
    for (_, m) in &h {
        assert_eq!(
            m.command.as_ref().unwrap().commands,
            vec![Command::Shutdown(Addr::from_ipv4(US))]
        );
    }
    assert_eq!(a.poll_timeout(), None);
    assert!(tick(&mut a, 100_000).is_empty());
}

#[test]
fn config_errors_are_collected() {
    let mut svc = CacheService::new(ServiceDefinition {
        dynamic: true,
        id: 90,
        priority: 0,
        protocol: 6,
        ports: (1..=9).collect(),
        ports_are: PortsAre::Destination,
        hash: HashFields::NONE,
        alt_hash: HashFields::NONE,
    });
    svc.password = Some(b"123456789".to_vec());
    let cfg = CacheConfig {
        address: Ipv4Addr::UNSPECIFIED,
        routers: vec![],
        services: vec![svc],
        transmit_t: Duration::from_millis(100),
    };
    let e = CacheAgent::new(cfg).unwrap_err();
    assert_eq!(e.problems.len(), 6, "{e}");
    let s = e.to_string();
    for word in [
        "unicast",
        "no routers",
        "transmit_t",
        "password",
        "ports",
        "primary hash",
    ] {
        assert!(s.contains(word), "{word} missing from {s}");
    }
}

#[test]
fn slow_start_ramps_a_joining_cache() {
    use assign::spread::SlowStart;
    let mut svc = web_cache();
    svc.slow_start = Some(SlowStart {
        duration: Duration::from_secs(60),
        initial_permille: 100,
    });
    let mut a = agent(&[R1], svc);
    tick(&mut a, 0);
    let mut rs = [FakeRouter::new(R1)];
    join(&mut a, &mut rs, 1, &[US]);
    run_until(&mut a, 15_001);
    assert_eq!(a.assignment(SVC0).unwrap().0, vec![US]);
    // A second cache joins: it starts at 10 % of its weight and ramps up every T.
    let newcomer = Ipv4Addr::new(10, 0, 0, 9);
    rs[0].change = 2;
    join(&mut a, &mut rs, 20_000, &[US, newcomer]);
    let mut shares = Vec::new();
    for t in (25_000..=120_000).step_by(5_000) {
        run_until(&mut a, t);
        if t % 10_000 == 0 {
            // The router keeps answering (same membership).
            join(&mut a, &mut rs, t, &[US, newcomer]);
            drain(&mut a);
        }
        if let Some((c, b)) = a.assignment(SVC0) {
            if c.len() == 2 {
                shares.push(b.iter().filter(|&&x| x == 1).count());
            }
        }
    }
    assert!(shares[0] <= 64, "starts small: {shares:?}");
    assert!(
        shares.windows(2).all(|w| w[0] <= w[1]),
        "never shrinks: {shares:?}"
    );
    assert_eq!(
        *shares.last().unwrap(),
        128,
        "full weight after the ramp: {shares:?}"
    );
}

#[test]
fn reordered_older_i_see_you_is_stale() {
    let mut a = agent(&[R1], web_cache());
    tick(&mut a, 0);
    let mut r1 = FakeRouter::new(R1);
    let old = r1.isy(US);
    r1.change = 2;
    r1.caches = vec![listed(US, 10000, true)];
    let new = r1.isy(US);
    a.handle_datagram(ms(1), new.clone());
    drain(&mut a);
    a.handle_datagram(ms(2), old);
    assert!(matches!(
        events(&drain(&mut a)).as_slice(),
        [Event::Dropped {
            reason: DropReason::Stale,
            ..
        }]
    ));
    let st = a.status();
    assert_eq!(
        (
            st.services[0].routers[0].receive_id,
            st.services[0].routers[0].change_number
        ),
        (102, 2)
    );
    // A duplicate of the latest is harmless; a restarted router (ids from 1 again) is accepted.
    a.handle_datagram(ms(3), new);
    assert!(events(&drain(&mut a)).is_empty());
    let mut restarted = FakeRouter::new(R1);
    restarted.receive_id = 0;
    restarted.caches = vec![listed(US, 10000, true)];
    a.handle_datagram(ms(4), restarted.isy(US));
    assert!(matches!(
        events(&drain(&mut a)).as_slice(),
        [Event::Dropped {
            reason: DropReason::Stale,
            ..
        }]
    ));
    a.handle_datagram(ms(10_004), restarted.isy(US));
    drain(&mut a);
    assert_eq!(
        a.status().services[0].routers[0].receive_id,
        2,
        "second low id in a row: restart"
    );
}

#[test]
fn two_services_run_independently() {
    let dynamic = CacheService::new(ServiceDefinition {
        dynamic: true,
        id: 80,
        priority: 240,
        protocol: 6,
        ports: vec![80, 8080],
        ports_are: PortsAre::Destination,
        hash: HashFields::SRC_IP,
        alt_hash: HashFields::NONE,
    });
    let info80 = dynamic.definition.service_info();
    let cfg = CacheConfig::new(US, vec![R1], vec![web_cache(), dynamic]);
    let mut a = CacheAgent::new(cfg).unwrap();
    let h = hias(&tick(&mut a, 0));
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].1.service, ServiceInfo::standard(0));
    assert_eq!(h[1].1.service, info80);
    // Only service 80's router lists us: only it gets an assignment.
    let mut r80 = FakeRouter::new(R1);
    r80.service = info80;
    r80.caches = vec![listed(US, 10000, true)];
    a.handle_datagram(ms(1), r80.isy(US));
    let out: Vec<_> = run_until(&mut a, 15_001)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    let r = ras(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.service, info80);
    assert!(a.is_designated(ServiceKey {
        dynamic: true,
        id: 80
    }));
    assert!(!a.is_designated(SVC0));
    let st = a.status();
    assert_eq!(st.services.len(), 2);
    assert_eq!(st.services[0].service, "standard 0");
    assert_eq!(st.services[1].service, "dynamic 80");
    assert_eq!(st.services[1].routers[0].receive_id, 101);
    assert_eq!(st.services[0].routers[0].receive_id, 0);
}

#[test]
fn status_is_serialisable() {
    fn serialisable<T: serde::Serialize>(_: &T) {}
    let a = agent(&[R1], web_cache());
    let st = a.status();
    serialisable(&st);
    assert_eq!(st.address, US);
    assert_eq!(st.services[0].routers[0].state, RouterLinkState::Joining);
    assert!(!st.services[0].designated);
    assert_eq!(st.services[0].designated_cache, None);
}

fn is_shutdown(h: &wire::HereIAm) -> bool {
    h.command
        .as_ref()
        .is_some_and(|c| c.commands == vec![Command::Shutdown(Addr::from_ipv4(US))])
}

/// Two services, two routers, joined and assigned as the only cache.
fn joined_two_by_two() -> (CacheAgent, Vec<FakeRouter>, ServiceInfo) {
    let dynamic = CacheService::new(ServiceDefinition {
        dynamic: true,
        id: 80,
        priority: 0,
        protocol: 6,
        ports: vec![80],
        ports_are: PortsAre::Destination,
        hash: HashFields::DST_IP,
        alt_hash: HashFields::NONE,
    });
    let info80 = dynamic.definition.service_info();
    let cfg = CacheConfig::new(US, vec![R1, R2], vec![web_cache(), dynamic]);
    let mut a = CacheAgent::new(cfg).unwrap();
    tick(&mut a, 0);
    let mut routers = Vec::new();
    for (addr, info) in [
        (R1, ServiceInfo::standard(0)),
        (R2, ServiceInfo::standard(0)),
        (R1, info80),
        (R2, info80),
    ] {
        let mut r = FakeRouter::new(addr);
        r.service = info;
        r.caches = vec![listed(US, 10000, true)];
        a.handle_datagram(ms(1), r.isy(US));
        routers.push(r);
    }
    drain(&mut a);
    assert!(a.is_designated(SVC0));
    (a, routers, info80)
}

#[test]
fn unhealthy_leaves_every_group_at_once_with_shutdown() {
    let (mut a, mut routers, info80) = joined_two_by_two();
    // The designated cache assigned (1.5 T later).
    assert_eq!(ras_until(&mut a, 15_001).len(), 4);
    assert!(a.healthy());
    a.set_healthy(ms(16_000), false);
    let out = drain(&mut a);
    let h = hias(&out);
    // One SHUTDOWN per service per router, nothing else sent.
    assert_eq!(h.len(), 4, "{out:?}");
    assert_eq!(sent(&out).len(), 4);
    assert!(h.iter().all(|(_, m)| is_shutdown(m)), "{h:?}");
    for (peer, svc) in [
        (R1, ServiceInfo::standard(0)),
        (R2, ServiceInfo::standard(0)),
        (R1, info80),
        (R2, info80),
    ] {
        assert!(
            h.iter().any(|(p, m)| *p == peer && m.service == svc),
            "no SHUTDOWN to {peer} for {svc:?}: {h:?}"
        );
    }
    let st = a.status_at(ms(16_500));
    assert!(!st.health.healthy);
    assert_eq!((st.health.leaves, st.health.rejoins), (1, 0));
    assert_eq!(st.health.changed_ms_ago, Some(500));
    for s in &st.services {
        assert!(!s.designated, "{s:?}");
        assert_eq!(s.assignment_key, None, "{s:?}");
        for r in &s.routers {
            assert_eq!(r.state, RouterLinkState::Shutdown, "{r:?}");
            assert!(
                r.reason.as_deref().unwrap_or("").contains("health"),
                "{r:?}"
            );
            assert_eq!(r.receive_id, 0, "forgotten: {r:?}");
        }
    }
    // Unhealthy: no HERE_I_AM, no timer, whatever the routers send.
    assert_eq!(a.poll_timeout(), None);
    assert!(tick(&mut a, 100_000).is_empty());
    let before = a.status_at(ms(100_001));
    for r in &mut routers {
        a.handle_datagram(ms(100_001), r.isy(US));
        a.handle_datagram(ms(100_001), r.rq(US));
    }
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.status_at(ms(100_001)), before);
    // Saying it again changes nothing.
    a.set_healthy(ms(100_002), false);
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.status().health.leaves, 1);
    // SIGTERM while left: no second SHUTDOWN.
    a.shutdown(ms(100_003));
    assert!(sent(&drain(&mut a)).is_empty());
}

#[test]
fn healthy_again_rejoins_and_assigns_again() {
    let (mut a, mut routers, _) = joined_two_by_two();
    run_until(&mut a, 15_001);
    a.set_healthy(ms(16_000), false);
    drain(&mut a);
    tick(&mut a, 30_000);
    a.set_healthy(ms(30_000), true);
    let out = drain(&mut a);
    let h = hias(&out);
    // HERE_I_AMs at once to every router of every service, no SHUTDOWN, echoing nothing yet.
    assert_eq!(h.len(), 4, "{out:?}");
    for (peer, m) in &h {
        assert!(!is_shutdown(m), "{m:?}");
        assert_eq!(echoed(m, *peer), Some(0));
    }
    let st = a.status_at(ms(30_000));
    assert!(st.health.healthy);
    assert_eq!((st.health.leaves, st.health.rejoins), (1, 1));
    assert!(st
        .services
        .iter()
        .flat_map(|s| &s.routers)
        .all(|r| r.state == RouterLinkState::Joining && r.reason.is_none()));
    // Then every T, as at start.
    assert_eq!(a.poll_timeout(), Some(ms(40_000)));
    assert_eq!(hias(&tick(&mut a, 40_000)).len(), 4);
    // The routers answer: joined again, and the designated cache assigns again 1.5 T later.
    for r in &mut routers {
        a.handle_datagram(ms(40_001), r.isy(US));
    }
    drain(&mut a);
    assert!(a
        .status()
        .services
        .iter()
        .flat_map(|s| &s.routers)
        .all(|r| r.state == RouterLinkState::Joined));
    assert!(a.is_designated(SVC0));
    let out: Vec<_> = run_until(&mut a, 55_001)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    let r = ras(&out);
    assert_eq!(r.len(), 4, "{out:?}");
    // A new Assignment Key change number: the routers take it over the old one.
    let Assignment::Hash(info) = &r[0].1.assignment else {
        panic!("{:?}", r[0].1.assignment)
    };
    assert_eq!(info.key.change_number, 2);
}
