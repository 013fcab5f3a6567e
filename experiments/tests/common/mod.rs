//! What the root-only end-to-end tests of the testbed share: the `testbed` binary, a run that
//! is taken down when its test ends (passed or not) and the check that nothing of it remains.

#![allow(dead_code)] // Each test file uses a part of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn testbed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_testbed"))
}

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A run that is taken down when the test ends, whether it passed or not.
pub struct Run {
    pub name: String,
}

impl Run {
    pub fn up(scenario_name: &str, run: &str, mode: &str) -> Run {
        Run::up_with(scenario_name, run, mode, &[])
    }

    pub fn up_with(scenario_name: &str, run: &str, mode: &str, options: &[&str]) -> Run {
        let r = Run {
            name: run.to_string(),
        };
        let out = testbed()
            .args(["up"])
            .arg(scenario(scenario_name))
            .args(["--run", run, "--network", mode])
            .args(options)
            .output()
            .unwrap();
        ok(out, &format!("testbed up {scenario_name} --network {mode}"));
        r
    }

    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        testbed()
            .args(["exec", &self.name, node, "--"])
            .args(cmd)
            .output()
            .unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        let out = testbed()
            .args(["status", &self.name, "--json"])
            .output()
            .unwrap();
        serde_json::from_str(&ok(out, "status")).unwrap()
    }

    pub fn nodes(&self, kind: &str) -> Vec<(String, String)> {
        self.status()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == kind)
            .map(|n| {
                (
                    n["name"].as_str().unwrap().to_string(),
                    n["ip"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    pub fn patterns(&self, args: &[&str]) -> serde_json::Value {
        let out = testbed()
            .args(["patterns", &self.name, "--timeout", "300", "--"])
            .args(args)
            .output()
            .unwrap();
        serde_json::from_str(ok(out, "testbed patterns").trim()).unwrap()
    }

    /// `vnetctl ARGS` against this run's daemons (`testbed vnetctl`); its output.
    pub fn vnetctl(&self, args: &[&str]) -> String {
        let out = testbed()
            .args(["vnetctl", &self.name, "--"])
            .args(args)
            .output()
            .unwrap();
        ok(out, &format!("vnetctl {}", args.join(" ")))
    }

    /// What VTTIF at the Proxy of this run reports (`vnetctl app-topology --format json`).
    pub fn app_topology(&self) -> serde_json::Value {
        serde_json::from_str(&self.vnetctl(&["app-topology", "--format", "json"])).unwrap()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = testbed()
            .args(["down", &self.name])
            .stdout(Stdio::null())
            .status();
        assert_nothing_left(&self.name);
    }
}

/// Nothing of run `run` remains: namespaces, cgroups, state, processes.
pub fn assert_nothing_left(run: &str) {
    let prefix = format!("tb-{run}.");
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(netns.is_empty(), "namespaces left behind: {netns:?}");
    for c in ["cpu", "cpuacct"] {
        let d = Path::new("/sys/fs/cgroup")
            .join(c)
            .join("testbed")
            .join(run);
        assert!(!d.exists(), "cgroup left behind: {}", d.display());
    }
    assert!(
        !Path::new("/run/testbed").join(run).exists(),
        "state left behind"
    );
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let stray: Vec<&str> = ps
        .lines()
        .filter(|l| {
            l.contains(&format!("tb-{run}."))
                || l.contains(&format!("linkemu --run {run} "))
                || l.contains(&format!("/run/testbed/{run}/"))
        })
        .collect();
    assert!(stray.is_empty(), "processes left behind: {stray:?}");
    // `up` may widen the kernel's allowed congestion control list; the last `down` restores it.
    let others = std::fs::read_dir("/run/testbed").map_or(0, |d| d.count());
    if others == 0 {
        assert!(
            !Path::new("/run/testbed.tcp_allowed_congestion_control").exists(),
            "allowed TCP congestion control list not restored"
        );
    }
}
