"""The streaming resampler: stream bookkeeping (lengths, alignment, any
chunking), quality against the figures of libsoxr's HQ setting, and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import resample_quality as quality
from hypothesis import given, settings
from hypothesis import strategies as st
from rtpcore.resample import Resampler

PAIRS = [
    (8000, 16000),
    (16000, 8000),
    (8000, 24000),
    (24000, 16000),
    (48000, 8000),
    (16000, 48000),
    (44100, 48000),
]


def run_rtpcore(x: np.ndarray, in_rate: int, out_rate: int, q: str = "high") -> np.ndarray:
    resampler = Resampler(in_rate, out_rate, q)
    return np.concatenate([resampler.process(x), resampler.flush()])


def run_soxr_hq(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    import soxr

    return np.asarray(soxr.resample(x, in_rate, out_rate, quality="HQ"))


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_quality_at_least_soxr_hq(in_rate: int, out_rate: int) -> None:
    ours = quality.passband_ripple_db(run_rtpcore, in_rate, out_rate)
    theirs = quality.passband_ripple_db(run_soxr_hq, in_rate, out_rate)
    assert ours <= max(theirs, 0.01), (ours, theirs)
    ours = quality.stopband_attenuation_db(run_rtpcore, in_rate, out_rate)
    theirs = quality.stopband_attenuation_db(run_soxr_hq, in_rate, out_rate)
    # Both sit at the float32 noise floor; ours must not be worse by more than 3 dB.
    assert ours < -125 and ours <= theirs + 3, (ours, theirs)
    if in_rate > out_rate:
        assert quality.sweep_alias_db(run_rtpcore, in_rate, out_rate) < -120
        # Right above the new Nyquist frequency too, where a shorter or
        # weaker window would alias first.
        ours = quality.alias_near_nyquist_db(run_rtpcore, in_rate, out_rate)
        theirs = quality.alias_near_nyquist_db(run_soxr_hq, in_rate, out_rate)
        assert ours < -125 and ours <= theirs + 3, (ours, theirs)
    # The passband reaches further than soxr HQ's (which is -3 dB at 0.95).
    assert quality.tone_gain_db(run_rtpcore, in_rate, out_rate, 0.95) > quality.tone_gain_db(
        run_soxr_hq, in_rate, out_rate, 0.95
    )


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_stream_length_and_alignment(in_rate: int, out_rate: int) -> None:
    n = in_rate // 2 + 13
    t = np.arange(n) / in_rate
    x = (20000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    resampler = Resampler(in_rate, out_rate)
    step = in_rate // 50
    y = np.concatenate(
        [resampler.process(x[i : i + step]) for i in range(0, n, step)] + [resampler.flush()]
    )
    # round(n * out_rate / in_rate), halves rounded up
    assert y.dtype == np.int16 and len(y) == (n * out_rate + in_rate // 2) // in_rate
    ideal = 20000 * np.sin(2 * np.pi * 440 * np.arange(len(y)) / out_rate)
    middle = slice(len(y) // 4, 3 * len(y) // 4)
    assert np.abs(y[middle] - ideal[middle]).max() < 3


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 24000), (48000, 16000), (44100, 48000)])
@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 900), min_size=1, max_size=10))
def test_chunking_does_not_change_the_output(in_rate: int, out_rate: int, cuts: list[int]) -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(-20000, 20000, 3000, dtype=np.int16)
    whole = run_rtpcore(x, in_rate, out_rate)
    resampler = Resampler(in_rate, out_rate)
    bounds = sorted({0, len(x), *(min(c * 3, len(x)) for c in cuts)})
    parts = [resampler.process(x[a:b]) for a, b in itertools.pairwise(bounds)] + [resampler.flush()]
    assert np.array_equal(np.concatenate(parts), whole)


def test_float32_in_float32_out_and_buffers() -> None:
    x = (np.sin(np.arange(1600) / 7) * 0.3).astype(np.float32)
    resampler = Resampler(16000, 8000)
    y = np.concatenate([resampler.process(x), resampler.flush()])
    assert y.dtype == np.float32 and len(y) == 800
    pcm = (x * 32767).astype(np.int16)
    as_array = run_rtpcore(pcm, 16000, 8000)
    resampler = Resampler(16000, 8000)
    as_bytes = np.concatenate([resampler.process(pcm.tobytes()), resampler.flush()])
    assert np.array_equal(as_array, as_bytes)


def test_equal_rates_pass_through_and_flush_resets() -> None:
    x = np.arange(-500, 500, dtype=np.int16)
    resampler = Resampler(16000, 16000)
    assert np.array_equal(resampler.process(x), x) and len(resampler.flush()) == 0
    resampler = Resampler(8000, 16000)
    first = np.concatenate([resampler.process(x), resampler.flush()])
    second = np.concatenate([resampler.process(x), resampler.flush()])
    assert np.array_equal(first, second)
    assert resampler.latency > 0 and resampler.in_rate == 8000 and resampler.out_rate == 16000


def test_saturates_instead_of_wrapping() -> None:
    square = np.tile(np.r_[np.full(20, 32767), np.full(20, -32768)], 100).astype(np.int16)
    y = run_rtpcore(square, 8000, 48000)
    assert y.max() == 32767 and y.min() == -32768  # Gibbs overshoot clipped


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="in_rate: 7000 Hz is not supported"):
        Resampler(7000, 8000)
    with pytest.raises(ValueError, match="out_rate: -8000 Hz is not a sample rate"):
        Resampler(8000, -8000)
    with pytest.raises(ValueError, match="quality: 'best' is not one of"):
        Resampler(8000, 16000, "best")
    resampler = Resampler(8000, 16000)
    with pytest.raises(TypeError, match="pcm: expected an int16 array, got dtype float64"):
        resampler.process(np.zeros(10))
    with pytest.raises(ValueError, match="pcm: 3 bytes is not a whole number"):
        resampler.process(b"abc")
    with pytest.raises(ValueError, match="pcm: array must be C-contiguous"):
        resampler.process(np.zeros(20, np.float32)[::2])


@pytest.mark.parametrize(
    ("mode", "flat_to"), [("low", 0.8), ("medium", 0.9), ("high", 0.94), ("very_high", 0.97)]
)
def test_quality_modes_meet_their_documented_figures(mode: str, flat_to: float) -> None:
    def run(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
        return run_rtpcore(x, in_rate, out_rate, mode)

    for in_rate, out_rate in [(16000, 8000), (8000, 16000)]:
        assert abs(quality.tone_gain_db(run, in_rate, out_rate, flat_to)) < 0.3
        assert quality.stopband_attenuation_db(run, in_rate, out_rate) < -135
