//! [`CallLeg`]: one call's whole media pipeline, sans-IO.
//!
//! It composes the building blocks of `rtpcore-proto` and adds what sits
//! between them and an application:
//!
//! ```text
//! handle_datagram: SRTP/SRTCP unprotect -> Session (latch, stats, DTMF, RTCP)
//!                  -> JitterBuffer::push
//! on_tick (every ptime):
//!   receive: JitterBuffer::pop (decode, conceal, stretch) -> resample to the
//!            app rate (or re-encode, passthrough) -> bounded frame queue
//!   send:    one ptime from the outbound queue (or silence / CN / nothing)
//!            -> resample -> encode -> Session::send_frame -> SRTP -> transmit
//! on_rtcp_timer: Session RTCP reports -> SRTCP -> transmit
//! ```
//!
//! Nothing here reads a clock, touches a socket or starts a thread: time is
//! the caller's nanoseconds on one monotonic clock, and packets leave
//! through the `transmit` callback, borrowed from the leg's buffers. The
//! driver calls [`CallLeg::on_tick`] at `start + k * ptime` (drift-free),
//! which sends exactly one packet per tick however the application writes
//! (or none, for DTMF pauses and [`IdleMode::Nothing`]).
//!
//! Every datagram is accepted: whatever cannot be played (garbage, foreign
//! or unauthenticated packets, STUN, duplicates, late packets) is counted by
//! [`DropReason`] and reported as [`LegEvent::PacketsDropped`], never fatal.
//!
//! Resampling uses the [`PolyphaseResampler`] (a few ms of delay), not the
//! FFT resampler with its 64 ms blocks.

mod config;
mod events;
mod outbound;

use std::collections::VecDeque;
use std::net::SocketAddr;

use rtpcore_proto::codec::g711;
use rtpcore_proto::codec::g722::G722Encoder;
use rtpcore_proto::demux::{classify, PacketKind};
use rtpcore_proto::jitter::{self, Codec, JitterBuffer, PushOutcome};
use rtpcore_proto::resample::PolyphaseResampler;
use rtpcore_proto::session::dtmf::DtmfEvent;
use rtpcore_proto::session::emodel::CodecImpairment;
use rtpcore_proto::session::sender::{AudioFormat, Frame, SenderConfig};
use rtpcore_proto::session::{Incoming, PlayoutMetrics, Session, SessionConfig, SessionEvent};
use rtpcore_proto::srtp::{self, SrtpError};

pub use config::{IdleMode, LegConfig, LegError, SrtpKeying};
pub use events::{AppFrame, DropCounts, DropReason, FrameData, LegEvent, LegStats};
use config::config_error;
use outbound::Outbound;

/// The RTP clock of every supported codec (G.722's too, RFC 3551 4.5.2).
const RTP_CLOCK: u32 = 8000;
/// Largest datagram accepted; longer ones are dropped as malformed (an
/// audio packet of 60 ms G.711 with SRTP is about 520 bytes).
pub const MAX_DATAGRAM: usize = 2048;
/// Events kept for a driver that does not poll; beyond that the oldest go.
const EVENT_QUEUE: usize = 256;
/// μ-law and A-law codes of a zero sample.
const ULAW_SILENCE: u8 = 0xFF;
const ALAW_SILENCE: u8 = 0xD5;
/// The RFC 3611 receiver configuration byte: enhanced PLC (11), adaptive
/// jitter buffer (11), jitter buffer rate 0.
const XR_RX_CONFIG: u8 = 0b1111_0000;
/// Reason sent in our RTCP BYE.
const BYE_REASON: &[u8] = b"call ended";

/// A datagram for the driver to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// Where to.
    pub to: SocketAddr,
    /// Send from the leg's RTCP socket (RTCP without rtcp-mux); otherwise
    /// from the RTP socket.
    pub rtcp_socket: bool,
    /// The bytes.
    pub data: &'a [u8],
}

/// The send-side encoder; G.722 keeps its ADPCM state across the call.
#[derive(Debug)]
enum Encoder {
    Pcmu,
    Pcma,
    G722(Box<G722Encoder>),
}

impl Encoder {
    fn new(codec: Codec) -> Self {
        match codec {
            Codec::Pcmu => Encoder::Pcmu,
            Codec::Pcma => Encoder::Pcma,
            Codec::G722 => Encoder::G722(Box::new(G722Encoder::new())),
        }
    }

    /// Encodes one frame of codec-rate PCM into exactly `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) {
        match self {
            Encoder::Pcmu => g711::ulaw_encode_into(pcm, out),
            Encoder::Pcma => g711::alaw_encode_into(pcm, out),
            Encoder::G722(encoder) => encoder.encode_into(pcm, out),
        };
    }
}

/// The outbound queue in the application's units.
#[derive(Debug)]
enum OutboundAudio {
    Pcm(Outbound<i16>),
    Payload(Outbound<u8>),
}

/// One call's media pipeline; see the module documentation.
pub struct CallLeg {
    codec: Codec,
    ptime_ms: u32,
    app_rate: u32,
    passthrough: bool,
    latch: bool,
    idle: IdleMode,
    comfort_noise_level: u8,
    app_queue_frames: usize,
    session: Session<SocketAddr>,
    srtp_send: Option<srtp::Session>,
    srtp_recv: Option<srtp::Session>,
    jitter: JitterBuffer,
    remote_rtp: SocketAddr,
    remote_rtcp: Option<SocketAddr>,
    /// Decrypted datagram.
    recv_buf: Vec<u8>,
    /// One frame from the jitter buffer, at the codec rate.
    decoded: Vec<i16>,
    recv_resampler: PolyphaseResampler,
    app_frames: VecDeque<AppFrame>,
    frames_to_app: u64,
    frames_overrun: u64,
    outbound: OutboundAudio,
    /// One frame of application PCM, then at the codec rate, then encoded.
    send_app: Vec<i16>,
    send_codec: Vec<i16>,
    payload: Vec<u8>,
    send_resampler: PolyphaseResampler,
    encoder: Encoder,
    /// The RTP/RTCP packet as the session wrote it, and as protected.
    packet: Vec<u8>,
    wire: Vec<u8>,
    events: VecDeque<LegEvent>,
    events_lost: u64,
    dropped: DropCounts,
    /// Drops not yet reported in a `PacketsDropped` event.
    unreported: DropCounts,
    frames_sent: u64,
    idle_frames: u64,
    send_errors: u64,
    closed: bool,
}

impl std::fmt::Debug for CallLeg {
    /// The identity and state, never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLeg")
            .field("ssrc", &self.session.ssrc())
            .field("codec", &self.codec)
            .field("ptime_ms", &self.ptime_ms)
            .field("app_rate", &self.app_rate)
            .field("srtp", &(self.srtp_send.is_some(), self.srtp_recv.is_some()))
            .field("remote", &self.rtp_destination())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn srtp_session(keying: &Option<SrtpKeying>, field: &'static str) -> Result<Option<srtp::Session>, LegError> {
    keying
        .as_ref()
        .map(|k| {
            srtp::Session::new(k.profile, &k.master_key, &k.master_salt, srtp::SessionConfig::default())
                .map_err(|e| config_error(field, e.to_string()))
        })
        .transpose()
}

fn seconds(ns: i64) -> f64 {
    ns as f64 * 1e-9
}

impl CallLeg {
    /// A leg for `config`, sending to `remote_rtp` (and RTCP to
    /// `remote_rtcp`, or multiplexed on the RTP port when `None`), created
    /// at `now_ns`.
    pub fn new(
        config: LegConfig,
        remote_rtp: SocketAddr,
        remote_rtcp: Option<SocketAddr>,
        now_ns: i64,
    ) -> Result<Self, LegError> {
        let c = &config;
        if !(10..=60).contains(&c.ptime_ms) {
            return Err(config_error("ptime_ms", format!("must be 10..=60, got {}", c.ptime_ms)));
        }
        if c.passthrough && c.codec == Codec::G722 {
            return Err(config_error("passthrough", "only G.711 (PCMU, PCMA) can be passed through"));
        }
        let codec_rate = c.codec.sample_rate();
        let app_rate = if c.passthrough { codec_rate } else { c.app_sample_rate };
        let resampler = |from, to| {
            PolyphaseResampler::new(from, to).map_err(|_| {
                config_error("app_sample_rate", format!("must be 8000, 16000, 24000 or 48000, got {}", c.app_sample_rate))
            })
        };
        let recv_resampler = resampler(codec_rate, app_rate)?;
        let send_resampler = resampler(app_rate, codec_rate)?;
        if c.app_queue_frames == 0 {
            return Err(config_error("app_queue_frames", "must be at least 1"));
        }

        let mut sender = SenderConfig::new(AudioFormat { payload_type: c.payload_type, clock_rate: RTP_CLOCK, ptime_ms: c.ptime_ms });
        sender.telephone_event_pt = c.telephone_event_pt;
        sender.comfort_noise_pt = c.comfort_noise_pt;
        let mut session_config = SessionConfig::new(sender, c.cname.clone(), c.ntp, c.rng_seed);
        session_config.expected_remote_ssrc = c.expected_remote_ssrc;
        if c.srtp_recv.is_some() {
            // Only authentic packets reach the latch: the key, not a run of
            // packets, tells the peer from a third party, so the first
            // packet latches and is played (G.722's ADPCM then starts in
            // step with the sender instead of converging).
            session_config.latch.packets_to_latch = 1;
        }
        session_config.codec_impairment =
            if c.codec == Codec::G722 { CodecImpairment::G722_PLC } else { CodecImpairment::G711_PLC };
        let session = Session::new(session_config, now_ns).map_err(|e| config_error("session", e.0))?;

        let mut jitter_config = jitter::Config::new(c.codec);
        jitter_config.clock_rate = RTP_CLOCK;
        jitter_config.frame_ms = c.ptime_ms;
        jitter_config.payload_type = c.payload_type;
        // The session consumes telephone events before the buffer sees them.
        jitter_config.event_payload_type = None;
        jitter_config.cn_payload_type = c.comfort_noise_pt;
        // Room for the largest target delay in packets, and some to spare
        // for reordering: the store is allocated up front.
        jitter_config.capacity = (c.jitter.max_delay_ms / f64::from(c.ptime_ms)).ceil() as usize + 8;
        jitter_config.delay = c.jitter;
        let jitter = JitterBuffer::new(jitter_config).map_err(|e| config_error("jitter", e.0))?;

        let app_frame = (app_rate * c.ptime_ms / 1000) as usize;
        let codec_frame = (codec_rate * c.ptime_ms / 1000) as usize;
        let payload_len = (RTP_CLOCK * c.ptime_ms / 1000) as usize;
        let per_ms = (app_rate / 1000) as usize;
        let outbound = match (c.passthrough, c.codec) {
            (false, _) => OutboundAudio::Pcm(Outbound::new(app_frame, per_ms, c.max_queued_ms, 0)),
            (true, Codec::Pcma) => OutboundAudio::Payload(Outbound::new(payload_len, per_ms, c.max_queued_ms, ALAW_SILENCE)),
            (true, _) => OutboundAudio::Payload(Outbound::new(payload_len, per_ms, c.max_queued_ms, ULAW_SILENCE)),
        };
        Ok(CallLeg {
            codec: c.codec,
            ptime_ms: c.ptime_ms,
            app_rate,
            passthrough: c.passthrough,
            latch: c.latch,
            idle: c.idle,
            comfort_noise_level: c.comfort_noise_level.min(127),
            app_queue_frames: c.app_queue_frames,
            srtp_send: srtp_session(&c.srtp_send, "srtp_send")?,
            srtp_recv: srtp_session(&c.srtp_recv, "srtp_recv")?,
            session,
            decoded: vec![0; jitter.frame_len()],
            jitter,
            remote_rtp,
            remote_rtcp,
            recv_buf: vec![0; MAX_DATAGRAM],
            recv_resampler,
            app_frames: VecDeque::new(),
            frames_to_app: 0,
            frames_overrun: 0,
            outbound,
            send_app: vec![0; app_frame],
            send_codec: Vec::with_capacity(codec_frame),
            payload: vec![0; payload_len],
            send_resampler,
            encoder: Encoder::new(c.codec),
            packet: Vec::with_capacity(MAX_DATAGRAM),
            wire: vec![0; MAX_DATAGRAM],
            events: VecDeque::new(),
            events_lost: 0,
            dropped: DropCounts::default(),
            unreported: DropCounts::default(),
            frames_sent: 0,
            idle_frames: 0,
            send_errors: 0,
            closed: false,
        })
    }

    /// New addresses from signalling (re-INVITE), keeping the session. If
    /// the RTP address moved, media goes there until the peer's media
    /// latches anew, and the address it came from until now is superseded
    /// (see [`supersede`](Self::supersede)).
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>, now_ns: i64) {
        if rtp != self.remote_rtp {
            self.supersede(self.media_source(), now_ns);
        }
        self.remote_rtp = rtp;
        self.remote_rtcp = rtcp;
    }

    /// Where the peer's media comes from: the latched address, else the
    /// signalled one.
    pub fn media_source(&self) -> SocketAddr {
        self.session.remote().unwrap_or(self.remote_rtp)
    }

    /// Signalling moved the peer's media away from `addr`: it no longer
    /// holds the latch (media goes to the signalled address until the peer
    /// latches anew), and packets still arriving from it cannot take the
    /// latch back before the new address does.
    pub fn supersede(&mut self, addr: SocketAddr, now_ns: i64) {
        self.session.supersede_remote(addr, now_ns);
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.session.ssrc()
    }

    /// The application's sample rate (8000 in passthrough mode).
    pub fn app_sample_rate(&self) -> u32 {
        self.app_rate
    }

    /// Samples (or payload bytes, passthrough) in one application frame.
    pub fn app_frame_len(&self) -> usize {
        self.send_app.len()
    }

    /// The packetization interval, ms.
    pub fn ptime_ms(&self) -> u32 {
        self.ptime_ms
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Where RTP goes now: the latched address (with latching), else the
    /// signalled one.
    pub fn rtp_destination(&self) -> SocketAddr {
        match self.session.remote() {
            Some(latched) if self.latch => latched,
            _ => self.remote_rtp,
        }
    }

    fn rtcp_destination(&self) -> (SocketAddr, bool) {
        match self.remote_rtcp {
            Some(rtcp) => (rtcp, true),
            None => (self.rtp_destination(), false),
        }
    }

    fn push_event(&mut self, event: LegEvent) {
        if self.events.len() == EVENT_QUEUE {
            self.events.pop_front();
            self.events_lost += 1;
        }
        self.events.push_back(event);
    }

    fn count_drop(&mut self, reason: DropReason) {
        self.dropped.add(reason);
        self.unreported.add(reason);
    }

    /// Any datagram that arrived on the leg's RTP or RTCP socket from
    /// `from` at `arrival_ns`. Never fails: what cannot be played is
    /// counted.
    pub fn handle_datagram(&mut self, from: SocketAddr, datagram: &[u8], arrival_ns: i64) {
        if datagram.len() > MAX_DATAGRAM {
            self.count_drop(DropReason::Malformed);
            return;
        }
        let unprotected = match (classify(datagram), self.srtp_recv.as_mut()) {
            (PacketKind::Rtp, Some(srtp)) => srtp.unprotect_rtp(datagram, &mut self.recv_buf),
            (PacketKind::Rtcp, Some(srtp)) => srtp.unprotect_rtcp(datagram, &mut self.recv_buf),
            _ => {
                // Plain RTP, or not RTP at all (the session sorts it out).
                self.recv_buf[..datagram.len()].copy_from_slice(datagram);
                Ok(datagram.len())
            }
        };
        let len = match unprotected {
            Ok(len) => len,
            Err(e) => {
                self.count_drop(match e {
                    SrtpError::Authentication { .. } => DropReason::Authentication,
                    SrtpError::Replay { .. } => DropReason::Replay,
                    _ => DropReason::Malformed,
                });
                return;
            }
        };
        let plain = &self.recv_buf[..len];
        let drop = match self.session.handle_datagram(from, plain, arrival_ns) {
            Incoming::Media(_) => match self.jitter.push(plain, seconds(arrival_ns)) {
                PushOutcome::Buffered | PushOutcome::ComfortNoise | PushOutcome::Event(_) => None,
                PushOutcome::Late => Some(DropReason::Late),
                PushOutcome::Duplicate => Some(DropReason::Duplicate),
                PushOutcome::Malformed => Some(DropReason::Malformed),
            },
            Incoming::Consumed => None,
            Incoming::NotMedia(_) => Some(DropReason::NotMedia),
            Incoming::Dropped(reason) => Some(reason.into()),
        };
        if let Some(reason) = drop {
            self.count_drop(reason);
        }
        self.drain_session_events();
    }

    /// The ptime clock ticked at `now_ns`: one frame from the jitter buffer
    /// goes to the application's queue, and one ptime of the application's
    /// audio (or silence, comfort noise, DTMF, nothing) goes out.
    pub fn on_tick(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        if self.closed {
            return;
        }
        self.receive_frame(now_ns);
        self.send_frame(now_ns, transmit);
        self.report_drops();
        self.drain_session_events();
    }

    fn receive_frame(&mut self, now_ns: i64) {
        let info = self.jitter.pop(seconds(now_ns), &mut self.decoded);
        let data = if self.passthrough {
            let mut payload = vec![0; self.decoded.len()];
            match self.codec {
                Codec::Pcma => g711::alaw_encode_into(&self.decoded, &mut payload),
                _ => g711::ulaw_encode_into(&self.decoded, &mut payload),
            };
            FrameData::Payload(payload)
        } else {
            let mut pcm = Vec::with_capacity(self.send_app.len());
            self.recv_resampler.process(&self.decoded, &mut pcm);
            FrameData::Pcm(pcm)
        };
        if self.app_frames.len() >= self.app_queue_frames {
            self.app_frames.pop_front();
            self.frames_overrun += 1;
        }
        self.app_frames.push_back(AppFrame { data, kind: info.kind, rtp_timestamp: info.timestamp, index: self.frames_to_app });
        self.frames_to_app += 1;
        let stats = self.jitter.stats();
        let ms = |x: f64| x.round().clamp(0.0, f64::from(u16::MAX)) as u16;
        let max_ms = self.jitter.config().delay.max_delay_ms;
        self.session.set_playout_metrics(PlayoutMetrics {
            jb_nominal_ms: ms(stats.target_delay_ms),
            jb_maximum_ms: ms(stats.current_delay_ms.max(stats.target_delay_ms)),
            jb_abs_max_ms: ms(max_ms),
            discarded: stats.late + stats.overflow,
            rx_config: XR_RX_CONFIG,
        });
    }

    fn send_frame(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        let mut events = Vec::new();
        // While DTMF is on the wire the application's audio waits (the
        // sender would drop it), so nothing of it is lost and marks stay
        // in step with what the peer hears.
        let dtmf_busy = self.session.sender().dtmf_pending();
        let has_audio = !dtmf_busy
            && match &mut self.outbound {
                OutboundAudio::Pcm(q) => q.take_frame(&mut self.send_app, &mut |e| events.push(e)),
                OutboundAudio::Payload(q) => q.take_frame(&mut self.payload, &mut |e| events.push(e)),
            };
        let silence_code = if self.codec == Codec::Pcma { ALAW_SILENCE } else { ULAW_SILENCE };
        if !has_audio {
            // What the application "sent" this interval is silence, for the
            // recording tap (`last_sent_pcm`) as on the wire.
            self.send_app.fill(0);
            if self.passthrough {
                self.payload.fill(silence_code);
            }
        }
        let frame = if has_audio {
            self.frames_sent += 1;
            if !self.passthrough {
                self.encode_app_frame();
            }
            Frame::Speech(&self.payload)
        } else {
            self.idle_frames += 1;
            match self.idle {
                _ if dtmf_busy => Frame::Nothing,
                IdleMode::Silence => {
                    // Through the same path as speech, so the resampler and
                    // the G.722 encoder stay continuous.
                    if !self.passthrough {
                        self.encode_app_frame();
                    }
                    Frame::Speech(&self.payload)
                }
                IdleMode::ComfortNoise => Frame::Silence { noise_level: self.comfort_noise_level },
                IdleMode::Nothing => Frame::Nothing,
            }
        };
        if self.session.send_frame(frame, now_ns, &mut self.packet).is_some() {
            let to = self.rtp_destination();
            self.transmit_packet(to, false, false, transmit);
        }
        for event in events {
            self.push_event(event);
        }
    }

    /// `send_app` (one application frame) -> `payload`.
    fn encode_app_frame(&mut self) {
        self.send_codec.clear();
        self.send_resampler.process(&self.send_app, &mut self.send_codec);
        self.encoder.encode(&self.send_codec, &mut self.payload);
    }

    /// Protects `self.packet` if SRTP is on and hands it to `transmit`.
    fn transmit_packet(&mut self, to: SocketAddr, rtcp: bool, rtcp_socket: bool, transmit: &mut impl FnMut(Transmit<'_>)) {
        let Some(srtp) = self.srtp_send.as_mut() else {
            transmit(Transmit { to, rtcp_socket, data: &self.packet });
            return;
        };
        let protected = if rtcp {
            srtp.protect_rtcp(&self.packet, &mut self.wire)
        } else {
            srtp.protect_rtp(&self.packet, &mut self.wire)
        };
        match protected {
            Ok(len) => transmit(Transmit { to, rtcp_socket, data: &self.wire[..len] }),
            // Only an exhausted index (2^48 packets) can fail here: the
            // packet and the buffer sizes are ours.
            Err(_) => self.send_errors += 1,
        }
    }

    fn report_drops(&mut self) {
        let unreported = std::mem::take(&mut self.unreported);
        for (reason, count) in unreported.nonzero() {
            self.push_event(LegEvent::PacketsDropped { reason, count });
        }
    }

    fn drain_session_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            let event = match event {
                SessionEvent::RemoteLatched { ssrc } => match self.session.remote() {
                    Some(addr) => LegEvent::RemoteLatched { addr, ssrc },
                    None => continue,
                },
                SessionEvent::SsrcChanged { old, new } => LegEvent::SsrcChanged { old, new },
                SessionEvent::Dtmf(ended @ DtmfEvent::Ended { duration, .. }) => {
                    // Other RFC 4733 events (flash, tones) are not digits.
                    let Some(digit) = ended.digit() else { continue };
                    LegEvent::Dtmf { digit, duration_ms: (u64::from(duration) * 1000 / u64::from(RTP_CLOCK)) as u32 }
                }
                SessionEvent::Dtmf(DtmfEvent::Started { .. }) => continue,
                SessionEvent::ReportReceived(report) => LegEvent::RtcpReport {
                    fraction_lost: f64::from(report.block.fraction_lost) / 256.0,
                    cumulative_lost: report.block.cumulative_lost,
                    jitter_ms: f64::from(report.block.jitter) * 1000.0 / f64::from(RTP_CLOCK),
                    rtt_ms: report.rtt_ns.map(|ns| ns as f64 / 1e6),
                },
                SessionEvent::ByeReceived { reason, .. } => {
                    LegEvent::Bye { reason: reason.map(|r| String::from_utf8_lossy(&r).into_owned()) }
                }
            };
            self.push_event(event);
        }
    }

    /// When [`on_rtcp_timer`](Self::on_rtcp_timer) next has work (ns);
    /// `i64::MAX` once closed.
    pub fn next_rtcp_deadline_ns(&self) -> i64 {
        self.session.next_deadline_ns()
    }

    /// Runs the session's timers at `now_ns`: an RTCP report when due, the
    /// end of a DTMF event whose end packets were lost.
    pub fn on_rtcp_timer(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        if self.closed {
            return;
        }
        self.session.handle_timeout(now_ns);
        if self.session.poll_rtcp(now_ns, &mut self.packet) {
            let (to, rtcp_socket) = self.rtcp_destination();
            self.transmit_packet(to, true, rtcp_socket, transmit);
        }
        self.drain_session_events();
    }

    /// Queues PCM at the application rate, paced out by `on_tick`.
    pub fn write_audio(&mut self, pcm: &[i16]) -> Result<(), LegError> {
        if self.closed {
            return Err(LegError::Closed);
        }
        match &mut self.outbound {
            OutboundAudio::Pcm(q) => q.write(pcm),
            OutboundAudio::Payload(_) => Err(LegError::WrongMode { expected: "payload" }),
        }
    }

    /// Queues G.711 payload bytes (passthrough mode), paced out by `on_tick`.
    pub fn write_payload(&mut self, payload: &[u8]) -> Result<(), LegError> {
        if self.closed {
            return Err(LegError::Closed);
        }
        match &mut self.outbound {
            OutboundAudio::Payload(q) => q.write(payload),
            OutboundAudio::Pcm(_) => Err(LegError::WrongMode { expected: "pcm" }),
        }
    }

    /// Sets a play-out mark after the audio queued so far:
    /// [`LegEvent::MarkPlayed`] `{cleared: false}` comes once that audio has
    /// been sent (at once with nothing queued).
    pub fn mark(&mut self, name: String) {
        let mut events = Vec::new();
        match &mut self.outbound {
            OutboundAudio::Pcm(q) => q.mark(name, &mut |e| events.push(e)),
            OutboundAudio::Payload(q) => q.mark(name, &mut |e| events.push(e)),
        }
        for event in events {
            self.push_event(event);
        }
    }

    /// Barge-in: drops all queued outbound audio (the next tick sends idle
    /// audio) and fires pending marks with `cleared: true`, in order.
    pub fn clear(&mut self) {
        let mut events = Vec::new();
        match &mut self.outbound {
            OutboundAudio::Pcm(q) => q.clear(&mut |e| events.push(e)),
            OutboundAudio::Payload(q) => q.clear(&mut |e| events.push(e)),
        }
        for event in events {
            self.push_event(event);
        }
    }

    /// Queues DTMF digits (`0-9 * # A-D`) of `duration_ms` each, sent as
    /// RFC 4733 events; the application's audio waits meanwhile.
    pub fn send_dtmf(&mut self, digits: &str, duration_ms: u32) -> Result<(), LegError> {
        if self.closed {
            return Err(LegError::Closed);
        }
        self.session.send_dtmf(digits, duration_ms).map_err(LegError::Dtmf)
    }

    /// The application audio of the last tick at the application rate
    /// (silence when it had none), for recording what was sent. Empty in
    /// passthrough mode: see [`last_sent_payload`](Self::last_sent_payload).
    pub fn last_sent_pcm(&self) -> &[i16] {
        if self.passthrough {
            &[]
        } else {
            &self.send_app
        }
    }

    /// The G.711 payload of the last tick in passthrough mode (the codes of
    /// silence when the application had none); empty otherwise.
    pub fn last_sent_payload(&self) -> &[u8] {
        if self.passthrough {
            &self.payload
        } else {
            &[]
        }
    }

    /// The oldest received frame for the application.
    pub fn pop_frame(&mut self) -> Option<AppFrame> {
        self.app_frames.pop_front()
    }

    /// Frames waiting for the application.
    pub fn frames_ready(&self) -> usize {
        self.app_frames.len()
    }

    /// The oldest event.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// Ends the leg at `now_ns`: sends the final RTCP with a BYE; pending
    /// marks fire as cleared. Later calls do nothing; datagrams are dropped.
    pub fn close(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        if self.closed {
            return;
        }
        self.clear();
        if self.session.close(now_ns, Some(BYE_REASON), &mut self.packet) {
            let (to, rtcp_socket) = self.rtcp_destination();
            self.transmit_packet(to, true, rtcp_socket, transmit);
        }
        self.closed = true;
        self.report_drops();
        self.drain_session_events();
    }

    /// Marks waiting for their audio to go out.
    pub fn pending_marks(&self) -> usize {
        match &self.outbound {
            OutboundAudio::Pcm(q) => q.pending_marks(),
            OutboundAudio::Payload(q) => q.pending_marks(),
        }
    }

    /// Outbound audio waiting, ms.
    pub fn queued_ms(&self) -> u32 {
        match &self.outbound {
            OutboundAudio::Pcm(q) => q.queued_ms(),
            OutboundAudio::Payload(q) => q.queued_ms(),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LegStats {
        let cleared_units = match &self.outbound {
            OutboundAudio::Pcm(q) => q.cleared,
            OutboundAudio::Payload(q) => q.cleared,
        };
        LegStats {
            codec: self.codec,
            session: self.session.stats(),
            jitter: self.jitter.stats(),
            dropped: self.dropped,
            frames_to_app: self.frames_to_app,
            frames_overrun: self.frames_overrun,
            frames_sent: self.frames_sent,
            idle_frames: self.idle_frames,
            cleared_ms: cleared_units * 1000 / u64::from(self.app_rate),
            queued_ms: self.queued_ms(),
            send_errors: self.send_errors,
            events_lost: self.events_lost,
            quality: self.session.quality(),
        }
    }
}
