//! The parser: text to [`Program`], or the first [`SyntaxError`]. It never panics.

use std::fmt;

use super::lex::{tokens, Keyword, Token};
use super::{Action, Item, Located, Pos, Program};
use crate::model::{DstMatch, Host, Link, LinkKind, Mac, Name, Rule, SrcMatch, Target};

/// What the parser found where it expected something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A token, cut to its first [`Found::MAX_CHARS`] characters (then followed by `…`).
    Token(String),
    /// Nothing: the text ended.
    EndOfInput,
}

impl Found {
    /// How many characters of a token an error quotes.
    pub const MAX_CHARS: usize = 40;

    fn token(text: &str) -> Found {
        let mut quoted: String = text.chars().take(Found::MAX_CHARS).collect();
        if quoted.len() < text.len() {
            quoted.push('…');
        }
        Found::Token(quoted)
    }
}

impl fmt::Display for Found {
    /// The token in double quotes (with `"`, `\` and control characters escaped), or `end of
    /// input`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Token(text) => write!(f, "\"{}\"", text.escape_debug()),
            Found::EndOfInput => f.write_str("end of input"),
        }
    }
}

/// Why a text is not a program, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {kind}")]
pub struct SyntaxError {
    /// Where the offending token starts (or where the text ends).
    pub pos: Pos,
    /// What is wrong there.
    pub kind: SyntaxErrorKind,
}

/// What is wrong at a [`SyntaxError`]'s position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxErrorKind {
    /// Not the token the grammar allows here.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the grammar allows, e.g. `a MAC address, ANY or NOT`.
        expected: &'static str,
        /// What is there instead.
        found: Found,
    },
    /// A `LINK`, or the link of an `EDGE` rule, whose two ends are one machine.
    #[error("a link joins two different machines, but both of its ends are `{0}`")]
    SameEnds(Name),
    /// A `LINK` whose first machine (the daemon that opens it) is not one of its ends.
    #[error(
        "the machine that opens a link must be one of its ends, `{a}` or `{b}`, not `{opener}`"
    )]
    OpenerNotAnEnd {
        /// The first machine of the item.
        opener: Name,
        /// One end.
        a: Name,
        /// The other end.
        b: Name,
    },
    /// An `EDGE` rule whose link does not end at the rule's machine.
    #[error(
        "an EDGE rule at `{machine}` sends frames over one of its own links, \
         but the link `{start}`-`{end}` does not end at `{machine}`"
    )]
    EdgeElsewhere {
        /// The machine whose table holds the rule.
        machine: Name,
        /// The link's first end as written.
        start: Name,
        /// The link's second end as written.
        end: Name,
    },
}

/// The program that `text` spells (see the module documentation for the grammar).
///
/// Total: every input gives a program or an error, never a panic.
///
/// # Errors
///
/// The first place where the text leaves the grammar, or where a `LINK` or `EDGE` rule names
/// machines that cannot form it (see [`SyntaxErrorKind`]). Whether the program can be applied
/// (machines declared, links present, and so on) is checked later, by
/// [`Program::apply_to`](super::Program::apply_to).
pub fn parse(text: &str) -> Result<Program, SyntaxError> {
    let (tokens, end) = tokens(text);
    let mut p = Parser {
        tokens,
        next: 0,
        end,
    };
    p.program()
}

const AFTER_HOSTS: &str = "HOST, ADD, DELETE or END";
const IN_GROUP: &str = "LINK, FORWARD, ADD, DELETE or END";
const MACHINE: &str = "a machine name";
const INTERFACE: &str = "an interface name";

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    next: usize,
    end: Pos,
}

impl<'a> Parser<'a> {
    fn peek_keyword(&self) -> Option<Keyword> {
        self.tokens.get(self.next).and_then(|t| Keyword::of(t.text))
    }

    fn bump(&mut self) -> Option<Token<'a>> {
        let token = self.tokens.get(self.next).copied();
        if token.is_some() {
            self.next += 1;
        }
        token
    }

    /// The error for finding `token` (or the end) where `expected` should be.
    fn unexpected(&self, token: Option<Token<'_>>, expected: &'static str) -> SyntaxError {
        let (pos, found) = match token {
            Some(t) => (t.pos, Found::token(t.text)),
            None => (self.end, Found::EndOfInput),
        };
        SyntaxError {
            pos,
            kind: SyntaxErrorKind::Expected { expected, found },
        }
    }

    /// The next token, which must be one of `allowed`.
    fn keyword(
        &mut self,
        allowed: &[Keyword],
        expected: &'static str,
    ) -> Result<(Keyword, Pos), SyntaxError> {
        let token = self.bump();
        match token.and_then(|t| Some((Keyword::of(t.text)?, t.pos))) {
            Some((k, pos)) if allowed.contains(&k) => Ok((k, pos)),
            _ => Err(self.unexpected(token, expected)),
        }
    }

    /// The next token, which must not be a keyword.
    fn word(&mut self, expected: &'static str) -> Result<Token<'a>, SyntaxError> {
        match self.bump() {
            Some(t) if Keyword::of(t.text).is_none() => Ok(t),
            other => Err(self.unexpected(other, expected)),
        }
    }

    fn name(&mut self, expected: &'static str) -> Result<(Name, Pos), SyntaxError> {
        let token = self.word(expected)?;
        match token.text.parse() {
            Ok(name) => Ok((name, token.pos)),
            Err(_) => Err(self.unexpected(Some(token), expected)),
        }
    }

    fn program(&mut self) -> Result<Program, SyntaxError> {
        self.keyword(&[Keyword::Begin], "BEGIN")?;
        let mut program = Program::default();
        while self.peek_keyword() == Some(Keyword::Host) {
            program.hosts.push(self.host()?);
        }
        // Whether the items that follow add or delete; `None` before the first group.
        let mut adding: Option<bool> = None;
        loop {
            let expected = if adding.is_some() {
                IN_GROUP
            } else {
                AFTER_HOSTS
            };
            let Some(token) = self.bump() else {
                return Err(self.unexpected(None, expected));
            };
            match (Keyword::of(token.text), adding) {
                (Some(Keyword::Add), _) => adding = Some(true),
                (Some(Keyword::Delete), _) => adding = Some(false),
                (Some(Keyword::End), _) => break,
                (Some(Keyword::Link), Some(add)) => {
                    let item = Item::Link(self.link()?);
                    program.actions.push(located(token.pos, add, item));
                }
                (Some(Keyword::Forward), Some(add)) => {
                    let item = self.rule()?;
                    program.actions.push(located(token.pos, add, item));
                }
                _ => return Err(self.unexpected(Some(token), expected)),
            }
        }
        match self.bump() {
            None => Ok(program),
            extra => Err(self.unexpected(extra, "nothing after END")),
        }
    }

    /// `HOST <user> AT <machine> <port> <interface>`, from `HOST`.
    fn host(&mut self) -> Result<Located<Host>, SyntaxError> {
        let (_, pos) = self.keyword(&[Keyword::Host], "HOST")?;
        let user = self.word("a user name")?.text.to_string();
        self.keyword(&[Keyword::At], "AT")?;
        let (machine, _) = self.name(MACHINE)?;
        const PORT: &str = "a port number (1 to 65535)";
        let token = self.word(PORT)?;
        let port = match token.text.parse::<u16>() {
            Ok(port) if port != 0 && token.text.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(self.unexpected(Some(token), PORT)),
        };
        let (interface, _) = self.name(INTERFACE)?;
        Ok(Located {
            pos,
            value: Host {
                user,
                machine,
                port,
                interface,
            },
        })
    }

    /// `<kind> <opener> <end> <end>`, after `LINK`.
    fn link(&mut self) -> Result<Link, SyntaxError> {
        let (kind, _) = self.keyword(&[Keyword::Udp, Keyword::Tcp], "UDP or TCP")?;
        let kind = if kind == Keyword::Tcp {
            LinkKind::Tcp
        } else {
            LinkKind::Udp
        };
        let (opener, opener_pos) = self.name(MACHINE)?;
        let (x, _) = self.name(MACHINE)?;
        let (y, y_pos) = self.name(MACHINE)?;
        if opener != x && opener != y {
            return Err(SyntaxError {
                pos: opener_pos,
                kind: SyntaxErrorKind::OpenerNotAnEnd { opener, a: x, b: y },
            });
        }
        Link::new(x, y.clone(), kind).ok_or(SyntaxError {
            pos: y_pos,
            kind: SyntaxErrorKind::SameEnds(y),
        })
    }

    /// `EDGE|INTERFACE <machine> <src> <dst> <destination>`, after `FORWARD`.
    fn rule(&mut self) -> Result<Item, SyntaxError> {
        let (kind, _) = self.keyword(&[Keyword::Edge, Keyword::Interface], "EDGE or INTERFACE")?;
        let (machine, _) = self.name(MACHINE)?;
        let src = self.src()?;
        let dst = self.dst()?;
        let target = if kind == Keyword::Edge {
            let (start, start_pos) = self.name(MACHINE)?;
            let (end, end_pos) = self.name(MACHINE)?;
            if start == end {
                return Err(SyntaxError {
                    pos: end_pos,
                    kind: SyntaxErrorKind::SameEnds(end),
                });
            }
            if start == machine {
                Target::Link(end)
            } else if end == machine {
                Target::Link(start)
            } else {
                return Err(SyntaxError {
                    pos: start_pos,
                    kind: SyntaxErrorKind::EdgeElsewhere {
                        machine,
                        start,
                        end,
                    },
                });
            }
        } else {
            Target::Port(self.name(INTERFACE)?.0)
        };
        Ok(Item::Rule {
            machine,
            rule: Rule { src, dst, target },
        })
    }

    fn src(&mut self) -> Result<SrcMatch, SyntaxError> {
        Ok(match self.address("a MAC address, ANY or NOT")? {
            Address::Any => SrcMatch::Any,
            Address::Is(mac) => SrcMatch::Is(mac),
            Address::Not(mac) => SrcMatch::Not(mac),
        })
    }

    fn dst(&mut self) -> Result<DstMatch, SyntaxError> {
        if self.peek_keyword() == Some(Keyword::None) {
            self.bump();
            return Ok(DstMatch::None);
        }
        Ok(match self.address("a MAC address, ANY, NOT or NONE")? {
            Address::Any => DstMatch::Any,
            Address::Is(mac) => DstMatch::Is(mac),
            Address::Not(mac) => DstMatch::Not(mac),
        })
    }

    /// `ANY`, `NOT <mac>` or `<mac>`.
    fn address(&mut self, expected: &'static str) -> Result<Address, SyntaxError> {
        let token = self.bump();
        match token.map(|t| (Keyword::of(t.text), t.text.parse::<Mac>())) {
            Some((Some(Keyword::Any), _)) => Ok(Address::Any),
            Some((Some(Keyword::Not), _)) => {
                let mac = self.bump();
                match mac.map(|t| t.text.parse::<Mac>()) {
                    Some(Ok(mac)) => Ok(Address::Not(mac)),
                    _ => Err(self.unexpected(mac, "a MAC address after NOT")),
                }
            }
            Some((None, Ok(mac))) => Ok(Address::Is(mac)),
            _ => Err(self.unexpected(token, expected)),
        }
    }
}

/// A source or destination address other than `NONE`.
enum Address {
    Any,
    Is(Mac),
    Not(Mac),
}

fn located(pos: Pos, add: bool, item: Item) -> Located<Action> {
    let value = if add {
        Action::Add(item)
    } else {
        Action::Delete(item)
    };
    Located { pos, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        s.parse().expect("a valid name")
    }

    fn mac(s: &str) -> Mac {
        s.parse().expect("a valid MAC")
    }

    /// The error message for `text`, which must not parse.
    fn error(text: &str) -> String {
        match parse(text) {
            Ok(p) => panic!("{text:?} parsed: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    const HOSTS: &str = "BEGIN\nHOST alice AT host1 2222 eth0\nHOST root AT proxy 2222 eth0\n";

    #[test]
    fn parses_hosts_links_and_rules() {
        let text = format!(
            "{HOSTS}add\n  link udp host1 host1 proxy\n  \
             forward edge proxy any 02:56:4e:00:00:01 proxy host1 # to the guest\n  \
             forward interface host1 ANY 02:56:4E:00:00:01 vm0\n\
             DELETE FORWARD EDGE host1 NOT 02:56:4e:00:00:01 NONE proxy host1\n\
             LINK TCP proxy host1 proxy\nEND\n"
        );
        let p = parse(&text).expect("parses");
        assert_eq!(p.hosts.len(), 2);
        assert_eq!(
            p.hosts[0],
            Located {
                pos: Pos { line: 2, column: 1 },
                value: Host {
                    user: "alice".into(),
                    machine: name("host1"),
                    port: 2222,
                    interface: name("eth0"),
                },
            }
        );
        let guest = mac("02:56:4e:00:00:01");
        let expected = [
            Action::Add(Item::Link(
                Link::new(name("host1"), name("proxy"), LinkKind::Udp).expect("a link"),
            )),
            Action::Add(Item::Rule {
                machine: name("proxy"),
                rule: Rule {
                    src: SrcMatch::Any,
                    dst: DstMatch::Is(guest),
                    target: Target::Link(name("host1")),
                },
            }),
            Action::Add(Item::Rule {
                machine: name("host1"),
                rule: Rule {
                    src: SrcMatch::Any,
                    dst: DstMatch::Is(guest),
                    target: Target::Port(name("vm0")),
                },
            }),
            Action::Delete(Item::Rule {
                machine: name("host1"),
                rule: Rule {
                    src: SrcMatch::Not(guest),
                    dst: DstMatch::None,
                    target: Target::Link(name("proxy")),
                },
            }),
            Action::Delete(Item::Link(
                Link::new(name("proxy"), name("host1"), LinkKind::Tcp).expect("a link"),
            )),
        ];
        let actions: Vec<_> = p.actions.iter().map(|a| a.value.clone()).collect();
        assert_eq!(actions, expected);
        let lines: Vec<_> = p.actions.iter().map(|a| a.pos.line).collect();
        assert_eq!(lines, [5, 6, 7, 8, 9]);
        assert_eq!(p.actions[1].pos.column, 3);
    }

    #[test]
    fn empty_programs_and_groups() {
        assert_eq!(parse("BEGIN END").expect("parses"), Program::default());
        let p = parse("begin add delete add end").expect("parses");
        assert!(p.hosts.is_empty() && p.actions.is_empty());
    }

    #[test]
    fn tokens_may_spread_over_lines() {
        let p = parse("BEGIN HOST a AT m 1 e ADD LINK\nUDP\nm m\nn END").expect("parses");
        assert_eq!(p.actions.len(), 1);
    }

    #[test]
    fn reports_what_was_expected_and_found() {
        assert_eq!(error(""), "1:1: expected BEGIN, found end of input");
        assert_eq!(
            error("  # nothing\n"),
            "2:1: expected BEGIN, found end of input"
        );
        assert_eq!(error("HOST"), "1:1: expected BEGIN, found \"HOST\"");
        assert_eq!(
            error("BEGIN"),
            "1:6: expected HOST, ADD, DELETE or END, found end of input"
        );
        assert_eq!(
            error("BEGIN ADD"),
            "1:10: expected LINK, FORWARD, ADD, DELETE or END, found end of input"
        );
        assert_eq!(
            error("BEGIN LINK UDP a a b END"),
            "1:7: expected HOST, ADD, DELETE or END, found \"LINK\""
        );
        assert_eq!(
            error("BEGIN ADD HOST a AT m 1 e END"),
            "1:11: expected LINK, FORWARD, ADD, DELETE or END, found \"HOST\""
        );
        assert_eq!(
            error("BEGIN END END"),
            "1:11: expected nothing after END, found \"END\""
        );
    }

    #[test]
    fn host_line_errors() {
        assert_eq!(
            error("BEGIN HOST AT m 1 e END"),
            "1:12: expected a user name, found \"AT\""
        );
        assert_eq!(
            error("BEGIN HOST u m 1 e END"),
            "1:14: expected AT, found \"m\""
        );
        assert_eq!(
            error("BEGIN HOST u AT -m 1 e END"),
            "1:17: expected a machine name, found \"-m\""
        );
        assert_eq!(
            error("BEGIN HOST u AT end 1 e END"),
            "1:17: expected a machine name, found \"end\""
        );
        for port in ["0", "65536", "+22", "x", "-1", "2_2"] {
            assert_eq!(
                error(&format!("BEGIN HOST u AT m {port} e END")),
                format!("1:19: expected a port number (1 to 65535), found \"{port}\"")
            );
        }
        assert_eq!(
            error("BEGIN HOST u AT m 22 END"),
            "1:22: expected an interface name, found \"END\""
        );
    }

    #[test]
    fn link_errors() {
        assert_eq!(
            error("BEGIN ADD LINK SCTP a a b END"),
            "1:16: expected UDP or TCP, found \"SCTP\""
        );
        assert_eq!(
            error("BEGIN ADD LINK UDP c a b END"),
            "1:20: the machine that opens a link must be one of its ends, `a` or `b`, not `c`"
        );
        assert_eq!(
            error("BEGIN ADD LINK UDP a a a END"),
            "1:24: a link joins two different machines, but both of its ends are `a`"
        );
        assert_eq!(
            error("BEGIN ADD LINK UDP a a\nFORWARD END"),
            "2:1: expected a machine name, found \"FORWARD\""
        );
    }

    #[test]
    fn rule_errors() {
        assert_eq!(
            error("BEGIN ADD FORWARD LINK m ANY ANY e END"),
            "1:19: expected EDGE or INTERFACE, found \"LINK\""
        );
        assert_eq!(
            error("BEGIN ADD\nFORWARD EDGE h1 ANY host1 h1 px END"),
            "2:21: expected a MAC address, ANY, NOT or NONE, found \"host1\""
        );
        assert_eq!(
            error("BEGIN ADD FORWARD INTERFACE m NONE ANY e END"),
            "1:31: expected a MAC address, ANY or NOT, found \"NONE\""
        );
        assert_eq!(
            error("BEGIN ADD FORWARD INTERFACE m NOT ANY ANY e END"),
            "1:35: expected a MAC address after NOT, found \"ANY\""
        );
        assert_eq!(
            error("BEGIN ADD FORWARD INTERFACE m ANY 02:00:00:00:00:0g e END"),
            "1:35: expected a MAC address, ANY, NOT or NONE, found \"02:00:00:00:00:0g\""
        );
        assert_eq!(
            error("BEGIN ADD FORWARD INTERFACE m ANY ANY END"),
            "1:39: expected an interface name, found \"END\""
        );
        assert_eq!(
            error("BEGIN ADD FORWARD EDGE m ANY ANY a b END"),
            "1:34: an EDGE rule at `m` sends frames over one of its own links, \
             but the link `a`-`b` does not end at `m`"
        );
        assert_eq!(
            error("BEGIN ADD FORWARD EDGE m ANY ANY m m END"),
            "1:36: a link joins two different machines, but both of its ends are `m`"
        );
    }

    #[test]
    fn edge_rules_accept_their_link_in_either_order() {
        for ends in ["h p", "p h"] {
            let p = parse(&format!("BEGIN ADD FORWARD EDGE h ANY NONE {ends} END")).expect("ok");
            let Some(Action::Add(Item::Rule { rule, .. })) = p.actions.first().map(|a| &a.value)
            else {
                panic!("one rule expected: {p:?}");
            };
            assert_eq!(rule.target, Target::Link(name("p")));
        }
    }

    #[test]
    fn long_and_strange_tokens_are_quoted_briefly() {
        let long = "x".repeat(100);
        let message = error(&long);
        assert_eq!(
            message,
            format!("1:1: expected BEGIN, found \"{}…\"", "x".repeat(40))
        );
        assert_eq!(
            error("BEGIN \"\u{7}"),
            "1:7: expected HOST, ADD, DELETE or END, found \"\\\"\\u{7}\""
        );
    }
}
