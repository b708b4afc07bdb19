//! `wccpd decode`: render WCCP messages and GRE-redirected packets as a tree or JSON.
//!
//! Input ([`decode_input`]) is one of
//! * a hex string on the command line (one whole WCCP message, i.e. a UDP payload; whitespace,
//!   `:` and a leading `0x` are ignored);
//! * a file with that hex (`.hex`);
//! * a capture file (classic pcap or pcapng): every UDP port-2048 message and every GRE
//!   (protocol 0x883E) redirected packet in it.
//!
//! Output is an indented tree in the manner of `tshark -V` (field names from the draft), or JSON
//! (`--json`). The JSON member names are a stable interface for scripts and tests:
//! `type`, `version`, `security.option`, `security.valid` (only with a password),
//! `service.{type,id,priority,protocol,flags,ports}`, then per message type
//! `web_cache_identity`, `web_cache_view` (HERE_I_AM); `router_identity`, `router_view`,
//! `assignment_map`, `alternate_assignment_map` (I_SEE_YOU); `assignment` (REDIRECT_ASSIGN);
//! `router_query` (REMOVAL_QUERY); and `capabilities`, `command_extension`, `address_table`
//! when present. GRE packets give `gre.redirect_header` and `gre.inner`.
//!
//! Malformed input is an error naming the field and offset; nothing here panics on input.

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;

use serde_json::{json, Map, Value};
use wire::{
    Addr, AddressTable, AltAssignmentBody, AltMaskValueSet, Assignment, AssignmentData,
    AssignmentKey, Capability, Command, ExtendedData, HashBuckets, MaskElement, MaskValueSet,
    Message, RouterAssignment, Security, ServiceFlags, ServiceInfo, ServiceType, WccpPayload,
    WebCacheIdentity,
};

use crate::pcap::{self, Extracted};

/// Bucket octet meaning "unassigned" (PROTOCOL.md §2.8).
const BUCKET_UNASSIGNED: u8 = 0xFF;
/// Bucket octet flag "use the alternate hash".
const BUCKET_ALT: u8 = 0x80;

/// What a decode run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeOutcome {
    /// WCCP control messages decoded.
    pub messages: usize,
    /// GRE-redirected packets decoded.
    pub gre_packets: usize,
    /// Frames of a capture that carried neither (other traffic).
    pub skipped_frames: usize,
    /// Messages whose MD5 check failed (only counted when a password was given): one entry per
    /// message, e.g. `"frame 3: Security Info: MD5 digest mismatch"`.
    pub invalid_digests: Vec<String>,
    /// Frames of a capture that could not be decoded, with the reason (field and offset).
    pub errors: Vec<String>,
}

impl DecodeOutcome {
    /// True when everything decoded and every digest checked (if a password was given) is valid.
    pub fn is_ok(&self) -> bool {
        self.invalid_digests.is_empty() && self.errors.is_empty()
    }
}

/// Why decoding failed as a whole.
#[derive(Debug)]
pub enum DecodeError {
    /// The input file could not be read.
    Io {
        /// Path as given.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The hex input is malformed.
    Hex {
        /// 0-based character position in the (whitespace-stripped) hex text.
        position: usize,
        /// What is wrong.
        detail: String,
    },
    /// The capture file is malformed.
    Pcap(pcap::PcapError),
    /// The single WCCP message given as hex is malformed.
    Message(wire::Error),
    /// The MD5 password is longer than 8 octets.
    PasswordTooLong,
    /// Writing the output failed.
    Output(io::Error),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Io { path, source } => write!(f, "cannot read {path}: {source}"),
            DecodeError::Hex { position, detail } => {
                write!(f, "bad hex input at character {position}: {detail}")
            }
            DecodeError::Pcap(e) => write!(f, "malformed capture file: {e}"),
            DecodeError::Message(e) => write!(f, "malformed WCCP message: {e}"),
            DecodeError::PasswordTooLong => f.write_str("MD5 password longer than 8 octets"),
            DecodeError::Output(e) => write!(f, "cannot write output: {e}"),
        }
    }
}

// `source()` stays `None`: every variant's Display already includes the cause, and `anyhow`'s
// `{:#}` would otherwise print it twice.
impl std::error::Error for DecodeError {}

impl From<io::Error> for DecodeError {
    fn from(e: io::Error) -> Self {
        DecodeError::Output(e)
    }
}

/// Entry point of `wccpd decode`: decodes `input` (see [`decode_input`]) and writes the result
/// to `out`.
///
/// # Errors
/// Malformed input (naming field and offset), unreadable file, or — after the output has been
/// written — any frame that failed to decode or any MD5 digest that did not verify with
/// `password` (so the process exits non-zero).
pub fn run_cli(
    input: &str,
    password: Option<&[u8]>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let outcome = decode_input(input, password, json, out)?;
    out.flush()?;
    if !outcome.invalid_digests.is_empty() {
        anyhow::bail!(
            "MD5 digest invalid for {} message(s): {}",
            outcome.invalid_digests.len(),
            outcome.invalid_digests.join("; ")
        );
    }
    if !outcome.errors.is_empty() {
        anyhow::bail!(
            "{} frame(s) could not be decoded: {}",
            outcome.errors.len(),
            outcome.errors.join("; ")
        );
    }
    Ok(())
}

/// What kind of input [`decode_input`] was given.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    Message(Vec<u8>),
    Capture(Vec<u8>),
}

/// Decodes a hex string, a `.hex` file or a capture file and writes a tree (or JSON) to `out`.
///
/// `input` is taken as a file path if such a file exists; a file starting with a pcap/pcapng
/// magic number is a capture, anything else must hold hex. Otherwise `input` itself is hex.
///
/// With `password`, every message's MD5 digest is checked (`security.valid` in the output);
/// failures are listed in [`DecodeOutcome::invalid_digests`], not returned as an error.
///
/// # Errors
/// [`DecodeError`]: unreadable file, bad hex, malformed capture file, malformed single message
/// (a malformed frame inside a capture is reported in [`DecodeOutcome::errors`] instead), or an
/// output error.
pub fn decode_input(
    input: &str,
    password: Option<&[u8]>,
    json: bool,
    out: &mut dyn Write,
) -> Result<DecodeOutcome, DecodeError> {
    if password.is_some_and(|p| p.len() > wire::auth::MAX_PASSWORD_LEN) {
        return Err(DecodeError::PasswordTooLong);
    }
    match classify_input(input)? {
        Input::Message(bytes) => {
            let mut outcome = DecodeOutcome::default();
            let decoded = decode_message(&bytes, password).map_err(DecodeError::Message)?;
            outcome.messages = 1;
            if let Some(Err(e)) = &decoded.digest {
                outcome.invalid_digests.push(format!("message: {e}"));
            }
            if json {
                serde_json::to_writer_pretty(&mut *out, &decoded.node.to_json())
                    .map_err(io::Error::from)?;
                writeln!(out)?;
            } else {
                decoded.node.write_text(out, 0)?;
            }
            Ok(outcome)
        }
        Input::Capture(bytes) => {
            let cap = pcap::read_capture(&bytes).map_err(DecodeError::Pcap)?;
            decode_capture(&cap, password, json, out)
        }
    }
}

fn classify_input(input: &str) -> Result<Input, DecodeError> {
    let path = Path::new(input);
    if path.is_file() {
        let bytes = std::fs::read(path).map_err(|source| DecodeError::Io {
            path: input.to_owned(),
            source,
        })?;
        if pcap::read_capture(&bytes).is_ok() || looks_like_capture(&bytes) {
            return Ok(Input::Capture(bytes));
        }
        let text = String::from_utf8_lossy(&bytes);
        return parse_hex(&text).map(Input::Message);
    }
    parse_hex(input).map(Input::Message)
}

fn looks_like_capture(bytes: &[u8]) -> bool {
    let Some(m) = bytes.get(..4) else {
        return false;
    };
    let magic = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    matches!(
        magic,
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0x0a0d_0d0a
    )
}

/// Parses hex text: whitespace, `:` and `-` separators and a leading `0x` are ignored.
///
/// # Errors
/// [`DecodeError::Hex`] with the position of the first bad character, or for an odd number of
/// digits or empty input.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, DecodeError> {
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let mut digits = Vec::with_capacity(body.len());
    for (i, c) in body.chars().enumerate() {
        if c.is_whitespace() || c == ':' || c == '-' {
            continue;
        }
        match c.to_digit(16) {
            // A hex digit is < 16, so it fits in u8.
            Some(d) => digits.push(u8::try_from(d).unwrap_or(0)),
            None => {
                let looks_like_path = body.contains('/') || body.contains('.');
                return Err(DecodeError::Hex {
                    position: i,
                    detail: if looks_like_path {
                        format!("{c:?} is not a hex digit (and no file {text:?} exists)")
                    } else {
                        format!("{c:?} is not a hex digit")
                    },
                });
            }
        }
    }
    if digits.is_empty() {
        return Err(DecodeError::Hex {
            position: 0,
            detail: "no hex digits".to_owned(),
        });
    }
    if digits.len() % 2 != 0 {
        return Err(DecodeError::Hex {
            position: body.len(),
            detail: format!("odd number of hex digits ({})", digits.len()),
        });
    }
    Ok(digits.chunks_exact(2).map(|p| (p[0] << 4) | p[1]).collect())
}

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

fn decode_capture(
    cap: &pcap::Capture,
    password: Option<&[u8]>,
    json: bool,
    out: &mut dyn Write,
) -> Result<DecodeOutcome, DecodeError> {
    let mut outcome = DecodeOutcome::default();
    let mut entries = Vec::new();
    for frame in &cap.frames {
        let n = frame.number;
        let time = format!(
            "{}.{:09}",
            frame.timestamp.as_secs(),
            frame.timestamp.subsec_nanos()
        );
        let mut fields = vec![
            Node::leaf("frame", "Frame", n),
            Node::leaf("time", "Time", time.clone()),
        ];
        let (summary, body) = match pcap::extract(frame.link_type, &frame.data) {
            Ok(None) => {
                outcome.skipped_frames += 1;
                continue;
            }
            Ok(Some(Extracted::Wccp { src, dst, payload })) => {
                fields.push(Node::leaf("src", "Source", src.to_string()));
                fields.push(Node::leaf("dst", "Destination", dst.to_string()));
                let summary = format!("{src} -> {dst}, UDP payload {} octets", payload.len());
                match decode_message(payload, password) {
                    Ok(d) => {
                        outcome.messages += 1;
                        if let Some(Err(e)) = &d.digest {
                            outcome.invalid_digests.push(format!("frame {n}: {e}"));
                        }
                        let mut node = d.node;
                        node.key = "message".to_owned();
                        (summary, node)
                    }
                    Err(e) => {
                        let msg = format!("frame {n}: malformed WCCP message: {e}");
                        outcome.errors.push(msg.clone());
                        (summary, Node::leaf("error", "Error", msg))
                    }
                }
            }
            Ok(Some(Extracted::Gre { src, dst, payload })) => {
                fields.push(Node::leaf("src", "Source", src.to_string()));
                fields.push(Node::leaf("dst", "Destination", dst.to_string()));
                let summary = format!("{src} -> {dst}, GRE {} octets", payload.len());
                match gre_node(payload) {
                    Ok(Some(node)) => {
                        outcome.gre_packets += 1;
                        (summary, node)
                    }
                    Ok(None) => {
                        outcome.skipped_frames += 1;
                        continue;
                    }
                    Err(e) => {
                        let msg = format!("frame {n}: malformed WCCP GRE packet: {e}");
                        outcome.errors.push(msg.clone());
                        (summary, Node::leaf("error", "Error", msg))
                    }
                }
            }
            Err(e) => {
                let msg = format!("frame {n}: {e}");
                outcome.errors.push(msg.clone());
                (
                    "undecodable frame".to_owned(),
                    Node::leaf("error", "Error", msg),
                )
            }
        };
        fields.push(body);
        entries.push(
            Node::obj("", &format!("Frame {n}"), fields).with_text(format!("{time}, {summary}")),
        );
    }
    if json {
        let arr = Value::Array(entries.iter().map(Node::to_json).collect());
        serde_json::to_writer_pretty(&mut *out, &arr).map_err(io::Error::from)?;
        writeln!(out)?;
    } else {
        for e in &entries {
            e.write_text(out, 0)?;
            writeln!(out)?;
        }
        writeln!(
            out,
            "{} WCCP message(s), {} GRE-redirected packet(s), {} other frame(s), {} error(s)",
            outcome.messages,
            outcome.gre_packets,
            outcome.skipped_frames,
            outcome.errors.len()
        )?;
    }
    Ok(outcome)
}

// ------------------------------------------------------------------------------------------------
// The ordered tree both renderers share.

/// One node of the decoded tree: rendered as one JSON member and as one text line (plus children).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// JSON member name.
    pub key: String,
    /// Text label (the draft's field name).
    pub label: String,
    /// Text shown after the label; `None` = derived from the JSON value.
    pub text: Option<String>,
    /// Content.
    pub value: NodeValue,
}

/// Content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// A scalar (or a compact JSON value that the text shows through `text`).
    Leaf(Value),
    /// Named members, in order.
    Object(Vec<Node>),
    /// Array items (their `key` is ignored in JSON).
    Array(Vec<Node>),
}

impl Node {
    /// A scalar leaf.
    pub fn leaf(key: &str, label: &str, v: impl Into<Value>) -> Node {
        Node {
            key: key.to_owned(),
            label: label.to_owned(),
            text: None,
            value: NodeValue::Leaf(v.into()),
        }
    }

    /// A leaf whose text differs from its JSON value.
    pub fn leaf_text(key: &str, label: &str, v: impl Into<Value>, text: impl Into<String>) -> Node {
        Node {
            key: key.to_owned(),
            label: label.to_owned(),
            text: Some(text.into()),
            value: NodeValue::Leaf(v.into()),
        }
    }

    /// An object.
    pub fn obj(key: &str, label: &str, children: Vec<Node>) -> Node {
        Node {
            key: key.to_owned(),
            label: label.to_owned(),
            text: None,
            value: NodeValue::Object(children),
        }
    }

    /// An array.
    pub fn arr(key: &str, label: &str, items: Vec<Node>) -> Node {
        Node {
            key: key.to_owned(),
            label: label.to_owned(),
            text: None,
            value: NodeValue::Array(items),
        }
    }

    /// Sets the text shown after the label.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Node {
        self.text = Some(text.into());
        self
    }

    /// The JSON value of this node.
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Leaf(v) => v.clone(),
            NodeValue::Object(children) => {
                let mut m = Map::new();
                for c in children {
                    m.insert(c.key.clone(), c.to_json());
                }
                Value::Object(m)
            }
            NodeValue::Array(items) => Value::Array(items.iter().map(Node::to_json).collect()),
        }
    }

    /// Writes this node as indented text (4 spaces per level).
    ///
    /// # Errors
    /// I/O errors from `out`.
    pub fn write_text(&self, out: &mut dyn Write, depth: usize) -> io::Result<()> {
        let pad = " ".repeat(depth * 4);
        match &self.value {
            NodeValue::Leaf(v) => {
                let text = self.text.clone().unwrap_or_else(|| scalar_text(v));
                let mut lines = text.lines();
                writeln!(out, "{pad}{}: {}", self.label, lines.next().unwrap_or(""))?;
                for l in lines {
                    writeln!(out, "{pad}    {l}")?;
                }
            }
            NodeValue::Object(children) => {
                match &self.text {
                    Some(t) => writeln!(out, "{pad}{}: {t}", self.label)?,
                    None => writeln!(out, "{pad}{}", self.label)?,
                }
                for c in children {
                    c.write_text(out, depth + 1)?;
                }
            }
            NodeValue::Array(items) => {
                match &self.text {
                    Some(t) => writeln!(out, "{pad}{}: {t}", self.label)?,
                    None if items.len() == 1 => writeln!(out, "{pad}{}: 1 entry", self.label)?,
                    None => writeln!(out, "{pad}{}: {} entries", self.label, items.len())?,
                }
                for c in items {
                    c.write_text(out, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "none".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(scalar_text).collect();
            if parts.is_empty() {
                "(none)".to_owned()
            } else {
                parts.join(", ")
            }
        }
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------------------------------------
// Control messages.

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
                    Node::arr(
                        "routers",
                        "Routers",
                        view.routers
                            .iter()
                            .enumerate()
                            .map(|(i, r)| {
                                Node::obj(
                                    "",
                                    &format!("Router {}", i + 1),
                                    vec![
                                        addr_node("address", "Router IP Address", r.addr, t),
                                        Node::leaf("receive_id", "Receive ID", r.receive_id),
                                    ],
                                )
                            })
                            .collect(),
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

enum AltBodyRef<'a> {
    Hash(&'a HashBuckets),
    Alt(&'a AltAssignmentBody),
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn security_node(s: &Security) -> Node {
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

fn service_node(s: &ServiceInfo) -> Node {
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

fn addr_node(key: &str, label: &str, a: Addr, t: Option<&AddressTable>) -> Node {
    let (v, text) = addr_value(a, t);
    Node::leaf_text(key, label, v, text)
}

fn addr_list(
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

fn key_node(k: &AssignmentKey, t: Option<&AddressTable>) -> Node {
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

fn router_assignments(routers: &[RouterAssignment], t: Option<&AddressTable>) -> Node {
    Node::arr(
        "routers",
        "Router Assignment Elements",
        routers
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Node::obj(
                    "",
                    &format!("Router {}", i + 1),
                    vec![
                        addr_node("address", "Router IP Address", r.addr, t),
                        Node::leaf("receive_id", "Receive ID", r.receive_id),
                        Node::leaf("change_number", "Change Number", r.change_number),
                    ],
                )
            })
            .collect(),
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

fn hash_nodes(h: &HashBuckets, t: Option<&AddressTable>, out: &mut Vec<Node>) {
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

fn mask_sets_node(sets: &[MaskValueSet], t: Option<&AddressTable>) -> Node {
    Node::arr(
        "mask_value_sets",
        "Mask/Value Sets",
        sets.iter()
            .enumerate()
            .map(|(i, s)| {
                let values = s
                    .values
                    .iter()
                    .enumerate()
                    .map(|(j, v)| {
                        Node::obj(
                            "",
                            &format!("Value Element {}", j + 1),
                            vec![
                                mask_addr_node("src_addr", "Source Address", v.src_addr, t),
                                mask_addr_node("dst_addr", "Destination Address", v.dst_addr, t),
                                Node::leaf("src_port", "Source Port", v.src_port),
                                Node::leaf("dst_port", "Destination Port", v.dst_port),
                                addr_node("cache", "Web Cache Address", v.cache, t),
                            ],
                        )
                    })
                    .collect();
                Node::obj(
                    "",
                    &format!("Mask/Value Set {}", i + 1),
                    vec![
                        mask_element_nodes(&s.mask, t),
                        Node::arr("values", "Value Elements", values),
                    ],
                )
            })
            .collect(),
    )
}

fn alt_mask_sets_node(sets: &[AltMaskValueSet], t: Option<&AddressTable>) -> Node {
    Node::arr(
        "alt_mask_value_sets",
        "Alternate Mask/Value Sets",
        sets.iter()
            .enumerate()
            .map(|(i, s)| {
                let caches = s
                    .caches
                    .iter()
                    .enumerate()
                    .map(|(j, c)| {
                        Node::obj(
                            "",
                            &format!("Web-Cache Value Element {}", j + 1),
                            vec![
                                addr_node("cache", "Web-Cache Address", c.cache, t),
                                Node::leaf("vsns", "Value Sequence Numbers", c.vsns.clone()),
                            ],
                        )
                    })
                    .collect();
                Node::obj(
                    "",
                    &format!("Alternate Mask/Value Set {}", i + 1),
                    vec![
                        mask_element_nodes(&s.mask, t),
                        Node::arr("caches", "Web-Cache Value Elements", caches),
                    ],
                )
            })
            .collect(),
    )
}

fn alt_body_nodes(b: &AltAssignmentBody, t: Option<&AddressTable>, out: &mut Vec<Node>) {
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

fn identity_node(key: &str, label: &str, w: &WebCacheIdentity, t: Option<&AddressTable>) -> Node {
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
        // ATS encodes U as 0x8000 (PROTOCOL.md A2); show it rather than hide it.
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

fn capabilities_node(caps: &wire::Capabilities) -> Node {
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

fn command_node(cmd: &Command) -> Node {
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

fn address_table_node(t: &AddressTable) -> Node {
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

// ------------------------------------------------------------------------------------------------
// GRE-redirected packets.

/// Renders a GRE packet (`payload` starts at the GRE header): the GRE header, the WCCP redirect
/// header (or its absence, WCCPv1 style), and the inner IPv4 addresses, protocol and ports.
///
/// Returns `Ok(None)` for GRE that is not WCCP (protocol other than 0x883E).
///
/// # Errors
/// The [`wire::Error`] of a truncated or malformed GRE/redirect/inner IPv4 header.
pub fn gre_node(payload: &[u8]) -> Result<Option<Node>, wire::Error> {
    let gre = wire::GrePacket::new_checked(payload)?;
    if gre.protocol() != wire::gre::PROTOCOL_WCCP {
        return Ok(None);
    }
    let mut c = vec![
        Node::leaf_text(
            "flags_version",
            "Flags and Version",
            gre.flags_version(),
            format!("0x{:04x}", gre.flags_version()),
        ),
        Node::leaf_text(
            "protocol",
            "Protocol Type",
            format!("0x{:04x}", gre.protocol()),
            format!("WCCP (0x{:04x})", gre.protocol()),
        ),
    ];
    let decap = wire::decap_wccp(payload)?;
    match decap {
        WccpPayload::Redirect { header, .. } => {
            use wire::RedirectFlags as F;
            let f = header.flags;
            let mut names = Vec::new();
            if f.contains(F::DYNAMIC) {
                names.push("dynamic service");
            }
            if f.contains(F::ALT_BUCKET_USED) {
                names.push("alternate bucket used");
            }
            if f.contains(F::UNAVAILABLE) {
                names.push("U: contents unavailable");
            }
            c.push(Node::obj(
                "redirect_header",
                "Redirect Header",
                vec![
                    Node::leaf("present", "Present", true),
                    Node::leaf_text(
                        "flags",
                        "Flags",
                        f.0,
                        format!("0x{:02x} ({})", f.0, names.join(", ")),
                    ),
                    Node::leaf("dynamic", "Dynamic Service", f.contains(F::DYNAMIC)),
                    Node::leaf(
                        "alternate_used",
                        "Alternate Bucket Used",
                        f.contains(F::ALT_BUCKET_USED),
                    ),
                    Node::leaf(
                        "unavailable",
                        "Contents Unavailable (U)",
                        f.contains(F::UNAVAILABLE),
                    ),
                    Node::leaf("service_id", "Service ID", header.service_id),
                    Node::leaf("alt_bucket", "Alternate Bucket", header.alt_bucket),
                    Node::leaf("primary_bucket", "Primary Bucket", header.primary_bucket),
                ],
            ));
        }
        WccpPayload::Ipv4(_) => {
            c.push(Node::obj(
                "redirect_header",
                "Redirect Header",
                vec![Node::leaf_text(
                    "present",
                    "Present",
                    false,
                    "no (WCCPv1 style: inner IPv4 follows GRE directly)",
                )],
            ));
        }
    }
    let inner = decap.inner();
    let ip = wire::Ipv4Packet::new_checked(inner)
        .map_err(|e| shift_error(e, payload.len() - inner.len()))?;
    let mut ic = vec![
        Node::leaf("src", "Source Address", ip.src().to_string()),
        Node::leaf("dst", "Destination Address", ip.dst().to_string()),
        Node::leaf_text(
            "protocol",
            "Protocol",
            ip.protocol(),
            match ip.protocol() {
                6 => "TCP (6)".to_owned(),
                17 => "UDP (17)".to_owned(),
                p => p.to_string(),
            },
        ),
        Node::leaf("ttl", "Time to Live", ip.ttl()),
    ];
    let l4 = ip.payload();
    let first_fragment = ip.flags_frag() & 0x1fff == 0;
    if matches!(ip.protocol(), 6 | 17) && first_fragment && l4.len() >= 4 {
        ic.push(Node::leaf(
            "src_port",
            "Source Port",
            u16::from_be_bytes([l4[0], l4[1]]),
        ));
        ic.push(Node::leaf(
            "dst_port",
            "Destination Port",
            u16::from_be_bytes([l4[2], l4[3]]),
        ));
    }
    c.push(Node::obj("inner", "Inner IPv4 Packet", ic));
    Ok(Some(Node::obj(
        "gre",
        "Generic Routing Encapsulation (WCCP)",
        c,
    )))
}

/// Makes an inner-header error's offset relative to the GRE header.
fn shift_error(e: wire::Error, by: usize) -> wire::Error {
    let by = u32::try_from(by).unwrap_or(u32::MAX);
    match e {
        wire::Error::Truncated {
            layer,
            field,
            index,
            need,
            have,
            offset,
        } => wire::Error::Truncated {
            layer,
            field,
            index,
            need,
            have,
            offset: offset.saturating_add(by),
        },
        wire::Error::Invalid {
            layer,
            field,
            index,
            offset,
            value,
        } => wire::Error::Invalid {
            layer,
            field,
            index,
            offset: offset.saturating_add(by),
            value,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex("0a0B").unwrap(), vec![0x0a, 0x0b]);
        assert_eq!(parse_hex(" 0x0a 0b\n").unwrap(), vec![0x0a, 0x0b]);
        assert_eq!(parse_hex("0a:0b-0c").unwrap(), vec![0x0a, 0x0b, 0x0c]);
        assert!(matches!(
            parse_hex("0a0"),
            Err(DecodeError::Hex { position: 3, .. })
        ));
        assert!(matches!(
            parse_hex("0ag0"),
            Err(DecodeError::Hex { position: 2, .. })
        ));
        assert!(matches!(parse_hex("  "), Err(DecodeError::Hex { .. })));
    }

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

    #[test]
    fn tree_renders_json_and_text() {
        let n = Node::obj(
            "",
            "Root",
            vec![
                Node::leaf("a", "Field A", 1),
                Node::leaf_text("b", "Field B", "x", "x (explained)"),
                Node::arr(
                    "list",
                    "Items",
                    vec![Node::leaf("", "Item 1", "p"), Node::leaf("", "Item 2", "q")],
                ),
                Node::leaf_text("m", "Multi", 0, "line one\nline two"),
            ],
        );
        assert_eq!(
            n.to_json(),
            json!({"a": 1, "b": "x", "list": ["p", "q"], "m": 0})
        );
        let mut out = Vec::new();
        n.write_text(&mut out, 0).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Root\n    Field A: 1\n    Field B: x (explained)\n    Items: 2 entries\n        \
             Item 1: p\n        Item 2: q\n    Multi: line one\n        line two\n"
        );
    }

    #[test]
    fn gre_non_wccp_is_skipped_and_truncation_names_offset() {
        // GRE carrying plain IPv4 (0x0800) is not a WCCP redirect.
        assert_eq!(gre_node(&[0, 0, 0x08, 0x00, 0x45]).unwrap(), None);
        // WCCP GRE with a redirect header but a truncated inner IPv4 header.
        let e = gre_node(&[0, 0, 0x88, 0x3e, 0x01, 0x7b, 0, 0, 0x45, 0, 0]).unwrap_err();
        assert!(e.to_string().contains("offset 8"), "{e}");
    }
}
