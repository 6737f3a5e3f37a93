"""Resampling speed against libsoxr (the `soxr` package) at its HQ setting,
per 20 ms frame (streaming) and per 10 s buffer, with the quality figures of
both (passband ripple, stopband attenuation, sweep aliasing) recorded in
``extra_info`` next to the timings. The resamplers are made in setup."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rtpcore.resample import Resampler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import resample_quality as quality  # noqa: E402

PAIRS = [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (48000, 16000), (16000, 48000)]


def run_rtpcore(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    resampler = Resampler(in_rate, out_rate)
    return np.concatenate([resampler.process(x), resampler.flush()])


def run_soxr(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    import soxr

    return np.asarray(soxr.resample(x, in_rate, out_rate, quality="HQ"))


RUNS = {"rtpcore": run_rtpcore, "soxr": run_soxr}


def figures(impl: str, in_rate: int, out_rate: int) -> dict[str, float]:
    run = RUNS[impl]
    result = {
        "passband_ripple_db": round(quality.passband_ripple_db(run, in_rate, out_rate), 4),
        "stopband_db": round(quality.stopband_attenuation_db(run, in_rate, out_rate), 1),
    }
    # How far the flat passband reaches: gain of a tone at 0.95 of Nyquist.
    result["gain_at_0.95_nyquist_db"] = round(quality.tone_gain_db(run, in_rate, out_rate, 0.95), 2)
    if in_rate > out_rate:
        result["sweep_alias_db"] = round(quality.sweep_alias_db(run, in_rate, out_rate), 1)
    return result


def pcm(rate: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(rate)
    return np.clip(rng.normal(0, 4000, int(rate * seconds)), -32768, 32767).astype(np.int16)


def streaming(impl: str, in_rate: int, out_rate: int) -> Callable[[np.ndarray], np.ndarray]:
    if impl == "rtpcore":
        return Resampler(in_rate, out_rate).process
    import soxr

    return soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ").resample_chunk


@pytest.mark.parametrize("impl", list(RUNS))
@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS, ids=lambda r: str(r))
def test_frame(benchmark, in_rate: int, out_rate: int, impl: str) -> None:  # type: ignore[no-untyped-def]
    frame = pcm(in_rate, 0.02)
    process = streaming(impl, in_rate, out_rate)
    # Same total output over a second of frames, both delay-compensated.
    total = sum(len(process(frame)) for _ in range(50))
    benchmark.group = f"resample {in_rate}->{out_rate} 20ms frame"
    benchmark.extra_info["agrees"] = abs(total - out_rate) <= out_rate // 10
    benchmark(process, frame)


@pytest.mark.parametrize("impl", list(RUNS))
@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS, ids=lambda r: str(r))
def test_buffer(benchmark, in_rate: int, out_rate: int, impl: str) -> None:  # type: ignore[no-untyped-def]
    x = pcm(in_rate, 10)
    if impl == "rtpcore":
        resampler = Resampler(in_rate, out_rate)

        def run() -> np.ndarray:
            return np.concatenate([resampler.process(x), resampler.flush()])
    else:
        def run() -> np.ndarray:
            return run_soxr(x, in_rate, out_rate)

    # Agreement on a signal inside both passbands (the filters differ only
    # near Nyquist): a chirp up to 0.8 of the lower Nyquist frequency.
    t = np.arange(in_rate * 2) / in_rate
    top = 0.8 * min(in_rate, out_rate) / 2
    chirp = (0.5 * np.sin(2 * np.pi * (50 * t + (top - 50) * t**2 / (2 * t[-1])))).astype(np.float32)
    ours = (run_rtpcore if impl == "rtpcore" else run_soxr)(chirp, in_rate, out_rate).astype(np.float64)
    reference = run_soxr(chirp, in_rate, out_rate).astype(np.float64)
    middle = slice(len(reference) // 4, 3 * len(reference) // 4)
    benchmark.group = f"resample {in_rate}->{out_rate} 10s"
    benchmark.extra_info["agrees"] = len(ours) == len(reference) and bool(
        np.abs(ours[middle] - reference[middle]).max() < 1e-3
    )
    benchmark.extra_info.update(figures(impl, in_rate, out_rate))
    benchmark(run)
