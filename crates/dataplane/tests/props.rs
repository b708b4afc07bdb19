//! Properties of `pipeline::process` over arbitrary frames: random bytes and mutations of the
//! golden inputs never panic, every received frame counts exactly one terminal verdict, and
//! every frame sent is a well-formed IPv4 frame by etherparse's reading (header checksum, total
//! length, TTL decremented by one on the routed and redirected paths, TCP checksums still valid
//! after MSS clamps). And nothing the pipeline punts, fragments in any order and overlap
//! included, panics the control plane.

mod support;

use std::sync::OnceLock;

use etherparse::{IpFragOffset, IpNumber, Ipv4Header, Ipv4Slice, TcpSlice};
use proptest::prelude::*;
use support::*;
use wccp_dataplane::pipeline::Action;
use wccp_dataplane::tables::Tables;
use wccp_dataplane::Reason;

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        // Every direction on every port, so mutated frames reach every path.
        Lab::new()
            .port(SERVER, |p| p.redirect_out = true)
            .port(SERVER, |p| p.mtu = 1400)
            .tables()
    })
}

/// Valid frames for every path, with their arrival port.
fn seeds() -> &'static [(u16, Vec<u8>)] {
    static S: OnceLock<Vec<(u16, Vec<u8>)>> = OnceLock::new();
    S.get_or_init(|| {
        let client = |ip: Vec<u8>| (CLIENT, to_port(CLIENT, CLIENT_MAC, &ip));
        let cache = |mac, ip: Vec<u8>| (CACHE, to_port(CACHE, mac, &ip));
        let mut nop_mss = Tcp::web(DST_B).syn(1460);
        nop_mss.nop_before_mss = true;
        let mut options = Tcp::web(DST_A).syn(1460);
        options.ip_options = vec![1, 1, 1, 0];
        let mut tagged = PORT_MAC[0].to_vec();
        tagged.extend_from_slice(&CLIENT_MAC);
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x08, 0x00]);
        tagged.extend_from_slice(&Tcp::web(DST_ALT).syn(1460).ip());
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend_from_slice(&CLIENT_MAC);
        arp.extend_from_slice(&CLIENT_IP.octets());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&PORT_IP[0].octets());
        let inner = Tcp::web(DST_A).syn(1460).ttl(63).ip();
        vec![
            client(Tcp::web(DST_A).syn(1460).ip()),
            client(nop_mss.ip()),
            client(options.ip()),
            client(Tcp::new(CLIENT_IP, DST_B, 40000, 8080).ip()),
            client(Tcp::new(CLIENT_IP, DST_A, 40000, 443).syn(1460).ip()),
            client(Tcp::web(DST_UNASSIGNED).ip()),
            client(Tcp::web(DST_UNRESOLVED).ip()),
            client(Tcp::new(CLIENT_IP, SERVER_IP, 40000, 22).ip()),
            client(Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22).ip()),
            client(Tcp::web(DST_A).ttl(1).ip()),
            client(Tcp::web(DST_A).payload_len(1440).ip()),
            client(
                Tcp::new(CLIENT_IP, SERVER_IP, 40000, 22)
                    .payload_len(1400)
                    .ip(),
            ),
            client(echo_request(CLIENT_IP, PORT_IP[0], 64)),
            client(udp_ip(CLIENT_IP, SERVER_IP, 5000, 53, &[1, 2, 3, 4])),
            cache(
                CACHE_A_MAC,
                udp_ip(CACHE_A, PORT_IP[2], 2048, 2048, &squid_here_i_am()),
            ),
            (CLIENT, tagged),
            (CLIENT, eth([0xff; 6], CLIENT_MAC, 0x0806, &arp)),
            cache(
                CACHE_A_MAC,
                udp_ip(CACHE_A, PORT_IP[2], 2048, 2048, &[0; 32]),
            ),
            cache(
                CACHE_A_MAC,
                gre_return(CACHE_A, 0x883e, Some([0, 0, 0, 7]), &inner),
            ),
            cache(CACHE_A_MAC, gre_return(CACHE_A, 0x0800, None, &inner)),
            cache(
                CACHE_A_MAC,
                Tcp::new(DST_A, CLIENT_IP, 80, 40000).syn_ack(1460).ip(),
            ),
            cache(
                CACHE_L2_MAC,
                Tcp::new(CLIENT_IP, DST_A, 40000, 443).ttl(63).ip(),
            ),
            cache(
                CACHE_NET_HOST_MAC,
                Tcp::new(CACHE_NET_HOST, DST_A, 40000, 80).ip(),
            ),
            (
                SERVER,
                to_port(
                    SERVER,
                    GW_MAC,
                    &Tcp::new(DST_A, CLIENT_IP, 80, 40000).syn_ack(1460).ip(),
                ),
            ),
        ]
    })
}

fn l2len(frame: &[u8]) -> usize {
    if frame.get(12..14) == Some(&[0x81, 0x00][..]) {
        18
    } else {
        14
    }
}

/// `Some(valid)` for a TCP segment etherparse can read, `None` otherwise.
fn tcp_valid(ip: &[u8]) -> Option<bool> {
    let s = Ipv4Slice::from_slice(ip).ok()?;
    if s.is_payload_fragmented() || s.payload_ip_number() != etherparse::IpNumber::TCP {
        return None;
    }
    let h = s.header();
    let tcp = TcpSlice::from_slice(s.payload().payload).ok()?;
    let want = tcp.calc_checksum_ipv4(h.source(), h.destination()).ok()?;
    Some(tcp.checksum() == want)
}

/// Runs one frame and checks the properties.
fn check(port: u16, frame: &[u8]) -> Result<(), TestCaseError> {
    let r = run(tables(), port, frame);
    let terminal: Vec<Reason> = r.terminal();
    let total: u64 = Reason::ALL
        .iter()
        .filter(|x| x.is_terminal())
        .map(|x| r.counters.get(*x))
        .sum();
    prop_assert_eq!(total, r.counters.get(Reason::Rx));
    prop_assert_eq!(terminal.len(), 1);
    let reason = terminal[0];
    match r.action {
        Action::Drop(d) => prop_assert_eq!(d, reason),
        Action::Punt => prop_assert_eq!(reason, Reason::Punted),
        Action::Tx(_) => {
            let out = r.frame();
            prop_assert!(out.len() > 14);
            prop_assert_eq!(&out[12..14], &[0x08, 0x00]);
            let ip = Ipv4Slice::from_slice(&out[14..]);
            prop_assert!(ip.is_ok(), "etherparse rejects the IPv4 packet: {:?}", ip);
            let h = Ipv4Slice::from_slice(&out[14..])
                .expect("checked")
                .header()
                .to_header();
            prop_assert_eq!(h.calc_header_checksum(), h.header_checksum);
            prop_assert_eq!(usize::from(h.total_len), out.len() - 14);
            let input = &frame[l2len(frame)..];
            let in_ttl = input[8];
            match reason {
                Reason::Routed | Reason::Unassigned | Reason::RedirectedL2 | Reason::ReturnedL2 => {
                    // An L2 return keeps the TTL it lost when it was redirected.
                    let lost = u8::from(reason != Reason::ReturnedL2);
                    prop_assert_eq!(h.time_to_live, in_ttl - lost);
                    if let Some(valid) = tcp_valid(input) {
                        prop_assert_eq!(tcp_valid(&out[14..]), Some(valid));
                    }
                }
                Reason::RedirectedGre => {
                    prop_assert_eq!(h.protocol, etherparse::IpNumber::GRE);
                    prop_assert_eq!(&out[34..38], &[0, 0, 0x88, 0x3e]);
                    let inner = Ipv4Slice::from_slice(&out[42..]);
                    prop_assert!(inner.is_ok(), "inner packet: {:?}", inner);
                    let ih = Ipv4Slice::from_slice(&out[42..])
                        .expect("checked")
                        .header()
                        .to_header();
                    prop_assert_eq!(ih.calc_header_checksum(), ih.header_checksum);
                    prop_assert_eq!(ih.time_to_live, in_ttl - 1);
                    if let Some(valid) = tcp_valid(input) {
                        prop_assert_eq!(tcp_valid(&out[42..]), Some(valid));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn mutated() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let n = seeds().len();
    (
        0..n,
        prop::collection::vec((0usize..80, any::<u8>()), 0..4),
        prop::option::of(0usize..120),
        any::<bool>(),
    )
        .prop_map(|(i, edits, cut, anywhere)| {
            let (port, mut f) = seeds()[i].clone();
            let len = f.len();
            for (at, v) in edits {
                // Mostly in the headers, sometimes anywhere.
                let at = if anywhere { at * 31 % len } else { at % len };
                f[at] = v;
            }
            if let Some(c) = cut {
                f.truncate(len.saturating_sub(c));
            }
            (port, f)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_and_count_one_verdict(
        port in 0u16..3,
        frame in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        check(port, &frame)?;
    }

    #[test]
    fn random_ipv4_to_our_mac_never_panics(
        port in 0u16..3,
        ethertype in prop::sample::select(vec![0x0800u16, 0x0806, 0x8100, 0x86dd]),
        body in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let frame = eth(PORT_MAC[usize::from(port)], CLIENT_MAC, ethertype, &body);
        check(port, &frame)?;
    }

    #[test]
    fn mutated_frames_never_panic_and_stay_well_formed((port, frame) in mutated()) {
        check(port, &frame)?;
    }
}

/// A UDP fragment from cache A to the router: `len` octets at `off8` × 8, MF per `more`.
fn fragment(off8: u16, len: usize, more: bool) -> Vec<u8> {
    let mut h = Ipv4Header::new(
        len as u16,
        64,
        IpNumber::UDP,
        CACHE_A.octets(),
        PORT_IP[2].octets(),
    )
    .expect("header");
    h.dont_fragment = false;
    h.identification = 0x0f0f;
    h.more_fragments = more;
    h.fragment_offset = IpFragOffset::try_new(off8).expect("offset");
    let mut v = Vec::new();
    h.write(&mut v).expect("write");
    v.extend((0..len).map(|i| i as u8));
    to_port(CACHE, CACHE_A_MAC, &v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn fragments_in_any_order_never_panic_the_control_plane(
        frags in prop::collection::vec((0u16..24, 1usize..96, any::<bool>()), 1..10),
    ) {
        let mut cp = control_plane(topology());
        for (i, (off8, len, more)) in frags.into_iter().enumerate() {
            let now = control::Instant(1_000 + i as u64);
            deliver(&mut cp, now, CACHE, &fragment(off8, len, more));
        }
        let s = cp.stats();
        prop_assert!(s.reassembled + s.reassembly_dropped <= s.fragments_rx);
    }

    #[test]
    fn punted_frames_never_panic_the_control_plane((port, frame) in mutated()) {
        let mut cp = control_plane(topology());
        deliver(&mut cp, control::Instant(1_000), port, &frame);
        cp.tick(control::Instant(10_000), &mut VecAlloc);
    }
}

#[test]
fn every_seed_passes_the_checks() {
    for (port, frame) in seeds() {
        check(*port, frame).expect("seed");
    }
}
