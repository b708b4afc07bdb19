//! Frames sent through a cross-connected net_ring pair arrive byte-identical (both directions,
//! receiver on a worker lcore); a panicking lcore closure comes back as an error; a second EAL
//! init is an error value; SP/SC and MP/SC rings hand mbufs between lcores in order.
//!
//! EAL runs with `--no-pci` (the `EalArgs` default, also set by `common::eal_args`): vdevs only.
mod common;

use std::time::{Duration, Instant};

use dpdk::{launch, Burst, Eal, EalError, LcoreError, Mempool, Port, PortConfig};

const FRAMES: u32 = 200;

/// Sends `FRAMES` frames of varying length from `tx_q` and collects them on `rx_q`, the receive
/// side running on a worker lcore. Returns the frames received, in order.
fn send_and_collect(
    eal: &Eal,
    pool: &Mempool,
    tx_q: &mut dpdk::TxQueue,
    rx_q: dpdk::RxQueue,
    seed: u32,
) -> (Vec<Vec<u8>>, dpdk::RxQueue) {
    let worker = eal.worker_lcores()[0];
    let rx = launch(eal, worker, move || {
        let mut rx_q = rx_q;
        let mut got = Vec::new();
        let mut burst: Burst = Burst::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < FRAMES as usize && Instant::now() < deadline {
            rx_q.rx_burst(&mut burst);
            for m in burst.drain() {
                got.push(m.data().to_vec());
            }
        }
        (got, rx_q)
    })
    .expect("launch receiver");

    let mut sent = 0u32;
    let mut burst: Burst<8> = Burst::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sent < FRAMES && Instant::now() < deadline {
        while !burst.is_full() && sent + (burst.len() as u32) < FRAMES {
            let seq = seed + sent + burst.len() as u32;
            let f = common::frame(seq, 60 + (seq as usize * 7) % 1400);
            burst
                .push(pool.alloc_with(&f).expect("alloc"))
                .expect("room");
        }
        sent += tx_q.tx_burst(&mut burst) as u32;
    }
    drop(burst);
    assert_eq!(sent, FRAMES, "all frames accepted by the ring");
    rx.wait().expect("receiver did not panic")
}

/// Frames per producer in `mpsc_ring`.
const PER_PRODUCER: u32 = 2000;

fn mpsc_ring(eal: &Eal, pool: &Mempool) {
    let (prod, mut cons) =
        dpdk::ring::create("rp_mpsc", 64, dpdk::RingMode::MultiProducerSingleConsumer).unwrap();
    assert!(cons.try_clone().is_none(), "one consumer");
    let mut main_prod = prod.try_clone().expect("MP rings clone producers");
    let worker = eal.worker_lcores()[0];
    let pool2 = pool.clone();
    let remote = launch(eal, worker, move || {
        let mut prod = prod;
        let mut b: Burst<8> = Burst::new();
        let mut next = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while next < PER_PRODUCER && Instant::now() < deadline {
            while !b.is_full() && next + (b.len() as u32) < PER_PRODUCER {
                let seq = 100_000 + next + b.len() as u32;
                b.push(pool2.alloc_with(&common::frame(seq, 64)).unwrap())
                    .unwrap();
            }
            next += prod.enqueue_burst(&mut b) as u32;
        }
        next
    })
    .unwrap();

    // The main lcore produces its own stream and consumes both.
    let (mut sent, mut got_w, mut got_m) = (0u32, 0u32, 0u32);
    let mut out: Burst<8> = Burst::new();
    let mut back: Burst = Burst::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (got_w < PER_PRODUCER || got_m < PER_PRODUCER) && Instant::now() < deadline {
        while !out.is_full() && sent + (out.len() as u32) < PER_PRODUCER {
            let seq = 200_000 + sent + out.len() as u32;
            out.push(pool.alloc_with(&common::frame(seq, 64)).unwrap())
                .unwrap();
        }
        sent += main_prod.enqueue_burst(&mut out) as u32;
        cons.dequeue_burst(&mut back);
        for m in back.drain() {
            let seq = u32::from_be_bytes(m.data()[14..18].try_into().unwrap());
            let (want, counter) = if seq >= 200_000 {
                (200_000 + got_m, &mut got_m)
            } else {
                (100_000 + got_w, &mut got_w)
            };
            assert_eq!(seq, want, "per-producer order");
            assert_eq!(m.data(), &common::frame(seq, 64)[..]);
            *counter += 1;
        }
    }
    assert_eq!(remote.wait().unwrap(), PER_PRODUCER);
    assert_eq!(
        (sent, got_w, got_m),
        (PER_PRODUCER, PER_PRODUCER, PER_PRODUCER)
    );
    assert!(cons.is_empty());
}

#[test]
fn ring_pair_and_lcores() {
    let started = Instant::now();
    let eal = Eal::init(common::eal_args("ringpair")).expect("EAL init");
    assert!(matches!(
        Eal::init(common::eal_args("ringpair2")),
        Err(EalError::AlreadyInitialized)
    ));
    assert!(!eal.worker_lcores().is_empty(), "need a worker lcore");

    let pool = Mempool::pktmbuf_pool("rp_pool", 2047, 32, Mempool::DEFAULT_DATA_ROOM).unwrap();
    let (mut a, mut b) = Port::ring_pair("rp_a", "rp_b", 1024).expect("ring pair");
    assert_ne!(a.id(), b.id());
    assert_eq!(a.name().unwrap(), "net_ring_rp_a");
    assert!(matches!(
        Port::by_name("net_ring_rp_a"),
        Err(dpdk::EthError::AlreadyClaimed(_))
    ));
    let conf = PortConfig::default();
    let (mut a_rx, mut a_tx) = a.configure(&conf, &pool).unwrap();
    let (mut b_rx, mut b_tx) = b.configure(&conf, &pool).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    let baseline = pool.in_use();

    // A -> B.
    let (got, b_rx0) = send_and_collect(&eal, &pool, &mut a_tx[0], b_rx.remove(0), 0);
    assert_eq!(got.len(), FRAMES as usize);
    for (i, f) in got.iter().enumerate() {
        let seq = i as u32;
        assert_eq!(
            f,
            &common::frame(seq, 60 + (seq as usize * 7) % 1400),
            "frame {i}"
        );
    }
    // B -> A.
    let (got, a_rx0) = send_and_collect(&eal, &pool, &mut b_tx[0], a_rx.remove(0), 1000);
    assert_eq!(got.len(), FRAMES as usize);
    for (i, f) in got.iter().enumerate() {
        let seq = 1000 + i as u32;
        assert_eq!(
            f,
            &common::frame(seq, 60 + (seq as usize * 7) % 1400),
            "frame {i}"
        );
    }
    assert_eq!(pool.in_use(), baseline, "every mbuf returned to the pool");
    let sa = a.stats().unwrap();
    let sb = b.stats().unwrap();
    assert_eq!(
        (sa.opackets, sb.ipackets),
        (u64::from(FRAMES), u64::from(FRAMES))
    );
    assert_eq!(
        (sb.opackets, sa.ipackets),
        (u64::from(FRAMES), u64::from(FRAMES))
    );
    assert!(a.link().unwrap().up);

    // A panic on an lcore is reported by wait(), and the lcore can be reused afterwards.
    let worker = eal.worker_lcores()[0];
    let h = launch(&eal, worker, || -> u32 { panic!("boom on purpose") }).unwrap();
    match h.wait() {
        Err(LcoreError::Panicked { message, lcore, .. }) => {
            assert_eq!(lcore, worker);
            assert!(message.contains("boom on purpose"), "{message}");
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
    let h = launch(&eal, worker, dpdk::LcoreId::current).unwrap();
    assert_eq!(h.wait().unwrap(), Some(worker));
    assert!(matches!(
        launch(&eal, eal.main_lcore(), || ()),
        Err(dpdk::LaunchError::NotAWorker(_))
    ));

    // Lcore-to-lcore hand-off through an SP/SC ring: the worker allocates and enqueues, the
    // main lcore dequeues and checks order and content.
    let (prod, mut cons) =
        dpdk::ring::create("rp_ring", 64, dpdk::RingMode::SingleProducerSingleConsumer).unwrap();
    let pool2 = pool.clone();
    let producer = launch(&eal, worker, move || {
        let mut prod = prod;
        let mut b: Burst<16> = Burst::new();
        let mut next = 0u32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while next < 1000 && Instant::now() < deadline {
            while !b.is_full() && next + (b.len() as u32) < 1000 {
                let seq = 50_000 + next + b.len() as u32;
                b.push(pool2.alloc_with(&common::frame(seq, 64)).unwrap())
                    .unwrap();
            }
            // Unsent mbufs stay in `b` and are offered again next time.
            next += prod.enqueue_burst(&mut b) as u32;
        }
        next
    })
    .unwrap();
    let mut got = 0u32;
    let mut b: Burst = Burst::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < 1000 && Instant::now() < deadline {
        cons.dequeue_burst(&mut b);
        for m in b.drain() {
            assert_eq!(
                m.data(),
                &common::frame(50_000 + got, 64)[..],
                "ring item {got}"
            );
            got += 1;
        }
    }
    assert_eq!(producer.wait().unwrap(), 1000);
    assert_eq!(got, 1000);
    drop(cons);
    assert_eq!(pool.in_use(), baseline, "after ring hand-off");

    // Two producers (a worker lcore and the main lcore, through cloned producer handles of an
    // MP/SC ring) and one consumer (the main lcore): each producer's frames arrive in order.
    mpsc_ring(&eal, &pool);
    assert_eq!(pool.in_use(), baseline, "after MP/SC hand-off");

    drop((a_rx0, b_rx0, a_tx, b_tx));
    a.stop().unwrap();
    drop((a, b));
    drop(eal);
    assert!(started.elapsed() < Duration::from_secs(20));
}
