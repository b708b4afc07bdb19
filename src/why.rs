//! `wccpd why <cache-address>`: why a cache is or is not usable at the router, in words, with
//! the last message the router heard from it (type and age). Read from the router's status
//! (`wccpd show --json`), service by service.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use control::router::{CacheStatus, NotUsable, ServiceStatus};

use crate::daemon::{self, Request, Response, RouterReport};

/// The reason in a sentence.
pub fn sentence(reason: NotUsable) -> &'static str {
    match reason {
        NotUsable::BadReceiveId => {
            "its last HERE_I_AM did not echo the Receive ID of our last I_SEE_YOU: a new cache \
             needs one more HERE_I_AM (one TRANSMIT_T); if it stays so, the cache does not take \
             our I_SEE_YOU (Debian's Squid 5.7 never does, see docs/protocol.md) or it sends \
             to another router address"
        }
        NotUsable::Md5Failure => {
            "its MD5 digest does not verify with the service password (Traffic Server uses \
             only 7 characters), or it signs when the service has no password or the other \
             way round"
        }
        NotUsable::CapabilityMismatch => {
            "it asks for a forwarding, assignment or packet-return method, or a TRANSMIT_T, \
             that this router does not offer or that differs from the group's \
             (router.services[].forwarding, assignment, return)"
        }
        NotUsable::ServiceMismatch => {
            "its service definition (protocol, ports, hash fields, priority) differs from the \
             group's"
        }
        NotUsable::NotAllowed => {
            "its address is outside the service's allowed_caches (the group list)"
        }
        NotUsable::NotInAssignment => {
            "it is usable, but the designated cache's assignment gives it no buckets (it \
             joined after the last assignment, or its weight is 0); the next assignment comes \
             1.5 x TRANSMIT_T after membership settles"
        }
        NotUsable::TimedOut => {
            "the router heard nothing from it for 3 x TRANSMIT_T and removed it (the cache \
             died, or its HERE_I_AMs no longer reach the router)"
        }
        NotUsable::Shutdown => {
            "it left the group with a SHUTDOWN: it was stopped, or its proxy failed its health \
             check (cache.health_check)"
        }
    }
}

fn service_name(s: &ServiceStatus) -> String {
    match (s.dynamic, s.id) {
        (false, 0) => "web-cache".into(),
        (false, n) => format!("standard {n}"),
        (true, n) => format!("dynamic {n}"),
    }
}

/// The answer for `cache` in one service, or `None` when the service does not know it.
fn in_service(s: &ServiceStatus, cache: Ipv4Addr) -> Option<String> {
    let c: &CacheStatus = s.caches.iter().find(|c| c.address == cache)?;
    let mut text = format!("service {}: ", service_name(s));
    if c.usable && c.reason.is_none() {
        let method = c.forwarding.unwrap_or("gre");
        text += &format!(
            "usable, {} bucket(s), weight {}, redirected by {method}",
            c.buckets, c.weight
        );
    } else if let Some(r) = c.reason {
        let state = if c.usable { "usable" } else { "NOT usable" };
        text += &format!("{state} ({}): {}", r.as_str(), sentence(r));
    } else {
        text += "NOT usable";
    }
    match (c.last_message, c.last_message_ms_ago) {
        (Some(m), Some(ago)) => text += &format!("\n    last message: {m}, {ago} ms ago"),
        _ => text += &format!("\n    last HERE_I_AM: {} ms ago", c.last_heard_ms_ago),
    }
    if s.security == "none" {
        text += "\n    note: this service has no password: anyone who reaches UDP 2048 can join";
    }
    Some(text)
}

/// What `wccpd why` prints for `cache` from a router's report.
pub fn explain(r: &RouterReport, cache: Ipv4Addr) -> String {
    let found: Vec<String> = r
        .status
        .services
        .iter()
        .filter_map(|s| in_service(s, cache))
        .collect();
    if found.is_empty() {
        let addrs: Vec<String> = r.addresses.iter().map(ToString::to_string).collect();
        return format!(
            "{cache}: the router has not heard from it in any service (recently): check that \
             it sends its HERE_I_AMs to one of the router addresses ({}) on UDP 2048 and that \
             it is configured for one of the router's services",
            addrs.join(", ")
        );
    }
    format!("{cache}:\n  {}", found.join("\n  "))
}

/// `wccpd why`: asks the router at `socket` for its status and explains `cache`.
///
/// # Errors
/// No daemon, or the daemon is not a router.
pub fn client(socket: &Path, cache: Ipv4Addr, out: &mut dyn Write) -> anyhow::Result<()> {
    let Response::Router(r) = daemon::request(socket, Request::Status)? else {
        anyhow::bail!("{} is not a router's control socket", socket.display());
    };
    writeln!(out, "{}", explain(&r, cache))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_sentence_and_md5_names_traffic_server() {
        for r in [
            NotUsable::BadReceiveId,
            NotUsable::Md5Failure,
            NotUsable::CapabilityMismatch,
            NotUsable::ServiceMismatch,
            NotUsable::NotAllowed,
            NotUsable::NotInAssignment,
            NotUsable::TimedOut,
            NotUsable::Shutdown,
        ] {
            assert!(sentence(r).len() > 20, "{r:?}");
        }
        assert!(sentence(NotUsable::Md5Failure)
            .contains("MD5 digest does not verify with the service password (Traffic Server uses only 7 characters)"));
    }

    #[test]
    fn from_a_report() {
        let v = serde_json::json!({
            "role": "router", "router_id": "10.1.1.1", "addresses": ["10.1.1.1"],
            "transmit_t_ms": 1000, "transport": "socket",
            "services": [{
                "id": 0, "dynamic": false, "security": "md5", "change_number": 2,
                "receive_id": 7, "assignment": null, "routers": [],
                "caches": [
                    {"address": "10.1.1.2", "usable": false, "reason": "md5_failure",
                     "buckets": 0, "weight": 0, "last_heard_ms_ago": 300,
                     "last_message": "HERE_I_AM", "last_message_ms_ago": 300},
                    {"address": "10.1.1.3", "usable": true, "reason": null, "buckets": 256,
                     "weight": 10000, "last_heard_ms_ago": 100, "forwarding": "gre",
                     "last_message": "REDIRECT_ASSIGN", "last_message_ms_ago": 50}
                ],
                "counters": {}
            }],
            "driver": {}
        });
        let Response::Router(r) = serde_json::from_value(v).unwrap() else {
            panic!()
        };
        let t = explain(&r, "10.1.1.2".parse().unwrap());
        assert!(t.contains("NOT usable (md5_failure)"), "{t}");
        assert!(t.contains("Traffic Server uses only 7 characters"), "{t}");
        assert!(t.contains("last message: HERE_I_AM, 300 ms ago"), "{t}");
        let t = explain(&r, "10.1.1.3".parse().unwrap());
        assert!(t.contains("usable, 256 bucket(s)"), "{t}");
        assert!(t.contains("REDIRECT_ASSIGN, 50 ms ago"), "{t}");
        let t = explain(&r, "10.1.1.9".parse().unwrap());
        assert!(t.contains("has not heard from it"), "{t}");
        assert!(t.contains("10.1.1.1"), "{t}");
    }
}
