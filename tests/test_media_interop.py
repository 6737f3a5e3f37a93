"""rtpcore's media engine with peers nobody here wrote, and with itself over
a bad network.

* baresip (Debian) calls rtpcore's SIP UA; the call's media runs on an
  engine stream: G.711 and G.722, SRTP on and off. Both directions carry
  speech; what each side decoded is scored against what the other sent
  (correlation and PESQ), and tshark's RTP analysis of our outbound stream,
  captured on loopback, must show no loss or sequence problem and
  near-zero jitter.
* SIPp plays an RTP pcap (speech written with rtpcore.pcap/rtpcore.rtp)
  into an engine stream it called; the decoded audio must match.
* Two engines talk through the impairment proxy (loss, jitter, reordering,
  duplicates), SRTP on; the audio each decoded is scored.

PESQ floors sit below the scores of the codec alone
(/work/shared/audio/pesq_reference.json: ~3.9 narrowband for G.711, ~3.0
wideband for G.722 on these files), with room for what a live call adds on
a loaded machine: the jitter buffer's start, and the time-stretching and
concealment it does when ticks or packets come late.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from impairment_proxy import Impairment, ImpairmentProxy
from media_peers import (
    SPEECH,
    SPEECH_BACK,
    RTPStream,
    baresip_decoded,
    capture,
    engine_ports,
    rtp_both_ways,
    rtp_streams,
    score,
    speech,
    write_baresip_config,
    write_wav,
)
from sip_peers import free_port, require, run_sipp

from rtpcore import g711
from rtpcore.aio.sip import SIPEndpoint
from rtpcore.media import Engine, MediaConfig
from rtpcore.pcap import PcapWriter
from rtpcore.rtp import RTPPacket
from rtpcore.sdp import AudioPolicy, NegotiatedAudio
from rtpcore.sip.ua import CallEnded, IncomingCall, UserAgent
from rtpcore.srtp import CryptoAttribute

SUITE = "AES_CM_128_HMAC_SHA1_80"
RATE = {"PCMU": 8000, "G722": 16000}
# floors on PESQ of a whole call's audio over a clean path, per codec
PESQ_FLOOR = {"PCMU": 3.0, "G722": 2.2}
# When the machine starves the engine (a tick more than STARVED_TICK_MS late,
# or skipped), the jitter buffers stretch and conceal, and only this is
# asserted: the right speech got through (unrelated speech or noise scores
# ~1.04, speech with a third of its frames blanked ~1.3). On this shared
# 2-core machine ticks hundreds of ms late were seen while other jobs ran.
STARVED_FLOOR = 1.2
STARVED_TICK_MS = 10.0


def starved(engines: list[Any], streams: list[Any]) -> bool:
    """Whether an engine (EngineStats) ran a tick more than STARVED_TICK_MS
    late or a stream (MediaStats) skipped one."""
    return (any(e.max_lateness_ms > STARVED_TICK_MS for e in engines)
            or any(s.ticks_skipped for s in streams))


def pesq_floor(floor: float, engines: list[Any], streams: list[Any]) -> float:
    """``floor``, or STARVED_FLOOR if the machine starved the engines.
    Correlation is reported, not asserted: the time-stretching of an
    adaptive jitter buffer defeats one global alignment, which PESQ's
    per-utterance alignment handles."""
    return STARVED_FLOOR if starved(engines, streams) else floor
SIPP_DIR = Path(__file__).parent / "sipp"


def stream_between(pcap: Path, port: int, *, outbound: bool) -> RTPStream:
    """The one RTP stream in ``pcap`` sent from ``port`` (``outbound``) or to it."""
    streams = [s for s in rtp_streams(pcap, port) if (s.source_port == port) == outbound]
    assert len(streams) == 1, streams
    return streams[0]


async def collect(stream: Any, into: list[np.ndarray]) -> None:
    """Every frame the stream gives the application, until it closes."""
    async for frame in stream:
        into.append(np.array(frame.pcm, dtype=np.int16))


class EngineCallee:
    """rtpcore's SIP UA answering one call with an engine stream: the stream
    starts with the negotiated media as the call is answered, plays ``send``
    into the call (if given) and keeps every frame it hears until the call
    ends."""

    def __init__(self, engine: Engine, rate: int, send: np.ndarray | None = None) -> None:
        self.stream = engine.allocate()
        self.rate = rate
        self.send = send
        self.media: NegotiatedAudio | None = None
        self.heard: list[np.ndarray] = []
        self.ended = asyncio.Event()
        self.stats: Any = None  # the stream's statistics as the call ended
        self._tasks: list[asyncio.Future[None]] = []

    async def listen(self, policy: AudioPolicy) -> int:
        """Start the UA; returns its SIP port."""
        self.endpoint = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, policy=policy),
                                                on_event=self._on_event)
        return int(self.endpoint.ua.port)

    def _on_event(self, event: object) -> None:
        if isinstance(event, IncomingCall):
            self.endpoint.ring(event.call)
            self.endpoint.answer(event.call, "127.0.0.1", self.stream.local_port)
            self.media = event.call.media
            assert self.media is not None  # invariant: answer() negotiated the offer
            self.stream.start(MediaConfig.from_negotiated(self.media, sample_rate=self.rate))
            if self.send is not None:
                self._tasks.append(asyncio.ensure_future(self.stream.write(self.send)))
            self._tasks.append(asyncio.ensure_future(collect(self.stream, self.heard)))
        elif isinstance(event, CallEnded):
            self.stats = self.stream.stats()
            self.stream.close()
            self.ended.set()

    async def heard_until_hangup(self, timeout: float) -> np.ndarray:
        await asyncio.wait_for(self.ended.wait(), timeout)
        await asyncio.wait_for(asyncio.gather(*self._tasks), 10)
        return np.concatenate(self.heard)

    async def close(self) -> None:
        self.stream.close()
        await self.endpoint.close()


# --- baresip ------------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
@pytest.mark.parametrize("codec", ["PCMU", "G722"])
async def test_baresip_call(tmp_path: Path, codec: str, srtp: bool) -> None:
    baresip = require("baresip")
    rate = RATE[codec]
    ours, theirs = speech(SPEECH, rate), speech(SPEECH_BACK, rate)
    write_wav(tmp_path / "source.wav", theirs, rate)
    baresip_rtp = free_port()
    write_baresip_config(tmp_path, sip_port=free_port(), rtp_port=baresip_rtp, codec=codec,
                         srtp=srtp, source=tmp_path / "source.wav")
    engine = Engine(bind_host="127.0.0.1", port_range=engine_ports())
    callee = EngineCallee(engine, rate, send=ours)
    sip_port = await callee.listen(AudioPolicy(codecs=(codec,), srtp="required" if srtp else "off"))
    seconds = len(ours) / rate + 1.5
    process = None
    try:
        # Only our stream sends from the engine's port, and only baresip's
        # comes to it: the engine's port alone picks both out, whichever
        # port baresip's media ends up on.
        both_ways = rtp_both_ways(callee.stream.local_port)
        async with capture(tmp_path / "rtp.pcap", both_ways) as pcap:
            process = await asyncio.create_subprocess_exec(
                baresip, "-f", str(tmp_path), "-t", str(int(seconds) + 1),
                "-e", f"/dial sip:service@127.0.0.1:{sip_port}",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(process.communicate(), seconds + 20)
            heard = await callee.heard_until_hangup(10)
            engine_stats = engine.stats()
    finally:
        if process is not None and process.returncode is None:
            process.kill()
        await callee.close()
        engine.close()
    assert callee.media is not None, out.decode(errors="replace")[-2000:]
    assert callee.media.codec.encoding == codec
    assert (callee.media.local_crypto is not None) == srtp

    # what baresip decoded from us
    recorded, recorded_rate = baresip_decoded(tmp_path)
    assert recorded_rate == rate
    floor = pesq_floor(PESQ_FLOOR[codec], [engine_stats], [callee.stats])
    # baresip starved by the machine as our engine can be: a packet of its
    # more than STARVED_TICK_MS late on the wire (frozen 0.15 s every 0.3 s
    # it left gaps of ~170 ms; our jitter buffer stretched and concealed,
    # PESQ 2.16 against G.722's 2.2; a punctual baresip's largest gap was
    # 23-25 ms)
    theirs_on_wire = stream_between(pcap, callee.stream.local_port, outbound=False)
    baresip_starved = theirs_on_wire.max_delta_ms > 20 + STARVED_TICK_MS
    if baresip_starved:
        floor = STARVED_FLOOR
    corr, quality = score(ours, recorded, rate)
    assert quality > floor, (corr, quality, callee.stats)
    # what we decoded from baresip
    corr, quality = score(theirs, heard, rate)
    assert quality > floor, (corr, quality, callee.stats)
    # our outbound stream as tshark sees it on the wire: sequence numbers
    # continuous however the machine ran
    ours_on_wire = stream_between(pcap, callee.stream.local_port, outbound=True)
    assert ours_on_wire.lost == 0 and not ours_on_wire.problems, ours_on_wire
    if not starved([engine_stats], [callee.stats]):
        # a packet every 20 ms with near-zero jitter (RFC 3550 jitter, as
        # tshark computes it from capture times; a sender pacing in pairs
        # every 40 ms converges on 20 ms), with room for a tick a few ms late.
        # The jitter J is a running mean of |D|, the change in transit from
        # one packet to the next: packets that each leave at their tick, the
        # tick at most L late (the engine's max_lateness_ms), give |D| <= L
        # and so J <= L. On a quiet machine L is under 1 ms; with both cores
        # busy the kernel's scheduler wakes the worker 2-7 ms late for a
        # third of the ticks (seen with two CPU hogs: mean J 1.2-1.6 ms, max
        # J 1.9-2.6 ms, L 4-7 ms), the machine's delay, not the pacer's. So
        # the mean may reach L; the max bound stays, which a pacer off its
        # 20 ms grid (pairs every 40 ms: J ~ 20 ms) still fails.
        if not baresip_starved:
            # all of our speech, if baresip set the call up in time: its -t
            # ends the call on its own clock (a starved one cut it short)
            assert ours_on_wire.packets > 50 * (len(ours) / rate), ours_on_wire
        mean_jitter_bound_ms = max(1.0, engine_stats.max_lateness_ms)
        assert ours_on_wire.mean_jitter_ms < mean_jitter_bound_ms, (ours_on_wire, engine_stats)
        assert ours_on_wire.max_jitter_ms < 5.0, (ours_on_wire, engine_stats)


# --- SIPp -------------------------------------------------------------------------------------


def write_speech_pcap(path: Path, samples: np.ndarray) -> int:
    """``samples`` (8 kHz) as 20 ms PCMU RTP packets in a pcap; returns the count."""
    codes = g711.ulaw_encode(samples[: len(samples) // 160 * 160])
    with path.open("wb") as f:
        writer = PcapWriter(f)
        for k in range(len(codes) // 160):
            packet = RTPPacket(payload_type=0, sequence_number=1000 + k, timestamp=k * 160,
                               ssrc=0x5157_0001, payload=codes[k * 160:(k + 1) * 160])
            writer.write_udp(1_700_000_000 + k * 0.02, ("127.0.0.1", 6000), ("127.0.0.1", 6002),
                             packet.serialize())
    return len(codes) // 160


@pytest.mark.interop
async def test_sipp_plays_rtp_pcap_into_engine(tmp_path: Path) -> None:
    require("sipp")
    sent = speech(SPEECH, 8000)
    packets = write_speech_pcap(tmp_path / "speech.pcap", sent)
    scenario = tmp_path / "uac_pcap_audio.xml"
    scenario.write_text((SIPP_DIR / "uac_pcap_audio.xml").read_text()
                        .replace("PCAP_FILE", str(tmp_path / "speech.pcap")))
    engine = Engine(bind_host="127.0.0.1", port_range=engine_ports())
    callee = EngineCallee(engine, 8000)
    sip_port = await callee.listen(AudioPolicy(codecs=("PCMU",)))
    try:
        code, out = await run_sipp(
            "-sf", str(scenario), f"127.0.0.1:{sip_port}", "-i", "127.0.0.1",
            "-p", str(free_port()), "-mp", str(free_port()), "-m", "1",
            "-d", str(int(packets * 20 + 1000)), timeout=30)
        assert code == 0, out[-3000:]
        heard = await callee.heard_until_hangup(10)
        engine_stats = engine.stats()
    finally:
        await callee.close()
        engine.close()
    # every packet arrived: delivered, or held back while the engine latched
    # onto SIPp's address (it takes two consecutive packets to latch)
    stats = callee.stats
    assert stats.packets_received + stats.dropped.get("latching", 0) == packets, stats
    assert stats.packets_lost == 0, stats
    corr, quality = score(sent, heard, 8000)
    floor = pesq_floor(PESQ_FLOOR["PCMU"], [engine_stats], [stats])
    assert quality > floor, (corr, quality, stats, engine_stats)


# --- two engines over a bad network -----------------------------------------------------------

IMPAIRMENTS = {
    "clean": (Impairment(), PESQ_FLOOR),
    "loss-5pct": (Impairment(loss=0.05), {"PCMU": 2.1, "G722": 1.5}),
    "jitter-40ms-reordering": (Impairment(delay_ms=5, jitter_ms=40, reorder=0.05, reorder_ms=30),
                               {"PCMU": 2.0}),
    "duplicates": (Impairment(duplicate=0.2), PESQ_FLOOR),
}


@pytest.mark.parametrize(("condition", "codec"), [
    *((condition, "PCMU") for condition in IMPAIRMENTS),
    ("clean", "G722"), ("loss-5pct", "G722")])
async def test_two_engines_through_impairment(condition: str, codec: str) -> None:
    impairment, floors = IMPAIRMENTS[condition]
    rate = RATE[codec]
    payload_type = {"PCMU": 0, "G722": 9}[codec]
    sent = {"a": speech(SPEECH, rate), "b": speech(SPEECH_BACK, rate)}
    heard: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    engines = {side: Engine(bind_host="127.0.0.1", port_range=engine_ports()) for side in "ab"}
    streams = {side: engine.allocate() for side, engine in engines.items()}
    keys = {side: CryptoAttribute.generate(1, SUITE) for side in engines}
    proxy = await ImpairmentProxy.start(
        ("127.0.0.1", streams["a"].local_port), ("127.0.0.1", streams["b"].local_port),
        a_to_b=impairment, b_to_a=impairment, seed=6)
    toward = {"a": proxy.port_for_a, "b": proxy.port_for_b}
    other = {"a": "b", "b": "a"}
    try:
        for side, stream in streams.items():
            stream.start(MediaConfig(
                codec=codec, payload_type=payload_type, remote=("127.0.0.1", toward[side]),
                ptime=20, srtp_send=keys[side], srtp_recv=keys[other[side]], sample_rate=rate))
        readers = [asyncio.ensure_future(collect(s, heard[side])) for side, s in streams.items()]
        for side, stream in streams.items():
            await stream.write(sent[side])
        await asyncio.sleep(max(len(x) for x in sent.values()) / rate + 0.8)
        stats = {side: stream.stats() for side, stream in streams.items()}
        engine_stats = [engine.stats() for engine in engines.values()]
    finally:
        for engine in engines.values():
            engine.close()
        proxy.close()
    await asyncio.wait_for(asyncio.gather(*readers), 10)

    for side in ("a", "b"):
        corr, quality = score(sent[other[side]], np.concatenate(heard[side]), rate)
        floor = pesq_floor(floors[codec], engine_stats, list(stats.values()))
        assert quality > floor, (side, corr, quality, stats, engine_stats)
    path = proxy.stats["a_to_b"]
    if impairment.loss:  # the receiver saw the loss the proxy made
        assert path.dropped > 0 and stats["b"].packets_lost > 0, (path, stats["b"])
    if impairment.reorder:
        assert path.out_of_order > 0, path
    if impairment.duplicate:  # duplicates were caught (SRTP replay protection), not played
        caught = stats["b"].dropped.get("replay", 0) + stats["b"].dropped.get("duplicate", 0)
        assert 0.8 * path.duplicated <= caught <= path.duplicated, (path, stats["b"])
