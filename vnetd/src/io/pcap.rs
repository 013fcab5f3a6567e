//! pcap ports: an existing interface attached through libpcap, the classic VNET way.
//!
//! A [`PcapPort`] captures every frame that arrives on an interface the daemon did not make
//! (a bridge port, a veth end, a physical NIC carrying the guests' LAN), whoever it is
//! addressed to, and injects frames onto it as if they came from the wire. It is the port
//! for guests the daemon cannot give a TAP: their frames already arrive on some interface.
//!
//! # How the handle is set up, and why
//!
//! - **Promiscuous** (`pcap_set_promisc`): the interface's own MAC is not the guests'; the
//!   frames to carry are addressed to other MACs, and a NIC filters those out otherwise.
//! - **Inbound only** (`pcap_setdirection(PCAP_D_IN)`): frames the host itself sends out of
//!   the interface, including the ones this port injects, are not read back, so the daemon
//!   never forwards its own output again (Linux also skips the sending socket, but the
//!   direction is what says so).
//! - **Immediate mode**: each frame is handed over as it arrives instead of when a buffer
//!   block fills or a timeout runs out; latency matters more here than wake-ups. (On Linux
//!   this also selects the `TPACKET_V2` ring, whose per-frame slots suit this use.)
//! - **Snapshot length** [`SNAPLEN`], [`MAX_FRAME`]: whole frames, never cut. A frame can
//!   be longer than the interface MTU: receive offload (GRO, LRO) on a NIC, or a veth whose
//!   peer sends unsegmented GSO packets, hands the capture aggregated frames of up to 64 KiB.
//!   libpcap does not say how such a frame was to be cut, so the daemon drops it (counted
//!   `oversized`): turn the offloads off on the interface, or on a veth's peer (`ethtool -K
//!   IF gro off gso off tso off`), so that only MTU-sized frames arrive.
//! - **Checksums**: likewise, a veth's peer with transmit checksum offload on (the default)
//!   sends TCP and UDP packets whose checksum holds only the pseudo-header's sum, to be
//!   finished by a NIC that a veth does not have; captured as they are, the guests they reach
//!   drop them. Turn it off on the peer (`ethtool -K IF tx off`). (A packet socket with
//!   `PACKET_VNET_HDR` would tell what is left to do, as a TAP does; libpcap does not use
//!   one.)
//! - **Ring buffer** [`PcapOptions::buffer_size`], 8 MiB by default instead of libpcap's
//!   2 MiB: when the interface can offload, libpcap sizes every ring slot for a 64 KiB frame,
//!   and 2 MiB would then hold only about 30 frames of a burst.
//! - **Non-blocking** (`pcap_setnonblock`), and the selectable descriptor (on Linux the
//!   packet socket itself: `pcap_get_selectable_fd` and `pcap_fileno` return the same one)
//!   is handed out ([`AsFd`]) for the daemon's readiness loop: it is readable when frames
//!   wait in the ring.
//!
//! # Reading and writing
//!
//! [`PcapPort::read_frames`] is one `pcap_dispatch`: it hands every waiting frame, up to a
//! limit, to a closure, straight from libpcap's memory-mapped ring, so a batch costs no
//! system call per frame (and one `poll` when the ring is empty). Frames libpcap had to cut
//! (longer than the snapshot length) and runts shorter than an Ethernet header are dropped
//! and counted ([`PcapStats`]). [`PcapPort::read_frame`] copies one frame into a buffer.
//!
//! [`PcapPort::write_frame`] injects one frame. It does what `pcap_inject` does on Linux,
//! `send(2)` on the handle's packet socket, itself, with `MSG_DONTWAIT`: so the error is the
//! kernel's own ([`io::Error`]) rather than libpcap's text, "no room now" (`EAGAIN`,
//! `ENOBUFS`) is told apart as [`PcapError::WouldBlock`], and no send can block whatever
//! mode the handle is in.
//!
//! # The interface's state
//!
//! libpcap opens only an interface that is up ("That device is not up" otherwise). While it
//! is down afterwards, reads find nothing and writes fail with `ENETDOWN`; once it is up
//! again frames flow again. When it is deleted (or its namespace goes), reads fail with
//! "The interface disappeared" and writes with `ENXIO`, for good: close the port.
//!
//! # Namespaces
//!
//! The packet socket belongs to the network namespace of the thread that activates the
//! handle, and the interface is looked up there. [`PcapPort::open`] given a namespace
//! (`/run/netns/NAME`, `/proc/PID/ns/net`) activates the handle on a short-lived helper
//! thread that enters it (with [`crate::io::tap`]'s namespace helper), so the caller's
//! thread never changes namespace; the handle works from any thread afterwards.
//!
//! libpcap is used through the `pcap` crate, which wraps every call this needs
//! (`pcap_create`, the settings, `pcap_activate`, `pcap_setdirection`, `pcap_setnonblock`,
//! `pcap_fileno`, `pcap_dispatch`, `pcap_stats`); the only unsafe code here
//! lends the selectable descriptor out as a [`BorrowedFd`].

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{send, MsgFlags};
use pcap::{Active, Capture, Direction, Linktype};
use thiserror::Error;

use super::tap::{ifname_problem, in_namespace, open_netns, NetnsError, MAX_FRAME, MIN_FRAME};

/// The snapshot length asked for: [`MAX_FRAME`], a 65 535-byte packet behind an Ethernet
/// header with a VLAN tag, so no frame the port may carry is cut.
// MAX_FRAME (65 553) fits an i32.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
pub const SNAPLEN: i32 = MAX_FRAME as i32;

/// The default ring buffer size, 8 MiB (see the module documentation).
pub const DEFAULT_BUFFER_SIZE: usize = 8 << 20;

/// What can go wrong with a pcap port; the messages name the interface.
#[derive(Debug, Error)]
pub enum PcapError {
    /// The interface name is one the kernel would refuse or silently truncate.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The namespace to open the interface in could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// libpcap could not open the interface (no such device, no `CAP_NET_RAW`, ...).
    #[error("open {device}{} for capture: {source}", in_netns(.netns.as_deref()))]
    Open {
        /// The interface.
        device: String,
        /// The namespace it is in, if not the caller's.
        netns: Option<PathBuf>,
        /// libpcap's message.
        source: pcap::Error,
    },
    /// The interface does not carry Ethernet frames (e.g. `any`, which libpcap opens in
    /// "cooked" mode, or a TUN device): it cannot be a port of an Ethernet LAN.
    #[error("{device} is not an Ethernet interface (pcap link type {linktype} {name})")]
    NotEthernet {
        /// The interface.
        device: String,
        /// Its DLT number.
        linktype: i32,
        /// Its DLT name, as libpcap knows it.
        name: String,
    },
    /// A setting the port needs was refused after the handle was opened.
    #[error("set up capture on {device} ({step}): {source}")]
    Setup {
        /// The interface.
        device: String,
        /// Which setting, e.g. `pcap_setdirection(PCAP_D_IN)`.
        step: &'static str,
        /// libpcap's message.
        source: pcap::Error,
    },
    /// The helper thread that opens the handle inside a namespace could not be started, or
    /// ended without an answer.
    #[error("open {device}: helper thread for entering its namespace failed: {reason}")]
    Helper {
        /// The interface.
        device: String,
        /// What happened.
        reason: String,
    },
    /// No frame is waiting (single-frame read), or the socket cannot take a frame now
    /// (write): poll the descriptor and try again.
    #[error("pcap port would block")]
    WouldBlock,
    /// A frame longer than the read buffer of [`PcapPort::read_frame`]; it is consumed.
    #[error("frame of {len} bytes longer than the {capacity}-byte buffer, dropped")]
    Truncated {
        /// The frame's length.
        len: usize,
        /// The buffer's length.
        capacity: usize,
    },
    /// A frame to write is shorter than an Ethernet header.
    #[error(
        "frame of {len} bytes is shorter than an Ethernet header ({} bytes)",
        MIN_FRAME
    )]
    FrameTooShort {
        /// Its length.
        len: usize,
    },
    /// A frame to write is longer than [`MAX_FRAME`].
    #[error("frame of {len} bytes is longer than the {}-byte limit", MAX_FRAME)]
    FrameTooLong {
        /// Its length.
        len: usize,
    },
    /// Capturing failed (e.g. the interface went away).
    #[error("capture on {device}: {source}")]
    Read {
        /// The interface.
        device: String,
        /// libpcap's message.
        source: pcap::Error,
    },
    /// The kernel refused a frame (e.g. `EMSGSIZE`: longer than the interface's MTU
    /// allows; `ENETDOWN`: the interface is down; `ENXIO`: it is gone); the frame is lost.
    #[error("inject a frame on {device}: {source}")]
    Write {
        /// The interface.
        device: String,
        /// Why.
        source: io::Error,
    },
    /// The kernel took only part of a frame (not expected from a packet socket).
    #[error("short write on {device}: {written} of {len} bytes")]
    ShortWrite {
        /// The interface.
        device: String,
        /// Bytes taken.
        written: usize,
        /// Bytes offered.
        len: usize,
    },
    /// libpcap could not tell its counters.
    #[error("capture statistics of {device}: {source}")]
    Stats {
        /// The interface.
        device: String,
        /// libpcap's message.
        source: pcap::Error,
    },
}

fn in_netns(netns: Option<&Path>) -> String {
    netns.map_or_else(String::new, |p| format!(" in {}", p.display()))
}

/// How [`PcapPort::open_with`] sets up the handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapOptions {
    /// Size of the kernel ring the frames wait in, in bytes ([`DEFAULT_BUFFER_SIZE`] by
    /// default; larger values are capped at `i32::MAX`). Frames arriving while it is full
    /// are dropped by the kernel and counted in [`PcapStats::dropped`].
    pub buffer_size: usize,
}

impl Default for PcapOptions {
    fn default() -> Self {
        Self {
            buffer_size: DEFAULT_BUFFER_SIZE,
        }
    }
}

/// A pcap port's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcapStats {
    /// Frames the kernel passed to the handle (libpcap's `ps_recv`, which wraps at 2³²).
    pub received: u32,
    /// Frames the kernel dropped because the ring was full (`ps_drop`).
    pub dropped: u32,
    /// Frames the interface or its driver dropped, where it tells (`ps_ifdrop`).
    pub if_dropped: u32,
    /// Frames cut to the snapshot length, dropped by this port.
    pub truncated: u64,
    /// Frames shorter than an Ethernet header, dropped by this port.
    pub runts: u64,
}

/// An interface attached through libpcap: promiscuous, inbound only, immediate,
/// non-blocking; see the module documentation.
///
/// `Send` (it may move to the thread that polls it) but not `Sync`: libpcap's handle is not
/// safe to use from two threads at once.
pub struct PcapPort {
    capture: Capture<Active>,
    /// The selectable descriptor, owned by `capture`.
    fd: RawFd,
    device: String,
    netns: Option<PathBuf>,
    truncated: u64,
    runts: u64,
}

impl fmt::Debug for PcapPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapPort")
            .field("device", &self.device)
            .field("netns", &self.netns)
            .field("fd", &self.fd)
            .finish_non_exhaustive()
    }
}

impl PcapPort {
    /// Opens `device` with [`PcapOptions::default`]: in the network namespace `netns` if
    /// given, else in the calling thread's.
    ///
    /// # Errors
    ///
    /// As [`open_with`](PcapPort::open_with).
    pub fn open(netns: Option<&Path>, device: &str) -> Result<PcapPort, PcapError> {
        Self::open_with(netns, device, &PcapOptions::default())
    }

    /// Opens `device` in the network namespace `netns` (a helper thread enters it for the
    /// opening; `None`: the calling thread's own namespace, opened on this thread) and sets
    /// the handle up as the module documentation says.
    ///
    /// # Errors
    ///
    /// [`PcapError::InvalidName`] before anything is opened; [`PcapError::Netns`];
    /// [`PcapError::Helper`]; [`PcapError::Open`] (e.g. no such device in that namespace,
    /// the device is down, or no `CAP_NET_RAW`); [`PcapError::NotEthernet`];
    /// [`PcapError::Setup`].
    pub fn open_with(
        netns: Option<&Path>,
        device: &str,
        options: &PcapOptions,
    ) -> Result<PcapPort, PcapError> {
        if let Some(reason) = ifname_problem(device) {
            return Err(PcapError::InvalidName {
                name: device.to_owned(),
                reason,
            });
        }
        let buffer_size = i32::try_from(options.buffer_size).unwrap_or(i32::MAX);
        let activate = || -> Result<Capture<Active>, pcap::Error> {
            Capture::from_device(device)?
                .promisc(true)
                .immediate_mode(true)
                .snaplen(SNAPLEN)
                .buffer_size(buffer_size)
                .open()
        };
        let opened = match netns {
            None => activate(),
            Some(path) => {
                let target = open_netns(path)?;
                let step = || format!("opening {device} for capture");
                let helper = |reason: String| PcapError::Helper {
                    device: device.to_owned(),
                    reason,
                };
                let joined = std::thread::scope(|scope| {
                    std::thread::Builder::new()
                        .name("pcap-open".to_owned())
                        .spawn_scoped(scope, || in_namespace(&target, path, step, activate))
                        .map(|handle| handle.join())
                });
                match joined {
                    Ok(Ok(result)) => result?,
                    Ok(Err(_)) => return Err(helper("it panicked".to_owned())),
                    Err(e) => return Err(helper(format!("cannot start it: {e}"))),
                }
            }
        };
        let capture = opened.map_err(|source| PcapError::Open {
            device: device.to_owned(),
            netns: netns.map(Path::to_owned),
            source,
        })?;
        let linktype = capture.get_datalink();
        if linktype != Linktype::ETHERNET {
            return Err(PcapError::NotEthernet {
                device: device.to_owned(),
                linktype: linktype.0,
                name: linktype.get_name().unwrap_or_else(|_| "unknown".to_owned()),
            });
        }
        let setup = |step| {
            move |source| PcapError::Setup {
                device: device.to_owned(),
                step,
                source,
            }
        };
        capture
            .direction(Direction::In)
            .map_err(setup("pcap_setdirection(PCAP_D_IN)"))?;
        let capture = capture.setnonblock().map_err(setup("pcap_setnonblock"))?;
        // pcap_fileno: on Linux the packet socket, the very descriptor
        // pcap_get_selectable_fd returns (the crate does not export that wrapper); never -1
        // on an activated handle.
        let fd = capture.as_raw_fd();
        Ok(PcapPort {
            capture,
            fd,
            device: device.to_owned(),
            netns: netns.map(Path::to_owned),
            truncated: 0,
            runts: 0,
        })
    }

    /// The interface's name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The namespace it was opened in, as given; `None` for the opener's own.
    pub fn netns(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// Hands each waiting frame (destination MAC first, no FCS), up to `max` of them, to
    /// `frame`, in arrival order, with one `pcap_dispatch`; returns how many it handed
    /// over. 0 means nothing was waiting (or `max` was 0). The slices point into libpcap's
    /// ring: copy what must outlive the call. Cut frames and runts are dropped and counted
    /// ([`stats`](PcapPort::stats)).
    ///
    /// # Errors
    ///
    /// [`PcapError::Read`] (e.g. the interface was deleted: permanent, close the port).
    pub fn read_frames(
        &mut self,
        max: usize,
        mut frame: impl FnMut(&[u8]),
    ) -> Result<usize, PcapError> {
        if max == 0 {
            return Ok(0);
        }
        let max = max.min(i32::MAX as usize);
        let (mut delivered, mut truncated, mut runts) = (0, 0, 0);
        let result = self.capture.dispatch(Some(max), |packet| {
            if packet.header.caplen < packet.header.len {
                truncated += 1;
            } else if packet.data.len() < MIN_FRAME {
                runts += 1;
            } else {
                delivered += 1;
                frame(packet.data);
            }
        });
        self.truncated += truncated;
        self.runts += runts;
        match result {
            Ok(_) => Ok(delivered),
            Err(source) => Err(PcapError::Read {
                device: self.device.clone(),
                source,
            }),
        }
    }

    /// Copies the next waiting frame into `buf` and returns its length, or `None` if no
    /// frame is waiting.
    ///
    /// # Errors
    ///
    /// [`PcapError::Truncated`] when the frame was longer than `buf` (it is consumed: read
    /// the next one); [`PcapError::Read`].
    pub fn read_frame(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PcapError> {
        let capacity = buf.len();
        // Cut frames and runts are dropped on the way; each round takes one frame off the
        // ring, so this ends when the ring is empty at the latest.
        loop {
            let dropped_before = self.truncated + self.runts;
            let mut got = None;
            self.read_frames(1, |frame| {
                got = Some(match buf.get_mut(..frame.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(frame);
                        Ok(frame.len())
                    }
                    None => Err(frame.len()),
                });
            })?;
            return match got {
                Some(Ok(len)) => Ok(Some(len)),
                Some(Err(len)) => Err(PcapError::Truncated { len, capacity }),
                None if self.truncated + self.runts > dropped_before => continue,
                None => Ok(None),
            };
        }
    }

    /// Injects one frame (destination MAC first, no FCS) on the interface, as if it had
    /// come from the wire: the interface's neighbours (the bridge, the veth's peer) receive
    /// it.
    ///
    /// # Errors
    ///
    /// [`PcapError::FrameTooShort`] or [`PcapError::FrameTooLong`] without a system call;
    /// [`PcapError::WouldBlock`] when the socket cannot take the frame now (`EAGAIN`,
    /// `ENOBUFS`: keep it and retry when the descriptor is writable);
    /// [`PcapError::Write`] for anything else (the frame is lost). Interrupted sends are
    /// retried.
    pub fn write_frame(&self, frame: &[u8]) -> Result<(), PcapError> {
        if frame.len() < MIN_FRAME {
            return Err(PcapError::FrameTooShort { len: frame.len() });
        }
        if frame.len() > MAX_FRAME {
            return Err(PcapError::FrameTooLong { len: frame.len() });
        }
        loop {
            return match send(self.fd, frame, MsgFlags::MSG_DONTWAIT) {
                Ok(n) if n == frame.len() => Ok(()),
                Ok(n) => Err(PcapError::ShortWrite {
                    device: self.device.clone(),
                    written: n,
                    len: frame.len(),
                }),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => {
                    Err(PcapError::WouldBlock)
                }
                Err(e) => Err(PcapError::Write {
                    device: self.device.clone(),
                    source: e.into(),
                }),
            };
        }
    }

    /// The kernel's counters for the handle and this port's own.
    ///
    /// # Errors
    ///
    /// [`PcapError::Stats`].
    pub fn stats(&mut self) -> Result<PcapStats, PcapError> {
        let stat = self.capture.stats().map_err(|source| PcapError::Stats {
            device: self.device.clone(),
            source,
        })?;
        Ok(PcapStats {
            received: stat.received,
            dropped: stat.dropped,
            if_dropped: stat.if_dropped,
            truncated: self.truncated,
            runts: self.runts,
        })
    }
}

impl AsFd for PcapPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is the descriptor of `capture`'s packet socket (pcap_fileno),
        // which keeps it open until the handle is closed, when `self` is dropped; the
        // borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl AsRawFd for PcapPort {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}
