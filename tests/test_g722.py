"""G.722: bit-exact with the shared vectors (spandsp, cross-checked with
FFmpeg and libg722) in every mode, streaming in pieces, and differential
against the `G722` package and PyAV on random and speech input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shared_data
from rtpcore.g722 import G722Decoder, G722Encoder

VECTORS = ["silence", "sine_1k_m10dbfs", "sweep_log_50_7500", "noise_white_m20dbfs", "square_500_fullscale", "speech_en_us"]
BITRATES = [64000, 56000, 48000]


def vector_pcm(name: str) -> np.ndarray:
    return np.frombuffer(shared_data.shared_bytes("vectors", "g722", f"{name}.s16le"), "<i2").astype(np.int16)


def vector_codes(name: str) -> bytes:
    return shared_data.shared_bytes("vectors", "g722", f"{name}.g722")


def vector_decoded(name: str, bitrate: int, suffix: str = "") -> np.ndarray:
    data = shared_data.shared_bytes("vectors", "g722", f"{name}.dec{bitrate // 1000}k{suffix}.s16le")
    return np.frombuffer(data, "<i2").astype(np.int16)


@pytest.mark.parametrize("name", VECTORS)
def test_encoder_matches_vectors(name: str) -> None:
    assert G722Encoder().encode(vector_pcm(name)) == vector_codes(name)


@pytest.mark.parametrize("bitrate", BITRATES)
@pytest.mark.parametrize("name", VECTORS)
def test_decoder_matches_vectors(name: str, bitrate: int) -> None:
    decoded = G722Decoder(bitrate).decode(vector_codes(name))
    assert np.array_equal(decoded, vector_decoded(name, bitrate))


@pytest.mark.parametrize("bitrate", BITRATES)
def test_decoder_saturates_where_spandsp_0_0_6_wraps(bitrate: int) -> None:
    decoded = G722Decoder(bitrate).decode(vector_codes("square_500_fullscale"))
    wrapped = vector_decoded("square_500_fullscale", bitrate, ".spandsp_nosat")
    differ = decoded != wrapped
    assert differ.sum() > 5000
    assert set(np.unique(decoded[differ])) <= {-32768, 32767}


@pytest.mark.parametrize("frame", [2, 160, 320, 998])
def test_frame_by_frame_equals_one_call(frame: int) -> None:
    pcm = vector_pcm("speech_en_us")
    encoder = G722Encoder()
    pieces = b"".join(encoder.encode(pcm[i : i + frame]) for i in range(0, len(pcm), frame))
    assert pieces == vector_codes("speech_en_us")
    codes = vector_codes("speech_en_us")
    decoder = G722Decoder(56000)
    step = frame // 2
    out = np.concatenate([decoder.decode(codes[i : i + step]) for i in range(0, len(codes), step)])
    assert np.array_equal(out, vector_decoded("speech_en_us", 56000))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=8), st.sampled_from(BITRATES))
def test_any_split_of_a_stream_decodes_alike(cuts: list[int], bitrate: int) -> None:
    codes = vector_codes("sweep_log_50_7500")[:2000]
    whole = G722Decoder(bitrate).decode(codes)
    decoder = G722Decoder(bitrate)
    bounds = sorted({0, len(codes), *(min(c * 5, len(codes)) for c in cuts)})
    parts = [decoder.decode(codes[a:b]) for a, b in zip(bounds, bounds[1:])]
    assert np.array_equal(np.concatenate(parts), whole)


def test_reset_returns_to_the_initial_state() -> None:
    pcm = vector_pcm("sine_1k_m10dbfs")[:640]
    encoder = G722Encoder()
    first = encoder.encode(pcm)
    assert encoder.encode(pcm) != first
    encoder.reset()
    assert encoder.encode(pcm) == first
    decoder = G722Decoder(48000)
    once = decoder.decode(first)
    decoder.reset()
    assert np.array_equal(decoder.decode(first), once)
    assert decoder.bitrate == 48000


def test_out_buffers() -> None:
    pcm = vector_pcm("speech_en_us")[:320]
    codes = bytearray(200)
    assert G722Encoder().encode(pcm, out=codes) is codes
    assert bytes(codes[:160]) == vector_codes("speech_en_us")[:160]
    samples = np.zeros(320, np.int16)
    assert G722Decoder().decode(bytes(codes[:160]), out=samples) is samples
    assert np.array_equal(samples, vector_decoded("speech_en_us", 64000)[:320])


def test_every_octet_decodes_in_every_mode() -> None:
    data = bytes(range(256)) * 40
    for bitrate in BITRATES:
        out = G722Decoder(bitrate).decode(data)
        assert out.dtype == np.int16 and len(out) == 2 * len(data)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="pcm: 3 samples is odd"):
        G722Encoder().encode(np.zeros(3, np.int16))
    with pytest.raises(TypeError, match="pcm: expected an int16 array"):
        G722Encoder().encode(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="bitrate: 32000 is not a G.722 mode"):
        G722Decoder(32000)
    with pytest.raises(ValueError, match="out: buffer holds 10 items, 20 needed"):
        G722Decoder().decode(bytes(10), out=np.zeros(10, np.int16))
    with pytest.raises(TypeError, match="data: expected a contiguous bytes-like"):
        G722Decoder().decode([1, 2, 3])  # type: ignore[arg-type]


def random_pcm(seed: int, n: int = 32000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Random walk plus white noise: stresses both sub-bands and the limiters.
    walk = np.cumsum(rng.normal(0, 2000, n))
    return np.clip(walk / max(1.0, np.abs(walk).max()) * 30000 + rng.normal(0, 1500, n), -32768, 32767).astype(np.int16)


def inputs() -> list[tuple[str, np.ndarray]]:
    speech = shared_data.shared_path("audio", "s02_en-gb_f3_16k.wav")
    import wave

    with wave.open(str(speech)) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
    pcm = pcm[: len(pcm) // 320 * 320]
    return [("random", random_pcm(722)), ("speech", pcm)]


@pytest.mark.parametrize(("label", "pcm"), inputs(), ids=lambda v: v if isinstance(v, str) else "")
def test_differential_against_g722_package(label: str, pcm: np.ndarray) -> None:
    import G722

    codes = G722Encoder().encode(pcm)
    assert G722.G722(16000, 64000).encode(pcm) == codes
    theirs = np.asarray(G722.G722(16000, 64000).decode(codes), dtype=np.int16)
    assert np.array_equal(G722Decoder().decode(codes), theirs)


def pyav_encode(pcm: np.ndarray) -> bytes:
    import av

    ctx = av.CodecContext.create("g722", "w")
    ctx.sample_rate, ctx.layout, ctx.format = 16000, "mono", "s16"
    ctx.open()
    out = bytearray()
    for i in range(0, len(pcm), 320):
        frame = av.AudioFrame.from_ndarray(pcm[i : i + 320].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        out += b"".join(bytes(p) for p in ctx.encode(frame))
    out += b"".join(bytes(p) for p in ctx.encode(None))
    return bytes(out)


def pyav_decode(codes: bytes, bitrate: int) -> np.ndarray:
    import av

    ctx = av.CodecContext.create("g722", "r")
    ctx.sample_rate, ctx.layout = 16000, "mono"
    ctx.options = {"bits_per_codeword": str(bitrate // 8000)}
    ctx.open()
    frames = [f.to_ndarray().ravel() for i in range(0, len(codes), 160) for f in ctx.decode(av.Packet(codes[i : i + 160]))]
    return np.concatenate(frames).astype(np.int16)


@pytest.mark.parametrize(("label", "pcm"), inputs(), ids=lambda v: v if isinstance(v, str) else "")
def test_differential_against_pyav(label: str, pcm: np.ndarray) -> None:
    codes = G722Encoder().encode(pcm)
    assert pyav_encode(pcm) == codes
    for bitrate in BITRATES:
        assert np.array_equal(G722Decoder(bitrate).decode(codes), pyav_decode(codes, bitrate)), bitrate
