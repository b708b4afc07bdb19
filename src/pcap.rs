//! Capture files: read classic pcap and pcapng, pick out WCCP traffic, write classic pcap.
//!
//! Reading ([`read_capture`]) accepts
//! * classic pcap in both byte orders, with the microsecond (`a1b2c3d4`) and nanosecond
//!   (`a1b23c4d`) magic;
//! * pcapng (what `dumpcap`/`tshark` write by default): Section Header, Interface Description
//!   (link type and `if_tsresol`), Enhanced, Simple and obsolete Packet blocks; other blocks are
//!   skipped by their length.
//!
//! Link types understood by [`extract`]: Ethernet (1, with any number of 802.1Q/802.1ad tags),
//! raw IPv4 (101 and 228, also 12 "raw IP" when the first nibble is 4) and Linux cooked SLL (113).
//!
//! Every read is bounds-checked: a malformed file gives a [`PcapError`] naming the record (block)
//! index and the file offset; nothing here panics on untrusted bytes.
//!
//! Writing ([`PcapWriter`]) produces classic little-endian microsecond pcap with Ethernet frames;
//! [`ethernet_ipv4_udp`] and [`ethernet_ipv4`] build frames with a correct IPv4 header checksum
//! (and UDP checksum), so tests can feed our own messages to `tshark`.

use std::fmt;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// The UDP port WCCPv2 control messages use (source and destination).
pub const WCCP_PORT: u16 = 2048;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// Link type: Ethernet (`LINKTYPE_ETHERNET`).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Link type: BSD "raw IP" (`DLT_RAW` on some systems, 12), accepted when the packet is IPv4.
pub const LINKTYPE_RAW_BSD: u32 = 12;
/// Link type: raw IP (`LINKTYPE_RAW`, 101).
pub const LINKTYPE_RAW: u32 = 101;
/// Link type: Linux cooked capture v1 (`LINKTYPE_LINUX_SLL`, 113).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Link type: raw IPv4 (`LINKTYPE_IPV4`, 228).
pub const LINKTYPE_IPV4: u32 = 228;

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
const PCAP_FILE_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;
/// Refuse records larger than this (a corrupt length field would otherwise look like a huge frame).
const MAX_RECORD_LEN: usize = 256 * 1024;

/// Which container the frames came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap with microsecond timestamps.
    PcapMicro,
    /// Classic pcap with nanosecond timestamps.
    PcapNano,
    /// pcapng.
    PcapNg,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1-based frame number, as `tshark` counts.
    pub number: usize,
    /// Capture time since the Unix epoch.
    pub timestamp: Duration,
    /// Link type of the interface the frame was captured on.
    pub link_type: u32,
    /// Length of the frame on the wire (may exceed `data.len()` when the capture was snapped).
    pub orig_len: u32,
    /// Captured bytes.
    pub data: Vec<u8>,
}

/// A whole capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Container format.
    pub format: Format,
    /// Frames in file order.
    pub frames: Vec<Frame>,
}

/// A malformed capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcapError {
    /// The file does not start with a pcap or pcapng magic number.
    BadMagic {
        /// The first four octets, big-endian.
        magic: u32,
    },
    /// A header or record runs past the end of the file.
    Truncated {
        /// What was being read ("file header", "record header", "record data", "block", ...).
        what: &'static str,
        /// 0-based record (classic) or block (pcapng) index.
        record: usize,
        /// File offset where the truncated item starts.
        offset: usize,
        /// Octets needed from `offset`.
        need: usize,
        /// Octets available from `offset`.
        have: usize,
    },
    /// A length or other field has an impossible value.
    Invalid {
        /// Field name.
        field: &'static str,
        /// 0-based record (classic) or block (pcapng) index.
        record: usize,
        /// File offset of the field.
        offset: usize,
        /// The offending value.
        value: u64,
    },
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::BadMagic { magic } => {
                write!(f, "not a pcap/pcapng file: magic 0x{magic:08x} at offset 0")
            }
            PcapError::Truncated {
                what,
                record,
                offset,
                need,
                have,
            } => write!(
                f,
                "truncated {what} of record {record} at offset {offset}: need {need} octets, have {have}"
            ),
            PcapError::Invalid {
                field,
                record,
                offset,
                value,
            } => write!(
                f,
                "invalid {field} ({value}) in record {record} at offset {offset}"
            ),
        }
    }
}

impl std::error::Error for PcapError {}

/// Byte-order aware bounded reader over the file.
#[derive(Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn bytes(
        &self,
        offset: usize,
        len: usize,
        what: &'static str,
        record: usize,
    ) -> Result<&'a [u8], PcapError> {
        let have = self.buf.len().saturating_sub(offset);
        if have < len {
            return Err(PcapError::Truncated {
                what,
                record,
                offset,
                need: len,
                have,
            });
        }
        Ok(&self.buf[offset..offset + len])
    }

    fn u16(&self, offset: usize, what: &'static str, record: usize) -> Result<u16, PcapError> {
        let b = self.bytes(offset, 2, what, record)?;
        let a = [b[0], b[1]];
        Ok(if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    fn u32(&self, offset: usize, what: &'static str, record: usize) -> Result<u32, PcapError> {
        let b = self.bytes(offset, 4, what, record)?;
        let a = [b[0], b[1], b[2], b[3]];
        Ok(if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }
}

/// Parses a classic pcap or pcapng file.
///
/// # Errors
/// [`PcapError`] naming the record/block index and file offset of the first malformed item.
pub fn read_capture(buf: &[u8]) -> Result<Capture, PcapError> {
    if buf.len() < 4 {
        return Err(PcapError::Truncated {
            what: "file header",
            record: 0,
            offset: 0,
            need: 4,
            have: buf.len(),
        });
    }
    let be = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let le = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    match (be, le) {
        (PCAPNG_SHB, _) => read_pcapng(buf),
        (PCAP_MAGIC_US, _) => read_classic(buf, true, false),
        (PCAP_MAGIC_NS, _) => read_classic(buf, true, true),
        (_, PCAP_MAGIC_US) => read_classic(buf, false, false),
        (_, PCAP_MAGIC_NS) => read_classic(buf, false, true),
        _ => Err(PcapError::BadMagic { magic: be }),
    }
}

fn read_classic(buf: &[u8], big_endian: bool, nanos: bool) -> Result<Capture, PcapError> {
    let r = Reader { buf, big_endian };
    r.bytes(0, PCAP_FILE_HEADER_LEN, "file header", 0)?;
    let link_type = r.u32(20, "file header", 0)? & 0x0fff_ffff;
    let mut frames = Vec::new();
    let mut offset = PCAP_FILE_HEADER_LEN;
    let mut record = 0usize;
    while offset < buf.len() {
        r.bytes(offset, PCAP_RECORD_HEADER_LEN, "record header", record)?;
        let ts_sec = r.u32(offset, "record header", record)?;
        let ts_frac = r.u32(offset + 4, "record header", record)?;
        let incl_len = r.u32(offset + 8, "record header", record)?;
        let orig_len = r.u32(offset + 12, "record header", record)?;
        let incl = usize::try_from(incl_len).unwrap_or(usize::MAX);
        if incl > MAX_RECORD_LEN {
            return Err(PcapError::Invalid {
                field: "incl_len",
                record,
                offset: offset + 8,
                value: u64::from(incl_len),
            });
        }
        let limit = if nanos { 1_000_000_000 } else { 1_000_000 };
        if ts_frac >= limit {
            return Err(PcapError::Invalid {
                field: if nanos { "ts_nsec" } else { "ts_usec" },
                record,
                offset: offset + 4,
                value: u64::from(ts_frac),
            });
        }
        let data = r.bytes(offset + PCAP_RECORD_HEADER_LEN, incl, "record data", record)?;
        let frac_ns = if nanos { ts_frac } else { ts_frac * 1000 };
        frames.push(Frame {
            number: record + 1,
            timestamp: Duration::new(u64::from(ts_sec), frac_ns),
            link_type,
            orig_len,
            data: data.to_vec(),
        });
        offset += PCAP_RECORD_HEADER_LEN + incl;
        record += 1;
    }
    Ok(Capture {
        format: if nanos {
            Format::PcapNano
        } else {
            Format::PcapMicro
        },
        frames,
    })
}

/// Interface as described by a pcapng IDB.
#[derive(Clone, Copy)]
struct Interface {
    link_type: u32,
    /// Timestamp units per second.
    units_per_sec: u64,
}

fn read_pcapng(buf: &[u8]) -> Result<Capture, PcapError> {
    let mut frames = Vec::new();
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut r = Reader {
        buf,
        big_endian: false,
    };
    let mut offset = 0usize;
    let mut block = 0usize;
    while offset < buf.len() {
        // Block type is endianness-independent for the SHB (palindromic), so read the raw bytes.
        let head = r.bytes(offset, 8, "block header", block)?;
        if head[..4] == PCAPNG_SHB.to_be_bytes() {
            let bom = r.bytes(offset + 8, 4, "section header", block)?;
            r.big_endian = match u32::from_be_bytes([bom[0], bom[1], bom[2], bom[3]]) {
                PCAPNG_BOM => true,
                x if x.swap_bytes() == PCAPNG_BOM => false,
                x => {
                    return Err(PcapError::Invalid {
                        field: "byte-order magic",
                        record: block,
                        offset: offset + 8,
                        value: u64::from(x),
                    })
                }
            };
            interfaces.clear();
        }
        let block_type = r.u32(offset, "block header", block)?;
        let total_len = r.u32(offset + 4, "block header", block)?;
        let total = usize::try_from(total_len).unwrap_or(usize::MAX);
        if total < 12 || total % 4 != 0 || total > MAX_RECORD_LEN + 64 {
            return Err(PcapError::Invalid {
                field: "block total length",
                record: block,
                offset: offset + 4,
                value: u64::from(total_len),
            });
        }
        r.bytes(offset, total, "block", block)?;
        let trailer = r.u32(offset + total - 4, "block trailer", block)?;
        if trailer != total_len {
            return Err(PcapError::Invalid {
                field: "block trailing length",
                record: block,
                offset: offset + total - 4,
                value: u64::from(trailer),
            });
        }
        let body = offset + 8;
        let body_end = offset + total - 4;
        match block_type {
            // Interface Description Block.
            1 => {
                let link_type = u32::from(r.u16(body, "interface description", block)?);
                let units_per_sec = idb_tsresol(&r, body + 8, body_end, block)?;
                interfaces.push(Interface {
                    link_type,
                    units_per_sec,
                });
            }
            // Enhanced Packet Block (6) and obsolete Packet Block (2).
            2 | 6 => {
                let (if_id, ts_hi, ts_lo, caplen, orig_len) = if block_type == 6 {
                    (
                        r.u32(body, "enhanced packet", block)?,
                        r.u32(body + 4, "enhanced packet", block)?,
                        r.u32(body + 8, "enhanced packet", block)?,
                        r.u32(body + 12, "enhanced packet", block)?,
                        r.u32(body + 16, "enhanced packet", block)?,
                    )
                } else {
                    (
                        u32::from(r.u16(body, "packet", block)?),
                        r.u32(body + 4, "packet", block)?,
                        r.u32(body + 8, "packet", block)?,
                        r.u32(body + 12, "packet", block)?,
                        r.u32(body + 16, "packet", block)?,
                    )
                };
                let iface = usize::try_from(if_id)
                    .ok()
                    .and_then(|i| interfaces.get(i).copied())
                    .ok_or(PcapError::Invalid {
                        field: "interface id",
                        record: block,
                        offset: body,
                        value: u64::from(if_id),
                    })?;
                let cap = usize::try_from(caplen).unwrap_or(usize::MAX);
                let data_off = body + 20;
                if cap > body_end.saturating_sub(data_off) {
                    return Err(PcapError::Invalid {
                        field: "captured packet length",
                        record: block,
                        offset: body + 12,
                        value: u64::from(caplen),
                    });
                }
                let data = r.bytes(data_off, cap, "packet data", block)?;
                let ts = (u64::from(ts_hi) << 32) | u64::from(ts_lo);
                frames.push(Frame {
                    number: frames.len() + 1,
                    timestamp: units_to_duration(ts, iface.units_per_sec),
                    link_type: iface.link_type,
                    orig_len,
                    data: data.to_vec(),
                });
            }
            // Simple Packet Block: interface 0, no timestamp.
            3 => {
                let iface = interfaces.first().copied().ok_or(PcapError::Invalid {
                    field: "interface id",
                    record: block,
                    offset: body,
                    value: 0,
                })?;
                let orig_len = r.u32(body, "simple packet", block)?;
                let avail = body_end.saturating_sub(body + 4);
                let cap = usize::try_from(orig_len).unwrap_or(usize::MAX).min(avail);
                let data = r.bytes(body + 4, cap, "packet data", block)?;
                frames.push(Frame {
                    number: frames.len() + 1,
                    timestamp: Duration::ZERO,
                    link_type: iface.link_type,
                    orig_len,
                    data: data.to_vec(),
                });
            }
            _ => {}
        }
        offset += total;
        block += 1;
    }
    Ok(Capture {
        format: Format::PcapNg,
        frames,
    })
}

/// Reads the `if_tsresol` option (code 9) of an IDB; default is microseconds.
fn idb_tsresol(r: &Reader<'_>, mut off: usize, end: usize, block: usize) -> Result<u64, PcapError> {
    let mut units = 1_000_000u64;
    while off + 4 <= end {
        let code = r.u16(off, "interface option", block)?;
        let len = usize::from(r.u16(off + 2, "interface option", block)?);
        if code == 0 {
            break;
        }
        let padded = (len + 3) & !3;
        if off + 4 + padded > end {
            return Err(PcapError::Truncated {
                what: "interface option",
                record: block,
                offset: off,
                need: 4 + padded,
                have: end - off,
            });
        }
        if code == 9 && len >= 1 {
            let v = r.bytes(off + 4, 1, "interface option", block)?[0];
            let exp = u32::from(v & 0x7f);
            let base: u64 = if v & 0x80 != 0 { 2 } else { 10 };
            units = base
                .checked_pow(exp)
                .filter(|u| *u > 0)
                .ok_or(PcapError::Invalid {
                    field: "if_tsresol",
                    record: block,
                    offset: off + 4,
                    value: u64::from(v),
                })?;
        }
        off += 4 + padded;
    }
    Ok(units)
}

fn units_to_duration(ts: u64, units_per_sec: u64) -> Duration {
    let secs = ts / units_per_sec;
    let rem = u128::from(ts % units_per_sec);
    let nanos = rem * 1_000_000_000 / u128::from(units_per_sec);
    Duration::new(secs, u32::try_from(nanos).unwrap_or(0))
}

// ------------------------------------------------------------------------------------------------
// Extraction of WCCP traffic from frames.

/// WCCP-relevant content of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extracted<'a> {
    /// A UDP datagram to or from port 2048 (a WCCP control message).
    Wccp {
        /// Source address and port.
        src: SocketAddrV4,
        /// Destination address and port.
        dst: SocketAddrV4,
        /// UDP payload (trimmed to the UDP length).
        payload: &'a [u8],
    },
    /// An IPv4 GRE packet (protocol 47); `payload` starts at the GRE header.
    Gre {
        /// Outer source address.
        src: Ipv4Addr,
        /// Outer destination address.
        dst: Ipv4Addr,
        /// GRE header and everything after it.
        payload: &'a [u8],
    },
}

/// A frame whose headers are malformed (truncated or inconsistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    /// Layer and field, e.g. `"ipv4 total length"`.
    pub field: &'static str,
    /// Offset in the frame.
    pub offset: usize,
    /// Human detail.
    pub detail: &'static str,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at frame offset {}: {}",
            self.field, self.offset, self.detail
        )
    }
}

impl std::error::Error for FrameError {}

fn need(data: &[u8], offset: usize, len: usize, field: &'static str) -> Result<(), FrameError> {
    if data.len() < offset.saturating_add(len) {
        Err(FrameError {
            field,
            offset,
            detail: "truncated",
        })
    } else {
        Ok(())
    }
}

/// Finds the IPv4 packet in a frame of the given link type.
///
/// Returns `Ok(None)` for frames that do not carry IPv4 (ARP, IPv6, unknown link types, ...).
///
/// # Errors
/// [`FrameError`] if the link-layer header is truncated.
pub fn ipv4_offset(link_type: u32, data: &[u8]) -> Result<Option<usize>, FrameError> {
    match link_type {
        LINKTYPE_ETHERNET => {
            need(data, 0, 14, "ethernet header")?;
            let mut off = 12;
            let mut ethertype = u16::from_be_bytes([data[12], data[13]]);
            // 802.1Q, 802.1ad and the old QinQ value: skip each 4-octet tag.
            while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                off += 4;
                need(data, off, 2, "vlan tag")?;
                ethertype = u16::from_be_bytes([data[off], data[off + 1]]);
            }
            Ok((ethertype == 0x0800).then_some(off + 2))
        }
        LINKTYPE_LINUX_SLL => {
            need(data, 0, 16, "linux sll header")?;
            let proto = u16::from_be_bytes([data[14], data[15]]);
            Ok((proto == 0x0800).then_some(16))
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_RAW_BSD => {
            Ok((data.first().map(|b| b >> 4) == Some(4)).then_some(0))
        }
        _ => Ok(None),
    }
}

/// A parsed IPv4 header (enough for our purposes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Info<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// True if this is a fragment (more-fragments set or non-zero offset).
    pub fragment: bool,
    /// Header length in octets.
    pub header_len: usize,
    /// Payload, trimmed to the IPv4 total length.
    pub payload: &'a [u8],
}

/// Parses an IPv4 header at the start of `data`.
///
/// `base` is added to offsets in errors (the position of `data` in the frame).
///
/// # Errors
/// [`FrameError`] naming the field when the header is truncated or inconsistent.
pub fn parse_ipv4(data: &[u8], base: usize) -> Result<Ipv4Info<'_>, FrameError> {
    let err = |field, offset: usize, detail| FrameError {
        field,
        offset: base + offset,
        detail,
    };
    if data.len() < 20 {
        return Err(err("ipv4 header", 0, "truncated (need 20 octets)"));
    }
    if data[0] >> 4 != 4 {
        return Err(err("ipv4 version", 0, "not 4"));
    }
    let ihl = usize::from(data[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(err("ipv4 header length", 0, "less than 20"));
    }
    if data.len() < ihl {
        return Err(err("ipv4 options", 20, "truncated"));
    }
    let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
    if total < ihl {
        return Err(err("ipv4 total length", 2, "smaller than header length"));
    }
    if total > data.len() {
        return Err(err("ipv4 total length", 2, "exceeds captured data"));
    }
    let frag = u16::from_be_bytes([data[6], data[7]]);
    Ok(Ipv4Info {
        src: Ipv4Addr::new(data[12], data[13], data[14], data[15]),
        dst: Ipv4Addr::new(data[16], data[17], data[18], data[19]),
        protocol: data[9],
        ttl: data[8],
        fragment: frag & 0x3fff != 0,
        header_len: ihl,
        payload: &data[ihl..total],
    })
}

/// Extracts the WCCP control message or GRE payload from a frame.
///
/// Returns `Ok(None)` for frames that are neither UDP to/from port 2048 nor GRE (and for
/// non-first IPv4 fragments).
///
/// # Errors
/// [`FrameError`] if the frame's link, IPv4 or UDP header is malformed or it is the first
/// fragment of a fragmented WCCP datagram (not reassembled).
pub fn extract(link_type: u32, data: &[u8]) -> Result<Option<Extracted<'_>>, FrameError> {
    let Some(ip_off) = ipv4_offset(link_type, data)? else {
        return Ok(None);
    };
    let ip = parse_ipv4(&data[ip_off..], ip_off)?;
    let l4_off = ip_off + ip.header_len;
    match ip.protocol {
        IPPROTO_UDP => {
            let p = ip.payload;
            if ip.fragment {
                let frag_off = u16::from_be_bytes([data[ip_off + 6], data[ip_off + 7]]) & 0x1fff;
                if frag_off != 0 || p.len() < 4 {
                    return Ok(None);
                }
                let (sport, dport) = (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                );
                if sport == WCCP_PORT || dport == WCCP_PORT {
                    return Err(FrameError {
                        field: "ipv4 flags",
                        offset: ip_off + 6,
                        detail: "fragmented WCCP datagram (reassembly not supported)",
                    });
                }
                return Ok(None);
            }
            if p.len() < 8 {
                return Err(FrameError {
                    field: "udp header",
                    offset: l4_off,
                    detail: "truncated (need 8 octets)",
                });
            }
            let sport = u16::from_be_bytes([p[0], p[1]]);
            let dport = u16::from_be_bytes([p[2], p[3]]);
            if sport != WCCP_PORT && dport != WCCP_PORT {
                return Ok(None);
            }
            let ulen = usize::from(u16::from_be_bytes([p[4], p[5]]));
            if ulen < 8 || ulen > p.len() {
                return Err(FrameError {
                    field: "udp length",
                    offset: l4_off + 4,
                    detail: "inconsistent with the IPv4 payload length",
                });
            }
            Ok(Some(Extracted::Wccp {
                src: SocketAddrV4::new(ip.src, sport),
                dst: SocketAddrV4::new(ip.dst, dport),
                payload: &p[8..ulen],
            }))
        }
        IPPROTO_GRE if !ip.fragment => Ok(Some(Extracted::Gre {
            src: ip.src,
            dst: ip.dst,
            payload: ip.payload,
        })),
        _ => Ok(None),
    }
}

// ------------------------------------------------------------------------------------------------
// Writing.

/// Writes a classic little-endian, microsecond-resolution pcap with link type Ethernet.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header (snaplen 65535, link type Ethernet).
    ///
    /// # Errors
    /// I/O errors from `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(PCAP_FILE_HEADER_LEN);
        h.extend_from_slice(&PCAP_MAGIC_US.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// Appends one frame with the given timestamp.
    ///
    /// # Errors
    /// I/O errors; `InvalidInput` if the frame is longer than `u32::MAX` octets.
    pub fn write_frame(&mut self, timestamp: Duration, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
        let secs = u32::try_from(timestamp.as_secs()).unwrap_or(u32::MAX);
        let mut h = [0u8; PCAP_RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&timestamp.subsec_micros().to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)
    }

    /// Flushes and returns the underlying writer.
    ///
    /// # Errors
    /// I/O errors from the flush.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a whole pcap of Ethernet/IPv4/UDP frames, one per `(src, dst, payload)`, timestamps
/// 1 ms apart starting at 1 s.
///
/// # Errors
/// I/O errors, or `InvalidInput` if a payload does not fit in one IPv4 packet.
pub fn write_udp_pcap<W: Write>(
    out: W,
    datagrams: &[(SocketAddrV4, SocketAddrV4, &[u8])],
) -> io::Result<W> {
    let mut w = PcapWriter::new(out)?;
    for (i, (src, dst, payload)) in datagrams.iter().enumerate() {
        let frame = ethernet_ipv4_udp(*src, *dst, payload)?;
        let ts = Duration::from_secs(1) + Duration::from_millis(u64::try_from(i).unwrap_or(0));
        w.write_frame(ts, &frame)?;
    }
    w.finish()
}

/// Internet checksum (RFC 1071) over `data`, starting from `initial` (a partial sum).
fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above leaves at most 16 bits.
    !u16::try_from(sum).unwrap_or(0xffff)
}

/// Computes the IPv4 header checksum of `header` (whose checksum field may hold anything).
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let mut h = header.to_vec();
    if h.len() >= 12 {
        h[10] = 0;
        h[11] = 0;
    }
    checksum(0, &h)
}

fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// Builds an Ethernet II + IPv4 frame (TTL 64, DF clear, correct header checksum) around `payload`.
///
/// MAC addresses are locally administered and derived from the IPv4 addresses.
///
/// # Errors
/// `InvalidInput` if the packet would exceed 65535 octets.
pub fn ethernet_ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    let total = u16::try_from(20 + payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "IPv4 packet too long"))?;
    let mut f = Vec::with_capacity(14 + usize::from(total));
    f.extend_from_slice(&mac_for(dst));
    f.extend_from_slice(&mac_for(src));
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = protocol;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    Ok(f)
}

/// Builds an Ethernet II + IPv4 + UDP frame with correct IPv4 and UDP checksums.
///
/// # Errors
/// `InvalidInput` if the datagram would exceed the IPv4 maximum.
pub fn ethernet_ipv4_udp(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    let ulen = u16::try_from(8 + payload.len())
        .ok()
        .filter(|l| usize::from(*l) + 20 <= 65535)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "UDP datagram too long"))?;
    let mut udp = Vec::with_capacity(usize::from(ulen));
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&ulen.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    // Pseudo-header: src, dst, zero, protocol, UDP length.
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
    pseudo.extend_from_slice(&ulen.to_be_bytes());
    let mut partial = 0u32;
    for c in pseudo.chunks_exact(2) {
        partial += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    let mut c = checksum(partial, &udp);
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    ethernet_ipv4(*src.ip(), *dst.ip(), IPPROTO_UDP, &udp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn write_then_read_round_trip() {
        let payload = [1u8, 2, 3, 4, 5];
        let out = write_udp_pcap(
            Vec::new(),
            &[
                (sa("10.0.0.1:2048"), sa("10.0.0.2:2048"), &payload[..]),
                (sa("10.0.0.2:2048"), sa("10.0.0.1:2048"), &payload[..3]),
            ],
        )
        .unwrap();
        let cap = read_capture(&out).unwrap();
        assert_eq!(cap.format, Format::PcapMicro);
        assert_eq!(cap.frames.len(), 2);
        assert_eq!(cap.frames[1].number, 2);
        assert_eq!(cap.frames[1].timestamp, Duration::from_millis(1001));
        match extract(cap.frames[0].link_type, &cap.frames[0].data).unwrap() {
            Some(Extracted::Wccp {
                src,
                dst,
                payload: p,
            }) => {
                assert_eq!(src, sa("10.0.0.1:2048"));
                assert_eq!(dst, sa("10.0.0.2:2048"));
                assert_eq!(p, &payload);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ipv4_checksum_is_valid() {
        let f = ethernet_ipv4_udp(sa("10.200.0.1:2048"), sa("10.200.0.2:2048"), &[0; 10]).unwrap();
        // Summing a header including its checksum gives 0xffff, i.e. checksum() == 0.
        assert_eq!(checksum(0, &f[14..34]), 0);
        // Known example header (Wikipedia, RFC 1071 style): checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
    }

    #[test]
    fn big_endian_nanosecond_classic() {
        let mut f = Vec::new();
        f.extend_from_slice(&PCAP_MAGIC_NS.to_be_bytes());
        f.extend_from_slice(&2u16.to_be_bytes());
        f.extend_from_slice(&4u16.to_be_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_be_bytes());
        f.extend_from_slice(&LINKTYPE_IPV4.to_be_bytes());
        let pkt = ethernet_ipv4_udp(sa("1.2.3.4:2048"), sa("5.6.7.8:2048"), &[9, 9]).unwrap();
        let ip = &pkt[14..];
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(&123_456_789u32.to_be_bytes());
        f.extend_from_slice(&u32::try_from(ip.len()).unwrap().to_be_bytes());
        f.extend_from_slice(&u32::try_from(ip.len()).unwrap().to_be_bytes());
        f.extend_from_slice(ip);
        let cap = read_capture(&f).unwrap();
        assert_eq!(cap.format, Format::PcapNano);
        assert_eq!(cap.frames[0].timestamp, Duration::new(7, 123_456_789));
        assert!(matches!(
            extract(cap.frames[0].link_type, &cap.frames[0].data),
            Ok(Some(Extracted::Wccp {
                payload: [9, 9],
                ..
            }))
        ));
    }

    #[test]
    fn vlan_and_sll() {
        let f = ethernet_ipv4_udp(sa("1.2.3.4:2048"), sa("5.6.7.8:999"), &[7]).unwrap();
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x88, 0xa8, 0x00, 0x06]);
        tagged.extend_from_slice(&f[12..]);
        assert!(matches!(
            extract(LINKTYPE_ETHERNET, &tagged),
            Ok(Some(Extracted::Wccp { payload: [7], .. }))
        ));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&f[14..]);
        assert!(matches!(
            extract(LINKTYPE_LINUX_SLL, &sll),
            Ok(Some(Extracted::Wccp { payload: [7], .. }))
        ));
    }

    #[test]
    fn ethernet_padding_is_trimmed_and_other_ports_skipped() {
        let mut f = ethernet_ipv4_udp(sa("1.2.3.4:2048"), sa("5.6.7.8:2048"), &[1]).unwrap();
        f.resize(60, 0xee);
        assert!(matches!(
            extract(LINKTYPE_ETHERNET, &f),
            Ok(Some(Extracted::Wccp { payload: [1], .. }))
        ));
        let other = ethernet_ipv4_udp(sa("1.2.3.4:53"), sa("5.6.7.8:53"), &[1]).unwrap();
        assert_eq!(extract(LINKTYPE_ETHERNET, &other), Ok(None));
    }

    #[test]
    fn malformed_files_name_record_and_offset() {
        let good = write_udp_pcap(
            Vec::new(),
            &[(sa("10.0.0.1:2048"), sa("10.0.0.2:2048"), &[0u8; 4][..])],
        )
        .unwrap();
        // Every truncation is an error or a shorter capture, never a panic.
        for n in 0..good.len() {
            let _ = read_capture(&good[..n]);
        }
        let err = read_capture(&good[..good.len() - 1]).unwrap_err();
        assert_eq!(
            err,
            PcapError::Truncated {
                what: "record data",
                record: 0,
                offset: 40,
                need: good.len() - 40,
                have: good.len() - 41,
            }
        );
        assert!(err.to_string().contains("record 0 at offset 40"));
        assert!(matches!(
            read_capture(b"GIF89a..."),
            Err(PcapError::BadMagic { .. })
        ));
    }

    #[test]
    fn truncated_ipv4_and_udp_are_errors() {
        let f = ethernet_ipv4_udp(sa("1.2.3.4:2048"), sa("5.6.7.8:2048"), &[1, 2, 3]).unwrap();
        let e = extract(LINKTYPE_ETHERNET, &f[..f.len() - 1]).unwrap_err();
        assert_eq!(e.field, "ipv4 total length");
        assert_eq!(e.offset, 16);
        let e = extract(LINKTYPE_ETHERNET, &f[..20]).unwrap_err();
        assert_eq!(e.field, "ipv4 header");
        for n in 0..f.len() {
            let _ = extract(LINKTYPE_ETHERNET, &f[..n]);
        }
    }
}
