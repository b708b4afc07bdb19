//! The router's `dataplane:` section and the services' `redirect_list`, validated into
//! [`crate::model::Dataplane`] and [`crate::model::RedirectRule`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use assign::method::Named as _;

use super::{ipv4, names, opt, req, Ctx, RawProtocol};
use crate::error::FieldPath;
use crate::model::*;
use crate::yaml::Value;

// ---- redirect lists ----------------------------------------------------------------------

const RULE_KEYS: &[&str] = &["action", "protocol", "src", "dst", "src_ports", "dst_ports"];

/// Takes the optional `redirect_list` of a router service entry.
pub(super) fn redirect_list(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    path: &FieldPath,
) -> Vec<RedirectRule> {
    let Some(list) = opt::<Vec<Value>>(ctx, m, path, "redirect_list") else {
        return Vec::new();
    };
    let lp = path.key("redirect_list");
    list.into_iter()
        .enumerate()
        .filter_map(|(i, v)| rule(ctx, v, &lp.index(i)))
        .collect()
}

fn rule(ctx: &mut Ctx<'_>, v: Value, path: &FieldPath) -> Option<RedirectRule> {
    let mut m = ctx.fields(v, path, RULE_KEYS)?;
    let action = match req::<String>(ctx, &mut m, path, "action").as_deref() {
        Some("permit") => Some(RuleAction::Permit),
        Some("deny") => Some(RuleAction::Deny),
        Some(other) => {
            ctx.err(
                &path.key("action"),
                format!("unknown action `{other}`, expected permit or deny"),
            );
            None
        }
        None => None,
    };
    // `None`: the protocol itself was wrong (already reported).
    let before = ctx.problems.len();
    let protocol: Option<Option<u8>> = match opt::<RawProtocol>(ctx, &mut m, path, "protocol") {
        None if ctx.problems.len() != before => None,
        None | Some(RawProtocol::Number(0)) => Some(None),
        Some(RawProtocol::Number(n)) => Some(Some(n)),
        Some(RawProtocol::Name(n)) => match n.as_str() {
            "tcp" => Some(Some(6)),
            "udp" => Some(Some(17)),
            "all" | "any" => Some(None),
            _ => {
                ctx.err(
                    &path.key("protocol"),
                    format!("unknown protocol `{n}`, expected tcp, udp, all or a number"),
                );
                None
            }
        },
    };
    let src = rule_prefix(ctx, &mut m, path, "src");
    let dst = rule_prefix(ctx, &mut m, path, "dst");
    let mut ports = |ctx: &mut Ctx<'_>, key: &str| -> Vec<u16> {
        let l: Vec<u16> = opt(ctx, &mut m, path, key).unwrap_or_default();
        if !l.is_empty() && protocol.is_some_and(|p| p != Some(6) && p != Some(17)) {
            ctx.err(&path.key(key), "ports need protocol tcp or udp");
        }
        l
    };
    let src_ports = ports(ctx, "src_ports");
    let dst_ports = ports(ctx, "dst_ports");
    Some(RedirectRule {
        action: action?,
        protocol: protocol?,
        src: src?,
        dst: dst?,
        src_ports,
        dst_ports,
    })
}

/// `src` / `dst` of a rule: a prefix or `any`, default `0.0.0.0/0`.
fn rule_prefix(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    key: &str,
) -> Option<Ipv4Net> {
    let any = Ipv4Net::default();
    let before = ctx.problems.len();
    match opt::<String>(ctx, m, path, key) {
        None if ctx.problems.len() != before => None,
        None => Some(any),
        Some(s) if s.trim() == "any" => Some(any),
        Some(s) => match parse_prefix(&s) {
            Ok(p) => Some(p),
            Err(e) => {
                ctx.err(&path.key(key), format!("bad prefix `{s}`: {e}"));
                None
            }
        },
    }
}

// ---- the dataplane section ---------------------------------------------------------------

const DATAPLANE_KEYS: &[&str] = &[
    "eal",
    "capture",
    "workers",
    "mbufs",
    "idle_backoff",
    "ports",
    "routes",
    "neighbours",
];
const PORT_KEYS: &[&str] = &[
    "name",
    "device",
    "addresses",
    "mtu",
    "redirect",
    "exclude_in",
    "mac",
];

/// EAL arguments that name devices: ports are configured under `dataplane.ports` instead.
const DEVICE_EAL_ARGS: &[&str] = &["--vdev", "-a", "--allow"];

/// EAL arguments that forbid secondary processes, refused with `dataplane.capture`, and why.
const NO_CAPTURE_EAL_ARGS: &[(&str, &str)] = &[
    (
        "--in-memory",
        "keeps no shared runtime directory and no hugepage files, so dpdk-dumpcap cannot attach",
    ),
    (
        "--no-shconf",
        "turns off the shared runtime directory dpdk-dumpcap attaches through",
    ),
    (
        "--no-huge",
        "leaves nothing dpdk-dumpcap can map: a secondary process maps the primary's hugepage \
         files, so capture needs hugepages",
    ),
    (
        "--huge-unlink",
        "removes the hugepage files a secondary process (dpdk-dumpcap) maps",
    ),
    (
        "--huge-unlink=always",
        "removes the hugepage files a secondary process (dpdk-dumpcap) maps",
    ),
];

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    In,
    Out,
}

const DIRECTIONS: &[(&str, Direction)] = &[("in", Direction::In), ("out", Direction::Out)];

/// The outcome of validating the `dataplane:` section, with what the router section's checks
/// need even when the section has problems.
pub(super) struct Parsed {
    /// The section, when it has no problem.
    pub(super) dataplane: Option<Dataplane>,
    /// Every interface address that was understood.
    pub(super) addresses: Vec<InterfaceAddr>,
    /// Whether every port and interface address was understood (so "is not an address of any
    /// port" is a real finding, not a consequence of another problem).
    pub(super) complete: bool,
}

/// One port as far as it was understood.
struct Draft {
    name: Option<String>,
    device: Option<PortDevice>,
    /// Interface addresses with their index in the port's list.
    addresses: Vec<(usize, InterfaceAddr)>,
    /// Every address was understood.
    addresses_ok: bool,
    mtu: u16,
    redirect_in: bool,
    redirect_out: bool,
    exclude_in: bool,
    mac: Option<[u8; 6]>,
}

impl Draft {
    fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("dataplane.ports[{index}]"),
        }
    }
}

/// Validates the `dataplane:` section found at `path`.
pub(super) fn dataplane(ctx: &mut Ctx<'_>, v: Value, path: &FieldPath) -> Parsed {
    let before = ctx.problems.len();
    let mut out = Parsed {
        dataplane: None,
        addresses: Vec::new(),
        complete: false,
    };
    let Some(mut m) = ctx.fields(v, path, DATAPLANE_KEYS) else {
        return out;
    };
    let raw_eal: Vec<Value> = opt(ctx, &mut m, path, "eal").unwrap_or_default();
    // (index in the list, argument)
    let mut eal: Vec<(usize, String)> = Vec::new();
    for (i, v) in raw_eal.into_iter().enumerate() {
        // `-m 512` reads naturally in YAML: numbers are taken as their text.
        match v {
            Value::String(a) => eal.push((i, a)),
            Value::Number(n) => eal.push((i, n.to_string())),
            other => ctx.err(
                &path.key("eal").index(i),
                format!("expected a string, found {}", super::describe(&other)),
            ),
        }
    }
    for (i, a) in &eal {
        let i = *i;
        if a.is_empty() {
            ctx.err(&path.key("eal").index(i), "empty EAL argument");
        } else if names_a_device(a) {
            ctx.err(
                &path.key("eal").index(i),
                format!("`{a}`: ports are given under dataplane.ports, not as EAL arguments"),
            );
        }
    }
    let capture = opt(ctx, &mut m, path, "capture").unwrap_or(false);
    if capture {
        for (i, a) in &eal {
            if let Some((_, why)) = NO_CAPTURE_EAL_ARGS.iter().find(|(arg, _)| a == arg) {
                ctx.err(
                    &path.key("eal").index(*i),
                    format!("`{a}` {why} (dataplane.capture is on): remove it or turn capture off"),
                );
            }
        }
    }
    let workers = match opt::<i64>(ctx, &mut m, path, "workers") {
        None => DEFAULT_WORKERS,
        Some(n) => match u16::try_from(n) {
            Ok(w) if (WORKERS_RANGE.0..=WORKERS_RANGE.1).contains(&w) => w,
            _ => {
                ctx.err(
                    &path.key("workers"),
                    format!(
                        "{n} workers is outside {}..={}",
                        WORKERS_RANGE.0, WORKERS_RANGE.1
                    ),
                );
                DEFAULT_WORKERS
            }
        },
    };
    let mbufs = match opt::<u32>(ctx, &mut m, path, "mbufs") {
        Some(0) => {
            ctx.err(
                &path.key("mbufs"),
                "0 mbufs: omit the key to let the daemon size the pool",
            );
            None
        }
        n => n,
    };
    let idle_backoff = opt(ctx, &mut m, path, "idle_backoff").unwrap_or(false);

    let pp = path.key("ports");
    let list: Option<Vec<Value>> = req(ctx, &mut m, path, "ports");
    let mut complete = list.is_some();
    if list.as_ref().is_some_and(Vec::is_empty) {
        ctx.err(&pp, "at least one port is needed");
        complete = false;
    }
    let drafts: Vec<Draft> = list
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, v)| port(ctx, v, &pp.index(i)))
        .collect();
    complete &= drafts.iter().all(|d| d.addresses_ok);
    check_ports(ctx, &drafts, &pp);
    if let Some(&(i, _)) = eal.iter().find(|(_, a)| a == "--no-pci") {
        if let Some((j, d)) = drafts
            .iter()
            .enumerate()
            .find(|(_, d)| d.device.as_ref().is_some_and(PortDevice::is_pci))
        {
            ctx.err(
                &path.key("eal").index(i),
                format!(
                    "`--no-pci` would stop port {}'s PCI device from being probed",
                    d.label(j)
                ),
            );
        }
    }
    let connected: Vec<(String, InterfaceAddr)> = drafts
        .iter()
        .enumerate()
        .flat_map(|(j, d)| d.addresses.iter().map(move |(_, a)| (d.label(j), *a)))
        .collect();

    let routes = routes(ctx, &mut m, path, complete.then_some(&connected[..]));
    let neighbours = neighbours(ctx, &mut m, path, complete.then_some(&connected[..]));

    out.addresses = connected.into_iter().map(|(_, a)| a).collect();
    out.complete = complete;
    if ctx.problems.len() != before {
        return out;
    }
    let mut ports = Vec::new();
    for d in drafts {
        let (Some(name), Some(device)) = (d.name, d.device) else {
            return out;
        };
        ports.push(DataplanePort {
            name,
            device,
            addresses: d.addresses.into_iter().map(|(_, a)| a).collect(),
            mtu: d.mtu,
            redirect_in: d.redirect_in,
            redirect_out: d.redirect_out,
            exclude_in: d.exclude_in,
            mac: d.mac,
        });
    }
    out.dataplane = Some(Dataplane {
        eal: eal.into_iter().map(|(_, a)| a).collect(),
        capture,
        workers,
        mbufs,
        idle_backoff,
        ports,
        routes,
        neighbours,
    });
    out
}

/// Whether an EAL argument adds or allows a device (`--vdev`, `-a`, `--allow`, with the value
/// attached or not).
fn names_a_device(a: &str) -> bool {
    DEVICE_EAL_ARGS.contains(&a)
        || a.starts_with("--vdev=")
        || a.starts_with("--allow=")
        || (a.starts_with("-a") && !a.starts_with("--"))
}

fn port(ctx: &mut Ctx<'_>, v: Value, path: &FieldPath) -> Draft {
    let mut d = Draft {
        name: None,
        device: None,
        addresses: Vec::new(),
        addresses_ok: false,
        mtu: DEFAULT_MTU,
        redirect_in: false,
        redirect_out: false,
        exclude_in: false,
        mac: None,
    };
    let Some(mut m) = ctx.fields(v, path, PORT_KEYS) else {
        return d;
    };
    d.name = req::<String>(ctx, &mut m, path, "name").and_then(|n| {
        let ok = (1..=PORT_NAME_MAX).contains(&n.len())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            ctx.err(
                &path.key("name"),
                format!(
                    "port name `{n}` must be 1-{PORT_NAME_MAX} characters of A-Z, a-z, 0-9, `_` \
                     and `-`"
                ),
            );
        }
        ok.then_some(n)
    });
    d.device = req::<String>(ctx, &mut m, path, "device")
        .and_then(|s| device(ctx, &s, &path.key("device")));
    let ap = path.key("addresses");
    match req::<Vec<String>>(ctx, &mut m, path, "addresses") {
        Some(l) if l.is_empty() => ctx.err(&ap, "at least one interface address is needed"),
        Some(l) => {
            d.addresses_ok = true;
            for (k, s) in l.iter().enumerate() {
                match interface_addr(ctx, s, &ap.index(k)) {
                    Some(a) => d.addresses.push((k, a)),
                    None => d.addresses_ok = false,
                }
            }
        }
        None => {}
    }
    if let Some(n) = opt::<i64>(ctx, &mut m, path, "mtu") {
        let (lo, hi) = MTU_RANGE;
        match u16::try_from(n) {
            Ok(mtu) if (lo..=hi).contains(&mtu) => d.mtu = mtu,
            _ if n < i64::from(lo) => ctx.err(
                &path.key("mtu"),
                format!(
                    "mtu {n} is too small to carry GRE-redirected packets ({GRE_REDIRECT_OVERHEAD} \
                     octets of outer IPv4+GRE+redirect header are added); the minimum is {lo}"
                ),
            ),
            _ => ctx.err(
                &path.key("mtu"),
                format!("mtu {n} is above the largest supported, {hi}"),
            ),
        }
    }
    if let Some(l) = opt::<Vec<String>>(ctx, &mut m, path, "redirect") {
        let dirs = names(ctx, l, &path.key("redirect"), DIRECTIONS);
        d.redirect_in = dirs.contains(&Direction::In);
        d.redirect_out = dirs.contains(&Direction::Out);
    }
    d.exclude_in = opt(ctx, &mut m, path, "exclude_in").unwrap_or(false);
    d.mac = opt::<String>(ctx, &mut m, path, "mac").and_then(|s| mac(ctx, &s, &path.key("mac")));
    d
}

/// Duplicate names, shared devices and overlapping connected subnets.
fn check_ports(ctx: &mut Ctx<'_>, drafts: &[Draft], pp: &FieldPath) {
    for (j, d) in drafts.iter().enumerate() {
        let earlier = &drafts[..j];
        if let Some(n) = &d.name {
            if let Some(i) = earlier.iter().position(|e| e.name.as_ref() == Some(n)) {
                ctx.err(
                    &pp.index(j).key("name"),
                    format!("duplicate port name `{n}` (also dataplane.ports[{i}])"),
                );
            }
        }
        if let Some(dev) = &d.device {
            let same = |e: &Draft| e.device.as_ref().is_some_and(|x| x.name() == dev.name());
            if let Some(i) = earlier.iter().position(same) {
                ctx.err(
                    &pp.index(j).key("device"),
                    format!(
                        "device `{}` is already used by port {}",
                        dev.name(),
                        drafts[i].label(i)
                    ),
                );
            }
        }
        for &(k, a) in &d.addresses {
            // Earlier addresses: every address of earlier ports, then this port's earlier ones.
            let prior = earlier
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.addresses.iter().map(move |(_, b)| (i, *b)))
                .chain(
                    d.addresses
                        .iter()
                        .filter(|(x, _)| *x < k)
                        .map(|(_, b)| (j, *b)),
                );
            let hit = prior.into_iter().find(|(_, b)| {
                b.contains(a.subnet().network()) || a.contains(b.subnet().network())
            });
            if let Some((i, b)) = hit {
                ctx.err(
                    &pp.index(j).key("addresses").index(k),
                    format!(
                        "overlapping addresses: ports {} ({b}) and {} ({a})",
                        drafts[i].label(i),
                        d.label(j)
                    ),
                );
            }
        }
    }
}

/// The port whose connected subnet holds `ip`, and whether `ip` is that port's own address.
fn connected_to(connected: &[(String, InterfaceAddr)], ip: Ipv4Addr) -> Option<(&str, bool)> {
    connected
        .iter()
        .find(|(_, a)| a.contains(ip))
        .map(|(n, a)| (n.as_str(), a.addr == ip))
}

/// `dataplane.routes`; `connected` is `None` when the ports had problems (then the next hops
/// are not checked against them).
fn routes(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    connected: Option<&[(String, InterfaceAddr)]>,
) -> Vec<Route> {
    let rp = path.key("routes");
    let list: Vec<Value> = opt(ctx, m, path, "routes").unwrap_or_default();
    let mut out: Vec<Route> = Vec::new();
    let mut seen: Vec<(usize, Ipv4Net)> = Vec::new();
    for (j, v) in list.into_iter().enumerate() {
        let path = rp.index(j);
        let Some(mut r) = ctx.fields(v, &path, &["prefix", "via"]) else {
            continue;
        };
        let prefix =
            req::<String>(ctx, &mut r, &path, "prefix").and_then(|s| match parse_prefix(&s) {
                Ok(p) => Some(p),
                Err(e) => {
                    ctx.err(&path.key("prefix"), format!("bad prefix `{s}`: {e}"));
                    None
                }
            });
        if let Some(p) = prefix {
            if let Some((i, _)) = seen.iter().find(|(_, q)| *q == p) {
                ctx.err(
                    &path.key("prefix"),
                    format!("duplicate route for {p} (also dataplane.routes[{i}])"),
                );
            }
            seen.push((j, p));
        }
        let via =
            req::<String>(ctx, &mut r, &path, "via").and_then(|s| ipv4(ctx, &s, &path.key("via")));
        if let (Some(via), Some(connected)) = (via, connected) {
            match connected_to(connected, via) {
                None => ctx.err(
                    &path.key("via"),
                    format!("next hop {via} is not inside the connected subnet of any port"),
                ),
                Some((port, true)) => ctx.err(
                    &path.key("via"),
                    format!("next hop {via} is this router's own address (port {port})"),
                ),
                Some(_) => {}
            }
        }
        if let (Some(prefix), Some(via)) = (prefix, via) {
            out.push(Route { prefix, via });
        }
    }
    out
}

/// `dataplane.neighbours`; `connected` as for [`routes`].
fn neighbours(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    connected: Option<&[(String, InterfaceAddr)]>,
) -> Vec<Neighbour> {
    let np = path.key("neighbours");
    let list: Vec<Value> = opt(ctx, m, path, "neighbours").unwrap_or_default();
    let mut out = Vec::new();
    let mut seen: Vec<(usize, Ipv4Addr)> = Vec::new();
    for (j, v) in list.into_iter().enumerate() {
        let path = np.index(j);
        let Some(mut n) = ctx.fields(v, &path, &["address", "mac"]) else {
            continue;
        };
        let address = req::<String>(ctx, &mut n, &path, "address")
            .and_then(|s| ipv4(ctx, &s, &path.key("address")));
        if let Some(a) = address {
            if let Some((i, _)) = seen.iter().find(|(_, b)| *b == a) {
                ctx.err(
                    &path.key("address"),
                    format!("duplicate neighbour {a} (also dataplane.neighbours[{i}])"),
                );
            } else if let Some(connected) = connected {
                match connected_to(connected, a) {
                    None => ctx.err(
                        &path.key("address"),
                        format!("neighbour {a} is not inside the connected subnet of any port"),
                    ),
                    Some((port, true)) => ctx.err(
                        &path.key("address"),
                        format!("neighbour {a} is this router's own address (port {port})"),
                    ),
                    Some(_) => {}
                }
            }
            seen.push((j, a));
        }
        let mac =
            req::<String>(ctx, &mut n, &path, "mac").and_then(|s| mac(ctx, &s, &path.key("mac")));
        if let (Some(address), Some(mac)) = (address, mac) {
            out.push(Neighbour { address, mac });
        }
    }
    out
}

/// Checks of the router section that need the data plane: with the `dpdk` control transport
/// the section is required and every router address must be a port's address. `addresses_exact`
/// says `addresses` holds every configured router address at its configured index.
pub(super) fn check_router(
    ctx: &mut Ctx<'_>,
    router: &FieldPath,
    control: &Control,
    addresses: &[Ipv4Addr],
    addresses_exact: bool,
    dataplane: Option<&Parsed>,
) {
    if control.transport != ControlTransport::Dpdk {
        return;
    }
    let Some(dp) = dataplane else {
        ctx.err(
            &router.key("control").key("transport"),
            "the dpdk transport needs a `dataplane` section (its ports carry the control traffic)",
        );
        return;
    };
    if !dp.complete || !addresses_exact {
        return;
    }
    for (i, a) in addresses.iter().enumerate() {
        if !dp.addresses.iter().any(|p| p.addr == *a) {
            ctx.err(
                &router.key("addresses").index(i),
                format!("router address {a} is not an address of any dataplane port"),
            );
        }
    }
}

// ---- leaves ------------------------------------------------------------------------------

/// `address/len` with host bits (the port's own address and its connected subnet).
fn interface_addr(ctx: &mut Ctx<'_>, s: &str, path: &FieldPath) -> Option<InterfaceAddr> {
    let Some((a, l)) = s.split_once('/') else {
        ctx.err(
            path,
            format!("`{s}` needs a prefix length: an interface address is address/len, e.g. 10.0.1.1/24"),
        );
        return None;
    };
    let addr = ipv4(ctx, a, path)?;
    let len = match l.trim().parse::<u8>() {
        Ok(n) if (1..=32).contains(&n) => n,
        _ => {
            ctx.err(path, format!("prefix length `{l}` is not 1-32"));
            return None;
        }
    };
    let ia = InterfaceAddr { addr, len };
    if len <= 30 {
        let net = ia.subnet();
        if addr == net.network() {
            ctx.err(
                path,
                format!(
                    "`{s}` is the subnet's network address; an interface address is the port's \
                     own address (e.g. {}/{len})",
                    Ipv4Addr::from(u32::from(addr) + 1)
                ),
            );
            return None;
        }
        if addr == net.broadcast() {
            ctx.err(path, format!("`{s}` is the subnet's broadcast address"));
            return None;
        }
    }
    Some(ia)
}

/// A port device: a PCI address or a supported DPDK virtual device.
fn device(ctx: &mut Ctx<'_>, s: &str, path: &FieldPath) -> Option<PortDevice> {
    let spec = s.trim();
    let (name, args) = match spec.split_once(',') {
        Some((n, a)) => (n, Some(a)),
        None => (spec, None),
    };
    let dev = if let Some(pci) = pci_address(name) {
        let Ok(pci) = pci else {
            ctx.err(
                path,
                format!(
                    "`{name}` is not a PCI address: expected dddd:bb:dd.f or bb:dd.f in hex \
                     (device 00-1f, function 0-7)"
                ),
            );
            return None;
        };
        PortDevice::Pci(match args {
            Some(a) => format!("{pci},{a}"),
            None => pci,
        })
    } else if VDEV_KINDS.iter().any(|k| {
        name.strip_prefix(k)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
    }) {
        PortDevice::Vdev(spec.to_string())
    } else {
        ctx.err(
            path,
            format!(
                "unknown port device `{spec}`: expected a PCI address (0000:03:00.0 or 03:00.0) or \
                 a DPDK virtual device {} (with an optional number and ,key=value arguments)",
                VDEV_KINDS.join(", ")
            ),
        );
        return None;
    };
    for a in args.into_iter().flat_map(|a| a.split(',')) {
        let ok = a.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) && !a.chars().any(char::is_whitespace);
        if !ok {
            ctx.err(
                path,
                format!("bad device argument `{a}` in `{spec}`: expected key=value"),
            );
            return None;
        }
    }
    Some(dev)
}

/// `None`: not PCI-shaped at all; `Some(Err)`: PCI-shaped but invalid; `Some(Ok)`: the address
/// normalised to `dddd:bb:dd.f`.
fn pci_address(name: &str) -> Option<Result<String, ()>> {
    let shaped = name.contains(':')
        && name.contains('.')
        && name
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    if !shaped {
        return None;
    }
    let hex = |s: &str, width: usize| -> Result<u32, ()> {
        if s.len() == width && s.chars().all(|c| c.is_ascii_hexdigit()) {
            u32::from_str_radix(s, 16).map_err(|_| ())
        } else {
            Err(())
        }
    };
    let parts: Vec<&str> = name.split(':').collect();
    let (domain, bus, rest) = match parts[..] {
        [d, b, r] => (hex(d, 4), b, r),
        [b, r] => (Ok(0), b, r),
        _ => return Some(Err(())),
    };
    Some((|| {
        let (dev, func) = rest.split_once('.').ok_or(())?;
        let (domain, bus, dev, func) = (domain?, hex(bus, 2)?, hex(dev, 2)?, hex(func, 1)?);
        if dev > 0x1f || func > 7 {
            return Err(());
        }
        Ok(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func}"))
    })())
}

/// A unicast MAC address: six hex pairs separated by `:`.
fn mac(ctx: &mut Ctx<'_>, s: &str, path: &FieldPath) -> Option<[u8; 6]> {
    let Some(mac) = parse_mac(s.trim()) else {
        ctx.err(
            path,
            format!(
                "`{s}` is not a MAC address: expected six hex pairs separated by `:`, e.g. \
                 02:00:00:00:00:01"
            ),
        );
        return None;
    };
    if mac[0] & 1 != 0 {
        ctx.err(
            path,
            format!("`{s}` is a multicast MAC address; a unicast one is needed"),
        );
        return None;
    }
    if mac == [0; 6] {
        ctx.err(path, format!("`{s}` is the all-zero MAC address"));
        return None;
    }
    Some(mac)
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

// ---- static assignment -------------------------------------------------------------------

/// Takes the optional `static_assignment` of a router service entry.
pub(super) fn static_assignment(
    ctx: &mut Ctx<'_>,
    m: &mut BTreeMap<String, Value>,
    path: &FieldPath,
    has_definition: bool,
) -> Option<StaticAssignment> {
    let v = opt::<Value>(ctx, m, path, "static_assignment")?;
    let sp = path.key("static_assignment");
    let mut f = ctx.fields(v, &sp, &["caches", "forwarding"])?;
    let caches: Vec<Ipv4Addr> = req::<Vec<String>>(ctx, &mut f, &sp, "caches")
        .map(|l| {
            l.iter()
                .enumerate()
                .filter_map(|(i, s)| ipv4(ctx, s, &sp.key("caches").index(i)))
                .collect()
        })
        .unwrap_or_default();
    if caches.is_empty() || caches.len() > STATIC_CACHES_MAX {
        ctx.err(
            &sp.key("caches"),
            format!("give 1 to {STATIC_CACHES_MAX} cache addresses"),
        );
    }
    let forwarding = match opt::<String>(ctx, &mut f, &sp, "forwarding") {
        None => Method::Gre,
        Some(name) => Method::from_name(&name).unwrap_or_else(|| {
            ctx.err(
                &sp.key("forwarding"),
                format!("unknown forwarding method `{name}`, expected gre or l2"),
            );
            Method::Gre
        }),
    };
    if !has_definition {
        ctx.err(
            &sp,
            "a static assignment needs the service's definition (a standard service, or a dynamic one with protocol and ports)",
        );
    }
    Some(StaticAssignment { caches, forwarding })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        assert_eq!(pci_address("0000:03:00.0"), Some(Ok("0000:03:00.0".into())));
        assert_eq!(pci_address("03:00.1"), Some(Ok("0000:03:00.1".into())));
        assert_eq!(pci_address("0000:AF:1F.7"), Some(Ok("0000:af:1f.7".into())));
        assert_eq!(pci_address("0000:03:20.0"), Some(Err(())));
        assert_eq!(pci_address("0000:03:00.8"), Some(Err(())));
        assert_eq!(pci_address("3:00.0"), Some(Err(())));
        assert_eq!(pci_address("net_tap0"), None);
        assert_eq!(pci_address("eth0"), None);
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:aB:00:01"), Some([2, 0, 0, 0xab, 0, 1]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:01:02"), None);
        assert_eq!(parse_mac("02-00-00-00-00-01"), None);
        assert_eq!(parse_mac("+2:00:00:00:00:01"), None);
        assert_eq!(parse_mac("002:00:00:00:00:1"), None);
    }

    #[test]
    fn device_eal_arguments() {
        for a in [
            "--vdev",
            "-a",
            "--allow",
            "--vdev=net_tap0",
            "-a0000:03:00.0",
        ] {
            assert!(names_a_device(a), "{a}");
        }
        for a in [
            "--in-memory",
            "--file-prefix",
            "--no-pci",
            "-l",
            "--allow-x",
        ] {
            assert!(!names_a_device(a), "{a}");
        }
    }
}
