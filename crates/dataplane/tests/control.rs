//! The control lcore (`control::ControlPlane` over `VecBuf`): ARP answers, learning and
//! resolution with held frames, WCCP HERE_I_AM in and I_SEE_YOU out (a real Squid message),
//! fragmentation of large I_SEE_YOUs, reassembly of fragmented HERE_I_AMs and its limits.
//!
//! Every frame reaches the control plane the way it does in the router: through
//! `pipeline::process` on the control plane's current tables, punted with its port set as the
//! worker sets it.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use control::Instant;
use etherparse::{IpFragOffset, IpNumber, Ipv4Header, SlicedPacket, TransportSlice};
use support::*;
use wccp_dataplane::control::ControlPlane;
use wccp_dataplane::tables::Topology;
use wccp_dataplane::{PacketBuf, Reason, VecBuf};
use wire::{Addr, Message, MessageRepr};

/// The router address the vector's cache (10.200.0.2) sends to.
const WCCP_NET_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const VEC_CACHE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const VEC_CACHE_MAC: [u8; 6] = [0x02, 0, 0, 0xc8, 0, 2];

/// The vector's HERE_I_AM as another cache, echoing `receive_id`.
fn here_i_am_from(cache: Ipv4Addr, receive_id: u32) -> Vec<u8> {
    let Message::HereIAm(mut h) = Message::parse(&squid_here_i_am()).expect("vector parses") else {
        panic!("not a HERE_I_AM");
    };
    h.identity.addr = Addr::from_ipv4(cache);
    h.view.routers[0].receive_id = receive_id;
    h.to_vec().expect("emit")
}

fn cache_mac(cache: Ipv4Addr) -> [u8; 6] {
    let o = cache.octets();
    [0x02, 0, 0, o[1], o[2], o[3]]
}

/// The lab's topology with 10.200.0.1/24 added to the cache port, only the web-cache service,
/// and the cache port's MTU.
fn topo(mtu: u16) -> Topology {
    let mut t = Lab::new()
        .port(CACHE, |p| {
            p.addrs.push((WCCP_NET_ROUTER, 24));
            p.mtu = mtu;
        })
        .topo;
    t.services = vec![(S_WEB, Vec::new())];
    t
}

fn output(cp: &mut ControlPlane<VecBuf>) -> Vec<VecBuf> {
    cp.take_output().collect()
}

/// An Ethernet/IPv4 ARP frame.
fn arp(
    op: u16,
    smac: [u8; 6],
    sip: Ipv4Addr,
    tmac: [u8; 6],
    tip: Ipv4Addr,
    dst: [u8; 6],
) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&smac);
    a.extend_from_slice(&sip.octets());
    a.extend_from_slice(&tmac);
    a.extend_from_slice(&tip.octets());
    eth(dst, smac, 0x0806, &a)
}

/// The ARP request a host sends for one of our addresses.
fn who_has(smac: [u8; 6], sip: Ipv4Addr, tip: Ipv4Addr) -> Vec<u8> {
    arp(1, smac, sip, [0; 6], tip, [0xff; 6])
}

/// A host's ARP reply to the router's request on port `p`.
fn is_at(p: u16, smac: [u8; 6], sip: Ipv4Addr, tip: Ipv4Addr) -> Vec<u8> {
    arp(
        2,
        smac,
        sip,
        PORT_MAC[usize::from(p)],
        tip,
        PORT_MAC[usize::from(p)],
    )
}

/// The WCCP datagram from `cache` to the router's 10.200.0.1, in a frame to the cache port.
fn wccp_frame(cache: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    to_port(
        CACHE,
        cache_mac(cache),
        &udp_ip(cache, WCCP_NET_ROUTER, 2048, 2048, payload),
    )
}

/// Checks a WCCP frame from the router to `cache`: Ethernet to the cache's MAC, IPv4 from
/// 10.200.0.1 (valid checksum), UDP 2048 -> 2048 (valid checksum). Returns the WCCP message.
#[track_caller]
fn wccp_out(b: &VecBuf, cache: Ipv4Addr) -> Vec<u8> {
    assert_eq!(b.port(), CACHE);
    let f = b.as_ref();
    assert_eq!(&f[..6], &cache_mac(cache), "destination MAC");
    assert_eq!(&f[6..12], &PORT_MAC[2], "source MAC");
    let p = parse(f);
    let ip = ipv4(&p);
    assert_eq!(ip.source, WCCP_NET_ROUTER.octets());
    assert_eq!(ip.destination, cache.octets());
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!("not UDP");
    };
    assert_eq!((udp.source_port(), udp.destination_port()), (2048, 2048));
    let want = udp
        .to_header()
        .calc_checksum_ipv4(&ip, udp.payload())
        .expect("checksum");
    assert_eq!(udp.checksum(), want, "UDP checksum");
    udp.payload().to_vec()
}

/// The I_SEE_YOU in a WCCP message.
#[track_caller]
fn isee_you(msg: &[u8]) -> wire::ISeeYou {
    match Message::parse(msg).expect("wire::Message::parse") {
        Message::ISeeYou(i) => i,
        other => panic!("not an I_SEE_YOU: {other:?}"),
    }
}

/// Learns the vector cache's MAC by its ARP request for the router.
fn arp_in_cache(cp: &mut ControlPlane<VecBuf>, cache: Ipv4Addr, now: Instant) {
    deliver(
        cp,
        now,
        CACHE,
        &who_has(cache_mac(cache), cache, WCCP_NET_ROUTER),
    )
    .expect_punt();
    let out = output(cp);
    assert_eq!(out.len(), 1, "one ARP reply");
}

const T0: Instant = Instant(1_000);

// ---- ARP ----

#[test]
fn arp_request_for_our_address_is_answered() {
    let mut cp = control_plane(topo(1500));
    deliver(
        &mut cp,
        T0,
        CLIENT,
        &who_has(CLIENT_MAC, CLIENT_IP, PORT_IP[0]),
    )
    .expect_punt();
    let out = output(&mut cp);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].port(), CLIENT);
    let want = arp(
        2,
        PORT_MAC[0],
        PORT_IP[0],
        CLIENT_MAC,
        CLIENT_IP,
        CLIENT_MAC,
    );
    assert_eq!(out[0].as_ref(), &want[..]);
    assert_eq!(cp.stats().arp_replies, 1);
}

#[test]
fn arp_request_for_another_address_is_ignored() {
    let mut cp = control_plane(topo(1500));
    let other = Ipv4Addr::new(10, 0, 1, 99);
    deliver(
        &mut cp,
        T0,
        CLIENT,
        &who_has(UNKNOWN_MAC, Ipv4Addr::new(10, 0, 1, 77), other),
    );
    assert!(output(&mut cp).is_empty());
    assert_eq!(cp.stats().arp_ignored, 1);
    assert!(cp
        .neighbours()
        .iter()
        .all(|(a, _, _)| *a != Ipv4Addr::new(10, 0, 1, 77)));
}

#[test]
fn arp_request_for_us_teaches_the_sender() {
    let mut cp = control_plane(topo(1500));
    deliver(
        &mut cp,
        T0,
        SERVER,
        &who_has(UNKNOWN_MAC, UNKNOWN_IP, PORT_IP[1]),
    );
    cp.republish();
    let n = cp
        .neighbours()
        .into_iter()
        .find(|(a, _, _)| *a == UNKNOWN_IP)
        .expect("learnt");
    assert_eq!((n.1.mac, n.1.port, n.2), (UNKNOWN_MAC, SERVER, false));
    // Packets to it are now sent, not held.
    let input = Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22);
    let r = run(
        cp.tables(),
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &input.ip()),
    );
    let out = r.expect_tx(SERVER, Reason::Routed);
    assert_eq!(
        out,
        &from_port(SERVER, UNKNOWN_MAC, &input.ttl(63).ip())[..]
    );
}

#[test]
fn unresolved_next_hop_is_held_until_the_arp_reply() {
    let mut cp = control_plane(topo(1500));
    let input = Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22);
    let r = deliver(
        &mut cp,
        T0,
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &input.ip()),
    );
    r.expect_punt();
    assert!(wccp_dataplane::worker::is_held(&r.buf));
    // Held; an ARP request goes out of the egress port.
    let out = output(&mut cp);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].port(), SERVER);
    let want = arp(1, PORT_MAC[1], PORT_IP[1], [0; 6], UNKNOWN_IP, [0xff; 6]);
    assert_eq!(out[0].as_ref(), &want[..]);
    assert_eq!((cp.stats().held, cp.stats().arp_requests), (1, 1));
    // The reply releases it with the right MAC.
    let t1 = T0 + Duration::from_millis(20);
    deliver(
        &mut cp,
        t1,
        SERVER,
        &is_at(SERVER, UNKNOWN_MAC, UNKNOWN_IP, PORT_IP[1]),
    )
    .expect_punt();
    let out = output(&mut cp);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].port(), SERVER);
    assert_eq!(
        out[0].as_ref(),
        &from_port(SERVER, UNKNOWN_MAC, &input.ttl(63).ip())[..]
    );
    assert_eq!(cp.stats().released, 1);
}

#[test]
fn arp_request_is_retried_while_frames_are_held() {
    let mut cp = control_plane(topo(1500));
    let input = Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22).ip();
    deliver(&mut cp, T0, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input));
    assert_eq!(output(&mut cp).len(), 1);
    cp.tick(T0 + Duration::from_millis(1_000), &mut VecAlloc);
    let out = output(&mut cp);
    assert_eq!(out.len(), 1, "one retry");
    assert_eq!(&out[0].as_ref()[12..14], &[0x08, 0x06]);
    assert_eq!(cp.stats().arp_requests, 2);
}

#[test]
fn held_frames_are_dropped_when_the_next_hop_never_answers() {
    let mut cp = control_plane(topo(1500));
    let input = Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22).ip();
    deliver(&mut cp, T0, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input));
    for s in 1..=10 {
        cp.tick(T0 + Duration::from_secs(s), &mut VecAlloc);
    }
    assert_eq!(cp.stats().held_dropped, 1);
    assert_eq!(cp.stats().released, 0);
    // A late reply releases nothing.
    let late = T0 + Duration::from_secs(11);
    deliver(
        &mut cp,
        late,
        SERVER,
        &is_at(SERVER, UNKNOWN_MAC, UNKNOWN_IP, PORT_IP[1]),
    );
    assert!(output(&mut cp)
        .iter()
        .all(|b| b.as_ref().get(12..14) != Some(&[0x08, 0x00][..])));
}

// ---- WCCP ----

#[test]
fn here_i_am_is_answered_with_i_see_you() {
    let mut cp = control_plane(topo(1500));
    arp_in_cache(&mut cp, VEC_CACHE, T0);
    let r = deliver(
        &mut cp,
        T0,
        CACHE,
        &wccp_frame(VEC_CACHE, &squid_here_i_am()),
    );
    r.expect_punt();
    let out = output(&mut cp);
    assert_eq!(out.len(), 1, "one I_SEE_YOU");
    let isy = isee_you(&wccp_out(&out[0], VEC_CACHE));
    assert_eq!(isy.identity.sent_to.to_ipv4(), WCCP_NET_ROUTER);
    assert_eq!(isy.identity.router.addr.to_ipv4(), ROUTER_ID);
    assert_ne!(isy.identity.router.receive_id, 0);
    assert_eq!((cp.stats().wccp_rx, cp.stats().wccp_tx), (1, 1));
}

#[test]
fn here_i_am_from_a_static_neighbour_is_answered() {
    let mut t = topo(1500);
    t.neighbours.push((VEC_CACHE, VEC_CACHE_MAC));
    let mut cp = control_plane(t);
    deliver(
        &mut cp,
        T0,
        CACHE,
        &wccp_frame(VEC_CACHE, &squid_here_i_am()),
    )
    .expect_punt();
    let out = output(&mut cp);
    assert_eq!(out.len(), 1);
    isee_you(&wccp_out(&out[0], VEC_CACHE));
}

#[test]
fn i_see_you_to_an_unresolved_cache_waits_for_arp() {
    let mut cp = control_plane(topo(1500));
    deliver(
        &mut cp,
        T0,
        CACHE,
        &wccp_frame(VEC_CACHE, &squid_here_i_am()),
    )
    .expect_punt();
    let out = output(&mut cp);
    assert_eq!(out.len(), 1, "only an ARP request");
    let want = arp(
        1,
        PORT_MAC[2],
        WCCP_NET_ROUTER,
        [0; 6],
        VEC_CACHE,
        [0xff; 6],
    );
    assert_eq!(out[0].as_ref(), &want[..]);
    let t1 = T0 + Duration::from_millis(5);
    deliver(
        &mut cp,
        t1,
        CACHE,
        &is_at(CACHE, VEC_CACHE_MAC, VEC_CACHE, WCCP_NET_ROUTER),
    );
    let out = output(&mut cp);
    assert_eq!(out.len(), 1, "the I_SEE_YOU");
    isee_you(&wccp_out(&out[0], VEC_CACHE));
}

/// The WCCP messages in `out` addressed to `cache`, fragmented ones reassembled with etherparse's
/// defrag. Checks every frame (MACs, IPv4 header checksum, at most `mtu` octets) and every
/// datagram (UDP 2048 -> 2048 from 10.200.0.1, UDP checksum). Also returns how many fragments
/// there were.
#[track_caller]
fn messages_to(out: &[VecBuf], cache: Ipv4Addr, mtu: usize) -> (Vec<Vec<u8>>, usize) {
    let mut pool = etherparse::defrag::IpDefragPool::<(), ()>::new();
    let mut msgs = Vec::new();
    let mut fragments = 0;
    for b in out {
        let f = b.as_ref();
        let p = SlicedPacket::from_ethernet(f).expect("etherparse parses the frame");
        let ip = ipv4(&p);
        if ip.destination != cache.octets() {
            continue;
        }
        assert_eq!(b.port(), CACHE);
        assert_eq!(&f[..6], &cache_mac(cache), "destination MAC");
        assert_eq!(&f[6..12], &PORT_MAC[2], "source MAC");
        assert_eq!(ip.source, WCCP_NET_ROUTER.octets());
        assert_eq!(ip.calc_header_checksum(), ip.header_checksum);
        assert!(
            usize::from(ip.total_len) <= mtu,
            "frame larger than the MTU"
        );
        let seg = if p.is_ip_payload_fragmented() {
            fragments += 1;
            match pool.process_sliced_packet(&p, (), ()).expect("defrag") {
                Some(d) => d.payload,
                None => continue,
            }
        } else {
            f[14 + ip.header_len()..].to_vec()
        };
        let udp = etherparse::UdpSlice::from_slice(&seg).expect("UDP");
        assert_eq!(usize::from(udp.length()), seg.len());
        assert_eq!((udp.source_port(), udp.destination_port()), (2048, 2048));
        let sum = udp
            .to_header()
            .calc_checksum_ipv4_raw(WCCP_NET_ROUTER.octets(), cache.octets(), udp.payload())
            .expect("checksum");
        assert_eq!(udp.checksum(), sum, "UDP checksum");
        msgs.push(udp.payload().to_vec());
    }
    (msgs, fragments)
}

/// Runs the two-message handshake of `cache`; returns the frames of the second answer.
fn join(cp: &mut ControlPlane<VecBuf>, cache: Ipv4Addr, now: Instant) -> Vec<VecBuf> {
    deliver(
        cp,
        now,
        CACHE,
        &wccp_frame(cache, &here_i_am_from(cache, 0)),
    )
    .expect_punt();
    let (msgs, _) = messages_to(&output(cp), cache, 576);
    let rid = isee_you(&msgs[0]).identity.router.receive_id;
    let later = now + Duration::from_millis(10);
    deliver(
        cp,
        later,
        CACHE,
        &wccp_frame(cache, &here_i_am_from(cache, rid)),
    )
    .expect_punt();
    output(cp)
}

#[test]
fn i_see_you_larger_than_the_mtu_is_fragmented() {
    let mut t = topo(576);
    let caches: Vec<Ipv4Addr> = (2..22).map(|i| Ipv4Addr::new(10, 200, 0, i)).collect();
    for c in &caches {
        t.neighbours.push((*c, cache_mac(*c)));
    }
    let mut cp = control_plane(t);
    let mut last = Vec::new();
    for (i, c) in caches.iter().enumerate() {
        last = join(&mut cp, *c, Instant(1_000 + 100 * i as u64));
    }
    assert!(cp.stats().fragmented_tx > 0);
    // The answer to the last cache: MTU-sized fragments that reassemble into a valid UDP
    // datagram holding an I_SEE_YOU with all 20 caches.
    let (msgs, fragments) = messages_to(&last, caches[19], 576);
    assert!(fragments > 1, "the I_SEE_YOU was not fragmented");
    assert_eq!(msgs.len(), 1);
    assert_eq!(isee_you(&msgs[0]).view.caches.len(), 20);
}

/// The vector's HERE_I_AM as three fragments (offsets 0, 64 and 128 of the UDP segment).
fn here_i_am_fragments(ident: u16) -> Vec<Vec<u8>> {
    let whole = udp_ip(VEC_CACHE, WCCP_NET_ROUTER, 2048, 2048, &squid_here_i_am());
    let seg = &whole[20..];
    assert!(seg.len() > 136, "vector too short to split in three");
    let cuts = [(0, 64), (64, 128), (128, seg.len())];
    cuts.iter()
        .map(|&(a, z)| {
            let mut h = Ipv4Header::new(
                (z - a) as u16,
                64,
                IpNumber::UDP,
                VEC_CACHE.octets(),
                WCCP_NET_ROUTER.octets(),
            )
            .expect("header");
            h.dont_fragment = false;
            h.identification = ident;
            h.more_fragments = z != seg.len();
            h.fragment_offset = IpFragOffset::try_new((a / 8) as u16).expect("offset");
            let mut ip = Vec::new();
            h.write(&mut ip).expect("write");
            ip.extend_from_slice(&seg[a..z]);
            to_port(CACHE, VEC_CACHE_MAC, &ip)
        })
        .collect()
}

#[test]
fn fragmented_here_i_am_is_reassembled_and_answered() {
    // The reference answer, to the unfragmented message.
    let mut plain = control_plane(topo(1500));
    arp_in_cache(&mut plain, VEC_CACHE, T0);
    deliver(
        &mut plain,
        T0,
        CACHE,
        &wccp_frame(VEC_CACHE, &squid_here_i_am()),
    );
    let want = wccp_out(&output(&mut plain)[0], VEC_CACHE);

    let mut cp = control_plane(topo(1500));
    arp_in_cache(&mut cp, VEC_CACHE, T0);
    let frags = here_i_am_fragments(0x7777);
    for i in [2, 0, 1] {
        deliver(&mut cp, T0, CACHE, &frags[i]).expect_punt();
    }
    let out = output(&mut cp);
    assert_eq!(out.len(), 1);
    assert_eq!(wccp_out(&out[0], VEC_CACHE), want);
    assert_eq!((cp.stats().fragments_rx, cp.stats().reassembled), (3, 1));
}

#[test]
fn too_many_partial_datagrams_are_dropped_and_counted() {
    let mut cp = control_plane(topo(1500));
    arp_in_cache(&mut cp, VEC_CACHE, T0);
    for ident in 0..17 {
        deliver(&mut cp, T0, CACHE, &here_i_am_fragments(ident)[0]);
    }
    assert_eq!(cp.stats().reassembly_dropped, 1);
    // The sixteen kept ones still complete.
    for f in &here_i_am_fragments(3)[1..] {
        deliver(&mut cp, T0, CACHE, f);
    }
    assert_eq!(cp.stats().reassembled, 1);
}

#[test]
fn partial_datagram_times_out_and_is_counted() {
    let mut cp = control_plane(topo(1500));
    arp_in_cache(&mut cp, VEC_CACHE, T0);
    let frags = here_i_am_fragments(9);
    deliver(&mut cp, T0, CACHE, &frags[0]);
    cp.tick(T0 + Duration::from_millis(4_000), &mut VecAlloc);
    assert_eq!(cp.stats().reassembly_dropped, 0);
    cp.tick(T0 + Duration::from_millis(5_000), &mut VecAlloc);
    assert_eq!(cp.stats().reassembly_dropped, 1);
    output(&mut cp);
    let late = T0 + Duration::from_millis(5_100);
    for f in &frags[1..] {
        deliver(&mut cp, late, CACHE, f);
    }
    assert_eq!(cp.stats().reassembled, 0);
    assert!(output(&mut cp).is_empty());
}

#[test]
fn fragments_past_the_last_fragment_are_dropped_not_a_panic() {
    let mut cp = control_plane(topo(1500));
    let ip = |off: usize, len: usize, more: bool| {
        let mut h = Ipv4Header::new(
            len as u16,
            64,
            IpNumber::UDP,
            VEC_CACHE.octets(),
            WCCP_NET_ROUTER.octets(),
        )
        .expect("header");
        h.dont_fragment = false;
        h.identification = 0x0bad;
        h.more_fragments = more;
        h.fragment_offset = IpFragOffset::try_new((off / 8) as u16).expect("offset");
        let mut v = Vec::new();
        h.write(&mut v).expect("write");
        v.extend(std::iter::repeat_n(0u8, len));
        to_port(CACHE, VEC_CACHE_MAC, &v)
    };
    // [0, 104) and [104, 112) with MF, then a last fragment ending at 100.
    deliver(&mut cp, T0, CACHE, &ip(0, 104, true));
    deliver(&mut cp, T0, CACHE, &ip(104, 8, true));
    deliver(&mut cp, T0, CACHE, &ip(96, 4, false));
    assert_eq!(cp.stats().reassembled, 0);
    assert_eq!(cp.stats().reassembly_dropped, 1);
}
