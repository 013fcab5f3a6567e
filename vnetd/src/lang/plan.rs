//! Plans: the primitives that turn one topology into another without cutting guests off.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Item};
use crate::model::{Host, Link, LinkKind, Name, Rule, Target, Topology};

/// The fewest primitives that turn `current` into `desired` (links and rules; for the machines
/// see [`host_changes`]), ordered so that no guest is cut off on the way:
///
/// 1. add the links that `desired` adds;
/// 2. add the rules that `desired` adds or changes (adding a rule for a match the machine
///    already holds replaces its target in one step, so a route moves without a gap);
/// 3. delete the rules that `desired` drops;
/// 4. delete the links that `desired` drops.
///
/// So a match that both topologies route at a machine is routed at every step, and the rules
/// of every intermediate topology are valid: each `EDGE` rule's link exists when the rule is
/// added, and no link is deleted while a rule uses it. This holds provided both topologies pass
/// [`check`](super::check) and every machine of `desired` is declared when the plan is applied
/// (start the new daemons first). `plan(x, x)` is empty.
///
/// The exception is a link whose transport changes (UDP to TCP or back): the model allows one
/// link per pair of machines, so the new link cannot be added before the old one is deleted.
/// Such links are replaced between steps 2 and 3:
///
/// * delete the rules over the old link whose match `desired` also routes over a changing link
///   (those that `desired` sends elsewhere were moved in step 2, and those it drops go here
///   too);
/// * delete the old link and add the new one;
/// * add the rules of `desired` over the new link (replacing, without a gap, those of their
///   matches that still route over links that step 4 deletes).
///
/// Only the matches routed over a changing link in both topologies miss a rule for a moment.
///
/// Within a step, rules are in the order of their machines' names and then of their matches.
pub fn plan(current: &Topology, desired: &Topology) -> Vec<Action> {
    let pairs = |t: &Topology| -> BTreeMap<(Name, Name), LinkKind> {
        t.links
            .iter()
            .map(|l| ((l.a.clone(), l.b.clone()), l.kind))
            .collect()
    };
    let (now, then) = (pairs(current), pairs(desired));
    // Pairs whose link changes transport.
    let changing: BTreeSet<&(Name, Name)> = now
        .iter()
        .filter(|(pair, kind)| then.get(*pair).is_some_and(|k| k != *kind))
        .map(|(pair, _)| pair)
        .collect();
    let over_changing = |machine: &Name, target: &Target| match target {
        Target::Link(peer) => {
            let pair = if machine < peer {
                (machine.clone(), peer.clone())
            } else {
                (peer.clone(), machine.clone())
            };
            changing.contains(&pair)
        }
        Target::Port(_) => false,
    };
    let link = |(a, b): &(Name, Name), kind: &LinkKind| {
        Item::Link(Link {
            a: a.clone(),
            b: b.clone(),
            kind: *kind,
        })
    };
    let target_in = |t: &Topology, machine: &Name, rule: &Rule| {
        t.rules
            .get(machine)
            .and_then(|table| table.get(&(rule.src, rule.dst)))
            .cloned()
    };

    let mut actions = Vec::new();
    // 1. New links.
    for (pair, kind) in &then {
        if !now.contains_key(pair) {
            actions.push(Action::Add(link(pair, kind)));
        }
    }
    // 2. New and changed rules, but for those over a link that changes transport.
    for (machine, rule) in rules(desired) {
        if !over_changing(&machine, &rule.target)
            && target_in(current, &machine, &rule).as_ref() != Some(&rule.target)
        {
            actions.push(Action::Add(Item::Rule { machine, rule }));
        }
    }
    // Links that change transport: first the rules over the old link whose match `desired`
    // drops or routes over a changing link too. (Those it routes elsewhere moved in step 2.)
    let mut dropped_rules = Vec::new();
    for (machine, rule) in rules(current) {
        let on_changing = over_changing(&machine, &rule.target);
        let wanted = target_in(desired, &machine, &rule);
        let wanted_on_changing = wanted.map(|target| over_changing(&machine, &target));
        let delete = Action::Delete(Item::Rule { machine, rule });
        match (wanted_on_changing, on_changing) {
            (None | Some(true), true) => actions.push(delete),
            (None, false) => dropped_rules.push(delete),
            // Kept, moved in step 2, or moved once the new link is up.
            (Some(_), _) => {}
        }
    }
    for (pair, kind) in &now {
        if changing.contains(pair) {
            actions.push(Action::Delete(link(pair, kind)));
        }
    }
    for (pair, kind) in &then {
        if changing.contains(pair) {
            actions.push(Action::Add(link(pair, kind)));
        }
    }
    for (machine, rule) in rules(desired) {
        if over_changing(&machine, &rule.target) {
            actions.push(Action::Add(Item::Rule { machine, rule }));
        }
    }
    // 3. Dropped rules.
    actions.extend(dropped_rules);
    // 4. Dropped links.
    for (pair, kind) in &now {
        if !then.contains_key(pair) {
            actions.push(Action::Delete(link(pair, kind)));
        }
    }
    actions
}

/// Every rule of `topology` with its machine, in order.
fn rules(topology: &Topology) -> impl Iterator<Item = (Name, Rule)> + '_ {
    topology.rules.iter().flat_map(|(machine, table)| {
        table.iter().map(|(&(src, dst), target)| {
            let rule = Rule {
                src,
                dst,
                target: target.clone(),
            };
            (machine.clone(), rule)
        })
    })
}

/// How the declared machines of two topologies differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostChange {
    /// A machine that only the desired topology declares: start its daemon before the plan.
    Added(Host),
    /// A machine that only the current topology declares: stop its daemon after the plan.
    Removed(Host),
    /// A machine that both declare, differently (user, port or interface).
    Changed {
        /// As the current topology declares it.
        current: Host,
        /// As the desired topology declares it.
        desired: Host,
    },
}

/// How the machines of `desired` differ from those of `current`, by machine name. Machines are
/// not primitives of the language, so [`plan`] leaves them out; a tool that reconfigures an
/// overlay starts the added daemons before running the plan and stops the removed ones after.
pub fn host_changes(current: &Topology, desired: &Topology) -> Vec<HostChange> {
    let machines: BTreeSet<&Name> = current.hosts.keys().chain(desired.hosts.keys()).collect();
    machines
        .into_iter()
        .filter_map(
            |m| match (current.hosts.get(m).cloned(), desired.hosts.get(m).cloned()) {
                (None, Some(host)) => Some(HostChange::Added(host)),
                (Some(host), None) => Some(HostChange::Removed(host)),
                (Some(current), Some(desired)) if current != desired => {
                    Some(HostChange::Changed { current, desired })
                }
                _ => None,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{parse_topology, render_plan};
    use super::*;

    fn topology(text: &str) -> Topology {
        match parse_topology(text) {
            Ok(t) => t,
            Err(e) => panic!("{e}\n{text}"),
        }
    }

    const HOSTS: &str = "BEGIN\n\
        HOST u AT h1 1 eth0\nHOST u AT h2 1 eth0\nHOST u AT px 1 eth0\n";

    /// The rendered plan from `current` to `desired` (bodies after `HOSTS`).
    fn plan_text(current: &str, desired: &str) -> String {
        let current = topology(&format!("{HOSTS}{current}\nEND"));
        let desired = topology(&format!("{HOSTS}{desired}\nEND"));
        let actions = plan(&current, &desired);
        let text = render_plan(&current, &desired, &actions);
        let program = super::super::parse(&text).expect("the plan parses");
        assert_eq!(program.apply_to(&current), Ok(desired));
        text.lines()
            .skip_while(|l| *l == "BEGIN" || l.starts_with("HOST"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    const STAR: &str = "ADD LINK UDP h1 h1 px\nLINK UDP h2 h2 px\n\
        FORWARD INTERFACE h1 ANY 02:00:00:00:00:01 vm0\n\
        FORWARD EDGE h1 ANY NONE h1 px\n\
        FORWARD INTERFACE h2 ANY 02:00:00:00:00:02 vm0\n\
        FORWARD EDGE h2 ANY NONE h2 px\n\
        FORWARD EDGE px ANY 02:00:00:00:00:01 px h1\n\
        FORWARD EDGE px ANY 02:00:00:00:00:02 px h2\n";

    #[test]
    fn a_shortcut_is_added_before_routes_move_to_it() {
        let shortcut = format!(
            "{STAR}LINK UDP h1 h1 h2\n\
             FORWARD EDGE h1 ANY 02:00:00:00:00:02 h1 h2\n\
             FORWARD EDGE h2 ANY 02:00:00:00:00:01 h2 h1"
        );
        assert_eq!(
            plan_text(STAR, &shortcut),
            "ADD\n  LINK UDP h1 h1 h2\n\
             \x20 FORWARD EDGE h1 ANY 02:00:00:00:00:02 h1 h2\n\
             \x20 FORWARD EDGE h2 ANY 02:00:00:00:00:01 h2 h1\nEND"
        );
        assert_eq!(
            plan_text(&shortcut, STAR),
            "DELETE\n\
             \x20 FORWARD EDGE h1 ANY 02:00:00:00:00:02 h1 h2\n\
             \x20 FORWARD EDGE h2 ANY 02:00:00:00:00:01 h2 h1\n\
             \x20 LINK UDP h1 h1 h2\nEND"
        );
    }

    #[test]
    fn a_route_moves_by_replacement_then_the_old_link_goes() {
        let via_h2 = "ADD LINK UDP h1 h1 px\nLINK UDP h1 h1 h2\n\
            FORWARD EDGE h1 ANY NONE h1 px\n\
            FORWARD EDGE h1 ANY 02:00:00:00:00:02 h1 px\n";
        let direct = "ADD LINK UDP h1 h1 h2\n\
            FORWARD EDGE h1 ANY 02:00:00:00:00:02 h1 h2\n";
        assert_eq!(
            plan_text(via_h2, direct),
            "ADD\n\
             \x20 FORWARD EDGE h1 ANY 02:00:00:00:00:02 h1 h2\n\
             DELETE\n\
             \x20 FORWARD EDGE h1 ANY NONE h1 px\n\
             \x20 LINK UDP h1 h1 px\nEND"
        );
    }

    #[test]
    fn a_transport_change_replaces_the_link_and_restores_its_rules() {
        let tcp = STAR.replace("LINK UDP h1 h1 px", "LINK TCP h1 h1 px");
        assert_eq!(
            plan_text(STAR, &tcp),
            "DELETE\n\
             \x20 FORWARD EDGE h1 ANY NONE h1 px\n\
             \x20 FORWARD EDGE px ANY 02:00:00:00:00:01 px h1\n\
             \x20 LINK UDP h1 h1 px\n\
             ADD\n\
             \x20 LINK TCP h1 h1 px\n\
             \x20 FORWARD EDGE h1 ANY NONE h1 px\n\
             \x20 FORWARD EDGE px ANY 02:00:00:00:00:01 px h1\nEND"
        );
    }

    #[test]
    fn a_rule_leaving_a_changing_link_moves_without_a_gap() {
        let before = "ADD LINK UDP h1 h1 px\nLINK UDP h1 h1 h2\n\
            FORWARD EDGE h1 ANY NONE h1 px\n";
        let after = "ADD LINK TCP h1 h1 px\nLINK UDP h1 h1 h2\n\
            FORWARD EDGE h1 ANY NONE h1 h2\n";
        assert_eq!(
            plan_text(before, after),
            "ADD\n\
             \x20 FORWARD EDGE h1 ANY NONE h1 h2\n\
             DELETE\n\
             \x20 LINK UDP h1 h1 px\n\
             ADD\n\
             \x20 LINK TCP h1 h1 px\nEND"
        );
        // And back: the rule is replaced in step 6, after the link is back.
        assert_eq!(
            plan_text(after, before),
            "DELETE\n\
             \x20 LINK TCP h1 h1 px\n\
             ADD\n\
             \x20 LINK UDP h1 h1 px\n\
             \x20 FORWARD EDGE h1 ANY NONE h1 px\nEND"
        );
    }

    #[test]
    fn a_route_leaving_a_dropped_link_for_a_changing_one() {
        let before = "ADD LINK UDP h1 h1 px\nLINK TCP h1 h1 h2\n\
            FORWARD EDGE h1 ANY NONE h1 px\n";
        let after = "ADD LINK UDP h1 h1 h2\nFORWARD EDGE h1 ANY NONE h1 h2\n";
        assert_eq!(
            plan_text(before, after),
            "DELETE\n\
             \x20 LINK TCP h1 h1 h2\n\
             ADD\n\
             \x20 LINK UDP h1 h1 h2\n\
             \x20 FORWARD EDGE h1 ANY NONE h1 h2\n\
             DELETE\n\
             \x20 LINK UDP h1 h1 px\nEND"
        );
    }

    #[test]
    fn nothing_to_do() {
        let t = topology(&format!("{HOSTS}{STAR}END"));
        assert!(plan(&t, &t).is_empty());
        assert!(host_changes(&t, &t).is_empty());
        assert_eq!(plan_text(STAR, STAR), "END");
    }

    #[test]
    fn host_changes_are_listed_by_machine() {
        let current = topology("BEGIN HOST u AT a 1 e HOST u AT b 1 e END");
        let desired = topology("BEGIN HOST u AT b 2 e HOST v AT c 1 e END");
        let changes = host_changes(&current, &desired);
        let host = |t: &Topology, m: &str| t.hosts[&m.parse::<Name>().expect("name")].clone();
        assert_eq!(
            changes,
            [
                HostChange::Removed(host(&current, "a")),
                HostChange::Changed {
                    current: host(&current, "b"),
                    desired: host(&desired, "b"),
                },
                HostChange::Added(host(&desired, "c")),
            ]
        );
    }
}
