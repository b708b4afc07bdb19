//! Address Table (type 17, 2.01, docs/protocol.md §2.16).
//!
//! ```text
//! | Family (2) | Address length (2) | N (4) | N x address (length octets each) |
//! ```

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{ComponentRepr, ComponentType};
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// Address Table component. Entries are kept as raw octets (`addr_len` each) so that parse/emit is
/// byte-exact; use [`AddressTable::get`] to read them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressTable {
    /// IANA address family number (1 IPv4, 2 IPv6).
    pub family: u16,
    /// Octets per entry (a non-zero multiple of 4).
    pub addr_len: u16,
    /// `N * addr_len` octets of entries.
    pub raw: Vec<u8>,
}

impl AddressTable {
    /// IANA AFN for IPv4.
    pub const FAMILY_IPV4: u16 = 1;
    /// IANA AFN for IPv6.
    pub const FAMILY_IPV6: u16 = 2;

    /// An IPv4 table.
    pub fn ipv4(addrs: &[Ipv4Addr]) -> Self {
        AddressTable {
            family: Self::FAMILY_IPV4,
            addr_len: 4,
            raw: addrs.iter().flat_map(|a| a.octets()).collect(),
        }
    }

    /// An IPv6 table.
    pub fn ipv6(addrs: &[Ipv6Addr]) -> Self {
        AddressTable {
            family: Self::FAMILY_IPV6,
            addr_len: 16,
            raw: addrs.iter().flat_map(|a| a.octets()).collect(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self.addr_len {
            0 => 0,
            n => self.raw.len() / usize::from(n),
        }
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw octets of entry `index` (1-based).
    pub fn entry(&self, index: u16) -> Option<&[u8]> {
        let len = usize::from(self.addr_len);
        let i = usize::from(index).checked_sub(1)?;
        self.raw.get(i * len..(i + 1) * len)
    }

    /// Entry `index` (1-based) as an IP address (IPv4: first 4 octets; IPv6: first 16).
    pub fn get(&self, index: u16) -> Option<IpAddr> {
        let e = self.entry(index)?;
        match self.family {
            Self::FAMILY_IPV4 => {
                let o: [u8; 4] = e.get(..4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(o)))
            }
            Self::FAMILY_IPV6 => {
                let o: [u8; 16] = e.get(..16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            }
            _ => None,
        }
    }

    /// 1-based index of `addr` in the table, if present.
    pub fn index_of(&self, addr: IpAddr) -> Option<u16> {
        (1..=u16::try_from(self.len()).unwrap_or(u16::MAX)).find(|&i| self.get(i) == Some(addr))
    }
}

impl ComponentRepr for AddressTable {
    const TYPE: ComponentType = ComponentType::AddressTable;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let family = c.u16(FieldId::AddressFamily)?;
        let at = c.offset();
        let addr_len = c.u16(FieldId::AddressLength)?;
        if addr_len == 0 || addr_len % 4 != 0 {
            return Err(c.invalid_at(FieldId::AddressLength, at, u32::from(addr_len)));
        }
        let n = c.count(
            FieldId::AddressCount,
            FieldId::Address,
            usize::from(addr_len),
        )?;
        let raw = c
            .bytes(n * usize::from(addr_len), FieldId::Address)?
            .to_vec();
        Ok(AddressTable {
            family,
            addr_len,
            raw,
        })
    }

    fn body_len(&self) -> usize {
        8 + self.raw.len()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        w.u16(self.family);
        w.u16(self.addr_len);
        w.count(self.len());
        w.bytes(&self.raw);
    }
}
