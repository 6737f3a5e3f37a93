//! Sans-IO protocol core of rtpcore: wire formats, codecs, SRTP and the
//! jitter buffer. Nothing here reads a clock, opens a socket or knows about
//! Python; time comes in as an argument and bytes go in and out.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analyze;
pub mod capture;
pub mod codec;
pub mod demux;
pub mod dtmf;
pub mod error;
pub mod jitter;
pub mod payload;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod seq;
pub mod session;
pub mod srtp;
pub mod stats;

pub use error::{BuildError, Layer, ParseError};
