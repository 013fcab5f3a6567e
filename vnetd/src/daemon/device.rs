//! A port's device, whatever its kind: the one place the daemon tells TAP, pcap and unix
//! datagram ports apart (see [`crate::io`] for each).

use std::os::fd::{AsFd, BorrowedFd};

use crate::control::{PortKind, PortSpec};
use crate::io::pcap::{PcapError, PcapPort};
use crate::io::tap::{LinkSettings, Tap, TapError};
use crate::io::unix::{FrameBatch, UnixError, UnixPort};
use crate::offload::{self, Offload, DESCRIPTOR_LEN, VNET_HDR_LEN};

use super::{Carried, GUEST_MTU};

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
    /// A frame is in `buf[at..at + len]`; with `offload`, behind its offload descriptor
    /// (see [`Carried`]).
    Frame {
        at: usize,
        len: usize,
        offload: bool,
    },
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
    /// The frame's offloads could not be finished: its descriptor does not fit it.
    BadOffload,
}

impl Device {
    /// Opens (or re-opens, after a restart) the device of `spec` and brings it up; a TAP
    /// with checksum and segmentation offloads if `offloads`.
    pub(super) fn open(spec: &PortSpec, offloads: bool) -> Result<Device, String> {
        match &spec.kind {
            PortKind::Tap { ifname, netns } => {
                let (tap, _existed) =
                    Tap::open_or_create_persistent(netns.as_deref(), ifname, offloads)
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
    /// [`Device::read_batch`]). From a TAP with offloads, a frame with work left comes
    /// behind its descriptor, written where the virtio-net header was; one without, after
    /// the header.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> Read {
        match self {
            Device::Tap(tap) => match tap.read_frame(buf) {
                Ok(len) if tap.has_offloads() => behind_vnet_hdr(buf, len),
                Ok(len) => Read::Frame {
                    at: 0,
                    len,
                    offload: false,
                },
                Err(TapError::WouldBlock) => Read::Empty,
                Err(TapError::Truncated { .. }) => Read::Truncated,
                Err(e) => Read::Failed(e.to_string()),
            },
            Device::Pcap(pcap) => match pcap.read_frame(buf) {
                Ok(Some(len)) => Read::Frame {
                    at: 0,
                    len,
                    offload: false,
                },
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

    /// Writes one frame toward the guest(s): to a TAP with offloads as it is, behind its
    /// virtio-net header; elsewhere, a frame with offloads left has them finished first
    /// (checksum, segmentation: several frames, in `scratch`).
    pub(super) fn write(&self, frame: Carried<'_>, scratch: &mut Vec<u8>) -> Wrote {
        let Ok(work) = frame.work() else {
            return Wrote::BadOffload;
        };
        let eth = frame.eth();
        match (self, work) {
            (Device::Tap(tap), work) if tap.has_offloads() => {
                let header = work.unwrap_or(Offload::NONE).to_vnet_hdr();
                match tap.write_with_header(&header, eth) {
                    Ok(()) => Wrote::Ok,
                    Err(TapError::WouldBlock) => Wrote::Full,
                    Err(_) => Wrote::Failed,
                }
            }
            (_, None) => self.write_plain(eth),
            (_, Some(work)) => {
                let mut wrote = Wrote::Ok;
                let resolved = offload::resolve(&work, eth, scratch, |plain| {
                    if let w @ (Wrote::Full | Wrote::Failed | Wrote::BadOffload) =
                        self.write_plain(plain)
                    {
                        wrote = w;
                    }
                });
                match resolved {
                    Ok(_) => wrote,
                    Err(_) => Wrote::BadOffload,
                }
            }
        }
    }

    /// Writes one plain frame.
    fn write_plain(&self, frame: &[u8]) -> Wrote {
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

/// A frame read from a TAP with offloads, `len` bytes with the virtio-net header in front:
/// one with work left gets its descriptor where the header was; one without starts after
/// it.
fn behind_vnet_hdr(buf: &mut [u8], len: usize) -> Read {
    if len < VNET_HDR_LEN {
        return Read::Failed(format!(
            "{len}-byte read is shorter than a virtio-net header"
        ));
    }
    match Offload::from_vnet_hdr(&buf[..VNET_HDR_LEN]) {
        Ok(o) if o.is_none() => Read::Frame {
            at: VNET_HDR_LEN,
            len: len - VNET_HDR_LEN,
            offload: false,
        },
        Ok(o) => {
            buf[..DESCRIPTOR_LEN].copy_from_slice(&o.encode());
            Read::Frame {
                at: 0,
                len,
                offload: true,
            }
        }
        Err(e) => Read::Failed(format!("virtio-net header: {e}")),
    }
}

// The descriptor takes the virtio-net header's place, in place.
const _: () = assert!(DESCRIPTOR_LEN == VNET_HDR_LEN);

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Device::Tap(tap) => tap.as_fd(),
            Device::Pcap(pcap) => pcap.as_fd(),
            Device::Unix(unix) => unix.as_fd(),
        }
    }
}
