//! A map keyed by this side's own sequence numbers: the pulls waiting for
//! their replies.
//!
//! A session numbers its pulls in order, so the pulls in flight have
//! numbers close together: a ring indexed by `seq % len` holds them with
//! no hashing, each slot also holding its number to tell a hit from a
//! stale neighbour (the hash map this replaces cost about 150 instructions
//! per pull for an insert and a removal). Two pulls whose numbers fall on
//! one slot (a pull that waits long while `len` newer ones come and go)
//! make the ring double, when it is at least a quarter full, else the
//! newer one goes to a hash map kept for such stragglers. Doubling never
//! makes two entries collide (numbers apart in `seq % len` are apart in
//! `seq % 2len`), so the ring stays within about four times the pulls in
//! flight, at most [`MAX_SLOTS`] slots.
//!
//! Memory: nothing until the first pull, then [`FIRST_SLOTS`] slots of
//! 40 bytes; 10 KiB with 64 pulls in flight.

use std::collections::HashMap;

/// The ring's size when the first pull is inserted.
const FIRST_SLOTS: usize = 32;
/// The most slots the ring grows to.
const MAX_SLOTS: usize = 1 << 14;

pub(super) struct BySeq<V> {
    /// `seq % ring.len()` holds `(seq, value)`; empty or a power of two long.
    ring: Vec<Option<(u64, V)>>,
    /// How many slots of `ring` hold an entry.
    in_ring: usize,
    /// Entries whose slot was taken.
    others: HashMap<u64, V, foldhash::fast::RandomState>,
}

impl<V> Default for BySeq<V> {
    fn default() -> Self {
        BySeq {
            ring: Vec::new(),
            in_ring: 0,
            others: HashMap::default(),
        }
    }
}

impl<V> BySeq<V> {
    fn index(&self, seq: u64) -> usize {
        // The ring's length is a power of two: the low bits of `seq`.
        seq as usize & (self.ring.len() - 1)
    }

    /// Adds the entry of `seq`, which has none (a session's sequence
    /// numbers are used once; an entry still in the ring is replaced, but
    /// one kept in `others` would be shadowed, hence the debug check).
    pub(super) fn insert(&mut self, seq: u64, value: V) {
        debug_assert!(!self.others.contains_key(&seq), "seq {seq} inserted twice");
        if self.ring.is_empty() {
            self.ring.resize_with(FIRST_SLOTS, || None);
        }
        let at = self.index(seq);
        match &mut self.ring[at] {
            slot @ None => {
                *slot = Some((seq, value));
                self.in_ring += 1;
            }
            Some((held, old)) if *held == seq => *old = value,
            Some(_) => self.collide(seq, value),
        }
    }

    /// `seq`'s slot holds another entry: doubles the ring if it is a
    /// quarter full or more, else keeps `value` in `others`.
    #[cold]
    fn collide(&mut self, seq: u64, value: V) {
        if self.in_ring * 4 < self.ring.len() || self.ring.len() >= MAX_SLOTS {
            self.others.insert(seq, value);
            return;
        }
        let len = self.ring.len() * 2;
        let old = std::mem::replace(&mut self.ring, Vec::with_capacity(len));
        self.ring.resize_with(len, || None);
        for (held, v) in old.into_iter().flatten() {
            let at = self.index(held);
            self.ring[at] = Some((held, v));
        }
        // Its slot may be taken in the doubled ring too.
        self.insert(seq, value);
    }

    /// The entry of `seq`.
    pub(super) fn get(&self, seq: u64) -> Option<&V> {
        if !self.ring.is_empty() {
            if let Some((held, value)) = &self.ring[self.index(seq)] {
                if *held == seq {
                    return Some(value);
                }
            }
        }
        self.others.get(&seq)
    }

    /// Whether `seq` has an entry.
    pub(super) fn contains(&self, seq: u64) -> bool {
        self.get(seq).is_some()
    }

    /// Takes the entry of `seq` out.
    pub(super) fn remove(&mut self, seq: u64) -> Option<V> {
        if !self.ring.is_empty() {
            let at = self.index(seq);
            if let Some((held, _)) = &self.ring[at] {
                if *held == seq {
                    self.in_ring -= 1;
                    return self.ring[at].take().map(|(_, value)| value);
                }
            }
        }
        if self.others.is_empty() {
            return None;
        }
        self.others.remove(&seq)
    }

    /// How many entries there are.
    pub(super) fn len(&self) -> usize {
        self.in_ring + self.others.len()
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every entry out, in no particular order. The map is empty
    /// from the call on, however much of the iterator is used (the ring
    /// is taken whole; the next insert starts a new one).
    pub(super) fn drain(&mut self) -> impl Iterator<Item = V> + '_ {
        self.in_ring = 0;
        std::mem::take(&mut self.ring)
            .into_iter()
            .flatten()
            .map(|(_, value)| value)
            .chain(self.others.drain().map(|(_, value)| value))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every operation agrees with a plain ordered map, through replies in
    /// any order, a pull that waits while a thousand newer ones come and
    /// go, numbers that arrive late, and a jump far ahead.
    #[test]
    fn it_behaves_as_a_map_whatever_the_order() {
        let mut map = BySeq::default();
        let mut model = BTreeMap::new();
        let check = |map: &BySeq<u64>, model: &BTreeMap<u64, u64>| {
            assert_eq!(map.len(), model.len());
            for (&seq, &v) in model {
                assert_eq!(map.get(seq), Some(&v), "seq {seq}");
            }
        };
        // A long-waiting pull, then 3,000 more with out-of-order replies.
        map.insert(7, 7);
        model.insert(7, 7);
        let mut x: u64 = 1;
        for seq in 8..3008u64 {
            map.insert(seq, seq);
            model.insert(seq, seq);
            // A pseudo-random earlier one gets its reply.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let done = 8 + (x >> 33) % (seq - 7);
            assert_eq!(map.remove(done), model.remove(&done));
            if seq % 500 == 0 {
                check(&map, &model);
            }
        }
        check(&map, &model);
        assert_eq!(
            map.remove(7),
            Some(7),
            "the long-waiting one is still found"
        );
        model.remove(&7);
        // A number below the window's start (its caller lost a race).
        map.insert(5, 5);
        model.insert(5, 5);
        // A jump far ahead.
        map.insert(1 << 40, 1);
        model.insert(1 << 40, 1);
        check(&map, &model);
        assert_eq!(map.remove(12345), model.remove(&12345));
        let mut all: Vec<u64> = map.drain().collect();
        let mut expected: Vec<u64> = model.into_values().collect();
        all.sort_unstable();
        expected.sort_unstable();
        assert!(
            all == expected,
            "drained {} of {}",
            all.len(),
            expected.len()
        );
        assert!(map.is_empty());
    }

    /// A drain dropped before its end still leaves the map empty, and the
    /// map works as before afterwards.
    #[test]
    fn a_drain_stopped_early_leaves_the_map_empty() {
        let mut map = BySeq::default();
        for seq in [1, 2, 3, 33, 1 << 40] {
            map.insert(seq, seq);
        }
        assert_eq!(map.drain().take(1).count(), 1);
        assert!(map.is_empty());
        for seq in [1, 2, 3, 33, 1 << 40] {
            assert!(!map.contains(seq), "{seq}");
            assert_eq!(map.remove(seq), None);
        }
        map.insert(2, 20);
        assert_eq!(map.remove(2), Some(20));
        assert!(map.is_empty());
    }

    /// 64 pulls in flight from `first` on, their replies coming back in
    /// order, each answered pull making room for the next, to 100,000.
    fn sixty_four_in_flight(map: &mut BySeq<()>, first: u64) {
        for seq in first..first + 64 {
            map.insert(seq, ());
        }
        for seq in first + 64..100_000 {
            assert!(map.remove(seq - 64).is_some());
            map.insert(seq, ());
        }
    }

    /// With 64 pulls in flight the ring stays small and nothing goes to
    /// the hash map; one pull that never ends does not make it grow.
    #[test]
    fn steady_traffic_stays_in_a_small_ring() {
        let mut map = BySeq::default();
        sixty_four_in_flight(&mut map, 0);
        assert_eq!(map.len(), 64);
        assert!(map.others.is_empty());
        assert!(map.ring.len() <= 256, "{}", map.ring.len());

        let mut map = BySeq::default();
        map.insert(0, ());
        sixty_four_in_flight(&mut map, 1);
        assert_eq!(map.len(), 65);
        assert!(map.contains(0), "the pull that never ends");
        assert!(map.ring.len() <= 512, "{}", map.ring.len());
    }
}
