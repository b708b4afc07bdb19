//! Packet capture by secondary processes: DPDK's `rte_pdump` server in this (primary) process,
//! so that `dpdk-dumpcap` (or any `rte_pdump` client) can capture on our ports.
//!
//! [`Eal::enable_capture`] registers the server (`rte_pdump_init`); shutting EAL down
//! unregisters it (`rte_pdump_uninit`) before anything else (see the `eal` module docs,
//! "Shutdown").
//!
//! How it works, and what it costs: a client is a DPDK *secondary* process started with the
//! same `--file-prefix`. It asks the server, over EAL's multi-process socket, to install RX and
//! TX callbacks on the ports it captures; those callbacks run inside `rte_eth_rx_burst` and
//! `rte_eth_tx_burst` (which every [`RxQueue`](crate::RxQueue) and [`TxQueue`](crate::TxQueue)
//! call goes through), copy each packet into the client's mempool and enqueue it on the
//! client's ring. When the client stops, the callbacks are removed. With no client attached,
//! enabling capture costs nothing per packet.
//!
//! What it needs from EAL, checked here because `rte_pdump_init` itself reports success without
//! it:
//!
//! * a shared runtime directory, `/var/run/dpdk/<file prefix>/`, with EAL's multi-process
//!   socket (`mp_socket`) in it: not `--in-memory`, not `--no-shconf`;
//! * hugepages: a secondary maps the primary's memory from its hugepage files, which
//!   `--no-huge` does not have (a client then fails with "Cannot get hugepage information").
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::eal::Eal;
use crate::errno::Errno;

/// Whether this process registered the `rte_pdump` server; [`Eal`]'s shutdown unregisters it.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Why packet capture could not be enabled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// EAL keeps no multi-process socket: it runs with `--in-memory` or `--no-shconf`.
    #[error(
        "no EAL multi-process socket in {dir}: EAL runs with --in-memory or --no-shconf, so no \
         secondary process (dpdk-dumpcap) can attach"
    )]
    NoSharedRuntime {
        /// EAL's runtime directory.
        dir: PathBuf,
    },
    /// EAL runs without hugepages (`--no-huge`): a secondary process cannot map its memory.
    #[error(
        "EAL runs with --no-huge: a secondary process (dpdk-dumpcap) cannot map this \
         process's memory; capture needs hugepages"
    )]
    NoHugepages,
    /// Capture was already enabled in this process.
    #[error("packet capture is already enabled")]
    AlreadyEnabled,
    /// `rte_pdump_init` failed (for example no memory for its statistics).
    #[error("rte_pdump_init failed: {0}")]
    Init(Errno),
}

/// Where a capture client finds this process.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaptureInfo {
    /// EAL's runtime directory, `/var/run/dpdk/<file prefix>` for root.
    pub runtime_dir: PathBuf,
    /// The file prefix a client must be given (`dpdk-dumpcap --file-prefix=<this>`): the last
    /// component of the runtime directory.
    pub file_prefix: String,
}

impl Eal {
    /// Lets secondary processes (`dpdk-dumpcap`) capture packets on this process's ports:
    /// checks that EAL can share its memory with them, then registers the `rte_pdump` server
    /// (`rte_pdump_init`). Call it once, on the main lcore's thread, after [`Eal::init`] and
    /// before the ports carry traffic that should be capturable (captures attached later work
    /// too). EAL's shutdown unregisters it before `rte_eal_cleanup`.
    ///
    /// # Errors
    ///
    /// [`CaptureError::NoSharedRuntime`] or [`CaptureError::NoHugepages`] when EAL was started
    /// in a mode that forbids secondary processes; [`CaptureError::AlreadyEnabled`] on a
    /// second call; [`CaptureError::Init`] when `rte_pdump_init` fails.
    pub fn enable_capture(&self) -> Result<CaptureInfo, CaptureError> {
        let runtime_dir = runtime_dir();
        // `rte_pdump_init` returns 0 even when EAL's IPC is disabled (it ignores ENOTSUP from
        // `rte_mp_action_register`), so look for the socket a secondary connects to.
        if !runtime_dir.join("mp_socket").exists() {
            return Err(CaptureError::NoSharedRuntime { dir: runtime_dir });
        }
        // SAFETY: EAL is initialised (an `Eal` exists); the function reads EAL's internal
        // configuration and has no other effect.
        if unsafe { dpdk_sys::rte_eal_has_hugepages() } == 0 {
            return Err(CaptureError::NoHugepages);
        }
        if ENABLED
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(CaptureError::AlreadyEnabled);
        }
        // SAFETY: EAL is initialised and running (an `Eal` exists; `Eal` is `!Send`, so this is
        // the main lcore's thread); the flag exchange above makes this the only call. The
        // function reserves a memzone and registers an IPC action, both owned by EAL until
        // `rte_pdump_uninit` / `rte_eal_cleanup`.
        if unsafe { dpdk_sys::rte_pdump_init() } < 0 {
            let e = Errno::last();
            ENABLED.store(false, Ordering::Release);
            return Err(CaptureError::Init(e));
        }
        let file_prefix = runtime_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(CaptureInfo {
            runtime_dir,
            file_prefix,
        })
    }

    /// Whether [`Eal::enable_capture`] succeeded and EAL is not shut down yet.
    #[must_use]
    pub fn capture_enabled(&self) -> bool {
        ENABLED.load(Ordering::Acquire)
    }
}

/// EAL's runtime directory (`rte_eal_get_runtime_dir`).
fn runtime_dir() -> PathBuf {
    // SAFETY: callers hold an `Eal`, so EAL is initialised; the function returns a pointer to a
    // static NUL-terminated buffer that EAL fills once during init and never changes.
    let p = unsafe { dpdk_sys::rte_eal_get_runtime_dir() };
    if p.is_null() {
        return PathBuf::new();
    }
    // SAFETY: non-null, NUL-terminated, static for the life of the process (see above); copied.
    let s = unsafe { CStr::from_ptr(p) };
    PathBuf::from(s.to_string_lossy().into_owned())
}

/// Unregisters the `rte_pdump` server if this process registered one. Called by [`Eal`]'s
/// shutdown on the main lcore's thread, while EAL still runs.
pub(crate) fn shutdown() {
    if ENABLED.swap(false, Ordering::AcqRel) {
        // SAFETY: EAL still runs (called before `rte_eal_cleanup`, from the `Eal`'s shutdown on
        // the main lcore's thread) and `rte_pdump_init` succeeded (the flag was set); the call
        // unregisters the IPC action and touches nothing else.
        let _ = unsafe { dpdk_sys::rte_pdump_uninit() };
    }
}
