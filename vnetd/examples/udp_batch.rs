//! Datagrams per second over loopback: one system call per datagram (`send_to`/`recv_from`)
//! against batches (`sendmmsg`/`recvmmsg`) and segmentation offload (`UDP_SEGMENT`).
//!
//! `cargo run --release -p vnetd --example udp_batch [SECONDS_PER_CASE]`
//!
//! One thread sends a round of 32 datagrams, then receives them (loopback delivers during
//! the send, so they are all waiting), and repeats; the figure is datagrams sent and
//! received per second of that loop, so it counts both sides' system-call cost.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use vnetd::io::udp::{RecvBatch, Run, UdpOptions, UdpSocket};

const ROUND: usize = 32;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1.0);
    let run_for = Duration::from_secs_f64(secs);
    let opts = UdpOptions {
        recv_buffer: Some(4 << 20),
        send_buffer: Some(4 << 20),
        ..UdpOptions::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let tx = UdpSocket::bind_with(any, &opts)?;
    let rx = UdpSocket::bind_with(any, &opts)?;
    let dest = rx.local_addr()?;
    println!(
        "loopback, rounds of {ROUND} datagrams, {secs} s per case; GSO supported: {}",
        tx.gso_supported()
    );
    println!(
        "{:>6}  {:>22}  {:>12}  {:>8}",
        "bytes", "method", "datagrams/s", "vs single"
    );
    for size in [64, 1400] {
        let payload = vec![0x5a; size];
        let mut buf = vec![0u8; 2048];
        let mut batch = RecvBatch::new(ROUND, 2048)?;

        let single = rate(run_for, || {
            for _ in 0..ROUND {
                tx.as_std().send_to(&payload, dest).expect("send_to");
            }
            let mut got = 0;
            while got < ROUND {
                match rx.as_std().recv_from(&mut buf) {
                    Ok(_) => got += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("recv_from: {e}"),
                }
            }
            got
        });

        let datagrams: Vec<(SocketAddr, &[u8])> =
            (0..ROUND).map(|_| (dest, &payload[..])).collect();
        let batched = rate(run_for, || {
            let sent = tx.send_batch(&datagrams).expect("send_batch");
            assert_eq!(sent, ROUND, "socket buffer full");
            drain(&rx, &mut batch)
        });

        let run: Vec<u8> = payload.repeat(ROUND);
        tx.set_gso(true);
        let gso = rate(run_for, || {
            let whole = Run {
                dest,
                bytes: &run,
                stride: size,
            };
            let sent = tx.send_runs(&[whole]).expect("send_runs");
            assert_eq!(sent, 1, "socket buffer full");
            drain(&rx, &mut batch)
        });

        for (name, r) in [
            ("send_to/recv_from", single),
            ("sendmmsg/recvmmsg", batched),
            ("UDP_SEGMENT/recvmmsg", gso),
        ] {
            println!("{size:>6}  {name:>22}  {r:>12.0}  {:>7.2}x", r / single);
        }
    }
    Ok(())
}

/// Receives what is waiting with `recvmmsg`; returns how many datagrams.
fn drain(rx: &UdpSocket, batch: &mut RecvBatch) -> usize {
    let mut got = 0;
    while got < ROUND {
        match rx.recv_batch(batch).expect("recv_batch") {
            0 => break,
            n => got += n,
        }
    }
    got
}

/// Runs `round` (which returns datagrams received) for `run_for`; datagrams per second.
fn rate(run_for: Duration, mut round: impl FnMut() -> usize) -> f64 {
    // Warm up.
    for _ in 0..100 {
        round();
    }
    let start = Instant::now();
    let mut total = 0usize;
    while start.elapsed() < run_for {
        total += round();
    }
    total as f64 / start.elapsed().as_secs_f64()
}
