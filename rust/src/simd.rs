//! Run-time selection of AVX2 builds of the core's DSP kernels.
//!
//! The core crate stays free of `unsafe` and of CPU detection; its kernels
//! are plain loops marked `#[inline(always)]`, so a wrapper here compiled
//! with `#[target_feature(enable = "avx2")]` gets its own copy of the loop
//! vectorised for AVX2. `avx2_dispatch!` defines a function returning the best
//! variant for this CPU, chosen once.

/// `avx2_dispatch!(pub fn name(arg: Type, ...) -> Ret = path::to::kernel);`
/// defines `name()`, which returns `kernel` compiled for AVX2 when the CPU has
/// it and the baseline build otherwise.
macro_rules! avx2_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $kernel:path;) => {
        $(#[$meta])*
        $vis fn $name() -> fn($($ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $kernel($($arg),*)
                }
                fn avx2_entry($($arg: $ty),*) -> $ret {
                    // SAFETY: only chosen below after `is_x86_feature_detected!("avx2")`.
                    unsafe { avx2($($arg),*) }
                }
                static CHOSEN: std::sync::OnceLock<fn($($ty),*) -> $ret> = std::sync::OnceLock::new();
                *CHOSEN.get_or_init(|| {
                    if std::arch::is_x86_feature_detected!("avx2") {
                        avx2_entry
                    } else {
                        $kernel
                    }
                })
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                $kernel
            }
        }
    };
}

pub(crate) use avx2_dispatch;

/// G.711 decoding with AVX2 byte shuffles, 32 codes per step.
///
/// A G.711 code is a sign, a 3-bit segment and a 4-bit step, and for both
/// laws the decoded sample is `step * A + B` with `A` and `B` depending only
/// on sign and segment, the code's high nibble (μ-law: `A = ±8 << segment`,
/// `B = ±132 * (2^segment - 1)`; A-law similar). Two 16-entry tables looked
/// up with `vpshufb` and one 16-bit multiply-add decode 32 codes in about 20
/// instructions, ~3x the compiler-vectorised arithmetic of the core. The
/// tables are derived from the core's scalar decoder, so both agree by
/// construction (and the tests check all 256 codes through this path).
#[cfg(target_arch = "x86_64")]
pub mod g711_avx2 {
    use rtpcore_proto::codec::g711;
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// A G.711 law, for building its tables at compile time (a `const fn`
    /// cannot call a decoder through a function pointer).
    #[derive(Clone, Copy)]
    pub enum Law {
        /// μ-law.
        Ulaw,
        /// A-law.
        Alaw,
    }

    impl Law {
        const fn decode(self, code: u8) -> i16 {
            match self {
                Law::Ulaw => g711::ulaw_decode(code),
                Law::Alaw => g711::alaw_decode(code),
            }
        }

        /// The XOR that turns a code into `high nibble << 4 | step`: μ-law's
        /// bits are inverted, A-law's even bits toggled.
        const fn mask(self) -> u8 {
            match self {
                Law::Ulaw => 0xFF,
                Law::Alaw => 0x55,
            }
        }
    }

    /// `A` and `B` by high nibble, split into low and high bytes for `vpshufb`,
    /// built at compile time (constants in the kernel, not a `OnceLock`
    /// checked and read on every call).
    #[repr(C, align(16))]
    pub struct NibbleTables {
        a_lo: [u8; 16],
        a_hi: [u8; 16],
        b_lo: [u8; 16],
        b_hi: [u8; 16],
        mask: u8,
    }

    impl NibbleTables {
        /// The tables of `law`, from its scalar decoder.
        pub const fn new(law: Law) -> Self {
            let mask = law.mask();
            let mut tables = NibbleTables { a_lo: [0; 16], a_hi: [0; 16], b_lo: [0; 16], b_hi: [0; 16], mask };
            let mut high = 0;
            while high < 16 {
                let b = law.decode(((high as u8) << 4) ^ mask);
                let a = law.decode((((high as u8) << 4) | 1) ^ mask).wrapping_sub(b);
                [tables.a_lo[high], tables.a_hi[high]] = a.to_le_bytes();
                [tables.b_lo[high], tables.b_hi[high]] = b.to_le_bytes();
                high += 1;
            }
            tables
        }
    }

    /// Decodes `min(codes.len(), out.len())` codes into `out` (written, never
    /// read: it may be uninitialised), the last `count % 32` by `scalar`
    /// (generic so that it is inlined: through a function pointer the tail
    /// of a 10 ms frame, 16 codes, cost more than its 64 vector codes); the
    /// caller has checked that the CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub fn decode(tables: &NibbleTables, codes: &[u8], out: &mut [MaybeUninit<i16>], scalar: impl Fn(u8) -> i16) -> usize {
        let count = codes.len().min(out.len());
        let whole = count / 32 * 32;
        let broadcast = |t: &[u8; 16]| {
            // SAFETY: reads exactly 16 bytes from a 16-byte array.
            let lane = unsafe { _mm_loadu_si128(t.as_ptr().cast()) };
            _mm256_broadcastsi128_si256(lane)
        };
        let (a_lo, a_hi, b_lo, b_hi) = (broadcast(&tables.a_lo), broadcast(&tables.a_hi), broadcast(&tables.b_lo), broadcast(&tables.b_hi));
        let mask = _mm256_set1_epi8(tables.mask as i8);
        let nibble = _mm256_set1_epi8(0x0F);
        let zero = _mm256_setzero_si256();
        for start in (0..whole).step_by(32) {
            // SAFETY: `start + 32 <= whole <= codes.len()`: 32 readable bytes.
            let raw = unsafe { _mm256_loadu_si256(codes.as_ptr().add(start).cast()) };
            // Order the 8-byte quarters 0, 2, 1, 3 so that the in-lane
            // unpacks below produce samples 0..16 and 16..32 in order.
            let x = _mm256_xor_si256(_mm256_permute4x64_epi64::<0b11_01_10_00>(raw), mask);
            let high = _mm256_and_si256(_mm256_srli_epi16::<4>(x), nibble);
            let step = _mm256_and_si256(x, nibble);
            let (al, ah) = (_mm256_shuffle_epi8(a_lo, high), _mm256_shuffle_epi8(a_hi, high));
            let (bl, bh) = (_mm256_shuffle_epi8(b_lo, high), _mm256_shuffle_epi8(b_hi, high));
            let first = _mm256_add_epi16(
                _mm256_mullo_epi16(_mm256_unpacklo_epi8(step, zero), _mm256_unpacklo_epi8(al, ah)),
                _mm256_unpacklo_epi8(bl, bh),
            );
            let second = _mm256_add_epi16(
                _mm256_mullo_epi16(_mm256_unpackhi_epi8(step, zero), _mm256_unpackhi_epi8(al, ah)),
                _mm256_unpackhi_epi8(bl, bh),
            );
            // SAFETY: `start + 32 <= whole <= out.len()`: 32 writable i16.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().add(start).cast(), first);
                _mm256_storeu_si256(out.as_mut_ptr().add(start + 16).cast(), second);
            }
        }
        for (sample, &code) in out[whole..count].iter_mut().zip(&codes[whole..count]) {
            sample.write(scalar(code));
        }
        count
    }
}
