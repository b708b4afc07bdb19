//! Service Info (type 1, docs/protocol.md §2.3) — body always 24 octets.
//!
//! ```text
//! +---------------+---------------+---------------+---------------+
//! | Service Type  |  Service ID   |   Priority    |   Protocol    |
//! +---------------+---------------+---------------+---------------+
//! |                         Service Flags                         |
//! +-------------------------------+-------------------------------+
//! |            Port 0             |            Port 1             |
//! |             ...               |            Port 7             |
//! ```

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};

use super::{ComponentRepr, ComponentType};
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// Body length of Service Info.
pub const BODY_LEN: usize = 24;

/// Service type (`WCCP2_SERVICE_STANDARD` / `WCCP2_SERVICE_DYNAMIC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ServiceType {
    /// Well-known service; only the ID is meaningful, other fields zero.
    #[default]
    Standard = 0,
    /// Dynamic service defined by the fields.
    Dynamic = 1,
}

/// Service flags (docs/protocol.md §2.3 table), a 32-bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    /// No flags.
    pub const EMPTY: Self = Self(0);
    /// Source IP in the primary hash key.
    pub const SRC_IP_HASH: Self = Self(0x0001);
    /// Destination IP in the primary hash key.
    pub const DST_IP_HASH: Self = Self(0x0002);
    /// Source port in the primary hash key.
    pub const SRC_PORT_HASH: Self = Self(0x0004);
    /// Destination port in the primary hash key.
    pub const DST_PORT_HASH: Self = Self(0x0008);
    /// The port list is valid.
    pub const PORTS_DEFINED: Self = Self(0x0010);
    /// The port list refers to source ports.
    pub const PORTS_SOURCE: Self = Self(0x0020);
    /// (2.01) Protocol 0 means IP protocol 0 rather than "all".
    pub const REDIRECT_ONLY_PROTOCOL_0: Self = Self(0x0040);
    /// Source IP in the alternate hash key.
    pub const SRC_IP_ALT_HASH: Self = Self(0x0100);
    /// Destination IP in the alternate hash key.
    pub const DST_IP_ALT_HASH: Self = Self(0x0200);
    /// Source port in the alternate hash key.
    pub const SRC_PORT_ALT_HASH: Self = Self(0x0400);
    /// Destination port in the alternate hash key.
    pub const DST_PORT_ALT_HASH: Self = Self(0x0800);
    /// Bits that must be zero.
    pub const RESERVED: Self = Self(0xFFFF_F080);

    /// Raw value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Union.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOr for ServiceFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl BitOrAssign for ServiceFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for ServiceFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Debug for ServiceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceFlags({:#06x})", self.0)
    }
}

/// Service Info component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceInfo {
    /// Standard or dynamic.
    pub service_type: ServiceType,
    /// Service ID (0–255).
    pub id: u8,
    /// Priority (dynamic only).
    pub priority: u8,
    /// IP protocol number (dynamic only).
    pub protocol: u8,
    /// Service flags.
    pub flags: ServiceFlags,
    /// Ports 1..8 (zero-terminated list).
    pub ports: [u16; 8],
}

impl ServiceInfo {
    /// A well-known service with every other field zero (e.g. `standard(0)` = web-cache).
    pub const fn standard(id: u8) -> Self {
        ServiceInfo {
            service_type: ServiceType::Standard,
            id,
            priority: 0,
            protocol: 0,
            flags: ServiceFlags::EMPTY,
            ports: [0; 8],
        }
    }
}

mod field {
    use crate::field::Field;
    pub const SERVICE_TYPE: usize = 0;
    pub const SERVICE_ID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const PROTOCOL: usize = 3;
    pub const FLAGS: Field = 4..8;
    pub const PORTS: Field = 8..24;
}

view! {
    /// Zero-copy view of a Service Info body (24 octets).
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the body has 24 octets.
    ///
    /// # Errors
    /// `Truncated` if shorter than 24 octets.
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        let mut c = Cursor::new(b, 0, crate::error::Layer::ServiceInfo);
        c.bytes(BODY_LEN, FieldId::Body).map(|_| ())
    }

    /// Raw service type.
    pub fn service_type(&self) -> u8 {
        self.buffer.as_ref()[field::SERVICE_TYPE]
    }

    /// Service ID.
    pub fn service_id(&self) -> u8 {
        self.buffer.as_ref()[field::SERVICE_ID]
    }

    /// Priority.
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Flags.
    pub fn flags(&self) -> ServiceFlags {
        let b = &self.buffer.as_ref()[field::FLAGS];
        ServiceFlags(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Port `i` (0..8).
    ///
    /// # Panics
    /// If `i >= 8`.
    pub fn port(&self, i: usize) -> u16 {
        let b = &self.buffer.as_ref()[field::PORTS];
        u16::from_be_bytes([b[2 * i], b[2 * i + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the raw service type.
    pub fn set_service_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::SERVICE_TYPE] = v;
    }
    /// Sets the service ID.
    pub fn set_service_id(&mut self, v: u8) {
        self.buffer.as_mut()[field::SERVICE_ID] = v;
    }
    /// Sets the priority.
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }
    /// Sets the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    /// Sets the flags.
    pub fn set_flags(&mut self, v: ServiceFlags) {
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&v.0.to_be_bytes());
    }
    /// Sets port `i` (0..8).
    ///
    /// # Panics
    /// If `i >= 8`.
    pub fn set_port(&mut self, i: usize, v: u16) {
        let start = field::PORTS.start + 2 * i;
        self.buffer.as_mut()[start..start + 2].copy_from_slice(&v.to_be_bytes());
    }
}

impl ComponentRepr for ServiceInfo {
    const TYPE: ComponentType = ComponentType::ServiceInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let at = c.offset();
        let body = c.bytes(BODY_LEN, FieldId::Body)?;
        let p = Packet::new_unchecked(body);
        let service_type = match p.service_type() {
            0 => ServiceType::Standard,
            1 => ServiceType::Dynamic,
            other => return Err(c.invalid_at(FieldId::ServiceType, at, u32::from(other))),
        };
        let mut ports = [0u16; 8];
        for (i, port) in ports.iter_mut().enumerate() {
            *port = p.port(i);
        }
        Ok(ServiceInfo {
            service_type,
            id: p.service_id(),
            priority: p.priority(),
            protocol: p.protocol(),
            flags: p.flags(),
            ports,
        })
    }

    fn body_len(&self) -> usize {
        BODY_LEN
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        let mut body = [0u8; BODY_LEN];
        let mut p = Packet::new_unchecked(&mut body[..]);
        p.set_service_type(self.service_type as u8);
        p.set_service_id(self.id);
        p.set_priority(self.priority);
        p.set_protocol(self.protocol);
        p.set_flags(self.flags);
        for (i, port) in self.ports.iter().enumerate() {
            p.set_port(i, *port);
        }
        w.bytes(&body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::Component;

    /// docs/protocol.md TV-6.
    #[test]
    fn tv6_dynamic_service() {
        let bytes = [
            0x00, 0x01, 0x00, 0x18, 0x01, 0x7b, 0xf0, 0x06, 0x00, 0x00, 0x00, 0x12, 0x00, 0x50,
            0x1f, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let c = Component {
            kind: 1,
            offset: 0,
            body: &bytes[4..],
        };
        let s = ServiceInfo::parse(&c).unwrap();
        assert_eq!(s.service_type, ServiceType::Dynamic);
        assert_eq!((s.id, s.priority, s.protocol), (123, 240, 6));
        assert_eq!(
            s.flags,
            ServiceFlags::DST_IP_HASH | ServiceFlags::PORTS_DEFINED
        );
        assert_eq!(&s.ports[..3], &[80, 8080, 0]);
        let mut out = [0u8; 28];
        s.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn bad_service_type_is_invalid() {
        let mut body = [0u8; 24];
        body[0] = 2;
        let c = Component {
            kind: 1,
            offset: 8,
            body: &body,
        };
        assert!(matches!(
            ServiceInfo::parse(&c),
            Err(Error::Invalid {
                field: FieldId::ServiceType,
                offset: 12,
                value: 2,
                ..
            })
        ));
    }
}
