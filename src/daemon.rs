//! `wccpd router`, `wccpd cache` and `wccpd show`: config -> state machine -> UDP driver, plus the
//! local Unix control socket.
//!
//! # Control socket
//! One JSON request per connection, one JSON line back: the client writes
//! `{"request":"status"}\n` and reads the daemon's status object. The object is the state
//! machine's own status (`Router::status()` / `CacheAgent::status()`, serialized) with three keys
//! added: `role` (`"router"` or `"cache"`), `driver` (the UDP driver's counters, including
//! `drops` per reason and the `last_drop` detail per reason), on the router `tables` (the
//! latest published redirection table per service: targets and their bucket counts) and, on a
//! cache with a return policy or `cache.tun`, `packet_return` (the [`crate::gre_return`]
//! worker's counters) and, with `cache.tun`, `tun` (the [`crate::cache_tun`] device's counters).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use control::driver::{Driver, DriverOptions, DriverStats, LatestTables};
use control::Machine;

use crate::gre_return::{ReturnSettings, ReturnWorker};

/// A status key whose value is computed at every request (outside the driver thread).
pub(crate) type Live = (&'static str, Box<dyn Fn() -> Value + Send>);

/// Where `wccpd show` looks for the daemon unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/wccpd/wccpd.sock";

/// How long the control socket waits for the driver to answer a status request.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Run the router until a signal or a fatal error.
pub fn run_router(config: &Path) -> anyhow::Result<()> {
    let settings = config::load_router(config)?;
    init_logging(settings.log_level);
    if settings.control.transport == config::ControlTransport::Dpdk {
        #[cfg(feature = "dpdk")]
        return crate::router_dpdk::run(&settings, config);
        #[cfg(not(feature = "dpdk"))]
        anyhow::bail!("control.transport dpdk: this wccpd was built without the dpdk feature");
    }
    let router = build::router(&settings)?;
    tracing::info!(
        config = %config.display(),
        addresses = ?settings.addresses,
        services = settings.services.len(),
        transmit_t_ms = settings.transmit_t_ms,
        "router starting"
    );
    serve(
        router,
        "router",
        &settings.control.socket_path,
        build::router_status,
        |_, _| {},
        extra(json!({
            "router_id": settings.addresses.first().map(ToString::to_string),
            "addresses": settings.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "transmit_t_ms": settings.transmit_t_ms,
        })),
        Vec::new(),
    )
}

/// Run the cache agent until a signal or a fatal error.
pub fn run_cache(config: &Path) -> anyhow::Result<()> {
    let settings = config::load_cache(config)?;
    init_logging(settings.log_level);
    if settings.control.transport == config::ControlTransport::Dpdk {
        anyhow::bail!("dpdk control transport comes with the data-plane issue");
    }
    let cache = build::cache(&settings)?;
    tracing::info!(
        config = %config.display(),
        address = %settings.address,
        routers = ?settings.routers,
        services = settings.services.len(),
        "cache agent starting"
    );
    if settings.tun.is_none() {
        tracing::info!(
            "no cache.tun: redirected traffic must be terminated by a kernel GRE interface"
        );
    }
    let worker = match ReturnSettings::from_config(&settings) {
        Some(rs) => Some(ReturnWorker::start(rs)?),
        None => None,
    };
    let mut live: Vec<Live> = Vec::new();
    if let Some(w) = &worker {
        let counters = w.counters();
        live.push(("packet_return", Box::new(move || counters.to_json())));
        if let Some((tun, counters)) = w.tun() {
            live.push(("tun", Box::new(move || counters.to_json(&tun))));
        }
    }
    let result = serve(
        cache,
        "cache",
        &settings.control.socket_path,
        build::cache_status,
        |m, now| m.shutdown(now),
        extra(json!({
            "seed_routers": settings.routers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "transmit_t_ms": settings.transmit_t_ms,
        })),
        live,
    );
    if let Some(w) = worker {
        w.stop();
    }
    result
}

/// Renders a status object (as returned by [`request`]) as text, like `show` does.
pub fn render_status(status: &Value, out: &mut dyn Write) -> anyhow::Result<()> {
    render_text(status, out)
}

/// Ask the daemon at `socket` for its state and print it.
pub fn show(socket: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let status = request(socket, "status")?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &status)?;
        writeln!(out)?;
    } else {
        render_text(&status, out)?;
    }
    Ok(())
}

/// Sends one request to the control socket and returns the JSON answer.
pub fn request(socket: &Path, what: &str) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to {} (is wccpd running?)", socket.display()))?;
    stream.set_read_timeout(Some(QUERY_TIMEOUT * 2))?;
    writeln!(stream, "{}", json!({ "request": what }))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let v: Value = serde_json::from_str(&line)
        .with_context(|| format!("bad answer from {}: {line:?}", socket.display()))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        anyhow::bail!("wccpd: {e}");
    }
    Ok(v)
}

pub(crate) fn extra(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) fn init_logging(level: config::LogLevel) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_str()));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs `machine` under the UDP driver on this thread, serving the control socket on another,
/// until SIGTERM/SIGINT.
fn serve<M: Machine + 'static>(
    machine: M,
    role: &'static str,
    socket: &Path,
    status: fn(&M) -> Value,
    shutdown: fn(&mut M, control::Instant),
    extra: Map<String, Value>,
    live: Vec<Live>,
) -> anyhow::Result<()> {
    let tables = Arc::new(LatestTables::new());
    let (driver, handle) = Driver::bind(machine, DriverOptions::default(), tables.clone())
        .context("cannot start the control-plane driver")?;
    let stop = handle.stop_flag();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install a signal handler")?;
    }
    let listener = bind_control_socket(socket)?;
    let server = {
        let handle = handle.clone();
        let stop = Arc::clone(&stop);
        let tables = Arc::clone(&tables);
        std::thread::Builder::new()
            .name("wccp-ctl".into())
            .spawn(move || {
                let ctx = Served {
                    role,
                    tables: Some(tables),
                    extra,
                    live,
                };
                let query = move || {
                    handle
                        .query(QUERY_TIMEOUT, move |m, stats| {
                            status_object(status(m), stats)
                        })
                        .map_err(|e| e.to_string())
                };
                control_loop(&listener, &stop, &ctx, &query);
            })?
    };
    tracing::info!(socket = %socket.display(), "control socket ready");
    driver.run_with_shutdown(shutdown);
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    let _ = std::fs::remove_file(socket);
    tracing::info!("stopped");
    Ok(())
}

/// Creates the parent directory, removes a stale socket (refusing to replace a live one) and
/// binds.
pub(crate) fn bind_control_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "{} is in use: another wccpd is running with this control socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What the control socket serves besides the machine's own status.
pub(crate) struct Served {
    pub(crate) role: &'static str,
    /// The socket driver's published tables (the DPDK data plane reports its own).
    pub(crate) tables: Option<Arc<LatestTables>>,
    /// Static facts from the configuration merged into every status (e.g. `router_id`).
    pub(crate) extra: Map<String, Value>,
    /// Keys computed at every request (e.g. the cache's `packet_return` counters).
    pub(crate) live: Vec<Live>,
}

/// Produces the machine's status object (run on the thread that owns the machine).
pub(crate) type StatusQuery<'a> = dyn Fn() -> Result<Map<String, Value>, String> + 'a;

pub(crate) fn control_loop(
    listener: &UnixListener,
    stop: &AtomicBool,
    ctx: &Served,
    query: &StatusQuery<'_>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, ctx, query) {
                    tracing::debug!(error = %e, "control connection failed");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn answer(stream: UnixStream, ctx: &Served, query: &StatusQuery<'_>) -> anyhow::Result<()> {
    let role = ctx.role;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let req: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    let reply = match req.get("request").and_then(Value::as_str) {
        Some("status") => match query() {
            Ok(mut v) => {
                normalize(role, &mut v);
                v.insert("role".into(), json!(role));
                for (k, x) in &ctx.extra {
                    v.entry(k.clone()).or_insert_with(|| x.clone());
                }
                if let Some(tables) = &ctx.tables {
                    if role == "router" {
                        v.insert("tables".into(), tables_json(tables));
                    }
                }
                for (k, f) in &ctx.live {
                    v.insert((*k).into(), f());
                }
                Value::Object(v)
            }
            Err(e) => json!({ "error": e }),
        },
        _ => json!({ "error": format!("unknown request {:?}", line.trim()) }),
    };
    let mut w = &stream;
    writeln!(w, "{reply}")?;
    Ok(())
}

pub(crate) fn status_object(machine: Value, stats: &DriverStats) -> Map<String, Value> {
    let mut m = match machine {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("status".into(), other);
            m
        }
    };
    m.insert(
        "driver".into(),
        serde_json::to_value(stats).unwrap_or(Value::Null),
    );
    m
}

fn tables_json(tables: &LatestTables) -> Value {
    let list: Vec<Value> = tables
        .snapshot()
        .into_iter()
        .map(|(key, table)| {
            let (targets, closed) = match &table {
                Some(t) => {
                    let counts = t.share_counts();
                    let targets: Vec<Value> = t
                        .targets()
                        .iter()
                        .zip(counts)
                        .map(|(target, n)| {
                            json!({
                                "address": target.addr.to_string(),
                                "method": target.method.as_str(),
                                "drained": target.drained,
                                "buckets": n,
                            })
                        })
                        .collect();
                    (targets, t.closed())
                }
                None => (Vec::new(), false),
            };
            json!({
                "id": key.id,
                "dynamic": key.dynamic,
                "published": table.is_some(),
                "closed": closed,
                "targets": targets,
            })
        })
        .collect();
    Value::Array(list)
}

// ---- text rendering (`show` without --json) ----------------------------------------------

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn field<'a>(v: &'a Value, keys: &[&str]) -> &'a Value {
    keys.iter()
        .find_map(|k| v.get(*k).filter(|x| !x.is_null()))
        .unwrap_or(&Value::Null)
}

fn service_name(svc: &Value) -> String {
    if let Some(name) = field(svc, &["service"]).as_str() {
        return match name {
            "standard 0" => "web-cache".into(),
            other => other.into(),
        };
    }
    let id = field(svc, &["id", "service_id"]);
    let dynamic = field(svc, &["dynamic"])
        .as_bool()
        .unwrap_or_else(|| field(svc, &["type"]).as_str() == Some("dynamic"));
    match (dynamic, id.as_u64()) {
        (false, Some(0)) => "web-cache".into(),
        (true, Some(n)) => format!("dynamic {n}"),
        _ => s(id),
    }
}

/// Adds the keys `show --json` promises on top of the machine's own status: on the router,
/// `services[].assignment.key = {address, change_number}`.
fn normalize(role: &str, v: &mut Map<String, Value>) {
    if role != "router" {
        return;
    }
    if let Some(Value::Array(services)) = v.get_mut("services") {
        for svc in services {
            if let Some(Value::Object(a)) = svc.get_mut("assignment") {
                if !a.contains_key("key") {
                    let key = json!({
                        "address": a.get("address").cloned().unwrap_or(Value::Null),
                        "change_number": a.get("change_number").cloned().unwrap_or(Value::Null),
                    });
                    a.insert("key".into(), key);
                }
            }
        }
    }
}

/// The data plane's part of `show`: ports, per-service and per-cache packet counts, verdicts
/// and drop reasons (summed over lcores).
fn render_dataplane(dp: &Value, out: &mut dyn Write) -> anyhow::Result<()> {
    let empty = Vec::new();
    writeln!(out)?;
    writeln!(
        out,
        "Data plane: {} worker(s), tables generation {}, mempool {}/{} mbufs in use",
        s(field(dp, &["workers"])),
        s(field(dp, &["generation"])),
        s(field(dp, &["mempool_in_use"])),
        s(field(dp, &["mempool_size"]))
    )?;
    for p in field(dp, &["ports"]).as_array().unwrap_or(&empty) {
        let c = field(p, &["counters"]);
        let dirs: Vec<String> = field(p, &["redirect"])
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(s)
            .collect();
        writeln!(
            out,
            "    port {:<10} {} mtu {} {} redirect [{}]{}  rx {} tx {} missed {} errors {}/{}",
            s(field(p, &["name"])),
            s(field(p, &["mac"])),
            s(field(p, &["mtu"])),
            field(p, &["addresses"])
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(s)
                .collect::<Vec<_>>()
                .join(","),
            dirs.join(","),
            if field(p, &["exclude_in"]).as_bool() == Some(true) {
                " exclude_in"
            } else {
                ""
            },
            s(field(c, &["rx_packets"])),
            s(field(c, &["tx_packets"])),
            s(field(c, &["rx_missed"])),
            s(field(c, &["rx_errors"])),
            s(field(c, &["tx_errors"])),
        )?;
    }
    for svc in field(dp, &["services"]).as_array().unwrap_or(&empty) {
        writeln!(
            out,
            "    service {:<12} redirected {} returned {} unassigned {} closed-drop {} denied {}",
            service_name(svc),
            s(field(svc, &["redirected"])),
            s(field(svc, &["returned"])),
            s(field(svc, &["unassigned"])),
            s(field(svc, &["closed_drop"])),
            s(field(svc, &["denied"])),
        )?;
        for c in field(svc, &["caches"]).as_array().unwrap_or(&empty) {
            writeln!(
                out,
                "        cache {:<16} {:<4} {} packets {} bytes {}",
                s(field(c, &["address"])),
                s(field(c, &["method"])),
                if field(c, &["drained"]).as_bool() == Some(true) {
                    "drained   "
                } else if field(c, &["resolved"]).as_bool() == Some(true) {
                    "resolved  "
                } else {
                    "unresolved"
                },
                s(field(c, &["packets"])),
                s(field(c, &["bytes"])),
            )?;
        }
    }
    for (title, key) in [("Verdicts", "verdicts"), ("Drops", "drops")] {
        if let Some(m) = field(dp, &[key]).as_object() {
            let list: Vec<String> = m.iter().map(|(k, v)| format!("{k} {}", s(v))).collect();
            writeln!(
                out,
                "    {title}: {}",
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(", ")
                }
            )?;
        }
    }
    Ok(())
}

/// Renders the status like Cisco's `show ip wccp <service> detail`.
fn render_text(st: &Value, out: &mut dyn Write) -> anyhow::Result<()> {
    let role = field(st, &["role"]).as_str().unwrap_or("router");
    writeln!(out, "Global WCCP information ({role}):")?;
    let id = field(st, &["router_id", "address"]);
    if !id.is_null() {
        let label = if role == "router" {
            "Router Identifier:"
        } else {
            "Cache Identifier:"
        };
        writeln!(out, "    {label:<38}{}", s(id))?;
    }
    let t = field(st, &["transmit_t_ms"]);
    if !t.is_null() {
        writeln!(out, "    {:<38}{} ms", "TRANSMIT_T:", s(t))?;
    }
    writeln!(out, "    {:<38}2.0", "Protocol Version:")?;
    let empty = Vec::new();
    let services = field(st, &["services"]).as_array().unwrap_or(&empty);
    for svc in services {
        writeln!(out)?;
        writeln!(out, "Service Identifier: {}", service_name(svc))?;
        let caches = field(svc, &["caches", "clients"])
            .as_array()
            .unwrap_or(&empty);
        let routers = field(svc, &["routers"]).as_array().unwrap_or(&empty);
        let pairs: [(&str, &[&str]); 5] = [
            ("Change Number:", &["change_number", "member_change_number"]),
            ("Receive ID:", &["receive_id"]),
            ("Designated Cache:", &["designated", "designated_cache"]),
            ("Assignment Method:", &["assignment_method"]),
            ("Password:", &["security", "password"]),
        ];
        if role == "router" {
            writeln!(
                out,
                "    {:<38}{}",
                "Number of Cache Engines:",
                caches.len()
            )?;
        }
        writeln!(out, "    {:<38}{}", "Number of Routers:", routers.len())?;
        let counters = field(svc, &["counters"]);
        if counters.is_object() {
            writeln!(
                out,
                "    {:<38}{} in, {} out",
                "Control Messages:",
                s(field(counters, &["messages_in"])),
                s(field(counters, &["messages_out"]))
            )?;
            if let Some(drops) = field(counters, &["drops"]).as_object() {
                for (reason, n) in drops {
                    writeln!(out, "    {:<38}{}", format!("Dropped ({reason}):"), s(n))?;
                }
            }
        }
        for (label, keys) in &pairs {
            let v = field(svc, keys);
            if !v.is_null() {
                writeln!(out, "    {label:<38}{}", s(v))?;
            }
        }
        let seen = field(svc, &["caches_seen"]);
        if let Some(list) = seen.as_array() {
            let names: Vec<String> = list.iter().map(s).collect();
            writeln!(out, "    {:<38}{}", "Caches Seen:", names.join(", "))?;
        }
        if let Some(list) = field(svc, &["buckets"]).as_array() {
            for b in list {
                writeln!(
                    out,
                    "    {:<38}{} -> {}",
                    "Buckets:",
                    s(field(b, &["addr", "address"])),
                    s(field(b, &["buckets"]))
                )?;
            }
        }
        let own_key = field(svc, &["assignment_key"]);
        if own_key.is_object() {
            writeln!(
                out,
                "    {:<38}{} change {}",
                "Assignment Key:",
                s(field(own_key, &["address"])),
                s(field(own_key, &["change_number"]))
            )?;
        }
        let asg = field(svc, &["assignment"]);
        let key = field(asg, &["key"]);
        if !key.is_null() {
            writeln!(
                out,
                "    {:<38}{} change {}",
                "Assignment Key:",
                s(field(key, &["address"])),
                s(field(key, &["change_number"]))
            )?;
            let age = field(asg, &["age_ms", "age"]);
            if !age.is_null() {
                writeln!(out, "    {:<38}{} ms", "Assignment Age:", s(age))?;
            }
        } else if !asg.is_null() {
            writeln!(out, "    {:<38}{}", "Assignment:", s(asg))?;
        }
        if !routers.is_empty() {
            writeln!(out, "    Router information:")?;
            for r in routers {
                if r.is_object() {
                    writeln!(
                        out,
                        "        {:<20} state {}  receive id {}  change {}",
                        s(field(r, &["address", "id"])),
                        s(field(r, &["state", "usable"])),
                        s(field(r, &["receive_id"])),
                        s(field(r, &["change_number"])),
                    )?;
                    for (label, keys) in [
                        ("reason", &["reason"][..]),
                        ("last I_SEE_YOU age ms", &["last_i_see_you_age_ms"][..]),
                        ("forwarding", &["forwarding"][..]),
                        ("assignment", &["assignment"][..]),
                        ("return", &["packet_return"][..]),
                    ] {
                        let v = field(r, keys);
                        if !v.is_null() {
                            writeln!(out, "            {label}: {}", s(v))?;
                        }
                    }
                } else {
                    writeln!(out, "        {}", s(r))?;
                }
            }
        }
        if !caches.is_empty() {
            writeln!(out, "    Cache/Client information:")?;
        }
        for c in caches {
            let usable = field(c, &["usable"]).as_bool();
            let state = match usable {
                Some(true) => "Usable".to_string(),
                Some(false) => "NOT Usable".to_string(),
                None => s(field(c, &["state"])),
            };
            writeln!(out, "        Cache ID: {}", s(field(c, &["address", "id"])))?;
            writeln!(out, "            {:<30}{state}", "State:")?;
            let reason = field(c, &["reason"]);
            if !reason.is_null() {
                writeln!(out, "            {:<30}{}", "Reason:", s(reason))?;
            }
            for (label, keys) in [
                ("Buckets:", &["buckets"][..]),
                ("Weight:", &["weight"][..]),
                ("Redirection:", &["forwarding", "forwarding_method"][..]),
                ("Assignment:", &["assignment"][..]),
                ("Packet Return:", &["return", "return_method"][..]),
                (
                    "Last HERE_I_AM (ms ago):",
                    &["last_heard_ms_ago", "age_ms"][..],
                ),
            ] {
                let v = field(c, keys);
                if !v.is_null() {
                    writeln!(out, "            {label:<30}{}", s(v))?;
                }
            }
        }
    }
    if let Some(tables) = field(st, &["tables"]).as_array() {
        for t in tables {
            writeln!(out)?;
            let name = service_name(t);
            if field(t, &["published"]).as_bool() != Some(true) {
                writeln!(
                    out,
                    "Redirection table {name}: flushed (forwarding normally)"
                )?;
                continue;
            }
            writeln!(out, "Redirection table {name}:")?;
            for tg in field(t, &["targets"]).as_array().unwrap_or(&empty) {
                writeln!(
                    out,
                    "    {:<20} {:<4} buckets {}{}",
                    s(field(tg, &["address"])),
                    s(field(tg, &["method"])),
                    s(field(tg, &["buckets"])),
                    if field(tg, &["drained"]).as_bool() == Some(true) {
                        " (drained)"
                    } else {
                        ""
                    }
                )?;
            }
        }
    }
    let dp = field(st, &["dataplane"]);
    if dp.is_object() {
        render_dataplane(dp, out)?;
    }
    let pr = field(st, &["packet_return"]);
    if pr.is_object() {
        writeln!(out)?;
        writeln!(out, "GRE packet return:")?;
        let by = field(pr, &["returned_by_reason"]);
        writeln!(
            out,
            "    {:<38}{} received, {} accepted, {} returned (source {}, destination {}, load {})",
            "Redirected packets:",
            s(field(pr, &["received"])),
            s(field(pr, &["accepted"])),
            s(field(pr, &["returned"])),
            s(field(by, &["source"])),
            s(field(by, &["destination"])),
            s(field(by, &["load"])),
        )?;
        for (label, key) in [
            ("Unmatched service:", "unmatched"),
            ("Ignored (not WCCP / not ours):", "ignored"),
            ("Malformed:", "malformed"),
            ("Send errors:", "send_errors"),
            ("Last error:", "last_error"),
            ("Load (percent):", "load_percent"),
            ("Load source error:", "load_error"),
        ] {
            let v = field(pr, &[key]);
            if !v.is_null() {
                writeln!(out, "    {label:<38}{}", s(v))?;
            }
        }
    }
    let tun = field(st, &["tun"]);
    if tun.is_object() {
        writeln!(out)?;
        writeln!(
            out,
            "TUN decapsulation ({} {}/32):",
            s(field(tun, &["name"])),
            s(field(tun, &["address"]))
        )?;
        writeln!(
            out,
            "    {:<38}{} decapsulated, {} written to TUN, {} write errors",
            "Redirected packets:",
            s(field(tun, &["decapsulated"])),
            s(field(tun, &["written"])),
            s(field(tun, &["write_errors"])),
        )?;
        if let Some(list) = field(tun, &["accept_from"]).as_array() {
            let names: Vec<String> = list.iter().map(s).collect();
            writeln!(out, "    {:<38}{}", "Accepted from:", names.join(", "))?;
        }
        for (label, key) in [
            ("Unknown peer (dropped):", "unknown_peer"),
            ("Last write error:", "last_error"),
            ("rp_filter error:", "rp_filter_error"),
        ] {
            let v = field(tun, &[key]);
            if !v.is_null() {
                writeln!(out, "    {label:<38}{}", s(v))?;
            }
        }
    }
    let d = field(st, &["driver"]);
    if !d.is_null() {
        writeln!(out)?;
        writeln!(
            out,
            "Control messages: {} received, {} sent, {} send errors",
            s(field(d, &["received"])),
            s(field(d, &["sent"])),
            s(field(d, &["send_errors"]))
        )?;
        if let Some(drops) = field(d, &["drops"]).as_object() {
            for (reason, n) in drops {
                let last = field(field(d, &["last_drop"]), &[reason.as_str()]);
                writeln!(out, "    dropped {reason}: {} (last: {})", s(n), s(last))?;
            }
        }
    }
    Ok(())
}

/// Config -> state machine conversions (the only part that knows both `config` and `control`).
pub mod build {
    use std::time::Duration;

    use control::cache::{
        AssignMethod, CacheAgent, CacheConfig, HashFields, MaskConfig, Method, ServiceConfig,
        ServiceDef, SpreadAlgorithm,
    };
    use control::router::{self, Router, RouterConfig};
    use serde_json::Value;

    fn hash_fields(list: &[config::HashField]) -> HashFields {
        let mut h = HashFields::NONE;
        for f in list {
            match f {
                config::HashField::SrcIp => h.src_ip = true,
                config::HashField::DstIp => h.dst_ip = true,
                config::HashField::SrcPort => h.src_port = true,
                config::HashField::DstPort => h.dst_port = true,
            }
        }
        h
    }

    fn method(m: config::Method) -> Method {
        match m {
            config::Method::Gre => Method::Gre,
            config::Method::L2 => Method::L2,
        }
    }

    /// The cache agent's configuration from a validated file.
    pub fn cache_config(s: &config::CacheSettings) -> CacheConfig {
        let services = s
            .services
            .iter()
            .map(|svc| {
                let d = &svc.definition;
                let service = if d.dynamic {
                    ServiceDef::Dynamic {
                        id: d.id,
                        priority: d.priority,
                        protocol: d.protocol,
                        ports: d.ports.clone(),
                        ports_source: d.ports_are == config::PortsAre::Source,
                        primary: hash_fields(&d.hash),
                        alternate: hash_fields(&d.alt_hash),
                    }
                } else {
                    ServiceDef::Standard(d.id)
                };
                ServiceConfig {
                    service,
                    weight: svc.weight,
                    password: svc.password.clone(),
                    forwarding: svc.forwarding.iter().map(|m| method(*m)).collect(),
                    assignment: svc
                        .assignment
                        .iter()
                        .map(|a| match a {
                            config::AssignmentMethod::Hash => AssignMethod::Hash,
                            config::AssignmentMethod::Mask => AssignMethod::Mask,
                        })
                        .collect(),
                    packet_return: svc.return_method.iter().map(|m| method(*m)).collect(),
                    mask: MaskConfig::default(),
                    spread: match svc.spread {
                        config::Spread::Squid => SpreadAlgorithm::Squid,
                        config::Spread::Stable => SpreadAlgorithm::Stable,
                    },
                    slow_start: (svc.slow_start_s > 0).then(|| assign::spread::SlowStart {
                        duration: Duration::from_secs(u64::from(svc.slow_start_s)),
                        initial_permille: 100,
                    }),
                }
            })
            .collect();
        let mut c = CacheConfig::new(s.address, s.routers.clone(), services);
        c.transmit_t = Duration::from_millis(u64::from(s.transmit_t_ms));
        c
    }

    pub(super) fn cache(s: &config::CacheSettings) -> anyhow::Result<CacheAgent> {
        Ok(CacheAgent::new(cache_config(s))?)
    }

    pub(super) fn cache_status(m: &CacheAgent) -> Value {
        serde_json::to_value(m.status()).unwrap_or(Value::Null)
    }

    /// The router's configuration from a validated file.
    pub fn router_config(s: &config::RouterSettings) -> anyhow::Result<RouterConfig> {
        let mut services = Vec::new();
        for svc in &s.services {
            let key = control::ServiceKey {
                dynamic: svc.dynamic,
                id: svc.id,
            };
            let definition = dataplane::tables::service_def(svc)
                .map_err(|e| anyhow::anyhow!("service {}: {e:?}", svc.id))?;
            let mut c = router::ServiceConfig::new(key);
            c.definition = definition;
            c.password = svc.password.clone();
            c.allowed_caches = svc
                .allowed_caches
                .iter()
                .map(|p| router::Prefix::new(p.addr, p.len))
                .collect();
            c.closed = svc.closed;
            c.offer.forwarding = config::method_bits(&svc.forwarding);
            c.offer.assignment = config::assignment_bits(&svc.assignment);
            c.offer.packet_return = config::method_bits(&svc.return_methods);
            c.timer_base = Duration::from_millis(u64::from(s.transmit_t_ms));
            services.push(c);
        }
        Ok(RouterConfig {
            addresses: s.addresses.clone(),
            router_id: s.addresses.first().copied(),
            services,
        })
    }

    pub(crate) fn router(s: &config::RouterSettings) -> anyhow::Result<Router> {
        Ok(Router::new(router_config(s)?)?)
    }

    pub(crate) fn router_status(m: &Router) -> Value {
        serde_json::to_value(m.status()).unwrap_or(Value::Null)
    }
}
