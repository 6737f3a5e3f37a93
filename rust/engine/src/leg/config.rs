//! What a [`CallLeg`](super::CallLeg) is built from, and what it refuses.

use std::fmt;

use rtpcore_proto::jitter::delay::DelayConfig;
use rtpcore_proto::jitter::Codec;
use rtpcore_proto::session::ntp::NtpClock;
use rtpcore_proto::session::sender::DtmfError;
use rtpcore_proto::srtp::Profile;
use zeroize::Zeroize;

/// SRTP keying of one direction (from SDES `a=crypto` or DTLS-SRTP).
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeying {
    /// The protection profile.
    pub profile: Profile,
    /// The master key (the profile's key length).
    pub master_key: Vec<u8>,
    /// The master salt (the profile's salt length).
    pub master_salt: Vec<u8>,
}

impl fmt::Debug for SrtpKeying {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeying").field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl Drop for SrtpKeying {
    fn drop(&mut self) {
        self.master_key.zeroize();
        self.master_salt.zeroize();
    }
}

/// What goes out in an interval when the application has no audio queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMode {
    /// Encoded silence: the stream never pauses (what carriers and most
    /// SBCs expect, and what keeps NAT bindings and RTP timeouts alive).
    Silence,
    /// RFC 3389 comfort noise if `CN` was negotiated (a packet at the start
    /// of the pause and at each refresh), otherwise nothing.
    ComfortNoise,
    /// No packets (time still advances; the next packet carries the marker).
    Nothing,
}

/// Everything signalling negotiated for one call leg, plus the
/// application's choices. [`LegConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LegConfig {
    /// The negotiated audio codec.
    pub codec: Codec,
    /// Its payload type (both ways: the SDP answer makes them equal).
    pub payload_type: u8,
    /// Packetization interval and application frame period, 10..=60 ms.
    pub ptime_ms: u32,
    /// The `telephone-event` payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// The `CN` payload type, if negotiated.
    pub comfort_noise_pt: Option<u8>,
    /// SRTP keying of what we send; `None` for plain RTP.
    pub srtp_send: Option<SrtpKeying>,
    /// SRTP keying of what the peer sends; `None` for plain RTP.
    pub srtp_recv: Option<SrtpKeying>,
    /// Rate of the PCM to and from the application: 8000, 16000, 24000 or
    /// 48000 Hz. Ignored in passthrough mode (the codec's 8000 Hz).
    pub app_sample_rate: u32,
    /// The application reads and writes G.711 payload bytes instead of PCM
    /// (as Twilio Media Streams agents do): no decode/encode on the send
    /// side, and the receive side hands out the jitter buffer's output
    /// re-encoded.
    pub passthrough: bool,
    /// Symmetric RTP: send to the address media actually comes from once
    /// the session latched it (RFC 4961); otherwise always to the
    /// signalled address.
    pub latch: bool,
    /// The peer's SSRC, if signalling announced it (only it may latch).
    pub expected_remote_ssrc: Option<u32>,
    /// Our RTCP CNAME, 1..=255 bytes.
    pub cname: String,
    /// Seed of the SSRC, initial sequence number and timestamp and the RTCP
    /// intervals: a fresh random value per call.
    pub rng_seed: u64,
    /// The NTP time of the caller's `now_ns == 0`, for RTCP sender reports.
    pub ntp: NtpClock,
    /// What to send when the application has nothing queued.
    pub idle: IdleMode,
    /// Comfort noise level sent in [`IdleMode::ComfortNoise`], -dBov.
    pub comfort_noise_level: u8,
    /// Frames held for an application that does not read; beyond that the
    /// oldest are dropped and counted (`frames_overrun`).
    pub app_queue_frames: usize,
    /// Outbound audio held at most, ms; `write_audio` past it fails with
    /// [`LegError::QueueFull`] (backpressure).
    pub max_queued_ms: u32,
    /// The jitter buffer's delay settings. The largest target
    /// (`max_delay_ms`) also sizes the packet store and the delay histogram.
    pub jitter: DelayConfig,
}

impl LegConfig {
    /// A configuration for `codec` on its static payload type at 20 ms,
    /// plain RTP, 8 kHz PCM to the application, latching on, encoded
    /// silence when idle, 1 s of frames for the application, 60 s of
    /// outbound audio, and a jitter buffer of at most 500 ms.
    pub fn new(codec: Codec, cname: impl Into<String>, rng_seed: u64) -> Self {
        LegConfig {
            codec,
            payload_type: codec.static_payload_type(),
            ptime_ms: 20,
            telephone_event_pt: None,
            comfort_noise_pt: None,
            srtp_send: None,
            srtp_recv: None,
            app_sample_rate: 8000,
            passthrough: false,
            latch: true,
            expected_remote_ssrc: None,
            cname: cname.into(),
            rng_seed,
            ntp: NtpClock { ntp_at_epoch: 0 },
            idle: IdleMode::Silence,
            comfort_noise_level: 70,
            app_queue_frames: 50,
            max_queued_ms: 60_000,
            // A live call does better with a late packet concealed than
            // with half a second of delay; 500 ms also keeps the per-leg
            // memory small (store and histogram scale with it).
            jitter: DelayConfig { max_delay_ms: 500.0, ..DelayConfig::default() },
        }
    }
}

/// Why a leg could not be made or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegError {
    /// A configuration value is out of range; names the field.
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The outbound queue holds `max_queued_ms` already: wait and retry.
    QueueFull {
        /// Audio queued now, ms.
        queued_ms: u32,
        /// The limit, ms.
        limit_ms: u32,
    },
    /// PCM written to a passthrough leg, or payload bytes to a PCM leg.
    WrongMode {
        /// What the leg expects (`"pcm"` or `"payload"`).
        expected: &'static str,
    },
    /// The DTMF request was refused.
    Dtmf(DtmfError),
    /// The leg is closed.
    Closed,
}

impl fmt::Display for LegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LegError::Config { field, reason } => write!(f, "{field}: {reason}"),
            LegError::QueueFull { queued_ms, limit_ms } => {
                write!(f, "outbound queue full: {queued_ms} ms queued, limit {limit_ms} ms")
            }
            LegError::WrongMode { expected } => write!(f, "this leg takes {expected} data"),
            LegError::Dtmf(e) => e.fmt(f),
            LegError::Closed => f.write_str("the call leg is closed"),
        }
    }
}

impl std::error::Error for LegError {}

pub(crate) fn config_error(field: &'static str, reason: impl Into<String>) -> LegError {
    LegError::Config { field, reason: reason.into() }
}
