//! The loss pattern of a received stream: loss rate, the burst and gap
//! metrics of the RTCP XR VoIP metrics block (RFC 3611 section 4.7.2) and
//! the burst ratio the E-model takes (G.107 `BurstR`).
//!
//! Packets are judged in sequence order once they fall [`REORDER_WINDOW`]
//! packets behind the highest one received, so that a packet arriving a
//! little late is not counted as lost. The state is a 64-bit map and a few
//! counters: nothing is allocated.
//!
//! Bursts follow the RFC 3611 definition with `Gmin` = 16: a burst starts
//! and ends with a lost packet and contains no run of `Gmin` or more
//! received packets. As in RFC 3611's Gilbert-model reference algorithm,
//! a lone loss with `Gmin` received packets on both sides belongs to the
//! gap around it, not to a burst of its own.

/// RFC 3611 section 4.7.2's recommended minimum gap length, in packets.
pub const GMIN: u32 = 16;
/// How far behind the highest sequence number a packet is judged.
pub const REORDER_WINDOW: u64 = 32;
/// A forward jump of more than this many packets is a restart of the
/// sequence, not a loss (RFC 3550 A.1 `MAX_DROPOUT`); it also bounds the
/// work one packet can cause.
pub const MAX_DROPOUT: u64 = 3000;

/// Burst and gap figures, as the XR VoIP metrics block wants them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BurstMetrics {
    /// Packets judged (received or lost) so far.
    pub packets: u64,
    /// Of which lost.
    pub lost: u64,
    /// Fraction of packets lost within bursts.
    pub burst_density: f64,
    /// Fraction of packets lost within gaps.
    pub gap_density: f64,
    /// Mean burst length, packets.
    pub mean_burst_packets: f64,
    /// Mean gap length, packets.
    pub mean_gap_packets: f64,
    /// The burst ratio: 1 for random (Bernoulli) loss, more when losses
    /// cluster (G.107 section 3.5, 1 / (p + q) of the Gilbert model).
    pub burst_ratio: f64,
}

/// Tracks the loss pattern of one stream; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct LossTracker {
    /// Extended sequence number of bit 0 of `window`, once started.
    base: Option<u64>,
    highest: u64,
    /// Bit i: `base + i` has arrived.
    window: u64,
    packets: u64,
    lost: u64,
    /// Gilbert-model transitions: after a received packet, after a lost one.
    received_then_lost: u64,
    received_then_received: u64,
    lost_then_received: u64,
    lost_then_lost: u64,
    previous_lost: Option<bool>,
    /// Received packets since the last loss.
    run: u32,
    /// A lone loss after a long gap, not yet known to start a burst.
    tentative: bool,
    in_burst: bool,
    current_burst_packets: u64,
    current_burst_lost: u64,
    bursts: u64,
    burst_packets: u64,
    burst_lost: u64,
    gap_packets: u64,
    gap_lost: u64,
}

impl LossTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes the arrival of the packet with extended sequence number `seq`.
    pub fn on_packet(&mut self, seq: u64) {
        let Some(base) = self.base else {
            self.base = Some(seq);
            self.highest = seq;
            self.window = 1;
            return;
        };
        if seq < base {
            // Already judged lost: too late to change the pattern.
            return;
        }
        if seq > self.highest && seq - self.highest > MAX_DROPOUT {
            // A restart: judge what is pending and start over at seq.
            self.flush();
            self.base = Some(seq);
            self.highest = seq;
            self.window = 1;
            return;
        }
        while seq - self.base.unwrap_or(seq) >= 64 {
            self.judge_oldest();
        }
        let base = self.base.unwrap_or(seq);
        self.window |= 1 << (seq - base);
        self.highest = self.highest.max(seq);
        while self.highest - self.base.unwrap_or(self.highest) >= REORDER_WINDOW {
            self.judge_oldest();
        }
    }

    /// Judges every packet still in the window (at the end of a stream).
    pub fn flush(&mut self) {
        while let Some(base) = self.base {
            if base > self.highest {
                break;
            }
            self.judge_oldest();
        }
    }

    fn judge_oldest(&mut self) {
        let Some(base) = self.base else { return };
        let received = self.window & 1 != 0;
        self.window >>= 1;
        self.base = Some(base + 1);
        if received {
            self.on_received();
        } else {
            self.on_lost();
        }
    }

    fn transition(&mut self, lost: bool) {
        match (self.previous_lost, lost) {
            (Some(false), true) => self.received_then_lost += 1,
            (Some(false), false) => self.received_then_received += 1,
            (Some(true), false) => self.lost_then_received += 1,
            (Some(true), true) => self.lost_then_lost += 1,
            (None, _) => {}
        }
        self.previous_lost = Some(lost);
        self.packets += 1;
    }

    fn on_received(&mut self) {
        self.transition(false);
        if self.in_burst || self.tentative {
            // Received packets after a loss wait: a loss within Gmin makes
            // them part of a burst, Gmin of them close it.
            self.run += 1;
            if self.run >= GMIN {
                if self.in_burst {
                    self.bursts += 1;
                    self.burst_packets += self.current_burst_packets;
                    self.burst_lost += self.current_burst_lost;
                } else {
                    self.gap_packets += 1;
                    self.gap_lost += 1;
                }
                self.gap_packets += u64::from(self.run);
                self.in_burst = false;
                self.tentative = false;
            }
        } else {
            self.run = self.run.saturating_add(1);
            self.gap_packets += 1;
        }
    }

    fn on_lost(&mut self) {
        self.transition(true);
        self.lost += 1;
        if self.in_burst {
            self.current_burst_packets += u64::from(self.run) + 1;
            self.current_burst_lost += 1;
        } else if self.tentative {
            // Two losses less than Gmin apart: a burst from the first.
            self.in_burst = true;
            self.tentative = false;
            self.current_burst_packets = 1 + u64::from(self.run) + 1;
            self.current_burst_lost = 2;
        } else {
            self.tentative = true;
        }
        self.run = 0;
    }

    /// The metrics as of now. A burst in progress counts as ended at its
    /// last loss; a pending lone loss counts in the gap.
    pub fn metrics(&self) -> BurstMetrics {
        let (mut bursts, mut burst_packets, mut burst_lost) = (self.bursts, self.burst_packets, self.burst_lost);
        let (mut gap_packets, mut gap_lost) = (self.gap_packets, self.gap_lost);
        if self.in_burst {
            bursts += 1;
            burst_packets += self.current_burst_packets;
            burst_lost += self.current_burst_lost;
            gap_packets += u64::from(self.run);
        } else if self.tentative {
            gap_packets += 1 + u64::from(self.run);
            gap_lost += 1;
        }
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        // Every burst has a gap before it, and there is one after the last.
        let gaps = self.bursts + 1;
        let p = ratio(self.received_then_lost, self.received_then_lost + self.received_then_received);
        let q = ratio(self.lost_then_received, self.lost_then_received + self.lost_then_lost);
        let burst_ratio = if self.lost == 0 || p + q == 0.0 { 1.0 } else { (1.0 / (p + q)).max(0.0) };
        BurstMetrics {
            packets: self.packets,
            lost: self.lost,
            burst_density: ratio(burst_lost, burst_packets),
            gap_density: ratio(gap_lost, gap_packets),
            mean_burst_packets: ratio(burst_packets, bursts),
            mean_gap_packets: ratio(gap_packets, gaps),
            burst_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a pattern (true = received) and flushes.
    fn pattern(received: &[bool]) -> BurstMetrics {
        let mut t = LossTracker::new();
        for (i, &r) in received.iter().enumerate() {
            if r {
                t.on_packet(1000 + i as u64);
            }
        }
        t.flush();
        t.metrics()
    }

    fn runs(parts: &[(bool, usize)]) -> Vec<bool> {
        parts.iter().flat_map(|&(r, n)| std::iter::repeat_n(r, n)).collect()
    }

    #[test]
    fn no_loss_is_one_gap() {
        let m = pattern(&[true; 100]);
        assert_eq!((m.packets, m.lost, m.burst_density, m.gap_density), (100, 0, 0.0, 0.0));
        assert_eq!(m.mean_gap_packets, 100.0);
        assert_eq!(m.burst_ratio, 1.0);
    }

    #[test]
    fn isolated_losses_stay_in_the_gap() {
        let m = pattern(&runs(&[(true, 20), (false, 1), (true, 20), (false, 1), (true, 20)]));
        assert_eq!((m.lost, m.mean_burst_packets, m.burst_density), (2, 0.0, 0.0));
        assert!((m.gap_density - 2.0 / 62.0).abs() < 1e-12);
    }

    #[test]
    fn close_losses_form_a_burst() {
        // Lost, 3 received, lost, lost: a burst of 6 packets with 3 lost.
        let m = pattern(&runs(&[(true, 20), (false, 1), (true, 3), (false, 2), (true, 20)]));
        assert_eq!(m.mean_burst_packets, 6.0);
        assert!((m.burst_density - 0.5).abs() < 1e-12);
        assert_eq!(m.gap_density, 0.0);
        // Two gaps (before and after) of 20 packets each.
        assert_eq!(m.mean_gap_packets, 20.0);
    }

    #[test]
    fn burst_ratio_of_clustered_and_spread_loss() {
        // 10% loss in runs of 5 vs spread evenly: same rate, different ratio.
        // A last received packet closes each pattern: losses after the
        // highest packet are unknown to a receiver.
        let clustered = [runs(&[(true, 45), (false, 5)].repeat(20)), vec![true]].concat();
        let spread = [runs(&[(true, 9), (false, 1)].repeat(100)), vec![true]].concat();
        let (c, s) = (pattern(&clustered), pattern(&spread));
        assert_eq!((c.packets, c.lost), (1001, 100));
        // Runs of 5 losses: q = 1/5, p = 1/45 -> BurstR = 1 / (0.2 + 0.0222) = 4.5.
        assert!((c.burst_ratio - 4.5).abs() < 0.1, "{c:?}");
        // Perfectly alternating loss is less bursty than random: p=1/9, q=1.
        assert!(s.burst_ratio < 1.0);
    }

    #[test]
    fn reordering_within_the_window_is_not_loss() {
        let mut t = LossTracker::new();
        for seq in [0u64, 2, 1, 3, 5, 4, 6, 30, 8, 7, 9] {
            t.on_packet(seq);
        }
        for seq in 10..30 {
            t.on_packet(seq);
        }
        t.flush();
        assert_eq!((t.metrics().packets, t.metrics().lost), (31, 0));
    }

    #[test]
    fn late_beyond_the_window_and_restarts() {
        let mut t = LossTracker::new();
        for seq in (0..100u64).filter(|&s| s != 10) {
            t.on_packet(seq);
        }
        t.on_packet(10);
        t.flush();
        assert_eq!(t.metrics().lost, 1);
        // A jump past MAX_DROPOUT restarts instead of counting 10,000 losses.
        t.on_packet(10_100);
        t.on_packet(10_101);
        t.flush();
        assert_eq!((t.metrics().packets, t.metrics().lost), (102, 1));
    }
}
