//! Mbuf ownership: the pool's in-use count returns to its baseline after RX->drop, RX->TX,
//! TX-queue-full, ring hand-off (ring full, ring dropped with contents) and burst edits; mbuf
//! edits report errors as values.
//!
//! EAL runs with `--no-pci` (the `EalArgs` default, also set by `common::eal_args`): vdevs only.
mod common;

use std::time::Instant;

use dpdk::ring::{self, RingMode};
use dpdk::{Burst, Eal, Mbuf, MbufError, Mempool, Port, PortConfig};

fn fill<const N: usize>(pool: &Mempool, burst: &mut Burst<N>, n: usize, seed: u32) {
    for i in 0..n {
        let f = common::frame(seed + i as u32, 64);
        burst.push(pool.alloc_with(&f).unwrap()).unwrap();
    }
}

fn mbuf_edits(pool: &Mempool) {
    let mut m: Mbuf = pool.alloc_with(&common::frame(7, 64)).unwrap();
    assert_eq!(m.len(), 64);
    assert!(m.is_contiguous());
    let head = m.headroom();
    assert_eq!(head, 128, "RTE_PKTMBUF_HEADROOM");
    assert_eq!(
        m.prepend(head + 1).unwrap_err(),
        MbufError::NoHeadroom {
            need: head + 1,
            have: head
        }
    );
    assert_eq!(m.len(), 64, "failed prepend leaves the mbuf unchanged");
    m.prepend(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(m.len(), 68);
    assert_eq!(&m.data()[..4], &[1, 2, 3, 4]);
    assert_eq!(&m.data()[4..], &common::frame(7, 64)[..]);
    m.trim_front(4).unwrap();
    assert_eq!(m.data(), &common::frame(7, 64)[..]);
    assert!(matches!(
        m.trim_front(65),
        Err(MbufError::TooShort { need: 65, .. })
    ));
    let tail = m.tailroom();
    assert!(matches!(
        m.append(tail + 1),
        Err(MbufError::NoTailroom { .. })
    ));
    m.append(2).unwrap().copy_from_slice(&[0xaa, 0xbb]);
    assert_eq!(&m.data()[64..], &[0xaa, 0xbb]);
    assert_eq!(m.tailroom(), tail - 2);
    m.trim_back(2).unwrap();
    assert!(matches!(
        m.trim_back(65),
        Err(MbufError::TooShort { need: 65, .. })
    ));
    assert_eq!(m.len(), 64);
    m.data_mut()[0] = 0x42;
    assert_eq!(m.as_ref()[0], 0x42);

    // into_raw / from_raw round trip keeps ownership explicit.
    let raw = m.into_raw();
    // SAFETY: `raw` came from `into_raw` just above and is not used elsewhere.
    let m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.data()[0], 0x42);
}

#[test]
fn mempool_in_use_returns_to_baseline() {
    let started = Instant::now();
    let eal = Eal::init(common::eal_args("mempool").vdev("net_null0,size=64")).expect("EAL init");
    let pool = Mempool::pktmbuf_pool("mb_pool", 4095, 0, Mempool::DEFAULT_DATA_ROOM).unwrap();
    assert!(matches!(
        Mempool::pktmbuf_pool("mb_pool", 63, 0, Mempool::DEFAULT_DATA_ROOM),
        Err(dpdk::MempoolError::Exists(_))
    ));
    let (mut a, mut b) = Port::ring_pair("mb_a", "mb_b", 1024).unwrap();
    let (mut fa, mut fb) = Port::ring_pair("full_a", "full_b", 64).unwrap();
    let mut null = Port::by_name("net_null0").unwrap();
    let conf = PortConfig::default();
    let (_a_rx, mut a_tx) = a.configure(&conf, &pool).unwrap();
    let (mut b_rx, mut b_tx) = b.configure(&conf, &pool).unwrap();
    let (_fa_rx, mut fa_tx) = fa.configure(&conf, &pool).unwrap();
    let (mut fb_rx, _fb_tx) = fb.configure(&conf, &pool).unwrap();
    let (mut null_rx, mut null_tx) = null.configure(&conf, &pool).unwrap();
    for p in [&mut a, &mut b, &mut fa, &mut fb, &mut null] {
        p.start().unwrap();
    }
    let a_rx = &mut { _a_rx }[0];
    let baseline = pool.in_use();
    assert_eq!(baseline, 0, "no mbuf allocated before traffic");
    let total = pool.in_use() + pool.avail();

    // Mbuf edits and explicit raw hand-off.
    mbuf_edits(&pool);
    assert_eq!(pool.in_use(), baseline, "after mbuf edits");

    // RX -> drop.
    let mut burst: Burst = Burst::new();
    fill(&pool, &mut burst, 32, 0);
    assert_eq!(pool.in_use(), baseline + 32);
    assert_eq!(a_tx[0].tx_burst(&mut burst), 32);
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), baseline + 32, "mbufs sit in the ring");
    assert_eq!(b_rx[0].rx_burst(&mut burst), 32);
    assert_eq!(burst.as_slice()[5].data(), &common::frame(5, 64)[..]);
    drop(burst);
    assert_eq!(pool.in_use(), baseline, "after RX->drop");

    // RX -> TX (B receives and sends back to A, A drops).
    let mut burst: Burst = Burst::new();
    fill(&pool, &mut burst, 20, 100);
    assert_eq!(a_tx[0].tx_burst(&mut burst), 20);
    assert_eq!(b_rx[0].rx_burst(&mut burst), 20);
    assert_eq!(b_tx[0].tx_burst(&mut burst), 20);
    assert!(burst.is_empty());
    assert_eq!(a_rx.rx_burst(&mut burst), 20);
    // Drop half through retain_mut, the rest through a partly consumed drain.
    burst.retain_mut(|m| m.data()[17] % 2 == 0);
    assert_eq!(burst.len(), 10);
    let first = burst.drain().next().unwrap();
    assert_eq!(first.data(), &common::frame(100, 64)[..]);
    drop(first);
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), baseline, "after RX->TX");

    // RX -> TX into a null sink.
    let mut burst: Burst = Burst::new();
    assert_eq!(
        null_rx[0].rx_burst(&mut burst),
        32,
        "net_null always has packets"
    );
    assert_eq!(burst.as_slice()[0].len(), 64);
    let out = null_tx[0].tx_burst_or_drop(&mut burst);
    assert_eq!(out.sent + out.dropped, 32);
    assert_eq!(pool.in_use(), baseline, "after null RX->TX");

    // TX queue full: the ring behind fa/fb holds 64; tx_burst leaves the rest in the burst.
    let mut queued = 0;
    let mut burst: Burst = Burst::new();
    for round in 0..3 {
        fill(&pool, &mut burst, 32, 1000 + round * 32);
        queued += fa_tx[0].tx_burst(&mut burst);
        burst.clear();
    }
    assert_eq!(queued, 64, "ring capacity");
    fill(&pool, &mut burst, 32, 2000);
    let out = fa_tx[0].tx_burst_or_drop(&mut burst);
    assert_eq!((out.sent, out.dropped), (0, 32));
    assert!(burst.is_empty());
    assert_eq!(
        pool.in_use(),
        baseline + 64,
        "only the queued mbufs are in use"
    );
    // Unsent mbufs returned in the burst and dropped with it.
    fill(&pool, &mut burst, 10, 3000);
    assert_eq!(fa_tx[0].tx_burst(&mut burst), 0);
    assert_eq!(burst.len(), 10, "unsent tail stays with the caller");
    drop(burst);
    let mut burst: Burst<64> = Burst::new();
    assert_eq!(fb_rx[0].rx_burst(&mut burst), 64);
    assert_eq!(burst.as_slice()[0].data(), &common::frame(1000, 64)[..]);
    drop(burst);
    assert_eq!(pool.in_use(), baseline, "after TX-queue-full");

    // Ring hand-off: SP/SC ring of 16, full ring returns the unsent tail, a dropped ring frees
    // its contents.
    let (mut prod, mut cons) =
        ring::create("mb_ring", 16, RingMode::SingleProducerSingleConsumer).unwrap();
    assert!(prod.try_clone().is_none(), "SP ring has one producer");
    let mut burst: Burst = Burst::new();
    fill(&pool, &mut burst, 24, 4000);
    assert_eq!(prod.enqueue_burst(&mut burst), 16);
    assert_eq!(burst.len(), 8);
    assert_eq!(prod.len(), 16);
    assert_eq!(prod.free_count(), 0);
    drop(burst);
    let mut out: Burst<4> = Burst::new();
    assert_eq!(cons.dequeue_burst(&mut out), 4);
    assert_eq!(out.as_slice()[0].data(), &common::frame(4000, 64)[..]);
    let handed = std::thread::spawn(move || out.len()); // Burst is Send.
    assert_eq!(handed.join().unwrap(), 4);
    assert_eq!(pool.in_use(), baseline + 12);
    drop((prod, cons));
    assert_eq!(pool.in_use(), baseline, "after ring drop with contents");

    let (mp, mc) = ring::create("mb_ring2", 8, RingMode::MultiProducerMultiConsumer).unwrap();
    assert!(mp.try_clone().is_some() && mc.try_clone().is_some());

    // Exhaustion is an error value.
    let mut held = Vec::new();
    while let Ok(m) = pool.alloc() {
        held.push(m);
    }
    assert_eq!(held.len() as u32, total);
    assert!(matches!(pool.alloc(), Err(dpdk::MempoolError::Exhausted)));
    drop(held);
    assert_eq!(pool.in_use(), baseline, "after exhaustion");

    // Port control: stats, MAC, promiscuous, link.
    let s = a.stats().unwrap();
    assert_eq!(s.opackets, 52);
    assert_eq!(null.mac_address().unwrap().0.len(), 6);
    null.set_promiscuous(true).unwrap();
    assert!(null.is_promiscuous().unwrap());
    // net_null cannot leave promiscuous mode: that comes back as an error value.
    assert!(matches!(
        null.set_promiscuous(false),
        Err(dpdk::EthError::NotSupported { .. })
    ));
    assert!(null.link().unwrap().up);

    println!("scenarios done in {:?}", started.elapsed());
    drop(eal);
}
