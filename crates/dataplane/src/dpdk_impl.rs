//! The DPDK implementation of the buffer, port and channel traits, and the router's lcore
//! runner: EAL, mempool, ports, rings, one worker per worker lcore, the control loop on the
//! main lcore.
//!
//! ```text
//!  worker lcore i:  rx(port p, queue i) ─> pipeline ─> tx buffer(port, queue i) ─> tx
//!                                       └─ punt ─> MP/SC ring ─────────┐
//!                   inject ring i (SP/SC) ─> tx buffer                  │
//!  main lcore:      control loop <──────────────────────────────────────┘
//!                    ARP, WCCP (control::router::Router), reassembly, tables ─> RCU publish
//!                    frames it builds ─> inject ring of worker 0
//! ```
//!
//! Only EAL lcores touch DPDK objects: the Unix control-socket thread sends closures to the
//! control loop ([`StatusRequest`]), which runs them between two iterations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use control::router::Router;
use dpdk::burst::Burst;
use dpdk::eal::{Eal, EalArgs};
use dpdk::ethdev::{MacAddr, Port, PortConfig};
use dpdk::mbuf::Mbuf;
use dpdk::mempool::Mempool;
use dpdk::queue::{RxQueue, TxQueue};
use dpdk::ring::{self, RingConsumer, RingMode, RingProducer};

use crate::buf::{Batch, Channel, PacketBuf, PortQueue};
use crate::control::{initial_tables, Alloc, ControlPlane};
use crate::counters::{LcoreCounters, Reason};
use crate::status::{self, DataplaneStatus, PortCounters};
use crate::tables::Topology;
use crate::worker::Worker;

impl PacketBuf for Mbuf {
    #[inline]
    fn headroom(&self) -> usize {
        usize::from(Mbuf::headroom(self))
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| Mbuf::prepend(self, n).is_ok())
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| Mbuf::trim_front(self, n).is_ok())
    }
    #[inline]
    fn trim_back(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| Mbuf::trim_back(self, n).is_ok())
    }
    #[inline]
    fn editable(&self) -> bool {
        self.is_editable()
    }
    #[inline]
    fn reset_offloads(&mut self) {
        Mbuf::reset_offloads(self);
    }
    #[inline]
    fn port(&self) -> u16 {
        Mbuf::port(self)
    }
    #[inline]
    fn set_port(&mut self, port: u16) {
        Mbuf::set_port(self, port);
    }
    fn free_batch(batch: &mut Batch<Mbuf>) {
        let mut burst: Burst = Burst::new();
        for m in batch.drain(..) {
            // Same capacity as the batch: never full here.
            let _ = burst.push(m);
        }
        burst.free_all();
    }
}

/// One worker's RX and TX queue of one port.
#[derive(Debug)]
pub struct DpdkQueue {
    rx: RxQueue,
    tx: TxQueue,
    burst: Burst,
}

impl PortQueue for DpdkQueue {
    type Buf = Mbuf;
    #[inline]
    fn rx_burst(&mut self, out: &mut Batch<Mbuf>) {
        self.rx.rx_burst(&mut self.burst);
        for m in self.burst.drain() {
            out.push(m);
        }
    }
    #[inline]
    fn tx_burst(&mut self, pkts: &mut Batch<Mbuf>) -> usize {
        for m in pkts.drain(..) {
            // The staging burst has the batch's capacity and is empty here.
            let _ = self.burst.push(m);
        }
        let sent = self.tx.tx_burst(&mut self.burst);
        // The unsent tail is freed in one bulk call, never retried (no busy-wait).
        self.burst.free_all();
        sent
    }
}

/// One end of an `rte_ring` of mbufs.
#[derive(Debug)]
pub struct RingChannel {
    tx: Option<RingProducer>,
    rx: Option<RingConsumer>,
    burst: Burst,
}

impl RingChannel {
    /// The producer end.
    pub fn producer(p: RingProducer) -> Self {
        RingChannel {
            tx: Some(p),
            rx: None,
            burst: Burst::new(),
        }
    }
    /// The consumer end.
    pub fn consumer(c: RingConsumer) -> Self {
        RingChannel {
            tx: None,
            rx: Some(c),
            burst: Burst::new(),
        }
    }
}

impl Channel for RingChannel {
    type Buf = Mbuf;
    fn send(&mut self, pkts: &mut Batch<Mbuf>) {
        let Some(p) = &mut self.tx else { return };
        for m in pkts.drain(..) {
            let _ = self.burst.push(m);
        }
        p.enqueue_burst(&mut self.burst);
        // What did not fit goes back to the caller, who counts and frees it.
        while let Some(m) = self.burst.pop() {
            pkts.push(m);
        }
    }
    fn recv(&mut self, out: &mut Batch<Mbuf>) {
        let Some(c) = &mut self.rx else { return };
        c.dequeue_burst(&mut self.burst);
        for m in self.burst.drain() {
            out.push(m);
        }
    }
}

struct PoolAlloc<'a>(&'a Mempool);

impl Alloc for PoolAlloc<'_> {
    type Buf = Mbuf;
    fn alloc(&mut self, frame: &[u8]) -> Option<Mbuf> {
        self.0.alloc_with(frame).ok()
    }
}

/// A closure run on the control lcore with the router and the data plane's status.
pub type StatusRequest = Box<dyn FnOnce(&Router, &DataplaneStatus) + Send>;

/// Why the data plane could not start or stopped badly.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// EAL initialisation failed.
    Eal(dpdk::eal::EalError),
    /// A port could not be found, configured or started.
    Port(String),
    /// Mempool or ring creation failed.
    Memory(String),
    /// Not enough lcores for the configured workers.
    Lcores(String),
    /// A worker lcore panicked or failed.
    Worker(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Eal(e) => write!(f, "EAL: {e}"),
            RunError::Port(s) => write!(f, "port: {s}"),
            RunError::Memory(s) => write!(f, "memory: {s}"),
            RunError::Lcores(s) => write!(f, "lcores: {s}"),
            RunError::Worker(s) => write!(f, "worker: {s}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The EAL arguments for a configuration: `--no-pci` unless a port is a PCI device (then an
/// allow-list of exactly those), a `--vdev` per virtual port, one lcore per worker plus the
/// main lcore, then the configuration's own `eal` arguments.
pub fn eal_args(dp: &config::Dataplane) -> EalArgs {
    let mut a = EalArgs::new();
    for p in &dp.ports {
        a = match &p.device {
            config::PortDevice::Pci(bdf) => a.pci_allow(bdf),
            config::PortDevice::Vdev(spec) => a.vdev(spec),
        };
    }
    a = a.auto_lcores(usize::from(dp.workers) + 1);
    for x in &dp.eal {
        a = a.arg(x.clone());
    }
    a
}

/// Mbufs needed: every RX and TX descriptor of every queue, the rings, the per-lcore caches
/// and the bursts in flight, rounded up to 2^n - 1 (mempool's best size).
pub fn pool_size(dp: &config::Dataplane, rx_desc: u16, tx_desc: u16) -> u32 {
    if let Some(n) = dp.mbufs {
        return n;
    }
    let ports = dp.ports.len() as u32;
    let workers = u32::from(dp.workers);
    let descriptors = ports * workers * (u32::from(rx_desc) + u32::from(tx_desc));
    let rings = PUNT_RING + INJECT_RING * workers;
    let caches = POOL_CACHE * (workers + 1);
    let bursts = 32 * (ports + 4) * (workers + 1);
    let need = descriptors + rings + caches + bursts + 1024;
    (need + 1).next_power_of_two() - 1
}

const PUNT_RING: u32 = 1024;
const INJECT_RING: u32 = 1024;
const POOL_CACHE: u32 = 256;
const RX_DESC: u16 = 512;
const TX_DESC: u16 = 512;

/// Runs the router on the DPDK data plane until `stop` is set. Called on the main thread,
/// which becomes the main (control) lcore.
///
/// # Errors
/// [`RunError`] naming what failed at start-up, or a worker that failed.
pub fn run(
    settings: &config::RouterSettings,
    dp: &config::Dataplane,
    router: Router,
    stop: Arc<AtomicBool>,
    requests: Receiver<StatusRequest>,
) -> Result<(), RunError> {
    let eal = Eal::init(eal_args(dp)).map_err(RunError::Eal)?;
    let workers = eal.worker_lcores();
    let nworkers = usize::from(dp.workers);
    if workers.len() < nworkers {
        return Err(RunError::Lcores(format!(
            "{nworkers} workers configured but EAL has {} worker lcores",
            workers.len()
        )));
    }
    let size = pool_size(dp, RX_DESC, TX_DESC);
    let pool = Mempool::pktmbuf_pool("wccpd_pool", size, POOL_CACHE, Mempool::DEFAULT_DATA_ROOM)
        .map_err(|e| RunError::Memory(format!("mempool of {size} mbufs: {e}")))?;
    let baseline = pool.in_use();
    // Ports, in configuration order: the index is the data-plane port index.
    let mut ports = Vec::new();
    let mut queues: Vec<Vec<DpdkQueue>> = (0..nworkers).map(|_| Vec::new()).collect();
    let mut macs = Vec::new();
    for p in &dp.ports {
        let name = p.device.name();
        let mut port =
            Port::by_name(name).map_err(|e| RunError::Port(format!("{} ({name}): {e}", p.name)))?;
        if let Some(mac) = p.mac {
            if let Err(e) = port.set_mac_address(MacAddr(mac)) {
                // Some drivers (net_pcap, net_ring) cannot change their MAC: the data plane
                // then answers for the configured one, and the port listens promiscuously so
                // a hardware filter cannot drop frames sent to it.
                tracing::warn!(port = %p.name, error = %e, "cannot set the MAC; using it in promiscuous mode");
                let _ = port.set_promiscuous(true);
            }
        }
        let conf = PortConfig {
            rx_queues: dp.workers,
            tx_queues: dp.workers,
            rx_desc: RX_DESC,
            tx_desc: TX_DESC,
            mtu: Some(p.mtu),
            rss: dp.workers > 1,
        };
        let (rx, tx) = port
            .configure(&conf, &pool)
            .map_err(|e| RunError::Port(format!("{}: configure: {e}", p.name)))?;
        port.start()
            .map_err(|e| RunError::Port(format!("{}: start: {e}", p.name)))?;
        let mac = match p.mac {
            Some(m) => MacAddr(m),
            None => port
                .mac_address()
                .map_err(|e| RunError::Port(format!("{}: MAC: {e}", p.name)))?,
        };
        macs.push(mac.0);
        for (w, (rx, tx)) in rx.into_iter().zip(tx).enumerate() {
            queues[w].push(DpdkQueue {
                rx,
                tx,
                burst: Burst::new(),
            });
        }
        tracing::info!(port = %p.name, device = %p.device, mac = %mac, mtu = p.mtu, "port started");
        ports.push(port);
    }
    let topo = Topology::from_config(settings, dp, &macs);
    let (publisher, readers) = rcu::cell(initial_tables(&topo), nworkers);
    let (punt_tx, punt_rx) = ring::create(
        "wccpd_punt",
        PUNT_RING,
        RingMode::MultiProducerSingleConsumer,
    )
    .map_err(|e| RunError::Memory(format!("punt ring: {e}")))?;
    let hz = dpdk::clock::tsc_hz();
    let control_counters = Arc::new(LcoreCounters::default());
    let mut all_counters = vec![Arc::clone(&control_counters)];
    let mut injects = Vec::new();
    let mut handles = Vec::new();
    for (w, (reader, qs)) in readers.into_iter().zip(queues).enumerate() {
        let (inj_tx, inj_rx) = ring::create(
            &format!("wccpd_inject{w}"),
            INJECT_RING,
            RingMode::SingleProducerSingleConsumer,
        )
        .map_err(|e| RunError::Memory(format!("inject ring {w}: {e}")))?;
        injects.push(RingChannel::producer(inj_tx));
        let producer = punt_tx
            .try_clone()
            .ok_or_else(|| RunError::Memory("punt ring producer".into()))?;
        let counters = Arc::new(LcoreCounters::default());
        all_counters.push(Arc::clone(&counters));
        let worker = Worker::new(
            qs,
            RingChannel::producer(producer),
            RingChannel::consumer(inj_rx),
            reader,
            counters,
            hz,
            100,
        );
        let stop = Arc::clone(&stop);
        let backoff = dp.idle_backoff;
        let lcore = workers[w];
        let h = dpdk::lcore::launch(&eal, lcore, move || worker_loop(worker, &stop, backoff))
            .map_err(|e| RunError::Lcores(format!("launch worker {w} on {lcore}: {e}")))?;
        handles.push(h);
    }
    drop(punt_tx);
    tracing::info!(
        workers = nworkers,
        ports = dp.ports.len(),
        mbufs = size,
        "data plane running"
    );
    let mut cp = ControlPlane::new(router, topo, publisher, Arc::clone(&control_counters));
    let mut punt = RingChannel::consumer(punt_rx);
    let started = StdInstant::now();
    let mut alloc = PoolAlloc(&pool);
    let mut batch: Batch<Mbuf> = Batch::new();
    let mut next_tick = control::Instant(0);
    while !stop.load(Ordering::Relaxed) {
        let now =
            control::Instant(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        punt.recv(&mut batch);
        let busy = !batch.is_empty();
        for m in batch.drain(..) {
            cp.handle_punt(now, m, &mut alloc);
        }
        if now >= next_tick {
            cp.tick(now, &mut alloc);
            let wake = cp.poll_timeout().unwrap_or(now + Duration::from_millis(50));
            next_tick = wake
                .min(now + Duration::from_millis(50))
                .max(now + Duration::from_millis(1));
        } else {
            cp.republish();
        }
        inject(&mut cp, &mut injects, &control_counters);
        while let Ok(req) = requests.try_recv() {
            let st = status::collect(
                &cp,
                &all_counters,
                &port_counters(&ports),
                pool.in_use(),
                size,
            );
            req(cp.router(), &st);
        }
        if !busy {
            // The control lcore never spins flat out.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    tracing::info!("data plane stopping");
    let mut failed = Vec::new();
    for (w, h) in handles.into_iter().enumerate() {
        match h.wait() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(format!("worker {w}: {e}")),
            Err(e) => failed.push(format!("worker {w}: {e}")),
        }
    }
    // Frames the control plane still holds or built go back to the pool.
    drop(cp.take_output().collect::<Vec<_>>());
    drop(injects);
    drop(punt);
    drop(cp);
    for p in &mut ports {
        let _ = p.stop();
    }
    drop(ports);
    let leaked = pool.in_use().saturating_sub(baseline);
    tracing::info!(in_use = pool.in_use(), baseline, "mempool at exit");
    if leaked > 0 {
        tracing::warn!(leaked, "mbufs still in use at exit");
    }
    drop(pool);
    drop(eal);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(RunError::Worker(failed.join("; ")))
    }
}

fn inject(cp: &mut ControlPlane<Mbuf>, injects: &mut [RingChannel], counters: &LcoreCounters) {
    let Some(ch) = injects.first_mut() else {
        return;
    };
    let mut b: Batch<Mbuf> = Batch::new();
    for m in cp.take_output() {
        if b.is_full() {
            ch.send(&mut b);
            if !b.is_empty() {
                counters.add(Reason::InjectRingFull, b.len() as u64);
                b.clear();
            }
        }
        b.push(m);
    }
    if !b.is_empty() {
        ch.send(&mut b);
        if !b.is_empty() {
            counters.add(Reason::InjectRingFull, b.len() as u64);
            b.clear();
        }
    }
}

fn port_counters(ports: &[Port]) -> Vec<PortCounters> {
    ports
        .iter()
        .map(|p| {
            p.stats().map_or_else(
                |_| PortCounters::default(),
                |s| PortCounters {
                    rx_packets: s.ipackets,
                    tx_packets: s.opackets,
                    rx_bytes: s.ibytes,
                    tx_bytes: s.obytes,
                    rx_missed: s.imissed,
                    rx_errors: s.ierrors,
                    tx_errors: s.oerrors,
                    rx_nombuf: s.rx_nombuf,
                },
            )
        })
        .collect()
}

/// Sets the stop flag when a worker unwinds, so the daemon stops and names it.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

fn worker_loop(
    mut w: Worker<DpdkQueue, RingChannel>,
    stop: &AtomicBool,
    backoff: bool,
) -> Result<(), String> {
    let _guard = StopOnPanic(stop);
    let mut idle: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let s = w.poll(dpdk::clock::rdtsc());
        if s.idle() {
            idle = idle.saturating_add(1);
            if backoff && idle > 64 {
                // Queues are empty: let the kernel side (TAP) and the other lcore run.
                std::thread::sleep(Duration::from_micros(if idle > 4096 { 500 } else { 50 }));
            }
        } else {
            idle = 0;
        }
    }
    w.flush_all();
    // Dropping the worker takes its RCU reader offline and frees its bursts.
    w.offline();
    Ok(())
}
