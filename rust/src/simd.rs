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
