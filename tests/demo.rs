//! The README's main command, `deploy/demo.sh`, run as it is (non-interactive, with this build's
//! binary instead of a release build): wccpd on DPDK TAP ports, two cache agents with Debian's
//! Squid, real HTTP with curl, one cache failing, then none. The test asserts on what the demo
//! prints: the caches join and share the buckets, every request is answered, each Squid logs
//! intercepted requests, the buckets move when cache1 dies, the open service forwards to the
//! origin when no cache is left, the metrics excerpt and `wccpd show` are there, and the router
//! exits with its mempool at the baseline.
//!
//! Namespaces are `wdt<pid>-*` (`WCCPD_DEMO_NS`); the script removes them on exit, and a drop
//! guard here removes them too if the script is killed on a timeout. Needs root, `ip`, `nft`,
//! `squid`, `curl`, `python3`, `ping` and `traceroute` (deploy/setup-host.sh, which the demo
//! runs itself).

#![cfg(feature = "dpdk")]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::child::finish;
use common::prerequisites;

/// Removes the demo's namespaces (and kills what runs in them) when dropped.
struct Namespaces(String);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for role in ["r", "client", "server", "cache1", "cache2"] {
            let ns = format!("{}-{role}", self.0);
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The lines of `out` between the line containing `from` and the next line containing `to`.
fn section<'a>(out: &'a str, from: &str, to: &str) -> &'a str {
    let start = out
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in:\n{out}"));
    let rest = &out[start..];
    let end = rest[from.len()..]
        .find(to)
        .map_or(rest.len(), |i| i + from.len());
    &rest[..end]
}

#[test]
fn the_demo_runs_and_tells_the_whole_story() {
    if !prerequisites(&[
        "/usr/sbin/squid",
        "/usr/sbin/nft",
        "/usr/bin/curl",
        "/usr/bin/python3",
        "/usr/bin/traceroute",
    ]) {
        return;
    }
    let prefix = format!("wdt{}", std::process::id());
    let _cleanup = Namespaces(prefix.clone());
    let child = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo.sh"))
        .env("WCCPD_BIN", env!("CARGO_BIN_EXE_wccpd"))
        .env("WCCPD_DEMO_NS", &prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash deploy/demo.sh");
    let run = finish(child, Duration::from_secs(180), "deploy/demo.sh");
    let out = run.stdout;
    assert!(
        run.status.success(),
        "demo failed ({:?}):\n{out}\n{}",
        run.status,
        run.stderr
    );
    for step in 1..=6 {
        assert!(
            out.contains(&format!("] {step}. ")),
            "step {step} missing:\n{out}"
        );
    }
    // 1: the data plane routes: ping and traceroute through the router.
    let s1 = section(&out, "] 1. ", "] 2. ");
    assert!(s1.contains("data plane running"), "{s1}");
    assert_eq!(s1.matches("from 10.71.2.2: icmp_seq=").count(), 2, "{s1}");
    assert!(s1.contains(" 2  10.71.2.2 "), "{s1}");
    // 2: both caches usable, sharing the 256 buckets.
    let s2 = section(&out, "] 2. ", "] 3. ");
    assert_eq!(s2.matches("Cache ID:").count(), 2, "{s2}");
    let usable = s2
        .lines()
        .filter(|l| l.trim_start().starts_with("State:") && l.trim_end().ends_with("Usable"))
        .filter(|l| !l.contains("NOT"))
        .count();
    assert_eq!(usable, 2, "{s2}");
    // 3: four requests answered by the origin's page through Squid; each cache logged some
    // (10.71.2.2 and 10.71.2.3 fall into buckets of different caches), and the data plane
    // counted GRE redirects.
    let s3 = section(&out, "] 3. ", "] 4. ");
    assert_eq!(
        s3.matches("->  hello from the origin server").count(),
        4,
        "{s3}"
    );
    let log1 = section(s3, "Squid access log, cache1:", "Squid access log, cache2:");
    let log2 = section(s3, "Squid access log, cache2:", "Data plane");
    for (name, log) in [("cache1", log1), ("cache2", log2)] {
        assert!(
            log.contains("client 10.71.1.2") && log.contains("/200"),
            "{name} served nothing:\n{s3}"
        );
    }
    // 4: cache1 killed: its buckets move within 3 T plus the removal query (T = 1 s).
    let s4 = section(&out, "] 4. ", "] 5. ");
    let moved: u64 = s4
        .split("buckets moved after ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no move time in:\n{s4}"));
    assert!(moved <= 6, "buckets moved after {moved} s:\n{s4}");
    assert_eq!(
        s4.matches("->  hello from the origin server").count(),
        2,
        "{s4}"
    );
    assert!(s4.contains("client 10.71.1.2"), "{s4}");
    // 5: no cache left: the origin answers the client directly.
    let s5 = section(&out, "] 5. ", "] 6. ");
    assert!(s5.contains("->  hello from the origin server"), "{s5}");
    assert!(
        s5.contains("10.71.1.2 - - ["),
        "origin did not log the client:\n{s5}"
    );
    // 6: the metrics excerpt and `wccpd show`'s data plane.
    let s6 = section(&out, "] 6. ", "] done");
    assert!(s6.contains("wccp_service_usable_caches{"), "{s6}");
    assert!(s6.contains("wccp_service_packets_total{"), "{s6}");
    assert!(s6.contains("Data plane"), "{s6}");
    // Torn down: the router stopped with every mbuf back.
    let done = &out[out.find("] done").expect("done step")..];
    assert!(
        done.contains("mempool at exit") && done.contains("in_use=0"),
        "{done}"
    );
    // The script removed its namespaces itself.
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&prefix),
        "namespaces left behind"
    );
}
