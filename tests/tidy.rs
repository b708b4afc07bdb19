//! Tidy checks: the architecture rules of docs/ARCHITECTURE.md, enforced as ordinary tests so
//! they cannot drift (rust-analyzer's `tidy` idea).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Workspace packages: name -> (manifest dir, normal (non-dev) dependency names).
fn packages() -> BTreeMap<String, (PathBuf, Vec<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let mut map = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_string();
        let dir = Path::new(p["manifest_path"].as_str().expect("manifest"))
            .parent()
            .expect("dir")
            .to_path_buf();
        let deps = p["dependencies"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| d["kind"].is_null() || d["kind"] == "build")
            .map(|d| d["name"].as_str().expect("dep name").to_string())
            .collect();
        map.insert(name, (dir, deps));
    }
    map
}

#[test]
fn dependency_arrows() {
    let pkgs = packages();
    for (name, (_, deps)) in &pkgs {
        if deps.iter().any(|d| d == "dpdk-sys") {
            assert_eq!(
                name, "dpdk",
                "only `dpdk` may depend on `dpdk-sys`, but {name} does"
            );
        }
    }
    let (_, wire) = &pkgs["wccp-wire"];
    assert!(
        wire.is_empty(),
        "wccp-wire must have no dependencies, has {wire:?}"
    );
    let (_, assign) = &pkgs["wccp-assign"];
    for d in assign {
        assert!(
            pkgs.contains_key(d),
            "wccp-assign may only depend on workspace crates, not {d}"
        );
        assert!(!d.starts_with("dpdk"), "wccp-assign must not depend on {d}");
    }
    // The data plane reaches DPDK only through the safe `dpdk` crate, and the RCU cell stands
    // alone.
    let (_, dataplane) = &pkgs["wccp-dataplane"];
    assert!(
        !dataplane.iter().any(|d| d == "dpdk-sys"),
        "wccp-dataplane must use `dpdk`, not `dpdk-sys`"
    );
    let (_, rcu) = &pkgs["wccp-rcu"];
    assert!(
        rcu.iter().all(|d| d == "loom"),
        "wccp-rcu must have no dependencies (loom only under cfg(loom)), has {rcu:?}"
    );
    let (_, control) = &pkgs["wccp-control"];
    for banned in [
        "dpdk",
        "dpdk-sys",
        "wccp-dataplane",
        "wccp-rcu",
        "wccpd-config",
    ] {
        assert!(
            !control.iter().any(|d| d == banned),
            "wccp-control must not depend on {banned}"
        );
    }
}

#[test]
fn unsafe_code_is_forbidden_outside_ffi_crates() {
    const MAY_USE_UNSAFE: [&str; 3] = ["dpdk", "dpdk-sys", "wccp-rcu"];
    for (name, (dir, _)) in packages() {
        if MAY_USE_UNSAFE.contains(&name.as_str()) {
            continue;
        }
        let mut roots = vec![dir.join("src/lib.rs"), dir.join("src/main.rs")];
        roots.retain(|p| p.exists());
        assert!(!roots.is_empty(), "{name} has neither lib.rs nor main.rs");
        for r in roots {
            let text = std::fs::read_to_string(&r).expect("read crate root");
            assert!(
                text.contains("#![forbid(unsafe_code)]") || text.contains("#![deny(unsafe_code)]"),
                "{} must start with #![forbid(unsafe_code)]",
                r.display()
            );
        }
    }
}

#[test]
fn architecture_doc_names_every_crate_and_only_existing_paths() {
    let doc =
        std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for (name, (dir, _)) in packages() {
        let rel = dir.strip_prefix(root()).expect("inside workspace");
        if rel.as_os_str().is_empty() {
            continue;
        }
        assert!(
            doc.contains(&rel.display().to_string()),
            "docs/ARCHITECTURE.md does not describe {name} ({})",
            rel.display()
        );
    }
    // Every `crates/...`, `src/...`, `tests/...`, `deploy/...`, `conf/...` path it names exists.
    for word in doc.split(|c: char| c.is_whitespace() || "`()[],;:*".contains(c)) {
        let w = word.trim_end_matches('.');
        let top = [
            "crates/", "src/", "tests/", "deploy/", "conf/", "docs/", ".ci/",
        ];
        if top.iter().any(|t| w.starts_with(t)) && !w.contains('<') && !w.contains('*') {
            assert!(
                root().join(w).exists(),
                "docs/ARCHITECTURE.md names {w}, which does not exist"
            );
        }
    }
}

#[test]
fn every_eal_command_line_passes_no_pci() {
    // EAL without --no-pci probes this machine's own NIC. Rust code goes through
    // `dpdk::EalArgs`, which adds --no-pci unless a PCI allow-list is given (unit-tested in
    // crates/dpdk/src/eal.rs); here we check the places that build raw EAL command lines:
    // shell scripts and YAML files that start vdevs (dpdk-testpmd, benchmarks, demos).
    let mut offenders = Vec::new();
    visit(&root(), &mut |p| {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !["sh", "yaml", "yml"].contains(&ext) {
            return;
        }
        let Ok(text) = std::fs::read_to_string(p) else {
            return;
        };
        let starts_vdev = ["net_null", "net_tap", "net_ring", "net_pcap"]
            .iter()
            .any(|v| text.contains(v));
        if starts_vdev && !text.contains("--no-pci") {
            offenders.push(p.display().to_string());
        }
    });
    assert!(
        offenders.is_empty(),
        "files start DPDK vdevs without --no-pci: {offenders:?}"
    );
}

#[test]
fn no_rust_code_bypasses_the_eal_builder() {
    // Only crates/dpdk may call rte_eal_init; everyone else must use EalArgs (and so gets
    // --no-pci by default).
    let mut offenders = Vec::new();
    visit(&root(), &mut |p| {
        if p.extension().and_then(|e| e.to_str()) != Some("rs") || p.ends_with("tests/tidy.rs") {
            return;
        }
        let Ok(text) = std::fs::read_to_string(p) else {
            return;
        };
        let inside_dpdk = p
            .components()
            .any(|c| c.as_os_str() == "dpdk" || c.as_os_str() == "dpdk-sys");
        if text.contains("rte_eal_init") && !inside_dpdk {
            offenders.push(p.display().to_string());
        }
    });
    assert!(
        offenders.is_empty(),
        "rte_eal_init called outside crates/dpdk: {offenders:?}"
    );
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name.starts_with("target-") {
            continue;
        }
        if p.is_dir() {
            visit(&p, f);
        } else {
            f(&p);
        }
    }
}
