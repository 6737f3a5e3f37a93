"""Where a 20 ms G.711 decode's time goes, next to audioop, in two harnesses.

    python bench/g711_frame_costs.py              # ~10 s; build with scripts/build-ext --release

Rows (160 codes, all timed in the same run, interleaved, minimum per call):

* ``audioop.ulaw2lin``: the peer's whole call (``bytes`` out);
* ``g711.ulaw_decode``: decode to a new numpy int16 array;
* ``g711.ulaw_decode(b"")``: the same call on no codes: entry, argument
  checks and an empty array's creation and deallocation, no decoding. An
  empty array is allocated by numpy's own path (numpy allocates one byte
  for it), the others from numpy's default allocator directly (see
  ``numpy_memory`` in ``rust/src/pcm.rs``), so the empty call can cost more
  than a decode;
* ``out=``: decode into a preallocated array (no allocation);
* ``rtpcore.audioop.ulaw2lin``: the drop-in (``bytes`` out);
* ``np.empty(160, int16)`` and ``bytes(320)``: the two allocations from Python.

Harnesses: ``direct`` is a ``for`` loop calling the function (what a
per-frame loop does); ``pytest-benchmark`` calls a lambda wrapping it through
``f(*args, **kwargs)`` in short rounds, as ``bench_g711.py`` timed one call per round
(it now maps the function over a stream of frames). The
second harness adds more to calls that create numpy arrays than to calls that
create ``bytes`` (see the README, Codecs), so the two orders can differ.
"""

from __future__ import annotations

import time
import timeit
import warnings

import numpy as np
from rtpcore import audioop as drop_in
from rtpcore import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

CODES = g711.ulaw_encode(np.random.default_rng(711).integers(-32768, 32768, 160, dtype=np.int16))
OUT = np.empty(160, np.int16)
CALLS = {
    "audioop.ulaw2lin": "audioop.ulaw2lin(CODES, 2)",
    "g711.ulaw_decode": "g711.ulaw_decode(CODES)",
    'g711.ulaw_decode(b"")': 'g711.ulaw_decode(b"")',
    "g711.ulaw_decode(out=)": "g711.ulaw_decode(CODES, out=OUT)",
    "rtpcore.audioop.ulaw2lin": "drop_in.ulaw2lin(CODES, 2)",
    "np.empty(160, int16)": "np.empty(160, np.int16)",
    "bytes(320)": "bytes(320)",
    "(nothing)": "None",
}


def direct(source: str, loops: int) -> float:
    """Per-call seconds of `source` run in a plain loop."""
    return timeit.Timer(source, globals=globals()).timeit(loops) / loops


def pytest_benchmark_style(source: str, loops: int) -> float:
    """Per-call seconds of `source` timed as pytest-benchmark's runner does:
    a lambda called through ``f(*args, **kwargs)``, in short rounds."""
    call = eval(f"lambda: {source}")  # noqa: S307 (our own constant strings)

    def runner(loops: int, *args: object, **kwargs: object) -> float:
        start = time.perf_counter()
        for _ in range(loops):
            call(*args, **kwargs)
        return time.perf_counter() - start

    return runner(loops) / loops


def main() -> None:
    harnesses = {
        "direct": (direct, 5_000),
        "pytest-benchmark": (pytest_benchmark_style, 30),
    }
    best = {(h, name): float("inf") for h in harnesses for name in CALLS}
    for _ in range(300):
        for harness, (run, loops) in harnesses.items():
            for name, source in CALLS.items():
                best[harness, name] = min(best[harness, name], run(source, loops))
    for harness in harnesses:
        empty = best[harness, "(nothing)"]
        peer = best[harness, "audioop.ulaw2lin"] - empty
        print(f"{harness} (ns per call, less the empty call's {empty * 1e9:.0f} ns):")
        for name in CALLS:
            if name != "(nothing)":
                cost = best[harness, name] - empty
                print(f"  {name:26s} {cost * 1e9:7.1f}   audioop/this {peer / cost:5.2f}")


if __name__ == "__main__":
    main()
