//! A small seeded generator (splitmix64): the same seed gives the same choices and kill instants.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(1, 100) <= percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.range(0, items.len() as u64 - 1) as usize])
        }
    }

    /// `len` characters of lowercase words.
    pub fn text(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            if !s.is_empty() && self.chance(15) {
                s.push(' ');
            } else {
                s.push((b'a' + self.range(0, 25) as u8) as char);
            }
        }
        s.trim_end().to_string() + &"x".repeat(len - s.trim_end().len())
    }
}
