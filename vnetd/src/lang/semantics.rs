//! What a program means: its items applied in order, as VNET primitives, to a topology.

use std::collections::BTreeSet;

use super::lex::Keyword;
use super::{Action, Item, Located, Pos, Program};
use crate::model::{Link, LinkKind, Mac, Name, Rule, RuleError, Target, Topology};

/// Why an item (or a `HOST` line) cannot be applied to a topology, or why a topology is not
/// one that a program can describe ([`check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemanticError {
    /// An item names a machine that no `HOST` line declares.
    #[error("machine `{0}` is not declared by a HOST line")]
    Undeclared(Name),
    /// Two `HOST` lines of one program declare the same machine.
    #[error("machine `{0}` is already declared by an earlier HOST line")]
    DeclaredTwice(Name),
    /// A link, or a rule's link, from a machine to itself.
    #[error("a link joins two different machines, but both of its ends are `{0}`")]
    SameEnds(Name),
    /// The link to add is already there.
    #[error("{} is already there", link_words(.0))]
    LinkExists(Link),
    /// The link to add joins two machines that a link of the other transport already joins.
    #[error(
        "`{}` and `{}` are already joined by a {} link, and two machines have at most one link \
         between them: delete it before adding a {} one",
        .existing.a, .existing.b, kind_word(&.existing.kind), kind_word(.wanted)
    )]
    PairTaken {
        /// The link that is there.
        existing: Link,
        /// The transport of the link to add.
        wanted: LinkKind,
    },
    /// The link to delete is not there.
    #[error(
        "there is no {} link between `{}` and `{}` to delete{}",
        kind_word(&.link.kind), .link.a, .link.b, other_link(.there)
    )]
    NoSuchLink {
        /// The link to delete.
        link: Link,
        /// The transport of the link that joins the same machines, if one does.
        there: Option<LinkKind>,
    },
    /// The link to delete still carries rules.
    #[error(
        "{} is still used by {} rule(s){}: delete or move them first",
        link_words(.link), .users.len(), such_as(.users)
    )]
    LinkInUse {
        /// The link to delete.
        link: Link,
        /// The rules, at either end, that send frames over it.
        users: Vec<Item>,
    },
    /// The rule to add is already there, with the same target.
    #[error("the rule `{}` is already there", rule_words(.machine, .rule))]
    RuleExists {
        /// The machine whose table holds the rule.
        machine: Name,
        /// The rule.
        rule: Rule,
    },
    /// The rule to delete is not there.
    #[error("there is no rule `{}` to delete{}", rule_words(.machine, .rule), other_target(.there))]
    NoSuchRule {
        /// The machine whose table should hold the rule.
        machine: Name,
        /// The rule.
        rule: Rule,
        /// The target of the machine's rule with the same match, if it has one.
        there: Option<Target>,
    },
    /// An `EDGE` rule whose link is not there (yet).
    #[error(
        "there is no link between `{machine}` and `{peer}` for this rule to use: \
         add the link first"
    )]
    NoLinkForRule {
        /// The machine whose table would hold the rule.
        machine: Name,
        /// The other end of the link the rule would use.
        peer: Name,
    },
    /// A rule whose destination is a broadcast or multicast address.
    #[error(
        "the destination {0} is a broadcast or multicast address: the daemons flood such frames \
         along the star themselves, so rules only ever route frames for one guest"
    )]
    GroupDestination(Mac),
    /// A rule no daemon can hold for another reason ([`Rule::validate`]).
    #[error(transparent)]
    Rule(RuleError),
    /// A host whose user could not be written as one token ([`check`] only).
    #[error(
        "{0:?} cannot be written as a user name: it must be one token, without whitespace or `#`, \
         and not a keyword"
    )]
    BadUser(String),
    /// A host whose port is 0 ([`check`] only).
    #[error("machine `{0}` has port 0")]
    PortZero(Name),
    /// A host filed under another machine's name ([`check`] only).
    #[error("the host of machine `{machine}` is filed under `{key}`")]
    MisfiledHost {
        /// The name it is filed under.
        key: Name,
        /// Its machine.
        machine: Name,
    },
    /// A link whose ends are not in order ([`check`] only: build links with [`Link::new`]).
    #[error("{} has its ends out of order (build links with Link::new)", link_words(.0))]
    LinkOutOfOrder(Link),
    /// A machine with an empty rule table; a machine without rules has no entry ([`check`]
    /// only).
    #[error(
        "machine `{0}` has an empty entry in the rule tables (a machine without rules has none)"
    )]
    EmptyTable(Name),
}

/// A [`SemanticError`] and the position of the `HOST` line or item that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {error}")]
pub struct ProgramError {
    /// Where the offending `HOST`, `LINK` or `FORWARD` keyword is.
    pub pos: Pos,
    /// What is wrong.
    pub error: SemanticError,
}

fn kind_word(kind: &LinkKind) -> &'static str {
    match kind {
        LinkKind::Udp => "UDP",
        LinkKind::Tcp => "TCP",
    }
}

fn link_words(link: &Link) -> String {
    format!(
        "the {} link between `{}` and `{}`",
        kind_word(&link.kind),
        link.a,
        link.b
    )
}

fn other_link(there: &Option<LinkKind>) -> String {
    match there {
        Some(kind) => format!(" (a {} link joins them)", kind_word(kind)),
        None => String::new(),
    }
}

fn such_as(users: &[Item]) -> String {
    match users.first() {
        Some(item) => format!(", such as `{item}`"),
        None => String::new(),
    }
}

fn rule_words(machine: &Name, rule: &Rule) -> String {
    Item::Rule {
        machine: machine.clone(),
        rule: rule.clone(),
    }
    .to_string()
}

fn other_target(there: &Option<Target>) -> String {
    match there {
        Some(Target::Link(peer)) => format!(" (the rule for that match goes to `{peer}`)"),
        Some(Target::Port(port)) => format!(" (the rule for that match goes out of `{port}`)"),
        None => String::new(),
    }
}

/// Applies one primitive to `topology`, after checking that it can be applied; on error the
/// topology is unchanged.
///
/// Adding a rule whose match the machine's table already holds replaces that rule's target.
/// Deleting a machine's last rule removes its entry from [`Topology::rules`].
///
/// # Errors
///
/// Any machine the item names is not in [`Topology::hosts`]; a link from a machine to itself;
/// adding a link between machines that a link already joins, or an identical rule; deleting a
/// link or rule that is not there (exactly: same transport, same target), or a link that rules
/// still use; adding an `EDGE` rule whose link is not there, or a rule whose destination
/// address is broadcast or multicast.
pub fn apply(topology: &mut Topology, action: &Action) -> Result<(), SemanticError> {
    match action {
        Action::Add(Item::Link(link)) => add_link(topology, link),
        Action::Delete(Item::Link(link)) => delete_link(topology, link),
        Action::Add(Item::Rule { machine, rule }) => add_rule(topology, machine, rule),
        Action::Delete(Item::Rule { machine, rule }) => delete_rule(topology, machine, rule),
    }
}

impl Program {
    /// The topology that this program makes of `base`: its `HOST` lines declare machines (a
    /// machine that `base` declares too gets the new declaration), then its items are applied
    /// in order ([`apply`]).
    ///
    /// # Errors
    ///
    /// The first `HOST` line that declares a machine an earlier line of this program declares,
    /// or the first item that cannot be applied, with its position.
    pub fn apply_to(&self, base: &Topology) -> Result<Topology, ProgramError> {
        let mut topology = base.clone();
        let mut declared = BTreeSet::new();
        for Located { pos, value: host } in &self.hosts {
            if !declared.insert(&host.machine) {
                return Err(ProgramError {
                    pos: *pos,
                    error: SemanticError::DeclaredTwice(host.machine.clone()),
                });
            }
            topology.hosts.insert(host.machine.clone(), host.clone());
        }
        for Located { pos, value } in &self.actions {
            apply(&mut topology, value).map_err(|error| ProgramError { pos: *pos, error })?;
        }
        Ok(topology)
    }
}

/// The topology that `program` describes: [`Program::apply_to`] an empty topology.
///
/// # Errors
///
/// As [`Program::apply_to`].
pub fn program_to_topology(program: &Program) -> Result<Topology, ProgramError> {
    program.apply_to(&Topology::default())
}

/// Whether `topology` is one that a program can describe: every host filed under its own
/// machine with a user that is one token and a port other than 0, every link between declared
/// machines with its ends in order and at most one per pair, every rule at a declared machine,
/// toward a unicast or `NONE` destination and over an existing link, and no empty rule table.
/// Then `parse_topology(&print(topology))` gives `topology` back.
///
/// # Errors
///
/// The first problem found.
pub fn check(topology: &Topology) -> Result<(), SemanticError> {
    for (key, host) in &topology.hosts {
        if *key != host.machine {
            return Err(SemanticError::MisfiledHost {
                key: key.clone(),
                machine: host.machine.clone(),
            });
        }
        if !is_user_name(&host.user) {
            return Err(SemanticError::BadUser(host.user.clone()));
        }
        if host.port == 0 {
            return Err(SemanticError::PortZero(key.clone()));
        }
    }
    let mut rebuilt = Topology {
        hosts: topology.hosts.clone(),
        ..Topology::default()
    };
    for link in &topology.links {
        if ordered(link)? != *link {
            return Err(SemanticError::LinkOutOfOrder(link.clone()));
        }
        add_link(&mut rebuilt, link)?;
    }
    for (machine, table) in &topology.rules {
        if table.is_empty() {
            return Err(SemanticError::EmptyTable(machine.clone()));
        }
        for (&(src, dst), target) in table {
            let rule = Rule {
                src,
                dst,
                target: target.clone(),
            };
            add_rule(&mut rebuilt, machine, &rule)?;
        }
    }
    Ok(())
}

/// Whether the printer can write `user` as one token that the parser reads back as a user.
fn is_user_name(user: &str) -> bool {
    !user.is_empty()
        && !user.contains(|c: char| c.is_whitespace() || c == '#')
        && Keyword::of(user).is_none()
}

fn declared(topology: &Topology, machine: &Name) -> Result<(), SemanticError> {
    if topology.hosts.contains_key(machine) {
        Ok(())
    } else {
        Err(SemanticError::Undeclared(machine.clone()))
    }
}

/// `link` with its ends in order.
fn ordered(link: &Link) -> Result<Link, SemanticError> {
    Link::new(link.a.clone(), link.b.clone(), link.kind)
        .ok_or_else(|| SemanticError::SameEnds(link.a.clone()))
}

/// The link between `x` and `y`, of either transport.
fn link_between<'t>(topology: &'t Topology, x: &Name, y: &Name) -> Option<&'t Link> {
    [LinkKind::Udp, LinkKind::Tcp]
        .into_iter()
        .filter_map(|kind| Link::new(x.clone(), y.clone(), kind))
        .find_map(|link| topology.links.get(&link))
}

fn add_link(topology: &mut Topology, link: &Link) -> Result<(), SemanticError> {
    let link = ordered(link)?;
    declared(topology, &link.a)?;
    declared(topology, &link.b)?;
    match link_between(topology, &link.a, &link.b) {
        Some(existing) if existing.kind == link.kind => Err(SemanticError::LinkExists(link)),
        Some(existing) => Err(SemanticError::PairTaken {
            existing: existing.clone(),
            wanted: link.kind,
        }),
        None => {
            topology.links.insert(link);
            Ok(())
        }
    }
}

fn delete_link(topology: &mut Topology, link: &Link) -> Result<(), SemanticError> {
    let link = ordered(link)?;
    declared(topology, &link.a)?;
    declared(topology, &link.b)?;
    match link_between(topology, &link.a, &link.b) {
        Some(existing) if existing.kind == link.kind => {}
        other => {
            let there = other.map(|l| l.kind);
            return Err(SemanticError::NoSuchLink { link, there });
        }
    }
    let users = rules_over(topology, &link);
    if !users.is_empty() {
        return Err(SemanticError::LinkInUse { link, users });
    }
    topology.links.remove(&link);
    Ok(())
}

/// The rules, at either end, that send frames over `link`.
fn rules_over(topology: &Topology, link: &Link) -> Vec<Item> {
    let mut users = Vec::new();
    for (end, peer) in [(&link.a, &link.b), (&link.b, &link.a)] {
        let Some(table) = topology.rules.get(end) else {
            continue;
        };
        for (&(src, dst), target) in table {
            if matches!(target, Target::Link(p) if p == peer) {
                users.push(Item::Rule {
                    machine: end.clone(),
                    rule: Rule {
                        src,
                        dst,
                        target: target.clone(),
                    },
                });
            }
        }
    }
    users
}

fn add_rule(topology: &mut Topology, machine: &Name, rule: &Rule) -> Result<(), SemanticError> {
    declared(topology, machine)?;
    rule.validate(machine).map_err(|e| match e {
        RuleError::GroupDestination { mac } => SemanticError::GroupDestination(mac),
        RuleError::LinkToSelf { me } => SemanticError::SameEnds(me),
        source @ RuleError::GroupSource { .. } => SemanticError::Rule(source),
    })?;
    if let Target::Link(peer) = &rule.target {
        if link_between(topology, machine, peer).is_none() {
            return Err(SemanticError::NoLinkForRule {
                machine: machine.clone(),
                peer: peer.clone(),
            });
        }
    }
    let table = topology.rules.get(machine);
    if table.and_then(|t| t.get(&(rule.src, rule.dst))) == Some(&rule.target) {
        return Err(SemanticError::RuleExists {
            machine: machine.clone(),
            rule: rule.clone(),
        });
    }
    topology
        .rules
        .entry(machine.clone())
        .or_default()
        .insert((rule.src, rule.dst), rule.target.clone());
    Ok(())
}

fn delete_rule(topology: &mut Topology, machine: &Name, rule: &Rule) -> Result<(), SemanticError> {
    declared(topology, machine)?;
    let key = (rule.src, rule.dst);
    let Some(table) = topology.rules.get_mut(machine) else {
        return Err(SemanticError::NoSuchRule {
            machine: machine.clone(),
            rule: rule.clone(),
            there: None,
        });
    };
    match table.get(&key) {
        Some(target) if *target == rule.target => {
            table.remove(&key);
            if table.is_empty() {
                topology.rules.remove(machine);
            }
            Ok(())
        }
        other => Err(SemanticError::NoSuchRule {
            machine: machine.clone(),
            rule: rule.clone(),
            there: other.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, parse_topology, Error};
    use super::*;
    use crate::model::{DstMatch, Host, SrcMatch};

    const HOSTS: &str = "BEGIN\n\
        HOST alice AT host1 2222 eth0\n\
        HOST alice AT host2 2222 eth0\n\
        HOST root AT proxy 2222 eth0\n";

    fn name(s: &str) -> Name {
        s.parse().expect("a valid name")
    }

    /// The topology of `HOSTS` followed by `body` and `END`.
    fn topology(body: &str) -> Topology {
        match parse_topology(&format!("{HOSTS}{body}\nEND")) {
            Ok(t) => t,
            Err(e) => panic!("{body}: {e}"),
        }
    }

    /// The message of applying `HOSTS`, `body` and `END`, which must fail after parsing.
    fn fails(body: &str) -> String {
        match parse_topology(&format!("{HOSTS}{body}\nEND")) {
            Err(Error::Semantic(e)) => e.to_string(),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_program_builds_its_topology() {
        let t = topology(
            "ADD LINK UDP host1 host1 proxy\n\
             FORWARD EDGE host1 ANY NONE host1 proxy\n\
             FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0",
        );
        assert_eq!(t.hosts.len(), 3);
        assert_eq!(t.hosts[&name("host1")].user, "alice");
        assert_eq!(t.links.len(), 1);
        assert_eq!(t.rules.len(), 1);
        assert_eq!(
            t.rules[&name("host1")][&(SrcMatch::Any, DstMatch::None)],
            Target::Link(name("proxy"))
        );
        assert_eq!(check(&t), Ok(()));
    }

    #[test]
    fn undeclared_machines() {
        assert_eq!(
            fails("ADD LINK UDP host1 host1 host9"),
            "5:5: machine `host9` is not declared by a HOST line"
        );
        assert_eq!(
            fails("ADD FORWARD INTERFACE host9 ANY ANY vm0"),
            "5:5: machine `host9` is not declared by a HOST line"
        );
        assert_eq!(
            fails("DELETE FORWARD INTERFACE host9 ANY ANY vm0"),
            "5:8: machine `host9` is not declared by a HOST line"
        );
        assert_eq!(
            fails("HOST bob AT host1 1 eth1"),
            "5:1: machine `host1` is already declared by an earlier HOST line"
        );
    }

    #[test]
    fn link_errors() {
        assert_eq!(
            fails("ADD LINK UDP host1 host1 proxy\nLINK UDP proxy proxy host1"),
            "6:1: the UDP link between `host1` and `proxy` is already there"
        );
        assert_eq!(
            fails("ADD LINK UDP host1 host1 proxy\nLINK TCP proxy proxy host1"),
            "6:1: `host1` and `proxy` are already joined by a UDP link, and two machines have \
             at most one link between them: delete it before adding a TCP one"
        );
        assert_eq!(
            fails("DELETE LINK UDP host1 host1 proxy"),
            "5:8: there is no UDP link between `host1` and `proxy` to delete"
        );
        assert_eq!(
            fails("ADD LINK UDP host1 host1 proxy\nDELETE LINK TCP host1 host1 proxy"),
            "6:8: there is no TCP link between `host1` and `proxy` to delete \
             (a UDP link joins them)"
        );
        assert_eq!(
            fails(
                "ADD LINK UDP host1 host1 proxy\n\
                 FORWARD EDGE proxy ANY 02:00:00:00:00:01 proxy host1\n\
                 FORWARD EDGE host1 ANY NONE host1 proxy\n\
                 DELETE LINK UDP host1 host1 proxy"
            ),
            "8:8: the UDP link between `host1` and `proxy` is still used by 2 rule(s), such as \
             `FORWARD EDGE host1 ANY NONE host1 proxy`: delete or move them first"
        );
    }

    #[test]
    fn rule_errors() {
        assert_eq!(
            fails("ADD FORWARD EDGE host1 ANY NONE host1 proxy"),
            "5:5: there is no link between `host1` and `proxy` for this rule to use: \
             add the link first"
        );
        // The link must be there when the rule is added, not later.
        assert_eq!(
            fails("ADD FORWARD EDGE host1 ANY NONE host1 proxy\nLINK UDP host1 host1 proxy"),
            "5:5: there is no link between `host1` and `proxy` for this rule to use: \
             add the link first"
        );
        assert_eq!(
            fails(
                "ADD FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0\n\
                 FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0"
            ),
            "6:1: the rule `FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0` is already there"
        );
        assert_eq!(
            fails("DELETE FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0"),
            "5:8: there is no rule `FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0` to delete"
        );
        assert_eq!(
            fails(
                "ADD FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm1\n\
                 DELETE FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0"
            ),
            "6:8: there is no rule `FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0` to \
             delete (the rule for that match goes out of `vm1`)"
        );
        assert_eq!(
            fails(
                "ADD LINK UDP host1 host1 proxy\nFORWARD EDGE proxy ANY NONE proxy host1\n\
                 DELETE FORWARD INTERFACE proxy ANY NONE eth1"
            ),
            "7:8: there is no rule `FORWARD INTERFACE proxy ANY NONE eth1` to delete \
             (the rule for that match goes to `host1`)"
        );
        for dst in [
            "ff:ff:ff:ff:ff:ff",
            "NOT 01:00:5e:00:00:01",
            "33:33:00:00:00:01",
        ] {
            let message = fails(&format!("ADD FORWARD INTERFACE host1 ANY {dst} vm0"));
            assert!(
                message.starts_with("5:5: the destination ")
                    && message.contains("is a broadcast or multicast address: the daemons flood"),
                "{message}"
            );
        }
    }

    #[test]
    fn adding_a_rule_for_a_held_match_moves_it() {
        let t = topology(
            "ADD LINK UDP host1 host1 proxy\nLINK TCP host1 host1 host2\n\
             FORWARD EDGE host1 ANY 02:00:00:00:00:02 host1 proxy\n\
             FORWARD EDGE host1 ANY 02:00:00:00:00:02 host1 host2",
        );
        let table = &t.rules[&name("host1")];
        assert_eq!(table.len(), 1);
        assert_eq!(table.values().next(), Some(&Target::Link(name("host2"))));
        // The link it left is free now.
        topology(
            "ADD LINK UDP host1 host1 proxy\nLINK TCP host1 host1 host2\n\
             FORWARD EDGE host1 ANY 02:00:00:00:00:02 host1 proxy\n\
             FORWARD EDGE host1 ANY 02:00:00:00:00:02 host1 host2\n\
             DELETE LINK UDP proxy proxy host1",
        );
    }

    #[test]
    fn deleting_the_last_rule_drops_the_table() {
        let t = topology(
            "ADD FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0\n\
             DELETE FORWARD INTERFACE host1 ANY 02:00:00:00:00:01 vm0",
        );
        assert!(t.rules.is_empty());
        assert_eq!(check(&t), Ok(()));
    }

    #[test]
    fn failed_actions_change_nothing() {
        let mut t = topology("ADD LINK UDP host1 host1 proxy");
        let before = t.clone();
        let program = parse(
            "BEGIN ADD LINK TCP host1 host1 proxy\n\
             FORWARD EDGE host1 ANY NONE host1 host2\n\
             FORWARD INTERFACE host1 ANY ff:ff:ff:ff:ff:ff vm0\n\
             DELETE LINK UDP host1 host1 host2\n\
             FORWARD INTERFACE host1 ANY NONE vm0 END",
        )
        .expect("parses");
        for action in &program.actions {
            assert!(apply(&mut t, &action.value).is_err(), "{}", action.value);
            assert_eq!(t, before);
        }
    }

    #[test]
    fn actions_built_in_code_are_checked_too() {
        let mut t = topology("");
        let (h1, px) = (name("host1"), name("proxy"));
        let backwards = Link {
            a: px.clone(),
            b: h1.clone(),
            kind: LinkKind::Udp,
        };
        apply(&mut t, &Action::Add(Item::Link(backwards))).expect("added");
        assert!(t
            .links
            .contains(&Link::new(h1.clone(), px, LinkKind::Udp).expect("link")));
        let to_itself = Link {
            a: h1.clone(),
            b: h1.clone(),
            kind: LinkKind::Tcp,
        };
        assert_eq!(
            apply(&mut t, &Action::Add(Item::Link(to_itself))),
            Err(SemanticError::SameEnds(h1.clone()))
        );
        let rule = Rule {
            src: SrcMatch::Any,
            dst: DstMatch::None,
            target: Target::Link(h1.clone()),
        };
        let add = Action::Add(Item::Rule {
            machine: h1.clone(),
            rule,
        });
        assert_eq!(apply(&mut t, &add), Err(SemanticError::SameEnds(h1)));
    }

    #[test]
    fn check_rejects_what_no_program_describes() {
        let good = topology("ADD LINK UDP host1 host1 proxy");
        let (h1, px) = (name("host1"), name("proxy"));

        let mut t = good.clone();
        if let Some(host) = t.hosts.get_mut(&h1) {
            host.user = "two words".into();
        }
        assert_eq!(check(&t), Err(SemanticError::BadUser("two words".into())));
        for user in ["", "a#b", "not"] {
            if let Some(host) = t.hosts.get_mut(&h1) {
                host.user = user.into();
            }
            assert_eq!(check(&t), Err(SemanticError::BadUser(user.into())));
        }

        let mut t = good.clone();
        if let Some(host) = t.hosts.get_mut(&h1) {
            host.port = 0;
        }
        assert_eq!(check(&t), Err(SemanticError::PortZero(h1.clone())));

        let mut t = good.clone();
        let stray = Host {
            user: "u".into(),
            machine: px.clone(),
            port: 1,
            interface: name("eth0"),
        };
        t.hosts.insert(name("other"), stray);
        assert!(matches!(check(&t), Err(SemanticError::MisfiledHost { .. })));

        let mut t = good.clone();
        t.links.insert(Link {
            a: px.clone(),
            b: h1.clone(),
            kind: LinkKind::Tcp,
        });
        assert!(matches!(check(&t), Err(SemanticError::LinkOutOfOrder(_))));

        let mut t = good.clone();
        t.links
            .insert(Link::new(h1.clone(), px.clone(), LinkKind::Tcp).expect("link"));
        assert!(matches!(check(&t), Err(SemanticError::PairTaken { .. })));

        let mut t = good.clone();
        t.rules.insert(h1.clone(), Default::default());
        assert_eq!(check(&t), Err(SemanticError::EmptyTable(h1.clone())));

        let mut t = good;
        t.rules
            .entry(name("host2"))
            .or_default()
            .insert((SrcMatch::Any, DstMatch::None), Target::Link(px));
        assert!(matches!(
            check(&t),
            Err(SemanticError::NoLinkForRule { .. })
        ));
    }
}
