//! The topology language (seed 004, §3.3 and Fig. 5): a text that declares the daemons of an
//! overlay and adds or deletes its links and forwarding rules, and the tools built on it: the
//! parser, the meaning of a program as a [`Topology`], a canonical printer, the plan that turns
//! one topology into another, and the initial star.
//!
//! Everything here is pure: text and values in, text and values out.
//!
//! # The language as we read it
//!
//! ```text
//! program  := BEGIN host* group* END
//! host     := HOST <user> AT <machine> <port> <interface>
//! group    := (ADD | DELETE) item*
//! item     := LINK (UDP | TCP) <machine> <machine> <machine>
//!           | FORWARD EDGE <machine> <src> <dst> <machine> <machine>
//!           | FORWARD INTERFACE <machine> <src> <dst> <interface>
//! src      := ANY | [NOT] <mac>
//! dst      := ANY | NONE | [NOT] <mac>
//! ```
//!
//! Tokens are separated by any whitespace, so an item may span lines and a line may hold
//! several items. `#` starts a comment that runs to the end of its line. Keywords (`BEGIN`,
//! `END`, `HOST`, `AT`, `ADD`, `DELETE`, `LINK`, `FORWARD`, `UDP`, `TCP`, `EDGE`, `INTERFACE`,
//! `ANY`, `NOT`, `NONE`) are case-insensitive and reserved: they are never taken as a user,
//! machine or interface name, so a forgotten token is reported where it is missing rather than
//! several tokens later. Machine and interface names are [`Name`]s and case-sensitive; a MAC
//! is six hexadecimal octets separated by `:` in either case; a port is a decimal number from
//! 1 to 65535; a user is any other single token.
//!
//! * `HOST alice AT host1 2222 eth0` declares the daemon of machine `host1`: it runs as `alice`,
//!   its control API listens on port 2222, and `eth0` is its interface to the underlay. Every
//!   machine that an item names must be declared (by this program, or by the topology the
//!   program is applied to, see [`Program::apply_to`]).
//! * `LINK UDP host1 host1 proxy`: Fig. 5 gives a link three machines. We read the first as the
//!   daemon that opens the link (the one the primitive is sent to; it dials the other) and the
//!   last two as the link's ends, in either order. The opener must be one of the ends: a daemon
//!   opens only its own links. Our links are symmetric and named by their pair of machines
//!   ([`Link`]), so the opener is checked and then not kept (the printer writes the end that
//!   sorts first).
//! * `FORWARD EDGE host1 ANY 02:56:4e:00:00:02 host1 proxy` is a rule in the table of the
//!   first machine; its destination is the link given by its two ends (Fig. 2's "hop start" and
//!   "hop end"), one of which must be the rule's machine; the rule sends matching frames to the
//!   other end. `FORWARD INTERFACE host1 ANY 02:56:4e:00:00:01 vmnet1` writes matching frames
//!   out of the local interface `vmnet1`.
//!
//! Where we extend or deviate from Fig. 5, and why:
//!
//! * `ANY` replaces both the qualifier and the address. Fig. 5 makes `ANY` a qualifier
//!   followed by an address, but an address after "any" would mean nothing, and Fig. 2 writes
//!   "any" in the address column with "-" as the qualifier. (Reading both would also make
//!   `ANY 02:..:01 ...` ambiguous.)
//! * `NONE` as a destination is the default rule of Fig. 2, which Fig. 5 cannot express.
//! * Within a group, items may come in any order and are applied in the order written. Fig. 5
//!   puts a group's links before its rules, which for `DELETE` would remove a link before the
//!   rules that use it; a plan (see [`render_plan`]) deletes rules first.
//! * Comments, and the reserved keywords, are ours.
//!
//! # Meaning
//!
//! A program applied to a topology ([`Program::apply_to`], [`program_to_topology`] from an
//! empty one) runs its items in order, each as one VNET primitive ([`apply`]), and stops at the
//! first that fails, with the position of that item. A daemon holds at most one rule per match
//! (source and destination, [`crate::model::Match`]): adding a rule whose match is already in
//! the machine's table *replaces* its target in one step, which is how a route moves without a
//! gap; so adding an identical rule twice is an error, adding a different target is not.
//! Adding a link between two machines that already have one (of either transport), deleting
//! what is not there, deleting a link that rules still use, an `EDGE` rule whose link does not
//! exist yet, and a rule toward a broadcast or multicast address are errors: see
//! [`SemanticError`]. (Broadcast and multicast frames are meant for many guests; the daemons
//! flood them along the star themselves, so a rule, which picks one way out, cannot route
//! them. A destination `NOT <group address>` is refused too: it would match exactly what `ANY`
//! matches among the frames that rules see.)
//!
//! # Tools
//!
//! * [`print()`] writes a topology in canonical form; [`check`] tells whether a topology is one
//!   that a program can describe, and so whether printing and parsing give it back.
//! * [`plan`] lists the primitives that turn one topology into another without cutting guests
//!   off, [`render_plan`] writes them as a program, and [`host_changes`] lists the daemons to
//!   start and stop, which are not primitives.
//! * [`star`] builds the initial topology: every host linked to the Proxy; [`mesh`] adds a
//!   fast path between every two hosts; [`rehome`] moves a guest to another host (a
//!   migration's new rules).

mod lex;
mod parse;
mod plan;
mod print;
mod semantics;
mod star;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::model::{Host, Link, Name, Rule, Topology};

pub use parse::{parse, Found, SyntaxError, SyntaxErrorKind};
pub use plan::{host_changes, plan, HostChange};
pub use print::{print, render, render_plan};
pub use semantics::{apply, check, program_to_topology, ProgramError, SemanticError};
pub use star::{add_fast_path, guest_homes, mesh, rehome, star, Guest, RehomeError, StarError};

/// A place in a program's text: 1-based line and column, the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters (a tab counts as one).
    pub column: usize,
}

impl fmt::Display for Pos {
    /// `line:column`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value and where its text starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// Where the value's first token is: the `HOST`, `LINK` or `FORWARD` keyword.
    pub pos: Pos,
    /// The value.
    pub value: T,
}

/// A parsed program: its `HOST` declarations and its items in order, each with its position
/// so that what goes wrong when it is applied can point at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Program {
    /// The `HOST` lines, in order.
    pub hosts: Vec<Located<Host>>,
    /// The items of every `ADD` and `DELETE` group, in order.
    pub actions: Vec<Located<Action>>,
}

/// What an item adds or deletes: a link, or a rule in one machine's table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    /// An overlay link (`LINK`).
    Link(Link),
    /// A forwarding rule (`FORWARD`) in the table of `machine`.
    Rule {
        /// The daemon whose table holds the rule.
        machine: Name,
        /// The rule.
        rule: Rule,
    },
}

/// One VNET primitive (seed 004, §3.2): add or delete a link or a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Add a link, or add a rule (replacing the target of the rule with the same match).
    Add(Item),
    /// Delete a link or a rule.
    Delete(Item),
}

impl Action {
    /// What the action adds or deletes.
    pub fn item(&self) -> &Item {
        match self {
            Action::Add(item) | Action::Delete(item) => item,
        }
    }
}

impl fmt::Display for Item {
    /// The item as the language writes it, e.g. `LINK UDP host1 host1 proxy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print::item_text(self))
    }
}

impl fmt::Display for Action {
    /// `ADD ` or `DELETE ` and the item, e.g. `DELETE LINK UDP host1 host1 proxy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Add(item) => write!(f, "ADD {item}"),
            Action::Delete(item) => write!(f, "DELETE {item}"),
        }
    }
}

/// Why a text does not describe a topology: it is not a program, or applying it fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not a program of the language.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// The program is well formed but one of its lines cannot be applied.
    #[error(transparent)]
    Semantic(#[from] ProgramError),
}

/// The topology that `text` describes: [`parse`], then [`program_to_topology`].
///
/// # Errors
///
/// The first syntax error, or the first `HOST` line or item that cannot be applied.
pub fn parse_topology(text: &str) -> Result<Topology, Error> {
    Ok(program_to_topology(&parse(text)?)?)
}

impl TryFrom<&Program> for Topology {
    type Error = ProgramError;

    /// [`program_to_topology`].
    fn try_from(program: &Program) -> Result<Self, Self::Error> {
        program_to_topology(program)
    }
}
