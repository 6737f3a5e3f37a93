"""The in-process agent API: the ``Call`` object given to ``async def agent(call)``.

::

    async def agent(call):
        call.play(greeting_pcm)                # queued, paced by the media engine
        async for frame in call.audio:         # frame.pcm: numpy int16 at call.sample_rate
            ...
            call.clear()                       # barge-in: queued audio dropped within a frame
        # call.audio ends when the call does

    async for event in call.events:            # DTMF, MarkPlayed, TransferResult
        ...
    async for dtmf in call.dtmf:               # only the DTMF events
        ...
    call.mark("end-of-answer")                 # MarkPlayed once the audio before it went out
    call.send_dtmf("123")                      # RFC 4733 to the caller
    await call.transfer("sip:desk@pbx.example") # REFER (blind transfer)
    await call.hangup()

Everything an agent does is non-blocking for the media: ``play`` queues
(bounded by the config's ``agent.queue_ms``; beyond that the audio is
dropped and the drop logged), events are kept in bounded queues (the
oldest dropped when an agent does not read them), and frames an agent does
not read are dropped by the engine — the caller keeps hearing the call
either way.

The WebSocket protocols (``rtpcore.gateway.twilio``, ``rtpcore.gateway.rawpcm``)
are themselves agents written against this API.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from rtpcore.errors import QueueFullError, StreamClosedError
from rtpcore.g711 import ulaw_decode, ulaw_encode

__all__ = [
    "Agent",
    "Call",
    "CallControl",
    "DTMF",
    "MarkPlayed",
    "TransferResult",
]

log = logging.getLogger("rtpcore.gateway")

#: How many events a call keeps for an agent that does not read them.
EVENT_QUEUE_SIZE = 256
#: How many caller frames a fed call keeps for an agent that does not read
#: them (the media engine's default frame queue: 1 s of 20 ms frames).
FRAME_QUEUE_SIZE = 50


@dataclass(frozen=True)
class DTMF:
    """A digit the caller pressed: ``source`` is ``"rfc4733"`` or ``"info"``."""

    digit: str
    duration_ms: int
    source: str = "rfc4733"


@dataclass(frozen=True)
class MarkPlayed:
    """The audio queued before ``mark(name)`` has been played out
    (``cleared=False``) or dropped by ``clear()`` (``cleared=True``)."""

    name: str
    cleared: bool = False


@dataclass(frozen=True)
class TransferResult:
    """How the transfer target answered the REFER's call (a final SIP status);
    a 2xx ends this call."""

    target: str
    status_code: int


Event = DTMF | MarkPlayed | TransferResult
E = TypeVar("E")


class CallControl(Protocol):
    """What a ``Call`` needs from the gateway's side of the call (the bridge)."""

    async def hangup(self) -> None: ...
    async def transfer(self, target: str) -> None: ...


class MediaPort(Protocol):
    """The part of ``rtpcore.media.MediaStream`` a ``Call`` uses."""

    @property
    def queued_ms(self) -> int: ...
    async def read(self) -> Any: ...
    def write_nowait(self, pcm: Any) -> None: ...
    def mark(self, name: str) -> None: ...
    def clear(self) -> None: ...
    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None: ...


Agent = Callable[["Call"], Awaitable[None]]


class _Queue(Generic[E]):
    """A bounded queue that drops its oldest item when full and ends when
    closed. Several iterators may read it at once; each item goes to one."""

    def __init__(self, size: int, on_drop: Callable[[], None]) -> None:
        self._items: deque[E] = deque()
        self._size = size
        self._on_drop = on_drop
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False

    def put(self, item: E) -> None:
        if self._closed:
            return
        if len(self._items) >= self._size:
            self._items.popleft()
            self._on_drop()
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        self._closed = True
        # Nothing is put once closed; and the callback (a method of the
        # call that owns this queue) would keep the two in a cycle.
        self._on_drop = _nothing
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[E]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[E]:
        while True:
            while self._items:
                yield self._items.popleft()
            if self._closed:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


class Call:
    """One call as an agent sees it. Created by the gateway, one per call."""

    def __init__(self, *, call_sid: str, stream_sid: str, account_sid: str, direction: str,
                 from_number: str, to_number: str, sample_rate: int, media: MediaPort,
                 control: CallControl,
                 custom_parameters: dict[str, str] | None = None,
                 ulaw_passthrough: bool = False, fed: bool = False) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.direction = direction
        self.from_number = from_number
        self.to_number = to_number
        self.sample_rate = sample_rate
        #: The caller's frames carry the call's own G.711 μ-law bytes
        #: (``PayloadFrame``: ``frame.payload``, 8 kHz) instead of
        #: ``frame.pcm``, and ``play_ulaw`` queues μ-law as it is: the gateway
        #: sets it for agents that speak μ-law (Twilio) while the call's codec
        #: is PCMU (a re-INVITE may change that), so their audio is never
        #: decoded and encoded again on the way.
        self.ulaw_passthrough = ulaw_passthrough
        self.custom_parameters = dict(custom_parameters or {})
        #: Caller frames dropped because the agent did not take them in
        #: time (fed calls; otherwise the engine counts them).
        self.frames_dropped = 0
        # A fed call's frames come from the gateway's one batched reader of
        # the engine (``feed``) instead of each call waiting on its stream.
        self._fed = fed
        self._frames_queue: deque[Any] = deque()
        self._frame_waiter: asyncio.Future[None] | None = None
        self._sink: Callable[[Any], None] | None = None
        #: Misbehaviour counts (frames the agent sent too fast, events it did
        #: not read, malformed protocol messages ...), for the call report.
        self.agent_errors: dict[str, int] = {}
        self._media = media
        self._control = control
        self._events: _Queue[Event] = _Queue(EVENT_QUEUE_SIZE,
                                             lambda: self.note_agent_error("events_dropped"))
        self._dtmf: _Queue[DTMF] = _Queue(EVENT_QUEUE_SIZE,
                                          lambda: self.note_agent_error("dtmf_dropped"))
        self.ended = asyncio.Event()

    # --- audio -------------------------------------------------------------------

    @property
    def audio(self) -> AsyncIterator[Any]:
        """The caller's audio, one frame per ptime (``frame.pcm``: int16 at
        ``sample_rate``); ends when the call ends. Stopping or cancelling
        the iteration leaves the call running."""
        return self._frames()

    async def _frames(self) -> AsyncIterator[Any]:
        if self._fed:
            queue = self._frames_queue
            while True:
                while queue:
                    yield queue.popleft()
                if self.ended.is_set():
                    return
                self._frame_waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._frame_waiter
                finally:
                    self._frame_waiter = None
        # MediaStream.read, not the stream's own iterator: cancelling that
        # one closes the stream, and an agent that stops listening for a
        # while must not end its call.
        while (frame := await self._media.read()) is not None:
            yield frame

    async def stream_audio(self, sink: Callable[[Any], None]) -> None:
        """Hands each frame of the caller's audio to ``sink`` as it comes
        (the frames of ``audio``, in order) and returns when the call ends.
        On the gateway's calls ``sink`` is called straight from its batched
        reader of the media engine, with no task woken per frame: for
        agents that only pass frames on (the WebSocket protocols). ``sink``
        must not block."""
        if not self._fed:
            async for frame in self.audio:
                sink(frame)
            return
        while self._frames_queue:
            sink(self._frames_queue.popleft())
        self._sink = sink
        try:
            await self.ended.wait()
        finally:
            self._sink = None

    def play(self, pcm: npt.ArrayLike | bytes | bytearray | memoryview) -> bool:
        """Queue int16 PCM at ``sample_rate`` for the caller (numpy int16 or
        any buffer of native-order int16). Returns False, and drops the audio,
        when the call's outbound queue is full (``agent.queue_ms`` of audio:
        an agent sending far ahead of real time) or the call is over."""
        if self.ended.is_set():
            return False
        samples = _as_int16(pcm)
        if self.ulaw_passthrough:  # the stream takes μ-law only
            return self._write(ulaw_encode(samples.data), samples.size * 1000 // self.sample_rate)
        return self._write(samples, samples.size * 1000 // self.sample_rate)

    def play_ulaw(self, ulaw: bytes) -> bool:
        """Like ``play``, for G.711 μ-law at 8 kHz (``sample_rate`` must
        be 8000): queued as it is on a ``ulaw_passthrough`` call, decoded to
        PCM otherwise."""
        if self.ended.is_set():
            return False
        if self.sample_rate != 8000:
            raise ValueError(f"ulaw: 8000 Hz audio, the call runs at {self.sample_rate}")
        if self.ulaw_passthrough:
            return self._write(ulaw, len(ulaw) // 8)
        return self._write(ulaw_decode(ulaw), len(ulaw) // 8)

    def _write(self, audio: Any, ms: int) -> bool:
        if len(audio) == 0:
            return True
        try:
            self._media.write_nowait(audio)
        except QueueFullError:
            self.note_agent_error("audio_overflow", f"{ms} ms dropped, "
                                  f"{self._media.queued_ms} ms already queued")
            return False
        except StreamClosedError:  # the call is ending
            return False
        return True

    def clear(self) -> None:
        """Drop every queued sample (barge-in); pending marks fire with cleared=True."""
        if not self.ended.is_set():
            self._media.clear()

    def mark(self, name: str) -> None:
        """``MarkPlayed(name)`` arrives on ``events`` once the audio queued
        before it has been sent (or cleared)."""
        if not isinstance(name, str):
            raise TypeError(f"name: a str, got {type(name).__name__}")
        if not self.ended.is_set():
            self._media.mark(name)

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Send digits to the caller as RFC 4733 events."""
        if not digits or any(d not in "0123456789*#ABCDabcd" for d in digits):
            raise ValueError(f"digits: 0-9, *, #, A-D only, got {digits!r}")
        if not self.ended.is_set():
            self._media.send_dtmf(digits.upper(), duration_ms)

    # --- events ----------------------------------------------------------------------

    @property
    def events(self) -> AsyncIterator[Event]:
        """DTMF, MarkPlayed and TransferResult events; ends when the call does."""
        return self._events.__aiter__()

    @property
    def dtmf(self) -> AsyncIterator[DTMF]:
        """Only the DTMF events (a queue of their own); ends with the call."""
        return self._dtmf.__aiter__()

    # --- call control ---------------------------------------------------------------

    async def hangup(self) -> None:
        """End the call (BYE); returns at once if it has ended already."""
        if not self.ended.is_set():
            await self._control.hangup()

    async def transfer(self, target: str) -> None:
        """Blind transfer: ask the caller's side to call ``target`` (REFER).
        The outcome arrives as ``TransferResult``; success ends this call."""
        await self._control.transfer(target)

    # --- the gateway's side -------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Called by the gateway with each event for the agent."""
        self._events.put(event)
        if isinstance(event, DTMF):
            self._dtmf.put(event)

    def feed(self, frame: Any) -> None:
        """Called by the gateway with each caller frame of a fed call."""
        if self._sink is not None:
            self._sink(frame)
            return
        # Nobody reading yet (the agent is connecting) or a slow reader: as
        # the engine's own frame queue, the oldest go beyond one second.
        if len(self._frames_queue) >= FRAME_QUEUE_SIZE:
            self._frames_queue.popleft()
            self.frames_dropped += 1
        self._frames_queue.append(frame)
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._frame_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Called by the gateway when the call has ended."""
        self.ended.set()
        self._wake_reader()
        self._events.close()
        self._dtmf.close()

    def note_agent_error(self, kind: str, detail: str = "") -> None:
        """Count an agent misbehaviour; log the first few of each kind, then
        every hundredth (a runaway agent must not flood the log)."""
        count = self.agent_errors.get(kind, 0) + 1
        self.agent_errors[kind] = count
        if count <= 3 or count % 100 == 0:
            log.warning("agent misbehaviour: %s", kind, extra={
                "event": "agent_error", "call_sid": self.call_sid, "kind": kind,
                "count": count, "detail": detail})


def _nothing() -> None:
    pass


def _as_int16(pcm: Any) -> npt.NDArray[np.int16]:
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise TypeError(f"pcm: int16 samples, got a {pcm.dtype} array")
        return np.ascontiguousarray(pcm.reshape(-1))
    view = memoryview(pcm)
    if view.nbytes % 2:
        raise ValueError(f"pcm: a whole number of int16 samples, got {view.nbytes} bytes")
    return np.frombuffer(view.cast("B"), dtype=np.int16)
