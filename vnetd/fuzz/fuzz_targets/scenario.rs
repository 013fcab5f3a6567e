//! Scenario files (TOML): `experiments::scenario::Scenario::parse` of any UTF-8 text, then
//! what the testbed asks a parsed scenario first (the user's address, host lookup, the path
//! between every pair of sites); and the value parsers its strings go through
//! (`parse_rate`, `parse_duration`, `parse_bytes`, `patterns::parse_size`) on short inputs.
//! Property: no panic.

#![no_main]

use std::path::Path;

use experiments::patterns::parse_size;
use experiments::scenario::{parse_bytes, parse_duration, parse_rate, Scenario};
use libfuzzer_sys::fuzz_target;

/// Site paths are computed between the first this many sites only (a search per pair).
const MAX_SITES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() <= 64 {
        let _ = parse_rate(text);
        let _ = parse_duration(text);
        let _ = parse_bytes(text);
        let _ = parse_size(text);
    }
    match Scenario::parse(Path::new("fuzz.toml"), text) {
        Ok(scenario) => {
            let _ = scenario.user_ip();
            for host in &scenario.hosts {
                let _ = scenario.host_index(&host.name);
            }
            let sites = scenario.sites.len().min(MAX_SITES);
            for a in 0..sites {
                for b in 0..sites {
                    let _ = scenario.site_path(a, b);
                }
            }
            for link in &scenario.links {
                let _ = link.shape.kernel_only();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
