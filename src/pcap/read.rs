//! Reading capture files: classic pcap (both byte orders, microsecond and nanosecond
//! timestamps) and pcapng (Section Header, Interface Description with `if_tsresol`, Enhanced,
//! Simple and obsolete Packet blocks; other blocks are skipped by their length).
//!
//! # Why not the `pcap-parser` crate
//! It was considered (issue 10) and not taken. Its errors (`PcapError::Incomplete(needed)`,
//! `nom` parse errors) carry neither the record (block) index nor the file offset, which every
//! malformed-file error here names and the `decode` tests assert; timestamp resolution
//! (`if_tsresol`), interface ids and the per-record limits would still be ours to check; and
//! it brings `nom`, `circular` and `rusticata-macros`. Wrapping it to keep these errors would
//! not be smaller than this reader (about 400 lines, no dependency, every read bounds-checked
//! by one `Reader`).

use std::fmt;
use std::time::Duration;

pub(super) const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
pub(super) const PCAP_FILE_HEADER_LEN: usize = 24;
pub(super) const PCAP_RECORD_HEADER_LEN: usize = 16;
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

/// Whether `buf` starts with a classic pcap (either byte order, microsecond or nanosecond) or
/// a pcapng magic number: a capture file, well-formed or not.
pub fn is_capture(buf: &[u8]) -> bool {
    let Some(m) = buf.get(..4) else {
        return false;
    };
    let be = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    be == PCAPNG_SHB
        || [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&be)
        || [PCAP_MAGIC_US, PCAP_MAGIC_NS].contains(&be.swap_bytes())
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
