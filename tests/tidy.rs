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
    // wccp-assign is pure: workspace crates, plus `ipnet` for the prefixes its shared types
    // (the return policy) carry.
    let (_, assign) = &pkgs["wccp-assign"];
    for d in assign {
        assert!(
            pkgs.contains_key(d) || d == "ipnet",
            "wccp-assign may only depend on workspace crates and ipnet, not {d}"
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

// ---- dependency policy ----------------------------------------------------------------------
//
// What cargo-deny would check, without installing it: licenses, banned crates and sources, and
// duplicate versions, over `cargo metadata --locked` with the resolved graph. The policy is
// described in docs/ARCHITECTURE.md ("Dependencies"); change it here and there together.

/// Licenses a dependency may be used under (SPDX ids). In an expression one side of an `OR`
/// must be allowed, both sides of an `AND`.
const LICENSES_ALLOWED: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Zlib",
    "MPL-2.0",
    "CC0-1.0",
    "0BSD",
    "BSL-1.0",
    "Unlicense",
    // The `tun` crate (the cache agent's TUN device).
    "WTFPL",
];

/// License exceptions (`A WITH E`) accepted on an allowed license: they only add permissions.
const LICENSE_EXCEPTIONS_ALLOWED: &[&str] = &["LLVM-exception"];

/// Packages whose manifest has no `license` expression but a `license_file`, accepted after
/// reading that file: (package, what the file grants). Empty today.
const LICENSE_FILES_ACCEPTED: &[(&str, &str)] = &[];

/// Crates the shipped binary must not contain: TLS stacks and the system or C crypto they
/// bring (the control plane speaks UDP with MD5, the metrics endpoint plain HTTP).
const BANNED: &[&str] = &[
    "openssl",
    "openssl-sys",
    "native-tls",
    "ring",
    "rustls",
    "aws-lc-rs",
    "aws-lc-sys",
    "boring",
    "boring-sys",
    "schannel",
    "security-framework",
];

/// Where packages may come from: crates.io (either index protocol), or a path in the repository
/// (`source` null). No git dependencies, no other registry.
const SOURCES_ALLOWED: &[&str] = &[
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// Crates allowed in more than one version among the shipped binary's normal dependencies,
/// and why. A new duplicate fails; an entry that no longer applies fails too (remove it).
const DUPLICATES_ALLOWED: &[(&str, &str)] = &[(
    "syn",
    "proc macros, build time only: serde_derive, clap_derive and thiserror-impl are on syn 3, \
     tracing-attributes and zerocopy-derive still on syn 2",
)];

/// The binary whose dependency graph is checked for bans and duplicates.
const SHIPPED: &str = "wccpd";

/// `cargo metadata --locked` with the resolved dependency graph, for this host's platform (the
/// crates of other platforms are never built here and may not be downloaded). Run once.
fn resolved_metadata() -> &'static serde_json::Value {
    static META: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    META.get_or_init(run_resolved_metadata)
}

fn run_resolved_metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let version = Command::new(&cargo)
        .arg("-vV")
        .output()
        .expect("run cargo -vV");
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names the host")
        .trim()
        .to_string();
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata --locked failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata json")
}

/// `name version` of a package.
fn pkg_label(p: &serde_json::Value) -> String {
    format!(
        "{} {}",
        p["name"].as_str().unwrap_or("?"),
        p["version"].as_str().unwrap_or("?")
    )
}

/// Whether an SPDX license expression lets us use the package under allowed licenses only:
/// `A OR B`, `A AND B`, `A WITH exception`, parentheses, and crates.io's old `A/B` (= `A OR B`).
/// `Err` when the expression cannot be read.
fn license_allowed(expr: &str) -> Result<bool, String> {
    let spaced = expr
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    let allowed = spdx_or(&tokens, &mut pos)?;
    match tokens.get(pos) {
        None => Ok(allowed),
        Some(t) => Err(format!("unexpected `{t}`")),
    }
}

fn is_op(token: Option<&&str>, op: &str) -> bool {
    token.is_some_and(|t| t.eq_ignore_ascii_case(op))
}

fn spdx_or(t: &[&str], pos: &mut usize) -> Result<bool, String> {
    let mut v = spdx_and(t, pos)?;
    while is_op(t.get(*pos), "OR") {
        *pos += 1;
        let r = spdx_and(t, pos)?;
        v = v || r;
    }
    Ok(v)
}

fn spdx_and(t: &[&str], pos: &mut usize) -> Result<bool, String> {
    let mut v = spdx_with(t, pos)?;
    while is_op(t.get(*pos), "AND") {
        *pos += 1;
        let r = spdx_with(t, pos)?;
        v = v && r;
    }
    Ok(v)
}

fn spdx_with(t: &[&str], pos: &mut usize) -> Result<bool, String> {
    let v = spdx_atom(t, pos)?;
    if !is_op(t.get(*pos), "WITH") {
        return Ok(v);
    }
    *pos += 1;
    let exception = t.get(*pos).ok_or("`WITH` without an exception")?;
    *pos += 1;
    Ok(v && LICENSE_EXCEPTIONS_ALLOWED.contains(exception))
}

fn spdx_atom(t: &[&str], pos: &mut usize) -> Result<bool, String> {
    let token = t.get(*pos).ok_or("the expression ends early")?;
    *pos += 1;
    if *token == "(" {
        let v = spdx_or(t, pos)?;
        if t.get(*pos) != Some(&")") {
            return Err("unbalanced `(`".into());
        }
        *pos += 1;
        return Ok(v);
    }
    if *token == ")"
        || ["OR", "AND", "WITH"]
            .iter()
            .any(|op| token.eq_ignore_ascii_case(op))
    {
        return Err(format!("expected a license, found `{token}`"));
    }
    Ok(LICENSES_ALLOWED.contains(token))
}

/// Every package (dependencies of every kind, workspace members included) must be usable under
/// [`LICENSES_ALLOWED`]; one without a `license` expression must have a `license_file` and be
/// listed in [`LICENSE_FILES_ACCEPTED`].
fn license_problems(meta: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_file = Vec::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().unwrap_or("?");
        match p["license"].as_str() {
            Some(expr) => match license_allowed(expr) {
                Ok(true) => {}
                Ok(false) => problems.push(format!(
                    "{}: license `{expr}` is not allowed (see LICENSES_ALLOWED)",
                    pkg_label(p)
                )),
                Err(e) => problems.push(format!(
                    "{}: cannot read license `{expr}`: {e}",
                    pkg_label(p)
                )),
            },
            None => {
                by_file.push(name.to_string());
                match p["license_file"].as_str() {
                    None => problems.push(format!(
                        "{}: neither `license` nor `license_file`",
                        pkg_label(p)
                    )),
                    Some(file) if !LICENSE_FILES_ACCEPTED.iter().any(|(n, _)| *n == name) => {
                        problems.push(format!(
                            "{}: license only in {file}: read it, then list it in \
                             LICENSE_FILES_ACCEPTED",
                            pkg_label(p)
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    for (name, _) in LICENSE_FILES_ACCEPTED {
        if !by_file.iter().any(|n| n == name) {
            problems.push(format!(
                "LICENSE_FILES_ACCEPTED lists {name}, which no longer needs it: remove it"
            ));
        }
    }
    problems
}

/// The packages [`SHIPPED`] is built from: its normal dependencies, transitively (proc macros
/// included), by package id, each with the chain of names that brings it in.
fn shipped_graph(meta: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let nodes: BTreeMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("node id"), n))
        .collect();
    let root = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|id| id.as_str())
        .find(|id| names.get(id) == Some(&SHIPPED))
        .expect("the shipped package is a workspace member");
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([(root, vec![SHIPPED.to_string()])]);
    while let Some((id, chain)) = queue.pop_front() {
        if seen.contains_key(id) {
            continue;
        }
        for d in nodes[id]["deps"].as_array().expect("deps") {
            let normal = d["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].is_null());
            let dep = d["pkg"].as_str().expect("dep pkg");
            if normal && !seen.contains_key(dep) {
                let mut c = chain.clone();
                c.push(names[dep].to_string());
                queue.push_back((dep, c));
            }
        }
        seen.insert(id.to_string(), chain);
    }
    seen
}

/// No [`BANNED`] crate in the shipped binary's graph, and every package (of any kind) from
/// crates.io or a path ([`SOURCES_ALLOWED`]).
fn ban_problems(meta: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let packages = meta["packages"].as_array().expect("packages");
    let shipped = shipped_graph(meta);
    for p in packages {
        let id = p["id"].as_str().expect("id");
        let name = p["name"].as_str().unwrap_or("?");
        if let (true, Some(chain)) = (BANNED.contains(&name), shipped.get(id)) {
            problems.push(format!(
                "{} is banned, brought in by {}",
                pkg_label(p),
                chain.join(" -> ")
            ));
        }
        if let Some(source) = p["source"].as_str() {
            if !SOURCES_ALLOWED.contains(&source) {
                problems.push(format!(
                    "{} comes from {source}: only crates.io and paths are allowed",
                    pkg_label(p)
                ));
            }
        }
    }
    problems
}

/// Crates in more than one version among the shipped binary's normal dependencies that
/// [`DUPLICATES_ALLOWED`] does not list, and entries of that list that no longer apply. Also
/// returns the allowed duplicates found, for the log.
fn duplicate_problems(meta: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let shipped = shipped_graph(meta);
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        if shipped.contains_key(p["id"].as_str().expect("id")) {
            versions
                .entry(p["name"].as_str().expect("name"))
                .or_default()
                .push(p["version"].as_str().expect("version"));
        }
    }
    let (mut problems, mut allowed) = (Vec::new(), Vec::new());
    for (name, v) in versions.iter().filter(|(_, v)| v.len() > 1) {
        let v = v.join(", ");
        match DUPLICATES_ALLOWED.iter().find(|(n, _)| n == name) {
            Some((_, why)) => allowed.push(format!("{name} ({v}): {why}")),
            None => problems.push(format!(
                "{name} is in {SHIPPED} in versions {v}: align the dependents, or list it in \
                 DUPLICATES_ALLOWED with the reason"
            )),
        }
    }
    for (name, _) in DUPLICATES_ALLOWED {
        if versions.get(name).is_none_or(|v| v.len() < 2) {
            problems.push(format!(
                "DUPLICATES_ALLOWED lists {name}, which is no longer duplicated: remove it"
            ));
        }
    }
    (problems, allowed)
}

#[test]
fn dependency_licenses_are_allowed() {
    let problems = license_problems(resolved_metadata());
    assert!(problems.is_empty(), "dependency licenses: {problems:#?}");
}

#[test]
fn no_banned_crates_and_no_git_dependencies() {
    let problems = ban_problems(resolved_metadata());
    assert!(problems.is_empty(), "dependency bans: {problems:#?}");
}

#[test]
fn no_new_duplicate_dependency_versions() {
    let (problems, allowed) = duplicate_problems(resolved_metadata());
    for a in &allowed {
        println!("allowed duplicate: {a}");
    }
    assert!(problems.is_empty(), "duplicate versions: {problems:#?}");
}

#[test]
fn license_expressions() {
    for ok in [
        "MIT",
        "MIT OR Apache-2.0",
        "MIT/Apache-2.0",
        "Apache-2.0 / MIT",
        "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT",
        "(MIT OR Apache-2.0) AND Unicode-3.0",
        "GPL-3.0 OR MIT",
        "Apache-2.0 WITH LLVM-exception",
        "mit or (Zlib and ISC)",
    ] {
        assert_eq!(license_allowed(ok), Ok(true), "{ok}");
    }
    for refused in [
        "GPL-3.0",
        "MIT AND GPL-2.0",
        "(MIT OR Apache-2.0) AND AGPL-3.0",
        "GPL-2.0 WITH Classpath-exception-2.0",
        "Apache-2.0 WITH Unknown-exception",
        "LGPL-2.1+",
    ] {
        assert_eq!(license_allowed(refused), Ok(false), "{refused}");
    }
    for broken in [
        "",
        "MIT OR",
        "(MIT",
        "MIT)",
        "AND MIT",
        "MIT WITH",
        "MIT Apache-2.0",
    ] {
        assert!(license_allowed(broken).is_err(), "{broken:?}");
    }
}

/// A package of [`fake_metadata`]: name, version, license, license file, source (`""`: a path).
type FakePackage<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str);

/// A small resolved graph: the shipped binary, its dependencies `a` (two versions, one through
/// `b`), and a dev-dependency that is never shipped; `extra` packages are normal dependencies
/// of the binary.
fn fake_metadata(extra: &[FakePackage<'_>]) -> serde_json::Value {
    use serde_json::json;
    let mut all: Vec<FakePackage<'_>> = vec![
        (SHIPPED, "0.1.0", Some("Apache-2.0"), None, ""),
        ("b", "1.0.0", Some("MIT"), None, SOURCES_ALLOWED[0]),
        (
            "a",
            "1.0.0",
            Some("MIT/Apache-2.0"),
            None,
            SOURCES_ALLOWED[0],
        ),
        ("a", "2.0.0", Some("MIT"), None, SOURCES_ALLOWED[1]),
        ("devonly", "1.0.0", Some("MIT"), None, SOURCES_ALLOWED[0]),
    ];
    all.extend_from_slice(extra);
    let id = |n: &str, v: &str| format!("{n} {v}");
    let packages: Vec<_> = all
        .iter()
        .map(|(n, v, l, f, s)| {
            json!({"id": id(n, v), "name": n, "version": v, "license": l, "license_file": f,
                   "source": if s.is_empty() { None } else { Some(s) }})
        })
        .collect();
    let dep = |n: &str, v: &str, kind: Option<&str>| json!({"pkg": id(n, v), "dep_kinds": [{"kind": kind, "target": null}]});
    let mut root_deps = vec![
        dep("a", "2.0.0", None),
        dep("b", "1.0.0", None),
        dep("devonly", "1.0.0", Some("dev")),
    ];
    for (n, v, ..) in extra {
        root_deps.push(dep(n, v, None));
    }
    let mut nodes = vec![
        json!({"id": id(SHIPPED, "0.1.0"), "deps": root_deps}),
        json!({"id": id("b", "1.0.0"), "deps": [dep("a", "1.0.0", None)]}),
        json!({"id": id("a", "1.0.0"), "deps": []}),
        json!({"id": id("a", "2.0.0"), "deps": []}),
        json!({"id": id("devonly", "1.0.0"), "deps": []}),
    ];
    for (n, v, ..) in extra {
        nodes.push(json!({"id": id(n, v), "deps": []}));
    }
    json!({"packages": packages, "workspace_members": [id(SHIPPED, "0.1.0")],
           "resolve": {"nodes": nodes}})
}

/// Each check of the policy fails on what it is meant to catch.
#[test]
fn dependency_policy_checks_can_fail() {
    let clean = fake_metadata(&[]);
    assert_eq!(license_problems(&clean), Vec::<String>::new());
    assert_eq!(ban_problems(&clean), Vec::<String>::new());
    let (dups, _) = duplicate_problems(&clean);
    assert_eq!(dups.len(), 2, "{dups:?}");
    assert!(dups[0].starts_with("a is in wccpd in versions"), "{dups:?}");
    assert!(dups[1].contains("DUPLICATES_ALLOWED lists syn"), "{dups:?}");

    let src = SOURCES_ALLOWED[0];
    let bad = fake_metadata(&[
        ("gpl", "1.0.0", Some("GPL-3.0-only"), None, src),
        ("nolicense", "1.0.0", None, None, src),
        ("fileonly", "1.0.0", None, Some("LICENSE.txt"), src),
        ("openssl-sys", "0.9.0", Some("MIT"), None, src),
        (
            "fromgit",
            "0.1.0",
            Some("MIT"),
            None,
            "git+https://example.invalid/x#abc",
        ),
    ]);
    let licenses = license_problems(&bad);
    assert_eq!(licenses.len(), 3, "{licenses:#?}");
    assert!(licenses[0].contains("gpl 1.0.0: license `GPL-3.0-only`"));
    assert!(licenses[1].contains("nolicense 1.0.0: neither"));
    assert!(licenses[2].contains("fileonly 1.0.0: license only in LICENSE.txt"));
    let bans = ban_problems(&bad);
    assert_eq!(bans.len(), 2, "{bans:#?}");
    assert!(bans[0].contains("openssl-sys 0.9.0 is banned, brought in by wccpd -> openssl-sys"));
    assert!(bans[1].contains("fromgit 0.1.0 comes from git+"));
}
