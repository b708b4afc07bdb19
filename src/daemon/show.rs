//! `wccpd show` without `--json`: a [`Response`] as text, laid out like Cisco's
//! `show ip wccp <service> detail`.

use std::fmt::Display;
use std::io::Write;
use std::net::Ipv4Addr;

use control::cache::{self, RouterLinkState};
use control::driver::DriverStats;
use control::router;
use dataplane::status::DataplaneStatus;

use super::report::{CacheReport, Response, RouterReport, TableReport};
use crate::cache_tun::TunReport;
use crate::gre_return::ReturnReport;

type Out<'a> = &'a mut dyn Write;

/// Writes `response` as text.
///
/// # Errors
/// I/O errors from `out`.
pub fn render(response: &Response, out: Out<'_>) -> std::io::Result<()> {
    match response {
        Response::Router(r) => router_report(r, out),
        Response::Cache(c) => cache_report(c, out),
        Response::Reload(r) => crate::reload::render(r, out),
        Response::Explain(e) => crate::explain::render(e, out),
        Response::Error { error } => writeln!(out, "error: {error}"),
    }
}

/// `    Label:                                value` (the label padded to 38 columns).
fn line(out: Out<'_>, label: &str, value: impl Display) -> std::io::Result<()> {
    writeln!(out, "    {label:<38}{value}")
}

/// `            Label:                        value` (a cache's detail, padded to 30 columns).
fn detail(out: Out<'_>, label: &str, value: impl Display) -> std::io::Result<()> {
    writeln!(out, "            {label:<30}{value}")
}

fn assignment_key(out: Out<'_>, address: Ipv4Addr, change: u32) -> std::io::Result<()> {
    line(
        out,
        "Assignment Key:",
        format_args!("{address} change {change}"),
    )
}

fn header(out: Out<'_>, role: &str, id: (&str, Option<String>), t_ms: u32) -> std::io::Result<()> {
    writeln!(out, "Global WCCP information ({role}):")?;
    if let (label, Some(id)) = id {
        line(out, label, id)?;
    }
    if t_ms > 0 {
        line(out, "TRANSMIT_T:", format_args!("{t_ms} ms"))?;
    }
    line(out, "Protocol Version:", "2.0")
}

/// `web-cache` for standard service 0, `dynamic N`, or the standard service's id.
fn service_name(id: u8, dynamic: bool) -> String {
    match (dynamic, id) {
        (false, 0) => "web-cache".into(),
        (true, n) => format!("dynamic {n}"),
        (false, n) => n.to_string(),
    }
}

fn list(items: &[impl Display]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn router_report(r: &RouterReport, out: Out<'_>) -> std::io::Result<()> {
    let id = r.router_id.map(|a| a.to_string());
    header(out, "router", ("Router Identifier:", id), r.transmit_t_ms)?;
    for svc in &r.status.services {
        router_service(svc, out)?;
    }
    if let Some(tables) = &r.tables {
        for t in tables {
            table(t, out)?;
        }
    }
    if let Some(dp) = &r.dataplane {
        dataplane(dp, out)?;
    }
    driver(&r.driver, out)?;
    match &r.reloads {
        Some(rl) => reloads(rl, out),
        None => Ok(()),
    }
}

fn reloads(r: &crate::reload::ReloadStats, out: Out<'_>) -> std::io::Result<()> {
    writeln!(
        out,
        "Reloads: {} applied, {} refused, {} invalid",
        r.applied, r.refused, r.invalid
    )?;
    if let Some(last) = &r.last {
        writeln!(
            out,
            "    last: {} ({}, {} s after the epoch) {}",
            last.result.as_str(),
            last.trigger,
            last.at_unix_s,
            last.config
        )?;
        for p in last.changes.iter().chain(&last.problems) {
            writeln!(out, "      {p}")?;
        }
    }
    Ok(())
}

fn router_service(svc: &router::ServiceStatus, out: Out<'_>) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "Service Identifier: {}",
        service_name(svc.id, svc.dynamic)
    )?;
    line(out, "Number of Cache Engines:", svc.caches.len())?;
    line(out, "Number of Routers:", svc.routers.len())?;
    let c = &svc.counters;
    line(
        out,
        "Control Messages:",
        format_args!("{} in, {} out", c.messages_in, c.messages_out),
    )?;
    for (reason, n) in &c.drops {
        line(out, &format!("Dropped ({reason}):"), n)?;
    }
    match svc.security {
        "none" => line(
            out,
            "Password:",
            "none (anyone who reaches UDP 2048 can join)",
        )?,
        "md5" => line(out, "Password:", "set (MD5)")?,
        _ => {}
    }
    line(out, "Change Number:", svc.change_number)?;
    line(out, "Receive ID:", svc.receive_id)?;
    if let Some(m) = svc.assignment_method {
        line(out, "Assignment Method:", m)?;
    }
    if let Some(a) = &svc.assignment {
        assignment_key(out, a.address, a.change_number)?;
        line(out, "Assignment Age:", format_args!("{} ms", a.age_ms))?;
    }
    if !svc.routers.is_empty() {
        writeln!(out, "    Router information:")?;
        for r in &svc.routers {
            writeln!(out, "        {r}")?;
        }
    }
    if !svc.caches.is_empty() {
        writeln!(out, "    Cache/Client information:")?;
    }
    for c in &svc.caches {
        writeln!(out, "        Cache ID: {}", c.address)?;
        let state = if c.usable { "Usable" } else { "NOT Usable" };
        detail(out, "State:", state)?;
        if let Some(reason) = c.reason {
            detail(out, "Reason:", reason.as_str())?;
        }
        detail(out, "Buckets:", c.buckets)?;
        detail(out, "Weight:", c.weight)?;
        if let Some(f) = c.forwarding {
            detail(out, "Redirection:", f)?;
        }
        detail(out, "Last HERE_I_AM (ms ago):", c.last_heard_ms_ago)?;
        if let (Some(m), Some(ago)) = (c.last_message, c.last_message_ms_ago) {
            detail(out, "Last message:", format_args!("{m}, {ago} ms ago"))?;
        }
    }
    Ok(())
}

fn table(t: &TableReport, out: Out<'_>) -> std::io::Result<()> {
    writeln!(out)?;
    let name = service_name(t.id, t.dynamic);
    if !t.published {
        return writeln!(
            out,
            "Redirection table {name}: flushed (forwarding normally)"
        );
    }
    writeln!(out, "Redirection table {name}:")?;
    for tg in &t.targets {
        writeln!(
            out,
            "    {:<20} {:<4} buckets {}{}",
            tg.address.to_string(),
            tg.method,
            tg.buckets,
            if tg.drained { " (drained)" } else { "" }
        )?;
    }
    Ok(())
}

/// The data plane's part: ports, per-service and per-cache packet counts, verdicts and drop
/// reasons (summed over lcores).
fn dataplane(dp: &DataplaneStatus, out: Out<'_>) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "Data plane: {} worker(s), tables generation {}, mempool {}/{} mbufs in use",
        dp.workers, dp.generation, dp.mempool_in_use, dp.mempool_size
    )?;
    for p in &dp.ports {
        let c = &p.counters;
        writeln!(
            out,
            "    port {:<10} {} mtu {} {} redirect [{}]{}  rx {} tx {} missed {} errors {}/{}",
            p.name,
            p.mac,
            p.mtu,
            p.addresses.join(","),
            p.redirect.join(","),
            if p.exclude_in { " exclude_in" } else { "" },
            c.rx_packets,
            c.tx_packets,
            c.rx_missed,
            c.rx_errors,
            c.tx_errors,
        )?;
    }
    for svc in &dp.services {
        writeln!(
            out,
            "    service {:<12} redirected {} returned {} unassigned {} closed-drop {} denied {}",
            service_name(svc.id, svc.dynamic),
            svc.redirected,
            svc.returned,
            svc.unassigned,
            svc.closed_drop,
            svc.denied,
        )?;
        for c in &svc.caches {
            let state = if c.drained {
                "drained   "
            } else if c.resolved {
                "resolved  "
            } else {
                "unresolved"
            };
            writeln!(
                out,
                "        cache {:<16} {:<4} {state} packets {} bytes {}",
                c.address, c.method, c.packets, c.bytes,
            )?;
        }
    }
    for (title, counts) in [("Verdicts", &dp.verdicts), ("Drops", &dp.drops)] {
        let list: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let list = if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        };
        writeln!(out, "    {title}: {list}")?;
    }
    Ok(())
}

fn driver(d: &DriverStats, out: Out<'_>) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "Control messages: {} received, {} sent, {} send errors",
        d.received, d.sent, d.send_errors
    )?;
    for (reason, n) in &d.drops {
        let last = d.last_drop.get(reason).map_or("-", String::as_str);
        writeln!(out, "    dropped {reason}: {n} (last: {last})")?;
    }
    Ok(())
}

fn cache_report(c: &CacheReport, out: Out<'_>) -> std::io::Result<()> {
    let id = Some(c.status.address.to_string());
    header(out, "cache", ("Cache Identifier:", id), c.transmit_t_ms)?;
    health(c, out)?;
    for svc in &c.status.services {
        cache_service(svc, out)?;
    }
    if let Some(pr) = &c.packet_return {
        packet_return(pr, out)?;
    }
    if let Some(tun) = &c.tun {
        tun_device(tun, out)?;
    }
    driver(&c.driver, out)
}

/// The agent's health (left or in its groups) and the proxy's health check.
fn health(c: &CacheReport, out: Out<'_>) -> std::io::Result<()> {
    let h = &c.status.health;
    if c.health_check.is_none() && h.leaves == 0 {
        return Ok(());
    }
    let state = if h.healthy {
        "healthy (in its groups)"
    } else {
        "UNHEALTHY (left every group)"
    };
    line(out, "Health:", state)?;
    line(
        out,
        "Health Transitions:",
        format_args!("{} left, {} rejoined", h.leaves, h.rejoins),
    )?;
    if let Some(p) = &c.health_check {
        let what = match &p.path {
            Some(path) => format!("{} {} {path}", p.kind, p.address),
            None => format!("{} {}", p.kind, p.address),
        };
        line(
            out,
            "Health Check:",
            format_args!(
                "{what} every {} ms, timeout {} ms, threshold {}",
                p.interval_ms, p.timeout_ms, p.threshold
            ),
        )?;
        line(
            out,
            "Health Probes:",
            format_args!(
                "{} probes, {} failed, {} consecutive failures",
                p.probes, p.failures, p.consecutive_failures
            ),
        )?;
        if let Some(r) = &p.last_result {
            let ago = p
                .last_probe_ms_ago
                .map(|a| format!(" ({a} ms ago)"))
                .unwrap_or_default();
            line(out, "Last Probe:", format_args!("{r}{ago}"))?;
        }
    }
    Ok(())
}

fn link_state(s: RouterLinkState) -> &'static str {
    match s {
        RouterLinkState::Joining => "joining",
        RouterLinkState::Joined => "joined",
        RouterLinkState::Incompatible => "incompatible",
        RouterLinkState::Shutdown => "shutdown",
    }
}

fn cache_service(svc: &cache::ServiceStatus, out: Out<'_>) -> std::io::Result<()> {
    writeln!(out)?;
    let name = match svc.service.as_str() {
        "standard 0" => "web-cache",
        other => other,
    };
    writeln!(out, "Service Identifier: {name}")?;
    line(out, "Number of Routers:", svc.routers.len())?;
    let designated = match (svc.designated_cache, svc.designated) {
        (Some(a), true) => format!("{a} (this cache)"),
        (Some(a), false) => a.to_string(),
        (None, _) => "none".to_string(),
    };
    line(out, "Designated Cache:", designated)?;
    line(out, "Caches Seen:", list(&svc.caches_seen))?;
    for b in &svc.buckets {
        line(out, "Buckets:", format_args!("{} -> {}", b.addr, b.buckets))?;
    }
    if let Some(k) = &svc.assignment_key {
        assignment_key(out, k.address, k.change_number)?;
    }
    if !svc.routers.is_empty() {
        writeln!(out, "    Router information:")?;
    }
    for r in &svc.routers {
        writeln!(
            out,
            "        {:<20} state {}  receive id {}  change {}",
            r.address.to_string(),
            link_state(r.state),
            r.receive_id,
            r.change_number,
        )?;
        let sub = |out: Out<'_>, label: &str, v: Option<String>| match v {
            Some(v) => writeln!(out, "            {label}: {v}"),
            None => Ok(()),
        };
        sub(out, "reason", r.reason.clone())?;
        let age = r.last_i_see_you_age_ms.map(|a| a.to_string());
        sub(out, "last I_SEE_YOU age ms", age)?;
        sub(out, "forwarding", r.forwarding.map(|m| m.to_string()))?;
        sub(out, "assignment", r.assignment.map(|m| m.to_string()))?;
        sub(out, "return", r.packet_return.map(|m| m.to_string()))?;
    }
    Ok(())
}

fn packet_return(pr: &ReturnReport, out: Out<'_>) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "GRE packet return:")?;
    let by = &pr.returned_by_reason;
    line(
        out,
        "Redirected packets:",
        format_args!(
            "{} received, {} accepted, {} returned (source {}, destination {}, load {})",
            pr.received, pr.accepted, pr.returned, by.source, by.destination, by.load
        ),
    )?;
    line(out, "Unmatched service:", pr.unmatched)?;
    line(out, "Ignored (not WCCP / not ours):", pr.ignored)?;
    line(out, "Malformed:", pr.malformed)?;
    line(out, "Send errors:", pr.send_errors)?;
    if let Some(e) = &pr.last_error {
        line(out, "Last error:", e)?;
    }
    line(out, "Load (percent):", pr.load_percent)?;
    if let Some(e) = &pr.load_error {
        line(out, "Load source error:", e)?;
    }
    Ok(())
}

fn tun_device(tun: &TunReport, out: Out<'_>) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "TUN decapsulation ({} {}/32):", tun.name, tun.address)?;
    line(
        out,
        "Redirected packets:",
        format_args!(
            "{} decapsulated, {} written to TUN, {} write errors",
            tun.decapsulated, tun.written, tun.write_errors
        ),
    )?;
    line(out, "Accepted from:", list(&tun.accept_from))?;
    line(out, "Unknown peer (dropped):", tun.unknown_peer)?;
    if let Some(e) = &tun.last_error {
        line(out, "Last write error:", e)?;
    }
    if let Some(e) = &tun.rp_filter_error {
        line(out, "rp_filter error:", e)?;
    }
    Ok(())
}
