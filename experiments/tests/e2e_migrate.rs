//! End-to-end tests of `testbed migrate` in real network namespaces (need root; run by
//! `cargo xtask test`, which passes `--ignored --test-threads=1`): a guest of a vnet-mode run
//! migrates to another host and back while a TCP connection of its keeps running; a switch
//! that fails puts the guest back; bad requests are refused before anything changes.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod common;
use common::{ok, testbed, Run};

/// One test at a time, whatever the harness's threads: migrations are timed.
static SERIAL: Mutex<()> = Mutex::new(());

const VM1_MAC: &str = "02:56:4e:00:00:01";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn migrate(run: &Run, vm: &str, host: &str, extra: &[&str]) -> Output {
    testbed()
        .args(["migrate", &run.name, vm, host])
        .args(extra)
        .output()
        .unwrap()
}

/// `testbed migrate ... --json`, which must succeed; its report.
fn migrate_ok(run: &Run, vm: &str, host: &str, memory: &str) -> serde_json::Value {
    let out = migrate(run, vm, host, &["--memory", memory, "--json"]);
    let text = ok(out, &format!("testbed migrate {vm} {host}"));
    serde_json::from_str(text.trim()).unwrap()
}

/// `testbed migrate` that must fail; its error message.
fn migrate_err(run: &Run, vm: &str, host: &str, extra: &[&str]) -> String {
    let out = migrate(run, vm, host, extra);
    assert!(
        !out.status.success(),
        "migrate {vm} {host} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The node's cgroup, as `testbed status` says.
fn cgroup_of(run: &Run, node: &str) -> String {
    let status = run.status();
    let n = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap()
        .clone();
    n["cgroup"].as_str().unwrap().to_string()
}

/// Pids of the processes in `node`'s network namespace.
fn pids_on(run: &Run, node: &str) -> Vec<u32> {
    let ns = std::fs::metadata(format!("/run/netns/tb-{}.{node}", run.name))
        .unwrap()
        .ino();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ns))
        .collect()
}

fn in_cgroup(run: &Run, cgroup: &str, pid: u32) -> bool {
    let procs = format!(
        "/sys/fs/cgroup/cpu/testbed/{}/{cgroup}/cgroup.procs",
        run.name
    );
    std::fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim() == pid.to_string())
}

/// The user's machine reaches `ip` (three pings).
fn user_reaches(run: &Run, ip: &str) {
    let out = run.exec("user", &["ping", "-c", "3", "-i", "0.2", "-W", "2", ip]);
    ok(out, &format!("ping {ip} from user"));
}

/// The overlay's live configuration is exactly the run's `star.vnet` (which migrate rewrites
/// for the guest's new home), and the guest's rules say it lives at `home`.
fn live_rules_place_vm1_at(run: &Run, home: &str, away: &str) {
    let star = format!("/run/testbed/{}/vnet/star.vnet", run.name);
    let live: String = run
        .vnetctl(&["show", &star])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        live,
        run.vnetctl(&["print", &star]),
        "live rules differ from {star}"
    );
    assert!(
        live.contains(&format!("FORWARD INTERFACE {home} ANY {VM1_MAC} vm1")),
        "{live}"
    );
    assert!(
        live.contains(&format!("FORWARD EDGE proxy ANY {VM1_MAC} proxy {home}")),
        "{live}"
    );
    assert!(
        !live.contains(&format!("FORWARD INTERFACE {away} ANY {VM1_MAC}")),
        "{live}"
    );
    assert!(run.vnetctl(&["list-interfaces", home]).contains("vm1"));
    assert!(!run.vnetctl(&["list-interfaces", away]).contains("vm1"));
}

/// Checks one migration's report and where everything is afterwards; returns the downtime.
fn check_migration(run: &Run, r: &serde_json::Value, from: &str, to: &str, tcp: u32) -> f64 {
    println!("{from} -> {to}: {r}");
    assert_eq!(r["from"], from);
    assert_eq!(r["to"], to);
    // 64 MiB scaled by the scenario's rate_scale 0.1.
    assert_eq!(r["bytes_copied"], 6_710_886);
    // The copy crosses the two hosts' 10 Mbit/s (scaled) access links: no faster than that,
    // and not much slower (TCP headers, slow start, the paced stream beside it).
    let path = r["path_rate_bps"].as_f64().unwrap();
    assert_eq!(path, 10e6);
    let ideal = 6_710_886.0 * 8.0 / path;
    let copy = r["copy_seconds"].as_f64().unwrap();
    assert!(
        copy > 0.95 * ideal && copy < 1.6 * ideal,
        "copy took {copy:.2} s, {ideal:.2} s at the path's rate"
    );
    let downtime = r["downtime_seconds"].as_f64().unwrap();
    assert!(downtime > 0.0 && downtime < 1.0, "downtime {downtime} s");
    assert!(r["probes_answered"].as_u64().unwrap() > 0);
    assert!(r["processes_moved"].as_u64().unwrap() >= 1);

    assert_eq!(cgroup_of(run, "vm1"), to);
    live_rules_place_vm1_at(run, to, from);
    user_reaches(run, "10.10.0.1");
    // Across the inter-cluster link, from the guest itself.
    ok(
        run.exec(
            "vm1",
            &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.10.0.5"],
        ),
        "ping vm5",
    );
    // The running TCP client moved with it; a new process starts there too.
    assert!(
        in_cgroup(run, to, tcp),
        "iperf3 (pid {tcp}) is not in cgroup {to}"
    );
    assert!(!in_cgroup(run, from, tcp));
    let own = ok(run.exec("vm1", &["cat", "/proc/self/cgroup"]), "cat cgroup");
    assert!(
        own.contains(&format!("/testbed/{}/{to}", run.name)),
        "{own}"
    );
    for pid in pids_on(run, "vm1") {
        assert!(in_cgroup(run, to, pid), "pid {pid} of vm1 not in {to}");
    }
    downtime
}

/// Waits for `child` to exit, at most `timeout`; its output.
fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
#[ignore = "end-to-end: needs root and network namespaces; run by `cargo xtask test`"]
fn a_guest_migrates_and_back_and_its_tcp_connection_survives() {
    let _serial = serial();
    let run = Run::up("two-clusters", "mig", "vnet");

    // A paced TCP stream (1 Mbit/s, 30 s) from vm1 on host1 to vm3 on host3, over the star.
    let server = testbed()
        .args([
            "exec",
            &run.name,
            "vm3",
            "--",
            "iperf3",
            "-s",
            "-1",
            "-B",
            "10.10.0.3",
            "-p",
            "5301",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(10);
    experiments::testbed::wait_listening(
        &run.name,
        "vm3",
        5301,
        deadline,
        "iperf3",
        &mut server,
        None,
    )
    .unwrap();
    let client = testbed()
        .args(["exec", &run.name, "vm1", "--"])
        .args([
            "iperf3",
            "-c",
            "10.10.0.3",
            "-p",
            "5301",
            "-t",
            "30",
            "-b",
            "1M",
            "-J",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `testbed exec` becomes iperf3: the same pid.
    let tcp = client.id();
    std::thread::sleep(Duration::from_secs(2));

    let there = migrate_ok(&run, "vm1", "host2", "64MiB");
    let down_there = check_migration(&run, &there, "host1", "host2", tcp);
    let back = migrate_ok(&run, "vm1", "host1", "64MiB");
    let down_back = check_migration(&run, &back, "host2", "host1", tcp);
    println!(
        "downtime: {:.1} ms there, {:.1} ms back",
        down_there * 1e3,
        down_back * 1e3
    );

    // The connection survived both: iperf3 ran its 30 s and kept sending to the end.
    let out = wait_output(client, Duration::from_secs(60));
    let text = ok(out, "iperf3 client on vm1");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(report["error"].is_null(), "iperf3: {}", report["error"]);
    let received = report["end"]["sum_received"]["bytes"].as_f64().unwrap();
    assert!(
        received > 0.8 * 30.0 * 1e6 / 8.0,
        "only {received} bytes received"
    );
    let intervals = report["intervals"].as_array().unwrap();
    let last: Vec<f64> = intervals[intervals.len() - 3..]
        .iter()
        .map(|i| i["sum"]["bytes"].as_f64().unwrap())
        .collect();
    assert!(
        last.iter().all(|b| *b > 0.0),
        "no data at the end: {last:?}"
    );
    let _ = wait_output(server, Duration::from_secs(10));
}

/// Blocks the Proxy's datagrams at `host`, so its star link goes down (its control port, TCP,
/// still answers), and waits until its daemon says so.
fn cut_star_link(run: &Run, host: &str) {
    let script = "nft add table inet cut && \
        nft add chain inet cut in '{ type filter hook input priority 0; }' && \
        nft add rule inet cut in ip saddr 10.200.255.254 udp dport 5400 drop";
    ok(run.exec(host, &["sh", "-c", script]), "nft");
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.vnetctl(&["list-links", host]).contains(" up ") {
        assert!(
            Instant::now() < deadline,
            "the star link of {host} stays up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "end-to-end: needs root and network namespaces; run by `cargo xtask test`"]
fn bad_requests_are_refused_and_a_failed_switch_puts_the_guest_back() {
    let _serial = serial();
    let run = Run::up("dataplane", "mig-fail", "vnet");
    let refused = [
        ("vm1", "host1", "vm1 is on host1 already"),
        ("vm1", "proxy", "`proxy` is not a host (proxy)"),
        ("vm1", "user", "`user` is not a host (user)"),
        ("vm1", "host9", "has no node `host9`"),
        ("vm9", "host2", "has no node `vm9`"),
        ("host1", "host2", "`host1` is not a guest"),
    ];
    for (vm, host, why) in refused {
        let err = migrate_err(&run, vm, host, &[]);
        assert!(err.contains(why), "migrate {vm} {host}: {err}");
    }

    // The new home's star link is down: the guest cannot be reached there after the switch,
    // so migrate puts it back at its old home.
    cut_star_link(&run, "host2");
    let err = migrate_err(&run, "vm1", "host2", &["--memory", "8MiB"]);
    assert!(
        err.contains("everything was put back: vm1 runs at host1"),
        "{err}"
    );
    assert!(err.contains("does not answer at host2"), "{err}");
    assert_eq!(cgroup_of(&run, "vm1"), "host1");
    live_rules_place_vm1_at(&run, "host1", "host2");
    user_reaches(&run, "10.10.0.1");

    // A daemon that is gone is found before anything is copied.
    let status = run.status();
    let pid = status["vnet"]["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["node"] == "host2")
        .unwrap()["pid"]
        .as_u64()
        .unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let err = migrate_err(&run, "vm1", "host2", &[]);
    assert!(err.contains("the vnetd of host2 does not answer"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    user_reaches(&run, "10.10.0.1");
}

#[test]
#[ignore = "end-to-end: needs root and network namespaces; run by `cargo xtask test`"]
fn migration_needs_the_overlay() {
    let _serial = serial();
    let run = Run::up("dataplane", "mig-direct", "direct");
    let err = migrate_err(&run, "vm1", "host2", &[]);
    assert!(err.contains("is in direct mode"), "{err}");
    assert!(Path::new("/run/testbed/mig-direct/state.json").exists());
}
