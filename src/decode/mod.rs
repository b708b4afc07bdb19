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
//!
//! # Layout
//! * `input`: what was given (hex string, `.hex` file, capture file) and [`parse_hex`];
//! * `capture`: the loop over a capture's frames (dissected by [`crate::pcap`]);
//! * `message`: one control message (parse, MD5 check, tree), with its components in
//!   `component`; `gre`: one GRE-redirected packet;
//! * `tree`: the ordered [`Node`] tree both renderers share, `text` and `json` the renderers.

mod capture;
mod component;
mod gre;
mod input;
mod json;
mod message;
mod text;
mod tree;

use std::fmt;
use std::io::{self, Write};

pub use component::service_flag_names;
pub use gre::gre_node;
pub use input::parse_hex;
pub use message::{decode_message, message_node, message_to_json, DecodedMessage};
pub use tree::{Node, NodeValue};

use crate::pcap;
use input::Input;

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
    match input::classify(input)? {
        Input::Message(bytes) => {
            let mut outcome = DecodeOutcome::default();
            let decoded = decode_message(&bytes, password).map_err(DecodeError::Message)?;
            outcome.messages = 1;
            if let Some(Err(e)) = &decoded.digest {
                outcome.invalid_digests.push(format!("message: {e}"));
            }
            if json {
                json::write(out, &decoded.node.to_json())?;
            } else {
                decoded.node.write_text(out, 0)?;
            }
            Ok(outcome)
        }
        Input::Capture(bytes) => {
            let cap = pcap::read_capture(&bytes).map_err(DecodeError::Pcap)?;
            capture::decode_capture(&cap, password, json, out)
        }
    }
}
