//! `wccpd smoke`: an installation check of the DPDK data path.
//!
//! Starts EAL with `--no-pci` and two vdevs, forwards packets from one to the other on a worker
//! lcore for a bounded packet count and time, and reports the counts and the mempool's in-use
//! count before and after (equal when no mbuf leaked).
//!
//! * `--vdev-kind null`: `net_null0` -> `net_null1`; the null PMD makes packets out of thin air
//!   and frees what it is given, so this measures the bare poll loop.
//! * `--vdev-kind ring`: two cross-connected `net_ring` ports A and B. The main lcore sends
//!   generated frames into A, the worker forwards what B receives back out of B, and the main
//!   lcore receives them on A, checks them byte for byte and drops them.
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use dpdk::{eal, Burst, Eal, EalArgs, Mempool, Port, PortConfig, RxQueue, TxQueue};

/// Which pair of vdevs to forward between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VdevKind {
    /// `net_null0` -> `net_null1`.
    Null,
    /// A cross-connected `net_ring` pair, traffic generated and checked by the main lcore.
    Ring,
}

impl fmt::Display for VdevKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Ring => "ring",
        })
    }
}

/// Arguments of `wccpd smoke`.
#[derive(Debug, Clone, clap::Args)]
pub struct SmokeArgs {
    /// Packets to forward before stopping.
    #[arg(long, default_value_t = 1_000_000)]
    pub packets: u64,
    /// Upper bound on the run time in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Vdev pair to forward between.
    #[arg(long, value_enum, default_value_t = VdevKind::Null)]
    pub vdev_kind: VdevKind,
    /// EAL `--lcores` list: the first is the main lcore, the next one forwards (default: lcores
    /// 0 and 1 on the first two CPUs this process may use).
    #[arg(long)]
    pub lcores: Option<String>,
    /// Use anonymous memory instead of hugepages (also chosen when fewer than 64 are free).
    #[arg(long)]
    pub no_huge: bool,
    /// EAL file prefix (default: `wccpd-smoke-<pid>`).
    #[arg(long)]
    pub file_prefix: Option<String>,
}

impl Default for SmokeArgs {
    fn default() -> Self {
        Self {
            packets: 1_000_000,
            seconds: 10,
            vdev_kind: VdevKind::Null,
            lcores: None,
            no_huge: false,
            file_prefix: None,
        }
    }
}

/// What a smoke run did.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeReport {
    /// The vdev pair used.
    pub vdev_kind: VdevKind,
    /// Packets the forwarding lcore received.
    pub rx: u64,
    /// Packets the forwarding lcore transmitted.
    pub tx: u64,
    /// Packets the forwarding lcore dropped because the TX queue was full.
    pub dropped: u64,
    /// Packets that came back to the main lcore byte-identical (ring kind only).
    pub verified: u64,
    /// Forwarding time.
    pub elapsed: Duration,
    /// Mempool in-use count before traffic.
    pub pool_in_use_before: u32,
    /// Mempool in-use count after the run and the drain.
    pub pool_in_use_after: u32,
}

impl SmokeReport {
    /// Forwarded packets per second, in millions.
    #[must_use]
    pub fn mpps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rx as f64 / secs / 1e6
        } else {
            0.0
        }
    }
}

impl fmt::Display for SmokeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "vdevs:      {}", self.vdev_kind)?;
        writeln!(f, "rx:         {}", self.rx)?;
        writeln!(f, "tx:         {}", self.tx)?;
        writeln!(f, "dropped:    {}", self.dropped)?;
        if self.vdev_kind == VdevKind::Ring {
            writeln!(f, "verified:   {}", self.verified)?;
        }
        writeln!(
            f,
            "time:       {:.3} s ({:.2} Mpps)",
            self.elapsed.as_secs_f64(),
            self.mpps()
        )?;
        write!(
            f,
            "mempool in use: before {}, after {}",
            self.pool_in_use_before, self.pool_in_use_after
        )
    }
}

/// Counts of the forwarding lcore.
#[derive(Debug, Default, Clone, Copy)]
struct FwdCounts {
    rx: u64,
    tx: u64,
    dropped: u64,
}

/// The forwarding loop: RX burst, TX burst, free what did not fit; stops after `budget`
/// received packets, at `deadline`, or when `stop` is set.
fn forward(
    mut rx: RxQueue,
    mut tx: TxQueue,
    budget: u64,
    deadline: Instant,
    stop: &AtomicBool,
) -> (FwdCounts, RxQueue) {
    let mut c = FwdCounts::default();
    let mut burst: Burst = Burst::new();
    let mut iter = 0u32;
    while c.rx < budget && !stop.load(Ordering::Relaxed) {
        // Reading the clock every 1024 polls keeps it off the per-burst path.
        iter = iter.wrapping_add(1);
        if iter % 1024 == 0 && Instant::now() >= deadline {
            break;
        }
        let n = rx.rx_burst(&mut burst);
        if n == 0 {
            continue;
        }
        c.rx += n as u64;
        let out = tx.tx_burst_or_drop(&mut burst);
        c.tx += out.sent as u64;
        c.dropped += out.dropped as u64;
    }
    // The RX queue goes back to the main lcore, which drains what is still in flight.
    (c, rx)
}

/// A test frame: broadcast Ethernet header, EtherType 0x88B5, sequence number, filler.
fn frame(seq: u64) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..22].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[22..].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    f
}

/// Runs the smoke test and returns its counts.
///
/// # Errors
///
/// EAL, port or mempool set-up failures, a panic on the forwarding lcore, or a missing worker
/// lcore.
pub fn run(args: &SmokeArgs) -> anyhow::Result<SmokeReport> {
    let prefix = args
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("wccpd-smoke-{}", std::process::id()));
    let mut eal_args = EalArgs::new().no_pci();
    eal_args = match &args.lcores {
        Some(spec) => eal_args.lcores(spec),
        None => eal_args.auto_lcores(2),
    };
    eal_args = eal_args.file_prefix(&prefix).log_level("lib.eal:error");
    let hugepages = !args.no_huge && eal::free_hugepages() >= eal::SHORT_RUN_HUGEPAGES;
    if !hugepages {
        tracing::info!("using --no-huge");
    }
    eal_args = eal_args.short_run_memory(hugepages);
    if args.vdev_kind == VdevKind::Null {
        eal_args = eal_args.vdev("net_null0").vdev("net_null1");
    }
    let eal = Eal::init(eal_args).context("EAL initialisation")?;
    let Some(&worker) = eal.worker_lcores().first() else {
        bail!("no worker lcore: give at least two lcores (--lcores)");
    };
    let pool = Mempool::pktmbuf_pool("smoke_pool", 8191, 256, Mempool::DEFAULT_DATA_ROOM)
        .context("mempool")?;
    let conf = PortConfig::default();
    let (mut p_in, mut p_out) = match args.vdev_kind {
        VdevKind::Null => (Port::by_name("net_null0")?, Port::by_name("net_null1")?),
        VdevKind::Ring => Port::ring_pair("smoke_a", "smoke_b", 1024)?,
    };
    let (mut in_rx, mut in_tx) = p_in.configure(&conf, &pool)?;
    let (mut out_rx, mut out_tx) = p_out.configure(&conf, &pool)?;
    p_in.start()?;
    p_out.start()?;
    let before = pool.in_use();
    tracing::info!(
        kind = %args.vdev_kind, %worker, packets = args.packets,
        "forwarding on {} -> {}", p_in.id(), p_out.id()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let budget = args.packets;
    let started = Instant::now();
    let (counts, verified) = match args.vdev_kind {
        VdevKind::Null => {
            let (rx, tx) = (in_rx.remove(0), out_tx.remove(0));
            let stop2 = Arc::clone(&stop);
            let h = dpdk::launch(&eal, worker, move || {
                forward(rx, tx, budget, deadline, &stop2)
            })?;
            let (counts, _rx) = h.wait()?;
            (counts, 0)
        }
        VdevKind::Ring => {
            // Worker: B -> B (what A sent comes back to A).
            let (rx, tx) = (out_rx.remove(0), out_tx.remove(0));
            let stop2 = Arc::clone(&stop);
            let h = dpdk::launch(&eal, worker, move || {
                forward(rx, tx, budget, deadline, &stop2)
            })?;
            let verified =
                generate_and_check(&pool, &mut in_tx[0], &mut in_rx[0], budget, deadline);
            stop.store(true, Ordering::Relaxed);
            let (counts, mut b_rx) = h.wait()?;
            // Drop what is still in flight in either direction (after a time-out).
            let mut burst: Burst = Burst::new();
            // `rx_burst` needs an empty burst: clear after each queue.
            loop {
                let n = in_rx[0].rx_burst(&mut burst);
                burst.clear();
                let m = b_rx.rx_burst(&mut burst);
                burst.clear();
                if n + m == 0 {
                    break;
                }
            }
            (counts, verified?)
        }
    };
    let elapsed = started.elapsed();
    drop((in_rx, in_tx, out_rx, out_tx));
    p_in.stop()?;
    p_out.stop()?;
    let report = SmokeReport {
        vdev_kind: args.vdev_kind,
        rx: counts.rx,
        tx: counts.tx,
        dropped: counts.dropped,
        verified,
        elapsed,
        pool_in_use_before: before,
        pool_in_use_after: pool.in_use(),
    };
    drop((p_in, p_out, pool));
    drop(eal);
    Ok(report)
}

/// Main-lcore side of the ring kind: sends `budget` numbered frames into A and checks that
/// they come back on A in order and byte-identical. Returns how many came back.
fn generate_and_check(
    pool: &Mempool,
    tx: &mut TxQueue,
    rx: &mut RxQueue,
    budget: u64,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut next_send = 0u64;
    let mut next_recv = 0u64;
    let mut out: Burst = Burst::new();
    let mut back: Burst = Burst::new();
    let mut idle_since = Instant::now();
    while next_recv < budget && Instant::now() < deadline {
        // Keep at most 512 frames in flight so the rings (1024) never overflow.
        while !out.is_full() && next_send < budget && next_send - next_recv < 512 {
            let m = pool
                .alloc_with(&frame(next_send))
                .context("mempool exhausted while generating")?;
            if out.push(m).is_err() {
                break;
            }
            next_send += 1;
        }
        let unsent = out.len() - tx.tx_burst(&mut out);
        // The unsent tail stays in `out`; un-count it so that it is renumbered on retry.
        next_send -= unsent as u64;
        out.clear();
        rx.rx_burst(&mut back);
        if back.is_empty() {
            ensure!(
                idle_since.elapsed() < Duration::from_secs(2),
                "no frame came back for 2 s ({next_recv} of {budget} received)"
            );
            continue;
        }
        idle_since = Instant::now();
        for m in back.drain() {
            ensure!(
                m.data() == frame(next_recv).as_slice(),
                "frame {next_recv} came back changed or out of order"
            );
            next_recv += 1;
        }
    }
    Ok(next_recv)
}

/// Entry point of `wccpd smoke`: runs, prints the report, fails on a leak or no traffic.
///
/// # Errors
///
/// Those of [`run`]; also when nothing was forwarded or the mempool did not return to its
/// baseline.
pub fn run_cli(args: &SmokeArgs) -> anyhow::Result<()> {
    let report = run(args)?;
    println!("{report}");
    ensure!(report.rx > 0, "no packet was forwarded");
    ensure!(
        report.pool_in_use_after == report.pool_in_use_before,
        "mempool leak: {} mbufs in use before, {} after",
        report.pool_in_use_before,
        report.pool_in_use_after
    );
    Ok(())
}
