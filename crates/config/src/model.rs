//! Validated, typed configuration. Everything here has been checked; consumers never re-check.

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use ipnet::Ipv4Net;

mod dataplane;
pub use dataplane::*;

/// Where the router's and cache's control sockets live unless configured.
pub const DEFAULT_SOCKET_PATH: &str = "/run/wccpd/wccpd.sock";
/// Default control socket of the cache agent (distinct, so both can run on one host).
pub const DEFAULT_CACHE_SOCKET_PATH: &str = "/run/wccpd/wccpd-cache.sock";
/// Default `cache.load_source`: the kernel's load averages.
pub const DEFAULT_LOAD_SOURCE: &str = "/proc/loadavg";
/// Default `cache.tun.name`: the TUN device decapsulated packets are handed to.
pub const DEFAULT_TUN_NAME: &str = "wccp0";
/// Default `cache.tun.address`: a link-local /32 for the TUN device (nftables REDIRECT needs one).
pub const DEFAULT_TUN_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 87, 1);
/// Default TRANSMIT_T (docs/protocol.md 5.1).
pub const DEFAULT_TRANSMIT_T_MS: u32 = 10_000;
/// Smallest and largest TRANSMIT_T accepted (docs/protocol.md 2.10 suggested range).
pub const TRANSMIT_T_RANGE_MS: (u32, u32) = (500, 60_000);

/// A field of the packet that feeds a hash key (service flags, docs/protocol.md 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashField {
    /// Source IPv4 address.
    SrcIp,
    /// Destination IPv4 address.
    DstIp,
    /// Source TCP/UDP port.
    SrcPort,
    /// Destination TCP/UDP port.
    DstPort,
}

impl HashField {
    /// The primary-hash flag bit; the alternate-hash bit is this shifted left by 8.
    pub const fn primary_flag(self) -> u32 {
        match self {
            HashField::SrcIp => 0x0001,
            HashField::DstIp => 0x0002,
            HashField::SrcPort => 0x0004,
            HashField::DstPort => 0x0008,
        }
    }
}

/// Whether the port list matches source or destination ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortsAre {
    /// Match the destination port (default).
    Destination,
    /// Match the source port (flag PORTS_SOURCE).
    Source,
}

/// Forwarding or packet-return method (capabilities 1 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GRE encapsulation.
    Gre,
    /// Layer-2 rewrite.
    L2,
}

/// Assignment method (capability 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssignmentMethod {
    /// 256 hash buckets.
    Hash,
    /// Mask/value sets.
    Mask,
}

/// Capability bit of a method list (0x1 GRE/hash, 0x2 L2/mask).
pub fn method_bits(methods: &[Method]) -> u32 {
    methods.iter().fold(0, |a, m| {
        a | match m {
            Method::Gre => 1,
            Method::L2 => 2,
        }
    })
}

/// Capability bits of an assignment-method list.
pub fn assignment_bits(methods: &[AssignmentMethod]) -> u32 {
    methods.iter().fold(0, |a, m| {
        a | match m {
            AssignmentMethod::Hash => 1,
            AssignmentMethod::Mask => 2,
        }
    })
}

/// Why a prefix string was rejected by [`parse_prefix`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// The part before `/` is not an IPv4 address.
    #[error("`{0}` is not an IPv4 address")]
    Address(String),
    /// The length is not 0-32.
    #[error("prefix length `{0}` is not 0-32")]
    Length(String),
    /// Bits beyond the prefix length are set.
    #[error("host bits set (did you mean {0}?)")]
    HostBits(Ipv4Net),
}

/// Parses a prefix of the configuration: `a.b.c.d/len` with no host bits set, or a bare address
/// meaning `/32`. Every prefix in the configuration is an [`Ipv4Net`] with its host bits clear.
///
/// # Errors
/// [`PrefixError`] naming the part that is wrong.
pub fn parse_prefix(s: &str) -> Result<Ipv4Net, PrefixError> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: Ipv4Addr = a
        .trim()
        .parse()
        .map_err(|_| PrefixError::Address(a.to_string()))?;
    let net = match l {
        None => Ipv4Net::from(addr),
        Some(l) => match l.trim().parse::<u8>().map(|n| Ipv4Net::new(addr, n)) {
            Ok(Ok(net)) => net,
            _ => return Err(PrefixError::Length(l.to_string())),
        },
    };
    if net.trunc() != net {
        return Err(PrefixError::HostBits(net.trunc()));
    }
    Ok(net)
}

/// A service group definition (docs/protocol.md 2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDefinition {
    /// `true` for a dynamic service.
    pub dynamic: bool,
    /// Service id 0-255.
    pub id: u8,
    /// Priority (dynamic only; standard services have an implied 240 and send 0).
    pub priority: u8,
    /// IP protocol number (0 = all). Standard service 0: 6.
    pub protocol: u8,
    /// Up to 8 ports; empty = all ports. Standard service 0: `[80]`.
    pub ports: Vec<u16>,
    /// Which port the list matches.
    pub ports_are: PortsAre,
    /// Primary hash fields.
    pub hash: Vec<HashField>,
    /// Alternate hash fields.
    pub alt_hash: Vec<HashField>,
}

impl ServiceDefinition {
    /// The well-known service 0, "web-cache": TCP destination port 80, hashed on destination IP.
    pub fn web_cache() -> ServiceDefinition {
        ServiceDefinition {
            dynamic: false,
            id: 0,
            priority: 240,
            protocol: 6,
            ports: vec![80],
            ports_are: PortsAre::Destination,
            hash: vec![HashField::DstIp],
            alt_hash: Vec::new(),
        }
    }

    /// The Service Info flags as sent on the wire (0 for standard services, docs/protocol.md 2.3).
    pub fn flags(&self) -> u32 {
        if !self.dynamic {
            return 0;
        }
        let mut f = 0;
        for h in &self.hash {
            f |= h.primary_flag();
        }
        for h in &self.alt_hash {
            f |= h.primary_flag() << 8;
        }
        if !self.ports.is_empty() {
            f |= 0x0010;
            if self.ports_are == PortsAre::Source {
                f |= 0x0020;
            }
        }
        f
    }

    /// The 8 port slots as sent on the wire (zeros for standard services).
    pub fn wire_ports(&self) -> [u16; 8] {
        let mut p = [0u16; 8];
        if self.dynamic {
            for (slot, port) in p.iter_mut().zip(&self.ports) {
                *slot = *port;
            }
        }
        p
    }
}

/// How the control plane talks to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlTransport {
    /// Kernel UDP sockets.
    Socket,
    /// Through the DPDK data plane's ports.
    Dpdk,
}

/// The `control` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// Control transport.
    pub transport: ControlTransport,
    /// The local Unix socket `wccpd show` talks to.
    pub socket_path: PathBuf,
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    Info,
    /// Problems only.
    Warn,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// The `tracing` directive name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One service group on the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterService {
    /// `true` for a dynamic service.
    pub dynamic: bool,
    /// Service id.
    pub id: u8,
    /// The definition caches must announce; `None` (a dynamic service given only by `id` and
    /// `type`): learnt from the first cache to join, as a Cisco router does.
    pub definition: Option<ServiceDefinition>,
    /// MD5 password (1-8 octets), or none.
    pub password: Option<Vec<u8>>,
    /// Caches allowed to join; empty = any.
    pub allowed_caches: Vec<Ipv4Net>,
    /// Closed service: with no usable cache, drop matching traffic instead of forwarding it.
    pub closed: bool,
    /// Forwarding methods offered.
    pub forwarding: Vec<Method>,
    /// Assignment methods offered.
    pub assignment: Vec<AssignmentMethod>,
    /// Packet-return methods offered.
    pub return_methods: Vec<Method>,
    /// Which packets the service may redirect (IOS `redirect-list`); empty = all it matches.
    /// See [`redirect_list_permits`].
    pub redirect_list: Vec<RedirectRule>,
    /// A configured table used while no cache-provided assignment is published.
    pub static_assignment: Option<StaticAssignment>,
}

/// A validated router configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterSettings {
    /// Router addresses (the router identity is the first; UDP 2048 is bound on each).
    pub addresses: Vec<Ipv4Addr>,
    /// Control transport and socket.
    pub control: Control,
    /// Service groups.
    pub services: Vec<RouterService>,
    /// TRANSMIT_T in milliseconds.
    pub transmit_t_ms: u32,
    /// Log level.
    pub log_level: LogLevel,
    /// A packet a service's redirect list denies is checked against the next service in
    /// priority order (IOS `ip wccp check services all`); otherwise it is not redirected.
    pub check_all_services: bool,
    /// The DPDK data plane (`dataplane:` section), if configured.
    pub dataplane: Option<Dataplane>,
    /// The Prometheus endpoint, if any.
    pub metrics: Option<Metrics>,
}

/// `router.metrics`: where `/metrics` is served (Prometheus text format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// Export per-bucket packet counters (256 series per service; default true).
    pub buckets: bool,
}

/// Bucket spreading algorithm of the designated cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// Squid's weighted walk (Squid-equal output).
    Squid,
    /// Minimal movement on membership changes.
    Stable,
}

/// When the cache returns (bypasses) redirected packets instead of serving them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReturnPolicy {
    /// Return packets from these sources.
    pub refuse_sources: Vec<Ipv4Net>,
    /// Return packets to these destinations.
    pub refuse_destinations: Vec<Ipv4Net>,
    /// Return new flows while the load is above this percentage (1-100).
    pub max_load: Option<u8>,
}

/// One service group on the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheService {
    /// The definition announced in HERE_I_AM.
    pub definition: ServiceDefinition,
    /// Weight for bucket spreading.
    pub weight: u16,
    /// MD5 password (1-8 octets), or none.
    pub password: Option<Vec<u8>>,
    /// Acceptable forwarding methods, most preferred first.
    pub forwarding: Vec<Method>,
    /// Acceptable assignment methods, most preferred first.
    pub assignment: Vec<AssignmentMethod>,
    /// Acceptable packet-return methods, most preferred first.
    pub return_method: Vec<Method>,
    /// How buckets are spread when this cache is the designated cache.
    pub spread: Spread,
    /// Seconds over which a new cache's share ramps up (0 = at once).
    pub slow_start_s: u32,
    /// When to return packets.
    pub return_policy: ReturnPolicy,
}

/// A validated cache configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// The cache's own address (HERE_I_AMs are sent from it).
    pub address: Ipv4Addr,
    /// Seed routers.
    pub routers: Vec<Ipv4Addr>,
    /// Control socket.
    pub control: Control,
    /// Service groups.
    pub services: Vec<CacheService>,
    /// TRANSMIT_T in milliseconds.
    pub transmit_t_ms: u32,
    /// Where the load figure for `return_policy.max_load` is read: a file whose first
    /// whitespace-separated field is a load average (`/proc/loadavg` format).
    pub load_source: PathBuf,
    /// User-space GRE decapsulation into a TUN device (`cache.tun`); `None`: a kernel GRE
    /// interface must terminate the redirected traffic.
    pub tun: Option<CacheTun>,
    /// Log level.
    pub log_level: LogLevel,
}

/// The `cache.tun` section: the agent decapsulates WCCP GRE itself and writes the accepted
/// inner packets to a TUN device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheTun {
    /// Interface name (1-15 octets).
    pub name: String,
    /// The IPv4 address (a /32) given to the device.
    pub address: Ipv4Addr,
    /// Outer sources whose GRE is decapsulated; others are ignored. Default: the seed routers.
    pub accept_from: Vec<Ipv4Net>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p = parse_prefix("10.1.0.0/16").unwrap();
        assert!(p.contains(&Ipv4Addr::new(10, 1, 200, 3)));
        assert!(!p.contains(&Ipv4Addr::new(10, 2, 0, 1)));
        assert_eq!(parse_prefix("10.1.2.3").unwrap().prefix_len(), 32);
        assert!(parse_prefix("0.0.0.0/0")
            .unwrap()
            .contains(&Ipv4Addr::BROADCAST));
        assert_eq!(
            parse_prefix("10.1.2.3/16"),
            Err(PrefixError::HostBits("10.1.0.0/16".parse().unwrap()))
        );
        assert!(matches!(
            parse_prefix("10.1.0.0/33"),
            Err(PrefixError::Length(_))
        ));
        assert!(matches!(parse_prefix("x/3"), Err(PrefixError::Address(_))));
    }

    #[test]
    fn flags() {
        let mut d = ServiceDefinition::web_cache();
        assert_eq!(d.flags(), 0);
        assert_eq!(d.wire_ports(), [0; 8]);
        d.dynamic = true;
        d.ports = vec![80, 443];
        d.ports_are = PortsAre::Source;
        d.alt_hash = vec![HashField::SrcPort];
        assert_eq!(d.flags(), 0x0002 | 0x0010 | 0x0020 | 0x0400);
        assert_eq!(d.wire_ports(), [80, 443, 0, 0, 0, 0, 0, 0]);
    }
}
