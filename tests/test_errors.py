"""The exception tree is the contract every layer raises through."""

import pickle

import pytest

from rtpcore.errors import ParseError, RtpcoreError


def test_parse_error_is_a_value_error_and_an_rtpcore_error() -> None:
    err = ParseError("rtp version at offset 0: expected 2, got 1", 0, "rtp", "version")
    assert isinstance(err, ValueError)
    assert isinstance(err, RtpcoreError)
    assert (err.offset, err.layer, err.field) == (0, "rtp", "version")
    assert str(err) == "rtp version at offset 0: expected 2, got 1"


def test_parse_error_survives_pickling() -> None:
    err = ParseError("bad", 7, "rtcp", "length")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.offset, back.layer, back.field) == (
        ParseError, "bad", 7, "rtcp", "length")


def test_catching_value_error_catches_parse_error() -> None:
    with pytest.raises(ValueError):
        raise ParseError("bad")
