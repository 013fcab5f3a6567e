//! Runs the `bench linkemu` measurement ([`experiments::linkemu::accuracy`])
//! as an ignored test, for use before the bench subcommand exists or to try
//! loop options:
//!
//! ```text
//! cargo test --release -p experiments --test linkemu_bench -- --ignored --nocapture
//! ```
//!
//! Environment overrides: `LINKEMU_REPEATS` (3), `LINKEMU_CONFIGS`
//! (`RATE_MBPS:DELAY_MS[:JITTER_MS],...`), `LINKEMU_SPIN_US` (0),
//! `LINKEMU_PINGS` (50), `LINKEMU_MAX_EARLY_US` (200; 0 disables the wake-up compensation),
//! `LINKEMU_RT_PRIO` (10; 0 disables SCHED_FIFO), `LINKEMU_HOGS` (0 busy
//! threads), `LINKEMU_JSON` (write the JSON result to this path).

use std::time::Duration;

use experiments::linkemu::accuracy::{measure, Config, MeasureOptions};
use experiments::linkemu::harness;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn parse_configs(text: &str) -> Vec<Config> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let f: Vec<&str> = item.split(':').map(str::trim).collect();
            let rate: u64 = f[0].parse().expect("rate (Mbit/s) in LINKEMU_CONFIGS");
            let ms = |i: usize| {
                let v: f64 = f
                    .get(i)
                    .map_or(Ok(0.0), |x| x.parse())
                    .expect("delay/jitter (ms) in LINKEMU_CONFIGS");
                Duration::from_secs_f64(v / 1e3)
            };
            Config::new(rate, ms(1), ms(2))
        })
        .collect()
}

#[test]
#[ignore = "takes minutes; needs root"]
fn linkemu_bench() -> anyhow::Result<()> {
    if let Err(why) = harness::prerequisites() {
        eprintln!("skipping: {why}");
        return Ok(());
    }
    let mut opts = MeasureOptions::default();
    if let Some(n) = env("LINKEMU_REPEATS") {
        opts.repeats = n;
    }
    if let Ok(c) = std::env::var("LINKEMU_CONFIGS") {
        opts.configs = parse_configs(&c);
    }
    if let Some(n) = env("LINKEMU_PINGS") {
        opts.pings = n;
    }
    if let Some(us) = env::<u64>("LINKEMU_SPIN_US") {
        opts.run.spin = Duration::from_micros(us);
    }
    if let Some(prio) = env::<i32>("LINKEMU_RT_PRIO") {
        opts.run.realtime_priority = (prio > 0).then_some(prio);
    }
    if let Some(us) = env::<u64>("LINKEMU_MAX_EARLY_US") {
        opts.run.max_early = Duration::from_micros(us);
    }
    opts.cpu_hogs = env("LINKEMU_HOGS").unwrap_or(0);
    let result = measure(&opts)?;
    if let Ok(path) = std::env::var("LINKEMU_JSON") {
        std::fs::write(&path, serde_json::to_vec_pretty(&result)?)?;
    }
    Ok(())
}
