//! The deployment kit in deploy/: Prometheus accepts the alert rules and the scrape
//! configuration (`promtool`, Debian package prometheus, installed by deploy/setup-host.sh),
//! and every metric the rules and the Grafana dashboard query is one the router exports.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn root() -> &'static Path {
    Path::new(ROOT)
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
        .expect("promtool (Debian package prometheus, installed by deploy/setup-host.sh)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

/// The `wccp_...` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("wccp_") {
        let start = i + at;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric());
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if boundary {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// The metric families src/metrics.rs registers (each name is a string literal there).
fn exported() -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join("src/metrics.rs")).unwrap();
    metric_names(&src)
        .into_iter()
        .filter(|n| src.contains(&format!("\"{n}\"")))
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_query_exported_metrics() {
    let out = promtool(&["check", "rules", "deploy/prometheus/wccpd-rules.yml"]);
    assert!(out.contains("SUCCESS: 6 rules found"), "{out}");
    let rules = std::fs::read_to_string(root().join("deploy/prometheus/wccpd-rules.yml")).unwrap();
    for alert in [
        "WccpNoUsableCache",
        "WccpAssignmentMissing",
        "WccpDataPlaneDropsRising",
        "WccpReloadFailed",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
    }
    let exported = exported();
    assert!(exported.contains("wccp_reloads_total"), "{exported:?}");
    let used = metric_names(&rules);
    assert!(used.len() >= 5, "{used:?}");
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "rules query metrics wccpd does not export: {unknown:?}"
    );
}

#[test]
fn scrape_configuration_passes_promtool() {
    let out = promtool(&["check", "config", "deploy/prometheus/wccpd-scrape.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn dashboard_is_json_and_queries_exported_metrics() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/wccpd-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    let used = metric_names(&text);
    assert!(used.len() >= 6, "{used:?}");
    let exported = exported();
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "dashboard queries metrics wccpd does not export: {unknown:?}"
    );
}

#[test]
fn systemd_units_check_first_and_reload_only_the_router() {
    let unit = |name: &str| std::fs::read_to_string(root().join("deploy/systemd").join(name));
    let router = unit("wccpd-router.service").unwrap();
    let cache = unit("wccpd-cache.service").unwrap();
    for u in [&router, &cache] {
        assert!(u.contains("ExecStartPre=/usr/bin/wccpd check -c"), "{u}");
        assert!(u.contains("Restart=on-failure"), "{u}");
    }
    assert!(router.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // The cache agent does not reload: no ExecReload line that `systemctl reload` would use.
    assert!(
        !cache.lines().any(|l| l.starts_with("ExecReload")),
        "{cache}"
    );
}
