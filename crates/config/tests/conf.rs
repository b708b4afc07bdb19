//! Every example in `conf/` loads, and broken files report every problem with field and line.
//! (The lab examples name only vdevs, so the daemon passes --no-pci to EAL.)

use std::path::PathBuf;

use wccpd_config::{cache_from_str, kind_of, router_from_str, ConfigError, Kind, Method, Problem};

fn conf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conf")
}

#[test]
fn every_example_in_conf_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(conf_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let result = match kind_of(&text) {
            Some(Kind::Router) => router_from_str(&text).map(|_| ()),
            Some(Kind::Cache) => cache_from_str(&text).map(|_| ()),
            None => panic!("{}: neither router nor cache", path.display()),
        };
        if let Err(e) = result {
            panic!("{}: {e}", path.display());
        }
        n += 1;
    }
    assert!(n >= 4, "only {n} examples found");
}

#[test]
fn full_router_example_values() {
    let text = std::fs::read_to_string(conf_dir().join("router.yaml")).unwrap();
    let r = router_from_str(&text).unwrap();
    assert_eq!(
        r.addresses,
        vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(r.transmit_t_ms, 10_000);
    assert_eq!(r.services.len(), 3);
    let s0 = &r.services[0];
    assert!(!s0.dynamic);
    assert_eq!(s0.definition.as_ref().unwrap().protocol, 6);
    assert_eq!(s0.password.as_deref(), Some(&b"s3cret"[..]));
    assert_eq!(s0.allowed_caches[0].to_string(), "192.0.2.0/24");
    let s70 = &r.services[1];
    let d70 = s70.definition.as_ref().unwrap();
    assert!(s70.dynamic && d70.dynamic);
    assert_eq!(d70.ports, vec![443, 8443]);
    assert_eq!(d70.flags(), 0x0001 | 0x0010 | 0x0100 | 0x0400);
    // A dynamic service given only by id and type learns its definition from caches.
    let s90 = &r.services[2];
    assert_eq!(
        (s90.dynamic, s90.id, s90.definition.as_ref()),
        (true, 90, None)
    );
    assert_eq!(s70.forwarding, vec![Method::Gre, Method::L2]);

    // 10000 is also the default TRANSMIT_T: the same file with 2500 must say 2500.
    assert!(text.contains("transmit_t_ms: 10000"), "router.yaml changed");
    let r = router_from_str(&text.replace("transmit_t_ms: 10000", "transmit_t_ms: 2500")).unwrap();
    assert_eq!(r.transmit_t_ms, 2500);
}

#[test]
fn full_cache_example_values() {
    let text = std::fs::read_to_string(conf_dir().join("cache.yaml")).unwrap();
    let c = cache_from_str(&text).unwrap();
    assert_eq!(c.services[0].weight, 10_000);
    assert_eq!(c.transmit_t_ms, 10_000);
    // Both are also the defaults: the same file with other values must say those.
    assert!(text.contains("weight: 10000") && text.contains("transmit_t_ms: 10000"));
    let other = text
        .replace("weight: 10000", "weight: 2500")
        .replace("transmit_t_ms: 10000", "transmit_t_ms: 2500");
    let o = cache_from_str(&other).unwrap();
    assert_eq!((o.services[0].weight, o.transmit_t_ms), (2500, 2500));
    assert_eq!(
        o.services[1].weight, 10_000,
        "a service without `weight` keeps the default"
    );
    assert_eq!(c.services[0].forwarding, vec![Method::Gre]);
    assert_eq!(c.services[1].forwarding, vec![Method::L2, Method::Gre]);
    assert_eq!(c.services[1].spread, wccpd_config::SpreadAlgorithm::Stable);
    assert_eq!(c.services[1].return_policy.max_load, Some(90));
    assert_eq!(c.services[1].return_policy.refuse_sources.len(), 1);
    // `slow_start_s: 0` is no slow start; seconds become the agent's ramp.
    assert!(text.contains("slow_start_s: 0"), "cache.yaml changed");
    assert_eq!(c.services[0].slow_start, None);
    let ramped = cache_from_str(&text.replace("slow_start_s: 0", "slow_start_s: 30")).unwrap();
    assert_eq!(
        ramped.services[0].slow_start,
        Some(wccpd_config::SlowStart::over(
            std::time::Duration::from_secs(30)
        ))
    );
    assert_eq!(c.load_source, PathBuf::from("/proc/loadavg"));
    let defaulted = text.replace("load_source: /proc/loadavg", "");
    assert_eq!(
        cache_from_str(&defaulted).unwrap().load_source,
        PathBuf::from(wccpd_config::DEFAULT_LOAD_SOURCE)
    );
    let moved = text.replace("load_source: /proc/loadavg", "load_source: /run/lb/load");
    assert_eq!(
        cache_from_str(&moved).unwrap().load_source,
        PathBuf::from("/run/lb/load")
    );
}

fn problems(e: ConfigError) -> Vec<Problem> {
    e.problems().to_vec()
}

fn find<'a>(ps: &'a [Problem], path: &str) -> &'a Problem {
    ps.iter()
        .find(|p| p.path.to_string() == path)
        .unwrap_or_else(|| panic!("no problem at {path}: {ps:#?}"))
}

#[test]
fn broken_router_reports_every_problem_with_line() {
    let text = "\
router:
  addresses: [10.0.0.1, 10.0.0.300]
  control:
    transport: carrier-pigeon
  timers:
    transmit_t_ms: 5
  services:
    - id: 0
      type: standard
      password: waytoolongpassword
    - id: 90
      type: dynamic
      protocol: tcp
      ports: [1, 2, 3, 4, 5, 6, 7, 8, 9]
      allowed_caches: [10.0.0.0/33, 10.1.1.1/8]
      forwarding: [gre, carrier]
      colour: blue
    - id: 0
      type: standard
log:
  level: loud
  format: xml
";
    let ps = problems(router_from_str(text).unwrap_err());
    let p = find(&ps, "router.addresses[1]");
    assert_eq!(p.line, Some(2));
    assert!(p.message.contains("10.0.0.300"), "{p}");
    assert_eq!(find(&ps, "router.control.transport").line, Some(4));
    assert_eq!(find(&ps, "router.timers.transmit_t_ms").line, Some(6));
    let p = find(&ps, "router.services[0].password");
    assert_eq!((p.line, p.column), (Some(10), Some(7)));
    assert!(p.message.contains("1-8 octets"), "{p}");
    let p = find(&ps, "router.services[1].ports");
    assert_eq!(p.line, Some(14));
    assert!(p.message.contains("at most 8"), "{p}");
    assert_eq!(
        find(&ps, "router.services[1].allowed_caches[0]").line,
        Some(15)
    );
    assert!(find(&ps, "router.services[1].allowed_caches[1]")
        .message
        .contains("host bits"));
    let p = find(&ps, "router.services[1].forwarding[1]");
    assert_eq!(p.line, Some(16));
    assert!(p.message.contains("carrier"), "{p}");
    let p = find(&ps, "router.services[1].colour");
    assert_eq!(p.line, Some(17));
    assert!(p.message.contains("unknown field"), "{p}");
    let p = find(&ps, "router.services[2].id");
    assert_eq!(p.line, Some(18));
    assert!(p.message.contains("conflict"), "{p}");
    assert_eq!(find(&ps, "log.level").line, Some(21));
    let p = find(&ps, "log.format");
    assert_eq!(p.line, Some(22));
    assert!(p.message.contains("text or json"), "{p}");
    assert_eq!(ps.len(), 12, "{ps:#?}");
    // The rendered error names every field and line.
    let text = ConfigError::Invalid(ps).to_string();
    assert!(
        text.contains("line 10 column 7: router.services[0].password"),
        "{text}"
    );
}

#[test]
fn broken_cache_reports_type_errors_with_line() {
    let text = "\
cache:
  address: 10.0.0.2
  routers: []
  services:
    - id: 300
      type: dynamic
      protocol: tcp
    - id: 5
      type: standard
      weight: heavy
      assignment: hash
      return_policy:
        max_load: 150
        refuse_sources: [nonsense]
";
    let ps = problems(cache_from_str(text).unwrap_err());
    assert_eq!(find(&ps, "cache.routers").line, Some(3));
    let p = find(&ps, "cache.services[0].id");
    assert_eq!(p.line, Some(5));
    assert!(p.message.contains("300"), "{p}");
    let p = find(&ps, "cache.services[1].id");
    assert!(p.message.contains("standard service 5"), "{p}");
    assert_eq!(find(&ps, "cache.services[1].weight").line, Some(10));
    assert_eq!(
        find(&ps, "cache.services[1].return_policy.max_load").line,
        Some(13)
    );
    assert_eq!(
        find(&ps, "cache.services[1].return_policy.refuse_sources[0]").line,
        Some(14)
    );
}

#[test]
fn syntax_error_has_a_position() {
    let e = router_from_str("router:\n  addresses: [1.2.3.4\n  services: x\n").unwrap_err();
    let ps = e.problems();
    assert_eq!(ps.len(), 1);
    assert!(ps[0].line.is_some());
    assert!(ps[0].message.contains("YAML"));
}

#[test]
fn missing_sections_and_fields() {
    let ps = problems(router_from_str("log: {level: info}\n").unwrap_err());
    assert!(ps[0].message.contains("missing section `router`"), "{ps:?}");
    let ps = problems(
        router_from_str("router:\n  services:\n    - type: dynamic\n      ports: [80]\n")
            .unwrap_err(),
    );
    assert!(
        ps.iter()
            .any(|p| p.message.contains("missing field `addresses`")),
        "{ps:?}"
    );
    assert!(
        ps.iter().any(|p| p.path.to_string() == "router.services[0]"
            && p.message.contains("missing field `id`")
            && p.line == Some(3)),
        "{ps:?}"
    );
    assert!(
        ps.iter()
            .any(|p| p.message.contains("missing field `protocol`")),
        "{ps:?}"
    );
}

#[test]
fn standard_service_rejects_definition_keys() {
    let ps = problems(
        router_from_str("router:\n  addresses: [10.0.0.1]\n  services:\n    - id: 0\n      type: standard\n      ports: [80]\n")
            .unwrap_err(),
    );
    let p = find(&ps, "router.services[0].ports");
    assert_eq!(p.line, Some(6));
    assert!(p.message.contains("fixed by the protocol"));
}

#[test]
fn cache_cannot_list_itself_as_a_router() {
    let ps = problems(
        cache_from_str(
            "cache:\n  address: 10.0.0.2\n  routers:\n    - 10.0.0.1\n    - 10.0.0.2\n  services:\n    - id: 0\n      type: standard\n",
        )
        .unwrap_err(),
    );
    let p = find(&ps, "cache.routers[1]");
    assert_eq!(p.line, Some(5));
    assert!(p.message.contains("own address"), "{p}");
    assert_eq!(ps.len(), 1);
}

#[test]
fn cache_tun_section() {
    use std::net::Ipv4Addr;
    let base = "cache:\n  address: 10.0.0.2\n  routers: [10.0.0.1, 10.0.0.9]\n  services:\n    - id: 0\n      type: standard\n";
    // Absent: no user-space decapsulation.
    assert_eq!(cache_from_str(base).unwrap().tun, None);
    // `{}`: every default; accept_from = the seed routers.
    let t = cache_from_str(&format!("{base}  tun: {{}}\n"))
        .unwrap()
        .tun
        .unwrap();
    assert_eq!(t.name, wccpd_config::DEFAULT_TUN_NAME);
    assert_eq!(t.name, "wccp0");
    assert_eq!(t.address, Ipv4Addr::new(169, 254, 87, 1));
    assert_eq!(t.address, wccpd_config::DEFAULT_TUN_ADDRESS);
    let from: Vec<String> = t.accept_from.iter().map(ToString::to_string).collect();
    assert_eq!(from, ["10.0.0.1/32", "10.0.0.9/32"]);
    // Everything given.
    let t = cache_from_str(&format!(
        "{base}  tun:\n    name: wc1\n    address: 169.254.1.1\n    accept_from: [10.0.0.0/24]\n"
    ))
    .unwrap()
    .tun
    .unwrap();
    assert_eq!(
        (t.name.as_str(), t.address, t.accept_from[0].to_string()),
        (
            "wc1",
            Ipv4Addr::new(169, 254, 1, 1),
            "10.0.0.0/24".to_string()
        )
    );
    // The full example carries it.
    let text = std::fs::read_to_string(conf_dir().join("cache.yaml")).unwrap();
    let t = cache_from_str(&text).unwrap().tun.unwrap();
    assert_eq!(t.name, "wccp0");
    // Every problem, with its path and line.
    let ps = problems(
        cache_from_str(&format!(
            "{base}  tun:\n    name: a-name-far-too-long\n    address: 10.0.0.2\n    accept_from: [10.0.0.1/8]\n    colour: red\n"
        ))
        .unwrap_err(),
    );
    let p = find(&ps, "cache.tun.colour");
    assert!(p.message.contains("unknown field"), "{p}");
    let ps = problems(
        cache_from_str(&format!(
            "{base}  tun:\n    name: a-name-far-too-long\n    address: 10.0.0.2\n    accept_from: [10.0.0.1/8]\n"
        ))
        .unwrap_err(),
    );
    assert_eq!(find(&ps, "cache.tun.name").line, Some(8));
    assert!(find(&ps, "cache.tun.address")
        .message
        .contains("differ from cache.address"));
    assert!(find(&ps, "cache.tun.accept_from[0]")
        .message
        .contains("host bits"));
    assert_eq!(ps.len(), 3, "{ps:#?}");
    let ps = problems(cache_from_str(&format!("{base}  tun:\n")).unwrap_err());
    assert!(find(&ps, "cache.tun").message.contains("tun: {}"), "{ps:?}");
    let ps = problems(
        cache_from_str(&format!(
            "{base}  tun:\n    name: a/b\n    address: 224.0.0.1\n"
        ))
        .unwrap_err(),
    );
    assert!(find(&ps, "cache.tun.name")
        .message
        .contains("interface name"));
    assert!(find(&ps, "cache.tun.address").message.contains("unicast"));
}

#[test]
fn lab_dataplane_example_values() {
    use std::net::Ipv4Addr;
    use wccpd_config::{ControlTransport, PortDevice, RuleAction};
    let text = std::fs::read_to_string(conf_dir().join("router-dataplane.yaml")).unwrap();
    let r = router_from_str(&text).unwrap();
    assert_eq!(r.control.transport, ControlTransport::Dpdk);
    assert!(r.check_all_services);
    let rl = &r.services[0].redirect_list;
    assert_eq!(rl.len(), 2);
    assert_eq!(
        (rl[0].action, rl[1].action),
        (RuleAction::Deny, RuleAction::Permit)
    );
    assert_eq!(rl[0].src.to_string(), "10.0.1.128/25");
    assert_eq!((rl[1].protocol, &rl[1].dst_ports[..]), (Some(6), &[80][..]));
    assert!(r.services[1].redirect_list.is_empty());
    let dp = r.dataplane.unwrap();
    assert_eq!(dp.eal, ["--no-huge", "--no-shconf", "-m", "512"]);
    assert_eq!((dp.workers, dp.mbufs, dp.idle_backoff), (1, None, true));
    assert!(!dp.uses_pci());
    assert_eq!(dp.ports.len(), 3);
    let client = dp.port("client").unwrap();
    assert_eq!(
        client.device,
        PortDevice::Vdev("net_tap0,iface=wc-client".into())
    );
    assert_eq!((client.redirect_in, client.redirect_out), (true, false));
    assert_eq!(client.addresses[0].to_string(), "10.0.1.1/24");
    let cache = dp.port("cache").unwrap();
    assert_eq!(cache.mtu, 9000);
    assert!(cache.exclude_in && !cache.redirect_in);
    assert_eq!(cache.mac, Some([0x02, 0, 0, 0, 0x03, 0x01]));
    assert_eq!(dp.port("upstream").unwrap().mac, None);
    assert_eq!(dp.routes.len(), 1);
    assert_eq!(dp.routes[0].prefix.to_string(), "0.0.0.0/0");
    assert_eq!(dp.routes[0].via, Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(dp.neighbours.len(), 1);
    assert_eq!(dp.neighbours[0].address, Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(dp.neighbours[0].mac, [0x02, 0, 0, 0, 0x02, 0x02]);
    // The router address is the cache-side port's.
    let (port, _) = dp.connected(r.addresses[0]).unwrap();
    assert_eq!(port.name, "cache");
}

#[test]
fn baremetal_dataplane_example_values() {
    use std::net::Ipv4Addr;
    use wccpd_config::PortDevice;
    let text = std::fs::read_to_string(conf_dir().join("router-baremetal.yaml")).unwrap();
    let r = router_from_str(&text).unwrap();
    assert!(!r.check_all_services);
    let dp = r.dataplane.unwrap();
    assert_eq!(
        (dp.workers, dp.mbufs, dp.idle_backoff),
        (2, Some(65_535), false)
    );
    assert!(dp.uses_pci());
    // dpdk-dumpcap may attach (hugepages, a shared runtime directory under this prefix).
    assert!(dp.capture);
    assert_eq!(dp.file_prefix(), Some("wccpd"));
    let devices: Vec<&PortDevice> = dp.ports.iter().map(|p| &p.device).collect();
    assert_eq!(
        devices,
        [
            &PortDevice::Pci("0000:03:00.0".into()),
            &PortDevice::Pci("0000:03:00.1".into())
        ]
    );
    assert!(dp.ports[0].redirect_in && !dp.ports[1].redirect_in);
    assert_eq!(
        dp.ports[1].addresses[0].subnet().to_string(),
        "198.51.100.0/30"
    );
    assert_eq!(dp.routes[0].via, Ipv4Addr::new(198, 51, 100, 1));
    assert!(dp.neighbours.is_empty());
    assert_eq!(r.log.format, wccpd_config::LogFormat::Json);
}
