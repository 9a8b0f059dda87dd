//! Per-source values (counters, deltas, SYN-ACKs) kept in one fixed order, the per-source
//! table's: by set (`source_set_start`), then by address. A poll compares each source
//! with its value a window ago; with both lists in the same order that is one walk down
//! both, where maps cost a hash lookup per source into a map of megabytes (65,536
//! sources under a random-source flood). The XDP backend reads the table set by set,
//! so its lists come out of the read nearly in order, and putting them in order costs
//! a pass.

use std::{cmp::Ordering, net::IpAddr, ops::Index};

use monitor_common::{SourceKey, source_table::source_set_start};

/// Values by source, in table order. `sets` is the order's set count: lists compared
/// with each other share it (they come from one backend).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceList<V> {
    sets: u64,
    entries: Vec<(SourceKey, V)>,
}

/// The order of lists not made from a table: the default table's.
fn default_sets() -> u64 {
    monitor_common::source_table::source_table_sets(monitor_common::DEFAULT_MAX_SOURCES)
}

impl<V: Copy> Default for SourceList<V> {
    fn default() -> Self {
        Self::new(default_sets())
    }
}

/// As a map would: of two values for one source, the later stands.
impl<V: Copy> FromIterator<(IpAddr, V)> for SourceList<V> {
    fn from_iter<I: IntoIterator<Item = (IpAddr, V)>>(entries: I) -> Self {
        let mut list = Self::new(default_sets());
        list.entries.extend(
            entries
                .into_iter()
                .map(|(ip, v)| (SourceKey::from_ip(ip), v)),
        );
        let sets = list.sets;
        // Stable: equal sources keep their order, so the last one is the later.
        list.entries.sort_by_key(|(key, _)| rank(sets, key));
        list.merge_neighbours(|earlier, later| *earlier = later);
        list
    }
}

/// Where a source sits in the order.
#[inline]
fn rank(sets: u64, key: &SourceKey) -> (u32, SourceKey) {
    (source_set_start(key, sets), *key)
}

impl<V: Copy> SourceList<V> {
    pub fn new(sets: u64) -> Self {
        Self {
            sets: sets.max(1),
            entries: Vec::new(),
        }
    }

    /// A list of `entries` in any order; values of the same source are merged.
    pub fn from_unordered(
        sets: u64,
        entries: impl IntoIterator<Item = (SourceKey, V)>,
        merge: impl Fn(&mut V, V),
    ) -> Self {
        let mut list = Self::new(sets);
        list.entries.extend(entries);
        let sets = list.sets;
        list.entries
            .sort_unstable_by_key(|(key, _)| rank(sets, key));
        list.merge_neighbours(merge);
        list
    }

    /// Empties the list for a refill with [`Self::push`], keeping its memory.
    pub fn clear(&mut self, sets: u64) {
        self.sets = sets.max(1);
        self.entries.clear();
    }

    /// Room for `additional` more entries (and no more).
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve_exact(additional);
    }

    /// Where `key` is (`Ok`), or would go (`Err`): a binary search.
    fn position(&self, key: &SourceKey) -> Result<usize, usize> {
        let (sets, target) = (self.sets, rank(self.sets, key));
        self.entries
            .binary_search_by(|(k, _)| rank(sets, k).cmp(&target))
    }

    /// Sets one source's value, as a map would (a search and a shift: for a few).
    pub fn insert(&mut self, ip: IpAddr, value: V) {
        let key = SourceKey::from_ip(ip);
        match self.position(&key) {
            Ok(at) => self.entries[at].1 = value,
            Err(at) => self.entries.insert(at, (key, value)),
        }
    }

    /// Sets the value of a source already in the list; false (and nothing done) when
    /// it is not there.
    pub fn replace(&mut self, key: SourceKey, value: V) -> bool {
        match self.position(&key) {
            Ok(at) => {
                self.entries[at].1 = value;
                true
            }
            Err(_) => false,
        }
    }

    /// Appends an entry; [`Self::finish_nearly_ordered`] puts the list in order after.
    pub fn push(&mut self, key: SourceKey, value: V) {
        self.entries.push((key, value));
    }

    /// Puts pushed entries in order, merging a source's values. Made for entries each at
    /// most a few places out of order (a table read: in order by set, any order within
    /// a set), which one pass of insertion sort puts right.
    pub fn finish_nearly_ordered(&mut self, merge: impl Fn(&mut V, V)) {
        let sets = self.sets;
        for i in 1..self.entries.len() {
            let mut j = i;
            while j > 0 && rank(sets, &self.entries[j - 1].0) > rank(sets, &self.entries[j].0) {
                self.entries.swap(j - 1, j);
                j -= 1;
            }
        }
        self.merge_neighbours(merge);
    }

    /// Adds `extra` entries (few, any order) to a list in order.
    pub fn add_unordered(&mut self, extra: Vec<(SourceKey, V)>, merge: impl Fn(&mut V, V)) {
        let sets = self.sets;
        let mut new = Vec::new();
        for (key, value) in extra {
            match self.position(&key) {
                Ok(at) => merge(&mut self.entries[at].1, value),
                Err(_) => new.push((key, value)),
            }
        }
        if new.is_empty() {
            return;
        }
        new.sort_unstable_by_key(|(key, _)| rank(sets, key));
        // One merge of the two ordered runs, in place from the back: the list grows by
        // `new.len()` and each entry moves at most once (no second list of megabytes).
        let old_len = self.entries.len();
        let Some(&filler) = new.first() else {
            return;
        };
        // Exact: doubling a list of megabytes for a few hundred entries would not do.
        self.entries.reserve_exact(new.len());
        self.entries.resize(old_len + new.len(), filler);
        let (mut old_end, mut new_end, mut write) = (old_len, new.len(), old_len + new.len());
        while new_end > 0 {
            write -= 1;
            let take_new = old_end == 0
                || rank(sets, &new[new_end - 1].0) > rank(sets, &self.entries[old_end - 1].0);
            if take_new {
                new_end -= 1;
                self.entries[write] = new[new_end];
            } else {
                old_end -= 1;
                self.entries[write] = self.entries[old_end];
            }
        }
        self.merge_neighbours(merge);
    }

    fn merge_neighbours(&mut self, merge: impl Fn(&mut V, V))
    where
        V: Copy,
    {
        // `dedup_by` hands (later, earlier): the later is folded into the earlier.
        self.entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                merge(&mut earlier.1, later.1);
            }
            same
        });
    }

    pub fn sets(&self) -> u64 {
        self.sets
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each source and its value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, &V)> {
        self.entries.iter().map(|(key, value)| (key.ip(), value))
    }

    pub fn keys(&self) -> impl Iterator<Item = IpAddr> {
        self.entries.iter().map(|(key, _)| key.ip())
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, value)| value)
    }

    /// One source's value (a binary search: for a few lookups; walk with
    /// [`Self::cursor`] or [`Self::join`] to visit many).
    pub fn get(&self, ip: &IpAddr) -> Option<&V> {
        self.get_key(&SourceKey::from_ip(*ip))
    }

    fn get_key(&self, key: &SourceKey) -> Option<&V> {
        self.position(key).ok().map(|at| &self.entries[at].1)
    }

    pub fn contains_key(&self, ip: &IpAddr) -> bool {
        self.get(ip).is_some()
    }

    /// A reader that looks sources up in order, each lookup starting where the last
    /// ended.
    pub fn cursor(&self) -> Cursor<'_, V> {
        self.cursor_along(self.sets)
    }

    /// A reader for lookups made in the order of lists of `sets` sets (while walking
    /// such a list): a walk when that is this list's order too (one backend's lists
    /// share it), a search for each lookup otherwise.
    pub fn cursor_along(&self, sets: u64) -> Cursor<'_, V> {
        Cursor {
            list: self,
            at: 0,
            walk: sets.max(1) == self.sets,
        }
    }

    /// Each source of this list with its value and its value in `earlier` (`None`
    /// when not there), in one walk down both.
    pub fn join<'a, W: Copy>(
        &'a self,
        earlier: &'a SourceList<W>,
    ) -> impl Iterator<Item = (IpAddr, &'a V, Option<&'a W>)> + 'a {
        let mut before = earlier.cursor_along(self.sets);
        self.entries
            .iter()
            .map(move |(key, value)| (key.ip(), value, before.seek_key(key)))
    }

    /// A list of the values `f` makes of this one's (`None`: left out), in the same
    /// order.
    pub fn filter_map<W: Copy>(&self, mut f: impl FnMut(IpAddr, &V) -> Option<W>) -> SourceList<W> {
        SourceList {
            sets: self.sets,
            entries: self
                .entries
                .iter()
                .filter_map(|(key, value)| Some((*key, f(key.ip(), value)?)))
                .collect(),
        }
    }
}

impl<V: Copy> Index<&IpAddr> for SourceList<V> {
    type Output = V;

    fn index(&self, ip: &IpAddr) -> &V {
        self.get(ip)
            .unwrap_or_else(|| panic!("{ip} is not in the source list"))
    }
}

/// Looks sources up in a [`SourceList`] in its order.
pub struct Cursor<'a, V> {
    list: &'a SourceList<V>,
    at: usize,
    /// Lookups come in the list's order (else each is a search).
    walk: bool,
}

impl<'a, V: Copy> Cursor<'a, V> {
    /// `ip`'s value. Sources asked for must come in the list's order (as another list
    /// of the same order is walked); one asked for out of order is looked up anew.
    pub fn seek(&mut self, ip: &IpAddr) -> Option<&'a V> {
        self.seek_key(&SourceKey::from_ip(*ip))
    }

    fn seek_key(&mut self, key: &SourceKey) -> Option<&'a V> {
        if !self.walk {
            return self.list.get_key(key);
        }
        let sets = self.list.sets;
        let target = rank(sets, key);
        let entries = &self.list.entries;
        if self.at > 0 && self.at <= entries.len() && rank(sets, &entries[self.at - 1].0) >= target
        {
            // Out of order: start again.
            self.at = 0;
        }
        while let Some((k, value)) = entries.get(self.at) {
            match rank(sets, k).cmp(&target) {
                Ordering::Less => self.at += 1,
                Ordering::Equal => {
                    self.at += 1;
                    return Some(value);
                }
                Ordering::Greater => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    fn key(i: u32) -> SourceKey {
        SourceKey::from_ip(ip(i))
    }

    fn add(sum: &mut u64, more: u64) {
        *sum += more;
    }

    #[test]
    fn lists_in_any_order_come_out_in_one_order_with_sources_merged() {
        let a = SourceList::from_unordered(64, (0..500).map(|i| (key(i), 1)), add);
        let b = SourceList::from_unordered(64, (0..500).rev().map(|i| (key(i), 1)), add);
        assert_eq!(a, b);
        let twice = SourceList::from_unordered(
            64,
            (0..500).chain(0..500).map(|i| (key(i), u64::from(i))),
            add,
        );
        assert_eq!(twice.len(), 500);
        for i in 0..500 {
            assert_eq!(twice[&ip(i)], 2 * u64::from(i));
        }
        assert_eq!(twice.get(&ip(9_999)), None);
    }

    #[test]
    fn a_table_read_is_put_in_order_and_extra_entries_added() {
        // What the XDP backend does: entries pushed set by set (any order within a
        // set, a source possibly twice), then the per-CPU caches' few entries.
        let sets = 16;
        let reference = SourceList::from_unordered(sets, (0..300).map(|i| (key(i), 1)), add);
        let mut by_set: Vec<(SourceKey, u64)> = (0..200).map(|i| (key(i), 1)).collect();
        by_set.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
        by_set.sort_by_key(|(k, _)| source_set_start(k, sets));
        let mut list = SourceList::new(sets);
        for (k, v) in by_set {
            list.push(k, v);
        }
        list.finish_nearly_ordered(add);
        // 150..300: half already there (merged), half new.
        list.add_unordered((150..300).rev().map(|i| (key(i), 1)).collect(), add);
        assert_eq!(list.len(), 300);
        for i in 0..300 {
            assert_eq!(list[&ip(i)], if (150..200).contains(&i) { 2 } else { 1 });
        }
        assert!(list.keys().eq(reference.keys()));
    }

    #[test]
    fn a_join_pairs_each_source_with_its_earlier_value() {
        let earlier = SourceList::from_unordered(32, (0..100).map(|i| (key(i), 10)), add);
        let now = SourceList::from_unordered(32, (50..150).map(|i| (key(i), u64::from(i))), add);
        let joined: Vec<(IpAddr, u64, Option<u64>)> = now
            .join(&earlier)
            .map(|(ip, v, then)| (ip, *v, then.copied()))
            .collect();
        assert_eq!(joined.len(), 100);
        for (ip, v, then) in joined {
            let IpAddr::V4(v4) = ip else { panic!() };
            let i = u32::from(v4);
            assert_eq!(v, u64::from(i));
            assert_eq!(then, (i < 100).then_some(10), "{ip}");
        }
    }

    #[test]
    fn a_cursor_finds_sources_asked_in_order_and_out_of_it() {
        let list = SourceList::from_unordered(8, (0..64).map(|i| (key(i), u64::from(i))), add);
        let mut cursor = list.cursor();
        for ip in list.keys().collect::<Vec<_>>() {
            assert!(cursor.seek(&ip).is_some());
        }
        let mut cursor = list.cursor();
        let order: Vec<IpAddr> = list.keys().collect();
        assert_eq!(cursor.seek(&order[40]), list.get(&order[40]));
        assert_eq!(cursor.seek(&order[3]), list.get(&order[3]));
        assert_eq!(cursor.seek(&ip(1_000)), None);
        // The same source twice in a row.
        let mut cursor = list.cursor();
        assert_eq!(cursor.seek(&order[7]), list.get(&order[7]));
        assert_eq!(cursor.seek(&order[7]), list.get(&order[7]));
    }

    #[test]
    fn ipv4_and_ipv6_sources_share_one_order() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let list = SourceList::from_unordered(
            8,
            [
                (SourceKey::from_ip(v6), 1),
                (key(7), 2),
                (SourceKey::from_ip(v6), 3),
            ],
            add,
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list[&v6], 4);
        assert_eq!(list[&ip(7)], 2);
    }
}
