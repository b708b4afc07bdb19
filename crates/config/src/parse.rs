//! Raw serde structures and their validation into [`crate::model`]. Every problem is collected
//! (with its field path and position) before failing.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use assign::method::Named;

use crate::error::{FieldPath, Problem, Segment};
use crate::locate::locate;
use crate::model::*;
use crate::yaml::{self, Value};

mod dataplane;
mod health;

/// Collects problems while validating one document.
pub(crate) struct Ctx<'a> {
    text: &'a str,
    pub(crate) problems: Vec<Problem>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Ctx {
            text,
            problems: Vec::new(),
        }
    }

    /// Records a problem at `path`, locating the key in the text.
    pub(crate) fn err(&mut self, path: &FieldPath, message: impl Into<String>) {
        let pos = locate(self.text, &path.0);
        self.problems.push(Problem {
            path: path.clone(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message: message.into(),
        });
    }

    /// Deserializes `value` (found at `path`) into `T`, recording a problem on failure.
    fn de<T: DeserializeOwned>(&mut self, value: Value, path: &FieldPath) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut full = path.clone();
                for seg in e.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            full.0.push(Segment::Index(*index))
                        }
                        serde_path_to_error::Segment::Map { key } => {
                            full.0.push(Segment::Key(key.clone()))
                        }
                        serde_path_to_error::Segment::Enum { .. }
                        | serde_path_to_error::Segment::Unknown => {}
                    }
                }
                let msg = e.into_inner().to_string();
                if let Some(name) = unknown_field(&msg) {
                    full = full.key(&name);
                }
                self.err(&full, msg);
                None
            }
        }
    }

    /// Splits a mapping into its keys, reporting unknown keys and a non-mapping value.
    fn fields(
        &mut self,
        value: Value,
        path: &FieldPath,
        allowed: &[&str],
    ) -> Option<BTreeMap<String, Value>> {
        let Value::Mapping(map) = value else {
            let what = describe(&value);
            self.err(path, format!("expected a mapping, found {what}"));
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let Some(k) = k.as_str().map(str::to_string) else {
                self.err(
                    path,
                    format!("keys must be strings, found {}", describe(&k)),
                );
                continue;
            };
            if allowed.contains(&k.as_str()) {
                out.insert(k, v);
            } else {
                self.err(
                    &path.key(&k),
                    format!(
                        "unknown field `{k}`, expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(out)
    }
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Takes an optional field and deserializes it.
fn opt<T: DeserializeOwned>(
    ctx: &mut Ctx<'_>,
    map: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    key: &str,
) -> Option<T> {
    let v = map.remove(key)?;
    if v.is_null() {
        return None;
    }
    ctx.de(v, &path.key(key))
}

/// Takes a required field.
fn req<T: DeserializeOwned>(
    ctx: &mut Ctx<'_>,
    map: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    key: &str,
) -> Option<T> {
    if !map.contains_key(key) {
        ctx.err(path, format!("missing field `{key}`"));
        return None;
    }
    opt(ctx, map, path, key)
}

// ---- raw leaf structs ---------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    transport: Option<String>,
    socket_path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimers {
    transmit_t_ms: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReturnPolicy {
    #[serde(default)]
    refuse_sources: Vec<String>,
    #[serde(default)]
    refuse_destinations: Vec<String>,
    max_load: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawProtocol {
    Number(u8),
    Name(String),
}

// ---- shared pieces -----------------------------------------------------------------------

fn ipv4(ctx: &mut Ctx<'_>, s: &str, path: &FieldPath) -> Option<Ipv4Addr> {
    match s.trim().parse::<Ipv4Addr>() {
        Ok(a) if a.is_unspecified() || a.is_multicast() || a.is_broadcast() => {
            ctx.err(path, format!("`{s}` is not a unicast address"));
            None
        }
        Ok(a) => Some(a),
        Err(_) if s.contains(':') => {
            ctx.err(
                path,
                format!("`{s}`: IPv6 is not supported (WCCP 2.01 address tables)"),
            );
            None
        }
        Err(_) => {
            ctx.err(path, format!("`{s}` is not an IPv4 address"));
            None
        }
    }
}

fn ipv4_list(ctx: &mut Ctx<'_>, list: Vec<String>, path: &FieldPath) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        if let Some(a) = ipv4(ctx, s, &path.index(i)) {
            if out.contains(&a) {
                ctx.err(&path.index(i), format!("`{a}` listed twice"));
            } else {
                out.push(a);
            }
        }
    }
    out
}

/// The required, non-empty address list `key` (each address once); `what` names one element
/// in the problem for an empty list.
fn required_ipv4_list(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    p: &FieldPath,
    key: &str,
    what: &str,
) -> Vec<Ipv4Addr> {
    match req::<Vec<String>>(ctx, m, p, key) {
        Some(l) if l.is_empty() => {
            ctx.err(&p.key(key), format!("at least one {what} is needed"));
            Vec::new()
        }
        Some(l) => ipv4_list(ctx, l, &p.key(key)),
        None => Vec::new(),
    }
}

fn prefixes(ctx: &mut Ctx<'_>, list: Vec<String>, path: &FieldPath) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match parse_prefix(s) {
            Ok(p) => out.push(p),
            Err(e) => ctx.err(&path.index(i), format!("bad prefix `{s}`: {e}")),
        }
    }
    out
}

fn log(ctx: &mut Ctx<'_>, v: Option<Value>, path: &FieldPath) -> Log {
    let Some(raw) = v.and_then(|v| ctx.de::<RawLog>(v, path)) else {
        return Log::default();
    };
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            ctx.err(
                &path.key("format"),
                format!("unknown log format `{other}`, expected text or json"),
            );
            LogFormat::Text
        }
    };
    let level = match raw.level.as_deref() {
        None | Some("info") => LogLevel::Info,
        Some("trace") => LogLevel::Trace,
        Some("debug") => LogLevel::Debug,
        Some("warn") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        Some(other) => {
            ctx.err(
                &path.key("level"),
                format!("unknown log level `{other}`, expected trace, debug, info, warn or error"),
            );
            LogLevel::Info
        }
    };
    Log { level, format }
}

fn control(ctx: &mut Ctx<'_>, v: Option<Value>, path: &FieldPath, default_socket: &str) -> Control {
    let mut c = Control {
        transport: ControlTransport::Socket,
        socket_path: PathBuf::from(default_socket),
    };
    let Some(raw) = v.and_then(|v| ctx.de::<RawControl>(v, path)) else {
        return c;
    };
    match raw.transport.as_deref() {
        None | Some("socket") => {}
        Some("dpdk") => c.transport = ControlTransport::Dpdk,
        Some(other) => ctx.err(
            &path.key("transport"),
            format!("unknown transport `{other}`, expected socket or dpdk"),
        ),
    }
    if let Some(p) = raw.socket_path {
        if p.as_os_str().is_empty() {
            ctx.err(&path.key("socket_path"), "empty path");
        } else {
            c.socket_path = p;
        }
    }
    c
}

fn transmit_t(ctx: &mut Ctx<'_>, v: Option<Value>, path: &FieldPath) -> u32 {
    let Some(raw) = v.and_then(|v| ctx.de::<RawTimers>(v, path)) else {
        return DEFAULT_TRANSMIT_T_MS;
    };
    match raw.transmit_t_ms {
        None => DEFAULT_TRANSMIT_T_MS,
        Some(t) if (TRANSMIT_T_RANGE_MS.0..=TRANSMIT_T_RANGE_MS.1).contains(&t) => t,
        Some(t) => {
            ctx.err(
                &path.key("transmit_t_ms"),
                format!(
                    "{t} ms is outside {}..={} ms",
                    TRANSMIT_T_RANGE_MS.0, TRANSMIT_T_RANGE_MS.1
                ),
            );
            DEFAULT_TRANSMIT_T_MS
        }
    }
}

fn password(ctx: &mut Ctx<'_>, p: Option<String>, path: &FieldPath) -> Option<Vec<u8>> {
    let p = p?;
    let b = p.into_bytes();
    if b.is_empty() || b.len() > 8 {
        ctx.err(
            path,
            format!(
                "password must be 1-8 octets (MD5 pads it to 8), this one has {}",
                b.len()
            ),
        );
        return None;
    }
    if b.contains(&0) {
        ctx.err(path, "password must not contain NUL");
        return None;
    }
    Some(b)
}

/// The value `table` gives `name`; `None` (with the problem recorded at `path`) when unknown.
fn lookup<T: Copy>(
    ctx: &mut Ctx<'_>,
    table: &[(&str, T)],
    name: &str,
    path: &FieldPath,
) -> Option<T> {
    let found = table.iter().find(|(n, _)| *n == name).map(|&(_, v)| v);
    if found.is_none() {
        let expected: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        ctx.err(
            path,
            format!(
                "unknown name `{name}`, expected one of: {}",
                expected.join(", ")
            ),
        );
    }
    found
}

/// Parses a list of capability names, each known and listed once.
fn names<T: Copy + PartialEq>(
    ctx: &mut Ctx<'_>,
    list: Vec<String>,
    path: &FieldPath,
    table: &[(&str, T)],
) -> Vec<T> {
    let mut out = Vec::new();
    for (i, n) in list.iter().enumerate() {
        match lookup(ctx, table, n, &path.index(i)) {
            Some(v) if !out.contains(&v) => out.push(v),
            Some(_) => ctx.err(&path.index(i), format!("`{n}` listed twice")),
            None => {}
        }
    }
    out
}

/// The name table of a [`Named`] type (the configuration's names for the shared types).
fn table<T: Named>() -> Vec<(&'static str, T)> {
    T::ALL.iter().map(|v| (v.name(), *v)).collect()
}

/// Keys shared by router and cache service entries (the service definition).
const DEFINITION_KEYS: &[&str] = &[
    "id",
    "type",
    "protocol",
    "ports",
    "ports_are",
    "hash",
    "alt_hash",
    "priority",
];

/// Pulls the definition keys out of a service entry and validates them.
/// `type` + `id` and, when given (always for caches), the full definition.
struct Head {
    dynamic: bool,
    id: u8,
    definition: Option<ServiceDefinition>,
}

/// Pulls the definition keys out of a service entry and validates them. With `learnable`, a
/// dynamic service with none of the definition keys has no definition (learnt from caches).
fn head(
    ctx: &mut Ctx<'_>,
    map: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    learnable: bool,
) -> Option<Head> {
    if learnable
        && map.get("type").and_then(Value::as_str) == Some("dynamic")
        && !DEFINITION_KEYS[2..].iter().any(|k| map.contains_key(*k))
    {
        let id: u8 = req(ctx, map, path, "id")?;
        map.remove("type");
        return Some(Head {
            dynamic: true,
            id,
            definition: None,
        });
    }
    let d = definition(ctx, map, path)?;
    Some(Head {
        dynamic: d.dynamic,
        id: d.id,
        definition: Some(d),
    })
}

fn definition(
    ctx: &mut Ctx<'_>,
    map: &mut BTreeMap<String, Value>,
    path: &FieldPath,
) -> Option<ServiceDefinition> {
    let id: Option<u8> = req(ctx, map, path, "id");
    let ty: Option<String> = req(ctx, map, path, "type");
    let dynamic = match ty.as_deref() {
        Some("standard") => false,
        Some("dynamic") => true,
        Some(other) => {
            ctx.err(
                &path.key("type"),
                format!("unknown service type `{other}`, expected standard or dynamic"),
            );
            return None;
        }
        None => return None,
    };
    if !dynamic {
        let mut ok = true;
        for k in &DEFINITION_KEYS[2..] {
            if map.remove(*k).is_some() {
                ctx.err(
                    &path.key(k),
                    format!("`{k}` is fixed by the protocol for standard services; remove it"),
                );
                ok = false;
            }
        }
        let id = id?;
        if id != 0 {
            ctx.err(
                &path.key("id"),
                format!(
                    "standard service {id} does not exist (only 0, web-cache); use type: dynamic"
                ),
            );
            return None;
        }
        return ok.then(ServiceDefinition::web_cache);
    }
    let protocol = match req::<RawProtocol>(ctx, map, path, "protocol") {
        Some(RawProtocol::Number(n)) => Some(n),
        Some(RawProtocol::Name(n)) => match n.as_str() {
            "tcp" => Some(6),
            "udp" => Some(17),
            "all" | "any" => Some(0),
            _ => {
                ctx.err(
                    &path.key("protocol"),
                    format!("unknown protocol `{n}`, expected tcp, udp, all or a number"),
                );
                None
            }
        },
        None => None,
    };
    let ports: Vec<u16> = opt(ctx, map, path, "ports").unwrap_or_default();
    let mut ports_ok = true;
    if ports.len() > 8 {
        ctx.err(
            &path.key("ports"),
            format!("at most 8 ports per service, found {}", ports.len()),
        );
        ports_ok = false;
    }
    if ports.contains(&0) {
        ctx.err(&path.key("ports"), "port 0 cannot be matched");
        ports_ok = false;
    }
    if !ports.is_empty() && protocol.is_some_and(|p| p != 6 && p != 17) {
        ctx.err(&path.key("ports"), "ports need protocol tcp or udp");
        ports_ok = false;
    }
    let ports_are = match opt::<String>(ctx, map, path, "ports_are").as_deref() {
        None | Some("destination") => PortsAre::Destination,
        Some("source") => PortsAre::Source,
        Some(other) => {
            ctx.err(
                &path.key("ports_are"),
                format!("unknown value `{other}`, expected source or destination"),
            );
            PortsAre::Destination
        }
    };
    let hash = match opt::<Vec<String>>(ctx, map, path, "hash") {
        Some(l) => names(ctx, l, &path.key("hash"), &table())
            .into_iter()
            .collect(),
        None => HashFields::DST_IP,
    };
    let alt_hash = match opt::<Vec<String>>(ctx, map, path, "alt_hash") {
        Some(l) => names(ctx, l, &path.key("alt_hash"), &table())
            .into_iter()
            .collect(),
        None => HashFields::NONE,
    };
    let priority: u8 = opt(ctx, map, path, "priority").unwrap_or(0);
    if hash.is_empty() {
        ctx.err(&path.key("hash"), "at least one hash field is needed");
    }
    let id = id?;
    let protocol = protocol?;
    if !ports_ok {
        return None;
    }
    Some(ServiceDefinition {
        dynamic,
        id,
        priority,
        protocol,
        ports,
        ports_are,
        hash,
        alt_hash,
    })
}

/// The `services` list of a section: each entry parsed by `parse`, a service defined twice
/// (`key`: dynamic, id) reported at its `id`, and an empty list refused.
fn service_list<S>(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    p: &FieldPath,
    parse: fn(&mut Ctx<'_>, Value, &FieldPath) -> Option<S>,
    key: fn(&S) -> (bool, u8),
) -> Vec<S> {
    let sp = p.key("services");
    let list: Vec<Value> = req(ctx, m, p, "services").unwrap_or_default();
    let mut services = Vec::new();
    let mut seen = HashSet::new();
    for (i, v) in list.into_iter().enumerate() {
        let path = sp.index(i);
        let Some(s) = parse(ctx, v, &path) else {
            continue;
        };
        let (dynamic, id) = key(&s);
        if seen.insert((dynamic, id)) {
            services.push(s);
        } else {
            let kind = if dynamic { "dynamic" } else { "standard" };
            ctx.err(
                &path.key("id"),
                format!("service id conflict: {kind} service {id} is defined twice"),
            );
        }
    }
    if services.is_empty() && !ctx.problems.iter().any(|e| e.path.0.starts_with(&sp.0)) {
        ctx.err(&sp, "at least one service is needed");
    }
    services
}

/// The top-level section `name` of a document (`top`: its mapping) as a map of its `keys`, and
/// its path; `None` (with the problem recorded) when it is missing or not a mapping.
fn section(
    ctx: &mut Ctx<'_>,
    top: &mut BTreeMap<String, Value>,
    name: &str,
    keys: &[&str],
) -> Option<(FieldPath, BTreeMap<String, Value>)> {
    let root = FieldPath::default();
    let p = root.key(name);
    let Some(section) = top.remove(name) else {
        ctx.err(&root, format!("missing section `{name}`"));
        return None;
    };
    let m = ctx.fields(section, &p, keys)?;
    Some((p, m))
}

// ---- router ------------------------------------------------------------------------------

pub(crate) fn router(ctx: &mut Ctx<'_>, doc: Value) -> Option<RouterSettings> {
    let root = FieldPath::default();
    let mut top = ctx.fields(doc, &root, &["router", "log", "dataplane"])?;
    let log = log(ctx, top.remove("log"), &root.key("log"));
    let dp = top
        .remove("dataplane")
        .map(|v| dataplane::dataplane(ctx, v, &root.key("dataplane")));
    let (p, mut m) = section(
        ctx,
        &mut top,
        "router",
        &[
            "addresses",
            "control",
            "services",
            "timers",
            "check_all_services",
            "metrics",
        ],
    )?;
    let addresses = required_ipv4_list(ctx, &mut m, &p, "addresses", "router address");
    let ap = p.key("addresses");
    let addresses_exact = !ctx.problems.iter().any(|e| e.path.0.starts_with(&ap.0));
    let control = control(
        ctx,
        m.remove("control"),
        &p.key("control"),
        DEFAULT_SOCKET_PATH,
    );
    let transmit_t_ms = transmit_t(ctx, m.remove("timers"), &p.key("timers"));
    let check_all_services = opt(ctx, &mut m, &p, "check_all_services").unwrap_or(false);
    let metrics = metrics(ctx, &mut m, &p);
    dataplane::check_router(ctx, &p, &control, &addresses, addresses_exact, dp.as_ref());
    let services = service_list(ctx, &mut m, &p, router_service, |s| (s.dynamic, s.id));
    ctx.problems.is_empty().then_some(RouterSettings {
        addresses,
        control,
        services,
        transmit_t_ms,
        log,
        check_all_services,
        dataplane: dp.and_then(|d| d.dataplane),
        metrics,
    })
}

/// The optional `router.metrics` section: `{listen: ADDR:PORT, buckets: bool}`.
fn metrics(ctx: &mut Ctx<'_>, m: &mut BTreeMap<String, Value>, p: &FieldPath) -> Option<Metrics> {
    let v = opt::<Value>(ctx, m, p, "metrics")?;
    let mp = p.key("metrics");
    let mut f = ctx.fields(v, &mp, &["listen", "buckets"])?;
    let listen = req::<String>(ctx, &mut f, &mp, "listen").and_then(|s| match s
        .parse::<std::net::SocketAddr>()
    {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.err(
                &mp.key("listen"),
                format!("`{s}` is not an address:port (e.g. 127.0.0.1:9548)"),
            );
            None
        }
    })?;
    let buckets = opt(ctx, &mut f, &mp, "buckets").unwrap_or(true);
    Some(Metrics { listen, buckets })
}

fn router_service(ctx: &mut Ctx<'_>, v: Value, path: &FieldPath) -> Option<RouterService> {
    let mut allowed: Vec<&str> = DEFINITION_KEYS.to_vec();
    allowed.extend([
        "password",
        "allowed_caches",
        "closed",
        "forwarding",
        "assignment",
        "return",
        "redirect_list",
        "static_assignment",
    ]);
    let mut m = ctx.fields(v, path, &allowed)?;
    let head = head(ctx, &mut m, path, true);
    let password = {
        let p = opt(ctx, &mut m, path, "password");
        password(ctx, p, &path.key("password"))
    };
    let allowed_caches = opt::<Vec<String>>(ctx, &mut m, path, "allowed_caches")
        .map(|l| prefixes(ctx, l, &path.key("allowed_caches")))
        .unwrap_or_default();
    let closed = opt(ctx, &mut m, path, "closed").unwrap_or(false);
    let forwarding = method_list(ctx, &mut m, path, "forwarding", &table())
        .unwrap_or_else(|| vec![Method::Gre, Method::L2]);
    let assignment = method_list(ctx, &mut m, path, "assignment", &table())
        .unwrap_or_else(|| vec![AssignMethod::Hash, AssignMethod::Mask]);
    let return_methods = method_list(ctx, &mut m, path, "return", &table())
        .unwrap_or_else(|| vec![Method::Gre, Method::L2]);
    let redirect_list = dataplane::redirect_list(ctx, &mut m, path);
    let has_definition = head
        .as_ref()
        .is_some_and(|h| !h.dynamic || h.definition.is_some());
    let static_assignment = dataplane::static_assignment(ctx, &mut m, path, has_definition);
    let head = head?;
    Some(RouterService {
        dynamic: head.dynamic,
        id: head.id,
        definition: head.definition,
        password,
        allowed_caches,
        closed,
        forwarding,
        assignment,
        return_methods,
        redirect_list,
        static_assignment,
    })
}

/// An optional non-empty list of capability names; `None` when absent (use the default).
fn method_list<T: Copy + PartialEq>(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    key: &str,
    table: &[(&str, T)],
) -> Option<Vec<T>> {
    let list: Vec<String> = opt(ctx, m, path, key)?;
    if list.is_empty() {
        ctx.err(&path.key(key), "at least one method is needed");
    }
    Some(names(ctx, list, &path.key(key), table))
}

// ---- cache -------------------------------------------------------------------------------

pub(crate) fn cache(ctx: &mut Ctx<'_>, doc: Value) -> Option<CacheSettings> {
    let root = FieldPath::default();
    let mut top = ctx.fields(doc, &root, &["cache", "log"])?;
    let log = log(ctx, top.remove("log"), &root.key("log"));
    let (p, mut m) = section(
        ctx,
        &mut top,
        "cache",
        &[
            "address",
            "routers",
            "control",
            "services",
            "timers",
            "load_source",
            "tun",
            "health_check",
        ],
    )?;
    let address =
        req::<String>(ctx, &mut m, &p, "address").and_then(|s| ipv4(ctx, &s, &p.key("address")));
    let routers = required_ipv4_list(ctx, &mut m, &p, "routers", "router");
    if let Some(i) = routers.iter().position(|r| Some(*r) == address) {
        ctx.err(
            &p.key("routers").index(i),
            format!("{} is the cache's own address", routers[i]),
        );
    }
    let control = control(
        ctx,
        m.remove("control"),
        &p.key("control"),
        DEFAULT_CACHE_SOCKET_PATH,
    );
    let transmit_t_ms = transmit_t(ctx, m.remove("timers"), &p.key("timers"));
    let load_source: PathBuf =
        opt(ctx, &mut m, &p, "load_source").unwrap_or_else(|| PathBuf::from(DEFAULT_LOAD_SOURCE));
    let health_check = m
        .remove("health_check")
        .and_then(|v| health::health_check(ctx, v, &p.key("health_check")));
    let tun = m
        .remove("tun")
        .and_then(|v| cache_tun(ctx, v, &p.key("tun"), address, &routers));
    let services = service_list(ctx, &mut m, &p, cache_service, |s| {
        (s.definition.dynamic, s.definition.id)
    });
    let address = address?;
    ctx.problems.is_empty().then_some(CacheSettings {
        address,
        routers,
        control,
        services,
        transmit_t_ms,
        load_source,
        tun,
        health_check,
        log,
    })
}

/// `cache.tun`: a mapping (`{}` for every default). The name must be a usable interface name,
/// the address a unicast IPv4 other than the cache's own; `accept_from` defaults to the seed
/// routers.
fn cache_tun(
    ctx: &mut Ctx<'_>,
    v: Value,
    path: &FieldPath,
    cache_address: Option<Ipv4Addr>,
    routers: &[Ipv4Addr],
) -> Option<CacheTun> {
    if v.is_null() {
        ctx.err(
            path,
            "expected a mapping; write `tun: {}` for the defaults (name wccp0, address 169.254.87.1)",
        );
        return None;
    }
    let mut m = ctx.fields(v, path, &["name", "address", "accept_from"])?;
    let raw_name: Option<String> = opt(ctx, &mut m, path, "name");
    let raw_address: Option<String> = opt(ctx, &mut m, path, "address");
    let raw_accept: Option<Vec<String>> = opt(ctx, &mut m, path, "accept_from");
    let mut ok = true;
    let name = raw_name.unwrap_or_else(|| DEFAULT_TUN_NAME.to_string());
    // IFNAMSIZ is 16 including the NUL; the kernel refuses '/', ':' and white space
    // (dev_valid_name), and "." / "..".
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        ctx.err(
            &path.key("name"),
            format!(
                "`{name}` is not a valid interface name (1-15 octets, no '/', ':' or white space)"
            ),
        );
        ok = false;
    }
    let address = match raw_address {
        None => Some(DEFAULT_TUN_ADDRESS),
        Some(s) => ipv4(ctx, &s, &path.key("address")),
    };
    if address.is_some() && address == cache_address {
        ctx.err(
            &path.key("address"),
            "the TUN address must differ from cache.address (it is a /32 of its own, e.g. 169.254.87.1)",
        );
        ok = false;
    }
    let accept_from = match raw_accept {
        None => routers.iter().map(|&addr| Ipv4Net::from(addr)).collect(),
        Some(l) if l.is_empty() => {
            ctx.err(
                &path.key("accept_from"),
                "at least one prefix is needed (omit the key for the seed routers)",
            );
            ok = false;
            Vec::new()
        }
        Some(l) => prefixes(ctx, l, &path.key("accept_from")),
    };
    let address = address?;
    ok.then_some(CacheTun {
        name,
        address,
        accept_from,
    })
}

/// One name out of `table`; `None` when absent or unknown (the problem is recorded).
fn one<T: Copy>(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    key: &str,
    table: &[(&str, T)],
) -> Option<T> {
    let name = opt::<String>(ctx, m, path, key)?;
    lookup(ctx, table, &name, &path.key(key))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A single name or a preference list of names (most preferred first); `None` when absent or
/// when the single name is unknown (the problem is recorded).
fn preference<T: Copy + PartialEq>(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    key: &str,
    table: &[(&str, T)],
) -> Option<Vec<T>> {
    match opt::<OneOrMany>(ctx, m, path, key)? {
        OneOrMany::One(n) => {
            Some(names(ctx, vec![n], &path.key(key), table)).filter(|v| !v.is_empty())
        }
        OneOrMany::Many(l) => {
            if l.is_empty() {
                ctx.err(&path.key(key), "at least one method is needed");
            }
            Some(names(ctx, l, &path.key(key), table))
        }
    }
}

/// A cache's service group. Every key is read (and its problems recorded) before a bad
/// definition gives up; a key the file leaves out keeps the default of [`CacheService::new`].
fn cache_service(ctx: &mut Ctx<'_>, v: Value, path: &FieldPath) -> Option<CacheService> {
    let mut allowed: Vec<&str> = DEFINITION_KEYS.to_vec();
    allowed.extend([
        "weight",
        "password",
        "forwarding",
        "assignment",
        "return",
        "slow_start_s",
        "return_policy",
        "spread",
    ]);
    let mut m = ctx.fields(v, path, &allowed)?;
    let definition = definition(ctx, &mut m, path);
    let weight: Option<u16> = opt(ctx, &mut m, path, "weight");
    let password = {
        let p = opt(ctx, &mut m, path, "password");
        password(ctx, p, &path.key("password"))
    };
    let forwarding = preference(ctx, &mut m, path, "forwarding", &table());
    let assignment = preference(ctx, &mut m, path, "assignment", &table());
    let packet_return = preference(ctx, &mut m, path, "return", &table());
    let spread = one(ctx, &mut m, path, "spread", &table());
    let slow_start_s: Option<u32> = opt(ctx, &mut m, path, "slow_start_s");
    let return_policy = opt::<RawReturnPolicy>(ctx, &mut m, path, "return_policy")
        .map(|raw| return_policy(ctx, raw, &path.key("return_policy")));

    let mut s = CacheService::new(definition?);
    s.password = password;
    s.weight = weight.unwrap_or(s.weight);
    s.forwarding = forwarding.unwrap_or(s.forwarding);
    s.assignment = assignment.unwrap_or(s.assignment);
    s.packet_return = packet_return.unwrap_or(s.packet_return);
    s.spread = spread.unwrap_or(s.spread);
    if let Some(secs) = slow_start_s {
        s.slow_start = (secs > 0).then(|| SlowStart::over(Duration::from_secs(u64::from(secs))));
    }
    s.return_policy = return_policy.unwrap_or(s.return_policy);
    Some(s)
}

fn return_policy(ctx: &mut Ctx<'_>, raw: RawReturnPolicy, rp: &FieldPath) -> ReturnPolicy {
    let max_load = match raw.max_load {
        None => None,
        Some(n @ 1..=100) => Some(n),
        Some(n) => {
            ctx.err(
                &rp.key("max_load"),
                format!("{n} is not a percentage 1-100"),
            );
            None
        }
    };
    ReturnPolicy {
        refuse_sources: prefixes(ctx, raw.refuse_sources, &rp.key("refuse_sources")),
        refuse_destinations: prefixes(ctx, raw.refuse_destinations, &rp.key("refuse_destinations")),
        max_load,
        rewrite_destinations: Vec::new(),
    }
}

/// Parses YAML text into a generic value, mapping a syntax error to a located problem.
pub(crate) fn parse_value(ctx: &mut Ctx<'_>, text: &str) -> Option<Value> {
    match yaml::from_str::<Value>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let loc = e.location();
            ctx.problems.push(Problem {
                path: FieldPath::default(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: format!("YAML syntax: {e}"),
            });
            None
        }
    }
}
