//! The control API's messages: `control::read_line` splitting arbitrary bytes into lines
//! (through a small `BufReader`, so lines straddle its refills), and every line, and the
//! whole input when it is UTF-8, parsed as a `Request`, `Response`, `Challenge` and `Proof`
//! (JSON), what parses written back (`serde_json::to_string`), and `control::unhex`.
//! Property: no panic.

#![no_main]

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use vnetd::control::{self, Challenge, Proof, Request, Response};

fn messages(text: &str) {
    if let Ok(request) = serde_json::from_str::<Request>(text) {
        let _ = serde_json::to_string(&request);
    }
    if let Ok(response) = serde_json::from_str::<Response>(text) {
        let _ = serde_json::to_string(&response);
    }
    if let Ok(challenge) = serde_json::from_str::<Challenge>(text) {
        let _ = control::unhex(&challenge.challenge);
    }
    if let Ok(proof) = serde_json::from_str::<Proof>(text) {
        let _ = control::unhex(&proof.proof);
    }
    let _ = control::unhex(text);
}

fuzz_target!(|data: &[u8]| {
    let capacity = 1 + usize::from(data.first().copied().unwrap_or(0));
    let mut reader = BufReader::with_capacity(capacity, data);
    while let Ok(Some(line)) = control::read_line(&mut reader) {
        messages(&line);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        messages(text);
    }
});
