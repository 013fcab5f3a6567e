//! Capture: libpcap on one interface, vnetd's link datagrams only, headers only, kernel
//! timestamps, parsed at once into [`Record`]s that wait in a bounded [`Ring`].
//!
//! - **Filter**: a BPF program `udp and (port P1 or port P2 ...)` on vnetd's link ports
//!   ([`CaptureConfig::ports`], 5400 by default), so the kernel hands over nothing else.
//! - **Headers only**: the snaplen ([`CaptureConfig::snaplen`], by default
//!   [`SNAPLEN_IPV4`] = 14 + 20 + 8 + 24 = 66 bytes) ends where vnetd's header does for
//!   IPv4 without options; the parser copies header fields and drops the bytes. Not one
//!   byte of a guest frame is captured (a larger snaplen, for IPv6 or VLANs, would take a few
//!   bytes of the payload, which vnetd encrypts, and which the parser never reads).
//! - **Timestamps**: the kernel's, taken when the packet crosses the packet tap (after the
//!   qdisc on send, before the stack on receive), at nanosecond precision where libpcap
//!   offers it (microseconds otherwise, [`CaptureStats::nanosecond`]). Immediate mode, so
//!   packets are not held back to fill a buffer (their timestamps would not change, but the
//!   ring would be fed late).
//! - **Bounded**: a thread reads the capture and pushes records into a [`Ring`] of
//!   [`CaptureConfig::ring_records`] records; when the reader falls behind, records are
//!   dropped by [`CaptureConfig::policy`] and counted, and the kernel's own drops (its
//!   buffer, [`CaptureConfig::buffer_bytes`]) are counted too. Memory is bounded by the ring
//!   (about 80 bytes a record) and the kernel buffer, whatever the traffic does.
//!
//! Batching (GSO/GRO): see [`crate::record`]; a packet that stands for a batch of datagrams
//! is expanded into one record per datagram, and [`CaptureStats::batched_packets`] counts
//! such packets, whose records share one timestamp.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::{parse_packet, LinkType, ParseError, Record};
use crate::ring::{DropPolicy, Ring};

/// vnetd's default port.
pub const DEFAULT_PORT: u16 = 5400;
/// A snaplen that ends with vnetd's header over Ethernet and IPv4 without options.
pub const SNAPLEN_IPV4: u32 = 14 + 20 + 8 + 24;
/// A snaplen that ends with vnetd's header over Ethernet and IPv6 without extension headers.
pub const SNAPLEN_IPV6: u32 = 14 + 40 + 8 + 24;

/// What to capture, and how much to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureConfig {
    /// The interface, e.g. the host's underlay `eth0`.
    pub interface: String,
    /// vnetd's link ports (source or destination), [`DEFAULT_PORT`] by default.
    pub ports: Vec<u16>,
    /// This host's addresses, which tell sent from received. Empty: the interface's own
    /// addresses as libpcap lists them (in the caller's network namespace).
    pub local: Vec<IpAddr>,
    /// Bytes captured of each packet ([`SNAPLEN_IPV4`] by default).
    pub snaplen: u32,
    /// Records the ring holds.
    pub ring_records: usize,
    /// What a full ring drops.
    pub policy: DropPolicy,
    /// The kernel's capture buffer.
    pub buffer_bytes: u32,
    /// How long one read waits for a packet before the thread checks whether to stop.
    pub poll: Duration,
}

impl CaptureConfig {
    /// The defaults for `interface`: port 5400, the interface's addresses, headers only,
    /// 262 144 records (some 20 MB; a minute of a saturated 10 Mbit/s link's datagrams), drop
    /// oldest, a 4 MiB kernel buffer, 100 ms polls.
    pub fn new(interface: impl Into<String>) -> Self {
        CaptureConfig {
            interface: interface.into(),
            ports: vec![DEFAULT_PORT],
            local: Vec::new(),
            snaplen: SNAPLEN_IPV4,
            ring_records: 1 << 18,
            policy: DropPolicy::DropOldest,
            buffer_bytes: 4 << 20,
            poll: Duration::from_millis(100),
        }
    }

    /// The BPF filter expression for [`CaptureConfig::ports`].
    pub fn filter(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(|p| format!("port {p}")).collect();
        if ports.is_empty() {
            "udp".to_owned()
        } else {
            format!("udp and ({})", ports.join(" or "))
        }
    }
}

/// Why a capture could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// libpcap refused: no such interface, no permission (needs `CAP_NET_RAW`), a bad filter.
    #[error("libpcap on {interface}: {what}: {source}")]
    Pcap {
        /// The interface.
        interface: String,
        /// The step that failed.
        what: &'static str,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The interface's link type is not one Wren parses.
    #[error("{interface}: link type {dlt} is not Ethernet, Linux cooked or raw IP")]
    LinkType {
        /// The interface.
        interface: String,
        /// libpcap's data-link type.
        dlt: i32,
    },
    /// A configuration that cannot work.
    #[error("bad capture configuration: {0}")]
    Config(&'static str),
    /// The capture thread could not be started.
    #[error("spawn the capture thread: {0}")]
    Spawn(std::io::Error),
}

/// Counters of a capture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStats {
    /// Packets libpcap handed over.
    pub packets: u64,
    /// Records made (a batch makes several).
    pub records: u64,
    /// Packets that stood for a batch of datagrams (GSO/GRO).
    pub batched_packets: u64,
    /// Packets that were not vnetd datagrams of this host, by reason ([`reason`]).
    pub parse_errors: BTreeMap<String, u64>,
    /// Records dropped because the ring was full.
    pub ring_dropped: u64,
    /// Packets the kernel dropped (its buffer was full), as libpcap last reported.
    pub kernel_dropped: u64,
    /// Packets the interface dropped, as libpcap last reported.
    pub if_dropped: u64,
    /// Whether timestamps have nanosecond precision (else microseconds).
    pub nanosecond: bool,
    /// The error that stopped the capture thread, if one did.
    pub failed: Option<String>,
}

/// A short stable label of a parse error, for counters.
pub fn reason(e: &ParseError) -> &'static str {
    match e {
        ParseError::Truncated { .. } => "truncated",
        ParseError::NotIp(_) => "not_ip",
        ParseError::NotUdp(_) => "not_udp",
        ParseError::IpFragment => "ip_fragment",
        ParseError::BadLength { .. } => "bad_length",
        ParseError::NotLocal { .. } => "not_local",
        ParseError::BadVersion(_) => "bad_version",
        ParseError::BadType(_) => "bad_type",
        ParseError::Zero(_) => "zero_field",
        ParseError::BadBatch { .. } => "bad_batch",
    }
}

#[derive(Debug)]
struct Shared {
    ring: Ring<Record>,
    stats: CaptureStats,
}

/// A running capture: a thread that reads packets into the ring until stopped (or dropped).
#[derive(Debug)]
pub struct Capture {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding the lock leaves counters and records, which stay usable.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// libpcap's timestamp (seconds and a sub-second part in µs, or ns with nanosecond
/// precision) in ns since the epoch.
fn timestamp_ns(sec: i64, sub: i64, nano: bool) -> i64 {
    let sub = if nano { sub } else { sub.saturating_mul(1000) };
    sec.saturating_mul(1_000_000_000).saturating_add(sub)
}

impl Capture {
    /// Opens the capture on `config.interface` (in the calling thread's network namespace)
    /// and starts its reading thread.
    ///
    /// # Errors
    /// [`CaptureError`] if libpcap cannot open the interface or install the filter, or the
    /// interface is not of a link type Wren parses.
    pub fn start(config: &CaptureConfig) -> Result<Capture, CaptureError> {
        let iface = config.interface.clone();
        let pcap_err = |what| {
            let interface = iface.clone();
            move |source| CaptureError::Pcap {
                interface,
                what,
                source,
            }
        };
        let snaplen =
            i32::try_from(config.snaplen).map_err(|_| CaptureError::Config("snaplen too large"))?;
        let buffer = i32::try_from(config.buffer_bytes)
            .map_err(|_| CaptureError::Config("kernel buffer too large"))?;
        let timeout = i32::try_from(config.poll.as_millis().max(1))
            .map_err(|_| CaptureError::Config("poll interval too long"))?;
        if snaplen < 42 {
            return Err(CaptureError::Config(
                "a snaplen under 42 bytes cannot hold a vnetd header",
            ));
        }
        let local: Vec<IpAddr> = if config.local.is_empty() {
            pcap::Device::list()
                .map_err(pcap_err("list devices"))?
                .into_iter()
                .filter(|d| d.name == config.interface)
                .flat_map(|d| d.addresses.into_iter().map(|a| a.addr))
                .collect()
        } else {
            config.local.clone()
        };
        if local.is_empty() {
            return Err(CaptureError::Config(
                "no local address known (the interface has none; give CaptureConfig::local)",
            ));
        }
        let inactive = || {
            pcap::Capture::from_device(config.interface.as_str()).map(|c| {
                c.snaplen(snaplen)
                    .immediate_mode(true)
                    .promisc(false)
                    .timeout(timeout)
                    .buffer_size(buffer)
                    .tstamp_type(pcap::TimestampType::Host)
            })
        };
        // Nanosecond timestamps where libpcap has them, microseconds otherwise.
        let (cap, nano) = match inactive()
            .map_err(pcap_err("open"))?
            .precision(pcap::Precision::Nano)
            .open()
        {
            Ok(cap) => (cap, true),
            Err(_) => (
                inactive()
                    .map_err(pcap_err("open"))?
                    .open()
                    .map_err(pcap_err("activate"))?,
                false,
            ),
        };
        // Non-blocking reads, and poll(2) with a timeout in between: a blocking read may
        // never return on an idle interface (libpcap's TPACKET_V3 waits for a block), and
        // the thread must wake to stop.
        let mut cap = cap.setnonblock().map_err(pcap_err("set non-blocking"))?;
        cap.filter(&config.filter(), true)
            .map_err(pcap_err("install the filter"))?;
        let dlt = cap.get_datalink().0;
        let link = LinkType::from_dlt(dlt).ok_or(CaptureError::LinkType {
            interface: config.interface.clone(),
            dlt,
        })?;
        let poll_ms = timeout;
        let shared = Arc::new(Mutex::new(Shared {
            ring: Ring::new(config.ring_records, config.policy),
            stats: CaptureStats {
                nanosecond: nano,
                ..CaptureStats::default()
            },
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("wren-capture-{}", config.interface))
                .spawn(move || run(cap, link, nano, poll_ms, &local, &shared, &stop))
                .map_err(CaptureError::Spawn)?
        };
        Ok(Capture {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// Takes the records captured since the last call, oldest first.
    pub fn drain(&self) -> Vec<Record> {
        lock(&self.shared).ring.drain()
    }

    /// The counters so far.
    pub fn stats(&self) -> CaptureStats {
        let s = lock(&self.shared);
        let mut stats = s.stats.clone();
        stats.ring_dropped = s.ring.dropped();
        stats
    }

    /// Stops the thread and returns the last records and the final counters.
    pub fn stop(mut self) -> (Vec<Record>, CaptureStats) {
        self.halt();
        (self.drain(), self.stats())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread only returns; a panic in it is recorded as a failure.
            if thread.join().is_err() {
                lock(&self.shared).stats.failed = Some("the capture thread panicked".into());
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(
    mut cap: pcap::Capture<pcap::Active>,
    link: LinkType,
    nano: bool,
    poll_ms: i32,
    local: &[IpAddr],
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
) {
    use std::os::fd::AsRawFd;
    let fd = cap.as_raw_fd();
    let is_local = |ip: IpAddr| local.contains(&ip);
    let mut since_stats = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let result = match cap.next_packet() {
            Ok(packet) => {
                // `time_t` and `suseconds_t` are i64 here but narrower on some platforms.
                #[allow(clippy::useless_conversion)]
                let t_ns = timestamp_ns(
                    i64::from(packet.header.ts.tv_sec),
                    i64::from(packet.header.ts.tv_usec),
                    nano,
                );
                Some(parse_packet(
                    link,
                    packet.data,
                    packet.header.len,
                    t_ns,
                    is_local,
                ))
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing to read: wait for the descriptor (or the poll interval).
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the capture's descriptor, which `cap` keeps
                // open for the whole call.
                let _ = unsafe { libc::poll(&mut pfd, 1, poll_ms) };
                None
            }
            Err(e) => {
                lock(shared).stats.failed = Some(e.to_string());
                return;
            }
        };
        since_stats += 1;
        let kernel = if since_stats >= 1024 || result.is_none() {
            since_stats = 0;
            cap.stats().ok()
        } else {
            None
        };
        let mut s = lock(shared);
        if let Some(k) = kernel {
            s.stats.kernel_dropped = u64::from(k.dropped);
            s.stats.if_dropped = u64::from(k.if_dropped);
        }
        match result {
            None => {}
            Some(Ok(packet)) => {
                s.stats.packets += 1;
                if packet.count > 1 {
                    s.stats.batched_packets += 1;
                }
                for r in packet.records() {
                    s.stats.records += 1;
                    s.ring.push(r);
                }
            }
            Some(Err(e)) => {
                s.stats.packets += 1;
                *s.stats
                    .parse_errors
                    .entry(reason(&e).to_owned())
                    .or_insert(0) += 1;
            }
        }
    }
    if let Ok(k) = cap.stats() {
        let mut s = lock(shared);
        s.stats.kernel_dropped = u64::from(k.dropped);
        s.stats.if_dropped = u64::from(k.if_dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_names_every_port() {
        let mut c = CaptureConfig::new("eth0");
        assert_eq!(c.filter(), "udp and (port 5400)");
        c.ports.push(5401);
        assert_eq!(c.filter(), "udp and (port 5400 or port 5401)");
        c.ports.clear();
        assert_eq!(c.filter(), "udp");
    }

    #[test]
    fn timestamps_in_both_precisions() {
        assert_eq!(timestamp_ns(2, 5, true), 2_000_000_005);
        assert_eq!(timestamp_ns(2, 5, false), 2_000_005_000);
    }

    #[test]
    fn a_missing_interface_is_an_error() {
        let mut c = CaptureConfig::new("wren-no-such-if0");
        c.local = vec!["10.0.0.1".parse().unwrap()];
        assert!(Capture::start(&c).is_err());
    }
}
