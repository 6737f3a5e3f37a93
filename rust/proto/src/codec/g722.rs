//! G.722 wideband speech coding (ITU-T G.722, 11/88 with the 2012 reference
//! arithmetic): 16 kHz PCM split by a quadrature mirror filter into two 8 kHz
//! sub-bands, each coded with ADPCM (6 bits low band, 2 bits high band).
//!
//! The encoder produces the 64 kbit/s octet format of RFC 3551 (bits 7-6 the
//! high-band index I_H, bits 5-0 the low-band index I_L). The decoder reads the
//! same octets in mode 1 (64 kbit/s), mode 2 (56 kbit/s: the LSB of I_L is
//! ignored) or mode 3 (48 kbit/s: the two LSBs are ignored), and saturates its
//! output on overload. Bit-exact with spandsp, FFmpeg and libg722 on the
//! shared vectors.
//!
//! The functional blocks are named as in the Recommendation (INVQAL, LOGSCL,
//! UPPOL2, ...). All arithmetic is 16-bit fixed point held in `i32`; no
//! intermediate value can exceed `i32` for any input (products are at most
//! 32,767 × 32,767 and sums of at most twelve of them are below 2^31 because
//! the QMF coefficients sum to 6,482 in magnitude).
//!
//! That bound is why the arithmetic below is written with `add`, `sub`
//! and `mul` (wrapping): release builds keep overflow checks, and a checked
//! operation on every step of this serial ADPCM chain doubles the cost of
//! coding. Every value is saturated back to 16 bits where the Recommendation
//! says so, and the shared vectors check the results bit for bit.

/// QMF coefficients h(0)..h(11); the filter is symmetric, h(23 - i) = h(i).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];
/// The same coefficients reversed, for the odd-indexed taps.
const QMF_REVERSED: [i32; 12] = {
    let mut reversed = [0; 12];
    let mut i = 0;
    while i < 12 {
        reversed[i] = QMF[11 - i];
        i += 1;
    }
    reversed
};

/// Low-band quantiser decision levels (Table 14/G.722) for the magnitude
/// intervals 1..=29, in units of the scale factor / 4096.
const Q6_LEVELS: [i32; 29] = [
    35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121, 1219, 1339,
    1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// The number of decision levels at or below each quotient `q` (0..=2919,
/// the last level), for QUANTL by division (see `quantl_interval`).
const LEVELS_AT_OR_BELOW: [u8; Q6_LEVELS[Q6_LEVELS.len() - 1] as usize + 1] = {
    let mut table = [0; Q6_LEVELS[Q6_LEVELS.len() - 1] as usize + 1];
    let (mut q, mut count) = (0, 0);
    while q < table.len() {
        while count < Q6_LEVELS.len() && Q6_LEVELS[count] as usize <= q {
            count += 1;
        }
        table[q] = count as u8;
        q += 1;
    }
    table
};

/// QUANTL's magnitude interval (1..=30) of a one's complement `magnitude`
/// (0..=32767) under the scale factor `det` (> 0): the first interval whose
/// upper decision level `level * det >> 12` exceeds the magnitude, 30 if
/// none does.
///
/// Rather than comparing against up to 29 levels (a scan whose exit branch
/// mispredicted on the encoder's critical path), one division finds it:
/// `m < (level * det) >> 12` holds exactly when `(m + 1) * 4096 <= level *
/// det`, that is when `level > q` with `q = ((m + 1) * 4096 - 1) / det`; so the
/// interval is one more than the number of levels at or below `q`.
#[inline(always)]
fn quantl_interval(magnitude: i32, det: i32) -> usize {
    debug_assert!((0..=32767).contains(&magnitude) && det > 0, "invariant: QUANTL's operand ranges");
    // (32767 + 1) * 4096 - 1 < 2^27: no overflow; det >= 32 (DETL's least).
    let numerator = ((magnitude as u32 + 1) << 12) - 1;
    let q = numerator / (det as u32).max(1);
    let last = LEVELS_AT_OR_BELOW.len() - 1;
    1 + usize::from(LEVELS_AT_OR_BELOW[(q as usize).min(last)])
}

/// 6-bit low-band codes for negative differences, by magnitude interval.
const ILN: [i32; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5,
    4,
];
/// 6-bit low-band codes for positive differences, by magnitude interval.
const ILP: [i32; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34,
    33, 32,
];
/// Inverse quantiser outputs for 6-bit low-band codes (QQ6, mode 1).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360, -8576,
    -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040,
    -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
    4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Inverse quantiser outputs for 5-bit low-band codes (QQ5, mode 2).
const QM5: [i32; 32] = [
    -280, -280, -23352, -17560, -14120, -11664, -9752, -8184, -6864, -5712, -4696, -3784, -2960, -2208, -1520, -880,
    23352, 17560, 14120, 11664, 9752, 8184, 6864, 5712, 4696, 3784, 2960, 2208, 1520, 880, 280, -280,
];
/// Inverse quantiser outputs for 4-bit low-band codes (QQ4: mode 3 and the
/// predictor update in every mode).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0,
];
/// 4-bit low-band code to the 3-bit magnitude index of the log-scale update.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Low-band log scale factor multipliers W_L.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// W_L by 4-bit low-band code (`WL[RL42[code]]`): one load on the
/// adaptation path instead of two dependent ones.
const WL_BY_CODE: [i32; 16] = {
    let mut table = [0; 16];
    let mut i = 0;
    while i < 16 {
        table[i] = WL[RL42[i]];
        i += 1;
    }
    table
};
/// The mode 2 and mode 3 inverse quantisers indexed by the full 6-bit code
/// (`QM5[code >> 1]`, `QM4[code >> 2]`), so the three decoder modes run the
/// same branch-free loop with a different table.
const QM5_BY_CODE6: [i32; 64] = expand_by_code6(&QM5, 1);
const QM4_BY_CODE6: [i32; 64] = expand_by_code6(&QM4, 2);

const fn expand_by_code6<const N: usize>(table: &[i32; N], ignored_bits: u32) -> [i32; 64] {
    let mut expanded = [0; 64];
    let mut i = 0;
    while i < 64 {
        expanded[i] = table[i >> ignored_bits];
        i += 1;
    }
    expanded
}
/// Inverse-log table (ILB): 2^(i/32) scaled by 2048.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960,
    3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Inverse quantiser outputs for the 2-bit high-band codes (QQ2).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// High-band code for negative differences, by magnitude interval 1..=2.
const IHN: [i32; 3] = [0, 1, 0];
/// High-band code for positive differences, by magnitude interval 1..=2.
const IHP: [i32; 3] = [0, 3, 2];
/// High-band code to the magnitude index of the log-scale update.
const RH2: [usize; 4] = [2, 1, 2, 1];
/// High-band log scale factor multipliers W_H.
const WH: [i32; 3] = [0, -214, 798];
/// W_H by high-band code (`WH[RH2[code]]`).
const WH_BY_CODE: [i32; 4] = [WH[RH2[0]], WH[RH2[1]], WH[RH2[2]], WH[RH2[3]]];
/// Largest low-band log scale factor (LOGSCL's limit).
const NBL_MAX: i32 = 18432;
/// Largest high-band log scale factor (LOGSCH's limit).
const NBH_MAX: i32 = 22528;
/// SCALEL: the low-band scale factor for each value of `nbl >> 6`.
const DETL: [i32; (NBL_MAX >> 6) as usize + 1] = scale_factors(8);
/// SCALEH: the high-band scale factor for each value of `nbh >> 6`.
const DETH: [i32; (NBH_MAX >> 6) as usize + 1] = scale_factors(10);

/// SCALEL/SCALEH as a table: the scale factor depends only on the top bits
/// of the log scale factor (`nb >> 6`: five mantissa bits for ILB and the
/// exponent `nb >> 11`), so one load replaces the lookup and the
/// data-dependent shift on the adaptation path. `shift_base` is 8 for the low
/// band and 10 for the high band.
const fn scale_factors<const N: usize>(shift_base: i32) -> [i32; N] {
    let mut table = [0; N];
    let mut i = 0;
    while i < N {
        let mantissa = ILB[i & 31];
        // i <= 352, so the shift is in -1..=10.
        let shift = shift_base - (i >> 5) as i32;
        let linear = if shift < 0 { mantissa << -shift } else { mantissa >> shift };
        table[i] = linear << 2;
        i += 1;
    }
    table
}
/// The high-band quantiser's single decision level (× scale factor / 4096).
const Q2: i32 = 564;

/// Limits to the 16-bit range.
#[inline(always)]
fn saturate(x: i32) -> i32 {
    x.clamp(i16::MIN as i32, i16::MAX as i32)
}

/// `a + b` on values far inside `i32` (see the module documentation).
#[inline(always)]
fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// `a - b` on values far inside `i32`.
#[inline(always)]
fn sub(a: i32, b: i32) -> i32 {
    a.wrapping_sub(b)
}

/// `a * b` on 16-bit values, which cannot leave `i32`.
#[inline(always)]
fn mul(a: i32, b: i32) -> i32 {
    a.wrapping_mul(b)
}

/// -1 if two 16-bit values have different signs as the Recommendation takes
/// them (`x >> 15`, so zero counts as positive), 0 if the same. A mask rather
/// than a `bool`: the sign tests of the predictor adaptation are as good as
/// random on speech, and arithmetic on the mask cannot become a mispredicted
/// branch (a `bool` select in this loop did).
#[inline(always)]
fn signs_differ(x: i32, y: i32) -> i32 {
    (x ^ y) >> 31
}

/// `x` if `mask` is 0, `-x` if `mask` is -1.
#[inline(always)]
fn negate_where(x: i32, mask: i32) -> i32 {
    sub(x ^ mask, mask)
}

/// Lanes of the zero predictor's delay line and coefficients: six taps
/// padded to eight so that UPZERO and FILTEZ are one 256-bit vector each.
const ZERO_LANES: usize = 8;
/// The lanes that hold a tap (all bits set) and the padding (zero).
const ZERO_TAPS: [i32; ZERO_LANES] = [-1, -1, -1, -1, -1, -1, 0, 0];

/// The adaptive state of one sub-band: the scale factor adaptation and the
/// pole-zero predictor (two poles, six zeros). Identical in encoder and
/// decoder, which is what keeps them in step.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Band {
    /// Predicted signal value s (SL / SH).
    s: i32,
    /// Zero section output sz.
    sz: i32,
    /// Reconstructed signal r, the last two values (r1, r2), doubled and
    /// saturated as FILTEP uses them (computed once per sample instead of
    /// once per use).
    r2: [i32; 2],
    /// Pole coefficients a1, a2.
    a: [i32; 2],
    /// Partial reconstructed signal p = sz + d, the last two values (p1, p2),
    /// unsaturated: only their signs are used.
    p: [i32; 2],
    /// Quantised difference d, the last six values (d1..d6), doubled and
    /// saturated as FILTEZ uses them, then two lanes of padding that stay
    /// zero. UPZERO only needs their signs, which doubling and saturation
    /// keep.
    d2: [i32; ZERO_LANES],
    /// Zero coefficients b1..b6, then two lanes of padding that stay zero.
    b: [i32; ZERO_LANES],
    /// Log scale factor nabla (NBL / NBH).
    nb: i32,
    /// Scale factor (DETL / DETH).
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Band { s: 0, sz: 0, r2: [0; 2], a: [0; 2], p: [0; 2], d2: [0; ZERO_LANES], b: [0; ZERO_LANES], nb: 0, det }
    }

    /// LOGSCL and SCALEL/SCALEH: adapts the log scale factor by `weight`
    /// (leaky, limited to the band's maximum) and converts it back to a
    /// linear scale factor with the band's table (`DETL` or `DETH`, whose
    /// length fixes the maximum).
    #[inline(always)]
    fn adapt_scale<const N: usize>(&mut self, weight: i32, scale_factors: &[i32; N]) {
        let nb_max = ((N - 1) << 6) as i32;
        self.nb = add(mul(self.nb, 127) >> 7, weight).clamp(0, nb_max);
        self.det = scale_factors[(self.nb >> 6) as usize];
    }

    /// Block 4: reconstructs the signal with the quantised difference `dx`,
    /// adapts the predictor coefficients and computes the next prediction.
    #[inline(always)]
    fn adapt_predictor(&mut self, dx: i32) {
        // RECONS and PARREC. r and p are used only as saturate(2r) (see
        // `r2`) and by sign, and saturate(2 * saturate(x)) = saturate(2x),
        // saturation keeps signs: the Recommendation's saturation of each
        // is folded into those uses.
        let r0 = add(self.s, dx);
        let p0 = add(self.sz, dx);
        let [p1, p2] = self.p;
        let [a1, a2] = self.a;
        let p1_differs = signs_differ(p0, p1);

        // UPPOL2: second pole coefficient. wd2 is saturate(4 a1), negated
        // (and limited to 32767) where p0 and p1 agree in sign, but only
        // wd2 >> 7 is used: negating before saturating gives the same value
        // (-32768 >> 7 = -32767 >> 7). Then 128 where p0 and p2 agree in sign,
        // else -128.
        let wd2 = saturate(negate_where(a1 << 2, !p1_differs));
        let wd3 = add(add(128 + (signs_differ(p0, p2) << 8), wd2 >> 7), mul(a2, 32512) >> 15);
        let new_a2 = wd3.clamp(-12288, 12288);

        // UPPOL1: first pole coefficient (192 where p0 and p1 agree, else
        // -192), limited by the second
        let wd1 = 192 + (p1_differs & -384);
        // The limit is 3072..=27648, inside the 16-bit range: it subsumes
        // the Recommendation's saturation.
        let limit = 15360 - new_a2;
        let new_a1 = add(wd1, mul(a1, 32640) >> 15).clamp(-limit, limit);

        // UPZERO: zero coefficients, sign-sign adaptation with leakage; the
        // padding lanes get no step and stay zero. The Recommendation
        // saturates the result, which cannot overflow: the leakage
        // b * 32640 >> 15 = b - ceil(b / 256) moves b towards zero by 128
        // when b > 32512 and by 127 or 128 when b < -32512 (128 at -32768),
        // and the step is at most 128 (tested for every 16-bit b).
        let step = i32::from(dx != 0) << 7;
        for ((b, &d2), &tap) in self.b.iter_mut().zip(&self.d2).zip(&ZERO_TAPS) {
            let wd2 = negate_where(step & tap, signs_differ(d2, dx));
            *b = add(wd2, mul(*b, 32640) >> 15);
            debug_assert_eq!(*b, saturate(*b), "invariant: b stays in 16 bits");
        }

        // DELAYA: shift the delay lines, take the new coefficients
        let d2 = self.d2;
        // |dx| <= DETL/DETH's largest factor (16384) * 20456 >> 15 = 10228
        // (tested for every scale factor and code),
        // so doubling it cannot overflow 16 bits: no saturation needed.
        debug_assert_eq!(add(dx, dx), saturate(add(dx, dx)), "invariant: |dx| <= 10228");
        self.d2 = [add(dx, dx), d2[0], d2[1], d2[2], d2[3], d2[4], 0, 0];
        self.r2 = [saturate(add(r0, r0)), self.r2[0]];
        self.p = [p0, p1];
        self.a = [new_a1, new_a2];

        // FILTEP: pole section
        let wd1 = mul(new_a1, self.r2[0]) >> 15;
        let wd2 = mul(new_a2, self.r2[1]) >> 15;
        let sp = saturate(add(wd1, wd2));

        // FILTEZ: zero section
        let mut products = [0; ZERO_LANES];
        for ((product, &b), &d2) in products.iter_mut().zip(&self.b).zip(&self.d2) {
            *product = mul(b, d2) >> 15;
        }
        self.sz = saturate(products.iter().fold(0, |sum, &product| add(sum, product)));

        // PREDIC
        self.s = saturate(add(sp, self.sz));
    }
}

/// Sample pairs coded per block. The QMF runs over a whole block at once
/// (vectorised across pairs) while the ADPCM loop, which is serial, keeps
/// only the two bands' state in registers.
const BLOCK: usize = 128;
/// Pairs filtered per step of the block QMF: one 256-bit vector of `i32`.
const LANES: usize = 8;
/// Past inputs each QMF branch needs besides the current one.
const QMF_HISTORY: usize = QMF.len() - 1;

/// The quadrature mirror filter's delay line: the last 11 inputs of the
/// even- and odd-position polyphase branches, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QmfHistory {
    even: [i32; QMF_HISTORY],
    odd: [i32; QMF_HISTORY],
}

impl QmfHistory {
    fn new() -> Self {
        QmfHistory { even: [0; QMF_HISTORY], odd: [0; QMF_HISTORY] }
    }

    /// Pushes a block of input pairs (`even_in[i]`, `odd_in[i]`, at most
    /// `BLOCK`) and writes each pair's two polyphase branch outputs: the
    /// even-position taps (where `even_in` enters) weighted by h(i), the
    /// odd-position taps weighted by h(11 - i).
    #[inline(always)]
    fn filter_block(&mut self, even_in: &[i32], odd_in: &[i32], even_out: &mut [i32; BLOCK], odd_out: &mut [i32; BLOCK]) {
        fir_block(&mut self.even, even_in, &QMF, even_out);
        fir_block(&mut self.odd, odd_in, &QMF_REVERSED, odd_out);
    }
}

/// One QMF branch over a block: `out[i]` is the dot product of the 12-tap
/// window ending at `input[i]` (the window reaches back into `history`) with
/// `coefficients`; `history` then holds the block's last 11 inputs. Eight
/// outputs are summed at a time in a fixed-size accumulator, which the
/// compiler keeps in one vector register. Wrapping arithmetic is exact here
/// (see the module documentation for the bound).
#[inline(always)]
fn fir_block(history: &mut [i32; QMF_HISTORY], input: &[i32], coefficients: &[i32; 12], out: &mut [i32; BLOCK]) {
    let n = input.len();
    // Inputs after the history, zero-padded to whole vectors of outputs.
    let mut window = [0i32; QMF_HISTORY + BLOCK];
    window[..QMF_HISTORY].copy_from_slice(history);
    window[QMF_HISTORY..QMF_HISTORY + n].copy_from_slice(input);
    for (start, chunk) in (0..n).step_by(LANES).zip(out.chunks_exact_mut(LANES)) {
        let mut sums = [0i32; LANES];
        for (tap, &h) in coefficients.iter().enumerate() {
            let taps: &[i32; LANES] =
                window[start + tap..start + tap + LANES].try_into().expect("invariant: a slice of LANES items");
            for (sum, &x) in sums.iter_mut().zip(taps) {
                *sum = add(*sum, mul(x, h));
            }
        }
        chunk.copy_from_slice(&sums);
    }
    history.copy_from_slice(&window[n..n + QMF_HISTORY]);
}

/// A G.722 encoder at 64 kbit/s: a stream of 16 kHz samples in, one octet
/// per pair of samples out. Encoding a stream in pieces (of even length)
/// gives the same octets as encoding it at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct G722Encoder {
    qmf: QmfHistory,
    low: Band,
    high: Band,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// An encoder in the reset state of the Recommendation.
    pub fn new() -> Self {
        G722Encoder { qmf: QmfHistory::new(), low: Band::new(32), high: Band::new(8) }
    }

    /// Returns to the reset state.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Encodes pairs of samples from `pcm` into `out`, one octet per pair.
    ///
    /// Encodes `min(pcm.len() / 2, out.len())` pairs and returns that count;
    /// a trailing odd sample is not consumed (callers pass even lengths).
    #[inline(always)]
    pub fn encode_into(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let count = (pcm.len() / 2).min(out.len());
        // Code with a local copy of the state so it stays in registers
        // across the loop (LLVM keeps fields of `*self` in memory between
        // iterations).
        let mut encoder = self.clone();
        for (pcm, codes) in pcm[..2 * count].chunks(2 * BLOCK).zip(out[..count].chunks_mut(BLOCK)) {
            encoder.encode_block(pcm, codes);
        }
        *self = encoder;
        count
    }

    /// Encodes one block: `codes.len()` (at most `BLOCK`) pairs from `pcm`.
    #[inline(always)]
    fn encode_block(&mut self, pcm: &[i16], codes: &mut [u8]) {
        let n = codes.len();
        let (mut firsts, mut seconds) = ([0i32; BLOCK], [0i32; BLOCK]);
        for ((pair, first), second) in pcm.chunks_exact(2).zip(&mut firsts).zip(&mut seconds) {
            *first = i32::from(pair[0]);
            *second = i32::from(pair[1]);
        }
        // Transmit QMF: the sum and difference of the two polyphase branches
        // are the low and high sub-band samples.
        let (mut even, mut odd) = ([0i32; BLOCK], [0i32; BLOCK]);
        self.qmf.filter_block(&firsts[..n], &seconds[..n], &mut even, &mut odd);
        // Both bands in one loop: the encoder is bound by each band's
        // quantise-adapt recurrence, and one loop lets the two chains overlap
        // (a loop per band measured 30% slower).
        for ((code, &even), &odd) in codes.iter_mut().zip(&even).zip(&odd) {
            let ilow = self.encode_low(add(odd, even) >> 14);
            let ihigh = self.encode_high(sub(odd, even) >> 14);
            *code = ((ihigh << 6) | ilow) as u8;
        }
    }

    /// Low band: SUBTL, QUANTL, INVQAL, LOGSCL, SCALEL, block 4.
    #[inline(always)]
    fn encode_low(&mut self, xlow: i32) -> i32 {
        let band = &mut self.low;
        let el = saturate(sub(xlow, band.s));
        // One's complement magnitude, as the reference takes it.
        let magnitude = if el >= 0 { el } else { -(el + 1) };
        let interval = quantl_interval(magnitude, band.det);
        let ilow = if el < 0 { ILN[interval] } else { ILP[interval] };
        let ilow4 = (ilow >> 2) as usize;
        let dlow = mul(band.det, QM4[ilow4]) >> 15;
        band.adapt_scale(WL_BY_CODE[ilow4], &DETL);
        band.adapt_predictor(dlow);
        ilow
    }

    /// High band: SUBTH, QUANTH, INVQAH, LOGSCH, SCALEH, block 4.
    #[inline(always)]
    fn encode_high(&mut self, xhigh: i32) -> i32 {
        let band = &mut self.high;
        let eh = saturate(sub(xhigh, band.s));
        let magnitude = if eh >= 0 { eh } else { -(eh + 1) };
        let interval = if magnitude >= mul(Q2, band.det) >> 12 { 2 } else { 1 };
        let ihigh = if eh < 0 { IHN[interval] } else { IHP[interval] };
        let dhigh = mul(band.det, QM2[ihigh as usize]) >> 15;
        band.adapt_scale(WH_BY_CODE[ihigh as usize], &DETH);
        band.adapt_predictor(dhigh);
        ihigh
    }
}

/// The decoder modes of G.722: how many bits of each octet carry the low band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G722Mode {
    /// Mode 1, 64 kbit/s: all six low-band bits.
    Kbps64,
    /// Mode 2, 56 kbit/s: the LSB of I_L is ignored (carries data).
    Kbps56,
    /// Mode 3, 48 kbit/s: the two LSBs of I_L are ignored.
    Kbps48,
}

impl G722Mode {
    /// The mode for a bit rate in bit/s (64000, 56000 or 48000).
    pub fn from_bitrate(bitrate: u32) -> Option<Self> {
        match bitrate {
            64_000 => Some(G722Mode::Kbps64),
            56_000 => Some(G722Mode::Kbps56),
            48_000 => Some(G722Mode::Kbps48),
            _ => None,
        }
    }

    /// The bit rate in bit/s.
    pub fn bitrate(self) -> u32 {
        match self {
            G722Mode::Kbps64 => 64_000,
            G722Mode::Kbps56 => 56_000,
            G722Mode::Kbps48 => 48_000,
        }
    }

    /// The low-band inverse quantiser outputs by 6-bit index `ilow`
    /// (INVQBL), using only the bits this mode decodes.
    fn low_band_steps(self) -> &'static [i32; 64] {
        match self {
            G722Mode::Kbps64 => &QM6,
            G722Mode::Kbps56 => &QM5_BY_CODE6,
            G722Mode::Kbps48 => &QM4_BY_CODE6,
        }
    }
}

/// A G.722 decoder: octets in (64 kbit/s layout), two 16 kHz samples per
/// octet out. Every octet is valid; overload saturates to the 16-bit range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct G722Decoder {
    mode: G722Mode,
    qmf: QmfHistory,
    low: Band,
    high: Band,
}

impl G722Decoder {
    /// A decoder in the reset state for `mode`.
    pub fn new(mode: G722Mode) -> Self {
        G722Decoder { mode, qmf: QmfHistory::new(), low: Band::new(32), high: Band::new(8) }
    }

    /// The mode this decoder runs in.
    pub fn mode(&self) -> G722Mode {
        self.mode
    }

    /// Returns to the reset state (keeping the mode).
    pub fn reset(&mut self) {
        *self = Self::new(self.mode);
    }

    /// Decodes `codes` into `out`, two samples per octet.
    ///
    /// Decodes `min(codes.len(), out.len() / 2)` octets and returns that count.
    #[inline(always)]
    pub fn decode_into(&mut self, codes: &[u8], out: &mut [i16]) -> usize {
        let count = codes.len().min(out.len() / 2);
        // A local copy of the state stays in registers (see `encode_into`).
        let mut decoder = self.clone();
        let steps = self.mode.low_band_steps();
        for (codes, pcm) in codes[..count].chunks(BLOCK).zip(out[..2 * count].chunks_mut(2 * BLOCK)) {
            decoder.decode_block(steps, codes, pcm);
        }
        *self = decoder;
        count
    }

    /// Decodes one block of at most `BLOCK` octets, with the mode's
    /// low-band inverse quantiser `steps`.
    #[inline(always)]
    fn decode_block(&mut self, steps: &[i32; 64], codes: &[u8], pcm: &mut [i16]) {
        let n = codes.len();
        // Both bands in one loop, as in the encoder: each band's
        // adapt-predict recurrence is a long serial chain, and one loop lets
        // the two chains overlap (a loop per band measured 1.2x slower once
        // the predictor adaptation was branch-free, despite fewer spills).
        let (mut sums, mut differences) = ([0i32; BLOCK], [0i32; BLOCK]);
        for ((&code, rlow), rhigh) in codes.iter().zip(&mut sums).zip(&mut differences) {
            *rlow = self.decode_low(steps, usize::from(code & 0x3F));
            *rhigh = self.decode_high(usize::from(code >> 6));
        }
        // Receive QMF: the sum and difference of the sub-bands feed the two
        // polyphase branches.
        for (sum, difference) in sums.iter_mut().zip(&mut differences) {
            (*sum, *difference) = (add(*sum, *difference), sub(*sum, *difference));
        }
        let (mut even, mut odd) = ([0i32; BLOCK], [0i32; BLOCK]);
        self.qmf.filter_block(&sums[..n], &differences[..n], &mut even, &mut odd);
        for ((pair, &even), &odd) in pcm.chunks_exact_mut(2).zip(&even).zip(&odd) {
            pair[0] = saturate(odd >> 11) as i16;
            pair[1] = saturate(even >> 11) as i16;
        }
    }

    /// Low band: INVQBL, RECONS, LIMIT (output), INVQAL, LOGSCL, SCALEL, block 4.
    #[inline(always)]
    fn decode_low(&mut self, steps: &[i32; 64], ilow: usize) -> i32 {
        let band = &mut self.low;
        let reconstructed = add(band.s, mul(band.det, steps[ilow]) >> 15);
        let rlow = reconstructed.clamp(-16384, 16383);
        // The predictor always adapts on the 4-bit (48 kbit/s) part of the
        // code, so all three modes stay in step with the encoder.
        let ilow4 = ilow >> 2;
        let dlow = mul(band.det, QM4[ilow4]) >> 15;
        band.adapt_scale(WL_BY_CODE[ilow4], &DETL);
        band.adapt_predictor(dlow);
        rlow
    }

    /// High band: INVQAH, RECONS, LIMIT, LOGSCH, SCALEH, block 4.
    #[inline(always)]
    fn decode_high(&mut self, ihigh: usize) -> i32 {
        let band = &mut self.high;
        let dhigh = mul(band.det, QM2[ihigh]) >> 15;
        let rhigh = add(band.s, dhigh).clamp(-16384, 16383);
        band.adapt_scale(WH_BY_CODE[ihigh], &DETH);
        band.adapt_predictor(dhigh);
        rhigh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantl_by_division_matches_the_decision_levels() {
        // Every magnitude under every scale factor the low band can reach,
        // against the Recommendation's comparison with each level.
        for &det in &DETL {
            for magnitude in 0..=32767 {
                let below = Q6_LEVELS.iter().position(|&level| magnitude < (level * det) >> 12);
                assert_eq!(quantl_interval(magnitude, det), 1 + below.unwrap_or(Q6_LEVELS.len()), "m={magnitude} det={det}");
            }
        }
    }

    #[test]
    fn saturations_left_out_cannot_trigger() {
        // UPZERO: every 16-bit coefficient, leaked and stepped either way.
        for b in i32::from(i16::MIN)..=i32::from(i16::MAX) {
            for step in [-128, 0, 128] {
                let next = step + ((b * 32640) >> 15);
                assert_eq!(next, saturate(next), "b={b} step={step}");
            }
        }
        // DELAYA: the doubled quantised difference of either band.
        for (scales, steps) in [(&DETL[..], &QM4[..]), (&DETH[..], &QM2[..])] {
            for &det in scales {
                for &step in steps {
                    let dx = (det * step) >> 15;
                    assert!((2 * dx).abs() <= 20456, "det={det} step={step}");
                }
            }
        }
    }

    #[test]
    fn modes_round_trip_through_bitrates() {
        for mode in [G722Mode::Kbps64, G722Mode::Kbps56, G722Mode::Kbps48] {
            assert_eq!(G722Mode::from_bitrate(mode.bitrate()), Some(mode));
        }
        assert_eq!(G722Mode::from_bitrate(32_000), None);
    }

    #[test]
    fn decoder_survives_every_octet_repeated() {
        // Each constant stream drives the adaptation to its limits.
        for mode in [G722Mode::Kbps64, G722Mode::Kbps56, G722Mode::Kbps48] {
            for code in 0..=255u8 {
                let mut decoder = G722Decoder::new(mode);
                let mut out = [0i16; 2000];
                assert_eq!(decoder.decode_into(&[code; 1000], &mut out), 1000);
            }
        }
    }

    #[test]
    fn encoder_survives_full_scale_square_and_noise() {
        let mut encoder = G722Encoder::new();
        let mut state = 12345u32;
        let pcm: Vec<i16> = (0..20_000)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i < 10_000 { if (i / 16) % 2 == 0 { i16::MAX } else { i16::MIN } } else { (state >> 16) as i16 }
            })
            .collect();
        let mut codes = vec![0u8; 10_000];
        assert_eq!(encoder.encode_into(&pcm, &mut codes), 10_000);
        let mut again = G722Encoder::new();
        let mut split = vec![0u8; 10_000];
        again.encode_into(&pcm[..320], &mut split[..160]);
        again.encode_into(&pcm[320..], &mut split[160..]);
        assert_eq!(codes, split);
    }

    #[test]
    fn odd_sample_is_left_and_short_output_limits() {
        let mut encoder = G722Encoder::new();
        assert_eq!(encoder.encode_into(&[1, 2, 3], &mut [0; 4]), 1);
        assert_eq!(encoder.encode_into(&[1, 2, 3, 4], &mut [0; 1]), 1);
        let mut decoder = G722Decoder::new(G722Mode::Kbps64);
        assert_eq!(decoder.decode_into(&[0xFF; 4], &mut [0; 5]), 2);
    }

    /// A small deterministic generator for the operation-sequence tests.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_operation_sequences_never_panic_and_stream_consistently() {
        // Random octets in random chunk sizes, with resets, in every mode;
        // in debug builds every unchecked-looking operation is overflow
        // checked, so this also tests the module's arithmetic bounds.
        let mut state = 0x722_u64;
        for mode in [G722Mode::Kbps64, G722Mode::Kbps56, G722Mode::Kbps48] {
            let codes: Vec<u8> = (0..20_000).map(|_| xorshift(&mut state) as u8).collect();
            let mut whole = vec![0i16; 2 * codes.len()];
            G722Decoder::new(mode).decode_into(&codes, &mut whole);
            let mut decoder = G722Decoder::new(mode);
            let mut pieces = vec![0i16; 2 * codes.len()];
            let mut at = 0;
            while at < codes.len() {
                let n = (xorshift(&mut state) % 700) as usize;
                let end = (at + n).min(codes.len());
                decoder.decode_into(&codes[at..end], &mut pieces[2 * at..2 * end]);
                at = end;
            }
            assert_eq!(whole, pieces);
            decoder.reset();
            assert_eq!(decoder, G722Decoder::new(mode));
        }
        let pcm: Vec<i16> = (0..40_000)
            .map(|i| match (i / 4000) % 3 {
                0 => xorshift(&mut state) as i16,
                1 => [i16::MIN, i16::MAX][(i / 7) % 2],
                _ => (xorshift(&mut state) % 64) as i16 - 32,
            })
            .collect();
        let mut codes = vec![0u8; pcm.len() / 2];
        let mut encoder = G722Encoder::new();
        let mut at = 0;
        while at < codes.len() {
            let n = (xorshift(&mut state) % 500) as usize;
            let end = (at + n).min(codes.len());
            encoder.encode_into(&pcm[2 * at..2 * end], &mut codes[at..end]);
            at = end;
        }
        let mut once = vec![0u8; codes.len()];
        G722Encoder::new().encode_into(&pcm, &mut once);
        assert_eq!(codes, once);
    }
}
