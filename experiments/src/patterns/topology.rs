//! Application topologies: which ranks are neighbours, and the spanning tree used by reductions.
//!
//! Everything here is pure: a [`Topology`] plus a number of ranks `n` determines a [`Graph`]
//! (undirected, no self-loops, no duplicate edges) and, from it, the [`SpanningTree`] rooted at
//! rank 0 along which `reduce` sends.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// An application topology over ranks `0..n`.
///
/// Multi-dimensional ranks use row-major coordinates: for dimensions `[d0, d1, .., dk]` the
/// rank of coordinates `(c0, c1, .., ck)` is `((c0 * d1 + c1) * d2 + c2) ...`, i.e. the last
/// dimension varies fastest. `mesh:4x2` therefore has 4 rows of 2 ranks: `0-1`, `2-3`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Linear chain (bus) `0 - 1 - .. - (n-1)`.
    Bus,
    /// Ring `0 - 1 - .. - (n-1) - 0`.
    Ring,
    /// n-dimensional mesh without wrap-around; the extents must multiply to `n`.
    Mesh(Vec<usize>),
    /// n-dimensional torus (a mesh with wrap-around); the extents must multiply to `n`.
    Torus(Vec<usize>),
    /// Hypercube of dimension `log2(n)`: ranks whose numbers differ in exactly one bit are
    /// neighbours. `n` must be a power of two.
    Hypercube,
    /// Binary tree in heap layout: the parent of rank `r > 0` is `(r - 1) / 2`, its children
    /// are `2r + 1` and `2r + 2` (when `< n`).
    Tree,
    /// Complete graph: every rank is a neighbour of every other rank.
    AllToAll,
}

/// Why a topology string is malformed or does not fit the number of ranks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The name is not one of the known topologies.
    #[error(
        "unknown topology `{0}` (expected bus, ring, mesh:AxB.., torus:AxB.., hypercube, tree \
         or all-to-all)"
    )]
    Unknown(String),
    /// The dimension list of a mesh or torus is malformed.
    #[error("bad dimensions `{0}` (expected extents >= 1 separated by `x`, e.g. 4x2)")]
    BadDims(String),
    /// The extents of a mesh or torus do not multiply to the number of ranks.
    #[error(
        "{topology} has {positions} positions but there are {n} ranks (the dimensions must \
         multiply to the number of ranks)"
    )]
    DimsMismatch {
        /// The topology, as written.
        topology: String,
        /// The product of its extents.
        positions: u128,
        /// The number of ranks.
        n: usize,
    },
    /// A hypercube was requested for a number of ranks that is not a power of two.
    #[error("hypercube needs a power-of-two number of ranks, got {0}")]
    NotPowerOfTwo(usize),
    /// There are no ranks at all.
    #[error("a topology needs at least one rank")]
    NoRanks,
    /// A rank number is not below the number of ranks.
    #[error("rank {rank} out of range for {n} ranks")]
    RankOutOfRange {
        /// The offending rank.
        rank: usize,
        /// The number of ranks.
        n: usize,
    },
}

impl Topology {
    /// Checks that this topology can be laid out over exactly `n` ranks.
    ///
    /// # Errors
    /// [`TopologyError::NoRanks`] for `n == 0`, [`TopologyError::DimsMismatch`] when mesh/torus
    /// extents do not multiply to `n`, [`TopologyError::NotPowerOfTwo`] for a hypercube.
    pub fn check(&self, n: usize) -> Result<(), TopologyError> {
        if n == 0 {
            return Err(TopologyError::NoRanks);
        }
        match self {
            Topology::Mesh(dims) | Topology::Torus(dims) => {
                let positions = dims.iter().fold(1u128, |p, &d| p.saturating_mul(d as u128));
                if positions == n as u128 {
                    Ok(())
                } else {
                    Err(TopologyError::DimsMismatch {
                        topology: self.to_string(),
                        positions,
                        n,
                    })
                }
            }
            Topology::Hypercube if !n.is_power_of_two() => Err(TopologyError::NotPowerOfTwo(n)),
            _ => Ok(()),
        }
    }

    /// The neighbours of `rank` in this topology over `n` ranks, sorted ascending, without
    /// duplicates and never containing `rank` itself.
    ///
    /// The relation is symmetric: `b ∈ neighbours(a)` iff `a ∈ neighbours(b)`.
    ///
    /// # Errors
    /// Everything [`Topology::check`] rejects, and [`TopologyError::RankOutOfRange`] when
    /// `rank >= n`.
    pub fn neighbours(&self, rank: usize, n: usize) -> Result<Vec<usize>, TopologyError> {
        self.check(n)?;
        if rank >= n {
            return Err(TopologyError::RankOutOfRange { rank, n });
        }
        let mut out = match self {
            Topology::Bus => {
                let mut v = Vec::with_capacity(2);
                if rank > 0 {
                    v.push(rank - 1);
                }
                if rank + 1 < n {
                    v.push(rank + 1);
                }
                v
            }
            Topology::Ring => vec![(rank + n - 1) % n, (rank + 1) % n],
            Topology::Mesh(dims) => grid_neighbours(dims, rank, false),
            Topology::Torus(dims) => grid_neighbours(dims, rank, true),
            Topology::Hypercube => (0..n.trailing_zeros())
                .map(|bit| rank ^ (1 << bit))
                .collect(),
            Topology::Tree => {
                let mut v = Vec::with_capacity(3);
                if rank > 0 {
                    v.push((rank - 1) / 2);
                }
                v.extend((1..=2).map(|k| 2 * rank + k).filter(|&c| c < n));
                v
            }
            Topology::AllToAll => (0..n).filter(|&r| r != rank).collect(),
        };
        out.retain(|&r| r != rank);
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// Neighbours of `rank` in a grid of extents `dims` (whose product is the number of ranks),
/// one step along each dimension, wrapping around when `wrap` is set. May contain duplicates
/// and `rank` itself (extents 1 and 2 with wrap-around); the caller normalises.
fn grid_neighbours(dims: &[usize], rank: usize, wrap: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(2 * dims.len());
    // Stride of dimension i = product of the extents after it (last dimension fastest).
    let mut stride = 1;
    for &extent in dims.iter().rev() {
        let coord = (rank / stride) % extent;
        let base = rank - coord * stride;
        if coord > 0 {
            out.push(base + (coord - 1) * stride);
        } else if wrap {
            out.push(base + (extent - 1) * stride);
        }
        if coord + 1 < extent {
            out.push(base + (coord + 1) * stride);
        } else if wrap {
            out.push(base);
        }
        stride *= extent;
    }
    out
}

impl fmt::Display for Topology {
    /// The canonical spelling accepted by [`FromStr`], e.g. `ring` or `torus:4x2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims = |f: &mut fmt::Formatter<'_>, name: &str, dims: &[usize]| {
            write!(f, "{name}:")?;
            for (i, d) in dims.iter().enumerate() {
                if i > 0 {
                    f.write_str("x")?;
                }
                write!(f, "{d}")?;
            }
            Ok(())
        };
        match self {
            Topology::Bus => f.write_str("bus"),
            Topology::Ring => f.write_str("ring"),
            Topology::Mesh(d) => dims(f, "mesh", d),
            Topology::Torus(d) => dims(f, "torus", d),
            Topology::Hypercube => f.write_str("hypercube"),
            Topology::Tree => f.write_str("tree"),
            Topology::AllToAll => f.write_str("all-to-all"),
        }
    }
}

impl FromStr for Topology {
    type Err = TopologyError;

    /// Parses `bus`, `ring`, `mesh:D0xD1..`, `torus:D0xD1..`, `hypercube`, `tree` or
    /// `all-to-all` (case-insensitive). Extents must be at least 1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, dims) = match lower.split_once(':') {
            Some((name, dims)) => (name, Some(dims)),
            None => (lower.as_str(), None),
        };
        let parse_dims = |dims: &str| -> Result<Vec<usize>, TopologyError> {
            dims.split('x')
                .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d >= 1))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| TopologyError::BadDims(dims.to_string()))
        };
        match (name, dims) {
            ("bus", None) => Ok(Topology::Bus),
            ("ring", None) => Ok(Topology::Ring),
            ("hypercube", None) => Ok(Topology::Hypercube),
            ("tree", None) => Ok(Topology::Tree),
            ("all-to-all", None) => Ok(Topology::AllToAll),
            ("mesh", Some(d)) => Ok(Topology::Mesh(parse_dims(d)?)),
            ("torus", Some(d)) => Ok(Topology::Torus(parse_dims(d)?)),
            _ => Err(TopologyError::Unknown(s.to_string())),
        }
    }
}

/// The undirected communication graph of a [`Topology`] over a fixed number of ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    adjacency: Vec<Vec<usize>>,
}

impl Graph {
    /// Lays `topology` out over `n` ranks.
    ///
    /// # Errors
    /// Everything [`Topology::check`] rejects.
    pub fn new(topology: &Topology, n: usize) -> Result<Self, TopologyError> {
        topology.check(n)?;
        let adjacency = (0..n)
            .map(|rank| topology.neighbours(rank, n))
            .collect::<Result<_, _>>()?;
        Ok(Graph { adjacency })
    }

    /// Number of ranks (vertices).
    pub fn ranks(&self) -> usize {
        self.adjacency.len()
    }

    /// Neighbours of `rank`, sorted ascending. Panics if `rank >= self.ranks()`.
    pub fn neighbours(&self, rank: usize) -> &[usize] {
        &self.adjacency[rank]
    }

    /// Number of undirected edges.
    pub fn edges(&self) -> usize {
        self.adjacency.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// The breadth-first spanning tree rooted at rank 0, visiting neighbours in ascending
    /// order: the parent of every other rank is the first-discovered of its neighbours that is
    /// one hop closer to rank 0. The tree only uses edges of the topology and has minimum
    /// depth (every rank sits at its hop distance from rank 0). Examples: `tree` gives
    /// the heap tree itself, `bus` the chain, `all-to-all` a star, `hypercube` the binomial
    /// tree (parent = rank with its highest set bit cleared).
    ///
    /// All topologies of this module are connected, so every rank other than 0 has a parent.
    pub fn reduce_tree(&self) -> SpanningTree {
        let n = self.ranks();
        let mut parent = vec![None; n];
        let mut children = vec![Vec::new(); n];
        let mut seen = vec![false; n];
        let mut queue = VecDeque::new();
        if n > 0 {
            seen[0] = true;
            queue.push_back(0);
        }
        while let Some(u) = queue.pop_front() {
            for &v in &self.adjacency[u] {
                if !seen[v] {
                    seen[v] = true;
                    parent[v] = Some(u);
                    children[u].push(v);
                    queue.push_back(v);
                }
            }
        }
        SpanningTree { parent, children }
    }
}

/// A spanning tree rooted at rank 0 (see [`Graph::reduce_tree`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanningTree {
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
}

impl SpanningTree {
    /// The parent of `rank`, `None` for the root (rank 0). Panics if `rank` is out of range.
    pub fn parent(&self, rank: usize) -> Option<usize> {
        self.parent[rank]
    }

    /// The children of `rank`, sorted ascending. Panics if `rank` is out of range.
    pub fn children(&self, rank: usize) -> &[usize] {
        &self.children[rank]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nb(t: &str, rank: usize, n: usize) -> Vec<usize> {
        t.parse::<Topology>().unwrap().neighbours(rank, n).unwrap()
    }

    fn graph(t: &str, n: usize) -> Graph {
        Graph::new(&t.parse().unwrap(), n).unwrap()
    }

    /// Every (topology, n) combination the property tests sweep.
    fn all_graphs() -> Vec<(String, Graph)> {
        let mut out = Vec::new();
        for n in 1..=17 {
            for t in ["bus", "ring", "tree", "all-to-all"] {
                out.push((format!("{t}/{n}"), graph(t, n)));
            }
            out.push((format!("mesh:{n}"), graph(&format!("mesh:{n}"), n)));
            out.push((format!("torus:{n}"), graph(&format!("torus:{n}"), n)));
            if n.is_power_of_two() {
                out.push((format!("hypercube/{n}"), graph("hypercube", n)));
            }
            for a in 1..=n {
                if n % a == 0 {
                    let dims = format!("{a}x{}", n / a);
                    out.push((format!("mesh:{dims}"), graph(&format!("mesh:{dims}"), n)));
                    out.push((format!("torus:{dims}"), graph(&format!("torus:{dims}"), n)));
                }
            }
        }
        for dims in ["2x2x2", "3x2x2", "2x3x4", "3x3x3", "1x4x1"] {
            let n = dims
                .split('x')
                .map(|d| d.parse::<usize>().unwrap())
                .product();
            out.push((format!("mesh:{dims}"), graph(&format!("mesh:{dims}"), n)));
            out.push((format!("torus:{dims}"), graph(&format!("torus:{dims}"), n)));
        }
        out
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "bus",
            "ring",
            "mesh:4x2",
            "torus:2x2x2",
            "mesh:8",
            "hypercube",
            "tree",
            "all-to-all",
        ] {
            let t: Topology = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            "Torus:4X2".parse::<Topology>().unwrap(),
            Topology::Torus(vec![4, 2])
        );
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            "star".parse::<Topology>(),
            Err(TopologyError::Unknown(_))
        ));
        assert!(matches!(
            "ring:4".parse::<Topology>(),
            Err(TopologyError::Unknown(_))
        ));
        assert!(matches!(
            "mesh".parse::<Topology>(),
            Err(TopologyError::Unknown(_))
        ));
        for bad in ["mesh:", "mesh:4x", "mesh:0x2", "torus:a", "torus:4x-1"] {
            assert!(
                matches!(bad.parse::<Topology>(), Err(TopologyError::BadDims(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn size_constraints() {
        let err = "mesh:4x3"
            .parse::<Topology>()
            .unwrap()
            .check(8)
            .unwrap_err();
        assert_eq!(
            err,
            TopologyError::DimsMismatch {
                topology: "mesh:4x3".into(),
                positions: 12,
                n: 8
            }
        );
        assert!(err
            .to_string()
            .contains("mesh:4x3 has 12 positions but there are 8 ranks"));
        assert_eq!(
            Topology::Hypercube.check(6),
            Err(TopologyError::NotPowerOfTwo(6))
        );
        assert_eq!(Topology::Ring.check(0), Err(TopologyError::NoRanks));
        assert_eq!(Graph::new(&Topology::Ring, 0), Err(TopologyError::NoRanks));
        assert_eq!(
            Topology::Ring.neighbours(5, 5),
            Err(TopologyError::RankOutOfRange { rank: 5, n: 5 })
        );
        let huge = Topology::Torus(vec![usize::MAX, usize::MAX, usize::MAX, 2]);
        assert!(matches!(
            huge.check(4),
            Err(TopologyError::DimsMismatch { .. })
        ));
    }

    #[test]
    fn known_small_cases() {
        // Bus and ring.
        assert_eq!(nb("bus", 0, 4), [1]);
        assert_eq!(nb("bus", 2, 4), [1, 3]);
        assert_eq!(nb("bus", 3, 4), [2]);
        assert_eq!(nb("ring", 0, 4), [1, 3]);
        assert_eq!(nb("ring", 3, 4), [0, 2]);
        assert_eq!(nb("ring", 0, 2), [1]);
        assert!(nb("ring", 0, 1).is_empty());
        // 2x4 torus: ranks 0..3 in row 0, 4..7 in row 1; the 2-extent wraps onto itself.
        assert_eq!(nb("torus:2x4", 0, 8), [1, 3, 4]);
        assert_eq!(nb("torus:2x4", 5, 8), [1, 4, 6]);
        assert_eq!(nb("torus:2x4", 7, 8), [3, 4, 6]);
        // Same shape as a mesh: no wrap-around.
        assert_eq!(nb("mesh:2x4", 0, 8), [1, 4]);
        assert_eq!(nb("mesh:2x4", 5, 8), [1, 4, 6]);
        assert_eq!(nb("mesh:2x4", 7, 8), [3, 6]);
        // 3x3 torus vs mesh corner.
        assert_eq!(nb("torus:3x3", 0, 9), [1, 2, 3, 6]);
        assert_eq!(nb("mesh:3x3", 0, 9), [1, 3]);
        assert_eq!(nb("mesh:3x3", 4, 9), [1, 3, 5, 7]);
        // 3-cube.
        assert_eq!(nb("hypercube", 0, 8), [1, 2, 4]);
        assert_eq!(nb("hypercube", 5, 8), [1, 4, 7]);
        assert_eq!(nb("hypercube", 7, 8), [3, 5, 6]);
        assert!(nb("hypercube", 0, 1).is_empty());
        // Heap-layout binary tree.
        assert_eq!(nb("tree", 0, 7), [1, 2]);
        assert_eq!(nb("tree", 1, 7), [0, 3, 4]);
        assert_eq!(nb("tree", 2, 6), [0, 5]);
        assert_eq!(nb("tree", 6, 7), [2]);
        // All-to-all.
        assert_eq!(nb("all-to-all", 2, 4), [0, 1, 3]);
    }

    #[test]
    fn neighbour_lists_are_sorted_symmetric_and_loop_free() {
        for (name, g) in all_graphs() {
            for a in 0..g.ranks() {
                let list = g.neighbours(a);
                assert!(
                    list.windows(2).all(|w| w[0] < w[1]),
                    "{name}: {a} -> {list:?}"
                );
                assert!(!list.contains(&a), "{name}: self-loop at {a}");
                for &b in list {
                    assert!(b < g.ranks(), "{name}");
                    assert!(
                        g.neighbours(b).contains(&a),
                        "{name}: {a}->{b} not symmetric"
                    );
                }
            }
        }
    }

    #[test]
    fn degrees_and_edge_counts() {
        for n in 3..=12 {
            let ring = graph("ring", n);
            assert!((0..n).all(|r| ring.neighbours(r).len() == 2));
            assert_eq!(ring.edges(), n);
            assert_eq!(graph("bus", n).edges(), n - 1);
            assert_eq!(graph("tree", n).edges(), n - 1);
            assert_eq!(graph("all-to-all", n).edges(), n * (n - 1) / 2);
        }
        for d in 0..=5u32 {
            let n = 1usize << d;
            let cube = graph("hypercube", n);
            assert!((0..n).all(|r| cube.neighbours(r).len() == d as usize));
            assert_eq!(cube.edges(), n * d as usize / 2);
        }
        // A torus with all extents >= 3 is 2k-regular; a mesh a x b has 2ab - a - b edges.
        let t = graph("torus:3x4x5", 60);
        assert!((0..60).all(|r| t.neighbours(r).len() == 6));
        assert_eq!(graph("mesh:3x4", 12).edges(), 2 * 12 - 3 - 4);
        assert_eq!(graph("torus:2x4", 8).edges(), 12);
    }

    #[test]
    fn equivalent_topologies() {
        for n in 1..=12 {
            // 1-D torus is the ring, 1-D mesh is the bus.
            assert_eq!(graph(&format!("torus:{n}"), n), graph("ring", n), "n={n}");
            assert_eq!(graph(&format!("mesh:{n}"), n), graph("bus", n), "n={n}");
            // Extents of 1 change nothing.
            assert_eq!(
                graph(&format!("torus:1x{n}x1"), n),
                graph("ring", n),
                "n={n}"
            );
        }
        // The 2x2x2 torus (and mesh) is the 3-cube, bit by bit.
        assert_eq!(graph("torus:2x2x2", 8), graph("hypercube", 8));
        assert_eq!(graph("mesh:2x2x2x2", 16), graph("hypercube", 16));
        // Mesh is a subgraph of the torus of the same shape.
        let (m, t) = (graph("mesh:3x4", 12), graph("torus:3x4", 12));
        for r in 0..12 {
            assert!(m.neighbours(r).iter().all(|x| t.neighbours(r).contains(x)));
        }
    }

    #[test]
    fn reduce_tree_is_a_bfs_spanning_tree_of_the_topology() {
        for (name, g) in all_graphs() {
            let tree = g.reduce_tree();
            assert_eq!(tree.parent(0), None, "{name}");
            // Hop distance from 0, by plain BFS.
            let mut dist = vec![usize::MAX; g.ranks()];
            dist[0] = 0;
            let mut queue = VecDeque::from([0]);
            while let Some(u) = queue.pop_front() {
                for &v in g.neighbours(u) {
                    if dist[v] == usize::MAX {
                        dist[v] = dist[u] + 1;
                        queue.push_back(v);
                    }
                }
            }
            let mut child_count = 0;
            for r in 0..g.ranks() {
                let kids = tree.children(r);
                child_count += kids.len();
                assert!(kids.windows(2).all(|w| w[0] < w[1]), "{name}");
                for &c in kids {
                    assert_eq!(tree.parent(c), Some(r), "{name}");
                }
                if r > 0 {
                    let p = tree
                        .parent(r)
                        .unwrap_or_else(|| panic!("{name}: {r} orphan"));
                    assert!(
                        g.neighbours(r).contains(&p),
                        "{name}: tree edge not in topology"
                    );
                    assert!(tree.children(p).contains(&r), "{name}");
                    assert_eq!(dist[p] + 1, dist[r], "{name}: not a shortest-path tree");
                }
            }
            assert_eq!(child_count, g.ranks() - 1, "{name}");
        }
    }

    #[test]
    fn reduce_tree_known_shapes() {
        let t = graph("tree", 10).reduce_tree();
        assert!((1..10).all(|r| t.parent(r) == Some((r - 1) / 2)));
        let b = graph("bus", 6).reduce_tree();
        assert!((1..6).all(|r| b.parent(r) == Some(r - 1)));
        let star = graph("all-to-all", 5).reduce_tree();
        assert_eq!(star.children(0), [1, 2, 3, 4]);
        assert!((1..5).all(|r| star.children(r).is_empty()));
        for n in [2, 4, 8, 16, 32] {
            let cube = graph("hypercube", n).reduce_tree();
            for r in 1..n {
                let highest = 1 << (usize::BITS - 1 - r.leading_zeros());
                assert_eq!(cube.parent(r), Some(r & !highest), "n={n} r={r}");
            }
        }
        let ring = graph("ring", 8).reduce_tree();
        let parents: Vec<_> = (1..8).map(|r| ring.parent(r).unwrap()).collect();
        assert_eq!(parents, [0, 1, 2, 3, 6, 7, 0]);
    }
}
