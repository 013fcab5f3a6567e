//! Runs the real `patterns` binary as several processes on 127.0.0.1 and checks what they
//! report: exact byte counts per topology and operation, iteration counts, every rank present,
//! and clean one-line errors for unreachable or mismatched peers.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// No single run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// What one rank's process left behind.
struct RankOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

/// `k` ports on 127.0.0.1 that are free right now. They are taken below the Linux ephemeral
/// range (32768+) so that outgoing connections cannot grab them before the ranks bind, and
/// handed out from a per-process counter so that concurrent tests never share one.
fn free_ports(k: usize) -> Vec<u16> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let base = 20_000 + u16::try_from((seed ^ std::process::id()) % 10_000).unwrap();
    let _ = NEXT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    let mut ports = Vec::new();
    while ports.len() < k {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

fn read_all(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Starts the ranks listed in `ranks` (of `n`) with the whitespace-separated arguments `args`
/// (`{rank}` is replaced by the rank), waits for all of them (killing everything after
/// [`RUN_LIMIT`]) and returns their outputs in the order of `ranks`.
fn run_ranks(n: usize, ranks: &[usize], args: &str) -> Vec<RankOutput> {
    let peers: Vec<String> = free_ports(n)
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let peers = peers.join(",");
    let mut children: Vec<(Child, JoinHandle<String>, JoinHandle<String>)> = ranks
        .iter()
        .map(|rank| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_patterns"))
                .args(["--rank", &rank.to_string(), "--peers", &peers])
                .args(
                    args.split_whitespace()
                        .map(|a| a.replace("{rank}", &rank.to_string())),
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn patterns");
            let out = read_all(child.stdout.take().unwrap());
            let err = read_all(child.stderr.take().unwrap());
            (child, out, err)
        })
        .collect();
    let deadline = Instant::now() + RUN_LIMIT;
    let mut statuses = vec![None; children.len()];
    while statuses.iter().any(Option::is_none) {
        for (i, (child, _, _)) in children.iter_mut().enumerate() {
            if statuses[i].is_none() {
                statuses[i] = child.try_wait().expect("wait for patterns");
            }
        }
        if Instant::now() > deadline {
            for (child, _, _) in &mut children {
                let _ = child.kill();
            }
            let stderr: Vec<String> = children
                .into_iter()
                .map(|(_, _, err)| err.join().unwrap())
                .collect();
            panic!("patterns did not finish within {RUN_LIMIT:?}; stderr: {stderr:#?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    children
        .into_iter()
        .zip(statuses)
        .map(|((_, out, err), status)| RankOutput {
            success: status.is_some_and(|s| s.success()),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        })
        .collect()
}

/// Runs all `n` ranks, asserts they succeeded and consistently reported, and returns rank
/// 0's summary.
fn run_ok(n: usize, args: &str) -> Value {
    let outputs = run_ranks(n, &(0..n).collect::<Vec<_>>(), args);
    for (rank, out) in outputs.iter().enumerate() {
        assert!(out.success, "rank {rank} failed: {}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            if rank == 0 { 2 } else { 1 },
            "rank {rank}: {lines:?}"
        );
        if rank > 0 {
            assert!(
                out.stderr.is_empty(),
                "rank {rank} wrote to stderr: {}",
                out.stderr
            );
        }
    }
    let summary: Value = serde_json::from_str(outputs[0].stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"], true);
    assert_eq!(summary["n"], n);
    let ranks = summary["ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), n, "every rank reported");
    let iterations = summary["iterations"].as_u64().unwrap();
    assert_eq!(
        summary["iter_times_s"].as_array().unwrap().len() as u64,
        iterations
    );
    for (rank, (report, out)) in ranks.iter().zip(&outputs).enumerate() {
        let printed: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
        assert_eq!(
            report, &printed,
            "rank {rank}'s own line equals its entry in the summary"
        );
        assert_eq!(report["rank"], rank);
        assert_eq!(report["iterations"], iterations);
        assert_eq!(
            report["iter_times_s"].as_array().unwrap().len() as u64,
            iterations
        );
    }
    let sum = |key: &str| ranks.iter().map(|r| r[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(summary["bytes_sent"], sum("bytes_sent"));
    assert_eq!(
        summary["bytes_received"], summary["bytes_sent"],
        "everything sent arrived"
    );
    summary
}

/// Asserts that a JSON number equals `expected` up to float rounding.
fn assert_close(value: &Value, expected: f64) {
    let got = value.as_f64().unwrap();
    assert!((got - expected).abs() < 1e-9, "{got} != {expected}");
}

fn bytes_sent(summary: &Value) -> u64 {
    summary["bytes_sent"].as_u64().unwrap()
}

#[test]
fn ring_exchange() {
    let (n, size, iterations) = (8, 256 * 1024, 10);
    let s = run_ok(
        n,
        "--topology ring --size 256KiB --iterations 10 --compute 0.05",
    );
    assert_eq!(bytes_sent(&s), n as u64 * 2 * size * iterations);
    assert_eq!(s["op"], "exchange");
    assert_eq!(s["schedule"], "ring");
    for r in s["ranks"].as_array().unwrap() {
        assert_eq!(r["messages_sent"], 2 * iterations);
        assert_eq!(r["messages_received"], 2 * iterations);
        assert_close(&r["compute_units"], 0.05 * iterations as f64);
        assert!(r["compute_s"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn all_to_all() {
    let (n, size, iterations) = (6, 100_000, 6);
    let s = run_ok(n, "--op all-to-all --size 100000 --iterations 6");
    assert_eq!(bytes_sent(&s), (n * (n - 1)) as u64 * size * iterations);
}

#[test]
fn reduce_to_rank_0() {
    // 2x3 mesh; the BFS tree from rank 0 is 0 -> {1, 3}, 1 -> {2, 4}, 2 -> {5}.
    let (n, size, iterations) = (6, 64 * 1024, 8);
    let s = run_ok(
        n,
        "--op reduce --topology mesh:2x3 --size 64KiB --iterations 8 --ratio 0.01",
    );
    assert_eq!(bytes_sent(&s), (n as u64 - 1) * size * iterations);
    let ranks = s["ranks"].as_array().unwrap();
    assert_eq!(ranks[0]["bytes_sent"], 0);
    assert_eq!(ranks[0]["bytes_received"], 2 * size * iterations);
    assert_eq!(ranks[1]["bytes_received"], 2 * size * iterations);
    assert_eq!(ranks[2]["bytes_received"], size * iterations);
    assert_eq!(ranks[5]["bytes_received"], 0);
    // --ratio: work follows the bytes sent, so the root computes nothing.
    assert_close(&ranks[0]["compute_units"], 0.0);
    assert_close(&ranks[5]["compute_units"], 0.01 * 64.0 * iterations as f64);
}

#[test]
fn schedule_switch_and_alternation() {
    // Ring (8 messages per iteration) for 3 iterations, then all-to-all (12) for 4.
    let s = run_ok(
        4,
        "--schedule 0:ring,3:all-to-all --size 1000 --iterations 7",
    );
    assert_eq!(bytes_sent(&s), (3 * 8 + 4 * 12) * 1000);
    assert_eq!(s["schedule"], "0:ring,3:all-to-all");

    // Bus (6 messages) on iterations 0, 1, 4, 5; 2-cube = 4-ring (8) on 2, 3.
    let dir = std::env::temp_dir().join(format!("patterns-loopback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report-{rank}.jsonl");
    let report = report.to_str().unwrap();
    assert!(!report.contains(char::is_whitespace));
    let s = run_ok(
        4,
        &format!(
            "--schedule alternate:bus,hypercube:2 --size 10KiB --iterations 6 --report {report}"
        ),
    );
    assert_eq!(bytes_sent(&s), (4 * 6 + 2 * 8) * 10 * 1024);
    // The report files repeat stdout: rank 0's report and the summary, rank 1's report.
    let written = |rank: usize| {
        let text = std::fs::read_to_string(dir.join(format!("report-{rank}.jsonl"))).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect::<Vec<Value>>()
    };
    assert_eq!(written(0), [s["ranks"][0].clone(), s.clone()]);
    assert_eq!(written(1), [s["ranks"][1].clone()]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Asserts that every process failed with exactly one `patterns: error:` line containing
/// `needle`, and printed nothing on stdout.
fn assert_failed_with(outputs: &[RankOutput], needle: &str) {
    for out in outputs {
        assert!(!out.success, "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(
            out.stderr.starts_with("patterns: error: "),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(needle), "{}", out.stderr);
    }
}

#[test]
fn unreachable_peer_is_a_clean_error() {
    // Rank 2 never starts.
    let outputs = run_ranks(3, &[0, 1], "--connect-timeout 1");
    assert_failed_with(&outputs, "rank 2 (127.0.0.1:");
}

#[test]
fn mismatched_settings_are_refused() {
    // Rank 0 runs with 0-byte messages, rank 1 with 100-byte ones.
    let outputs = run_ranks(2, &[0, 1], "--size {rank}00 --connect-timeout 5");
    assert_failed_with(&outputs, "settings differ");
}

#[test]
fn bad_arguments_are_clean_errors() {
    let outputs = run_ranks(3, &[0], "--topology hypercube");
    assert_failed_with(
        &outputs,
        "hypercube needs a power-of-two number of ranks, got 3",
    );
    let outputs = run_ranks(2, &[0], "--size big");
    assert_failed_with(&outputs, "--size");
}
