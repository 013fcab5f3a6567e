//! Classic pcap files written frame by frame (microsecond timestamps, Ethernet link type):
//! the traces of `vnetctl record` and `vttif synth`, which `vttif replay` (or tcpdump,
//! Wireshark) reads.

use std::io::{self, Write};
use std::time::Duration;

/// A pcap file being written.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header; frames will keep at most `snaplen` bytes each.
    ///
    /// # Errors
    /// Writing fails.
    pub fn new(mut out: W, snaplen: u32) -> io::Result<PcapWriter<W>> {
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&[0; 8])?; // time zone offset, timestamp accuracy
        out.write_all(&snaplen.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?; // LINKTYPE_ETHERNET
        Ok(PcapWriter { out, snaplen })
    }

    /// Writes one frame seen at `at` (since the Unix epoch) that was `len` bytes long, of
    /// which `bytes` are at hand: at most the snapshot length of them is kept.
    ///
    /// # Errors
    /// Writing fails, or `at` is past 2106 (the format's 32-bit seconds).
    pub fn write(&mut self, at: Duration, bytes: &[u8], len: usize) -> io::Result<()> {
        let secs = u32::try_from(at.as_secs())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timestamp past 2106"))?;
        let orig = u32::try_from(len).unwrap_or(u32::MAX);
        let kept = bytes
            .len()
            .min(usize::try_from(self.snaplen).unwrap_or(usize::MAX));
        let kept_u32 = u32::try_from(kept).unwrap_or(u32::MAX);
        self.out.write_all(&secs.to_le_bytes())?;
        self.out.write_all(&at.subsec_micros().to_le_bytes())?;
        self.out.write_all(&kept_u32.to_le_bytes())?;
        self.out.write_all(&orig.to_le_bytes())?;
        self.out.write_all(&bytes[..kept])
    }

    /// Flushes what is buffered.
    ///
    /// # Errors
    /// Writing fails.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records() {
        let mut w = PcapWriter::new(Vec::new(), 16).unwrap();
        let frame: Vec<u8> = (0..60).collect();
        w.write(Duration::new(1_700_000_000, 123_456_000), &frame, 1514)
            .unwrap();
        let b = w.out;
        assert_eq!(b.len(), 24 + 16 + 16);
        assert_eq!(&b[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(&b[16..20], &16u32.to_le_bytes());
        assert_eq!(&b[24..28], &1_700_000_000u32.to_le_bytes());
        assert_eq!(&b[28..32], &123_456u32.to_le_bytes());
        assert_eq!(&b[32..36], &16u32.to_le_bytes());
        assert_eq!(&b[36..40], &1514u32.to_le_bytes());
        assert_eq!(&b[40..], &frame[..16]);
        let mut w = PcapWriter::new(Vec::new(), 16).unwrap();
        assert!(w
            .write(Duration::from_secs(u64::MAX / 2), &frame, 60)
            .is_err());
    }
}
