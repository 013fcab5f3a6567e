//! A bounded ring of records: a burst of traffic faster than the reader can never take more
//! than its capacity; what does not fit is dropped, by a policy, and counted.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// What a full ring does with one more item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DropPolicy {
    /// Drop the oldest item to make room (the newest traffic matters most to an estimate
    /// that ages; the default).
    #[default]
    DropOldest,
    /// Drop the new item (keeps whole trains that were already in).
    DropNewest,
}

/// A bounded FIFO with a drop policy and counters.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    policy: DropPolicy,
    pushed: u64,
    dropped: u64,
}

impl<T> Ring<T> {
    /// An empty ring holding at most `capacity` items (at least 1).
    pub fn new(capacity: usize, policy: DropPolicy) -> Self {
        let capacity = capacity.max(1);
        Ring {
            // Allocate lazily: a large capacity costs nothing until traffic fills it.
            items: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            policy,
            pushed: 0,
            dropped: 0,
        }
    }

    /// Adds `item`, dropping by the policy when full. Returns whether something was dropped.
    pub fn push(&mut self, item: T) -> bool {
        self.pushed += 1;
        if self.items.len() < self.capacity {
            self.items.push_back(item);
            return false;
        }
        self.dropped += 1;
        if self.policy == DropPolicy::DropOldest {
            self.items.pop_front();
            self.items.push_back(item);
        }
        true
    }

    /// Takes every item out, oldest first.
    pub fn drain(&mut self) -> Vec<T> {
        self.items.drain(..).collect()
    }

    /// Items held now.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The most it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items offered since it was made.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Items dropped since it was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let mut r = Ring::new(3, DropPolicy::DropOldest);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.drain(), vec![2, 3, 4]);
        assert_eq!((r.pushed(), r.dropped()), (5, 2));
        assert!(r.is_empty());
    }

    #[test]
    fn drop_newest_keeps_the_first() {
        let mut r = Ring::new(3, DropPolicy::DropNewest);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.drain(), vec![0, 1, 2]);
        assert_eq!(r.dropped(), 2);
        assert_eq!(Ring::<u8>::new(0, DropPolicy::DropNewest).capacity(), 1);
    }
}
