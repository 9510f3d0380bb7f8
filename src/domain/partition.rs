//! Partitions of the key space: the unit a server of a cluster owns (one lease each).
//!
//! A key's partition follows from its id alone, so a server can tell who owns a request
//! without reading anything: the id's last two bytes, modulo the partition count. Those
//! bytes are random in a UUIDv7 (its 74 random bits end the id), so ids spread evenly. What
//! belongs together is minted together: an order's id takes its customer's last two bytes,
//! a saga's id those of its order (or customer), so a customer's cart, orders and sagas share
//! one partition whatever the count, and a checkout touches one partition but for its stock.
//! A customer's session token carries the same two bytes (its [`Affinity`]), so a request
//! that names no id but the session's still tells its partition without a read.

use uuid::Uuid;

/// How many partitions the key space has: fixed for a store (`cluster.partitions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "u16")]
pub struct Partitions(u16);

impl TryFrom<u16> for Partitions {
    type Error = String;

    fn try_from(count: u16) -> Result<Partitions, String> {
        Partitions::new(count).ok_or_else(|| format!("{count} partitions: 1 to {} are possible", Partitions::MAX))
    }
}

/// One partition, `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(pub u16);

impl Partition {
    /// Where the records without a partition of their own live (customers, the catalogue,
    /// the event and audit logs, operators' tables): its owner writes them.
    pub const SHARED: Partition = Partition(0);
}

impl Partitions {
    /// `cluster.partitions` unless configured: a share for each of up to 16 servers.
    pub const DEFAULT: Partitions = Partitions(16);

    /// The most a store may have: one lease row each, all renewed in one statement.
    pub const MAX: u16 = 1024;

    /// `None` outside `1..=MAX`.
    pub fn new(count: u16) -> Option<Partitions> {
        (1..=Self::MAX).contains(&count).then_some(Partitions(count))
    }

    pub fn count(self) -> u16 {
        self.0
    }

    /// The partition of the key whose id is `id`.
    pub fn of(self, id: &Uuid) -> Partition {
        self.of_affinity(Affinity::of(id))
    }

    /// The partition of whatever has this affinity (an id's, or a session token's).
    pub fn of_affinity(self, affinity: Affinity) -> Partition {
        Partition(affinity.0 % self.0)
    }

    pub fn all(self) -> impl Iterator<Item = Partition> {
        (0..self.0).map(Partition)
    }
}

/// What decides an id's partition, whatever the count: its last two bytes (big-endian).
/// Public: it says nothing but where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Affinity(pub u16);

impl Affinity {
    pub fn of(id: &Uuid) -> Affinity {
        Affinity::of_bytes(id.as_bytes())
    }

    /// An id's as the store's keys hold it (16 bytes).
    pub fn of_bytes(id: &[u8; 16]) -> Affinity {
        Affinity(u16::from_be_bytes([id[14], id[15]]))
    }

    /// Four lowercase hex digits, as a session token carries it.
    pub fn hex(self) -> String {
        format!("{:04x}", self.0)
    }

    /// Exactly four hex digits (either case); anything else is `None`.
    pub fn from_hex(text: &str) -> Option<Affinity> {
        if text.len() != 4 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u16::from_str_radix(text, 16).ok().map(Affinity)
    }
}

/// `fresh`, made to fall in the partition of `home` for every count: `home`'s last two
/// bytes in place of its own (random bits of a UUIDv7, so it stays a valid, time-ordered
/// v7 id with 58 random bits per millisecond).
pub fn alike(fresh: Uuid, home: &Uuid) -> Uuid {
    let mut bytes = *fresh.as_bytes();
    bytes[14..].copy_from_slice(&home.as_bytes()[14..]);
    Uuid::from_bytes(bytes)
}

/// The partitions a server serves and writes: every one (the embedded store), or a share
/// of them (a server of a cluster). A snapshot: the lease changes which one holds
/// (see `store::Ownership`), never an `Owned` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    count: Partitions,
    /// By partition number: whether it is owned.
    mask: Box<[bool]>,
    /// The owned ones, in order.
    list: Box<[Partition]>,
}

impl Owned {
    /// Every partition of `count`.
    pub fn every(count: Partitions) -> Owned {
        Owned::share(count, count.all())
    }

    /// These partitions of `count` (any outside it are ignored).
    pub fn share(count: Partitions, partitions: impl IntoIterator<Item = Partition>) -> Owned {
        let mut mask = vec![false; usize::from(count.0)].into_boxed_slice();
        for p in partitions {
            if let Some(slot) = mask.get_mut(usize::from(p.0)) {
                *slot = true;
            }
        }
        let list = count.all().filter(|p| mask[usize::from(p.0)]).collect();
        Owned { count, mask, list }
    }

    pub fn count(&self) -> Partitions {
        self.count
    }

    pub fn contains(&self, partition: Partition) -> bool {
        self.mask.get(usize::from(partition.0)).copied().unwrap_or(false)
    }

    /// Whether the key whose id is `id` is this server's.
    pub fn owns(&self, id: &Uuid) -> bool {
        self.contains(self.count.of(id))
    }

    /// As [`Owned::owns`], for an id as the store's keys hold it (anything but 16 bytes is
    /// nobody's).
    pub fn owns_bytes(&self, id: &[u8]) -> bool {
        <&[u8; 16]>::try_from(id).is_ok_and(|id| self.contains(self.count.of_affinity(Affinity::of_bytes(id))))
    }

    /// Whether this server writes the records without a partition of their own.
    pub fn has_shared(&self) -> bool {
        self.contains(Partition::SHARED)
    }

    pub fn is_every(&self) -> bool {
        self.list.len() == usize::from(self.count.0)
    }

    /// The owned partitions, in order.
    pub fn partitions(&self) -> &[Partition] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// A fresh id in one of these partitions, chosen at random (any partition when the
    /// share is empty): a record minted here whose every row this server can write.
    pub fn fresh_id(&self) -> Uuid {
        match self.list.len() {
            0 => Uuid::now_v7(),
            n => id_in(self.list[rand::Rng::gen_range(&mut rand::thread_rng(), 0..n)]),
        }
    }

    /// The partitions of this share that `other` does not have.
    pub fn minus(&self, other: &Owned) -> Owned {
        Owned::share(self.count, self.list.iter().copied().filter(|p| !other.contains(*p)))
    }

    /// The partitions this share and `other` both have.
    pub fn and(&self, other: &Owned) -> Owned {
        Owned::share(self.count, self.list.iter().copied().filter(|p| other.contains(*p)))
    }

    /// The partitions of this share and those of `other`.
    pub fn or(&self, other: &Owned) -> Owned {
        Owned::share(self.count, self.list.iter().chain(other.partitions()).copied())
    }
}

/// A fresh id in `partition` for any count above it (its last two bytes are the number).
pub(crate) fn id_in(partition: Partition) -> Uuid {
    let mut bytes = *Uuid::now_v7().as_bytes();
    bytes[14..].copy_from_slice(&partition.0.to_be_bytes());
    Uuid::from_bytes(bytes)
}

/// Partition numbers in ascending order as an operator reads them: `0-3, 7, 9-15`.
pub fn ranges<T: Copy + Into<i64>>(sorted: &[T]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i].into();
        while i + 1 < sorted.len() && sorted[i + 1].into() == sorted[i].into() + 1 {
            i += 1;
        }
        let end = sorted[i].into();
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_minted_for_a_share_falls_in_one_of_its_partitions() {
        let count = Partitions::new(16).unwrap();
        let share = Owned::share(count, [Partition(3), Partition(12)]);
        let minted: std::collections::BTreeSet<Partition> = (0..200).map(|_| count.of(&share.fresh_id())).collect();
        assert_eq!(minted.into_iter().collect::<Vec<_>>(), [Partition(3), Partition(12)], "each of them, no other");
        let none = Owned::share(count, []);
        assert_ne!(none.fresh_id(), none.fresh_id(), "an empty share still mints fresh ids");
    }

    #[test]
    fn an_owned_share_answers_for_its_partitions_and_no_others() {
        let count = Partitions::new(4).unwrap();
        let share = Owned::share(count, [Partition(3), Partition(1), Partition(9)]);
        assert_eq!(share.partitions(), &[Partition(1), Partition(3)], "in order; 9 is outside the count");
        assert!(share.contains(Partition(1)) && share.contains(Partition(3)));
        assert!(!share.contains(Partition(0)) && !share.has_shared() && !share.is_every());
        assert!(!share.contains(Partition(9)));
        let id = |last: u8| Uuid::from_bytes([0, 0, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, last]);
        assert!(share.owns(&id(5)), "5 % 4 = 1");
        assert!(!share.owns(&id(6)), "6 % 4 = 2");
        assert!(share.owns_bytes(id(7).as_bytes()));
        assert!(!share.owns_bytes(&id(7).as_bytes()[..15]), "not an id: nobody's");
        let every = Owned::every(count);
        assert!(every.is_every() && every.has_shared() && every.owns(&id(6)));
        assert_eq!(every.partitions().len(), 4);
        assert_eq!(every.minus(&share).partitions(), &[Partition(0), Partition(2)]);
        assert!(share.minus(&every).is_empty());
    }

    #[test]
    fn an_id_minted_alike_falls_in_its_homes_partition_for_every_count() {
        let (home, fresh) = (Uuid::now_v7(), Uuid::now_v7());
        let id = alike(fresh, &home);
        for count in [1, 2, 3, 16, 100, Partitions::MAX] {
            let p = Partitions::new(count).unwrap();
            assert_eq!(p.of(&id), p.of(&home), "count {count}");
        }
        assert_eq!(id.get_version_num(), 7, "still a UUIDv7");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(id.as_bytes()[..14], fresh.as_bytes()[..14], "the time and most random bits are the fresh id's");
        assert!(alike(Uuid::now_v7(), &home) != id, "two ids alike one home still differ");
    }

    #[test]
    fn an_affinity_is_the_ids_last_two_bytes_and_decides_the_same_partition() {
        let id = Uuid::parse_str("01a2171c-069e-7033-8a4f-bfa6b3c9f9dd").unwrap();
        assert_eq!(Affinity::of(&id), Affinity(0xf9dd));
        for count in [1, 2, 3, 16, 100, Partitions::MAX] {
            let p = Partitions::new(count).unwrap();
            assert_eq!(p.of(&id), p.of_affinity(Affinity(0xf9dd)), "count {count}");
            assert_eq!(p.of_affinity(Affinity(0xf9dd)), Partition(0xf9dd % count), "count {count}");
        }
        assert_eq!(Affinity(0x00a0).hex(), "00a0");
        assert_eq!(Affinity::from_hex("00a0"), Some(Affinity(0x00a0)));
        assert_eq!(Affinity::from_hex("F9DD"), Some(Affinity(0xf9dd)));
        for bad in ["", "a0", "00a", "00a00", "+0a0", "0x0a", "zzzz", "ｆｆ", "é0"] {
            assert_eq!(Affinity::from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_spread_over_the_partitions() {
        let p = Partitions::new(16).unwrap();
        let mut counts = [0u32; 16];
        for _ in 0..16_000 {
            counts[p.of(&Uuid::now_v7()).0 as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (700..1300).contains(&c)), "{counts:?}");
    }

    #[test]
    fn partition_numbers_read_as_ranges() {
        assert_eq!(ranges::<u16>(&[]), "");
        assert_eq!(ranges(&[7u16]), "7");
        assert_eq!(ranges(&[0u16, 1, 2, 3, 7, 9, 10]), "0-3, 7, 9-10");
        assert_eq!(ranges(&[2i32, 4, 5]), "2, 4-5");
    }

    #[test]
    fn a_count_outside_its_range_is_refused() {
        assert_eq!(Partitions::new(0), None);
        assert_eq!(Partitions::new(Partitions::MAX + 1), None);
        assert_eq!(Partitions::new(1).map(|p| p.all().count()), Some(1));
        assert_eq!(Partitions::new(1).unwrap().of(&Uuid::now_v7()), Partition(0));
    }
}
