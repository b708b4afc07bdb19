//! Forged messages at the router: a REDIRECT_ASSIGN decides where traffic goes, so one with a
//! wrong or missing password (or MD5 where none is configured) must never be adopted, whatever
//! else in it is right (current Receive ID and change number, a usable sender); it is dropped
//! and counted as `security`. A forged REMOVAL_QUERY is refused for security before its type
//! is even looked at (docs/protocol.md 2.2: authenticate right after the header).

mod router_support;

use assign::hash::FlowKey;
use assign::table::Lookup;
use router_support::*;
use wccp_control::router::{Router, ServiceConfig};
use wccp_control::{Datagram, Event, Machine};
use wire::{MessageRepr, RemovalQuery, RouterQueryInfo, Security, Version};

const PASSWORD: &[u8] = b"wccpTest";

fn md5_router() -> Router {
    let mut cfg = ServiceConfig::web_cache();
    cfg.password = Some(PASSWORD.to_vec());
    router_with(vec![cfg])
}

fn md5_cache(n: u8) -> FakeCache {
    let mut c = FakeCache::web_cache(n);
    c.password = Some(PASSWORD.to_vec());
    c
}

/// Buckets alternating between cache index 0 and 1.
fn halves() -> [u8; 256] {
    let mut b = [0u8; 256];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (i % 2) as u8;
    }
    b
}

fn security_drops(r: &Router) -> u64 {
    r.status().services[0]
        .counters
        .drops
        .get("security")
        .copied()
        .unwrap_or(0)
}

/// Not adopted: nothing published, no assignment event, exactly one `security` drop more, and
/// the group's assignment what it was.
fn assert_refused(r: &mut Router, c: &FakeCache, at: u64, d: Datagram, what: &str) {
    let before = r.status_at(secs(at)).services[0].assignment.clone();
    let drops = security_drops(r);
    let out = feed(r, secs(at), d);
    assert!(publishes(&out).is_empty(), "{what}: published {out:?}");
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::Assignment { .. })),
        "{what}: {out:?}"
    );
    assert!(sends(&out).is_empty(), "{what}: answered {out:?}");
    assert_eq!(drop_reasons(&out), vec!["security"], "{what}");
    assert_eq!(security_drops(r), drops + 1, "{what}: counted");
    let st = r.status_at(secs(at));
    assert_eq!(
        st.services[0].assignment, before,
        "{what}: assignment changed"
    );
    // The cache whose name the forgery used is still a member.
    let cs = st.services[0]
        .caches
        .iter()
        .find(|x| x.address == c.addr)
        .expect("cache listed");
    assert!(cs.usable, "{what}: {cs:?}");
}

#[test]
fn forged_redirect_assign_is_never_adopted() {
    let mut r = md5_router();
    let mut c = md5_cache(2);
    join(&mut r, &mut c, secs(1));
    let me = c.addr;
    // Everything right but the password: current Receive ID and change number, usable sender.
    let mut wrong = c.clone();
    wrong.password = Some(b"nope".to_vec());
    let d = wrong.redirect_assign(&[me], [0; 256]);
    assert_refused(&mut r, &c, 16, d, "wrong password");
    // No digest at all (Security Info says "no security").
    let mut unsigned = c.clone();
    unsigned.password = None;
    let d = unsigned.redirect_assign(&[me], [0; 256]);
    assert_eq!(
        &d.payload[8..16],
        &[0, 0, 0, 4, 0, 0, 0, 0],
        "option 0, no digest"
    );
    assert_refused(&mut r, &c, 16, d, "no digest");
    // A digest of the right length but zeroed (the signing step skipped).
    let mut d = c.clone().redirect_assign(&[me], [0; 256]);
    d.payload[12..28].fill(0);
    assert_refused(&mut r, &c, 16, d, "zeroed digest");
    // A digest computed over the message before one bucket was changed in flight.
    let mut d = c.clone().redirect_assign(&[me], [0; 256]);
    let last = d.payload.len() - 1;
    d.payload[last] = 0xFF;
    assert_refused(&mut r, &c, 16, d, "tampered after signing");
    assert!(r.status().services[0].assignment.is_none());
    assert_eq!(security_drops(&r), 4);

    // The genuine one is accepted.
    let out = feed(&mut r, secs(16), c.redirect_assign(&[me], [0; 256]));
    assert_eq!(publishes(&out).len(), 1, "{out:?}");
    let key = r.status().services[0].assignment.clone().expect("adopted");
    assert_eq!((key.address, key.change_number), (me, 1));

    // A second member joins; a forged assignment handing it every other bucket changes
    // nothing: the table and the assignment key stay.
    let mut b = md5_cache(3);
    join(&mut r, &mut b, secs(20));
    c.hear(&sends(&feed(&mut r, secs(21), c.here_i_am()))[0]);
    let (ca, ba) = (c.addr, b.addr);
    let k = FlowKey::new(0, 1 << 24, 1000, 80);
    let mut forged = c.clone();
    forged.password = Some(b"wccpTesT".to_vec());
    let d = forged.redirect_assign(&[ca, ba], halves());
    assert_refused(&mut r, &c, 22, d, "forged re-assignment");
    let mut plain = c.clone();
    plain.password = None;
    let d = plain.redirect_assign(&[ca, ba], halves());
    assert_refused(&mut r, &c, 22, d, "unsigned re-assignment");
    let now = r.status_at(secs(16)).services[0].assignment.clone();
    assert_eq!(now, Some(key), "the first assignment, accepted at 16 s");
    // The same assignment, signed, moves the bucket: the refusals above were for security only.
    let out = feed(&mut r, secs(22), c.redirect_assign(&[ca, ba], halves()));
    let t = publishes(&out)[0].1.clone().expect("table");
    assert!(matches!(t.lookup(&k), Lookup::Redirect { target: 1, .. }));
}

#[test]
fn redirect_assign_without_security_info_is_not_adopted() {
    let mut r = md5_router();
    let mut c = md5_cache(2);
    join(&mut r, &mut c, secs(1));
    let me = c.addr;
    // Built unsigned, then the whole Security Info component (8 octets) cut out.
    let mut plain = c.clone();
    plain.password = None;
    let mut d = plain.redirect_assign(&[me], [0; 256]);
    assert_eq!(&d.payload[8..12], &[0, 0, 0, 4], "Security Info, 4 octets");
    d.payload.drain(8..16);
    let len = u16::from_be_bytes([d.payload[6], d.payload[7]]) - 8;
    d.payload[6..8].copy_from_slice(&len.to_be_bytes());
    let out = feed(&mut r, secs(16), d);
    assert!(publishes(&out).is_empty(), "{out:?}");
    assert!(sends(&out).is_empty());
    // Security Info is mandatory: without it the message does not decode at all.
    assert_eq!(drop_reasons(&out), vec!["malformed"]);
    let st = r.status();
    assert!(st.services[0].assignment.is_none());
    assert_eq!(st.unattributed.drops.get("malformed"), Some(&1));
    assert!(st.services[0].caches[0].usable);
}

#[test]
fn md5_redirect_assign_without_a_configured_password_is_not_adopted() {
    let mut r = router_with(vec![ServiceConfig::web_cache()]);
    let mut c = FakeCache::web_cache(2);
    join(&mut r, &mut c, secs(1));
    let me = c.addr;
    let mut signed = c.clone();
    signed.password = Some(PASSWORD.to_vec());
    let d = signed.redirect_assign(&[me], [0; 256]);
    assert_refused(&mut r, &c, 16, d, "MD5 where none is configured");
    assert!(r.status().services[0].assignment.is_none());
    // Unsigned, as configured, it is adopted.
    let out = feed(&mut r, secs(16), c.redirect_assign(&[me], [0; 256]));
    assert_eq!(publishes(&out).len(), 1, "{out:?}");
}

/// A REMOVAL_QUERY is a router's message; sent to a router it is refused, but a forged one is
/// refused for security first (and counted so), before its type is looked at.
#[test]
fn forged_removal_query_is_refused_for_security() {
    let mut r = md5_router();
    let mut c = md5_cache(2);
    join(&mut r, &mut c, secs(1));
    let rq = |pw: Option<&[u8]>| {
        let m = RemovalQuery {
            version: Version::V2_00,
            security: if pw.is_some() {
                Security::MD5_UNSIGNED
            } else {
                Security::None
            },
            service: wire::ServiceInfo::standard(0),
            query: RouterQueryInfo {
                router: wire::Addr::from_ipv4(ROUTER),
                receive_id: c.receive_id + 1,
                sent_to: wire::Addr::from_ipv4(ROUTER),
                target: wire::Addr::from_ipv4(c.addr),
            },
            address_table: None,
        };
        let mut v = m.to_vec().expect("emit");
        if let Some(p) = pw {
            wire::sign(&mut v, p).expect("sign");
        }
        Datagram {
            local: ROUTER,
            peer: std::net::Ipv4Addr::new(10, 200, 0, 9),
            payload: v,
        }
    };
    let before = r.status();
    for (pw, what) in [(Some(&b"nope"[..]), "wrong password"), (None, "no digest")] {
        let out = feed(&mut r, secs(5), rq(pw));
        assert!(
            sends(&out).is_empty() && publishes(&out).is_empty(),
            "{out:?}"
        );
        assert_eq!(drop_reasons(&out), vec!["security"], "{what}");
    }
    // With the right password it authenticates, and is refused for its type.
    let out = feed(&mut r, secs(5), rq(Some(PASSWORD)));
    assert_eq!(drop_reasons(&out), vec!["unexpected_type"]);
    let after = r.status();
    assert_eq!(after.services[0].counters.drops.get("security"), Some(&2));
    assert_eq!(
        after.services[0].change_number,
        before.services[0].change_number
    );
    assert_eq!(after.services[0].receive_id, before.services[0].receive_id);
    assert!(after.services[0].caches[0].usable);
    // Nothing is due earlier than before (no timer armed by the forgery).
    assert_eq!(r.poll_timeout(), Some(secs(1 + 25)));
}

/// A sender whose messages fail authentication and that the group does not track otherwise is
/// listed (for the operator) as not usable with reason `md5_failure`, at most 16 of them, and
/// never becomes a member; once it authenticates it is an ordinary cache.
#[test]
fn senders_failing_md5_are_listed_not_joined() {
    use wccp_control::router::NotUsable;
    let mut r = md5_router();
    let mut c = md5_cache(2);
    join(&mut r, &mut c, secs(1));
    let mut bad = FakeCache::web_cache(3);
    bad.password = Some(b"nope".to_vec());
    let out = feed(&mut r, secs(2), bad.here_i_am());
    assert!(sends(&out).is_empty());
    let st = r.status_at(secs(3));
    let listed = st.services[0]
        .caches
        .iter()
        .find(|x| x.address == bad.addr)
        .expect("the failing sender is listed");
    assert!(!listed.usable);
    assert_eq!(listed.reason, Some(NotUsable::Md5Failure));
    assert_eq!((listed.buckets, listed.last_heard_ms_ago), (0, 1_000));
    assert_eq!(st.services[0].caches.iter().filter(|x| x.usable).count(), 1);
    // Bounded: a flood of failing senders keeps the 16 most recent.
    for n in 10..60 {
        let mut f = FakeCache::web_cache(n);
        f.password = Some(b"nope".to_vec());
        feed(&mut r, secs(4), f.here_i_am());
    }
    let st = r.status();
    let failing: Vec<_> = st.services[0]
        .caches
        .iter()
        .filter(|x| x.reason == Some(NotUsable::Md5Failure))
        .map(|x| x.address)
        .collect();
    assert_eq!(failing.len(), 16, "{failing:?}");
    assert!(failing.contains(&cache_addr(59)) && !failing.contains(&bad.addr));
    // Membership never moved.
    assert_eq!(st.services[0].change_number, c.change_number);
    // The right password: an ordinary (joining) cache, no longer listed as failing.
    let mut good = md5_cache(59);
    good.hear(&sends(&feed(&mut r, secs(5), good.here_i_am()))[0]);
    let st = r.status();
    let g: Vec<_> = st.services[0]
        .caches
        .iter()
        .filter(|x| x.address == good.addr)
        .collect();
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(g[0].reason, Some(NotUsable::BadReceiveId));
}
