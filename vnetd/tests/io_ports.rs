//! Tests of the daemon's port kinds besides plain TAPs: persistent TAPs
//! (`vnetd::io::tap`), pcap ports (`vnetd::io::pcap`) and unix datagram ports
//! (`vnetd::io::unix`).
//!
//! The TAP and pcap tests need root (they create network namespaces), hence `#[ignore]`; the
//! e2e tier runs them with `cargo test -p vnetd --test io_ports -- --ignored`. Each makes its
//! own namespaces, named `vnio-<pid>-<tag>`, and a guard deletes them when the test ends,
//! also when it fails. The unix tests need nothing but a temporary directory and run in the
//! fast tier.

mod common;
use common::{poll_readable, tcp_stream, Netns, Pump};

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::{SocketAddr as StdUnixAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vnetd::io::pcap::{PcapError, PcapPort};
use vnetd::io::tap::{LinkSettings, Tap, TapError, MAX_FRAME};
use vnetd::io::unix::{FrameBatch, UnixError, UnixPeer, UnixPort};
use vnetd::model::Mac;
use vnetd::offload::{Gso, Offload, VNET_HDR_LEN};

const TAP_MAC: Mac = Mac([0x02, 0x56, 0x4e, 0x20, 0x00, 0x01]);
const PEER_MAC: Mac = Mac([0x02, 0x56, 0x4e, 0x20, 0x00, 0x02]);
const OTHER_MAC: Mac = Mac([0x02, 0x56, 0x4e, 0x20, 0x00, 0x03]);

fn ethertype(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[12], frame[13]])
}

/// An ARP request from `PEER_MAC`/`from` asking for `target`.
fn arp_request(from: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&from);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// Whether `frame` is an ARP reply to `PEER_MAC` saying `ip` is at some MAC.
fn is_arp_reply_for(frame: &[u8], ip: [u8; 4]) -> bool {
    frame.len() >= 42
        && ethertype(frame) == 0x0806
        && frame[21] == 2
        && frame[0..6] == PEER_MAC.0
        && frame[28..32] == ip
}

/// Whether `frame` is an ARP request sent by `PEER_MAC` (i.e. one this test injected).
fn is_own_request(frame: &[u8]) -> bool {
    frame.len() >= 42 && ethertype(frame) == 0x0806 && frame[21] == 1 && frame[6..12] == PEER_MAC.0
}

/// Whether `frame` is an IPv4 ICMP echo request to `dest`.
fn is_echo_request_to(frame: &[u8], dest: Mac) -> bool {
    frame.len() >= 14 + 20 + 8
        && frame[0..6] == dest.0
        && ethertype(frame) == 0x0800
        && frame[14 + 9] == 1
        && frame[14 + usize::from(frame[14] & 0x0f) * 4] == 8
}

// ---------------------------------------------------------------------------------------
// Persistent TAPs

/// Reads TAP frames until one satisfies `want`, failing after `timeout`.
fn tap_read_until(tap: &Tap, timeout: Duration, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME];
    let deadline = Instant::now() + timeout;
    loop {
        match tap.read_frame(&mut buf) {
            Ok(n) if want(&buf[..n]) => return buf[..n].to_vec(),
            Ok(_) => {}
            Err(TapError::WouldBlock) => {
                assert!(
                    Instant::now() < deadline,
                    "no such frame within {timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn persistent_tap_outlives_its_descriptor_and_is_reattached() {
    let ns = Netns::tagged("pt");
    let (tap, existed) = Tap::open_or_create_persistent(Some(&ns.path), "vnpt0", false).unwrap();
    assert!(!existed, "made afresh");
    assert!(tap.is_persistent().unwrap());
    assert_eq!(tap.netns(), Some(ns.path.as_path()));
    tap.configure(&LinkSettings {
        mac: Some(TAP_MAC),
        mtu: Some(1400),
        up: Some(true),
    })
    .unwrap();
    // What the guest configured on its NIC.
    ns.ip(&["addr", "add", "10.80.0.1/24", "dev", "vnpt0"])
        .unwrap();

    // The daemon dies: the kernel closes its descriptors, as dropping does here.
    drop(tap);
    let shown = ns.ip(&["addr", "show", "vnpt0"]).unwrap();
    assert!(shown.contains("10.80.0.1/24"), "address kept: {shown}");
    assert!(shown.contains("NO-CARRIER"), "{shown}");

    // The restarted daemon re-attaches, and frames flow: an ARP request written in is
    // answered by the namespace's stack, and the answer read out.
    let (tap, existed) = Tap::open_or_create_persistent(Some(&ns.path), "vnpt0", false).unwrap();
    assert!(existed, "re-attached");
    assert_eq!(tap.mac().unwrap(), TAP_MAC);
    assert!(ns
        .ip(&["link", "show", "vnpt0"])
        .unwrap()
        .contains("mtu 1400"));
    tap.write_frame(&arp_request([10, 80, 0, 2], [10, 80, 0, 1]))
        .unwrap();
    let reply = tap_read_until(&tap, Duration::from_secs(2), |f| {
        is_arp_reply_for(f, [10, 80, 0, 1])
    });
    assert_eq!(&reply[22..28], &TAP_MAC.0, "is-at the TAP's MAC");

    // While this descriptor holds it, nobody else attaches.
    let err = Tap::open_or_create_persistent(Some(&ns.path), "vnpt0", false).unwrap_err();
    match &err {
        TapError::NotAttachable { source, .. } => {
            assert_eq!(source.raw_os_error(), Some(libc::EBUSY), "{err}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("vnpt0") && err.to_string().contains(&ns.name));

    // Clearing the flag and closing removes it, addresses and all.
    tap.remove().unwrap();
    assert!(ns.ip(&["link", "show", "vnpt0"]).is_err(), "gone");
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn persistent_tap_refuses_what_it_may_not_attach_to() {
    let ns = Netns::tagged("pr");
    ns.ip(&[
        "link", "add", "vnpd0", "type", "veth", "peer", "name", "vnpd1",
    ])
    .unwrap();
    ns.ip(&["tuntap", "add", "mode", "tun", "name", "vnpu0"])
        .unwrap();
    for name in ["vnpd0", "vnpu0"] {
        let err = Tap::open_or_create_persistent(Some(&ns.path), name, false).unwrap_err();
        match &err {
            TapError::NotAttachable { source, reason, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::EINVAL), "{err}");
                assert!(reason.contains("not a TAP"), "{err}");
            }
            other => panic!("{name}: unexpected {other}"),
        }
        assert!(ns.ip(&["link", "show", name]).is_ok(), "{name} left alone");
    }
    // A persistent TAP someone else made (`ip tuntap`) is attached to as it is.
    ns.ip(&["tuntap", "add", "mode", "tap", "name", "vnpa0"])
        .unwrap();
    let (tap, existed) = Tap::open_or_create_persistent(Some(&ns.path), "vnpa0", false).unwrap();
    assert!(existed);
    tap.set_persistent(false).unwrap();
    assert!(!tap.is_persistent().unwrap());
    assert!(ns.ip(&["link", "show", "vnpa0"]).is_ok(), "still open");
    drop(tap);
    assert!(
        ns.ip(&["link", "show", "vnpa0"]).is_err(),
        "gone with its descriptor"
    );

    let err = Tap::open_or_create_persistent(Some(&ns.path), "vnpt%d", false).unwrap_err();
    assert!(matches!(err, TapError::InvalidName { .. }), "{err}");
    let err =
        Tap::open_or_create_persistent(Some(Path::new("/run/netns/vnio-none")), "vnpt0", false)
            .unwrap_err();
    assert!(matches!(err, TapError::OpenNetns { .. }), "{err}");
}

/// What a [`spawn_wire`] saw of the frames read from its first TAP.
#[derive(Debug, Default)]
struct Seen {
    /// Frames read.
    frames: usize,
    /// Of them, TCP super-frames (GSO TCP/IPv4 with a segment size).
    gso: usize,
    /// Of them, frames whose checksum was left to do.
    needs_csum: usize,
    /// The longest frame (Ethernet, without the virtio-net header).
    longest: usize,
    /// Frames whose source MAC was not where the TAP's mode puts it (a virtio-net header
    /// where none should be, or none where one should be).
    misplaced: usize,
    /// Frames whose virtio-net header did not parse.
    bad_headers: usize,
}

/// A wire between two TAPs of the same mode: a thread moves every frame read from one into
/// the other (with its virtio-net header as it came, if they have offloads) until dropped or
/// [finished](Pump::finish), and counts what it read from the first; finished, it gives
/// back the TAPs and what it saw.
fn spawn_wire(a: Tap, b: Tap, a_mac: Mac) -> Pump<(Tap, Tap, Seen)> {
    assert_eq!(a.has_offloads(), b.has_offloads(), "one mode for both");
    Pump::spawn(move |stop| {
        let mut seen = Seen::default();
        let mut buf = vec![0u8; VNET_HDR_LEN + MAX_FRAME];
        let hdr = if a.has_offloads() { VNET_HDR_LEN } else { 0 };
        while !stop.load(Ordering::Relaxed) {
            poll_readable(&[a.as_raw_fd(), b.as_raw_fd()], 10);
            for (from, to) in [(&a, &b), (&b, &a)] {
                loop {
                    let n = match from.read_frame(&mut buf) {
                        Ok(n) => n,
                        Err(TapError::WouldBlock) => break,
                        Err(e) => panic!("read {}: {e}", from.name()),
                    };
                    assert!(n >= hdr + 14, "{n}-byte read from {}", from.name());
                    if std::ptr::eq(from, &a) {
                        seen.frames += 1;
                        seen.longest = seen.longest.max(n - hdr);
                        seen.misplaced += usize::from(buf[hdr + 6..hdr + 12] != a_mac.0);
                        if hdr > 0 {
                            match Offload::from_vnet_hdr(&buf[..hdr]) {
                                Ok(o) => {
                                    let tso = o.gso == Gso::Tcp4 && o.gso_size > 0;
                                    seen.gso += usize::from(tso);
                                    seen.needs_csum += usize::from(o.needs_csum);
                                }
                                Err(_) => seen.bad_headers += 1,
                            }
                        }
                    }
                    // A frame the other side cannot take now is lost, as on a wire.
                    let _ = to.write_with_header(&buf[..hdr], &buf[hdr..n]);
                }
            }
        }
        (a, b, seen)
    })
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn persistent_tap_with_offloads_hands_over_tcp_super_frames_and_without_them_plain_frames() {
    const A_MAC: Mac = TAP_MAC;
    const B_MAC: Mac = PEER_MAC;
    const B_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 82, 0, 2), 7000));
    let a = Netns::tagged("oa");
    let b = Netns::tagged("ob");
    let open = |offloads: bool| {
        let mut taps = Vec::new();
        for (ns, name, mac) in [(&a, "vnoa0", A_MAC), (&b, "vnob0", B_MAC)] {
            let (tap, existed) =
                Tap::open_or_create_persistent(Some(&ns.path), name, offloads).unwrap();
            assert_eq!(tap.has_offloads(), offloads);
            tap.configure(&LinkSettings {
                mac: Some(mac),
                mtu: Some(1500),
                up: Some(true),
            })
            .unwrap();
            taps.push((tap, existed));
        }
        let (b, b_existed) = taps.pop().unwrap();
        let (a, a_existed) = taps.pop().unwrap();
        assert_eq!(a_existed, b_existed);
        (a, b, a_existed)
    };

    // With offloads, the interface announces checksum and segmentation offload, and a TCP
    // stream from a's stack to b's comes out of the TAP as super-frames behind their
    // headers; written into b's TAP as they are, b's stack takes them.
    let (tap_a, tap_b, existed) = open(true);
    assert!(!existed);
    a.ip(&["addr", "add", "10.82.0.1/24", "dev", "vnoa0"])
        .unwrap();
    b.ip(&["addr", "add", "10.82.0.2/24", "dev", "vnob0"])
        .unwrap();
    assert!(
        a.tso("vnoa0") && a.tx_checksum("vnoa0"),
        "offloads announced"
    );
    let wire = spawn_wire(tap_a, tap_b, A_MAC);
    let took = tcp_stream(&a, &b, B_ADDR, 4 << 20);
    let (tap_a, tap_b, seen) = wire.finish();
    eprintln!("with offloads: 4 MiB in {took:?}, {seen:?}");
    assert_eq!((seen.misplaced, seen.bad_headers), (0, 0), "{seen:?}");
    assert!(seen.gso > 0, "no TCP super-frame: {seen:?}");
    assert!(seen.longest > 1514, "{seen:?}");
    assert!(seen.needs_csum > 0, "{seen:?}");

    // Re-opened without offloads: the interface's offloads are cleared, and the same stream
    // comes out as plain frames of at most 1514 bytes with no header before them.
    drop((tap_a, tap_b));
    let (tap_a, tap_b, existed) = open(false);
    assert!(existed, "re-attached");
    assert!(
        !a.tso("vnoa0") && !a.tx_checksum("vnoa0"),
        "offloads still announced"
    );
    let wire = spawn_wire(tap_a, tap_b, A_MAC);
    let took = tcp_stream(&a, &b, B_ADDR, 1 << 20);
    let (tap_a, tap_b, seen) = wire.finish();
    eprintln!("without offloads: 1 MiB in {took:?}, {seen:?}");
    assert_eq!(seen.misplaced, 0, "a header before plain frames: {seen:?}");
    assert!(seen.frames > (1 << 20) / 1514, "{seen:?}");
    assert!(seen.longest <= 1514, "{seen:?}");
    tap_a.remove().unwrap();
    tap_b.remove().unwrap();
    assert!(a.ip(&["link", "show", "vnoa0"]).is_err(), "gone");
}

// ---------------------------------------------------------------------------------------
// pcap ports

/// Captures frames until one satisfies `want` (returned), failing after `timeout`; every
/// frame captured on the way is passed to `seen`.
fn pcap_read_until(
    port: &mut PcapPort,
    timeout: Duration,
    want: impl Fn(&[u8]) -> bool,
    mut seen: impl FnMut(&[u8]),
) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut found = None;
        port.read_frames(64, |f| {
            seen(f);
            if found.is_none() && want(f) {
                found = Some(f.to_vec());
            }
        })
        .unwrap();
        if let Some(f) = found {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "no such frame within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn pcap_port_captures_and_injects_on_a_veth_in_another_namespace() {
    let a = Netns::tagged("ca");
    let b = Netns::tagged("cb");
    a.ip(&[
        "link", "add", "vnpc0", "type", "veth", "peer", "name", "vnpc1", "netns", &b.name,
    ])
    .unwrap();
    a.ip(&[
        "link",
        "set",
        "vnpc0",
        "address",
        &TAP_MAC.to_string(),
        "up",
    ])
    .unwrap();
    b.ip(&["addr", "add", "10.81.0.1/24", "dev", "vnpc1"])
        .unwrap();
    b.ip(&["link", "set", "vnpc1", "up"]).unwrap();

    // Opened from this thread, which stays in its own namespace.
    let mut port = PcapPort::open(Some(&a.path), "vnpc0").unwrap();
    assert_eq!(port.device(), "vnpc0");
    assert_eq!(port.netns(), Some(a.path.as_path()));
    let shown = a.ip(&["-d", "link", "show", "vnpc0"]).unwrap();
    assert!(shown.contains("promiscuity 1"), "promiscuous: {shown}");

    // Injected: b's stack receives the request and answers; the answer is captured, and
    // the injected request itself is not.
    let mut own = 0;
    port.write_frame(&arp_request([10, 81, 0, 2], [10, 81, 0, 1]))
        .unwrap();
    let reply = pcap_read_until(
        &mut port,
        Duration::from_secs(2),
        |f| is_arp_reply_for(f, [10, 81, 0, 1]),
        |f| own += usize::from(is_own_request(f)),
    );
    assert_eq!(&reply[6..12], &reply[22..28], "from vnpc1's MAC");
    assert_eq!(own, 0, "injected frames are not captured back");

    // Inbound only: a's own stack pings b through vnpc0; b's answers are captured, a's
    // frames (ARP request, echo request: outgoing on vnpc0) are not.
    a.ip(&["addr", "add", "10.81.0.3/24", "dev", "vnpc0"])
        .unwrap();
    assert!(
        a.succeeds(&["ping", "-c", "1", "-W", "1", "10.81.0.1"]),
        "a pings b"
    );
    let mut outgoing = 0;
    pcap_read_until(
        &mut port,
        Duration::from_secs(2),
        |f| {
            f.len() >= 42
                && f[0..6] == TAP_MAC.0
                && ethertype(f) == 0x0800
                && f[23] == 1
                && f[34] == 0
        },
        |f| outgoing += usize::from(f[6..12] == TAP_MAC.0),
    );
    assert_eq!(outgoing, 0, "frames a sent out of vnpc0 are not captured");

    // Promiscuous: frames b sends to another MAC than vnpc0's are captured, several in one
    // dispatch.
    b.ip(&[
        "neigh",
        "replace",
        "10.81.0.2",
        "lladdr",
        &OTHER_MAC.to_string(),
        "dev",
        "vnpc1",
        "nud",
        "permanent",
    ])
    .unwrap();
    assert!(!b.succeeds(&["ping", "-c", "5", "-i", "0.002", "-W", "0.01", "10.81.0.2"]));
    let mut requests = 0;
    let handed = port
        .read_frames(64, |f| {
            requests += usize::from(is_echo_request_to(f, OTHER_MAC));
            own += usize::from(is_own_request(f));
        })
        .unwrap();
    assert!(
        requests == 5 && handed >= 5,
        "{requests} of 5 in one batch of {handed}"
    );
    assert_eq!(own, 0);

    // One frame at a time, and one too long for the buffer.
    assert!(!b.succeeds(&[
        "ping",
        "-c",
        "2",
        "-i",
        "0.002",
        "-W",
        "0.01",
        "-s",
        "500",
        "10.81.0.2"
    ]));
    let mut small = [0u8; 100];
    let mut big = vec![0u8; MAX_FRAME];
    let mut truncated = 0;
    let mut whole = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while truncated + whole < 2 {
        let buf: &mut [u8] = if truncated == 0 { &mut small } else { &mut big };
        match port.read_frame(buf) {
            Err(PcapError::Truncated { len, capacity }) => {
                assert_eq!((len, capacity), (14 + 20 + 8 + 500, 100));
                truncated += 1;
            }
            Ok(Some(n)) if is_echo_request_to(&big[..n], OTHER_MAC) => whole += 1,
            Ok(Some(_)) => {}
            Ok(None) => {
                assert!(Instant::now() < deadline, "pings not captured");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let stats = port.stats().unwrap();
    assert!(stats.received >= 8, "{stats:?}");
    assert_eq!((stats.dropped, stats.truncated, stats.runts), (0, 0, 0));

    // Bad frames are refused before any system call.
    assert!(matches!(
        port.write_frame(&[0; 13]),
        Err(PcapError::FrameTooShort { len: 13 })
    ));
    assert!(matches!(
        port.write_frame(&vec![0; MAX_FRAME + 1]),
        Err(PcapError::FrameTooLong { .. })
    ));
    // The kernel refuses frames longer than the MTU allows.
    let err = port.write_frame(&vec![0xff; 3000]).unwrap_err();
    match &err {
        PcapError::Write { source, .. } => {
            assert_eq!(source.raw_os_error(), Some(libc::EMSGSIZE), "{err}")
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("vnpc0"), "{err}");
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn pcap_port_reports_what_it_cannot_open() {
    let a = Netns::tagged("ce");
    let err = PcapPort::open(Some(&a.path), "vnpcnone").unwrap_err();
    assert!(matches!(err, PcapError::Open { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("vnpcnone") && msg.contains(&a.name), "{msg}");
    // `any` is libpcap's cooked pseudo-device, not an Ethernet port.
    let err = PcapPort::open(Some(&a.path), "any").unwrap_err();
    assert!(matches!(err, PcapError::NotEthernet { .. }), "{err}");
    let err = PcapPort::open(Some(Path::new("/run/netns/vnio-none")), "lo").unwrap_err();
    assert!(
        err.to_string()
            .contains("open network namespace /run/netns/vnio-none"),
        "{err}"
    );
    let err = PcapPort::open(None, "a/b").unwrap_err();
    assert!(matches!(err, PcapError::InvalidName { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// Unix datagram ports

/// A directory that exists as long as this value does.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vnio-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A frame of `len` bytes whose payload says `i`.
fn frame(i: u8, len: usize) -> Vec<u8> {
    let mut f = vec![i; len];
    f[0..6].copy_from_slice(&TAP_MAC.0);
    f[6..12].copy_from_slice(&PEER_MAC.0);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// A guest socket bound at `path`, blocking with a timeout.
fn guest(path: &Path) -> UnixDatagram {
    let g = UnixDatagram::bind(path).unwrap();
    g.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    g
}

fn recv(g: &UnixDatagram) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME];
    let n = g.recv(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn unix_port_with_a_given_peer_exchanges_frames_and_drops_strangers() {
    let dir = TempDir::new("ug");
    let g = guest(&dir.join("guest.sock"));
    let mut port = UnixPort::bind(&dir.join("vnet.sock"), Some(&dir.join("guest.sock"))).unwrap();
    assert!(port.peer_given());
    assert_eq!(port.peer(), Some(&UnixPeer::Path(dir.join("guest.sock"))));
    let mut batch = FrameBatch::new(64, 1518).unwrap();
    assert_eq!(port.recv_batch(&mut batch).unwrap(), 0, "nothing yet");

    port.write_frame(&frame(1, 60)).unwrap();
    assert_eq!(recv(&g), frame(1, 60));

    // Eight frames of various sizes in one receive.
    for i in 0..8u8 {
        g.send_to(&frame(i, 14 + usize::from(i) * 200), port.path())
            .unwrap();
    }
    assert_eq!(port.recv_batch(&mut batch).unwrap(), 8);
    for (i, f) in (0..8u8).zip(batch.iter()) {
        assert_eq!(f, frame(i, 14 + usize::from(i) * 200));
    }

    // Strangers, bound or not, runts and oversize datagrams are dropped and counted.
    let stranger = UnixDatagram::bind(dir.join("other.sock")).unwrap();
    stranger.send_to(&frame(9, 60), port.path()).unwrap();
    UnixDatagram::unbound()
        .unwrap()
        .send_to(&frame(9, 60), port.path())
        .unwrap();
    g.send_to(&[0; 13], port.path()).unwrap();
    g.send_to(&frame(9, 1519), port.path()).unwrap();
    g.send_to(&frame(10, 1518), port.path()).unwrap();
    assert_eq!(port.recv_batch(&mut batch).unwrap(), 1);
    assert_eq!(batch.get(0), Some(&frame(10, 1518)[..]));
    let stats = port.stats();
    assert_eq!(
        (stats.received, stats.foreign, stats.runts, stats.truncated),
        (9, 2, 1, 1),
        "{stats:?}"
    );
    assert!(!port.forget_peer(), "a given peer stays");
    assert_eq!(port.peer(), Some(&UnixPeer::Path(dir.join("guest.sock"))));
}

#[test]
fn unix_port_knows_its_peer_by_another_name_of_the_same_socket() {
    let dir = TempDir::new("ua");
    std::fs::create_dir(dir.join("real")).unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
    // The guest binds through the real directory; the daemon was told the symlinked one.
    let g = guest(&dir.join("real/g.sock"));
    let mut port = UnixPort::bind(&dir.join("vnet.sock"), Some(&dir.join("link/g.sock"))).unwrap();
    let mut batch = FrameBatch::new(4, 200).unwrap();
    for i in 0..2 {
        g.send_to(&frame(i, 100), port.path()).unwrap();
    }
    assert_eq!(port.recv_batch(&mut batch).unwrap(), 2);
    assert_eq!(port.stats().foreign, 0);
    port.write_frame(&frame(3, 100)).unwrap();
    assert_eq!(recv(&g), frame(3, 100));
}

#[test]
fn unix_port_learns_its_peer_from_the_first_datagram() {
    let dir = TempDir::new("ul");
    let mut port = UnixPort::bind(&dir.join("vnet.sock"), None).unwrap();
    assert!(!port.peer_given());
    let err = port.write_frame(&frame(0, 60)).unwrap_err();
    assert!(matches!(err, UnixError::NoPeer { .. }), "{err}");
    assert!(err.to_string().contains("vnet.sock"), "{err}");
    let mut batch = FrameBatch::new(8, 1518).unwrap();

    // An unbound sender cannot be answered: not learnt.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(&frame(0, 60), port.path())
        .unwrap();
    assert_eq!(port.recv_batch(&mut batch).unwrap(), 0);
    assert_eq!(port.peer(), None);

    let g = guest(&dir.join("guest.sock"));
    let stranger = guest(&dir.join("other.sock"));
    g.send_to(&frame(1, 60), port.path()).unwrap();
    stranger.send_to(&frame(2, 60), port.path()).unwrap();
    assert_eq!(port.recv_batch(&mut batch).unwrap(), 1, "first sender only");
    assert_eq!(batch.get(0), Some(&frame(1, 60)[..]));
    assert_eq!(port.peer(), Some(&UnixPeer::Path(dir.join("guest.sock"))));
    port.write_frame(&frame(3, 60)).unwrap();
    assert_eq!(recv(&g), frame(3, 60));

    // Forgotten: the next sender is learnt, here one in the abstract namespace.
    assert!(port.forget_peer());
    let name = format!("vnio-{}-ul", std::process::id());
    let abstract_guest = {
        use std::os::linux::net::SocketAddrExt;
        let addr = StdUnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&addr).unwrap()
    };
    abstract_guest
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    abstract_guest.send_to(&frame(4, 60), port.path()).unwrap();
    g.send_to(&frame(5, 60), port.path()).unwrap();
    assert_eq!(port.recv_batch(&mut batch).unwrap(), 1);
    assert_eq!(
        port.peer(),
        Some(&UnixPeer::Abstract(name.as_bytes().to_vec()))
    );
    port.write_frame(&frame(6, 60)).unwrap();
    assert_eq!(recv(&abstract_guest), frame(6, 60));
    assert_eq!(port.stats().foreign, 3, "unbound, stranger, old peer");
}

#[test]
fn unix_port_guards_its_socket_file() {
    let dir = TempDir::new("uf");
    let path = dir.join("vnet.sock");

    // Not a socket: refused and left alone (also a symlink to one).
    std::fs::write(&path, "precious").unwrap();
    let err = UnixPort::bind(&path, None).unwrap_err();
    assert!(matches!(err, UnixError::NotASocket { .. }), "{err}");
    assert!(err.to_string().contains("vnet.sock"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    std::fs::remove_file(&path).unwrap();
    let target = UnixDatagram::bind(dir.join("target.sock")).unwrap();
    std::os::unix::fs::symlink(dir.join("target.sock"), &path).unwrap();
    assert!(matches!(
        UnixPort::bind(&path, None),
        Err(UnixError::NotASocket { .. })
    ));
    std::fs::remove_file(&path).unwrap();
    drop(target);

    // A live socket (datagram or stream): refused.
    let live = UnixDatagram::bind(&path).unwrap();
    assert!(matches!(
        UnixPort::bind(&path, None),
        Err(UnixError::InUse { .. })
    ));
    drop(live);
    let stream_path = dir.join("stream.sock");
    let listener = std::os::unix::net::UnixListener::bind(&stream_path).unwrap();
    assert!(matches!(
        UnixPort::bind(&stream_path, None),
        Err(UnixError::InUse { .. })
    ));
    drop(listener);

    // A stale one (its socket closed, the file left): replaced.
    assert!(path.exists(), "std leaves the file behind");
    let first = UnixPort::bind(&path, None).unwrap();
    assert!(path.exists());

    // Dropping removes only the file the port bound.
    std::fs::remove_file(&path).unwrap();
    let second = UnixPort::bind(&path, None).unwrap();
    drop(first);
    assert!(path.exists(), "the second port's file stays");
    drop(second);
    assert!(!path.exists(), "removed on drop");

    let err = UnixPort::bind(&dir.join("no/such/dir.sock"), None).unwrap_err();
    match &err {
        UnixError::Bind { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::ENOENT)),
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("no/such/dir.sock"), "{err}");
}

#[test]
fn unix_port_send_errors_are_told_apart() {
    let dir = TempDir::new("us");
    let gpath = dir.join("guest.sock");
    let g = guest(&gpath);
    let port = UnixPort::bind(&dir.join("vnet.sock"), Some(&gpath)).unwrap();
    assert!(matches!(
        port.write_frame(&[0; 13]),
        Err(UnixError::FrameTooShort { len: 13 })
    ));
    assert!(matches!(
        port.write_frame(&vec![0; MAX_FRAME + 1]),
        Err(UnixError::FrameTooLong { .. })
    ));
    // A guest that does not read: its queue fills, then sends would block.
    let mut sent = 0;
    let full = loop {
        match port.write_frame(&frame(0, 1500)) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "queue never filled");
    };
    assert!(matches!(full, UnixError::WouldBlock), "{full} after {sent}");
    assert!(sent > 0);
    // The guest gone (its socket closed, the file left; then the file removed too).
    drop(g);
    let err = port.write_frame(&frame(0, 60)).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    assert!(err.to_string().contains("guest.sock"), "{err}");
    std::fs::remove_file(&gpath).unwrap();
    let err = port.write_frame(&frame(0, 60)).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
}

#[test]
fn ports_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<PcapPort>();
    assert_send_sync::<UnixPort>();
    assert_send::<FrameBatch>();
}
