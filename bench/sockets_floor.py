"""The floor under the load benchmark: what moving N calls' packets over
loopback takes of this machine before any media work, next to what the
engine takes for the same calls, in the same run.

For each N, three setups against the same far end, the load generator
(rust/engine/examples/load_far_end.rs, SRTP both ways):

  sockets-floor  rust/engine/examples/load_sockets_floor.rs: every call's
                 RTP and RTCP sockets as the engine opens them, every
                 datagram sent straight back with the engine's system calls
                 (recvmmsg, sendto) and no media work at all; the generator
                 sends and expects back its own packets (the same key both
                 ways), so it does its full work too
  engine-alone,  ``bench/engine_load.py``'s steps of those names (probes
  engine-block   and all), whose SUT does SRTP, jitter buffer, decode,
                 encode and pacing, without or with Python touching every
                 frame

and prints each one's CPU and the far end's, in % of one core (the
machine has 200 %). The floor's CPU is what the kernel spends sending and
receiving the calls' datagrams; on loopback, sending one includes
delivering it into the receiver's socket. No engine on this machine can
hold N calls for less than the floor plus the far end.

    python bench/sockets_floor.py --calls 1000,2000 --realtime
    python bench/sockets_floor.py --calls 2000 --only-floor --realtime

``--realtime`` (root) runs as ``engine_load.py --realtime`` does: the echo
one SCHED_FIFO priority above the driver, the generator one below.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_load  # noqa: E402  (a sibling script, not a package)

FLOOR_FIRST_PORT = engine_load.SUT_PORTS[0]


def floor_binary() -> Path:
    binary = engine_load.build_example("load_sockets_floor")
    if binary is None:
        raise SystemExit("sockets_floor.py needs cargo to build rust/engine/examples/load_sockets_floor.rs")
    return binary


async def floor_step(calls: int, floor: Path, generator_binary: Path, warmup: float, seconds: float) -> dict[str, Any]:
    """N calls of echoing sockets against the generator: both processes'
    CPU over the window, and whether every packet came back in time."""
    engine_load.raise_fd_limit()
    echo = subprocess.Popen([str(floor), str(calls), str(FLOOR_FIRST_PORT)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert echo.stdin is not None and echo.stdout is not None  # PIPEs
    try:
        word, *ports = echo.stdout.readline().split()
        if word != "ports" or len(ports) != calls:
            raise RuntimeError(f"load_sockets_floor: {word} {' '.join(ports[:3])}...")
        if os.sched_getscheduler(0) == os.SCHED_FIFO:  # as the engine's workers
            above = os.sched_param(os.sched_getparam(0).sched_priority + 1)
            os.sched_setscheduler(echo.pid, os.SCHED_FIFO, above)
        generator = engine_load.GeneratorCalls(generator_binary)
        ids = list(range(calls))
        # The echo returns the generator's own packets: it receives with its sending key.
        await generator.open(ids, "peer", "peer")
        await generator.start([int(port) for port in ports])
        await asyncio.sleep(warmup)
        echo_before, far_before = engine_load.process_cpu_seconds(echo.pid), generator.cpu_seconds()
        started, clock = time.time_ns(), time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - clock
        echo_after, far_after = engine_load.process_cpu_seconds(echo.pid), generator.cpu_seconds()
        ended = time.time_ns()
        await generator.close()
    finally:
        echo.kill()
        echo.wait()
    counts = generator.counts
    behind, unsent = counts.pop("behind"), counts.pop("unsent")
    return {
        "impl": "sockets-floor", "calls": calls,
        "cpu_percent": 100 * (echo_after - echo_before) / elapsed,
        "far_end_cpu_percent": 100 * (far_after - far_before) / elapsed,
        "far_end_behind_ms": engine_load.far_end_behind_ms(behind, unsent, (started, ended)),
        "generator": counts,
    }


def engine_step(impl: str, calls: int, options: engine_load.StepOptions) -> dict[str, Any]:
    figures = engine_load.run_step(impl, calls, options)
    probes = figures.get("probes", {})
    return {"impl": impl, "calls": calls, "held": figures.get("held", False),
            "cpu_percent": figures.get("cpu_percent", float("nan")),
            "far_end_cpu_percent": probes.get("peer_cpu_percent", float("nan")),
            "far_end_behind_ms": probes.get("far_end_behind_ms", float("nan")),
            "error": figures.get("error")}


def line(figures: dict[str, Any]) -> str:
    total = figures["cpu_percent"] + figures["far_end_cpu_percent"]
    text = (f"{figures['impl']:>13} N={figures['calls']:<5} CPU {figures['cpu_percent']:5.1f}% "
            f"+ far end {figures['far_end_cpu_percent']:5.1f}% = {total:5.1f}% of 200%, "
            f"far end behind {figures['far_end_behind_ms']:6.1f} ms")
    if figures["impl"] == "sockets-floor":
        generator = figures["generator"]
        text += f", {generator['received']} of {generator['sent']} packets back, {generator['missing']} missing"
    else:
        text += ", held" if figures["held"] else f", FAILED {figures['error'] or ''}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="1000,2000", help="comma-separated Ns")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--only-floor", action="store_true", help="skip the engine's steps")
    parser.add_argument("--realtime", action="store_true", help="SCHED_FIFO, as engine_load.py --realtime")
    args = parser.parse_args()
    if args.realtime:
        engine_load.realtime()
    options = engine_load.StepOptions(args.warmup, args.seconds, realtime=args.realtime)
    options.far_end()
    if options.generator is None:
        raise SystemExit("sockets_floor.py needs cargo to build the load generator")
    floor = floor_binary()
    for calls in (int(n) for n in args.calls.split(",")):
        figures = asyncio.run(floor_step(calls, floor, options.generator, args.warmup, args.seconds))
        print(line(figures), flush=True)
        if not args.only_floor:
            for impl in ("engine-alone", "engine-block"):
                print(line(engine_step(impl, calls, options)), flush=True)


if __name__ == "__main__":
    main()
