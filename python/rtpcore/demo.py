"""The demo capture: two calls' worth of RTP with the faults a VoIP engineer
hunts for, built with rtpcore's own packet builders.

:func:`write_demo_capture` writes a pcap holding

- a G.711 µ-law call leg over IPv4 with 2 % random loss, network jitter,
  a few reordered and duplicated packets and a talk spurt after silence;
- the A-law leg coming back, cleaner, across the 16-bit sequence wrap;
- a G.722 stream over IPv6 with a burst of loss;
- RTCP on the odd ports: SR + SDES every 5 s from each sender, RR from the
  receivers, BYE at the end;
- noise: random UDP datagrams, a DNS query, and single datagrams that look
  like RTP but never form a stream.

Everything comes from a seeded generator, so the same seed gives the same
bytes (the tshark comparison test relies on it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from rtpcore.pcap import PcapWriter
from rtpcore.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SDESChunk,
    SDESItemType,
    SenderReport,
    SourceDescription,
    build_compound,
)
from rtpcore.rtp import RTPPacket

__all__ = ["write_demo_capture"]

#: Capture start, Unix seconds (2026-01-01 12:00 UTC).
START = 1_767_268_800.0
#: 1900-01-01 to 1970-01-01 in seconds, for NTP timestamps.
NTP_EPOCH_OFFSET = 2_208_988_800


@dataclass
class Leg:
    """One direction of a call: who sends what, and what the network does to it."""

    source: tuple[str, int]
    destination: tuple[str, int]
    ssrc: int
    payload_type: int
    first_sequence: int
    seconds: float
    loss: float = 0.0
    burst_loss: tuple[int, int] | None = None
    jitter_ms: float = 1.0
    reorder_every: int = 0
    duplicate_every: int = 0
    silence: tuple[int, int] | None = None
    cname: bytes = b"leg@rtpcore.invalid"


def _ntp(timestamp: float) -> int:
    seconds = timestamp + NTP_EPOCH_OFFSET
    return (int(seconds) << 32) | int((seconds % 1) * (1 << 32))


def _media(leg: Leg, rng: random.Random) -> list[tuple[float, bytes]]:
    """The leg's RTP packets as (arrival time, datagram), arrival order."""
    arrivals: list[tuple[float, bytes]] = []
    packets = int(leg.seconds * 50)
    talking = True
    sequence = leg.first_sequence
    for i in range(packets):
        if leg.silence and leg.silence[0] <= i < leg.silence[1]:
            # Silence suppressed: nothing sent, the timestamp runs on.
            talking = False
            continue
        marker = i == 0 or not talking
        talking = True
        send = START + 0.2 + i * 0.020
        sequence += 1
        pkt = RTPPacket(
            payload_type=leg.payload_type,
            sequence_number=sequence & 0xFFFF,
            timestamp=(1000 + i * 160) & 0xFFFFFFFF,
            ssrc=leg.ssrc,
            marker=marker,
            payload=bytes(rng.getrandbits(8) for _ in range(160)),
        )
        lost = rng.random() < leg.loss or (leg.burst_loss and leg.burst_loss[0] <= i < leg.burst_loss[1])
        if lost and not marker:
            continue
        arrival = send + 0.030 + abs(rng.gauss(0, leg.jitter_ms / 1000))
        arrivals.append((arrival, bytes(pkt)))
        if leg.duplicate_every and i % leg.duplicate_every == leg.duplicate_every - 1:
            arrivals.append((arrival + 0.0005, bytes(pkt)))
    # Swap some neighbours so that they arrive out of order.
    if leg.reorder_every:
        for i in range(leg.reorder_every, len(arrivals) - 1, leg.reorder_every):
            (t1, p1), (t2, p2) = arrivals[i], arrivals[i + 1]
            arrivals[i], arrivals[i + 1] = (t1, p2), (t2, p1)
    return arrivals


def _report_about(peer: Leg, sent: int) -> ReportBlock:
    """A reception report with the loss and jitter the peer's leg was built with."""
    return ReportBlock(
        ssrc=peer.ssrc,
        fraction_lost=int(peer.loss * 256),
        cumulative_lost=int(peer.loss * sent),
        highest_sequence=peer.first_sequence + sent,
        jitter=int(peer.jitter_ms * 8),
    )


def _rtcp(leg: Leg, peer: Leg, sent: int) -> bytes:
    """A compound SR + RR block about the peer + SDES, as a sender reports."""
    elapsed = sent * 0.020
    now = START + 0.2 + elapsed
    return build_compound(
        [
            SenderReport(
                ssrc=leg.ssrc,
                ntp_timestamp=_ntp(now),
                rtp_timestamp=(1000 + sent * 160) & 0xFFFFFFFF,
                packet_count=sent,
                octet_count=sent * 160,
                reports=(_report_about(peer, sent),),
            ),
            SourceDescription(chunks=(SDESChunk(ssrc=leg.ssrc, items=((SDESItemType.CNAME, leg.cname),)),)),
        ]
    )


def _noise(rng: random.Random) -> list[tuple[float, tuple[str, int], tuple[str, int], bytes]]:
    noise = []
    for i in range(40):
        at = START + rng.uniform(0, 12)
        if i % 4 == 0:
            # A lone datagram that parses as RTP: never two in sequence.
            fake = RTPPacket(payload_type=0, sequence_number=rng.getrandbits(16), ssrc=rng.getrandbits(32), payload=b"x" * 20)
            noise.append((at, ("10.0.0.99", 40000 + i), ("10.0.0.2", 20000), bytes(fake)))
        else:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
            noise.append((at, ("10.0.0.99", 40000 + i), ("10.0.0.2", 9999), payload))
    dns = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
    noise.append((START + 1.0, ("10.0.0.1", 53000), ("10.0.0.53", 53), dns))
    return noise


def write_demo_capture(path: str | Path, *, seconds: float = 12.0, seed: int = 2026) -> None:
    """Writes the demo capture to ``path``; see the module documentation."""
    rng = random.Random(seed)
    caller = Leg(
        ("10.0.0.1", 20000), ("10.0.0.2", 30000), 0x1A2B3C4D, 0, 1000, seconds,
        loss=0.02, jitter_ms=4.0, reorder_every=97, duplicate_every=151, silence=(300, 340),
        cname=b"caller@10.0.0.1",
    )
    callee = Leg(
        ("10.0.0.2", 30000), ("10.0.0.1", 20000), 0x5E6F7081, 8, 65400, seconds,
        loss=0.005, jitter_ms=1.0, cname=b"gateway@10.0.0.2",
    )
    wideband = Leg(
        ("2001:db8::10", 40000), ("2001:db8::20", 50000), 0x0BADCAFE, 9, 7, seconds / 2,
        burst_loss=(120, 135), jitter_ms=2.0, cname=b"wb@2001:db8::10",
    )
    events: list[tuple[float, tuple[str, int], tuple[str, int], bytes]] = []
    for leg in (caller, callee, wideband):
        events.extend((t, leg.source, leg.destination, p) for t, p in _media(leg, rng))
    for leg, peer in ((caller, callee), (callee, caller)):
        rtcp_source = (leg.source[0], leg.source[1] + 1)
        rtcp_destination = (leg.destination[0], leg.destination[1] + 1)
        for sent in range(250, int(seconds * 50), 250):
            events.append((START + 0.2 + sent * 0.020 + 0.001, rtcp_source, rtcp_destination, _rtcp(leg, peer, sent)))
        bye = build_compound(
            [
                ReceiverReport(ssrc=leg.ssrc, reports=(_report_about(peer, int(seconds * 50)),)),
                Bye(sources=(leg.ssrc,), reason=b"call ended"),
            ]
        )
        events.append((START + 0.3 + seconds, rtcp_source, rtcp_destination, bye))
    events.extend(_noise(rng))
    events.sort(key=lambda e: e[0])
    with open(path, "wb") as f:
        writer = PcapWriter(f)
        for at, source, destination, payload in events:
            writer.write_udp(at, source, destination, payload)
