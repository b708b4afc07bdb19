//! Address elements (docs/protocol.md §2.1).
//!
//! Every "address" in a WCCP message is a 4-octet element. Without an Address Table it is an IPv4
//! address (or IPv4-sized mask). With an Address Table (2.01 only) the upper 16 bits are 0 and the
//! lower 16 bits are a 1-based index into the table (0 = unspecified). This crate keeps the raw
//! element value in [`Addr`] and resolves it on demand with [`Addr::resolve`].

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::component::AddressTable;
use crate::error::{Error, FieldId, Layer};

/// The raw value of a 4-octet address element.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub u32);

impl Addr {
    /// 0: unspecified address / all-zero mask.
    pub const UNSPECIFIED: Addr = Addr(0);

    /// The element as an IPv4 address (meaningful when the message has no Address Table).
    pub const fn to_ipv4(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.0)
    }

    /// An element holding an IPv4 address.
    pub const fn from_ipv4(a: Ipv4Addr) -> Self {
        Addr(a.to_bits())
    }

    /// An element holding a 1-based Address Table index.
    pub const fn from_index(index: u16) -> Self {
        Addr(index as u32)
    }

    /// The element as an Address Table index (`None` if the reserved upper 16 bits are not 0).
    pub const fn table_index(self) -> Option<u16> {
        if self.0 >> 16 == 0 {
            Some(self.0 as u16)
        } else {
            None
        }
    }

    /// Resolves the element: without a table it is an IPv4 address; with a table, index 0 is the
    /// unspecified address of the table's family and 1..=N select table entries.
    ///
    /// # Errors
    /// `Invalid { field: AddressIndex, .. }` when the index is out of range or the reserved upper
    /// bits are set, or the table's family is neither IPv4 nor IPv6.
    pub fn resolve(self, table: Option<&AddressTable>) -> Result<IpAddr, Error> {
        let Some(t) = table else {
            return Ok(IpAddr::V4(self.to_ipv4()));
        };
        let bad = Error::Invalid {
            layer: Layer::AddressTable,
            field: FieldId::AddressIndex,
            index: 0,
            offset: 0,
            value: self.0,
        };
        let idx = self.table_index().ok_or(bad)?;
        if idx == 0 {
            return match t.family {
                AddressTable::FAMILY_IPV4 => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                AddressTable::FAMILY_IPV6 => Ok(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                _ => Err(bad),
            };
        }
        t.get(idx).ok_or(bad)
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Self {
        Addr::from_ipv4(a)
    }
}

impl From<[u8; 4]> for Addr {
    fn from(a: [u8; 4]) -> Self {
        Addr(u32::from_be_bytes(a))
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_ipv4())
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_ipv4())
    }
}
