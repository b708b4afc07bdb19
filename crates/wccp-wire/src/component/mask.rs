//! Mask/Value Set lists (PROTOCOL.md §2.17) and Alternate Mask/Value Set lists (§2.18).
//!
//! ```text
//! List:            M (4) | M x Set Element
//! Set Element:     Mask Element (12) | N (4) | N x Value Element (16)
//! Mask Element:    src addr mask (4) | dst addr mask (4) | src port mask (2) | dst port mask (2)
//! Value Element:   src addr (4) | dst addr (4) | src port (2) | dst port (2) | cache addr (4)
//! Alt Set Element: Mask Element (12) | N (4) | N x Web-Cache Value Element
//! WC Value Elem.:  cache addr (4) | K (4) | K x VSN (4)
//! ```

use alloc::vec::Vec;

use crate::addr::Addr;
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// Mask Element (12 octets). Address masks are address elements (table indices with an Address
/// Table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MaskElement {
    /// Source address mask.
    pub src_addr: Addr,
    /// Destination address mask.
    pub dst_addr: Addr,
    /// Source port mask.
    pub src_port: u16,
    /// Destination port mask.
    pub dst_port: u16,
}

impl MaskElement {
    /// Wire length.
    pub const LEN: usize = 12;

    /// Reads one element.
    ///
    /// # Errors
    /// `Truncated`.
    pub fn read(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let mut m = c.sub(Self::LEN, FieldId::MaskElement)?;
        Ok(MaskElement {
            src_addr: Addr(m.u32(FieldId::MaskElement)?),
            dst_addr: Addr(m.u32(FieldId::MaskElement)?),
            src_port: m.u16(FieldId::MaskElement)?,
            dst_port: m.u16(FieldId::MaskElement)?,
        })
    }

    /// Writes one element.
    pub fn write(&self, w: &mut CursorMut<'_>) {
        w.u32(self.src_addr.0);
        w.u32(self.dst_addr.0);
        w.u16(self.src_port);
        w.u16(self.dst_port);
    }
}

/// Value Element (16 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ValueElement {
    /// Source address value.
    pub src_addr: Addr,
    /// Destination address value.
    pub dst_addr: Addr,
    /// Source port value.
    pub src_port: u16,
    /// Destination port value.
    pub dst_port: u16,
    /// Cache that receives matching traffic.
    pub cache: Addr,
}

impl ValueElement {
    /// Wire length.
    pub const LEN: usize = 16;

    /// Reads one element.
    ///
    /// # Errors
    /// `Truncated`.
    pub fn read(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let mut v = c.sub(Self::LEN, FieldId::ValueElement)?;
        Ok(ValueElement {
            src_addr: Addr(v.u32(FieldId::ValueElement)?),
            dst_addr: Addr(v.u32(FieldId::ValueElement)?),
            src_port: v.u16(FieldId::ValueElement)?,
            dst_port: v.u16(FieldId::ValueElement)?,
            cache: Addr(v.u32(FieldId::ValueElement)?),
        })
    }

    /// Writes one element.
    pub fn write(&self, w: &mut CursorMut<'_>) {
        w.u32(self.src_addr.0);
        w.u32(self.dst_addr.0);
        w.u16(self.src_port);
        w.u16(self.dst_port);
        w.u32(self.cache.0);
    }
}

/// Mask/Value Set Element.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MaskValueSet {
    /// The mask.
    pub mask: MaskElement,
    /// Values, matched in order.
    pub values: Vec<ValueElement>,
}

impl MaskValueSet {
    /// Wire length.
    pub fn wire_len(&self) -> usize {
        MaskElement::LEN + 4 + ValueElement::LEN * self.values.len()
    }

    /// Reads a whole Mask/Value Set List (count + sets).
    ///
    /// # Errors
    /// `Truncated` for any short field or hostile count.
    pub fn read_list(c: &mut Cursor<'_>) -> Result<Vec<Self>, Error> {
        let m = c.count(
            FieldId::MaskSetCount,
            FieldId::MaskElement,
            MaskElement::LEN + 4,
        )?;
        let mut sets = Vec::with_capacity(m);
        for i in 0..m {
            c.set_index(i + 1);
            let mask = MaskElement::read(c)?;
            let n = c.count(
                FieldId::ValueCount,
                FieldId::ValueElement,
                ValueElement::LEN,
            )?;
            let mut values = Vec::with_capacity(n);
            for j in 0..n {
                c.set_index(j + 1);
                values.push(ValueElement::read(c)?);
            }
            sets.push(MaskValueSet { mask, values });
        }
        c.set_index(0);
        Ok(sets)
    }

    /// Wire length of a list (count + sets).
    pub fn list_len(sets: &[Self]) -> usize {
        4 + sets.iter().map(Self::wire_len).sum::<usize>()
    }

    /// Writes a list (count + sets).
    pub fn write_list(sets: &[Self], w: &mut CursorMut<'_>) {
        w.count(sets.len());
        for s in sets {
            s.mask.write(w);
            w.count(s.values.len());
            for v in &s.values {
                v.write(w);
            }
        }
    }
}

/// Web-Cache Value Element (2.01): a cache and the VSNs it owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CacheValueElement {
    /// Cache address.
    pub cache: Addr,
    /// Value sequence numbers (PROTOCOL.md §3.4).
    pub vsns: Vec<u32>,
}

/// Alternate Mask/Value Set Element (2.01).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AltMaskValueSet {
    /// The mask.
    pub mask: MaskElement,
    /// Caches with their VSNs.
    pub caches: Vec<CacheValueElement>,
}

impl AltMaskValueSet {
    /// Wire length.
    pub fn wire_len(&self) -> usize {
        MaskElement::LEN
            + 4
            + self
                .caches
                .iter()
                .map(|c| 8 + 4 * c.vsns.len())
                .sum::<usize>()
    }

    /// Reads a whole Alternate Mask/Value Set List (count + sets).
    ///
    /// # Errors
    /// `Truncated` for any short field or hostile count.
    pub fn read_list(c: &mut Cursor<'_>) -> Result<Vec<Self>, Error> {
        let m = c.count(
            FieldId::MaskSetCount,
            FieldId::MaskElement,
            MaskElement::LEN + 4,
        )?;
        let mut sets = Vec::with_capacity(m);
        for i in 0..m {
            c.set_index(i + 1);
            let mask = MaskElement::read(c)?;
            let n = c.count(FieldId::ValueCount, FieldId::CacheValueElement, 8)?;
            let mut caches = Vec::with_capacity(n);
            for j in 0..n {
                c.set_index(j + 1);
                let cache = Addr(c.u32(FieldId::CacheValueElement)?);
                let k = c.count(FieldId::VsnCount, FieldId::Vsn, 4)?;
                let mut vsns = Vec::with_capacity(k);
                for _ in 0..k {
                    vsns.push(c.u32(FieldId::Vsn)?);
                }
                caches.push(CacheValueElement { cache, vsns });
            }
            sets.push(AltMaskValueSet { mask, caches });
        }
        c.set_index(0);
        Ok(sets)
    }

    /// Wire length of a list (count + sets).
    pub fn list_len(sets: &[Self]) -> usize {
        4 + sets.iter().map(Self::wire_len).sum::<usize>()
    }

    /// Writes a list (count + sets).
    pub fn write_list(sets: &[Self], w: &mut CursorMut<'_>) {
        w.count(sets.len());
        for s in sets {
            s.mask.write(w);
            w.count(s.caches.len());
            for c in &s.caches {
                w.u32(c.cache.0);
                w.count(c.vsns.len());
                for v in &c.vsns {
                    w.u32(*v);
                }
            }
        }
    }
}
