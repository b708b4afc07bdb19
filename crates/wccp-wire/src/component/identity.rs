//! Router Identity Info (type 2, docs/protocol.md §2.4), Web-Cache Identity Info (type 3, §2.5) and
//! the Web-Cache Identity Element shared with Router View Info.
//!
//! ```text
//! Router Identity Info:  Router ID (4) | Receive ID (4) | Sent To (4) | N (4) | N x address
//! Web-Cache Identity Element:
//!   cache address (4) | hash revision (2) | flags (2) | assignment data (by flags type bits)
//! ```

use alloc::vec::Vec;
use core::fmt;

use super::mask::{AltMaskValueSet, MaskValueSet};
use super::{ComponentRepr, ComponentType};
use crate::addr::Addr;
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// Router Identity Element: router address + Receive ID (8 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RouterIdElement {
    /// Router ID address.
    pub addr: Addr,
    /// Receive ID.
    pub receive_id: u32,
}

impl RouterIdElement {
    /// Wire length.
    pub const LEN: usize = 8;

    /// Reads one element.
    ///
    /// # Errors
    /// `Truncated`.
    pub fn read(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let mut e = c.sub(Self::LEN, FieldId::RouterElement)?;
        Ok(RouterIdElement {
            addr: Addr(e.u32(FieldId::RouterElement)?),
            receive_id: e.u32(FieldId::RouterElement)?,
        })
    }

    /// Writes one element.
    pub fn write(&self, w: &mut CursorMut<'_>) {
        w.u32(self.addr.0);
        w.u32(self.receive_id);
    }
}

/// Router Identity Info component (I_SEE_YOU).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RouterIdentityInfo {
    /// Router ID and the Receive ID of this message.
    pub router: RouterIdElement,
    /// Where the target cache sent its HERE_I_AM.
    pub sent_to: Addr,
    /// Caches this message is directed to.
    pub received_from: Vec<Addr>,
}

pub(crate) fn read_addrs(
    c: &mut Cursor<'_>,
    count_field: FieldId,
    elem_field: FieldId,
) -> Result<Vec<Addr>, Error> {
    c.list(count_field, elem_field, 4, |c| Ok(Addr(c.u32(elem_field)?)))
}

pub(crate) fn write_addrs(addrs: &[Addr], w: &mut CursorMut<'_>) {
    w.list(addrs, |a, w| w.u32(a.0));
}

impl ComponentRepr for RouterIdentityInfo {
    const TYPE: ComponentType = ComponentType::RouterIdentityInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        Ok(RouterIdentityInfo {
            router: RouterIdElement::read(c)?,
            sent_to: Addr(c.u32(FieldId::SentTo)?),
            received_from: read_addrs(c, FieldId::ReceivedFromCount, FieldId::ReceivedFrom)?,
        })
    }

    fn body_len(&self) -> usize {
        RouterIdElement::LEN + 4 + 4 + 4 * self.received_from.len()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        self.router.write(w);
        w.u32(self.sent_to.0);
        write_addrs(&self.received_from, w);
    }
}

/// Flags of a Web-Cache Identity Element **without the type bits** (0x0006), which this crate
/// derives from [`AssignmentData`]. Values as observed on the wire (docs/protocol.md §2.5, A2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IdentityFlags(pub u16);

impl IdentityFlags {
    /// No flags.
    pub const EMPTY: Self = Self(0);
    /// U: the cache has no assignment; the data that follows is historical.
    pub const UNASSIGNED: Self = Self(0x0001);
    /// Type bits (not stored here; see [`AssignmentData`]).
    pub const TYPE_MASK: u16 = 0x0006;
    /// V (2.01): the header version is the cache's minimum rather than maximum.
    pub const VERSION_MIN: Self = Self(0x0008);

    /// U as Apache Traffic Server encodes it (0x8000, following the draft's MSB-first diagram;
    /// docs/protocol.md ambiguity A2). Kept as a raw bit; see [`IdentityFlags::unassigned_lenient`].
    pub const ATS_UNASSIGNED: Self = Self(0x8000);

    /// Whether U is set.
    pub const fn unassigned(self) -> bool {
        self.0 & Self::UNASSIGNED.0 != 0
    }

    /// Whether U is set either as observed on the wire (0x0001) or as ATS sends it (0x8000).
    pub const fn unassigned_lenient(self) -> bool {
        self.0 & (Self::UNASSIGNED.0 | Self::ATS_UNASSIGNED.0) != 0
    }

    /// Whether V is set.
    pub const fn version_min(self) -> bool {
        self.0 & Self::VERSION_MIN.0 != 0
    }
}

impl fmt::Debug for IdentityFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityFlags({:#06x})", self.0)
    }
}

/// Hash Assignment Data (36 octets).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HashAssignmentData {
    /// 256-bit bucket bitmap ("Bucket Block 0..7"); informational (docs/protocol.md A4).
    pub buckets: [u8; 32],
    /// Assignment weight.
    pub weight: u16,
    /// Assignment status.
    pub status: u16,
}

impl fmt::Debug for HashAssignmentData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashAssignmentData")
            .field("buckets", &format_args!("{:02x?}", &self.buckets))
            .field("weight", &self.weight)
            .field("status", &self.status)
            .finish()
    }
}

impl HashAssignmentData {
    /// Wire length.
    pub const LEN: usize = 36;

    fn read(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let mut c = c.sub(Self::LEN, FieldId::AssignmentData)?;
        Ok(HashAssignmentData {
            buckets: c.array(FieldId::BucketBlock)?,
            weight: c.u16(FieldId::WeightStatus)?,
            status: c.u16(FieldId::WeightStatus)?,
        })
    }

    fn write(&self, w: &mut CursorMut<'_>) {
        w.bytes(&self.buckets);
        w.u16(self.weight);
        w.u16(self.status);
    }
}

/// Mask Assignment Data: Mask/Value Set List + weight + status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MaskAssignmentData {
    /// Mask/value sets (Cisco reports assigned caches with 0 sets).
    pub sets: Vec<MaskValueSet>,
    /// Assignment weight.
    pub weight: u16,
    /// Assignment status.
    pub status: u16,
}

impl MaskAssignmentData {
    fn read(c: &mut Cursor<'_>) -> Result<Self, Error> {
        Ok(MaskAssignmentData {
            sets: MaskValueSet::read_list(c)?,
            weight: c.u16(FieldId::WeightStatus)?,
            status: c.u16(FieldId::WeightStatus)?,
        })
    }

    fn wire_len(&self) -> usize {
        MaskValueSet::list_len(&self.sets) + 4
    }

    fn write(&self, w: &mut CursorMut<'_>) {
        MaskValueSet::write_list(&self.sets, w);
        w.u16(self.weight);
        w.u16(self.status);
    }
}

/// Assignment data of a Web-Cache Identity Element, selected by the type bits (flags 0x0006).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AssignmentData {
    /// Type 0: hash data.
    Hash(HashAssignmentData),
    /// Type 1: mask data.
    Mask(MaskAssignmentData),
    /// Type 2 (2.01): no data.
    None,
    /// Type 3 (2.01): extended data `type(2) length(2) data`, kept raw; decode with
    /// [`AssignmentData::decode_extended`].
    Extended {
        /// Extended data type (0 hash, 1 mask, 2 alternate mask, 3 weight/status only).
        kind: u16,
        /// The data octets (`length` of them).
        data: Vec<u8>,
    },
}

/// Decoded extended assignment data (docs/protocol.md §2.5 (d)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExtendedData {
    /// Hash data.
    Hash(HashAssignmentData),
    /// Mask data.
    Mask(MaskAssignmentData),
    /// Alternate mask data.
    AltMask {
        /// Alternate mask/value sets.
        sets: Vec<AltMaskValueSet>,
        /// Weight.
        weight: u16,
        /// Status.
        status: u16,
    },
    /// Weight and status only.
    WeightStatus {
        /// Weight.
        weight: u16,
        /// Status.
        status: u16,
    },
}

impl AssignmentData {
    /// The type bits value (0..=3).
    pub const fn type_bits(&self) -> u16 {
        match self {
            AssignmentData::Hash(_) => 0,
            AssignmentData::Mask(_) => 1,
            AssignmentData::None => 2,
            AssignmentData::Extended { .. } => 3,
        }
    }

    /// Weight and status, when the data carries them directly.
    pub fn weight_status(&self) -> Option<(u16, u16)> {
        match self {
            AssignmentData::Hash(h) => Some((h.weight, h.status)),
            AssignmentData::Mask(m) => Some((m.weight, m.status)),
            _ => None,
        }
    }

    /// Decodes extended data. `Ok(None)` if `self` is not extended or its kind is unknown.
    ///
    /// # Errors
    /// Malformed extended data.
    pub fn decode_extended(&self) -> Result<Option<ExtendedData>, Error> {
        let AssignmentData::Extended { kind, data } = self else {
            return Ok(None);
        };
        let mut c = Cursor::new(data, 0, crate::error::Layer::WebCacheIdentityInfo);
        Ok(Some(match kind {
            0 => ExtendedData::Hash(HashAssignmentData::read(&mut c)?),
            1 => ExtendedData::Mask(MaskAssignmentData::read(&mut c)?),
            2 => ExtendedData::AltMask {
                sets: AltMaskValueSet::read_list(&mut c)?,
                weight: c.u16(FieldId::WeightStatus)?,
                status: c.u16(FieldId::WeightStatus)?,
            },
            3 => ExtendedData::WeightStatus {
                weight: c.u16(FieldId::WeightStatus)?,
                status: c.u16(FieldId::WeightStatus)?,
            },
            _ => return Ok(None),
        }))
    }

    fn wire_len(&self) -> usize {
        match self {
            AssignmentData::Hash(_) => HashAssignmentData::LEN,
            AssignmentData::Mask(m) => m.wire_len(),
            AssignmentData::None => 0,
            AssignmentData::Extended { data, .. } => 4 + data.len(),
        }
    }
}

/// Web-Cache Identity Element (and, as [`WebCacheIdentityInfo`], the type-3 component).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebCacheIdentity {
    /// Cache address.
    pub addr: Addr,
    /// Hash revision (must be 0).
    pub hash_revision: u16,
    /// Flags without the type bits.
    pub flags: IdentityFlags,
    /// Assignment data (determines the type bits).
    pub data: AssignmentData,
}

/// The Web-Cache Identity Info component body is exactly one [`WebCacheIdentity`] element.
pub type WebCacheIdentityInfo = WebCacheIdentity;

impl WebCacheIdentity {
    /// Reads one element; its length is determined by its type bits.
    ///
    /// # Errors
    /// `Truncated` for any short field.
    pub fn read(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let addr = Addr(c.u32(FieldId::CacheAddress)?);
        let hash_revision = c.u16(FieldId::Header)?;
        let raw_flags = c.u16(FieldId::Flags)?;
        let data = match (raw_flags & IdentityFlags::TYPE_MASK) >> 1 {
            0 => AssignmentData::Hash(HashAssignmentData::read(c)?),
            1 => AssignmentData::Mask(MaskAssignmentData::read(c)?),
            2 => AssignmentData::None,
            _ => {
                let kind = c.u16(FieldId::ExtendedData)?;
                let len = c.u16(FieldId::ExtendedData)?;
                let data = c.bytes(usize::from(len), FieldId::ExtendedData)?.to_vec();
                AssignmentData::Extended { kind, data }
            }
        };
        Ok(WebCacheIdentity {
            addr,
            hash_revision,
            flags: IdentityFlags(raw_flags & !IdentityFlags::TYPE_MASK),
            data,
        })
    }

    /// Wire length of the element.
    pub fn wire_len(&self) -> usize {
        8 + self.data.wire_len()
    }

    /// The flags word as sent (stored flags plus type bits).
    pub fn wire_flags(&self) -> u16 {
        (self.flags.0 & !IdentityFlags::TYPE_MASK) | (self.data.type_bits() << 1)
    }

    /// Writes the element.
    pub fn write(&self, w: &mut CursorMut<'_>) {
        w.u32(self.addr.0);
        w.u16(self.hash_revision);
        w.u16(self.wire_flags());
        match &self.data {
            AssignmentData::Hash(h) => h.write(w),
            AssignmentData::Mask(m) => m.write(w),
            AssignmentData::None => {}
            AssignmentData::Extended { kind, data } => {
                w.u16(*kind);
                w.u16(u16::try_from(data.len()).unwrap_or(u16::MAX));
                w.bytes(data);
            }
        }
    }
}

impl ComponentRepr for WebCacheIdentity {
    const TYPE: ComponentType = ComponentType::WebCacheIdentityInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        Self::read(c)
    }

    fn body_len(&self) -> usize {
        self.wire_len()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        self.write(w);
    }
}
