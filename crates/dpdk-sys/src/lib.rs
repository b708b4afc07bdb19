//! Raw bindgen bindings to DPDK 22.11 plus a small C shim for static-inline functions, macros and TLS
