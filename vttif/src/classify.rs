//! Naming an inferred topology: every known shape (bus, ring, mesh, torus, hypercube, binary
//! tree, all-to-all, star) that the inferred communication graph is, up to relabelling.
//!
//! # Approach
//!
//! On `n` nodes there are few candidates: the fixed shapes, the hypercube when `n` is a power
//! of two, and one mesh and one torus per factorisation of `n` into two or more extents. Each
//! candidate is laid out as the benchmark generator (`experiments`, `patterns::topology`) lays
//! it out and compared with the input by ever dearer tests: the edge count (from a formula,
//! before anything is built), the sorted degree sequence, the sorted multiset of per-node
//! distance profiles (how many nodes lie at each hop distance), and last petgraph's VF2
//! ([`petgraph::algo::is_isomorphic`]). Nearly every candidate fails a cheap test, so VF2
//! normally runs only to confirm a match.
//!
//! # Rules
//!
//! - The input is a simple undirected graph on nodes `0..nodes`. An edge listed twice, in
//!   either orientation, counts once. A self-loop or an endpoint `>= nodes` makes the input
//!   malformed and the answer empty: a malformed graph has no name.
//! - Every shape is connected and has at least two nodes, so the empty graph, a single node,
//!   a graph with an isolated node and a disconnected graph have no name either.
//! - A name fits when its generator produces the graph, up to relabelling, with these limits:
//!   a ring has at least 3 nodes (the generator's 2-ring is one edge), a mesh or torus has at
//!   least two extents, each at least 2 (an extent of 1 adds nothing, one extent is a bus or
//!   ring), a hypercube has dimension at least 1. So one edge on 2 nodes is a bus, a tree, an
//!   all-to-all, a star and `hypercube:1`.
//! - Mesh and torus extents are reported in descending order (`mesh:4x2`, never `mesh:2x4`):
//!   permuting the extents only relabels the nodes. Different multisets of extents can still
//!   give one graph, and each is reported: `mesh:2x2x2`, `torus:2x2x2`, `torus:4x2` and
//!   `hypercube:3` are all the 3-cube. As in the generator, an extent of 2 adds no wrap-around
//!   edge to a torus (the wrap neighbour is the other neighbour).
//!
//! # Cost
//!
//! For `n` nodes and `m` edges: `O(m log m)` to normalise the input, `O(m)` per candidate that
//! passes the edge count, and `O(n (n + m))` once for the distance profiles if any candidate
//! passes the degree test. VF2 runs only on candidates that pass every invariant and builds an
//! `n`-by-`n` bit matrix per graph, which is fine for the tens to thousands of guests VTTIF
//! sees.

use std::collections::VecDeque;
use std::fmt;

use petgraph::graph::{Graph, NodeIndex};
use petgraph::Undirected;

/// A named shape.
///
/// The variants are ordered as listed (and meshes and tori by their extents); [`classify`]
/// returns its shapes in that order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Shape {
    /// Linear chain `0 - 1 - .. - (n-1)`.
    Bus,
    /// Cycle `0 - 1 - .. - (n-1) - 0` on at least 3 nodes.
    Ring,
    /// Grid without wrap-around; extents (at least two, each at least 2) in descending order.
    Mesh(Vec<usize>),
    /// Grid with wrap-around along every extent of at least 3; extents (at least two, each at
    /// least 2) in descending order.
    Torus(Vec<usize>),
    /// Hypercube of this dimension (at least 1) on `2^dimension` nodes: nodes whose numbers
    /// differ in exactly one bit are neighbours.
    Hypercube(u32),
    /// Binary tree in heap layout: the parent of node `r > 0` is `(r - 1) / 2`.
    Tree,
    /// Complete graph: every node is a neighbour of every other node.
    AllToAll,
    /// One centre joined to every other node, and no other edge (`K(1, n-1)`).
    Star,
}

impl fmt::Display for Shape {
    /// `bus`, `ring`, `mesh:4x2`, `torus:4x4`, `hypercube:3`, `tree`, `all-to-all` or `star`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grid = |f: &mut fmt::Formatter<'_>, name: &str, extents: &[usize]| {
            f.write_str(name)?;
            for (i, e) in extents.iter().enumerate() {
                write!(f, "{}{e}", if i == 0 { ':' } else { 'x' })?;
            }
            Ok(())
        };
        match self {
            Shape::Bus => f.write_str("bus"),
            Shape::Ring => f.write_str("ring"),
            Shape::Mesh(extents) => grid(f, "mesh", extents),
            Shape::Torus(extents) => grid(f, "torus", extents),
            Shape::Hypercube(dimension) => write!(f, "hypercube:{dimension}"),
            Shape::Tree => f.write_str("tree"),
            Shape::AllToAll => f.write_str("all-to-all"),
            Shape::Star => f.write_str("star"),
        }
    }
}

impl Shape {
    /// The shape's edges on nodes `0..n`, laid out as the benchmark generator lays it out
    /// (a mesh's or torus's extents in the given order, row-major, the last varying
    /// fastest); `None` when the shape does not apply to `n` nodes under the module's rules
    /// (a ring on fewer than 3, a hypercube on a number that is not its `2^dimension`, a
    /// mesh or torus whose extents do not multiply to `n`, ...).
    pub fn edges(&self, n: usize) -> Option<Vec<(usize, usize)>> {
        layout(self, n)
    }
}

/// Every shape the graph on nodes `0..nodes` with these undirected edges is isomorphic to,
/// sorted, no duplicates.
///
/// Duplicate edges (in either orientation) count once. The result is empty when nothing fits,
/// and also when the input is malformed (a self-loop or an endpoint `>= nodes`), has fewer
/// than two nodes, or is not connected. See the module documentation for the rules. Never
/// panics.
pub fn classify(nodes: usize, edges: &[(usize, usize)]) -> Vec<Shape> {
    let Some(input) = Simple::new(nodes, edges) else {
        return Vec::new();
    };
    // Every shape is connected, which needs at least `nodes - 1` edges; checking the count
    // first also bounds `nodes` by the input's length before anything is allocated per node.
    if nodes < 2 || input.edges.len() < nodes - 1 || !input.is_connected() {
        return Vec::new();
    }
    let degrees = input.degree_sequence();
    let mut profiles = None;
    let mut graph = None;
    let mut out: Vec<Shape> = candidates(nodes)
        .into_iter()
        .filter(|shape| edge_count(shape, nodes) == Some(input.edges.len()))
        .filter(|shape| {
            let Some(candidate) = layout(shape, nodes).and_then(|e| Simple::new(nodes, &e)) else {
                return false;
            };
            candidate.degree_sequence() == degrees
                && candidate.distance_profiles()
                    == *profiles.get_or_insert_with(|| input.distance_profiles())
                && petgraph::algo::is_isomorphic(
                    &*graph.get_or_insert_with(|| input.to_petgraph()),
                    &candidate.to_petgraph(),
                )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A simple undirected graph: node count, and edges `(a, b)` with `a < b`, sorted, unique.
struct Simple {
    nodes: usize,
    edges: Vec<(usize, usize)>,
}

impl Simple {
    /// Normalises `edges`; `None` if one is a self-loop or leaves `0..nodes`.
    fn new(nodes: usize, edges: &[(usize, usize)]) -> Option<Self> {
        let mut normal = edges
            .iter()
            .map(|&(a, b)| (a != b && a < nodes && b < nodes).then(|| (a.min(b), a.max(b))))
            .collect::<Option<Vec<_>>>()?;
        normal.sort_unstable();
        normal.dedup();
        Some(Simple {
            nodes,
            edges: normal,
        })
    }

    /// Neighbour lists, indexed by node.
    fn adjacency(&self) -> Vec<Vec<usize>> {
        let mut adjacency = vec![Vec::new(); self.nodes];
        for &(a, b) in &self.edges {
            adjacency[a].push(b);
            adjacency[b].push(a);
        }
        adjacency
    }

    /// The degrees of all nodes, ascending.
    fn degree_sequence(&self) -> Vec<usize> {
        let mut degrees = vec![0; self.nodes];
        for &(a, b) in &self.edges {
            degrees[a] += 1;
            degrees[b] += 1;
        }
        degrees.sort_unstable();
        degrees
    }

    /// Whether every node is reachable from node 0 (false for no nodes).
    fn is_connected(&self) -> bool {
        self.nodes > 0 && hop_counts(&self.adjacency(), 0).iter().sum::<usize>() == self.nodes
    }

    /// For every node, how many nodes lie at hop distance 0, 1, 2, ..; sorted.
    fn distance_profiles(&self) -> Vec<Vec<usize>> {
        let adjacency = self.adjacency();
        let mut profiles: Vec<_> = (0..self.nodes)
            .map(|from| hop_counts(&adjacency, from))
            .collect();
        profiles.sort_unstable();
        profiles
    }

    /// The same graph for petgraph (indexed by `usize`, so any node count fits).
    fn to_petgraph(&self) -> Graph<(), (), Undirected, usize> {
        let mut graph = Graph::with_capacity(self.nodes, self.edges.len());
        for _ in 0..self.nodes {
            graph.add_node(());
        }
        for &(a, b) in &self.edges {
            graph.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
        }
        graph
    }
}

/// Breadth-first from `from`: entry `k` is the number of nodes at hop distance `k`.
fn hop_counts(adjacency: &[Vec<usize>], from: usize) -> Vec<usize> {
    let mut distance = vec![usize::MAX; adjacency.len()];
    let mut counts = Vec::new();
    let mut queue = VecDeque::from([from]);
    distance[from] = 0;
    while let Some(u) = queue.pop_front() {
        if counts.len() <= distance[u] {
            counts.push(0);
        }
        counts[distance[u]] += 1;
        for &v in &adjacency[u] {
            if distance[v] == usize::MAX {
                distance[v] = distance[u] + 1;
                queue.push_back(v);
            }
        }
    }
    counts
}

/// Every shape that can be laid out on `nodes >= 2` nodes, meshes and tori in canonical form.
fn candidates(nodes: usize) -> Vec<Shape> {
    let mut out = vec![Shape::Bus, Shape::Tree, Shape::AllToAll, Shape::Star];
    if nodes >= 3 {
        out.push(Shape::Ring);
    }
    if nodes.is_power_of_two() {
        out.push(Shape::Hypercube(nodes.trailing_zeros()));
    }
    for extents in factorisations(nodes, nodes) {
        if extents.len() >= 2 {
            out.push(Shape::Mesh(extents.clone()));
            out.push(Shape::Torus(extents));
        }
    }
    out
}

/// Every way to write `n` as a product of factors `>= 2`, none above `largest`, in descending
/// order; `[[]]` for `n == 1`.
fn factorisations(n: usize, largest: usize) -> Vec<Vec<usize>> {
    if n == 1 {
        return vec![Vec::new()];
    }
    let mut divisors: Vec<usize> = (2..)
        .take_while(|d| d * d <= n)
        .filter(|d| n.is_multiple_of(*d))
        .flat_map(|d| [d, n / d])
        .chain([n])
        .filter(|&d| d <= largest)
        .collect();
    divisors.sort_unstable_by(|a, b| b.cmp(a));
    divisors.dedup();
    divisors
        .into_iter()
        .flat_map(|d| {
            factorisations(n / d, d).into_iter().map(move |mut rest| {
                rest.insert(0, d);
                rest
            })
        })
        .collect()
}

/// Whether `shape` can be laid out on exactly `nodes` nodes under the module's rules.
fn fits(shape: &Shape, nodes: usize) -> bool {
    match shape {
        Shape::Bus | Shape::Tree | Shape::AllToAll | Shape::Star => nodes >= 2,
        Shape::Ring => nodes >= 3,
        Shape::Mesh(extents) | Shape::Torus(extents) => {
            extents.len() >= 2
                && extents.iter().all(|&e| e >= 2)
                && extents
                    .iter()
                    .try_fold(1usize, |p, &e| p.checked_mul(e))
                    .is_some_and(|p| p == nodes)
        }
        Shape::Hypercube(dimension) => {
            *dimension >= 1 && 1usize.checked_shl(*dimension) == Some(nodes)
        }
    }
}

/// The number of edges of `shape` on `nodes` nodes, without laying it out; `None` if it does
/// not fit or the count overflows.
fn edge_count(shape: &Shape, nodes: usize) -> Option<usize> {
    if !fits(shape, nodes) {
        return None;
    }
    match shape {
        Shape::Bus | Shape::Tree | Shape::Star => Some(nodes - 1),
        Shape::Ring => Some(nodes),
        Shape::AllToAll => nodes.checked_mul(nodes - 1).map(|e| e / 2),
        Shape::Hypercube(dimension) => Some(*dimension as usize * (nodes / 2)),
        // Along an extent `e`, each of the `nodes / e` lines has `e - 1` edges, plus the
        // wrap-around edge in a torus when `e >= 3`.
        Shape::Mesh(extents) => Some(extents.iter().map(|&e| (e - 1) * (nodes / e)).sum()),
        Shape::Torus(extents) => Some(
            extents
                .iter()
                .map(|&e| if e == 2 { 1 } else { e } * (nodes / e))
                .sum(),
        ),
    }
}

/// The edges of `shape` on nodes `0..nodes`, numbered as the benchmark generator numbers them
/// (extents of a mesh or torus in the given order, row-major, the last one varying fastest);
/// `None` if it does not fit.
fn layout(shape: &Shape, nodes: usize) -> Option<Vec<(usize, usize)>> {
    if !fits(shape, nodes) {
        return None;
    }
    let edges = match shape {
        Shape::Bus => (1..nodes).map(|r| (r - 1, r)).collect(),
        Shape::Ring => (0..nodes).map(|r| (r, (r + 1) % nodes)).collect(),
        Shape::Tree => (1..nodes).map(|r| ((r - 1) / 2, r)).collect(),
        Shape::Star => (1..nodes).map(|r| (0, r)).collect(),
        Shape::AllToAll => (0..nodes)
            .flat_map(|a| (a + 1..nodes).map(move |b| (a, b)))
            .collect(),
        Shape::Hypercube(dimension) => (0..nodes)
            .flat_map(|r| (0..*dimension).map(move |bit| (r, r ^ (1 << bit))))
            .filter(|&(a, b)| a < b)
            .collect(),
        Shape::Mesh(extents) => grid(extents, nodes, false),
        Shape::Torus(extents) => grid(extents, nodes, true),
    };
    Some(edges)
}

/// The edges of a grid with these extents (multiplying to `nodes`): one step along each
/// extent, plus the wrap-around step when `wrap` is set and the extent is at least 3.
fn grid(extents: &[usize], nodes: usize, wrap: bool) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    let mut stride = 1;
    for &extent in extents.iter().rev() {
        for r in 0..nodes {
            let coord = (r / stride) % extent;
            if coord + 1 < extent {
                edges.push((r, r + stride));
            } else if wrap && extent >= 3 {
                edges.push((r - coord * stride, r));
            }
        }
        stride *= extent;
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rng::Rng;
    use Shape::{AllToAll, Bus, Hypercube, Mesh, Ring, Star, Torus, Tree};

    /// `edges` with the nodes relabelled by a pseudo-random permutation, the edge list shuffled
    /// and some edges flipped.
    fn permuted(nodes: usize, edges: &[(usize, usize)], seed: u64) -> Vec<(usize, usize)> {
        let mut rng = Rng(seed);
        let mut label: Vec<usize> = (0..nodes).collect();
        rng.shuffle(&mut label);
        let mut out: Vec<_> = edges
            .iter()
            .map(|&(a, b)| {
                if rng.next().is_multiple_of(2) {
                    (label[a], label[b])
                } else {
                    (label[b], label[a])
                }
            })
            .collect();
        rng.shuffle(&mut out);
        out
    }

    /// The generator's graph of `shape` on `nodes` nodes.
    fn edges(shape: &Shape, nodes: usize) -> Vec<(usize, usize)> {
        layout(shape, nodes).unwrap_or_else(|| panic!("{shape} does not fit {nodes} nodes"))
    }

    /// `classify` of a relabelled copy of `shape` on `nodes` nodes.
    fn names(shape: &Shape, nodes: usize) -> Vec<Shape> {
        classify(nodes, &permuted(nodes, &edges(shape, nodes), nodes as u64))
    }

    fn neighbours(edges: &[(usize, usize)], r: usize) -> Vec<usize> {
        let mut out: Vec<_> = edges
            .iter()
            .filter_map(|&(a, b)| (a == r).then_some(b).or((b == r).then_some(a)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Every distinct ordering of `extents`.
    fn orderings(extents: &[usize]) -> Vec<Vec<usize>> {
        if extents.is_empty() {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for i in 0..extents.len() {
            let mut rest = extents.to_vec();
            let first = rest.remove(i);
            for mut tail in orderings(&rest) {
                tail.insert(0, first);
                out.push(tail);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn classify_display_names() {
        let shapes = [
            (Bus, "bus"),
            (Ring, "ring"),
            (Mesh(vec![4, 2]), "mesh:4x2"),
            (Torus(vec![4, 4]), "torus:4x4"),
            (Torus(vec![3, 2, 2]), "torus:3x2x2"),
            (Hypercube(3), "hypercube:3"),
            (Tree, "tree"),
            (AllToAll, "all-to-all"),
            (Star, "star"),
        ];
        for (shape, name) in shapes {
            assert_eq!(shape.to_string(), name);
        }
    }

    #[test]
    fn classify_layouts_match_the_benchmark_generator() {
        // The neighbour lists asserted by `experiments/src/patterns/topology.rs`.
        let torus = edges(&Torus(vec![2, 4]), 8);
        assert_eq!(neighbours(&torus, 0), [1, 3, 4]);
        assert_eq!(neighbours(&torus, 5), [1, 4, 6]);
        assert_eq!(neighbours(&torus, 7), [3, 4, 6]);
        let mesh = edges(&Mesh(vec![2, 4]), 8);
        assert_eq!(neighbours(&mesh, 0), [1, 4]);
        assert_eq!(neighbours(&mesh, 5), [1, 4, 6]);
        assert_eq!(neighbours(&mesh, 7), [3, 6]);
        assert_eq!(neighbours(&edges(&Torus(vec![3, 3]), 9), 0), [1, 2, 3, 6]);
        assert_eq!(neighbours(&edges(&Mesh(vec![3, 3]), 9), 4), [1, 3, 5, 7]);
        let cube = edges(&Hypercube(3), 8);
        assert_eq!(neighbours(&cube, 5), [1, 4, 7]);
        assert_eq!(neighbours(&cube, 7), [3, 5, 6]);
        let tree = edges(&Tree, 7);
        assert_eq!(neighbours(&tree, 1), [0, 3, 4]);
        assert_eq!(neighbours(&edges(&Tree, 6), 2), [0, 5]);
        assert_eq!(neighbours(&edges(&Ring, 4), 3), [0, 2]);
        assert_eq!(neighbours(&edges(&Bus, 4), 2), [1, 3]);
        assert_eq!(neighbours(&edges(&AllToAll, 4), 2), [0, 1, 3]);
        assert_eq!(neighbours(&edges(&Star, 4), 0), [1, 2, 3]);
        // And the formula for the edge count agrees with the layout.
        for nodes in 2..=64 {
            for shape in candidates(nodes) {
                assert_eq!(
                    edge_count(&shape, nodes),
                    Some(
                        Simple::new(nodes, &edges(&shape, nodes))
                            .unwrap()
                            .edges
                            .len()
                    ),
                    "{shape} on {nodes}"
                );
            }
        }
    }

    #[test]
    fn classify_factorisations() {
        assert_eq!(factorisations(1, 1), [Vec::<usize>::new()]);
        assert_eq!(factorisations(7, 7), [vec![7]]);
        assert_eq!(
            factorisations(12, 12),
            [vec![12], vec![6, 2], vec![4, 3], vec![3, 2, 2]]
        );
        assert_eq!(
            factorisations(16, 16),
            [
                vec![16],
                vec![8, 2],
                vec![4, 4],
                vec![4, 2, 2],
                vec![2, 2, 2, 2]
            ]
        );
    }

    #[test]
    fn classify_finds_every_generated_shape_after_relabelling() {
        for nodes in 2..=16 {
            for shape in candidates(nodes) {
                for seed in 0..4 {
                    let found = classify(nodes, &permuted(nodes, &edges(&shape, nodes), seed));
                    assert!(found.contains(&shape), "{shape} on {nodes}: {found:?}");
                    assert!(found.windows(2).all(|w| w[0] < w[1]), "{found:?}");
                }
            }
            // A mesh or torus laid out with its extents in any order has the canonical name.
            for extents in factorisations(nodes, nodes) {
                if extents.len() < 2 {
                    continue;
                }
                for order in orderings(&extents) {
                    let mesh = names(&Mesh(order.clone()), nodes);
                    assert!(mesh.contains(&Mesh(extents.clone())), "{order:?}: {mesh:?}");
                    let torus = names(&Torus(order.clone()), nodes);
                    assert!(
                        torus.contains(&Torus(extents.clone())),
                        "{order:?}: {torus:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn classify_known_coincidences() {
        let cube = vec![
            Mesh(vec![2, 2, 2]),
            Torus(vec![2, 2, 2]),
            Torus(vec![4, 2]),
            Hypercube(3),
        ];
        assert_eq!(names(&Hypercube(3), 8), cube);
        assert_eq!(names(&Torus(vec![4, 2]), 8), cube);
        assert_eq!(names(&Mesh(vec![2, 2, 2]), 8), cube);
        assert_eq!(names(&Mesh(vec![4, 2]), 8), [Mesh(vec![4, 2])]);
        let four_cube = vec![
            Mesh(vec![2, 2, 2, 2]),
            Torus(vec![2, 2, 2, 2]),
            Torus(vec![4, 2, 2]),
            Torus(vec![4, 4]),
            Hypercube(4),
        ];
        assert_eq!(names(&Torus(vec![4, 4]), 16), four_cube);
        assert_eq!(names(&Hypercube(4), 16), four_cube);
        let square = vec![Ring, Mesh(vec![2, 2]), Torus(vec![2, 2]), Hypercube(2)];
        assert_eq!(names(&Ring, 4), square);
        assert_eq!(names(&Mesh(vec![2, 2]), 4), square);
        assert_eq!(names(&AllToAll, 3), [Ring, AllToAll]);
        assert_eq!(names(&Ring, 3), [Ring, AllToAll]);
        assert_eq!(names(&Star, 4), [Star]);
        // The heap tree on 4 nodes is the path 3 - 1 - 0 - 2.
        assert_eq!(names(&Tree, 4), [Bus, Tree]);
        assert_eq!(names(&Tree, 3), [Bus, Tree, Star]);
        assert_eq!(names(&Star, 3), [Bus, Tree, Star]);
        assert_eq!(names(&Bus, 2), [Bus, Hypercube(1), Tree, AllToAll, Star]);
        // A 6-ring with one long chord is the 3x2 ladder.
        assert_eq!(
            classify(
                6,
                &permuted(6, &[edges(&Ring, 6), vec![(0, 3)]].concat(), 6)
            ),
            [Mesh(vec![3, 2])]
        );
        // C4 x C9 is both a 9x4 and a 9x2x2 torus.
        assert_eq!(
            names(&Torus(vec![9, 4]), 36),
            [Torus(vec![9, 2, 2]), Torus(vec![9, 4])]
        );
        // Everything else has exactly its own name.
        assert_eq!(names(&Tree, 7), [Tree]);
        assert_eq!(names(&Star, 9), [Star]);
        assert_eq!(names(&Torus(vec![3, 3]), 9), [Torus(vec![3, 3])]);
        assert_eq!(names(&Torus(vec![6, 6]), 36), [Torus(vec![6, 6])]);
    }

    #[test]
    fn classify_near_misses() {
        for nodes in 4..=16 {
            let ring = edges(&Ring, nodes);
            let chord = [ring.as_slice(), &[(0, 2)]].concat();
            assert_eq!(classify(nodes, &permuted(nodes, &chord, 1)), [], "{nodes}");
            let broken: Vec<_> = ring.iter().copied().filter(|&e| e != (2, 3)).collect();
            let found = classify(nodes, &permuted(nodes, &broken, 2));
            assert!(found.contains(&Bus), "{nodes}: {found:?}");
            if nodes >= 5 {
                assert_eq!(found, [Bus], "{nodes}");
            }
        }
    }

    #[test]
    fn classify_disconnected_and_empty_graphs() {
        let two_rings = [edges(&Ring, 5), edges(&Ring, 5)]
            .concat()
            .into_iter()
            .enumerate()
            .map(|(i, (a, b))| if i < 5 { (a, b) } else { (a + 5, b + 5) })
            .collect::<Vec<_>>();
        assert_eq!(classify(10, &two_rings), []);
        // A ring plus an isolated node.
        assert_eq!(classify(6, &edges(&Ring, 5)), []);
        assert_eq!(classify(0, &[]), []);
        assert_eq!(classify(1, &[]), []);
        assert_eq!(classify(5, &[]), []);
        assert_eq!(classify(usize::MAX, &[(0, 1)]), []);
    }

    #[test]
    fn classify_bad_input() {
        let ring = edges(&Ring, 5);
        assert_eq!(classify(5, &[ring.as_slice(), &[(2, 2)]].concat()), []);
        assert_eq!(classify(5, &[ring.as_slice(), &[(4, 5)]].concat()), []);
        assert_eq!(classify(5, &[(0, usize::MAX)]), []);
        assert_eq!(classify(4, &ring), []);
        // Duplicates, in either orientation, count once.
        let doubled = [ring.as_slice(), &[(1, 0), (0, 1), (4, 0)]].concat();
        assert_eq!(classify(5, &doubled), [Ring]);
    }

    #[test]
    fn classify_random_graphs_never_panic_and_answer_sorted() {
        let mut rng = Rng(42);
        for _ in 0..2000 {
            let mut below = |n: usize| usize::try_from(rng.below(n as u64)).unwrap();
            let nodes = below(9);
            let count = below(20);
            let edges: Vec<_> = (0..count)
                .map(|_| (below(nodes + 1), below(nodes + 1)))
                .collect();
            let found = classify(nodes, &edges);
            assert!(found.windows(2).all(|w| w[0] < w[1]), "{found:?}");
            for shape in &found {
                assert_eq!(
                    edge_count(shape, nodes),
                    Some(Simple::new(nodes, &edges).unwrap().edges.len())
                );
            }
        }
    }

    #[test]
    fn classify_large_graphs() {
        assert_eq!(names(&AllToAll, 64), [AllToAll]);
        let six_cube = names(&Hypercube(6), 64);
        for shape in [
            Torus(vec![4, 4, 4]),
            Torus(vec![4, 4, 2, 2]),
            Mesh(vec![2; 6]),
            Hypercube(6),
        ] {
            assert!(six_cube.contains(&shape), "{shape}: {six_cube:?}");
        }
        assert_eq!(
            names(&Torus(vec![8, 4]), 32),
            [Torus(vec![8, 2, 2]), Torus(vec![8, 4])]
        );
        assert_eq!(names(&Mesh(vec![8, 8]), 64), [Mesh(vec![8, 8])]);
        assert_eq!(names(&Tree, 63), [Tree]);
    }
}
