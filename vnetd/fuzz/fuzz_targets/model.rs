//! The small string parsers: `model::Mac`, `model::Name` and `wire::OverlayKey` (`FromStr`),
//! and the command-line values built on them, `cli::parse_guest` (`HOST:PORT:MAC`),
//! `online::parse_daemon` (`NAME[:PORT]`) and `io::tap::validate_ifname`; what parses is
//! displayed again. Property: no panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vnetd::model::{Mac, Name};
use vnetd::wire::OverlayKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mac) = text.parse::<Mac>() {
        let _ = (mac.to_string(), mac.is_group());
    }
    if let Ok(name) = text.parse::<Name>() {
        let _ = name.to_string();
    }
    let _ = text.parse::<OverlayKey>();
    if let Ok(guest) = vnetd::cli::parse_guest(text) {
        std::hint::black_box(guest);
    }
    let _ = vnetd::online::parse_daemon(text);
    let _ = vnetd::io::tap::validate_ifname(text);
});
