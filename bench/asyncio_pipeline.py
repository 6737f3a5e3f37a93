"""The baseline of the engine load benchmark: one call's media the way an
aiortc-style asyncio application moves it, every step in the event loop.

Per call: an asyncio datagram endpoint; on each datagram, libsrtp (pylibsrtp,
AES_CM_128_HMAC_SHA1_80) unprotects it, aiortc's ``RtpPacket`` parses it and
aiortc's own audio ``JitterBuffer`` (capacity 16, prefetch 4, as aiortc's
receiver sets it up for audio) reorders it into frames, which ``audioop``
decodes and hands to the application through an ``asyncio.Queue`` (aiortc's
``RemoteStreamTrack``). Outbound, a drift-free 20 ms asyncio clock per call
(aiortc's ``AudioStreamTrack`` pacing) takes the frame the application wrote,
encodes it with ``audioop``, serializes it with ``RtpPacket``, protects it
and sends it. RTCP is left out, which only flatters the baseline.

The application side mirrors ``rtpcore.media.MediaStream``: ``async for
frame in call`` yields frames with ``.pcm`` (16-bit samples, bytes here) and
``await call.write(pcm)`` queues audio for the clock, so the load tool runs
the same application code over both. With ``app=False`` nobody reads or
writes (the far end of a load test): decoded frames are dropped, and the
clock sends silence.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from dataclasses import dataclass

import pylibsrtp
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

if sys.version_info >= (3, 13):  # pragma: no cover - audioop-lts on 3.13+
    import audioop
else:
    import warnings

    with warnings.catch_warnings():  # deprecated in 3.11/3.12, still the C module
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

CLOCK_RATE = 8000
PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
# aiortc's RTCRtpReceiver makes its audio jitter buffer like this
JITTER_CAPACITY = 16
JITTER_PREFETCH = 4


@dataclass(frozen=True)
class PipelineFrame:
    """One decoded frame for the application: 16-bit PCM and its RTP timestamp."""

    pcm: bytes
    timestamp: int


@dataclass
class PipelineStats:
    """What went wrong or right in one call."""

    received: int = 0
    sent: int = 0
    unprotect_failed: int = 0
    underruns: int = 0  # clock ticks that found no application audio: silence went out
    frames: int = 0  # frames decoded for the application


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, call: PipelineCall) -> None:
        self.call = call

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.call._on_datagram(data)


class PipelineCall:
    """One full-duplex G.711 call over SRTP, driven entirely by asyncio.

    ``send_key``/``recv_key`` are 30-byte master key + salt (AES-CM-128).
    """

    def __init__(self, send_key: bytes, recv_key: bytes, *, ssrc: int, payload_type: int = 0,
                 ptime_ms: int = 20, app: bool = True) -> None:
        if payload_type not in (0, 8):
            raise ValueError(f"payload_type: 0 (PCMU) or 8 (PCMA), got {payload_type}")
        self._outbound = pylibsrtp.Session(pylibsrtp.Policy(
            key=send_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=PROFILE))
        self._inbound = pylibsrtp.Session(pylibsrtp.Policy(
            key=recv_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=PROFILE))
        self._jitter = JitterBuffer(capacity=JITTER_CAPACITY, prefetch=JITTER_PREFETCH)
        self._decode = audioop.ulaw2lin if payload_type == 0 else audioop.alaw2lin
        self._encode = audioop.lin2ulaw if payload_type == 0 else audioop.lin2alaw
        self._payload_type = payload_type
        self._ssrc = ssrc
        self._samples = CLOCK_RATE * ptime_ms // 1000
        self._ptime = ptime_ms / 1000
        self._silence = bytes(2 * self._samples)
        self._app = app
        self._to_app: asyncio.Queue[PipelineFrame | None] = asyncio.Queue()
        self._from_app: collections.deque[bytes] = collections.deque()
        self._transport: asyncio.DatagramTransport | None = None
        self._clock: asyncio.Task[None] | None = None
        self.stats = PipelineStats()

    async def open(self, host: str = "127.0.0.1") -> int:
        """Bind the call's socket; returns its port."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, 0))
        self._transport = transport
        return int(transport.get_extra_info("sockname")[1])

    def start(self, remote: tuple[str, int]) -> None:
        """Start sending to ``remote`` on the call's own 20 ms clock."""
        if self._transport is None:
            raise RuntimeError("open() the call first")
        self._clock = asyncio.get_running_loop().create_task(self._run_clock(remote))

    # --- the application's side ---------------------------------------------

    async def write(self, pcm: bytes) -> None:
        """Queue one ptime of 16-bit PCM for the clock to send."""
        self._from_app.append(pcm)

    def __aiter__(self) -> PipelineCall:
        return self

    async def __anext__(self) -> PipelineFrame:
        frame = await self._to_app.get()
        if frame is None:
            raise StopAsyncIteration
        return frame

    def close(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
        if self._transport is not None:
            self._transport.close()
        self._to_app.put_nowait(None)

    # --- media ---------------------------------------------------------------

    def _on_datagram(self, data: bytes) -> None:
        try:
            rtp = self._inbound.unprotect(data)
        except pylibsrtp.Error:
            self.stats.unprotect_failed += 1
            return
        self.stats.received += 1
        packet = RtpPacket.parse(rtp)
        packet._data = packet.payload  # type: ignore[attr-defined]  # aiortc's depayload of G.711
        _, frame = self._jitter.add(packet)
        if frame is None:
            return
        self.stats.frames += 1
        if self._app:
            self._to_app.put_nowait(PipelineFrame(self._decode(frame.data, 2), frame.timestamp))

    async def _run_clock(self, remote: tuple[str, int]) -> None:
        assert self._transport is not None  # invariant: start() checked it
        loop = asyncio.get_running_loop()
        start = loop.time()
        sequence = 0
        while True:
            # drift-free: the k-th packet is due at start + k * ptime
            await asyncio.sleep(start + sequence * self._ptime - loop.time())
            if self._from_app:
                pcm = self._from_app.popleft()
            else:
                pcm = self._silence
                if self._app:  # nobody writes on a far end: silence is all it sends
                    self.stats.underruns += 1
            packet = RtpPacket(payload_type=self._payload_type, sequence_number=sequence & 0xFFFF,
                               timestamp=(sequence * self._samples) & 0xFFFFFFFF, ssrc=self._ssrc,
                               payload=self._encode(pcm, 2))
            self._transport.sendto(self._outbound.protect(packet.serialize()), remote)
            self.stats.sent += 1
            sequence += 1
