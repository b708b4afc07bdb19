//! Picking WCCP traffic out of a captured frame: the link layer, then IPv4, UDP and GRE read
//! with `wire`'s checked views (the ones the data plane and the cache agent use), so a capture
//! is dissected the way the daemon reads its packets.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use wire::{FieldId, Layer};

use super::{
    LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_LINUX_SLL, LINKTYPE_RAW, LINKTYPE_RAW_BSD, WCCP_PORT,
};

/// EtherTypes of a VLAN tag to skip: 802.1Q, 802.1ad and the old QinQ value.
const VLAN_TAGS: [u16; 3] = [wire::ethernet::ETHERTYPE_VLAN, 0x88a8, 0x9100];
/// Linux cooked capture v1 header length (the protocol is its last two octets).
const SLL_HEADER_LEN: usize = 16;

/// WCCP-relevant content of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extracted<'a> {
    /// A UDP datagram to or from port 2048 (a WCCP control message).
    Wccp {
        /// Source address and port.
        src: SocketAddrV4,
        /// Destination address and port.
        dst: SocketAddrV4,
        /// UDP payload (trimmed to the UDP length).
        payload: &'a [u8],
    },
    /// An IPv4 GRE packet (protocol 47); `payload` starts at the GRE header.
    Gre {
        /// Outer source address.
        src: Ipv4Addr,
        /// Outer destination address.
        dst: Ipv4Addr,
        /// GRE header and everything after it.
        payload: &'a [u8],
    },
}

/// A frame whose headers are malformed (truncated or inconsistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    /// Layer and field, e.g. `"ipv4 total length"`.
    pub field: &'static str,
    /// Offset in the frame.
    pub offset: usize,
    /// Human detail.
    pub detail: &'static str,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at frame offset {}: {}",
            self.field, self.offset, self.detail
        )
    }
}

impl std::error::Error for FrameError {}

const fn frame_error(field: &'static str, offset: usize, detail: &'static str) -> FrameError {
    FrameError {
        field,
        offset,
        detail,
    }
}

/// Extracts the WCCP control message or GRE payload from a frame.
///
/// Returns `Ok(None)` for frames that are neither UDP to/from port 2048 nor GRE (and for
/// non-first IPv4 fragments).
///
/// # Errors
/// [`FrameError`] if the frame's link, IPv4 or UDP header is malformed or it is the first
/// fragment of a fragmented WCCP datagram (not reassembled).
pub fn extract(link_type: u32, data: &[u8]) -> Result<Option<Extracted<'_>>, FrameError> {
    let Some(ip_off) = ipv4_offset(link_type, data)? else {
        return Ok(None);
    };
    let ip = wire::Ipv4Packet::new_checked(&data[ip_off..]).map_err(|e| ipv4_error(e, ip_off))?;
    let l4_off = ip_off + ip.header_len();
    let (fragment, first) = (ip.is_fragment(), !ip.is_later_fragment());
    let (src, dst, protocol) = (ip.src(), ip.dst(), ip.protocol());
    // The payload as the view checked it, borrowed from the frame rather than from the view.
    let payload = &data[l4_off..ip_off + usize::from(ip.total_len())];
    match protocol {
        wire::ipv4::PROTOCOL_UDP if fragment => {
            // Only a first fragment shows the ports; a WCCP one is an error, not a silent skip.
            match wire::l4::ports(payload, Layer::Udp) {
                Ok((sport, dport)) if first && (sport == WCCP_PORT || dport == WCCP_PORT) => {
                    Err(frame_error(
                        "ipv4 flags",
                        ip_off + 6,
                        "fragmented WCCP datagram (reassembly not supported)",
                    ))
                }
                _ => Ok(None),
            }
        }
        wire::ipv4::PROTOCOL_UDP => {
            let (sport, dport) = match wire::l4::ports(payload, Layer::Udp) {
                Ok(ports) if payload.len() >= wire::l4::UDP_HEADER_LEN => ports,
                _ => {
                    return Err(frame_error(
                        "udp header",
                        l4_off,
                        "truncated (need 8 octets)",
                    ))
                }
            };
            if sport != WCCP_PORT && dport != WCCP_PORT {
                return Ok(None);
            }
            let udp = wire::l4::UdpPacket::new_checked(payload).map_err(|_| {
                frame_error(
                    "udp length",
                    l4_off + 4,
                    "inconsistent with the IPv4 payload length",
                )
            })?;
            Ok(Some(Extracted::Wccp {
                src: SocketAddrV4::new(src, sport),
                dst: SocketAddrV4::new(dst, dport),
                payload: &payload[wire::l4::UDP_HEADER_LEN..usize::from(udp.len())],
            }))
        }
        wire::ipv4::PROTOCOL_GRE if !fragment => Ok(Some(Extracted::Gre { src, dst, payload })),
        _ => Ok(None),
    }
}

/// Finds the IPv4 packet in a frame of the given link type: its offset, or `None` for frames
/// that do not carry IPv4 (ARP, IPv6, unknown link types, ...).
///
/// # Errors
/// [`FrameError`] if the link-layer header is truncated.
fn ipv4_offset(link_type: u32, data: &[u8]) -> Result<Option<usize>, FrameError> {
    match link_type {
        LINKTYPE_ETHERNET => {
            let eth = wire::ethernet::Packet::new_checked(data).map_err(|e| match e {
                wire::Error::Truncated { need, .. }
                    if need as usize > wire::ethernet::HEADER_LEN =>
                {
                    frame_error("vlan tag", wire::ethernet::HEADER_LEN + 2, "truncated")
                }
                _ => frame_error("ethernet header", 0, "truncated"),
            })?;
            // The view reads one 802.1Q tag; stacked (802.1ad, QinQ) tags are skipped here.
            let mut off = eth.header_len() - 2;
            let mut ethertype = eth.ethertype();
            while VLAN_TAGS.contains(&ethertype) {
                off += wire::ethernet::VLAN_TAG_LEN;
                let Some(t) = data.get(off..off + 2) else {
                    return Err(frame_error("vlan tag", off, "truncated"));
                };
                ethertype = u16::from_be_bytes([t[0], t[1]]);
            }
            Ok((ethertype == wire::ethernet::ETHERTYPE_IPV4).then_some(off + 2))
        }
        LINKTYPE_LINUX_SLL => {
            let Some(p) = data.get(SLL_HEADER_LEN - 2..SLL_HEADER_LEN) else {
                return Err(frame_error("linux sll header", 0, "truncated"));
            };
            let proto = u16::from_be_bytes([p[0], p[1]]);
            Ok((proto == wire::ethernet::ETHERTYPE_IPV4).then_some(SLL_HEADER_LEN))
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_RAW_BSD => {
            Ok((data.first().map(|b| b >> 4) == Some(4)).then_some(0))
        }
        _ => Ok(None),
    }
}

/// Names the IPv4 field an error of `wire`'s IPv4 view is about, at its offset in the frame.
fn ipv4_error(e: wire::Error, ip_off: usize) -> FrameError {
    let (field, at, detail) = match e {
        wire::Error::Truncated {
            field: FieldId::Header,
            need,
            ..
        } if need as usize <= wire::ipv4::HEADER_LEN => {
            ("ipv4 header", 0, "truncated (need 20 octets)")
        }
        wire::Error::Truncated {
            field: FieldId::Header,
            ..
        } => ("ipv4 options", wire::ipv4::HEADER_LEN, "truncated"),
        wire::Error::Truncated { .. } => ("ipv4 total length", 2, "exceeds captured data"),
        wire::Error::Invalid {
            field: FieldId::Version,
            ..
        } => ("ipv4 version", 0, "not 4"),
        wire::Error::Invalid {
            field: FieldId::HeaderLength,
            ..
        } => ("ipv4 header length", 0, "less than 20"),
        wire::Error::Invalid {
            field: FieldId::TotalLength,
            ..
        } => ("ipv4 total length", 2, "smaller than header length"),
        _ => ("ipv4 header", 0, "malformed"),
    };
    frame_error(field, ip_off + at, detail)
}
