//! What a leg tells its driver: events, frames for the application, drop
//! counters and statistics.

use std::net::SocketAddr;

use rtpcore_proto::jitter::{self, Codec, FrameKind};
use rtpcore_proto::session::emodel::QualityEstimate;
use rtpcore_proto::session::{self, SessionStats};

/// Why a datagram (or a packet inside the leg) was not played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not parseable as RTP/RTCP, or its payload not as its type says.
    Malformed,
    /// From a source the latch refuses (hijack protection).
    Foreign,
    /// Counted towards latching a new source, not delivered.
    Latching,
    /// A payload type that was not negotiated.
    UnknownPayloadType,
    /// A copy of a packet already received.
    Duplicate,
    /// A sequence number far off the stream's, not followed by the next
    /// (a stray or forged packet, RFC 3550 A.1).
    SequenceJump,
    /// Arrived after the leg was closed.
    Closed,
    /// SRTP/SRTCP authentication failed (wrong key, altered, unknown MKI).
    Authentication,
    /// SRTP/SRTCP replay protection refused it.
    Replay,
    /// STUN, DTLS, ZRTP or TURN on the media port: not handled by the leg.
    NotMedia,
    /// Arrived after its playout time.
    Late,
    /// The jitter buffer was full.
    Overflow,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 12] = [
        DropReason::Malformed,
        DropReason::Foreign,
        DropReason::Latching,
        DropReason::UnknownPayloadType,
        DropReason::Duplicate,
        DropReason::SequenceJump,
        DropReason::Closed,
        DropReason::Authentication,
        DropReason::Replay,
        DropReason::NotMedia,
        DropReason::Late,
        DropReason::Overflow,
    ];

    /// The lowercase name used on the Python side (`"authentication"` ...).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Foreign => "foreign",
            DropReason::Latching => "latching",
            DropReason::UnknownPayloadType => "unknown_payload_type",
            DropReason::Duplicate => "duplicate",
            DropReason::SequenceJump => "sequence_jump",
            DropReason::Closed => "closed",
            DropReason::Authentication => "authentication",
            DropReason::Replay => "replay",
            DropReason::NotMedia => "not_media",
            DropReason::Late => "late",
            DropReason::Overflow => "overflow",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<session::DropReason> for DropReason {
    fn from(reason: session::DropReason) -> Self {
        match reason {
            session::DropReason::Malformed => DropReason::Malformed,
            session::DropReason::Foreign => DropReason::Foreign,
            session::DropReason::Latching => DropReason::Latching,
            session::DropReason::UnknownPayloadType => DropReason::UnknownPayloadType,
            session::DropReason::Duplicate => DropReason::Duplicate,
            session::DropReason::SequenceJump => DropReason::SequenceJump,
            session::DropReason::Closed => DropReason::Closed,
        }
    }
}

/// Dropped datagrams counted by [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts([u64; DropReason::ALL.len()]);

impl DropCounts {
    /// The count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason with a nonzero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.into_iter().map(|r| (r, self.get(r))).filter(|&(_, n)| n > 0)
    }

    pub(crate) fn add(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }
}

/// Something the application may want to know, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum LegEvent {
    /// The peer sent a DTMF digit (RFC 4733), reported when it ended.
    Dtmf {
        /// `0-9 * # A-D`.
        digit: char,
        /// How long it lasted, ms.
        duration_ms: u32,
    },
    /// The peer's SSRC changed (a restart, a transfer): statistics start over.
    SsrcChanged {
        /// The previous SSRC.
        old: u32,
        /// The new one.
        new: u32,
    },
    /// Media is now accepted from, and (with latching) sent to, `addr`.
    RemoteLatched {
        /// Where the peer's media comes from.
        addr: SocketAddr,
        /// Its SSRC.
        ssrc: u32,
    },
    /// Datagrams were dropped since the last such event (reported at most
    /// once per tick and reason, so a flood costs a few events, not one
    /// per packet).
    PacketsDropped {
        /// Why.
        reason: DropReason,
        /// How many.
        count: u64,
    },
    /// The peer reported on our stream (RTCP SR/RR report block).
    RtcpReport {
        /// Fraction of our packets lost since its last report, 0.0..=1.0.
        fraction_lost: f64,
        /// Our packets it lost in total.
        cumulative_lost: i32,
        /// The interarrival jitter it sees, ms.
        jitter_ms: f64,
        /// The round-trip time, when the report echoes one of our SRs, ms.
        rtt_ms: Option<f64>,
    },
    /// All audio queued before the mark has been sent (`cleared: false`),
    /// or the mark was dropped by [`clear`](super::CallLeg::clear) or
    /// close (`cleared: true`).
    MarkPlayed {
        /// The name given to [`mark`](super::CallLeg::mark).
        name: String,
        /// Whether it was cleared rather than played.
        cleared: bool,
    },
    /// The peer sent an RTCP BYE.
    Bye {
        /// Its reason, if it gave one (lossy UTF-8).
        reason: Option<String>,
    },
}

/// The audio of one frame for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameData {
    /// PCM at the application rate.
    Pcm(Vec<i16>),
    /// G.711 payload bytes (passthrough mode), 8000 per second.
    Payload(Vec<u8>),
}

/// One ptime of received audio for the application.
#[derive(Debug, Clone, PartialEq)]
pub struct AppFrame {
    /// The audio.
    pub data: FrameData,
    /// What the jitter buffer made of this interval.
    pub kind: FrameKind,
    /// RTP timestamp of the first sample, when the frame is not wholly
    /// synthesized.
    pub rtp_timestamp: Option<u32>,
    /// Frames handed to the queue before this one (gaps mean overruns).
    pub index: u64,
}

/// A snapshot of a leg's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegStats {
    /// The codec.
    pub codec: Codec,
    /// The RTP session: packets and octets sent and received, loss,
    /// jitter, round trip, loss bursts.
    pub session: SessionStats,
    /// The jitter buffer: late, lost, concealed, stretched, delays.
    pub jitter: jitter::Stats,
    /// Every datagram the leg did not play, by reason.
    pub dropped: DropCounts,
    /// Frames put in the application's queue.
    pub frames_to_app: u64,
    /// Frames dropped because the application did not read them in time.
    pub frames_overrun: u64,
    /// Intervals that carried application audio.
    pub frames_sent: u64,
    /// Intervals with no application audio (silence, CN or nothing sent).
    pub idle_frames: u64,
    /// Outbound audio dropped by `clear`, ms.
    pub cleared_ms: u64,
    /// Outbound audio waiting, ms.
    pub queued_ms: u32,
    /// Packets that could not be protected (SRTP index exhausted).
    pub send_errors: u64,
    /// Events dropped because the driver did not poll them.
    pub events_lost: u64,
    /// The E-model estimate of the receive direction (MOS), once media came.
    pub quality: Option<QualityEstimate>,
}
