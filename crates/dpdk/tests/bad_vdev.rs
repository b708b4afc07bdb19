//! A vdev with an unknown driver comes back from `Eal::init` as an error value, not an abort,
//! and EAL refuses a second initialisation in the same process.
//!
//! EAL runs with `--no-pci` (the `EalArgs` default, also set by `common::eal_args`): vdevs only.
mod common;

use dpdk::{Eal, EalError, Mempool, Port};

#[test]
fn unknown_vdev_driver_is_an_error() {
    let err = Eal::init(
        common::eal_args("badvdev")
            .vdev("net_null0")
            .vdev("net_hdpdk_no_such_driver0"),
    )
    .expect_err("unknown vdev driver must fail");
    assert!(matches!(err, EalError::NoDevice), "{err:?}");
    assert!(matches!(
        Eal::init(common::eal_args("badvdev2")),
        Err(EalError::AlreadyInitialized)
    ));
    assert!(!dpdk::eal::is_running());
    assert!(matches!(
        Mempool::pktmbuf_pool("x", 63, 0, Mempool::DEFAULT_DATA_ROOM),
        Err(dpdk::MempoolError::EalNotRunning)
    ));
    assert!(matches!(
        Port::by_name("net_null0"),
        Err(dpdk::EthError::EalNotRunning)
    ));
}
