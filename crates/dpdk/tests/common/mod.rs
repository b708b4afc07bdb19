//! Shared EAL bootstrap for the DPDK test binaries (one EAL per process, one binary per scenario),
//! [`child`]: re-running a test inside a network namespace and waiting for it with a deadline, and
//! [`rng`]: the tests' PRNG (the root package's `tests/common/child.rs` and `rng.rs`, compiled
//! here too).
#![allow(dead_code)]

#[path = "../../../../tests/common/child.rs"]
pub mod child;
#[path = "../../../../tests/common/rng.rs"]
pub mod rng;

use dpdk::eal::{free_hugepages, SHORT_RUN_HUGEPAGES};
use dpdk::EalArgs;

/// Prefix of every name these tests give to shared system objects (EAL file prefixes, network
/// namespaces): `hdpdk`, or the value of `HDPDK_TEST_PREFIX` (so that concurrent runs by
/// different users or tools can tell their objects apart and clean them up).
pub fn name_prefix() -> String {
    std::env::var("HDPDK_TEST_PREFIX")
        .ok()
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or_else(|| "hdpdk".to_owned())
}

/// EAL arguments for a test: `--no-pci`, lcores 0 and 1 on the first two allowed CPUs, a file
/// prefix unique to this process (`<name_prefix>-<scenario>-<pid>`), and hugepages with
/// `--in-memory` when at least 64 are free, else `--no-huge --no-shconf -m 256` (also forced by
/// setting `HDPDK_NO_HUGE`).
pub fn eal_args(scenario: &str) -> EalArgs {
    let prefix = format!("{}-{scenario}-{}", name_prefix(), std::process::id());
    let base = EalArgs::new()
        .no_pci()
        .auto_lcores(2)
        .file_prefix(&prefix)
        .log_level("lib.eal:error");
    base.short_run_memory(
        free_hugepages() >= SHORT_RUN_HUGEPAGES && std::env::var_os("HDPDK_NO_HUGE").is_none(),
    )
}

/// A deterministic test frame of `len` bytes: Ethernet header (broadcast destination, locally
/// administered source, EtherType 0x88B5 "local experimental") and a payload tagged with `seq`.
pub fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (i as u32 ^ seq) as u8;
    }
    f
}
