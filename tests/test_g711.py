"""G.711: exhaustive against spandsp's tables patched to ITU-T G.191, the
G.191/audioop disagreements pinned, and the Python surface (buffers, out=,
errors)."""

from __future__ import annotations

import array
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import shared_data
from rtpcore import g711
from rtpcore.errors import AudioopError

ALL_INPUTS = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def spandsp_encode_table(law: str) -> np.ndarray:
    """spandsp 0.0.6's encoder output for every int16, indexed by x + 32768."""
    return np.frombuffer(shared_data.shared_bytes("vectors", "g711", f"{law}_encode.u8"), np.uint8)


def itu_ulaw_encode_table() -> np.ndarray:
    """spandsp's μ-law table with the 127 entries where it differs from
    G.191 replaced by G.191's codes (the README's recipe)."""
    table = spandsp_encode_table("ulaw").copy()
    diff = shared_data.shared_json("vectors", "g711", "g711_crosscheck.json")["laws"]["ulaw"][
        "spandsp_vs_itu_g191"
    ]
    assert diff["count"] == len(diff["inputs"]) == 127
    table[np.array(diff["inputs"]) + 32768] = diff["codes_second"]
    return table


def decode_table(law: str) -> np.ndarray:
    return np.frombuffer(shared_data.shared_bytes("vectors", "g711", f"{law}_decode.s16le"), "<i2")


def crosscheck(law: str, name: str) -> dict:
    return shared_data.shared_json("vectors", "g711", "g711_crosscheck.json")["laws"][law][name]


def test_ulaw_encode_is_g191_on_all_inputs() -> None:
    assert np.array_equal(np.frombuffer(g711.ulaw_encode(ALL_INPUTS), np.uint8), itu_ulaw_encode_table())


def test_alaw_encode_matches_spandsp_on_all_inputs() -> None:
    # spandsp, audioop and G.191 agree on every A-law input (README).
    assert np.array_equal(np.frombuffer(g711.alaw_encode(ALL_INPUTS), np.uint8), spandsp_encode_table("alaw"))


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode_matches_spandsp_on_all_codes(law: str) -> None:
    decode = g711.ulaw_decode if law == "ulaw" else g711.alaw_decode
    assert np.array_equal(decode(ALL_CODES), decode_table(law))


@pytest.mark.parametrize("name", ["spandsp_vs_itu_g191", "audioop_vs_itu_g191"])
def test_g191_answer_pinned_on_every_disputed_ulaw_input(name: str) -> None:
    diff = crosscheck("ulaw", name)
    inputs = np.array(diff["inputs"], dtype=np.int16)
    codes = g711.ulaw_encode(inputs)
    assert list(codes) == diff["codes_second"]  # "second" is G.191
    assert list(codes) != diff["codes_first"]
    assert g711.ulaw_decode(codes).tolist() == diff["decoded_second"]


def test_fixed_points_from_the_readme() -> None:
    assert g711.ulaw_decode(b"\x00\x80\x7f\xff").tolist() == [-32124, 32124, 0, 0]
    assert g711.ulaw_encode(np.array([0, -1, 32767, -32768], np.int16)) == b"\xff\x7f\x80\x00"
    assert g711.alaw_decode(b"\xaa\x2a\xd5\x55").tolist() == [32256, -32256, 8, -8]
    assert g711.alaw_encode(np.array([0, -1], np.int16)) == b"\xd5\x55"


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_quantisation_error_and_idempotence(law: str) -> None:
    encode = getattr(g711, f"{law}_encode")
    decode = getattr(g711, f"{law}_decode")
    back = decode(encode(ALL_INPUTS)).astype(np.int32)
    assert np.abs(back - ALL_INPUTS).max() == (644 if law == "ulaw" else 512)
    once = decode(ALL_CODES)
    assert np.array_equal(decode(encode(once)), once)


PCM = np.array([0, 1, -1, 1234, -1234, 32767, -32768, 77], dtype=np.int16)


@pytest.mark.parametrize(
    "as_input",
    [
        lambda a: a,
        lambda a: a.tobytes(),
        lambda a: bytearray(a.tobytes()),
        lambda a: memoryview(a.tobytes()),
        lambda a: memoryview(a),
        lambda a: array.array("h", a.tobytes()),
    ],
    ids=["ndarray", "bytes", "bytearray", "memoryview-bytes", "memoryview-h", "array-h"],
)
def test_every_buffer_kind_encodes_alike(as_input) -> None:  # type: ignore[no-untyped-def]
    assert g711.ulaw_encode(as_input(PCM)) == g711.ulaw_encode(PCM.tobytes())
    assert g711.alaw_encode(as_input(PCM)) == g711.alaw_encode(PCM.tobytes())


def test_decoders_accept_any_bytes_like() -> None:
    expected = g711.alaw_decode(ALL_CODES)
    for data in (bytearray(ALL_CODES), memoryview(ALL_CODES), np.frombuffer(ALL_CODES, np.uint8)):
        assert np.array_equal(g711.alaw_decode(data), expected)
    assert g711.ulaw_decode(b"").dtype == np.int16 and len(g711.ulaw_decode(b"")) == 0


def test_unaligned_input_is_read_correctly() -> None:
    raw = bytearray(1) + bytearray(PCM.tobytes())
    view = memoryview(raw)[1:]
    assert g711.ulaw_encode(view) == g711.ulaw_encode(PCM)


def test_out_buffers_are_filled_and_returned() -> None:
    codes = bytearray(len(PCM) + 2)
    assert g711.ulaw_encode(PCM, out=codes) is codes
    assert bytes(codes[: len(PCM)]) == g711.ulaw_encode(PCM) and codes[-2:] == b"\0\0"
    samples = np.full(len(PCM) + 1, 7, np.int16)
    assert g711.ulaw_decode(bytes(codes[: len(PCM)]), out=samples) is samples
    assert np.array_equal(samples[:-1], g711.ulaw_decode(g711.ulaw_encode(PCM))) and samples[-1] == 7
    raw = bytearray(2 * len(PCM))
    g711.alaw_decode(g711.alaw_encode(PCM), out=raw)
    assert np.array_equal(np.frombuffer(raw, np.int16), g711.alaw_decode(g711.alaw_encode(PCM)))
    u8 = np.zeros(len(PCM), np.uint8)
    g711.alaw_encode(PCM, out=u8)
    assert u8.tobytes() == g711.alaw_encode(PCM)


def test_large_buffers_release_the_gil_and_agree() -> None:
    rng = np.random.default_rng(711)
    pcm = rng.integers(-32768, 32768, 200_000, dtype=np.int16)
    codes = g711.ulaw_encode(pcm)
    assert codes == g711.ulaw_encode(pcm[:1000].tobytes()) + g711.ulaw_encode(pcm[1000:])
    assert np.array_equal(g711.ulaw_decode(codes), g711.ulaw_decode(ALL_CODES)[np.frombuffer(codes, np.uint8)])


@pytest.mark.parametrize(
    ("pcm", "error", "message"),
    [
        (b"\x00\x01\x02", ValueError, "pcm: 3 bytes is not a whole number"),
        (np.zeros(4, np.int32), TypeError, "pcm: expected an int16 array, got dtype int32"),
        (np.zeros(4, np.float32), TypeError, "pcm: expected an int16 array"),
        (np.zeros(4, np.uint8), TypeError, "pcm: expected an int16 array, got dtype uint8"),
        (np.zeros(4, ">i2" if sys.byteorder == "little" else "<i2"), TypeError, "pcm: expected an int16"),
        (np.zeros(8, np.int16)[::2], ValueError, "pcm: array must be C-contiguous"),
        (array.array("f", [0.0]), TypeError, "pcm: expected int16 samples"),
        ("text", TypeError, "pcm: expected int16 samples"),
        ([1, 2], TypeError, "pcm: expected int16 samples"),
    ],
)
def test_bad_pcm_is_named(pcm: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        g711.ulaw_encode(pcm)  # type: ignore[arg-type]


def test_bad_out_is_named() -> None:
    with pytest.raises(ValueError, match="out: buffer holds 2 items, 8 needed"):
        g711.ulaw_encode(PCM, out=bytearray(2))
    with pytest.raises(TypeError, match="out: expected a writable"):
        g711.ulaw_encode(PCM, out=bytes(8))
    with pytest.raises(ValueError, match="out: array is read-only"):
        readonly = np.zeros(8, np.int16)
        readonly.flags.writeable = False
        g711.ulaw_decode(bytes(8), out=readonly)
    with pytest.raises(TypeError, match="out: expected an int16 array"):
        g711.ulaw_decode(bytes(8), out=np.zeros(8, np.float64))
    with pytest.raises(ValueError, match="out: 3 bytes is not a whole number"):
        g711.ulaw_decode(bytes(1), out=bytearray(3))
    with pytest.raises(TypeError, match="data: expected a contiguous bytes-like"):
        g711.alaw_decode("text")  # type: ignore[arg-type]


@given(st.binary(max_size=400))
def test_decode_then_encode_round_trips(data: bytes) -> None:
    # Every code except μ-law's negative zero survives decode -> encode.
    assert g711.alaw_encode(g711.alaw_decode(data)) == data
    assert g711.ulaw_encode(g711.ulaw_decode(data)) == data.replace(b"\x7f", b"\xff")


@given(st.lists(st.integers(-32768, 32767), max_size=300), st.integers(0, 300))
def test_splitting_a_buffer_does_not_change_the_codes(samples: list[int], cut: int) -> None:
    pcm = np.array(samples, np.int16)
    assert g711.ulaw_encode(pcm) == g711.ulaw_encode(pcm[:cut]) + g711.ulaw_encode(pcm[cut:])


def test_audioop_error_is_an_rtpcore_error() -> None:
    from rtpcore import audioop

    assert audioop.error is AudioopError


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decoders_agree_with_the_table_at_every_length(law: str) -> None:
    # Long inputs take the 32-codes-at-a-time SIMD path plus a scalar tail.
    decode = getattr(g711, f"{law}_decode")
    table = decode_table(law)
    codes = np.random.default_rng(32).integers(0, 256, 200, dtype=np.uint8)
    for n in [*range(0, 70), 95, 96, 97, 200]:
        assert np.array_equal(decode(codes[:n].tobytes()), table[codes[:n]]), n
        out = np.zeros(n + 3, np.int16)
        decode(codes[:n].tobytes(), out=out)
        assert np.array_equal(out[:n], table[codes[:n]]) and not out[n:].any(), n
