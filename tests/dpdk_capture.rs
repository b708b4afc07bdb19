//! Debian's `dpdk-dumpcap` captures on the running `wccpd router` (`dataplane.capture: true`):
//! the WCCP GRE redirects leaving the cache-side port land in a pcapng file that `wccpd decode`
//! reads back as redirects (GRE 0x883E, service 0, the flow's buckets, the inner TCP/80 SYN).
//!
//! Layout: the router runs in network namespace `pdumph-cap-<pid>` with EAL file prefix
//! `pdumph-cap-<pid>` and hugepages (capture needs both a shared runtime directory and
//! hugepage files, see docs/operations.md "Packet capture"). Its client port is a TAP in that
//! namespace; the server and cache ports are `net_null` vdevs that receive nothing
//! (`no-rx=1`). A static assignment sends every bucket of service 0 to cache 10.9.3.10 by GRE,
//! static neighbours stand in for ARP. `dpdk-dumpcap -p -i net_null1 -c 4` attaches as a
//! secondary process; only after it says `Capturing on 'net_null1'` (printed once
//! `rte_pdump_enable` returned, i.e. the callbacks are installed) does a helper (this test
//! binary re-run in the namespace, marked by `PDUMPH_CAPTURE_CHILD`) send four TCP SYNs to
//! port 80 through the TAP from a raw socket. Nothing reaches the cache port before the
//! capture is attached, so the capture holds exactly those four frames: no race.
//!
//! EAL: the router's ports are vdevs, so it gets `--no-pci`. dpdk-dumpcap builds its own EAL
//! arguments (`--proc-type secondary --log-level notice [--file-prefix X]`) and has no way to
//! pass `--no-pci`: it runs in a private mount namespace (`unshare --mount`) with an empty
//! tmpfs over `/sys/bus/pci/devices` (when there is one), so its PCI scan finds nothing.
//!
//! Clean-up, also on failure (drop guards): the namespace, dpdk-dumpcap, the router,
//! `/var/run/dpdk/pdumph-cap-<pid>/` and the router's hugepage files
//! `/dev/hugepages/pdumph-cap-<pid>map_*` (EAL leaves them behind even after a clean exit;
//! only files no live process maps are removed). The router must exit 0 on SIGTERM with its
//! mempool back at the baseline.

#![cfg(feature = "dpdk")]

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::child::{env_var, run_helper};
use common::NsChild;
use dpdk::eal::free_hugepages;
use serde_json::Value;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const CHILD_ENV: &str = "PDUMPH_CAPTURE_CHILD";
const TEST: &str = "dumpcap_captures_gre_redirects_on_the_cache_port";
const DUMPCAP: &str = "/usr/bin/dpdk-dumpcap";
/// Frames the helper sends, and the capture's packet count.
const FRAMES: u16 = 4;
const ROUTER_CLIENT_MAC: &str = "02:00:00:00:01:01";
const CLIENT_MAC: &str = "02:00:00:00:01:10";
const ROUTER_CACHE_MAC: [u8; 6] = [2, 0, 0, 0, 3, 1];
const CACHE_MAC: [u8; 6] = [2, 0, 0, 0, 3, 0x10];
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 10);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 2, 10);
const ROUTER_CACHE: Ipv4Addr = Ipv4Addr::new(10, 9, 3, 1);
const CACHE: Ipv4Addr = Ipv4Addr::new(10, 9, 3, 10);
/// The cache-side port's DPDK device: what `dpdk-dumpcap -i` names.
const CACHE_DEVICE: &str = "net_null1";
/// Hugepages the router and dpdk-dumpcap need between them (about 20 are used).
const MIN_FREE_HUGEPAGES: u64 = 48;

/// SYN `i`: `CLIENT:40000+i -> SERVER:80`, TTL 64, as an IPv4 packet.
fn syn(i: u16) -> Vec<u8> {
    let mut p = Vec::new();
    etherparse::PacketBuilder::ipv4(CLIENT.octets(), SERVER.octets(), 64)
        .tcp(40_000 + i, 80, 1000 + u32::from(i), 64240)
        .syn()
        .write(&mut p, &[])
        .expect("SYN");
    p
}

/// The helper, inside the namespace: sends the SYNs from a raw socket (the kernel routes them
/// through the TAP to the router, whose MAC is a permanent neighbour entry).
fn send_syns() {
    let n: u16 = env_var("PDUMPH_CAPTURE_FRAMES").parse().expect("count");
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).expect("raw socket");
    sock.set_header_included_v4(true).expect("IP_HDRINCL");
    let to = SockAddr::from(SocketAddrV4::new(SERVER, 0));
    for i in 0..n {
        let p = syn(i);
        assert_eq!(sock.send_to(&p, &to).expect("send"), p.len());
    }
    println!("SENT {n}");
}

/// Whether some process maps `path` (a line of some `/proc/PID/maps` ends with it).
fn mapped_by_a_process(path: &Path) -> bool {
    let want = path.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true; // Cannot tell: assume it is in use.
    };
    procs.flatten().any(|p| {
        let is_pid = p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit());
        is_pid
            && std::fs::read_to_string(p.path().join("maps"))
                .is_ok_and(|m| m.lines().any(|l| l.ends_with(want.as_str())))
    })
}

/// What the test leaves on the system, removed on drop (also when it fails): the namespace,
/// EAL's runtime directory for the prefix and the prefix's hugepage files.
struct Leftovers {
    ns: String,
    prefix: String,
}

impl Leftovers {
    fn runtime_dir(&self) -> PathBuf {
        Path::new("/var/run/dpdk").join(&self.prefix)
    }

    /// The prefix's hugepage files (`<prefix>map_<n>`).
    fn hugepage_files(&self) -> Vec<PathBuf> {
        let start = format!("{}map_", self.prefix);
        std::fs::read_dir("/dev/hugepages")
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&start))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes the runtime directory and the hugepage files no live process maps.
    fn remove_dpdk_files(&self) {
        for f in self.hugepage_files() {
            if !mapped_by_a_process(&f) {
                let _ = std::fs::remove_file(&f);
            }
        }
        let _ = std::fs::remove_dir_all(self.runtime_dir());
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
        self.remove_dpdk_files();
    }
}

fn router_yaml(dir: &Path, prefix: &str, tap: &str) -> String {
    let d = dir.display();
    format!(
        "router:
  addresses: [{ROUTER_CACHE}]
  control: {{transport: dpdk, socket_path: {d}/router.sock}}
  services:
    - id: 0
      type: standard
      static_assignment: {{caches: [{CACHE}]}}
dataplane:
  capture: true
  eal: [--file-prefix, {prefix}]
  workers: 1
  mbufs: 4095
  idle_backoff: true
  ports:
    - {{name: client, device: \"net_tap0,iface={tap}\", addresses: [10.9.1.1/24], redirect: [in], mac: \"{ROUTER_CLIENT_MAC}\"}}
    - {{name: server, device: \"net_null0,no-rx=1\", addresses: [10.9.2.1/24], mac: \"02:00:00:00:02:01\"}}
    - {{name: cache, device: \"{CACHE_DEVICE},no-rx=1\", addresses: [10.9.3.1/24], exclude_in: true, mac: \"02:00:00:00:03:01\"}}
  neighbours:
    - {{address: {CLIENT}, mac: \"{CLIENT_MAC}\"}}
    - {{address: {SERVER}, mac: \"02:00:00:00:02:10\"}}
    - {{address: {CACHE}, mac: \"02:00:00:00:03:10\"}}
log: {{level: info}}
"
    )
}

#[test]
fn dumpcap_captures_gre_redirects_on_the_cache_port() {
    if std::env::var(CHILD_ENV).is_ok() {
        send_syns();
        return;
    }
    if !common::prerequisites(&[DUMPCAP, "/usr/bin/unshare", "/usr/bin/stdbuf"]) {
        return;
    }
    let started = Instant::now();
    assert!(
        free_hugepages() >= MIN_FREE_HUGEPAGES,
        "capture needs hugepages: {} free, {MIN_FREE_HUGEPAGES} wanted (deploy/setup-host.sh reserves 256)",
        free_hugepages()
    );
    let pid = std::process::id();
    let name = format!("pdumph-cap-{pid}");
    let tap = format!("pdh{}", pid % 100_000);
    let leftovers = Leftovers {
        ns: name.clone(),
        prefix: name.clone(),
    };
    let dir = common::TempDir::new("pdumph-cap");
    common::run("ip", &["netns", "add", &name]);
    for key in ["all", "default"] {
        common::run(
            "ip",
            &[
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
            ],
        );
    }
    common::run("ip", &["-n", &name, "link", "set", "lo", "up"]);

    let conf = dir.join("router.yaml");
    std::fs::write(&conf, router_yaml(&dir.0, &name, &tap)).unwrap();
    let mut router = NsChild::wccpd("router", &name, "router", &conf, &dir);
    router.wait_output("data plane running", Duration::from_secs(20));
    let log = router.output();
    assert!(
        log.contains(&format!(
            "packet capture enabled: dpdk-dumpcap --file-prefix={name} -i DEVICE"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Multi-process socket /var/run/dpdk/{name}/mp_socket"
        )),
        "{log}"
    );

    // The kernel side of the TAP is the client: its own MAC, an address, the router as a
    // permanent neighbour (no ARP), and a route to the server through the router.
    for args in [
        vec!["link", "set", &tap, "address", CLIENT_MAC],
        vec!["addr", "add", "10.9.1.10/24", "dev", &tap],
        vec!["link", "set", &tap, "up"],
        vec![
            "neigh",
            "replace",
            "10.9.1.1",
            "lladdr",
            ROUTER_CLIENT_MAC,
            "dev",
            &tap,
            "nud",
            "permanent",
        ],
        vec!["route", "add", "10.9.2.0/24", "via", "10.9.1.1"],
    ] {
        let mut full = vec!["-n", name.as_str()];
        full.extend(args);
        common::run("ip", &full);
    }

    // dpdk-dumpcap as a secondary process; stdout line-buffered so that "Capturing on" shows
    // up in the log when it is printed.
    let pcapng = dir.join("cache.pcapng");
    let script = format!(
        "{{ [ ! -d /sys/bus/pci/devices ] || mount -t tmpfs -o size=4k pdumph-nopci /sys/bus/pci/devices; }} && \
         exec stdbuf -oL {DUMPCAP} --file-prefix={name} -p -i {CACHE_DEVICE} -c {FRAMES} \
         -a duration:20 -w {}",
        pcapng.display()
    );
    let mut dumpcap = NsChild::start(
        "dpdk-dumpcap",
        Command::new("unshare").args(["--mount", "sh", "-c", &script]),
        dir.join("dumpcap.log"),
    );
    let capturing = format!("Capturing on '{CACHE_DEVICE}'");
    let attached = common::wait_for(Duration::from_secs(15), || {
        if dumpcap.output().contains(&capturing) {
            return Some(());
        }
        assert!(
            dumpcap.running(),
            "dpdk-dumpcap exited:\n{}",
            dumpcap.output()
        );
        None
    });
    assert!(
        attached.is_some(),
        "dpdk-dumpcap never attached:\n{}",
        dumpcap.output()
    );

    let sent = run_helper(
        &name,
        TEST,
        &[
            (CHILD_ENV, "1".to_owned()),
            ("PDUMPH_CAPTURE_FRAMES", FRAMES.to_string()),
        ],
        Duration::from_secs(10),
        "the SYN sender",
    );
    assert!(
        sent.status.success() && sent.stdout.contains(&format!("SENT {FRAMES}")),
        "{sent:?}"
    );
    let status = dumpcap
        .child
        .as_mut()
        .and_then(|c| common::child::wait_timeout(c, Duration::from_secs(15)));
    dumpcap.child = None;
    let out = dumpcap.output();
    assert!(
        status.is_some_and(|s| s.success()),
        "dpdk-dumpcap: {status:?}\n{out}"
    );
    assert!(
        out.contains(&format!(
            "Packets received/dropped on interface '{CACHE_DEVICE}': {FRAMES}/0"
        )),
        "{out}"
    );

    // The capture, read back by `wccpd decode`: four WCCP GRE redirects of our SYNs.
    let decoded = Command::new(env!("CARGO_BIN_EXE_wccpd"))
        .args(["decode", "--json"])
        .arg(&pcapng)
        .output()
        .unwrap();
    assert!(decoded.status.success(), "{decoded:?}");
    let frames: Value = serde_json::from_slice(&decoded.stdout).expect("decode JSON");
    let frames = frames.as_array().expect("an array of frames");
    assert_eq!(frames.len(), usize::from(FRAMES), "{frames:#?}");
    let flags = assign::service::ServiceDef::well_known(0).unwrap().flags;
    let mut ports = Vec::new();
    for f in frames {
        assert_eq!(f["src"], ROUTER_CACHE.to_string(), "{f:#}");
        assert_eq!(f["dst"], CACHE.to_string(), "{f:#}");
        let gre = &f["gre"];
        assert_eq!(gre["protocol"], "0x883e", "{f:#}");
        let rh = &gre["redirect_header"];
        assert_eq!(rh["present"], true, "{f:#}");
        assert_eq!(rh["service_id"], 0, "{f:#}");
        assert_eq!(rh["dynamic"], false, "{f:#}");
        let inner = &gre["inner"];
        assert_eq!(inner["src"], CLIENT.to_string(), "{f:#}");
        assert_eq!(inner["dst"], SERVER.to_string(), "{f:#}");
        assert_eq!(inner["protocol"], 6, "{f:#}");
        assert_eq!(inner["dst_port"], 80, "{f:#}");
        assert_eq!(inner["ttl"], 63, "routed: TTL decremented; {f:#}");
        let sport = inner["src_port"].as_u64().expect("source port") as u16;
        let key = assign::hash::FlowKey::new(u32::from(CLIENT), u32::from(SERVER), sport, 80);
        assert_eq!(
            rh["primary_bucket"],
            assign::hash::primary_bucket(flags, &key),
            "{f:#}"
        );
        assert_eq!(
            rh["alt_bucket"],
            assign::hash::alternate_bucket(flags, &key),
            "{f:#}"
        );
        ports.push(sport);
    }
    ports.sort_unstable();
    assert_eq!(ports, (40_000..40_000 + FRAMES).collect::<Vec<_>>());
    // The Ethernet header as it left the port: to the cache's MAC, from the port's.
    let bytes = std::fs::read(&pcapng).unwrap();
    let cap = wccpd::pcap::read_capture(&bytes).expect("pcapng");
    for f in &cap.frames {
        assert_eq!(&f.data[..6], &CACHE_MAC, "{:02x?}", f.data);
        assert_eq!(&f.data[6..12], &ROUTER_CACHE_MAC, "{:02x?}", f.data);
        assert_eq!(&f.data[12..14], &[0x08, 0x00]);
    }

    // SIGTERM: exit 0, every mbuf back in the pool.
    let status = router.signal_and_wait("TERM", Duration::from_secs(15));
    let log = router.output();
    assert!(
        status.is_some_and(|s| s.success()),
        "router: {status:?}\n{log}"
    );
    let mempool = common::mempool_at_exit(&log);
    assert_eq!(mempool.in_use, mempool.baseline, "{}", mempool.line);

    // What EAL leaves after a clean exit goes with the test.
    assert!(leftovers.runtime_dir().exists());
    leftovers.remove_dpdk_files();
    assert!(!leftovers.runtime_dir().exists());
    assert_eq!(leftovers.hugepage_files(), Vec::<PathBuf>::new());
    eprintln!("dpdk_capture: {:?}", started.elapsed());
}
