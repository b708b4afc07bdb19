//! The cache agent's GRE worker (docs/protocol.md §4.4): hands redirected packets the cache refuses
//! back to the router that redirected them and, with `cache.tun`, decapsulates the accepted ones
//! itself and writes them to a TUN device ([`crate::cache_tun`]).
//!
//! One thread reads a raw IPv4 socket for IP protocol 47 bound to the cache address. The kernel
//! gives every raw socket a *copy* of each matching datagram, outer IPv4 header included. For
//! every WCCP GRE packet addressed to the cache and not sent by it (GRE protocol 0x883E; with
//! `cache.tun` also plain 0x0800, which some routers use, without a redirect header), the
//! worker:
//!
//! 1. parses it with [`control::packet_return::parse_redirected_with`] (the wire crate's views,
//!    GRE under [`GreRule::LINUX`]: no flags, the first-nibble rule for the redirect header); a
//!    malformed packet is counted, with the error kept as `last_error`, never a panic;
//! 2. finds the configured service named by the redirect header (flag 0x01 = dynamic, octet 1 =
//!    service id; a packet without a header means web-cache, standard 0);
//! 3. applies that service's `return_policy` (source prefixes, then destination prefixes, then
//!    load) with [`control::packet_return`];
//! 4. refused: sends [`control::packet_return::build_return`]'s packet (outer IPv4 cache ->
//!    router, GRE 0x883E, redirect header copied, inner packet unchanged) to the packet's outer
//!    source. The socket has `IP_HDRINCL` set, so the outer header built (and tested) by
//!    `packet_return` goes on the wire as built; the kernel only fills in the checksum.
//! 5. accepted (or for a service without a policy here): without `cache.tun`, counted only: the
//!    kernel's own GRE handling (an `ip tunnel ... mode gre` interface plus TPROXY) delivers the
//!    packet locally. With `cache.tun`, the inner IPv4 packet is written to the TUN device, so
//!    no kernel GRE support is needed; refused packets are then *not* delivered locally, and
//!    GRE from outer sources outside `cache.tun.accept_from` is dropped (`unknown_peer`).
//!
//! # Load
//! The load figure compared with `max_load` is a percentage: the first field of
//! `cache.load_source` (default `/proc/loadavg`, the 1-minute load average) divided by the number
//! of CPUs available to the process, times 100, rounded down (`2.5` on 4 CPUs = 62 %). The file
//! is read at most once per second, and only while some policy has a `max_load`. If it cannot be
//! read or parsed, the previous figure stays (0 at start) and the error is shown as
//! `load_error`.

use std::io::{self, Read as _};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use control::packet_return::{self, GreRule, RefuseReason, ReturnPolicy};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use wire::{GrePacket, Ipv4Packet};

use crate::cache_tun::{TunCounters, TunDevice, TunSettings};

/// How often the worker wakes up to check its stop flag.
const POLL: Duration = Duration::from_millis(200);
/// The load source is read at most this often.
const LOAD_REFRESH: Duration = Duration::from_secs(1);
/// Redirect-header flag: dynamic service.
const FLAG_DYNAMIC: u8 = 0x01;
/// GRE protocol type of plain IPv4 (accepted as WCCP GRE without a redirect header when
/// decapsulating into a TUN device).
const GRE_PROTO_IPV4: u16 = wire::gre::PROTOCOL_IPV4;
/// GRE protocol type of WCCP.
const GRE_PROTO_WCCP: u16 = wire::gre::PROTOCOL_WCCP;
/// IP protocol number of GRE.
const IPPROTO_GRE: u8 = wire::ipv4::PROTOCOL_GRE;

/// One service's return policy, keyed as the redirect header names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePolicy {
    /// Dynamic (`true`) or well-known service.
    pub dynamic: bool,
    /// Service id.
    pub id: u8,
    /// When to hand packets back.
    pub policy: ReturnPolicy,
}

/// What the worker needs from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnSettings {
    /// The cache's address: the raw socket is bound to it, return packets leave from it.
    pub address: Ipv4Addr,
    /// Services with a non-empty return policy.
    pub services: Vec<ServicePolicy>,
    /// File whose first field is the load average (`/proc/loadavg` format).
    pub load_source: PathBuf,
    /// User-space decapsulation into a TUN device (`cache.tun`); `None`: packets are only
    /// inspected, and a kernel GRE interface must deliver the accepted ones.
    pub tun: Option<TunSettings>,
}

impl ReturnSettings {
    /// The worker's settings, or `None` when no service has a return policy and `cache.tun` is
    /// absent (no worker then).
    pub fn from_config(s: &config::CacheSettings) -> Option<ReturnSettings> {
        let services: Vec<ServicePolicy> = s
            .services
            .iter()
            .filter(|svc| !svc.return_policy.is_empty())
            .map(|svc| ServicePolicy {
                dynamic: svc.definition.dynamic,
                id: svc.definition.id,
                policy: svc.return_policy.clone(),
            })
            .collect();
        let tun = s.tun.as_ref().map(TunSettings::from_config);
        (!services.is_empty() || tun.is_some()).then(|| ReturnSettings {
            address: s.address,
            services,
            load_source: s.load_source.clone(),
            tun,
        })
    }

    fn service(&self, header: Option<[u8; 4]>) -> Option<&ServicePolicy> {
        let (dynamic, id) = match header {
            Some(h) => (h[0] & FLAG_DYNAMIC != 0, h[1]),
            None => (false, 0),
        };
        self.services
            .iter()
            .find(|s| s.dynamic == dynamic && s.id == id)
    }
}

/// The worker's counters (shared with the control socket).
#[derive(Debug, Default)]
pub struct ReturnCounters {
    /// WCCP GRE packets addressed to the cache (not sent by it).
    pub received: AtomicU64,
    /// Served locally (left to the kernel, or written to the TUN device).
    pub accepted: AtomicU64,
    /// Returned: inner source in `refuse_sources`.
    pub returned_source: AtomicU64,
    /// Returned: inner destination in `refuse_destinations`.
    pub returned_destination: AtomicU64,
    /// Returned: load above `max_load`.
    pub returned_load: AtomicU64,
    /// WCCP GRE for a service without a return policy here (served locally as well).
    pub unmatched: AtomicU64,
    /// Other GRE, our own packets, packets for another address, GRE from an unknown peer.
    pub ignored: AtomicU64,
    /// Packets that could not be parsed.
    pub malformed: AtomicU64,
    /// Return packets the kernel refused to send.
    pub send_errors: AtomicU64,
    /// Latest load figure, percent.
    pub load_percent: AtomicU64,
    /// Detail of the latest malformed packet or send error.
    pub last_error: Mutex<Option<String>>,
    /// Why the load source could not be read, if it could not (last attempt).
    pub load_error: Mutex<Option<String>>,
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

use crate::cache_tun::{get, set_text, text};

impl ReturnCounters {
    /// The counters as the `packet_return` object of `wccpd show`.
    pub fn report(&self) -> ReturnReport {
        let by = ReturnedByReason {
            source: get(&self.returned_source),
            destination: get(&self.returned_destination),
            load: get(&self.returned_load),
        };
        ReturnReport {
            received: get(&self.received),
            accepted: get(&self.accepted),
            returned: by.source + by.destination + by.load,
            returned_by_reason: by,
            unmatched: get(&self.unmatched),
            ignored: get(&self.ignored),
            malformed: get(&self.malformed),
            send_errors: get(&self.send_errors),
            last_error: text(&self.last_error),
            load_percent: get(&self.load_percent),
            load_error: text(&self.load_error),
        }
    }
}

/// The `packet_return` object of `wccpd show`: a snapshot of [`ReturnCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReturnReport {
    /// WCCP GRE packets addressed to the cache.
    pub received: u64,
    /// Served locally.
    pub accepted: u64,
    /// Returned to the router, for any reason.
    pub returned: u64,
    /// Returned, by reason.
    pub returned_by_reason: ReturnedByReason,
    /// WCCP GRE for a service without a return policy here.
    pub unmatched: u64,
    /// Other GRE, our own packets, packets for another address, GRE from an unknown peer.
    pub ignored: u64,
    /// Packets that could not be parsed.
    pub malformed: u64,
    /// Return packets the kernel refused to send.
    pub send_errors: u64,
    /// Detail of the latest malformed packet or send error.
    pub last_error: Option<String>,
    /// Latest load figure, percent.
    pub load_percent: u64,
    /// Why the load source could not be read, if it could not.
    pub load_error: Option<String>,
}

/// Returned packets by the rule that refused them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReturnedByReason {
    /// Inner source in `refuse_sources`.
    pub source: u64,
    /// Inner destination in `refuse_destinations`.
    pub destination: u64,
    /// Load above `max_load`.
    pub load: u64,
}

/// Reads the load figure from a `/proc/loadavg`-format file, at most once per [`LOAD_REFRESH`].
#[derive(Debug)]
struct LoadSampler {
    path: PathBuf,
    cpus: u32,
    last_read: Option<Instant>,
    percent: u32,
}

/// Load percent from the text of a `/proc/loadavg`-format file on `cpus` CPUs.
///
/// # Errors
/// A message naming the problem if the first field is missing or not a non-negative number.
pub fn load_percent(text: &str, cpus: u32) -> Result<u32, String> {
    let first = text
        .split_whitespace()
        .next()
        .ok_or_else(|| "empty load source".to_string())?;
    let avg: f64 = first
        .parse()
        .map_err(|_| format!("first field {first:?} is not a number"))?;
    if !avg.is_finite() || avg < 0.0 {
        return Err(format!("first field {first:?} is not a load average"));
    }
    let pct = (avg * 100.0 / f64::from(cpus.max(1))).floor();
    // `as` saturates: a huge figure becomes u32::MAX.
    Ok(pct as u32)
}

impl LoadSampler {
    fn new(path: PathBuf) -> LoadSampler {
        let cpus = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        LoadSampler {
            path,
            cpus,
            last_read: None,
            percent: 0,
        }
    }

    fn read(path: &Path, cpus: u32) -> Result<u32, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        load_percent(&text, cpus).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn get(&mut self, now: Instant, counters: &ReturnCounters) -> u32 {
        if self
            .last_read
            .is_none_or(|t| now.duration_since(t) >= LOAD_REFRESH)
        {
            self.last_read = Some(now);
            match Self::read(&self.path, self.cpus) {
                Ok(p) => {
                    self.percent = p;
                    set_text(&counters.load_error, None);
                }
                Err(e) => set_text(&counters.load_error, Some(e)),
            }
            counters
                .load_percent
                .store(u64::from(self.percent), Ordering::Relaxed);
        }
        self.percent
    }
}

/// The running worker; [`ReturnWorker::stop`] ends it.
#[derive(Debug)]
pub struct ReturnWorker {
    stop: Arc<AtomicBool>,
    counters: Arc<ReturnCounters>,
    tun: Option<(TunSettings, Arc<TunCounters>)>,
    thread: Option<JoinHandle<()>>,
}

fn open_socket(address: Ipv4Addr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(IPPROTO_GRE))),
    )?;
    socket.set_header_included_v4(true)?;
    socket.set_read_timeout(Some(POLL))?;
    socket.bind(&SockAddr::from(SocketAddrV4::new(address, 0)))?;
    Ok(socket)
}

impl ReturnWorker {
    /// Opens the raw GRE socket (needs `CAP_NET_RAW`), with `settings.tun` creates the TUN
    /// device (needs `CAP_NET_ADMIN`), and starts the worker thread.
    ///
    /// # Errors
    /// The socket cannot be created, configured or bound to `settings.address`; the TUN device
    /// cannot be created or configured.
    pub fn start(settings: ReturnSettings) -> anyhow::Result<ReturnWorker> {
        let socket = open_socket(settings.address).with_context(|| {
            format!(
                "cannot open the raw GRE socket on {} (raw IP protocol 47 needs CAP_NET_RAW)",
                settings.address
            )
        })?;
        let tun = match &settings.tun {
            Some(t) => {
                let counters = Arc::new(TunCounters::default());
                let dev = TunDevice::open(t, &counters).with_context(|| {
                    format!(
                        "cannot create TUN device {} with address {}/32 (needs CAP_NET_ADMIN and \
                         /dev/net/tun; an existing interface of that name must be a TUN device)",
                        t.name, t.address
                    )
                })?;
                Some((dev, counters))
            }
            None => None,
        };
        let tun_info = settings
            .tun
            .clone()
            .zip(tun.as_ref().map(|(_, c)| Arc::clone(c)));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ReturnCounters::default());
        let thread = {
            let stop = Arc::clone(&stop);
            let counters = Arc::clone(&counters);
            std::thread::Builder::new()
                .name("wccp-return".into())
                .spawn(move || run(&socket, &settings, &stop, &counters, tun))?
        };
        Ok(ReturnWorker {
            stop,
            counters,
            tun: tun_info,
            thread: Some(thread),
        })
    }

    /// The live counters.
    pub fn counters(&self) -> Arc<ReturnCounters> {
        Arc::clone(&self.counters)
    }

    /// The TUN settings and live counters, when decapsulating into a TUN device.
    pub fn tun(&self) -> Option<(TunSettings, Arc<TunCounters>)> {
        self.tun.clone()
    }

    /// Stops the thread and waits for it (at most one poll interval); the TUN device, if any,
    /// is closed (and so removed) before this returns.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ReturnWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What [`handle`] did with one datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Not ours to look at (other GRE, our own packet, another destination).
    Ignored,
    /// WCCP GRE from an outer source outside `cache.tun.accept_from` (only when decapsulating
    /// into a TUN device): neither delivered nor returned. The outer source.
    UnknownPeer(Ipv4Addr),
    /// WCCP GRE for a service without a policy here.
    Unmatched,
    /// Could not be parsed.
    Malformed(String),
    /// Served locally.
    Accepted,
    /// To be sent to `router`.
    Returned {
        /// Why.
        reason: RefuseReason,
        /// The outer source of the received packet.
        router: Ipv4Addr,
        /// The return packet (outer IPv4 header included).
        packet: Vec<u8>,
    },
}

/// Classifies one received datagram (outer IPv4 header first) and builds its return packet if
/// refused. `load` is called only when the matched policy has a `max_load`.
pub fn handle(
    settings: &ReturnSettings,
    pkt: &[u8],
    ip_id: u16,
    load: impl FnOnce() -> u32,
) -> Handled {
    inspect(settings, pkt, ip_id, load).0
}

/// As [`handle`], plus the inner IPv4 packet (exactly its total length) to deliver locally:
/// `Some` for [`Handled::Accepted`] and [`Handled::Unmatched`], `None` otherwise.
pub fn inspect<'p>(
    settings: &ReturnSettings,
    pkt: &'p [u8],
    ip_id: u16,
    load: impl FnOnce() -> u32,
) -> (Handled, Option<&'p [u8]>) {
    let tun = settings.tun.as_ref();
    // Cheap pre-checks, before any length or checksum is verified, so that non-WCCP GRE and
    // our own packets are not "malformed".
    if pkt.len() >= wire::ipv4::HEADER_LEN {
        let outer = Ipv4Packet::new_unchecked(pkt);
        if outer.version() == 4 && outer.protocol() == IPPROTO_GRE {
            let src = outer.src();
            if src == settings.address || outer.dst() != settings.address {
                return (Handled::Ignored, None);
            }
            if let Some(gre) = pkt.get(outer.header_len()..) {
                if gre.len() >= wire::gre::HEADER_LEN {
                    let proto = GrePacket::new_unchecked(gre).protocol();
                    if proto != GRE_PROTO_WCCP && !(tun.is_some() && proto == GRE_PROTO_IPV4) {
                        return (Handled::Ignored, None);
                    }
                }
            }
            if tun.is_some_and(|t| !t.accepts(src)) {
                return (Handled::UnknownPeer(src), None);
            }
        }
    }
    let rule = GreRule {
        plain_ipv4: tun.is_some(),
        ..GreRule::LINUX
    };
    let r = match packet_return::parse_redirected_with(pkt, rule) {
        Ok(r) => r,
        Err(e) => return (Handled::Malformed(e.to_string()), None),
    };
    let Some(svc) = settings.service(r.redirect_header) else {
        return (Handled::Unmatched, Some(r.inner));
    };
    let load = if svc.policy.max_load.is_some() {
        load()
    } else {
        0
    };
    match packet_return::decide(&svc.policy, &r, load) {
        packet_return::Decision::Accept => (Handled::Accepted, Some(r.inner)),
        packet_return::Decision::Refuse(reason) => match packet_return::build_return(&r, ip_id) {
            Ok(packet) => (
                Handled::Returned {
                    reason,
                    router: r.router,
                    packet,
                },
                None,
            ),
            Err(e) => (Handled::Malformed(e.to_string()), None),
        },
    }
}

fn run(
    socket: &Socket,
    settings: &ReturnSettings,
    stop: &AtomicBool,
    counters: &ReturnCounters,
    mut tun: Option<(TunDevice, Arc<TunCounters>)>,
) {
    tracing::info!(
        address = %settings.address,
        services = settings.services.len(),
        load_source = %settings.load_source.display(),
        tun = settings.tun.as_ref().map_or("none (kernel GRE delivers)", |t| t.name.as_str()),
        "GRE packet return ready"
    );
    let mut buf = vec![0u8; 65_535];
    let mut load = LoadSampler::new(settings.load_source.clone());
    let mut ip_id: u16 = 0;
    while !stop.load(Ordering::SeqCst) {
        let n = match (&*socket).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(error = %e, "GRE return socket read failed");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let pkt = &buf[..n];
        ip_id = ip_id.wrapping_add(1);
        let (handled, deliver) =
            inspect(settings, pkt, ip_id, || load.get(Instant::now(), counters));
        if !matches!(handled, Handled::Ignored | Handled::UnknownPeer(_)) {
            bump(&counters.received);
        }
        if let Some((dev, tc)) = tun.as_mut() {
            match handled {
                Handled::Accepted | Handled::Unmatched | Handled::Returned { .. } => {
                    bump(&tc.decapsulated);
                }
                Handled::UnknownPeer(src) => {
                    // Most likely a router sending GRE from an address not in accept_from:
                    // say so once, loudly.
                    if tc.unknown_peer.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(
                            %src,
                            "WCCP GRE from a source outside cache.tun.accept_from dropped \
                             (counted as tun.unknown_peer); add the router's GRE source address \
                             to accept_from if it is one"
                        );
                    } else {
                        tracing::debug!(%src, "WCCP GRE from an unknown peer dropped");
                    }
                }
                Handled::Ignored | Handled::Malformed(_) => {}
            }
            if let Some(inner) = deliver {
                match dev.write(inner) {
                    Ok(()) => bump(&tc.written),
                    Err(e) => {
                        if tc.write_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::warn!(error = %e, "TUN write failed (further ones: debug)");
                        } else {
                            tracing::debug!(error = %e, "TUN write failed");
                        }
                        set_text(&tc.last_error, Some(e.to_string()));
                    }
                }
            }
        }
        match handled {
            Handled::Ignored | Handled::UnknownPeer(_) => bump(&counters.ignored),
            Handled::Unmatched => bump(&counters.unmatched),
            Handled::Accepted => bump(&counters.accepted),
            Handled::Malformed(e) => {
                tracing::debug!(error = %e, "malformed WCCP GRE packet");
                bump(&counters.malformed);
                set_text(&counters.last_error, Some(e));
            }
            Handled::Returned {
                reason,
                router,
                packet,
            } => {
                let to = SockAddr::from(SocketAddrV4::new(router, 0));
                match socket.send_to(&packet, &to) {
                    Ok(_) => bump(match reason {
                        RefuseReason::Source => &counters.returned_source,
                        RefuseReason::Overload => &counters.returned_load,
                        // Rewrites are not configurable; they are destination rules.
                        RefuseReason::Destination | RefuseReason::Rewritten => {
                            &counters.returned_destination
                        }
                    }),
                    Err(e) => {
                        tracing::debug!(error = %e, %router, "GRE return send failed");
                        bump(&counters.send_errors);
                        set_text(&counters.last_error, Some(format!("send to {router}: {e}")));
                    }
                }
            }
        }
    }
    // Closing the TUN device removes it.
    drop(tun);
    tracing::info!("GRE packet return stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const CACHE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).unwrap();
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let c = wire::checksum::checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// Router -> cache GRE `proto` with an optional redirect header around an inner UDP packet.
    fn redirected(outer_src: Ipv4Addr, proto: u16, hdr: Option<[u8; 4]>, src: Ipv4Addr) -> Vec<u8> {
        let inner = ipv4(
            src,
            Ipv4Addr::new(192, 0, 2, 80),
            17,
            &[0, 1, 0, 2, 0, 8, 0, 0],
        );
        let mut gre = vec![0, 0];
        gre.extend_from_slice(&proto.to_be_bytes());
        gre.extend_from_slice(&hdr.unwrap_or_default()[..if hdr.is_some() { 4 } else { 0 }]);
        gre.extend_from_slice(&inner);
        ipv4(outer_src, CACHE, IPPROTO_GRE, &gre)
    }

    fn settings(max_load: Option<u32>) -> ReturnSettings {
        ReturnSettings {
            address: CACHE,
            services: vec![ServicePolicy {
                dynamic: true,
                id: 90,
                policy: ReturnPolicy {
                    refuse_sources: vec!["10.99.1.0/24".parse().unwrap()],
                    max_load,
                    ..ReturnPolicy::default()
                },
            }],
            load_source: PathBuf::from("/nonexistent"),
            tun: None,
        }
    }

    fn tun_settings() -> ReturnSettings {
        ReturnSettings {
            tun: Some(TunSettings {
                name: "wccp0".into(),
                address: Ipv4Addr::new(169, 254, 87, 1),
                accept_from: vec![config::Ipv4Net::from(ROUTER)],
            }),
            ..settings(None)
        }
    }

    #[test]
    fn tun_mode_delivers_accepted_inner_packets() {
        let s = tun_settings();
        let refused = Ipv4Addr::new(10, 99, 1, 5);
        let ok = Ipv4Addr::new(10, 99, 2, 5);
        // Accepted: the inner packet, exactly (outer 20 + GRE 4 + redirect header 4 stripped).
        let mut pkt = redirected(ROUTER, GRE_PROTO_WCCP, Some([0x01, 90, 0, 7]), ok);
        let (h, inner) = inspect(&s, &pkt, 1, || 0);
        assert_eq!(h, Handled::Accepted);
        assert_eq!(inner, Some(&pkt[28..]));
        // Ethernet-style padding after the outer total length is not delivered.
        pkt.extend_from_slice(&[0xEE; 6]);
        assert_eq!(inspect(&s, &pkt, 1, || 0).1, Some(&pkt[28..pkt.len() - 6]));
        // Refused: returned, not delivered.
        let pkt = redirected(ROUTER, GRE_PROTO_WCCP, Some([0x01, 90, 0, 7]), refused);
        let (h, inner) = inspect(&s, &pkt, 1, || 0);
        assert!(matches!(h, Handled::Returned { .. }), "{h:?}");
        assert_eq!(inner, None);
        // Another service (no policy here): delivered.
        let pkt = redirected(ROUTER, GRE_PROTO_WCCP, Some([0x01, 91, 0, 0]), refused);
        assert_eq!(
            inspect(&s, &pkt, 1, || 0),
            (Handled::Unmatched, Some(&pkt[28..]))
        );
        // WCCPv1 style (first nibble 4, no redirect header) and plain GRE 0x0800: web-cache.
        for proto in [GRE_PROTO_WCCP, GRE_PROTO_IPV4] {
            let pkt = redirected(ROUTER, proto, None, ok);
            assert_eq!(
                inspect(&s, &pkt, 1, || 0),
                (Handled::Unmatched, Some(&pkt[24..]))
            );
        }
        // Plain GRE is ignored without a TUN device, as before.
        let pkt = redirected(ROUTER, GRE_PROTO_IPV4, None, ok);
        assert_eq!(
            inspect(&settings(None), &pkt, 1, || 0),
            (Handled::Ignored, None)
        );
        // From a source outside accept_from: dropped.
        let stranger = Ipv4Addr::new(10, 0, 0, 9);
        let pkt = redirected(stranger, GRE_PROTO_WCCP, Some([0x01, 90, 0, 7]), ok);
        assert_eq!(
            inspect(&s, &pkt, 1, || 0),
            (Handled::UnknownPeer(stranger), None)
        );
        // Without a TUN device the source is not checked.
        assert_eq!(handle(&settings(None), &pkt, 1, || 0), Handled::Accepted);
        // Other GRE protocols stay ignored.
        let pkt = redirected(ROUTER, 0x6558, None, ok);
        assert_eq!(inspect(&s, &pkt, 1, || 0), (Handled::Ignored, None));
    }

    #[test]
    fn tun_mode_counts_malformed_gre() {
        let s = tun_settings();
        let ok = Ipv4Addr::new(10, 99, 2, 5);
        // GRE flags (checksum present) are not WCCP GRE by the Linux rule.
        let mut pkt = redirected(ROUTER, GRE_PROTO_WCCP, Some([0x01, 90, 0, 7]), ok);
        pkt[20] = 0x80;
        match inspect(&s, &pkt, 1, || 0) {
            (Handled::Malformed(e), None) => assert!(e.contains("GRE"), "{e}"),
            other => panic!("{other:?}"),
        }
        let mut pkt = redirected(ROUTER, GRE_PROTO_IPV4, None, ok);
        pkt[21] = 0x01; // version 1
        assert!(matches!(
            inspect(&s, &pkt, 1, || 0),
            (Handled::Malformed(_), None)
        ));
        // Not IPv4 inside.
        let mut pkt = redirected(ROUTER, GRE_PROTO_IPV4, None, ok);
        pkt[24] = 0x65;
        match inspect(&s, &pkt, 1, || 0) {
            (Handled::Malformed(e), None) => assert!(e.starts_with("inner IPv4"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Every truncation and every single-octet corruption: no panic.
        let pkt = redirected(ROUTER, GRE_PROTO_WCCP, Some([0x01, 90, 0, 7]), ok);
        for cut in 0..pkt.len() {
            let _ = inspect(&s, &pkt[..cut], 1, || 0);
        }
        for i in 0..pkt.len() {
            for v in [0x00, 0x45, 0x4F, 0xFF] {
                let mut p = pkt.clone();
                p[i] = v;
                let (h, inner) = inspect(&s, &p, 1, || 0);
                if let Some(inner) = inner {
                    assert!(matches!(h, Handled::Accepted | Handled::Unmatched));
                    assert_eq!(inner[0] >> 4, 4);
                }
            }
        }
    }

    #[test]
    fn handle_classifies_and_returns() {
        let s = settings(Some(50));
        let hdr = Some([0x01, 90, 0, 7]);
        let refused = Ipv4Addr::new(10, 99, 1, 5);
        let ok = Ipv4Addr::new(10, 99, 2, 5);
        let pkt = redirected(ROUTER, GRE_PROTO_WCCP, hdr, refused);
        match handle(&s, &pkt, 9, || 0) {
            Handled::Returned {
                reason,
                router,
                packet,
            } => {
                assert_eq!(reason, RefuseReason::Source);
                assert_eq!(router, ROUTER);
                assert_eq!(&packet[12..16], &CACHE.octets());
                assert_eq!(&packet[16..20], &ROUTER.octets());
                assert_eq!(&packet[24..28], &[0x01, 90, 0, 7]);
                assert_eq!(&packet[28..], &pkt[28..]);
            }
            other => panic!("not returned: {other:?}"),
        }
        let pkt = redirected(ROUTER, GRE_PROTO_WCCP, hdr, ok);
        assert_eq!(handle(&s, &pkt, 1, || 50), Handled::Accepted);
        assert!(matches!(
            handle(&s, &pkt, 1, || 51),
            Handled::Returned {
                reason: RefuseReason::Overload,
                ..
            }
        ));
        // Our own packet, other GRE, another service, a standard service of the same id.
        let own = redirected(CACHE, GRE_PROTO_WCCP, hdr, refused);
        assert_eq!(handle(&s, &own, 1, || 0), Handled::Ignored);
        let plain = redirected(ROUTER, 0x0800, None, refused);
        assert_eq!(handle(&s, &plain, 1, || 0), Handled::Ignored);
        let other = redirected(ROUTER, GRE_PROTO_WCCP, Some([0x01, 91, 0, 0]), refused);
        assert_eq!(handle(&s, &other, 1, || 0), Handled::Unmatched);
        let standard = redirected(ROUTER, GRE_PROTO_WCCP, Some([0x00, 90, 0, 0]), refused);
        assert_eq!(handle(&s, &standard, 1, || 0), Handled::Unmatched);
    }

    #[test]
    fn handle_never_panics_on_garbage() {
        let s = settings(None);
        let pkt = redirected(
            ROUTER,
            GRE_PROTO_WCCP,
            Some([0x01, 90, 0, 0]),
            Ipv4Addr::LOCALHOST,
        );
        for cut in 0..pkt.len() {
            let mut p = pkt[..cut].to_vec();
            if p.len() >= 4 {
                // Keep the outer length consistent so the inner header is what is short.
                let l = u16::try_from(p.len()).unwrap();
                p[2..4].copy_from_slice(&l.to_be_bytes());
            }
            let h = handle(&s, &p, 1, || unreachable!("no max_load: load is not read"));
            assert!(
                matches!(h, Handled::Malformed(_) | Handled::Ignored),
                "cut at {cut}: {h:?}"
            );
        }
        let h = handle(&s, &pkt, 1, || {
            unreachable!("no max_load: load is not read")
        });
        assert_eq!(h, Handled::Accepted);
    }

    #[test]
    fn load_percent_is_first_field_per_cpu() {
        assert_eq!(load_percent("2.50 1.00 0.50 1/100 42\n", 4), Ok(62));
        assert_eq!(load_percent("0.00", 1), Ok(0));
        assert_eq!(load_percent("1000", 8), Ok(12_500));
        assert!(load_percent("", 1).is_err());
        assert!(load_percent("x 1 2", 1).is_err());
        assert!(load_percent("-1", 1).is_err());
    }
}
