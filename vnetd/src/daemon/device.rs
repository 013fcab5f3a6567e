//! A port's device, whatever its kind: the one place the daemon tells TAP, pcap and unix
//! datagram ports apart (see [`crate::io`] for each).

use std::os::fd::{AsFd, BorrowedFd};

use crate::control::{PortKind, PortSpec};
use crate::io::pcap::{PcapError, PcapPort};
use crate::io::tap::{LinkSettings, Tap, TapError};
use crate::io::unix::{FrameBatch, UnixError, UnixPort};

use super::GUEST_MTU;

/// An open port device.
#[derive(Debug)]
pub(super) enum Device {
    Tap(Tap),
    Pcap(PcapPort),
    /// Boxed: a unix port holds its peer's address, 110 bytes, twice.
    Unix(Box<UnixPort>),
}

/// What one read gave.
pub(super) enum Read {
    /// A frame of this many bytes is at the start of the buffer.
    Frame(usize),
    /// Nothing waiting.
    Empty,
    /// A frame was dropped on the way in: too long for the buffer.
    Truncated,
    /// The device failed (logged by the caller); stop reading it for now.
    Failed(String),
}

/// What one write gave.
pub(super) enum Wrote {
    Ok,
    /// The device cannot take it now (the frame is lost, as on a full NIC queue).
    Full,
    /// Any other failure, e.g. a guest that is gone.
    Failed,
}

impl Device {
    /// Opens (or re-opens, after a restart) the device of `spec` and brings it up.
    pub(super) fn open(spec: &PortSpec) -> Result<Device, String> {
        match &spec.kind {
            PortKind::Tap { ifname, netns } => {
                let (tap, _existed) = Tap::open_or_create_persistent(netns.as_deref(), ifname)
                    .map_err(|e| e.to_string())?;
                tap.configure(&LinkSettings {
                    mac: if spec.lan {
                        None
                    } else {
                        spec.macs.first().copied()
                    },
                    mtu: Some(GUEST_MTU),
                    up: Some(true),
                })
                .map_err(|e| e.to_string())?;
                Ok(Device::Tap(tap))
            }
            PortKind::Pcap { device, netns } => PcapPort::open(netns.as_deref(), device)
                .map(Device::Pcap)
                .map_err(|e| e.to_string()),
            PortKind::Unix { path, peer } => UnixPort::bind(path, peer.as_deref())
                .map(|port| Device::Unix(Box::new(port)))
                .map_err(|e| e.to_string()),
        }
    }

    /// Reads one frame into `buf` (TAP and pcap; a unix port is read by batches,
    /// [`Device::read_batch`]).
    pub(super) fn read(&mut self, buf: &mut [u8]) -> Read {
        match self {
            Device::Tap(tap) => match tap.read_frame(buf) {
                Ok(len) => Read::Frame(len),
                Err(TapError::WouldBlock) => Read::Empty,
                Err(TapError::Truncated { .. }) => Read::Truncated,
                Err(e) => Read::Failed(e.to_string()),
            },
            Device::Pcap(pcap) => match pcap.read_frame(buf) {
                Ok(Some(len)) => Read::Frame(len),
                Ok(None) | Err(PcapError::WouldBlock) => Read::Empty,
                Err(PcapError::Truncated { .. }) => Read::Truncated,
                Err(e) => Read::Failed(e.to_string()),
            },
            Device::Unix(_) => Read::Empty,
        }
    }

    /// A unix port's waiting datagrams, with one `recvmmsg`; `None` for other kinds.
    pub(super) fn read_batch(&mut self, batch: &mut FrameBatch) -> Option<Result<usize, String>> {
        match self {
            Device::Unix(unix) => Some(match unix.recv_batch(batch) {
                Ok(n) => Ok(n),
                Err(UnixError::WouldBlock) => Ok(0),
                Err(e) => Err(e.to_string()),
            }),
            _ => None,
        }
    }

    /// Writes one frame toward the guest(s).
    pub(super) fn write(&self, frame: &[u8]) -> Wrote {
        let full = match self {
            Device::Tap(tap) => match tap.write_frame(frame) {
                Ok(()) => return Wrote::Ok,
                Err(e) => matches!(e, TapError::WouldBlock),
            },
            Device::Pcap(pcap) => match pcap.write_frame(frame) {
                Ok(()) => return Wrote::Ok,
                Err(e) => matches!(e, PcapError::WouldBlock),
            },
            Device::Unix(unix) => match unix.write_frame(frame) {
                Ok(()) => return Wrote::Ok,
                Err(e) => matches!(e, UnixError::WouldBlock),
            },
        };
        if full {
            Wrote::Full
        } else {
            Wrote::Failed
        }
    }

    /// Removes what attaching created: a TAP device goes away; a pcap port leaves its
    /// interface as it was; a unix port removes its socket file.
    pub(super) fn remove(self) -> Result<(), String> {
        match self {
            Device::Tap(tap) => tap.remove().map_err(|e| e.to_string()),
            Device::Pcap(_) | Device::Unix(_) => Ok(()),
        }
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Device::Tap(tap) => tap.as_fd(),
            Device::Pcap(pcap) => pcap.as_fd(),
            Device::Unix(unix) => unix.as_fd(),
        }
    }
}
