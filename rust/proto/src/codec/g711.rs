//! G.711 μ-law and A-law (ITU-T G.711), bit-exact to the ITU-T G.191 STL
//! reference code (`g711.c`), plus the μ-law rounding of CPython's `audioop`.
//!
//! The encoders and decoders are written as branch-free arithmetic on 32-bit
//! lanes rather than table lookups so that the compiler vectorises the slice
//! loops: the exponent/mantissa split of G.711 is exactly the split an IEEE
//! float makes, so one integer-to-float conversion replaces the segment search
//! (encoders), and one float-to-integer conversion replaces the segment shift
//! (μ-law decoder). All of it is exact: every value involved is an integer
//! below 2^24.
//!
//! The kernels use `wrapping_*` arithmetic on purpose: release builds keep
//! overflow checks, and a checked subtraction per sample stops the loops from
//! vectorising. Every operand is bounded (13- to 16-bit values in `i32`), and
//! the tests below check all 65,536 inputs and 256 codes.
//!
//! Codes are the octets on the wire (RFC 3551): μ-law with all bits inverted
//! (0xFF and 0x7F are ±0), A-law with the even bits toggled (0xD5 is +8,
//! 0x55 is -8).
//!
//! # The one place μ-law encoders disagree
//!
//! G.191 quantises the magnitude of a negative sample `x` as the one's
//! complement `!x = -x - 1`, i.e. it treats -1 like 0 and -4 like 3, which makes
//! the quantiser symmetric about -0.5. CPython's `audioop` first shifts to 14
//! bits (rounding towards -∞) and then negates, i.e. it uses `ceil(-x / 4)`:
//! -1, -2 and -3 already round to the first non-zero step. The two agree on
//! every non-negative input and differ on 508 negative ones, always by one
//! quantisation step. [`UlawRounding`] names the two rules;
//! `ulaw_magnitude14` is the only code that depends on it.

/// Which rule the μ-law encoder uses to quantise negative samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UlawRounding {
    /// ITU-T G.191 (the reference the standard is tested with): a negative
    /// sample is encoded like its one's complement. The default everywhere.
    ItuG191,
    /// CPython's `audioop.lin2ulaw`: arithmetic shift to 14 bits first, then
    /// negate. Needed only to be byte-identical to `audioop`.
    Audioop,
}

/// The 14-bit magnitude (0..=8191) that the μ-law quantiser sees for `x`.
#[inline(always)]
fn ulaw_magnitude14(x: i32, rounding: UlawRounding) -> i32 {
    match rounding {
        // One's complement for negatives: x ^ (x >> 31) is !x when x < 0.
        UlawRounding::ItuG191 => (x ^ (x >> 31)) >> 2,
        UlawRounding::Audioop => (x >> 2).wrapping_abs(),
    }
}

/// Encodes one 16-bit sample to a μ-law code.
///
/// The biased magnitude `m + 33` (clipped to 13 bits) is converted to `f32`:
/// its exponent is the segment plus a constant and the top four mantissa bits
/// are the step within the segment, so `bits >> 19` is `segment << 4 | step`
/// offset by a constant, and the code is that subtracted from another.
#[inline(always)]
fn ulaw_encode_i32(x: i32, rounding: UlawRounding) -> u8 {
    let biased = ulaw_magnitude14(x, rounding).wrapping_add(33).min(0x1FFF);
    let segment_and_step = ((biased as f32).to_bits() >> 19) as i32;
    // 0x8BF = 0x8F + (131 << 4): 131 is the float exponent bias (127) plus
    // the 4 low bits that segment 1 starts above; 0x8F inverts segment and step.
    let code7 = 0x8BF_i32.wrapping_sub(segment_and_step);
    // Bit 7 set for x >= 0 (codes are transmitted inverted, so positive is 1).
    (code7 | (!x >> 31 & 0x80)) as u8
}

/// Encodes one 16-bit sample to a μ-law code, exactly as ITU-T G.191.
#[inline]
pub fn ulaw_encode(x: i16) -> u8 {
    ulaw_encode_i32(i32::from(x), UlawRounding::ItuG191)
}

/// Encodes one 16-bit sample to a μ-law code with the given rounding rule.
#[inline]
pub fn ulaw_encode_with(x: i16, rounding: UlawRounding) -> u8 {
    ulaw_encode_i32(i32::from(x), rounding)
}

/// The integer value of `f`, for integer-valued `0 <= f < 2^23`.
///
/// Adding 2^23 moves the integer into the mantissa bits, so this is a float
/// add and an integer subtract: unlike `f as i32` (which saturates) it
/// vectorises with plain SSE2.
#[inline(always)]
const fn small_float_to_int(f: f32) -> i32 {
    const TWO_POW_23: f32 = 8_388_608.0;
    (f + TWO_POW_23).to_bits().wrapping_sub(TWO_POW_23.to_bits()) as i32
}

/// `2^(segment + 3) * (16 + step + 0.5)` as the float with that exponent and
/// mantissa (`segment_and_step` is `segment << 4 | step`, segment 0..=7).
///
/// Both laws decode to this shape: the step is followed by a 1 bit (half a
/// step, the middle of the quantisation interval) and the segment scales it.
#[inline(always)]
const fn segment_value(segment_and_step: u32) -> i32 {
    // Exponent 134 = 127 + 3 (the factor 8) + 4 (the four mantissa bits).
    small_float_to_int(f32::from_bits((segment_and_step << 19) + (134 << 23) + (1 << 18)))
}

/// Applies a sign bit (1 = negative) to a magnitude.
#[inline(always)]
const fn with_sign(magnitude: i32, negative_bit: u32) -> i32 {
    let mask = (negative_bit as i32).wrapping_neg();
    (magnitude ^ mask).wrapping_sub(mask)
}

/// Decodes one μ-law code to a 16-bit sample (ITU-T G.191, identical to
/// spandsp and `audioop`): `((step << 3) + 0x84) << segment) - 0x84`, which
/// is [`segment_value`] minus the bias 0x84.
#[inline(always)]
const fn ulaw_decode_i32(code: u32) -> i32 {
    let inverted = !code & 0xFF;
    // Bit 7 of the inverted code is the sign: set means negative.
    with_sign(segment_value(inverted & 0x7F).wrapping_sub(0x84), inverted >> 7)
}

/// Decodes one μ-law code to a 16-bit sample (`const`: lookup tables
/// built from it at compile time agree with it by construction).
#[inline]
pub const fn ulaw_decode(code: u8) -> i16 {
    ulaw_decode_i32(code as u32) as i16
}

/// Encodes one 16-bit sample to an A-law code, exactly as ITU-T G.191 (which
/// spandsp and `audioop` agree with on every input).
///
/// A negative sample is quantised as its one's complement, like μ-law. Below
/// 16 (12-bit magnitude) the code is the magnitude itself; above, the same
/// float split as μ-law gives segment and step.
#[inline(always)]
fn alaw_encode_i32(x: i32) -> u8 {
    let magnitude = (x ^ (x >> 31)) >> 4;
    // 0x820 = (130 << 4): float exponent bias 127 plus 3, so that magnitudes
    // 16..=31 (exponent 4) land on segment 1.
    let segmented = (((magnitude as f32).to_bits() >> 19) as i32).wrapping_sub(0x820);
    let code7 = if magnitude < 16 { magnitude } else { segmented };
    ((code7 | (!x >> 31 & 0x80)) ^ 0x55) as u8
}

/// Encodes one 16-bit sample to an A-law code.
#[inline]
pub fn alaw_encode(x: i16) -> u8 {
    alaw_encode_i32(i32::from(x))
}

/// Decodes one A-law code (ITU-T G.191, identical to spandsp and `audioop`).
///
/// Segments 1..=7 are `(((16 + step) << 4) + 8) << (segment - 1)`, which is
/// [`segment_value`]; segment 0 has no implicit leading 16 and the same step
/// size as segment 1, i.e. segment 1's value minus `16 << 4`.
#[inline(always)]
const fn alaw_decode_i32(code: u32) -> i32 {
    let toggled = (code ^ 0x55) & 0xFF;
    let segment_and_step = toggled & 0x7F;
    let magnitude = if segment_and_step < 0x10 {
        segment_value(segment_and_step | 0x10).wrapping_sub(16 << 4)
    } else {
        segment_value(segment_and_step)
    };
    // Bit 7 set means positive for A-law.
    with_sign(magnitude, (toggled >> 7) ^ 1)
}

/// Decodes one A-law code to a 16-bit sample (`const`, as [`ulaw_decode`]).
#[inline]
pub const fn alaw_decode(code: u8) -> i16 {
    alaw_decode_i32(code as u32) as i16
}

/// Encodes `pcm` to μ-law codes in `out` (ITU-T G.191).
///
/// Converts `min(pcm.len(), out.len())` samples and returns that count.
#[inline(always)]
pub fn ulaw_encode_into(pcm: &[i16], out: &mut [u8]) -> usize {
    ulaw_encode_with_into(pcm, out, UlawRounding::ItuG191)
}

/// Encodes `pcm` to μ-law codes in `out` with the given rounding rule.
///
/// Converts `min(pcm.len(), out.len())` samples and returns that count.
#[inline(always)]
pub fn ulaw_encode_with_into(pcm: &[i16], out: &mut [u8], rounding: UlawRounding) -> usize {
    for (code, &x) in out.iter_mut().zip(pcm) {
        *code = ulaw_encode_i32(i32::from(x), rounding);
    }
    pcm.len().min(out.len())
}

/// Decodes μ-law `codes` to samples in `out`.
///
/// Converts `min(codes.len(), out.len())` codes and returns that count.
#[inline(always)]
pub fn ulaw_decode_into(codes: &[u8], out: &mut [i16]) -> usize {
    for (x, &code) in out.iter_mut().zip(codes) {
        *x = ulaw_decode_i32(u32::from(code)) as i16;
    }
    codes.len().min(out.len())
}

/// Encodes `pcm` to A-law codes in `out` (ITU-T G.191).
///
/// Converts `min(pcm.len(), out.len())` samples and returns that count.
#[inline(always)]
pub fn alaw_encode_into(pcm: &[i16], out: &mut [u8]) -> usize {
    for (code, &x) in out.iter_mut().zip(pcm) {
        *code = alaw_encode_i32(i32::from(x));
    }
    pcm.len().min(out.len())
}

/// Decodes A-law `codes` to samples in `out`.
///
/// Converts `min(codes.len(), out.len())` codes and returns that count.
#[inline(always)]
pub fn alaw_decode_into(codes: &[u8], out: &mut [i16]) -> usize {
    for (x, &code) in out.iter_mut().zip(codes) {
        *x = alaw_decode_i32(u32::from(code)) as i16;
    }
    codes.len().min(out.len())
}

/// The sample width of an `audioop` fragment: signed integers of 1, 2, 3 or
/// 4 bytes in native byte order (24-bit samples packed in 3 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleWidth(usize);

impl SampleWidth {
    /// The width for `bytes` bytes per sample, or `None` unless it is 1 to 4.
    pub fn new(bytes: usize) -> Option<Self> {
        (1..=4).contains(&bytes).then_some(SampleWidth(bytes))
    }

    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        self.0
    }

    /// The top 16 bits of one sample (`sample.len()` is the width). G.711
    /// only looks at 14 (μ-law) or 13 (A-law) of them, so this loses nothing:
    /// `audioop` also encodes `sample >> (8 * width - 14)`.
    #[inline(always)]
    fn top16(sample: &[u8]) -> i16 {
        match *sample {
            [b] => i16::from(b as i8) << 8,
            [b0, b1] => i16::from_ne_bytes([b0, b1]),
            [_, mid, hi] if cfg!(target_endian = "little") => i16::from_le_bytes([mid, hi]),
            [hi, mid, _] => i16::from_be_bytes([hi, mid]),
            [b0, b1, b2, b3] => (i32::from_ne_bytes([b0, b1, b2, b3]) >> 16) as i16,
            _ => 0, // unreachable: chunks have exactly `width` (1..=4) bytes
        }
    }

    /// Writes the 16-bit `value` as one sample of this width, the low bits
    /// zero (how `audioop` widens decoded G.711).
    #[inline(always)]
    fn put16(self, value: i16, sample: &mut [u8]) {
        let [hi, lo] = value.to_be_bytes();
        match (self.0, sample) {
            (1, [b]) => *b = hi,
            (2, s) => s.copy_from_slice(&value.to_ne_bytes()),
            (3, s) if cfg!(target_endian = "little") => s.copy_from_slice(&[0, lo, hi]),
            (3, s) => s.copy_from_slice(&[hi, lo, 0]),
            (_, s) => s.copy_from_slice(&(i32::from(value) << 16).to_ne_bytes()),
        }
    }
}

/// Encodes an `audioop` fragment of `width`-byte samples with `encode`, one
/// code per whole sample in `fragment`, into `out`.
///
/// Converts `min(fragment.len() / width, out.len())` samples and returns that
/// count; a trailing partial sample is ignored.
pub fn encode_wide_into(fragment: &[u8], width: SampleWidth, out: &mut [u8], encode: impl Fn(i16) -> u8) -> usize {
    let mut count = 0;
    for (code, sample) in out.iter_mut().zip(fragment.chunks_exact(width.0)) {
        *code = encode(SampleWidth::top16(sample));
        count += 1;
    }
    count
}

/// Decodes `codes` with `decode` into `width`-byte samples in `out` (the
/// 16-bit value in the top bytes, as `audioop` does).
///
/// Converts `min(codes.len(), out.len() / width)` codes and returns that count.
pub fn decode_wide_into(codes: &[u8], width: SampleWidth, out: &mut [u8], decode: impl Fn(u8) -> i16) -> usize {
    let mut count = 0;
    for (sample, &code) in out.chunks_exact_mut(width.0).zip(codes) {
        width.put16(decode(code), sample);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ITU-T G.191 `ulaw_compress`, written the way the reference is
    /// (segment search by shifting), to pin the float formulation to it.
    fn g191_ulaw_compress(x: i16) -> u8 {
        let x = i32::from(x);
        let absno = if x < 0 { ((!x) >> 2) + 33 } else { (x >> 2) + 33 };
        let absno = absno.min(0x1FFF);
        let mut i = absno >> 6;
        let mut segno = 1;
        while i != 0 {
            segno += 1;
            i >>= 1;
        }
        let high = 8 - segno;
        let low = 0xF - ((absno >> segno) & 0xF);
        let out = (high << 4) | low;
        (if x >= 0 { out | 0x80 } else { out }) as u8
    }

    /// The ITU-T G.191 `alaw_compress`, in its reference shape.
    fn g191_alaw_compress(x: i16) -> u8 {
        let x = i32::from(x);
        let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
        if ix > 15 {
            let mut iexp = 1;
            while ix > 16 + 15 {
                ix >>= 1;
                iexp += 1;
            }
            ix -= 16;
            ix += iexp << 4;
        }
        if x >= 0 {
            ix |= 0x80;
        }
        (ix ^ 0x55) as u8
    }

    /// CPython's `st_14linear2ulaw` applied to `x >> 2`, in its own shape.
    fn audioop_lin2ulaw(x: i16) -> u8 {
        let mut pcm = i32::from(x) >> 2;
        let mask = if pcm < 0 {
            pcm = -pcm;
            0x7F
        } else {
            0xFF
        };
        pcm = pcm.min(8159) + 33;
        let ends = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
        let seg = ends.iter().position(|&e| pcm <= e).unwrap_or(8) as i32;
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        (((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask) as u8
    }

    #[test]
    fn encoders_match_reference_shapes_on_every_input() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(x), g191_ulaw_compress(x), "ulaw {x}");
            assert_eq!(alaw_encode(x), g191_alaw_compress(x), "alaw {x}");
            assert_eq!(ulaw_encode_with(x, UlawRounding::Audioop), audioop_lin2ulaw(x), "audioop {x}");
        }
    }

    #[test]
    fn roundings_differ_only_on_508_negative_inputs() {
        let differing: Vec<i16> = (i16::MIN..=i16::MAX)
            .filter(|&x| ulaw_encode(x) != ulaw_encode_with(x, UlawRounding::Audioop))
            .collect();
        assert_eq!(differing.len(), 508);
        assert!(differing.iter().all(|&x| x < 0));
        assert_eq!(ulaw_encode_with(-1, UlawRounding::Audioop), 0x7E);
        assert_eq!(ulaw_encode(-1), 0x7F);
    }

    #[test]
    fn fixed_points() {
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
    }

    #[test]
    fn decode_encode_is_identity_on_codes() {
        // Every code but μ-law's negative zero (0x7F, which decodes to 0 and
        // re-encodes as +0) survives a decode/encode round trip.
        for code in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(code));
            assert!(back == code || (code == 0x7F && back == 0xFF), "ulaw {code:#04x}");
            assert_eq!(alaw_encode(alaw_decode(code)), code, "alaw {code:#04x}");
        }
    }

    #[test]
    fn slice_functions_convert_the_shorter_length() {
        let pcm = [0i16, -1, 1000, -1000];
        let mut codes = [0u8; 3];
        assert_eq!(ulaw_encode_into(&pcm, &mut codes), 3);
        assert_eq!(codes, [0xFF, 0x7F, ulaw_encode(1000)]);
        let mut back = [7i16; 5];
        assert_eq!(alaw_decode_into(&[0xD5, 0x55], &mut back), 2);
        assert_eq!(back, [8, -8, 7, 7, 7]);
    }
    #[test]
    fn wide_samples_use_the_top_bits() {
        let w = |n| SampleWidth::new(n).expect("valid width");
        assert_eq!(SampleWidth::new(0), None);
        assert_eq!(SampleWidth::new(5), None);
        let mut codes = [0u8; 2];
        // 8-bit samples are signed and fill the top byte.
        assert_eq!(encode_wide_into(&[0x80, 0x7F], w(1), &mut codes, alaw_encode), 2);
        assert_eq!(codes, [alaw_encode(-32768), alaw_encode(0x7F00)]);
        // 24-bit little-endian: the top two bytes; -1 stays -1.
        let sample24 = [0x00, 0x34, 0x12, 0xFF, 0xFF, 0xFF];
        assert_eq!(encode_wide_into(&sample24, w(3), &mut codes, ulaw_encode), 2);
        assert_eq!(codes, [ulaw_encode(0x1234), ulaw_encode(-1)]);
        let mut wide = [0u8; 8];
        assert_eq!(decode_wide_into(&[0xD5, 0x2A], w(4), &mut wide, alaw_decode), 2);
        assert_eq!(wide, [0, 0, 8, 0, 0, 0, 0x00, 0x82]);
        let mut narrow = [0u8; 1];
        assert_eq!(decode_wide_into(&[0x2A, 0x2A], w(1), &mut narrow, alaw_decode), 1);
        assert_eq!(narrow, [0x82]);
    }
}
