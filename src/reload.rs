//! Hot reload of the router's configuration: SIGHUP, or `wccpd reload` (the control-socket
//! request `{"request":"reload"}`), makes a running `wccpd router` re-read its file.
//!
//! ```text
//!  SIGHUP ─> wccp-reload thread ─┐
//!  {"request":"reload"} ─────────┴─> Reloader::reload ─> read + validate (every problem, as
//!                                      `wccpd check`)                     ─> invalid
//!                                    ─> diff against the running settings:
//!                                       something only a restart changes  ─> refused
//!                                    ─> apply on the thread that owns the router:
//!                                       socket: the driver thread (DriverHandle::apply)
//!                                       dpdk:   the control lcore (dpdk_impl::ControlRequest)
//!                                       Router::reconfigure (+ ControlPlane tables) ─> applied
//! ```
//!
//! Whatever happens, the outcome is logged (info when applied, warn otherwise, with the diff),
//! counted (`reloads` in `wccpd show --json`, `wccp_reloads_total{result}`) and answered to
//! `wccpd reload`. A refused or invalid file changes nothing: the running configuration stays.
//! The running settings move to the new ones on the owning thread, in the same step as the
//! router, so the next reload diffs against what really runs.
//!
//! One router runs per process: the reloader is registered once ([`prepare`]) and found by
//! the control socket, the report and the metrics without being passed around.

use std::any::Any;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use control::driver::DriverHandle;
use control::router::{ReloadError, ReloadSummary, Router, RouterConfig};
use serde::{Deserialize, Serialize};

use crate::daemon::{self, Request, Response};

/// How a reload ended (the `result` label of `wccp_reloads_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadResult {
    /// The new configuration runs.
    Applied,
    /// A change needs a restart (or the control plane did not answer): nothing applied.
    Refused,
    /// The file could not be read or is invalid: nothing applied.
    Invalid,
}

impl ReloadResult {
    /// Every result, in label order.
    pub const ALL: [ReloadResult; 3] = [
        ReloadResult::Applied,
        ReloadResult::Refused,
        ReloadResult::Invalid,
    ];

    /// Stable label.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Refused => "refused",
            ReloadResult::Invalid => "invalid",
        }
    }
}

/// The outcome of one reload: the answer to `wccpd reload`, and `reloads.last` in `show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// How it ended.
    pub result: ReloadResult,
    /// The file read.
    pub config: String,
    /// `sighup` or `socket`.
    pub trigger: String,
    /// What differs from the running configuration (applied: what changed).
    #[serde(default)]
    pub changes: Vec<String>,
    /// Refused: what needs a restart; invalid: every problem, `FILE:LINE:COLUMN: key: message`.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Applied: what the router state machine did with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<ReloadSummary>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub at_unix_s: u64,
}

/// Reloads so far by result, and the latest (`reloads` in `wccpd show --json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadStats {
    /// Reloads applied.
    pub applied: u64,
    /// Reloads refused (a change needs a restart).
    pub refused: u64,
    /// Reloads of an unreadable or invalid file.
    pub invalid: u64,
    /// The latest reload.
    pub last: Option<ReloadReport>,
}

impl ReloadStats {
    /// The count of `result`.
    pub fn count(&self, result: ReloadResult) -> u64 {
        match result {
            ReloadResult::Applied => self.applied,
            ReloadResult::Refused => self.refused,
            ReloadResult::Invalid => self.invalid,
        }
    }
}

/// A validated new configuration on its way to the thread that owns the router.
#[derive(Debug)]
struct Change {
    /// The router's part.
    router: RouterConfig,
    /// The whole file.
    settings: config::RouterSettings,
    /// Where the running settings are kept (set by [`Change::commit`]).
    running: Arc<Mutex<config::RouterSettings>>,
}

impl Change {
    /// Records `settings` as the running configuration (on the owning thread, once the router
    /// took it).
    fn commit(running: &Mutex<config::RouterSettings>, settings: config::RouterSettings) {
        *running.lock().unwrap_or_else(PoisonError::into_inner) = settings;
    }
}

/// Hands a [`Change`] to the thread that owns the router and waits for its outcome; the outer
/// error says that thread did not answer.
type Apply = dyn Fn(Change) -> Result<Result<ReloadSummary, ReloadError>, String> + Send + Sync;

struct Reloader {
    path: PathBuf,
    running: Arc<Mutex<config::RouterSettings>>,
    /// One reload at a time (SIGHUP and the control socket).
    busy: Mutex<()>,
    apply: OnceLock<Box<Apply>>,
    counts: [AtomicU64; 3],
    last: Mutex<Option<ReloadReport>>,
}

static RELOADER: OnceLock<Reloader> = OnceLock::new();

/// How long the reload thread sleeps between two looks at the SIGHUP and stop flags.
const POLL: Duration = Duration::from_millis(100);

/// Registers the router's configuration file and the settings it started with. Call once,
/// before the control plane starts; then [`attach_driver`] or [`attach_dpdk`].
pub fn prepare(path: &Path, settings: &config::RouterSettings) {
    let _ = RELOADER.set(Reloader {
        // The daemon never changes directory, but an absolute path reads better in reports.
        path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        running: Arc::new(Mutex::new(settings.clone())),
        busy: Mutex::new(()),
        apply: OnceLock::new(),
        counts: std::array::from_fn(|_| AtomicU64::new(0)),
        last: Mutex::new(None),
    });
}

/// The counters, when this process runs a router (`None` for the cache agent).
pub fn stats() -> Option<ReloadStats> {
    let r = RELOADER.get()?;
    let n = |i: usize| r.counts[i].load(Ordering::Relaxed);
    Some(ReloadStats {
        applied: n(0),
        refused: n(1),
        invalid: n(2),
        last: r
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    })
}

/// Socket transport: reloads are applied on the driver thread of `handle`, and SIGHUP is
/// handled until `handle`'s stop flag is set. Without [`prepare`] (the cache agent), SIGHUP is
/// only logged as ignored, so that it does not terminate the process.
///
/// # Errors
/// The SIGHUP handler cannot be installed.
pub fn attach_driver<M: 'static>(handle: &DriverHandle<M>) -> anyhow::Result<()> {
    let Some(r) = RELOADER.get() else {
        // The cache agent: SIGHUP (systemd's `ExecReload`, a habit) must not kill it.
        return watch_sighup(handle.stop_flag(), || {
            tracing::warn!(
                "SIGHUP ignored: the cache agent does not reload its configuration; restart it \
                 to apply a change"
            );
        });
    };
    let Some(handle) = (handle as &dyn Any).downcast_ref::<DriverHandle<Router>>() else {
        return Ok(());
    };
    let h = handle.clone();
    let _ = r.apply.set(Box::new(move |change: Change| {
        h.apply(daemon::QUERY_TIMEOUT, move |router: &mut Router, stats| {
            let Change {
                router: cfg,
                settings,
                running,
            } = change;
            let now = control::Instant(stats.uptime_ms);
            let outcome = router.reconfigure(now, cfg);
            if outcome.is_ok() {
                Change::commit(&running, settings);
            }
            outcome
        })
        .map_err(|e| e.to_string())
    }));
    watch_sighup(handle.stop_flag(), reload_on_sighup)
}

fn reload_on_sighup() {
    if let Some(r) = RELOADER.get() {
        r.reload("sighup");
    }
}

/// DPDK transport: reloads are sent to the control lcore on `requests` (run by a
/// `dataplane::dpdk_impl::RequestHook`), and SIGHUP is handled until `stop`.
///
/// # Errors
/// The SIGHUP handler cannot be installed.
#[cfg(feature = "dpdk")]
pub fn attach_dpdk(
    requests: std::sync::mpsc::Sender<dataplane::dpdk_impl::ControlRequest>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let Some(r) = RELOADER.get() else {
        return Ok(());
    };
    let requests = Mutex::new(requests);
    let _ = r.apply.set(Box::new(move |change: Change| {
        let (tx, rx) = std::sync::mpsc::channel();
        let request: dataplane::dpdk_impl::ControlRequest = Box::new(move |cp, now, mut alloc| {
            let Change {
                router: cfg,
                settings,
                running,
            } = change;
            let outcome = cp.reconfigure(now, cfg, &settings, &mut alloc);
            if outcome.is_ok() {
                Change::commit(&running, settings);
            }
            let _ = tx.send(outcome);
        });
        requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(request)
            .map_err(|_| "the data plane has stopped".to_string())?;
        rx.recv_timeout(daemon::QUERY_TIMEOUT)
            .map_err(|_| "the data plane did not answer in time".to_string())
    }));
    watch_sighup(stop, reload_on_sighup)
}

/// The answer to [`Request::Reload`] on the control socket.
pub fn answer() -> Response {
    match RELOADER.get() {
        Some(r) => Response::Reload(Box::new(r.reload("socket"))),
        None => Response::Error {
            error: "this daemon does not reload its configuration (only `wccpd router` does)"
                .into(),
        },
    }
}

/// A thread that calls `on_hup` after every SIGHUP until `stop`.
fn watch_sighup(stop: Arc<AtomicBool>, on_hup: fn()) -> anyhow::Result<()> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .context("cannot install the SIGHUP handler")?;
    std::thread::Builder::new()
        .name("wccp-reload".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if hup.swap(false, Ordering::SeqCst) {
                    on_hup();
                }
                std::thread::sleep(POLL);
            }
        })
        .context("cannot start the reload thread")?;
    Ok(())
}

impl Reloader {
    fn reload(&self, trigger: &str) -> ReloadReport {
        let _one = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = self.attempt(trigger);
        report.at_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let i = ReloadResult::ALL
            .iter()
            .position(|r| *r == report.result)
            .unwrap_or(0);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let changes = report.changes.join("; ");
        let problems = report.problems.join("; ");
        match report.result {
            ReloadResult::Applied => {
                let router = report.router.as_ref().map(ToString::to_string);
                tracing::info!(
                    trigger,
                    config = %report.config,
                    %changes,
                    router = router.as_deref().unwrap_or(""),
                    "configuration reloaded"
                );
            }
            ReloadResult::Refused => tracing::warn!(
                trigger,
                config = %report.config,
                %problems,
                %changes,
                "configuration reload refused; the running configuration stays"
            ),
            ReloadResult::Invalid => tracing::warn!(
                trigger,
                config = %report.config,
                %problems,
                "configuration reload: invalid file; the running configuration stays"
            ),
        }
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
        report
    }

    fn attempt(&self, trigger: &str) -> ReloadReport {
        let shown = self.path.display().to_string();
        let mut report = ReloadReport {
            result: ReloadResult::Invalid,
            config: shown.clone(),
            trigger: trigger.to_owned(),
            changes: Vec::new(),
            problems: Vec::new(),
            router: None,
            at_unix_s: 0,
        };
        let new = match config::load_router(&self.path) {
            Ok(s) => s,
            Err(e) => {
                report.problems = match e.problems() {
                    [] => vec![format!("{shown}: {e}")],
                    ps => ps
                        .iter()
                        .map(|p| crate::check::problem_line(&shown, p))
                        .collect(),
                };
                return report;
            }
        };
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let d = diff(&running, &new);
        report.changes = d.changes;
        if !d.restart.is_empty() {
            report.result = ReloadResult::Refused;
            report.problems = d.restart;
            return report;
        }
        if running == new {
            report.result = ReloadResult::Applied;
            return report;
        }
        let router = match daemon::build::router_config(&new) {
            Ok(c) => c,
            Err(e) => {
                report.problems = vec![format!("{shown}: {e:#}")];
                return report;
            }
        };
        let Some(apply) = self.apply.get() else {
            report.result = ReloadResult::Refused;
            report.problems = vec!["the control plane is not running yet".into()];
            return report;
        };
        let change = Change {
            router,
            settings: new,
            running: Arc::clone(&self.running),
        };
        match apply(change) {
            Ok(Ok(summary)) => {
                report.result = ReloadResult::Applied;
                report.router = Some(summary);
            }
            Ok(Err(ReloadError::Invalid(e))) => {
                report.problems = vec![format!("{shown}: {e}")];
            }
            Ok(Err(e @ ReloadError::NeedsRestart(_))) => {
                report.result = ReloadResult::Refused;
                report.problems = vec![e.to_string()];
            }
            Ok(Err(e)) => {
                report.result = ReloadResult::Refused;
                report.problems = vec![e.to_string()];
            }
            Err(e) => {
                report.result = ReloadResult::Refused;
                report.problems = vec![e];
            }
        }
        report
    }
}

/// What differs between the running settings and a new file.
#[derive(Debug, Default, PartialEq, Eq)]
struct Diff {
    /// Changes a restart needs (each `key: needs a restart ...`).
    restart: Vec<String>,
    /// Changes a reload applies.
    changes: Vec<String>,
}

fn service_name(s: &config::RouterService) -> String {
    let kind = if s.dynamic { "dynamic" } else { "standard" };
    format!("{kind} {}", s.id)
}

/// Compares two router configurations key by key.
fn diff(old: &config::RouterSettings, new: &config::RouterSettings) -> Diff {
    let mut d = Diff::default();
    let mut restart = |differs: bool, key: &str, why: &str| {
        if differs {
            d.restart.push(format!("{key}: needs a restart ({why})"));
        }
    };
    restart(
        old.addresses != new.addresses,
        "router.addresses",
        "the control plane sends and receives on them",
    );
    restart(
        old.control.transport != new.control.transport,
        "router.control.transport",
        "the control plane runs on it",
    );
    restart(
        old.control.socket_path != new.control.socket_path,
        "router.control.socket_path",
        "this very socket",
    );
    restart(
        old.transmit_t_ms != new.transmit_t_ms,
        "router.timers.transmit_t_ms",
        "every group's timers derive from it",
    );
    restart(
        old.metrics != new.metrics,
        "router.metrics",
        "the endpoint is bound at start",
    );
    restart(old.log != new.log, "log", "logging is set up at start");
    // The data plane runs only with the dpdk transport.
    if old.control.transport == config::ControlTransport::Dpdk {
        match (&old.dataplane, &new.dataplane) {
            (Some(a), Some(b)) => {
                let why = "the data plane is started with it";
                restart(a.eal != b.eal, "dataplane.eal", why);
                restart(a.capture != b.capture, "dataplane.capture", why);
                restart(a.workers != b.workers, "dataplane.workers", why);
                restart(a.mbufs != b.mbufs, "dataplane.mbufs", why);
                restart(
                    a.idle_backoff != b.idle_backoff,
                    "dataplane.idle_backoff",
                    why,
                );
                restart(
                    a.ports != b.ports,
                    "dataplane.ports",
                    "ports are configured and started with the data plane",
                );
            }
            (a, b) => restart(a != b, "dataplane", "the data plane is running"),
        }
    }
    let c = &mut d.changes;
    if old.check_all_services != new.check_all_services {
        c.push("router.check_all_services".into());
    }
    if let (Some(a), Some(b)) = (&old.dataplane, &new.dataplane) {
        if a.routes != b.routes {
            c.push("dataplane.routes".into());
        }
        if a.neighbours != b.neighbours {
            c.push("dataplane.neighbours".into());
        }
    }
    let same_key = |a: &config::RouterService, b: &config::RouterService| {
        a.dynamic == b.dynamic && a.id == b.id
    };
    for s in &new.services {
        let Some(o) = old.services.iter().find(|o| same_key(o, s)) else {
            c.push(format!("service {}: added", service_name(s)));
            continue;
        };
        if o == s {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = |differs: bool, name: &str| {
            if differs {
                fields.push(name.to_owned());
            }
        };
        let priority = |x: &config::RouterService| x.definition.as_ref().map(|d| d.priority);
        field(priority(o) != priority(s), "priority");
        let mut od = o.definition.clone();
        if let (Some(a), Some(b)) = (&mut od, &s.definition) {
            a.priority = b.priority;
        }
        field(od != s.definition, "definition");
        field(o.password != s.password, "password");
        field(o.allowed_caches != s.allowed_caches, "allowed_caches");
        field(o.closed != s.closed, "closed");
        field(o.forwarding != s.forwarding, "forwarding");
        field(o.assignment != s.assignment, "assignment");
        field(o.return_methods != s.return_methods, "return");
        field(o.redirect_list != s.redirect_list, "redirect_list");
        field(
            o.static_assignment != s.static_assignment,
            "static_assignment",
        );
        if fields.is_empty() {
            fields.push("other".into());
        }
        c.push(format!(
            "service {}: {}",
            service_name(s),
            fields.join(", ")
        ));
    }
    for o in &old.services {
        if !new.services.iter().any(|s| same_key(o, s)) {
            c.push(format!("service {}: removed", service_name(o)));
        }
    }
    // The same services in another order (ties in priority follow it).
    let keys = |s: &config::RouterSettings| -> Vec<(bool, u8)> {
        s.services.iter().map(|x| (x.dynamic, x.id)).collect()
    };
    let (a, b) = (keys(old), keys(new));
    if a != b && a.iter().all(|k| b.contains(k)) && b.iter().all(|k| a.contains(k)) {
        c.push("router.services: order".into());
    }
    d
}

/// `wccpd reload [-s SOCKET] [--json]`: asks the router at `socket` to reload its file and
/// prints the outcome.
///
/// # Errors
/// No daemon at `socket`, or the reload was refused or the file is invalid (the report is
/// printed first).
pub fn client(socket: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let response = daemon::request(socket, Request::Reload)?;
    let Response::Reload(report) = response else {
        anyhow::bail!("unexpected answer from {}", socket.display());
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        render(&report, out)?;
    }
    match report.result {
        ReloadResult::Applied => Ok(()),
        ReloadResult::Refused => anyhow::bail!("reload refused: the running configuration stays"),
        ReloadResult::Invalid => anyhow::bail!(
            "reload refused: {} is invalid; the running configuration stays",
            report.config
        ),
    }
}

/// A reload report as text.
///
/// # Errors
/// I/O errors from `out`.
pub fn render(r: &ReloadReport, out: &mut dyn Write) -> std::io::Result<()> {
    let what = match r.result {
        ReloadResult::Applied => "applied",
        ReloadResult::Refused => "refused (needs a restart; nothing applied)",
        ReloadResult::Invalid => "refused (invalid configuration; nothing applied)",
    };
    writeln!(out, "reload of {}: {what}", r.config)?;
    if r.result == ReloadResult::Applied && r.changes.is_empty() {
        writeln!(out, "  no changes")?;
    }
    let verb = if r.result == ReloadResult::Applied {
        "changed"
    } else {
        "differs (not applied)"
    };
    for c in &r.changes {
        writeln!(out, "  {verb}: {c}")?;
    }
    if let Some(s) = r.router.as_ref().filter(|s| !s.is_empty()) {
        writeln!(out, "  router: {s}")?;
    }
    for p in &r.problems {
        writeln!(out, "  {p}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> config::RouterSettings {
        config::router_from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str = "router:
  addresses: [10.1.1.1]
  services:
    - id: 0
      type: standard
      password: secret
    - id: 80
      type: dynamic
      protocol: tcp
      ports: [80]
      priority: 10
";

    #[test]
    fn live_changes_are_listed_by_service() {
        let old = settings(BASE);
        let new = settings(
            &BASE
                .replace("secret", "other")
                .replace("priority: 10", "priority: 20"),
        );
        let d = diff(&old, &new);
        assert!(d.restart.is_empty(), "{d:?}");
        assert_eq!(
            d.changes,
            vec![
                "service standard 0: password",
                "service dynamic 80: priority"
            ]
        );
        let more = settings(&format!(
            "{BASE}    - id: 90\n      type: dynamic\n      closed: true\n  check_all_services: true\n"
        ));
        let d = diff(&old, &more);
        assert_eq!(
            d.changes,
            vec!["router.check_all_services", "service dynamic 90: added"]
        );
        let d = diff(&more, &old);
        assert_eq!(
            d.changes,
            vec!["router.check_all_services", "service dynamic 90: removed"]
        );
        assert_eq!(diff(&old, &old), Diff::default());
    }

    #[test]
    fn restart_keys_are_refused_with_their_reason() {
        let old = settings(BASE);
        let new = settings(&BASE.replace("[10.1.1.1]", "[10.1.1.2]").replace(
            "  services:",
            "  timers: {transmit_t_ms: 5000}\n  services:",
        ));
        let d = diff(&old, &new);
        assert_eq!(
            d.restart,
            vec![
                "router.addresses: needs a restart (the control plane sends and receives on them)",
                "router.timers.transmit_t_ms: needs a restart (every group's timers derive from it)",
            ]
        );
    }

    #[test]
    fn capture_mode_needs_a_restart() {
        // Only the files are compared: no EAL starts, so the net_null device below is never
        // probed (a router started from it would get --no-pci from the daemon, as every
        // configuration without a PCI port does).
        let dp = "  control: {transport: dpdk}\n  services:";
        let ports =
            "dataplane:\n  ports:\n    - {name: a, device: net_null0, addresses: [10.1.1.1/24]}\n";
        let old = settings(&format!("{}{ports}", BASE.replace("  services:", dp)));
        let new = settings(&format!(
            "{}{ports}  capture: true\n",
            BASE.replace("  services:", dp)
        ));
        let d = diff(&old, &new);
        assert_eq!(
            d.restart,
            vec!["dataplane.capture: needs a restart (the data plane is started with it)"]
        );
    }

    #[test]
    fn reports_round_trip_and_render() {
        let r = ReloadReport {
            result: ReloadResult::Invalid,
            config: "/etc/wccpd/router.yaml".into(),
            trigger: "socket".into(),
            changes: vec![],
            problems: vec!["/etc/wccpd/router.yaml:4:7: router.services[0].id: bad".into()],
            router: None,
            at_unix_s: 1,
        };
        let v = serde_json::to_value(Response::Reload(Box::new(r.clone()))).unwrap();
        assert_eq!(v["role"], "reload");
        assert_eq!(v["result"], "invalid");
        let back: Response = serde_json::from_value(v).unwrap();
        assert!(matches!(back, Response::Reload(b) if *b == r));
        let mut text = Vec::new();
        render(&r, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("invalid configuration; nothing applied"),
            "{text}"
        );
        assert!(text.contains("router.yaml:4:7"), "{text}");
        assert_eq!(
            serde_json::to_string(&Request::Reload).unwrap(),
            r#"{"request":"reload"}"#
        );
    }
}
