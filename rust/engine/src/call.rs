//! The call pipeline as the driver runs it: [`CallLeg`] behind
//! [`DrivenLeg`], plus what the driver knows and the leg must not (the
//! clocks, so the leg can stamp RTCP with NTP time).

use std::net::SocketAddr;

use rtpcore_proto::session::ntp::NtpClock;

use crate::driven::{AppAudio, DrivenLeg, Transmit};
use rtpcore_proto::codec::g711;
use rtpcore_proto::jitter::Codec;

use crate::leg::{AppFrame, CallLeg, FrameData, LegConfig, LegError, LegEvent, LegStats};
use crate::sys::{monotonic_ns, realtime_ns};

/// Everything a call's pipeline is built from: the leg's configuration and
/// where its media goes.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Codec, keys, rates and the application's options.
    pub leg: LegConfig,
    /// Where RTP goes.
    pub remote_rtp: SocketAddr,
    /// Where RTCP goes; `None` multiplexes it on the RTP port (RFC 5761).
    pub remote_rtcp: Option<SocketAddr>,
    /// Whether the negotiated direction lets us send media (`sendrecv`,
    /// `sendonly`); on hold (`recvonly`, `inactive`) no RTP leaves, while
    /// time, RTCP and the receive side go on (RFC 3264 section 5.1).
    pub send: bool,
}

/// A running call: the leg and the configuration it was built from.
pub struct Call {
    leg: CallLeg,
    config: CallConfig,
}

/// The NTP time (RFC 3550 section 4) of the engine's monotonic time zero,
/// from the wall clock now: what a new leg stamps its RTCP reports with.
pub fn ntp_clock() -> NtpClock {
    // Seconds from the NTP era (1900) to the Unix epoch (1970).
    const UNIX_TO_NTP_S: i128 = 2_208_988_800;
    let to_ntp_units = |ns: i128| (ns << 32) / 1_000_000_000;
    let wall = i128::from(realtime_ns()) + UNIX_TO_NTP_S * 1_000_000_000;
    let ntp_at_epoch = to_ntp_units(wall) - to_ntp_units(i128::from(monotonic_ns()));
    // NTP time is modulo 2^64 (it wraps in 2036); only differences matter.
    NtpClock { ntp_at_epoch: ntp_at_epoch as u64 }
}

impl DrivenLeg for Call {
    type Config = CallConfig;
    type Frame = AppFrame;
    type Event = LegEvent;
    type Stats = LegStats;
    type Error = LegError;

    fn remote_addresses(config: &CallConfig) -> (SocketAddr, Option<SocketAddr>) {
        (config.remote_rtp, config.remote_rtcp)
    }

    fn new(config: CallConfig, now_ns: i64) -> Result<Self, LegError> {
        let leg = CallLeg::new(config.leg.clone(), config.remote_rtp, config.remote_rtcp, now_ns)?;
        Ok(Call { leg, config })
    }

    /// A re-INVITE that only moves the peer keeps the session (SSRC,
    /// sequence numbers, queued audio, marks); any other change (codec,
    /// keys, ptime, rates) starts a new session, as a new SDP session
    /// version with new media parameters means.
    fn reconfigure(&mut self, mut config: CallConfig, now_ns: i64) -> Result<(), LegError> {
        // The per-call randomness and clock mapping are not negotiated.
        config.leg.rng_seed = self.config.leg.rng_seed;
        config.leg.ntp = self.config.leg.ntp;
        config.leg.cname.clone_from(&self.config.leg.cname);
        if config.leg == self.config.leg {
            self.leg.set_remote(config.remote_rtp, config.remote_rtcp, now_ns);
        } else {
            // The new session must not latch onto the address the peer's
            // media moved away from while its last packets still arrive:
            // the new address would then be refused as a third party for
            // seconds. A re-INVITE that keeps the address (a codec change)
            // lets the peer latch where it was: a NATed peer's latched
            // address is not the signalled one.
            let moved_from = (config.remote_rtp != self.config.remote_rtp).then(|| self.leg.media_source());
            self.leg = CallLeg::new(config.leg.clone(), config.remote_rtp, config.remote_rtcp, now_ns)?;
            if let Some(addr) = moved_from {
                self.leg.supersede(addr, now_ns);
            }
        }
        self.config = config;
        Ok(())
    }

    fn ptime_ns(&self) -> i64 {
        i64::from(self.leg.ptime_ms()) * 1_000_000
    }

    fn handle_datagram(&mut self, from: SocketAddr, datagram: &[u8], _rtcp_socket: bool, arrival_ns: i64) {
        // The leg tells RTP from RTCP by content (RFC 5761), whichever
        // socket it came in on.
        self.leg.handle_datagram(from, datagram, arrival_ns);
    }

    fn on_tick(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        if self.config.send {
            self.leg.on_tick(now_ns, transmit);
        } else {
            // On hold the leg still ticks (timestamps advance, frames come
            // in, queued audio and marks play out as if sent) but only
            // RTCP leaves.
            self.leg.on_tick(now_ns, &mut |t: Transmit<'_>| {
                if t.rtcp_socket || is_rtcp(t.data) {
                    transmit(t);
                }
            });
        }
    }

    fn next_rtcp_deadline_ns(&self) -> i64 {
        self.leg.next_rtcp_deadline_ns()
    }

    fn on_rtcp_timer(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        self.leg.on_rtcp_timer(now_ns, transmit);
    }

    fn write_audio(&mut self, audio: &AppAudio) -> Result<(), LegError> {
        match audio {
            AppAudio::Pcm(samples) => self.leg.write_audio(samples),
            AppAudio::Payload(bytes) => self.leg.write_payload(bytes),
        }
    }

    fn mark(&mut self, name: String) {
        self.leg.mark(name);
    }

    fn clear(&mut self) {
        self.leg.clear();
    }

    fn send_dtmf(&mut self, digits: &str, duration_ms: u32) -> Result<(), LegError> {
        self.leg.send_dtmf(digits, duration_ms)
    }

    fn pop_frame(&mut self) -> Option<AppFrame> {
        self.leg.pop_frame()
    }

    fn poll_event(&mut self) -> Option<LegEvent> {
        self.leg.poll_event()
    }

    fn close(&mut self, now_ns: i64, transmit: &mut impl FnMut(Transmit<'_>)) {
        self.leg.close(now_ns, transmit);
    }

    fn stats(&self) -> LegStats {
        self.leg.stats()
    }

    fn queued_ms(&self) -> u32 {
        self.leg.queued_ms()
    }

    fn app_sample_rate(&self) -> u32 {
        self.leg.app_sample_rate()
    }

    fn frame_pcm(&self, frame: &AppFrame, out: &mut Vec<i16>) {
        match &frame.data {
            FrameData::Pcm(samples) => out.extend_from_slice(samples),
            FrameData::Payload(payload) => decode_g711(self.config.leg.codec, payload, out),
        }
    }

    fn last_sent_pcm(&self, out: &mut Vec<i16>) {
        out.extend_from_slice(self.leg.last_sent_pcm());
        decode_g711(self.config.leg.codec, self.leg.last_sent_payload(), out);
    }
}

// RFC 5761 section 4: on a multiplexed port, RTCP packet types 192..=223
// occupy the byte where RTP has its marker and payload type (left in clear
// by SRTP/SRTCP).
fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.get(1).is_some_and(|pt| (192..=223).contains(pt))
}

// Passthrough audio is G.711 (the leg refuses G.722 passthrough); a
// recording holds it decoded.
fn decode_g711(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    let start = out.len();
    out.resize(start + payload.len(), 0);
    match codec {
        Codec::Pcma => g711::alaw_decode_into(payload, &mut out[start..]),
        _ => g711::ulaw_decode_into(payload, &mut out[start..]),
    };
}
