//! A fixed pseudo-random sequence for property tests (pure): the same generated worlds every
//! run, so a failure names a round that happens again.

/// A linear congruential generator (Knuth's MMIX constants) from a fixed seed.
pub struct Sequence(u64);

impl Sequence {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number in `0..n`.
    pub fn pick(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}
