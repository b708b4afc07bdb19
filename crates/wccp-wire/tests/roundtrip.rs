//! Property tests: `parse(emit(r)) == r` for generated messages of every type, MD5 sign/verify,
//! truncations and byte flips never panic.

use proptest::collection::vec;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

use wccp_wire::{
    decap_wccp, sign, verify, Addr, AddressTable, AltAssignmentBody, AltMaskValueSet,
    AlternateAssignment, AlternateAssignmentMap, Assignment, AssignmentData, AssignmentInfo,
    AssignmentKey, AssignmentMap, CacheValueElement, Capabilities, Capability, Command,
    CommandExtension, Error, HashAssignmentData, HashBuckets, HereIAm, ISeeYou, IdentityFlags,
    Ipv4Packet, MaskAssignmentData, MaskElement, MaskValueSet, Message, RedirectAssign,
    RemovalQuery, RouterAssignment, RouterIdElement, RouterIdentityInfo, RouterQueryInfo,
    RouterViewInfo, Security, ServiceFlags, ServiceInfo, ServiceType, ValueElement, Version,
    WebCacheIdentity, WebCacheViewInfo,
};

fn addr() -> impl Strategy<Value = Addr> {
    any::<u32>().prop_map(Addr)
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        Just(Version::V2_00),
        Just(Version::V2_01),
        (0u8..=255).prop_map(|minor| Version { major: 2, minor })
    ]
}

fn security() -> impl Strategy<Value = Security> {
    prop_oneof![
        Just(Security::None),
        any::<[u8; 16]>().prop_map(Security::Md5)
    ]
}

fn service() -> impl Strategy<Value = ServiceInfo> {
    (
        any::<bool>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        any::<[u16; 8]>(),
    )
        .prop_map(
            |(dynamic, id, priority, protocol, flags, ports)| ServiceInfo {
                service_type: if dynamic {
                    ServiceType::Dynamic
                } else {
                    ServiceType::Standard
                },
                id,
                priority,
                protocol,
                flags: ServiceFlags(flags),
                ports,
            },
        )
}

fn mask_element() -> impl Strategy<Value = MaskElement> {
    (addr(), addr(), any::<u16>(), any::<u16>()).prop_map(
        |(src_addr, dst_addr, src_port, dst_port)| MaskElement {
            src_addr,
            dst_addr,
            src_port,
            dst_port,
        },
    )
}

fn value_element() -> impl Strategy<Value = ValueElement> {
    (addr(), addr(), any::<u16>(), any::<u16>(), addr()).prop_map(
        |(src_addr, dst_addr, src_port, dst_port, cache)| ValueElement {
            src_addr,
            dst_addr,
            src_port,
            dst_port,
            cache,
        },
    )
}

fn mask_sets() -> impl Strategy<Value = Vec<MaskValueSet>> {
    vec(
        (mask_element(), vec(value_element(), 0..4))
            .prop_map(|(mask, values)| MaskValueSet { mask, values }),
        0..3,
    )
}

fn alt_mask_sets() -> impl Strategy<Value = Vec<AltMaskValueSet>> {
    vec(
        (
            mask_element(),
            vec(
                (addr(), vec(any::<u32>(), 0..5))
                    .prop_map(|(cache, vsns)| CacheValueElement { cache, vsns }),
                0..3,
            ),
        )
            .prop_map(|(mask, caches)| AltMaskValueSet { mask, caches }),
        0..3,
    )
}

fn buckets() -> impl Strategy<Value = [u8; 256]> {
    vec(any::<u8>(), 256).prop_map(|v| v.try_into().unwrap())
}

fn hash_buckets() -> impl Strategy<Value = HashBuckets> {
    (vec(addr(), 0..5), buckets()).prop_map(|(caches, buckets)| HashBuckets { caches, buckets })
}

fn assignment_data() -> impl Strategy<Value = AssignmentData> {
    prop_oneof![
        (any::<[u8; 32]>(), any::<u16>(), any::<u16>()).prop_map(|(buckets, weight, status)| {
            AssignmentData::Hash(HashAssignmentData {
                buckets,
                weight,
                status,
            })
        }),
        (mask_sets(), any::<u16>(), any::<u16>()).prop_map(|(sets, weight, status)| {
            AssignmentData::Mask(MaskAssignmentData {
                sets,
                weight,
                status,
            })
        }),
        Just(AssignmentData::None),
        (any::<u16>(), vec(any::<u8>(), 0..24))
            .prop_map(|(kind, data)| AssignmentData::Extended { kind, data }),
    ]
}

fn identity() -> impl Strategy<Value = WebCacheIdentity> {
    (addr(), any::<u16>(), any::<u16>(), assignment_data()).prop_map(
        |(addr, hash_revision, flags, data)| WebCacheIdentity {
            addr,
            hash_revision,
            flags: IdentityFlags(flags & !IdentityFlags::TYPE_MASK),
            data,
        },
    )
}

fn router_id() -> impl Strategy<Value = RouterIdElement> {
    (addr(), any::<u32>()).prop_map(|(addr, receive_id)| RouterIdElement { addr, receive_id })
}

fn key() -> impl Strategy<Value = AssignmentKey> {
    (addr(), any::<u32>()).prop_map(|(addr, change_number)| AssignmentKey {
        addr,
        change_number,
    })
}

fn capabilities() -> impl Strategy<Value = Capabilities> {
    let cap = prop_oneof![
        any::<u32>().prop_map(Capability::ForwardingMethod),
        any::<u32>().prop_map(Capability::AssignmentMethod),
        any::<u32>().prop_map(Capability::PacketReturnMethod),
        (any::<u16>(), any::<u16>())
            .prop_map(|(upper, lower)| Capability::TransmitT { upper, lower }),
        any::<[u8; 4]>().prop_map(|v| Capability::TimerScale {
            timeout_upper: v[0],
            timeout_lower: v[1],
            ra_upper: v[2],
            ra_lower: v[3]
        }),
        // Unknown types, or known types whose value is not 4 octets.
        (6u16..=u16::MAX, vec(any::<u8>(), 0..12))
            .prop_map(|(kind, value)| Capability::Unknown { kind, value }),
        (1u16..=5, vec(any::<u8>(), 0..12))
            .prop_filter("4-octet values decode as known", |(_, v)| v.len() != 4)
            .prop_map(|(kind, value)| Capability::Unknown { kind, value }),
    ];
    vec(cap, 0..6).prop_map(|elements| Capabilities { elements })
}

fn command() -> impl Strategy<Value = CommandExtension> {
    let cmd = prop_oneof![
        addr().prop_map(Command::Shutdown),
        addr().prop_map(Command::ShutdownResponse),
        (3u16..=u16::MAX, vec(any::<u8>(), 0..12))
            .prop_map(|(kind, data)| Command::Unknown { kind, data }),
    ];
    vec(cmd, 0..3).prop_map(|commands| CommandExtension { commands })
}

fn address_table() -> impl Strategy<Value = AddressTable> {
    prop_oneof![
        vec(any::<[u8; 4]>().prop_map(Ipv4Addr::from), 0..4).prop_map(|v| AddressTable::ipv4(&v)),
        vec(any::<[u8; 16]>().prop_map(Ipv6Addr::from), 0..4).prop_map(|v| AddressTable::ipv6(&v)),
        (any::<u16>(), 1u16..=5, 0usize..4).prop_flat_map(|(family, words, n)| {
            vec(any::<u8>(), n * usize::from(words) * 4).prop_map(move |raw| AddressTable {
                family,
                addr_len: words * 4,
                raw,
            })
        }),
    ]
}

fn alt_body() -> impl Strategy<Value = AltAssignmentBody> {
    prop_oneof![
        hash_buckets().prop_map(AltAssignmentBody::Hash),
        mask_sets().prop_map(AltAssignmentBody::Mask),
        alt_mask_sets().prop_map(AltAssignmentBody::AltMask),
        (3u16..=u16::MAX, vec(any::<u8>(), 0..16))
            .prop_map(|(kind, data)| AltAssignmentBody::Unknown { kind, data }),
    ]
}

fn router_assignments() -> impl Strategy<Value = Vec<RouterAssignment>> {
    vec(
        (addr(), any::<u32>(), any::<u32>()).prop_map(|(addr, receive_id, change_number)| {
            RouterAssignment {
                addr,
                receive_id,
                change_number,
            }
        }),
        0..4,
    )
}

fn here_i_am() -> impl Strategy<Value = HereIAm> {
    (
        (version(), security(), service(), identity()),
        (any::<u32>(), vec(router_id(), 0..4), vec(addr(), 0..4)),
        (
            proptest::option::of(capabilities()),
            proptest::option::of(command()),
            proptest::option::of(address_table()),
        ),
    )
        .prop_map(
            |(
                (version, security, service, identity),
                (change_number, routers, caches),
                (capabilities, command, address_table),
            )| {
                HereIAm {
                    version,
                    security,
                    service,
                    identity,
                    view: WebCacheViewInfo {
                        change_number,
                        routers,
                        caches,
                    },
                    capabilities,
                    command,
                    address_table,
                }
            },
        )
}

fn i_see_you() -> impl Strategy<Value = ISeeYou> {
    (
        (
            version(),
            security(),
            service(),
            router_id(),
            addr(),
            vec(addr(), 0..4),
        ),
        (
            any::<u32>(),
            key(),
            vec(addr(), 0..4),
            vec(identity(), 0..4),
        ),
        (
            proptest::option::of(mask_sets().prop_map(|sets| AssignmentMap { sets })),
            proptest::option::of(alt_body().prop_map(|body| AlternateAssignmentMap { body })),
            proptest::option::of(capabilities()),
            proptest::option::of(command()),
            proptest::option::of(address_table()),
        ),
    )
        .prop_map(
            |(
                (version, security, service, router, sent_to, received_from),
                (change_number, key, routers, caches),
                (assignment_map, alt_assignment_map, capabilities, command, address_table),
            )| ISeeYou {
                version,
                security,
                service,
                identity: RouterIdentityInfo {
                    router,
                    sent_to,
                    received_from,
                },
                view: RouterViewInfo {
                    change_number,
                    key,
                    routers,
                    caches,
                },
                assignment_map,
                alt_assignment_map,
                capabilities,
                command,
                address_table,
            },
        )
}

fn redirect_assign() -> impl Strategy<Value = RedirectAssign> {
    let assignment = prop_oneof![
        (key(), router_assignments(), hash_buckets()).prop_map(|(key, routers, hash)| {
            Assignment::Hash(AssignmentInfo { key, routers, hash })
        }),
        (key(), router_assignments(), alt_body()).prop_map(|(key, routers, body)| {
            Assignment::Alternate(AlternateAssignment { key, routers, body })
        }),
    ];
    (
        version(),
        security(),
        service(),
        assignment,
        proptest::option::of(address_table()),
    )
        .prop_map(
            |(version, security, service, assignment, address_table)| RedirectAssign {
                version,
                security,
                service,
                assignment,
                address_table,
            },
        )
}

fn removal_query() -> impl Strategy<Value = RemovalQuery> {
    (
        version(),
        security(),
        service(),
        addr(),
        any::<u32>(),
        addr(),
        addr(),
        proptest::option::of(address_table()),
    )
        .prop_map(
            |(version, security, service, router, receive_id, sent_to, target, address_table)| {
                RemovalQuery {
                    version,
                    security,
                    service,
                    query: RouterQueryInfo {
                        router,
                        receive_id,
                        sent_to,
                        target,
                    },
                    address_table,
                }
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        here_i_am().prop_map(Message::HereIAm),
        i_see_you().prop_map(Message::ISeeYou),
        redirect_assign().prop_map(Message::RedirectAssign),
        removal_query().prop_map(Message::RemovalQuery),
    ]
}

fn set_security(m: &mut Message, s: Security) {
    match m {
        Message::HereIAm(x) => x.security = s,
        Message::ISeeYou(x) => x.security = s,
        Message::RedirectAssign(x) => x.security = s,
        Message::RemovalQuery(x) => x.security = s,
    }
}

const VECTOR_FILES: &[&str] = &[
    include_str!("vectors/squidfix_here_i_am.hex"),
    include_str!("vectors/squidfix_md5_i_see_you_1.hex"),
    include_str!("vectors/squidfix_md5_redirect_assign.hex"),
    include_str!("vectors/ats_here_i_am_2.hex"),
    include_str!("vectors/ats_i_see_you_2.hex"),
    include_str!("vectors/squidfix_dyn80_nocaps_i_see_you.hex"),
];

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn parse_any(c: &wccp_wire::Component<'_>) {
    use wccp_wire::ComponentRepr;
    fn rt<T: ComponentRepr + PartialEq + std::fmt::Debug>(c: &wccp_wire::Component<'_>) {
        let mut c = *c;
        c.kind = T::TYPE as u16;
        if let Ok(v) = T::parse(&c) {
            // Successful parses re-emit and re-parse to the same value.
            let mut buf = vec![0u8; v.buffer_len()];
            if v.emit(&mut buf).is_ok() {
                let again = wccp_wire::Component {
                    kind: c.kind,
                    offset: 0,
                    body: &buf[4..],
                };
                assert_eq!(T::parse(&again).unwrap(), v);
            }
        }
    }
    rt::<Security>(c);
    rt::<ServiceInfo>(c);
    rt::<RouterIdentityInfo>(c);
    rt::<WebCacheIdentity>(c);
    rt::<RouterViewInfo>(c);
    rt::<WebCacheViewInfo>(c);
    rt::<AssignmentInfo>(c);
    rt::<RouterQueryInfo>(c);
    rt::<Capabilities>(c);
    rt::<AlternateAssignment>(c);
    rt::<AssignmentMap>(c);
    rt::<CommandExtension>(c);
    rt::<AlternateAssignmentMap>(c);
    rt::<AddressTable>(c);
    if let Ok(id) = WebCacheIdentity::parse(&wccp_wire::Component {
        kind: 3,
        offset: 0,
        body: c.body,
    }) {
        let _ = id.data.decode_extended();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_emit_round_trip(m in message()) {
        let bytes = m.to_vec().unwrap();
        prop_assert_eq!(bytes.len(), m.buffer_len());
        let parsed = Message::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &m);
        // emit(parse(b)) == b
        prop_assert_eq!(parsed.to_vec().unwrap(), bytes);
    }

    #[test]
    fn md5_sign_verify(mut m in message(), password in vec(any::<u8>(), 0..=8), other in vec(any::<u8>(), 0..=8)) {
        set_security(&mut m, Security::MD5_UNSIGNED);
        let mut bytes = m.to_vec().unwrap();
        sign(&mut bytes, &password).unwrap();
        prop_assert_eq!(verify(&bytes, &password), Ok(()));
        // NUL padding means "ab" and "ab\0" are the same key; otherwise a different key fails.
        let trim = |p: &[u8]| p.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if password[..trim(&password)] != other[..trim(&other)] {
            prop_assert_eq!(verify(&bytes, &other), Err(Error::Md5Mismatch));
        }
        let parsed = Message::parse(&bytes).unwrap();
        let Security::Md5(d) = *parsed.security() else { panic!("MD5 lost") };
        prop_assert_eq!(&d[..], &bytes[16..32]);
        set_security(&mut m, Security::Md5(d));
        prop_assert_eq!(parsed, m);
    }

    #[test]
    fn md5_missing_when_unsigned(mut m in message()) {
        set_security(&mut m, Security::None);
        let mut bytes = m.to_vec().unwrap();
        prop_assert_eq!(verify(&bytes, b"pw"), Err(Error::Md5Missing));
        prop_assert_eq!(sign(&mut bytes, b"pw"), Err(Error::Md5Missing));
    }

    #[test]
    fn truncation_is_an_error(m in message(), cut in any::<prop::sample::Index>()) {
        let bytes = m.to_vec().unwrap();
        let n = cut.index(bytes.len());
        prop_assert!(Message::parse(&bytes[..n]).is_err());
    }

    #[test]
    fn byte_flips_never_panic(m in message(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = m.to_vec().unwrap();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let _ = verify(&bytes, b"x");
        if let Ok(parsed) = Message::parse(&bytes) {
            // Whatever parses re-emits canonically and re-parses to the same value.
            let again = parsed.to_vec();
            if let Ok(again) = again {
                prop_assert_eq!(Message::parse(&again).unwrap(), parsed);
            }
        }
    }

    #[test]
    fn vector_byte_flips_never_panic(which in 0..VECTOR_FILES.len(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = unhex(VECTOR_FILES[which]);
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let _ = verify(&bytes, b"wccpTest");
        if let Ok(parsed) = Message::parse(&bytes) {
            if let Ok(again) = parsed.to_vec() {
                prop_assert_eq!(Message::parse(&again).unwrap(), parsed);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(&bytes);
        let _ = verify(&bytes, b"k");
        let _ = decap_wccp(&bytes);
        if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
            let _ = (p.src(), p.dst(), p.ttl(), p.protocol(), p.payload(), p.verify_checksum());
        }
    }

    #[test]
    fn random_components_never_panic(
        t in 10u32..=13,
        comps in vec((0u16..19, vec(any::<u8>(), 0..80)), 0..8),
    ) {
        // Well-framed components of every type with random bodies exercise each body parser.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&t.to_be_bytes());
        bytes.extend_from_slice(&[2, 1, 0, 0]);
        for (kind, body) in &comps {
            bytes.extend_from_slice(&kind.to_be_bytes());
            bytes.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(body);
        }
        let len = u16::try_from(bytes.len() - 8).unwrap();
        bytes[6..8].copy_from_slice(&len.to_be_bytes());
        let _ = verify(&bytes, b"k");
        if let Ok(parsed) = Message::parse(&bytes) {
            if let Ok(again) = parsed.to_vec() {
                prop_assert_eq!(Message::parse(&again).unwrap(), parsed);
            }
        }
        // Every component type parser, directly on every body.
        for (i, (kind, body)) in comps.iter().enumerate() {
            let c = wccp_wire::Component { kind: *kind, offset: 8 + i, body };
            parse_any(&c);
        }
    }

    #[test]
    fn random_message_bodies_never_panic(t in 10u32..=13, minor in 0u8..2, body in vec(any::<u8>(), 0..400)) {
        // A valid header in front of random components exercises the component parsers.
        let mut bytes = Vec::with_capacity(8 + body.len());
        bytes.extend_from_slice(&t.to_be_bytes());
        bytes.extend_from_slice(&[2, minor]);
        bytes.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&body);
        let _ = Message::parse(&bytes);
    }
}
