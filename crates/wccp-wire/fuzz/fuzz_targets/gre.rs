//! Fuzz target `gre`: the GRE view, the WCCP redirect header view, WCCP decapsulation (first
//! nibble 4 = WCCPv1 style, otherwise a redirect header) and the inner IPv4 view on arbitrary
//! bytes. Nothing may panic, and what decodes must agree with the raw octets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wccp_wire::{
    decap_wccp, GrePacket, GreRepr, Ipv4Packet, Ipv4Repr, RedirectHeader, RedirectPacket,
    WccpPayload,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = GrePacket::new_checked(data) {
        let _ = (p.flags_version(), p.protocol(), p.header_len());
        let _ = p.payload();
        let _ = GreRepr::parse(&p);
        // Any flags: the payload split must not panic either (packet return allows C/K/S).
        if let Ok(w) = p.wccp_payload() {
            assert!(w.inner().len() <= p.payload().len());
        }
    }
    if let Ok(r) = RedirectPacket::new_checked(data) {
        let h = RedirectHeader::parse(&r);
        assert_eq!(&h.to_bytes()[..], &data[..4]);
    }
    let inner = match decap_wccp(data) {
        Ok(WccpPayload::Redirect { header, inner }) => {
            assert_eq!(&data[..4], &[0x00, 0x00, 0x88, 0x3e]);
            assert_ne!(
                data[4] >> 4,
                4,
                "a redirect header was read where IPv4 starts"
            );
            assert_eq!(&header.to_bytes()[..], &data[4..8]);
            assert_eq!(inner, &data[8..]);
            inner
        }
        Ok(WccpPayload::Ipv4(inner)) => {
            assert_eq!(inner[0] >> 4, 4);
            assert_eq!(inner, &data[4..]);
            inner
        }
        Err(_) => data,
    };
    if let Ok(ip) = Ipv4Packet::new_checked(inner) {
        let _ = (
            ip.version(),
            ip.ihl(),
            ip.header_len(),
            ip.dscp_ecn(),
            ip.total_len(),
        );
        let _ = (
            ip.ident(),
            ip.flags_frag(),
            ip.ttl(),
            ip.protocol(),
            ip.checksum(),
        );
        let _ = (ip.src(), ip.dst(), ip.verify_checksum());
        let _ = ip.payload();
        let _ = Ipv4Repr::parse(&ip);
    }
});
