//! Snapshot of the router's state for `wccpd show` (serialised to JSON by the driver, read back
//! by `wccpd show`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::label::{self, Label};

/// Why a cache is not usable (or, for [`NotUsable::NotInAssignment`], usable but given no
/// traffic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotUsable {
    /// Its last HERE_I_AM did not echo the Receive ID we last sent it (or did not list us).
    BadReceiveId,
    /// Its last message failed MD5 authentication.
    Md5Failure,
    /// It asked for capabilities we do not offer or that differ from the group's.
    CapabilityMismatch,
    /// Its service definition conflicts with the group's.
    ServiceMismatch,
    /// It is outside the group list.
    NotAllowed,
    /// Usable, but the accepted assignment gives it nothing.
    NotInAssignment,
    /// Silent for 3 TIMEOUT_BASE_T; removed.
    TimedOut,
    /// It sent a Command Extension SHUTDOWN.
    Shutdown,
}

impl NotUsable {
    /// Stable label.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotUsable::BadReceiveId => "bad_receive_id",
            NotUsable::Md5Failure => "md5_failure",
            NotUsable::CapabilityMismatch => "capability_mismatch",
            NotUsable::ServiceMismatch => "service_mismatch",
            NotUsable::NotAllowed => "not_allowed",
            NotUsable::NotInAssignment => "not_in_assignment",
            NotUsable::TimedOut => "timed_out",
            NotUsable::Shutdown => "shutdown",
        }
    }
}

/// Message and drop counters (a counter missing from the JSON reads as 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Messages received (valid or not).
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Drops by [`crate::DropReason::as_str`].
    #[serde(deserialize_with = "label::deserialize_keys")]
    pub drops: BTreeMap<Label, u64>,
    /// HERE_I_AMs processed but not answered: the answer was over the reply rate limit
    /// ([`super::ReplyLimits`]).
    pub replies_rate_limited: u64,
}

/// The accepted assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentStatus {
    /// Assignment key address (the designated cache).
    pub address: Ipv4Addr,
    /// Assignment key change number.
    pub change_number: u32,
    /// `"hash"` or `"mask"`.
    #[serde(deserialize_with = "label::deserialize")]
    pub method: Label,
    /// Milliseconds since it was accepted.
    pub age_ms: u64,
}

/// One cache of a service group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStatus {
    /// Cache address.
    pub address: Ipv4Addr,
    /// In the Router View.
    pub usable: bool,
    /// Why not usable / not assigned.
    pub reason: Option<NotUsable>,
    /// Buckets (hash) or value slots (mask) it receives in the current table.
    pub buckets: u32,
    /// Assignment weight from its HERE_I_AM.
    pub weight: u16,
    /// Milliseconds since its last HERE_I_AM.
    pub last_heard_ms_ago: u64,
    /// Negotiated forwarding method (`"gre"` / `"l2"`), once usable.
    #[serde(default, deserialize_with = "label::deserialize_option")]
    pub forwarding: Option<Label>,
    /// The type of the last message received from it (`HERE_I_AM`, `HERE_I_AM (SHUTDOWN)`,
    /// `REDIRECT_ASSIGN`), whether accepted or not.
    #[serde(default, deserialize_with = "label::deserialize_option")]
    pub last_message: Option<Label>,
    /// Milliseconds since that message.
    #[serde(default)]
    pub last_message_ms_ago: Option<u64>,
}

/// One service group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Service id.
    pub id: u8,
    /// Dynamic (`true`) or standard.
    pub dynamic: bool,
    /// `"md5"` (a password is configured) or `"none"` (anyone who reaches UDP 2048 on a router
    /// address can join).
    #[serde(default = "security_unknown", deserialize_with = "label::deserialize")]
    pub security: Label,
    /// Current Member Change Number.
    pub change_number: u32,
    /// Last Receive ID sent.
    pub receive_id: u32,
    /// `"hash"` / `"mask"` once the first usable cache fixed it.
    #[serde(default, deserialize_with = "label::deserialize_option")]
    pub assignment_method: Option<Label>,
    /// The accepted assignment, if any.
    pub assignment: Option<AssignmentStatus>,
    /// Routers in the Router View.
    pub routers: Vec<Ipv4Addr>,
    /// Caches known to the group.
    pub caches: Vec<CacheStatus>,
    /// Counters of this group.
    pub counters: Counters,
}

fn security_unknown() -> Label {
    "unknown"
}

/// The whole router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterStatus {
    /// Service groups in configuration order.
    pub services: Vec<ServiceStatus>,
    /// Messages that could not be attributed to a group (malformed, unknown service).
    #[serde(default)]
    pub unattributed: Counters,
    /// The limiter of answers to HERE_I_AM.
    #[serde(default)]
    pub reply_limiter: ReplyLimiterStatus,
}

/// The reply rate limiter ([`super::ReplyLimits`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyLimiterStatus {
    /// (Service group, destination) budgets kept now.
    pub tracked_peers: usize,
    /// Most budgets kept.
    pub max_peers: usize,
    /// Answers not sent, all groups together (sum of the groups' `replies_rate_limited`).
    pub replies_rate_limited: u64,
}
