//! Writing programs: a topology in canonical form, or a plan.

use std::collections::BTreeMap;

use super::{Action, Item};
use crate::model::{DstMatch, Host, Link, LinkKind, Name, Rule, SrcMatch, Target, Topology};

/// `topology` as a program in canonical form: `BEGIN`, its `HOST` lines by machine, one `ADD`
/// group (left out when there is nothing to add) with its links and then its rules, each
/// sorted, and `END`. Keywords are upper case, MACs lower case, items indented by two spaces.
///
/// When [`check`](super::check) accepts `topology`, parsing the text and applying it to an
/// empty topology gives `topology` back, and printing that gives the same text.
pub fn print(topology: &Topology) -> String {
    let links = topology.links.iter().cloned().map(Item::Link);
    let rules = topology.rules.iter().flat_map(|(machine, table)| {
        table.iter().map(|(&(src, dst), target)| Item::Rule {
            machine: machine.clone(),
            rule: Rule {
                src,
                dst,
                target: target.clone(),
            },
        })
    });
    let actions: Vec<Action> = links.chain(rules).map(Action::Add).collect();
    render(topology.hosts.values(), &actions)
}

/// A program that declares `hosts` and then performs `actions` in order: `BEGIN`, the `HOST`
/// lines in the order given, a new `ADD` or `DELETE` group wherever the verb changes, and
/// `END`.
pub fn render<'a>(hosts: impl IntoIterator<Item = &'a Host>, actions: &[Action]) -> String {
    let mut lines = vec!["BEGIN".to_string()];
    lines.extend(hosts.into_iter().map(host_text));
    let mut adding = None;
    for action in actions {
        let add = matches!(action, Action::Add(_));
        if adding != Some(add) {
            lines.push(if add { "ADD" } else { "DELETE" }.to_string());
            adding = Some(add);
        }
        lines.push(format!("  {}", item_text(action.item())));
    }
    lines.push("END".to_string());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// A plan from [`plan`](super::plan)`(current, desired)` as a program: [`render`] with
/// the `HOST` lines of every machine of `desired`, and of every machine of `current` that
/// `desired` drops (the plan may have to delete their links and rules, and their daemons run
/// until the plan is done).
///
/// Applied to `current` ([`Program::apply_to`](super::Program::apply_to)), the program gives
/// `desired`, except that the machines `desired` drops are still declared: stopping their
/// daemons is not a primitive of the language (see [`host_changes`](super::host_changes)).
pub fn render_plan(current: &Topology, desired: &Topology, plan: &[Action]) -> String {
    let mut hosts: BTreeMap<&Name, &Host> = current.hosts.iter().collect();
    hosts.extend(&desired.hosts);
    render(hosts.into_values(), plan)
}

/// The item as the language writes it.
pub(super) fn item_text(item: &Item) -> String {
    match item {
        Item::Link(link) => link_text(link),
        Item::Rule { machine, rule } => rule_text(machine, rule),
    }
}

fn host_text(host: &Host) -> String {
    format!(
        "HOST {} AT {} {} {}",
        host.user, host.machine, host.port, host.interface
    )
}

/// `LINK <kind> <a> <a> <b>`: the model does not keep which end opened a link, so the end
/// that sorts first stands for it.
fn link_text(link: &Link) -> String {
    let kind = match link.kind {
        LinkKind::Udp => "UDP",
        LinkKind::Tcp => "TCP",
    };
    format!("LINK {kind} {} {} {}", link.a, link.a, link.b)
}

/// `FORWARD EDGE <m> <src> <dst> <m> <peer>` (the rule's machine as the hop start, as in Fig. 2)
/// or `FORWARD INTERFACE <m> <src> <dst> <port>`.
fn rule_text(machine: &Name, rule: &Rule) -> String {
    let src = match rule.src {
        SrcMatch::Is(mac) => mac.to_string(),
        SrcMatch::Not(mac) => format!("NOT {mac}"),
        SrcMatch::Any => "ANY".to_string(),
    };
    let dst = match rule.dst {
        DstMatch::Is(mac) => mac.to_string(),
        DstMatch::Not(mac) => format!("NOT {mac}"),
        DstMatch::Any => "ANY".to_string(),
        DstMatch::None => "NONE".to_string(),
    };
    match &rule.target {
        Target::Link(peer) => format!("FORWARD EDGE {machine} {src} {dst} {machine} {peer}"),
        Target::Port(port) => format!("FORWARD INTERFACE {machine} {src} {dst} {port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_topology;
    use super::*;

    #[test]
    fn canonical_form() {
        let text = "begin\n\
            host root at proxy 22 eth0   host alice at host1 2222 eth1\n\
            add link tcp host1 proxy host1\n\
            forward edge proxy any 02:56:4E:00:00:01 host1 proxy\n\
            forward interface proxy any none lan0\n\
            forward interface host1 not 02:56:4e:00:00:09 02:56:4e:00:00:01 vm0\n\
            forward edge host1 02:56:4e:00:00:01 none host1 proxy\n\
            end";
        let topology = parse_topology(text).expect("a topology");
        let printed = print(&topology);
        assert_eq!(
            printed,
            "BEGIN\n\
             HOST alice AT host1 2222 eth1\n\
             HOST root AT proxy 22 eth0\n\
             ADD\n\
             \x20 LINK TCP host1 host1 proxy\n\
             \x20 FORWARD EDGE host1 02:56:4e:00:00:01 NONE host1 proxy\n\
             \x20 FORWARD INTERFACE host1 NOT 02:56:4e:00:00:09 02:56:4e:00:00:01 vm0\n\
             \x20 FORWARD EDGE proxy ANY 02:56:4e:00:00:01 proxy host1\n\
             \x20 FORWARD INTERFACE proxy ANY NONE lan0\n\
             END\n"
        );
        assert_eq!(parse_topology(&printed), Ok(topology));
    }

    #[test]
    fn an_empty_topology_has_no_group() {
        assert_eq!(print(&Topology::default()), "BEGIN\nEND\n");
        assert_eq!(parse_topology("BEGIN\nEND\n"), Ok(Topology::default()));
    }
}
