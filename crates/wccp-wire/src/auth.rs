//! MD5 message authentication (PROTOCOL.md §2.2):
//! digest = MD5(password NUL-padded to 8 octets ‖ whole message with the 16 digest octets zeroed).

use crate::component::security::{MD5_LEN, OPTION_MD5};
use crate::component::ComponentType;
use crate::error::Error;
use crate::md5::Md5;
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

fn compute(msg: &[u8], end: usize, digest_at: usize, password: &[u8; 8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(password);
    h.update(&msg[..digest_at]);
    h.update(&[0u8; 16]);
    h.update(&msg[digest_at + 16..end]);
    h.finalize()
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
