"""RTP parse and serialize, rtpcore against aiortc's RtpPacket, on a 172-byte
packet (12-byte header + 160 bytes of G.711) with and without a one-byte
header extension (audio level, RFC 6464), plus batch parsing.

Each benchmark first checks that the implementation's result agrees with the
reference fields and records it in ``extra_info["agrees"]``.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from aiortc import rtp as aiortc_rtp
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

from rtpcore.rtp import RTPPacket, parse_batch

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
PAYLOAD = bytes(range(160))
FIELDS = {"payload_type": 0, "sequence_number": 4321, "timestamp": 987654, "ssrc": 0x11223344, "marker": True}
BATCH = 1000


def aiortc_map() -> aiortc_rtp.HeaderExtensionsMap:
    m = aiortc_rtp.HeaderExtensionsMap()
    m.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri=AUDIO_LEVEL_URI)]))
    return m


EXTENSIONS_MAP = aiortc_map()
CASES = {
    "plain": bytes(RTPPacket(**FIELDS, payload=PAYLOAD)),
    # One 1-byte element (audio level: voice, -42 dBov) plus padding to 4 bytes.
    "one-extension": bytes(RTPPacket(**FIELDS, extensions={1: bytes([0x80 | 42])}, payload=PAYLOAD[:156])),
}


def fields_of(pkt: Any) -> tuple[Any, ...]:
    return (pkt.payload_type, bool(pkt.marker), pkt.sequence_number, pkt.timestamp, pkt.ssrc, bytes(pkt.payload))


def expected_fields(case: str) -> tuple[Any, ...]:
    return fields_of(RTPPacket.parse(CASES[case]))


def aiortc_packet(case: str) -> aiortc_rtp.RtpPacket:
    return aiortc_rtp.RtpPacket.parse(CASES[case], EXTENSIONS_MAP)


PARSERS: dict[str, Callable[[bytes], Any]] = {
    "rtpcore": RTPPacket.parse,
    "aiortc": lambda wire: aiortc_rtp.RtpPacket.parse(wire, EXTENSIONS_MAP),
}


@pytest.mark.parametrize("impl", PARSERS)
@pytest.mark.parametrize("case", CASES)
def test_parse(benchmark: Any, case: str, impl: str) -> None:
    benchmark.group = f"rtp-parse-{case}"
    parse, wire = PARSERS[impl], CASES[case]
    pkt = parse(wire)
    agrees = fields_of(pkt) == expected_fields(case)
    if case == "one-extension":
        level = pkt.extension(1) if impl == "rtpcore" else bytes([0x80 | pkt.extensions.audio_level[1]])
        agrees = agrees and level == bytes([0x80 | 42])
    benchmark.extra_info["agrees"] = agrees
    assert agrees
    benchmark(parse, wire)


@pytest.mark.parametrize("impl", ["rtpcore-serialize", "rtpcore-bytes", "aiortc"])
@pytest.mark.parametrize("case", CASES)
def test_serialize(benchmark: Any, case: str, impl: str) -> None:
    """A packet object that exists already, to its wire bytes."""
    benchmark.group = f"rtp-serialize-{case}"
    # Each side is timed calling what its users call, with no wrapper around
    # it: rtpcore both as `pkt.serialize()` and as `bytes(pkt)`.
    if impl == "rtpcore-serialize":
        serialize: Callable[..., bytes] = RTPPacket.parse(CASES[case]).serialize
        args: tuple[Any, ...] = ()
    elif impl == "rtpcore-bytes":
        serialize, args = bytes, (RTPPacket.parse(CASES[case]),)
    else:
        serialize, args = aiortc_packet(case).serialize, (EXTENSIONS_MAP,)
    agrees = serialize(*args) == CASES[case]
    benchmark.extra_info["agrees"] = agrees
    assert agrees
    benchmark(serialize, *args)


def build_rtpcore(case: str) -> bytes:
    if case == "plain":
        return bytes(RTPPacket(**FIELDS, payload=PAYLOAD))
    return bytes(RTPPacket(**FIELDS, extensions={1: b"\xaa"}, payload=PAYLOAD[:156]))


def build_aiortc(case: str) -> bytes:
    pkt = aiortc_rtp.RtpPacket(
        payload_type=0, marker=1, sequence_number=4321, timestamp=987654, ssrc=0x11223344,
        payload=PAYLOAD if case == "plain" else PAYLOAD[:156],
    )
    if case != "plain":
        pkt.extensions.audio_level = (True, 42)
    return pkt.serialize(EXTENSIONS_MAP)


@pytest.mark.parametrize("impl", ["rtpcore", "aiortc"])
@pytest.mark.parametrize("case", CASES)
def test_build_and_serialize(benchmark: Any, case: str, impl: str) -> None:
    """Fields to wire bytes: construct the packet object and serialize it."""
    benchmark.group = f"rtp-build-{case}"
    build = build_rtpcore if impl == "rtpcore" else build_aiortc
    agrees = build(case) == CASES[case]
    benchmark.extra_info["agrees"] = agrees
    assert agrees
    benchmark(build, case)


@pytest.mark.parametrize("impl", ["rtpcore", "aiortc"])
def test_batch_parse(benchmark: Any, impl: str) -> None:
    """1000 datagrams per call; divide the time by 1000 for the per-packet cost."""
    benchmark.group = "rtp-batch-parse-1000"
    datagrams = [bytes(RTPPacket(**{**FIELDS, "sequence_number": i}, payload=PAYLOAD)) for i in range(BATCH)]
    if impl == "rtpcore":
        run: Callable[[], list[Any]] = lambda: parse_batch(datagrams)  # noqa: E731
    else:
        run = lambda: [aiortc_rtp.RtpPacket.parse(d) for d in datagrams]  # noqa: E731
    parsed = run()
    agrees = [p.sequence_number for p in parsed] == list(range(BATCH)) and all(bytes(p.payload) == PAYLOAD for p in parsed)
    benchmark.extra_info["agrees"] = agrees
    benchmark.extra_info["packets_per_call"] = BATCH
    assert agrees
    benchmark(run)
