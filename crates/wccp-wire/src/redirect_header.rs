//! The 4-octet WCCP redirect header that follows GRE (docs/protocol.md §4.2), with flags as observed on
//! the wire (LSB-first, ambiguity A1).
//!
//! ```text
//! +---------------+---------------+---------------+---------------+
//! | Flags D/A/U   |  Service ID   |  Alt bucket   | Primary bucket|
//! +---------------+---------------+---------------+---------------+
//! ```

use core::fmt;

use crate::error::{check_header, Error, Layer};

/// Header length.
pub const HEADER_LEN: usize = 4;

mod field {
    pub const FLAGS: usize = 0;
    pub const SERVICE_ID: usize = 1;
    pub const ALT_BUCKET: usize = 2;
    pub const PRIMARY_BUCKET: usize = 3;
}

/// Redirect header flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RedirectFlags(pub u8);

impl RedirectFlags {
    /// No flags (well-known service).
    pub const EMPTY: Self = Self(0);
    /// 0x01 T/D: dynamic service.
    pub const DYNAMIC: Self = Self(0x01);
    /// 0x02 A: the alternate bucket was used.
    pub const ALT_BUCKET_USED: Self = Self(0x02);
    /// 0x04 U (2.01): contents unavailable.
    pub const UNAVAILABLE: Self = Self(0x04);

    /// Whether all bits of `other` are set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl core::ops::BitOr for RedirectFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for RedirectFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectFlags({:#04x})", self.0)
    }
}

view! {
    /// Zero-copy view of a redirect header.
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the length.
    ///
    /// # Errors
    /// `Truncated` if shorter than 4 octets.
    pub fn check_len(&self) -> Result<(), Error> {
        check_header(
            Layer::RedirectHeader,
            HEADER_LEN,
            self.buffer.as_ref().len(),
        )
    }

    /// Flags.
    pub fn flags(&self) -> RedirectFlags {
        RedirectFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Service ID.
    pub fn service_id(&self) -> u8 {
        self.buffer.as_ref()[field::SERVICE_ID]
    }

    /// Alternate bucket.
    pub fn alt_bucket(&self) -> u8 {
        self.buffer.as_ref()[field::ALT_BUCKET]
    }

    /// Primary bucket.
    pub fn primary_bucket(&self) -> u8 {
        self.buffer.as_ref()[field::PRIMARY_BUCKET]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags.
    pub fn set_flags(&mut self, v: RedirectFlags) {
        self.buffer.as_mut()[field::FLAGS] = v.0;
    }
    /// Sets the service ID.
    pub fn set_service_id(&mut self, v: u8) {
        self.buffer.as_mut()[field::SERVICE_ID] = v;
    }
    /// Sets the alternate bucket.
    pub fn set_alt_bucket(&mut self, v: u8) {
        self.buffer.as_mut()[field::ALT_BUCKET] = v;
    }
    /// Sets the primary bucket.
    pub fn set_primary_bucket(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIMARY_BUCKET] = v;
    }
}

/// Owned redirect header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RedirectHeader {
    /// Flags.
    pub flags: RedirectFlags,
    /// Service ID.
    pub service_id: u8,
    /// Alternate bucket (hash only).
    pub alt_bucket: u8,
    /// Primary bucket (hash only; 0 under mask assignment).
    pub primary_bucket: u8,
}

impl RedirectHeader {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        RedirectHeader {
            flags: p.flags(),
            service_id: p.service_id(),
            alt_bucket: p.alt_bucket(),
            primary_bucket: p.primary_bucket(),
        }
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
        p.set_flags(self.flags);
        p.set_service_id(self.service_id);
        p.set_alt_bucket(self.alt_bucket);
        p.set_primary_bucket(self.primary_bucket);
    }

    /// From the four octets.
    pub const fn from_bytes(b: [u8; 4]) -> Self {
        RedirectHeader {
            flags: RedirectFlags(b[0]),
            service_id: b[1],
            alt_bucket: b[2],
            primary_bucket: b[3],
        }
    }

    /// The four octets.
    pub const fn to_bytes(&self) -> [u8; 4] {
        [
            self.flags.0,
            self.service_id,
            self.alt_bucket,
            self.primary_bucket,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/protocol.md TV-8.
    #[test]
    fn golden_cisco_headers() {
        let h = RedirectHeader {
            flags: RedirectFlags::DYNAMIC,
            service_id: 123,
            alt_bucket: 0,
            primary_bucket: 0,
        };
        assert_eq!(h.to_bytes(), [0x01, 0x7b, 0x00, 0x00]);
        let mut buf = [0xffu8; 4];
        h.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, [0x01, 0x7b, 0, 0]);
        assert_eq!(
            RedirectHeader::parse(&Packet::new_checked(&buf[..]).unwrap()),
            h
        );
        assert_eq!(RedirectHeader::default().to_bytes(), [0, 0, 0, 0]);
        assert!(Packet::new_checked(&buf[..3]).is_err());
    }
}
