//! `vttif`: the offline tuning tool. Replays packet traces through the topology inference the
//! Proxy runs, sweeps its parameters, and makes synthetic traces; see [`vttif::offline`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use vttif::classify::Shape;
use vttif::offline::{
    self, parse_shape, Metrics, Replay, Samples, Synth, Trace, Truth, TOPOLOGY_NAMES,
};
use vttif::{plot, Mac, Params};

#[derive(Parser)]
#[command(
    name = "vttif",
    version,
    about = "VTTIF offline: replay packet traces through the topology inference, sweep its \
             parameters, make synthetic traces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay traces with one parameter set: the changes declared, and how they compare
    /// with the truth if given.
    Replay(ReplayArgs),
    /// Replay traces over a grid of smoothing windows and detection thresholds; print a
    /// table and write the figures (seed 002 Figs. 6 and 7) as SVG.
    Sweep(SweepArgs),
    /// Write a synthetic trace (pcap) of guests running phases of known topologies, and its
    /// truth file.
    Synth(SynthArgs),
}

#[derive(Args)]
struct Input {
    /// Captures (pcap or pcapng, Ethernet link type), e.g. from `tcpdump -i vmtap -w F`;
    /// several are merged by timestamp.
    #[arg(required = true, value_name = "TRACE")]
    traces: Vec<PathBuf>,
    /// A trace's local MACs: it counts only the frames they send (repeatable). Without it
    /// a single trace counts every frame, and each of several counts its owner's: the MAC
    /// at one end of the most unicast frames in it.
    #[arg(long, value_name = "TRACE=MAC[,MAC...]")]
    local: Vec<String>,
    /// The update rate (Hz): how often daemons ship their counts and the Proxy evaluates.
    #[arg(long, default_value_t = Params::DEFAULT.update_hz)]
    update_hz: f64,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    input: Input,
    /// The truth file (TOML: guests and phases) to measure against.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// The smoothing window (s).
    #[arg(long, default_value_t = Params::DEFAULT.window.as_secs_f64())]
    window: f64,
    /// The detection threshold (fraction of the heaviest pair's traffic).
    #[arg(long, default_value_t = Params::DEFAULT.threshold)]
    threshold: f64,
    /// End with the whole result as one line of JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SweepArgs {
    #[command(flatten)]
    input: Input,
    /// The truth file (TOML: guests and phases) to measure against.
    #[arg(long)]
    truth: PathBuf,
    /// Smoothing windows to try (s).
    #[arg(long, value_delimiter = ',', default_values_t = [0.25, 0.5, 1.0, 2.0])]
    windows: Vec<f64>,
    /// Detection thresholds to try.
    #[arg(long, value_delimiter = ',', default_values_t = [0.05, 0.1, 0.2, 0.3, 0.5])]
    thresholds: Vec<f64>,
    /// Where to write the figures (vttif-fig6-damping.svg, vttif-fig7-threshold.svg).
    #[arg(long, default_value = ".")]
    svg_dir: PathBuf,
    /// End with the table as one line of JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SynthArgs {
    /// How many guests (MACs 02:56:4e:00:00:01 and on, in rank order).
    #[arg(long, default_value_t = 8)]
    guests: usize,
    /// One topology for the whole trace (default: ring).
    #[arg(long, conflicts_with_all = ["phases", "alternate"])]
    topology: Option<String>,
    /// Phases, each TOPOLOGY:SECONDS, e.g. "ring:10,hypercube:3:10".
    #[arg(long, conflicts_with_all = ["alternate", "duration_s"])]
    phases: Option<String>,
    /// Topologies to cycle through, each lasting --period-s, for --duration-s.
    #[arg(long, value_delimiter = ',', requires = "period_s")]
    alternate: Option<Vec<String>>,
    /// How long each phase of --alternate lasts (s).
    #[arg(long, requires = "alternate")]
    period_s: Option<f64>,
    /// How long the trace lasts with --topology or --alternate (s).
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Payload bytes per second each way on every edge.
    #[arg(long, default_value_t = 500_000)]
    rate_bytes_s: u64,
    /// The share of all bytes sent between guests that are not neighbours (%).
    #[arg(long, default_value_t = 5.0)]
    noise_pct: f64,
    /// The BSP iteration: how often neighbours exchange their messages (ms).
    #[arg(long, default_value_t = 20)]
    iteration_ms: u64,
    /// Seeds the jitter and the noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The trace to write (pcap).
    #[arg(long)]
    out: PathBuf,
    /// The truth file to write (TOML).
    #[arg(long)]
    truth_out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay(&args),
        Command::Sweep(args) => sweep(&args),
        Command::Synth(args) => synth(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vttif: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `seconds` as a duration, for option `what`.
fn duration(seconds: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(seconds)
        .with_context(|| format!("{what} {seconds}: not a duration in seconds"))
}

/// Reads and merges the traces, and prints what became of each file's frames (stderr).
fn load(input: &Input) -> Result<Trace> {
    let mut local: BTreeMap<String, BTreeSet<Mac>> = BTreeMap::new();
    for spec in &input.local {
        let (file, macs) = spec
            .split_once('=')
            .with_context(|| format!("--local {spec}: expected TRACE=MAC[,MAC...]"))?;
        let macs = macs
            .split(',')
            .map(str::parse)
            .collect::<Result<BTreeSet<Mac>, _>>()
            .with_context(|| format!("--local {spec}"))?;
        local.entry(file.to_string()).or_default().extend(macs);
    }
    let captures = input
        .traces
        .iter()
        .map(|path| offline::read_pcap(path))
        .collect::<Result<Vec<_>, _>>()?;
    let trace = Trace::merge(captures, &local)?;
    for f in &trace.files {
        let whose = match &f.local {
            None => "every sender".to_string(),
            Some(macs) if macs.is_empty() => "no owner found: no unicast frames".to_string(),
            Some(macs) => {
                let macs: Vec<String> = macs.iter().map(ToString::to_string).collect();
                let how = if f.owner_inferred { "owner" } else { "given" };
                format!("sent by {} ({how})", macs.join(", "))
            }
        };
        eprintln!(
            "{}: {} frames, {} counted ({whose}); skipped {} too short, {} from a group source",
            f.name, f.frames, f.counted, f.short, f.group_source
        );
    }
    Ok(trace)
}

fn load_truth(path: &Path, trace: &Trace) -> Result<Truth> {
    let name = path.display();
    let text = fs::read_to_string(path).with_context(|| format!("{name}"))?;
    let truth = Truth::parse(&text).with_context(|| format!("{name}"))?;
    let senders: BTreeSet<Mac> = trace.frames.iter().map(|f| f.src).collect();
    let named: BTreeSet<Mac> = truth
        .guests
        .iter()
        .copied()
        .chain(
            truth
                .phases
                .iter()
                .flat_map(|p| p.edges.iter().flat_map(|&(a, b)| [a, b])),
        )
        .collect();
    for mac in named.difference(&senders) {
        eprintln!("{name}: warning: {mac} sent no frame that the traces count");
    }
    Ok(truth)
}

fn opt(value: Option<f64>, scale: f64, decimals: usize) -> String {
    value.map_or_else(
        || "-".to_string(),
        |v| format!("{:.*}", decimals, v * scale),
    )
}

fn replay(args: &ReplayArgs) -> Result<()> {
    let trace = load(&args.input)?;
    let params = Params {
        update_hz: args.input.update_hz,
        window: duration(args.window, "--window")?,
        threshold: args.threshold,
    };
    let truth = args
        .truth
        .as_deref()
        .map(|path| load_truth(path, &trace))
        .transpose()?;
    let samples = Samples::new(&trace, &params)?;
    let replay = samples.replay(params.window, params.threshold)?;
    let metrics = truth.as_ref().map(|t| Metrics::new(&replay, t));
    print!("{}", changes_table(&replay));
    if let Some(m) = &metrics {
        print!("{}", metrics_text(m));
    }
    if args.json {
        let json = serde_json::json!({
            "files": trace.files,
            "params": replay.params,
            "evaluations": replay.evaluations,
            "changes": replay.changes,
            "metrics": metrics,
        });
        println!("{json}");
    }
    Ok(())
}

fn changes_table(replay: &Replay) -> String {
    let p = &replay.params;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "update {} Hz, smoothing window {} s, detection threshold {}: {} evaluations, {} changes",
        p.update_hz,
        p.window.as_secs_f64(),
        p.threshold,
        replay.evaluations,
        replay.changes.len()
    );
    let _ = writeln!(
        out,
        "{:>4} {:>9} {:>10} {:>6} {:>6} {:>8}  shapes",
        "#", "at (s)", "settle (s)", "edges", "added", "removed"
    );
    for c in &replay.changes {
        let shapes = if c.shapes.is_empty() {
            "-".to_string()
        } else {
            c.shapes.join(", ")
        };
        let _ = writeln!(
            out,
            "{:>4} {:>9.3} {:>10.3} {:>6} {:>6} {:>8}  {shapes}",
            c.number,
            c.at_s,
            c.settle_s,
            c.edges.len(),
            c.added.len(),
            c.removed.len()
        );
        let edges: Vec<String> = c.edges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        let _ = writeln!(out, "     edges: {}", edges.join(" "));
    }
    out
}

/// At most this many phases are listed one by one.
const PHASES_LISTED: usize = 20;

fn metrics_text(m: &Metrics) -> String {
    let mut out = String::from("phases (reaction: from the phase's start to its topology):\n");
    for p in m.phases.iter().take(PHASES_LISTED) {
        let reaction = p
            .reaction_s
            .map_or_else(|| "not followed".to_string(), |r| format!("{r:.3} s"));
        let span = format!("{:.2}-{:.2} s", p.from_s, p.to_s);
        let _ = writeln!(out, "  {span:<18} {:<16} {reaction}", p.topology);
    }
    if m.phases.len() > PHASES_LISTED {
        let _ = writeln!(out, "  ... and {} more", m.phases.len() - PHASES_LISTED);
    }
    let _ = writeln!(
        out,
        "followed {}/{} phases, mean reaction {} s, median settle {} s, {} changes ({} spurious), \
         accuracy {} %, precision {}, recall {}",
        m.followed,
        m.phases.len(),
        opt(m.reaction_s, 1.0, 3),
        opt(m.settle_s, 1.0, 3),
        m.changes,
        m.spurious,
        opt(m.accuracy, 100.0, 1),
        opt(m.precision, 1.0, 3),
        opt(m.recall, 1.0, 3)
    );
    out
}

fn sweep(args: &SweepArgs) -> Result<()> {
    let trace = load(&args.input)?;
    let truth = load_truth(&args.truth, &trace)?;
    let windows = args
        .windows
        .iter()
        .map(|&w| duration(w, "--windows"))
        .collect::<Result<Vec<_>>>()?;
    let first = Params {
        update_hz: args.input.update_hz,
        window: windows.first().copied().context("--windows: none given")?,
        threshold: *args
            .thresholds
            .first()
            .context("--thresholds: none given")?,
    };
    let samples = Samples::new(&trace, &first)?;
    let rows = offline::sweep(
        &samples,
        &truth,
        &windows,
        &args.thresholds,
        &|done, total, row| {
            eprintln!(
                "sweep {done}/{total}: window {} s, threshold {}: reaction {} s, {} spurious",
                row.window_s,
                row.threshold,
                opt(row.metrics.reaction_s, 1.0, 3),
                row.metrics.spurious
            );
        },
    )?;
    println!(
        "{:>10} {:>9} {:>9} {:>12} {:>10} {:>7} {:>8} {:>9} {:>9} {:>6}",
        "window (s)",
        "threshold",
        "followed",
        "reaction (s)",
        "settle (s)",
        "changes",
        "spurious",
        "accuracy",
        "precision",
        "recall"
    );
    for r in &rows {
        let m = &r.metrics;
        println!(
            "{:>10} {:>9} {:>9} {:>12} {:>10} {:>7} {:>8} {:>9} {:>9} {:>6}",
            r.window_s,
            r.threshold,
            format!("{}/{}", m.followed, m.phases.len()),
            opt(m.reaction_s, 1.0, 3),
            opt(m.settle_s, 1.0, 3),
            m.changes,
            m.spurious,
            opt(m.accuracy, 100.0, 1) + " %",
            opt(m.precision, 1.0, 3),
            opt(m.recall, 1.0, 3)
        );
    }
    let dir = &args.svg_dir;
    fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let figures = [
        (
            "vttif-fig6-damping.svg",
            plot::damping(&rows, samples.update_hz()),
        ),
        (
            "vttif-fig7-threshold.svg",
            plot::sensitivity(&rows, samples.update_hz()),
        ),
    ];
    for (name, svg) in figures {
        let path = dir.join(name);
        fs::write(&path, svg).with_context(|| format!("{}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "update_hz": samples.update_hz(), "rows": rows })
        );
    }
    Ok(())
}

fn shape(name: &str) -> Result<Shape> {
    parse_shape(name)
        .with_context(|| format!("unknown topology `{name}` (known: {TOPOLOGY_NAMES})"))
}

fn synth(args: &SynthArgs) -> Result<()> {
    let phases: Vec<(Shape, Duration)> = if let Some(list) = &args.phases {
        list.split(',')
            .map(|phase| {
                let (name, secs) = phase
                    .rsplit_once(':')
                    .with_context(|| format!("--phases {phase}: expected TOPOLOGY:SECONDS"))?;
                let secs = secs
                    .parse()
                    .with_context(|| format!("--phases {phase}: `{secs}` is not seconds"))?;
                Ok((shape(name)?, duration(secs, "--phases")?))
            })
            .collect::<Result<_>>()?
    } else if let (Some(names), Some(period)) = (&args.alternate, args.period_s) {
        let shapes = names.iter().map(|n| shape(n)).collect::<Result<Vec<_>>>()?;
        let period = duration(period, "--period-s")?;
        let total = duration(args.duration_s, "--duration-s")?;
        if period.is_zero() {
            bail!("--period-s must be more than 0");
        }
        let mut phases = Vec::new();
        let mut at = Duration::ZERO;
        while at < total {
            let length = period.min(total - at);
            phases.push((shapes[phases.len() % shapes.len()].clone(), length));
            at += length;
        }
        phases
    } else {
        let name = args.topology.as_deref().unwrap_or("ring");
        vec![(shape(name)?, duration(args.duration_s, "--duration-s")?)]
    };
    let spec = Synth {
        guests: args.guests,
        phases,
        rate_bytes_s: args.rate_bytes_s,
        noise_pct: args.noise_pct,
        iteration: Duration::from_millis(args.iteration_ms),
        seed: args.seed,
    };
    let (frames, truth) = spec.generate()?;
    let out = &args.out;
    let file = fs::File::create(out).with_context(|| format!("{}", out.display()))?;
    offline::write_pcap(BufWriter::new(file), &frames)
        .with_context(|| format!("{}", out.display()))?;
    let toml = truth.to_toml()?;
    fs::write(&args.truth_out, toml).with_context(|| format!("{}", args.truth_out.display()))?;
    let seconds = truth.phases.last().map_or(0.0, |p| p.to_s);
    eprintln!(
        "wrote {} frames ({seconds} s, {} phases) to {} and the truth to {}",
        frames.len(),
        truth.phases.len(),
        out.display(),
        args.truth_out.display()
    );
    Ok(())
}
