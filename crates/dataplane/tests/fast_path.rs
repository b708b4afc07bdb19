//! The pipeline's fast path (common transit packets and GRE returns in one pass) against the
//! general path it short-cuts: for valid frames of every kind and for random mutations of
//! them, `process` and `process_general` give the same action, the same output frame (bytes,
//! headroom, port) and the same counters, every reason and every per-service counter.

mod support;

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use ipnet::Ipv4Net;
use proptest::prelude::*;
use support::*;
use wccp_dataplane::counters::MAX_SERVICES;
use wccp_dataplane::lanes::process_burst;
use wccp_dataplane::pipeline::{
    process, process_fast_only, process_general, Action, Ctx, RateLimit,
};
use wccp_dataplane::tables::{AddrSet, LaneService, Tables};
use wccp_dataplane::{LcoreCounters, PacketBuf, VecBuf};

fn tables() -> &'static [Tables] {
    static T: OnceLock<Vec<Tables>> = OnceLock::new();
    T.get_or_init(|| {
        vec![
            Lab::new().tables(),
            Lab::new()
                .port(SERVER, |p| p.redirect_out = true)
                .port(SERVER, |p| p.mtu = 1400)
                .tables(),
            Lab::new().with_deny().tables(),
            // Web-cache alone: the burst pre-pass's case (`lanes`).
            web_only().tables(),
            web_only()
                .port(SERVER, |p| p.redirect_out = true)
                .port(SERVER, |p| p.mtu = 1400)
                .port(CLIENT, |p| p.redirect_in = false)
                .tables(),
            // More routes than the DIR-8 table takes: the hashed lookup by prefix length.
            many_routes(web_only()).tables(),
            // More member caches than the pass compares exactly: its member filter.
            web_only()
                .table(
                    S_WEB,
                    Some(
                        web_table().with_members(
                            [CACHE_A, CACHE_B, CACHE_C]
                                .into_iter()
                                .chain((50..58).map(|i| Ipv4Addr::new(10, 0, 3, i))),
                        ),
                    ),
                )
                .tables(),
        ]
    })
}

/// `lab` with 20 more static routes (more than `Lpm::LINEAR_MAX`), one of them a /25 inside
/// 198.51.100.0/24 that `DST_A` and `DST_B` fall into.
fn many_routes(mut lab: Lab) -> Lab {
    for i in 0..19u8 {
        let net = format!("203.0.{i}.0/24").parse::<Ipv4Net>().expect("net");
        lab.topo.routes.push((net, GW_IP));
    }
    let net = "198.51.100.0/25".parse::<Ipv4Net>().expect("net");
    lab.topo.routes.push((net, GW_IP));
    lab
}

fn seeds() -> &'static [(u16, Vec<u8>)] {
    static S: OnceLock<Vec<(u16, Vec<u8>)>> = OnceLock::new();
    S.get_or_init(|| {
        let client = |ip: Vec<u8>| (CLIENT, to_port(CLIENT, CLIENT_MAC, &ip));
        let cache = |mac, ip: Vec<u8>| (CACHE, to_port(CACHE, mac, &ip));
        let inner = Tcp::web(DST_A).ttl(63).ip();
        let inner_ack = Tcp::new(CLIENT_IP, DST_B, 40000, 80).ttl(63).ip();
        let inner_udp = udp_ip(CLIENT_IP, SERVER_IP, 5000, 53, &[1, 2, 3, 4]);
        vec![
            client(Tcp::web(DST_A).ip()),
            client(Tcp::web(DST_B).ip()),
            client(Tcp::web(DST_ALT).ip()),
            client(Tcp::web(DST_A).syn(1460).ip()),
            client(Tcp::new(CLIENT_IP, DST_A, 40000, 80).syn_ack(1460).ip()),
            client(Tcp::web(DST_UNASSIGNED).ip()),
            client(Tcp::web(DST_UNRESOLVED).ip()),
            client(Tcp::web(DST_A).ttl(2).ip()),
            client(Tcp::web(DST_A).ttl(1).ip()),
            client(Tcp::web(DST_A).payload_len(1440).ip()),
            client(Tcp::web(DST_A).payload_len(1500).ip()),
            client(Tcp::new(CLIENT_IP, DST_B, 40000, 8080).ip()),
            client(Tcp::new(CLIENT_IP, DST_A, 40000, 443).ip()),
            client(Tcp::new(CLIENT_IP, SERVER_IP, 40000, 22).ip()),
            client(
                Tcp::new(CLIENT_IP, SERVER_IP, 40000, 22)
                    .payload_len(1400)
                    .ip(),
            ),
            client(Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22).ip()),
            client(udp_ip(CLIENT_IP, SERVER_IP, 5000, 53, &[1, 2, 3, 4])),
            client(udp_ip(CLIENT_IP, DST_A, 5000, 80, &[1, 2, 3, 4])),
            client(echo_request(CLIENT_IP, PORT_IP[0], 64)),
            cache(
                CACHE_A_MAC,
                gre_return(CACHE_A, 0x883e, Some([0, 0, 0, 7]), &inner),
            ),
            cache(
                CACHE_A_MAC,
                gre_return(CACHE_A, 0x883e, Some([1, 90, 0, 7]), &inner_ack),
            ),
            cache(
                CACHE_B_MAC,
                gre_return(CACHE_B, 0x883e, Some([0, 0, 3, 4]), &inner_udp),
            ),
            cache(CACHE_A_MAC, gre_return(CACHE_A, 0x0800, None, &inner)),
            cache(CACHE_A_MAC, gre_return(CACHE_A, 0x883e, None, &inner)),
            // WCCP GRE from a host that is no member cache, and from a cache with GRE's key
            // flag set: the pass must not find them returns.
            cache(
                CACHE_NET_HOST_MAC,
                gre_return(CACHE_NET_HOST, 0x883e, Some([0, 0, 0, 7]), &inner),
            ),
            cache(CACHE_A_MAC, {
                let mut f = gre_return(CACHE_A, 0x883e, Some([0, 0, 0, 7]), &inner);
                f[20] = 0x20;
                f
            }),
            cache(
                CACHE_A_MAC,
                Tcp::new(DST_A, CLIENT_IP, 80, 40000).syn_ack(1460).ip(),
            ),
            cache(CACHE_A_MAC, Tcp::new(CACHE_A, DST_A, 40000, 80).ip()),
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
                to_port(SERVER, GW_MAC, &Tcp::new(DST_A, CLIENT_IP, 80, 40000).ip()),
            ),
            // Member caches' own TCP/80 arriving where traffic is redirected (never redirected):
            // one of the lab's caches, and one of the many-members table's extra ones.
            client(Tcp::new(CACHE_A, DST_A, 40000, 80).ip()),
            client(Tcp::new(Ipv4Addr::new(10, 0, 3, 55), DST_B, 40000, 80).ip()),
            // TCP/80 to our own address and UDP/80 to the client subnet's broadcast: special
            // destinations, whose first octet routed traffic shares.
            client(Tcp::new(CLIENT_IP, PORT_IP[0], 40000, 80).ip()),
            client(udp_ip(
                CLIENT_IP,
                Ipv4Addr::new(10, 0, 1, 255),
                5000,
                80,
                &[1, 2, 3, 4],
            )),
        ]
    })
}

/// Everything a run leaves behind, comparable.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    action: Action,
    frame: Vec<u8>,
    headroom: usize,
    port: u16,
    reasons: Vec<u64>,
    services: Vec<Vec<u64>>,
}

fn counters_of(c: &LcoreCounters) -> (Vec<u64>, Vec<Vec<u64>>) {
    let reasons = c.snapshot().into_iter().map(|(_, n)| n).collect();
    let services = (0..MAX_SERVICES)
        .map(|s| {
            let s = c.service(s);
            let mut v = vec![
                s.redirected.get(),
                s.returned.get(),
                s.unassigned.get(),
                s.closed_drop.get(),
                s.denied.get(),
            ];
            v.extend(s.buckets.iter().map(|x| x.get()));
            v.extend(s.targets.iter().map(|x| x.packets.get()));
            v.extend(s.targets.iter().map(|x| x.bytes.get()));
            v
        })
        .collect();
    (reasons, services)
}

fn outcome(t: &Tables, port: u16, frame: &[u8], fast: bool) -> Outcome {
    let f: Process = if fast { process } else { process_general };
    let icmp = RateLimit::new(1000, 100, 1_000_000);
    let r = run_with(t, port, VecBuf::new(port, frame), f, icmp, 1);
    let (reasons, services) = counters_of(&r.counters);
    Outcome {
        action: r.action,
        frame: r.buf.as_ref().to_vec(),
        headroom: r.buf.headroom(),
        port: r.buf.port(),
        reasons,
        services,
    }
}

fn same(t: &Tables, port: u16, frame: &[u8]) -> Result<(), TestCaseError> {
    let fast = outcome(t, port, frame, true);
    let general = outcome(t, port, frame, false);
    prop_assert_eq!(fast, general, "frame {:02x?}", frame);
    Ok(())
}

#[test]
fn seeds_agree_and_take_the_fast_path() {
    for t in tables() {
        for (port, f) in seeds() {
            same(t, *port, f).unwrap();
        }
    }
    // The fast path really handles the common cases: a redirect and a routed packet leave
    // the same frames as the general path (checked above) and as the golden tests expect.
    let t = &tables()[0];
    let r = outcome(t, CLIENT, &seeds()[0].1, true);
    assert!(matches!(r.action, Action::Tx(p) if p == CACHE), "{r:?}");
}

/// The fast path alone, with `Punt` standing for "left to the general path" (it never
/// punts itself).
fn fast_only(cx: &mut Ctx<'_>, port: u16, b: &mut VecBuf) -> Action {
    process_fast_only(cx, port, b).unwrap_or(Action::Punt)
}

/// The fast path itself decides the common cases, with the general path's result: a
/// redirect to each GRE cache, routed TCP and UDP, a cache's GRE return (TCP and UDP), and
/// another station's frame. (Declining them would still be correct, but slow: `wccpd bench`
/// measures these cases.)
#[test]
fn the_fast_path_decides_the_common_cases() {
    let t = &tables()[0];
    let decided = |i: usize| {
        let (port, f) = &seeds()[i];
        let icmp = RateLimit::new(1000, 100, 1_000_000);
        let r = run_with(t, *port, VecBuf::new(*port, f), fast_only, icmp, 1);
        assert_ne!(r.action, Action::Punt, "seed {i} left to the general path");
        assert_eq!(r.action, outcome(t, *port, f, false).action, "seed {i}");
        assert_eq!(
            r.buf.as_ref(),
            &outcome(t, *port, f, false).frame[..],
            "seed {i}"
        );
    };
    // TCP/80 to the two GRE caches; TCP/22 and UDP/53 routed; GRE returns of TCP and UDP.
    for i in [0, 1, 13, 16, 19, 21] {
        decided(i);
    }
    // A SYN (MSS clamp) is the general path's.
    let (port, f) = &seeds()[3];
    let icmp = RateLimit::new(1000, 100, 1_000_000);
    let r = run_with(t, *port, VecBuf::new(*port, f), fast_only, icmp, 1);
    assert_eq!(r.action, Action::Punt);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Mutated headers (addresses, lengths, TTL, flags, protocol, ports, MACs, GRE and
    /// redirect headers), truncations and paddings: the two paths never disagree.
    #[test]
    fn mutations_agree(
        which in 0usize..64,
        table in 0usize..6,
        edits in proptest::collection::vec((0usize..80, any::<u8>()), 0..4),
        cut in proptest::option::of(0usize..120),
        pad in 0usize..8,
    ) {
        let seeds = seeds();
        let (port, frame) = &seeds[which % seeds.len()];
        let mut f = frame.clone();
        for (at, v) in edits {
            if let Some(b) = f.get_mut(at) {
                *b = v;
            }
        }
        if let Some(c) = cut {
            f.truncate(c);
        }
        f.extend(std::iter::repeat_n(0u8, pad));
        same(&tables()[table], *port, &f)?;
    }
}

/// A burst through the worker's pre-pass (`lanes`) and, for the frames it leaves, the
/// pipeline, against each frame through the general path alone: the same actions, the same
/// frames and the same counters, with the pass the CPU selects (AVX-512, AVX2, SSE4.1) and
/// with the one compiled for the baseline CPU. Returns which frames the pre-pass decided.
fn burst_agrees(t: &Tables, port: u16, frames: &[Vec<u8>]) -> Result<Vec<bool>, TestCaseError> {
    let decided = burst_agrees_with(t, port, frames, false)?;
    // The pass compiled for the baseline CPU decides the same frames the same way.
    prop_assert_eq!(&burst_agrees_with(t, port, frames, true)?, &decided);
    Ok(decided)
}

/// [`burst_agrees`] with the pass the CPU selects, or with `baseline` the baseline one.
fn burst_agrees_with(
    t: &Tables,
    port: u16,
    frames: &[Vec<u8>],
    baseline: bool,
) -> Result<Vec<bool>, TestCaseError> {
    let counters = LcoreCounters::default();
    let mut icmp = RateLimit::new(1000, 100, 1_000_000);
    let mut cx = Ctx {
        tables: t,
        counters: &counters,
        icmp: &mut icmp,
        now: 1,
    };
    let bufs = frames.iter().map(|f| VecBuf::new(port, f)).collect();
    let out = process_burst(&mut cx, port, bufs, baseline);
    let general = LcoreCounters::default();
    let mut icmp = RateLimit::new(1000, 100, 1_000_000);
    let mut gx = Ctx {
        tables: t,
        counters: &general,
        icmp: &mut icmp,
        now: 1,
    };
    prop_assert_eq!(out.len(), frames.len());
    for ((action, _, b), f) in out.iter().zip(frames) {
        let mut g = VecBuf::new(port, f);
        let ga = process_general(&mut gx, port, &mut g);
        prop_assert_eq!(*action, ga, "frame {:02x?}", f);
        prop_assert_eq!(b.as_ref(), g.as_ref(), "frame {:02x?}", f);
        prop_assert_eq!(b.headroom(), g.headroom());
        prop_assert_eq!(b.port(), g.port());
    }
    prop_assert_eq!(counters_of(&counters), counters_of(&general));
    Ok(out.iter().map(|(_, d, _)| *d).collect())
}

/// The pre-pass runs exactly when the tables have one service with a table, of one protocol
/// and one port, with a fast form, and no L2 target.
#[test]
fn the_pre_pass_runs_for_one_single_port_service() {
    let t = tables();
    assert_eq!(t[0].lane, None, "four services, one with an L2 target");
    assert_eq!(t[2].lane, None, "a redirect list");
    let lane = t[3].lane.as_ref().expect("web-cache alone");
    assert_eq!((lane.protocol, lane.port), (6, 80));
    assert!(t[4].lane.is_some());
    assert!(t[5].lane.is_some() && !t[5].lpm.is_dir8());
    // Eleven members: more than the pass compares exactly, so it tests their last octets.
    let many = t[6].lane.as_ref().expect("web-cache alone");
    assert_ne!(many.member_filter, Default::default());
    // The pass vouches for a return's source only when its member list is exact: not with
    // eleven, nor with none (whose padding, 0.0.0.0, is no member).
    assert!(lane.members_exact && !many.members_exact);
    let mut none = web_only().tables();
    none.sets[2] = AddrSet::of(&[]);
    let lane_none = LaneService::of(&none).expect("web-cache alone");
    assert!(!lane_none.members_exact);
    // Our three addresses, exactly (as read from a frame), padded with copies: the pass
    // finds returns to them.
    let mut locals = lane.locals.expect("three addresses").to_vec();
    locals.sort_unstable();
    locals.dedup();
    let mut ours: Vec<u32> = PORT_IP
        .iter()
        .map(|a| u32::from_le_bytes(a.octets()))
        .collect();
    ours.sort_unstable();
    assert_eq!(locals, ours);
    // More than eight addresses, or one that is also a directed broadcast: every return
    // takes the usual path.
    let many = web_only().port(SERVER, |p| {
        p.addrs
            .extend((2..10).map(|i| (Ipv4Addr::new(10, 0, 2, i), 24)));
    });
    let lane = many.tables().lane.expect("web-cache alone");
    assert_eq!(lane.locals, None, "eleven addresses");
    let bcast = web_only().port(SERVER, |p| p.addrs.push((Ipv4Addr::new(10, 0, 1, 255), 32)));
    let lane = bcast.tables().lane.expect("web-cache alone");
    assert_eq!(
        lane.locals, None,
        "10.0.1.255 is the client subnet's broadcast"
    );
}

/// The pre-pass itself decides the common cases in a mixed burst, with the general path's
/// results: TCP/80 redirected to each GRE cache, TCP/8080 and UDP/80 routed, both with and
/// without a redirect-in port (the second tables redirect on the egress port instead), and
/// the caches' GRE returns of TCP and UDP. A SYN, an echo request to our own address, a UDP
/// frame shorter than the 50 octets the pre-pass reads (unpadded), a member cache's own
/// traffic, GRE that is not WCCP's, lacks the redirect header, has flags or comes from a host
/// that is no member cache are left to the pipeline; so
/// is the whole burst when its first frame is for another station. Under every lane tables
/// variant, the hashed route lookup included.
#[test]
fn the_pre_pass_decides_the_common_cases_of_a_burst() {
    let s = seeds();
    let udp = |n: usize| {
        to_port(
            CLIENT,
            CLIENT_MAC,
            &udp_ip(CLIENT_IP, DST_A, 5000, 80, &vec![7; n]),
        )
    };
    for t in &tables()[3..6] {
        let frames = vec![
            s[0].1.clone(),
            s[1].1.clone(),
            s[3].1.clone(),
            s[11].1.clone(),
            udp(20),
            udp(4),
            s[18].1.clone(),
            s[0].1.clone(),
            // A member cache's own TCP/80 traffic (never redirected: the usual path routes it).
            to_port(
                CLIENT,
                CLIENT_MAC,
                &Tcp::new(CACHE_A, DST_A, 40000, 80).ip(),
            ),
        ];
        let decided = burst_agrees(t, CLIENT, &frames).unwrap();
        assert_eq!(
            decided,
            [true, true, false, true, true, false, false, true, false],
            "{:?}",
            t.ports[1]
        );
        let cache: Vec<Vec<u8>> = (19..26).map(|i| s[i].1.clone()).collect();
        assert_eq!(
            burst_agrees(t, CACHE, &cache).unwrap(),
            [true, true, true, false, false, false, false]
        );
        // A burst whose first frame is for another station skips the pass altogether.
        let mut foreign = s[0].1.clone();
        foreign[5] ^= 1;
        let frames = [foreign, s[0].1.clone()];
        assert_eq!(burst_agrees(t, CLIENT, &frames).unwrap(), [false, false]);
        // The pass keeps a frame's length in 16 bits: a longer frame (only a test's buffer can
        // be), here one whose length's low 16 bits are the unpadded frame's, is left to the
        // usual path; one of 65,535 octets is still the pass's.
        let padded = |n: usize| {
            let mut f = s[0].1.clone();
            f.resize(n, 0);
            f
        };
        let frames = [
            padded(65_535),
            padded(65_536 + s[0].1.len()),
            s[0].1.clone(),
        ];
        assert_eq!(
            burst_agrees(t, CLIENT, &frames).unwrap(),
            [true, false, true]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Bursts of up to 32 mutated frames (each a seed with edits, truncations and padding),
    /// through the pre-pass and the pipeline as the worker runs them, agree frame by frame
    /// with the general path, counters included, under every tables variant.
    #[test]
    fn bursts_agree(
        table in 0usize..7,
        port_cache in any::<bool>(),
        frames in proptest::collection::vec(
            (
                0usize..64,
                proptest::collection::vec((0usize..80, any::<u8>()), 0..3),
                proptest::option::of(0usize..120),
                0usize..8,
            ),
            1..33,
        ),
    ) {
        let port = if port_cache { CACHE } else { CLIENT };
        let of_port: Vec<&Vec<u8>> = seeds().iter().filter(|(p, _)| *p == port).map(|(_, f)| f).collect();
        let frames: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|(which, edits, cut, pad)| {
                let mut f = of_port[which % of_port.len()].clone();
                for (at, v) in edits {
                    if let Some(b) = f.get_mut(at) {
                        *b = v;
                    }
                }
                if let Some(c) = cut {
                    f.truncate(c);
                }
                f.extend(std::iter::repeat_n(0u8, pad));
                f
            })
            .collect();
        burst_agrees(&tables()[table], port, &frames)?;
    }
}
