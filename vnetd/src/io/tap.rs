//! TAP devices: a guest's Ethernet port as a file descriptor.
//!
//! A [`Tap`] is opened on `/dev/net/tun` with `IFF_TAP | IFF_NO_PI`: every read returns one
//! whole Ethernet frame (destination MAC first, no FCS) and every write injects one, with no
//! packet-information header and no virtio-net header, so the kernel segments GSO packets
//! and fills in checksums before handing frames over. The descriptor is non-blocking and
//! close-on-exec. The interface is not persistent: it disappears when the [`Tap`] is
//! dropped (or the process exits).
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

/// `IFF_TAP | IFF_NO_PI` as the `short` that `struct ifreq` carries.
// The flags are 0x1002, which fits a c_short.
#[allow(clippy::cast_possible_truncation)]
const TAP_FLAGS: c_short = (libc::IFF_TAP | libc::IFF_NO_PI) as c_short;

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
        let netns = open_netns(Path::new("/proc/thread-self/ns/net"))?;
        let (fd, name) = open_tap(name).map_err(|source| TapError::Create {
            name: name.to_owned(),
            netns: None,
            source,
        })?;
        Ok(Tap {
            fd,
            name,
            netns,
            netns_path: None,
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
        let (fd, actual) =
            in_namespace(&target, netns, step, || open_tap(name))?.map_err(|source| {
                TapError::Create {
                    name: name.to_owned(),
                    netns: Some(netns.to_owned()),
                    source,
                }
            })?;
        Ok(Tap {
            fd,
            name: actual,
            netns: target,
            netns_path: Some(netns.to_owned()),
        })
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
        if frame.len() < MIN_FRAME {
            return Err(TapError::FrameTooShort { len: frame.len() });
        }
        if frame.len() > MAX_FRAME {
            return Err(TapError::FrameTooLong { len: frame.len() });
        }
        loop {
            return match nix::unistd::write(&self.fd, frame) {
                Ok(n) if n == frame.len() => Ok(()),
                Ok(n) => Err(TapError::ShortWrite {
                    written: n,
                    len: frame.len(),
                }),
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
    let invalid = |reason| TapError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(invalid("must be 1 to 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(invalid("must not be . or .."));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return Err(invalid("contains '/', ':', NUL or whitespace"));
    }
    Ok(())
}

fn open_netns(path: &Path) -> Result<File, TapError> {
    File::open(path).map_err(|source| TapError::OpenNetns {
        path: path.to_owned(),
        source,
    })
}

/// Runs `f` with the calling thread inside the namespace `target` (named `path` in errors)
/// and brings the thread back to its own. Skips both `setns` calls when the thread already
/// is in `target`, so that needs no `CAP_SYS_ADMIN`.
fn in_namespace<T>(
    target: &File,
    path: &Path,
    step: impl Fn() -> String,
    f: impl FnOnce() -> T,
) -> Result<T, TapError> {
    let home = open_netns(Path::new("/proc/thread-self/ns/net"))?;
    if same_file(&home, target) {
        return Ok(f());
    }
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| TapError::EnterNetns {
        path: path.to_owned(),
        source: e.into(),
    })?;
    let result = f();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| TapError::ReturnNetns {
        step: step(),
        source: e.into(),
    })?;
    Ok(result)
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
fn open_tap(name: &str) -> io::Result<(OwnedFd, String)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = new_ifreq(name);
    req.ifr_ifru.ifru_flags = TAP_FLAGS;
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
