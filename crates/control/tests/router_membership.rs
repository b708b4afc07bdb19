//! Router membership in virtual time (patent FIG. 4-5, docs/protocol.md 5): a scripted cache feeds
//! real encoded messages; every transition and timer is checked on the wire output.

mod router_support;

use assign::hash::FlowKey;
use assign::table::Lookup;
use router_support::*;
use wccp_control::router::{NotUsable, ServiceConfig};
use wccp_control::{Event, Instant, Machine};
use wire::{Capabilities, Capability, MessageRepr, RouterAssignment};

fn web_router() -> wccp_control::router::Router {
    router_with(vec![ServiceConfig::web_cache()])
}

#[test]
fn first_here_i_am_gets_empty_view_with_nonzero_change() {
    let mut r = web_router();
    let mut c = FakeCache::web_cache(2);
    let out = feed(&mut r, secs(1), c.here_i_am());
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert_eq!(component_types(&s[0].payload), vec![0, 1, 2, 4, 8]);
    assert_eq!(&s[0].payload[4..6], &[2, 0], "version 0x0200 mirrored");
    let isy = c.hear(&s[0]);
    assert_ne!(isy.identity.router.receive_id, 0);
    assert_eq!(isy.identity.router.addr.to_ipv4(), ROUTER);
    assert_eq!(isy.identity.sent_to.to_ipv4(), ROUTER);
    assert_eq!(
        isy.identity.received_from,
        vec![wire::Addr::from_ipv4(c.addr)]
    );
    assert_ne!(isy.view.change_number, 0);
    assert!(isy.view.routers.is_empty());
    assert!(isy.view.caches.is_empty());
    assert_eq!(isy.view.key, wire::AssignmentKey::default());
    assert!(publishes(&out).is_empty());
    let st = r.status();
    assert_eq!(
        st.services[0].caches[0].reason,
        Some(NotUsable::BadReceiveId)
    );
    assert!(!st.services[0].caches[0].usable);
}

#[test]
fn echo_makes_cache_usable_and_change_moves_once() {
    let mut r = web_router();
    let mut c = FakeCache::web_cache(2);
    let first = c.hear(&sends(&feed(&mut r, secs(1), c.here_i_am()))[0]);
    let n = first.view.change_number;
    let out = feed(&mut r, secs(11), c.here_i_am());
    let isy = c.hear(&sends(&out)[0]);
    assert_eq!(isy.view.change_number, n + 1);
    assert_eq!(
        isy.identity.router.receive_id,
        first.identity.router.receive_id + 1
    );
    assert_eq!(isy.view.routers, vec![wire::Addr::from_ipv4(ROUTER)]);
    assert_eq!(
        isy.view.caches,
        vec![c.identity()],
        "identity element copied from the HIA"
    );
    assert!(events(&out).contains(&Event::MembershipChanged {
        service: web_cache_key(),
        change_number: n + 1
    }));
    // Repeated HIAs: change number stable, receive id +1 each.
    let mut rid = isy.identity.router.receive_id;
    for t in [21, 31, 41, 51] {
        let out = feed(&mut r, secs(t), c.here_i_am());
        assert!(!events(&out)
            .iter()
            .any(|e| matches!(e, Event::MembershipChanged { .. })));
        let isy = c.hear(&sends(&out)[0]);
        assert_eq!(isy.view.change_number, n + 1);
        assert_eq!(isy.identity.router.receive_id, rid + 1);
        rid += 1;
    }
    let st = r.status();
    assert!(st.services[0].caches[0].usable);
    assert_eq!(st.services[0].caches[0].reason, None);
    assert_eq!(st.services[0].caches[0].weight, 10_000);
    assert_eq!(st.services[0].change_number, n + 1);
    assert_eq!(st.services[0].receive_id, rid);
    assert_eq!(st.services[0].counters.messages_in, 6);
    assert_eq!(st.services[0].counters.messages_out, 6);
}

#[test]
fn wrong_echo_removes_a_usable_cache_fig5() {
    let mut r = web_router();
    let mut c = FakeCache::web_cache(2);
    join(&mut r, &mut c, secs(1));
    let n = c.change_number;
    // FIG. 5 op. 510 fails -> op. 518 -> FIG. 4 op. 420/411.
    let mut wrong = c.clone();
    wrong.receive_id += 7;
    let out = feed(&mut r, secs(11), wrong.here_i_am());
    let isy = c.hear(&sends(&out)[0]);
    assert_eq!(isy.view.change_number, n + 1);
    assert!(isy.view.caches.is_empty());
    assert_eq!(
        r.status().services[0].caches[0].reason,
        Some(NotUsable::BadReceiveId)
    );
    // The taught id brings it back.
    let isy = c.hear(&sends(&feed(&mut r, secs(12), c.here_i_am()))[0]);
    assert_eq!(isy.view.change_number, n + 2);
    assert_eq!(isy.view.caches.len(), 1);
}

#[test]
fn duplicated_or_reordered_hia_does_not_evict() {
    let mut r = web_router();
    let mut c = FakeCache::web_cache(2);
    join(&mut r, &mut c, secs(1));
    let n = c.change_number;
    let hia = c.here_i_am();
    c.hear(&sends(&feed(&mut r, secs(11), hia.clone()))[0]);
    // The network delivers the same HIA again: it echoes an ID we sent before the last one.
    let out = feed(&mut r, secs(11), hia);
    assert!(!events(&out)
        .iter()
        .any(|e| matches!(e, Event::MembershipChanged { .. })));
    let isy = c.hear(&sends(&out)[0]);
    assert_eq!(isy.view.change_number, n);
    assert_eq!(isy.view.caches.len(), 1);
    // An ID we never sent is still invalid.
    let mut wrong = c.clone();
    wrong.receive_id = 999;
    let isy = c.hear(&sends(&feed(&mut r, secs(12), wrong.here_i_am()))[0]);
    assert!(isy.view.caches.is_empty());
}

#[test]
fn echo_must_name_this_router() {
    let mut r = web_router();
    let mut c = FakeCache::web_cache(2);
    c.hear(&sends(&feed(&mut r, secs(1), c.here_i_am()))[0]);
    let rid = c.receive_id;
    let d = c.here_i_am_with(|h| {
        h.view.routers[0].addr = wire::Addr::from_ipv4(std::net::Ipv4Addr::new(10, 9, 9, 9));
        h.view.routers[0].receive_id = rid;
    });
    let isy = c.hear(&sends(&feed(&mut r, secs(2), d))[0]);
    assert!(
        isy.view.caches.is_empty(),
        "a view not listing us is not an echo"
    );
}

fn full_buckets() -> [u8; 256] {
    [0u8; 256]
}

/// Joined at t=1 and t=11, assignment accepted at t=26.
fn assigned() -> (wccp_control::router::Router, FakeCache) {
    let mut r = web_router();
    let mut c = FakeCache::web_cache(2);
    c.hear(&sends(&feed(&mut r, secs(1), c.here_i_am()))[0]);
    c.hear(&sends(&feed(&mut r, secs(11), c.here_i_am()))[0]);
    c.hear(&sends(&feed(&mut r, secs(21), c.here_i_am()))[0]);
    let addr = c.addr;
    let out = feed(&mut r, secs(26), c.redirect_assign(&[addr], full_buckets()));
    let p = publishes(&out);
    assert_eq!(p.len(), 1, "{out:?}");
    let t = p[0].1.clone().expect("a table");
    assert!(matches!(
        t.lookup(&FlowKey::new(1, 2, 3, 80)),
        Lookup::Redirect { target: 0, .. }
    ));
    assert!(t.is_member(u32::from(addr)));
    assert!(events(&out).contains(&Event::Assignment {
        service: web_cache_key(),
        key_address: addr,
        key_change: 1
    }));
    (r, c)
}

#[test]
fn assignment_reflected_in_view() {
    let (mut r, mut c) = assigned();
    let isy = c.hear(&sends(&feed(&mut r, secs(31), c.here_i_am()))[0]);
    assert_eq!(isy.view.key.addr.to_ipv4(), c.addr);
    assert_eq!(isy.view.key.change_number, 1);
    let st = r.status_at(secs(31));
    let a = st.services[0].assignment.clone().expect("assignment");
    assert_eq!(
        (a.address, a.change_number, a.method, a.age_ms),
        (c.addr, 1, "hash", 5_000)
    );
    assert_eq!(st.services[0].caches[0].buckets, 256);
}

#[test]
fn removal_query_at_25s_removal_at_30s_then_flush() {
    let (mut r, c) = assigned();
    // Last HIA at t=21: query due at 46, removal at 51.
    assert_eq!(r.poll_timeout(), Some(secs(46)));
    assert!(sends(&tick(&mut r, secs(45))).is_empty());
    let out = tick(&mut r, secs(46));
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert_eq!(component_types(&s[0].payload), vec![0, 1, 7]);
    let rq = wire::RemovalQuery::parse(&s[0].payload).expect("RQ");
    assert_eq!(rq.query.receive_id, c.receive_id + 1, "previous ISY id + 1");
    assert_eq!(rq.query.router.to_ipv4(), ROUTER);
    assert_eq!(rq.query.sent_to.to_ipv4(), ROUTER);
    assert_eq!(rq.query.target.to_ipv4(), c.addr);
    assert_eq!((s[0].local, s[0].peer), (ROUTER, c.addr));
    // Only one query.
    assert!(sends(&tick(&mut r, secs(50))).is_empty());
    let out = tick(&mut r, secs(51));
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::MembershipChanged { .. })));
    let p = publishes(&out);
    assert_eq!(p.len(), 1);
    let t = p[0]
        .1
        .clone()
        .expect("table republished without the cache's buckets");
    assert_eq!(t.lookup(&FlowKey::new(1, 2, 3, 80)), Lookup::Forward);
    let st = r.status();
    assert_eq!(st.services[0].caches[0].reason, Some(NotUsable::TimedOut));
    // 5 * RA_TIMER_BASE_T after that change: flushed.
    assert_eq!(r.poll_timeout(), Some(secs(101)));
    let out = tick(&mut r, secs(101));
    assert_eq!(publishes(&out), vec![(web_cache_key(), None)]);
    assert!(r.status().services[0].assignment.is_none());
}

#[test]
fn answering_the_query_keeps_the_cache() {
    let (mut r, mut c) = assigned();
    let rq = wire::RemovalQuery::parse(&sends(&tick(&mut r, secs(46)))[0].payload).unwrap();
    // The cache echoes the query's Receive ID (ATS does).
    c.receive_id = rq.query.receive_id;
    let out = feed(&mut r, secs(47), c.here_i_am());
    let isy = c.hear(&sends(&out)[0]);
    assert_eq!(isy.view.caches.len(), 1);
    assert!(publishes(&out).is_empty());
    assert!(publishes(&tick(&mut r, secs(60))).is_empty());
    assert!(r.status().services[0].caches[0].usable);
}

#[test]
fn flush_50s_after_change_without_assignment() {
    let (mut r, mut c) = assigned();
    let mut d = FakeCache::web_cache(3);
    join(&mut r, &mut d, secs(30));
    let n = d.change_number;
    // Cache 2 keeps talking; no new assignment.
    for t in [31, 41, 51, 61, 71] {
        c.hear(&sends(&feed(&mut r, secs(t), c.here_i_am()))[0]);
        d.hear(&sends(&feed(&mut r, secs(t), d.here_i_am()))[0]);
    }
    assert_eq!(c.change_number, n, "no change while nothing changes");
    assert!(publishes(&tick(&mut r, secs(79))).is_empty());
    let out = tick(&mut r, secs(80));
    assert_eq!(publishes(&out), vec![(web_cache_key(), None)]);
    let isy = c.hear(&sends(&feed(&mut r, secs(81), c.here_i_am()))[0]);
    assert_eq!(
        isy.view.key,
        wire::AssignmentKey::default(),
        "key cleared after a flush"
    );
}

#[test]
fn new_assignment_cancels_flush() {
    let (mut r, mut c) = assigned();
    let mut d = FakeCache::web_cache(3);
    join(&mut r, &mut d, secs(30));
    c.hear(&sends(&feed(&mut r, secs(31), c.here_i_am()))[0]);
    let mut b = [0u8; 256];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (i % 2) as u8;
    }
    let (ca, da) = (c.addr, d.addr);
    let out = feed(&mut r, secs(45), c.redirect_assign(&[ca, da], b));
    let t = publishes(&out)[0].1.clone().unwrap();
    assert_eq!(t.share_counts(), vec![128, 128]);
    for t in [41, 51, 61, 71] {
        c.hear(&sends(&feed(&mut r, secs(t), c.here_i_am()))[0]);
        d.hear(&sends(&feed(&mut r, secs(t), d.here_i_am()))[0]);
    }
    assert!(publishes(&tick(&mut r, secs(80))).is_empty(), "no flush");
    assert!(r.poll_timeout().is_some_and(|t| t > secs(80)));
    let st = r.status_at(secs(45));
    assert!(st.services[0].caches.iter().all(|c| c.buckets == 128));
}

#[test]
fn stale_redirect_assign_rejected() {
    let mut r = web_router();
    let mut c = FakeCache::web_cache(2);
    join(&mut r, &mut c, secs(1));
    let addr = c.addr;
    // Stale receive id.
    let mut old = c.clone();
    old.receive_id -= 1;
    let out = feed(
        &mut r,
        secs(16),
        old.redirect_assign(&[addr], full_buckets()),
    );
    assert!(publishes(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["stale"]);
    // Stale change number.
    let mut old = c.clone();
    old.change_number -= 1;
    let out = feed(
        &mut r,
        secs(16),
        old.redirect_assign(&[addr], full_buckets()),
    );
    assert!(publishes(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["stale"]);
    // From a cache that is not usable.
    let mut stranger = FakeCache::web_cache(9);
    stranger.receive_id = c.receive_id;
    stranger.change_number = c.change_number;
    let out = feed(
        &mut r,
        secs(16),
        stranger.redirect_assign(&[addr], full_buckets()),
    );
    assert!(publishes(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["not_allowed"]);
    // Bucket naming a cache index beyond the list: error names the bucket.
    let mut b = full_buckets();
    b[200] = 1;
    let out = feed(&mut r, secs(16), c.redirect_assign(&[addr], b));
    assert!(publishes(&out).is_empty());
    match &events(&out)[0] {
        Event::Dropped { reason, detail, .. } => {
            assert_eq!(reason.as_str(), "malformed");
            assert!(detail.contains("bucket 200"), "{detail}");
        }
        e => panic!("{e:?}"),
    }
    // The current values are accepted.
    let out = feed(&mut r, secs(16), c.redirect_assign(&[addr], full_buckets()));
    assert_eq!(publishes(&out).len(), 1);
    let st = r.status();
    assert_eq!(st.services[0].counters.drops.get("stale"), Some(&2));
}

#[test]
fn assignment_leaving_us_out_flushes() {
    let (mut r, mut c) = assigned();
    let elsewhere = vec![RouterAssignment {
        addr: wire::Addr::from_ipv4(std::net::Ipv4Addr::new(10, 200, 0, 254)),
        receive_id: c.receive_id,
        change_number: c.change_number,
    }];
    let addr = c.addr;
    let out = feed(
        &mut r,
        secs(27),
        c.redirect_assign_raw(elsewhere, &[addr], full_buckets()),
    );
    assert_eq!(publishes(&out), vec![(web_cache_key(), None)]);
    assert_eq!(drop_reasons(&out), vec!["not_for_us"]);
}

#[test]
fn md5_right_and_wrong() {
    let mut cfg = ServiceConfig::web_cache();
    cfg.password = Some(b"wccpTest".to_vec());
    let mut r = router_with(vec![cfg]);
    let mut c = FakeCache::web_cache(2);
    c.password = Some(b"wccpTest".to_vec());
    // `hear` verifies the ISY signature.
    join(&mut r, &mut c, secs(1));
    assert!(r.status().services[0].caches[0].usable);
    let isy = sends(&feed(&mut r, secs(2), c.here_i_am()))[0].clone();
    assert_eq!(component_types(&isy.payload), vec![0, 1, 2, 4, 8]);
    assert_eq!(component_body(&isy.payload, 0).unwrap().len(), 20);
    assert!(wire::verify(&isy.payload, b"other").is_err());
    // Wrong password from another cache: dropped silently, reason recorded.
    let mut bad = FakeCache::web_cache(3);
    bad.password = Some(b"nope".to_vec());
    let out = feed(&mut r, secs(3), bad.here_i_am());
    assert!(sends(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["security"]);
    // No security at all.
    let plain = FakeCache::web_cache(3);
    let out = feed(&mut r, secs(4), plain.here_i_am());
    assert!(sends(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["security"]);
    // A forged message in the usable cache's name does not evict it.
    let mut forged = c.clone();
    forged.password = Some(b"nope".to_vec());
    let out = feed(&mut r, secs(5), forged.here_i_am());
    assert!(sends(&out).is_empty());
    assert!(r.status().services[0].caches[0].usable);
    // A cache we know but that fails MD5 while joining gets the reason.
    let mut r2 = {
        let mut cfg = ServiceConfig::web_cache();
        cfg.password = Some(b"wccpTest".to_vec());
        router_with(vec![cfg])
    };
    let mut k = FakeCache::web_cache(4);
    k.password = Some(b"wccpTest".to_vec());
    k.hear(&sends(&feed(&mut r2, secs(1), k.here_i_am()))[0]);
    k.password = Some(b"nope".to_vec());
    feed(&mut r2, secs(2), k.here_i_am());
    assert_eq!(
        r2.status().services[0].caches[0].reason,
        Some(NotUsable::Md5Failure)
    );
    // Without a password configured, an MD5 message is refused.
    let mut r3 = web_router();
    let out = feed(&mut r3, secs(1), c.here_i_am());
    assert_eq!(drop_reasons(&out), vec!["security"]);
}

#[test]
fn conflicting_dynamic_definition_rejected_until_group_empties() {
    let mut r = router_with(vec![ServiceConfig::new(dyn_key(80))]);
    let mut a = FakeCache::new(2, dyn_service(80, &[80, 8080]));
    join(&mut r, &mut a, secs(1));
    let b = FakeCache::new(3, dyn_service(80, &[8080]));
    let out = feed(&mut r, secs(2), b.here_i_am());
    assert!(sends(&out).is_empty(), "conflicting HIA discarded");
    assert_eq!(drop_reasons(&out), vec!["service_mismatch"]);
    // The ISY echoes the cache's own Service Info byte for byte.
    let isy = sends(&feed(&mut r, secs(3), a.here_i_am()))[0].clone();
    let hia = a.here_i_am();
    assert_eq!(
        component_body(&isy.payload, 1),
        component_body(&hia.payload, 1)
    );
    // a goes silent: removed at 3 + 30; definition forgotten; b may define the group.
    tick(&mut r, secs(30));
    tick(&mut r, secs(33));
    assert!(!r.status().services[0].caches[0].usable);
    let mut b = b;
    join(&mut r, &mut b, secs(34));
    let st = r.status();
    assert!(st.services[0]
        .caches
        .iter()
        .any(|c| c.address == b.addr && c.usable));
}

#[test]
fn fixed_definition_is_enforced() {
    let mut cfg = ServiceConfig::new(dyn_key(80));
    cfg.definition = Some(assign::service::ServiceDef::from_wire(&dyn_service(80, &[80])).unwrap());
    let mut r = router_with(vec![cfg]);
    let out = feed(
        &mut r,
        secs(1),
        FakeCache::new(2, dyn_service(80, &[81])).here_i_am(),
    );
    assert_eq!(drop_reasons(&out), vec!["service_mismatch"]);
    let mut ok = FakeCache::new(2, dyn_service(80, &[80]));
    join(&mut r, &mut ok, secs(2));
}

#[test]
fn unknown_service_and_unexpected_types() {
    let mut r = web_router();
    let out = feed(
        &mut r,
        secs(1),
        FakeCache::new(2, dyn_service(90, &[80])).here_i_am(),
    );
    assert_eq!(drop_reasons(&out), vec!["service_mismatch"]);
    let mut garbage = FakeCache::web_cache(2).here_i_am();
    garbage.payload.truncate(20);
    let out = feed(&mut r, secs(1), garbage);
    assert_eq!(drop_reasons(&out), vec!["malformed"]);
    // An I_SEE_YOU sent to the router.
    let mut c = FakeCache::web_cache(2);
    let isy = sends(&feed(&mut r, secs(1), c.here_i_am()))[0].clone();
    c.hear(&isy);
    let out = feed(
        &mut r,
        secs(2),
        wccp_control::Datagram {
            local: ROUTER,
            peer: c.addr,
            payload: isy.payload,
        },
    );
    assert_eq!(drop_reasons(&out), vec!["unexpected_type"]);
    let st = r.status();
    assert_eq!(st.unattributed.drops.get("malformed"), Some(&1));
    assert_eq!(st.unattributed.drops.get("service_mismatch"), Some(&1));
}

#[test]
fn capability_mismatch_is_not_usable_with_reason() {
    let mut cfg = ServiceConfig::web_cache();
    cfg.offer.forwarding = wccp_control::router::METHOD_GRE;
    let mut r = router_with(vec![cfg]);
    let mut c = FakeCache::web_cache(2);
    c.caps = Some(Capabilities {
        elements: vec![
            Capability::ForwardingMethod(2),
            Capability::AssignmentMethod(1),
            Capability::PacketReturnMethod(1),
        ],
    });
    let isy = c.hear(&sends(&feed(&mut r, secs(1), c.here_i_am()))[0]);
    // We advertise only what we offer.
    assert_eq!(
        isy.capabilities.as_ref().unwrap().forwarding_method(),
        Some(1)
    );
    let isy = c.hear(&sends(&feed(&mut r, secs(11), c.here_i_am()))[0]);
    assert!(isy.view.caches.is_empty());
    assert_eq!(
        r.status().services[0].caches[0].reason,
        Some(NotUsable::CapabilityMismatch)
    );
    // Choosing GRE fixes it.
    c.caps = None;
    let isy = c.hear(&sends(&feed(&mut r, secs(12), c.here_i_am()))[0]);
    assert_eq!(isy.view.caches.len(), 1);
}

#[test]
fn first_cache_fixes_assignment_method() {
    let mut r = web_router();
    let mut m = FakeCache::web_cache(2);
    m.mask = true;
    m.caps = Some(FakeCache::mask_caps());
    let first = m.hear(&sends(&feed(&mut r, secs(1), m.here_i_am()))[0]);
    assert_eq!(
        first.capabilities.as_ref().unwrap().assignment_method(),
        Some(3)
    );
    let isy = m.hear(&sends(&feed(&mut r, secs(2), m.here_i_am()))[0]);
    assert_eq!(
        isy.capabilities.as_ref().unwrap().assignment_method(),
        Some(2),
        "narrowed to the group's method"
    );
    assert_eq!(r.status().services[0].assignment_method, Some("mask"));
    // A hash cache cannot join the mask group.
    let mut h = FakeCache::web_cache(3);
    h.hear(&sends(&feed(&mut r, secs(3), h.here_i_am()))[0]);
    h.hear(&sends(&feed(&mut r, secs(4), h.here_i_am()))[0]);
    let st = r.status();
    let hc = st.services[0]
        .caches
        .iter()
        .find(|c| c.address == h.addr)
        .unwrap();
    assert_eq!(hc.reason, Some(NotUsable::CapabilityMismatch));
}

#[test]
fn shutdown_drains_at_once() {
    let mut r = web_router();
    let mut a = FakeCache::web_cache(2);
    let mut b = FakeCache::web_cache(3);
    join(&mut r, &mut a, secs(1));
    join(&mut r, &mut b, secs(1));
    a.hear(&sends(&feed(&mut r, secs(2), a.here_i_am()))[0]);
    let mut buckets = [0u8; 256];
    for (i, x) in buckets.iter_mut().enumerate() {
        *x = (i % 2) as u8;
    }
    let (aa, ba) = (a.addr, b.addr);
    let t = publishes(&feed(
        &mut r,
        secs(17),
        a.redirect_assign(&[aa, ba], buckets),
    ))[0]
        .1
        .clone()
        .unwrap();
    // Source-IP hash of standard service 0 is the destination address.
    let k = FlowKey::new(0, 1 << 24, 1000, 80);
    assert!(matches!(t.lookup(&k), Lookup::Redirect { target: 1, .. }));
    let before = b.change_number;
    let out = feed(&mut r, secs(18), b.shutdown());
    let s = sends(&out);
    assert_eq!(s.len(), 2, "the acknowledgement, then an ISY to 2: {out:?}");
    let told = a.hear(&s[1]);
    assert_eq!(told.view.change_number, before + 1);
    assert_eq!(told.view.caches, vec![a.identity()]);
    assert!(told.command.is_none());
    let isy = b.hear(&s[0]);
    assert_eq!(
        isy.command.expect("command extension").commands,
        vec![wire::Command::ShutdownResponse(wire::Addr::from_ipv4(ba))]
    );
    assert_eq!(isy.view.change_number, before + 1);
    assert_eq!(isy.view.caches.len(), 1);
    let t2 = publishes(&out)[0].1.clone().unwrap();
    assert_eq!(t2.lookup(&k), Lookup::Forward);
    assert!(matches!(
        t2.lookup(&FlowKey::new(0, 0, 1000, 80)),
        Lookup::Redirect { target: 0, .. }
    ));
    let st = r.status();
    let bs = st.services[0]
        .caches
        .iter()
        .find(|c| c.address == ba)
        .unwrap();
    assert_eq!(
        (bs.usable, bs.reason, bs.buckets),
        (false, Some(NotUsable::Shutdown), 0)
    );
}

#[test]
fn two_services_are_independent() {
    let mut r = router_with(vec![
        ServiceConfig::web_cache(),
        ServiceConfig::new(dyn_key(80)),
    ]);
    let mut w = FakeCache::web_cache(2);
    let mut d = FakeCache::new(2, dyn_service(80, &[80]));
    join(&mut r, &mut w, secs(1));
    let dfirst = d.hear(&sends(&feed(&mut r, secs(2), d.here_i_am()))[0]);
    assert!(
        dfirst.view.caches.is_empty(),
        "dynamic group has its own view"
    );
    assert_eq!(
        dfirst.identity.router.receive_id, 1,
        "own receive id sequence"
    );
    d.hear(&sends(&feed(&mut r, secs(3), d.here_i_am()))[0]);
    let wa = w.addr;
    let out = feed(&mut r, secs(20), w.redirect_assign(&[wa], [0; 256]));
    assert_eq!(publishes(&out).len(), 1);
    assert_eq!(publishes(&out)[0].0, web_cache_key());
    let st = r.status();
    assert!(st.services[0].assignment.is_some());
    assert!(st.services[1].assignment.is_none());
    assert_eq!(st.services[1].id, 80);
    assert!(st.services[1].dynamic);
}

#[test]
fn mask_assignment_and_map_in_isy() {
    let mut r = web_router();
    let mut m = FakeCache::web_cache(2);
    m.mask = true;
    m.caps = Some(FakeCache::mask_caps());
    join(&mut r, &mut m, secs(1));
    let addr = wire::Addr::from_ipv4(m.addr);
    let set = wire::MaskValueSet {
        mask: wire::MaskElement {
            src_addr: wire::Addr(0),
            dst_addr: wire::Addr(1),
            src_port: 0,
            dst_port: 0,
        },
        values: vec![wire::ValueElement {
            src_addr: wire::Addr(0),
            dst_addr: wire::Addr(1),
            src_port: 0,
            dst_port: 0,
            cache: addr,
        }],
    };
    let out = feed(
        &mut r,
        secs(16),
        m.redirect_assign_alt(wire::AltAssignmentBody::Mask(vec![set.clone()])),
    );
    let t = publishes(&out)[0].1.clone().expect("mask table");
    assert!(matches!(
        t.lookup(&FlowKey::new(0, 3, 0, 80)),
        Lookup::Redirect {
            target: 0,
            primary: 0,
            ..
        }
    ));
    assert_eq!(t.lookup(&FlowKey::new(0, 2, 0, 80)), Lookup::Forward);
    let out = feed(&mut r, secs(17), m.here_i_am());
    let isy_d = sends(&out)[0].clone();
    assert_eq!(component_types(&isy_d.payload), vec![0, 1, 2, 4, 14, 8]);
    let isy = m.hear(&isy_d);
    assert_eq!(isy.assignment_map.unwrap().sets, vec![set]);
    // A hash assignment is refused in a mask group.
    let ma = m.addr;
    let out = feed(&mut r, secs(18), m.redirect_assign(&[ma], [0; 256]));
    assert_eq!(drop_reasons(&out), vec!["service_mismatch"]);
}

#[test]
fn alternate_mask_sets_expand() {
    let mut r = web_router();
    let mut m = FakeCache::web_cache(2);
    m.mask = true;
    m.caps = Some(FakeCache::mask_caps());
    m.version = wire::Version::V2_01;
    join(&mut r, &mut m, secs(1));
    let alt = wire::AltMaskValueSet {
        mask: wire::MaskElement {
            src_addr: wire::Addr(0x100),
            dst_addr: wire::Addr(3),
            src_port: 0,
            dst_port: 1,
        },
        caches: vec![wire::CacheValueElement {
            cache: wire::Addr::from_ipv4(m.addr),
            vsns: vec![5],
        }],
    };
    let out = feed(
        &mut r,
        secs(16),
        m.redirect_assign_alt(wire::AltAssignmentBody::AltMask(vec![alt])),
    );
    let t = publishes(&out)[0].1.clone().expect("table");
    // VSN 5 = (SA 0, DA 2, SP 0, DP 1).
    assert!(matches!(
        t.lookup(&FlowKey::new(0, 2, 7, 1)),
        Lookup::Redirect { target: 0, .. }
    ));
    assert_eq!(t.lookup(&FlowKey::new(0x100, 2, 7, 1)), Lookup::Forward);
    let isy_d = sends(&feed(&mut r, secs(17), m.here_i_am()))[0].clone();
    assert_eq!(&isy_d.payload[4..6], &[2, 1], "0x0201 mirrored");
    assert_eq!(component_types(&isy_d.payload), vec![0, 1, 2, 4, 16, 8]);
}

#[test]
fn closed_service_drops_when_unassigned() {
    let mut cfg = ServiceConfig::web_cache();
    cfg.closed = true;
    let mut r = router_with(vec![cfg]);
    let p = publishes(&drain(&mut r));
    assert_eq!(p.len(), 1);
    let t = p[0].1.clone().expect("closed table at start");
    assert!(t.closed());
    assert_eq!(t.lookup(&FlowKey::new(1, 2, 3, 80)), Lookup::Forward);
    let mut c = FakeCache::web_cache(2);
    join(&mut r, &mut c, secs(1));
    let a = c.addr;
    let t = publishes(&feed(&mut r, secs(16), c.redirect_assign(&[a], [0; 256])))[0]
        .1
        .clone()
        .unwrap();
    assert!(t.closed());
    assert!(matches!(
        t.lookup(&FlowKey::new(1, 2, 3, 80)),
        Lookup::Redirect { .. }
    ));
    // Silence: removal at 31 -> every bucket drained, still closed (drop).
    let out = tick(&mut r, secs(31));
    let t = publishes(&out).last().unwrap().1.clone().unwrap();
    assert!(t.closed());
    assert_eq!(t.lookup(&FlowKey::new(1, 2, 3, 80)), Lookup::Forward);
    // Flush: a closed empty table, not None.
    let out = tick(&mut r, secs(81));
    let t = publishes(&out)[0]
        .1
        .clone()
        .expect("closed services never publish None");
    assert!(t.closed() && t.targets().is_empty());
}

#[test]
fn group_list() {
    let mut cfg = ServiceConfig::web_cache();
    cfg.allowed_caches =
        vec![ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 200, 0, 0), 30).unwrap()];
    let mut r = router_with(vec![cfg]);
    let mut ok = FakeCache::web_cache(2);
    join(&mut r, &mut ok, secs(1));
    let out = feed(&mut r, secs(1), FakeCache::web_cache(9).here_i_am());
    assert!(sends(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["not_allowed"]);
}

#[test]
fn timers_follow_negotiated_transmit_t() {
    let mut r = web_router();
    let mut c = FakeCache::web_cache(2);
    c.caps = Some(Capabilities {
        elements: vec![
            Capability::TransmitT {
                upper: 0,
                lower: 2_000,
            },
            Capability::TimerScale {
                timeout_upper: 0,
                timeout_lower: 2,
                ra_upper: 0,
                ra_lower: 1,
            },
        ],
    });
    join(&mut r, &mut c, secs(0));
    // TIMEOUT_BASE_T = 2 * 2 s = 4 s: query at 10 s, removal at 12 s.
    assert_eq!(r.poll_timeout(), Some(Instant(10_000)));
    let out = tick(&mut r, Instant(10_000));
    assert_eq!(component_types(&sends(&out)[0].payload), vec![0, 1, 7]);
    let out = tick(&mut r, Instant(12_000));
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::MembershipChanged { .. })));
}

#[test]
fn status_shape() {
    let (r, c) = assigned();
    let st = r.status_at(secs(30));
    let s = &st.services[0];
    assert_eq!((s.id, s.dynamic), (0, false));
    assert_eq!(s.routers, vec![ROUTER]);
    assert_eq!(s.caches[0].address, c.addr);
    assert_eq!(s.caches[0].last_heard_ms_ago, 9_000);
    assert_eq!(s.caches[0].forwarding, Some("gre"));
    assert_eq!(NotUsable::TimedOut.as_str(), "timed_out");
}

#[test]
fn pending_caches_are_excluded_from_redirection() {
    let (mut r, _c) = assigned();
    let d = FakeCache::web_cache(3);
    let out = feed(&mut r, secs(27), d.here_i_am());
    let p = publishes(&out);
    assert_eq!(
        p.len(),
        1,
        "members list updated without a membership change"
    );
    let t = p[0].1.clone().unwrap();
    assert!(t.is_member(u32::from(d.addr)));
    assert!(!events(&out)
        .iter()
        .any(|e| matches!(e, Event::MembershipChanged { .. })));
    // Nothing new to publish on its next HIA.
    assert!(publishes(&feed(&mut r, secs(28), d.here_i_am())).is_empty());
    // It goes silent: removed from the members list at 28 + 30.
    tick(&mut r, secs(55));
    let p = publishes(&tick(&mut r, secs(58)));
    assert!(p
        .iter()
        .any(|(_, t)| t.as_ref().is_some_and(|t| !t.is_member(u32::from(d.addr)))));
}

// ---- unsolicited I_SEE_YOU on a membership change the cache did not cause ---------------------

fn md5_router() -> wccp_control::router::Router {
    let mut cfg = ServiceConfig::web_cache();
    cfg.password = Some(b"wccpTest".to_vec());
    router_with(vec![cfg])
}

fn md5_cache(n: u8) -> FakeCache {
    let mut c = FakeCache::web_cache(n);
    c.password = Some(b"wccpTest".to_vec());
    c
}

fn membership_changes(out: &[wccp_control::Output]) -> Vec<u32> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            Event::MembershipChanged { change_number, .. } => Some(change_number),
            _ => None,
        })
        .collect()
}

/// Caches 2, 3, 4 usable (MD5) at t=1; 2 and 3 keep talking (t=11, 21), 4 is silent.
fn three_members() -> (
    wccp_control::router::Router,
    FakeCache,
    FakeCache,
    FakeCache,
) {
    let mut r = md5_router();
    let (mut a, mut b, mut c) = (md5_cache(2), md5_cache(3), md5_cache(4));
    join(&mut r, &mut a, secs(1));
    join(&mut r, &mut b, secs(1));
    join(&mut r, &mut c, secs(1));
    for t in [11, 21] {
        a.hear(&sends(&feed(&mut r, secs(t), a.here_i_am()))[0]);
        b.hear(&sends(&feed(&mut r, secs(t), b.here_i_am()))[0]);
    }
    (r, a, b, c)
}

#[test]
fn join_tells_the_other_usable_caches_at_once() {
    let mut r = web_router();
    let (mut a, mut b) = (FakeCache::web_cache(2), FakeCache::web_cache(3));
    join(&mut r, &mut a, secs(1));
    let n = a.change_number;
    let rid = a.receive_id;
    let out = join(&mut r, &mut b, secs(5));
    assert_eq!(membership_changes(&out), vec![n + 1]);
    let s = sends(&out);
    assert_eq!(s.len(), 2, "the answer to 3, then one ISY to 2: {out:?}");
    assert_eq!(s[0].peer, b.addr, "the answer comes first");
    let isy = a.hear(&s[1]);
    assert_eq!(isy.view.change_number, n + 1);
    assert!(isy.identity.router.receive_id > rid, "a new Receive ID");
    assert_eq!(isy.view.caches, vec![a.identity(), b.identity()]);
    assert_eq!(component_types(&s[1].payload), vec![0, 1, 2, 4, 8]);
}

#[test]
fn removal_sends_unsolicited_isy_to_each_remaining_usable_cache() {
    let (mut r, mut a, mut b, c) = three_members();
    let n = a.change_number;
    assert_eq!(b.change_number, n);
    // 2.5·T of silence: only the REMOVAL_QUERY to 4, no I_SEE_YOU (nothing changed).
    let out = tick(&mut r, secs(26));
    let s = sends(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(s[0].peer, c.addr);
    assert!(wire::RemovalQuery::parse(&s[0].payload).is_ok());
    assert!(membership_changes(&out).is_empty());
    // 3·T after its last HIA, 4 is removed and 2 and 3 are told at once.
    assert_eq!(r.poll_timeout(), Some(secs(31)));
    let (a_before, b_before) = (a.clone(), b.clone());
    let out = tick(&mut r, secs(31));
    assert_eq!(membership_changes(&out), vec![n + 1]);
    let s = sends(&out);
    let peers: Vec<_> = s.iter().map(|d| d.peer).collect();
    assert_eq!(peers, vec![a.addr, b.addr], "not to the removed cache");
    for (d, k) in s.iter().zip([&mut a, &mut b]) {
        let prev = k.receive_id;
        // `hear` checks: to the cache, from the address it sends to, MD5 signature.
        let isy = k.hear(d);
        assert_eq!(isy.view.change_number, n + 1);
        assert!(isy.identity.router.receive_id > prev);
        assert_eq!(isy.identity.router.addr.to_ipv4(), ROUTER);
        assert_eq!(isy.identity.sent_to.to_ipv4(), ROUTER);
        assert_eq!(
            isy.identity.received_from,
            vec![wire::Addr::from_ipv4(k.addr)]
        );
        assert_eq!(isy.view.routers, vec![wire::Addr::from_ipv4(ROUTER)]);
        assert_eq!(
            isy.view.caches,
            vec![a_before.identity(), b_before.identity()]
        );
    }
    assert_ne!(a.receive_id, b.receive_id, "one Receive ID per message");
    // A HIA 3 sent before the unsolicited ISY reached it echoes the previous ID: still usable.
    let out = feed(&mut r, secs(31), b_before.here_i_am());
    assert!(membership_changes(&out).is_empty());
    let s = sends(&out);
    assert_eq!(s.len(), 1, "just the answer: {out:?}");
    b.hear(&s[0]);
    assert_eq!(b.change_number, n + 1);
    // A REDIRECT_ASSIGN built from the previous Receive ID (current change number) is stale...
    let mut old = a.clone();
    old.receive_id = a_before.receive_id;
    let (aa, ba) = (a.addr, b.addr);
    let mut buckets = [0u8; 256];
    for (i, x) in buckets.iter_mut().enumerate() {
        *x = (i % 2) as u8;
    }
    let out = feed(&mut r, secs(46), old.redirect_assign(&[aa, ba], buckets));
    assert!(publishes(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["stale"]);
    // ...one carrying the unsolicited ISY's Receive ID is accepted.
    let out = feed(&mut r, secs(46), a.redirect_assign(&[aa, ba], buckets));
    let t = publishes(&out)[0].1.clone().expect("a table");
    assert_eq!(t.share_counts(), vec![128, 128]);
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::Assignment { .. })));
}

#[test]
fn no_unsolicited_isy_without_a_membership_change() {
    let mut r = web_router();
    let (mut a, mut b) = (FakeCache::web_cache(2), FakeCache::web_cache(3));
    join(&mut r, &mut a, secs(1));
    join(&mut r, &mut b, secs(1));
    a.hear(&sends(&feed(&mut r, secs(2), a.here_i_am()))[0]);
    // Steady HIAs: exactly one answer each, to the sender.
    for t in [11, 21, 31] {
        for k in [&mut a, &mut b] {
            let out = feed(&mut r, secs(t), k.here_i_am());
            let s = sends(&out);
            assert_eq!(s.len(), 1, "{out:?}");
            k.hear(&s[0]);
        }
    }
    // A cache that never becomes usable comes and goes: not a membership change.
    let p = FakeCache::web_cache(9);
    let out = feed(&mut r, secs(32), p.here_i_am());
    assert_eq!(sends(&out).len(), 1);
    assert_eq!(sends(&out)[0].peer, p.addr);
    for t in [41, 51, 61] {
        for k in [&mut a, &mut b] {
            k.hear(&sends(&feed(&mut r, secs(t), k.here_i_am()))[0]);
        }
    }
    let out = tick(&mut r, secs(62));
    assert!(membership_changes(&out).is_empty());
    assert!(sends(&out).is_empty(), "{out:?}");
    assert!(r.status().services[0]
        .caches
        .iter()
        .any(|c| c.address == p.addr && c.reason == Some(NotUsable::TimedOut)));
    // The last usable caches time out together: nobody is left to tell.
    let out = tick(&mut r, secs(91));
    assert_eq!(membership_changes(&out).len(), 1);
    assert!(sends(&out).is_empty(), "{out:?}");
}

/// The designated cache's REDIRECT_ASSIGN may cross the answer to its own HERE_I_AM (it is timed
/// from an unsolicited I_SEE_YOU, at any phase of its HERE_I_AM cycle): built from a superseded
/// Receive ID of the *current* change number, it is accepted, unless it would replace a newer
/// assignment of the same cache.
#[test]
fn redirect_assign_crossing_an_answer_is_accepted() {
    let mut r = web_router();
    let (mut a, mut b) = (FakeCache::web_cache(2), FakeCache::web_cache(3));
    join(&mut r, &mut a, secs(1));
    join(&mut r, &mut b, secs(1));
    a.hear(&sends(&feed(&mut r, secs(2), a.here_i_am()))[0]);
    let mut built = a.clone();
    // Its HERE_I_AM is answered (new Receive ID, same change number)...
    let isy = a.hear(&sends(&feed(&mut r, secs(12), a.here_i_am()))[0]);
    assert_eq!(isy.view.change_number, built.change_number);
    assert_ne!(isy.identity.router.receive_id, built.receive_id);
    // ...while two assignments built from the previous one are on their way.
    let (aa, ba) = (a.addr, b.addr);
    let mut half = [0u8; 256];
    for (i, x) in half.iter_mut().enumerate() {
        *x = (i % 2) as u8;
    }
    let older = built.redirect_assign(&[aa, ba], full_buckets());
    let newer = built.redirect_assign(&[aa, ba], half);
    let out = feed(&mut r, secs(17), newer);
    let t = publishes(&out)[0].1.clone().expect("accepted");
    assert_eq!(t.share_counts(), vec![128, 128]);
    // The older one arriving late does not replace it.
    let out = feed(&mut r, secs(17), older);
    assert!(publishes(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["stale"]);
    assert_eq!(
        r.status().services[0]
            .assignment
            .clone()
            .unwrap()
            .change_number,
        2
    );
    // An ID that was never sent is still refused.
    let mut wrong = a.clone();
    wrong.receive_id = 999;
    let out = feed(&mut r, secs(18), wrong.redirect_assign(&[aa, ba], half));
    assert_eq!(drop_reasons(&out), vec!["stale"]);
}

/// Negotiated L2 forwarding reaches the data plane: the published table's target for an L2
/// cache says L2, a GRE cache beside it stays GRE, and status shows the same.
#[test]
fn negotiated_l2_forwarding_reaches_the_published_table() {
    use assign::table::ForwardingMethod;
    let mut r = web_router();
    let mut l2 = FakeCache::web_cache(2);
    l2.caps = Some(Capabilities {
        elements: vec![
            Capability::ForwardingMethod(wccp_control::router::METHOD_L2),
            Capability::AssignmentMethod(wccp_control::router::ASSIGN_HASH),
            Capability::PacketReturnMethod(wccp_control::router::METHOD_L2),
        ],
    });
    let mut gre = FakeCache::web_cache(3);
    join(&mut r, &mut l2, secs(1));
    join(&mut r, &mut gre, secs(1));
    l2.hear(&sends(&feed(&mut r, secs(2), l2.here_i_am()))[0]);
    let st = r.status();
    let fwd: Vec<_> = st.services[0].caches.iter().map(|c| c.forwarding).collect();
    assert_eq!(fwd, vec![Some("l2"), Some("gre")]);
    let (a, b) = (l2.addr, gre.addr);
    let mut buckets = [0u8; 256];
    for (i, x) in buckets.iter_mut().enumerate() {
        *x = (i % 2) as u8;
    }
    let out = feed(&mut r, secs(17), l2.redirect_assign(&[a, b], buckets));
    let t = publishes(&out)[0].1.clone().expect("a table");
    let methods: Vec<_> = t.targets().iter().map(|tg| (tg.addr, tg.method)).collect();
    assert_eq!(
        methods,
        vec![(a, ForwardingMethod::L2), (b, ForwardingMethod::Gre)]
    );
    // Bucket 0 (destination 0.0.0.0 hashes to 0) goes to the L2 cache, bucket 1 to GRE.
    assert!(matches!(
        t.lookup(&FlowKey::new(0, 0, 1000, 80)),
        Lookup::Redirect { target: 0, .. }
    ));
    assert!(matches!(
        t.lookup(&FlowKey::new(0, 1 << 24, 1000, 80)),
        Lookup::Redirect { target: 1, .. }
    ));
    // A republication (the GRE cache leaves) keeps the L2 method of the one that stays.
    let out = feed(&mut r, secs(18), gre.shutdown());
    let t = publishes(&out)[0].1.clone().expect("a table");
    assert_eq!(t.targets()[0].method, ForwardingMethod::L2);
    assert!(!t.targets()[0].drained);
    assert!(t.targets()[1].drained);
}
