//! Signal processing of the jitter buffer: pitch search, time-stretching
//! (accelerate and expand by whole pitch periods, crossfaded), loss
//! concealment by pitch-period repetition fading to comfort noise, and the
//! merge back into real audio.
//!
//! Everything works on caller-provided slices and preallocated state, so the
//! per-frame path allocates nothing.

/// Pitch and timing constants, in samples for one sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scales {
    /// Samples per millisecond (8 at 8 kHz, 16 at 16 kHz).
    pub per_ms: usize,
    /// Shortest pitch period searched (2.5 ms, 400 Hz).
    pub min_pitch: usize,
    /// Longest pitch period searched (15 ms, 67 Hz).
    pub max_pitch: usize,
}

impl Scales {
    /// The scales for `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Self {
        let per_ms = (sample_rate / 1000).max(1) as usize;
        Scales { per_ms, min_pitch: per_ms * 5 / 2, max_pitch: per_ms * 15 }
    }
}

/// Normalised correlation a pitch-synchronous stretch needs: the two
/// periods must be alike.
const STRETCH_CORRELATION: f32 = 0.85;

/// Where a stretch may happen. Pauses are best (PESQ on the shared speech
/// scores pause-only stretching clearly above pitch-synchronous stretching
/// at the same delay); the caller widens the policy the longer it waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StretchPolicy {
    /// Audio below this rms counts as a pause: stretched anywhere.
    pub quiet_rms: f32,
    /// Also stretch voiced audio by whole pitch periods.
    pub periodic: bool,
    /// Stretch wherever playout is (the caller has waited long enough).
    pub force: bool,
}

/// The dot product of two sample slices, exact: a product of two samples
/// needs 31 bits and a sum of up to 2^22 of them fits the 53 of an `f64`
/// without rounding, so the sum may be taken in any order. Eight
/// independent lanes then vectorise and pipeline, where a single `f32`
/// sum was one chain of dependent additions: through the level of every
/// frame played, most of `pop`'s time (push+pop 0.24 -> 0.19 us; four lanes
/// 0.21, sixteen 0.19).
fn dot(a: &[i16], b: &[i16]) -> f32 {
    const LANES: usize = 8;
    debug_assert!(a.len().min(b.len()) <= 1 << 22, "a frame or a pitch search, far shorter");
    let product = |(&x, &y): (&i16, &i16)| f64::from(i32::from(x) * i32::from(y));
    let mut lanes = [0.0f64; LANES];
    let (a_body, b_body) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = a_body.remainder().iter().zip(b_body.remainder()).map(product).sum();
    for (xs, ys) in a_body.zip(b_body) {
        for lane in 0..LANES {
            lanes[lane] += product((&xs[lane], &ys[lane]));
        }
    }
    (lanes.iter().sum::<f64>() + tail) as f32
}

/// Root mean square of `x` (0 for an empty slice).
pub fn rms(x: &[i16]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (dot(x, x) / x.len() as f32).sqrt()
}

/// The lag in `lags` whose segment `x[start - lag .. start - lag + len]`
/// best matches `x[start .. start + len]` (normalised cross-correlation),
/// with that correlation. Lags that reach outside `x` are skipped.
///
/// Each segment's energy is its predecessor's, slid by the samples between
/// them (one lag further takes in one sample on the left and lets one go on
/// the right): exact integers, so the same values as a dot product per
/// segment, for half the work of a search (which every concealment starts
/// with: a loss on every call at once costs the engine a search per call).
fn best_lag(x: &[i16], start: usize, len: usize, lags: std::ops::RangeInclusive<usize>, step: usize) -> Option<(usize, f32)> {
    let target = x.get(start..start + len)?;
    let target_energy = dot(target, target);
    let square = |i: usize| i64::from(x[i]) * i64::from(x[i]);
    let mut best: Option<(usize, f32)> = None;
    let mut slid: Option<(usize, i64)> = None; // a lag already searched and its segment's energy
    for lag in lags.step_by(step.max(1)) {
        let Some(begin) = start.checked_sub(lag).filter(|&begin| begin + len <= x.len()) else { continue };
        let candidate = &x[begin..begin + len];
        let energy_exact = match slid {
            Some((from, energy)) => ((from + 1)..=lag).fold(energy, |e, l| e + square(start - l) - square(start - l + len)),
            None => (begin..begin + len).map(square).sum(),
        };
        slid = Some((lag, energy_exact));
        // exact below 2^53, so rounded once, as dot() rounds its exact sum
        let energy = energy_exact as f32;
        let corr = if energy * target_energy > 0.0 { dot(target, candidate) / (energy * target_energy).sqrt() } else { 0.0 };
        if best.is_none_or(|(_, c)| corr > c) {
            best = Some((lag, corr));
        }
    }
    best
}

/// The pitch period of the end of `history` and how periodic it is:
/// compares its last pitch-window with earlier ones.
pub fn pitch_of_tail(history: &[i16], scales: Scales) -> (usize, f32) {
    let window = scales.max_pitch.min(history.len() / 3).max(1);
    let start = history.len().saturating_sub(window);
    let max_lag = scales.max_pitch.min(start);
    if max_lag < scales.min_pitch {
        return (scales.min_pitch.min(history.len().max(1)), 0.0);
    }
    best_lag(history, start, window, scales.min_pitch..=max_lag, 1).unwrap_or((scales.min_pitch, 0.0))
}

/// `x.round() as i16`: to the nearest, halves away from zero, saturating,
/// NaN to 0. Without SSE4.1 (baseline x86-64) `f32::round` is a call to
/// `roundf`, which per sample cost concealment a fifth of its time; after
/// clamping, truncation and the fraction are exact, so this is too.
#[inline]
fn round_to_i16(x: f32) -> i16 {
    let clamped = x.clamp(-32768.0, 32767.0);
    let truncated = clamped as i32;
    let fraction = clamped - truncated as f32;
    (truncated + i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5)) as i16
}

/// Linear crossfade of `from` into `to`, written to `out` (all one length).
fn crossfade(from: &[i16], to: &[i16], out: &mut [i16]) {
    let n = out.len() as f32 + 1.0;
    for (i, ((o, &a), &b)) in out.iter_mut().zip(from).zip(to).enumerate() {
        let w = (i as f32 + 1.0) / n;
        *o = round_to_i16(f32::from(a) * (1.0 - w) + f32::from(b) * w);
    }
}

/// How much to stretch `x` by: the best match of two adjacent pitch periods
/// (at most `longest`), or simply `quiet_most` when the audio is too quiet
/// for a seam to be heard, or when `quiet_most` is shorter than any pitch
/// period (a last step of under 2.5 ms that lands playout exactly on a
/// packet boundary; crossfaded over its own length, it is not heard).
/// `multiple` keeps the amount a whole number of RTP ticks; `policy` says
/// where stretching is allowed.
fn stretch_amount(x: &[i16], scales: Scales, longest: usize, quiet_most: usize, multiple: usize, policy: StretchPolicy) -> Option<usize> {
    let shortest = scales.min_pitch.next_multiple_of(multiple);
    let quiet_most = quiet_most - quiet_most % multiple;
    if quiet_most > 0 && (policy.force || quiet_most < shortest) && x.len() >= 2 * quiet_most {
        return Some(quiet_most);
    }
    if quiet_most >= shortest && x.len() >= 2 * quiet_most && rms(&x[..2 * quiet_most]) < policy.quiet_rms {
        return Some(quiet_most);
    }
    if !policy.periodic {
        return None;
    }
    let longest = longest.min(x.len() / 2);
    let longest = longest - longest % multiple;
    if longest < shortest {
        return None;
    }
    // Segment x[P .. 2P] against x[0 .. P] for each P: compare a fixed
    // window at `start = longest` with its lagged copies.
    let (lag, corr) = best_lag(x, longest, longest, shortest..=longest, multiple)?;
    (corr >= STRETCH_CORRELATION).then_some(lag)
}

/// Accelerate: writes `out.len()` samples made from `x` with one pitch
/// period (at most `most` samples) removed: two adjacent periods crossfaded
/// into one. Returns the number of input samples consumed (`out.len()` plus
/// the amount removed), or `None` when the audio has no period clean enough
/// to drop without an audible seam under `policy`.
pub fn accelerate(x: &[i16], out: &mut [i16], scales: Scales, most: usize, multiple: usize, policy: StretchPolicy) -> Option<usize> {
    let frame = out.len();
    let room = x.len().saturating_sub(frame).min(frame).min(most);
    let period = stretch_amount(x, scales, scales.max_pitch.min(room), room, multiple, policy)?;
    crossfade(&x[..period], &x[period..2 * period], &mut out[..period]);
    out[period..].copy_from_slice(&x[2 * period..frame + period]);
    Some(frame + period)
}

/// Expand: writes `out.len()` samples made from `x` with one pitch period
/// (at most `most` samples) repeated, crossfaded back onto itself. Returns
/// the number of input samples consumed (`out.len()` minus the amount
/// added), or `None` as for [`accelerate`].
pub fn expand(x: &[i16], out: &mut [i16], scales: Scales, most: usize, multiple: usize, policy: StretchPolicy) -> Option<usize> {
    let frame = out.len();
    let room = (frame / 2).min(x.len() / 2).min(most);
    let period = stretch_amount(x, scales, scales.max_pitch.min(room), room, multiple, policy)?;
    let consumed = frame - period;
    out[..period].copy_from_slice(&x[..period]);
    crossfade(&x[period..2 * period], &x[..period], &mut out[period..2 * period]);
    out[2 * period..].copy_from_slice(&x[period..consumed]);
    Some(consumed)
}

/// One step of a xorshift32 generator `state` (never 0): white noise,
/// uniform in [-1, 1), variance 1/3.
pub fn white_noise(state: &mut u32) -> f32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    (*state as f32 / u32::MAX as f32) * 2.0 - 1.0
}

/// How much of the lost audio a concealment has made, and its loudness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConcealState {
    /// Samples synthesized since the loss began.
    pub produced: usize,
    /// Gain of the periodic part (1 at the start, 0 once faded out).
    pub gain: f32,
}

/// Pitch-based waveform substitution (in the spirit of G.711 Appendix I):
/// the last pitch period is repeated, then the last two and three, so the
/// repetition does not buzz; after 10 ms it fades out by 20% per 10 ms into
/// comfort noise at the background level.
#[derive(Debug, Clone)]
pub struct Concealer {
    scales: Scales,
    /// The last three pitch periods (at most) before the loss.
    tail: Vec<i16>,
    period: usize,
    /// Read position in `tail`.
    pos: usize,
    /// Periods currently looped (1, 2, then 3).
    periods_looped: usize,
    produced: usize,
    noise_rms: f32,
    rng: u32,
}

impl Concealer {
    /// A concealer for audio at the given scales.
    pub fn new(scales: Scales) -> Self {
        Concealer {
            scales,
            tail: Vec::with_capacity(3 * scales.max_pitch),
            period: scales.min_pitch,
            pos: 0,
            periods_looped: 1,
            produced: 0,
            noise_rms: 0.0,
            rng: 0x2545_f491,
        }
    }

    /// Begins concealing after `history` (the audio played so far, most
    /// recent last) with comfort noise at `noise_rms`.
    pub fn start(&mut self, history: &[i16], noise_rms: f32) {
        let (period, _) = pitch_of_tail(history, self.scales);
        let period = period.clamp(1, history.len().max(1));
        let keep = (3 * period).min(history.len());
        self.tail.clear();
        self.tail.extend_from_slice(&history[history.len() - keep..]);
        if self.tail.is_empty() {
            self.tail.push(0);
        }
        self.period = period.min(self.tail.len());
        self.periods_looped = 1;
        self.pos = self.tail.len() - self.period;
        self.produced = 0;
        self.noise_rms = noise_rms;
    }

    /// Progress of the current concealment.
    pub fn state(&self) -> ConcealState {
        ConcealState { produced: self.produced, gain: self.gain_at(self.produced) }
    }

    fn gain_at(&self, produced: usize) -> f32 {
        let ten_ms = 10 * self.scales.per_ms;
        if produced < ten_ms {
            1.0
        } else {
            (1.0 - 0.2 * (produced - ten_ms) as f32 / ten_ms as f32).max(0.0)
        }
    }

    /// Synthesizes the next `out.len()` samples of the lost audio.
    pub fn fill(&mut self, out: &mut [i16]) {
        let ten_ms = 10 * self.scales.per_ms;
        let noise_amplitude = self.noise_rms * 3f32.sqrt();
        let mut out = out;
        while !out.is_empty() {
            // Widen the loop at 10 and 20 ms, continuing at the same place
            // in the waveform: the newest period is shared by every loop.
            // The loop only changes on those boundaries, so it is settled
            // once per run of samples up to the next one, not per sample.
            let wanted = (1 + self.produced / ten_ms).min(3);
            if wanted > self.periods_looped && wanted * self.period <= self.tail.len() {
                self.periods_looped = wanted;
            }
            let loop_start = self.tail.len() - self.periods_looped * self.period;
            let run = (ten_ms - self.produced % ten_ms).min(out.len());
            let (now, later) = out.split_at_mut(run);
            for o in now {
                if self.pos < loop_start || self.pos >= self.tail.len() {
                    self.pos = loop_start;
                }
                let gain = self.gain_at(self.produced);
                let periodic = f32::from(self.tail[self.pos]) * gain;
                let noise = white_noise(&mut self.rng) * noise_amplitude * (1.0 - gain);
                *o = round_to_i16(periodic + noise);
                self.pos += 1;
                self.produced += 1;
            }
            out = later;
        }
    }

    /// Writes into `out` the real audio `real` merged with the concealment:
    /// the synthesized signal continues and fades into the real one over
    /// the first samples (longer after longer losses: 4 ms plus 4 ms per
    /// 10 ms lost, at most 10 ms). `scratch` holds the synthesized part.
    pub fn merge(&mut self, real: &[i16], out: &mut [i16], scratch: &mut [i16]) {
        let ms = (4 + 4 * self.produced / (10 * self.scales.per_ms)).min(10);
        let len = (ms * self.scales.per_ms).min(real.len()).min(out.len()).min(scratch.len());
        self.fill(&mut scratch[..len]);
        crossfade(&scratch[..len], &real[..len], &mut out[..len]);
        let rest = real.len().min(out.len());
        out[len..rest].copy_from_slice(&real[len..rest]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: f32, len: usize, amplitude: f32) -> Vec<i16> {
        (0..len).map(|i| (amplitude * (2.0 * std::f32::consts::PI * freq * i as f32 / rate).sin()) as i16).collect()
    }

    const PERIODIC: StretchPolicy = StretchPolicy { quiet_rms: 40.0, periodic: true, force: false };
    const QUIET_ONLY: StretchPolicy = StretchPolicy { quiet_rms: 40.0, periodic: false, force: false };
    const FORCE: StretchPolicy = StretchPolicy { quiet_rms: 40.0, periodic: true, force: true };

    #[test]
    fn round_to_i16_is_round_then_saturate() {
        // Every 1021st bit pattern (all exponents, signs, NaNs, infinities)
        // and the edges around halves and the i16 limits.
        let strided = (0..=u32::MAX).step_by(1021).map(f32::from_bits);
        let edges = [0.5f32, 1.5, 2.5, 0.499_999_97, -0.499_999_97, 32766.5, 32767.5, -32767.5, -32768.5, 8_388_607.5, -0.0];
        for x in strided.chain(edges.iter().flat_map(|&e| [e, -e, e.next_up(), e.next_down()])) {
            assert_eq!(round_to_i16(x), x.round() as i16, "{x:e} ({:#x})", x.to_bits());
        }
    }

    proptest::proptest! {
        // The slid energies give the very search a dot product per segment
        // gives: same lag, same correlation to the bit, at every step (the
        // stretches search whole RTP ticks) and with lags outside `x`.
        #[test]
        fn best_lag_is_the_search_with_a_dot_product_per_segment(
            x in proptest::collection::vec(proptest::prelude::any::<i16>(), 1..700),
            start in 0usize..700, len in 1usize..250, low in 0usize..40, span in 0usize..250, step in 1usize..4,
        ) {
            let lags = low..=low + span;
            let reference = (|| {
                let target = x.get(start..start + len)?;
                let target_energy = dot(target, target);
                let mut best: Option<(usize, f32)> = None;
                for lag in lags.clone().step_by(step) {
                    let Some(candidate) = start.checked_sub(lag).and_then(|s| x.get(s..s + len)) else { continue };
                    let energy = dot(candidate, candidate);
                    let corr = if energy * target_energy > 0.0 { dot(target, candidate) / (energy * target_energy).sqrt() } else { 0.0 };
                    if best.is_none_or(|(_, c)| corr > c) {
                        best = Some((lag, corr));
                    }
                }
                best
            })();
            let found = best_lag(&x, start, len, lags, step);
            proptest::prop_assert_eq!(found.map(|(lag, corr)| (lag, corr.to_bits())), reference.map(|(lag, corr)| (lag, corr.to_bits())));
        }
    }

    #[test]
    fn pitch_of_a_tone_is_its_period() {
        let x = tone(200.0, 8000.0, 480, 8000.0);
        let (period, corr) = pitch_of_tail(&x, Scales::new(8000));
        assert!(period % 40 == 0 && corr > 0.99, "{period} {corr}");
    }

    #[test]
    fn accelerate_and_expand_keep_a_tone_smooth() {
        let scales = Scales::new(8000);
        let x = tone(160.0, 8000.0, 480, 8000.0); // period 50 samples
        let mut out = vec![0i16; 160];
        let used = accelerate(&x, &mut out, scales, 160, 1, PERIODIC).expect("a pure tone is periodic");
        assert_eq!((used - 160) % 50, 0);
        // No seam: neighbouring samples of a 160 Hz tone differ by < 1100.
        assert!(out.windows(2).all(|w| (i32::from(w[0]) - i32::from(w[1])).abs() < 1100));
        let used = expand(&x, &mut out, scales, 160, 1, PERIODIC).expect("a pure tone is periodic");
        assert_eq!((160 - used) % 50, 0);
        assert!(out.windows(2).all(|w| (i32::from(w[0]) - i32::from(w[1])).abs() < 1100));
    }

    #[test]
    fn noise_is_not_stretched_but_silence_is() {
        let scales = Scales::new(8000);
        let mut rng = 1u32;
        let noise: Vec<i16> = (0..480)
            .map(|_| {
                rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((rng >> 16) as i16) / 2
            })
            .collect();
        let mut out = vec![0i16; 160];
        assert_eq!(accelerate(&noise, &mut out, scales, 160, 1, PERIODIC), None);
        assert_eq!(accelerate(&noise, &mut out, scales, 47, 1, FORCE), Some(160 + 47), "forced");
        assert_eq!(accelerate(&[0i16; 480], &mut out, scales, 160, 1, QUIET_ONLY), Some(160 + 160));
        assert_eq!(accelerate(&[0i16; 480], &mut out, scales, 45, 2, QUIET_ONLY), Some(160 + 44));
        assert_eq!(expand(&[0i16; 480], &mut out, scales, 160, 2, QUIET_ONLY), Some(160 - 80));
        let x = tone(160.0, 8000.0, 480, 8000.0);
        assert_eq!(accelerate(&x, &mut out, scales, 160, 1, QUIET_ONLY), None, "voiced waits for a pause");
    }

    #[test]
    fn concealment_continues_the_waveform_then_fades() {
        let scales = Scales::new(8000);
        let x = tone(200.0, 8000.0, 480, 8000.0);
        let mut c = Concealer::new(scales);
        c.start(&x, 0.0);
        let mut out = vec![0i16; 800];
        c.fill(&mut out);
        // The first 10 ms continue the tone exactly (it is periodic in 40).
        let expected = tone(200.0, 8000.0, 480 + 80, 8000.0);
        for i in 0..80 {
            assert!((i32::from(out[i]) - i32::from(expected[480 + i])).abs() <= 2, "sample {i}");
        }
        assert!(rms(&out[..80]) > 5000.0);
        assert!(rms(&out[480..]) == 0.0, "faded out after 60 ms");
        assert_eq!(c.state().gain, 0.0);
    }

    #[test]
    fn merge_fades_into_real_audio() {
        let scales = Scales::new(8000);
        let mut c = Concealer::new(scales);
        c.start(&[1000i16; 480], 0.0);
        let real = [-1000i16; 160];
        let (mut out, mut scratch) = ([0i16; 160], [0i16; 160]);
        c.merge(&real, &mut out, &mut scratch);
        assert!(out[0] > 900 && out[31] < -900 && out[32..].iter().all(|&s| s == -1000));
        assert!(out.windows(2).all(|w| w[1] <= w[0]), "monotone crossfade");
    }
}
