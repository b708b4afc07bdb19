//! Declares the `loom` cfg so that `#[cfg(loom)]` is a known configuration.
//!
//! The check-cfg cannot go into `[lints.rust]` of Cargo.toml because the crate
//! inherits the workspace lints (`[lints] workspace = true`), and Cargo does
//! not allow both.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
    println!("cargo::rerun-if-changed=build.rs");
}
