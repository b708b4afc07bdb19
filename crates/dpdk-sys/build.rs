//! Generates the DPDK bindings and compiles the C shim.
//!
//! The compile flags come from running `pkg-config --cflags libdpdk` directly: the `pkg-config`
//! crate drops `-include rte_config.h` and `-march=...`, without which DPDK's headers do not
//! compile. The flags are passed unchanged to bindgen (clang) and to `cc`. Linking (shared
//! libraries) goes through the `pkg-config` crate, which emits the `rustc-link-*` lines.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = match pkg_config::Config::new()
        .atleast_version("22.11")
        .statik(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "libdpdk >= 22.11 not found by pkg-config ({e}); run `apt-get install libdpdk-dev pkg-config`"
        ),
    };
    drop(lib);

    let out = Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run pkg-config --cflags libdpdk: {e}"));
    assert!(
        out.status.success(),
        "pkg-config --cflags libdpdk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cflags: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    let mut build = cc::Build::new();
    build.file("csrc/shim.c").include("csrc").warnings(true);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("dpdk_shim");
    // The shim finds `rte_eth_from_rings` in the already loaded net_ring PMD with dlopen/dlsym
    // (part of libc since glibc 2.34; libdl is kept for older systems). Nothing here starts EAL:
    // that is `dpdk::EalArgs`, which always passes --no-pci unless given a PCI allow-list.
    println!("cargo:rustc-link-lib=dl");

    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_arg("-Icsrc")
        .clang_args(&cflags)
        .allowlist_function("rte_.*|dpdk_shim_.*")
        .allowlist_type("rte_.*|RTE_.*")
        // Ring flags and the lcore/socket "any" sentinels are plain macros without the rte_ prefix.
        .allowlist_var("rte_.*|RTE_.*|RING_F_.*|LCORE_ID_ANY|SOCKET_ID_ANY")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on csrc/wrapper.h: {e}"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .unwrap_or_else(|e| panic!("cannot write bindings.rs: {e}"));
}
