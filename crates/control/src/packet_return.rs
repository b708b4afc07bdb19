//! Packet return for the cache agent (PROTOCOL.md §4.4; the patent's claims 34–36): a cache that
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

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

/// GRE protocol type of WCCP redirection and return (PROTOCOL.md §4.1).
pub const GRE_PROTO_WCCP: u16 = 0x883E;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// Redirect-header flag U: header present but contents unavailable (PROTOCOL.md §4.2).
pub const REDIRECT_FLAG_U: u8 = 0x04;
/// TTL of the outer header we build (Cisco uses 255 for its GRE redirects, PROTOCOL.md §4.1).
pub const OUTER_TTL: u8 = 255;

const IPV4_MIN_HEADER: usize = 20;
const GRE_BASE: usize = 4;
const REDIRECT_HEADER_LEN: usize = 4;

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

/// An IPv4 prefix `addr/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Prefix {
    /// A prefix; host bits of `addr` are cleared. `None` if `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Prefix> {
        (len <= 32).then(|| Prefix {
            addr: Ipv4Addr::from_bits(addr.to_bits() & Self::mask(len)),
            len,
        })
    }

    const fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        }
    }

    /// Network address.
    pub const fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Prefix length.
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `a` lies inside the prefix.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        a.to_bits() & Self::mask(self.len) == self.addr.to_bits()
    }
}

/// Error parsing a [`Prefix`] from text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixParseError(pub String);

impl fmt::Display for PrefixParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid IPv4 prefix {:?} (want a.b.c.d/len, len 0-32)",
            self.0
        )
    }
}

impl std::error::Error for PrefixParseError {}

impl FromStr for Prefix {
    type Err = PrefixParseError;
    /// `a.b.c.d/len`, or a bare address meaning `/32`.
    fn from_str(s: &str) -> Result<Prefix, PrefixParseError> {
        let err = || PrefixParseError(s.to_owned());
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| err())?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| err())?;
        Prefix::new(addr, l).ok_or_else(err)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// When the cache refuses redirected packets (and returns them to the router).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReturnPolicy {
    /// Return packets whose (inner) source address lies in one of these prefixes, e.g. clients
    /// that need IP-based authentication at the origin (the patent's example).
    pub refuse_sources: Vec<Prefix>,
    /// Return packets whose (inner) destination lies in one of these prefixes.
    pub refuse_destinations: Vec<Prefix>,
    /// Return every packet while the load figure is strictly above this value (`None`: never).
    pub max_load: Option<u32>,
    /// Return packets to these destinations with the destination rewritten to the given address
    /// (the patent's claims 37-38: "a prohibited destination address may be modified"). The inner
    /// IPv4 header checksum and the TCP/UDP checksum are fixed up.
    pub rewrite_destinations: Vec<(Prefix, Ipv4Addr)>,
}

/// Why a packet is handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// Inner source address matched `refuse_sources`.
    Source,
    /// Inner destination matched `refuse_destinations`.
    Destination,
    /// Load above `max_load`.
    Overload,
    /// Inner destination matched `rewrite_destinations`: returned with a new destination.
    Rewritten,
}

impl RefuseReason {
    /// Stable label for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefuseReason::Source => "source",
            RefuseReason::Destination => "destination",
            RefuseReason::Overload => "overload",
            RefuseReason::Rewritten => "rewritten",
        }
    }
}

/// What to do with a redirected packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Serve it locally.
    Accept,
    /// Hand it back to the router.
    Refuse(RefuseReason),
}

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

fn need(buf: &[u8], offset: usize, n: usize, layer: &'static str) -> Result<(), ReturnError> {
    let have = buf.len().saturating_sub(offset);
    if have < n {
        return Err(ReturnError::Truncated {
            layer,
            need: n,
            have,
            offset,
        });
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Checks an IPv4 header at `offset` and returns its header length.
fn check_ipv4(b: &[u8], offset: usize, layer: &'static str) -> Result<usize, ReturnError> {
    need(b, offset, IPV4_MIN_HEADER, layer)?;
    let version = b[offset] >> 4;
    if version != 4 {
        return Err(ReturnError::Invalid {
            layer,
            field: "version",
            value: version.into(),
            offset,
        });
    }
    let ihl = usize::from(b[offset] & 0x0F) * 4;
    if ihl < IPV4_MIN_HEADER {
        return Err(ReturnError::Invalid {
            layer,
            field: "IHL",
            value: ihl as u32,
            offset,
        });
    }
    need(b, offset, ihl, layer)?;
    let total = usize::from(be16(b, offset + 2));
    if total < ihl {
        return Err(ReturnError::Invalid {
            layer,
            field: "total length",
            value: total as u32,
            offset,
        });
    }
    need(b, offset, total, layer)?;
    Ok(ihl)
}

/// Parses a GRE-redirected packet: outer IPv4 (protocol 47), GRE with protocol 0x883E (optional
/// checksum/key/sequence fields skipped), an optional redirect header (absent when the first
/// nibble after GRE is 4, PROTOCOL.md §4.2), then the inner IPv4 packet. Octets after the outer
/// total length (Ethernet padding) are ignored.
///
/// # Errors
/// [`ReturnError`] naming the header, field and offset of the first problem.
pub fn parse_redirected(pkt: &[u8]) -> Result<Redirected<'_>, ReturnError> {
    const OUTER: &str = "outer IPv4";
    const GRE: &str = "GRE";
    const INNER: &str = "inner IPv4";
    let ihl = check_ipv4(pkt, 0, OUTER)?;
    let proto = pkt[9];
    if proto != IPPROTO_GRE {
        return Err(ReturnError::Invalid {
            layer: OUTER,
            field: "protocol",
            value: proto.into(),
            offset: 0,
        });
    }
    // Everything below stays within the outer datagram.
    let pkt = &pkt[..usize::from(be16(pkt, 2))];
    let gre = ihl;
    need(pkt, gre, GRE_BASE, GRE)?;
    let flags = be16(pkt, gre);
    if flags & 0x0007 != 0 {
        return Err(ReturnError::Invalid {
            layer: GRE,
            field: "version",
            value: (flags & 7).into(),
            offset: gre,
        });
    }
    if flags & 0x4000 != 0 {
        return Err(ReturnError::Invalid {
            layer: GRE,
            field: "routing flag",
            value: flags.into(),
            offset: gre,
        });
    }
    let gre_proto = be16(pkt, gre + 2);
    if gre_proto != GRE_PROTO_WCCP {
        return Err(ReturnError::Invalid {
            layer: GRE,
            field: "protocol type",
            value: gre_proto.into(),
            offset: gre,
        });
    }
    let optional = [0x8000u16, 0x2000, 0x1000]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count()
        * 4;
    let mut at = gre + GRE_BASE + optional;
    need(pkt, gre, GRE_BASE + optional, GRE)?;
    need(pkt, at, 1, "WCCP redirect header")?;
    let redirect_header = if pkt[at] >> 4 == 4 {
        None
    } else {
        need(pkt, at, REDIRECT_HEADER_LEN, "WCCP redirect header")?;
        let h = [pkt[at], pkt[at + 1], pkt[at + 2], pkt[at + 3]];
        at += REDIRECT_HEADER_LEN;
        Some(h)
    };
    check_ipv4(pkt, at, INNER)?;
    let inner_len = usize::from(be16(pkt, at + 2));
    Ok(Redirected {
        router: ipv4_at(pkt, 12),
        cache: ipv4_at(pkt, 16),
        redirect_header,
        inner: &pkt[at..at + inner_len],
        inner_src: ipv4_at(pkt, at + 12),
        inner_dst: ipv4_at(pkt, at + 16),
    })
}

impl ReturnPolicy {
    /// Decides whether to serve or return `pkt` at the given load figure. Source prefixes are
    /// checked first, then destination prefixes, then rewrite rules, then load.
    pub fn decide(&self, pkt: &Redirected<'_>, load: u32) -> Decision {
        if self
            .refuse_sources
            .iter()
            .any(|p| p.contains(pkt.inner_src))
        {
            Decision::Refuse(RefuseReason::Source)
        } else if self
            .refuse_destinations
            .iter()
            .any(|p| p.contains(pkt.inner_dst))
        {
            Decision::Refuse(RefuseReason::Destination)
        } else if self.rewrite_for(pkt.inner_dst).is_some() {
            Decision::Refuse(RefuseReason::Rewritten)
        } else if self.max_load.is_some_and(|m| load > m) {
            Decision::Refuse(RefuseReason::Overload)
        } else {
            Decision::Accept
        }
    }
}

impl ReturnPolicy {
    /// The replacement destination for `dst`, if a rewrite rule matches (first match wins).
    pub fn rewrite_for(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.rewrite_destinations
            .iter()
            .find(|(p, _)| p.contains(dst))
            .map(|(_, to)| *to)
    }
}

/// One's-complement sum of 16-bit words folded to 16 bits (no final inversion).
fn ones_sum(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// Incremental checksum update for one 32-bit field changing from `old` to `new` (RFC 1624
/// eqn. 3: `HC' = ~(~HC + ~m + m')`).
fn checksum_adjust(csum: u16, old: u32, new: u32) -> u16 {
    let mut sum = u32::from(!csum);
    for (o, n) in [(old >> 16, new >> 16), (old & 0xFFFF, new & 0xFFFF)] {
        sum += u32::from(!(o as u16)) + n;
    }
    !ones_sum(sum)
}

/// Rewrites the destination address of an IPv4 packet in place (the original packet inside a
/// redirect, starting with its IPv4 header) and fixes the header checksum and, for an
/// unfragmented or first-fragment TCP or UDP packet, the transport checksum (whose pseudo-header
/// covers the destination). A UDP checksum of 0 (none) stays 0.
///
/// # Errors
/// [`ReturnError`] if the IPv4 header, or the TCP/UDP header whose checksum must change, is
/// truncated or invalid.
pub fn rewrite_destination(inner: &mut [u8], to: Ipv4Addr) -> Result<(), ReturnError> {
    const LAYER: &str = "inner IPv4";
    let ihl = check_ipv4(inner, 0, LAYER)?;
    let old = u32::from_be_bytes([inner[16], inner[17], inner[18], inner[19]]);
    let new = to.to_bits();
    inner[16..20].copy_from_slice(&to.octets());
    inner[10..12].copy_from_slice(&[0, 0]);
    let h = internet_checksum(&inner[..ihl]);
    inner[10..12].copy_from_slice(&h.to_be_bytes());
    let first_fragment = be16(inner, 6) & 0x1FFF == 0;
    let (layer, at) = match inner[9] {
        6 => ("TCP", ihl + 16),
        17 => ("UDP", ihl + 6),
        _ => return Ok(()),
    };
    if !first_fragment {
        return Ok(());
    }
    need(inner, at, 2, layer)?;
    let c = be16(inner, at);
    if layer == "UDP" && c == 0 {
        return Ok(());
    }
    let mut c2 = checksum_adjust(c, old, new);
    if layer == "UDP" && c2 == 0 {
        c2 = 0xFFFF;
    }
    inner[at..at + 2].copy_from_slice(&c2.to_be_bytes());
    Ok(())
}

/// The Internet checksum of `data` (RFC 1071).
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Length of the return packet [`build_return`] produces for `pkt`.
pub fn return_len(pkt: &Redirected<'_>) -> usize {
    IPV4_MIN_HEADER + GRE_BASE + REDIRECT_HEADER_LEN + pkt.inner.len()
}

/// Builds the GRE return packet for `pkt`: outer IPv4 from the cache (the address the packet was
/// redirected to) to the router, TTL 255, DF clear, identification `ip_id`; GRE `0000 883E`; the
/// redirect header copied (or only U set if the packet had none); the inner packet unchanged.
///
/// # Errors
/// `Invalid { field: "total length" }` if the result would exceed 65535 octets.
pub fn build_return(pkt: &Redirected<'_>, ip_id: u16) -> Result<Vec<u8>, ReturnError> {
    let len = return_len(pkt);
    let total = u16::try_from(len).map_err(|_| ReturnError::Invalid {
        layer: "outer IPv4",
        field: "total length",
        value: len as u32,
        offset: 0,
    })?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[0x45, 0x00]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&ip_id.to_be_bytes());
    out.extend_from_slice(&[0x00, 0x00, OUTER_TTL, IPPROTO_GRE, 0x00, 0x00]);
    out.extend_from_slice(&pkt.cache.octets());
    out.extend_from_slice(&pkt.router.octets());
    let csum = internet_checksum(&out[..IPV4_MIN_HEADER]);
    out[10..12].copy_from_slice(&csum.to_be_bytes());
    out.extend_from_slice(&[0x00, 0x00]);
    out.extend_from_slice(&GRE_PROTO_WCCP.to_be_bytes());
    out.extend_from_slice(&pkt.redirect_header.unwrap_or([REDIRECT_FLAG_U, 0, 0, 0]));
    out.extend_from_slice(pkt.inner);
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
    match policy.decide(&r, load) {
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

    #[test]
    fn checksum_rfc1071_example() {
        // Header from RFC 1071-style worked examples: a valid header sums to 0.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(internet_checksum(&z), 0xb861);
    }

    #[test]
    fn prefix_parse_and_contains() {
        let p: Prefix = "10.1.2.3/8".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/8");
        assert!(p.contains(Ipv4Addr::new(10, 200, 0, 1)));
        assert!(!p.contains(Ipv4Addr::new(11, 0, 0, 1)));
        let any: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(Ipv4Addr::new(1, 2, 3, 4)));
        let host: Prefix = "192.0.2.7".parse().unwrap();
        assert_eq!(host.prefix_len(), 32);
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("10.0.0/8".parse::<Prefix>().is_err());
    }
}
