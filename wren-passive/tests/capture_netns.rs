//! A real capture: two network namespaces joined by a veth pair, made by this test (and
//! removed by a guard even when it fails), a capture at each end, vnetd-shaped datagrams
//! from one to the other (single ones, and a batch as one UDP payload, as a `UDP_SEGMENT`
//! send looks before segmentation), plus a datagram that is not vnetd's. Needs root (it
//! skips, saying so, without).

use std::fs::File;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use wren_passive::record::build;
use wren_passive::{Capture, CaptureConfig, Direction, Estimator, MsgType, Params, Record};

/// Namespaces that are deleted when the guard goes.
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

fn enter(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).expect("open the namespace");
    // SAFETY: setns on a valid namespace fd changes only this thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

#[test]
fn captures_both_ends_of_a_veth_pair() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: creating network namespaces needs root");
        return;
    }
    let pid = std::process::id();
    let (na, nb) = (format!("wren-t{pid}-a"), format!("wren-t{pid}-b"));
    let _guard = Netns(vec![na.clone(), nb.clone()]);
    ip(&["netns", "add", &na]);
    ip(&["netns", "add", &nb]);
    ip(&[
        "-n", &na, "link", "add", "wa", "type", "veth", "peer", "name", "wb", "netns", &nb,
    ]);
    ip(&["-n", &na, "addr", "add", "10.77.0.1/24", "dev", "wa"]);
    ip(&["-n", &nb, "addr", "add", "10.77.0.2/24", "dev", "wb"]);
    // A jumbo MTU, so the batch below goes as one packet, as a `UDP_SEGMENT` send shows on
    // a virtual NIC (at MTU 1500 the kernel would fragment it: the parser refuses fragments).
    ip(&["-n", &na, "link", "set", "wa", "mtu", "9000"]);
    ip(&["-n", &nb, "link", "set", "wb", "mtu", "9000"]);
    ip(&["-n", &na, "link", "set", "wa", "up"]);
    ip(&["-n", &nb, "link", "set", "wb", "up"]);
    let a: SocketAddrV4 = "10.77.0.1:5400".parse().unwrap();
    let b: SocketAddrV4 = "10.77.0.2:5400".parse().unwrap();

    let (na2, nb2) = (na.clone(), nb.clone());
    let result = std::thread::spawn(move || {
        enter(&nb2);
        let cap_b = Capture::start(&CaptureConfig::new("wb")).expect("capture at b");
        let sink = UdpSocket::bind(b).expect("bind b");
        enter(&na2);
        let cap_a = Capture::start(&CaptureConfig::new("wa")).expect("capture at a");
        let sock = UdpSocket::bind(a).expect("bind a");
        std::thread::sleep(Duration::from_millis(200));
        for seq in 0..50u64 {
            sock.send_to(&build::datagram(MsgType::Frame, 77, seq, 200), b)
                .unwrap();
        }
        // A batch of three 805-byte fragments in one payload: expanded into three records.
        sock.send_to(&build::batch(MsgType::Fragment, 77, 50, 765, 3), b)
            .unwrap();
        sock.send_to(b"not a vnetd datagram at all", b).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let (ra, sa) = cap_a.stop();
        let (rb, sb) = cap_b.stop();
        drop(sink);
        (ra, sa, rb, sb)
    })
    .join();
    let (ra, sa, rb, sb) = result.expect("the capture thread");
    println!("a: {sa:?}\nb: {sb:?}");
    let check = |r: &[Record], dir: Direction| {
        assert_eq!(r.len(), 53, "{r:?}");
        assert!(r.iter().all(|x| x.dir == dir && x.session == 77));
        assert!(r
            .iter()
            .all(|x| x.src == SocketAddr::V4(a) && x.dst == SocketAddr::V4(b)));
        let seqs: Vec<u64> = r.iter().map(|x| x.seq).collect();
        assert_eq!(seqs, (0..53).collect::<Vec<_>>());
        assert_eq!(r[0].len, 24 + 200 + 16 + 42);
        assert_eq!(r[50].len, 805 + 42);
        assert_eq!((r[50].batch, r[52].batch), (0, 2));
        assert!(r.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    };
    check(&ra, Direction::Tx);
    check(&rb, Direction::Rx);
    for s in [&sa, &sb] {
        assert_eq!(s.packets, 52);
        assert_eq!(s.records, 53);
        assert_eq!(s.batched_packets, 1);
        assert_eq!(s.parse_errors.get("bad_version"), Some(&1), "{s:?}");
        assert_eq!(s.ring_dropped, 0);
        assert!(s.failed.is_none());
    }
    // One clock here: every datagram arrived after it left, within a second.
    for (x, y) in ra.iter().zip(&rb) {
        assert!(y.t_ns >= x.t_ns && y.t_ns - x.t_ns < 1_000_000_000);
    }
    // The estimator matches all of them.
    let now = rb.last().unwrap().t_ns;
    let mut e = Estimator::new(Params::default()).unwrap();
    e.ingest(now, ra.into_iter().chain(rb));
    let rep = e.report(now);
    assert_eq!(rep.paths.len(), 1);
    assert_eq!(rep.paths[0].records.matched, 53);
}

#[test]
fn a_full_ring_drops_and_counts() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: creating network namespaces needs root");
        return;
    }
    let ns = format!("wren-t{}-r", std::process::id());
    let _guard = Netns(vec![ns.clone()]);
    ip(&["netns", "add", &ns]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    let ns2 = ns.clone();
    let (records, stats) = std::thread::spawn(move || {
        enter(&ns2);
        let mut c = CaptureConfig::new("lo");
        c.ring_records = 10;
        let cap = Capture::start(&c).expect("capture on lo");
        let sock = UdpSocket::bind("127.0.0.1:5400").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        for seq in 0..30u64 {
            sock.send_to(
                &build::datagram(MsgType::Frame, 5, seq, 100),
                "127.0.0.1:5400",
            )
            .unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        cap.stop()
    })
    .join()
    .expect("the capture thread");
    // From a local address to a local one: counted as sent; the newest ten kept.
    assert_eq!(records.len(), 10, "{stats:?}");
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (20..30).collect::<Vec<_>>()
    );
    assert_eq!(stats.ring_dropped, 20);
}
