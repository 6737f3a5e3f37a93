"""SIP calls per second: SIPp's UAC against an rtpcore UAS, no media.

Each call is INVITE, 100, 200, ACK, BYE, 200 (SIPp's built-in "uac"
scenario, or bench/sipp/uac_digest.xml with a digest challenge first). The
UAS runs in its own process, pinned to one core when ``taskset`` exists,
SIPp on another; the figure is the call rate SIPp achieved with zero failed
calls, next to the UAS's CPU time per call.

    python bench/sip_cps.py --rate 1000 --calls 10000            # UDP
    python bench/sip_cps.py --rate 1000 --calls 10000 --transport tcp
    python bench/sip_cps.py --rate 500 --calls 5000 --auth
    python bench/sip_cps.py --quick                                # CI: small and short
    python bench/sip_cps.py --rate 300 --calls 3000 --profile uas.prof  # where the CPU goes
    python bench/sip_cps.py --loop asyncio     # the stdlib event loop instead of uvloop

The UAS runs on uvloop when it is installed (the test extra installs it),
on asyncio's default loop otherwise or with ``--loop asyncio``; the figures
name the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        t.bind(("127.0.0.1", port))  # free for both transports
        return int(port)


def serve(port: int, transport: str, auth: bool, seconds: float, profile: str | None,
          loop: str) -> None:
    """The UAS: answer every call at once, then report CPU used per call."""
    from rtpcore.aio.sip import SIPEndpoint
    from rtpcore.sip.auth import DigestServer
    from rtpcore.sip.ua import CallEnded, IncomingCall, UserAgent

    async def main() -> None:
        endpoint: SIPEndpoint
        ended = 0

        def on_event(event: object) -> None:
            nonlocal ended
            if isinstance(event, IncomingCall):
                endpoint.answer(event.call, "127.0.0.1", 40000)
            elif isinstance(event, CallEnded):
                ended += 1

        options: dict[str, object] = {}
        if auth:
            # SIPp 3.6 answers MD5 challenges only
            options = {"auth": DigestServer("bench", {"sipp": "sipp"}.get, ("MD5",)), "allow": []}
        ua = UserAgent("127.0.0.1", port, transport.upper(), **options)  # type: ignore[arg-type]
        endpoint = await SIPEndpoint.start(ua, on_event=on_event)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        start = os.times()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        end = os.times()
        used = (end.user - start.user) + (end.system - start.system)
        calls = max(ended, 1)
        # the kernel's share is mostly loopback delivery done in the sender's
        # context: what the stack's Python costs is the user share
        print(json.dumps({"loop": loop_name, "calls_ended": ended, "uas_cpu_s": used,
                          "uas_cpu_us_per_call": used / calls * 1e6,
                          "uas_user_us_per_call": (end.user - start.user) / calls * 1e6,
                          "uas_system_us_per_call": (end.system - start.system) / calls * 1e6}),
              flush=True)
        await endpoint.close()

    profiler = None
    if profile is not None:  # --profile: where the UAS's CPU per call goes
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    loop_name = "asyncio"
    if loop != "asyncio":
        try:
            import uvloop

            run, loop_name = uvloop.run, "uvloop"
        except ImportError:
            if loop == "uvloop":
                raise
    run(main())
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)


def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def measure(rate: int, calls: int, transport: str = "udp", auth: bool = False,
            profile: str | None = None, loop: str = "auto") -> dict[str, object]:
    """Run one SIPp campaign against a fresh UAS; return the figures."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp not found: apt-get install sip-tester")
    port, sipp_port = free_port(), free_port()
    budget = calls / rate + 15
    uas = subprocess.Popen(
        [*pinned(0), sys.executable, __file__, "--serve", str(port), "--transport", transport,
         "--seconds", str(budget + 2), "--loop", loop, *(["--auth"] if auth else []),
         *(["--profile", profile] if profile else [])],
        stdout=subprocess.PIPE, text=True)
    try:
        assert uas.stdout is not None  # invariant: stdout=PIPE
        if uas.stdout.readline().strip() != "ready":
            raise SystemExit("the UAS did not start")
        # -auth_uri: SIPp digests "sip:host:port" unless told the Request-URI
        scenario = (["-sf", str(HERE / "sipp" / "uac_digest.xml"), "-au", "sipp", "-ap", "sipp",
                     "-s", "service", "-auth_uri", f"service@127.0.0.1:{port}"]
                    if auth else ["-sn", "uac"])
        started = time.monotonic()
        result = subprocess.run(
            [*pinned(1), sipp, *scenario, f"127.0.0.1:{port}", "-i", "127.0.0.1",
             "-p", str(sipp_port), "-t", "u1" if transport == "udp" else "t1",
             "-r", str(rate), "-m", str(calls), "-l", str(max(rate * 4, 100)),
             "-nostdin", "-timeout", str(int(budget)), "-timeout_error", "-trace_stat",
             "-stf", os.devnull],
            capture_output=True, text=True, timeout=budget + 30)
        elapsed = time.monotonic() - started
        out = result.stdout
    finally:
        uas.terminate()
        try:
            uas_out, _ = uas.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas_out, _ = uas.communicate()
    successful = _cumulative(out, "Successful call")
    failed = _cumulative(out, "Failed call")
    rate_line = re.search(r"Call Rate\s*\|[^|]*\|\s*([0-9.]+) cps", out)
    figures: dict[str, object] = {
        "transport": transport, "auth": auth, "target_rate": rate, "calls": calls,
        "successful": successful, "failed": failed, "sipp_exit": result.returncode,
        "achieved_cps": float(rate_line.group(1)) if rate_line else calls / elapsed,
    }
    for line in uas_out.splitlines():
        if line.startswith("{"):
            figures.update(json.loads(line))
    return figures


def _cumulative(out: str, label: str) -> int:
    m = re.search(label + r"\s*\|\s*[0-9]+\s*\|\s*([0-9]+)", out)
    return int(m.group(1)) if m else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    parser.add_argument("--auth", action="store_true")
    parser.add_argument("--quick", action="store_true", help="200 calls at 200 CPS")
    parser.add_argument("--profile", metavar="FILE",
                        help="run the UAS under cProfile and write its stats to FILE")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="the UAS's event loop (auto: uvloop when installed)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.transport, args.auth, args.seconds, args.profile, args.loop)
        return
    if args.quick:
        args.rate, args.calls = 200, 200
    figures = measure(args.rate, args.calls, args.transport, args.auth, args.profile, args.loop)
    print(json.dumps(figures, indent=2))
    print(f"{figures['achieved_cps']:.0f} calls/s over {args.transport.upper()}"
          f"{' with digest auth' if args.auth else ''} ({figures.get('loop')}): "
          f"{figures['successful']} successful, "
          f"{figures['failed']} failed")
    if figures["failed"] != 0 or figures["successful"] != args.calls:
        sys.exit(1)


if __name__ == "__main__":
    main()
