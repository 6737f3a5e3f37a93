//! Sans-IO RTP sessions (issue 6): sending, RTCP timing and reports,
//! quality estimates, latching and the [`Session`] of one call leg.
pub mod emodel;
pub mod interval;
pub mod rng;
pub mod sender;
