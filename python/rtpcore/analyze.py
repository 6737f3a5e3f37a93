"""RTP stream analysis of packet captures: ``rtpcore analyze CAPTURE``.

Reads a pcap or pcapng file (Ethernet, Linux cooked, loopback or raw IP
links; IPv4 and IPv6), finds every RTP stream by 5-tuple and SSRC, and
reports per stream its codec, packets, loss, duplicates, out-of-order
arrivals, sequence errors, the largest gap between arrivals (max delta),
the RFC 3550 A.8 jitter (peak and mean, in ms) and the RTCP seen about it.
UDP datagrams that are not RTP or RTCP are skipped and counted.

The file is read here in chunks; every frame is decoded and counted in the
Rust core (``rtpcore._core.CaptureAnalyzer``).

>>> report = analyze("capture.pcap")  # doctest: +SKIP
>>> for stream in report["streams"]:  # doctest: +SKIP
...     print(stream["ssrc"], stream["codec"], stream["lost"], stream["max_jitter_ms"])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from rtpcore._core import CaptureAnalyzer, CaptureStreamPackets

__all__ = ["CaptureAnalyzer", "CaptureStreamPackets", "analyze", "format_report", "stream_packets"]

#: Bytes read per call into the core; large enough that the per-call cost vanishes.
CHUNK_SIZE = 1 << 20


def analyze(
    path: str | os.PathLike[str],
    *,
    clock_rates: Mapping[int, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Analyzes the capture at ``path``.

    ``clock_rates`` maps dynamic payload types to their RTP clock rate (as
    negotiated in SDP); static payload types (RFC 3551) are known. Streams of
    a payload type without a clock rate get no jitter figures. ``progress``
    is called with ``(bytes read, file size)`` after each chunk.

    Returns ``{"streams": [...], "counters": {...}}`` (JSON-ready). Raises
    :class:`rtpcore.errors.ParseError` (layer ``"capture"``) when the file is
    not a pcap or pcapng file or its framing is broken; bad packets inside a
    good file are only counted.
    """
    analyzer = CaptureAnalyzer(dict(clock_rates or {}))
    size = os.path.getsize(path)
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            analyzer.feed(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, size)
    return analyzer.finish()


def stream_packets(path: str | os.PathLike[str], stream: Mapping[str, Any]) -> list[tuple[float, bytes]]:
    """The RTP packets of one ``stream`` of an :func:`analyze` report, read
    again from the capture at ``path``, as ``(capture_time_seconds, bytes)``
    in capture order: the input of :func:`rtpcore.jitter.replay`."""
    reader = CaptureStreamPackets(
        stream["source"], stream["source_port"], stream["destination"], stream["destination_port"], stream["ssrc"]
    )
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            reader.feed(chunk)
    return reader.finish()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_report(report: Mapping[str, Any], *, codec_names: Mapping[int, str] | None = None) -> str:
    """The report as a table a person reads, one line per stream, then the counters."""
    names = dict(codec_names or {})
    header = (
        f"{'source':>21} {'destination':>21} {'ssrc':>10} {'codec':>8} {'pkts':>7} {'lost':>6} "
        f"{'dup':>4} {'ooo':>4} {'seqerr':>6} {'maxΔ ms':>8} {'maxJ ms':>8} {'meanJ ms':>8} {'rtcp SR/RB':>10}"
    )
    lines = [header]
    for s in report["streams"]:
        codec = names.get(s["payload_type"]) or s["codec"] or f"pt{s['payload_type']}"
        lost_pct = 100 * s["lost"] / s["expected"] if s["expected"] else 0.0
        lines.append(
            f"{_endpoint(s['source'], s['source_port']):>21} {_endpoint(s['destination'], s['destination_port']):>21} "
            f"{s['ssrc']:#010x} {codec:>8} {s['packets']:>7} {s['lost']:>6} {s['duplicates']:>4} "
            f"{s['out_of_order']:>4} {s['sequence_errors']:>6} {s['max_delta_ms']:>8.2f} "
            f"{_ms(s['max_jitter_ms']):>8} {_ms(s['mean_jitter_ms']):>8} "
            f"{s['rtcp']['sender_reports']:>5}/{s['rtcp']['report_blocks']:<4}"
            + (f"  ({lost_pct:.1f}% lost)" if s["lost"] > 0 else "")
        )
    if not report["streams"]:
        lines.append("(no RTP streams)")
    c = report["counters"]
    lines.append(
        f"{c['frames']} frames: {c['udp']} UDP, {c['rtp']} RTP in {len(report['streams'])} streams, "
        f"{c['rtcp']} RTCP, {c['skipped_udp']} other UDP skipped, {c['not_udp']} not UDP, "
        f"{c['fragments']} IP fragments, {c['malformed']} malformed"
    )
    return "\n".join(lines)


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
