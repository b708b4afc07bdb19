//! Where the worker's time goes, measured in one process (`wccpd bench`'s stage phase).
//!
//! Timing separate processes one after the other cannot resolve differences of less than
//! about 20 % on a shared host: the same program's rate moves by 1.3-1.6× from one process
//! to the next (docs/BENCHMARKS.md). A [`StageCycle`] makes one worker take turns, in slices
//! of a few tens of milliseconds, between the real pipeline and reference loops that stop at
//! one stage of it, on the same ports, pool and memory; its per-stage packet and time counts
//! give each stage's rate, and the differences between them the cost of each stage, to a few
//! per cent.
//!
//! The reference loops send to one egress port (the cache port in the bench) and count no
//! [`Reason`](crate::Reason): only the [`Stage::Pipeline`] slices do. They exist for
//! measurement only and are never selected by a router's configuration.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::buf::PacketBuf;
use crate::pipeline::{le_word, ttl_decremented, write_gre};
use crate::tables::{FastService, LaneService, GRE_FRAME_HDR};
use wire::ethernet;

/// One stage of the cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// RX, then the received burst straight to the egress port's TX (testpmd's io mode in
    /// our process): the drivers' own cost.
    IoLoop,
    /// RX, then every frame untouched through the worker's TX buffering to the egress port:
    /// the worker's structure.
    Forward,
    /// As [`Stage::Forward`] after the burst pre-pass's read loop (`Lanes::read` without its
    /// vector pass).
    Read,
    /// As [`Stage::Forward`] after the whole burst pre-pass (read loop and vector pass).
    PrePass,
    /// The real pipeline (`Worker::poll`'s own path).
    Pipeline,
    /// The least a GRE redirector does for a valid packet, without any check or counter:
    /// hash, owner, TTL, prepend and the template, sent to the owner's port. A bound on what
    /// any redirecting pipeline can reach on the host, not a path a router takes.
    MinimalGre,
}

impl Stage {
    /// Every stage, in the order of the cycle.
    pub const ALL: [Stage; 6] = [
        Stage::IoLoop,
        Stage::Forward,
        Stage::Read,
        Stage::PrePass,
        Stage::Pipeline,
        Stage::MinimalGre,
    ];

    /// The stage's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::IoLoop => "io_loop",
            Stage::Forward => "forward",
            Stage::Read => "read",
            Stage::PrePass => "pre_pass",
            Stage::Pipeline => "pipeline",
            Stage::MinimalGre => "minimal_gre",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One stage's totals ([`StageCycle::results`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageTotals {
    /// The stage.
    pub stage: Stage,
    /// Frames received in its slices.
    pub packets: u64,
    /// Clock ticks spent in its slices.
    pub ticks: u64,
}

impl StageTotals {
    /// What happened between two [`StageCycle::results`], `before` and `after` (stage by
    /// stage, in `after`'s order).
    pub fn between(before: &[StageTotals], after: &[StageTotals]) -> Vec<StageTotals> {
        after
            .iter()
            .map(|a| {
                let b = before.iter().find(|b| b.stage == a.stage);
                StageTotals {
                    stage: a.stage,
                    packets: a.packets - b.map_or(0, |b| b.packets.min(a.packets)),
                    ticks: a.ticks - b.map_or(0, |b| b.ticks.min(a.ticks)),
                }
            })
            .collect()
    }

    /// Million frames per second in the stage's slices, with `hz` clock ticks per second (0
    /// when no time was counted).
    pub fn mpps(&self, hz: u64) -> f64 {
        if self.ticks == 0 {
            0.0
        } else {
            self.packets as f64 * hz as f64 / self.ticks as f64 / 1e6
        }
    }
}

/// The cycle's configuration and counts, shared by the worker (which adds to them once per
/// poll) and the caller (which reads them at the end).
#[derive(Debug)]
pub struct StageCycle {
    egress: u16,
    shift: u32,
    packets: [AtomicU64; Stage::ALL.len()],
    ticks: [AtomicU64; Stage::ALL.len()],
}

impl StageCycle {
    /// A cycle sending the reference loops' frames to port `egress`, changing stage every
    /// `slice_ticks` clock ticks (rounded down to a power of two, at least 1).
    pub fn new(egress: u16, slice_ticks: u64) -> StageCycle {
        StageCycle {
            egress,
            shift: slice_ticks.max(1).ilog2(),
            packets: Default::default(),
            ticks: Default::default(),
        }
    }

    /// The reference loops' egress port.
    pub fn egress(&self) -> u16 {
        self.egress
    }

    /// The stage whose slice holds time `now`.
    pub fn stage_at(&self, now: u64) -> Stage {
        let n = Stage::ALL.len() as u64;
        Stage::ALL[((now >> self.shift) % n) as usize]
    }

    /// Adds a poll's frames and time to `stage`.
    pub(crate) fn record(&self, stage: Stage, packets: u64, ticks: u64) {
        let i = stage.index();
        self.packets[i].fetch_add(packets, Ordering::Relaxed);
        self.ticks[i].fetch_add(ticks, Ordering::Relaxed);
    }

    /// Every stage's totals so far, in [`Stage::ALL`]'s order.
    pub fn results(&self) -> Vec<StageTotals> {
        Stage::ALL
            .iter()
            .map(|&stage| StageTotals {
                stage,
                packets: self.packets[stage.index()].load(Ordering::Relaxed),
                ticks: self.ticks[stage.index()].load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// [`Stage::MinimalGre`] on one frame: the egress port, or `None` (frame untouched) when it
/// is too short to hold an IPv4 header and ports, or lacks the headroom. Frames are assumed
/// valid and redirectable: nothing else is checked, no padding is trimmed and nothing is
/// counted. For such a frame the result is the pipeline's (`tests/worker.rs`).
#[inline(always)]
pub(crate) fn minimal_gre<B: PacketBuf>(
    lane: &LaneService,
    fs: &FastService,
    b: &mut B,
) -> Option<u16> {
    let h = b.as_ref().first_chunk::<38>()?;
    let (e2, e3, e4, ports) = (
        le_word(h, 22),
        le_word(h, 26),
        le_word(h, 30),
        le_word(h, 34),
    );
    let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let bucket = |m: [u32; 3]| {
        let k = (e3 & m[0]) ^ (e4 & m[1]) ^ (ports & m[2]);
        let k = k ^ (k >> 16);
        (k ^ (k >> 8)) as u8
    };
    let buckets = u16::from_le_bytes([bucket(lane.hash[1]), bucket(lane.hash[0])]);
    let g = &fs.gre[usize::from(fs.owners[usize::from(buckets >> 8)])];
    if !b.prepend(GRE_FRAME_HDR - ethernet::HEADER_LEN) {
        return None;
    }
    write_gre(b, g, buckets, total, ttl_decremented(e2))?;
    Some(g.port)
}
