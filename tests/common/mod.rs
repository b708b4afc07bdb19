//! Shared helpers for the root package's integration tests: network-namespace pairs joined by a
//! veth, child processes run inside them (and waited for with a deadline, [`child`]), temporary
//! directories, polling, the daemons' files and a router beside a cache agent ([`daemons`]),
//! test frames and captures ([`frames`]). Everything created is removed by `Drop`, also when a
//! test fails.
//!
//! Namespaces are named `hdaemon-<role>-<pid>-<n>`; veths `hdm<n>{r,c}<pid>` (15 characters
//! at most); `NetnsPair::named` lets a test pick its own prefixes. `WCCPD_TEST_PREFIX`, if set,
//! is put in front of every namespace name and EAL file prefix the tests choose
//! ([`system_name`]), so that several people sharing a machine can tell their objects apart.
//!
//! Tests that need root, `ip` or other tools call [`prerequisites`] first: a missing one is a
//! test *failure* (CI always has them, so a skip there would hide a broken environment); a
//! developer without root may set `WCCPD_ALLOW_SKIP=1` to skip such tests instead.

#![allow(dead_code)]

pub mod child;
pub mod daemons;
pub mod frames;
pub mod packets;
pub mod rng;

pub use daemons::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether this process can create namespaces (root and `ip` present).
pub fn can_netns() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    root && (Path::new("/usr/sbin/ip").exists() || Path::new("/sbin/ip").exists())
}

/// Checks what a privileged test needs: root and `ip`, plus every path in `tools`.
///
/// Returns `true` when all are there. When something is missing it panics naming it, unless
/// `WCCPD_ALLOW_SKIP=1` is set, in which case it prints why and returns `false` (skip).
pub fn prerequisites(tools: &[&str]) -> bool {
    let mut missing: Vec<String> = Vec::new();
    if !can_netns() {
        missing.push("root and iproute2 (ip)".to_owned());
    }
    missing.extend(
        tools
            .iter()
            .filter(|t| !Path::new(t).exists())
            .map(|t| t.to_string()),
    );
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var_os("WCCPD_ALLOW_SKIP").is_some_and(|v| v == "1") {
        eprintln!("skipped (WCCPD_ALLOW_SKIP=1): missing {what}");
        return false;
    }
    panic!(
        "missing {what}: run as root after deploy/setup-host.sh, or set WCCPD_ALLOW_SKIP=1 to skip"
    );
}

/// The name a test gives a shared system object (a namespace, an EAL file prefix) it calls
/// `base`: `base` behind `WCCPD_TEST_PREFIX`.
pub fn system_name(base: &str) -> String {
    std::env::var("WCCPD_TEST_PREFIX").unwrap_or_default() + base
}

/// Runs a command, panicking with its output on failure.
pub fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `args` inside namespace `ns` (`ip netns exec`) and returns its output.
pub fn ns_exec(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("ip netns exec")
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir, world-writable (Squid drops privileges).
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("hdaemon-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        run("chmod", &["0777", p.to_str().unwrap()]);
        TempDir(p)
    }

    /// A path inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Two namespaces, "router" and "cache", joined by a veth pair on 10.231.X.0/24 (router .1,
/// cache .2; [`NetnsPair::named`] picks other names and subnet), IPv6 disabled, everything up.
/// Deleted on drop.
#[derive(Debug)]
pub struct NetnsPair {
    /// Router namespace name.
    pub router_ns: String,
    /// Cache namespace name.
    pub cache_ns: String,
    /// Router-side veth name.
    pub router_if: String,
    /// Cache-side veth name.
    pub cache_if: String,
    /// Router address.
    pub router_ip: String,
    /// Cache address.
    pub cache_ip: String,
}

impl NetnsPair {
    /// Creates the pair. Panics (after cleaning up what was made) on failure.
    pub fn new() -> NetnsPair {
        NetnsPair::named("hdaemon", "hdm", 231)
    }

    /// Creates a pair with namespaces `<ns_prefix>-{r,c}-<pid>-<n>`, veths
    /// `<if_prefix><n>{r,c}<pid % 100000>` (keep `if_prefix` at 3 characters) on
    /// `10.<octet>.X.0/24`.
    pub fn named(ns_prefix: &str, if_prefix: &str, octet: u8) -> NetnsPair {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let x = (pid.wrapping_mul(7).wrapping_add(n * 13)) % 250 + 1;
        let short = pid % 100_000;
        let pair = NetnsPair {
            router_ns: system_name(&format!("{ns_prefix}-r-{pid}-{n}")),
            cache_ns: system_name(&format!("{ns_prefix}-c-{pid}-{n}")),
            router_if: format!("{if_prefix}{n}r{short}"),
            cache_if: format!("{if_prefix}{n}c{short}"),
            router_ip: format!("10.{octet}.{x}.1"),
            cache_ip: format!("10.{octet}.{x}.2"),
        };
        let cache_if = pair.cache_if.clone();
        // From here on, Drop cleans up whatever was created.
        run("ip", &["netns", "add", &pair.router_ns]);
        run("ip", &["netns", "add", &pair.cache_ns]);
        run(
            "ip",
            &[
                "link",
                "add",
                &pair.router_if,
                "netns",
                &pair.router_ns,
                "type",
                "veth",
                "peer",
                "name",
                &cache_if,
                "netns",
                &pair.cache_ns,
            ],
        );
        for (ns, ifname, ip) in [
            (&pair.router_ns, &pair.router_if, &pair.router_ip),
            (&pair.cache_ns, &cache_if, &pair.cache_ip),
        ] {
            for key in ["all", "default", "lo"] {
                let _ = Command::new("ip")
                    .args(["netns", "exec", ns, "sysctl", "-qw"])
                    .arg(format!("net.ipv6.conf.{key}.disable_ipv6=1"))
                    .status();
            }
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", ifname],
            );
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
        }
        pair
    }
}

impl NetnsPair {
    /// `10.231.X.<host>` on the pair's subnet.
    pub fn host(&self, host: u8) -> String {
        let (net, _) = self.router_ip.rsplit_once('.').unwrap_or(("10.231.0", "1"));
        format!("{net}.{host}")
    }

    /// Adds another address (on the same subnet) to the cache side's veth.
    pub fn add_cache_address(&self, ip: &str) {
        run(
            "ip",
            &[
                "-n",
                &self.cache_ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                &self.cache_if,
            ],
        );
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it (and so the pair).
        for ns in [&self.router_ns, &self.cache_ns] {
            let _ = Command::new("ip")
                .args(["netns", "delete", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A child process running inside a namespace, killed on drop. Its stdout and stderr go to
/// `log`, printed on drop when the test is failing.
#[derive(Debug)]
pub struct NsChild {
    /// The process (`ip netns exec` execs the command, so this is the command itself).
    pub child: Option<Child>,
    /// Where its output goes.
    pub log: PathBuf,
    /// A label for messages.
    pub name: String,
}

impl NsChild {
    /// Starts `program args...` in namespace `ns`.
    pub fn spawn(name: &str, ns: &str, program: &str, args: &[&str], log: PathBuf) -> NsChild {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]).args(args);
        NsChild::start(name, &mut cmd, log)
    }

    /// Starts `cmd` (e.g. [`child::rerun_in_netns`]) with its output going to `log`.
    pub fn start(name: &str, cmd: &mut Command, log: PathBuf) -> NsChild {
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        NsChild {
            child: Some(child),
            log,
            name: name.to_string(),
        }
    }

    /// Runs `wccpd ROLE -c CONF` in `ns`, logging to `DIR/NAME.log`.
    pub fn wccpd(name: &str, ns: &str, role: &str, conf: &Path, dir: &impl AsRef<Path>) -> NsChild {
        let conf = conf.to_str().expect("config path is UTF-8");
        let log = dir.as_ref().join(format!("{name}.log"));
        NsChild::spawn(
            name,
            ns,
            env!("CARGO_BIN_EXE_wccpd"),
            &[role, "-c", conf],
            log,
        )
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (e.g. "TERM") and waits up to `timeout` for the exit; returns the exit
    /// status if it exited.
    pub fn signal_and_wait(
        &mut self,
        signal: &str,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args([format!("-{signal}"), c.id().to_string()])
            .status();
        let status = child::wait_timeout(c, timeout)?;
        self.child = None;
        Some(status)
    }

    /// The output so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for `text` in the output; the test fails (showing the output) if it
    /// never appears.
    pub fn wait_output(&self, text: &str, timeout: Duration) {
        assert!(
            wait_for(timeout, || self.output().contains(text).then_some(())).is_some(),
            "{} never printed {text:?}:\n{}",
            self.name,
            self.output()
        );
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- {} output ({}) ----", self.name, self.log.display());
            let out = self.output();
            let tail: Vec<&str> = out.lines().rev().take(60).collect();
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Polls `f` every 200 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `wccpd show --json -s socket` through the real binary; `None` while the daemon is not up.
pub fn show_json(socket: &Path) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_wccpd"))
        .args(["show", "--json", "-s"])
        .arg(socket)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `wccpd show -s socket` (text, stdout + stderr).
pub fn show_text(socket: &Path) -> String {
    let socket = socket.to_str().expect("socket path is UTF-8");
    wccpd(&["show", "-s", socket]).1
}

/// The first service of a status object.
pub fn service0(status: &Value) -> &Value {
    &status["services"][0]
}

/// The router's entry for cache `ip` in service 0, if listed.
pub fn router_cache<'a>(status: &'a Value, ip: &str) -> Option<&'a Value> {
    service0(status)["caches"]
        .as_array()?
        .iter()
        .find(|c| c["address"] == ip)
}

/// The `mempool at exit` line a DPDK router logs when it stops, with its figures.
#[derive(Debug)]
pub struct MempoolAtExit<'a> {
    /// The whole line.
    pub line: &'a str,
    /// `in_use=`: mbufs not back in the pool.
    pub in_use: u64,
    /// `baseline=`: mbufs in use before the data plane started.
    pub baseline: u64,
}

/// Finds the `mempool at exit` line in a router's `log`; the test fails without one.
pub fn mempool_at_exit(log: &str) -> MempoolAtExit<'_> {
    let line = log
        .lines()
        .find(|l| l.contains("mempool at exit"))
        .unwrap_or_else(|| panic!("no `mempool at exit` line:\n{log}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
    };
    MempoolAtExit {
        line,
        in_use: field("in_use="),
        baseline: field("baseline="),
    }
}
