//! Read-only snapshot of the cache agent for `wccpd show` (serialisable).

use core::net::Ipv4Addr;

use super::config::{AssignMethod, Method};

/// Where the cache stands with one router of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterLinkState {
    /// Sending HERE_I_AMs, no (recent) I_SEE_YOU yet.
    Joining,
    /// Receiving I_SEE_YOUs with compatible capabilities.
    Joined,
    /// The router offers no capability value we accept; we stopped joining it (see `reason`).
    Incompatible,
    /// We left the group ([`super::CacheAgent::shutdown`], or
    /// [`super::CacheAgent::set_healthy`] with `false`).
    Shutdown,
}

/// An Assignment Key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AssignmentKeyStatus {
    /// Designated cache address.
    pub address: Ipv4Addr,
    /// Key change number.
    pub change_number: u32,
}

/// One router as seen from one service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouterStatus {
    /// Configured address (where HERE_I_AMs go).
    pub address: Ipv4Addr,
    /// Router ID from its Router Identity.
    pub router_id: Ipv4Addr,
    /// Last Receive ID heard (echoed in our view).
    pub receive_id: u32,
    /// Last member change number heard.
    pub change_number: u32,
    /// Milliseconds since the last accepted I_SEE_YOU.
    pub last_i_see_you_age_ms: Option<u64>,
    /// Link state.
    pub state: RouterLinkState,
    /// Why the state is what it is (incompatibility, timeout), if notable.
    pub reason: Option<String>,
    /// Assignment Key the router reflects.
    pub assignment_key: Option<AssignmentKeyStatus>,
    /// Negotiated forwarding method.
    #[serde(default, with = "crate::label::named_option")]
    pub forwarding: Option<Method>,
    /// Negotiated assignment method.
    #[serde(default, with = "crate::label::named_option")]
    pub assignment: Option<AssignMethod>,
    /// Negotiated packet return method.
    #[serde(default, with = "crate::label::named_option")]
    pub packet_return: Option<Method>,
}

/// Buckets (hash) or mask values owned by one cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheBuckets {
    /// Cache address.
    pub addr: Ipv4Addr,
    /// Number of buckets (or mask values) it owns.
    pub buckets: usize,
}

/// One service group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceStatus {
    /// "standard 0" / "dynamic 80".
    pub service: String,
    /// Our Web-Cache View change number.
    pub view_change_number: u32,
    /// Per router.
    pub routers: Vec<RouterStatus>,
    /// Caches learnt from the routers' views.
    pub caches_seen: Vec<Ipv4Addr>,
    /// Whether we are the designated cache.
    pub designated: bool,
    /// Who is designated (lowest cache seen by every joined router), if anyone.
    pub designated_cache: Option<Ipv4Addr>,
    /// Key of the assignment we built (designated cache only).
    pub assignment_key: Option<AssignmentKeyStatus>,
    /// Buckets per cache: from our own assignment when designated, else from a router's
    /// Assignment Map (mask) when one was received; empty when unknown.
    pub buckets: Vec<CacheBuckets>,
}

/// The agent's health as the daemon's probe of the proxy reported it
/// ([`super::CacheAgent::set_healthy`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AgentHealth {
    /// In the groups (`false`: left because the proxy is unhealthy).
    pub healthy: bool,
    /// Times the agent left its groups for health.
    pub leaves: u64,
    /// Times it rejoined.
    pub rejoins: u64,
    /// Milliseconds since health last changed (`None`: never).
    pub changed_ms_ago: Option<u64>,
}

impl Default for AgentHealth {
    fn default() -> Self {
        AgentHealth {
            healthy: true,
            leaves: 0,
            rejoins: 0,
            changed_ms_ago: None,
        }
    }
}

/// The whole agent.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheStatus {
    /// Our address.
    pub address: Ipv4Addr,
    /// Left or in its groups, as health goes.
    #[serde(default)]
    pub health: AgentHealth,
    /// Per service group.
    pub services: Vec<ServiceStatus>,
}
