//! Receive statistics of one RTP stream (RFC 3550 appendix A.1, A.3, A.8),
//! sans-IO: the caller hands in each packet's sequence number, timestamp
//! and arrival time, and reads counts, loss and jitter back whenever it
//! likes (an RTCP report, the end of a capture).
//!
//! Besides what a reception report needs, it keeps what a VoIP engineer
//! looks at in a capture: duplicates, out-of-order arrivals, sequence
//! errors, the largest gap between arrivals and the jitter's peak and mean.
//!
//! Sequence numbers are extended by [`SequenceUnwrapper`]; a source that
//! restarts its numbering under the same SSRC (which RFC 3550 A.1 detects
//! with `bad_seq` and resynchronises on) is not special-cased: the jump
//! counts as loss, or as late packets.

use crate::seq::SequenceUnwrapper;

/// Consecutive sequence numbers a source must send before it is believed
/// to be a real stream (RFC 3550 A.1 `MIN_SEQUENTIAL`).
pub const MIN_SEQUENTIAL: u32 = 2;

/// How far back duplicates are recognised, in packets.
const DUPLICATE_WINDOW: u64 = 4096;

/// A ring of bits marking which of the last [`DUPLICATE_WINDOW`] extended
/// sequence numbers have arrived. Allocated on the second packet, so that
/// the many one-packet "streams" of noise in a capture stay small.
#[derive(Debug, Clone)]
struct SeenWindow {
    bits: Vec<u64>,
}

impl SeenWindow {
    fn new() -> Self {
        SeenWindow { bits: Vec::new() }
    }

    fn allocate(&mut self) {
        if self.bits.is_empty() {
            self.bits = vec![0; (DUPLICATE_WINDOW / 64) as usize];
        }
    }

    fn slot(seq: u64) -> (usize, u64) {
        let i = seq % DUPLICATE_WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    /// Forgets the numbers that `highest + 1 ..= new_highest` will reuse.
    fn advance(&mut self, highest: u64, new_highest: u64) {
        self.allocate();
        if new_highest - highest >= DUPLICATE_WINDOW {
            self.bits.iter_mut().for_each(|w| *w = 0);
            return;
        }
        for seq in highest + 1..=new_highest {
            let (word, bit) = Self::slot(seq);
            self.bits[word] &= !bit;
        }
    }

    /// Marks `seq` seen; returns whether it had been seen already.
    fn mark(&mut self, seq: u64) -> bool {
        self.allocate();
        let (word, bit) = Self::slot(seq);
        let seen = self.bits[word] & bit != 0;
        self.bits[word] |= bit;
        seen
    }
}

/// What [`ReceiveStats::on_packet`] made of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next packet, or one after a gap.
    InOrder,
    /// A packet older than the highest one seen, arriving late.
    OutOfOrder,
    /// A packet already received.
    Duplicate,
}

/// The values of an RTCP reception report block (RFC 3550 A.3), as of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportValues {
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, clamped to the signed 24-bit field.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (low 32 bits).
    pub highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

/// Receive statistics of one RTP stream; see the module documentation.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: Option<u32>,
    unwrapper: SequenceUnwrapper,
    seen: SeenWindow,
    /// Extended sequence number of the first packet.
    base: u64,
    /// Highest extended sequence number received.
    highest: u64,
    /// Extended sequence number of the previous packet, in arrival order.
    previous: u64,
    /// Length of the current run of consecutive sequence numbers.
    run: u32,
    validated: bool,
    packets: u64,
    duplicates: u64,
    out_of_order: u64,
    sequence_errors: u64,
    /// Arrival time and RTP timestamp of the previous packet.
    last: Option<(i64, u32)>,
    /// Jitter estimate in timestamp units (RFC 3550 A.8).
    jitter: f64,
    max_jitter: f64,
    jitter_sum: f64,
    jitter_samples: u64,
    /// Arrival of the last packet that was not late, and the largest gap
    /// between such arrivals (talk-spurt starts excluded).
    last_in_sequence_arrival: Option<i64>,
    max_delta_ns: i64,
    expected_prior: u64,
    received_prior: u64,
}

impl ReceiveStats {
    /// Statistics for a stream whose timestamps tick at `clock_rate` Hz;
    /// without a clock rate no jitter is computed.
    pub fn new(clock_rate: Option<u32>) -> Self {
        ReceiveStats {
            clock_rate: clock_rate.filter(|&r| r > 0),
            unwrapper: SequenceUnwrapper::new(),
            seen: SeenWindow::new(),
            base: 0,
            highest: 0,
            previous: 0,
            run: 0,
            validated: false,
            packets: 0,
            duplicates: 0,
            out_of_order: 0,
            sequence_errors: 0,
            last: None,
            jitter: 0.0,
            max_jitter: 0.0,
            jitter_sum: 0.0,
            jitter_samples: 0,
            last_in_sequence_arrival: None,
            max_delta_ns: 0,
            expected_prior: 0,
            received_prior: 0,
        }
    }

    /// Counts one packet that arrived at `arrival_ns` (any epoch, in
    /// nanoseconds; only differences matter).
    pub fn on_packet(&mut self, sequence_number: u16, timestamp: u32, marker: bool, arrival_ns: i64) -> Arrival {
        let seq = self.unwrapper.unwrap(sequence_number);
        let first = self.packets == 0;
        self.packets += 1;
        let arrival = if first {
            self.base = seq;
            self.highest = seq;
            self.run = 1;
            Arrival::InOrder
        } else {
            if self.packets == 2 {
                // The window is made for the second packet: note the first.
                self.seen.mark(self.base);
            }
            self.classify_later(seq)
        };
        if !first {
            self.run = if seq == self.previous + 1 { self.run + 1 } else { 1 };
        }
        self.validated |= self.run >= MIN_SEQUENTIAL;
        self.previous = seq;
        self.update_jitter(timestamp, arrival_ns);
        if arrival == Arrival::InOrder {
            if let Some(last) = self.last_in_sequence_arrival {
                if !marker {
                    self.max_delta_ns = self.max_delta_ns.max(arrival_ns.saturating_sub(last));
                }
            }
            self.last_in_sequence_arrival = Some(arrival_ns);
        }
        arrival
    }

    /// Counts a packet after the first by where its sequence number falls.
    fn classify_later(&mut self, seq: u64) -> Arrival {
        if seq > self.highest {
            if seq != self.previous + 1 {
                self.sequence_errors += 1;
            }
            self.seen.advance(self.highest, seq);
            self.seen.mark(seq);
            self.highest = seq;
            Arrival::InOrder
        } else {
            self.sequence_errors += 1;
            if self.highest - seq < DUPLICATE_WINDOW && self.seen.mark(seq) {
                self.duplicates += 1;
                Arrival::Duplicate
            } else {
                self.out_of_order += 1;
                Arrival::OutOfOrder
            }
        }
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16, D the difference in transit time
    /// between this packet and the previous one to arrive.
    fn update_jitter(&mut self, timestamp: u32, arrival_ns: i64) {
        let Some(rate) = self.clock_rate else { return };
        if let Some((last_arrival, last_timestamp)) = self.last {
            let arrival_delta = arrival_ns.saturating_sub(last_arrival) as f64 * f64::from(rate) / 1e9;
            // Reinterpreting the wrapped difference as signed gives the
            // nearest distance in either direction.
            let timestamp_delta = f64::from(timestamp.wrapping_sub(last_timestamp) as i32);
            let d = (arrival_delta - timestamp_delta).abs();
            self.jitter += (d - self.jitter) / 16.0;
            self.max_jitter = self.max_jitter.max(self.jitter);
            self.jitter_sum += self.jitter;
            self.jitter_samples += 1;
        }
        self.last = Some((arrival_ns, timestamp));
    }

    /// Whether [`MIN_SEQUENTIAL`] consecutive sequence numbers have been
    /// seen: the RFC 3550 A.1 test that this is a real stream, not noise.
    pub fn is_validated(&self) -> bool {
        self.validated
    }

    /// Packets received, duplicates included.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Packets expected: from the first sequence number to the highest.
    pub fn expected(&self) -> u64 {
        if self.packets == 0 {
            0
        } else {
            self.highest - self.base + 1
        }
    }

    /// Packets lost: expected minus received (RFC 3550 A.3); negative when
    /// duplicates outnumber losses.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.packets as i64
    }

    /// Packets received more than once.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets that arrived after a higher sequence number (not duplicates).
    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// Packets whose sequence number was not the one after the previous
    /// packet's: gaps, late packets and duplicates.
    pub fn sequence_errors(&self) -> u64 {
        self.sequence_errors
    }

    /// The clock rate jitter is computed with.
    pub fn clock_rate(&self) -> Option<u32> {
        self.clock_rate
    }

    /// The current jitter estimate, in timestamp units.
    pub fn jitter(&self) -> Option<f64> {
        self.clock_rate.map(|_| self.jitter)
    }

    fn to_ms(&self, ticks: f64) -> Option<f64> {
        self.clock_rate.map(|rate| ticks * 1000.0 / f64::from(rate))
    }

    /// The highest jitter estimate seen, in milliseconds.
    pub fn max_jitter_ms(&self) -> Option<f64> {
        self.to_ms(self.max_jitter)
    }

    /// The mean of the jitter estimates after each packet but the first, in
    /// milliseconds.
    pub fn mean_jitter_ms(&self) -> Option<f64> {
        if self.jitter_samples == 0 {
            return self.to_ms(0.0);
        }
        self.to_ms(self.jitter_sum / self.jitter_samples as f64)
    }

    /// The largest gap between two packets that arrived in sequence, in
    /// milliseconds, not counting gaps that end with the marker bit (the
    /// start of a talk spurt after silence).
    pub fn max_delta_ms(&self) -> f64 {
        self.max_delta_ns as f64 / 1e6
    }

    /// The extended highest sequence number received.
    pub fn highest_sequence(&self) -> u64 {
        self.highest
    }

    /// The values of a reception report block about this stream, and the
    /// start of a new reporting interval (RFC 3550 A.3).
    pub fn report(&mut self) -> ReportValues {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.packets - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.packets;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            // lost_interval <= expected_interval, so the quotient is < 256.
            ((lost_interval << 8) / expected_interval as i64) as u8
        };
        ReportValues {
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_sequence: self.highest as u32,
            jitter: self.jitter as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    /// Feeds `(seq, arrival ms)` packets of a 20 ms, 8 kHz stream whose
    /// timestamp follows the sequence number.
    fn feed(packets: &[(u16, i64)]) -> ReceiveStats {
        let mut s = ReceiveStats::new(Some(8000));
        for &(seq, at) in packets {
            s.on_packet(seq, u32::from(seq) * 160, false, at * MS);
        }
        s
    }

    #[test]
    fn a_perfect_stream_has_no_loss_and_no_jitter() {
        let mut s = ReceiveStats::new(Some(8000));
        for i in 0..100u16 {
            // Both counters wrap on the way.
            let (seq, ts) = (65500u16.wrapping_add(i), (u32::MAX - 800).wrapping_add(u32::from(i) * 160));
            s.on_packet(seq, ts, i == 0, i64::from(i) * 20 * MS);
        }
        assert_eq!((s.packets(), s.expected(), s.lost()), (100, 100, 0));
        assert_eq!((s.duplicates(), s.out_of_order(), s.sequence_errors()), (0, 0, 0));
        assert_eq!(s.max_jitter_ms(), Some(0.0));
        assert_eq!(s.max_delta_ms(), 20.0);
        assert!(s.is_validated());
    }

    #[test]
    fn loss_reorder_and_duplicates_are_told_apart() {
        // 3 is lost, 5 comes after 6, 7 twice.
        let s = feed(&[(1, 0), (2, 20), (4, 60), (6, 100), (5, 101), (7, 120), (7, 121), (8, 140)]);
        assert_eq!((s.packets(), s.expected(), s.lost()), (8, 8, 0));
        assert_eq!((s.duplicates(), s.out_of_order()), (1, 1));
        // The gaps before 4 and 6, the late 5, the 7 after 5 and the second 7.
        assert_eq!(s.sequence_errors(), 5);
        assert_eq!(s.max_delta_ms(), 40.0);
        let s = feed(&[(1, 0), (2, 20), (4, 60)]);
        assert_eq!(s.lost(), 1);
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        // One packet 8 ms late: D = 64 ticks, then D = 64 back.
        let s = feed(&[(0, 0), (1, 28), (2, 40)]);
        let j1 = 64.0 / 16.0;
        let j2 = j1 + (64.0 - j1) / 16.0;
        assert_eq!(s.jitter(), Some(j2));
        assert_eq!(s.max_jitter_ms(), Some(j2 / 8.0));
        assert_eq!(s.mean_jitter_ms(), Some((j1 + j2) / 2.0 / 8.0));
    }

    #[test]
    fn report_values_cover_each_interval() {
        let mut s = feed(&[(10, 0), (11, 20), (14, 80)]);
        let r = s.report();
        assert_eq!((r.fraction_lost, r.cumulative_lost, r.highest_sequence), ((2 * 256 / 5) as u8, 2, 14));
        s.on_packet(15, 15 * 160, false, 100 * MS);
        assert_eq!(s.report().fraction_lost, 0);
    }

    #[test]
    fn a_single_packet_is_not_a_stream() {
        let s = feed(&[(7, 0)]);
        assert!(!s.is_validated());
        let s = feed(&[(7, 0), (9, 20), (20, 30)]);
        assert!(!s.is_validated());
        assert_eq!(ReceiveStats::new(None).mean_jitter_ms(), None);
    }
}
