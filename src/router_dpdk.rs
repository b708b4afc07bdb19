//! `wccpd router` with `control.transport: dpdk`: the router on its DPDK data plane.
//!
//! The main thread becomes the main (control) lcore and runs `dataplane::dpdk_impl::run`; the
//! Unix control socket is served from a plain thread that never touches DPDK: it hands each
//! status request to the control lcore as a closure and waits for the answer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use anyhow::Context as _;
use control::driver::DriverStats;
use dataplane::dpdk_impl::{self, ControlRequest, RequestHook, RunOptions, StatusRequest};
use dataplane::status::DataplaneStatus;

use crate::daemon::{self, Response, RouterReport, Transport};

/// Runs the router on the data plane until SIGTERM/SIGINT.
///
/// # Errors
/// A configuration without `dataplane`, or a data-plane start-up failure (EAL, ports,
/// memory), or a worker that failed.
pub fn run(settings: &config::RouterSettings, path: &Path) -> anyhow::Result<()> {
    let dp = settings
        .dataplane
        .as_ref()
        .context("control.transport dpdk needs a `dataplane` section")?;
    let router = daemon::build::router(settings)?;
    tracing::info!(
        config = %path.display(),
        addresses = ?settings.addresses,
        services = settings.services.len(),
        ports = dp.ports.len(),
        workers = dp.workers,
        "router starting on the DPDK data plane"
    );
    let stop = Arc::new(AtomicBool::new(false));
    daemon::stop_on_signals(&stop)?;
    let socket = settings.control.socket_path.clone();
    let listener = daemon::bind_control_socket(&socket)?;
    let (tx, rx) = mpsc::channel::<StatusRequest>();
    let tx_metrics = tx.clone();
    // `wccpd explain`: the pipeline's decision on the tables the workers read now.
    let tx_explain = tx.clone();
    crate::explain::register(move |req: crate::explain::ExplainRequest| {
        ask(&tx_explain, move |_, _, tables| explain(tables, &req))
            .unwrap_or_else(|error| Response::Error { error })
    });
    let server = {
        let stop = Arc::clone(&stop);
        let (addresses, transmit_t_ms) = (settings.addresses.clone(), settings.transmit_t_ms);
        std::thread::Builder::new()
            .name("wccp-ctl".into())
            .spawn(move || {
                let status = move || {
                    let addresses = addresses.clone();
                    ask(&tx, move |router, dp, _| {
                        let mut report = RouterReport::new(
                            &addresses,
                            transmit_t_ms,
                            Transport::Dpdk,
                            router.status(),
                            driver_stats(dp),
                        );
                        report.dataplane = Some(dp.clone());
                        Response::Router(Box::new(report))
                    })
                    .unwrap_or_else(|error| Response::Error { error })
                };
                daemon::control_loop(&listener, &stop, &status);
            })?
    };
    tracing::info!(socket = %socket.display(), "control socket ready");
    let metrics = match settings.metrics {
        Some(m) => {
            let tx = tx_metrics;
            Some(
                crate::metrics::serve(m.listen, Arc::clone(&stop), move || {
                    ask(&tx, move |router, dp, _| {
                        let stats = driver_stats(dp);
                        crate::metrics::encode_router(&router.status(), &stats, Some(dp), m.buckets)
                    })
                })
                .with_context(|| format!("cannot serve metrics on {}", m.listen))?,
            )
        }
        None => None,
    };
    // Reloads (SIGHUP, `wccpd reload`) run on the control lcore (crate::reload).
    let (reload_tx, reload_rx) = mpsc::channel::<ControlRequest>();
    crate::reload::attach_dpdk(reload_tx, Arc::clone(&stop))?;
    let mut reloads = RequestHook::new(reload_rx);
    let opts = RunOptions {
        hook: Some(&mut reloads),
        ..RunOptions::default()
    };
    let result = dpdk_impl::run_with(settings, dp, router, Arc::clone(&stop), rx, opts).map(|_| ());
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    if let Some(m) = metrics {
        let _ = m.join();
    }
    let _ = std::fs::remove_file(&socket);
    result.map_err(|e| anyhow::anyhow!("data plane: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// `wccpd explain` on the control lcore: the pipeline's decision on `tables`.
fn explain(tables: &dataplane::tables::Tables, req: &crate::explain::ExplainRequest) -> Response {
    match dataplane::explain::explain(tables, req.in_port.as_deref(), req.flow) {
        Ok(e) => Response::Explain(Box::new(e)),
        Err(e) => Response::Error {
            error: e.to_string(),
        },
    }
}

/// Runs `f` on the control lcore (through `tx`) and waits for its answer.
///
/// # Errors
/// A message when the data plane has stopped or did not answer within
/// [`daemon::QUERY_TIMEOUT`].
fn ask<R: Send + 'static>(
    tx: &mpsc::Sender<StatusRequest>,
    f: impl FnOnce(&control::router::Router, &DataplaneStatus, &dataplane::tables::Tables) -> R
        + Send
        + 'static,
) -> Result<R, String> {
    let (rtx, rrx) = mpsc::channel();
    let req: StatusRequest = Box::new(move |router, dp, tables| {
        let _ = rtx.send(f(router, dp, tables));
    });
    tx.send(req)
        .map_err(|_| "the data plane has stopped".to_string())?;
    rrx.recv_timeout(daemon::QUERY_TIMEOUT)
        .map_err(|_| "the data plane did not answer in time".to_string())
}

/// The control transport's counters in the socket driver's shape (one `show` and metrics
/// format for both transports).
fn driver_stats(dp: &DataplaneStatus) -> DriverStats {
    DriverStats {
        received: dp.control.wccp_rx,
        sent: dp.control.wccp_tx,
        send_errors: dp.control.wccp_tx_errors,
        drops: dp.control.drops.clone(),
        membership_changes: dp.control.membership_changes,
        assignments: dp.control.assignments,
        publications: dp.control.publications,
        ..DriverStats::default()
    }
}
