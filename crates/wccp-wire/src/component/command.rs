//! Command Extension (type 15, docs/protocol.md §2.13): a list of `type(2) length(2) data` elements.

use alloc::vec::Vec;

use super::{ComponentRepr, ComponentType};
use crate::addr::Addr;
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// One command element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    /// Type 1 `WCCP2_COMMAND_TYPE_SHUTDOWN` (cache → router) with the cache address.
    Shutdown(Addr),
    /// Type 2 `WCCP2_COMMAND_TYPE_SHUTDOWN_RESPONSE` (router → cache) with the cache address.
    ShutdownResponse(Addr),
    /// Anything else (or types 1/2 with data length other than 4), kept raw.
    Unknown {
        /// Command type.
        kind: u16,
        /// Data octets.
        data: Vec<u8>,
    },
}

impl Command {
    fn kind(&self) -> u16 {
        match self {
            Command::Shutdown(_) => 1,
            Command::ShutdownResponse(_) => 2,
            Command::Unknown { kind, .. } => *kind,
        }
    }

    fn data_len(&self) -> usize {
        match self {
            Command::Unknown { data, .. } => data.len(),
            _ => 4,
        }
    }
}

/// Command Extension component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CommandExtension {
    /// Commands in wire order.
    pub commands: Vec<Command>,
}

impl ComponentRepr for CommandExtension {
    const TYPE: ComponentType = ComponentType::CommandExtension;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let mut commands = Vec::new();
        while !c.is_empty() {
            c.set_index(commands.len() + 1);
            let kind = c.u16(FieldId::Command)?;
            let len = c.u16(FieldId::Command)?;
            let data = c.bytes(usize::from(len), FieldId::Command)?;
            let cmd = match (kind, <[u8; 4]>::try_from(data)) {
                (1, Ok(a)) => Command::Shutdown(Addr::from(a)),
                (2, Ok(a)) => Command::ShutdownResponse(Addr::from(a)),
                _ => Command::Unknown {
                    kind,
                    data: data.to_vec(),
                },
            };
            commands.push(cmd);
        }
        Ok(CommandExtension { commands })
    }

    fn body_len(&self) -> usize {
        self.commands.iter().map(|c| 4 + c.data_len()).sum()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        for c in &self.commands {
            w.u16(c.kind());
            w.u16(u16::try_from(c.data_len()).unwrap_or(u16::MAX));
            match c {
                Command::Shutdown(a) | Command::ShutdownResponse(a) => w.u32(a.0),
                Command::Unknown { data, .. } => w.bytes(data),
            }
        }
    }
}
