//! Router Query Info (type 7, docs/protocol.md §2.9) — body 16 octets.
//!
//! ```text
//! | Router ID (4) | Receive ID (4) | Sent To (4) | Target cache (4) |
//! ```

use super::{ComponentRepr, ComponentType};
use crate::addr::Addr;
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// Router Query Info component (REMOVAL_QUERY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RouterQueryInfo {
    /// Router ID address.
    pub router: Addr,
    /// Receive ID the router expects to see echoed.
    pub receive_id: u32,
    /// Address the cache last sent its HERE_I_AM to.
    pub sent_to: Addr,
    /// Target cache address.
    pub target: Addr,
}

impl ComponentRepr for RouterQueryInfo {
    const TYPE: ComponentType = ComponentType::RouterQueryInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let mut q = c.sub(16, FieldId::Query)?;
        Ok(RouterQueryInfo {
            router: Addr(q.u32(FieldId::RouterAddress)?),
            receive_id: q.u32(FieldId::Query)?,
            sent_to: Addr(q.u32(FieldId::SentTo)?),
            target: Addr(q.u32(FieldId::CacheAddress)?),
        })
    }

    fn body_len(&self) -> usize {
        16
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        w.u32(self.router.0);
        w.u32(self.receive_id);
        w.u32(self.sent_to.0);
        w.u32(self.target.0);
    }
}
