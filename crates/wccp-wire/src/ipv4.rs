//! Minimal IPv4 header view with setters and checksum (RFC 791), for in-place edits in the data
//! plane (GRE encapsulation, TTL decrement).
//!
//! ```text
//! |Ver| IHL |  DSCP/ECN  |         Total Length          |
//! |        Identification        |Flags| Fragment Offset |
//! |   TTL    |  Protocol  |        Header Checksum        |
//! |                    Source Address                    |
//! |                 Destination Address                  |
//! ```

use core::net::Ipv4Addr;

use crate::checksum;
use crate::error::{check_header, sat_u16, Error, FieldId, Layer};

/// Minimum header length.
pub const HEADER_LEN: usize = 20;
/// IP protocol number of GRE.
pub const PROTOCOL_GRE: u8 = 47;
/// IP protocol number of TCP.
pub const PROTOCOL_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTOCOL_UDP: u8 = 17;
/// IP protocol number of ICMP.
pub const PROTOCOL_ICMP: u8 = 1;
/// The DF bit of the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// The MF bit of the flags/fragment-offset word.
pub const FLAG_MF: u16 = 0x2000;
/// The fragment offset (in 8-octet units) of the flags/fragment-offset word.
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

mod field {
    use crate::field::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

view! {
    /// Zero-copy IPv4 header view.
    pub struct Packet;
}

fn invalid(field: FieldId, offset: usize, value: u32) -> Error {
    Error::invalid(Layer::Ipv4, field, offset, value)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version 4, IHL >= 5, that the header fits, and that total length is between the
    /// header length and the buffer length.
    ///
    /// # Errors
    /// `Truncated` or `Invalid { layer: Ipv4, .. }`.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        check_header(Layer::Ipv4, HEADER_LEN, len)?;
        if self.version() != 4 {
            return Err(invalid(FieldId::Version, 0, u32::from(self.version())));
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(invalid(FieldId::HeaderLength, 0, u32::from(self.ihl())));
        }
        check_header(Layer::Ipv4, hl, len)?;
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(invalid(
                FieldId::TotalLength,
                2,
                u32::from(self.total_len()),
            ));
        }
        if total > len {
            return Err(Error::truncated(
                Layer::Ipv4,
                FieldId::Payload,
                total,
                len,
                0,
            ));
        }
        Ok(())
    }

    /// Version (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// IHL in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in octets.
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// DSCP/ECN octet.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length.
    pub fn total_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TOTAL_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::IDENT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Flags and fragment offset word.
    pub fn flags_frag(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLAGS_FRAG];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// TTL.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum.
    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Whether the header checksum is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }

    /// The payload (from the header end to total length).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// The DF (don't fragment) flag.
    pub fn dont_fragment(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// `true` for any fragment (MF set or a non-zero offset): ports are not in every fragment.
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// `true` for a non-first fragment (non-zero offset): it carries no transport header.
    pub fn is_later_fragment(&self) -> bool {
        self.flags_frag() & FRAG_OFFSET_MASK != 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The payload, mutable (from the header end to total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[h..t]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version and IHL (in words).
    pub fn set_version_ihl(&mut self, version: u8, ihl: u8) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | (ihl & 0x0f);
    }
    /// Sets DSCP/ECN.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }
    /// Sets total length.
    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::TOTAL_LEN].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets identification.
    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets flags and fragment offset.
    pub fn set_flags_frag(&mut self, v: u16) {
        self.buffer.as_mut()[field::FLAGS_FRAG].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    /// Sets protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the source address.
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }
    /// Recomputes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(c);
    }
    /// Decrements TTL and updates the checksum incrementally (RFC 1624). Returns the new TTL.
    pub fn decrement_ttl(&mut self) -> u8 {
        let old_word = u16::from_be_bytes([self.ttl(), self.protocol()]);
        let ttl = self.ttl().wrapping_sub(1);
        self.set_ttl(ttl);
        let new_word = u16::from_be_bytes([ttl, self.protocol()]);
        let c = checksum::update16(self.checksum(), old_word, new_word);
        self.set_checksum(c);
        ttl
    }
}

/// An option-less IPv4 header (for building outer GRE headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub protocol: u8,
    /// TTL.
    pub ttl: u8,
    /// Payload length (total length − 20).
    pub payload_len: u16,
}

impl Ipv4Repr {
    /// Parses a checked header (options are skipped; DSCP, ident and flags are not kept).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Ipv4Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            payload_len: p.total_len().saturating_sub(sat_u16(p.header_len())),
        }
    }

    /// Header length (20).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-octet header with ident 0, DF clear, DSCP 0 and a valid checksum.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 octets.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version_ihl(4, 5);
        p.set_dscp_ecn(0);
        p.set_total_len(self.payload_len.saturating_add(HEADER_LEN as u16));
        p.set_ident(0);
        p.set_flags_frag(0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src(self.src);
        p.set_dst(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inner header of the tcpdump WCCP capture (docs/protocol.md TV-1).
    const TV1_INNER: [u8; 20] = [
        0x45, 0x00, 0x00, 0xf0, 0x91, 0x14, 0x40, 0x00, 0x40, 0x06, 0xa6, 0x50, 0x0a, 0xfe, 0x7f,
        0xc3, 0x0a, 0xfe, 0x6c, 0xe4,
    ];

    #[test]
    fn view_reads_tv1_and_checksum_verifies() {
        let p = Packet::new_unchecked(&TV1_INNER[..]);
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 0xf0));
        assert_eq!((p.ttl(), p.protocol()), (64, PROTOCOL_TCP));
        assert_eq!(p.src(), Ipv4Addr::new(10, 254, 127, 195));
        assert_eq!(p.dst(), Ipv4Addr::new(10, 254, 108, 228));
        assert!(p.verify_checksum());
        // Total length 240 > 20 octets available.
        assert!(Packet::new_checked(&TV1_INNER[..]).is_err());
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut h = TV1_INNER;
        let mut p = Packet::new_unchecked(&mut h[..]);
        assert_eq!(p.decrement_ttl(), 63);
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
    }

    #[test]
    fn repr_emit_parse() {
        let r = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: PROTOCOL_GRE,
            ttl: 255,
            payload_len: 8,
        };
        let mut buf = [0u8; 28];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), r);
        assert_eq!(p.payload().len(), 8);
        let mut bad = buf;
        bad[0] = 0x44;
        assert!(Packet::new_checked(&bad[..]).is_err());
        bad[0] = 0x65;
        assert!(Packet::new_checked(&bad[..]).is_err());
    }
}
