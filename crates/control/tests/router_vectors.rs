//! The router against real HERE_I_AMs and REDIRECT_ASSIGNs captured from Squid 5.7 (stock and
//! fixed) and Apache Traffic Server 9.2.5 (vectors/README.md): every one is answered with an
//! I_SEE_YOU the cache accepts, whose identity/view components are byte-identical to the ones of
//! the scripted router those caches did accept, and the captured REDIRECT_ASSIGNs are accepted.

mod router_support;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use assign::hash::FlowKey;
use assign::table::Lookup;
use router_support::*;
use wccp_control::router::{Router, RouterConfig, ServiceConfig};
use wccp_control::{Datagram, Instant};
use wire::{ISeeYou, MessageRepr};

const CACHE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);

fn vector(name: &str) -> Vec<u8> {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        base.join("../wccp-wire/tests/vectors").join(name),
        PathBuf::from("/work/shared/wccp/vectors").join(name),
    ];
    for p in &candidates {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            return (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect();
        }
    }
    panic!("vector {name} not found in {candidates:?}");
}

fn router_for(prefix: &str) -> Router {
    let mut svc = if prefix.contains("dyn80") || prefix.starts_with("ats") {
        ServiceConfig::new(dyn_key(80))
    } else {
        ServiceConfig::web_cache()
    };
    if prefix.contains("md5") {
        svc.password = Some(b"wccpTest".to_vec());
    }
    Router::new(RouterConfig {
        addresses: vec![ROUTER],
        router_id: None,
        services: vec![svc],
    })
    .expect("config")
}

fn from_cache(payload: Vec<u8>) -> Datagram {
    Datagram {
        local: ROUTER,
        peer: CACHE,
        payload,
    }
}

/// What Squid and ATS check in an I_SEE_YOU (docs/protocol.md 10.1 to 10.8, "what a router must
/// do").
fn check_acceptable(prefix: &str, hia: &[u8], isy_d: &Datagram) -> ISeeYou {
    assert_eq!(
        (isy_d.local, isy_d.peer),
        (ROUTER, CACHE),
        "{prefix}: from the address used"
    );
    let p = &isy_d.payload;
    assert_eq!(&p[0..4], &[0, 0, 0, 11], "{prefix}: type I_SEE_YOU");
    assert_eq!(&p[4..6], &[2, 0], "{prefix}: version 0x0200");
    assert_eq!(
        usize::from(u16::from_be_bytes([p[6], p[7]])) + 8,
        p.len(),
        "{prefix}: length"
    );
    assert_eq!(
        component_types(p),
        vec![0, 1, 2, 4, 8],
        "{prefix}: component order"
    );
    assert_eq!(
        component_body(p, 1),
        component_body(hia, 1),
        "{prefix}: Service Info echoed"
    );
    if prefix.contains("md5") {
        wire::verify(p, b"wccpTest").expect("signed");
        assert_eq!(component_body(p, 0).map(<[u8]>::len), Some(20));
    } else {
        assert_eq!(component_body(p, 0), Some(&[0u8, 0, 0, 0][..]));
    }
    let isy = ISeeYou::parse(p).expect("parses");
    assert_ne!(isy.identity.router.receive_id, 0, "{prefix}: receive id");
    assert_eq!(isy.identity.sent_to.to_ipv4(), ROUTER, "{prefix}: sent to");
    assert!(isy
        .identity
        .received_from
        .contains(&wire::Addr::from_ipv4(CACHE)));
    assert_ne!(isy.view.change_number, 0, "{prefix}: change number");
    // Capabilities: every value shares a bit with GRE/hash/GRE (Squid's check).
    let caps = isy.capabilities.as_ref().expect("capabilities");
    for v in [
        caps.forwarding_method(),
        caps.assignment_method(),
        caps.packet_return_method(),
    ] {
        assert!(v.is_some_and(|v| v & 1 != 0), "{prefix}: caps {caps:?}");
    }
    isy
}

#[test]
fn every_captured_here_i_am_gets_an_acceptable_i_see_you() {
    for name in [
        "squid_here_i_am",
        "squid_here_i_am_1",
        "squid_md5_here_i_am",
        "squid_dyn80_here_i_am",
        "squidfix_here_i_am",
        "squidfix_md5_here_i_am",
        "squidfix_dyn80_nocaps_here_i_am",
        "ats_here_i_am",
    ] {
        let mut r = router_for(name);
        let hia = vector(&format!("{name}.hex"));
        let out = feed(&mut r, Instant(1_400), from_cache(hia.clone()));
        assert!(drop_reasons(&out).is_empty(), "{name}: {out:?}");
        let s = sends(&out);
        assert_eq!(s.len(), 1, "{name}");
        let isy = check_acceptable(name, &hia, &s[0]);
        assert!(
            isy.view.caches.is_empty(),
            "{name}: first ISY lists no cache"
        );
    }
}

/// Feeds the three captured HIAs and the captured RA of one exchange.
fn handshake(prefix: &str) {
    let mut r = router_for(prefix);
    let mut last = None;
    for (i, suffix) in ["", "_1", "_2"].iter().enumerate() {
        let hia = vector(&format!("{prefix}_here_i_am{suffix}.hex"));
        let t = Instant(1_400 + 10_000 * i as u64);
        let out = feed(&mut r, t, from_cache(hia.clone()));
        let s = sends(&out);
        assert_eq!(s.len(), 1, "{prefix}{suffix}: {out:?}");
        let isy = check_acceptable(prefix, &hia, &s[0]);
        if i > 0 {
            // Same Router Identity and Router View as the scripted router these caches accepted.
            let theirs = vector(&format!("{prefix}_i_see_you{suffix}.hex"));
            for comp in [2u16, 4] {
                assert_eq!(
                    component_body(&s[0].payload, comp),
                    component_body(&theirs, comp),
                    "{prefix}{suffix}: component {comp}"
                );
            }
            assert_eq!(isy.view.caches.len(), 1);
        }
        last = Some(isy);
    }
    let last = last.expect("ISYs");
    assert_eq!(last.view.change_number, 2);
    let ra = vector(&format!("{prefix}_redirect_assign.hex"));
    let out = feed(&mut r, Instant(26_400), from_cache(ra));
    assert!(
        drop_reasons(&out).is_empty(),
        "{prefix}: RA accepted: {out:?}"
    );
    let p = publishes(&out);
    assert_eq!(p.len(), 1, "{prefix}");
    let t = p[0].1.clone().expect("table");
    assert_eq!(t.targets().len(), 1);
    assert_eq!(t.targets()[0].addr, CACHE);
    assert_eq!(t.share_counts(), vec![256]);
    assert!(matches!(
        t.lookup(&FlowKey::new(0x0a00_0001, 0x5db8_d822, 40000, 80)),
        Lookup::Redirect { target: 0, .. }
    ));
    // The next ISY reflects the assignment key.
    let hia = vector(&format!("{prefix}_here_i_am_2.hex"));
    let out = feed(&mut r, Instant(31_400), from_cache(hia));
    let isy = ISeeYou::parse(&sends(&out)[0].payload).unwrap();
    assert_eq!(isy.view.key.addr.to_ipv4(), CACHE);
    assert_ne!(isy.view.key.change_number, 0);
}

#[test]
fn squidfix_full_handshake() {
    handshake("squidfix");
}

#[test]
fn squidfix_md5_full_handshake() {
    handshake("squidfix_md5");
}

#[test]
fn squidfix_dyn80_full_handshake() {
    handshake("squidfix_dyn80_nocaps");
}

#[test]
fn ats_full_handshake() {
    handshake("ats");
}

#[test]
fn captured_md5_message_with_wrong_password_is_dropped() {
    let mut svc = ServiceConfig::web_cache();
    svc.password = Some(b"wccpTesx".to_vec());
    let mut r = Router::new(RouterConfig {
        addresses: vec![ROUTER],
        router_id: None,
        services: vec![svc],
    })
    .unwrap();
    let out = feed(
        &mut r,
        Instant(0),
        from_cache(vector("squid_md5_here_i_am.hex")),
    );
    assert!(sends(&out).is_empty());
    assert_eq!(drop_reasons(&out), vec!["security"]);
}
