//! The cache agent against the real exchanges of a fixed Squid 5.7 and a scripted router
//! (`shared/wccp/vectors/squidfix*`): fed the same I_SEE_YOUs at the same times, our agent sends
//! Squid's REDIRECT_ASSIGN byte for byte, plain and MD5, at the same moment, and Squid's
//! HERE_I_AMs except where Squid does not conform: it never sets U (we do until assigned,
//! docs/protocol.md §5.4), always adds Capabilities, and never lists caches in its view.

mod cache_support;

use std::net::Ipv4Addr;

use cache_support::squid::*;
use cache_support::{drain, hias, ms, run_until, sent, tick};
use wccp_control::cache::{CacheAgent, CacheConfig, CacheService, ServiceDefinition};
use wccp_control::{Datagram, Machine};
use wire::{Addr, Message};

const CACHE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);

fn agent(password: Option<&[u8]>) -> CacheAgent {
    let mut svc = CacheService::new(ServiceDefinition::web_cache());
    svc.password = password.map(<[u8]>::to_vec);
    CacheAgent::new(CacheConfig::new(CACHE, vec![ROUTER], vec![svc])).unwrap()
}

fn from_router(hex: &[&str]) -> Datagram {
    Datagram {
        local: CACHE,
        peer: ROUTER,
        payload: unhex(hex),
    }
}

fn run(password: Option<&[u8]>, isys: [&[&str]; 3], hia1: &[&str], ra: &[&str]) {
    let mut a = agent(password);
    // t = 0: first HERE_I_AM. Squid always adds Capabilities; we only answer offered ones.
    let first = hias(&tick(&mut a, 0)).remove(0).1;
    let Message::HereIAm(mut squid0) = Message::parse(&unhex(SQUIDFIX_HERE_I_AM)).unwrap() else {
        panic!()
    };
    squid0.capabilities = None;
    assert!(first.identity.flags.unassigned());
    squid0.identity.flags = first.identity.flags;
    squid0.security = first.security;
    assert_eq!(first, squid0);

    // First I_SEE_YOU (no caches, capabilities GRE/hash/GRE): the next HERE_I_AM is Squid's but
    // for the U flag.
    a.handle_datagram(ms(1), from_router(isys[0]));
    assert!(drain(&mut a).is_empty());
    let out = tick(&mut a, 10_000);
    let ours = &sent(&out)[0].payload;
    if let Some(p) = password {
        wire::verify(ours, p).unwrap();
    }
    let Message::HereIAm(mut ours) = Message::parse(ours).unwrap() else {
        panic!()
    };
    let Message::HereIAm(squid1) = Message::parse(&unhex(hia1)).unwrap() else {
        panic!()
    };
    assert!(ours.identity.flags.unassigned());
    ours.identity.flags = squid1.identity.flags;
    ours.security = squid1.security;
    assert_eq!(ours, squid1, "HERE_I_AM after the first I_SEE_YOU");

    // The I_SEE_YOU that lists us (change 2) at t = 10.0 s, another at 20.0 s.
    a.handle_datagram(ms(10_001), from_router(isys[1]));
    drain(&mut a);
    let h = hias(&tick(&mut a, 20_000)).remove(0).1;
    assert_eq!(h.view.routers[0].receive_id, 2);
    assert_eq!(
        h.view.caches,
        vec![Addr::from_ipv4(CACHE)],
        "unlike Squid, we list learnt caches"
    );
    a.handle_datagram(ms(20_001), from_router(isys[2]));
    drain(&mut a);

    // REDIRECT_ASSIGN exactly 15 s after the change, identical to Squid's.
    let before = run_until(&mut a, 25_000);
    assert!(before
        .iter()
        .all(|(_, o)| !matches!(o, wccp_control::Output::Send(_))));
    let out = tick(&mut a, 25_001);
    let d = sent(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].peer, ROUTER);
    assert_eq!(d[0].payload, unhex(ra), "REDIRECT_ASSIGN");
}

#[test]
fn matches_squid_plain() {
    run(
        None,
        [
            SQUIDFIX_I_SEE_YOU,
            SQUIDFIX_I_SEE_YOU_1,
            SQUIDFIX_I_SEE_YOU_2,
        ],
        SQUIDFIX_HERE_I_AM_1,
        SQUIDFIX_REDIRECT_ASSIGN,
    );
}

#[test]
fn matches_squid_md5() {
    run(
        Some(b"wccpTest"),
        [
            SQUIDFIX_MD5_I_SEE_YOU,
            SQUIDFIX_MD5_I_SEE_YOU_1,
            SQUIDFIX_MD5_I_SEE_YOU_2,
        ],
        SQUIDFIX_MD5_HERE_I_AM_1,
        SQUIDFIX_MD5_REDIRECT_ASSIGN,
    );
}
