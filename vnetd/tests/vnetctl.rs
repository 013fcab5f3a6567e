//! `vnetctl`'s offline subcommands, run as the built binary on files in a scratch directory.

use std::path::PathBuf;
use std::process::{Command, Output};

use vnetd::lang;
use vnetd::model::Topology;

const M1: &str = "02:56:4e:00:00:01";
const M2: &str = "02:56:4e:00:00:02";
const M3: &str = "02:56:4e:00:00:03";

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("vnetctl")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

fn vnetctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vnetctl"))
        .args(args)
        .output()
        .expect("run vnetctl")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs vnetctl and expects exit status `code`; returns (stdout, stderr).
fn run(args: &[&str], code: i32) -> (String, String) {
    let out = vnetctl(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "vnetctl {args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    (stdout(&out), stderr(&out))
}

/// The star of three hosts with one guest each, from `vnetctl star`.
fn star_text() -> String {
    let g1 = format!("h1:vm1:{M1}");
    let g2 = format!("h2:vm2:{M2}");
    let g3 = format!("h3:vm3:{M3}");
    let args = [
        "star", "--proxy", "proxy", "--host", "h1", "--host", "h2", "--host", "h3", "--guest", &g1,
        "--guest", &g2, "--guest", &g3,
    ];
    run(&args, 0).0
}

/// The star plus a fast path h1-h2 with its two rules.
fn fast_text() -> String {
    let extra = format!(
        "ADD\n  LINK TCP h1 h1 h2\n  FORWARD EDGE h1 ANY {M2} h1 h2\n  FORWARD EDGE h2 ANY {M1} h2 h1\nEND\n"
    );
    star_text().replace("END\n", &extra)
}

fn topology(text: &str) -> Topology {
    lang::parse_topology(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn star_generation_parses_back() {
    let text = star_text();
    let t = topology(&text);
    assert_eq!(t.hosts.len(), 4);
    assert_eq!(t.links.len(), 3);
    assert!(text.contains("HOST root AT proxy 5400 eth0"), "{text}");
    assert!(
        text.contains("FORWARD INTERFACE proxy ANY NONE lan0"),
        "{text}"
    );
    assert_eq!(lang::print(&t), text);

    let args = [
        "star",
        "--proxy",
        "px",
        "--host",
        "a",
        "--user",
        "alice",
        "--port",
        "7000",
        "--interface",
        "ens3",
        "--lan-port",
        "br0",
    ];
    let text = run(&args, 0).0;
    assert!(text.contains("HOST alice AT a 7000 ens3"), "{text}");
    assert!(text.contains("FORWARD INTERFACE px ANY NONE br0"), "{text}");
    topology(&text);
}

#[test]
fn star_rejects_bad_input() {
    let (_, err) = run(&["star", "--proxy", "p", "--guest", "p:vm1:zz"], 2);
    assert!(err.contains("HOST:PORT:MAC"), "{err}");
    let (_, err) = run(
        &["star", "--proxy", "p", "--guest", &format!("h9:vm:{M1}")],
        1,
    );
    assert!(err.contains("neither a host nor the Proxy"), "{err}");
    let (_, err) = run(&["star", "--proxy", "p", "--port", "0"], 2);
    assert!(err.contains("--port"), "{err}");
    let (_, err) = run(&["star", "--proxy", "p", "--user", "ADD"], 1);
    assert!(err.contains("cannot write this star"), "{err}");
}

#[test]
fn check_accepts_the_star_and_fast_paths() {
    let dir = scratch("check_ok");
    let star = write(&dir, "star.vnet", &star_text());
    let (out, _) = run(&["check", &star], 0);
    assert_eq!(out, format!("{star}: ok: 4 hosts, 3 links, 10 rules\n"));
    let fast = write(&dir, "fast.vnet", &fast_text());
    let (out, _) = run(&["check", &fast, "--proxy", "proxy"], 0);
    assert_eq!(out, format!("{fast}: ok: 4 hosts, 4 links, 12 rules\n"));
}

#[test]
fn check_reports_a_syntax_error_with_its_position() {
    let dir = scratch("check_syntax");
    let file = write(
        &dir,
        "bad.vnet",
        "BEGIN\nHOST root AT h1 5400 eth0\nADD\n  LINK UDP h1\nEND\n",
    );
    let (out, err) = run(&["check", &file], 1);
    assert_eq!(out, "");
    assert!(err.starts_with(&format!("{file}:5:1: expected")), "{err}");
}

#[test]
fn check_reports_a_semantic_error_with_its_position() {
    let dir = scratch("check_semantic");
    let text = "BEGIN\nHOST root AT h1 5400 eth0\nADD\n  LINK UDP h1 h1 h2\nEND\n";
    let file = write(&dir, "bad.vnet", text);
    let (_, err) = run(&["check", &file], 1);
    assert!(err.starts_with(&format!("{file}:4:3: ")), "{err}");
    assert!(err.contains("h2"), "{err}");
}

#[test]
fn check_reports_a_loop() {
    let dir = scratch("check_loop");
    // The Proxy sends frames for vm3 to h1, h1 sends them over its fast path to h2, whose
    // default rule sends them back to the Proxy.
    let text = fast_text().replace(
        "FORWARD EDGE proxy ANY 02:56:4e:00:00:03 proxy h3",
        "FORWARD EDGE proxy ANY 02:56:4e:00:00:03 proxy h1",
    );
    let text = text.replace(
        &format!("FORWARD EDGE h1 ANY {M2} h1 h2"),
        &format!("FORWARD EDGE h1 ANY {M2} h1 h2\n  FORWARD EDGE h1 ANY {M3} h1 h2"),
    );
    let file = write(&dir, "loop.vnet", &text);
    let (out, _) = run(&["check", &file], 1);
    assert!(
        out.contains("loop through h1 -> h2 -> proxy -> h1"),
        "{out}"
    );
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("{file}: ")) && last.contains("problem"),
        "{out}"
    );
}

#[test]
fn check_wants_a_known_proxy() {
    let dir = scratch("check_proxy");
    let file = write(&dir, "star.vnet", &star_text());
    let (_, err) = run(&["check", &file, "--proxy", "px"], 1);
    assert!(err.contains("`px` is not a machine"), "{err}");
    let (_, err) = run(
        &["check", &dir.join("missing.vnet").display().to_string()],
        1,
    );
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn print_round_trips() {
    let dir = scratch("print");
    // Out of canonical order, lower-case keywords, a comment.
    let text = "begin # the star, by hand\n\
        host root at proxy 5400 eth0\nhost root at h1 5400 eth0\n\
        add link udp h1 h1 proxy forward edge h1 any none h1 proxy\n\
        forward interface h1 any 02:56:4E:00:00:01 vm1\nend\n";
    let file = write(&dir, "messy.vnet", text);
    let (printed, _) = run(&["print", &file], 0);
    assert_eq!(topology(&printed), topology(text));
    assert!(
        printed.contains("FORWARD INTERFACE h1 ANY 02:56:4e:00:00:01 vm1"),
        "{printed}"
    );
    let again = write(&dir, "printed.vnet", &printed);
    assert_eq!(run(&["print", &again], 0).0, printed);
}

#[test]
fn diff_of_star_and_fast_paths_applies() {
    let dir = scratch("diff");
    let star = write(&dir, "star.vnet", &star_text());
    let fast = write(&dir, "fast.vnet", &fast_text());
    let (out, _) = run(&["diff", &star, &fast], 0);
    assert!(out.contains("ADD\n"), "{out}");
    assert!(out.contains("  LINK TCP h1 h1 h2\n"), "{out}");
    assert!(
        out.contains(&format!("  FORWARD EDGE h1 ANY {M2} h1 h2\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("  FORWARD EDGE h2 ANY {M1} h2 h1\n")),
        "{out}"
    );
    let program = lang::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let applied = program
        .apply_to(&topology(&star_text()))
        .unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(applied, topology(&fast_text()));

    // And back: the rules are deleted before their link.
    let (back, _) = run(&["diff", &fast, &star], 0);
    let program = lang::parse(&back).unwrap_or_else(|e| panic!("{e}\n{back}"));
    assert_eq!(
        program.apply_to(&topology(&fast_text())),
        Ok(topology(&star_text()))
    );

    // Identical: one comment line, still exit 0.
    let (same, _) = run(&["diff", &star, &star], 0);
    assert_eq!(same.lines().count(), 1, "{same}");
    assert!(same.starts_with('#'), "{same}");
}

#[test]
fn diff_lists_host_changes() {
    let dir = scratch("diff_hosts");
    let star = write(&dir, "star.vnet", &star_text());
    let more = star_text().replace(
        "HOST root AT proxy 5400 eth0\n",
        "HOST root AT h4 5400 eth0\nHOST root AT proxy 5400 eth0\n",
    );
    let more = write(&dir, "more.vnet", &more);
    let (out, _) = run(&["diff", &star, &more], 0);
    assert!(
        out.starts_with("# start the daemon on `h4` before"),
        "{out}"
    );
    lang::parse(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
}

#[test]
fn route_through_the_proxy_direct_and_fallback() {
    let dir = scratch("route");
    let star = write(&dir, "star.vnet", &star_text());
    let fast = write(&dir, "fast.vnet", &fast_text());
    let via_proxy = "h1 --udp--> proxy --udp--> h2 -> port vm2\n";
    assert_eq!(run(&["route", &star, M1, M2], 0).0, via_proxy);
    assert_eq!(
        run(&["route", &fast, M1, M2, "--proxy", "proxy"], 0).0,
        "h1 --tcp--> h2 -> port vm2\n"
    );
    assert_eq!(
        run(&["route", &fast, M1, M2, "--down", "h2-h1"], 0).0,
        via_proxy
    );
    // A link the path does not cross changes nothing.
    assert_eq!(
        run(&["route", &fast, M1, M2, "--down", "h3-proxy"], 0).0,
        "h1 --tcp--> h2 -> port vm2\n"
    );
    // Frames for no guest go out to the user's LAN.
    assert_eq!(
        run(&["route", &star, M1, "02:00:00:00:00:99"], 0).0,
        "h1 --udp--> proxy -> port lan0\n"
    );
}

#[test]
fn route_explains_bad_input() {
    let dir = scratch("route_bad");
    let star = write(&dir, "star.vnet", &star_text());
    let (_, err) = run(&["route", &star, "02:56:4e:00:00", M2], 2);
    assert!(err.contains("is not an Ethernet address"), "{err}");
    let (_, err) = run(&["route", &star, M1, "nonsense"], 2);
    assert!(err.contains("DST-MAC"), "{err}");
    let (_, err) = run(&["route", &star, "02:00:00:00:00:99", M2], 1);
    assert!(err.contains("is not a guest"), "{err}");
    let (_, err) = run(&["route", &star, M1, "ff:ff:ff:ff:ff:ff"], 1);
    assert!(err.contains("broadcast"), "{err}");
    let (_, err) = run(&["route", &star, M1, M2, "--down", "h1-h2"], 1);
    assert!(err.contains("no link joins `h1` and `h2`"), "{err}");
    let (_, err) = run(&["route", &star, M1, M2, "--down", "h1"], 1);
    assert!(err.contains("--down `h1`"), "{err}");
}

#[test]
fn down_takes_names_with_hyphens() {
    let dir = scratch("route_hyphen");
    let g1 = format!("host-1:vm1:{M1}");
    let g2 = format!("host-2:vm2:{M2}");
    let args = [
        "star",
        "--proxy",
        "the-proxy",
        "--host",
        "host-1",
        "--host",
        "host-2",
        "--guest",
        &g1,
        "--guest",
        &g2,
    ];
    let text = run(&args, 0).0.replace(
        "END\n",
        &format!("ADD\n  LINK UDP host-1 host-1 host-2\n  FORWARD EDGE host-1 ANY {M2} host-1 host-2\nEND\n"),
    );
    let file = write(&dir, "hyphen.vnet", &text);
    let args = [
        "route",
        &file,
        M1,
        M2,
        "--proxy",
        "the-proxy",
        "--down",
        "host-2-host-1",
    ];
    assert_eq!(
        run(&args, 0).0,
        "host-1 --udp--> the-proxy --udp--> host-2 -> port vm2\n"
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "check",
        "print",
        "diff",
        "route",
        "star",
        "mesh",
        "show",
        "apply",
        "wait-up",
        "add-link",
        "delete-link",
        "add-rule",
        "delete-rule",
        "list-interfaces",
        "list-links",
        "list-rules",
        "set-config-bound",
        "attach-port",
        "detach-port",
        "stats",
        "info",
    ] {
        let (out, _) = run(&[sub, "--help"], 0);
        assert!(out.contains("Usage: vnetctl"), "{sub}: {out}");
    }
    let (out, _) = run(&["--help"], 0);
    assert!(out.contains("The others talk to running daemons"), "{out}");
}
