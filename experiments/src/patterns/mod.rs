//! `patterns`: the synthetic BSP benchmark of the VNET/VTTIF papers.
//!
//! One process per rank; ranks talk plain TCP and share nothing else. Every iteration is a
//! superstep: a **compute phase** (a fixed amount of integer work, see [`compute`]) followed by
//! a **communication phase** in which the rank performs its part of the [`Op`] on the topology
//! that the [`Schedule`] puts in effect for that iteration:
//!
//! - `exchange`: send one message to every neighbour, then receive one from each;
//! - `reduce`: receive one message from each child of the breadth-first spanning tree rooted at
//!   rank 0 ([`Graph::reduce_tree`]), then send one to the parent;
//! - `all-to-all`: send one message to every other rank, then receive one from each.
//!
//! Before iteration 0 every rank opens all the connections it will need during the whole run
//! (one TCP connection per pair of ranks that ever communicate, the higher rank connecting to
//! the lower, plus a control connection from every rank to rank 0) and passes a start barrier
//! coordinated by rank 0, so iteration times measure the benchmark and not the set-up. At the
//! end every rank sends its [`RankReport`] to rank 0, which adds a [`Summary`].
//!
//! The binary `patterns` (`src/bin/patterns.rs`) is the command-line front end of [`run`].

pub mod addr;
pub mod compute;
mod net;
pub mod op;
pub mod report;
pub mod schedule;
pub mod size;
pub mod topology;
mod transport;
mod wire;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

pub use addr::PeerAddr;
pub use compute::Work;
pub use op::{Op, Plan, Step};
pub use report::{RankReport, Summary};
pub use schedule::Schedule;
pub use size::parse_size;
pub use topology::{Graph, Topology};

use net::{Connections, Setup};
use transport::Transport;

/// Everything one rank needs to take part in a run.
///
/// `peers`, `schedule`, `op`, `size` and `iterations` must be identical on all ranks (checked
/// when connecting); `work` may differ between ranks.
#[derive(Debug, Clone)]
pub struct Config {
    /// This rank, `< peers.len()`.
    pub rank: usize,
    /// Every rank's address, by rank; rank `i` listens on `peers[i]`.
    pub peers: Vec<PeerAddr>,
    /// Where to listen instead of `peers[rank]` (e.g. a wildcard address behind NAT).
    pub listen: Option<PeerAddr>,
    /// The topology of every iteration.
    pub schedule: Schedule,
    /// The communication operation.
    pub op: Op,
    /// Payload bytes per message.
    pub size: usize,
    /// Number of iterations.
    pub iterations: u64,
    /// The compute phase of each iteration.
    pub work: Work,
    /// How long to keep trying to bring all connections up.
    pub connect_timeout: Duration,
}

/// What a rank produces: its own report and, on rank 0, the summary of all ranks.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// This rank's measurements.
    pub report: RankReport,
    /// Rank 0 only: the whole run.
    pub summary: Option<Summary>,
}

/// Runs one rank of the benchmark to completion. Rank 0 prints progress to stderr (a line at
/// the start and about every 10% of the iterations); nothing is printed on stdout.
///
/// # Errors
/// Inconsistent configuration (rank out of range, a topology that does not fit the number of
/// ranks), peers that cannot be reached or refuse the connection, a peer that disappears
/// during the run, or a protocol violation. Error messages name the rank and address involved.
pub fn run(config: &Config) -> Result<Outcome> {
    let (rank, n) = (config.rank, config.peers.len());
    if n == 0 {
        bail!("no ranks: --peers is empty");
    }
    if rank >= n {
        bail!(
            "rank {rank} is out of range: --peers lists {n} ranks (0..={})",
            n - 1
        );
    }
    let plans = config
        .schedule
        .topologies()
        .iter()
        .map(|t| Ok(Plan::new(config.op, &Graph::new(t, n)?, rank)))
        .collect::<Result<Vec<Plan>>>()?;
    let partners: BTreeSet<usize> = config
        .schedule
        .used(config.iterations)
        .into_iter()
        .flat_map(|i| plans[i].partners())
        .collect();

    let agreed = format!(
        "op={} schedule={} size={} iterations={}",
        config.op, config.schedule, config.size, config.iterations
    );
    let setup = Setup {
        rank,
        peers: &config.peers,
        listen: config.listen.as_ref().unwrap_or(&config.peers[rank]),
        config: &agreed,
        timeout: config.connect_timeout,
    };
    let Connections { data, mut control } = net::establish(&setup, &partners)?;
    let mut payload = vec![0u8; config.size];
    compute::fill_pseudo_random(&mut payload);
    let labels = (0..n).map(|r| setup.label(r)).collect();
    let mut transport = Transport::start(data, labels, Arc::from(payload))?;
    control.start_barrier(&setup)?;
    if rank == 0 {
        eprintln!(
            "patterns: all {n} ranks connected; {} iterations of {} on {} with {} B messages",
            config.iterations, config.op, config.schedule, config.size
        );
    }

    let start = Instant::now();
    let measured = iterate(config, &plans, &mut transport)?;
    let counters = transport.finish()?;
    let total_s = start.elapsed().as_secs_f64();

    let (compute, ratio) = match config.work {
        Work::Fixed(units) => (Some(units), None),
        Work::PerKib(ratio) => (None, Some(ratio)),
    };
    let report = RankReport {
        rank,
        n,
        op: config.op,
        schedule: config.schedule.to_string(),
        size: config.size as u64,
        iterations: config.iterations,
        compute,
        ratio,
        total_s,
        iter_median_s: report::median(&measured.iter_times),
        iter_p95_s: report::percentile(&measured.iter_times, 95),
        iter_times_s: measured.iter_times,
        compute_s: measured.compute_s,
        compute_units: measured.compute_units,
        bytes_sent: counters.bytes_sent,
        bytes_received: counters.bytes_received,
        messages_sent: counters.messages_sent,
        messages_received: counters.messages_received,
    };
    let summary = control
        .gather(report.clone(), &setup)?
        .and_then(Summary::new);
    Ok(Outcome { report, summary })
}

/// What [`iterate`] measured.
struct Measured {
    /// Wall-clock seconds of every iteration.
    iter_times: Vec<f64>,
    /// Seconds spent in compute phases.
    compute_s: f64,
    /// Work units computed.
    compute_units: f64,
}

/// Runs all iterations (`plans` indexed like `config.schedule.topologies()`); rank 0 prints
/// progress about every 10% of them.
fn iterate(config: &Config, plans: &[Plan], transport: &mut Transport) -> Result<Measured> {
    let start = Instant::now();
    let mut measured = Measured {
        iter_times: Vec::new(),
        compute_s: 0.0,
        compute_units: 0.0,
    };
    let progress_every = (config.iterations / 10).max(1);
    for iteration in 0..config.iterations {
        let plan = &plans[config.schedule.index_at(iteration)];
        let began = Instant::now();
        let bytes_to_send = (plan.sends().count() as u64).saturating_mul(config.size as u64);
        let units = config.work.units(bytes_to_send);
        compute::run(compute::rounds(units));
        measured.compute_s += began.elapsed().as_secs_f64();
        measured.compute_units += units;
        for step in &plan.steps {
            match *step {
                Step::Send(peer) => transport.send(peer, iteration)?,
                Step::Receive(peer) => transport.receive(peer, iteration)?,
            }
        }
        let took = began.elapsed().as_secs_f64();
        measured.iter_times.push(took);
        let done = iteration + 1;
        if config.rank == 0 && (done % progress_every == 0 || done == config.iterations) {
            eprintln!(
                "patterns: iteration {done}/{} ({}%), {:.3} s elapsed, last {:.3} ms",
                config.iterations,
                done.saturating_mul(100) / config.iterations,
                start.elapsed().as_secs_f64(),
                took * 1e3
            );
        }
    }
    Ok(measured)
}
