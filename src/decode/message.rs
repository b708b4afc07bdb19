//! One WCCP control message: parse, verify the MD5 digest, and build its tree, message by
//! message type (the components are in [`super::component`]).

use serde_json::Value;
use wire::{Assignment, Message};

use super::component::{
    addr_list, addr_node, address_table_node, alt_body_nodes, capabilities_node, command_node,
    hash_nodes, identity_node, key_node, mask_sets_node, router_assignments, security_node,
    service_node, AltBodyRef,
};
use super::tree::{Node, NodeValue};

/// One decoded control message.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMessage {
    /// The parsed message.
    pub message: Message,
    /// The rendered tree (includes `security.valid` when a password was given).
    pub node: Node,
    /// `None` without a password; otherwise the MD5 verification result.
    pub digest: Option<Result<(), wire::Error>>,
}

/// Parses one WCCP message (a UDP payload) and renders it; with a password also verifies the
/// MD5 digest.
///
/// # Errors
/// The [`wire::Error`] of a malformed message (naming field and offset).
pub fn decode_message(
    bytes: &[u8],
    password: Option<&[u8]>,
) -> Result<DecodedMessage, wire::Error> {
    let message = Message::parse(bytes)?;
    let digest = password.map(|p| wire::verify(bytes, p));
    let mut node = message_node(&message);
    // Component order and unknown components, from the framing (Message keeps only known ones).
    if let Ok(p) = wire::MessagePacket::new_checked(bytes) {
        let mut order = Vec::new();
        let mut unknown = Vec::new();
        for c in p.components().flatten() {
            order.push(c.kind);
            if c.component_type().is_none() {
                unknown.push(Node::obj(
                    "",
                    &format!("Unknown component type {}", c.kind),
                    vec![
                        Node::leaf("type", "Type", c.kind),
                        Node::leaf("offset", "Offset", c.offset),
                        Node::leaf("length", "Length", c.body.len()),
                    ],
                ));
            }
        }
        if let NodeValue::Object(children) = &mut node.value {
            let text = order
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(",");
            children.insert(
                3,
                Node::leaf_text("components", "Components", order.clone(), text),
            );
            if !unknown.is_empty() {
                children.push(Node::arr(
                    "unknown_components",
                    "Unknown Components",
                    unknown,
                ));
            }
            if bytes.len() > p.message().len() {
                children.push(Node::leaf(
                    "trailing_octets",
                    "Trailing octets (ignored)",
                    bytes.len() - p.message().len(),
                ));
            }
        }
    }
    if let Some(result) = &digest {
        set_security_validity(&mut node, result);
    }
    Ok(DecodedMessage {
        message,
        node,
        digest,
    })
}

fn set_security_validity(node: &mut Node, result: &Result<(), wire::Error>) {
    let NodeValue::Object(children) = &mut node.value else {
        return;
    };
    let Some(sec) = children.iter_mut().find(|c| c.key == "security") else {
        return;
    };
    let NodeValue::Object(fields) = &mut sec.value else {
        return;
    };
    let text = match result {
        Ok(()) => "valid (password matches)".to_owned(),
        Err(wire::Error::Md5Missing) => "INVALID: message is not signed".to_owned(),
        Err(e) => format!("INVALID: {e}"),
    };
    fields.push(Node::leaf_text("valid", "Digest", result.is_ok(), text));
}

/// The JSON rendering of a message (the same members as `wccpd decode --json`, without
/// `security.valid`, `components` and `unknown_components`, which need the raw bytes).
pub fn message_to_json(msg: &Message) -> Value {
    message_node(msg).to_json()
}

/// The tree rendering of a message.
pub fn message_node(msg: &Message) -> Node {
    let t = msg.address_table();
    let v = msg.version();
    let mut c = vec![
        Node::leaf_text(
            "type",
            "Message Type",
            msg.msg_type().as_str(),
            format!("{} ({})", msg.msg_type().as_str(), msg.msg_type() as u32),
        ),
        Node::leaf_text(
            "version",
            "Version",
            format!("0x{:04x}", v.to_u16()),
            format!("0x{:04x} ({}.{:02})", v.to_u16(), v.major, v.minor),
        ),
        Node::leaf("length", "Length", msg.buffer_len().saturating_sub(8)),
        security_node(msg.security()),
        service_node(msg.service()),
    ];
    match msg {
        Message::HereIAm(m) => {
            c.push(identity_node(
                "web_cache_identity",
                "Web-Cache Identity Info",
                &m.identity,
                t,
            ));
            let view = &m.view;
            c.push(Node::obj(
                "web_cache_view",
                "Web-Cache View Info",
                vec![
                    Node::leaf("change_number", "Change Number", view.change_number),
                    Node::numbered(
                        "routers",
                        "Routers",
                        "Router",
                        view.routers.iter().map(|r| {
                            vec![
                                addr_node("address", "Router IP Address", r.addr, t),
                                Node::leaf("receive_id", "Receive ID", r.receive_id),
                            ]
                        }),
                    ),
                    addr_list(
                        "caches",
                        "Web-Caches",
                        "Web-Cache IP Address",
                        &view.caches,
                        t,
                    ),
                ],
            ));
            push_opt_common(&mut c, m.capabilities.as_ref(), m.command.as_ref());
        }
        Message::ISeeYou(m) => {
            let id = &m.identity;
            c.push(Node::obj(
                "router_identity",
                "Router Identity Info",
                vec![
                    addr_node("address", "Router IP Address", id.router.addr, t),
                    Node::leaf("receive_id", "Receive ID", id.router.receive_id),
                    addr_node("sent_to", "Sent To IP Address", id.sent_to, t),
                    addr_list(
                        "received_from",
                        "Received From",
                        "Received From IP Address",
                        &id.received_from,
                        t,
                    ),
                ],
            ));
            let view = &m.view;
            c.push(Node::obj(
                "router_view",
                "Router View Info",
                vec![
                    Node::leaf("change_number", "Member Change Number", view.change_number),
                    key_node(&view.key, t),
                    addr_list("routers", "Routers", "Router IP Address", &view.routers, t),
                    Node::arr(
                        "caches",
                        "Web-Caches",
                        view.caches
                            .iter()
                            .enumerate()
                            .map(|(i, w)| {
                                identity_node("", &format!("Web-Cache Identity {}", i + 1), w, t)
                            })
                            .collect(),
                    ),
                ],
            ));
            if let Some(map) = &m.assignment_map {
                c.push(Node::obj(
                    "assignment_map",
                    "Assignment Map",
                    vec![mask_sets_node(&map.sets, t)],
                ));
            }
            if let Some(map) = &m.alt_assignment_map {
                let mut fields = Vec::new();
                alt_body_nodes(&map.body, t, &mut fields);
                c.push(Node::obj(
                    "alternate_assignment_map",
                    "Alternate Assignment Map",
                    fields,
                ));
            }
            push_opt_common(&mut c, m.capabilities.as_ref(), m.command.as_ref());
        }
        Message::RedirectAssign(m) => {
            let (component, key, routers, body) = match &m.assignment {
                Assignment::Hash(a) => (
                    "Assignment Info",
                    &a.key,
                    &a.routers,
                    AltBodyRef::Hash(&a.hash),
                ),
                Assignment::Alternate(a) => (
                    "Alternate Assignment",
                    &a.key,
                    &a.routers,
                    AltBodyRef::Alt(&a.body),
                ),
            };
            let mut fields = vec![
                Node::leaf("component", "Component", component),
                key_node(key, t),
                router_assignments(routers, t),
            ];
            match body {
                AltBodyRef::Hash(h) => {
                    fields.push(Node::leaf("assignment_type", "Assignment Type", "hash"));
                    hash_nodes(h, t, &mut fields);
                }
                AltBodyRef::Alt(b) => alt_body_nodes(b, t, &mut fields),
            }
            c.push(Node::obj("assignment", component, fields));
        }
        Message::RemovalQuery(m) => {
            let q = &m.query;
            c.push(Node::obj(
                "router_query",
                "Router Query Info",
                vec![
                    addr_node("router", "Router IP Address", q.router, t),
                    Node::leaf("receive_id", "Receive ID", q.receive_id),
                    addr_node("sent_to", "Sent To IP Address", q.sent_to, t),
                    addr_node("target", "Target Web-Cache IP Address", q.target, t),
                ],
            ));
        }
    }
    if let Some(table) = t {
        c.push(address_table_node(table));
    }
    Node::obj("", "Web Cache Communication Protocol v2 (WCCP)", c)
}

fn push_opt_common(
    c: &mut Vec<Node>,
    caps: Option<&wire::Capabilities>,
    cmd: Option<&wire::CommandExtension>,
) {
    if let Some(caps) = caps {
        c.push(capabilities_node(caps));
    }
    if let Some(cmd) = cmd {
        c.push(Node::arr(
            "command_extension",
            "Command Extension",
            cmd.commands.iter().map(command_node).collect(),
        ));
    }
}
