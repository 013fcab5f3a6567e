//! `vnetctl record`: a port's frames, both directions, into a pcap file for a while — the
//! traces `vttif replay` tunes VTTIF with, taken where the daemon counts (a guest's own
//! frames as they enter the overlay, and what it is sent).
//!
//! Each frame keeps its first [`Recorder::SNAPLEN`] bytes (addresses, EtherType, the IP and
//! TCP headers; never a guest's payload) and its length; a super-frame of a guest with
//! offloads is one frame, as the daemon counts it. Writes are buffered, so recording costs a
//! copy of 128 bytes per frame and a `write(2)` per 64 KiB of trace; the data path's figures
//! are measured without it.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use vttif::pcap_writer::PcapWriter;

/// A recording of one port.
#[derive(Debug)]
pub(super) struct Recorder {
    out: PcapWriter<BufWriter<File>>,
    path: PathBuf,
    /// When it ends, on the daemon's clock.
    pub until: Duration,
    /// Frames written.
    pub frames: u64,
}

impl Recorder {
    /// Bytes kept of each frame.
    pub const SNAPLEN: u32 = 128;

    /// Starts a recording into a new file `path` (an existing file is not overwritten).
    pub fn create(path: &Path, until: Duration) -> Result<Recorder, String> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let out = PcapWriter::new(BufWriter::with_capacity(1 << 16, file), Self::SNAPLEN)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Recorder {
            out,
            path: path.to_path_buf(),
            until,
            frames: 0,
        })
    }

    /// Records one Ethernet frame; false if the file cannot be written any more.
    pub fn frame(&mut self, eth: &[u8]) -> bool {
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.frames += 1;
        self.out.write(at, eth, eth.len()).is_ok()
    }

    /// Ends the recording; what it says of it.
    pub fn finish(mut self) -> String {
        match self.out.flush() {
            Ok(()) => format!("{} frames in {}", self.frames, self.path.display()),
            Err(e) => format!(
                "{} frames in {}, then: {e}",
                self.frames,
                self.path.display()
            ),
        }
    }
}
