"""The ``rtpcore`` command.

- ``rtpcore analyze CAPTURE [--json] [--payload-type PT=NAME/RATE ...]
  [--play OUT.wav [--stream N]]``: RTP stream analysis of a pcap or pcapng
  file (see :mod:`rtpcore.analyze`); ``--play`` also decodes one G.711 or
  G.722 stream through the jitter buffer, with the capture's arrival times,
  to a WAV file and draws its delay plot beside it.
- ``rtpcore gateway [--config FILE]``: runs the SIP-to-agent gateway (see
  :mod:`rtpcore.gateway`) until interrupted, then drains the calls.
- ``rtpcore call NUMBER [--agent URL] [--config FILE] [--trunk NAME] [--from
  NUMBER] ...``: places one call through the gateway's trunk (see
  :mod:`rtpcore.gateway.outbound`), bridges it to the agent and prints the
  call report when it ends; exit status 1 with the SIP cause if it was not
  answered.
- ``rtpcore demo``: starts the gateway with its default agent and calls it
  over loopback with rtpcore's own user agent (see :mod:`rtpcore.gateway.demo`).
- ``rtpcore demo capture [--out DIR]``: writes a demo capture (see
  :mod:`rtpcore.demo`) and analyzes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from rtpcore.analyze import analyze, format_report, stream_packets
from rtpcore.errors import ParseError

__all__ = ["main"]


class _ProgressBar:
    """A progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._enabled = sys.stderr.isatty()
        self._last_draw = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self._enabled or (now - self._last_draw < 0.1 and done < total):
            return
        self._last_draw = now
        width = 40
        filled = width * done // total if total else width
        sys.stderr.write(f"\r{self._label} [{'#' * filled}{'.' * (width - filled)}] {100 * done // max(total, 1):3d}%")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _payload_type(text: str) -> tuple[int, str, int]:
    """``96=opus/48000`` -> (96, "opus", 48000)."""
    try:
        pt, _, rest = text.partition("=")
        name, _, rate = rest.partition("/")
        number, clock = int(pt), int(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PT=NAME/RATE such as 96=opus/48000, got {text!r}") from None
    if not 0 <= number <= 127 or clock <= 0:
        raise argparse.ArgumentTypeError(f"payload type must be 0..127 and the rate positive: {text!r}")
    return number, name, clock


def _analyze_and_print(
    path: Path, as_json: bool, payload_types: Sequence[tuple[int, str, int]]
) -> dict[str, Any] | None:
    """Analyzes and prints the capture; the report, or None after an error."""
    try:
        report = analyze(
            path,
            clock_rates={pt: rate for pt, _, rate in payload_types},
            progress=_ProgressBar(path.name),
        )
    except (OSError, ParseError) as e:
        print(f"rtpcore analyze: {path}: {e}", file=sys.stderr)
        return None
    names = {pt: name for pt, name, _ in payload_types}
    for stream in report["streams"]:
        stream["codec"] = names.get(stream["payload_type"], stream["codec"])
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(format_report(report))
    return report


#: Payload types the jitter buffer decodes (RFC 3551 static assignments).
_PLAYABLE = {0: "PCMU", 8: "PCMA", 9: "G722"}
#: ``rtpcore gateway``: generation-1 collections before a full one may come
#: (CPython's default: 10; see ``_serve``).
FULL_GC_AFTER = 100


def _play(capture: Path, report: dict[str, Any], out: Path, stream_number: int | None) -> int:
    """Replays one stream of ``report`` through the jitter buffer to ``out``."""
    import wave

    from rtpcore.jitter import plot_timeline, replay

    streams = report["streams"]
    if stream_number is None:
        candidates = [i for i, s in enumerate(streams) if s["payload_type"] in _PLAYABLE]
        if not candidates:
            print("rtpcore analyze --play: no G.711 or G.722 stream in the capture", file=sys.stderr)
            return 1
        index = candidates[0]
    elif 1 <= stream_number <= len(streams):
        index = stream_number - 1
    else:
        print(f"rtpcore analyze --play: --stream must be 1..{len(streams)}", file=sys.stderr)
        return 1
    stream = streams[index]
    codec = _PLAYABLE.get(stream["payload_type"])
    if codec is None:
        print(f"rtpcore analyze --play: stream {index + 1} is payload type {stream['payload_type']}, "
              "not G.711 or G.722", file=sys.stderr)
        return 1
    pcm, timeline = replay(stream_packets(capture, stream), codec=codec, payload_type=stream["payload_type"])
    rate = 16000 if codec == "G722" else 8000
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    stats = timeline.stats
    print(f"stream {index + 1} ({codec}, ssrc {stream['ssrc']:#010x}) -> {out}: {len(pcm) / rate:.2f} s, "
          f"{stats.concealed_ms:.0f} ms concealed, {stats.late} late, {stats.lost} lost")
    try:
        plot = out.with_suffix(".png")
        plot_timeline(timeline, plot, title=f"{capture.name} stream {index + 1} ({codec})")
        print(f"delay plot -> {plot}")
    except ImportError:
        print("(install matplotlib for the delay plot)", file=sys.stderr)
    return 0


def _cmd_analyze(args: Any) -> int:
    capture = Path(args.capture)
    report = _analyze_and_print(capture, args.json, args.payload_type)
    if report is None:
        return 1
    return 0 if args.play is None else _play(capture, report, Path(args.play), args.stream)


def _cmd_demo(args: Any) -> int:
    from rtpcore.demo import write_demo_capture

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    capture = out / "demo.pcap"
    started = time.monotonic()
    write_demo_capture(capture)
    print(f"wrote {capture} ({capture.stat().st_size} bytes) in {time.monotonic() - started:.2f} s")
    print(f"$ rtpcore analyze {capture}")
    return 0 if _analyze_and_print(capture, args.json, []) is not None else 1


def _gateway_config(command: str, path: str | None) -> Any:
    """The gateway configuration with logging set up, or None after printing
    why it is bad."""
    from rtpcore.errors import ConfigError
    from rtpcore.gateway import load_config, logs

    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"rtpcore {command}: bad configuration: {e}", file=sys.stderr)
        return None
    logs.configure(config.logging)
    return config


def _cmd_gateway(args: Any) -> int:
    config = _gateway_config("gateway", args.config)
    if config is None:
        return 2
    run: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run
    if args.loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                print("rtpcore gateway: --loop uvloop: uvloop is not installed", file=sys.stderr)
                return 2
        else:
            run = uvloop.run
    return run(_serve(config))


async def _serve(config: Any) -> int:
    import gc
    import signal

    from rtpcore.gateway import Gateway

    gateway = Gateway(config)
    try:
        await gateway.start()
    except OSError as e:  # a port in use, a certificate that does not load ...
        print(f"rtpcore gateway: cannot start: {e}", file=sys.stderr)
        return 1
    http = None
    if config.http.listen is not None:
        from rtpcore.gateway.http import GatewayHTTP

        host, _, port = config.http.listen.rpartition(":")
        http = GatewayHTTP(gateway)
        try:
            await http.start(host.strip("[]"), int(port))
        except OSError as e:
            print(f"rtpcore gateway: cannot listen for HTTP on {config.http.listen}: {e}",
                  file=sys.stderr)
            await gateway.stop(drain_timeout=0)
            return 1
        print(f"HTTP (REST subset, /metrics) on {config.http.listen}", file=sys.stderr)
    # What was imported and built up to here lives as long as the process:
    # out of the cyclic GC's sight, its full collections no longer walk it
    # (about 40,000 objects, a pause of some 25 ms: an audible gap on
    # every call at once).
    gc.freeze()
    # Full collections (generation 2) walk every live call's objects (some
    # 170 each): 15-50 ms at 300-500 calls, a gap on every call at once.
    # CPython makes one once ten generation-1 collections have come and the
    # objects promoted since the last one are a quarter of those it kept
    # then. A call's set-up makes about 0.04 generation-1 collections
    # (21 while 500 calls were placed) and running calls almost none (they
    # free what they allocate by reference counting), so by default a ramp
    # to 500 calls made one or two. Ended calls leave no cycle behind (the
    # gateway's tests check it), so waiting for a hundred generation-1
    # collections (some 2,500 call set-ups) costs no memory for them: full
    # collections ten times rarer.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_GC_AFTER)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    for transport in ("UDP", "TCP", "TLS"):
        if transport in gateway.transports:
            host, port = gateway.address(transport)
            print(f"listening for SIP over {transport} on {host}:{port}", file=sys.stderr)
    await stopping.wait()
    print(f"stopping: draining {len(gateway.calls)} call(s) for up to "
          f"{config.drain_timeout:g} s", file=sys.stderr)
    await gateway.stop()
    if http is not None:
        await http.stop()
    return 0


def _cmd_call(args: Any) -> int:
    config = _gateway_config("call", args.config)
    return 2 if config is None else asyncio.run(_call(config, args))


async def _call(config: Any, args: Any) -> int:
    """One call out; waits for its end and prints its report."""
    from rtpcore.errors import CallFailed, CallRateExceeded
    from rtpcore.gateway import Gateway
    from rtpcore.gateway.outbound import Outbound, twilio_call_status

    gateway = Gateway(config, agent=args.agent)
    ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    class _Ended:
        def call_ended(self, call: Any, report: Any) -> None:
            if not ended.done():
                ended.set_result(report)

    try:  # a bad number or trunk is reported before anything starts listening
        outbound = Outbound(gateway, region=args.region)
        trunk = outbound.trunk_for(args.trunk)
        outbound.target(args.number, trunk)
        outbound.caller_id(trunk, args.caller_id, args.caller_name)
    except ValueError as e:
        print(f"rtpcore call: {e}", file=sys.stderr)
        return 2
    gateway.add_listener(_Ended())
    try:
        await gateway.start()
    except OSError as e:
        print(f"rtpcore call: cannot start the gateway: {e}", file=sys.stderr)
        return 1
    try:
        call = await outbound.place_call(args.number, trunk=args.trunk,
                                         caller_id=args.caller_id,
                                         caller_name=args.caller_name, timeout=args.timeout)
        print(f"answered: {call.call_sid} -> {call.to_number}", file=sys.stderr)
        report = await ended
    except (ValueError, CallRateExceeded) as e:
        print(f"rtpcore call: {e}", file=sys.stderr)
        return 2
    except CallFailed as e:
        print(f"rtpcore call: {twilio_call_status(e.status_code)}: SIP {e.status_code} "
              f"{e.reason}", file=sys.stderr)
        return 1
    finally:
        await gateway.stop(drain_timeout=0)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0


def _cmd_demo_call(args: Any) -> int:
    from rtpcore.gateway.demo import run_demo

    return asyncio.run(run_demo(out=Path(args.out), speech=args.speech))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rtpcore", description="rtpcore: RTP/RTCP tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("analyze", help="RTP stream analysis of a pcap or pcapng file")
    p.add_argument("capture", help="a .pcap or .pcapng file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--payload-type",
        metavar="PT=NAME/RATE",
        type=_payload_type,
        action="append",
        default=[],
        help="name and clock rate of a dynamic payload type, e.g. 96=opus/48000 (repeatable)",
    )
    p.add_argument("--play", metavar="OUT.wav", help="decode one stream through the jitter buffer to a WAV file")
    p.add_argument("--stream", type=int, metavar="N",
                   help="with --play: the stream's line number in the report (default: the first G.711/G.722 one)")
    p.set_defaults(run=_cmd_analyze)
    g = commands.add_parser("gateway", help="run the SIP-to-agent gateway")
    g.add_argument("--config", metavar="FILE", help="TOML configuration (RTPCORE_* variables "
                   "override it; defaults without one)")
    g.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop: uvloop (its C loop costs the gateway less CPU per "
                   "message), the standard asyncio one, or auto: uvloop when it is installed")
    g.set_defaults(run=_cmd_gateway)
    o = commands.add_parser("call", help="place a call through the gateway's trunk to an agent")
    o.add_argument("number", help="E.164 (+15551234567), a national number (with --region or "
                   "the trunk's caller_id country) or a sip: URI")
    o.add_argument("--agent", help="ws://... or wss://... agent (default: the config's "
                   "agent.url)")
    o.add_argument("--config", metavar="FILE", help="TOML configuration (RTPCORE_* variables "
                   "override it)")
    o.add_argument("--trunk", help="trunk to call through (default: the only one configured)")
    o.add_argument("--from", dest="caller_id", metavar="NUMBER",
                   help="caller ID (default: the trunk's caller_id)")
    o.add_argument("--caller-name", help="display name sent in P-Asserted-Identity")
    o.add_argument("--region", help="region for numbers without a country code, e.g. US")
    o.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to ring before giving up (default: 60)")
    o.add_argument("--json", action="store_true", help="print the call report as JSON")
    o.set_defaults(run=_cmd_call)
    d = commands.add_parser("demo", help="call the gateway's default agent over loopback "
                            "(SRTP, G.722) and print the call report")
    d.add_argument("--out", default="out", help="directory for the recordings (default: out)")
    d.add_argument("--speech", metavar="WAV", help="what the caller says (default: a sample "
                   "from shared/audio, else a bundled prompt)")
    d.set_defaults(run=_cmd_demo_call)
    demo_commands = d.add_subparsers(dest="demo_command")
    c = demo_commands.add_parser("capture", help="write a demo capture under out/ and analyze it")
    c.add_argument("--out", default="out", help="directory for the capture (default: out)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(run=_cmd_demo)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except BrokenPipeError:
        # The reader went away (`rtpcore analyze x.pcap --json | head`):
        # stop quietly, and keep Python from complaining at exit.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
