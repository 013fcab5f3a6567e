//! The control API of a daemon: every VNET primitive (seed 004 §3.2: add and delete links and
//! rules, list interfaces, links and rules, set the configuration-time bound) plus attach and
//! detach port, statistics and the daemon's identity; the messages, their authentication and a
//! blocking client.
//!
//! # Transport and framing
//!
//! TCP, on the port the daemon's `HOST` line names (the same number as its UDP link socket;
//! TCP and UDP ports are separate). Every message is one line of JSON (UTF-8, `\n`-terminated,
//! at most [`MAX_LINE`] bytes). A connection carries any number of requests, each answered by
//! one response in order, so a tool that sends many primitives to one daemon (`vnetctl apply`)
//! pays the TCP handshake and the authentication once.
//!
//! # Authentication
//!
//! Holding the overlay's pre-shared key is being a member, for the control API as for links.
//! On accepting a connection the daemon sends a fresh random 16-byte challenge
//! (`{"challenge":"<32 hex digits>"}`); the client answers with
//! `{"proof":"<64 hex digits>"}`, [`OverlayKey::control_proof`] of the challenge (an HMAC with
//! the overlay key under a label of its own, so a proof is never a link key and vice versa).
//! A wrong proof gets `{"result":"error",...}` and the connection is closed; nothing else is
//! read before a right one. A challenge is never reused, so a recorded exchange cannot be
//! replayed.
//!
//! What this does not give: confidentiality, or integrity against an attacker on the path who
//! can inject into an established TCP stream — the same stance as the links, which
//! authenticate but do not encrypt. Where the control network is not trusted, carry the API
//! over SSH (`ssh -L`) as the papers' VNET did.
//!
//! # Semantics of the primitives
//!
//! - [`Request::AddLink`] and [`Request::DeleteLink`] are sent to *both* ends of a link (each
//!   daemon knows only its own links); each is idempotent: adding a link that exists updates
//!   its peer address, deleting one that does not exist says so and succeeds. A link still
//!   used by a rule cannot be deleted.
//! - [`Request::AddRule`] adds a rule or replaces the target of the rule with the same match
//!   (a route moves in one step); an `EDGE` rule needs its link. [`Request::DeleteRule`] of a
//!   match with no rule is an error.
//! - [`Request::AttachPort`] creates the port (for a TAP: the device, in the namespace given,
//!   with the guest's MAC, MTU 1500, up) and [`Request::DetachPort`] removes it.
//!
//! Every change is persisted by the daemon before it answers, so a daemon that restarts comes
//! back with it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{DstMatch, LinkKind, Mac, Name, Rule, SrcMatch};
use crate::wire::OverlayKey;

/// The default port of a daemon: its control API (TCP) and its links (UDP).
pub const DEFAULT_PORT: u16 = 5400;

/// The longest message line, in bytes, either way.
pub const MAX_LINE: usize = 1 << 20;

/// Bytes in an authentication challenge.
pub const CHALLENGE_LEN: usize = 16;

/// One request to a daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Who the daemon is ([`Response::Info`]).
    Info,
    /// Add the link to `peer` (or update its address). `addr` is where the peer's link socket
    /// is; without it this end waits for the peer to call (the Proxy's end of a star link).
    AddLink {
        /// The other end.
        peer: Name,
        /// The transport.
        kind: LinkKind,
        /// The peer's link socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<SocketAddr>,
    },
    /// Delete the link to `peer`.
    DeleteLink {
        /// The other end.
        peer: Name,
    },
    /// Add a rule, or replace the target of the rule with its match.
    AddRule {
        /// The rule.
        rule: Rule,
    },
    /// Delete the rule with this match.
    DeleteRule {
        /// Its source match.
        src: SrcMatch,
        /// Its destination match.
        dst: DstMatch,
    },
    /// The ports ([`Response::Interfaces`]).
    ListInterfaces,
    /// The links ([`Response::Links`]).
    ListLinks,
    /// The rules ([`Response::Rules`]).
    ListRules,
    /// Set the upper bound on configuration time (seed 004 §3.2), which VTTIF reads to pick
    /// its sampling and smoothing intervals.
    SetConfigBound {
        /// The bound, in milliseconds.
        millis: u64,
    },
    /// Attach a port.
    AttachPort {
        /// What to attach.
        port: PortSpec,
    },
    /// Detach (and remove) a port.
    DetachPort {
        /// Its name.
        name: Name,
    },
    /// Every counter ([`Response::Stats`]).
    Stats,
    /// The application's inferred topology and traffic matrix ([`Response::AppTopology`]):
    /// the Proxy only.
    AppTopology,
    /// Record port `port`'s frames, both directions, into a new pcap file `path` on the
    /// daemon's machine for `millis` ms (`vnetctl record`; see `daemon::record`).
    Record {
        /// The port.
        port: Name,
        /// The file to create.
        path: std::path::PathBuf,
        /// How long, in milliseconds.
        millis: u64,
    },
    /// End port `port`'s recording now.
    StopRecord {
        /// The port.
        port: Name,
    },
    /// The change stream: [`Response::AppTopology`] as soon as more than `after` changes have
    /// been declared, or after `timeout_ms` (at most [`MAX_WATCH_MS`]) with none. A client
    /// that asks again with the `changes` of each answer sees every change (the adaptation
    /// controller's subscription, `vnetctl app-topology --watch`).
    WatchTopology {
        /// The number of changes the client knows of.
        after: u64,
        /// How long to wait for one more.
        timeout_ms: u64,
    },
}

/// The longest a [`Request::WatchTopology`] waits.
pub const MAX_WATCH_MS: u64 = 60_000;

/// A daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Response {
    /// Done; `message` says what, when there is more to say than "done".
    Ok {
        /// E.g. "the link already existed; address updated".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Refused, and why; nothing changed.
    Error {
        /// What is wrong.
        message: String,
    },
    /// The daemon's identity.
    Info(Info),
    /// The daemon's ports.
    Interfaces {
        /// By name.
        ports: Vec<PortInfo>,
    },
    /// The daemon's links.
    Links {
        /// By peer name.
        links: Vec<LinkInfo>,
    },
    /// The daemon's rules, in match order.
    Rules {
        /// The rules.
        rules: Vec<Rule>,
    },
    /// Every counter.
    Stats(Box<Stats>),
    /// VTTIF's report.
    AppTopology(Box<vttif::Report>),
}

/// What a daemon is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// Its machine name.
    pub name: Name,
    /// `host` or `proxy`.
    pub role: String,
    /// A host's Proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Name>,
    /// Its current session id (hexadecimal).
    pub session: String,
    /// Where its link socket and control API listen.
    pub listen: SocketAddr,
    /// The configuration-time bound, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_bound_ms: Option<u64>,
    /// Seconds since it started.
    pub uptime_s: f64,
}

/// How a port reaches its guest(s).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum PortKind {
    /// A TAP device the daemon creates (persistent, so that the guest's interface survives a
    /// restart of the daemon), in the daemon's namespace or in `netns` (a path such as
    /// `/run/netns/NAME`).
    Tap {
        /// The interface's name.
        ifname: String,
        /// The namespace it lives in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<PathBuf>,
    },
    /// An existing interface, captured (promiscuous, inbound only) and injected into with
    /// libpcap: the papers' way, for any hypervisor or container. Detaching leaves the
    /// interface as it was.
    Pcap {
        /// The interface's name.
        device: String,
        /// The namespace it lives in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<PathBuf>,
    },
    /// A unix datagram socket bound at `path`, one frame per datagram (QEMU's `-netdev
    /// dgram`, the project's VMM): frames go to `peer` if given, else to whoever sent the
    /// first frame.
    Unix {
        /// Where the daemon binds.
        path: PathBuf,
        /// The guest's socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<PathBuf>,
    },
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortKind::Tap {
                ifname,
                netns: None,
            } => write!(f, "tap {ifname}"),
            PortKind::Tap {
                ifname,
                netns: Some(ns),
            } => write!(f, "tap {ifname} in {}", ns.display()),
            PortKind::Pcap {
                device,
                netns: None,
            } => write!(f, "pcap {device}"),
            PortKind::Pcap {
                device,
                netns: Some(ns),
            } => write!(f, "pcap {device} in {}", ns.display()),
            PortKind::Unix { path, peer: None } => write!(f, "unix {}", path.display()),
            PortKind::Unix {
                path,
                peer: Some(peer),
            } => write!(f, "unix {} to {}", path.display(), peer.display()),
        }
    }
}

/// A port to attach.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortSpec {
    /// The port's name, which `INTERFACE` rules refer to.
    pub name: Name,
    /// What it is.
    pub kind: PortKind,
    /// The guest's addresses. A guest port drops every frame whose source is not one of them
    /// (the source guard); a TAP gets the first as its own address.
    #[serde(default)]
    pub macs: Vec<Mac>,
    /// A LAN port (the Proxy's port on the user's network): many machines behind it, so no
    /// source guard; `macs` must be empty.
    #[serde(default)]
    pub lan: bool,
}

/// A port as a daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    /// How it was attached.
    pub spec: PortSpec,
    /// Whether its device is open (a port whose device could not be re-opened after a
    /// restart is configured but not attached; `error` says why).
    pub attached: bool,
    /// Why it is not attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A link as a daemon reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// The other end.
    pub peer: Name,
    /// The transport.
    pub kind: LinkKind,
    /// The peer's address as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// Where the peer's datagrams last came from (what this end sends to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<SocketAddr>,
    /// `connecting`, `down` or `up`.
    pub state: String,
    /// Smoothed round-trip time, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_s: Option<f64>,
    /// Smallest round-trip time seen, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_min_s: Option<f64>,
}

/// Frames and bytes one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Frames.
    pub frames: u64,
    /// Bytes of Ethernet frame (for links: the frames they carry, not the datagrams).
    pub bytes: u64,
}

impl Traffic {
    /// Counts one frame of `len` bytes.
    pub fn count(&mut self, len: usize) {
        self.frames = self.frames.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(len as u64);
    }
}

/// A port's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    /// The port.
    pub name: Name,
    /// Frames from the guest.
    pub rx: Traffic,
    /// Frames to the guest.
    pub tx: Traffic,
    /// Frames dropped at the port, by reason (`source-guard`, `oversized`, `runt`,
    /// `write-failed`, `truncated`).
    pub drops: BTreeMap<String, u64>,
}

/// A link's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkStats {
    /// The link's state, as [`LinkInfo`].
    pub info: Option<LinkInfo>,
    /// Data frames received (whole, after reassembly).
    pub rx: Traffic,
    /// Data frames sent.
    pub tx: Traffic,
    /// Control datagrams (hellos, keepalives, echoes) received.
    pub control_rx: u64,
    /// Control datagrams sent.
    pub control_tx: u64,
    /// Datagrams from this peer dropped, by reason ([`crate::wire::RxError::reason`]), and
    /// frames for it that could not be sent (`send-failed`, `no-address`, `seal-failed`).
    pub drops: BTreeMap<String, u64>,
    /// Times the link came up.
    pub ups: u64,
    /// Times it went down.
    pub downs: u64,
}

/// Every counter of a daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The daemon.
    pub name: Option<Name>,
    /// Per port.
    pub ports: Vec<PortStats>,
    /// Per link.
    pub links: Vec<LinkStats>,
    /// Per rule: the rule and the unicast frames and bytes it forwarded.
    pub rules: Vec<(Rule, Traffic)>,
    /// Unicast frames that came in over a link and went out over another (what a Proxy
    /// relays for hosts without a fast path between them).
    pub relayed_unicast: Traffic,
    /// Broadcast and multicast frames that came in over a link and went out over another.
    pub relayed_group: Traffic,
    /// Frames dropped by the forwarding decision, by reason
    /// ([`crate::forward::DropReason::label`]), and datagrams no link could claim
    /// (`malformed`, `unknown-peer`, `unknown-session`, `hops-exhausted`).
    pub drops: BTreeMap<String, u64>,
    /// Forwarding-cache hits.
    pub cache_hits: u64,
    /// Forwarding-cache misses.
    pub cache_misses: u64,
    /// VTTIF updates of the local traffic matrix: shipped to the Proxy (a host) or fed to
    /// its inference (the Proxy).
    #[serde(default)]
    pub vttif_updates: u64,
}

/// What went wrong talking to a daemon.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The address did not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// As given.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// No connection.
    #[error("cannot connect to the control API at {addr}: {source} (is vnetd running there?)")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The connection failed midway.
    #[error("control connection to {addr}: {source}")]
    Io {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The other side did not speak the protocol.
    #[error("control connection to {addr}: {what}")]
    Protocol {
        /// Where.
        addr: SocketAddr,
        /// What was wrong.
        what: String,
    },
    /// The daemon refused the key.
    #[error("{addr} refused our key: {message} (is the key file the overlay's?)")]
    Unauthorized {
        /// Where.
        addr: SocketAddr,
        /// What it said.
        message: String,
    },
    /// The daemon refused the request.
    #[error("{addr}: {message}")]
    Refused {
        /// Where.
        addr: SocketAddr,
        /// What it said.
        message: String,
    },
}

/// The first message of a connection, from the daemon.
#[derive(Debug, Serialize, Deserialize)]
pub struct Challenge {
    /// [`CHALLENGE_LEN`] random bytes, hexadecimal.
    pub challenge: String,
}

/// The client's answer to the challenge.
#[derive(Debug, Serialize, Deserialize)]
pub struct Proof {
    /// [`OverlayKey::control_proof`] of the challenge, hexadecimal.
    pub proof: String,
}

/// Reads an overlay key file: 64 hexadecimal digits (surrounding white space ignored).
///
/// # Errors
/// The file cannot be read or holds no key; the message names the file.
pub fn read_key_file(path: &std::path::Path) -> Result<OverlayKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    text.parse()
        .map_err(|e| format!("key file {}: {e}", path.display()))
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        use fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Bytes from hexadecimal; `None` if it is not an even number of hex digits.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() & 1 == 1 {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// Reads one line of at most [`MAX_LINE`] bytes (without its `\n`); `Ok(None)` at end of
/// stream.
///
/// # Errors
/// I/O errors, a line that is too long or not UTF-8 (`InvalidData`).
pub fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
    let n = io::Read::take(&mut *reader, limit).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') && line.len() > MAX_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message longer than {MAX_LINE} bytes"),
        ));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "message is not UTF-8"))
}

/// Writes `value` as one JSON line.
///
/// # Errors
/// I/O errors.
pub fn write_line(writer: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    let mut text = serde_json::to_vec(value).map_err(io::Error::other)?;
    text.push(b'\n');
    writer.write_all(&text)?;
    writer.flush()
}

/// An authenticated connection to one daemon's control API.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`), answers the challenge with `key`, and waits for the
    /// daemon to accept. Every read and write then times out after `timeout`.
    ///
    /// # Errors
    /// [`ControlError::Resolve`], [`ControlError::Connect`], [`ControlError::Unauthorized`],
    /// [`ControlError::Protocol`], [`ControlError::Io`].
    pub fn connect(
        addr: &str,
        key: &OverlayKey,
        timeout: Duration,
    ) -> Result<Client, ControlError> {
        let resolved = addr
            .to_socket_addrs()
            .and_then(|mut it| {
                it.next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
            })
            .map_err(|source| ControlError::Resolve {
                addr: addr.to_string(),
                source,
            })?;
        Client::connect_addr(resolved, key, timeout)
    }

    /// [`Client::connect`] to a resolved address.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn connect_addr(
        addr: SocketAddr,
        key: &OverlayKey,
        timeout: Duration,
    ) -> Result<Client, ControlError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|source| ControlError::Connect { addr, source })?;
        let io_err = |source| ControlError::Io { addr, source };
        stream.set_nodelay(true).map_err(io_err)?;
        stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
        stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        let mut client = Client {
            addr,
            reader: BufReader::new(stream),
            writer,
        };
        let challenge: Challenge = client.receive()?;
        let bytes = unhex(&challenge.challenge)
            .filter(|b| b.len() == CHALLENGE_LEN)
            .ok_or_else(|| ControlError::Protocol {
                addr,
                what: "the challenge is not 16 bytes of hexadecimal".into(),
            })?;
        let proof = Proof {
            proof: hex(&key.control_proof(&bytes)),
        };
        write_line(&mut client.writer, &proof).map_err(io_err)?;
        match client.receive::<Response>()? {
            Response::Ok { .. } => Ok(client),
            Response::Error { message } => Err(ControlError::Unauthorized { addr, message }),
            other => Err(ControlError::Protocol {
                addr,
                what: format!("unexpected answer to the proof: {other:?}"),
            }),
        }
    }

    /// The daemon's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `request` and returns the daemon's answer; a [`Response::Error`] becomes
    /// [`ControlError::Refused`].
    ///
    /// # Errors
    /// [`ControlError::Refused`], [`ControlError::Io`], [`ControlError::Protocol`].
    pub fn call(&mut self, request: &Request) -> Result<Response, ControlError> {
        write_line(&mut self.writer, request).map_err(|source| ControlError::Io {
            addr: self.addr,
            source,
        })?;
        match self.receive::<Response>()? {
            Response::Error { message } => Err(ControlError::Refused {
                addr: self.addr,
                message,
            }),
            response => Ok(response),
        }
    }

    fn receive<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T, ControlError> {
        let addr = self.addr;
        let line = read_line(&mut self.reader)
            .map_err(|source| ControlError::Io { addr, source })?
            .ok_or_else(|| ControlError::Protocol {
                addr,
                what: "the daemon closed the connection".into(),
            })?;
        serde_json::from_str(&line).map_err(|e| ControlError::Protocol {
            addr,
            what: format!("bad message ({e}): {line:.200}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json() {
        let requests = [
            Request::Info,
            Request::AddLink {
                peer: "host2".parse().unwrap(),
                kind: LinkKind::Udp,
                addr: Some("10.0.0.2:5400".parse().unwrap()),
            },
            Request::DeleteRule {
                src: SrcMatch::Any,
                dst: DstMatch::None,
            },
            Request::AttachPort {
                port: PortSpec {
                    name: "vm1".parse().unwrap(),
                    kind: PortKind::Tap {
                        ifname: "eth0".into(),
                        netns: Some("/run/netns/g1".into()),
                    },
                    macs: vec!["02:56:4e:00:00:01".parse().unwrap()],
                    lan: false,
                },
            },
        ];
        for request in requests {
            let text = serde_json::to_string(&request).unwrap();
            let back: Request = serde_json::from_str(&text).unwrap();
            assert_eq!(back, request, "{text}");
        }
        let text = r#"{"op":"add-link","peer":"proxy","kind":"udp"}"#;
        assert!(matches!(
            serde_json::from_str::<Request>(text).unwrap(),
            Request::AddLink { addr: None, .. }
        ));
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        for text in [
            "",
            "{}",
            r#"{"op":"launch-missiles"}"#,
            r#"{"op":"add-link","peer":"-bad","kind":"udp"}"#,
            r#"{"op":"add-rule","rule":{"src":{"match":"is","mac":"zz"}}}"#,
        ] {
            assert!(serde_json::from_str::<Request>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00ab10").unwrap(), vec![0, 0xab, 0x10]);
        assert!(unhex("0").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn long_lines_are_refused() {
        let long = vec![b'x'; MAX_LINE + 10];
        let mut reader = BufReader::new(&long[..]);
        assert!(read_line(&mut reader).is_err());
        let mut reader = BufReader::new(&b"abc\ndef"[..]);
        assert_eq!(read_line(&mut reader).unwrap().unwrap(), "abc");
        assert_eq!(read_line(&mut reader).unwrap().unwrap(), "def");
        assert!(read_line(&mut reader).unwrap().is_none());
    }
}
