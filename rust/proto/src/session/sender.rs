//! The sending half of an RTP audio session: SSRC, sequence numbers and
//! timestamps, one packet per packetization interval (ptime), the marker bit
//! on talk-spurt starts, RFC 4733 DTMF and RFC 3389 comfort noise.
//!
//! The engine keeps the ptime clock: every ptime it calls
//! [`RtpSender::send_frame`] with what the application gave for that
//! interval (encoded speech, silence, or nothing) and gets at most one packet
//! back, written into a buffer it reuses. The sender never allocates per
//! packet. The RTP timestamp advances by one ptime on every call, whether a
//! packet goes out or not, because it counts sampling instants (RFC 3550
//! section 5.1): after a silence the next packet's timestamp jumps.

use std::collections::VecDeque;
use std::fmt;

use crate::payload::{ComfortNoise, TelephoneEvent};
use crate::rtp::RtpPacketBuilder;
use crate::session::rng::SessionRng;

/// How the negotiated audio codec is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// The negotiated payload type, 0..=127.
    pub payload_type: u8,
    /// The RTP clock rate. G.722 samples at 16 kHz but its RTP clock runs at
    /// 8000 Hz, an error in RFC 1890 kept for compatibility (RFC 3551
    /// section 4.5.2), so pass 8000 for it as for G.711.
    pub clock_rate: u32,
    /// The packetization interval in milliseconds (SDP `a=ptime`).
    pub ptime_ms: u32,
}

impl AudioFormat {
    /// G.711 μ-law (PCMU, payload type 0) at `ptime_ms`.
    pub fn pcmu(ptime_ms: u32) -> Self {
        AudioFormat { payload_type: 0, clock_rate: 8000, ptime_ms }
    }

    /// G.711 A-law (PCMA, payload type 8) at `ptime_ms`.
    pub fn pcma(ptime_ms: u32) -> Self {
        AudioFormat { payload_type: 8, clock_rate: 8000, ptime_ms }
    }

    /// G.722 (payload type 9) at `ptime_ms`, with its 8000 Hz RTP clock.
    pub fn g722(ptime_ms: u32) -> Self {
        AudioFormat { payload_type: 9, clock_rate: 8000, ptime_ms }
    }

    /// Timestamp units in one packet. For G.711 and G.722 this is also the
    /// payload length in bytes: both code one byte per tick of their RTP
    /// clock (G.722: two 16 kHz samples in one byte at 64 kbit/s).
    pub fn ticks_per_packet(&self) -> u32 {
        // Validated in `SenderConfig::validate`: ptime * rate fits a u32
        // comfortably (at most 1000 ms * 192 kHz).
        (u64::from(self.clock_rate) * u64::from(self.ptime_ms) / 1000) as u32
    }
}

/// Everything the sender needs to know, from the SDP negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderConfig {
    /// The SSRC to send with; `None` draws a random one (RFC 3550 section 8.1).
    pub ssrc: Option<u32>,
    /// The audio codec.
    pub audio: AudioFormat,
    /// The payload type of `telephone-event`, if negotiated; its clock must
    /// be the audio clock (RFC 4733 section 2.1), as SDP offers it.
    pub telephone_event_pt: Option<u8>,
    /// The payload type of `CN` (RFC 3389), if negotiated.
    pub comfort_noise_pt: Option<u8>,
    /// During a silence, resend the comfort-noise level at least this often
    /// (milliseconds), so that a receiver that missed the first CN packet or
    /// joined late still plays noise. RFC 3389 section 4 leaves the update
    /// rate to the sender; a new level is always sent at once.
    pub comfort_noise_refresh_ms: u32,
    /// Volume of sent DTMF in -dBm0 (RFC 4733 section 2.3.4), 0..=63.
    pub dtmf_volume: u8,
    /// Pause between two queued DTMF events, in milliseconds. Receivers and
    /// gateways need a gap to tell two equal digits apart.
    pub dtmf_gap_ms: u32,
}

impl SenderConfig {
    /// A configuration for `audio` with the usual defaults: random SSRC, no
    /// DTMF or CN, CN refresh every 5 s, DTMF at -10 dBm0 with 60 ms gaps.
    pub fn new(audio: AudioFormat) -> Self {
        SenderConfig {
            ssrc: None,
            audio,
            telephone_event_pt: None,
            comfort_noise_pt: None,
            comfort_noise_refresh_ms: 5000,
            dtmf_volume: 10,
            dtmf_gap_ms: 60,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let pts = [Some(self.audio.payload_type), self.telephone_event_pt, self.comfort_noise_pt];
        if pts.iter().flatten().any(|&pt| pt > 127) {
            return Err(ConfigError("payload types must be 0..=127"));
        }
        if !(1..=1000).contains(&self.audio.ptime_ms) {
            return Err(ConfigError("ptime_ms must be 1..=1000"));
        }
        if !(1000..=192_000).contains(&self.audio.clock_rate) {
            return Err(ConfigError("clock_rate must be 1000..=192000 Hz"));
        }
        if self.audio.ticks_per_packet() == 0 {
            return Err(ConfigError("ptime is shorter than one clock tick"));
        }
        if u64::from(self.audio.ticks_per_packet()) > MAX_EVENT_DURATION {
            // A telephone-event packet must be able to state one ptime.
            return Err(ConfigError("one ptime must be at most 65535 clock ticks"));
        }
        if self.dtmf_volume > 63 {
            return Err(ConfigError("dtmf_volume must be 0..=63"));
        }
        Ok(())
    }
}

/// A configuration value the wire or the RFCs cannot accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the application has for one packetization interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Encoded speech covering exactly one ptime.
    Speech(&'a [u8]),
    /// Silence; `noise_level` is the background noise in -dBov, 0..=127
    /// (RFC 3389 section 3.1), sent as comfort noise if CN was negotiated.
    Silence {
        /// Noise level in -dBov (127 is the quietest).
        noise_level: u8,
    },
    /// Nothing to send this interval (the application is not talking and
    /// no comfort noise is wanted); time still moves on.
    Nothing,
}

/// What kind of packet [`RtpSender::send_frame`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentKind {
    /// An audio packet of the negotiated codec.
    Audio,
    /// An RFC 3389 comfort noise packet.
    ComfortNoise,
    /// An RFC 4733 telephone-event packet.
    TelephoneEvent(TelephoneEvent),
}

/// The header values of a packet just written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// What the packet carries.
    pub kind: SentKind,
    /// Its sequence number.
    pub sequence_number: u16,
    /// Its timestamp.
    pub timestamp: u32,
    /// Its marker bit.
    pub marker: bool,
    /// Its length in bytes.
    pub len: usize,
}

/// Why a DTMF request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfError {
    /// `telephone-event` was not negotiated.
    NotNegotiated,
    /// The digit is not one of `0-9 * # A-D`.
    UnknownDigit(char),
    /// The duration is zero.
    ZeroDuration,
    /// [`MAX_QUEUED_DTMF`] events are already waiting.
    QueueFull,
}

impl fmt::Display for DtmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtmfError::NotNegotiated => f.write_str("telephone-event was not negotiated"),
            DtmfError::UnknownDigit(c) => write!(f, "{c:?} is not a DTMF digit (0-9 * # A-D)"),
            DtmfError::ZeroDuration => f.write_str("a DTMF event must last at least 1 ms"),
            DtmfError::QueueFull => write!(f, "{MAX_QUEUED_DTMF} DTMF events are already queued"),
        }
    }
}

impl std::error::Error for DtmfError {}

/// Most DTMF events that can wait to be sent; the queue is allocated once.
pub const MAX_QUEUED_DTMF: usize = 64;

/// Packets of the final (E bit) telephone-event packet: RFC 4733 section
/// 2.5.1.4 has it retransmitted so that a lost end packet does not leave a
/// digit ringing; three is what the RFC's examples and common stacks send.
pub const DTMF_END_PACKETS: u8 = 3;

/// The largest duration one telephone-event packet can state.
const MAX_EVENT_DURATION: u64 = 0xFFFF;

#[derive(Debug, Clone, Copy)]
struct DtmfRequest {
    event: u8,
    /// Requested length in timestamp units.
    ticks: u64,
}

/// The event being sent.
#[derive(Debug, Clone, Copy)]
struct ActiveEvent {
    event: u8,
    /// Requested length in timestamp units.
    total: u64,
    /// Timestamp units covered so far, across segments.
    elapsed: u64,
    /// Timestamp of the current segment (RFC 4733 section 2.5.1.3).
    segment_timestamp: u32,
    /// `elapsed` at the start of the current segment.
    segment_start: u64,
    first_sent: bool,
    /// End packets sent so far; 0 while the event is still running.
    ends_sent: u8,
    /// The duration the end packets carry.
    final_duration: u16,
}

/// Counters an RTCP sender report needs (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderCounters {
    /// Packets sent, wrapping at 2^32 as the SR field does.
    pub packets: u32,
    /// Payload octets sent, wrapping at 2^32.
    pub octets: u32,
    /// When the last packet went out (the caller's clock, ns).
    pub last_sent_ns: Option<i64>,
}

/// The sending half of one RTP audio stream; see the module documentation.
#[derive(Debug, Clone)]
pub struct RtpSender {
    config: SenderConfig,
    ssrc: u32,
    ticks_per_packet: u32,
    next_sequence: u16,
    /// Timestamp of the interval the next `send_frame` covers.
    next_timestamp: u32,
    /// The next audio packet starts a talk spurt (RFC 3551 section 4.1).
    talkspurt_start: bool,
    /// Comfort noise state: the level last sent and frames since then.
    last_noise_level: Option<u8>,
    frames_since_noise: u32,
    dtmf_queue: VecDeque<DtmfRequest>,
    active: Option<ActiveEvent>,
    /// Intervals of pause left before the next queued event may start.
    gap_frames_left: u32,
    counters: SenderCounters,
    /// `(now_ns, timestamp)` of the last interval, to extrapolate the RTP
    /// timestamp of a sender report.
    anchor: Option<(i64, u32)>,
    payload: [u8; TelephoneEvent::LEN],
}

impl RtpSender {
    /// A sender for `config`; the SSRC (unless given), the first sequence
    /// number and the first timestamp come from `rng`, as RFC 3550 sections
    /// 5.1 and 8.1 ask (random starting points make known-plaintext attacks
    /// on SRTP harder and keep restarted streams apart).
    pub fn new(config: SenderConfig, rng: &mut SessionRng) -> Result<Self, ConfigError> {
        config.validate()?;
        let ssrc = config.ssrc.unwrap_or_else(|| rng.next_u32());
        Ok(RtpSender {
            ssrc,
            ticks_per_packet: config.audio.ticks_per_packet(),
            next_sequence: rng.next_u32() as u16,
            next_timestamp: rng.next_u32(),
            talkspurt_start: true,
            last_noise_level: None,
            frames_since_noise: 0,
            dtmf_queue: VecDeque::with_capacity(MAX_QUEUED_DTMF),
            active: None,
            gap_frames_left: 0,
            counters: SenderCounters::default(),
            anchor: None,
            payload: [0; TelephoneEvent::LEN],
            config,
        })
    }

    /// The SSRC this sender uses.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The configuration.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// The packet and octet counts of a sender report.
    pub fn counters(&self) -> SenderCounters {
        self.counters
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence_number(&self) -> u16 {
        self.next_sequence
    }

    /// The timestamp of the interval the next [`send_frame`](Self::send_frame)
    /// covers.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// The RTP timestamp that corresponds to `now_ns`, for a sender report:
    /// extrapolated from the last interval at the codec's clock rate
    /// (RFC 3550 section 6.4.1). `None` before the first interval.
    pub fn rtp_timestamp_at(&self, now_ns: i64) -> Option<u32> {
        let (at_ns, timestamp) = self.anchor?;
        let ticks = (i128::from(now_ns) - i128::from(at_ns)) * i128::from(self.config.audio.clock_rate) / 1_000_000_000;
        // Truncation to 32 bits is the timestamp's own wrap-around.
        Some(timestamp.wrapping_add(ticks as u32))
    }

    /// Queues `digits` (`0-9 * # A-D`, either case) as RFC 4733 events of
    /// `duration_ms` each, sent one after the other with the configured gap.
    /// Nothing is queued unless every digit is valid and fits the queue.
    pub fn queue_dtmf(&mut self, digits: &str, duration_ms: u32) -> Result<(), DtmfError> {
        if self.config.telephone_event_pt.is_none() {
            return Err(DtmfError::NotNegotiated);
        }
        if duration_ms == 0 {
            return Err(DtmfError::ZeroDuration);
        }
        if let Some(bad) = digits.chars().find(|&c| TelephoneEvent::event_of_digit(c).is_none()) {
            return Err(DtmfError::UnknownDigit(bad));
        }
        if self.dtmf_queue.len() + digits.chars().count() > MAX_QUEUED_DTMF {
            return Err(DtmfError::QueueFull);
        }
        let ticks = u64::from(duration_ms) * u64::from(self.config.audio.clock_rate) / 1000;
        for digit in digits.chars() {
            // Checked above: every character is a digit.
            let event = TelephoneEvent::event_of_digit(digit).expect("digits validated above");
            self.dtmf_queue.push_back(DtmfRequest { event, ticks: ticks.max(1) });
        }
        Ok(())
    }

    /// Whether a DTMF event is being sent or waiting.
    pub fn dtmf_pending(&self) -> bool {
        self.active.is_some() || !self.dtmf_queue.is_empty()
    }

    /// Drops queued DTMF events (not the one on the wire, which must still
    /// end properly).
    pub fn clear_dtmf_queue(&mut self) {
        self.dtmf_queue.clear();
    }

    /// Sends what belongs to one packetization interval, called once per
    /// ptime at `now_ns`. Writes at most one packet to `out` (cleared first)
    /// and says what it was; `None` means nothing goes out this interval.
    ///
    /// While a DTMF event is on the wire the audio of the interval is
    /// dropped: RFC 4733 section 2.5.1.1 wants the tone not to be heard
    /// twice (in-band and as an event).
    pub fn send_frame(&mut self, frame: Frame<'_>, now_ns: i64, out: &mut Vec<u8>) -> Option<SentPacket> {
        out.clear();
        let timestamp = self.next_timestamp;
        self.next_timestamp = timestamp.wrapping_add(self.ticks_per_packet);
        self.anchor = Some((now_ns, timestamp));
        if self.active.is_none() && self.gap_frames_left > 0 {
            self.gap_frames_left -= 1;
        } else if self.active.is_none() {
            if let Some(request) = self.dtmf_queue.pop_front() {
                self.active = Some(ActiveEvent {
                    event: request.event,
                    total: request.ticks,
                    elapsed: 0,
                    segment_timestamp: timestamp,
                    segment_start: 0,
                    first_sent: false,
                    ends_sent: 0,
                    final_duration: 0,
                });
            }
        }
        if self.active.is_some() {
            self.talkspurt_start = true;
            self.last_noise_level = None;
            self.send_event(now_ns, out)
        } else {
            match frame {
                Frame::Speech(payload) => {
                    let marker = self.talkspurt_start;
                    self.talkspurt_start = false;
                    self.last_noise_level = None;
                    let pt = self.config.audio.payload_type;
                    Some(self.write(SentKind::Audio, pt, marker, timestamp, payload, now_ns, out))
                }
                Frame::Silence { noise_level } => {
                    self.talkspurt_start = true;
                    self.send_noise(noise_level.min(127), timestamp, now_ns, out)
                }
                Frame::Nothing => {
                    self.talkspurt_start = true;
                    self.last_noise_level = None;
                    None
                }
            }
        }
    }

    /// Comfort noise at the start of a silence, on a level change and
    /// every refresh interval (RFC 3389 section 4).
    fn send_noise(&mut self, level: u8, timestamp: u32, now_ns: i64, out: &mut Vec<u8>) -> Option<SentPacket> {
        let pt = self.config.comfort_noise_pt?;
        let refresh_frames = (self.config.comfort_noise_refresh_ms / self.config.audio.ptime_ms).max(1);
        self.frames_since_noise = self.frames_since_noise.saturating_add(1);
        let due = match self.last_noise_level {
            None => true,
            Some(last) => last != level || self.frames_since_noise >= refresh_frames,
        };
        if !due {
            return None;
        }
        self.last_noise_level = Some(level);
        self.frames_since_noise = 0;
        // The payload is the level alone: no spectral coefficients (RFC 3389
        // section 3: model order 0 means white noise).
        let payload = [level];
        debug_assert!(ComfortNoise::parse(&payload).is_ok());
        Some(self.write(SentKind::ComfortNoise, pt, false, timestamp, &payload, now_ns, out))
    }

    /// The next packet of the active event (RFC 4733 section 2.5.1).
    fn send_event(&mut self, now_ns: i64, out: &mut Vec<u8>) -> Option<SentPacket> {
        // Only called with an active event and a negotiated payload type
        // (queue_dtmf refuses events otherwise).
        let pt = self.config.telephone_event_pt?;
        let ticks = u64::from(self.ticks_per_packet);
        let mut ev = self.active?;
        let marker = !ev.first_sent;
        ev.first_sent = true;
        let (duration, end) = if ev.ends_sent > 0 {
            // A retransmission of the end packet: same timestamp, same
            // duration, a new sequence number (section 2.5.1.4).
            ev.ends_sent += 1;
            (ev.final_duration, true)
        } else {
            ev.elapsed += ticks;
            let covered = ev.elapsed.min(ev.total) - ev.segment_start;
            if covered > MAX_EVENT_DURATION {
                // Section 2.5.1.3: a duration cannot pass 0xFFFF, so the
                // segment ends at that value and a new one begins with its
                // timestamp moved on by the same amount, without the marker
                // and without the E bit.
                let packet = (MAX_EVENT_DURATION as u16, false, ev.segment_timestamp);
                ev.segment_timestamp = ev.segment_timestamp.wrapping_add(MAX_EVENT_DURATION as u32);
                ev.segment_start += MAX_EVENT_DURATION;
                self.active = Some(ev);
                return Some(self.write_event(pt, marker, ev.event, packet, now_ns, out));
            }
            // At most 0xFFFF by the branch above.
            let covered = covered as u16;
            if ev.elapsed >= ev.total {
                ev.ends_sent = 1;
                ev.final_duration = covered;
                (covered, true)
            } else {
                (covered, false)
            }
        };
        let timestamp = ev.segment_timestamp;
        if ev.ends_sent >= DTMF_END_PACKETS {
            self.active = None;
            self.gap_frames_left = self.config.dtmf_gap_ms.div_ceil(self.config.audio.ptime_ms);
        } else {
            self.active = Some(ev);
        }
        Some(self.write_event(pt, marker, ev.event, (duration, end, timestamp), now_ns, out))
    }

    fn write_event(
        &mut self,
        pt: u8,
        marker: bool,
        event: u8,
        (duration, end, timestamp): (u16, bool, u32),
        now_ns: i64,
        out: &mut Vec<u8>,
    ) -> SentPacket {
        let ev = TelephoneEvent { event, end, volume: self.config.dtmf_volume, duration };
        let b = ev.duration.to_be_bytes();
        // The RFC 4733 layout (TelephoneEvent::write), written into a fixed
        // array so that no Vec is needed; the volume was validated in new().
        self.payload = [ev.event, u8::from(ev.end) << 7 | ev.volume, b[0], b[1]];
        let payload = self.payload;
        self.write(SentKind::TelephoneEvent(ev), pt, marker, timestamp, &payload, now_ns, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        kind: SentKind,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        now_ns: i64,
        out: &mut Vec<u8>,
    ) -> SentPacket {
        let sequence_number = self.next_sequence;
        self.next_sequence = sequence_number.wrapping_add(1);
        let builder = RtpPacketBuilder {
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc: self.ssrc,
            payload,
            ..Default::default()
        };
        // The builder only fails on a payload type above 127, CSRCs or an
        // extension; payload types were validated in new() and there are none
        // of the others.
        builder.write(out).expect("payload types validated in SenderConfig::validate");
        self.counters.packets = self.counters.packets.wrapping_add(1);
        // RFC 3550 6.4.1: the octet count wraps like the field.
        self.counters.octets = self.counters.octets.wrapping_add(payload.len() as u32);
        self.counters.last_sent_ns = Some(now_ns);
        SentPacket { kind, sequence_number, timestamp, marker, len: out.len() }
    }
}

/// Cuts a stream of encoded bytes of a sample codec (G.711, G.722: one
/// byte per RTP tick) into payloads of one ptime each, whatever the sizes
/// the caller pushes; its buffer is allocated once.
#[derive(Debug, Clone)]
pub struct Packetizer {
    buf: Vec<u8>,
    frame_bytes: usize,
}

impl Packetizer {
    /// A packetizer that emits payloads of `frame_bytes` bytes (for G.711
    /// and G.722, [`AudioFormat::ticks_per_packet`]); at least 1.
    pub fn new(frame_bytes: usize) -> Self {
        let frame_bytes = frame_bytes.max(1);
        Packetizer { buf: Vec::with_capacity(frame_bytes), frame_bytes }
    }

    /// Appends `input` and calls `emit` with every whole payload it
    /// completes, in order; the remainder waits for the next push.
    pub fn push(&mut self, mut input: &[u8], mut emit: impl FnMut(&[u8])) {
        while !input.is_empty() {
            if self.buf.is_empty() && input.len() >= self.frame_bytes {
                // A whole payload straight from the input: no copy.
                let (frame, rest) = input.split_at(self.frame_bytes);
                emit(frame);
                input = rest;
                continue;
            }
            let take = (self.frame_bytes - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() == self.frame_bytes {
                emit(&self.buf);
                self.buf.clear();
            }
        }
    }

    /// Bytes waiting for the rest of their payload.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets the waiting bytes (barge-in: the rest of a sentence is void).
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;

    const MS: i64 = 1_000_000;

    fn sender(te: Option<u8>, cn: Option<u8>) -> RtpSender {
        let mut config = SenderConfig::new(AudioFormat::pcmu(20));
        config.ssrc = Some(0x1234_5678);
        config.telephone_event_pt = te;
        config.comfort_noise_pt = cn;
        RtpSender::new(config, &mut SessionRng::new(1)).unwrap()
    }

    /// Runs `frames` intervals of 20 ms and parses what went out.
    /// Payload type, marker, sequence number, timestamp and payload.
    type Sent = (u8, bool, u16, u32, Vec<u8>);

    fn run(s: &mut RtpSender, frames: &[Frame<'_>]) -> Vec<Option<Sent>> {
        let mut out = Vec::new();
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                s.send_frame(*f, i as i64 * 20 * MS, &mut out).map(|sent| {
                    let p = RtpPacket::parse(&out).unwrap();
                    assert_eq!(sent.len, out.len());
                    assert_eq!((sent.sequence_number, sent.timestamp, sent.marker), (p.header.sequence_number, p.header.timestamp, p.header.marker));
                    assert_eq!(p.header.ssrc, 0x1234_5678);
                    (p.header.payload_type, p.header.marker, p.header.sequence_number, p.header.timestamp, p.payload.to_vec())
                })
            })
            .collect()
    }

    #[test]
    fn random_start_and_steady_increments() {
        let config = SenderConfig::new(AudioFormat::g722(20));
        let a = RtpSender::new(config.clone(), &mut SessionRng::new(1)).unwrap();
        let b = RtpSender::new(config, &mut SessionRng::new(2)).unwrap();
        assert_ne!((a.ssrc(), a.next_sequence_number(), a.next_timestamp()), (b.ssrc(), b.next_sequence_number(), b.next_timestamp()));
        let mut s = sender(None, None);
        let speech = [0xFFu8; 160];
        let sent = run(&mut s, &[Frame::Speech(&speech); 5]);
        let first = sent[0].clone().unwrap();
        assert!(first.1, "the first packet starts a talk spurt");
        for (i, p) in sent.iter().enumerate() {
            let p = p.clone().unwrap();
            assert_eq!(p.2, first.2.wrapping_add(i as u16));
            // G.711 at 20 ms: 160 ticks of the 8 kHz clock per packet.
            assert_eq!(p.3, first.3.wrapping_add(160 * i as u32));
            assert_eq!(p.1, i == 0);
        }
        assert_eq!(s.counters().packets, 5);
        assert_eq!(s.counters().octets, 800);
    }

    #[test]
    fn g722_advances_by_its_8khz_rtp_clock() {
        assert_eq!(AudioFormat::g722(20).ticks_per_packet(), 160);
        assert_eq!(AudioFormat::g722(30).ticks_per_packet(), 240);
        assert_eq!(AudioFormat::pcma(10).ticks_per_packet(), 80);
    }

    #[test]
    fn marker_after_silence_and_timestamp_jumps() {
        let mut s = sender(None, None);
        let speech = [1u8; 160];
        let sent = run(&mut s, &[Frame::Speech(&speech), Frame::Nothing, Frame::Nothing, Frame::Speech(&speech), Frame::Speech(&speech)]);
        assert!(sent[1].is_none() && sent[2].is_none());
        let (a, b, c) = (sent[0].clone().unwrap(), sent[3].clone().unwrap(), sent[4].clone().unwrap());
        assert!(b.1 && !c.1);
        assert_eq!(b.2, a.2.wrapping_add(1), "no sequence gap across silence");
        assert_eq!(b.3, a.3.wrapping_add(3 * 160), "the timestamp counts the silent intervals");
    }

    #[test]
    fn comfort_noise_at_silence_start_on_change_and_on_refresh() {
        let mut s = sender(None, Some(13));
        let speech = [1u8; 160];
        let quiet = Frame::Silence { noise_level: 60 };
        let mut frames = vec![Frame::Speech(&speech), quiet, quiet, Frame::Silence { noise_level: 50 }];
        // 5 s refresh at 20 ms: the 250th silent frame after the last CN.
        frames.extend(std::iter::repeat_n(Frame::Silence { noise_level: 50 }, 250));
        frames.push(Frame::Speech(&speech));
        let sent = run(&mut s, &frames);
        let cn: Vec<usize> = sent.iter().enumerate().filter(|(_, p)| p.as_ref().is_some_and(|p| p.0 == 13)).map(|(i, _)| i).collect();
        assert_eq!(cn, vec![1, 3, 253]);
        assert_eq!(sent[1].clone().unwrap().4, vec![60]);
        assert!(!sent[1].clone().unwrap().1, "CN packets carry no marker");
        assert!(sent.last().unwrap().clone().unwrap().1, "speech after CN starts a talk spurt");
        // Without CN negotiated silence sends nothing.
        let mut plain = sender(None, None);
        assert!(run(&mut plain, &[quiet]).iter().all(Option::is_none));
    }

    #[test]
    fn dtmf_start_updates_three_ends_and_audio_suppressed() {
        let mut s = sender(Some(101), None);
        s.queue_dtmf("5", 100).unwrap();
        let speech = [1u8; 160];
        let sent = run(&mut s, &[Frame::Speech(&speech); 10]);
        let events: Vec<_> = sent.iter().take(7).map(|p| p.clone().unwrap()).collect();
        let ts = events[0].3;
        let mut durations = Vec::new();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.0, 101, "packet {i} is an event, not audio");
            assert_eq!(e.3, ts, "one timestamp for the whole event");
            assert_eq!(e.1, i == 0, "marker on the first packet only");
            let ev = TelephoneEvent::parse(&e.4).unwrap();
            assert_eq!((ev.event, ev.volume), (5, 10));
            assert_eq!(ev.end, i >= 4);
            durations.push(ev.duration);
        }
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        // Audio resumes after the event (also during the gap before a next
        // digit), as a new talk spurt.
        let after = sent[7].clone().unwrap();
        assert_eq!(after.0, 0);
        assert!(after.1);
        assert_eq!(after.3, ts.wrapping_add(7 * 160));
    }

    #[test]
    fn dtmf_durations_not_a_multiple_of_ptime_and_gaps_between_digits() {
        let mut s = sender(Some(101), None);
        s.queue_dtmf("1#", 90).unwrap();
        assert!(s.dtmf_pending());
        let sent = run(&mut s, &[Frame::Nothing; 20]);
        let events: Vec<(u32, TelephoneEvent)> =
            sent.iter().flatten().map(|p| (p.3, TelephoneEvent::parse(&p.4).unwrap())).collect();
        let first: Vec<u16> = events.iter().filter(|e| e.1.event == 1).map(|e| e.1.duration).collect();
        assert_eq!(first, vec![160, 320, 480, 640, 720, 720, 720]);
        let second: Vec<_> = events.iter().filter(|e| e.1.event == 11).collect();
        assert_eq!(second.len(), 7);
        // 7 intervals for the first digit, then a 60 ms (3 interval) gap.
        assert_eq!(second[0].0, events[0].0.wrapping_add(10 * 160));
        assert!(!s.dtmf_pending());
    }

    #[test]
    fn long_events_are_split_into_segments() {
        let mut s = sender(Some(101), None);
        // 10 s at 8 kHz = 80,000 ticks, more than one 0xFFFF segment.
        s.queue_dtmf("0", 10_000).unwrap();
        let sent = run(&mut s, &vec![Frame::Nothing; 510]);
        let events: Vec<(bool, u32, TelephoneEvent)> =
            sent.iter().flatten().map(|p| (p.1, p.3, TelephoneEvent::parse(&p.4).unwrap())).collect();
        let start = events[0].1;
        let boundary = events.iter().position(|e| e.2.duration == 0xFFFF).unwrap();
        assert!(!events[boundary].2.end);
        let next = &events[boundary + 1];
        assert_eq!(next.1, start.wrapping_add(0xFFFF), "the new segment starts where the old one ended");
        assert!(!next.0, "no marker on a continuation segment");
        let ends: Vec<_> = events.iter().filter(|e| e.2.end).collect();
        assert_eq!(ends.len(), 3);
        assert_eq!(u64::from(ends[0].2.duration) + 0xFFFF, 80_000, "durations add up to the requested length");
        assert!(events.iter().filter(|e| e.0).count() == 1);
    }

    #[test]
    fn dtmf_requests_are_checked() {
        let mut none = sender(None, None);
        assert_eq!(none.queue_dtmf("1", 100), Err(DtmfError::NotNegotiated));
        let mut s = sender(Some(101), None);
        assert_eq!(s.queue_dtmf("12x", 100), Err(DtmfError::UnknownDigit('x')));
        assert!(!s.dtmf_pending(), "nothing of a bad request is queued");
        assert_eq!(s.queue_dtmf("1", 0), Err(DtmfError::ZeroDuration));
        assert_eq!(s.queue_dtmf(&"1".repeat(65), 100), Err(DtmfError::QueueFull));
        s.queue_dtmf("abcd*", 50).unwrap();
        s.clear_dtmf_queue();
        assert!(!s.dtmf_pending());
    }

    #[test]
    fn config_is_validated() {
        let mut c = SenderConfig::new(AudioFormat::pcmu(20));
        c.telephone_event_pt = Some(128);
        assert!(RtpSender::new(c, &mut SessionRng::new(0)).is_err());
        let c = SenderConfig::new(AudioFormat { payload_type: 0, clock_rate: 8000, ptime_ms: 0 });
        assert!(RtpSender::new(c, &mut SessionRng::new(0)).is_err());
        let c = SenderConfig::new(AudioFormat { payload_type: 0, clock_rate: 96_000, ptime_ms: 1000 });
        assert!(RtpSender::new(c, &mut SessionRng::new(0)).is_err());
    }

    #[test]
    fn sender_report_timestamp_follows_the_clock() {
        let mut s = sender(None, None);
        assert_eq!(s.rtp_timestamp_at(0), None);
        let mut out = Vec::new();
        let sent = s.send_frame(Frame::Speech(&[0; 160]), 1000 * MS, &mut out).unwrap();
        assert_eq!(s.rtp_timestamp_at(1000 * MS + 500 * MS), Some(sent.timestamp.wrapping_add(4000)));
    }

    #[test]
    fn packetizer_cuts_any_pushes_into_ptime_payloads() {
        let mut p = Packetizer::new(160);
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut got = Vec::new();
        for chunk in data.chunks(37).chain(std::iter::once(&data[..0])) {
            p.push(chunk, |frame| got.push(frame.to_vec()));
        }
        assert_eq!(got.len(), 6);
        assert!(got.iter().all(|f| f.len() == 160));
        assert_eq!(got.concat(), data[..960].to_vec());
        assert_eq!(p.pending(), 40);
        p.push(&data[..400], |frame| got.push(frame.to_vec()));
        assert_eq!(got[6][..40], data[960..]);
        p.clear();
        assert_eq!(p.pending(), 0);
    }
}
