//! The negotiated methods (docs/protocol.md 2.10): how packets reach a cache and come back
//! (Forwarding and Packet Return Method, capability types 1 and 3) and how traffic is
//! divided (Assignment Method, type 2). One type each for the configuration, the state
//! machines, their status and the redirection tables.

use core::fmt;

/// A closed set of values with stable names: the names of the configuration file and of the
/// status output (`wccpd show`), in declaration order.
pub trait Named: Copy + Eq + 'static {
    /// Every value, in the order names are listed to the user.
    const ALL: &'static [Self];

    /// The value's name.
    fn name(self) -> &'static str;

    /// The value called `name`, if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
}

/// Forwarding or packet-return method (capability types 1 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GRE encapsulation with the 4-octet WCCP redirect header (bit 0x1, docs/protocol.md 4.1).
    Gre,
    /// Layer-2 rewrite (bit 0x2, docs/protocol.md 4.3).
    L2,
}

impl Method {
    /// Capability bit.
    pub const fn bit(self) -> u32 {
        match self {
            Method::Gre => 0x1,
            Method::L2 => 0x2,
        }
    }

    /// Name for the configuration, logs and status output.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Gre => "gre",
            Method::L2 => "l2",
        }
    }

    /// The capability value offering every method of `list`.
    pub fn bits(list: &[Method]) -> u32 {
        list.iter().fold(0, |a, m| a | m.bit())
    }
}

impl Named for Method {
    const ALL: &'static [Method] = &[Method::Gre, Method::L2];

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Assignment method (capability type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssignMethod {
    /// Hash buckets, Assignment Info (bit 0x1).
    Hash,
    /// Mask/value sets (bit 0x2).
    Mask,
}

impl AssignMethod {
    /// Capability bit.
    pub const fn bit(self) -> u32 {
        match self {
            AssignMethod::Hash => 0x1,
            AssignMethod::Mask => 0x2,
        }
    }

    /// Name for the configuration, logs and status output.
    pub const fn as_str(self) -> &'static str {
        match self {
            AssignMethod::Hash => "hash",
            AssignMethod::Mask => "mask",
        }
    }

    /// The capability value offering every method of `list`.
    pub fn bits(list: &[AssignMethod]) -> u32 {
        list.iter().fold(0, |a, m| a | m.bit())
    }
}

impl Named for AssignMethod {
    const ALL: &'static [AssignMethod] = &[AssignMethod::Hash, AssignMethod::Mask];

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl fmt::Display for AssignMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_names() {
        assert_eq!(Method::bits(&[Method::Gre, Method::L2]), 0x3);
        assert_eq!(Method::bits(&[Method::L2]), 0x2);
        assert_eq!(AssignMethod::bits(&[AssignMethod::Hash]), 0x1);
        assert_eq!(AssignMethod::bits(&[]), 0);
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(*m));
        }
        for m in AssignMethod::ALL {
            assert_eq!(AssignMethod::from_name(&m.to_string()), Some(*m));
        }
        assert_eq!(Method::from_name("GRE"), None);
    }
}
