//! End-to-end tests of the link emulator between two real network namespaces
//! (end-to-end tier).
//!
//! Needs root, `ip`, `ping` and `/dev/net/tun` (a test fails, saying which is
//! missing); run by `cargo xtask test`, which passes `--ignored`. The namespaces are named
//! `lemu-<pid>-<n>-{a,b}` and are always deleted (drop guards), also when an
//! assertion fails; the emulator is stopped before its namespaces go.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use experiments::linkemu::harness::{self, configure, Emulator, NetnsPair};
use experiments::linkemu::{bdp_queue_bytes, LinkSpec, LinkStats, RunOptions, Shape};

/// The tests measure timing: never run two at once.
static SERIAL: Mutex<()> = Mutex::new(());

const B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

fn prerequisites() -> anyhow::Result<()> {
    harness::prerequisites().map_err(anyhow::Error::msg)
}

fn spec(pair: &NetnsPair, shape: Shape) -> LinkSpec {
    LinkSpec {
        name: "e2e".into(),
        a: pair.endpoint_a("lemu0"),
        b: pair.endpoint_b("lemu0"),
        a_to_b: shape,
        b_to_a: shape,
        max_frame: 1600,
        seed: 1,
        stats_file: None,
    }
}

fn up(pair: &NetnsPair) -> anyhow::Result<()> {
    configure(&pair.a, "lemu0", "10.99.0.1/24")?;
    configure(&pair.b, "lemu0", "10.99.0.2/24")?;
    // Resolve ARP before measuring.
    let warm = harness::ping(&pair.a, B, 2, Duration::from_millis(100))?;
    anyhow::ensure!(warm.received > 0, "no connectivity through the emulator");
    Ok(())
}

#[test]
#[ignore = "end-to-end: needs root and network namespaces; run by `cargo xtask test`"]
fn linkemu_netns_rtt_and_rate() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    prerequisites()?;
    let delay = Duration::from_millis(10);
    let rate = 20_000_000;
    let shape = Shape {
        rate_bps: rate,
        delay,
        jitter: Duration::ZERO,
        loss: 0.0,
        queue_bytes: bdp_queue_bytes(rate, 2 * delay),
    };
    // Declared first, dropped last: the emulator stops before the namespaces go.
    let pair = NetnsPair::create()?;
    let emu = Emulator::start(spec(&pair, shape), RunOptions::default())?;
    up(&pair)?;

    // RTT = 2 × delay + 2 × serialisation of a 98-byte frame at 20 Mbit/s.
    let expected_ms = 20.0 + 2.0 * 98.0 * 8.0 / rate as f64 * 1e3;
    let pings = harness::ping(&pair.a, B, 30, Duration::from_millis(20))?;
    eprintln!(
        "RTT median {:.3} ms, mean {:.3}, min {:.3}, mdev {:.3} (expected {expected_ms:.3})",
        pings.median_ms(),
        pings.mean_ms(),
        pings.min_ms(),
        pings.mdev_ms()
    );
    assert_eq!(pings.received, 30, "lost pings on a lossless link");
    // The median: robust against the odd multi-ms stall of a busy host (the
    // mean is printed above and checked loosely).
    assert!(
        (pings.median_ms() - expected_ms).abs() < 1.0,
        "RTT median {:.3} ms, expected {expected_ms:.3} ± 1 ms",
        pings.median_ms()
    );
    assert!(
        (pings.mean_ms() - expected_ms).abs() < 2.0,
        "RTT mean {:.3} ms, expected {expected_ms:.3} ± 2 ms",
        pings.mean_ms()
    );
    // Nothing is faster than the configured delay, give or take the wake-up
    // compensation (frames may leave up to RunOptions::max_early = 200 µs
    // early; in practice a few µs).
    assert!(
        pings.min_ms() >= 19.8,
        "RTT min {:.3} ms below 2 × delay",
        pings.min_ms()
    );

    // Goodput: the rate counts Ethernet frame bytes; a full TCP frame is
    // 1514 bytes carrying 1448 bytes of payload (timestamps on).
    let expected_bps = rate as f64 * 1448.0 / 1514.0;
    let tcp = harness::tcp_goodput(
        &NetnsPair::path(&pair.a),
        &NetnsPair::path(&pair.b),
        SocketAddr::from((B, 5001)),
        Duration::from_secs(1),
        Duration::from_secs(3),
    )?;
    let ratio = tcp.goodput_bps / expected_bps;
    eprintln!(
        "TCP goodput {:.2} Mbit/s, expected {:.2} ({:.1} %)",
        tcp.goodput_bps / 1e6,
        expected_bps / 1e6,
        100.0 * ratio
    );
    assert!(
        (0.9..=1.1).contains(&ratio),
        "goodput {:.1} % of expected",
        100.0 * ratio
    );

    let stats = emu.stop()?;
    eprintln!("emulator: {}", serde_json::to_string_pretty(&stats)?);
    assert!(stats.error.is_none());
    assert!(stats.a_to_b.frames_written > 1000);
    assert_eq!(stats.a_to_b.write_errors + stats.b_to_a.write_errors, 0);
    assert_eq!(stats.a_to_b.oversize_dropped, 0);
    assert!(
        stats.lateness_us.p50_us < 1000.0,
        "median lateness {} µs",
        stats.lateness_us.p50_us
    );
    Ok(())
}

#[test]
#[ignore = "end-to-end: needs root and network namespaces; run by `cargo xtask test`"]
fn linkemu_netns_survives_down_interface_and_oversize_frames() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    prerequisites()?;
    let stats_file = std::env::temp_dir().join(format!("lemu-{}-stats.json", std::process::id()));
    let _ = std::fs::remove_file(&stats_file);
    struct RemoveOnDrop(std::path::PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = RemoveOnDrop(stats_file.clone());

    let pair = NetnsPair::create()?;
    let mut link = spec(&pair, Shape::unlimited());
    link.stats_file = Some(stats_file.clone());
    let emu = Emulator::start(link, RunOptions::default())?;
    up(&pair)?;

    // Receiving TAP down: writes fail with EIO, the emulator carries on.
    harness::command("ip", &["-n", &pair.b, "link", "set", "lemu0", "down"])?;
    let lost = harness::ping(&pair.a, B, 3, Duration::from_millis(50))?;
    assert_eq!(lost.received, 0);
    harness::command("ip", &["-n", &pair.b, "link", "set", "lemu0", "up"])?;
    let back = harness::ping(&pair.a, B, 3, Duration::from_millis(50))?;
    assert!(
        back.received > 0,
        "no connectivity after the TAP came back up"
    );

    // Frames longer than max_frame (1600) are dropped and counted.
    harness::command(
        "ip",
        &["-n", &pair.a, "link", "set", "lemu0", "mtu", "9000"],
    )?;
    let big = harness::command(
        "ip",
        &[
            "netns",
            "exec",
            &pair.a,
            "ping",
            "-c",
            "2",
            "-i",
            "0.05",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            "3000",
            "10.99.0.2",
        ],
    );
    assert!(
        big.is_err(),
        "3000-byte pings crossed a link with max_frame 1600"
    );

    let stats = emu.stop()?;
    assert!(stats.a_to_b.write_errors >= 3, "{:?}", stats.a_to_b);
    let last = stats.a_to_b.last_write_error.clone().unwrap_or_default();
    assert!(last.contains("Input/output error"), "{last}");
    assert_eq!(stats.a_to_b.oversize_dropped, 2, "{:?}", stats.a_to_b);

    let written: LinkStats = serde_json::from_slice(&std::fs::read(&stats_file)?)?;
    assert_eq!(written.a_to_b.write_errors, stats.a_to_b.write_errors);
    assert_eq!(written.a_to_b.frames_written, stats.a_to_b.frames_written);
    assert_eq!(written.name, "e2e");
    Ok(())
}

#[test]
#[ignore = "end-to-end: needs root and network namespaces; run by `cargo xtask test`"]
fn linkemu_netns_missing_namespace_is_a_clear_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    prerequisites().expect("prerequisites of the end-to-end tier");
    let pair = NetnsPair::create().expect("create namespaces");
    let mut link = spec(&pair, Shape::unlimited());
    link.b.netns = "/run/netns/lemu-does-not-exist".into();
    let err = Emulator::start(link, RunOptions::default())
        .err()
        .expect("emulator started without its namespace");
    let msg = format!("{err:#}");
    assert!(msg.contains("endpoint b"), "{msg}");
    assert!(msg.contains("/run/netns/lemu-does-not-exist"), "{msg}");
    // Endpoint a's TAP was closed again: the name is free.
    let out = harness::command("ip", &["-n", &pair.a, "link", "show", "lemu0"]);
    assert!(out.is_err(), "TAP lemu0 left behind in {}", pair.a);
}
