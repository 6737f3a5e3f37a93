//! RFC 3389 comfort noise: the DSP behind a CN payload.
//!
//! A CN payload describes background noise by its level (one octet, 0..=127
//! meaning 0 to -127 dBov) and optionally an all-pole spectral model as
//! quantised reflection coefficients (one octet each). The octet layout on
//! the wire is the RTP layer's business; this module works with the plain
//! numbers:
//!
//! * [`estimate`] measures the level of a stretch of background noise and
//!   fits an all-pole model to it (autocorrelation and Levinson-Durbin),
//! * [`ComfortNoiseGenerator`] synthesises noise with that level and shape
//!   (white noise through the all-pole filter, scaled by the model's
//!   prediction gain so the output has the requested level).
//!
//! Conventions (those of RFC 3389 and G.711 Appendix II): 0 dBov is the
//! power of a full-scale 16-bit square wave (mean square 32768²); a
//! reflection coefficient `k` in (-1, 1) is sent as `round(128 k) + 127`
//! (0..=254), so octet `q` means `k = (q - 127) / 128`. The synthesis filter
//! is `1 / A(z)` with `A(z) = 1 + a1 z^-1 + ... + ap z^-p`, the `a` obtained
//! from the `k` by the step-up recursion `a_i += k_m a_(m-i)`, `a_m = k_m`.

/// The deepest level a CN payload can express, in -dBov.
pub const MAX_LEVEL: u8 = 127;
/// The largest model order accepted (more than any sensible CN payload).
pub const MAX_ORDER: usize = 32;

/// The octet for reflection coefficient `k`, clipped to the codable range
/// (0..=254, i.e. `k` in -127/128..=127/128).
pub fn quantize_reflection(k: f64) -> u8 {
    let steps = (128.0 * k).round().clamp(-127.0, 127.0) as i32;
    (steps + 127) as u8
}

/// The reflection coefficient an octet stands for. 255 is not a valid code
/// (it would be `k = 1`, an unstable filter) and is read as 254.
pub fn dequantize_reflection(q: u8) -> f64 {
    (f64::from(q.min(254)) - 127.0) / 128.0
}

/// The level octet (-dBov, 0..=127) for a mean square `power` of 16-bit
/// samples.
pub fn level_from_power(power: f64) -> u8 {
    if power <= 0.0 {
        return MAX_LEVEL;
    }
    let dbov = 10.0 * (power / (32768.0 * 32768.0)).log10();
    (-dbov).round().clamp(0.0, f64::from(MAX_LEVEL)) as u8
}

/// The mean square of 16-bit samples at a level octet (-dBov).
pub fn power_from_level(level: u8) -> f64 {
    32768.0 * 32768.0 * 10f64.powf(-f64::from(level.min(MAX_LEVEL)) / 10.0)
}

/// What [`estimate`] measured: the level octet and the quantised
/// reflection coefficients, as they go into a CN payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseDescription {
    /// Noise level, 0..=127 meaning 0 to -127 dBov.
    pub level: u8,
    /// Quantised reflection coefficients (0..=254), model order = length.
    pub reflection: Vec<u8>,
}

/// Measures the level of `pcm` and fits an all-pole model of `order`
/// (0..=[`MAX_ORDER`], larger orders are capped) to it.
///
/// The autocorrelation is taken over a Hann-windowed copy, with a white-noise
/// floor 40 dB below the signal and a Gaussian lag window (the usual LPC
/// conditioning), so the model is stable and modest for any input; silence
/// gives level 127 and all coefficients 0 (octet 127).
pub fn estimate(pcm: &[i16], order: usize) -> NoiseDescription {
    let order = order.min(MAX_ORDER);
    let n = pcm.len();
    if n == 0 {
        return NoiseDescription { level: MAX_LEVEL, reflection: vec![quantize_reflection(0.0); order] };
    }
    let power = pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / n as f64;
    let level = level_from_power(power);
    let windowed: Vec<f64> = pcm
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * (i as f64 + 0.5) / n as f64).cos();
            f64::from(x) * w
        })
        .collect();
    let mut r: Vec<f64> = (0..=order)
        .map(|lag| windowed.iter().zip(&windowed[lag.min(n)..]).map(|(a, b)| a * b).sum())
        .collect();
    r[0] *= 1.0001;
    for (lag, value) in r.iter_mut().enumerate().skip(1) {
        // Gaussian lag window (60 Hz bandwidth at 8 kHz).
        let x = 2.0 * std::f64::consts::PI * 60.0 * lag as f64 / 8000.0;
        *value *= (-0.5 * x * x).exp();
    }
    let reflection = levinson_durbin(&r).into_iter().map(quantize_reflection).collect();
    NoiseDescription { level, reflection }
}

/// The reflection coefficients of the autocorrelation `r` (order
/// `r.len() - 1`); zeros once the prediction error vanishes.
fn levinson_durbin(r: &[f64]) -> Vec<f64> {
    let order = r.len().saturating_sub(1);
    let mut a = vec![0.0; order + 1];
    let mut k = vec![0.0; order];
    let mut error = r.first().copied().unwrap_or(0.0);
    for m in 1..=order {
        if error <= 1e-9 * r[0].max(1e-30) {
            break;
        }
        let acc = r[m] + (1..m).map(|i| a[i] * r[m - i]).sum::<f64>();
        let km = (-acc / error).clamp(-0.999, 0.999);
        k[m - 1] = km;
        let previous = a.clone();
        for i in 1..m {
            a[i] = previous[i] + km * previous[m - i];
        }
        a[m] = km;
        error *= 1.0 - km * km;
    }
    k
}

/// Step-up recursion: the direct-form coefficients `a1..ap` of `A(z)` for
/// reflection coefficients `k1..kp`.
fn reflection_to_lpc(k: &[f64]) -> Vec<f64> {
    let mut a = vec![0.0; k.len() + 1];
    for (m, &km) in k.iter().enumerate().map(|(i, k)| (i + 1, k)) {
        let previous = a.clone();
        for i in 1..m {
            a[i] = previous[i] + km * previous[m - i];
        }
        a[m] = km;
    }
    a.split_off(1)
}

/// Synthesises comfort noise for a level and reflection coefficients;
/// streaming (the filter state carries over between calls) and
/// deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct ComfortNoiseGenerator {
    /// `a1..ap` of the synthesis filter `1 / A(z)`.
    lpc: Vec<f64>,
    /// Excitation standard deviation giving the requested output level.
    gain: f64,
    /// Past outputs, newest first.
    history: Vec<f64>,
    /// xorshift64* state.
    rng: u64,
}

impl ComfortNoiseGenerator {
    /// A generator for `level` (-dBov, values above 127 read as 127) and
    /// quantised `reflection` coefficients (at most [`MAX_ORDER`] are used).
    pub fn new(level: u8, reflection: &[u8], seed: u64) -> Self {
        let mut generator = ComfortNoiseGenerator { lpc: Vec::new(), gain: 0.0, history: Vec::new(), rng: 0 };
        generator.update(level, reflection);
        // xorshift must not start at zero; mix the seed so 0, 1, 2... differ well.
        generator.rng = (seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
        generator
    }

    /// Takes new parameters (a new CN payload), keeping the filter memory
    /// so the noise changes without a click.
    pub fn update(&mut self, level: u8, reflection: &[u8]) {
        let k: Vec<f64> = reflection.iter().take(MAX_ORDER).map(|&q| dequantize_reflection(q)).collect();
        // White noise of variance g² through 1/A(z) has power g² / prod(1 - k²).
        let prediction_gain: f64 = k.iter().map(|k| 1.0 - k * k).product();
        self.gain = (power_from_level(level) * prediction_gain).sqrt();
        self.lpc = reflection_to_lpc(&k);
        self.history.resize(self.lpc.len(), 0.0);
    }

    /// Uniform noise of unit variance (xorshift64*, 53-bit mantissa).
    fn next_excitation(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let bits = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let uniform = bits as f64 / (1u64 << 53) as f64; // [0, 1)
        (uniform - 0.5) * 12f64.sqrt()
    }

    /// Fills `out` with the next samples of noise.
    pub fn generate_into(&mut self, out: &mut [i16]) {
        for sample in out {
            let excitation = self.gain * self.next_excitation();
            let feedback: f64 = self.lpc.iter().zip(&self.history).map(|(a, y)| a * y).sum();
            let y = excitation - feedback;
            if !self.history.is_empty() {
                self.history.rotate_right(1);
                self.history[0] = y;
            }
            // `as` saturates: loud noise clips rather than wraps.
            *sample = y.round() as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn power(x: &[i16]) -> f64 {
        x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64
    }

    #[test]
    fn quantisation_round_trips_every_code() {
        for q in 0..=254u8 {
            assert_eq!(quantize_reflection(dequantize_reflection(q)), q);
        }
        assert_eq!(dequantize_reflection(255), dequantize_reflection(254));
        assert_eq!(quantize_reflection(5.0), 254);
        assert_eq!(quantize_reflection(-5.0), 0);
    }

    #[test]
    fn levels_round_trip() {
        for level in 0..=127u8 {
            assert_eq!(level_from_power(power_from_level(level)), level);
        }
        assert_eq!(level_from_power(0.0), 127);
        // A full-scale square wave is 0 dBov; a full-scale sine about 3.
        assert_eq!(estimate(&[i16::MIN, i16::MIN], 0).level, 0);
    }

    #[test]
    fn generated_noise_has_the_level_and_reestimates() {
        let reflection = [quantize_reflection(-0.8), quantize_reflection(0.5), quantize_reflection(-0.2)];
        let mut generator = ComfortNoiseGenerator::new(40, &reflection, 7);
        let mut noise = vec![0i16; 40_000];
        generator.generate_into(&mut noise);
        let measured = level_from_power(power(&noise));
        assert!(measured.abs_diff(40) <= 1, "level {measured}");
        let estimated = estimate(&noise, 3);
        for (e, r) in estimated.reflection.iter().zip(&reflection) {
            assert!(e.abs_diff(*r) <= 6, "{:?} vs {reflection:?}", estimated.reflection);
        }
    }

    #[test]
    fn silence_and_empty_input() {
        let d = estimate(&[0; 400], 4);
        assert_eq!(d.level, 127);
        assert_eq!(d.reflection, vec![127; 4]);
        assert_eq!(estimate(&[], 2), NoiseDescription { level: 127, reflection: vec![127, 127] });
    }
}
