//! `wccpd explain`: what the data plane does with one flow, and why, decided by the pipeline's
//! own steps on the published [`Tables`]: the address checks of `classify`, the route
//! ([`Tables::route`]), the redirection gate ([`pipeline::redirect_applies`], member caches),
//! the services in priority order with their redirect lists and table lookups
//! ([`pipeline::decide`], the function the pipeline itself calls) and the target's
//! encapsulation ([`pipeline::target_encap`]). Nothing here re-implements a decision; it only
//! names what the pipeline's helpers answered.
//!
//! Without a data plane (the socket transport) the tables hold no ports: the answer then comes
//! from the published redirection tables alone (`dataplane: false`), and says so.
//!
//! Not covered: the L2 return of an L2 cache (it depends on the frame's source MAC), TTL,
//! fragments and MTU.
//!
//! Off the packet path: it runs for one control-socket request at a time, on the control lcore
//! (between two iterations of its loop) or on the socket driver's thread, never on a worker, so
//! it may allocate the strings of its answer.

use std::net::Ipv4Addr;

use assign::hash::{alternate_bucket, primary_bucket, FlowKey};
use assign::table::{Distribution, ForwardingMethod};
use control::label::{self, Label};
use serde::{Deserialize, Serialize};
use wire::ipv4::{PROTOCOL_TCP, PROTOCOL_UDP};

use crate::pipeline::{self, Decision, Passed};
use crate::tables::{Encap, ServiceEntry, Tables};

/// The flow asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port (0 when not given).
    pub sport: u16,
    /// Destination port (0 when not given).
    pub dport: u16,
}

/// A service group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRef {
    /// Service id.
    pub id: u8,
    /// Dynamic or standard.
    pub dynamic: bool,
}

impl ServiceRef {
    fn of(s: &ServiceEntry) -> ServiceRef {
        ServiceRef {
            id: s.key.id,
            dynamic: s.key.dynamic,
        }
    }
}

impl std::fmt::Display for ServiceRef {
    /// `web-cache`, `standard N`, `dynamic N`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.dynamic, self.id) {
            (false, 0) => f.write_str("web-cache"),
            (false, n) => write!(f, "standard {n}"),
            (true, n) => write!(f, "dynamic {n}"),
        }
    }
}

/// One service on the way, in priority order, and what it said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStep {
    /// The service.
    pub service: ServiceRef,
    /// `no_table` (nothing published), `no_match` (protocol or ports), `denied` (redirect
    /// list) or `taken` (the service decided).
    #[serde(deserialize_with = "label::deserialize")]
    pub verdict: Label,
}

/// Why the services were not consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// The source is a member cache: its own traffic is never redirected.
    MemberCache,
    /// It arrives on an `exclude_in` port and would only be redirected `out`.
    ExcludeIn,
    /// Neither the arrival port redirects `in` nor the egress port `out`.
    NoRedirectDirection,
}

/// What happens to the flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Redirected to a cache (without a data plane: what the tables say would happen).
    Redirected {
        /// The service that takes it.
        service: ServiceRef,
        /// The cache.
        cache: Ipv4Addr,
        /// `gre` or `l2`.
        #[serde(deserialize_with = "label::deserialize")]
        method: Label,
        /// Primary hash bucket (0 under mask assignment).
        primary_bucket: u8,
        /// Alternate hash bucket.
        alternate_bucket: u8,
        /// The alternate bucket chose the cache.
        used_alternate: bool,
        /// The port it leaves through (with a data plane).
        port: Option<String>,
    },
    /// Routed untouched: the services are not consulted.
    Excluded {
        /// Why.
        why: Exclusion,
    },
    /// Routed untouched: no service with a table matches the protocol and ports.
    NoService,
    /// Routed untouched: a service matches but its redirect list denies the flow.
    Denied {
        /// The (last) service whose list denied it.
        service: ServiceRef,
    },
    /// Routed untouched: the service's table has no active cache for the flow.
    Unassigned {
        /// The service.
        service: ServiceRef,
        /// Primary hash bucket (hash tables).
        primary_bucket: Option<u8>,
        /// Alternate hash bucket (hash tables).
        alternate_bucket: Option<u8>,
        /// The bucket's state in words.
        detail: String,
    },
    /// Dropped: the service is closed and has no active cache for the flow.
    Closed {
        /// The service.
        service: ServiceRef,
        /// The bucket's state in words.
        detail: String,
    },
    /// The cache's MAC (or its next hop's) is not resolved yet: routed untouched, or dropped
    /// when the service is closed.
    TargetUnresolved {
        /// The service.
        service: ServiceRef,
        /// The cache.
        cache: Ipv4Addr,
        /// Dropped (closed service) rather than routed.
        closed: bool,
    },
    /// Dropped: no route to the destination.
    NoRoute,
    /// Addressed to the router itself (WCCP, ICMP echo, GRE from caches): never redirected.
    Local,
    /// Dropped: a group, broadcast or directed-broadcast address.
    NotRoutable,
}

/// The answer to `wccpd explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The flow.
    pub flow: Flow,
    /// `false`: no data plane here (socket transport), the answer comes from the published
    /// redirection tables alone: no ports, routes or neighbours are known.
    pub dataplane: bool,
    /// The arrival port (with a data plane).
    pub in_port: Option<String>,
    /// The arrival port was not given: the port of the route back to the source was taken.
    pub in_port_assumed: bool,
    /// The egress port of the route to the destination (with a data plane).
    pub out_port: Option<String>,
    /// The route's next hop (the destination itself on a connected subnet).
    pub next_hop: Option<Ipv4Addr>,
    /// The services the flow met, in priority order.
    pub services: Vec<ServiceStep>,
    /// What happens.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The answer in one sentence.
    pub summary: String,
}

/// Why a flow cannot be explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExplainError {
    /// No port of that name.
    UnknownPort(String),
    /// No port given and no route back to the source to take one from.
    NoInPort(Ipv4Addr),
}

impl std::fmt::Display for ExplainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExplainError::UnknownPort(p) => write!(f, "no data-plane port named `{p}`"),
            ExplainError::NoInPort(src) => write!(
                f,
                "no route back to {src} to tell its arrival port: give one with --in PORT"
            ),
        }
    }
}

impl std::error::Error for ExplainError {}

/// Explains `flow` arriving on the port named `in_port` (default: the port of the route back
/// to the source), against `t`. Tables without ports (the socket transport) explain from the
/// redirection tables alone and ignore `in_port`.
///
/// # Errors
/// An unknown port name, or no port given and none to be found.
pub fn explain(t: &Tables, in_port: Option<&str>, flow: Flow) -> Result<Explanation, ExplainError> {
    let dataplane = !t.ports.is_empty();
    let mut e = Explanation {
        flow,
        dataplane,
        in_port: None,
        in_port_assumed: false,
        out_port: None,
        next_hop: None,
        services: Vec::new(),
        outcome: Outcome::NoService,
        summary: String::new(),
    };
    let Flow {
        protocol,
        src,
        dst,
        sport,
        dport,
    } = flow;
    if dataplane {
        // `classify`: group and broadcast addresses, then our own.
        if dst.is_multicast()
            || dst.is_broadcast()
            || src.is_multicast()
            || t.is_directed_broadcast(u32::from(dst))
        {
            return Ok(finish(e, Outcome::NotRoutable));
        }
        if t.is_local(u32::from(dst)) {
            return Ok(finish(e, Outcome::Local));
        }
        let inp = match in_port {
            Some(name) => t
                .ports
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| ExplainError::UnknownPort(name.to_string()))?,
            None => {
                e.in_port_assumed = true;
                usize::from(t.route(src).ok_or(ExplainError::NoInPort(src))?.0)
            }
        };
        e.in_port = Some(t.ports[inp].name.clone());
        // `forward`: the route, then whether the services apply at all.
        let Some((eport, nh)) = t.route(dst) else {
            return Ok(finish(e, Outcome::NoRoute));
        };
        let (Some(ip), Some(ep)) = (t.ports.get(inp), t.ports.get(usize::from(eport))) else {
            return Ok(finish(e, Outcome::NoRoute));
        };
        e.out_port = Some(ep.name.clone());
        e.next_hop = Some(nh);
        if !pipeline::redirect_applies(ip, ep) {
            let why = if ep.redirect_out && ip.exclude_in {
                Exclusion::ExcludeIn
            } else {
                Exclusion::NoRedirectDirection
            };
            return Ok(finish(e, Outcome::Excluded { why }));
        }
        if t.is_member(u32::from(src)) {
            let why = Exclusion::MemberCache;
            return Ok(finish(e, Outcome::Excluded { why }));
        }
    }
    // Protocols without ports match services by protocol alone, as in the pipeline.
    let (sport, dport) = if matches!(protocol, PROTOCOL_TCP | PROTOCOL_UDP) {
        (sport, dport)
    } else {
        (0, 0)
    };
    let mut steps = Vec::new();
    let mut denied = None;
    let decision = pipeline::decide(t, protocol, src, dst, sport, dport, |s, why| {
        let verdict = match why {
            Passed::NoTable => "no_table",
            Passed::NoMatch => "no_match",
            Passed::Denied => {
                denied = Some(ServiceRef::of(s));
                "denied"
            }
        };
        steps.push(ServiceStep {
            service: ServiceRef::of(s),
            verdict,
        });
    });
    let outcome = match decision {
        Decision::Route => match denied {
            Some(service) => Outcome::Denied { service },
            None => Outcome::NoService,
        },
        Decision::Redirect {
            service: s,
            target,
            primary,
            alt,
            used_alt,
        } => {
            steps.push(taken(s));
            let cache = s
                .table
                .as_ref()
                .and_then(|tb| tb.targets().get(usize::from(target)))
                .map(|tg| (tg.addr, tg.method));
            let (cache, table_method) =
                cache.unwrap_or((Ipv4Addr::UNSPECIFIED, ForwardingMethod::Gre));
            let redirected = |method: Label, port: Option<String>| Outcome::Redirected {
                service: ServiceRef::of(s),
                cache,
                method,
                primary_bucket: primary,
                alternate_bucket: alt,
                used_alternate: used_alt,
                port,
            };
            match pipeline::target_encap(s, target) {
                Some(Encap::Gre { port, .. }) => redirected(
                    "gre",
                    t.ports.get(usize::from(*port)).map(|p| p.name.clone()),
                ),
                Some(Encap::L2 { port, .. }) => redirected(
                    "l2",
                    t.ports.get(usize::from(*port)).map(|p| p.name.clone()),
                ),
                None if !dataplane => redirected(table_method.as_str(), None),
                None => Outcome::TargetUnresolved {
                    service: ServiceRef::of(s),
                    cache,
                    closed: closed(s),
                },
            }
        }
        Decision::Unassigned { service: s } => {
            steps.push(taken(s));
            let (primary, alt, detail) = bucket_detail(
                s,
                FlowKey::new(u32::from(src), u32::from(dst), sport, dport),
            );
            if closed(s) {
                Outcome::Closed {
                    service: ServiceRef::of(s),
                    detail,
                }
            } else {
                Outcome::Unassigned {
                    service: ServiceRef::of(s),
                    primary_bucket: primary,
                    alternate_bucket: alt,
                    detail,
                }
            }
        }
    };
    e.services = steps;
    Ok(finish(e, outcome))
}

fn taken(s: &ServiceEntry) -> ServiceStep {
    ServiceStep {
        service: ServiceRef::of(s),
        verdict: "taken",
    }
}

fn closed(s: &ServiceEntry) -> bool {
    s.table.as_ref().is_some_and(|t| t.closed())
}

/// The flow's buckets and why the table has no active cache for it.
fn bucket_detail(s: &ServiceEntry, key: FlowKey) -> (Option<u8>, Option<u8>, String) {
    let Some(table) = &s.table else {
        return (None, None, "no table".into());
    };
    let name = |i: Option<u8>| {
        i.and_then(|i| table.targets().get(usize::from(i)))
            .map(|tg| (tg.addr, tg.drained))
    };
    match table.distribution() {
        Distribution::Hash { buckets } => {
            let flags = table.service().flags;
            let (p, a) = (primary_bucket(flags, &key), alternate_bucket(flags, &key));
            let e = buckets[usize::from(p)];
            let (which, entry) = if e.alt() {
                ("its alternate bucket", buckets[usize::from(a)])
            } else {
                ("its bucket", e)
            };
            let detail = match name(entry.target()) {
                None => format!("{which} ({}) is unassigned", if e.alt() { a } else { p }),
                Some((addr, true)) => format!(
                    "{which} ({}) belongs to {addr}, which left the group (drained)",
                    if e.alt() { a } else { p }
                ),
                Some((addr, false)) => format!("{which} belongs to {addr}"),
            };
            (Some(p), Some(a), detail)
        }
        Distribution::Mask(_) => (
            None,
            None,
            "no mask/value set gives it an active cache".into(),
        ),
        Distribution::Empty => (None, None, "the table assigns nothing yet".into()),
    }
}

/// Sets the outcome and writes the summary.
fn finish(mut e: Explanation, outcome: Outcome) -> Explanation {
    let f = e.flow;
    let proto = match f.protocol {
        PROTOCOL_TCP => "tcp".to_string(),
        PROTOCOL_UDP => "udp".to_string(),
        n => format!("protocol {n}"),
    };
    let flow = format!("{proto} {}:{} -> {}:{}", f.src, f.sport, f.dst, f.dport);
    let route = match (&e.out_port, e.next_hop) {
        (Some(port), Some(nh)) if nh != f.dst => format!(" out of port {port} via {nh}"),
        (Some(port), _) => format!(" out of port {port}"),
        _ => String::new(),
    };
    let s = match &outcome {
        Outcome::Redirected {
            service,
            cache,
            method,
            primary_bucket,
            alternate_bucket,
            used_alternate,
            port,
        } => {
            let bucket = if *used_alternate {
                format!("alternate bucket {alternate_bucket}")
            } else {
                format!("bucket {primary_bucket}")
            };
            let verb = if e.dataplane {
                "is redirected"
            } else {
                "would be redirected"
            };
            let via = port
                .as_ref()
                .map(|p| format!(" out of port {p}"))
                .unwrap_or_default();
            format!(
                "{flow} {verb} by service {service} ({bucket}) to cache {cache} by {method}{via}"
            )
        }
        Outcome::Excluded { why } => {
            let why = match why {
                Exclusion::MemberCache => {
                    "its source is a member cache (a cache's own traffic is never redirected)"
                }
                Exclusion::ExcludeIn => {
                    "it arrives on an exclude_in port and the egress port redirects only out"
                }
                Exclusion::NoRedirectDirection => {
                    "neither its arrival port redirects in nor its egress port out"
                }
            };
            format!("{flow} is routed untouched{route}: {why}")
        }
        Outcome::NoService => {
            format!("{flow} is routed untouched{route}: no service with a published table matches its protocol and ports")
        }
        Outcome::Denied { service } => format!(
            "{flow} is routed untouched{route}: the redirect list of service {service} denies it"
        ),
        Outcome::Unassigned {
            service, detail, ..
        } => format!("{flow} is routed untouched{route}: service {service} takes it but {detail}"),
        Outcome::Closed { service, detail } => {
            format!("{flow} is dropped: service {service} is closed and {detail}")
        }
        Outcome::TargetUnresolved {
            service,
            cache,
            closed,
        } => {
            let fate = if *closed {
                "dropped (closed service)".to_string()
            } else {
                format!("routed untouched{route}")
            };
            format!("{flow} is {fate}: service {service} sends it to cache {cache}, whose MAC is not resolved (ARP)")
        }
        Outcome::NoRoute => format!("{flow} is dropped: no route to {}", f.dst),
        Outcome::Local => format!("{flow} is for the router itself: never redirected"),
        Outcome::NotRoutable => {
            format!("{flow} is dropped: a group or broadcast address is not routed")
        }
    };
    e.summary = if e.dataplane {
        s
    } else {
        format!(
            "{s} (no data plane here: from the published tables alone, without ports or routes)"
        )
    };
    e.outcome = outcome;
    e
}
