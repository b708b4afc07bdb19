//! Per-packet cost of the pipeline's stages, on `VecBuf` (no DPDK): parse, classify, FIB,
//! hash, hash and mask lookups, and the whole `process` for each traffic class of `wccpd
//! bench` (GRE redirect = encap, routed, GRE return = decap, drop), and the worker loop
//! (`Worker::poll`) over one 32-frame burst of the benchmark's traffic mix next to `process`
//! alone over the same frames. docs/BENCHMARKS.md has the figures and how they add up.
//!
//! `cargo bench -p wccp-dataplane --bench stages`

use std::cell::RefCell;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use assign::hash::{primary_bucket, FlowKey};
use assign::mask::MaskTuple;
use assign::service::ServiceDef;
use assign::table::{ForwardingMethod, RedirectTable, Target};
use control::ServiceKey;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use etherparse::PacketBuilder;
use ipnet::Ipv4Net;
use wccp_dataplane::buf::{VecChannel, VecPort, BURST};
use wccp_dataplane::pipeline::{process, Ctx, RateLimit};
use wccp_dataplane::tables::{compile, PortInfo, State, Tables, Topology};
use wccp_dataplane::{LcoreCounters, VecBuf, Worker};

const ROUTER_CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
const CACHES: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 9, 3, 10),
    Ipv4Addr::new(10, 9, 3, 11),
    Ipv4Addr::new(10, 9, 3, 12),
    Ipv4Addr::new(10, 9, 3, 13),
];
const WEB: ServiceKey = ServiceKey {
    dynamic: false,
    id: 0,
};

fn port(name: &str, i: u8, addr: [u8; 4]) -> PortInfo {
    PortInfo {
        name: name.into(),
        mac: [2, 0, 0, 0, i + 1, 1],
        addrs: vec![(Ipv4Addr::from(addr), 24)],
        mtu: 1500,
        redirect_in: false,
        redirect_out: false,
        exclude_in: false,
    }
}

/// `wccpd bench`'s topology with its static assignment over four caches.
fn tables() -> Tables {
    let mut client = port("client", 0, [10, 9, 1, 1]);
    client.redirect_in = true;
    let server = port("server", 1, [10, 9, 2, 1]);
    let mut cache = port("cache", 2, [10, 9, 3, 1]);
    cache.exclude_in = true;
    cache.mtu = 1600;
    let mut buckets = [0u8; 256];
    for (b, t) in buckets.iter_mut().enumerate() {
        *t = (b % 4) as u8;
    }
    let table = RedirectTable::from_hash_assignment(
        ServiceDef::WEB_CACHE,
        &CACHES,
        &buckets,
        ForwardingMethod::Gre,
    )
    .expect("table");
    let mut neighbours = vec![(Ipv4Addr::new(10, 9, 2, 2), [2, 0, 0, 0, 2, 2])];
    for (c, a) in CACHES.iter().enumerate() {
        neighbours.push((*a, [2, 0, 0, 0, 3, 0x10 + c as u8]));
    }
    let topo = Topology {
        ports: vec![client, server, cache],
        routes: vec![(
            "198.18.0.0/15".parse::<Ipv4Net>().expect("net"),
            Ipv4Addr::new(10, 9, 2, 2),
        )],
        neighbours,
        services: vec![(WEB, Vec::new())],
        check_all: false,
        router_id: Ipv4Addr::new(10, 9, 3, 1),
        statics: [(WEB, Arc::new(table))].into_iter().collect(),
    };
    compile(&topo, &State::default(), 1).tables
}

fn tcp(dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_CLIENT_MAC)
        .ipv4([10, 9, 1, 16], dst, 64)
        .tcp(40000, dport, 1, 65535)
        .ack(1)
        .write(&mut v, &[0u8; 10])
        .expect("frame");
    v
}

/// Frame `i` of `wccpd bench`'s replay (`src/bench/traffic.rs`): by `i % 20`, 16 TCP to
/// port 80 (redirected), 2 TCP to port 22 and 1 UDP to port 53 (routed), 1 a cache's GRE
/// return of a port-80 packet; flow `i` has its own client, server and client port.
fn mix_frame(i: u32) -> Vec<u8> {
    let src = [10, 9, 1, 16 + (i % 200) as u8];
    let dst = (0xc612_0000 | (i & 0x1_ffff)).to_be_bytes();
    let sport = 1024 + (i % 60_000) as u16;
    let tcp = |dport: u16| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_CLIENT_MAC)
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 65535)
            .ack(1)
            .write(&mut v, &[0u8; 10])
            .expect("frame");
        v
    };
    match i % 20 {
        0..=15 => tcp(80),
        16 | 17 => tcp(22),
        18 => {
            let mut v = Vec::new();
            PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_CLIENT_MAC)
                .ipv4(src, dst, 64)
                .udp(sport, 53)
                .write(&mut v, &[0u8; 18])
                .expect("frame");
            v
        }
        _ => gre_return(&tcp(80)),
    }
}

fn gre_return(inner: &[u8]) -> Vec<u8> {
    let ip = &inner[14..];
    let mut payload = vec![0, 0, 0x88, 0x3e, 0, 0, 0, 0];
    payload.extend_from_slice(ip);
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 3, 0x10], ROUTER_CLIENT_MAC)
        .ipv4([10, 9, 3, 10], [10, 9, 3, 1], 64)
        .write(&mut v, etherparse::IpNumber(47), &payload)
        .expect("frame");
    v
}

fn stages(c: &mut Criterion) {
    let t = tables();
    let counters = LcoreCounters::default();
    let redirect = tcp([198, 18, 1, 2], 80);
    let routed = tcp([198, 18, 1, 2], 22);
    let returned = gre_return(&redirect);
    let mut foreign = redirect.clone();
    foreign[..6].copy_from_slice(&[2, 0, 0, 0, 9, 9]);

    c.bench_function(
        "parse: ethernet + ipv4 checked views + header checksum",
        |b| {
            b.iter(|| {
                let f = black_box(&redirect[..]);
                let eth = wire::ethernet::Packet::new_checked(f).expect("eth");
                let ip = wire::Ipv4Packet::new_checked(&f[eth.header_len()..]).expect("ip");
                black_box((ip.verify_checksum(), ip.dst(), ip.protocol()))
            })
        },
    );
    c.bench_function(
        "classify: service matches (proto, port) + redirect list",
        |b| {
            let def = ServiceDef::WEB_CACHE;
            b.iter(|| {
                let m = def.matches(black_box(6), black_box(40000), black_box(80));
                black_box(
                    m && config::redirect_list_permits(
                        &[],
                        6,
                        Ipv4Addr::LOCALHOST,
                        Ipv4Addr::LOCALHOST,
                        1,
                        80,
                    ),
                )
            })
        },
    );
    c.bench_function("fib: longest-prefix match", |b| {
        b.iter(|| black_box(t.route(black_box(Ipv4Addr::new(198, 18, 1, 2)))))
    });
    c.bench_function("local + member checks", |b| {
        b.iter(|| {
            let a = u32::from(black_box(Ipv4Addr::new(10, 9, 1, 16)));
            black_box((t.is_local(a), t.is_member(a)))
        })
    });
    let key = FlowKey::new(0x0a09_0110, 0xc612_0102, 40000, 80);
    c.bench_function("hash: primary bucket", |b| {
        b.iter(|| black_box(primary_bucket(ServiceDef::WEB_CACHE.flags, black_box(&key))))
    });
    let table = t.services[0].table.clone().expect("table");
    c.bench_function("lookup: hash table", |b| {
        b.iter(|| black_box(table.lookup(black_box(&key))))
    });
    let mask_def = ServiceDef::dynamic(
        90,
        0,
        6,
        assign::service::flags::PORTS_DEFINED,
        [80, 0, 0, 0, 0, 0, 0, 0],
    )
    .expect("def");
    let mask = RedirectTable::mask(
        mask_def,
        CACHES
            .iter()
            .map(|a| Target::new(*a, ForwardingMethod::Gre))
            .collect(),
        &[(
            MaskTuple {
                src_addr: 0,
                dst_addr: 0x0000_0303,
                src_port: 0,
                dst_port: 0,
            },
            (0..16u32)
                .map(|v| {
                    let dst = (v & 3) | ((v & 12) << 6);
                    (
                        MaskTuple {
                            src_addr: 0,
                            dst_addr: dst,
                            src_port: 0,
                            dst_port: 0,
                        },
                        (v % 4) as u8,
                    )
                })
                .collect(),
        )],
    );
    let mask = mask.expect("mask table");
    {
        c.bench_function("lookup: mask/value table (4 bits)", |b| {
            b.iter(|| black_box(mask.lookup(black_box(&key))))
        });
    }
    let mut run = |name: &str, frame: &[u8]| {
        let t = &t;
        let counters = &counters;
        c.bench_function(name, |b| {
            let mut icmp = RateLimit::new(1000, 100, 1_000_000_000);
            b.iter_batched_ref(
                || VecBuf::new(0, frame),
                |buf| black_box(process_one(t, counters, &mut icmp, buf)),
                BatchSize::SmallInput,
            )
        });
    };
    run("process: TCP 80 -> GRE redirect (encap)", &redirect);
    run("process: TCP 22 -> routed", &routed);
    run("process: GRE return -> decap + routed", &returned);
    run("process: foreign MAC -> drop", &foreign);
    burst(c, &t);
}

/// The worker loop over one burst of the traffic mix (all 32 frames received on the client
/// port, as in the replay), and `process` alone over the same 32 frames. The `VecBuf`s are
/// built (and the frames sent before are freed) in the set-up, outside the measured routine;
/// each poll flushes TX (`now` advances by the drain interval), so it pays one `tx_burst` per
/// egress port. callgrind: the inclusive count of `poll_once` (or `process_burst`) over 32
/// times its calls is the count per packet.
fn burst(c: &mut Criterion, t: &Tables) {
    const HZ: u64 = 1_000_000_000;
    const DRAIN_US: u64 = 100;
    let frames: Vec<Vec<u8>> = (0..BURST as u32).map(mix_frame).collect();
    let (_publisher, mut readers) = rcu::cell(Box::new(tables()), 1);
    let worker = Worker::new(
        (0..t.ports.len()).map(|_| VecPort::default()).collect(),
        VecChannel::new(2 * BURST),
        VecChannel::new(2 * BURST),
        readers.remove(0),
        Arc::new(LcoreCounters::default()),
        HZ,
        DRAIN_US,
    );
    let state = RefCell::new((worker, 0u64));
    c.bench_function("worker: poll, one burst of the mix (80/15/5)", |b| {
        b.iter_batched(
            || {
                let (w, _) = &mut *state.borrow_mut();
                for p in w.ports_mut() {
                    p.tx.clear();
                }
                let rx = &mut w.ports_mut()[0].rx;
                rx.extend(frames.iter().map(|f| VecBuf::new(0, f)));
            },
            |()| black_box(poll_once(&state, HZ / 1_000_000 * DRAIN_US)),
            BatchSize::PerIteration,
        )
    });
    let counters = LcoreCounters::default();
    let mut icmp = RateLimit::new(1000, 100, HZ);
    c.bench_function("process: one burst of the mix (80/15/5)", |b| {
        b.iter_batched_ref(
            || {
                frames
                    .iter()
                    .map(|f| VecBuf::new(0, f))
                    .collect::<Vec<VecBuf>>()
            },
            |bufs| {
                let mut cx = Ctx {
                    tables: t,
                    counters: &counters,
                    icmp: &mut icmp,
                    now: 0,
                };
                process_burst(&mut cx, black_box(0), bufs);
            },
            BatchSize::SmallInput,
        )
    });
}

type BenchWorker = Worker<VecPort, VecChannel>;

/// One poll at `now` + `step` (a named function, so that callgrind counts it apart from
/// criterion's closures).
#[inline(never)]
fn poll_once(state: &RefCell<(BenchWorker, u64)>, step: u64) -> wccp_dataplane::worker::PollStats {
    let (w, now) = &mut *state.borrow_mut();
    *now += step;
    w.poll(*now)
}

/// `process` on one buffer (a named function, so that callgrind counts it apart from
/// criterion's closures).
#[inline(never)]
fn process_one(
    tables: &Tables,
    counters: &LcoreCounters,
    icmp: &mut RateLimit,
    buf: &mut VecBuf,
) -> wccp_dataplane::Action {
    let mut cx = Ctx {
        tables,
        counters,
        icmp,
        now: 0,
    };
    process(&mut cx, 0, buf)
}

/// `process` over every buffer, as the worker calls it (the port is not a constant there
/// either).
#[inline(never)]
fn process_burst(cx: &mut Ctx<'_>, in_port: u16, bufs: &mut [VecBuf]) {
    for buf in bufs.iter_mut() {
        black_box(process(cx, in_port, buf));
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
