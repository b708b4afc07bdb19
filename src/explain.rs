//! `wccpd explain <tcp|udp> <src[:port]> <dst[:port]> [--in PORT]`: asks the running router
//! what its data plane does with one flow, and why ([`dataplane::explain`], the pipeline's own
//! decision on the tables the workers read).
//!
//! The router answers the control-socket request `{"request":"explain",...}`: with the DPDK
//! transport on the control lcore, from the published tables; with the socket transport (no
//! data plane) from the redirection tables the control plane published, without ports
//! (`dataplane: false`, and the answer says so). One router runs per process: the answering
//! function is registered once ([`register`]) and found by the control socket.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use control::driver::LatestTables;
use dataplane::explain::{Explanation, Flow, Outcome};
use dataplane::tables::{compile, State, Topology};
use serde::{Deserialize, Serialize};

use crate::daemon::{self, Request, Response};

/// The request: the flow and, optionally, the port it arrives on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainRequest {
    /// The flow.
    pub flow: Flow,
    /// The arrival port's name (default: the port of the route back to the source).
    #[serde(default)]
    pub in_port: Option<String>,
}

type Answer = dyn Fn(ExplainRequest) -> Response + Send + Sync;

static EXPLAINER: OnceLock<Box<Answer>> = OnceLock::new();

/// Registers how this process answers [`Request::Explain`] (once; later calls are ignored).
pub fn register(f: impl Fn(ExplainRequest) -> Response + Send + Sync + 'static) {
    let _ = EXPLAINER.set(Box::new(f));
}

/// The answer to [`Request::Explain`] on the control socket.
pub fn answer(req: ExplainRequest) -> Response {
    match EXPLAINER.get() {
        Some(f) => f(req),
        None => Response::Error {
            error: "explain: this daemon is not a router".into(),
        },
    }
}

/// The socket transport's explainer: the configured services (order, redirect lists) and the
/// tables the control plane published in `tables`, compiled without ports.
pub fn register_socket(settings: &config::RouterSettings, tables: Arc<LatestTables>) {
    let topo = Topology {
        ports: Vec::new(),
        routes: Vec::new(),
        neighbours: Vec::new(),
        services: settings
            .services
            .iter()
            .map(|s| {
                let key = control::ServiceKey {
                    dynamic: s.dynamic,
                    id: s.id,
                };
                (key, s.redirect_list.clone())
            })
            .collect(),
        check_all: settings.check_all_services,
        router_id: settings
            .addresses
            .first()
            .copied()
            .unwrap_or(Ipv4Addr::UNSPECIFIED),
        statics: Default::default(),
    };
    register(move |req| {
        let mut state = State::default();
        for (key, table) in tables.snapshot() {
            if let Some(t) = table {
                state.redirect.insert(key, t);
            }
        }
        let t = compile(&topo, &state, 0).tables;
        match dataplane::explain::explain(&t, req.in_port.as_deref(), req.flow) {
            Ok(e) => Response::Explain(Box::new(e)),
            Err(e) => Response::Error {
                error: e.to_string(),
            },
        }
    });
}

/// `tcp`, `udp` or a protocol number.
fn protocol(s: &str) -> anyhow::Result<u8> {
    match s {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        n => n
            .parse()
            .with_context(|| format!("protocol `{n}`: expected tcp, udp or a number")),
    }
}

/// `a.b.c.d` or `a.b.c.d:port`.
fn endpoint(s: &str) -> anyhow::Result<(Ipv4Addr, u16)> {
    if let Ok(a) = s.parse::<SocketAddrV4>() {
        return Ok((*a.ip(), a.port()));
    }
    let a = s
        .parse::<Ipv4Addr>()
        .with_context(|| format!("`{s}`: expected an IPv4 address, optionally with :port"))?;
    Ok((a, 0))
}

/// Parses the command line's flow.
///
/// # Errors
/// A protocol or an endpoint that does not parse.
pub fn parse_flow(proto: &str, src: &str, dst: &str) -> anyhow::Result<Flow> {
    let protocol = protocol(proto)?;
    let (src, sport) = endpoint(src)?;
    let (dst, dport) = endpoint(dst)?;
    Ok(Flow {
        protocol,
        src,
        dst,
        sport,
        dport,
    })
}

/// `wccpd explain`: asks the router at `socket` and prints the answer.
///
/// # Errors
/// Bad arguments, no daemon, or the daemon's error (unknown port, not a router).
pub fn client(
    socket: &Path,
    flow: Flow,
    in_port: Option<String>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let response = daemon::request(socket, Request::Explain(ExplainRequest { flow, in_port }))?;
    let Response::Explain(e) = response else {
        anyhow::bail!("unexpected answer from {}", socket.display());
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &e)?;
        writeln!(out)?;
    } else {
        render(&e, out)?;
    }
    Ok(())
}

/// The explanation as text: the summary, then the steps.
///
/// # Errors
/// I/O errors from `out`.
pub fn render(e: &Explanation, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}", e.summary)?;
    if !e.dataplane {
        writeln!(
            out,
            "    (socket transport: no data plane, so no ports, routes or ARP were consulted)"
        )?;
    }
    if let Some(p) = &e.in_port {
        let how = if e.in_port_assumed {
            " (assumed: the port towards the source; give --in PORT to choose)"
        } else {
            ""
        };
        writeln!(out, "    arrives on:   {p}{how}")?;
    }
    if let (Some(p), Some(nh)) = (&e.out_port, e.next_hop) {
        writeln!(out, "    route:        out of {p}, next hop {nh}")?;
    }
    for s in &e.services {
        writeln!(
            out,
            "    service {:<12} {}",
            s.service.to_string(),
            s.verdict
        )?;
    }
    match &e.outcome {
        Outcome::Redirected {
            primary_bucket,
            alternate_bucket,
            used_alternate,
            cache,
            method,
            ..
        } => {
            writeln!(
                out,
                "    buckets:      primary {primary_bucket}, alternate {alternate_bucket}{}",
                if *used_alternate {
                    " (alternate used)"
                } else {
                    ""
                }
            )?;
            writeln!(out, "    cache:        {cache} ({method})")?;
        }
        Outcome::Unassigned {
            primary_bucket: Some(p),
            alternate_bucket: Some(a),
            ..
        } => writeln!(out, "    buckets:      primary {p}, alternate {a}")?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_parse() {
        let f = parse_flow("tcp", "10.0.0.1:40000", "192.0.2.1:80").unwrap();
        assert_eq!(
            f,
            Flow {
                protocol: 6,
                src: Ipv4Addr::new(10, 0, 0, 1),
                dst: Ipv4Addr::new(192, 0, 2, 1),
                sport: 40000,
                dport: 80
            }
        );
        let f = parse_flow("udp", "10.0.0.1", "192.0.2.1:53").unwrap();
        assert_eq!((f.protocol, f.sport, f.dport), (17, 0, 53));
        assert!(parse_flow("sctp", "10.0.0.1", "10.0.0.2").is_err());
        assert!(parse_flow("tcp", "host:80", "10.0.0.2").is_err());
    }

    #[test]
    fn request_on_the_wire() {
        let r = Request::Explain(ExplainRequest {
            flow: parse_flow("tcp", "10.0.0.1:1", "10.0.0.2:80").unwrap(),
            in_port: Some("client".into()),
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["request"], "explain");
        assert_eq!(v["flow"]["dport"], 80);
        assert_eq!(v["in_port"], "client");
        let back: Request = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
