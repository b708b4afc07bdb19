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
use dataplane::dpdk_impl::{self, StatusRequest};
use serde_json::{json, Value};

use crate::daemon::{self, Served};

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
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install a signal handler")?;
    }
    let socket = settings.control.socket_path.clone();
    let listener = daemon::bind_control_socket(&socket)?;
    let (tx, rx) = mpsc::channel::<StatusRequest>();
    let server = {
        let stop = Arc::clone(&stop);
        let extra = daemon::extra(json!({
            "router_id": settings.addresses.first().map(ToString::to_string),
            "addresses": settings.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "transmit_t_ms": settings.transmit_t_ms,
            "transport": "dpdk",
        }));
        std::thread::Builder::new()
            .name("wccp-ctl".into())
            .spawn(move || {
                let ctx = Served {
                    role: "router",
                    tables: None,
                    extra,
                    live: Vec::new(),
                };
                let query = move || {
                    let (rtx, rrx) = mpsc::channel();
                    let req: StatusRequest = Box::new(move |router, dp| {
                        let stats = DriverStats {
                            received: dp.control.wccp_rx,
                            sent: dp.control.wccp_tx,
                            send_errors: dp.control.wccp_tx_errors,
                            drops: dp.control.drops.clone(),
                            membership_changes: dp.control.membership_changes,
                            assignments: dp.control.assignments,
                            publications: dp.control.publications,
                            ..DriverStats::default()
                        };
                        let mut m =
                            daemon::status_object(daemon::build::router_status(router), &stats);
                        m.insert(
                            "dataplane".into(),
                            serde_json::to_value(dp).unwrap_or(Value::Null),
                        );
                        let _ = rtx.send(m);
                    });
                    tx.send(req)
                        .map_err(|_| "the data plane has stopped".to_string())?;
                    rrx.recv_timeout(daemon::QUERY_TIMEOUT)
                        .map_err(|_| "the data plane did not answer in time".to_string())
                };
                daemon::control_loop(&listener, &stop, &ctx, &query);
            })?
    };
    tracing::info!(socket = %socket.display(), "control socket ready");
    let result = dpdk_impl::run(settings, dp, router, Arc::clone(&stop), rx);
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    let _ = std::fs::remove_file(&socket);
    result.map_err(|e| anyhow::anyhow!("data plane: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}
