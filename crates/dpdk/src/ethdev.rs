//! Ethernet devices (ports): lookup, configuration (queues, MTU, RSS), start/stop, device
//! information, MAC, MTU, link, stats, promiscuous mode. The data path lives in
//! [`crate::queue`].
//!
//! A [`Port`] is the only handle to its device: claiming a port id twice in a process fails with
//! [`EthError::AlreadyClaimed`] until the `Port` and all of its queues are gone, so that no two
//! owners ever poll the same queue.
//!
//! # Lifetime
//!
//! The `Port` and its [`RxQueue`]/[`TxQueue`] handles share one claim. The device is never
//! stopped or closed under a live queue handle:
//!
//! * [`Port::stop`] fails with [`EthError::QueuesLive`] while any queue handle exists;
//! * dropping the `Port` while queues exist leaves the device running; when the **last** of the
//!   `Port` and its queues is dropped (on whichever thread or lcore that happens), the device is
//!   stopped if started and closed (`rte_eth_dev_close`, which also releases the port id) if it
//!   was ever configured; a never-configured claim is just released;
//! * dropping [`Eal`](crate::Eal) stops and closes every port still claimed (after waiting for
//!   all worker lcores), before `rte_eal_cleanup`.
//!
//! A closed port id may be reused by DPDK for a new device, which is why no handle of the old
//! claim may outlive the close.
use std::cell::Cell;
use std::ffi::{c_char, CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::errno::{code, Errno};
use crate::mempool::Mempool;
use crate::queue::{RxQueue, TxQueue};

const MAX_PORTS: usize = dpdk_sys::RTE_MAX_ETHPORTS as usize;

/// Device state of one port id as the closers (last claim handle, EAL shutdown) see it.
/// `FREE`: no `Port` or queue handle exists. `CLAIMED`: claimed, device never configured by us.
/// `CONFIGURED`: `rte_eth_dev_configure` succeeded at least once (the device must be closed).
/// `STARTED`: `rte_eth_dev_start` succeeded (the device must be stopped, then closed).
const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const CONFIGURED: u8 = 2;
const STARTED: u8 = 3;

/// One state per port id (see `FREE` .. `STARTED`); written by `Port` methods while the `Port`
/// exists, by the last claim handle on release and read by EAL shutdown.
static PORTS: [AtomicU8; MAX_PORTS] = [const { AtomicU8::new(FREE) }; MAX_PORTS];

/// Serialises the two places that stop and close devices on release: the last claim handle
/// (`PortClaim::drop`, any thread) and EAL shutdown (`shutdown_ports`, main lcore), so that a
/// device is closed once and never after `rte_eal_cleanup` began.
static CLOSE_LOCK: Mutex<()> = Mutex::new(());

/// An ethdev port id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(u16);

impl PortId {
    /// The numeric id.
    #[must_use]
    pub fn as_u16(self) -> u16 {
        self.0
    }
}

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

/// Errors of port operations; DPDK's errno is mapped per operation (`op`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EthError {
    /// EAL is not running.
    #[error("EAL is not running")]
    EalNotRunning,
    /// The name contains a NUL byte.
    #[error("invalid port name {0:?}")]
    InvalidName(String),
    /// No port has this name.
    #[error("no ethdev port named {0:?}")]
    NotFound(String),
    /// Another `Port` (or its queues) already owns this port id.
    #[error("{0} is already owned by another Port handle")]
    AlreadyClaimed(PortId),
    /// RX or TX queue handles of the port still exist; drop them first (the device is stopped
    /// under no live queue handle).
    #[error("{0} still has live queue handles")]
    QueuesLive(PortId),
    /// `configure` was already called on this port.
    #[error("{0} is already configured")]
    AlreadyConfigured(PortId),
    /// The operation needs a configured port.
    #[error("{0} is not configured")]
    NotConfigured(PortId),
    /// `ENODEV`: the port id is not valid (device gone).
    #[error("{op} on {port}: no such device")]
    NoDevice {
        /// Port.
        port: PortId,
        /// Operation.
        op: &'static str,
    },
    /// `EINVAL`: a parameter was rejected (queue count, descriptor count, ...).
    #[error("{op} on {port}: invalid argument")]
    InvalidArgument {
        /// Port.
        port: PortId,
        /// Operation.
        op: &'static str,
    },
    /// `ENOMEM`: not enough memory.
    #[error("{op} on {port}: out of memory")]
    NoMemory {
        /// Port.
        port: PortId,
        /// Operation.
        op: &'static str,
    },
    /// `ENOTSUP`: the driver does not support the operation.
    #[error("{op} on {port}: not supported by the driver")]
    NotSupported {
        /// Port.
        port: PortId,
        /// Operation.
        op: &'static str,
    },
    /// `EIO`: device removed or hardware error.
    #[error("{op} on {port}: I/O error")]
    Io {
        /// Port.
        port: PortId,
        /// Operation.
        op: &'static str,
    },
    /// `EBUSY`: the device is started or otherwise busy.
    #[error("{op} on {port}: device busy")]
    Busy {
        /// Port.
        port: PortId,
        /// Operation.
        op: &'static str,
    },
    /// Any other errno.
    #[error("{op} on {port}: {errno}")]
    Unknown {
        /// Port.
        port: PortId,
        /// Operation.
        op: &'static str,
        /// The errno.
        errno: Errno,
    },
}

impl EthError {
    fn from_ret(port: PortId, op: &'static str, ret: i32) -> Self {
        let errno = Errno::from_ret(ret);
        match errno.0 {
            code::ENODEV => Self::NoDevice { port, op },
            code::EINVAL => Self::InvalidArgument { port, op },
            code::ENOMEM => Self::NoMemory { port, op },
            code::ENOTSUP => Self::NotSupported { port, op },
            code::EIO => Self::Io { port, op },
            code::EBUSY => Self::Busy { port, op },
            _ => Self::Unknown { port, op, errno },
        }
    }
}

fn check(port: PortId, op: &'static str, ret: i32) -> Result<(), EthError> {
    if ret < 0 {
        Err(EthError::from_ret(port, op, ret))
    } else {
        Ok(())
    }
}

/// Name of the device behind port `id` (`rte_dev_name` of `rte_eth_dev_info.device`).
pub(crate) fn device_name(id: PortId) -> Option<String> {
    if !crate::eal::is_running() {
        return None;
    }
    let mut info = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: EAL runs (checked above); `info` is a valid out pointer; invalid ids return an
    // error.
    if unsafe { dpdk_sys::rte_eth_dev_info_get(id.0, &mut info) } != 0 || info.device.is_null() {
        return None;
    }
    // SAFETY: `info.device` is the port's live `rte_device` (non-null, checked).
    let p = unsafe { dpdk_sys::rte_dev_name(info.device) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `rte_dev_name` returns the device's NUL-terminated name, valid while the device
    // exists; we copy it at once.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn slot(id: PortId) -> &'static AtomicU8 {
    // Port ids come from DPDK (< RTE_MAX_ETHPORTS) or were checked in `Port::claim`.
    &PORTS[usize::from(id.0) % MAX_PORTS]
}

/// Stops (if started) and closes the device behind `id`, whose state is `state`.
///
/// # Safety
///
/// EAL must be initialised and not yet cleaned up, the caller must hold `CLOSE_LOCK`, and no
/// queue handle of the port may exist any more (or none may be used again: EAL shutdown, after
/// every worker lcore returned).
unsafe fn stop_and_close(id: PortId, state: u8) -> Result<(), Errno> {
    let mut first_err = None;
    if state == STARTED {
        // SAFETY: caller contract: EAL runs and nobody polls the port's queues any more.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(id.0) };
        if ret < 0 {
            first_err = Some(Errno::from_ret(ret));
        }
    }
    // SAFETY: as above; the device is stopped (or never started), as close requires.
    let ret = unsafe { dpdk_sys::rte_eth_dev_close(id.0) };
    if ret < 0 && first_err.is_none() {
        first_err = Some(Errno::from_ret(ret));
    }
    first_err.map_or(Ok(()), Err)
}

/// What EAL shutdown did to the ports still claimed.
#[derive(Debug, Default)]
pub(crate) struct PortsShutdown {
    pub(crate) closed: Vec<PortId>,
    pub(crate) failed: Vec<(PortId, Errno)>,
}

/// EAL shutdown: under `CLOSE_LOCK`, runs `mark_eal_gone` (after which no claim handle touches
/// DPDK any more) and then stops and closes every port that is still claimed.
///
/// Must be called on the main lcore, after every worker lcore returned, before
/// `rte_eal_cleanup`, with EAL running.
pub(crate) fn shutdown_ports(mark_eal_gone: impl FnOnce()) -> PortsShutdown {
    let _guard = CLOSE_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    mark_eal_gone();
    let mut out = PortsShutdown::default();
    for (i, s) in PORTS.iter().enumerate() {
        let state = s.load(Ordering::Acquire);
        if state == FREE {
            continue;
        }
        let id = PortId(u16::try_from(i).unwrap_or(u16::MAX));
        // SAFETY: EAL still runs (the caller cleans it up only after this returns), we hold
        // `CLOSE_LOCK`, and every worker lcore returned, so no lcore polls a queue of the port;
        // claim handles check `is_running` under the same lock and will not touch it again.
        match unsafe { stop_and_close(id, state) } {
            Ok(()) => out.closed.push(id),
            Err(e) => out.failed.push((id, e)),
        }
        // The claim handles still exist and reset their slot when dropped.
        s.store(CLAIMED, Ordering::Release);
    }
    out
}

/// Ownership token of one port id, shared by the [`Port`] and its queue handles. When the last
/// of them goes, the device is stopped and closed (see the module docs) and the claim released.
#[derive(Debug)]
pub(crate) struct PortClaim {
    id: PortId,
    /// The RX queues' mbuf pool, kept until the device is closed (drivers hold mbufs of it in
    /// their RX rings until then).
    pool: Option<Mempool>,
}

impl Drop for PortClaim {
    fn drop(&mut self) {
        let _guard = CLOSE_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let s = slot(self.id);
        let state = s.load(Ordering::Acquire);
        if state >= CONFIGURED && crate::eal::is_running() {
            // SAFETY: EAL runs (checked under `CLOSE_LOCK`, which EAL shutdown holds while it
            // marks EAL gone); this is the last handle of the claim, so no queue handle exists
            // and nobody polls the port's queues any more. Errors cannot be reported from drop;
            // the claim is released either way.
            let _ = unsafe { stop_and_close(self.id, state) };
        }
        s.store(FREE, Ordering::Release);
        // `self.pool` is dropped after this, i.e. after the close returned the driver's mbufs.
    }
}

/// Queue and descriptor counts, MTU and RSS for [`Port::configure`].
///
/// The default (1 RX and 1 TX queue of 512 descriptors, driver MTU, no RSS) passes an all-zero
/// `rte_eth_conf` to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of RX queues.
    pub rx_queues: u16,
    /// Number of TX queues.
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the driver's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the driver's limits).
    pub tx_desc: u16,
    /// MTU to configure (`rxmode.mtu`, then `rte_eth_dev_set_mtu` after configuring); `None`
    /// keeps the driver's default (normally 1500).
    pub mtu: Option<u16>,
    /// Spread received packets over the RX queues by RSS when `rx_queues > 1`:
    /// `rxmode.mq_mode = RTE_ETH_MQ_RX_RSS` with `rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP |
    /// RTE_ETH_RSS_UDP) & dev_info.flow_type_rss_offloads` and the driver's default key. When
    /// that mask is empty (the driver hashes none of these), or with one RX queue, or when
    /// `false`, the RX mode stays zeroed (no RSS), as testpmd does. Without RSS, extra RX
    /// queues of a real NIC stay empty.
    pub rss: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 512,
            tx_desc: 512,
            mtu: None,
            rss: false,
        }
    }
}

/// The RSS hash functions [`PortConfig::rss`] asks for, before masking with the driver's
/// `flow_type_rss_offloads`: `RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP`.
#[must_use]
pub fn rss_ip_tcp_udp() -> u64 {
    // SAFETY: the shim functions return compile-time constants; no state is touched.
    unsafe {
        dpdk_sys::dpdk_shim_eth_rss_ip()
            | dpdk_sys::dpdk_shim_eth_rss_tcp()
            | dpdk_sys::dpdk_shim_eth_rss_udp()
    }
}

/// Device information ([`Port::info`], from `rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevInfo {
    /// Driver name, for example `net_null`, `net_ring`, `net_tap`, `net_ixgbe`.
    pub driver_name: String,
    /// Maximum number of RX queues.
    pub max_rx_queues: u16,
    /// Maximum number of TX queues.
    pub max_tx_queues: u16,
    /// Smallest MTU the driver accepts.
    pub min_mtu: u16,
    /// Largest MTU the driver accepts.
    pub max_mtu: u16,
    /// RSS hash functions the device supports (`RTE_ETH_RSS_*` bits); 0 without RSS.
    pub flow_type_rss_offloads: u64,
    /// Kernel interface index of the device (for example a TAP's), 0 when there is none.
    pub if_index: u32,
}

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because the RX queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unconfigured,
    Configured,
    Started,
}

/// An owned ethdev port.
///
/// Dropping it releases this handle's share of the claim: the device is stopped and closed
/// when the last of the `Port` and its queue handles is gone (module docs, "Lifetime").
///
/// `Port` is `Send` but not `Sync`: DPDK's control-path functions for one port are not safe to
/// call concurrently, so one thread at a time owns it (statistics reads included).
pub struct Port {
    claim: Arc<PortClaim>,
    state: State,
    _not_sync: PhantomData<Cell<()>>,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.id())
            .field("state", &self.state)
            .field("queue_handles", &(Arc::strong_count(&self.claim) - 1))
            .finish_non_exhaustive()
    }
}

impl Port {
    /// Claims the port named `name` (for vdevs, the `--vdev` name such as `net_ring0`; EAL runs
    /// those with `--no-pci`, see `EalArgs`).
    ///
    /// # Errors
    ///
    /// [`EthError::NotFound`], [`EthError::AlreadyClaimed`], [`EthError::EalNotRunning`].
    pub fn by_name(name: &str) -> Result<Self, EthError> {
        if !crate::eal::is_running() {
            return Err(EthError::EalNotRunning);
        }
        let cname = CString::new(name).map_err(|_| EthError::InvalidName(name.to_owned()))?;
        let mut id: u16 = 0;
        // SAFETY: EAL runs (checked above); `cname` is a valid C string and `id` a valid out
        // pointer, both living across the call.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret == 0 {
            return Self::claim(PortId(id));
        }
        // Some drivers name the ethdev differently from the vdev (net_ring with `nodeaction`):
        // fall back to the underlying device's name.
        match Self::ids()
            .into_iter()
            .find(|&p| device_name(p).as_deref() == Some(name))
        {
            Some(p) => Self::claim(p),
            None => Err(EthError::NotFound(name.to_owned())),
        }
    }

    /// Creates two cross-connected `net_ring` ports named `net_ring_<name_a>` and
    /// `net_ring_<name_b>` (what one sends, the other receives) over two SP/SC rings of `ring_size` slots, and claims both.
    ///
    /// This uses `rte_eth_from_rings` of the `net_ring` PMD that EAL loads as a plugin; plain
    /// `--vdev net_ring0,nodeaction=...` arguments cannot connect two ports crosswise. The
    /// rings live until EAL cleanup. Names must be short (together at most 27 bytes).
    ///
    /// # Errors
    ///
    /// [`EthError::NotSupported`] when the net_ring PMD is not loaded, [`EthError::InvalidName`],
    /// or the mapped errno.
    pub fn ring_pair(name_a: &str, name_b: &str, ring_size: u32) -> Result<(Self, Self), EthError> {
        if !crate::eal::is_running() {
            return Err(EthError::EalNotRunning);
        }
        let ca = CString::new(name_a).map_err(|_| EthError::InvalidName(name_a.to_owned()))?;
        let cb = CString::new(name_b).map_err(|_| EthError::InvalidName(name_b.to_owned()))?;
        let (mut a, mut b) = (0u16, 0u16);
        // SAFETY: EAL runs (checked above); the names are valid C strings and the out pointers
        // point to locals, all living across the call.
        let ret = unsafe {
            dpdk_sys::dpdk_shim_eth_ring_pair(ca.as_ptr(), cb.as_ptr(), ring_size, &mut a, &mut b)
        };
        if ret < 0 {
            return Err(EthError::from_ret(
                PortId(u16::MAX),
                "rte_eth_from_rings",
                ret,
            ));
        }
        Ok((Self::claim(PortId(a))?, Self::claim(PortId(b))?))
    }

    /// Claims the port with id `id`.
    ///
    /// # Errors
    ///
    /// [`EthError::NoDevice`] for an invalid id, [`EthError::AlreadyClaimed`].
    pub fn by_id(id: u16) -> Result<Self, EthError> {
        if !crate::eal::is_running() {
            return Err(EthError::EalNotRunning);
        }
        // SAFETY: EAL runs (checked above); the function accepts any id.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(EthError::NoDevice {
                port: PortId(id),
                op: "rte_eth_dev_is_valid_port",
            });
        }
        Self::claim(PortId(id))
    }

    /// Ids of all valid ports.
    #[must_use]
    pub fn ids() -> Vec<PortId> {
        if !crate::eal::is_running() {
            return Vec::new();
        }
        (0..u16::try_from(MAX_PORTS).unwrap_or(u16::MAX))
            // SAFETY: EAL runs (checked above); the function accepts any id.
            .filter(|&id| unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } != 0)
            .map(PortId)
            .collect()
    }

    fn claim(id: PortId) -> Result<Self, EthError> {
        let flag = PORTS.get(usize::from(id.0)).ok_or(EthError::NoDevice {
            port: id,
            op: "claim",
        })?;
        if flag
            .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(EthError::AlreadyClaimed(id));
        }
        Ok(Self {
            claim: Arc::new(PortClaim { id, pool: None }),
            state: State::Unconfigured,
            _not_sync: PhantomData,
        })
    }

    /// Sets the state seen by `Port` methods and by the closers.
    fn set_state(&mut self, state: State) {
        self.state = state;
        slot(self.id()).store(
            match state {
                State::Unconfigured => CLAIMED,
                State::Configured => CONFIGURED,
                State::Started => STARTED,
            },
            Ordering::Release,
        );
    }

    /// Whether RX or TX queue handles of this port exist.
    ///
    /// Exact, not a snapshot: queue handles are only created by [`Port::configure`]
    /// (`&mut self`), so their number can shrink concurrently but never grow.
    #[must_use]
    pub fn has_live_queues(&self) -> bool {
        Arc::strong_count(&self.claim) > 1
    }

    /// The port id.
    #[must_use]
    pub fn id(&self) -> PortId {
        self.claim.id
    }

    fn raw_id(&self) -> u16 {
        self.claim.id.0
    }

    fn running(&self) -> Result<(), EthError> {
        if crate::eal::is_running() {
            Ok(())
        } else {
            Err(EthError::EalNotRunning)
        }
    }

    /// The name of the underlying device (for vdevs, the `--vdev` name such as `net_tap0`).
    #[must_use]
    pub fn device_name(&self) -> Option<String> {
        device_name(self.id())
    }

    /// The ethdev name (`rte_eth_dev_get_name_by_port`).
    ///
    /// # Errors
    ///
    /// [`EthError`] with the mapped errno.
    pub fn name(&self) -> Result<String, EthError> {
        self.running()?;
        let mut buf = [0 as c_char; dpdk_sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: EAL runs; `buf` has RTE_ETH_NAME_MAX_LEN bytes as the function requires.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(self.raw_id(), buf.as_mut_ptr()) };
        check(self.id(), "rte_eth_dev_get_name_by_port", ret)?;
        // SAFETY: on success DPDK wrote a NUL-terminated name into `buf`.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    /// Configures `conf.rx_queues` RX queues (buffers from `pool`) and `conf.tx_queues` TX
    /// queues, the MTU and RSS (see [`PortConfig`]), and returns the queue handles. Can be
    /// called once per `Port` (again only after a failed attempt).
    ///
    /// # Errors
    ///
    /// [`EthError::AlreadyConfigured`], or the mapped errno of the failing DPDK call.
    pub fn configure(
        &mut self,
        conf: &PortConfig,
        pool: &Mempool,
    ) -> Result<(Vec<RxQueue>, Vec<TxQueue>), EthError> {
        self.running()?;
        if self.state != State::Unconfigured {
            return Err(EthError::AlreadyConfigured(self.id()));
        }
        let id = self.raw_id();
        let mut eth_conf = dpdk_sys::rte_eth_conf::default();
        if let Some(mtu) = conf.mtu {
            eth_conf.rxmode.mtu = u32::from(mtu);
        }
        if conf.rss && conf.rx_queues > 1 {
            let hf = rss_ip_tcp_udp() & self.info()?.flow_type_rss_offloads;
            if hf != 0 {
                eth_conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                // A null key with length 0 selects the driver's default key.
                eth_conf.rx_adv_conf.rss_conf.rss_hf = hf;
            }
        }
        // Keep the pool in the shared claim before any RX queue can take mbufs from it: it must
        // outlive the device (closed by the last claim handle). No queue handle exists yet
        // (state is Unconfigured and queues are created only below), so the claim is unique.
        match Arc::get_mut(&mut self.claim) {
            Some(claim) => claim.pool = Some(pool.clone()),
            None => unreachable!("queue handles exist before configure succeeded"),
        }
        // SAFETY: EAL runs; we own the port (claim); `eth_conf` is a valid config (zeroed
        // except the MTU and RSS fields set above) that DPDK copies.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(id, conf.rx_queues, conf.tx_queues, &eth_conf)
        };
        check(self.id(), "rte_eth_dev_configure", ret)?;
        // From here on the device must be closed on release, even if a later step fails.
        slot(self.id()).store(CONFIGURED, Ordering::Release);
        if let Some(mtu) = conf.mtu {
            self.set_mtu(mtu)?;
        }
        let (mut nb_rxd, mut nb_txd) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: EAL runs; valid out pointers to locals.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rxd, &mut nb_txd) };
        check(self.id(), "rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;
        // SAFETY: EAL runs; the function accepts any port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        // SOCKET_ID_ANY (-1) maps to u32::MAX, which is what DPDK expects for "any".
        let socket = socket as u32;
        for q in 0..conf.rx_queues {
            // SAFETY: EAL runs; the port is configured with `rx_queues` queues; `pool` is a live
            // pktmbuf pool that the shared claim keeps alive until the device is closed (set
            // above); NULL rxconf means driver defaults.
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    nb_rxd,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(self.id(), "rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: EAL runs; the port is configured with `tx_queues` queues; NULL txconf
            // means driver defaults.
            let ret = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, nb_txd, socket, std::ptr::null())
            };
            check(self.id(), "rte_eth_tx_queue_setup", ret)?;
        }
        self.set_state(State::Configured);
        let rx = (0..conf.rx_queues)
            .map(|q| RxQueue::new(self.id(), q, Arc::clone(&self.claim)))
            .collect();
        let tx = (0..conf.tx_queues)
            .map(|q| TxQueue::new(self.id(), q, Arc::clone(&self.claim)))
            .collect();
        Ok((rx, tx))
    }

    /// Starts the device (`rte_eth_dev_start`).
    ///
    /// # Errors
    ///
    /// [`EthError::NotConfigured`], or the mapped errno.
    pub fn start(&mut self) -> Result<(), EthError> {
        self.running()?;
        match self.state {
            State::Unconfigured => return Err(EthError::NotConfigured(self.id())),
            State::Started => return Ok(()),
            State::Configured => {}
        }
        // SAFETY: EAL runs; the port is configured (checked) and owned by us.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.raw_id()) };
        check(self.id(), "rte_eth_dev_start", ret)?;
        self.set_state(State::Started);
        Ok(())
    }

    /// Stops the device (`rte_eth_dev_stop`). Only allowed once every RX and TX queue handle
    /// of the port was dropped; a stopped port can be started again, but its queue handles
    /// are gone, so this is mostly useful before dropping the `Port` to see errors.
    ///
    /// # Errors
    ///
    /// [`EthError::QueuesLive`] while queue handles exist (the device keeps running), or the
    /// mapped errno.
    pub fn stop(&mut self) -> Result<(), EthError> {
        self.running()?;
        if self.state != State::Started {
            return Ok(());
        }
        if self.has_live_queues() {
            return Err(EthError::QueuesLive(self.id()));
        }
        // SAFETY: EAL runs; the port is started (checked) and owned by us; no queue handle
        // exists (checked; none can appear, see `has_live_queues`), so nobody polls it.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.raw_id()) };
        check(self.id(), "rte_eth_dev_stop", ret)?;
        self.set_state(State::Configured);
        Ok(())
    }

    /// Whether the port was started.
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.state == State::Started
    }

    /// Device information (`rte_eth_dev_info_get`).
    ///
    /// # Errors
    ///
    /// The mapped errno.
    pub fn info(&self) -> Result<DevInfo, EthError> {
        self.running()?;
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: EAL runs; `info` is a valid out pointer that DPDK fills.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(self.raw_id(), &mut info) };
        check(self.id(), "rte_eth_dev_info_get", ret)?;
        let driver_name = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: non-null pointer to the driver's static NUL-terminated name (valid while
            // the driver is loaded, i.e. for the life of EAL); copied at once.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(DevInfo {
            driver_name,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            if_index: info.if_index,
        })
    }

    /// The RSS hash functions in use (`rss_hf` of `rte_eth_dev_rss_hash_conf_get`): 0 when the
    /// port was configured without RSS.
    ///
    /// # Errors
    ///
    /// The mapped errno (`NotSupported` for drivers without RSS).
    pub fn rss_hash_functions(&self) -> Result<u64, EthError> {
        self.running()?;
        // A null key pointer asks for the hash functions only.
        let mut c = dpdk_sys::rte_eth_rss_conf {
            rss_key: std::ptr::null_mut(),
            rss_key_len: 0,
            rss_hf: 0,
        };
        // SAFETY: EAL runs; `c` is a valid out structure with a null key pointer, which DPDK
        // documents as "do not copy the key".
        let ret = unsafe { dpdk_sys::rte_eth_dev_rss_hash_conf_get(self.raw_id(), &mut c) };
        check(self.id(), "rte_eth_dev_rss_hash_conf_get", ret)?;
        Ok(c.rss_hf)
    }

    /// The port's MAC address.
    ///
    /// # Errors
    ///
    /// The mapped errno.
    pub fn mac_address(&self) -> Result<MacAddr, EthError> {
        self.running()?;
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: EAL runs; `a` is a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.raw_id(), &mut a) };
        check(self.id(), "rte_eth_macaddr_get", ret)?;
        Ok(MacAddr(a.addr_bytes))
    }

    /// Sets the port's default MAC address (`rte_eth_dev_default_mac_addr_set`; for a TAP this
    /// also changes the kernel interface's address).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for a multicast or all-zero address, `NotSupported` for drivers that
    /// cannot change it, or the mapped errno.
    pub fn set_mac_address(&mut self, mac: MacAddr) -> Result<(), EthError> {
        self.running()?;
        let mut a = dpdk_sys::rte_ether_addr { addr_bytes: mac.0 };
        // SAFETY: EAL runs; we own the port; `a` is a valid address that DPDK copies.
        let ret = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(self.raw_id(), &mut a) };
        check(self.id(), "rte_eth_dev_default_mac_addr_set", ret)
    }

    /// The port's MTU (`rte_eth_dev_get_mtu`).
    ///
    /// # Errors
    ///
    /// The mapped errno.
    pub fn mtu(&self) -> Result<u16, EthError> {
        self.running()?;
        let mut mtu = 0u16;
        // SAFETY: EAL runs; `mtu` is a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_mtu(self.raw_id(), &mut mtu) };
        check(self.id(), "rte_eth_dev_get_mtu", ret)?;
        Ok(mtu)
    }

    /// Sets the MTU (`rte_eth_dev_set_mtu`; for a TAP also the kernel interface's MTU). Needs a
    /// configured port. Drivers without an MTU operation (net_null, net_ring) succeed only when
    /// the MTU already has that value (for example from [`PortConfig::mtu`]).
    ///
    /// # Errors
    ///
    /// [`EthError::NotConfigured`]; `InvalidArgument` outside the driver's
    /// [`DevInfo::min_mtu`]..=[`DevInfo::max_mtu`]; `NotSupported`; or the mapped errno.
    pub fn set_mtu(&mut self, mtu: u16) -> Result<(), EthError> {
        self.running()?;
        if slot(self.id()).load(Ordering::Acquire) < CONFIGURED {
            return Err(EthError::NotConfigured(self.id()));
        }
        // SAFETY: EAL runs; we own the port, which is configured (checked).
        let ret = unsafe { dpdk_sys::rte_eth_dev_set_mtu(self.raw_id(), mtu) };
        if ret == -code::ENOTSUP && self.mtu().ok() == Some(mtu) {
            return Ok(());
        }
        check(self.id(), "rte_eth_dev_set_mtu", ret)
    }

    /// Link status without waiting (`rte_eth_link_get_nowait`).
    ///
    /// # Errors
    ///
    /// The mapped errno.
    pub fn link(&self) -> Result<LinkStatus, EthError> {
        self.running()?;
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: EAL runs; `l` is a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.raw_id(), &mut l) };
        check(self.id(), "rte_eth_link_get_nowait", ret)?;
        Ok(LinkStatus {
            up: u32::from(l.link_status()) == dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: l.link_speed,
            full_duplex: u32::from(l.link_duplex()) == dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// Port counters.
    ///
    /// # Errors
    ///
    /// The mapped errno.
    pub fn stats(&self) -> Result<PortStats, EthError> {
        self.running()?;
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: EAL runs; `s` is a valid out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.raw_id(), &mut s) };
        check(self.id(), "rte_eth_stats_get", ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the port counters.
    ///
    /// # Errors
    ///
    /// The mapped errno.
    pub fn reset_stats(&mut self) -> Result<(), EthError> {
        self.running()?;
        // SAFETY: EAL runs; we own the port.
        let ret = unsafe { dpdk_sys::rte_eth_stats_reset(self.raw_id()) };
        check(self.id(), "rte_eth_stats_reset", ret)
    }

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    ///
    /// The mapped errno (`NotSupported` for drivers without the mode).
    pub fn set_promiscuous(&mut self, on: bool) -> Result<(), EthError> {
        self.running()?;
        // SAFETY: EAL runs; we own the port.
        let ret = unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(self.raw_id())
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(self.raw_id())
            }
        };
        check(
            self.id(),
            if on {
                "rte_eth_promiscuous_enable"
            } else {
                "rte_eth_promiscuous_disable"
            },
            ret,
        )
    }

    /// Whether promiscuous mode is on.
    ///
    /// # Errors
    ///
    /// The mapped errno.
    pub fn is_promiscuous(&self) -> Result<bool, EthError> {
        self.running()?;
        // SAFETY: EAL runs; the function only reads the port's state.
        let ret = unsafe { dpdk_sys::rte_eth_promiscuous_get(self.raw_id()) };
        check(self.id(), "rte_eth_promiscuous_get", ret)?;
        Ok(ret == 1)
    }
}

// No `Drop for Port`: dropping it drops its share of the claim; the device is stopped and
// closed by `PortClaim::drop` once the queue handles are gone too.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_addresses_format() {
        assert_eq!(format!("{:?}", PortId(3)), "port3");
        assert_eq!(
            MacAddr([0x02, 0, 0xab, 1, 2, 0xff]).to_string(),
            "02:00:ab:01:02:ff"
        );
        assert_eq!(format!("{:?}", crate::LcoreId::new(7)), "lcore7");
    }

    #[test]
    fn errno_maps_per_operation() {
        let e = EthError::from_ret(PortId(1), "rte_eth_dev_start", -code::ENOTSUP);
        assert!(matches!(
            e,
            EthError::NotSupported {
                op: "rte_eth_dev_start",
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "rte_eth_dev_start on port1: not supported by the driver"
        );
        assert!(matches!(
            EthError::from_ret(PortId(1), "x", -999),
            EthError::Unknown {
                errno: Errno(999),
                ..
            }
        ));
        assert_eq!(
            EthError::QueuesLive(PortId(2)).to_string(),
            "port2 still has live queue handles"
        );
    }

    #[test]
    fn default_config_is_unchanged_and_rss_mask_is_ip_tcp_udp() {
        let d = PortConfig::default();
        assert_eq!(
            (d.rx_queues, d.tx_queues, d.rx_desc, d.tx_desc),
            (1, 1, 512, 512)
        );
        assert_eq!((d.mtu, d.rss), (None, false));
        // RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP in DPDK 22.11 (bits 2-5, 7-11, 13,
        // 15-17).
        assert_eq!(rss_ip_tcp_udp(), 0x3_afbc);
    }
}
