//! The `wccpd` binary's failure paths (no root needed): configuration errors name field and
//! line, the dpdk transport is refused clearly, `show` without a daemon explains itself; and
//! `show`'s text rendering of a router status.

mod common;

use std::process::Command;

use common::wccpd;

/// A file in the temp dir, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn to_str(&self) -> Option<&str> {
        self.0.to_str()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp(name: &str, text: &str) -> TempFile {
    let p = std::env::temp_dir().join(format!("hdaemon-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    TempFile(p)
}

#[test]
fn config_errors_are_all_reported_with_lines() {
    let p = temp(
        "bad-router.yaml",
        "router:\n  addresses: [10.0.0.1]\n  control:\n    transport: carrier-pigeon\n  services:\n    - id: 0\n      type: standard\n      password: waytoolongpassword\n    - id: 0\n      type: standard\n",
    );
    let (ok, out) = wccpd(&["router", "-c", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("3 configuration problem(s)"), "{out}");
    assert!(
        out.contains("line 4 column 5: router.control.transport"),
        "{out}"
    );
    assert!(
        out.contains("line 8 column 7: router.services[0].password"),
        "{out}"
    );
    assert!(
        out.contains("line 9 column 7: router.services[1].id"),
        "{out}"
    );

    let p = temp(
        "bad-cache.yaml",
        "cache:\n  address: 10.0.0.2\n  routers: [10.0.0.1]\n  services:\n    - id: 60\n      type: dynamic\n      protocol: tcp\n      ports: [1,2,3,4,5,6,7,8,9]\n      forwarding: pigeon\n",
    );
    let (ok, out) = wccpd(&["cache", "-c", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("line 8 column 7: cache.services[0].ports"),
        "{out}"
    );
    assert!(out.contains("cache.services[0].forwarding"), "{out}");
}

#[test]
fn dpdk_transport_without_dataplane_is_refused_clearly() {
    let p = temp(
        "dpdk-router.yaml",
        "router:\n  addresses: [10.0.0.1]\n  control:\n    transport: dpdk\n  services:\n    - id: 0\n      type: standard\n",
    );
    let (ok, out) = wccpd(&["router", "-c", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("line 4 column 5: router.control.transport: the dpdk transport needs a `dataplane` section"),
        "{out}"
    );
}

#[test]
fn missing_file_and_missing_daemon() {
    let (ok, out) = wccpd(&["router", "-c", "/nonexistent/hdaemon.yaml"]);
    assert!(!ok);
    assert!(
        out.contains("cannot read /nonexistent/hdaemon.yaml"),
        "{out}"
    );
    let (ok, out) = wccpd(&["show", "-s", "/nonexistent/hdaemon.sock"]);
    assert!(!ok);
    assert!(out.contains("is wccpd running?"), "{out}");
}

#[test]
fn text_rendering_of_a_router_status() {
    let st = serde_json::json!({
        "role": "router",
        "services": [{
            "id": 0, "dynamic": false, "change_number": 2, "receive_id": 17,
            "assignment_method": "hash",
            "assignment": {"address": "10.1.1.2", "change_number": 1, "method": "hash",
                           "age_ms": 1500, "key": {"address": "10.1.1.2", "change_number": 1}},
            "routers": [],
            "caches": [
                {"address": "10.1.1.2", "usable": true, "reason": null, "buckets": 256,
                 "weight": 10000, "last_heard_ms_ago": 300, "forwarding": "gre"},
                {"address": "10.1.1.3", "usable": false, "reason": "md5_failure", "buckets": 0,
                 "weight": 10000, "last_heard_ms_ago": 100, "forwarding": null}
            ],
            "counters": {"messages_in": 9, "messages_out": 8, "drops": {"security": 4}}
        }],
        "tables": [{"id": 0, "dynamic": false, "published": true, "closed": false,
                    "targets": [{"address": "10.1.1.2", "method": "gre", "drained": false,
                                 "buckets": 256}]}],
        "driver": {"received": 9, "sent": 8, "send_errors": 0, "drops": {"security": 4},
                   "last_drop": {"security": "10.1.1.3: MD5 digest mismatch"}},
        "reloads": {"applied": 2, "refused": 1, "invalid": 0,
                    "last": {"result": "refused", "config": "/etc/wccpd/router.yaml",
                             "trigger": "sighup", "changes": [],
                             "problems": ["dataplane.workers: the data plane is started with it"],
                             "at_unix_s": 1800000000}}
    });
    let mut out = Vec::new();
    wccpd::daemon::render_status(&st, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for want in [
        "Service Identifier: web-cache",
        "Number of Cache Engines:              2",
        "Change Number:                        2",
        "Receive ID:                           17",
        "Assignment Key:                       10.1.1.2 change 1",
        "Assignment Age:                       1500 ms",
        "Cache ID: 10.1.1.2",
        "State:                        Usable",
        "Buckets:                      256",
        "Cache ID: 10.1.1.3",
        "State:                        NOT Usable",
        "Reason:                       md5_failure",
        "Dropped (security):                   4",
        "10.1.1.2             gre  buckets 256",
        "dropped security: 4 (last: 10.1.1.3: MD5 digest mismatch)",
        "Reloads: 2 applied, 1 refused, 0 invalid",
        "last: refused (sighup, 1800000000 s after the epoch) /etc/wccpd/router.yaml",
        "dataplane.workers: the data plane is started with it",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn control_socket_path_that_is_a_regular_file_is_not_replaced() {
    // Needs UDP 2048 on an address of this host: it runs in a namespace of its own.
    if !common::prerequisites(&[]) {
        return;
    }
    let ns = common::system_name(&format!("hdaemon-cli-{}", std::process::id()));
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    let _guard = Ns(ns.clone());
    assert!(Command::new("ip")
        .args(["-n", &ns, "link", "set", "lo", "up"])
        .status()
        .unwrap()
        .success());
    let precious = temp("precious.txt", "keep me");
    let conf = temp(
        "regular-file-socket.yaml",
        &format!(
            "cache:\n  address: 127.0.0.1\n  routers: [127.0.0.2]\n  control:\n    socket_path: {}\n  services:\n    - id: 0\n      type: standard\n",
            precious.0.display()
        ),
    );
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            env!("CARGO_BIN_EXE_wccpd"),
            "cache",
            "-c",
        ])
        .arg(&conf.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("is not a socket"), "{text}");
    assert_eq!(std::fs::read_to_string(&precious.0).unwrap(), "keep me");
}

#[test]
fn check_reports_every_problem_as_file_line_column() {
    let p = temp(
        "check-bad.yaml",
        "router:\n  addresses: [10.0.0.1]\n  control: {transport: dpdk}\n  services:\n    - id: 0\n      type: standard\n      colour: red\n",
    );
    let file = p.0.to_str().unwrap();
    let (ok, out) = wccpd(&["check", "-c", file]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "{file}:3:3: router.control.transport: the dpdk transport needs a `dataplane` section"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{file}:7:7: router.services[0].colour: unknown field `colour`"
        )),
        "{out}"
    );
    assert!(out.contains("2 problem(s)"), "{out}");
    // `check` starts nothing: no EAL, no socket.
    assert!(!out.contains("EAL"), "{out}");
}

#[test]
fn check_accepts_capture_and_refuses_eal_modes_without_secondaries() {
    // `check` starts no EAL, so the net_null port is only parsed; a router started from this
    // file would get --no-pci from the daemon (no PCI port in it).
    let base = "router:\n  addresses: [10.0.0.1]\n  control: {transport: dpdk}\n  services:\n    - id: 0\n      type: standard\n      password: s3cret\ndataplane:\n  ports:\n    - {name: a, device: net_null0, addresses: [10.0.0.1/24]}\n  capture: true\n";
    let good = temp("check-capture.yaml", base);
    let (ok, out) = wccpd(&["check", "-c", good.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("packet capture on (dpdk-dumpcap --file-prefix=wccpd -i DEVICE)"),
        "{out}"
    );
    let bad = temp(
        "check-capture-bad.yaml",
        &format!("{base}  eal:\n    - --no-huge\n    - -m\n    - 256\n    - --in-memory\n"),
    );
    let file = bad.to_str().unwrap();
    let (ok, out) = wccpd(&["check", "-c", file]);
    assert!(!ok, "{out}");
    for want in [
        format!("{file}:13:5: dataplane.eal[0]: `--no-huge` "),
        format!("{file}:16:5: dataplane.eal[3]: `--in-memory` "),
    ] {
        assert!(out.contains(&want), "no {want:?} in\n{out}");
    }
    assert!(out.contains("capture needs hugepages"), "{out}");
    assert!(out.contains("2 problem(s)"), "{out}");
}

#[test]
fn check_accepts_every_example_in_conf() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let (ok, out) = wccpd(&["check", "-c", path.to_str().unwrap()]);
            assert!(ok, "{}: {out}", path.display());
            assert!(out.contains(": OK: "), "{out}");
            seen += 1;
        }
    }
    assert!(seen >= 6, "only {seen} examples in conf/");
    // A service without a password is accepted but warned about.
    let (_, out) = wccpd(&[
        "check",
        "-c",
        dir.join("router-minimal.yaml").to_str().unwrap(),
    ]);
    assert!(out.contains("without a password"), "{out}");
}
