//! Hot reload of the router (`Router::reconfigure`) in virtual time: what each kind of change
//! does to the groups, their caches and the published tables, and what is refused.

mod router_support;

use std::net::Ipv4Addr;

use router_support::*;
use wccp_control::router::{
    NotUsable, ReloadError, Router, RouterConfig, ServiceConfig, ServiceUpdate,
};
use wccp_control::{Event, Machine};

const PASSWORD: &[u8] = b"old-pw";

fn config(services: Vec<ServiceConfig>) -> RouterConfig {
    RouterConfig {
        addresses: vec![ROUTER],
        router_id: None,
        services,
    }
}

fn web_cache_with(password: Option<&[u8]>) -> ServiceConfig {
    let mut s = ServiceConfig::web_cache();
    s.password = password.map(<[u8]>::to_vec);
    s
}

/// Two caches (.2 designated, .3) joined to web-cache and an assignment giving each half of
/// the buckets, accepted at t=26.
fn assigned(r: &mut Router, password: Option<&[u8]>) -> (FakeCache, FakeCache) {
    let mut a = FakeCache::web_cache(2);
    let mut b = FakeCache::web_cache(3);
    a.password = password.map(<[u8]>::to_vec);
    b.password = password.map(<[u8]>::to_vec);
    join(r, &mut a, secs(1));
    join(r, &mut b, secs(2));
    // Both hear the current change number.
    for t in [11, 12] {
        for c in [&mut a, &mut b] {
            let out = feed(r, secs(t), c.here_i_am());
            let s = sends(&out);
            let mine = s.iter().find(|d| d.peer == c.addr).expect("an ISY");
            c.hear(mine);
        }
    }
    let mut buckets = [0u8; 256];
    for (i, x) in buckets.iter_mut().enumerate() {
        *x = (i % 2) as u8;
    }
    let caches = [a.addr, b.addr];
    let out = feed(r, secs(26), a.redirect_assign(&caches, buckets));
    assert_eq!(publishes(&out).len(), 1, "{out:?}");
    (a, b)
}

fn cache_status(r: &Router, service: usize, addr: Ipv4Addr) -> (bool, Option<NotUsable>) {
    let st = r.status();
    let c = st.services[service]
        .caches
        .iter()
        .find(|c| c.address == addr)
        .unwrap_or_else(|| panic!("{addr} not in {st:#?}"));
    (c.usable, c.reason)
}

fn membership_changes(outs: &[wccp_control::Output]) -> usize {
    events(outs)
        .iter()
        .filter(|e| matches!(e, Event::MembershipChanged { .. }))
        .count()
}

#[test]
fn password_change_makes_a_cache_still_on_the_old_password_unusable() {
    let mut r = router_with(vec![web_cache_with(Some(PASSWORD))]);
    let (mut a, mut b) = assigned(&mut r, Some(PASSWORD));
    let summary = r
        .reconfigure(secs(30), config(vec![web_cache_with(Some(b"new-pw"))]))
        .expect("applied");
    assert_eq!(
        summary.updated,
        vec![ServiceUpdate {
            service: "standard 0".into(),
            changed: vec!["password".into()],
            replaced: false,
            not_allowed: vec![],
            reauthenticate: vec![a.addr, b.addr],
        }]
    );
    // Nothing happens at once: the Router View and the table stay.
    let out = drain(&mut r);
    assert!(out.is_empty(), "{out:?}");
    assert!(cache_status(&r, 0, a.addr).0 && cache_status(&r, 0, b.addr).0);

    // .3 was given the new password: its next HERE_I_AM authenticates and it stays usable.
    b.password = Some(b"new-pw".to_vec());
    let out = feed(&mut r, secs(31), b.here_i_am());
    assert!(drop_reasons(&out).is_empty(), "{out:?}");
    b.hear(&sends(&out)[0]);
    assert_eq!(cache_status(&r, 0, b.addr), (true, None));

    // .2 still signs with the old one: dropped for security, and this time not usable.
    let out = feed(&mut r, secs(32), a.here_i_am());
    assert_eq!(drop_reasons(&out), vec!["security"]);
    assert_eq!(
        cache_status(&r, 0, a.addr),
        (false, Some(NotUsable::Md5Failure))
    );
    assert_eq!(membership_changes(&out), 1, "{out:?}");
    // The table drains it; the other cache is told (an I_SEE_YOU signed with the new password).
    let p = publishes(&out);
    assert_eq!(p.len(), 1);
    let table = p[0].1.clone().expect("a table");
    let drained: Vec<(Ipv4Addr, bool)> = table
        .targets()
        .iter()
        .map(|t| (t.addr, t.drained))
        .collect();
    assert_eq!(drained, vec![(a.addr, true), (b.addr, false)]);
    let s = sends(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!(s[0].peer, b.addr);
    b.hear(&s[0]);

    // .3 authenticated since the reload: a forged message in its name does not evict it.
    let mut forged = b.clone();
    forged.password = Some(PASSWORD.to_vec());
    let out = feed(&mut r, secs(33), forged.here_i_am());
    assert_eq!(drop_reasons(&out), vec!["security"]);
    assert_eq!(cache_status(&r, 0, b.addr), (true, None));

    // .2 given the new password is usable again with its next HERE_I_AM.
    a.password = Some(b"new-pw".to_vec());
    let out = feed(&mut r, secs(34), a.here_i_am());
    a.hear(&sends(&out)[0]);
    let out = feed(&mut r, secs(35), a.here_i_am());
    a.hear(&sends(&out)[0]);
    assert_eq!(cache_status(&r, 0, a.addr), (true, None));
}

#[test]
fn removed_service_is_flushed_and_forgotten() {
    let mut closed = ServiceConfig::new(dyn_key(90));
    closed.definition = Some(
        assign::service::ServiceDef::from_wire(&dyn_service(90, &[8080])).expect("definition"),
    );
    closed.closed = true;
    let mut r = router_with(vec![ServiceConfig::web_cache(), closed]);
    let out = drain(&mut r);
    assert_eq!(publishes(&out).len(), 1, "the closed service's drop table");
    let (_a, _b) = assigned(&mut r, None);
    let mut c = FakeCache::new(4, dyn_service(90, &[8080]));
    join(&mut r, &mut c, secs(27));
    assert_eq!(r.status().services.len(), 2);

    let summary = r
        .reconfigure(secs(30), config(vec![ServiceConfig::web_cache()]))
        .expect("applied");
    assert_eq!(summary.removed, vec!["dynamic 90".to_string()]);
    assert!(summary.added.is_empty() && summary.updated.is_empty());
    let out = drain(&mut r);
    assert_eq!(publishes(&out), vec![(dyn_key(90), None)], "{out:?}");
    let st = r.status();
    assert_eq!(st.services.len(), 1);
    assert_eq!((st.services[0].id, st.services[0].dynamic), (0, false));
    assert_eq!(st.services[0].caches.len(), 2, "web-cache untouched");
    // Its caches are now strangers.
    let out = feed(&mut r, secs(31), c.here_i_am());
    assert_eq!(drop_reasons(&out), vec!["service_mismatch"]);
    assert!(sends(&out).is_empty());
}

#[test]
fn new_service_starts_empty_and_accepts_caches() {
    let mut r = router_with(vec![ServiceConfig::web_cache()]);
    let (_a, _b) = assigned(&mut r, None);
    let mut c = FakeCache::new(4, dyn_service(80, &[80, 443]));
    let out = feed(&mut r, secs(27), c.here_i_am());
    assert_eq!(
        drop_reasons(&out),
        vec!["service_mismatch"],
        "not configured yet"
    );

    let summary = r
        .reconfigure(
            secs(28),
            config(vec![
                ServiceConfig::new(dyn_key(80)),
                ServiceConfig::web_cache(),
            ]),
        )
        .expect("applied");
    assert_eq!(summary.added, vec!["dynamic 80".to_string()]);
    // An open service without a cache publishes nothing; web-cache is not republished.
    assert!(drain(&mut r).is_empty());
    let st = r.status();
    assert_eq!(st.services.len(), 2);
    assert_eq!((st.services[0].id, st.services[0].dynamic), (80, true));
    assert!(st.services[0].caches.is_empty());
    assert_eq!(st.services[1].caches.len(), 2, "web-cache kept its caches");

    join(&mut r, &mut c, secs(29));
    assert_eq!(cache_status(&r, 0, c.addr), (true, None));
}

#[test]
fn closed_flag_is_republished_and_other_services_are_not() {
    let mut r = router_with(vec![
        ServiceConfig::web_cache(),
        ServiceConfig::new(dyn_key(80)),
    ]);
    let (_a, _b) = assigned(&mut r, None);
    let mut closed = ServiceConfig::web_cache();
    closed.closed = true;
    let cfg = config(vec![closed, ServiceConfig::new(dyn_key(80))]);
    let summary = r.reconfigure(secs(30), cfg.clone()).expect("applied");
    assert_eq!(summary.to_string(), "standard 0: closed");
    let out = drain(&mut r);
    let p = publishes(&out);
    assert_eq!(p.len(), 1, "{out:?}");
    assert_eq!(p[0].0, web_cache_key());
    let t = p[0].1.clone().expect("a table");
    assert!(t.closed());
    assert_eq!(t.targets().len(), 2, "the same assignment");
    assert_eq!(membership_changes(&out), 0);
    // The same configuration again changes nothing.
    let summary = r.reconfigure(secs(31), cfg).expect("applied");
    assert!(summary.is_empty(), "{summary:?}");
    assert!(drain(&mut r).is_empty());
    // Open again, no assignment yet for a fresh closed service: its drop table goes.
    let mut r = router_with(vec![{
        let mut s = ServiceConfig::web_cache();
        s.closed = true;
        s
    }]);
    assert_eq!(publishes(&drain(&mut r)).len(), 1);
    r.reconfigure(secs(1), config(vec![ServiceConfig::web_cache()]))
        .expect("applied");
    assert_eq!(publishes(&drain(&mut r)), vec![(web_cache_key(), None)]);
}

#[test]
fn cache_outside_the_new_group_list_becomes_unusable() {
    let mut r = router_with(vec![ServiceConfig::web_cache()]);
    let (a, mut b) = assigned(&mut r, None);
    let mut s = ServiceConfig::web_cache();
    s.allowed_caches = vec!["10.200.0.3/32".parse().expect("prefix")];
    let summary = r.reconfigure(secs(30), config(vec![s])).expect("applied");
    assert_eq!(summary.updated[0].not_allowed, vec![a.addr]);
    let out = drain(&mut r);
    assert_eq!(membership_changes(&out), 1, "{out:?}");
    assert_eq!(
        cache_status(&r, 0, a.addr),
        (false, Some(NotUsable::NotAllowed))
    );
    assert_eq!(cache_status(&r, 0, b.addr), (true, None));
    // The remaining cache is told at once; the table drains the other one.
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    let isy = b.hear(&s[0]);
    assert_eq!(isy.view.caches.len(), 1);
    let t = publishes(&out)[0].1.clone().expect("a table");
    assert!(t.targets().iter().any(|t| t.addr == a.addr && t.drained));
    // Its next HERE_I_AM is refused as before.
    let out = feed(&mut r, secs(31), a.here_i_am());
    assert_eq!(drop_reasons(&out), vec!["not_allowed"]);
}

#[test]
fn definition_change_restarts_the_group() {
    let mut s = ServiceConfig::new(dyn_key(80));
    s.definition =
        Some(assign::service::ServiceDef::from_wire(&dyn_service(80, &[80])).expect("definition"));
    let mut r = router_with(vec![s.clone()]);
    let mut c = FakeCache::new(2, dyn_service(80, &[80]));
    join(&mut r, &mut c, secs(1));
    s.definition = Some(
        assign::service::ServiceDef::from_wire(&dyn_service(80, &[80, 8080])).expect("definition"),
    );
    let summary = r.reconfigure(secs(2), config(vec![s])).expect("applied");
    assert!(summary.updated[0].replaced);
    assert_eq!(summary.updated[0].changed, vec!["definition".to_string()]);
    assert!(r.status().services[0].caches.is_empty());
    // The cache's old definition now conflicts.
    let out = feed(&mut r, secs(3), c.here_i_am());
    assert_eq!(drop_reasons(&out), vec!["service_mismatch"]);
}

#[test]
fn address_changes_and_invalid_configurations_are_refused_and_change_nothing() {
    let mut r = router_with(vec![web_cache_with(Some(PASSWORD))]);
    let (_a, _b) = assigned(&mut r, Some(PASSWORD));
    let before = r.status_at(secs(30));
    let timeout = r.poll_timeout();

    let mut moved = config(vec![ServiceConfig::web_cache()]);
    moved.addresses = vec![Ipv4Addr::new(10, 200, 0, 9)];
    match r.reconfigure(secs(30), moved) {
        Err(ReloadError::NeedsRestart(what)) => {
            assert_eq!(what, vec!["router addresses".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let mut named = config(vec![ServiceConfig::web_cache()]);
    named.router_id = Some(Ipv4Addr::new(10, 200, 0, 1));
    let e = r.reconfigure(secs(30), named).unwrap_err();
    assert_eq!(e.to_string(), "needs a restart: router id");

    let twice = config(vec![ServiceConfig::web_cache(), ServiceConfig::web_cache()]);
    assert!(matches!(
        r.reconfigure(secs(30), twice),
        Err(ReloadError::Invalid(_))
    ));
    let mut long = web_cache_with(Some(b"123456789"));
    long.closed = true;
    let e = r.reconfigure(secs(30), config(vec![long])).unwrap_err();
    assert!(e.to_string().contains("9 octets"), "{e}");

    assert!(drain(&mut r).is_empty());
    assert_eq!(r.status_at(secs(30)), before);
    assert_eq!(r.poll_timeout(), timeout);
    // The old password still rules.
    let mut c = FakeCache::web_cache(2);
    c.password = Some(b"other".to_vec());
    assert_eq!(
        drop_reasons(&feed(&mut r, secs(31), c.here_i_am())),
        vec!["security"]
    );
}
