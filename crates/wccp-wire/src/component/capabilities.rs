//! Capabilities Info (type 8, docs/protocol.md §2.10): a list of `type(2) length(2) value` elements.

use alloc::vec::Vec;

use super::{ComponentRepr, ComponentType};
use crate::cursor::{Cursor, CursorMut};
use crate::error::{Error, FieldId};

/// One capability element. Known types with a 4-octet value are decoded; anything else is kept raw
/// so that it re-emits byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Type 1 `WCCP2_FORWARDING_METHOD`: bitmask of [`Capability::GRE`], [`Capability::L2`].
    ForwardingMethod(u32),
    /// Type 2 `WCCP2_ASSIGNMENT_METHOD`: bitmask of [`Capability::HASH`], [`Capability::MASK`].
    AssignmentMethod(u32),
    /// Type 3 `WCCP2_PACKET_RETURN_METHOD`: bitmask of [`Capability::GRE`], [`Capability::L2`].
    PacketReturnMethod(u32),
    /// Type 4 `WCCP2_TRANSMIT_T` (2.01): range in ms; a single value has `upper = 0`.
    TransmitT {
        /// Upper bound (or 0).
        upper: u16,
        /// Lower bound (or the single value).
        lower: u16,
    },
    /// Type 5 `WCCP2_TIMER_SCALE` (2.01): timeout and RA scale ranges; single values have
    /// upper = 0.
    TimerScale {
        /// TIMEOUT_SCALE upper.
        timeout_upper: u8,
        /// TIMEOUT_SCALE lower.
        timeout_lower: u8,
        /// RA_TIMER_SCALE upper.
        ra_upper: u8,
        /// RA_TIMER_SCALE lower.
        ra_lower: u8,
    },
    /// Any other element (or a known type with a value length other than 4).
    Unknown {
        /// Capability type.
        kind: u16,
        /// Value octets.
        value: Vec<u8>,
    },
}

impl Capability {
    /// Method bit: GRE (forwarding / return).
    pub const GRE: u32 = 0x1;
    /// Method bit: L2 (forwarding / return).
    pub const L2: u32 = 0x2;
    /// Method bit: hash assignment.
    pub const HASH: u32 = 0x1;
    /// Method bit: mask assignment.
    pub const MASK: u32 = 0x2;

    /// The capability type code.
    pub fn kind(&self) -> u16 {
        match self {
            Capability::ForwardingMethod(_) => 1,
            Capability::AssignmentMethod(_) => 2,
            Capability::PacketReturnMethod(_) => 3,
            Capability::TransmitT { .. } => 4,
            Capability::TimerScale { .. } => 5,
            Capability::Unknown { kind, .. } => *kind,
        }
    }

    fn value_len(&self) -> usize {
        match self {
            Capability::Unknown { value, .. } => value.len(),
            _ => 4,
        }
    }

    fn value_u32(&self) -> u32 {
        match *self {
            Capability::ForwardingMethod(v)
            | Capability::AssignmentMethod(v)
            | Capability::PacketReturnMethod(v) => v,
            Capability::TransmitT { upper, lower } => (u32::from(upper) << 16) | u32::from(lower),
            Capability::TimerScale {
                timeout_upper,
                timeout_lower,
                ra_upper,
                ra_lower,
            } => u32::from_be_bytes([timeout_upper, timeout_lower, ra_upper, ra_lower]),
            Capability::Unknown { .. } => 0,
        }
    }
}

/// Capabilities Info component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Capabilities {
    /// Elements in wire order.
    pub elements: Vec<Capability>,
}

impl Capabilities {
    /// The forwarding-method bitmask, if present.
    pub fn forwarding_method(&self) -> Option<u32> {
        self.elements.iter().find_map(|e| match e {
            Capability::ForwardingMethod(v) => Some(*v),
            _ => None,
        })
    }

    /// The assignment-method bitmask, if present.
    pub fn assignment_method(&self) -> Option<u32> {
        self.elements.iter().find_map(|e| match e {
            Capability::AssignmentMethod(v) => Some(*v),
            _ => None,
        })
    }

    /// The packet-return-method bitmask, if present.
    pub fn packet_return_method(&self) -> Option<u32> {
        self.elements.iter().find_map(|e| match e {
            Capability::PacketReturnMethod(v) => Some(*v),
            _ => None,
        })
    }
}

impl ComponentRepr for Capabilities {
    const TYPE: ComponentType = ComponentType::CapabilitiesInfo;

    fn parse_body(c: &mut Cursor<'_>) -> Result<Self, Error> {
        let mut elements = Vec::new();
        while !c.is_empty() {
            c.set_index(elements.len() + 1);
            let kind = c.u16(FieldId::Capability)?;
            let len = c.u16(FieldId::Capability)?;
            let value = c.bytes(usize::from(len), FieldId::Capability)?;
            let e = match (kind, <[u8; 4]>::try_from(value)) {
                (1, Ok(v)) => Capability::ForwardingMethod(u32::from_be_bytes(v)),
                (2, Ok(v)) => Capability::AssignmentMethod(u32::from_be_bytes(v)),
                (3, Ok(v)) => Capability::PacketReturnMethod(u32::from_be_bytes(v)),
                (4, Ok(v)) => Capability::TransmitT {
                    upper: u16::from_be_bytes([v[0], v[1]]),
                    lower: u16::from_be_bytes([v[2], v[3]]),
                },
                (5, Ok(v)) => Capability::TimerScale {
                    timeout_upper: v[0],
                    timeout_lower: v[1],
                    ra_upper: v[2],
                    ra_lower: v[3],
                },
                _ => Capability::Unknown {
                    kind,
                    value: value.to_vec(),
                },
            };
            elements.push(e);
        }
        Ok(Capabilities { elements })
    }

    fn body_len(&self) -> usize {
        self.elements.iter().map(|e| 4 + e.value_len()).sum()
    }

    fn emit_body(&self, w: &mut CursorMut<'_>) {
        for e in &self.elements {
            w.u16(e.kind());
            w.u16(u16::try_from(e.value_len()).unwrap_or(u16::MAX));
            match e {
                Capability::Unknown { value, .. } => w.bytes(value),
                _ => w.u32(e.value_u32()),
            }
        }
    }
}
