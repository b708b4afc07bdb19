//! WCCPv2 traffic distribution, pure: the service model, the classification key, the bucket hash
//! (docs/protocol.md 3.2), mask/value matching and the VSN mapping (3.3, 3.4), the designated cache's
//! assignment algorithms (3.5) and the immutable [`RedirectTable`] the data plane reads.
//!
//! Its plain types ([`method::Method`], [`method::AssignMethod`],
//! [`service::ServiceDefinition`], [`service::HashFields`], [`spread::SpreadAlgorithm`],
//! [`policy::ReturnPolicy`] and a cache's whole service group, [`cache::CacheService`]) are
//! the configuration's and the state machines' alike: `wccpd-config` parses into them and
//! `wccp-control` runs on them.
//!
//! Never does I/O, never depends on DPDK; every function here is deterministic.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Peer input and configuration are errors, never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
pub mod hash;
pub mod mask;
pub mod method;
pub mod policy;
pub mod service;
pub mod spread;
pub mod table;

pub use table::RedirectTable;
