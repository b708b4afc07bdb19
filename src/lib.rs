//! Library half of the `wccpd` binary: command implementations that tests can call directly.
//!
//! `main.rs` only parses the command line and dispatches here:
//! `router`/`cache`/`show` -> [`daemon`], `decode` -> [`decode`], `smoke` -> `smoke`,
//! `bench`/`bench-run` -> `bench`.

#![forbid(unsafe_code)]
// Peer input and configuration are errors, never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "dpdk")]
pub mod bench;
pub mod cache_health;
pub mod cache_tun;
pub mod check;
pub mod daemon;
pub mod decode;
pub mod explain;
pub mod gre_return;
pub mod metrics;
pub mod pcap;
pub mod reload;
#[cfg(feature = "dpdk")]
pub mod router_dpdk;
#[cfg(feature = "dpdk")]
pub mod smoke;
pub mod why;
