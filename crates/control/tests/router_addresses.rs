//! A router with two addresses A and B (`router.addresses: [A, B]`, the daemon's Router ID is
//! the first, A): a cache that sends to B is answered from B, with Router ID A and Sent To B;
//! its view may name the router by either; a REDIRECT_ASSIGN for A sent to B is accepted, and
//! a REMOVAL_QUERY goes out from B. Without a configured Router ID, the Router ID is the
//! address the cache sent to (router/group.rs `Ctx::router_id`).

mod router_support;

use std::net::Ipv4Addr;

use router_support::*;
use wccp_control::router::{Router, RouterConfig, ServiceConfig};
use wccp_control::{Datagram, Machine};
use wire::{ISeeYou, MessageRepr, RemovalQuery, RouterAssignment};

const A: Ipv4Addr = ROUTER;
const B: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);

fn two_address_router(router_id: Option<Ipv4Addr>) -> Router {
    Router::new(RouterConfig {
        addresses: vec![A, B],
        router_id,
        services: vec![ServiceConfig::web_cache()],
    })
    .expect("valid config")
}

/// The HERE_I_AM of `c`, sent to `to`, naming the router `named` in its view.
fn hia_to(c: &FakeCache, to: Ipv4Addr, named: Ipv4Addr) -> Datagram {
    let rid = c.receive_id;
    let mut d = c.here_i_am_with(|h| {
        h.view.routers[0].addr = wire::Addr::from_ipv4(named);
        h.view.routers[0].receive_id = rid;
    });
    d.local = to;
    d
}

/// `c` sends a HERE_I_AM to `to` naming `named` at `at` seconds; returns the one answer, checked
/// to leave from `to` (the address the cache sent to), and records it in `c`.
fn exchange(r: &mut Router, c: &mut FakeCache, at: u64, to: Ipv4Addr, named: Ipv4Addr) -> ISeeYou {
    let outs = feed(r, secs(at), hia_to(c, to, named));
    isy_from(c, &outs, to)
}

/// The one I_SEE_YOU in `outs`: checked to leave from `from` to `c`, recorded in `c`.
fn isy_from(c: &mut FakeCache, outs: &[wccp_control::Output], from: Ipv4Addr) -> ISeeYou {
    let s = sends(outs);
    assert_eq!(s.len(), 1, "{outs:?}");
    assert_eq!((s[0].local, s[0].peer), (from, c.addr), "{outs:?}");
    let isy = ISeeYou::parse(&s[0].payload).expect("ISY");
    c.receive_id = isy.identity.router.receive_id;
    c.change_number = isy.view.change_number;
    isy
}

#[test]
fn answered_from_the_address_the_cache_sent_to_with_the_router_id() {
    let mut r = two_address_router(Some(A));
    let mut c = FakeCache::web_cache(2);
    // First HIA to B (a cache configured with B names B, Receive ID 0).
    let isy = exchange(&mut r, &mut c, 1, B, B);
    assert_eq!(isy.identity.router.addr.to_ipv4(), A, "Router ID");
    assert_eq!(isy.identity.sent_to.to_ipv4(), B, "Sent To");
    assert_eq!(
        isy.identity.received_from,
        vec![wire::Addr::from_ipv4(c.addr)]
    );
    // The echo may name the router by its Router ID (what our cache agent learns) ...
    let isy = exchange(&mut r, &mut c, 2, B, A);
    assert_eq!(isy.view.caches, vec![c.identity()], "usable");
    assert_eq!(isy.view.routers, vec![wire::Addr::from_ipv4(A)]);
    assert_eq!(
        (
            isy.identity.router.addr.to_ipv4(),
            isy.identity.sent_to.to_ipv4()
        ),
        (A, B)
    );
    // ... or by the address it sends to (what Squid does).
    let isy = exchange(&mut r, &mut c, 3, B, B);
    assert_eq!(isy.view.caches.len(), 1, "still usable");
    // An echo naming a third address is no echo.
    let other = Ipv4Addr::new(10, 202, 0, 1);
    let isy = exchange(&mut r, &mut c, 4, B, other);
    assert!(isy.view.caches.is_empty(), "not an echo of ours");
    let isy = exchange(&mut r, &mut c, 5, B, A);
    assert_eq!(isy.view.caches.len(), 1);

    // A REDIRECT_ASSIGN naming the Router ID, sent to B, is ours.
    let me = c.addr;
    let mut d = c.redirect_assign_raw(
        vec![RouterAssignment {
            addr: wire::Addr::from_ipv4(A),
            receive_id: c.receive_id,
            change_number: c.change_number,
        }],
        &[me],
        [0; 256],
    );
    d.local = B;
    let out = feed(&mut r, secs(20), d);
    assert_eq!(publishes(&out).len(), 1, "{out:?}");
    assert_eq!(
        r.status().services[0]
            .assignment
            .as_ref()
            .map(|a| a.address),
        Some(me)
    );

    // Silence: the REMOVAL_QUERY leaves from B, names Router ID A and Sent To B.
    let out = tick(&mut r, secs(5 + 25));
    let s = sends(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!((s[0].local, s[0].peer), (B, c.addr));
    let rq = RemovalQuery::parse(&s[0].payload).expect("RQ");
    assert_eq!(rq.query.router.to_ipv4(), A);
    assert_eq!(rq.query.sent_to.to_ipv4(), B);
    assert_eq!(rq.query.target.to_ipv4(), c.addr);
}

#[test]
fn each_cache_is_answered_from_its_own_address() {
    let mut r = two_address_router(Some(A));
    let mut via_a = FakeCache::web_cache(2);
    let mut via_b = FakeCache::web_cache(3);
    let isy = exchange(&mut r, &mut via_a, 1, A, A);
    assert_eq!(
        (
            isy.identity.router.addr.to_ipv4(),
            isy.identity.sent_to.to_ipv4()
        ),
        (A, A)
    );
    let isy = exchange(&mut r, &mut via_b, 1, B, B);
    assert_eq!(
        (
            isy.identity.router.addr.to_ipv4(),
            isy.identity.sent_to.to_ipv4()
        ),
        (A, B)
    );
    // Both join; the second join's unsolicited I_SEE_YOU to the first leaves from A.
    exchange(&mut r, &mut via_a, 2, A, A);
    let out = feed(&mut r, secs(2), hia_to(&via_b, B, A));
    let s = sends(&out);
    assert_eq!(s.len(), 2, "{out:?}");
    assert_eq!((s[0].local, s[0].peer), (B, via_b.addr));
    assert_eq!((s[1].local, s[1].peer), (A, via_a.addr));
    let told = ISeeYou::parse(&s[1].payload).expect("ISY");
    assert_eq!(told.identity.sent_to.to_ipv4(), A);
    assert_eq!(told.view.caches.len(), 2);
}

#[test]
fn without_a_router_id_the_router_id_is_the_address_sent_to() {
    let mut r = two_address_router(None);
    let mut c = FakeCache::web_cache(2);
    let isy = exchange(&mut r, &mut c, 1, B, B);
    assert_eq!(
        (
            isy.identity.router.addr.to_ipv4(),
            isy.identity.sent_to.to_ipv4()
        ),
        (B, B)
    );
    let isy = exchange(&mut r, &mut c, 2, B, B);
    assert_eq!(isy.view.caches.len(), 1);
    assert_eq!(isy.view.routers, vec![wire::Addr::from_ipv4(B)]);
    // The driver binds both.
    assert_eq!(r.local_addresses(), vec![A, B]);
}
