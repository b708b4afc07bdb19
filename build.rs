//! Link settings of the final `wccpd` binary against DPDK.
//!
//! `dpdk-sys` already asks pkg-config for the libraries it needs; this script only makes sure the
//! binary finds the shared libraries at run time and fails early with a clear message when
//! `libdpdk-dev` is missing.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
        Err(e) => panic!("libdpdk >= 22.11 not found by pkg-config ({e}); run `apt-get install libdpdk-dev pkg-config`"),
    }
}
