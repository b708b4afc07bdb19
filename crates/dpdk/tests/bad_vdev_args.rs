//! A known vdev driver that fails to probe (bad driver arguments) comes back from `Eal::init` as
//! an error value naming the device; DPDK 22.11 itself only logs this and reports success.
//!
//! EAL runs with `--no-pci` (the `EalArgs` default, also set by `common::eal_args`): vdevs only.
mod common;

use dpdk::{Eal, EalError};

#[test]
fn vdev_probe_failure_is_an_error() {
    let err = Eal::init(
        common::eal_args("badvdevargs")
            .vdev("net_null0")
            .vdev("net_ring0,nodeaction=hd:0:NOT_AN_ACTION"),
    )
    .expect_err("a vdev that fails to probe must fail init");
    match &err {
        EalError::VdevNotProbed { name } => assert_eq!(name, "net_ring0"),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("net_ring0"));
    assert!(!dpdk::eal::is_running());
    assert!(matches!(
        Eal::init(common::eal_args("badvdevargs2")),
        Err(EalError::AlreadyInitialized)
    ));
}
