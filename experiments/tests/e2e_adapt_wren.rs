//! End to end: the adaptation controller reading Wren's measurements. `single-cluster` in vnet
//! mode, patterns all-to-all on its eight guests over the star; `testbed adapt --wren` must
//! start Wren (agents and the collector) and hand the controller its collector, and the
//! controller's decisions must count host <-> Proxy paths as measured (the star carries the
//! traffic there) and the idle host <-> host paths as priors. A dry run: nothing changes. Root
//! only; about a minute.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{ok, testbed, Run};

/// A child killed (and reaped) when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
#[ignore = "root only: network namespaces; run by `cargo xtask test`"]
fn with_wren_the_controller_decides_on_measured_paths() {
    let run = Run::up_with(
        "single-cluster",
        "wrenadapt",
        "vnet",
        &["--vnetd-arg=--vttif-window=4"],
    );
    let _job = Killed(
        testbed()
            .args(["patterns", &run.name, "--", "--topology", "all-to-all"])
            .args(["--size", "16KiB", "--iterations", "400", "--compute", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let log = std::env::temp_dir().join(format!("e2e-adapt-wren-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let _controller = Killed(
        testbed()
            .args(["adapt", &run.name, "--wren", "--", "--dry-run", "--log"])
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wren's estimates need a few seconds of traffic: wait for a decision that has them.
    let deadline = Instant::now() + Duration::from_secs(90);
    let measured = loop {
        let lines = log_lines(&log);
        if let Some(d) = lines
            .iter()
            .find(|l| l["paths_measured"].as_u64().is_some_and(|n| n >= 1))
        {
            break d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no decision with a measured path in 90 s: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(measured.get("wren_error").is_none(), "{measured}");
    assert!(measured["reason"].is_string(), "{measured}");
    // 9 machines: 72 directed paths, of which at most the 16 host <-> Proxy ones carry the
    // star's traffic.
    let (n, prior) = (
        measured["paths_measured"].as_u64().unwrap(),
        measured["paths_prior"].as_u64().unwrap(),
    );
    assert_eq!(n + prior, 72, "{measured}");
    assert!(n <= 16, "only the star's paths carry traffic: {measured}");

    // `testbed adapt --wren` started Wren: an agent on every host and the collector.
    let status: serde_json::Value = serde_json::from_str(&ok(
        testbed()
            .args(["wren", &run.name, "status", "--json"])
            .output()
            .unwrap(),
        "testbed wren status",
    ))
    .unwrap();
    let daemons = status.as_array().unwrap();
    assert_eq!(daemons.len(), 9, "{status}");
    assert!(daemons.iter().all(|d| d["alive"] == true), "{status}");
    let _ = std::fs::remove_file(&log);
}
