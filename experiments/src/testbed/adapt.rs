//! VADAPT on a testbed run (`testbed adapt`): the environment file the controller reads (the
//! scenario's machines, path priors and guests) and the controller itself, started on the
//! Proxy with the run's key, hosts file and star.
//!
//! # The environment, from the scenario
//!
//! - **Hosts**: compute = the host's CPU quota (`host_cpu`; 1 core when unlimited); space = the
//!   memory of all the scenario's guests (any host can take every guest: the testbed does not
//!   limit a host's memory); intra-host bandwidth [`INTRA_HOST_BPS`] (guests of one host meet
//!   in its daemon, with no shaped link between them). The Proxy carries traffic but hosts no VM.
//! - **Paths**: between every two machines, the scenario's bottleneck rate (scaled, as
//!   configured) and one-way delay along the underlay path ([`Underlay`]): the prior until
//!   Wren measures them.
//! - **Guests**: compute = the scenario's `guest_cpu`, else their host's quota shared by the
//!   guests it starts with; memory = the
//!   bytes a migration copies ([`Scenario::migrated_bytes`](crate::scenario::Scenario::migrated_bytes)).
//!
//! # Wren
//!
//! With `--wren`, the controller also reads Wren's matrix at every decision (`vadapt --wren`):
//! [`wren_collector`] starts Wren on the run unless it already runs (`testbed wren RUN
//! start`, whose daemons then outlive the controller until `testbed wren RUN stop` or
//! `down`), and the controller, which runs in the Proxy's namespace, reaches the collector
//! at the Proxy's underlay address, port [`wren::HTTP_PORT`]. Wren names daemons by the
//! run's hosts file, i.e. by node name (`host1`…, `proxy`): the names of the environment's
//! hosts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use vadapt::inputs::{Environment, Guest, PathPrior};
use vadapt::model::Host;

use super::{sibling_binary, vnet, wren, RunState};
use crate::testbed::model::Underlay;

/// The bandwidth between two guests of one host, bit/s: they meet in its daemon.
pub const INTRA_HOST_BPS: f64 = 10e9;

/// The run's environment file (`vadapt --environment`).
#[must_use]
pub fn environment_file(run: &str) -> PathBuf {
    vnet::dir(run).join("environment.json")
}

/// The environment of run `state` (see the module's documentation); `guest_memory` replaces
/// the scenario's guest memory (before scaling) when given.
///
/// # Errors
/// The run is not in vnet mode, or its scenario no longer parses.
pub fn environment(state: &RunState, guest_memory: Option<u64>) -> Result<Environment> {
    vnet::of(state)?;
    let scenario = state.scenario()?;
    let underlay = Underlay::new(&scenario, &state.plan);
    let total_memory: u64 = scenario.guests.iter().map(|g| g.memory_bytes).sum();
    let quota = |h: &crate::scenario::Host| h.cpu.unwrap_or(1.0);
    let mut hosts: Vec<Host> = scenario
        .hosts
        .iter()
        .map(|h| Host {
            name: h.name.clone(),
            compute: quota(h),
            size: total_memory,
            intra_bw: INTRA_HOST_BPS,
            can_host: true,
        })
        .collect();
    hosts.push(Host {
        name: "proxy".into(),
        compute: 0.0,
        size: 0,
        intra_bw: INTRA_HOST_BPS,
        can_host: false,
    });
    let mut paths = Vec::new();
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            let path = underlay.path(&a.name, &b.name);
            paths.push(PathPrior {
                from: a.name.clone(),
                to: b.name.clone(),
                bw_bps: underlay.bottleneck(&path) as f64,
                lat_s: underlay.delay(&path).as_secs_f64(),
                directed: false,
            });
        }
    }
    let guests = scenario
        .guests
        .iter()
        .map(|g| {
            let host = &scenario.hosts[g.host];
            let sharing = scenario.guests.iter().filter(|o| o.host == g.host).count();
            Ok(Guest {
                mac: g
                    .mac
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", g.name))?,
                name: g.name.clone(),
                compute: scenario
                    .guest_cpu
                    .unwrap_or_else(|| quota(host) / sharing as f64),
                size: g.memory_bytes,
                memory: scenario.migrated_bytes(guest_memory.unwrap_or(g.memory_bytes)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Environment {
        hosts,
        paths,
        guests,
    })
}

/// The HTTP address of run `run`'s Wren collector (in the Proxy's namespace), starting Wren
/// first unless every daemon of it runs already.
///
/// # Errors
/// No such run, not a vnet run, or Wren does not start.
pub fn wren_collector(run: &str) -> Result<SocketAddr> {
    let running = wren::status(run)?;
    if let Some(addr) = wren::daemons(run)?.collector {
        if !running.is_empty() && running.iter().all(|d| d.alive) {
            eprintln!("testbed: Wren already runs on `{run}` (collector {addr})");
            return Ok(addr);
        }
    }
    let started = wren::start(run, &[]).context("starting Wren")?;
    let addr = started
        .collector
        .context("Wren started without a collector address")?;
    eprintln!(
        "testbed: started Wren on `{run}` ({} daemons, collector {addr})",
        started.daemons.len()
    );
    Ok(addr)
}

/// Writes run `run`'s environment file and replaces the current process with the controller on
/// the Proxy: `vadapt` with the run's key, hosts file, star and environment, migrations through
/// `testbed migrate` (with `--memory` when `guest_memory` is given), with `with_wren` Wren's
/// collector ([`wren_collector`]), then `args` (`testbed adapt`). Returns only on error.
#[must_use]
pub fn exec_vadapt(
    run: &str,
    guest_memory: Option<u64>,
    with_wren: bool,
    args: &[String],
) -> anyhow::Error {
    let prepare = || -> Result<std::process::Command> {
        let state = RunState::load(run)?;
        let (vadapt, testbed) = (sibling_binary("vadapt")?, sibling_binary("testbed")?);
        let env = environment(&state, guest_memory)?;
        let file = environment_file(run);
        std::fs::write(&file, serde_json::to_string_pretty(&env)?)
            .with_context(|| format!("writing {}", file.display()))?;
        let mut c = std::process::Command::new(vadapt);
        c.arg("--key-file")
            .arg(vnet::key_file(run))
            .arg("--hosts")
            .arg(vnet::hosts_file(run))
            .arg("--topology")
            .arg(vnet::star_file(run))
            .arg("--environment")
            .arg(&file);
        if with_wren {
            c.arg("--wren").arg(wren_collector(run)?.to_string());
        }
        c.args(args)
            .arg("--migrate-command")
            .arg(testbed)
            .args(["migrate", run, "{vm}", "{host}"]);
        if let Some(bytes) = guest_memory {
            c.args(["--memory", &bytes.to_string()]);
        }
        Ok(c)
    };
    match prepare() {
        Ok(c) => super::exec_command(run, "proxy", c),
        Err(e) => e,
    }
}
