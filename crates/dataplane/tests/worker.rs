//! The worker's poll loop over `VecPort`s and `VecChannel`s: frames out of the right port, punts
//! with the right port, injected frames, TX buffering, full TX queues and punt rings, and the
//! switch to a newly published table with the old one reclaimed after the worker's quiescent
//! report.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use support::*;
use wccp_dataplane::buf::{Batch, Channel, VecChannel, VecPort};
use wccp_dataplane::tables::Tables;
use wccp_dataplane::{LcoreCounters, PacketBuf, Reason, VecBuf, Worker};

/// A `VecChannel` the test and the worker share (the worker owns its channel ends).
#[derive(Clone)]
struct Shared(Rc<RefCell<VecChannel>>);

impl Shared {
    fn new(capacity: usize) -> Shared {
        Shared(Rc::new(RefCell::new(VecChannel::new(capacity))))
    }
    fn take(&self) -> Vec<VecBuf> {
        self.0.borrow_mut().queue.drain(..).collect()
    }
    fn push(&self, b: VecBuf) {
        self.0.borrow_mut().queue.push_back(b);
    }
}

impl Channel for Shared {
    type Buf = VecBuf;
    fn send(&mut self, pkts: &mut Batch<VecBuf>) {
        self.0.borrow_mut().send(pkts);
    }
    fn recv(&mut self, out: &mut Batch<VecBuf>) {
        self.0.borrow_mut().recv(out);
    }
}

/// 1 GHz clock, 100 µs TX drain interval.
const HZ: u64 = 1_000_000_000;
const DRAIN: u64 = 100_000;

struct Rig {
    worker: Worker<VecPort, Shared>,
    punt: Shared,
    inject: Shared,
    publisher: rcu::Publisher<Tables>,
}

fn rig_with(lab: &Lab, punt_capacity: usize) -> Rig {
    let (publisher, mut readers) = rcu::cell(Box::new(lab.tables()), 1);
    let punt = Shared::new(punt_capacity);
    let inject = Shared::new(64);
    let worker = Worker::new(
        (0..3).map(|_| VecPort::default()).collect(),
        punt.clone(),
        inject.clone(),
        readers.remove(0),
        Arc::new(LcoreCounters::default()),
        HZ,
        DRAIN / 1_000,
    );
    Rig {
        worker,
        punt,
        inject,
        publisher,
    }
}

fn rig() -> Rig {
    rig_with(&Lab::new(), 64)
}

impl Rig {
    /// Queues a frame for reception on `port` (the buffer's own port is wrong on purpose: the
    /// worker must not trust it).
    fn rx(&mut self, port: u16, frame: &[u8]) {
        self.worker.ports_mut()[usize::from(port)]
            .rx
            .push_back(VecBuf::new(99, frame));
    }
    /// Frames sent on `port` so far.
    fn tx(&self, port: u16) -> &[VecBuf] {
        &self.worker.ports()[usize::from(port)].tx
    }
    fn count(&self, r: Reason) -> u64 {
        self.worker.counters().get(r)
    }
    /// A poll with traffic at `now`, then an idle one that flushes TX.
    fn poll_flush(&mut self, now: u64) {
        self.worker.poll(now);
        self.worker.poll(now + 1);
    }
}

fn routed_input() -> Tcp {
    Tcp::new(CLIENT_IP, SERVER_IP, 40000, 22)
}

#[test]
fn frame_leaves_on_its_egress_port() {
    let mut r = rig();
    r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &routed_input().ip()));
    r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip()));
    r.poll_flush(0);
    assert_eq!(r.tx(SERVER).len(), 1);
    assert_eq!(
        r.tx(SERVER)[0].as_ref(),
        &from_port(SERVER, SERVER_MAC, &routed_input().ttl(63).ip())[..]
    );
    assert_eq!(r.tx(CACHE).len(), 1, "the redirected one");
    assert_eq!(&r.tx(CACHE)[0].as_ref()[..6], &CACHE_A_MAC);
    assert!(r.tx(CLIENT).is_empty());
    assert_eq!(
        (
            r.count(Reason::Rx),
            r.count(Reason::Routed),
            r.count(Reason::RedirectedGre)
        ),
        (2, 1, 1)
    );
}

#[test]
fn tx_is_buffered_until_the_drain_interval() {
    let mut r = rig();
    r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &routed_input().ip()));
    r.worker.poll(0);
    assert!(r.tx(SERVER).is_empty(), "buffered");
    r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &routed_input().ip()));
    r.worker.poll(DRAIN / 2);
    assert!(r.tx(SERVER).is_empty(), "still within the drain interval");
    r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &routed_input().ip()));
    r.worker.poll(DRAIN);
    assert_eq!(r.tx(SERVER).len(), 3);
}

#[test]
fn full_tx_buffer_is_sent_at_once() {
    let mut r = rig();
    for _ in 0..wccp_dataplane::BURST {
        r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &routed_input().ip()));
    }
    r.worker.poll(0);
    assert_eq!(r.tx(SERVER).len(), wccp_dataplane::BURST);
}

/// A port whose bursts come full is polled again, up to eight bursts in one poll; then the
/// other ports get their turn, and the rest waits for the next poll.
#[test]
fn a_busy_port_gives_up_to_eight_bursts_per_poll() {
    let burst = wccp_dataplane::BURST;
    let mut r = rig();
    for _ in 0..9 * burst {
        r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &routed_input().ip()));
    }
    let reply = Tcp::new(SERVER_IP, CLIENT_IP, 22, 40000);
    r.rx(SERVER, &to_port(SERVER, GW_MAC, &reply.ip()));
    let s = r.worker.poll(0);
    assert_eq!(
        s.rx,
        8 * burst + 1,
        "eight full bursts, then the server port's frame"
    );
    assert_eq!(
        r.tx(SERVER).len(),
        8 * burst,
        "each full TX burst sent at once"
    );
    assert_eq!(
        r.worker.poll(1).rx,
        burst,
        "the ninth burst, in the next poll"
    );
    assert_eq!(r.count(Reason::Rx), 9 * burst as u64 + 1);
    assert_eq!(r.count(Reason::Routed), 9 * burst as u64 + 1);
}

#[test]
fn punts_carry_the_arrival_port() {
    let mut r = rig();
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&CACHE_A_MAC);
    arp.extend_from_slice(&CACHE_A.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&PORT_IP[2].octets());
    let frame = eth([0xff; 6], CACHE_A_MAC, 0x0806, &arp);
    r.rx(CACHE, &frame);
    r.worker.poll(0);
    let punts = r.punt.take();
    assert_eq!(punts.len(), 1);
    assert_eq!(punts[0].port(), CACHE);
    assert_eq!(punts[0].as_ref(), &frame[..]);
    assert_eq!(r.count(Reason::Punted), 1);
}

#[test]
fn held_frames_carry_the_egress_port() {
    let mut r = rig();
    let input = Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22);
    r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    r.worker.poll(0);
    let punts = r.punt.take();
    assert_eq!(punts.len(), 1);
    assert_eq!(punts[0].port(), SERVER);
    assert_eq!(
        punts[0].as_ref(),
        &from_port(SERVER, [0; 6], &input.ttl(63).ip())[..]
    );
}

#[test]
fn injected_frames_go_out_on_the_port_they_name() {
    let mut r = rig();
    let frame = from_port(SERVER, SERVER_MAC, &routed_input().ip());
    r.inject.push(VecBuf::new(SERVER, &frame));
    r.inject.push(VecBuf::new(9, &frame));
    r.worker.poll(0);
    assert_eq!(r.tx(SERVER).len(), 1);
    assert_eq!(r.tx(SERVER)[0].as_ref(), &frame[..]);
    assert!(r.tx(CLIENT).is_empty() && r.tx(CACHE).is_empty());
    assert_eq!(r.count(Reason::Injected), 1);
    assert_eq!(r.count(Reason::InjectBadPort), 1);
    assert_eq!(r.count(Reason::Rx), 0);
}

#[test]
fn full_tx_queue_counts_tx_full() {
    let mut r = rig();
    r.worker.ports_mut()[usize::from(SERVER)].tx_limit = Some(1);
    for _ in 0..3 {
        r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &routed_input().ip()));
    }
    r.poll_flush(0);
    assert_eq!(r.tx(SERVER).len(), 1);
    assert_eq!(r.count(Reason::TxFull), 2);
}

#[test]
fn full_punt_ring_counts_punt_ring_full() {
    let mut r = rig_with(&Lab::new(), 1);
    for _ in 0..3 {
        let input = Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22);
        r.rx(CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    }
    r.worker.poll(0);
    assert_eq!(r.punt.take().len(), 1);
    assert_eq!(r.count(Reason::PuntRingFull), 2);
    assert_eq!(r.count(Reason::Punted), 3);
}

#[test]
fn published_table_is_used_on_the_next_poll_and_the_old_one_reclaimed() {
    let mut r = rig();
    let frame = to_port(
        CLIENT,
        CLIENT_MAC,
        &Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22).ip(),
    );
    r.rx(CLIENT, &frame);
    r.poll_flush(0);
    assert_eq!(r.punt.take().len(), 1, "unresolved in the first table");
    // A new table that knows the host.
    let mut lab = Lab::new();
    lab.topo.neighbours.push((UNKNOWN_IP, UNKNOWN_MAC));
    r.publisher.publish(Box::new(lab.tables()));
    assert_eq!(
        r.publisher.reclaim(),
        0,
        "the worker has not passed a quiescent point"
    );
    r.rx(CLIENT, &frame);
    r.poll_flush(10);
    assert_eq!(r.tx(SERVER).len(), 1, "routed with the new table");
    assert_eq!(&r.tx(SERVER)[0].as_ref()[..6], &UNKNOWN_MAC);
    assert!(r.punt.take().is_empty());
    assert!(r.publisher.reclaim() > 0);
    assert_eq!(r.publisher.pending(), 0);
}

#[test]
fn every_received_frame_counts_one_verdict() {
    let mut r = rig();
    let frames = [
        to_port(CLIENT, CLIENT_MAC, &routed_input().ip()),
        to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip()),
        to_port(CLIENT, CLIENT_MAC, &Tcp::web(NOWHERE).ip()),
        to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ttl(1).ip()),
        to_port(
            CLIENT,
            CLIENT_MAC,
            &Tcp::new(CLIENT_IP, UNKNOWN_IP, 1, 2).ip(),
        ),
        vec![1, 2, 3],
    ];
    for f in &frames {
        r.rx(CLIENT, f);
    }
    r.poll_flush(0);
    let terminal: u64 = Reason::ALL
        .iter()
        .filter(|x| x.is_terminal())
        .map(|x| r.count(*x))
        .sum();
    assert_eq!(r.count(Reason::Rx), frames.len() as u64);
    assert_eq!(terminal, frames.len() as u64);
}

/// A port whose receive path panics on its third poll (a bug in the pipeline, say).
struct Faulty(u32);

impl wccp_dataplane::buf::PortQueue for Faulty {
    type Buf = VecBuf;
    fn rx_burst(&mut self, _out: &mut Batch<VecBuf>) {
        self.0 += 1;
        assert!(self.0 < 3, "injected fault in the receive path");
    }
    fn tx_burst(&mut self, pkts: &mut Batch<VecBuf>) -> usize {
        let n = pkts.len();
        pkts.clear();
        n
    }
}

#[test]
fn a_panicking_worker_stops_everyone_and_goes_offline() {
    let lab = Lab::new();
    let (mut publisher, mut readers) = rcu::cell(Box::new(lab.tables()), 1);
    let worker = Worker::new(
        vec![Faulty(0)],
        VecChannel::new(8),
        VecChannel::new(8),
        readers.remove(0),
        Arc::new(LcoreCounters::default()),
        HZ,
        100,
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let joined = std::thread::spawn(move || {
        wccp_dataplane::worker::run(worker, &flag, false, || 0);
    })
    .join();
    assert!(joined.is_err(), "the fault must surface as a panic");
    assert!(
        stop.load(std::sync::atomic::Ordering::SeqCst),
        "the stop flag tells the other lcores and the daemon"
    );
    // The dead worker's reader is offline: a new table's predecessor is reclaimable at once.
    publisher.publish(Box::new(lab.tables()));
    assert_eq!(publisher.reclaim(), 1);
}

#[test]
fn run_stops_on_the_flag_and_flushes() {
    let lab = Lab::new();
    let (mut publisher, mut readers) = rcu::cell(Box::new(lab.tables()), 1);
    let worker: Worker<VecPort, VecChannel> = Worker::new(
        (0..3).map(|_| VecPort::default()).collect(),
        VecChannel::new(8),
        VecChannel::new(8),
        readers.remove(0),
        Arc::new(LcoreCounters::default()),
        HZ,
        100,
    );
    let stop = std::sync::atomic::AtomicBool::new(true);
    wccp_dataplane::worker::run(worker, &stop, true, || 0);
    publisher.publish(Box::new(lab.tables()));
    assert_eq!(publisher.reclaim(), 1, "the reader went offline on exit");
}

/// A worker under a stage cycle of 1,024-tick slices sending its reference loops to the cache
/// port: each stage takes the frames received in its slice, the reference loops forward them
/// untouched (or, for the minimal GRE loop, as the pipeline redirects a valid frame), and the
/// cycle counts each stage's frames.
#[test]
fn stage_cycle_takes_turns_and_counts_each_stage() {
    use wccp_dataplane::stages::{Stage, StageCycle};
    // Web-cache alone, so that the tables have the pre-pass's lane service.
    let mut r = rig_with(&web_only(), 64);
    let cycle = Arc::new(StageCycle::new(CACHE, 1 << 10));
    r.worker = std::mem::replace(&mut r.worker, rig().worker).with_stages(Arc::clone(&cycle));
    let web = to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip());
    let routed = to_port(CLIENT, CLIENT_MAC, &routed_input().ip());
    // What the pipeline makes of the web frame (redirected to cache A on the cache port).
    let slice = |s: Stage| 1024 * Stage::ALL.iter().position(|&x| x == s).unwrap() as u64 + 1;
    assert_eq!(cycle.stage_at(slice(Stage::Pipeline)), Stage::Pipeline);
    r.rx(CLIENT, &web);
    r.poll_flush(slice(Stage::Pipeline));
    let redirected = r.worker.ports_mut()[usize::from(CACHE)].tx.remove(0);
    assert_eq!(&redirected.as_ref()[..6], &CACHE_A_MAC);
    assert!(redirected.as_ref().len() > web.len(), "GRE-encapsulated");
    let mut received = 1;
    for stage in Stage::ALL {
        if stage == Stage::Pipeline {
            continue;
        }
        let now = slice(stage);
        assert_eq!(cycle.stage_at(now), stage);
        r.rx(CLIENT, &web);
        r.rx(CLIENT, &routed);
        r.worker.poll(now);
        r.worker.poll(now + 1);
        received += 2;
        let out: Vec<Vec<u8>> = r.worker.ports_mut()[usize::from(CACHE)]
            .tx
            .drain(..)
            .map(|b| b.as_ref().to_vec())
            .collect();
        assert_eq!(out.len(), 2, "{stage:?}: both frames on the egress port");
        assert!(r.tx(SERVER).is_empty(), "{stage:?}");
        if stage == Stage::MinimalGre {
            // The routed frame is no redirect: the bound treats every frame as one, so only
            // the valid web frame is compared.
            assert_eq!(out[0], redirected.as_ref(), "minimal GRE as the pipeline");
        } else {
            assert_eq!(
                out,
                vec![web.clone(), routed.clone()],
                "{stage:?}: untouched"
            );
        }
    }
    // The poll after the last slice counts the last stage's time.
    r.worker.poll(1024 * 6 + 1);
    let res = cycle.results();
    assert_eq!(res.len(), 6);
    for t in &res {
        let want = if t.stage == Stage::Pipeline { 1 } else { 2 };
        assert_eq!(t.packets, want, "{:?}", t.stage);
        assert!(t.ticks > 0, "{:?}: time counted", t.stage);
    }
    assert_eq!(res.iter().map(|t| t.packets).sum::<u64>(), received);
    // Only the pipeline's slice counts verdicts.
    assert_eq!(r.count(Reason::Rx), 1);
}

/// A stage cycle whose egress port the worker does not have drops the reference loops'
/// frames (and counts them to their stage) instead of failing.
#[test]
fn stage_cycle_to_a_missing_port_drops() {
    use wccp_dataplane::stages::{Stage, StageCycle};
    let mut r = rig_with(&web_only(), 64);
    let cycle = Arc::new(StageCycle::new(99, 1 << 10));
    r.worker = std::mem::replace(&mut r.worker, rig().worker).with_stages(Arc::clone(&cycle));
    let web = to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip());
    for (k, stage) in Stage::ALL.iter().enumerate() {
        if *stage == Stage::Pipeline {
            continue;
        }
        r.rx(CLIENT, &web);
        r.poll_flush(1024 * k as u64 + 1);
    }
    for p in [CLIENT, SERVER, CACHE] {
        assert!(r.tx(p).is_empty(), "port {p}");
    }
    let counted: u64 = cycle.results().iter().map(|t| t.packets).sum();
    assert_eq!(counted, 5);
}
