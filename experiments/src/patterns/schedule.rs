//! Topology schedules: which topology is in effect at each iteration.

use std::fmt;
use std::str::FromStr;

use super::topology::{Topology, TopologyError};

/// Which topology is in effect at each iteration of a run.
///
/// Textual forms (see [`FromStr`]):
/// - `TOPOLOGY`: that topology for every iteration, e.g. `ring` or `torus:4x2`;
/// - `START:TOPOLOGY,START:TOPOLOGY,..`: phases, each from its start iteration up to the next
///   phase's start, e.g. `0:ring,50:all-to-all`. The first start must be 0 and starts must be
///   strictly increasing;
/// - `alternate:TOPOLOGY,TOPOLOGY,..:PERIOD`: cycle through the listed topologies (at least
///   two), switching every `PERIOD` iterations, e.g. `alternate:ring,all-to-all:10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    topologies: Vec<Topology>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `starts[i]` is the first iteration of `topologies[i]`; `starts[0] == 0`, increasing.
    Phases { starts: Vec<u64> },
    /// `topologies[(iteration / period) % len]`, `period >= 1`.
    Alternate { period: u64 },
}

/// Why a schedule string is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A phase is not of the form `START:TOPOLOGY`.
    #[error("bad phase `{0}` (expected START:TOPOLOGY, e.g. 50:all-to-all)")]
    BadPhase(String),
    /// The first phase does not start at iteration 0.
    #[error("the first phase must start at iteration 0, not {0}")]
    FirstStart(u64),
    /// Phase starts are not strictly increasing.
    #[error("phase starts must be strictly increasing ({0} follows {1})")]
    NotIncreasing(u64, u64),
    /// An `alternate:` schedule is malformed.
    #[error(
        "bad alternation `{0}` (expected alternate:TOPOLOGY,TOPOLOGY,..:PERIOD with at least two \
         topologies and PERIOD >= 1, e.g. alternate:ring,all-to-all:10)"
    )]
    BadAlternate(String),
    /// A topology inside the schedule is malformed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

impl Schedule {
    /// The same topology for every iteration.
    pub fn constant(topology: Topology) -> Self {
        Schedule {
            topologies: vec![topology],
            kind: Kind::Phases { starts: vec![0] },
        }
    }

    /// The distinct phases' topologies, in schedule order (a topology may appear more than
    /// once). [`Schedule::index_at`] indexes into this slice.
    pub fn topologies(&self) -> &[Topology] {
        &self.topologies
    }

    /// Index into [`Schedule::topologies`] of the topology in effect at `iteration`.
    pub fn index_at(&self, iteration: u64) -> usize {
        match &self.kind {
            // starts[0] == 0, so at least one start is <= iteration.
            Kind::Phases { starts } => starts.partition_point(|&s| s <= iteration) - 1,
            Kind::Alternate { period } => {
                let len = self.topologies.len() as u64;
                // The remainder is < len, which came from a usize.
                usize::try_from((iteration / period) % len).unwrap_or(0)
            }
        }
    }

    /// The topology in effect at `iteration`.
    pub fn topology_at(&self, iteration: u64) -> &Topology {
        &self.topologies[self.index_at(iteration)]
    }

    /// Indices into [`Schedule::topologies`] of the entries in effect for at least one of the
    /// iterations `0..iterations`, ascending.
    pub fn used(&self, iterations: u64) -> Vec<usize> {
        (0..self.topologies.len())
            .filter(|&i| {
                let first = match &self.kind {
                    Kind::Phases { starts } => Some(starts[i]),
                    Kind::Alternate { period } => (i as u64).checked_mul(*period),
                };
                first.is_some_and(|first| first < iterations)
            })
            .collect()
    }
}

impl fmt::Display for Schedule {
    /// The canonical form accepted by [`FromStr`]; a constant schedule is just its topology.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Phases { starts } if starts.len() == 1 => write!(f, "{}", self.topologies[0]),
            Kind::Phases { starts } => {
                for (i, (start, t)) in starts.iter().zip(&self.topologies).enumerate() {
                    let sep = if i > 0 { "," } else { "" };
                    write!(f, "{sep}{start}:{t}")?;
                }
                Ok(())
            }
            Kind::Alternate { period } => {
                f.write_str("alternate:")?;
                for (i, t) in self.topologies.iter().enumerate() {
                    let sep = if i > 0 { "," } else { "" };
                    write!(f, "{sep}{t}")?;
                }
                write!(f, ":{period}")
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// Parses the forms documented on [`Schedule`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("alternate:") {
            let bad = || ScheduleError::BadAlternate(s.to_string());
            let (list, period) = rest.rsplit_once(':').ok_or_else(bad)?;
            let period = period
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&p| p >= 1)
                .ok_or_else(bad)?;
            let topologies = list
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<Topology>, _>>()?;
            if topologies.len() < 2 {
                return Err(bad());
            }
            return Ok(Schedule {
                topologies,
                kind: Kind::Alternate { period },
            });
        }
        let starts_with_number = s
            .split_once(':')
            .is_some_and(|(head, _)| head.trim().parse::<u64>().is_ok());
        if !starts_with_number {
            return Ok(Schedule::constant(s.parse()?));
        }
        let mut starts = Vec::new();
        let mut topologies = Vec::new();
        for phase in s.split(',') {
            let (start, topology) = phase
                .split_once(':')
                .and_then(|(start, t)| Some((start.trim().parse::<u64>().ok()?, t)))
                .ok_or_else(|| ScheduleError::BadPhase(phase.to_string()))?;
            match starts.last() {
                None if start != 0 => return Err(ScheduleError::FirstStart(start)),
                Some(&prev) if start <= prev => {
                    return Err(ScheduleError::NotIncreasing(start, prev))
                }
                _ => {}
            }
            starts.push(start);
            topologies.push(topology.parse()?);
        }
        Ok(Schedule {
            topologies,
            kind: Kind::Phases { starts },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(s: &str) -> Schedule {
        s.parse().unwrap()
    }

    #[test]
    fn constant() {
        let s = sched("torus:4x2");
        assert_eq!(s, Schedule::constant(Topology::Torus(vec![4, 2])));
        assert_eq!(s.to_string(), "torus:4x2");
        assert_eq!(s.topology_at(0), &Topology::Torus(vec![4, 2]));
        assert_eq!(s.index_at(u64::MAX), 0);
        assert_eq!(s.used(10), [0]);
        assert!(s.used(0).is_empty());
    }

    #[test]
    fn phases() {
        let s = sched("0:ring,50:all-to-all,80:mesh:2x2");
        assert_eq!(s.to_string(), "0:ring,50:all-to-all,80:mesh:2x2");
        assert_eq!(s.topology_at(0), &Topology::Ring);
        assert_eq!(s.topology_at(49), &Topology::Ring);
        assert_eq!(s.topology_at(50), &Topology::AllToAll);
        assert_eq!(s.topology_at(79), &Topology::AllToAll);
        assert_eq!(s.topology_at(80), &Topology::Mesh(vec![2, 2]));
        assert_eq!(s.topology_at(u64::MAX), &Topology::Mesh(vec![2, 2]));
        assert_eq!(s.used(50), [0]);
        assert_eq!(s.used(51), [0, 1]);
        assert_eq!(s.used(1000), [0, 1, 2]);
        // A single explicit phase displays as the bare topology and parses back equal.
        assert_eq!(sched("0:tree"), sched("tree"));
    }

    #[test]
    fn alternate() {
        let s = sched("alternate:ring,all-to-all:10");
        assert_eq!(s.to_string(), "alternate:ring,all-to-all:10");
        let at = |i| s.topology_at(i).clone();
        assert_eq!(at(0), Topology::Ring);
        assert_eq!(at(9), Topology::Ring);
        assert_eq!(at(10), Topology::AllToAll);
        assert_eq!(at(19), Topology::AllToAll);
        assert_eq!(at(20), Topology::Ring);
        assert_eq!(s.used(10), [0]);
        assert_eq!(s.used(11), [0, 1]);
        let three = sched("alternate:mesh:2x2,torus:2x2,ring:1");
        assert_eq!(three.topologies().len(), 3);
        assert_eq!(
            (0..6).map(|i| three.index_at(i)).collect::<Vec<_>>(),
            [0, 1, 2, 0, 1, 2]
        );
        assert_eq!(sched("alternate:ring,tree:1").used(u64::MAX), [0, 1]);
        let huge = sched(&format!("alternate:ring,tree:{}", u64::MAX));
        assert_eq!(huge.used(u64::MAX), [0]);
    }

    #[test]
    fn errors() {
        let err = |s: &str| s.parse::<Schedule>().unwrap_err();
        assert_eq!(err("10:ring,50:tree"), ScheduleError::FirstStart(10));
        assert_eq!(
            err("0:ring,50:tree,50:bus"),
            ScheduleError::NotIncreasing(50, 50)
        );
        assert!(matches!(err("0:ring,tree"), ScheduleError::BadPhase(_)));
        assert!(matches!(err("0:ring,x:tree"), ScheduleError::BadPhase(_)));
        assert!(matches!(
            err("0:star"),
            ScheduleError::Topology(TopologyError::Unknown(_))
        ));
        assert!(matches!(err("ring,tree"), ScheduleError::Topology(_)));
        assert!(matches!(
            err("alternate:ring,tree"),
            ScheduleError::BadAlternate(_)
        ));
        assert!(matches!(
            err("alternate:ring,tree:0"),
            ScheduleError::BadAlternate(_)
        ));
        assert!(matches!(
            err("alternate:ring:5"),
            ScheduleError::BadAlternate(_)
        ));
        assert!(matches!(
            err("alternate:ring,mesh:2y2:5"),
            ScheduleError::Topology(_)
        ));
    }
}
