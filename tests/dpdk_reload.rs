//! A reload on the running DPDK data plane does not drop packets of the services it does not
//! touch: web-cache traffic (service A, a static assignment to one cache) flows through a
//! `net_ring` pair, port 80 frames in, GRE redirects back, while service B (dynamic 90) gets a
//! new password and a new redirect list through the reload path (`ControlRequest` run by
//! `RequestHook` on the control lcore, `ControlPlane::reconfigure`). Every A frame sent before,
//! during and after the reload must come back redirected, none dropped, and A's table must be
//! the very same one. Then a port change is refused.
//!
//! And the real `wccpd router` on DPDK (`net_pcap` vdevs, a child process with its own EAL):
//! `wccpd reload` applies a new password and redirect list, refuses a port or EAL change
//! ("needs a restart"), and SIGHUP reloads too. No hugepages (`--no-huge --no-shconf`), vdevs
//! only. DPDK needs root (CI).
//! EAL: vdevs only, so --no-pci is passed (the daemon and `eal_args` add it).

#![cfg(feature = "dpdk")]

mod common;

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use control::router::{ReloadError, ReloadSummary};
use control::ServiceKey;
use dataplane::dpdk_impl::{
    self, ControlRequest, HookCtx, HookFlow, MainHook, RequestHook, RunOptions, StatusRequest,
};
use dpdk::Burst;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket};

const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
const CACHE_A: Ipv4Addr = Ipv4Addr::new(10, 9, 3, 10);
const WEB: ServiceKey = ServiceKey {
    dynamic: false,
    id: 0,
};
const B: ServiceKey = ServiceKey {
    dynamic: true,
    id: 90,
};
/// A frames in flight at most (the rings hold 1024).
const IN_FLIGHT: u64 = 512;
/// A frames sent before the reload, and in all.
const BEFORE: u64 = 20_000;
const TOTAL: u64 = 60_000;
const DRAIN: Duration = Duration::from_millis(500);

/// The EAL file prefix `rl-<pid>-<name>` (behind `WCCPD_TEST_PREFIX`).
fn eal_prefix(name: &str) -> String {
    common::system_name(&format!("rl-{}-{name}", std::process::id()))
}

/// Services A (web-cache, statically assigned to cache A) and B (dynamic 90 with `b_password`
/// and a redirect list denying `b_deny`, then `b_extra` lines), as both tests reload them.
fn services(b_password: &str, b_deny: &str, b_extra: &str) -> String {
    format!(
        "  services:
    - id: 0
      type: standard
      static_assignment: {{caches: [{CACHE_A}]}}
    - id: 90
      type: dynamic
      protocol: tcp
      ports: [8080]
      password: {b_password}
      redirect_list:
        - {{action: deny, dst: {b_deny}}}
        - {{action: permit}}
{b_extra}"
    )
}

fn yaml(b_password: &str, b_deny: &str, mtu: u16) -> String {
    let pid = std::process::id();
    format!(
        "router:
  addresses: [10.9.3.1]
  control: {{transport: dpdk, socket_path: /tmp/rl-{pid}-dpdk-reload.sock}}
{services}log: {{level: warn}}
dataplane:
  eal: [--no-huge, --no-shconf, -m, \"256\", --file-prefix, {prefix}]
  workers: 1
  mbufs: 8191
  ports:
    - {{name: client, device: net_ring0, addresses: [10.9.1.1/24, 10.9.2.1/24, 10.9.3.1/24], redirect: [in], mtu: {mtu}, mac: \"02:00:00:00:01:01\"}}
  routes:
    - {{prefix: 198.18.0.0/15, via: 10.9.2.2}}
  neighbours:
    - {{address: 10.9.2.2, mac: \"02:00:00:00:02:02\"}}
    - {{address: 10.9.3.10, mac: \"02:00:00:00:03:10\"}}
    - {{address: 10.9.3.11, mac: \"02:00:00:00:03:11\"}}
",
        services = services(b_password, b_deny, "      static_assignment: {caches: [10.9.3.11]}\n"),
        prefix = eal_prefix("reload"),
    )
}

/// Client frame `seq`: TCP to port 80 (service A), the sequence number in the payload.
fn a_frame(seq: u64) -> Vec<u8> {
    let i = (seq % 4096) as u32;
    let dst = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_MAC)
        .ipv4([10, 9, 1, 16], dst.octets(), 64)
        .tcp(40000 + (i % 1000) as u16, 80, 1, 64240)
        .write(&mut f, &seq.to_be_bytes())
        .expect("frame");
    f
}

/// The sequence number of a GRE redirect of an A frame to cache A (service 0), if it is one.
fn redirected_a(frame: &[u8]) -> Option<u64> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv4(outer)) = p.net else {
        return None;
    };
    let h = outer.header();
    if h.protocol().0 != 47 || h.destination() != CACHE_A.octets() {
        return None;
    }
    // GRE 0x883E, then the redirect header (service id in octet 1), then the inner packet.
    let gre = &frame[14 + usize::from(h.ihl()) * 4..];
    if gre.get(2..4)? != [0x88, 0x3e] || gre[4] & 0x01 != 0 || gre[5] != 0 {
        return None;
    }
    let inner = &gre[8..];
    let ip = etherparse::Ipv4Slice::from_slice(inner).ok()?;
    let tcp = etherparse::TcpSlice::from_slice(ip.payload().payload).ok()?;
    Some(u64::from_be_bytes(tcp.payload().try_into().ok()?))
}

/// A service's table in the tables the workers read.
type Table = Option<Arc<assign::RedirectTable>>;

#[derive(Debug, Default)]
struct Outcome {
    sent: u64,
    received: u64,
    duplicated: u64,
    foreign: u64,
    dropped: u64,
    reload: Option<Result<ReloadSummary, ReloadError>>,
    refused: Option<Result<ReloadSummary, ReloadError>>,
    /// Generation before and after the reload.
    generations: (u64, u64),
    /// Whether A's and B's tables were the same `Arc`s after the reload.
    same_tables: (bool, bool),
    /// B's redirect list after the reload (number of rules).
    b_rules: usize,
    sent_after_reload: u64,
}

struct Hook {
    settings: Vec<config::RouterSettings>,
    requests: mpsc::Sender<ControlRequest>,
    run_requests: RequestHook,
    answers: mpsc::Receiver<Result<ReloadSummary, ReloadError>>,
    answer_tx: mpsc::Sender<Result<ReloadSummary, ReloadError>>,
    seen: Vec<bool>,
    out: Burst,
    back: Burst,
    drops_at_start: Option<u64>,
    stopped: Option<Instant>,
    before: Option<(Table, Table)>,
    outcome: Outcome,
}

impl Hook {
    /// Sends a reload to the control lcore the way `wccpd reload` does, and runs it.
    fn reload(&mut self, cx: &mut HookCtx<'_>, settings: config::RouterSettings) {
        let cfg = wccpd::daemon::build::router_config(&settings).expect("router config");
        let tx = self.answer_tx.clone();
        let request: ControlRequest = Box::new(move |cp, now, mut alloc| {
            let _ = tx.send(cp.reconfigure(now, cfg, &settings, &mut alloc));
        });
        self.requests.send(request).expect("request");
        self.run_requests.poll(cx);
    }
}

fn table(cx: &HookCtx<'_>, k: ServiceKey) -> Table {
    cx.control
        .tables()
        .service_by_key(k)
        .and_then(|s| s.table.clone())
}

impl MainHook for Hook {
    fn poll(&mut self, cx: &mut HookCtx<'_>) -> HookFlow {
        let drops_at_start = *self.drops_at_start.get_or_insert_with(|| cx.dropped());
        let o = &mut self.outcome;
        if o.sent >= BEFORE && o.reload.is_none() {
            self.before = Some((table(cx, WEB), table(cx, B)));
            let g0 = cx.control.tables().generation;
            let new = self.settings[1].clone();
            self.reload(cx, new);
            let o = &mut self.outcome;
            o.reload = self.answers.try_recv().ok();
            o.generations = (g0, cx.control.tables().generation);
            let (a, b) = self.before.clone().unwrap_or_default();
            let same =
                |x: &Table, y: &Table| matches!((x, y), (Some(x), Some(y)) if Arc::ptr_eq(x, y));
            o.same_tables = (same(&a, &table(cx, WEB)), same(&b, &table(cx, B)));
            o.b_rules = cx
                .control
                .tables()
                .service_by_key(B)
                .map_or(0, |s| s.rules.len());
            // A port change is refused and publishes nothing.
            let g = cx.control.tables().generation;
            let refused = self.settings[2].clone();
            self.reload(cx, refused);
            let o = &mut self.outcome;
            o.refused = self.answers.try_recv().ok();
            assert_eq!(
                cx.control.tables().generation,
                g,
                "refused: nothing published"
            );
        }
        let o = &mut self.outcome;
        let Some(peer) = cx.peers.first_mut() else {
            return HookFlow::Done;
        };
        let generating = o.sent < TOTAL;
        if generating && self.out.is_empty() && o.sent - o.received <= IN_FLIGHT - 32 {
            for _ in 0..32 {
                match cx.pool.alloc_with(&a_frame(o.sent)) {
                    Ok(m) => {
                        let _ = self.out.push(m);
                        o.sent += 1;
                        if o.reload.is_some() {
                            o.sent_after_reload += 1;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        if !self.out.is_empty() {
            peer.tx.tx_burst(&mut self.out);
        }
        for _ in 0..4 {
            if peer.rx.rx_burst(&mut self.back) == 0 {
                break;
            }
            for m in self.back.drain() {
                match redirected_a(m.data()) {
                    Some(seq) if seq < o.sent => {
                        let s = &mut self.seen[seq as usize];
                        if *s {
                            o.duplicated += 1;
                        } else {
                            *s = true;
                            o.received += 1;
                        }
                    }
                    _ => o.foreign += 1,
                }
            }
        }
        if generating {
            return HookFlow::Busy;
        }
        let stopped = *self.stopped.get_or_insert_with(Instant::now);
        o.dropped = cx.dropped().saturating_sub(drops_at_start);
        if o.received + o.dropped < o.sent && stopped.elapsed() < DRAIN {
            return HookFlow::Busy;
        }
        HookFlow::Done
    }
}

#[test]
fn reload_of_another_service_loses_no_packet() {
    if !common::prerequisites(&[]) {
        return;
    }
    let _runtime = RuntimeDir::new(&format!("rl-{}-reload", std::process::id()));
    let parse = |y: String| config::router_from_str(&y).unwrap_or_else(|e| panic!("{e}"));
    let settings = vec![
        parse(yaml("old-pw", "10.0.0.0/8", 1500)),
        parse(yaml("new-pw", "192.0.2.0/24", 1500)),
        parse(yaml("new-pw", "192.0.2.0/24", 1400)),
    ];
    let router = wccpd::daemon::build::router_config(&settings[0])
        .and_then(|c| Ok(control::router::Router::new(c)?))
        .expect("router");
    let (requests, rx) = mpsc::channel();
    let (answer_tx, answers) = mpsc::channel();
    let mut hook = Hook {
        settings: settings.clone(),
        requests,
        run_requests: RequestHook::new(rx),
        answers,
        answer_tx,
        seen: vec![false; TOTAL as usize],
        out: Burst::new(),
        back: Burst::new(),
        drops_at_start: None,
        stopped: None,
        before: None,
        outcome: Outcome::default(),
    };
    let (_status_tx, status_rx) = mpsc::channel::<StatusRequest>();
    let dp = settings[0].dataplane.as_ref().expect("dataplane");
    let opts = RunOptions {
        ring_ports: vec!["client".into()],
        hook: Some(&mut hook),
        ..RunOptions::default()
    };
    let report = dpdk_impl::run_with(
        &settings[0],
        dp,
        router,
        Arc::new(AtomicBool::new(false)),
        status_rx,
        opts,
    )
    .expect("data plane");
    let o = &hook.outcome;
    eprintln!("{o:?}");
    let summary = o.reload.clone().expect("reload answered").expect("applied");
    assert_eq!(summary.to_string(), "dynamic 90: password");
    assert!(o.generations.1 > o.generations.0, "{o:?}");
    assert_eq!(o.same_tables, (true, true), "tables untouched");
    assert_eq!(o.b_rules, 2);
    assert_eq!(
        o.refused.clone().expect("refusal answered"),
        Err(ReloadError::NeedsRestart(vec!["dataplane.ports".into()]))
    );
    assert_eq!(o.sent, TOTAL);
    assert!(o.sent_after_reload >= TOTAL - BEFORE - IN_FLIGHT, "{o:?}");
    assert_eq!((o.dropped, o.duplicated, o.foreign), (0, 0, 0), "{o:?}");
    assert_eq!(
        o.received, o.sent,
        "every A frame came back redirected: {o:?}"
    );
    assert_eq!(report.leaked_mbufs, 0);
}

/// The (empty) runtime directory EAL makes for a file prefix even with `--no-shconf`, removed
/// on drop, also when the test fails.
struct RuntimeDir(std::path::PathBuf);

impl RuntimeDir {
    fn new(prefix: &str) -> RuntimeDir {
        RuntimeDir(std::path::Path::new("/var/run/dpdk").join(prefix))
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon's configuration: one `net_pcap` port (nothing to read), services A and B.
fn daemon_yaml(
    dir: &std::path::Path,
    b_password: &str,
    b_deny: &str,
    mtu: u16,
    eal: &str,
) -> String {
    let d = dir.display();
    format!(
        "router:
  addresses: [10.9.3.1]
  control: {{transport: dpdk, socket_path: {d}/router.sock}}
  metrics: {{listen: \"127.0.0.1:{port}\"}}
{services}dataplane:
  eal: [--no-huge, --no-shconf, -m, \"128\", --file-prefix, {prefix}]
  workers: 1
  mbufs: 4095
  idle_backoff: true
  ports:
    - {{name: client, device: \"net_pcap0,rx_pcap={d}/empty.pcap,tx_pcap={d}/out.pcap\", addresses: [10.9.1.1/24, 10.9.3.1/24], redirect: [in], mtu: {mtu}, mac: \"02:00:00:00:01:01\"}}
  neighbours:
    - {{address: 10.9.3.10, mac: \"02:00:00:00:03:10\"}}
log: {{level: info}}
",
        port = metrics_port(),
        services = services(b_password, b_deny, ""),
        prefix = eal_prefix(&format!("cli{eal}")),
    )
}

fn metrics_port() -> u16 {
    40_000 + (std::process::id() % 20_000) as u16
}

#[test]
fn wccpd_reload_on_the_dpdk_data_plane() {
    if !common::prerequisites(&[]) {
        return;
    }
    let _runtime = [
        RuntimeDir::new(&eal_prefix("cli")),
        RuntimeDir::new(&eal_prefix("cli-x")),
    ];
    let dir = common::TempDir::new(&format!("rl-{}-dpdk", std::process::id()));
    let d = dir.0.clone();
    let empty = std::fs::File::create(d.join("empty.pcap")).expect("pcap");
    wccpd::pcap::PcapWriter::new(empty)
        .and_then(|w| w.finish())
        .expect("empty pcap");
    let conf = d.join("router.yaml");
    let sock = d.join("router.sock");
    std::fs::write(&conf, daemon_yaml(&d, "old-pw", "10.0.0.0/8", 1500, "")).unwrap();
    let log = d.join("router.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wccpd"))
        .args(["router", "-c"])
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("wccpd router");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let st = common::wait_for(Duration::from_secs(15), || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("router exited early ({s}):\n{}", text());
        }
        common::show_json(&sock)
    });
    let st = st.unwrap_or_else(|| panic!("router never answered:\n{}", text()));
    let generation = st["dataplane"]["generation"].as_u64().expect("generation");

    // A new password and redirect list for B: applied on the control lcore, new tables.
    std::fs::write(&conf, daemon_yaml(&d, "new-pw", "192.0.2.0/24", 1500, "")).unwrap();
    let (ok, report, all) = common::reload_json(&sock);
    assert!(ok, "{all}\n{}", text());
    assert_eq!(
        report["changes"],
        serde_json::json!(["service dynamic 90: password, redirect_list"]),
        "{all}"
    );
    assert_eq!(
        report["router"]["updated"][0]["changed"],
        serde_json::json!(["password"])
    );
    let st = common::show_json(&sock).expect("show");
    assert!(
        st["dataplane"]["generation"].as_u64() > Some(generation),
        "{st:#}"
    );
    assert_eq!(st["reloads"]["applied"], 1);

    // A port change and an EAL change need a restart.
    for (yaml, key) in [
        (
            daemon_yaml(&d, "new-pw", "192.0.2.0/24", 1400, ""),
            "dataplane.ports",
        ),
        (
            daemon_yaml(&d, "new-pw", "192.0.2.0/24", 1500, "-x"),
            "dataplane.eal",
        ),
    ] {
        std::fs::write(&conf, yaml).unwrap();
        let (ok, report, all) = common::reload_json(&sock);
        assert!(!ok, "{all}");
        assert_eq!(report["result"], "refused", "{all}");
        let p = report["problems"][0].as_str().unwrap_or_default();
        assert!(p.starts_with(&format!("{key}: needs a restart")), "{all}");
    }
    let st = common::show_json(&sock).expect("show");
    assert_eq!(st["reloads"]["refused"], 2);

    // SIGHUP with the first file again.
    std::fs::write(&conf, daemon_yaml(&d, "old-pw", "10.0.0.0/8", 1500, "")).unwrap();
    common::run("kill", &["-HUP", &child.id().to_string()]);
    let st = common::wait_for(Duration::from_secs(5), || {
        common::show_json(&sock).filter(|st| st["reloads"]["applied"] == 2)
    })
    .unwrap_or_else(|| panic!("SIGHUP did not reload:\n{}", text()));
    assert_eq!(st["reloads"]["last"]["trigger"], "sighup");
    assert_eq!(
        st["reloads"]["last"]["changes"],
        serde_json::json!(["service dynamic 90: password, redirect_list"])
    );

    let metrics = common::scrape_metrics(metrics_port());
    for (result, n) in [("applied", 2), ("refused", 2), ("invalid", 0)] {
        let line = format!("wccp_reloads_total{{result=\"{result}\"}} {n}");
        assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    }

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status =
        common::child::wait_or_kill(&mut child, Duration::from_secs(10), "router stopping");
    let text = text();
    assert!(status.success(), "router exit {status}:\n{text}");
    let mempool = common::mempool_at_exit(&text);
    assert_eq!(mempool.in_use, mempool.baseline, "{}", mempool.line);
    assert!(text.contains("configuration reloaded"), "{text}");
    assert!(text.contains("configuration reload refused"), "{text}");
}
