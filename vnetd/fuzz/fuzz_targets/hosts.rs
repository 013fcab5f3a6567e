//! Hosts files (`/etc/hosts` format, `--hosts`, `VNET_HOSTS`): `online::Hosts::parse` of any
//! UTF-8 text, then every name it holds resolved from the file (never from the system's
//! resolver: only names the file has are looked up). Property: no panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vnetd::online::Hosts;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Hosts::parse(text) {
        Ok(hosts) => {
            let names: Vec<String> = hosts.names().map(str::to_string).collect();
            for name in names {
                let _ = hosts.resolve(&name, 5400);
            }
        }
        Err(e) => {
            std::hint::black_box(e);
        }
    }
});
