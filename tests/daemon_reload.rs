//! Hot reload of the real `wccpd router` (socket transport) with our cache agent joined, in two
//! network namespaces: `wccpd reload` applies a valid change (a new password and a new closed
//! service: the cache still on the old password becomes not usable, `show` has the new
//! service and its table), refuses an invalid file with its lines and a change that needs a
//! restart, leaving the running configuration as it was, and SIGHUP reloads too. Every outcome
//! is counted in `show --json` and logged. Needs root (CI); namespaces are `rl-<pid>-...`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The router's file: web-cache with `password`, then the `extra` services.
fn router_with(address: &str, socket: &Path, password: &str, extra: &str) -> String {
    router_yaml(address, socket, &(web_cache(Some(password)) + extra))
}

const DYNAMIC_90: &str = "    - id: 90
      type: dynamic
      protocol: tcp
      ports: [8080]
      closed: true
";

fn services(st: &Value) -> Vec<(u64, bool)> {
    st["services"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|s| (s["id"].as_u64().unwrap_or(999), s["dynamic"] == true))
                .collect()
        })
        .unwrap_or_default()
}

fn cache_state(st: &Value, ip: &str) -> Option<(bool, Value)> {
    router_cache(st, ip).map(|c| (c["usable"] == true, c["reason"].clone()))
}

#[test]
fn reload_applies_refuses_and_answers_sighup() {
    if !prerequisites(&[]) {
        return;
    }
    let pid = std::process::id();
    let dir = TempDir::new("reload");
    let net = NetnsPair::named(&format!("rl-{pid}"), "rlv", 236);
    let mut d = Daemons::start(
        &net,
        &dir,
        |s| router_with(&net.router_ip, s, "secret1", ""),
        |s| {
            cache_yaml(
                &net.cache_ip,
                &net.router_ip,
                s,
                "",
                &web_cache(Some("secret1")),
            )
        },
    );
    let Files {
        conf: router_conf,
        sock: router_sock,
    } = d.router_files.clone();
    let state = |want: bool| {
        let (ip, sock) = (net.cache_ip.clone(), router_sock.clone());
        move || show_json(&sock).filter(|st| cache_state(st, &ip).is_some_and(|c| c.0 == want))
    };
    let st = wait_for(Duration::from_secs(10), state(true))
        .unwrap_or_else(|| panic!("cache never joined: {:#?}", show_json(&router_sock)));
    assert_eq!(
        st["reloads"],
        serde_json::json!({"applied": 0, "refused": 0, "invalid": 0, "last": null})
    );

    // (a) A valid change: applied, `show` reflects it.
    std::fs::write(
        &router_conf,
        router_with(&net.router_ip, &router_sock, "secret2", DYNAMIC_90),
    )
    .unwrap();
    let (ok, report, text) = reload_json(&router_sock);
    assert!(ok, "{text}");
    assert_eq!(report["result"], "applied", "{text}");
    assert_eq!(report["trigger"], "socket");
    assert_eq!(
        report["changes"],
        serde_json::json!(["service standard 0: password", "service dynamic 90: added"]),
        "{text}"
    );
    assert_eq!(
        report["router"]["updated"][0]["reauthenticate"],
        serde_json::json!([net.cache_ip]),
        "{text}"
    );
    let st = show_json(&router_sock).expect("show");
    assert_eq!(services(&st), vec![(0, false), (90, true)]);
    let t90 = st["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == 90 && t["dynamic"] == true))
        .cloned()
        .unwrap_or_else(|| panic!("no table for dynamic 90: {st:#}"));
    assert_eq!(
        (t90["published"].clone(), t90["closed"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(st["reloads"]["applied"], 1);
    assert_eq!(st["reloads"]["last"]["result"], "applied");
    // The cache still signs with the old password: its next HERE_I_AM makes it not usable.
    let st = wait_for(Duration::from_millis(3 * T_MS), state(false))
        .unwrap_or_else(|| panic!("cache still usable: {:#?}", show_json(&router_sock)));
    assert_eq!(
        cache_state(&st, &net.cache_ip).map(|c| c.1),
        Some("md5_failure".into()),
        "{st:#}"
    );

    // (b) An invalid file: refused with its lines; the running configuration stays.
    std::fs::write(
        &router_conf,
        router_with(
            &net.router_ip,
            &router_sock,
            "much-too-long",
            "    - id: 3\n      type: standard\n",
        ),
    )
    .unwrap();
    let (ok, report, text) = reload_json(&router_sock);
    assert!(!ok, "{text}");
    assert_eq!(report["result"], "invalid", "{text}");
    let problems: Vec<String> = report["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let conf = std::fs::canonicalize(&router_conf).unwrap();
    let at = |line: usize, key: &str| {
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{}:{line}:", conf.display())) && p.contains(key))
    };
    assert!(
        at(
            10,
            "router.services[0].password: password must be 1-8 octets"
        ),
        "{problems:#?}"
    );
    assert!(at(11, "router.services[1].id"), "{problems:#?}");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(text.contains("running configuration stays"), "{text}");
    let st = show_json(&router_sock).expect("show");
    assert_eq!(services(&st), vec![(0, false), (90, true)], "unchanged");
    assert_eq!(st["reloads"]["invalid"], 1);

    // (c) A change that needs a restart: refused with the reason; nothing else applied.
    std::fs::write(
        &router_conf,
        router_with(&net.host(7), &router_sock, "secret1", ""),
    )
    .unwrap();
    let (ok, report, text) = reload_json(&router_sock);
    assert!(!ok, "{text}");
    assert_eq!(report["result"], "refused", "{text}");
    assert!(
        report["problems"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("router.addresses: needs a restart")),
        "{text}"
    );
    let st = show_json(&router_sock).expect("show");
    assert_eq!(services(&st), vec![(0, false), (90, true)], "unchanged");
    assert_eq!(st["reloads"]["refused"], 1);

    // SIGHUP: back to the first file; the cache's password matches again and it rejoins.
    std::fs::write(
        &router_conf,
        router_with(&net.router_ip, &router_sock, "secret1", ""),
    )
    .unwrap();
    let pid = d
        .router
        .child
        .as_ref()
        .map(|c| c.id())
        .expect("router running");
    run("kill", &["-HUP", &pid.to_string()]);
    let st = wait_for(Duration::from_secs(5), || {
        show_json(&router_sock).filter(|st| st["reloads"]["applied"] == 2)
    })
    .unwrap_or_else(|| panic!("SIGHUP did not reload: {:#?}", show_json(&router_sock)));
    assert_eq!(st["reloads"]["last"]["trigger"], "sighup");
    assert_eq!(services(&st), vec![(0, false)]);
    wait_for(Duration::from_millis(4 * T_MS), state(true))
        .unwrap_or_else(|| panic!("cache never rejoined: {:#?}", show_json(&router_sock)));

    // Logged, and still a clean exit.
    let log = d.router.output();
    for want in [
        "configuration reloaded",
        "configuration reload: invalid file",
        "configuration reload refused",
    ] {
        assert!(log.contains(want), "no {want:?} in the log:\n{log}");
    }
    let status = d.router.signal_and_wait("TERM", Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn the_cache_agent_does_not_reload_survives_sighup_and_logs_json() {
    if !prerequisites(&[]) {
        return;
    }
    let pid = std::process::id();
    let dir = TempDir::new("reload-cache");
    let net = NetnsPair::named(&format!("rl-{pid}"), "rlc", 237);
    let files = Files::new(&dir, "cache");
    let sock = files.sock.clone();
    let yaml = cache_yaml(&net.cache_ip, &net.router_ip, &sock, "", &web_cache(None)).replace(
        "log:\n  level: debug\n",
        "log:\n  level: debug\n  format: json\n",
    );
    assert!(yaml.contains("format: json"), "{yaml}");
    let mut cache = files.start("cache", &net.cache_ns, "cache", &yaml, &dir);
    wait_for(Duration::from_secs(10), || show_json(&sock)).expect("cache answers");
    let (ok, _, text) = reload_json(&sock);
    assert!(!ok);
    assert!(text.contains("only `wccpd router` does"), "{text}");
    assert!(show_json(&sock).is_some_and(|st| st.get("reloads").is_none()));
    // SIGHUP (a unit's ExecReload) is logged as ignored and does not stop the agent.
    let exited = cache.signal_and_wait("HUP", Duration::from_secs(1));
    assert!(exited.is_none(), "the agent exited on SIGHUP: {exited:?}");
    cache.wait_output("SIGHUP ignored", Duration::from_secs(5));
    assert!(cache.running());
    assert!(show_json(&sock).is_some(), "the agent stopped answering");
    // `log.format: json`: every line is one JSON event with its level, target and fields.
    let log = cache.output();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    let start = events
        .iter()
        .find(|e| e["fields"]["message"] == "cache agent starting")
        .unwrap_or_else(|| panic!("no start event in {log}"));
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["fields"]["address"], net.cache_ip.as_str());
    assert!(start["timestamp"].is_string() && start["target"].is_string());
    assert!(events.iter().any(|e| e["level"] == "WARN"
        && e["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("SIGHUP ignored"))));
}
