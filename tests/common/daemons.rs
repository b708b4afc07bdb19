//! The real binary as the namespace tests run it: `wccpd` commands, the configuration files of a
//! router and a cache agent (socket transport, TRANSMIT_T [`T_MS`]), and a router and a cache
//! started side by side in a [`NetnsPair`].

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{NetnsPair, NsChild, TempDir};

/// TRANSMIT_T of the daemons in the namespace tests: 1 s, so each scenario takes seconds.
pub const T_MS: u64 = 1000;

/// Runs `wccpd ARGS...` and returns (exit success, stdout + stderr).
pub fn wccpd(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wccpd"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `wccpd reload --json -s SOCKET`: (exit success, the report or `null`, stdout + stderr).
pub fn reload_json(socket: &Path) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wccpd"))
        .args(["reload", "--json", "-s"])
        .arg(socket)
        .output()
        .expect("wccpd reload");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = stdout.clone() + &String::from_utf8_lossy(&out.stderr);
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.success(), report, text)
}

/// `GET /metrics` from a router's endpoint on 127.0.0.1:`port`: the body of a 200 answer (the
/// test fails on any other).
pub fn scrape_metrics(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("answer");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default()
}

/// The `services:` item of the well-known web-cache service (standard 0), with a password if
/// given.
pub fn web_cache(password: Option<&str>) -> String {
    let pw = password
        .map(|p| format!("      password: {p}\n"))
        .unwrap_or_default();
    format!("    - id: 0\n      type: standard\n{pw}")
}

/// A `wccpd router` file: router `address`, control `socket`, TRANSMIT_T [`T_MS`], the
/// `services` items (YAML list items indented by four spaces, as [`web_cache`] writes them) and
/// debug logging.
pub fn router_yaml(address: &str, socket: &Path, services: &str) -> String {
    format!(
        "router:\n  addresses: [{address}]\n  control:\n    socket_path: {}\n  timers:\n    transmit_t_ms: {T_MS}\n  services:\n{services}log:\n  level: debug\n",
        socket.display()
    )
}

/// A `wccpd cache` file: cache `address`, seed `router`, control `socket`, TRANSMIT_T
/// [`T_MS`], `extra` keys of the `cache:` section (lines indented by two spaces, e.g.
/// `health_check` or `tun`), the `services` items and debug logging.
pub fn cache_yaml(
    address: &str,
    router: &str,
    socket: &Path,
    extra: &str,
    services: &str,
) -> String {
    format!(
        "cache:\n  address: {address}\n  routers: [{router}]\n  control:\n    socket_path: {}\n  timers:\n    transmit_t_ms: {T_MS}\n{extra}  services:\n{services}log:\n  level: debug\n",
        socket.display()
    )
}

/// Where a daemon keeps its files in a test directory: `NAME.yaml` and `NAME.sock`.
#[derive(Clone, Debug)]
pub struct Files {
    /// The configuration file.
    pub conf: PathBuf,
    /// The control socket.
    pub sock: PathBuf,
}

impl Files {
    /// `DIR/NAME.yaml` and `DIR/NAME.sock`.
    pub fn new(dir: &TempDir, name: &str) -> Files {
        Files {
            conf: dir.join(&format!("{name}.yaml")),
            sock: dir.join(&format!("{name}.sock")),
        }
    }

    /// Writes `text` as the configuration file and starts `wccpd ROLE` on it in `ns` (log
    /// `DIR/NAME.log`).
    pub fn start(&self, name: &str, ns: &str, role: &str, text: &str, dir: &TempDir) -> NsChild {
        std::fs::write(&self.conf, text).unwrap();
        NsChild::wccpd(name, ns, role, &self.conf, dir)
    }
}

/// A router (in `net.router_ns`) and a cache agent (in `net.cache_ns`), each from the file its
/// closure writes given its control socket; files and logs under `dir` as `router.*`,
/// `cache.*`.
#[derive(Debug)]
pub struct Daemons {
    // Field order = drop order: both processes before anything they use.
    /// `wccpd router`.
    pub router: NsChild,
    /// `wccpd cache`.
    pub cache: NsChild,
    /// The router's files.
    pub router_files: Files,
    /// The cache's files.
    pub cache_files: Files,
}

impl Daemons {
    /// Starts both: `router(router socket)` and `cache(cache socket)` give the files' texts
    /// (typically [`router_yaml`] and [`cache_yaml`] on `net`'s addresses).
    pub fn start(
        net: &NetnsPair,
        dir: &TempDir,
        router: impl FnOnce(&Path) -> String,
        cache: impl FnOnce(&Path) -> String,
    ) -> Daemons {
        let router_files = Files::new(dir, "router");
        let cache_files = Files::new(dir, "cache");
        let r = router(&router_files.sock);
        let c = cache(&cache_files.sock);
        Daemons {
            router: router_files.start("router", &net.router_ns, "router", &r, dir),
            cache: cache_files.start("cache", &net.cache_ns, "cache", &c, dir),
            router_files,
            cache_files,
        }
    }
}
