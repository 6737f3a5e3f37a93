//! An adaptive jitter buffer for one incoming RTP audio stream.
//!
//! Packets go in with [`JitterBuffer::push`] (raw RTP and the arrival time);
//! audio comes out with [`JitterBuffer::pop`], one frame per call, called on
//! the caller's frame clock. The buffer never reads a clock: both calls take
//! the time as an argument (seconds on any monotonic clock).
//!
//! How it decides what to play:
//!
//! * The *playout offset* `O = now - t/clock` (where `t` is the timestamp of
//!   the next sample to play) says how far behind the media timeline playout
//!   runs. A packet whose transit (`arrival - ts/clock`) exceeds `O` is late.
//!   The *current delay* is `O` minus the smallest recent transit; the delay
//!   manager ([`delay`]) learns the *target delay* that catches all but a
//!   small fraction of packets.
//! * Inside a talk spurt the current delay is steered to the target by
//!   time-stretching ([`dsp::accelerate`], [`dsp::expand`]): one pitch period
//!   is dropped or repeated per frame, crossfaded, only where the audio is
//!   periodic or quiet enough for that to be inaudible.
//! * At the start of a talk spurt (marker bit, a timestamp jump with no
//!   packet missing, a new source) playout simply starts when the first
//!   packet has waited out the target.
//! * A missing packet with later ones present is lost: it is concealed
//!   ([`dsp::Concealer`]) and playout moves on. With nothing buffered at all
//!   the stream is late (a delay spike): playout holds its position and
//!   conceals, which raises the delay by exactly the stall; if the packet
//!   turns out lost, the concealment already played counts for it. A stall
//!   of one packet whose successor is already there ends by dropping the
//!   late packet instead (within a ration of such drops), so that one
//!   straggler does not cost a packet of delay. A stall that was kept is
//!   taken back by accelerating as soon as the target allows it.
//! * When real audio follows concealment it is merged in with a crossfade.
//!
//! Steady state allocates nothing: payload buffers are pooled and every
//! working buffer is sized at construction.

pub mod delay;
pub mod dsp;

use crate::codec::cn::ComfortNoiseGenerator;
use crate::codec::g711;
use crate::codec::g722::{G722Decoder, G722Mode};
use crate::payload::TelephoneEvent;
use crate::rtp::RtpPacket;
use delay::{DelayConfig, DelayManager};
use dsp::{Concealer, Scales};

/// The payload formats the buffer decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 μ-law, 8 kHz (static payload type 0).
    Pcmu,
    /// G.711 A-law, 8 kHz (static payload type 8).
    Pcma,
    /// G.722 at 64 kbit/s, 16 kHz audio on an 8 kHz RTP clock (static
    /// payload type 9, RFC 3551 section 4.5.2).
    G722,
}

impl Codec {
    /// The codec for an SDP encoding name (`"PCMU"`, `"PCMA"`), any case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "G722" => Some(Codec::G722),
            _ => None,
        }
    }

    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
        }
    }

    /// The static RTP payload type (RFC 3551).
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
        }
    }

    /// Decoded samples per second.
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16000,
        }
    }

    /// Decoded samples per RTP timestamp tick at the codec's RTP clock.
    fn samples_per_tick(self) -> usize {
        match self {
            Codec::Pcmu | Codec::Pcma => 1,
            Codec::G722 => 2,
        }
    }

    /// RTP timestamp ticks a payload of `len` bytes covers: one octet per
    /// tick for all three (G.722 packs two 16 kHz samples per octet).
    fn ticks(self, len: usize) -> i64 {
        len as i64
    }
}

/// The decoder state for one stream (G.711 has none; stateful codecs keep
/// theirs here and are reset when the source changes).
#[derive(Debug, Clone)]
enum Decoder {
    Pcmu,
    Pcma,
    /// Boxed: its state is large and the variant is picked once.
    G722(Box<G722Decoder>),
}

impl Decoder {
    fn new(codec: Codec) -> Self {
        match codec {
            Codec::Pcmu => Decoder::Pcmu,
            Codec::Pcma => Decoder::Pcma,
            Codec::G722 => Decoder::G722(Box::new(G722Decoder::new(G722Mode::Kbps64))),
        }
    }

    fn reset(&mut self) {
        if let Decoder::G722(decoder) = self {
            decoder.reset();
        }
    }

    /// Decodes `payload`, appending its samples to `out`.
    fn decode_append(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let start = out.len();
        let samples = if matches!(self, Decoder::G722(_)) { 2 * payload.len() } else { payload.len() };
        out.resize(start + samples, 0);
        match self {
            Decoder::Pcmu => g711::ulaw_decode_into(payload, &mut out[start..]),
            Decoder::Pcma => g711::alaw_decode_into(payload, &mut out[start..]),
            Decoder::G722(decoder) => decoder.decode_into(payload, &mut out[start..]),
        };
    }
}

/// Configuration of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The payload format.
    pub codec: Codec,
    /// RTP clock rate of the audio payload type, Hz.
    pub clock_rate: u32,
    /// Frame period of `pop`, milliseconds (10..=60).
    pub frame_ms: u32,
    /// The audio payload type (default: the codec's static one).
    pub payload_type: u8,
    /// The RFC 4733 telephone-event payload type, if negotiated.
    pub event_payload_type: Option<u8>,
    /// The RFC 3389 comfort-noise payload type (13, the static one, by
    /// default): its SID packets set the noise played in the pauses.
    pub cn_payload_type: Option<u8>,
    /// Packets held at most; beyond that the oldest is dropped.
    pub capacity: usize,
    /// Delay estimation settings (target limits, quantile, forgetting).
    pub delay: DelayConfig,
}

impl Config {
    /// The defaults for `codec`: its static payload type and clock, 20 ms
    /// frames, RFC 4733 events on no payload type.
    pub fn new(codec: Codec) -> Self {
        Config {
            codec,
            clock_rate: 8000,
            frame_ms: 20,
            payload_type: codec.static_payload_type(),
            event_payload_type: None,
            cn_payload_type: Some(13),
            capacity: 256,
            delay: DelayConfig::default(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What kind of audio a frame holds (the most notable operation in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Decoded audio, played as it came.
    Normal,
    /// Contains synthesized audio replacing lost or late packets.
    Concealed,
    /// Real audio played faster (a pitch period dropped) to cut delay.
    Accelerated,
    /// Real audio played slower (a pitch period repeated) to add delay.
    Expanded,
    /// Real audio returning after concealment, crossfaded in.
    Merged,
    /// Comfort noise after a long loss.
    ComfortNoise,
    /// Nothing to play: before the first packet or between talk spurts.
    Silence,
}

impl FrameKind {
    /// The lowercase name used in Python (`"normal"`, `"concealed"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Normal => "normal",
            FrameKind::Concealed => "concealed",
            FrameKind::Accelerated => "accelerated",
            FrameKind::Expanded => "expanded",
            FrameKind::Merged => "merged",
            FrameKind::ComfortNoise => "comfort_noise",
            FrameKind::Silence => "silence",
        }
    }

    /// How notable a kind is when one frame mixes several.
    fn rank(self) -> u8 {
        match self {
            FrameKind::Silence => 0,
            FrameKind::Normal => 1,
            FrameKind::Accelerated | FrameKind::Expanded => 2,
            FrameKind::Merged => 3,
            FrameKind::ComfortNoise => 4,
            FrameKind::Concealed => 5,
        }
    }
}

/// One frame handed out by [`JitterBuffer::pop`] (the samples go to the
/// caller's slice).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameInfo {
    /// What the frame holds.
    pub kind: FrameKind,
    /// RTP timestamp of the frame's first sample; `None` when the frame is
    /// wholly synthesized.
    pub timestamp: Option<u32>,
    /// The playout offset at the frame's start (`now - t/clock`, seconds)
    /// when playing a timeline; `None` before playout starts.
    pub playout_offset: Option<f64>,
}

/// What `push` did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Buffered for playout.
    Buffered,
    /// Arrived after its playout time; dropped.
    Late,
    /// A copy of a packet already received; dropped.
    Duplicate,
    /// An RFC 3389 comfort-noise (SID) packet: the noise for the pauses.
    ComfortNoise,
    /// An RFC 4733 event, returned to the caller instead of buffered.
    Event(TelephoneEvent),
    /// Not RTP, not the audio or event payload type, or empty; dropped.
    Malformed,
}

/// Counters and delays of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Audio packets accepted (buffered or late; duplicates excluded).
    pub received: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicate: u64,
    /// Packets missing when their turn came (network loss and late ones).
    pub lost: u64,
    /// Datagrams dropped as malformed or of an unexpected payload type.
    pub malformed: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
    /// RFC 4733 event packets passed through.
    pub events: u64,
    /// RFC 3389 comfort-noise (SID) packets received.
    pub comfort_noise_packets: u64,
    /// Frames produced.
    pub frames: u64,
    /// Audio synthesized for lost or late packets, ms.
    pub concealed_ms: f64,
    /// Comfort noise played after concealment faded out (long losses, and
    /// pauses a sender made without a marker bit), ms.
    pub comfort_noise_ms: f64,
    /// Audio removed by accelerating, ms.
    pub accelerated_ms: f64,
    /// Audio added by expanding, ms.
    pub expanded_ms: f64,
    /// Current buffering delay, ms (playout offset minus the smallest
    /// recent transit).
    pub current_delay_ms: f64,
    /// Target buffering delay, ms.
    pub target_delay_ms: f64,
}

/// A buffered packet; ordered by `(epoch, ts)`.
#[derive(Debug)]
struct Stored {
    epoch: u32,
    ts: i64,
    seq: i64,
    marker: bool,
    payload: Vec<u8>,
}

/// Where the receiver stands in one source's sequence and timestamp space.
#[derive(Debug, Clone, Copy)]
struct SourceState {
    ssrc: u32,
    epoch: u32,
    /// Extended (unwrapped) sequence number and timestamp of the newest packet.
    top_seq: i64,
    top_ts: i64,
    /// Bit i set: extended sequence number `top_seq - i` was received.
    seen: u128,
}

/// Where playout stands.
#[derive(Debug, Clone, Copy)]
struct Position {
    epoch: u32,
    /// Extended timestamp of the first sample in the decoded queue.
    ts: i64,
    /// Extended sequence number of the last packet decoded, if any yet.
    last_seq: Option<i64>,
}

/// Milliseconds of starvation after which a stalled stream is given up (and
/// restarts like a new talk spurt when packets come again).
const GIVE_UP_MS: usize = 2000;
/// The level under which played audio counts as silence: a stall there is
/// filled with comfort noise, not concealment.
const QUIET_HISTORY_RMS: f32 = 30.0;
/// How long a pending acceleration waits for a pause before it stretches
/// voiced audio, and how long any stretch waits before it goes ahead
/// regardless, ms.
const PAUSE_PATIENCE_MS: usize = 2000;
const STRETCH_PATIENCE_MS: usize = 4000;
/// Below this rms (about -58 dBFS) audio is a pause for stretching.
const QUIET_RMS: f32 = 40.0;
/// Frames the rate of late packets dropped after short stalls is averaged
/// over (10 s of 20 ms frames).
const CATCH_UP_MEMORY_FRAMES: f64 = 500.0;
/// History of played audio kept for pitch analysis, ms.
const HISTORY_MS: usize = 60;

/// The adaptive jitter buffer (see the module docs).
#[derive(Debug)]
pub struct JitterBuffer {
    config: Config,
    scales: Scales,
    frame_len: usize,
    samples_per_tick: usize,
    decoder: Decoder,
    delay: DelayManager,
    /// Buffered packets sorted by `(epoch, ts)`.
    store: Vec<Stored>,
    /// Payload buffers of consumed packets, for reuse.
    pool: Vec<Vec<u8>>,
    source: Option<SourceState>,
    /// The SSRC before the current one: its stragglers are dropped as late.
    previous_ssrc: Option<u32>,
    next_epoch: u32,
    position: Option<Position>,
    /// Decoded samples from `position.ts` on, not yet played.
    decoded: Vec<i16>,
    /// The last `HISTORY_MS` of output.
    history: Vec<i16>,
    concealer: Concealer,
    concealing: bool,
    /// The end of the timeline taken from the store: `(epoch, extended ts)`;
    /// packets wholly before it are late.
    frontier: Option<(u32, i64)>,
    /// The epoch the decoder state belongs to.
    decoder_epoch: Option<u32>,
    noise_state: u32,
    /// Timestamp ticks concealed while holding position (stall credit).
    held_ticks: i64,
    /// Timestamp ticks the last stall raised the delay by, until taken back.
    stall_rise: i64,
    /// Late packets dropped after a short stall per frame, an exponential
    /// average over `CATCH_UP_MEMORY_FRAMES`.
    catch_up_rate: f64,
    /// Samples still to remove (positive) or add (negative) by stretching
    /// to get back to packet-aligned playout.
    stretch_remaining: i64,
    /// Whether the pending stretch has removed or added anything yet (until
    /// it has, it is decided afresh every frame).
    stretch_begun: bool,
    /// Whether the pending stretch takes back the last stall's rise, which
    /// is forgotten once it begins.
    stretch_takes_back_stall: bool,
    /// Samples played since the last stretch step while one is pending.
    stretch_waited: usize,
    /// Timestamp ticks of the last packet decoded (the packetization).
    packet_ticks: i64,
    /// Samples played as silence/concealment since real audio stopped.
    starved_samples: usize,
    noise_rms: f32,
    /// The sender's comfort noise, once it sent a SID packet.
    comfort_noise: Option<ComfortNoiseGenerator>,
    /// A SID packet came since the talk spurt started: when the spurt's
    /// audio runs out, it is a pause, not a stall.
    pause_signalled: bool,
    scratch: Vec<i16>,
    stats: Stats,
}

impl JitterBuffer {
    /// A buffer with the given configuration.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        if !(10..=60).contains(&config.frame_ms) {
            return Err(ConfigError(format!("frame_ms must be 10..60, got {}", config.frame_ms)));
        }
        if config.clock_rate == 0 || config.clock_rate != config.codec.sample_rate() / config.codec.samples_per_tick() as u32 {
            return Err(ConfigError(format!("clock_rate {} does not match {}", config.clock_rate, config.codec.name())));
        }
        if config.capacity < 4 {
            return Err(ConfigError(format!("capacity must be at least 4, got {}", config.capacity)));
        }
        let d = config.delay;
        let limits_ok = d.min_delay_ms >= 0.0
            && d.max_delay_ms >= d.min_delay_ms
            && d.max_delay_ms <= 10_000.0
            && (0.0..=d.max_delay_ms).contains(&d.initial_delay_ms);
        if !(0.5..1.0).contains(&d.quantile) || !(0.9..1.0).contains(&d.forget_factor) || !limits_ok {
            return Err(ConfigError(format!("delay settings out of range: {d:?}")));
        }
        let rate = config.codec.sample_rate();
        let scales = Scales::new(rate);
        let frame_len = (rate * config.frame_ms / 1000) as usize;
        let headroom = frame_len + 2 * scales.max_pitch + 2 * frame_len;
        Ok(JitterBuffer {
            config,
            scales,
            frame_len,
            samples_per_tick: config.codec.samples_per_tick(),
            decoder: Decoder::new(config.codec),
            delay: DelayManager::new(config.delay),
            store: Vec::with_capacity(config.capacity + 1),
            pool: Vec::with_capacity(config.capacity + 1),
            source: None,
            previous_ssrc: None,
            next_epoch: 0,
            position: None,
            decoded: Vec::with_capacity(headroom + 4 * frame_len),
            history: Vec::with_capacity(HISTORY_MS * scales.per_ms),
            concealer: Concealer::new(scales),
            concealing: false,
            frontier: None,
            decoder_epoch: None,
            noise_state: 0x9e37_79b9,
            held_ticks: 0,
            stall_rise: 0,
            catch_up_rate: 0.0,
            stretch_remaining: 0,
            stretch_begun: false,
            stretch_takes_back_stall: false,
            stretch_waited: 0,
            packet_ticks: i64::from(config.clock_rate * config.frame_ms / 1000),
            starved_samples: 0,
            noise_rms: 0.0,
            comfort_noise: None,
            pause_signalled: false,
            scratch: vec![0; headroom],
            stats: Stats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Output sample rate, Hz.
    pub fn sample_rate(&self) -> u32 {
        self.config.codec.sample_rate()
    }

    /// Counters and delays as of the last call.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Packets currently buffered.
    pub fn buffered_packets(&self) -> usize {
        self.store.len()
    }

    /// Takes one datagram that arrived at `arrival` (seconds). Never fails:
    /// what cannot be used is counted and reported in the outcome.
    pub fn push(&mut self, datagram: &[u8], arrival: f64) -> PushOutcome {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            self.stats.malformed += 1;
            return PushOutcome::Malformed;
        };
        let header = &packet.header;
        if Some(header.payload_type) == self.config.event_payload_type {
            return match TelephoneEvent::parse(packet.payload) {
                Ok(event) => {
                    self.stats.events += 1;
                    PushOutcome::Event(event)
                }
                Err(_) => {
                    self.stats.malformed += 1;
                    PushOutcome::Malformed
                }
            };
        }
        if Some(header.payload_type) == self.config.cn_payload_type {
            // RFC 3389: a level octet, then optional reflection coefficients.
            let Some((&level, reflection)) = packet.payload.split_first() else {
                self.stats.malformed += 1;
                return PushOutcome::Malformed;
            };
            match self.comfort_noise.as_mut() {
                Some(generator) => generator.update(level, reflection),
                None => self.comfort_noise = Some(ComfortNoiseGenerator::new(level, reflection, 0x5eed)),
            }
            self.stats.comfort_noise_packets += 1;
            self.pause_signalled = true;
            return PushOutcome::ComfortNoise;
        }
        if header.payload_type != self.config.payload_type || packet.payload.is_empty() || !arrival.is_finite() {
            self.stats.malformed += 1;
            return PushOutcome::Malformed;
        }
        let (epoch, seq, ts, duplicate) = self.place(header.ssrc, header.sequence_number, header.timestamp);
        let Some(epoch) = epoch else {
            self.stats.late += 1;
            return PushOutcome::Late;
        };
        if duplicate {
            self.stats.duplicate += 1;
            return PushOutcome::Duplicate;
        }
        self.stats.received += 1;
        // Every non-duplicate counts for the delay statistics, late ones most of all.
        self.delay.update(arrival, arrival - ts as f64 / f64::from(self.config.clock_rate));
        let ticks = self.config.codec.ticks(packet.payload.len());
        if let Some((played_epoch, played_ts)) = self.frontier {
            if epoch < played_epoch || (epoch == played_epoch && ts + ticks <= played_ts) {
                self.stats.late += 1;
                return PushOutcome::Late;
            }
        }
        let index = self.store.partition_point(|p| (p.epoch, p.ts) < (epoch, ts));
        if self.store.get(index).is_some_and(|p| (p.epoch, p.ts) == (epoch, ts)) {
            // Same timestamp, other sequence number: a repacketized copy.
            self.stats.received -= 1;
            self.stats.duplicate += 1;
            return PushOutcome::Duplicate;
        }
        let mut payload = self.pool.pop().unwrap_or_default();
        payload.clear();
        payload.extend_from_slice(packet.payload);
        self.store.insert(index, Stored { epoch, ts, seq, marker: header.marker, payload });
        if self.store.len() > self.config.capacity {
            let oldest = self.store.remove(0);
            self.pool.push(oldest.payload);
            self.stats.overflow += 1;
        }
        PushOutcome::Buffered
    }

    /// Places a packet in its source's extended sequence/timestamp space,
    /// starting a new epoch on a new SSRC or a timestamp jump. Returns the
    /// epoch (`None` for a straggler of the previous source), the extended
    /// sequence number and timestamp, and whether it is a duplicate.
    fn place(&mut self, ssrc: u32, seq: u16, ts: u32) -> (Option<u32>, i64, i64, bool) {
        let clock = i64::from(self.config.clock_rate);
        if let Some(src) = self.source.as_mut().filter(|s| s.ssrc == ssrc) {
            let seq_delta = i64::from(seq.wrapping_sub(src.top_seq as u16) as i16);
            let ts_delta = i64::from(ts.wrapping_sub(src.top_ts as u32) as i32);
            // Sequence and timestamp must move together; a forward step in
            // one with a jump in the other is a new timeline (re-INVITE,
            // sender restart) under the same SSRC.
            let jumped = (seq_delta > 0 && !(0..=60 * clock).contains(&ts_delta)) || seq_delta.abs() > 3000;
            if !jumped {
                let ext_seq = src.top_seq + seq_delta;
                let ext_ts = src.top_ts + ts_delta;
                let duplicate = if seq_delta > 0 {
                    src.seen = if seq_delta >= 128 { 0 } else { src.seen << seq_delta };
                    src.seen |= 1;
                    src.top_seq = ext_seq;
                    src.top_ts = ext_ts;
                    false
                } else if -seq_delta < 128 {
                    let bit = 1u128 << (-seq_delta);
                    let seen = src.seen & bit != 0;
                    src.seen |= bit;
                    seen
                } else {
                    false
                };
                return (Some(src.epoch), ext_seq, ext_ts, duplicate);
            }
        } else if self.source.is_some() && self.previous_ssrc == Some(ssrc) {
            return (None, 0, 0, false);
        }
        // A new source or timeline.
        if let Some(old) = self.source {
            if old.ssrc != ssrc {
                self.previous_ssrc = Some(old.ssrc);
            }
        }
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.source = Some(SourceState { ssrc, epoch, top_seq: i64::from(seq), top_ts: i64::from(ts), seen: 1 });
        self.delay.rebase();
        (Some(epoch), i64::from(seq), i64::from(ts), false)
    }

    /// Produces the next frame at time `now` (seconds) into `out`, which must
    /// hold exactly [`frame_len`](Self::frame_len) samples.
    ///
    /// # Panics
    /// If `out.len() != self.frame_len()` (a caller bug, not an input).
    pub fn pop(&mut self, now: f64, out: &mut [i16]) -> FrameInfo {
        assert_eq!(out.len(), self.frame_len, "pop needs a buffer of exactly one frame");
        let clock = f64::from(self.config.clock_rate);
        let target_ms = self.delay.target_ms(now);
        self.stats.target_delay_ms = target_ms;
        self.stats.frames += 1;
        self.catch_up_rate *= 1.0 - 1.0 / CATCH_UP_MEMORY_FRAMES;
        // A talk spurt that has played out ends here, so that the next one
        // can start in this very frame.
        self.decode_ahead(self.frame_len + 2 * self.scales.max_pitch);
        if let Some(pos) = self.position {
            if self.decoded.is_empty() && self.next_packet_relation(pos) == Next::SpurtEnd {
                self.end_spurt();
            }
        }
        if self.position.is_none() {
            self.try_start(now, self.delay.start_target_ms(now));
        }
        let Some(start) = self.position else {
            self.fill_silence(out);
            return FrameInfo { kind: self.quiet_kind(), timestamp: None, playout_offset: None };
        };
        // Where the frame's first sample is: the play position, unless a
        // stall's concealment is credited to a lost packet before anything
        // plays (then it starts at the packet after, and so does its delay).
        let mut first_ts = start.ts;
        let offset_of = |ts: i64| now - ts as f64 / clock;
        let mut kind = FrameKind::Silence;
        let mut real = false;
        let mut produced = 0;
        let mut raise = |k: FrameKind| {
            if k.rank() > kind.rank() {
                kind = k;
            }
        };
        while produced < self.frame_len {
            self.decode_ahead(self.frame_len + 2 * self.scales.max_pitch);
            let Some(mut pos) = self.position else {
                self.fill_silence(&mut out[produced..]);
                raise(self.quiet_kind());
                break;
            };
            self.catch_up_after_short_stall();
            let available = self.decoded.len();
            if available > 0 {
                let n = available.min(self.frame_len - produced);
                let step = if self.concealing {
                    self.merge(&mut out[produced..produced + n]);
                    FrameKind::Merged
                } else if n == self.frame_len {
                    let cut_allowed = !self.delay.in_delay_step(now);
                    self.stretch_or_copy(out, offset_of(first_ts), target_ms, cut_allowed)
                } else {
                    self.consume_into(&mut out[produced..produced + n]);
                    FrameKind::Normal
                };
                raise(step);
                real = true;
                produced += n;
                continue;
            }
            // Nothing decoded to play: what comes next?
            match self.next_packet_relation(pos) {
                Next::SpurtEnd => self.end_spurt(),
                Next::Gap(gap_ticks) => {
                    // Lost packets before a present one. Concealment played
                    // while stalled already stands in for some of them.
                    let skip = gap_ticks.min(self.held_ticks);
                    self.held_ticks -= skip;
                    pos.ts += skip;
                    if produced == 0 {
                        first_ts = pos.ts;
                    }
                    let gap = ((gap_ticks - skip) as usize * self.samples_per_tick).min(self.frame_len - produced);
                    if gap > 0 {
                        raise(self.conceal(&mut out[produced..produced + gap]));
                        pos.ts += (gap / self.samples_per_tick) as i64;
                        produced += gap;
                    }
                    self.position = Some(pos);
                    self.frontier = Some((pos.epoch, pos.ts));
                }
                // The sender said it paused (an RFC 3389 SID packet): nothing
                // is late, nothing to conceal.
                Next::Nothing if self.pause_signalled => self.end_spurt(),
                Next::Nothing => {
                    // Nothing buffered: late audio (a delay spike) or a pause
                    // without a marker. Hold position and fill the frame.
                    let n = self.frame_len - produced;
                    if self.concealing || self.history_rms() >= QUIET_HISTORY_RMS {
                        raise(self.conceal(&mut out[produced..]));
                    } else {
                        // Nothing to imitate: background noise (or silence)
                        // stands in. Behind real audio in the same frame it
                        // makes the frame more than "normal".
                        self.fill_silence(&mut out[produced..]);
                        raise(if produced > 0 { FrameKind::ComfortNoise } else { self.quiet_kind() });
                    }
                    self.held_ticks += (n / self.samples_per_tick) as i64;
                    self.starved_samples += n;
                    produced = self.frame_len;
                    if self.starved_samples > GIVE_UP_MS * self.scales.per_ms {
                        self.position = None;
                        self.concealing = false;
                    }
                }
            }
        }
        self.remember(out);
        let offset = offset_of(first_ts);
        if let Some(min_transit) = self.delay.min_transit() {
            self.stats.current_delay_ms = (offset - min_transit) * 1000.0;
        }
        FrameInfo { kind, timestamp: real.then_some(first_ts as u32), playout_offset: Some(offset) }
    }

    /// Ends a talk spurt (DTX or a new source: nothing was lost, the talker
    /// paused); the next one starts on its own schedule.
    fn end_spurt(&mut self) {
        self.position = None;
        self.concealing = false;
        self.held_ticks = 0;
        self.stall_rise = 0;
        self.stretch_remaining = 0;
        self.stretch_takes_back_stall = false;
    }

    /// After a stall of at most one packet, drops the packet that was
    /// waited for if its successor is already there: playout keeps its
    /// delay, as a fixed buffer would, instead of growing by a packet for
    /// one packet that was only a little late. A longer stall (a delay spike,
    /// a route change) is kept: its successors are late too. Each drop is a
    /// late loss, so drops are rationed: over the last ten seconds or so
    /// (an exponential average) at most twice the loss the target allows
    /// (`1 - quantile`, 1% by default). When many packets are a little late
    /// (every other one, say) the stalls are then kept, and they raise the
    /// delay to where those packets are on time, instead of dropping half
    /// the stream at a delay under the target for ever.
    fn catch_up_after_short_stall(&mut self) {
        let spt = self.samples_per_tick;
        let held = self.held_ticks;
        if !self.concealing || held <= 0 || held > self.packet_ticks {
            return;
        }
        if self.catch_up_rate >= 2.0 * (1.0 - self.config.delay.quantile) {
            return;
        }
        let skip = held as usize * spt;
        if self.decoded.len() < skip + self.frame_len {
            return;
        }
        self.decoded.drain(..skip);
        self.advance(skip);
        self.stall_rise = 0;
        self.catch_up_rate += 1.0 / CATCH_UP_MEMORY_FRAMES;
        self.stats.late += 1;
        self.stats.lost += 1;
    }

    /// Starts playout at the first buffered packet once it has waited out
    /// the target delay (the start of a talk spurt).
    fn try_start(&mut self, now: f64, target_ms: f64) {
        let Some(first) = self.store.first() else { return };
        let clock = f64::from(self.config.clock_rate);
        // Once the target is learnt, start on the first frame at or after it
        // (less the tolerance within which stretching leaves the delay
        // alone): a spurt started under it has to expand, or lose packets,
        // soon after. Before, the target is a guess: the nearest frame will do.
        let slack_ms = if self.delay.learnt() { stretch_tolerance_ms(target_ms) } else { f64::from(self.config.frame_ms) / 2.0 };
        let ready = match self.delay.min_transit() {
            Some(t) if self.source.is_some_and(|s| s.epoch == first.epoch) => now - first.ts as f64 / clock >= t + (target_ms - slack_ms) / 1000.0,
            // A packet of an older epoch (its source has changed since): its
            // own arrival is all there is to go by; play it now.
            _ => true,
        };
        if ready {
            if self.decoder_epoch != Some(first.epoch) {
                self.decoder.reset();
                self.decoder_epoch = Some(first.epoch);
            }
            self.frontier = Some((first.epoch, first.ts));
            self.position = Some(Position { epoch: first.epoch, ts: first.ts, last_seq: None });
            self.stretch_remaining = 0;
            self.stretch_takes_back_stall = false;
            self.held_ticks = 0;
            self.stall_rise = 0;
            self.starved_samples = 0;
            self.pause_signalled = false;
            self.decoded.clear();
        }
    }

    /// Decodes buffered packets that continue the decoded queue until it
    /// holds `want` samples or the next packet is not contiguous.
    fn decode_ahead(&mut self, want: usize) {
        let Some(mut pos) = self.position else { return };
        while self.decoded.len() < want {
            let next_ts = pos.ts + (self.decoded.len() / self.samples_per_tick) as i64;
            let Some(first) = self.store.first() else { break };
            if first.epoch != pos.epoch || first.ts > next_ts {
                break;
            }
            let packet = self.store.remove(0);
            let ticks = self.config.codec.ticks(packet.payload.len());
            if packet.ts + ticks > next_ts {
                if let Some(last) = pos.last_seq {
                    self.stats.lost += (packet.seq - last - 1).clamp(0, 1000) as u64;
                }
                let before = self.decoded.len();
                self.decoder.decode_append(&packet.payload, &mut self.decoded);
                // Drop samples already played (an overlapping packet).
                let overlap = (next_ts - packet.ts) as usize * self.samples_per_tick;
                self.decoded.drain(before..before + overlap);
                pos.last_seq = Some(packet.seq);
                self.packet_ticks = ticks.max(1);
                self.starved_samples = 0;
                self.frontier = Some((packet.epoch, packet.ts + ticks));
            }
            self.pool.push(packet.payload);
        }
        self.position = Some(pos);
    }

    /// How the next buffered packet relates to the playout position.
    fn next_packet_relation(&self, pos: Position) -> Next {
        let Some(next) = self.store.first() else { return Next::Nothing };
        if next.epoch != pos.epoch {
            return Next::SpurtEnd;
        }
        let next_ts = pos.ts + (self.decoded.len() / self.samples_per_tick) as i64;
        let contiguous = pos.last_seq.is_some_and(|s| next.seq == s + 1);
        if next.ts > next_ts && (next.marker || contiguous) {
            Next::SpurtEnd
        } else {
            Next::Gap((next.ts - next_ts).max(0))
        }
    }

    /// Plays a frame of real audio, stretched if the delay is off target.
    ///
    /// Packets come in whole units (20 ms, say), and a frame that ends inside
    /// a packet needs all of it: playing one pitch period faster already
    /// requires the next packet a whole packet earlier. So the delay that
    /// matters is the *aligned* delay, the playout offset less the part of a
    /// packet still to play, and it moves in packet steps: a stretch is
    /// started when the aligned delay is a packet off target, and continued
    /// (one pitch period per frame, where the audio allows) until a whole
    /// packet has been removed or added and playout is aligned again.
    ///
    /// `cut_allowed` is false while the path delay has stepped up
    /// ([`DelayManager::in_delay_step`]): no acceleration starts then.
    fn stretch_or_copy(&mut self, out: &mut [i16], offset: f64, target_ms: f64, cut_allowed: bool) -> FrameKind {
        let frame = out.len() as i64;
        let spt = self.samples_per_tick as i64;
        let packet = self.packet_ticks * spt;
        // Samples from the play position to the next packet boundary: the
        // decoded queue always ends on one. Alignment only means something
        // when frames and packets are the same length; otherwise playout
        // crosses packet boundaries inside frames anyway.
        let to_boundary = if packet == frame { self.decoded.len() as i64 % packet } else { 0 };
        if let Some(min_transit) = self.delay.min_transit() {
            let partial = (to_boundary / spt) as f64 / f64::from(self.config.clock_rate);
            let aligned_ms = (offset - partial - min_transit) * 1000.0;
            let error_ms = aligned_ms - target_ms;
            let packet_ms = packet as f64 / self.scales.per_ms as f64;
            let tolerance = stretch_tolerance_ms(target_ms);
            // A stretch that has not begun is decided afresh every frame:
            // an acceleration may wait seconds for a pause, and the target
            // can move meanwhile (sitting under it loses packets; cutting a
            // packet it no longer calls for only has to be expanded back).
            // One that has begun completes, so that playout is aligned
            // again, except an expansion once the target has come down to
            // the aligned delay.
            let reconsider = !self.stretch_begun || self.stretch_remaining == 0 || (self.stretch_remaining < 0 && error_ms > 0.0);
            if reconsider {
                let plan = if !cut_allowed {
                    // Under a delay step the target (which leaves the step
                    // out) is too low: keep the delay, expand only if even
                    // that is called for.
                    (if error_ms < -tolerance { -(packet - to_boundary) } else { 0 }, false)
                } else if error_ms >= packet_ms + tolerance {
                    // One packet less delay: cut through to the boundary after next.
                    (to_boundary + packet, false)
                } else if self.stall_rise > 0 && to_boundary == 0 && error_ms - (self.stall_rise * spt) as f64 / self.scales.per_ms as f64 >= -tolerance {
                    // A stall raised the delay without anything learnt
                    // calling for it: take it back whole as soon as the
                    // delay without it is not under the target by more than
                    // expanding tolerates (the rule above would wait for the
                    // target to fall a packet plus its tolerance under it).
                    (self.stall_rise * spt, true)
                } else if to_boundary > 0 && error_ms >= -tolerance {
                    // Misaligned: playing up to the boundary faster costs no
                    // safety margin at all, only delay.
                    (to_boundary, false)
                } else if error_ms < -tolerance {
                    // One packet more delay: back to the previous boundary.
                    (-(packet - to_boundary), false)
                } else {
                    (0, false)
                };
                if plan != (self.stretch_remaining, self.stretch_takes_back_stall) {
                    (self.stretch_remaining, self.stretch_takes_back_stall) = plan;
                    self.stretch_begun = false;
                    self.stretch_waited = 0;
                }
            }
        }
        let per_ms = self.scales.per_ms as f64;
        let remaining = self.stretch_remaining.unsigned_abs() as usize;
        // Too much delay costs only delay: wait for a pause to accelerate in,
        // then accept voiced audio by whole pitch periods. Too little risks
        // losses: expand by pitch periods at once. If no spot turns up at all
        // (no period fits what is left of a packet), stretch where playout is.
        let waited_ms = self.stretch_waited / self.scales.per_ms;
        let policy = dsp::StretchPolicy {
            quiet_rms: (2.0 * self.noise_rms).max(QUIET_RMS),
            periodic: self.stretch_remaining < 0 || waited_ms >= PAUSE_PATIENCE_MS,
            force: waited_ms >= STRETCH_PATIENCE_MS,
        };
        if self.stretch_remaining != 0 {
            self.stretch_waited += out.len();
        }
        if self.stretch_remaining > 0 {
            if let Some(used) = dsp::accelerate(&self.decoded, out, self.scales, remaining, self.samples_per_tick, policy) {
                self.finish_stretch(used, used as i64 - frame);
                self.stats.accelerated_ms += (used - out.len()) as f64 / per_ms;
                return FrameKind::Accelerated;
            }
        } else if self.stretch_remaining < 0 {
            if let Some(used) = dsp::expand(&self.decoded, out, self.scales, remaining, self.samples_per_tick, policy) {
                self.finish_stretch(used, used as i64 - frame);
                self.stats.expanded_ms += (out.len() - used) as f64 / per_ms;
                return FrameKind::Expanded;
            }
        }
        self.consume_into(out);
        FrameKind::Normal
    }

    /// Plays `used` decoded samples as a stretched frame; `change` is what
    /// the stretch removed (positive) or added (negative).
    fn finish_stretch(&mut self, used: usize, change: i64) {
        self.stretch_remaining -= change;
        self.stretch_begun = true;
        if self.stretch_takes_back_stall {
            self.stretch_takes_back_stall = false;
            self.stall_rise = 0;
        }
        if self.stretch_remaining == 0 {
            self.stretch_waited = 0;
        }
        self.advance(used);
        self.decoded.drain(..used);
    }

    /// Moves `out.len()` decoded samples to `out`.
    fn consume_into(&mut self, out: &mut [i16]) {
        let n = out.len();
        out.copy_from_slice(&self.decoded[..n]);
        self.decoded.drain(..n);
        self.advance(n);
    }

    /// Moves the play position past `samples` decoded samples that were
    /// played (or dropped). Real audio playing again ends a stall: the time
    /// held in it has become delay, and is no credit for a later loss; it is
    /// remembered as the stall's rise, to take back when the target allows
    /// (once the target is learnt: before, a stall is the learning).
    fn advance(&mut self, samples: usize) {
        if self.held_ticks > 0 && self.delay.learnt() {
            self.stall_rise = self.held_ticks;
        }
        self.held_ticks = 0;
        if let Some(pos) = self.position.as_mut() {
            pos.ts += (samples / self.samples_per_tick) as i64;
        }
    }

    /// Real audio after concealment: crossfade from the synthesized signal.
    fn merge(&mut self, out: &mut [i16]) {
        let n = out.len();
        self.concealer.merge(&self.decoded[..n], out, &mut self.scratch);
        self.decoded.drain(..n);
        self.advance(n);
        self.concealing = false;
    }

    /// Writes concealment into `out`; returns `Concealed` while the lost
    /// audio is still being imitated, `ComfortNoise` once that has faded.
    fn conceal(&mut self, out: &mut [i16]) -> FrameKind {
        if !self.concealing {
            self.concealer.start(&self.history, self.noise_rms);
            self.concealing = true;
        }
        let imitating = self.concealer.state().gain > 0.0;
        self.concealer.fill(out);
        let ms = out.len() as f64 / self.scales.per_ms as f64;
        if imitating {
            self.stats.concealed_ms += ms;
            FrameKind::Concealed
        } else {
            self.stats.comfort_noise_ms += ms;
            FrameKind::ComfortNoise
        }
    }

    fn quiet_kind(&self) -> FrameKind {
        if self.noise_rms >= 1.0 || self.comfort_noise.is_some() {
            FrameKind::ComfortNoise
        } else {
            FrameKind::Silence
        }
    }

    /// Fills `out` with comfort noise: the sender's (RFC 3389) if it sent a
    /// description, else white noise at the background level measured here
    /// (silence when the background is digital silence).
    fn fill_silence(&mut self, out: &mut [i16]) {
        if let Some(generator) = self.comfort_noise.as_mut() {
            generator.generate_into(out);
        } else if self.noise_rms >= 1.0 {
            let amplitude = self.noise_rms * 3f32.sqrt();
            for o in out.iter_mut() {
                *o = (dsp::white_noise(&mut self.noise_state) * amplitude) as i16;
            }
        } else {
            out.fill(0);
        }
    }

    fn history_rms(&self) -> f32 {
        let tail = self.history.len().saturating_sub(10 * self.scales.per_ms);
        dsp::rms(&self.history[tail..])
    }

    /// Appends a played frame to the history and tracks the background level.
    fn remember(&mut self, frame: &[i16]) {
        let cap = self.history.capacity();
        let keep = cap.saturating_sub(frame.len()).min(self.history.len());
        let drop = self.history.len() - keep;
        self.history.drain(..drop);
        self.history.extend_from_slice(&frame[frame.len().saturating_sub(cap)..]);
        if !self.concealing {
            let level = dsp::rms(frame);
            self.noise_rms = if level < self.noise_rms { level } else if level < 4.0 * self.noise_rms + 8.0 { self.noise_rms + (level - self.noise_rms) * 0.01 } else { self.noise_rms };
        }
    }
}

/// How far off the target (ms) the delay may be before it is stretched (a
/// packet more above it, or this much under it): 2%, at least 1 ms, so that
/// estimation noise does not cost a packet of stretching each time the
/// target crosses a packet boundary.
fn stretch_tolerance_ms(target_ms: f64) -> f64 {
    (target_ms * 0.02).max(1.0)
}

/// What comes after the decoded queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// No packet buffered.
    Nothing,
    /// A talk spurt ended: the next packet starts a new one (marker, a
    /// timestamp jump with no sequence gap, or a new source).
    SpurtEnd,
    /// The next packet is this many ticks ahead; the ones between are lost.
    Gap(i64),
}

#[cfg(test)]
mod tests;
