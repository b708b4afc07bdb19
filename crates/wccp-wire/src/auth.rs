//! MD5 message authentication (docs/protocol.md §2.2):
//! digest = MD5(password NUL-padded to 8 octets ‖ whole message with the 16 digest octets zeroed).
//!
//! The digest itself is RustCrypto's `md-5` (`no_std`, without default features).

use md5::{Digest as _, Md5};

use crate::component::security::{MD5_LEN, OPTION_MD5};
use crate::component::ComponentType;
use crate::error::Error;
use crate::message::{Packet, HEADER_LEN};

/// Maximum password length.
pub const MAX_PASSWORD_LEN: usize = 8;

fn pad(password: &[u8]) -> Result<[u8; 8], Error> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::PasswordTooLong);
    }
    let mut p = [0u8; 8];
    p[..password.len()].copy_from_slice(password);
    Ok(p)
}

/// Where the Security component is and what it says.
enum Found {
    /// Offset of the 16 digest octets in the message.
    Md5(usize),
    None,
}

fn find(msg: &[u8]) -> Result<(usize, Found), Error> {
    let p = Packet::new_checked(msg)?;
    let end = HEADER_LEN + usize::from(p.length());
    for c in p.components() {
        let c = c?;
        if c.kind != ComponentType::SecurityInfo as u16 {
            continue;
        }
        // First Security component wins, like the parser.
        let is_md5 = c.body.len() >= MD5_LEN
            && u32::from_be_bytes([c.body[0], c.body[1], c.body[2], c.body[3]]) == OPTION_MD5;
        return Ok((
            end,
            if is_md5 {
                Found::Md5(c.body_offset() + 4)
            } else {
                Found::None
            },
        ));
    }
    Ok((end, Found::None))
}

/// MD5 of the concatenation of `parts`.
fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn compute(msg: &[u8], end: usize, digest_at: usize, password: &[u8; 8]) -> [u8; 16] {
    md5(&[
        password,
        &msg[..digest_at],
        &[0u8; 16],
        &msg[digest_at + 16..end],
    ])
}

/// Signs an emitted message in place: computes the digest over the first `8 + Length` octets and
/// writes it into the (first) Security component, which must carry the MD5 option.
///
/// # Errors
/// `PasswordTooLong`; `Md5Missing` if the message has no MD5 Security component; header or framing
/// errors.
pub fn sign(message: &mut [u8], password: &[u8]) -> Result<(), Error> {
    let password = pad(password)?;
    let (end, found) = find(message)?;
    let Found::Md5(at) = found else {
        return Err(Error::Md5Missing);
    };
    let d = compute(message, end, at, &password);
    message[at..at + 16].copy_from_slice(&d);
    Ok(())
}

/// Verifies the MD5 digest of a received message with the configured password (constant-time
/// comparison).
///
/// # Errors
/// `PasswordTooLong`; `Md5Missing` if the message carries no MD5 digest; `Md5Mismatch` if the
/// digest is wrong; header or framing errors.
pub fn verify(message: &[u8], password: &[u8]) -> Result<(), Error> {
    let password = pad(password)?;
    let (end, found) = find(message)?;
    let Found::Md5(at) = found else {
        return Err(Error::Md5Missing);
    };
    let d = compute(message, end, at, &password);
    let diff = d
        .iter()
        .zip(&message[at..at + 16])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if core::hint::black_box(diff) == 0 {
        Ok(())
    } else {
        Err(Error::Md5Mismatch)
    }
}

/// Authenticates a received message against the configuration: with a password the message must
/// carry a valid MD5 digest ([`verify`]); without one it must carry the "no security" option.
///
/// # Errors
/// As [`verify`], plus `Md5Unexpected` when no password is configured but the message has MD5.
pub fn authenticate(message: &[u8], password: Option<&[u8]>) -> Result<(), Error> {
    match password {
        Some(p) => verify(message, p),
        None => match find(message)?.1 {
            Found::None => Ok(()),
            Found::Md5(_) => Err(Error::Md5Unexpected),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 16]) -> alloc::string::String {
        use core::fmt::Write;
        let mut s = alloc::string::String::new();
        for b in d {
            write!(s, "{b:02x}").unwrap();
        }
        s
    }

    /// RFC 1321 appendix A.5 test suite, through the digest [`sign`] and [`verify`] use.
    #[test]
    fn rfc1321_suite() {
        let cases: [(&str, &str); 7] = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(hex(md5(&[input.as_bytes()])), want, "input {input:?}");
        }
    }

    /// The message is digested in pieces (password, before, zeros, after): any split gives the
    /// one-shot digest.
    #[test]
    fn incremental_equals_one_shot() {
        let data: alloc::vec::Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for split in [0, 1, 55, 56, 63, 64, 65, 999] {
            assert_eq!(
                md5(&[&data[..split], &data[split..]]),
                md5(&[&data]),
                "split {split}"
            );
        }
    }
}
