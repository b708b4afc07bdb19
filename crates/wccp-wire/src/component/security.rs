//! Security Info (type 0, docs/protocol.md §2.2).
//!
//! ```text
//! +---------------------------------------------------------------+
//! |                  Security Option (0 none, 1 MD5)              |
//! +---------------------------------------------------------------+
//! |              MD5 digest (16 octets, option 1 only)            |
//! ```

use super::{ComponentRepr, ComponentType};
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// `WCCP2_NO_SECURITY`.
pub const OPTION_NONE: u32 = 0;
/// `WCCP2_MD5_SECURITY`.
pub const OPTION_MD5: u32 = 1;
/// Body length with no security.
pub const NONE_LEN: usize = 4;
/// Body length with MD5.
pub const MD5_LEN: usize = 20;

/// Security Info component.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Security {
    /// `WCCP2_NO_SECURITY` (body 4 octets).
    #[default]
    None,
    /// `WCCP2_MD5_SECURITY` with its digest (body 20 octets). Emitters normally write zeros and
    /// then call [`crate::sign`].
    Md5([u8; 16]),
}

impl core::fmt::Debug for Security {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Security::None => f.write_str("None"),
            Security::Md5(d) => {
                f.write_str("Md5(")?;
                for b in d {
                    write!(f, "{b:02x}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl Security {
    /// MD5 with an all-zero digest, to be filled by [`crate::sign`].
    pub const MD5_UNSIGNED: Security = Security::Md5([0; 16]);
}

impl ComponentRepr for Security {
    const TYPE: ComponentType = ComponentType::SecurityInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let at = c.offset();
        match c.u32(FieldId::SecurityOption)? {
            OPTION_NONE => Ok(Security::None),
            OPTION_MD5 => Ok(Security::Md5(c.array(FieldId::Digest)?)),
            other => Err(c.invalid_at(FieldId::SecurityOption, at, other)),
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Security::None => NONE_LEN,
            Security::Md5(_) => MD5_LEN,
        }
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        match self {
            Security::None => w.u32(OPTION_NONE),
            Security::Md5(d) => {
                w.u32(OPTION_MD5);
                w.bytes(d);
            }
        }
    }
}
