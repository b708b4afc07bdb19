//! The routed lab of the data-plane issue, with the real binaries: `wccpd router` on its DPDK
//! data plane (four `net_tap` ports, `--no-huge --no-shconf`, no PCI device touched) between a
//! client, an origin server and two caches, each in its own network namespace, and
//! `wccpd cache` with `cache.tun` plus an nftables REDIRECT on each cache host.
//!
//! ```text
//!   C 10.71.1.2 ──┐                         ┌── S 10.71.2.2, .3, .4 (HTTP on 80, 8080, 8081)
//!                 │   R (wccpd router, DPDK) │
//!     10.71.1.1 client port        server port 10.71.2.1
//!     10.71.3.1 cache1 port        cache2 port 10.71.4.1
//!                 │                          │
//!   K1 10.71.3.10 ┘                          └ K2 10.71.4.10   (wccpd cache + nft + proxy)
//! ```
//!
//! Every router port has `redirect: [in]`, so nothing but the data plane's own rules (member
//! sources excluded, GRE returns never redirected again) keeps the caches' traffic from being
//! redirected. Namespaces are `lab-<pid>-<tag><role>`, TAPs `l<pid%100000><tag><role>`; all
//! are removed by drop guards, also when a test fails. The two tests use different tags and
//! run one after the other (a lock), so their timings do not disturb each other.
//!
//! * `routed_lab_redirects_returns_and_fails_over`: interception split by bucket, another port
//!   routed, the caches' own traffic routed, GRE return of a refused destination to the server,
//!   exact redirected/decapsulated accounting, ping and traceroute through the router, failover
//!   when one cache agent dies, open service 0 and closed dynamic service 91 once none is left,
//!   clean SIGTERM with the mempool back at its baseline.
//! * `squid_intercepts_through_wccpd`: Debian's Squid as the intercepting proxy in K1 fetches the
//!   page from the origin server through the router.
//!
//! HTTP servers and the client are this test binary re-executed inside a namespace (no curl or
//! python needed). Needs root, `ip`, `nft`, `/dev/net/tun`, `ping`, `traceroute` and `squid`
//! (CI); fails without them unless `WCCPD_ALLOW_SKIP=1`.
//! EAL: every port is a TAP vdev, so the router passes --no-pci (no PCI probe).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use assign::hash::{primary_bucket, FlowKey};
use assign::service::flags::DST_IP_HASH;
use assign::spread::squid_hash;
use common::child::{env_var, rerun_in_netns};
use common::*;
use serde_json::Value;

/// Which helper a re-executed test binary runs: `serve` or `get`.
const CHILD_ENV: &str = "HLAB_CHILD";
const T_MS: u64 = 1000;
const CLIENT: &str = "10.71.1.2";
/// Two server addresses whose service-0 buckets (hash on the destination: 77 and 76) belong
/// to different caches: with two caches of equal weight Squid's walk (`assign::spread`) is a
/// plain round-robin, odd buckets to the second cache by address, even ones to the first.
const SERVER_A: &str = "10.71.2.2";
const SERVER_B: &str = "10.71.2.3";
/// The destination both caches refuse (`return_policy`): handed back to the router.
const REFUSED: &str = "10.71.2.4";
const CACHES: [&str; 2] = ["10.71.3.10", "10.71.4.10"];
const CACHE_GW: [&str; 2] = ["10.71.3.1", "10.71.4.1"];
/// The closed dynamic service of the first test and its port.
const CLOSED_ID: u64 = 91;
const CLOSED_PORT: u16 = 8081;
/// A port no service matches.
const OTHER_PORT: u16 = 8080;

/// One lab at a time: the failover timing must not be disturbed by the other test's router.
static LAB_LOCK: Mutex<()> = Mutex::new(());

// ---- helpers run inside the namespaces ---------------------------------------------------

/// HTTP/1.0 server: answers every request on each port of `HLAB_PORTS` with
/// `hello from <HLAB_NAME>` and prints `ACCESS <peer> <local> <request line>`. Exits after
/// 180 s at most (the parent kills it long before).
fn serve() {
    let name = env_var("HLAB_NAME");
    let ports: Vec<u16> = env_var("HLAB_PORTS")
        .split(',')
        .map(|p| p.parse().expect("port"))
        .collect();
    for port in ports {
        let l = TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| panic!("bind {port}: {e}"));
        let name = name.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(c) = conn else { continue };
                let name = name.clone();
                std::thread::spawn(move || answer(c, &name));
            }
        });
    }
    println!("LISTENING");
    std::thread::sleep(Duration::from_secs(180));
}

fn answer(c: TcpStream, name: &str) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
    let peer = c.peer_addr().map_or("?".into(), |a| a.to_string());
    let local = c.local_addr().map_or("?".into(), |a| a.to_string());
    let mut r = BufReader::new(&c);
    let mut first = String::new();
    if r.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(0) | Err(_) => break,
            Ok(_) if l == "\r\n" || l == "\n" => break,
            Ok(_) => {}
        }
    }
    println!("ACCESS {peer} {local} {}", first.trim_end());
    let body = format!("hello from {name}\n");
    let _ = (&c).write_all(
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// HTTP/1.0 GET of `/` from `HLAB_ADDR` (ip:port) within `HLAB_TIMEOUT_MS`; prints
/// `HTTP-BODY: <body>` or `HTTP-ERROR: <error>`.
fn get() {
    let addr: SocketAddr = env_var("HLAB_ADDR").parse().expect("ip:port");
    let timeout = Duration::from_millis(env_var("HLAB_TIMEOUT_MS").parse().expect("ms"));
    let result = (|| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(
            s,
            "GET / HTTP/1.0\r\nHost: {}\r\nUser-Agent: netns-lab\r\nAccept: */*\r\n\r\n",
            addr.ip()
        )?;
        let mut all = Vec::new();
        s.read_to_end(&mut all)?;
        let text = String::from_utf8_lossy(&all).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
            return Err(std::io::Error::other(format!("not a 200: {head:?}")));
        }
        Ok(body.trim().replace('\n', " | "))
    })();
    match result {
        Ok(b) => println!("HTTP-BODY: {b}"),
        Err(e) => println!("HTTP-ERROR: {e}"),
    }
}

/// Runs the helper of this process if it is one. `true`: it was, the test function returns.
fn helper() -> bool {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("serve") => serve(),
        Ok("get") => get(),
        _ => return false,
    }
    true
}

// ---- the lab -----------------------------------------------------------------------------

/// Seconds since `t0`, for progress lines.
fn secs(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

/// The lab's namespaces, deleted on drop.
#[derive(Debug)]
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip")
                .args(["netns", "delete", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Opts {
    /// The test function's name (helpers re-execute it).
    test: &'static str,
    /// One letter: namespace and TAP names.
    tag: char,
    /// The closed dynamic service 91 on router and caches, and the caches' refused destination.
    full: bool,
    /// Squid instead of the test responder as K1's proxy.
    squid: bool,
}

#[derive(Debug)]
struct Lab {
    // Field order = drop order: processes first, then namespaces, then files.
    router: NsChild,
    agents: Vec<NsChild>,
    helpers: Vec<NsChild>,
    server_log: PathBuf,
    router_sock: PathBuf,
    cache_socks: Vec<PathBuf>,
    client_ns: String,
    cache_ns: Vec<String>,
    opts: Opts,
    t0: Instant,
    _ns: Namespaces,
    dir: TempDir,
}

fn nft_rules(full: bool) -> String {
    let ports = if full {
        format!("{{ 80, {CLOSED_PORT} }}")
    } else {
        "80".to_string()
    };
    format!(
        "table ip wccp {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    iifname \"wccp0\" tcp dport {ports} redirect to :3129\n  }}\n}}\n"
    )
}

fn router_yaml(opts: Opts, sock: &Path, ifs: &[String; 4]) -> String {
    let mut y = vec![
        "router:".to_string(),
        format!("  addresses: [{}, {}]", CACHE_GW[0], CACHE_GW[1]),
        format!(
            "  control: {{transport: dpdk, socket_path: {}}}",
            sock.display()
        ),
        format!("  timers: {{transmit_t_ms: {T_MS}}}"),
        "  services:".to_string(),
        "    - {id: 0, type: standard}".to_string(),
    ];
    if opts.full {
        y.push(format!(
            "    - {{id: {CLOSED_ID}, type: dynamic, protocol: tcp, ports: [{CLOSED_PORT}], closed: true}}"
        ));
    }
    y.extend([
        "dataplane:".to_string(),
        "  eal: [--no-huge, --no-shconf, -m, \"256\", --log-level, \"*:warning\"]".to_string(),
        "  workers: 1".to_string(),
        "  idle_backoff: true".to_string(),
        "  ports:".to_string(),
    ]);
    for (i, (name, net)) in [("client", 1), ("server", 2), ("cache1", 3), ("cache2", 4)]
        .into_iter()
        .enumerate()
    {
        y.push(format!(
            "    - {{name: {name}, device: \"net_tap{i},iface={}\", addresses: [10.71.{net}.1/24], redirect: [in]}}",
            ifs[i]
        ));
    }
    y.push("log: {level: debug}".to_string());
    y.join("\n") + "\n"
}

fn cache_yaml(opts: Opts, i: usize, sock: &Path) -> String {
    let mut services = "    - id: 0\n      type: standard\n".to_string();
    if opts.full {
        services.push_str(&format!(
            "      return_policy: {{refuse_destinations: [{REFUSED}/32]}}\n    - {{id: {CLOSED_ID}, type: dynamic, protocol: tcp, ports: [{CLOSED_PORT}]}}\n"
        ));
    }
    format!(
        "cache:\n  address: {a}\n  routers: [{r}]\n  control: {{socket_path: {s}}}\n  timers: {{transmit_t_ms: {T_MS}}}\n  tun: {{name: wccp0}}\n  services:\n{services}log: {{level: debug}}\n",
        a = CACHES[i],
        r = CACHE_GW[i],
        s = sock.display(),
    )
}

fn squid_conf(dir: &TempDir) -> String {
    let d = dir.join("squid");
    let d = d.display();
    format!(
        "http_port 3128\n\
         http_port 3129 intercept\n\
         visible_hostname lab-squid\n\
         http_access allow all\n\
         cache deny all\n\
         access_log stdio:{d}/access.log\n\
         cache_store_log none\n\
         cache_log {d}/cache.log\n\
         pid_filename {d}/squid.pid\n\
         coredump_dir {d}\n\
         netdb_filename none\n\
         pinger_enable off\n\
         shutdown_lifetime 0 seconds\n"
    )
}

/// Starts this test binary as helper `kind` in `ns`.
fn spawn_helper(
    opts: Opts,
    name: &str,
    ns: &str,
    kind: &str,
    env: &[(&str, String)],
    log: PathBuf,
) -> NsChild {
    NsChild::start(
        name,
        rerun_in_netns(ns, opts.test)
            .env(CHILD_ENV, kind)
            .envs(env.iter().map(|(k, v)| (k, v))),
        log,
    )
}

impl Lab {
    fn start(opts: Opts) -> Lab {
        let t0 = Instant::now();
        let pid = std::process::id();
        let short = pid % 100_000;
        let tag = opts.tag;
        let dir = TempDir::new(&format!("lab{tag}"));
        let ns_name = |role: &str| common::system_name(&format!("lab-{pid}-{tag}{role}"));
        let (r, c, s) = (ns_name("r"), ns_name("c"), ns_name("s"));
        let k = [ns_name("k1"), ns_name("k2")];
        let guard = Namespaces(vec![
            r.clone(),
            c.clone(),
            s.clone(),
            k[0].clone(),
            k[1].clone(),
        ]);
        for ns in &guard.0 {
            run("ip", &["netns", "add", ns]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            );
        }
        let ifs = ["c", "s", "k1", "k2"].map(|x| format!("l{short}{tag}{x}"));

        // The router.
        let router_sock = dir.join("router.sock");
        let router_conf = dir.join("router.yaml");
        std::fs::write(&router_conf, router_yaml(opts, &router_sock, &ifs)).unwrap();
        let mut router = NsChild::wccpd("router", &r, "router", &router_conf, &dir);
        let up = wait_for(Duration::from_secs(30), || {
            let all = ifs.iter().all(|i| {
                Command::new("ip")
                    .args(["-n", &r, "link", "show", "dev", i])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
            (router.output().contains("data plane running") && all || !router.running())
                .then_some(())
        });
        assert!(
            up.is_some() && router.running(),
            "router never ran its data plane with the four TAPs:\n{}",
            router.output()
        );
        eprintln!("[{:5.2}s] {tag}: data plane running", secs(t0));

        // Hosts: each TAP into its namespace, own MAC, address(es), default route.
        let hosts: [(&str, &str, &[&str], &str); 4] = [
            (&c, &ifs[0], &["10.71.1.2/24"], "10.71.1.1"),
            (
                &s,
                &ifs[1],
                &["10.71.2.2/24", "10.71.2.3/24", "10.71.2.4/24"],
                "10.71.2.1",
            ),
            (&k[0], &ifs[2], &["10.71.3.10/24"], CACHE_GW[0]),
            (&k[1], &ifs[3], &["10.71.4.10/24"], CACHE_GW[1]),
        ];
        let x = if tag == 'a' { 1 } else { 2 };
        for (n, (ns, ifname, addrs, gw)) in hosts.iter().enumerate() {
            run("ip", &["-n", &r, "link", "set", ifname, "netns", ns]);
            let mac = format!("02:00:00:71:{x:02x}:{:02x}", n + 1);
            run("ip", &["-n", ns, "link", "set", ifname, "address", &mac]);
            for a in *addrs {
                run("ip", &["-n", ns, "addr", "add", a, "dev", ifname]);
            }
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
            run("ip", &["-n", ns, "route", "add", "default", "via", gw]);
        }

        // The origin server.
        let mut helpers = Vec::new();
        let server_log = dir.join("server.log");
        let server = spawn_helper(
            opts,
            "server",
            &s,
            "serve",
            &[
                ("HLAB_NAME", "server".into()),
                ("HLAB_PORTS", format!("80,{OTHER_PORT},{CLOSED_PORT}")),
            ],
            server_log.clone(),
        );
        server.wait_output("LISTENING", Duration::from_secs(10));
        helpers.push(server);

        // The cache hosts: interception rule, proxy, agent.
        let rules = dir.join("wccp.nft");
        std::fs::write(&rules, nft_rules(opts.full)).unwrap();
        for (i, ns) in k.iter().enumerate() {
            run(
                "ip",
                &["netns", "exec", ns, "nft", "-f", rules.to_str().unwrap()],
            );
            if opts.squid && i == 0 {
                let sd = dir.join("squid");
                std::fs::create_dir_all(&sd).unwrap();
                run("chmod", &["0777", sd.to_str().unwrap()]);
                let conf = dir.join("squid.conf");
                std::fs::write(&conf, squid_conf(&dir)).unwrap();
                helpers.push(NsChild::spawn(
                    "squid",
                    ns,
                    "/usr/sbin/squid",
                    &["-N", "-d", "1", "-f", conf.to_str().unwrap()],
                    dir.join("squid.out"),
                ));
            } else {
                let name = format!("cache{}", i + 1);
                let h = spawn_helper(
                    opts,
                    &format!("responder{}", i + 1),
                    ns,
                    "serve",
                    &[("HLAB_NAME", name.clone()), ("HLAB_PORTS", "3129".into())],
                    dir.join(&format!("responder{}.log", i + 1)),
                );
                h.wait_output("LISTENING", Duration::from_secs(10));
                helpers.push(h);
            }
        }
        let mut agents = Vec::new();
        let mut cache_socks = Vec::new();
        let agents_started = Instant::now();
        for (i, ns) in k.iter().enumerate() {
            let sock = dir.join(&format!("cache{}.sock", i + 1));
            let conf = dir.join(&format!("cache{}.yaml", i + 1));
            std::fs::write(&conf, cache_yaml(opts, i, &sock)).unwrap();
            agents.push(NsChild::wccpd(
                &format!("cache{}", i + 1),
                ns,
                "cache",
                &conf,
                &dir,
            ));
            cache_socks.push(sock);
        }
        let lab = Lab {
            router,
            agents,
            helpers,
            server_log,
            router_sock,
            cache_socks,
            client_ns: c,
            cache_ns: k.to_vec(),
            opts,
            t0,
            _ns: guard,
            dir,
        };

        // Converged: every service assigned, both caches usable, both resolved in the data
        // plane's tables.
        let want: BTreeSet<String> = CACHES.iter().map(|s| s.to_string()).collect();
        let st = wait_for(Duration::from_secs(15), || {
            lab.status().filter(|st| lab.converged(st, &want))
        });
        let st = st.unwrap_or_else(|| {
            panic!(
                "lab never converged: {:#}\n{}\n{}",
                lab.status().unwrap_or(Value::Null),
                lab.agents[0].output(),
                lab.agents[1].output()
            )
        });
        let took = agents_started.elapsed();
        eprintln!(
            "[{:5.2}s] {tag}: both caches usable, assignment accepted, tables resolved {:.2}s after the agents started",
            secs(t0),
            took.as_secs_f64()
        );
        assert!(
            took <= Duration::from_millis(6 * T_MS),
            "converged only after {took:?}: {st:#}"
        );
        lab
    }

    /// The service ids of this lab.
    fn service_ids(&self) -> Vec<u64> {
        if self.opts.full {
            vec![0, CLOSED_ID]
        } else {
            vec![0]
        }
    }

    fn status(&self) -> Option<Value> {
        show_json(&self.router_sock)
    }

    fn must_status(&self) -> Value {
        self.status().unwrap_or_else(|| {
            panic!(
                "router control socket does not answer:\n{}",
                self.router.output()
            )
        })
    }

    fn cache_status(&self, i: usize) -> Value {
        show_json(&self.cache_socks[i]).unwrap_or_else(|| panic!("cache{} does not answer", i + 1))
    }

    /// Every service has an accepted assignment, exactly `live` are usable at the router, and
    /// the data plane's table for it redirects to exactly `live` (resolved, not drained).
    fn converged(&self, st: &Value, live: &BTreeSet<String>) -> bool {
        self.service_ids().into_iter().all(|id| {
            let svc = router_svc(st, id);
            let usable: BTreeSet<String> = svc["caches"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|c| c["usable"] == true)
                        .filter_map(|c| c["address"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            // The assignment gives every bucket to `live` (not to a removed cache).
            let buckets: u64 = svc["caches"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|c| c["address"].as_str().is_some_and(|x| live.contains(x)))
                        .map(|c| n(&c["buckets"]))
                        .sum()
                })
                .unwrap_or(0);
            (live.is_empty() || (svc["assignment"].is_object() && buckets == 256))
                && usable == *live
                && dp_live(st, id) == *live
        })
    }

    /// GET `http://ip:port/` from namespace `ns`.
    fn get(&self, ns: &str, ip: &str, port: u16, timeout: Duration) -> Result<String, String> {
        let out = rerun_in_netns(ns, self.opts.test)
            .env(CHILD_ENV, "get")
            .env("HLAB_ADDR", format!("{ip}:{port}"))
            .env("HLAB_TIMEOUT_MS", timeout.as_millis().to_string())
            .stdin(Stdio::null())
            .output()
            .expect("run the GET helper");
        let text = String::from_utf8_lossy(&out.stdout);
        // libtest prints `test NAME ... ` without a newline before the helper's line.
        for l in text.lines() {
            if let Some((_, b)) = l.split_once("HTTP-BODY: ") {
                return Ok(b.to_string());
            }
            if let Some((_, e)) = l.split_once("HTTP-ERROR: ") {
                return Err(e.to_string());
            }
        }
        panic!(
            "GET helper said nothing: {}\n{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// GET from the client, which must succeed; returns the body.
    fn client_get(&self, ip: &str, port: u16) -> String {
        let t = Instant::now();
        let r = self.get(&self.client_ns, ip, port, Duration::from_secs(3));
        let body = r.unwrap_or_else(|e| {
            panic!(
                "GET http://{ip}:{port}/ from the client failed: {e}\nrouter: {:#}",
                self.status().unwrap_or(Value::Null)
            )
        });
        eprintln!(
            "[{:5.2}s] {}: GET http://{ip}:{port}/ -> {body:?} ({} ms)",
            secs(self.t0),
            self.opts.tag,
            t.elapsed().as_millis()
        );
        body
    }

    fn server_access(&self) -> String {
        std::fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    /// SIGTERM to the router: status 0 within a few seconds, every mbuf back in the pool.
    fn stop_router(&mut self) {
        let t = Instant::now();
        let st = self.router.signal_and_wait("TERM", Duration::from_secs(10));
        let log = self.router.output();
        assert!(
            st.is_some_and(|s| s.success()),
            "router exit at SIGTERM: {st:?}\n{log}"
        );
        let MempoolAtExit {
            line,
            in_use,
            baseline,
        } = mempool_at_exit(&log);
        assert_eq!(in_use, baseline, "mbufs leaked: {line}");
        eprintln!(
            "[{:5.2}s] {}: router exited 0 in {} ms; {}",
            secs(self.t0),
            self.opts.tag,
            t.elapsed().as_millis(),
            line.split_once("mempool").map_or(line, |x| x.1).trim()
        );
    }
}

// ---- status accessors --------------------------------------------------------------------

fn router_svc(st: &Value, id: u64) -> &Value {
    st["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id))
        .unwrap_or(&Value::Null)
}

fn dp_svc(st: &Value, id: u64) -> &Value {
    st["dataplane"]["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["id"] == id))
        .unwrap_or(&Value::Null)
}

/// The caches service `id`'s data-plane table redirects to (resolved and not drained).
fn dp_live(st: &Value, id: u64) -> BTreeSet<String> {
    dp_svc(st, id)["caches"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["resolved"] == true && c["drained"] == false)
                .filter_map(|c| c["address"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Packets service `id` redirected to `cache`.
fn dp_packets(st: &Value, id: u64, cache: &str) -> u64 {
    dp_svc(st, id)["caches"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["address"] == cache))
        .and_then(|c| c["packets"].as_u64())
        .unwrap_or(0)
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Packets redirected by every service of the data plane.
fn redirected_total(st: &Value) -> u64 {
    st["dataplane"]["services"]
        .as_array()
        .map(|a| a.iter().map(|s| n(&s["redirected"])).sum())
        .unwrap_or(0)
}

fn verdict(st: &Value, name: &str) -> u64 {
    n(&st["dataplane"]["verdicts"][name])
}

/// Which cache a body names (`hello from cache1` -> Some(0)).
fn answering_cache(body: &str) -> Option<usize> {
    (0..2).find(|i| body.contains(&format!("hello from cache{}", i + 1)))
}

/// Service 0's bucket of a client connection to `dst`:80, and the index (into [`CACHES`]) of
/// the cache that owns it when both caches (equal weight) are in the group: the designated
/// cache spreads with Squid's walk over the caches in ascending address order.
fn owner(dst: &str) -> (u8, usize) {
    let dst: Ipv4Addr = dst.parse().unwrap();
    let src: Ipv4Addr = CLIENT.parse().unwrap();
    let b = primary_bucket(
        DST_IP_HASH,
        &FlowKey::new(u32::from(src), u32::from(dst), 40_000, 80),
    );
    let spread = squid_hash(&[10_000, 10_000]);
    (b, usize::from(spread[usize::from(b)]))
}

/// The first existing path of `candidates`, else a description that names the package (so
/// [`prerequisites`] reports it as missing).
fn tool(candidates: &[&'static str], package: &str) -> String {
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .map_or_else(
            || format!("{} (Debian package {package})", candidates[0]),
            |p| p.to_string(),
        )
}

// ---- the tests ---------------------------------------------------------------------------

#[test]
fn routed_lab_redirects_returns_and_fails_over() {
    if helper() {
        return;
    }
    let ping = tool(&["/usr/bin/ping", "/bin/ping"], "iputils-ping");
    let traceroute = tool(
        &["/usr/bin/traceroute", "/usr/sbin/traceroute"],
        "traceroute",
    );
    if !prerequisites(&["/usr/sbin/nft", "/dev/net/tun", &ping, &traceroute]) {
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let mut lab = Lab::start(Opts {
        test: "routed_lab_redirects_returns_and_fails_over",
        tag: 'a',
        full: true,
        squid: false,
    });
    let t0 = lab.t0;
    let c_ns = lab.client_ns.clone();
    let (ba, oa) = owner(SERVER_A);
    let (bb, ob) = owner(SERVER_B);
    eprintln!(
        "buckets: {SERVER_A} -> {ba} (cache{}), {SERVER_B} -> {bb} (cache{})",
        oa + 1,
        ob + 1
    );
    assert_ne!(oa, ob, "pick server addresses owned by different caches");

    // 1. Interception, split by bucket: each answer names the cache that owns the address's
    // bucket, and the data plane counted the packets for that cache only.
    for (dst, own) in [(SERVER_A, oa), (SERVER_B, ob)] {
        let before = lab.must_status();
        let body = lab.client_get(dst, 80);
        let after = lab.must_status();
        assert_eq!(
            answering_cache(&body),
            Some(own),
            "{dst}:80 (bucket owned by cache{}) answered: {body:?}",
            own + 1
        );
        let grew: Vec<bool> = CACHES
            .iter()
            .map(|c| dp_packets(&after, 0, c) > dp_packets(&before, 0, c))
            .collect();
        let mut want = vec![false, false];
        want[own] = true;
        assert_eq!(
            grew,
            want,
            "{dst} answered by cache{} but the data plane redirected to {grew:?}: {:#}",
            own + 1,
            after["dataplane"]["services"]
        );
    }
    // The closed dynamic service redirects its port as well while caches are there.
    let body = lab.client_get(SERVER_A, CLOSED_PORT);
    assert!(
        answering_cache(&body).is_some(),
        "{SERVER_A}:{CLOSED_PORT} (service {CLOSED_ID}) answered by a cache: {body:?}"
    );

    // 2. Another port: routed to the server itself.
    let before = lab.must_status();
    let body = lab.client_get(SERVER_A, OTHER_PORT);
    assert_eq!(
        body, "hello from server",
        "port {OTHER_PORT} is not redirected"
    );
    let after = lab.must_status();
    assert!(
        verdict(&after, "routed") > verdict(&before, "routed"),
        "routed verdicts grew: {} -> {}",
        before["dataplane"]["verdicts"],
        after["dataplane"]["verdicts"]
    );
    assert_eq!(
        redirected_total(&after),
        redirected_total(&before),
        "nothing redirected for port {OTHER_PORT}"
    );

    // 3. The caches' own traffic (member sources) is routed, never redirected.
    let before = lab.must_status();
    for (i, ns) in lab.cache_ns.iter().enumerate() {
        let body = lab
            .get(ns, SERVER_A, 80, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("GET from cache{}: {e}", i + 1));
        assert_eq!(
            body,
            "hello from server",
            "cache{}'s own request is routed to the origin",
            i + 1
        );
    }
    let access = lab.server_access();
    for c in CACHES {
        assert!(
            access.contains(&format!("ACCESS {c}:")),
            "server saw {c}:\n{access}"
        );
    }
    let after = lab.must_status();
    assert_eq!(
        redirected_total(&after),
        redirected_total(&before),
        "the caches' own port-80 traffic was redirected: {:#}",
        after["dataplane"]["services"]
    );
    eprintln!(
        "[{:5.2}s] caches' own requests routed to the origin",
        secs(t0)
    );

    // 4. A refused destination: the cache hands the packets back in GRE, the router
    // decapsulates and routes them; the server answers, and nothing is redirected twice.
    // A ping first (routed, ICMP is not redirected) makes the router resolve the server's
    // third address: a packet held for ARP is sent later by the control lcore (`injected`),
    // not counted under its verdict, and would spoil the exact returned_gre count below.
    let out = ns_exec(&c_ns, &[&ping, "-c", "1", "-W", "2", REFUSED]);
    assert!(
        out.status.success(),
        "ping {REFUSED}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let before = lab.must_status();
    let cb: Vec<Value> = (0..2).map(|i| lab.cache_status(i)).collect();
    let body = lab.client_get(REFUSED, 80);
    assert_eq!(
        body, "hello from server",
        "refused destination served by origin"
    );
    let access = lab.server_access();
    assert!(
        access
            .lines()
            .any(|l| l.contains(&format!("ACCESS {CLIENT}:"))
                && l.contains(&format!(" {REFUSED}:80 "))),
        "the server's log shows the client's request to {REFUSED}:\n{access}"
    );
    let settled = wait_for(Duration::from_secs(3), || {
        let after = lab.status()?;
        let ca: Vec<Value> = (0..2).map(|i| lab.cache_status(i)).collect();
        let d = |f: &dyn Fn(&Value) -> u64| -> u64 {
            ca.iter()
                .zip(&cb)
                .map(|(a, b)| f(a).saturating_sub(f(b)))
                .sum()
        };
        let delta = |k: &str| n(&dp_svc(&after, 0)[k]).saturating_sub(n(&dp_svc(&before, 0)[k]));
        let redirected = delta("redirected");
        let returned = delta("returned");
        let decap = d(&|v| n(&v["tun"]["decapsulated"]));
        let cache_returned = d(&|v| n(&v["packet_return"]["returned"]));
        let written = d(&|v| n(&v["tun"]["written"]));
        let nums = (redirected, decap, cache_returned, returned, written);
        (redirected > 0
            && decap == redirected
            && cache_returned == redirected
            && returned == redirected
            && written == 0)
            .then_some((after, nums))
    });
    let (after, nums) = settled.unwrap_or_else(|| {
        panic!(
            "GET {REFUSED}: router redirected / cache decapsulated / cache returned / router returned do not match: router {:#}\ncache1 {:#}\ncache2 {:#}",
            lab.must_status()["dataplane"],
            lab.cache_status(0),
            lab.cache_status(1)
        )
    });
    eprintln!(
        "[{:5.2}s] GET {REFUSED}: redirected {} = decapsulated {} = returned by caches {} = returned at router {}, written to TUN {}",
        secs(t0),
        nums.0,
        nums.1,
        nums.2,
        nums.3,
        nums.4
    );
    assert!(n(&dp_svc(&after, 0)["returned"]) > 0);
    assert!(
        verdict(&after, "returned_gre") == verdict(&before, "returned_gre") + nums.3,
        "every returned packet routed as returned_gre: {}",
        after["dataplane"]["verdicts"]
    );

    // 5. Exact accounting: every packet the router redirected reached a cache exactly once.
    let exact = wait_for(Duration::from_secs(3), || {
        let st = lab.status()?;
        let decap: u64 = (0..2)
            .map(|i| n(&lab.cache_status(i)["tun"]["decapsulated"]))
            .sum();
        (redirected_total(&st) == decap).then_some((redirected_total(&st), decap))
    });
    let (redirected, decap) = exact.unwrap_or_else(|| {
        panic!(
            "router redirected != caches decapsulated: router {:#}\ncache1 {:#}\ncache2 {:#}",
            lab.must_status()["dataplane"],
            lab.cache_status(0)["tun"],
            lab.cache_status(1)["tun"]
        )
    });
    eprintln!(
        "[{:5.2}s] accounting: router redirected {redirected} = caches decapsulated {decap}",
        secs(t0)
    );

    // 6. ICMP through and to the router.
    let out = ns_exec(&c_ns, &[&ping, "-c", "2", "-i", "0.2", "-W", "2", SERVER_A]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("ttl=63"),
        "ping {SERVER_A} through the router (ttl 63):\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ns_exec(
        &c_ns,
        &[&ping, "-c", "2", "-i", "0.2", "-W", "2", "10.71.1.1"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ping the router:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ns_exec(
        &c_ns,
        &[&traceroute, "-n", "-q", "2", "-w", "2", "-m", "5", SERVER_A],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hops: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .find(|w| w.parse::<Ipv4Addr>().is_ok())
                .unwrap_or("*")
                .to_string()
        })
        .collect();
    assert_eq!(
        hops,
        ["10.71.1.1", SERVER_A],
        "traceroute -n {SERVER_A}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("[{:5.2}s] ping and traceroute through the router", secs(t0));

    // 7. Failover: K1's agent dies; within 3T (removal) + 1.5T (new assignment) + slack its
    // buckets are cache2's.
    lab.agents[0].kill();
    let killed = Instant::now();
    let only2: BTreeSet<String> = [CACHES[1].to_string()].into();
    let st = wait_for(Duration::from_secs(12), || {
        lab.status().filter(|st| lab.converged(st, &only2))
    });
    let took = killed.elapsed();
    let st = st.unwrap_or_else(|| {
        panic!(
            "buckets never moved to cache2: {:#}",
            lab.status().unwrap_or(Value::Null)
        )
    });
    eprintln!(
        "[{:5.2}s] failover: cache1 killed, all buckets on cache2 after {:.2}s (bound {:.1}s)",
        secs(t0),
        took.as_secs_f64(),
        (T_MS * 3 + T_MS * 3 / 2 + 1000) as f64 / 1000.0
    );
    assert!(
        took <= Duration::from_millis(T_MS * 3 + T_MS * 3 / 2 + 1000),
        "failover took {took:?}: {:#}",
        router_svc(&st, 0)
    );
    for dst in [SERVER_A, SERVER_B] {
        let body = lab.client_get(dst, 80);
        assert_eq!(body, "hello from cache2", "{dst} after failover");
    }

    // 8. None left: the open service 0 is routed to the origin, the closed service 91 drops.
    lab.agents[1].kill();
    let killed = Instant::now();
    let none = BTreeSet::new();
    let st = wait_for(Duration::from_secs(12), || {
        lab.status().filter(|st| lab.converged(st, &none))
    });
    assert!(
        st.is_some(),
        "caches never all removed: {:#}",
        lab.status().unwrap_or(Value::Null)
    );
    eprintln!(
        "[{:5.2}s] cache2 killed, no cache left after {:.2}s",
        secs(t0),
        killed.elapsed().as_secs_f64()
    );
    let body = lab.client_get(SERVER_A, 80);
    assert_eq!(body, "hello from server", "open service without caches");
    let before = lab.must_status();
    let r = lab.get(&c_ns, SERVER_A, CLOSED_PORT, Duration::from_millis(1500));
    assert!(
        r.is_err(),
        "closed service {CLOSED_ID} without caches must drop port {CLOSED_PORT}: {r:?}"
    );
    let after = lab.must_status();
    let dropped = n(&dp_svc(&after, CLOSED_ID)["closed_drop"]);
    assert!(
        dropped > n(&dp_svc(&before, CLOSED_ID)["closed_drop"])
            && n(&after["dataplane"]["drops"]["closed_service"]) > 0,
        "closed-service drops counted: {:#}\n{}",
        dp_svc(&after, CLOSED_ID),
        after["dataplane"]["drops"]
    );
    eprintln!(
        "[{:5.2}s] closed service {CLOSED_ID}: GET :{CLOSED_PORT} -> {}, closed_drop {dropped}",
        secs(t0),
        r.unwrap_err()
    );

    // 9. Teardown.
    lab.stop_router();
    eprintln!("[{:5.2}s] done", secs(t0));
}

#[test]
fn squid_intercepts_through_wccpd() {
    if helper() {
        return;
    }
    if !prerequisites(&["/usr/sbin/nft", "/dev/net/tun", "/usr/sbin/squid"]) {
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let mut lab = Lab::start(Opts {
        test: "squid_intercepts_through_wccpd",
        tag: 'b',
        full: false,
        squid: true,
    });
    let t0 = lab.t0;
    let squid_dir = lab.dir.join("squid");
    let cache_log = squid_dir.join("cache.log");
    let ready = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&cache_log)
            .ok()
            .filter(|l| l.contains("Accepting NAT intercepted HTTP Socket connections"))
    });
    let squid_running = lab.helpers[1].running();
    assert!(
        ready.is_some() && squid_running,
        "squid never listened on its intercept port:\n{}\n{}",
        std::fs::read_to_string(&cache_log).unwrap_or_default(),
        lab.helpers[1].output()
    );
    eprintln!(
        "[{:5.2}s] b: squid accepting intercepted connections",
        secs(t0)
    );

    // The address whose bucket cache1 owns is fetched by Squid from the origin; the other is
    // answered by cache2's responder.
    let mut via_squid = None;
    for dst in [SERVER_A, SERVER_B] {
        let (b, own) = owner(dst);
        let before = lab.must_status();
        let body = lab.client_get(dst, 80);
        let after = lab.must_status();
        let grew: Vec<bool> = CACHES
            .iter()
            .map(|c| dp_packets(&after, 0, c) > dp_packets(&before, 0, c))
            .collect();
        let mut want = vec![false, false];
        want[own] = true;
        assert_eq!(
            grew,
            want,
            "{dst} (bucket {b}, cache{}) redirected to {grew:?}: {:#}",
            own + 1,
            after["dataplane"]["services"]
        );
        if own == 0 {
            assert_eq!(
                body,
                "hello from server",
                "squid in cache1 fetched {dst} from the origin:\n{}",
                std::fs::read_to_string(&cache_log).unwrap_or_default()
            );
            via_squid = Some(dst);
        } else {
            assert_eq!(body, "hello from cache2", "{dst}");
        }
    }
    let dst = via_squid.expect("one server address is in cache1's buckets");
    let access_log = squid_dir.join("access.log");
    let line = wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&access_log).ok().and_then(|l| {
            l.lines()
                .find(|l| l.contains(CLIENT) && l.contains(&format!("http://{dst}/")))
                .map(str::to_owned)
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "squid's access.log has no request from {CLIENT} for http://{dst}/:\n{}",
            std::fs::read_to_string(&access_log).unwrap_or_default()
        )
    });
    eprintln!("squid access.log: {line}");
    let access = lab.server_access();
    assert!(
        access
            .lines()
            .any(|l| l.contains(&format!("ACCESS {}:", CACHES[0]))
                && l.contains(&format!(" {dst}:80 "))),
        "the origin saw squid's fetch from {}:\n{access}",
        CACHES[0]
    );
    // Squid's fetch from the origin was routed (a member's traffic), never redirected: what
    // the router redirected is what the caches decapsulated.
    let exact = wait_for(Duration::from_secs(3), || {
        let st = lab.status()?;
        let decap: u64 = (0..2)
            .map(|i| n(&lab.cache_status(i)["tun"]["decapsulated"]))
            .sum();
        (redirected_total(&st) == decap).then_some(decap)
    });
    assert!(
        exact.is_some(),
        "router redirected != caches decapsulated: {:#}",
        lab.must_status()["dataplane"]["services"]
    );
    lab.stop_router();
    eprintln!("[{:5.2}s] b: done", secs(t0));
}
