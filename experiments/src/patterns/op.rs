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

/// What one rank does in the communication phase of one iteration, in this order: receive
/// one message from each of `receive_first`, send one message to each of `send`, receive one
/// message from each of `receive_after`. All lists are sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Ranks to hear from before sending (the children in a reduction).
    pub receive_first: Vec<usize>,
    /// Ranks to send one message to.
    pub send: Vec<usize>,
    /// Ranks to hear from after sending.
    pub receive_after: Vec<usize>,
}

impl Plan {
    /// The plan of `rank` for `op` on `graph`. Panics if `rank >= graph.ranks()`.
    pub fn new(op: Op, graph: &Graph, rank: usize) -> Self {
        match op {
            Op::Exchange => {
                let neighbours = graph.neighbours(rank).to_vec();
                Plan {
                    receive_first: Vec::new(),
                    send: neighbours.clone(),
                    receive_after: neighbours,
                }
            }
            Op::Reduce => {
                let tree = graph.reduce_tree();
                Plan {
                    receive_first: tree.children(rank).to_vec(),
                    send: tree.parent(rank).into_iter().collect(),
                    receive_after: Vec::new(),
                }
            }
            Op::AllToAll => {
                let others: Vec<usize> = (0..graph.ranks()).filter(|&r| r != rank).collect();
                Plan {
                    receive_first: Vec::new(),
                    send: others.clone(),
                    receive_after: others,
                }
            }
        }
    }

    /// Every rank this plan sends to or receives from.
    pub fn partners(&self) -> BTreeSet<usize> {
        self.receive_first
            .iter()
            .chain(&self.send)
            .chain(&self.receive_after)
            .copied()
            .collect()
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
        plans.iter().map(|p| p.send.len()).sum()
    }

    /// Every send is matched by exactly one receive at the destination, and vice versa.
    fn assert_matched(plans: &[Plan]) {
        for (from, p) in plans.iter().enumerate() {
            for &to in &p.send {
                let q = &plans[to];
                let hits = q
                    .receive_first
                    .iter()
                    .chain(&q.receive_after)
                    .filter(|&&r| r == from);
                assert_eq!(hits.count(), 1, "{from} -> {to}");
            }
            for &src in p.receive_first.iter().chain(&p.receive_after) {
                assert!(plans[src].send.contains(&from), "{from} expects {src}");
            }
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
                assert_matched(&exchange);
                assert_matched(&reduce);
                assert_matched(&all);
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
        assert_eq!(
            p[0],
            Plan {
                receive_first: vec![1, 2],
                send: vec![],
                receive_after: vec![]
            }
        );
        assert_eq!(
            p[1],
            Plan {
                receive_first: vec![3, 4],
                send: vec![0],
                receive_after: vec![]
            }
        );
        assert_eq!(
            p[6],
            Plan {
                receive_first: vec![],
                send: vec![2],
                receive_after: vec![]
            }
        );
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
