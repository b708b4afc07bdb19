//! ARP for IPv4 over Ethernet (RFC 826): the only hardware/protocol pair a router port speaks.
//!
//! ```text
//! | HTYPE 1 | PTYPE 0x0800 | HLEN 6 | PLEN 4 | OPER | SHA (6) | SPA (4) | THA (6) | TPA (4) |
//! ```

use core::net::Ipv4Addr;

use crate::error::{check_header, Error, FieldId, Layer};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// 1: who has `target_ip`?
    Request,
    /// 2: `sender_ip` is at `sender_mac`.
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: Operation,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in requests).
    pub target_mac: [u8; 6],
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an ARP packet (the Ethernet payload).
    ///
    /// # Errors
    /// `Truncated { layer: Arp }` when shorter than 28 octets; `Invalid { layer: Arp }` for a
    /// hardware/protocol pair other than Ethernet/IPv4 or an unknown operation.
    pub fn parse(buf: &[u8]) -> Result<Self, Error> {
        check_header(Layer::Arp, PACKET_LEN, buf.len())?;
        let b = &buf[..PACKET_LEN];
        let invalid = |field, offset, value| Error::invalid(Layer::Arp, field, offset, value);
        if b[0..6] != [0, 1, 8, 0, 6, 4] {
            return Err(invalid(
                FieldId::Header,
                0,
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            ));
        }
        let operation = match u16::from_be_bytes([b[6], b[7]]) {
            1 => Operation::Request,
            2 => Operation::Reply,
            op => return Err(invalid(FieldId::MessageType, 6, u32::from(op))),
        };
        let mac = |r: core::ops::Range<usize>| {
            let mut m = [0; 6];
            m.copy_from_slice(&b[r]);
            m
        };
        let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
        Ok(ArpRepr {
            operation,
            sender_mac: mac(8..14),
            sender_ip: ip(14),
            target_mac: mac(18..24),
            target_ip: ip(24),
        })
    }

    /// Writes the 28 octets into `buf[..28]`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`PACKET_LEN`].
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        let op: u16 = match self.operation {
            Operation::Request => 1,
            Operation::Reply => 2,
        };
        buf[6..8].copy_from_slice(&op.to_be_bytes());
        buf[8..14].copy_from_slice(&self.sender_mac);
        buf[14..18].copy_from_slice(&self.sender_ip.octets());
        buf[18..24].copy_from_slice(&self.target_mac);
        buf[24..28].copy_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let r = ArpRepr {
            operation: Operation::Request,
            sender_mac: [2, 0, 0, 0, 0, 1],
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: [0; 6],
            target_ip: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut b = [0u8; 28];
        r.emit(&mut b);
        assert_eq!(&b[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(ArpRepr::parse(&b), Ok(r));
        assert!(ArpRepr::parse(&b[..27]).is_err());
        b[7] = 9;
        assert!(ArpRepr::parse(&b).is_err());
        b[7] = 2;
        b[3] = 0x06;
        assert!(ArpRepr::parse(&b).is_err());
    }
}
