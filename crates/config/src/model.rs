//! Validated, typed configuration. Everything here has been checked; consumers never re-check.

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use ipnet::Ipv4Net;

mod dataplane;
pub use dataplane::*;
mod health;
pub use health::*;

// The plain types the configuration shares with the state machines and the data plane: one
// definition each, in `wccp-assign`.
pub use assign::method::{AssignMethod, Method};
pub use assign::service::{HashField, HashFields, PortsAre, ServiceDefinition};
pub use assign::spread::SpreadAlgorithm;

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

/// The `log:` section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Log {
    /// Verbosity (`log.level`); `RUST_LOG`, when set, overrides it.
    pub level: LogLevel,
    /// Line format (`log.format`).
    pub format: LogFormat,
}

/// How log lines are written (on stderr, which systemd's journal collects).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (the event's message
    /// and structured fields) and the enclosing `spans`.
    Json,
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    #[default]
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
    pub assignment: Vec<AssignMethod>,
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
    /// Log level and format.
    pub log: Log,
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

pub use assign::policy::ReturnPolicy;

/// One service group on the cache: the cache agent's own type (defaults in
/// [`CacheService::new`]), so the file's settings reach the agent as they are.
pub use assign::cache::{CacheService, MaskConfig};
pub use assign::spread::SlowStart;

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
    /// The health check of the proxy (`cache.health_check`); `None`: none, the agent stays in
    /// its groups whatever the proxy does.
    pub health_check: Option<HealthCheck>,
    /// Log level and format.
    pub log: Log,
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
}
