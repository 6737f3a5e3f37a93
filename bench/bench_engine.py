"""The media engine under load, the CI's quick form of bench/engine_load.py:
CALLS full-duplex G.711/SRTP calls over loopback for each implementation
(the engine with Python reading and writing every frame, the engine alone,
the aiortc-style asyncio pipeline), side by side in group "engine-load".

Each step runs the process under test and its far end as two processes
and lasts a few seconds; the time pytest-benchmark shows is the step's
wall time, the figures that matter are in extra_info: the 99th-percentile
send-interval error from the far end's kernel timestamps, late frames, CPU
and resident memory per call. Before any figure counts, the step checks
that the far end received the application's audio bit for bit through SRTP
and that the load generator authenticated packets on every one of its
calls (extra_info["agrees"]). The full ramp to the largest N each implementation
holds is ``python bench/engine_load.py --ramp`` (see the README).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from engine_load import IMPLEMENTATIONS, StepOptions, run_step  # noqa: E402

CALLS = 50
OPTIONS = StepOptions(warmup=1.0, seconds=2.0, probes=16)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.benchmark(group="engine-load")
def test_engine_load_quick(benchmark: Any, impl: str) -> None:
    figures = benchmark.pedantic(run_step, args=(impl, CALLS, OPTIONS), rounds=1, iterations=1)
    assert "error" not in figures, figures
    probes, app = figures["probes"], figures["sut"]["app"]
    benchmark.extra_info.update(
        {name: value for name, value in figures.items() if name not in ("sut", "probes")})
    benchmark.extra_info.update({f"probe_{name}": value for name, value in probes.items()})
    # every packet the probes got passed SRTP authentication and, with an
    # application, carried its audio bit for bit both ways (packets sent as
    # filler when it fell behind are timing, counted in late_frames, not a
    # disagreement)
    audio_through = (probes["received"] > probes["without_tone"] and app["tone_frames"] > 0
                     if impl != "engine-alone" else True)
    # and the generator's bulk calls all got packets that authenticated
    bulk = probes.get("bulk", {"received": 1, "refused": 0, "silent_calls": 0})
    benchmark.extra_info["agrees"] = (probes["received"] > 0 and probes["refused"] == 0
                                      and audio_through and bulk["received"] > 0
                                      and bulk["refused"] == 0 and bulk["silent_calls"] == 0)
    assert benchmark.extra_info["agrees"], (probes, app)


@pytest.mark.benchmark(group="engine-load")
def test_sockets_floor_quick(benchmark: Any) -> None:
    """The floor the engine's figures stand on (bench/sockets_floor.py): the
    same calls' sockets echoing with no media work. Its figure counts only
    if every packet the generator sent came back to it whole."""
    from sockets_floor import floor_binary, floor_step

    options = StepOptions()
    options.far_end()
    if options.generator is None:
        pytest.skip("the floor needs cargo to build its binaries")
    floor, generator_binary = floor_binary(), options.generator
    figures = benchmark.pedantic(
        lambda: asyncio.run(floor_step(CALLS, floor, generator_binary, 1.0, 2.0)),
        rounds=1, iterations=1)
    generator = figures["generator"]
    benchmark.extra_info.update({name: value for name, value in figures.items() if name != "generator"})
    benchmark.extra_info.update({f"generator_{name}": value for name, value in generator.items()})
    benchmark.extra_info["agrees"] = (generator["received"] > 0 and generator["refused"] == 0
                                      and generator["missing"] == 0 and generator["silent_calls"] == 0)
    assert benchmark.extra_info["agrees"], generator
