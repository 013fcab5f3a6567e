//! The testbed's contact with the kernel: `ip`/`tc`/`bridge` batches, namespaces, cgroups.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

/// Where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/run/netns";
/// Where the testbed keeps the state of its runs.
pub const STATE_DIR: &str = "/run/testbed";
/// The cgroup v1 hierarchies a run's processes are placed in: `cpu` (quota) and `cpuacct` (usage).
pub const CONTROLLERS: [&str; 2] = ["cpu", "cpuacct"];
/// CFS period used for every quota.
pub const CFS_PERIOD_US: u64 = 100_000;
/// Real-time budget of one run's link emulators, in µs per second per CPU.
pub const RT_RUN_US: u64 = 300_000;
/// Real-time budget of all runs together (the machine's default ceiling is 950 000).
pub const RT_ALL_US: u64 = 900_000;

/// The congestion control algorithms the kernel lets network namespaces other than the first
/// choose (one list for the whole machine).
const ALLOWED_CONGESTION: &str = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";
/// That list as it was before the first run widened it, kept until the last run goes down.
const ALLOWED_CONGESTION_SAVED: &str = "/run/testbed.tcp_allowed_congestion_control";

/// Lets network namespaces choose TCP congestion control `algorithm`: checks that the kernel has
/// it and adds it to the machine's allowed list if missing, saving the list as it was (see
/// [`restore_allowed_congestion`]). This grants a permission only; no socket changes algorithm.
///
/// # Errors
/// The kernel lacks `algorithm`, or the lists cannot be read or written.
pub fn allow_congestion(algorithm: &str) -> Result<()> {
    let available = fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .context("read the available TCP congestion control algorithms")?;
    if !available.split_whitespace().any(|a| a == algorithm) {
        bail!(
            "TCP congestion control `{algorithm}` is not available in this kernel (available: {})",
            available.trim()
        );
    }
    let allowed = fs::read_to_string(ALLOWED_CONGESTION).context("read the allowed list")?;
    if allowed.split_whitespace().any(|a| a == algorithm) {
        return Ok(());
    }
    if !Path::new(ALLOWED_CONGESTION_SAVED).exists() {
        fs::write(ALLOWED_CONGESTION_SAVED, allowed.trim())
            .with_context(|| format!("write {ALLOWED_CONGESTION_SAVED}"))?;
    }
    fs::write(
        ALLOWED_CONGESTION,
        format!("{} {algorithm}", allowed.trim()),
    )
    .with_context(|| format!("allow TCP congestion control `{algorithm}`"))
}

/// Puts back the allowed list that [`allow_congestion`] saved, if it saved one.
///
/// # Errors
/// The saved list cannot be read, written back or removed.
pub fn restore_allowed_congestion() -> Result<()> {
    match fs::read_to_string(ALLOWED_CONGESTION_SAVED) {
        Ok(saved) => {
            fs::write(ALLOWED_CONGESTION, saved.trim())
                .context("restore the allowed TCP congestion control list")?;
            fs::remove_file(ALLOWED_CONGESTION_SAVED)
                .with_context(|| format!("remove {ALLOWED_CONGESTION_SAVED}"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("read {ALLOWED_CONGESTION_SAVED}")),
    }
}

/// A command that dies with the thread that started it: if `testbed up` is killed while an
/// `ip -batch` is half-way through creating namespaces, that `ip` must not go on creating them
/// while the next `up` or `down` of the same run is removing them.
fn dies_with_caller(tool: &str) -> Command {
    let mut cmd = Command::new(tool);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe, with constant arguments.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Runs `tool [-n NETNS] -batch -` with `lines` on stdin.
///
/// # Errors
/// The tool's own message, with the batch's first lines for context, when it fails.
pub fn batch(tool: &str, netns: Option<&str>, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = dies_with_caller(tool);
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{tool}` (is iproute2 installed?)"))?;
    let mut stdin = child.stdin.take().context("stdin of batch")?;
    stdin.write_all((lines.join("\n") + "\n").as_bytes())?;
    drop(stdin);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // `ip -batch` says "Command failed -:N": show that line.
        let failed = err
            .lines()
            .find_map(|l| l.strip_prefix("Command failed -:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .and_then(|n| lines.get(n.wrapping_sub(1)))
            .map(|l| format!(" (at `{tool} {l}`)"))
            .unwrap_or_default();
        bail!(
            "{tool} in {}: {}{failed}",
            netns.unwrap_or("root namespace"),
            err.trim()
        );
    }
    Ok(())
}

/// Runs `f` on a thread that has entered network namespace `netns`.
///
/// # Errors
/// If the namespace cannot be entered, or `f` fails.
pub fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = Path::new(NETNS_DIR).join(netns);
    let file = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("enter {netns}"))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| bail!("thread in {netns} panicked"))
    })
}

/// Writes a sysctl of the current thread's network namespace (e.g. `net/ipv6/conf/all/disable_ipv6`).
///
/// # Errors
/// If the file cannot be written.
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let p = Path::new("/proc/sys").join(key);
    fs::write(&p, value).with_context(|| format!("sysctl {key}={value}"))
}

/// Whether a TCP socket of the current thread's network namespace listens on `port` (IPv4), read
/// from `/proc/thread-self/net/tcp`: a connection to it would be accepted, yet none is made, so
/// the listener never sees a client that says nothing.
///
/// # Errors
/// If the table cannot be read.
pub fn tcp_listening(port: u16) -> Result<bool> {
    let table = fs::read_to_string("/proc/thread-self/net/tcp")
        .context("read /proc/thread-self/net/tcp")?;
    Ok(table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // `sl local_address rem_address st ...`, addresses as hex `IP:PORT`, state 0A = LISTEN.
        f.len() > 3
            && f[3] == "0A"
            && f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port)
    }))
}

/// Network namespace names whose name starts with `prefix`.
#[must_use]
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether network namespace `name` exists.
#[must_use]
pub fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// Pids of every process whose network namespace is one of `netns`.
#[must_use]
pub fn pids_in_netns(netns: &[String]) -> Vec<i32> {
    let inodes: Vec<u64> = netns
        .iter()
        .filter_map(|n| fs::metadata(Path::new(NETNS_DIR).join(n)).ok())
        .map(|m| m.ino())
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| inodes.contains(&m.ino()))
        })
        .collect()
}

/// Sends `sig` to every pid, ignoring processes that are already gone.
pub fn signal_all(pids: &[i32], sig: nix::sys::signal::Signal) {
    for &pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// The cgroups of one run: `/sys/fs/cgroup/{cpu,cpuacct}/testbed/RUN/NODE`.
#[derive(Debug, Clone)]
pub struct Cgroups {
    run: String,
}

impl Cgroups {
    /// The cgroups of run `run`.
    #[must_use]
    pub fn new(run: &str) -> Self {
        Cgroups {
            run: run.to_string(),
        }
    }

    /// Directory of the run's cgroups in `controller`.
    #[must_use]
    pub fn run_dir(&self, controller: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("testbed")
            .join(&self.run)
    }

    /// Directory of cgroup `name` in `controller`.
    #[must_use]
    pub fn dir(&self, controller: &str, name: &str) -> PathBuf {
        self.run_dir(controller).join(name)
    }

    /// Creates cgroup `name` with a CPU quota in cores (`None` = unlimited).
    ///
    /// # Errors
    /// If the cgroup cannot be created or the quota written.
    pub fn create(&self, name: &str, cores: Option<f64>) -> Result<()> {
        for c in CONTROLLERS {
            let d = self.dir(c, name);
            fs::create_dir_all(&d).with_context(|| format!("create cgroup {}", d.display()))?;
        }
        if let Some(cores) = cores {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let quota = (cores * CFS_PERIOD_US as f64).round().max(1000.0) as u64;
            let d = self.dir("cpu", name);
            fs::write(d.join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string())?;
            fs::write(d.join("cpu.cfs_quota_us"), quota.to_string())
                .with_context(|| format!("set cpu.cfs_quota_us of {}", d.display()))?;
        }
        Ok(())
    }

    /// Gives cgroup `name` (and the run and the `testbed` parent) a real-time budget, so that
    /// `SCHED_FIFO` link emulators can run in it: the kernel's RT group scheduling lets a cgroup
    /// hold real-time tasks only with `cpu.rt_runtime_us` > 0 there and in every ancestor. The
    /// budget also caps them: a run's emulators together get at most [`RT_RUN_US`] of every
    /// [`CFS_PERIOD_US`]-long period on each CPU.
    ///
    /// # Errors
    /// If the budget cannot be set (e.g. other runs hold the `testbed` parent's whole budget).
    pub fn grant_realtime(&self, name: &str) -> Result<()> {
        let parent = self
            .run_dir("cpu")
            .parent()
            .context("cgroup parent")?
            .join("cpu.rt_runtime_us");
        let current: u64 = fs::read_to_string(&parent)?.trim().parse().unwrap_or(0);
        if current < RT_ALL_US {
            fs::write(&parent, RT_ALL_US.to_string())
                .with_context(|| format!("write {}", parent.display()))?;
        }
        for dir in [self.run_dir("cpu"), self.dir("cpu", name)] {
            let f = dir.join("cpu.rt_runtime_us");
            fs::write(&f, RT_RUN_US.to_string())
                .with_context(|| format!("write {}", f.display()))?;
        }
        Ok(())
    }

    /// Moves process `pid` into cgroup `name` (both controllers).
    ///
    /// # Errors
    /// If the cgroup does not exist or the pid cannot be moved.
    pub fn add(&self, name: &str, pid: u32) -> Result<()> {
        for c in CONTROLLERS {
            let f = self.dir(c, name).join("cgroup.procs");
            fs::write(&f, pid.to_string())
                .with_context(|| format!("move pid {pid} into {}", f.display()))?;
        }
        Ok(())
    }

    /// Moves the calling thread alone into cgroup `name` (both controllers; cgroup v1 places
    /// threads one by one through `tasks`), e.g. a thread that works for a host on its behalf.
    ///
    /// # Errors
    /// If the cgroup does not exist or the thread cannot be moved.
    pub fn add_current_thread(&self, name: &str) -> Result<()> {
        let tid = nix::unistd::gettid();
        for c in CONTROLLERS {
            let f = self.dir(c, name).join("tasks");
            fs::write(&f, tid.to_string())
                .with_context(|| format!("move thread {tid} into {}", f.display()))?;
        }
        Ok(())
    }

    /// CPU time used by cgroup `name` so far.
    #[must_use]
    pub fn usage(&self, name: &str) -> Option<Duration> {
        let s = fs::read_to_string(self.dir("cpuacct", name).join("cpuacct.usage")).ok()?;
        s.trim().parse().ok().map(Duration::from_nanos)
    }

    /// CPU quota of cgroup `name` in cores, `None` if unlimited.
    #[must_use]
    pub fn quota(&self, name: &str) -> Option<f64> {
        let s = fs::read_to_string(self.dir("cpu", name).join("cpu.cfs_quota_us")).ok()?;
        let q: i64 = s.trim().parse().ok()?;
        #[allow(clippy::cast_precision_loss)]
        (q > 0).then(|| q as f64 / CFS_PERIOD_US as f64)
    }

    /// Every pid in any of the run's cgroups.
    #[must_use]
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for c in CONTROLLERS {
            let Ok(dirs) = fs::read_dir(self.run_dir(c)) else {
                continue;
            };
            for d in dirs.filter_map(|e| e.ok()) {
                if let Ok(s) = fs::read_to_string(d.path().join("cgroup.procs")) {
                    pids.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Pids in cgroup `name`.
    #[must_use]
    pub fn pids_of(&self, name: &str) -> Vec<i32> {
        fs::read_to_string(self.dir("cpu", name).join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes the run's cgroups (they must be empty of processes).
    ///
    /// # Errors
    /// If a cgroup cannot be removed.
    pub fn remove(&self) -> Result<()> {
        for c in CONTROLLERS {
            let dir = self.run_dir(c);
            if let Ok(children) = fs::read_dir(&dir) {
                for child in children
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                {
                    remove_cgroup_dir(&child.path())?;
                }
            }
            if dir.exists() {
                remove_cgroup_dir(&dir)?;
            }
            // The parent `testbed` cgroup goes with the last run (it fails while others exist).
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }

    /// Names of runs that have cgroups.
    #[must_use]
    pub fn runs() -> Vec<String> {
        let mut v = Vec::new();
        for c in CONTROLLERS {
            if let Ok(d) = fs::read_dir(Path::new("/sys/fs/cgroup").join(c).join("testbed")) {
                v.extend(
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .filter_map(|e| e.file_name().into_string().ok()),
                );
            }
        }
        v.sort();
        v.dedup();
        v
    }
}

/// Removes an empty cgroup directory. A killed process is gone from `cgroup.procs` as soon as it
/// starts exiting, but its cgroup stays busy until the exit is through (closing TAP devices
/// waits for the network stack); `down` right after a killed `up` met that as a rare `EBUSY`,
/// so it is retried for up to two seconds. (A zombie does not keep a cgroup busy.)
fn remove_cgroup_dir(dir: &Path) -> Result<()> {
    let start = Instant::now();
    loop {
        match fs::remove_dir(dir) {
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && start.elapsed() < Duration::from_secs(2) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => {
                return r.with_context(|| {
                    format!(
                        "remove cgroup {} (after {:.1} s)",
                        dir.display(),
                        start.elapsed().as_secs_f64()
                    )
                })
            }
        }
    }
}

/// Kills every process of the given cgroups and namespaces, waiting until they are gone.
///
/// # Errors
/// If processes survive SIGKILL for five seconds.
pub fn kill_everything(cgroups: &Cgroups, netns: &[String]) -> Result<()> {
    let find = || {
        let mut p = cgroups.pids();
        p.extend(pids_in_netns(netns));
        let me = i32::try_from(std::process::id()).unwrap_or(-1);
        p.retain(|&x| x != me);
        p.sort_unstable();
        p.dedup();
        p
    };
    let pids = find();
    if pids.is_empty() {
        return Ok(());
    }
    signal_all(&pids, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let left = find();
        if left.is_empty() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_millis(500) {
            signal_all(&left, nix::sys::signal::Signal::SIGKILL);
        }
        if start.elapsed() > Duration::from_secs(5) {
            bail!("processes {left:?} survive SIGKILL");
        }
    }
}

/// Creates a persistent UTS namespace at `file` whose hostname is `hostname`.
///
/// # Errors
/// If `unshare` fails.
pub fn create_uts(file: &Path, hostname: &str) -> Result<()> {
    fs::File::create(file).with_context(|| format!("create {}", file.display()))?;
    let out = dies_with_caller("unshare")
        .arg(format!("--uts={}", file.display()))
        .args(["hostname", hostname])
        .output()
        .context("cannot run `unshare` (util-linux)")?;
    if !out.status.success() {
        bail!(
            "unshare --uts={}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Unmounts and removes every persistent UTS namespace file in `dir`, then `dir`.
pub fn remove_uts_dir(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_file(e.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listening_socket_and_only_while_it_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(tcp_listening(port).unwrap());
        drop(listener);
        assert!(!tcp_listening(port).unwrap());
    }
}
