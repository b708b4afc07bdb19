//! Per-packet cost of the pipeline's stages, on `VecBuf` (no DPDK): parse, classify, FIB,
//! hash, hash and mask lookups, and the whole `process` for each traffic class of `wccpd
//! bench` (GRE redirect = encap, routed, GRE return = decap, drop). docs/BENCHMARKS.md has the
//! figures and how they add up.
//!
//! `cargo bench -p wccp-dataplane --bench stages`

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
use wccp_dataplane::pipeline::{process, Ctx, RateLimit};
use wccp_dataplane::tables::{compile, PortInfo, State, Tables, Topology};
use wccp_dataplane::{LcoreCounters, VecBuf};

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
                |buf| {
                    let mut cx = Ctx {
                        tables: t,
                        counters,
                        icmp: &mut icmp,
                        now: 0,
                    };
                    black_box(process(&mut cx, 0, buf))
                },
                BatchSize::SmallInput,
            )
        });
    };
    run("process: TCP 80 -> GRE redirect (encap)", &redirect);
    run("process: TCP 22 -> routed", &routed);
    run("process: GRE return -> decap + routed", &returned);
    run("process: foreign MAC -> drop", &foreign);
}

criterion_group!(benches, stages);
criterion_main!(benches);
