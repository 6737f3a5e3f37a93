//! The media engine driver: the one place in Rust that owns sockets, clocks
//! and threads. It drives many sans-IO call legs from `rtpcore-proto`
//! (session, SRTP, jitter buffer, codecs, resampler) and hands the
//! application one frame per call per ptime, never one object per packet.
#![warn(missing_docs)]

pub mod leg;

pub use leg::{AppFrame, CallLeg, DropReason, FrameData, IdleMode, LegConfig, LegError, LegEvent, LegStats, SrtpKeying, Transmit};
