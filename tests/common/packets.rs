//! Raw packets for the namespace tests that play the router's side of GRE redirection: IPv4
//! headers, GRE-redirected packets as a router sends them, a raw IP-protocol-47 socket, and the
//! hex form in which a helper process passes packets to and from the test.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A 20-octet IPv4 header (DF set, no options) with a correct checksum.
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    ident: u16,
    total: usize,
) -> Vec<u8> {
    let total = u16::try_from(total).expect("IPv4 packet longer than 65535 octets");
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&ident.to_be_bytes());
    h.extend_from_slice(&[0x40, 0, ttl, protocol, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = wire::checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// A GRE packet as a router sends it to a cache: outer IPv4 `router -> cache` (TTL 255),
/// GRE `0000 <proto>`, the 4-octet WCCP redirect header if any, then `payload`.
pub fn gre(
    router: Ipv4Addr,
    cache: Ipv4Addr,
    proto: u16,
    redirect: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let len = 20 + 4 + redirect.map_or(0, |_| 4) + payload.len();
    let mut p = ipv4_header(router, cache, wire::ipv4::PROTOCOL_GRE, 255, 7, len);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&proto.to_be_bytes());
    if let Some(r) = redirect {
        p.extend_from_slice(&r);
    }
    p.extend_from_slice(payload);
    p
}

/// A raw IP-protocol-47 socket with `IP_HDRINCL`, bound to `local`, reads timing out after
/// 100 ms: what a router uses to send GRE and receive the cache's returns.
pub fn gre_socket(local: Ipv4Addr) -> Socket {
    let sock = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(wire::ipv4::PROTOCOL_GRE))),
    )
    .expect("raw GRE socket");
    sock.set_header_included_v4(true).expect("IP_HDRINCL");
    sock.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))
        .expect("bind the GRE socket");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    sock
}

/// Sends each packet (a whole IPv4 packet) to `to`, `gap` apart, then prints `SENT <n>`.
pub fn send_all(sock: &Socket, to: Ipv4Addr, packets: &[Vec<u8>], gap: Duration) {
    let to = SockAddr::from(SocketAddrV4::new(to, 0));
    for p in packets {
        let n = sock.send_to(p, &to).expect("send");
        assert_eq!(n, p.len(), "whole packet sent");
        std::thread::sleep(gap);
    }
    println!("SENT {}", packets.len());
}

/// Whether a read error only means that the read timed out.
pub fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The octets of lower- or upper-case hex text (an even number of digits).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The packets a helper printed as `<tag> <hex>` lines.
pub fn tagged_packets(lines: &str, tag: &str) -> Vec<Vec<u8>> {
    lines
        .lines()
        .filter_map(|l| l.strip_prefix(tag)?.strip_prefix(' '))
        .map(|h| unhex(h.trim()))
        .collect()
}
