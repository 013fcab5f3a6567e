use std::collections::BTreeSet;

use super::*;

fn name(s: &str) -> Name {
    s.parse().expect("a valid name")
}

fn mac(last: u8) -> Mac {
    Mac([2, 0x56, 0x4e, 0, 0, last])
}

fn host(machine: &str) -> vnetd::model::Host {
    vnetd::model::Host {
        user: "vnet".into(),
        machine: name(machine),
        port: 5400,
        interface: name("eth0"),
    }
}

/// The star of three hosts and the Proxy: vm1 and vm2 on host1, vm3 on host2, vm4 on host3.
fn star() -> Topology {
    let guests = [
        ("host1", "vm1", 1),
        ("host1", "vm2", 2),
        ("host2", "vm3", 3),
        ("host3", "vm4", 4),
    ]
    .map(|(h, p, m)| Guest {
        host: name(h),
        port: name(p),
        mac: mac(m),
    });
    lang::star(
        host("proxy"),
        vec![host("host1"), host("host2"), host("host3")],
        &guests,
        name("lan0"),
    )
    .expect("a valid star")
}

fn demand(src: usize, dst: usize) -> Demand {
    Demand {
        src,
        dst,
        bw: 1e6,
        lat: None,
    }
}

/// Host indices in name order: host1 0, host2 1, host3 2, proxy 3. VM indices in MAC order.
const H1: usize = 0;
const H2: usize = 1;
const H3: usize = 2;
const PX: usize = 3;

#[test]
fn the_layout_of_a_star_names_machines_and_guests_in_order() {
    let layout = Layout::of(&star(), &name("proxy")).unwrap();
    assert_eq!(
        layout.machines,
        ["host1", "host2", "host3", "proxy"].map(name)
    );
    assert_eq!(layout.proxy_index(), PX);
    assert_eq!(layout.lan_port, name("lan0"));
    let homes: Vec<(Mac, &str, &str)> = layout
        .guests
        .iter()
        .map(|g| (g.mac, g.host.as_str(), g.port.as_str()))
        .collect();
    assert_eq!(
        homes,
        [
            (mac(1), "host1", "vm1"),
            (mac(2), "host1", "vm2"),
            (mac(3), "host2", "vm3"),
            (mac(4), "host3", "vm4"),
        ]
    );
    assert_eq!(layout.guest_index(mac(3)), Some(2));
    assert_eq!(layout.guest_index(mac(9)), None);
}

#[test]
fn the_star_reads_as_routes_through_the_proxy_and_builds_back_to_itself() {
    let star = star();
    let layout = Layout::of(&star, &name("proxy")).unwrap();
    let demands = [demand(0, 2), demand(2, 3), demand(0, 1)];
    let config = layout.configuration(&star, &demands).unwrap();
    assert_eq!(config.mapping, [H1, H1, H2, H3]);
    assert_eq!(config.links, BTreeSet::from([(H1, PX), (H2, PX), (H3, PX)]));
    assert_eq!(
        config.routes,
        [vec![H1, PX, H2], vec![H2, PX, H3], vec![H1]]
    );
    let rebuilt = layout.topology(&config, &demands).unwrap();
    assert_eq!(rebuilt, star);
    assert!(vnetd::lang::plan(&star, &rebuilt).is_empty());
}

#[test]
fn fast_paths_carry_their_pairs_directly() {
    let star = star();
    let layout = Layout::of(&star, &name("proxy")).unwrap();
    let demands = [demand(0, 2), demand(2, 0), demand(2, 3)];
    let config = Configuration {
        mapping: vec![H1, H1, H2, H3],
        links: BTreeSet::from([(H1, PX), (H2, PX), (H3, PX), (H1, H2)]),
        routes: vec![vec![H1, H2], vec![H2, H1], vec![H2, PX, H3]],
    };
    let desired = layout.topology(&config, &demands).unwrap();
    assert_eq!(layout.configuration(&desired, &demands).unwrap(), config);
    let plan = vnetd::lang::plan(&star, &desired);
    // One link, and at each end rules for the other's guests (vm1 and vm2 at host2, vm3 at
    // host1).
    assert_eq!(plan.len(), 4, "{plan:?}");
}

#[test]
fn a_migration_moves_the_guest_s_rules_to_its_new_home() {
    let star = star();
    let layout = Layout::of(&star, &name("proxy")).unwrap();
    let demands = [demand(1, 2)];
    // vm2 moves from host1 to host2, next to vm3.
    let config = Configuration {
        mapping: vec![H1, H2, H2, H3],
        links: BTreeSet::from([(H1, PX), (H2, PX), (H3, PX)]),
        routes: vec![vec![H2]],
    };
    let desired = layout.topology(&config, &demands).unwrap();
    let moved = Layout::of(&desired, &name("proxy")).unwrap();
    assert_eq!(moved.guests[1].host, name("host2"));
    assert_eq!(moved.guests[1].port, name("vm2"), "the port keeps its name");
    assert_eq!(
        desired.rules[&name("proxy")][&(SrcMatch::Any, DstMatch::Is(mac(2)))],
        Target::Link(name("host2"))
    );
    assert_eq!(layout.configuration(&desired, &demands).unwrap(), config);
}

#[test]
fn a_detour_through_another_host_gets_source_exact_rules() {
    let star = star();
    let layout = Layout::of(&star, &name("proxy")).unwrap();
    // vm1 (host1) to vm3 (host2) through host3; vm4 (host3) to vm3 directly.
    let demands = [demand(0, 2), demand(3, 2)];
    let config = Configuration {
        mapping: vec![H1, H1, H2, H3],
        links: BTreeSet::from([(H1, PX), (H2, PX), (H3, PX), (H1, H3), (H2, H3)]),
        routes: vec![vec![H1, H3, H2], vec![H3, H2]],
    };
    let desired = layout.topology(&config, &demands).unwrap();
    assert_eq!(
        desired.rules[&name("host1")][&(SrcMatch::Is(mac(1)), DstMatch::Is(mac(3)))],
        Target::Link(name("host3"))
    );
    assert_eq!(layout.configuration(&desired, &demands).unwrap(), config);
}

#[test]
fn unrealisable_configurations_are_refused_with_the_reason() {
    let star = star();
    let layout = Layout::of(&star, &name("proxy")).unwrap();
    let demands = [demand(0, 2)];
    let on_proxy = Configuration {
        mapping: vec![PX, H1, H2, H3],
        links: BTreeSet::new(),
        routes: vec![vec![PX, H2]],
    };
    let e = layout.topology(&on_proxy, &demands).unwrap_err();
    assert!(
        matches!(e, OverlayError::Unrealisable(ref s) if s.contains("Proxy")),
        "{e}"
    );
    let no_link = Configuration {
        mapping: vec![H1, H1, H2, H3],
        links: BTreeSet::from([(H1, PX), (H2, PX), (H3, PX)]),
        routes: vec![vec![H1, H2]],
    };
    let e = layout.topology(&no_link, &demands).unwrap_err();
    assert!(e.to_string().contains("no link"), "{e}");
    let short = Configuration {
        mapping: vec![H1],
        ..no_link
    };
    assert!(matches!(
        layout.topology(&short, &demands),
        Err(OverlayError::Mismatch(_))
    ));
}

#[test]
fn bad_topologies_are_refused() {
    let star = star();
    assert_eq!(
        Layout::of(&star, &name("nobody")),
        Err(OverlayError::NoProxy(name("nobody")))
    );
    let mut two = star.clone();
    two.rules.get_mut(&name("host2")).unwrap().insert(
        (SrcMatch::Any, DstMatch::Is(mac(1))),
        Target::Port(name("vm1")),
    );
    assert!(matches!(
        Layout::of(&two, &name("proxy")),
        Err(OverlayError::TwoHomes { .. })
    ));
    let mut no_lan = star;
    no_lan
        .rules
        .get_mut(&name("proxy"))
        .unwrap()
        .remove(&(SrcMatch::Any, DstMatch::None));
    assert_eq!(
        Layout::of(&no_lan, &name("proxy")),
        Err(OverlayError::NoLan(name("proxy")))
    );
}
