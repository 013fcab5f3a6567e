//! The link socket: UDP with one system call per batch, not per datagram.
//!
//! [`UdpSocket`] is a bound, non-blocking UDP socket (IPv4, or IPv6 and by default also
//! IPv4 through mapped addresses) with:
//!
//! - **batched receive**: [`UdpSocket::recv_batch`] fills a reusable [`RecvBatch`] (one
//!   slot per datagram) with one `recvmmsg(2)`, telling per datagram its source, its length
//!   and whether it was longer than its slot (truncated: drop it);
//! - **batched send**: [`UdpSocket::send_batch`] hands up to [`MAX_BATCH`] datagrams, each
//!   to its own destination, to one `sendmmsg(2)`;
//! - **segmentation offload**: [`UdpSocket::send_runs`] sends runs of equal-size
//!   datagrams (the fragments of one frame each, see [`crate::wire`]), each run as one
//!   buffer with a `UDP_SEGMENT` control message, which the kernel cuts into datagrams
//!   after the routing and the socket layer ran once, and many runs per `sendmmsg`.
//!   Whether the kernel knows `UDP_SEGMENT` is checked when the socket is bound; if it
//!   does not, or if a route refuses it (`EIO`: the device cannot offload checksums), the
//!   same datagrams go one by one instead, with the same result on the wire;
//! - **receive offload** ([`UdpOptions::gro`], `UDP_GRO`): the kernel may hand over several
//!   datagrams of one sender, all of one size but the last, in one buffer;
//!   [`RecvMeta::segment`] tells their size, and [`RecvBatch::datagrams_mut`] splits them;
//! - **don't fragment** by default ([`PathMtuDiscovery::Do`]), and socket buffer sizes.
//!
//! No call blocks or allocates. "Nothing to receive" is `Ok(0)`; "no room to send" is a
//! count smaller than asked for.
//!
//! # Why don't-fragment
//!
//! The overlay fragments frames itself (see "MTU" in [`crate::wire`]): each fragment is its
//! own authenticated datagram sized to the link's `max_datagram`, so no datagram should
//! ever need IP fragmentation. Letting the kernel fragment (Linux's default,
//! [`PathMtuDiscovery::Want`], fragments locally when a datagram exceeds the route's MTU)
//! would hide a wrong `max_datagram` instead of revealing it: fragments are dropped by many
//! firewalls and NATs, one lost fragment loses the whole datagram, reassembly costs the
//! receiver, and IPv6 routers never fragment anyway. With `IP_PMTUDISC_DO` every datagram
//! carries DF, a datagram larger than the path MTU the kernel knows fails at once with
//! `EMSGSIZE` ([`UdpError::is_too_big`]), and routers that cannot forward it answer with
//! ICMP "fragmentation needed", which lowers the route's MTU for later sends: the daemon
//! learns about a too-small path instead of black-holing frames. [`PathMtuDiscovery::Probe`]
//! also sets DF but ignores MTUs learnt from ICMP (only the interface MTU limits sends),
//! which is what a prober of larger sizes (padded keepalives, RFC 8899 style) wants, and
//! what resists forged ICMP.
//!
//! # Dual stack
//!
//! A socket bound to an IPv6 address accepts IPv4 destinations as they are (the kernel
//! sends them over IPv4) unless [`UdpOptions::v6_only`] is set, and reports IPv4 sources
//! as [`SocketAddr::V4`], never as `::ffff:a.b.c.d`, so addresses compare equal whichever
//! socket saw them.

use std::io;
use std::mem::{offset_of, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nix::sys::socket::{
    self as sock, sockopt, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage,
};
use thiserror::Error;

/// Most datagrams one [`UdpSocket::recv_batch`] or one `sendmmsg` call moves.
pub const MAX_BATCH: usize = 64;

/// Most segments in one `UDP_SEGMENT` send (the kernel's limit, `UDP_MAX_SEGMENTS`, is 64
/// on older kernels, 128 on newer ones); longer runs go as several sends.
pub const MAX_GSO_SEGMENTS: usize = 64;

/// Largest UDP payload: 65 535 bytes of IPv4 packet less the IP and UDP headers. Also the
/// largest segmentation-offload send, all segments together.
pub const MAX_DATAGRAM: usize = 65_507;

/// What can go wrong with the link socket.
#[derive(Debug, Error)]
pub enum UdpError {
    /// The socket could not be created.
    #[error("create a UDP socket for {addr}: {source}")]
    Socket {
        /// The address it was for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The socket could not be bound (e.g. `EADDRINUSE`).
    #[error("bind a UDP socket to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A socket option could not be set or read.
    #[error("UDP socket option {option}: {source}")]
    SocketOption {
        /// The option, e.g. `IP_MTU_DISCOVER`.
        option: &'static str,
        /// Why.
        source: io::Error,
    },
    /// A [`RecvBatch`] was asked for with a shape it cannot have.
    #[error("receive batch of {slots} slots of {slot_size} bytes: {reason}")]
    BadBatch {
        /// Slots asked for.
        slots: usize,
        /// Slot size asked for.
        slot_size: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A segment size that cannot be: 0, or more than [`MAX_DATAGRAM`].
    #[error("segment size {segment_size} is not within 1..={}", MAX_DATAGRAM)]
    BadSegmentSize {
        /// The size given.
        segment_size: usize,
    },
    /// Receiving failed.
    #[error("receive on UDP socket: {0}")]
    Recv(io::Error),
    /// The kernel refused a datagram (e.g. `EMSGSIZE`: larger than the path MTU, see
    /// [`UdpError::is_too_big`]; `EAFNOSUPPORT`: IPv6 destination on an IPv4 socket;
    /// `ENETUNREACH`: no route).
    #[error("send to {dest}: {source}")]
    Send {
        /// The datagram's destination.
        dest: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

impl UdpError {
    /// Whether this is a send refused as larger than the path MTU the kernel knows
    /// (`EMSGSIZE`, with don't-fragment set): fragment smaller and send again.
    pub fn is_too_big(&self) -> bool {
        matches!(self, UdpError::Send { source, .. } if source.raw_os_error() == Some(libc::EMSGSIZE))
    }
}

/// The socket's fragmentation policy (`IP_MTU_DISCOVER`, and `IPV6_MTU_DISCOVER` on IPv6
/// sockets); see the module's "Why don't-fragment".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PathMtuDiscovery {
    /// No DF; fragment locally as needed (`IP_PMTUDISC_DONT`).
    Dont,
    /// Linux's default: DF and path-MTU discovery, but fragment locally a datagram larger
    /// than the known path MTU (`IP_PMTUDISC_WANT`).
    Want,
    /// DF always; a datagram larger than the known path MTU fails with `EMSGSIZE`
    /// (`IP_PMTUDISC_DO`). The default here.
    #[default]
    Do,
    /// DF always, path MTUs learnt from ICMP ignored: only the interface MTU limits sends
    /// (`IP_PMTUDISC_PROBE`).
    Probe,
}

impl PathMtuDiscovery {
    fn to_raw(self) -> libc::c_int {
        match self {
            PathMtuDiscovery::Dont => libc::IP_PMTUDISC_DONT,
            PathMtuDiscovery::Want => libc::IP_PMTUDISC_WANT,
            PathMtuDiscovery::Do => libc::IP_PMTUDISC_DO,
            PathMtuDiscovery::Probe => libc::IP_PMTUDISC_PROBE,
        }
    }

    fn from_raw(raw: libc::c_int) -> Option<Self> {
        match raw {
            libc::IP_PMTUDISC_DONT => Some(PathMtuDiscovery::Dont),
            libc::IP_PMTUDISC_WANT => Some(PathMtuDiscovery::Want),
            libc::IP_PMTUDISC_DO => Some(PathMtuDiscovery::Do),
            libc::IP_PMTUDISC_PROBE => Some(PathMtuDiscovery::Probe),
            _ => None,
        }
    }
}

/// How [`UdpSocket::bind_with`] sets a socket up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpOptions {
    /// Receive buffer size to ask for (`SO_RCVBUFFORCE` when privileged, else `SO_RCVBUF`,
    /// which `net.core.rmem_max` caps); `None` keeps the kernel's default.
    pub recv_buffer: Option<usize>,
    /// Send buffer size to ask for, likewise; `None` keeps the kernel's default.
    pub send_buffer: Option<usize>,
    /// Fragmentation policy; [`PathMtuDiscovery::Do`] by default.
    pub path_mtu: PathMtuDiscovery,
    /// Use `UDP_SEGMENT` when the kernel supports it (default `true`).
    pub gso: bool,
    /// Ask for receive offload (`UDP_GRO`, default `false`): then a received buffer may
    /// hold several datagrams (see [`RecvMeta::segment`]), up to 64 KiB, so give
    /// [`RecvBatch`] slots of 65 536 bytes.
    pub gro: bool,
    /// For an IPv6 address: IPv6 only (`IPV6_V6ONLY`), no IPv4 through mapped addresses.
    /// Default `false`.
    pub v6_only: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        Self {
            recv_buffer: None,
            send_buffer: None,
            path_mtu: PathMtuDiscovery::Do,
            gso: true,
            gro: false,
            v6_only: false,
        }
    }
}

/// What [`UdpSocket::recv_batch`] tells of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// Where it came from (IPv4 sources as [`SocketAddr::V4`], also on IPv6 sockets).
    pub source: SocketAddr,
    /// Its full length, even when it was truncated.
    pub len: usize,
    /// It was longer than its slot: only the slot's bytes were kept.
    pub truncated: bool,
    /// With receive offload: the buffer holds several datagrams of this size, back to back,
    /// the last possibly shorter (split them with [`RecvBatch::datagrams_mut`]).
    pub segment: Option<usize>,
}

/// Reusable buffers for [`UdpSocket::recv_batch`]: `slots` datagrams of up to `slot_size`
/// bytes each, in one allocation made once.
#[derive(Debug)]
pub struct RecvBatch {
    buf: Box<[u8]>,
    slot_size: usize,
    meta: Box<[RecvMeta]>,
    len: usize,
}

impl RecvBatch {
    /// Buffers for `slots` (1..=[`MAX_BATCH`]) datagrams of up to `slot_size`
    /// (1..=65 536) bytes. For link datagrams, `slot_size` is the largest datagram a peer
    /// may send plus one or more bytes, so that anything larger shows up as truncated.
    ///
    /// # Errors
    ///
    /// [`UdpError::BadBatch`] for a shape out of those ranges.
    pub fn new(slots: usize, slot_size: usize) -> Result<Self, UdpError> {
        let bad = |reason| UdpError::BadBatch {
            slots,
            slot_size,
            reason,
        };
        if !(1..=MAX_BATCH).contains(&slots) {
            return Err(bad("slots must be within 1..=64"));
        }
        if !(1..=65_536).contains(&slot_size) {
            return Err(bad("slot size must be within 1..=65536"));
        }
        let empty = RecvMeta {
            source: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            len: 0,
            truncated: false,
            segment: None,
        };
        Ok(Self {
            buf: vec![0; slots * slot_size].into_boxed_slice(),
            slot_size,
            meta: vec![empty; slots].into_boxed_slice(),
            len: 0,
        })
    }

    /// How many datagrams the batch can take.
    pub fn slots(&self) -> usize {
        self.meta.len()
    }

    /// The size of each slot.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// How many datagrams the last [`UdpSocket::recv_batch`] received.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Datagram `i` of the last receive: what is known of it, and its bytes (at most
    /// [`slot_size`](RecvBatch::slot_size) of them; all of them unless truncated).
    pub fn get(&self, i: usize) -> Option<(RecvMeta, &[u8])> {
        if i >= self.len {
            return None;
        }
        let meta = *self.meta.get(i)?;
        let start = i * self.slot_size;
        let kept = meta.len.min(self.slot_size);
        Some((meta, self.buf.get(start..start + kept)?))
    }

    /// The datagrams of the last receive, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (RecvMeta, &[u8])> + '_ {
        (0..self.len).filter_map(move |i| self.get(i))
    }

    /// The datagrams of the last receive, in arrival order, each with its source, writable
    /// (to decrypt them in place): the buffers receive offload merged are split again.
    /// Truncated buffers are left out.
    pub fn datagrams_mut(&mut self) -> impl Iterator<Item = (SocketAddr, &mut [u8])> + '_ {
        let slot_size = self.slot_size;
        let metas = &self.meta[..self.len];
        self.buf
            .chunks_mut(slot_size)
            .zip(metas)
            .filter(|(_, meta)| !meta.truncated)
            .flat_map(move |(slot, meta)| {
                let bytes = &mut slot[..meta.len.min(slot_size)];
                let size = meta.segment.unwrap_or(bytes.len()).max(1);
                bytes.chunks_mut(size).map(|d| (meta.source, d))
            })
    }

    /// Forgets the last receive.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// The datagrams of one frame for [`UdpSocket::send_runs`]: `bytes` holds them back to
/// back, each `stride` bytes long but the last, which may be shorter (as
/// [`crate::wire::Sealed`] lays them out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run<'a> {
    /// Where they go.
    pub dest: SocketAddr,
    /// The datagrams.
    pub bytes: &'a [u8],
    /// The length of each but the last.
    pub stride: usize,
}

impl<'a> Run<'a> {
    /// Datagrams per `UDP_SEGMENT` message: the kernel takes at most
    /// [`MAX_GSO_SEGMENTS`], and no more than 64 KiB in all.
    fn per_message(&self) -> usize {
        MAX_GSO_SEGMENTS
            .min(MAX_DATAGRAM / self.stride.max(1))
            .max(1)
    }

    /// The bytes one message takes, with offload (`gso`) or without.
    fn message_len(&self, gso: bool) -> usize {
        let per = if gso { self.per_message() } else { 1 };
        per * self.stride.max(1)
    }

    /// How many messages it takes, with offload (`gso`) or without.
    fn message_count(&self, gso: bool) -> usize {
        self.bytes.len().div_ceil(self.message_len(gso))
    }

    /// Its messages: destination, bytes and, for a message of several datagrams, the
    /// segment size.
    fn messages(self, gso: bool) -> impl Iterator<Item = (SocketAddr, &'a [u8], Option<u16>)> {
        let (bytes, dest, stride) = (self.bytes, self.dest, self.stride);
        let chunk = self.message_len(gso);
        // A stride over MAX_DATAGRAM is refused before this; it fits a u16.
        let segment = u16::try_from(self.stride).ok();
        bytes.chunks(chunk).map(move |c| {
            let several = c.len() > stride;
            (dest, c, if several { segment } else { None })
        })
    }
}

/// A bound, non-blocking UDP socket for links; see the module documentation.
///
/// `Send` and `Sync`: several threads may send on one socket (each call builds its own
/// message headers).
#[derive(Debug)]
pub struct UdpSocket {
    socket: std::net::UdpSocket,
    /// The kernel accepts `UDP_SEGMENT`.
    gso_supported: bool,
    /// Use it: set at bind, cleared for good when a route refuses it.
    gso: AtomicBool,
    /// `UDP_SEGMENT` sends that went through.
    offloaded: AtomicU64,
    v6: bool,
}

impl UdpSocket {
    /// Binds to `addr` with [`UdpOptions::default`] (port 0: the kernel picks one).
    ///
    /// # Errors
    ///
    /// As [`bind_with`](UdpSocket::bind_with).
    pub fn bind(addr: SocketAddr) -> Result<Self, UdpError> {
        Self::bind_with(addr, &UdpOptions::default())
    }

    /// Creates a non-blocking, close-on-exec UDP socket, applies `options` and binds it to
    /// `addr`.
    ///
    /// # Errors
    ///
    /// [`UdpError::Socket`], [`UdpError::Bind`], or [`UdpError::SocketOption`] for an option
    /// the kernel refused.
    pub fn bind_with(addr: SocketAddr, options: &UdpOptions) -> Result<Self, UdpError> {
        let family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let fd: OwnedFd = sock::socket(
            family,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::Udp,
        )
        .map_err(|e| UdpError::Socket {
            addr,
            source: e.into(),
        })?;
        if addr.is_ipv6() {
            sock::setsockopt(&fd, sockopt::Ipv6V6Only, &options.v6_only)
                .map_err(option_error("IPV6_V6ONLY"))?;
        }
        sock::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(|e| UdpError::Bind {
            addr,
            source: e.into(),
        })?;
        let gso_supported = sock::getsockopt(&fd, sockopt::UdpGsoSegment).is_ok();
        let socket = UdpSocket {
            socket: std::net::UdpSocket::from(fd),
            gso_supported,
            gso: AtomicBool::new(gso_supported && options.gso),
            offloaded: AtomicU64::new(0),
            v6: addr.is_ipv6(),
        };
        socket.set_path_mtu_discovery(options.path_mtu)?;
        if let Some(bytes) = options.recv_buffer {
            socket.set_recv_buffer(bytes)?;
        }
        if let Some(bytes) = options.send_buffer {
            socket.set_send_buffer(bytes)?;
        }
        if options.gro {
            socket.set_int(libc::SOL_UDP, libc::UDP_GRO, 1, "UDP_GRO")?;
        }
        Ok(socket)
    }

    /// The address the socket is bound to (with the port the kernel picked).
    ///
    /// # Errors
    ///
    /// [`UdpError::SocketOption`] if the kernel cannot tell (not expected).
    pub fn local_addr(&self) -> Result<SocketAddr, UdpError> {
        self.socket
            .local_addr()
            .map_err(|source| UdpError::SocketOption {
                option: "getsockname",
                source,
            })
    }

    /// The standard-library socket underneath, for single-datagram calls (`send_to`,
    /// `recv_from`) and anything this type does not wrap.
    pub fn as_std(&self) -> &std::net::UdpSocket {
        &self.socket
    }

    /// Whether the kernel accepts `UDP_SEGMENT` (checked at bind).
    pub fn gso_supported(&self) -> bool {
        self.gso_supported
    }

    /// Whether [`send_runs`](UdpSocket::send_runs) uses segmentation offload now.
    pub fn gso_enabled(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    /// How many `UDP_SEGMENT` sends (each of up to [`MAX_GSO_SEGMENTS`] datagrams) the
    /// kernel took so far.
    pub fn offloaded_sends(&self) -> u64 {
        self.offloaded.load(Ordering::Relaxed)
    }

    /// Turns segmentation offload on (where supported) or off; returns whether it is on.
    pub fn set_gso(&self, on: bool) -> bool {
        let on = on && self.gso_supported;
        self.gso.store(on, Ordering::Relaxed);
        on
    }

    /// Sets the fragmentation policy (on an IPv6 socket, for both IPv6 and mapped IPv4).
    ///
    /// # Errors
    ///
    /// [`UdpError::SocketOption`].
    pub fn set_path_mtu_discovery(&self, mode: PathMtuDiscovery) -> Result<(), UdpError> {
        let raw = mode.to_raw();
        if self.v6 {
            // The IPV6_PMTUDISC_* values equal the IP_PMTUDISC_* ones.
            self.set_int(
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                raw,
                "IPV6_MTU_DISCOVER",
            )?;
        }
        // On an IPv6 socket this covers datagrams to IPv4 destinations.
        self.set_int(
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            raw,
            "IP_MTU_DISCOVER",
        )
    }

    /// The fragmentation policy in force for IPv4 (`None` for a value this type does not
    /// name).
    ///
    /// # Errors
    ///
    /// [`UdpError::SocketOption`].
    pub fn path_mtu_discovery(&self) -> Result<Option<PathMtuDiscovery>, UdpError> {
        let raw = self.get_int(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, "IP_MTU_DISCOVER")?;
        Ok(PathMtuDiscovery::from_raw(raw))
    }

    /// Asks for a receive buffer of `bytes` (`SO_RCVBUFFORCE` if the process may, else
    /// `SO_RCVBUF`, capped by `net.core.rmem_max`) and returns the size in force, as the
    /// kernel reports it (twice the request, for its bookkeeping).
    ///
    /// # Errors
    ///
    /// [`UdpError::SocketOption`].
    pub fn set_recv_buffer(&self, bytes: usize) -> Result<usize, UdpError> {
        if sock::setsockopt(&self.socket, sockopt::RcvBufForce, &bytes).is_err() {
            sock::setsockopt(&self.socket, sockopt::RcvBuf, &bytes)
                .map_err(option_error("SO_RCVBUF"))?;
        }
        self.recv_buffer()
    }

    /// Asks for a send buffer of `bytes`, as [`set_recv_buffer`](UdpSocket::set_recv_buffer).
    ///
    /// # Errors
    ///
    /// [`UdpError::SocketOption`].
    pub fn set_send_buffer(&self, bytes: usize) -> Result<usize, UdpError> {
        if sock::setsockopt(&self.socket, sockopt::SndBufForce, &bytes).is_err() {
            sock::setsockopt(&self.socket, sockopt::SndBuf, &bytes)
                .map_err(option_error("SO_SNDBUF"))?;
        }
        self.send_buffer()
    }

    /// The receive buffer size in force.
    ///
    /// # Errors
    ///
    /// [`UdpError::SocketOption`].
    pub fn recv_buffer(&self) -> Result<usize, UdpError> {
        sock::getsockopt(&self.socket, sockopt::RcvBuf).map_err(option_error("SO_RCVBUF"))
    }

    /// The send buffer size in force.
    ///
    /// # Errors
    ///
    /// [`UdpError::SocketOption`].
    pub fn send_buffer(&self) -> Result<usize, UdpError> {
        sock::getsockopt(&self.socket, sockopt::SndBuf).map_err(option_error("SO_SNDBUF"))
    }

    /// Receives up to `batch.slots()` waiting datagrams with one `recvmmsg(2)`; returns how
    /// many (also [`RecvBatch::len`]), 0 when none is waiting. Read them with
    /// [`RecvBatch::get`] or [`RecvBatch::iter`]; a datagram longer than its slot is
    /// marked truncated, with its full length.
    ///
    /// # Errors
    ///
    /// [`UdpError::Recv`] for a socket error (the batch is then empty). Interrupted calls
    /// are retried.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> Result<usize, UdpError> {
        batch.len = 0;
        let slots = batch.slots().min(MAX_BATCH);
        let slot_size = batch.slot_size;
        let mut names = [EMPTY_NAME; MAX_BATCH];
        let mut controls = [ControlBuf::EMPTY; MAX_BATCH];
        let meta = &mut batch.meta;
        let received = recv_mmsg(
            self.socket.as_fd(),
            &mut batch.buf,
            slot_size,
            &mut names[..slots],
            Some(&mut controls[..slots]),
            |i, message, name| {
                if let Some(m) = meta.get_mut(i) {
                    *m = RecvMeta {
                        source: decode_name(name),
                        len: message.len,
                        truncated: message.truncated,
                        segment: message.segment.map(usize::from),
                    };
                }
            },
        )
        .map_err(UdpError::Recv)?;
        batch.len = received;
        Ok(received)
    }

    /// Sends each `(destination, bytes)` as one datagram, up to [`MAX_BATCH`] per
    /// `sendmmsg(2)`, in order; returns how many from the front were handed to the kernel.
    ///
    /// Fewer than `datagrams.len()` means the next one could not go now: the socket buffer
    /// is full (poll for writable and call again with the rest), or it would fail, which
    /// calling again with the rest reports. 0 for an empty slice or a full buffer.
    ///
    /// # Errors
    ///
    /// [`UdpError::Send`] only when the first datagram is refused (e.g. `EMSGSIZE`,
    /// `EAFNOSUPPORT`): skip it and go on with the rest. Interrupted calls are retried.
    pub fn send_batch(&self, datagrams: &[(SocketAddr, &[u8])]) -> Result<usize, UdpError> {
        let mut messages = datagrams.iter().map(|&(dest, data)| (dest, data, None));
        self.send_messages(&mut messages)
            .map_err(|(dest, source)| UdpError::Send { dest, source })
    }

    /// Sends runs of datagrams, each [`Run`] the datagrams of one frame back to back, all
    /// `stride` bytes long but the last; returns how many runs, from the front, went whole.
    ///
    /// With segmentation offload on ([`gso_enabled`](UdpSocket::gso_enabled)), each run goes
    /// as one `UDP_SEGMENT` message (several if it has more than [`MAX_GSO_SEGMENTS`]
    /// datagrams or more than 64 KiB), which the kernel cuts into the same datagrams; and
    /// up to [`MAX_BATCH`] messages go per `sendmmsg(2)`. A route that refuses offload
    /// (`EIO`: the device cannot checksum) turns it off for this socket for good, and
    /// everything then goes as plain datagrams, with the same result on the wire.
    ///
    /// Fewer runs than given means the socket buffer filled (the first run not counted may
    /// have gone in part: its frame is lost, as on any full link) or the next one would
    /// fail, which calling again with the rest reports.
    ///
    /// # Errors
    ///
    /// [`UdpError::BadSegmentSize`] for a stride of 0 or over [`MAX_DATAGRAM`];
    /// [`UdpError::Send`] when the first run is refused.
    pub fn send_runs(&self, runs: &[Run<'_>]) -> Result<usize, UdpError> {
        if let Some(bad) = runs
            .iter()
            .find(|r| r.stride == 0 || r.stride > MAX_DATAGRAM)
        {
            return Err(UdpError::BadSegmentSize {
                segment_size: bad.stride,
            });
        }
        let gso = self.gso_enabled();
        let mut messages = runs.iter().flat_map(|&run| run.messages(gso));
        let sent = match self.send_messages(&mut messages) {
            Ok(sent) => sent,
            Err((_, e)) if gso && e.raw_os_error() == Some(libc::EIO) => {
                self.gso.store(false, Ordering::Relaxed);
                return self.send_runs(runs);
            }
            Err((dest, source)) => return Err(UdpError::Send { dest, source }),
        };
        // The runs whose every message went.
        let mut left = sent;
        Ok(runs
            .iter()
            .take_while(|run| {
                let n = run.message_count(gso);
                let whole = n <= left;
                left = left.saturating_sub(n);
                whole
            })
            .count())
    }

    /// `sendmmsg` of the messages `messages` yields, [`MAX_BATCH`] per call, each to its
    /// destination and, with a segment size, with a `UDP_SEGMENT` control message; returns
    /// how many went, from the front (the first one not counted was consumed from
    /// `messages` but not sent). An error only when the first message is refused, with its
    /// destination.
    fn send_messages<'a>(
        &self,
        messages: &mut impl Iterator<Item = (SocketAddr, &'a [u8], Option<u16>)>,
    ) -> Result<usize, (SocketAddr, io::Error)> {
        let mut sent = 0;
        loop {
            let mut names = [EMPTY_NAME; MAX_BATCH];
            let mut name_lens = [0; MAX_BATCH];
            let mut iovs = [EMPTY_IOV; MAX_BATCH];
            let mut controls = [const { None::<GsoControl> }; MAX_BATCH];
            let mut dests = [None; MAX_BATCH];
            let mut n = 0;
            for (dest, data, segment) in messages.by_ref().take(MAX_BATCH) {
                (names[n], name_lens[n]) = encode_name(&dest);
                iovs[n] = libc::iovec {
                    iov_base: data.as_ptr().cast_mut().cast(),
                    iov_len: data.len(),
                };
                controls[n] = segment.map(GsoControl::new);
                dests[n] = Some(dest);
                n += 1;
            }
            if n == 0 {
                return Ok(sent);
            }
            let mut hdrs = [empty_mmsghdr(); MAX_BATCH];
            for ((((hdr, iov), name), &name_len), control) in hdrs
                .iter_mut()
                .zip(iovs.iter_mut())
                .zip(names.iter_mut())
                .zip(&name_lens)
                .zip(controls.iter_mut())
                .take(n)
            {
                hdr.msg_hdr.msg_iov = iov;
                hdr.msg_hdr.msg_iovlen = 1;
                hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_in6).cast();
                hdr.msg_hdr.msg_namelen = name_len;
                if let Some(control) = control {
                    hdr.msg_hdr.msg_control = (control as *mut GsoControl).cast();
                    hdr.msg_hdr.msg_controllen = size_of::<GsoControl>() as _;
                }
            }
            let vlen = libc::c_uint::try_from(n).unwrap_or(0);
            let mut done = 0;
            while done < n {
                // SAFETY: headers `done..n` (n <= MAX_BATCH) each point to one name of
                // `names` (`msg_namelen` bytes of it are read), one iovec of `iovs` and, if
                // any, one well-formed control message of `controls` (`msg_controllen`
                // bytes), arrays on this stack frame untouched until the call returns; each
                // iovec points to a datagram borrowed from the caller, only read by the
                // kernel. The kernel writes only `msg_len` of each header.
                let rc = unsafe {
                    libc::sendmmsg(
                        self.socket.as_raw_fd(),
                        hdrs.as_mut_ptr().add(done),
                        vlen - libc::c_uint::try_from(done).unwrap_or(0),
                        libc::MSG_DONTWAIT,
                    )
                };
                match usize::try_from(rc) {
                    // Stopped early: buffer full, or the next message fails (the caller's
                    // retry reports it).
                    Ok(0) => return Ok(sent + done),
                    Ok(k) => {
                        let offloaded = controls[done..done + k.min(n - done)]
                            .iter()
                            .filter(|c| c.is_some())
                            .count();
                        self.offloaded
                            .fetch_add(offloaded as u64, Ordering::Relaxed);
                        done += k;
                    }
                    Err(_) => {
                        let e = io::Error::last_os_error();
                        match e.kind() {
                            io::ErrorKind::Interrupted => {}
                            io::ErrorKind::WouldBlock => return Ok(sent + done),
                            _ if sent + done > 0 => return Ok(sent + done),
                            _ => {
                                let dest = dests[done].unwrap_or(SocketAddr::V4(
                                    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                                ));
                                return Err((dest, e));
                            }
                        }
                    }
                }
            }
            sent += n;
        }
    }

    /// Sets an integer socket option.
    fn set_int(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
        option: &'static str,
    ) -> Result<(), UdpError> {
        // SAFETY: the option value is one `c_int` living across the call, and its size is
        // what is passed; the descriptor is open.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                INT_LEN,
            )
        };
        if rc < 0 {
            return Err(UdpError::SocketOption {
                option,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Reads an integer socket option.
    fn get_int(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        option: &'static str,
    ) -> Result<libc::c_int, UdpError> {
        let mut value: libc::c_int = 0;
        let mut len = INT_LEN;
        // SAFETY: the kernel writes at most `len` (the size of `value`) bytes into `value`
        // and the length into `len`, both exclusively borrowed across the call.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(UdpError::SocketOption {
                option,
                source: io::Error::last_os_error(),
            });
        }
        Ok(value)
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// A buffer for a datagram's source address that `recvmmsg` may write into.
///
/// # Safety
///
/// Implementors must be plain C socket-address structures (integers and integer arrays),
/// valid for any bytes the kernel writes into them.
pub(crate) unsafe trait SockaddrBuf {}

// SAFETY: `sockaddr_in6` is integers and a byte array.
unsafe impl SockaddrBuf for libc::sockaddr_in6 {}
// SAFETY: `sockaddr_un` is an integer and a `c_char` array.
unsafe impl SockaddrBuf for libc::sockaddr_un {}

/// What `recvmmsg` tells of one datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Received {
    /// Its full length (`MSG_TRUNC`), even when it was longer than its slot.
    pub len: usize,
    /// It was longer than its slot: only the slot's bytes were kept.
    pub truncated: bool,
    /// How many bytes of its name buffer the kernel filled.
    pub name_len: libc::socklen_t,
    /// The segment size a `UDP_GRO` control message told, if any.
    pub segment: Option<u16>,
}

/// Room for the control messages of one received datagram (`UDP_GRO`'s `int`), aligned as
/// a `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct ControlBuf([u8; 64]);

impl ControlBuf {
    pub(crate) const EMPTY: ControlBuf = ControlBuf([0; 64]);
}

/// The segment size of a `UDP_GRO` control message among those `hdr` received.
fn gro_segment(hdr: &libc::msghdr) -> Option<u16> {
    // SAFETY: `hdr` is a header `recvmmsg` filled: `msg_control` points to a live
    // ControlBuf of `msg_controllen` bytes the kernel wrote well-formed control messages
    // into; CMSG_FIRSTHDR and CMSG_NXTHDR stay within it, and CMSG_DATA points inside the
    // message whose `cmsg_len` covers an `int`, read unaligned.
    unsafe {
        if hdr.msg_control.is_null() {
            return None;
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::SOL_UDP
                && c.cmsg_type == libc::UDP_GRO
                && c.cmsg_len as usize >= libc::CMSG_LEN(INT_LEN) as usize
            {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return u16::try_from(size).ok().filter(|&s| s > 0);
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
        None
    }
}

/// One `recvmmsg(2)` (`MSG_DONTWAIT | MSG_TRUNC`) of up to `names.len()` (at most
/// [`MAX_BATCH`], and no more than `buf` has `slot_size`-byte slots for) waiting
/// datagrams: datagram `i` into `buf[i * slot_size..][..slot_size]`, its source into
/// `names[i]`, its control messages (if `controls` is given) into `controls[i]`. Calls
/// `each(i, what, &names[i])` for each one received, in order, and
/// returns how many; 0 when none is waiting. Interrupted calls are retried. Shared by the
/// UDP link socket and the unix datagram port, which differ only in their address type.
pub(crate) fn recv_mmsg<N: SockaddrBuf>(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot_size: usize,
    names: &mut [N],
    controls: Option<&mut [ControlBuf]>,
    mut each: impl FnMut(usize, Received, &N),
) -> io::Result<usize> {
    if slot_size == 0 {
        return Ok(0);
    }
    let slots = names.len().min(MAX_BATCH).min(buf.len() / slot_size);
    let name_len = libc::socklen_t::try_from(size_of::<N>()).unwrap_or(0);
    let mut iovs = [EMPTY_IOV; MAX_BATCH];
    let mut hdrs = [empty_mmsghdr(); MAX_BATCH];
    for (((hdr, iov), name), slot) in hdrs
        .iter_mut()
        .zip(iovs.iter_mut())
        .zip(names.iter_mut())
        .zip(buf.chunks_exact_mut(slot_size))
        .take(slots)
    {
        iov.iov_base = slot.as_mut_ptr().cast();
        iov.iov_len = slot.len();
        hdr.msg_hdr.msg_iov = iov;
        hdr.msg_hdr.msg_iovlen = 1;
        hdr.msg_hdr.msg_name = (name as *mut N).cast();
        hdr.msg_hdr.msg_namelen = name_len;
    }
    if let Some(controls) = controls {
        for (hdr, control) in hdrs.iter_mut().zip(controls.iter_mut()).take(slots) {
            hdr.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = size_of::<ControlBuf>() as _;
        }
    }
    let vlen = libc::c_uint::try_from(slots).unwrap_or(0);
    let received = loop {
        // SAFETY: the first `vlen` (<= MAX_BATCH) headers each point to one iovec of
        // `iovs` and one name buffer of `names` (`N: SockaddrBuf`: valid for any bytes;
        // `msg_namelen` is its size), all untouched until the call returns; each iovec
        // points to a distinct `slot_size`-byte chunk of `buf`, exclusively borrowed for
        // this call; with `controls`, one distinct ControlBuf of `msg_controllen` bytes,
        // likewise. The kernel writes at most `iov_len` bytes per buffer, `msg_namelen`
        // bytes per name and `msg_controllen` per control buffer, and nothing after
        // returning. A null timeout is allowed.
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if let Ok(n) = usize::try_from(rc) {
            break n.min(slots);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    };
    for (i, (hdr, name)) in hdrs.iter().zip(names.iter()).take(received).enumerate() {
        // With MSG_TRUNC, msg_len is the datagram's full length.
        let len = hdr.msg_len as usize;
        let what = Received {
            len,
            truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > slot_size,
            name_len: hdr.msg_hdr.msg_namelen,
            segment: gro_segment(&hdr.msg_hdr),
        };
        each(i, what, name);
    }
    Ok(received)
}

fn option_error(option: &'static str) -> impl Fn(nix::errno::Errno) -> UdpError {
    move |e| UdpError::SocketOption {
        option,
        source: e.into(),
    }
}

/// A `cmsghdr` carrying `UDP_SEGMENT`'s `u16`, laid out as `CMSG_SPACE(2)` bytes.
#[repr(C)]
struct GsoControl {
    header: libc::cmsghdr,
    segment_size: u16,
}

// SAFETY: CMSG_LEN and CMSG_SPACE only compute sizes from their argument.
const _: () = unsafe {
    // The payload sits where CMSG_DATA puts it, and the struct is CMSG_SPACE(2) long.
    assert!(offset_of!(GsoControl, segment_size) == libc::CMSG_LEN(0) as usize);
    assert!(size_of::<GsoControl>() == libc::CMSG_SPACE(2) as usize);
};

impl GsoControl {
    fn new(segment_size: u16) -> Self {
        // SAFETY: `cmsghdr` is plain integers (and, on some C libraries, padding), for
        // which all-zero bytes is a valid value.
        let mut header: libc::cmsghdr = unsafe { std::mem::zeroed() };
        // SAFETY: CMSG_LEN only computes a size from its argument.
        header.cmsg_len = unsafe { libc::CMSG_LEN(2) } as _;
        header.cmsg_level = libc::SOL_UDP;
        header.cmsg_type = libc::UDP_SEGMENT;
        Self {
            header,
            segment_size,
        }
    }
}

/// One socket address as the kernel reads and writes it. A `sockaddr_in6` holds a
/// `sockaddr_in` in its first 16 bytes: same family and port fields, and the IPv4 address
/// where `sin6_flowinfo` is (checked below), so one buffer type serves both families
/// without reinterpreting memory.
const EMPTY_NAME: libc::sockaddr_in6 = libc::sockaddr_in6 {
    sin6_family: 0,
    sin6_port: 0,
    sin6_flowinfo: 0,
    sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
    sin6_scope_id: 0,
};

const _: () = {
    assert!(
        offset_of!(libc::sockaddr_in, sin_family) == offset_of!(libc::sockaddr_in6, sin6_family)
    );
    assert!(offset_of!(libc::sockaddr_in, sin_port) == offset_of!(libc::sockaddr_in6, sin6_port));
    assert!(
        offset_of!(libc::sockaddr_in, sin_addr) == offset_of!(libc::sockaddr_in6, sin6_flowinfo)
    );
    assert!(size_of::<libc::in_addr>() == size_of::<u32>());
    assert!(size_of::<libc::sockaddr_in>() <= size_of::<libc::sockaddr_in6>());
};

// Small constants of the C ABI, which fit their types.
#[allow(clippy::cast_possible_truncation)]
const V4_NAME_LEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as libc::socklen_t;
#[allow(clippy::cast_possible_truncation)]
const V6_NAME_LEN: libc::socklen_t = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
#[allow(clippy::cast_possible_truncation)]
const INT_LEN: libc::socklen_t = size_of::<libc::c_int>() as libc::socklen_t;
#[allow(clippy::cast_possible_truncation)]
const AF_INET: libc::sa_family_t = libc::AF_INET as libc::sa_family_t;
#[allow(clippy::cast_possible_truncation)]
const AF_INET6: libc::sa_family_t = libc::AF_INET6 as libc::sa_family_t;

const EMPTY_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: `msghdr` is integers and raw pointers (and, on some C libraries, padding),
    // for which all-zero bytes (null pointers, zero lengths) is a valid value.
    unsafe { std::mem::zeroed() }
}

fn empty_mmsghdr() -> libc::mmsghdr {
    libc::mmsghdr {
        msg_hdr: empty_msghdr(),
        msg_len: 0,
    }
}

/// `addr` as the kernel reads it, with the length to pass.
fn encode_name(addr: &SocketAddr) -> (libc::sockaddr_in6, libc::socklen_t) {
    match addr {
        SocketAddr::V4(a) => (
            libc::sockaddr_in6 {
                sin6_family: AF_INET,
                sin6_port: a.port().to_be(),
                // sin_addr: the address's bytes in network order, as they lie in memory.
                sin6_flowinfo: u32::from_ne_bytes(a.ip().octets()),
                ..EMPTY_NAME
            },
            V4_NAME_LEN,
        ),
        SocketAddr::V6(a) => (
            libc::sockaddr_in6 {
                sin6_family: AF_INET6,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            },
            V6_NAME_LEN,
        ),
    }
}

/// The address the kernel wrote into `name`; IPv4-mapped IPv6 addresses come out as IPv4,
/// an unknown family as `0.0.0.0:0`.
fn decode_name(name: &libc::sockaddr_in6) -> SocketAddr {
    let port = u16::from_be(name.sin6_port);
    match name.sin6_family {
        AF_INET => SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(name.sin6_flowinfo.to_ne_bytes()),
            port,
        )),
        AF_INET6 => {
            let ip = Ipv6Addr::from(name.sin6_addr.s6_addr);
            match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    port,
                    name.sin6_flowinfo,
                    name.sin6_scope_id,
                )),
            }
        }
        _ => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
    }
}

#[cfg(test)]
mod tests;
