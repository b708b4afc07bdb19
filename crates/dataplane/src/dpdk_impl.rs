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

use crate::buf::{Batch, BatchOps, Channel, PacketBuf, PortQueue, BURST};
use crate::control::{initial_tables, Alloc, ControlPlane};
use crate::counters::{LcoreCounters, Reason};
use crate::stages::{StageCycle, StageTotals};
use crate::status::{self, DataplaneStatus, PortCounters};
use crate::tables::Topology;
use crate::worker::Worker;

mod reload;
pub use reload::{ControlRequest, RequestHook};

impl PacketBuf for Mbuf {
    type Batch = Burst<BURST>;
    #[inline(always)]
    fn headroom(&self) -> usize {
        usize::from(Mbuf::headroom(self))
    }
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> bool {
        // A `match`, not `is_ok_and`: the closure form was left out of line (a call per
        // packet in the release build).
        match u16::try_from(n) {
            Ok(n) => Mbuf::grow_front(self, n),
            Err(_) => false,
        }
    }
    #[inline(always)]
    fn trim_front(&mut self, n: usize) -> bool {
        // A `match`, not `is_ok_and`: the closure form was left out of line (a call per
        // packet in the release build).
        match u16::try_from(n) {
            Ok(n) => Mbuf::trim_front(self, n).is_ok(),
            Err(_) => false,
        }
    }
    #[inline(always)]
    fn trim_back(&mut self, n: usize) -> bool {
        // A `match`, not `is_ok_and`: the closure form was left out of line (a call per
        // packet in the release build).
        match u16::try_from(n) {
            Ok(n) => Mbuf::trim_back(self, n).is_ok(),
            Err(_) => false,
        }
    }
    #[inline(always)]
    fn editable(&self) -> bool {
        self.is_editable()
    }
    #[inline(always)]
    fn reset_offloads(&mut self) {
        Mbuf::reset_offloads(self);
    }
    #[inline(always)]
    fn port(&self) -> u16 {
        Mbuf::port(self)
    }
    #[inline(always)]
    fn set_port(&mut self, port: u16) {
        Mbuf::set_port(self, port);
    }
}

/// The mbuf batch is DPDK's own burst: RX writes into it and TX reads from it in place.
impl BatchOps<Mbuf> for Burst<BURST> {
    #[inline(always)]
    fn len(&self) -> usize {
        Burst::len(self)
    }
    #[inline(always)]
    fn is_full(&self) -> bool {
        Burst::is_full(self)
    }
    #[inline(always)]
    fn push(&mut self, m: Mbuf) {
        // Full: the mbuf comes back and is freed as it drops (callers check first).
        let _ = Burst::push(self, m);
    }
    #[inline(always)]
    fn pop(&mut self) -> Option<Mbuf> {
        Burst::pop(self)
    }
    #[inline(always)]
    fn as_slice(&self) -> &[Mbuf] {
        Burst::as_slice(self)
    }
    #[inline(always)]
    fn drain_all(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        Burst::drain(self)
    }
    #[inline(always)]
    fn drain_each(&mut self, f: impl FnMut(usize, Mbuf)) {
        Burst::drain_each(self, f);
    }
    #[inline(always)]
    fn clear(&mut self) {
        self.free_all();
    }
}

/// One worker's RX and TX queue of one port.
#[derive(Debug)]
pub struct DpdkQueue {
    rx: RxQueue,
    tx: TxQueue,
}

impl PortQueue for DpdkQueue {
    type Buf = Mbuf;
    #[inline]
    fn rx_burst(&mut self, out: &mut Batch<Mbuf>) {
        self.rx.rx_burst(out);
    }
    #[inline]
    fn tx_burst(&mut self, pkts: &mut Batch<Mbuf>) -> usize {
        // The unsent tail is freed in one bulk call, never retried (no busy-wait).
        self.tx.tx_burst_or_drop(pkts).sent
    }
}

/// One end of an `rte_ring` of mbufs.
#[derive(Debug)]
pub struct RingChannel {
    tx: Option<RingProducer>,
    rx: Option<RingConsumer>,
}

impl RingChannel {
    /// The producer end.
    pub fn producer(p: RingProducer) -> Self {
        RingChannel {
            tx: Some(p),
            rx: None,
        }
    }
    /// The consumer end.
    pub fn consumer(c: RingConsumer) -> Self {
        RingChannel {
            tx: None,
            rx: Some(c),
        }
    }
}

impl Channel for RingChannel {
    type Buf = Mbuf;
    fn send(&mut self, pkts: &mut Batch<Mbuf>) {
        // What did not fit stays in `pkts`, for the caller to count and free.
        if let Some(p) = &mut self.tx {
            p.enqueue_burst(pkts);
        }
    }
    fn recv(&mut self, out: &mut Batch<Mbuf>) {
        if let Some(c) = &mut self.rx {
            c.dequeue_burst(out);
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

/// A closure run on the control lcore with the router, the data plane's status and the tables
/// the workers read now (`wccpd explain`).
pub type StatusRequest = Box<dyn FnOnce(&Router, &DataplaneStatus, &crate::tables::Tables) + Send>;

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
    /// `dataplane.capture` is on but packet capture could not be enabled.
    Capture(dpdk::CaptureError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Eal(e) => write!(f, "EAL: {e}"),
            RunError::Port(s) => write!(f, "port: {s}"),
            RunError::Memory(s) => write!(f, "memory: {s}"),
            RunError::Lcores(s) => write!(f, "lcores: {s}"),
            RunError::Worker(s) => write!(f, "worker: {s}"),
            RunError::Capture(e) => write!(f, "packet capture: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The EAL arguments for a configuration: `--no-pci` unless a port is a PCI device (then an
/// allow-list of exactly those), a `--vdev` per virtual port, one lcore per worker plus the
/// main lcore, then the configuration's own `eal` arguments; with `capture` on and no
/// `--file-prefix` among them, `--file-prefix wccpd` ([`config::DEFAULT_CAPTURE_PREFIX`]).
pub fn eal_args(dp: &config::Dataplane) -> EalArgs {
    eal_args_except(dp, &[])
}

/// [`eal_args`] without the devices of the ports named in `skip` (ports that
/// [`RunOptions::ring_ports`] makes out of `net_ring` pairs instead).
fn eal_args_except(dp: &config::Dataplane, skip: &[String]) -> EalArgs {
    let mut a = EalArgs::new();
    for p in dp.ports.iter().filter(|p| !skip.contains(&p.name)) {
        a = match &p.device {
            config::PortDevice::Pci(bdf) => a.pci_allow(bdf),
            config::PortDevice::Vdev(spec) => a.vdev(spec),
        };
    }
    a = a.auto_lcores(usize::from(dp.workers) + 1);
    for x in &dp.eal {
        a = a.arg(x.clone());
    }
    if dp.capture && config::eal_file_prefix(&dp.eal).is_none() {
        a = a.file_prefix(config::DEFAULT_CAPTURE_PREFIX);
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

/// The control loop's first sleep when nothing arrived (punts, hook work); each further idle
/// iteration doubles it, up to [`CONTROL_IDLE_MAX`], which bounds the delay a punted frame
/// (ARP, WCCP, ICMP to us) waits when the control lcore was idle. An idle control lcore
/// wakes 500 times a second instead of 5,000 (a fixed 200 µs); the workers' throughput moved
/// by less than the host's noise (docs/BENCHMARKS.md, session 6).
const CONTROL_IDLE_MIN: Duration = Duration::from_micros(200);
/// See [`CONTROL_IDLE_MIN`].
const CONTROL_IDLE_MAX: Duration = Duration::from_millis(2);

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
    run_with(settings, dp, router, stop, requests, RunOptions::default()).map(|_| ())
}

/// Work done on the main lcore next to the control loop, once per loop iteration
/// (`wccpd bench`'s traffic generator and checker, tests). It runs between two iterations of
/// the control loop, never on a worker lcore.
pub trait MainHook {
    /// One call per control-loop iteration.
    fn poll(&mut self, cx: &mut HookCtx<'_>) -> HookFlow;
}

/// What a [`MainHook`] sees.
#[derive(Debug)]
pub struct HookCtx<'a> {
    /// The data plane's mempool (to build frames).
    pub pool: &'a Mempool,
    /// The far ends of [`RunOptions::ring_ports`], in that order.
    pub peers: &'a mut [RingPeer],
    /// The control plane (to publish tables, read the current ones).
    pub control: &'a mut ControlPlane<Mbuf>,
    /// The workers' counters, by worker index.
    pub workers: &'a [Arc<LcoreCounters>],
    /// The control loop's clock (the instant the control plane was last given).
    pub now: control::Instant,
}

impl HookCtx<'_> {
    /// Packets the workers dropped so far, all reasons together.
    pub fn dropped(&self) -> u64 {
        self.workers.iter().map(|w| w.dropped()).sum()
    }
}

/// What the control loop does after a [`MainHook::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookFlow {
    /// Nothing to do now: the loop may sleep as it does when idle.
    Idle,
    /// More work is pending: poll again without sleeping.
    Busy,
    /// Finished: stop the data plane (as if `stop` had been set).
    Done,
}

/// The far end of a port that [`RunOptions::ring_ports`] made out of a cross-connected
/// `net_ring` pair: what it sends, the data-plane port receives, and the other way round.
#[derive(Debug)]
pub struct RingPeer {
    /// The configured name of the data-plane port it faces.
    pub port: String,
    /// Its receive queue (frames the data plane sent on that port).
    pub rx: RxQueue,
    /// Its transmit queue (frames for the data plane to receive).
    pub tx: TxQueue,
}

/// Options of [`run_with`]; the default is `wccpd router`'s behaviour.
#[derive(Default)]
pub struct RunOptions<'h> {
    /// Stop by itself after `warmup + duration`, and report the workers' counts over
    /// `duration` ([`RunReport::window`]); `None`: run until `stop` (or the hook says done).
    pub duration: Option<Duration>,
    /// Time from start-up (ports started, workers launched) to the measured window.
    pub warmup: Duration,
    /// Names of configured ports to build from a cross-connected `net_ring` pair
    /// (`Port::ring_pair`) instead of their `device`, which is then not passed to EAL: the
    /// data plane uses one end, the other is handed to the hook as a [`RingPeer`].
    pub ring_ports: Vec<String>,
    /// Work for the main lcore, once per control-loop iteration.
    pub hook: Option<&'h mut dyn MainHook>,
    /// Every worker takes turns between the pipeline and the reference loops of this cycle
    /// (`wccpd bench`'s stage phase: [`crate::stages`]).
    pub stages: Option<Arc<StageCycle>>,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("duration", &self.duration)
            .field("warmup", &self.warmup)
            .field("ring_ports", &self.ring_ports)
            .field("hook", &self.hook.is_some())
            .field("stages", &self.stages.is_some())
            .finish()
    }
}

/// Counts at one instant: the sum over all workers, and over all ports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Frames the workers received (`Reason::Rx`).
    pub rx: u64,
    /// Frames the workers handed to a TX queue that took them: delivered verdicts (except
    /// punts) minus `tx_full`.
    pub tx: u64,
    /// Frames the workers dropped (drop reasons, late drops included).
    pub dropped: u64,
    /// Port counters: packets received, packets sent, octets received, octets sent.
    pub port_rx: u64,
    /// See `port_rx`.
    pub port_tx: u64,
    /// See `port_rx`.
    pub port_rx_bytes: u64,
    /// See `port_rx`.
    pub port_tx_bytes: u64,
}

impl Counts {
    fn take(workers: &[Arc<LcoreCounters>], ports: &[Port]) -> Counts {
        let mut c = Counts::default();
        for w in workers {
            c.rx += w.get(Reason::Rx);
            let mut delivered = 0u64;
            for r in Reason::ALL {
                if r.is_terminal() && !r.is_drop() && *r != Reason::Punted {
                    delivered += w.get(*r);
                }
            }
            c.tx += delivered.saturating_sub(w.get(Reason::TxFull));
            c.dropped += w.dropped();
        }
        for p in ports {
            if let Ok(s) = p.stats() {
                c.port_rx += s.ipackets;
                c.port_tx += s.opackets;
                c.port_rx_bytes += s.ibytes;
                c.port_tx_bytes += s.obytes;
            }
        }
        c
    }

    fn minus(self, o: Counts) -> Counts {
        Counts {
            rx: self.rx.saturating_sub(o.rx),
            tx: self.tx.saturating_sub(o.tx),
            dropped: self.dropped.saturating_sub(o.dropped),
            port_rx: self.port_rx.saturating_sub(o.port_rx),
            port_tx: self.port_tx.saturating_sub(o.port_tx),
            port_rx_bytes: self.port_rx_bytes.saturating_sub(o.port_rx_bytes),
            port_tx_bytes: self.port_tx_bytes.saturating_sub(o.port_tx_bytes),
        }
    }
}

/// The counts of a measured window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Length of the window.
    pub elapsed: Duration,
    /// What happened in it.
    pub counts: Counts,
    /// Each stage's frames and clock ticks in it, under [`RunOptions::stages`] (else empty).
    pub stages: Vec<StageTotals>,
}

/// What [`run_with`] measured.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// The measured window ([`RunOptions::duration`]).
    pub window: Option<Window>,
    /// Totals at the end, before the workers stopped.
    pub total: Counts,
    /// Every reason counter, summed over the workers, at the end.
    pub reasons: Vec<(Reason, u64)>,
    /// Mbufs the pool had lent out at the end beyond its start-up baseline (0: no leak).
    pub leaked_mbufs: u32,
    /// The workers' clock rate (ticks per second: [`Window::stages`]).
    pub tsc_hz: u64,
}

/// [`run`] with options: a self-timed measured window, ring-pair ports and a main-lcore
/// hook (`wccpd bench`). With `RunOptions::default()` it is exactly `run`.
///
/// # Errors
/// As [`run`].
pub fn run_with(
    settings: &config::RouterSettings,
    dp: &config::Dataplane,
    router: Router,
    stop: Arc<AtomicBool>,
    requests: Receiver<StatusRequest>,
    mut opts: RunOptions<'_>,
) -> Result<RunReport, RunError> {
    let eal = Eal::init(eal_args_except(dp, &opts.ring_ports)).map_err(RunError::Eal)?;
    if dp.capture {
        // `rte_pdump`'s server: RX/TX callbacks exist only while a dpdk-dumpcap is attached.
        let c = eal.enable_capture().map_err(RunError::Capture)?;
        tracing::info!(
            file_prefix = %c.file_prefix,
            runtime_dir = %c.runtime_dir.display(),
            "packet capture enabled: dpdk-dumpcap --file-prefix={} -i DEVICE",
            c.file_prefix
        );
    }
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
    let mut peers = Vec::new();
    for (i, p) in dp.ports.iter().enumerate() {
        let name = p.device.name();
        let mut port = if opts.ring_ports.contains(&p.name) {
            let (port, peer) = ring_peer(i, &p.name, &pool)?;
            peers.push(peer);
            port
        } else {
            Port::by_name(name).map_err(|e| RunError::Port(format!("{} ({name}): {e}", p.name)))?
        };
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
            queues[w].push(DpdkQueue { rx, tx });
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
        let worker = match &opts.stages {
            Some(c) => worker.with_stages(Arc::clone(c)),
            None => worker,
        };
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
    let mut batch = Batch::<Mbuf>::default();
    let mut next_tick = control::Instant(0);
    let mut idle = CONTROL_IDLE_MIN;
    let worker_counters = &all_counters[1..];
    let window_start = started + opts.warmup;
    let window_end = opts.duration.map(|d| window_start + d);
    let mut first: Option<(StdInstant, Counts, Vec<StageTotals>)> = None;
    let mut window = None;
    while !stop.load(Ordering::Relaxed) {
        if let Some(end) = window_end {
            let t = StdInstant::now();
            let stage_totals = || {
                opts.stages
                    .as_ref()
                    .map(|c| c.results())
                    .unwrap_or_default()
            };
            if first.is_none() && t >= window_start {
                first = Some((t, Counts::take(worker_counters, &ports), stage_totals()));
            }
            if t >= end {
                if let Some((t0, c0, s0)) = first.take() {
                    let c1 = Counts::take(worker_counters, &ports);
                    window = Some(Window {
                        elapsed: StdInstant::now().duration_since(t0),
                        counts: c1.minus(c0),
                        stages: StageTotals::between(&s0, &stage_totals()),
                    });
                }
                break;
            }
        }
        let now =
            control::Instant(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        punt.recv(&mut batch);
        let busy = !batch.is_empty();
        for m in batch.drain() {
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
            req(cp.router(), &st, cp.tables());
        }
        let mut busy = busy;
        if let Some(hook) = opts.hook.as_deref_mut() {
            let mut cx = HookCtx {
                pool: &pool,
                peers: &mut peers,
                control: &mut cp,
                workers: worker_counters,
                now,
            };
            match hook.poll(&mut cx) {
                HookFlow::Idle => {}
                HookFlow::Busy => busy = true,
                HookFlow::Done => break,
            }
            // Frames the hook made the control plane build (none so far) go out too.
            inject(&mut cp, &mut injects, &control_counters);
        }
        if busy {
            idle = CONTROL_IDLE_MIN;
        } else {
            // The control lcore never spins flat out, and the longer nothing arrives, the
            // longer it sleeps (each wake-up may cost the workers too: on a VM, or beside a
            // hyperthread sibling).
            std::thread::sleep(idle);
            idle = (idle * 2).min(CONTROL_IDLE_MAX);
        }
    }
    let total = Counts::take(worker_counters, &ports);
    let mut reasons: Vec<(Reason, u64)> = Reason::ALL.iter().map(|r| (*r, 0)).collect();
    for w in worker_counters {
        for (r, n) in reasons.iter_mut() {
            *n += w.get(*r);
        }
    }
    // The workers stop with the loop (the caller's `stop` flag may be unset here).
    stop.store(true, Ordering::SeqCst);
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
    // The ring peers' queues go before their ports stop; drain what is still in flight.
    for peer in &mut peers {
        let mut b: Burst = Burst::new();
        while peer.rx.rx_burst(&mut b) > 0 {
            b.free_all();
        }
    }
    drop(peers);
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
        Ok(RunReport {
            window,
            total,
            reasons,
            leaked_mbufs: leaked,
            tsc_hz: hz,
        })
    } else {
        Err(RunError::Worker(failed.join("; ")))
    }
}

/// Makes data-plane port `index` (configured name `name`) out of a cross-connected
/// `net_ring` pair, and starts the far end as a [`RingPeer`] on `pool`.
fn ring_peer(index: usize, name: &str, pool: &Mempool) -> Result<(Port, RingPeer), RunError> {
    let (port, mut far) = Port::ring_pair(&format!("wdp{index}"), &format!("wdp{index}x"), 1024)
        .map_err(|e| RunError::Port(format!("{name}: ring pair: {e}")))?;
    let (mut rx, mut tx) = far
        .configure(&PortConfig::default(), pool)
        .map_err(|e| RunError::Port(format!("{name}: ring peer: configure: {e}")))?;
    far.start()
        .map_err(|e| RunError::Port(format!("{name}: ring peer: start: {e}")))?;
    let (Some(rx), Some(tx)) = (rx.pop(), tx.pop()) else {
        return Err(RunError::Port(format!("{name}: ring peer has no queue")));
    };
    // The queue handles keep the far end's device claimed; its `Port` may go.
    drop(far);
    Ok((
        port,
        RingPeer {
            port: name.to_owned(),
            rx,
            tx,
        },
    ))
}

fn inject(cp: &mut ControlPlane<Mbuf>, injects: &mut [RingChannel], counters: &LcoreCounters) {
    let Some(ch) = injects.first_mut() else {
        return;
    };
    let mut b = Batch::<Mbuf>::default();
    for m in cp.take_output() {
        if b.is_full() {
            ch.send(&mut b);
            if !b.is_empty() {
                counters.add(Reason::InjectRingFull, b.len() as u64);
                b.clear();
            }
        }
        BatchOps::push(&mut b, m);
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

fn worker_loop(
    w: Worker<DpdkQueue, RingChannel>,
    stop: &AtomicBool,
    backoff: bool,
) -> Result<(), String> {
    crate::worker::run(w, stop, backoff, dpdk::clock::rdtsc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataplane(extra: &str) -> config::Dataplane {
        let text = format!(
            "router:\n  addresses: [10.0.1.1]\n  control: {{transport: dpdk}}\n  services:\n    - {{id: 0, type: standard}}\ndataplane:\n  ports:\n    - {{name: a, device: net_null0, addresses: [10.0.1.1/24]}}\n{extra}"
        );
        config::router_from_str(&text)
            .unwrap_or_else(|e| panic!("{e}"))
            .dataplane
            .expect("dataplane")
    }

    fn prefix_args(a: &EalArgs) -> Vec<String> {
        let v = a.args();
        v.iter()
            .enumerate()
            .filter(|(_, x)| x.starts_with("--file-prefix"))
            .map(|(i, x)| match v.get(i + 1) {
                Some(n) if x == "--file-prefix" => format!("{x} {n}"),
                _ => x.clone(),
            })
            .collect()
    }

    #[test]
    fn capture_runs_eal_under_a_file_prefix() {
        // Without capture: EAL's own default, nothing added.
        assert!(prefix_args(&eal_args(&dataplane(""))).is_empty());
        // With capture and no prefix of its own: the daemon's.
        let a = eal_args(&dataplane("  capture: true\n"));
        assert_eq!(prefix_args(&a), ["--file-prefix wccpd"]);
        assert!(a.args().contains(&"--no-pci".to_owned()));
        // With capture and a prefix in `eal`: that one, once.
        let a = eal_args(&dataplane(
            "  capture: true\n  eal: [--file-prefix=edge1]\n",
        ));
        assert_eq!(prefix_args(&a), ["--file-prefix=edge1"]);
    }
}
