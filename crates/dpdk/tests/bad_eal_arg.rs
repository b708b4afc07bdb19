//! Bad EAL arguments come back as error values, not aborts.
mod common;

use dpdk::{Eal, EalArgs, EalError};

#[test]
fn bad_eal_argument_is_an_error() {
    // A NUL byte is caught before DPDK sees anything, so EAL stays initialisable.
    assert!(matches!(
        Eal::init(EalArgs::new().no_pci().arg("bad\0arg")),
        Err(EalError::NulInArgument { index: 2 })
    ));
    // An option EAL does not know.
    let err = Eal::init(common::eal_args("badarg").arg("--hdpdk-no-such-option"))
        .expect_err("unknown EAL option must fail");
    assert!(matches!(err, EalError::InvalidArguments), "{err:?}");
    assert!(!dpdk::eal::is_running());
    assert!(matches!(
        Eal::init(common::eal_args("badarg2")),
        Err(EalError::AlreadyInitialized)
    ));
}
