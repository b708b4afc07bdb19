//! Raw bindgen bindings to DPDK 22.11 plus a small C shim for static-inline functions, macros
//! and thread-local variables (`dpdk_shim_*`, see `csrc/shim.h`).
//!
//! Nothing else lives here: no safe wrappers, no logic. The hand-written FFI is in crate `dpdk`,
//! which is the only crate that may call into this one.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    unsafe_op_in_unsafe_fn,
    rustdoc::all
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
