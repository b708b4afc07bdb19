//! Daemon lifecycle around the control socket, with real binaries in network namespaces:
//! a stale socket file is replaced, a live one is refused, SIGTERM removes the socket, and a
//! cache stopped with SIGTERM leaves the router's group at once (SHUTDOWN) instead of after 3 T.
//! Needs root (CI); skips otherwise.

mod common;

use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::*;

/// A cache agent at `address` joining `router` with control socket `socket`.
fn cache_on(address: &str, router: &str, socket: &std::path::Path) -> String {
    cache_yaml(address, router, socket, "", &web_cache(None))
}

#[test]
fn stale_socket_replaced_live_socket_refused_and_removed_on_sigterm() {
    if !prerequisites(&[]) {
        return;
    }
    let dir = TempDir::new("sock");
    let net = NetnsPair::new();
    // The socket lives in a directory that does not exist yet (it is created).
    let sock = dir.join("run/wccpd/test.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    // A stale socket: bound once, listener gone, file left behind.
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());

    let a_conf = dir.join("a.yaml");
    std::fs::write(&a_conf, cache_on(&net.router_ip, &net.cache_ip, &sock)).unwrap();
    let mut a = NsChild::wccpd("cache-a", &net.router_ns, "cache", &a_conf, &dir);
    let st = wait_for(Duration::from_secs(10), || show_json(&sock));
    let st = st.unwrap_or_else(|| panic!("daemon A never answered:\n{}", a.output()));
    assert_eq!(st["role"], "cache");
    assert_eq!(st["address"], net.router_ip.as_str());

    // A second daemon with the same control socket refuses to start.
    let b_conf = dir.join("b.yaml");
    std::fs::write(&b_conf, cache_on(&net.cache_ip, &net.router_ip, &sock)).unwrap();
    let mut b = NsChild::wccpd("cache-b", &net.cache_ns, "cache", &b_conf, &dir);
    let exited = wait_for(Duration::from_secs(10), || (!b.running()).then_some(()));
    assert!(exited.is_some(), "daemon B kept running");
    assert!(b.output().contains("is in use"), "{}", b.output());
    // A still answers.
    assert!(show_json(&sock).is_some());

    // SIGTERM: clean exit, socket removed.
    let status = a.signal_and_wait("TERM", Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        a.output()
    );
    assert!(!sock.exists(), "socket left behind");
}

#[test]
fn cache_sigterm_leaves_the_group_at_once() {
    if !prerequisites(&[]) {
        return;
    }
    let dir = TempDir::new("leave");
    let net = NetnsPair::new();
    let mut d = Daemons::start(
        &net,
        &dir,
        |s| router_yaml(&net.router_ip, s, &web_cache(None)),
        |s| cache_on(&net.cache_ip, &net.router_ip, s),
    );
    let router_sock = d.router_files.sock.clone();
    let ip = net.cache_ip.clone();
    let usable =
        |st: &serde_json::Value| router_cache(st, &ip).is_some_and(|c| c["usable"] == true);
    wait_for(Duration::from_secs(10), || {
        show_json(&router_sock).filter(|st| usable(st))
    })
    .unwrap_or_else(|| panic!("cache never joined: {:#?}", show_json(&router_sock)));

    let stopped = std::time::Instant::now();
    let status = d.cache.signal_and_wait("TERM", Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // SHUTDOWN: gone well before the 3 T timeout.
    let st = wait_for(Duration::from_millis(3 * T_MS + 3000), || {
        show_json(&router_sock).filter(|st| !usable(st))
    })
    .unwrap_or_else(|| panic!("cache still usable: {:#?}", show_json(&router_sock)));
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_millis(2 * T_MS),
        "left only after {took:?} (timeout, not SHUTDOWN): {st:#}"
    );
    if let Some(c) = router_cache(&st, &net.cache_ip) {
        assert_eq!(c["reason"], "shutdown", "{c:#}");
    }
}
