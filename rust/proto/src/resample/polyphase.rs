//! Low-latency streaming resampling for live calls: a polyphase FIR filter
//! for the rational ratios between 8, 16, 24 and 48 kHz.
//!
//! The FFT [`Resampler`](super::Resampler) holds a whole block (up to 128 ms)
//! before it produces anything, which is fine for files and far too much
//! for a phone call, where every millisecond of delay counts in the
//! E-model. This filter works sample by sample: upsample by `L`, low-pass,
//! downsample by `M` (`out_rate / in_rate = L / M`), computing only the
//! outputs that are kept, each from one of the `L` phases of the prototype
//! low-pass. The prototype is a Kaiser-windowed sinc spanning
//! [`TAPS_AT_MIN_RATE`] samples of the lower of the two rates, so its
//! group delay is half of that: 3 ms for pairs with 8 kHz, 1.5 ms for pairs
//! with 16 kHz, 1 ms between 24 and 48 kHz.
//!
//! Response (checked by the tests): flat within 0.1 dB to 0.8 of the lower
//! rate's Nyquist frequency (3.2 kHz of telephone band at 8 kHz), at least
//! 60 dB down from its Nyquist frequency on, so nothing aliases audibly
//! when going down and no images appear going up.
//!
//! Samples are int16 in and out (the codecs' and the application's format);
//! the filter runs in `f32`. One chunk of input gives exactly
//! `len * L / M` outputs when that is whole (the frames of a call always
//! are: any whole number of milliseconds at these rates), otherwise the
//! remainder carries over to the next chunk. Nothing is allocated after the
//! first chunk of the largest size.

use super::{check_rate, ResampleError};

/// The rates [`PolyphaseResampler`] converts between, in Hz.
pub const POLYPHASE_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

/// Length of the prototype filter in samples of the lower rate.
pub const TAPS_AT_MIN_RATE: usize = 48;

/// Stopband attenuation the Kaiser window is designed for, dB.
const STOPBAND_DB: f64 = 65.0;

/// A streaming mono int16 resampler with a few milliseconds of delay (see
/// the module documentation). Equal rates pass samples through unchanged.
#[derive(Debug, Clone)]
pub struct PolyphaseResampler {
    in_rate: u32,
    out_rate: u32,
    /// Upsampling factor `L`.
    up: usize,
    /// Downsampling factor `M`.
    down: usize,
    /// Input samples each output is computed from.
    taps: usize,
    /// `up` phases of `taps` coefficients each, phase `p` at
    /// `p * taps..`, reversed so that a phase lines up with the input
    /// window oldest sample first.
    coeffs: Vec<f32>,
    /// The last `taps - 1` input samples, then the chunk being processed.
    window: Vec<f32>,
    /// Position of the next output on the upsampled time line, counted from
    /// the first sample of the chunk being processed (in units of
    /// `1 / (in_rate * up)` s).
    next_out: usize,
}

/// The greatest common divisor (rates are nonzero, so is the result).
pub(super) fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The dot product of two equally long slices, in eight independent lanes:
/// a plain sum is one dependency chain the compiler may not reorder (float
/// addition is not associative), eight lanes vectorise and pipeline.
#[inline]
fn dot(x: &[f32], h: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0.0f32; LANES];
    let (x_body, h_body) = (x.chunks_exact(LANES), h.chunks_exact(LANES));
    let tail: f32 = x_body.remainder().iter().zip(h_body.remainder()).map(|(a, b)| a * b).sum();
    for (xs, hs) in x_body.zip(h_body) {
        for lane in 0..LANES {
            acc[lane] += xs[lane] * hs[lane];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Rounds to nearest (ties to even) and saturates, without the libm call
/// `f32::round` is on baseline x86-64: adding 1.5 * 2^23 leaves the
/// rounded integer in the low mantissa bits (as `super::f32_to_i16` does
/// for normalised samples). The input is finite: finite samples and taps.
#[inline]
fn round_to_i16(y: f32) -> i16 {
    const ROUNDING: f32 = 12_582_912.0;
    (y.clamp(-32768.0, 32767.0) + ROUNDING).to_bits() as u16 as i16
}

/// The zeroth-order modified Bessel function of the first kind, by its
/// power series (converges fast for the arguments a Kaiser window needs).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

impl PolyphaseResampler {
    /// A resampler from `in_rate` to `out_rate`, both in
    /// [`POLYPHASE_RATES`].
    pub fn new(in_rate: u32, out_rate: u32) -> Result<Self, ResampleError> {
        let in_rate = check_rate(&POLYPHASE_RATES, "in_rate", in_rate)?;
        let out_rate = check_rate(&POLYPHASE_RATES, "out_rate", out_rate)?;
        let g = gcd(in_rate, out_rate);
        let (up, down) = ((out_rate / g) as usize, (in_rate / g) as usize);
        if up == down {
            return Ok(PolyphaseResampler {
                in_rate,
                out_rate,
                up: 1,
                down: 1,
                taps: 1,
                coeffs: Vec::new(),
                window: Vec::new(),
                next_out: 0,
            });
        }
        // The prototype runs at in_rate * up; the lower rate is that divided
        // by max(up, down).
        let ratio = up.max(down);
        let len = TAPS_AT_MIN_RATE * ratio;
        let taps = len.div_ceil(up);
        // Stopband from the lower Nyquist frequency on; the Kaiser window's
        // transition width for this length and attenuation sets the cutoff
        // (the middle of the transition band).
        let transition = (STOPBAND_DB - 7.95) / (2.285 * len as f64) / (2.0 * std::f64::consts::PI);
        let nyquist = 0.5 / ratio as f64;
        let cutoff = nyquist - transition / 2.0;
        let beta = 0.1102 * (STOPBAND_DB - 8.7);
        let centre = (len - 1) as f64 / 2.0;
        let i0_beta = bessel_i0(beta);
        let prototype: Vec<f64> = (0..len)
            .map(|n| {
                let t = n as f64 - centre;
                let sinc = if t == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * std::f64::consts::PI * cutoff * t).sin() / (std::f64::consts::PI * t)
                };
                let r = t / centre;
                sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta
            })
            .collect();
        let mut coeffs = vec![0.0f32; up * taps];
        for phase in 0..up {
            // Each phase alone must pass DC with gain 1: that is the gain
            // `up` of the zero-stuffed signal, spread evenly over the phases
            // (no ripple at the output rate from phase to phase).
            let sum: f64 = (0..taps).filter_map(|j| prototype.get(phase + j * up)).sum();
            for j in 0..taps {
                let h = prototype.get(phase + j * up).copied().unwrap_or(0.0);
                coeffs[phase * taps + (taps - 1 - j)] = (h / sum) as f32;
            }
        }
        Ok(PolyphaseResampler {
            in_rate,
            out_rate,
            up,
            down,
            taps,
            coeffs,
            window: vec![0.0; taps - 1],
            next_out: 0,
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

    /// The filter's group delay in output samples (0 for equal rates).
    pub fn delay_samples(&self) -> f64 {
        if self.coeffs.is_empty() {
            return 0.0;
        }
        let len = TAPS_AT_MIN_RATE * self.up.max(self.down);
        (len - 1) as f64 / 2.0 / self.down as f64
    }

    /// Forgets the stream (the filter history becomes silence).
    pub fn reset(&mut self) {
        self.window.clear();
        self.window.resize(self.taps - 1, 0.0);
        self.next_out = 0;
    }

    /// Resamples `input`, appending the output to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.coeffs.is_empty() {
            out.extend_from_slice(input);
            return;
        }
        let history = self.taps - 1;
        self.window.extend(input.iter().map(|&x| f32::from(x)));
        let n = input.len();
        out.reserve((n * self.up).div_ceil(self.down));
        while self.next_out / self.up < n {
            let newest = self.next_out / self.up;
            let phase = self.next_out % self.up;
            // The `taps` samples ending at input `newest` (which sits at
            // `history + newest` in the window).
            let samples = &self.window[newest..newest + self.taps];
            let coeffs = &self.coeffs[phase * self.taps..(phase + 1) * self.taps];
            let y = dot(samples, coeffs);
            out.push(round_to_i16(y));
            self.next_out += self.down;
        }
        self.next_out -= n * self.up;
        // Keep the last `history` samples for the next chunk.
        self.window.drain(..n);
        debug_assert_eq!(self.window.len(), history);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, freq: f64, amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()).round() as i16)
            .collect()
    }

    /// Level in dB relative to full amplitude `amplitude` of the steady
    /// second half of `x` (rms of a sine is amplitude / sqrt 2).
    fn level_db(x: &[i16], amplitude: f64) -> f64 {
        let tail = &x[x.len() / 2..];
        let rms = (tail.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / tail.len() as f64).sqrt();
        20.0 * (rms * std::f64::consts::SQRT_2 / amplitude).log10()
    }

    fn run(a: u32, b: u32, input: &[i16], chunk: usize) -> Vec<i16> {
        let mut r = PolyphaseResampler::new(a, b).unwrap();
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            r.process(c, &mut out);
        }
        out
    }

    fn pairs() -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        for a in POLYPHASE_RATES {
            for b in POLYPHASE_RATES {
                if a != b {
                    v.push((a, b));
                }
            }
        }
        v
    }

    #[test]
    fn rejects_other_rates() {
        assert_eq!(
            PolyphaseResampler::new(8000, 44_100).unwrap_err(),
            ResampleError::UnsupportedRate { supported: &POLYPHASE_RATES, which: "out_rate", rate: 44_100 }
        );
    }

    #[test]
    fn frames_give_exact_lengths_and_equal_rates_pass_through() {
        for (a, b) in pairs() {
            for ms in [10, 20, 30, 60] {
                let frame = a as usize * ms / 1000;
                let mut r = PolyphaseResampler::new(a, b).unwrap();
                let mut out = Vec::new();
                for _ in 0..3 {
                    out.clear();
                    r.process(&vec![100; frame], &mut out);
                    assert_eq!(out.len(), b as usize * ms / 1000, "{a}->{b} {ms} ms");
                }
            }
        }
        let x = tone(16_000, 440.0, 8000.0, 999);
        assert_eq!(run(16_000, 16_000, &x, 7), x);
    }

    #[test]
    fn passband_is_flat_and_chunking_does_not_matter() {
        for (a, b) in pairs() {
            let low = a.min(b);
            for fraction in [0.05, 0.3, 0.6, 0.8] {
                let freq = fraction * f64::from(low) / 2.0;
                let x = tone(a, freq, 10_000.0, a as usize / 5);
                let y = run(a, b, &x, a as usize / 50);
                let db = level_db(&y, 10_000.0);
                assert!(db.abs() < 0.1, "{a}->{b} at {freq} Hz: {db:.3} dB");
                assert_eq!(run(a, b, &x, 37), y, "{a}->{b}: chunk size changed the output");
            }
        }
    }

    #[test]
    fn stopband_rejects_aliases_and_images() {
        for (a, b) in pairs() {
            let low = f64::from(a.min(b));
            let high_nyquist = f64::from(a) / 2.0;
            // Input tones above the lower Nyquist frequency (and below the
            // input's own): going down they would alias, going up they do
            // not exist in the input, so test images instead (below).
            if a > b {
                for freq in [low / 2.0, low / 2.0 * 1.3, high_nyquist * 0.95] {
                    let x = tone(a, freq, 10_000.0, a as usize / 5);
                    let db = level_db(&run(a, b, &x, 160), 10_000.0);
                    assert!(db < -60.0, "{a}->{b}: {freq} Hz aliased at {db:.1} dB");
                }
            } else {
                // Going up, a tone at f has images at a - f etc.: measure the
                // output energy above the input's Nyquist frequency by
                // subtracting the ideal tone.
                let freq = 0.7 * f64::from(a) / 2.0;
                let x = tone(a, freq, 10_000.0, a as usize / 5);
                let y = run(a, b, &x, 160);
                let r = PolyphaseResampler::new(a, b).unwrap();
                let delay = r.delay_samples();
                let ideal: Vec<f64> = (0..y.len())
                    .map(|i| 10_000.0 * (2.0 * std::f64::consts::PI * freq * (i as f64 - delay) / f64::from(b)).sin())
                    .collect();
                let tail = y.len() / 2;
                let err = (y[tail..].iter().zip(&ideal[tail..]).map(|(&s, &i)| (f64::from(s) - i).powi(2)).sum::<f64>()
                    / (y.len() - tail) as f64)
                    .sqrt();
                let db = 20.0 * (err * std::f64::consts::SQRT_2 / 10_000.0).log10();
                assert!(db < -55.0, "{a}->{b}: images and error at {db:.1} dB");
            }
        }
    }

    #[test]
    fn delay_is_a_few_milliseconds() {
        for (a, b) in pairs() {
            let r = PolyphaseResampler::new(a, b).unwrap();
            let ms = r.delay_samples() * 1000.0 / f64::from(b);
            assert!(ms <= 3.0, "{a}->{b}: {ms} ms");
            // An impulse comes out centred on the stated delay.
            let mut x = vec![0i16; a as usize / 50];
            x[0] = 20_000;
            let y = run(a, b, &x, x.len());
            let peak = y.iter().enumerate().max_by_key(|(_, &v)| v).map(|(i, _)| i).unwrap();
            assert!((peak as f64 - r.delay_samples()).abs() <= 1.0, "{a}->{b}: peak at {peak}");
        }
    }

    #[test]
    fn full_scale_saturates_instead_of_wrapping() {
        // Square waves at full scale overshoot (Gibbs): the overshoot must
        // clip, never wrap around to the other sign.
        let mut x = vec![i16::MAX; 4800];
        x.extend(vec![i16::MIN; 4800]);
        for (a, b) in pairs() {
            let y = run(a, b, &x, 80);
            let delay = PolyphaseResampler::new(a, b).unwrap().delay_samples().ceil() as usize;
            let per_in = f64::from(b) / f64::from(a);
            let edge = (4800.0 * per_in) as usize;
            assert!(y[2 * delay..edge].iter().all(|&s| s > 30_000), "{a}->{b}");
            let low_start = edge + 2 * delay;
            assert!(y[low_start..].iter().all(|&s| s < -30_000), "{a}->{b}");
        }
    }
}
