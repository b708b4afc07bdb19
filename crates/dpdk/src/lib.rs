//! Safe Rust API over DPDK: EAL, lcores, mempools, mbufs, ethdev queues, rings
