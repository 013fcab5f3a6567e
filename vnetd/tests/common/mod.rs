//! What the root-only end-to-end tests of this crate share: a network namespace that is
//! deleted when the test ends, also when it fails.

#![allow(dead_code)] // Each test file uses a part of it.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use nix::sched::{setns, CloneFlags};

/// A network namespace that exists as long as this value does, with its loopback up.
pub struct Netns {
    pub name: String,
    pub path: PathBuf,
}

impl Netns {
    /// Namespace `name`; a leftover of that name (a killed earlier run) is deleted first.
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(status.success(), "ip netns add {name} (are we root?)");
        let ns = Netns {
            path: PathBuf::from(format!("/run/netns/{name}")),
            name,
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Namespace `vnio-PID-TAG`.
    pub fn tagged(tag: &str) -> Netns {
        Netns::new(format!("vnio-{}-{tag}", std::process::id()))
    }

    /// `ip -n NS ARGS`; its stdout, or `Err(stderr)`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("run ip");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `args` as a command to run inside the namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// Runs `args` inside the namespace and returns its output, whatever its status.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ip netns exec")
    }

    /// Runs `args` inside the namespace; panics with its output if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{args:?} in {}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `args` inside the namespace to the end; whether it succeeded.
    pub fn succeeds(&self, args: &[&str]) -> bool {
        self.command(args)
            .stdout(Stdio::null())
            .status()
            .expect("run ip netns exec")
            .success()
    }

    /// Starts `args` inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("run ip netns exec")
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let file = File::open(&self.path).expect("open netns");
        std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
