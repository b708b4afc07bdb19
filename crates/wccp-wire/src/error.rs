//! The crate's single error type.

use core::fmt;

/// The protocol layer (message header, component, or encapsulation header) an error was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Layer {
    /// The 8-octet WCCP message header.
    Header,
    /// Component framing (type + length) of a component of unknown type.
    Component,
    /// Security Info (0).
    SecurityInfo,
    /// Service Info (1).
    ServiceInfo,
    /// Router Identity Info (2).
    RouterIdentityInfo,
    /// Web-Cache Identity Info (3).
    WebCacheIdentityInfo,
    /// Router View Info (4).
    RouterViewInfo,
    /// Web-Cache View Info (5).
    WebCacheViewInfo,
    /// Assignment Info (6).
    AssignmentInfo,
    /// Router Query Info (7).
    RouterQueryInfo,
    /// Capabilities Info (8).
    CapabilitiesInfo,
    /// Alternate Assignment (13).
    AlternateAssignment,
    /// Assignment Map (14).
    AssignmentMap,
    /// Command Extension (15).
    CommandExtension,
    /// Alternate Assignment Map (16).
    AlternateAssignmentMap,
    /// Address Table (17).
    AddressTable,
    /// GRE header.
    Gre,
    /// WCCP redirect header (4 octets after GRE).
    RedirectHeader,
    /// IPv4 header.
    Ipv4,
    /// Ethernet II header (with an optional 802.1Q tag).
    Ethernet,
    /// ARP packet (RFC 826, Ethernet/IPv4).
    Arp,
    /// UDP header.
    Udp,
    /// TCP header.
    Tcp,
    /// ICMP header.
    Icmp,
}

impl Layer {
    /// Human-readable name (the draft's component names).
    pub const fn as_str(self) -> &'static str {
        match self {
            Layer::Header => "WCCP header",
            Layer::Component => "Component",
            Layer::SecurityInfo => "Security Info",
            Layer::ServiceInfo => "Service Info",
            Layer::RouterIdentityInfo => "Router Identity Info",
            Layer::WebCacheIdentityInfo => "Web-Cache Identity Info",
            Layer::RouterViewInfo => "Router View Info",
            Layer::WebCacheViewInfo => "Web-Cache View Info",
            Layer::AssignmentInfo => "Assignment Info",
            Layer::RouterQueryInfo => "Router Query Info",
            Layer::CapabilitiesInfo => "Capabilities Info",
            Layer::AlternateAssignment => "Alternate Assignment",
            Layer::AssignmentMap => "Assignment Map",
            Layer::CommandExtension => "Command Extension",
            Layer::AlternateAssignmentMap => "Alternate Assignment Map",
            Layer::AddressTable => "Address Table",
            Layer::Gre => "GRE header",
            Layer::RedirectHeader => "WCCP redirect header",
            Layer::Ipv4 => "IPv4 header",
            Layer::Ethernet => "Ethernet header",
            Layer::Arp => "ARP packet",
            Layer::Udp => "UDP header",
            Layer::Tcp => "TCP header",
            Layer::Icmp => "ICMP header",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The field (or element) inside a [`Layer`] an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum FieldId {
    /// A fixed-size header.
    Header,
    /// Message type.
    MessageType,
    /// Version field.
    Version,
    /// A length field.
    Length,
    /// A component or element body.
    Body,
    /// Component type.
    ComponentType,
    /// Security option.
    SecurityOption,
    /// MD5 digest.
    Digest,
    /// Service type.
    ServiceType,
    /// Flags.
    Flags,
    /// Router identity element.
    RouterElement,
    /// Sent To address.
    SentTo,
    /// Number of addresses in the Received From list.
    ReceivedFromCount,
    /// Received From address.
    ReceivedFrom,
    /// Cache address.
    CacheAddress,
    /// Assignment data of an identity element.
    AssignmentData,
    /// Extended assignment data header.
    ExtendedData,
    /// Hash bucket block (32 octets).
    BucketBlock,
    /// Assignment weight / status.
    WeightStatus,
    /// Change number.
    ChangeNumber,
    /// Assignment key.
    AssignmentKey,
    /// Number of routers.
    RouterCount,
    /// Router address.
    RouterAddress,
    /// Number of caches.
    CacheCount,
    /// Cache element (Web-Cache Identity Element or address).
    CacheElement,
    /// Router assignment element.
    RouterAssignment,
    /// The 256 bucket octets.
    Buckets,
    /// Router Query fields.
    Query,
    /// Capability element.
    Capability,
    /// Assignment type.
    AssignmentType,
    /// Assignment length.
    AssignmentLength,
    /// Number of mask/value sets.
    MaskSetCount,
    /// Mask element.
    MaskElement,
    /// Number of value elements.
    ValueCount,
    /// Value element.
    ValueElement,
    /// Web-Cache Value Element.
    CacheValueElement,
    /// Number of VSNs.
    VsnCount,
    /// Value sequence number.
    Vsn,
    /// Command element.
    Command,
    /// Address family.
    AddressFamily,
    /// Address length.
    AddressLength,
    /// Number of addresses.
    AddressCount,
    /// An address.
    Address,
    /// Address table index.
    AddressIndex,
    /// GRE protocol type.
    Protocol,
    /// IHL / header length.
    HeaderLength,
    /// Total length.
    TotalLength,
    /// Payload after a header.
    Payload,
    /// Output buffer.
    Buffer,
}

impl FieldId {
    /// Human-readable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            FieldId::Header => "header",
            FieldId::MessageType => "message type",
            FieldId::Version => "version",
            FieldId::Length => "length",
            FieldId::Body => "body",
            FieldId::ComponentType => "component type",
            FieldId::SecurityOption => "security option",
            FieldId::Digest => "MD5 digest",
            FieldId::ServiceType => "service type",
            FieldId::Flags => "flags",
            FieldId::RouterElement => "router identity element",
            FieldId::SentTo => "sent-to address",
            FieldId::ReceivedFromCount => "received-from count",
            FieldId::ReceivedFrom => "received-from address",
            FieldId::CacheAddress => "cache address",
            FieldId::AssignmentData => "assignment data",
            FieldId::ExtendedData => "extended assignment data",
            FieldId::BucketBlock => "bucket block",
            FieldId::WeightStatus => "weight/status",
            FieldId::ChangeNumber => "change number",
            FieldId::AssignmentKey => "assignment key",
            FieldId::RouterCount => "router count",
            FieldId::RouterAddress => "router address",
            FieldId::CacheCount => "cache count",
            FieldId::CacheElement => "cache element",
            FieldId::RouterAssignment => "router assignment element",
            FieldId::Buckets => "bucket table",
            FieldId::Query => "query fields",
            FieldId::Capability => "capability element",
            FieldId::AssignmentType => "assignment type",
            FieldId::AssignmentLength => "assignment length",
            FieldId::MaskSetCount => "mask/value set count",
            FieldId::MaskElement => "mask element",
            FieldId::ValueCount => "value element count",
            FieldId::ValueElement => "value element",
            FieldId::CacheValueElement => "web-cache value element",
            FieldId::VsnCount => "VSN count",
            FieldId::Vsn => "value sequence number",
            FieldId::Command => "command element",
            FieldId::AddressFamily => "address family",
            FieldId::AddressLength => "address length",
            FieldId::AddressCount => "address count",
            FieldId::Address => "address",
            FieldId::AddressIndex => "address table index",
            FieldId::Protocol => "protocol type",
            FieldId::HeaderLength => "header length",
            FieldId::TotalLength => "total length",
            FieldId::Payload => "payload",
            FieldId::Buffer => "output buffer",
        }
    }
}

impl fmt::Display for FieldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error this crate returns. `Copy`, at most 16 octets, and carries enough context to name the
/// field and the offset (from the start of the parsed buffer, normally the WCCP message).
///
/// `index` fields are 1-based element numbers (e.g. "cache element 2"); 0 means "not an element of a
/// list".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before a field was complete.
    Truncated {
        /// Where.
        layer: Layer,
        /// Which field.
        field: FieldId,
        /// 1-based element number, 0 if none.
        index: u16,
        /// Octets needed (saturated at `u32::MAX`).
        need: u32,
        /// Octets available (saturated at `u16::MAX`).
        have: u16,
        /// Offset of the field.
        offset: u32,
    },
    /// A component's declared length runs past the end of the message.
    LengthMismatch {
        /// Raw component type code.
        component: u16,
        /// Declared body length.
        declared: u16,
        /// Octets remaining in the message after the component header.
        remaining: u16,
        /// Offset of the component header.
        offset: u32,
    },
    /// The message type is not one of 10..=13.
    UnknownMessageType(u32),
    /// The major version is not 2.
    UnsupportedVersion(u16),
    /// A mandatory component is absent.
    MissingComponent(Layer),
    /// A field holds a value this crate cannot accept.
    Invalid {
        /// Where.
        layer: Layer,
        /// Which field.
        field: FieldId,
        /// 1-based element number, 0 if none.
        index: u16,
        /// Offset of the field.
        offset: u32,
        /// The offending value (truncated to 32 bits).
        value: u32,
    },
    /// The MD5 digest does not match.
    Md5Mismatch,
    /// A password is configured but the message carries no MD5 digest.
    Md5Missing,
    /// No password is configured but the message carries an MD5 digest (see `authenticate`).
    Md5Unexpected,
    /// The MD5 password is longer than 8 octets.
    PasswordTooLong,
    /// The output buffer does not have exactly `buffer_len()` octets.
    BufferLength {
        /// Octets required.
        need: u32,
        /// Octets given.
        have: u32,
    },
    /// The message or a component would be longer than a 16-bit length field can express.
    TooLong {
        /// Where.
        layer: Layer,
        /// The length that does not fit.
        len: u32,
    },
}

const _: () = assert!(core::mem::size_of::<Error>() <= 16);

pub(crate) fn sat_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

pub(crate) fn sat_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Error {
    /// `Truncated` for `field` of `layer` (not a list element) at `offset`.
    pub(crate) fn truncated(
        layer: Layer,
        field: FieldId,
        need: usize,
        have: usize,
        offset: usize,
    ) -> Error {
        Error::Truncated {
            layer,
            field,
            index: 0,
            need: sat_u32(need),
            have: sat_u16(have),
            offset: sat_u32(offset),
        }
    }

    /// `Invalid` for `field` of `layer` (not a list element) at `offset`.
    pub(crate) fn invalid(layer: Layer, field: FieldId, offset: usize, value: u32) -> Error {
        Error::Invalid {
            layer,
            field,
            index: 0,
            offset: sat_u32(offset),
            value,
        }
    }
}

/// The first check of every header view: `Ok` when the `have` octets of the buffer hold the
/// `need` octets of `layer`'s fixed header, else `Truncated { field: Header, offset: 0 }`.
pub(crate) fn check_header(layer: Layer, need: usize, have: usize) -> Result<(), Error> {
    if have < need {
        return Err(Error::truncated(layer, FieldId::Header, need, have, 0));
    }
    Ok(())
}

fn write_index(f: &mut fmt::Formatter<'_>, field: FieldId, index: u16) -> fmt::Result {
    if index == 0 {
        write!(f, "{field}")
    } else {
        write!(f, "{field} {index}")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { layer, field, index, need, have, offset } => {
                write!(f, "{layer}: ")?;
                write_index(f, field, index)?;
                write!(f, " truncated at offset {offset} (need {need} octets, have {have})")
            }
            Error::LengthMismatch { component, declared, remaining, offset } => write!(
                f,
                "component type {component} at offset {offset}: declared length {declared} exceeds the {remaining} octets remaining in the message"
            ),
            Error::UnknownMessageType(t) => write!(f, "unknown WCCP message type {t}"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported WCCP version 0x{v:04x}"),
            Error::MissingComponent(layer) => write!(f, "mandatory component {layer} missing"),
            Error::Invalid { layer, field, index, offset, value } => {
                write!(f, "{layer}: invalid ")?;
                write_index(f, field, index)?;
                write!(f, " at offset {offset} (value {value:#x})")
            }
            Error::Md5Mismatch => f.write_str("Security Info: MD5 digest mismatch"),
            Error::Md5Missing => {
                f.write_str("Security Info: MD5 required by configuration but absent")
            }
            Error::Md5Unexpected => {
                f.write_str("Security Info: MD5 present but no password configured")
            }
            Error::PasswordTooLong => f.write_str("MD5 password longer than 8 octets"),
            Error::BufferLength { need, have } => {
                write!(f, "output buffer has {have} octets, need exactly {need}")
            }
            Error::TooLong { layer, len } => {
                write!(f, "{layer}: length {len} does not fit a 16-bit length field")
            }
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn display_names_field_and_offset() {
        let e = Error::Truncated {
            layer: Layer::RouterViewInfo,
            field: FieldId::CacheElement,
            index: 2,
            need: 44,
            have: 20,
            offset: 112,
        };
        assert_eq!(
            e.to_string(),
            "Router View Info: cache element 2 truncated at offset 112 (need 44 octets, have 20)"
        );
    }

    #[test]
    fn error_is_small() {
        assert!(core::mem::size_of::<Error>() <= 16);
    }
}
