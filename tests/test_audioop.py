"""rtpcore.audioop against CPython's own audioop module (the C code that
audioop-lts ports to 3.13+), exhaustively where the domain allows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import shared_data
from rtpcore import audioop, g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop as stdlib_audioop  # removed in 3.13: the reference while we run on 3.11/3.12

ALL_CODES = bytes(range(256))
ENCODERS = ["lin2ulaw", "lin2alaw"]
DECODERS = ["ulaw2lin", "alaw2lin"]


def fragments(width: int) -> list[bytes]:
    """Every sample value for widths 1 and 2; every 24-bit value for width 3;
    for width 4 every top-16-bit value with random low bits plus edges."""
    if width == 1:
        return [np.arange(-128, 128, dtype=np.int8).tobytes()]
    if width == 2:
        return [np.arange(-32768, 32768, dtype=np.int16).tobytes()]
    if width == 3:
        values = np.arange(-(1 << 23), 1 << 23, dtype=np.int32)
        return [values.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()]
    rng = np.random.default_rng(4)
    top = np.arange(-32768, 32768, dtype=np.int64) << 16
    low = rng.integers(0, 1 << 16, top.size)
    edges = np.array([-(1 << 31), (1 << 31) - 1, 0, -1, 1], dtype=np.int64)
    return [np.concatenate([top | low, top, edges]).astype(np.int32).tobytes()]


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("name", ENCODERS)
def test_encoders_are_byte_identical(name: str, width: int) -> None:
    for fragment in fragments(width):
        assert getattr(audioop, name)(fragment, width) == getattr(stdlib_audioop, name)(
            fragment, width
        )


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("name", DECODERS)
def test_decoders_are_byte_identical(name: str, width: int) -> None:
    assert getattr(audioop, name)(ALL_CODES, width) == getattr(stdlib_audioop, name)(
        ALL_CODES, width
    )


@pytest.mark.parametrize("name", DECODERS)
def test_16_bit_decoding_at_every_length(name: str) -> None:
    # Width 2 runs the vectorised kernel: whole blocks and every tail length.
    codes = np.random.default_rng(7).integers(0, 256, 300, dtype=np.uint8).tobytes()
    for length in range(len(codes) + 1):
        fragment = codes[:length]
        assert getattr(audioop, name)(fragment, 2) == getattr(stdlib_audioop, name)(fragment, 2)


def test_audioop_ulaw_rounding_pinned_on_every_disputed_input() -> None:
    diff = shared_data.shared_json("vectors", "g711", "g711_crosscheck.json")["laws"]["ulaw"]
    g191 = diff["audioop_vs_itu_g191"]
    assert g191["count"] == 508 and g191["positive_or_zero_inputs"] == 0
    pcm = np.array(g191["inputs"], np.int16)
    assert list(audioop.lin2ulaw(pcm.tobytes(), 2)) == g191["codes_first"]
    assert list(g711.ulaw_encode(pcm)) == g191["codes_second"]
    spandsp = diff["spandsp_vs_audioop_encode"]
    pcm = np.array(spandsp["inputs"], np.int16)
    assert list(audioop.lin2ulaw(pcm.tobytes(), 2)) == spandsp["codes_second"]


@pytest.mark.parametrize("name", ENCODERS + DECODERS)
def test_errors_match_audioop(name: str) -> None:
    ours, theirs = getattr(audioop, name), getattr(stdlib_audioop, name)
    for fragment, width in [
        (b"\0" * 4, 0),
        (b"\0" * 4, 5),
        (b"\0" * 4, -1),
        (b"\0" * 3, 2),
        (b"\0" * 5, 4),
    ]:
        try:
            expected = theirs(fragment, width)
        except stdlib_audioop.error as exc:
            with pytest.raises(audioop.error, match=str(exc)):
                ours(fragment, width)
        else:
            assert ours(fragment, width) == expected
    for fragment, width in [("text", 2), (b"\0\0", 2.0), (b"\0\0", "2")]:
        with pytest.raises(TypeError):
            theirs(fragment, width)
        with pytest.raises(TypeError):
            ours(fragment, width)  # type: ignore[arg-type]


def test_any_buffer_is_a_fragment() -> None:
    pcm = np.arange(-1000, 1000, 7, dtype=np.int16)
    assert audioop.lin2ulaw(pcm, 2) == stdlib_audioop.lin2ulaw(pcm.tobytes(), 2)
    assert audioop.lin2alaw(memoryview(bytearray(pcm.tobytes())), 2) == stdlib_audioop.lin2alaw(
        pcm.tobytes(), 2
    )
