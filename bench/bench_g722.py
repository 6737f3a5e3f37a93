"""G.722 per 20 ms frame and per 10 s buffer: rtpcore against the `G722`
package (libg722) and PyAV (FFmpeg). Streaming objects are made once
(setup, not timed); each implementation's output is checked against
rtpcore's first and recorded in ``extra_info["agrees"]``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rtpcore.g722 import G722Decoder, G722Encoder

SIZES = {"20ms": 320, "10s": 160_000}


def speechlike(n: int) -> np.ndarray:
    """Band-limited noise with a slow envelope: exercises both sub-bands."""
    rng = np.random.default_rng(722)
    noise = np.convolve(rng.normal(0, 6000, n + 15), np.hanning(16) / 8, mode="valid")[:n]
    envelope = 0.6 + 0.4 * np.sin(np.arange(n) / 800)
    return np.clip(noise * envelope, -32768, 32767).astype(np.int16)


PCM = {name: speechlike(n) for name, n in SIZES.items()}
CODES = {name: G722Encoder().encode(pcm) for name, pcm in PCM.items()}


def pyav_context(mode: str):  # type: ignore[no-untyped-def]
    import av

    ctx = av.CodecContext.create("g722", mode)
    ctx.sample_rate, ctx.layout = 16000, "mono"
    if mode == "w":
        ctx.format = "s16"
    ctx.open()
    return ctx


def encoders(pcm: np.ndarray) -> dict[str, Callable[[], bytes]]:
    import av
    import G722

    ours, theirs, ctx = G722Encoder(), G722.G722(16000, 64000), pyav_context("w")
    frames = [pcm[i : i + 320].reshape(1, -1) for i in range(0, len(pcm), 320)]

    def pyav() -> bytes:
        out = bytearray()
        for samples in frames:
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = 16000
            out += b"".join(bytes(p) for p in ctx.encode(frame))
        return bytes(out)

    return {"rtpcore": lambda: ours.encode(pcm), "g722": lambda: theirs.encode(pcm), "pyav": pyav}


def decoders(codes: bytes) -> dict[str, Callable[[], object]]:
    import av
    import G722

    ours, theirs, ctx = G722Decoder(), G722.G722(16000, 64000), pyav_context("r")
    return {
        "rtpcore": lambda: ours.decode(codes),
        "g722": lambda: theirs.decode(codes),
        "pyav": lambda: np.concatenate([f.to_ndarray().ravel() for f in ctx.decode(av.Packet(codes))]),
    }


IMPLEMENTATIONS = ["rtpcore", "g722", "pyav"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
def test_encode(benchmark, size: str, impl: str) -> None:  # type: ignore[no-untyped-def]
    run = encoders(PCM[size])[impl]
    benchmark.group = f"g722 encode {size}"
    # Fresh state on both sides: the first call's output is comparable.
    benchmark.extra_info["agrees"] = bytes(run()) == CODES[size]
    benchmark.extra_info["samples"] = len(PCM[size])
    benchmark(run)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
def test_decode(benchmark, size: str, impl: str) -> None:  # type: ignore[no-untyped-def]
    codes = CODES[size]
    run = decoders(codes)[impl]
    benchmark.group = f"g722 decode {size}"
    samples = np.asarray(run(), dtype=np.int16)
    benchmark.extra_info["agrees"] = bool(np.array_equal(samples, G722Decoder().decode(codes)))
    benchmark.extra_info["samples"] = 2 * len(codes)
    benchmark(run)
