//! Streaming sample-rate conversion between the rates voice pipelines use
//! (telephony 8 kHz, wideband 16 kHz, the 24 kHz of speech models, 48 kHz
//! for WebRTC and files), with the low-pass of `rubato`'s synchronous FFT
//! resampler applied by `rustfft`'s transforms.
//!
//! Each block of input is filtered by a windowed-sinc low-pass as long as
//! the block (rubato's: Blackman-Harris squared, with rubato's cutoff fitted
//! to that window) and its rate changed at once, in the frequency domain:
//! transform the block zero-padded to twice its length, keep the bins below
//! the lower rate's Nyquist frequency, each multiplied by the filter, and
//! transform back at the output rate's length; the blocks' filtered tails
//! overlap and add. The filter's transition band sits just below the lower
//! rate's Nyquist frequency, narrower the longer the block: the block length
//! at the lower rate is the [`Quality`] knob. The stopband (from the Nyquist
//! frequency on) is below -140 dB whatever the length, and the cost per
//! sample hardly depends on it (the FFT's log factor); the price of a longer
//! block is latency.
//!
//! Why not rubato's own block engine, which does the same: it transforms
//! each block on its own with a real FFT (`realfft`), whose pass that turns
//! a half-length complex FFT into a real one is plain SSE code, reached
//! through trait objects where run-time AVX2 dispatch cannot follow (43% of
//! its time). Here two consecutive blocks are one complex signal, the first
//! in the real part and the second in the imaginary part: a real filter
//! keeps them apart (a real spectrum's negative bins are the conjugates of
//! its positive ones), so one complex FFT, in rustfft's AVX2 kernels, does
//! the work of two real ones and there is no such pass. On 10 s buffers,
//! 16 to 8 kHz, rubato's engine took 1.28× libsoxr HQ's time and this one
//! takes 0.73× (the README has every pair). The cost is latency: output
//! comes a pair of blocks at a time, so that how a stream is cut into calls
//! never changes it.
//!
//! [`Resampler`] hides the blocks: push any number of samples, get whatever
//! output is ready, and call [`Resampler::flush`] at the end of a stream to get
//! the rest. The filter's delay is removed, so output sample `k` lines up with
//! input time `k / out_rate`, and a whole stream of `n` samples produces
//! `n * out_rate / in_rate` samples in total (rounded half up). Int16 input
//! is converted pair by pair on its way into the resampler and back, so a
//! long buffer never exists as floats.
//!
//! For live calls, where a block of delay is too much, [`polyphase`] has a
//! FIR resampler with a few milliseconds of delay for the ratios between 8,
//! 16, 24 and 48 kHz.
pub mod polyphase;

pub use polyphase::{PolyphaseResampler, POLYPHASE_RATES};

use rubato::WindowFunction;
use rustfft::num_complex::{Complex32, Complex64};
use rustfft::FftPlanner;
use std::fmt;
use std::sync::Arc;
use windowfunctions::Symmetry;

/// The sample rates a [`Resampler`] converts between, in Hz.
pub const SUPPORTED_RATES: [u32; 9] = [8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

/// Filter length and latency trade-off of a [`Resampler`], set by the block
/// length in samples of the lower of the two rates (the latency is two
/// blocks; the block lengths below are also the filter's, and the figures, given
/// as fractions of the lower rate's Nyquist frequency, hold for every pair;
/// pairs whose block must be rounded up to a whole number of rate periods,
/// such as 44.1 to 48 kHz, do at least as well). The stopband is below
/// -140 dB from the Nyquist frequency on in every mode. For comparison,
/// libsoxr's HQ setting measures -2.9 dB at 0.95 of Nyquist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// 128 samples (16 ms at 8 kHz): flat to 0.80 of Nyquist, -7.7 dB at 0.90.
    Low,
    /// 256 samples (32 ms at 8 kHz): flat to 0.90, -7.9 dB at 0.95.
    Medium,
    /// 384 samples (48 ms at 8 kHz, 24 ms at 16 kHz): flat to 0.94, -0.3 dB
    /// at 0.95, -2.9 dB at 0.96. The default: at least libsoxr's HQ on
    /// every measured figure. Shorter blocks are hardly faster (256 samples
    /// saves 7% on 10 s at 16 to 8 kHz, and misses HQ at 0.95), so it is not
    /// cut closer to HQ.
    High,
    /// 1024 samples (128 ms at 8 kHz): flat to 0.97, -0.1 dB at 0.98.
    VeryHigh,
}

impl Quality {
    /// The block length in samples of the lower rate.
    fn block_at_lower_rate(self) -> usize {
        match self {
            Quality::Low => 128,
            Quality::Medium => 256,
            Quality::High => 384,
            Quality::VeryHigh => 1024,
        }
    }
}

/// Why a [`Resampler`] could not be made or could not write its output.
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
    /// The output slice given to a `*_into` call is shorter than
    /// [`Resampler::output_len`] (or [`Resampler::flush_len`]) asks for.
    OutputTooShort {
        /// Samples the call produces.
        needed: usize,
        /// Length of the slice given.
        len: usize,
    },
}

impl fmt::Display for ResampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResampleError::UnsupportedRate { supported, which, rate } => {
                write!(f, "{which}: {rate} Hz is not supported; use one of {supported:?}")
            }
            ResampleError::OutputTooShort { needed, len } => {
                write!(f, "out: {len} samples is too short for the {needed} this call produces")
            }
        }
    }
}

impl std::error::Error for ResampleError {}

/// The FFT part of a [`Resampler`]: overlap-add filtering and rate change of
/// two blocks at a time (see the module documentation).
struct Blocks {
    forward: Arc<dyn rustfft::Fft<f32>>,
    inverse: Arc<dyn rustfft::Fft<f32>>,
    /// The filter's spectrum at the bins both rates share, over the forward
    /// transform's length (the one scale the round trip needs): bin `k` for
    /// `k` in `0..filter.len()`, and its conjugate for bin `-k` (the filter
    /// is real).
    filter: Vec<Complex32>,
    /// Input samples per block, a whole number of rate periods.
    hop_in: usize,
    /// Output samples per block.
    hop_out: usize,
    /// The forward transform's buffer: one block in the real parts, the
    /// next in the imaginary parts, zero-padded to hold their filtered
    /// length without wrapping round.
    spectrum: Vec<Complex32>,
    /// The inverse transform's buffer, at the output rate.
    out_spectrum: Vec<Complex32>,
    scratch: Vec<Complex32>,
    /// The last pair's second block filtered, where it reaches into this
    /// pair's output (`hop_out` samples).
    carry: Vec<f32>,
    /// The final output of the last pair.
    out: Vec<f32>,
    /// The filter's delay in output samples.
    delay: usize,
    /// Output samples still to drop at the start (the filter delay).
    delay_left: usize,
}

impl Blocks {
    fn new(in_rate: u32, out_rate: u32, quality: Quality) -> Self {
        let gcd = polyphase::gcd(in_rate, out_rate) as usize;
        let (in_period, out_period) = (in_rate as usize / gcd, out_rate as usize / gcd);
        let taps = filter_taps(in_rate, out_rate, quality);
        let taps_out = taps / in_period * out_period;
        // A block as long as the filter, in a transform twice as long, which
        // holds the block filtered without wrapping round. A longer transform
        // spends fewer operations per sample, on less padding (measured: three
        // times the filter is 20% faster), but the stream's latency is two
        // blocks, and this one is already twice rubato's (one block of the
        // same length).
        let (hop_in, hop_out) = (taps, taps_out);
        let (len_in, len_out) = (2 * taps, 2 * taps_out);
        let mut planner = FftPlanner::<f32>::new();
        let (forward, inverse) = (planner.plan_fft_forward(len_in), planner.plan_fft_inverse(len_out));
        let scratch_len = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        let shared_bins = len_in.min(len_out) / 2;
        let delay = taps_out / 2;
        Blocks {
            filter: low_pass_spectrum(taps, taps_out, len_in, shared_bins),
            hop_in,
            hop_out,
            spectrum: vec![Complex32::ZERO; len_in],
            out_spectrum: vec![Complex32::ZERO; len_out],
            scratch: vec![Complex32::ZERO; scratch_len],
            carry: vec![0.0; hop_out],
            out: vec![0.0; 2 * hop_out],
            forward,
            inverse,
            delay,
            delay_left: delay,
        }
    }

    /// Input samples per call of [`Blocks::run`]: a pair of blocks.
    fn block_len(&self) -> usize {
        2 * self.hop_in
    }

    fn output_block_len(&self) -> usize {
        2 * self.hop_out
    }

    fn reset(&mut self) {
        self.carry.fill(0.0);
        self.delay_left = self.delay;
    }

    /// Resamples a pair of blocks (`input` holds [`Blocks::block_len`]
    /// samples) and returns the output that is final, the filter delay
    /// trimmed. Inlined into its callers so that the int16 path's AVX2
    /// build (`process_pcm16` in the extension) covers these loops too.
    #[inline(always)]
    fn run(&mut self, input: &[f32]) -> &[f32] {
        let (first, second) = input.split_at(self.hop_in);
        for ((bin, &re), &im) in self.spectrum.iter_mut().zip(first).zip(second) {
            *bin = Complex32::new(re, im);
        }
        self.spectrum[self.hop_in..].fill(Complex32::ZERO);
        self.forward.process_with_scratch(&mut self.spectrum, &mut self.scratch);
        // Filter and change rate at once: keep the bins both rates share,
        // each multiplied by the filter, and zero the rest (the filter is
        // below -140 dB there). A real filter acts on the two blocks apart,
        // as the real and the imaginary part of one complex signal.
        let (len_in, len_out, shared) = (self.spectrum.len(), self.out_spectrum.len(), self.filter.len());
        self.out_spectrum[0] = self.spectrum[0] * self.filter[0];
        for (k, &h) in self.filter.iter().enumerate().skip(1) {
            self.out_spectrum[k] = self.spectrum[k] * h;
            self.out_spectrum[len_out - k] = self.spectrum[len_in - k] * h.conj();
        }
        self.out_spectrum[shared..=len_out - shared].fill(Complex32::ZERO);
        self.inverse.process_with_scratch(&mut self.out_spectrum, &mut self.scratch);
        // The first block filtered spans this pair's output, the second
        // starts a block later and reaches a block into the next pair's,
        // where the last pair's second block ends.
        let hop = self.hop_out;
        let (head, tail) = self.out_spectrum.split_at(hop);
        let (out_first, out_second) = self.out.split_at_mut(hop);
        for ((((out_first, out_second), carry), y_head), y_tail) in
            out_first.iter_mut().zip(out_second).zip(&mut self.carry).zip(head).zip(tail)
        {
            *out_first = *carry + y_head.re;
            *out_second = y_tail.re + y_head.im;
            *carry = y_tail.im;
        }
        let skip = self.delay_left.min(2 * hop);
        self.delay_left -= skip;
        &self.out[skip..]
    }
}

/// The filter's length in input samples: the quality's length at the lower
/// rate, rounded up to an even number of rate periods at the input rate, so
/// that its centre, the delay, falls on an output sample.
fn filter_taps(in_rate: u32, out_rate: u32, quality: Quality) -> usize {
    let in_period = (in_rate / polyphase::gcd(in_rate, out_rate)) as usize;
    let lower = in_rate.min(out_rate) as usize;
    (quality.block_at_lower_rate() * in_rate as usize / lower).div_ceil(2 * in_period) * 2 * in_period
}

/// The spectrum of the anti-aliasing low-pass at the first `bins` bins of a
/// `len`-point transform, scaled by `1 / len`: a windowed sinc of `taps`
/// input samples (`taps_out` at the output rate), with rubato's window
/// (Blackman-Harris squared) and its cutoff fitted to that window, so the
/// response is the one rubato's FFT resampler has at this length.
fn low_pass_spectrum(taps: usize, taps_out: usize, len: usize, bins: usize) -> Vec<Complex32> {
    let window = WindowFunction::BlackmanHarris2;
    let cutoff = if taps > taps_out {
        rubato::calculate_cutoff::<f64>(taps_out, window) * taps_out as f64 / taps as f64
    } else {
        rubato::calculate_cutoff::<f64>(taps, window)
    };
    let centre = (taps / 2) as f64;
    let mut kernel: Vec<Complex64> = windowfunctions::window::<f64>(taps, windowfunctions::WindowFunction::BlackmanHarris, Symmetry::Periodic)
        .enumerate()
        .map(|(n, w)| {
            let x = (n as f64 - centre) * cutoff * std::f64::consts::PI;
            let sinc = if x == 0.0 { 1.0 } else { x.sin() / x };
            Complex64::new(w * w * sinc, 0.0)
        })
        .collect();
    let gain: f64 = kernel.iter().map(|c| c.re).sum();
    kernel.resize(len, Complex64::ZERO);
    FftPlanner::<f64>::new().plan_fft_forward(len).process(&mut kernel);
    let scale = 1.0 / (gain * len as f64);
    kernel[..bins].iter().map(|c| Complex32::new((c.re * scale) as f32, (c.im * scale) as f32)).collect()
}

/// A streaming mono resampler from `in_rate` to `out_rate` (see the module
/// documentation). Equal rates pass samples through unchanged.
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    /// `None` when the rates are equal.
    blocks: Option<Blocks>,
    /// Input waiting for a whole block, as floats.
    pending: Vec<f32>,
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

fn check_out_len(needed: usize, len: usize) -> Result<(), ResampleError> {
    if len < needed {
        return Err(ResampleError::OutputTooShort { needed, len });
    }
    Ok(())
}

/// Appends `input` to `out` unchanged (the float "conversion").
#[inline(always)]
fn load_f32(input: &[f32], out: &mut Vec<f32>) {
    out.extend_from_slice(input);
}

/// Copies `input` to `out` unchanged (the float "conversion").
#[inline(always)]
fn store_f32(input: &[f32], out: &mut [f32]) {
    out.copy_from_slice(input);
}

impl Resampler {
    /// A resampler from `in_rate` to `out_rate` Hz with the given quality.
    pub fn new(in_rate: u32, out_rate: u32, quality: Quality) -> Result<Self, ResampleError> {
        let in_rate = check_rate(&SUPPORTED_RATES, "in_rate", in_rate)?;
        let out_rate = check_rate(&SUPPORTED_RATES, "out_rate", out_rate)?;
        let blocks = (in_rate != out_rate).then(|| Blocks::new(in_rate, out_rate, quality));
        Ok(Resampler {
            in_rate,
            out_rate,
            pending: Vec::with_capacity(blocks.as_ref().map_or(0, Blocks::block_len)),
            blocks,
            total_in: 0,
            total_out: 0,
        })
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
    /// (a pair of blocks, plus the filter delay while the stream starts).
    pub fn latency_samples(&self) -> usize {
        self.blocks.as_ref().map_or(0, Blocks::block_len)
    }

    /// Forgets the stream: back to the state after construction.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.total_in = 0;
        self.total_out = 0;
        if let Some(blocks) = &mut self.blocks {
            blocks.reset();
        }
    }

    /// The number of samples a `process` call with `input_len` samples
    /// produces now: the output of the blocks it completes.
    pub fn output_len(&self, input_len: usize) -> usize {
        let Some(blocks) = &self.blocks else { return input_len };
        let produced = (self.pending.len() + input_len) / blocks.block_len() * blocks.output_block_len();
        produced - blocks.delay_left.min(produced)
    }

    /// The number of samples [`Resampler::flush`] produces now.
    pub fn flush_len(&self) -> usize {
        let expected = (self.total_in * u64::from(self.out_rate) + u64::from(self.in_rate) / 2) / u64::from(self.in_rate);
        // Output never runs ahead of the input (the filter delay is held
        // back), so this does not underflow; saturating all the same.
        usize::try_from(expected.saturating_sub(self.total_out)).expect("invariant: a stream's tail fits in memory")
    }

    /// Pushes `input` (samples in -1.0..1.0) and appends the output that is
    /// ready to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let start = out.len();
        out.resize(start + self.output_len(input.len()), 0.0);
        self.process_into(input, &mut out[start..]).expect("invariant: `out` was sized by output_len");
    }

    /// Pushes `input` (samples in -1.0..1.0) and writes the output that is
    /// ready to the start of `out`, which must hold at least
    /// [`Resampler::output_len`] samples; returns how many were written.
    pub fn process_into(&mut self, input: &[f32], out: &mut [f32]) -> Result<usize, ResampleError> {
        self.process_converting(input, out, load_f32, store_f32)
    }

    /// [`Resampler::process_into`] for int16 samples, converted to floats
    /// and back (rounded, saturating) block by block.
    #[inline(always)]
    pub fn process_i16_into(&mut self, input: &[i16], out: &mut [i16]) -> Result<usize, ResampleError> {
        self.process_converting(input, out, i16_to_f32, f32_to_i16)
    }

    /// Ends the stream: appends the remaining output to `out`, so that the
    /// stream's total output is `total_in * out_rate / in_rate` (rounded half up)
    /// samples, then resets for a new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let start = out.len();
        out.resize(start + self.flush_len(), 0.0);
        self.flush_into(&mut out[start..]).expect("invariant: `out` was sized by flush_len");
    }

    /// [`Resampler::flush`] into the start of `out`, which must hold at
    /// least [`Resampler::flush_len`] samples; returns how many were written.
    pub fn flush_into(&mut self, out: &mut [f32]) -> Result<usize, ResampleError> {
        self.flush_converting(out, store_f32)
    }

    /// [`Resampler::flush_into`] for int16 output.
    #[inline(always)]
    pub fn flush_i16_into(&mut self, out: &mut [i16]) -> Result<usize, ResampleError> {
        self.flush_converting(out, f32_to_i16)
    }

    /// The body of `process_into` for any sample type: `load` appends
    /// samples to a float block, `store` writes floats back. Every input
    /// sample goes through `pending`, one block at a time, so the floats
    /// stay in the L1 cache between conversion and resampling.
    #[inline(always)]
    fn process_converting<S: Copy>(
        &mut self,
        input: &[S],
        out: &mut [S],
        load: impl Fn(&[S], &mut Vec<f32>),
        store: impl Fn(&[f32], &mut [S]),
    ) -> Result<usize, ResampleError> {
        let needed = self.output_len(input.len());
        check_out_len(needed, out.len())?;
        self.total_in += input.len() as u64;
        self.total_out += needed as u64;
        let Some(blocks) = &mut self.blocks else {
            out[..needed].copy_from_slice(input);
            return Ok(needed);
        };
        let block = blocks.block_len();
        let mut written = 0;
        let mut rest = input;
        while !rest.is_empty() {
            let take = (block - self.pending.len()).min(rest.len());
            load(&rest[..take], &mut self.pending);
            rest = &rest[take..];
            if self.pending.len() == block {
                let produced = blocks.run(&self.pending);
                store(produced, &mut out[written..written + produced.len()]);
                written += produced.len();
                self.pending.clear();
            }
        }
        debug_assert_eq!(written, needed);
        Ok(written)
    }

    /// The body of `flush_into` for any sample type.
    #[inline(always)]
    fn flush_converting<S: Copy>(&mut self, out: &mut [S], store: impl Fn(&[f32], &mut [S])) -> Result<usize, ResampleError> {
        let needed = self.flush_len();
        check_out_len(needed, out.len())?;
        let mut written = 0;
        if let Some(blocks) = &mut self.blocks {
            let block = blocks.block_len();
            while written < needed {
                // The last real samples, then silence, until the tail is out.
                self.pending.resize(block, 0.0);
                let produced = blocks.run(&self.pending);
                let kept = produced.len().min(needed - written);
                store(&produced[..kept], &mut out[written..written + kept]);
                written += kept;
                self.pending.clear();
            }
        }
        self.reset();
        Ok(written)
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
        for (a, b) in [(8000, 16000), (16000, 8000), (8000, 48000), (48000, 24000), (24000, 16000), (16000, 16000), (44100, 48000), (48000, 44100)] {
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
    fn int16_path_is_the_float_path_rounded_and_output_len_is_exact() {
        let pcm: Vec<i16> = (0..5000).map(|i| ((i * 7919) % 40000 - 20000) as i16).collect();
        for (a, b) in [(8000, 24000), (48000, 16000), (44100, 48000), (16000, 16000)] {
            let mut floats = Vec::new();
            i16_to_f32(&pcm, &mut floats);
            let mut by_float = Resampler::new(a, b, Quality::High).expect("supported rates");
            let mut by_int = Resampler::new(a, b, Quality::High).expect("supported rates");
            let (mut expected, mut got) = (Vec::new(), Vec::new());
            for (chunk, float_chunk) in pcm.chunks(701).zip(floats.chunks(701)) {
                let mut y = Vec::new();
                by_float.process(float_chunk, &mut y);
                let mut out = vec![0i16; by_int.output_len(chunk.len())];
                assert_eq!(by_int.process_i16_into(chunk, &mut out), Ok(out.len()), "{a}->{b}");
                expected.extend(y);
                got.extend(out);
            }
            by_float.flush(&mut expected);
            let mut tail = vec![0i16; by_int.flush_len()];
            assert_eq!(by_int.flush_i16_into(&mut tail), Ok(tail.len()));
            got.extend(tail);
            let mut rounded = vec![0i16; expected.len()];
            f32_to_i16(&expected, &mut rounded);
            assert_eq!(got, rounded, "{a}->{b}");
        }
    }

    #[test]
    fn short_output_is_an_error_and_changes_nothing() {
        let mut r = Resampler::new(8000, 16000, Quality::Low).expect("supported rates");
        let input = vec![0.25f32; 1000];
        let needed = r.output_len(input.len());
        assert!(needed > 0);
        let mut out = vec![0.0; needed - 1];
        assert_eq!(r.process_into(&input, &mut out), Err(ResampleError::OutputTooShort { needed, len: needed - 1 }));
        assert_eq!(r.output_len(input.len()), needed);
        assert_eq!(r.flush_len(), 0);
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

    /// The output of rubato's own FFT resampler with the same filter (the
    /// block engine this module replaces), its delay dropped.
    fn rubato_reference(a: u32, b: u32, quality: Quality, input: &[f32]) -> Vec<f32> {
        use rubato::audioadapter_buffers::direct::SequentialSlice;
        use rubato::{Fft, FixedSync, Resampler as _};
        let block = filter_taps(a, b, quality);
        let mut fft = Fft::<f32>::new_custom(a as usize, b as usize, block, 1, 1, WindowFunction::BlackmanHarris2, FixedSync::Input)
            .expect("supported rates and a nonzero block");
        assert_eq!(fft.input_frames_next(), block, "rubato's block is this module's filter");
        let mut out = Vec::new();
        for chunk in input.chunks_exact(block) {
            let frames_out = fft.output_frames_next();
            let mut y = vec![0.0; frames_out];
            let input = SequentialSlice::new(chunk, 1, block).expect("a mono block");
            let mut output = SequentialSlice::new_mut(&mut y, 1, frames_out).expect("a mono block");
            fft.process_into_buffer(&input, &mut output, None).expect("whole blocks");
            out.extend(y);
        }
        out.drain(..fft.output_delay());
        out
    }

    #[test]
    fn output_is_rubatos_fft_resampler_with_the_same_filter() {
        let mut state = 0x9E37_79B9_u32;
        let noise: Vec<f32> = (0..48_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as i32 as f32) / 2.0f32.powi(33)
            })
            .collect();
        for (a, b) in [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (48000, 16000), (16000, 48000), (44100, 48000), (48000, 44100)] {
            for quality in [Quality::Low, Quality::High] {
                let mut ours = Vec::new();
                Resampler::new(a, b, quality).expect("supported rates").process(&noise, &mut ours);
                let reference = rubato_reference(a, b, quality, &noise);
                let n = ours.len().min(reference.len());
                assert!(n > b as usize / 2, "{a}->{b}: {n} samples compared");
                let err = ours[..n].iter().zip(&reference[..n]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
                assert!(err < 2e-6, "{a}->{b} {quality:?}: max difference {err} from rubato");
            }
        }
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

