//! The media engine driver: the one place in Rust that owns sockets, clocks
//! and threads. It drives many sans-IO call legs from `rtpcore-proto`
//! (session, SRTP, jitter buffer, codecs, resampler) and hands the
//! application one frame per call per ptime, never one object per packet.
//!
//! Layers, bottom up: [`leg`] (one call's sans-IO pipeline, [`CallLeg`]),
//! [`sys`] (the only unsafe code: batched UDP I/O, epoll, eventfd,
//! timerfd), [`ports`] and [`wheel`] (pure bookkeeping), [`driven`] (what
//! the driver needs from a call's pipeline) and [`call`] (the `CallLeg`
//! behind it), [`record`] (stereo WAV recording off the hot threads),
//! [`stream`] (the state a call shares with the application), the worker
//! threads and [`engine`] (the handle the application holds).
#![warn(missing_docs)]

pub mod call;
pub mod driven;
pub mod engine;
pub mod leg;
pub mod ports;
pub mod record;
pub mod stream;
pub mod sys;
pub mod wheel;
mod worker;

pub use driven::{AppAudio, DrivenLeg};
pub use engine::{Engine, EngineConfig, EngineError, EngineStats};
pub use leg::{AppFrame, CallLeg, DropReason, FrameData, IdleMode, LegConfig, LegError, LegEvent, LegStats, SrtpKeying, Transmit};
pub use stream::{ready, Pop, StreamCounters, StreamShared, WriteError};
pub use worker::LATE_TICK_NS;
