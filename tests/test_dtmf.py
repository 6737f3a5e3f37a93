"""DTMF detection against the ITU-T Q.24 limits (frequency deviation, twist,
duration, pause, level), on every speech file in the shared audio (no false
digits), and generation round trips."""

from __future__ import annotations

import wave

import numpy as np
import pytest

import shared_data
from rtpcore import dtmf

LOW = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770, "B": 770,
       "7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941, "#": 941, "D": 941}  # fmt: skip
HIGH = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336, "0": 1336,
        "3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633, "C": 1633, "D": 1633}  # fmt: skip
DIGITS = "123A456B789C*0#D"


def tone(digit: str, rate: int = 8000, ms: float = 60, low_dev: float = 0.0, high_dev: float = 0.0,
         low_db: float = -10, high_db: float = -8) -> np.ndarray:  # fmt: skip
    """A DTMF tone with the given relative frequency deviations and levels."""
    t = np.arange(int(rate * ms / 1000)) / rate
    low = 32767 * 10 ** (low_db / 20) * np.sin(2 * np.pi * LOW[digit] * (1 + low_dev) * t)
    high = 32767 * 10 ** (high_db / 20) * np.sin(2 * np.pi * HIGH[digit] * (1 + high_dev) * t)
    return low + high


def silence(ms: float, rate: int = 8000) -> np.ndarray:
    return np.zeros(int(rate * ms / 1000))


def detect(signal: np.ndarray, rate: int = 8000, chunk: int = 160) -> list[dtmf.DTMFEvent]:
    pcm = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    detector = dtmf.DTMFDetector(rate)
    events = [e for i in range(0, len(pcm), chunk) for e in detector.process(pcm[i : i + chunk])]
    return events + detector.flush()


def digits_of(signal: np.ndarray, rate: int = 8000) -> str:
    return "".join(e.digit for e in detect(signal, rate))


def padded(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate([silence(50), *parts, silence(50)])


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_generate_then_detect_every_digit(rate: int) -> None:
    pcm = dtmf.generate(DIGITS, rate, tone_ms=50, pause_ms=50)
    assert pcm.dtype == np.int16 and len(pcm) == len(DIGITS) * rate // 10
    events = detect(pcm, rate)
    assert "".join(e.digit for e in events) == DIGITS
    for i, event in enumerate(events):
        assert abs(event.start - i * 0.1) < 0.008 and abs(event.end - (i * 0.1 + 0.05)) < 0.008


@pytest.mark.parametrize("deviation", [-0.015, 0.015])
def test_accepts_frequency_deviation_of_1_5_percent(deviation: float) -> None:
    for digit in DIGITS:
        assert digits_of(padded(tone(digit, low_dev=deviation, high_dev=deviation))) == digit, digit
        assert digits_of(padded(tone(digit, low_dev=-deviation, high_dev=deviation))) == digit, digit


@pytest.mark.parametrize("deviation", [-0.035, 0.035])
def test_rejects_frequency_deviation_of_3_5_percent(deviation: float) -> None:
    for digit in DIGITS:
        assert digits_of(padded(tone(digit, low_dev=deviation))) == "", digit
        assert digits_of(padded(tone(digit, high_dev=deviation))) == "", digit


def test_twist_limits() -> None:
    for digit in DIGITS:
        assert digits_of(padded(tone(digit, low_db=-15, high_db=-8.5))) == digit  # normal twist 6.5 dB
        assert digits_of(padded(tone(digit, low_db=-8, high_db=-11.5))) == digit  # reverse twist 3.5 dB
        assert digits_of(padded(tone(digit, low_db=-20, high_db=-8))) == ""  # normal twist 12 dB
        assert digits_of(padded(tone(digit, low_db=-8, high_db=-15))) == ""  # reverse twist 7 dB


def test_minimum_duration() -> None:
    for digit in DIGITS:
        assert digits_of(padded(tone(digit, ms=40))) == digit
        assert digits_of(padded(tone(digit, ms=23))) == ""


def test_interdigit_pause_and_dropouts() -> None:
    for digit in DIGITS:
        assert digits_of(padded(tone(digit), silence(40), tone(digit))) == digit * 2
    for digit in DIGITS:
        # A 10 ms dropout (with the phase jump of a restarted tone) is bridged.
        assert digits_of(padded(tone(digit, ms=50), silence(10), tone(digit, ms=50))) == digit
    assert digits_of(padded(tone("1"), tone("9"))) == "19"  # no pause at all


def test_level_limits() -> None:
    assert digits_of(padded(tone("8", low_db=-32, high_db=-30))) == "8"
    assert digits_of(padded(tone("8", low_db=-50, high_db=-48))) == ""


def test_detects_through_noise() -> None:
    rng = np.random.default_rng(24)
    signal = padded(*(np.concatenate([tone(d, ms=60), silence(60)]) for d in DIGITS))
    noise = rng.normal(0, 32767 * 10 ** (-30 / 20), len(signal))  # ~20 dB below the tones
    assert digits_of(signal + noise) == DIGITS


def speech_files() -> list[str]:
    return sorted(p.name for p in shared_data.shared_dir().joinpath("audio").glob("*.wav"))


@pytest.mark.parametrize("name", speech_files())
def test_no_false_digits_in_speech(name: str) -> None:
    with wave.open(str(shared_data.shared_path("audio", name))) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert detect(pcm.astype(np.float64), rate) == []
    # Speech around a digit does not hide it or add others.
    mixed = np.concatenate([pcm[: rate], tone("7", rate=rate, ms=80), pcm[rate : 2 * rate]])
    assert digits_of(mixed, rate) == "7"


def test_current_reports_a_digit_in_progress() -> None:
    detector = dtmf.DTMFDetector(8000)
    assert detector.current is None
    detector.process(np.round(padded(tone("#", ms=200))[:1200]).astype(np.int16))
    current = detector.current
    assert current is not None and current[0] == "#" and abs(current[1] - 0.05) < 0.008
    assert [e.digit for e in detector.flush()] == ["#"]
    assert detector.current is None


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="sample_rate: 4000 Hz is not supported"):
        dtmf.DTMFDetector(4000)
    with pytest.raises(ValueError, match="digits: 'x' is not a DTMF digit"):
        dtmf.generate("12x")
    with pytest.raises(ValueError, match="tone_ms: -1"):
        dtmf.generate("1", tone_ms=-1)
    with pytest.raises(ValueError, match="low_dbfs: 3"):
        dtmf.generate("1", low_dbfs=3)
    with pytest.raises(TypeError, match="pcm: expected an int16 array"):
        dtmf.DTMFDetector(8000).process(np.zeros(10))
