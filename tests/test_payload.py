"""RFC 4733 telephone events and RFC 3389 comfort noise payloads."""

from __future__ import annotations

import doctest
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rtpcore.payload
from rtpcore.errors import ParseError
from rtpcore.payload import ComfortNoise, TelephoneEvent


@pytest.mark.parametrize("end", [False, True])
def test_every_event_code_and_volume_round_trips(end: bool) -> None:
    for event in range(256):
        for volume in range(64):
            e = TelephoneEvent(event, end=end, volume=volume, duration=event * 257)
            wire = bytes(e)
            assert wire == bytes([event, (0x80 if end else 0) | volume]) + (event * 257).to_bytes(2, "big")
            assert TelephoneEvent.parse(wire) == e


def test_dtmf_digits_are_events_0_to_15() -> None:
    for code, digit in enumerate("0123456789*#ABCD"):
        assert TelephoneEvent(digit).event == code
        assert TelephoneEvent(digit.lower()).event == code
        assert TelephoneEvent(code).digit == digit
    assert TelephoneEvent(16).digit is None


def test_reserved_bit_is_ignored() -> None:
    assert TelephoneEvent.parse(b"\x05\xca\x03\x20") == TelephoneEvent(5, end=True, volume=10, duration=800)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"event": 256}, "event"),
        ({"event": "x"}, "DTMF"),
        ({"event": "12"}, "DTMF"),
        ({"event": 1, "volume": 64}, "volume"),
        ({"event": 1, "duration": 65536}, "duration"),
        ({"event": 1, "volume": 1 << 70}, "volume"),
    ],
)
def test_bad_event_arguments_are_named(kwargs: dict[str, Any], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        TelephoneEvent(**kwargs)


@pytest.mark.parametrize("wire", [b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_event_payloads_must_be_four_bytes(wire: bytes) -> None:
    with pytest.raises(ParseError) as info:
        TelephoneEvent.parse(wire)
    assert (info.value.layer, info.value.field) == ("payload", "length")


@given(st.integers(0, 127), st.lists(st.integers(0, 255), max_size=12))
def test_comfort_noise_round_trips(level: int, coefficients: list[int]) -> None:
    cn = ComfortNoise(level, coefficients)
    assert bytes(cn) == bytes([level, *coefficients])
    assert ComfortNoise.parse(bytes(cn)) == cn
    assert cn.coefficients == tuple(coefficients)
    assert eval(repr(cn), {"ComfortNoise": ComfortNoise}) == cn


def test_bad_comfort_noise() -> None:
    for wire, offset in [(b"", 0), (b"\x80\x01", 0)]:
        with pytest.raises(ParseError) as info:
            ComfortNoise.parse(wire)
        assert (info.value.layer, info.value.field, info.value.offset) == ("payload", "level", offset)
    with pytest.raises(ValueError, match="level"):
        ComfortNoise(128)
    with pytest.raises(ValueError, match="coefficients"):
        ComfortNoise(1, [256])


@pytest.mark.parametrize("convert", [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, dtype=np.uint8)])
def test_every_buffer_type_parses_alike(convert: Any) -> None:
    assert TelephoneEvent.parse(convert(b"\x0b\x8a\x01\x40")) == TelephoneEvent("#", end=True, duration=320)
    assert ComfortNoise.parse(convert(b"\x28\x01")) == ComfortNoise(40, [1])


def test_module_examples() -> None:
    assert doctest.testmod(rtpcore.payload).failed == 0


def test_payloads_pickle() -> None:
    import pickle

    for value in (TelephoneEvent("#", end=True, duration=400), ComfortNoise(30, [1, 2, 3])):
        assert pickle.loads(pickle.dumps(value)) == value
