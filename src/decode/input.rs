//! What `wccpd decode` was given: a hex string, a `.hex` file or a capture file.

use std::path::Path;

use super::DecodeError;
use crate::pcap;

/// What kind of input [`super::decode_input`] was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Input {
    /// One WCCP message (a UDP payload), from hex.
    Message(Vec<u8>),
    /// The bytes of a capture file.
    Capture(Vec<u8>),
}

/// `input` is taken as a file path if such a file exists; a file starting with a pcap/pcapng
/// magic number is a capture, anything else must hold hex. Otherwise `input` itself is hex.
///
/// # Errors
/// An unreadable file or bad hex.
pub(super) fn classify(input: &str) -> Result<Input, DecodeError> {
    let path = Path::new(input);
    if path.is_file() {
        let bytes = std::fs::read(path).map_err(|source| DecodeError::Io {
            path: input.to_owned(),
            source,
        })?;
        if pcap::is_capture(&bytes) {
            return Ok(Input::Capture(bytes));
        }
        let text = String::from_utf8_lossy(&bytes);
        return parse_hex(&text).map(Input::Message);
    }
    parse_hex(input).map(Input::Message)
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
}
