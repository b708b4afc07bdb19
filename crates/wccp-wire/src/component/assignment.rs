//! Assignment components: Assignment Info (type 6, docs/protocol.md §2.8), Alternate Assignment (13,
//! §2.11), Assignment Map (14, §2.12), Alternate Assignment Map (16, §2.14).
//!
//! ```text
//! Assignment Info:   key addr (4) | key change (4) | NR (4) | NR x Router Assignment (12)
//!                    | NC (4) | NC x cache addr | 256 x bucket octet
//! Alt Assignment:    type (2) | length (2) | key (8) | NR (4) | NR x Router Assignment | body
//! Assignment Map:    Mask/Value Set List
//! Alt Assign. Map:   type (2) | length (2) | body
//! ```

use alloc::vec::Vec;
use core::fmt;

use super::identity::{read_addrs, write_addrs};
use super::mask::{AltMaskValueSet, MaskValueSet};
use super::{ComponentRepr, ComponentType};
use crate::addr::Addr;
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// Number of hash buckets.
pub const BUCKETS: usize = 256;
/// Bucket octet meaning "unassigned" (forward normally).
pub const BUCKET_UNASSIGNED: u8 = 0xFF;
/// Bucket octet flag: use the alternate hash.
pub const BUCKET_ALT: u8 = 0x80;
/// Bucket octet mask of the cache index.
pub const BUCKET_INDEX_MASK: u8 = 0x7F;

/// Assignment Key: designated cache address + key change number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AssignmentKey {
    /// Designated cache address.
    pub addr: Addr,
    /// Key change number.
    pub change_number: u32,
}

impl AssignmentKey {
    /// Wire length.
    pub const LEN: usize = 8;

    /// Reads a key.
    ///
    /// # Errors
    /// `Truncated`.
    pub fn read(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let mut k = c.sub(Self::LEN, FieldId::AssignmentKey)?;
        Ok(AssignmentKey {
            addr: Addr(k.u32(FieldId::AssignmentKey)?),
            change_number: k.u32(FieldId::AssignmentKey)?,
        })
    }

    /// Writes a key.
    pub fn write(&self, w: &mut CursorMut<'_>) {
        w.u32(self.addr.0);
        w.u32(self.change_number);
    }
}

/// Router Assignment Element (12 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RouterAssignment {
    /// Router address.
    pub addr: Addr,
    /// Receive ID last heard from that router.
    pub receive_id: u32,
    /// Member change number last heard from that router.
    pub change_number: u32,
}

impl RouterAssignment {
    /// Wire length.
    pub const LEN: usize = 12;

    fn read_list(c: &mut Cursor<'_>) -> Result<Vec<Self>, Error> {
        c.list(
            FieldId::RouterCount,
            FieldId::RouterAssignment,
            Self::LEN,
            |c| {
                let mut e = c.sub(Self::LEN, FieldId::RouterAssignment)?;
                Ok(RouterAssignment {
                    addr: Addr(e.u32(FieldId::RouterAssignment)?),
                    receive_id: e.u32(FieldId::RouterAssignment)?,
                    change_number: e.u32(FieldId::RouterAssignment)?,
                })
            },
        )
    }

    fn write_list(list: &[Self], w: &mut CursorMut<'_>) {
        w.count(list.len());
        for r in list {
            w.u32(r.addr.0);
            w.u32(r.receive_id);
            w.u32(r.change_number);
        }
    }
}

fn read_buckets(c: &mut Cursor<'_>) -> Result<[u8; BUCKETS], Error> {
    c.array(FieldId::Buckets)
}

struct Buckets<'a>(&'a [u8; BUCKETS]);

impl fmt::Debug for Buckets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x?}", &self.0[..])
    }
}

/// Cache list + 256 bucket octets (the hash body of Assignment Info, Alternate Assignment and
/// Alternate Assignment Map).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HashBuckets {
    /// Cache addresses; position = cache index.
    pub caches: Vec<Addr>,
    /// Bucket octets: low 7 bits cache index, 0x80 alternate, 0xFF unassigned.
    pub buckets: [u8; BUCKETS],
}

impl Default for HashBuckets {
    fn default() -> Self {
        HashBuckets {
            caches: Vec::new(),
            buckets: [BUCKET_UNASSIGNED; BUCKETS],
        }
    }
}

impl fmt::Debug for HashBuckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashBuckets")
            .field("caches", &self.caches)
            .field("buckets", &Buckets(&self.buckets))
            .finish()
    }
}

impl HashBuckets {
    fn read(c: &mut Cursor<'_>) -> Result<Self, Error> {
        Ok(HashBuckets {
            caches: read_addrs(c, FieldId::CacheCount, FieldId::CacheAddress)?,
            buckets: read_buckets(c)?,
        })
    }

    fn wire_len(&self) -> usize {
        4 + 4 * self.caches.len() + BUCKETS
    }

    fn write(&self, w: &mut CursorMut<'_>) {
        write_addrs(&self.caches, w);
        w.bytes(&self.buckets);
    }
}

/// Assignment Info component (type 6): hash assignment in REDIRECT_ASSIGN.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct AssignmentInfo {
    /// Assignment key.
    pub key: AssignmentKey,
    /// Router assignment elements.
    pub routers: Vec<RouterAssignment>,
    /// Caches (position = index used in the bucket octets) and the bucket table.
    pub hash: HashBuckets,
}

impl fmt::Debug for AssignmentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssignmentInfo")
            .field("key", &self.key)
            .field("routers", &self.routers)
            .field("caches", &self.hash.caches)
            .field("buckets", &Buckets(&self.hash.buckets))
            .finish()
    }
}

impl ComponentRepr for AssignmentInfo {
    const TYPE: ComponentType = ComponentType::AssignmentInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        Ok(AssignmentInfo {
            key: AssignmentKey::read(c)?,
            routers: RouterAssignment::read_list(c)?,
            hash: HashBuckets::read(c)?,
        })
    }

    fn body_len(&self) -> usize {
        AssignmentKey::LEN + 4 + RouterAssignment::LEN * self.routers.len() + self.hash.wire_len()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        self.key.write(w);
        RouterAssignment::write_list(&self.routers, w);
        self.hash.write(w);
    }
}

/// Assignment body selected by an assignment type (0 hash, 1 mask, 2 alternate mask).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[allow(
    clippy::large_enum_variant,
    reason = "control-plane value; boxing would only add noise"
)]
pub enum AltAssignmentBody {
    /// Type 0: cache list + bucket table.
    Hash(HashBuckets),
    /// Type 1: Mask/Value Set List.
    Mask(Vec<MaskValueSet>),
    /// Type 2 (2.01): Alternate Mask/Value Set List.
    AltMask(Vec<AltMaskValueSet>),
    /// Any other type, kept raw.
    Unknown {
        /// Assignment type.
        kind: u16,
        /// Body octets.
        data: Vec<u8>,
    },
}

impl AltAssignmentBody {
    /// The assignment type code.
    pub fn kind(&self) -> u16 {
        match self {
            AltAssignmentBody::Hash(_) => 0,
            AltAssignmentBody::Mask(_) => 1,
            AltAssignmentBody::AltMask(_) => 2,
            AltAssignmentBody::Unknown { kind, .. } => *kind,
        }
    }

    fn read(kind: u16, c: &mut Cursor<'_>) -> Result<Self, Error> {
        Ok(match kind {
            0 => AltAssignmentBody::Hash(HashBuckets::read(c)?),
            1 => AltAssignmentBody::Mask(MaskValueSet::read_list(c)?),
            2 => AltAssignmentBody::AltMask(AltMaskValueSet::read_list(c)?),
            _ => AltAssignmentBody::Unknown {
                kind,
                data: c.rest().to_vec(),
            },
        })
    }

    fn wire_len(&self) -> usize {
        match self {
            AltAssignmentBody::Hash(h) => h.wire_len(),
            AltAssignmentBody::Mask(s) => MaskValueSet::list_len(s),
            AltAssignmentBody::AltMask(s) => AltMaskValueSet::list_len(s),
            AltAssignmentBody::Unknown { data, .. } => data.len(),
        }
    }

    fn write(&self, w: &mut CursorMut<'_>) {
        match self {
            AltAssignmentBody::Hash(h) => h.write(w),
            AltAssignmentBody::Mask(s) => MaskValueSet::write_list(s, w),
            AltAssignmentBody::AltMask(s) => AltMaskValueSet::write_list(s, w),
            AltAssignmentBody::Unknown { data, .. } => w.bytes(data),
        }
    }
}

/// Reads `type(2) length(2)` and returns the type and a sub-cursor over `length` octets.
fn read_typed<'a>(c: &mut Cursor<'a>) -> Result<(u16, Cursor<'a>), Error> {
    let kind = c.u16(FieldId::AssignmentType)?;
    let len = c.u16(FieldId::AssignmentLength)?;
    let sub = c.sub(usize::from(len), FieldId::AssignmentLength)?;
    Ok((kind, sub))
}

/// Alternate Assignment component (type 13) in REDIRECT_ASSIGN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlternateAssignment {
    /// Assignment key.
    pub key: AssignmentKey,
    /// Router assignment elements.
    pub routers: Vec<RouterAssignment>,
    /// The assignment (its type is the assignment type field).
    pub body: AltAssignmentBody,
}

impl ComponentRepr for AlternateAssignment {
    const TYPE: ComponentType = ComponentType::AlternateAssignment;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let (kind, mut s) = read_typed(c)?;
        Ok(AlternateAssignment {
            key: AssignmentKey::read(&mut s)?,
            routers: RouterAssignment::read_list(&mut s)?,
            body: AltAssignmentBody::read(kind, &mut s)?,
        })
    }

    fn body_len(&self) -> usize {
        4 + AssignmentKey::LEN
            + 4
            + RouterAssignment::LEN * self.routers.len()
            + self.body.wire_len()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        w.u16(self.body.kind());
        w.u16(u16::try_from(self.body_len() - 4).unwrap_or(u16::MAX));
        self.key.write(w);
        RouterAssignment::write_list(&self.routers, w);
        self.body.write(w);
    }
}

/// Assignment Map component (type 14) in I_SEE_YOU: the active mask assignment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AssignmentMap {
    /// Mask/value sets.
    pub sets: Vec<MaskValueSet>,
}

impl ComponentRepr for AssignmentMap {
    const TYPE: ComponentType = ComponentType::AssignmentMap;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        Ok(AssignmentMap {
            sets: MaskValueSet::read_list(c)?,
        })
    }

    fn body_len(&self) -> usize {
        MaskValueSet::list_len(&self.sets)
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        MaskValueSet::write_list(&self.sets, w);
    }
}

/// Alternate Assignment Map component (type 16, 2.01) in I_SEE_YOU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlternateAssignmentMap {
    /// The assignment.
    pub body: AltAssignmentBody,
}

impl ComponentRepr for AlternateAssignmentMap {
    const TYPE: ComponentType = ComponentType::AlternateAssignmentMap;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let (kind, mut s) = read_typed(c)?;
        Ok(AlternateAssignmentMap {
            body: AltAssignmentBody::read(kind, &mut s)?,
        })
    }

    fn body_len(&self) -> usize {
        4 + self.body.wire_len()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        w.u16(self.body.kind());
        w.u16(u16::try_from(self.body.wire_len()).unwrap_or(u16::MAX));
        self.body.write(w);
    }
}
