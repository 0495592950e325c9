//! The engine's one source of chance: a per-connection xorshift64*,
//! seeded from the connection id so a run is repeatable. Plenty for
//! choosing which bytes to corrupt or how long a jitter is; not for
//! anything secret.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // xorshift must not start at zero.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A uniform draw in 0..1,000,000.
    pub fn draw(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 % 1_000_000
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new(0)
    }
}
