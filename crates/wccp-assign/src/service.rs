//! The service model shared by the router control plane and the data plane (docs/protocol.md 2.3, 3.1).
//!
//! A [`ServiceDef`] is what a Service Info component (type 1) says, with the implied parts of
//! well-known services filled in: standard service 0 ("web-cache") is TCP destination port 80,
//! priority 240, hashed on the destination address (docs/protocol.md A14).

use core::fmt;

use crate::method::Named;
use crate::spread::MaskField;

/// Service flags (Service Info offset 4, docs/protocol.md 2.3). Values of the 32-bit field.
pub mod flags {
    /// Source address in the primary hash key.
    pub const SRC_IP_HASH: u32 = 0x0001;
    /// Destination address in the primary hash key.
    pub const DST_IP_HASH: u32 = 0x0002;
    /// Source port in the primary hash key.
    pub const SRC_PORT_HASH: u32 = 0x0004;
    /// Destination port in the primary hash key.
    pub const DST_PORT_HASH: u32 = 0x0008;
    /// The port list is valid.
    pub const PORTS_DEFINED: u32 = 0x0010;
    /// The port list names source ports (else destination ports).
    pub const PORTS_SOURCE: u32 = 0x0020;
    /// 2.01: protocol 0 means IP protocol 0 literally, not "all protocols".
    pub const REDIRECT_ONLY_PROTOCOL_0: u32 = 0x0040;
    /// Source address in the alternate hash key.
    pub const SRC_IP_ALT_HASH: u32 = 0x0100;
    /// Destination address in the alternate hash key.
    pub const DST_IP_ALT_HASH: u32 = 0x0200;
    /// Source port in the alternate hash key.
    pub const SRC_PORT_ALT_HASH: u32 = 0x0400;
    /// Destination port in the alternate hash key.
    pub const DST_PORT_ALT_HASH: u32 = 0x0800;
    /// Bits that must be zero.
    pub const RESERVED: u32 = 0xFFFF_F080;
}

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// The priority implied for well-known (standard) services (W 5.6.2).
pub const STANDARD_PRIORITY: u8 = 240;

/// One service group's traffic definition.
///
/// For a standard service the wire carries only the id; [`ServiceDef::well_known`] supplies the
/// implied fields. For a dynamic service every field comes from the Service Info component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceDef {
    /// `true` for a dynamic service, `false` for a standard one.
    pub dynamic: bool,
    /// Service id 0-255.
    pub id: u8,
    /// Priority (higher is checked first, docs/protocol.md 3.1).
    pub priority: u8,
    /// IP protocol (0 = all protocols unless [`flags::REDIRECT_ONLY_PROTOCOL_0`]).
    pub protocol: u8,
    /// Service flags ([`flags`]); for standard services the implied hash flags.
    pub flags: u32,
    /// The 8 port slots as on the wire (zero-terminated list).
    pub ports: [u16; 8],
}

/// [`ServiceDef::matches`] with the definition decoded ahead of time ([`ServiceDef::matcher`]):
/// the data plane tests every packet against its services' definitions, and decoding the flags
/// and walking the zero-terminated port list on each test costs more than the test itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matcher {
    /// Protocol 0 without REDIRECT_ONLY_PROTOCOL_0: every protocol.
    any_protocol: bool,
    /// Otherwise the one protocol that matches.
    protocol: u8,
    /// The port list is not active: every port.
    all_ports: bool,
    /// The list holds source ports (PORTS_SOURCE).
    source_port: bool,
    /// The active port list, zero from its first zero on.
    ports: [u16; 8],
    /// For the commonest definition, one protocol and one destination port (web-cache: TCP
    /// 80): `protocol << 16 | port`, so that a packet matches in one comparison; 0 otherwise
    /// (port 0 is never in a list).
    single: u32,
}

impl Matcher {
    /// The one protocol and one destination port of the commonest definition (web-cache: TCP
    /// 80), when the definition is of that form: then [`Matcher::matches`] is exactly
    /// `proto == protocol && dport == port`.
    #[inline]
    pub fn single(&self) -> Option<(u8, u16)> {
        (self.single != 0).then_some(((self.single >> 16) as u8, self.single as u16))
    }

    /// Exactly [`ServiceDef::matches`] of the definition it was made from.
    #[inline(always)]
    pub fn matches(&self, proto: u8, sport: u16, dport: u16) -> bool {
        if self.single != 0 {
            return (u32::from(proto) << 16 | u32::from(dport)) == self.single;
        }
        if !self.any_protocol && proto != self.protocol {
            return false;
        }
        if self.all_ports {
            return true;
        }
        let port = if self.source_port { sport } else { dport };
        // All eight slots, without an early exit, so that the compiler can compare them at
        // once; the zero padding matches nothing because port 0 never matches.
        port != 0 && self.ports.iter().fold(false, |m, &p| m | (p == port))
    }
}

/// Why a Service Info cannot become a [`ServiceDef`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceError {
    /// A standard service other than the known ones (only 0 = web-cache is defined).
    UnknownStandard {
        /// The id on the wire.
        id: u8,
    },
    /// Reserved service flag bits are set.
    ReservedFlags {
        /// The whole flags field.
        flags: u32,
    },
    /// The service type octet is neither 0 (standard) nor 1 (dynamic).
    BadType {
        /// The type octet.
        service_type: u8,
    },
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ServiceError::UnknownStandard { id } => {
                write!(f, "Service Info: unknown standard service id {id}")
            }
            ServiceError::ReservedFlags { flags } => {
                write!(f, "Service Info: reserved flag bits set in {flags:#010x}")
            }
            ServiceError::BadType { service_type } => {
                write!(
                    f,
                    "Service Info: service type {service_type} is neither 0 nor 1"
                )
            }
        }
    }
}

impl std::error::Error for ServiceError {}

/// Which field of two dynamic definitions differs (docs/protocol.md 2.3: ATS compares protocol,
/// flags, priority and all 8 port slots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflict {
    /// Standard vs dynamic, or different id.
    Identity,
    /// Priority.
    Priority,
    /// IP protocol.
    Protocol,
    /// Service flags.
    Flags,
    /// Port slot `n` (0-7).
    Port(u8),
}

impl Conflict {
    /// Field name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Conflict::Identity => "identity",
            Conflict::Priority => "priority",
            Conflict::Protocol => "protocol",
            Conflict::Flags => "flags",
            Conflict::Port(_) => "ports",
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Conflict::Port(n) => write!(f, "port slot {n}"),
            c => f.write_str(c.as_str()),
        }
    }
}

impl ServiceDef {
    /// Standard service 0, "web-cache": TCP destination port 80, priority 240, hashed on the
    /// destination address (docs/protocol.md A14; the alternate hash is unspecified there and we use the
    /// source address).
    pub const WEB_CACHE: ServiceDef = ServiceDef {
        dynamic: false,
        id: 0,
        priority: STANDARD_PRIORITY,
        protocol: PROTO_TCP,
        flags: flags::DST_IP_HASH | flags::SRC_IP_ALT_HASH | flags::PORTS_DEFINED,
        ports: [80, 0, 0, 0, 0, 0, 0, 0],
    };

    /// The implied definition of standard service `id` (`None` for ids nobody defines).
    pub const fn well_known(id: u8) -> Option<ServiceDef> {
        match id {
            0 => Some(ServiceDef::WEB_CACHE),
            _ => None,
        }
    }

    /// A dynamic service from its wire fields.
    ///
    /// # Errors
    /// [`ServiceError::ReservedFlags`] when reserved flag bits are set.
    pub const fn dynamic(
        id: u8,
        priority: u8,
        protocol: u8,
        service_flags: u32,
        ports: [u16; 8],
    ) -> Result<ServiceDef, ServiceError> {
        if service_flags & flags::RESERVED != 0 {
            return Err(ServiceError::ReservedFlags {
                flags: service_flags,
            });
        }
        Ok(ServiceDef {
            dynamic: true,
            id,
            priority,
            protocol,
            flags: service_flags,
            ports,
        })
    }

    /// A definition from the raw Service Info fields (type octet 0 standard / 1 dynamic). The
    /// other fields of a standard service are ignored (they must be zero on the wire).
    ///
    /// # Errors
    /// [`ServiceError`] naming the offending field.
    pub const fn from_fields(
        service_type: u8,
        id: u8,
        priority: u8,
        protocol: u8,
        service_flags: u32,
        ports: [u16; 8],
    ) -> Result<ServiceDef, ServiceError> {
        match service_type {
            0 => match ServiceDef::well_known(id) {
                Some(d) => Ok(d),
                None => Err(ServiceError::UnknownStandard { id }),
            },
            1 => ServiceDef::dynamic(id, priority, protocol, service_flags, ports),
            t => Err(ServiceError::BadType { service_type: t }),
        }
    }

    /// The definition a Service Info component (type 1) describes.
    ///
    /// # Errors
    /// As [`ServiceDef::from_fields`].
    pub fn from_wire(info: &wire::ServiceInfo) -> Result<ServiceDef, ServiceError> {
        let service_type = match info.service_type {
            wire::ServiceType::Standard => 0,
            wire::ServiceType::Dynamic => 1,
        };
        ServiceDef::from_fields(
            service_type,
            info.id,
            info.priority,
            info.protocol,
            info.flags.bits(),
            info.ports,
        )
    }

    /// The Service Info component for this definition (standard services: id only, every other
    /// field zero, as on the wire).
    pub fn to_wire(&self) -> wire::ServiceInfo {
        if !self.dynamic {
            return wire::ServiceInfo::standard(self.id);
        }
        wire::ServiceInfo {
            service_type: wire::ServiceType::Dynamic,
            id: self.id,
            priority: self.priority,
            protocol: self.protocol,
            flags: wire::ServiceFlags(self.flags),
            ports: self.ports,
        }
    }

    /// Whether the port list applies: PORTS_DEFINED and protocol TCP or UDP.
    pub const fn ports_active(&self) -> bool {
        self.flags & flags::PORTS_DEFINED != 0
            && (self.protocol == PROTO_TCP || self.protocol == PROTO_UDP)
    }

    /// The active ports: the slots before the first 0 (empty when the list is inactive).
    pub fn port_list(&self) -> &[u16] {
        if !self.ports_active() {
            return &[];
        }
        let n = self.ports.iter().position(|&p| p == 0).unwrap_or(8);
        &self.ports[..n]
    }

    /// Does a packet with IP protocol `proto` and ports `sport`/`dport` belong to this service?
    /// (docs/protocol.md 2.3, 3.1.) Protocol 0 means every protocol unless
    /// [`flags::REDIRECT_ONLY_PROTOCOL_0`]; with active ports the source or destination port
    /// (per [`flags::PORTS_SOURCE`]) must be in the list. A defined but empty list matches
    /// nothing.
    #[inline(always)]
    pub fn matches(&self, proto: u8, sport: u16, dport: u16) -> bool {
        let proto_ok = if self.protocol == 0 {
            self.flags & flags::REDIRECT_ONLY_PROTOCOL_0 == 0 || proto == 0
        } else {
            proto == self.protocol
        };
        if !proto_ok {
            return false;
        }
        if !self.ports_active() {
            return true;
        }
        let port = if self.flags & flags::PORTS_SOURCE != 0 {
            sport
        } else {
            dport
        };
        if port == 0 {
            return false;
        }
        // `port_list().contains(&port)`, in one pass: the list ends at the first 0.
        for &p in &self.ports {
            if p == port {
                return true;
            }
            if p == 0 {
                return false;
            }
        }
        false
    }

    /// [`ServiceDef::matches`] compiled for a per-packet loop: the protocol rule, the port
    /// selector and the port list decoded once (see [`Matcher`]).
    pub fn matcher(&self) -> Matcher {
        let mut ports = [0u16; 8];
        let list = self.port_list();
        ports[..list.len()].copy_from_slice(list);
        let any_protocol = self.protocol == 0 && self.flags & flags::REDIRECT_ONLY_PROTOCOL_0 == 0;
        let all_ports = !self.ports_active();
        let source_port = self.flags & flags::PORTS_SOURCE != 0;
        let single = match list {
            [port] if !any_protocol && !all_ports && !source_port && *port != 0 => {
                u32::from(self.protocol) << 16 | u32::from(*port)
            }
            _ => 0,
        };
        Matcher {
            any_protocol,
            // Protocol 0 with REDIRECT_ONLY_PROTOCOL_0 matches protocol 0 alone.
            protocol: self.protocol,
            all_ports,
            source_port,
            ports,
            single,
        }
    }

    /// The first field in which `other` differs from `self`, or `None` when they define the same
    /// service (docs/protocol.md 2.3: later HERE_I_AMs with a conflicting definition are discarded).
    pub fn conflict_with(&self, other: &ServiceDef) -> Option<Conflict> {
        if self.dynamic != other.dynamic || self.id != other.id {
            return Some(Conflict::Identity);
        }
        if !self.dynamic {
            return None;
        }
        if self.priority != other.priority {
            return Some(Conflict::Priority);
        }
        if self.protocol != other.protocol {
            return Some(Conflict::Protocol);
        }
        if self.flags != other.flags {
            return Some(Conflict::Flags);
        }
        (0u8..8)
            .find(|&i| self.ports[usize::from(i)] != other.ports[usize::from(i)])
            .map(Conflict::Port)
    }
}

impl fmt::Display for ServiceDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.dynamic { "dynamic" } else { "standard" };
        write!(
            f,
            "{kind} {} (priority {}, protocol {}, flags {:#06x}, ports {:?})",
            self.id,
            self.priority,
            self.protocol,
            self.flags,
            self.port_list()
        )
    }
}

/// A packet field that feeds a hash key or a mask (service flags, docs/protocol.md 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashField {
    /// Source IPv4 address.
    SrcIp,
    /// Destination IPv4 address.
    DstIp,
    /// Source TCP/UDP port.
    SrcPort,
    /// Destination TCP/UDP port.
    DstPort,
}

impl HashField {
    /// The primary-hash flag bit; the alternate-hash bit is this shifted left by 8.
    pub const fn primary_flag(self) -> u32 {
        match self {
            HashField::SrcIp => flags::SRC_IP_HASH,
            HashField::DstIp => flags::DST_IP_HASH,
            HashField::SrcPort => flags::SRC_PORT_HASH,
            HashField::DstPort => flags::DST_PORT_HASH,
        }
    }

    /// Name in the configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            HashField::SrcIp => "src_ip",
            HashField::DstIp => "dst_ip",
            HashField::SrcPort => "src_port",
            HashField::DstPort => "dst_port",
        }
    }
}

impl Named for HashField {
    const ALL: &'static [HashField] = &[
        HashField::SrcIp,
        HashField::DstIp,
        HashField::SrcPort,
        HashField::DstPort,
    ];

    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Which packet fields a hash key uses (one of the primary / alternate flag groups).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HashFields {
    /// Source IP address.
    pub src_ip: bool,
    /// Destination IP address.
    pub dst_ip: bool,
    /// Source port.
    pub src_port: bool,
    /// Destination port.
    pub dst_port: bool,
}

impl HashFields {
    /// No fields.
    pub const NONE: HashFields = HashFields {
        src_ip: false,
        dst_ip: false,
        src_port: false,
        dst_port: false,
    };
    /// Destination IP only (the usual web-cache choice).
    pub const DST_IP: HashFields = HashFields {
        dst_ip: true,
        ..HashFields::NONE
    };
    /// Source IP only.
    pub const SRC_IP: HashFields = HashFields {
        src_ip: true,
        ..HashFields::NONE
    };

    /// The four flag bits in primary position (0x1 src IP … 0x8 dst port); shift left by 8 for
    /// the alternate hash.
    pub const fn bits(self) -> u32 {
        (self.src_ip as u32)
            | (self.dst_ip as u32) << 1
            | (self.src_port as u32) << 2
            | (self.dst_port as u32) << 3
    }

    /// Whether no field is set.
    pub const fn is_empty(self) -> bool {
        self.bits() == 0
    }

    /// Adds `field`.
    pub fn insert(&mut self, field: HashField) {
        *match field {
            HashField::SrcIp => &mut self.src_ip,
            HashField::DstIp => &mut self.dst_ip,
            HashField::SrcPort => &mut self.src_port,
            HashField::DstPort => &mut self.dst_port,
        } = true;
    }
}

impl FromIterator<HashField> for HashFields {
    fn from_iter<I: IntoIterator<Item = HashField>>(iter: I) -> HashFields {
        let mut h = HashFields::NONE;
        for f in iter {
            h.insert(f);
        }
        h
    }
}

/// Whether a service's port list matches source or destination ports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PortsAre {
    /// Match the destination port (default).
    #[default]
    Destination,
    /// Match the source port (flag [`flags::PORTS_SOURCE`]).
    Source,
}

/// A service group definition as configured: what a cache announces and a router may fix
/// (docs/protocol.md 2.3), written as lists rather than flag bits. A standard service carries its
/// implied definition and sends only its id; [`ServiceDefinition::to_def`] gives the
/// [`ServiceDef`] the tables match packets with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDefinition {
    /// `true` for a dynamic service.
    pub dynamic: bool,
    /// Service id 0-255.
    pub id: u8,
    /// Priority (dynamic only; standard services have an implied 240 and send 0).
    pub priority: u8,
    /// IP protocol number (0 = all). Standard service 0: 6.
    pub protocol: u8,
    /// Up to 8 ports; empty = all ports. Standard service 0: `[80]`.
    pub ports: Vec<u16>,
    /// Which port the list matches.
    pub ports_are: PortsAre,
    /// Primary hash fields.
    pub hash: HashFields,
    /// Alternate hash fields.
    pub alt_hash: HashFields,
}

impl ServiceDefinition {
    /// The well-known service 0, "web-cache": TCP destination port 80, hashed on destination IP.
    pub fn web_cache() -> ServiceDefinition {
        ServiceDefinition {
            dynamic: false,
            id: 0,
            priority: STANDARD_PRIORITY,
            protocol: PROTO_TCP,
            ports: vec![80],
            ports_are: PortsAre::Destination,
            hash: HashFields::DST_IP,
            alt_hash: HashFields::NONE,
        }
    }

    /// The Service Info flags as sent on the wire (0 for standard services, docs/protocol.md 2.3).
    pub fn flags(&self) -> u32 {
        if !self.dynamic {
            return 0;
        }
        let mut f = self.hash.bits() | self.alt_hash.bits() << 8;
        if !self.ports.is_empty() {
            f |= flags::PORTS_DEFINED;
            if self.ports_are == PortsAre::Source {
                f |= flags::PORTS_SOURCE;
            }
        }
        f
    }

    /// The 8 port slots as sent on the wire (zeros for standard services).
    pub fn wire_ports(&self) -> [u16; 8] {
        let mut p = [0u16; 8];
        if self.dynamic {
            for (slot, port) in p.iter_mut().zip(&self.ports) {
                *slot = *port;
            }
        }
        p
    }

    /// The Service Info component announcing this definition (standard services: the id only).
    pub fn service_info(&self) -> wire::ServiceInfo {
        if !self.dynamic {
            return wire::ServiceInfo::standard(self.id);
        }
        wire::ServiceInfo {
            service_type: wire::ServiceType::Dynamic,
            id: self.id,
            priority: self.priority,
            protocol: self.protocol,
            flags: wire::ServiceFlags(self.flags()),
            ports: self.wire_ports(),
        }
    }

    /// The definition packets are matched with: what a peer receiving [`Self::service_info`]
    /// understands.
    ///
    /// # Errors
    /// As [`ServiceDef::from_wire`]: a standard service nobody defines.
    pub fn to_def(&self) -> Result<ServiceDef, ServiceError> {
        ServiceDef::from_wire(&self.service_info())
    }

    /// The field Squid-style mask assignment uses for this service ([`MaskField::for_service`]).
    pub fn default_mask_field(&self) -> MaskField {
        MaskField::for_service(!self.dynamic, self.flags())
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;

    /// TV-6: dynamic 123, priority 240, TCP, DST_IP_HASH|PORTS_DEFINED, ports 80, 8080.
    fn tv6() -> ServiceDef {
        ServiceDef::from_fields(1, 123, 240, 6, 0x12, [80, 8080, 0, 0, 0, 0, 0, 0]).unwrap()
    }

    #[test]
    fn web_cache_is_tcp_dst_80() {
        let d = ServiceDef::from_fields(0, 0, 0, 0, 0, [0; 8]).unwrap();
        assert_eq!(d, ServiceDef::WEB_CACHE);
        assert_eq!(d.priority, 240);
        assert!(d.matches(6, 40000, 80));
        assert!(!d.matches(6, 80, 443));
        assert!(!d.matches(17, 40000, 80));
        // Non-zero junk in a standard Service Info is ignored.
        let junk = ServiceDef::from_fields(0, 0, 7, 17, 0x30, [1; 8]).unwrap();
        assert_eq!(junk, ServiceDef::WEB_CACHE);
        assert_eq!(
            ServiceDef::from_fields(0, 1, 0, 0, 0, [0; 8]),
            Err(ServiceError::UnknownStandard { id: 1 })
        );
        assert_eq!(
            ServiceDef::from_fields(2, 1, 0, 0, 0, [0; 8]),
            Err(ServiceError::BadType { service_type: 2 })
        );
    }

    #[test]
    fn dynamic_destination_ports() {
        let d = tv6();
        assert_eq!(d.port_list(), &[80, 8080]);
        assert!(d.matches(6, 1234, 80));
        assert!(d.matches(6, 1234, 8080));
        assert!(!d.matches(6, 80, 443));
        assert!(!d.matches(17, 1234, 80));
    }

    #[test]
    fn source_ports_and_termination() {
        let d = ServiceDef::dynamic(
            90,
            1,
            17,
            PORTS_DEFINED | PORTS_SOURCE,
            [53, 0, 99, 0, 0, 0, 0, 0],
        )
        .unwrap();
        assert_eq!(d.port_list(), &[53]);
        assert!(d.matches(17, 53, 1));
        assert!(!d.matches(17, 1, 53));
        // Entries after the first 0 are ignored.
        assert!(!d.matches(17, 99, 1));
        // A defined but empty list matches nothing.
        let e = ServiceDef::dynamic(91, 1, 6, PORTS_DEFINED, [0; 8]).unwrap();
        assert!(!e.matches(6, 80, 80));
    }

    #[test]
    fn ports_ignored_without_flag_or_for_other_protocols() {
        let d = ServiceDef::dynamic(92, 1, 6, 0, [80, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(d.port_list().is_empty());
        assert!(d.matches(6, 1, 2));
        // PORTS_DEFINED with protocol 47: ports inactive.
        let g = ServiceDef::dynamic(93, 1, 47, PORTS_DEFINED, [80, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(g.matches(47, 0, 0));
        assert!(!g.matches(6, 0, 80));
    }

    #[test]
    fn protocol_zero() {
        let all = ServiceDef::dynamic(94, 1, 0, 0, [0; 8]).unwrap();
        assert!(all.matches(6, 1, 2) && all.matches(17, 1, 2) && all.matches(1, 0, 0));
        let only0 = ServiceDef::dynamic(95, 1, 0, REDIRECT_ONLY_PROTOCOL_0, [0; 8]).unwrap();
        assert!(only0.matches(0, 0, 0));
        assert!(!only0.matches(6, 1, 80));
    }

    #[test]
    fn reserved_flags_rejected() {
        assert_eq!(
            ServiceDef::dynamic(96, 1, 6, 0x80, [0; 8]),
            Err(ServiceError::ReservedFlags { flags: 0x80 })
        );
        assert_eq!(
            ServiceDef::from_fields(1, 96, 1, 6, 0x1_0000, [0; 8]),
            Err(ServiceError::ReservedFlags { flags: 0x1_0000 })
        );
    }

    #[test]
    fn wire_round_trip() {
        let d = tv6();
        let w = d.to_wire();
        assert_eq!(w.flags.bits(), 0x12);
        assert_eq!(ServiceDef::from_wire(&w), Ok(d));
        let s = ServiceDef::WEB_CACHE.to_wire();
        assert_eq!(s, wire::ServiceInfo::standard(0));
        assert_eq!(ServiceDef::from_wire(&s), Ok(ServiceDef::WEB_CACHE));
    }

    #[test]
    fn conflicts() {
        let a = tv6();
        assert_eq!(a.conflict_with(&a), None);
        let mut b = a;
        b.priority = 1;
        assert_eq!(a.conflict_with(&b), Some(Conflict::Priority));
        let mut b = a;
        b.protocol = 17;
        assert_eq!(a.conflict_with(&b), Some(Conflict::Protocol));
        let mut b = a;
        b.flags |= SRC_IP_HASH;
        assert_eq!(a.conflict_with(&b), Some(Conflict::Flags));
        let mut b = a;
        b.ports[5] = 1;
        assert_eq!(a.conflict_with(&b), Some(Conflict::Port(5)));
        let mut b = a;
        b.id = 124;
        assert_eq!(a.conflict_with(&b), Some(Conflict::Identity));
        assert_eq!(
            a.conflict_with(&ServiceDef::WEB_CACHE),
            Some(Conflict::Identity)
        );
        assert_eq!(
            ServiceDef::WEB_CACHE.conflict_with(&ServiceDef::WEB_CACHE),
            None
        );
    }

    #[test]
    fn definition_flags() {
        let mut d = ServiceDefinition::web_cache();
        assert_eq!(d.flags(), 0);
        assert_eq!(d.wire_ports(), [0; 8]);
        d.dynamic = true;
        d.ports = vec![80, 443];
        d.ports_are = PortsAre::Source;
        d.alt_hash = [HashField::SrcPort].into_iter().collect();
        assert_eq!(d.flags(), 0x0002 | 0x0010 | 0x0020 | 0x0400);
        assert_eq!(d.wire_ports(), [80, 443, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn definition_to_wire() {
        let web = ServiceDefinition::web_cache();
        assert_eq!(web.service_info(), wire::ServiceInfo::standard(0));
        assert_eq!(web.to_def(), Ok(ServiceDef::WEB_CACHE));
        assert_eq!(web.default_mask_field(), MaskField::DstIp);
        let d = ServiceDefinition {
            dynamic: true,
            id: 123,
            priority: 240,
            protocol: 6,
            ports: vec![80, 8080],
            ports_are: PortsAre::Destination,
            hash: HashFields::DST_IP,
            alt_hash: HashFields::NONE,
        };
        assert_eq!(d.to_def(), Ok(tv6()));
        let mut s = d.clone();
        s.alt_hash = HashFields::SRC_IP;
        assert_eq!(s.default_mask_field(), MaskField::SrcIp);
        assert_eq!(
            ServiceDefinition {
                dynamic: false,
                id: 1,
                ..d
            }
            .to_def(),
            Err(ServiceError::UnknownStandard { id: 1 })
        );
    }

    #[test]
    fn matcher_is_matches() {
        // Every protocol rule, port selector and list shape (empty, full, holes after a 0)
        // against protocols and ports at and around the listed ones.
        let lists = [
            [0u16; 8],
            [80, 0, 0, 0, 0, 0, 0, 0],
            [80, 443, 0, 8080, 0, 0, 0, 0],
            [1, 2, 3, 4, 5, 6, 7, 65535],
        ];
        let protos = [0u8, 1, 6, 17, 47, 255];
        let fl = [
            0,
            flags::PORTS_DEFINED,
            flags::PORTS_DEFINED | flags::PORTS_SOURCE,
            flags::PORTS_SOURCE,
            flags::REDIRECT_ONLY_PROTOCOL_0,
            flags::REDIRECT_ONLY_PROTOCOL_0 | flags::PORTS_DEFINED,
        ];
        let ports = [0u16, 1, 2, 7, 8, 79, 80, 81, 443, 8080, 65535];
        for list in lists {
            for protocol in protos {
                for f in fl {
                    let def = ServiceDef {
                        dynamic: true,
                        id: 90,
                        priority: 0,
                        protocol,
                        flags: f,
                        ports: list,
                    };
                    let m = def.matcher();
                    for proto in protos {
                        for sport in ports {
                            for dport in ports {
                                assert_eq!(
                                    m.matches(proto, sport, dport),
                                    def.matches(proto, sport, dport),
                                    "{def:?} {proto} {sport} {dport}"
                                );
                                if let Some((p, d)) = m.single() {
                                    assert_eq!(
                                        proto == p && dport == d,
                                        def.matches(proto, sport, dport),
                                        "single {def:?} {proto} {sport} {dport}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        // web-cache's form has the one-comparison matcher; two ports do not.
        let def = |ports| ServiceDef {
            dynamic: true,
            id: 90,
            priority: 0,
            protocol: 6,
            flags: flags::PORTS_DEFINED,
            ports,
        };
        assert_eq!(
            def([80, 0, 0, 0, 0, 0, 0, 0]).matcher().single(),
            Some((6, 80))
        );
        assert_eq!(def([80, 443, 0, 0, 0, 0, 0, 0]).matcher().single(), None);
    }
}
