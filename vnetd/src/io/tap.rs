//! TAP devices: a guest's Ethernet port as a file descriptor.
//!
//! A [`Tap`] is opened on `/dev/net/tun` with `IFF_TAP | IFF_NO_PI`: every read returns one
//! whole Ethernet frame (destination MAC first, no FCS) and every write injects one, with no
//! packet-information header and no virtio-net header, so the kernel segments GSO packets
//! and fills in checksums before handing frames over. The descriptor is non-blocking and
//! close-on-exec. A TAP made by [`Tap::create`] or [`Tap::create_in`] is not persistent:
//! it disappears when the [`Tap`] is dropped (or the process exits).
//!
//! # Persistent TAPs
//!
//! A guest configures its NIC (addresses, routes, neighbours) on the interface, not on the
//! descriptor. If the daemon dies (even by `kill -9`) a plain TAP vanishes with its
//! descriptor and takes that configuration with it; a *persistent* one (`TUNSETPERSIST`)
//! stays, without carrier, until someone clears the flag, so a restarted daemon re-attaches
//! and the guest never notices more than a pause.
//! [`Tap::open_or_create_persistent`] does both halves in one call: `TUNSETIFF` with a name
//! that is already a persistent TAP attaches to it (the kernel's own re-attach), otherwise
//! it creates one, and the TAP is then made persistent. It tells which happened from the
//! `IFF_PERSIST` flag the device had at attach (`TUNGETIFF`), not from a look-up before, so
//! there is no window between looking and attaching. It refuses a `%d` pattern (a name
//! that cannot be found again is no use to a restarted daemon) and fails with
//! [`TapError::NotAttachable`] when the name is taken by an interface it may not attach to:
//! another kind of interface or a TUN device (`EINVAL`), a TAP some other descriptor holds
//! (`EBUSY`), or one owned by another user or group (`EPERM`). [`Tap::set_persistent`]
//! turns the flag on or off; [`Tap::remove`] clears it and closes, so the interface is
//! gone.
//!
//! Note that [`Tap::create`] and [`Tap::create_in`] given the name of an existing
//! persistent TAP attach to it too (they pass the same flags): they stay as they were, and
//! the interface stays persistent.
//!
//! # Namespaces
//!
//! - [`Tap::create`] makes the interface in the calling thread's network namespace;
//!   [`Tap::create_in`] makes it directly inside another one (the thread enters the
//!   namespace with `setns`, opens the device and comes back), so no name ever appears in
//!   the creator's namespace.
//! - [`Tap::move_to`] moves an existing TAP into another namespace by path
//!   (`/run/netns/NAME` as `ip netns` makes them, or `/proc/PID/ns/net`), e.g. into a
//!   guest container once it exists. The kernel takes the interface down when it moves;
//!   bring it up again with [`Tap::set_up`]. Its MAC and MTU stay.
//! - Whatever namespace the interface lives in, the descriptor keeps working from the
//!   creator's: frames the guest's stack sends are read here, frames written here arrive
//!   in the guest's stack.
//!
//! The [`Tap`] remembers the namespace its interface lives in (an open handle, not a path
//! that could be unmounted), and [`Tap::configure`] sends its netlink request from inside
//! it. Entering a namespace needs `CAP_SYS_ADMIN`; a TAP configured from the namespace it
//! lives in needs only `CAP_NET_ADMIN`. If some other program moves or renames the
//! interface behind the [`Tap`]'s back, configuring it fails with `ENODEV`; reading and
//! writing frames are not affected.
//!
//! # Frames
//!
//! [`Tap::read_frame`] and [`Tap::write_frame`] move one frame each and never block:
//! [`TapError::WouldBlock`] means "nothing waiting" or "no room now" (poll the descriptor).
//! A frame longer than the read buffer is consumed and reported as
//! [`TapError::Truncated`]. The TAP driver copies what fits and returns no more than the
//! buffer's length, so the frame's real length cannot be known; a one-byte spare read past
//! the buffer (`readv`) tells a frame that fills the buffer exactly from a longer one. A
//! frame to write that is shorter than an Ethernet header or longer than [`MAX_FRAME`] is
//! refused before any system call.
//!
//! # Offloads
//!
//! A TAP opened with offloads ([`Tap::open_or_create_persistent`] with `offloads` set) has
//! `IFF_VNET_HDR`, and its interface announces checksum and TCP segmentation offload
//! (`TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`), as a virtio NIC does.
//! The guest's kernel then hands over TCP super-frames of up to 64 KB with their checksums
//! left to do, and takes such frames back: one read or write moves what would be dozens of
//! wire-sized frames, and neither side checksums. Every frame read then starts with the
//! 10-byte `struct virtio_net_hdr` telling what is left to do ([`crate::offload`] reads it),
//! and every write takes one ([`Tap::write_with_header`]). Without offloads the interface's
//! offload features are cleared, so a persistent TAP left with them by an earlier run
//! hands over only plain frames again.

use std::ffi::c_short;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::uio::readv;
use thiserror::Error;

use super::netlink::{LinkChange, RouteSocket};
use crate::model::Mac;

/// Shortest frame a TAP accepts: an Ethernet header (two addresses and the EtherType).
pub const MIN_FRAME: usize = 14;

/// Longest frame a TAP can hand over or take: a 65 535-byte packet behind an Ethernet header
/// with one VLAN tag.
pub const MAX_FRAME: usize = 65_535 + 18;

/// `IFF_VNET_HDR` as a `short` (0x4000).
#[allow(clippy::cast_possible_truncation)]
const VNET_HDR_FLAG: c_short = libc::IFF_VNET_HDR as c_short;

/// `IFF_TAP | IFF_NO_PI` as the `short` that `struct ifreq` carries.
// The flags are 0x1002, which fits a c_short.
#[allow(clippy::cast_possible_truncation)]
const TAP_FLAGS: c_short = (libc::IFF_TAP | libc::IFF_NO_PI) as c_short;

/// The offloads a TAP with offloads announces: checksums, and TCP segmentation over IPv4
/// and IPv6.
const TAP_OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

/// What can go wrong with a TAP; the messages name the step and the interface.
#[derive(Debug, Error)]
pub enum TapError {
    /// The name is one the kernel would refuse or silently truncate.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The network namespace file could not be opened.
    #[error("open network namespace {}: {source}", .path.display())]
    OpenNetns {
        /// The namespace's path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The calling thread could not enter a network namespace (needs `CAP_SYS_ADMIN`).
    #[error("enter network namespace {}: {source}", .path.display())]
    EnterNetns {
        /// The namespace's path, or `<namespace of TAP NAME>`.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The calling thread could not return to its own namespace after a step done in
    /// another; it is left in the wrong namespace.
    #[error("return to the thread's own network namespace after {step}: {source}")]
    ReturnNetns {
        /// The step that ran in the other namespace.
        step: String,
        /// Why.
        source: io::Error,
    },
    /// The TAP could not be created (`/dev/net/tun` missing, no `CAP_NET_ADMIN`, the name
    /// taken by an interface of another kind, ...).
    #[error("create TAP {name}{}: {source}", in_netns(.netns.as_deref()))]
    Create {
        /// The requested name.
        name: String,
        /// The namespace it was to be created in, if not the current one.
        netns: Option<PathBuf>,
        /// Why.
        source: io::Error,
    },
    /// An interface of that name exists but cannot be attached as a persistent TAP; the
    /// reason says why, from the kernel's answer to `TUNSETIFF`.
    #[error("attach to existing interface {name}{}: {reason} ({source})", in_netns(.netns.as_deref()))]
    NotAttachable {
        /// The interface's name.
        name: String,
        /// The namespace it lives in, if not the current one.
        netns: Option<PathBuf>,
        /// What is wrong with it, e.g. `not a TAP (another kind of interface, a TUN
        /// device or a multi-queue TAP)`.
        reason: &'static str,
        /// The kernel's error (`EINVAL`, `EBUSY` or `EPERM`).
        source: io::Error,
    },
    /// The kernel refused to set the TAP's offloads (`TUNSETOFFLOAD`).
    #[error("set the offloads of TAP {name}: {source}")]
    Offloads {
        /// The interface's name.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// The kernel refused to set or clear the persistent flag (`TUNSETPERSIST`), or to tell
    /// it (`TUNGETIFF`).
    #[error("{what} of TAP {name}: {source}")]
    Persist {
        /// The interface's name.
        name: String,
        /// `set the persistent flag`, `clear the persistent flag` or `read the flags`.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The kernel refused to move the TAP (e.g. `EEXIST`: the target namespace already has
    /// an interface of that name).
    #[error("move TAP {name} into network namespace {}: {source}", .netns.display())]
    Move {
        /// The interface's name.
        name: String,
        /// The target namespace.
        netns: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The kernel refused a setting (MAC, MTU, up/down).
    #[error("configure TAP {name} ({what}): {source}")]
    Configure {
        /// The interface's name.
        name: String,
        /// The settings asked for, e.g. `mtu 1500, up`.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// Querying the interface (its MAC) failed.
    #[error("query TAP {name}: {source}")]
    Query {
        /// The interface's name.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// No frame is waiting (read), or the TAP cannot take one now (write): poll the
    /// descriptor and try again.
    #[error("TAP would block")]
    WouldBlock,
    /// A frame longer than the read buffer arrived; it was consumed and is lost (its real
    /// length is not known).
    #[error("frame longer than the {capacity}-byte buffer, dropped")]
    Truncated {
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
    /// Reading failed (e.g. `EBADFD` once the interface was deleted with its namespace).
    #[error("read from TAP: {0}")]
    Read(io::Error),
    /// Writing failed (e.g. `EIO` while the interface is down); the frame is lost.
    #[error("write to TAP: {0}")]
    Write(io::Error),
    /// The kernel took only part of a frame (not expected from a TAP).
    #[error("short write to TAP: {written} of {len} bytes")]
    ShortWrite {
        /// Bytes taken.
        written: usize,
        /// Bytes offered.
        len: usize,
    },
}

/// What can go wrong running a step inside another network namespace (see
/// [`Tap::create_in`]); shared by the ports of [`crate::io`] that open their kernel object
/// inside a namespace. [`TapError`] carries the same three cases as its own variants.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// The network namespace file could not be opened.
    #[error("open network namespace {}: {source}", .path.display())]
    Open {
        /// The namespace's path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The thread could not enter the namespace (needs `CAP_SYS_ADMIN`).
    #[error("enter network namespace {}: {source}", .path.display())]
    Enter {
        /// The namespace's path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The thread could not return to its own namespace after a step done in another.
    #[error("return to the thread's own network namespace after {step}: {source}")]
    Return {
        /// The step that ran in the other namespace.
        step: String,
        /// Why.
        source: io::Error,
    },
}

impl From<NetnsError> for TapError {
    fn from(e: NetnsError) -> Self {
        match e {
            NetnsError::Open { path, source } => TapError::OpenNetns { path, source },
            NetnsError::Enter { path, source } => TapError::EnterNetns { path, source },
            NetnsError::Return { step, source } => TapError::ReturnNetns { step, source },
        }
    }
}

fn in_netns(netns: Option<&Path>) -> String {
    netns.map_or_else(String::new, |p| format!(" in {}", p.display()))
}

/// Settings applied to a TAP's interface in one netlink request; `None` leaves a setting
/// as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkSettings {
    /// Hardware address (a guest's own MAC when the TAP is its NIC).
    pub mac: Option<Mac>,
    /// MTU in bytes (the TAP driver takes 68..=65535).
    pub mtu: Option<u32>,
    /// Administratively up or down.
    pub up: Option<bool>,
}

impl LinkSettings {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(mac) = self.mac {
            parts.push(format!("mac {mac}"));
        }
        if let Some(mtu) = self.mtu {
            parts.push(format!("mtu {mtu}"));
        }
        if let Some(up) = self.up {
            parts.push(if up { "up" } else { "down" }.to_owned());
        }
        parts.join(", ")
    }
}

/// An open TAP device (non-blocking, close-on-exec).
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
    /// The namespace the interface lives in.
    netns: File,
    /// Its path, if it was given one (`None`: the creating thread's namespace).
    netns_path: Option<PathBuf>,
    /// Opened with `IFF_VNET_HDR` and offloads (see "Offloads" in the module documentation).
    offloads: bool,
}

impl Tap {
    /// Creates TAP `name` in the calling thread's network namespace. A name with `%d`
    /// (e.g. `tap%d`) lets the kernel pick the number; [`Tap::name`] tells the result.
    ///
    /// The interface starts down, with a random MAC and MTU 1500.
    ///
    /// # Errors
    ///
    /// [`TapError::InvalidName`], [`TapError::OpenNetns`] (the thread's own namespace,
    /// unlikely), [`TapError::Create`].
    pub fn create(name: &str) -> Result<Tap, TapError> {
        validate_ifname(name)?;
        let netns = current_netns()?;
        let (fd, name) = open_tap(name, TAP_FLAGS).map_err(|source| TapError::Create {
            name: name.to_owned(),
            netns: None,
            source,
        })?;
        Ok(Tap {
            fd,
            name,
            netns,
            netns_path: None,
            offloads: false,
        })
    }

    /// Creates TAP `name` directly inside the network namespace `netns` (a bind-mounted
    /// namespace such as `/run/netns/NAME`, or `/proc/PID/ns/net`). The calling thread
    /// enters that namespace for the creation and returns to its own.
    ///
    /// # Errors
    ///
    /// [`TapError::InvalidName`], [`TapError::OpenNetns`], [`TapError::EnterNetns`] (needs
    /// `CAP_SYS_ADMIN`), [`TapError::Create`], [`TapError::ReturnNetns`].
    pub fn create_in(netns: &Path, name: &str) -> Result<Tap, TapError> {
        validate_ifname(name)?;
        let target = open_netns(netns)?;
        let step = || format!("creating TAP {name} in {}", netns.display());
        let (fd, actual) = in_namespace(&target, netns, step, || open_tap(name, TAP_FLAGS))?
            .map_err(|source| TapError::Create {
                name: name.to_owned(),
                netns: Some(netns.to_owned()),
                source,
            })?;
        Ok(Tap {
            fd,
            name: actual,
            netns: target,
            netns_path: Some(netns.to_owned()),
            offloads: false,
        })
    }

    /// Attaches to the persistent TAP `name` in the network namespace `netns` (the calling
    /// thread's own if `None`), or creates it there if there is none, and leaves it
    /// persistent; returns the TAP and whether it existed. With `offloads`, frames carry a
    /// virtio-net header and the interface offloads checksums and TCP segmentation to this
    /// end (see "Offloads" in the module documentation); without, they are plain and the
    /// interface's offloads are cleared. A TAP that existed is as it was
    /// left: MAC, MTU, up/down, and the addresses and routes configured on it; one just
    /// created starts down, with a random MAC and MTU 1500, as from [`Tap::create`]. See
    /// "Persistent TAPs" in the module documentation.
    ///
    /// # Errors
    ///
    /// [`TapError::InvalidName`] (also for a `%d` pattern); [`TapError::OpenNetns`],
    /// [`TapError::EnterNetns`], [`TapError::ReturnNetns`] as for
    /// [`create_in`](Tap::create_in); [`TapError::NotAttachable`] when `name` exists but is
    /// not a TAP this process may attach to; [`TapError::Create`] for any other refusal;
    /// [`TapError::Persist`] if the flag cannot be read or set (a TAP just created is then
    /// removed again).
    pub fn open_or_create_persistent(
        netns: Option<&Path>,
        name: &str,
        offloads: bool,
    ) -> Result<(Tap, bool), TapError> {
        validate_ifname(name)?;
        if name.contains('%') {
            return Err(TapError::InvalidName {
                name: name.to_owned(),
                reason: "a persistent TAP needs a fixed name, not a %d pattern",
            });
        }
        let target = match netns {
            Some(path) => open_netns(path)?,
            None => current_netns()?,
        };
        // Only named in errors of entering a namespace, which `None` never enters.
        let label = netns.map_or_else(|| PathBuf::from("<current namespace>"), Path::to_owned);
        let step = || format!("attaching persistent TAP {name}{}", in_netns(netns));
        let attached = in_namespace(&target, &label, step, || {
            // Whether the name is taken tells a refused attach from a refused creation;
            // asked only after a refusal, inside the namespace.
            let flags = if offloads {
                TAP_FLAGS | VNET_HDR_FLAG
            } else {
                TAP_FLAGS
            };
            open_tap(name, flags).map_err(|e| (e, nix::net::if_::if_nametoindex(name).is_ok()))
        })?;
        let (fd, actual) =
            attached.map_err(|(source, exists)| attach_error(name, netns, source, exists))?;
        let tap = Tap {
            fd,
            name: actual,
            netns: target,
            netns_path: netns.map(Path::to_owned),
            offloads,
        };
        // A TAP that is not persistent disappears with its last descriptor, so one this
        // descriptor could attach to and that is not persistent did not exist before.
        let existed = tap.is_persistent()?;
        // A TAP just created and refused its offloads is not persistent yet: it goes away.
        tap.set_offloads(if offloads { TAP_OFFLOADS } else { 0 })?;
        if !existed {
            tap.set_persistent(true)?;
        }
        Ok((tap, existed))
    }

    /// Announces `features` (`TUN_F_*` bits) as the interface's offloads.
    fn set_offloads(&self, features: libc::c_uint) -> Result<(), TapError> {
        self.ioctl_int(libc::TUNSETOFFLOAD, libc::c_ulong::from(features))
            .map_err(|source| TapError::Offloads {
                name: self.name.clone(),
                source,
            })
    }

    /// A TUN ioctl that takes its argument as an integer (`TUNSETOFFLOAD`, `TUNSETPERSIST`).
    fn ioctl_int(&self, request: libc::Ioctl, arg: libc::c_ulong) -> io::Result<()> {
        // SAFETY: these requests take their argument as an integer, not a pointer: nothing
        // is read or written through it. The descriptor is open.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), request, arg) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether frames carry a virtio-net header (the TAP was opened with offloads).
    pub fn has_offloads(&self) -> bool {
        self.offloads
    }

    /// Makes the interface persistent (it outlives this [`Tap`] and the process) or not
    /// (it disappears when the last descriptor on it closes).
    ///
    /// # Errors
    ///
    /// [`TapError::Persist`] (e.g. `EPERM` without `CAP_NET_ADMIN`).
    pub fn set_persistent(&self, on: bool) -> Result<(), TapError> {
        self.ioctl_int(libc::TUNSETPERSIST, libc::c_ulong::from(on))
            .map_err(|source| TapError::Persist {
                name: self.name.clone(),
                what: if on {
                    "set the persistent flag"
                } else {
                    "clear the persistent flag"
                },
                source,
            })
    }

    /// Whether the interface is persistent, asked of the TAP driver (`TUNGETIFF`).
    ///
    /// # Errors
    ///
    /// [`TapError::Persist`] if the driver cannot tell (not expected).
    pub fn is_persistent(&self) -> Result<bool, TapError> {
        let mut req = new_ifreq(&self.name);
        // SAFETY: TUNGETIFF writes the name and flags of one `struct ifreq`; `req` is a
        // valid, exclusively borrowed `ifreq` that outlives the call, and the descriptor
        // is open.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNGETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::Persist {
                name: self.name.clone(),
                what: "read the flags",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: the successful TUNGETIFF above wrote `ifru_flags`, a `c_short`, so that
        // is the union member to read.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        Ok(libc::c_int::from(flags) & libc::IFF_PERSIST != 0)
    }

    /// Removes the interface: clears its persistent flag and closes the descriptor, so the
    /// kernel deletes it (with its addresses) at once, unless some other process holds a
    /// descriptor on it too.
    ///
    /// # Errors
    ///
    /// [`TapError::Persist`]; the descriptor is closed all the same, and the interface
    /// stays.
    pub fn remove(self) -> Result<(), TapError> {
        self.set_persistent(false)
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path of the namespace the interface lives in, as given to
    /// [`create_in`](Tap::create_in) or [`move_to`](Tap::move_to); `None` for a TAP still in
    /// the namespace it was created in by [`create`](Tap::create).
    pub fn netns(&self) -> Option<&Path> {
        self.netns_path.as_deref()
    }

    /// Moves the interface into the network namespace `netns` (e.g. `/run/netns/guest1`).
    /// The kernel takes it down on the way; its MAC and MTU stay, and the descriptor keeps
    /// carrying its frames.
    ///
    /// # Errors
    ///
    /// [`TapError::OpenNetns`]; [`TapError::Move`] (e.g. `EEXIST` when `netns` already has
    /// an interface of this name); and, if the interface's current namespace is not the
    /// calling thread's, [`TapError::EnterNetns`] or [`TapError::ReturnNetns`]. On error the
    /// TAP stays where it was.
    pub fn move_to(&mut self, netns: &Path) -> Result<(), TapError> {
        let target = open_netns(netns)?;
        let change = LinkChange {
            name: &self.name,
            netns_fd: Some(target.as_raw_fd()),
            ..LinkChange::default()
        };
        self.route_socket()?
            .set_link(&change)
            .map_err(|source| TapError::Move {
                name: self.name.clone(),
                netns: netns.to_owned(),
                source,
            })?;
        self.netns = target;
        self.netns_path = Some(netns.to_owned());
        Ok(())
    }

    /// Applies `settings` (MAC, MTU, up/down) in one netlink request, from inside the
    /// namespace the interface lives in. Nothing to set is not an error.
    ///
    /// # Errors
    ///
    /// [`TapError::Configure`] with the kernel's reason (e.g. `EINVAL` for an MTU out of
    /// range or a group MAC), or a namespace error as for [`move_to`](Tap::move_to).
    pub fn configure(&self, settings: &LinkSettings) -> Result<(), TapError> {
        if *settings == LinkSettings::default() {
            return Ok(());
        }
        let change = LinkChange {
            name: &self.name,
            mac: settings.mac.map(|m| m.0),
            mtu: settings.mtu,
            up: settings.up,
            netns_fd: None,
        };
        self.route_socket()?
            .set_link(&change)
            .map_err(|source| TapError::Configure {
                name: self.name.clone(),
                what: settings.describe(),
                source,
            })
    }

    /// Sets the interface's MAC (see [`configure`](Tap::configure)).
    ///
    /// # Errors
    ///
    /// As [`configure`](Tap::configure).
    pub fn set_mac(&self, mac: Mac) -> Result<(), TapError> {
        self.configure(&LinkSettings {
            mac: Some(mac),
            ..LinkSettings::default()
        })
    }

    /// Sets the interface's MTU (see [`configure`](Tap::configure)).
    ///
    /// # Errors
    ///
    /// As [`configure`](Tap::configure).
    pub fn set_mtu(&self, mtu: u32) -> Result<(), TapError> {
        self.configure(&LinkSettings {
            mtu: Some(mtu),
            ..LinkSettings::default()
        })
    }

    /// Brings the interface up or down (see [`configure`](Tap::configure)). While it is
    /// down, writes fail with `EIO` and nothing is read.
    ///
    /// # Errors
    ///
    /// As [`configure`](Tap::configure).
    pub fn set_up(&self, up: bool) -> Result<(), TapError> {
        self.configure(&LinkSettings {
            up: Some(up),
            ..LinkSettings::default()
        })
    }

    /// The interface's current MAC, asked of the TAP driver through the descriptor (works
    /// wherever the interface lives).
    ///
    /// # Errors
    ///
    /// [`TapError::Query`].
    pub fn mac(&self) -> Result<Mac, TapError> {
        let mut req = new_ifreq(&self.name);
        // SAFETY: SIOCGIFHWADDR on a TAP descriptor fills the `ifr_hwaddr` member of one
        // `struct ifreq`; `req` is a valid, exclusively borrowed `ifreq` that outlives the
        // call, and the descriptor is open.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
        if rc < 0 {
            return Err(TapError::Query {
                name: self.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: the successful SIOCGIFHWADDR above wrote `ifru_hwaddr`, a `sockaddr`
        // (plain integers), so that is the union member to read.
        let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
        let mut mac = [0u8; 6];
        for (dst, &src) in mac.iter_mut().zip(data.iter()) {
            *dst = src as u8;
        }
        Ok(Mac(mac))
    }

    /// Reads one frame into `buf` and returns its length.
    ///
    /// Use a buffer of the interface's MTU plus 18 bytes (Ethernet header and a VLAN tag),
    /// or [`MAX_FRAME`] to never truncate.
    ///
    /// # Errors
    ///
    /// [`TapError::WouldBlock`] when no frame is waiting; [`TapError::Truncated`] when the
    /// frame was longer than `buf` (it is consumed: read the next one); [`TapError::Read`]
    /// for anything else. Interrupted reads are retried.
    pub fn read_frame(&self, buf: &mut [u8]) -> Result<usize, TapError> {
        let capacity = buf.len();
        let mut spare = [0u8; 1];
        loop {
            // A buffer of MAX_FRAME holds any frame: the spare byte (which tells a truncated
            // frame from one that fills the buffer) is only needed below that.
            let read = if capacity >= MAX_FRAME {
                nix::unistd::read(self.fd.as_raw_fd(), buf)
            } else {
                readv(
                    &self.fd,
                    &mut [IoSliceMut::new(buf), IoSliceMut::new(&mut spare)],
                )
            };
            return match read {
                // The spare byte was written: the frame did not fit.
                Ok(n) if n > capacity => Err(TapError::Truncated { capacity }),
                Ok(n) => Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => Err(TapError::WouldBlock),
                Err(e) => Err(TapError::Read(e.into())),
            };
        }
    }

    /// Writes one frame (destination MAC first, no FCS): the interface's stack receives it.
    ///
    /// # Errors
    ///
    /// [`TapError::FrameTooShort`] or [`TapError::FrameTooLong`] without a system call;
    /// [`TapError::WouldBlock`] when the TAP cannot take the frame now (`EAGAIN`, or
    /// `ENOBUFS`: keep the frame and retry when the descriptor is writable);
    /// [`TapError::Write`] for anything else (e.g. `EIO` while the interface is down: the
    /// frame is lost). Interrupted writes are retried.
    pub fn write_frame(&self, frame: &[u8]) -> Result<(), TapError> {
        self.write_with_header(&[], frame)
    }

    /// Writes one frame behind its virtio-net header (a TAP with offloads), with one
    /// `writev`: the interface's stack receives it, segmenting or checksumming as the
    /// header says.
    ///
    /// # Errors
    ///
    /// As [`Tap::write_frame`].
    pub fn write_with_header(&self, header: &[u8], frame: &[u8]) -> Result<(), TapError> {
        if frame.len() < MIN_FRAME {
            return Err(TapError::FrameTooShort { len: frame.len() });
        }
        if frame.len() > MAX_FRAME {
            return Err(TapError::FrameTooLong { len: frame.len() });
        }
        let len = header.len() + frame.len();
        loop {
            let parts = [io::IoSlice::new(header), io::IoSlice::new(frame)];
            return match nix::sys::uio::writev(&self.fd, &parts) {
                Ok(n) if n == len => Ok(()),
                Ok(n) => Err(TapError::ShortWrite { written: n, len }),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => {
                    Err(TapError::WouldBlock)
                }
                Err(e) => Err(TapError::Write(e.into())),
            };
        }
    }

    /// A route socket in the namespace the interface lives in.
    fn route_socket(&self) -> Result<RouteSocket, TapError> {
        let path = self
            .netns_path
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("<namespace of TAP {}>", self.name)));
        let step = || format!("opening a netlink socket for TAP {}", self.name);
        in_namespace(&self.netns, &path, step, RouteSocket::open)?.map_err(|source| {
            TapError::Configure {
                name: self.name.clone(),
                what: "open a netlink socket".to_owned(),
                source,
            }
        })
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Checks that `name` is one the kernel would take as an interface name unchanged: 1 to 15
/// bytes, not `.` or `..`, no `/`, `:`, NUL or whitespace.
///
/// # Errors
///
/// [`TapError::InvalidName`] saying which rule is broken.
pub fn validate_ifname(name: &str) -> Result<(), TapError> {
    match ifname_problem(name) {
        None => Ok(()),
        Some(reason) => Err(TapError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
    }
}

/// What is wrong with `name` as an interface name, if anything (the rules of
/// [`validate_ifname`]), for the ports that name an interface in their own error type.
pub(crate) fn ifname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Some("must be 1 to 15 bytes");
    }
    if name == "." || name == ".." {
        return Some("must not be . or ..");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return Some("contains '/', ':', NUL or whitespace");
    }
    None
}

/// Opens a network namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`, ...).
pub(crate) fn open_netns(path: &Path) -> Result<File, NetnsError> {
    File::open(path).map_err(|source| NetnsError::Open {
        path: path.to_owned(),
        source,
    })
}

/// The calling thread's own network namespace.
pub(crate) fn current_netns() -> Result<File, NetnsError> {
    open_netns(Path::new("/proc/thread-self/ns/net"))
}

/// Runs `f` with the calling thread inside the namespace `target` (named `path` in errors)
/// and brings the thread back to its own. Skips both `setns` calls when the thread already
/// is in `target`, so that needs no `CAP_SYS_ADMIN`.
pub(crate) fn in_namespace<T>(
    target: &File,
    path: &Path,
    step: impl Fn() -> String,
    f: impl FnOnce() -> T,
) -> Result<T, NetnsError> {
    let home = current_netns()?;
    if same_file(&home, target) {
        return Ok(f());
    }
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let result = f();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Return {
        step: step(),
        source: e.into(),
    })?;
    Ok(result)
}

/// The error for a refused `TUNSETIFF` of a persistent TAP: [`TapError::NotAttachable`]
/// when the name is taken (`exists`) and the kernel's answer says why it cannot be
/// attached, else [`TapError::Create`].
fn attach_error(name: &str, netns: Option<&Path>, source: io::Error, exists: bool) -> TapError {
    let reason = match source.raw_os_error() {
        Some(libc::EINVAL) => {
            "not a TAP (another kind of interface, a TUN device or a multi-queue TAP)"
        }
        Some(libc::EBUSY) => "the TAP is held by another descriptor (another daemon attached?)",
        Some(libc::EPERM) => "the TAP belongs to another user or group",
        _ => "",
    };
    if exists && !reason.is_empty() {
        TapError::NotAttachable {
            name: name.to_owned(),
            netns: netns.map(Path::to_owned),
            reason,
            source,
        }
    } else {
        TapError::Create {
            name: name.to_owned(),
            netns: netns.map(Path::to_owned),
            source,
        }
    }
}

/// Whether two open files are the same inode (two handles on one namespace).
fn same_file(a: &File, b: &File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// An `ifreq` carrying `name` (which [`validate_ifname`] has accepted).
fn new_ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is a plain C struct (a char array and a union of integers, arrays,
    // sockaddrs and a raw pointer), for which all-zero bytes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // At most IFNAMSIZ - 1 bytes are copied, so the zeroed tail keeps it NUL-terminated.
    for (dst, &src) in req
        .ifr_name
        .iter_mut()
        .take(libc::IFNAMSIZ - 1)
        .zip(name.as_bytes())
    {
        *dst = src as libc::c_char;
    }
    req
}

/// Opens `/dev/net/tun` and attaches a TAP named `name` in the current namespace; returns
/// the descriptor and the name the kernel gave (different from `name` for `%d` patterns).
fn open_tap(name: &str, flags: c_short) -> io::Result<(OwnedFd, String)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = new_ifreq(name);
    req.ifr_ifru.ifru_flags = flags;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is a valid, exclusively
    // borrowed `ifreq` that outlives the call, and the descriptor is open.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let actual: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let actual = String::from_utf8(actual).unwrap_or_else(|_| name.to_owned());
    Ok((OwnedFd::from(file), actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_validated() {
        for ok in ["tap0", "a", "lemu-123456-ab", "x_y.z", "tap%d"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "0123456789abcdef",
            "a/b",
            "a b",
            "a:b",
            ".",
            "..",
            "a\0",
        ] {
            let err = validate_ifname(bad).unwrap_err();
            assert!(matches!(err, TapError::InvalidName { .. }), "{bad:?}");
        }
    }

    #[test]
    fn missing_namespace_is_reported_with_its_path() {
        let err = Tap::create_in(Path::new("/nonexistent/netns/x"), "tap0").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("open network namespace /nonexistent/netns/x"),
            "{msg}"
        );
    }

    #[test]
    fn bad_names_fail_before_any_system_call() {
        let err = Tap::create("much-too-long-name").unwrap_err();
        assert!(matches!(err, TapError::InvalidName { .. }), "{err}");
        let err = Tap::create_in(Path::new("/nonexistent"), "a/b").unwrap_err();
        assert!(matches!(err, TapError::InvalidName { .. }), "{err}");
    }

    #[test]
    fn settings_are_described_for_errors() {
        let s = LinkSettings {
            mac: Some(Mac([2, 0, 0, 0, 0, 1])),
            mtu: Some(9000),
            up: Some(false),
        };
        assert_eq!(s.describe(), "mac 02:00:00:00:00:01, mtu 9000, down");
        assert_eq!(LinkSettings::default().describe(), "");
    }
}
