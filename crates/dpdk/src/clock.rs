//! The time-stamp counter (TSC) as DPDK reads it.

/// Current TSC value (`rte_rdtsc`): cycles since an arbitrary start, monotonic per core.
#[must_use]
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: `rte_rdtsc` executes the RDTSC instruction; no memory is touched and it works with
    // or without a running EAL.
    unsafe { dpdk_sys::dpdk_shim_rdtsc() }
}

/// TSC frequency in Hz as measured by EAL (`rte_get_tsc_hz`); 0 before EAL initialisation.
#[must_use]
pub fn tsc_hz() -> u64 {
    if !crate::eal::is_running() {
        return 0;
    }
    // SAFETY: EAL is running (checked above, state set in `Eal::init`), so the TSC frequency
    // variable has been calibrated; the function only reads it.
    unsafe { dpdk_sys::dpdk_shim_get_tsc_hz() }
}
