//! The WCCPv2 bucket hash (docs/protocol.md 3.2, draft-wilson 5.6.2).
//!
//! Key formation: start from a 32-bit key of 0 and XOR in every field whose flag is set (source and
//! destination address as 32-bit values, ports zero-extended to 32 bits). Fold it to one octet:
//!
//! ```text
//! h = key ^ (key >> 16);  h = h ^ (h >> 8);  bucket = h & 0xFF
//! ```
//!
//! which is the same as XOR-ing every octet of the selected fields together. The primary hash uses
//! flags `0x0001..=0x0008`, the alternate hash `0x0100..=0x0800` (the [`flags`] constants).
//!
//! Pure and branch-light: the data plane calls these per packet.

use crate::service::flags;

/// The classification key of one packet: addresses and ports in host order.
///
/// Ports are 0 when the packet has no TCP/UDP header (docs/protocol.md 3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IPv4 source address (`u32::from(Ipv4Addr)`).
    pub src: u32,
    /// IPv4 destination address.
    pub dst: u32,
    /// Source port (0 without ports).
    pub sport: u16,
    /// Destination port (0 without ports).
    pub dport: u16,
}

impl FlowKey {
    /// A key from its four fields.
    pub const fn new(src: u32, dst: u32, sport: u16, dport: u16) -> Self {
        FlowKey {
            src,
            dst,
            sport,
            dport,
        }
    }
}

/// Folds a 32-bit hash key to a bucket number (draft-wilson 5.6.2).
#[inline]
pub const fn fold(key: u32) -> u8 {
    let h = key ^ (key >> 16);
    let h = h ^ (h >> 8);
    (h & 0xFF) as u8
}

/// XORs the fields selected by `sel` (bit 0 src IP, bit 1 dst IP, bit 2 src port, bit 3 dst port)
/// into one 32-bit key. Branch-free: each field is AND-ed with an all-ones or all-zeros mask.
#[inline]
const fn key_of(sel: u32, key: &FlowKey) -> u32 {
    (key.src & ones_if(sel, 0))
        ^ (key.dst & ones_if(sel, 1))
        ^ (key.sport as u32 & ones_if(sel, 2))
        ^ (key.dport as u32 & ones_if(sel, 3))
}

/// All ones if bit `bit` of `sel` is set, else 0.
#[inline]
const fn ones_if(sel: u32, bit: u32) -> u32 {
    0u32.wrapping_sub((sel >> bit) & 1)
}

/// The primary bucket of `key` under the service flags `service_flags` (only the primary hash
/// flags [`flags::SRC_IP_HASH`], [`flags::DST_IP_HASH`], [`flags::SRC_PORT_HASH`],
/// [`flags::DST_PORT_HASH`] matter). No flag set gives bucket 0 for every packet.
#[inline]
pub const fn primary_bucket(service_flags: u32, key: &FlowKey) -> u8 {
    fold(key_of(service_flags & 0xF, key))
}

/// The alternate bucket of `key` under the service flags `service_flags` (only
/// [`flags::SRC_IP_ALT_HASH`], [`flags::DST_IP_ALT_HASH`], [`flags::SRC_PORT_ALT_HASH`],
/// [`flags::DST_PORT_ALT_HASH`] matter).
#[inline]
pub const fn alternate_bucket(service_flags: u32, key: &FlowKey) -> u8 {
    fold(key_of((service_flags >> 8) & 0xF, key))
}

// Keep the flag layout assumption of `key_of` checked at compile time.
const _: () = {
    assert!(flags::SRC_IP_HASH == 1 && flags::DST_IP_HASH == 2);
    assert!(flags::SRC_PORT_HASH == 4 && flags::DST_PORT_HASH == 8);
    assert!(flags::SRC_IP_ALT_HASH == 1 << 8 && flags::DST_IP_ALT_HASH == 2 << 8);
    assert!(flags::SRC_PORT_ALT_HASH == 4 << 8 && flags::DST_PORT_ALT_HASH == 8 << 8);
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::flags::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    /// TV-1: the 2006 Cisco GRE redirect of 10.254.127.195:1291 -> 10.254.108.228:445 carried
    /// primary bucket 72 = hash(src IP).
    #[test]
    fn tv1_cisco_redirect() {
        let k = FlowKey::new(ip("10.254.127.195"), ip("10.254.108.228"), 1291, 445);
        assert_eq!(primary_bucket(SRC_IP_HASH, &k), 72);
        assert_eq!(primary_bucket(DST_IP_HASH, &k), 124);
        assert_eq!(primary_bucket(SRC_IP_HASH | DST_IP_HASH, &k), 52);
        assert_eq!(primary_bucket(SRC_IP_HASH | SRC_PORT_HASH, &k), 70);
        // The same selections through the alternate flags.
        assert_eq!(alternate_bucket(SRC_IP_ALT_HASH, &k), 72);
        assert_eq!(alternate_bucket(DST_IP_ALT_HASH, &k), 124);
        assert_eq!(alternate_bucket(SRC_IP_ALT_HASH | DST_IP_ALT_HASH, &k), 52);
        assert_eq!(
            alternate_bucket(SRC_IP_ALT_HASH | SRC_PORT_ALT_HASH, &k),
            70
        );
        // Primary and alternate flags do not leak into each other.
        assert_eq!(primary_bucket(SRC_IP_ALT_HASH, &k), 0);
        assert_eq!(alternate_bucket(SRC_IP_HASH | DST_IP_HASH, &k), 0);
        assert_eq!(primary_bucket(SRC_IP_HASH | DST_IP_ALT_HASH, &k), 72);
        assert_eq!(alternate_bucket(SRC_IP_HASH | DST_IP_ALT_HASH, &k), 124);
    }

    /// TV-11: single addresses.
    #[test]
    fn tv11_addresses() {
        for (a, b) in [("192.168.1.1", 104), ("52.217.36.131", 74), ("10.1.2.1", 8)] {
            let k = FlowKey::new(ip(a), 0, 0, 0);
            assert_eq!(primary_bucket(SRC_IP_HASH, &k), b, "{a}");
            let k = FlowKey::new(0, ip(a), 0, 0);
            assert_eq!(primary_bucket(DST_IP_HASH, &k), b, "{a}");
        }
    }

    #[test]
    fn ports_alone() {
        let k = FlowKey::new(0, 0, 0x1234, 0xAB00);
        assert_eq!(primary_bucket(SRC_PORT_HASH, &k), 0x12 ^ 0x34);
        assert_eq!(primary_bucket(DST_PORT_HASH, &k), 0xAB);
        assert_eq!(
            primary_bucket(SRC_PORT_HASH | DST_PORT_HASH, &k),
            0x12 ^ 0x34 ^ 0xAB
        );
    }

    #[test]
    fn reserved_flag_bits_ignored() {
        let k = FlowKey::new(ip("192.168.1.1"), ip("10.1.2.1"), 80, 8080);
        let all_other = 0xFFFF_F0F0 | PORTS_DEFINED | PORTS_SOURCE;
        assert_eq!(primary_bucket(all_other | SRC_IP_HASH, &k), 104);
        assert_eq!(alternate_bucket(all_other | DST_IP_ALT_HASH, &k), 8);
    }

    fn octet_xor(sel: u32, k: &FlowKey) -> u8 {
        let mut acc = 0u8;
        if sel & 1 != 0 {
            k.src.to_be_bytes().iter().for_each(|o| acc ^= o);
        }
        if sel & 2 != 0 {
            k.dst.to_be_bytes().iter().for_each(|o| acc ^= o);
        }
        if sel & 4 != 0 {
            k.sport.to_be_bytes().iter().for_each(|o| acc ^= o);
        }
        if sel & 8 != 0 {
            k.dport.to_be_bytes().iter().for_each(|o| acc ^= o);
        }
        acc
    }

    proptest! {
        /// R1's formulation: the bucket is the XOR of every octet of the selected fields.
        #[test]
        fn fold_is_octet_xor(src: u32, dst: u32, sport: u16, dport: u16, f: u32) {
            let k = FlowKey::new(src, dst, sport, dport);
            prop_assert_eq!(primary_bucket(f, &k), octet_xor(f & 0xF, &k));
            prop_assert_eq!(alternate_bucket(f, &k), octet_xor((f >> 8) & 0xF, &k));
        }
    }
}
