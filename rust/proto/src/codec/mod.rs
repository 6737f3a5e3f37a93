//! Speech codecs and the DSP that goes with them: G.711 μ-law and A-law,
//! G.722 (sub-band ADPCM at 16 kHz) and RFC 3389 comfort noise.
//!
//! Every encoder and decoder here works on caller-provided slices
//! (`*_into` functions and methods) so that the jitter buffer and the media
//! engine can run them per frame without allocating.

pub mod g711;
pub mod cn;
pub mod g722;
