//! Library half of the `wccpd` binary: command implementations that tests can call directly.
//!
//! `main.rs` only parses the command line and dispatches here.

#![forbid(unsafe_code)]

pub mod decode;
pub mod pcap;
#[cfg(feature = "dpdk")]
pub mod smoke;
