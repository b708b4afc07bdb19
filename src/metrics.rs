//! Prometheus metrics (`router.metrics.listen`, path `/metrics`): the router's state encoded in
//! the text exposition format with the `prometheus` crate, from the same status structures
//! `wccpd show` prints. A scrape asks the thread that owns the state for a snapshot (the
//! control lcore on the data plane, the driver thread otherwise) and encodes it there, off the
//! packet path.
//!
//! Names follow Prometheus conventions: `wccp_` prefix, `_total` for counters, base units
//! (seconds, bytes); label values come from the enums' `as_str`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use control::driver::DriverStats;
use control::router::RouterStatus;
use dataplane::status::DataplaneStatus;
use prometheus::core::Collector;
use prometheus::{Encoder as _, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Builds metric families from values known at scrape time.
struct Families {
    registry: Registry,
}

impl Families {
    fn new() -> Self {
        Families {
            registry: Registry::new(),
        }
    }

    fn add<C: Collector + Clone + 'static>(&self, c: C) -> C {
        // Names are static and distinct: registration cannot conflict.
        let _ = self.registry.register(Box::new(c.clone()));
        c
    }

    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(
            IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|_| unreachable!("metric {name} has a valid name and labels")),
        )
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(
            IntGaugeVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|_| unreachable!("metric {name} has a valid name and labels")),
        )
    }

    fn fgauge(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(
            GaugeVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|_| unreachable!("metric {name} has a valid name and labels")),
        )
    }

    fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

fn inc(c: &IntCounterVec, labels: &[&str], v: u64) {
    c.with_label_values(labels).inc_by(v);
}

fn set(g: &IntGaugeVec, labels: &[&str], v: i64) {
    g.with_label_values(labels).set(v);
}

fn service_label(id: u8, dynamic: bool) -> String {
    if dynamic {
        format!("dynamic-{id}")
    } else {
        format!("standard-{id}")
    }
}

/// Encodes the router's state. `buckets`: export per-bucket counters.
pub fn encode_router(
    router: &RouterStatus,
    driver: &DriverStats,
    dp: Option<&DataplaneStatus>,
    buckets: bool,
) -> String {
    let f = Families::new();
    let usable = f.gauge(
        "wccp_service_usable_caches",
        "Caches usable in the service group (in the Router View).",
        &["service"],
    );
    let change = f.gauge(
        "wccp_service_member_change_number",
        "The service group's Member Change Number.",
        &["service"],
    );
    let receive_id = f.gauge(
        "wccp_service_receive_id",
        "The last Receive ID sent in the service group.",
        &["service"],
    );
    let assigned = f.gauge(
        "wccp_service_assignment_present",
        "1 while an assignment from the designated cache is in force.",
        &["service"],
    );
    let age = f.fgauge(
        "wccp_service_assignment_age_seconds",
        "Seconds since the current assignment was accepted.",
        &["service"],
    );
    let msgs = f.counter(
        "wccp_ctl_messages_total",
        "WCCP control messages by service group and direction.",
        &["service", "direction"],
    );
    let ctl_drops = f.counter(
        "wccp_ctl_drops_total",
        "Control messages dropped, by reason (security = MD5 failures, stale = Receive ID or change number mismatches).",
        &["service", "reason"],
    );
    for s in &router.services {
        let l = service_label(s.id, s.dynamic);
        let l = l.as_str();
        set(
            &usable,
            &[l],
            s.caches.iter().filter(|c| c.usable).count() as i64,
        );
        set(&change, &[l], i64::from(s.change_number));
        set(&receive_id, &[l], i64::from(s.receive_id));
        set(&assigned, &[l], i64::from(s.assignment.is_some()));
        if let Some(a) = &s.assignment {
            age.with_label_values(&[l]).set(a.age_ms as f64 / 1000.0);
        }
        inc(&msgs, &[l, "in"], s.counters.messages_in);
        inc(&msgs, &[l, "out"], s.counters.messages_out);
        for (reason, n) in &s.counters.drops {
            inc(&ctl_drops, &[l, reason], *n);
        }
    }
    for (reason, n) in &router.unattributed.drops {
        inc(&ctl_drops, &["none", reason], *n);
    }
    let driver_msgs = f.counter(
        "wccp_ctl_datagrams_total",
        "UDP 2048 datagrams received and sent by the control transport.",
        &["direction"],
    );
    inc(&driver_msgs, &["in"], driver.received);
    inc(&driver_msgs, &["out"], driver.sent);
    let publications = f.counter(
        "wccp_tables_published_total",
        "Redirection tables published to the data plane.",
        &[],
    );
    inc(&publications, &[], driver.publications);
    if let Some(r) = crate::reload::stats() {
        let reloads = f.counter(
            "wccp_reloads_total",
            "Configuration reloads (SIGHUP, wccpd reload) by result: applied, refused (needs a restart), invalid.",
            &["result"],
        );
        for result in crate::reload::ReloadResult::ALL {
            inc(&reloads, &[result.as_str()], r.count(result));
        }
    }
    if let Some(dp) = dp {
        encode_dataplane(&f, dp, buckets);
    }
    f.encode()
}

fn encode_dataplane(f: &Families, dp: &DataplaneStatus, buckets: bool) {
    let port_packets = f.counter(
        "wccp_port_packets_total",
        "Packets received and sent by a data-plane port (device counters).",
        &["port", "direction"],
    );
    let port_bytes = f.counter(
        "wccp_port_bytes_total",
        "Octets received and sent by a data-plane port (device counters).",
        &["port", "direction"],
    );
    let port_missed = f.counter(
        "wccp_port_rx_missed_total",
        "Packets the device dropped for lack of receive descriptors.",
        &["port"],
    );
    let port_errors = f.counter(
        "wccp_port_errors_total",
        "Receive and transmit errors of a data-plane port.",
        &["port", "direction"],
    );
    let nombuf = f.counter(
        "wccp_port_rx_nombuf_total",
        "Receive buffer allocation failures.",
        &["port"],
    );
    for p in &dp.ports {
        let n = p.name.as_str();
        let c = &p.counters;
        inc(&port_packets, &[n, "rx"], c.rx_packets);
        inc(&port_packets, &[n, "tx"], c.tx_packets);
        inc(&port_bytes, &[n, "rx"], c.rx_bytes);
        inc(&port_bytes, &[n, "tx"], c.tx_bytes);
        inc(&port_missed, &[n], c.rx_missed);
        inc(&port_errors, &[n, "rx"], c.rx_errors);
        inc(&port_errors, &[n, "tx"], c.tx_errors);
        inc(&nombuf, &[n], c.rx_nombuf);
    }
    let verdicts = f.counter(
        "wccp_dp_packets_total",
        "Data-plane verdicts by lcore (every received packet counts one final verdict).",
        &["lcore", "verdict"],
    );
    let drops = f.counter(
        "wccp_dp_drops_total",
        "Data-plane drops by lcore and reason.",
        &["lcore", "reason"],
    );
    for l in &dp.lcores {
        for (name, n) in &l.counters {
            let dropped = dp.drops.contains_key(name);
            if dropped {
                inc(&drops, &[&l.lcore, name], *n);
            } else {
                inc(&verdicts, &[&l.lcore, name], *n);
            }
        }
    }
    let generation = f.gauge(
        "wccp_dp_tables_generation",
        "Generation of the tables the workers read.",
        &[],
    );
    set(&generation, &[], dp.generation as i64);
    let mempool = f.gauge(
        "wccp_dp_mempool_mbufs",
        "Mbufs of the packet pool, by state.",
        &["state"],
    );
    set(&mempool, &["in_use"], i64::from(dp.mempool_in_use));
    set(&mempool, &["size"], i64::from(dp.mempool_size));
    let svc = f.counter(
        "wccp_service_packets_total",
        "Packets of a service group by outcome (redirected, returned, unassigned, closed_drop, denied).",
        &["service", "outcome"],
    );
    let cache_packets = f.counter(
        "wccp_cache_packets_total",
        "Packets redirected to a cache.",
        &["service", "cache"],
    );
    let cache_bytes = f.counter(
        "wccp_cache_bytes_total",
        "Octets (inner IPv4) redirected to a cache.",
        &["service", "cache"],
    );
    let bucket = f.counter(
        "wccp_bucket_packets_total",
        "Packets redirected per bucket (router.metrics.buckets).",
        &["service", "bucket"],
    );
    for s in &dp.services {
        let l = service_label(s.id, s.dynamic);
        let l = l.as_str();
        for (outcome, n) in [
            ("redirected", s.redirected),
            ("returned", s.returned),
            ("unassigned", s.unassigned),
            ("closed_drop", s.closed_drop),
            ("denied", s.denied),
        ] {
            inc(&svc, &[l, outcome], n);
        }
        for c in &s.caches {
            inc(&cache_packets, &[l, &c.address], c.packets);
            inc(&cache_bytes, &[l, &c.address], c.bytes);
        }
        if buckets {
            for (b, n) in &s.bucket_packets {
                inc(&bucket, &[l, &b.to_string()], *n);
            }
        }
    }
    let held = f.counter(
        "wccp_ctl_held_frames_total",
        "Frames held for an unresolved next hop, by outcome.",
        &["outcome"],
    );
    inc(&held, &["held"], dp.control.held);
    inc(&held, &["released"], dp.control.released);
    inc(&held, &["dropped"], dp.control.held_dropped);
    let arp = f.counter(
        "wccp_ctl_arp_total",
        "ARP packets received and sent by the control lcore.",
        &["kind"],
    );
    inc(&arp, &["received"], dp.control.arp_rx);
    inc(&arp, &["request_sent"], dp.control.arp_requests);
    inc(&arp, &["reply_sent"], dp.control.arp_replies);
}

/// Serves `GET /metrics` on `listen` until `stop`; each scrape calls `scrape` for the text.
///
/// # Errors
/// The address cannot be bound.
pub fn serve(
    listen: SocketAddr,
    stop: Arc<AtomicBool>,
    scrape: impl Fn() -> Result<String, String> + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let l = TcpListener::bind(listen)?;
    l.set_nonblocking(true)?;
    tracing::info!(%listen, "metrics endpoint ready");
    std::thread::Builder::new()
        .name("wccp-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        if let Err(e) = answer(s, &scrape) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        })
}

fn answer(s: TcpStream, scrape: &dyn Fn() -> Result<String, String>) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = if !line.starts_with("GET ") {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        )
    } else if path != "/metrics" {
        ("404 Not Found", "text/plain", "see /metrics\n".to_string())
    } else {
        match scrape() {
            Ok(b) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", b),
            Err(e) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
        }
    };
    let mut w = &s;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
