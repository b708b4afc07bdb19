//! `Eal::enable_capture` refuses an EAL that no secondary process can attach to: the test EAL
//! runs with `--in-memory` (hugepages) or `--no-huge --no-shconf` (`common::eal_args`), neither
//! of which keeps EAL's multi-process socket, while `rte_pdump_init` alone would report
//! success. The capture that works (hugepages, shared runtime directory, `dpdk-dumpcap`
//! attached to the real router) is `tests/dpdk_capture.rs` in the root package.
//!
//! EAL runs with `--no-pci` (the `EalArgs` default): vdevs only. The runtime directory EAL
//! makes for the file prefix is removed at the end, also when the test fails.
mod common;

use dpdk::{CaptureError, Eal};

/// Removes `/var/run/dpdk/<prefix>` on drop.
struct RuntimeDir(std::path::PathBuf);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn capture_needs_a_shared_runtime_directory() {
    let scenario = "capref";
    let prefix = format!(
        "{}-{scenario}-{}",
        common::name_prefix(),
        std::process::id()
    );
    let _dir = RuntimeDir(std::path::Path::new("/var/run/dpdk").join(&prefix));
    let eal = Eal::init(common::eal_args(scenario).vdev("net_null0")).expect("EAL");
    let err = eal.enable_capture().expect_err("no secondary can attach");
    match &err {
        CaptureError::NoSharedRuntime { dir } => {
            assert!(dir.ends_with(&prefix), "{}", dir.display());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("--in-memory or --no-shconf"),
        "{err}"
    );
    assert!(!eal.capture_enabled());
    let report = eal.cleanup();
    assert_eq!(report.eal_cleanup, Ok(()));
}
