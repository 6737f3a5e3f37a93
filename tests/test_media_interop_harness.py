"""The tools the media interop tests measure with, held to account so their
verdicts mean something: the impairment proxy relays both ways, and its
loss, jitter, reordering and duplication happen at the rates asked, the same
way for the same seed; the audio score finds speech wherever it sits in a
recording and gives the codec's reference PESQ; tshark's stream analysis, as
parsed, reports loss and jitter when a stream has them."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import numpy as np
import pytest
from impairment_proxy import Impairment, ImpairmentProxy
from media_peers import SPEECH, align, capture, correlation, rtp_only, rtp_streams, score, speech
from shared_data import shared_json
from sip_peers import require

from rtpcore import g711
from rtpcore.pcap import PcapWriter
from rtpcore.rtp import RTPPacket

COUNT = 400


class Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[tuple[float, bytes]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((time.monotonic(), data))


async def relay(count: int = COUNT, spacing_s: float = 0.0, seed: int = 0,
                settle_s: float = 0.3, **impairment: float) -> tuple[list[tuple[float, bytes]],
                                                                      list[float], ImpairmentProxy]:
    """Send ``count`` numbered datagrams A -> B through a proxy; what B got,
    when each was sent, and the proxy."""
    loop = asyncio.get_running_loop()
    a, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    b_sink = Sink()
    b, _ = await loop.create_datagram_endpoint(lambda: b_sink, local_addr=("127.0.0.1", 0))
    proxy = await ImpairmentProxy.start(a.get_extra_info("sockname"), b.get_extra_info("sockname"),
                                        a_to_b=Impairment(**impairment), seed=seed)
    sent = []
    try:
        for i in range(count):
            sent.append(time.monotonic())
            a.sendto(i.to_bytes(4, "big"), ("127.0.0.1", proxy.port_for_a))
            await asyncio.sleep(spacing_s)
        await asyncio.sleep(settle_s)
    finally:
        proxy.close()
        a.close()
        b.close()
    return b_sink.received, sent, proxy


def numbers(received: list[tuple[float, bytes]]) -> list[int]:
    return [int.from_bytes(data, "big") for _, data in received]


def within_binomial(observed: int, n: int, p: float) -> bool:
    return abs(observed - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


async def test_relays_both_ways_untouched() -> None:
    loop = asyncio.get_running_loop()
    a_sink, b_sink = Sink(), Sink()
    a, _ = await loop.create_datagram_endpoint(lambda: a_sink, local_addr=("127.0.0.1", 0))
    b, _ = await loop.create_datagram_endpoint(lambda: b_sink, local_addr=("127.0.0.1", 0))
    proxy = await ImpairmentProxy.start(a.get_extra_info("sockname"), b.get_extra_info("sockname"))
    try:
        for i in range(50):
            a.sendto(b"a%d" % i, ("127.0.0.1", proxy.port_for_a))
            b.sendto(b"b%d" % i, ("127.0.0.1", proxy.port_for_b))
        await asyncio.sleep(0.2)
    finally:
        proxy.close()
        a.close()
        b.close()
    assert [d for _, d in b_sink.received] == [b"a%d" % i for i in range(50)]
    assert [d for _, d in a_sink.received] == [b"b%d" % i for i in range(50)]
    assert proxy.stats["a_to_b"].delivered == proxy.stats["b_to_a"].delivered == 50


async def test_loss_rate_and_seeded_replay() -> None:
    first, _, proxy = await relay(loss=0.2, seed=7)
    again, _, _ = await relay(loss=0.2, seed=7)
    other, _, _ = await relay(loss=0.2, seed=8)
    assert proxy.stats["a_to_b"].dropped == COUNT - len(first)
    assert within_binomial(COUNT - len(first), COUNT, 0.2)
    assert numbers(first) == numbers(again)  # same seed, same drops
    assert numbers(first) != numbers(other)
    assert numbers(first) == sorted(numbers(first))  # loss alone keeps the order


async def test_reordering_lets_later_datagrams_overtake() -> None:
    received, _, proxy = await relay(spacing_s=0.002, reorder=0.1, reorder_ms=20)
    order = numbers(received)
    assert sorted(order) == list(range(COUNT))  # nothing lost or duplicated
    stats = proxy.stats["a_to_b"]
    assert within_binomial(stats.held_back, COUNT, 0.1)
    overtaken = sum(1 for x, y in zip(order, order[1:], strict=False) if y < x)
    assert overtaken > 0 and stats.out_of_order >= overtaken


async def test_duplicates_arrive_twice() -> None:
    received, _, proxy = await relay(duplicate=0.1)
    order = numbers(received)
    duplicated = proxy.stats["a_to_b"].duplicated
    assert within_binomial(duplicated, COUNT, 0.1)
    assert len(order) == COUNT + duplicated and set(order) == set(range(COUNT))


async def test_delay_and_jitter_spread_arrivals() -> None:
    received, sent, proxy = await relay(count=100, spacing_s=0.005, delay_ms=30, jitter_ms=40)
    delays = sorted(t - sent[int.from_bytes(d, "big")] for t, d in received)
    assert len(delays) == 100
    assert delays[0] >= 0.029  # the constant part is always there
    # 40 ms of jitter on datagrams 5 ms apart lets later ones overtake
    # earlier ones (a stalled machine delays, but never reorders, timers)
    assert proxy.stats["a_to_b"].out_of_order > 10


@pytest.mark.parametrize("field", ["loss", "reorder", "duplicate"])
def test_probabilities_are_checked(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Impairment(**{field: 1.5})


def test_delays_are_checked() -> None:
    with pytest.raises(ValueError, match="jitter_ms"):
        Impairment(jitter_ms=-1)


# --- scoring ---------------------------------------------------------------------------


def test_align_finds_speech_after_a_delay() -> None:
    sent = speech(SPEECH, 8000)
    rng = np.random.default_rng(3)
    recording = np.concatenate([rng.integers(-20, 20, 1234), sent, np.zeros(500)]).astype(np.int16)
    assert np.array_equal(align(sent, recording), sent)
    assert correlation(sent, align(sent, recording)) == pytest.approx(1.0)
    assert correlation(sent, np.roll(sent, 400)) < 0.5  # a misaligned copy scores low


def test_score_of_g711_speech_matches_the_reference_pesq() -> None:
    sent = speech(SPEECH, 8000)
    decoded = g711.ulaw_decode(g711.ulaw_encode(sent))
    delayed = np.concatenate([np.zeros(801, dtype=np.int16), decoded])
    reference = shared_json("audio", "pesq_reference.json")["items"][SPEECH]["pesq"]
    corr, quality = score(sent, delayed, 8000)
    assert corr > 0.99
    assert quality == pytest.approx(reference["nb_g711_ulaw"], abs=0.05)


# --- tshark's RTP stream analysis ---------------------------------------------------------


def write_stream(path: Path, *, skip: int | None = None, wobble_s: float = 0.0) -> None:
    """100 PCMU packets from port 4000, 20 ms apart; ``skip`` leaves one out,
    ``wobble_s`` delays every other packet."""
    with path.open("wb") as f:
        writer = PcapWriter(f)
        for k in range(100):
            if k != skip:
                packet = RTPPacket(payload_type=0, sequence_number=k, timestamp=k * 160,
                                   ssrc=0x1234, payload=bytes(160))
                writer.write_udp(1000 + k * 0.02 + wobble_s * (k % 2), ("127.0.0.1", 4000),
                                 ("127.0.0.1", 5000), packet.serialize())


@pytest.mark.interop
def test_tshark_analysis_reports_loss_and_jitter(tmp_path: Path) -> None:
    require("tshark")
    write_stream(tmp_path / "good.pcap")
    write_stream(tmp_path / "gap.pcap", skip=50)
    write_stream(tmp_path / "jittery.pcap", wobble_s=0.004)
    (good,) = rtp_streams(tmp_path / "good.pcap", 4000)
    assert (good.ssrc, good.payload, good.packets, good.lost) == (0x1234, "g711U", 100, 0)
    assert not good.problems and good.max_jitter_ms < 0.01
    (gap,) = rtp_streams(tmp_path / "gap.pcap", 4000)
    assert gap.lost == 1 and gap.problems and gap.max_delta_ms == pytest.approx(40.0)
    (jittery,) = rtp_streams(tmp_path / "jittery.pcap", 4000)
    assert jittery.lost == 0 and jittery.max_jitter_ms > 0.2


@pytest.mark.interop
async def test_capture_keeps_the_rtp_of_one_port(tmp_path: Path) -> None:
    require("dumpcap")
    loop = asyncio.get_running_loop()
    ours, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    other, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    port = ours.get_extra_info("sockname")[1]
    destination = sink.get_extra_info("sockname")
    rtcp_receiver_report = bytes.fromhex("80c90001") + (0x1234).to_bytes(4, "big")
    try:
        async with capture(tmp_path / "c.pcap", rtp_only(port)) as pcap:
            for k in range(30):
                packet = RTPPacket(payload_type=0, sequence_number=k, timestamp=k * 160,
                                   ssrc=0x1234, payload=bytes(160)).serialize()
                ours.sendto(packet, destination)
                other.sendto(packet, destination)  # another port: not ours
                if k % 10 == 0:
                    ours.sendto(rtcp_receiver_report, destination)  # muxed RTCP: not RTP
                await asyncio.sleep(0.02)
    finally:
        for transport in (ours, other, sink):
            transport.close()
    (stream,) = rtp_streams(pcap, port)
    assert (stream.packets, stream.lost, stream.problems) == (30, 0, False)
