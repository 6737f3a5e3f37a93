//! When to send RTCP: the transmission interval of RFC 3550 section 6.3 and
//! appendix A.7, with timer reconsideration, for the small sessions of a
//! phone call.

use crate::session::rng::SessionRng;

/// RFC 3550 section 6.2: the minimum interval between reports, in seconds.
pub const RTCP_MIN_TIME: f64 = 5.0;
/// RFC 3550 section 6.3.1: the compensation for timer reconsideration,
/// e - 3/2, which brings the mean interval back to the intended one.
pub const COMPENSATION: f64 = std::f64::consts::E - 1.5;
/// RFC 3550 section 6.2: the share of the RTCP bandwidth for senders.
pub const SENDER_BW_FRACTION: f64 = 0.25;
/// RFC 3550 section 6.2: the share for receivers.
pub const RECEIVER_BW_FRACTION: f64 = 0.75;
/// Bytes of UDP and IPv4 headers counted in every RTCP packet's size
/// (RFC 3550 section 6.2: "including lower-layer transport headers").
pub const UDP_IPV4_OVERHEAD: usize = 28;

const NS_PER_S: f64 = 1e9;

/// The inputs of one interval computation (RFC 3550 A.7 `rtcp_interval`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalInputs {
    /// Members of the session, this participant included.
    pub members: u32,
    /// Members that sent RTP recently, this participant included.
    pub senders: u32,
    /// The RTCP bandwidth in octets per second (5% of the session
    /// bandwidth by default, RFC 3550 section 6.2).
    pub rtcp_bw: f64,
    /// Whether this participant sent RTP since two reports ago.
    pub we_sent: bool,
    /// The average compound RTCP packet size in octets, headers included.
    pub avg_rtcp_size: f64,
    /// Whether no report has been sent yet (halves the minimum).
    pub initial: bool,
}

/// The deterministic part of the interval, before randomization, in
/// seconds: RFC 3550 A.7 up to (not including) the `drand48() + 0.5` step.
pub fn deterministic_interval(i: &IntervalInputs) -> f64 {
    // The first report may go out sooner so that a new member is heard
    // quickly (section 6.2).
    let min_time = if i.initial { RTCP_MIN_TIME / 2.0 } else { RTCP_MIN_TIME };
    let mut rtcp_bw = i.rtcp_bw;
    let mut n = f64::from(i.members.max(1));
    let senders = f64::from(i.senders);
    // When senders are a quarter of the members or fewer, they share a
    // quarter of the bandwidth and receivers the rest, so that a large
    // audience does not silence the speakers' reports (section 6.2).
    if senders <= f64::from(i.members) * SENDER_BW_FRACTION {
        if i.we_sent {
            rtcp_bw *= SENDER_BW_FRACTION;
            n = senders.max(1.0);
        } else {
            rtcp_bw *= RECEIVER_BW_FRACTION;
            n = (n - senders).max(1.0);
        }
    }
    let t = if rtcp_bw > 0.0 { i.avg_rtcp_size * n / rtcp_bw } else { min_time };
    if t.is_finite() { t.max(min_time) } else { min_time }
}

/// One randomized interval in seconds (RFC 3550 A.7): the deterministic
/// interval times a uniform factor in [0.5, 1.5), divided by
/// [`COMPENSATION`]. The randomization keeps members who joined together
/// from reporting in lockstep.
pub fn rtcp_interval(inputs: &IntervalInputs, rng: &mut SessionRng) -> f64 {
    deterministic_interval(inputs) * (rng.next_f64() + 0.5) / COMPENSATION
}

/// The RTCP timer of one participant in a two-party (or small) session:
/// RFC 3550 A.7 `OnExpire` with timer reconsideration, the average packet
/// size and reverse reconsideration when members leave.
#[derive(Debug, Clone)]
pub struct RtcpScheduler {
    rtcp_bw: f64,
    /// `tp`: when the last report went out (ns).
    last_sent_ns: Option<i64>,
    /// `tn`: when the next report is due (ns).
    next_ns: i64,
    avg_rtcp_size: f64,
    initial: bool,
    members: u32,
    pmembers: u32,
    senders: u32,
    we_sent: bool,
}

impl RtcpScheduler {
    /// A timer started at `now_ns` for a session of `session_bw_bps` bits per
    /// second, RTCP taking 5% of it (RFC 3550 section 6.2). The first report
    /// is scheduled with the initial (halved) minimum; `first_packet_size`
    /// is the probable size of the first compound packet, as A.7 seeds
    /// `avg_rtcp_size`.
    pub fn new(session_bw_bps: u32, first_packet_size: usize, now_ns: i64, rng: &mut SessionRng) -> Self {
        let mut s = RtcpScheduler {
            rtcp_bw: f64::from(session_bw_bps) * 0.05 / 8.0,
            last_sent_ns: None,
            next_ns: now_ns,
            avg_rtcp_size: (first_packet_size + UDP_IPV4_OVERHEAD) as f64,
            initial: true,
            members: 1,
            pmembers: 1,
            senders: 0,
            we_sent: false,
        };
        s.next_ns = now_ns.saturating_add(s.random_interval_ns(rng));
        s
    }

    fn inputs(&self) -> IntervalInputs {
        IntervalInputs {
            members: self.members,
            senders: self.senders,
            rtcp_bw: self.rtcp_bw,
            we_sent: self.we_sent,
            avg_rtcp_size: self.avg_rtcp_size,
            initial: self.initial,
        }
    }

    fn random_interval_ns(&self, rng: &mut SessionRng) -> i64 {
        (rtcp_interval(&self.inputs(), rng) * NS_PER_S) as i64
    }

    /// The deterministic interval as of now, in seconds, the unit of the
    /// member and sender timeouts (RFC 3550 section 6.3.5).
    pub fn deterministic_interval_s(&self) -> f64 {
        deterministic_interval(&self.inputs())
    }

    /// Tells the scheduler who is in the session: `members` and `senders`
    /// both count this participant; `we_sent` is whether it sent RTP since
    /// two reports ago. When members leave, the next report is pulled
    /// forward (reverse reconsideration, RFC 3550 section 6.3.4).
    pub fn set_membership(&mut self, members: u32, senders: u32, we_sent: bool, now_ns: i64) {
        let members = members.max(1);
        if members < self.pmembers {
            let ratio = f64::from(members) / f64::from(self.pmembers);
            let ahead = self.next_ns.saturating_sub(now_ns).max(0);
            self.next_ns = now_ns.saturating_add((ratio * ahead as f64) as i64);
            if let Some(tp) = self.last_sent_ns {
                let behind = now_ns.saturating_sub(tp).max(0);
                self.last_sent_ns = Some(now_ns.saturating_sub((ratio * behind as f64) as i64));
            }
            self.pmembers = members;
        }
        self.members = members;
        self.senders = senders.min(members);
        self.we_sent = we_sent;
    }

    /// Counts a compound RTCP packet of `size` bytes (UDP payload), sent or
    /// received, in the running average (RFC 3550 section 6.3.3).
    pub fn on_packet_size(&mut self, size: usize) {
        let size = (size + UDP_IPV4_OVERHEAD) as f64;
        self.avg_rtcp_size = size / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
    }

    /// When the timer expires next (ns): the engine's deadline.
    pub fn deadline_ns(&self) -> i64 {
        self.next_ns
    }

    /// The average packet size in bytes, headers included.
    pub fn avg_rtcp_size(&self) -> f64 {
        self.avg_rtcp_size
    }

    /// Whether no report has been sent yet.
    pub fn is_initial(&self) -> bool {
        self.initial
    }

    /// RFC 3550 A.7 `OnExpire` at `now_ns`: `true` when a report should go
    /// out now (the caller then sends it and calls
    /// [`on_sent`](Self::on_sent)). Otherwise the interval was recomputed
    /// from `tp` with the current membership and the timer moved to the
    /// reconsidered time (timer reconsideration, section 6.3.6).
    pub fn poll(&mut self, now_ns: i64, rng: &mut SessionRng) -> bool {
        if now_ns < self.next_ns {
            return false;
        }
        let base = self.last_sent_ns.unwrap_or(i64::MIN / 2);
        let tn = base.saturating_add(self.random_interval_ns(rng));
        self.pmembers = self.members;
        if tn <= now_ns {
            true
        } else {
            self.next_ns = tn;
            false
        }
    }

    /// Records a report sent at `now_ns` of `size` bytes and schedules the
    /// next one.
    pub fn on_sent(&mut self, size: usize, now_ns: i64, rng: &mut SessionRng) {
        self.on_packet_size(size);
        self.last_sent_ns = Some(now_ns);
        self.initial = false;
        self.pmembers = self.members;
        self.next_ns = now_ns.saturating_add(self.random_interval_ns(rng));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(members: u32, senders: u32, we_sent: bool) -> IntervalInputs {
        IntervalInputs { members, senders, rtcp_bw: 500.0, we_sent, avg_rtcp_size: 100.0, initial: false }
    }

    #[test]
    fn minimum_interval_and_initial_halving() {
        // Two members, 100-byte packets, 500 B/s: 0.4 s, raised to 5 s.
        assert_eq!(deterministic_interval(&inputs(2, 1, true)), RTCP_MIN_TIME);
        let initial = IntervalInputs { initial: true, ..inputs(2, 1, true) };
        assert_eq!(deterministic_interval(&initial), 2.5);
    }

    #[test]
    fn sender_and_receiver_shares_of_a_large_session() {
        // 100 members, 5 senders (<= 25%): a sender splits a quarter of the
        // bandwidth with 4 others, a receiver three quarters with 95.
        let sender = deterministic_interval(&IntervalInputs { avg_rtcp_size: 1000.0, ..inputs(100, 5, true) });
        assert!((sender - 1000.0 * 5.0 / (500.0 * 0.25)).abs() < 1e-9);
        let receiver = deterministic_interval(&IntervalInputs { avg_rtcp_size: 1000.0, ..inputs(100, 5, false) });
        assert!((receiver - 1000.0 * 95.0 / (500.0 * 0.75)).abs() < 1e-9);
        // With more than a quarter sending, everyone shares everything.
        let even = deterministic_interval(&IntervalInputs { avg_rtcp_size: 1000.0, ..inputs(100, 50, true) });
        assert!((even - 1000.0 * 100.0 / 500.0).abs() < 1e-9);
    }

    #[test]
    fn randomized_interval_spans_half_to_one_and_a_half_over_compensation() {
        let mut rng = SessionRng::new(3);
        let i = inputs(2, 2, true);
        let (mut lo, mut hi, mut sum) = (f64::MAX, 0.0f64, 0.0);
        for _ in 0..20_000 {
            let t = rtcp_interval(&i, &mut rng);
            lo = lo.min(t);
            hi = hi.max(t);
            sum += t;
        }
        let (min, max) = (5.0 * 0.5 / COMPENSATION, 5.0 * 1.5 / COMPENSATION);
        assert!(lo >= min && hi < max);
        assert!(lo < min + 0.01 && hi > max - 0.01, "{lo} {hi}");
        assert!((sum / 20_000.0 - 5.0 / COMPENSATION).abs() < 0.03);
    }

    #[test]
    fn scheduler_first_report_within_initial_bounds_then_regular() {
        let mut rng = SessionRng::new(9);
        let mut s = RtcpScheduler::new(64_000, 72, 0, &mut rng);
        let first = s.deadline_ns();
        assert!(first as f64 >= 2.5e9 * 0.5 / COMPENSATION && (first as f64) < 2.5e9 * 1.5 / COMPENSATION);
        assert!(!s.poll(first - 1, &mut rng));
        // Initially tp is "never", so reconsideration always lets it go.
        assert!(s.poll(first, &mut rng));
        s.on_sent(72, first, &mut rng);
        let gap = s.deadline_ns() - first;
        assert!(gap as f64 >= 5e9 * 0.5 / COMPENSATION && (gap as f64) < 5e9 * 1.5 / COMPENSATION);
        assert!(!s.is_initial());
    }

    #[test]
    fn reconsideration_postpones_when_the_interval_grew() {
        let mut rng = SessionRng::new(5);
        // A tiny bandwidth so that the interval is set by size, not minimum.
        let mut s = RtcpScheduler::new(800, 200, 0, &mut rng);
        s.on_sent(200, 0, &mut rng);
        let due = s.deadline_ns();
        // Many new members: the recomputed interval is far longer.
        s.set_membership(500, 1, false, 0);
        assert!(!s.poll(due, &mut rng));
        assert!(s.deadline_ns() > due);
    }

    #[test]
    fn reverse_reconsideration_pulls_the_timer_forward() {
        let mut rng = SessionRng::new(5);
        let mut s = RtcpScheduler::new(800, 200, 0, &mut rng);
        s.set_membership(10, 1, false, 0);
        s.on_sent(200, 0, &mut rng);
        let before = s.deadline_ns();
        s.set_membership(5, 1, false, 0);
        assert_eq!(s.deadline_ns(), before / 2);
    }

    #[test]
    fn average_size_moves_by_a_sixteenth() {
        let mut rng = SessionRng::new(1);
        let mut s = RtcpScheduler::new(64_000, 72, 0, &mut rng);
        assert_eq!(s.avg_rtcp_size(), 100.0);
        s.on_packet_size(244);
        assert_eq!(s.avg_rtcp_size(), 272.0 / 16.0 + 100.0 * 15.0 / 16.0);
    }
}
