//! User-space link emulator: rate, bottleneck queue, delay, jitter and loss
//! between two TAP devices in two network namespaces.
//!
//! This kernel has no `netem` (and no `fq`), so the testbed cannot shape links
//! with `tc`. Instead every emulated link is a pair of TAP devices, one in each
//! namespace (typically the site switches' namespaces, where the testbed
//! enslaves them to the bridges), and [`run`] carries Ethernet frames between
//! them through a [`model::Direction`] per direction.
//!
//! # Structure
//!
//! - [`model`]: the pure, I/O-free model (FIFO drained at the link rate,
//!   tail drop, loss on the wire, delay + jitter after the queue, no
//!   reordering). All behaviour worth unit-testing lives there.
//! - TAP devices come from [`vnetd::io::tap`], created inside each target
//!   namespace.
//! - this module: the I/O loop, [`LinkSpec`] and [`LinkStats`].
//! - [`harness`]: namespace pairs, in-thread emulators, ping and TCP goodput
//!   helpers shared by the end-to-end test and [`accuracy`].
//! - [`accuracy`]: the `bench linkemu` measurement.
//!
//! # The I/O loop
//!
//! One thread per link, no locks. Each iteration:
//!
//! 1. writes every frame whose due time has come, give or take the wake-up
//!    compensation below (per-direction FIFOs of frames in flight; due times
//!    are monotonic, so the head is the earliest), and records its
//!    *lateness* (actual write time − due time);
//! 2. sleeps in `ppoll(2)` on both TAP fds until the earliest due time (or a
//!    frame arrives, or [`RunOptions::stop_check`] elapses, to notice `stop`);
//! 3. drains readable TAPs with non-blocking reads (bounded batches), stamps
//!    each frame with `Instant::now()` and offers it to the model.
//!
//! Timing precision:
//!
//! - The thread's timer slack is set to 1 µs. The kernel still gives `ppoll`
//!   a slack of 0.1 % of the timeout for normal (non-realtime) threads
//!   (`select_estimate_accuracy`), e.g. 30 µs for a 30 ms sleep, and a lone
//!   hrtimer fires at the *end* of its slack window; long sleeps therefore
//!   aim early by `timeout/512` and finish with a short, precise sleep.
//! - Wake-up latency compensation ([`RunOptions::max_early`]): a timed
//!   wake-up arrives some tens of µs after the requested time (measured
//!   40–65 µs median on the 2-vCPU Firecracker VM this was developed on).
//!   The loop keeps a running estimate of that overshoot, ends its sleeps
//!   that much early and writes the frames due within it. Frames thus leave
//!   a few µs early (bounded by the estimate, ≤ 200 µs) rather than
//!   systematically ~50 µs late, which on short links is a visible share of
//!   the RTT. The read side has the same wake-up latency (a frame's arrival
//!   stamp is taken when the emulator has woken up and read it), so on
//!   average the end-to-end delay still does not undercut the configured
//!   one.
//! - Realtime priority ([`RunOptions::realtime_priority`], on by default):
//!   with the CPUs saturated by the workload, a normal thread waits
//!   milliseconds for the CPU; as `SCHED_FIFO` it preempts normal tasks like
//!   the kernel's own network processing would. Measured with two busy
//!   threads on two vCPUs (20 Mbit/s, 10 ms): RTT +0.9 ms, mdev 2.5 ms without,
//!   +0.12 ms, mdev 0.08 ms with; 100 Mbit/s TCP goodput 67 % without, 99 %
//!   with.
//! - No busy-polling by default ([`RunOptions::spin`]): spinning 200 µs
//!   before each due time cut the median lateness from ~50 µs to ~0 but
//!   tripled the CPU cost (15 % → 51 % of a core at 20 Mbit/s, 48 % → 97 % at
//!   100 Mbit/s); the compensation gets most of the benefit for free. A spin
//!   window of a few tens of µs is pointless where the wake-up itself costs
//!   more than that.
//!
//! Remaining lateness tails (p99 up to a few ms on that VM) come from the
//! hypervisor not running the vCPU (steal time ~8 % during the benchmark),
//! which no guest-side scheduling can avoid.
//!
//! What lateness does *not* include: the time between the kernel queueing a
//! frame on a TAP and the emulator reading it (the wake-up latency of the
//! `ppoll`), which delays the frame's arrival stamp. That part shows up only
//! in end-to-end RTT measurements ([`accuracy`]).
//!
//! Writing a frame to a TAP runs the receiving namespace's network stack
//! (bridge forwarding, veth transmit, possibly IP input) in the emulator
//! thread, so the emulator's CPU time includes that kernel work.
//!
//! # Robustness
//!
//! Frames longer than [`LinkSpec::max_frame`] are dropped and counted. Write
//! errors (e.g. `EIO` while the receiving TAP is administratively down) drop
//! the frame and are counted; `EAGAIN`/`ENOBUFS` keep it and retry when the fd
//! is writable. A TAP whose interface has been deleted (`POLLERR`, e.g. its
//! namespace was removed) ends the run with an error; stop the emulator
//! before deleting its namespaces.
//!
//! # Deployment notes
//!
//! - Run one emulator per link (one thread each); [`run`] blocks.
//! - Realtime priority needs `CAP_SYS_NICE` and, on kernels with
//!   `CONFIG_RT_GROUP_SCHED` and the cgroup v1 `cpu` controller, an RT budget
//!   (`cpu.rt_runtime_us` > 0) in the emulator's cgroup and all its ancestors;
//!   new cgroups have 0, and then the emulator runs (with a warning) as a
//!   normal thread. It switches only after `ready()`, so a supervisor can
//!   move it into a cgroup first (an RT task cannot enter a cgroup without
//!   an RT budget).
//! - The TAPs are not persistent: they vanish when the emulator exits.

pub mod accuracy;
pub mod harness;
pub mod hist;
pub mod model;

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use hist::{Histogram, Summary};
pub use model::{bdp_queue_bytes, Counters, Direction, Reason, Shape, Verdict};
use vnetd::io::tap::{self, Tap, TapError, MAX_FRAME as MAX_TAP_FRAME};

/// One end of a link: a TAP named `ifname` created inside `netns`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// The namespace, e.g. `/run/netns/tb-x-sw1`.
    pub netns: PathBuf,
    /// The TAP interface name (at most 15 bytes).
    pub ifname: String,
}

/// An emulated link: two endpoints and a shape per direction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LinkSpec {
    /// Name used in stats and error messages.
    pub name: String,
    /// First end.
    pub a: Endpoint,
    /// Second end.
    pub b: Endpoint,
    /// Shape of frames read from `a` and written to `b`.
    pub a_to_b: Shape,
    /// Shape of frames read from `b` and written to `a`.
    pub b_to_a: Shape,
    /// Longest frame carried (bytes, Ethernet header included, no FCS), e.g.
    /// 1600 or MTU + 18; longer frames are dropped and counted.
    pub max_frame: usize,
    /// Seed of the loss/jitter RNGs (the two directions use derived seeds).
    pub seed: u64,
    /// Where to write [`LinkStats`] as JSON when the run ends.
    pub stats_file: Option<PathBuf>,
}

impl LinkSpec {
    /// Checks names, frame size and shapes.
    pub fn validate(&self) -> anyhow::Result<()> {
        tap::validate_ifname(&self.a.ifname).context("endpoint a")?;
        tap::validate_ifname(&self.b.ifname).context("endpoint b")?;
        if self.a == self.b {
            bail!(
                "both endpoints are {} in {}",
                self.a.ifname,
                self.a.netns.display()
            );
        }
        if !(64..=MAX_TAP_FRAME).contains(&self.max_frame) {
            bail!(
                "max_frame must be within 64..={MAX_TAP_FRAME}, got {}",
                self.max_frame
            );
        }
        self.a_to_b.validate().context("a_to_b shape")?;
        self.b_to_a.validate().context("b_to_a shape")?;
        Ok(())
    }
}

/// Tuning knobs of the I/O loop (the defaults are what [`run`] uses).
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Busy-poll (zero-timeout `ppoll`) instead of sleeping when the next due
    /// time is at most this far away. `ZERO` never spins.
    pub spin: Duration,
    /// Longest single sleep: bounds how late `stop` is noticed.
    pub stop_check: Duration,
    /// Upper bound of the wake-up latency compensation: the loop keeps a
    /// running estimate of how late its timed wake-ups are (EWMA of the
    /// overshoot, each sample clamped to this bound), ends its sleeps that
    /// much before the next due time and writes frames due within that
    /// estimate. Frames then leave at most this much early instead of
    /// systematically late. `ZERO` disables the compensation.
    pub max_early: Duration,
    /// Run the emulator thread as `SCHED_FIFO` with this priority (1..=99),
    /// switched on right after `ready()`. Failure to switch is not fatal: it
    /// is printed on stderr and recorded in [`LinkStats::realtime_error`].
    /// Typical failures: no `CAP_SYS_NICE`, or (kernels with
    /// `CONFIG_RT_GROUP_SCHED`, cgroup v1 `cpu`) a cgroup whose
    /// `cpu.rt_runtime_us` is 0, the default for new cgroups; give the
    /// emulator's cgroup (and its ancestors) an RT budget to allow it. Without
    /// it, a CPU-saturating workload delays frames by milliseconds (see
    /// [`accuracy`]). The loop never busy-waits unless [`Self::spin`] is set,
    /// and the kernel's RT throttling (95 % by default) bounds the damage of
    /// a runaway realtime thread.
    pub realtime_priority: Option<i32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            spin: Duration::ZERO,
            stop_check: Duration::from_millis(50),
            max_early: Duration::from_micros(200),
            realtime_priority: Some(DEFAULT_RT_PRIORITY),
        }
    }
}

/// `SCHED_FIFO` priority used by default: above every normal task, below
/// the kernel's own realtime threads (e.g. threaded IRQs at 50).
pub const DEFAULT_RT_PRIORITY: i32 = 10;

/// Per-direction statistics of a run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LaneStats {
    /// The model's counters (offered, scheduled, dropped by reason).
    pub model: Counters,
    /// Frames actually written to the receiving TAP.
    pub frames_written: u64,
    /// Bytes actually written.
    pub bytes_written: u64,
    /// Frames dropped because the write failed (e.g. `EIO`: TAP down).
    pub write_errors: u64,
    /// The last write error, if any.
    pub last_write_error: Option<String>,
    /// Times a write would block (`EAGAIN`/`ENOBUFS`); the frame was retried.
    pub write_blocked: u64,
    /// Failed reads from the sending TAP (other than "no frame waiting").
    pub read_errors: u64,
    /// Frames longer than `max_frame`, dropped before the model.
    pub oversize_dropped: u64,
    /// Frames dropped because too many bytes were in flight (memory bound).
    pub inflight_dropped: u64,
    /// Frames still in flight when the run ended (not written).
    pub frames_unsent: u64,
    /// Lateness of written frames: write time − due time (0 for frames
    /// written early, see [`RunOptions::max_early`]).
    pub lateness_us: Summary,
    /// Frames written before their due time (wake-up compensation).
    pub frames_early: u64,
    /// How early those frames were.
    pub early_us: Summary,
    /// Time spent in `write(2)` per frame (the receiving stack runs in it).
    pub write_syscall_us: Summary,
}

/// CPU cost of the emulator thread.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CpuStats {
    /// User CPU time (s).
    pub user_s: f64,
    /// System CPU time (s), including the receiving stacks' work done in
    /// `write(2)`.
    pub system_s: f64,
    /// (user + system) / elapsed, in percent of one core.
    pub core_percent: f64,
    /// (user + system) per frame read (both directions), ns.
    pub ns_per_frame: f64,
}

/// How the loop slept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct WakeStats {
    /// `ppoll` calls.
    pub polls: u64,
    /// Calls that ended by timeout (not by a frame arriving).
    pub timeouts: u64,
    /// For those: actual return time − requested end of the timeout.
    pub timer_late_us: Summary,
    /// The wake-up latency estimate at the end of the run (µs).
    pub compensation_us: f64,
}

/// Everything measured during a [`run`]; written to [`LinkSpec::stats_file`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LinkStats {
    /// [`LinkSpec::name`].
    pub name: String,
    /// From `ready()` to stop (s).
    pub elapsed_s: f64,
    /// Frames from `a` to `b`.
    pub a_to_b: LaneStats,
    /// Frames from `b` to `a`.
    pub b_to_a: LaneStats,
    /// Lateness over both directions.
    pub lateness_us: Summary,
    /// CPU cost.
    pub cpu: CpuStats,
    /// Sleep/wake-up behaviour.
    pub wake: WakeStats,
    /// [`RunOptions::spin`] in µs.
    pub spin_us: f64,
    /// Whether the thread ran as `SCHED_FIFO`.
    pub realtime: bool,
    /// Why switching to `SCHED_FIFO` failed, if it was requested and did.
    pub realtime_error: Option<String>,
    /// Why the run ended with an error, if it did.
    pub error: Option<String>,
}

/// Creates both TAPs, calls `ready()` once they exist, then forwards frames
/// until `stop` becomes true (or forever). Writes [`LinkStats`] to
/// `spec.stats_file` if set (also when the loop fails).
pub fn run(spec: &LinkSpec, ready: impl FnOnce(), stop: &AtomicBool) -> anyhow::Result<()> {
    run_with(spec, &RunOptions::default(), ready, stop).map(drop)
}

/// [`run`] with explicit [`RunOptions`], returning the statistics.
pub fn run_with(
    spec: &LinkSpec,
    opts: &RunOptions,
    ready: impl FnOnce(),
    stop: &AtomicBool,
) -> anyhow::Result<LinkStats> {
    spec.validate()
        .with_context(|| format!("invalid link spec {}", spec.name))?;
    let mut tuning = ThreadTuning::apply();
    let tap_a = Tap::create_in(&spec.a.netns, &spec.a.ifname)
        .with_context(|| format!("link {}: endpoint a", spec.name))?;
    let tap_b = Tap::create_in(&spec.b.netns, &spec.b.ifname)
        .with_context(|| format!("link {}: endpoint b", spec.name))?;
    let mut ab = Lane::new(spec.a_to_b, spec.seed, spec.max_frame)
        .with_context(|| format!("link {}: a_to_b", spec.name))?;
    let mut ba = Lane::new(
        spec.b_to_a,
        spec.seed ^ 0x9e37_79b9_7f4a_7c15,
        spec.max_frame,
    )
    .with_context(|| format!("link {}: b_to_a", spec.name))?;

    ready();
    // After ready(): a supervisor may move us into a cgroup before that, and
    // (with RT group scheduling) realtime tasks cannot enter a cgroup without
    // an RT budget.
    if let Some(prio) = opts.realtime_priority {
        tuning.set_realtime(prio);
        if let Some(e) = &tuning.realtime_error {
            eprintln!(
                "linkemu {}: running without realtime priority ({e}); \
                 timing suffers when the CPUs are busy",
                spec.name
            );
        }
    }
    let cpu0 = thread_cpu();
    let epoch = Instant::now();
    let mut wake = Wake::default();
    let result = forward(
        [&tap_a, &tap_b],
        [&mut ab, &mut ba],
        opts,
        epoch,
        stop,
        &mut wake,
    );
    let elapsed = epoch.elapsed();
    let cpu1 = thread_cpu();

    let (user, system) = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b.0.saturating_sub(a.0), b.1.saturating_sub(a.1)),
        _ => (Duration::ZERO, Duration::ZERO),
    };
    let frames = ab.model.counters().frames_in
        + ba.model.counters().frames_in
        + ab.stats.oversize_dropped
        + ba.stats.oversize_dropped
        + ab.stats.inflight_dropped
        + ba.stats.inflight_dropped;
    let cpu_total = (user + system).as_secs_f64();
    let mut all = ab.lateness.clone();
    all.merge(&ba.lateness);
    let stats = LinkStats {
        name: spec.name.clone(),
        elapsed_s: elapsed.as_secs_f64(),
        a_to_b: ab.finish(),
        b_to_a: ba.finish(),
        lateness_us: all.summary(),
        cpu: CpuStats {
            user_s: user.as_secs_f64(),
            system_s: system.as_secs_f64(),
            core_percent: 100.0 * cpu_total / elapsed.as_secs_f64().max(1e-9),
            ns_per_frame: if frames == 0 {
                0.0
            } else {
                cpu_total * 1e9 / frames as f64
            },
        },
        wake: WakeStats {
            polls: wake.polls,
            timeouts: wake.timeouts,
            timer_late_us: wake.late.summary(),
            compensation_us: wake.estimate.as_secs_f64() * 1e6,
        },
        spin_us: opts.spin.as_secs_f64() * 1e6,
        realtime: tuning.realtime,
        realtime_error: tuning.realtime_error.clone(),
        error: result.as_ref().err().map(|e| format!("{e:#}")),
    };
    drop(tuning);
    if let Some(path) = &spec.stats_file {
        write_stats(path, &stats)
            .with_context(|| format!("link {}: write stats to {}", spec.name, path.display()))?;
    }
    result.with_context(|| format!("link {}", spec.name))?;
    Ok(stats)
}

/// Writes `stats` as pretty JSON, atomically (temporary file + rename).
fn write_stats(path: &Path, stats: &LinkStats) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let json = serde_json::to_vec_pretty(stats).context("serialise stats")?;
    std::fs::write(&tmp, json).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename {}", tmp.display()))?;
    Ok(())
}

/// Frames read per TAP per loop iteration before writes get a turn.
const READ_BATCH: usize = 64;
/// Bound on the bytes in flight per direction (frames read, not yet written).
const MAX_INFLIGHT_BYTES: usize = 256 << 20;
/// Spare frame buffers kept for reuse per direction.
const POOL_MAX: usize = 1024;
/// Sleeps longer than this aim early by `1/EARLY_DIVISOR` of the sleep; see
/// the module docs (the kernel's ppoll slack is timeout/1000).
const EARLY_WAKE_ABOVE: Duration = Duration::from_millis(1);
const EARLY_DIVISOR: u32 = 512;

/// A frame waiting for its due time.
struct Pending {
    due: Duration,
    frame: Vec<u8>,
}

/// One direction: the model, the frames in flight and the statistics.
struct Lane {
    model: Direction,
    max_frame: usize,
    inflight: VecDeque<Pending>,
    inflight_bytes: usize,
    /// Arrival stamp of the last frame read (stamps are monotonic).
    last_arrival: Duration,
    pool: Vec<Vec<u8>>,
    lateness: Histogram,
    early: Histogram,
    write_time: Histogram,
    stats: LaneStats,
    /// The last write would block: wait for POLLOUT on the receiving TAP.
    blocked: bool,
}

impl Lane {
    fn new(shape: Shape, seed: u64, max_frame: usize) -> anyhow::Result<Self> {
        Ok(Self {
            model: Direction::new(shape, seed)?,
            max_frame,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            last_arrival: Duration::ZERO,
            pool: Vec::new(),
            lateness: Histogram::default(),
            early: Histogram::default(),
            write_time: Histogram::default(),
            stats: LaneStats::default(),
            blocked: false,
        })
    }

    /// Due time of the earliest frame in flight, unless writes are blocked.
    fn next_due(&self) -> Option<Duration> {
        if self.blocked {
            None
        } else {
            self.inflight.front().map(|p| p.due)
        }
    }

    /// Reads up to [`READ_BATCH`] frames from `src` and offers them to the model.
    ///
    /// Frames are stamped `lead` before they are read: the loop wakes up that long (its running
    /// wake-up latency estimate) after a frame reaches the TAP, as it does after a timer, so the
    /// frame's delay is counted from when it arrived, not from when the loop got to it. Stamps
    /// never go backwards.
    fn drain(&mut self, src: &Tap, epoch: Instant, lead: Duration, scratch: &mut [u8]) {
        for _ in 0..READ_BATCH {
            let n = match src.read_frame(scratch) {
                Ok(0) => return,
                Ok(n) => n,
                // Longer than the scratch buffer, so than any `max_frame`.
                Err(TapError::Truncated { .. }) => {
                    self.stats.oversize_dropped += 1;
                    continue;
                }
                Err(TapError::WouldBlock) => return,
                Err(_) => {
                    self.stats.read_errors += 1;
                    return;
                }
            };
            let now = epoch.elapsed().saturating_sub(lead).max(self.last_arrival);
            self.last_arrival = now;
            if n > self.max_frame {
                self.stats.oversize_dropped += 1;
                continue;
            }
            if self.inflight_bytes + n > MAX_INFLIGHT_BYTES {
                self.stats.inflight_dropped += 1;
                continue;
            }
            if let Verdict::Deliver { at } = self.model.offer(now, n) {
                let mut frame = self.pool.pop().unwrap_or_default();
                frame.clear();
                frame.extend_from_slice(&scratch[..n]);
                self.inflight_bytes += n;
                self.inflight.push_back(Pending { due: at, frame });
            }
        }
    }

    /// Writes every frame that is due within `early` to `dst`.
    fn flush(&mut self, dst: &Tap, epoch: Instant, early: Duration) {
        self.blocked = false;
        while let Some(head) = self.inflight.front() {
            let now = epoch.elapsed();
            if head.due > now + early {
                return;
            }
            let written = dst.write_frame(&head.frame);
            let spent = epoch.elapsed().saturating_sub(now);
            self.write_time
                .record(u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX));
            match written {
                Ok(()) => {
                    self.stats.frames_written += 1;
                    self.stats.bytes_written += head.frame.len() as u64;
                    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                    if now >= head.due {
                        self.lateness.record(ns(now - head.due));
                    } else {
                        self.lateness.record(0);
                        self.early.record(ns(head.due - now));
                    }
                }
                // EAGAIN or ENOBUFS: keep the frame, retry when writable.
                Err(TapError::WouldBlock) => {
                    self.stats.write_blocked += 1;
                    self.blocked = true;
                    return;
                }
                Err(e) => {
                    self.stats.write_errors += 1;
                    self.stats.last_write_error = Some(format!("{}: {e}", dst.name()));
                }
            }
            if let Some(done) = self.inflight.pop_front() {
                self.inflight_bytes -= done.frame.len();
                if self.pool.len() < POOL_MAX {
                    self.pool.push(done.frame);
                }
            }
        }
    }

    fn finish(&mut self) -> LaneStats {
        let mut stats = std::mem::take(&mut self.stats);
        stats.model = *self.model.counters();
        stats.frames_unsent = self.inflight.len() as u64;
        stats.lateness_us = self.lateness.summary();
        stats.frames_early = self.early.count();
        stats.early_us = self.early.summary();
        stats.write_syscall_us = self.write_time.summary();
        stats
    }
}

/// How long to sleep given the time to the next deadline.
fn sleep_time(remaining: Option<Duration>, opts: &RunOptions, realtime: bool) -> Duration {
    let Some(remaining) = remaining else {
        return opts.stop_check;
    };
    if remaining <= opts.spin {
        return Duration::ZERO;
    }
    let mut t = remaining - opts.spin;
    if !realtime && t > EARLY_WAKE_ABOVE {
        t -= t / EARLY_DIVISOR;
    }
    t.min(opts.stop_check)
}

/// The forwarding loop; returns on `stop` or on a fatal error.
fn forward(
    taps: [&Tap; 2],
    lanes: [&mut Lane; 2],
    opts: &RunOptions,
    epoch: Instant,
    stop: &AtomicBool,
    wake: &mut Wake,
) -> anyhow::Result<()> {
    let [tap_a, tap_b] = taps;
    let [ab, ba] = lanes;
    let realtime = is_realtime();
    let mut scratch = vec![0u8; MAX_TAP_FRAME];
    let mut fds = [
        libc::pollfd {
            fd: tap_a.as_raw_fd(),
            events: 0,
            revents: 0,
        },
        libc::pollfd {
            fd: tap_b.as_raw_fd(),
            events: 0,
            revents: 0,
        },
    ];
    while !stop.load(Ordering::Relaxed) {
        let early = wake.estimate;
        ab.flush(tap_b, epoch, early);
        ba.flush(tap_a, epoch, early);

        let next = match (ab.next_due(), ba.next_due()) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let remaining = next.map(|due| due.saturating_sub(epoch.elapsed() + early));
        let timeout = sleep_time(remaining, opts, realtime);
        fds[0].events = libc::POLLIN | if ba.blocked { libc::POLLOUT } else { 0 };
        fds[1].events = libc::POLLIN | if ab.blocked { libc::POLLOUT } else { 0 };
        let before = Instant::now();
        let ready = ppoll(&mut fds, timeout).context("ppoll on the TAPs")?;
        wake.polls += 1;
        if ready == 0 && !timeout.is_zero() {
            wake.timeouts += 1;
            let late = before.elapsed().saturating_sub(timeout);
            wake.late
                .record(u64::try_from(late.as_nanos()).unwrap_or(u64::MAX));
            wake.update_estimate(late, opts.max_early);
        }

        for (fd, tap) in fds.iter().zip([tap_a, tap_b]) {
            if fd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                bail!(
                    "TAP {} is gone (poll events {:#x}); was its namespace deleted?",
                    tap.name(),
                    fd.revents
                );
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            ab.drain(tap_a, epoch, wake.estimate, &mut scratch);
        }
        if fds[1].revents & libc::POLLIN != 0 {
            ba.drain(tap_b, epoch, wake.estimate, &mut scratch);
        }
    }
    Ok(())
}

/// Wake-up bookkeeping of the loop.
#[derive(Default)]
struct Wake {
    polls: u64,
    timeouts: u64,
    late: Histogram,
    /// Running estimate of the timer wake-up latency (≤ `max_early`).
    estimate: Duration,
}

impl Wake {
    /// Folds one observed timer overshoot into the estimate: an EWMA with
    /// weight 1/8 of samples clamped to `max_early`, so rare multi-ms stalls
    /// (e.g. the vCPU not being scheduled) cannot drag it far.
    fn update_estimate(&mut self, late: Duration, max_early: Duration) {
        let sample = late.min(max_early);
        self.estimate = (self.estimate * 7 + sample) / 8;
    }
}

/// `ppoll(2)` with a nanosecond timeout: the number of ready fds. `EINTR`
/// is not an error (0 ready).
fn ppoll(fds: &mut [libc::pollfd; 2], timeout: Duration) -> io::Result<usize> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: `fds` points to 2 valid, exclusively borrowed `pollfd`s, `ts` is
    // a valid timespec living across the call, and a null sigmask means "keep
    // the current mask".
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            for fd in fds.iter_mut() {
                fd.revents = 0;
            }
            return Ok(0);
        }
        return Err(e);
    }
    Ok(usize::try_from(rc).unwrap_or(0))
}

/// This thread's (user, system) CPU time.
fn thread_cpu() -> Option<(Duration, Duration)> {
    // SAFETY: all-zero is a valid `rusage` (plain integers and timevals).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, exclusively borrowed `rusage` for the kernel to fill.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return None;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Some((tv(ru.ru_utime), tv(ru.ru_stime)))
}

/// Whether this thread runs under a realtime policy.
fn is_realtime() -> bool {
    // SAFETY: sched_getscheduler(0) only queries the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    policy == libc::SCHED_FIFO || policy == libc::SCHED_RR
}

/// Per-thread settings for the run (timer slack, optional `SCHED_FIFO`),
/// restored on drop so a caller's thread is left as it was found.
struct ThreadTuning {
    old_slack: Option<libc::c_ulong>,
    old_sched: Option<(libc::c_int, libc::sched_param)>,
    realtime: bool,
    realtime_error: Option<String>,
}

/// Timer slack used by the emulator thread (ns).
const TIMER_SLACK_NS: libc::c_ulong = 1_000;

impl ThreadTuning {
    /// Sets the timer slack to [`TIMER_SLACK_NS`].
    fn apply() -> Self {
        // SAFETY: PR_GET_TIMERSLACK takes no pointer arguments and only reads
        // the calling thread's slack.
        let old = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
        // SAFETY: PR_SET_TIMERSLACK takes an integer and only affects this thread.
        let set = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0) };
        let old_slack = if set == 0 {
            libc::c_ulong::try_from(old).ok()
        } else {
            None
        };
        Self {
            old_slack,
            old_sched: None,
            realtime: false,
            realtime_error: None,
        }
    }

    /// Switches to `SCHED_FIFO` at `prio`; failure is recorded, not fatal.
    fn set_realtime(&mut self, prio: i32) {
        // SAFETY: sched_getscheduler(0) only queries the calling thread.
        let policy = unsafe { libc::sched_getscheduler(0) };
        // SAFETY: all-zero is a valid `sched_param` (one integer).
        let mut old_param: libc::sched_param = unsafe { std::mem::zeroed() };
        // SAFETY: `old_param` is a valid `sched_param` for the kernel to fill.
        let got = unsafe { libc::sched_getparam(0, &mut old_param) };
        let param = libc::sched_param {
            sched_priority: prio,
        };
        // SAFETY: `param` is a valid `sched_param` living across the call;
        // pid 0 is the calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if rc == 0 {
            self.realtime = true;
            if policy >= 0 && got == 0 {
                self.old_sched = Some((policy, old_param));
            }
        } else {
            self.realtime_error = Some(format!(
                "sched_setscheduler(SCHED_FIFO, {prio}): {}",
                io::Error::last_os_error()
            ));
        }
    }
}

impl Drop for ThreadTuning {
    fn drop(&mut self) {
        if let Some((policy, param)) = self.old_sched.take() {
            // SAFETY: `param` is a valid `sched_param`; pid 0 is this thread.
            unsafe { libc::sched_setscheduler(0, policy, &param) };
        }
        if let Some(slack) = self.old_slack {
            // SAFETY: PR_SET_TIMERSLACK takes an integer and only affects this thread.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, slack, 0, 0, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LinkSpec {
        LinkSpec {
            name: "l".into(),
            a: Endpoint {
                netns: "/run/netns/x".into(),
                ifname: "t0".into(),
            },
            b: Endpoint {
                netns: "/run/netns/y".into(),
                ifname: "t0".into(),
            },
            a_to_b: Shape::default(),
            b_to_a: Shape::default(),
            max_frame: 1600,
            seed: 1,
            stats_file: None,
        }
    }

    #[test]
    fn spec_round_trips_through_json() {
        let s = spec();
        let json = serde_json::to_string(&s).unwrap();
        let back: LinkSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn spec_validation() {
        assert!(spec().validate().is_ok());
        let mut s = spec();
        s.b = s.a.clone();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.max_frame = 10;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.a_to_b.loss = 2.0;
        let msg = format!("{:#}", s.validate().unwrap_err());
        assert!(msg.contains("a_to_b"), "{msg}");
        let mut s = spec();
        s.a.ifname = "much-too-long-name".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn sleep_time_aims_early_for_long_sleeps() {
        let o = RunOptions::default();
        assert_eq!(sleep_time(None, &o, false), o.stop_check);
        assert_eq!(
            sleep_time(Some(Duration::from_micros(500)), &o, false),
            Duration::from_micros(500)
        );
        let t = sleep_time(Some(Duration::from_millis(30)), &o, false);
        // Earlier than the deadline by more than the kernel's 0.1 % slack.
        assert!(
            t < Duration::from_millis(30) - Duration::from_micros(30),
            "{t:?}"
        );
        assert!(t > Duration::from_millis(29), "{t:?}");
        assert_eq!(
            sleep_time(Some(Duration::from_millis(30)), &o, true),
            Duration::from_millis(30)
        );
        assert_eq!(
            sleep_time(Some(Duration::from_secs(5)), &o, false),
            o.stop_check
        );
        let spin = RunOptions {
            spin: Duration::from_micros(20),
            ..RunOptions::default()
        };
        assert_eq!(
            sleep_time(Some(Duration::from_micros(15)), &spin, false),
            Duration::ZERO
        );
        assert_eq!(
            sleep_time(Some(Duration::from_micros(100)), &spin, false),
            Duration::from_micros(80)
        );
    }

    #[test]
    fn failing_tap_creation_names_the_link_and_step() {
        let stop = AtomicBool::new(true);
        let mut s = spec();
        s.a.netns = "/nonexistent/ns".into();
        let mut fired = false;
        let err = run(&s, || fired = true, &stop).unwrap_err();
        let msg = format!("{err:#}");
        assert!(!fired);
        assert!(msg.contains("link l: endpoint a"), "{msg}");
        assert!(msg.contains("/nonexistent/ns"), "{msg}");
    }
}
