//! Packet return (docs/protocol.md §4.4) on real bytes: the GRE-redirected packet of TV-1 (a Cisco
//! router, tcpdump test capture `wccp_redirect_gre.pcap`, dynamic service 89, redirect header
//! `05 59 00 48`).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use wccp_control::packet_return::{
    self, build_return, parse_redirected, parse_redirected_with, process, rewrite_destination,
    Decision, GreRule, RefuseReason, ReturnError, ReturnPolicy, Verdict,
};
use wire::checksum::checksum as internet_checksum;

/// Outer IPv4 packet of the capture (Ethernet stripped): 10.254.127.194 -> 10.254.214.82, GRE,
/// redirect header 05 59 00 48, inner TCP 10.254.127.195:1291 -> 10.254.108.228:445.
const TV1: &[&str] = &[
    "4500010cac830000fd2fa42e0afe7fc20afed6520000883e05590048450000f0911440004006a6500afe7fc30afe6ce4",
    "050b01bd8383a18a550ac89d8018f98f290900000101080a00009e1e01abcb5f000000b8ff534d4225000000001807c8",
    "000000000000000000000000024058080078412810000064000000000400000000000000000000000054006400540002",
    "00260012807500005c0050004900500045005c0000000000050000031000000064000000010000004c00000000001000",
    "f0d1d3021100000000000000110000005c005c00310030002e003200350034002e003100300038002e00320032003800",
    "00004c00030000000000000003000000640024000000000001000000",
];

fn unhex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn tv1() -> Vec<u8> {
    unhex(TV1)
}

#[test]
fn parses_the_cisco_redirect() {
    let pkt = tv1();
    assert_eq!(pkt.len(), 268);
    let r = parse_redirected(&pkt).unwrap();
    assert_eq!(r.router, Ipv4Addr::new(10, 254, 127, 194));
    assert_eq!(r.cache, Ipv4Addr::new(10, 254, 214, 82));
    assert_eq!(r.redirect_header, Some([0x05, 0x59, 0x00, 0x48]));
    assert_eq!(r.inner_src, Ipv4Addr::new(10, 254, 127, 195));
    assert_eq!(r.inner_dst, Ipv4Addr::new(10, 254, 108, 228));
    assert_eq!(r.inner.len(), 240);
    assert_eq!(r.inner, &pkt[28..]);
}

#[test]
fn builds_the_gre_return_byte_for_byte() {
    let pkt = tv1();
    let r = parse_redirected(&pkt).unwrap();
    let out = build_return(&r, 7).unwrap();
    let mut want = unhex(&[
        // IPv4: len 268, id 7, DF clear, TTL 255, proto 47, checksum, cache -> router.
        "4500010c00070000ff2f4eab0afed6520afe7fc2",
        // GRE, then the redirect header copied unchanged.
        "0000883e05590048",
    ]);
    want.extend_from_slice(&pkt[28..]);
    assert_eq!(out, want);
    assert_eq!(
        internet_checksum(&out[..20]),
        0,
        "outer header checksum verifies"
    );
    // Round trip: the return packet parses as a WCCP GRE packet from the cache to the router.
    let back = parse_redirected(&out).unwrap();
    assert_eq!((back.router, back.cache), (r.cache, r.router));
    assert_eq!(back.inner, r.inner);
    assert_eq!(back.redirect_header, r.redirect_header);
}

/// A WCCPv1-style GRE packet (no redirect header) gets a header with only U set.
#[test]
fn missing_redirect_header_becomes_u_only() {
    let pkt = tv1();
    // Rebuild without the 4-octet redirect header: outer length 264.
    let mut v1 = pkt[..24].to_vec();
    v1.extend_from_slice(&pkt[28..]);
    v1[2..4].copy_from_slice(&264u16.to_be_bytes());
    v1[10..12].copy_from_slice(&[0, 0]);
    let c = internet_checksum(&v1[..20]);
    v1[10..12].copy_from_slice(&c.to_be_bytes());
    let r = parse_redirected(&v1).unwrap();
    assert_eq!(r.redirect_header, None);
    assert_eq!(r.inner_src, Ipv4Addr::new(10, 254, 127, 195));
    let out = build_return(&r, 0).unwrap();
    assert_eq!(out.len(), 268);
    assert_eq!(
        &out[20..28],
        &[0x00, 0x00, 0x88, 0x3e, 0x04, 0x00, 0x00, 0x00]
    );
    assert_eq!(&out[28..], &pkt[28..]);
}

#[test]
fn policy_source_destination_and_load() {
    let pkt = tv1();
    let r = parse_redirected(&pkt).unwrap();
    let mut p = ReturnPolicy::default();
    assert_eq!(
        packet_return::decide(&p, &r, u32::MAX),
        Decision::Accept,
        "empty policy serves everything"
    );
    p.max_load = Some(80);
    assert_eq!(packet_return::decide(&p, &r, 80), Decision::Accept);
    assert_eq!(
        packet_return::decide(&p, &r, 81),
        Decision::Refuse(RefuseReason::Overload)
    );
    p.refuse_destinations = vec!["10.254.108.0/24".parse().unwrap()];
    assert_eq!(
        packet_return::decide(&p, &r, 0),
        Decision::Refuse(RefuseReason::Destination)
    );
    p.refuse_sources = vec!["10.254.127.195/32".parse().unwrap()];
    assert_eq!(
        packet_return::decide(&p, &r, 0),
        Decision::Refuse(RefuseReason::Source)
    );
    let other = ReturnPolicy {
        refuse_sources: vec!["10.254.127.196/32".parse::<Ipv4Net>().unwrap()],
        refuse_destinations: vec!["10.254.109.0/24".parse().unwrap()],
        max_load: None,
        ..ReturnPolicy::default()
    };
    assert_eq!(packet_return::decide(&other, &r, 1000), Decision::Accept);
}

#[test]
fn process_returns_only_refused_packets() {
    let pkt = tv1();
    let accept = ReturnPolicy::default();
    assert_eq!(process(&accept, &pkt, 0, 1).unwrap(), Verdict::Accept);
    let refuse = ReturnPolicy {
        max_load: Some(0),
        ..ReturnPolicy::default()
    };
    match process(&refuse, &pkt, 1, 1).unwrap() {
        Verdict::Return { reason, packet } => {
            assert_eq!(reason, RefuseReason::Overload);
            assert_eq!(
                &packet[12..20],
                &pkt[16..20]
                    .iter()
                    .chain(&pkt[12..16])
                    .copied()
                    .collect::<Vec<_>>()[..]
            );
            assert_eq!(&packet[24..28], &[0x05, 0x59, 0x00, 0x48]);
        }
        Verdict::Accept => panic!("should be returned"),
    }
}

#[test]
fn malformed_input_is_an_error_naming_the_layer() {
    let pkt = tv1();
    // Every truncation is an error, never a panic.
    for n in 0..pkt.len() {
        assert!(parse_redirected(&pkt[..n]).is_err(), "len {n}");
    }
    let mut udp = pkt.clone();
    udp[9] = 17;
    assert!(matches!(
        parse_redirected(&udp),
        Err(ReturnError::Invalid {
            layer: "outer IPv4",
            field: "protocol",
            value: 17,
            ..
        })
    ));
    let mut plain_gre = pkt.clone();
    plain_gre[22..24].copy_from_slice(&0x0800u16.to_be_bytes());
    assert!(matches!(
        parse_redirected(&plain_gre),
        Err(ReturnError::Invalid {
            layer: "GRE",
            field: "protocol type",
            value: 0x0800,
            offset: 20
        })
    ));
    let mut bad_inner = pkt.clone();
    bad_inner[28] = 0x65;
    let e = parse_redirected(&bad_inner).unwrap_err();
    assert!(matches!(
        e,
        ReturnError::Invalid {
            layer: "inner IPv4",
            field: "version",
            offset: 28,
            ..
        }
    ));
    assert!(e.to_string().contains("offset 28"));
    // Trailing octets beyond the outer total length (Ethernet padding) are ignored.
    let mut padded = pkt.clone();
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(parse_redirected(&padded).unwrap().inner.len(), 240);
}

/// TV-1's outer IPv4 header, then `gre`, then TV-1 from octet `from` on (outer total length
/// fixed, checksum left as it was: the parser does not check it).
fn tv1_with_gre(gre: &[u8], from: usize) -> Vec<u8> {
    let pkt = tv1();
    let mut p = pkt[..20].to_vec();
    p.extend_from_slice(gre);
    p.extend_from_slice(&pkt[from..]);
    let len = u16::try_from(p.len()).unwrap();
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p
}

/// TV-1 with a GRE key (K flag 0x2000, 4 octets) before its redirect header.
fn tv1_with_gre_key() -> Vec<u8> {
    tv1_with_gre(&[0x20, 0x00, 0x88, 0x3e, 0xde, 0xad, 0xbe, 0xef], 24)
}

#[test]
fn gre_optional_fields_are_skipped() {
    let pkt = tv1();
    let k = tv1_with_gre_key();
    assert_eq!(k.len(), 272);
    let r = parse_redirected(&k).unwrap();
    assert_eq!(r.redirect_header, Some([0x05, 0x59, 0x00, 0x48]));
    assert_eq!(r.inner, &pkt[28..]);
    // GRE version 1 is refused.
    let mut v = pkt.clone();
    v[21] = 1;
    assert!(matches!(
        parse_redirected(&v),
        Err(ReturnError::Invalid {
            field: "version",
            ..
        })
    ));
}

#[test]
fn gre_rule_linux_refuses_flags_and_plain_ipv4_is_opt_in() {
    let pkt = tv1();
    let k = tv1_with_gre_key();
    assert!(matches!(
        parse_redirected_with(&k, GreRule::LINUX),
        Err(ReturnError::Invalid {
            layer: "GRE",
            field: "flags",
            value: 0x2000,
            offset: 20
        })
    ));
    assert_eq!(
        parse_redirected_with(&pkt, GreRule::LINUX),
        parse_redirected(&pkt)
    );
    // Plain GRE 0x0800: the inner packet follows the 4-octet GRE header, no redirect header.
    let mut plain = tv1_with_gre(&[0x00, 0x00, 0x08, 0x00], 28);
    assert!(parse_redirected_with(&plain, GreRule::LINUX).is_err());
    let rule = GreRule {
        plain_ipv4: true,
        ..GreRule::LINUX
    };
    let r = parse_redirected_with(&plain, rule).unwrap();
    assert_eq!(r.redirect_header, None);
    assert_eq!(r.inner, &pkt[28..]);
    // ... and with no flags even when optional fields would otherwise be skipped.
    plain[20] = 0x20;
    let lenient = GreRule {
        plain_ipv4: true,
        ..GreRule::default()
    };
    assert!(matches!(
        parse_redirected_with(&plain, lenient),
        Err(ReturnError::Invalid { field: "flags", .. })
    ));
}

/// Cross-check with the wire crate's independent IPv4 and GRE views (the data plane's parsers):
/// the return packet is a valid IPv4 datagram (checksum, protocol 47, cache -> router) carrying
/// WCCP GRE with the original redirect header and inner packet.
#[test]
fn return_packet_parses_with_the_wire_views() {
    let pkt = tv1();
    let r = parse_redirected(&pkt).unwrap();
    let out = build_return(&r, 0x1234).unwrap();
    let ip = wire::Ipv4Packet::new_checked(&out[..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), 47);
    assert_eq!((ip.src(), ip.dst()), (r.cache, r.router));
    assert_eq!(ip.ttl(), 255);
    assert_eq!(ip.ident(), 0x1234);
    assert_eq!(ip.flags_frag(), 0, "DF clear, not fragmented");
    assert_eq!(usize::from(ip.total_len()), out.len());
    match wire::decap_wccp(ip.payload()).unwrap() {
        wire::WccpPayload::Redirect { header, inner } => {
            assert_eq!(header.service_id, 0x59);
            assert_eq!(header.primary_bucket, 0x48);
            assert_eq!(inner, r.inner);
        }
        other => panic!("redirect header expected, got {other:?}"),
    }
    // The original (the router's redirect) parses the same way: same views, same inner packet.
    let orig = wire::Ipv4Packet::new_checked(&pkt[..]).unwrap();
    assert!(orig.verify_checksum());
    assert_eq!(wire::decap_wccp(orig.payload()).unwrap().inner(), r.inner);
}

/// TCP/UDP checksum over the IPv4 pseudo-header and the segment (0 when valid, computed over a
/// segment that includes its checksum field).
fn l4_checksum(ip: &[u8]) -> u16 {
    let ihl = usize::from(ip[0] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let seg = &ip[ihl..total];
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, ip[9]]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(seg);
    internet_checksum(&pseudo)
}

#[test]
fn rewrite_destination_fixes_both_checksums() {
    let pkt = tv1();
    let inner = pkt[28..].to_vec();
    assert_eq!(
        internet_checksum(&inner[..20]),
        0,
        "capture's IPv4 checksum is valid"
    );
    assert_eq!(l4_checksum(&inner), 0, "capture's TCP checksum is valid");
    let mut x = inner.clone();
    let to = Ipv4Addr::new(192, 0, 2, 80);
    rewrite_destination(&mut x, to).unwrap();
    assert_eq!(&x[16..20], &to.octets());
    assert_eq!(internet_checksum(&x[..20]), 0);
    assert_eq!(
        l4_checksum(&x),
        0,
        "TCP checksum updated for the new pseudo-header"
    );
    assert_eq!(
        &x[20..36],
        &inner[20..36],
        "ports, sequence numbers untouched"
    );
    assert_eq!(&x[38..], &inner[38..], "payload untouched");
    // UDP with checksum 0 (none) keeps 0; with a checksum it is updated.
    let mut udp = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    udp.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
    let mut u0 = udp.clone();
    rewrite_destination(&mut u0, to).unwrap();
    assert_eq!(&u0[26..28], &[0, 0]);
    assert_eq!(internet_checksum(&u0[..20]), 0);
    let c = l4_checksum(&udp);
    udp[26..28].copy_from_slice(&c.to_be_bytes());
    assert_eq!(l4_checksum(&udp), 0);
    rewrite_destination(&mut udp, to).unwrap();
    assert_eq!(l4_checksum(&udp), 0);
    // A non-first fragment has no transport header to fix.
    let mut frag = inner.clone();
    frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
    frag[10..12].copy_from_slice(&[0, 0]);
    let h = internet_checksum(&frag[..20]);
    frag[10..12].copy_from_slice(&h.to_be_bytes());
    let before = frag[36..38].to_vec();
    rewrite_destination(&mut frag, to).unwrap();
    assert_eq!(&frag[36..38], &before[..]);
    // Truncated input is an error.
    assert!(rewrite_destination(&mut inner.clone()[..30], to).is_err());
}

#[test]
fn rewrite_rule_returns_a_modified_packet() {
    let pkt = tv1();
    let to = Ipv4Addr::new(192, 0, 2, 80);
    let policy = ReturnPolicy {
        rewrite_destinations: vec![("10.254.108.0/24".parse().unwrap(), to)],
        ..ReturnPolicy::default()
    };
    match process(&policy, &pkt, 0, 3).unwrap() {
        Verdict::Return { reason, packet } => {
            assert_eq!(reason, RefuseReason::Rewritten);
            assert_eq!(reason.as_str(), "rewritten");
            let back = parse_redirected(&packet).unwrap();
            assert_eq!(back.inner_dst, to);
            assert_eq!(back.inner_src, Ipv4Addr::new(10, 254, 127, 195));
            assert_eq!(internet_checksum(&back.inner[..20]), 0);
            assert_eq!(l4_checksum(back.inner), 0);
            assert_eq!(internet_checksum(&packet[..20]), 0);
        }
        Verdict::Accept => panic!("should be returned rewritten"),
    }
    // Refusal rules win over rewriting; no match means accept.
    let both = ReturnPolicy {
        refuse_destinations: vec!["10.254.108.228/32".parse().unwrap()],
        ..policy.clone()
    };
    assert!(matches!(
        process(&both, &pkt, 0, 3).unwrap(),
        Verdict::Return {
            reason: RefuseReason::Destination,
            ..
        }
    ));
    let miss = ReturnPolicy {
        rewrite_destinations: vec![("10.254.109.0/24".parse().unwrap(), to)],
        ..ReturnPolicy::default()
    };
    assert_eq!(process(&miss, &pkt, 0, 3).unwrap(), Verdict::Accept);
}
