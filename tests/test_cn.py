"""RFC 3389 comfort noise: levels in dBov, spectral shape of the all-pole
model both ways, streaming, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.cn import ComfortNoiseGenerator, estimate_comfort_noise


def dbov(pcm: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) / 32768**2))


def model_spectrum_db(reflection: list[int], n: int = 256) -> np.ndarray:
    """|1/A(e^jw)|² in dB (normalised to mean 0) for quantised coefficients,
    written independently of the implementation (step-up recursion)."""
    a = np.array([1.0])
    for q in reflection:
        k = (min(q, 254) - 127) / 128
        a = np.concatenate([a, [0.0]]) + k * np.concatenate([a, [0.0]])[::-1]
    response = -20 * np.log10(np.abs(np.fft.rfft(a, 2 * n)))
    return response - response.mean()


def measured_spectrum_db(pcm: np.ndarray, n: int = 256) -> np.ndarray:
    frames = pcm[: len(pcm) // (2 * n) * 2 * n].astype(np.float64).reshape(-1, 2 * n)
    psd = (np.abs(np.fft.rfft(frames * np.hanning(2 * n), axis=1)) ** 2).mean(axis=0)
    spectrum = 10 * np.log10(psd)
    return spectrum - spectrum.mean()


@pytest.mark.parametrize("level", [0, 20, 45, 70, 100])
@pytest.mark.parametrize("reflection", [[], [30], [40, 200, 100], [10, 240, 40, 200, 90, 160]])
def test_generated_noise_has_the_level_and_shape(level: int, reflection: list[int]) -> None:
    noise = ComfortNoiseGenerator(level, reflection, seed=3).generate(64000)
    if 20 <= level <= 80:  # 0 dBov clips; below -80 dBov rounding to int16 dominates
        assert abs(dbov(noise) + level) < 0.5
    if reflection and 20 <= level <= 45:  # louder clips; deeper, the valleys sink below one LSB
        spectral_error = measured_spectrum_db(noise)[5:-5] - model_spectrum_db(reflection)[5:-5]
        assert np.abs(spectral_error).mean() < 1.5


@pytest.mark.parametrize("reflection", [[127], [50, 180], [20, 230, 60, 190, 100, 140, 120, 130]])
def test_estimate_recovers_the_model(reflection: list[int]) -> None:
    noise = ComfortNoiseGenerator(35, reflection, seed=11).generate(32000)
    level, estimated = estimate_comfort_noise(noise, order=len(reflection))
    assert level == 35
    assert max(abs(a - b) for a, b in zip(estimated, reflection)) <= 6, estimated
    # The estimate describes noise that sounds (spectrally) the same.
    again = ComfortNoiseGenerator(level, estimated, seed=12).generate(32000)
    assert np.abs(measured_spectrum_db(again) - measured_spectrum_db(noise))[5:-5].mean() < 1.5


def test_estimate_on_coloured_noise_and_silence() -> None:
    rng = np.random.default_rng(3389)
    white = rng.normal(0, 1000, 48000)
    lowpass = np.convolve(white, np.ones(4) / 4, mode="same").astype(np.int16)  # hum-like, darker noise
    level, reflection = estimate_comfort_noise(lowpass, order=8)
    assert level == round(-dbov(lowpass))
    model = model_spectrum_db(reflection)
    assert model[:20].mean() > model[-60:].mean() + 10  # the model is low-pass too
    assert estimate_comfort_noise(np.zeros(800, np.int16), order=4) == (127, [127, 127, 127, 127])
    assert estimate_comfort_noise(b"", order=0) == (127, [])


def test_streaming_and_seeds() -> None:
    whole = ComfortNoiseGenerator(40, [60, 190], seed=5).generate(1000)
    generator = ComfortNoiseGenerator(40, [60, 190], seed=5)
    assert np.array_equal(np.concatenate([generator.generate(n) for n in (1, 399, 600)]), whole)
    assert not np.array_equal(ComfortNoiseGenerator(40, [60, 190], seed=6).generate(1000), whole)
    generator.update(60)
    assert abs(dbov(generator.generate(32000)) + 60) < 0.5


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 127), st.lists(st.integers(0, 255), max_size=12))
def test_any_payload_numbers_give_bounded_noise(level: int, reflection: list[int]) -> None:
    noise = ComfortNoiseGenerator(level, reflection).generate(2000)
    assert noise.dtype == np.int16 and len(noise) == 2000


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="level: 128 is outside 0..127"):
        ComfortNoiseGenerator(128)
    with pytest.raises(ValueError, match="reflection: 256 is not an octet"):
        ComfortNoiseGenerator(40, [256])
    with pytest.raises(ValueError, match="reflection: 33 coefficients, at most 32"):
        ComfortNoiseGenerator(40, [127] * 33)
    with pytest.raises(ValueError, match="samples: -1"):
        ComfortNoiseGenerator(40).generate(-1)
    with pytest.raises(ValueError, match="order: 40 is outside"):
        estimate_comfort_noise(np.zeros(10, np.int16), order=40)
    with pytest.raises(TypeError, match="pcm: expected an int16 array"):
        estimate_comfort_noise(np.zeros(10, np.float32))
