"""Test doubles for the gateway's agent-side tests: a ``Call`` whose media
side records what the agent asks of it (no media engine involved)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtpcore.gateway.agent import Call

SIDS = {"stream_sid": "MZ" + "1" * 32, "call_sid": "CA" + "2" * 32,
        "account_sid": "AC" + "3" * 32}


def rms(pcm: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


@contextlib.asynccontextmanager
async def running(gateway: Any) -> AsyncIterator[Any]:
    """A started gateway, stopped (briefly drained) on the way out."""
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop(drain_timeout=0.5)


@dataclass
class Frame:
    pcm: np.ndarray[Any, Any]


@dataclass
class RecordingMedia:
    """The media side of a call, recording what the adapter asks for."""

    frames: asyncio.Queue[Frame | None] = field(default_factory=asyncio.Queue)
    written: list[np.ndarray[Any, Any]] = field(default_factory=list)
    actions: list[tuple[str, Any]] = field(default_factory=list)
    queued_ms: int = 0

    async def read(self) -> Frame | None:
        frame = await self.frames.get()
        if frame is None:
            self.frames.put_nowait(None)  # closed stays closed
        return frame

    def write_nowait(self, pcm: Any) -> None:
        self.written.append(np.asarray(pcm))
        self.actions.append(("write", len(pcm)))

    def mark(self, name: str) -> None:
        self.actions.append(("mark", name))

    def clear(self) -> None:
        self.actions.append(("clear", None))

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        self.actions.append(("dtmf", digits))


class RecordingControl:
    def __init__(self) -> None:
        self.hung_up = asyncio.Event()
        self.transfers: list[str] = []

    async def hangup(self) -> None:
        self.hung_up.set()

    async def transfer(self, target: str) -> None:
        self.transfers.append(target)


def make_call(rate: int) -> tuple[Call, RecordingMedia, RecordingControl]:
    media, control = RecordingMedia(), RecordingControl()
    call = Call(direction="inbound", from_number="+15550100", to_number="+15550199",
                sample_rate=rate, media=media, control=control, **SIDS)
    return call, media, control


async def end_call(call: Call, media: RecordingMedia) -> None:
    await media.frames.put(None)
    call.close()


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --- a SIP caller with real media, for end-to-end tests ---------------------------

class Caller:
    """rtpcore's own user agent and media engine calling a gateway: what a
    phone or trunk does. ``await Caller.start()``, then ``await dial(...)``."""

    def __init__(self, endpoint: Any, engine: Any, events: asyncio.Queue[object]) -> None:
        self.endpoint = endpoint
        self.engine = engine
        self.events = events
        self.call: Any = None
        self.stream: Any = None
        self.heard: list[np.ndarray[Any, Any]] = []
        self.media_events: list[Any] = []
        self.ended: Any = None
        self.other_events: list[object] = []  # SIP events seen while waiting for the end
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(cls, *, codecs: tuple[str, ...] = ("PCMU",), srtp: str = "off",
                    ports: tuple[int, int] = (42000, 42999), user: str = "caller",
                    transport: str = "UDP", ssl_context: Any = None,
                    client_ssl_context: Any = None) -> Caller:
        from rtpcore.aio.sip import SIPEndpoint
        from rtpcore.media import Engine
        from rtpcore.sdp import AudioPolicy
        from rtpcore.sip.ua import UserAgent

        ua = UserAgent("127.0.0.1", 0, transport, user=user,
                       policy=AudioPolicy(codecs=codecs, srtp=srtp))
        events: asyncio.Queue[object] = asyncio.Queue()
        endpoint = await SIPEndpoint.start(ua, on_event=events.put_nowait,
                                           ssl_context=ssl_context,
                                           client_ssl_context=client_ssl_context)
        return cls(endpoint, Engine(bind_host="127.0.0.1", port_range=ports, workers=1), events)

    async def dial(self, address: tuple[str, int], *, sample_rate: int = 8000,
                   user: str = "agent", from_user: str = "+15550100",
                   timeout: float = 10.0) -> None:
        """Call ``address``; returns once answered, with media running."""
        from rtpcore.media import MediaConfig
        from rtpcore.sip.ua import CallAnswered, CallEnded

        self.stream = self.engine.allocate()
        host, port = address
        self.call = self.endpoint.invite(f"sip:{user}@{host}:{port}", (host, port), "127.0.0.1",
                                         self.stream.local_port, from_user=from_user)
        while True:
            event = await asyncio.wait_for(self.events.get(), timeout)
            if isinstance(event, CallEnded):
                self.ended = event
                raise RuntimeError(f"call failed: {event.status_code} {event.reason}")
            if isinstance(event, CallAnswered):
                break
        self.stream.start(MediaConfig.from_negotiated(self.call.media, sample_rate=sample_rate))
        self._tasks.append(asyncio.create_task(self._listen()))

    async def _listen(self) -> None:
        stream = self.stream
        while (frame := await stream.read()) is not None:
            self.heard.append(frame.pcm.copy())
            self.media_events.extend(stream.poll_events())

    def heard_pcm(self) -> np.ndarray[Any, Any]:
        return np.concatenate(self.heard) if self.heard else np.zeros(0, dtype=np.int16)

    async def wait_ended(self, timeout: float = 10.0) -> Any:
        """The CallEnded event (the gateway hung up, or our BYE was answered)."""
        from rtpcore.sip.ua import CallEnded

        while self.ended is None:
            event = await asyncio.wait_for(self.events.get(), timeout)
            if isinstance(event, CallEnded):
                self.ended = event
            else:
                self.other_events.append(event)
        return self.ended

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        for task in self._tasks:
            task.cancel()
        await self.endpoint.close()
        self.engine.close()
