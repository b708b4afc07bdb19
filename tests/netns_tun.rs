//! User-space WCCP GRE decapsulation by the real `wccpd cache` (`cache.tun`), end to end, on a
//! kernel without `ip_gre`: transparent interception through a TUN device and nftables.
//!
//! Two network namespaces `tun-r-<pid>-<n>` ("rtr", 10.234.X.1) and `tun-c-<pid>-<n>` ("cache",
//! 10.234.X.2) joined by a veth, IPv6 off, deleted by a drop guard even on failure. In "cache":
//! routes to the client subnet 10.200.0.0/24 and to the origin servers 203.0.113.0/24 via rtr,
//! an nftables rule `iifname "wccp0" tcp dport 80 redirect to :3129`, a TCP listener on :3129
//! (this test binary re-executed as a helper), and `wccpd cache` with `cache.tun` and a
//! `return_policy` refusing the destination 203.0.113.20. Nobody answers the agent's
//! HERE_I_AMs; the packet path does not need a joined router.
//!
//! In "rtr", the test binary re-executed as a second helper sends GRE from a raw IP-protocol-47
//! socket and watches the veth with an `AF_PACKET` socket:
//! * a TCP SYN 10.200.0.5:40000 -> 203.0.113.10:80 in WCCP GRE (0x883E, redirect header,
//!   service 0): the listener's SYN-ACK must leave the cache *from 203.0.113.10:80* (REDIRECT
//!   undone by conntrack) towards the client: interception works with user-space decapsulation;
//! * the same in plain GRE 0x0800 without a redirect header (10.200.0.6:40002): SYN-ACK too;
//! * a SYN to the refused 203.0.113.20: comes back to rtr as GRE 0x883E with the inner packet
//!   byte-identical, and produces no SYN-ACK;
//! * a SYN from an outer source outside `accept_from`, and a truncated WCCP GRE packet:
//!   dropped and counted, no SYN-ACK, no crash.
//!
//! Then the `packet_return` and `tun` counters of `wccpd show --json`, the text form, the TUN's
//! address and `rp_filter` while running, and at SIGTERM the TUN's removal and the restored
//! `all.rp_filter`. Needs root, `ip` and `nft` (CI); fails without them unless
//! `WCCPD_ALLOW_SKIP=1`.

mod common;

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::child::{env_var, rerun_in_netns, run_helper, Finished};
use common::packets::{
    gre, gre_socket, hex, ipv4_header, send_all, tagged_packets, timed_out, unhex,
};
use common::*;
use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

const TEST: &str = "tun_decapsulation_intercepts_and_returns";
/// Which helper the re-executed binary runs: `listen` or `exchange`.
const CHILD_ENV: &str = "HTUN_CHILD";
const PROXY_PORT: u16 = 3129;
const TUN_NAME: &str = "wccp0";
const TUN_ADDRESS: &str = "169.254.87.1";
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const REFUSED_SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// The MSS docs/cache-host.md clamps the proxy's SYN-ACKs to (1500 - 28 GRE - 40).
const CLAMPED_MSS: u16 = 1432;
/// docs/cache-host.md's nftables ruleset, verbatim.
const NFT_RULES: &str = r#"table ip wccp {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "wccp0" tcp dport 80 redirect to :3129
    }
    chain input {
        type filter hook input priority filter; policy accept;
        tcp dport 3129 ct status dnat accept
        tcp dport 3129 drop
    }
    chain output {
        type filter hook output priority mangle; policy accept;
        tcp sport 3129 tcp flags syn tcp option maxseg size set 1432
    }
}
"#;

/// A TCP SYN `src:sport -> dst:dport` with sequence number `seq` and valid checksums, TTL 63
/// (a router has already decremented it).
fn syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, seq: u32) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[0x60, 0x02]); // data offset 6 (MSS option), SYN
    tcp.extend_from_slice(&64_240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp.extend_from_slice(&[2, 4, 0x05, 0x88]); // MSS 1416
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&tcp);
    let c = wire::checksum::checksum(&pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut p = ipv4_header(src, dst, 6, 63, 0x1234, 20 + tcp.len());
    p.extend_from_slice(&tcp);
    p
}

// ---- helper 1: the proxy's listener (cache namespace) ------------------------------------

/// Listens on 0.0.0.0:3129 (like Squid's `http_port 3129 intercept`) until killed (60 s at
/// most). The kernel answers SYNs with SYN-ACKs; nothing needs to be accepted.
fn listen() {
    let l = TcpListener::bind(("0.0.0.0", PROXY_PORT)).expect("bind :3129");
    l.set_nonblocking(true).unwrap();
    println!("LISTENING");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok((_, peer)) = l.accept() {
            println!("ACCEPTED {peer}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- helper 2: the router side (rtr namespace) -------------------------------------------

/// The MSS option of a TCP header, if present.
fn mss(tcp: &[u8]) -> Option<u16> {
    let end = (usize::from(tcp[12] >> 4) * 4).min(tcp.len());
    let mut i = 20;
    while i < end {
        match tcp[i] {
            0 => return None,
            1 => i += 1,
            2 if i + 4 <= end => return Some(u16::from_be_bytes([tcp[i + 2], tcp[i + 3]])),
            _ => i += usize::from(*tcp.get(i + 1)?).max(2),
        }
    }
    None
}

/// Watches every interface of the namespace (`AF_PACKET`, `ETH_P_ALL`: lo and the veth) and
/// prints each TCP segment with SYN and ACK set as `SYNACK src sport dst dport seq ack`, and
/// each RST as `RST ...`, until `done`.
fn watch_frames(sock: Socket, done: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65_535];
    while !done.load(Ordering::SeqCst) {
        let n = match (&sock).read(&mut buf) {
            Ok(n) => n,
            Err(_) => continue,
        };
        let f = &buf[..n];
        // Ethernet II, IPv4, TCP.
        if n < 14 + 20 + 20 || f[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &f[14..];
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        if ip[0] >> 4 != 4 || ip[9] != 6 || ip.len() < ihl + 20 {
            continue;
        }
        let tcp = &ip[ihl..];
        let flags = tcp[13];
        let what = match (flags & 0x12 == 0x12, flags & 0x04 != 0) {
            (true, _) => "SYNACK",
            (false, true) => "RST",
            _ => continue,
        };
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        println!(
            "{what} {src} {} {dst} {} {} {} mss={}",
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
            u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
            mss(tcp).map_or("-".to_string(), |m| m.to_string()),
        );
    }
}

/// Sends every packet of `HTUN_PACKETS` (hex, comma-separated) to `HTUN_CACHE` from a raw GRE
/// socket bound to `HTUN_ROUTER` (the outer source is whatever each packet says), then prints
/// each GRE packet from the cache as `RETURN <hex>` and each SYN-ACK / RST seen on the wire, for
/// `HTUN_LISTEN_MS` milliseconds.
fn exchange() {
    let router: Ipv4Addr = env_var("HTUN_ROUTER").parse().unwrap();
    let cache: Ipv4Addr = env_var("HTUN_CACHE").parse().unwrap();
    let listen_ms: u64 = env_var("HTUN_LISTEN_MS").parse().unwrap();
    let packets: Vec<Vec<u8>> = env_var("HTUN_PACKETS").split(',').map(unhex).collect();

    // ETH_P_ALL in network order.
    let frames = Socket::new(
        Domain::PACKET,
        Type::RAW,
        Some(Protocol::from(i32::from(0x0003u16.to_be()))),
    )
    .expect("AF_PACKET socket");
    frames
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || watch_frames(frames, done))
    };

    let sock = gre_socket(router);
    send_all(&sock, cache, &packets, Duration::from_millis(30));
    let start = Instant::now();
    let mut buf = vec![0u8; 65_535];
    while start.elapsed() < Duration::from_millis(listen_ms) {
        match (&sock).read(&mut buf) {
            Ok(n) if n >= 20 && buf[12..16] == cache.octets() => {
                println!("RETURN {}", hex(&buf[..n]));
            }
            Ok(_) => {}
            Err(e) if timed_out(&e) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    println!("DONE");
}

/// Runs the exchange helper in `ns`; returns its output lines.
fn run_exchange(
    ns: &str,
    router: Ipv4Addr,
    cache: Ipv4Addr,
    packets: &[Vec<u8>],
    listen_ms: u64,
) -> Vec<String> {
    let joined: Vec<String> = packets.iter().map(|p| hex(p)).collect();
    let env = [
        (CHILD_ENV, "exchange".to_string()),
        ("HTUN_ROUTER", router.to_string()),
        ("HTUN_CACHE", cache.to_string()),
        ("HTUN_LISTEN_MS", listen_ms.to_string()),
        ("HTUN_PACKETS", joined.join(",")),
    ];
    let timeout = Duration::from_millis(listen_ms) + Duration::from_secs(20);
    let Finished {
        status,
        stdout: out,
        stderr: err,
    } = run_helper(ns, TEST, &env, timeout, "exchange helper");
    assert!(status.success(), "helper failed: {status}\n{out}\n{err}");
    assert!(
        out.contains(&format!("SENT {}", packets.len())) && out.contains("DONE"),
        "helper sent everything:\n{out}\n{err}"
    );
    out.lines().map(str::to_owned).collect()
}

// ---- the parent --------------------------------------------------------------------------

fn sysctl(ns: &str, path: &str) -> String {
    let out = ns_exec(ns, &["cat", path]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A SYN-ACK line from `server:80` to `client:port`, if one was printed.
fn synack(lines: &[String], server: Ipv4Addr, client: Ipv4Addr, port: u16) -> Option<&str> {
    let want = format!("SYNACK {server} 80 {client} {port} ");
    lines
        .iter()
        .find(|l| l.starts_with(&want))
        .map(String::as_str)
}

fn any_synack_to(lines: &[String], port: u16) -> Option<&String> {
    lines.iter().find(|l| {
        l.starts_with("SYNACK ") && l.split(' ').nth(4) == Some(port.to_string().as_str())
    })
}

#[test]
fn tun_decapsulation_intercepts_and_returns() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("listen") => return listen(),
        Ok("exchange") => return exchange(),
        _ => {}
    }
    if !prerequisites(&["/usr/sbin/nft", "/dev/net/tun"]) {
        return;
    }
    let dir = TempDir::new("tun");
    let net = NetnsPair::named("tun", "htn", 234);
    let (rtr, cache_ns) = (net.router_ns.clone(), net.cache_ns.clone());
    let router: Ipv4Addr = net.router_ip.parse().unwrap();
    let cache: Ipv4Addr = net.cache_ip.parse().unwrap();

    // The cache host: routes back to clients and servers through rtr, the interception rule,
    // strict reverse-path filtering on `all` (the agent must turn it off, and back on at exit).
    for prefix in ["10.200.0.0/24", "203.0.113.0/24"] {
        run(
            "ip",
            &[
                "-n",
                &cache_ns,
                "route",
                "add",
                prefix,
                "via",
                &net.router_ip,
            ],
        );
    }
    run(
        "ip",
        &[
            "netns",
            "exec",
            &cache_ns,
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.rp_filter=1",
        ],
    );
    // The ruleset of docs/cache-host.md: interception, only redirected connections reach the
    // proxy port, MSS clamped in the proxy's SYN-ACKs.
    let rules = dir.join("wccp.nft");
    std::fs::write(&rules, NFT_RULES).unwrap();
    run(
        "ip",
        &[
            "netns",
            "exec",
            &cache_ns,
            "nft",
            "-f",
            rules.to_str().unwrap(),
        ],
    );

    // The proxy's listener.
    let log = dir.join("listener.log");
    let listener = NsChild::start(
        "listener",
        rerun_in_netns(&cache_ns, TEST).env(CHILD_ENV, "listen"),
        log,
    );
    listener.wait_output("LISTENING", Duration::from_secs(10));

    // The cache agent.
    let files = Files::new(&dir, "cache");
    let sock = files.sock.clone();
    let tun = format!("  tun:\n    name: {TUN_NAME}\n    address: {TUN_ADDRESS}\n");
    let services = format!(
        "{}      return_policy:\n        refuse_destinations: [{REFUSED_SERVER}/32]\n",
        web_cache(None)
    );
    let yaml = cache_yaml(&net.cache_ip, &net.router_ip, &sock, &tun, &services);
    let mut agent = files.start("cache", &cache_ns, "cache", &yaml, &dir);
    let up = wait_for(Duration::from_secs(10), || {
        show_json(&sock).filter(|v| v["tun"].is_object())
    });
    let up = up.unwrap_or_else(|| panic!("cache agent up with tun counters:\n{}", agent.output()));
    assert_eq!(up["tun"]["name"], TUN_NAME, "{up}");
    assert_eq!(up["tun"]["address"], TUN_ADDRESS, "{up}");
    assert_eq!(
        up["tun"]["accept_from"],
        serde_json::json!([format!("{router}/32")]),
        "accept_from defaults to the seed routers: {up}"
    );
    assert!(up["tun"]["rp_filter_error"].is_null(), "{up}");
    assert!(up["packet_return"].is_object(), "{up}");

    // The device: up, with its /32, rp_filter off on it and on all.
    let addr = ns_exec(&cache_ns, &["ip", "-o", "addr", "show", "dev", TUN_NAME]);
    let addr = String::from_utf8_lossy(&addr.stdout).into_owned();
    assert!(
        addr.contains(&format!("inet {TUN_ADDRESS}/32")),
        "TUN address: {addr}"
    );
    let link = ns_exec(&cache_ns, &["ip", "-o", "link", "show", "dev", TUN_NAME]);
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    assert!(
        link.contains(",UP") || link.contains("<UP"),
        "TUN up: {link}"
    );
    assert_eq!(
        sysctl(
            &cache_ns,
            &format!("/proc/sys/net/ipv4/conf/{TUN_NAME}/rp_filter")
        ),
        "0"
    );
    assert_eq!(
        sysctl(&cache_ns, "/proc/sys/net/ipv4/conf/all/rp_filter"),
        "0"
    );

    // The traffic.
    let client = Ipv4Addr::new(10, 200, 0, 5);
    let client_plain = Ipv4Addr::new(10, 200, 0, 6);
    let client_stranger = Ipv4Addr::new(10, 200, 0, 7);
    let stranger = Ipv4Addr::new(
        router.octets()[0],
        router.octets()[1],
        router.octets()[2],
        3,
    );
    let wccp_header = [0x00, 0x00, 0x00, 0x2A]; // standard service 0, bucket 42
    let accepted = syn(client, 40_000, SERVER, 80, 1_000_000);
    let refused = syn(client, 40_001, REFUSED_SERVER, 80, 2_000_000);
    let plain = syn(client_plain, 40_002, SERVER, 80, 3_000_000);
    let foreign = syn(client_stranger, 40_003, SERVER, 80, 4_000_000);
    let mut cut = syn(client, 40_004, SERVER, 80, 5_000_000);
    cut.truncate(24);
    let packets = vec![
        gre(router, cache, 0x883E, Some(wccp_header), &accepted),
        gre(router, cache, 0x883E, Some(wccp_header), &refused),
        gre(router, cache, 0x0800, None, &plain),
        gre(stranger, cache, 0x883E, Some(wccp_header), &foreign),
        gre(router, cache, 0x883E, Some(wccp_header), &cut),
    ];
    let lines = run_exchange(&rtr, router, cache, &packets, 2500);
    let text = lines.join("\n");

    // Interception: the listener's SYN-ACK leaves the cache as the origin server.
    let sa = synack(&lines, SERVER, client, 40_000)
        .unwrap_or_else(|| panic!("SYN-ACK 203.0.113.10:80 -> 10.200.0.5:40000:\n{text}"));
    assert_eq!(
        sa.split(' ').nth(6),
        Some("1000001"),
        "acknowledges the SYN: {sa}"
    );
    assert!(
        sa.ends_with(&format!(" mss={CLAMPED_MSS}")),
        "MSS clamped as docs/cache-host.md says: {sa}"
    );
    assert!(
        synack(&lines, SERVER, client_plain, 40_002).is_some(),
        "plain GRE 0x0800 is decapsulated too:\n{text}"
    );
    // Refused: back to rtr as GRE, never served here.
    assert!(
        any_synack_to(&lines, 40_001).is_none(),
        "refused flow answered:\n{text}"
    );
    let returns = tagged_packets(&text, "RETURN");
    assert_eq!(
        returns.len(),
        1,
        "exactly the refused SYN comes back:\n{text}"
    );
    let r = &returns[0];
    assert_eq!(r[9], 47, "outer protocol GRE");
    assert_eq!(&r[12..16], &cache.octets(), "from the cache");
    assert_eq!(&r[16..20], &router.octets(), "to the router");
    assert_eq!(&r[20..24], &[0x00, 0x00, 0x88, 0x3E], "GRE 0x883E");
    assert_eq!(&r[24..28], &wccp_header, "redirect header copied");
    assert_eq!(&r[28..], &refused[..], "inner SYN byte-identical");
    // Unknown peer and malformed: nothing.
    assert!(
        any_synack_to(&lines, 40_003).is_none() && any_synack_to(&lines, 40_004).is_none(),
        "dropped packets answered:\n{text}"
    );
    assert!(agent.running(), "agent survived:\n{}", agent.output());

    // Counters.
    let status = wait_for(Duration::from_secs(5), || {
        show_json(&sock).filter(|v| v["tun"]["written"] == 2 && v["packet_return"]["received"] == 4)
    })
    .unwrap_or_else(|| {
        panic!(
            "counters never matched: {}",
            show_json(&sock).unwrap_or(Value::Null)
        )
    });
    let (pr, tun) = (&status["packet_return"], &status["tun"]);
    assert_eq!(pr["accepted"], 2, "{pr}");
    assert_eq!(pr["returned"], 1, "{pr}");
    assert_eq!(pr["returned_by_reason"]["destination"], 1, "{pr}");
    assert_eq!(pr["malformed"], 1, "{pr}");
    assert_eq!(pr["unmatched"], 0, "{pr}");
    assert_eq!(pr["send_errors"], 0, "{pr}");
    assert!(
        pr["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("inner IPv4")),
        "{pr}"
    );
    assert_eq!(tun["decapsulated"], 3, "{tun}");
    assert_eq!(tun["written"], 2, "{tun}");
    assert_eq!(tun["write_errors"], 0, "{tun}");
    assert_eq!(tun["unknown_peer"], 1, "{tun}");
    let shown = show_text(&sock);
    assert!(
        shown.contains(&format!("TUN decapsulation ({TUN_NAME} {TUN_ADDRESS}/32):"))
            && shown.contains("3 decapsulated, 2 written to TUN, 0 write errors"),
        "text status shows the TUN counters:\n{shown}"
    );

    // SIGTERM: the device goes away and all.rp_filter is put back.
    let st = agent.signal_and_wait("TERM", Duration::from_secs(10));
    assert!(
        st.is_some_and(|s| s.success()),
        "clean exit: {st:?}\n{}",
        agent.output()
    );
    let gone = ns_exec(&cache_ns, &["ip", "link", "show", "dev", TUN_NAME]);
    assert!(!gone.status.success(), "TUN removed at exit");
    assert_eq!(
        sysctl(&cache_ns, "/proc/sys/net/ipv4/conf/all/rp_filter"),
        "1",
        "all.rp_filter restored"
    );
    drop(listener);
    drop(net);
}
