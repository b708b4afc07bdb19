//! `wccpd router`, `wccpd cache` and `wccpd show`: config -> state machine -> UDP driver, plus the
//! local Unix control socket.
//!
//! # Control socket
//! One request per connection, one answer back, each a JSON line: the client
//! writes a [`Request`] (`{"request":"status"}`) and reads a [`Response`]: the daemon's
//! [`RouterReport`] or [`CacheReport`] tagged by `role`, or an error. A report holds the state
//! machine's own status (`Router::status()` / `CacheAgent::status()`), facts from the
//! configuration, the control transport's counters (`driver`: `drops` per reason and the
//! `last_drop` detail per reason) and, by role, the latest published redirection table per
//! service (`tables`, socket transport) or the data plane (`dataplane`, DPDK transport), or the
//! [`crate::gre_return`] worker's counters (`packet_return`) and the [`crate::cache_tun`]
//! device's (`tun`). `wccpd show` prints it as JSON or renders it as text ([`render`]).

mod report;
mod show;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize as _;

use control::cache::CacheAgent;
use control::driver::{Driver, DriverOptions, DriverStats, LatestTables};
use control::router::Router;
use control::Machine;

pub use report::{
    table_reports, CacheReport, Request, Response, RouterReport, TableReport, TargetReport,
    Transport,
};
pub use show::render;

use crate::gre_return::{ReturnSettings, ReturnWorker};

/// Where `wccpd show` looks for the daemon unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/wccpd/wccpd.sock";

/// How long the control socket waits for the driver to answer a status request.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Builds a machine's [`Response`] on the thread that owns the machine.
type Report<M> = dyn Fn(&M, &DriverStats) -> Response + Send + Sync;

/// The metrics endpoint's settings and the router status it encodes.
type Metrics<M> = (config::Metrics, fn(&M) -> control::router::RouterStatus);

/// Run the router until a signal or a fatal error.
pub fn run_router(config: &Path) -> anyhow::Result<()> {
    let settings = config::load_router(config)?;
    init_logging(settings.log);
    for s in settings.services.iter().filter(|s| s.password.is_none()) {
        tracing::warn!(
            service = s.id,
            dynamic = s.dynamic,
            "service without a password: anyone who reaches UDP 2048 on a router address can join it and receive its traffic"
        );
    }
    // SIGHUP and `wccpd reload` re-read this file (crate::reload).
    crate::reload::prepare(config, &settings);
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
    let tables = Arc::new(LatestTables::new());
    crate::explain::register_socket(&settings, Arc::clone(&tables));
    let report: Arc<Report<Router>> = {
        let tables = Arc::clone(&tables);
        let (addresses, transmit_t_ms) = (settings.addresses.clone(), settings.transmit_t_ms);
        Arc::new(move |r: &Router, stats: &DriverStats| {
            let mut report = RouterReport::new(
                &addresses,
                transmit_t_ms,
                Transport::Socket,
                r.status(),
                stats.clone(),
            );
            report.tables = Some(table_reports(&tables));
            Response::Router(Box::new(report))
        })
    };
    serve(
        router,
        &settings.control.socket_path,
        |_, _| {},
        tables,
        report,
        settings.metrics.map(|m| (m, Router::status as fn(&_) -> _)),
    )
}

/// Run the cache agent until a signal or a fatal error.
pub fn run_cache(config: &Path) -> anyhow::Result<()> {
    let settings = config::load_cache(config)?;
    init_logging(settings.log);
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
    for s in settings.services.iter().filter(|s| s.password.is_none()) {
        tracing::warn!(
            service = s.definition.id,
            dynamic = s.definition.dynamic,
            "service without a password: its messages are not authenticated"
        );
    }
    let worker = match ReturnSettings::from_config(&settings) {
        Some(rs) => Some(ReturnWorker::start(rs)?),
        None => None,
    };
    // The proxy's health check: its own thread, telling the agent through the driver.
    let health = match &settings.health_check {
        Some(h) => Some(
            crate::cache_health::HealthProbe::start(
                h.clone(),
                crate::cache_health::apply_to_driver,
            )
            .context("cannot start the health check")?,
        ),
        None => None,
    };
    let report: Arc<Report<CacheAgent>> = {
        let health_report = health.as_ref().map(|h| h.reporter());
        let returns = worker.as_ref().map(ReturnWorker::counters);
        let tun = worker.as_ref().and_then(ReturnWorker::tun);
        let (seed_routers, transmit_t_ms) = (settings.routers.clone(), settings.transmit_t_ms);
        Arc::new(move |c: &CacheAgent, stats: &DriverStats| {
            Response::Cache(Box::new(CacheReport {
                seed_routers: seed_routers.clone(),
                transmit_t_ms,
                status: c.status(),
                driver: stats.clone(),
                packet_return: returns.as_ref().map(|r| r.report()),
                tun: tun.as_ref().map(|(settings, t)| t.report(settings)),
                health_check: health_report.as_ref().map(|f| f()),
            }))
        })
    };
    let result = serve(
        cache,
        &settings.control.socket_path,
        |m, now| m.shutdown(now),
        Arc::new(LatestTables::new()),
        report,
        None,
    );
    if let Some(w) = worker {
        w.stop();
    }
    if let Some(h) = health {
        h.stop();
    }
    result
}

/// Renders a status object (the JSON of a [`Response`], e.g. from `wccpd show --json`) as text,
/// like `show` does.
///
/// # Errors
/// The object is not a [`Response`], or writing failed.
pub fn render_status(status: &serde_json::Value, out: &mut dyn Write) -> anyhow::Result<()> {
    let response = Response::deserialize(status).context("not a wccpd status")?;
    Ok(render(&response, out)?)
}

/// Ask the daemon at `socket` for its state and print it.
pub fn show(socket: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let response = request(socket, Request::Status)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &response)?;
        writeln!(out)?;
    } else {
        render(&response, out)?;
    }
    Ok(())
}

/// Sends one request to the control socket and returns the answer.
///
/// # Errors
/// No daemon at `socket`, an answer that is not a [`Response`], or [`Response::Error`].
pub fn request(socket: &Path, request: Request) -> anyhow::Result<Response> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to {} (is wccpd running?)", socket.display()))?;
    stream.set_read_timeout(Some(QUERY_TIMEOUT * 2))?;
    writeln!(stream, "{}", serde_json::to_string(&request)?)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let response: Response = serde_json::from_str(&line)
        .with_context(|| format!("bad answer from {}: {line:?}", socket.display()))?;
    if let Response::Error { error } = response {
        anyhow::bail!("wccpd: {error}");
    }
    Ok(response)
}

/// Sets up `tracing` on stderr: the level from `log.level` unless `RUST_LOG` is set, text or
/// one JSON object per line (`log.format`).
pub(crate) fn init_logging(log: config::Log) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log.level.as_str()));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        config::LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}

/// Runs `machine` under the UDP driver on this thread, publishing into `tables` and serving the
/// control socket (answers built by `report`) on another, until SIGTERM/SIGINT.
fn serve<M: Machine + 'static>(
    machine: M,
    socket: &Path,
    shutdown: fn(&mut M, control::Instant),
    tables: Arc<LatestTables>,
    report: Arc<Report<M>>,
    metrics: Option<Metrics<M>>,
) -> anyhow::Result<()> {
    let (driver, handle) = Driver::bind(machine, DriverOptions::default(), tables)
        .context("cannot start the control-plane driver")?;
    let stop = handle.stop_flag();
    stop_on_signals(&stop)?;
    // The router reloads on the driver thread (a no-op for the cache agent).
    crate::reload::attach_driver(&handle)?;
    // The cache agent hears its proxy's health through the driver (a no-op for the router).
    crate::cache_health::attach_driver(&handle);
    let listener = bind_control_socket(socket)?;
    let server = {
        let handle = handle.clone();
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("wccp-ctl".into())
            .spawn(move || {
                let status = move || {
                    let report = Arc::clone(&report);
                    handle
                        .query(QUERY_TIMEOUT, move |m, stats| report(m, stats))
                        .unwrap_or_else(|e| Response::Error {
                            error: e.to_string(),
                        })
                };
                control_loop(&listener, &stop, &status);
            })?
    };
    tracing::info!(socket = %socket.display(), "control socket ready");
    let metrics_thread = match metrics {
        Some((m, metrics_of)) => {
            let handle = handle.clone();
            Some(
                crate::metrics::serve(m.listen, Arc::clone(&stop), move || {
                    handle
                        .query(QUERY_TIMEOUT, move |machine, stats| {
                            crate::metrics::encode_router(
                                &metrics_of(machine),
                                stats,
                                None,
                                m.buckets,
                            )
                        })
                        .map_err(|e| e.to_string())
                })
                .with_context(|| format!("cannot serve metrics on {}", m.listen))?,
            )
        }
        None => None,
    };
    driver.run_with_shutdown(shutdown);
    if let Some(t) = metrics_thread {
        stop.store(true, Ordering::SeqCst);
        let _ = t.join();
    }
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    let _ = std::fs::remove_file(socket);
    tracing::info!("stopped");
    Ok(())
}

/// The exit status of a process stopped at once by a second SIGTERM or SIGINT: 128 + the
/// signal number, as a shell reports a process killed by it (143 for SIGTERM, 130 for SIGINT).
pub const fn forced_exit_status(signal: i32) -> i32 {
    128 + signal
}

/// SIGTERM and SIGINT set `stop` (a graceful stop: the cache agent's SHUTDOWN, the data
/// plane's drain, the control socket removed); a second one while `stop` is already set exits
/// at once with [`forced_exit_status`], without any clean-up.
pub(crate) fn stop_on_signals(stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Checked before `register` sets the flag: only a signal that finds it set exits.
        signal_hook::flag::register_conditional_shutdown(
            sig,
            forced_exit_status(sig),
            Arc::clone(stop),
        )
        .context("cannot install a signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(stop))
            .context("cannot install a signal handler")?;
    }
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

/// Accepts control connections until `stop`, answering each [`Request::Status`] with
/// `status()` (which asks the thread that owns the machine).
pub(crate) fn control_loop(
    listener: &UnixListener,
    stop: &AtomicBool,
    status: &dyn Fn() -> Response,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, status) {
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

fn answer(stream: UnixStream, status: &dyn Fn() -> Response) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Status) => status(),
        Ok(Request::Reload) => crate::reload::answer(),
        Ok(Request::Explain(r)) => crate::explain::answer(r),
        Err(_) => Response::Error {
            error: format!("unknown request {:?}", line.trim()),
        },
    };
    let mut w = &stream;
    serde_json::to_writer(&mut w, &reply)?;
    writeln!(w)?;
    Ok(())
}

/// Config -> state machine conversions (the only part that knows both `config` and `control`).
/// The two share their plain types through `wccp-assign` (a cache's service group is one
/// `CacheService` for both), so these only place what the file says where the machine wants it.
pub mod build {
    use std::time::Duration;

    use assign::method::{AssignMethod, Method};
    use control::cache::{CacheAgent, CacheConfig};
    use control::router::{self, Router, RouterConfig};

    /// The cache agent's configuration from a validated file.
    pub fn cache_config(s: &config::CacheSettings) -> CacheConfig {
        CacheConfig {
            transmit_t: Duration::from_millis(u64::from(s.transmit_t_ms)),
            ..CacheConfig::new(s.address, s.routers.clone(), s.services.clone())
        }
    }

    pub(super) fn cache(s: &config::CacheSettings) -> anyhow::Result<CacheAgent> {
        Ok(CacheAgent::new(cache_config(s))?)
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
            c.allowed_caches = svc.allowed_caches.clone();
            c.closed = svc.closed;
            c.offer.forwarding = Method::bits(&svc.forwarding);
            c.offer.assignment = AssignMethod::bits(&svc.assignment);
            c.offer.packet_return = Method::bits(&svc.return_methods);
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
}
