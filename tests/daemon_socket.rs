//! Daemon lifecycle around the control socket, with real binaries in network namespaces:
//! a stale socket file is replaced, a live one is refused, SIGTERM removes the socket, and a
//! cache stopped with SIGTERM leaves the router's group at once (SHUTDOWN) instead of after 3 T.
//! Needs root (CI); skips otherwise.

mod common;

use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::*;

fn cache_yaml(address: &str, router: &str, socket: &std::path::Path) -> String {
    format!(
        "cache:\n  address: {address}\n  routers: [{router}]\n  control:\n    socket_path: {}\n  timers:\n    transmit_t_ms: 1000\n  services:\n    - id: 0\n      type: standard\n",
        socket.display()
    )
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
    std::fs::write(&a_conf, cache_yaml(&net.router_ip, &net.cache_ip, &sock)).unwrap();
    let mut a = NsChild::wccpd("cache-a", &net.router_ns, "cache", &a_conf, &dir);
    let st = wait_for(Duration::from_secs(10), || show_json(&sock));
    let st = st.unwrap_or_else(|| panic!("daemon A never answered:\n{}", a.output()));
    assert_eq!(st["role"], "cache");
    assert_eq!(st["address"], net.router_ip.as_str());

    // A second daemon with the same control socket refuses to start.
    let b_conf = dir.join("b.yaml");
    std::fs::write(&b_conf, cache_yaml(&net.cache_ip, &net.router_ip, &sock)).unwrap();
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
    const T_MS: u64 = 1000;
    let dir = TempDir::new("leave");
    let net = NetnsPair::new();
    let router_sock = dir.join("router.sock");
    let cache_sock = dir.join("cache.sock");
    let router_conf = dir.join("router.yaml");
    std::fs::write(
        &router_conf,
        format!(
            "router:\n  addresses: [{}]\n  control:\n    socket_path: {}\n  timers:\n    transmit_t_ms: {T_MS}\n  services:\n    - id: 0\n      type: standard\n",
            net.router_ip,
            router_sock.display()
        ),
    )
    .unwrap();
    let cache_conf = dir.join("cache.yaml");
    std::fs::write(
        &cache_conf,
        cache_yaml(&net.cache_ip, &net.router_ip, &cache_sock),
    )
    .unwrap();
    let _router = NsChild::wccpd("router", &net.router_ns, "router", &router_conf, &dir);
    let mut cache = NsChild::wccpd("cache", &net.cache_ns, "cache", &cache_conf, &dir);
    let ip = net.cache_ip.clone();
    let usable =
        |st: &serde_json::Value| router_cache(st, &ip).is_some_and(|c| c["usable"] == true);
    wait_for(Duration::from_secs(10), || {
        show_json(&router_sock).filter(|st| usable(st))
    })
    .unwrap_or_else(|| panic!("cache never joined: {:#?}", show_json(&router_sock)));

    let stopped = std::time::Instant::now();
    let status = cache.signal_and_wait("TERM", Duration::from_secs(5));
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
