//! The real `wccpd router` and `wccpd cache` binaries in two network namespaces joined by a
//! veth: join, assignment, removal, and MD5 right / wrong, asserted through `wccpd show --json`.
//! TRANSMIT_T is 1 s (`timers.transmit_t_ms`), so each scenario takes seconds. Needs root (CI).

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// What removal may take beyond the protocol's 3·T after the kill: the router's timer fires on
/// time, but `wccpd show` is polled every 200 ms and takes a few tens of ms.
const SLACK_MS: u64 = 1000;

struct Setup {
    // Field order = drop order: processes first, then namespaces, then files.
    router: NsChild,
    cache: NsChild,
    net: NetnsPair,
    router_sock: std::path::PathBuf,
    cache_sock: std::path::PathBuf,
    _dir: TempDir,
}

fn start(tag: &str, router_pw: Option<&str>, cache_pw: Option<&str>) -> Setup {
    let dir = TempDir::new(tag);
    let net = NetnsPair::new();
    let d = Daemons::start(
        &net,
        &dir,
        |s| router_yaml(&net.router_ip, s, &web_cache(router_pw)),
        |s| cache_yaml(&net.cache_ip, &net.router_ip, s, "", &web_cache(cache_pw)),
    );
    Setup {
        router: d.router,
        cache: d.cache,
        net,
        router_sock: d.router_files.sock,
        cache_sock: d.cache_files.sock,
        _dir: dir,
    }
}

/// Router status once the daemon answers (fails the test if it never does).
fn router_status(s: &mut Setup) -> Value {
    let sock = s.router_sock.clone();
    let st = wait_for(Duration::from_secs(10), || show_json(&sock));
    assert!(s.router.running(), "router exited:\n{}", s.router.output());
    st.unwrap_or_else(|| panic!("router control socket never answered"))
}

fn usable(st: &Value, ip: &str) -> bool {
    router_cache(st, ip).is_some_and(|c| c["usable"] == true)
}

/// The router's published table for its first service: (address, buckets) per active target.
fn table_targets(st: &Value) -> Option<Vec<(String, u64)>> {
    let svc = service0(st);
    let t = st["tables"]
        .as_array()?
        .iter()
        .find(|t| t["id"] == svc["id"] && t["dynamic"] == svc["dynamic"])?;
    if t["published"] != true {
        return None;
    }
    Some(
        t["targets"]
            .as_array()?
            .iter()
            .filter(|x| x["drained"] != true)
            .map(|x| {
                (
                    x["address"].as_str().unwrap_or("").to_string(),
                    x["buckets"].as_u64().unwrap_or(0),
                )
            })
            .collect(),
    )
}

#[test]
fn join_assignment_and_removal() {
    if !prerequisites(&[]) {
        return;
    }
    let mut s = start("join", None, None);
    let cache_ip = s.net.cache_ip.clone();
    router_status(&mut s);
    let sock = s.router_sock.clone();

    // Join: the cache becomes usable at the router within a few T.
    let st = wait_for(Duration::from_secs(8), || {
        show_json(&sock).filter(|st| usable(st, &cache_ip))
    })
    .unwrap_or_else(|| panic!("cache never usable at the router: {:#?}", show_json(&sock)));
    let svc = service0(&st);
    assert_eq!(svc["id"], 0);
    assert!(svc["change_number"].as_u64().unwrap_or(0) >= 1, "{svc:#}");
    // The reply limiter and the driver's queue are visible, and a well-behaved cache never
    // meets them.
    assert_eq!(svc["counters"]["replies_rate_limited"], 0, "{svc:#}");
    assert_eq!(st["reply_limiter"]["replies_rate_limited"], 0, "{st:#}");
    assert!(
        st["reply_limiter"]["tracked_peers"].as_u64() >= Some(1),
        "{st:#}"
    );
    assert_eq!(st["driver"]["queue_dropped"], 0, "{st:#}");
    assert!(s.cache.running(), "cache exited:\n{}", s.cache.output());

    // Assignment: 1.5 T after the membership settles, the designated cache (the only one)
    // assigns all 256 buckets to itself; the router accepts it and publishes the table.
    let st = wait_for(Duration::from_secs(10), || {
        show_json(&sock).filter(|st| {
            table_targets(st) == Some(vec![(cache_ip.clone(), 256)])
                && service0(st)["assignment"]["key"]["address"] == cache_ip.as_str()
        })
    })
    .unwrap_or_else(|| panic!("no assignment at the router: {:#?}", show_json(&sock)));
    let svc = service0(&st);
    assert!(
        svc["assignment"]["key"]["change_number"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    let c = router_cache(&st, &cache_ip).unwrap();
    assert_eq!(c["buckets"], 256, "{c:#}");
    // The cache agrees: it is designated and its key matches the router's.
    let cst = show_json(&s.cache_sock).expect("cache control socket");
    let csvc = service0(&cst);
    assert_eq!(csvc["designated"], true, "{csvc:#}");
    assert_eq!(
        csvc["assignment_key"]["address"],
        cache_ip.as_str(),
        "{csvc:#}"
    );
    // The text view names the cache, its state and its buckets.
    let text = show_text(&s.router_sock);
    assert!(text.contains("web-cache"), "{text}");
    assert!(
        text.contains(&cache_ip) && text.contains("Usable"),
        "{text}"
    );
    assert!(text.contains("256"), "{text}");

    // Removal: kill the cache (no SHUTDOWN); its last HERE_I_AM was at most T before, so
    // within 3 T (+ slack) the router no longer counts it as a member (it may keep it listed
    // as not usable with reason `timed_out`) and no bucket is redirected any more (table
    // flushed, or its target drained); and not before 2 T.
    s.cache.kill();
    let killed = std::time::Instant::now();
    let st = wait_for(Duration::from_millis(3 * T_MS + SLACK_MS), || {
        show_json(&sock)
            .filter(|st| !usable(st, &cache_ip) && table_targets(st).is_none_or(|t| t.is_empty()))
    })
    .unwrap_or_else(|| panic!("cache not removed after 3 T: {:#?}", show_json(&sock)));
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_millis(2 * T_MS),
        "removed after only {waited:?}: {st:#}"
    );
    assert!(
        waited <= Duration::from_millis(3 * T_MS + SLACK_MS),
        "removed after {waited:?}, more than 3 T: {st:#}"
    );
    if let Some(c) = router_cache(&st, &cache_ip) {
        assert_eq!(c["reason"], "timed_out", "{c:#}");
        assert_eq!(c["buckets"], 0, "{c:#}");
    }
    assert!(
        service0(&st)["assignment"].is_null() || table_targets(&st).is_none_or(|t| t.is_empty()),
        "{st:#}"
    );

    // SIGTERM stops the router cleanly and removes its control socket.
    let status = s.router.signal_and_wait("TERM", Duration::from_secs(5));
    assert!(
        status.is_some_and(|st| st.success()),
        "router did not exit cleanly: {status:?}"
    );
    assert!(!s.router_sock.exists(), "control socket left behind");
}

#[test]
fn md5_same_password_joins() {
    if !prerequisites(&[]) {
        return;
    }
    let mut s = start("md5ok", Some("s3cret"), Some("s3cret"));
    let cache_ip = s.net.cache_ip.clone();
    router_status(&mut s);
    let sock = s.router_sock.clone();
    let st = wait_for(Duration::from_secs(8), || {
        show_json(&sock).filter(|st| usable(st, &cache_ip))
    })
    .unwrap_or_else(|| panic!("cache never usable with MD5: {:#?}", show_json(&sock)));
    assert_eq!(
        st["driver"]["drops"]["security"].as_u64().unwrap_or(0),
        0,
        "{st:#}"
    );
}

#[test]
fn md5_wrong_password_never_joins() {
    if !prerequisites(&[]) {
        return;
    }
    let mut s = start("md5bad", Some("s3cret"), Some("wrong"));
    let cache_ip = s.net.cache_ip.clone();
    router_status(&mut s);
    let sock = s.router_sock.clone();
    // Several HERE_I_AMs arrive and are dropped for security.
    let st = wait_for(Duration::from_secs(8), || {
        show_json(&sock).filter(|st| st["driver"]["drops"]["security"].as_u64().unwrap_or(0) >= 3)
    })
    .unwrap_or_else(|| panic!("no security drops counted: {:#?}", show_json(&sock)));
    assert!(
        !usable(&st, &cache_ip),
        "cache usable despite a wrong password: {st:#}"
    );
    // The router lists the failing sender, not usable, and says why.
    let c = router_cache(&st, &cache_ip)
        .unwrap_or_else(|| panic!("the router does not list the failing cache: {st:#}"));
    assert_eq!(c["usable"], false, "{c:#}");
    assert_eq!(c["reason"], "md5_failure", "{c:#}");
    // The text view says why.
    let text = show_text(&s.router_sock);
    assert!(text.contains("dropped security"), "{text}");
    assert!(
        text.contains(&cache_ip),
        "the drop detail names the sender: {text}"
    );
    // The cache side never hears a valid I_SEE_YOU either.
    let cst = show_json(&s.cache_sock).expect("cache control socket");
    assert_ne!(service0(&cst)["routers"][0]["state"], "joined", "{cst:#}");
}

#[test]
fn two_caches_split_the_buckets_and_the_lowest_assigns() {
    if !prerequisites(&[]) {
        return;
    }
    // Cache A at .2 (started by `start`), cache B at .3 in the same namespace.
    let mut s = start("two", None, None);
    let a_ip = s.net.cache_ip.clone();
    let b_ip = s.net.host(3);
    s.net.add_cache_address(&b_ip);
    let b_files = Files::new(&s._dir, "cache-b");
    let b_sock = b_files.sock.clone();
    let b_yaml = cache_yaml(&b_ip, &s.net.router_ip, &b_sock, "", &web_cache(None));
    let mut b = b_files.start("cache-b", &s.net.cache_ns, "cache", &b_yaml, &s._dir);
    router_status(&mut s);
    let sock = s.router_sock.clone();
    // Both usable, and an assignment from A (the lowest address) covering both, 256 buckets.
    let st = wait_for(Duration::from_secs(15), || {
        show_json(&sock).filter(|st| {
            let Some(t) = table_targets(st) else {
                return false;
            };
            usable(st, &a_ip)
                && usable(st, &b_ip)
                && t.len() == 2
                && t.iter().all(|(_, n)| *n > 0)
                && t.iter().map(|(_, n)| n).sum::<u64>() == 256
        })
    })
    .unwrap_or_else(|| panic!("no two-cache assignment: {:#?}", show_json(&sock)));
    assert!(b.running(), "cache B exited:\n{}", b.output());
    let svc = service0(&st);
    assert_eq!(
        svc["assignment"]["key"]["address"],
        a_ip.as_str(),
        "{svc:#}"
    );
    let t = table_targets(&st).unwrap();
    // Equal weights: an even split.
    assert!(t.iter().all(|(_, n)| *n == 128), "{t:?}");
    // B agrees that A is designated.
    let bst = show_json(&b_sock).expect("cache B control socket");
    assert_eq!(service0(&bst)["designated"], false, "{bst:#}");
    assert_eq!(service0(&bst)["designated_cache"], a_ip.as_str(), "{bst:#}");
}

#[test]
fn dynamic_service_learnt_by_the_router_with_mask_assignment() {
    if !prerequisites(&[]) {
        return;
    }
    let dir = TempDir::new("dyn");
    let net = NetnsPair::new();
    // The router names the service only by id/type: it learns the definition from the cache.
    let mut d = Daemons::start(
        &net,
        &dir,
        |s| router_yaml(&net.router_ip, s, "    - id: 90\n      type: dynamic\n"),
        |s| {
            let svc = "    - id: 90\n      type: dynamic\n      protocol: tcp\n      ports: [443]\n      hash: [src_ip]\n      assignment: mask\n";
            cache_yaml(&net.cache_ip, &net.router_ip, s, "", svc)
        },
    );
    let router_sock = d.router_files.sock.clone();
    let ip = net.cache_ip.clone();
    let st = wait_for(Duration::from_secs(12), || {
        show_json(&router_sock).filter(|st| {
            let svc = service0(st);
            svc["assignment"]["key"]["address"] == ip.as_str()
                && router_cache(st, &ip).is_some_and(|c| c["usable"] == true)
        })
    });
    assert!(d.router.running(), "router exited:\n{}", d.router.output());
    let st = st.unwrap_or_else(|| panic!("no mask assignment: {:#?}", show_json(&router_sock)));
    let svc = service0(&st);
    assert_eq!(svc["id"], 90);
    assert_eq!(svc["dynamic"], true);
    assert_eq!(svc["assignment_method"], "mask", "{svc:#}");
    let t = table_targets(&st).expect("published table");
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].0, ip);
    assert!(t[0].1 > 0, "{t:?}");
}
