"""SIP message codec: parse and serialize one INVITE, Cython build vs pure build.

Both builds are the same source (rtpcore/sip/_codec.py); each benchmark first
checks that the build's output equals the pure build's, and records it. The
calls-per-second figure against SIPp lives in bench/sip_cps.py; a quick pass
of it runs here when SIPp is installed.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

INVITE = (
    b"INVITE sip:+15551234567@trunk.example.com;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.4:5060;branch=z9hG4bK3f2a.1;received=198.51.100.4\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Caller Name" <sip:+15557654321@carrier.example.net>;tag=as5f2b1c9d\r\n'
    b"To: <sip:+15551234567@trunk.example.com>\r\n"
    b"Call-ID: 6b7e2c5a1f3d4e8b9a0c1d2e3f4a5b6c@198.51.100.4\r\n"
    b"CSeq: 102 INVITE\r\n"
    b"Contact: <sip:+15557654321@198.51.100.4:5060;transport=udp>\r\n"
    b"Record-Route: <sip:198.51.100.4;lr;ftag=as5f2b1c9d>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\n"
    b"Supported: replaces, timer\r\n"
    b"User-Agent: Carrier SBC 4.2\r\n"
    b"P-Asserted-Identity: <sip:+15557654321@carrier.example.net>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 249\r\n\r\n"
    b"v=0\r\no=root 1849320475 1849320475 IN IP4 198.51.100.20\r\ns=Carrier\r\n"
    b"c=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 18432 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)

PURE = importlib.import_module("rtpcore.sip._codec")
BUILDS = {"pure": PURE}
try:
    BUILDS["cython"] = importlib.import_module("rtpcore.sip._codec_c")
except ImportError:  # a build without the extension: the pure row alone
    pass
REFERENCE = PURE.parse_message(INVITE).encode()


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.benchmark(group="sip-parse-invite")
def test_parse_invite(benchmark, build: str) -> None:  # type: ignore[no-untyped-def]
    codec = BUILDS[build]
    benchmark.extra_info["agrees"] = codec.parse_message(INVITE).encode() == REFERENCE
    assert benchmark.extra_info["agrees"]
    benchmark(codec.parse_message, INVITE)


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.benchmark(group="sip-serialize-invite")
def test_serialize_invite(benchmark, build: str) -> None:  # type: ignore[no-untyped-def]
    message = BUILDS[build].parse_message(INVITE)
    benchmark.extra_info["agrees"] = message.encode() == REFERENCE
    assert benchmark.extra_info["agrees"]
    benchmark(message.encode)


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.benchmark(group="sip-stream-frame")
def test_stream_parser_100_invites(benchmark, build: str) -> None:  # type: ignore[no-untyped-def]
    codec = BUILDS[build]
    stream = INVITE * 100

    def frame() -> int:
        return len(codec.StreamParser().feed(stream))

    benchmark.extra_info["agrees"] = frame() == 100
    assert benchmark.extra_info["agrees"]
    benchmark(frame)


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp (sip-tester) not installed")
@pytest.mark.benchmark(group="sip-calls-per-second")
def test_sipp_calls_per_second_quick(benchmark) -> None:  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(Path(__file__).parent))
    from sip_cps import measure

    figures = benchmark.pedantic(measure, args=(200, 200), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    benchmark.extra_info["agrees"] = figures["failed"] == 0 and figures["successful"] == 200
    assert benchmark.extra_info["agrees"], figures
