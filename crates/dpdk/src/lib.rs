//! Safe Rust API over DPDK 22.11: EAL, lcores, mempools, mbufs, ethdev ports and queues, rings.
//!
//! This is the only crate with hand-written FFI: every call into `dpdk-sys` happens here, behind
//! one module per DPDK object, and every `unsafe` block says which invariant makes it sound and
//! where that invariant is established.
//!
//! # Contract
//!
//! * EAL is initialised at most once per process ([`eal::Eal::init`]); every other object needs a
//!   running EAL and refuses to touch DPDK (leaking instead of freeing) once it was cleaned up.
//! * Resources are RAII values: [`Mbuf`] frees its buffer, [`Burst`] frees what it holds in one
//!   bulk call, [`Mempool`] frees the pool when the last handle goes and no mbuf is outstanding,
//!   rings free their contents. A [`Port`] and its queue handles share one claim: the device is
//!   stopped and closed when the last of them goes, never under a live queue handle
//!   ([`Port::stop`] refuses with [`EthError::QueuesLive`]). Dropping [`Eal`] waits for the
//!   worker lcores and closes every port still claimed before `rte_eal_cleanup`.
//! * Errors are values ([`thiserror`] enums, DPDK errno mapped to variants with an `Unknown`
//!   fallback); nothing in this crate aborts the process on a bad argument.
//! * The fast path (`rx_burst`, `tx_burst`, ring enqueue/dequeue, mbuf edits) does not allocate,
//!   lock or block; bursts are fixed-capacity arrays ([`Burst`]). Mbuf views and edits are
//!   inline Rust over the `rte_mbuf` fields (no FFI call per packet); `rx_burst` always asks
//!   the driver for a full burst (it needs an empty [`Burst`]).
//!
//! # Threading
//!
//! | type | `Send` | `Sync` | DPDK rule |
//! |---|---|---|---|
//! | [`Eal`] | no | no | init, cleanup and remote launches happen on the main lcore |
//! | [`Mempool`] | yes | yes | mempool get/put are MT-safe |
//! | [`Mbuf`], [`Burst`] | yes | no | one owner at a time; freeing is MT-safe |
//! | [`RxQueue`], [`TxQueue`] | yes | no | a queue is polled by one thread at a time |
//! | [`RingProducer`], [`RingConsumer`] | yes | no | SP/SC sides have one user; MP/MC sides are cloned, never shared |
//! | [`Port`] | yes | no | control-path calls for one port are not concurrent |
//!
//! These are checked at compile time:
//!
//! ```
//! fn send<T: Send>() {}
//! send::<dpdk::Mbuf>();
//! send::<dpdk::Burst>();
//! send::<dpdk::RxQueue>();
//! send::<dpdk::TxQueue>();
//! send::<dpdk::RingProducer>();
//! send::<dpdk::RingConsumer>();
//! send::<dpdk::Port>();
//! fn sync<T: Send + Sync>() {}
//! sync::<dpdk::Mempool>();
//! ```
//!
//! ```compile_fail
//! fn sync<T: Sync>() {}
//! sync::<dpdk::RxQueue>();
//! ```
//!
//! ```compile_fail
//! fn sync<T: Sync>() {}
//! sync::<dpdk::TxQueue>();
//! ```
//!
//! ```compile_fail
//! fn sync<T: Sync>() {}
//! sync::<dpdk::Mbuf>();
//! ```
//!
//! ```compile_fail
//! fn sync<T: Sync>() {}
//! sync::<dpdk::RingConsumer>();
//! ```
//!
//! ```compile_fail
//! fn send<T: Send>() {}
//! send::<dpdk::Eal>();
//! ```
//!
//! # What it must never do
//!
//! Create an mbuf handle from a null pointer, forget a collection of mbufs, unwind into C, or
//! let two owners poll the same queue.
#![deny(missing_docs)]
// Peer input and configuration are errors, never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod burst;
pub mod capture;
pub mod clock;
pub mod eal;
pub mod errno;
pub mod ethdev;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod queue;
pub mod ring;

pub use burst::{Burst, MAX_BURST};
pub use capture::{CaptureError, CaptureInfo};
pub use eal::{CleanupReport, Eal, EalArgs, EalError};
pub use errno::Errno;
pub use ethdev::{DevInfo, EthError, LinkStatus, MacAddr, Port, PortConfig, PortId, PortStats};
pub use lcore::launch;
pub use lcore::{LaunchError, LaunchHandle, LcoreError, LcoreId};
pub use mbuf::{Mbuf, MbufError};
pub use mempool::{Mempool, MempoolError};
pub use queue::{RxQueue, TxOutcome, TxQueue};
pub use ring::{RingConsumer, RingError, RingMode, RingProducer};
