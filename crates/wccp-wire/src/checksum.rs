//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624): the one
//! implementation in the workspace, used by the IPv4, UDP, TCP and ICMP code, the data plane and
//! the cache's packet return.

/// Adds `data` to a running ones' complement sum (not folded, not complemented). Odd trailing
/// octets are padded with zero, as RFC 1071 says; only the last chunk of a sum may be odd.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        // Fold early so that very long inputs cannot overflow.
        if acc >= 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits and complements it: the checksum field value.
pub const fn finish(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// RFC 1071 checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// The ones' complement sum of the TCP/UDP pseudo-header (RFC 793 / RFC 768).
pub const fn pseudo_header(src: [u8; 4], dst: [u8; 4], protocol: u8, length: u16) -> u32 {
    u16::from_be_bytes([src[0], src[1]]) as u32
        + u16::from_be_bytes([src[2], src[3]]) as u32
        + u16::from_be_bytes([dst[0], dst[1]]) as u32
        + u16::from_be_bytes([dst[2], dst[3]]) as u32
        + protocol as u32
        + length as u32
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed from
/// `old` to `new`: `HC' = ~(~HC + ~m + m')`.
pub const fn update16(check: u16, old: u16, new: u16) -> u16 {
    finish((!check) as u32 + (!old) as u32 + new as u32)
}

/// [`update16`] for a 32-bit field (an address), as two words.
pub const fn update32(check: u16, old: u32, new: u32) -> u16 {
    let c = update16(check, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &data)), !0xddf2);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn incremental_equals_full() {
        let mut data = [0u8; 20];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let c = checksum(&data);
        let old = u16::from_be_bytes([data[8], data[9]]);
        data[8] = 0x12;
        data[9] = 0x34;
        assert_eq!(update16(c, old, 0x1234), checksum(&data));
        let old32 = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
        data[12..16].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(
            update32(
                checksum(&{
                    let mut d = data;
                    d[12..16].copy_from_slice(&old32.to_be_bytes());
                    d
                }),
                old32,
                0x0a01_0203
            ),
            checksum(&data)
        );
    }
}
