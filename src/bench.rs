//! `wccpd bench`: the real worker pipeline against `dpdk-testpmd` on the same replayed traffic,
//! in one run, and a table-swap check.
//!
//! The orchestrating process never initialises EAL. It writes two pcaps (65,536 distinct
//! flows of 64-octet frames: 80 % redirected, 15 % routed, 5 % GRE returns; and the same
//! traffic in a 7:4:1 IMIX of 64/570/1514 octets), then runs every measurement as its own
//! child process, one after the other: `wccpd bench-run` (hidden subcommand: the router's
//! data plane, `dataplane::dpdk_impl::run_with`, on one worker lcore with a generated
//! configuration) and `dpdk-testpmd` (`--forward-mode=io`, then `5tswap`) on the same vdev
//! (`net_pcap0,rx_pcap=FILE,infinite_rx=1`), with the same mbuf count and the same lcores;
//! and, as a reference for the drivers' share, testpmd io from that vdev to a `net_null` port
//! (`--port-topology=paired`), the pipeline's own port layout.
//!
//! * Pipeline figures: the worker's received-packet counter over a window that starts after a
//!   warm-up, divided by the window's length.
//! * testpmd figures: testpmd's own `Rx-pps` (run with `--stats-period 1`, no `-i`): one
//!   sample a second computed by testpmd from the port counters and the time between two
//!   samples; the first sample (always 0) and `--warmup` more are skipped, the next
//!   `--seconds` are averaged, then testpmd is stopped with SIGINT.
//! * `null_*`: pure per-packet software cost on `net_null` (zero-filled 64-octet frames, the
//!   same few mbufs over and over): testpmd io forwards null0 <-> null1; the pipeline receives
//!   the same frames on two ports and drops them at the first check (destination MAC not ours):
//!   the cost of RX, the drop path and the bulk free.
//! * `nohuge_*`: the pcap replay with `--no-huge -m 512 --no-shconf`.
//! * `multi_*`: the pipeline with `--workers N` workers and testpmd io with N forwarding cores,
//!   one replay queue each, forwarded to `net_null`; each worker has a CPU of its own, and the
//!   main lcore too when the machine has N + 1 CPUs, else it shares the first CPU with the
//!   last worker (`multi_main_lcore_shares_cpu`, with a note). Skipped with fewer than N CPUs.
//! * Swaps: [`swap`], through a `net_ring` pair in the measured process.
//!
//! Progress goes to stderr (a line per phase); the result to stdout as a table or, with
//! `--json`, one JSON object.

pub mod swap;
pub mod traffic;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use dataplane::dpdk_impl::{self, MainHook, RunOptions, StatusRequest};
use dataplane::stages::StageCycle;
use serde_json::{json, Map, Value};

/// Flows (and frames) in each replayed pcap.
pub const FLOWS: u32 = 65_536;
/// Mbufs for a replay: `infinite_rx` keeps the whole pcap in mbufs of the port's pool, plus
/// room for the bursts in flight, the per-lcore caches and the TX buffers.
pub const REPLAY_MBUFS: u32 = FLOWS + 4095;
/// Mbufs for the `net_null` and swap runs.
pub const SMALL_MBUFS: u32 = 8191;
/// Hugepages (2 MiB) a replay needs free: the pool (about 2.4 KiB per mbuf) and the rest.
const REPLAY_HUGEPAGES: u64 = 110;

/// Arguments of `wccpd bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measured seconds per phase (after the warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Warm-up seconds per phase before the measured window.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Workers of the multi-worker phase (skipped when the machine has fewer CPUs than
    /// workers; with exactly as many, the main lcore shares a CPU with a worker).
    #[arg(long, default_value_t = 2)]
    pub workers: u16,
    /// Rounds of the main comparison (pipeline, testpmd io, testpmd 5tswap, interleaved) and
    /// of the IMIX pair (pipeline, testpmd io); the median of each is reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Table publications per second during the swap check.
    #[arg(long, default_value_t = 1000)]
    pub swap_rate: u32,
    /// The testpmd binary.
    #[arg(long, default_value = "dpdk-testpmd")]
    pub testpmd: String,
    /// Working directory (pcaps, configurations, logs); default a new one under the temp dir,
    /// removed at the end unless `--keep`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the working directory.
    #[arg(long)]
    pub keep: bool,
}

/// Clock ticks per stage slice under `bench-run --stages`: 2^26, 20-30 ms at 2-3.5 GHz
/// (long against a burst, short against the run, so every stage sees the same host).
const STAGE_SLICE_TICKS: u64 = 1 << 26;

/// Arguments of the hidden `wccpd bench-run`: one measured run of the data plane.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchRunArgs {
    /// Router configuration with a `dataplane` section.
    #[arg(short = 'c', long)]
    pub config: PathBuf,
    /// Measured seconds (or the swap check's generator time).
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Seconds before the measured window.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Run the swap check instead (tables per second); the configuration's port `client` is
    /// then a `net_ring` pair whose far end the generator and checker use.
    #[arg(long)]
    pub swap_rate: Option<u32>,
    /// Make the worker take turns between the pipeline and reference loops that stop at one
    /// of its stages, sending to the configuration's port `cache` (the stage phase:
    /// `wccp_dataplane::stages`).
    #[arg(long, conflicts_with = "swap_rate")]
    pub stages: bool,
}

// ------------------------------------------------------------------------------------------------
// The measured child.

/// `wccpd bench-run`: runs the data plane with a measured window (or the swap check) and
/// prints what it measured.
///
/// # Errors
/// Configuration, start-up or worker failures.
pub fn run_child(args: &BenchRunArgs) -> anyhow::Result<()> {
    let settings = config::load_router(&args.config)?;
    crate::daemon::init_logging(settings.log);
    let dp = settings
        .dataplane
        .as_ref()
        .context("bench-run needs a `dataplane` section")?;
    let router = crate::daemon::build::router(&settings)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install a signal handler")?;
    }
    let (_requests_tx, requests) = mpsc::channel::<StatusRequest>();
    let seconds = Duration::from_secs_f64(args.seconds.max(0.01));
    let mut hook = match args.swap_rate {
        Some(rate) => Some(swap::SwapHook::new(rate, seconds)?),
        None => None,
    };
    let opts = RunOptions {
        duration: hook.is_none().then_some(seconds),
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        ring_ports: if hook.is_some() {
            vec!["client".to_owned()]
        } else {
            Vec::new()
        },
        hook: hook.as_mut().map(|h| h as &mut dyn MainHook),
        stages: if args.stages {
            let egress = dp
                .ports
                .iter()
                .position(|p| p.name == "cache")
                .context("bench-run --stages needs a port named `cache`")?;
            Some(Arc::new(StageCycle::new(
                u16::try_from(egress).context("port index")?,
                STAGE_SLICE_TICKS,
            )))
        } else {
            None
        },
    };
    let report = dpdk_impl::run_with(&settings, dp, router, stop, requests, opts)
        .map_err(|e| anyhow::anyhow!("data plane: {e}"))?;
    let mut out = Map::new();
    if let Some(w) = report.window {
        let ns = w.elapsed.as_nanos() as f64;
        let c = w.counts;
        out.insert("elapsed_ns".into(), json!(w.elapsed.as_nanos() as u64));
        out.insert("rx_packets".into(), json!(c.rx));
        out.insert("tx_packets".into(), json!(c.tx));
        out.insert("dropped_packets".into(), json!(c.dropped));
        out.insert("port_rx_packets".into(), json!(c.port_rx));
        out.insert("port_tx_packets".into(), json!(c.port_tx));
        out.insert("port_rx_bytes".into(), json!(c.port_rx_bytes));
        out.insert("port_tx_bytes".into(), json!(c.port_tx_bytes));
        let mpps = if ns > 0.0 {
            c.rx as f64 * 1e3 / ns
        } else {
            0.0
        };
        out.insert("mpps".into(), json!(mpps));
        out.insert(
            "ns_per_packet".into(),
            json!(if c.rx > 0 { ns / c.rx as f64 } else { 0.0 }),
        );
        if !w.stages.is_empty() {
            let stages: Vec<Value> = w
                .stages
                .iter()
                .map(|t| {
                    let mpps = t.mpps(report.tsc_hz);
                    json!({
                        "stage": t.stage.name(),
                        "packets": t.packets,
                        "seconds": t.ticks as f64 / report.tsc_hz.max(1) as f64,
                        "mpps": mpps,
                        "ns_per_packet": ns_per_packet(Some(mpps)).unwrap_or(0.0),
                    })
                })
                .collect();
            out.insert("stages".into(), Value::Array(stages));
        }
        out.insert(
            "rx_gbps".into(),
            json!(if ns > 0.0 {
                c.port_rx_bytes as f64 * 8.0 / ns
            } else {
                0.0
            }),
        );
    }
    let reasons: Map<String, Value> = report
        .reasons
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.as_str().to_owned(), json!(n)))
        .collect();
    out.insert("reasons".into(), Value::Object(reasons));
    out.insert("leaked_mbufs".into(), json!(report.leaked_mbufs));
    if let Some(h) = &hook {
        out.insert("swap".into(), serde_json::to_value(h.report())?);
    }
    let v = Value::Object(out);
    if args.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Configurations of the measured runs.

/// The devices and EAL arguments of one pipeline run.
#[derive(Debug, Clone)]
struct PipelineSetup {
    client: String,
    server: String,
    cache: String,
    eal: Vec<String>,
    mbufs: u32,
    workers: u16,
}

fn yaml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn router_section(dir: &Path, name: &str) -> String {
    let caches: Vec<String> = traffic::CACHES.iter().map(ToString::to_string).collect();
    format!(
        "router:
  addresses: [{router}]
  control: {{transport: dpdk, socket_path: {dir}/{name}.sock}}
  services:
    - id: 0
      type: standard
      static_assignment: {{caches: [{caches}]}}
log: {{level: warn}}
",
        router = traffic::ROUTER_CACHE,
        dir = dir.display(),
        caches = caches.join(", "),
    )
}

fn neighbours_section() -> String {
    let mut s = String::from("  routes:\n    - {prefix: 198.18.0.0/15, via: 10.9.2.2}\n");
    s.push_str("  neighbours:\n");
    let _ = writeln!(
        s,
        "    - {{address: {}, mac: \"{}\"}}",
        traffic::NEXT_HOP,
        mac(traffic::NEXT_HOP_MAC)
    );
    for (c, a) in traffic::CACHES.iter().enumerate() {
        let _ = writeln!(
            s,
            "    - {{address: {a}, mac: \"{}\"}}",
            mac(traffic::cache_mac(c))
        );
    }
    s
}

/// The router configuration of a replay or `net_null` run: client, server and cache ports.
fn pipeline_yaml(dir: &Path, name: &str, p: &PipelineSetup) -> String {
    format!(
        "{router}dataplane:
  eal: {eal}
  workers: {workers}
  mbufs: {mbufs}
  idle_backoff: false
  ports:
    - {{name: client, device: {client:?}, addresses: [10.9.1.1/24], redirect: [in], mac: \"{cm}\"}}
    - {{name: server, device: {server:?}, addresses: [10.9.2.1/24], mac: \"{sm}\"}}
    - {{name: cache, device: {cache:?}, addresses: [10.9.3.1/24], exclude_in: true, mtu: 1600, mac: \"{km}\"}}
{neigh}",
        router = router_section(dir, name),
        eal = yaml_list(&p.eal),
        workers = p.workers,
        mbufs = p.mbufs,
        client = p.client,
        server = p.server,
        cache = p.cache,
        cm = mac(traffic::ROUTER_CLIENT_MAC),
        sm = mac(traffic::ROUTER_SERVER_MAC),
        km = mac(traffic::ROUTER_CACHE_MAC),
        neigh = neighbours_section(),
    )
}

/// The swap check's configuration: one port (`client`, made a `net_ring` pair by
/// `bench-run --swap-rate`) carrying all three subnets.
fn swap_yaml(dir: &Path, name: &str, eal: &[String]) -> String {
    format!(
        "{router}dataplane:
  eal: {eal}
  workers: 1
  mbufs: {mbufs}
  idle_backoff: false
  ports:
    - {{name: client, device: net_ring0, addresses: [10.9.1.1/24, 10.9.2.1/24, 10.9.3.1/24], redirect: [in], mac: \"{cm}\"}}
{neigh}",
        router = router_section(dir, name),
        eal = yaml_list(eal),
        mbufs = SMALL_MBUFS,
        cm = mac(traffic::ROUTER_CLIENT_MAC),
        neigh = neighbours_section(),
    )
}

// ------------------------------------------------------------------------------------------------
// Running the phases.

/// What one measured phase gave.
#[derive(Debug, Clone, Default)]
struct Outcome {
    mpps: Option<f64>,
    gbps: Option<f64>,
    detail: Value,
    error: Option<String>,
    command: String,
}

impl Outcome {
    /// A phase that did not run, and why.
    fn skipped(reason: &str) -> Self {
        Outcome {
            error: Some(reason.to_owned()),
            ..Outcome::default()
        }
    }
}

/// The client port of a replay: `pcap` read into the pool once, then received forever.
fn replay_vdev(pcap: &Path) -> String {
    format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display())
}

/// The pipeline's server and cache ports (and testpmd's egress in the `net_null` reference).
const NULL_SERVER: &str = "net_null1,no-rx=1";
const NULL_CACHE: &str = "net_null2,no-rx=1";

struct Bench {
    args: BenchArgs,
    dir: PathBuf,
    exe: PathBuf,
    /// The CPUs this process may run on (the lcores are placed on them in turn).
    cpus: Vec<u32>,
    phase: usize,
    phases: usize,
}

impl Bench {
    fn prefix(&self, name: &str) -> String {
        format!("wbench-{}-{name}", std::process::id())
    }

    /// EAL memory arguments: hugepages in memory, or anonymous memory.
    fn memory(&self, name: &str, huge: bool, mb: u32) -> Vec<String> {
        let mut v: Vec<String> = if huge {
            vec!["--in-memory".into()]
        } else {
            vec![
                "--no-huge".into(),
                "--no-shconf".into(),
                "-m".into(),
                mb.to_string(),
            ]
        };
        v.push("--file-prefix".into());
        v.push(self.prefix(name));
        v
    }

    fn progress(&mut self, what: &str) {
        self.phase += 1;
        eprintln!("bench: [{}/{}] {what}", self.phase, self.phases);
    }

    fn hugepages_ok(&self) -> Result<(), String> {
        self.hugepages_for(1)
    }

    /// Enough free hugepages for `replays` preloaded replays (one per RX queue).
    fn hugepages_for(&self, replays: u64) -> Result<(), String> {
        let free = dpdk::eal::free_hugepages();
        let need = REPLAY_HUGEPAGES * replays;
        if free < need {
            Err(format!("only {free} free 2 MiB hugepages ({need} needed)"))
        } else {
            Ok(())
        }
    }

    /// The EAL lcore list for `n` lcores, placed on the allowed CPUs in turn (as the data
    /// plane's own `auto_lcores` places them): with fewer CPUs than lcores, the main lcore
    /// shares the first CPU with the last worker.
    fn lcores_for(&self, n: usize) -> String {
        dpdk::eal::lcore_list(n, &self.cpus)
    }

    /// `wccpd bench-run` with `pcap` replayed as the client port (server and cache ports
    /// `net_null`), one worker, on hugepages; skipped when too few are free.
    fn replay_pipeline(&mut self, name: &str, pcap: &Path) -> Outcome {
        self.replay_pipeline_with(name, pcap, &[], self.args.seconds)
    }

    /// [`Bench::replay_pipeline`] with `extra` arguments to `bench-run`, for `seconds`.
    fn replay_pipeline_with(
        &mut self,
        name: &str,
        pcap: &Path,
        extra: &[String],
        seconds: u64,
    ) -> Outcome {
        if let Err(e) = self.hugepages_ok() {
            return Outcome::skipped(&e);
        }
        let setup = PipelineSetup {
            client: replay_vdev(pcap),
            server: NULL_SERVER.to_owned(),
            cache: NULL_CACHE.to_owned(),
            eal: self.memory(name, true, 0),
            mbufs: REPLAY_MBUFS,
            workers: 1,
        };
        let yaml = pipeline_yaml(&self.dir, name, &setup);
        self.pipeline_with(name, &yaml, extra, seconds)
    }

    /// testpmd `mode` on `pcap` replayed on hugepages: the port looped, or with `to_null`
    /// forwarded to a `net_null` port (`paired`); skipped when too few hugepages are free.
    fn replay_testpmd(&mut self, name: &str, mode: &str, pcap: &Path, to_null: bool) -> Outcome {
        if let Err(e) = self.hugepages_ok() {
            return Outcome::skipped(&e);
        }
        let mut eal = self.memory(name, true, 0);
        eal.extend(["--vdev".to_owned(), replay_vdev(pcap)]);
        let topology = if to_null {
            eal.extend(["--vdev".to_owned(), NULL_SERVER.to_owned()]);
            "paired"
        } else {
            "loop"
        };
        self.testpmd(name, mode, &eal, topology, REPLAY_MBUFS, 1)
    }

    /// Runs `wccpd bench-run` on a configuration for the run's `--seconds`; returns its
    /// JSON.
    fn pipeline(&mut self, name: &str, yaml: &str, swap_rate: Option<u32>) -> Outcome {
        let extra: Vec<String> = match swap_rate {
            Some(r) => vec!["--swap-rate".into(), r.to_string()],
            None => Vec::new(),
        };
        self.pipeline_with(name, yaml, &extra, self.args.seconds)
    }

    /// Runs `wccpd bench-run` on a configuration with `extra` arguments for `seconds`;
    /// returns its JSON.
    fn pipeline_with(&mut self, name: &str, yaml: &str, extra: &[String], seconds: u64) -> Outcome {
        let conf = self.dir.join(format!("{name}.yaml"));
        let log = self.dir.join(format!("{name}.log"));
        let mut cmd_args: Vec<String> = vec![
            "bench-run".into(),
            "-c".into(),
            conf.display().to_string(),
            "--seconds".into(),
            seconds.to_string(),
            "--warmup".into(),
            self.args.warmup.to_string(),
            "--json".into(),
        ];
        cmd_args.extend(extra.iter().cloned());
        let command = format!("{} {}", self.exe.display(), cmd_args.join(" "));
        let mut out = Outcome {
            command,
            ..Outcome::default()
        };
        if let Err(e) = std::fs::write(&conf, yaml) {
            out.error = Some(format!("{}: {e}", conf.display()));
            return out;
        }
        let result = (|| -> anyhow::Result<Value> {
            let logf = std::fs::File::create(&log)?;
            let outf_path = self.dir.join(format!("{name}.out"));
            let outf = std::fs::File::create(&outf_path)?;
            let mut child = Command::new(&self.exe)
                .args(&cmd_args)
                .stdin(Stdio::null())
                .stdout(outf)
                .stderr(logf)
                .spawn()
                .context("cannot start wccpd bench-run")?;
            let limit = Duration::from_secs(self.args.warmup + seconds + 90);
            let started = Instant::now();
            let status = loop {
                if let Some(st) = child.try_wait()? {
                    break st;
                }
                if started.elapsed() > limit {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("timed out after {} s", limit.as_secs());
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let text = std::fs::read_to_string(&outf_path).unwrap_or_default();
            if !status.success() {
                bail!("exit {status}: {}", tail(&log));
            }
            let line = text
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .context("no JSON output")?;
            Ok(serde_json::from_str(line)?)
        })();
        match result {
            Ok(v) => {
                out.mpps = v.get("mpps").and_then(Value::as_f64);
                out.gbps = v.get("rx_gbps").and_then(Value::as_f64);
                out.detail = v;
            }
            Err(e) => out.error = Some(format!("{e:#}")),
        }
        out
    }

    /// Runs testpmd with `cores` forwarding cores (its lcores placed as [`Bench::lcores_for`]
    /// places the data plane's), each with its own RX and TX queue on every port, until it
    /// printed enough one-second samples; averages the measured ones.
    fn testpmd(
        &mut self,
        name: &str,
        mode: &str,
        eal: &[String],
        topology: &str,
        mbufs: u32,
        cores: u16,
    ) -> Outcome {
        let log = self.dir.join(format!("{name}.log"));
        let mut argv: Vec<String> = vec![
            "--lcores".into(),
            self.lcores_for(usize::from(cores) + 1),
            "--no-pci".into(),
        ];
        argv.extend(eal.iter().cloned());
        argv.extend([
            "--".to_owned(),
            format!("--forward-mode={mode}"),
            format!("--port-topology={topology}"),
            format!("--nb-cores={cores}"),
            format!("--rxq={cores}"),
            format!("--txq={cores}"),
            "--burst=32".into(),
            format!("--total-num-mbufs={mbufs}"),
            "--mbcache=256".into(),
            "--stats-period=1".into(),
        ]);
        let command = format!("{} {}", self.args.testpmd, argv.join(" "));
        let mut out = Outcome {
            command,
            ..Outcome::default()
        };
        let skip = 1 + self.args.warmup as usize;
        let keep = self.args.seconds.max(1) as usize;
        let result = (|| -> anyhow::Result<(f64, f64, usize)> {
            let logf = std::fs::File::create(&log)?;
            let mut child = Command::new(&self.args.testpmd)
                .args(&argv)
                .stdin(Stdio::null())
                .stdout(logf.try_clone()?)
                .stderr(logf)
                .spawn()
                .with_context(|| format!("cannot start {}", self.args.testpmd))?;
            let limit = Duration::from_secs(self.args.warmup + self.args.seconds + 60);
            let started = Instant::now();
            let mut exited = None;
            loop {
                if let Some(st) = child.try_wait()? {
                    exited = Some(st);
                    break;
                }
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if testpmd_samples(&text).len() >= skip + keep || started.elapsed() > limit {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if exited.is_none() {
                let _ = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(15);
                loop {
                    if let Some(st) = child.try_wait()? {
                        exited = Some(st);
                        break;
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let samples = testpmd_samples(&text);
            if samples.len() < skip + 1 {
                bail!(
                    "testpmd gave {} samples (exit {:?}): {}",
                    samples.len(),
                    exited,
                    tail(&log)
                );
            }
            let used = &samples[skip..samples.len().min(skip + keep)];
            let n = used.len() as f64;
            let pps = used.iter().map(|s| s.0).sum::<f64>() / n;
            let bps = used.iter().map(|s| s.1).sum::<f64>() / n;
            Ok((pps, bps, used.len()))
        })();
        match result {
            Ok((pps, bps, n)) => {
                out.mpps = Some(pps / 1e6);
                out.gbps = Some(bps / 1e9);
                out.detail = json!({"samples": n, "rx_pps": pps, "rx_bps": bps});
            }
            Err(e) => out.error = Some(format!("{e:#}")),
        }
        out
    }
}

/// testpmd's `--stats-period` blocks: per block, the sums over ports of `Rx-pps` and `Rx-bps`.
/// A block counts only once its last line (the closing `####` line of each port) is there.
pub fn testpmd_samples(text: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for block in text.split("Port statistics").skip(1) {
        let mut pps = 0.0;
        let mut bps = 0.0;
        let mut ports = 0;
        let mut closed = 0;
        for line in block.lines() {
            if let Some(rest) = line.trim().strip_prefix("Rx-pps:") {
                let mut it = rest.split_whitespace();
                pps += it.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                if it.next() == Some("Rx-bps:") {
                    bps += it.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                }
                ports += 1;
            }
            if line.trim().starts_with("####")
                && line.trim().ends_with("####")
                && !line.contains("NIC")
            {
                closed += 1;
            }
        }
        if ports > 0 && closed >= ports {
            out.push((pps, bps));
        }
    }
    out
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(12);
    lines[from..].join("\n")
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

fn ns_per_packet(mpps: Option<f64>) -> Option<f64> {
    mpps.filter(|m| *m > 0.0).map(|m| 1e3 / m)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn round(x: Option<f64>, digits: i32) -> Value {
    match x {
        Some(v) if v.is_finite() => {
            let p = 10f64.powi(digits);
            json!((v * p).round() / p)
        }
        _ => Value::Null,
    }
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let dpdk = command_output("pkg-config", &["--modversion", "libdpdk"]).unwrap_or_default();
    json!({
        "cpu": cpu,
        "nproc": nproc,
        "kernel": kernel,
        "dpdk": dpdk,
        "hugepages_free": dpdk::eal::free_hugepages(),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `wccpd bench`: runs every phase and prints the result.
///
/// # Errors
/// The working directory or the pcaps cannot be written; a failed phase is reported in the
/// result (`errors`), not as an error.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let v = measure(args)?;
    if args.json {
        println!("{v}");
    } else {
        print!("{}", render(&v));
    }
    Ok(())
}

/// Runs every phase and returns the result object.
///
/// # Errors
/// As [`run`].
pub fn measure(args: &BenchArgs) -> anyhow::Result<Value> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("wccpd-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let cpus = dpdk::eal::allowed_cpus();
    let cpus = if cpus.is_empty() { vec![0, 1] } else { cpus };
    let rounds = args.rounds.max(1) as usize;
    let mut b = Bench {
        args: args.clone(),
        dir: dir.clone(),
        exe: std::env::current_exe().context("own executable")?,
        cpus,
        phase: 0,
        phases: 6 * rounds + 8,
    };
    let load_start = loadavg();
    eprintln!("bench: writing pcaps ({FLOWS} flows) to {}", dir.display());
    let flows = dir.join("flows.pcap");
    let imix = dir.join("imix.pcap");
    traffic::write_pcap(&flows, FLOWS, |_| 64).context("flows.pcap")?;
    traffic::write_pcap(&imix, FLOWS, traffic::imix_size).context("imix.pcap")?;
    let mut errors = Map::new();
    let mut commands = Map::new();
    let mut record = |name: &str, o: &Outcome, errors: &mut Map<String, Value>| {
        commands.insert(name.into(), json!(o.command));
        if let Some(e) = &o.error {
            eprintln!("bench:   {name} failed: {e}");
            errors.insert(name.into(), json!(e));
        } else if let Some(m) = o.mpps {
            eprintln!("bench:   {name}: {m:.2} Mpps");
        }
    };

    // The main comparison, interleaved per round.
    let mut pipe = Vec::new();
    let mut io = Vec::new();
    let mut tswap = Vec::new();
    let mut io_null = Vec::new();
    let mut main_detail = Value::Null;
    // Each round's ratios (pipeline over testpmd io, over 5tswap), from the round's own pair:
    // their spread is the run's uncertainty.
    let mut round_ratio_io = Vec::new();
    let mut round_ratio_tswap = Vec::new();
    for r in 0..rounds {
        let name = format!("pipeline-r{r}");
        b.progress(&format!(
            "pipeline on {} (round {})",
            flows.display(),
            r + 1
        ));
        let o = b.replay_pipeline(&name, &flows);
        record(&name, &o, &mut errors);
        pipe.extend(o.mpps);
        let round_pipe = o.mpps;
        if main_detail.is_null() {
            main_detail = o.detail.clone();
        }
        // io and 5tswap with the replay port looped (the baselines), then io from
        // the replay to a `net_null` port: the pipeline's own port layout, which tells the
        // drivers' share of any difference from ours.
        let cases = [
            ("io", true, &mut io, Some(&mut round_ratio_io)),
            ("5tswap", true, &mut tswap, Some(&mut round_ratio_tswap)),
            ("io", false, &mut io_null, None),
        ];
        for (mode, looped, store, ratios) in cases {
            let name = if looped {
                format!("testpmd-{mode}-r{r}")
            } else {
                format!("testpmd-{mode}-null-egress-r{r}")
            };
            let what = if looped {
                format!("testpmd {mode} on {}", flows.display())
            } else {
                "testpmd io, the replay to net_null1".to_owned()
            };
            b.progress(&format!("{what} (round {})", r + 1));
            let o = b.replay_testpmd(&name, mode, &flows, !looped);
            record(&name, &o, &mut errors);
            store.extend(o.mpps);
            if let Some(ratios) = ratios {
                ratios.extend(ratio(round_pipe, o.mpps));
            }
        }
    }

    // IMIX, interleaved per round as well: a single pair of samples moves with the host's
    // memory bandwidth (copying 355 octets a frame from a 23 MB replay) by a factor of two.
    let mut imix_pipe = Vec::new();
    let mut imix_io = Vec::new();
    let mut imix_detail = Value::Null;
    for r in 0..rounds {
        let name = format!("pipeline-imix-r{r}");
        b.progress(&format!(
            "pipeline on {} (IMIX 7:4:1, round {})",
            imix.display(),
            r + 1
        ));
        let o = b.replay_pipeline(&name, &imix);
        record(&name, &o, &mut errors);
        if imix_detail.is_null() {
            imix_detail = o.detail.clone();
        }
        imix_pipe.extend(o.mpps.zip(o.gbps));
        let name = format!("testpmd-io-imix-r{r}");
        b.progress(&format!("testpmd io on the IMIX pcap (round {})", r + 1));
        let o = b.replay_testpmd(&name, "io", &imix, false);
        record(&name, &o, &mut errors);
        imix_io.extend(o.mpps.zip(o.gbps));
    }
    let (imix_pipe_mpps, imix_pipe_gbps): (Vec<f64>, Vec<f64>) = imix_pipe.into_iter().unzip();
    let (imix_io_mpps, imix_io_gbps): (Vec<f64>, Vec<f64>) = imix_io.into_iter().unzip();

    // net_null: pure per-packet software cost.
    b.progress("pipeline on net_null0/net_null1 (drop path)");
    let null_setup = PipelineSetup {
        client: "net_null0".into(),
        server: "net_null1".into(),
        cache: "net_null2,no-rx=1".into(),
        eal: b.memory("null", true, 0),
        mbufs: SMALL_MBUFS,
        workers: 1,
    };
    let yaml = pipeline_yaml(&dir, "null", &null_setup);
    let null_pipe = b.pipeline("pipeline-null", &yaml, None);
    record("pipeline-null", &null_pipe, &mut errors);
    b.progress("testpmd io on net_null0/net_null1");
    let mut eal = b.memory("null-io", true, 0);
    eal.extend([
        "--vdev".into(),
        "net_null0".into(),
        "--vdev".into(),
        "net_null1".into(),
    ]);
    let null_io = b.testpmd("testpmd-io-null", "io", &eal, "paired", SMALL_MBUFS, 1);
    record("testpmd-io-null", &null_io, &mut errors);

    // No hugepages.
    b.progress("pipeline on the replay without hugepages");
    let setup = PipelineSetup {
        client: replay_vdev(&flows),
        server: NULL_SERVER.to_owned(),
        cache: NULL_CACHE.to_owned(),
        eal: b.memory("nohuge", false, 512),
        mbufs: REPLAY_MBUFS,
        workers: 1,
    };
    let yaml = pipeline_yaml(&dir, "nohuge", &setup);
    let nohuge_pipe = b.pipeline("pipeline-nohuge", &yaml, None);
    record("pipeline-nohuge", &nohuge_pipe, &mut errors);
    b.progress("testpmd io on the replay without hugepages");
    let mut eal = b.memory("nohuge-io", false, 512);
    eal.extend(["--vdev".to_owned(), replay_vdev(&flows)]);
    let nohuge_io = b.testpmd("testpmd-io-nohuge", "io", &eal, "loop", REPLAY_MBUFS, 1);
    record("testpmd-io-nohuge", &nohuge_io, &mut errors);

    // Where the cycles go: one process taking turns between the pipeline and reference loops
    // that stop at one of its stages (`wccp_dataplane::stages`), on the same replay, ports,
    // pool and memory, so the host's moods from one process to the next cancel out.
    b.progress("stages: the pipeline and its reference loops in turn, in one process");
    let stage_seconds = args.seconds * STAGE_RUN_FACTOR;
    let stage_run =
        b.replay_pipeline_with("stages", &flows, &["--stages".to_owned()], stage_seconds);
    record("stages", &stage_run, &mut errors);
    let stages = stage_summary(&stage_run.detail);

    // More workers, each on a CPU of its own; the main (control) lcore has one too where the
    // machine has a CPU to spare, else it shares the first CPU with the last worker (it
    // sleeps while nothing arrives for it). testpmd io runs the same layout: as many
    // forwarding cores, one RX queue each on the replay, forwarded to a `net_null` port.
    let workers = args.workers.max(1);
    let nw = usize::from(workers);
    let shared = b.cpus.len() < nw + 1;
    let multi_lcores = b.lcores_for(nw + 1);
    let multi_ready = if workers < 2 {
        Err("--workers below 2".to_owned())
    } else if b.cpus.len() < nw {
        Err(format!(
            "{} CPUs: {workers} workers would share CPUs (need {nw}, and {} for the main lcore \
             to have its own)",
            b.cpus.len(),
            nw + 1
        ))
    } else {
        b.hugepages_for(u64::from(workers))
    };
    // One RX queue per worker, each replaying the whole pcap.
    let mut multi_dev = String::from("net_pcap0");
    for _ in 0..workers {
        let _ = write!(multi_dev, ",rx_pcap={}", flows.display());
    }
    multi_dev.push_str(",infinite_rx=1");
    let multi_mbufs = REPLAY_MBUFS * u32::from(workers);
    b.progress(&format!("pipeline with {workers} workers"));
    let multi = match &multi_ready {
        Ok(()) => {
            let setup = PipelineSetup {
                client: multi_dev.clone(),
                server: NULL_SERVER.to_owned(),
                cache: NULL_CACHE.to_owned(),
                eal: b.memory("multi", true, 0),
                mbufs: multi_mbufs,
                workers,
            };
            let yaml = pipeline_yaml(&dir, "multi", &setup);
            b.pipeline("pipeline-multi", &yaml, None)
        }
        Err(e) => Outcome::skipped(e),
    };
    b.progress(&format!("testpmd io with {workers} forwarding cores"));
    let multi_io = match &multi_ready {
        Ok(()) => {
            let mut eal = b.memory("multi-io", true, 0);
            eal.extend([
                "--vdev".to_owned(),
                multi_dev.clone(),
                "--vdev".to_owned(),
                NULL_SERVER.to_owned(),
            ]);
            b.testpmd(
                "testpmd-io-multi",
                "io",
                &eal,
                "paired",
                multi_mbufs,
                workers,
            )
        }
        Err(e) => Outcome::skipped(e),
    };
    for (name, o) in [("pipeline-multi", &multi), ("testpmd-io-multi", &multi_io)] {
        if o.command.is_empty() {
            eprintln!("bench:   skipped: {}", o.error.clone().unwrap_or_default());
        } else {
            record(name, o, &mut errors);
        }
    }
    let multi_note = match &multi_ready {
        Err(e) => Some(e.clone()),
        Ok(()) if shared => Some(format!(
            "{} CPUs: the main lcore shares CPU {} with worker {workers}",
            b.cpus.len(),
            b.cpus[0]
        )),
        Ok(()) => None,
    };

    // Table swaps.
    b.progress(&format!(
        "swap check: {} tables/s through a net_ring pair",
        args.swap_rate
    ));
    let eal = b.memory("swap", false, 256);
    let yaml = swap_yaml(&dir, "swap", &eal);
    let swap = b.pipeline("swap", &yaml, Some(args.swap_rate));
    record("swap", &swap, &mut errors);
    let sw = swap.detail.get("swap").cloned().unwrap_or(Value::Null);
    let swap_field = |k: &str| sw.get(k).cloned().unwrap_or(Value::Null);

    let pipeline_mpps = median(&pipe);
    let io_mpps = median(&io);
    let tswap_mpps = median(&tswap);
    let reasons = |detail: &Value| -> Map<String, Value> {
        detail
            .get("reasons")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let verdicts = reasons(&main_detail);
    let imix_verdicts = reasons(&imix_detail);
    let v = json!({
        "pipeline_mpps": round(pipeline_mpps, 3),
        "pipeline_ns_per_packet": round(ns_per_packet(pipeline_mpps), 1),
        "testpmd_io_mpps": round(io_mpps, 3),
        "testpmd_io_ns_per_packet": round(ns_per_packet(io_mpps), 1),
        "testpmd_5tswap_mpps": round(tswap_mpps, 3),
        "testpmd_5tswap_ns_per_packet": round(ns_per_packet(tswap_mpps), 1),
        "ratio_vs_io": round(ratio(pipeline_mpps, io_mpps), 3),
        "ratio_vs_5tswap": round(ratio(pipeline_mpps, tswap_mpps), 3),
        "ratio_vs_io_rounds": round_ratio_io.iter().map(|&x| round(Some(x), 3)).collect::<Vec<_>>(),
        "ratio_vs_5tswap_rounds": round_ratio_tswap.iter().map(|&x| round(Some(x), 3)).collect::<Vec<_>>(),
        "testpmd_io_null_egress_mpps": round(median(&io_null), 3),
        "ratio_vs_io_null_egress": round(ratio(pipeline_mpps, median(&io_null)), 3),
        "imix_gbps": round(median(&imix_pipe_gbps), 3),
        "imix_mpps": round(median(&imix_pipe_mpps), 3),
        "testpmd_io_imix_gbps": round(median(&imix_io_gbps), 3),
        "testpmd_io_imix_mpps": round(median(&imix_io_mpps), 3),
        "imix_ratio_vs_io": round(ratio(median(&imix_pipe_mpps), median(&imix_io_mpps)), 3),
        "null_pipeline_mpps": round(null_pipe.mpps, 3),
        "null_testpmd_io_mpps": round(null_io.mpps, 3),
        "nohuge_pipeline_mpps": round(nohuge_pipe.mpps, 3),
        "nohuge_testpmd_io_mpps": round(nohuge_io.mpps, 3),
        "multi_workers": workers,
        "multi_worker_mpps": round(multi.mpps, 3),
        "multi_testpmd_io_mpps": round(multi_io.mpps, 3),
        "multi_ratio_vs_io": round(ratio(multi.mpps, multi_io.mpps), 3),
        "multi_lcores": multi_lcores,
        "multi_main_lcore_shares_cpu": shared,
        "workers2_mpps": if workers == 2 { round(multi.mpps, 3) } else { Value::Null },
        "workers2_note": match (&multi_note, multi.mpps) {
            (Some(n), _) => json!(n),
            (None, None) => json!(multi.error),
            (None, Some(_)) => Value::Null,
        },
    });
    let more = json!({
        "swaps": swap_field("swaps"),
        "swap_rate": args.swap_rate,
        "swap_sent_packets": swap_field("sent"),
        "swap_received_packets": swap_field("received"),
        "swap_lost_packets": swap_field("lost"),
        "swap_missent_packets": swap_field("missent"),
        "swap_duplicated_packets": swap_field("duplicated"),
        "swap_dropped_packets": swap_field("dropped"),
        "swap_foreign_packets": swap_field("foreign"),
        "swap_max_generation_span": swap_field("max_generation_span"),
        "pipeline_verdicts": verdicts,
        "imix_pipeline_verdicts": imix_verdicts,
        "rounds": rounds,
        "rounds_mpps": {
            "pipeline": pipe,
            "testpmd_io": io,
            "testpmd_5tswap": tswap,
            "testpmd_io_null_egress": io_null,
            "pipeline_imix": imix_pipe_mpps,
            "testpmd_io_imix": imix_io_mpps,
        },
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "flows": FLOWS,
        "frame_size": 64,
        "mbufs": REPLAY_MBUFS,
        "machine": machine(),
        "loadavg": {"start": load_start, "end": loadavg()},
        "commands": commands,
        "errors": errors,
        "dir": dir.display().to_string(),
    });
    let mut v = v;
    for extra in [more, stages] {
        if let (Some(a), Value::Object(b)) = (v.as_object_mut(), extra) {
            a.extend(b);
        }
    }
    if args.dir.is_none() && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(v)
}

/// The stage phase runs this many times the run's `--seconds` (its six stages share it).
const STAGE_RUN_FACTOR: u64 = 3;

/// The stage phase's keys from `bench-run --stages`'s JSON: `stages` (each stage's Mpps, ns
/// per packet, frames and seconds), `stage_costs_ns` (what each stage adds per packet to the
/// one before it), and the in-process ratios. Nulls when the phase did not run.
fn stage_summary(detail: &Value) -> Value {
    let list = detail.get("stages").and_then(Value::as_array);
    let mut stages = Map::new();
    for s in list.into_iter().flatten() {
        if let Some(name) = s.get("stage").and_then(Value::as_str) {
            let f = |k: &str| s.get(k).and_then(Value::as_f64);
            stages.insert(
                name.to_owned(),
                json!({
                    "mpps": round(f("mpps"), 3),
                    "ns_per_packet": round(f("ns_per_packet"), 2),
                    "packets": s.get("packets").cloned().unwrap_or(Value::Null),
                    "seconds": round(f("seconds"), 3),
                }),
            );
        }
    }
    let mpps = |name: &str| {
        stages
            .get(name)
            .and_then(|s| s.get("mpps"))
            .and_then(Value::as_f64)
            .filter(|m| *m > 0.0)
    };
    let ns = |name: &str| ns_per_packet(mpps(name));
    let step = |a: &str, b: &str| round(ns(b).zip(ns(a)).map(|(b, a)| b - a), 2);
    json!({
        "stage_seconds": detail.get("elapsed_ns").and_then(Value::as_f64).map(|n| round(Some(n / 1e9), 3)),
        "stage_ratio_pipeline_vs_io_loop": round(ratio(mpps("pipeline"), mpps("io_loop")), 3),
        "stage_ratio_minimal_gre_vs_io_loop": round(ratio(mpps("minimal_gre"), mpps("io_loop")), 3),
        "stage_ratio_pipeline_vs_minimal_gre": round(ratio(mpps("pipeline"), mpps("minimal_gre")), 3),
        "stage_costs_ns": {
            "drivers": round(ns("io_loop"), 2),
            "worker_structure": step("io_loop", "forward"),
            "read_loop": step("forward", "read"),
            "vector_pass": step("read", "pre_pass"),
            "decide_rewrite_count": step("pre_pass", "pipeline"),
            "minimal_gre_over_forward": step("forward", "minimal_gre"),
        },
        "stages": Value::Object(stages),
    })
}

/// The result as a table.
pub fn render(v: &Value) -> String {
    let f = |k: &str| v.get(k).and_then(Value::as_f64);
    let num = |x: Option<f64>, d: usize| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.d$}"));
    let mut s = String::new();
    let m = &v["machine"];
    let _ = writeln!(
        s,
        "wccpd bench: {} ({} CPUs, kernel {}, DPDK {}), {} s per phase after {} s warm-up, load {} -> {}",
        m["cpu"].as_str().unwrap_or("?"),
        m["nproc"],
        m["kernel"].as_str().unwrap_or("?"),
        m["dpdk"].as_str().unwrap_or("?"),
        v["seconds"],
        v["warmup_seconds"],
        v["loadavg"]["start"].as_str().unwrap_or("?"),
        v["loadavg"]["end"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        s,
        "traffic: {} flows, 64-octet frames: 80 % redirected (GRE), 15 % routed, 5 % GRE returns; one worker lcore",
        v["flows"]
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<44} {:>10} {:>10}", "case", "Mpps", "ns/packet");
    let rows = [
        ("pipeline (net_pcap replay)", "pipeline_mpps"),
        ("testpmd io (same replay)", "testpmd_io_mpps"),
        ("testpmd 5tswap (same replay)", "testpmd_5tswap_mpps"),
        (
            "testpmd io, replay -> net_null (our ports)",
            "testpmd_io_null_egress_mpps",
        ),
        ("pipeline, no hugepages", "nohuge_pipeline_mpps"),
        ("testpmd io, no hugepages", "nohuge_testpmd_io_mpps"),
        ("pipeline on net_null (drop path)", "null_pipeline_mpps"),
        ("testpmd io on net_null", "null_testpmd_io_mpps"),
        ("pipeline, IMIX 7:4:1", "imix_mpps"),
        ("testpmd io, IMIX 7:4:1", "testpmd_io_imix_mpps"),
    ];
    for (label, key) in rows {
        let mpps = f(key);
        let _ = writeln!(
            s,
            "{label:<44} {:>10} {:>10}",
            num(mpps, 2),
            num(ns_per_packet(mpps), 1)
        );
    }
    let multi = format!("pipeline, {} workers", v["multi_workers"]);
    let _ = writeln!(
        s,
        "{multi:<44} {:>10} {:>10}{}",
        num(f("multi_worker_mpps"), 2),
        num(ns_per_packet(f("multi_worker_mpps")), 1),
        v["workers2_note"]
            .as_str()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default()
    );
    let multi_io = format!("testpmd io, {} cores (same layout)", v["multi_workers"]);
    let _ = writeln!(
        s,
        "{multi_io:<44} {:>10} {:>10}",
        num(f("multi_testpmd_io_mpps"), 2),
        num(ns_per_packet(f("multi_testpmd_io_mpps")), 1),
    );
    let _ = writeln!(s);
    // The spread of a ratio over the rounds, each from its own round's pair.
    let spread = |key: &str| {
        let r: Vec<f64> = v[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let lo = r.iter().copied().reduce(f64::min);
        let hi = r.iter().copied().reduce(f64::max);
        match (lo, hi) {
            (Some(lo), Some(hi)) => format!(" (rounds {lo:.3}-{hi:.3})"),
            _ => String::new(),
        }
    };
    let _ = writeln!(
        s,
        "ratio pipeline / testpmd io:     {}{}   (target >= 0.8)",
        num(f("ratio_vs_io"), 3),
        spread("ratio_vs_io_rounds")
    );
    let _ = writeln!(
        s,
        "ratio pipeline / testpmd 5tswap: {}{}   (target >= 0.9)",
        num(f("ratio_vs_5tswap"), 3),
        spread("ratio_vs_5tswap_rounds")
    );
    let _ = writeln!(
        s,
        "ratio pipeline / testpmd io to net_null (the pipeline's port layout): {}",
        num(f("ratio_vs_io_null_egress"), 3)
    );
    let _ = writeln!(
        s,
        "ratio pipeline / testpmd io with {} workers: {}",
        v["multi_workers"],
        num(f("multi_ratio_vs_io"), 3)
    );
    let _ = writeln!(
        s,
        "IMIX: pipeline {} Gbps, testpmd io {} Gbps (ratio {})",
        num(f("imix_gbps"), 2),
        num(f("testpmd_io_imix_gbps"), 2),
        num(f("imix_ratio_vs_io"), 3)
    );
    if let Some(verdicts) = v["pipeline_verdicts"].as_object() {
        let rx = verdicts.get("rx").and_then(Value::as_f64).unwrap_or(0.0);
        if rx > 0.0 {
            let parts: Vec<String> = verdicts
                .iter()
                .filter(|(k, _)| *k != "rx")
                .map(|(k, n)| format!("{k} {:.1} %", n.as_f64().unwrap_or(0.0) * 100.0 / rx))
                .collect();
            let _ = writeln!(s, "pipeline verdicts: {}", parts.join(", "));
        }
    }
    let _ = writeln!(
        s,
        "swaps: {} tables at {}/s; {} frames sent, {} back; lost {}, missent {}, duplicated {}, dropped {}",
        v["swaps"],
        v["swap_rate"],
        v["swap_sent_packets"],
        v["swap_received_packets"],
        v["swap_lost_packets"],
        v["swap_missent_packets"],
        v["swap_duplicated_packets"],
        v["swap_dropped_packets"],
    );
    if let Some(stages) = v["stages"].as_object().filter(|st| !st.is_empty()) {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "where the cycles go: one process taking turns between the pipeline and loops that \
             stop at one of its stages ({} s, the replay, egress net_null)",
            num(f("stage_seconds"), 1)
        );
        let _ = writeln!(
            s,
            "{:<44} {:>10} {:>10} {:>10}",
            "stage", "Mpps", "ns/packet", "+ns"
        );
        let costs = &v["stage_costs_ns"];
        let labels = [
            (
                "io_loop",
                "RX -> TX as received (testpmd io's loop)",
                "drivers",
            ),
            (
                "forward",
                "+ the worker's TX buffering, untouched",
                "worker_structure",
            ),
            ("read", "+ the pre-pass's read loop", "read_loop"),
            ("pre_pass", "+ its vector pass", "vector_pass"),
            (
                "pipeline",
                "the pipeline (+ decide, rewrite, counters)",
                "decide_rewrite_count",
            ),
            (
                "minimal_gre",
                "minimal GRE, no checks (+ns over forward)",
                "minimal_gre_over_forward",
            ),
        ];
        for (key, label, cost) in labels {
            let st = &stages.get(key).cloned().unwrap_or(Value::Null);
            let _ = writeln!(
                s,
                "{label:<44} {:>10} {:>10} {:>10}",
                num(st["mpps"].as_f64(), 2),
                num(st["ns_per_packet"].as_f64(), 2),
                num(costs[cost].as_f64(), 2),
            );
        }
        let _ = writeln!(
            s,
            "in one process: pipeline / io loop {}, minimal GRE / io loop {}, pipeline / minimal GRE {}",
            num(f("stage_ratio_pipeline_vs_io_loop"), 3),
            num(f("stage_ratio_minimal_gre_vs_io_loop"), 3),
            num(f("stage_ratio_pipeline_vs_minimal_gre"), 3),
        );
    }
    if let Some(e) = v["errors"].as_object().filter(|e| !e.is_empty()) {
        let _ = writeln!(s);
        for (k, msg) in e {
            let _ = writeln!(s, "{k}: {}", msg.as_str().unwrap_or(""));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testpmd_blocks_parse() {
        let block = |pps: u64| {
            format!(
                "\x1b[2J\x1b[1;1H\nPort statistics ====================================\n  ######################## NIC statistics for port 0  ########################\n  RX-packets: 1 RX-missed: 0 RX-bytes: 64\n  Throughput (since last show)\n  Rx-pps: {pps:>12}          Rx-bps: {:>12}\n  Tx-pps: {pps:>12}          Tx-bps: 0\n  ############################################################################\n",
                pps * 512
            )
        };
        let text = format!(
            "{}{}{}Port statistics ====\n  Rx-pps: 5",
            block(0),
            block(10_000_000),
            block(9_000_000)
        );
        let s = testpmd_samples(&text);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[1], (10_000_000.0, 5_120_000_000.0));
    }

    #[test]
    fn configurations_load() {
        let dir = Path::new("/tmp/x");
        let setup = PipelineSetup {
            client: "net_pcap0,rx_pcap=/tmp/x/flows.pcap,infinite_rx=1".into(),
            server: "net_null1,no-rx=1".into(),
            cache: "net_null2,no-rx=1".into(),
            eal: vec!["--in-memory".into(), "--file-prefix".into(), "p".into()],
            mbufs: REPLAY_MBUFS,
            workers: 1,
        };
        let s = config::router_from_str(&pipeline_yaml(dir, "a", &setup)).unwrap();
        let dp = s.dataplane.unwrap();
        assert_eq!((dp.ports.len(), dp.neighbours.len()), (3, 5));
        let s = config::router_from_str(&swap_yaml(dir, "b", &["--no-huge".into()])).unwrap();
        assert_eq!(s.dataplane.unwrap().ports.len(), 1);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
    }
}
