//! In-band DTMF (ITU-T Q.23 tones): generation, and a Goertzel detector
//! built to the ITU-T Q.24 acceptance limits.
//!
//! The detector looks at the signal every 5 ms. For each of the eight DTMF
//! frequencies it runs a Goertzel filter over a window whose length is
//! inversely proportional to the frequency, so the filter's bandwidth is the
//! same *fraction* of every tone frequency (Q.24's tolerances are relative:
//! accept ±1.5 %, reject ±3.5 %). A tone counts as present when, in its group,
//! it is the strongest, loud enough, and stronger at its nominal frequency
//! than at ±4 % (which puts the accept/reject boundary at about ±2 %).
//! The two tones must also carry most of the window's energy (speech spreads
//! its energy over harmonics and noise) and respect the twist limits.
//!
//! A tone stays visible to the windows for about its own duration, so a digit
//! starts when the same pair is seen in [`MIN_ON_BLOCKS`] consecutive looks
//! (25 ms: tones under ~30 ms are rejected, 40 ms ones accepted) and ends after
//! [`MIN_OFF_BLOCKS`] looks without it (35 ms). A dropout disturbs the windows
//! for its length plus a window (a restarted tone has a phase jump), so this
//! bridges dropouts up to ~20 ms while pauses from ~25 ms separate digits
//! (Q.24: bridge 10 ms, separate 40 ms).

use std::f64::consts::PI;
use std::fmt;

/// The low-group (row) frequencies in Hz.
pub const LOW_GROUP: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// The high-group (column) frequencies in Hz.
pub const HIGH_GROUP: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYPAD[row][column]`.
pub const KEYPAD: [[char; 4]; 4] = [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];

/// Looks between detector decisions, in milliseconds.
const HOP_MS: f64 = 5.0;
/// Consecutive looks with the same pair that start a digit.
pub const MIN_ON_BLOCKS: u32 = 6;
/// Consecutive looks without it that end a digit.
pub const MIN_OFF_BLOCKS: u32 = 7;
/// Window length in cycles of the tone frequency: the Goertzel response is
/// -1 dB at ±1.5 % and -6 dB at ±3.5 % off the nominal frequency.
const WINDOW_CYCLES: f64 = 17.0;
/// Relative offset of the two side filters of each tone.
const SIDE_OFFSET: f64 = 0.04;
/// Weakest tone accepted, in dB relative to a full-scale sine.
const MIN_TONE_DBFS: f64 = -36.0;
/// The high tone may be this much stronger than the low one (normal twist).
const MAX_NORMAL_TWIST_DB: f64 = 8.0;
/// The low tone may be this much stronger than the high one (reverse twist).
const MAX_REVERSE_TWIST_DB: f64 = 4.0;
/// The two tones must carry at least this share of the window's power.
const MIN_PURITY: f64 = 0.7;
/// The winning tone must beat the other tones of its group by this much.
const MIN_GROUP_MARGIN_DB: f64 = 3.0;

/// Why tones could not be generated or a detector made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtmfError {
    /// A character that is not a DTMF digit (0-9, *, #, A-D).
    InvalidDigit(char),
    /// A sample rate below 8000 Hz or above 192000 Hz.
    InvalidSampleRate(u32),
}

impl fmt::Display for DtmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtmfError::InvalidDigit(c) => write!(f, "{c:?} is not a DTMF digit (0-9, *, #, A-D)"),
            DtmfError::InvalidSampleRate(r) => write!(f, "{r} Hz is not a supported sample rate (8000 to 192000)"),
        }
    }
}

impl std::error::Error for DtmfError {}

fn check_rate(sample_rate: u32) -> Result<u32, DtmfError> {
    if (8_000..=192_000).contains(&sample_rate) {
        Ok(sample_rate)
    } else {
        Err(DtmfError::InvalidSampleRate(sample_rate))
    }
}

/// The (low, high) frequencies of a digit; letters may be lower case.
pub fn digit_frequencies(digit: char) -> Option<(f64, f64)> {
    let digit = digit.to_ascii_uppercase();
    KEYPAD.iter().enumerate().find_map(|(row, keys)| {
        keys.iter().position(|&k| k == digit).map(|column| (LOW_GROUP[row], HIGH_GROUP[column]))
    })
}

/// Levels and timing of generated DTMF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneParams {
    /// Duration of each digit in milliseconds.
    pub tone_ms: f64,
    /// Silence after each digit in milliseconds.
    pub pause_ms: f64,
    /// Level of the low-group tone, dB relative to a full-scale sine.
    pub low_dbfs: f64,
    /// Level of the high-group tone (usually 2 dB above the low one).
    pub high_dbfs: f64,
}

impl Default for ToneParams {
    fn default() -> Self {
        ToneParams { tone_ms: 100.0, pause_ms: 100.0, low_dbfs: -10.0, high_dbfs: -8.0 }
    }
}

fn dbfs_to_amplitude(dbfs: f64) -> f64 {
    32767.0 * 10f64.powf(dbfs / 20.0)
}

/// Appends `samples` samples of the two-tone signal for `digit` to `out`,
/// starting at phase zero (each digit starts cleanly, as a keypad does).
pub fn tone_into(digit: char, sample_rate: u32, samples: usize, params: &ToneParams, out: &mut Vec<i16>) -> Result<(), DtmfError> {
    let sample_rate = check_rate(sample_rate)?;
    let (low, high) = digit_frequencies(digit).ok_or(DtmfError::InvalidDigit(digit))?;
    let (a_low, a_high) = (dbfs_to_amplitude(params.low_dbfs), dbfs_to_amplitude(params.high_dbfs));
    let (w_low, w_high) = (2.0 * PI * low / f64::from(sample_rate), 2.0 * PI * high / f64::from(sample_rate));
    out.extend((0..samples).map(|n| {
        let n = n as f64;
        let value = a_low * (w_low * n).sin() + a_high * (w_high * n).sin();
        // `as` saturates: loud settings clip instead of wrapping.
        value.round() as i16
    }));
    Ok(())
}

/// The samples for a string of digits: each `tone_ms` long and followed by
/// `pause_ms` of silence. Spaces and commas are ignored.
pub fn generate(digits: &str, sample_rate: u32, params: &ToneParams) -> Result<Vec<i16>, DtmfError> {
    let sample_rate = check_rate(sample_rate)?;
    let ms = |duration: f64| (duration.max(0.0) * f64::from(sample_rate) / 1000.0).round() as usize;
    let mut out = Vec::new();
    for digit in digits.chars().filter(|c| !matches!(c, ' ' | ',')) {
        tone_into(digit, sample_rate, ms(params.tone_ms), params, &mut out)?;
        out.resize(out.len() + ms(params.pause_ms), 0);
    }
    Ok(out)
}

/// A detected digit: which, and the samples it spans (from the start of
/// the stream; `end` is exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// The digit: 0-9, *, #, A-D.
    pub digit: char,
    /// Index of the first sample of the tone (estimated).
    pub start: u64,
    /// Index one past its last sample (estimated).
    pub end: u64,
}

/// The Goertzel filters for one DTMF frequency: nominal and the two sides.
#[derive(Debug, Clone)]
struct ToneFilter {
    window: usize,
    coefficients: [f64; 3],
}

impl ToneFilter {
    fn new(freq: f64, sample_rate: f64) -> Self {
        let window = (WINDOW_CYCLES * sample_rate / freq).round() as usize;
        let coefficient = |f: f64| 2.0 * (2.0 * PI * f / sample_rate).cos();
        ToneFilter {
            window,
            coefficients: [
                coefficient(freq),
                coefficient(freq * (1.0 - SIDE_OFFSET)),
                coefficient(freq * (1.0 + SIDE_OFFSET)),
            ],
        }
    }

    /// The tone's power (mean square, like `x²` for a full-band signal) at
    /// the nominal frequency, and whether it beats both side filters,
    /// measured over the last `window` samples of `history`, whose total
    /// energy is `energy`.
    fn measure(&self, history: &[f64]) -> (f64, bool) {
        let samples = &history[history.len() - self.window..];
        let mut powers = [0.0; 3];
        for (power, &c) in powers.iter_mut().zip(&self.coefficients) {
            let (mut s1, mut s2) = (0.0, 0.0);
            for &x in samples {
                let s0 = x + c * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            // |X|² = s1² + s2² - c s1 s2; a sine of amplitude A gives
            // (A N / 2)², so 2 |X|² / N² is its mean square A² / 2.
            let n = self.window as f64;
            *power = 2.0 * (s1 * s1 + s2 * s2 - c * s1 * s2) / (n * n);
        }
        (powers[0], powers[0] >= powers[1] && powers[0] >= powers[2])
    }
}

/// A streaming DTMF detector (see the module documentation for the rules).
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    sample_rate: u32,
    hop: usize,
    low: Vec<ToneFilter>,
    high: Vec<ToneFilter>,
    /// The last `history_len` samples (scaled to -1..1), oldest first.
    history: Vec<f64>,
    history_len: usize,
    /// Samples since the last look.
    since_look: usize,
    /// Samples seen since the start of the stream.
    position: u64,
    /// The pair seen in the last look and how many looks in a row.
    candidate: Option<char>,
    candidate_looks: u32,
    candidate_start: u64,
    /// The digit in progress (reported at its end) and looks without it.
    current: Option<(char, u64, u64)>,
    missing_looks: u32,
}

impl DtmfDetector {
    /// A detector for `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Result<Self, DtmfError> {
        let rate = f64::from(check_rate(sample_rate)?);
        let low: Vec<ToneFilter> = LOW_GROUP.iter().map(|&f| ToneFilter::new(f, rate)).collect();
        let high: Vec<ToneFilter> = HIGH_GROUP.iter().map(|&f| ToneFilter::new(f, rate)).collect();
        let history_len = low[0].window; // 697 Hz has the longest window
        Ok(DtmfDetector {
            sample_rate,
            hop: (rate * HOP_MS / 1000.0).round() as usize,
            low,
            high,
            history: vec![0.0; history_len],
            history_len,
            since_look: 0,
            position: 0,
            candidate: None,
            candidate_looks: 0,
            candidate_start: 0,
            current: None,
            missing_looks: 0,
        })
    }

    /// The sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The digit in progress and its start sample, if any: what an RFC 4733
    /// sender needs to start an event before the tone has ended.
    pub fn current(&self) -> Option<(char, u64)> {
        self.current.map(|(digit, start, _)| (digit, start))
    }

    /// Feeds samples; appends the digits that ended to `events`.
    pub fn process(&mut self, pcm: &[i16], events: &mut Vec<DtmfEvent>) {
        for chunk in pcm.chunks(self.hop) {
            let take = chunk.len().min(self.hop - self.since_look);
            let (now, later) = chunk.split_at(take);
            self.push(now);
            if self.since_look == self.hop {
                self.look(events);
            }
            self.push(later);
            if self.since_look == self.hop {
                self.look(events);
            }
        }
    }

    /// Ends the stream: reports a digit still in progress and resets.
    pub fn flush(&mut self, events: &mut Vec<DtmfEvent>) {
        if let Some((digit, start, end)) = self.current.take() {
            events.push(DtmfEvent { digit, start, end });
        }
        *self = DtmfDetector::new(self.sample_rate).expect("invariant: the rate was accepted before");
    }

    fn push(&mut self, samples: &[i16]) {
        self.history.extend(samples.iter().map(|&x| f64::from(x) / 32768.0));
        let excess = self.history.len().saturating_sub(self.history_len);
        self.history.drain(..excess);
        self.since_look += samples.len();
        self.position += samples.len() as u64;
    }

    /// The keypad (row, column) whose two tones dominate the windows ending
    /// now, if any.
    fn classify(&self) -> Option<(usize, usize)> {
        let pick = |filters: &[ToneFilter]| -> Option<(usize, f64)> {
            let measured: Vec<(f64, bool)> = filters.iter().map(|f| f.measure(&self.history)).collect();
            let (best, &(power, centred)) =
                measured.iter().enumerate().max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))?;
            let runner_up = measured.iter().enumerate().filter(|&(i, _)| i != best).map(|(_, m)| m.0).fold(0.0, f64::max);
            let loud = power >= 0.5 * 10f64.powf(MIN_TONE_DBFS / 10.0);
            let clear = power >= runner_up * 10f64.powf(MIN_GROUP_MARGIN_DB / 10.0);
            (centred && loud && clear).then_some((best, power))
        };
        let (row, low_power) = pick(&self.low)?;
        let (column, high_power) = pick(&self.high)?;
        let twist_db = 10.0 * (high_power / low_power).log10();
        if twist_db > MAX_NORMAL_TWIST_DB || -twist_db > MAX_REVERSE_TWIST_DB {
            return None;
        }
        // Purity: the two tones against the mean square of each tone's own
        // window (the shorter high-group window sees the same signal).
        let mean_square = |window: usize| {
            let w = &self.history[self.history.len() - window..];
            w.iter().map(|x| x * x).sum::<f64>() / window as f64
        };
        let total = mean_square(self.low[row].window).max(mean_square(self.high[column].window));
        if low_power + high_power < MIN_PURITY * total {
            return None;
        }
        Some((row, column))
    }

    fn look(&mut self, events: &mut Vec<DtmfEvent>) {
        self.since_look = 0;
        let pair = self.classify();
        let seen = pair.map(|(row, column)| KEYPAD[row][column]);
        // The first look that sees a tone has it in most of both windows:
        // estimate its onset half a window back on average.
        let onset = pair.map_or(0, |(row, column)| (self.low[row].window + self.high[column].window) / 2);
        let window_start = self.position.saturating_sub(onset as u64);
        if seen.is_some() && seen == self.candidate {
            self.candidate_looks += 1;
        } else {
            self.candidate = seen;
            self.candidate_looks = u32::from(seen.is_some());
            self.candidate_start = window_start;
        }
        match (self.current, seen) {
            (Some((digit, start, _)), Some(now)) if now == digit => {
                self.current = Some((digit, start, self.position));
                self.missing_looks = 0;
            }
            (Some((digit, start, end)), _) => {
                self.missing_looks += 1;
                // A different digit that is already confirmed ends this one at once.
                let replaced = seen.is_some() && self.candidate_looks >= MIN_ON_BLOCKS;
                if self.missing_looks >= MIN_OFF_BLOCKS || replaced {
                    events.push(DtmfEvent { digit, start, end });
                    self.current = None;
                    self.missing_looks = 0;
                    self.start_if_confirmed();
                }
            }
            (None, _) => self.start_if_confirmed(),
        }
    }

    fn start_if_confirmed(&mut self) {
        if let Some(digit) = self.candidate {
            if self.candidate_looks >= MIN_ON_BLOCKS {
                self.current = Some((digit, self.candidate_start, self.position));
                self.missing_looks = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(pcm: &[i16], rate: u32) -> Vec<DtmfEvent> {
        let mut detector = DtmfDetector::new(rate).expect("valid rate");
        let mut events = Vec::new();
        for chunk in pcm.chunks(160) {
            detector.process(chunk, &mut events);
        }
        detector.flush(&mut events);
        events
    }

    #[test]
    fn keypad_frequencies() {
        assert_eq!(digit_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(digit_frequencies('d'), Some((941.0, 1633.0)));
        assert_eq!(digit_frequencies('x'), None);
        assert_eq!(generate("1x", 8000, &ToneParams::default()), Err(DtmfError::InvalidDigit('x')));
        assert_eq!(DtmfDetector::new(100).unwrap_err(), DtmfError::InvalidSampleRate(100));
    }

    #[test]
    fn detects_every_digit_at_every_rate() {
        for rate in [8000, 16000, 48000] {
            let pcm = generate("0123456789*#ABCD", rate, &ToneParams::default()).expect("valid digits");
            let digits: String = detect(&pcm, rate).iter().map(|e| e.digit).collect();
            assert_eq!(digits, "0123456789*#ABCD", "{rate} Hz");
        }
    }

    #[test]
    fn event_times_match_the_tones() {
        let params = ToneParams { tone_ms: 60.0, pause_ms: 60.0, ..ToneParams::default() };
        let events = detect(&generate("73", 8000, &params).expect("valid"), 8000);
        assert_eq!(events.len(), 2);
        for (i, e) in events.iter().enumerate() {
            let start = i as i64 * 960;
            assert!((e.start as i64 - start).abs() <= 60, "{e:?}");
            assert!((e.end as i64 - (start + 480)).abs() <= 60, "{e:?}");
        }
    }
}
