//! Sans-IO RTP sessions (issue 6): sending, RTCP timing and reports,
//! quality estimates, latching and the [`Session`] of one call leg.
//!
//! Each piece works on its own and takes time as an argument (the caller's
//! nanoseconds since any epoch): [`sender::RtpSender`] (packetization,
//! DTMF, comfort noise), [`interval::RtcpScheduler`] (RFC 3550 A.7),
//! [`loss::LossTracker`] (RFC 3611 burst metrics), [`emodel`] (G.107),
//! [`latch::Latch`] (symmetric RTP) and [`dtmf::DtmfReceiver`]. [`Session`]
//! drives them for one call leg; its module says how an engine drives it.

pub mod call;
pub mod dtmf;
pub mod emodel;
pub mod interval;
pub mod latch;
pub mod loss;
pub mod ntp;
pub mod rng;
pub mod sender;

pub use call::{
    DropCounters, DropReason, Incoming, MediaPacket, PlayoutMetrics, RemoteReport, Session, SessionConfig, SessionEvent,
    SessionStats,
};
