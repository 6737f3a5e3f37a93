//! Symmetric RTP: which source address media is accepted from, and when
//! the session latches onto (and sends to) the address packets actually come
//! from, as a NATed peer needs (RFC 4961 symmetric RTP; the "latching" of
//! RFC 7362 section 4).
//!
//! Latching makes hijacking easy if done naively: RFC 7362 section 5.1
//! describes a third party that sends packets to the port first and steals
//! the media. The rules here:
//!
//! 1. Before latching, a source becomes the remote after `packets_to_latch`
//!    consecutive packets with one SSRC (the expected one, when signalling
//!    gave it) and sequence numbers that follow each other. The packets that
//!    lead up to it are not delivered.
//! 2. Once latched, packets from the latched address are accepted; an SSRC
//!    change there is the same peer restarting its stream.
//! 3. A packet from another address with another SSRC is ignored: a third
//!    party cannot take over a live call.
//! 4. Another address re-latches only (a) with the latched SSRC and sequence
//!    numbers continuing the latched stream (the peer's NAT binding moved),
//!    or (b) after the latched source has been silent for `silence_relatch_ns`
//!    (the peer is gone or was transferred); either way only after
//!    `packets_to_latch` consecutive packets.
//! 5. When signalling moves the peer's media to a new address (a re-INVITE),
//!    the address media came from until then is superseded: it loses the
//!    latch, and for `silence_relatch_ns` its packets cannot latch, so the
//!    peer's media from the new address latches even while packets from the
//!    old one are still arriving. After that it may latch again like any
//!    source (a peer whose media did not in fact move).

/// The latching policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatchConfig {
    /// Consecutive packets a source must send to be latched, at least 1.
    pub packets_to_latch: u32,
    /// How long the latched source must be silent before any other source
    /// may take over, ns.
    pub silence_relatch_ns: i64,
    /// Largest forward step of the sequence number that still counts as
    /// continuous (a few packets may be lost on the way).
    pub max_sequence_step: u16,
}

impl Default for LatchConfig {
    /// Two packets to latch, 2 s of silence before another SSRC may take
    /// over, steps of up to 64 packets.
    fn default() -> Self {
        LatchConfig { packets_to_latch: 2, silence_relatch_ns: 2_000_000_000, max_sequence_step: 64 }
    }
}

/// What the latch made of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchVerdict {
    /// From the latched source: deliver it.
    Accept,
    /// This packet latched its source (first latch or a move): deliver it,
    /// and send to its address from now on.
    Latched,
    /// Counted towards latching its source; not delivered.
    Pending,
    /// From a source that may not take over: drop it.
    Foreign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source<A> {
    addr: A,
    ssrc: u32,
    last_sequence: u16,
}

/// The symmetric-RTP latch of one session, generic over the address type
/// (a `SocketAddr` in the engine).
#[derive(Debug, Clone)]
pub struct Latch<A> {
    config: LatchConfig,
    expected_ssrc: Option<u32>,
    current: Option<Source<A>>,
    last_current_ns: i64,
    candidate: Option<(Source<A>, u32)>,
    /// An address signalling moved the peer away from, and until when (ns)
    /// its packets are refused (rule 5).
    superseded: Option<(A, i64)>,
}

impl<A: Copy + Eq> Latch<A> {
    /// A latch with `config`; `expected_ssrc` is the peer's SSRC when
    /// signalling announced it (SDP `a=ssrc`), so that only it can latch.
    pub fn new(config: LatchConfig, expected_ssrc: Option<u32>) -> Self {
        let config = LatchConfig { packets_to_latch: config.packets_to_latch.max(1), ..config };
        Latch { config, expected_ssrc, current: None, last_current_ns: 0, candidate: None, superseded: None }
    }

    /// Signalling moved the peer's media away from `addr` at `now_ns`
    /// (rule 5): if `addr` holds the latch it loses it (media then goes to
    /// the signalled address until a source latches), and for
    /// `silence_relatch_ns` its packets are refused.
    pub fn supersede(&mut self, addr: A, now_ns: i64) {
        if self.current.is_some_and(|c| c.addr == addr) {
            self.current = None;
        }
        if self.candidate.is_some_and(|(c, _)| c.addr == addr) {
            self.candidate = None;
        }
        self.superseded = Some((addr, now_ns.saturating_add(self.config.silence_relatch_ns)));
    }

    /// The address media comes from and goes to, once latched.
    pub fn remote(&self) -> Option<A> {
        self.current.map(|c| c.addr)
    }

    /// The SSRC of the latched source.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.current.map(|c| c.ssrc)
    }

    fn follows(&self, last: u16, seq: u16) -> bool {
        (1..=self.config.max_sequence_step).contains(&seq.wrapping_sub(last))
    }

    /// Judges an RTP packet (already parsed and otherwise valid) from
    /// `from` with `ssrc` and sequence number `seq`, arriving at `now_ns`.
    pub fn on_rtp(&mut self, from: A, ssrc: u32, seq: u16, now_ns: i64) -> LatchVerdict {
        if let Some((addr, until_ns)) = self.superseded {
            if now_ns >= until_ns {
                self.superseded = None;
            } else if from == addr {
                return LatchVerdict::Foreign;
            }
        }
        let Some(current) = self.current else {
            if self.expected_ssrc.is_some_and(|e| e != ssrc) {
                return LatchVerdict::Foreign;
            }
            return self.step_candidate(from, ssrc, seq, now_ns, None);
        };
        if from == current.addr {
            self.current = Some(Source { addr: from, ssrc, last_sequence: seq });
            self.last_current_ns = now_ns;
            return LatchVerdict::Accept;
        }
        let silent = now_ns.saturating_sub(self.last_current_ns) >= self.config.silence_relatch_ns;
        if ssrc == current.ssrc {
            // Rule 4a: the same stream from a new address must continue it.
            return self.step_candidate(from, ssrc, seq, now_ns, Some(current.last_sequence));
        }
        if silent {
            return self.step_candidate(from, ssrc, seq, now_ns, None);
        }
        LatchVerdict::Foreign
    }

    /// Counts a packet towards latching `from`; `continues` is the sequence
    /// number the first packet must follow, if any.
    fn step_candidate(&mut self, from: A, ssrc: u32, seq: u16, now_ns: i64, continues: Option<u16>) -> LatchVerdict {
        let count = match self.candidate {
            Some((c, n)) if c.addr == from && c.ssrc == ssrc && self.follows(c.last_sequence, seq) => n + 1,
            _ => match continues {
                Some(last) if !self.follows(last, seq) => {
                    self.candidate = None;
                    return LatchVerdict::Foreign;
                }
                _ => 1,
            },
        };
        let source = Source { addr: from, ssrc, last_sequence: seq };
        if count >= self.config.packets_to_latch {
            self.current = Some(source);
            self.last_current_ns = now_ns;
            self.candidate = None;
            LatchVerdict::Latched
        } else {
            self.candidate = Some((source, count));
            LatchVerdict::Pending
        }
    }

    /// Whether RTCP from `from` claiming sender `ssrc` belongs to the
    /// latched peer: from its address (rtcp-mux) or carrying its SSRC
    /// (RTCP on its own port). Before latching, anything that matches the
    /// expected SSRC, if one was signalled, is accepted.
    pub fn accepts_rtcp(&self, from: A, ssrc: u32) -> bool {
        match self.current {
            Some(c) => c.addr == from || c.ssrc == ssrc,
            None => self.expected_ssrc.is_none_or(|e| e == ssrc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LatchVerdict::*;

    const S: i64 = 1_000_000_000;
    const PEER: u32 = 1;
    const NAT_MOVED: u32 = 2;
    const ATTACKER: u32 = 3;

    fn latched() -> Latch<u32> {
        let mut l = Latch::new(LatchConfig::default(), None);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 10, 0), Pending);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 11, 0), Latched);
        l
    }

    #[test]
    fn latches_after_n_consecutive_packets() {
        let l = latched();
        assert_eq!((l.remote(), l.remote_ssrc()), (Some(PEER), Some(0xAAAA)));
        let mut l = Latch::new(LatchConfig { packets_to_latch: 3, ..Default::default() }, None);
        assert_eq!(l.on_rtp(PEER, 5, 1, 0), Pending);
        // A break in the sequence starts the count again.
        assert_eq!(l.on_rtp(PEER, 5, 500, 0), Pending);
        assert_eq!(l.on_rtp(PEER, 5, 501, 0), Pending);
        assert_eq!(l.on_rtp(PEER, 5, 502, 0), Latched);
    }

    #[test]
    fn only_the_expected_ssrc_latches() {
        let mut l = Latch::new(LatchConfig::default(), Some(0xAAAA));
        assert_eq!(l.on_rtp(ATTACKER, 0xBBBB, 1, 0), Foreign);
        assert_eq!(l.on_rtp(ATTACKER, 0xBBBB, 2, 0), Foreign);
        assert_eq!(l.remote(), None);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 7, 0), Pending);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 8, 0), Latched);
    }

    #[test]
    fn a_third_party_with_another_ssrc_is_ignored_mid_call() {
        let mut l = latched();
        for i in 0..10 {
            assert_eq!(l.on_rtp(ATTACKER, 0xBBBB, 100 + i, S / 10), Foreign);
        }
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 12, S / 5), Accept);
        assert_eq!(l.remote(), Some(PEER));
    }

    #[test]
    fn same_ssrc_with_continuity_relatches_after_n() {
        let mut l = latched();
        assert_eq!(l.on_rtp(NAT_MOVED, 0xAAAA, 12, S), Pending);
        assert_eq!(l.on_rtp(NAT_MOVED, 0xAAAA, 13, S), Latched);
        assert_eq!(l.remote(), Some(NAT_MOVED));
        // The old address is now just another source.
        assert_eq!(l.on_rtp(PEER, 0xCCCC, 14, S), Foreign);
    }

    #[test]
    fn same_ssrc_without_continuity_is_foreign() {
        let mut l = latched();
        // A replayed or guessed SSRC far from the live sequence.
        assert_eq!(l.on_rtp(ATTACKER, 0xAAAA, 40_000, S), Foreign);
        assert_eq!(l.on_rtp(ATTACKER, 0xAAAA, 40_001, S), Foreign);
        assert_eq!(l.remote(), Some(PEER));
    }

    #[test]
    fn another_ssrc_takes_over_only_after_silence() {
        let mut l = latched();
        assert_eq!(l.on_rtp(NAT_MOVED, 0xDDDD, 1, S), Foreign);
        assert_eq!(l.on_rtp(NAT_MOVED, 0xDDDD, 2, 2 * S), Pending);
        assert_eq!(l.on_rtp(NAT_MOVED, 0xDDDD, 3, 2 * S), Latched);
        assert_eq!(l.remote_ssrc(), Some(0xDDDD));
    }

    #[test]
    fn ssrc_change_on_the_latched_address_is_accepted() {
        let mut l = latched();
        assert_eq!(l.on_rtp(PEER, 0xEEEE, 9000, S), Accept);
        assert_eq!(l.remote_ssrc(), Some(0xEEEE));
    }

    #[test]
    fn a_superseded_address_loses_the_latch_and_cannot_take_it_back_for_a_while() {
        // A re-INVITE moved the peer's media to NEW (another port, another
        // SSRC) while packets from its old address are still arriving.
        const NEW: u32 = 4;
        let mut l = latched();
        l.supersede(PEER, S);
        assert_eq!(l.remote(), None); // media goes to the signalled address
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 12, S), Foreign);
        assert_eq!(l.on_rtp(NEW, 0xCCCC, 1, S), Pending);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 13, S), Foreign); // does not break NEW's count
        assert_eq!(l.on_rtp(NEW, 0xCCCC, 2, S), Latched);
        assert_eq!(l.remote(), Some(NEW));
        // A fresh latch (a new session after the move) refuses the old
        // address the same way, and takes it once the window has passed:
        // a peer whose media did not in fact move.
        let mut l = Latch::new(LatchConfig::default(), None);
        l.supersede(PEER, S);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 14, S), Foreign);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 15, 3 * S - 1), Foreign);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 16, 3 * S), Pending);
        assert_eq!(l.on_rtp(PEER, 0xAAAA, 17, 3 * S), Latched);
    }

    #[test]
    fn rtcp_from_the_peer_only() {
        let l = latched();
        assert!(l.accepts_rtcp(PEER, 0));
        assert!(l.accepts_rtcp(NAT_MOVED, 0xAAAA));
        assert!(!l.accepts_rtcp(ATTACKER, 0xBBBB));
        let unlatched: Latch<u32> = Latch::new(LatchConfig::default(), Some(9));
        assert!(unlatched.accepts_rtcp(ATTACKER, 9) && !unlatched.accepts_rtcp(ATTACKER, 8));
    }
}
