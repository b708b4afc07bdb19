//! GRE packet return by the real `wccpd cache` (docs/protocol.md §4.4), end to end: two network
//! namespaces `hreturn-r-<pid>-<n>` (router, 10.232.X.1) and `hreturn-c-<pid>-<n>` (cache,
//! 10.232.X.2) joined by a veth, IPv6 off, deleted by a drop guard even on failure.
//!
//! The cache agent runs in the cache namespace with a `return_policy`. The test re-executes its
//! own binary inside the router namespace (`ip netns exec NS <exe> --exact <test> --nocapture`,
//! marked by the environment variable `HRETURN_CHILD`); that child sends real GRE-redirected
//! packets from a raw IP-protocol-47 socket, collects what comes back for a while and prints
//! every returned packet as a `RETURN <hex>` line. The parent asserts that refused flows come
//! back as GRE 0x883E from the cache to the router with the redirect header copied and the
//! inner packet byte-identical, that accepted flows do not come back, and that the counters of
//! `wccpd show --json` (`packet_return`) match. No router is needed: the cache's HERE_I_AMs go
//! unanswered. Needs root (CI); skips otherwise.

mod common;

use std::io::Read as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::child::{env_var, run_helper, Finished};
use common::packets::{
    gre, gre_socket, hex, ipv4_header, send_all, tagged_packets, timed_out, unhex,
};
use common::*;
use serde_json::Value;

const CHILD_ENV: &str = "HRETURN_CHILD";
/// The dynamic service the cache has a return policy for.
const SERVICE: u8 = 90;

/// An inner UDP packet `src:40000+i -> dst:5353` with a payload naming `i`.
fn inner(src: Ipv4Addr, dst: Ipv4Addr, i: u16) -> Vec<u8> {
    let payload = format!("hreturn flow {i} from {src} to {dst}");
    let udp_len = 8 + payload.len();
    let mut p = ipv4_header(src, dst, 17, 64, 1000 + i, 20 + udp_len);
    p.extend_from_slice(&(40_000 + i).to_be_bytes());
    p.extend_from_slice(&5353u16.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]); // no UDP checksum
    p.extend_from_slice(payload.as_bytes());
    p
}

/// One packet the child sends, and what must happen to it.
struct Sent {
    packet: Vec<u8>,
    /// The redirect header it carries.
    header: [u8; 4],
    /// The inner packet.
    inner: Vec<u8>,
    /// Whether it must come back.
    returned: bool,
}

fn wccp(router: Ipv4Addr, cache: Ipv4Addr, svc: u8, bucket: u8, inner: Vec<u8>, ret: bool) -> Sent {
    let header = [0x01, svc, 0, bucket];
    Sent {
        packet: gre(router, cache, 0x883E, Some(header), &inner),
        header,
        inner,
        returned: ret,
    }
}

// ---- the child (runs in the router namespace) --------------------------------------------

/// Sends every packet of `HRETURN_PACKETS` (hex, comma-separated) to `HRETURN_CACHE` from a raw
/// socket bound to `HRETURN_ROUTER`, then prints each GRE packet from the cache as
/// `RETURN <hex>` until `HRETURN_EXPECT` arrived and 700 ms more passed (5 s at most).
fn child() {
    let router: Ipv4Addr = env_var("HRETURN_ROUTER").parse().unwrap();
    let cache: Ipv4Addr = env_var("HRETURN_CACHE").parse().unwrap();
    let expect: usize = env_var("HRETURN_EXPECT").parse().unwrap();
    let packets: Vec<Vec<u8>> = env_var("HRETURN_PACKETS").split(',').map(unhex).collect();
    let sock = gre_socket(router);
    send_all(&sock, cache, &packets, Duration::from_millis(20));
    let start = Instant::now();
    let mut got = 0;
    let mut complete: Option<Instant> = (expect == 0).then(Instant::now);
    let mut buf = vec![0u8; 65_535];
    while start.elapsed() < Duration::from_secs(5)
        && complete.is_none_or(|t| t.elapsed() < Duration::from_millis(700))
    {
        match (&sock).read(&mut buf) {
            Ok(n) => {
                let p = &buf[..n];
                if n >= 20 && p[12..16] == cache.octets() {
                    println!("RETURN {}", hex(p));
                    got += 1;
                    if got >= expect && complete.is_none() {
                        complete = Some(Instant::now());
                    }
                }
            }
            Err(e) if timed_out(&e) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    println!("DONE {got}");
}

/// Runs the child in `ns` with `packets`; returns the returned packets it printed.
fn exchange(
    ns: &str,
    test: &str,
    router: Ipv4Addr,
    cache: Ipv4Addr,
    packets: &[Vec<u8>],
    expect: usize,
) -> Vec<Vec<u8>> {
    let joined: Vec<String> = packets.iter().map(|p| hex(p)).collect();
    let env = [
        (CHILD_ENV, "1".to_string()),
        ("HRETURN_ROUTER", router.to_string()),
        ("HRETURN_CACHE", cache.to_string()),
        ("HRETURN_EXPECT", expect.to_string()),
        ("HRETURN_PACKETS", joined.join(",")),
    ];
    let Finished {
        status,
        stdout: out,
        stderr: err,
    } = run_helper(
        ns,
        test,
        &env,
        Duration::from_secs(20),
        "child in the router namespace",
    );
    assert!(status.success(), "child failed: {status}\n{out}\n{err}");
    assert!(
        out.contains(&format!("SENT {}", packets.len())),
        "child sent everything:\n{out}"
    );
    tagged_packets(&out, "RETURN")
}

// ---- the parent --------------------------------------------------------------------------

struct Setup {
    // Field order = drop order: the daemon, then the namespaces, then the files.
    cache: NsChild,
    net: NetnsPair,
    sock: std::path::PathBuf,
    dir: TempDir,
}

fn start(tag: &str, policy: &str, load_source: Option<&std::path::Path>) -> Setup {
    let dir = TempDir::new(tag);
    let net = NetnsPair::named("hreturn", "hrt", 232);
    let files = Files::new(&dir, "cache");
    let sock = files.sock.clone();
    let load = load_source
        .map(|p| format!("  load_source: {}\n", p.display()))
        .unwrap_or_default();
    let services = format!(
        "    - id: {SERVICE}\n      type: dynamic\n      protocol: udp\n      ports: [5353]\n      return_policy:\n{policy}"
    );
    let yaml = cache_yaml(&net.cache_ip, &net.router_ip, &sock, &load, &services);
    let cache = files.start("cache", &net.cache_ns, "cache", &yaml, &dir);
    let up = wait_for(Duration::from_secs(10), || {
        show_json(&sock).filter(|v| v["packet_return"].is_object())
    });
    assert!(up.is_some(), "cache agent up with packet_return counters");
    Setup {
        cache,
        net,
        sock,
        dir,
    }
}

fn addrs(net: &NetnsPair) -> (Ipv4Addr, Ipv4Addr) {
    (
        net.router_ip.parse().unwrap(),
        net.cache_ip.parse().unwrap(),
    )
}

/// Asserts that `returns` are exactly the returns of the `sent` packets marked `returned`, in
/// order: GRE 0x883E from `cache` to `router`, redirect header copied, inner packet identical.
fn check_returns(returns: &[Vec<u8>], sent: &[Sent], router: Ipv4Addr, cache: Ipv4Addr) {
    let want: Vec<&Sent> = sent.iter().filter(|s| s.returned).collect();
    assert_eq!(
        returns.len(),
        want.len(),
        "exactly the refused flows come back"
    );
    for (r, s) in returns.iter().zip(want) {
        assert_eq!(r[0], 0x45, "outer IPv4, no options");
        assert_eq!(r[9], 47, "outer protocol GRE");
        assert_eq!(&r[12..16], &cache.octets(), "from the cache");
        assert_eq!(
            &r[16..20],
            &router.octets(),
            "to the router that redirected it"
        );
        assert_eq!(r[8], 255, "TTL as built by packet_return");
        assert_eq!(
            wire::checksum::checksum(&r[..20]),
            0,
            "outer header checksum verifies"
        );
        assert_eq!(
            usize::from(u16::from_be_bytes([r[2], r[3]])),
            r.len(),
            "total length"
        );
        assert_eq!(&r[20..24], &[0x00, 0x00, 0x88, 0x3E], "GRE 0x883E");
        assert_eq!(&r[24..28], &s.header, "redirect header copied");
        assert_eq!(&r[28..], &s.inner[..], "inner packet byte-identical");
    }
}

fn counters(sock: &std::path::Path) -> Value {
    show_json(sock).expect("status")["packet_return"].clone()
}

/// Polls until the `packet_return` counters satisfy `ok` (the worker runs asynchronously).
fn wait_counters(sock: &std::path::Path, ok: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(5), || {
        let c = counters(sock);
        ok(&c).then_some(c)
    })
    .unwrap_or_else(|| panic!("counters never matched: {}", counters(sock)))
}

#[test]
fn refused_prefixes_come_back() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    if !prerequisites(&[]) {
        return;
    }
    let setup = start(
        "prefix",
        "        refuse_sources: [10.99.1.0/24]\n        refuse_destinations: [10.98.0.0/16]\n",
        None,
    );
    let (router, cache) = addrs(&setup.net);
    let refused_src = Ipv4Addr::new(10, 99, 1, 5);
    let ok_src = Ipv4Addr::new(10, 99, 2, 5);
    let server = Ipv4Addr::new(192, 0, 2, 80);
    let refused_dst = Ipv4Addr::new(10, 98, 1, 1);
    let mut sent = Vec::new();
    for i in 0..3u16 {
        sent.push(wccp(
            router,
            cache,
            SERVICE,
            i as u8,
            inner(refused_src, server, i),
            true,
        ));
        sent.push(wccp(
            router,
            cache,
            SERVICE,
            10 + i as u8,
            inner(ok_src, server, 10 + i),
            false,
        ));
    }
    sent.push(wccp(
        router,
        cache,
        SERVICE,
        20,
        inner(ok_src, refused_dst, 20),
        true,
    ));
    // Another service (no policy here), with a refused source: not ours to return.
    sent.push(wccp(
        router,
        cache,
        SERVICE + 1,
        21,
        inner(refused_src, server, 21),
        false,
    ));
    let mut packets: Vec<Vec<u8>> = sent.iter().map(|s| s.packet.clone()).collect();
    // Plain (non-WCCP) GRE carrying IPv4 from a refused source: ignored.
    packets.push(gre(
        router,
        cache,
        0x0800,
        None,
        &inner(refused_src, server, 30),
    ));
    // WCCP GRE whose inner packet is cut short: malformed, counted, no crash.
    let mut cut = inner(refused_src, server, 31);
    cut.truncate(24);
    packets.push(gre(
        router,
        cache,
        0x883E,
        Some([0x01, SERVICE, 0, 0]),
        &cut,
    ));

    let returns = exchange(
        &setup.net.router_ns,
        "refused_prefixes_come_back",
        router,
        cache,
        &packets,
        4,
    );
    check_returns(&returns, &sent, router, cache);

    let c = wait_counters(&setup.sock, |c| c["received"] == 9);
    assert_eq!(c["accepted"], 3, "{c}");
    assert_eq!(c["returned"], 4, "{c}");
    assert_eq!(c["returned_by_reason"]["source"], 3, "{c}");
    assert_eq!(c["returned_by_reason"]["destination"], 1, "{c}");
    assert_eq!(c["returned_by_reason"]["load"], 0, "{c}");
    assert_eq!(c["unmatched"], 1, "{c}");
    assert_eq!(c["malformed"], 1, "{c}");
    assert_eq!(c["send_errors"], 0, "{c}");
    assert!(c["ignored"].as_u64().unwrap() >= 1, "{c}");
    let last = c["last_error"].as_str().unwrap_or_default();
    assert!(
        last.contains("inner IPv4"),
        "last error names the layer: {c}"
    );
    let text = show_text(&setup.sock);
    assert!(
        text.contains("GRE packet return:")
            && text.contains("4 returned (source 3, destination 1, load 0)"),
        "text status shows the counters:\n{text}"
    );
    drop(setup.cache);
    drop(setup.dir);
}

#[test]
fn overload_returns_everything_until_the_load_drops() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    if !prerequisites(&[]) {
        return;
    }
    let files = TempDir::new("load");
    let load = files.join("loadavg");
    // 1000 runnable on any machine: far above 50 %.
    std::fs::write(&load, "1000.00 1.00 1.00 1/100 1\n").unwrap();
    let setup = start("load", "        max_load: 50\n", Some(&load));
    let (router, cache) = addrs(&setup.net);
    let client = Ipv4Addr::new(10, 97, 0, 9);
    let server = Ipv4Addr::new(192, 0, 2, 80);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;

    // Sends flows `ids` (all refused, or all accepted) and checks what comes back.
    let round = |ids: std::ops::Range<u16>, refused: bool| {
        let sent: Vec<Sent> = ids
            .map(|i| {
                let flow = inner(client, server, i);
                wccp(router, cache, SERVICE, i as u8, flow, refused)
            })
            .collect();
        let packets: Vec<Vec<u8>> = sent.iter().map(|s| s.packet.clone()).collect();
        let expect = if refused { sent.len() } else { 0 };
        let ns = &setup.net.router_ns;
        let test = "overload_returns_everything_until_the_load_drops";
        let returns = exchange(ns, test, router, cache, &packets, expect);
        check_returns(&returns, &sent, router, cache);
    };

    round(0..3, true);
    let c = wait_counters(&setup.sock, |c| c["received"] == 3);
    assert_eq!(c["returned_by_reason"]["load"], 3, "{c}");
    assert_eq!(c["accepted"], 0, "{c}");
    assert_eq!(c["load_percent"], 100_000 / cpus, "1000 / {cpus} CPUs: {c}");

    // The load drops; the file is re-read at most once per second.
    std::fs::write(&load, "0.00 1.00 1.00 1/100 1\n").unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    round(10..13, false);
    let c = wait_counters(&setup.sock, |c| c["received"] == 6);
    assert_eq!(c["accepted"], 3, "{c}");
    assert_eq!(c["returned_by_reason"]["load"], 3, "{c}");
    assert_eq!(c["load_percent"], 0, "{c}");
    assert!(c["load_error"].is_null(), "{c}");
    drop(setup.cache);
}
