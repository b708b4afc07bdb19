//! The control socket's protocol: one [`Request`] line in, one [`Response`] line out, both
//! JSON. A response is the daemon's report, tagged by `role`: the state machine's own status
//! (`control::router::RouterStatus` / `control::cache::CacheStatus`, its members at the top
//! level), facts from the configuration, the driver's counters and, by role and transport,
//! the published tables, the data plane, the packet-return worker and the TUN device.
//! `wccpd show --json` prints the response; the text form renders the same structs.

use std::net::Ipv4Addr;

use control::cache::CacheStatus;
use control::driver::{DriverStats, LatestTables};
use control::label::{self, Label};
use control::router::RouterStatus;
use dataplane::status::DataplaneStatus;
use serde::{Deserialize, Serialize};

use crate::cache_health::HealthReport;
use crate::cache_tun::TunReport;
use crate::explain::ExplainRequest;
use crate::gre_return::ReturnReport;
use crate::reload::{ReloadReport, ReloadStats};

/// A request: `{"request":"status"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// The daemon's whole state.
    Status,
    /// Re-read the configuration file and apply it (router only; `wccpd reload`).
    Reload,
    /// What the data plane does with one flow, and why (router only; `wccpd explain`).
    Explain(ExplainRequest),
}

/// The answer to a [`Request`]: `{"role":"router",...}`, `{"role":"cache",...}` or
/// `{"role":"error","error":"..."}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Response {
    /// A router's report.
    Router(Box<RouterReport>),
    /// A cache agent's report.
    Cache(Box<CacheReport>),
    /// The outcome of a [`Request::Reload`].
    Reload(Box<ReloadReport>),
    /// The answer to a [`Request::Explain`].
    Explain(Box<dataplane::explain::Explanation>),
    /// The request failed (unknown request, the driver did not answer).
    Error {
        /// Why.
        error: String,
    },
}

/// Which transport the router's control plane uses (`control.transport`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Kernel UDP sockets (the driver of `control::driver`).
    #[default]
    Socket,
    /// The DPDK data plane's own ports (the control lcore).
    Dpdk,
}

/// What `wccpd show` reports about a router.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouterReport {
    /// The first configured address (the Router ID).
    #[serde(default)]
    pub router_id: Option<Ipv4Addr>,
    /// The configured addresses.
    #[serde(default)]
    pub addresses: Vec<Ipv4Addr>,
    /// TRANSMIT_T in milliseconds (0: not reported).
    #[serde(default)]
    pub transmit_t_ms: u32,
    /// The control transport.
    #[serde(default)]
    pub transport: Transport,
    /// The state machine's status: `services`, `unattributed`, ... at the top level, each
    /// `services[].assignment` with the `key` the documentation promises.
    #[serde(flatten, serialize_with = "assignment_keys::serialize")]
    pub status: RouterStatus,
    /// The control transport's counters (the socket driver's, or the control lcore's in the
    /// same shape).
    #[serde(default)]
    pub driver: DriverStats,
    /// The latest published table per service (socket transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<TableReport>>,
    /// The data plane (DPDK transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<DataplaneStatus>,
    /// Configuration reloads by result, and the latest (`crate::reload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reloads: Option<ReloadStats>,
}

impl RouterReport {
    /// A report of `status` for a router with `addresses` (the first is its Router ID), without
    /// tables or data plane.
    pub fn new(
        addresses: &[Ipv4Addr],
        transmit_t_ms: u32,
        transport: Transport,
        status: RouterStatus,
        driver: DriverStats,
    ) -> RouterReport {
        RouterReport {
            router_id: addresses.first().copied(),
            addresses: addresses.to_vec(),
            transmit_t_ms,
            transport,
            status,
            driver,
            tables: None,
            dataplane: None,
            reloads: crate::reload::stats(),
        }
    }
}

/// The latest table published for one service (socket transport).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReport {
    /// Service id.
    pub id: u8,
    /// Dynamic or standard.
    pub dynamic: bool,
    /// A table is in force (`false`: flushed, traffic is forwarded normally).
    pub published: bool,
    /// Closed service: unassigned traffic is dropped.
    pub closed: bool,
    /// The caches of the table.
    pub targets: Vec<TargetReport>,
}

/// One cache of a published table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetReport {
    /// The cache.
    pub address: Ipv4Addr,
    /// `"gre"` or `"l2"`.
    #[serde(deserialize_with = "label::deserialize")]
    pub method: Label,
    /// Removed from the group since the assignment: its buckets are unassigned.
    pub drained: bool,
    /// Buckets (or mask values) it receives.
    pub buckets: u32,
}

/// The tables `tables` holds now, one per service.
pub fn table_reports(tables: &LatestTables) -> Vec<TableReport> {
    tables
        .snapshot()
        .into_iter()
        .map(|(key, table)| {
            let targets = table.as_ref().map_or_else(Vec::new, |t| {
                t.targets()
                    .iter()
                    .zip(t.share_counts())
                    .map(|(target, buckets)| TargetReport {
                        address: target.addr,
                        method: target.method.as_str(),
                        drained: target.drained,
                        buckets,
                    })
                    .collect()
            });
            TableReport {
                id: key.id,
                dynamic: key.dynamic,
                published: table.is_some(),
                closed: table.as_ref().is_some_and(|t| t.closed()),
                targets,
            }
        })
        .collect()
}

/// What `wccpd show` reports about a cache agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheReport {
    /// The configured routers.
    #[serde(default)]
    pub seed_routers: Vec<Ipv4Addr>,
    /// TRANSMIT_T in milliseconds (0: not reported).
    #[serde(default)]
    pub transmit_t_ms: u32,
    /// The agent's status: `address`, `services` at the top level.
    #[serde(flatten)]
    pub status: CacheStatus,
    /// The UDP driver's counters.
    #[serde(default)]
    pub driver: DriverStats,
    /// The packet-return worker's counters (with a `return_policy` or `cache.tun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_return: Option<ReturnReport>,
    /// The TUN device (with `cache.tun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tun: Option<TunReport>,
    /// The proxy's health check (with `cache.health_check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthReport>,
}

/// `services[].assignment.key = {address, change_number}` in the router's JSON: the key of the
/// accepted assignment, as `docs/configuration.md` promises (and as the cache's
/// `assignment_key` reads), added to what `RouterStatus` serializes.
mod assignment_keys {
    use serde::ser::Error as _;
    use serde::{Serialize, Serializer};
    use serde_json::Value;

    use control::cache::AssignmentKeyStatus;
    use control::router::RouterStatus;

    pub(super) fn serialize<S: Serializer>(status: &RouterStatus, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(status).map_err(S::Error::custom)?;
        if let Some(Value::Array(services)) = v.get_mut("services") {
            for (svc, out) in status.services.iter().zip(services) {
                let (Some(a), Some(Value::Object(o))) =
                    (&svc.assignment, out.get_mut("assignment"))
                else {
                    continue;
                };
                let key = AssignmentKeyStatus {
                    address: a.address,
                    change_number: a.change_number,
                };
                o.insert(
                    "key".into(),
                    serde_json::to_value(key).map_err(S::Error::custom)?,
                );
            }
        }
        v.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn router_json() -> Value {
        json!({
            "role": "router",
            "router_id": "10.1.1.1",
            "addresses": ["10.1.1.1"],
            "transmit_t_ms": 10000,
            "transport": "socket",
            "services": [{
                "id": 0, "dynamic": false, "change_number": 2, "receive_id": 17,
                "assignment_method": "hash",
                "assignment": {"address": "10.1.1.2", "change_number": 1, "method": "hash",
                               "age_ms": 1500},
                "routers": ["10.1.1.1"],
                "caches": [{"address": "10.1.1.2", "usable": true, "reason": null,
                            "buckets": 256, "weight": 10000, "last_heard_ms_ago": 300,
                            "forwarding": "gre"}],
                "counters": {"messages_in": 9, "messages_out": 8, "drops": {"security": 4}}
            }],
            "driver": {"received": 9, "sent": 8, "drops": {"security": 4},
                       "last_drop": {"security": "10.1.1.3: MD5 digest mismatch"}},
            "tables": [{"id": 0, "dynamic": false, "published": true, "closed": false,
                        "targets": [{"address": "10.1.1.2", "method": "gre", "drained": false,
                                     "buckets": 256}]}]
        })
    }

    #[test]
    fn requests_and_errors_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"request":"status"}"#
        );
        let r: Request = serde_json::from_str(r#"{"request":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        assert!(serde_json::from_str::<Request>(r#"{"request":"reboot"}"#).is_err());
        let e = Response::Error {
            error: "timed out".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v, json!({"role": "error", "error": "timed out"}));
    }

    #[test]
    fn router_report_round_trips_with_the_promised_keys() {
        let r: Response = serde_json::from_value(router_json()).unwrap();
        let Response::Router(report) = &r else {
            panic!("not a router: {r:?}")
        };
        assert_eq!(report.status.services[0].caches[0].forwarding, Some("gre"));
        assert_eq!(report.driver.drops.get("security"), Some(&4));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["role"], "router");
        assert_eq!(v["router_id"], "10.1.1.1");
        let svc = &v["services"][0];
        assert_eq!(svc["id"], 0);
        assert_eq!(svc["change_number"], 2);
        assert_eq!(
            svc["assignment"]["key"],
            json!({"address": "10.1.1.2", "change_number": 1})
        );
        let cache = &svc["caches"][0];
        for k in ["address", "usable", "reason", "buckets"] {
            assert!(cache.get(k).is_some(), "caches[].{k} in {v:#}");
        }
        assert_eq!(v["tables"][0]["targets"][0]["buckets"], 256);
        assert!(v.get("dataplane").is_none());
        // Reading back what we wrote gives the same report (the added key is ignored).
        let again: Response = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), v);
    }

    #[test]
    fn cache_report_keeps_packet_return_and_tun_keys() {
        let v = json!({
            "role": "cache",
            "address": "10.1.1.2",
            "seed_routers": ["10.1.1.1"],
            "transmit_t_ms": 10000,
            "services": [{
                "service": "standard 0", "view_change_number": 3,
                "routers": [{"address": "10.1.1.1", "router_id": "10.1.1.1", "receive_id": 5,
                             "change_number": 2, "last_i_see_you_age_ms": 800,
                             "state": "joined", "reason": null,
                             "assignment_key": {"address": "10.1.1.2", "change_number": 1},
                             "forwarding": "gre", "assignment": "hash",
                             "packet_return": "gre"}],
                "caches_seen": ["10.1.1.2"], "designated": true,
                "designated_cache": "10.1.1.2",
                "assignment_key": {"address": "10.1.1.2", "change_number": 1},
                "buckets": [{"addr": "10.1.1.2", "buckets": 256}]
            }],
            "driver": {},
            "packet_return": {"received": 5, "accepted": 1, "returned": 4,
                              "returned_by_reason": {"source": 3, "destination": 1, "load": 0}},
            "tun": {"name": "wccp0", "address": "169.254.87.1", "accept_from": ["10.1.1.1/32"],
                    "decapsulated": 3, "written": 2, "write_errors": 0, "unknown_peer": 1,
                    "last_error": null, "rp_filter_error": null}
        });
        let r: Response = serde_json::from_value(v).unwrap();
        let out = serde_json::to_value(&r).unwrap();
        assert_eq!(out["role"], "cache");
        assert_eq!(out["address"], "10.1.1.2");
        assert_eq!(out["services"][0]["routers"][0]["state"], "joined");
        // Negotiated methods travel by name, as the configuration spells them.
        let link = &out["services"][0]["routers"][0];
        for (key, name) in [
            ("forwarding", "gre"),
            ("assignment", "hash"),
            ("packet_return", "gre"),
        ] {
            assert_eq!(link[key], name, "{key}");
        }
        assert_eq!(out["packet_return"]["returned_by_reason"]["source"], 3);
        assert_eq!(out["tun"]["written"], 2);
        assert_eq!(out["tun"]["accept_from"][0], "10.1.1.1/32");
        let mut text = Vec::new();
        crate::daemon::render(&r, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        for want in [
            "Global WCCP information (cache):",
            "Cache Identifier:                     10.1.1.2",
            "Service Identifier: web-cache",
            "Designated Cache:                     10.1.1.2 (this cache)",
            "Buckets:                              10.1.1.2 -> 256",
            "10.1.1.1             state joined  receive id 5  change 2",
            "            return: gre",
            "4 returned (source 3, destination 1, load 0)",
            "TUN decapsulation (wccp0 169.254.87.1/32):",
            "3 decapsulated, 2 written to TUN, 0 write errors",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }
}
