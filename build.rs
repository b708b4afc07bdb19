//! Link settings of the final `wccpd` binary against DPDK.
//!
//! `dpdk-sys` asks pkg-config for the libraries it links; this script makes sure the binaries find
//! the shared libraries at run time and fails early with a clear message when `libdpdk-dev` is
//! missing. Without the `dpdk` feature it does nothing.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DPDK").is_none() {
        return;
    }
    match pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => {
            for path in &lib.link_paths {
                println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", path.display());
            }
        }
        Err(e) => panic!(
            "libdpdk >= 22.11 not found by pkg-config ({e}); \
             run `apt-get install libdpdk-dev pkg-config` or build with --no-default-features"
        ),
    }
}
