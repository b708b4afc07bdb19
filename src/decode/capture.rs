//! Every frame of a capture: WCCP control messages (UDP 2048) and GRE-redirected packets,
//! numbered as `tshark` numbers them, plus a summary line.

use std::io::Write;

use serde_json::Value;

use super::gre::gre_node;
use super::message::decode_message;
use super::tree::Node;
use super::{json, DecodeError, DecodeOutcome};
use crate::pcap::{self, Extracted, Frame};

/// Decodes every frame of `cap` and writes the frames as a tree (with a summary line) or as a
/// JSON array.
///
/// # Errors
/// Output errors only: a frame that does not decode is an entry (and an error in the outcome).
pub(super) fn decode_capture(
    cap: &pcap::Capture,
    password: Option<&[u8]>,
    json: bool,
    out: &mut dyn Write,
) -> Result<DecodeOutcome, DecodeError> {
    let mut outcome = DecodeOutcome::default();
    let entries: Vec<Node> = cap
        .frames
        .iter()
        .filter_map(|f| frame_node(f, password, &mut outcome))
        .collect();
    if json {
        json::write(
            out,
            &Value::Array(entries.iter().map(Node::to_json).collect()),
        )?;
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

/// One frame's node, counted in `outcome`; `None` for a frame that carries neither a WCCP
/// message nor a WCCP GRE packet (counted as skipped).
fn frame_node(frame: &Frame, password: Option<&[u8]>, outcome: &mut DecodeOutcome) -> Option<Node> {
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
            return None;
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
                    return None;
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
    Some(Node::obj("", &format!("Frame {n}"), fields).with_text(format!("{time}, {summary}")))
}
