//! Communication operations and the per-rank plan of one iteration's communication phase.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::topology::Graph;

/// The communication operation of every iteration. Every message has the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Neighbour exchange: send one message to every neighbour in the topology, then receive
    /// one from each. Per iteration all ranks together send `2 * edges` messages.
    #[value(help = "send one message to every neighbour, then receive one from each")]
    Exchange,
    /// Reduction toward rank 0 along the topology's breadth-first spanning tree (see
    /// [`Graph::reduce_tree`]): receive one message from each child, then send one message to
    /// the parent (rank 0 only receives). The payload is opaque: combining is not modelled
    /// (that is the compute phase's job). Per iteration all ranks together send `n - 1`
    /// messages. Nothing but rank 0's receives paces the other ranks, so a subtree may run
    /// ahead of its parent by the few messages that the per-connection send queue and TCP
    /// buffers hold.
    #[value(
        help = "receive one message from each child of the breadth-first spanning tree \
                    rooted at rank 0, then send one to the parent"
    )]
    Reduce,
    /// Every rank sends one message to every other rank, then receives one from each,
    /// regardless of the topology. Per iteration `n * (n - 1)` messages.
    #[value(
        help = "send one message to every other rank, then receive one from each \
                    (ignores the topology)"
    )]
    AllToAll,
}

impl fmt::Display for Op {
    /// The CLI spelling: `exchange`, `reduce` or `all-to-all`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Exchange => "exchange",
            Op::Reduce => "reduce",
            Op::AllToAll => "all-to-all",
        })
    }
}

/// One step of a rank's communication phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Queue one message to this rank (returns at once unless that connection's queue is full).
    Send(usize),
    /// Wait for this iteration's message from this rank.
    Receive(usize),
}

/// What one rank does in the communication phase of one iteration: its steps, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    /// The plan of `rank` for `op` on `graph`. Panics if `rank >= graph.ranks()`.
    pub fn new(op: Op, graph: &Graph, rank: usize) -> Self {
        let steps = match op {
            Op::Exchange => {
                let neighbours = graph.neighbours(rank);
                let sends = neighbours.iter().map(|&p| Step::Send(p));
                sends
                    .chain(neighbours.iter().map(|&p| Step::Receive(p)))
                    .collect()
            }
            Op::Reduce => {
                let tree = graph.reduce_tree();
                let children = tree.children(rank).iter().map(|&c| Step::Receive(c));
                children.chain(tree.parent(rank).map(Step::Send)).collect()
            }
            Op::AllToAll => {
                let others: Vec<usize> = (0..graph.ranks()).filter(|&r| r != rank).collect();
                let sends = others.iter().map(|&p| Step::Send(p));
                sends
                    .chain(others.iter().map(|&p| Step::Receive(p)))
                    .collect()
            }
        };
        Plan { steps }
    }

    /// The ranks this plan sends to, in order.
    pub fn sends(&self) -> impl Iterator<Item = usize> + '_ {
        self.steps.iter().filter_map(|s| match s {
            Step::Send(p) => Some(*p),
            Step::Receive(_) => None,
        })
    }

    /// The ranks this plan receives from, in order.
    pub fn receives(&self) -> impl Iterator<Item = usize> + '_ {
        self.steps.iter().filter_map(|s| match s {
            Step::Receive(p) => Some(*p),
            Step::Send(_) => None,
        })
    }

    /// Every rank this plan sends to or receives from.
    pub fn partners(&self) -> BTreeSet<usize> {
        self.sends().chain(self.receives()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::topology::Topology;

    fn plans(op: Op, t: &str, n: usize) -> Vec<Plan> {
        let g = Graph::new(&t.parse::<Topology>().unwrap(), n).unwrap();
        (0..n).map(|r| Plan::new(op, &g, r)).collect()
    }

    fn total_sends(plans: &[Plan]) -> usize {
        plans.iter().map(|p| p.sends().count()).sum()
    }

    /// Every send is matched by exactly one receive at the destination, and vice versa.
    fn assert_matched(plans: &[Plan]) {
        for (from, p) in plans.iter().enumerate() {
            for to in p.sends() {
                let hits = plans[to].receives().filter(|&r| r == from).count();
                assert_eq!(hits, 1, "{from} -> {to}");
            }
            for src in p.receives() {
                assert!(
                    plans[src].sends().any(|t| t == from),
                    "{from} expects {src}"
                );
            }
        }
    }

    /// Runs one iteration of every rank's plan as the transport does (a send returns at once, a
    /// receive waits for its message) and checks that every rank finishes.
    fn assert_completes(plans: &[Plan]) {
        let n = plans.len();
        let mut next = vec![0usize; n];
        let mut sent = BTreeSet::new();
        loop {
            let mut progressed = false;
            for (rank, plan) in plans.iter().enumerate() {
                while let Some(step) = plan.steps.get(next[rank]) {
                    match *step {
                        Step::Send(to) => {
                            sent.insert((rank, to));
                        }
                        Step::Receive(from) if sent.contains(&(from, rank)) => {}
                        Step::Receive(_) => break,
                    }
                    next[rank] += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        for (rank, plan) in plans.iter().enumerate() {
            assert_eq!(next[rank], plan.steps.len(), "rank {rank} of {n} is stuck");
        }
    }

    #[test]
    fn message_counts_and_matching() {
        for n in 1..=9 {
            let mut topologies = vec![format!("mesh:1x{n}"), format!("torus:{n}x1")];
            topologies.extend(["bus", "ring", "tree", "all-to-all"].map(String::from));
            for t in topologies {
                let exchange = plans(Op::Exchange, &t, n);
                let reduce = plans(Op::Reduce, &t, n);
                let all = plans(Op::AllToAll, &t, n);
                for p in [&exchange, &reduce, &all] {
                    assert_matched(p);
                    assert_completes(p);
                }
                let g = Graph::new(&t.parse().unwrap(), n).unwrap();
                assert_eq!(total_sends(&exchange), 2 * g.edges(), "{t} n={n}");
                assert_eq!(total_sends(&reduce), n - 1, "{t} n={n}");
                assert_eq!(total_sends(&all), n * (n - 1), "{t} n={n}");
            }
        }
        assert_eq!(total_sends(&plans(Op::Exchange, "ring", 8)), 16);
    }

    #[test]
    fn reduce_plan_shape() {
        let p = plans(Op::Reduce, "tree", 7);
        use Step::{Receive, Send};
        assert_eq!(p[0].steps, [Receive(1), Receive(2)]);
        assert_eq!(p[1].steps, [Receive(3), Receive(4), Send(0)]);
        assert_eq!(p[6].steps, [Send(2)]);
        assert_eq!(p[1].partners(), BTreeSet::from([0, 3, 4]));
    }

    #[test]
    fn all_to_all_ignores_topology() {
        assert_eq!(
            plans(Op::AllToAll, "bus", 5),
            plans(Op::AllToAll, "all-to-all", 5)
        );
    }

    #[test]
    fn display_matches_cli_and_serde() {
        for op in [Op::Exchange, Op::Reduce, Op::AllToAll] {
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(json, format!("\"{op}\""));
            let cli = <Op as clap::ValueEnum>::from_str(&op.to_string(), false).unwrap();
            assert_eq!(cli, op);
        }
    }
}
