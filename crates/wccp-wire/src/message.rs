//! WCCP messages (docs/protocol.md §1.2, §1.4): the 8-octet header view and the four message `Repr`s.
//!
//! ```text
//!  0                   1                   2                   3
//! +---------------------------------------------------------------+
//! |                             Type                              |
//! +---------------+---------------+-------------------------------+
//! | Major version | Minor version |   Length (octets after here)  |
//! +---------------+---------------+-------------------------------+
//! |                     Components ...                            |
//! ```
//!
//! Parsing rules: the header is validated first (type 10..=13, major version 2; bytes beyond
//! 8 + Length are ignored); components are walked with [`Components`], and any overrun is an error;
//! components of unknown type, and known components that do not belong in the message type, are
//! skipped; when a component appears more than once **the first occurrence wins** and later copies
//! are ignored (draft-mclaggan-wccp-v2rev1 §4.1). The Address Table (17) is parsed before anything else, but addresses are
//! kept as raw [`crate::Addr`] element values and resolved on demand with
//! [`crate::Addr::resolve`] (pass the message's `address_table`).
//!
//! Emitting always writes the canonical component order of docs/protocol.md §1.4.

use alloc::vec::Vec;

use crate::component::{
    AddressTable, AlternateAssignment, AlternateAssignmentMap, AssignmentInfo, AssignmentMap,
    Capabilities, CommandExtension, Component, ComponentRepr, Components, RouterIdentityInfo,
    RouterQueryInfo, RouterViewInfo, Security, ServiceInfo, WebCacheIdentity, WebCacheViewInfo,
};
use crate::cursor::CursorMut;
use crate::error::{check_header, sat_u32, Error, FieldId, Layer};

/// Length of the message header.
pub const HEADER_LEN: usize = 8;

/// Message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MessageType {
    /// `WCCP2_HERE_I_AM` (cache → router).
    HereIAm = 10,
    /// `WCCP2_I_SEE_YOU` (router → cache).
    ISeeYou = 11,
    /// `WCCP2_REDIRECT_ASSIGN` (designated cache → router).
    RedirectAssign = 12,
    /// `WCCP2_REMOVAL_QUERY` (router → cache).
    RemovalQuery = 13,
}

impl MessageType {
    /// The draft's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::HereIAm => "HERE_I_AM",
            MessageType::ISeeYou => "I_SEE_YOU",
            MessageType::RedirectAssign => "REDIRECT_ASSIGN",
            MessageType::RemovalQuery => "REMOVAL_QUERY",
        }
    }
}

impl TryFrom<u32> for MessageType {
    type Error = Error;
    fn try_from(v: u32) -> Result<Self, Error> {
        match v {
            10 => Ok(MessageType::HereIAm),
            11 => Ok(MessageType::ISeeYou),
            12 => Ok(MessageType::RedirectAssign),
            13 => Ok(MessageType::RemovalQuery),
            other => Err(Error::UnknownMessageType(other)),
        }
    }
}

/// Protocol version (major, minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Major version (2).
    pub major: u8,
    /// Minor version (0 or 1).
    pub minor: u8,
}

impl Version {
    /// 2.00 (`0x0200`).
    pub const V2_00: Version = Version { major: 2, minor: 0 };
    /// 2.01 (`0x0201`).
    pub const V2_01: Version = Version { major: 2, minor: 1 };

    /// As the 16-bit field.
    pub const fn to_u16(self) -> u16 {
        u16::from_be_bytes([self.major, self.minor])
    }

    /// From the 16-bit field.
    pub const fn from_u16(v: u16) -> Self {
        let [major, minor] = v.to_be_bytes();
        Version { major, minor }
    }
}

impl Default for Version {
    fn default() -> Self {
        Version::V2_00
    }
}

mod field {
    use crate::field::Field;
    pub const TYPE: Field = 0..4;
    pub const VERSION: Field = 4..6;
    pub const LENGTH: Field = 6..8;
}

view! {
    /// Zero-copy view of a WCCP message (header + components).
    pub struct Packet;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the 8-octet header and `Length` octets of components are present.
    ///
    /// # Errors
    /// `Truncated { layer: Header, .. }`.
    pub fn check_len(&self) -> Result<(), Error> {
        let have = self.buffer.as_ref().len();
        check_header(Layer::Header, HEADER_LEN, have)?;
        let len = usize::from(self.length());
        if have - HEADER_LEN < len {
            return Err(Error::truncated(
                Layer::Header,
                FieldId::Body,
                len,
                have - HEADER_LEN,
                HEADER_LEN,
            ));
        }
        Ok(())
    }

    /// Raw message type.
    pub fn msg_type(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::TYPE];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Version field.
    pub fn version(&self) -> Version {
        let b = &self.buffer.as_ref()[field::VERSION];
        Version {
            major: b[0],
            minor: b[1],
        }
    }

    /// Length field (octets after the header).
    pub fn length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Header + components (`8 + Length` octets; trailing octets excluded).
    pub fn message(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN + usize::from(self.length())]
    }

    /// The components (`Length` octets).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.length())]
    }

    /// Iterates the components.
    pub fn components(&self) -> Components<'_> {
        Components::new(self.body(), HEADER_LEN)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: u32) {
        self.buffer.as_mut()[field::TYPE].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the version.
    pub fn set_version(&mut self, v: Version) {
        self.buffer.as_mut()[field::VERSION].copy_from_slice(&[v.major, v.minor]);
    }

    /// Sets the length.
    pub fn set_length(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
}

/// Validated header and the list of framed components.
struct Frame<'a> {
    msg_type: MessageType,
    version: Version,
    components: Vec<Component<'a>>,
}

fn frame(buf: &[u8]) -> Result<Frame<'_>, Error> {
    let p = Packet::new_checked(buf)?;
    let msg_type = MessageType::try_from(p.msg_type())?;
    let version = p.version();
    if version.major != 2 {
        return Err(Error::UnsupportedVersion(version.to_u16()));
    }
    let body = &buf[HEADER_LEN..HEADER_LEN + usize::from(p.length())];
    let components = Components::new(body, HEADER_LEN).collect::<Result<Vec<_>, _>>()?;
    Ok(Frame {
        msg_type,
        version,
        components,
    })
}

impl Frame<'_> {
    /// The first component of type `T`, parsed.
    fn first<T: ComponentRepr>(&self) -> Result<Option<T>, Error> {
        self.components
            .iter()
            .find(|c| c.kind == T::TYPE as u16)
            .map(T::parse)
            .transpose()
    }

    fn required<T: ComponentRepr>(&self) -> Result<T, Error> {
        self.first::<T>()?
            .ok_or(Error::MissingComponent(T::TYPE.layer()))
    }

    fn expect_type(&self, t: MessageType) -> Result<(), Error> {
        if self.msg_type == t {
            Ok(())
        } else {
            Err(Error::invalid(
                Layer::Header,
                FieldId::MessageType,
                0,
                self.msg_type as u32,
            ))
        }
    }
}

/// Object-safe view of a component for emitting.
trait Part {
    fn part_len(&self) -> usize;
    fn part_emit(&self, buf: &mut [u8]) -> Result<(), Error>;
}

impl<T: ComponentRepr> Part for T {
    fn part_len(&self) -> usize {
        self.buffer_len()
    }
    fn part_emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        self.emit(buf)
    }
}

/// An optional component as an emitter part.
fn opt<T: Part>(c: &Option<T>) -> Option<&dyn Part> {
    c.as_ref().map(|c| c as &dyn Part)
}

fn parts_len(parts: &[Option<&dyn Part>]) -> usize {
    HEADER_LEN + parts.iter().flatten().map(|p| p.part_len()).sum::<usize>()
}

fn emit_parts(
    t: MessageType,
    version: Version,
    parts: &[Option<&dyn Part>],
    buf: &mut [u8],
) -> Result<(), Error> {
    let total = parts_len(parts);
    if buf.len() != total {
        return Err(Error::BufferLength {
            need: sat_u32(total),
            have: sat_u32(buf.len()),
        });
    }
    let length = u16::try_from(total - HEADER_LEN).map_err(|_| Error::TooLong {
        layer: Layer::Header,
        len: sat_u32(total - HEADER_LEN),
    })?;
    let mut w = CursorMut::new(&mut buf[..HEADER_LEN]);
    w.u32(t as u32);
    w.u8(version.major);
    w.u8(version.minor);
    w.u16(length);
    let mut pos = HEADER_LEN;
    for p in parts.iter().flatten() {
        let n = p.part_len();
        p.part_emit(&mut buf[pos..pos + n])?;
        pos += n;
    }
    Ok(())
}

/// Common interface of the four message `Repr`s.
pub trait MessageRepr: Sized {
    /// The message type.
    const TYPE: MessageType;

    /// Parses a message of this type from a UDP payload.
    ///
    /// # Errors
    /// Header errors, `Invalid { field: MessageType }` for another message type,
    /// `MissingComponent`, or any component error.
    fn parse(buf: &[u8]) -> Result<Self, Error>;

    /// Length of the emitted message.
    fn buffer_len(&self) -> usize;

    /// Writes the message (canonical component order) into `buf`, which must be exactly
    /// `buffer_len()` octets. The MD5 digest is written as stored; call [`crate::sign`] afterwards.
    ///
    /// # Errors
    /// `BufferLength`, or `TooLong` if a length field would overflow.
    fn emit(&self, buf: &mut [u8]) -> Result<(), Error>;

    /// Emits into a new vector.
    ///
    /// # Errors
    /// As [`MessageRepr::emit`].
    fn to_vec(&self) -> Result<Vec<u8>, Error> {
        let mut v = alloc::vec![0u8; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}

/// The [`MessageRepr`] impl and the conversion into [`Message`] of each message type, all alike:
/// `parse` frames the message and checks its type, then the type's `from_frame` picks its
/// components; `buffer_len` and `emit` go over the type's `parts()` in canonical order.
macro_rules! message_reprs {
    ($($name:ident),*) => {$(
        impl MessageRepr for $name {
            const TYPE: MessageType = MessageType::$name;

            fn parse(buf: &[u8]) -> Result<Self, Error> {
                let f = frame(buf)?;
                f.expect_type(Self::TYPE)?;
                Self::from_frame(&f)
            }

            fn buffer_len(&self) -> usize {
                parts_len(&self.parts())
            }

            fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
                emit_parts(Self::TYPE, self.version, &self.parts(), buf)
            }
        }

        impl From<$name> for Message {
            fn from(m: $name) -> Self {
                Message::$name(m)
            }
        }
    )*};
}

message_reprs!(HereIAm, ISeeYou, RedirectAssign, RemovalQuery);

/// A `match` over the four variants of a [`Message`] with the same arm, the inner message bound
/// to `$m`.
macro_rules! each {
    ($msg:expr, $m:ident => $arm:expr) => {
        match $msg {
            Message::HereIAm($m) => $arm,
            Message::ISeeYou($m) => $arm,
            Message::RedirectAssign($m) => $arm,
            Message::RemovalQuery($m) => $arm,
        }
    };
}

/// The message type of a `Repr` value.
const fn type_of<M: MessageRepr>(_: &M) -> MessageType {
    M::TYPE
}

/// HERE_I_AM (cache → router).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HereIAm {
    /// Header version.
    pub version: Version,
    /// Security Info (0).
    pub security: Security,
    /// Service Info (1).
    pub service: ServiceInfo,
    /// Web-Cache Identity Info (3).
    pub identity: WebCacheIdentity,
    /// Web-Cache View Info (5).
    pub view: WebCacheViewInfo,
    /// Capabilities Info (8).
    pub capabilities: Option<Capabilities>,
    /// Command Extension (15).
    pub command: Option<CommandExtension>,
    /// Address Table (17, 2.01).
    pub address_table: Option<AddressTable>,
}

impl HereIAm {
    fn parts(&self) -> [Option<&dyn Part>; 7] {
        [
            Some(&self.security),
            Some(&self.service),
            Some(&self.identity),
            Some(&self.view),
            opt(&self.capabilities),
            opt(&self.command),
            opt(&self.address_table),
        ]
    }

    fn from_frame(f: &Frame<'_>) -> Result<Self, Error> {
        let address_table = f.first()?;
        Ok(HereIAm {
            version: f.version,
            security: f.required()?,
            service: f.required()?,
            identity: f.required()?,
            view: f.required()?,
            capabilities: f.first()?,
            command: f.first()?,
            address_table,
        })
    }
}

/// I_SEE_YOU (router → cache).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ISeeYou {
    /// Header version.
    pub version: Version,
    /// Security Info (0).
    pub security: Security,
    /// Service Info (1).
    pub service: ServiceInfo,
    /// Router Identity Info (2).
    pub identity: RouterIdentityInfo,
    /// Router View Info (4).
    pub view: RouterViewInfo,
    /// Assignment Map (14).
    pub assignment_map: Option<AssignmentMap>,
    /// Alternate Assignment Map (16, 2.01). Normally at most one of the two maps is present.
    pub alt_assignment_map: Option<AlternateAssignmentMap>,
    /// Capabilities Info (8).
    pub capabilities: Option<Capabilities>,
    /// Command Extension (15).
    pub command: Option<CommandExtension>,
    /// Address Table (17, 2.01).
    pub address_table: Option<AddressTable>,
}

impl ISeeYou {
    fn parts(&self) -> [Option<&dyn Part>; 9] {
        [
            Some(&self.security),
            Some(&self.service),
            Some(&self.identity),
            Some(&self.view),
            opt(&self.assignment_map),
            opt(&self.alt_assignment_map),
            opt(&self.capabilities),
            opt(&self.command),
            opt(&self.address_table),
        ]
    }

    fn from_frame(f: &Frame<'_>) -> Result<Self, Error> {
        let address_table = f.first()?;
        Ok(ISeeYou {
            version: f.version,
            security: f.required()?,
            service: f.required()?,
            identity: f.required()?,
            view: f.required()?,
            assignment_map: f.first()?,
            alt_assignment_map: f.first()?,
            capabilities: f.first()?,
            command: f.first()?,
            address_table,
        })
    }
}

/// The assignment carried by a REDIRECT_ASSIGN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Assignment {
    /// Assignment Info (6): hash.
    Hash(AssignmentInfo),
    /// Alternate Assignment (13): hash, mask or alternate mask.
    Alternate(AlternateAssignment),
}

/// REDIRECT_ASSIGN (designated cache → router).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectAssign {
    /// Header version.
    pub version: Version,
    /// Security Info (0).
    pub security: Security,
    /// Service Info (1).
    pub service: ServiceInfo,
    /// Assignment Info (6) or Alternate Assignment (13); if both are present, 6 wins.
    pub assignment: Assignment,
    /// Address Table (17, 2.01).
    pub address_table: Option<AddressTable>,
}

impl RedirectAssign {
    fn parts(&self) -> [Option<&dyn Part>; 4] {
        let a: &dyn Part = match &self.assignment {
            Assignment::Hash(a) => a,
            Assignment::Alternate(a) => a,
        };
        [
            Some(&self.security),
            Some(&self.service),
            Some(a),
            opt(&self.address_table),
        ]
    }

    fn from_frame(f: &Frame<'_>) -> Result<Self, Error> {
        let address_table = f.first()?;
        let security = f.required()?;
        let service = f.required()?;
        let assignment = match f.first::<AssignmentInfo>()? {
            Some(a) => Assignment::Hash(a),
            None => match f.first::<AlternateAssignment>()? {
                Some(a) => Assignment::Alternate(a),
                None => return Err(Error::MissingComponent(Layer::AssignmentInfo)),
            },
        };
        Ok(RedirectAssign {
            version: f.version,
            security,
            service,
            assignment,
            address_table,
        })
    }
}

/// REMOVAL_QUERY (router → cache).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemovalQuery {
    /// Header version.
    pub version: Version,
    /// Security Info (0).
    pub security: Security,
    /// Service Info (1).
    pub service: ServiceInfo,
    /// Router Query Info (7).
    pub query: RouterQueryInfo,
    /// Address Table (17, 2.01).
    pub address_table: Option<AddressTable>,
}

impl RemovalQuery {
    fn parts(&self) -> [Option<&dyn Part>; 4] {
        [
            Some(&self.security),
            Some(&self.service),
            Some(&self.query),
            opt(&self.address_table),
        ]
    }

    fn from_frame(f: &Frame<'_>) -> Result<Self, Error> {
        let address_table = f.first()?;
        Ok(RemovalQuery {
            version: f.version,
            security: f.required()?,
            service: f.required()?,
            query: f.required()?,
            address_table,
        })
    }
}

/// Any WCCPv2 message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// HERE_I_AM.
    HereIAm(HereIAm),
    /// I_SEE_YOU.
    ISeeYou(ISeeYou),
    /// REDIRECT_ASSIGN.
    RedirectAssign(RedirectAssign),
    /// REMOVAL_QUERY.
    RemovalQuery(RemovalQuery),
}

impl Message {
    /// Parses any message from a UDP payload (see the module docs for the rules).
    ///
    /// # Errors
    /// `Truncated`, `UnknownMessageType`, `UnsupportedVersion`, `LengthMismatch`,
    /// `MissingComponent`, or any component error.
    pub fn parse(buf: &[u8]) -> Result<Self, Error> {
        let f = frame(buf)?;
        Ok(match f.msg_type {
            MessageType::HereIAm => Message::HereIAm(HereIAm::from_frame(&f)?),
            MessageType::ISeeYou => Message::ISeeYou(ISeeYou::from_frame(&f)?),
            MessageType::RedirectAssign => Message::RedirectAssign(RedirectAssign::from_frame(&f)?),
            MessageType::RemovalQuery => Message::RemovalQuery(RemovalQuery::from_frame(&f)?),
        })
    }

    /// The message type.
    pub fn msg_type(&self) -> MessageType {
        each!(self, m => type_of(m))
    }

    /// Header version.
    pub fn version(&self) -> Version {
        each!(self, m => m.version)
    }

    /// Security Info.
    pub fn security(&self) -> &Security {
        each!(self, m => &m.security)
    }

    /// Service Info.
    pub fn service(&self) -> &ServiceInfo {
        each!(self, m => &m.service)
    }

    /// Address Table, if any.
    pub fn address_table(&self) -> Option<&AddressTable> {
        each!(self, m => m.address_table.as_ref())
    }

    /// Resolves an address element of this message against its Address Table, if it has one
    /// (see [`crate::Addr::resolve`]).
    ///
    /// # Errors
    /// `Invalid { field: AddressIndex }` for an index outside the table.
    pub fn resolve(&self, addr: crate::Addr) -> Result<core::net::IpAddr, Error> {
        addr.resolve(self.address_table())
    }

    /// Calls `f` with every address element of the message (identities, views, assignments,
    /// masks and values, commands, query fields), in component order.
    pub fn for_each_addr(&self, f: &mut dyn FnMut(crate::Addr)) {
        use crate::component::{AltAssignmentBody, AssignmentData, Command, MaskValueSet};
        fn sets(s: &[MaskValueSet], f: &mut dyn FnMut(crate::Addr)) {
            for set in s {
                f(set.mask.src_addr);
                f(set.mask.dst_addr);
                for v in &set.values {
                    f(v.src_addr);
                    f(v.dst_addr);
                    f(v.cache);
                }
            }
        }
        fn body(b: &AltAssignmentBody, f: &mut dyn FnMut(crate::Addr)) {
            match b {
                AltAssignmentBody::Hash(h) => h.caches.iter().for_each(|a| f(*a)),
                AltAssignmentBody::Mask(s) => sets(s, f),
                AltAssignmentBody::AltMask(s) => {
                    for set in s {
                        f(set.mask.src_addr);
                        f(set.mask.dst_addr);
                        set.caches.iter().for_each(|c| f(c.cache));
                    }
                }
                AltAssignmentBody::Unknown { .. } => {}
            }
        }
        fn identity(i: &WebCacheIdentity, f: &mut dyn FnMut(crate::Addr)) {
            f(i.addr);
            if let AssignmentData::Mask(m) = &i.data {
                sets(&m.sets, f);
            }
        }
        fn commands(c: Option<&CommandExtension>, f: &mut dyn FnMut(crate::Addr)) {
            for c in c.iter().flat_map(|c| &c.commands) {
                if let Command::Shutdown(a) | Command::ShutdownResponse(a) = c {
                    f(*a);
                }
            }
        }
        match self {
            Message::HereIAm(m) => {
                identity(&m.identity, f);
                m.view.routers.iter().for_each(|r| f(r.addr));
                m.view.caches.iter().for_each(|a| f(*a));
                commands(m.command.as_ref(), f);
            }
            Message::ISeeYou(m) => {
                f(m.identity.router.addr);
                f(m.identity.sent_to);
                m.identity.received_from.iter().for_each(|a| f(*a));
                f(m.view.key.addr);
                m.view.routers.iter().for_each(|a| f(*a));
                m.view.caches.iter().for_each(|c| identity(c, f));
                if let Some(map) = &m.assignment_map {
                    sets(&map.sets, f);
                }
                if let Some(map) = &m.alt_assignment_map {
                    body(&map.body, f);
                }
                commands(m.command.as_ref(), f);
            }
            Message::RedirectAssign(m) => match &m.assignment {
                Assignment::Hash(a) => {
                    f(a.key.addr);
                    a.routers.iter().for_each(|r| f(r.addr));
                    a.hash.caches.iter().for_each(|c| f(*c));
                }
                Assignment::Alternate(a) => {
                    f(a.key.addr);
                    a.routers.iter().for_each(|r| f(r.addr));
                    body(&a.body, f);
                }
            },
            Message::RemovalQuery(m) => {
                f(m.query.router);
                f(m.query.sent_to);
                f(m.query.target);
            }
        }
    }

    /// With an Address Table, checks that every address element is a valid index into it
    /// (docs/protocol.md §2.1); without one, always `Ok`. Parsing does not do this by itself, so that a
    /// receiver can decide how strict to be.
    ///
    /// # Errors
    /// `Invalid { layer: AddressTable, field: AddressIndex, value }` for the first bad element.
    pub fn check_addresses(&self) -> Result<(), Error> {
        let Some(table) = self.address_table() else {
            return Ok(());
        };
        let mut first = Ok(());
        self.for_each_addr(&mut |a| {
            if first.is_ok() {
                first = a.resolve(Some(table)).map(|_| ());
            }
        });
        first
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        each!(self, m => m.buffer_len())
    }

    /// Writes the message into exactly `buffer_len()` octets.
    ///
    /// # Errors
    /// As [`MessageRepr::emit`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        each!(self, m => m.emit(buf))
    }

    /// Emits into a new vector.
    ///
    /// # Errors
    /// As [`MessageRepr::emit`].
    pub fn to_vec(&self) -> Result<Vec<u8>, Error> {
        let mut v = alloc::vec![0u8; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}
