//! Debian's Squid (`/usr/sbin/squid`, 5.7) as a WCCPv2 cache in one namespace, the real
//! `wccpd router` in the other. Squid 5.7 can never accept an I_SEE_YOU (docs/protocol.md 10.9),
//! so this asserts on our side and on tshark's: the router parsed Squid's HERE_I_AMs (its `show`
//! lists a cache at Squid's address, not usable, reason `bad_receive_id`) and answered with
//! I_SEE_YOUs that tshark decodes with no malformed frame and no error-level expert info. Takes ~20 s (Squid's cadence is a fixed 10 s).
//! Needs root, squid and tshark (CI installs them); skips otherwise.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Wireshark's PI_ERROR severity value in `_ws.expert.severity`.
const PI_ERROR: u64 = 0x0080_0000;

fn squid_conf(dir: &TempDir, router_ip: &str) -> String {
    let d = dir.0.display();
    format!(
        "http_port 3128\n\
         visible_hostname hdaemon-squid\n\
         wccp2_router {router_ip}\n\
         wccp2_service standard 0\n\
         wccp2_rebuild_wait off\n\
         pid_filename {d}/squid.pid\n\
         coredump_dir {d}\n\
         cache_log {d}/cache.log\n\
         access_log none\n\
         cache_store_log none\n\
         netdb_filename none\n\
         pinger_enable off\n\
         shutdown_lifetime 1 seconds\n\
         http_access allow all\n"
    )
}

/// Walks a tshark JSON tree, calling `f` on every (key, value).
fn walk(v: &Value, f: &mut dyn FnMut(&str, &Value)) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                f(k, x);
                walk(x, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        _ => {}
    }
}

/// The values of a `_ws.expert.severity` field (tshark writes decimal strings; hex and numbers
/// are accepted too, and a repeated field is an array). `None` if any is not a number: an
/// unreadable severity must not pass for "no error".
fn severities(v: &Value) -> Option<Vec<u64>> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| vec![n]),
        Value::String(s) => {
            let s = s.trim();
            let n = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok()?,
                None => s.parse().ok()?,
            };
            Some(vec![n])
        }
        Value::Array(a) => a.iter().map(severities).try_fold(Vec::new(), |mut acc, x| {
            acc.extend(x?);
            Some(acc)
        }),
        _ => None,
    }
}

/// The major version `squid -v` reports ("Squid Cache: Version 5.7").
fn squid_major(squid: &Path) -> u32 {
    let out = Command::new(squid).arg("-v").output().expect("squid -v");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split("Version ").nth(1))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or_else(|| panic!("no version in `squid -v`: {text}"))
}

#[test]
fn severities_are_parsed_or_refused() {
    use serde_json::json;
    assert_eq!(severities(&json!("8388608")), Some(vec![PI_ERROR]));
    assert_eq!(severities(&json!("0x00800000")), Some(vec![PI_ERROR]));
    assert_eq!(severities(&json!(4194304)), Some(vec![0x0040_0000]));
    assert_eq!(
        severities(&json!(["6291456", "8388608"])),
        Some(vec![0x0060_0000, PI_ERROR])
    );
    assert_eq!(severities(&json!("Error")), None);
    assert_eq!(severities(&json!(["4194304", "?"])), None);
    assert_eq!(severities(&json!(null)), None);
}

fn layer<'a>(frame: &'a Value, name: &str) -> &'a Value {
    &frame["_source"]["layers"][name]
}

#[test]
fn squid_here_i_am_is_answered_with_a_clean_i_see_you() {
    let tshark = Path::new("/usr/bin/tshark");
    let squid = Path::new("/usr/sbin/squid");
    if !prerequisites(&["/usr/bin/tshark", "/usr/sbin/squid"]) {
        return;
    }
    let dir = TempDir::new("squid");
    let net = NetnsPair::new();
    let pcap = dir.join("router.pcap");
    let router_sock = dir.join("router.sock");
    let router_conf = dir.join("router.yaml");
    std::fs::write(
        &router_conf,
        format!(
            "router:\n  addresses: [{}]\n  control:\n    socket_path: {}\n  services:\n    - id: 0\n      type: standard\nlog:\n  level: debug\n",
            net.router_ip,
            router_sock.display()
        ),
    )
    .unwrap();
    let conf = dir.join("squid.conf");
    std::fs::write(&conf, squid_conf(&dir, &net.router_ip)).unwrap();

    // Capture first, then the router, then Squid (its first HERE_I_AM comes ~1 s after start,
    // the next 10 s later).
    let mut capture = NsChild::spawn(
        "tshark",
        &net.router_ns,
        "/usr/bin/tshark",
        &[
            "-i",
            &net.router_if,
            "-f",
            "udp port 2048",
            "-a",
            "duration:16",
            "-w",
            pcap.to_str().unwrap(),
        ],
        dir.join("tshark.log"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut router = NsChild::wccpd("router", &net.router_ns, "router", &router_conf, &dir);
    let mut squid_proc = NsChild::spawn(
        "squid",
        &net.cache_ns,
        squid.to_str().unwrap(),
        &["-N", "-d", "2", "-f", conf.to_str().unwrap()],
        dir.join("squid.out"),
    );

    // The router lists a cache at Squid's address (parsed HERE_I_AM) within ~13 s.
    let squid_ip = net.cache_ip.clone();
    let st = wait_for(Duration::from_secs(14), || {
        show_json(&router_sock).filter(|st| router_cache(st, &squid_ip).is_some())
    });
    assert!(router.running(), "router exited:\n{}", router.output());
    assert!(
        squid_proc.running(),
        "squid exited:\n{}",
        squid_proc.output()
    );
    let st = st.unwrap_or_else(|| {
        panic!(
            "the router never listed Squid's cache: {:#?}",
            show_json(&router_sock)
        )
    });
    let c = router_cache(&st, &squid_ip).unwrap();
    // Squid 5.x never echoes our Receive ID (it cannot accept an I_SEE_YOU), so it stays
    // unusable, and the router says why. A Squid with the receive fixes (7 and later) joins.
    if squid_major(squid) < 7 {
        assert_eq!(c["usable"], false, "{c:#}");
        assert_eq!(c["reason"], "bad_receive_id", "{c:#}");
    } else {
        assert_eq!(c["usable"], true, "{c:#}");
    }
    let text = show_text(&router_sock);
    assert!(text.contains(&squid_ip), "{text}");
    eprintln!("router's view of squid: {c}");

    // Let the capture finish, then decode it.
    let mut done = false;
    for _ in 0..200 {
        if !capture.running() {
            done = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(done, "tshark did not stop:\n{}", capture.output());
    router.kill();
    squid_proc.kill();
    let out = Command::new(tshark)
        .args(["-r", pcap.to_str().unwrap(), "-T", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();

    let mut hia = 0;
    let mut isy = 0;
    for f in &frames {
        let src = layer(f, "ip")["ip.src"].as_str().unwrap_or("");
        let dst = layer(f, "ip")["ip.dst"].as_str().unwrap_or("");
        let wccp = layer(f, "wccp");
        match wccp["wccp.message"].as_str() {
            Some("10") if src == squid_ip => hia += 1,
            Some("11") if src == net.router_ip && dst == squid_ip => {
                isy += 1;
                assert_eq!(wccp["wccp.message_header_version"], "0x0200", "{wccp:#}");
            }
            _ => {}
        }
        let mut problems = Vec::new();
        walk(f, &mut |k, v| {
            if k.starts_with("_ws.malformed") {
                problems.push(format!("malformed: {v}"));
            }
            if k == "_ws.expert.severity" {
                match severities(v) {
                    Some(s) if s.iter().any(|&s| s >= PI_ERROR) => {
                        problems.push(format!("error expert: {v}"));
                    }
                    Some(_) => {}
                    None => problems.push(format!("unparsable expert severity: {v}")),
                }
            }
        });
        assert!(
            problems.is_empty(),
            "tshark problems {problems:?} in {:#}",
            layer(f, "wccp")
        );
    }
    assert!(
        hia >= 1,
        "no HERE_I_AM from squid captured ({} frames)",
        frames.len()
    );
    assert!(
        isy >= 1,
        "no I_SEE_YOU to squid captured ({} frames)",
        frames.len()
    );
    eprintln!(
        "captured {} frames: {hia} HERE_I_AM, {isy} I_SEE_YOU",
        frames.len()
    );
    // For the record: Squid 5.7's own verdict on our I_SEE_YOU (docs/protocol.md 10.9: it
    // rejects all).
    let log = std::fs::read_to_string(dir.join("cache.log")).unwrap_or_default();
    for l in log.lines().filter(|l| l.contains("WCCP")) {
        eprintln!("squid: {l}");
    }
}
