//! Wren end to end: a vnet-mode run of the `wren` scenario (host1 and the Proxy on site a,
//! host2 on site b, one emulated 10 Mbit/s (scaled) 1 ms link), Wren started with `testbed
//! wren`, bursty patterns over the star; the host2 -> Proxy estimate must be known and near
//! the link's rate, and the idle fast path host1 -> host2 unknown with its reason. The run is
//! taken down when the test ends, passed or not, and nothing of it (Wren's daemons included)
//! may remain.

mod common;

use common::{ok, testbed, Run};

fn wren(run: &Run, args: &[&str]) -> String {
    let out = testbed()
        .args(["wren", &run.name])
        .args(args)
        .output()
        .unwrap();
    ok(out, &format!("testbed wren {}", args.join(" ")))
}

#[test]
#[ignore = "end-to-end: needs root and network namespaces; run by `cargo xtask test`"]
fn wren_measures_the_star_and_says_why_not_elsewhere() {
    let run = Run::up("wren", "wren-e2e", "vnet");
    wren(&run, &["start"]);
    let status: serde_json::Value =
        serde_json::from_str(&wren(&run, &["status", "--json"])).unwrap();
    let daemons = status.as_array().unwrap();
    assert_eq!(daemons.len(), 3, "{status}");
    assert!(daemons.iter().all(|d| d["alive"] == true), "{status}");
    let pids: Vec<u64> = daemons.iter().map(|d| d["pid"].as_u64().unwrap()).collect();

    // Bursty BSP over the star: a quarter second of the link per message each way, then
    // compute. Two runs of about 4 s: over 5 s of traffic.
    for _ in 0..2 {
        run.patterns(&[
            "--topology",
            "ring",
            "--op",
            "exchange",
            "--size",
            "312500",
            "--iterations",
            "8",
            "--compute",
            "10",
        ]);
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let m: serde_json::Value =
        serde_json::from_str(&wren(&run, &["query", "--", "--json"])).unwrap();
    let pair = |from: &str, to: &str| {
        m["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["from"] == from && p["to"] == to)
            .unwrap_or_else(|| panic!("no pair {from} -> {to} in {m}"))
            .clone()
    };
    let up = pair("host2", "proxy");
    let a = &up["estimate"]["available_bps"];
    assert_eq!(a["status"], "known", "host2 -> proxy: {a}");
    let v = a["value"].as_f64().unwrap();
    assert!(
        (7e6..=13e6).contains(&v),
        "host2 -> proxy available {v} bit/s, link 10 Mbit/s"
    );
    assert_eq!(up["estimate"]["rtt_s"]["status"], "known", "{up}");
    // No fast path: host1 -> host2 carries nothing, and says so.
    let idle = pair("host1", "host2");
    assert_eq!(
        idle["estimate"]["available_bps"]["status"], "unknown",
        "{idle}"
    );
    assert_eq!(
        idle["estimate"]["available_bps"]["reason"], "no_traffic",
        "{idle}"
    );

    // The one-pair query and the Prometheus text.
    let p: serde_json::Value =
        serde_json::from_str(&wren(&run, &["query", "--", "host2", "proxy", "--json"])).unwrap();
    assert_eq!(p["from"], "host2");
    let metrics = wren(&run, &["query", "--", "--metrics"]);
    assert!(
        metrics.contains(r#"wren_available_bandwidth_bps{from="host2",to="proxy"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"wren_known{from="host1",to="host2",figure="available_bandwidth",reason="no_traffic"} 0"#
    ));

    // `down` (the guard) ends Wren's daemons with the run.
    drop(run);
    for pid in pids {
        // Gone, or a zombie its reaper has not collected yet (the process has ended).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        assert!(
            stat.is_empty() || state == Some(Some('Z')),
            "wrend {pid} outlived the run: {stat}"
        );
    }
}

#[test]
#[ignore = "end-to-end: needs root and network namespaces; run by `cargo xtask test`"]
fn wren_refuses_runs_without_the_overlay() {
    let run = Run::up("wren", "wren-e2e-direct", "direct");
    let out = testbed()
        .args(["wren", &run.name, "start"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vnet"), "{err}");
}
