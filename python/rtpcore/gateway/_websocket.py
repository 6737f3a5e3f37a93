"""What the two WebSocket agent protocols share: the connection's life and
an outbox that keeps a slow agent from holding up anything.

The gateway is the WebSocket client (as Twilio is): it connects to the agent,
sends the protocol's greeting, then runs two tasks — the uplink (caller audio
and events, through one ``Outbox`` so they leave in order) and the downlink
(the agent's messages, handed to ``on_message``). When the agent closes the
socket (or it drops: keep-alive pings find dead peers) the call is hung up;
when the call ends the protocol's goodbye is sent and the socket closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from rtpcore.gateway.agent import Call

log = logging.getLogger("rtpcore.gateway")

Message = str | bytes
#: Caller audio waiting for a slow agent's socket beyond this many messages
#: (1 s of 20 ms frames) is dropped, newest first, and counted.
MAX_MEDIA_BACKLOG = 50
#: Once a call has ended, how long its agent's socket gets to take the rest.
FLUSH_TIMEOUT_S = 2.0


class ProtocolError(ValueError):
    """A message from the agent that does not follow the protocol."""


def json_event(message: str) -> tuple[str, dict[str, Any]]:
    """A text message's ``event`` name and the whole object."""
    try:
        data = json.loads(message)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise ProtocolError("not an object with an 'event' string")
    return data["event"], data


class Outbox:
    """Messages for the agent, sent in order by one writer.

    Control messages (marks, DTMF, start/stop) are always kept; audio is
    dropped while ``MAX_MEDIA_BACKLOG`` audio messages are already waiting,
    so a reader that cannot keep up costs a bounded amount of memory and
    never slows the media engine. Audio is passed as a function that builds
    the message, called only when it is sent, so that dropped audio leaves
    no gap in the protocol's sequence numbers.
    """

    def __init__(self, call: Call, max_media: int = MAX_MEDIA_BACKLOG) -> None:
        self._call = call
        self._max_media = max_media
        self._items: deque[tuple[bool, Message | Callable[[], Message]]] = deque()
        self._media = 0
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, message: Message) -> None:
        self._items.append((False, message))
        self._ready.set()

    def put_media(self, build: Callable[[], Message]) -> None:
        if self._media >= self._max_media:
            self._call.note_agent_error("slow_reader", "caller audio dropped: the agent's "
                                        "socket is not keeping up")
            return
        self._media += 1
        self._items.append((True, build))
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def pump(self, ws: ClientConnection,
                   producers: Sequence[Coroutine[Any, Any, None]]) -> None:
        """Run ``producers`` (which fill the outbox) and send until they end."""
        tasks = [asyncio.create_task(p) for p in producers]
        finished = asyncio.gather(*tasks)
        finished.add_done_callback(lambda _: self.close())
        try:
            while True:
                while self._items:
                    is_media, item = self._items.popleft()
                    if is_media:
                        self._media -= 1
                    await ws.send(item() if callable(item) else item)
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await finished


async def run(call: Call, url: str, connect_timeout: float, *,
              hello: Sequence[Message],
              uplink: Callable[[Outbox], Sequence[Coroutine[Any, Any, None]]],
              on_message: Callable[[Message], None],
              goodbye: Callable[[], Message | None]) -> None:
    """One call over one WebSocket connection to ``url`` (see the module doc)."""
    try:
        # No permessage-deflate: Twilio does not compress, and zlib on every
        # 20 ms message would be most of the gateway's CPU per call.
        ws = await connect(url, open_timeout=connect_timeout, max_size=2**20,
                           ping_interval=20, ping_timeout=20, close_timeout=FLUSH_TIMEOUT_S,
                           compression=None)
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        log.error("agent connection failed: %s", exc, extra={
            "event": "agent_connect_failed", "call_sid": call.call_sid, "url": url})
        await call.hangup()
        return
    async with ws:
        outbox = Outbox(call)
        for message in hello:
            outbox.put(message)
        sending = asyncio.create_task(outbox.pump(ws, uplink(outbox)))
        receiving = asyncio.create_task(_receive(ws, on_message))
        ended = asyncio.create_task(call.ended.wait())
        done, _ = await asyncio.wait({sending, receiving, ended},
                                     return_when=asyncio.FIRST_COMPLETED)
        failed = sending in done and not sending.cancelled() and sending.exception() is not None
        if receiving in done or failed:
            log.info("agent closed the stream", extra={
                "event": "agent_closed", "call_sid": call.call_sid})
            await call.hangup()
        else:
            # The call ended: flush what is queued and say goodbye, but give
            # an agent that does not read only so long before dropping it.
            flushed, _ = await asyncio.wait({sending}, timeout=FLUSH_TIMEOUT_S)
            last = goodbye() if flushed else None
            if last is not None:
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    await asyncio.wait_for(ws.send(last), FLUSH_TIMEOUT_S)
            if not flushed or last is None:
                ws.transport.abort()
        for task in (sending, receiving, ended):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


async def _receive(ws: ClientConnection, on_message: Callable[[Message], None]) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            on_message(message)
