//! The router's data plane (`dataplane:` section) and per-service redirect lists.

use std::fmt;
use std::net::Ipv4Addr;

use super::Ipv4Net;

/// Default number of worker lcores.
pub const DEFAULT_WORKERS: u16 = 1;
/// Smallest and largest number of worker lcores accepted.
pub const WORKERS_RANGE: (u16, u16) = (1, 64);
/// Default port MTU.
pub const DEFAULT_MTU: u16 = 1500;
/// Smallest and largest port MTU accepted. The smallest is the IPv4 minimum datagram every host
/// must accept; a GRE redirect adds 28 octets (outer IPv4 20, GRE 4, WCCP redirect header 4).
pub const MTU_RANGE: (u16, u16) = (576, 9600);
/// Octets a GRE redirect adds in front of the original packet: outer IPv4 (20), GRE (4) and
/// the WCCP redirect header (4).
pub const GRE_REDIRECT_OVERHEAD: u16 = 28;
/// Longest port name (the length of a Linux interface name).
pub const PORT_NAME_MAX: usize = 15;
/// DPDK virtual device drivers accepted in `dataplane.ports[].device`.
pub const VDEV_KINDS: &[&str] = &[
    "net_tap",
    "net_ring",
    "net_pcap",
    "net_null",
    "net_af_packet",
    "net_memif",
    "net_vhost",
];

/// What a redirect-list rule does with a packet it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Redirect the packet (if the service matches it).
    Permit,
    /// Do not redirect it with this service.
    Deny,
}

/// One rule of a service's redirect list (`router.services[].redirect_list[]`), like one line
/// of an IOS extended access list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectRule {
    /// Permit or deny.
    pub action: RuleAction,
    /// IP protocol matched; `None` = every protocol.
    pub protocol: Option<u8>,
    /// Source prefix matched (`0.0.0.0/0` = any).
    pub src: Ipv4Net,
    /// Destination prefix matched (`0.0.0.0/0` = any).
    pub dst: Ipv4Net,
    /// Source ports matched; empty = any. Non-empty only with protocol TCP or UDP.
    pub src_ports: Vec<u16>,
    /// Destination ports matched; empty = any. Non-empty only with protocol TCP or UDP.
    pub dst_ports: Vec<u16>,
}

impl RedirectRule {
    /// A rule with `action` that matches every packet.
    pub fn any(action: RuleAction) -> RedirectRule {
        let all = Ipv4Net::default();
        RedirectRule {
            action,
            protocol: None,
            src: all,
            dst: all,
            src_ports: Vec::new(),
            dst_ports: Vec::new(),
        }
    }

    /// Whether a packet with this protocol, addresses and ports matches the rule. Ports are
    /// only meaningful for TCP and UDP; pass 0 for other protocols.
    pub fn matches(&self, proto: u8, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> bool {
        self.protocol.is_none_or(|p| p == proto)
            && self.src.contains(&src)
            && self.dst.contains(&dst)
            && (self.src_ports.is_empty() || self.src_ports.contains(&sport))
            && (self.dst_ports.is_empty() || self.dst_ports.contains(&dport))
    }
}

/// Whether a redirect list lets a service redirect a packet: the first matching rule decides;
/// a non-empty list ends in an implicit deny; an empty list permits everything.
pub fn redirect_list_permits(
    rules: &[RedirectRule],
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) -> bool {
    if rules.is_empty() {
        return true;
    }
    rules
        .iter()
        .find(|r| r.matches(proto, src, dst, sport, dport))
        .is_some_and(|r| r.action == RuleAction::Permit)
}

/// An interface address `address/len`: the port's own address and its connected subnet (host
/// bits are the point here, unlike a prefix of the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceAddr {
    /// The port's own address.
    pub addr: Ipv4Addr,
    /// Length of the connected subnet, 1-32.
    pub len: u8,
}

impl InterfaceAddr {
    /// The connected subnet (the address with its host bits cleared).
    pub fn subnet(&self) -> Ipv4Net {
        // `len` is 1-32 once validated; a larger one (a hand-built value) counts as 32.
        Ipv4Net::new(self.addr, self.len.min(32)).map_or(Ipv4Net::from(self.addr), |n| n.trunc())
    }

    /// Whether `ip` lies inside the connected subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.subnet().contains(&ip)
    }
}

impl fmt::Display for InterfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The DPDK device behind a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortDevice {
    /// A PCI device, normalised to `dddd:bb:dd.f` (lower case, with domain), optionally
    /// followed by `,key=value` driver arguments. The daemon passes it to EAL as `-a`.
    Pci(String),
    /// A virtual device spec such as `net_tap0,iface=wc0`. The daemon passes it to EAL as
    /// `--vdev`.
    Vdev(String),
}

impl PortDevice {
    /// The whole spec, arguments included.
    pub fn spec(&self) -> &str {
        match self {
            PortDevice::Pci(s) | PortDevice::Vdev(s) => s,
        }
    }

    /// The device name: the spec without its `,key=value` arguments (`0000:03:00.0`,
    /// `net_tap0`). DPDK names the ethdev by it.
    pub fn name(&self) -> &str {
        let s = self.spec();
        s.split(',').next().unwrap_or(s)
    }

    /// Whether this is a PCI device.
    pub fn is_pci(&self) -> bool {
        matches!(self, PortDevice::Pci(_))
    }
}

impl fmt::Display for PortDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec())
    }
}

/// One data-plane port (`dataplane.ports[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplanePort {
    /// Unique name, 1-15 characters of `[A-Za-z0-9_-]`.
    pub name: String,
    /// The DPDK device.
    pub device: PortDevice,
    /// Interface addresses (at least one); their subnets are connected routes.
    pub addresses: Vec<InterfaceAddr>,
    /// MTU in octets, within [`MTU_RANGE`].
    pub mtu: u16,
    /// Redirect packets arriving on this port (IOS `ip wccp <svc> redirect in`).
    pub redirect_in: bool,
    /// Redirect packets leaving through this port (IOS `ip wccp <svc> redirect out`).
    pub redirect_out: bool,
    /// Packets arriving on this port are never redirected on egress through another port
    /// (IOS `ip wccp redirect exclude in`).
    pub exclude_in: bool,
    /// MAC address to set on the port; `None` keeps the device's own.
    pub mac: Option<[u8; 6]>,
}

/// A static route (`dataplane.routes[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub prefix: Ipv4Net,
    /// Next hop, inside a connected subnet of some port.
    pub via: Ipv4Addr,
}

/// A static ARP entry (`dataplane.neighbours[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The neighbour's address, inside a connected subnet of some port.
    pub address: Ipv4Addr,
    /// Its MAC address.
    pub mac: [u8; 6],
}

/// The router's DPDK data plane (`dataplane:` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataplane {
    /// Extra EAL arguments, passed after the ones the daemon builds (devices, `--no-pci`).
    pub eal: Vec<String>,
    /// Packet capture by `dpdk-dumpcap` (`dataplane.capture`): EAL keeps a shared runtime
    /// directory and hugepage files under a file prefix ([`Dataplane::file_prefix`]) so that
    /// secondary processes can attach, and the daemon starts DPDK's `rte_pdump` server. The
    /// parser refuses `--in-memory`, `--no-shconf`, `--no-huge` and `--huge-unlink` with it.
    pub capture: bool,
    /// Worker lcores, within [`WORKERS_RANGE`].
    pub workers: u16,
    /// Mbuf pool size; `None`: computed by the daemon.
    pub mbufs: Option<u32>,
    /// Workers sleep briefly after empty polls instead of spinning.
    pub idle_backoff: bool,
    /// Ports (at least one), in configuration order.
    pub ports: Vec<DataplanePort>,
    /// Static routes.
    pub routes: Vec<Route>,
    /// Static ARP entries.
    pub neighbours: Vec<Neighbour>,
}

impl Dataplane {
    /// The EAL file prefix the daemon runs with: the value of `--file-prefix` in
    /// [`Dataplane::eal`] (the last one, as EAL takes it), else [`DEFAULT_CAPTURE_PREFIX`]
    /// with `capture` on (the daemon then passes it), else `None` (EAL's default, `rte`).
    pub fn file_prefix(&self) -> Option<&str> {
        eal_file_prefix(&self.eal).or(self.capture.then_some(DEFAULT_CAPTURE_PREFIX))
    }

    /// Whether some port is a PCI device. When none is, the daemon passes `--no-pci` to EAL.
    pub fn uses_pci(&self) -> bool {
        self.ports.iter().any(|p| p.device.is_pci())
    }

    /// The port with this name.
    pub fn port(&self, name: &str) -> Option<&DataplanePort> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// The port whose connected subnet holds `ip`, with the matching interface address.
    pub fn connected(&self, ip: Ipv4Addr) -> Option<(&DataplanePort, InterfaceAddr)> {
        self.ports
            .iter()
            .find_map(|p| p.addresses.iter().find(|a| a.contains(ip)).map(|a| (p, *a)))
    }
}

/// The EAL file prefix of a router with `dataplane.capture` on and no `--file-prefix` in
/// `dataplane.eal`: `dpdk-dumpcap --file-prefix=wccpd` finds it.
pub const DEFAULT_CAPTURE_PREFIX: &str = "wccpd";

/// The value of the last `--file-prefix X` or `--file-prefix=X` in EAL arguments.
pub fn eal_file_prefix(eal: &[String]) -> Option<&str> {
    let mut found = None;
    let mut it = eal.iter();
    while let Some(a) = it.next() {
        if a == "--file-prefix" {
            found = it.next().map(String::as_str).or(found);
        } else if let Some(v) = a.strip_prefix("--file-prefix=") {
            found = Some(v);
        }
    }
    found
}

/// A redirection table given in the configuration (`router.services[].static_assignment`): the
/// data plane uses it while no cache-provided assignment is published for the service. For
/// labs, benchmarks and tests that redirect without a cache speaking WCCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticAssignment {
    /// The caches; hash bucket `b` goes to `caches[b % caches.len()]`.
    pub caches: Vec<Ipv4Addr>,
    /// How packets reach them.
    pub forwarding: super::Method,
}

/// Most caches a static assignment may name.
pub const STATIC_CACHES_MAX: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn rule(action: RuleAction) -> RedirectRule {
        RedirectRule::any(action)
    }

    #[test]
    fn rule_matches_each_field() {
        let r = RedirectRule {
            action: RuleAction::Permit,
            protocol: Some(6),
            src: "10.0.0.0/8".parse().unwrap(),
            dst: "192.0.2.0/24".parse().unwrap(),
            src_ports: vec![],
            dst_ports: vec![80, 8080],
        };
        let (s, d) = (ip("10.1.2.3"), ip("192.0.2.9"));
        assert!(r.matches(6, s, d, 40000, 80));
        assert!(r.matches(6, s, d, 1, 8080));
        assert!(!r.matches(17, s, d, 40000, 80), "protocol");
        assert!(!r.matches(6, ip("11.0.0.1"), d, 40000, 80), "source");
        assert!(!r.matches(6, s, ip("192.0.3.1"), 40000, 80), "destination");
        assert!(!r.matches(6, s, d, 40000, 443), "destination port");
        let r = RedirectRule {
            src_ports: vec![53],
            dst_ports: vec![],
            protocol: Some(17),
            ..rule(RuleAction::Deny)
        };
        assert!(r.matches(17, s, d, 53, 9));
        assert!(!r.matches(17, s, d, 54, 9));
        let any = rule(RuleAction::Permit);
        assert!(any.matches(1, s, d, 0, 0));
        assert!(any.matches(47, Ipv4Addr::BROADCAST, Ipv4Addr::UNSPECIFIED, 0, 0));
    }

    #[test]
    fn first_match_wins_and_implicit_deny() {
        let (s, d) = (ip("10.1.2.3"), ip("192.0.2.9"));
        assert!(redirect_list_permits(&[], 6, s, d, 1, 80), "empty permits");
        let deny_host = RedirectRule {
            src: "10.1.2.3/32".parse().unwrap(),
            ..rule(RuleAction::Deny)
        };
        let permit_tcp = RedirectRule {
            protocol: Some(6),
            ..rule(RuleAction::Permit)
        };
        let list = [deny_host.clone(), permit_tcp.clone()];
        assert!(!redirect_list_permits(&list, 6, s, d, 1, 80), "deny first");
        assert!(redirect_list_permits(&list, 6, ip("10.1.2.4"), d, 1, 80));
        assert!(
            !redirect_list_permits(&list, 17, ip("10.1.2.4"), d, 1, 80),
            "implicit deny at the end"
        );
        let list = [permit_tcp, deny_host];
        assert!(redirect_list_permits(&list, 6, s, d, 1, 80), "permit first");
    }

    #[test]
    fn interface_addresses() {
        let a = InterfaceAddr {
            addr: ip("10.0.1.1"),
            len: 24,
        };
        assert_eq!(a.subnet().to_string(), "10.0.1.0/24");
        assert_eq!(a.to_string(), "10.0.1.1/24");
        assert!(a.contains(ip("10.0.1.254")));
        assert!(!a.contains(ip("10.0.2.1")));
        let host = InterfaceAddr {
            addr: ip("10.0.1.1"),
            len: 32,
        };
        assert!(host.contains(ip("10.0.1.1")) && !host.contains(ip("10.0.1.2")));
    }

    #[test]
    fn file_prefixes() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(eal_file_prefix(&v(&["-m", "512"])), None);
        assert_eq!(eal_file_prefix(&v(&["--file-prefix", "a"])), Some("a"));
        assert_eq!(
            eal_file_prefix(&v(&["--file-prefix=b", "-m", "1"])),
            Some("b")
        );
        assert_eq!(
            eal_file_prefix(&v(&["--file-prefix", "a", "--file-prefix=b"])),
            Some("b"),
            "the last one counts, as in EAL"
        );
        assert_eq!(eal_file_prefix(&v(&["--file-prefix"])), None);
    }

    #[test]
    fn devices() {
        let v = PortDevice::Vdev("net_tap0,iface=wc0".into());
        assert_eq!((v.name(), v.is_pci()), ("net_tap0", false));
        let p = PortDevice::Pci("0000:03:00.0".into());
        assert_eq!((p.name(), p.is_pci()), ("0000:03:00.0", true));
        assert_eq!(p.to_string(), "0000:03:00.0");
    }
}
