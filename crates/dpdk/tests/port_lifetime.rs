//! Port lifetime, port configuration and EAL shutdown:
//!
//! * a port is never stopped under a live queue handle: `Port::stop` refuses with `QueuesLive`;
//!   a `Port` dropped while a worker lcore still holds its RX queue keeps running (the worker
//!   keeps receiving), and dropping that last queue handle on the worker stops and closes it;
//! * `rx_burst` asks the driver for the burst's full capacity and refuses a non-empty burst
//!   without calling the driver;
//! * `PortConfig { mtu, rss }`, `Port::info`, `set_mtu`, `set_mac_address` on net_null and
//!   net_ring;
//! * `Eal::cleanup` waits for a worker lcore whose launch handle was leaked and closes the ports
//!   still claimed.
//!
//! EAL runs with `--no-pci` (the `EalArgs` default, also set by `common::eal_args`): vdevs only.
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::{launch, Burst, Eal, EthError, MacAddr, Mempool, Port, PortConfig};

/// Waits until `cond` holds, for at most 5 s.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sends `n` frames (sequence numbers from `seed`) through `tx`, retrying what does not fit.
fn send(pool: &Mempool, tx: &mut dpdk::TxQueue, seed: u32, n: u32) {
    let mut b: Burst<16> = Burst::new();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sent < n {
        assert!(Instant::now() < deadline, "ring full for 5 s");
        while !b.is_full() && sent + (b.len() as u32) < n {
            let seq = seed + sent + b.len() as u32;
            b.push(pool.alloc_with(&common::frame(seq, 64)).unwrap())
                .unwrap();
        }
        sent += tx.tx_burst(&mut b) as u32;
    }
}

/// Returns a claimed, never configured port (net_null2) for the shutdown check.
fn port_outlives_its_handle_until_the_last_queue(eal: &Eal, pool: &Mempool) -> Port {
    let (mut a, mut b) = Port::ring_pair("pl_a", "pl_b", 256).unwrap();
    let conf = PortConfig::default();
    let (a_rx, mut a_tx) = a.configure(&conf, pool).unwrap();
    let (mut b_rx, b_tx) = b.configure(&conf, pool).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    let (a_id, b_id) = (a.id(), b.id());
    let baseline = pool.in_use();

    // Stop refuses while queue handles exist; the port keeps running.
    assert!(a.has_live_queues());
    assert!(matches!(a.stop(), Err(EthError::QueuesLive(id)) if id == a_id));
    assert!(a.is_started());

    // B's RX queue goes to a worker lcore, which receives until told to stop and then drops it.
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = eal.worker_lcores()[0];
    let rx = b_rx.remove(0);
    let (received2, stop2) = (Arc::clone(&received), Arc::clone(&stop));
    let h = launch(eal, worker, move || {
        let mut rx = rx;
        let mut burst: Burst = Burst::new();
        let mut next = 0u32;
        loop {
            let stopping = stop2.load(Ordering::Acquire);
            if rx.rx_burst(&mut burst) == 0 && stopping {
                break;
            }
            for m in burst.drain() {
                assert_eq!(m.data(), &common::frame(next, 64)[..], "frame {next}");
                next += 1;
                received2.fetch_add(1, Ordering::Release);
            }
        }
        // The last handle of B's claim: dropping it stops and closes B, on this lcore.
        drop(rx);
        dpdk::Port::ids().contains(&b_id)
    })
    .unwrap();

    send(pool, &mut a_tx[0], 0, 100);
    wait_for("100 frames on the worker", || {
        received.load(Ordering::Acquire) == 100
    });

    // Drop the Port while the worker still holds (and polls) its RX queue.
    drop(b);
    assert!(
        Port::ids().contains(&b_id),
        "B is not closed under a live queue"
    );
    assert!(matches!(Port::by_id(b_id.as_u16()), Err(EthError::AlreadyClaimed(id)) if id == b_id));
    send(pool, &mut a_tx[0], 100, 100);
    wait_for("200 frames on the worker", || {
        received.load(Ordering::Acquire) == 200
    });
    drop(b_tx);
    assert!(
        Port::ids().contains(&b_id),
        "the worker's RX queue still holds B"
    );
    stop.store(true, Ordering::Release);
    let b_still_there = h.wait().unwrap();
    assert!(
        !b_still_there,
        "the last queue handle closed B on the worker"
    );
    assert_eq!(received.load(Ordering::Acquire), 200);
    assert!(!Port::ids().contains(&b_id), "B closed and released");
    assert!(matches!(
        Port::by_name("net_ring_pl_b"),
        Err(EthError::NotFound(_))
    ));
    assert_eq!(pool.in_use(), baseline, "every frame freed");

    // A: once the queues are gone, stop works; dropping the Port then closes it.
    drop((a_rx, a_tx));
    assert!(!a.has_live_queues());
    a.stop().unwrap();
    assert!(!a.is_started());
    drop(a);
    assert!(
        !Port::ids().contains(&a_id),
        "A closed when its last handle went"
    );

    // A port that was never configured is only released, not closed: it can be claimed again.
    let p = Port::by_name("net_null2").unwrap();
    let id = p.id();
    drop(p);
    let p = Port::by_name("net_null2").unwrap();
    assert_eq!(p.id(), id);
    p
}

fn rx_burst_asks_for_full_bursts(pool: &Mempool) -> (Port, dpdk::RxQueue, dpdk::TxQueue) {
    let mut null = Port::by_name("net_null0").unwrap();
    let (mut rx, mut tx) = null.configure(&PortConfig::default(), pool).unwrap();
    null.start().unwrap();
    let mut rx = rx.remove(0);
    let baseline = pool.in_use();

    // net_null returns exactly what is asked for: the full capacity every time.
    let mut b32: Burst<32> = Burst::new();
    assert_eq!(rx.rx_burst(&mut b32), 32);
    assert!(b32.is_full());
    b32.free_all();
    let mut b7: Burst<7> = Burst::new();
    assert_eq!(rx.rx_burst(&mut b7), 7);
    drop(b7);
    let mut b256: Burst<256> = Burst::new();
    assert_eq!(rx.rx_burst(&mut b256), 256);
    dpdk::mbuf::free_bulk(&mut b256);
    assert!(b256.is_empty());

    // A non-empty burst: nothing is asked from the driver (its RX counter does not move).
    b32.push(pool.alloc().unwrap()).unwrap();
    let before = null.stats().unwrap().ipackets;
    // The expected debug-build panic is caught; keep its message out of the test output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = catch_unwind(AssertUnwindSafe(|| rx.rx_burst(&mut b32)));
    std::panic::set_hook(hook);
    if cfg!(debug_assertions) {
        assert!(r.is_err(), "debug builds assert an empty burst");
    } else {
        assert_eq!(r.unwrap(), 0);
    }
    assert_eq!(b32.len(), 1, "burst unchanged");
    assert_eq!(null.stats().unwrap().ipackets, before, "driver not called");
    drop(b32);
    assert_eq!(pool.in_use(), baseline);
    (null, rx, tx.remove(0))
}

fn port_configuration(pool: &Mempool) {
    let full_hash = dpdk::ethdev::rss_ip_tcp_udp();
    assert_ne!(full_hash, 0);

    // net_null: RSS, MTU and MAC are all supported.
    let mut null = Port::by_name("net_null1").unwrap();
    let info = null.info().unwrap();
    assert_eq!(info.driver_name, "net_null");
    assert!(
        info.max_rx_queues >= 2 && info.max_tx_queues >= 2,
        "{info:?}"
    );
    assert!(info.min_mtu <= 1600 && info.max_mtu >= 1600, "{info:?}");
    assert_ne!(info.flow_type_rss_offloads & full_hash, 0, "{info:?}");
    assert_eq!(info.if_index, 0, "no kernel interface");
    let conf = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        mtu: Some(1600),
        rss: true,
        ..PortConfig::default()
    };
    let (mut rx, _tx) = null.configure(&conf, pool).unwrap();
    assert_eq!(rx.len(), 2);
    assert_eq!(null.mtu().unwrap(), 1600);
    assert_eq!(
        null.rss_hash_functions().unwrap(),
        full_hash & info.flow_type_rss_offloads,
        "RSS asked for IP/TCP/UDP, masked by what the driver hashes"
    );
    null.set_mtu(1500).unwrap();
    assert_eq!(null.mtu().unwrap(), 1500);
    assert!(matches!(
        null.set_mtu(info.min_mtu - 1),
        Err(EthError::InvalidArgument { .. })
    ));
    let mac = MacAddr([0x02, 0, 0, 0, 0, 0x42]);
    null.set_mac_address(mac).unwrap();
    assert_eq!(null.mac_address().unwrap(), mac);
    assert!(matches!(
        null.set_mac_address(MacAddr([0x01, 0, 0x5e, 0, 0, 1])),
        Err(EthError::InvalidArgument { .. })
    ));
    null.start().unwrap();
    let mut b: Burst = Burst::new();
    assert_eq!(rx[1].rx_burst(&mut b), 32, "second RX queue polls");
    drop(b);

    // Defaults are unchanged: one queue each, MTU 1500, no RSS.
    let d = PortConfig::default();
    assert_eq!(
        (d.rx_queues, d.tx_queues, d.rx_desc, d.tx_desc, d.mtu, d.rss),
        (1, 1, 512, 512, None, false)
    );
    let mut null3 = Port::by_name("net_null3").unwrap();
    let (_rx3, _tx3) = null3.configure(&d, pool).unwrap();
    assert_eq!(null3.mtu().unwrap(), 1500);
    assert_eq!(null3.rss_hash_functions().unwrap(), 0, "no RSS by default");
    // RSS with one RX queue stays off as well.
    let mut null4 = Port::by_name("net_null4").unwrap();
    let one_q = PortConfig {
        rss: true,
        ..PortConfig::default()
    };
    let (_rx4, _tx4) = null4.configure(&one_q, pool).unwrap();
    assert_eq!(
        null4.rss_hash_functions().unwrap(),
        0,
        "RSS needs 2+ queues"
    );

    // net_ring (vdev, 16 looped queues): no RSS, no MTU or MAC operations. RSS is left off,
    // and the MTU from the configuration still applies (through rxmode.mtu).
    let mut ring = Port::by_name("net_ring0").unwrap();
    let info = ring.info().unwrap();
    assert_eq!(info.driver_name, "net_ring");
    assert_eq!(info.flow_type_rss_offloads, 0);
    let (mut rx, mut tx) = ring.configure(&conf, pool).unwrap();
    assert_eq!(ring.mtu().unwrap(), 1600);
    ring.set_mtu(1600).unwrap(); // already the MTU: fine without a driver operation
    assert!(matches!(
        ring.set_mtu(1500),
        Err(EthError::NotSupported { .. })
    ));
    assert!(matches!(
        ring.set_mac_address(mac),
        Err(EthError::NotSupported { .. })
    ));
    ring.start().unwrap();
    let mut b: Burst = Burst::new();
    b.push(pool.alloc_with(&common::frame(9, 64)).unwrap())
        .unwrap();
    assert_eq!(tx[1].tx_burst(&mut b), 1);
    assert_eq!(rx[1].rx_burst(&mut b), 1, "queue 1 loops back");
    assert_eq!(b.as_slice()[0].data(), &common::frame(9, 64)[..]);
    drop(b);

    // Configure twice is refused.
    assert!(matches!(
        ring.configure(&conf, pool),
        Err(EthError::AlreadyConfigured(_))
    ));
}

#[test]
fn port_lifetime_configuration_and_cleanup() {
    let started = Instant::now();
    let eal = Eal::init(
        common::eal_args("portlife")
            .vdev("net_null0")
            .vdev("net_null1")
            .vdev("net_null2")
            .vdev("net_null3")
            .vdev("net_null4")
            .vdev("net_ring0"),
    )
    .expect("EAL init");
    assert!(!eal.worker_lcores().is_empty(), "need a worker lcore");
    let pool = Mempool::pktmbuf_pool("pl_pool", 4095, 0, Mempool::DEFAULT_DATA_ROOM).unwrap();

    let null2 = port_outlives_its_handle_until_the_last_queue(&eal, &pool);
    let (null0, null0_rx, null0_tx) = rx_burst_asks_for_full_bursts(&pool);
    port_configuration(&pool);

    // EAL shutdown: a worker closure whose handle is leaked is waited for, and the ports still
    // claimed (net_null0 started with live queues, net_null2 claimed but never configured) are
    // stopped and closed.
    let null0_id = null0.id();
    let finished = Arc::new(AtomicBool::new(false));
    let finished2 = Arc::clone(&finished);
    let h = launch(&eal, eal.worker_lcores()[0], move || {
        std::thread::sleep(Duration::from_millis(300));
        finished2.store(true, Ordering::Release);
    })
    .unwrap();
    // Leak the handle on purpose (no wait, no drop): only EAL shutdown can wait for it now.
    let _leaked = std::mem::ManuallyDrop::new(h);
    let claimed: Vec<_> = Port::ids();
    let report = eal.cleanup();
    assert!(finished.load(Ordering::Acquire), "worker lcore waited for");
    assert!(!dpdk::eal::is_running());
    assert_eq!(report.eal_cleanup, Ok(()));
    assert!(report.failed_ports.is_empty(), "{report:?}");
    assert!(report.closed_ports.contains(&null0_id), "{report:?}");
    assert_eq!(
        report.closed_ports, claimed,
        "every port still existing was claimed here and closed"
    );

    // Handles dropped after shutdown do not touch DPDK.
    assert!(matches!(null0.stats(), Err(EthError::EalNotRunning)));
    drop((null0_rx, null0_tx, null0, null2, pool));
    assert!(started.elapsed() < Duration::from_secs(30));
}
