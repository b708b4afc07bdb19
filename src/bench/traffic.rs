//! The benchmark's traffic: frames for the replayed pcaps and the sequence-stamped frames of
//! the table-swap check, built byte by byte (no DPDK, no data-plane code), and the addresses of
//! the benchmark topology.
//!
//! ```text
//!  clients 10.9.1.16-215 ── client port 10.9.1.1/24 (redirect in)
//!  servers 198.18.0.0/15 ── via 10.9.2.2 ── server port 10.9.2.1/24
//!  caches 10.9.3.10-13 ──────────────────── cache port 10.9.3.1/24 (router address, mtu 1600)
//! ```
//!
//! Frame `i` of a pcap belongs to flow `i` (distinct destination addresses, so distinct
//! flows for up to 131072 frames) and to a class by `i % 20`: 16 of 20 (80 %) TCP to port 80
//! (service 0, redirected), 2 TCP to port 22 and 1 UDP to port 53 (15 %, routed), 1 (5 %) a
//! cache's GRE return (0x883E, redirect header, the inner packet of a port-80 frame) to the
//! router address, decapsulated and routed.

use std::net::Ipv4Addr;

use wire::checksum;

/// The router's MAC on the client port (the pcap's destination MAC).
pub const ROUTER_CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
/// The router's MAC on the server port.
pub const ROUTER_SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
/// The router's MAC on the cache port.
pub const ROUTER_CACHE_MAC: [u8; 6] = [2, 0, 0, 0, 3, 1];
/// The clients' MAC (source of client frames).
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x10];
/// The next hop towards the servers.
pub const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(10, 9, 2, 2);
/// Its MAC.
pub const NEXT_HOP_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
/// The router address the caches talk to (GRE source of redirects, destination of returns).
pub const ROUTER_CACHE: Ipv4Addr = Ipv4Addr::new(10, 9, 3, 1);
/// The caches of the static assignment, in target order.
pub const CACHES: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 9, 3, 10),
    Ipv4Addr::new(10, 9, 3, 11),
    Ipv4Addr::new(10, 9, 3, 12),
    Ipv4Addr::new(10, 9, 3, 13),
];

/// The MAC of cache `c`.
pub fn cache_mac(c: usize) -> [u8; 6] {
    [2, 0, 0, 0, 3, 0x10 + c as u8]
}

/// Index of the cache with address `a`.
pub fn cache_index(a: Ipv4Addr) -> Option<usize> {
    CACHES.iter().position(|c| *c == a)
}

/// What a frame of the replayed traffic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// TCP to port 80: service 0 redirects it in GRE.
    Redirect,
    /// TCP to port 22: routed.
    Ssh,
    /// UDP to port 53: routed.
    Dns,
    /// A cache's GRE return: decapsulated and routed.
    GreReturn,
}

/// The class of frame `i`: 80 % redirected, 15 % routed, 5 % GRE returns.
pub fn class_of(i: u32) -> Class {
    match i % 20 {
        0..=15 => Class::Redirect,
        16 | 17 => Class::Ssh,
        18 => Class::Dns,
        _ => Class::GreReturn,
    }
}

/// Client address of flow `i`.
pub fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 9, 1, 16 + (i % 200) as u8)
}

/// Server address of flow `i` (198.18.0.0/15, RFC 2544's benchmark range).
pub fn server(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xc612_0000 | (i & 0x1_ffff))
}

/// Client port of flow `i`.
pub fn client_port(i: u32) -> u16 {
    1024 + (i % 60_000) as u16
}

const ETH: usize = 14;
const IP: usize = 20;
const TCP: usize = 20;
const UDP: usize = 8;
/// Outer IPv4 + GRE + redirect header.
const WCCP_ENCAP: usize = 28;

fn ethernet(buf: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    buf[..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&[0x08, 0x00]);
}

/// An option-less IPv4 header with its checksum; DF set unless `df` is false.
fn ipv4(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, total: usize, df: bool) {
    let h = &mut buf[..IP];
    h.fill(0);
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[6] = if df { 0x40 } else { 0 };
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// The TCP/UDP checksum of `seg` (checksum field zero on entry) between `src` and `dst`.
fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> u16 {
    let acc = checksum::pseudo_header(src.octets(), dst.octets(), proto, seg.len() as u16);
    let c = checksum::finish(checksum::sum(acc, seg));
    // UDP sends 0 as "no checksum": an all-ones result is sent as such.
    if c == 0 && proto == 17 {
        0xffff
    } else {
        c
    }
}

/// The IPv4 packet of a client's TCP frame of `size` octets (Ethernet header excluded):
/// `sport -> dport`, flags ACK|PSH, `stamp` in the first payload octets.
fn tcp_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    ttl: u8,
    ip_total: usize,
    stamp: Option<u64>,
) -> Vec<u8> {
    let mut p = vec![0u8; ip_total];
    ipv4(&mut p, src, dst, 6, ttl, ip_total, true);
    let seg = &mut p[IP..];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    seg[4..8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
    seg[8..12].copy_from_slice(&0x2000_0000u32.to_be_bytes());
    seg[12] = 0x50;
    seg[13] = 0x18;
    seg[14..16].copy_from_slice(&65535u16.to_be_bytes());
    if let Some(s) = stamp {
        seg[TCP..TCP + 8].copy_from_slice(&s.to_be_bytes());
    }
    let c = l4_checksum(src, dst, 6, seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    p
}

/// Frame `i` of the replayed traffic, `size` octets long (without FCS; at least 64). A GRE
/// return carries the IPv4 packet of a `size`-octet frame and is 28 octets longer.
pub fn frame(i: u32, size: usize) -> Vec<u8> {
    let size = size.max(64);
    let ip_total = size - ETH;
    let (src, dst) = (client(i), server(i));
    match class_of(i) {
        Class::Redirect | Class::Ssh => {
            let dport = if class_of(i) == Class::Redirect {
                80
            } else {
                22
            };
            let mut f = vec![0u8; ETH];
            ethernet(&mut f, ROUTER_CLIENT_MAC, CLIENT_MAC);
            f.extend(tcp_packet(
                src,
                dst,
                client_port(i),
                dport,
                64,
                ip_total,
                None,
            ));
            f
        }
        Class::Dns => {
            let mut f = vec![0u8; size];
            ethernet(&mut f, ROUTER_CLIENT_MAC, CLIENT_MAC);
            ipv4(&mut f[ETH..], src, dst, 17, 64, ip_total, false);
            let seg = &mut f[ETH + IP..];
            seg[0..2].copy_from_slice(&client_port(i).to_be_bytes());
            seg[2..4].copy_from_slice(&53u16.to_be_bytes());
            seg[4..6].copy_from_slice(&((ip_total - IP) as u16).to_be_bytes());
            let c = l4_checksum(src, dst, 17, seg);
            seg[6..8].copy_from_slice(&c.to_be_bytes());
            debug_assert!(seg.len() >= UDP);
            f
        }
        Class::GreReturn => {
            // A redirected packet (TTL already decremented) that cache `c` hands back.
            let c = (i as usize) % CACHES.len();
            let inner = tcp_packet(src, dst, client_port(i), 80, 63, ip_total, None);
            let key =
                assign::hash::FlowKey::new(u32::from(src), u32::from(dst), client_port(i), 80);
            let flags = assign::service::ServiceDef::WEB_CACHE.flags;
            let mut f = vec![0u8; ETH + WCCP_ENCAP];
            ethernet(&mut f, ROUTER_CLIENT_MAC, cache_mac(c));
            ipv4(
                &mut f[ETH..],
                CACHES[c],
                ROUTER_CACHE,
                47,
                64,
                WCCP_ENCAP + inner.len(),
                false,
            );
            f[ETH + IP..ETH + IP + 4].copy_from_slice(&[0, 0, 0x88, 0x3e]);
            f[ETH + IP + 4..ETH + IP + 8].copy_from_slice(&[
                0,
                0,
                assign::hash::alternate_bucket(flags, &key),
                assign::hash::primary_bucket(flags, &key),
            ]);
            f.extend(inner);
            f
        }
    }
}

/// The sizes of the IMIX pcap, cycling: 7 × 64, 4 × 570, 1 × 1514 (the "simple IMIX" of
/// 64/570/1518, with the large frame the largest that a 1500-octet MTU carries: the pcap holds
/// frames without FCS, and a 1518-octet one would hold a 1504-octet packet, which the router
/// must refuse on its 1500-octet server port).
pub fn imix_size(i: u32) -> usize {
    match i % 12 {
        0..=6 => 64,
        7..=10 => 570,
        _ => 1514,
    }
}

/// Writes `frames` frames (`frame(i, size(i))`) to a pcap file at `path`.
///
/// # Errors
/// I/O errors.
pub fn write_pcap(
    path: &std::path::Path,
    frames: u32,
    size: impl Fn(u32) -> usize,
) -> std::io::Result<()> {
    let f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = crate::pcap::PcapWriter::new(f)?;
    for i in 0..frames {
        let ts = std::time::Duration::from_micros(u64::from(i));
        w.write_frame(ts, &frame(i, size(i)))?;
    }
    w.finish()?;
    Ok(())
}

/// Flows the table-swap generator cycles through.
pub const SWAP_FLOWS: u32 = 4096;

/// The 64-octet port-80 frame of swap flow `flow` carrying sequence number `seq`.
pub fn stamped_frame(flow: u32, seq: u64) -> Vec<u8> {
    let i = flow % SWAP_FLOWS * 20; // a Redirect-class index
    let mut f = vec![0u8; ETH];
    ethernet(&mut f, ROUTER_CLIENT_MAC, CLIENT_MAC);
    f.extend(tcp_packet(
        client(i),
        server(i),
        client_port(i),
        80,
        64,
        64 - ETH,
        Some(seq),
    ));
    f
}

/// What the checker reads from a GRE-redirected frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirected {
    /// Outer destination: the cache.
    pub cache: Ipv4Addr,
    /// The frame's destination MAC.
    pub dst_mac: [u8; 6],
    /// Redirect header: service id and primary bucket.
    pub service: u8,
    /// Primary bucket.
    pub bucket: u8,
    /// The inner flow.
    pub key: assign::hash::FlowKey,
    /// The stamp in the inner TCP payload.
    pub seq: u64,
}

/// Decodes a frame the router sent to a cache: Ethernet, outer IPv4 (protocol 47, valid
/// checksum), GRE 0x883E, redirect header, inner IPv4 + TCP with a stamp; `None` for anything
/// else.
pub fn decode_redirected(f: &[u8]) -> Option<Redirected> {
    let outer = f.get(ETH..ETH + IP)?;
    if f.get(12..14)? != [0x08, 0x00] || outer[0] != 0x45 || outer[9] != 47 {
        return None;
    }
    if checksum::checksum(outer) != 0 {
        return None;
    }
    let gre = f.get(ETH + IP..ETH + WCCP_ENCAP)?;
    if gre[..4] != [0, 0, 0x88, 0x3e] {
        return None;
    }
    let inner = f.get(ETH + WCCP_ENCAP..)?;
    if inner.len() < IP + TCP + 8 || inner[0] != 0x45 || inner[9] != 6 {
        return None;
    }
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let seg = &inner[IP..];
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&f[..6]);
    Some(Redirected {
        cache: Ipv4Addr::from(be32(&outer[16..20])),
        dst_mac: mac,
        service: gre[5],
        bucket: gre[7],
        key: assign::hash::FlowKey::new(
            be32(&inner[12..16]),
            be32(&inner[16..20]),
            u16::from_be_bytes([seg[0], seg[1]]),
            u16::from_be_bytes([seg[2], seg[3]]),
        ),
        seq: u64::from_be_bytes(seg[TCP..TCP + 8].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_sizes_and_checksums() {
        let n = 20 * 64;
        let count = |c| (0..n).filter(|i| class_of(*i) == c).count();
        assert_eq!(count(Class::Redirect) * 100 / n as usize, 80);
        assert_eq!(
            (count(Class::Ssh) + count(Class::Dns)) * 100 / n as usize,
            15
        );
        assert_eq!(count(Class::GreReturn) * 100 / n as usize, 5);
        for i in 0..40 {
            for size in [64, 570, 1514] {
                let f = frame(i, size);
                let want = if class_of(i) == Class::GreReturn {
                    size + 28
                } else {
                    size
                };
                assert_eq!(f.len(), want, "frame {i}");
                assert_eq!(checksum::checksum(&f[14..34]), 0, "frame {i} header");
            }
        }
        // Every IMIX frame's packet fits the server port's 1500-octet MTU when routed (a
        // GRE return's inner packet once decapsulated): none is refused for its size.
        for i in 0..24 {
            assert!(imix_size(i) - 14 <= 1500, "IMIX frame {i}");
        }
        // Distinct flows.
        let mut dsts: Vec<Ipv4Addr> = (0..65536).map(server).collect();
        dsts.sort();
        dsts.dedup();
        assert_eq!(dsts.len(), 65536);
        let sizes: Vec<usize> = (0..12).map(imix_size).collect();
        assert_eq!(sizes.iter().filter(|s| **s == 64).count(), 7);
        assert_eq!(sizes.iter().filter(|s| **s == 570).count(), 4);
    }

    #[test]
    fn stamped_frames_decode_after_encapsulation() {
        let f = stamped_frame(7, 0x0102_0304_0506_0708);
        assert_eq!(f.len(), 64);
        // Wrap it as the router would (the decoder ignores the outer length).
        let mut g = vec![0u8; 14 + 28];
        ethernet(&mut g, cache_mac(1), ROUTER_CACHE_MAC);
        ipv4(
            &mut g[14..],
            ROUTER_CACHE,
            CACHES[1],
            47,
            255,
            28 + 50,
            false,
        );
        g[34..38].copy_from_slice(&[0, 0, 0x88, 0x3e]);
        g[38..42].copy_from_slice(&[0, 0, 3, 9]);
        g.extend_from_slice(&f[14..]);
        let r = decode_redirected(&g).unwrap();
        assert_eq!(r.seq, 0x0102_0304_0506_0708);
        assert_eq!((r.cache, r.bucket, r.service), (CACHES[1], 9, 0));
        assert_eq!(r.key.dport, 80);
        assert!(decode_redirected(&f).is_none());
    }
}
