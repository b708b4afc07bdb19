//! The operator's tools with the real binaries in two network namespaces (socket transport):
//!
//! * `cache.health_check`: the cache agent probes a "proxy" (a TCP listener this test binary
//!   runs in the cache namespace). Stopping it makes the agent leave its group with a SHUTDOWN:
//!   the router shows the cache not usable (reason `shutdown`) well under 3·T; starting it again
//!   makes the cache usable and assigned again. `wccpd show` on both sides says so, and
//!   `wccpd why` explains it with the last message heard.
//! * `wccpd explain` against a router without a data plane: answered from the published
//!   tables, saying so.
//! * Signals: one SIGTERM stops the router cleanly (exit 0); a second signal while it stops
//!   exits at once with 128 + the signal (143 for SIGTERM), for the router and the cache agent.
//!
//! Namespaces are `i8-<pid>-{r,c}-<pid>-<n>`, removed on drop. Needs root (CI).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::child::{env_var, rerun_in_netns};
use common::*;
use serde_json::Value;

/// Which helper a re-executed test binary runs.
const CHILD_ENV: &str = "I8_HEALTH_CHILD";
/// The helper that plays the proxy.
const PROXY_TEST: &str = "proxy_helper";
const PROXY_PORT: u16 = 3129;

/// The "proxy": listens on 127.0.0.1:PORT and accepts until killed. A no-op as a plain test.
#[test]
fn proxy_helper() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("proxy") {
        return;
    }
    let port: u16 = env_var("I8_PROXY_PORT").parse().unwrap();
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    println!("PROXY-LISTENING {port}");
    for c in l.incoming() {
        drop(c);
    }
}

fn net() -> NetnsPair {
    NetnsPair::named(&format!("i8-{}", std::process::id()), "i8h", 236)
}

fn start_proxy(net: &NetnsPair, dir: &TempDir, n: u32) -> NsChild {
    let p = NsChild::start(
        "proxy",
        rerun_in_netns(&net.cache_ns, PROXY_TEST)
            .env(CHILD_ENV, "proxy")
            .env("I8_PROXY_PORT", PROXY_PORT.to_string()),
        dir.join(&format!("proxy-{n}.log")),
    );
    p.wait_output("PROXY-LISTENING", Duration::from_secs(10));
    p
}

fn usable(st: &Value, ip: &str) -> bool {
    router_cache(st, ip).is_some_and(|c| c["usable"] == true)
}

/// The cache holds all 256 buckets in the router's published table.
fn assigned(st: &Value, ip: &str) -> bool {
    st["tables"].as_array().is_some_and(|ts| {
        ts.iter().any(|t| {
            t["published"] == true
                && t["targets"].as_array().is_some_and(|tg| {
                    tg.iter()
                        .any(|x| x["address"] == ip && x["drained"] == false && x["buckets"] == 256)
                })
        })
    })
}

#[test]
fn dead_proxy_leaves_the_group_and_comes_back() {
    if !prerequisites(&[]) {
        return;
    }
    let dir = TempDir::new("i8-health");
    let net = net();
    let mut proxy = start_proxy(&net, &dir, 1);
    let health = format!(
        "  health_check:\n    kind: tcp\n    address: 127.0.0.1:{PROXY_PORT}\n    interval_ms: 200\n    timeout_ms: 100\n    threshold: 2\n"
    );
    let mut d = Daemons::start(
        &net,
        &dir,
        |s| router_yaml(&net.router_ip, s, &web_cache(None)),
        |s| cache_yaml(&net.cache_ip, &net.router_ip, s, &health, &web_cache(None)),
    );
    let (router_sock, cache_sock) = (d.router_files.sock.clone(), d.cache_files.sock.clone());
    let ip = net.cache_ip.clone();
    let rs = router_sock.clone();
    let st = wait_for(Duration::from_secs(15), || {
        show_json(&rs).filter(|st| usable(st, &ip) && assigned(st, &ip))
    });
    assert!(d.router.running(), "router exited:\n{}", d.router.output());
    assert!(d.cache.running(), "cache exited:\n{}", d.cache.output());
    st.unwrap_or_else(|| panic!("never usable and assigned: {:#?}", show_json(&rs)));
    // The cache reports a healthy proxy.
    let cst = show_json(&cache_sock).expect("cache status");
    assert_eq!(cst["health_check"]["state"], "healthy", "{cst:#}");
    assert_eq!(cst["health"]["healthy"], true, "{cst:#}");
    // The router's explain, without a data plane: from the published table alone.
    let client = net.host(77);
    let (ok, text) = wccpd(&[
        "explain",
        "tcp",
        &format!("{client}:40000"),
        "192.0.2.80:80",
        "-s",
        router_sock.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("would be redirected by service web-cache")
            && text.contains(&format!("to cache {ip} by gre"))
            && text.contains("no data plane"),
        "{text}"
    );
    let (ok, text) = wccpd(&[
        "explain",
        "tcp",
        &client,
        "192.0.2.80:22",
        "-s",
        router_sock.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["outcome"], "no_service", "{v:#}");
    assert_eq!(v["dataplane"], false, "{v:#}");
    // No password: accepted, and said so.
    let st = show_json(&rs).unwrap();
    assert_eq!(service0(&st)["security"], "none", "{st:#}");
    let text = show_text(&router_sock);
    assert!(
        text.contains("Password:") && text.contains("none (anyone who reaches UDP 2048 can join)"),
        "{text}"
    );
    assert!(
        d.router.output().contains("service without a password"),
        "{}",
        d.router.output()
    );
    // `why` on a usable cache.
    let (ok, text) = wccpd(&["why", &ip, "-s", router_sock.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("usable, 256 bucket(s)"), "{text}");
    // The designated cache's REDIRECT_ASSIGN, or its next HERE_I_AM.
    assert!(
        text.contains("last message: HERE_I_AM") || text.contains("last message: REDIRECT_ASSIGN"),
        "{text}"
    );
    assert!(text.contains("no password"), "{text}");

    // The proxy dies: the agent leaves at once; the router drains it long before 3 T.
    proxy.kill();
    let killed = Instant::now();
    let st = wait_for(Duration::from_secs(5), || {
        show_json(&rs).filter(|st| !usable(st, &ip))
    })
    .unwrap_or_else(|| panic!("still usable: {:#?}", show_json(&rs)));
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "drained only after {took:?} (not by SHUTDOWN): {st:#}"
    );
    let c = router_cache(&st, &ip).unwrap();
    assert_eq!(c["reason"], "shutdown", "{c:#}");
    assert_eq!(c["last_message"], "HERE_I_AM (SHUTDOWN)", "{c:#}");
    let cst = show_json(&cache_sock).expect("cache status");
    assert_eq!(cst["health"]["healthy"], false, "{cst:#}");
    assert_eq!(cst["health"]["leaves"], 1, "{cst:#}");
    assert_eq!(cst["health_check"]["state"], "unhealthy", "{cst:#}");
    assert!(
        cst["health_check"]["last_result"]
            .as_str()
            .is_some_and(|r| r.starts_with("error: connect")),
        "{cst:#}"
    );
    assert!(
        cst["health_check"]["failures"].as_u64() >= Some(2),
        "{cst:#}"
    );
    assert_eq!(service0(&cst)["routers"][0]["state"], "shutdown", "{cst:#}");
    let text = show_text(&cache_sock);
    assert!(text.contains("UNHEALTHY (left every group)"), "{text}");
    assert!(text.contains("Last Probe:"), "{text}");
    let (ok, text) = wccpd(&["why", &ip, "-s", router_sock.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("NOT usable (shutdown)"), "{text}");
    assert!(text.contains("health check"), "{text}");
    assert!(
        text.contains("last message: HERE_I_AM (SHUTDOWN)"),
        "{text}"
    );
    // Gone, the agent stays quiet: still not usable a few T later.
    std::thread::sleep(Duration::from_millis(2 * T_MS));
    let st = show_json(&rs).unwrap();
    assert!(!usable(&st, &ip), "{st:#}");

    // The proxy is back: the agent rejoins and gets its buckets again.
    let _proxy = start_proxy(&net, &dir, 2);
    let back = Instant::now();
    wait_for(Duration::from_secs(15), || {
        show_json(&rs).filter(|st| usable(st, &ip) && assigned(st, &ip))
    })
    .unwrap_or_else(|| panic!("not back: {:#?}", show_json(&rs)));
    eprintln!("usable and assigned again after {:?}", back.elapsed());
    let cst = show_json(&cache_sock).expect("cache status");
    assert_eq!(cst["health"]["healthy"], true, "{cst:#}");
    assert_eq!(cst["health"]["rejoins"], 1, "{cst:#}");
    assert_eq!(cst["health_check"]["transitions"], 2, "{cst:#}");
    assert!(d.cache.running(), "cache exited:\n{}", d.cache.output());
}

/// Starts `wccpd ROLE` in `ns` and waits for its control socket.
fn started(name: &str, ns: &str, role: &str, conf: &Path, sock: &Path, dir: &TempDir) -> NsChild {
    let mut c = NsChild::wccpd(name, ns, role, conf, dir);
    let up = wait_for(Duration::from_secs(10), || show_json(sock));
    assert!(up.is_some(), "{name} never answered:\n{}", c.output());
    assert!(c.running());
    c
}

/// Sends `signals` to the child, `gap` apart, and waits for its exit code.
fn signalled(c: &mut NsChild, signals: &[&str], gap: Duration) -> (Option<i32>, Duration) {
    let pid = c.child.as_ref().unwrap().id().to_string();
    let t0 = Instant::now();
    for (i, s) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(gap);
        }
        let _ = Command::new("kill").args([&format!("-{s}"), &pid]).status();
    }
    let st = common::child::wait_timeout(c.child.as_mut().unwrap(), Duration::from_secs(10))
        .expect("exited");
    c.child = None;
    (st.code(), t0.elapsed())
}

#[test]
fn one_signal_stops_cleanly_a_second_exits_at_once() {
    if !prerequisites(&[]) {
        return;
    }
    let dir = TempDir::new("i8-signals");
    let net = net();
    let Files { conf, sock } = Files::new(&dir, "router");
    std::fs::write(&conf, router_yaml(&net.router_ip, &sock, &web_cache(None))).unwrap();
    // One SIGTERM: a clean stop, exit 0, socket removed.
    let mut r = started("router-1", &net.router_ns, "router", &conf, &sock, &dir);
    let (code, took) = signalled(&mut r, &["TERM"], Duration::ZERO);
    assert_eq!(code, Some(0), "{}", r.output());
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(!sock.exists(), "socket left behind");
    // SIGTERM, then SIGTERM again while it stops: 128 + 15, at once.
    let mut r = started("router-2", &net.router_ns, "router", &conf, &sock, &dir);
    let (code, took) = signalled(&mut r, &["TERM", "TERM"], Duration::from_millis(20));
    assert_eq!(code, Some(143), "{}", r.output());
    assert!(took < Duration::from_secs(1), "{took:?}");
    // SIGINT then SIGTERM (two signals, never merged into one): the second exits.
    let _ = std::fs::remove_file(&sock);
    let mut r = started("router-3", &net.router_ns, "router", &conf, &sock, &dir);
    let (code, _) = signalled(&mut r, &["INT", "TERM"], Duration::ZERO);
    assert!(matches!(code, Some(130 | 143)), "{code:?}\n{}", r.output());
    // The cache agent does the same.
    let Files {
        conf: cconf,
        sock: csock,
    } = Files::new(&dir, "cache");
    std::fs::write(
        &cconf,
        cache_yaml(&net.cache_ip, &net.router_ip, &csock, "", &web_cache(None)),
    )
    .unwrap();
    let mut c = started("cache-1", &net.cache_ns, "cache", &cconf, &csock, &dir);
    let (code, _) = signalled(&mut c, &["TERM"], Duration::ZERO);
    assert_eq!(code, Some(0), "{}", c.output());
    let mut c = started("cache-2", &net.cache_ns, "cache", &cconf, &csock, &dir);
    let (code, took) = signalled(&mut c, &["TERM", "TERM"], Duration::from_millis(20));
    assert_eq!(code, Some(143), "{}", c.output());
    assert!(took < Duration::from_secs(1), "{took:?}");
}
