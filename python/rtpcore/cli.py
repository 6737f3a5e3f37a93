"""The ``rtpcore`` command.

- ``rtpcore analyze CAPTURE [--json] [--payload-type PT=NAME/RATE ...]``: RTP
  stream analysis of a pcap or pcapng file (see :mod:`rtpcore.analyze`).
- ``rtpcore demo [--out DIR]``: writes a demo capture (see
  :mod:`rtpcore.demo`) and analyzes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtpcore.analyze import analyze, format_report
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


def _analyze_and_print(path: Path, as_json: bool, payload_types: Sequence[tuple[int, str, int]]) -> int:
    try:
        report = analyze(
            path,
            clock_rates={pt: rate for pt, _, rate in payload_types},
            progress=_ProgressBar(path.name),
        )
    except (OSError, ParseError) as e:
        print(f"rtpcore analyze: {path}: {e}", file=sys.stderr)
        return 1
    names = {pt: name for pt, name, _ in payload_types}
    for stream in report["streams"]:
        stream["codec"] = names.get(stream["payload_type"], stream["codec"])
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(format_report(report))
    return 0


def _cmd_analyze(args: Any) -> int:
    return _analyze_and_print(Path(args.capture), args.json, args.payload_type)


def _cmd_demo(args: Any) -> int:
    from rtpcore.demo import write_demo_capture

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    capture = out / "demo.pcap"
    started = time.monotonic()
    write_demo_capture(capture)
    print(f"wrote {capture} ({capture.stat().st_size} bytes) in {time.monotonic() - started:.2f} s")
    print(f"$ rtpcore analyze {capture}")
    return _analyze_and_print(capture, args.json, [])


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
    p.set_defaults(run=_cmd_analyze)
    d = commands.add_parser("demo", help="write a demo capture under out/ and analyze it")
    d.add_argument("--out", default="out", help="directory for the capture (default: out)")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.set_defaults(run=_cmd_demo)
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
