//! The real `wccpd router` on DPDK `net_pcap` vdevs (no hardware, no namespaces): golden frames
//! in, golden frames out. Static neighbours and a static assignment (`static_assignment`) stand
//! in for ARP and for a cache speaking WCCP, so every output frame is predictable.
//!
//! The expected frames are built here with etherparse, independently of the data plane's own
//! code: a GRE redirect (MSS clamped, TTL decremented, outer header from the cache's router
//! address), a routed packet, an ICMP echo reply, an ICMP time exceeded, a cache's GRE return
//! routed to the server untouched, and nothing for a frame with a bad IPv4 checksum. The
//! router must exit 0 on SIGTERM with its mempool back at the baseline.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement};

const ROUTER_CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const ROUTER_SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
const ROUTER_CACHE_MAC: [u8; 6] = [2, 0, 0, 0, 3, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0x10];
const CACHE_MAC: [u8; 6] = [2, 0, 0, 0, 3, 0x10];
const CLIENT: [u8; 4] = [10, 9, 1, 10];
const SERVER: [u8; 4] = [10, 9, 2, 10];
const CACHE: [u8; 4] = [10, 9, 3, 10];
const ROUTER_CLIENT: [u8; 4] = [10, 9, 1, 1];
const ROUTER_CACHE: [u8; 4] = [10, 9, 3, 1];

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = wccpd::pcap::PcapWriter::new(f).unwrap();
    for (i, fr) in frames.iter().enumerate() {
        w.write_frame(Duration::from_millis(1000 + i as u64), fr)
            .unwrap();
    }
    w.finish().unwrap();
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    wccpd::pcap::read_capture(&bytes)
        .unwrap()
        .frames
        .into_iter()
        .map(|f| f.data)
        .collect()
}

fn tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    ttl: u8,
    syn: bool,
    mss: Option<u16>,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_CLIENT_MAC)
        .ipv4(src, dst, ttl)
        .tcp(sport, dport, 1000, 64240);
    if syn {
        b = b.syn();
    }
    if let Some(m) = mss {
        b = b
            .options(&[TcpOptionElement::MaximumSegmentSize(m)])
            .unwrap();
    }
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

/// The IPv4 packet of an Ethernet frame.
fn l3(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

/// A 20-octet IPv4 header with its checksum; DF as given, identification 0.
fn ipv4_header(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, total: u16, df: bool) -> Vec<u8> {
    let mut h = etherparse::Ipv4Header::new(total - 20, ttl, etherparse::IpNumber(proto), src, dst)
        .unwrap();
    h.dont_fragment = df;
    h.identification = 0;
    h.header_checksum = h.calc_header_checksum();
    let mut v = Vec::new();
    h.write(&mut v).unwrap();
    v
}

/// The inner packet as the router must forward it: TTL - 1 and (for SYNs) MSS lowered to
/// `mss`, checksums recomputed from scratch with etherparse.
fn routed_copy(frame: &[u8], mss: Option<u16>) -> Vec<u8> {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let mut h = ip.header().to_header();
    h.time_to_live -= 1;
    let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    let mut th = t.to_header();
    if let Some(m) = mss {
        th.set_options(&[TcpOptionElement::MaximumSegmentSize(m)])
            .unwrap();
    }
    th.checksum = th.calc_checksum_ipv4(&h, t.payload()).unwrap();
    let mut v = Vec::new();
    h.header_checksum = h.calc_header_checksum();
    h.write(&mut v).unwrap();
    th.write(&mut v).unwrap();
    v.extend_from_slice(t.payload());
    v
}

#[test]
fn golden_frames_through_net_pcap() {
    if !common::prerequisites(&[]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("wccpd-pcap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // Client side input.
    let syn = tcp(CLIENT, SERVER, 40000, 80, 64, true, Some(1460));
    let ssh = tcp(CLIENT, SERVER, 40001, 22, 64, false, None);
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_CLIENT_MAC)
        .ipv4(CLIENT, ROUTER_CLIENT, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut echo, b"ping!")
        .unwrap();
    let mut expiring = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_CLIENT_MAC)
        .ipv4(CLIENT, SERVER, 1)
        .udp(33434, 33434)
        .write(&mut expiring, b"trace")
        .unwrap();
    let mut bad_checksum = tcp(CLIENT, SERVER, 40002, 80, 64, false, None);
    bad_checksum[14 + 10] ^= 0xff;
    write_pcap(
        &dir.join("client-in.pcap"),
        &[
            syn.clone(),
            ssh.clone(),
            echo.clone(),
            expiring.clone(),
            bad_checksum,
        ],
    );
    // Cache side input: a GRE return (0x883E + redirect header) of a client packet.
    let returned_inner = {
        let f = tcp(CLIENT, SERVER, 40003, 80, 63, false, None);
        l3(&f).to_vec()
    };
    let mut gre_return = Vec::new();
    gre_return.extend_from_slice(&ROUTER_CACHE_MAC);
    gre_return.extend_from_slice(&CACHE_MAC);
    gre_return.extend_from_slice(&[0x08, 0x00]);
    gre_return.extend_from_slice(&ipv4_header(
        CACHE,
        ROUTER_CACHE,
        47,
        64,
        (20 + 8 + returned_inner.len()) as u16,
        true,
    ));
    gre_return.extend_from_slice(&[0, 0, 0x88, 0x3e, 0, 0, 0, 0]);
    gre_return.extend_from_slice(&returned_inner);
    write_pcap(&dir.join("cache-in.pcap"), &[gre_return]);
    write_pcap(&dir.join("empty.pcap"), &[]);

    let d = dir.display();
    let conf = format!(
        "router:
  addresses: [10.9.3.1]
  control: {{transport: dpdk, socket_path: {d}/router.sock}}
  metrics: {{listen: \"127.0.0.1:{mport}\"}}
  services:
    - id: 0
      type: standard
      static_assignment: {{caches: [10.9.3.10]}}
dataplane:
  eal: [--no-huge, --no-shconf, -m, \"128\", --file-prefix, {prefix}]
  workers: 1
  mbufs: 4095
  idle_backoff: true
  ports:
    - {{name: client, device: \"net_pcap0,rx_pcap={d}/client-in.pcap,tx_pcap={d}/client-out.pcap\", addresses: [10.9.1.1/24], redirect: [in], mac: \"02:00:00:00:01:01\"}}
    - {{name: server, device: \"net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/server-out.pcap\", addresses: [10.9.2.1/24], mac: \"02:00:00:00:02:01\"}}
    - {{name: cache, device: \"net_pcap2,rx_pcap={d}/cache-in.pcap,tx_pcap={d}/cache-out.pcap\", addresses: [10.9.3.1/24], exclude_in: true, mac: \"02:00:00:00:03:01\"}}
  neighbours:
    - {{address: 10.9.1.10, mac: \"02:00:00:00:01:10\"}}
    - {{address: 10.9.2.10, mac: \"02:00:00:00:02:10\"}}
    - {{address: 10.9.3.10, mac: \"02:00:00:00:03:10\"}}
log: {{level: debug}}
",
        prefix = common::system_name(&format!("wccpd-pcap-{}", std::process::id())),
        mport = metrics_port(),
    );
    let conf_path = dir.join("router.yaml");
    std::fs::write(&conf_path, conf).unwrap();
    let log_path = dir.join("router.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wccpd"))
        .args(["router", "-c", conf_path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // The pcap PMD replays its input once; give the worker time to read and send it all.
    let running = common::wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("data plane running") {
            return Some(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("router exited early ({st}):\n{text}");
        }
        None
    });
    assert!(running.is_some(), "router did not start");
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = common::scrape_metrics(metrics_port());
    explain_on_the_control_lcore(&dir.join("router.sock"));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = common::child::wait_or_kill(
        &mut child,
        Duration::from_secs(10),
        "router stopping on SIGTERM",
    );
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "router exit {status}:\n{text}");
    let mempool = common::mempool_at_exit(&text);
    assert_eq!(mempool.in_use, mempool.baseline, "{}", mempool.line);

    // Cache port: exactly the GRE-redirected SYN.
    let cache_out = read_pcap(&dir.join("cache-out.pcap"));
    assert_eq!(cache_out.len(), 1, "cache port frames: {cache_out:02x?}");
    let inner = routed_copy(&syn, Some(1500 - 28 - 40));
    let primary = {
        let key = assign::hash::FlowKey::new(
            u32::from_be_bytes(CLIENT),
            u32::from_be_bytes(SERVER),
            40000,
            80,
        );
        let def = assign::service::ServiceDef::well_known(0).unwrap();
        (
            assign::hash::primary_bucket(def.flags, &key),
            assign::hash::alternate_bucket(def.flags, &key),
        )
    };
    let mut want = Vec::new();
    want.extend_from_slice(&CACHE_MAC);
    want.extend_from_slice(&ROUTER_CACHE_MAC);
    want.extend_from_slice(&[0x08, 0x00]);
    // Outer header: TTL 255, DF clear, as Cisco sends (docs/protocol.md 10.11).
    let outer = ipv4_header(
        ROUTER_CACHE,
        CACHE,
        47,
        255,
        (20 + 8 + inner.len()) as u16,
        false,
    );
    want.extend_from_slice(&outer);
    want.extend_from_slice(&[0, 0, 0x88, 0x3e, 0x00, 0x00, primary.1, primary.0]);
    want.extend_from_slice(&inner);
    assert_eq!(
        cache_out[0], want,
        "GRE redirect\n got {:02x?}\nwant {want:02x?}",
        cache_out[0]
    );

    // Server port: the routed SSH packet, then the cache's returned packet, untouched.
    let server_out = read_pcap(&dir.join("server-out.pcap"));
    assert_eq!(server_out.len(), 2, "server port frames: {server_out:02x?}");
    let mut want_ssh = SERVER_MAC.to_vec();
    want_ssh.extend_from_slice(&ROUTER_SERVER_MAC);
    want_ssh.extend_from_slice(&[0x08, 0x00]);
    want_ssh.extend_from_slice(&routed_copy(&ssh, None));
    assert_eq!(server_out[0], want_ssh, "routed packet");
    let mut want_ret = SERVER_MAC.to_vec();
    want_ret.extend_from_slice(&ROUTER_SERVER_MAC);
    want_ret.extend_from_slice(&[0x08, 0x00]);
    want_ret.extend_from_slice(&returned_inner);
    assert_eq!(server_out[1], want_ret, "returned packet");

    // Client port: the echo reply and the time exceeded (nothing for the bad checksum).
    let client_out = read_pcap(&dir.join("client-out.pcap"));
    assert_eq!(client_out.len(), 2, "client port frames: {client_out:02x?}");
    let reply = SlicedPacket::from_ethernet(&client_out[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &reply.net else {
        panic!("echo reply not IPv4")
    };
    assert_eq!(ip.header().source(), ROUTER_CLIENT);
    assert_eq!(ip.header().destination(), CLIENT);
    assert_eq!(&client_out[0][..6], &CLIENT_MAC);
    match &reply.transport {
        Some(etherparse::TransportSlice::Icmpv4(i)) => {
            assert!(matches!(
                i.icmp_type(),
                etherparse::Icmpv4Type::EchoReply(e) if e.id == 7 && e.seq == 1
            ));
            assert_eq!(i.payload(), b"ping!");
        }
        other => panic!("not ICMP: {other:?}"),
    }
    let te = SlicedPacket::from_ethernet(&client_out[1]).unwrap();
    match &te.transport {
        Some(etherparse::TransportSlice::Icmpv4(i)) => {
            assert!(matches!(
                i.icmp_type(),
                etherparse::Icmpv4Type::TimeExceeded(_)
            ));
            // The quote: the expired packet's IPv4 header and first 8 octets.
            assert_eq!(i.payload(), &l3(&expiring)[..28]);
        }
        other => panic!("not ICMP: {other:?}"),
    }
    // The same story in the Prometheus exposition, which promtool accepts.
    for (name, labels, value) in [
        (
            "wccp_dp_packets_total",
            &[("lcore", "worker0"), ("verdict", "rx")][..],
            6,
        ),
        (
            "wccp_dp_packets_total",
            &[("lcore", "worker0"), ("verdict", "redirected_gre")][..],
            1,
        ),
        (
            "wccp_dp_packets_total",
            &[("lcore", "worker0"), ("verdict", "returned_gre")][..],
            1,
        ),
        (
            "wccp_dp_drops_total",
            &[("lcore", "worker0"), ("reason", "ipv4_bad_checksum")][..],
            1,
        ),
        (
            "wccp_service_packets_total",
            &[("outcome", "redirected"), ("service", "standard-0")][..],
            1,
        ),
        (
            "wccp_cache_packets_total",
            &[("cache", "10.9.3.10"), ("service", "standard-0")][..],
            1,
        ),
        (
            "wccp_port_packets_total",
            &[("direction", "tx"), ("port", "cache")][..],
            1,
        ),
    ] {
        assert_eq!(
            sample(&metrics, name, labels),
            Some(value),
            "{name}{labels:?} in\n{metrics}"
        );
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by deploy/setup-host.sh)");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wccpd explain` and `wccpd why` against the running DPDK router: answered on the control
/// lcore from the tables the worker reads.
fn explain_on_the_control_lcore(sock: &Path) {
    let sock = sock.to_str().unwrap();
    let wccpd = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wccpd"))
            .args(args)
            .args(["-s", sock])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    // The SYN's flow: redirected by web-cache to the static cache, in GRE, out of port cache.
    let (ok, text) = wccpd(&["explain", "tcp", "10.9.1.10:40000", "10.9.2.10:80"]);
    assert!(ok, "{text}");
    for want in [
        "tcp 10.9.1.10:40000 -> 10.9.2.10:80 is redirected by service web-cache",
        "to cache 10.9.3.10 by gre out of port cache",
        "arrives on:   client (assumed",
        "route:        out of server, next hop 10.9.2.10",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let (ok, text) = wccpd(&[
        "explain",
        "tcp",
        "10.9.1.10:40000",
        "10.9.2.10:80",
        "--in",
        "client",
        "--json",
    ]);
    assert!(ok, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let key = assign::hash::FlowKey::new(
        u32::from_be_bytes(CLIENT),
        u32::from_be_bytes(SERVER),
        40000,
        80,
    );
    let flags = assign::service::ServiceDef::well_known(0).unwrap().flags;
    assert_eq!(v["outcome"], "redirected", "{v:#}");
    assert_eq!(v["dataplane"], true, "{v:#}");
    assert_eq!(v["cache"], "10.9.3.10", "{v:#}");
    assert_eq!(v["method"], "gre", "{v:#}");
    assert_eq!(v["port"], "cache", "{v:#}");
    assert_eq!(
        v["primary_bucket"],
        assign::hash::primary_bucket(flags, &key),
        "{v:#}"
    );
    assert_eq!(v["in_port_assumed"], false, "{v:#}");
    // SSH: no service; from the cache port: no redirect direction there; to the router: local.
    let (ok, text) = wccpd(&[
        "explain",
        "tcp",
        "10.9.1.10:40001",
        "10.9.2.10:22",
        "--json",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("\"outcome\": \"no_service\""), "{text}");
    let (ok, text) = wccpd(&[
        "explain",
        "tcp",
        "10.9.3.10:3128",
        "10.9.2.10:80",
        "--in",
        "cache",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("routed untouched out of port server")
            && text.contains("neither its arrival port redirects in"),
        "{text}"
    );
    let (ok, text) = wccpd(&["explain", "udp", "10.9.1.10", "10.9.1.1:2048"]);
    assert!(ok && text.contains("for the router itself"), "{text}");
    // A port that does not exist is an error.
    let (ok, text) = wccpd(&["explain", "tcp", "10.9.1.10", "10.9.2.10:80", "--in", "wan"]);
    assert!(
        !ok && text.contains("no data-plane port named `wan`"),
        "{text}"
    );
    // `why` for the static cache: no WCCP cache ever spoke to this router.
    let (ok, text) = wccpd(&["why", "10.9.3.10"]);
    assert!(ok && text.contains("has not heard from it"), "{text}");
}

fn metrics_port() -> u16 {
    20_000 + (std::process::id() % 20_000) as u16
}

/// The value of the sample `name{labels}` (labels in any order, all of them).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    text.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
        let body = rest.strip_suffix('}')?;
        let found: Vec<(&str, &str)> = body
            .split(',')
            .filter(|x| !x.is_empty())
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k, v.trim_matches('"'))))
            .collect();
        (n == name && found.len() == labels.len() && labels.iter().all(|x| found.contains(x)))
            .then(|| value.parse().ok())
            .flatten()
    })
}
