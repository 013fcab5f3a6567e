//! Loopback tests of the link socket.

use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;

fn v4_loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn v6_loopback() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
}

fn pair() -> (UdpSocket, UdpSocket) {
    (
        UdpSocket::bind(v4_loopback()).unwrap(),
        UdpSocket::bind(v4_loopback()).unwrap(),
    )
}

/// Receives until `want` datagrams arrived (or a second passed), as `(source, bytes, meta)`.
fn receive(sock: &UdpSocket, batch: &mut RecvBatch, want: usize) -> Vec<(RecvMeta, Vec<u8>)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1);
    while got.len() < want && Instant::now() < deadline {
        if sock.recv_batch(batch).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        got.extend(batch.iter().map(|(m, d)| (m, d.to_vec())));
    }
    got
}

/// The low byte of `n`.
fn byte(n: usize) -> u8 {
    n.to_le_bytes()[0]
}

/// Datagram `i` of a test batch: distinct contents and lengths.
fn datagram(i: usize) -> Vec<u8> {
    (0..(20 + i * 7)).map(|k| byte(i * 31 + k)).collect()
}

#[test]
fn sixty_four_datagrams_go_in_one_batch_each_way() {
    let (tx, rx) = pair();
    let dest = rx.local_addr().unwrap();
    let payloads: Vec<Vec<u8>> = (0..64).map(datagram).collect();
    let batch: Vec<(SocketAddr, &[u8])> = payloads.iter().map(|p| (dest, &p[..])).collect();
    assert_eq!(tx.send_batch(&batch).unwrap(), 64);

    let mut slots = RecvBatch::new(64, 2048).unwrap();
    // Loopback delivers during `sendmmsg`, so one `recvmmsg` takes all 64.
    assert_eq!(rx.recv_batch(&mut slots).unwrap(), 64);
    let got: Vec<(RecvMeta, Vec<u8>)> = slots.iter().map(|(m, d)| (m, d.to_vec())).collect();
    assert_eq!(got.len(), 64);
    let source = tx.local_addr().unwrap();
    for ((meta, bytes), want) in got.iter().zip(&payloads) {
        assert_eq!(meta.source, source);
        assert_eq!(meta.len, want.len());
        assert!(!meta.truncated);
        assert_eq!(bytes, want);
    }
    // Nothing more waiting: Ok(0), an empty batch.
    assert_eq!(rx.recv_batch(&mut slots).unwrap(), 0);
    assert!(slots.is_empty());
    assert!(slots.get(0).is_none());
}

#[test]
fn batches_larger_than_one_call_and_several_destinations() {
    let tx = UdpSocket::bind(v4_loopback()).unwrap();
    let rx = [
        UdpSocket::bind(v4_loopback()).unwrap(),
        UdpSocket::bind(v4_loopback()).unwrap(),
    ];
    let dests = [rx[0].local_addr().unwrap(), rx[1].local_addr().unwrap()];
    let payloads: Vec<Vec<u8>> = (0..100).map(datagram).collect();
    let batch: Vec<(SocketAddr, &[u8])> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (dests[i % 2], &p[..]))
        .collect();
    assert_eq!(tx.send_batch(&batch).unwrap(), 100);
    let mut slots = RecvBatch::new(16, 1024).unwrap();
    for (r, sock) in rx.iter().enumerate() {
        let got = receive(sock, &mut slots, 50);
        let want: Vec<&Vec<u8>> = payloads.iter().skip(r).step_by(2).collect();
        assert_eq!(got.len(), 50);
        for ((_, bytes), want) in got.iter().zip(want) {
            assert_eq!(bytes, want);
        }
    }
}

/// Sends 10 segments of 1000 bytes and a last one of 500; checks what arrives.
fn check_segments(tx: &UdpSocket, rx: &UdpSocket) {
    let contents: Vec<u8> = (0..10_500).map(|i| byte(i % 251)).collect();
    let dest = rx.local_addr().unwrap();
    let run = Run {
        dest,
        bytes: &contents,
        stride: 1000,
    };
    assert_eq!(tx.send_runs(&[run]).unwrap(), 1);
    let mut slots = RecvBatch::new(32, 1500).unwrap();
    let got = receive(rx, &mut slots, 11);
    assert_eq!(got.len(), 11, "one datagram per segment");
    for (i, (meta, bytes)) in got.iter().enumerate() {
        let start = i * 1000;
        let end = (start + 1000).min(contents.len());
        assert_eq!(meta.source, tx.local_addr().unwrap());
        assert_eq!(bytes, &contents[start..end], "segment {i}");
    }
}

#[test]
fn segmentation_offload_sends_one_datagram_per_segment() {
    let (tx, rx) = pair();
    // Every kernel since 4.18 has UDP_SEGMENT; this project's machines run far newer ones.
    assert!(
        tx.gso_supported(),
        "UDP_SEGMENT not supported by this kernel"
    );
    assert!(tx.gso_enabled());
    check_segments(&tx, &rx);
    assert!(tx.gso_enabled(), "loopback takes offload; it stays on");
    assert_eq!(tx.offloaded_sends(), 1, "11 segments in one send");
}

#[test]
fn segments_go_without_offload_when_it_is_off() {
    let (tx, rx) = pair();
    assert!(!tx.set_gso(false));
    assert!(!tx.gso_enabled());
    check_segments(&tx, &rx);
    assert_eq!(tx.offloaded_sends(), 0);
    let off = UdpSocket::bind_with(
        v4_loopback(),
        &UdpOptions {
            gso: false,
            ..UdpOptions::default()
        },
    )
    .unwrap();
    assert!(!off.gso_enabled());
    check_segments(&off, &rx);
}

#[test]
fn long_runs_are_split_over_several_offload_sends() {
    let (tx, rx) = pair();
    // 150 segments: more than one UDP_SEGMENT send takes.
    let contents: Vec<u8> = (0..150 * 100).map(|i| byte(i / 100)).collect();
    let dest = rx.local_addr().unwrap();
    let run = Run {
        dest,
        bytes: &contents,
        stride: 100,
    };
    assert_eq!(tx.send_runs(&[run]).unwrap(), 1);
    assert_eq!(tx.offloaded_sends(), 3, "64 + 64 + 22 segments");
    let mut slots = RecvBatch::new(64, 200).unwrap();
    let got = receive(&rx, &mut slots, 150);
    assert_eq!(got.len(), 150);
    for (i, (_, bytes)) in got.iter().enumerate() {
        assert_eq!(bytes.len(), 100);
        assert!(bytes.iter().all(|&b| usize::from(b) == i), "segment {i}");
    }
}

#[test]
fn many_runs_go_in_one_call_and_receive_offload_merges_them_back() {
    let tx = UdpSocket::bind(v4_loopback()).unwrap();
    let rx = UdpSocket::bind_with(
        v4_loopback(),
        &UdpOptions {
            gro: true,
            ..UdpOptions::default()
        },
    )
    .unwrap();
    let dest = rx.local_addr().unwrap();
    // Three frames: 5 datagrams of 1000 bytes and one of 300; a single datagram; 50 of 1400
    // (70 000 bytes, more than one message takes: two offloaded messages, 46 and 4).
    let frames: Vec<(Vec<u8>, usize)> = vec![
        ((0..5300).map(|i| byte(i / 1000)).collect(), 1000),
        (vec![9; 200], 1000),
        ((0..70_000).map(|i| byte(100 + i / 1400)).collect(), 1400),
    ];
    let runs: Vec<Run<'_>> = frames
        .iter()
        .map(|(bytes, stride)| Run {
            dest,
            bytes,
            stride: *stride,
        })
        .collect();
    assert_eq!(tx.send_runs(&runs).unwrap(), 3);
    assert_eq!(
        tx.offloaded_sends(),
        3,
        "the 6-datagram run, and the 50 in two"
    );
    let mut batch = RecvBatch::new(16, 65_536).unwrap();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut merged = 0;
    let deadline = Instant::now() + Duration::from_secs(1);
    while got.len() < 6 + 1 + 50 && Instant::now() < deadline {
        if rx.recv_batch(&mut batch).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        merged += batch.iter().filter(|(m, _)| m.segment.is_some()).count();
        got.extend(batch.datagrams_mut().map(|(source, d)| {
            assert_eq!(source, tx.local_addr().unwrap());
            d.to_vec()
        }));
    }
    let want: Vec<Vec<u8>> = frames
        .iter()
        .flat_map(|(bytes, stride)| bytes.chunks(*stride).map(<[u8]>::to_vec))
        .collect();
    assert_eq!(
        got, want,
        "every datagram, in order, split where it was cut"
    );
    assert!(merged > 0, "loopback hands offloaded sends over whole");
}

#[test]
fn single_and_empty_runs() {
    let (tx, rx) = pair();
    let dest = rx.local_addr().unwrap();
    let run = |bytes, stride| Run {
        dest,
        bytes,
        stride,
    };
    assert_eq!(tx.send_runs(&[]).unwrap(), 0);
    assert_eq!(
        tx.send_runs(&[run(&[], 1000)]).unwrap(),
        1,
        "an empty run is sent"
    );
    assert_eq!(tx.send_runs(&[run(&[7; 300], 1000)]).unwrap(), 1);
    let mut slots = RecvBatch::new(4, 1500).unwrap();
    let got = receive(&rx, &mut slots, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, vec![7; 300]);
    for bad in [0, MAX_DATAGRAM + 1, 70_000] {
        let err = tx.send_runs(&[run(&[0; 10], bad)]).unwrap_err();
        assert!(matches!(err, UdpError::BadSegmentSize { .. }), "{err}");
    }
}

#[test]
fn truncated_datagrams_are_marked_with_their_full_length() {
    let (tx, rx) = pair();
    let dest = rx.local_addr().unwrap();
    let big = vec![0xab; 2000];
    let small = vec![0xcd; 100];
    assert_eq!(tx.send_batch(&[(dest, &big), (dest, &small)]).unwrap(), 2);
    let mut slots = RecvBatch::new(8, 1500).unwrap();
    let got = receive(&rx, &mut slots, 2);
    assert_eq!(got.len(), 2);
    let (meta, bytes) = &got[0];
    assert!(meta.truncated);
    assert_eq!(meta.len, 2000);
    assert_eq!(bytes.len(), 1500);
    let (meta, bytes) = &got[1];
    assert!(!meta.truncated);
    assert_eq!((meta.len, bytes.len()), (100, 100));
}

#[test]
fn ipv6_and_mapped_ipv4_sources() {
    let v6 = UdpSocket::bind(v6_loopback()).unwrap();
    let dual = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).unwrap();
    let v4 = UdpSocket::bind(v4_loopback()).unwrap();
    let port = dual.local_addr().unwrap().port();
    let to_v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let to_v4 = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(v6.send_batch(&[(to_v6, b"six")]).unwrap(), 1);
    assert_eq!(v4.send_batch(&[(to_v4, b"four")]).unwrap(), 1);
    // A dual-stack socket sends to IPv4 destinations as they are.
    let back = v4.local_addr().unwrap();
    assert_eq!(dual.send_batch(&[(back, b"back")]).unwrap(), 1);

    let mut slots = RecvBatch::new(4, 100).unwrap();
    let got = receive(&dual, &mut slots, 2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.source, v6.local_addr().unwrap());
    assert_eq!(got[0].1, b"six");
    // Not ::ffff:127.0.0.1.
    assert_eq!(got[1].0.source, v4.local_addr().unwrap());
    assert_eq!(got[1].1, b"four");
    let got = receive(&v4, &mut slots, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.source.port(), port);
    assert!(got[0].0.source.is_ipv4());

    // IPv6 only: IPv4 destinations are refused.
    let only = UdpSocket::bind_with(
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        &UdpOptions {
            v6_only: true,
            ..UdpOptions::default()
        },
    )
    .unwrap();
    assert!(only.send_batch(&[(back, b"no")]).is_err());
    assert_eq!(only.send_batch(&[(to_v6, b"yes")]).unwrap(), 1);
}

#[test]
fn refused_datagrams_are_reported_at_the_front_of_a_batch() {
    let (tx, rx) = pair();
    let good = rx.local_addr().unwrap();
    let v6_dest = SocketAddr::from((Ipv6Addr::LOCALHOST, 9));
    // The first goes; the second would fail, so the call stops there.
    assert_eq!(
        tx.send_batch(&[(good, b"ok"), (v6_dest, b"no"), (good, b"later")])
            .unwrap(),
        1
    );
    // Called again from the failing one, it reports it.
    let err = tx
        .send_batch(&[(v6_dest, b"no"), (good, b"later")])
        .unwrap_err();
    match &err {
        UdpError::Send { dest, source } => {
            assert_eq!(*dest, v6_dest);
            assert_eq!(source.raw_os_error(), Some(libc::EAFNOSUPPORT));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!err.is_too_big());
    assert_eq!(tx.send_batch(&[(good, b"later")]).unwrap(), 1);
    assert_eq!(tx.send_batch(&[]).unwrap(), 0);
    let mut slots = RecvBatch::new(4, 100).unwrap();
    let got = receive(&rx, &mut slots, 2);
    let bodies: Vec<&[u8]> = got.iter().map(|(_, b)| &b[..]).collect();
    assert_eq!(bodies, [&b"ok"[..], &b"later"[..]]);
}

#[test]
fn dont_fragment_is_the_default_and_oversize_is_too_big() {
    let (tx, rx) = pair();
    assert_eq!(tx.path_mtu_discovery().unwrap(), Some(PathMtuDiscovery::Do));
    let v6 = UdpSocket::bind(v6_loopback()).unwrap();
    assert_eq!(v6.path_mtu_discovery().unwrap(), Some(PathMtuDiscovery::Do));
    tx.set_path_mtu_discovery(PathMtuDiscovery::Probe).unwrap();
    assert_eq!(
        tx.path_mtu_discovery().unwrap(),
        Some(PathMtuDiscovery::Probe)
    );
    let dest = rx.local_addr().unwrap();
    let huge = vec![0; MAX_DATAGRAM + 1];
    let err = tx.send_batch(&[(dest, &huge)]).unwrap_err();
    assert!(err.is_too_big(), "{err}");
    // The largest datagram still goes over loopback (MTU 65536).
    let largest = vec![1; MAX_DATAGRAM];
    assert_eq!(tx.send_batch(&[(dest, &largest)]).unwrap(), 1);
}

#[test]
fn buffer_sizes_can_be_raised() {
    let sock = UdpSocket::bind_with(
        v4_loopback(),
        &UdpOptions {
            recv_buffer: Some(1 << 20),
            send_buffer: Some(1 << 20),
            ..UdpOptions::default()
        },
    )
    .unwrap();
    // The kernel reports twice what it granted; unprivileged, rmem_max may cap it.
    let rcv = sock.recv_buffer().unwrap();
    let snd = sock.send_buffer().unwrap();
    assert!(rcv >= 200_000, "{rcv}");
    assert!(snd >= 200_000, "{snd}");
    assert!(sock.set_recv_buffer(1 << 16).unwrap() >= 1 << 16);
}

#[test]
fn batch_shapes_are_checked() {
    for (slots, size) in [(0, 100), (MAX_BATCH + 1, 100), (1, 0), (1, 65_537)] {
        let err = RecvBatch::new(slots, size).unwrap_err();
        assert!(matches!(err, UdpError::BadBatch { .. }), "{err}");
    }
    let b = RecvBatch::new(MAX_BATCH, 65_536).unwrap();
    assert_eq!((b.slots(), b.slot_size(), b.len()), (MAX_BATCH, 65_536, 0));
}

#[test]
fn addresses_round_trip_through_the_c_layout() {
    let cases = [
        SocketAddr::from(([10, 1, 2, 3], 4789)),
        SocketAddr::from(([255, 255, 255, 255], 65535)),
        SocketAddr::from((Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4), 1)),
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 7, 0, 3)),
    ];
    for addr in cases {
        let (name, len) = encode_name(&addr);
        let want = if addr.is_ipv4() {
            V4_NAME_LEN
        } else {
            V6_NAME_LEN
        };
        assert_eq!(len, want);
        assert_eq!(decode_name(&name), addr);
    }
    let mapped = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped(), 5));
    let (name, _) = encode_name(&mapped);
    assert_eq!(decode_name(&name), SocketAddr::from(([192, 0, 2, 1], 5)));
    assert_eq!(
        decode_name(&EMPTY_NAME),
        SocketAddr::from(([0, 0, 0, 0], 0))
    );
}

#[test]
fn sockets_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UdpSocket>();
    assert_send_sync::<RecvBatch>();
}
