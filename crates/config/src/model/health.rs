//! The cache's health check of its proxy (`cache.health_check`): the agent runs beside the
//! proxy, so a dead proxy would otherwise keep its buckets.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Default `cache.health_check.address`: the proxy's intercept port on the same host (Squid's
/// `http_port 3129 intercept` in docs/cache-host.md).
pub const DEFAULT_HEALTH_ADDRESS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3129);
/// Default `cache.health_check.path` (HTTP only).
pub const DEFAULT_HEALTH_PATH: &str = "/";
/// Default `cache.health_check.interval_ms`.
pub const DEFAULT_HEALTH_INTERVAL_MS: u32 = 1000;
/// Default `cache.health_check.timeout_ms`.
pub const DEFAULT_HEALTH_TIMEOUT_MS: u32 = 500;
/// Default `cache.health_check.threshold`.
pub const DEFAULT_HEALTH_THRESHOLD: u32 = 3;
/// Smallest and largest probe interval accepted.
pub const HEALTH_INTERVAL_RANGE_MS: (u32, u32) = (100, 600_000);
/// Smallest probe timeout accepted (and it may not exceed the interval).
pub const HEALTH_TIMEOUT_MIN_MS: u32 = 10;
/// Smallest and largest threshold accepted.
pub const HEALTH_THRESHOLD_RANGE: (u32, u32) = (1, 100);

/// How the proxy is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// A TCP connection to `address` succeeds within the timeout.
    Tcp,
    /// `GET path` over HTTP/1.0 to `address` answers with a status line (any status: the proxy
    /// answers) within the timeout.
    Http,
}

impl HealthCheckKind {
    /// The configuration name.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Http => "http",
        }
    }
}

/// `cache.health_check`: after `threshold` consecutive failed probes the agent leaves every
/// service group (SHUTDOWN), after `threshold` consecutive good ones it rejoins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// TCP connect or HTTP GET.
    pub kind: HealthCheckKind,
    /// Where the proxy listens.
    pub address: SocketAddrV4,
    /// The HTTP request path (HTTP only; `/` otherwise).
    pub path: String,
    /// Time between two probes.
    pub interval_ms: u32,
    /// How long one probe may take (at most the interval).
    pub timeout_ms: u32,
    /// Consecutive failures to leave, and consecutive successes to rejoin.
    pub threshold: u32,
}
