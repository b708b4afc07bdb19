//! Mask/Value Set lists (docs/protocol.md §2.17) and Alternate Mask/Value Set lists (§2.18).
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
        Self::read_fields(
            &mut c.sub(Self::LEN, FieldId::MaskElement)?,
            FieldId::MaskElement,
        )
    }

    /// Reads the four fields, which also start a Value Element, reporting errors as `field`.
    fn read_fields(c: &mut Cursor<'_>, field: FieldId) -> Result<Self, Error> {
        Ok(MaskElement {
            src_addr: Addr(c.u32(field)?),
            dst_addr: Addr(c.u32(field)?),
            src_port: c.u16(field)?,
            dst_port: c.u16(field)?,
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
        let m = MaskElement::read_fields(&mut v, FieldId::ValueElement)?;
        Ok(ValueElement {
            src_addr: m.src_addr,
            dst_addr: m.dst_addr,
            src_port: m.src_port,
            dst_port: m.dst_port,
            cache: Addr(v.u32(FieldId::ValueElement)?),
        })
    }

    /// Writes one element: the Mask Element layout, then the cache.
    pub fn write(&self, w: &mut CursorMut<'_>) {
        MaskElement {
            src_addr: self.src_addr,
            dst_addr: self.dst_addr,
            src_port: self.src_port,
            dst_port: self.dst_port,
        }
        .write(w);
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
        read_sets(c, |c| {
            Ok(MaskValueSet {
                mask: MaskElement::read(c)?,
                values: c.list(
                    FieldId::ValueCount,
                    FieldId::ValueElement,
                    ValueElement::LEN,
                    ValueElement::read,
                )?,
            })
        })
    }

    /// Wire length of a list (count + sets).
    pub fn list_len(sets: &[Self]) -> usize {
        4 + sets.iter().map(Self::wire_len).sum::<usize>()
    }

    /// Writes a list (count + sets).
    pub fn write_list(sets: &[Self], w: &mut CursorMut<'_>) {
        w.list(sets, |s, w| {
            s.mask.write(w);
            w.list(&s.values, ValueElement::write);
        });
    }
}

/// Reads a (Alternate) Mask/Value Set List: the set count, then each set with `set`, which starts
/// with the set's Mask Element (so every set is at least 16 octets: mask and a count).
fn read_sets<T>(
    c: &mut Cursor<'_>,
    set: impl FnMut(&mut Cursor<'_>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    c.list(
        FieldId::MaskSetCount,
        FieldId::MaskElement,
        MaskElement::LEN + 4,
        set,
    )
}

/// Web-Cache Value Element (2.01): a cache and the VSNs it owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CacheValueElement {
    /// Cache address.
    pub cache: Addr,
    /// Value sequence numbers (docs/protocol.md §3.4).
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
        read_sets(c, |c| {
            Ok(AltMaskValueSet {
                mask: MaskElement::read(c)?,
                caches: c.list(FieldId::ValueCount, FieldId::CacheValueElement, 8, |c| {
                    let cache = Addr(c.u32(FieldId::CacheValueElement)?);
                    // VSNs keep the index of their Web-Cache Value Element.
                    let k = c.count(FieldId::VsnCount, FieldId::Vsn, 4)?;
                    let vsns = (0..k)
                        .map(|_| c.u32(FieldId::Vsn))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(CacheValueElement { cache, vsns })
                })?,
            })
        })
    }

    /// Wire length of a list (count + sets).
    pub fn list_len(sets: &[Self]) -> usize {
        4 + sets.iter().map(Self::wire_len).sum::<usize>()
    }

    /// Writes a list (count + sets).
    pub fn write_list(sets: &[Self], w: &mut CursorMut<'_>) {
        w.list(sets, |s, w| {
            s.mask.write(w);
            w.list(&s.caches, |c, w| {
                w.u32(c.cache.0);
                w.list(&c.vsns, |v, w| w.u32(*v));
            });
        });
    }
}
