"""G.711 per 20 ms frame and per 10 s buffer: rtpcore against audioop (the
stdlib module that audioop-lts ports), a numpy table lookup and PyAV.

Each implementation's output is checked first and recorded in
``extra_info["agrees"]``: against rtpcore.g711 (G.191), or for audioop
against rtpcore.audioop (audioop rounds 508 negative μ-law inputs
differently from G.191, by design). PyAV's (FFmpeg's) G.711 encoders pick
codes by their own nearest-value tables and differ from G.191 on 964 of the
65,536 inputs for each law, so their ``agrees`` is False: a finding, not a
harness error.

Rows, by the API they time (compare like with like):

* ``rtpcore``: ``rtpcore.g711`` returning a new object per call (encode:
  ``bytes``; decode: a new numpy int16 array);
* ``rtpcore-out``: the same into a caller's preallocated buffer (``out=``),
  what a per-frame loop should use;
* ``rtpcore-audioop``: the ``rtpcore.audioop`` drop-in, ``bytes`` in and
  ``bytes`` out, the same API and output as the ``audioop`` row;
* ``audioop``: the stdlib module (``bytes`` out);
* ``numpy``: a table lookup returning a new array (decode) or bytes
  (encode); ``pyav``: FFmpeg's codec through PyAV.

Per 20 ms frame the decoders differ mostly by what they allocate: a numpy
array costs more to create than a ``bytes`` object of the same size, so a new
array per frame (``rtpcore``) is not the like-for-like row against audioop;
``rtpcore-audioop`` (same output type) and ``rtpcore-out`` (no allocation) are.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from rtpcore import audioop as rtp_audioop
from rtpcore import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SIZES = {"20ms": 160, "10s": 80_000}
RNG = np.random.default_rng(711)
PCM = {name: RNG.integers(-32768, 32768, n, dtype=np.int16) for name, n in SIZES.items()}


def numpy_tables(law: str) -> tuple[np.ndarray, np.ndarray]:
    """Encode table indexed by the int16 bit pattern, decode table by code."""
    encode = getattr(g711, f"{law}_encode")
    decode = getattr(g711, f"{law}_decode")
    everything = np.arange(65536, dtype=np.uint16).view(np.int16)
    return np.frombuffer(encode(everything), np.uint8), decode(bytes(range(256)))


def pyav_codec(law: str, mode: str):  # type: ignore[no-untyped-def]
    import av

    ctx = av.CodecContext.create(f"pcm_{'mulaw' if law == 'ulaw' else 'alaw'}", mode)
    ctx.sample_rate, ctx.layout = 8000, "mono"
    if mode == "w":
        ctx.format = "s16"
    ctx.open()
    return ctx


def encoders(law: str, pcm: np.ndarray) -> dict[str, Callable[[], bytes]]:
    data = pcm.tobytes()
    out = bytearray(len(pcm))
    table, _ = numpy_tables(law)
    ctx = pyav_codec(law, "w")

    def pyav() -> bytes:
        import av

        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 8000
        return b"".join(bytes(p) for p in ctx.encode(frame))

    lin2 = audioop.lin2ulaw if law == "ulaw" else audioop.lin2alaw
    encode = getattr(g711, f"{law}_encode")
    drop_in = rtp_audioop.lin2ulaw if law == "ulaw" else rtp_audioop.lin2alaw
    return {
        "rtpcore": lambda: encode(pcm),
        "rtpcore-out": lambda: encode(pcm, out=out),
        "rtpcore-audioop": lambda: drop_in(data, 2),
        "audioop": lambda: lin2(data, 2),
        "numpy": lambda: table[pcm.view(np.uint16)].tobytes(),
        "pyav": pyav,
    }


def decoders(law: str, codes: bytes) -> dict[str, Callable[[], object]]:
    out = np.empty(len(codes), np.int16)
    _, table = numpy_tables(law)
    ctx = pyav_codec(law, "r")

    def pyav() -> np.ndarray:
        import av

        return np.concatenate([f.to_ndarray().ravel() for f in ctx.decode(av.Packet(codes))])

    to_lin = audioop.ulaw2lin if law == "ulaw" else audioop.alaw2lin
    decode = getattr(g711, f"{law}_decode")
    drop_in = rtp_audioop.ulaw2lin if law == "ulaw" else rtp_audioop.alaw2lin
    return {
        "rtpcore": lambda: decode(codes),
        "rtpcore-out": lambda: decode(codes, out=out),
        "rtpcore-audioop": lambda: drop_in(codes, 2),
        "audioop": lambda: to_lin(codes, 2),
        "numpy": lambda: table[np.frombuffer(codes, np.uint8)],
        "pyav": pyav,
    }


IMPLEMENTATIONS = ["rtpcore", "rtpcore-out", "rtpcore-audioop", "audioop", "numpy", "pyav"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encode(benchmark, law: str, size: str, impl: str) -> None:  # type: ignore[no-untyped-def]
    pcm = PCM[size]
    run = encoders(law, pcm)[impl]
    result = bytes(run())
    if impl == "audioop":
        expected = getattr(rtp_audioop, f"lin2{law}")(pcm.tobytes(), 2)
    elif impl == "rtpcore-audioop":  # the drop-in's contract: audioop's bytes exactly
        expected = getattr(audioop, f"lin2{law}")(pcm.tobytes(), 2)
    else:
        expected = getattr(g711, f"{law}_encode")(pcm)
    benchmark.group = f"g711 {law} encode {size}"
    benchmark.extra_info["agrees"] = result == expected
    benchmark.extra_info["samples"] = len(pcm)
    benchmark(run)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode(benchmark, law: str, size: str, impl: str) -> None:  # type: ignore[no-untyped-def]
    codes = getattr(g711, f"{law}_encode")(PCM[size])
    run = decoders(law, codes)[impl]
    result = run()
    samples = (
        np.frombuffer(result, np.int16)
        if isinstance(result, bytes)
        else np.asarray(result, np.int16)
    )
    benchmark.group = f"g711 {law} decode {size}"
    benchmark.extra_info["agrees"] = bool(
        np.array_equal(samples, getattr(g711, f"{law}_decode")(codes))
    )
    benchmark.extra_info["samples"] = len(codes)
    benchmark(run)
