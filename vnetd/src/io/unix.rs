//! Unix datagram ports: a guest's Ethernet port as a `SOCK_DGRAM` unix socket.
//!
//! This is the other end of QEMU's
//! `-netdev dgram,id=n,local.type=unix,local.path=GUEST,remote.type=unix,remote.path=DAEMON`
//! (and of anything else that speaks it): one whole Ethernet frame per datagram, destination
//! MAC first, no FCS, no length prefix and no virtio-net header. A [`UnixPort`] binds a path
//! the daemon owns and sends to the guest's socket, so guests that are processes (a VMM, a
//! test, a user-space stack) need neither a TAP nor privileges, only write access to the
//! daemon's socket file. Datagrams keep frame boundaries for free, which a stream socket
//! would need framing for, and a full queue is the sender's `EAGAIN` instead of a half-sent
//! frame.
//!
//! # Whom the port talks to
//!
//! The peer (the guest's socket) is either given at [`UnixPort::bind`] or learnt from the
//! source address of the first datagram that arrives from a bound socket. **A peer given at
//! bind wins**: it never changes, and datagrams from any other socket are dropped (counted
//! as [`UnixStats::foreign`]), so no other local process can put frames onto the guest's
//! LAN through this port. A peer given as a path also matches the same socket reached by
//! another name (a relative path, or one through a symlinked directory such as `/var/run`):
//! a datagram whose source names a different path is accepted if both paths are the same
//! socket file (relative source paths are taken from the daemon's working directory), and
//! that name is remembered. A learnt peer is kept likewise until
//! [`UnixPort::forget_peer`] (e.g. when the guest's VMM restarted with another socket):
//! datagrams from other sockets are dropped meanwhile. Datagrams from unbound sockets
//! cannot be answered and are never accepted; abstract-namespace sources are learnt like
//! paths. Until there is a peer, [`UnixPort::write_frame`] fails with
//! [`UnixError::NoPeer`].
//!
//! # The socket file
//!
//! [`UnixPort::bind`] refuses to replace anything at its path that is not a socket
//! ([`UnixError::NotASocket`]: a typo must not delete a file) or a socket something is still
//! bound to ([`UnixError::InUse`]: another daemon's); a socket file nothing is bound to
//! (left by a daemon that was killed) is removed and bound afresh. The file gets the
//! process's umask; change its mode so the guest's VMM may write to it. Dropping the port
//! removes the file, unless it is no longer the one the port bound (another port has since
//! replaced it).
//!
//! # Receiving and sending
//!
//! [`UnixPort::recv_batch`] takes every waiting datagram, up to a [`FrameBatch`]'s slots,
//! with one `recvmmsg(2)` (the code is shared with [`crate::io::udp`]), and keeps only
//! frames: datagrams longer than their slot, shorter than an Ethernet header or from
//! another socket than the peer are dropped and counted ([`UnixStats`]). Note that Linux
//! queues at most `net.unix.max_dgram_qlen` + 1 datagrams (10 + 1 by default, per network
//! namespace) on a unix datagram socket: the sender gets `EAGAIN` past that, so batches are
//! short, and a guest's VMM must wait for writability, as QEMU does.
//! [`UnixPort::write_frame`] sends one frame (`sendto`, `MSG_DONTWAIT`):
//! [`UnixError::WouldBlock`] when the guest's queue is full.
//!
//! Unix socket paths are filesystem objects, not network ones: a port works the same in
//! every network namespace (abstract names are the exception: they belong to the
//! namespace of the socket, and are only learnt here, never bound).

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{self as sock, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use thiserror::Error;

use super::tap::{MAX_FRAME, MIN_FRAME};
use super::udp::{recv_mmsg, MAX_BATCH};

/// Longest socket path the kernel takes: `sun_path` is 108 bytes, one of them the NUL.
pub const MAX_PATH: usize = 107;

/// What can go wrong with a unix datagram port; the messages name the path or the peer.
#[derive(Debug, Error)]
pub enum UnixError {
    /// A path the kernel cannot take as a socket address.
    #[error("unix socket path {}: {reason}", .path.display())]
    BadPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Something that is not a socket is at the path to bind: it is left alone.
    #[error("refusing to replace {}: it exists and is not a socket", .path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A socket some process is still bound to is at the path to bind.
    #[error("{} is in use: another socket is bound there", .path.display())]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// What is at the path could not be looked at (e.g. `EACCES`).
    #[error("inspect {}: {source}", .path.display())]
    Inspect {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A stale socket file could not be removed.
    #[error("remove stale socket file {}: {source}", .path.display())]
    RemoveStale {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The socket could not be created.
    #[error("create a unix datagram socket: {0}")]
    Socket(io::Error),
    /// The socket could not be bound (e.g. `EADDRINUSE`: another process bound the path
    /// in the meantime; `ENOENT`: its directory does not exist).
    #[error("bind a unix datagram socket to {}: {source}", .path.display())]
    Bind {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A [`FrameBatch`] was asked for with a shape it cannot have.
    #[error("frame batch of {slots} slots of {slot_size} bytes: {reason}")]
    BadBatch {
        /// Slots asked for.
        slots: usize,
        /// Slot size asked for.
        slot_size: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// No peer was given at bind and none has sent a datagram yet: there is nobody to send
    /// frames to.
    #[error("unix port {} has no peer yet (none given, none heard from)", .path.display())]
    NoPeer {
        /// The port's path.
        path: PathBuf,
    },
    /// The peer's queue is full (or the send buffer is): poll for writable and retry.
    #[error("unix port would block")]
    WouldBlock,
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
    /// The kernel refused to send to the peer (see [`UnixError::is_peer_gone`]); the frame
    /// is lost.
    #[error("send a frame to {peer}: {source}")]
    Send {
        /// The peer.
        peer: UnixPeer,
        /// Why.
        source: io::Error,
    },
    /// The kernel took only part of a frame (not expected of a datagram socket).
    #[error("short send to {peer}: {written} of {len} bytes")]
    ShortWrite {
        /// The peer.
        peer: UnixPeer,
        /// Bytes taken.
        written: usize,
        /// Bytes offered.
        len: usize,
    },
    /// Receiving failed.
    #[error("receive on unix port {}: {source}", .path.display())]
    Recv {
        /// The port's path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl UnixError {
    /// Whether this is a send that failed because no socket is at the peer's address any
    /// more (`ECONNREFUSED`: the file is there but nothing is bound to it; `ENOENT`: no
    /// file): the guest is gone or not started yet.
    pub fn is_peer_gone(&self) -> bool {
        matches!(self, UnixError::Send { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT)))
    }
}

/// The address of a port's peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnixPeer {
    /// A socket bound to a path (as the peer named it, or as given at bind).
    Path(PathBuf),
    /// A socket bound to a name in the abstract namespace (the bytes after the leading
    /// NUL).
    Abstract(Vec<u8>),
}

impl fmt::Display for UnixPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixPeer::Path(path) => write!(f, "{}", path.display()),
            UnixPeer::Abstract(name) => write!(f, "@{}", name.escape_ascii()),
        }
    }
}

/// A port's counters (datagrams since bind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnixStats {
    /// Frames received from the peer and handed out.
    pub received: u64,
    /// Datagrams from other sockets than the peer (or from unbound ones), dropped.
    pub foreign: u64,
    /// Datagrams longer than their slot, dropped.
    pub truncated: u64,
    /// Datagrams shorter than an Ethernet header, dropped.
    pub runts: u64,
}

/// Reusable buffers for [`UnixPort::recv_batch`]: `slots` datagrams of up to `slot_size`
/// bytes each, in one allocation made once; after a receive it holds the frames that were
/// kept.
pub struct FrameBatch {
    buf: Box<[u8]>,
    slot_size: usize,
    names: Box<[libc::sockaddr_un]>,
    /// Slot and length of each frame kept by the last receive, in arrival order.
    frames: Box<[(usize, usize)]>,
    len: usize,
}

impl fmt::Debug for FrameBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBatch")
            .field("slots", &self.slots())
            .field("slot_size", &self.slot_size)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

const EMPTY_UNIX_NAME: libc::sockaddr_un = libc::sockaddr_un {
    sun_family: 0,
    sun_path: [0; 108],
};

impl FrameBatch {
    /// Buffers for `slots` (1..=[`MAX_BATCH`]) datagrams of up to `slot_size`
    /// ([`MIN_FRAME`]..=[`MAX_FRAME`]) bytes: the guest's MTU plus 18 (Ethernet header
    /// and a VLAN tag), or [`MAX_FRAME`] to never drop a frame as too long.
    ///
    /// # Errors
    ///
    /// [`UnixError::BadBatch`] for a shape out of those ranges.
    pub fn new(slots: usize, slot_size: usize) -> Result<Self, UnixError> {
        let bad = |reason| UnixError::BadBatch {
            slots,
            slot_size,
            reason,
        };
        if !(1..=MAX_BATCH).contains(&slots) {
            return Err(bad("slots must be within 1..=64"));
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&slot_size) {
            return Err(bad("slot size must be within 14..=65553"));
        }
        Ok(Self {
            buf: vec![0; slots * slot_size].into_boxed_slice(),
            slot_size,
            names: vec![EMPTY_UNIX_NAME; slots].into_boxed_slice(),
            frames: vec![(0, 0); slots].into_boxed_slice(),
            len: 0,
        })
    }

    /// How many datagrams one receive can take.
    pub fn slots(&self) -> usize {
        self.names.len()
    }

    /// The size of each slot.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// How many frames the last receive kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last receive kept none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frame `i` of the last receive.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let &(slot, len) = self.frames.get(i)?;
        let start = slot * self.slot_size;
        self.buf.get(start..start + len)
    }

    /// The frames of the last receive, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len).filter_map(move |i| self.get(i))
    }

    /// Forgets the last receive.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// The peer, as sent to and as recognised in source addresses.
struct Peer {
    name: UnixPeer,
    addr: UnixAddr,
    /// Its address as the kernel reports sources: the path's bytes, or a NUL and the
    /// abstract name.
    key: Vec<u8>,
    /// Another name the same socket was seen sending under (see the module documentation).
    alias: Option<Vec<u8>>,
}

impl Peer {
    fn from_path(path: &Path) -> Result<Peer, UnixError> {
        let addr = UnixAddr::new(path).map_err(|_| UnixError::BadPath {
            path: path.to_owned(),
            reason: "not a valid socket address",
        })?;
        Ok(Peer {
            name: UnixPeer::Path(path.to_owned()),
            addr,
            key: path.as_os_str().as_bytes().to_vec(),
            alias: None,
        })
    }

    /// The peer a source address names; `None` for an unbound sender.
    fn from_key(key: &[u8]) -> Option<Peer> {
        match key.split_first() {
            None => None,
            Some((0, name)) => Some(Peer {
                name: UnixPeer::Abstract(name.to_vec()),
                addr: UnixAddr::new_abstract(name).ok()?,
                key: key.to_vec(),
                alias: None,
            }),
            Some(_) => {
                let path = Path::new(OsStr::from_bytes(key));
                Peer::from_path(path).ok()
            }
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        self.key == key || self.alias.as_deref() == Some(key)
    }

    /// Whether `key`, a path, is another name of this peer's socket file (then remembered).
    fn same_socket(&mut self, key: &[u8]) -> bool {
        let (UnixPeer::Path(mine), Some(&first)) = (&self.name, key.first()) else {
            return false;
        };
        if first == 0 {
            return false;
        }
        let theirs = Path::new(OsStr::from_bytes(key));
        let same = match (fs::metadata(mine), fs::metadata(theirs)) {
            (Ok(a), Ok(b)) => a.file_type().is_socket() && a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same {
            self.alias = Some(key.to_vec());
        }
        same
    }
}

/// A source address's bytes as compared with [`Peer::key`]: a path without its trailing
/// NUL, or an abstract name with its leading one; empty for an unbound sender.
fn source_key(name: &libc::sockaddr_un, name_len: libc::socklen_t, key: &mut Vec<u8>) {
    key.clear();
    let filled = (name_len as usize)
        .saturating_sub(offset_of!(libc::sockaddr_un, sun_path))
        .min(name.sun_path.len());
    let bytes = name.sun_path.iter().take(filled).map(|&c| c as u8);
    if name.sun_path.first() == Some(&0) {
        key.extend(bytes);
    } else {
        key.extend(bytes.take_while(|&b| b != 0));
    }
}

/// A bound, non-blocking unix datagram socket carrying one frame per datagram; see the
/// module documentation.
///
/// `Send` and `Sync`; [`recv_batch`](UnixPort::recv_batch) takes `&mut self` because it
/// may learn the peer.
pub struct UnixPort {
    socket: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file bound, to remove only that one.
    file: (u64, u64),
    peer: Option<Peer>,
    peer_given: bool,
    stats: UnixStats,
    /// Scratch for source addresses, kept to receive without allocating.
    key: Vec<u8>,
}

impl fmt::Debug for UnixPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixPort")
            .field("fd", &self.socket.as_raw_fd())
            .field("path", &self.path)
            .field("peer", &self.peer())
            .field("peer_given", &self.peer_given)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl UnixPort {
    /// Binds a non-blocking, close-on-exec unix datagram socket at `path`, replacing a
    /// stale socket file there, and talks to `peer` if given, else to the first socket it
    /// hears from (see the module documentation). The peer need not exist yet.
    ///
    /// # Errors
    ///
    /// [`UnixError::BadPath`] for `path` or `peer` (empty, longer than [`MAX_PATH`], or
    /// with a NUL byte); [`UnixError::NotASocket`], [`UnixError::InUse`],
    /// [`UnixError::Inspect`], [`UnixError::RemoveStale`] for what is at `path`;
    /// [`UnixError::Socket`], [`UnixError::Bind`].
    pub fn bind(path: &Path, peer: Option<&Path>) -> Result<UnixPort, UnixError> {
        check_path(path)?;
        let peer = match peer {
            Some(p) => {
                check_path(p)?;
                Some(Peer::from_path(p)?)
            }
            None => None,
        };
        let addr = UnixAddr::new(path).map_err(|_| UnixError::BadPath {
            path: path.to_owned(),
            reason: "not a valid socket address",
        })?;
        clear_stale(path, &addr)?;
        let socket = new_socket(SockFlag::SOCK_NONBLOCK)?;
        sock::bind(socket.as_raw_fd(), &addr).map_err(|e| UnixError::Bind {
            path: path.to_owned(),
            source: e.into(),
        })?;
        let meta = fs::symlink_metadata(path).map_err(|source| UnixError::Inspect {
            path: path.to_owned(),
            source,
        })?;
        Ok(UnixPort {
            socket,
            path: path.to_owned(),
            file: (meta.dev(), meta.ino()),
            peer_given: peer.is_some(),
            peer,
            stats: UnixStats::default(),
            key: Vec::with_capacity(size_of::<libc::sockaddr_un>()),
        })
    }

    /// The path the port is bound to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The peer frames are sent to: the one given at bind, or the one learnt; `None`
    /// before either.
    pub fn peer(&self) -> Option<&UnixPeer> {
        self.peer.as_ref().map(|p| &p.name)
    }

    /// Whether the peer was given at bind (it then never changes).
    pub fn peer_given(&self) -> bool {
        self.peer_given
    }

    /// Forgets a learnt peer, so that the next socket heard from becomes the peer; returns
    /// whether there was one to forget. A peer given at bind is kept (returns `false`).
    pub fn forget_peer(&mut self) -> bool {
        if self.peer_given {
            return false;
        }
        self.peer.take().is_some()
    }

    /// The port's counters.
    pub fn stats(&self) -> UnixStats {
        self.stats
    }

    /// Receives up to `batch.slots()` waiting datagrams with one `recvmmsg(2)` and keeps
    /// the frames among them (see the module documentation); returns how many it kept (also
    /// [`FrameBatch::len`]). 0 when nothing was waiting, or when everything was dropped.
    ///
    /// # Errors
    ///
    /// [`UnixError::Recv`] (the batch is then empty). Interrupted calls are retried.
    pub fn recv_batch(&mut self, batch: &mut FrameBatch) -> Result<usize, UnixError> {
        batch.len = 0;
        let mut kept = 0;
        let (peer, peer_given, stats, key) = (
            &mut self.peer,
            self.peer_given,
            &mut self.stats,
            &mut self.key,
        );
        let frames = &mut batch.frames;
        recv_mmsg(
            self.socket.as_fd(),
            &mut batch.buf,
            batch.slot_size,
            &mut batch.names,
            None,
            |slot, what, name| {
                if what.truncated {
                    stats.truncated += 1;
                    return;
                }
                if what.len < MIN_FRAME {
                    stats.runts += 1;
                    return;
                }
                source_key(name, what.name_len, key);
                let accepted = match peer {
                    Some(p) => p.matches(key) || (peer_given && p.same_socket(key)),
                    None => match Peer::from_key(key) {
                        Some(learnt) => {
                            *peer = Some(learnt);
                            true
                        }
                        None => false,
                    },
                };
                if !accepted {
                    stats.foreign += 1;
                    return;
                }
                if let Some(f) = frames.get_mut(kept) {
                    *f = (slot, what.len);
                    kept += 1;
                    stats.received += 1;
                }
            },
        )
        .map_err(|source| UnixError::Recv {
            path: self.path.clone(),
            source,
        })?;
        batch.len = kept;
        Ok(kept)
    }

    /// Sends one frame (destination MAC first, no FCS) to the peer as one datagram.
    ///
    /// # Errors
    ///
    /// [`UnixError::FrameTooShort`] or [`UnixError::FrameTooLong`] without a system call;
    /// [`UnixError::NoPeer`]; [`UnixError::WouldBlock`] when the peer's queue is full
    /// (`EAGAIN`; keep the frame and retry when the descriptor is writable, or drop it);
    /// [`UnixError::Send`] for anything else, e.g. the guest gone
    /// ([`UnixError::is_peer_gone`]) or `EACCES` (no write permission on its socket
    /// file). Interrupted sends are retried.
    pub fn write_frame(&self, frame: &[u8]) -> Result<(), UnixError> {
        if frame.len() < MIN_FRAME {
            return Err(UnixError::FrameTooShort { len: frame.len() });
        }
        if frame.len() > MAX_FRAME {
            return Err(UnixError::FrameTooLong { len: frame.len() });
        }
        let Some(peer) = &self.peer else {
            return Err(UnixError::NoPeer {
                path: self.path.clone(),
            });
        };
        loop {
            return match sock::sendto(
                self.socket.as_raw_fd(),
                frame,
                &peer.addr,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) if n == frame.len() => Ok(()),
                Ok(n) => Err(UnixError::ShortWrite {
                    peer: peer.name.clone(),
                    written: n,
                    len: frame.len(),
                }),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN | Errno::ENOBUFS) => Err(UnixError::WouldBlock),
                Err(e) => Err(UnixError::Send {
                    peer: peer.name.clone(),
                    source: e.into(),
                }),
            };
        }
    }
}

impl Drop for UnixPort {
    fn drop(&mut self) {
        // Only the file this port bound: another port may have replaced it since.
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if meta.file_type().is_socket() && (meta.dev(), meta.ino()) == self.file {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl AsFd for UnixPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for UnixPort {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

fn check_path(path: &Path) -> Result<(), UnixError> {
    let bytes = path.as_os_str().as_bytes();
    let reason = if bytes.is_empty() {
        "is empty"
    } else if bytes.len() > MAX_PATH {
        "is longer than the 107 bytes a socket address holds"
    } else if bytes.contains(&0) {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(UnixError::BadPath {
        path: path.to_owned(),
        reason,
    })
}

fn new_socket(flags: SockFlag) -> Result<OwnedFd, UnixError> {
    sock::socket(
        AddressFamily::Unix,
        SockType::Datagram,
        flags | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| UnixError::Socket(e.into()))
}

/// Makes `path` free to bind: nothing there, or a socket file nothing is bound to (then
/// removed). Whether a socket is bound is asked by connecting to it: `ECONNREFUSED` means
/// nobody is; a datagram socket accepts, a stream or seqpacket one answers `EPROTOTYPE`.
fn clear_stale(path: &Path, addr: &UnixAddr) -> Result<(), UnixError> {
    let inspect = |source| UnixError::Inspect {
        path: path.to_owned(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(inspect(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(UnixError::NotASocket {
            path: path.to_owned(),
        });
    }
    let probe = new_socket(SockFlag::empty())?;
    match sock::connect(probe.as_raw_fd(), addr) {
        Ok(()) | Err(Errno::EPROTOTYPE) => Err(UnixError::InUse {
            path: path.to_owned(),
        }),
        Err(Errno::ECONNREFUSED) => {
            fs::remove_file(path).map_err(|source| UnixError::RemoveStale {
                path: path.to_owned(),
                source,
            })
        }
        Err(e) => Err(inspect(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(bytes: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
        let mut name = EMPTY_UNIX_NAME;
        name.sun_family = libc::sa_family_t::try_from(libc::AF_UNIX).unwrap();
        for (dst, &b) in name.sun_path.iter_mut().zip(bytes) {
            *dst = b as libc::c_char;
        }
        let len = offset_of!(libc::sockaddr_un, sun_path) + bytes.len();
        (name, libc::socklen_t::try_from(len).unwrap())
    }

    #[test]
    fn source_addresses_become_keys() {
        let mut key = Vec::new();
        // A path as the kernel reports it: with its NUL.
        let (name, len) = name_of(b"/run/g.sock\0");
        source_key(&name, len, &mut key);
        assert_eq!(key, b"/run/g.sock");
        // An abstract name: leading NUL kept, inner NULs too.
        let (name, len) = name_of(b"\0vm\0x");
        source_key(&name, len, &mut key);
        assert_eq!(key, b"\0vm\0x");
        // Unbound: just the family.
        let (name, _) = name_of(b"");
        source_key(&name, 2, &mut key);
        assert!(key.is_empty());
        assert!(Peer::from_key(&key).is_none());
        // A length past the structure is clamped to it.
        source_key(&name, 4096, &mut key);
        assert_eq!(key.len(), 108);
    }

    #[test]
    fn peers_are_learnt_from_keys_and_displayed() {
        let p = Peer::from_key(b"/tmp/a").unwrap();
        assert_eq!(p.name, UnixPeer::Path(PathBuf::from("/tmp/a")));
        assert!(p.matches(b"/tmp/a") && !p.matches(b"/tmp/b"));
        let a = Peer::from_key(b"\0vm 1").unwrap();
        assert_eq!(a.name, UnixPeer::Abstract(b"vm 1".to_vec()));
        assert_eq!(a.name.to_string(), "@vm 1");
        assert_eq!(
            UnixPeer::Abstract(vec![0, 7]).to_string(),
            "@\\x00\\x07",
            "unprintable bytes are escaped"
        );
    }

    #[test]
    fn paths_and_batches_are_checked() {
        for (path, reason) in [
            ("", "is empty"),
            (&"x".repeat(108)[..], "longer"),
            ("a\0b", "NUL"),
        ] {
            let err = UnixPort::bind(Path::new(path), None).unwrap_err();
            assert!(
                matches!(&err, UnixError::BadPath { .. }) && err.to_string().contains(reason),
                "{err}"
            );
        }
        assert!(check_path(Path::new(&"x".repeat(107))).is_ok());
        for (slots, size) in [(0, 1500), (65, 1500), (1, 13), (1, MAX_FRAME + 1)] {
            assert!(matches!(
                FrameBatch::new(slots, size),
                Err(UnixError::BadBatch { .. })
            ));
        }
        let batch = FrameBatch::new(MAX_BATCH, MAX_FRAME).unwrap();
        assert_eq!(
            (batch.slots(), batch.slot_size(), batch.len()),
            (64, MAX_FRAME, 0)
        );
        assert!(batch.get(0).is_none());
    }
}
