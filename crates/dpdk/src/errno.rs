//! DPDK error numbers (`rte_errno` and negative return codes).
use std::ffi::CStr;
use std::fmt;

/// An errno value reported by DPDK, either through `rte_errno` or as a negative return code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's `rte_errno`.
    #[must_use]
    pub fn last() -> Self {
        // SAFETY: `dpdk_shim_errno` only reads the calling thread's TLS variable `rte_errno`,
        // which exists for every thread (it is a plain `__thread int`), EAL running or not.
        Self(unsafe { dpdk_sys::dpdk_shim_errno() })
    }

    /// The errno of a DPDK return code `ret < 0` (`-ret`); the absolute value otherwise.
    #[must_use]
    pub fn from_ret(ret: i32) -> Self {
        Self(ret.saturating_abs())
    }

    /// DPDK's description of the error (`rte_strerror`), including libc's for plain errnos.
    #[must_use]
    pub fn description(self) -> String {
        // SAFETY: `rte_strerror` accepts any int and returns a pointer to a NUL-terminated string
        // in a static table or a per-thread buffer; we copy it before returning.
        let p = unsafe { dpdk_sys::rte_strerror(self.0) };
        if p.is_null() {
            return format!("errno {}", self.0);
        }
        // SAFETY: non-null pointer from `rte_strerror`, NUL-terminated (see above), valid until
        // the next `rte_strerror` call on this thread, and copied right here.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({})", self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errno {} ({})", self.0, self.description())
    }
}

/// Common libc errno values used when mapping DPDK errors (Linux numbering, which DPDK uses).
pub(crate) mod code {
    pub const EIO: i32 = 5;
    pub const ENOEXEC: i32 = 8;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EACCES: i32 = 13;
    pub const EFAULT: i32 = 14;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const EPROTO: i32 = 71;
    pub const ENOTSUP: i32 = 95;
    pub const ENAMETOOLONG: i32 = 36;
    pub const EALREADY: i32 = 114;
}
