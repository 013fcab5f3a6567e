//! The `vttif` binary end to end: synthetic traces written, replayed and swept, and bad
//! inputs refused with the file named.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vttif::offline::{self, Capture, Truth};
use vttif::Pair;

/// A fresh directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vttif-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vttif(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vttif"))
        .args(args)
        .output()
        .expect("run vttif")
}

/// Runs `vttif args`, which must succeed; its stdout.
fn ok(args: &[&str]) -> String {
    let out = vttif(args);
    assert!(
        out.status.success(),
        "vttif {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `vttif args`, which must fail; its stderr.
fn fails(args: &[&str]) -> String {
    let out = vttif(args);
    assert!(!out.status.success(), "vttif {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Synthesises `dir/NAME.pcap` and `dir/NAME.toml` with these extra arguments.
fn synth(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, PathBuf) {
    let (pcap, truth) = (
        dir.join(format!("{name}.pcap")),
        dir.join(format!("{name}.toml")),
    );
    let mut all = vec![
        "synth",
        "--rate-bytes-s",
        "300000",
        "--out",
        path(&pcap),
        "--truth-out",
        path(&truth),
    ];
    all.extend_from_slice(args);
    ok(&all);
    (pcap, truth)
}

fn last_json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn edges(change: &serde_json::Value) -> BTreeSet<Pair> {
    serde_json::from_value(change["edges"].clone()).unwrap()
}

#[test]
fn a_synthetic_switch_is_replayed_with_its_exact_edges_within_a_second() {
    let dir = scratch("replay");
    let (pcap, truth_file) = synth(
        &dir,
        "switch",
        &["--guests", "8", "--phases", "ring:4,hypercube:3:4"],
    );
    let truth = Truth::parse(&std::fs::read_to_string(&truth_file).unwrap()).unwrap();
    let stdout = ok(&[
        "replay",
        path(&pcap),
        "--truth",
        path(&truth_file),
        "--json",
    ]);
    assert!(stdout.contains("hypercube:3"), "{stdout}");
    let json = last_json(&stdout);
    let changes = json["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{stdout}");
    for (change, phase) in changes.iter().zip(&truth.phases) {
        assert_eq!(edges(change), phase.edges);
    }
    let metrics = &json["metrics"];
    assert_eq!(metrics["followed"], 2);
    assert_eq!(metrics["spurious"], 0);
    for phase in metrics["phases"].as_array().unwrap() {
        let reaction = phase["reaction_s"].as_f64().unwrap();
        assert!(reaction < 1.0, "{phase}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn captures_on_every_port_replay_as_one_capture_does() {
    let dir = scratch("ports");
    let (pcap, _) = synth(
        &dir,
        "whole",
        &["--guests", "6", "--topology", "ring", "--duration-s", "3"],
    );
    let whole = offline::read_pcap(&pcap).unwrap();
    // What tcpdump on each guest's TAP would see: its own frames both ways, and broadcasts.
    let mut ports = Vec::new();
    for guest in 0..6 {
        let mac = offline::guest_mac(guest).unwrap();
        let Capture { frames, .. } = &whole;
        let mine: Vec<_> = frames
            .iter()
            .filter(|f| f.src == mac || f.dst == mac || f.dst.is_group())
            .copied()
            .collect();
        let file = dir.join(format!("port{guest}.pcap"));
        offline::write_pcap(std::fs::File::create(&file).unwrap(), &mine).unwrap();
        ports.push(file);
    }
    let one = last_json(&ok(&["replay", path(&pcap), "--json"]));
    let mut args = vec!["replay", "--json"];
    args.extend(ports.iter().map(|p| path(p)));
    let several = last_json(&ok(&args));
    assert!(
        !one["changes"].as_array().unwrap().is_empty(),
        "the combined trace declared nothing"
    );
    assert_eq!(one["changes"], several["changes"]);
    let counted: u64 = several["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["counted"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, one["files"][0]["counted"].as_u64().unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_sweep_prints_its_grid_and_writes_both_figures() {
    let dir = scratch("sweep");
    let (pcap, truth) = synth(
        &dir,
        "alternating",
        &[
            "--guests",
            "8",
            "--alternate",
            "ring,hypercube:3",
            "--period-s",
            "1.5",
            "--duration-s",
            "6",
        ],
    );
    let svg_dir = dir.join("figures");
    let stdout = ok(&[
        "sweep",
        path(&pcap),
        "--truth",
        path(&truth),
        "--windows",
        "0.25,1",
        "--thresholds",
        "0.1,0.3",
        "--svg-dir",
        path(&svg_dir),
        "--json",
    ]);
    let rows = last_json(&stdout)["rows"].as_array().unwrap().len();
    assert_eq!(rows, 4, "{stdout}");
    for name in ["vttif-fig6-damping.svg", "vttif-fig7-threshold.svg"] {
        let svg = std::fs::read_to_string(svg_dir.join(name)).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(svg.contains("<polyline"), "{name} has no lines");
        // Fig. 6 has a line per threshold, Fig. 7 one per window.
        let legend = if name.contains("fig6") {
            "threshold 0.3"
        } else {
            "window 0.25 s"
        };
        assert!(svg.contains(legend), "{name} lacks `{legend}`");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_inputs_fail_naming_what_is_wrong() {
    let dir = scratch("bad");
    let (pcap, truth) = synth(&dir, "good", &["--guests", "4", "--duration-s", "1"]);
    let (pcap, truth) = (path(&pcap), path(&truth));
    let expect = |args: &[&str], words: &[&str]| {
        let stderr = fails(args);
        for w in words {
            assert!(stderr.contains(w), "vttif {args:?}: `{w}` not in: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    };

    let missing = dir.join("missing.pcap");
    expect(&["replay", path(&missing)], &["missing.pcap"]);
    let text = dir.join("notes.pcap");
    std::fs::write(&text, "not a capture\n").unwrap();
    expect(&["replay", path(&text)], &["notes.pcap"]);
    let mut wifi = std::fs::read(pcap).unwrap();
    wifi[20] = 105; // LINKTYPE_IEEE802_11
    let wifi_file = dir.join("wifi.pcap");
    std::fs::write(&wifi_file, wifi).unwrap();
    expect(
        &["replay", path(&wifi_file)],
        &["wifi.pcap", "not Ethernet"],
    );

    let truth_with = |name: &str, text: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file
    };
    let guests = r#"guests = ["02:56:4e:00:00:01", "02:56:4e:00:00:02", "02:56:4e:00:00:03"]"#;
    let broken = truth_with("broken.toml", "guests = [");
    expect(
        &["replay", pcap, "--truth", path(&broken)],
        &["broken.toml"],
    );
    let unknown = truth_with(
        "unknown.toml",
        &format!("{guests}\n[[phase]]\nfrom_s = 0.0\nto_s = 1.0\ntopology = \"donut\"\n"),
    );
    expect(
        &["replay", pcap, "--truth", path(&unknown)],
        &["unknown.toml", "unknown topology `donut`"],
    );
    let misfit = truth_with(
        "misfit.toml",
        &format!("{guests}\n[[phase]]\nfrom_s = 0.0\nto_s = 1.0\ntopology = \"hypercube:3\"\n"),
    );
    expect(
        &["replay", pcap, "--truth", path(&misfit)],
        &["misfit.toml", "does not fit 3 guests"],
    );
    let absent = dir.join("absent.toml");
    expect(
        &["replay", pcap, "--truth", path(&absent)],
        &["absent.toml"],
    );
    expect(
        &["sweep", pcap, "--truth", truth, "--windows", "0.05"],
        &["smoothing window"],
    );

    expect(
        &["replay", pcap, "--threshold", "1.5"],
        &["detection threshold 1.5"],
    );
    expect(&["replay", pcap, "--window", "0.05"], &["smoothing window"]);
    expect(&["replay", pcap, "--window=-1"], &["--window -1"]);
    expect(&["replay", pcap, "--update-hz", "50"], &["update rate 50"]);
    expect(
        &["replay", pcap, "--local", "other.pcap=02:56:4e:00:00:01"],
        &["other.pcap"],
    );
    expect(
        &["replay", pcap, "--local", &format!("{pcap}=02:56:4e:00:00")],
        &["02:56:4e:00:00"],
    );

    let out = path(&dir.join("x.pcap")).to_string();
    let truth_out = path(&dir.join("x.toml")).to_string();
    let synth_with = |extra: &[&str]| {
        let mut args = vec!["synth", "--out", &out, "--truth-out", &truth_out];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str], words: &[&str]| {
        let args = synth_with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect(&args, words);
    };
    run(
        &["--guests", "6", "--topology", "hypercube:3"],
        &["does not fit 6 guests"],
    );
    run(&["--topology", "donut"], &["unknown topology `donut`"]);
    run(&["--phases", "ring:x"], &["ring:x"]);
    run(&["--guests", "1"], &["1 guests"]);
    let unwritable = dir.join("no-such-dir").join("t.pcap");
    expect(
        &[
            "synth",
            "--out",
            path(&unwritable),
            "--truth-out",
            &truth_out,
        ],
        &["t.pcap"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}
