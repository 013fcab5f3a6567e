//! Tests of the forwarding table and of the whole-overlay analysis.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;

use super::*;
use crate::model::{
    DstMatch, Host, Link, LinkKind, Mac, Match, Name, Rule, SrcMatch, Target, Topology,
};

fn n(s: &str) -> Name {
    s.parse().expect("test names are valid")
}

/// A unicast guest address ending in `last`.
fn mac(last: u8) -> Mac {
    Mac([0x02, 0x56, 0x4e, 0x00, 0x00, last])
}

fn rule(src: SrcMatch, dst: DstMatch, target: Target) -> Rule {
    Rule { src, dst, target }
}

fn port(s: &str) -> Target {
    Target::Port(n(s))
}

fn link(s: &str) -> Target {
    Target::Link(n(s))
}

fn out_port(s: &str) -> Out {
    Out::Port(n(s))
}

fn out_link(s: &str) -> Out {
    Out::Link(n(s))
}

fn host_role() -> Role {
    Role::Host { proxy: n("proxy") }
}

/// A host table with ports `vm1`, `vm2` and `in` attached and links to the Proxy, `host2` and
/// `host3` up; no rules.
fn host_table() -> Table {
    let mut table = Table::new(host_role(), n("host1"));
    for p in ["vm1", "vm2", "in"] {
        assert!(table.attach_port(n(p)));
    }
    for l in ["proxy", "host2", "host3"] {
        assert!(table.link_up(n(l)));
    }
    table
}

fn forward(table: &mut Table, ingress: &Ingress, src: Mac, dst: Mac) -> Decision {
    table.lookup(ingress, src, dst).clone()
}

// ---------------------------------------------------------------------------------------------
// Specificity

/// The frame every specificity case matches: from S to D. X is neither.
const S: Mac = Mac([0x02, 0, 0, 0, 0, 0x51]);
const D: Mac = Mac([0x02, 0, 0, 0, 0, 0xd1]);
const X: Mac = Mac([0x02, 0, 0, 0, 0, 0xee]);

/// Every qualifier combination that matches S → D, strongest first, written out by hand as
/// the module documentation's table.
fn ranked_matches() -> Vec<Match> {
    use DstMatch as Dm;
    use SrcMatch as Sm;
    vec![
        (Sm::Is(S), Dm::Is(D)),
        (Sm::Not(X), Dm::Is(D)),
        (Sm::Any, Dm::Is(D)),
        (Sm::Is(S), Dm::Not(X)),
        (Sm::Not(X), Dm::Not(X)),
        (Sm::Any, Dm::Not(X)),
        (Sm::Is(S), Dm::Any),
        (Sm::Not(X), Dm::Any),
        (Sm::Any, Dm::Any),
        (Sm::Is(S), Dm::None),
        (Sm::Not(X), Dm::None),
        (Sm::Any, Dm::None),
    ]
}

#[test]
fn specificity_orders_the_table_of_the_docs() {
    let ranked = ranked_matches();
    for pair in ranked.windows(2) {
        assert!(
            Specificity::of(&pair[0]) > Specificity::of(&pair[1]),
            "{:?} should be stronger than {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn the_stronger_of_every_pair_of_qualifier_combinations_wins() {
    let ranked = ranked_matches();
    let ingress = Ingress::Port(n("in"));
    let mut cases = 0;
    for (i, strong) in ranked.iter().enumerate() {
        for weak in &ranked[i + 1..] {
            for strong_first in [true, false] {
                let mut table = host_table();
                let mut add = |m: &Match, target: Target| {
                    table.add_rule(rule(m.0, m.1, target)).expect("valid rule");
                };
                if strong_first {
                    add(strong, port("vm1"));
                    add(weak, port("vm2"));
                } else {
                    add(weak, port("vm2"));
                    add(strong, port("vm1"));
                }
                assert_eq!(
                    forward(&mut table, &ingress, S, D),
                    Decision::Forward(out_port("vm1")),
                    "{strong:?} should beat {weak:?}"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 12 * 11);
}

#[test]
fn each_qualifier_matches_what_it_says() {
    let ingress = Ingress::Port(n("in"));
    let cases = [
        (SrcMatch::Is(S), DstMatch::Any, S, D, true),
        (SrcMatch::Is(S), DstMatch::Any, X, D, false),
        (SrcMatch::Not(S), DstMatch::Any, S, D, false),
        (SrcMatch::Not(S), DstMatch::Any, X, D, true),
        (SrcMatch::Any, DstMatch::Is(D), X, D, true),
        (SrcMatch::Any, DstMatch::Is(D), X, S, false),
        (SrcMatch::Any, DstMatch::Not(D), S, D, false),
        (SrcMatch::Any, DstMatch::Not(D), S, X, true),
        (SrcMatch::Any, DstMatch::None, S, X, true),
        (SrcMatch::Is(S), DstMatch::None, X, D, false),
    ];
    for (src_match, dst_match, src, dst, matches) in cases {
        let mut table = host_table();
        table
            .add_rule(rule(src_match, dst_match, port("vm1")))
            .expect("valid rule");
        let expected = if matches {
            Decision::Forward(out_port("vm1"))
        } else {
            Decision::Drop(DropReason::NoRule)
        };
        assert_eq!(
            forward(&mut table, &ingress, src, dst),
            expected,
            "{src_match:?} {dst_match:?} for {src} -> {dst}"
        );
    }
}

#[test]
fn ties_go_to_the_smaller_match_whatever_the_order_of_adding() {
    let a = Mac([0x02, 0, 0, 0, 0, 0x0a]);
    let b = Mac([0x02, 0, 0, 0, 0, 0x0b]);
    let ingress = Ingress::Port(n("in"));
    for cases in [
        // `not` in the source.
        [
            rule(SrcMatch::Not(a), DstMatch::Is(D), port("vm1")),
            rule(SrcMatch::Not(b), DstMatch::Is(D), port("vm2")),
        ],
        // `not` in the destination.
        [
            rule(SrcMatch::Any, DstMatch::Not(a), port("vm1")),
            rule(SrcMatch::Any, DstMatch::Not(b), port("vm2")),
        ],
    ] {
        for reversed in [false, true] {
            let mut table = host_table();
            let mut rules = cases.to_vec();
            if reversed {
                rules.reverse();
            }
            for r in rules {
                table.add_rule(r).expect("valid rule");
            }
            assert_eq!(
                forward(&mut table, &ingress, S, D),
                Decision::Forward(out_port("vm1"))
            );
            let explained = table.explain(&ingress, S, D);
            assert_eq!(explained.rule, Some(cases[0].clone()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rules

#[test]
fn adding_a_rule_with_an_existing_match_replaces_its_target() {
    let mut table = host_table();
    let ingress = Ingress::Port(n("vm1"));
    let first = rule(SrcMatch::Any, DstMatch::Is(D), link("proxy"));
    assert_eq!(table.add_rule(first.clone()), Ok(None));
    assert_eq!(
        forward(&mut table, &ingress, S, D),
        Decision::Forward(out_link("proxy"))
    );
    let second = rule(SrcMatch::Any, DstMatch::Is(D), link("host3"));
    assert_eq!(table.add_rule(second.clone()), Ok(Some(link("proxy"))));
    assert_eq!(table.rules().collect::<Vec<_>>(), vec![second.clone()]);
    assert_eq!(
        forward(&mut table, &ingress, S, D),
        Decision::Forward(out_link("host3"))
    );
    assert_eq!(
        table.delete_rule(&(second.src, second.dst)),
        Some(link("host3"))
    );
    assert_eq!(table.delete_rule(&(second.src, second.dst)), None);
    assert_eq!(table.rules().count(), 0);
    assert_eq!(
        forward(&mut table, &ingress, S, D),
        Decision::Drop(DropReason::NoRule)
    );
}

#[test]
fn rules_are_listed_in_match_order() {
    let mut table = host_table();
    let rules = [
        rule(SrcMatch::Any, DstMatch::None, link("proxy")),
        rule(SrcMatch::Is(S), DstMatch::Is(D), link("host2")),
        rule(SrcMatch::Any, DstMatch::Is(D), port("vm1")),
    ];
    for r in &rules {
        table.add_rule(r.clone()).expect("valid rule");
    }
    let mut sorted = rules.to_vec();
    sorted.sort();
    assert_eq!(table.rules().collect::<Vec<_>>(), sorted);
}

#[test]
fn group_addresses_and_self_links_are_refused_with_an_explanation() {
    let mut table = host_table();
    let invalidations = table.counters().invalidations;
    let multicast = Mac([0x01, 0x00, 0x5e, 0, 0, 1]);
    let refused = [
        (
            rule(SrcMatch::Any, DstMatch::Is(Mac::BROADCAST), port("vm1")),
            RuleError::GroupDestination {
                mac: Mac::BROADCAST,
            },
            "flooded along the star",
        ),
        (
            rule(SrcMatch::Not(S), DstMatch::Is(multicast), port("vm1")),
            RuleError::GroupDestination { mac: multicast },
            "never use rules",
        ),
        (
            rule(SrcMatch::Any, DstMatch::Not(Mac::BROADCAST), port("vm1")),
            RuleError::GroupDestination {
                mac: Mac::BROADCAST,
            },
            "exactly one copy",
        ),
        (
            rule(SrcMatch::Is(multicast), DstMatch::Any, port("vm1")),
            RuleError::GroupSource { mac: multicast },
            "no frame comes from",
        ),
        (
            rule(SrcMatch::Any, DstMatch::Is(D), link("host1")),
            RuleError::LinkToSelf { me: n("host1") },
            "link to itself",
        ),
    ];
    for (r, error, words) in refused {
        let got = table.add_rule(r.clone()).expect_err("refused");
        assert_eq!(got, error);
        assert!(got.to_string().contains(words), "{got}");
    }
    assert_eq!(table.rules().count(), 0);
    assert_eq!(table.counters().invalidations, invalidations);
}

// ---------------------------------------------------------------------------------------------
// Down links, detached ports, split horizon

#[test]
fn a_fast_path_that_goes_down_falls_back_to_the_default_rule_and_returns() {
    let vm1 = mac(1);
    let vm3 = mac(3);
    let mut table = host_table();
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::Is(vm3), link("host3")))
        .expect("valid rule");
    table
        .add_rule(rule(SrcMatch::Is(vm1), DstMatch::None, link("proxy")))
        .expect("valid rule");
    let ingress = Ingress::Port(n("vm1"));
    assert_eq!(
        forward(&mut table, &ingress, vm1, vm3),
        Decision::Forward(out_link("host3"))
    );
    assert!(table.link_down(&n("host3")));
    assert_eq!(
        forward(&mut table, &ingress, vm1, vm3),
        Decision::Forward(out_link("proxy"))
    );
    assert!(table.link_up(n("host3")));
    assert_eq!(
        forward(&mut table, &ingress, vm1, vm3),
        Decision::Forward(out_link("host3"))
    );
    // With the star down too, nothing usable is left.
    assert!(table.link_down(&n("host3")));
    assert!(table.link_down(&n("proxy")));
    assert_eq!(
        forward(&mut table, &ingress, vm1, vm3),
        Decision::Drop(DropReason::NoUsableRule)
    );
    assert_eq!(table.counters().drops(DropReason::NoUsableRule), 1);
}

#[test]
fn a_rule_to_a_detached_port_is_skipped() {
    let mut table = host_table();
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::Is(D), port("vm2")))
        .expect("valid rule");
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::None, link("proxy")))
        .expect("valid rule");
    let ingress = Ingress::Port(n("vm1"));
    assert_eq!(
        forward(&mut table, &ingress, S, D),
        Decision::Forward(out_port("vm2"))
    );
    assert!(table.detach_port(&n("vm2")));
    assert_eq!(
        forward(&mut table, &ingress, S, D),
        Decision::Forward(out_link("proxy"))
    );
    // A rule naming a port never attached is skipped too.
    table
        .add_rule(rule(SrcMatch::Is(S), DstMatch::Is(D), port("vm9")))
        .expect("valid rule");
    assert_eq!(
        forward(&mut table, &ingress, S, D),
        Decision::Forward(out_link("proxy"))
    );
}

#[test]
fn split_horizon_drops_a_frame_its_best_usable_rule_would_send_back() {
    // The Proxy's default rule points at the user's LAN: a frame between two machines of the
    // LAN, captured there, must not enter the overlay.
    let mut proxy = Table::new(Role::Proxy, n("proxy"));
    proxy.attach_port(n("lan"));
    proxy.link_up(n("host1"));
    proxy
        .add_rule(rule(SrcMatch::Any, DstMatch::None, port("lan")))
        .expect("valid rule");
    proxy
        .add_rule(rule(SrcMatch::Any, DstMatch::Is(D), link("host1")))
        .expect("valid rule");
    let lan = Ingress::Port(n("lan"));
    assert_eq!(
        forward(&mut proxy, &lan, X, S),
        Decision::Drop(DropReason::WouldReturn)
    );
    assert_eq!(
        forward(&mut proxy, &lan, X, D),
        Decision::Forward(out_link("host1"))
    );
    assert_eq!(
        forward(&mut proxy, &Ingress::Link(n("host1")), D, X),
        Decision::Forward(out_port("lan"))
    );
    assert_eq!(proxy.counters().drops(DropReason::WouldReturn), 1);

    // At a host: the best usable rule points back over the link the frame came in by. A weaker
    // rule pointing elsewhere is not tried.
    let mut table = host_table();
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::Is(D), link("host2")))
        .expect("valid rule");
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::None, link("proxy")))
        .expect("valid rule");
    let from_host2 = Ingress::Link(n("host2"));
    assert_eq!(
        forward(&mut table, &from_host2, S, D),
        Decision::Drop(DropReason::WouldReturn)
    );
    let explained = table.explain(&from_host2, S, D);
    assert_eq!(explained.decision, Decision::Drop(DropReason::WouldReturn));
    assert_eq!(
        explained.rule,
        Some(rule(SrcMatch::Any, DstMatch::Is(D), link("host2")))
    );
    // The same frame from elsewhere goes to host2.
    assert_eq!(
        forward(&mut table, &Ingress::Link(n("proxy")), S, D),
        Decision::Forward(out_link("host2"))
    );
    // Same port in and out.
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::Is(X), port("vm1")))
        .expect("valid rule");
    assert_eq!(
        forward(&mut table, &Ingress::Port(n("vm1")), S, X),
        Decision::Drop(DropReason::WouldReturn)
    );
    assert_eq!(table.counters().drops(DropReason::WouldReturn), 2);
}

#[test]
fn frames_from_an_unknown_ingress_are_dropped() {
    let mut table = host_table();
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::Any, link("proxy")))
        .expect("valid rule");
    for dst in [D, Mac::BROADCAST] {
        assert_eq!(
            forward(&mut table, &Ingress::Port(n("nowhere")), S, dst),
            Decision::Drop(DropReason::UnknownIngress)
        );
        assert_eq!(
            forward(&mut table, &Ingress::Link(n("vm1")), S, dst),
            Decision::Drop(DropReason::UnknownIngress),
            "a port's name is not a link's"
        );
    }
    // A handle from a bigger table names nothing here.
    let mut big = host_table();
    for i in 0..20 {
        big.attach_port(n(&format!("p{i}")));
    }
    let foreign = big.ingress_id(&Ingress::Port(n("p19"))).expect("known");
    for dst in [D, Mac::BROADCAST] {
        assert_eq!(
            table.lookup_id(foreign, S, dst),
            &Decision::Drop(DropReason::UnknownIngress)
        );
    }
    assert_eq!(table.counters().drops(DropReason::UnknownIngress), 6);
    let explained = table.explain(&Ingress::Port(n("nowhere")), S, D);
    assert_eq!(
        explained.decision,
        Decision::Drop(DropReason::UnknownIngress)
    );
}

// ---------------------------------------------------------------------------------------------
// Floods

#[test]
fn flood_lists_for_every_role_and_ingress() {
    let group = Mac([0x01, 0x00, 0x5e, 0, 0, 0xfb]);
    for dst in [Mac::BROADCAST, group] {
        // A host: ports vm1, vm2, in; links proxy, host2, host3.
        let mut table = host_table();
        // Rules never matter to group frames.
        table
            .add_rule(rule(SrcMatch::Any, DstMatch::Any, link("host2")))
            .expect("valid rule");
        let all_ports_but = |p: &str| -> Vec<Out> {
            ["in", "vm1", "vm2"]
                .into_iter()
                .filter(|q| *q != p)
                .map(out_port)
                .collect()
        };
        let mut expected = all_ports_but("vm1");
        expected.push(out_link("proxy"));
        assert_eq!(
            forward(&mut table, &Ingress::Port(n("vm1")), S, dst),
            Decision::Flood(expected)
        );
        assert_eq!(
            forward(&mut table, &Ingress::Link(n("proxy")), S, dst),
            Decision::Flood(all_ports_but(""))
        );
        for fast in ["host2", "host3"] {
            assert_eq!(
                forward(&mut table, &Ingress::Link(n(fast)), S, dst),
                Decision::Drop(DropReason::GroupOnFastPath)
            );
        }
        // The star down: the local ports only.
        table.link_down(&n("proxy"));
        assert_eq!(
            forward(&mut table, &Ingress::Port(n("vm2")), S, dst),
            Decision::Flood(all_ports_but("vm2"))
        );
        // A guest alone: nobody.
        for p in ["vm1", "in"] {
            table.detach_port(&n(p));
        }
        assert_eq!(
            forward(&mut table, &Ingress::Port(n("vm2")), S, dst),
            Decision::Flood(vec![])
        );
        assert_eq!(table.counters().drops(DropReason::GroupOnFastPath), 2);

        // The Proxy: ports lan and guest; links host1, host2, host3 (host3 down).
        let mut proxy = Table::new(Role::Proxy, n("proxy"));
        proxy.attach_port(n("lan"));
        proxy.attach_port(n("guest"));
        for h in ["host1", "host2", "host3"] {
            proxy.link_up(n(h));
        }
        proxy.link_down(&n("host3"));
        proxy
            .add_rule(rule(SrcMatch::Any, DstMatch::None, port("lan")))
            .expect("valid rule");
        assert_eq!(
            forward(&mut proxy, &Ingress::Link(n("host1")), S, dst),
            Decision::Flood(vec![out_port("guest"), out_port("lan"), out_link("host2")])
        );
        assert_eq!(
            forward(&mut proxy, &Ingress::Port(n("lan")), S, dst),
            Decision::Flood(vec![
                out_port("guest"),
                out_link("host1"),
                out_link("host2")
            ])
        );
        // A host whose link the Proxy thinks is down still has its frame flooded to the rest.
        assert_eq!(
            forward(&mut proxy, &Ingress::Link(n("host3")), S, dst),
            Decision::Flood(vec![
                out_port("guest"),
                out_port("lan"),
                out_link("host1"),
                out_link("host2")
            ])
        );
    }
}

#[test]
fn decisions_display_in_words() {
    assert_eq!(
        Decision::Forward(out_link("host3")).to_string(),
        "forward to link host3"
    );
    assert_eq!(
        Decision::Flood(vec![out_port("lan"), out_link("host2")]).to_string(),
        "flood to port lan, link host2"
    );
    assert_eq!(Decision::Flood(vec![]).to_string(), "flood to nobody");
    assert_eq!(
        Decision::Drop(DropReason::WouldReturn).to_string(),
        "drop: the best usable rule sends the frame back where it came in (split horizon)"
    );
    let labels: BTreeSet<&str> = DropReason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels.len(), DropReason::ALL.len());
    for (i, reason) in DropReason::ALL.iter().enumerate() {
        assert_eq!(reason.index(), i);
    }
}

// ---------------------------------------------------------------------------------------------
// The cache

/// A table where a frame from `vm1` (S) to D goes to host3 over a fast path, with a default
/// rule through the Proxy.
fn cached_table() -> Table {
    let mut table = host_table();
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::Is(D), link("host3")))
        .expect("valid rule");
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::None, link("proxy")))
        .expect("valid rule");
    table
}

#[test]
fn a_repeated_lookup_is_a_hit_and_every_kind_of_change_invalidates() {
    type Change = fn(&mut Table) -> bool;
    let from_vm1 = Ingress::Port(n("vm1"));
    let nothing: Change = |_| true;
    let via_host3 = Decision::Forward(out_link("host3"));
    // (what, set-up before the first lookup, decision then, the change, decision after): the
    // change alone must empty the cache, so the set-up does everything else.
    let changes: Vec<(&str, Change, Decision, Change, Decision)> = vec![
        (
            "add a stronger rule",
            nothing,
            via_host3.clone(),
            |t| {
                t.add_rule(rule(SrcMatch::Is(S), DstMatch::Is(D), link("host2")))
                    .is_ok()
            },
            Decision::Forward(out_link("host2")),
        ),
        (
            "replace the rule's target",
            nothing,
            via_host3.clone(),
            |t| {
                t.add_rule(rule(SrcMatch::Any, DstMatch::Is(D), port("vm2")))
                    .is_ok()
            },
            Decision::Forward(out_port("vm2")),
        ),
        (
            "delete the rule",
            nothing,
            via_host3.clone(),
            |t| t.delete_rule(&(SrcMatch::Any, DstMatch::Is(D))).is_some(),
            Decision::Forward(out_link("proxy")),
        ),
        (
            "link down",
            nothing,
            via_host3.clone(),
            |t| t.link_down(&n("host3")),
            Decision::Forward(out_link("proxy")),
        ),
        (
            "link up",
            // A stronger rule over a link that is down: skipped until the link comes up.
            |t| {
                t.add_rule(rule(SrcMatch::Is(S), DstMatch::Is(D), link("host4")))
                    .is_ok()
            },
            via_host3.clone(),
            |t| t.link_up(n("host4")),
            Decision::Forward(out_link("host4")),
        ),
        (
            "port attached",
            |t| {
                t.add_rule(rule(SrcMatch::Is(S), DstMatch::Is(D), port("vm5")))
                    .is_ok()
            },
            via_host3.clone(),
            |t| t.attach_port(n("vm5")),
            Decision::Forward(out_port("vm5")),
        ),
        (
            "port detached",
            |t| {
                t.add_rule(rule(SrcMatch::Is(S), DstMatch::Is(D), port("vm2")))
                    .is_ok()
            },
            Decision::Forward(out_port("vm2")),
            |t| t.detach_port(&n("vm2")),
            via_host3.clone(),
        ),
    ];
    for (what, setup, before, change, after) in changes {
        let mut table = cached_table();
        assert!(setup(&mut table), "{what}");
        assert_eq!(forward(&mut table, &from_vm1, S, D), before, "{what}");
        assert_eq!(forward(&mut table, &from_vm1, S, D), before, "{what}");
        assert_eq!((table.counters().misses, table.counters().hits), (1, 1));
        assert_eq!(table.cached(), 1);
        let invalidations = table.counters().invalidations;
        assert!(change(&mut table), "{what}");
        assert!(table.counters().invalidations > invalidations, "{what}");
        assert_eq!(table.cached(), 0, "{what}");
        assert_eq!(forward(&mut table, &from_vm1, S, D), after, "{what}");
        assert_eq!(table.counters().misses, 2, "{what}");
        assert_eq!(forward(&mut table, &from_vm1, S, D), after, "{what}");
        assert_eq!(table.counters().hits, 2, "{what}");
    }
}

#[test]
fn changes_that_change_nothing_keep_the_cache() {
    let from_vm1 = Ingress::Port(n("vm1"));
    let mut table = cached_table();
    forward(&mut table, &from_vm1, S, D);
    let invalidations = table.counters().invalidations;
    assert!(!table.link_up(n("host3")));
    assert!(!table.link_down(&n("host9")));
    assert!(!table.attach_port(n("vm1")));
    assert!(!table.detach_port(&n("vm9")));
    assert_eq!(table.delete_rule(&(SrcMatch::Is(X), DstMatch::Any)), None);
    assert_eq!(
        table.add_rule(rule(SrcMatch::Any, DstMatch::Is(D), link("host3"))),
        Ok(Some(link("host3")))
    );
    assert_eq!(table.counters().invalidations, invalidations);
    assert_eq!(table.cached(), 1);
    // Names a table was only asked about are not kept.
    assert_eq!(table.ingress_id(&Ingress::Link(n("host9"))), None);
}

#[test]
fn flood_decisions_are_cached_per_ingress_and_invalidated_too() {
    let mut table = host_table();
    let from_vm1 = Ingress::Port(n("vm1"));
    let before = forward(&mut table, &from_vm1, S, Mac::BROADCAST);
    // Another source, same ingress: a hit, and no unicast entry.
    assert_eq!(forward(&mut table, &from_vm1, X, Mac::BROADCAST), before);
    assert_eq!((table.counters().misses, table.counters().hits), (1, 1));
    assert_eq!(table.cached(), 0);
    table.attach_port(n("vm7"));
    let Decision::Flood(after) = forward(&mut table, &from_vm1, S, Mac::BROADCAST) else {
        panic!("a flood");
    };
    assert!(after.contains(&out_port("vm7")));
    assert_eq!(table.counters().misses, 2);
}

#[test]
fn the_cache_stays_within_its_capacity() {
    let mut table = Table::with_cache_capacity(host_role(), n("host1"), 4);
    table.attach_port(n("vm1"));
    table.link_up(n("proxy"));
    table
        .add_rule(rule(SrcMatch::Any, DstMatch::Any, link("proxy")))
        .expect("valid rule");
    let from_vm1 = Ingress::Port(n("vm1"));
    for i in 0..50 {
        assert_eq!(
            forward(&mut table, &from_vm1, S, mac(i)),
            Decision::Forward(out_link("proxy"))
        );
        assert!(table.cached() <= 4);
    }
    assert!(table.counters().cache_full >= 10);
    // A capacity of zero means one.
    let mut tiny = Table::with_cache_capacity(Role::Proxy, n("proxy"), 0);
    tiny.attach_port(n("lan"));
    for i in 0..3 {
        tiny.lookup(&Ingress::Port(n("lan")), S, mac(i));
        assert_eq!(tiny.cached(), 1);
    }
    // A full cache still answers the frames it holds: a hit does not empty it.
    let (hits, full) = (tiny.counters().hits, tiny.counters().cache_full);
    tiny.lookup(&Ingress::Port(n("lan")), S, mac(2));
    assert_eq!(tiny.counters().hits, hits + 1);
    assert_eq!(tiny.counters().cache_full, full);
}

#[test]
fn ingress_handles_survive_detach_and_reattach() {
    let mut table = cached_table();
    let id = table
        .ingress_id(&Ingress::Port(n("vm1")))
        .expect("attached");
    assert_eq!(
        table.lookup_id(id, S, D),
        &Decision::Forward(out_link("host3"))
    );
    table.detach_port(&n("vm1"));
    table.attach_port(n("vm1"));
    assert_eq!(table.ingress_id(&Ingress::Port(n("vm1"))), Some(id));
    assert_eq!(
        table.lookup_id(id, S, D),
        &Decision::Forward(out_link("host3"))
    );
    let mut ports: Vec<&Name> = table.ports().collect();
    ports.sort();
    assert_eq!(ports, vec![&n("in"), &n("vm1"), &n("vm2")]);
    let mut links: Vec<&Name> = table.links_up().collect();
    links.sort();
    assert_eq!(links, vec![&n("host2"), &n("host3"), &n("proxy")]);
    assert_eq!(table.me(), &n("host1"));
    assert_eq!(table.role(), &host_role());
}

// ---------------------------------------------------------------------------------------------
// Overlays: a builder

/// An overlay under construction: a Proxy with the user's LAN as port `lan`, hosts with
/// guests, links and rules.
#[derive(Debug, Clone)]
struct Net {
    topology: Topology,
    /// Each guest's address by its host.
    guests: BTreeMap<Name, Vec<(Name, Mac)>>,
}

impl Net {
    /// The star: hosts `host1`..`hostN`, host `i` with guests `vm{i}{j}` for `j` in
    /// `1..=per_host[i-1]` (addresses `02:56:4e:00:i:j`); at each host a port rule and a default
    /// rule toward the Proxy per guest; at the Proxy a rule per guest toward its host and a
    /// default rule to the LAN.
    fn star(per_host: &[u8]) -> Net {
        let mut net = Net {
            topology: Topology::default(),
            guests: BTreeMap::new(),
        };
        net.add_daemon("proxy");
        net.rule("proxy", SrcMatch::Any, DstMatch::None, port("lan"));
        for (i, &count) in (1u8..).zip(per_host) {
            let host = format!("host{i}");
            net.add_daemon(&host);
            net.link("proxy", &host, LinkKind::Udp);
            for j in 1..=count {
                let vm = format!("vm{i}{j}");
                let address = Mac([0x02, 0x56, 0x4e, 0x00, i, j]);
                net.guests
                    .entry(n(&host))
                    .or_default()
                    .push((n(&vm), address));
                net.rule(&host, SrcMatch::Any, DstMatch::Is(address), port(&vm));
                net.rule(&host, SrcMatch::Is(address), DstMatch::None, link("proxy"));
                net.rule("proxy", SrcMatch::Any, DstMatch::Is(address), link(&host));
            }
        }
        net
    }

    fn add_daemon(&mut self, name: &str) {
        self.topology.hosts.insert(
            n(name),
            Host {
                user: "vnet".to_string(),
                machine: n(name),
                port: 7000,
                interface: n("eth0"),
            },
        );
    }

    fn link(&mut self, a: &str, b: &str, kind: LinkKind) {
        self.topology
            .links
            .insert(Link::new(n(a), n(b), kind).expect("two ends"));
    }

    fn rule(&mut self, daemon: &str, src: SrcMatch, dst: DstMatch, target: Target) {
        self.topology
            .rules
            .entry(n(daemon))
            .or_default()
            .insert((src, dst), target);
    }

    /// A fast path between two hosts, with rules at both ends for every guest of the other.
    fn fast_path(&mut self, a: &str, b: &str) {
        self.link(a, b, LinkKind::Udp);
        for (from, to) in [(a, b), (b, a)] {
            for (_, address) in self.guests_of(to) {
                self.rule(from, SrcMatch::Any, DstMatch::Is(address), link(to));
            }
        }
    }

    fn guests_of(&self, host: &str) -> Vec<(Name, Mac)> {
        self.guests.get(&n(host)).cloned().unwrap_or_default()
    }

    fn guest(&self, host: &str, index: usize) -> Mac {
        self.guests_of(host)[index].1
    }

    fn all_guests(&self) -> Vec<(Name, Name, Mac)> {
        self.guests
            .iter()
            .flat_map(|(host, guests)| {
                guests
                    .iter()
                    .map(move |(vm, address)| (host.clone(), vm.clone(), *address))
            })
            .collect()
    }

    fn check(&self) -> Vec<Problem> {
        check(&self.topology, &n("proxy"))
    }

    fn route(&self, src: Mac, dst: Mac, down: &[(&str, &str)]) -> Result<Route, RouteError> {
        let down: BTreeSet<Link> = down
            .iter()
            .map(|(a, b)| Link::new(n(a), n(b), LinkKind::Udp).expect("two ends"))
            .collect();
        route(&self.topology, &n("proxy"), src, dst, &down)
    }
}

// ---------------------------------------------------------------------------------------------
// Routes and checks

#[test]
fn on_the_star_every_route_goes_through_the_proxy() {
    let net = Net::star(&[1, 1, 2]);
    assert_eq!(net.check(), vec![]);
    let vm11 = net.guest("host1", 0);
    let vm31 = net.guest("host3", 0);
    let vm32 = net.guest("host3", 1);
    let route = net.route(vm11, vm31, &[]).expect("a route");
    assert_eq!(
        route.to_string(),
        "host1 --udp--> proxy --udp--> host3 -> port vm31"
    );
    assert_eq!(route.delivered_to(), Some((&n("host3"), &n("vm31"))));
    assert_eq!(
        route.links().collect::<Vec<_>>(),
        vec![(&n("host1"), &n("proxy")), (&n("proxy"), &n("host3"))]
    );
    assert_eq!(
        route.hops[0].rule,
        Some((SrcMatch::Is(vm11), DstMatch::None))
    );
    assert_eq!(route.hops[0].to_string(), "host1 --udp--> proxy");
    assert_eq!(route.hops[2].to_string(), "host3 -> port vm31");
    // Two guests of one host talk through it alone.
    assert_eq!(
        net.route(vm31, vm32, &[]).expect("a route").to_string(),
        "host3 -> port vm32"
    );
    // A machine on the user's LAN is reached through the Proxy's default rule.
    assert_eq!(
        net.route(vm11, X, &[]).expect("a route").to_string(),
        "host1 --udp--> proxy -> port lan"
    );
}

#[test]
fn fast_paths_carry_traffic_and_fall_back_to_the_star_when_down() {
    let mut net = Net::star(&[1, 1, 1]);
    net.fast_path("host1", "host3");
    assert_eq!(net.check(), vec![]);
    let vm11 = net.guest("host1", 0);
    let vm21 = net.guest("host2", 0);
    let vm31 = net.guest("host3", 0);
    assert_eq!(
        net.route(vm11, vm31, &[]).expect("a route").to_string(),
        "host1 --udp--> host3 -> port vm31"
    );
    assert_eq!(
        net.route(vm31, vm11, &[]).expect("a route").to_string(),
        "host3 --udp--> host1 -> port vm11"
    );
    assert_eq!(
        net.route(vm11, vm31, &[("host1", "host3")])
            .expect("a route")
            .to_string(),
        "host1 --udp--> proxy --udp--> host3 -> port vm31"
    );
    assert_eq!(
        net.route(vm11, vm21, &[]).expect("a route").to_string(),
        "host1 --udp--> proxy --udp--> host2 -> port vm21"
    );
    // TCP links say so.
    let mut tcp = Net::star(&[1, 1]);
    tcp.topology.links.clear();
    tcp.link("proxy", "host1", LinkKind::Tcp);
    tcp.link("proxy", "host2", LinkKind::Udp);
    assert_eq!(
        tcp.route(tcp.guest("host1", 0), tcp.guest("host2", 0), &[])
            .expect("a route")
            .to_string(),
        "host1 --tcp--> proxy --udp--> host2 -> port vm21"
    );
}

#[test]
fn a_looping_configuration_is_reported_with_its_cycle() {
    let mut net = Net::star(&[1, 1, 1, 1]);
    for (a, b) in [("host1", "host2"), ("host2", "host3"), ("host1", "host3")] {
        net.link(a, b, LinkKind::Udp);
    }
    let vm11 = net.guest("host1", 0);
    let vm41 = net.guest("host4", 0);
    net.rule("host1", SrcMatch::Any, DstMatch::Is(vm41), link("host2"));
    net.rule("host2", SrcMatch::Any, DstMatch::Is(vm41), link("host3"));
    net.rule("host3", SrcMatch::Any, DstMatch::Is(vm41), link("host1"));
    let error = net.route(vm11, vm41, &[]).expect_err("a loop");
    let RouteError::Loop { cycle, hops } = &error else {
        panic!("a loop, not {error}");
    };
    assert_eq!(cycle, &vec![n("host1"), n("host2"), n("host3"), n("host1")]);
    assert_eq!(hops.len(), 3);
    assert_eq!(
        error.to_string(),
        "loop through host1 -> host2 -> host3 -> host1: \
         host1 --udp--> host2 --udp--> host3 --udp--> host1"
    );
    let problems = net.check();
    assert!(
        problems.iter().any(|p| matches!(
            p,
            Problem::Unreachable {
                down: None,
                src,
                dst,
                error: RouteError::Loop { .. }
            } if *src == vm11 && *dst == vm41
        )),
        "{problems:#?}"
    );
    // With host1–host2 down, host1 falls back to the star and the loop is gone for vm11; the
    // frames from vm21 and vm31 to vm41 loop as well.
    assert_eq!(
        net.route(vm11, vm41, &[("host1", "host2")])
            .expect("a route")
            .to_string(),
        "host1 --udp--> proxy --udp--> host4 -> port vm41"
    );
    for from in [net.guest("host2", 0), net.guest("host3", 0)] {
        assert!(problems.iter().any(|p| matches!(
            p,
            Problem::Unreachable { down: None, src, error: RouteError::Loop { .. }, .. }
                if *src == from
        )));
    }
    let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        rendered
            .iter()
            .any(|p| p.starts_with("02:56:4e:00:01:01 to 02:56:4e:00:04:01: loop")),
        "{rendered:#?}"
    );
}

#[test]
fn a_fallback_that_does_not_work_is_reported_for_the_link_that_breaks_it() {
    // host1 reaches host3's guest through host2; host2 has a fast path to host3 but no default
    // rule for host1's guest, so when host2–host3 goes down the frame is stuck at host2.
    let mut net = Net::star(&[1, 1, 1]);
    net.link("host1", "host2", LinkKind::Udp);
    net.link("host2", "host3", LinkKind::Udp);
    let vm11 = net.guest("host1", 0);
    let vm31 = net.guest("host3", 0);
    net.rule("host1", SrcMatch::Any, DstMatch::Is(vm31), link("host2"));
    net.rule("host2", SrcMatch::Any, DstMatch::Is(vm31), link("host3"));
    assert_eq!(
        net.route(vm11, vm31, &[]).expect("a route").to_string(),
        "host1 --udp--> host2 --udp--> host3 -> port vm31"
    );
    let problems = net.check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let down = Link::new(n("host2"), n("host3"), LinkKind::Udp);
    assert_eq!(
        problems[0],
        Problem::Unreachable {
            down: down.clone(),
            src: vm11,
            dst: vm31,
            error: RouteError::DeadEnd {
                at: n("host2"),
                reason: DropReason::NoUsableRule,
                hops: vec![Hop {
                    daemon: n("host1"),
                    out: out_link("host2"),
                    kind: Some(LinkKind::Udp),
                    rule: Some((SrcMatch::Any, DstMatch::Is(vm31))),
                }],
            },
        }
    );
    assert_eq!(
        problems[0].to_string(),
        "with link host2-host3 down, 02:56:4e:00:01:01 to 02:56:4e:00:03:01: \
         host1 --udp--> host2: dropped at host2: every matching rule's link is down or its \
         port is not attached"
    );
    // With host1–host2 down, host1 falls back to the star: fine.
    assert!(net.route(vm11, vm31, &[("host1", "host2")]).is_ok());
}

#[test]
fn dead_ends_misdeliveries_and_ambiguous_homes_are_reported() {
    // The Proxy forgets host2's guest: frames to it end up on the user's LAN.
    let mut net = Net::star(&[1, 1]);
    let vm11 = net.guest("host1", 0);
    let vm21 = net.guest("host2", 0);
    net.topology
        .rules
        .get_mut(&n("proxy"))
        .expect("proxy rules")
        .remove(&(SrcMatch::Any, DstMatch::Is(vm21)));
    let problems = net.check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].to_string(),
        "02:56:4e:00:01:01 to 02:56:4e:00:02:01: host1 --udp--> proxy -> port lan delivers to \
         proxy port lan instead of host2 port vm21"
    );

    // Without the Proxy's default rule, the frame dies at the Proxy.
    net.topology
        .rules
        .get_mut(&n("proxy"))
        .expect("proxy rules")
        .remove(&(SrcMatch::Any, DstMatch::None));
    let error = net.route(vm11, vm21, &[]).expect_err("a dead end");
    assert_eq!(
        error.to_string(),
        "host1 --udp--> proxy: dropped at proxy: no rule matches the frame"
    );
    // A dead end at the first daemon names it alone.
    let mut lonely = Net::star(&[1, 1]);
    lonely
        .topology
        .rules
        .get_mut(&n("host1"))
        .expect("rules")
        .retain(|m, _| m.1 != DstMatch::None);
    let error = lonely
        .route(lonely.guest("host1", 0), lonely.guest("host2", 0), &[])
        .expect_err("a dead end");
    assert_eq!(
        error.to_string(),
        "host1: dropped at host1: no rule matches the frame"
    );

    // Two homes for one address.
    let mut twice = Net::star(&[1, 1]);
    let vm11 = twice.guest("host1", 0);
    twice.rule("host2", SrcMatch::Any, DstMatch::Is(vm11), port("vm21"));
    let problems = twice.check();
    assert!(problems.contains(&Problem::AmbiguousHome {
        mac: vm11,
        homes: vec![(n("host1"), n("vm11")), (n("host2"), n("vm21"))],
    }));
    let error = twice
        .route(vm11, twice.guest("host2", 0), &[])
        .expect_err("ambiguous");
    assert_eq!(
        error.to_string(),
        "02:56:4e:00:01:01 has more than one home: host1 port vm11, host2 port vm21"
    );

    // Unknown sources and group destinations.
    assert_eq!(
        net.route(X, vm21, &[]),
        Err(RouteError::UnknownSource { mac: X })
    );
    assert!(matches!(
        net.route(vm11, Mac::BROADCAST, &[]),
        Err(RouteError::GroupDestination { .. })
    ));
}

#[test]
fn refused_rules_and_broken_stars_are_reported() {
    let mut net = Net::star(&[1, 1]);
    net.rule(
        "host1",
        SrcMatch::Any,
        DstMatch::Is(Mac::BROADCAST),
        port("vm11"),
    );
    let problems = net.check();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .to_string()
            .starts_with("host1: rule from any to ff:ff:ff:ff:ff:ff -> port vm11 is refused: "),
        "{}",
        problems[0]
    );

    // host2 has a fast path to host1 but no star link: its guest misses broadcasts from the
    // others, and theirs miss it.
    let mut net = Net::star(&[1, 1]);
    net.fast_path("host1", "host2");
    net.topology
        .links
        .retain(|l| !(l.a == n("host2") && l.b == n("proxy")));
    let problems = net.check();
    let vm11 = net.guest("host1", 0);
    let vm21 = net.guest("host2", 0);
    assert!(problems.contains(&Problem::Broadcast {
        src: vm11,
        receiver: (n("host2"), n("vm21")),
        copies: 0,
        expected: 1,
    }));
    assert!(problems.contains(&Problem::Broadcast {
        src: vm21,
        receiver: (n("proxy"), n("lan")),
        copies: 0,
        expected: 1,
    }));
    assert!(problems.iter().any(|p| p.to_string()
        == "a broadcast from 02:56:4e:00:01:01 reaches host2 port vm21 never (expected once)"));
}

// ---------------------------------------------------------------------------------------------
// Broadcast: exactly once, whatever the fast paths and rules

/// Sends a broadcast from `sender` (at `home`, port `port`) through clones of every daemon's
/// table, using the cached lookup, and counts copies per (daemon, port).
fn simulate_broadcast(
    tables: &mut BTreeMap<Name, Table>,
    sender: Mac,
    home: &Name,
    port: &Name,
) -> BTreeMap<(Name, Name), usize> {
    let mut copies = BTreeMap::new();
    let mut queue = VecDeque::from([(home.clone(), Ingress::Port(port.clone()))]);
    let mut steps = 0;
    while let Some((at, ingress)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 1000, "the broadcast does not die out");
        let table = tables.get_mut(&at).expect("a daemon");
        match table.lookup(&ingress, sender, Mac::BROADCAST).clone() {
            Decision::Flood(outs) => {
                for out in outs {
                    match out {
                        Out::Port(p) => *copies.entry((at.clone(), p)).or_insert(0) += 1,
                        Out::Link(peer) => queue.push_back((peer, Ingress::Link(at.clone()))),
                    }
                }
            }
            Decision::Drop(_) => {}
            Decision::Forward(out) => panic!("a broadcast forwarded like unicast to {out}"),
        }
    }
    copies
}

/// A random overlay: hosts with guests, a random set of fast paths, a random set of them down,
/// and random extra rules (any qualifiers, any targets).
fn arbitrary_net() -> impl Strategy<Value = (Net, Vec<(usize, usize)>)> {
    (2usize..=6)
        .prop_flat_map(|hosts| {
            let pairs: Vec<(usize, usize)> = (1..=hosts)
                .flat_map(|a| (a + 1..=hosts).map(move |b| (a, b)))
                .collect();
            let count = pairs.len();
            (
                proptest::collection::vec(1u8..=2, hosts),
                proptest::sample::subsequence(pairs.clone(), 0..=count),
                proptest::sample::subsequence(pairs, 0..=count),
                proptest::collection::vec(arbitrary_rule(hosts), 0..12),
            )
        })
        .prop_map(|(per_host, fast, down, extra)| {
            let mut net = Net::star(&per_host);
            for &(a, b) in &fast {
                net.fast_path(&format!("host{a}"), &format!("host{b}"));
            }
            for (daemon, src, dst, target) in extra {
                net.rule(&daemon, src, dst, target);
            }
            let down = down.into_iter().filter(|p| fast.contains(p)).collect();
            (net, down)
        })
}

fn arbitrary_mac() -> impl Strategy<Value = Mac> {
    // Guest-like addresses (some of which exist), plus group ones now and then.
    prop_oneof![
        4 => (1u8..=6, 1u8..=2).prop_map(|(i, j)| Mac([0x02, 0x56, 0x4e, 0x00, i, j])),
        1 => any::<[u8; 6]>().prop_map(Mac),
    ]
}

fn arbitrary_rule(hosts: usize) -> impl Strategy<Value = (String, SrcMatch, DstMatch, Target)> {
    let daemon = (0..=hosts).prop_map(|i| {
        if i == 0 {
            "proxy".to_string()
        } else {
            format!("host{i}")
        }
    });
    let src = prop_oneof![
        arbitrary_mac().prop_map(SrcMatch::Is),
        arbitrary_mac().prop_map(SrcMatch::Not),
        Just(SrcMatch::Any),
    ];
    let dst = prop_oneof![
        arbitrary_mac().prop_map(DstMatch::Is),
        arbitrary_mac().prop_map(DstMatch::Not),
        Just(DstMatch::Any),
        Just(DstMatch::None),
    ];
    let target = prop_oneof![
        (0..=hosts + 1).prop_map(|i| if i == 0 {
            link("proxy")
        } else {
            link(&format!("host{i}"))
        }),
        (1..=hosts, 1u8..=3).prop_map(|(i, j)| port(&format!("vm{i}{j}"))),
        Just(port("lan")),
    ];
    (daemon, src, dst, target)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever fast paths exist, are down, and whatever rules the daemons hold, a broadcast
    /// from any guest reaches every other guest's port and the user's LAN exactly once, and its
    /// sender never.
    #[test]
    fn a_broadcast_reaches_everyone_else_exactly_once((net, down) in arbitrary_net()) {
        let mut overlay = Overlay::new(&net.topology, &n("proxy"));
        for (a, b) in &down {
            overlay.set_link(&n(&format!("host{a}")), &n(&format!("host{b}")), false);
        }
        let daemons: Vec<Name> = net.topology.hosts.keys().cloned().collect();
        let mut tables: BTreeMap<Name, Table> = daemons
            .iter()
            .map(|d| (d.clone(), overlay.table(d).expect("a table").clone()))
            .collect();
        let guests = net.all_guests();
        for (home, vm, sender) in &guests {
            // An extra rule may have replaced the guest's port rule: then its port is not
            // attached and it sends nothing.
            let attached = tables.get(home).is_some_and(|t| t.ports().any(|p| p == vm));
            if !attached {
                continue;
            }
            let copies = simulate_broadcast(&mut tables, *sender, home, vm);
            // Every attached port but the sender's: the guests, the user's LAN (unless an extra
            // rule replaced the Proxy's default rule) and whatever ports extra rules attached.
            let expected: BTreeMap<(Name, Name), usize> = tables
                .iter()
                .flat_map(|(daemon, table)| table.ports().map(|p| (daemon.clone(), p.clone())))
                .filter(|(daemon, p)| !(daemon == home && p == vm))
                .map(|receiver| (receiver, 1))
                .collect();
            prop_assert_eq!(&copies, &expected, "broadcast from {}", vm);
            // The analysis agrees with the data path when it starts at the same port (an extra
            // rule may have given the sender's address another home, or several).
            if overlay.home(*sender) == Ok(&(home.clone(), vm.clone())) {
                prop_assert_eq!(&overlay.broadcast(*sender), &Ok(copies));
            }
        }
    }

    /// Consistent fast paths (rules at both ends for each other's guests), any of them down:
    /// every guest reaches every other, and `check` finds nothing.
    #[test]
    fn consistent_fast_paths_check_clean((net, down) in arbitrary_net().prop_map(|(mut net, down)| {
        // Drop the random extra rules: rebuild from the star and the fast paths only.
        let links = net.topology.links.clone();
        let per_host: Vec<u8> = net.guests.values().map(|g| u8::try_from(g.len()).unwrap_or(1)).collect();
        let mut clean = Net::star(&per_host);
        for l in &links {
            if l.a != n("proxy") && l.b != n("proxy") {
                clean.fast_path(l.a.as_str(), l.b.as_str());
            }
        }
        net = clean;
        (net, down)
    })) {
        prop_assert_eq!(net.check(), vec![]);
        let down: Vec<(String, String)> = down
            .iter()
            .map(|(a, b)| (format!("host{a}"), format!("host{b}")))
            .collect();
        let down: Vec<(&str, &str)> = down.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let guests = net.all_guests();
        for (_, _, src) in &guests {
            for (host, vm, dst) in &guests {
                if src == dst {
                    continue;
                }
                let route = net.route(*src, *dst, &down);
                prop_assert!(route.is_ok(), "{:?}", route);
                let route = route.expect("checked");
                prop_assert_eq!(route.delivered_to(), Some((host, vm)));
                prop_assert!(route.hops.len() <= 3);
            }
        }
    }

    /// No input makes the analysis or a table panic.
    #[test]
    fn nothing_panics((net, _) in arbitrary_net(), src in arbitrary_mac(), dst in arbitrary_mac()) {
        let problems = net.check();
        for problem in &problems {
            prop_assert!(!problem.to_string().is_empty());
        }
        let _ = net.route(src, dst, &[("host1", "host2")]);
        let overlay = Overlay::new(&net.topology, &n("proxy"));
        let _ = overlay.broadcast(src);
        let mut table = overlay.table(&n("host1")).expect("a table").clone();
        for ingress in [Ingress::Port(n("vm11")), Ingress::Link(n("proxy")), Ingress::Link(n("host2")), Ingress::Port(n("zz"))] {
            let decision = table.lookup(&ingress, src, dst).clone();
            prop_assert_eq!(&decision, &table.explain(&ingress, src, dst).decision);
        }
    }
}

#[test]
fn with_a_full_mesh_of_fast_paths_a_broadcast_still_arrives_once() {
    let mut net = Net::star(&[2, 1, 2, 1, 2]);
    for a in 1..=5 {
        for b in a + 1..=5 {
            net.fast_path(&format!("host{a}"), &format!("host{b}"));
        }
    }
    assert_eq!(net.check(), vec![]);
    let overlay = Overlay::new(&net.topology, &n("proxy"));
    let guests = net.all_guests();
    for (home, vm, sender) in &guests {
        let copies = overlay.broadcast(*sender).expect("a broadcast");
        let mut expected: Deliveries = guests
            .iter()
            .filter(|(_, other, _)| other != vm)
            .map(|(h, other, _)| ((h.clone(), other.clone()), 1))
            .collect();
        expected.insert((n("proxy"), n("lan")), 1);
        assert_eq!(copies, expected, "from {vm} at {home}");
    }
    // Unicast takes the fast paths.
    let route = overlay
        .route(net.guest("host2", 0), net.guest("host5", 1))
        .expect("a route");
    assert_eq!(route.to_string(), "host2 --udp--> host5 -> port vm52");
}
