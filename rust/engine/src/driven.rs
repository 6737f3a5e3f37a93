//! What the driver needs from one call's sans-IO media pipeline.
//!
//! The driver owns sockets, clocks and threads; everything a call *means*
//! (RTP, SRTP, jitter buffer, codecs, RTCP) lives behind [`DrivenLeg`]. The
//! seam keeps the driver testable with a trivial leg and lets the pipeline
//! evolve without touching the I/O.

use std::fmt;
use std::net::SocketAddr;

/// One datagram a leg asks the driver to send (the leg's own type: the
/// driver sends exactly what the pipeline hands it).
pub use crate::leg::Transmit;

/// Audio the application hands to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppAudio {
    /// Linear PCM at the application's sample rate.
    Pcm(Vec<i16>),
    /// Encoded payload of the negotiated codec (G.711 pass-through).
    Payload(Vec<u8>),
}

impl AppAudio {
    /// Samples (PCM) or bytes (payload): the unit the driver's outbound
    /// accounting counts in.
    pub fn units(&self) -> usize {
        match self {
            AppAudio::Pcm(samples) => samples.len(),
            AppAudio::Payload(bytes) => bytes.len(),
        }
    }
}

/// A call's media pipeline, as driven by a worker thread. Time is always an
/// argument, on the engine's monotonic clock in nanoseconds.
pub trait DrivenLeg: Send + Sized + 'static {
    /// Everything needed to build or rebuild the pipeline (codec, keys,
    /// remote addresses, app options).
    type Config: Send + 'static;
    /// One ptime of received audio for the application.
    type Frame: Send + 'static;
    /// Something the application should hear about (DTMF, marks, drops...).
    type Event: Send + 'static;
    /// A statistics snapshot.
    type Stats: Clone + Send + 'static;
    /// A refused configuration or command.
    type Error: fmt::Display + Send + 'static;

    /// Builds the pipeline.
    fn new(config: Self::Config, now_ns: i64) -> Result<Self, Self::Error>;
    /// Where `config` sends RTP and, when not multiplexed, RTCP: on a
    /// shared socket, the addresses whose datagrams are this call's.
    fn remote_addresses(config: &Self::Config) -> (SocketAddr, Option<SocketAddr>);
    /// Applies a new configuration (re-INVITE), keeping what can be kept.
    fn reconfigure(&mut self, config: Self::Config, now_ns: i64) -> Result<(), Self::Error>;
    /// The packetization time: how often [`on_tick`](Self::on_tick) runs.
    fn ptime_ns(&self) -> i64;
    /// A datagram arrived on the call's RTP socket or (`rtcp_socket`) its
    /// RTCP socket, at `arrival_ns` (kernel receive time).
    fn handle_datagram(&mut self, from: SocketAddr, datagram: &[u8], rtcp_socket: bool, arrival_ns: i64);
    /// The ptime clock ticked: exchange one frame each way.
    fn on_tick(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>));
    /// When [`on_rtcp_timer`](Self::on_rtcp_timer) is next due.
    fn next_rtcp_deadline_ns(&self) -> i64;
    /// The RTCP deadline passed.
    fn on_rtcp_timer(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>));
    /// Queues application audio, to be paced out by the ticks.
    fn write_audio(&mut self, audio: &AppAudio) -> Result<(), Self::Error>;
    /// Queues a play-out mark behind the audio written so far.
    fn mark(&mut self, name: String);
    /// Drops queued outbound audio (barge-in); pending marks fire as cleared.
    fn clear(&mut self);
    /// Queues RFC 4733 DTMF digits.
    fn send_dtmf(&mut self, digits: &str, duration_ms: u32) -> Result<(), Self::Error>;
    /// The next frame for the application.
    fn pop_frame(&mut self) -> Option<Self::Frame>;
    /// The next event for the application.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The call ends (RTCP BYE).
    fn close(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>));
    /// Statistics now.
    fn stats(&self) -> Self::Stats;
    /// Milliseconds of outbound audio the pipeline holds.
    fn queued_ms(&self) -> u32;
    /// The application's sample rate: the rate of a call's recording.
    fn app_sample_rate(&self) -> u32;
    /// Appends `frame`'s audio as PCM at the application rate (the
    /// recording's left channel).
    fn frame_pcm(&self, frame: &Self::Frame, out: &mut Vec<i16>);
    /// Appends what the last tick sent of the application's audio as PCM at
    /// the application rate, silence when it had none (the recording's
    /// right channel).
    fn last_sent_pcm(&self, out: &mut Vec<i16>);
}
