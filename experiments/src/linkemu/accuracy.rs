//! `bench linkemu`: how faithfully, and at what CPU cost, the emulator
//! reproduces a shaped link.
//!
//! # What is measured
//!
//! Two fresh network namespaces `a` and `b` are joined by one emulated link
//! (TAP `lemu0` in each, `10.99.0.1/24` ↔ `10.99.0.2/24`), both directions
//! shaped alike: rate `R`, one-way delay `D`, jitter `J`, queue =
//! [`bdp_queue_bytes`]`(R, 2D)`. For every configuration and every repeat,
//! two phases run, each with a fresh emulator (so their statistics stay
//! apart):
//!
//! 1. **RTT (idle link).** `ping` from `a` to `b` (`pings` echo requests,
//!    `ping_interval` apart, after a warm-up ping that resolves ARP).
//!    Expected RTT = `2D + 2 × serialisation(98-byte frame)` (56-byte ICMP
//!    payload + 8 ICMP + 20 IP + 14 Ethernet). Reported: ping's mean, min
//!    and mdev (µs precision) and the median of the per-reply times (ping
//!    prints 3 significant digits: 0.1 ms resolution from 10 ms on). The
//!    difference to the expected value is the emulator's read- and
//!    write-side wake-up latency plus the namespaces' stack cost (≈ 50 µs
//!    RTT over a plain veth pair on the development VM).
//! 2. **TCP goodput (loaded link).** One TCP flow `a → b` (in-process
//!    sender/receiver threads, namespace-default congestion control), the
//!    first `tcp_warmup` skipped, then the payload bytes the receiving kernel
//!    got in order (`TCP_INFO` `tcpi_bytes_received`) over `tcp_window`.
//!    Expected goodput = `R × 1448 / 1514`: a full frame
//!    is 1514 bytes (14 Ethernet + 20 IP + 20 TCP + 12 TCP timestamp option +
//!    1448 payload) and the emulator's rate counts Ethernet frame bytes.
//!
//! From the emulator itself ([`LinkStats`]):
//!
//! - **lateness** = actual write time − scheduled delivery time of every
//!   frame, p50/p99/max in µs (phase 2, i.e. under load; phase 1 in the JSON
//!   as `lateness_idle`); frames written early by the wake-up compensation
//!   ([`RunOptions::max_early`]) count as 0 here, their earliness is in the
//!   JSON (`early`);
//! - **CPU cost** of the emulator thread in phase 2: (utime + stime) divided
//!   by the phase's wall time, in % of one core, and per frame read (both
//!   directions; µs in the table, ns in the JSON). stime includes the receiving namespace's stack work done inside
//!   `write(2)` on the TAP.
//!
//! Each configuration is repeated `repeats` times; the table and the JSON
//! give the median and the min..max spread over the repeats.
//!
//! Optional `cpu_hogs` busy threads run throughout, to see how the emulator
//! copes when the testbed's workload saturates the CPUs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde::Serialize;
use serde_json::json;

use super::harness::{self, configure, Emulator, NetnsPair};
use super::hist::Summary;
use super::{bdp_queue_bytes, LinkSpec, RunOptions, Shape};

/// One link configuration to measure (both directions alike).
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Short label for the table.
    pub label: String,
    /// Rate in bit/s.
    pub rate_bps: u64,
    /// One-way delay.
    #[serde(with = "super::model::duration_ns", rename = "delay_ns")]
    pub delay: Duration,
    /// Jitter amplitude (uniform ±).
    #[serde(with = "super::model::duration_ns", rename = "jitter_ns")]
    pub jitter: Duration,
}

impl Config {
    /// A configuration labelled like `50M/30ms±5ms`.
    pub fn new(rate_mbps: u64, delay: Duration, jitter: Duration) -> Self {
        let mut label = format!("{rate_mbps}M/{}ms", delay.as_secs_f64() * 1e3);
        if !jitter.is_zero() {
            label += &format!("±{}ms", jitter.as_secs_f64() * 1e3);
        }
        Config {
            label,
            rate_bps: rate_mbps * 1_000_000,
            delay,
            jitter,
        }
    }

    fn shape(&self) -> Shape {
        Shape {
            rate_bps: self.rate_bps,
            delay: self.delay,
            jitter: self.jitter,
            loss: 0.0,
            queue_bytes: bdp_queue_bytes(self.rate_bps, 2 * self.delay),
        }
    }
}

/// The default configurations: 10/50/100 Mbit/s × 1/30 ms, plus 50 Mbit/s,
/// 30 ms ± 5 ms.
pub fn default_configs() -> Vec<Config> {
    let ms = Duration::from_millis;
    let mut v = Vec::new();
    for rate in [10, 50, 100] {
        for delay in [1, 30] {
            v.push(Config::new(rate, ms(delay), Duration::ZERO));
        }
    }
    v.push(Config::new(50, ms(30), ms(5)));
    v
}

/// Parameters of [`measure`].
#[derive(Debug, Clone)]
pub struct MeasureOptions {
    /// Configurations to measure.
    pub configs: Vec<Config>,
    /// Repeats per configuration.
    pub repeats: usize,
    /// Echo requests per RTT phase.
    pub pings: u32,
    /// Interval between echo requests.
    pub ping_interval: Duration,
    /// TCP time skipped before counting (slow start).
    pub tcp_warmup: Duration,
    /// TCP measurement window.
    pub tcp_window: Duration,
    /// Emulator loop options.
    pub run: RunOptions,
    /// Busy-looping threads to run alongside (simulated CPU-bound workload).
    pub cpu_hogs: usize,
    /// Print the table to stdout.
    pub print: bool,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self {
            configs: default_configs(),
            repeats: 3,
            pings: 50,
            ping_interval: Duration::from_millis(20),
            tcp_warmup: Duration::from_secs(1),
            tcp_window: Duration::from_secs(3),
            run: RunOptions::default(),
            cpu_hogs: 0,
            print: true,
        }
    }
}

/// Median, min and max over the repeats.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let v: Vec<f64> = values.into_iter().collect();
        Spread {
            median: harness::median(&v),
            min: v.iter().copied().fold(f64::NAN, f64::min),
            max: v.iter().copied().fold(f64::NAN, f64::max),
        }
    }
}

/// One repeat of one configuration.
#[derive(Debug, Clone, Serialize)]
struct RunResult {
    rtt_mean_ms: f64,
    rtt_median_ms: f64,
    rtt_min_ms: f64,
    rtt_mdev_ms: f64,
    pings_received: u32,
    lateness_idle: Summary,
    goodput_mbps: f64,
    lateness: Summary,
    /// Time in write(2) for data frames (a → b).
    write_syscall: Summary,
    /// How late timed ppoll wake-ups were.
    timer_late: Summary,
    /// Frames (a → b) written before their due time, and how early.
    early: Summary,
    /// Final wake-up latency compensation (µs).
    compensation_us: f64,
    cpu_core_percent: f64,
    ns_per_frame: f64,
    cpu_user_s: f64,
    cpu_system_s: f64,
    /// ppoll calls / frames read.
    polls_per_frame: f64,
    frames: u64,
    queue_drops: u64,
    write_errors: u64,
}

const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const IFNAME: &str = "lemu0";
/// Frame of a default ping: 56 payload + 8 ICMP + 20 IP + 14 Ethernet.
const PING_FRAME: u64 = 98;

/// Runs the emulator between a fresh namespace pair for every configuration
/// and reports fidelity and CPU cost; see the [module docs](self).
pub fn measure(opts: &MeasureOptions) -> anyhow::Result<serde_json::Value> {
    harness::prerequisites()
        .map_err(|why| anyhow!("bench linkemu needs root, ip and ping: {why}"))?;
    let pair = NetnsPair::create().context("create the namespace pair")?;
    let hogs = Hogs::start(opts.cpu_hogs);
    let mut results = Vec::new();
    if opts.print {
        print_header();
    }
    for (i, config) in opts.configs.iter().enumerate() {
        let mut runs = Vec::new();
        for rep in 0..opts.repeats {
            let seed = (i * 1000 + rep) as u64;
            let run = measure_once(&pair, config, opts, seed)
                .with_context(|| format!("configuration {} repeat {}", config.label, rep + 1))?;
            runs.push(run);
        }
        let summary = summarise(config, &runs);
        if opts.print {
            print_row(config, &summary);
        }
        results.push(json!({
            "config": config,
            "queue_bytes": config.shape().queue_bytes,
            "summary": summary,
            "runs": runs,
        }));
    }
    drop(hogs);
    Ok(json!({
        "what": "linkemu fidelity: ping RTT vs configured, single-flow TCP goodput vs rate, \
                 emulator lateness (write time - due time) and CPU cost; median/min/max over repeats",
        "host": {
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned()).unwrap_or_default(),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
        "options": {
            "repeats": opts.repeats,
            "pings": opts.pings,
            "ping_interval_ms": opts.ping_interval.as_secs_f64() * 1e3,
            "tcp_warmup_s": opts.tcp_warmup.as_secs_f64(),
            "tcp_window_s": opts.tcp_window.as_secs_f64(),
            "spin_us": opts.run.spin.as_secs_f64() * 1e6,
            "realtime_priority": opts.run.realtime_priority,
            "cpu_hogs": opts.cpu_hogs,
        },
        "configs": results,
    }))
}

/// Both phases of one repeat.
fn measure_once(
    pair: &NetnsPair,
    config: &Config,
    opts: &MeasureOptions,
    seed: u64,
) -> anyhow::Result<RunResult> {
    let spec = LinkSpec {
        name: config.label.clone(),
        a: pair.endpoint_a(IFNAME),
        b: pair.endpoint_b(IFNAME),
        a_to_b: config.shape(),
        b_to_a: config.shape(),
        max_frame: 1600,
        seed,
        stats_file: None,
    };
    // Phase 1: RTT on an idle link.
    let emu = start_link(pair, &spec, opts)?;
    let pings = harness::ping(&pair.a, ADDR_B, opts.pings, opts.ping_interval)?;
    let idle = emu.stop().context("RTT phase")?;

    // Phase 2: TCP goodput.
    let emu = start_link(pair, &spec, opts)?;
    let t0 = Instant::now();
    let tcp = harness::tcp_goodput(
        &NetnsPair::path(&pair.a),
        &NetnsPair::path(&pair.b),
        SocketAddr::from((ADDR_B, 5001)),
        opts.tcp_warmup,
        opts.tcp_window,
    )?;
    let wall = t0.elapsed().as_secs_f64();
    let load = emu.stop().context("TCP phase")?;
    let cpu = load.cpu.user_s + load.cpu.system_s;
    let frames = load.a_to_b.model.frames_in + load.b_to_a.model.frames_in;
    Ok(RunResult {
        rtt_mean_ms: pings.mean_ms(),
        rtt_median_ms: pings.median_ms(),
        rtt_min_ms: pings.min_ms(),
        rtt_mdev_ms: pings.mdev_ms(),
        pings_received: pings.received,
        lateness_idle: idle.lateness_us,
        goodput_mbps: tcp.goodput_bps / 1e6,
        lateness: load.lateness_us,
        write_syscall: load.a_to_b.write_syscall_us,
        timer_late: load.wake.timer_late_us,
        early: load.a_to_b.early_us,
        compensation_us: load.wake.compensation_us,
        cpu_core_percent: 100.0 * cpu / wall,
        ns_per_frame: load.cpu.ns_per_frame,
        cpu_user_s: load.cpu.user_s,
        cpu_system_s: load.cpu.system_s,
        polls_per_frame: load.wake.polls as f64 / frames.max(1) as f64,
        frames,
        queue_drops: load.a_to_b.model.frames_dropped_queue
            + load.b_to_a.model.frames_dropped_queue,
        write_errors: load.a_to_b.write_errors + load.b_to_a.write_errors,
    })
}

/// Starts an emulator for `spec`, configures both TAPs and checks
/// reachability (which also resolves ARP before any measurement).
fn start_link(
    pair: &NetnsPair,
    spec: &LinkSpec,
    opts: &MeasureOptions,
) -> anyhow::Result<Emulator> {
    let emu = Emulator::start(spec.clone(), opts.run.clone())?;
    configure(&pair.a, IFNAME, &format!("{ADDR_A}/24"))?;
    configure(&pair.b, IFNAME, &format!("{ADDR_B}/24"))?;
    let warm = harness::ping(&pair.a, ADDR_B, 2, Duration::from_millis(100))?;
    if warm.received == 0 {
        anyhow::bail!("10.99.0.2 is not reachable through the emulated link");
    }
    Ok(emu)
}

/// Aggregate of the repeats of one configuration.
#[derive(Debug, Clone, Serialize)]
struct ConfigSummary {
    rtt_expected_ms: f64,
    rtt_mean_ms: Spread,
    rtt_median_ms: Spread,
    rtt_mdev_ms: Spread,
    rtt_error_ms: f64,
    goodput_expected_mbps: f64,
    goodput_mbps: Spread,
    goodput_ratio: f64,
    lateness_p50_us: Spread,
    lateness_p99_us: Spread,
    lateness_max_us: Spread,
    idle_lateness_p99_us: Spread,
    cpu_core_percent: Spread,
    ns_per_frame: Spread,
}

fn summarise(config: &Config, runs: &[RunResult]) -> ConfigSummary {
    let ser = config.shape().serialisation_time(PING_FRAME);
    let rtt_expected_ms = (2 * config.delay + 2 * ser).as_secs_f64() * 1e3;
    let goodput_expected_mbps = super::model::tcp_goodput_bps(config.rate_bps) / 1e6;
    let spread = |f: &dyn Fn(&RunResult) -> f64| Spread::of(runs.iter().map(f));
    let rtt_mean_ms = spread(&|r| r.rtt_mean_ms);
    let goodput_mbps = spread(&|r| r.goodput_mbps);
    ConfigSummary {
        rtt_expected_ms,
        rtt_error_ms: rtt_mean_ms.median - rtt_expected_ms,
        rtt_mean_ms,
        rtt_median_ms: spread(&|r| r.rtt_median_ms),
        rtt_mdev_ms: spread(&|r| r.rtt_mdev_ms),
        goodput_expected_mbps,
        goodput_ratio: goodput_mbps.median / goodput_expected_mbps,
        goodput_mbps,
        lateness_p50_us: spread(&|r| r.lateness.p50_us),
        lateness_p99_us: spread(&|r| r.lateness.p99_us),
        lateness_max_us: spread(&|r| r.lateness.max_us),
        idle_lateness_p99_us: spread(&|r| r.lateness_idle.p99_us),
        cpu_core_percent: spread(&|r| r.cpu_core_percent),
        ns_per_frame: spread(&|r| r.ns_per_frame),
    }
}

fn print_header() {
    println!(
        "{:<14} {:>8} {:>26} {:>7} {:>6} {:>22} {:>7} {:>16} {:>12} {:>8}",
        "config",
        "RTT exp",
        "RTT mean [min..max]",
        "RTT p50",
        "mdev",
        "goodput [min..max]",
        "of exp",
        "late p50/p99/max",
        "CPU [max]",
        "per frame"
    );
    println!(
        "{:<14} {:>8} {:>26} {:>7} {:>6} {:>22} {:>7} {:>16} {:>12} {:>8}",
        "", "ms", "ms", "ms", "ms", "Mbit/s", "", "µs", "% of core", "µs"
    );
}

fn print_row(config: &Config, s: &ConfigSummary) {
    println!(
        "{:<14} {:>8.3} {:>26} {:>7.2} {:>6.2} {:>22} {:>6.1}% {:>16} {:>12} {:>8.1}",
        config.label,
        s.rtt_expected_ms,
        format!(
            "{:.3} [{:.3}..{:.3}]",
            s.rtt_mean_ms.median, s.rtt_mean_ms.min, s.rtt_mean_ms.max
        ),
        s.rtt_median_ms.median,
        s.rtt_mdev_ms.median,
        format!(
            "{:.2} [{:.2}..{:.2}]",
            s.goodput_mbps.median, s.goodput_mbps.min, s.goodput_mbps.max
        ),
        100.0 * s.goodput_ratio,
        format!(
            "{:.0}/{:.0}/{:.0}",
            s.lateness_p50_us.median, s.lateness_p99_us.median, s.lateness_max_us.median
        ),
        format!(
            "{:.1} [{:.1}]",
            s.cpu_core_percent.median, s.cpu_core_percent.max
        ),
        s.ns_per_frame.median / 1e3,
    );
}

/// Busy-looping threads, stopped on drop.
struct Hogs {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hogs {
    fn start(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .filter_map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name("cpu-hog".into())
                    .spawn(move || {
                        let mut x = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                    })
                    .ok()
            })
            .collect();
        Hogs { stop, threads }
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
