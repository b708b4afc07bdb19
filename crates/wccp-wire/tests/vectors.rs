//! Real captured WCCP messages (copied from `shared/wccp/vectors`): decode, re-emit byte for byte,
//! verify MD5, and assert decoded fields.

use std::net::Ipv4Addr;

use wccp_wire::{
    decap_wccp, sign, verify, Addr, AssignmentData, Capability, ComponentRepr, Error, Message,
    MessageRepr, RedirectAssign, RedirectFlags, Security, ServiceFlags, ServiceType, Version,
    WccpPayload,
};

macro_rules! vectors {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("vectors/", $name, ".hex")))),*]
    };
}

/// Every `*.hex` vector, by file stem.
pub const VECTORS: &[(&str, &str)] = vectors![
    "ats_here_i_am",
    "ats_here_i_am_1",
    "ats_here_i_am_2",
    "ats_i_see_you",
    "ats_i_see_you_1",
    "ats_i_see_you_2",
    "ats_redirect_assign",
    "squid_dyn80_here_i_am",
    "squid_dyn80_here_i_am_1",
    "squid_here_i_am",
    "squid_here_i_am_1",
    "squid_here_i_am_2",
    "squid_i_see_you",
    "squid_i_see_you_1",
    "squid_i_see_you_2",
    "squid_md5_here_i_am",
    "squid_md5_here_i_am_1",
    "squid_md5_here_i_am_2",
    "squid_md5_i_see_you",
    "squid_md5_i_see_you_1",
    "squid_md5_i_see_you_2",
    "squidfix_dyn80_nocaps_here_i_am",
    "squidfix_dyn80_nocaps_here_i_am_1",
    "squidfix_dyn80_nocaps_here_i_am_2",
    "squidfix_dyn80_nocaps_i_see_you",
    "squidfix_dyn80_nocaps_i_see_you_1",
    "squidfix_dyn80_nocaps_i_see_you_2",
    "squidfix_dyn80_nocaps_redirect_assign",
    "squidfix_here_i_am",
    "squidfix_here_i_am_1",
    "squidfix_here_i_am_2",
    "squidfix_i_see_you",
    "squidfix_i_see_you_1",
    "squidfix_i_see_you_2",
    "squidfix_md5_here_i_am",
    "squidfix_md5_here_i_am_1",
    "squidfix_md5_here_i_am_2",
    "squidfix_md5_i_see_you",
    "squidfix_md5_i_see_you_1",
    "squidfix_md5_i_see_you_2",
    "squidfix_md5_redirect_assign",
    "squidfix_redirect_assign",
];

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn vector(name: &str) -> Vec<u8> {
    let (_, hex) = VECTORS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("known vector");
    unhex(hex)
}

fn ip(a: Addr) -> Ipv4Addr {
    a.to_ipv4()
}

#[test]
fn every_vector_decodes_and_reemits_identically() {
    for (name, hex) in VECTORS {
        let bytes = unhex(hex);
        let msg = Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.buffer_len(), bytes.len(), "{name}: buffer_len");
        let out = msg.to_vec().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out, bytes, "{name}: re-emitted bytes differ");
        let expected_type = if name.contains("here_i_am") {
            "HERE_I_AM"
        } else if name.contains("i_see_you") {
            "I_SEE_YOU"
        } else {
            "REDIRECT_ASSIGN"
        };
        assert_eq!(msg.msg_type().as_str(), expected_type, "{name}");
    }
}

#[test]
fn vector_list_is_complete() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".hex").map(str::to_owned))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = VECTORS.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

/// The copies in `tests/vectors` must equal the reference set beside the repository:
/// `<X>/<clone>` is the repository and `<X>/shared` the reference material (CI lays a copy of
/// `shared/` beside its clone). Without it the comparison cannot be made, and that is a failure,
/// not a pass.
#[test]
fn copies_match_shared_reference() {
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/wccp/vectors");
    assert!(
        shared.is_dir(),
        "the reference vectors are not at {}: put the project's shared/ directory beside the \
         repository (as CI does) to compare tests/vectors against it",
        shared.display()
    );
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut compared = 0;
    for entry in std::fs::read_dir(&local).unwrap() {
        let name = entry.unwrap().file_name();
        let a = std::fs::read(local.join(&name)).unwrap();
        let b = std::fs::read(shared.join(&name))
            .unwrap_or_else(|e| panic!("{}: missing in shared: {e}", name.to_string_lossy()));
        assert_eq!(a, b, "{} differs from shared copy", name.to_string_lossy());
        compared += 1;
    }
    for entry in std::fs::read_dir(&shared).unwrap() {
        let name = entry.unwrap().file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".hex") || n == "tcpdump-wccp_redirect_gre.pcap" {
            assert!(
                local.join(&name).exists(),
                "{n} not copied into tests/vectors"
            );
        }
    }
    assert!(compared > 40);
}

#[test]
fn signed_vectors_verify_with_password_and_fail_otherwise() {
    let mut signed = 0;
    for (name, hex) in VECTORS {
        let bytes = unhex(hex);
        let md5 = name.starts_with("squid_md5_") || name.starts_with("squidfix_md5_");
        if md5 {
            verify(&bytes, b"wccpTest").unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                verify(&bytes, b"wccpTesu"),
                Err(Error::Md5Mismatch),
                "{name}"
            );
            assert_eq!(verify(&bytes, b""), Err(Error::Md5Mismatch), "{name}");
            assert_eq!(
                verify(&bytes, b"wccpTest9"),
                Err(Error::PasswordTooLong),
                "{name}"
            );
            assert_eq!(
                wccp_wire::authenticate(&bytes, None),
                Err(Error::Md5Unexpected)
            );
            // Re-signing a copy with its digest zeroed reproduces the captured digest.
            let mut copy = bytes.clone();
            copy[16..32].fill(0);
            sign(&mut copy, b"wccpTest").unwrap();
            assert_eq!(copy, bytes, "{name}: re-signed");
            // A flipped octet anywhere in the message breaks the digest.
            let mut flipped = bytes.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert_eq!(
                verify(&flipped, b"wccpTest"),
                Err(Error::Md5Mismatch),
                "{name}"
            );
            signed += 1;
        } else {
            assert_eq!(
                verify(&bytes, b"wccpTest"),
                Err(Error::Md5Missing),
                "{name}"
            );
            wccp_wire::authenticate(&bytes, None).unwrap();
        }
    }
    assert_eq!(signed, 13);
}

#[test]
fn squidfix_redirect_assign_fields() {
    let bytes = vector("squidfix_redirect_assign");
    let ra = RedirectAssign::parse(&bytes).unwrap();
    assert_eq!(ra.version, Version::V2_00);
    assert_eq!(ra.security, Security::None);
    assert_eq!(ra.service.service_type, ServiceType::Standard);
    assert_eq!(ra.service.id, 0);
    let wccp_wire::Assignment::Hash(a) = &ra.assignment else {
        panic!("expected Assignment Info");
    };
    assert_eq!(ip(a.key.addr), Ipv4Addr::new(10, 200, 0, 2));
    assert_ne!(a.key.change_number, 0);
    assert_eq!(a.routers.len(), 1);
    assert_eq!(ip(a.routers[0].addr), Ipv4Addr::new(10, 200, 0, 1));
    assert_eq!(
        (a.routers[0].receive_id, a.routers[0].change_number),
        (3, 2)
    );
    assert_eq!(
        a.hash.caches,
        vec![Addr::from(Ipv4Addr::new(10, 200, 0, 2))]
    );
    assert!(a.hash.buckets.iter().all(|&b| b == 0));
    assert!(ra.address_table.is_none());
}

#[test]
fn squidfix_md5_i_see_you_1_fields() {
    let bytes = vector("squidfix_md5_i_see_you_1");
    let Message::ISeeYou(isy) = Message::parse(&bytes).unwrap() else {
        panic!("expected I_SEE_YOU");
    };
    assert!(matches!(isy.security, Security::Md5(_)));
    assert_eq!(isy.identity.router.receive_id, 2);
    assert_eq!(ip(isy.identity.router.addr), Ipv4Addr::new(10, 200, 0, 1));
    assert_eq!(ip(isy.identity.sent_to), Ipv4Addr::new(10, 200, 0, 1));
    assert_eq!(
        isy.identity.received_from,
        vec![Addr::from(Ipv4Addr::new(10, 200, 0, 2))]
    );
    assert_eq!(isy.view.change_number, 2);
    assert_eq!(
        isy.view.routers,
        vec![Addr::from(Ipv4Addr::new(10, 200, 0, 1))]
    );
    assert_eq!(isy.view.caches.len(), 1);
    let cache = &isy.view.caches[0];
    assert_eq!(ip(cache.addr), Ipv4Addr::new(10, 200, 0, 2));
    let AssignmentData::Hash(h) = &cache.data else {
        panic!("expected hash data");
    };
    assert_eq!(h.weight, 10000);
    let caps = isy.capabilities.as_ref().unwrap();
    assert_eq!(caps.forwarding_method(), Some(Capability::GRE));
    assert_eq!(caps.assignment_method(), Some(Capability::HASH));
    assert_eq!(caps.packet_return_method(), Some(Capability::GRE));
}

#[test]
fn squid_here_i_am_fields() {
    let bytes = vector("squid_here_i_am");
    let Message::HereIAm(hia) = Message::parse(&bytes).unwrap() else {
        panic!("expected HERE_I_AM");
    };
    assert_eq!(hia.version, Version::V2_00);
    assert_eq!(hia.service.service_type, ServiceType::Standard);
    assert_eq!(ip(hia.identity.addr), Ipv4Addr::new(10, 200, 0, 2));
    assert_eq!(hia.view.routers.len(), 1);
    assert_eq!(ip(hia.view.routers[0].addr), Ipv4Addr::new(10, 200, 0, 1));
    assert_eq!(hia.view.routers[0].receive_id, 0);
    assert_eq!(hia.view.change_number, 1);
    assert!(hia.view.caches.is_empty());
    assert_eq!(hia.identity.data.weight_status(), Some((10000, 0)));
}

#[test]
fn dynamic_service_vectors() {
    let bytes = vector("ats_here_i_am_2");
    let Message::HereIAm(hia) = Message::parse(&bytes).unwrap() else {
        panic!("expected HERE_I_AM");
    };
    let s = hia.service;
    assert_eq!(s.service_type, ServiceType::Dynamic);
    assert_eq!((s.id, s.priority, s.protocol), (80, 240, 6));
    assert!(s
        .flags
        .contains(ServiceFlags::SRC_IP_HASH | ServiceFlags::PORTS_DEFINED));
    assert_eq!(&s.ports[..3], &[80, 8080, 0]);
}

#[test]
fn md5_message_security_component_reparses() {
    let bytes = vector("squid_md5_here_i_am");
    let msg = Message::parse(&bytes).unwrap();
    let Security::Md5(d) = msg.security() else {
        panic!("expected MD5")
    };
    assert_eq!(&d[..], &bytes[16..32]);
    // The component on its own round-trips too.
    let mut buf = vec![0u8; msg.security().buffer_len()];
    msg.security().emit(&mut buf).unwrap();
    assert_eq!(buf, &bytes[8..32]);
}

/// docs/protocol.md TV-1 from tcpdump's `wccp_redirect_gre.pcap`.
#[test]
fn tcpdump_gre_capture() {
    let pcap = include_bytes!("vectors/tcpdump-wccp_redirect_gre.pcap");
    // Classic pcap: 24-octet global header, 16-octet record header, Ethernet (14), outer IPv4.
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let frame = &pcap[24 + 16..];
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    let outer = wccp_wire::Ipv4Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!(outer.protocol(), wccp_wire::ipv4::PROTOCOL_GRE);
    assert!(outer.verify_checksum());
    let gre = outer.payload();
    assert_eq!(&gre[..4], &[0x00, 0x00, 0x88, 0x3e]);
    let WccpPayload::Redirect { header, inner } = decap_wccp(gre).unwrap() else {
        panic!("expected a redirect header");
    };
    assert_eq!(header.flags, RedirectFlags(0x05));
    assert!(header.flags.contains(RedirectFlags::DYNAMIC));
    assert!(!header.flags.contains(RedirectFlags::ALT_BUCKET_USED));
    assert_eq!(header.service_id, 89);
    assert_eq!(header.alt_bucket, 0);
    assert_eq!(header.primary_bucket, 72);
    let ip4 = wccp_wire::Ipv4Packet::new_checked(inner).unwrap();
    assert_eq!(ip4.src(), Ipv4Addr::new(10, 254, 127, 195));
    assert_eq!(ip4.dst(), Ipv4Addr::new(10, 254, 108, 228));
    // Primary bucket = hash(src IP) = XOR of its octets.
    let h = ip4.src().octets().iter().fold(0u8, |a, b| a ^ b);
    assert_eq!(h, header.primary_bucket);
}

#[test]
fn every_truncation_of_every_vector_is_an_error() {
    for (name, hex) in VECTORS {
        let bytes = unhex(hex);
        for n in 0..bytes.len() {
            assert!(
                Message::parse(&bytes[..n]).is_err(),
                "{name} truncated to {n} parsed"
            );
            let _ = verify(&bytes[..n], b"wccpTest");
        }
    }
}

#[test]
fn shortened_length_field_is_an_error_or_a_shorter_message() {
    // Lowering the header Length field (and keeping the bytes) cuts a component short: must be an
    // error, never a panic.
    for (name, hex) in VECTORS {
        let bytes = unhex(hex);
        let len = u16::from_be_bytes([bytes[6], bytes[7]]);
        for l in 0..len {
            let mut b = bytes.clone();
            b[6..8].copy_from_slice(&l.to_be_bytes());
            // Cutting exactly at a component boundary may leave a valid, shorter message (an
            // optional component dropped); anything else must be an error.
            if let Ok(m) = Message::parse(&b) {
                assert_eq!(m.buffer_len(), 8 + usize::from(l), "{name} with length {l}");
                assert_eq!(
                    m.to_vec().unwrap(),
                    &b[..8 + usize::from(l)],
                    "{name} length {l}"
                );
            }
        }
    }
}

#[test]
fn trailing_bytes_after_message_are_ignored() {
    let mut bytes = vector("squidfix_here_i_am");
    let msg = Message::parse(&bytes).unwrap();
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(Message::parse(&bytes).unwrap(), msg);
}

#[test]
fn wrong_message_type_for_repr() {
    let bytes = vector("squidfix_here_i_am");
    assert!(matches!(
        RedirectAssign::parse(&bytes),
        Err(Error::Invalid {
            field: wccp_wire::FieldId::MessageType,
            value: 10,
            ..
        })
    ));
}

#[test]
fn ats_unassigned_flag_is_kept_raw() {
    let Message::HereIAm(h) = Message::parse(&vector("ats_here_i_am")).unwrap() else {
        panic!("expected HERE_I_AM");
    };
    assert_eq!(h.identity.flags, wccp_wire::IdentityFlags::ATS_UNASSIGNED);
    assert!(!h.identity.flags.unassigned());
    assert!(h.identity.flags.unassigned_lenient());
    let Message::HereIAm(h) = Message::parse(&vector("ats_here_i_am_2")).unwrap() else {
        panic!("expected HERE_I_AM");
    };
    assert!(!h.identity.flags.unassigned_lenient());
}

#[test]
fn identity_flags_in_vectors_are_decoded() {
    for (name, hex) in VECTORS {
        if let Ok(Message::HereIAm(h)) = Message::parse(&unhex(hex)) {
            assert_eq!(h.identity.hash_revision, 0, "{name}");
            match &h.identity.data {
                AssignmentData::Hash(_) | AssignmentData::Mask(_) => {}
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
    }
}

/// Snapshot of every parsed vector (`{:#?}` of the `Message`) in `tests/snapshots/*.txt`, so any
/// change in decoding shows up as a reviewable diff. Regenerate with `UPDATE_SNAPSHOTS=1`.
#[test]
fn parsed_vectors_match_snapshots() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut mismatched = Vec::new();
    for (name, hex) in VECTORS {
        let msg = Message::parse(&unhex(hex)).unwrap();
        let text = format!("{msg:#?}\n");
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else {
            let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display())
            });
            if want != text {
                mismatched.push((*name).to_owned());
            }
        }
    }
    assert!(mismatched.is_empty(), "snapshots differ: {mismatched:?}");
}
