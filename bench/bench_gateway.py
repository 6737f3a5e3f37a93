"""The CI form of bench/gateway_load.py: a few calls end to end through a
gateway process, with the stand-in Twilio echo agent, per round.

Each round places 2 calls through the gateway, holds them 1 s with a tone
going out and the agent's echo coming back, and hangs up; the figures of
the last round (setup, audible gaps, gateway CPU and memory per call) are
recorded in ``extra_info``, and ``agrees`` says the round met the load
tool's criteria (all calls up, gap p90 < 50 ms, setup p95 < 200 ms). The
full ramp is ``python bench/gateway_load.py``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rtpcore.media", reason="the media engine (engine-driver) has not landed")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_load  # noqa: E402

THINK_S = 0.05


@pytest.fixture(scope="module")
def loaded_rig() -> Iterator[tuple[asyncio.AbstractEventLoop, Any]]:
    loop = asyncio.new_event_loop()
    context = gateway_load.rig(THINK_S, agent_procs=1, workers=1)
    rig = loop.run_until_complete(context.__aenter__())
    try:
        yield loop, rig
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


@pytest.mark.benchmark(group="gateway-calls")
@pytest.mark.parametrize("implementation", ["rtpcore"])
def test_calls_through_the_gateway(benchmark: Any, implementation: str,
                                   loaded_rig: tuple[asyncio.AbstractEventLoop, Any]) -> None:
    loop, rig = loaded_rig
    results: list[gateway_load.StepResult] = []

    def two_calls() -> None:
        results.append(loop.run_until_complete(
            gateway_load.run_step(rig, calls=2, hold=1.0, cps=20, think=THINK_S)))

    benchmark.pedantic(two_calls, rounds=3, iterations=1)
    last = results[-1]
    benchmark.extra_info.update(asdict(last))
    benchmark.extra_info["agrees"] = all(r.passed for r in results)
    assert last.connected == 2
