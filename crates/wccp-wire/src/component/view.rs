//! Router View Info (type 4, docs/protocol.md §2.6) and Web-Cache View Info (type 5, §2.7).
//!
//! ```text
//! Router View:    change (4) | key addr (4) | key change (4) | NR (4) | NR x addr
//!                 | NC (4) | NC x Web-Cache Identity Element (variable)
//! Web-Cache View: change (4) | NR (4) | NR x Router Identity Element (8) | NC (4) | NC x addr
//! ```

use alloc::vec::Vec;

use super::assignment::AssignmentKey;
use super::identity::{read_addrs, write_addrs, RouterIdElement, WebCacheIdentity};
use super::{ComponentRepr, ComponentType};
use crate::addr::Addr;
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// Router View Info component (I_SEE_YOU).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RouterViewInfo {
    /// Member change number.
    pub change_number: u32,
    /// Assignment key of the last valid REDIRECT_ASSIGN (0/0 if none).
    pub key: AssignmentKey,
    /// Routers reported by caches.
    pub routers: Vec<Addr>,
    /// Usable caches.
    pub caches: Vec<WebCacheIdentity>,
}

impl ComponentRepr for RouterViewInfo {
    const TYPE: ComponentType = ComponentType::RouterViewInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let change_number = c.u32(FieldId::ChangeNumber)?;
        let key = AssignmentKey::read(c)?;
        let routers = read_addrs(c, FieldId::RouterCount, FieldId::RouterAddress)?;
        // Identity elements are at least 8 octets.
        let n = c.count(FieldId::CacheCount, FieldId::CacheElement, 8)?;
        let mut caches = Vec::with_capacity(n);
        for i in 0..n {
            caches.push(c.element(FieldId::CacheElement, i + 1, WebCacheIdentity::read)?);
        }
        Ok(RouterViewInfo {
            change_number,
            key,
            routers,
            caches,
        })
    }

    fn body_len(&self) -> usize {
        4 + AssignmentKey::LEN
            + 4
            + 4 * self.routers.len()
            + 4
            + self
                .caches
                .iter()
                .map(WebCacheIdentity::wire_len)
                .sum::<usize>()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        w.u32(self.change_number);
        self.key.write(w);
        write_addrs(&self.routers, w);
        w.list(&self.caches, WebCacheIdentity::write);
    }
}

/// Web-Cache View Info component (HERE_I_AM).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct WebCacheViewInfo {
    /// Change number of the cache's view.
    pub change_number: u32,
    /// Routers with the last Receive ID heard from each.
    pub routers: Vec<RouterIdElement>,
    /// Caches learnt from I_SEE_YOUs.
    pub caches: Vec<Addr>,
}

impl ComponentRepr for WebCacheViewInfo {
    const TYPE: ComponentType = ComponentType::WebCacheViewInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let change_number = c.u32(FieldId::ChangeNumber)?;
        let routers = c.list(
            FieldId::RouterCount,
            FieldId::RouterElement,
            RouterIdElement::LEN,
            RouterIdElement::read,
        )?;
        let caches = read_addrs(c, FieldId::CacheCount, FieldId::CacheElement)?;
        Ok(WebCacheViewInfo {
            change_number,
            routers,
            caches,
        })
    }

    fn body_len(&self) -> usize {
        4 + 4 + RouterIdElement::LEN * self.routers.len() + 4 + 4 * self.caches.len()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        w.u32(self.change_number);
        w.list(&self.routers, RouterIdElement::write);
        write_addrs(&self.caches, w);
    }
}
