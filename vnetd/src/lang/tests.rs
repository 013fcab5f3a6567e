//! The paper's examples, and properties over random topologies and random texts.

use std::collections::BTreeSet;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use super::*;
use crate::model::{DstMatch, LinkKind, Mac, RuleError, SrcMatch, Target};

fn name(s: &str) -> Name {
    s.parse().expect("a valid name")
}

/// Fig. 2's table at Host1, rows 2 and 3, with the link row 3 needs.
const FIG2: &str = "\
BEGIN
HOST vnet AT Host1 2222 eth0
HOST vnet AT Proxy 2222 eth0
ADD
  LINK TCP Host1 Host1 Proxy
  # Row 2: frames for the guest go out of vmnet1.
  FORWARD INTERFACE Host1 ANY 00:50:56:00:21:01 vmnet1
  # Row 3: the default rule; frames from the guest go to the Proxy, over the link
  # whose hop start is Host1 and hop end the Proxy.
  FORWARD EDGE Host1 00:50:56:00:21:01 NONE Host1 Proxy
END
";

#[test]
fn figure_2_rules() {
    let t = parse_topology(FIG2).expect("a topology");
    let guest: Mac = "00:50:56:00:21:01".parse().expect("a MAC");
    let table = &t.rules[&name("Host1")];
    assert_eq!(
        table[&(SrcMatch::Any, DstMatch::Is(guest))],
        Target::Port(name("vmnet1"))
    );
    assert_eq!(
        table[&(SrcMatch::Is(guest), DstMatch::None)],
        Target::Link(name("Proxy"))
    );
    assert_eq!(
        t.links.iter().map(|l| l.kind).collect::<Vec<_>>(),
        [LinkKind::Tcp]
    );
    assert_eq!(parse_topology(&print(&t)), Ok(t));
}

#[test]
fn figure_2_broadcast_row_is_left_to_flooding() {
    // Row 1 sends broadcasts from anyone but the guest to the guest's interface. It parses,
    // but our daemons flood group frames along the star themselves, so no rule may name them.
    let text = FIG2.replace(
        "END",
        "FORWARD INTERFACE Host1 NOT 00:50:56:00:21:01 FF:FF:FF:FF:FF:FF vmnet1\nEND",
    );
    let program = parse(&text).expect("parses");
    let Some(Action::Add(Item::Rule { rule, .. })) = program.actions.last().map(|a| &a.value)
    else {
        panic!("a rule expected last: {program:?}");
    };
    assert_eq!(rule.dst, DstMatch::Is(Mac::BROADCAST));
    let error = program_to_topology(&program).expect_err("rejected");
    assert_eq!(
        error.pos,
        Pos {
            line: 11,
            column: 1
        }
    );
    assert_eq!(error.error, SemanticError::GroupDestination(Mac::BROADCAST));
    assert!(error
        .to_string()
        .contains("the daemons flood such frames along the star"));

    // The language refuses what the forwarding table refuses: a group source too.
    let text = FIG2.replace(
        "END",
        "FORWARD INTERFACE Host1 01:00:5e:00:00:01 ANY vmnet1\nEND",
    );
    let error = program_to_topology(&parse(&text).expect("parses")).expect_err("rejected");
    let group = "01:00:5e:00:00:01".parse().unwrap();
    assert_eq!(
        error.error,
        SemanticError::Rule(RuleError::GroupSource { mac: group })
    );
}

#[test]
fn actions_display_as_the_language_writes_them() {
    let program = parse(FIG2).expect("parses");
    let shown: Vec<String> = program
        .actions
        .iter()
        .map(|a| a.value.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "ADD LINK TCP Host1 Host1 Proxy",
            "ADD FORWARD INTERFACE Host1 ANY 00:50:56:00:21:01 vmnet1",
            "ADD FORWARD EDGE Host1 00:50:56:00:21:01 NONE Host1 Proxy",
        ]
    );
}

#[test]
fn errors_convert_to_the_common_error() {
    assert!(matches!(parse_topology("BEGIN"), Err(Error::Syntax(_))));
    assert!(matches!(
        parse_topology("BEGIN ADD LINK UDP a a b END"),
        Err(Error::Semantic(_))
    ));
    let program = parse("BEGIN HOST u AT a 1 e END").expect("parses");
    assert_eq!(Topology::try_from(&program).map(|t| t.hosts.len()), Ok(1));
}

#[test]
fn a_program_applies_to_a_running_overlay() {
    let star = star(
        Host {
            user: "vnet".into(),
            machine: name("proxy"),
            port: 2222,
            interface: name("eth0"),
        },
        vec![Host {
            user: "vnet".into(),
            machine: name("h1"),
            port: 2222,
            interface: name("eth0"),
        }],
        &[],
        name("lan0"),
    )
    .expect("a star");
    // h2 is declared by the program; h1 and the proxy by the overlay it applies to.
    let program = parse(
        "BEGIN HOST vnet AT h2 2222 eth0\n\
         ADD LINK TCP h2 h2 h1 FORWARD EDGE h1 ANY 02:00:00:00:00:02 h1 h2 END",
    )
    .expect("parses");
    let t = program.apply_to(&star).expect("applies");
    assert_eq!(t.hosts.len(), 3);
    assert_eq!(t.links.len(), 2);
    assert_eq!(check(&t), Ok(()));
    // Without the overlay, h1 is unknown.
    assert_eq!(
        program_to_topology(&program).map_err(|e| e.to_string()),
        Err("2:5: machine `h1` is not declared by a HOST line".to_string())
    );
}

// Random topologies.

const MACHINES: [&str; 5] = ["proxy", "host1", "h2", "site-b.h3", "X_4"];
const USERS: [&str; 3] = ["root", "alice", "v.net-1"];
const PORTS: [&str; 3] = ["eth0", "vmnet1", "tap-9"];

/// Raw choices from which [`build`] makes a valid topology.
#[derive(Debug, Clone)]
struct Recipe {
    /// Which of `MACHINES` are declared.
    machines: Vec<usize>,
    /// For each declared machine: user, port and interface.
    hosts: Vec<(usize, u16, usize)>,
    /// For each pair of machines: 0 or 1 no link, 2 UDP, 3 TCP.
    links: Vec<u8>,
    /// Rules: machine, source kind and MAC, destination kind and MAC, target.
    rules: Vec<(usize, u8, u8, u8, u8, usize)>,
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        subsequence((0..MACHINES.len()).collect::<Vec<_>>(), 1..=MACHINES.len()),
        vec(
            (0..USERS.len(), 1..=u16::MAX, 0..PORTS.len()),
            MACHINES.len(),
        ),
        vec(0..4u8, 10),
        vec(
            (0..5usize, 0..3u8, 0..6u8, 0..4u8, 0..6u8, 0..9usize),
            0..14,
        ),
    )
        .prop_map(|(machines, hosts, links, rules)| Recipe {
            machines,
            hosts,
            links,
            rules,
        })
}

/// A small pool of unicast addresses, so that random topologies share matches.
fn pool_mac(i: u8) -> Mac {
    Mac([0x02, 0x56, 0x4e, 0, 0, i])
}

fn build(r: &Recipe) -> Topology {
    let names: Vec<Name> = r.machines.iter().map(|&i| name(MACHINES[i])).collect();
    let mut t = Topology::default();
    for (machine, &(user, port, interface)) in names.iter().zip(&r.hosts) {
        let host = Host {
            user: USERS[user].to_string(),
            machine: machine.clone(),
            port,
            interface: name(PORTS[interface]),
        };
        t.hosts.insert(machine.clone(), host);
    }
    let mut choices = r.links.iter().cycle();
    for (i, x) in names.iter().enumerate() {
        for y in &names[i + 1..] {
            let kind = match choices.next() {
                Some(2) => LinkKind::Udp,
                Some(3) => LinkKind::Tcp,
                _ => continue,
            };
            t.links.extend(Link::new(x.clone(), y.clone(), kind));
        }
    }
    for &(m, src, src_mac, dst, dst_mac, target) in &r.rules {
        let machine = &names[m % names.len()];
        let src = match src {
            0 => SrcMatch::Any,
            1 => SrcMatch::Is(pool_mac(src_mac)),
            _ => SrcMatch::Not(pool_mac(src_mac)),
        };
        let dst = match dst {
            0 => DstMatch::Any,
            1 => DstMatch::None,
            2 => DstMatch::Is(pool_mac(dst_mac)),
            _ => DstMatch::Not(pool_mac(dst_mac)),
        };
        let peers: Vec<&Name> = t.links.iter().filter_map(|l| l.peer_of(machine)).collect();
        let target = if target % 3 == 0 || peers.is_empty() {
            Target::Port(name(PORTS[target % PORTS.len()]))
        } else {
            Target::Link(peers[target % peers.len()].clone())
        };
        t.rules
            .entry(machine.clone())
            .or_default()
            .insert((src, dst), target);
    }
    t
}

fn topology() -> impl Strategy<Value = Topology> {
    recipe().prop_map(|r| build(&r))
}

/// The pairs of machines whose link changes transport from `current` to `desired`.
fn changing_pairs(current: &Topology, desired: &Topology) -> BTreeSet<(Name, Name)> {
    current
        .links
        .iter()
        .filter(|l| {
            desired
                .links
                .iter()
                .any(|d| d.a == l.a && d.b == l.b && d.kind != l.kind)
        })
        .map(|l| (l.a.clone(), l.b.clone()))
        .collect()
}

/// The least number of primitives any plan needs: one per link added or deleted (two for a
/// transport change), one per rule added, changed or deleted.
fn lower_bound(current: &Topology, desired: &Topology) -> usize {
    let links = current.links.symmetric_difference(&desired.links).count();
    let mut rules = 0;
    let machines: BTreeSet<&Name> = current.rules.keys().chain(desired.rules.keys()).collect();
    for m in machines {
        let empty = Default::default();
        let now = current.rules.get(m).unwrap_or(&empty);
        let then = desired.rules.get(m).unwrap_or(&empty);
        let keys: BTreeSet<_> = now.keys().chain(then.keys()).collect();
        rules += keys
            .into_iter()
            .filter(|k| now.get(*k) != then.get(*k))
            .count();
    }
    links + rules
}

proptest! {
    #[test]
    fn random_topologies_print_and_parse_back(t in topology()) {
        prop_assert_eq!(check(&t), Ok(()));
        let text = print(&t);
        let parsed = parse_topology(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&t), "{}", text);
        if let Ok(parsed) = parsed {
            prop_assert_eq!(print(&parsed), text);
        }
    }

    #[test]
    fn plans_reach_the_desired_topology_step_by_step(
        current in topology(),
        desired in topology(),
    ) {
        let actions = plan(&current, &desired);
        prop_assert!(plan(&current, &current).is_empty());
        prop_assert!(plan(&desired, &desired).is_empty());

        // Declare every machine first (the daemons are started before the plan runs).
        let mut t = current.clone();
        t.hosts.extend(desired.hosts.clone());
        let changing = changing_pairs(&current, &desired);
        let over_changing = |m: &Name, target: Option<&Target>| match target {
            Some(Target::Link(p)) => {
                changing.contains(&(m.clone().min(p.clone()), m.clone().max(p.clone())))
            }
            _ => false,
        };
        // The matches both topologies route at each machine, except over a changing link in
        // both: they must be routed at every step.
        let mut kept = Vec::new();
        for (m, table) in &current.rules {
            for (key, target) in table {
                let wanted = desired.rules.get(m).and_then(|d| d.get(key));
                let both_changing = over_changing(m, Some(target)) && over_changing(m, wanted);
                if wanted.is_some() && !both_changing {
                    kept.push((m.clone(), *key));
                }
            }
        }
        for action in &actions {
            let applied = apply(&mut t, action);
            prop_assert_eq!(applied, Ok(()), "{}", action);
            prop_assert_eq!(check(&t), Ok(()));
            for (m, key) in &kept {
                prop_assert!(
                    t.rules.get(m).is_some_and(|table| table.contains_key(key)),
                    "{} lost a route after {}", m, action
                );
            }
        }
        prop_assert_eq!(&t.links, &desired.links);
        prop_assert_eq!(&t.rules, &desired.rules);

        let bound = lower_bound(&current, &desired);
        if changing.is_empty() {
            prop_assert_eq!(actions.len(), bound);
        } else {
            prop_assert!(actions.len() >= bound);
        }

        // The rendered plan, applied to `current`, gives `desired` plus the dropped machines.
        let text = render_plan(&current, &desired, &actions);
        let program = parse(&text);
        prop_assert!(program.is_ok(), "{:?}\n{}", program, text);
        if let Ok(program) = program {
            let result = program.apply_to(&current);
            prop_assert!(result.is_ok(), "{:?}\n{}", result, text);
            if let Ok(mut result) = result {
                let mut hosts = current.hosts.clone();
                hosts.extend(desired.hosts.clone());
                prop_assert_eq!(&result.hosts, &hosts);
                result.hosts.retain(|m, _| desired.hosts.contains_key(m));
                prop_assert_eq!(result, desired);
            }
        }
    }

    #[test]
    fn stars_are_valid(
        hosts in subsequence(MACHINES[1..].to_vec(), 0..=4),
        guests in vec((0..5usize, 0..3usize, 0..40u8), 0..10),
    ) {
        let host = |m: &str| Host {
            user: "vnet".into(),
            machine: name(m),
            port: 2222,
            interface: name("eth0"),
        };
        let mut seen = BTreeSet::new();
        let guests: Vec<Guest> = guests
            .into_iter()
            .filter(|g| seen.insert(g.2))
            .map(|(h, port, mac)| Guest {
                host: name(if h < hosts.len() { hosts[h] } else { "proxy" }),
                port: name(PORTS[port]),
                mac: pool_mac(mac),
            })
            .collect();
        let t = star(host("proxy"), hosts.iter().map(|m| host(m)).collect(), &guests, name("lan0"));
        prop_assert!(t.is_ok(), "{:?}", t);
        if let Ok(t) = t {
            prop_assert_eq!(check(&t), Ok(()));
            prop_assert_eq!(t.links.len(), hosts.len());
            let rules: usize = t.rules.values().map(|table| table.len()).sum();
            let on_hosts = guests.iter().filter(|g| g.host.as_str() != "proxy").count();
            prop_assert_eq!(rules, hosts.len() + 1 + guests.len() + on_hosts);
        }
    }
}

// Parsing never panics.

/// Checks what holds of any text: positions are in the text, and what parses and applies
/// prints back to itself.
fn parse_anything(text: &str) -> Result<(), TestCaseError> {
    let lines = text.split('\n').count();
    match parse(text) {
        Err(e) => {
            prop_assert!(e.pos.line >= 1 && e.pos.line <= lines, "{}", e);
            prop_assert!(e.pos.column >= 1, "{}", e);
        }
        Ok(program) => match program_to_topology(&program) {
            Err(e) => prop_assert!(e.pos.line >= 1 && e.pos.line <= lines, "{}", e),
            Ok(t) => {
                prop_assert_eq!(check(&t), Ok(()));
                prop_assert_eq!(parse_topology(&print(&t)), Ok(t));
            }
        },
    }
    Ok(())
}

const SOUP: [&str; 40] = [
    "BEGIN",
    "END",
    "HOST",
    "AT",
    "ADD",
    "DELETE",
    "LINK",
    "FORWARD",
    "UDP",
    "TCP",
    "EDGE",
    "INTERFACE",
    "ANY",
    "NOT",
    "NONE",
    "begin",
    "end",
    "any",
    "a",
    "b",
    "proxy",
    "u",
    "eth0",
    "vm0",
    "1",
    "0",
    "65536",
    "2222",
    "02:56:4e:00:00:01",
    "02:56:4E:00:00:02",
    "ff:ff:ff:ff:ff:ff",
    "01:00:5e:00:00:01",
    "02:56:4e:00:00",
    "#",
    "# comment",
    "-x",
    "é",
    "\"",
    "x#y",
    "\u{0}",
];

const SPACE: [&str; 5] = [" ", "\n", "\t", "\r\n", "  "];

fn soup() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        vec((select(SOUP.to_vec()), select(SPACE.to_vec())), 0..60),
    )
        .prop_map(|(framed, words)| {
            let mut text = String::new();
            if framed {
                text.push_str("BEGIN HOST u AT a 1 eth0 HOST u AT b 1 eth0 ADD ");
            }
            for (word, space) in words {
                text.push_str(word);
                text.push_str(space);
            }
            if framed {
                text.push_str(" END");
            }
            text
        })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(chars in vec(any::<char>(), 0..300)) {
        parse_anything(&chars.into_iter().collect::<String>())?;
    }

    #[test]
    fn token_soup_never_panics(text in soup()) {
        parse_anything(&text)?;
    }

    #[test]
    fn damaged_programs_never_panic(
        t in topology(),
        damage in vec((0..4u8, any::<prop::sample::Index>(), select(SOUP.to_vec())), 1..4),
    ) {
        let printed = print(&t);
        let mut words: Vec<&str> = printed.split_whitespace().collect();
        for (how, at, word) in damage {
            if words.is_empty() {
                words.push(word);
                continue;
            }
            let i = at.index(words.len());
            match how {
                0 => { words.remove(i); }
                1 => words.insert(i, words[i]),
                2 => words.insert(i, word),
                _ => words[i] = word,
            }
        }
        parse_anything(&words.join("\n"))?;
    }
}
