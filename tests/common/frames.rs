//! Frames and captures for tests: Ethernet II + IPv4 (+ UDP) frames with correct checksums,
//! built with `wire`'s header writers, and whole classic pcaps of UDP datagrams written with
//! [`wccpd::pcap::PcapWriter`], so tests can feed our own messages to `wccpd decode` and
//! `tshark`.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use wccpd::pcap::PcapWriter;

/// A locally administered MAC derived from an IPv4 address: `02:00:a:b:c:d`.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// An Ethernet II + IPv4 frame (TTL 64, DF clear, ident 0, correct header checksum) around
/// `payload`; MACs from [`mac_for`].
///
/// # Errors
/// `InvalidInput` if the packet would exceed 65535 octets.
pub fn ethernet_ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    let payload_len = u16::try_from(payload.len())
        .ok()
        .filter(|l| usize::from(*l) + wire::ipv4::HEADER_LEN <= 65535)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "IPv4 packet too long"))?;
    let eth = wire::ethernet::HEADER_LEN;
    let mut f = vec![0u8; eth + wire::ipv4::HEADER_LEN + payload.len()];
    wire::ethernet::write_header(
        &mut f,
        mac_for(dst),
        mac_for(src),
        wire::ethernet::ETHERTYPE_IPV4,
    );
    let repr = wire::Ipv4Repr {
        src,
        dst,
        protocol,
        ttl: 64,
        payload_len,
    };
    repr.emit(&mut wire::Ipv4Packet::new_unchecked(&mut f[eth..]));
    f[eth + wire::ipv4::HEADER_LEN..].copy_from_slice(payload);
    Ok(f)
}

/// An Ethernet II + IPv4 + UDP frame with correct IPv4 and UDP checksums.
///
/// # Errors
/// `InvalidInput` if the datagram would exceed the IPv4 maximum.
pub fn ethernet_ipv4_udp(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    let mut udp = vec![0u8; wire::l4::UDP_HEADER_LEN + payload.len()];
    if udp.len() + wire::ipv4::HEADER_LEN > 65535 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "UDP datagram too long",
        ));
    }
    udp[wire::l4::UDP_HEADER_LEN..].copy_from_slice(payload);
    wire::l4::write_udp(
        &mut udp,
        src.ip().octets(),
        dst.ip().octets(),
        src.port(),
        dst.port(),
        payload.len(),
    );
    ethernet_ipv4(*src.ip(), *dst.ip(), wire::ipv4::PROTOCOL_UDP, &udp)
}

/// Writes a whole pcap of Ethernet/IPv4/UDP frames, one per `(src, dst, payload)`, timestamps
/// 1 ms apart starting at 1 s.
///
/// # Errors
/// I/O errors, or `InvalidInput` if a payload does not fit in one IPv4 packet.
pub fn write_udp_pcap<W: Write>(
    out: W,
    datagrams: &[(SocketAddrV4, SocketAddrV4, &[u8])],
) -> io::Result<W> {
    let mut w = PcapWriter::new(out)?;
    for (i, (src, dst, payload)) in datagrams.iter().enumerate() {
        let frame = ethernet_ipv4_udp(*src, *dst, payload)?;
        let ts = Duration::from_secs(1) + Duration::from_millis(u64::try_from(i).unwrap_or(0));
        w.write_frame(ts, &frame)?;
    }
    w.finish()
}
