//! Octets-style cursors for walking TLV bodies.
//!
//! [`Cursor`] reads big-endian integers and slices and reports every short read as
//! [`Error::Truncated`] naming the layer, field, element index and absolute offset.
//! [`CursorMut`] writes; it is used by the emitters, which always write into a buffer of exactly
//! `buffer_len()` octets, so running out of space is a programmer error and panics.

use alloc::vec::Vec;

use crate::error::{sat_u16, sat_u32, Error, FieldId, Layer};

/// A read cursor over a byte slice with error context.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    layer: Layer,
    index: u16,
}

impl<'a> Cursor<'a> {
    /// A cursor over `buf`, whose first octet is at absolute offset `base`, reporting errors in
    /// `layer`.
    pub const fn new(buf: &'a [u8], base: usize, layer: Layer) -> Self {
        Cursor {
            buf,
            pos: 0,
            base,
            layer,
            index: 0,
        }
    }

    /// Absolute offset of the next octet.
    pub const fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Octets left.
    pub const fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether no octets are left.
    pub const fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The layer errors are reported in.
    pub const fn layer(&self) -> Layer {
        self.layer
    }

    /// Sets the 1-based element index reported in errors (0 = none).
    pub fn set_index(&mut self, index: usize) {
        self.index = sat_u16(index);
    }

    /// A `Truncated` error for `field` needing `need` octets at the current position.
    pub fn truncated(&self, field: FieldId, need: usize) -> Error {
        Error::Truncated {
            layer: self.layer,
            field,
            index: self.index,
            need: sat_u32(need),
            have: sat_u16(self.remaining()),
            offset: sat_u32(self.offset()),
        }
    }

    /// An `Invalid` error for `field` at absolute offset `offset`.
    pub fn invalid_at(&self, field: FieldId, offset: usize, value: u32) -> Error {
        Error::Invalid {
            layer: self.layer,
            field,
            index: self.index,
            offset: sat_u32(offset),
            value,
        }
    }

    /// Takes the next `n` octets.
    ///
    /// # Errors
    /// `Truncated` if fewer than `n` remain.
    pub fn bytes(&mut self, n: usize, field: FieldId) -> Result<&'a [u8], Error> {
        match self.buf.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => Err(self.truncated(field, n)),
        }
    }

    /// Takes the next `N` octets as an array.
    ///
    /// # Errors
    /// `Truncated` if fewer than `N` remain.
    pub fn array<const N: usize>(&mut self, field: FieldId) -> Result<[u8; N], Error> {
        let s = self.bytes(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// Reads one octet.
    ///
    /// # Errors
    /// `Truncated` at the end of input.
    pub fn u8(&mut self, field: FieldId) -> Result<u8, Error> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a big-endian `u16`.
    ///
    /// # Errors
    /// `Truncated` if fewer than 2 octets remain.
    pub fn u16(&mut self, field: FieldId) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian `u32`.
    ///
    /// # Errors
    /// `Truncated` if fewer than 4 octets remain.
    pub fn u32(&mut self, field: FieldId) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Splits off the next `n` octets as a sub-cursor in the same layer.
    ///
    /// # Errors
    /// `Truncated` if fewer than `n` remain.
    pub fn sub(&mut self, n: usize, field: FieldId) -> Result<Cursor<'a>, Error> {
        let base = self.offset();
        let buf = self.bytes(n, field)?;
        Ok(Cursor {
            buf,
            pos: 0,
            base,
            layer: self.layer,
            index: self.index,
        })
    }

    /// Takes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }

    /// Reads one variable-length list element with `f`, reporting a truncation anywhere inside it
    /// as a truncation of the whole element (`field` number `index`, 1-based) at the element's
    /// start offset, with `need` = octets the element needed from its start.
    ///
    /// # Errors
    /// Whatever `f` returns, with `Truncated` rewritten as described.
    pub fn element<T>(
        &mut self,
        field: FieldId,
        index: usize,
        f: impl FnOnce(&mut Cursor<'a>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let start = self.offset();
        let have = self.remaining();
        self.set_index(index);
        f(self).map_err(|e| match e {
            Error::Truncated { need, offset, .. } => Error::Truncated {
                layer: self.layer,
                field,
                index: sat_u16(index),
                need: (offset as usize)
                    .saturating_sub(start)
                    .saturating_add(need as usize)
                    .try_into()
                    .unwrap_or(u32::MAX),
                have: sat_u16(have),
                offset: sat_u32(start),
            },
            other => other,
        })
    }

    /// Reads a 32-bit element count and checks that `count * min_elem_len` octets remain, so that a
    /// hostile count can never cause a large allocation.
    ///
    /// # Errors
    /// `Truncated` for the count itself or for the elements it announces.
    pub fn count(
        &mut self,
        field: FieldId,
        elem_field: FieldId,
        min_elem_len: usize,
    ) -> Result<usize, Error> {
        let n = self.u32(field)? as usize;
        let need = n.saturating_mul(min_elem_len);
        if need > self.remaining() {
            return Err(self.truncated(elem_field, need));
        }
        Ok(n)
    }

    /// Reads a counted list: a 32-bit count (checked as by [`Cursor::count`]), then that many
    /// elements, each read by `f` with its 1-based number as the error index (0 again after the
    /// list).
    ///
    /// # Errors
    /// As [`Cursor::count`], or the first error of `f`.
    pub fn list<T>(
        &mut self,
        field: FieldId,
        elem_field: FieldId,
        min_elem_len: usize,
        mut f: impl FnMut(&mut Cursor<'a>) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let n = self.count(field, elem_field, min_elem_len)?;
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            self.set_index(i + 1);
            v.push(f(self)?);
        }
        self.set_index(0);
        Ok(v)
    }
}

/// A write cursor over a mutable byte slice.
///
/// Writing past the end panics: emitters size their buffer with `buffer_len()` first.
#[derive(Debug)]
pub struct CursorMut<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> CursorMut<'a> {
    /// A cursor writing from the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        CursorMut { buf, pos: 0 }
    }

    /// Octets written so far.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Octets left.
    pub const fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Writes `s`.
    ///
    /// # Panics
    /// If fewer than `s.len()` octets remain.
    pub fn bytes(&mut self, s: &[u8]) {
        self.buf[self.pos..self.pos + s.len()].copy_from_slice(s);
        self.pos += s.len();
    }

    /// Writes one octet.
    ///
    /// # Panics
    /// At the end of the buffer.
    pub fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    /// Writes a big-endian `u16`.
    ///
    /// # Panics
    /// If fewer than 2 octets remain.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    /// Writes a big-endian `u32`.
    ///
    /// # Panics
    /// If fewer than 4 octets remain.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    /// Writes a count (a `usize` that emitters guarantee fits in 32 bits, saturating otherwise).
    ///
    /// # Panics
    /// If fewer than 4 octets remain.
    pub fn count(&mut self, n: usize) {
        self.u32(sat_u32(n));
    }

    /// Writes a counted list: the 32-bit count of `items`, then each item with `f`.
    ///
    /// # Panics
    /// As [`CursorMut::count`] and `f`.
    pub fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&T, &mut Self)) {
        self.count(items.len());
        for item in items {
            f(item, self);
        }
    }

    /// Splits off the next `n` octets as a separate writer.
    ///
    /// # Panics
    /// If fewer than `n` octets remain.
    pub fn sub(&mut self, n: usize) -> CursorMut<'_> {
        let start = self.pos;
        self.pos += n;
        CursorMut {
            buf: &mut self.buf[start..start + n],
            pos: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_offsets() {
        let data = [0, 1, 0, 0, 0, 2, 9];
        let mut c = Cursor::new(&data, 100, Layer::RouterViewInfo);
        assert_eq!(c.u16(FieldId::Length).unwrap(), 1);
        assert_eq!(c.u32(FieldId::ChangeNumber).unwrap(), 2);
        assert_eq!(c.offset(), 106);
        c.set_index(3);
        let e = c.u16(FieldId::CacheElement).unwrap_err();
        assert_eq!(
            e,
            Error::Truncated {
                layer: Layer::RouterViewInfo,
                field: FieldId::CacheElement,
                index: 3,
                need: 2,
                have: 1,
                offset: 106
            }
        );
        assert_eq!(c.u8(FieldId::Body).unwrap(), 9);
        assert!(c.is_empty());
    }

    #[test]
    fn hostile_count_is_rejected_before_allocation() {
        let data = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let mut c = Cursor::new(&data, 0, Layer::RouterViewInfo);
        assert!(matches!(
            c.count(FieldId::CacheCount, FieldId::CacheElement, 4),
            Err(Error::Truncated {
                field: FieldId::CacheElement,
                ..
            })
        ));
    }

    #[test]
    fn writer_writes_big_endian() {
        let mut buf = [0u8; 7];
        let mut w = CursorMut::new(&mut buf);
        w.u8(1);
        w.u16(0x0203);
        w.u32(0x0405_0607);
        assert_eq!(w.remaining(), 0);
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7]);
    }
}
