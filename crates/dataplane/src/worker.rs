//! The worker lcore's poll loop (l3fwd's shape): per port, RX a burst (up to eight while they
//! come full), run every packet through the pipeline
//! ([`process`](crate::pipeline::process)), buffer TX per port (flushed when full or after a
//! drain interval), hand punts to the control lcore in bursts, send the control lcore's
//! injected frames, then report a quiescent state to the RCU cell.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::buf::{Batch, BatchOps, Channel, PacketBuf, PortQueue, BURST};
use crate::counters::{LcoreCounters, Reason};
use crate::lanes::Lanes;
use crate::pipeline::{process_received, Action, Ctx, InPort, RateLimit};
use crate::stages::{minimal_gre, Stage, StageCycle};
use crate::tables::Tables;

/// RX bursts taken from one port in one poll at most, while they come full.
const BURSTS_PER_POLL: usize = 8;

/// One worker: owns one RX/TX queue pair on every port, its end of the punt and inject
/// channels, an RCU reader and its counters.
pub struct Worker<P: PortQueue, C: Channel<Buf = P::Buf>> {
    ports: Vec<P>,
    tx: Vec<Batch<P::Buf>>,
    punt: C,
    punt_out: Batch<P::Buf>,
    /// The fast path's burst pre-pass, reused for every burst.
    lanes: Box<Lanes>,
    inject: C,
    reader: rcu::Reader<Tables>,
    counters: Arc<LcoreCounters>,
    icmp: RateLimit,
    drain_ticks: u64,
    last_flush: u64,
    /// `wccpd bench`'s stage cycle (`None` in a router), with the stage and start of the
    /// last poll.
    stages: Option<Arc<StageCycle>>,
    last_poll: (Stage, u64),
}

impl<P: PortQueue, C: Channel<Buf = P::Buf>> std::fmt::Debug for Worker<P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("ports", &self.ports.len())
            .finish_non_exhaustive()
    }
}

/// What one [`Worker::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Frames received from ports.
    pub rx: usize,
    /// Frames taken from the inject channel.
    pub injected: usize,
}

impl PollStats {
    /// `true` when nothing arrived.
    pub fn idle(&self) -> bool {
        self.rx == 0 && self.injected == 0
    }
}

impl<P: PortQueue, C: Channel<Buf = P::Buf>> Worker<P, C> {
    /// A worker over `ports` (index = data-plane port index). `hz` is the clock rate of the
    /// `now` values given to [`Worker::poll`]; `drain_us` the TX drain interval.
    pub fn new(
        ports: Vec<P>,
        punt: C,
        inject: C,
        reader: rcu::Reader<Tables>,
        counters: Arc<LcoreCounters>,
        hz: u64,
        drain_us: u64,
    ) -> Self {
        let tx = ports.iter().map(|_| Batch::<P::Buf>::default()).collect();
        Worker {
            ports,
            tx,
            punt,
            punt_out: Batch::<P::Buf>::default(),
            lanes: Box::default(),
            inject,
            reader,
            counters,
            // RFC 1812 asks for rate-limited ICMP errors; 1000/s with a burst of 100.
            icmp: RateLimit::new(1000, 100, hz),
            drain_ticks: hz / 1_000_000 * drain_us.max(1),
            last_flush: 0,
            stages: None,
            last_poll: (Stage::Pipeline, 0),
        }
    }

    /// This worker taking turns between the pipeline and the reference loops of `cycle`
    /// ([`crate::stages`]; `wccpd bench` only).
    #[must_use]
    pub fn with_stages(mut self, cycle: Arc<StageCycle>) -> Self {
        self.stages = Some(cycle);
        self
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Arc<LcoreCounters> {
        &self.counters
    }

    /// The ports (tests read what was sent).
    pub fn ports(&self) -> &[P] {
        &self.ports
    }

    /// The ports, mutable (tests feed frames).
    pub fn ports_mut(&mut self) -> &mut [P] {
        &mut self.ports
    }

    /// One loop iteration at time `now`.
    pub fn poll(&mut self, now: u64) -> PollStats {
        if self.stages.is_some() {
            return self.poll_staged(now);
        }
        self.poll_pipeline(now)
    }

    /// [`Worker::poll`] under a stage cycle: the stage whose slice holds `now`, and the
    /// previous poll's frames and time counted to its stage.
    #[inline(never)]
    fn poll_staged(&mut self, now: u64) -> PollStats {
        // Out of the worker for this poll (the poll borrows the worker whole), then back.
        let Some(cycle) = self.stages.take() else {
            return self.poll_pipeline(now);
        };
        let stage = cycle.stage_at(now);
        let stats = match stage {
            Stage::Pipeline => self.poll_pipeline(now),
            s => self.poll_reference(s, cycle.egress(), now),
        };
        let (last, at) = self.last_poll;
        if at != 0 {
            cycle.record(last, 0, now.wrapping_sub(at));
        }
        cycle.record(stage, stats.rx as u64, 0);
        self.last_poll = (stage, now);
        self.stages = Some(cycle);
        stats
    }

    /// One iteration of a reference loop ([`Stage`]) at time `now`, sending to `egress` (a
    /// port it does not have: every frame dropped, in bulk).
    fn poll_reference(&mut self, stage: Stage, egress: u16, now: u64) -> PollStats {
        let Worker {
            ports,
            tx,
            lanes,
            reader,
            counters,
            ..
        } = self;
        let counters: &LcoreCounters = counters;
        let mut stats = PollStats::default();
        let tables = reader.read();
        let lane = tables.lane.as_ref().and_then(|l| {
            let fs = tables.services.get(l.index)?.fast.as_deref()?;
            Some((l, fs))
        });
        let e = usize::from(egress);
        stats.rx = each_burst(ports, |ports, in_port, rx| {
            if e >= ports.len() {
                rx.clear();
                return;
            }
            let inp = InPort::of(tables, in_port);
            match stage {
                Stage::IoLoop => {
                    let n = rx.len();
                    if ports[e].tx_burst(rx) < n {
                        rx.clear();
                    }
                }
                Stage::MinimalGre => rx.drain_each(|_, mut b| {
                    let p = lane.and_then(|(l, fs)| minimal_gre(l, fs, &mut b));
                    push_tx(ports, tx, counters, p.unwrap_or(egress), b);
                }),
                _ => {
                    match stage {
                        Stage::Read => lanes.read_only(tables, counters, inp, rx.as_slice()),
                        Stage::PrePass => {
                            lanes.read(tables, counters, inp, rx.as_slice());
                        }
                        _ => {}
                    }
                    rx.drain_each(|_, b| push_tx(ports, tx, counters, egress, b));
                }
            }
        });
        self.end_poll(&mut stats, now);
        stats
    }

    /// [`Worker::poll`]'s pipeline (out of line: the per-packet closure inlines into it).
    #[inline(never)]
    fn poll_pipeline(&mut self, now: u64) -> PollStats {
        let Worker {
            ports,
            tx,
            punt,
            punt_out,
            lanes,
            reader,
            counters,
            icmp,
            ..
        } = self;
        let counters: &LcoreCounters = counters;
        let mut stats = PollStats::default();
        {
            let tables = reader.read();
            let mut cx = Ctx {
                tables,
                counters,
                icmp,
                now,
            };
            let mut dropped = Batch::<P::Buf>::default();
            stats.rx = each_burst(ports, |ports, in_port, rx| {
                let n = rx.len();
                // `rx` once per burst; `process_received` counts each frame's one terminal
                // reason, so both are exact again before this poll returns.
                counters.add(Reason::Rx, n as u64);
                // The arrival port's entry, once per burst.
                let inp = InPort::of(tables, in_port);
                // The burst's header checks and hashes at once, when the tables allow.
                let lane = lanes.read(tables, counters, inp, rx.as_slice());
                let mut out = Out {
                    ports,
                    tx,
                    counters,
                    punt,
                    punt_out,
                    dropped: &mut dropped,
                    in_port,
                };
                match lane {
                    Some(l) => {
                        rx.drain_each(|i, mut b| {
                            match lanes.decide(&mut cx, inp, l, i, &mut b) {
                                Some(p) => out.tx(p, b),
                                // The frames the pass left (few): out of line, on a binding
                                // of their own, so that only they are stored for the call
                                // (`b` above stays in a register).
                                None => {
                                    lanes.declined(l, i);
                                    let mut usual = b;
                                    let a = process_usual(&mut cx, in_port, inp, &mut usual);
                                    out.emit(a, usual);
                                }
                            }
                        });
                        lanes.finish(counters, l);
                    }
                    // No lane service, or a burst the pass skipped: every frame inline.
                    None => rx.drain_each(|_, mut b| {
                        let a = process_received(&mut cx, in_port, inp, &mut b);
                        out.emit(a, b);
                    }),
                }
                if !dropped.is_empty() {
                    dropped.clear();
                }
            });
        }
        self.end_poll(&mut stats, now);
        stats
    }

    /// The end of every poll: the control lcore's frames, the punts, the TX drain and the
    /// quiescent state.
    #[inline(always)]
    fn end_poll(&mut self, stats: &mut PollStats, now: u64) {
        let Worker {
            ports,
            tx,
            punt,
            punt_out,
            inject,
            counters,
            ..
        } = self;
        let counters: &LcoreCounters = counters;
        // Frames the control lcore built (ARP, WCCP, ICMP, released held packets).
        let mut inj = Batch::<P::Buf>::default();
        inject.recv(&mut inj);
        stats.injected = inj.len();
        for b in inj.drain_all() {
            let p = b.port();
            if usize::from(p) < ports.len() {
                counters.count(Reason::Injected);
                push_tx(ports, tx, counters, p, b);
            } else {
                counters.count(Reason::InjectBadPort);
            }
        }
        if !punt_out.is_empty() {
            send_punts(punt, punt_out, counters);
        }
        if stats.rx == 0 || now.wrapping_sub(self.last_flush) >= self.drain_ticks {
            for (p, q) in self.tx.iter_mut().enumerate() {
                if !q.is_empty() {
                    flush(&mut self.ports[p], q, &self.counters);
                }
            }
            self.last_flush = now;
        }
        self.reader.quiescent();
    }

    /// Sends everything buffered (shutdown).
    pub fn flush_all(&mut self) {
        for (p, q) in self.tx.iter_mut().enumerate() {
            if !q.is_empty() {
                flush(&mut self.ports[p], q, &self.counters);
            }
        }
    }

    /// Takes the RCU reader offline (on exit, or on a panic's way out).
    pub fn offline(&mut self) {
        self.reader.offline();
    }
}

/// The RX side of every poll (the pipeline's and the stage cycle's): per port in turn, RX into
/// an empty burst of the full size and hand each non-empty burst to `f` with the ports and
/// the arrival port; a port that fills its burst is polled again, up to [`BURSTS_PER_POLL`]
/// times, before the next. Under load the poll's fixed costs (the other ports' empty polls,
/// the inject ring, the drain check, the quiescent state) are so shared by more packets, and
/// the other ports wait at most that many bursts. `f` leaves the burst empty. Frames received.
#[inline(always)]
#[allow(clippy::ptr_arg)] // The `Vec` itself, as `push_tx` takes it.
fn each_burst<P: PortQueue>(
    ports: &mut Vec<P>,
    mut f: impl FnMut(&mut Vec<P>, u16, &mut Batch<P::Buf>),
) -> usize {
    let mut rx = Batch::<P::Buf>::default();
    let mut total = 0;
    for in_port in 0..ports.len() {
        for _ in 0..BURSTS_PER_POLL {
            ports[in_port].rx_burst(&mut rx);
            let n = rx.len();
            if n == 0 {
                break;
            }
            total += n;
            f(ports, in_port as u16, &mut rx);
            if n < BURST {
                break;
            }
        }
    }
    total
}

/// Where the burst loop sends its frames: the TX batches, the punt channel, or the drop
/// batch.
struct Out<'a, P: PortQueue, C: Channel<Buf = P::Buf>> {
    ports: &'a mut Vec<P>,
    tx: &'a mut [Batch<P::Buf>],
    counters: &'a LcoreCounters,
    punt: &'a mut C,
    punt_out: &'a mut Batch<P::Buf>,
    dropped: &'a mut Batch<P::Buf>,
    /// The burst's arrival port.
    in_port: u16,
}

impl<P: PortQueue, C: Channel<Buf = P::Buf>> Out<'_, P, C> {
    /// Sends `b` on `port` (buffered).
    #[inline(always)]
    fn tx(&mut self, port: u16, b: P::Buf) {
        push_tx(self.ports, self.tx, self.counters, port, b);
    }

    /// Carries out `a` for `b`.
    #[inline(always)]
    fn emit(&mut self, a: Action, mut b: P::Buf) {
        match a {
            Action::Tx(p) => self.tx(p, b),
            Action::Punt => {
                // A held frame (next hop unresolved) already names its egress port;
                // everything else goes up with its arrival port.
                if !is_held(&b) {
                    b.set_port(self.in_port);
                }
                self.punt_out.push(b);
                if self.punt_out.is_full() {
                    send_punts(self.punt, self.punt_out, self.counters);
                }
            }
            Action::Drop(_) => {
                // At most one burst is received at a time, so this never fills.
                self.dropped.push(b);
            }
        }
    }
}

/// [`process_received`] out of line, for the frames the burst pre-pass leaves (few): the
/// per-packet loop stays small enough for its registers.
#[inline(never)]
fn process_usual<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    inp: InPort<'_>,
    b: &mut B,
) -> Action {
    process_received(cx, in_port, inp, b)
}

/// A frame the pipeline half-built for an unresolved next hop (zero destination MAC).
pub fn is_held<B: PacketBuf>(b: &B) -> bool {
    b.as_ref().get(..6) == Some(&[0u8; 6][..])
}

/// Buffers `b` for `port`, sending the port's batch when it is full. Always inlined: it runs
/// for nearly every packet, and out of line it cost a call and a spill of the loop's state.
/// The ports are passed whole (`&mut Vec`), so that only the rare flush reads their slice.
#[inline(always)]
#[allow(clippy::ptr_arg)] // The `Vec` itself, not its slice: see above.
fn push_tx<P: PortQueue>(
    ports: &mut Vec<P>,
    tx: &mut [Batch<P::Buf>],
    counters: &LcoreCounters,
    port: u16,
    b: P::Buf,
) {
    let p = usize::from(port);
    let q = &mut tx[p];
    q.push(b);
    if q.is_full() {
        flush_port(ports, q, p, counters);
    }
}

/// [`flush`] of port `p` for [`push_tx`], out of line.
#[inline(never)]
fn flush_port<P: PortQueue>(
    ports: &mut [P],
    q: &mut Batch<P::Buf>,
    p: usize,
    counters: &LcoreCounters,
) {
    match ports.get_mut(p) {
        Some(port) => flush(port, q, counters),
        None => {
            // Never: there is a batch per port.
            counters.add(Reason::TxFull, q.len() as u64);
            q.clear();
        }
    }
}

/// Sends a port's batch: once per 32 packets at most, kept out of line so the per-packet
/// loop stays small.
#[inline(never)]
fn flush<P: PortQueue>(port: &mut P, q: &mut Batch<P::Buf>, counters: &LcoreCounters) {
    let n = q.len();
    let sent = port.tx_burst(q);
    if sent < n {
        counters.add(Reason::TxFull, (n - sent) as u64);
    }
}

fn send_punts<C: Channel>(punt: &mut C, out: &mut Batch<C::Buf>, counters: &LcoreCounters) {
    punt.send(out);
    if !out.is_empty() {
        counters.add(Reason::PuntRingFull, out.len() as u64);
        out.clear();
    }
}

/// Sets the stop flag when a worker unwinds, so every lcore stops and the daemon exits
/// non-zero naming the worker (the lcore launcher returns the panic as an error).
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// A worker lcore's whole life: poll until `stop`, then flush what is buffered and take the
/// RCU reader offline. With `backoff`, empty polls are followed by short sleeps (labs and CI
/// share their CPUs with the kernel's TAP side); never while packets arrive. If the pipeline
/// panics, `stop` is set and the reader goes offline as the worker is dropped during unwinding.
pub fn run<P: PortQueue, C: Channel<Buf = P::Buf>>(
    mut w: Worker<P, C>,
    stop: &AtomicBool,
    backoff: bool,
    clock: impl Fn() -> u64,
) {
    let _guard = StopOnPanic(stop);
    let mut idle: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let s = w.poll(clock());
        if s.idle() {
            idle = idle.saturating_add(1);
            if backoff && idle > 64 {
                std::thread::sleep(Duration::from_micros(if idle > 4096 { 500 } else { 50 }));
            }
        } else {
            idle = 0;
        }
    }
    w.flush_all();
    w.offline();
}
