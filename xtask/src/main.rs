//! `cargo xtask`: set up a fresh machine and run the project's main jobs.
//!
//! - `cargo xtask test`: installs missing Debian packages, then runs the fast tier (unit and
//!   in-process tests) and the end-to-end tier (network namespaces; needs root), in release mode.
//! - `cargo xtask demo`: installs missing Debian packages, then runs the demo.
//! - `cargo xtask lint`: rustfmt and clippy, as CI runs them.
//! - `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the fuzz targets of `vnetd/fuzz` (all by
//!   default), N seconds each (60); needs a nightly toolchain and cargo-fuzz. Not part of `test`
//!   or CI.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// Debian packages the testbed and its experiments need on the machine (and so inside every
/// emulated node, which shares the machine's filesystem).
const PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip, tc and bridge: namespaces, links, qdiscs"),
    ("util-linux", "unshare: a hostname (UTS namespace) per node"),
    ("iputils-ping", "ping between nodes"),
    ("iperf3", "TCP/UDP throughput and cross traffic"),
    ("openmpi-bin", "mpirun across guests"),
    ("libopenmpi-dev", "mpicc, to build the MPI test program"),
    ("procps", "process tools used by the tests"),
    (
        "libpcap-dev",
        "libpcap, which vnetd links for its pcap ports (to build)",
    ),
    (
        "nftables",
        "nft, to cut overlay links in the end-to-end tests",
    ),
    (
        "tinc",
        "tincd (tinc 1.0): the testbed's tinc mode, a reference of `bench dataplane`",
    ),
    (
        "prometheus",
        "prometheus and promtool: the dashboards' end-to-end test scrapes a run",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("lint") => lint(),
        Some("install") => install(),
        Some("fuzz") => fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  test [--fast]   install what is missing, run the fast and end-to-end tests\n  demo            install what is missing, run the demo\n  lint            rustfmt --check and clippy -D warnings\n  install         only install the Debian packages the project needs\n  fuzz [--seconds N] [TARGET...]\n                  run vnetd's fuzz targets (default all), N s each (default 60)"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs the packages of [`PACKAGES`] that are missing, saying which and why.
fn install() -> Result<()> {
    let missing: Vec<&(&str, &str)> = PACKAGES.iter().filter(|(p, _)| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!(
            "xtask: Debian packages present: {}",
            PACKAGES.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
        );
        return Ok(());
    }
    eprintln!("xtask: installing missing Debian packages:");
    for (p, why) in &missing {
        eprintln!("  {p:<16} {why}");
    }
    if !is_root() {
        bail!("installing packages needs root: run as root, or install them by hand");
    }
    let names: Vec<&str> = missing.iter().map(|p| p.0).collect();
    let apt = || {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&names);
        c
    };
    if run(&mut apt()).is_err() {
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(&mut apt())?;
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn test(args: &[String]) -> Result<()> {
    let fast_only = args.iter().any(|a| a == "--fast");
    // Before the fast tier too: building vnetd links libpcap.
    install()?;
    let t = Instant::now();
    eprintln!("xtask: fast tier (unit and in-process tests)");
    run(cargo().args(["test", "--workspace", "--release"]))?;
    let fast = t.elapsed();
    if fast_only {
        eprintln!("xtask: fast tier passed in {:.0} s", fast.as_secs_f64());
        return Ok(());
    }
    if !is_root() {
        bail!("the end-to-end tier builds network namespaces and needs root");
    }
    eprintln!("xtask: end-to-end tier (network namespaces, one test at a time)");
    // The testbed runs binaries of other packages from its own directory (vnet mode: `vnetd` and
    // `vnetctl`): build every binary, not only those of packages with integration tests.
    run(cargo().args(["build", "--workspace", "--release", "--bins"]))?;
    run(cargo().args([
        "test",
        "--workspace",
        "--release",
        "--",
        "--ignored",
        "--test-threads=1",
    ]))?;
    eprintln!(
        "xtask: all tests passed in {:.0} s (fast tier {:.0} s)",
        t.elapsed().as_secs_f64(),
        fast.as_secs_f64()
    );
    Ok(())
}

fn lint() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--release",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Runs fuzz targets of `vnetd/fuzz` one after the other (the machine has few cores), each
/// for `--seconds` (60 by default): every target of `vnetd/fuzz/fuzz_targets/` unless some are
/// named. Each runs from its corpus `vnetd/fuzz/corpus/TARGET/` (seeds `seed-*` and what earlier
/// runs added), with the dictionary `vnetd/fuzz/dicts/TARGET.dict` if there is one; a crash is
/// written to `vnetd/fuzz/artifacts/TARGET/`. Every target runs even if one crashes; the
/// command fails if any did.
fn fuzz(args: &[String]) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let dir = root.join("vnetd/fuzz");
    let mut all: Vec<String> = std::fs::read_dir(dir.join("fuzz_targets"))
        .with_context(|| format!("cannot list {}", dir.join("fuzz_targets").display()))?
        .filter_map(|e| {
            let path = e.ok()?.path();
            if path.extension()? != "rs" {
                return None;
            }
            Some(path.file_stem()?.to_str()?.to_string())
        })
        .collect();
    all.sort();
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if let Some(n) = arg.strip_prefix("--seconds=") {
            seconds = n
                .parse()
                .with_context(|| format!("--seconds: `{n}` is not a number"))?;
        } else if arg == "--seconds" {
            let n = rest.next().context("--seconds needs a number")?;
            seconds = n
                .parse()
                .with_context(|| format!("--seconds: `{n}` is not a number"))?;
        } else if arg.starts_with('-') {
            bail!("fuzz: unknown option `{arg}` (usage: fuzz [--seconds N] [TARGET...])");
        } else if all.contains(arg) {
            targets.push(arg.clone());
        } else {
            bail!(
                "fuzz: no target `{arg}`; the targets are: {}",
                all.join(", ")
            );
        }
    }
    if targets.is_empty() {
        targets = all;
    }
    // `+nightly` is understood by rustup's `cargo`, not by the toolchain's own binary in $CARGO.
    let nightly = || {
        let mut c = Command::new("cargo");
        c.arg("+nightly");
        c
    };
    let works = |c: &mut Command| {
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works(nightly().arg("--version")) {
        bail!(
            "fuzzing needs a nightly toolchain (for the sanitizers), and `cargo +nightly` does not \
             work here: install it with `rustup toolchain install nightly`"
        );
    }
    if !works(nightly().args(["fuzz", "--version"])) {
        bail!("fuzzing needs cargo-fuzz, which is missing: install it with `cargo install cargo-fuzz`");
    }
    let mut failed = Vec::new();
    for target in &targets {
        eprintln!("\nxtask: fuzzing `{target}` for {seconds} s");
        let mut cmd = nightly();
        cmd.current_dir(&dir)
            .args(["fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1");
        let dict = dir.join("dicts").join(format!("{target}.dict"));
        if dict.exists() {
            cmd.arg(format!("-dict={}", dict.display()));
        }
        if let Err(e) = run(&mut cmd) {
            eprintln!("xtask: `{target}` failed: {e:#}");
            failed.push(target.as_str());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {} (a crash leaves its input in {}/TARGET/)",
            failed.join(", "),
            dir.join("artifacts").display()
        );
    }
    eprintln!(
        "xtask: {} fuzz targets ran {seconds} s each without a crash",
        targets.len()
    );
    Ok(())
}

/// The adaptive demo (`bench adapt --demo`): the `wan` scenario in `vnet` mode, patterns
/// all-to-all on its eight guests on the overlay's star alone, then again with VADAPT on; it
/// prints the inferred topology, each plan and why, the iteration times before and after and
/// the speedup, and writes `target/vadapt-demo.svg`.
fn demo(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("demo takes no arguments (got `{a}`)");
    }
    install()?;
    if !is_root() {
        bail!("the demo builds network namespaces and needs root");
    }
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "experiments",
        "-p",
        "vnetd",
        "-p",
        "vadapt",
        "--bins",
    ]))?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    eprintln!("\nxtask demo: VADAPT on the wan scenario (about 4 minutes)");
    run(Command::new(root.join("target/release/bench"))
        .args(["adapt", "--demo", "--report"])
        .arg(root.join("target/vadapt-demo.svg")))
}
