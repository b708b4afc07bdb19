//! EAL start-up and shutdown.
//!
//! ```no_run
//! use dpdk::{Eal, EalArgs};
//! let eal = Eal::init(
//!     EalArgs::new()
//!         .no_pci()
//!         .in_memory()
//!         .file_prefix("demo")
//!         .vdev("net_null0"),
//! )?;
//! println!("main lcore {:?}, workers {:?}", eal.main_lcore(), eal.worker_lcores());
//! drop(eal); // wait for workers, stop and close claimed ports, rte_eal_cleanup
//! # Ok::<(), dpdk::EalError>(())
//! ```
//!
//! EAL can be initialised at most once per process, even after a failed attempt or after
//! cleanup: a second [`Eal::init`] returns [`EalError::AlreadyInitialized`] instead of calling
//! into DPDK again.
//!
//! # Shutdown
//!
//! Dropping the [`Eal`] (or [`Eal::cleanup`], which also reports what it did):
//!
//! 0. unregisters the packet-capture server if [`Eal::enable_capture`] registered one
//!    (`rte_pdump_uninit`, see [`capture`](crate::capture)), so no new capture can attach;
//! 1. waits for every worker lcore to return (`rte_eal_mp_wait_lcore`), including launches
//!    whose [`LaunchHandle`](crate::LaunchHandle) was leaked;
//! 2. marks EAL gone, so that every object dropped later leaks instead of calling into DPDK;
//! 3. stops and closes every port that is still claimed by a [`Port`](crate::Port) or by queue
//!    handles (`rte_eth_dev_stop`, `rte_eth_dev_close`: TAP interfaces disappear, drivers
//!    release their resources);
//! 4. calls `rte_eal_cleanup`.
//!
//! Queue handles moved to non-EAL threads must be dropped (or no longer used) before that:
//! only lcores are waited for.
use std::ffi::{c_char, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::errno::{code, Errno};
use crate::ethdev::PortId;
use crate::lcore::LcoreId;

const STATE_NEW: u8 = 0;
const STATE_INITIALISING: u8 = 1;
const STATE_RUNNING: u8 = 2;
const STATE_FAILED: u8 = 3;
const STATE_CLEANED: u8 = 4;

/// Process-wide EAL state; only [`Eal::init`] and `Eal::drop` write it.
static STATE: AtomicU8 = AtomicU8::new(STATE_NEW);

/// Whether EAL is initialised and not yet cleaned up.
///
/// Objects that free DPDK memory on drop check this first and leak instead once EAL is gone.
#[must_use]
#[inline]
pub fn is_running() -> bool {
    STATE.load(Ordering::Acquire) == STATE_RUNNING
}

/// The `--lcores` list that maps lcores `0..count` (at least one) onto `cpus` in order,
/// wrapping around when there are fewer CPUs than lcores (lcores then share a CPU): CPU 0
/// when `cpus` is empty. [`EalArgs::auto_lcores`] uses it with [`allowed_cpus`]; so does
/// `wccpd bench` for the testpmd runs it compares with the data plane's.
#[must_use]
pub fn lcore_list(count: usize, cpus: &[u32]) -> String {
    let cpus = if cpus.is_empty() { &[0][..] } else { cpus };
    (0..count.max(1))
        .map(|i| format!("{i}@{}", cpus[i % cpus.len()]))
        .collect::<Vec<_>>()
        .join(",")
}

/// CPUs this process may run on, from `Cpus_allowed_list` in `/proc/self/status` (for example
/// `0-1,4`); empty when unreadable.
#[must_use]
pub fn allowed_cpus() -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let Some(list) = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Vec::new();
    };
    parse_cpu_list(list.trim())
}

/// Free 2 MiB hugepages, from `HugePages_Free` in `/proc/meminfo`; 0 when unreadable.
#[must_use]
pub fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Free 2 MiB hugepages a short run ([`EalArgs::short_run_memory`]) wants before it uses them.
pub const SHORT_RUN_HUGEPAGES: u64 = 64;

fn parse_cpu_list(list: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let mut ends = part.splitn(2, '-').map(|n| n.trim().parse::<u32>());
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), None) => out.push(a),
            (Some(Ok(a)), Some(Ok(b))) if a <= b && b - a < 4096 => out.extend(a..=b),
            _ => return Vec::new(),
        }
    }
    out
}

/// Device names behind all ethdev ports.
fn probed_devices() -> Vec<String> {
    crate::ethdev::Port::ids()
        .into_iter()
        .filter_map(crate::ethdev::device_name)
        .collect()
}

/// Why EAL initialisation failed (`rte_eal_init` errno, see `rte_eal.h`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EalError {
    /// EAL was already initialised (or an attempt was made) in this process.
    #[error("EAL can be initialised only once per process")]
    AlreadyInitialized,
    /// An argument contains a NUL byte and cannot be passed to C.
    #[error("EAL argument {index} contains a NUL byte")]
    NulInArgument {
        /// Position of the argument (0 is the program name).
        index: usize,
    },
    /// `EINVAL`: invalid EAL arguments.
    #[error("invalid EAL arguments (see the EAL log above)")]
    InvalidArguments,
    /// `EACCES`: permission denied (hugepages, /dev files).
    #[error("EAL: permission denied")]
    PermissionDenied,
    /// `EAGAIN`: a bus or system resource was not available.
    #[error("EAL: a bus or system resource is not available")]
    ResourceUnavailable,
    /// `ENOMEM`: out of memory (too few free hugepages, or `-m` too large).
    #[error("EAL: out of memory (check HugePages_Free or use --no-huge)")]
    OutOfMemory,
    /// `ENODEV`: a device argument (`--vdev`, `-a`) could not be parsed, for example an unknown
    /// driver name, or memory setup failed; the EAL log says which.
    #[error("EAL: a device argument could not be parsed (unknown driver?) or memory setup failed")]
    NoDevice,
    /// `ENOTSUP`: EAL cannot initialise on this system; also reported when probing a device
    /// (for example a bad `--vdev`) fails.
    #[error("EAL cannot initialise on this system or a device failed to probe")]
    NotSupported,
    /// `EFAULT`: the tailq configuration could not be loaded.
    #[error("EAL: tailq configuration could not be loaded")]
    Tailq,
    /// `EPROTO`: the PCI bus is not present.
    #[error("EAL: PCI bus not present")]
    NoPciBus,
    /// `ENOEXEC`: a service core failed to launch.
    #[error("EAL: a service core failed to launch")]
    ServiceCore,
    /// A requested network `--vdev` did not become an ethdev port (unknown driver or bad
    /// driver arguments; see the EAL log). EAL was cleaned up again.
    #[error("vdev {name:?} failed to probe (see the EAL log above)")]
    VdevNotProbed {
        /// Device name from the `--vdev` argument.
        name: String,
    },
    /// Any other errno.
    #[error("EAL initialisation failed: {0}")]
    Unknown(Errno),
}

impl EalError {
    fn from_errno(e: Errno) -> Self {
        match e.0 {
            code::EINVAL => Self::InvalidArguments,
            code::EACCES => Self::PermissionDenied,
            code::EAGAIN => Self::ResourceUnavailable,
            code::ENOMEM => Self::OutOfMemory,
            code::ENODEV => Self::NoDevice,
            code::ENOTSUP => Self::NotSupported,
            code::EFAULT => Self::Tailq,
            code::EPROTO => Self::NoPciBus,
            code::ENOEXEC => Self::ServiceCore,
            code::EALREADY => Self::AlreadyInitialized,
            _ => Self::Unknown(e),
        }
    }
}

/// Builder for the EAL command line.
///
/// Methods append arguments in call order; [`EalArgs::arg`] passes anything not covered.
///
/// PCI probing is **off** unless asked for: every argument list gets `--no-pci` unless
/// [`EalArgs::pci_allow`] names a device. Probing without an allow-list would take over every
/// DPDK-capable NIC of the machine, including the one it is managed through.
#[derive(Debug, Clone)]
pub struct EalArgs {
    args: Vec<String>,
    /// PCI devices to probe (`-a BDF`); empty means `--no-pci`.
    pci: Vec<String>,
}

impl Default for EalArgs {
    fn default() -> Self {
        Self::new()
    }
}

impl EalArgs {
    /// An argument list holding only the program name (`wccpd`).
    #[must_use]
    pub fn new() -> Self {
        Self {
            args: vec!["wccpd".to_owned()],
            pci: Vec::new(),
        }
    }

    /// Appends one raw argument.
    #[must_use]
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// `--no-pci`: do not probe PCI devices. This is the default; the method exists so that
    /// call sites can say so, and it cancels earlier [`EalArgs::pci_allow`] calls.
    #[must_use]
    pub fn no_pci(mut self) -> Self {
        self.pci.clear();
        self
    }

    /// `-a BDF`: probe this PCI device (for example `0000:03:00.0`); may be repeated. Only
    /// devices named here are probed, and `--no-pci` is then not passed.
    #[must_use]
    pub fn pci_allow(mut self, bdf: &str) -> Self {
        self.pci.push(bdf.to_owned());
        self
    }

    /// `--in-memory`: no shared config or hugepage files (incompatible with `--no-huge`).
    #[must_use]
    pub fn in_memory(self) -> Self {
        self.arg("--in-memory")
    }

    /// `--no-shconf`: no shared config file (use with `--no-huge`).
    #[must_use]
    pub fn no_shconf(self) -> Self {
        self.arg("--no-shconf")
    }

    /// `--file-prefix PREFIX`: unique per concurrently running process.
    #[must_use]
    pub fn file_prefix(self, prefix: &str) -> Self {
        self.arg("--file-prefix").arg(prefix)
    }

    /// `--vdev SPEC`, for example `net_ring0` or `net_tap0,iface=tap0`.
    #[must_use]
    pub fn vdev(self, spec: &str) -> Self {
        self.arg("--vdev").arg(spec)
    }

    /// `--no-huge`: anonymous memory instead of hugepages.
    #[must_use]
    pub fn no_huge(self) -> Self {
        self.arg("--no-huge")
    }

    /// `-m MB`: memory to preallocate.
    #[must_use]
    pub fn memory_mb(self, mb: u32) -> Self {
        self.arg("-m").arg(mb.to_string())
    }

    /// `--lcores SPEC`, for example `0-1` or `0@0,1@1`.
    #[must_use]
    pub fn lcores(self, spec: &str) -> Self {
        self.arg("--lcores").arg(spec)
    }

    /// `--lcores` with lcores `0..count` mapped onto the CPUs this process may run on
    /// (`Cpus_allowed_list` in `/proc/self/status`), in order, wrapping around when there are
    /// fewer CPUs than lcores (lcores then share a CPU). Falls back to CPU 0 when the list
    /// cannot be read.
    #[must_use]
    pub fn auto_lcores(self, count: usize) -> Self {
        let spec = lcore_list(count, &allowed_cpus());
        self.lcores(&spec)
    }

    /// Memory for a short run (a test, `wccpd smoke`): with `hugepages`, hugepages without
    /// files ([`Self::in_memory`]); without, 256 MiB of ordinary memory (`--no-huge --no-shconf
    /// -m 256 --iova-mode=va`). Callers usually pass `free_hugepages() >=
    /// SHORT_RUN_HUGEPAGES` unless told to avoid hugepages.
    #[must_use]
    pub fn short_run_memory(self, hugepages: bool) -> Self {
        if hugepages {
            self.in_memory()
        } else {
            self.no_huge().no_shconf().memory_mb(256).iova_va()
        }
    }

    /// `--iova-mode=va`.
    #[must_use]
    pub fn iova_va(self) -> Self {
        self.arg("--iova-mode=va")
    }

    /// `--log-level LEVEL`, for example `7` or `pmd.net.tap:debug`.
    #[must_use]
    pub fn log_level(self, level: &str) -> Self {
        self.arg("--log-level").arg(level)
    }

    /// Device names of the `--vdev` arguments (the part before the first comma).
    fn vdev_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            let spec = if a == "--vdev" {
                it.next().map(String::as_str)
            } else {
                a.strip_prefix("--vdev=")
            };
            if let Some(spec) = spec {
                out.push(spec.split(',').next().unwrap_or(spec).to_owned());
            }
        }
        out
    }

    /// The arguments as they will be passed (program name first, then `--no-pci` or the PCI
    /// allow-list, then the rest in call order).
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.args.len() + 1 + 2 * self.pci.len());
        out.extend(self.args.first().cloned());
        if self.pci.is_empty() {
            out.push("--no-pci".to_owned());
        } else {
            for bdf in &self.pci {
                out.push("-a".to_owned());
                out.push(bdf.clone());
            }
        }
        out.extend(self.args.iter().skip(1).cloned());
        out
    }
}

/// What [`Eal::cleanup`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupReport {
    /// Ports that were still claimed and were stopped (if started) and closed, in id order.
    pub closed_ports: Vec<PortId>,
    /// Ports still claimed whose stop or close failed, with the first errno.
    pub failed_ports: Vec<(PortId, Errno)>,
    /// The result of `rte_eal_cleanup`.
    pub eal_cleanup: Result<(), Errno>,
}

/// The running EAL. Dropping it shuts EAL down (see the module docs, "Shutdown").
///
/// `Eal` is neither `Send` nor `Sync`: `rte_eal_init` and `rte_eal_cleanup` must run on the main
/// lcore's thread, and lcore launches go through `&Eal` on that thread.
#[derive(Debug)]
pub struct Eal {
    _main_thread_only: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises EAL with `args` (`rte_eal_init`).
    ///
    /// The argument strings are leaked on purpose: EAL may keep pointers into `argv` for the
    /// life of the process, and this happens once per process.
    ///
    /// # Errors
    ///
    /// [`EalError::AlreadyInitialized`] on any call after the first; the mapped `rte_errno`
    /// when `rte_eal_init` fails (EAL may then be unusable for the rest of the process).
    pub fn init(args: EalArgs) -> Result<Self, EalError> {
        let vdevs = args.vdev_names();
        let argv_strings = args.args();
        let mut cstrings = Vec::with_capacity(argv_strings.len());
        for (index, a) in argv_strings.into_iter().enumerate() {
            cstrings.push(CString::new(a).map_err(|_| EalError::NulInArgument { index })?);
        }
        let argc = i32::try_from(cstrings.len()).map_err(|_| EalError::InvalidArguments)?;
        if STATE
            .compare_exchange(
                STATE_NEW,
                STATE_INITIALISING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(EalError::AlreadyInitialized);
        }
        let argv: Vec<*mut c_char> = cstrings.into_iter().map(CString::into_raw).collect();
        let argv: &'static mut [*mut c_char] = Vec::leak(argv);
        // SAFETY: `argv` holds `argc` valid NUL-terminated strings (built from `CString`s above)
        // and is leaked, so it outlives EAL as `rte_eal_init` requires; the STATE exchange above
        // guarantees this is the only call in the process.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let e = Errno::last();
            STATE.store(STATE_FAILED, Ordering::Release);
            return Err(EalError::from_errno(e));
        }
        STATE.store(STATE_RUNNING, Ordering::Release);
        let eal = Self {
            _main_thread_only: PhantomData,
        };
        // DPDK 22.11 logs a failed vdev probe and still returns success from `rte_eal_init`:
        // check that every requested network vdev became a port, and fail as a whole if not.
        if let Some(name) = vdevs
            .iter()
            .filter(|v| v.starts_with("net_"))
            .find(|v| !probed_devices().iter().any(|d| d == *v))
        {
            let name = name.clone();
            drop(eal); // rte_eal_cleanup
            STATE.store(STATE_FAILED, Ordering::Release);
            return Err(EalError::VdevNotProbed { name });
        }
        Ok(eal)
    }

    /// The main lcore (the thread that called [`Eal::init`]).
    #[must_use]
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised (an `Eal` exists); the function reads EAL's config.
        LcoreId::new(unsafe { dpdk_sys::rte_get_main_lcore() })
    }

    /// All enabled lcores except the main one, in increasing order.
    #[must_use]
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut i: u32 = u32::MAX; // -1: start before lcore 0
        loop {
            // SAFETY: EAL is initialised (an `Eal` exists); `rte_get_next_lcore` reads the lcore
            // config and returns RTE_MAX_LCORE when there is no further lcore.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
            if i >= dpdk_sys::RTE_MAX_LCORE {
                break;
            }
            out.push(LcoreId::new(i));
        }
        out
    }

    /// Number of enabled lcores, main included (`rte_lcore_count`).
    #[must_use]
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: EAL is initialised (an `Eal` exists); the function reads EAL's config.
        unsafe { dpdk_sys::rte_lcore_count() }
    }
}

impl Eal {
    /// Shuts EAL down like dropping it does (module docs, "Shutdown") and reports which
    /// claimed ports were closed and how `rte_eal_cleanup` ended.
    #[must_use = "the report says whether ports failed to close"]
    pub fn cleanup(mut self) -> CleanupReport {
        // `Drop` then finds EAL no longer running and does nothing.
        self.shutdown()
    }

    fn shutdown(&mut self) -> CleanupReport {
        if STATE.load(Ordering::Acquire) != STATE_RUNNING {
            // Already shut down by `cleanup` (an `Eal` exists only after a successful init).
            return CleanupReport {
                closed_ports: Vec::new(),
                failed_ports: Vec::new(),
                eal_cleanup: Ok(()),
            };
        }
        // No capture client can attach from here on (before the ports go).
        crate::capture::shutdown();
        // SAFETY: EAL runs (checked above; an `Eal` exists only after a successful
        // `rte_eal_init`); `Eal` is `!Send`, so this is the main lcore's thread, the only one
        // allowed to wait for workers. It blocks until every worker lcore is idle, including
        // launches whose `LaunchHandle` was leaked.
        unsafe { dpdk_sys::rte_eal_mp_wait_lcore() };
        // Under the port close lock: mark EAL gone (objects dropped later leak instead of calling
        // into DPDK, and no last claim handle closes a port concurrently), then stop and close
        // every port still claimed.
        let ports = crate::ethdev::shutdown_ports(|| STATE.store(STATE_CLEANED, Ordering::Release));
        // SAFETY: main lcore's thread (see above); EAL was initialised and is cleaned up once
        // (the state is no longer RUNNING, so a later call returns above); every worker lcore
        // returned and every claimed port is closed.
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        CleanupReport {
            closed_ports: ports.closed,
            failed_ports: ports.failed,
            // 22.11 returns -1 with rte_errno set (EALREADY); keep the negative code otherwise.
            eal_cleanup: match (ret, Errno::last()) {
                (0.., _) => Ok(()),
                (_, e) if e.0 != 0 => Err(e),
                (r, _) => Err(Errno::from_ret(r)),
            },
        }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_orders_arguments_and_finds_vdev_names() {
        let a = EalArgs::new()
            .no_pci()
            .in_memory()
            .file_prefix("p")
            .vdev("net_tap0,iface=t0")
            .arg("--vdev=net_null1")
            .lcores("0-1")
            .memory_mb(64);
        assert_eq!(
            a.args(),
            [
                "wccpd",
                "--no-pci",
                "--in-memory",
                "--file-prefix",
                "p",
                "--vdev",
                "net_tap0,iface=t0",
                "--vdev=net_null1",
                "--lcores",
                "0-1",
                "-m",
                "64"
            ]
        );
        assert_eq!(a.vdev_names(), ["net_tap0", "net_null1"]);
    }

    #[test]
    fn no_pci_is_the_default_and_pci_is_an_explicit_allow_list() {
        let plain = EalArgs::new().vdev("net_null0");
        assert_eq!(plain.args(), ["wccpd", "--no-pci", "--vdev", "net_null0"]);
        let nic = EalArgs::new()
            .pci_allow("0000:03:00.0")
            .pci_allow("0000:03:00.1");
        assert_eq!(
            nic.args(),
            ["wccpd", "-a", "0000:03:00.0", "-a", "0000:03:00.1"]
        );
        assert!(!nic.args().iter().any(|a| a == "--no-pci"));
        assert_eq!(nic.no_pci().args(), ["wccpd", "--no-pci"]);
    }

    #[test]
    fn short_run_memory_is_hugepages_in_memory_or_256_mib_without() {
        assert_eq!(
            EalArgs::new().short_run_memory(true).args(),
            ["wccpd", "--no-pci", "--in-memory"]
        );
        assert_eq!(
            EalArgs::new().short_run_memory(false).args(),
            [
                "wccpd",
                "--no-pci",
                "--no-huge",
                "--no-shconf",
                "-m",
                "256",
                "--iova-mode=va"
            ]
        );
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-1,4"), [0, 1, 4]);
        assert_eq!(parse_cpu_list("3"), [3]);
        assert!(parse_cpu_list("x").is_empty());
        assert!(parse_cpu_list("4-2").is_empty());
        let a = EalArgs::new().auto_lcores(2);
        let args = a.args();
        assert_eq!(args[2], "--lcores");
        assert!(args[3].starts_with("0@") && args[3].contains(",1@"));
        // Lcores wrap around the CPUs: with two CPUs, the third lcore shares the first.
        assert_eq!(lcore_list(3, &[4, 6]), "0@4,1@6,2@4");
        assert_eq!(lcore_list(2, &[5]), "0@5,1@5");
        assert_eq!(lcore_list(0, &[]), "0@0");
    }

    #[test]
    fn errno_maps_to_variants() {
        assert!(matches!(
            EalError::from_errno(Errno(code::EINVAL)),
            EalError::InvalidArguments
        ));
        assert!(matches!(
            EalError::from_errno(Errno(code::EALREADY)),
            EalError::AlreadyInitialized
        ));
        assert!(matches!(
            EalError::from_errno(Errno(4242)),
            EalError::Unknown(Errno(4242))
        ));
    }
}
