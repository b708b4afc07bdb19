//! Capture files (`wccpd::pcap`): classic pcap and pcapng reading, frame dissection, and the
//! test support's frame and pcap writers (`tests/common/frames.rs`) they are checked against.

mod common;

use std::net::SocketAddrV4;
use std::time::Duration;

use common::frames::{ethernet_ipv4_udp, write_udp_pcap};
use wccpd::pcap::{
    extract, read_capture, Extracted, Format, PcapError, LINKTYPE_ETHERNET, LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
};

fn sa(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

#[test]
fn write_then_read_round_trip() {
    let payload = [1u8, 2, 3, 4, 5];
    let out = write_udp_pcap(
        Vec::new(),
        &[
            (sa("10.0.0.1:2048"), sa("10.0.0.2:2048"), &payload[..]),
            (sa("10.0.0.2:2048"), sa("10.0.0.1:2048"), &payload[..3]),
        ],
    )
    .unwrap();
    let cap = read_capture(&out).unwrap();
    assert_eq!(cap.format, Format::PcapMicro);
    assert_eq!(cap.frames.len(), 2);
    assert_eq!(cap.frames[1].number, 2);
    assert_eq!(cap.frames[1].timestamp, Duration::from_millis(1001));
    match extract(cap.frames[0].link_type, &cap.frames[0].data).unwrap() {
        Some(Extracted::Wccp {
            src,
            dst,
            payload: p,
        }) => {
            assert_eq!(src, sa("10.0.0.1:2048"));
            assert_eq!(dst, sa("10.0.0.2:2048"));
            assert_eq!(p, &payload);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn ipv4_checksum_is_valid() {
    let f = ethernet_ipv4_udp(sa("10.200.0.1:2048"), sa("10.200.0.2:2048"), &[0; 10]).unwrap();
    // Summing a header including its checksum gives 0xffff, i.e. checksum() == 0.
    assert_eq!(wire::checksum::checksum(&f[14..34]), 0);
    // Known example header (Wikipedia, RFC 1071 style): checksum 0xb861.
    let h = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(wire::checksum::checksum(&h), 0xb861);
}

#[test]
fn big_endian_nanosecond_classic() {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_3c4du32.to_be_bytes());
    f.extend_from_slice(&2u16.to_be_bytes());
    f.extend_from_slice(&4u16.to_be_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_be_bytes());
    f.extend_from_slice(&LINKTYPE_IPV4.to_be_bytes());
    let pkt = ethernet_ipv4_udp(sa("1.2.3.4:2048"), sa("5.6.7.8:2048"), &[9, 9]).unwrap();
    let ip = &pkt[14..];
    f.extend_from_slice(&7u32.to_be_bytes());
    f.extend_from_slice(&123_456_789u32.to_be_bytes());
    f.extend_from_slice(&u32::try_from(ip.len()).unwrap().to_be_bytes());
    f.extend_from_slice(&u32::try_from(ip.len()).unwrap().to_be_bytes());
    f.extend_from_slice(ip);
    let cap = read_capture(&f).unwrap();
    assert_eq!(cap.format, Format::PcapNano);
    assert_eq!(cap.frames[0].timestamp, Duration::new(7, 123_456_789));
    assert!(matches!(
        extract(cap.frames[0].link_type, &cap.frames[0].data),
        Ok(Some(Extracted::Wccp {
            payload: [9, 9],
            ..
        }))
    ));
}

#[test]
fn vlan_and_sll() {
    let f = ethernet_ipv4_udp(sa("1.2.3.4:2048"), sa("5.6.7.8:999"), &[7]).unwrap();
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x88, 0xa8, 0x00, 0x06]);
    tagged.extend_from_slice(&f[12..]);
    assert!(matches!(
        extract(LINKTYPE_ETHERNET, &tagged),
        Ok(Some(Extracted::Wccp { payload: [7], .. }))
    ));
    let mut sll = vec![0u8; 14];
    sll.extend_from_slice(&[0x08, 0x00]);
    sll.extend_from_slice(&f[14..]);
    assert!(matches!(
        extract(LINKTYPE_LINUX_SLL, &sll),
        Ok(Some(Extracted::Wccp { payload: [7], .. }))
    ));
}

#[test]
fn ethernet_padding_is_trimmed_and_other_ports_skipped() {
    let mut f = ethernet_ipv4_udp(sa("1.2.3.4:2048"), sa("5.6.7.8:2048"), &[1]).unwrap();
    f.resize(60, 0xee);
    assert!(matches!(
        extract(LINKTYPE_ETHERNET, &f),
        Ok(Some(Extracted::Wccp { payload: [1], .. }))
    ));
    let other = ethernet_ipv4_udp(sa("1.2.3.4:53"), sa("5.6.7.8:53"), &[1]).unwrap();
    assert_eq!(extract(LINKTYPE_ETHERNET, &other), Ok(None));
}

#[test]
fn malformed_files_name_record_and_offset() {
    let good = write_udp_pcap(
        Vec::new(),
        &[(sa("10.0.0.1:2048"), sa("10.0.0.2:2048"), &[0u8; 4][..])],
    )
    .unwrap();
    // Every truncation is an error or a shorter capture, never a panic.
    for n in 0..good.len() {
        let _ = read_capture(&good[..n]);
    }
    let err = read_capture(&good[..good.len() - 1]).unwrap_err();
    assert_eq!(
        err,
        PcapError::Truncated {
            what: "record data",
            record: 0,
            offset: 40,
            need: good.len() - 40,
            have: good.len() - 41,
        }
    );
    assert!(err.to_string().contains("record 0 at offset 40"));
    assert!(matches!(
        read_capture(b"GIF89a..."),
        Err(PcapError::BadMagic { .. })
    ));
}

#[test]
fn truncated_ipv4_and_udp_are_errors() {
    let f = ethernet_ipv4_udp(sa("1.2.3.4:2048"), sa("5.6.7.8:2048"), &[1, 2, 3]).unwrap();
    let e = extract(LINKTYPE_ETHERNET, &f[..f.len() - 1]).unwrap_err();
    assert_eq!(e.field, "ipv4 total length");
    assert_eq!(e.offset, 16);
    let e = extract(LINKTYPE_ETHERNET, &f[..20]).unwrap_err();
    assert_eq!(e.field, "ipv4 header");
    for n in 0..f.len() {
        let _ = extract(LINKTYPE_ETHERNET, &f[..n]);
    }
}
