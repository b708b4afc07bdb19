//! `wccpd explain` on the lab of `support`: every outcome, each cross-checked against what
//! `pipeline::process` does with the same flow as a real frame (the explanation must be the
//! pipeline's own decision, not a second opinion).

mod support;

use std::net::Ipv4Addr;

use support::*;
use wccp_dataplane::explain::{explain, Exclusion, ExplainError, Explanation, Flow, Outcome};
use wccp_dataplane::tables::{compile, State, Tables};
use wccp_dataplane::Reason;

fn flow(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Flow {
    Flow {
        protocol: 6,
        src,
        dst,
        sport,
        dport,
    }
}

fn web(dst: Ipv4Addr) -> Flow {
    flow(CLIENT_IP, dst, 40000, 80)
}

/// Explains `f` arriving on `port` and runs the same TCP flow through the pipeline, which
/// must end with `reason` (a TX verdict or a drop).
#[track_caller]
fn both(t: &Tables, port: u16, mac: [u8; 6], f: Flow, reason: Reason) -> Explanation {
    let name = t.ports[usize::from(port)].name.clone();
    let e = explain(t, Some(&name), f).unwrap();
    let frame = to_port(port, mac, &Tcp::new(f.src, f.dst, f.sport, f.dport).ip());
    let r = run(t, port, &frame);
    assert_eq!(
        r.terminal(),
        vec![reason],
        "pipeline for {f:?}: {:?}; explain said {e:#?}",
        r.action
    );
    assert!(!e.summary.is_empty());
    e
}

#[test]
fn redirected_gre_with_buckets_cache_and_port() {
    let t = Lab::new().tables();
    let e = both(&t, CLIENT, CLIENT_MAC, web(DST_A), Reason::RedirectedGre);
    let Outcome::Redirected {
        service,
        cache,
        method,
        primary_bucket,
        used_alternate,
        port,
        ..
    } = &e.outcome
    else {
        panic!("{e:#?}")
    };
    assert_eq!((service.id, service.dynamic), (0, false));
    assert_eq!(*cache, CACHE_A);
    assert_eq!(*method, "gre");
    assert_eq!(*primary_bucket, web_bucket(CLIENT_IP, DST_A));
    assert!(!used_alternate);
    assert_eq!(port.as_deref(), Some("cache"));
    assert!(e.dataplane);
    assert_eq!(e.in_port.as_deref(), Some("client"));
    assert_eq!(e.out_port.as_deref(), Some("server"));
    assert_eq!(e.services.last().unwrap().verdict, "taken");
    assert!(
        e.summary.contains("is redirected by service web-cache"),
        "{}",
        e.summary
    );
    assert!(e.summary.contains(&CACHE_A.to_string()), "{}", e.summary);
    // The alternate bucket, when the primary says so.
    let e = both(&t, CLIENT, CLIENT_MAC, web(DST_ALT), Reason::RedirectedGre);
    assert!(
        matches!(e.outcome, Outcome::Redirected { used_alternate: true, cache, .. } if cache == CACHE_B),
        "{e:#?}"
    );
    // JSON round trip (the control socket's answer).
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["outcome"], "redirected");
    let back: Explanation = serde_json::from_value(v).unwrap();
    assert_eq!(back, e);
}

#[test]
fn redirected_l2() {
    let t = Lab::new().tables();
    let e = both(
        &t,
        CLIENT,
        CLIENT_MAC,
        flow(CLIENT_IP, DST_A, 40000, 443),
        Reason::RedirectedL2,
    );
    assert!(
        matches!(&e.outcome, Outcome::Redirected { method: "l2", cache, service, .. }
            if *cache == CACHE_L2 && service.dynamic && service.id == S_L2.id),
        "{e:#?}"
    );
}

#[test]
fn excluded_member_exclude_in_and_no_direction() {
    // From the cache port (exclude_in, no redirect in) to a server that redirects nothing.
    let t = Lab::new().tables();
    let e = both(
        &t,
        CACHE,
        CACHE_A_MAC,
        flow(CACHE_NET_HOST, DST_A, 40000, 80),
        Reason::Routed,
    );
    assert_eq!(
        e.outcome,
        Outcome::Excluded {
            why: Exclusion::NoRedirectDirection
        }
    );
    // The server port redirects out, but the cache port is exclude_in.
    let t = Lab::new().port(SERVER, |p| p.redirect_out = true).tables();
    let e = both(
        &t,
        CACHE,
        CACHE_NET_HOST_MAC,
        flow(CACHE_NET_HOST, DST_A, 40000, 80),
        Reason::Routed,
    );
    assert_eq!(
        e.outcome,
        Outcome::Excluded {
            why: Exclusion::ExcludeIn
        }
    );
    assert!(e.summary.contains("exclude_in"), "{}", e.summary);
    // A member cache's own traffic, on a port that redirects in.
    let t = Lab::new().port(CACHE, |p| p.redirect_in = true).tables();
    let e = both(
        &t,
        CACHE,
        CACHE_A_MAC,
        flow(CACHE_A, DST_A, 40000, 80),
        Reason::Routed,
    );
    assert_eq!(
        e.outcome,
        Outcome::Excluded {
            why: Exclusion::MemberCache
        }
    );
    assert!(e.summary.contains("member cache"), "{}", e.summary);
}

#[test]
fn no_service_and_denied() {
    let t = Lab::new().tables();
    let e = both(
        &t,
        CLIENT,
        CLIENT_MAC,
        flow(CLIENT_IP, DST_A, 40000, 22),
        Reason::Routed,
    );
    assert_eq!(e.outcome, Outcome::NoService);
    assert!(e.services.iter().all(|s| s.verdict == "no_match"), "{e:#?}");
    let t = Lab::new().with_deny().tables();
    let e = both(&t, CLIENT, CLIENT_MAC, web(DST_DENIED), Reason::Routed);
    assert!(
        matches!(&e.outcome, Outcome::Denied { service } if service.id == 0 && !service.dynamic),
        "{e:#?}"
    );
    assert!(e.summary.contains("redirect list"), "{}", e.summary);
    // With check_all_services the next service takes it, and the explanation shows the deny.
    let mut lab = Lab::new().with_deny();
    lab.topo.check_all = true;
    let t = lab.tables();
    let e = both(
        &t,
        CLIENT,
        CLIENT_MAC,
        web(DST_DENIED),
        Reason::RedirectedGre,
    );
    assert!(
        matches!(&e.outcome, Outcome::Redirected { service, cache, .. } if service.id == 71 && *cache == CACHE_B),
        "{e:#?}"
    );
    assert!(
        e.services
            .iter()
            .any(|s| s.verdict == "denied" && s.service.id == 0),
        "{e:#?}"
    );
    // A service without a published table takes nothing.
    let t = Lab::new()
        .table(S_WEB, None)
        .table(S_FALLBACK, None)
        .tables();
    let e = both(&t, CLIENT, CLIENT_MAC, web(DST_A), Reason::Routed);
    assert_eq!(e.outcome, Outcome::NoService);
    assert!(
        e.services
            .iter()
            .any(|s| s.verdict == "no_table" && s.service.id == 0),
        "{e:#?}"
    );
}

#[test]
fn unassigned_drained_closed_and_unresolved() {
    let t = Lab::new().tables();
    let e = both(
        &t,
        CLIENT,
        CLIENT_MAC,
        web(DST_UNASSIGNED),
        Reason::Unassigned,
    );
    let Outcome::Unassigned {
        primary_bucket,
        detail,
        ..
    } = &e.outcome
    else {
        panic!("{e:#?}")
    };
    assert_eq!(*primary_bucket, Some(web_bucket(CLIENT_IP, DST_UNASSIGNED)));
    assert!(detail.contains("unassigned"), "{detail}");
    // A drained cache's bucket.
    let t = Lab::new()
        .table(S_WEB, Some(web_table().with_drained(|a| a != CACHE_A)))
        .tables();
    let e = both(&t, CLIENT, CLIENT_MAC, web(DST_A), Reason::Unassigned);
    assert!(
        matches!(&e.outcome, Outcome::Unassigned { detail, .. } if detail.contains("drained")),
        "{e:#?}"
    );
    // Closed: dropped.
    let t = Lab::new()
        .table(S_WEB, Some(web_table().with_closed(true)))
        .tables();
    let e = both(
        &t,
        CLIENT,
        CLIENT_MAC,
        web(DST_UNASSIGNED),
        Reason::ClosedService,
    );
    assert!(matches!(e.outcome, Outcome::Closed { .. }), "{e:#?}");
    assert!(e.summary.contains("dropped"), "{}", e.summary);
    // The cache's MAC is not resolved: routed meanwhile.
    let t = Lab::new().tables();
    let e = both(
        &t,
        CLIENT,
        CLIENT_MAC,
        web(DST_UNRESOLVED),
        Reason::Unassigned,
    );
    assert_eq!(
        e.outcome,
        Outcome::TargetUnresolved {
            service: e.services.last().unwrap().service,
            cache: CACHE_C,
            closed: false
        }
    );
}

#[test]
fn no_route_local_and_not_routable() {
    let t = Lab::new().tables();
    let e = both(&t, CLIENT, CLIENT_MAC, web(NOWHERE), Reason::NoRoute);
    assert_eq!(e.outcome, Outcome::NoRoute);
    let e = explain(&t, Some("client"), web(PORT_IP[1])).unwrap();
    assert_eq!(e.outcome, Outcome::Local);
    let e = explain(&t, None, web(Ipv4Addr::new(224, 0, 0, 5))).unwrap();
    assert_eq!(e.outcome, Outcome::NotRoutable);
}

#[test]
fn the_arrival_port_defaults_to_the_route_back_to_the_source() {
    let t = Lab::new().tables();
    let e = explain(&t, None, web(DST_A)).unwrap();
    assert_eq!(e.in_port.as_deref(), Some("client"));
    assert!(e.in_port_assumed);
    assert!(matches!(e.outcome, Outcome::Redirected { .. }), "{e:#?}");
    assert_eq!(
        explain(&t, Some("uplink"), web(DST_A)),
        Err(ExplainError::UnknownPort("uplink".into()))
    );
    let err = explain(&t, None, flow(NOWHERE, DST_A, 1, 80)).unwrap_err();
    assert_eq!(err, ExplainError::NoInPort(NOWHERE));
    assert!(err.to_string().contains("--in"), "{err}");
}

#[test]
fn without_a_data_plane_from_the_tables_alone() {
    // The socket transport: services and their published tables, no ports.
    let mut topo = topology();
    topo.ports.clear();
    topo.routes.clear();
    topo.neighbours.clear();
    let lab = Lab::new();
    let t = compile(&topo, &lab.state, 1).tables;
    let e = explain(&t, Some("ignored"), web(DST_A)).unwrap();
    assert!(!e.dataplane);
    assert_eq!(e.in_port, None);
    assert!(
        matches!(&e.outcome, Outcome::Redirected { cache, method: "gre", port: None, .. } if *cache == CACHE_A),
        "{e:#?}"
    );
    assert!(e.summary.contains("would be redirected"), "{}", e.summary);
    assert!(e.summary.contains("no data plane"), "{}", e.summary);
    // Unassigned and no-service answers need no ports either.
    let e = explain(&t, None, web(DST_UNASSIGNED)).unwrap();
    assert!(matches!(e.outcome, Outcome::Unassigned { .. }), "{e:#?}");
    let t = compile(&topo, &State::default(), 1).tables;
    let e = explain(&t, None, web(DST_A)).unwrap();
    assert_eq!(e.outcome, Outcome::NoService);
}
