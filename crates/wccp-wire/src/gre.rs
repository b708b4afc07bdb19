//! GRE header (RFC 2784/2890) as used by WCCP (docs/protocol.md §4.1, §4.2) and the Linux
//! first-nibble rule for WCCP GRE payloads.
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-------------------------------+
//! |C| |K|S| Reserved0       | Ver |        Protocol Type          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-------------------------------+
//! ```
//! WCCP uses flags/version = 0 and protocol 0x883E, then the 4-octet redirect header.

use crate::error::{check_header, Error, FieldId, Layer};
use crate::redirect_header::{self, RedirectHeader};

/// Length of the basic GRE header.
pub const HEADER_LEN: usize = 4;
/// GRE protocol type for WCCP (`ETH_P_WCCP`).
pub const PROTOCOL_WCCP: u16 = 0x883E;
/// GRE protocol type for IPv4.
pub const PROTOCOL_IPV4: u16 = 0x0800;
/// Checksum-present flag.
pub const FLAG_CHECKSUM: u16 = 0x8000;
/// Routing-present flag (RFC 1701; no WCCP peer sets it, and [`Packet::header_len`] does not
/// count a routing field).
pub const FLAG_ROUTING: u16 = 0x4000;
/// Key-present flag.
pub const FLAG_KEY: u16 = 0x2000;
/// Sequence-present flag.
pub const FLAG_SEQUENCE: u16 = 0x1000;
/// Version bits.
pub const VERSION_MASK: u16 = 0x0007;

mod field {
    use crate::field::Field;
    pub const FLAGS_VERSION: Field = 0..2;
    pub const PROTOCOL: Field = 2..4;
}

view! {
    /// Zero-copy view of a GRE header and what follows.
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the header, including optional checksum/key/sequence fields, is present.
    ///
    /// # Errors
    /// `Truncated { layer: Gre, .. }`.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        check_header(Layer::Gre, HEADER_LEN, len)?;
        check_header(Layer::Gre, self.header_len(), len)
    }

    /// Flags and version word.
    pub fn flags_version(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLAGS_VERSION];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Protocol type.
    pub fn protocol(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::PROTOCOL];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Header length including optional fields.
    pub fn header_len(&self) -> usize {
        let f = self.flags_version();
        HEADER_LEN
            + if f & FLAG_CHECKSUM != 0 { 4 } else { 0 }
            + if f & FLAG_KEY != 0 { 4 } else { 0 }
            + if f & FLAG_SEQUENCE != 0 { 4 } else { 0 }
    }

    /// Octets after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets flags and version.
    pub fn set_flags_version(&mut self, v: u16) {
        self.buffer.as_mut()[field::FLAGS_VERSION].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the protocol type.
    pub fn set_protocol(&mut self, v: u16) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&v.to_be_bytes());
    }
}

/// A basic GRE header (no optional fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GreRepr {
    /// Protocol type.
    pub protocol: u16,
}

impl GreRepr {
    /// The WCCP header `00 00 88 3e`.
    pub const WCCP: GreRepr = GreRepr {
        protocol: PROTOCOL_WCCP,
    };

    /// Parses a basic header.
    ///
    /// # Errors
    /// `Invalid { field: Flags }` if any flag or version bit is set.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self, Error> {
        if p.flags_version() != 0 {
            return Err(invalid(FieldId::Flags, 0, u32::from(p.flags_version())));
        }
        Ok(GreRepr {
            protocol: p.protocol(),
        })
    }

    /// Header length (4).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header.
    ///
    /// # Panics
    /// If the buffer is shorter than 4 octets.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_flags_version(0);
        p.set_protocol(self.protocol);
    }
}

fn invalid(field: FieldId, offset: usize, value: u32) -> Error {
    Error::invalid(Layer::Gre, field, offset, value)
}

/// Octets a WCCP GRE encapsulation adds: outer IPv4 (20) + GRE (4) + redirect header (4).
pub const WCCP_ENCAP_LEN: usize =
    crate::ipv4::HEADER_LEN + HEADER_LEN + redirect_header::HEADER_LEN;

/// Writes the 28-octet WCCP GRE encapsulation (outer IPv4 with protocol 47 and a valid checksum,
/// GRE `0000 883e`, redirect header) into `buf[..28]`. `outer.payload_len` must already cover GRE +
/// redirect header + inner packet; `outer.protocol` is forced to GRE.
///
/// # Errors
/// `BufferLength` if `buf` is shorter than [`WCCP_ENCAP_LEN`].
pub fn write_wccp_encap(
    buf: &mut [u8],
    outer: &crate::ipv4::Ipv4Repr,
    redirect: &RedirectHeader,
) -> Result<(), Error> {
    let Some(hdr) = buf.get_mut(..WCCP_ENCAP_LEN) else {
        return Err(Error::BufferLength {
            need: WCCP_ENCAP_LEN as u32,
            have: crate::error::sat_u32(buf.len()),
        });
    };
    let (ip, rest) = hdr.split_at_mut(crate::ipv4::HEADER_LEN);
    let (gre, rh) = rest.split_at_mut(HEADER_LEN);
    let outer = crate::ipv4::Ipv4Repr {
        protocol: crate::ipv4::PROTOCOL_GRE,
        ..*outer
    };
    outer.emit(&mut crate::ipv4::Packet::new_unchecked(ip));
    GreRepr::WCCP.emit(&mut Packet::new_unchecked(gre));
    redirect.emit(&mut redirect_header::Packet::new_unchecked(rh));
    Ok(())
}

/// What follows a WCCP GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WccpPayload<'a> {
    /// WCCPv1 style: the inner IPv4 packet starts right after GRE.
    Ipv4(&'a [u8]),
    /// WCCPv2 style: a redirect header, then the inner packet.
    Redirect {
        /// The redirect header.
        header: RedirectHeader,
        /// The inner packet.
        inner: &'a [u8],
    },
}

impl<'a> WccpPayload<'a> {
    /// The inner packet.
    pub fn inner(&self) -> &'a [u8] {
        match *self {
            WccpPayload::Ipv4(p) | WccpPayload::Redirect { inner: p, .. } => p,
        }
    }
}

impl<'a> Packet<&'a [u8]> {
    /// What follows the (checked) header, split by the first-nibble rule of Linux
    /// (`gre_parse_header`): if the first nibble is 4 the inner IPv4 starts immediately,
    /// otherwise a 4-octet redirect header comes first. The header's flags and protocol type are
    /// not looked at: that is the caller's policy ([`decap_wccp`] is the strict one).
    ///
    /// # Errors
    /// `Truncated` for an empty payload, a short redirect header or an empty inner packet.
    pub fn wccp_payload(&self) -> Result<WccpPayload<'a>, Error> {
        let at = self.header_len();
        let rest = &self.buffer[at..];
        let truncated =
            |need: usize| Error::truncated(Layer::Gre, FieldId::Payload, need, rest.len(), at);
        let Some(&first) = rest.first() else {
            return Err(truncated(1));
        };
        if first >> 4 == 4 {
            return Ok(WccpPayload::Ipv4(rest));
        }
        let rh = redirect_header::Packet::new_checked(rest)?;
        let header = RedirectHeader::parse(&rh);
        let inner = &rest[redirect_header::HEADER_LEN..];
        if inner.is_empty() {
            return Err(truncated(redirect_header::HEADER_LEN + 1));
        }
        Ok(WccpPayload::Redirect { header, inner })
    }
}

/// Decodes a WCCP GRE payload with the Linux rule (`gre_parse_header`): requires flags/version all
/// 0 and protocol 0x883E, then splits the payload with [`Packet::wccp_payload`].
///
/// `buf` starts at the GRE header.
///
/// # Errors
/// `Truncated` for a short GRE header, redirect header, or an empty inner packet;
/// `Invalid { field: Flags | Protocol }` for a non-WCCP GRE header.
pub fn decap_wccp(buf: &[u8]) -> Result<WccpPayload<'_>, Error> {
    let p = Packet::new_checked(buf)?;
    if p.flags_version() != 0 {
        return Err(invalid(FieldId::Flags, 0, u32::from(p.flags_version())));
    }
    if p.protocol() != PROTOCOL_WCCP {
        return Err(invalid(FieldId::Protocol, 2, u32::from(p.protocol())));
    }
    p.wccp_payload()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redirect_header::RedirectFlags;

    #[test]
    fn redirect_style() {
        let buf = [0x00, 0x00, 0x88, 0x3e, 0x05, 0x59, 0x00, 0x48, 0x45, 0x00];
        let WccpPayload::Redirect { header, inner } = decap_wccp(&buf).unwrap() else {
            panic!("expected redirect header");
        };
        assert_eq!(header.service_id, 89);
        assert_eq!(header.primary_bucket, 72);
        assert!(header.flags.contains(RedirectFlags::DYNAMIC));
        assert_eq!(inner, &[0x45, 0x00]);
    }

    #[test]
    fn v1_style_first_nibble_4() {
        let buf = [0x00, 0x00, 0x88, 0x3e, 0x45, 0x00, 0x00, 0x14];
        assert_eq!(decap_wccp(&buf).unwrap(), WccpPayload::Ipv4(&buf[4..]));
    }

    #[test]
    fn rejects_non_wccp() {
        assert!(matches!(
            decap_wccp(&[0x00, 0x00, 0x08, 0x00, 0x45]),
            Err(Error::Invalid {
                field: FieldId::Protocol,
                value: 0x0800,
                ..
            })
        ));
        assert!(matches!(
            decap_wccp(&[0x80, 0x00, 0x88, 0x3e, 0, 0, 0, 0, 0x45]),
            Err(Error::Invalid {
                field: FieldId::Flags,
                ..
            })
        ));
        assert!(decap_wccp(&[0x00, 0x00, 0x88]).is_err());
        assert!(decap_wccp(&[0x00, 0x00, 0x88, 0x3e]).is_err());
        assert!(decap_wccp(&[0x00, 0x00, 0x88, 0x3e, 1, 2, 3, 4]).is_err());
    }

    #[test]
    fn encap_then_decap() {
        use crate::ipv4::{Ipv4Repr, Packet as Ip};
        use core::net::Ipv4Addr;
        let inner = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let mut frame = [0u8; WCCP_ENCAP_LEN + 20];
        frame[WCCP_ENCAP_LEN..].copy_from_slice(&inner);
        let outer = Ipv4Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(192, 0, 2, 2),
            protocol: 0,
            ttl: 255,
            payload_len: 28,
        };
        let rh = RedirectHeader {
            flags: RedirectFlags::DYNAMIC,
            service_id: 89,
            alt_bucket: 0,
            primary_bucket: 72,
        };
        write_wccp_encap(&mut frame, &outer, &rh).unwrap();
        let ip = Ip::new_checked(&frame[..]).unwrap();
        assert_eq!((ip.protocol(), ip.ttl(), ip.total_len()), (47, 255, 48));
        assert!(ip.verify_checksum());
        assert_eq!(
            decap_wccp(ip.payload()).unwrap(),
            WccpPayload::Redirect {
                header: rh,
                inner: &inner[..]
            }
        );
        assert!(matches!(
            write_wccp_encap(&mut [0u8; 27], &outer, &rh),
            Err(Error::BufferLength { need: 28, have: 27 })
        ));
    }

    #[test]
    fn gre_view_and_repr() {
        let mut buf = [0xffu8; 4];
        GreRepr::WCCP.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, [0, 0, 0x88, 0x3e]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(GreRepr::parse(&p).unwrap(), GreRepr::WCCP);
        let with_key = [0x20, 0, 0x88, 0x3e, 0, 0];
        assert!(Packet::new_checked(&with_key[..]).is_err());
    }
}
