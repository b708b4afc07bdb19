//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624): the one
//! implementation in the workspace, used by the IPv4, UDP, TCP and ICMP code, the data plane and
//! the cache's packet return.

/// Adds `data` to a running ones' complement sum (not complemented; folded to at most 17
/// bits, which [`finish`] folds the rest of the way). Odd trailing octets are padded with zero,
/// as RFC 1071 says; only the last chunk of a sum may be odd.
///
/// Words are added four octets at a time into a 64-bit accumulator (RFC 1071 section 2(C):
/// the sum is independent of the word size, because 2^16 = 1 modulo 2^16 - 1): a 20-octet
/// IPv4 header is five additions, not ten, and no carry is tested inside the loop.
#[inline]
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    let mut s = u64::from(acc);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        s += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    match *chunks.remainder() {
        [a, b, c] => s += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => s += u64::from(u16::from_be_bytes([a, b])),
        [a] => s += u64::from(a) << 8,
        _ => {}
    }
    // Fold 64 -> 32 -> 17 bits with end-around carries (congruent modulo 2^16 - 1; a non-zero
    // sum never folds to zero, so `finish` gives the same field value as a 16-bit loop).
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u32
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
    fn ipv4_header_example() {
        // A valid IPv4 header sums to 0; with the field zeroed it gives the stored checksum.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }

    /// The 32-bit-word sum gives the same field value as the RFC 1071 16-bit loop.
    #[test]
    fn wide_sum_equals_word_sum() {
        fn reference(data: &[u8]) -> u16 {
            let mut acc: u32 = 0;
            for c in data.chunks(2) {
                acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
                acc = (acc & 0xffff) + (acc >> 16);
            }
            finish(acc)
        }
        let mut x: u32 = 12345;
        for len in 0..80 {
            for round in 0..50 {
                let mut buf = [0u8; 80];
                for b in buf.iter_mut() {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    *b = if round % 5 == 0 {
                        0xff
                    } else {
                        (x >> 16) as u8
                    };
                }
                let data = &buf[..len];
                assert_eq!(checksum(data), reference(data), "{data:02x?}");
                assert_eq!(finish(sum(0x1_fffe, data)), finish(sum(0, data) + 0x1_fffe));
            }
        }
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0, 0]), 0xffff);
        assert_eq!(checksum(&[0xff, 0xff]), 0);
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
