//! NTP timestamps for RTCP (RFC 3550 section 4) and the round-trip time of
//! section 6.4.1, from the caller's clock.
//!
//! The session's clock is the caller's nanoseconds since an arbitrary
//! epoch; the caller says once which NTP time that epoch is (the engine
//! reads the wall clock when it creates the session). Everything after that
//! is arithmetic, so tests can run in simulated time.

/// Nanoseconds per second.
const NS_PER_S: i128 = 1_000_000_000;

/// Maps the caller's clock to 64-bit NTP timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpClock {
    /// The NTP timestamp (32.32 fixed point, seconds since 1900) of the
    /// caller's `now_ns == 0`.
    pub ntp_at_epoch: u64,
}

impl NtpClock {
    /// The NTP timestamp of `now_ns`. NTP time wraps in 2036, and so does
    /// this (RFC 3550 section 4: only differences matter).
    pub fn ntp(&self, now_ns: i64) -> u64 {
        // 2^32 units per second; i128 keeps the product exact for any i64.
        let units = (i128::from(now_ns) << 32) / NS_PER_S;
        self.ntp_at_epoch.wrapping_add(units as u64)
    }
}

/// The middle 32 bits of an NTP timestamp (16.16 fixed point), the unit of
/// LSR, DLSR and round-trip arithmetic (RFC 3550 section 6.4.1).
pub fn middle_32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A delay in nanoseconds as a DLSR value: 1/65536 s units, saturating at
/// the field's maximum and 0 for negative delays.
pub fn dlsr_units(delay_ns: i64) -> u32 {
    let units = (i128::from(delay_ns.max(0)) << 16) / NS_PER_S;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// The round-trip time from a reception report block about our stream
/// (RFC 3550 section 6.4.1, figure 2): `A - LSR - DLSR` in 1/65536 s, where
/// `A` is the middle 32 bits of the report's arrival time. `None` when the
/// peer has not received an SR yet (LSR 0) or the result is negative (a
/// clock step or a forged block).
pub fn round_trip_ns(arrival_middle: u32, lsr: u32, dlsr: u32) -> Option<i64> {
    if lsr == 0 {
        return None;
    }
    let rtt = arrival_middle.wrapping_sub(lsr).wrapping_sub(dlsr);
    // Wrapped differences of more than half the range are negative.
    if rtt > u32::MAX / 2 {
        return None;
    }
    Some(((i128::from(rtt) * NS_PER_S) >> 16) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3550_section_6_4_1_example() {
        // A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000 (46853.125 s),
        // DLSR = 0x0005:4000 (5.250 s): delay 0x0006:2000 = 6.125 s.
        assert_eq!(round_trip_ns(0xb710_8000, 0xb705_2000, 0x0005_4000), Some(6_125_000_000));
    }

    #[test]
    fn no_sr_or_negative_gives_none() {
        assert_eq!(round_trip_ns(0x1000_0000, 0, 0), None);
        assert_eq!(round_trip_ns(0x1000_0000, 0x1000_0000, 0x10), None);
        // Across the wrap of the middle 32 bits.
        assert_eq!(round_trip_ns(0x0000_8000, 0xFFFF_8000, 0), Some(1_000_000_000));
    }

    #[test]
    fn clock_mapping_and_units() {
        let c = NtpClock { ntp_at_epoch: 0xE000_0000_0000_0000 };
        assert_eq!(c.ntp(0), 0xE000_0000_0000_0000);
        assert_eq!(c.ntp(1_500_000_000), 0xE000_0001_8000_0000);
        assert_eq!(c.ntp(-500_000_000), 0xDFFF_FFFF_8000_0000);
        assert_eq!(middle_32(0xE000_0001_8000_0000), 0x0001_8000);
        assert_eq!(dlsr_units(5_250_000_000), 0x0005_4000);
        assert_eq!(dlsr_units(-1), 0);
        assert_eq!(dlsr_units(i64::MAX), u32::MAX);
    }
}
