//! `cache.health_check`: defaults, every key, and every problem with its line.

use std::net::{Ipv4Addr, SocketAddrV4};

use wccpd_config::{cache_from_str, HealthCheck, HealthCheckKind, Problem};

const BASE: &str = "cache:\n  address: 10.0.0.2\n  routers: [10.0.0.1]\n  services:\n    - id: 0\n      type: standard\n";

fn check(extra: &str) -> Option<HealthCheck> {
    cache_from_str(&format!("{BASE}{extra}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .health_check
}

fn problems(extra: &str) -> Vec<Problem> {
    cache_from_str(&format!("{BASE}{extra}"))
        .unwrap_err()
        .problems()
        .to_vec()
}

#[test]
fn absent_means_no_check_and_empty_means_tcp_to_the_proxy_port() {
    assert_eq!(check(""), None);
    let h = check("  health_check: {}\n").unwrap();
    assert_eq!(
        h,
        HealthCheck {
            kind: HealthCheckKind::Tcp,
            address: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3129),
            path: "/".into(),
            interval_ms: 1000,
            timeout_ms: 500,
            threshold: 3,
        }
    );
}

#[test]
fn every_key() {
    let h = check(
        "  health_check:\n    kind: http\n    address: 127.0.0.2:8080\n    path: /healthz\n    interval_ms: 2000\n    timeout_ms: 300\n    threshold: 5\n",
    )
    .unwrap();
    assert_eq!(h.kind, HealthCheckKind::Http);
    assert_eq!(h.kind.as_str(), "http");
    assert_eq!(h.address, "127.0.0.2:8080".parse().unwrap());
    assert_eq!(h.path, "/healthz");
    assert_eq!((h.interval_ms, h.timeout_ms, h.threshold), (2000, 300, 5));
    // A short interval lowers the default timeout with it.
    let h = check("  health_check: {interval_ms: 200}\n").unwrap();
    assert_eq!(h.timeout_ms, 200);
}

#[test]
fn problems_are_reported_with_their_key_and_line() {
    let ps = problems(
        "  health_check:\n    kind: icmp\n    address: localhost\n    path: /x\n    interval_ms: 50\n    threshold: 0\n    colour: red\n",
    );
    let at = |key: &str| {
        ps.iter()
            .find(|p| p.path.to_string() == format!("cache.health_check.{key}"))
            .unwrap_or_else(|| panic!("no problem at {key}: {ps:#?}"))
    };
    assert!(at("kind").message.contains("tcp or http"), "{ps:#?}");
    assert_eq!(at("kind").line, Some(8));
    assert!(at("address").message.contains("127.0.0.1:3129"), "{ps:#?}");
    assert!(
        at("interval_ms").message.contains("100..=600000"),
        "{ps:#?}"
    );
    assert!(at("threshold").message.contains("1..=100"), "{ps:#?}");
    assert!(at("colour").message.contains("unknown field"), "{ps:#?}");
    // A path needs http (kind icmp was reported and taken as tcp).
    assert!(at("path").message.contains("kind: http"), "{ps:#?}");
    // The timeout may not exceed the interval; a path is a path.
    let ps = problems(
        "  health_check: {kind: http, path: healthz, interval_ms: 1000, timeout_ms: 1500}\n",
    );
    assert!(
        ps.iter()
            .any(|p| p.path.to_string() == "cache.health_check.timeout_ms"),
        "{ps:#?}"
    );
    assert!(
        ps.iter()
            .any(|p| p.path.to_string() == "cache.health_check.path"),
        "{ps:#?}"
    );
    // `health_check:` with nothing says what to write.
    let ps = problems("  health_check:\n");
    assert!(ps[0].message.contains("health_check: {}"), "{ps:#?}");
}
