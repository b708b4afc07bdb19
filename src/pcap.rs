//! Capture files: read classic pcap and pcapng ([`read_capture`]), pick out WCCP traffic
//! ([`extract`]), write classic pcap ([`PcapWriter`]).
//!
//! * `read`: classic pcap in both byte orders, with the microsecond (`a1b2c3d4`) and
//!   nanosecond (`a1b23c4d`) magic, and pcapng (what `dumpcap`/`tshark` write by default).
//!   Every read is bounds-checked: a malformed file gives a [`PcapError`] naming the record
//!   (block) index and the file offset; nothing here panics on untrusted bytes.
//! * `dissect`: link types Ethernet (1, with any number of 802.1Q/802.1ad tags), raw IPv4
//!   (101 and 228, also 12 "raw IP" when the first nibble is 4) and Linux cooked SLL (113);
//!   IPv4, UDP and GRE through `wire`'s checked views. A malformed header is a [`FrameError`]
//!   naming the field and its offset in the frame.
//! * `write`: classic little-endian microsecond pcap with Ethernet frames (`wccpd bench`, and
//!   the tests, whose frame builders live in `tests/common/frames.rs`).

mod dissect;
mod read;
mod write;

pub use dissect::{extract, Extracted, FrameError};
pub use read::{is_capture, read_capture, Capture, Format, Frame, PcapError};
pub use write::PcapWriter;

/// The UDP port WCCPv2 control messages use (source and destination).
pub const WCCP_PORT: u16 = control::WCCP_PORT;

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
