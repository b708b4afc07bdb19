//! Thin drivers: real UDP sockets and a clock around the sans-IO state machines.
//!
//! [`Driver`] owns one [`Machine`] and runs it on the calling thread:
//!
//! ```text
//!  reader thread per local address ──> bounded queue ──┐  (full: datagram dropped, counted)
//!   (UDP 2048, recv_from)                              ├─> driver loop ─> machine
//!  DriverHandle::{query, stop} ──> control channel ────┘  (select)         │
//!                                                        ├─ Send    -> socket bound to `local`
//!                                                        ├─ Publish -> TablePublisher
//!                                                        └─ Event   -> tracing + DriverStats
//! ```
//!
//! The machine is only ever touched by the driver thread; other threads (the daemon's Unix
//! control socket) read it through [`DriverHandle::query`], which runs a closure on the driver
//! thread between two inputs, so a status snapshot never races the state machine.
//!
//! Datagrams wait in a queue of [`DriverOptions::queue_capacity`] entries: when the machine
//! cannot keep up (a flood), the readers drop what does not fit and count it
//! ([`DriverStats::queue_dropped`]) instead of growing without bound. Queries and the stop
//! request travel on their own channel, so a full queue never delays `wccpd show`; the driver
//! waits on both channels and its next timer at once (crossbeam's `select!`).
//!
//! Sockets are plain `std::net::UdpSocket`s bound per local address (no `IP_PKTINFO` needed:
//! the bound address is the `local` of every datagram read from it). Without `unsafe` or extra
//! dependencies `SO_REUSEADDR` is not set; it is not needed for per-address UDP binds.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use assign::RedirectTable;
use crossbeam_channel::{self as channel, Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::{Datagram, Event, Instant, Machine, Output, ServiceKey, WCCP_PORT};

/// Receives every [`Output::Publish`]: the data plane's table cell, or [`LatestTables`].
pub trait TablePublisher: Send + Sync {
    /// The table of `service` is now `table` (`None`: flushed, forward normally).
    fn publish(&self, service: ServiceKey, table: Option<Arc<RedirectTable>>);
}

/// A [`TablePublisher`] that just keeps the latest table per service (until the data plane's
/// RCU cell exists; also what tests and `show` read).
#[derive(Debug, Default)]
pub struct LatestTables {
    tables: RwLock<BTreeMap<ServiceKey, Option<Arc<RedirectTable>>>>,
}

impl LatestTables {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest table published for `service` (`None` if flushed or never published).
    pub fn get(&self, service: ServiceKey) -> Option<Arc<RedirectTable>> {
        self.tables
            .read()
            .map(|t| t.get(&service).cloned().flatten())
            .unwrap_or(None)
    }

    /// Every service that has been published at least once, with its latest table.
    pub fn snapshot(&self) -> Vec<(ServiceKey, Option<Arc<RedirectTable>>)> {
        self.tables
            .read()
            .map(|t| t.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }
}

impl TablePublisher for LatestTables {
    fn publish(&self, service: ServiceKey, table: Option<Arc<RedirectTable>>) {
        if let Ok(mut t) = self.tables.write() {
            t.insert(service, table);
        }
    }
}

/// Driver tuning.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// UDP port to bind and send to (2048 except in tests).
    pub port: u16,
    /// Longest wait between two checks of the stop flag.
    pub max_wait: Duration,
    /// Most received datagrams waiting for the machine; more are dropped (and counted in
    /// [`DriverStats::queue_dropped`]). At most this many times 64 KiB of payload is held.
    pub queue_capacity: usize,
}

/// Default [`DriverOptions::queue_capacity`]: far more than a router's caches send in one
/// TRANSMIT_T, at most 32 MiB of payload even if every datagram were 64 KiB.
pub const DEFAULT_QUEUE_CAPACITY: usize = 512;

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            port: WCCP_PORT,
            max_wait: Duration::from_millis(200),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

/// Counters kept by the driver from the machine's outputs and the sockets (read back by
/// `wccpd show`: a counter missing from the JSON reads as 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DriverStats {
    /// Datagrams received (handed to the machine).
    pub received: u64,
    /// Datagrams read from a socket but dropped because the queue to the machine was full.
    pub queue_dropped: u64,
    /// Most datagrams seen waiting in the queue at once (at most the queue capacity).
    pub queue_high_water: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Sends that failed (or had no socket for their `local` address).
    pub send_errors: u64,
    /// Dropped datagrams by [`crate::DropReason::as_str`].
    #[serde(deserialize_with = "crate::label::deserialize_keys")]
    pub drops: BTreeMap<&'static str, u64>,
    /// The last drop's detail per reason (for `show`: why a cache is not joining).
    #[serde(deserialize_with = "crate::label::deserialize_keys")]
    pub last_drop: BTreeMap<&'static str, String>,
    /// Membership changes seen.
    pub membership_changes: u64,
    /// Assignments accepted (router) or sent (cache).
    pub assignments: u64,
    /// Table publications.
    pub publications: u64,
    /// Milliseconds since the driver started.
    pub uptime_ms: u64,
}

type Query<M> = Box<dyn FnOnce(&mut M, &DriverStats) + Send>;

/// Queue accounting shared by the readers and the driver.
#[derive(Debug, Default)]
struct QueueStats {
    /// Datagrams queued so far (counted once queued).
    queued: AtomicU64,
    /// Datagrams dropped because the queue was full.
    dropped: AtomicU64,
}

/// Why a [`DriverHandle::query`] got no answer.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// The driver has stopped.
    Stopped,
    /// The driver did not answer in time.
    Timeout(Duration),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Stopped => f.write_str("the driver is not running"),
            QueryError::Timeout(t) => write!(f, "the driver did not answer within {t:?}"),
        }
    }
}

impl std::error::Error for QueryError {}

/// Talks to a running [`Driver`] from other threads. Cheap to clone.
pub struct DriverHandle<M> {
    /// Queries (unbounded: one per caller at a time).
    ctl: Sender<Query<M>>,
    stop: Arc<AtomicBool>,
}

impl<M> Clone for DriverHandle<M> {
    fn clone(&self) -> Self {
        DriverHandle {
            ctl: self.ctl.clone(),
            stop: Arc::clone(&self.stop),
        }
    }
}

impl<M> std::fmt::Debug for DriverHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverHandle")
            .field("stopped", &self.stop.load(Ordering::Relaxed))
            .finish()
    }
}

impl<M: 'static> DriverHandle<M> {
    /// Asks the driver to stop; [`Driver::run`] returns soon after.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // An empty query wakes the driver, which then sees the flag (an error: already stopped).
        let _ = self.ctl.send(Box::new(|_, _| {}));
    }

    /// The flag [`DriverHandle::stop`] sets: hand it to a signal handler
    /// (`signal_hook::flag::register`). The driver notices within `max_wait`.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Runs `f` on the driver thread with the machine and the driver's counters, and returns its
    /// result (e.g. a status snapshot serialized to JSON).
    pub fn query<R, F>(&self, timeout: Duration, f: F) -> Result<R, QueryError>
    where
        R: Send + 'static,
        F: FnOnce(&M, &DriverStats) -> R + Send + 'static,
    {
        let (reply_tx, reply_rx) = channel::bounded(1);
        let job: Query<M> = Box::new(move |m, s| {
            let _ = reply_tx.send(f(m, s));
        });
        // The driver waits on this channel too, and looks at it after every datagram.
        self.ctl.send(job).map_err(|_| QueryError::Stopped)?;
        match reply_rx.recv_timeout(timeout) {
            Ok(r) => Ok(r),
            Err(RecvTimeoutError::Timeout) => Err(QueryError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(QueryError::Stopped),
        }
    }

    /// Like [`DriverHandle::query`], but `f` may change the machine (a configuration reload).
    /// What the machine then outputs is handled at once, as after any input. On a timeout `f`
    /// may still run later.
    pub fn apply<R, F>(&self, timeout: Duration, f: F) -> Result<R, QueryError>
    where
        R: Send + 'static,
        F: FnOnce(&mut M, &DriverStats) -> R + Send + 'static,
    {
        let (reply_tx, reply_rx) = channel::bounded(1);
        let job: Query<M> = Box::new(move |m, s| {
            let _ = reply_tx.send(f(m, s));
        });
        self.ctl.send(job).map_err(|_| QueryError::Stopped)?;
        let r = match reply_rx.recv_timeout(timeout) {
            Ok(r) => Ok(r),
            Err(RecvTimeoutError::Timeout) => Err(QueryError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(QueryError::Stopped),
        };
        // Queries run after the outputs are drained: an empty one wakes the driver to drain
        // what `f` queued rather than at its next datagram or timer.
        let _ = self.ctl.send(Box::new(|_, _| {}));
        r
    }
}

/// A UDP driver around one state machine.
pub struct Driver<M> {
    machine: M,
    sockets: HashMap<Ipv4Addr, Arc<UdpSocket>>,
    readers: Vec<JoinHandle<()>>,
    rx: Receiver<Datagram>,
    ctl: Receiver<Query<M>>,
    queue: Arc<QueueStats>,
    /// Datagrams taken from the queue so far.
    dequeued: u64,
    handle: DriverHandle<M>,
    publisher: Arc<dyn TablePublisher>,
    options: DriverOptions,
    epoch: std::time::Instant,
    stats: DriverStats,
    rejections: crate::log_limit::LogLimiter,
}

impl<M> std::fmt::Debug for Driver<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("addresses", &self.sockets.keys().collect::<Vec<_>>())
            .field("stats", &self.stats)
            .finish()
    }
}

/// Why [`Driver::bind`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BindError {
    /// The machine has no local address to bind.
    NoAddress,
    /// Binding UDP on `address` failed.
    Bind {
        /// The address and port.
        address: SocketAddrV4,
        /// The OS error.
        source: io::Error,
    },
    /// A reader thread could not be started.
    Thread(io::Error),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::NoAddress => f.write_str("the configuration has no local address to bind"),
            BindError::Bind { address, source } => write!(f, "cannot bind UDP {address}: {source}"),
            BindError::Thread(e) => write!(f, "cannot start a reader thread: {e}"),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BindError::Bind { source, .. } | BindError::Thread(source) => Some(source),
            BindError::NoAddress => None,
        }
    }
}

impl<M: Machine + 'static> Driver<M> {
    /// Binds UDP `options.port` on every `machine.local_addresses()` and starts one reader thread
    /// per socket. The clock's epoch (Instant 0) is now.
    pub fn bind(
        machine: M,
        options: DriverOptions,
        publisher: Arc<dyn TablePublisher>,
    ) -> Result<(Self, DriverHandle<M>), BindError> {
        let addresses = machine.local_addresses();
        if addresses.is_empty() {
            return Err(BindError::NoAddress);
        }
        let (tx, rx) = channel::bounded(options.queue_capacity.max(1));
        let (ctl_tx, ctl) = channel::unbounded();
        let queue = Arc::new(QueueStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handle = DriverHandle {
            ctl: ctl_tx,
            stop: Arc::clone(&stop),
        };
        let mut sockets = HashMap::new();
        let mut readers = Vec::new();
        for addr in addresses {
            if sockets.contains_key(&addr) {
                continue;
            }
            let sa = SocketAddrV4::new(addr, options.port);
            let sock = UdpSocket::bind(sa).map_err(|source| BindError::Bind {
                address: sa,
                source,
            })?;
            sock.set_read_timeout(Some(options.max_wait))
                .map_err(|source| BindError::Bind {
                    address: sa,
                    source,
                })?;
            let sock = Arc::new(sock);
            sockets.insert(addr, Arc::clone(&sock));
            let tx = tx.clone();
            let stop = Arc::clone(&stop);
            let queue = Arc::clone(&queue);
            let reader = std::thread::Builder::new()
                .name(format!("wccp-rx-{addr}"))
                .spawn(move || read_loop(&sock, addr, &tx, &queue, &stop))
                .map_err(BindError::Thread)?;
            readers.push(reader);
        }
        let driver = Driver {
            machine,
            sockets,
            readers,
            rx,
            ctl,
            queue,
            dequeued: 0,
            handle: handle.clone(),
            publisher,
            options,
            epoch: std::time::Instant::now(),
            stats: DriverStats::default(),
            rejections: crate::log_limit::LogLimiter::default(),
        };
        Ok((driver, handle))
    }

    /// Milliseconds since the driver was bound.
    fn now(&self) -> Instant {
        Instant(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Runs until [`DriverHandle::stop`] (or the stop flag) and returns the machine.
    pub fn run(self) -> M {
        self.run_with_shutdown(|_, _| {})
    }

    /// Like [`Driver::run`], but once stopped calls `shutdown` with the machine (e.g.
    /// `CacheAgent::shutdown`, which queues SHUTDOWN HERE_I_AMs) and sends what it queued
    /// before closing the sockets.
    pub fn run_with_shutdown(mut self, shutdown: impl FnOnce(&mut M, Instant)) -> M {
        let now = self.now();
        self.machine.handle_timeout(now);
        self.drain();
        while !self.handle.stop.load(Ordering::SeqCst) {
            let now = self.now();
            let wait = match self.machine.poll_timeout() {
                Some(t) => Duration::from_millis(t.0.saturating_sub(now.0)),
                None => self.options.max_wait,
            }
            .min(self.options.max_wait);
            // Every datagram counted as queued before this load and not yet taken is still in
            // the queue when the next one is taken: a lower bound of the depth, never above the
            // capacity.
            let queued = self.queue.queued.load(Ordering::Relaxed);
            let (mut query, mut readers_gone) = (None, false);
            channel::select! {
                recv(self.rx) -> d => match d {
                    Ok(d) => {
                        let depth = queued.saturating_sub(self.dequeued).max(1);
                        self.dequeued += 1;
                        self.stats.queue_high_water = self.stats.queue_high_water.max(depth);
                        self.stats.received += 1;
                        let now = self.now();
                        self.machine.handle_datagram(now, d);
                    }
                    // Every reader has ended: they only do when stopping.
                    Err(_) => readers_gone = true,
                },
                // Never disconnected: `self.handle` holds a sender.
                recv(self.ctl) -> job => query = job.ok(),
                default(wait) => {}
            }
            if readers_gone {
                break;
            }
            let now = self.now();
            if self.machine.poll_timeout().is_some_and(|t| t <= now) {
                self.machine.handle_timeout(now);
            }
            self.drain();
            // Queries see the machine and the counters with every output of the last input
            // accounted for.
            for job in query.into_iter().chain(self.ctl.try_iter()) {
                self.stats.uptime_ms = self.now().0;
                self.stats.queue_dropped = self.queue.dropped.load(Ordering::Relaxed);
                job(&mut self.machine, &self.stats);
            }
        }
        let now = self.now();
        shutdown(&mut self.machine, now);
        self.drain();
        self.handle.stop.store(true, Ordering::SeqCst);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.machine
    }

    /// Drains every pending output.
    fn drain(&mut self) {
        while let Some(out) = self.machine.poll_output() {
            match out {
                Output::Send(d) => self.send(&d),
                Output::Publish { service, table } => {
                    self.stats.publications += 1;
                    tracing::info!(
                        service = service.id,
                        dynamic = service.dynamic,
                        flushed = table.is_none(),
                        "redirection table published"
                    );
                    self.publisher.publish(service, table);
                }
                Output::Event(e) => {
                    let now = self.now();
                    self.event(now, e);
                }
            }
        }
    }

    fn send(&mut self, d: &Datagram) {
        let Some(sock) = self.sockets.get(&d.local) else {
            self.stats.send_errors += 1;
            tracing::warn!(local = %d.local, peer = %d.peer, "no socket bound on the source address");
            return;
        };
        let to = SocketAddr::V4(SocketAddrV4::new(d.peer, self.options.port));
        match sock.send_to(&d.payload, to) {
            Ok(_) => {
                self.stats.sent += 1;
                tracing::trace!(local = %d.local, peer = %d.peer, len = d.payload.len(), "sent");
            }
            Err(e) => {
                self.stats.send_errors += 1;
                tracing::warn!(local = %d.local, peer = %d.peer, error = %e, "send failed");
            }
        }
    }

    fn event(&mut self, now: Instant, e: Event) {
        crate::log_limit::log_event(&mut self.rejections, now, &e);
        match e {
            Event::Dropped {
                peer,
                reason,
                detail,
            } => {
                *self.stats.drops.entry(reason.as_str()).or_insert(0) += 1;
                self.stats
                    .last_drop
                    .insert(reason.as_str(), format!("{peer}: {detail}"));
            }
            Event::MembershipChanged { .. } => self.stats.membership_changes += 1,
            Event::Assignment { .. } => self.stats.assignments += 1,
        }
    }
}

fn read_loop(
    sock: &UdpSocket,
    local: Ipv4Addr,
    tx: &channel::Sender<Datagram>,
    queue: &QueueStats,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::SeqCst) {
        match sock.recv_from(&mut buf) {
            Ok((n, SocketAddr::V4(peer))) => {
                let d = Datagram {
                    local,
                    peer: *peer.ip(),
                    payload: buf[..n].to_vec(),
                };
                match tx.try_send(d) {
                    Ok(()) => {
                        queue.queued.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Full(_)) => {
                        if queue.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::warn!(
                                %local,
                                "control queue full: dropping datagrams (counted in queue_dropped)"
                            );
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            Ok((_, SocketAddr::V6(_))) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(%local, error = %e, "UDP receive failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DropReason, Output};
    use std::collections::VecDeque;

    /// Echoes every datagram back with a prefix, emits a timer event every 50 ms and a drop
    /// event for payloads starting with `!`.
    struct Echo {
        addr: Ipv4Addr,
        next: Instant,
        ticks: u32,
        out: VecDeque<Output>,
    }

    impl Machine for Echo {
        fn handle_datagram(&mut self, _now: Instant, d: Datagram) {
            if d.payload.first() == Some(&b'!') {
                self.out.push_back(Output::Event(Event::Dropped {
                    peer: d.peer,
                    reason: DropReason::Security,
                    detail: "bad digest".into(),
                }));
                return;
            }
            let mut p = b"echo:".to_vec();
            p.extend_from_slice(&d.payload);
            self.out.push_back(Output::Send(Datagram {
                local: d.local,
                peer: d.peer,
                payload: p,
            }));
            self.out.push_back(Output::Publish {
                service: ServiceKey {
                    dynamic: false,
                    id: 0,
                },
                table: None,
            });
        }
        fn handle_timeout(&mut self, now: Instant) {
            while self.next <= now {
                self.ticks += 1;
                self.next = self.next + Duration::from_millis(50);
            }
        }
        fn poll_timeout(&self) -> Option<Instant> {
            Some(self.next)
        }
        fn poll_output(&mut self) -> Option<Output> {
            self.out.pop_front()
        }
        fn local_addresses(&self) -> Vec<Ipv4Addr> {
            vec![self.addr]
        }
    }

    #[test]
    fn echoes_counts_answers_queries_and_stops() {
        let addr = Ipv4Addr::new(127, 0, 0, 1);
        // A free port: bind a throwaway socket on an ephemeral port and reuse its number.
        let probe = UdpSocket::bind((addr, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let machine = Echo {
            addr,
            next: Instant(0),
            ticks: 0,
            out: VecDeque::new(),
        };
        let tables = Arc::new(LatestTables::new());
        let options = DriverOptions {
            port,
            max_wait: Duration::from_millis(50),
            ..DriverOptions::default()
        };
        let (driver, handle) = Driver::bind(machine, options, tables.clone()).unwrap();
        let thread = std::thread::spawn(move || driver.run());

        // The peer must send from the same port (WCCP is 2048 -> 2048): use 127.0.0.2.
        let peer = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), port)).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        peer.send_to(b"hello", (addr, port)).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"echo:hello");
        assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(addr, port)));
        peer.send_to(b"!x", (addr, port)).unwrap();

        // Wait until both datagrams are counted, then check the counters.
        let mut stats = DriverStats::default();
        for _ in 0..100 {
            stats = handle
                .query(Duration::from_secs(2), |_m, s| s.clone())
                .unwrap();
            if stats.received == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(stats.received, 2);
        assert_eq!(stats.sent, 1);
        assert_eq!(stats.publications, 1);
        assert_eq!(stats.drops.get("security"), Some(&1));
        assert!(stats.last_drop["security"].contains("bad digest"));
        assert_eq!(tables.snapshot().len(), 1);

        std::thread::sleep(Duration::from_millis(300));
        let ticks = handle
            .query(Duration::from_secs(2), |m, _| m.ticks)
            .unwrap();
        assert!(ticks >= 5, "timer ticks {ticks}");

        handle.stop();
        let machine = thread.join().unwrap();
        assert!(machine.ticks >= ticks);
        assert_eq!(
            handle.query(Duration::from_millis(100), |_, _| ()),
            Err(QueryError::Stopped)
        );
    }

    #[test]
    fn shutdown_hook_output_is_sent_before_the_sockets_close() {
        let addr = Ipv4Addr::new(127, 0, 0, 1);
        let probe = UdpSocket::bind((addr, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let peer_addr = Ipv4Addr::new(127, 0, 0, 3);
        let peer = UdpSocket::bind((peer_addr, port)).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let machine = Echo {
            addr,
            next: Instant(0),
            ticks: 0,
            out: VecDeque::new(),
        };
        let options = DriverOptions {
            port,
            max_wait: Duration::from_millis(50),
            ..DriverOptions::default()
        };
        let (driver, handle) =
            Driver::bind(machine, options, Arc::new(LatestTables::new())).unwrap();
        let thread = std::thread::spawn(move || {
            driver.run_with_shutdown(|m, _now| {
                m.out.push_back(Output::Send(Datagram {
                    local: Ipv4Addr::new(127, 0, 0, 1),
                    peer: Ipv4Addr::new(127, 0, 0, 3),
                    payload: b"bye".to_vec(),
                }));
            })
        });
        // The stop flag alone (as a signal handler sets it) is enough.
        handle.stop_flag().store(true, Ordering::SeqCst);
        let machine = thread.join().unwrap();
        assert!(machine.out.is_empty());
        let mut buf = [0u8; 16];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"bye");
    }

    /// Takes 1 ms per datagram (a machine that cannot keep up with a flood) and answers
    /// `ping` with `pong`.
    struct Slow {
        addr: Ipv4Addr,
        handled: u64,
        out: VecDeque<Output>,
    }

    impl Machine for Slow {
        fn handle_datagram(&mut self, _now: Instant, d: Datagram) {
            self.handled += 1;
            if d.payload == b"ping" {
                self.out.push_back(Output::Send(Datagram {
                    local: d.local,
                    peer: d.peer,
                    payload: b"pong".to_vec(),
                }));
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        fn handle_timeout(&mut self, _now: Instant) {}
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn poll_output(&mut self) -> Option<Output> {
            self.out.pop_front()
        }
        fn local_addresses(&self) -> Vec<Ipv4Addr> {
            vec![self.addr]
        }
    }

    /// A flood over real UDP on loopback into a machine that cannot keep up: the queue never
    /// holds more than its capacity, what does not fit is dropped and counted, queries are
    /// still answered during the flood, and the machine works normally afterwards.
    #[test]
    fn a_flood_fills_the_bounded_queue_and_is_dropped_and_counted() {
        const CAPACITY: usize = 16;
        const SENT: u64 = 5_000;
        let addr = Ipv4Addr::new(127, 0, 0, 1);
        let probe = UdpSocket::bind((addr, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let machine = Slow {
            addr,
            handled: 0,
            out: VecDeque::new(),
        };
        let options = DriverOptions {
            port,
            max_wait: Duration::from_millis(50),
            queue_capacity: CAPACITY,
        };
        let (driver, handle) =
            Driver::bind(machine, options, Arc::new(LatestTables::new())).unwrap();
        let thread = std::thread::spawn(move || driver.run());
        let peer = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 4), port)).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let flood = peer.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let junk = [0xA5u8; 200];
            for _ in 0..SENT {
                flood.send_to(&junk, (addr, port)).unwrap();
            }
        });
        // During the flood a query still gets through (its own channel).
        let during = handle.query(Duration::from_secs(2), |m, s| (m.handled, s.clone()));
        assert!(during.is_ok(), "query during the flood: {during:?}");
        sender.join().unwrap();
        // Wait until the machine has drained the queue.
        let mut stats = DriverStats::default();
        let mut handled = 0;
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(50));
            let (h, s) = handle
                .query(Duration::from_secs(2), |m, s| (m.handled, s.clone()))
                .unwrap();
            let settled = h == handled && s.received == stats.received;
            (handled, stats) = (h, s);
            if settled {
                break;
            }
        }
        eprintln!(
            "sent {SENT}: received {}, queue_dropped {}, high water {}",
            stats.received, stats.queue_dropped, stats.queue_high_water
        );
        assert_eq!(
            handled, stats.received,
            "every queued datagram reached the machine"
        );
        assert!(stats.queue_dropped > 0, "nothing dropped: {stats:?}");
        // The kernel may drop some too; the driver never counts more than were sent.
        assert!(stats.received + stats.queue_dropped <= SENT, "{stats:?}");
        assert!(stats.received >= CAPACITY as u64, "{stats:?}");
        assert!(
            stats.queue_high_water >= 1 && stats.queue_high_water <= CAPACITY as u64,
            "queue held {} datagrams (capacity {CAPACITY})",
            stats.queue_high_water
        );
        // The machine is usable once the flood is over.
        peer.send_to(b"ping", (addr, port)).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
        handle.stop();
        let machine = thread.join().unwrap();
        assert_eq!(machine.handled, handled + 1);
    }

    #[test]
    fn bind_without_address_fails() {
        struct None_;
        impl Machine for None_ {
            fn handle_datagram(&mut self, _: Instant, _: Datagram) {}
            fn handle_timeout(&mut self, _: Instant) {}
            fn poll_timeout(&self) -> Option<Instant> {
                None
            }
            fn poll_output(&mut self) -> Option<Output> {
                None
            }
            fn local_addresses(&self) -> Vec<Ipv4Addr> {
                Vec::new()
            }
        }
        let r = Driver::bind(
            None_,
            DriverOptions::default(),
            Arc::new(LatestTables::new()),
        );
        assert!(matches!(r, Err(BindError::NoAddress)));
    }
}
