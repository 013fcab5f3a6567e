//! End to end: the adaptation controller on a live overlay. `single-cluster` in vnet mode,
//! patterns all-to-all on its eight guests over the star; `testbed adapt` must infer, decide
//! and apply the fast paths while the job runs, after which frames between guests no longer
//! cross the Proxy; a dry run changes nothing. Root only; about a minute.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{testbed, Run};

/// A child killed (and reaped) when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn patterns(run: &str, iterations: u32) -> Killed {
    Killed(
        testbed()
            .args([
                "patterns",
                run,
                "--",
                "--topology",
                "all-to-all",
                "--size",
                "16KiB",
            ])
            .args(["--iterations", &iterations.to_string(), "--compute", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
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
fn the_controller_adds_fast_paths_while_patterns_runs() {
    let run = Run::up_with(
        "single-cluster",
        "adapt-e2e",
        "vnet",
        &["--vnetd-arg=--vttif-window=4"],
    );
    let _job = patterns(&run.name, 400);

    // A dry run, once a topology is declared: it plans but changes nothing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let dry = loop {
        let out = testbed()
            .args(["adapt", &run.name, "--", "--once", "--dry-run"])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("no topology yet") && Instant::now() < deadline,
            "dry run: {err}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        dry.contains("ADD LINK UDP"),
        "the dry run plans fast paths:\n{dry}"
    );
    let show = run.vnetctl(&["show", "/run/testbed/adapt-e2e/vnet/star.vnet"]);
    assert_eq!(
        show.matches("LINK UDP").count(),
        8,
        "a dry run leaves the star alone:\n{show}"
    );

    // The controller for real.
    let log = std::env::temp_dir().join(format!("e2e-adapt-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let _controller = Killed(
        Command::new(env!("CARGO_BIN_EXE_testbed"))
            .args(["adapt", &run.name, "--", "--log"])
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log_lines(&log).iter().any(|l| l["landed"] == true) {
        assert!(
            Instant::now() < deadline,
            "no plan landed in 60 s: {:?}",
            log_lines(&log)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let lines = log_lines(&log);
    let applied = lines
        .iter()
        .find(|l| l["apply"] == true)
        .expect("the landed plan's decision is logged");
    assert_eq!(applied["shapes"][0], "all-to-all", "{applied}");
    assert_eq!(applied["migrations"], 0, "one guest per host: links only");
    assert!(applied["reason"].as_str().unwrap().contains("speedup"));
    let actions = applied["actions"].as_array().unwrap();
    // A fast path between every two of the 8 hosts, and at each its rules for the 7 others'
    // guests.
    assert_eq!(actions.len(), 28 + 8 * 7, "{actions:?}");

    // Frames between guests of two hosts now go directly.
    let show = run.vnetctl(&["show", "/run/testbed/adapt-e2e/vnet/star.vnet"]);
    assert_eq!(show.matches("LINK UDP").count(), 8 + 28, "{show}");
    assert!(
        show.contains("FORWARD EDGE host1 ANY 02:56:4e:00:00:05 host1 host5"),
        "host1 sends vm5's frames over its fast path:\n{show}"
    );
    let _ = std::fs::remove_file(&log);
}
