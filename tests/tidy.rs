//! Tidy checks: the architecture rules of docs/ARCHITECTURE.md, enforced as ordinary tests so
//! they cannot drift (rust-analyzer's `tidy` idea).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo metadata` of the workspace packages (no dependencies resolved).
fn metadata() -> serde_json::Value {
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
    serde_json::from_slice(&out.stdout).expect("metadata json")
}

/// The normal and build dependencies of a package in `metadata()`.
fn normal_deps(p: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    p["dependencies"]
        .as_array()
        .expect("deps")
        .iter()
        .filter(|d| d["kind"].is_null() || d["kind"] == "build")
}

/// Workspace packages: name -> (manifest dir, normal (non-dev) dependency names).
fn packages() -> BTreeMap<String, (PathBuf, Vec<String>)> {
    let meta = metadata();
    let mut map = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_string();
        let dir = Path::new(p["manifest_path"].as_str().expect("manifest"))
            .parent()
            .expect("dir")
            .to_path_buf();
        let deps = normal_deps(p)
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
    wire_has_only_no_std_dependencies();
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

/// wccp-wire: no I/O, no `unsafe`, and only dependencies from this list of `no_std` crates,
/// each with its default features off (that is what keeps them `no_std`).
fn wire_has_only_no_std_dependencies() {
    const WIRE_MAY_USE: [&str; 1] = ["md-5"];
    let meta = metadata();
    let wire = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "wccp-wire")
        .expect("wccp-wire in the workspace");
    for d in normal_deps(wire) {
        let name = d["name"].as_str().expect("dep name");
        assert!(
            WIRE_MAY_USE.contains(&name),
            "wccp-wire may only depend on the no_std crates {WIRE_MAY_USE:?}, not {name}"
        );
        assert_eq!(
            d["uses_default_features"], false,
            "wccp-wire must use {name} with default-features = false (no_std)"
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

/// The section ids of docs/protocol.md: the first word of each heading ("2.2", "TV-10", "A6";
/// "## 2. Components" is "2").
fn protocol_sections() -> std::collections::BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs/protocol.md")).expect("docs/protocol.md");
    doc.lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('#').split_whitespace().next())
        .map(|w| w.trim_end_matches('.').to_string())
        .collect()
}

/// A section id at the start of `s`: `N(.N)*`, `TV-N` or `AN` (a trailing `.` is punctuation).
fn section_id(s: &str) -> Option<String> {
    let digits = |t: &str| t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let id = if let Some(t) = s.strip_prefix("TV-") {
        let n = digits(t);
        (n > 0).then(|| format!("TV-{}", &t[..n]))?
    } else if let Some(t) = s.strip_prefix('A') {
        let n = digits(t);
        (n > 0).then(|| format!("A{}", &t[..n]))?
    } else {
        let n = s
            .char_indices()
            .take_while(|&(i, c)| c.is_ascii_digit() || (c == '.' && i > 0))
            .count();
        let id = s[..n].trim_end_matches('.');
        (!id.is_empty()).then(|| id.to_string())?
    };
    Some(id)
}

/// The protocol citations on one line: after `docs/protocol.md` (a section id, optionally after
/// `§` or `ambiguity `), every `§N.N` that is not another document's (`[R1]§3.5`, `R1 §3.13`,
/// `draft-... §4.1`), every `TV-N` and every `ambiguity AN`.
fn protocol_citations(line: &str) -> Vec<String> {
    let mut v = Vec::new();
    for (i, _) in line.match_indices("docs/protocol.md") {
        let rest = line[i + "docs/protocol.md".len()..].trim_start();
        let rest = rest.strip_prefix('§').unwrap_or(rest);
        let rest = rest.strip_prefix("ambiguity ").unwrap_or(rest);
        v.extend(section_id(rest));
    }
    for (i, _) in line.match_indices('§') {
        let before = line[..i].trim_end();
        let word = before
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or("")
            .trim_start_matches(|c: char| !c.is_alphanumeric());
        let external = before.ends_with(']')
            || word == "R1"
            || word.contains("draft")
            || word.contains("rev1");
        if !external {
            v.extend(section_id(line[i + '§'.len_utf8()..].trim_start()));
        }
    }
    for (i, _) in line.match_indices("TV-") {
        v.extend(section_id(&line[i..]));
    }
    for (i, _) in line.match_indices("ambiguity A") {
        v.extend(section_id(&line[i + "ambiguity ".len()..]));
    }
    v.sort();
    v.dedup();
    v
}

#[test]
fn protocol_citation_parsing() {
    let c = |l: &str| protocol_citations(l);
    assert_eq!(c("/// (docs/protocol.md 3.2), and"), ["3.2"]);
    assert_eq!(c("(docs/protocol.md §2.8)."), ["2.8"]);
    assert_eq!(c("(docs/protocol.md §5.1."), ["5.1"]);
    assert_eq!(c("docs/protocol.md A6) and"), ["A6"]);
    assert_eq!(c("docs/protocol.md ambiguity A2)"), ["A2"]);
    assert_eq!(c("(docs/protocol.md §8 TV-10), mask"), ["8", "TV-10"]);
    assert_eq!(
        c("(type 4, docs/protocol.md §2.6) and (type 5, §2.7)"),
        ["2.6", "2.7"]
    );
    assert_eq!(c("(docs/protocol.md 10.5)"), ["10.5"]);
    assert_eq!(c("group (docs/protocol.md 5, patent"), ["5"]);
    assert_eq!(
        c("[R1]§3.5, R1 §3.13.1, (R1 §3.13.1, draft-x-rev1 §4.1"),
        Vec::<String>::new()
    );
    assert_eq!(c("offers (docs/protocol.md §2.10, [R1]§3.5)"), ["2.10"]);
    assert_eq!(c("the packet of TV-1 (a Cisco"), ["TV-1"]);
    assert_eq!(c("no citation: 0xA5, A1B, 3.2 alone"), Vec::<String>::new());
}

/// Every citation of the protocol reference in the tree ("docs/protocol.md 3.2", "§2.8",
/// "TV-10", "docs/protocol.md A6", interoperability rules "docs/protocol.md 10.5") names a
/// heading of docs/protocol.md, and nothing cites the reference files that are not in the
/// repository.
#[test]
fn protocol_citations_name_existing_sections() {
    let sections = protocol_sections();
    for s in [
        "1.1", "2", "2.2", "3.2", "5.1", "8", "TV-1", "TV-10", "A1", "A14", "10", "10.5",
    ] {
        assert!(sections.contains(s), "docs/protocol.md has no section {s}");
    }
    let mut checked = 0;
    let mut bad = Vec::new();
    let mut stale = Vec::new();
    visit(&root(), &mut |p| {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !["rs", "md", "toml", "yaml", "yml", "sh"].contains(&ext) || p.ends_with("tests/tidy.rs")
        {
            return;
        }
        let Ok(text) = std::fs::read_to_string(p) else {
            return;
        };
        let rel = p.strip_prefix(root()).unwrap_or(p).display().to_string();
        for (n, line) in text.lines().enumerate() {
            for id in protocol_citations(line) {
                checked += 1;
                if !sections.contains(&id) {
                    bad.push(format!("{rel}:{}: {id}", n + 1));
                }
            }
            if line.contains("PROTOCOL.md") || line.contains("INTEROP.md") {
                stale.push(format!("{rel}:{}", n + 1));
            }
        }
    });
    assert!(checked >= 100, "only {checked} citations found");
    assert!(
        bad.is_empty(),
        "citations of sections docs/protocol.md does not have: {bad:#?}"
    );
    assert!(
        stale.is_empty(),
        "PROTOCOL.md / INTEROP.md are not in the repository, cite docs/protocol.md: {stale:#?}"
    );
}
