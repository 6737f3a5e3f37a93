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

Per 20 ms frame, a round is one second of audio as 50 frames of 160
samples, each implementation's function mapped over the frames with nothing
of Python's between the calls (``deque(map(f, frames), maxlen=0)``), as a
receiver's frame loop calls it; divide a round by 50 for a frame. (Timing one
call per round through pytest-benchmark's wrapper instead adds a cost that
is larger for calls returning numpy arrays than for ones returning ``bytes``:
see ``g711_frame_costs.py``.) The decoders differ mostly by what they
allocate: a numpy array costs more to create than a ``bytes`` object of the
same size, so ``rtpcore-audioop`` (same output type) and ``rtpcore-out`` (no
allocation) are the like-for-like rows against audioop.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Sequence
from itertools import repeat

import numpy as np
import pytest
from rtpcore import audioop as rtp_audioop
from rtpcore import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

# size -> (samples per call, calls per round): 20 ms frames of a one-second
# stream, or one 10 s buffer.
SIZES = {"20ms": (160, 50), "10s": (80_000, 1)}
RNG = np.random.default_rng(711)
PCM = {name: RNG.integers(-32768, 32768, n * calls, dtype=np.int16)
       for name, (n, calls) in SIZES.items()}


def split(data: np.ndarray | bytes, size: str) -> list:  # type: ignore[type-arg]
    """``data`` as the calls of one round (views of a numpy array)."""
    _, calls = SIZES[size]
    step = len(data) // calls
    return [data[i * step:(i + 1) * step] for i in range(calls)]


class Calls:
    """One implementation's calls in a round: ``function(item, *constants)``
    for every item."""

    def __init__(self, function: Callable[..., object], items: Sequence[object],
                 *constants: object) -> None:
        self.function, self.items, self.constants = function, items, constants

    def round(self) -> None:
        """Every call, results dropped, no Python frame between the calls."""
        deque(map(self.function, self.items, *(repeat(c) for c in self.constants)), maxlen=0)

    def output(self) -> bytes:
        """What the calls return (or write to ``out``), one after the other."""
        return b"".join(as_bytes(self.function(item, *self.constants)) for item in self.items)


def as_bytes(result: object) -> bytes:
    return result.tobytes() if isinstance(result, np.ndarray) else bytes(result)  # type: ignore[call-overload]


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


def encoders(law: str, size: str) -> dict[str, Calls]:
    frames = split(PCM[size], size)
    data = [f.tobytes() for f in frames]
    out = bytearray(len(frames[0]))
    table, _ = numpy_tables(law)
    ctx = pyav_codec(law, "w")

    def pyav(frame: np.ndarray) -> bytes:
        import av

        audio = av.AudioFrame.from_ndarray(frame.reshape(1, -1), format="s16", layout="mono")
        audio.sample_rate = 8000
        return b"".join(bytes(p) for p in ctx.encode(audio))

    return {
        "rtpcore": Calls(getattr(g711, f"{law}_encode"), frames),
        "rtpcore-out": Calls(getattr(g711, f"{law}_encode"), frames, out),
        "rtpcore-audioop": Calls(getattr(rtp_audioop, f"lin2{law}"), data, 2),
        "audioop": Calls(getattr(audioop, f"lin2{law}"), data, 2),
        "numpy": Calls(lambda f: table[f.view(np.uint16)].tobytes(), frames),
        "pyav": Calls(pyav, frames),
    }


def decoders(law: str, size: str) -> dict[str, Calls]:
    frames = split(getattr(g711, f"{law}_encode")(PCM[size]), size)
    out = np.empty(len(frames[0]), np.int16)
    _, table = numpy_tables(law)
    ctx = pyav_codec(law, "r")

    def pyav(frame: bytes) -> np.ndarray:
        import av

        return np.concatenate([f.to_ndarray().ravel() for f in ctx.decode(av.Packet(frame))])

    return {
        "rtpcore": Calls(getattr(g711, f"{law}_decode"), frames),
        "rtpcore-out": Calls(getattr(g711, f"{law}_decode"), frames, out),
        "rtpcore-audioop": Calls(getattr(rtp_audioop, f"{law}2lin"), frames, 2),
        "audioop": Calls(getattr(audioop, f"{law}2lin"), frames, 2),
        "numpy": Calls(lambda f: table[np.frombuffer(f, np.uint8)], frames),
        "pyav": Calls(pyav, frames),
    }


IMPLEMENTATIONS = ["rtpcore", "rtpcore-out", "rtpcore-audioop", "audioop", "numpy", "pyav"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encode(benchmark, law: str, size: str, impl: str) -> None:  # type: ignore[no-untyped-def]
    calls = encoders(law, size)[impl]
    pcm = PCM[size]
    if impl == "audioop":
        expected = getattr(rtp_audioop, f"lin2{law}")(pcm.tobytes(), 2)
    elif impl == "rtpcore-audioop":  # the drop-in's contract: audioop's bytes exactly
        expected = getattr(audioop, f"lin2{law}")(pcm.tobytes(), 2)
    else:
        expected = getattr(g711, f"{law}_encode")(pcm)
    benchmark.group = f"g711 {law} encode {size}"
    benchmark.extra_info["agrees"] = calls.output() == expected
    benchmark.extra_info["samples"], benchmark.extra_info["calls_per_round"] = SIZES[size]
    benchmark(calls.round)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode(benchmark, law: str, size: str, impl: str) -> None:  # type: ignore[no-untyped-def]
    calls = decoders(law, size)[impl]
    expected = getattr(g711, f"{law}_decode")(getattr(g711, f"{law}_encode")(PCM[size]))
    benchmark.group = f"g711 {law} decode {size}"
    benchmark.extra_info["agrees"] = calls.output() == expected.tobytes()
    benchmark.extra_info["samples"], benchmark.extra_info["calls_per_round"] = SIZES[size]
    benchmark(calls.round)
