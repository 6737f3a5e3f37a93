//! The target playout delay, learnt from packet arrivals.
//!
//! Every packet's *transit* (`arrival - timestamp / clock`) is compared with
//! a reference, the smallest transit seen in the last five seconds; the
//! difference is the packet's relative delay: how much later it came than
//! the fastest recent packet. A playout point that many milliseconds behind
//! the fastest packet would have caught it. The relative delays go into a
//! histogram with exponential forgetting (old network conditions fade out
//! over tens of seconds), and the target is a high quantile of it, the same
//! idea as WebRTC NetEQ's delay manager.
//!
//! The reference falls at once with a faster packet but rises no faster
//! than clock drift could make it: under wide jitter a packet at the delay
//! floor is rare, the five-second minimum jumps up by several milliseconds
//! whenever one leaves the window, and since the histogram remembers delays
//! told against the lower reference while the current delay is told against
//! the new one, each jump read as the delay falling under the target (a
//! packet of needless expansion).
//!
//! Sparse, tall delay spikes (Wi-Fi stalls, LTE handovers) barely move a
//! quantile but cause most of the late losses, so a peak detector watches for
//! relative delays far above the target; when spikes keep coming, the target
//! is held at a level that covers a typical spike until they stop. A peak
//! whose packets keep coming at the packet rate rather than in one burst is a
//! step in the path delay (a handover, a route change): while it lasts, the
//! buffer does not cut its delay ([`DelayManager::in_delay_step`]).

use std::collections::VecDeque;

/// How long the minimal-transit reference looks back, in seconds. Long
/// enough that the reference rarely moves under Gaussian jitter (with FIFO
/// delivery a packet at the delay floor is rare: on 2 s it jumped by several
/// ms whenever the fastest packet left the window, and each jump looked like
/// a delay change worth a packet of time-stretching), short enough to follow
/// clock drift (200 ppm moves transit 1 ms in 5 s).
const MIN_TRANSIT_WINDOW_S: f64 = 5.0;
/// How long a delay peak stays in memory, in seconds.
const PEAK_MEMORY_S: f64 = 20.0;
/// A peak whose packets span at least this long came at the packet rate, not
/// as one burst: a step in the path delay rather than a stall.
const DELAY_STEP_MIN_S: f64 = 0.1;
/// How long after the last packet of such a step it still counts as going on.
const DELAY_STEP_HOLD_S: f64 = 0.3;
/// Histogram resolution in milliseconds.
const BUCKET_MS: f64 = 1.0;
/// Packets learnt before anything counts as a peak.
const WARMUP_PACKETS: u64 = 50;
/// How fast the reference may rise towards a higher five-second minimum,
/// seconds per second: 300 ppm, more than the 200 ppm clock drift it has to
/// follow.
const REFERENCE_RISE_PER_S: f64 = 0.0003;
/// A five-second minimum this far (s) above the reference is a lasting rise
/// of the path delay (a new route), not a rare fast packet gone: the
/// reference jumps to it.
const REFERENCE_JUMP_S: f64 = 0.05;
/// Weights are rescaled when they grow past this, keeping them finite.
const RESCALE_AT: f64 = 1e200;

/// Tuning of the delay estimator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayConfig {
    /// The fraction of packets the target should catch (0.95 .. 0.999).
    pub quantile: f64,
    /// Per-packet forgetting factor of the histogram (0.99 .. 0.9999).
    pub forget_factor: f64,
    /// Largest target, in milliseconds; also the histogram's range.
    pub max_delay_ms: f64,
    /// Smallest target, in milliseconds.
    pub min_delay_ms: f64,
    /// A relative delay this far above the quantile target is a peak, ms.
    pub peak_threshold_ms: f64,
    /// The smallest delay to start playout at while the first packets are
    /// being learnt, ms: a start with no margin stalls on the second packet.
    pub initial_delay_ms: f64,
}

impl Default for DelayConfig {
    fn default() -> Self {
        DelayConfig { quantile: 0.99, forget_factor: 0.9983, max_delay_ms: 1000.0, min_delay_ms: 0.0, peak_threshold_ms: 60.0, initial_delay_ms: 20.0 }
    }
}

/// A delay peak: when its first and last packets came (s) and how tall it
/// was (ms).
#[derive(Debug, Clone, Copy)]
struct Peak {
    since: f64,
    at: f64,
    height_ms: f64,
}

/// Learns the target playout delay from arrival times (see the module docs).
#[derive(Debug, Clone)]
pub struct DelayManager {
    config: DelayConfig,
    /// Histogram of relative delays; bucket `i` holds `[i, i+1)` ms, kept
    /// as a Fenwick tree so that both adding a packet and finding the
    /// quantile take O(log buckets). The weights are unnormalised and grow by
    /// `1/forget` per packet so that forgetting never touches old buckets.
    histogram: Fenwick,
    /// The weight the next packet adds.
    next_weight: f64,
    /// Sum of all bucket weights.
    total: f64,
    /// Sliding minimum of transit: a deque of (arrival, transit), increasing
    /// in transit, covering the last `MIN_TRANSIT_WINDOW_S`.
    min_transit: VecDeque<(f64, f64)>,
    /// Peaks of the last `PEAK_MEMORY_S`, oldest first.
    peaks: VecDeque<Peak>,
    /// The quantile target as of the last packet, ms.
    quantile_ms: f64,
    packets: u64,
    /// The reference transit (s) and the arrival (s) it was set at.
    reference: Option<(f64, f64)>,
}

impl DelayManager {
    /// A fresh estimator.
    pub fn new(config: DelayConfig) -> Self {
        let n = (config.max_delay_ms / BUCKET_MS).ceil().max(1.0) as usize + 1;
        DelayManager {
            config,
            histogram: Fenwick::new(n),
            next_weight: 1.0,
            total: 0.0,
            min_transit: VecDeque::with_capacity(512),
            peaks: VecDeque::with_capacity(64),
            quantile_ms: config.min_delay_ms,
            packets: 0,
            reference: None,
        }
    }

    /// Forgets everything (a new source on a new path).
    pub fn reset(&mut self) {
        self.histogram.scale(0.0);
        self.next_weight = 1.0;
        self.total = 0.0;
        self.min_transit.clear();
        self.reference = None;
        self.peaks.clear();
        self.quantile_ms = self.config.min_delay_ms;
        self.packets = 0;
    }

    /// Forgets the transit reference only: after a timestamp jump the
    /// transit values of the new timeline are unrelated to the old ones,
    /// while the delay distribution (the network) stays the same.
    pub fn rebase(&mut self) {
        self.min_transit.clear();
        self.reference = None;
    }

    /// The reference transit, in seconds, if any: the smallest transit of
    /// the last five seconds, risen towards a higher one no faster than
    /// clock drift (see the module docs).
    pub fn min_transit(&self) -> Option<f64> {
        self.reference.map(|(r, _)| r)
    }

    /// Records one packet that arrived at `arrival` (s) with transit
    /// `transit` (s, arrival minus media time); returns its relative delay
    /// in ms.
    pub fn update(&mut self, arrival: f64, transit: f64) -> f64 {
        while self.min_transit.back().is_some_and(|&(_, t)| t >= transit) {
            self.min_transit.pop_back();
        }
        self.min_transit.push_back((arrival, transit));
        while self.min_transit.front().is_some_and(|&(a, _)| a < arrival - MIN_TRANSIT_WINDOW_S) {
            self.min_transit.pop_front();
        }
        let window_min = self.min_transit.front().map_or(transit, |&(_, t)| t);
        let reference = match self.reference {
            Some((r, at)) if window_min > r && window_min - r < REFERENCE_JUMP_S => window_min.min(r + REFERENCE_RISE_PER_S * (arrival - at).max(0.0)),
            _ => window_min,
        };
        self.reference = Some((reference, arrival));
        let relative_ms = ((transit - reference) * 1000.0).max(0.0);

        while self.peaks.front().is_some_and(|p| p.at < arrival - PEAK_MEMORY_S) {
            self.peaks.pop_front();
        }
        // A packet far above the target belongs to a delay peak (a stall or
        // a route change). Peaks are tracked apart and kept out of the
        // histogram: a few of them would hold a high quantile up for half a
        // minute, while riding one out costs a single stall.
        if self.packets >= WARMUP_PACKETS && relative_ms > self.quantile_ms + self.config.peak_threshold_ms {
            match self.peaks.back_mut() {
                // Packets of one peak arrive back to back: count it once.
                Some(p) if arrival - p.at < 0.5 => {
                    p.height_ms = p.height_ms.max(relative_ms);
                    p.at = arrival;
                }
                _ => {
                    if self.peaks.len() == self.peaks.capacity() {
                        self.peaks.pop_front();
                    }
                    self.peaks.push_back(Peak { since: arrival, at: arrival, height_ms: relative_ms });
                }
            }
            return relative_ms;
        }

        // Forgetting, with a faster start: the first packets must move the
        // estimate on their own (NetEQ ramps its forget factor the same way).
        self.packets += 1;
        let forget = self.config.forget_factor.min(1.0 - 1.0 / (self.packets as f64 + 1.0));
        self.next_weight /= forget;
        if self.next_weight > RESCALE_AT {
            let scale = 1.0 / self.next_weight;
            self.histogram.scale(scale);
            self.total *= scale;
            self.next_weight = 1.0;
        }
        let last = self.histogram.len() - 1;
        let index = ((relative_ms / BUCKET_MS) as usize).min(last);
        self.histogram.add(index, self.next_weight);
        self.total += self.next_weight;
        self.quantile_ms = self.quantile();
        relative_ms
    }

    /// The smallest delay that covers `quantile` of the weighted histogram.
    fn quantile(&self) -> f64 {
        if self.total <= 0.0 {
            return self.config.min_delay_ms;
        }
        let bucket = self.histogram.first_reaching(self.config.quantile * self.total);
        (bucket as f64 + 1.0) * BUCKET_MS
    }

    /// Whether enough packets have been seen for the target to mean
    /// something (before, [`start_target_ms`](Self::start_target_ms) is a
    /// guess).
    pub fn learnt(&self) -> bool {
        self.packets >= WARMUP_PACKETS
    }

    /// The delay to start a talk spurt at, ms: the target, but at least
    /// `initial_delay_ms` while the first packets are being learnt.
    pub fn start_target_ms(&self, now: f64) -> f64 {
        let target = self.target_ms(now);
        if !self.learnt() {
            target.max(self.config.initial_delay_ms.min(self.config.max_delay_ms))
        } else {
            target
        }
    }

    /// Whether the path delay has stepped up and stays up at `now` (s): the
    /// latest peak's packets have been coming for a while, as after an LTE
    /// handover, rather than all at once, as after a Wi-Fi stall. The target
    /// ignores such a step (it may be over in two seconds), so playout rides
    /// it out by stalling once; cutting the delay back while the step lasts
    /// would only stall again.
    pub fn in_delay_step(&self, now: f64) -> bool {
        self.peaks.back().is_some_and(|p| p.at - p.since >= DELAY_STEP_MIN_S && now - p.at < DELAY_STEP_HOLD_S)
    }

    /// The target delay in ms, with spikes considered at time `now` (s).
    pub fn target_ms(&self, now: f64) -> f64 {
        let mut target = self.quantile_ms;
        // Three or more recent peaks mean stalls recur: cover a typical one.
        // (One or two, such as handovers, are cheaper to ride out by
        // stalling playout once than to pay for with delay all the time.)
        let recent = self.peaks.iter().filter(|p| p.at >= now - PEAK_MEMORY_S);
        let (count, sum) = recent.fold((0usize, 0.0), |(n, s), p| (n + 1, s + p.height_ms));
        if count >= 3 {
            target = target.max(sum / count as f64);
        }
        target.clamp(self.config.min_delay_ms, self.config.max_delay_ms)
    }
}

/// A Fenwick (binary indexed) tree of non-negative weights.
#[derive(Debug, Clone)]
struct Fenwick {
    /// 1-based partial sums.
    tree: Vec<f64>,
}

impl Fenwick {
    fn new(len: usize) -> Self {
        Fenwick { tree: vec![0.0; len + 1] }
    }

    fn len(&self) -> usize {
        self.tree.len() - 1
    }

    fn add(&mut self, index: usize, weight: f64) {
        let mut i = index + 1;
        while i < self.tree.len() {
            self.tree[i] += weight;
            i += i & i.wrapping_neg();
        }
    }

    /// Multiplies every weight by `factor` (partial sums scale alike).
    fn scale(&mut self, factor: f64) {
        self.tree.iter_mut().for_each(|w| *w *= factor);
    }

    /// The smallest index whose prefix sum (inclusive) reaches `target`;
    /// the last index when no prefix does (rounding).
    fn first_reaching(&self, target: f64) -> usize {
        let n = self.len();
        let mut pos = 0;
        let mut remaining = target;
        let mut step = if n == 0 { 0 } else { 1 << (usize::BITS - 1 - n.leading_zeros()) };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < remaining {
                pos = next;
                remaining -= self.tree[next];
            }
            step >>= 1;
        }
        pos.min(n.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(dm: &mut DelayManager, delays_ms: impl IntoIterator<Item = f64>) -> f64 {
        feed_from(dm, 0.0, delays_ms)
    }

    /// Packets sent every 20 ms from `t` (s) with the given delays; returns
    /// the send time after the last.
    fn feed_from(dm: &mut DelayManager, mut t: f64, delays_ms: impl IntoIterator<Item = f64>) -> f64 {
        for d in delays_ms {
            dm.update(t + d / 1000.0, d / 1000.0);
            t += 0.02;
        }
        t
    }

    #[test]
    fn fenwick_quantile_matches_a_linear_scan() {
        let weights: Vec<f64> = (0..37).map(|i| ((i * 7919) % 13) as f64).collect();
        let mut tree = Fenwick::new(weights.len());
        weights.iter().enumerate().for_each(|(i, &w)| tree.add(i, w));
        let total: f64 = weights.iter().sum();
        for k in 1..=20 {
            let target = total * k as f64 / 20.0;
            let mut sum = 0.0;
            let expected = weights.iter().position(|&w| {
                sum += w;
                sum >= target
            });
            assert_eq!(Some(tree.first_reaching(target)), expected, "k={k}");
        }
    }

    #[test]
    fn constant_delay_gives_a_tiny_target() {
        let mut dm = DelayManager::new(DelayConfig::default());
        let t = feed(&mut dm, std::iter::repeat_n(30.0, 500));
        assert!(dm.target_ms(t) <= 1.0, "{}", dm.target_ms(t));
    }

    #[test]
    fn target_tracks_the_quantile_of_jitter() {
        let mut dm = DelayManager::new(DelayConfig::default());
        // Delays 0..49 ms, uniform: the 99% quantile is about 49 ms.
        let t = feed(&mut dm, (0..3000).map(|i| ((i * 37) % 50) as f64));
        let target = dm.target_ms(t);
        assert!((44.0..=51.0).contains(&target), "{target}");
    }

    #[test]
    fn the_target_forgets_old_jitter() {
        let mut dm = DelayManager::new(DelayConfig::default());
        let t = feed(&mut dm, (0..1000).map(|i| ((i * 37) % 80) as f64));
        let high = dm.target_ms(t);
        feed(&mut dm, std::iter::repeat_n(5.0, 3000));
        assert!(high > 60.0 && dm.target_ms(1e6) < 10.0);
    }

    #[test]
    fn a_delay_step_is_told_apart_from_a_stall() {
        let mut dm = DelayManager::new(DelayConfig::default());
        let mut t = feed(&mut dm, std::iter::repeat_n(10.0, 500));
        // A stall: ten packets sent over 200 ms arrive together at its end.
        let end = t + 0.2 + 0.01;
        for k in 0..10 {
            let sent = t + 0.02 * k as f64;
            let arrival = end + 0.0003 * k as f64;
            dm.update(arrival, arrival - sent);
        }
        t += 0.2;
        assert!(!dm.in_delay_step(end), "a stall's backlog comes at once");
        t = feed_from(&mut dm, t, std::iter::repeat_n(10.0, 100));
        // A handover: the delay steps up 120 ms and stays up, packet by packet.
        let start = t;
        t = feed_from(&mut dm, t, std::iter::repeat_n(130.0, 25));
        assert!(dm.in_delay_step(t), "step going on");
        assert!(dm.target_ms(t) < 20.0, "the target leaves the step out: {}", dm.target_ms(t));
        t = feed_from(&mut dm, t, std::iter::repeat_n(10.0, 25));
        assert!(!dm.in_delay_step(t), "step over {} s after it started", t - start);
    }

    #[test]
    fn the_reference_rises_no_faster_than_clock_drift() {
        let mut dm = DelayManager::new(DelayConfig::default());
        // One fast packet (0 ms) among 10 ms ones: when it leaves the
        // five-second window, the reference creeps up at 0.3 ms/s.
        let mut t = feed(&mut dm, [10.0, 0.0]);
        t = feed_from(&mut dm, t, std::iter::repeat_n(10.0, 223));
        assert!(dm.min_transit().is_some_and(|r| r < 1e-9), "{:?}", dm.min_transit());
        // 5 s on, the fast packet (arrived at 0.02 s) left the window 4.5 s ago.
        t = feed_from(&mut dm, t, std::iter::repeat_n(10.0, 250));
        let risen = dm.min_transit().expect("set") * 1000.0;
        assert!((1.2..=1.4).contains(&risen), "{risen} ms, not the window's 10 ms");
        // A new route 60 ms slower is a jump, once the old one left the window.
        feed_from(&mut dm, t, std::iter::repeat_n(80.0, 300));
        let r = dm.min_transit().expect("set") * 1000.0;
        assert!((r - 80.0).abs() < 1e-6, "{r}");
        // Drift of -200 ppm (transit growing 0.2 ms/s) is followed: the
        // reference stays with the five-second minimum, 1 ms (5 s of drift)
        // under the newest packets.
        let mut dm = DelayManager::new(DelayConfig::default());
        let floor = |k: usize| 10.0 + 0.004 * k as f64;
        feed(&mut dm, (0..3000).map(floor));
        let lag = floor(2999) - dm.min_transit().expect("set") * 1000.0;
        assert!((0.9..1.1).contains(&lag), "lag {lag} ms");
    }

    #[test]
    fn recurring_spikes_raise_the_target() {
        let mut dm = DelayManager::new(DelayConfig::default());
        // One packet in 200: too rare for the 99% quantile, not for the peak detector.
        let spikes = (0..2000).map(|i| if i % 200 == 50 { 120.0 } else { 10.0 });
        let t = feed(&mut dm, spikes);
        assert!(dm.target_ms(t) >= 100.0, "{}", dm.target_ms(t));
        assert!(dm.target_ms(t + 60.0) < 20.0, "spikes are forgotten");
    }
}
