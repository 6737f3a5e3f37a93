//! Streaming sample-rate conversion between the rates voice pipelines use
//! (telephony 8 kHz, wideband 16 kHz, the 24 kHz of speech models, 48 kHz
//! for WebRTC and files), built on `rubato`'s synchronous FFT resampler.
//!
//! The FFT resampler filters whole blocks with a windowed-sinc low-pass
//! (Blackman-Harris squared) applied in the frequency domain, so its cost
//! barely grows with the filter length: long, steep filters are cheap. The
//! block (and so the filter) length is the [`Quality`] knob; the price of a
//! longer block is latency, since output for a block appears once the block
//! is complete.
//!
//! [`Resampler`] hides the blocks: push any number of samples, get whatever
//! output is ready, and call [`Resampler::flush`] at the end of a stream to get
//! the rest. The filter's delay is removed, so output sample `k` lines up with
//! input time `k / out_rate`, and a whole stream of `n` samples produces
//! `n * out_rate / in_rate` samples in total (rounded half up).
//!
//! For live calls, where a block of delay is too much, [`polyphase`] has a
//! FIR resampler with a few milliseconds of delay for the ratios between 8,
//! 16, 24 and 48 kHz.
pub mod polyphase;

pub use polyphase::{PolyphaseResampler, POLYPHASE_RATES};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _, WindowFunction};
use std::fmt;

/// The sample rates a [`Resampler`] converts between, in Hz.
pub const SUPPORTED_RATES: [u32; 9] = [8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

/// Filter length and latency trade-off of a [`Resampler`]. The passband
/// figures are for pairs with 8 kHz (the filter spans the block in input
/// time, so pairs of higher rates do at least as well); the stopband is at
/// the float32 floor (below -140 dB) from the Nyquist frequency on in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// 16 ms blocks: flat to 0.80 of Nyquist, -7.7 dB at 0.90.
    Low,
    /// 32 ms blocks: flat to 0.90 of Nyquist, -7.9 dB at 0.95.
    Medium,
    /// 64 ms blocks: flat to 0.95 of Nyquist, -3 dB at 0.97. The default:
    /// libsoxr's HQ is already -2.9 dB at 0.95, with a stopband no deeper.
    High,
    /// 128 ms blocks: flat to 0.97 of Nyquist, -0.1 dB at 0.98.
    VeryHigh,
}

impl Quality {
    /// The block length in milliseconds.
    fn block_ms(self) -> usize {
        match self {
            Quality::Low => 16,
            Quality::Medium => 32,
            Quality::High => 64,
            Quality::VeryHigh => 128,
        }
    }
}

/// Why a [`Resampler`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResampleError {
    /// A rate the resampler does not convert; `which` is `"in_rate"` or
    /// `"out_rate"`.
    UnsupportedRate {
        /// The rates this resampler supports.
        supported: &'static [u32],
        /// The argument that was wrong.
        which: &'static str,
        /// Its value.
        rate: u32,
    },
}

impl fmt::Display for ResampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResampleError::UnsupportedRate { supported, which, rate } => {
                write!(f, "{which}: {rate} Hz is not supported; use one of {supported:?}")
            }
        }
    }
}

impl std::error::Error for ResampleError {}

/// A streaming mono resampler from `in_rate` to `out_rate` (see the module
/// documentation). Equal rates pass samples through unchanged.
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    /// `None` when the rates are equal.
    fft: Option<Fft<f32>>,
    /// Input waiting for a whole block.
    pending: Vec<f32>,
    /// One block of output.
    block_out: Vec<f32>,
    /// Output samples still to drop at the start (the filter delay).
    delay_left: usize,
    /// Samples pushed and produced since the start of the stream.
    total_in: u64,
    total_out: u64,
}

impl fmt::Debug for Resampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resampler")
            .field("in_rate", &self.in_rate)
            .field("out_rate", &self.out_rate)
            .field("pending", &self.pending.len())
            .field("total_in", &self.total_in)
            .field("total_out", &self.total_out)
            .finish()
    }
}

fn check_rate(supported: &'static [u32], which: &'static str, rate: u32) -> Result<u32, ResampleError> {
    if supported.contains(&rate) {
        Ok(rate)
    } else {
        Err(ResampleError::UnsupportedRate { supported, which, rate })
    }
}

impl Resampler {
    /// A resampler from `in_rate` to `out_rate` Hz with the given quality.
    pub fn new(in_rate: u32, out_rate: u32, quality: Quality) -> Result<Self, ResampleError> {
        let in_rate = check_rate(&SUPPORTED_RATES, "in_rate", in_rate)?;
        let out_rate = check_rate(&SUPPORTED_RATES, "out_rate", out_rate)?;
        let fft = if in_rate == out_rate {
            None
        } else {
            let block = in_rate as usize * quality.block_ms() / 1000;
            // Supported rates are nonzero and the block is nonzero, the only
            // conditions under which rubato refuses to build.
            // One sub-chunk per block: the filter spans the whole block.
            let fft = Fft::<f32>::new_custom(
                in_rate as usize,
                out_rate as usize,
                block,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .expect("invariant: supported rates and block sizes are nonzero");
            Some(fft)
        };
        let mut resampler = Resampler {
            in_rate,
            out_rate,
            block_out: vec![0.0; fft.as_ref().map_or(0, |f| f.output_frames_max())],
            fft,
            pending: Vec::new(),
            delay_left: 0,
            total_in: 0,
            total_out: 0,
        };
        resampler.reset();
        Ok(resampler)
    }

    /// The input rate in Hz.
    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    /// The output rate in Hz.
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// How many input samples are buffered before output appears, at most
    /// (one block, plus the filter delay while the stream starts).
    pub fn latency_samples(&self) -> usize {
        self.fft.as_ref().map_or(0, |f| f.input_frames_next())
    }

    /// Forgets the stream: back to the state after construction.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.total_in = 0;
        self.total_out = 0;
        if let Some(fft) = &mut self.fft {
            fft.reset();
            self.delay_left = fft.output_delay();
        }
    }

    /// Pushes `input` (samples in -1.0..1.0) and appends the output that is
    /// ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.total_in += input.len() as u64;
        if self.fft.is_none() {
            out.extend_from_slice(input);
            self.total_out += input.len() as u64;
            return;
        }
        let Some(block) = self.next_block_len() else { return };
        let mut rest = input;
        // Complete a block started by an earlier call...
        if !self.pending.is_empty() {
            let missing = block - self.pending.len();
            if rest.len() < missing {
                self.pending.extend_from_slice(rest);
                return;
            }
            self.pending.extend_from_slice(&rest[..missing]);
            rest = &rest[missing..];
            let pending = std::mem::take(&mut self.pending);
            self.run_block(&pending, None, out);
            self.pending = pending;
            self.pending.clear();
        }
        // ...then resample whole blocks straight from the input, and keep
        // the partial block at the end (less than one block is ever copied).
        let mut blocks = rest.chunks_exact(block);
        for whole in blocks.by_ref() {
            self.run_block(whole, None, out);
        }
        self.pending.extend_from_slice(blocks.remainder());
    }

    /// Ends the stream: appends the remaining output to `out`, so that the
    /// stream's total output is `total_in * out_rate / in_rate` (rounded half up)
    /// samples, then resets for a new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let expected = (self.total_in * u64::from(self.out_rate) + u64::from(self.in_rate) / 2) / u64::from(self.in_rate);
        while self.total_out < expected {
            let Some(block) = self.next_block_len() else { break };
            // The last real samples, then silence, until the tail is out.
            let mut last = std::mem::take(&mut self.pending);
            let real = last.len().min(block);
            last.resize(block, 0.0);
            let before = out.len();
            self.run_block(&last, Some(real), out);
            let produced = (out.len() - before) as u64;
            let excess = (self.total_out).saturating_sub(expected);
            out.truncate(out.len() - excess.min(produced) as usize);
            self.total_out -= excess.min(produced);
        }
        self.reset();
    }

    fn next_block_len(&self) -> Option<usize> {
        self.fft.as_ref().map(|f| f.input_frames_next())
    }

    /// Resamples one block `input` (of which only the first `real` samples
    /// are real when given) and appends the delay-trimmed output.
    fn run_block(&mut self, input: &[f32], real: Option<usize>, out: &mut Vec<f32>) {
        let Some(fft) = &mut self.fft else { return };
        let frames = input.len();
        let input = InterleavedSlice::new(input, 1, frames).expect("invariant: a mono slice of `frames` frames");
        let frames_out = fft.output_frames_next();
        let mut output = InterleavedSlice::new_mut(&mut self.block_out[..frames_out], 1, frames_out)
            .expect("invariant: block_out holds output_frames_max frames");
        let indexing = real.map(|n| Indexing::new().partial_len(n));
        let (_, produced) = fft
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .expect("invariant: input and output hold exactly the frames the resampler asked for");
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        out.extend_from_slice(&self.block_out[skip..produced]);
        self.total_out += (produced - skip) as u64;
    }
}

/// Converts int16 samples to floats in -1.0..1.0, appending them to `out`.
#[inline(always)]
pub fn i16_to_f32(input: &[i16], out: &mut Vec<f32>) {
    // Sized first, then filled by a plain zip, which vectorises (`extend`
    // from a mapped iterator compiles to a scalar loop).
    let start = out.len();
    out.resize(start + input.len(), 0.0);
    for (y, &x) in out[start..].iter_mut().zip(input) {
        *y = f32::from(x) * (1.0 / 32768.0);
    }
}

/// Converts floats to int16, rounding to nearest (ties to even) and
/// saturating; NaN becomes 0.
#[inline(always)]
pub fn f32_to_i16(input: &[f32], out: &mut [i16]) {
    // Adding 1.5 * 2^23 to any |y| < 2^22 rounds it to an integer (ties to
    // even) and leaves that integer, in two's complement, in the low bits of
    // the mantissa. Plain float adds and a bit cast vectorise; `f32::round`
    // is a libm call per sample on baseline x86-64, and float-to-int casts
    // (saturating in Rust) are scalarised.
    const ROUNDING: f32 = 12_582_912.0;
    for (y, &x) in out.iter_mut().zip(input) {
        let scaled = (x * 32768.0).clamp(-32768.0, 32767.0);
        // clamp passes NaN through; it becomes 0.
        let scaled = if scaled.is_nan() { 0.0 } else { scaled };
        *y = (scaled + ROUNDING).to_bits() as u16 as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()).collect()
    }

    #[test]
    fn rejects_unsupported_rates() {
        assert_eq!(
            Resampler::new(8000, 7000, Quality::High).unwrap_err(),
            ResampleError::UnsupportedRate { supported: &SUPPORTED_RATES, which: "out_rate", rate: 7000 }
        );
        assert!(Resampler::new(0, 8000, Quality::High).unwrap_err().to_string().starts_with("in_rate: 0 Hz"));
    }

    #[test]
    fn stream_length_and_alignment() {
        for (a, b) in [(8000, 16000), (16000, 8000), (8000, 48000), (48000, 24000), (24000, 16000), (16000, 16000)] {
            let input = sine(a, 440.0, a as usize / 2 + 37);
            let mut r = Resampler::new(a, b, Quality::High).expect("supported rates");
            let mut out = Vec::new();
            for chunk in input.chunks(a as usize / 50) {
                r.process(chunk, &mut out);
            }
            r.flush(&mut out);
            let expected = ((input.len() as u64 * u64::from(b) + u64::from(a) / 2) / u64::from(a)) as usize;
            assert_eq!(out.len(), expected, "{a}->{b}");
            // Time-aligned: compare with the ideal sine in the middle.
            let ideal = sine(b, 440.0, expected);
            let err = out[expected / 4..expected * 3 / 4]
                .iter()
                .zip(&ideal[expected / 4..expected * 3 / 4])
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 1e-3, "{a}->{b}: max error {err}");
        }
    }

    #[test]
    fn int16_conversions_round_and_saturate() {
        let mut f = Vec::new();
        i16_to_f32(&[i16::MIN, 0, i16::MAX], &mut f);
        assert_eq!(f, [-1.0, 0.0, 32767.0 / 32768.0]);
        let mut y = [0i16; 4];
        f32_to_i16(&[2.0, -2.0, 1.5 / 32768.0, f32::NAN], &mut y);
        assert_eq!(y, [i16::MAX, i16::MIN, 2, 0]);
        f32_to_i16(&[0.5 / 32768.0, -0.6 / 32768.0, 2.5 / 32768.0, -1.0], &mut y);
        assert_eq!(y, [0, -1, 2, i16::MIN]);
    }

    #[test]
    fn random_operation_sequences_keep_the_stream_length() {
        let mut state = 0x50C5_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20 {
            let a = SUPPORTED_RATES[(next() % 9) as usize];
            let b = SUPPORTED_RATES[(next() % 9) as usize];
            let mut r = Resampler::new(a, b, Quality::Low).expect("supported rates");
            let mut total_in = 0u64;
            let mut out = Vec::new();
            for _ in 0..(next() % 12) {
                let n = (next() % 5000) as usize;
                let chunk: Vec<f32> = (0..n).map(|_| (next() as i16) as f32 / 32768.0).collect();
                r.process(&chunk, &mut out);
                total_in += n as u64;
                if next() % 7 == 0 {
                    r.reset();
                    out.clear();
                    total_in = 0;
                }
            }
            r.flush(&mut out);
            let expected = (total_in * u64::from(b) + u64::from(a) / 2) / u64::from(a);
            assert_eq!(out.len() as u64, expected, "{a}->{b}");
            assert!(out.iter().all(|x| x.is_finite()));
        }
    }
}

