//! `wccpd decode` on corrupted input never panics: deterministic mutations of every vector message,
//! of the GRE packet and of the capture files, through the whole decoder (parse + render + JSON).
//! (The libFuzzer targets in `crates/wccp-wire/fuzz` cover the codec itself far more deeply.)

mod common;

use std::path::{Path, PathBuf};

use wccpd::decode::{decode_input, decode_message, gre_node, parse_hex};
use wccpd::pcap::{extract, read_capture, Extracted};

use common::rng::Rng;

/// Flips, overwrites, inserts or deletes a few octets.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, u8::try_from(rng.below(256)).unwrap());
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            _ if v.len() > 8 => {
                // Corrupt a 16-bit length-looking field at an even offset.
                let i = rng.below(v.len() / 2 - 1) * 2;
                let n = u16::try_from(rng.below(0x1_0000)).unwrap();
                v[i..i + 2].copy_from_slice(&n.to_be_bytes());
            }
            _ => {}
        }
    }
    v
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn mutated_messages_decode_or_error_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut ok, mut err) = (0usize, 0usize);
    for p in files(&root().join("crates/wccp-wire/tests/vectors"), "hex") {
        let msg = parse_hex(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for _ in 0..300 {
            let m = mutate(&mut rng, &msg);
            match decode_message(&m, Some(b"wccpTest")) {
                Ok(d) => {
                    ok += 1;
                    // Rendering both ways must work too.
                    let _ = d.node.to_json();
                    d.node.write_text(&mut Vec::new(), 0).unwrap();
                }
                Err(e) => {
                    err += 1;
                    // Every error names where it is (or is a whole-message property).
                    let s = e.to_string();
                    assert!(
                        s.contains("offset")
                            || s.contains("message type")
                            || s.contains("version")
                            || s.contains("missing"),
                        "{s}"
                    );
                }
            }
        }
    }
    // The mutations exercise both paths.
    assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
}

#[test]
fn mutated_gre_packets_never_panic() {
    let cap = read_capture(
        &std::fs::read(
            root().join("crates/wccp-wire/tests/vectors/tcpdump-wccp_redirect_gre.pcap"),
        )
        .unwrap(),
    )
    .unwrap();
    let frame = &cap.frames[0];
    let Ok(Some(Extracted::Gre { payload, .. })) = extract(frame.link_type, &frame.data) else {
        panic!("GRE frame expected");
    };
    assert!(gre_node(payload).unwrap().is_some());
    let mut rng = Rng(0x5eed_0000_9e3e_0002);
    for n in 0..payload.len() {
        let _ = gre_node(&payload[..n]);
    }
    for _ in 0..5000 {
        let m = mutate(&mut rng, &payload[..payload.len().min(64)]);
        if let Ok(Some(node)) = gre_node(&m) {
            let _ = node.to_json();
        }
    }
    // Whole-frame mutations through the link/IPv4 parser.
    for _ in 0..5000 {
        let m = mutate(&mut rng, &frame.data);
        let _ = extract(frame.link_type, &m);
    }
}

#[test]
fn mutated_capture_files_never_panic() {
    let mut rng = Rng(0x5eed_0000_0000_0003);
    let dir = std::env::temp_dir().join(format!("hdecode-robust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mutated.pcap");
    let mut pcaps = files(&root().join("tests/data"), "pcap");
    pcaps.push(root().join("crates/wccp-wire/tests/vectors/tcpdump-wccp_redirect_gre.pcap"));
    let mut errors = 0;
    for p in &pcaps {
        let bytes = std::fs::read(p).unwrap();
        for n in (0..bytes.len()).step_by(7) {
            let _ = read_capture(&bytes[..n]);
        }
        for _ in 0..200 {
            let m = mutate(&mut rng, &bytes);
            if read_capture(&m).is_err() {
                errors += 1;
            }
            // Through the whole CLI path (file detection, capture, frames, rendering).
            std::fs::write(&path, &m).unwrap();
            let _ = decode_input(path.to_str().unwrap(), None, true, &mut Vec::new());
            let _ = decode_input(
                path.to_str().unwrap(),
                Some(b"wccpTest"),
                false,
                &mut Vec::new(),
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(errors > 50, "mutations should break some files ({errors})");
}
