//! `wccpd decode` over the real test vectors, through the library API and the real binary.
//!
//! Vectors: `crates/wccp-wire/tests/vectors/*.hex` (one UDP payload each) and the tcpdump GRE
//! capture there; full pcapng exchanges in `tests/data/`.

mod common;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use wccpd::decode::{decode_input, parse_hex, DecodeError};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/wccp-wire/tests/vectors")
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every `*.hex` vector, sorted by name.
fn hex_vectors() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("vectors dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    v.sort();
    assert!(v.len() >= 40, "expected the 43 vectors, found {}", v.len());
    v
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Message type implied by a vector's file name.
fn expected_type(file: &str) -> &'static str {
    if file.contains("here_i_am") {
        "HERE_I_AM"
    } else if file.contains("i_see_you") {
        "I_SEE_YOU"
    } else if file.contains("redirect_assign") {
        "REDIRECT_ASSIGN"
    } else {
        panic!("unexpected vector {file}")
    }
}

/// (service type, service id) implied by a vector's file name (vectors/README.md table).
fn expected_service(file: &str) -> (&'static str, u64) {
    if file.starts_with("ats_") || file.contains("dyn80") {
        ("dynamic", 80)
    } else {
        ("standard", 0)
    }
}

fn decode_json(input: &str, password: Option<&[u8]>) -> (Value, wccpd::decode::DecodeOutcome) {
    let mut out = Vec::new();
    let outcome = decode_input(input, password, true, &mut out)
        .unwrap_or_else(|e| panic!("decode {input}: {e}"));
    let v: Value = serde_json::from_slice(&out).expect("valid JSON");
    (v, outcome)
}

fn wccpd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wccpd"))
        .args(args)
        .output()
        .expect("run wccpd")
}

fn stdout_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn every_vector_decodes_with_type_version_and_service() {
    for p in hex_vectors() {
        let file = name(&p);
        let (v, outcome) = decode_json(p.to_str().unwrap(), None);
        assert_eq!(outcome.messages, 1, "{file}");
        assert!(outcome.is_ok(), "{file}: {outcome:?}");
        assert_eq!(v["type"], expected_type(&file), "{file}");
        assert_eq!(v["version"], "0x0200", "{file}");
        let (st, sid) = expected_service(&file);
        assert_eq!(v["service"]["type"], st, "{file}");
        assert_eq!(v["service"]["id"], sid, "{file}");
        let md5 = file.contains("md5");
        assert_eq!(
            v["security"]["option"],
            if md5 { "md5" } else { "none" },
            "{file}"
        );
        // Without a password, validity is not claimed.
        assert!(v["security"].get("valid").is_none(), "{file}");
        // Component order as on the wire.
        let order: Vec<u64> = v["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(&order[..2], &[0, 1], "{file}");
    }
}

#[test]
fn every_vector_through_the_binary() {
    for p in hex_vectors() {
        let file = name(&p);
        let o = wccpd(&["decode", "--json", p.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v = stdout_json(&o);
        assert_eq!(v["type"], expected_type(&file), "{file}");
        assert_eq!(v["service"]["id"], expected_service(&file).1, "{file}");
        // The same message as a hex string on the command line gives the same JSON.
        let hex = std::fs::read_to_string(&p).unwrap();
        let o2 = wccpd(&["decode", "--json", hex.trim()]);
        assert!(o2.status.success(), "{file}");
        assert_eq!(stdout_json(&o2), v, "{file}: hex argument vs file");
    }
}

#[test]
fn text_tree_uses_the_drafts_names() {
    let p = vectors_dir().join("squidfix_i_see_you_1.hex");
    let o = wccpd(&["decode", p.to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for needle in [
        "Message Type: I_SEE_YOU (11)",
        "Version: 0x0200 (2.00)",
        "Security Info",
        "Service Info",
        "Router Identity Info",
        "    Receive ID: ",
        "Router View Info",
        "Member Change Number: ",
        "Web-Cache Identity 1",
        "Capabilities Info",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // Indented tree: nested fields are deeper than their component.
    assert!(text.contains("\n    Router Identity Info\n        Router IP Address: 10.200.0.1\n"));
}

#[test]
fn squidfix_redirect_assign_contents() {
    let p = vectors_dir().join("squidfix_redirect_assign.hex");
    let (v, _) = decode_json(p.to_str().unwrap(), None);
    assert_eq!(v["type"], "REDIRECT_ASSIGN");
    assert_eq!(v["service"]["type"], "standard");
    assert_eq!(v["service"]["id"], 0);
    let a = &v["assignment"];
    assert_eq!(a["component"], "Assignment Info");
    assert_eq!(a["key"]["address"], "10.200.0.2");
    assert_ne!(a["key"]["change_number"], 0);
    let routers = a["routers"].as_array().unwrap();
    assert_eq!(routers.len(), 1);
    assert_eq!(routers[0]["address"], "10.200.0.1");
    // The receive ID and change number the cache last heard: the preceding I_SEE_YOU
    // (squidfix_i_see_you_2) carries them.
    let (isy, _) = decode_json(
        vectors_dir()
            .join("squidfix_i_see_you_2.hex")
            .to_str()
            .unwrap(),
        None,
    );
    assert_eq!(
        routers[0]["receive_id"],
        isy["router_identity"]["receive_id"]
    );
    assert_eq!(
        routers[0]["change_number"],
        isy["router_view"]["change_number"]
    );
    assert_eq!(a["caches"], serde_json::json!(["10.200.0.2"]));
    let buckets = a["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 256);
    for (i, b) in buckets.iter().enumerate() {
        assert_eq!(
            b,
            &serde_json::json!({"cache": 0, "alt": false}),
            "bucket {i}"
        );
    }
    assert!(a.get("mask_value_sets").is_none());
}

#[test]
fn here_i_am_identity_and_view() {
    let p = vectors_dir().join("squidfix_here_i_am_1.hex");
    let (v, _) = decode_json(p.to_str().unwrap(), None);
    let id = &v["web_cache_identity"];
    assert_eq!(id["address"], "10.200.0.2");
    assert_eq!(id["weight"], 10000);
    assert_eq!(id["status"], 0);
    assert_eq!(id["flags"]["assignment_type"], "hash");
    assert_eq!(id["assignment_data"]["type"], "hash");
    let view = &v["web_cache_view"];
    assert_eq!(view["change_number"], 1);
    assert_eq!(view["routers"][0]["address"], "10.200.0.1");
    assert_eq!(view["caches"].as_array().unwrap().len(), 0);
    // Dynamic service 80 with ports.
    let (d, _) = decode_json(
        vectors_dir()
            .join("squid_dyn80_here_i_am.hex")
            .to_str()
            .unwrap(),
        None,
    );
    assert_eq!(d["service"]["ports"], serde_json::json!([80, 8080]));
    assert_eq!(d["service"]["protocol"], 6);
    assert!(d["service"]["flags"]
        .as_array()
        .unwrap()
        .contains(&Value::from("PORTS_DEFINED")));
}

#[test]
fn i_see_you_identity_and_view() {
    let p = vectors_dir().join("squidfix_i_see_you_2.hex");
    let (v, _) = decode_json(p.to_str().unwrap(), None);
    let id = &v["router_identity"];
    assert_eq!(id["address"], "10.200.0.1");
    assert!(id["receive_id"].as_u64().unwrap() > 0);
    assert_eq!(id["sent_to"], "10.200.0.1");
    assert_eq!(id["received_from"], serde_json::json!(["10.200.0.2"]));
    let view = &v["router_view"];
    assert!(view["change_number"].as_u64().unwrap() > 0);
    assert!(view["key"]["address"].is_string());
    assert_eq!(view["routers"], serde_json::json!(["10.200.0.1"]));
    assert_eq!(view["caches"][0]["address"], "10.200.0.2");
    let caps = v["capabilities"].as_array().unwrap();
    assert_eq!(caps[0]["type"], "FORWARDING_METHOD");
    assert_eq!(caps[0]["methods"], serde_json::json!(["GRE"]));
}

#[test]
fn md5_vectors_verify_with_the_right_password_only() {
    let md5: Vec<PathBuf> = hex_vectors()
        .into_iter()
        .filter(|p| name(p).contains("md5"))
        .collect();
    assert!(md5.len() >= 10);
    for p in &md5 {
        let file = name(p);
        let path = p.to_str().unwrap();
        let (v, outcome) = decode_json(path, Some(b"wccpTest"));
        assert!(outcome.is_ok(), "{file}");
        assert_eq!(v["security"]["valid"], true, "{file}");
        let o = wccpd(&["decode", "--password", "wccpTest", "--json", path]);
        assert!(
            o.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(stdout_json(&o)["security"]["valid"], true);

        let (v, outcome) = decode_json(path, Some(b"wccpTesT"));
        assert_eq!(v["security"]["valid"], false, "{file}");
        assert_eq!(outcome.invalid_digests.len(), 1, "{file}");
        let o = wccpd(&["decode", "--password", "wccpTesT", path]);
        assert!(!o.status.success(), "{file}: wrong password must fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("MD5 digest"), "{file}: {err}");
        // The tree still shows what was decoded, including the verdict.
        assert!(String::from_utf8_lossy(&o.stdout).contains("Digest: INVALID"));
    }
    // An unsigned message checked against a password is invalid too (a router would drop it).
    let plain = vectors_dir().join("squidfix_here_i_am.hex");
    let o = wccpd(&["decode", "--password", "wccpTest", plain.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("message is not signed"));
    // Passwords longer than 8 octets are refused.
    let o = wccpd(&["decode", "--password", "123456789", plain.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("longer than 8"));
}

#[test]
fn truncated_hex_is_an_error_with_field_and_offset() {
    let full = std::fs::read_to_string(vectors_dir().join("squidfix_i_see_you_1.hex")).unwrap();
    let full = full.trim();
    let mut out = Vec::new();
    // Cut in the middle of the components: the header's Length no longer fits.
    let cut = &full[..full.len() - 40];
    let e = decode_input(cut, None, true, &mut out).unwrap_err();
    assert!(matches!(e, DecodeError::Message(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("offset 8"), "{msg}");
    assert!(out.is_empty(), "no output for a malformed message");
    let o = wccpd(&["decode", cut]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("malformed WCCP message") && err.contains("offset"),
        "{err}"
    );

    // A component whose declared length runs past the message: fix the header length so the
    // framing check reaches the component walk.
    let mut bytes = parse_hex(full).unwrap();
    bytes.truncate(bytes.len() - 20);
    let len = u16::try_from(bytes.len() - 8).unwrap();
    bytes[6..8].copy_from_slice(&len.to_be_bytes());
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let e = decode_input(&hex, None, false, &mut Vec::new()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("offset"), "{msg}");
    assert!(
        msg.contains("component type 8") || msg.contains("Capabilities"),
        "{msg}"
    );

    // Every truncation of every vector is an error or a message, never a panic.
    for p in hex_vectors() {
        let b = parse_hex(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for n in 0..b.len() {
            let hex: String = b[..n].iter().map(|x| format!("{x:02x}")).collect();
            let _ = decode_input(&hex, None, true, &mut Vec::new());
        }
    }
}

#[test]
fn bad_hex_and_missing_files_are_errors() {
    let mut out = Vec::new();
    let e = decode_input("0a0b0", None, false, &mut out).unwrap_err();
    assert!(e.to_string().contains("odd number of hex digits"), "{e}");
    let e = decode_input("0a0bzz", None, false, &mut out).unwrap_err();
    assert!(e.to_string().contains("character 4"), "{e}");
    let e = decode_input("/no/such/file.pcap", None, false, &mut out).unwrap_err();
    assert!(e.to_string().contains("no file"), "{e}");
    // Separators and a 0x prefix are accepted.
    assert_eq!(parse_hex("0x0A:0b 0c\n").unwrap(), vec![10, 11, 12]);
    let o = wccpd(&["decode", "nonsense"]);
    assert!(!o.status.success());
}

#[test]
fn gre_capture_redirect_header_and_hash() {
    let p = vectors_dir().join("tcpdump-wccp_redirect_gre.pcap");
    let (v, outcome) = decode_json(p.to_str().unwrap(), None);
    assert_eq!(outcome.gre_packets, 1);
    assert_eq!(outcome.messages, 0);
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    let e = &arr[0];
    assert_eq!(e["frame"], 1);
    assert_eq!(e["src"], "10.254.127.194");
    assert_eq!(e["dst"], "10.254.214.82");
    let rh = &e["gre"]["redirect_header"];
    assert_eq!(rh["dynamic"], true);
    assert_eq!(rh["alternate_used"], false);
    assert_eq!(rh["service_id"], 89);
    assert_eq!(rh["alt_bucket"], 0);
    assert_eq!(rh["primary_bucket"], 72);
    let inner = &e["gre"]["inner"];
    assert_eq!(inner["src"], "10.254.127.195");
    assert_eq!(inner["dst"], "10.254.108.228");
    assert_eq!(inner["protocol"], 6);
    assert_eq!(inner["src_port"], 1291);
    assert_eq!(inner["dst_port"], 445);
    // Our hash (wccp-assign) of the inner source address gives the router's primary bucket.
    let src: Ipv4Addr = inner["src"].as_str().unwrap().parse().unwrap();
    let key = assign::hash::FlowKey::new(u32::from(src), 0, 0, 0);
    let bucket = assign::hash::primary_bucket(0x0001, &key);
    assert_eq!(u64::from(bucket), rh["primary_bucket"].as_u64().unwrap());
    assert_eq!(bucket, 72);

    let o = wccpd(&["decode", p.to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("Primary Bucket: 72"), "{text}");
    assert!(text.contains("Service ID: 89"), "{text}");
}

#[test]
fn pcapng_exchanges_decode_in_order() {
    let expect = [
        (
            "squidfix.pcap",
            vec![
                "HERE_I_AM",
                "I_SEE_YOU",
                "HERE_I_AM",
                "I_SEE_YOU",
                "HERE_I_AM",
                "I_SEE_YOU",
                "REDIRECT_ASSIGN",
            ],
        ),
        (
            "squid.pcap",
            vec![
                "HERE_I_AM",
                "I_SEE_YOU",
                "HERE_I_AM",
                "I_SEE_YOU",
                "HERE_I_AM",
                "I_SEE_YOU",
            ],
        ),
    ];
    for (file, types) in expect {
        let p = data_dir().join(file);
        let (v, outcome) = decode_json(p.to_str().unwrap(), None);
        assert!(outcome.is_ok(), "{file}: {outcome:?}");
        let arr = v.as_array().unwrap();
        let got: Vec<&str> = arr
            .iter()
            .map(|e| e["message"]["type"].as_str().unwrap())
            .collect();
        assert_eq!(got, types, "{file}");
        for (i, e) in arr.iter().enumerate() {
            assert_eq!(e["frame"], i + 1);
            let dir = if e["message"]["type"] == "I_SEE_YOU" {
                ("10.200.0.1:2048", "10.200.0.2:2048")
            } else {
                ("10.200.0.2:2048", "10.200.0.1:2048")
            };
            assert_eq!(
                (e["src"].as_str().unwrap(), e["dst"].as_str().unwrap()),
                dir,
                "{file} frame {}",
                i + 1
            );
        }
    }
    // Every capture in tests/data decodes without error, and the MD5 ones verify.
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "pcap") {
            continue;
        }
        let file = name(&p);
        let pw: Option<&[u8]> = file.contains("md5").then_some(b"wccpTest");
        let (_, outcome) = decode_json(p.to_str().unwrap(), pw);
        assert!(
            outcome.is_ok() && outcome.messages >= 2,
            "{file}: {outcome:?}"
        );
    }
    // Signed exchange with a wrong password: every frame invalid, the binary exits non-zero.
    let p = data_dir().join("squidfix_md5.pcap");
    let o = wccpd(&["decode", "--password", "notthis", p.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("MD5 digest invalid for 7 message(s)"));
}

#[test]
fn our_pcap_writer_round_trips_through_decode() {
    let router = SocketAddrV4::new(Ipv4Addr::new(10, 200, 0, 1), 2048);
    let cache = SocketAddrV4::new(Ipv4Addr::new(10, 200, 0, 2), 2048);
    let msgs: Vec<Vec<u8>> = hex_vectors()
        .iter()
        .filter(|p| name(p).starts_with("ats_"))
        .map(|p| parse_hex(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    let dgrams: Vec<(SocketAddrV4, SocketAddrV4, &[u8])> =
        msgs.iter().map(|m| (cache, router, m.as_slice())).collect();
    let bytes = common::frames::write_udp_pcap(Vec::new(), &dgrams).unwrap();
    let dir = std::env::temp_dir().join(format!("hdecode-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ats_written.pcap");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let (v, outcome) = decode_json(path.to_str().unwrap(), None);
    assert_eq!(outcome.messages, msgs.len());
    for (e, m) in v.as_array().unwrap().iter().zip(&msgs) {
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        let (single, _) = decode_json(&hex, None);
        assert_eq!(e["message"], single);
    }
    // A truncated capture names the record and offset, and the binary fails.
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let o = wccpd(&["decode", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("record") && err.contains("offset"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn message_to_json_matches_the_cli_json() {
    let p = vectors_dir().join("ats_redirect_assign.hex");
    let bytes = parse_hex(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let msg = wire::Message::parse(&bytes).unwrap();
    let mut direct = wccpd::decode::message_to_json(&msg);
    let (mut cli, _) = decode_json(p.to_str().unwrap(), None);
    // The CLI adds the component order, which needs the raw bytes.
    cli.as_object_mut().unwrap().remove("components");
    direct.as_object_mut().unwrap().remove("components");
    assert_eq!(direct, cli);
    assert_eq!(direct["type"], "REDIRECT_ASSIGN");
}

#[test]
fn json_keeps_the_tree_order_like_tshark() {
    // The members of `--json` come in the order of the tree (and of the text output), not
    // sorted: read them from the pretty-printed text, independently of any JSON parser.
    let p = vectors_dir().join("squid_here_i_am.hex");
    let o = wccpd(&["decode", "--json", p.to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let keys_at = |indent: usize| -> Vec<String> {
        let pad = " ".repeat(indent);
        text.lines()
            .filter_map(|l| l.strip_prefix(&pad))
            .filter(|l| l.starts_with('"'))
            .filter_map(|l| l[1..].split_once("\":").map(|(k, _)| k.to_owned()))
            .collect()
    };
    let top = keys_at(2);
    assert_eq!(
        top[..8],
        [
            "type",
            "version",
            "length",
            "components",
            "security",
            "service",
            "web_cache_identity",
            "web_cache_view"
        ],
        "{text}"
    );
    let service: Vec<&str> = text
        .split("\"service\": {")
        .nth(1)
        .and_then(|s| s.split('}').next())
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split_once("\":"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        service,
        [
            "type",
            "id",
            "priority",
            "protocol",
            "flags",
            "flags_raw",
            "ports"
        ],
        "{text}"
    );
    // The library's `Value` keeps that order too.
    let (v, _) = decode_json(p.to_str().unwrap(), None);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, top);
}
