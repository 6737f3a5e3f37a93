//! [`Session`]: one full-duplex RTP call leg, sans-IO. It ties together
//! the sender, the receive statistics, the symmetric-RTP latch, DTMF in both
//! directions, the RTCP timer and reports, and the quality estimate.
//!
//! How an engine drives it (all times are the caller's nanoseconds):
//!
//! - every datagram from the media socket (and from the RTCP socket when
//!   RTCP is not multiplexed, RFC 5761) goes to
//!   [`handle_datagram`](Session::handle_datagram), which returns the audio
//!   (or comfort noise) packet to hand to the jitter buffer, borrowed from
//!   the datagram, or says that it was consumed (RTCP, DTMF), not media
//!   (STUN, DTLS: the engine's business) or dropped and why;
//! - every ptime, [`send_frame`](Session::send_frame) with the application's
//!   encoded audio, silence or nothing; the packet it writes goes to
//!   [`remote`](Session::remote) (or the signalled address before latching);
//! - at [`next_deadline_ns`](Session::next_deadline_ns),
//!   [`handle_timeout`](Session::handle_timeout) and
//!   [`poll_rtcp`](Session::poll_rtcp), which may write a compound RTCP
//!   packet;
//! - [`poll_event`](Session::poll_event) until `None` after each of these;
//! - [`close`](Session::close) writes the final RTCP with a BYE.
//!
//! In steady state nothing here allocates per RTP packet: RTP is parsed in
//! place and answers borrow the datagram. RTCP, a packet every few seconds,
//! is parsed into owned values and its XR block built in a small `Vec`.

use std::collections::VecDeque;

use crate::demux::{classify, PacketKind};
use crate::payload::TelephoneEvent;
use crate::rtcp::{
    parse_compound, ExtendedReport, Goodbye, ReceiverReport, ReportBlock, RtcpPacket, SdesChunk, SdesItem,
    SenderReport, SourceDescription, VoipMetrics, XrBlock,
};
use crate::rtp::RtpPacket;
use crate::seq::SequenceUnwrapper;
use crate::stats::{Arrival, ReceiveStats};

use super::dtmf::{DtmfEvent, DtmfReceiver};
use super::emodel::{estimate_quality, CodecImpairment, QualityEstimate, QualityInputs};
use super::interval::RtcpScheduler;
use super::latch::{Latch, LatchConfig, LatchVerdict};
use super::loss::{BurstMetrics, LossTracker, GMIN};
use super::ntp::{dlsr_units, middle_32, round_trip_ns, NtpClock};
use super::rng::SessionRng;
use super::sender::{ConfigError, DtmfError, Frame, RtpSender, SenderConfig, SentPacket};

/// The largest forward and backward steps of the sequence number that
/// belong to the stream (RFC 3550 A.1 `MAX_DROPOUT`, `MAX_MISORDER`).
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// SDES item type of the canonical name (RFC 3550 section 6.5.1).
const SDES_CNAME: u8 = 1;
/// Events kept for the caller before the oldest are dropped.
const EVENT_QUEUE: usize = 64;
/// Our recent SR timestamps (middle 32 bits) that an LSR may echo.
const SR_HISTORY: usize = 8;
/// "Unavailable" in the XR VoIP metrics fields that have it (RFC 3611
/// section 4.7).
const XR_UNAVAILABLE: u8 = 127;

/// Everything a session needs from signalling and the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The sending side; its payload types are also the ones accepted on
    /// the receive side (the SDP answer makes them the same both ways).
    pub sender: SenderConfig,
    /// Our RTCP CNAME (RFC 3550 section 6.5.1), at most 255 bytes.
    pub cname: String,
    /// Session bandwidth in bits per second; RTCP uses 5% of it.
    pub session_bandwidth_bps: u32,
    /// The NTP time of the caller's `now_ns == 0`.
    pub ntp: NtpClock,
    /// The latching policy.
    pub latch: LatchConfig,
    /// The peer's SSRC if signalling gave it.
    pub expected_remote_ssrc: Option<u32>,
    /// The codec's impairment for the quality estimate.
    pub codec_impairment: CodecImpairment,
    /// An incoming DTMF event without end packets ends after this, ns.
    pub dtmf_timeout_ns: i64,
    /// Whether RTCP carries an XR VoIP metrics block (RFC 3611 4.7).
    pub send_xr_voip_metrics: bool,
    /// Seed of the session's random numbers (SSRC, initial sequence number
    /// and timestamp, RTCP intervals). Give a fresh random value per call.
    pub rng_seed: u64,
}

impl SessionConfig {
    /// A configuration for `sender` with the usual defaults: 80 kbit/s
    /// (G.711 with IP/UDP/RTP headers at 20 ms), default latching, G.711
    /// with PLC impairment, 500 ms DTMF timeout, XR on.
    pub fn new(sender: SenderConfig, cname: impl Into<String>, ntp: NtpClock, rng_seed: u64) -> Self {
        SessionConfig {
            sender,
            cname: cname.into(),
            session_bandwidth_bps: 80_000,
            ntp,
            latch: LatchConfig::default(),
            expected_remote_ssrc: None,
            codec_impairment: CodecImpairment::G711_PLC,
            dtmf_timeout_ns: 500_000_000,
            send_xr_voip_metrics: true,
            rng_seed,
        }
    }
}

/// Why a datagram was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// It did not parse as RTP or RTCP (or as the payload its type names).
    Malformed,
    /// It came from a source the latch refuses (RFC 7362 hijack rules).
    Foreign,
    /// It counted towards latching a new source but is not delivered.
    Latching,
    /// Its payload type was not negotiated.
    UnknownPayloadType,
    /// It was received before.
    Duplicate,
    /// Its sequence number is far from the stream's (RFC 3550 A.1): a stray
    /// or forged packet, unless the next one follows it.
    SequenceJump,
    /// The session is closed.
    Closed,
}

/// Packets dropped, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters {
    /// [`DropReason::Malformed`].
    pub malformed: u64,
    /// [`DropReason::Foreign`].
    pub foreign: u64,
    /// [`DropReason::Latching`].
    pub latching: u64,
    /// [`DropReason::UnknownPayloadType`].
    pub unknown_payload_type: u64,
    /// [`DropReason::Duplicate`].
    pub duplicate: u64,
    /// [`DropReason::SequenceJump`].
    pub sequence_jump: u64,
    /// [`DropReason::Closed`].
    pub closed: u64,
}

impl DropCounters {
    fn count(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Malformed => &mut self.malformed,
            DropReason::Foreign => &mut self.foreign,
            DropReason::Latching => &mut self.latching,
            DropReason::UnknownPayloadType => &mut self.unknown_payload_type,
            DropReason::Duplicate => &mut self.duplicate,
            DropReason::SequenceJump => &mut self.sequence_jump,
            DropReason::Closed => &mut self.closed,
        };
        *c += 1;
    }
}

/// A validated media packet for the jitter buffer, borrowed from the
/// datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPacket<'a> {
    /// The parsed packet (header and payload, padding removed).
    pub packet: RtpPacket<'a>,
    /// Its sequence number extended to 64 bits (RFC 3550 A.1 cycles).
    pub extended_sequence: u64,
    /// When it arrived (ns).
    pub arrival_ns: i64,
    /// Whether it is RFC 3389 comfort noise rather than codec audio.
    pub comfort_noise: bool,
    /// Whether it arrived after a higher sequence number.
    pub out_of_order: bool,
}

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// Audio or comfort noise for the jitter buffer.
    Media(MediaPacket<'a>),
    /// Used by the session itself (RTCP, telephone events); see the events.
    Consumed,
    /// Not RTP or RTCP (STUN, DTLS, ...): for the engine to handle.
    NotMedia(PacketKind),
    /// Dropped and counted.
    Dropped(DropReason),
}

/// A reception report about our stream, from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteReport {
    /// The report block as received.
    pub block: ReportBlock,
    /// The round-trip time it gave, if it echoed one of our SRs.
    pub rtt_ns: Option<i64>,
}

/// Something the application may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The remote address was latched or moved.
    RemoteLatched {
        /// The new remote SSRC.
        ssrc: u32,
    },
    /// The peer's SSRC changed (statistics start over).
    SsrcChanged {
        /// The previous SSRC.
        old: u32,
        /// The new one.
        new: u32,
    },
    /// A telephone event began or ended.
    Dtmf(DtmfEvent),
    /// The peer reported on our stream.
    ReportReceived(RemoteReport),
    /// The peer left.
    ByeReceived {
        /// Its SSRC.
        ssrc: u32,
        /// Its reason, if it gave one.
        reason: Option<Vec<u8>>,
    },
}

/// Configuration of the jitter buffer and its discards, for the XR block
/// and the delay term of the quality estimate; set by whoever owns the
/// jitter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlayoutMetrics {
    /// Current nominal jitter buffer delay, ms.
    pub jb_nominal_ms: u16,
    /// Current maximum jitter buffer delay, ms.
    pub jb_maximum_ms: u16,
    /// Absolute maximum the buffer may reach, ms.
    pub jb_abs_max_ms: u16,
    /// Packets discarded for arriving too late or too early.
    pub discarded: u64,
    /// The RFC 3611 receiver configuration byte (PLC, adaptivity, rate).
    pub rx_config: u8,
}

/// A snapshot of a session's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionStats {
    /// RTP packets sent.
    pub packets_sent: u32,
    /// RTP payload octets sent.
    pub octets_sent: u32,
    /// RTP packets received from the current remote SSRC.
    pub packets_received: u64,
    /// Packets expected from it.
    pub packets_expected: u64,
    /// Packets lost (RFC 3550 A.3).
    pub packets_lost: i64,
    /// Interarrival jitter, ms.
    pub jitter_ms: f64,
    /// The last round-trip time, ns.
    pub rtt_ns: Option<i64>,
    /// The loss pattern.
    pub burst: BurstMetrics,
    /// Dropped datagrams by reason.
    pub dropped: DropCounters,
    /// Events dropped because the caller did not poll them.
    pub events_lost: u64,
}

/// The receive side of the current remote SSRC.
#[derive(Debug, Clone)]
struct RemoteStream {
    ssrc: u32,
    stats: ReceiveStats,
    unwrapper: SequenceUnwrapper,
    loss: LossTracker,
    /// Middle 32 bits of the NTP time of its last SR and when it arrived.
    last_sr: Option<(u32, i64)>,
    /// After a packet far off the sequence: the number that would confirm
    /// a restart of the numbering (RFC 3550 A.1 `bad_seq`).
    bad_sequence: Option<u16>,
}

impl RemoteStream {
    fn new(ssrc: u32, clock_rate: u32) -> Self {
        RemoteStream {
            ssrc,
            stats: ReceiveStats::new(Some(clock_rate)),
            unwrapper: SequenceUnwrapper::new(),
            loss: LossTracker::new(),
            last_sr: None,
            bad_sequence: None,
        }
    }
}

/// One full-duplex RTP call leg; see the module documentation. `A` is the
/// transport address type (`SocketAddr` in the engine).
#[derive(Debug)]
pub struct Session<A> {
    config: SessionConfig,
    rng: SessionRng,
    sender: RtpSender,
    latch: Latch<A>,
    remote: Option<RemoteStream>,
    remote_left: bool,
    dtmf: DtmfReceiver,
    scheduler: RtcpScheduler,
    /// When we sent the last two reports, for "sent since two reports ago".
    report_times: [Option<i64>; 2],
    last_remote_rtp_ns: Option<i64>,
    /// When anything (RTP or RTCP) last came from the peer.
    last_remote_activity_ns: Option<i64>,
    sr_history: [u32; SR_HISTORY],
    sr_next: usize,
    rtt_ns: Option<i64>,
    remote_xr: Option<VoipMetrics>,
    playout: PlayoutMetrics,
    events: VecDeque<SessionEvent>,
    events_lost: u64,
    dropped: DropCounters,
    report_blocks: Vec<ReportBlock>,
    /// Our SDES packet, built once: the CNAME never changes.
    sdes: RtcpPacket,
    closed: bool,
}

impl<A: Copy + Eq> Session<A> {
    /// A session created at `now_ns`.
    pub fn new(config: SessionConfig, now_ns: i64) -> Result<Self, ConfigError> {
        if config.cname.is_empty() || config.cname.len() > 255 {
            return Err(ConfigError("cname must be 1..=255 bytes"));
        }
        let mut rng = SessionRng::new(config.rng_seed);
        let sender = RtpSender::new(config.sender.clone(), &mut rng)?;
        // The first compound packet: an RR with one block, SDES with the
        // CNAME, and the XR block if enabled.
        let first_size = 32 + 10 + config.cname.len() + if config.send_xr_voip_metrics { 44 } else { 0 };
        let scheduler = RtcpScheduler::new(config.session_bandwidth_bps, first_size, now_ns, &mut rng);
        Ok(Session {
            latch: Latch::new(config.latch, config.expected_remote_ssrc),
            dtmf: DtmfReceiver::new(config.dtmf_timeout_ns),
            rng,
            remote: None,
            remote_left: false,
            scheduler,
            report_times: [None; 2],
            last_remote_rtp_ns: None,
            last_remote_activity_ns: None,
            sr_history: [0; SR_HISTORY],
            sr_next: 0,
            rtt_ns: None,
            remote_xr: None,
            playout: PlayoutMetrics::default(),
            events: VecDeque::with_capacity(EVENT_QUEUE),
            events_lost: 0,
            dropped: DropCounters::default(),
            report_blocks: Vec::with_capacity(1),
            sdes: RtcpPacket::SourceDescription(SourceDescription {
                chunks: vec![SdesChunk {
                    ssrc: sender.ssrc(),
                    items: vec![SdesItem { kind: SDES_CNAME, value: config.cname.as_bytes().to_vec() }],
                }],
            }),
            closed: false,
            sender,
            config,
        })
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    /// The latched remote address, where media should go.
    pub fn remote(&self) -> Option<A> {
        self.latch.remote()
    }

    /// Signalling moved the peer's media away from `addr` (a re-INVITE
    /// with a new address): it loses the latch and, for the latch's
    /// `silence_relatch_ns`, cannot take it back (see [`Latch::supersede`]).
    pub fn supersede_remote(&mut self, addr: A, now_ns: i64) {
        self.latch.supersede(addr, now_ns);
    }

    /// The current remote SSRC.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.remote.as_ref().map(|r| r.ssrc)
    }

    /// The sender, for its counters and state.
    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    /// The peer's last XR VoIP metrics about our stream.
    pub fn remote_voip_metrics(&self) -> Option<&VoipMetrics> {
        self.remote_xr.as_ref()
    }

    fn push_event(&mut self, event: SessionEvent) {
        if self.events.len() == EVENT_QUEUE {
            self.events.pop_front();
            self.events_lost += 1;
        }
        self.events.push_back(event);
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn drop_packet<'a>(&mut self, reason: DropReason) -> Incoming<'a> {
        self.dropped.count(reason);
        Incoming::Dropped(reason)
    }

    /// Takes one datagram that arrived from `from` at `now_ns`.
    pub fn handle_datagram<'a>(&mut self, from: A, datagram: &'a [u8], now_ns: i64) -> Incoming<'a> {
        if self.closed {
            return self.drop_packet(DropReason::Closed);
        }
        match classify(datagram) {
            PacketKind::Rtp => self.handle_rtp(from, datagram, now_ns),
            PacketKind::Rtcp => self.handle_rtcp(from, datagram, now_ns),
            PacketKind::Unknown => self.drop_packet(DropReason::Malformed),
            other => Incoming::NotMedia(other),
        }
    }

    fn handle_rtp<'a>(&mut self, from: A, datagram: &'a [u8], now_ns: i64) -> Incoming<'a> {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            return self.drop_packet(DropReason::Malformed);
        };
        let h = packet.header;
        let audio = self.config.sender.audio;
        let is_event = self.config.sender.telephone_event_pt == Some(h.payload_type);
        let is_noise = self.config.sender.comfort_noise_pt == Some(h.payload_type);
        if h.payload_type != audio.payload_type && !is_event && !is_noise {
            return self.drop_packet(DropReason::UnknownPayloadType);
        }
        // An event must parse before it may move the latch or the counters.
        let event = if is_event {
            match TelephoneEvent::parse(packet.payload) {
                Ok(ev) => Some(ev),
                Err(_) => return self.drop_packet(DropReason::Malformed),
            }
        } else {
            None
        };
        match self.latch.on_rtp(from, h.ssrc, h.sequence_number, now_ns) {
            LatchVerdict::Foreign => return self.drop_packet(DropReason::Foreign),
            LatchVerdict::Pending => return self.drop_packet(DropReason::Latching),
            LatchVerdict::Latched => self.push_event(SessionEvent::RemoteLatched { ssrc: h.ssrc }),
            LatchVerdict::Accept => {}
        }
        if self.remote.as_ref().is_none_or(|r| r.ssrc != h.ssrc) {
            // A new source: new sequence and timestamp spaces, so statistics
            // and DTMF state start over (RFC 3550 A.1 per-source state).
            if let Some(old) = self.remote.replace(RemoteStream::new(h.ssrc, audio.clock_rate)) {
                self.push_event(SessionEvent::SsrcChanged { old: old.ssrc, new: h.ssrc });
            }
            self.dtmf.reset();
        }
        self.remote_left = false;
        self.last_remote_rtp_ns = Some(now_ns);
        self.last_remote_activity_ns = Some(now_ns);
        let remote = self.remote.get_or_insert_with(|| RemoteStream::new(h.ssrc, audio.clock_rate));
        if remote.stats.packets() > 0 {
            // RFC 3550 A.1: a jump of more than MAX_DROPOUT ahead or
            // MAX_MISORDER behind is one stray (or forged) packet, unless
            // the next packet follows it: then the sender renumbered, and
            // the statistics start over.
            // The RFC's bound is RTP_SEQ_MOD - MAX_MISORDER: exactly
            // MAX_MISORDER behind is already a jump.
            let step = h.sequence_number.wrapping_sub(remote.stats.highest_sequence() as u16);
            if (MAX_DROPOUT..=u16::MAX - MAX_MISORDER + 1).contains(&step) {
                if remote.bad_sequence != Some(h.sequence_number) {
                    remote.bad_sequence = Some(h.sequence_number.wrapping_add(1));
                    return self.drop_packet(DropReason::SequenceJump);
                }
                let last_sr = remote.last_sr;
                *remote = RemoteStream::new(h.ssrc, audio.clock_rate);
                remote.last_sr = last_sr;
                // A renumbered sender restarts its events' timestamps too.
                self.dtmf.reset();
            }
        }
        let arrival = remote.stats.on_packet(h.sequence_number, h.timestamp, h.marker, now_ns);
        let extended_sequence = remote.unwrapper.unwrap(h.sequence_number);
        if arrival == Arrival::Duplicate {
            return self.drop_packet(DropReason::Duplicate);
        }
        remote.loss.on_packet(extended_sequence);
        if let Some(ev) = event {
            let mut found = [None; 2];
            let mut n = 0;
            self.dtmf.on_packet(h.timestamp, ev, now_ns, |d| {
                // At most an end and a start per packet.
                if n < found.len() {
                    found[n] = Some(d);
                    n += 1;
                }
            });
            for d in found.into_iter().flatten() {
                self.push_event(SessionEvent::Dtmf(d));
            }
            return Incoming::Consumed;
        }
        Incoming::Media(MediaPacket {
            packet,
            extended_sequence,
            arrival_ns: now_ns,
            comfort_noise: is_noise,
            out_of_order: arrival == Arrival::OutOfOrder,
        })
    }

    fn handle_rtcp<'a>(&mut self, from: A, datagram: &'a [u8], now_ns: i64) -> Incoming<'a> {
        let Ok(packets) = parse_compound(datagram) else {
            return self.drop_packet(DropReason::Malformed);
        };
        let Some(sender_ssrc) = packets.iter().find_map(sender_ssrc) else {
            return self.drop_packet(DropReason::Malformed);
        };
        if !self.latch.accepts_rtcp(from, sender_ssrc) {
            return self.drop_packet(DropReason::Foreign);
        }
        self.scheduler.on_packet_size(datagram.len());
        self.last_remote_activity_ns = Some(now_ns);
        let arrival_middle = middle_32(self.config.ntp.ntp(now_ns));
        let ours = self.sender.ssrc();
        for packet in packets {
            match packet {
                RtcpPacket::SenderReport(sr) => {
                    if let Some(remote) = self.remote.as_mut().filter(|r| r.ssrc == sr.ssrc) {
                        remote.last_sr = Some((middle_32(sr.ntp_timestamp), now_ns));
                    }
                    self.on_report_blocks(&sr.reports, ours, arrival_middle);
                }
                RtcpPacket::ReceiverReport(rr) => self.on_report_blocks(&rr.reports, ours, arrival_middle),
                RtcpPacket::Goodbye(bye) => {
                    if let Some(ssrc) = self.remote_ssrc().filter(|s| bye.sources.contains(s)) {
                        self.remote_left = true;
                        self.push_event(SessionEvent::ByeReceived { ssrc, reason: bye.reason });
                    }
                }
                RtcpPacket::ExtendedReport(xr) => {
                    for block in xr.blocks {
                        if let XrBlock::VoipMetrics(m) = block {
                            if m.ssrc == ours {
                                self.remote_xr = Some(m);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Incoming::Consumed
    }

    fn on_report_blocks(&mut self, blocks: &[ReportBlock], ours: u32, arrival_middle: u32) {
        for block in blocks.iter().filter(|b| b.ssrc == ours) {
            // Only an LSR that echoes one of our own SRs gives a round trip;
            // anything else is stale or made up.
            let echoes = block.last_sr != 0 && self.sr_history.contains(&block.last_sr);
            let rtt_ns = if echoes { round_trip_ns(arrival_middle, block.last_sr, block.delay_since_last_sr) } else { None };
            if rtt_ns.is_some() {
                self.rtt_ns = rtt_ns;
            }
            self.push_event(SessionEvent::ReportReceived(RemoteReport { block: *block, rtt_ns }));
        }
    }

    /// Queues DTMF digits to send; see [`RtpSender::queue_dtmf`].
    pub fn send_dtmf(&mut self, digits: &str, duration_ms: u32) -> Result<(), DtmfError> {
        self.sender.queue_dtmf(digits, duration_ms)
    }

    /// Sends one ptime of `frame` at `now_ns`; see [`RtpSender::send_frame`].
    /// Nothing is sent once the session is closed.
    pub fn send_frame(&mut self, frame: Frame<'_>, now_ns: i64, out: &mut Vec<u8>) -> Option<SentPacket> {
        if self.closed {
            out.clear();
            return None;
        }
        self.sender.send_frame(frame, now_ns, out)
    }

    /// Tells the session about the jitter buffer (for XR and the quality
    /// estimate).
    pub fn set_playout_metrics(&mut self, metrics: PlayoutMetrics) {
        self.playout = metrics;
    }

    /// When [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_rtcp`](Self::poll_rtcp) next has work (ns).
    pub fn next_deadline_ns(&self) -> i64 {
        let rtcp = if self.closed { i64::MAX } else { self.scheduler.deadline_ns() };
        self.dtmf.deadline_ns().map_or(rtcp, |d| d.min(rtcp))
    }

    /// Runs the timers other than RTCP: ends an incoming DTMF event whose
    /// end packets were all lost.
    pub fn handle_timeout(&mut self, now_ns: i64) {
        let mut ended = None;
        self.dtmf.poll(now_ns, |d| ended = Some(d));
        if let Some(d) = ended {
            self.push_event(SessionEvent::Dtmf(d));
        }
    }

    fn sent_since_two_reports(&self, at: Option<i64>) -> bool {
        match (at, self.report_times[1]) {
            (Some(at), Some(before_last)) => at >= before_last,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Writes a compound RTCP packet to `out` (cleared first) if the RTCP
    /// timer says one is due at `now_ns`; returns whether it did.
    pub fn poll_rtcp(&mut self, now_ns: i64, out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.closed {
            return false;
        }
        let we_sent = self.sent_since_two_reports(self.sender.counters().last_sent_ns);
        // RFC 3550 section 6.3.5: a member silent for M = 5 deterministic
        // intervals (the 5 s minimum included) has timed out.
        let member_timeout_ns = (5.0 * self.scheduler.deterministic_interval_s() * 1e9) as i64;
        let timed_out = self.last_remote_activity_ns.is_some_and(|at| now_ns.saturating_sub(at) > member_timeout_ns);
        let present = self.remote.is_some() && !self.remote_left && !timed_out;
        let remote_sends = present && self.sent_since_two_reports(self.last_remote_rtp_ns);
        let members = 1 + u32::from(present);
        self.scheduler.set_membership(members, u32::from(we_sent) + u32::from(remote_sends), we_sent, now_ns);
        if !self.scheduler.poll(now_ns, &mut self.rng) {
            return false;
        }
        if !self.write_compound(now_ns, we_sent, None, out) {
            return false;
        }
        self.report_times = [Some(now_ns), self.report_times[0]];
        self.scheduler.on_sent(out.len(), now_ns, &mut self.rng);
        true
    }

    /// Ends the session: writes the last compound RTCP packet with a BYE
    /// (RFC 3550 section 6.3.7; with fewer than 50 members it may go at
    /// once) to `out`. Later datagrams are dropped and nothing more is sent.
    pub fn close(&mut self, now_ns: i64, reason: Option<&[u8]>, out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.closed {
            return false;
        }
        self.closed = true;
        let we_sent = self.sent_since_two_reports(self.sender.counters().last_sent_ns);
        let reason = reason.map(|r| r[..r.len().min(255)].to_vec());
        self.write_compound(now_ns, we_sent, Some(reason), out)
    }

    /// SR or RR, SDES CNAME, the XR VoIP metrics block and, when `bye` is
    /// given, a BYE with its reason.
    fn write_compound(&mut self, now_ns: i64, we_sent: bool, bye: Option<Option<Vec<u8>>>, out: &mut Vec<u8>) -> bool {
        let ssrc = self.sender.ssrc();
        let mut blocks = std::mem::take(&mut self.report_blocks);
        blocks.clear();
        if let Some(remote) = self.remote.as_mut().filter(|r| r.stats.packets() > 0) {
            let v = remote.stats.report();
            let (last_sr, delay) = remote
                .last_sr
                .map_or((0, 0), |(middle, at)| (middle, dlsr_units(now_ns.saturating_sub(at))));
            blocks.push(ReportBlock {
                ssrc: remote.ssrc,
                fraction_lost: v.fraction_lost,
                cumulative_lost: v.cumulative_lost,
                highest_sequence: v.highest_sequence,
                jitter: v.jitter,
                last_sr,
                delay_since_last_sr: delay,
            });
        }
        let report = if we_sent {
            let ntp = self.config.ntp.ntp(now_ns);
            self.sr_history[self.sr_next] = middle_32(ntp);
            self.sr_next = (self.sr_next + 1) % SR_HISTORY;
            let counters = self.sender.counters();
            RtcpPacket::SenderReport(SenderReport {
                ssrc,
                ntp_timestamp: ntp,
                rtp_timestamp: self.sender.rtp_timestamp_at(now_ns).unwrap_or(self.sender.next_timestamp()),
                packet_count: counters.packets,
                octet_count: counters.octets,
                reports: blocks,
                extension: Vec::new(),
            })
        } else {
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports: blocks, extension: Vec::new() })
        };
        let mut ok = report.write(out).is_ok();
        // Give the block vector back for the next report: no allocation.
        self.report_blocks = match report {
            RtcpPacket::SenderReport(sr) => sr.reports,
            RtcpPacket::ReceiverReport(rr) => rr.reports,
            _ => Vec::new(),
        };
        ok &= self.sdes.write(out).is_ok();
        if self.config.send_xr_voip_metrics {
            if let Some(metrics) = self.voip_metrics() {
                let xr = RtcpPacket::ExtendedReport(ExtendedReport { ssrc, blocks: vec![XrBlock::VoipMetrics(metrics)] });
                ok &= xr.write(out).is_ok();
            }
        }
        if let Some(reason) = bye {
            ok &= RtcpPacket::Goodbye(Goodbye { sources: vec![ssrc], reason }).write(out).is_ok();
        }
        if !ok {
            // Every value above fits its field by construction (CNAME length
            // checked in new, losses clamped by ReceiveStats); should that
            // ever fail, send nothing rather than half a compound packet.
            out.clear();
        }
        ok
    }

    fn loss_percent_and_metrics(&self) -> Option<(f64, BurstMetrics)> {
        let remote = self.remote.as_ref()?;
        let burst = remote.loss.metrics();
        let expected = burst.packets.max(1) as f64;
        let discarded = self.playout.discarded as f64;
        Some(((burst.lost as f64 + discarded) * 100.0 / expected, burst))
    }

    /// The E-model estimate of the receive direction: loss and burstiness
    /// from the received stream, delay from half the round trip plus the
    /// jitter buffer and one packetization interval. `None` before media.
    pub fn quality(&self) -> Option<QualityEstimate> {
        let (loss_percent, burst) = self.loss_percent_and_metrics()?;
        let one_way_ms = self.rtt_ns.map_or(0.0, |r| r as f64 / 2e6)
            + f64::from(self.playout.jb_nominal_ms)
            + f64::from(self.config.sender.audio.ptime_ms);
        Some(estimate_quality(&QualityInputs {
            codec: self.config.codec_impairment,
            one_way_delay_ms: one_way_ms,
            loss_percent,
            burst_r: burst.burst_ratio,
        }))
    }

    /// The RFC 3611 section 4.7 VoIP metrics of the receive direction.
    pub fn voip_metrics(&self) -> Option<VoipMetrics> {
        let remote = self.remote.as_ref()?;
        let (_, burst) = self.loss_percent_and_metrics()?;
        let quality = self.quality()?;
        let ptime = f64::from(self.config.sender.audio.ptime_ms);
        let packets = burst.packets.max(1) as f64;
        // Fractions in 1/256, capped at 255 as the RFC says.
        let fraction = |x: f64| (x * 256.0).clamp(0.0, 255.0) as u8;
        let ms = |x: f64| x.round().clamp(0.0, f64::from(u16::MAX)) as u16;
        let p = self.playout;
        Some(VoipMetrics {
            ssrc: remote.ssrc,
            loss_rate: fraction(burst.lost as f64 / packets),
            discard_rate: fraction(p.discarded as f64 / packets),
            burst_density: fraction(burst.burst_density),
            gap_density: fraction(burst.gap_density),
            burst_duration: ms(burst.mean_burst_packets * ptime),
            gap_duration: ms(burst.mean_gap_packets * ptime),
            round_trip_delay: self.rtt_ns.map_or(0, |r| ms(r as f64 / 1e6)),
            end_system_delay: if p.jb_nominal_ms == 0 { 0 } else { ms(f64::from(p.jb_nominal_ms) + ptime) },
            signal_level: XR_UNAVAILABLE as i8,
            noise_level: XR_UNAVAILABLE as i8,
            rerl: XR_UNAVAILABLE,
            gmin: GMIN as u8,
            r_factor: quality.r_narrowband.round().clamp(0.0, 100.0) as u8,
            ext_r_factor: XR_UNAVAILABLE,
            mos_lq: (quality.mos_lq * 10.0).round() as u8,
            mos_cq: (quality.mos_cq * 10.0).round() as u8,
            rx_config: p.rx_config,
            jb_nominal: p.jb_nominal_ms,
            jb_maximum: p.jb_maximum_ms,
            jb_abs_max: p.jb_abs_max_ms,
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SessionStats {
        let counters = self.sender.counters();
        let remote = self.remote.as_ref();
        SessionStats {
            packets_sent: counters.packets,
            octets_sent: counters.octets,
            packets_received: remote.map_or(0, |r| r.stats.packets()),
            packets_expected: remote.map_or(0, |r| r.stats.expected()),
            packets_lost: remote.map_or(0, |r| r.stats.lost()),
            jitter_ms: remote
                .and_then(|r| r.stats.jitter())
                .map_or(0.0, |j| j * 1000.0 / f64::from(self.config.sender.audio.clock_rate)),
            rtt_ns: self.rtt_ns,
            burst: remote.map(|r| r.loss.metrics()).unwrap_or_default(),
            dropped: self.dropped,
            events_lost: self.events_lost,
        }
    }
}

/// The SSRC of the packet's sender, for the packet types that name one.
fn sender_ssrc(p: &RtcpPacket) -> Option<u32> {
    match p {
        RtcpPacket::SenderReport(sr) => Some(sr.ssrc),
        RtcpPacket::ReceiverReport(rr) => Some(rr.ssrc),
        RtcpPacket::Goodbye(bye) => bye.sources.first().copied(),
        RtcpPacket::App(app) => Some(app.ssrc),
        RtcpPacket::GenericNack(n) => Some(n.sender_ssrc),
        RtcpPacket::PictureLossIndication(p) => Some(p.sender_ssrc),
        RtcpPacket::ExtendedReport(xr) => Some(xr.ssrc),
        RtcpPacket::SourceDescription(sdes) => sdes.chunks.first().map(|c| c.ssrc),
        RtcpPacket::Raw(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::write_compound;
    use crate::rtp::RtpPacketBuilder;
    use crate::session::sender::AudioFormat;

    const MS: i64 = 1_000_000;
    const PEER: u8 = 1;

    fn session() -> Session<u8> {
        let mut sender = SenderConfig::new(AudioFormat::pcmu(20));
        sender.telephone_event_pt = Some(101);
        sender.comfort_noise_pt = Some(13);
        sender.ssrc = Some(0x5E55);
        Session::new(SessionConfig::new(sender, "me@test", NtpClock { ntp_at_epoch: 1 << 60 }, 1), 0).unwrap()
    }

    fn rtp(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let builder = RtpPacketBuilder { payload_type: pt, sequence_number: seq, timestamp: u32::from(seq) * 160, ssrc, payload, ..Default::default() };
        builder.write(&mut out).unwrap();
        out
    }

    fn rtcp(packets: &[RtcpPacket]) -> Vec<u8> {
        let mut out = Vec::new();
        write_compound(packets, &mut out).unwrap();
        out
    }

    /// A session latched onto PEER sending SSRC 0xAAAA from sequence 1.
    fn latched() -> Session<u8> {
        let mut s = session();
        assert_eq!(s.handle_datagram(PEER, &rtp(0, 1, 0xAAAA, &[0; 160]), 0), Incoming::Dropped(DropReason::Latching));
        assert!(matches!(s.handle_datagram(PEER, &rtp(0, 2, 0xAAAA, &[0; 160]), 20 * MS), Incoming::Media(_)));
        assert_eq!(s.poll_event(), Some(SessionEvent::RemoteLatched { ssrc: 0xAAAA }));
        s
    }

    #[test]
    fn every_drop_is_counted_by_reason() {
        let mut s = latched();
        assert_eq!(s.handle_datagram(PEER, &[0x80, 0, 0], 0), Incoming::Dropped(DropReason::Malformed));
        assert_eq!(s.handle_datagram(PEER, &rtp(96, 3, 0xAAAA, b"x"), 0), Incoming::Dropped(DropReason::UnknownPayloadType));
        assert_eq!(s.handle_datagram(PEER, &rtp(101, 3, 0xAAAA, b"xy"), 0), Incoming::Dropped(DropReason::Malformed));
        assert_eq!(s.handle_datagram(9, &rtp(0, 3, 0xBBBB, b"x"), 0), Incoming::Dropped(DropReason::Foreign));
        assert!(matches!(s.handle_datagram(PEER, &rtp(0, 3, 0xAAAA, b"x"), 0), Incoming::Media(_)));
        assert_eq!(s.handle_datagram(PEER, &rtp(0, 3, 0xAAAA, b"x"), 0), Incoming::Dropped(DropReason::Duplicate));
        assert_eq!(s.handle_datagram(PEER, &[0x80, 200, 0, 9, 0, 0, 0, 1], 0), Incoming::Dropped(DropReason::Malformed));
        // STUN on the media port is the engine's, not a drop.
        assert_eq!(s.handle_datagram(PEER, &[0, 1, 0, 0], 0), Incoming::NotMedia(PacketKind::Stun));
        let d = s.stats().dropped;
        assert_eq!((d.malformed, d.unknown_payload_type, d.foreign, d.duplicate, d.latching), (3, 1, 1, 1, 1));
        let mut out = Vec::new();
        assert!(s.close(0, None, &mut out));
        assert_eq!(s.handle_datagram(PEER, &rtp(0, 4, 0xAAAA, b"x"), 0), Incoming::Dropped(DropReason::Closed));
        assert!(!s.close(0, None, &mut out) && out.is_empty());
    }

    #[test]
    fn a_lone_sequence_jump_is_dropped_and_two_in_a_row_renumber() {
        let mut s = latched();
        // One stray far ahead (a forgery, a stale packet): dropped, the
        // statistics do not move.
        assert_eq!(s.handle_datagram(PEER, &rtp(0, 9000, 0xAAAA, b"x"), 0), Incoming::Dropped(DropReason::SequenceJump));
        assert!(matches!(s.handle_datagram(PEER, &rtp(0, 3, 0xAAAA, b"x"), 0), Incoming::Media(_)));
        assert_eq!((s.stats().packets_expected, s.stats().dropped.sequence_jump), (2, 1));
        // Far behind, too.
        assert_eq!(s.handle_datagram(PEER, &rtp(0, 65000, 0xAAAA, b"x"), 0), Incoming::Dropped(DropReason::SequenceJump));
        // The sender renumbered: the second packet in sequence is taken and
        // the statistics start over from it.
        assert_eq!(s.handle_datagram(PEER, &rtp(0, 20000, 0xAAAA, b"x"), 0), Incoming::Dropped(DropReason::SequenceJump));
        assert!(matches!(s.handle_datagram(PEER, &rtp(0, 20001, 0xAAAA, b"x"), 0), Incoming::Media(_)));
        assert!(matches!(s.handle_datagram(PEER, &rtp(0, 20002, 0xAAAA, b"x"), 0), Incoming::Media(_)));
        assert_eq!((s.stats().packets_received, s.stats().packets_lost), (2, 0));
    }

    #[test]
    fn sequence_jump_bounds_are_rfc3550_a1s() {
        // MAX_DROPOUT - 1 ahead is a gap; MAX_MISORDER - 1 behind is late.
        let mut s = latched();
        assert!(matches!(s.handle_datagram(PEER, &rtp(0, 2 + 2999, 0xAAAA, b"x"), 0), Incoming::Media(_)));
        assert!(matches!(s.handle_datagram(PEER, &rtp(0, 3001 - 99, 0xAAAA, b"x"), 0), Incoming::Media(_)));
        // MAX_MISORDER behind and MAX_DROPOUT ahead are jumps.
        assert_eq!(s.handle_datagram(PEER, &rtp(0, 3001 - 100, 0xAAAA, b"x"), 0), Incoming::Dropped(DropReason::SequenceJump));
        assert_eq!(s.handle_datagram(PEER, &rtp(0, 3001 + 3000, 0xAAAA, b"x"), 0), Incoming::Dropped(DropReason::SequenceJump));
    }

    #[test]
    fn comfort_noise_and_media_seam() {
        let mut s = latched();
        let datagram = rtp(13, 3, 0xAAAA, &[40]);
        let Incoming::Media(m) = s.handle_datagram(PEER, &datagram, 60 * MS) else { panic!() };
        assert!(m.comfort_noise && !m.out_of_order);
        assert_eq!((m.extended_sequence, m.arrival_ns, m.packet.payload), (3, 60 * MS, &[40u8][..]));
    }

    #[test]
    fn ssrc_change_resets_statistics() {
        let mut s = latched();
        assert!(matches!(s.handle_datagram(PEER, &rtp(0, 500, 0xCCCC, b"x"), 40 * MS), Incoming::Media(_)));
        assert_eq!(s.poll_event(), Some(SessionEvent::SsrcChanged { old: 0xAAAA, new: 0xCCCC }));
        assert_eq!((s.stats().packets_received, s.remote_ssrc()), (1, Some(0xCCCC)));
    }

    #[test]
    fn dtmf_events_surface_once() {
        let mut s = latched();
        let ev = |seq: u16, end: bool, duration: u16| {
            let mut payload = Vec::new();
            TelephoneEvent { event: 11, end, volume: 10, duration }.write(&mut payload).unwrap();
            let mut out = Vec::new();
            RtpPacketBuilder { payload_type: 101, sequence_number: seq, timestamp: 4000, ssrc: 0xAAAA, payload: &payload, ..Default::default() }
                .write(&mut out)
                .unwrap();
            out
        };
        for (i, (end, d)) in [(false, 160), (false, 320), (true, 480), (true, 480), (true, 480)].into_iter().enumerate() {
            assert_eq!(s.handle_datagram(PEER, &ev(3 + i as u16, end, d), 0), Incoming::Consumed);
        }
        let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
        assert_eq!(
            events,
            vec![
                SessionEvent::Dtmf(DtmfEvent::Started { event: 11, timestamp: 4000 }),
                SessionEvent::Dtmf(DtmfEvent::Ended { event: 11, timestamp: 4000, duration: 480, inferred: false })
            ]
        );
        // Telephone events share the stream's sequence numbers.
        assert_eq!(s.stats().packets_received, 6);
    }

    #[test]
    fn incoming_dtmf_without_end_times_out() {
        let mut s = latched();
        let mut payload = Vec::new();
        TelephoneEvent { event: 1, end: false, volume: 10, duration: 160 }.write(&mut payload).unwrap();
        s.handle_datagram(PEER, &rtp(101, 3, 0xAAAA, &payload), 100 * MS);
        s.poll_event();
        assert_eq!(s.next_deadline_ns(), 600 * MS);
        s.handle_timeout(600 * MS);
        assert!(matches!(s.poll_event(), Some(SessionEvent::Dtmf(DtmfEvent::Ended { inferred: true, duration: 160, .. }))));
    }

    #[test]
    fn rtt_only_from_an_lsr_that_echoes_our_sr() {
        let mut s = latched();
        let mut out = Vec::new();
        s.send_frame(Frame::Speech(&[0; 160]), 0, &mut out);
        let due = s.next_deadline_ns();
        assert!(s.poll_rtcp(due, &mut out));
        let sent = parse_compound(&out).unwrap();
        let RtcpPacket::SenderReport(sr) = &sent[0] else { panic!("we sent RTP: an SR") };
        assert!(matches!(sent[1], RtcpPacket::SourceDescription(_)));
        assert!(matches!(sent[2], RtcpPacket::ExtendedReport(_)));
        assert_eq!(sr.reports[0].ssrc, 0xAAAA);
        // The peer answers 100 ms later having held our SR for 30 ms: 70 ms.
        let block = |lsr| ReportBlock { ssrc: 0x5E55, last_sr: lsr, delay_since_last_sr: dlsr_units(30 * MS), ..Default::default() };
        let rr = |lsr| rtcp(&[RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 0xAAAA, reports: vec![block(lsr)], extension: vec![] })]);
        assert_eq!(s.handle_datagram(PEER, &rr(middle_32(sr.ntp_timestamp) ^ 1), due + 100 * MS), Incoming::Consumed);
        let Some(SessionEvent::ReportReceived(r)) = s.poll_event() else { panic!() };
        assert_eq!(r.rtt_ns, None, "an LSR we never sent");
        s.handle_datagram(PEER, &rr(middle_32(sr.ntp_timestamp)), due + 100 * MS);
        let Some(SessionEvent::ReportReceived(r)) = s.poll_event() else { panic!() };
        let rtt = r.rtt_ns.unwrap();
        // 16.16 fixed point: within two units (30 us).
        assert!((rtt - 70 * MS).abs() < 31_000, "{rtt}");
        assert_eq!(s.stats().rtt_ns, Some(rtt));
        // RTCP from a stranger is dropped.
        let stranger = rtcp(&[RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 0xBBBB, reports: vec![block(1)], extension: vec![] })]);
        assert_eq!(s.handle_datagram(7, &stranger, due), Incoming::Dropped(DropReason::Foreign));
    }

    #[test]
    fn sr_from_the_peer_sets_lsr_and_dlsr_in_our_report() {
        let mut s = latched();
        let sr = RtcpPacket::SenderReport(SenderReport { ssrc: 0xAAAA, ntp_timestamp: 0x0001_2345_6789_0000, ..Default::default() });
        s.handle_datagram(PEER, &rtcp(&[sr]), 1000 * MS);
        let mut out = Vec::new();
        let due = s.next_deadline_ns().max(1000 * MS);
        assert!(s.poll_rtcp(due, &mut out));
        let sent = parse_compound(&out).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &sent[0] else { panic!("we sent no RTP: an RR") };
        assert_eq!(rr.reports[0].last_sr, 0x2345_6789);
        assert_eq!(rr.reports[0].delay_since_last_sr, dlsr_units(due - 1000 * MS));
    }

    #[test]
    fn bye_from_the_peer_and_our_bye_on_close() {
        let mut s = latched();
        let bye = RtcpPacket::Goodbye(Goodbye { sources: vec![0xAAAA], reason: None });
        let rr = RtcpPacket::ReceiverReport(ReceiverReport { ssrc: 0xAAAA, ..Default::default() });
        assert_eq!(s.handle_datagram(PEER, &rtcp(&[rr, bye]), 0), Incoming::Consumed);
        assert_eq!(s.poll_event(), Some(SessionEvent::ByeReceived { ssrc: 0xAAAA, reason: None }));
        let mut out = Vec::new();
        assert!(s.close(5 * MS, Some(b"hangup"), &mut out));
        let sent = parse_compound(&out).unwrap();
        assert_eq!(sent.last(), Some(&RtcpPacket::Goodbye(Goodbye { sources: vec![0x5E55], reason: Some(b"hangup".to_vec()) })));
        assert!(matches!(sent[0], RtcpPacket::ReceiverReport(_)));
        assert_eq!(s.next_deadline_ns(), i64::MAX);
        assert!(s.send_frame(Frame::Speech(&[0; 160]), 0, &mut out).is_none());
    }

    #[test]
    fn a_silent_peer_times_out_and_pulls_our_report_forward() {
        let mut s = latched();
        let mut out = Vec::new();
        // The peer's last packet came at 20 ms; 5 x the 5 s minimum later it
        // is no longer a member.
        let timeout = 20 * MS + 25_000 * MS + MS;
        let mut t = s.next_deadline_ns();
        while t <= timeout {
            s.poll_rtcp(t, &mut out);
            t = s.next_deadline_ns();
        }
        let before = s.next_deadline_ns();
        // Not due yet, but the membership drops from two to one: reverse
        // reconsideration halves the wait (RFC 3550 section 6.3.4).
        assert!(!s.poll_rtcp(timeout, &mut out));
        let after = s.next_deadline_ns();
        assert!(((after - timeout) - (before - timeout) / 2).abs() <= 1, "{before} {after}");
    }

    #[test]
    fn event_queue_is_bounded() {
        let mut s = latched();
        let rr = rtcp(&[RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 0xAAAA,
            reports: vec![ReportBlock { ssrc: 0x5E55, ..Default::default() }],
            extension: vec![],
        })]);
        for _ in 0..EVENT_QUEUE + 5 {
            s.handle_datagram(PEER, &rr, 0);
        }
        assert_eq!(std::iter::from_fn(|| s.poll_event()).count(), EVENT_QUEUE);
        assert_eq!(s.stats().events_lost, 5);
    }

    #[test]
    fn bad_cname_is_refused() {
        let sender = SenderConfig::new(AudioFormat::pcmu(20));
        let config = SessionConfig::new(sender, "", NtpClock { ntp_at_epoch: 0 }, 1);
        assert!(Session::<u8>::new(config, 0).is_err());
    }
}
