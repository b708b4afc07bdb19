//! Ethernet II frame header view, with one optional 802.1Q tag (IEEE 802.3, 802.1Q).
//!
//! ```text
//! | destination MAC (6) | source MAC (6) | [0x8100 | TCI (2)] | EtherType (2) | payload
//! ```

use crate::error::{check_header, Error, Layer};

/// Header length without a VLAN tag.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// The broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

mod field {
    use crate::field::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
}

view! {
    /// Zero-copy Ethernet II header view.
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the header (and the 802.1Q tag, when there is one) fits.
    ///
    /// # Errors
    /// `Truncated { layer: Ethernet, .. }`.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        check_header(Layer::Ethernet, HEADER_LEN, len)?;
        if self.outer_ethertype() == ETHERTYPE_VLAN {
            check_header(Layer::Ethernet, HEADER_LEN + VLAN_TAG_LEN, len)?;
        }
        Ok(())
    }

    /// Destination MAC.
    pub fn dst(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        m
    }

    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        m
    }

    fn outer_ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The VLAN id of the 802.1Q tag, if there is one.
    pub fn vlan(&self) -> Option<u16> {
        (self.outer_ethertype() == ETHERTYPE_VLAN).then(|| {
            let b = &self.buffer.as_ref()[14..16];
            u16::from_be_bytes([b[0], b[1]]) & 0x0fff
        })
    }

    /// The EtherType of the payload (after the 802.1Q tag, when there is one).
    pub fn ethertype(&self) -> u16 {
        if self.outer_ethertype() == ETHERTYPE_VLAN {
            let b = &self.buffer.as_ref()[16..18];
            u16::from_be_bytes([b[0], b[1]])
        } else {
            self.outer_ethertype()
        }
    }

    /// Length of the header, tag included.
    pub fn header_len(&self) -> usize {
        if self.outer_ethertype() == ETHERTYPE_VLAN {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }
    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }
    /// Sets the (outer) EtherType.
    pub fn set_ethertype(&mut self, t: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&t.to_be_bytes());
    }
}

/// Writes an untagged 14-octet header into `buf[..14]`.
///
/// # Panics
/// If `buf` is shorter than 14 octets.
// Always inlined: three stores on the data plane's per-packet paths (a call otherwise).
#[inline(always)]
pub fn write_header(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    buf[field::DST].copy_from_slice(&dst);
    buf[field::SRC].copy_from_slice(&src);
    buf[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_tagged() {
        let mut f = [0u8; 18];
        write_header(&mut f, [1; 6], [2; 6], ETHERTYPE_IPV4);
        let p = Packet::new_checked(&f[..]).unwrap();
        assert_eq!((p.dst(), p.src(), p.ethertype()), ([1; 6], [2; 6], 0x0800));
        assert_eq!((p.header_len(), p.vlan()), (14, None));
        f[12..18].copy_from_slice(&[0x81, 0x00, 0x20, 0x07, 0x08, 0x06]);
        let p = Packet::new_checked(&f[..]).unwrap();
        assert_eq!(
            (p.header_len(), p.vlan(), p.ethertype()),
            (18, Some(7), 0x0806)
        );
        assert!(Packet::new_checked(&f[..17]).is_err());
        assert!(Packet::new_checked(&f[..13]).is_err());
    }
}
