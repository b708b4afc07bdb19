//! The cache agent's health check of its proxy (`cache.health_check`).
//!
//! WCCP runs beside the proxy, so a dead proxy would keep its buckets: clients would be
//! redirected into nothing until an operator noticed. A thread of its own (`wccp-health`)
//! probes the proxy every `interval_ms` (a TCP connect, or an HTTP GET that must answer with a
//! status line, within `timeout_ms`); after `threshold` consecutive failures it tells the agent
//! it is unhealthy (`CacheAgent::set_healthy`, on the driver thread through
//! `DriverHandle::apply`), which leaves every service group at once with a SHUTDOWN; after
//! `threshold` consecutive successes it tells it healthy again and the agent rejoins. The
//! state machine never probes anything itself.
//!
//! Every probe is counted; the state, the last result and the counters are the `health`
//! object of `wccpd show` ([`HealthReport`]).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use config::{HealthCheck, HealthCheckKind};
use serde::{Deserialize, Serialize};

/// Consecutive results and the transitions they cause (pure: the probe thread feeds it).
#[derive(Clone, Debug)]
pub struct HealthTracker {
    threshold: u32,
    healthy: bool,
    consecutive_failures: u32,
    consecutive_successes: u32,
    probes: u64,
    failures: u64,
    transitions: u64,
    last_result: Option<String>,
}

impl HealthTracker {
    /// Healthy, nothing probed yet.
    pub fn new(threshold: u32) -> HealthTracker {
        HealthTracker {
            threshold: threshold.max(1),
            healthy: true,
            consecutive_failures: 0,
            consecutive_successes: 0,
            probes: 0,
            failures: 0,
            transitions: 0,
            last_result: None,
        }
    }

    /// Records one probe; `Some(healthy)` when it changes the state (the `threshold`-th
    /// consecutive failure while healthy, or success while unhealthy).
    pub fn record(&mut self, result: Result<(), String>) -> Option<bool> {
        self.probes += 1;
        match result {
            Ok(()) => {
                self.consecutive_successes += 1;
                self.consecutive_failures = 0;
                self.last_result = Some("ok".into());
            }
            Err(e) => {
                self.failures += 1;
                self.consecutive_failures += 1;
                self.consecutive_successes = 0;
                self.last_result = Some(format!("error: {e}"));
            }
        }
        let flip = if self.healthy {
            self.consecutive_failures >= self.threshold
        } else {
            self.consecutive_successes >= self.threshold
        };
        if !flip {
            return None;
        }
        self.healthy = !self.healthy;
        self.transitions += 1;
        Some(self.healthy)
    }

    /// The current state.
    pub fn healthy(&self) -> bool {
        self.healthy
    }
}

/// The `health` object of a cache's `wccpd show` (with `cache.health_check`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `tcp` or `http`.
    pub kind: String,
    /// What is probed.
    pub address: String,
    /// The HTTP path (HTTP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Probe interval.
    pub interval_ms: u32,
    /// Probe timeout.
    pub timeout_ms: u32,
    /// Consecutive results that change the state.
    pub threshold: u32,
    /// `healthy` (in the groups) or `unhealthy` (left them).
    pub state: String,
    /// Probes so far.
    pub probes: u64,
    /// Failed probes so far.
    pub failures: u64,
    /// Consecutive failures now.
    pub consecutive_failures: u32,
    /// Consecutive successes now.
    pub consecutive_successes: u32,
    /// Changes of state (leaves and rejoins).
    pub transitions: u64,
    /// `ok` or `error: ...` for the latest probe.
    pub last_result: Option<String>,
    /// Milliseconds since the latest probe.
    pub last_probe_ms_ago: Option<u64>,
}

/// One probe of `check`.
///
/// # Errors
/// Why the proxy did not answer: connect failure or timeout, or (HTTP) no status line.
pub fn probe(check: &HealthCheck) -> Result<(), String> {
    let timeout = Duration::from_millis(u64::from(check.timeout_ms));
    let start = Instant::now();
    let addr = SocketAddr::V4(check.address);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    if check.kind == HealthCheckKind::Tcp {
        return Ok(());
    }
    let left = timeout
        .checked_sub(start.elapsed())
        .filter(|d| !d.is_zero())
        .ok_or("timed out")?;
    s.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: wccpd-health-check\r\nConnection: close\r\n\r\n",
        check.path, check.address
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match s.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    if head[..got].starts_with(b"HTTP/") && got >= 12 {
        Ok(())
    } else {
        Err(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&head[..got])
        ))
    }
}

#[derive(Debug)]
struct Shared {
    tracker: Mutex<(HealthTracker, Option<Instant>)>,
    stop: AtomicBool,
}

/// The probe thread.
#[derive(Debug)]
pub struct HealthProbe {
    check: HealthCheck,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl HealthProbe {
    /// Starts probing `check`; `apply(healthy)` is called (on the probe thread) at every change
    /// of state.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(
        check: HealthCheck,
        apply: impl Fn(bool) + Send + 'static,
    ) -> std::io::Result<HealthProbe> {
        let shared = Arc::new(Shared {
            tracker: Mutex::new((HealthTracker::new(check.threshold), None)),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let check = check.clone();
            std::thread::Builder::new()
                .name("wccp-health".into())
                .spawn(move || run(&check, &shared, &apply))?
        };
        tracing::info!(
            kind = check.kind.as_str(),
            address = %check.address,
            interval_ms = check.interval_ms,
            threshold = check.threshold,
            "proxy health check started"
        );
        Ok(HealthProbe {
            check,
            shared,
            thread: Some(thread),
        })
    }

    /// What `wccpd show` reports, readable from any thread.
    pub fn reporter(&self) -> impl Fn() -> HealthReport + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        let check = self.check.clone();
        move || report(&check, &shared)
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HealthProbe {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn report(check: &HealthCheck, shared: &Shared) -> HealthReport {
    let g = shared
        .tracker
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let (t, at) = &*g;
    HealthReport {
        kind: check.kind.as_str().into(),
        address: check.address.to_string(),
        path: (check.kind == HealthCheckKind::Http).then(|| check.path.clone()),
        interval_ms: check.interval_ms,
        timeout_ms: check.timeout_ms,
        threshold: check.threshold,
        state: if t.healthy { "healthy" } else { "unhealthy" }.into(),
        probes: t.probes,
        failures: t.failures,
        consecutive_failures: t.consecutive_failures,
        consecutive_successes: t.consecutive_successes,
        transitions: t.transitions,
        last_result: t.last_result.clone(),
        last_probe_ms_ago: at.map(|a| a.elapsed().as_millis() as u64),
    }
}

fn run(check: &HealthCheck, shared: &Shared, apply: &dyn Fn(bool)) {
    let interval = Duration::from_millis(u64::from(check.interval_ms));
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        next = now + interval;
        let result = probe(check);
        let change = {
            let mut g = shared
                .tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            g.1 = Some(Instant::now());
            g.0.record(result.clone())
        };
        match change {
            Some(false) => {
                tracing::warn!(
                    address = %check.address,
                    last = %result.err().unwrap_or_default(),
                    threshold = check.threshold,
                    "proxy unhealthy: leaving every service group (SHUTDOWN)"
                );
                apply(false);
            }
            Some(true) => {
                tracing::info!(address = %check.address, "proxy healthy again: rejoining");
                apply(true);
            }
            None => {}
        }
    }
}

/// The running agent's driver, once [`attach_driver`] has seen it.
static DRIVER: Mutex<Option<control::driver::DriverHandle<control::cache::CacheAgent>>> =
    Mutex::new(None);

/// Remembers the cache agent's driver (a no-op for any other machine), so that
/// [`apply_to_driver`] reaches the agent.
pub fn attach_driver<M: 'static>(handle: &control::driver::DriverHandle<M>) {
    use std::any::Any;
    if let Some(h) = (handle as &dyn Any)
        .downcast_ref::<control::driver::DriverHandle<control::cache::CacheAgent>>()
    {
        *DRIVER.lock().unwrap_or_else(PoisonError::into_inner) = Some(h.clone());
    }
}

/// Tells the agent its proxy's health, on the driver thread (`CacheAgent::set_healthy`);
/// waits up to 5 s for the driver to start.
pub fn apply_to_driver(healthy: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let h = DRIVER
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(h) = h {
            let r = h.apply(crate::daemon::QUERY_TIMEOUT, move |agent, stats| {
                agent.set_healthy(control::Instant(stats.uptime_ms), healthy);
            });
            if let Err(e) = r {
                tracing::warn!(error = %e, healthy, "cannot tell the agent its proxy's health");
            }
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(healthy, "no cache agent to tell its proxy's health");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_consecutive_results_flip_the_state() {
        let mut t = HealthTracker::new(3);
        let bad = || Err::<(), String>("connect: refused".into());
        assert_eq!(t.record(Ok(())), None);
        assert_eq!(t.record(bad()), None);
        assert_eq!(t.record(bad()), None);
        // A success in between starts the count again.
        assert_eq!(t.record(Ok(())), None);
        assert_eq!(t.record(bad()), None);
        assert_eq!(t.record(bad()), None);
        assert_eq!(t.record(bad()), Some(false));
        assert!(!t.healthy());
        assert_eq!(t.record(bad()), None);
        assert_eq!(t.record(Ok(())), None);
        assert_eq!(t.record(Ok(())), None);
        assert_eq!(t.record(Ok(())), Some(true));
        assert!(t.healthy());
        assert_eq!((t.probes, t.failures, t.transitions), (11, 6, 2));
        assert_eq!(t.last_result.as_deref(), Some("ok"));
    }

    fn check(kind: HealthCheckKind, port: u16) -> HealthCheck {
        HealthCheck {
            kind,
            address: std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port),
            path: "/health".into(),
            interval_ms: 1000,
            timeout_ms: 500,
            threshold: 3,
        }
    }

    #[test]
    fn tcp_and_http_probes_against_local_listeners() {
        use std::io::BufRead as _;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert_eq!(probe(&check(HealthCheckKind::Tcp, port)), Ok(()));
        // An HTTP server that answers one request with 503: still an answer.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&s).read_line(&mut line).unwrap();
            let mut w = &s;
            w.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
                .unwrap();
            line
        });
        assert_eq!(probe(&check(HealthCheckKind::Http, port)), Ok(()));
        assert_eq!(server.join().unwrap(), "GET /health HTTP/1.0\r\n");
        // Nothing listening: refused.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = probe(&check(HealthCheckKind::Tcp, closed)).unwrap_err();
        assert!(e.starts_with("connect"), "{e}");
        // A listener that never answers HTTP: timed out, not healthy.
        let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = check(HealthCheckKind::Http, mute.local_addr().unwrap().port());
        c.timeout_ms = 200;
        let e = probe(&c).unwrap_err();
        assert!(e.contains("no answer") || e.contains("timed out"), "{e}");
    }
}
