//! Golden bytes per message type: hand-built `Repr` → exact octets (and back).

use std::net::{Ipv4Addr, Ipv6Addr};

use wccp_wire::{
    sign, verify, Addr, AddressTable, AltAssignmentBody, AltMaskValueSet, AlternateAssignment,
    AlternateAssignmentMap, Assignment, AssignmentData, AssignmentInfo, AssignmentKey,
    AssignmentMap, CacheValueElement, Capabilities, Capability, Command, CommandExtension, Error,
    HashAssignmentData, HashBuckets, HereIAm, ISeeYou, IdentityFlags, MaskAssignmentData,
    MaskElement, MaskValueSet, Message, MessageRepr, RedirectAssign, RemovalQuery,
    RouterAssignment, RouterIdElement, RouterIdentityInfo, RouterQueryInfo, RouterViewInfo,
    Security, ServiceFlags, ServiceInfo, ServiceType, ValueElement, Version, WebCacheIdentity,
    WebCacheViewInfo,
};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn a(s: &str) -> Addr {
    Addr::from(s.parse::<Ipv4Addr>().unwrap())
}

fn check<M: MessageRepr + PartialEq + std::fmt::Debug>(m: &M, hex: &str) {
    let want = unhex(hex);
    assert_eq!(m.buffer_len(), want.len(), "buffer_len");
    assert_eq!(m.to_vec().unwrap(), want, "emitted bytes");
    assert_eq!(&M::parse(&want).unwrap(), m, "parsed repr");
}

fn squid_hash_identity(flags: IdentityFlags) -> WebCacheIdentity {
    WebCacheIdentity {
        addr: a("10.200.0.2"),
        hash_revision: 0,
        flags,
        data: AssignmentData::Hash(HashAssignmentData {
            buckets: [0; 32],
            weight: 10000,
            status: 0,
        }),
    }
}

fn squid_caps() -> Capabilities {
    Capabilities {
        elements: vec![
            Capability::ForwardingMethod(Capability::GRE),
            Capability::AssignmentMethod(Capability::HASH),
            Capability::PacketReturnMethod(Capability::GRE),
        ],
    }
}

/// Hand-built equivalent of the captured `squidfix_here_i_am.hex`.
#[test]
fn golden_here_i_am() {
    let hia = HereIAm {
        version: Version::V2_00,
        security: Security::None,
        service: ServiceInfo::standard(0),
        identity: squid_hash_identity(IdentityFlags::EMPTY),
        view: WebCacheViewInfo {
            change_number: 1,
            routers: vec![RouterIdElement {
                addr: a("10.200.0.1"),
                receive_id: 0,
            }],
            caches: vec![],
        },
        capabilities: Some(squid_caps()),
        command: None,
        address_table: None,
    };
    check(&hia, include_str!("vectors/squidfix_here_i_am.hex"));
}

/// Hand-built equivalent of `squidfix_i_see_you_1.hex`.
#[test]
fn golden_i_see_you() {
    let isy = ISeeYou {
        version: Version::V2_00,
        security: Security::None,
        service: ServiceInfo::standard(0),
        identity: RouterIdentityInfo {
            router: RouterIdElement {
                addr: a("10.200.0.1"),
                receive_id: 2,
            },
            sent_to: a("10.200.0.1"),
            received_from: vec![a("10.200.0.2")],
        },
        view: RouterViewInfo {
            change_number: 2,
            key: AssignmentKey::default(),
            routers: vec![a("10.200.0.1")],
            caches: vec![squid_hash_identity(IdentityFlags::EMPTY)],
        },
        assignment_map: None,
        alt_assignment_map: None,
        capabilities: Some(squid_caps()),
        command: None,
        address_table: None,
    };
    check(&isy, include_str!("vectors/squidfix_i_see_you_1.hex"));
}

/// Hand-built equivalent of `squidfix_md5_redirect_assign.hex`, signed with `wccpTest`.
#[test]
fn golden_redirect_assign_md5() {
    let ra = RedirectAssign {
        version: Version::V2_00,
        security: Security::MD5_UNSIGNED,
        service: ServiceInfo::standard(0),
        assignment: Assignment::Hash(AssignmentInfo {
            key: AssignmentKey {
                addr: a("10.200.0.2"),
                change_number: 1,
            },
            routers: vec![RouterAssignment {
                addr: a("10.200.0.1"),
                receive_id: 3,
                change_number: 2,
            }],
            hash: HashBuckets {
                caches: vec![a("10.200.0.2")],
                buckets: [0; 256],
            },
        }),
        address_table: None,
    };
    let mut bytes = ra.to_vec().unwrap();
    sign(&mut bytes, b"wccpTest").unwrap();
    let want = unhex(include_str!("vectors/squidfix_md5_redirect_assign.hex"));
    assert_eq!(bytes, want);
    verify(&bytes, b"wccpTest").unwrap();
}

/// REMOVAL_QUERY, no security: 64 octets as on a real Cisco (docs/protocol.md §6).
#[test]
fn golden_removal_query() {
    let rq = RemovalQuery {
        version: Version::V2_00,
        security: Security::None,
        service: ServiceInfo::standard(0),
        query: RouterQueryInfo {
            router: a("10.200.0.1"),
            receive_id: 8,
            sent_to: a("10.200.0.1"),
            target: a("10.200.0.2"),
        },
        address_table: None,
    };
    check(
        &rq,
        "0000000d 02000038
         0000 0004 00000000
         0001 0018 00000000 00000000 00000000 00000000 00000000 00000000
         0007 0010 0ac80001 00000008 0ac80001 0ac80002",
    );
    assert_eq!(rq.buffer_len(), 64);
}

/// 2.01 I_SEE_YOU with mask identity, Assignment Map, Alternate Assignment Map, Command
/// Extension, TRANSMIT_T / TIMER_SCALE, an unknown capability, and an IPv6 Address Table.
#[test]
fn golden_i_see_you_2_01_mask_ipv6() {
    // With an Address Table, mask address fields are indices too: entry 3 is the mask ::1741.
    let mask = MaskElement {
        src_addr: Addr(0),
        dst_addr: Addr::from_index(3),
        src_port: 0,
        dst_port: 0,
    };
    let isy = ISeeYou {
        version: Version::V2_01,
        security: Security::None,
        service: ServiceInfo {
            service_type: ServiceType::Dynamic,
            id: 123,
            priority: 240,
            protocol: 6,
            flags: ServiceFlags::DST_IP_HASH | ServiceFlags::PORTS_DEFINED,
            ports: [80, 8080, 0, 0, 0, 0, 0, 0],
        },
        identity: RouterIdentityInfo {
            router: RouterIdElement {
                addr: Addr::from_index(1),
                receive_id: 7,
            },
            sent_to: Addr::from_index(1),
            received_from: vec![Addr::from_index(2)],
        },
        view: RouterViewInfo {
            change_number: 8,
            key: AssignmentKey {
                addr: Addr::from_index(2),
                change_number: 1,
            },
            routers: vec![Addr::from_index(1)],
            caches: vec![WebCacheIdentity {
                addr: Addr::from_index(2),
                hash_revision: 0,
                flags: IdentityFlags::UNASSIGNED,
                data: AssignmentData::Mask(MaskAssignmentData {
                    sets: vec![],
                    weight: 1,
                    status: 0,
                }),
            }],
        },
        assignment_map: Some(AssignmentMap {
            sets: vec![MaskValueSet {
                mask,
                values: vec![ValueElement {
                    src_addr: Addr(0),
                    dst_addr: Addr(0x0001),
                    src_port: 0,
                    dst_port: 0,
                    cache: Addr::from_index(2),
                }],
            }],
        }),
        alt_assignment_map: Some(AlternateAssignmentMap {
            body: AltAssignmentBody::AltMask(vec![AltMaskValueSet {
                mask,
                caches: vec![CacheValueElement {
                    cache: Addr::from_index(2),
                    vsns: vec![0, 5],
                }],
            }]),
        }),
        capabilities: Some(Capabilities {
            elements: vec![
                Capability::AssignmentMethod(Capability::MASK),
                Capability::TransmitT {
                    upper: 60000,
                    lower: 500,
                },
                Capability::TimerScale {
                    timeout_upper: 5,
                    timeout_lower: 1,
                    ra_upper: 5,
                    ra_lower: 1,
                },
                Capability::Unknown {
                    kind: 99,
                    value: vec![1, 2, 3, 4],
                },
            ],
        }),
        command: Some(CommandExtension {
            commands: vec![Command::ShutdownResponse(Addr::from_index(2))],
        }),
        address_table: Some(AddressTable::ipv6(&[
            "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
            "2001:db8::2".parse::<Ipv6Addr>().unwrap(),
            "::1741".parse::<Ipv6Addr>().unwrap(),
        ])),
    };
    check(
        &isy,
        "0000000b 02010128
         0000 0004 00000000
         0001 0018 017bf006 00000012 00501f90 00000000 00000000 00000000
         0002 0014 00000001 00000007 00000001 00000001 00000002
         0004 0028 00000008 00000002 00000001 00000001 00000001 00000001
                   00000002 0000 0003 00000000 0001 0000
         000e 0024 00000001 00000000 00000003 0000 0000 00000001
                   00000000 00000001 0000 0000 00000002
         0010 0028 0002 0024 00000001 00000000 00000003 0000 0000 00000001
                   00000002 00000002 00000000 00000005
         0008 0020 0002 0004 00000002 0004 0004 ea6001f4 0005 0004 05010501 0063 0004 01020304
         000f 0008 0002 0004 00000002
         0011 0038 0002 0010 00000003 20010db8000000000000000000000001
                   20010db8000000000000000000000002 00000000000000000000000000001741",
    );
    // Every address element is a valid index; one out-of-range index is reported.
    let msg = Message::ISeeYou(isy.clone());
    msg.check_addresses().unwrap();
    let mut n = 0;
    msg.for_each_addr(&mut |_| n += 1);
    // router, sent-to, received-from, key, view router, view cache, map (mask src/dst, value
    // src/dst/cache), alt map (mask src/dst, cache), command.
    assert_eq!(n, 1 + 1 + 1 + 1 + 1 + 1 + 5 + 3 + 1);
    let mut bad = isy.clone();
    bad.identity.received_from = vec![Addr::from_index(9)];
    assert!(matches!(
        Message::ISeeYou(bad).check_addresses(),
        Err(Error::Invalid {
            field: wccp_wire::FieldId::AddressIndex,
            value: 9,
            ..
        })
    ));
    // Addresses resolve through the table.
    let t = isy.address_table.as_ref();
    assert_eq!(
        isy.view.caches[0].addr.resolve(t).unwrap(),
        "2001:db8::2".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        Addr(0).resolve(t).unwrap(),
        "::".parse::<std::net::IpAddr>().unwrap()
    );
    assert!(matches!(
        Addr(4).resolve(t),
        Err(Error::Invalid {
            field: wccp_wire::FieldId::AddressIndex,
            value: 4,
            ..
        })
    ));
    assert!(Addr(0x0001_0001).resolve(t).is_err());
    assert_eq!(
        a("10.0.0.1").resolve(None).unwrap(),
        "10.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
}

/// REDIRECT_ASSIGN with an Alternate Assignment (mask), as a third-party mask cache sends.
#[test]
fn golden_redirect_assign_alternate_mask() {
    let ra = RedirectAssign {
        version: Version::V2_00,
        security: Security::None,
        service: ServiceInfo::standard(0),
        assignment: Assignment::Alternate(AlternateAssignment {
            key: AssignmentKey {
                addr: a("10.0.0.2"),
                change_number: 1,
            },
            routers: vec![RouterAssignment {
                addr: a("10.0.0.1"),
                receive_id: 5,
                change_number: 2,
            }],
            body: AltAssignmentBody::Mask(vec![MaskValueSet {
                mask: MaskElement {
                    src_addr: Addr(0),
                    dst_addr: Addr(0x526),
                    src_port: 0,
                    dst_port: 0,
                },
                values: vec![ValueElement {
                    src_addr: Addr(0),
                    dst_addr: Addr(0x2),
                    src_port: 0,
                    dst_port: 0,
                    cache: a("10.0.0.2"),
                }],
            }]),
        }),
        address_table: None,
    };
    check(
        &ra,
        "0000000c 02000068
         0000 0004 00000000
         0001 0018 00000000 00000000 00000000 00000000 00000000 00000000
         000d 0040 0001 003c 0a000002 00000001 00000001 0a000001 00000005 00000002
                   00000001 00000000 00000526 0000 0000 00000001
                   00000000 00000002 0000 0000 0a000002",
    );
}

/// HERE_I_AM 2.01 with an extended-data identity, a Command Extension and an IPv4 table; hash
/// Alternate Assignment in REDIRECT_ASSIGN.
#[test]
fn golden_extended_identity_and_alt_hash() {
    let hia = HereIAm {
        version: Version::V2_01,
        security: Security::None,
        service: ServiceInfo::standard(0),
        identity: WebCacheIdentity {
            addr: Addr::from_index(1),
            hash_revision: 0,
            flags: IdentityFlags(IdentityFlags::UNASSIGNED.0 | IdentityFlags::VERSION_MIN.0),
            data: AssignmentData::Extended {
                kind: 3,
                data: vec![0x27, 0x10, 0, 0],
            },
        },
        view: WebCacheViewInfo {
            change_number: 1,
            routers: vec![],
            caches: vec![],
        },
        capabilities: None,
        command: Some(CommandExtension {
            commands: vec![Command::Shutdown(Addr::from_index(1))],
        }),
        address_table: Some(AddressTable::ipv4(&[Ipv4Addr::new(192, 0, 2, 7)])),
    };
    check(
        &hia,
        "0000000a 02010064
         0000 0004 00000000
         0001 0018 00000000 00000000 00000000 00000000 00000000 00000000
         0003 0010 00000001 0000 000f 0003 0004 27100000
         0005 000c 00000001 00000000 00000000
         000f 0008 0001 0004 00000001
         0011 000c 0001 0004 00000001 c0000207",
    );
    assert_eq!(
        hia.identity.data.decode_extended().unwrap(),
        Some(wccp_wire::ExtendedData::WeightStatus {
            weight: 10000,
            status: 0
        })
    );
    assert_eq!(
        hia.identity
            .addr
            .resolve(hia.address_table.as_ref())
            .unwrap(),
        std::net::IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
    );

    let mut buckets = [0xffu8; 256];
    buckets[0] = 0;
    buckets[1] = 0x80;
    let ra = RedirectAssign {
        version: Version::V2_00,
        security: Security::None,
        service: ServiceInfo::standard(0),
        assignment: Assignment::Alternate(AlternateAssignment {
            key: AssignmentKey {
                addr: a("10.0.0.2"),
                change_number: 9,
            },
            routers: vec![],
            body: AltAssignmentBody::Hash(HashBuckets {
                caches: vec![a("10.0.0.2")],
                buckets,
            }),
        }),
        address_table: None,
    };
    let bytes = ra.to_vec().unwrap();
    // 8 + 8 + 28 + (4 + 4 + 8 + 4 + 4 + 4 + 256): no routers, one cache.
    assert_eq!(bytes.len(), 328);
    assert_eq!(&bytes[44..48], &[0x00, 0x0d, 0x01, 0x18]);
    assert_eq!(&bytes[48..52], &[0x00, 0x00, 0x01, 0x14]);
    assert_eq!(&bytes[72..74], &[0x00, 0x80]);
    assert_eq!(RedirectAssign::parse(&bytes).unwrap(), ra);
}

#[test]
fn emit_checks_buffer_length() {
    let rq = RemovalQuery {
        version: Version::V2_00,
        security: Security::None,
        service: ServiceInfo::standard(0),
        query: RouterQueryInfo::default(),
        address_table: None,
    };
    let mut short = vec![0u8; 63];
    assert_eq!(
        rq.emit(&mut short),
        Err(Error::BufferLength { need: 64, have: 63 })
    );
    let mut long = vec![0u8; 65];
    assert_eq!(
        rq.emit(&mut long),
        Err(Error::BufferLength { need: 64, have: 65 })
    );
}

#[test]
fn too_long_message_is_an_error_not_a_panic() {
    let mut isy = ISeeYou {
        version: Version::V2_00,
        security: Security::None,
        service: ServiceInfo::standard(0),
        identity: RouterIdentityInfo::default(),
        view: RouterViewInfo::default(),
        assignment_map: None,
        alt_assignment_map: None,
        capabilities: None,
        command: None,
        address_table: None,
    };
    isy.identity.received_from = vec![Addr(1); 20000];
    assert!(matches!(isy.to_vec(), Err(Error::TooLong { .. })));
}

#[test]
fn duplicate_singleton_first_wins_and_unknown_components_are_skipped() {
    let rq = RemovalQuery {
        version: Version::V2_00,
        security: Security::None,
        service: ServiceInfo::standard(0),
        query: RouterQueryInfo {
            router: a("1.1.1.1"),
            receive_id: 1,
            sent_to: a("1.1.1.1"),
            target: a("2.2.2.2"),
        },
        address_table: None,
    };
    let mut bytes = rq.to_vec().unwrap();
    // Append an unknown component (type 9) and a second Router Query Info.
    bytes.extend_from_slice(&unhex(
        "0009 0004 deadbeef 0007 0010 09090909 00000002 09090909 09090909",
    ));
    let len = u16::try_from(bytes.len() - 8).unwrap();
    bytes[6..8].copy_from_slice(&len.to_be_bytes());
    let parsed = RemovalQuery::parse(&bytes).unwrap();
    assert_eq!(parsed, rq);
    // Canonical re-emission drops the extras.
    assert_eq!(
        Message::parse(&bytes).unwrap().to_vec().unwrap(),
        rq.to_vec().unwrap()
    );
}

#[test]
fn missing_mandatory_component() {
    // HERE_I_AM with only Security + Service.
    let bytes = unhex(
        "0000000a 02000024 0000 0004 00000000
         0001 0018 00000000 00000000 00000000 00000000 00000000 00000000",
    );
    assert_eq!(
        Message::parse(&bytes),
        Err(Error::MissingComponent(
            wccp_wire::Layer::WebCacheIdentityInfo
        ))
    );
    let mut ra = bytes.clone();
    ra[3] = 12;
    assert_eq!(
        Message::parse(&ra),
        Err(Error::MissingComponent(wccp_wire::Layer::AssignmentInfo))
    );
}

#[test]
fn header_errors() {
    assert_eq!(
        Message::parse(&unhex("00000007 02000000")),
        Err(Error::UnknownMessageType(7))
    );
    assert_eq!(
        Message::parse(&unhex("0000000a 03000000")),
        Err(Error::UnsupportedVersion(0x0300))
    );
    // Unknown minor version is accepted (here: then fails on the missing components).
    assert_eq!(
        Message::parse(&unhex("0000000a 02070000")),
        Err(Error::MissingComponent(wccp_wire::Layer::SecurityInfo))
    );
}

#[test]
fn error_messages_name_field_and_offset() {
    // Router View announcing 2 caches, with only 20 octets for the second 44-octet element.
    let orig = unhex(include_str!("vectors/squidfix_i_see_you_1.hex"));
    // Router View header at 68, body at 72; NC at 92; element 1 at 96..140.
    assert_eq!(&orig[68..72], &[0x00, 0x04, 0x00, 0x44]);
    assert_eq!(&orig[92..96], &[0, 0, 0, 1]);
    let mut bytes = orig[..140].to_vec();
    bytes.extend_from_slice(&[0u8; 20]);
    bytes.extend_from_slice(&orig[140..]);
    bytes[95] = 2;
    bytes[71] += 20;
    let len = u16::from_be_bytes([bytes[6], bytes[7]]) + 20;
    bytes[6..8].copy_from_slice(&len.to_be_bytes());
    let e = Message::parse(&bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Router View Info: cache element 2 truncated at offset 140 (need 44 octets, have 20)"
    );
}
