//! End-to-end tests of `vnetd::io::tap` in real network namespaces (root only, hence
//! `#[ignore]`; the e2e tier runs them with `cargo test -p vnetd --test io_netns -- --ignored`).
//!
//! Each test makes its own namespaces, named `vnio-<pid>-<tag>`, and a guard deletes them
//! when the test ends, also when it fails.

mod common;
use common::Netns;

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use vnetd::io::tap::{LinkSettings, Tap, TapError, MAX_FRAME};
use vnetd::model::Mac;

const TAP_MAC: Mac = Mac([0x02, 0x56, 0x4e, 0x10, 0x00, 0x01]);
const PEER_MAC: Mac = Mac([0x02, 0x56, 0x4e, 0x10, 0x00, 0x02]);

/// Reads frames until one satisfies `want` (returned), failing after `timeout`.
fn read_until(tap: &Tap, timeout: Duration, mut want: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
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

/// The Internet checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0xffff)
}

/// Whether `frame` is an IPv4 ICMP echo request.
fn is_echo_request(frame: &[u8]) -> bool {
    frame.len() >= 14 + 20 + 8
        && ethertype(frame) == 0x0800
        && frame[14 + 9] == 1
        && frame[14 + usize::from(frame[14] & 0x0f) * 4] == 8
}

/// The echo reply to an echo request frame: addresses swapped, type 0, checksum redone.
fn echo_reply(request: &[u8]) -> Vec<u8> {
    let mut f = request.to_vec();
    f[0..6].copy_from_slice(&request[6..12]);
    f[6..12].copy_from_slice(&request[0..6]);
    // Swapping the addresses leaves the IP header checksum as it is.
    f[26..30].copy_from_slice(&request[30..34]);
    f[30..34].copy_from_slice(&request[26..30]);
    let icmp = 14 + usize::from(request[14] & 0x0f) * 4;
    f[icmp] = 0;
    f[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
    let sum = checksum(&f[icmp..]);
    f[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
    f
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn tap_moved_between_namespaces_carries_frames_both_ways() {
    let a = Netns::tagged("a");
    let b = Netns::tagged("b");
    let mut tap = Tap::create_in(&a.path, "vnio0").unwrap();
    assert_eq!(tap.name(), "vnio0");
    assert_eq!(tap.netns(), Some(a.path.as_path()));
    assert!(a.ip(&["link", "show", "vnio0"]).is_ok(), "born in a");

    tap.move_to(&b.path).unwrap();
    assert_eq!(tap.netns(), Some(b.path.as_path()));
    assert!(a.ip(&["link", "show", "vnio0"]).is_err(), "gone from a");
    tap.configure(&LinkSettings {
        mac: Some(TAP_MAC),
        mtu: Some(1400),
        up: Some(true),
    })
    .unwrap();
    let shown = b.ip(&["link", "show", "vnio0"]).unwrap();
    assert!(shown.contains("mtu 1400"), "{shown}");
    assert!(shown.contains(&TAP_MAC.to_string()), "{shown}");
    assert!(shown.contains(",UP"), "{shown}");
    assert_eq!(tap.mac().unwrap(), TAP_MAC);

    b.ip(&["addr", "add", "10.77.0.1/24", "dev", "vnio0"])
        .unwrap();
    // In: an ARP request written to the TAP reaches b's stack, which answers; out: the
    // answer is read from the TAP, through the descriptor opened in a.
    tap.write_frame(&arp_request([10, 77, 0, 2], [10, 77, 0, 1]))
        .unwrap();
    let reply = read_until(&tap, Duration::from_secs(2), |f| {
        f.len() >= 42 && ethertype(f) == 0x0806 && f[21] == 2
    });
    assert_eq!(&reply[0..6], &PEER_MAC.0, "to the asker");
    assert_eq!(&reply[22..28], &TAP_MAC.0, "is-at the TAP's MAC");
    assert_eq!(&reply[28..32], &[10, 77, 0, 1]);

    // A process in b pings a guest that exists only as this test answering on the fd.
    b.ip(&[
        "neigh",
        "replace",
        "10.77.0.2",
        "lladdr",
        &PEER_MAC.to_string(),
        "dev",
        "vnio0",
        "nud",
        "permanent",
    ])
    .unwrap();
    let mut ping = b.spawn(&["ping", "-c", "1", "-W", "3", "10.77.0.2"]);
    let request = read_until(&tap, Duration::from_secs(3), is_echo_request);
    assert_eq!(&request[0..6], &PEER_MAC.0);
    tap.write_frame(&echo_reply(&request)).unwrap();
    let status = ping.wait().unwrap();
    assert!(status.success(), "ping got its reply through the TAP");
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn tap_created_by_a_thread_inside_a_namespace_is_configured_from_outside() {
    let c = Netns::tagged("c");
    let path = c.path.clone();
    // A thread that lives in c creates the TAP in its current namespace...
    let tap = std::thread::spawn(move || {
        let ns = File::open(&path).unwrap();
        setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
        Tap::create("vnio%d").unwrap()
    })
    .join()
    .unwrap();
    assert!(tap.name().starts_with("vnio"), "{}", tap.name());
    assert_ne!(tap.name(), "vnio%d", "the kernel picked the number");
    assert_eq!(tap.netns(), None);
    // ... and this thread, elsewhere, configures it there.
    tap.set_mtu(9000).unwrap();
    tap.set_up(true).unwrap();
    let shown = c.ip(&["link", "show", tap.name()]).unwrap();
    assert!(
        shown.contains("mtu 9000") && shown.contains(",UP"),
        "{shown}"
    );
    tap.set_up(false).unwrap();
    let shown = c.ip(&["link", "show", tap.name()]).unwrap();
    assert!(!shown.contains(",UP"), "{shown}");
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn bad_frames_and_truncation_are_reported() {
    let d = Netns::tagged("d");
    let tap = Tap::create_in(&d.path, "vnio0").unwrap();
    let mut buf = vec![0u8; 200];
    // Down, nothing waiting.
    assert!(matches!(
        tap.read_frame(&mut buf),
        Err(TapError::WouldBlock)
    ));
    assert!(matches!(
        tap.write_frame(&[0; 13]),
        Err(TapError::FrameTooShort { len: 13 })
    ));
    assert!(matches!(
        tap.write_frame(&vec![0; MAX_FRAME + 1]),
        Err(TapError::FrameTooLong { .. })
    ));

    tap.set_up(true).unwrap();
    d.ip(&["addr", "add", "10.78.0.1/24", "dev", "vnio0"])
        .unwrap();
    d.ip(&[
        "neigh",
        "replace",
        "10.78.0.2",
        "lladdr",
        &PEER_MAC.to_string(),
        "dev",
        "vnio0",
        "nud",
        "permanent",
    ])
    .unwrap();
    // A 1042-byte frame (1000 bytes of ping data) read into a 200-byte buffer.
    let mut ping = d.spawn(&["ping", "-c", "1", "-W", "1", "-s", "1000", "10.78.0.2"]);
    let deadline = Instant::now() + Duration::from_secs(3);
    let capacity = loop {
        match tap.read_frame(&mut buf) {
            Err(TapError::Truncated { capacity }) => break capacity,
            Ok(_) => {}
            Err(TapError::WouldBlock) => {
                assert!(Instant::now() < deadline, "no truncated frame");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("read: {e}"),
        }
    };
    assert_eq!(capacity, 200);
    let _ = ping.wait();
    // A frame that fills the buffer exactly is not truncated: read the next echo request
    // (ping sends one per second until its deadline) into a buffer of its very size.
    let mut ping = d.spawn(&["ping", "-c", "1", "-W", "1", "-s", "1000", "10.78.0.2"]);
    let mut exact = vec![0u8; 14 + 20 + 8 + 1000];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match tap.read_frame(&mut exact) {
            Ok(n) if n == exact.len() => {
                assert!(is_echo_request(&exact));
                break;
            }
            Ok(_) | Err(TapError::Truncated { .. }) => {}
            Err(TapError::WouldBlock) => {
                assert!(Instant::now() < deadline, "no echo request");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let _ = ping.wait();
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn a_refused_move_leaves_the_tap_where_it_was() {
    let e = Netns::tagged("e");
    let f = Netns::tagged("f");
    let mut first = Tap::create_in(&e.path, "vnio0").unwrap();
    let _second = Tap::create_in(&f.path, "vnio0").unwrap();
    let err = first.move_to(&f.path).unwrap_err();
    match &err {
        TapError::Move { source, .. } => {
            assert_eq!(source.raw_os_error(), Some(libc::EEXIST), "{err}")
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains(&f.name), "{err}");
    assert_eq!(first.netns(), Some(e.path.as_path()));
    first.set_up(true).unwrap();
    assert!(e.ip(&["link", "show", "vnio0"]).unwrap().contains(",UP"));
    // A namespace that does not exist.
    let err = first
        .move_to(&PathBuf::from("/run/netns/vnio-none"))
        .unwrap_err();
    assert!(matches!(err, TapError::OpenNetns { .. }), "{err}");
}
