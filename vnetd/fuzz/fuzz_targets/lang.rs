//! The topology language: `lang::parse` of any UTF-8 text, `lang::program_to_topology` of what
//! parses, and, when `lang::check` says the topology is one a program can describe, the
//! round trip: `lang::print` of it, parsed and applied again, gives the same topology.
//! Properties: no panic; the round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vnetd::lang;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let program = match lang::parse(text) {
        Ok(program) => program,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let topology = match lang::program_to_topology(&program) {
        Ok(topology) => topology,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    if lang::check(&topology).is_err() {
        return;
    }
    let printed = lang::print(&topology);
    let reparsed = lang::parse(&printed)
        .unwrap_or_else(|e| panic!("the printed topology does not parse: {e}\n{printed}"));
    let again = lang::program_to_topology(&reparsed)
        .unwrap_or_else(|e| panic!("the printed topology does not apply: {e}\n{printed}"));
    assert_eq!(
        again, topology,
        "printing and parsing changed the topology:\n{printed}"
    );
});
