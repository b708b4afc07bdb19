//! The router's `dataplane:` section, `check_all_services` and services' `redirect_list`:
//! every problem is reported with its field path and line, all of them together.

use std::net::Ipv4Addr;

use wccpd_config::{
    router_from_str, Dataplane, PortDevice, Problem, RouterSettings, RuleAction, DEFAULT_MTU,
};

/// Lines 1-5: a router section with the socket transport.
const ROUTER: &str = "\
router:
  addresses: [10.0.1.1]
  services:
    - id: 0
      type: standard
";

/// Lines 6-13 (after [`ROUTER`]): two valid ports.
const PORTS: &str = "\
dataplane:
  ports:
    - name: a
      device: net_tap0
      addresses: [10.0.1.1/24]
    - name: b
      device: net_tap1
      addresses: [10.0.2.1/24]
";

fn ok(text: &str) -> RouterSettings {
    router_from_str(text).unwrap_or_else(|e| panic!("{e}"))
}

fn dataplane(text: &str) -> Dataplane {
    ok(text).dataplane.expect("a dataplane section")
}

fn problems(text: &str) -> Vec<Problem> {
    match router_from_str(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.problems().to_vec(),
    }
}

/// The single problem of `text`, which must be at `path`, on `line`, and mention `needle`.
fn only(text: &str, path: &str, line: usize, needle: &str) -> Problem {
    let ps = problems(text);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    let p = ps[0].clone();
    assert_eq!(p.path.to_string(), path, "{p}");
    assert_eq!(p.line, Some(line), "{p}");
    assert!(p.message.contains(needle), "{p}");
    p
}

#[test]
fn defaults() {
    let r = ok(&format!("{ROUTER}{PORTS}"));
    assert!(!r.check_all_services);
    assert!(r.services[0].redirect_list.is_empty());
    let dp = r.dataplane.unwrap();
    assert!(dp.eal.is_empty());
    assert_eq!((dp.workers, dp.mbufs, dp.idle_backoff), (1, None, false));
    assert!(dp.routes.is_empty() && dp.neighbours.is_empty());
    let a = &dp.ports[0];
    assert_eq!(a.name, "a");
    assert_eq!(a.device, PortDevice::Vdev("net_tap0".into()));
    assert_eq!(a.mtu, DEFAULT_MTU);
    assert_eq!(a.mtu, 1500);
    assert!(!a.redirect_in && !a.redirect_out && !a.exclude_in);
    assert_eq!(a.mac, None);
    // Without a dataplane section there is none (and the socket transport needs none).
    assert_eq!(ok(ROUTER).dataplane, None);
}

#[test]
fn every_key_with_non_default_values() {
    let text = "\
router:
  addresses: [10.0.1.1, 10.0.2.1]
  control: {transport: dpdk}
  check_all_services: true
  services:
    - id: 0
      type: standard
      redirect_list:
        - {action: deny, src: 10.0.1.7/32}
        - action: permit
          protocol: udp
          src: any
          dst: 192.0.2.0/24
          src_ports: [53]
          dst_ports: [53, 5353]
        - {action: permit, protocol: 47}
        - {action: deny, protocol: all}
dataplane:
  eal: [--in-memory, --file-prefix, lab1, -m, 512]
  workers: 4
  mbufs: 16383
  idle_backoff: true
  ports:
    - name: client_1
      device: net_tap0,iface=wc0
      addresses: [10.0.1.1/24, 10.0.9.1/30]
      mtu: 9000
      redirect: [in, out]
      exclude_in: true
      mac: 02:00:00:Ab:cd:01
    - name: up-link
      device: 03:00.1,rxq_cqe_comp_en=0
      addresses: [10.0.2.1/24]
      mtu: 576
      redirect: [out]
  routes:
    - prefix: 0.0.0.0/0
      via: 10.0.2.2
    - prefix: 172.16.0.0/12
      via: 10.0.9.2
  neighbours:
    - address: 10.0.2.2
      mac: 02:00:00:00:00:02
";
    let r = ok(text);
    assert!(r.check_all_services);
    let rl = &r.services[0].redirect_list;
    assert_eq!(rl.len(), 4);
    assert_eq!(rl[0].action, RuleAction::Deny);
    assert_eq!(rl[0].src.to_string(), "10.0.1.7/32");
    assert_eq!(rl[0].dst.to_string(), "0.0.0.0/0");
    assert_eq!(rl[0].protocol, None);
    assert_eq!(rl[1].action, RuleAction::Permit);
    assert_eq!(rl[1].protocol, Some(17));
    assert_eq!(rl[1].src.to_string(), "0.0.0.0/0");
    assert_eq!(rl[1].dst.to_string(), "192.0.2.0/24");
    assert_eq!(
        (&rl[1].src_ports[..], &rl[1].dst_ports[..]),
        (&[53][..], &[53, 5353][..])
    );
    assert_eq!(rl[2].protocol, Some(47));
    assert_eq!((rl[3].action, rl[3].protocol), (RuleAction::Deny, None));
    let (c, d) = (Ipv4Addr::new(10, 0, 1, 8), Ipv4Addr::new(192, 0, 2, 1));
    assert!(wccpd_config::redirect_list_permits(rl, 17, c, d, 53, 5353));
    assert!(!wccpd_config::redirect_list_permits(
        rl,
        17,
        Ipv4Addr::new(10, 0, 1, 7),
        d,
        53,
        5353
    ));
    assert!(wccpd_config::redirect_list_permits(rl, 47, c, d, 0, 0));
    assert!(!wccpd_config::redirect_list_permits(rl, 6, c, d, 1, 80));

    let dp = r.dataplane.unwrap();
    assert_eq!(
        dp.eal,
        ["--in-memory", "--file-prefix", "lab1", "-m", "512"]
    );
    assert_eq!(
        (dp.workers, dp.mbufs, dp.idle_backoff),
        (4, Some(16383), true)
    );
    let p = &dp.ports[0];
    assert_eq!(p.name, "client_1");
    assert_eq!(p.device, PortDevice::Vdev("net_tap0,iface=wc0".into()));
    let addrs: Vec<String> = p.addresses.iter().map(ToString::to_string).collect();
    assert_eq!(addrs, ["10.0.1.1/24", "10.0.9.1/30"]);
    assert_eq!(p.mtu, 9000);
    assert!(p.redirect_in && p.redirect_out && p.exclude_in);
    assert_eq!(p.mac, Some([0x02, 0, 0, 0xab, 0xcd, 0x01]));
    let q = &dp.ports[1];
    // A PCI address is normalised (domain added) and keeps its driver arguments.
    assert_eq!(
        q.device,
        PortDevice::Pci("0000:03:00.1,rxq_cqe_comp_en=0".into())
    );
    assert_eq!(q.device.name(), "0000:03:00.1");
    assert_eq!(q.mtu, 576);
    assert!(!q.redirect_in && q.redirect_out && !q.exclude_in);
    assert!(dp.uses_pci());
    assert_eq!(dp.routes[1].prefix.to_string(), "172.16.0.0/12");
    assert_eq!(dp.routes[1].via, Ipv4Addr::new(10, 0, 9, 2));
    assert_eq!(dp.connected(dp.routes[1].via).unwrap().0.name, "client_1");
    assert_eq!(dp.neighbours[0].mac, [2, 0, 0, 0, 0, 2]);
}

#[test]
fn every_vdev_kind_and_pci_form_is_accepted() {
    for (dev, want) in [
        ("net_tap", PortDevice::Vdev("net_tap".into())),
        (
            "net_tap12,iface=x",
            PortDevice::Vdev("net_tap12,iface=x".into()),
        ),
        ("net_ring0", PortDevice::Vdev("net_ring0".into())),
        (
            "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap",
            PortDevice::Vdev("net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap".into()),
        ),
        ("net_null0", PortDevice::Vdev("net_null0".into())),
        (
            "net_af_packet0,iface=eth1",
            PortDevice::Vdev("net_af_packet0,iface=eth1".into()),
        ),
        (
            "net_memif0,role=server",
            PortDevice::Vdev("net_memif0,role=server".into()),
        ),
        (
            "net_vhost0,iface=/tmp/sock0",
            PortDevice::Vdev("net_vhost0,iface=/tmp/sock0".into()),
        ),
        ("0000:03:00.0", PortDevice::Pci("0000:03:00.0".into())),
        ("AF:1f.7", PortDevice::Pci("0000:af:1f.7".into())),
    ] {
        let text = format!("{ROUTER}{PORTS}").replace("net_tap0", dev);
        assert_eq!(dataplane(&text).ports[0].device, want, "{dev}");
    }
}

#[test]
fn duplicate_port_name() {
    let text = format!("{ROUTER}{PORTS}").replace("name: b", "name: a");
    only(
        &text,
        "dataplane.ports[1].name",
        11,
        "duplicate port name `a`",
    );
}

#[test]
fn bad_port_name() {
    let text = format!("{ROUTER}{PORTS}").replace("name: b", "name: a-very-long-port-name");
    only(&text, "dataplane.ports[1].name", 11, "1-15 characters");
    let text = format!("{ROUTER}{PORTS}").replace("name: b", "name: \"b c\"");
    only(&text, "dataplane.ports[1].name", 11, "1-15 characters");
}

#[test]
fn overlapping_addresses_across_ports() {
    let text = format!("{ROUTER}{PORTS}").replace("10.0.2.1/24", "10.0.1.9/24");
    let p = only(
        &text,
        "dataplane.ports[1].addresses[0]",
        13,
        "overlapping addresses",
    );
    assert!(
        p.message
            .contains("ports a (10.0.1.1/24) and b (10.0.1.9/24)"),
        "{p}"
    );
    // A wider subnet that holds an earlier one overlaps too.
    let text = format!("{ROUTER}{PORTS}").replace("10.0.2.1/24", "10.0.0.1/16");
    only(
        &text,
        "dataplane.ports[1].addresses[0]",
        13,
        "ports a (10.0.1.1/24) and b (10.0.0.1/16)",
    );
}

#[test]
fn overlapping_addresses_on_one_port() {
    let text = format!("{ROUTER}{PORTS}").replace(
        "      addresses: [10.0.2.1/24]\n",
        "      addresses:\n        - 10.0.2.1/24\n        - 10.0.2.129/25\n",
    );
    only(
        &text,
        "dataplane.ports[1].addresses[1]",
        15,
        "ports b (10.0.2.1/24) and b (10.0.2.129/25)",
    );
}

#[test]
fn same_device_on_two_ports() {
    let text = format!("{ROUTER}{PORTS}").replace("net_tap1", "net_tap0,iface=other");
    only(
        &text,
        "dataplane.ports[1].device",
        12,
        "device `net_tap0` is already used by port a",
    );
    // PCI addresses are compared normalised.
    let text = format!("{ROUTER}{PORTS}")
        .replace("net_tap0", "0000:03:00.0")
        .replace("net_tap1", "03:00.0");
    only(
        &text,
        "dataplane.ports[1].device",
        12,
        "device `0000:03:00.0` is already used by port a",
    );
}

#[test]
fn unknown_port_device() {
    let text = format!("{ROUTER}{PORTS}").replace("net_tap1", "eth1");
    let p = only(
        &text,
        "dataplane.ports[1].device",
        12,
        "unknown port device `eth1`",
    );
    for kind in [
        "PCI address",
        "net_tap",
        "net_ring",
        "net_af_packet",
        "net_vhost",
    ] {
        assert!(p.message.contains(kind), "{p}");
    }
    let text = format!("{ROUTER}{PORTS}").replace("net_tap1", "net_tapx");
    only(
        &text,
        "dataplane.ports[1].device",
        12,
        "unknown port device",
    );
    let text = format!("{ROUTER}{PORTS}").replace("net_tap1", "0000:03:20.0");
    only(
        &text,
        "dataplane.ports[1].device",
        12,
        "is not a PCI address",
    );
    let text = format!("{ROUTER}{PORTS}").replace("net_tap1", "net_tap1,iface");
    only(&text, "dataplane.ports[1].device", 12, "expected key=value");
}

#[test]
fn at_least_one_port() {
    let text = format!("{ROUTER}dataplane:\n  workers: 1\n  ports: []\n");
    only(&text, "dataplane.ports", 8, "at least one port is needed");
    let text = format!("{ROUTER}dataplane:\n  workers: 1\n");
    only(&text, "dataplane", 6, "missing field `ports`");
}

#[test]
fn port_needs_addresses() {
    let text = format!("{ROUTER}{PORTS}").replace("[10.0.2.1/24]", "[]");
    only(
        &text,
        "dataplane.ports[1].addresses",
        13,
        "at least one interface address",
    );
}

#[test]
fn bad_interface_addresses() {
    let text = format!("{ROUTER}{PORTS}").replace("[10.0.2.1/24]", "[10.0.2.1]");
    only(
        &text,
        "dataplane.ports[1].addresses[0]",
        13,
        "needs a prefix length",
    );
    let text = format!("{ROUTER}{PORTS}").replace("[10.0.2.1/24]", "[10.0.2.0/24]");
    only(
        &text,
        "dataplane.ports[1].addresses[0]",
        13,
        "network address",
    );
    let text = format!("{ROUTER}{PORTS}").replace("[10.0.2.1/24]", "[10.0.2.1/33]");
    only(&text, "dataplane.ports[1].addresses[0]", 13, "not 1-32");
}

#[test]
fn mtu_out_of_range() {
    let text = format!("{ROUTER}{PORTS}      mtu: 500\n");
    let p = only(&text, "dataplane.ports[1].mtu", 14, "too small");
    assert!(p.message.contains("GRE-redirected"), "{p}");
    assert!(p.message.contains("28 octets"), "{p}");
    let text = format!("{ROUTER}{PORTS}      mtu: 9601\n");
    only(&text, "dataplane.ports[1].mtu", 14, "9600");
}

#[test]
fn bad_redirect_direction() {
    let text = format!("{ROUTER}{PORTS}      redirect: [in, sideways]\n");
    only(&text, "dataplane.ports[1].redirect[1]", 14, "`sideways`");
}

#[test]
fn bad_mac() {
    let text = format!("{ROUTER}{PORTS}      mac: 02:00:00:00:01\n");
    let p = only(&text, "dataplane.ports[1].mac", 14, "is not a MAC address");
    assert!(p.message.contains("six hex pairs"), "{p}");
    let text = format!("{ROUTER}{PORTS}      mac: 01:00:5e:00:00:01\n");
    only(&text, "dataplane.ports[1].mac", 14, "multicast");
    let text = format!(
        "{ROUTER}{PORTS}  neighbours:\n    - address: 10.0.2.2\n      mac: 02:00:00:00:00:zz\n"
    );
    only(
        &text,
        "dataplane.neighbours[0].mac",
        16,
        "is not a MAC address",
    );
}

#[test]
fn route_via_outside_connected_subnets() {
    let text = format!("{ROUTER}{PORTS}  routes:\n    - prefix: 0.0.0.0/0\n      via: 10.9.9.9\n");
    only(
        &text,
        "dataplane.routes[0].via",
        16,
        "next hop 10.9.9.9 is not inside the connected subnet of any port",
    );
    let text = format!("{ROUTER}{PORTS}  routes:\n    - prefix: 0.0.0.0/0\n      via: 10.0.2.1\n");
    only(&text, "dataplane.routes[0].via", 16, "own address (port b)");
}

#[test]
fn route_prefix_with_host_bits() {
    let text =
        format!("{ROUTER}{PORTS}  routes:\n    - prefix: 172.16.0.1/12\n      via: 10.0.2.2\n");
    only(&text, "dataplane.routes[0].prefix", 15, "host bits");
}

#[test]
fn duplicate_route_prefix() {
    let text = format!(
        "{ROUTER}{PORTS}  routes:
    - prefix: 0.0.0.0/0
      via: 10.0.2.2
    - prefix: 0.0.0.0/0
      via: 10.0.1.2
"
    );
    only(
        &text,
        "dataplane.routes[1].prefix",
        17,
        "duplicate route for 0.0.0.0/0",
    );
}

#[test]
fn neighbour_outside_connected_subnets() {
    let text = format!(
        "{ROUTER}{PORTS}  neighbours:\n    - address: 10.9.9.9\n      mac: 02:00:00:00:00:02\n"
    );
    only(
        &text,
        "dataplane.neighbours[0].address",
        15,
        "neighbour 10.9.9.9 is not inside the connected subnet of any port",
    );
}

#[test]
fn duplicate_neighbour() {
    let text = format!(
        "{ROUTER}{PORTS}  neighbours:
    - address: 10.0.2.2
      mac: 02:00:00:00:00:02
    - address: 10.0.2.2
      mac: 02:00:00:00:00:03
"
    );
    only(
        &text,
        "dataplane.neighbours[1].address",
        17,
        "duplicate neighbour 10.0.2.2",
    );
}

#[test]
fn dpdk_transport_needs_a_dataplane() {
    let text = "\
router:
  addresses: [10.0.1.1]
  control:
    transport: dpdk
  services:
    - id: 0
      type: standard
";
    only(
        text,
        "router.control.transport",
        4,
        "needs a `dataplane` section",
    );
}

#[test]
fn dpdk_transport_router_addresses_must_be_port_addresses() {
    let router = "\
router:
  addresses:
    - 10.0.1.1
    - 10.9.9.9
  control: {transport: dpdk}
  services:
    - id: 0
      type: standard
";
    let text = format!("{router}{PORTS}");
    only(
        &text,
        "router.addresses[1]",
        4,
        "router address 10.9.9.9 is not an address of any dataplane port",
    );
    // An address inside a port's subnet is not enough: it must be the port's own.
    let text = text.replace("10.9.9.9", "10.0.2.7");
    only(
        &text,
        "router.addresses[1]",
        4,
        "router address 10.0.2.7 is not",
    );
    // With the socket transport the router addresses are the kernel's business.
    let text = format!("{router}{PORTS}").replace("  control: {transport: dpdk}\n", "");
    assert_eq!(ok(&text).addresses.len(), 2);
}

#[test]
fn workers_out_of_range() {
    let text = format!("{ROUTER}{PORTS}  workers: 0\n");
    only(
        &text,
        "dataplane.workers",
        14,
        "0 workers is outside 1..=64",
    );
    let text = format!("{ROUTER}{PORTS}  workers: 65\n");
    only(
        &text,
        "dataplane.workers",
        14,
        "65 workers is outside 1..=64",
    );
    let text = format!("{ROUTER}{PORTS}  workers: 64\n");
    assert_eq!(dataplane(&text).workers, 64);
}

#[test]
fn zero_mbufs() {
    let text = format!("{ROUTER}{PORTS}  mbufs: 0\n");
    only(&text, "dataplane.mbufs", 14, "omit the key");
}

#[test]
fn eal_arguments_cannot_add_devices() {
    for arg in ["--vdev", "-a", "--allow", "--vdev=net_ring0"] {
        let text = format!("{ROUTER}{PORTS}  eal:\n    - --in-memory\n    - {arg}\n");
        only(
            &text,
            "dataplane.eal[1]",
            16,
            "ports are given under dataplane.ports, not as EAL arguments",
        );
    }
    // Other arguments pass through, PCI-related ones included.
    let text = format!("{ROUTER}{PORTS}  eal: [--no-pci, --iova-mode=va, -l, 0-1]\n");
    assert_eq!(dataplane(&text).eal.len(), 4);
}

#[test]
fn capture_needs_a_shared_runtime_and_hugepages() {
    // Off by default; the file prefix is EAL's own (`rte`) unless one is given.
    let dp = dataplane(&format!("{ROUTER}{PORTS}"));
    assert!(!dp.capture);
    assert_eq!(dp.file_prefix(), None);
    // On: the daemon's default prefix, or the one given in `eal`.
    let dp = dataplane(&format!("{ROUTER}{PORTS}  capture: true\n"));
    assert!(dp.capture);
    assert_eq!(dp.file_prefix(), Some(wccpd_config::DEFAULT_CAPTURE_PREFIX));
    assert_eq!(dp.file_prefix(), Some("wccpd"));
    let dp = dataplane(&format!(
        "{ROUTER}{PORTS}  capture: true\n  eal: [--file-prefix, edge1, -m, 512]\n"
    ));
    assert_eq!(dp.file_prefix(), Some("edge1"));
    let dp = dataplane(&format!(
        "{ROUTER}{PORTS}  eal: [--file-prefix=edge2, --no-huge, --no-shconf]\n"
    ));
    assert_eq!(
        (dp.capture, dp.file_prefix()),
        (false, Some("edge2")),
        "without capture these modes are allowed"
    );
    // Every argument that forbids secondary processes is refused on its own line.
    let text = format!(
        "{ROUTER}{PORTS}  capture: true\n  eal:\n    - --file-prefix\n    - edge1\n    - --no-huge\n    - --in-memory\n    - --no-shconf\n"
    );
    let ps = problems(&text);
    let got: Vec<(String, Option<usize>)> =
        ps.iter().map(|p| (p.path.to_string(), p.line)).collect();
    assert_eq!(
        got,
        [
            ("dataplane.eal[2]".to_string(), Some(18)),
            ("dataplane.eal[3]".to_string(), Some(19)),
            ("dataplane.eal[4]".to_string(), Some(20)),
        ],
        "{ps:#?}"
    );
    assert!(ps[0].message.contains("`--no-huge`"), "{}", ps[0]);
    assert!(
        ps[0].message.contains("capture needs hugepages"),
        "{}",
        ps[0]
    );
    assert!(ps[1].message.contains("`--in-memory`"), "{}", ps[1]);
    assert!(ps[2].message.contains("`--no-shconf`"), "{}", ps[2]);
    for p in &ps {
        assert!(p.message.contains("remove it or turn capture off"), "{p}");
    }
    for arg in ["--huge-unlink", "--huge-unlink=always"] {
        only(
            &format!("{ROUTER}{PORTS}  capture: true\n  eal:\n    - {arg}\n"),
            "dataplane.eal[0]",
            16,
            "removes the hugepage files",
        );
    }
    // `--huge-unlink=existing` only removes stale files at start: allowed.
    assert!(
        dataplane(&format!(
            "{ROUTER}{PORTS}  capture: true\n  eal: [--huge-unlink=existing]\n"
        ))
        .capture
    );
    // Not a boolean.
    only(
        &format!("{ROUTER}{PORTS}  capture: sometimes\n"),
        "dataplane.capture",
        14,
        "",
    );
}

#[test]
fn no_pci_with_a_pci_port() {
    let text =
        format!("{ROUTER}{PORTS}  eal:\n    - --no-pci\n").replace("net_tap1", "0000:03:00.0");
    only(&text, "dataplane.eal[0]", 15, "port b's PCI device");
}

#[test]
fn redirect_list_problems() {
    let text = "\
router:
  addresses: [10.0.1.1]
  services:
    - id: 0
      type: standard
      redirect_list:
        - {action: allow}
        - action: permit
          dst_ports: [80]
        - action: deny
          src: 10.0.0.1/8
        - action: permit
          protocol: carrier
          colour: blue
";
    let ps = problems(text);
    let at = |path: &str| {
        ps.iter()
            .find(|p| p.path.to_string() == path)
            .unwrap_or_else(|| panic!("no problem at {path}: {ps:#?}"))
    };
    let p = at("router.services[0].redirect_list[0].action");
    assert_eq!(p.line, Some(7));
    assert!(p.message.contains("expected permit or deny"), "{p}");
    let p = at("router.services[0].redirect_list[1].dst_ports");
    assert_eq!(p.line, Some(9));
    assert!(p.message.contains("ports need protocol tcp or udp"), "{p}");
    let p = at("router.services[0].redirect_list[2].src");
    assert_eq!(p.line, Some(11));
    assert!(p.message.contains("host bits"), "{p}");
    let p = at("router.services[0].redirect_list[3].protocol");
    assert_eq!(p.line, Some(13));
    assert!(p.message.contains("unknown protocol `carrier`"), "{p}");
    let p = at("router.services[0].redirect_list[3].colour");
    assert_eq!(p.line, Some(14));
    assert!(p.message.contains("unknown field"), "{p}");
    assert_eq!(ps.len(), 5, "{ps:#?}");
}

#[test]
fn unknown_keys_in_the_section() {
    let text = format!("{ROUTER}{PORTS}      speed: 100G\n  colour: blue\n");
    let ps = problems(&text);
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert_eq!(ps[0].path.to_string(), "dataplane.ports[1].speed");
    assert_eq!(ps[0].line, Some(14));
    assert_eq!(ps[1].path.to_string(), "dataplane.colour");
    assert_eq!(ps[1].line, Some(15));
}

#[test]
fn every_problem_is_reported_together() {
    let text = "\
router:
  addresses: [10.0.1.1, 10.9.9.9]
  control:
    transport: dpdk
  check_all_services: maybe
  services:
    - id: 0
      type: standard
      redirect_list:
        - {action: allow}
dataplane:
  eal: [--vdev, net_tap9]
  workers: 100
  ports:
    - name: a
      device: net_tap0
      addresses: [10.0.1.1/24]
      mtu: 100
    - name: a
      device: net_tap0
      addresses: [10.0.1.2/24]
      mac: nonsense
    - name: c
      device: eth0
      addresses: [10.0.3.1/24]
  routes:
    - prefix: 0.0.0.0/0
      via: 10.8.8.8
    - prefix: 0.0.0.0/0
      via: 10.0.3.2
  neighbours:
    - address: 10.7.7.7
      mac: 02:00:00:00:00:07
    - address: 10.7.7.7
      mac: 02:00:00:00:00:08
";
    let ps = problems(text);
    let expected: &[(&str, usize, &str)] = &[
        ("router.addresses[1]", 2, "router address 10.9.9.9"),
        ("router.check_all_services", 5, "invalid type"),
        (
            "router.services[0].redirect_list[0].action",
            10,
            "permit or deny",
        ),
        ("dataplane.eal[0]", 12, "not as EAL arguments"),
        ("dataplane.workers", 13, "outside 1..=64"),
        ("dataplane.ports[0].mtu", 18, "too small"),
        ("dataplane.ports[1].name", 19, "duplicate port name"),
        ("dataplane.ports[1].device", 20, "already used by port a"),
        (
            "dataplane.ports[1].addresses[0]",
            21,
            "overlapping addresses",
        ),
        ("dataplane.ports[1].mac", 22, "not a MAC address"),
        ("dataplane.ports[2].device", 24, "unknown port device"),
        (
            "dataplane.routes[0].via",
            28,
            "not inside the connected subnet",
        ),
        ("dataplane.routes[1].prefix", 29, "duplicate route"),
        (
            "dataplane.neighbours[0].address",
            32,
            "not inside the connected subnet",
        ),
        ("dataplane.neighbours[1].address", 34, "duplicate neighbour"),
    ];
    for (path, line, needle) in expected {
        let p = ps
            .iter()
            .find(|p| p.path.to_string() == *path)
            .unwrap_or_else(|| panic!("no problem at {path}: {ps:#?}"));
        assert_eq!(p.line, Some(*line), "{p}");
        assert!(p.message.contains(needle), "{p}");
    }
    assert_eq!(ps.len(), expected.len(), "{ps:#?}");
    // Sorted by line, as the daemon prints them.
    assert!(ps.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn all_digit_mac_is_not_read_as_a_number() {
    // YAML 1.1 would read this as a base-60 integer; it must stay a MAC.
    let text = format!("{ROUTER}{PORTS}      mac: 12:34:56:00:00:01\n");
    assert_eq!(
        dataplane(&text).ports[1].mac,
        Some([0x12, 0x34, 0x56, 0, 0, 1])
    );
}

#[test]
fn static_assignment_is_parsed_and_checked() {
    let r = ok("\
router:
  addresses: [10.0.1.1]
  services:
    - id: 0
      type: standard
      static_assignment: {caches: [10.0.3.10, 10.0.3.11], forwarding: l2}
");
    let st = r.services[0]
        .static_assignment
        .as_ref()
        .expect("static assignment");
    assert_eq!(
        st.caches,
        vec![Ipv4Addr::new(10, 0, 3, 10), Ipv4Addr::new(10, 0, 3, 11)]
    );
    assert_eq!(st.forwarding, wccpd_config::Method::L2);
    // A learnt dynamic service has no definition to build a table from.
    only(
        "\
router:
  addresses: [10.0.1.1]
  services:
    - id: 90
      type: dynamic
      static_assignment: {caches: [10.0.3.10]}
",
        "router.services[0].static_assignment",
        6,
        "needs the service's definition",
    );
    only(
        "\
router:
  addresses: [10.0.1.1]
  services:
    - id: 0
      type: standard
      static_assignment: {caches: []}
",
        "router.services[0].static_assignment.caches",
        6,
        "1 to 32 cache addresses",
    );
}
