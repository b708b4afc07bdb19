//! Components (docs/protocol.md §1.3, §2): framing, the zero-copy component view, the components
//! iterator, and one owned `Repr` per component type.
//!
//! ```text
//!  0                   1                   2                   3
//! +-------------------------------+-------------------------------+
//! |             Type              |            Length             |
//! +-------------------------------+-------------------------------+
//! |                 Body (Length octets) ...                      |
//! ```

use crate::cursor::{Cursor, CursorMut};
use crate::error::{check_header, sat_u16, sat_u32, Error, FieldId, Layer};

pub mod address_table;
pub mod assignment;
pub mod capabilities;
pub mod command;
pub mod identity;
pub mod mask;
pub mod query;
pub mod security;
pub mod service_info;
pub mod view;

pub use address_table::AddressTable;
pub use assignment::{
    AltAssignmentBody, AlternateAssignment, AlternateAssignmentMap, AssignmentInfo, AssignmentKey,
    AssignmentMap, HashBuckets, RouterAssignment,
};
pub use capabilities::{Capabilities, Capability};
pub use command::{Command, CommandExtension};
pub use identity::{
    AssignmentData, HashAssignmentData, IdentityFlags, MaskAssignmentData, RouterIdElement,
    RouterIdentityInfo, WebCacheIdentity, WebCacheIdentityInfo,
};
pub use mask::{AltMaskValueSet, CacheValueElement, MaskElement, MaskValueSet, ValueElement};
pub use query::RouterQueryInfo;
pub use security::Security;
pub use service_info::{ServiceFlags, ServiceInfo, ServiceType};
pub use view::{RouterViewInfo, WebCacheViewInfo};

/// Length of the component header (type + length).
pub const HEADER_LEN: usize = 4;

/// Component type codes (docs/protocol.md §2.0); names of the drafts in the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u16)]
pub enum ComponentType {
    /// `WCCP2_SECURITY_INFO`.
    SecurityInfo = 0,
    /// `WCCP2_SERVICE_INFO`.
    ServiceInfo = 1,
    /// `WCCP2_ROUTER_ID_INFO`.
    RouterIdentityInfo = 2,
    /// `WCCP2_WC_ID_INFO`.
    WebCacheIdentityInfo = 3,
    /// `WCCP2_RTR_VIEW_INFO`.
    RouterViewInfo = 4,
    /// `WCCP2_WC_VIEW_INFO`.
    WebCacheViewInfo = 5,
    /// `WCCP2_REDIRECT_ASSIGNMENT`.
    AssignmentInfo = 6,
    /// `WCCP2_QUERY_INFO`.
    RouterQueryInfo = 7,
    /// `WCCP2_CAPABILITY_INFO`.
    CapabilitiesInfo = 8,
    /// `WCCP2_ALT_ASSIGNMENT`.
    AlternateAssignment = 13,
    /// `WCCP2_ASSIGN_MAP`.
    AssignmentMap = 14,
    /// `WCCP2_COMMAND_EXTENSION`.
    CommandExtension = 15,
    /// `WCCP2_ALT_ASSIGNMENT_MAP` (2.01).
    AlternateAssignmentMap = 16,
    /// `WCCP2_ADDRESS_TABLE` (2.01).
    AddressTable = 17,
}

impl ComponentType {
    /// The error layer for this component.
    pub const fn layer(self) -> Layer {
        match self {
            ComponentType::SecurityInfo => Layer::SecurityInfo,
            ComponentType::ServiceInfo => Layer::ServiceInfo,
            ComponentType::RouterIdentityInfo => Layer::RouterIdentityInfo,
            ComponentType::WebCacheIdentityInfo => Layer::WebCacheIdentityInfo,
            ComponentType::RouterViewInfo => Layer::RouterViewInfo,
            ComponentType::WebCacheViewInfo => Layer::WebCacheViewInfo,
            ComponentType::AssignmentInfo => Layer::AssignmentInfo,
            ComponentType::RouterQueryInfo => Layer::RouterQueryInfo,
            ComponentType::CapabilitiesInfo => Layer::CapabilitiesInfo,
            ComponentType::AlternateAssignment => Layer::AlternateAssignment,
            ComponentType::AssignmentMap => Layer::AssignmentMap,
            ComponentType::CommandExtension => Layer::CommandExtension,
            ComponentType::AlternateAssignmentMap => Layer::AlternateAssignmentMap,
            ComponentType::AddressTable => Layer::AddressTable,
        }
    }

    /// The draft's name of the component.
    pub const fn as_str(self) -> &'static str {
        self.layer().as_str()
    }
}

impl TryFrom<u16> for ComponentType {
    type Error = u16;
    fn try_from(v: u16) -> Result<Self, u16> {
        Ok(match v {
            0 => ComponentType::SecurityInfo,
            1 => ComponentType::ServiceInfo,
            2 => ComponentType::RouterIdentityInfo,
            3 => ComponentType::WebCacheIdentityInfo,
            4 => ComponentType::RouterViewInfo,
            5 => ComponentType::WebCacheViewInfo,
            6 => ComponentType::AssignmentInfo,
            7 => ComponentType::RouterQueryInfo,
            8 => ComponentType::CapabilitiesInfo,
            13 => ComponentType::AlternateAssignment,
            14 => ComponentType::AssignmentMap,
            15 => ComponentType::CommandExtension,
            16 => ComponentType::AlternateAssignmentMap,
            17 => ComponentType::AddressTable,
            other => return Err(other),
        })
    }
}

mod field {
    use crate::field::Field;
    pub const TYPE: Field = 0..2;
    pub const LENGTH: Field = 2..4;
    pub const BODY: usize = 4;
}

view! {
    /// Zero-copy view of one component (header + body).
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the header and the declared body length fit in the buffer.
    ///
    /// # Errors
    /// `Truncated` for a short header, `LengthMismatch` if the body runs past the buffer.
    pub fn check_len(&self) -> Result<(), Error> {
        let have = self.buffer.as_ref().len();
        check_header(Layer::Component, HEADER_LEN, have)?;
        let declared = usize::from(self.length());
        if declared > have - HEADER_LEN {
            return Err(Error::LengthMismatch {
                component: self.kind(),
                declared: self.length(),
                remaining: sat_u16(have - HEADER_LEN),
                offset: 0,
            });
        }
        Ok(())
    }

    /// Raw component type code.
    pub fn kind(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::TYPE.start], b[field::TYPE.start + 1]])
    }

    /// Declared body length.
    pub fn length(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::LENGTH.start], b[field::LENGTH.start + 1]])
    }

    /// The body (declared length octets).
    pub fn body(&self) -> &[u8] {
        let end = field::BODY + usize::from(self.length());
        &self.buffer.as_ref()[field::BODY..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the component type.
    pub fn set_kind(&mut self, v: u16) {
        self.buffer.as_mut()[field::TYPE].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the body length.
    pub fn set_length(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Mutable body (declared length octets).
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = field::BODY + usize::from(self.length());
        &mut self.buffer.as_mut()[field::BODY..end]
    }
}

/// One framed component found inside a message, as yielded by [`Components`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component<'a> {
    /// Raw type code.
    pub kind: u16,
    /// Absolute offset of the component header in the message.
    pub offset: usize,
    /// The body (declared length octets).
    pub body: &'a [u8],
}

impl<'a> Component<'a> {
    /// The type, if it is one this crate knows.
    pub fn component_type(&self) -> Option<ComponentType> {
        ComponentType::try_from(self.kind).ok()
    }

    /// Absolute offset of the body.
    pub const fn body_offset(&self) -> usize {
        self.offset + HEADER_LEN
    }

    /// A cursor over the body reporting errors in `layer`.
    pub fn cursor(&self, layer: Layer) -> Cursor<'a> {
        Cursor::new(self.body, self.body_offset(), layer)
    }
}

/// Iterator over the components of a message body; yields an error and stops at the first
/// component whose header or declared body runs past the end.
#[derive(Debug, Clone)]
pub struct Components<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    done: bool,
}

impl<'a> Components<'a> {
    /// Iterates the components in `body`, whose first octet is at absolute offset `base`.
    pub const fn new(body: &'a [u8], base: usize) -> Self {
        Components {
            buf: body,
            pos: 0,
            base,
            done: false,
        }
    }
}

impl<'a> Iterator for Components<'a> {
    type Item = Result<Component<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let offset = self.base + self.pos;
        let rest = &self.buf[self.pos..];
        let p = Packet::new_unchecked(rest);
        if let Err(e) = p.check_len() {
            self.done = true;
            return Some(Err(match e {
                Error::Truncated { need, have, .. } => Error::Truncated {
                    layer: Layer::Component,
                    field: FieldId::Header,
                    index: 0,
                    need,
                    have,
                    offset: sat_u32(offset),
                },
                Error::LengthMismatch {
                    component,
                    declared,
                    remaining,
                    ..
                } => Error::LengthMismatch {
                    component,
                    declared,
                    remaining,
                    offset: sat_u32(offset),
                },
                other => other,
            }));
        }
        let body = &rest[HEADER_LEN..HEADER_LEN + usize::from(p.length())];
        self.pos += HEADER_LEN + body.len();
        Some(Ok(Component {
            kind: p.kind(),
            offset,
            body,
        }))
    }
}

/// Common behaviour of the owned component representations.
///
/// `parse` accepts trailing padding inside a component (docs/protocol.md §1.3) and ignores it; `emit`
/// writes the canonical form with no padding.
pub trait ComponentRepr: Sized {
    /// The component type code.
    const TYPE: ComponentType;

    /// Parses the body; `c` covers exactly the declared body.
    ///
    /// # Errors
    /// Any malformed or truncated field.
    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error>;

    /// Length of the body `emit_body` writes.
    fn body_len(&self) -> usize;

    /// Writes the body (exactly `body_len()` octets).
    fn emit_body(&self, w: &mut CursorMut<'_>);

    /// Parses a framed component.
    ///
    /// # Errors
    /// `Invalid { field: ComponentType }` if `component` has another type; otherwise as
    /// [`ComponentRepr::parse_body`].
    fn parse(component: &Component<'_>) -> Result<Self, Error> {
        let layer = Self::TYPE.layer();
        if component.kind != Self::TYPE as u16 {
            return Err(Error::Invalid {
                layer,
                field: FieldId::ComponentType,
                index: 0,
                offset: sat_u32(component.offset),
                value: u32::from(component.kind),
            });
        }
        Self::parse_body(&mut component.cursor(layer))
    }

    /// Length of the framed component (header + body).
    fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Writes the framed component into `buf`, which must be exactly `buffer_len()` octets.
    ///
    /// # Errors
    /// `BufferLength` if `buf` has the wrong size, `TooLong` if the body exceeds 65535 octets.
    fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let len = self.buffer_len();
        if buf.len() != len {
            return Err(Error::BufferLength {
                need: sat_u32(len),
                have: sat_u32(buf.len()),
            });
        }
        let body = u16::try_from(self.body_len()).map_err(|_| Error::TooLong {
            layer: Self::TYPE.layer(),
            len: sat_u32(len),
        })?;
        let mut w = CursorMut::new(buf);
        w.u16(Self::TYPE as u16);
        w.u16(body);
        self.emit_body(&mut w);
        debug_assert_eq!(
            w.remaining(),
            0,
            "{:?} body_len disagrees with emit_body",
            Self::TYPE
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterator_stops_at_overrun() {
        let body = [0, 1, 0, 4, 1, 2, 3, 4, 0, 2, 0, 8, 9, 9];
        let mut it = Components::new(&body, 8);
        let c = it.next().unwrap().unwrap();
        assert_eq!((c.kind, c.offset, c.body), (1, 8, &[1u8, 2, 3, 4][..]));
        assert_eq!(
            it.next().unwrap().unwrap_err(),
            Error::LengthMismatch {
                component: 2,
                declared: 8,
                remaining: 2,
                offset: 16
            }
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn iterator_reports_short_header() {
        let body = [0, 1, 0];
        let mut it = Components::new(&body, 8);
        assert!(matches!(
            it.next(),
            Some(Err(Error::Truncated {
                layer: Layer::Component,
                need: 4,
                have: 3,
                offset: 8,
                ..
            }))
        ));
        assert!(it.next().is_none());
    }

    #[test]
    fn component_view_setters() {
        let mut buf = [0u8; 8];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_kind(17);
        p.set_length(4);
        p.body_mut().copy_from_slice(&[1, 2, 3, 4]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.kind(), p.length(), p.body()),
            (17, 4, &[1u8, 2, 3, 4][..])
        );
        assert!(Packet::new_checked(&buf[..7]).is_err());
    }
}
