//! Extending wrapping RTP counters (16-bit sequence numbers, 32-bit
//! timestamps) to 64-bit values that keep growing, so that ordering, gaps and
//! durations can be computed with plain arithmetic.
//!
//! A value is placed at the extension closest to the highest value seen so
//! far: less than half the counter's range ahead of it counts as forward
//! (possibly across a wrap), anything else as a late packet from before it.
//! A late value that would fall below zero is taken as a forward jump instead.

/// Extends a counter of `bits` bits; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unwrapper {
    bits: u32,
    highest: Option<u64>,
}

impl Unwrapper {
    const fn new(bits: u32) -> Self {
        Unwrapper { bits, highest: None }
    }

    fn unwrap(&mut self, value: u64) -> u64 {
        let modulus = 1u64 << self.bits;
        let Some(highest) = self.highest else {
            self.highest = Some(value);
            return value;
        };
        let ahead = value.wrapping_sub(highest) & (modulus - 1);
        let extended = if ahead < modulus / 2 {
            highest + ahead
        } else {
            let behind = modulus - ahead;
            highest.checked_sub(behind).unwrap_or(highest + ahead)
        };
        self.highest = Some(highest.max(extended));
        extended
    }
}

/// Extends 16-bit RTP sequence numbers to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceUnwrapper(Unwrapper);

impl SequenceUnwrapper {
    /// An unwrapper that has seen nothing yet; the first value is returned
    /// as it is.
    pub const fn new() -> Self {
        SequenceUnwrapper(Unwrapper::new(16))
    }

    /// The extended value of `seq`, given every value seen before.
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        self.0.unwrap(u64::from(seq))
    }

    /// The highest extended value returned so far.
    pub fn highest(&self) -> Option<u64> {
        self.0.highest
    }
}

impl Default for SequenceUnwrapper {
    fn default() -> Self {
        Self::new()
    }
}

/// Extends 32-bit RTP timestamps to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampUnwrapper(Unwrapper);

impl TimestampUnwrapper {
    /// An unwrapper that has seen nothing yet; the first value is returned
    /// as it is.
    pub const fn new() -> Self {
        TimestampUnwrapper(Unwrapper::new(32))
    }

    /// The extended value of `timestamp`, given every value seen before.
    pub fn unwrap(&mut self, timestamp: u32) -> u64 {
        self.0.unwrap(u64::from(timestamp))
    }

    /// The highest extended value returned so far.
    pub fn highest(&self) -> Option<u64> {
        self.0.highest
    }
}

impl Default for TimestampUnwrapper {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_cross_the_wrap_both_ways() {
        let mut u = SequenceUnwrapper::new();
        let got: Vec<u64> = [65534, 65535, 0, 65535, 1, 2].iter().map(|&s| u.unwrap(s)).collect();
        assert_eq!(got, vec![65534, 65535, 65536, 65535, 65537, 65538]);
        assert_eq!(u.highest(), Some(65538));
    }

    #[test]
    fn late_packets_before_zero_jump_forward() {
        let mut u = SequenceUnwrapper::new();
        assert_eq!(u.unwrap(3), 3);
        assert_eq!(u.unwrap(65533), 65533);
        assert_eq!(u.unwrap(4), 65536 + 4);
    }

    #[test]
    fn every_step_of_a_long_run_is_one_more() {
        let mut u = SequenceUnwrapper::new();
        for i in 0..300_000u64 {
            assert_eq!(u.unwrap((i + 100) as u16), i + 100);
        }
        let mut t = TimestampUnwrapper::new();
        let mut ts = 0xFFFF_0000u32;
        let mut expected = u64::from(ts);
        for _ in 0..1000 {
            assert_eq!(t.unwrap(ts), expected);
            ts = ts.wrapping_add(160);
            expected += 160;
        }
    }
}
