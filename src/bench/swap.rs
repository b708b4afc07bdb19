//! The table-swap check: on the main lcore, next to the control loop, a generator sends
//! sequence-stamped port-80 frames into the data plane through a `net_ring` pair, the control
//! plane publishes a new redirection table (every bucket changes owner) `rate` times a
//! second, and a checker reads every frame the worker redirected back from the ring and
//! accounts for it.
//!
//! Table `k` gives bucket `b` to cache `(b + k) % 4` (table 0 is the configured
//! `static_assignment`, `b % 4`). A frame may go to the owner under any table a worker could
//! have used for it: from the oldest table still in use when the frame was sent (the current
//! generation minus the retired tables not yet reclaimed: a worker reads its table once per
//! burst, before receiving, so it may use one that was already replaced) to the table current
//! when the frame came back. Anything else is `missent`; a sequence number seen twice is
//! `duplicated`; after draining, `lost = sent - received - counted drops`.
//! EAL always runs with --no-pci here: every port is a vdev (`dataplane::dpdk_impl::eal_args`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use assign::service::ServiceDef;
use assign::table::{ForwardingMethod, RedirectTable};
use dataplane::dpdk_impl::{HookCtx, HookFlow, MainHook};
use dpdk::Burst;
use serde::Serialize;

use super::traffic::{self, CACHES};

/// Frames in flight at most (the rings hold 1024: they never overflow).
const IN_FLIGHT: u64 = 512;
/// How long the checker waits for the last frames after the generator stopped.
const DRAIN: Duration = Duration::from_millis(500);

/// The result of a swap check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SwapReport {
    /// Tables published while the generator ran.
    pub swaps: u64,
    /// Publication rate asked for, per second.
    pub rate: u32,
    /// Frames sent into the data plane.
    pub sent: u64,
    /// Distinct frames that came back.
    pub received: u64,
    /// `sent - received - dropped` after draining.
    pub lost: u64,
    /// Frames whose sequence number came back more than once (extra copies).
    pub duplicated: u64,
    /// Frames sent to a cache that owned the bucket under none of the tables a worker could
    /// have used for them, or with a wrong redirect header or MAC.
    pub missent: u64,
    /// Frames that came back but are not GRE redirects of ours.
    pub foreign: u64,
    /// Drops the worker counted (every reason).
    pub dropped: u64,
    /// Largest number of tables between sending a frame and checking it.
    pub max_generation_span: u64,
    /// Generator run time.
    pub elapsed_ns: u64,
}

/// The generator, checker and publisher (a [`MainHook`]).
#[derive(Debug)]
pub struct SwapHook {
    rate: u32,
    duration: Duration,
    tables: Vec<Arc<RedirectTable>>,
    start: Option<Instant>,
    stopped: Option<Instant>,
    next_publish: Instant,
    k: u64,
    /// (generation, table index k) of every publication, in order.
    published: Vec<(u64, u64)>,
    /// (first sequence number of a burst, lowest generation a worker may use for it).
    sends: Vec<(u64, u64)>,
    seen: Vec<u64>,
    out: Burst,
    back: Burst,
    drops_at_start: u64,
    report: SwapReport,
}

impl SwapHook {
    /// A check publishing `rate` tables a second for `duration`.
    ///
    /// # Errors
    /// The redirection tables cannot be built (never for the fixed schedule).
    pub fn new(rate: u32, duration: Duration) -> anyhow::Result<Self> {
        let mut tables = Vec::new();
        for k in 0..CACHES.len() {
            let mut buckets = [0u8; 256];
            for (b, t) in buckets.iter_mut().enumerate() {
                *t = ((b + k) % CACHES.len()) as u8;
            }
            let t = RedirectTable::from_hash_assignment(
                ServiceDef::WEB_CACHE,
                &CACHES,
                &buckets,
                ForwardingMethod::Gre,
            )
            .map_err(|e| anyhow::anyhow!("swap table {k}: {e:?}"))?;
            tables.push(Arc::new(t));
        }
        Ok(SwapHook {
            rate: rate.max(1),
            duration,
            tables,
            start: None,
            stopped: None,
            next_publish: Instant::now(),
            k: 0,
            published: Vec::new(),
            sends: Vec::new(),
            seen: Vec::new(),
            out: Burst::new(),
            back: Burst::new(),
            drops_at_start: 0,
            report: SwapReport {
                rate,
                ..SwapReport::default()
            },
        })
    }

    /// The result (complete once the hook said `Done`).
    pub fn report(&self) -> &SwapReport {
        &self.report
    }

    /// Table index in force at generation `g`.
    fn k_at(&self, g: u64) -> u64 {
        let n = self.published.partition_point(|(gen, _)| *gen <= g);
        if n == 0 {
            0
        } else {
            self.published[n - 1].1
        }
    }

    /// Lowest generation a worker may use for frame `seq`.
    fn lowest_for(&self, seq: u64) -> u64 {
        let n = self.sends.partition_point(|(first, _)| *first <= seq);
        if n == 0 {
            0
        } else {
            self.sends[n - 1].1
        }
    }

    fn check(&mut self, f: &[u8], now_gen: u64) {
        let Some(r) = traffic::decode_redirected(f) else {
            self.report.foreign += 1;
            return;
        };
        if r.seq >= self.report.sent {
            self.report.foreign += 1;
            return;
        }
        let word = (r.seq / 64) as usize;
        let bit = 1u64 << (r.seq % 64);
        if self.seen[word] & bit != 0 {
            self.report.duplicated += 1;
            return;
        }
        self.seen[word] |= bit;
        self.report.received += 1;
        let flags = ServiceDef::WEB_CACHE.flags;
        let bucket = assign::hash::primary_bucket(flags, &r.key);
        let Some(c) = traffic::cache_index(r.cache) else {
            self.report.missent += 1;
            return;
        };
        if r.service != 0 || r.bucket != bucket || r.dst_mac != traffic::cache_mac(c) {
            self.report.missent += 1;
            return;
        }
        let lo = self.lowest_for(r.seq);
        self.report.max_generation_span = self.report.max_generation_span.max(now_gen - lo);
        let n = CACHES.len() as u64;
        let ok = (lo..=now_gen)
            .map(|g| self.k_at(g))
            .any(|k| (u64::from(bucket) + k) % n == c as u64);
        if !ok {
            self.report.missent += 1;
        }
    }
}

impl MainHook for SwapHook {
    fn poll(&mut self, cx: &mut HookCtx<'_>) -> HookFlow {
        let now = Instant::now();
        let start = *self.start.get_or_insert_with(|| {
            self.next_publish = now;
            now
        });
        if self.report.sent == 0 && self.sends.is_empty() {
            self.drops_at_start = cx.dropped();
        }
        let generating = self.stopped.is_none() && now.duration_since(start) < self.duration;
        // Publish: a whole new Tables through the control plane, as an assignment would.
        if generating && now >= self.next_publish {
            self.k += 1;
            let t = Arc::clone(&self.tables[(self.k % CACHES.len() as u64) as usize]);
            cx.control.set_redirect(
                control::ServiceKey {
                    dynamic: false,
                    id: 0,
                },
                Some(t),
            );
            self.published
                .push((cx.control.tables().generation, self.k));
            self.report.swaps += 1;
            self.next_publish += Duration::from_secs(1) / self.rate;
            if self.next_publish + Duration::from_millis(10) < now {
                // Far behind (the main lcore was descheduled): do not catch up in a burst.
                self.next_publish = now;
            }
        }
        let Some(peer) = cx.peers.first_mut() else {
            return HookFlow::Done;
        };
        // Send a burst while generating and the in-flight bound allows.
        let in_flight = self.report.sent - self.report.received;
        if generating && self.out.is_empty() && in_flight + 32 <= IN_FLIGHT {
            // The oldest table a worker may still read: anything retired but not reclaimed.
            cx.control.republish();
            let gen = cx.control.tables().generation;
            let lowest = gen.saturating_sub(cx.control.pending_reclaim() as u64);
            let first = self.report.sent;
            if self.sends.last().is_none_or(|(_, l)| *l != lowest) {
                self.sends.push((first, lowest));
            }
            for j in 0..32u64 {
                let seq = first + j;
                let f = traffic::stamped_frame((seq % u64::from(traffic::SWAP_FLOWS)) as u32, seq);
                match cx.pool.alloc_with(&f) {
                    Ok(m) => {
                        let _ = self.out.push(m);
                    }
                    Err(_) => break,
                }
            }
            self.report.sent += self.out.len() as u64;
            let words = (self.report.sent as usize).div_ceil(64);
            if self.seen.len() < words {
                self.seen.resize(words, 0);
            }
        }
        if !self.out.is_empty() {
            // The unsent tail (never, with the in-flight bound) is retried next time.
            peer.tx.tx_burst(&mut self.out);
        }
        // Check what came back.
        let gen = cx.control.tables().generation;
        for _ in 0..4 {
            if peer.rx.rx_burst(&mut self.back) == 0 {
                break;
            }
            let mut back = std::mem::take(&mut self.back);
            for m in back.drain() {
                self.check(m.data(), gen);
            }
            self.back = back;
        }
        if generating {
            return HookFlow::Busy;
        }
        let stopped = *self.stopped.get_or_insert_with(|| {
            self.report.elapsed_ns =
                u64::try_from(now.duration_since(start).as_nanos()).unwrap_or(u64::MAX);
            now
        });
        let dropped = cx.dropped().saturating_sub(self.drops_at_start);
        let accounted = self.report.received + dropped;
        if (accounted < self.report.sent || !self.out.is_empty())
            && now.duration_since(stopped) < DRAIN
        {
            return HookFlow::Busy;
        }
        self.report.dropped = dropped;
        self.report.lost = self.report.sent.saturating_sub(accounted);
        HookFlow::Done
    }
}
