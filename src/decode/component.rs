//! The components of a WCCP message as tree nodes: security, service, identities, views,
//! assignments (hash buckets, mask/value sets), capabilities, commands and the address table.
//! Field names are the draft's.

use std::net::IpAddr;

use serde_json::{json, Value};
use wire::{
    Addr, AddressTable, AltAssignmentBody, AltMaskValueSet, AssignmentData, AssignmentKey,
    Capability, Command, ExtendedData, HashBuckets, MaskElement, MaskValueSet, RouterAssignment,
    Security, ServiceFlags, ServiceInfo, ServiceType, WebCacheIdentity,
};

use super::tree::Node;

/// Bucket octet meaning "unassigned" (docs/protocol.md §2.8).
const BUCKET_UNASSIGNED: u8 = 0xFF;
/// Bucket octet flag "use the alternate hash".
const BUCKET_ALT: u8 = 0x80;

/// The body of an assignment: hash buckets, or an alternate assignment's body.
pub(super) enum AltBodyRef<'a> {
    /// Assignment Info: 256 buckets.
    Hash(&'a HashBuckets),
    /// Alternate Assignment.
    Alt(&'a AltAssignmentBody),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn security_node(s: &Security) -> Node {
    match s {
        Security::None => Node::obj(
            "security",
            "Security Info",
            vec![Node::leaf_text(
                "option",
                "Security Option",
                "none",
                "WCCP2_NO_SECURITY (0)",
            )],
        ),
        Security::Md5(d) => Node::obj(
            "security",
            "Security Info",
            vec![
                Node::leaf_text("option", "Security Option", "md5", "WCCP2_MD5_SECURITY (1)"),
                Node::leaf("digest", "MD5 Digest", hex(d)),
            ],
        ),
    }
}

/// Names of the set service flags, in bit order (unknown bits as `0x...`).
pub fn service_flag_names(flags: ServiceFlags) -> Vec<String> {
    const NAMES: [(u32, &str); 11] = [
        (0x0001, "SRC_IP_HASH"),
        (0x0002, "DST_IP_HASH"),
        (0x0004, "SRC_PORT_HASH"),
        (0x0008, "DST_PORT_HASH"),
        (0x0010, "PORTS_DEFINED"),
        (0x0020, "PORTS_SOURCE"),
        (0x0040, "REDIRECT_ONLY_PROTOCOL_0"),
        (0x0100, "SRC_IP_ALT_HASH"),
        (0x0200, "DST_IP_ALT_HASH"),
        (0x0400, "SRC_PORT_ALT_HASH"),
        (0x0800, "DST_PORT_ALT_HASH"),
    ];
    let bits = flags.bits();
    let mut out: Vec<String> = NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect();
    let known = NAMES.iter().fold(0u32, |a, (b, _)| a | b);
    if bits & !known != 0 {
        out.push(format!("0x{:08x}", bits & !known));
    }
    out
}

pub(super) fn service_node(s: &ServiceInfo) -> Node {
    let (ty, ty_text) = match s.service_type {
        ServiceType::Standard => ("standard", "Standard (0)"),
        ServiceType::Dynamic => ("dynamic", "Dynamic (1)"),
    };
    let names = service_flag_names(s.flags);
    let flags_text = if names.is_empty() {
        format!("0x{:08x}", s.flags.bits())
    } else {
        format!("0x{:08x} ({})", s.flags.bits(), names.join(", "))
    };
    let ports: Vec<u16> = s.ports.iter().copied().take_while(|p| *p != 0).collect();
    let id_text = match (s.service_type, s.id) {
        (ServiceType::Standard, 0) => "0 (web-cache: HTTP, TCP port 80)".to_owned(),
        (_, id) => id.to_string(),
    };
    Node::obj(
        "service",
        "Service Info",
        vec![
            Node::leaf_text("type", "Service Type", ty, ty_text),
            Node::leaf_text("id", "Service ID", s.id, id_text),
            Node::leaf("priority", "Priority", s.priority),
            Node::leaf_text(
                "protocol",
                "Protocol",
                s.protocol,
                match s.protocol {
                    6 => "TCP (6)".to_owned(),
                    17 => "UDP (17)".to_owned(),
                    p => p.to_string(),
                },
            ),
            Node::leaf_text("flags", "Service Flags", names, flags_text),
            Node::leaf("flags_raw", "Service Flags (raw)", s.flags.bits()),
            Node::leaf("ports", "Ports", ports),
        ],
    )
}

/// Resolves an address element to a JSON string (IPv4/IPv6 text, or a note when unresolvable).
fn addr_value(a: Addr, t: Option<&AddressTable>) -> (Value, String) {
    match a.resolve(t) {
        Ok(ip) => {
            let s = ip.to_string();
            match (t, a.table_index()) {
                (Some(_), Some(i)) => (Value::String(s.clone()), format!("{s} (table index {i})")),
                _ => (Value::String(s.clone()), s),
            }
        }
        Err(_) => {
            let s = format!("unresolved element 0x{:08x}", a.0);
            (Value::String(s.clone()), s)
        }
    }
}

pub(super) fn addr_node(key: &str, label: &str, a: Addr, t: Option<&AddressTable>) -> Node {
    let (v, text) = addr_value(a, t);
    Node::leaf_text(key, label, v, text)
}

pub(super) fn addr_list(
    key: &str,
    list_label: &str,
    label: &str,
    list: &[Addr],
    t: Option<&AddressTable>,
) -> Node {
    Node::arr(
        key,
        list_label,
        list.iter()
            .enumerate()
            .map(|(i, a)| addr_node("", &format!("{label} {}", i + 1), *a, t))
            .collect(),
    )
}

pub(super) fn key_node(k: &AssignmentKey, t: Option<&AddressTable>) -> Node {
    Node::obj(
        "key",
        "Assignment Key",
        vec![
            addr_node("address", "Assignment Key IP Address", k.addr, t),
            Node::leaf(
                "change_number",
                "Assignment Key Change Number",
                k.change_number,
            ),
        ],
    )
}

pub(super) fn router_assignments(routers: &[RouterAssignment], t: Option<&AddressTable>) -> Node {
    Node::numbered(
        "routers",
        "Router Assignment Elements",
        "Router",
        routers.iter().map(|r| {
            vec![
                addr_node("address", "Router IP Address", r.addr, t),
                Node::leaf("receive_id", "Receive ID", r.receive_id),
                Node::leaf("change_number", "Change Number", r.change_number),
            ]
        }),
    )
}

/// Compresses a sorted list of bucket numbers into "0-84, 170, 172".
fn ranges(list: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let start = list[i];
        let mut end = start;
        while i + 1 < list.len() && list[i + 1] == end + 1 {
            i += 1;
            end = list[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(", ")
}

pub(super) fn hash_nodes(h: &HashBuckets, t: Option<&AddressTable>, out: &mut Vec<Node>) {
    out.push(addr_list(
        "caches",
        "Web-Caches",
        "Web-Cache IP Address",
        &h.caches,
        t,
    ));
    let json: Vec<Value> = h
        .buckets
        .iter()
        .map(|&b| {
            if b == BUCKET_UNASSIGNED {
                Value::Null
            } else {
                json!({"cache": b & !BUCKET_ALT, "alt": b & BUCKET_ALT != 0})
            }
        })
        .collect();
    // Text: per cache index (and alternate flag), which buckets.
    let mut lines = Vec::new();
    let mut groups: Vec<(u8, Vec<usize>)> = Vec::new();
    for (i, &b) in h.buckets.iter().enumerate() {
        match groups.iter_mut().find(|(k, _)| *k == b) {
            Some((_, l)) => l.push(i),
            None => groups.push((b, vec![i])),
        }
    }
    groups.sort_by_key(|(k, _)| *k);
    let assigned = h
        .buckets
        .iter()
        .filter(|&&b| b != BUCKET_UNASSIGNED)
        .count();
    lines.push(format!(
        "{assigned} assigned, {} unassigned",
        256 - assigned
    ));
    for (b, list) in &groups {
        let who = if *b == BUCKET_UNASSIGNED {
            "unassigned".to_owned()
        } else {
            let idx = b & !BUCKET_ALT;
            let addr = h
                .caches
                .get(usize::from(idx))
                .map_or_else(|| "no such cache".to_owned(), |a| addr_value(*a, t).1);
            let alt = if b & BUCKET_ALT != 0 {
                ", use alternate hash"
            } else {
                ""
            };
            format!("cache {idx} ({addr}){alt}")
        };
        lines.push(format!("{who}: {} bucket(s): {}", list.len(), ranges(list)));
    }
    out.push(Node::leaf_text(
        "buckets",
        "Buckets",
        Value::Array(json),
        lines.join("\n"),
    ));
}

fn mask_element_nodes(m: &MaskElement, t: Option<&AddressTable>) -> Node {
    Node::obj(
        "mask",
        "Mask Element",
        vec![
            mask_addr_node("src_addr", "Source Address Mask", m.src_addr, t),
            mask_addr_node("dst_addr", "Destination Address Mask", m.dst_addr, t),
            Node::leaf_text(
                "src_port",
                "Source Port Mask",
                m.src_port,
                format!("0x{:04x}", m.src_port),
            ),
            Node::leaf_text(
                "dst_port",
                "Destination Port Mask",
                m.dst_port,
                format!("0x{:04x}", m.dst_port),
            ),
        ],
    )
}

fn mask_addr_node(key: &str, label: &str, a: Addr, t: Option<&AddressTable>) -> Node {
    match (t, a.resolve(t)) {
        (Some(_), Ok(IpAddr::V6(v6))) => Node::leaf(key, label, v6.to_string()),
        _ if t.is_some() => addr_node(key, label, a, t),
        _ => Node::leaf(key, label, format!("0x{:08x}", a.0)),
    }
}

pub(super) fn mask_sets_node(sets: &[MaskValueSet], t: Option<&AddressTable>) -> Node {
    let value = |v: &wire::ValueElement| {
        vec![
            mask_addr_node("src_addr", "Source Address", v.src_addr, t),
            mask_addr_node("dst_addr", "Destination Address", v.dst_addr, t),
            Node::leaf("src_port", "Source Port", v.src_port),
            Node::leaf("dst_port", "Destination Port", v.dst_port),
            addr_node("cache", "Web Cache Address", v.cache, t),
        ]
    };
    Node::numbered(
        "mask_value_sets",
        "Mask/Value Sets",
        "Mask/Value Set",
        sets.iter().map(|s| {
            vec![
                mask_element_nodes(&s.mask, t),
                Node::numbered(
                    "values",
                    "Value Elements",
                    "Value Element",
                    s.values.iter().map(value),
                ),
            ]
        }),
    )
}

fn alt_mask_sets_node(sets: &[AltMaskValueSet], t: Option<&AddressTable>) -> Node {
    let cache = |c: &wire::CacheValueElement| {
        vec![
            addr_node("cache", "Web-Cache Address", c.cache, t),
            Node::leaf("vsns", "Value Sequence Numbers", c.vsns.clone()),
        ]
    };
    Node::numbered(
        "alt_mask_value_sets",
        "Alternate Mask/Value Sets",
        "Alternate Mask/Value Set",
        sets.iter().map(|s| {
            vec![
                mask_element_nodes(&s.mask, t),
                Node::numbered(
                    "caches",
                    "Web-Cache Value Elements",
                    "Web-Cache Value Element",
                    s.caches.iter().map(cache),
                ),
            ]
        }),
    )
}

pub(super) fn alt_body_nodes(b: &AltAssignmentBody, t: Option<&AddressTable>, out: &mut Vec<Node>) {
    match b {
        AltAssignmentBody::Hash(h) => {
            out.push(Node::leaf("assignment_type", "Assignment Type", "hash"));
            hash_nodes(h, t, out);
        }
        AltAssignmentBody::Mask(sets) => {
            out.push(Node::leaf("assignment_type", "Assignment Type", "mask"));
            out.push(mask_sets_node(sets, t));
        }
        AltAssignmentBody::AltMask(sets) => {
            out.push(Node::leaf(
                "assignment_type",
                "Assignment Type",
                "alternate_mask",
            ));
            out.push(alt_mask_sets_node(sets, t));
        }
        AltAssignmentBody::Unknown { kind, data } => {
            out.push(Node::leaf_text(
                "assignment_type",
                "Assignment Type",
                format!("unknown({kind})"),
                format!("unknown ({kind})"),
            ));
            out.push(Node::leaf("data", "Data", hex(data)));
        }
    }
}

fn weight_status(out: &mut Vec<Node>, weight: u16, status: u16) {
    out.push(Node::leaf("weight", "Assignment Weight", weight));
    out.push(Node::leaf("status", "Assignment Status", status));
}

fn hash_data_nodes(h: &wire::HashAssignmentData, out: &mut Vec<Node>) {
    let set = h.buckets.iter().map(|b| b.count_ones()).sum::<u32>();
    out.push(Node::leaf_text(
        "bucket_bitmap",
        "Bucket Blocks",
        hex(&h.buckets),
        format!("{} ({set} bit(s) set)", hex(&h.buckets)),
    ));
    weight_status(out, h.weight, h.status);
}

pub(super) fn identity_node(
    key: &str,
    label: &str,
    w: &WebCacheIdentity,
    t: Option<&AddressTable>,
) -> Node {
    let flags = w.wire_flags();
    let type_name = match w.data.type_bits() {
        0 => "hash",
        1 => "mask",
        2 => "none",
        _ => "extended",
    };
    let mut text_flags = vec![format!("assignment type {type_name}")];
    if w.flags.unassigned() {
        text_flags.push("U: unassigned (historical data)".to_owned());
    }
    if w.flags.version_min() {
        text_flags.push("V: version is minimum".to_owned());
    }
    if flags & 0xFFF0 != 0 {
        // ATS encodes U as 0x8000 (docs/protocol.md A2); show it rather than hide it.
        text_flags.push(format!("reserved bits 0x{:04x} set", flags & 0xFFF0));
    }
    let mut c = vec![
        addr_node("address", "Web-Cache IP Address", w.addr, t),
        Node::leaf("hash_revision", "Hash Revision", w.hash_revision),
        Node::obj(
            "flags",
            "Flags",
            vec![
                Node::leaf_text("raw", "Value", flags, format!("0x{flags:04x}")),
                Node::leaf("unassigned", "U (unassigned)", w.flags.unassigned()),
                Node::leaf("assignment_type", "Assignment Type", type_name),
                Node::leaf(
                    "version_min",
                    "V (version is minimum)",
                    w.flags.version_min(),
                ),
            ],
        )
        .with_text(format!("0x{flags:04x} ({})", text_flags.join(", "))),
    ];
    let mut data = Vec::new();
    match &w.data {
        AssignmentData::Hash(h) => {
            data.push(Node::leaf("type", "Type", "hash"));
            hash_data_nodes(h, &mut data);
        }
        AssignmentData::Mask(m) => {
            data.push(Node::leaf("type", "Type", "mask"));
            data.push(mask_sets_node(&m.sets, t));
            weight_status(&mut data, m.weight, m.status);
        }
        AssignmentData::None => data.push(Node::leaf("type", "Type", "none")),
        AssignmentData::Extended { kind, data: raw } => {
            data.push(Node::leaf("type", "Type", "extended"));
            data.push(Node::leaf("extended_type", "Extended Data Type", *kind));
            match w.data.decode_extended() {
                Ok(Some(ExtendedData::Hash(h))) => hash_data_nodes(&h, &mut data),
                Ok(Some(ExtendedData::Mask(m))) => {
                    data.push(mask_sets_node(&m.sets, t));
                    weight_status(&mut data, m.weight, m.status);
                }
                Ok(Some(ExtendedData::AltMask {
                    sets,
                    weight,
                    status,
                })) => {
                    data.push(alt_mask_sets_node(&sets, t));
                    weight_status(&mut data, weight, status);
                }
                Ok(Some(ExtendedData::WeightStatus { weight, status })) => {
                    weight_status(&mut data, weight, status);
                }
                Ok(_) => data.push(Node::leaf("data", "Data", hex(raw))),
                Err(e) => {
                    data.push(Node::leaf("data", "Data", hex(raw)));
                    data.push(Node::leaf("error", "Error", e.to_string()));
                }
            }
        }
    }
    // Weight and status also at the element level, where the data carries them.
    if let Some((wt, st)) = w.data.weight_status() {
        c.push(Node::leaf("weight", "Assignment Weight", wt));
        c.push(Node::leaf("status", "Assignment Status", st));
    }
    c.push(Node::obj("assignment_data", "Assignment Data", data));
    Node::obj(key, label, c)
}

fn method_names(bits: u32, names: [&str; 2]) -> Vec<String> {
    let mut v = Vec::new();
    if bits & 1 != 0 {
        v.push(names[0].to_owned());
    }
    if bits & 2 != 0 {
        v.push(names[1].to_owned());
    }
    if bits & !3 != 0 {
        v.push(format!("0x{:08x}", bits & !3));
    }
    v
}

pub(super) fn capabilities_node(caps: &wire::Capabilities) -> Node {
    let items = caps
        .elements
        .iter()
        .map(|cap| {
            let (name, mut fields, text) = match cap {
                Capability::ForwardingMethod(b)
                | Capability::AssignmentMethod(b)
                | Capability::PacketReturnMethod(b) => {
                    let (name, names) = match cap {
                        Capability::ForwardingMethod(_) => ("FORWARDING_METHOD", ["GRE", "L2"]),
                        Capability::AssignmentMethod(_) => ("ASSIGNMENT_METHOD", ["HASH", "MASK"]),
                        _ => ("PACKET_RETURN_METHOD", ["GRE", "L2"]),
                    };
                    let m = method_names(*b, names);
                    let text = format!("0x{b:08x} ({})", m.join(", "));
                    (
                        name,
                        vec![
                            Node::leaf("value", "Value", *b),
                            Node::leaf("methods", "Methods", m),
                        ],
                        text,
                    )
                }
                Capability::TransmitT { upper, lower } => (
                    "TRANSMIT_T",
                    vec![
                        Node::leaf("upper", "Upper Limit (ms)", *upper),
                        Node::leaf("lower", "Lower Limit (ms)", *lower),
                    ],
                    if *upper == 0 {
                        format!("{lower} ms")
                    } else {
                        format!("{lower}..{upper} ms")
                    },
                ),
                Capability::TimerScale {
                    timeout_upper,
                    timeout_lower,
                    ra_upper,
                    ra_lower,
                } => (
                    "TIMER_SCALE",
                    vec![
                        Node::leaf("timeout_upper", "Timeout Scale Upper", *timeout_upper),
                        Node::leaf("timeout_lower", "Timeout Scale Lower", *timeout_lower),
                        Node::leaf("ra_upper", "RA Timer Scale Upper", *ra_upper),
                        Node::leaf("ra_lower", "RA Timer Scale Lower", *ra_lower),
                    ],
                    format!("timeout {timeout_lower}..{timeout_upper}, RA {ra_lower}..{ra_upper}"),
                ),
                Capability::Unknown { value, .. } => (
                    "UNKNOWN",
                    vec![Node::leaf("data", "Value", hex(value))],
                    hex(value),
                ),
            };
            let mut c = vec![
                Node::leaf("type", "Type", name),
                Node::leaf("code", "Type Code", cap.kind()),
            ];
            c.append(&mut fields);
            Node::obj("", &format!("Capability {name} ({})", cap.kind()), c).with_text(text)
        })
        .collect();
    Node::arr("capabilities", "Capabilities Info", items)
}

pub(super) fn command_node(cmd: &Command) -> Node {
    match cmd {
        Command::Shutdown(a) => Node::obj(
            "",
            "Command",
            vec![
                Node::leaf("type", "Type", "SHUTDOWN"),
                Node::leaf("code", "Type Code", 1),
                addr_node("address", "Web-Cache IP Address", *a, None),
            ],
        ),
        Command::ShutdownResponse(a) => Node::obj(
            "",
            "Command",
            vec![
                Node::leaf("type", "Type", "SHUTDOWN_RESPONSE"),
                Node::leaf("code", "Type Code", 2),
                addr_node("address", "Web-Cache IP Address", *a, None),
            ],
        ),
        Command::Unknown { kind, data } => Node::obj(
            "",
            "Command",
            vec![
                Node::leaf("type", "Type", "UNKNOWN"),
                Node::leaf("code", "Type Code", *kind),
                Node::leaf("data", "Data", hex(data)),
            ],
        ),
    }
}

pub(super) fn address_table_node(t: &AddressTable) -> Node {
    let n = u16::try_from(t.len()).unwrap_or(u16::MAX);
    let entries = (1..=n)
        .map(|i| {
            let v = t
                .get(i)
                .map_or_else(|| hex(t.entry(i).unwrap_or(&[])), |a| a.to_string());
            Node::leaf("", &format!("Address {i}"), v)
        })
        .collect();
    Node::obj(
        "address_table",
        "Address Table",
        vec![
            Node::leaf_text(
                "family",
                "Family",
                t.family,
                match t.family {
                    1 => "IPv4 (1)".to_owned(),
                    2 => "IPv6 (2)".to_owned(),
                    f => f.to_string(),
                },
            ),
            Node::leaf("address_length", "Address Length", t.addr_len),
            Node::arr("addresses", "Addresses", entries),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3]), "0-3");
        assert_eq!(ranges(&[0, 2, 3, 4, 9]), "0, 2-4, 9");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn flag_names() {
        assert_eq!(
            service_flag_names(ServiceFlags(0x0012)),
            vec!["DST_IP_HASH", "PORTS_DEFINED"]
        );
        assert_eq!(
            service_flag_names(ServiceFlags(0x8000_0100)),
            vec!["SRC_IP_ALT_HASH".to_owned(), "0x80000000".to_owned()]
        );
    }
}
