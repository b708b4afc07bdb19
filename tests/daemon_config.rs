//! Every example in `conf/` converts into a state machine configuration the state machines
//! accept, and the conversion carries the values through.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use wccpd::daemon::build::{cache_config, router_config};

fn conf(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("conf")
        .join(name)
}

#[test]
fn every_conf_example_builds_its_state_machine() {
    let mut n = 0;
    for e in std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        match config::kind_of(&text) {
            Some(config::Kind::Router) => {
                let s = config::router_from_str(&text).unwrap();
                let rc = router_config(&s).unwrap();
                control::router::Router::new(rc)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            Some(config::Kind::Cache) => {
                let s = config::cache_from_str(&text).unwrap();
                control::cache::CacheAgent::new(cache_config(&s))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            None => panic!("{}: unknown kind", path.display()),
        }
        n += 1;
    }
    assert!(n >= 4);
}

#[test]
fn router_conversion_carries_values() {
    let s = config::load_router(&conf("router.yaml")).unwrap();
    let rc = router_config(&s).unwrap();
    assert_eq!(rc.addresses, vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(rc.router_id, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(rc.services.len(), 3);
    let s0 = &rc.services[0];
    assert!(!s0.key.dynamic);
    assert_eq!(s0.password.as_deref(), Some(&b"s3cret"[..]));
    assert_eq!(s0.allowed_caches.len(), 1);
    assert!(s0.allowed_caches[0].contains(&Ipv4Addr::new(192, 0, 2, 77)));
    assert_eq!(s0.timer_base, Duration::from_secs(10));
    let s70 = &rc.services[1];
    let d = s70.definition.as_ref().unwrap();
    assert_eq!(
        (d.dynamic, d.id, d.protocol, d.priority),
        (true, 70, 6, 100)
    );
    assert_eq!(d.ports[..3], [443, 8443, 0]);
    assert_eq!(d.flags, 0x0001 | 0x0010 | 0x0100 | 0x0400);
    assert_eq!(s70.offer.forwarding, 0x3);
    assert_eq!(s70.offer.assignment, 0x3);
    let s90 = &rc.services[2];
    assert!(s90.key.dynamic && s90.definition.is_none());

    // 10 s is also the default: the same file with TRANSMIT_T 2.5 s must carry 2.5 s through
    // to every service (a conversion that ignores the file cannot pass).
    let text = std::fs::read_to_string(conf("router.yaml")).unwrap();
    assert!(text.contains("transmit_t_ms: 10000"), "router.yaml changed");
    let text = text.replace("transmit_t_ms: 10000", "transmit_t_ms: 2500");
    let rc = router_config(&config::router_from_str(&text).unwrap()).unwrap();
    assert!(rc
        .services
        .iter()
        .all(|s| s.timer_base == Duration::from_millis(2500)));
}

#[test]
fn cache_conversion_carries_values() {
    use control::cache::{AssignMethod, Method, ServiceDefinition, SpreadAlgorithm};
    let s = config::load_cache(&conf("cache.yaml")).unwrap();
    let c = cache_config(&s);
    assert_eq!(c.address, Ipv4Addr::new(192, 0, 2, 10));
    assert_eq!(c.routers, vec![Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(c.transmit_t, Duration::from_secs(10));
    assert_eq!(c.services[0].weight, 10_000);
    assert_eq!(c.services[0].definition, ServiceDefinition::web_cache());
    assert_eq!(c.services[0].password.as_deref(), Some(&b"s3cret"[..]));
    let s70 = &c.services[1];
    assert!(matches!(
        &s70.definition,
        ServiceDefinition { dynamic: true, id: 70, protocol: 6, priority: 100, ports, .. } if ports == &vec![443, 8443]
    ));
    assert_eq!(s70.forwarding, vec![Method::L2, Method::Gre]);
    assert_eq!(s70.assignment, vec![AssignMethod::Mask]);
    assert_eq!(s70.packet_return, vec![Method::L2]);
    assert_eq!(s70.spread, SpreadAlgorithm::Stable);
    assert_eq!(
        s70.definition.service_info().flags.bits(),
        0x0001 | 0x0010 | 0x0100 | 0x0400
    );

    // TRANSMIT_T 10 s and weight 10000 are also the defaults: with other values in the file
    // they must come through (a conversion that ignores the file cannot pass).
    let text = std::fs::read_to_string(conf("cache.yaml")).unwrap();
    assert!(
        text.contains("transmit_t_ms: 10000") && text.contains("weight: 10000"),
        "cache.yaml changed"
    );
    let text = text
        .replace("transmit_t_ms: 10000", "transmit_t_ms: 2500")
        .replace("weight: 10000", "weight: 2500");
    let c = cache_config(&config::cache_from_str(&text).unwrap());
    assert_eq!(c.transmit_t, Duration::from_millis(2500));
    assert_eq!(c.services[0].weight, 2500);
    assert_ne!(
        c.services[1].weight, 2500,
        "only the service that says so has the weight"
    );
}
