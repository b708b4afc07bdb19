//! Transport headers the router looks at: UDP (RFC 768), TCP (RFC 793: ports, flags, the MSS
//! option) and ICMP (RFC 792). Checked once, then no accessor panics.

use crate::checksum;
use crate::error::{check_header, Error, FieldId, Layer};

/// UDP header length.
pub const UDP_HEADER_LEN: usize = 8;
/// Minimum TCP header length.
pub const TCP_HEADER_LEN: usize = 20;
/// ICMP header length (type, code, checksum, rest-of-header).
pub const ICMP_HEADER_LEN: usize = 8;
/// TCP flag SYN.
pub const TCP_SYN: u8 = 0x02;
/// TCP flag ACK.
pub const TCP_ACK: u8 = 0x10;

/// The source and destination ports of a TCP or UDP header (the first four octets of both).
///
/// # Errors
/// `Truncated` when `l4` is shorter than four octets.
pub fn ports(l4: &[u8], layer: Layer) -> Result<(u16, u16), Error> {
    match l4 {
        [a, b, c, d, ..] => Ok((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => Err(Error::truncated(layer, FieldId::Header, 4, l4.len(), 0)),
    }
}

view! {
    /// Zero-copy UDP header view.
    pub struct UdpPacket;
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Checks that the header fits and that the length field lies between 8 and the buffer.
    ///
    /// # Errors
    /// `Truncated` or `Invalid { layer: Udp, field: Length }`.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        check_header(Layer::Udp, UDP_HEADER_LEN, len)?;
        let l = usize::from(self.len());
        if l < UDP_HEADER_LEN || l > len {
            return Err(Error::invalid(
                Layer::Udp,
                FieldId::Length,
                4,
                u32::from(self.len()),
            ));
        }
        Ok(())
    }
    fn word(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.word(0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.word(2)
    }
    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        self.word(4)
    }
    /// `true` when the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == UDP_HEADER_LEN
    }
    /// Checksum field (0: none).
    pub fn checksum(&self) -> u16 {
        self.word(6)
    }
    /// The payload (up to the length field).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[UDP_HEADER_LEN..usize::from(self.len())]
    }
    /// Verifies the checksum against the pseudo-header (a zero checksum field means none).
    pub fn verify_checksum(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = &self.buffer.as_ref()[..usize::from(self.len())];
        let acc = checksum::pseudo_header(src, dst, crate::ipv4::PROTOCOL_UDP, self.len());
        checksum::finish(checksum::sum(acc, d)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[6..8].copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes a UDP header for `payload_len` octets of payload into `seg[..8]` and fills the
/// checksum over `seg[..8 + payload_len]` (the payload must already be in place).
///
/// # Panics
/// If `seg` is shorter than `8 + payload_len`.
pub fn write_udp(
    seg: &mut [u8],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload_len: usize,
) {
    let len = (UDP_HEADER_LEN + payload_len) as u16;
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    seg[4..6].copy_from_slice(&len.to_be_bytes());
    seg[6..8].copy_from_slice(&[0, 0]);
    let acc = checksum::pseudo_header(src, dst, crate::ipv4::PROTOCOL_UDP, len);
    let c = checksum::finish(checksum::sum(acc, &seg[..usize::from(len)]));
    // RFC 768: a computed zero is sent as all ones.
    let c = if c == 0 { 0xffff } else { c };
    seg[6..8].copy_from_slice(&c.to_be_bytes());
}

view! {
    /// Zero-copy TCP header view.
    pub struct TcpPacket;
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Checks that the header, options included, fits.
    ///
    /// # Errors
    /// `Truncated` or `Invalid { layer: Tcp, field: HeaderLength }`.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        check_header(Layer::Tcp, TCP_HEADER_LEN, len)?;
        let hl = self.header_len();
        if hl < TCP_HEADER_LEN {
            return Err(Error::invalid(
                Layer::Tcp,
                FieldId::HeaderLength,
                12,
                hl as u32,
            ));
        }
        check_header(Layer::Tcp, hl, len)
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]])
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }
    /// Header length in octets (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }
    /// The flag octet (CWR ECE URG ACK PSH RST SYN FIN).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[16], b[17]])
    }
    /// Offset and value of the MSS option, if present and well-formed.
    pub fn mss(&self) -> Option<(usize, u16)> {
        let b = self.buffer.as_ref();
        let mut i = TCP_HEADER_LEN;
        let end = self.header_len();
        while i < end {
            match b[i] {
                0 => return None,
                1 => i += 1,
                kind => {
                    let len = usize::from(*b.get(i + 1)?);
                    if len < 2 || i + len > end {
                        return None;
                    }
                    if kind == 2 && len == 4 {
                        return Some((i, u16::from_be_bytes([b[i + 2], b[i + 3]])));
                    }
                    i += len;
                }
            }
        }
        None
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[16..18].copy_from_slice(&v.to_be_bytes());
    }

    /// Lowers the MSS option to `max` when it is larger, updating the checksum incrementally
    /// (RFC 1624). Returns `true` when the option was changed.
    pub fn clamp_mss(&mut self, max: u16) -> bool {
        let Some((at, mss)) = self.mss() else {
            return false;
        };
        if mss <= max {
            return false;
        }
        // An option at an odd offset straddles two checksum words: its octets then count
        // byte-swapped in the ones' complement sum.
        let c = if at % 2 == 0 {
            checksum::update16(self.checksum(), mss, max)
        } else {
            checksum::update16(self.checksum(), mss.swap_bytes(), max.swap_bytes())
        };
        self.buffer.as_mut()[at + 2..at + 4].copy_from_slice(&max.to_be_bytes());
        self.set_checksum(c);
        true
    }
}

view! {
    /// Zero-copy ICMP header view.
    pub struct IcmpPacket;
}

/// ICMP type: echo reply.
pub const ICMP_ECHO_REPLY: u8 = 0;
/// ICMP type: destination unreachable (code 4: fragmentation needed and DF set).
pub const ICMP_DEST_UNREACHABLE: u8 = 3;
/// ICMP code of "fragmentation needed and DF set" (RFC 1191).
pub const ICMP_FRAG_NEEDED: u8 = 4;
/// ICMP type: echo request.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP type: time exceeded (code 0: TTL exceeded in transit).
pub const ICMP_TIME_EXCEEDED: u8 = 11;

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Checks that the 8-octet header fits.
    ///
    /// # Errors
    /// `Truncated { layer: Icmp }`.
    pub fn check_len(&self) -> Result<(), Error> {
        check_header(Layer::Icmp, ICMP_HEADER_LEN, self.buffer.as_ref().len())
    }
    /// Type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// `true` when the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

/// Fills the ICMP checksum of the message in `msg` (its checksum field is overwritten).
///
/// # Panics
/// If `msg` is shorter than 4 octets.
pub fn fill_icmp_checksum(msg: &mut [u8]) {
    msg[2..4].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_build_and_verify() {
        let mut seg = [0u8; 8 + 5];
        seg[8..].copy_from_slice(b"hello");
        write_udp(&mut seg, [10, 0, 0, 1], [10, 0, 0, 2], 2048, 2048, 5);
        let u = UdpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (2048, 2048, 13));
        assert!(u.verify_checksum([10, 0, 0, 1], [10, 0, 0, 2]));
        assert!(!u.verify_checksum([10, 0, 0, 1], [10, 0, 0, 3]));
        assert_eq!(u.payload(), b"hello");
        seg[5] = 40;
        assert!(UdpPacket::new_checked(&seg[..]).is_err());
        assert!(UdpPacket::new_checked(&seg[..7]).is_err());
    }

    #[test]
    fn tcp_mss_clamp() {
        // SYN with NOP, MSS 1460, and a checksum we can verify incrementally.
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        h[12] = 7 << 4;
        h[13] = TCP_SYN;
        h[20..28].copy_from_slice(&[1, 1, 1, 2, 4, 0x05, 0xb4, 0]);
        let full = |h: &[u8]| {
            let mut d = h.to_vec();
            d[16] = 0;
            d[17] = 0;
            crate::checksum::checksum(&d)
        };
        let c = full(&h);
        h[16..18].copy_from_slice(&c.to_be_bytes());
        let mut t = TcpPacket::new_checked(&mut h[..]).unwrap();
        assert_eq!(t.mss(), Some((23, 1460)));
        assert!(!t.clamp_mss(1500));
        assert!(t.clamp_mss(1432));
        assert_eq!(t.mss(), Some((23, 1432)));
        let c2 = t.checksum();
        assert_eq!(c2, full(&h));
        h[12] = 9 << 4;
        assert!(TcpPacket::new_checked(&h[..]).is_err());
        h[12] = 4 << 4;
        assert!(TcpPacket::new_checked(&h[..]).is_err());
    }
}
