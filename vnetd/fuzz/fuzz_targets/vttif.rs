//! VTTIF's parsers: the update a daemon ships (`vttif::update::decode`), fed whole to the
//! Proxy's service (which decodes it again, records it, evaluates and reports), and the
//! offline tool's truth files (`vttif::offline::Truth::parse`) and shape names. Property: no
//! panic; what decodes encodes back to the same bytes.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vttif::update;

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = update::decode(data) {
        let mut again = Vec::new();
        update::encode(u.seq, &u.entries, &mut again);
        assert_eq!(again, data);
    }
    let mut service = vttif::Service::new(vttif::Params::DEFAULT).unwrap();
    for (i, chunk) in data.chunks(64).enumerate() {
        let now = Duration::from_millis(50 * i as u64);
        let _ = service.receive("host1", data, now);
        let _ = service.receive("host2", chunk, now);
        let _ = service.evaluate(now);
    }
    let _ = service.report(Duration::from_secs(10)).text();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vttif::offline::Truth::parse(text);
        let _ = vttif::offline::parse_shape(text);
    }
});
