//! Lcores: identifiers and launching closures on worker lcores.
//!
//! [`launch`] runs a closure on a worker lcore (`rte_eal_remote_launch`) and returns a
//! [`LaunchHandle`]; [`LaunchHandle::wait`] blocks until it returns (`rte_eal_wait_lcore`).
//! A panic inside the closure never unwinds into C: the trampoline catches it and `wait` reports
//! it as [`LcoreError::Panicked`].
use std::ffi::{c_int, c_void};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::eal::Eal;
use crate::errno::{code, Errno};

/// An EAL logical core id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(u32);

impl LcoreId {
    pub(crate) fn new(id: u32) -> Self {
        Self(id)
    }

    /// The numeric id.
    #[must_use]
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// The lcore of the calling thread, or `None` for threads that EAL does not know.
    #[must_use]
    pub fn current() -> Option<Self> {
        // SAFETY: reads the calling thread's TLS `per_lcore__lcore_id`, which exists for every
        // thread (LCORE_ID_ANY for non-EAL threads).
        let id = unsafe { dpdk_sys::dpdk_shim_lcore_id() };
        (id != dpdk_sys::LCORE_ID_ANY).then_some(Self(id))
    }
}

impl fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

/// Why a closure could not be launched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// Launches must come from the main lcore's thread.
    #[error("lcore launches must be made from the main lcore")]
    NotMainLcore,
    /// The target is the main lcore or not an enabled lcore.
    #[error("{0} is not an enabled worker lcore")]
    NotAWorker(LcoreId),
    /// `EBUSY`: the lcore is still running an earlier launch.
    #[error("{0} is busy")]
    Busy(LcoreId),
    /// Any other errno.
    #[error("rte_eal_remote_launch failed: {0}")]
    Unknown(Errno),
}

/// How a launched closure ended, other than by returning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LcoreError {
    /// The closure panicked; the payload's message, when it was a string.
    #[error("closure on {lcore} panicked: {message}")]
    Panicked {
        /// The lcore it ran on.
        lcore: LcoreId,
        /// The panic message (or a placeholder for non-string payloads).
        message: String,
    },
}

/// Closure and result slot shared between the launching thread and the lcore.
struct Slot<T> {
    f: Option<Box<dyn FnOnce() -> T + Send>>,
    result: Option<std::thread::Result<T>>,
}

/// Entry point run by EAL on the worker lcore.
extern "C" fn trampoline<T>(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Slot<T>>` leaked by `launch` for exactly this launch; the
    // launching side does not touch it until `rte_eal_wait_lcore` has returned, so this is the
    // only reference while the closure runs.
    let slot = unsafe { &mut *arg.cast::<Slot<T>>() };
    let Some(f) = slot.f.take() else {
        return -1;
    };
    // Never unwind across the `extern "C"` boundary: catch and report through the slot.
    let r = catch_unwind(AssertUnwindSafe(f));
    let rc = if r.is_ok() { 0 } else { -1 };
    slot.result = Some(r);
    rc
}

/// A closure running on a worker lcore. Dropping the handle waits for the closure to end.
///
/// The closure is boxed, so handles of different closures with the same result type can live
/// in one `Vec`.
#[must_use = "dropping a LaunchHandle blocks until the lcore returns"]
pub struct LaunchHandle<'eal, T> {
    lcore: LcoreId,
    slot: *mut Slot<T>,
    _eal: PhantomData<&'eal Eal>,
}

impl<T> fmt::Debug for LaunchHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaunchHandle")
            .field("lcore", &self.lcore)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`).
///
/// The handle borrows `eal`, so EAL cannot be cleaned up while the closure runs.
///
/// # Errors
///
/// [`LaunchError`] when called off the main lcore, when `lcore` is not an enabled worker, or when
/// it is still busy.
pub fn launch<F, T>(eal: &Eal, lcore: LcoreId, f: F) -> Result<LaunchHandle<'_, T>, LaunchError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if LcoreId::current() != Some(eal.main_lcore()) {
        return Err(LaunchError::NotMainLcore);
    }
    if !eal.worker_lcores().contains(&lcore) {
        return Err(LaunchError::NotAWorker(lcore));
    }
    let slot: *mut Slot<T> = Box::into_raw(Box::new(Slot {
        f: Some(Box::new(f)),
        result: None,
    }));
    // SAFETY: EAL runs (`eal` exists), we are on the main lcore (checked above) as the function
    // requires, `lcore` is an enabled worker (checked above), and `slot` is a valid leaked box
    // that stays alive until `rte_eal_wait_lcore` for this lcore returns (see `LaunchHandle`).
    let ret = unsafe {
        dpdk_sys::rte_eal_remote_launch(
            Some(trampoline::<T>),
            slot.cast::<c_void>(),
            lcore.as_u32(),
        )
    };
    if ret != 0 {
        // SAFETY: the launch failed, so the lcore never saw `slot`; we own it again.
        drop(unsafe { Box::from_raw(slot) });
        return Err(match Errno::from_ret(ret).0 {
            code::EBUSY => LaunchError::Busy(lcore),
            _ => LaunchError::Unknown(Errno::from_ret(ret)),
        });
    }
    Ok(LaunchHandle {
        lcore,
        slot,
        _eal: PhantomData,
    })
}

impl<T> LaunchHandle<'_, T> {
    /// The lcore the closure runs on.
    #[must_use]
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// Blocks until the closure ends and returns its value.
    ///
    /// # Errors
    ///
    /// [`LcoreError::Panicked`] if the closure panicked.
    pub fn wait(mut self) -> Result<T, LcoreError> {
        let r = self.join();
        match r {
            Some(Ok(v)) => Ok(v),
            Some(Err(payload)) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                // The payload is dropped here, on the main lcore; only its message is kept, so
                // that the error is `Send + Sync`.
                drop(payload);
                Err(LcoreError::Panicked {
                    lcore: self.lcore,
                    message,
                })
            }
            None => unreachable!("lcore returned without running the trampoline"),
        }
    }

    /// Waits for the lcore and takes the result out of the slot; frees the slot.
    fn join(&mut self) -> Option<std::thread::Result<T>> {
        if self.slot.is_null() {
            return None;
        }
        // SAFETY: we are on the main lcore thread (the handle borrows the `!Sync` `Eal`, so it
        // cannot have moved to another thread), and the lcore was launched by `launch`.
        let _ = unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore.as_u32()) };
        // SAFETY: `rte_eal_wait_lcore` returned, so the trampoline finished and no longer
        // references the slot; `slot` came from `Box::into_raw` in `launch` and is non-null.
        let slot = unsafe { Box::from_raw(self.slot) };
        self.slot = std::ptr::null_mut();
        slot.result
    }
}

impl<T> Drop for LaunchHandle<'_, T> {
    fn drop(&mut self) {
        let _ = self.join();
    }
}
