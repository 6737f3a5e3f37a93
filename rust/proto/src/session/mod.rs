//! Sans-IO RTP sessions (issue 6): sending, RTCP timing and reports,
//! quality estimates, latching and the [`Session`] of one call leg.
pub mod dtmf;
pub mod emodel;
pub mod interval;
pub mod latch;
pub mod loss;
pub mod rng;
pub mod sender;
