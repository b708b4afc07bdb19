//! Writing classic pcap: what `wccpd bench` records and the tests feed to `tshark` and to the
//! DPDK `net_pcap` driver.

use std::io::{self, Write};
use std::time::Duration;

use super::read::{PCAP_FILE_HEADER_LEN, PCAP_MAGIC_US, PCAP_RECORD_HEADER_LEN};
use super::LINKTYPE_ETHERNET;

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
