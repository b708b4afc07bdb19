//! Packet return for the cache agent (docs/protocol.md §4.4; the patent's claims 34–36): a cache that
//! receives a GRE-redirected packet it does not want to serve hands it back to the router, GRE
//! encapsulated with protocol 0x883E, so the router forwards it normally instead of redirecting it
//! again.
//!
//! Optionally the returned packet's destination is rewritten first (claims 37-38), with the
//! inner IPv4 and TCP/UDP checksums fixed up.
//!
//! Pure: bytes in, a decision and bytes out. The caller (a cache's data path) supplies the current
//! load figure.
//!
//! ```text
//!  received:  outer IPv4 (router -> cache, proto 47) | GRE 0000 883E | redirect hdr | inner IPv4 ...
//!  returned:  outer IPv4 (cache -> router, proto 47) | GRE 0000 883E | redirect hdr | inner IPv4 ...
//! ```
//!
//! The redirect header is copied from the received packet; a WCCPv1-style packet without one
//! (first nibble after GRE = 4) gets a header with only U (0x04) set (R1 §3.13.1, "null redirect
//! header").
//!
//! Every header is read and written with `wire`'s checked views (IPv4, GRE, redirect header,
//! TCP, UDP) and its checksum; this module adds the cache's policy and the error context.

use core::fmt;
use core::net::Ipv4Addr;

use wire::checksum;
use wire::gre::{self, WCCP_ENCAP_LEN};
use wire::ipv4::{self, Ipv4Repr};
use wire::l4::{TcpPacket, UdpPacket};
use wire::{GrePacket, Ipv4Packet, RedirectFlags, RedirectHeader, WccpPayload};

/// TTL of the outer header we build (Cisco uses 255 for its GRE redirects, docs/protocol.md §4.1).
pub const OUTER_TTL: u8 = 255;

/// Why a received packet could not be interpreted as a WCCP GRE redirect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReturnError {
    /// The packet ends before `need` octets of `layer` starting at `offset`.
    Truncated {
        /// Which header.
        layer: &'static str,
        /// Octets needed from `offset`.
        need: usize,
        /// Octets available from `offset`.
        have: usize,
        /// Offset of the header in the packet.
        offset: usize,
    },
    /// A field has a value this code does not accept.
    Invalid {
        /// Which header.
        layer: &'static str,
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u32,
        /// Offset of the header in the packet.
        offset: usize,
    },
}

impl ReturnError {
    /// The error of a `wire` view over the header `layer` that starts at `offset` of the packet.
    fn wire(layer: &'static str, offset: usize, e: wire::Error) -> ReturnError {
        match e {
            wire::Error::Truncated { need, have, .. } => ReturnError::Truncated {
                layer,
                need: need as usize,
                have: usize::from(have),
                offset,
            },
            wire::Error::Invalid { field, value, .. } => ReturnError::Invalid {
                layer,
                field: field.as_str(),
                value,
                offset,
            },
            // Header views report nothing else.
            _ => ReturnError::Invalid {
                layer,
                field: "header",
                value: 0,
                offset,
            },
        }
    }
}

impl fmt::Display for ReturnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReturnError::Truncated {
                layer,
                need,
                have,
                offset,
            } => write!(
                f,
                "{layer} at offset {offset}: need {need} octets, have {have}"
            ),
            ReturnError::Invalid {
                layer,
                field,
                value,
                offset,
            } => {
                write!(f, "{layer} at offset {offset}: invalid {field} {value:#x}")
            }
        }
    }
}

impl std::error::Error for ReturnError {}

pub use assign::policy::{Decision, RefuseReason, ReturnPolicy};

/// A parsed GRE-redirected packet as received by the cache (borrowing the buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirected<'a> {
    /// Outer source: the router that redirected the packet (where it goes back to).
    pub router: Ipv4Addr,
    /// Outer destination: this cache.
    pub cache: Ipv4Addr,
    /// The 4-octet WCCP redirect header, `None` for WCCPv1-style GRE without one.
    pub redirect_header: Option<[u8; 4]>,
    /// The original packet (starts with its IPv4 header).
    pub inner: &'a [u8],
    /// Inner source address.
    pub inner_src: Ipv4Addr,
    /// Inner destination address.
    pub inner_dst: Ipv4Addr,
}

/// Which GRE headers [`parse_redirected_with`] takes apart. Version and routing are always
/// refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreRule {
    /// Refuse any flag (checksum, key, sequence) as Linux's `gre_parse_header` does for WCCP:
    /// what is decapsulated is then exactly what a kernel GRE interface would deliver. Without
    /// it the optional fields are skipped.
    pub no_flags: bool,
    /// Also take plain GRE protocol 0x0800 (no flags, no redirect header), which some routers
    /// send.
    pub plain_ipv4: bool,
}

impl GreRule {
    /// The Linux rule: WCCP GRE (0x883E) with no flag set.
    pub const LINUX: GreRule = GreRule {
        no_flags: true,
        plain_ipv4: false,
    };
}

/// Parses a GRE-redirected packet with `wire`'s views: outer IPv4 (protocol 47), GRE with
/// protocol 0x883E (optional checksum/key/sequence fields skipped, routing and version refused),
/// an optional redirect header (absent when the first nibble after GRE is 4,
/// docs/protocol.md §4.2, [`GrePacket::wccp_payload`]), then the inner IPv4 packet. Octets after
/// the outer total length (Ethernet padding) and after the inner total length are ignored.
///
/// # Errors
/// [`ReturnError`] naming the header, field and offset of the first problem.
pub fn parse_redirected(pkt: &[u8]) -> Result<Redirected<'_>, ReturnError> {
    parse_redirected_with(pkt, GreRule::default())
}

/// As [`parse_redirected`], with the GRE headers `rule` accepts.
///
/// # Errors
/// [`ReturnError`] naming the header, field and offset of the first problem.
pub fn parse_redirected_with(pkt: &[u8], rule: GreRule) -> Result<Redirected<'_>, ReturnError> {
    const OUTER: &str = "outer IPv4";
    const GRE: &str = "GRE";
    let outer = Ipv4Packet::new_checked(pkt).map_err(|e| ReturnError::wire(OUTER, 0, e))?;
    if outer.protocol() != ipv4::PROTOCOL_GRE {
        return Err(ReturnError::Invalid {
            layer: OUTER,
            field: "protocol",
            value: outer.protocol().into(),
            offset: 0,
        });
    }
    // Everything below stays within the outer datagram.
    let at = outer.header_len();
    // check_len: header_len <= total_len <= pkt.len().
    let total = usize::from(outer.total_len());
    let g = GrePacket::new_checked(&pkt[at..total]).map_err(|e| ReturnError::wire(GRE, at, e))?;
    let flags = g.flags_version();
    let invalid = |field, value: u16| ReturnError::Invalid {
        layer: GRE,
        field,
        value: value.into(),
        offset: at,
    };
    if flags & gre::VERSION_MASK != 0 {
        return Err(invalid("version", flags & gre::VERSION_MASK));
    }
    if flags & gre::FLAG_ROUTING != 0 {
        return Err(invalid("routing flag", flags));
    }
    let plain = rule.plain_ipv4 && g.protocol() == gre::PROTOCOL_IPV4;
    if !plain && g.protocol() != gre::PROTOCOL_WCCP {
        return Err(invalid("protocol type", g.protocol()));
    }
    if flags != 0 && (rule.no_flags || plain) {
        return Err(invalid("flags", flags));
    }
    let (redirect_header, inner) = if plain {
        (None, &pkt[at + g.header_len()..total])
    } else {
        match g
            .wccp_payload()
            .map_err(|e| ReturnError::wire("WCCP redirect header", at + g.header_len(), e))?
        {
            WccpPayload::Ipv4(inner) => (None, inner),
            WccpPayload::Redirect { header, inner } => (Some(header.to_bytes()), inner),
        }
    };
    // The inner packet runs to the end of the outer datagram.
    let offset = total - inner.len();
    let ip =
        Ipv4Packet::new_checked(inner).map_err(|e| ReturnError::wire("inner IPv4", offset, e))?;
    Ok(Redirected {
        router: outer.src(),
        cache: outer.dst(),
        redirect_header,
        inner: &inner[..usize::from(ip.total_len())],
        inner_src: ip.src(),
        inner_dst: ip.dst(),
    })
}

/// Decides whether to serve or return `pkt` at the given load figure
/// ([`ReturnPolicy::decide_addresses`] on its inner addresses).
pub fn decide(policy: &ReturnPolicy, pkt: &Redirected<'_>, load: u32) -> Decision {
    policy.decide_addresses(pkt.inner_src, pkt.inner_dst, load)
}

/// Rewrites the destination address of an IPv4 packet in place (the original packet inside a
/// redirect, starting with its IPv4 header) and fixes the header checksum and, for an
/// unfragmented or first-fragment TCP or UDP packet, the transport checksum (whose pseudo-header
/// covers the destination; RFC 1624 update). A UDP checksum of 0 (none) stays 0.
///
/// # Errors
/// [`ReturnError`] if the IPv4 header, or the TCP/UDP header whose checksum must change, is
/// truncated or invalid.
pub fn rewrite_destination(inner: &mut [u8], to: Ipv4Addr) -> Result<(), ReturnError> {
    let mut ip = Ipv4Packet::new_checked(&mut inner[..])
        .map_err(|e| ReturnError::wire("inner IPv4", 0, e))?;
    let (old, new) = (ip.dst().to_bits(), to.to_bits());
    ip.set_dst(to);
    ip.fill_checksum();
    if ip.is_later_fragment() {
        return Ok(());
    }
    let at = ip.header_len();
    match ip.protocol() {
        ipv4::PROTOCOL_TCP => {
            let mut tcp = TcpPacket::new_checked(ip.payload_mut())
                .map_err(|e| ReturnError::wire("TCP", at, e))?;
            tcp.set_checksum(checksum::update32(tcp.checksum(), old, new));
        }
        ipv4::PROTOCOL_UDP => {
            let mut udp = UdpPacket::new_checked(ip.payload_mut())
                .map_err(|e| ReturnError::wire("UDP", at, e))?;
            if udp.checksum() != 0 {
                // RFC 768: a computed zero is sent as all ones.
                let c = checksum::update32(udp.checksum(), old, new);
                udp.set_checksum(if c == 0 { 0xFFFF } else { c });
            }
        }
        _ => {}
    }
    Ok(())
}

/// Length of the return packet [`build_return`] produces for `pkt`.
pub fn return_len(pkt: &Redirected<'_>) -> usize {
    WCCP_ENCAP_LEN + pkt.inner.len()
}

/// Builds the GRE return packet for `pkt`: outer IPv4 from the cache (the address the packet was
/// redirected to) to the router, TTL 255, DF clear, identification `ip_id`; GRE `0000 883E`; the
/// redirect header copied (or only U set if the packet had none, a "null redirect header"); the
/// inner packet unchanged ([`wire::write_wccp_encap`]).
///
/// # Errors
/// `Invalid { field: "total length" }` if the result would exceed 65535 octets.
pub fn build_return(pkt: &Redirected<'_>, ip_id: u16) -> Result<Vec<u8>, ReturnError> {
    const OUTER: &str = "outer IPv4";
    let len = return_len(pkt);
    let total = u16::try_from(len).map_err(|_| ReturnError::Invalid {
        layer: OUTER,
        field: "total length",
        value: len as u32,
        offset: 0,
    })?;
    let outer = Ipv4Repr {
        src: pkt.cache,
        dst: pkt.router,
        protocol: ipv4::PROTOCOL_GRE,
        ttl: OUTER_TTL,
        payload_len: total - ipv4::HEADER_LEN as u16,
    };
    let redirect = pkt.redirect_header.map_or(
        RedirectHeader {
            flags: RedirectFlags::UNAVAILABLE,
            ..RedirectHeader::default()
        },
        RedirectHeader::from_bytes,
    );
    let mut out = vec![0u8; len];
    wire::write_wccp_encap(&mut out, &outer, &redirect)
        .map_err(|e| ReturnError::wire(OUTER, 0, e))?;
    let mut ip = Ipv4Packet::new_unchecked(&mut out[..]);
    ip.set_ident(ip_id);
    ip.fill_checksum();
    out[WCCP_ENCAP_LEN..].copy_from_slice(pkt.inner);
    Ok(out)
}

/// Outcome of [`process`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve the packet locally.
    Accept,
    /// Send these bytes (an IPv4 datagram) to the router.
    Return {
        /// Why.
        reason: RefuseReason,
        /// The whole return packet, starting with the outer IPv4 header.
        packet: Vec<u8>,
    },
}

/// Parses, decides and (if refused) builds the return packet in one call.
///
/// # Errors
/// As [`parse_redirected`] and [`build_return`].
pub fn process(
    policy: &ReturnPolicy,
    pkt: &[u8],
    load: u32,
    ip_id: u16,
) -> Result<Verdict, ReturnError> {
    let r = parse_redirected(pkt)?;
    match decide(policy, &r, load) {
        Decision::Accept => Ok(Verdict::Accept),
        Decision::Refuse(reason) => {
            let mut packet = build_return(&r, ip_id)?;
            if reason == RefuseReason::Rewritten {
                if let Some(to) = policy.rewrite_for(r.inner_dst) {
                    let at = packet.len() - r.inner.len();
                    rewrite_destination(&mut packet[at..], to)?;
                }
            }
            Ok(Verdict::Return { reason, packet })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::Ipv4Net;

    /// The prefix semantics the policy relies on: `contains` ignores host bits of the prefix.
    #[test]
    fn prefix_parse_and_contains() {
        let p = "10.1.2.3/8".parse::<Ipv4Net>().unwrap().trunc();
        assert_eq!(p.to_string(), "10.0.0.0/8");
        assert!(p.contains(&Ipv4Addr::new(10, 200, 0, 1)));
        assert!(!p.contains(&Ipv4Addr::new(11, 0, 0, 1)));
        let any: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(&Ipv4Addr::new(1, 2, 3, 4)));
        let host = Ipv4Net::from(Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(host.prefix_len(), 32);
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
    }
}
