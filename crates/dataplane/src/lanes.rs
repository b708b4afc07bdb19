//! The fast path's burst pre-pass: the header checks and bucket hashes of a whole RX burst at
//! once, as array arithmetic the compiler turns into SIMD, before the per-packet loop.
//!
//! Per frame, `Lanes::read` copies the 50 octets the decision needs into arrays of field
//! pairs (a word per field, in wire order; a pair per 8-octet store). One loop over the burst then computes, for every frame
//! without a branch, whether it has the shape the fast path takes (to this port's MAC, IPv4
//! without options or fragmentation, a good header checksum, TTL above 1, TCP or UDP with the
//! whole header, from a unicast source), whether the tables' one lane service
//! ([`LaneService`]) matches it, and its two buckets; or whether it has the shape of a
//! cache's GRE return (WCCP's GRE to one of our few addresses). Those checks and the hashes
//! are most of what the per-packet fast path (`pipeline::fast`) spends on a packet; here they
//! cost a few vector instructions per frame (docs/BENCHMARKS.md).
//!
//! The per-packet loop then asks `Lanes::decide` first. For a frame the pre-pass found
//! redirectable or routable, it does the rest (the route unless the arrival port redirects
//! in, the redirect direction, the bucket's owner) and the same rewrite as the fast path
//! (`pipeline::fast_gre`, `pipeline::fast_route`); a return goes to the fast path's
//! decapsulation (`pipeline::fast_return`). For any other frame, or when one of those steps
//! declines, it returns `None` with nothing changed or counted, and the frame takes the
//! usual path. So a
//! frame ends exactly as `pipeline::process` would end it (`tests/fast_path.rs`).

use multiversion::multiversion;
use wire::ethernet;
use wire::ipv4::{PROTOCOL_GRE, PROTOCOL_TCP, PROTOCOL_UDP};
use wire::l4;

use crate::buf::{PacketBuf, BURST};
use crate::counters::{LcoreCounters, Reason, ServiceCounters};
use crate::pipeline::{
    fast_gre, fast_return, fast_route, le_word, process_received, ttl_decremented, Action, Ctx,
    HeaderWords, InPort, MAC_BITS,
};
use crate::tables::{AddrFilter, AddrSet, FastService, LaneService, Tables};

/// [`Lanes::verdict`]: the frame takes the usual path.
const USUAL: u8 = 0;
/// [`Lanes::verdict`]: the shape the fast path takes, not the lane service's: routed.
const ROUTE: u8 = 1;
/// [`Lanes::verdict`]: the shape the fast path takes, the lane service's and not a SYN.
const REDIRECT: u8 = 2;

/// [`Lanes::verdict`]: the shape the fast path takes of a packet to one of our addresses,
/// GRE: a cache's return, for `pipeline::fast_return`.
const RETURN: u8 = 3;

/// In [`Lanes::tcp_eth`]'s first word: the destination is routed by the DIR-8 table's first
/// candidate and is no special destination ([`LaneService::first`]).
const ROUTED_BIT: u32 = 16;

/// Octets of a frame the pre-pass reads: Ethernet, IPv4 without options, and TCP up to its
/// flags and window. Shorter frames take the usual path.
const READ: usize = 50;

/// The pre-pass's per-burst state: the fields of each frame of the burst, one array per pair
/// of fields (each field `u32::from_le_bytes` of four octets of the frame), and the results.
/// Lives in the worker, so that nothing is cleared per burst; entries beyond the burst are
/// stale and never used.
///
/// Fields are stored in pairs, one 8-octet store per pair: the read loop is bound by its
/// stores (one per cycle to different cache lines on the reference host), and five stores per
/// frame cost half of what ten fields and the length did (docs/BENCHMARKS.md, session 8). The
/// pass loads each pair array as two vectors and separates the halves.
#[derive(Clone, Debug)]
pub struct Lanes {
    /// Octets 0-3, and octets 4-5 with the frame's length in the high half: the destination
    /// MAC and the length (0 for a frame shorter than [`READ`] or longer than 65,535 octets).
    mac_len: [[u32; 2]; BURST],
    /// Octets 46-47 (TCP data offset and flags) with [`ROUTED_BIT`] above them, and octets
    /// 12-15 (ethertype, version/IHL, TOS).
    tcp_eth: [[u32; 2]; BURST],
    /// Octets 14-37: the IPv4 header's five words and the ports word, in pairs.
    ip: [[[u32; 2]; BURST]; 3],
    /// [`USUAL`], [`ROUTE`], [`REDIRECT`] or [`RETURN`].
    verdict: [u8; BURST],
    /// The lane service's buckets as `pipeline::fast_gre` takes them: the alternate in the
    /// low octet, the primary in the high one.
    buckets: [u16; BURST],
    /// The IPv4 total length.
    total: [u32; BURST],
    /// The IPv4 header's third word after the TTL decrement (`pipeline::ttl_decremented`).
    ttl: [u32; BURST],
    /// Frames of the burst with [`REDIRECT`], from the pass; with [`LaneCtx::direct`], then
    /// those of them redirected so far or still to come: counted once per burst
    /// ([`Lanes::finish`]).
    redirects: u32,
}

/// What [`Lanes::decide`] needs of the burst's lane service: its fast form and its counters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LaneCtx<'a> {
    fs: &'a FastService,
    ctr: &'a ServiceCounters,
    /// The pass tested a [`RETURN`]'s source against every member cache and its GRE word
    /// (`pipeline::fast_return` need not).
    returns_checked: bool,
    /// The arrival port redirects what arrives on it and the routes are the DIR-8 table: a
    /// frame the pass found redirectable is redirected whatever its route
    /// (`pipeline::redirect_applies`), which the pass found to exist and to have an egress
    /// port ([`LaneService::first`]).
    direct: bool,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes {
            mac_len: [[0; 2]; BURST],
            tcp_eth: [[0; 2]; BURST],
            ip: [[[0; 2]; BURST]; 3],
            verdict: [USUAL; BURST],
            buckets: [0; BURST],
            total: [0; BURST],
            ttl: [0; BURST],
            redirects: 0,
        }
    }
}

/// The per-burst constants of [`compute`].
struct Key<'t> {
    /// The arrival port's MAC: octets 0-3 and 4-5 as read.
    mac_lo: u32,
    mac_hi: u32,
    /// The lane service, with its hash masks and member test.
    lane: &'t LaneService,
    /// Whether there are more member caches than [`LaneService::members`] holds (then the
    /// pass tests [`LaneService::member_filter`] as well).
    many: bool,
    /// [`LaneService::locals`], and whether there are any.
    locals: [u32; AddrSet::FEW],
    returns: bool,
    /// Frames in the burst (the slots after them are stale).
    n: usize,
}

impl Lanes {
    /// Reads the burst `bufs` (at most [`BURST`] frames) received on `inp` and computes every
    /// frame's verdict and buckets, when `t` has a lane service: then what
    /// [`Lanes::decide`] needs of it (its counters in `counters`); `None` (and nothing read)
    /// otherwise.
    #[inline(always)]
    pub(crate) fn read<'a, B: PacketBuf>(
        &mut self,
        t: &'a Tables,
        counters: &'a LcoreCounters,
        inp: InPort<'_>,
        bufs: &[B],
    ) -> Option<LaneCtx<'a>> {
        self.read_with(t, counters, inp, bufs, compute)
    }

    /// [`Lanes::read`]'s read loop without its vector pass (the verdicts are stale): the
    /// read loop's own cost, for [`crate::stages`].
    #[inline(always)]
    pub(crate) fn read_only<B: PacketBuf>(
        &mut self,
        t: &Tables,
        counters: &LcoreCounters,
        inp: InPort<'_>,
        bufs: &[B],
    ) {
        let _ = self.read_with(t, counters, inp, bufs, |_, _| {});
    }

    /// [`Lanes::read`] with the pass `compute_with` ([`compute`] or, in tests,
    /// [`compute_baseline`]).
    #[inline(always)]
    fn read_with<'a, B: PacketBuf>(
        &mut self,
        t: &'a Tables,
        counters: &'a LcoreCounters,
        inp: InPort<'_>,
        bufs: &[B],
        compute_with: fn(&mut Lanes, &Key<'_>),
    ) -> Option<LaneCtx<'a>> {
        let lane = t.lane.as_ref()?;
        let fs = t.services.get(lane.index)?.fast.as_deref()?;
        // A burst whose first frame is not for this port's MAC (a flood of other stations'
        // frames, say) skips the pass, which would only cost: the usual path drops them.
        let first = bufs.first()?.as_ref().first_chunk::<8>()?;
        if u64::from_le_bytes(*first) & MAC_BITS != inp.mac {
            return None;
        }
        // Indexed up to a bound below both lengths (no bounds check per field), two frames
        // per iteration (half the loop's own instructions).
        let n = bufs.len().min(BURST);
        let first = &lane.first;
        let mut i = 0;
        while i + 1 < n {
            self.read_one(bufs[i].as_ref(), i, first);
            self.read_one(bufs[i + 1].as_ref(), i + 1, first);
            i += 2;
        }
        if i < n {
            self.read_one(bufs[i].as_ref(), i, first);
        }
        // The port's MAC as the two words read above (all ones, which no 16 bits equal, when
        // frames to it take the usual path).
        let key = Key {
            mac_lo: inp.mac as u32,
            mac_hi: (inp.mac >> 32) as u32,
            lane,
            many: lane.member_filter != AddrFilter::default(),
            locals: lane.locals.unwrap_or_default(),
            returns: lane.locals.is_some(),
            n: bufs.len(),
        };
        compute_with(self, &key);
        Some(LaneCtx {
            fs,
            ctr: counters.service_below_max(fs.slot),
            returns_checked: lane.members_exact,
            direct: inp.info.redirect_in && t.lpm.is_dir8(),
        })
    }

    /// Copies frame `d`'s header words into slot `i` (below [`BURST`]) with the route test
    /// of its destination in `first` ([`LaneService::first`]), or marks it short.
    #[inline(always)]
    fn read_one(&mut self, d: &[u8], i: usize, first: &[(u32, u32); 256]) {
        let i = i % BURST;
        match d.first_chunk::<READ>() {
            // (An mbuf's segment is never longer: only a test's buffer may be.)
            Some(h) if d.len() <= 0xffff => {
                let len = d.len() as u32;
                // The destination's route test ([`LaneService::first`]): a table lookup,
                // cheap here and dear in the pass, where it is a vector gather (about 28
                // cycles per 16 frames on the reference host: docs/BENCHMARKS.md, session 8).
                let e4 = le_word(h, 30);
                let (net, mask) = first[(e4 & 0xff) as usize];
                let routed = u32::from(e4 & mask == net);
                // Each pair as one 8-octet store ([`Lanes`]): the pair built as one value (a
                // pair of separately computed words compiles to two stores).
                let pair = |lo: u32, hi: u32| -> [u32; 2] {
                    let w = u64::from(lo) | u64::from(hi) << 32;
                    zerocopy::transmute!(w.to_ne_bytes())
                };
                self.mac_len[i] = pair(le_word(h, 0), (le_word(h, 4) & 0xffff) | len << 16);
                let tcp = (le_word(h, 46) & 0xffff) | routed << ROUTED_BIT;
                self.tcp_eth[i] = pair(tcp, le_word(h, 12));
                for (k, w) in self.ip.iter_mut().enumerate() {
                    w[i] = [le_word(h, 14 + 8 * k), le_word(h, 18 + 8 * k)];
                }
            }
            _ => self.mac_len[i] = [0, 0],
        }
    }

    /// Frame `i` of the burst read last, `b`, received on `inp`, with what [`Lanes::read`]
    /// returned: `Some` with the port to send it on, counted as the fast path counts it (a
    /// direct redirect in [`Lanes::finish`]), when the pre-pass and the tables let this decide
    /// it; `None`, with nothing changed or counted, for the usual path, and the caller calls
    /// [`Lanes::declined`].
    #[inline(always)]
    pub(crate) fn decide<B: PacketBuf>(
        &self,
        cx: &mut Ctx<'_>,
        inp: InPort<'_>,
        lane: LaneCtx<'_>,
        i: usize,
        b: &mut B,
    ) -> Option<u16> {
        let i = i % BURST;
        let v = self.verdict[i];
        if v == USUAL {
            return None;
        }
        let total = self.total[i] as usize;
        let len = (self.mac_len[i][1] >> 16) as usize;
        let ttl = self.ttl[i];
        // IPv4 words 2 and 3 (protocol, source) and 4 (destination).
        let ([e2, e3], [e4, _]) = (self.ip[1][i], self.ip[2][i]);
        if v == REDIRECT && lane.direct {
            let k = self.buckets[i];
            return fast_gre::<_, false>(cx, b, lane.fs, lane.ctr, k, total, len, ttl);
        }
        if v == RETURN {
            return fast_return(cx, b, total, e3.swap_bytes(), lane.returns_checked);
        }
        let t = cx.tables;
        let dst = e4.swap_bytes();
        let route = if t.lpm.is_dir8() {
            // The pre-pass found the destination in its first octet's longest prefix.
            t.lpm.first_hit(e4 as u8)
        } else {
            t.lpm.lookup(dst)?
        };
        let ep = route.egress.as_ref()?;
        let info = inp.info;
        // As `redirect_applies` (the source is no member: the pre-pass's filter said so).
        if v == REDIRECT && (info.redirect_in || (ep.redirect_out && !info.exclude_in)) {
            let k = self.buckets[i];
            return fast_gre::<_, true>(cx, b, lane.fs, lane.ctr, k, total, len, ttl);
        }
        let tcp = (e2 >> 8) & 0xff == u32::from(PROTOCOL_TCP);
        let flags = if tcp {
            (self.tcp_eth[i][0] >> 8) as u8
        } else {
            0
        };
        fast_route(cx, b, route, ep, dst, total, len, flags, ttl)
    }

    /// [`Lanes::decide`] returned `None` for frame `i`: it takes the usual path, which counts
    /// it.
    #[inline(always)]
    pub(crate) fn declined(&mut self, lane: LaneCtx<'_>, i: usize) {
        if lane.direct && self.verdict[i % BURST] == REDIRECT {
            self.redirects -= 1;
        }
    }

    /// Counts the burst's direct redirects (see [`Lanes::decide`]), after its last frame.
    #[inline(always)]
    pub(crate) fn finish(&self, counters: &LcoreCounters, lane: LaneCtx<'_>) {
        if lane.direct && self.redirects > 0 {
            let n = u64::from(self.redirects);
            counters.add(Reason::RedirectedGre, n);
            lane.ctr.redirected.add(n);
        }
    }
}

/// One burst as the worker handles it, for tests: `bufs` (at most [`BURST`] frames, the rest
/// are ignored), received on `in_port`, counted as received at once, through the pre-pass
/// and, for each frame it leaves, the pipeline (`pipeline::process` without counting `rx`
/// again). Per frame: its action, whether the pre-pass decided it, and the frame. With
/// `baseline`, the pass is compiled for the build's baseline CPU instead of the version the
/// CPU at hand selects.
#[doc(hidden)]
pub fn process_burst<B: PacketBuf>(
    cx: &mut Ctx<'_>,
    in_port: u16,
    bufs: Vec<B>,
    baseline: bool,
) -> Vec<(Action, bool, B)> {
    let t = cx.tables;
    let inp = InPort::of(t, in_port);
    let mut lanes = Box::<Lanes>::default();
    let bufs: Vec<B> = bufs.into_iter().take(BURST).collect();
    cx.counters.add(Reason::Rx, bufs.len() as u64);
    let pass = if baseline { compute_baseline } else { compute };
    let lane = lanes.read_with(t, cx.counters, inp, &bufs, pass);
    let out = bufs
        .into_iter()
        .enumerate()
        .map(|(i, mut b)| {
            let decided = lane.and_then(|l| lanes.decide(cx, inp, l, i, &mut b));
            let a = match (decided, lane) {
                (Some(p), _) => Action::Tx(p),
                (None, Some(l)) => {
                    lanes.declined(l, i);
                    process_received(cx, in_port, inp, &mut b)
                }
                (None, None) => process_received(cx, in_port, inp, &mut b),
            };
            (a, decided.is_some(), b)
        })
        .collect();
    if let Some(l) = lane {
        lanes.finish(cx.counters, l);
    }
    out
}

/// The verdicts and buckets of every slot of `l`, from the fields [`Lanes::read`] stored: one
/// pass with no branch and no early exit, which the compiler computes several slots at a
/// time in vector registers: 4 with SSE, 8 with AVX2, 16 with AVX-512, chosen once at run
/// time for the CPU at hand (`multiversion`).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl", "x86_64+avx2", "x86_64+sse4.1",))]
fn compute(l: &mut Lanes, key: &Key<'_>) {
    compute_baseline(l, key);
}

/// [`compute`]'s body, compiled for the build's baseline CPU (SSE2 on x86-64) wherever it is
/// not inlined into one of `compute`'s versions: the tests run it as well as the version the
/// CPU at hand selects.
#[inline(always)]
fn compute_baseline(l: &mut Lanes, key: &Key<'_>) {
    if key.many {
        compute_body::<true>(l, key);
    } else {
        compute_body::<false>(l, key);
    }
}

/// [`compute_baseline`]'s loop, with the member filter's lookup only when there are `MANY`
/// members (table lookups are gathers in vector code, the pass's dearest instructions).
#[inline(always)]
fn compute_body<const MANY: bool>(l: &mut Lanes, key: &Key<'_>) {
    let syn = u32::from(l4::TCP_SYN);
    // The destination port as its octets read in the high half of the ports word.
    let dport = u32::from(key.lane.port.swap_bytes());
    let mut redirects = 0;
    for i in 0..BURST {
        let ([e0, e1], [e2, e3], [e4, ports]) = (l.ip[0][i], l.ip[1][i], l.ip[2][i]);
        let ([m0, m1], [tcpw, eth]) = (l.mac_len[i], l.tcp_eth[i]);
        let len = m1 >> 16;
        let h = HeaderWords([e0, e1, e2, e3, e4]);
        let ok_mac = (m0 == key.mac_lo) & ((m1 & 0xffff) == key.mac_hi);
        // Ethertype IPv4 (08 00), version 4 with a 20-octet header (45).
        let ok_eth = eth & 0x00ff_ffff == 0x0045_0008;
        let ok_sum = h.checksum_ok();
        let total = h.total() as u32;
        let p = u32::from(h.protocol());
        let tcp = p == u32::from(PROTOCOL_TCP);
        let udp = p == u32::from(PROTOCOL_UDP);
        // A whole TCP or UDP header, and the packet within the frame.
        let least = 24 + 16 * u32::from(tcp);
        let ok_len = (total >= least) & (total + ethernet::HEADER_LEN as u32 <= len);
        let ok_frag = !h.fragment();
        let ok_ttl = h.ttl() > 1;
        // A source outside 224.0.0.0/4.
        let ok_src = e3 & 0xf0 != 0xe0;
        // Sources that are member caches (the usual path routes their packets), exactly when
        // there are few, else by a filter.
        let few = key.lane.members.iter().fold(false, |a, &m| a | (m == e3));
        let member = few | (MANY && key.lane.member_filter.has_octet(e3 >> 24));
        // The DIR-8 table's first candidate holds the destination, so its route is the one,
        // and the destination's first octet is none that some group, broadcast or own
        // address has (the usual path checks those): tested as the frame was read.
        let routed = tcpw >> ROUTED_BIT != 0;
        let shape =
            ok_mac & ok_eth & ok_sum & ok_len & ok_frag & ok_ttl & (tcp | udp) & ok_src & routed;
        let svc = (p == u32::from(key.lane.protocol)) & (ports >> 16 == dport);
        let is_syn = tcp & ((tcpw >> 8) & syn != 0);
        let v = u8::from(shape) * (ROUTE + u8::from(svc));
        let v = v & (u8::from(svc & (is_syn | member)).wrapping_sub(1));
        // A cache's GRE return: the checks the fast path makes before `fast_return` (which
        // tests the rest). Our addresses are special destinations, so `v` is USUAL then.
        let local = key.locals.iter().fold(false, |a, &m| a | (m == e4)) & key.returns;
        let gre = p == u32::from(PROTOCOL_GRE);
        // From a member cache (exact when `LaneService::members_exact`, else `fast_return`
        // tests it: `LaneCtx::returns_checked`) and WCCP's GRE without flags (00 00 88 3E,
        // the ports word's octets).
        let from_cache = few | MANY;
        let wccp = ports == u32::from_le_bytes([0, 0, 0x88, 0x3e]);
        let ret = ok_mac & ok_eth & ok_sum & ok_len & ok_frag & ok_src & gre & local;
        let ret = ret & from_cache & wccp;
        let v = v | (RETURN * u8::from(ret));
        l.verdict[i] = v;
        redirects += u32::from(v == REDIRECT) & u32::from(i < key.n);
        let bucket = |m: [u32; 3]| {
            let k = (e3 & m[0]) ^ (e4 & m[1]) ^ (ports & m[2]);
            let k = k ^ (k >> 16);
            (k ^ (k >> 8)) as u8
        };
        l.total[i] = total;
        l.ttl[i] = ttl_decremented(e2);
        l.buckets[i] = u16::from_le_bytes([bucket(key.lane.hash[1]), bucket(key.lane.hash[0])]);
    }
    l.redirects = redirects;
}
