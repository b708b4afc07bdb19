//! Ethernet devices (ports): lookup, configuration, start/stop, MAC, link, stats, promiscuous
//! mode. The data path lives in [`crate::queue`].
//!
//! A [`Port`] is the only handle to its device: claiming a port id twice in a process fails with
//! [`EthError::AlreadyClaimed`] until the `Port` and all of its queues are gone, so that no two
//! owners ever poll the same queue.
use std::cell::Cell;
use std::ffi::{c_char, CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::errno::{code, Errno};
use crate::mempool::Mempool;
use crate::queue::{RxQueue, TxQueue};

const MAX_PORTS: usize = dpdk_sys::RTE_MAX_ETHPORTS as usize;

/// One flag per port id: set while a `Port` or one of its queues exists.
static CLAIMED: [AtomicBool; MAX_PORTS] = [const { AtomicBool::new(false) }; MAX_PORTS];

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

/// Ownership token of one port id; releases the claim when the port and all queues are gone.
#[derive(Debug)]
pub(crate) struct PortClaim {
    id: PortId,
}

impl Drop for PortClaim {
    fn drop(&mut self) {
        CLAIMED[usize::from(self.id.0)].store(false, Ordering::Release);
    }
}

/// Queue and descriptor counts for [`Port::configure`].
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
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 512,
            tx_desc: 512,
        }
    }
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

/// An owned ethdev port. Dropping it stops the device if it was started.
///
/// `Port` is `Send` but not `Sync`: DPDK's control-path functions for one port are not safe to
/// call concurrently, so one thread at a time owns it (statistics reads included).
pub struct Port {
    claim: Arc<PortClaim>,
    state: State,
    pool: Option<Mempool>,
    _not_sync: PhantomData<Cell<()>>,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.id())
            .field("state", &self.state)
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
        let flag = CLAIMED.get(usize::from(id.0)).ok_or(EthError::NoDevice {
            port: id,
            op: "claim",
        })?;
        if flag
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(EthError::AlreadyClaimed(id));
        }
        Ok(Self {
            claim: Arc::new(PortClaim { id }),
            state: State::Unconfigured,
            pool: None,
            _not_sync: PhantomData,
        })
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
    /// queues, and returns their handles. Can be called once per `Port`.
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
        let eth_conf = dpdk_sys::rte_eth_conf::default();
        // SAFETY: EAL runs; we own the port (claim); `eth_conf` is a valid zeroed config (all
        // defaults) that DPDK copies.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(id, conf.rx_queues, conf.tx_queues, &eth_conf)
        };
        check(self.id(), "rte_eth_dev_configure", ret)?;
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
            // pktmbuf pool that we keep alive in `self.pool` (and each queue keeps a clone) for
            // as long as the queue may allocate from it; NULL rxconf means driver defaults.
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
        self.state = State::Configured;
        self.pool = Some(pool.clone());
        let rx = (0..conf.rx_queues)
            .map(|q| RxQueue::new(self.id(), q, Arc::clone(&self.claim), pool.clone()))
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
        self.state = State::Started;
        Ok(())
    }

    /// Stops the device (`rte_eth_dev_stop`); queues then receive and send nothing.
    ///
    /// # Errors
    ///
    /// The mapped errno.
    pub fn stop(&mut self) -> Result<(), EthError> {
        self.running()?;
        if self.state != State::Started {
            return Ok(());
        }
        // SAFETY: EAL runs; the port is started (checked) and owned by us. After stop, DPDK
        // points the port's fast-path ops at dummies, so queue handles stay harmless.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.raw_id()) };
        check(self.id(), "rte_eth_dev_stop", ret)?;
        self.state = State::Configured;
        Ok(())
    }

    /// Whether the port was started.
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.state == State::Started
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

impl Drop for Port {
    fn drop(&mut self) {
        if self.state == State::Started {
            let _ = self.stop();
        }
        // The claim (and the pool clone) go away with the last queue handle.
    }
}

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
    }
}
