"""Frequency-domain quality figures for a resampler (used by the resampler
tests and by bench/bench_resample.py): passband ripple, stopband (alias or
image) attenuation, alias right above the new Nyquist frequency, and the
alias energy of a sweep."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# run(x: float32 array at in_rate, in_rate, out_rate) -> output array
Run = Callable[[np.ndarray, int, int], np.ndarray]


def _middle(y: np.ndarray) -> np.ndarray:
    return np.asarray(y, dtype=np.float64)[len(y) // 4 : 3 * len(y) // 4]


def _tone(rate: int, freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _band_energy_db(y: np.ndarray, rate: int, lo: float, hi: float, ref: float) -> float:
    """Energy of `y` between lo and hi Hz, in dB relative to `ref` (a
    Blackman-Harris window keeps the window's own leakage below -90 dB)."""
    window = np.blackman(len(y)) ** 2
    spectrum = np.abs(np.fft.rfft(y * window)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / rate)
    band = spectrum[(freqs >= lo) & (freqs <= hi)].sum()
    return float(10 * np.log10(band / ref + 1e-30))


def tone_gain_db(run: Run, in_rate: int, out_rate: int, fraction: float) -> float:
    """Gain (dB) of a tone at `fraction` of the lower Nyquist frequency."""
    freq = fraction * min(in_rate, out_rate) / 2
    y = _middle(run(_tone(in_rate, freq), in_rate, out_rate))
    return float(20 * np.log10(np.sqrt(np.mean(y**2)) / (0.5 / np.sqrt(2))))


def passband_ripple_db(run: Run, in_rate: int, out_rate: int, edge: float = 0.9) -> float:
    """Peak-to-peak gain variation (dB) of tones up to `edge` × the lower Nyquist frequency."""
    nyquist = min(in_rate, out_rate) / 2
    gains = [
        tone_gain_db(run, in_rate, out_rate, f / nyquist)
        for f in np.linspace(50, edge * nyquist, 24)
    ]
    return float(max(gains) - min(gains))


def stopband_attenuation_db(run: Run, in_rate: int, out_rate: int) -> float:
    """Worst energy (dB re the tone) that ends up where it does not belong:
    for downsampling, the aliases of tones above the new Nyquist frequency;
    for upsampling, the images above the old one."""
    nyquist = min(in_rate, out_rate) / 2
    worst = -400.0
    if in_rate > out_rate:
        for freq in np.linspace(1.05 * nyquist, 0.98 * in_rate / 2, 16):
            y = _middle(run(_tone(in_rate, freq), in_rate, out_rate))
            worst = max(worst, float(10 * np.log10(np.mean(y**2) / 0.125 + 1e-30)))
    else:
        for freq in np.linspace(100, 0.9 * nyquist, 8):
            y = _middle(run(_tone(in_rate, freq), in_rate, out_rate))
            ref = float((np.abs(np.fft.rfft(y * np.blackman(len(y)) ** 2)) ** 2).sum())
            worst = max(worst, _band_energy_db(y, out_rate, 1.05 * nyquist, out_rate / 2, ref))
    return worst


def alias_near_nyquist_db(run: Run, in_rate: int, out_rate: int) -> float:
    """Worst alias energy (dB re the tone) of tones just above the new
    Nyquist frequency (1.005 to 1.05 × it) when downsampling: the edge of
    the stopband, which `stopband_attenuation_db` starts beyond and where a
    filter with a wider transition band lets aliases through."""
    nyquist = out_rate / 2
    worst = -400.0
    for fraction in (1.005, 1.01, 1.02, 1.03, 1.04):
        y = _middle(run(_tone(in_rate, fraction * nyquist), in_rate, out_rate))
        worst = max(worst, float(10 * np.log10(np.mean(y**2) / 0.125 + 1e-30)))
    return worst


def sweep_alias_db(run: Run, in_rate: int, out_rate: int) -> float:
    """Output energy (dB re input) of a log sweep over the band that must be
    removed when downsampling (1.05 × the new Nyquist up to the old one)."""
    lo, hi = 1.05 * out_rate / 2, 0.98 * in_rate / 2
    n = in_rate * 2
    t = np.arange(n) / in_rate
    k = np.log(hi / lo) / t[-1]
    x = (0.5 * np.sin(2 * np.pi * lo * (np.exp(k * t) - 1) / k)).astype(np.float32)
    y = _middle(run(x, in_rate, out_rate))
    return float(10 * np.log10(np.mean(y**2) / np.mean(x.astype(np.float64) ** 2) + 1e-30))
