//! A daemon's `state.json` (`daemon::Saved`, JSON) from any UTF-8 text, written back, and, as
//! the daemon restores it, its rules added to a forwarding table with its links up and its
//! ports attached (the table alone: no devices, no sockets). Property: no panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vnetd::daemon::Saved;
use vnetd::forward::{Role, Table};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(saved) = serde_json::from_str::<Saved>(text) else {
        return;
    };
    let _ = serde_json::to_string(&saved);
    let role = match saved.links.first() {
        Some(link) => Role::Host {
            proxy: link.peer.clone(),
        },
        None => Role::Proxy,
    };
    let mut table = Table::new(role, saved.name.clone());
    for link in &saved.links {
        table.link_up(link.peer.clone());
    }
    for port in &saved.ports {
        table.attach_port(port.name.clone());
    }
    for rule in &saved.rules {
        let _ = table.add_rule(rule.clone());
    }
    let _ = table.rules().count();
});
