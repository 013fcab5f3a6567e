//! Forwarding-table lookups on an overlay of 28 hosts with 3 guests each: the Proxy's table
//! (a rule per guest toward its host, the default rule to the user's LAN) and a host's table
//! (a port rule and a default rule per local guest, a fast-path rule for every guest of the
//! 27 other hosts).
//!
//! - `hit/*`: the decision is in the cache (one hash probe), cycling over a working set of
//!   frames;
//! - `miss/*`: a table whose cache holds one decision, alternating two frames, so every lookup
//!   searches the rules (plus a probe, an empty-and-insert);
//! - `flood/hit`: a broadcast, whose flood list is cached per ingress.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use vnetd::forward::{Ingress, IngressId, Role, Table};
use vnetd::model::{DstMatch, Mac, Name, Rule, SrcMatch, Target};

const HOSTS: u8 = 28;
const GUESTS: u8 = 3;

fn name(s: &str) -> Name {
    s.parse().expect("valid name")
}

fn guest(host: u8, index: u8) -> Mac {
    Mac([0x02, 0x56, 0x4e, 0x00, host, index])
}

fn add(table: &mut Table, src: SrcMatch, dst: DstMatch, target: Target) {
    table
        .add_rule(Rule { src, dst, target })
        .expect("valid rule");
}

/// The Proxy's table: 84 rules toward hosts and the default rule to the LAN.
fn proxy_table(capacity: usize) -> Table {
    let mut table = Table::with_cache_capacity(Role::Proxy, name("proxy"), capacity);
    table.attach_port(name("lan"));
    add(
        &mut table,
        SrcMatch::Any,
        DstMatch::None,
        Target::Port(name("lan")),
    );
    for h in 1..=HOSTS {
        let host = name(&format!("host{h}"));
        table.link_up(host.clone());
        for g in 1..=GUESTS {
            add(
                &mut table,
                SrcMatch::Any,
                DstMatch::Is(guest(h, g)),
                Target::Link(host.clone()),
            );
        }
    }
    table
}

/// host1's table: 6 rules for its guests and 81 fast-path rules, every link up.
fn host_table(capacity: usize) -> Table {
    let proxy = name("proxy");
    let mut table = Table::with_cache_capacity(
        Role::Host {
            proxy: proxy.clone(),
        },
        name("host1"),
        capacity,
    );
    table.link_up(proxy.clone());
    for g in 1..=GUESTS {
        let port = name(&format!("vm1{g}"));
        table.attach_port(port.clone());
        add(
            &mut table,
            SrcMatch::Any,
            DstMatch::Is(guest(1, g)),
            Target::Port(port),
        );
        add(
            &mut table,
            SrcMatch::Is(guest(1, g)),
            DstMatch::None,
            Target::Link(proxy.clone()),
        );
    }
    for h in 2..=HOSTS {
        let peer = name(&format!("host{h}"));
        table.link_up(peer.clone());
        for g in 1..=GUESTS {
            add(
                &mut table,
                SrcMatch::Any,
                DstMatch::Is(guest(h, g)),
                Target::Link(peer.clone()),
            );
        }
    }
    table
}

fn id(table: &Table, ingress: Ingress) -> IngressId {
    table.ingress_id(&ingress).expect("known ingress")
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");

    // host1: its guests to every guest of the other hosts (243 frames).
    let mut host = host_table(vnetd::forward::DEFAULT_CACHE_CAPACITY);
    let mut frames: Vec<(IngressId, Mac, Mac)> = Vec::new();
    for s in 1..=GUESTS {
        let ingress = id(&host, Ingress::Port(name(&format!("vm1{s}"))));
        for h in 2..=HOSTS {
            for d in 1..=GUESTS {
                frames.push((ingress, guest(1, s), guest(h, d)));
            }
        }
    }
    for &(ingress, src, dst) in &frames {
        host.lookup_id(ingress, src, dst);
    }
    let mut i = 0;
    g.bench_function("hit/host", |b| {
        b.iter(|| {
            i += 1;
            if i == frames.len() {
                i = 0;
            }
            let (ingress, src, dst) = frames[i];
            black_box(host.lookup_id(ingress, black_box(src), black_box(dst)));
        })
    });

    // The Proxy: every guest to every guest of another host (6,804 frames).
    let mut proxy = proxy_table(vnetd::forward::DEFAULT_CACHE_CAPACITY);
    let mut frames: Vec<(IngressId, Mac, Mac)> = Vec::new();
    for sh in 1..=HOSTS {
        let ingress = id(&proxy, Ingress::Link(name(&format!("host{sh}"))));
        for sg in 1..=GUESTS {
            for dh in (1..=HOSTS).filter(|&dh| dh != sh) {
                for dg in 1..=GUESTS {
                    frames.push((ingress, guest(sh, sg), guest(dh, dg)));
                }
            }
        }
    }
    for &(ingress, src, dst) in &frames {
        proxy.lookup_id(ingress, src, dst);
    }
    let mut i = 0;
    g.bench_function("hit/proxy", |b| {
        b.iter(|| {
            i += 1;
            if i == frames.len() {
                i = 0;
            }
            let (ingress, src, dst) = frames[i];
            black_box(proxy.lookup_id(ingress, black_box(src), black_box(dst)));
        })
    });

    // Misses: a one-decision cache and two frames in turn.
    let mut host = host_table(1);
    let vm11 = id(&host, Ingress::Port(name("vm11")));
    let mut flip = false;
    g.bench_function("miss/host-fast-path", |b| {
        b.iter(|| {
            flip = !flip;
            let dst = if flip { guest(28, 3) } else { guest(27, 3) };
            black_box(host.lookup_id(vm11, guest(1, 1), black_box(dst)));
        })
    });
    let mut proxy = proxy_table(1);
    let from_host1 = id(&proxy, Ingress::Link(name("host1")));
    g.bench_function("miss/proxy-default-rule", |b| {
        b.iter(|| {
            flip = !flip;
            // Machines on the user's LAN: no rule names them, every rule is tried.
            let dst = if flip {
                Mac([0x02, 0, 0, 0, 0, 1])
            } else {
                Mac([0x02, 0, 0, 0, 0, 2])
            };
            black_box(proxy.lookup_id(from_host1, guest(1, 1), black_box(dst)));
        })
    });

    let mut host = host_table(vnetd::forward::DEFAULT_CACHE_CAPACITY);
    let vm11 = id(&host, Ingress::Port(name("vm11")));
    g.bench_function("flood/hit", |b| {
        b.iter(|| {
            black_box(host.lookup_id(vm11, guest(1, 1), black_box(Mac::BROADCAST)));
        })
    });
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
