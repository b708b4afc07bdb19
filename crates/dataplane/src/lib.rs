//! The WCCPv2 router's data plane: the per-packet pipeline ([`pipeline`]), the worker poll loop
//! ([`worker`]), the control lcore ([`control`]) and the tables they share ([`tables`]),
//! generic over the packet-buffer and port traits of [`buf`].
//!
//! # Contract
//! * The pipeline and the worker loop never allocate, lock, log or make a syscall or an FFI
//!   call per packet; every verdict and drop reason is a per-lcore counter ([`counters`]).
//! * Tables are immutable once published; workers read them through an `rcu::Reader` and
//!   report a quiescent state once per loop; only the control lcore frees old tables.
//! * Malformed input is a counted drop, never a panic.
//! * The same code runs on `dpdk::Mbuf` (feature `dpdk`, module `dpdk_impl`) and on
//!   [`buf::VecBuf`] in tests.

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod buf;
pub mod control;
pub mod counters;
#[cfg(feature = "dpdk")]
pub mod dpdk_impl;
pub mod explain;
pub mod lanes;
pub mod pipeline;
pub mod stages;
pub mod status;
pub mod tables;
pub mod worker;

pub use buf::{Batch, PacketBuf, VecBuf, BURST};
pub use control::ControlPlane;
pub use counters::{LcoreCounters, Reason};
pub use pipeline::{process, Action};
pub use tables::{Tables, Topology};
pub use worker::Worker;
