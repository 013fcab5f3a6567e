//! The daemon: the pure cores ([`Table`], [`Peer`], [`LinkTx`]/[`LinkRx`]) driven by real
//! file descriptors (TAP devices, one UDP socket) on one data-plane thread.
//!
//! # Threads
//!
//! - The **data plane** ([`Daemon::run`]) owns every piece of state: the forwarding table,
//!   the links with their liveness machines, the ports and every counter. It waits in one
//!   `poll(2)` for the UDP socket, each port and a wake-up socket, and runs the timers of the
//!   links in between. Nothing is shared, so there is no lock on the frame path.
//! - The **control API** and **metrics** threads ([`server`]) parse requests and hand each
//!   to the data plane as a [`Command`] over a channel, waking it with one byte on a unix
//!   socket; the data plane applies it between two batches of frames and answers on the
//!   command's own channel. A primitive therefore costs two thread wake-ups and, if it
//!   changes anything, one write of the state file ([`state`]).
//!
//! # The frame path
//!
//! A port read (one frame per `read(2)`, up to [`BATCH`] per wake-up) goes through the
//! port's checks (length, source guard), then one table lookup ([`Table::lookup_counted`],
//! a hash probe on a hit), then out: to a local port with one `write(2)`, or sealed
//! ([`LinkTx::seal_frame`]: one datagram, or two for a full-size frame over a 1500-byte
//! underlay, or up to 47 for a super-frame) into the *outbox*, up to 64 frames that go out
//! with one `sendmmsg(2)` when it fills or the batch ends. The UDP socket is read with
//! `recvmmsg(2)`, 64 buffers per call: each datagram is matched to its link by the sender's
//! session id (a hash probe), opened (window, tag, reassembly) and forwarded the same way.
//!
//! # Offloads
//!
//! On by default ([`Config::offloads`]; `vnetd --no-offloads` turns them off), as in a
//! virtio NIC, wireguard-go or any hypervisor's vhost, because a data path that moves one
//! 1514-byte frame per system call cannot keep up with the kernel's own tunnels: it spends
//! its time in per-frame overheads, in the guests' stacks as much as in the daemon.
//!
//! - **TAP ports** are opened with `IFF_VNET_HDR` and announce checksum and TCP
//!   segmentation offload ([`crate::io::tap`], "Offloads"). A guest's TCP stack then hands
//!   over super-frames of up to 64 KiB with their checksum left to do, and one read moves
//!   what would be some 44 wire-sized frames; writes to a TAP take such frames back, so the
//!   receiving guest's stack gets them as if its NIC had coalesced them.
//! - **The frame path carries the work left to do** (`Carried`): a frame with offloads goes
//!   behind a 10-byte descriptor ([`crate::offload`]), over links too (datagrams flagged
//!   [`crate::wire::Flags::OFFLOAD`], fragmented like any long frame). A port that cannot
//!   take offloads (pcap, unix, a TAP without them) gets plain frames: the daemon finishes
//!   the checksum and segments in software ([`crate::offload::resolve`]). Counters count a
//!   super-frame as one frame, with all its bytes.
//! - **The link socket** sends each frame's datagrams as one `UDP_SEGMENT` message (the
//!   kernel cuts them, after routing and the socket layer ran once) and receives with
//!   `UDP_GRO` (one buffer for a run of one peer's datagrams): [`crate::io::udp`].
//!
//! What the wire carries is unchanged: datagrams of at most the underlay MTU, each with its
//! own header and tag, in the same order. Only where they are batched differs. That matters
//! to a passive bandwidth probe that times packets: on a virtual NIC (a veth, as in the
//! testbed) a capture on the sending host sees one `UDP_SEGMENT` message as one super-packet
//! of up to 64 KiB, since nothing segments it until a device that cannot carry it (the
//! testbed's link emulators segment it as a NIC would); a receiving socket's capture sees
//! what the receiving NIC's GRO merged. A probe must therefore either capture where packets
//! are wire-sized (after segmentation, e.g. on a physical NIC or the emulator's side of an
//! emulated link), or count a captured packet of `n` bytes with `UDP_SEGMENT` size `s` as
//! `ceil(n / s)` back-to-back datagrams, or run the daemons with `--no-offloads` for the
//! measurement.
//!
//! # Links and their addresses
//!
//! A link is configured at both ends ([`Request::AddLink`] to each). An end with the peer's
//! address sends hellos to it; an end without one (the Proxy's end of a star link) waits.
//! Every authentic datagram tells where the peer is now, and replies go there: a host behind
//! a NAT, or one that moved, is followed without reconfiguration.
//!
//! # Restarts
//!
//! Every change is saved ([`state`]) before it is acknowledged, and a daemon that starts
//! with a state directory takes its links, rules and ports back from it. TAP ports are
//! persistent devices, so a guest's interface and its addresses outlive the daemon; the new
//! daemon re-opens them by name. Peers notice the new session in its first hello and bring
//! their links up again (see [`crate::peer`], "Restarts").

mod device;
mod metrics;
mod record;
pub mod server;
pub mod state;
mod tcp;
mod traffic;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use foldhash::fast::RandomState;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use tracing::{debug, info, warn};

use crate::control::{
    Info, LinkInfo, LinkStats, PortInfo, PortKind, PortSpec, PortStats, Request, Response, Stats,
    Traffic,
};
use crate::forward::{Decision, Ingress, IngressId, Out, Role, Table};
use crate::io::udp::{RecvBatch, Run, UdpOptions, UdpSocket};
use crate::io::unix::FrameBatch;
use crate::model::{LinkKind, Mac, Name, Target};
use crate::offload::{self, Offload, DESCRIPTOR_LEN, VNET_HDR_LEN};
use crate::peer::{Event, Initiative, Peer, PeerConfig, State, Transmit};
use crate::wire::{
    forward_hops, open_hello, udp_max_datagram, Datagram, LinkRx, LinkTx, Local, MessageType,
    OverlayKey, ReassemblyConfig, Received, RxError, SessionId, DEFAULT_HOPS,
    DEFAULT_MAX_FRAME_LEN,
};

use device::{Device, Read, Wrote};
pub use metrics::{render as render_metrics, render_vttif};
pub use state::{Saved, SavedLink, StateError};
use tcp::TcpConn;

/// Frames read from one port, or datagram batches from the socket, per wake-up, so that one
/// busy source cannot starve the others.
pub const BATCH: usize = 64;

/// How long a hello from a daemon without a link here is remembered (see `Plane::strangers`).
const STRANGER_MEMORY: Duration = Duration::from_secs(5);

/// At most this many such hellos are remembered.
const MAX_STRANGERS: usize = 64;

/// MTU of guest ports.
pub const GUEST_MTU: u32 = 1500;

/// How a daemon is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Its machine name.
    pub name: Name,
    /// Host (with its Proxy) or Proxy.
    pub role: Role,
    /// The overlay's pre-shared key.
    pub key: OverlayKey,
    /// Where its UDP link socket is bound (its control API listens on the same address, TCP).
    pub listen: SocketAddr,
    /// Where its state is persisted.
    pub state_dir: PathBuf,
    /// The underlay's MTU: links send datagrams of at most this less the IP and UDP headers.
    pub underlay_mtu: usize,
    /// Offloads: TAP ports take and give checksum and TCP segmentation work (64 KiB
    /// super-frames), and the link socket uses UDP segmentation and receive offload. On
    /// by default; see "Offloads" above.
    pub offloads: bool,
    /// VTTIF's parameters: the update rate at which hosts ship their local matrices, and
    /// (at the Proxy) the inference's window and threshold ([`traffic`]). `None`: no
    /// counting, no updates, no inference (`vnetd --no-vttif`, to measure what VTTIF costs).
    pub vttif: Option<vttif::Params>,
}

/// A frame as the data plane carries it: plain, or (`offload`) behind the 10-byte
/// descriptor of the checksum or segmentation work left to do ([`crate::offload`]), which
/// is how links carry it too ([`crate::wire::Flags::OFFLOAD`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Carried<'a> {
    /// The descriptor, if any, and the frame.
    pub bytes: &'a [u8],
    /// Whether `bytes` begins with a descriptor.
    pub offload: bool,
}

impl<'a> Carried<'a> {
    /// A plain frame.
    fn plain(frame: &'a [u8]) -> Self {
        Carried {
            bytes: frame,
            offload: false,
        }
    }

    /// The work left to do, from the descriptor: `None` for a plain frame.
    ///
    /// # Errors
    /// A descriptor that does not parse.
    pub fn work(&self) -> Result<Option<Offload>, offload::OffloadError> {
        if !self.offload {
            return Ok(None);
        }
        let descriptor = self.bytes.get(..DESCRIPTOR_LEN).unwrap_or_default();
        Offload::decode(descriptor).map(Some)
    }

    /// Why the frame cannot be carried, by its length, whichever way it came in: shorter
    /// than an Ethernet header (`runt`), or longer than a plain frame may be, or one with
    /// offloads (`oversized`).
    fn length_problem(&self) -> Option<&'static str> {
        let len = self.eth().len();
        let max = if self.offload {
            MAX_OFFLOAD_FRAME
        } else {
            DEFAULT_MAX_FRAME_LEN
        };
        if len < crate::wire::ETH_HEADER_LEN {
            Some("runt")
        } else if len > max {
            Some("oversized")
        } else {
            None
        }
    }

    /// The Ethernet frame.
    pub fn eth(&self) -> &'a [u8] {
        if self.offload {
            self.bytes.get(DESCRIPTOR_LEN..).unwrap_or_default()
        } else {
            self.bytes
        }
    }
}

/// The longest frame with offloads a port or link may carry: what a 16-bit length field
/// takes with the descriptor in front.
const MAX_OFFLOAD_FRAME: usize = u16::MAX as usize - DESCRIPTOR_LEN;

/// What the control and metrics threads hand the data plane.
#[derive(Debug)]
pub enum Command {
    /// A request, with the channel its answer goes back on.
    Control {
        /// What is asked.
        request: Request,
        /// Where the answer goes.
        reply: mpsc::SyncSender<Response>,
    },
    /// A connection that a peer daemon opened for a TCP link (see [`tcp`]), with the bytes
    /// the control server had read past its preamble.
    TcpLink {
        /// The connection.
        stream: std::net::TcpStream,
        /// Bytes already read from it.
        buffered: Vec<u8>,
    },
}

/// Why a daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state directory could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The link socket could not be bound.
    #[error(transparent)]
    Udp(#[from] crate::io::udp::UdpError),
    /// VTTIF's parameters are out of range.
    #[error(transparent)]
    Vttif(#[from] vttif::ParamsError),
    /// Something else at the edge (the wake-up socket).
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// One end of one link.
#[derive(Debug)]
struct LinkEnd {
    name: Name,
    kind: LinkKind,
    /// Configured address of the peer.
    addr: Option<SocketAddr>,
    /// Where the peer was last heard from, or `addr`.
    remote: Option<SocketAddr>,
    tx: LinkTx,
    rx: LinkRx,
    peer: Peer,
    /// The link's handle in the table, once it has one.
    ingress: Option<IngressId>,
    /// The peer's current and previous session ids, as keys of `Plane::sessions`.
    sessions: [Option<u64>; 2],
    /// A TCP link's connection, when it has one.
    tcp: Option<TcpConn>,
    stats: LinkStats,
}

/// One port.
#[derive(Debug)]
struct Port {
    spec: PortSpec,
    dev: Option<Device>,
    error: Option<String>,
    ingress: Option<IngressId>,
    stats: PortStats,
    /// A recording in progress (`vnetctl record`).
    record: Option<record::Recorder>,
}

/// Frames sealed and waiting for one `sendmmsg`, each as a run of datagrams.
#[derive(Debug)]
struct Outbox {
    buf: Vec<u8>,
    used: usize,
    /// Destination, link slot, start and length in `buf`, and the length of each datagram
    /// but the last.
    items: Vec<(SocketAddr, usize, usize, usize, usize)>,
}

/// Room for [`BATCH`] full-size frames, each in two fragments, with headers, or 15
/// 64 KiB super-frames.
const OUTBOX_BYTES: usize = 1 << 20;

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            buf: vec![0; OUTBOX_BYTES],
            used: 0,
            items: Vec::with_capacity(BATCH),
        }
    }
}

/// Everything but the table, so that a decision borrowed from the table can be acted on.
#[derive(Debug)]
struct Plane {
    local: Local,
    udp: UdpSocket,
    /// Links by slot (a deleted link leaves `None`), and slots by peer name.
    links: Vec<Option<LinkEnd>>,
    link_slots: BTreeMap<Name, usize>,
    /// A peer's session id (current or previous) to its link slot.
    sessions: HashMap<u64, usize, RandomState>,
    /// The next sequence number of each link deleted in this session: one added again to
    /// the same peer goes on from there, never reusing a nonce of the same keys.
    spent_seqs: BTreeMap<Name, u64>,
    ports: Vec<Option<Port>>,
    port_slots: BTreeMap<Name, usize>,
    outbox: Outbox,
    control_buf: Vec<u8>,
    /// TCP connections whose first record has not told whose link they are.
    pending: Vec<TcpConn>,
    /// Authentic hellos from daemons this one has no link to: name, address, when.
    strangers: Vec<(Name, SocketAddr, Duration)>,
    /// Where a frame for a TCP link is sealed.
    tcp_buf: Vec<u8>,
    /// Where frames whose offloads are finished in software are cut.
    resolve_buf: Vec<u8>,
    max_datagram: usize,
    relayed_unicast: Traffic,
    relayed_group: Traffic,
    drops: BTreeMap<String, u64>,
}

/// A running daemon's state; [`Daemon::run`] is its data plane.
#[derive(Debug)]
pub struct Daemon {
    config: Config,
    table: Table,
    plane: Plane,
    saved: Saved,
    start: Instant,
    recv: Option<RecvBatch>,
    unix_batch: Option<FrameBatch>,
    /// One TCP record at a time, copied out of its connection.
    record: Vec<u8>,
    scratch: Vec<u8>,
    wake: UnixDatagram,
    syncer: state::Syncer,
    /// Traffic that entered the overlay here since the last update.
    matrix: traffic::LocalMatrix,
    /// The Proxy's inference service.
    vttif: Option<vttif::Service>,
    /// When the next update is due.
    next_update: Duration,
}

fn count(map: &mut BTreeMap<String, u64>, reason: &str) {
    match map.get_mut(reason) {
        Some(n) => *n = n.wrapping_add(1),
        None => {
            map.insert(reason.to_string(), 1);
        }
    }
}

/// Random bytes from the kernel (for challenges and jitter seeds); zeros only if
/// `/dev/urandom` cannot be read, which the caller cannot do anything about either.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read as _;
    let mut bytes = [0u8; N];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes
}

fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes())
}

fn mac_at(frame: &[u8], at: usize) -> Mac {
    let mut mac = [0u8; 6];
    if let Some(bytes) = frame.get(at..at + 6) {
        mac.copy_from_slice(bytes);
    }
    Mac(mac)
}

/// What one poll found ready.
#[derive(Debug)]
struct Ready {
    wake: bool,
    udp: bool,
    /// Readable ports, by slot.
    ports: Vec<usize>,
    /// TCP connections of links, by slot, with whether readable and writable.
    links: Vec<(usize, bool, bool)>,
    /// Readable pending TCP connections, by index.
    pending: Vec<usize>,
}

/// Where a frame came from.
#[derive(Debug, Clone, Copy)]
enum From {
    Port(usize),
    /// A link slot and the hop budget the frame arrived with.
    Link(usize, u8),
}

impl Daemon {
    /// Binds the link socket and restores the persisted state (links, rules, ports) of
    /// `config.state_dir`. Returns the daemon and the unix socket that wakes it (give a clone
    /// to every thread that sends it [`Command`]s).
    ///
    /// # Errors
    /// [`StartError`]: state directory, socket.
    pub fn start(config: Config) -> Result<(Daemon, UnixDatagram), StartError> {
        let mut saved = state::load(&config.state_dir, &config.name)?
            .unwrap_or_else(|| Saved::empty(config.name.clone()));
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let salt = u16::from_le_bytes(random_bytes());
        let previous = saved.session.and_then(SessionId::new);
        let session = SessionId::starting_at(since_epoch, salt, previous);
        saved.session = Some(session.get());
        state::save(&config.state_dir, &saved)?;
        let udp = UdpSocket::bind_with(
            config.listen,
            &UdpOptions {
                gso: config.offloads,
                gro: config.offloads,
                ..UdpOptions::default()
            },
        )?;
        // Bursts of 64 frames from many hosts at once must not overflow the socket.
        let _ = udp.set_recv_buffer(4 << 20);
        let _ = udp.set_send_buffer(4 << 20);
        let (wake_rx, wake_tx) = UnixDatagram::pair().map_err(|source| StartError::Io {
            what: "create the wake-up socket",
            source,
        })?;
        wake_rx
            .set_nonblocking(true)
            .and_then(|()| wake_tx.set_nonblocking(true))
            .map_err(|source| StartError::Io {
                what: "make the wake-up socket non-blocking",
                source,
            })?;
        let local = Local {
            overlay: config.key.clone(),
            name: config.name.clone(),
            session,
        };
        let max_datagram = udp_max_datagram(config.underlay_mtu, config.listen.is_ipv6())
            .clamp(crate::wire::MIN_DATAGRAM, crate::io::udp::MAX_DATAGRAM);
        let plane = Plane {
            local,
            udp,
            links: Vec::new(),
            link_slots: BTreeMap::new(),
            sessions: HashMap::with_hasher(RandomState::default()),
            spent_seqs: BTreeMap::new(),
            ports: Vec::new(),
            port_slots: BTreeMap::new(),
            outbox: Outbox::new(),
            control_buf: vec![0; 2048],
            pending: Vec::new(),
            strangers: Vec::new(),
            // A super-frame takes two records on a stream.
            tcp_buf: vec![0; 2 * (crate::wire::MAX_DATAGRAM + 64)],
            resolve_buf: Vec::new(),
            max_datagram,
            relayed_unicast: Traffic::default(),
            relayed_group: Traffic::default(),
            drops: BTreeMap::new(),
        };
        // With receive offload a buffer holds up to 64 KiB of datagrams.
        let slot = if config.offloads { 65_536 } else { 2048 };
        let recv = RecvBatch::new(BATCH, slot)?;
        let syncer = state::Syncer::start(&config.state_dir);
        let vttif = match (&config.role, config.vttif) {
            (Role::Proxy, Some(params)) => Some(vttif::Service::new(params)?),
            _ => None,
        };
        let mut daemon = Daemon {
            table: Table::new(config.role.clone(), config.name.clone()),
            config,
            plane,
            saved: saved.clone(),
            start: Instant::now(),
            recv: Some(recv),
            unix_batch: FrameBatch::new(BATCH, crate::io::tap::MAX_FRAME).ok(),
            record: Vec::new(),
            scratch: vec![0; crate::io::tap::MAX_FRAME + VNET_HDR_LEN],
            wake: wake_rx,
            syncer,
            matrix: traffic::LocalMatrix::default(),
            vttif,
            next_update: Duration::ZERO,
        };
        daemon.restore(&saved);
        info!(
            name = %daemon.config.name,
            session = %session,
            listen = %daemon.config.listen,
            links = daemon.plane.link_slots.len(),
            rules = saved.rules.len(),
            ports = daemon.plane.port_slots.len(),
            "started"
        );
        Ok((daemon, wake_tx))
    }

    /// Takes back what `saved` holds; what cannot be restored is logged and kept in the
    /// configuration (a port whose device cannot be opened is reported as not attached).
    fn restore(&mut self, saved: &Saved) {
        let now = self.now();
        for link in &saved.links {
            if let Err(e) = self.add_link(link.peer.clone(), link.kind, link.addr, now) {
                warn!(peer = %link.peer, "cannot restore link: {e}");
            }
        }
        for rule in &saved.rules {
            if let Err(e) = self.table.add_rule(rule.clone()) {
                warn!(?rule, "cannot restore rule: {e}");
            }
        }
        for spec in &saved.ports {
            self.attach_port(spec.clone());
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Runs the data plane until `stop` is set (check it after waking the daemon), serving
    /// `commands` as they come.
    pub fn run(&mut self, commands: &mpsc::Receiver<Command>, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let now = self.now();
            self.timers(now);
            let timeout = self
                .next_deadline()
                .map_or(Duration::from_millis(500), |t| t.saturating_sub(now))
                .min(Duration::from_millis(500));
            let ready = match self.wait(timeout) {
                Ok(ready) => ready,
                // A signal (the stop signal, say): look at the flag and go on.
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    warn!("poll: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if ready.wake {
                let mut byte = [0u8; 64];
                while self.wake.recv(&mut byte).is_ok() {}
                while let Ok(command) = commands.try_recv() {
                    match command {
                        Command::Control { request, reply } => {
                            let _ = reply.send(self.handle(request));
                        }
                        Command::TcpLink { stream, buffered } => {
                            match TcpConn::accepted(stream, &buffered) {
                                Ok(conn) => self.plane.pending.push(conn),
                                Err(e) => warn!("TCP link connection: {e}"),
                            }
                        }
                    }
                }
                // A handed-over connection may hold records already.
                self.serve_pending(&[], self.now());
            }
            if ready.udp {
                self.receive_datagrams();
            }
            for slot in ready.ports {
                self.read_port(slot);
            }
            let now = self.now();
            for (slot, readable, writable) in ready.links {
                self.link_tcp(slot, readable, writable, now);
            }
            if !self.plane.pending.is_empty() {
                self.serve_pending(&ready.pending, now);
            }
            self.plane.flush();
        }
        info!("stopping; state is saved, ports stay for the next start");
    }

    /// Polls the wake-up socket, the link socket, every attached port and every TCP
    /// connection; says which are ready.
    fn wait(&self, timeout: Duration) -> nix::Result<Ready> {
        let mut fds = vec![
            PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.plane.udp.as_std().as_fd(), PollFlags::POLLIN),
        ];
        let mut ports = Vec::new();
        for (slot, port) in self.plane.ports.iter().enumerate() {
            if let Some(dev) = port.as_ref().and_then(|p| p.dev.as_ref()) {
                fds.push(PollFd::new(dev.as_fd(), PollFlags::POLLIN));
                ports.push(slot);
            }
        }
        let interest = |conn: &TcpConn| {
            if conn.wants_write() {
                PollFlags::POLLIN | PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            }
        };
        let mut links = Vec::new();
        for (slot, link) in self.plane.links.iter().enumerate() {
            if let Some(conn) = link.as_ref().and_then(|l| l.tcp.as_ref()) {
                fds.push(PollFd::new(conn.as_fd(), interest(conn)));
                links.push(slot);
            }
        }
        for conn in &self.plane.pending {
            fds.push(PollFd::new(conn.as_fd(), interest(conn)));
        }
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(500);
        // Round up, so that a deadline 0.4 ms away is not polled for 0 ms in a loop.
        let ms = if timeout > Duration::from_millis(u64::try_from(ms).unwrap_or(0)) {
            ms + 1
        } else {
            ms
        };
        nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE),
        )?;
        let got = |fd: &PollFd, flags: PollFlags| fd.revents().is_some_and(|r| r.intersects(flags));
        let error = PollFlags::POLLERR | PollFlags::POLLHUP;
        let readable = |fd: &PollFd| got(fd, PollFlags::POLLIN | error);
        let writable = |fd: &PollFd| got(fd, PollFlags::POLLOUT | error);
        let (first, rest) = fds.split_at(2);
        let (port_fds, rest) = rest.split_at(ports.len());
        let (link_fds, pending_fds) = rest.split_at(links.len());
        Ok(Ready {
            wake: readable(&first[0]),
            udp: readable(&first[1]),
            ports: port_fds
                .iter()
                .zip(ports)
                .filter(|(fd, _)| readable(fd))
                .map(|(_, slot)| slot)
                .collect(),
            links: link_fds
                .iter()
                .zip(links)
                .filter(|(fd, _)| readable(fd) || writable(fd))
                .map(|(fd, slot)| (slot, readable(fd), writable(fd)))
                .collect(),
            pending: pending_fds
                .iter()
                .enumerate()
                .filter(|(_, fd)| readable(fd))
                .map(|(i, _)| i)
                .collect(),
        })
    }

    /// The earliest timer of any link.
    fn next_deadline(&self) -> Option<Duration> {
        // A host wakes for an update only when it has counted something; the Proxy always
        // evaluates at the update rate.
        let update = (self.config.vttif.is_some()
            && (self.vttif.is_some() || !self.matrix.is_empty()))
        .then_some(self.next_update);
        let recordings = self.plane.ports.iter().flatten();
        let recording = recordings
            .filter_map(|p| p.record.as_ref())
            .map(|r| r.until)
            .min();
        self.plane
            .links
            .iter()
            .flatten()
            .flat_map(|l| [l.peer.poll_timeout(), l.rx.poll_timeout()])
            .flatten()
            .chain(update)
            .chain(recording)
            .min()
    }

    /// Runs the timers that are due, and whatever they make the links send or report.
    fn timers(&mut self, now: Duration) {
        if now >= self.next_update {
            self.vttif_update(now);
        }
        for port in self.plane.ports.iter_mut().flatten() {
            if port.record.as_ref().is_some_and(|r| now >= r.until) {
                end_recording(port, "done");
            }
        }
        for slot in 0..self.plane.links.len() {
            let Some(link) = self.plane.links[slot].as_mut() else {
                continue;
            };
            let mut due = false;
            if link.peer.poll_timeout().is_some_and(|t| t <= now) {
                link.peer.handle_timeout(now);
                due = true;
            }
            if link.rx.poll_timeout().is_some_and(|t| t <= now) {
                link.rx.handle_timeout(now);
            }
            if due {
                self.drive(slot, now);
            }
        }
    }

    /// Sends what link `slot`'s liveness machine wants sent and acts on what it reports.
    fn drive(&mut self, slot: usize, now: Duration) {
        let plane = &mut self.plane;
        let Some(link) = plane.links.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut failed = false;
        while let Some(transmit) = link.peer.poll_transmit(now) {
            let buf = &mut plane.control_buf;
            let sealed = match transmit {
                Transmit::Hello => link.tx.hello(buf),
                Transmit::Keepalive { sent_at } => link.tx.keepalive(sent_at, 0, buf),
                Transmit::Echo { sent_at, probe_len } => {
                    link.tx.keepalive_echo(sent_at, probe_len, buf)
                }
            };
            failed |= send_control(&plane.udp, link, sealed, buf);
        }
        while let Some(event) = link.peer.poll_event() {
            match event {
                Event::Up { rtt } => {
                    self.table.link_up(link.name.clone());
                    link.ingress = self.table.ingress_id(&Ingress::Link(link.name.clone()));
                    link.stats.ups += 1;
                    info!(peer = %link.name, ?rtt, "link up");
                }
                Event::Down { reason } => {
                    self.table.link_down(&link.name);
                    link.stats.downs += 1;
                    warn!(peer = %link.name, %reason, "link down");
                }
                Event::Reconnect => {
                    link.tcp = None;
                    match link.addr.map(TcpConn::dial) {
                        Some(Ok(conn)) => link.tcp = Some(conn),
                        Some(Err(e)) => {
                            warn!(peer = %link.name, "dial: {e}");
                            failed = true;
                        }
                        None => {}
                    }
                }
            }
        }
        if failed {
            self.tcp_failed(slot, now);
        }
    }

    /// Link `slot`'s TCP connection failed: close it and tell the liveness machine.
    fn tcp_failed(&mut self, slot: usize, now: Duration) {
        if let Some(link) = self.plane.links.get_mut(slot).and_then(Option::as_mut) {
            link.tcp = None;
            count(&mut link.stats.drops, "connection-lost");
            link.peer.transport_failed(now);
        }
        self.drive(slot, now);
    }

    /// Link `slot`'s TCP connection is ready: finish its connect, write what waits, read
    /// and handle every complete record.
    fn link_tcp(&mut self, slot: usize, readable: bool, writable: bool, now: Duration) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut failed = false;
        if let Some(link) = self.plane.links.get_mut(slot).and_then(Option::as_mut) {
            if let Some(conn) = link.tcp.as_mut() {
                if writable && conn.connecting {
                    match conn.finish_connect() {
                        Ok(()) => link.peer.transport_connected(now),
                        Err(_) => failed = true,
                    }
                } else if writable {
                    failed |= conn.flush().is_err();
                }
                if readable && !conn.connecting {
                    failed |= conn.fill(&mut scratch).is_err();
                }
            }
        }
        self.scratch = scratch;
        if !failed {
            self.drive(slot, now);
        }
        // Records first: a peer that sent a last frame and closed gets it delivered.
        let mut record = std::mem::take(&mut self.record);
        loop {
            let next = self
                .plane
                .links
                .get_mut(slot)
                .and_then(Option::as_mut)
                .and_then(|l| l.tcp.as_mut())
                .map(|conn| conn.next_record(&mut record));
            match next {
                Some(Ok(true)) => self.record(slot, &mut record, now),
                Some(Ok(false)) | None => break,
                Some(Err(_)) => {
                    count(&mut self.plane.drops, "malformed-stream");
                    failed = true;
                    break;
                }
            }
        }
        self.record = record;
        if failed {
            self.tcp_failed(slot, now);
        }
    }

    /// One record of link `slot`'s TCP connection.
    fn record(&mut self, slot: usize, bytes: &mut [u8], now: Duration) {
        match Datagram::new_checked(bytes) {
            Ok(d) if d.msg_type() == MessageType::Hello => {
                self.hello(None, d.as_shared(), now, Some(slot));
            }
            Ok(d) => self.link_datagram(slot, None, d, now),
            Err(_) => count(&mut self.plane.drops, "malformed"),
        }
    }

    /// Reads the pending TCP connections (those at `ready`, indices into `Plane::pending`,
    /// from their sockets; all of them from what they buffered): one whose first record is
    /// an authentic hello from a peer this daemon has a TCP link to becomes that link's
    /// connection; any other first record closes it.
    fn serve_pending(&mut self, ready: &[usize], now: Duration) {
        let pending = std::mem::take(&mut self.plane.pending);
        for (i, mut conn) in pending.into_iter().enumerate() {
            let mut scratch = std::mem::take(&mut self.scratch);
            let filled = !ready.contains(&i) || conn.fill(&mut scratch).is_ok();
            self.scratch = scratch;
            if !filled {
                continue;
            }
            if conn.age() > tcp::HELLO_TIMEOUT {
                count(&mut self.plane.drops, "tcp-silent");
                continue;
            }
            let mut record = std::mem::take(&mut self.record);
            let first = conn.next_record(&mut record);
            let hello = match first {
                Ok(true) => Datagram::new_checked(&record[..])
                    .ok()
                    .filter(|d| d.msg_type() == MessageType::Hello)
                    .and_then(|d| open_hello(&self.plane.local, d).ok()),
                Ok(false) => {
                    self.record = record;
                    self.plane.pending.push(conn);
                    continue;
                }
                Err(_) => None,
            };
            let slot = hello.and_then(|h| self.plane.link_slots.get(h.sender()).copied());
            let link = slot.and_then(|s| self.plane.links.get_mut(s)?.as_mut());
            match (slot, link) {
                (Some(slot), Some(link)) if link.kind == LinkKind::Tcp => {
                    link.tcp = Some(conn);
                    link.peer.transport_connected(now);
                    self.record(slot, &mut record, now);
                    self.record = record;
                    // The rest of what it had buffered.
                    self.link_tcp(slot, false, false, now);
                }
                _ => {
                    self.record = record;
                    count(&mut self.plane.drops, "tcp-unauthenticated");
                }
            }
        }
    }

    /// Reads the link socket until it is empty (at most [`BATCH`] batches). A batch that
    /// came back less than full emptied the socket: no further call is made just to hear
    /// "nothing waiting", which would cost a frame's latency a system call.
    fn receive_datagrams(&mut self) {
        let Some(mut batch) = self.recv.take() else {
            return;
        };
        for _ in 0..BATCH {
            match self.plane.udp.recv_batch(&mut batch) {
                Ok(0) => break,
                Ok(n) => {
                    let now = self.now();
                    for _ in batch.iter().filter(|(meta, _)| meta.truncated) {
                        count(&mut self.plane.drops, "truncated");
                    }
                    for (source, bytes) in batch.datagrams_mut() {
                        self.datagram(source, bytes, now);
                    }
                    self.plane.flush();
                    if n < batch.slots() {
                        break;
                    }
                }
                Err(e) => {
                    warn!("receive: {e}");
                    break;
                }
            }
        }
        self.recv = Some(batch);
    }

    /// One datagram from `source`.
    fn datagram(&mut self, source: SocketAddr, bytes: &mut [u8], now: Duration) {
        let datagram = match Datagram::new_checked(bytes) {
            Ok(d) => d,
            Err(_) => return count(&mut self.plane.drops, "malformed"),
        };
        if datagram.msg_type() == MessageType::Hello {
            self.hello(Some(source), datagram.as_shared(), now, None);
            return;
        }
        let raw = datagram.raw_session();
        let Some(&slot) = self.plane.sessions.get(&raw) else {
            // A session this daemon has no hello for: if the datagram comes from a known
            // peer's address, that peer restarted or our hello to it was lost; ask again.
            let known = self.plane.links.iter().position(|l| {
                l.as_ref()
                    .is_some_and(|l| l.remote == Some(source) || l.addr == Some(source))
            });
            if let Some(slot) = known {
                if let Some(link) = self.plane.links[slot].as_mut() {
                    link.peer.hello_requested(now);
                }
                self.drive(slot, now);
            }
            return count(&mut self.plane.drops, "unknown-session");
        };
        self.link_datagram(slot, Some(source), datagram, now);
    }

    /// A datagram (not a hello) of link `slot`, from `source` over UDP or from its TCP
    /// connection.
    fn link_datagram(
        &mut self,
        slot: usize,
        source: Option<SocketAddr>,
        datagram: Datagram<&mut [u8]>,
        now: Duration,
    ) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut frame = None;
        if let Some(link) = self.plane.links.get_mut(slot).and_then(Option::as_mut) {
            match link.rx.open(datagram, now) {
                Ok(received) => {
                    if source.is_some() {
                        link.remote = source;
                    }
                    match received {
                        Received::Frame {
                            frame: f,
                            hops,
                            offload,
                        } => {
                            link.peer.handle_datagram(now);
                            let carried = Carried { bytes: f, offload };
                            link.stats.rx.count(carried.eth().len());
                            if let Some(problem) = carried.length_problem() {
                                count(&mut link.stats.drops, problem);
                            } else if let Some(dst) = scratch.get_mut(..f.len()) {
                                dst.copy_from_slice(f);
                                frame = Some((f.len(), hops, offload));
                            }
                        }
                        Received::Fragment => link.peer.handle_datagram(now),
                        Received::Keepalive { sent_at, probe_len } => {
                            link.stats.control_rx += 1;
                            link.peer.handle_keepalive(now, sent_at, probe_len);
                        }
                        Received::KeepaliveEcho { sent_at, .. } => {
                            link.stats.control_rx += 1;
                            link.peer.handle_echo(now, sent_at);
                        }
                        Received::Traffic(update) => {
                            link.stats.control_rx += 1;
                            link.peer.handle_datagram(now);
                            match self.vttif.as_mut() {
                                Some(service) => {
                                    if let Err(e) = service.receive(link.name.as_str(), update, now)
                                    {
                                        debug!(peer = %link.name, "traffic update: {e}");
                                        count(&mut link.stats.drops, "bad-traffic-update");
                                    }
                                }
                                None => count(&mut link.stats.drops, "traffic-update-not-proxy"),
                            }
                        }
                        Received::Hello(outcome) => {
                            link.stats.control_rx += 1;
                            link.tx.set_peer_session(outcome.session);
                            link.peer.handle_hello(now, &outcome);
                        }
                    }
                }
                Err(e @ (RxError::UnknownSession | RxError::WrongReceiver)) => {
                    count(&mut link.stats.drops, e.reason());
                    link.peer.hello_requested(now);
                }
                Err(e) => count(&mut link.stats.drops, e.reason()),
            }
        }
        self.drive(slot, now);
        if let Some((len, hops, offload)) = frame {
            let frame = Carried {
                bytes: &scratch[..len],
                offload,
            };
            self.forward(From::Link(slot, hops), frame);
        }
        self.scratch = scratch;
    }

    /// A hello: authenticated with the overlay key and the sender's name, then given to the
    /// sender's link if this daemon has one (and, for a TCP connection, if it is the link
    /// `on` the connection serves).
    fn hello(
        &mut self,
        source: Option<SocketAddr>,
        datagram: Datagram<&[u8]>,
        now: Duration,
        on: Option<usize>,
    ) {
        let hello = match open_hello(&self.plane.local, datagram) {
            Ok(hello) => hello,
            Err(e) => return count(&mut self.plane.drops, e.reason()),
        };
        let Some(&slot) = self.plane.link_slots.get(hello.sender()) else {
            // Remembered for a moment: the link is usually being configured at this end
            // too, and then answers at once instead of at the caller's next attempt.
            if let Some(source) = source {
                let strangers = &mut self.plane.strangers;
                strangers
                    .retain(|(name, _, at)| name != hello.sender() && now < *at + STRANGER_MEMORY);
                if strangers.len() < MAX_STRANGERS {
                    strangers.push((hello.sender().clone(), source, now));
                }
            }
            return count(&mut self.plane.drops, "unknown-peer");
        };
        if on.is_some_and(|on| on != slot) {
            return count(&mut self.plane.drops, "wrong-peer");
        }
        let plane = &mut self.plane;
        let Some(link) = plane.links.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match link.rx.accept_hello(&hello) {
            Ok(outcome) => {
                link.stats.control_rx += 1;
                if source.is_some() {
                    link.remote = source;
                }
                link.tx.set_peer_session(outcome.session);
                let raw = outcome.session.get();
                if link.sessions[0] != Some(raw) {
                    if let Some(old) = link.sessions[1].take() {
                        plane.sessions.remove(&old);
                    }
                    link.sessions = [Some(raw), link.sessions[0]];
                    plane.sessions.insert(raw, slot);
                }
                link.peer.handle_hello(now, &outcome);
            }
            Err(e) => count(&mut link.stats.drops, e.reason()),
        }
        self.drive(slot, now);
    }

    /// Reads up to [`BATCH`] frames from port `slot` and forwards them.
    fn read_port(&mut self, slot: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(mut batch) = self.unix_batch.take() {
            let read = self
                .plane
                .ports
                .get_mut(slot)
                .and_then(Option::as_mut)
                .and_then(|p| p.dev.as_mut())
                .and_then(|dev| dev.read_batch(&mut batch));
            match read {
                Some(Ok(n)) => {
                    for i in 0..n {
                        let Some(frame) = batch.get(i) else { continue };
                        let len = frame.len();
                        if let Some(dst) = scratch.get_mut(..len) {
                            dst.copy_from_slice(frame);
                            self.port_frame(slot, Carried::plain(&scratch[..len]));
                        }
                    }
                }
                Some(Err(e)) => warn!(slot, "unix port: {e}"),
                None => {}
            }
            self.unix_batch = Some(batch);
        }
        for _ in 0..BATCH {
            let Some(port) = self.plane.ports.get_mut(slot).and_then(Option::as_mut) else {
                break;
            };
            let Some(dev) = port.dev.as_mut() else {
                break;
            };
            match dev.read(&mut scratch) {
                Read::Frame { at, len, offload } => {
                    let bytes = &scratch[at..at + len];
                    self.port_frame(slot, Carried { bytes, offload });
                }
                Read::Empty => break,
                Read::Truncated => count(&mut port.stats.drops, "truncated"),
                Read::Failed(e) => {
                    warn!(port = %port.spec.name, "read: {e}");
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// One frame from port `slot`: the port's checks, then forwarding.
    fn port_frame(&mut self, slot: usize, frame: Carried<'_>) {
        let Some(port) = self.plane.ports.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        port.stats.rx.count(frame.eth().len());
        record_frame(port, frame.eth());
        if let Some(problem) = frame.length_problem() {
            return count(&mut port.stats.drops, problem);
        }
        let src = mac_at(frame.eth(), 6);
        if src.is_group() || (!port.spec.lan && !port.spec.macs.contains(&src)) {
            return count(&mut port.stats.drops, "source-guard");
        }
        self.forward(From::Port(slot), frame);
    }

    /// Decides and sends one frame.
    fn forward(&mut self, from: From, frame: Carried<'_>) {
        let ingress = match from {
            From::Port(slot) => self.plane.ports.get(slot).and_then(|p| p.as_ref()?.ingress),
            From::Link(slot, _) => {
                let link = self.plane.links.get_mut(slot).and_then(Option::as_mut);
                link.and_then(|l| {
                    if l.ingress.is_none() {
                        l.ingress = self.table.ingress_id(&Ingress::Link(l.name.clone()));
                    }
                    l.ingress
                })
            }
        };
        let Some(ingress) = ingress else {
            return count(&mut self.plane.drops, "unknown_ingress");
        };
        let hops = match from {
            From::Port(_) => Some(DEFAULT_HOPS),
            From::Link(_, arrived) => forward_hops(arrived),
        };
        let eth = frame.eth();
        let (dst, src) = (mac_at(eth, 0), mac_at(eth, 6));
        if matches!(from, From::Port(_)) && self.config.vttif.is_some() {
            self.matrix.count(src, dst, eth.len());
        }
        let decision = self.table.lookup_counted(ingress, src, dst, eth.len());
        let from_link = matches!(from, From::Link(..));
        match decision {
            Decision::Forward(out) => {
                if from_link && matches!(out, Out::Link(_)) {
                    self.plane.relayed_unicast.count(eth.len());
                }
                self.plane.send(out, frame, hops);
            }
            Decision::Flood(outs) => {
                if from_link && outs.iter().any(|o| matches!(o, Out::Link(_))) {
                    self.plane.relayed_group.count(eth.len());
                }
                for out in outs {
                    self.plane.send(out, frame, hops);
                }
            }
            Decision::Drop(reason) => count(&mut self.plane.drops, reason.label()),
        }
    }

    /// The update tick: a host ships its local matrix to its Proxy; the Proxy feeds its own
    /// to the inference and evaluates.
    fn vttif_update(&mut self, now: Duration) {
        let Some(params) = self.config.vttif else {
            return;
        };
        let interval = params.update_interval();
        self.next_update += interval;
        if self.next_update <= now {
            self.next_update = now + interval;
        }
        if let Some(service) = self.vttif.as_mut() {
            if !self.matrix.is_empty() {
                self.matrix.updates += 1;
            }
            service.record(now, &self.matrix.take());
            if let Some(change) = service.evaluate(now) {
                info!(
                    number = change.number,
                    edges = change.topology.edges.len(),
                    added = change.added.len(),
                    removed = change.removed.len(),
                    settle_ms = change.settle.as_millis(),
                    "application topology changed"
                );
            }
            return;
        }
        let Role::Host { proxy } = &self.config.role else {
            return;
        };
        let plane = &mut self.plane;
        let Some(&slot) = plane.link_slots.get(proxy) else {
            return;
        };
        let Some(link) = plane.links.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        // While the star link is down the counts wait for it.
        if !link.peer.is_up() {
            return;
        }
        let room = link.tx.max_datagram().min(plane.control_buf.len());
        let mut failed = false;
        for update in self
            .matrix
            .take_updates(room.saturating_sub(crate::wire::OVERHEAD))
        {
            let buf = &mut plane.control_buf;
            let sealed = link.tx.traffic(&update, buf);
            failed |= send_control(&plane.udp, link, sealed, buf);
        }
        if failed {
            self.tcp_failed(slot, now);
        }
    }

    /// Starts recording port `name` into `path` for `length`.
    fn start_recording(
        &mut self,
        name: &Name,
        path: &Path,
        length: Duration,
        now: Duration,
    ) -> Response {
        let error = |message: String| Response::Error { message };
        let Some(port) = self.plane.port_mut(name) else {
            return error(format!("no port {name}"));
        };
        if port.record.is_some() {
            return error(format!("port {name} is being recorded already"));
        }
        match record::Recorder::create(path, now + length) {
            Ok(r) => {
                port.record = Some(r);
                Response::Ok {
                    message: Some(format!(
                        "recording port {name} into {} for {:.1} s",
                        path.display(),
                        length.as_secs_f64()
                    )),
                }
            }
            Err(message) => error(message),
        }
    }

    /// Applies one control request.
    fn handle(&mut self, request: Request) -> Response {
        let now = self.now();
        let ok = |message: Option<String>| Response::Ok { message };
        let error = |message: String| Response::Error { message };
        let changed = match request {
            Request::Info => return Response::Info(self.info()),
            Request::ListInterfaces => {
                return Response::Interfaces {
                    ports: self.plane.port_infos(),
                }
            }
            Request::ListLinks => {
                return Response::Links {
                    links: self.plane.link_infos(),
                }
            }
            Request::ListRules => {
                return Response::Rules {
                    rules: self.table.rules().collect(),
                }
            }
            Request::Stats => return Response::Stats(Box::new(self.stats())),
            Request::Record { port, path, millis } => {
                return self.start_recording(&port, &path, Duration::from_millis(millis), now)
            }
            Request::StopRecord { port } => {
                return match self.plane.port_mut(&port) {
                    Some(p) => match p.record.take() {
                        Some(r) => ok(Some(r.finish())),
                        None => error(format!("port {port} is not being recorded")),
                    },
                    None => error(format!("no port {port}")),
                };
            }
            Request::AppTopology | Request::WatchTopology { .. } => {
                return match (&self.vttif, &self.config.role) {
                    (Some(service), _) => Response::AppTopology(Box::new(service.report(now))),
                    (None, Role::Host { proxy }) => error(format!(
                        "{} is a host: the application's topology is inferred at its Proxy; ask {proxy}",
                        self.config.name
                    )),
                    (None, Role::Proxy) => {
                        error("this Proxy runs without VTTIF (vnetd --no-vttif)".into())
                    }
                }
            }
            Request::AddLink { peer, kind, addr } => {
                match self.add_link(peer.clone(), kind, addr, now) {
                    Ok(message) => {
                        info!(%peer, ?kind, ?addr, "link added");
                        ok(message)
                    }
                    Err(message) => return error(message),
                }
            }
            Request::DeleteLink { peer } => match self.delete_link(&peer) {
                Ok(message) => ok(message),
                Err(message) => return error(message),
            },
            Request::AddRule { rule } => {
                if let Target::Link(peer) = &rule.target {
                    if !self.plane.link_slots.contains_key(peer) && *peer != self.config.name {
                        return error(format!(
                            "{} has no link to {peer}: add the link before rules that use it",
                            self.config.name
                        ));
                    }
                }
                match self.table.add_rule(rule) {
                    Ok(Some(old)) => ok(Some(format!("replaced the rule's target {old:?}"))),
                    Ok(None) => ok(None),
                    Err(e) => return error(e.to_string()),
                }
            }
            Request::DeleteRule { src, dst } => match self.table.delete_rule(&(src, dst)) {
                Some(_) => ok(None),
                None => {
                    return error(format!(
                        "{} has no rule matching ({src:?}, {dst:?})",
                        self.config.name
                    ))
                }
            },
            Request::SetConfigBound { millis } => {
                self.saved.config_bound_ms = Some(millis);
                ok(None)
            }
            Request::AttachPort { port } => {
                if let Err(message) = check_port(&port) {
                    return error(message);
                }
                if self.plane.port_slots.contains_key(&port.name) {
                    return error(format!(
                        "port {} is attached already (detach it first)",
                        port.name
                    ));
                }
                let name = port.name.clone();
                self.attach_port(port);
                let slot = self.plane.port_slots.get(&name).copied();
                let failed = slot
                    .and_then(|s| self.plane.ports[s].as_ref())
                    .and_then(|p| p.error.clone());
                if let Some(message) = failed {
                    // Nothing half-done stays behind.
                    self.remove_port(&name);
                    return error(message);
                }
                ok(None)
            }
            Request::DetachPort { name } => {
                if !self.remove_port(&name) {
                    return error(format!("{} has no port {name}", self.config.name));
                }
                ok(None)
            }
        };
        if let Err(e) = self.persist() {
            warn!("{e}");
            return error(format!("applied, but the state could not be saved: {e}"));
        }
        changed
    }

    fn info(&self) -> Info {
        let (role, proxy) = match &self.config.role {
            Role::Host { proxy } => ("host", Some(proxy.clone())),
            Role::Proxy => ("proxy", None),
        };
        Info {
            name: self.config.name.clone(),
            role: role.to_string(),
            proxy,
            session: self.plane.local.session.to_string(),
            listen: self.config.listen,
            config_bound_ms: self.saved.config_bound_ms,
            uptime_s: self.now().as_secs_f64(),
        }
    }

    fn stats(&self) -> Stats {
        let mut drops = self.plane.drops.clone();
        for reason in crate::forward::DropReason::ALL {
            let n = self.table.counters().drops(reason);
            if n > 0 {
                drops.insert(reason.label().to_string(), n);
            }
        }
        let infos = self.plane.link_infos();
        Stats {
            name: Some(self.config.name.clone()),
            ports: self
                .plane
                .ports
                .iter()
                .flatten()
                .map(|p| p.stats.clone())
                .collect(),
            links: self
                .plane
                .links
                .iter()
                .flatten()
                .map(|l| LinkStats {
                    info: infos.iter().find(|i| i.peer == l.name).cloned(),
                    ..l.stats.clone()
                })
                .collect(),
            rules: self
                .table
                .rule_traffic()
                .into_iter()
                .map(|(rule, frames, bytes)| (rule, Traffic { frames, bytes }))
                .collect(),
            relayed_unicast: self.plane.relayed_unicast,
            relayed_group: self.plane.relayed_group,
            drops,
            cache_hits: self.table.counters().hits,
            cache_misses: self.table.counters().misses,
            vttif_updates: self.matrix.updates,
        }
    }

    /// Adds the link to `peer`, or updates its address if it exists with this transport.
    fn add_link(
        &mut self,
        peer: Name,
        kind: LinkKind,
        addr: Option<SocketAddr>,
        now: Duration,
    ) -> Result<Option<String>, String> {
        let me = &self.config.name;
        if peer == *me {
            return Err(format!("{me} cannot have a link to itself"));
        }
        if let Some(&slot) = self.plane.link_slots.get(&peer) {
            let Some(link) = self.plane.links[slot].as_mut() else {
                return Err("internal: empty link slot".into());
            };
            if link.kind != kind {
                return Err(format!(
                    "{me} has a {:?} link to {peer} already: delete it first to change its transport",
                    link.kind
                ));
            }
            if addr.is_some() && link.addr != addr {
                link.addr = addr;
                link.remote = addr;
                link.peer.hello_requested(now);
                self.drive(slot, now);
                return Ok(Some(format!(
                    "the link existed; its address is now {addr:?}"
                )));
            }
            return Ok(Some("the link existed already".into()));
        }
        let initiative = match addr {
            None => Initiative::Passive,
            Some(_) => Initiative::for_link(&self.config.role, me, &peer, kind),
        };
        let config = PeerConfig::new(peer.clone(), kind, initiative).with_seed(random_u64());
        let liveness = Peer::new(config, now).map_err(|e| e.to_string())?;
        // A stream takes every frame whole.
        let max_datagram = match kind {
            LinkKind::Udp => self.plane.max_datagram,
            LinkKind::Tcp => crate::wire::MAX_DATAGRAM,
        };
        let mut tx =
            LinkTx::new(&self.plane.local, &peer, max_datagram).map_err(|e| e.to_string())?;
        if let Some(&seq) = self.plane.spent_seqs.get(&peer) {
            tx.continue_from(seq);
        }
        // Peers with offloads send super-frames of up to 64 KiB; plain frames over
        // DEFAULT_MAX_FRAME_LEN are dropped after reassembly (`Carried::length_problem`).
        let reassembly = ReassemblyConfig {
            max_frame_len: usize::from(u16::MAX),
            ..ReassemblyConfig::default()
        };
        let rx = LinkRx::new(&self.plane.local, &peer, reassembly);
        let link = LinkEnd {
            name: peer.clone(),
            kind,
            addr,
            remote: addr,
            tx,
            rx,
            peer: liveness,
            ingress: None,
            sessions: [None, None],
            tcp: None,
            stats: LinkStats::default(),
        };
        let slot = self.plane.links.len();
        self.plane.links.push(Some(link));
        // A hello from this peer that arrived before the link was configured here: answer it.
        if let Some(i) = self
            .plane
            .strangers
            .iter()
            .position(|(name, _, at)| *name == peer && now < *at + STRANGER_MEMORY)
        {
            let (_, source, _) = self.plane.strangers.swap_remove(i);
            if let Some(link) = self.plane.links[slot].as_mut() {
                if link.kind == LinkKind::Udp {
                    link.remote = link.remote.or(Some(source));
                    link.peer.hello_requested(now);
                }
            }
        }
        self.plane.link_slots.insert(peer, slot);
        self.drive(slot, now);
        Ok(None)
    }

    fn delete_link(&mut self, peer: &Name) -> Result<Option<String>, String> {
        let users: Vec<String> = self
            .table
            .rules()
            .filter(|r| r.target == Target::Link(peer.clone()))
            .map(|r| format!("({:?}, {:?})", r.src, r.dst))
            .collect();
        if !users.is_empty() {
            return Err(format!(
                "rules still send frames over the link to {peer}: {}; delete or move them first",
                users.join(", ")
            ));
        }
        let Some(slot) = self.plane.link_slots.remove(peer) else {
            return Ok(Some(format!("there was no link to {peer}")));
        };
        if let Some(link) = self.plane.links[slot].take() {
            self.plane
                .spent_seqs
                .insert(peer.clone(), link.tx.next_seq());
            for session in link.sessions.into_iter().flatten() {
                self.plane.sessions.remove(&session);
            }
        }
        self.table.link_down(peer);
        info!(%peer, "link deleted");
        Ok(None)
    }

    /// Opens a port's device and registers it; a port that fails to open is registered
    /// with its error (the caller of a fresh attach removes it again).
    fn attach_port(&mut self, spec: PortSpec) {
        let (dev, error) = match Device::open(&spec, self.config.offloads) {
            Ok(dev) => (Some(dev), None),
            Err(e) => {
                warn!(port = %spec.name, "cannot attach: {e}");
                (None, Some(format!("cannot attach port {}: {e}", spec.name)))
            }
        };
        let ingress = if dev.is_some() {
            self.table.attach_port(spec.name.clone());
            self.table.ingress_id(&Ingress::Port(spec.name.clone()))
        } else {
            None
        };
        if dev.is_some() {
            info!(port = %spec.name, kind = %spec.kind, "port attached");
        }
        let name = spec.name.clone();
        let port = Port {
            stats: PortStats {
                name: name.clone(),
                rx: Traffic::default(),
                tx: Traffic::default(),
                drops: BTreeMap::new(),
            },
            spec,
            dev,
            record: None,
            error,
            ingress,
        };
        let slot = self.plane.ports.len();
        self.plane.ports.push(Some(port));
        self.plane.port_slots.insert(name, slot);
    }

    /// Detaches and removes a port (its TAP device goes away); `false` if there is none.
    fn remove_port(&mut self, name: &Name) -> bool {
        let Some(slot) = self.plane.port_slots.remove(name) else {
            return false;
        };
        if let Some(port) = self.plane.ports[slot].take() {
            if let Some(dev) = port.dev {
                if let Err(e) = dev.remove() {
                    warn!(port = %name, "cannot remove the device: {e}");
                }
            }
        }
        self.table.detach_port(name);
        info!(port = %name, "port detached");
        true
    }

    /// Saves links, rules and ports.
    fn persist(&mut self) -> Result<(), StateError> {
        self.saved.links = self
            .plane
            .links
            .iter()
            .flatten()
            .map(|l| SavedLink {
                peer: l.name.clone(),
                kind: l.kind,
                addr: l.addr,
            })
            .collect();
        self.saved.rules = self.table.rules().collect();
        self.saved.ports = self
            .plane
            .ports
            .iter()
            .flatten()
            .map(|p| p.spec.clone())
            .collect();
        state::save(&self.config.state_dir, &self.saved)?;
        self.syncer.dirty();
        Ok(())
    }
}

/// Checks a port's specification before anything is created.
/// Adds a frame to `port`'s recording, if it has one (ending it if the file fails).
fn record_frame(port: &mut Port, eth: &[u8]) {
    if port.record.as_mut().is_some_and(|r| !r.frame(eth)) {
        end_recording(port, "write failed");
    }
}

/// Ends `port`'s recording, logging `why`.
fn end_recording(port: &mut Port, why: &str) {
    if let Some(r) = port.record.take() {
        info!(port = %port.spec.name, "recording {why}: {}", r.finish());
    }
}

/// Sends a sealed control message of `link` (from `buf`), counting what happens; true if
/// its TCP connection failed.
fn send_control(
    udp: &UdpSocket,
    link: &mut LinkEnd,
    sealed: Result<usize, crate::wire::TxError>,
    buf: &[u8],
) -> bool {
    match (sealed, link.kind, link.remote) {
        (Ok(len), LinkKind::Tcp, _) => match link.tcp.as_mut().map(|c| c.send(&buf[..len])) {
            Some(Ok(true)) => link.stats.control_tx += 1,
            Some(Ok(false)) => count(&mut link.stats.drops, "send-full"),
            Some(Err(_)) => return true,
            None => count(&mut link.stats.drops, "no-connection"),
        },
        (Ok(len), LinkKind::Udp, Some(dest)) => match udp.send_batch(&[(dest, &buf[..len])]) {
            Ok(1) => link.stats.control_tx += 1,
            Ok(_) => count(&mut link.stats.drops, "send-full"),
            Err(_) => count(&mut link.stats.drops, "send-failed"),
        },
        (Ok(_), LinkKind::Udp, None) => count(&mut link.stats.drops, "no-address"),
        (Err(_), _, _) => count(&mut link.stats.drops, "seal-failed"),
    }
    false
}

fn check_port(spec: &PortSpec) -> Result<(), String> {
    if spec.lan && !spec.macs.is_empty() {
        return Err("a LAN port has no source guard: give no MAC with --lan".into());
    }
    if !spec.lan && spec.macs.is_empty() {
        return Err(
            "a guest port needs its guest's MAC (its source guard); use --lan for a LAN port"
                .into(),
        );
    }
    if let Some(mac) = spec.macs.iter().find(|m| m.is_group()) {
        return Err(format!(
            "{mac} is a broadcast or multicast address, not a guest's"
        ));
    }
    match &spec.kind {
        PortKind::Tap { ifname, .. } | PortKind::Pcap { device: ifname, .. } => {
            crate::io::tap::validate_ifname(ifname).map_err(|e| e.to_string())
        }
        PortKind::Unix { .. } => Ok(()),
    }
}

impl Plane {
    /// The attached port named `name`.
    fn port_mut(&mut self, name: &Name) -> Option<&mut Port> {
        let slot = *self.port_slots.get(name)?;
        self.ports.get_mut(slot)?.as_mut()
    }

    /// Sends one frame out of `out`: a port's device, or sealed into the outbox for a link.
    fn send(&mut self, out: &Out, frame: Carried<'_>, hops: Option<u8>) {
        match out {
            Out::Port(name) => {
                let Some(&slot) = self.port_slots.get(name) else {
                    return count(&mut self.drops, "no-such-port");
                };
                let Some(port) = self.ports[slot].as_mut() else {
                    return;
                };
                let Some(dev) = port.dev.as_ref() else {
                    return count(&mut port.stats.drops, "not-attached");
                };
                match dev.write(frame, &mut self.resolve_buf) {
                    Wrote::Ok => {
                        port.stats.tx.count(frame.eth().len());
                        record_frame(port, frame.eth());
                    }
                    Wrote::Full => count(&mut port.stats.drops, "device-full"),
                    Wrote::Failed => count(&mut port.stats.drops, "write-failed"),
                    Wrote::BadOffload => count(&mut port.stats.drops, "bad-offload"),
                }
            }
            Out::Link(name) => {
                let Some(hops) = hops else {
                    return count(&mut self.drops, "hops-exhausted");
                };
                let Some(&slot) = self.link_slots.get(name) else {
                    return count(&mut self.drops, "no-such-link");
                };
                let need = match self.links[slot]
                    .as_ref()
                    .map(|l| l.tx.sealed_len(frame.bytes.len()))
                {
                    Some(Ok(need)) => need,
                    Some(Err(_)) if frame.offload => return self.send_resolved(out, frame, hops),
                    _ => return count(&mut self.drops, "unsendable"),
                };
                if self.outbox.used + need > self.outbox.buf.len()
                    || self.outbox.items.len() >= BATCH
                {
                    self.flush();
                }
                let Some(link) = self.links[slot].as_mut() else {
                    return;
                };
                let eth_len = frame.eth().len();
                if link.kind == LinkKind::Tcp {
                    let Some(conn) = link.tcp.as_mut().filter(|c| !c.connecting) else {
                        return count(&mut link.stats.drops, "no-connection");
                    };
                    let tcp_buf = &mut self.tcp_buf;
                    match link
                        .tx
                        .seal_frame(frame.bytes, frame.offload, hops, tcp_buf)
                    {
                        Ok(sealed) => match conn.send(&tcp_buf[..sealed.len]) {
                            Ok(true) => link.stats.tx.count(eth_len),
                            Ok(false) => count(&mut link.stats.drops, "send-full"),
                            // Noticed, and the connection closed, when it is next polled.
                            Err(_) => count(&mut link.stats.drops, "send-failed"),
                        },
                        Err(_) => count(&mut link.stats.drops, "seal-failed"),
                    }
                    return;
                }
                let Some(dest) = link.remote else {
                    return count(&mut link.stats.drops, "no-address");
                };
                let start = self.outbox.used;
                let Some(room) = self.outbox.buf.get_mut(start..) else {
                    return;
                };
                match link.tx.seal_frame(frame.bytes, frame.offload, hops, room) {
                    Ok(sealed) => {
                        link.stats.tx.count(eth_len);
                        let item = (dest, slot, start, sealed.len, sealed.stride);
                        self.outbox.items.push(item);
                        self.outbox.used += sealed.len;
                    }
                    Err(_) => count(&mut link.stats.drops, "seal-failed"),
                }
            }
        }
    }

    /// Sends a frame with offloads that `out` cannot carry whole (longer than a link's 64
    /// fragments take) as the plain frames its offloads make.
    fn send_resolved(&mut self, out: &Out, frame: Carried<'_>, hops: u8) {
        let Ok(Some(work)) = frame.work() else {
            return count(&mut self.drops, "bad-offload");
        };
        // Plain frames never use `resolve_buf` on their way out, so it can be lent here.
        let mut buf = std::mem::take(&mut self.resolve_buf);
        let resolved = offload::resolve(&work, frame.eth(), &mut buf, |plain| {
            self.send(out, Carried::plain(plain), Some(hops));
        });
        self.resolve_buf = buf;
        if resolved.is_err() {
            count(&mut self.drops, "bad-offload");
        }
    }

    /// Sends the outbox with as few `sendmmsg` calls as it takes.
    fn flush(&mut self) {
        if self.outbox.items.is_empty() {
            return;
        }
        let outbox = &self.outbox;
        let runs: Vec<Run<'_>> = outbox
            .items
            .iter()
            .map(|&(dest, _, start, len, stride)| Run {
                dest,
                bytes: &outbox.buf[start..start + len],
                stride,
            })
            .collect();
        let mut sent = 0;
        while sent < runs.len() {
            match self.udp.send_runs(&runs[sent..]) {
                Ok(0) => {
                    // The socket buffer is full: what is left is lost, as on any full link.
                    for &(_, slot, ..) in &outbox.items[sent..] {
                        if let Some(link) = self.links.get_mut(slot).and_then(Option::as_mut) {
                            count(&mut link.stats.drops, "send-full");
                        }
                    }
                    break;
                }
                Ok(n) => sent += n,
                Err(_) => {
                    if let Some(&(_, slot, ..)) = outbox.items.get(sent) {
                        if let Some(link) = self.links.get_mut(slot).and_then(Option::as_mut) {
                            count(&mut link.stats.drops, "send-failed");
                        }
                    }
                    sent += 1;
                }
            }
        }
        self.outbox.items.clear();
        self.outbox.used = 0;
    }

    fn link_infos(&self) -> Vec<LinkInfo> {
        let mut infos: Vec<LinkInfo> = self
            .links
            .iter()
            .flatten()
            .map(|l| LinkInfo {
                peer: l.name.clone(),
                kind: l.kind,
                addr: l.addr,
                remote: l.remote,
                state: match l.peer.state() {
                    State::Up => "up",
                    State::Down => "down",
                    State::Connecting => "connecting",
                }
                .to_string(),
                rtt_s: l.peer.rtt().smoothed().map(|d| d.as_secs_f64()),
                rtt_min_s: l.peer.rtt().min().map(|d| d.as_secs_f64()),
            })
            .collect();
        infos.sort_by(|a, b| a.peer.cmp(&b.peer));
        infos
    }

    fn port_infos(&self) -> Vec<PortInfo> {
        self.ports
            .iter()
            .flatten()
            .map(|p| PortInfo {
                spec: p.spec.clone(),
                attached: p.dev.is_some(),
                error: p.error.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_judged_by_their_ethernet_length_with_or_without_a_descriptor() {
        let bytes = vec![0u8; MAX_OFFLOAD_FRAME + DESCRIPTOR_LEN + 1];
        let plain = |len| Carried::plain(&bytes[..len]).length_problem();
        let offload = |len| {
            Carried {
                bytes: &bytes[..len],
                offload: true,
            }
            .length_problem()
        };
        assert_eq!(plain(13), Some("runt"));
        assert_eq!(plain(14), None);
        assert_eq!(plain(DEFAULT_MAX_FRAME_LEN), None);
        assert_eq!(plain(DEFAULT_MAX_FRAME_LEN + 1), Some("oversized"));
        // A descriptor and a piece of a header, as an authenticated peer could send it.
        assert_eq!(offload(DESCRIPTOR_LEN + 13), Some("runt"));
        assert_eq!(offload(4), Some("runt"));
        assert_eq!(offload(DESCRIPTOR_LEN + 14), None);
        assert_eq!(offload(DESCRIPTOR_LEN + MAX_OFFLOAD_FRAME), None);
        assert_eq!(
            offload(DESCRIPTOR_LEN + MAX_OFFLOAD_FRAME + 1),
            Some("oversized")
        );
    }
}
