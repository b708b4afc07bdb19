//! Sans-IO WCCPv2 membership state machines: the router side ([`router`]) and the cache agent
//! ([`cache`]), plus thin UDP drivers ([`driver`]).
//!
//! # Shape
//! Both sides are plain state machines in the style of boringtun and quiche: bytes and clock ticks
//! in, datagrams and table publications out. Nothing in [`router`] or [`cache`] reads a clock or
//! touches a socket, so every test runs in virtual time:
//!
//! ```text
//!   handle_datagram(now, Datagram) ─┐              ┌─> poll_output() -> Option<Output>
//!   handle_timeout(now)            ─┼─> state ─────┤
//!                                   │              └─> poll_timeout() -> Option<Instant>
//! ```
//!
//! A driver loops: wait for a datagram or until `poll_timeout()`, feed it in, then drain
//! `poll_output()` until `None`, sending datagrams and handing [`Output::Publish`] tables to the
//! data plane.
//!
//! # Invariants
//! * The state machines never panic on peer input: a bad message is counted and described in an
//!   [`Event`], never lost state.
//! * `control` never touches an mbuf and never depends on `dataplane` or `dpdk`.

#![forbid(unsafe_code)]
// Peer input and configuration are errors, never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
pub mod driver;
pub mod label;
pub mod log_limit;
pub mod packet_return;
pub mod router;
mod time;

pub use time::Instant;

use std::net::Ipv4Addr;
use std::sync::Arc;

/// The UDP port of every WCCPv2 control message, source and destination (docs/protocol.md 1.1).
pub const WCCP_PORT: u16 = 2048;

/// One UDP datagram on port 2048, in either direction.
///
/// Incoming: `local` is the address the peer sent to (one of ours), `peer` the sender.
/// Outgoing: `local` is the source address to send from, `peer` the destination. Replies always
/// leave from the address the peer used (Squid drops anything else, docs/protocol.md 10.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Our address.
    pub local: Ipv4Addr,
    /// The other side's address.
    pub peer: Ipv4Addr,
    /// The whole WCCP message (UDP payload).
    pub payload: Vec<u8>,
}

/// Identifies one service group: standard or dynamic, and its id (docs/protocol.md 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// `true` for a dynamic service, `false` for a standard (well-known) one.
    pub dynamic: bool,
    /// Service id 0-255.
    pub id: u8,
}

impl ServiceKey {
    /// The group a configured service definition belongs to.
    pub fn of(definition: &assign::service::ServiceDefinition) -> ServiceKey {
        ServiceKey {
            dynamic: definition.dynamic,
            id: definition.id,
        }
    }
}

impl std::fmt::Display for ServiceKey {
    /// `standard 0` / `dynamic 80`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.dynamic { "dynamic" } else { "standard" };
        write!(f, "{kind} {}", self.id)
    }
}

/// What a state machine asks its driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send this datagram (from `local` to `peer`, UDP 2048 -> 2048).
    Send(Datagram),
    /// Router only: the redirection table of a service changed. `None` means flushed (forward
    /// everything normally). Tables are immutable once published.
    Publish {
        /// The service group.
        service: ServiceKey,
        /// The new table, or `None` when the service has no valid assignment.
        table: Option<Arc<assign::RedirectTable>>,
    },
    /// Something an operator may want to see in logs or counters.
    Event(Event),
}

/// Log- and metric-worthy happenings. Drivers turn these into `tracing` events and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A datagram was dropped; `reason` names why and `detail` carries the decoder's message.
    Dropped {
        /// Sender.
        peer: Ipv4Addr,
        /// Why.
        reason: DropReason,
        /// Human-readable detail (decoder error with field and offset, etc.).
        detail: String,
    },
    /// A member joined or left, or its usable state changed.
    MembershipChanged {
        /// Service group.
        service: ServiceKey,
        /// New Member Change Number (router) or view change number (cache).
        change_number: u32,
    },
    /// A REDIRECT_ASSIGN was accepted (router) or sent (cache).
    Assignment {
        /// Service group.
        service: ServiceKey,
        /// Assignment key address.
        key_address: Ipv4Addr,
        /// Assignment key change number.
        key_change: u32,
    },
}

/// Why a control datagram was dropped. One list, so each reason is one counter
/// (`wccp_ctl_drops_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The message did not decode (header or component).
    Malformed,
    /// MD5 digest missing or wrong, or security option differs from the configured one.
    Security,
    /// The service is not configured here, or its definition conflicts with the group's.
    ServiceMismatch,
    /// The message type is not one this side accepts.
    UnexpectedType,
    /// The sender is not allowed to join (group list).
    NotAllowed,
    /// The message is stale (old receive id or change number).
    Stale,
    /// The message was addressed to someone else.
    NotForUs,
}

impl DropReason {
    /// Stable label value for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Security => "security",
            DropReason::ServiceMismatch => "service_mismatch",
            DropReason::UnexpectedType => "unexpected_type",
            DropReason::NotAllowed => "not_allowed",
            DropReason::Stale => "stale",
            DropReason::NotForUs => "not_for_us",
        }
    }
}

/// The driver-facing surface shared by [`router::Router`] and [`cache::CacheAgent`], so one UDP
/// driver (and one simulation harness) serves both.
pub trait Machine {
    /// Feed one received datagram.
    fn handle_datagram(&mut self, now: Instant, datagram: Datagram);
    /// Advance timers to `now`. Harmless to call early or often.
    fn handle_timeout(&mut self, now: Instant);
    /// The earliest instant at which [`Machine::handle_timeout`] has work to do.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Next thing for the driver to do; call until `None` after every input.
    fn poll_output(&mut self) -> Option<Output>;
    /// Every local address the machine sends from (the driver binds UDP 2048 on each).
    fn local_addresses(&self) -> Vec<Ipv4Addr>;
}
