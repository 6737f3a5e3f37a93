"""What the two WebSocket agent protocols share: the connection's life and
an outbox that keeps a slow agent from holding up anything.

The gateway is the WebSocket client (as Twilio is): it connects to the agent,
sends the protocol's greeting, then runs the uplink (caller audio and events,
through one ``Outbox`` so they leave in order) while the agent's messages are
handed to ``on_message`` as they arrive. When the agent closes the socket (or
it drops: keep-alive pings find dead peers) the call is hung up; when the call
ends the protocol's goodbye is sent and the socket closed.

The connection is ``websockets``' sans-I/O ``ClientProtocol`` on a plain
asyncio ``Protocol`` rather than its asyncio connection layer: every message
is one ``transport.write`` made where it was produced, and every message from
the agent is handled in ``data_received``, so a call costs no task wake-up,
lock or future per 20 ms message in either direction (that layer was about a
third of the gateway's CPU per call). The handshake, ping/pong, the closing
handshake and every frame out of the ordinary stay the library's.

Two things the library would do per message are done here, because at a
hundred messages a second per call they were most of the gateway's CPU:

- *sending*: a message is one whole masked frame (``client_frame``), built
  in one step with masking keys drawn from the OS a thousand at a time
  instead of through a ``Frame`` object, a ``BytesIO`` and a ``getrandom``
  call per message. No extension is ever negotiated (none is offered), so
  the frame is exactly what ``ClientProtocol.send_text`` would write;
- *receiving*: once the connection is open, complete frames are cut from
  the byte stream here; an unfragmented, unmasked text frame within the
  size limit (every message a Media Streams agent normally sends) is
  delivered at once, and every other frame — control frames, fragments,
  binary, reserved bits, a masked or oversized frame — is handed whole to
  the library, which then sits at a frame boundary as if it had read
  everything itself, and answers it as it always does (pong, close, 1002,
  1009 ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import ssl
import struct
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from websockets.asyncio.client import connect_http_proxy
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidProxy, InvalidURI
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import CONNECTING, OPEN, SEND_EOF
from websockets.proxy import get_proxy, parse_proxy
from websockets.uri import parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

from rtpcore.gateway.agent import Call

log = logging.getLogger("rtpcore.gateway")

Message = str | bytes
Buffer = bytes | bytearray | memoryview
#: Caller audio waiting for a slow agent's socket beyond this many messages
#: (1 s of 20 ms frames) is dropped, newest first, and counted.
MAX_MEDIA_BACKLOG = 50
#: Once a call has ended, how long its agent's socket gets to take the rest.
FLUSH_TIMEOUT_S = 2.0
#: Largest message taken from an agent.
MAX_MESSAGE_SIZE = 2**20
#: Keep-alive: a ping this often, and the connection is failed when its pong
#: has not come this long after.
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
#: The socket's write buffer above which the outbox holds messages back
#: (websockets' own default high-water mark).
WRITE_LIMIT = 2**15


class _MaskingKeys:
    """Keys for masking the frames a client sends (RFC 6455 5.3: a new,
    unpredictable key per frame): os.urandom output, fetched ``BATCH`` keys
    at a time instead of one system call per frame."""

    BATCH = 1024

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def take(self) -> bytes:
        start = self._next
        if start >= len(self._pool):
            self._pool, start = os.urandom(4 * self.BATCH), 0
        self._next = start + 4
        return self._pool[start:start + 4]


_masking_keys = _MaskingKeys()
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def client_frame(opcode: Opcode, payload: bytes) -> bytes:
    """One whole WebSocket frame (FIN set, no extension) carrying
    ``payload``, masked as a client must."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = _HEADER_16.pack(first, 0x80 | 126, length)
    else:
        header = _HEADER_64.pack(first, 0x80 | 127, length)
    key = _masking_keys.take()
    return header + key + apply_mask(payload, key)


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


class AgentConnection(asyncio.Protocol):
    """One WebSocket client connection to an agent: ``websockets``'
    ``ClientProtocol`` fed by an asyncio transport. ``opened`` resolves when
    the handshake succeeded (or raises why it failed), ``closed`` when the
    TCP connection is gone; ``writable`` follows the transport's flow control
    and ``on_writable`` is called when it turns true again."""

    def __init__(self, ws: ClientProtocol, on_message: Callable[[Message], None]) -> None:
        loop = asyncio.get_running_loop()
        self.ws = ws
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.writable = True
        self.on_writable: Callable[[], None] | None = None
        self._loop = loop
        self._on_message = on_message
        self._transport: asyncio.Transport | None = None
        # A fragmented message being reassembled: its opcode and pieces.
        self._fragments: list[Buffer] = []
        self._fragmented: Opcode | None = None
        self._ping: bytes | None = None
        # Received bytes not yet a whole frame (connection open), and the
        # last bytes of the handshake response given to the library (to
        # find where the response ends when its blank line is split).
        self._partial = bytearray()
        self._response_tail = b""
        # A text frame was not UTF-8: the connection is failing, nothing
        # after it is delivered.
        self._failed = False
        self._timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    @property
    def open(self) -> bool:
        """Whether messages can be sent."""
        return self.ws.state is OPEN and not self.closed.done()

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=WRITE_LIMIT)
        request = self.ws.connect()
        request.headers["User-Agent"] = USER_AGENT  # as websockets' asyncio client says
        self.ws.send_request(request)
        self._write_pending()

    def data_received(self, data: bytes) -> None:
        state = self.ws.state
        if state is OPEN:
            self._receive_frames(data)
        elif state is CONNECTING:
            self._receive_response(data)
        else:  # closing: the library reads (and discards) the rest
            self._library_receive(data)

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._write_pending()
        return None  # the WebSocket closing handshake is over: close the socket

    def connection_lost(self, exc: Exception | None) -> None:
        self.ws.receive_eof()  # idempotent; the protocol is CLOSED after it
        for timer in (self._timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        if not self.opened.done():
            self.opened.set_exception(self.ws.handshake_exc or ConnectionError(
                "the agent closed the connection during the handshake"))
        self.closed.set_result(None)
        self.writable = False

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        if self.on_writable is not None:
            self.on_writable()

    # --- sending ---

    def send(self, message: Message) -> None:
        """One message, in one ``transport.write``; dropped if the
        connection is no longer open (the call is hung up by then)."""
        if not self.open:
            return
        transport = self._transport
        assert transport is not None  # invariant: open means connected
        if isinstance(message, str):
            transport.write(client_frame(Opcode.TEXT, message.encode()))
        else:
            transport.write(client_frame(Opcode.BINARY, message))

    async def aclose(self, timeout: float) -> None:
        """The closing handshake, then the TCP close; the socket is aborted
        if the agent does not answer within ``timeout``."""
        if self.ws.state is OPEN:
            self.ws.send_close(CloseCode.NORMAL_CLOSURE)
            self._write_pending()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # --- internals ---

    def _library_receive(self, data: bytes | bytearray) -> None:
        self.ws.receive_data(data)
        self._write_pending()  # pongs, the echo of a close frame
        for event in self.ws.events_received():
            if isinstance(event, Response):
                self._handshake_done()
            elif isinstance(event, Frame):
                self._frame(event)
        if self.ws.close_expected():
            self._expect_close()

    def _receive_response(self, data: bytes) -> None:
        # The library gets the handshake response up to its blank line (a
        # 101 has no body) and nothing after it, so it is left at the start
        # of a frame; what follows is read as frames once the connection is
        # open (or by the library, if the handshake failed).
        window = self._response_tail + data
        end = window.find(b"\r\n\r\n")
        if end < 0:
            self._response_tail = window[-3:]
            self._library_receive(data)
            return
        cut = end + 4 - len(self._response_tail)
        self._response_tail = b""
        self._library_receive(data[:cut])
        if len(data) > cut:
            self.data_received(data[cut:])

    def _receive_frames(self, data: bytes) -> None:
        """Whole frames cut from the stream (see the module doc): plain text
        frames delivered here, every other frame handed whole to the library."""
        buffer: bytes | bytearray = data
        if self._partial:
            # Extended in place: a large frame trickling in costs no copy
            # of what came before per piece.
            self._partial += data
            buffer = self._partial
        size, position = len(buffer), 0
        ws = self.ws
        while True:
            if ws.state is not OPEN:  # failed or closing: the library discards the rest
                self._library_rest(buffer, position)
                return
            if size - position < 2:
                break
            first, second = buffer[position], buffer[position + 1]
            if second & 0x80:  # masked, from a server: the library fails on the header
                self._library_rest(buffer, position)
                return
            length, start = second & 0x7F, position + 2
            if length >= 126:
                start += 2 if length == 126 else 8
                if start > size:
                    break
                length = int.from_bytes(buffer[position + 2:start], "big")
            if length > MAX_MESSAGE_SIZE:  # the library fails it on its header too
                self._library_rest(buffer, position)
                return
            end = start + length
            if end > size:  # the rest of the frame is still on its way
                break
            if first == 0x81 and ws.current_size is None:  # FIN, text, no RSV bit
                self._deliver(Opcode.TEXT, buffer[start:end])
            else:
                self._library_receive(buffer[position:end])
            position = end
        # What is left waits for more.
        if buffer is self._partial:
            del buffer[:position]
        elif position < size:
            self._partial = bytearray(buffer[position:])

    def _library_rest(self, buffer: bytes | bytearray, position: int) -> None:
        self._partial = bytearray()
        if position < len(buffer):
            self._library_receive(buffer[position:])

    def _write_pending(self) -> None:
        transport = self._transport
        assert transport is not None  # invariant: called once connected
        for data in self.ws.data_to_send():
            if data == SEND_EOF:
                if transport.can_write_eof():
                    transport.write_eof()
            else:
                transport.write(data)

    def _handshake_done(self) -> None:
        if self.opened.done():
            return
        if self.ws.handshake_exc is not None:
            self.opened.set_exception(self.ws.handshake_exc)
            return
        self.opened.set_result(None)
        self._timer = self._loop.call_later(PING_INTERVAL_S, self._send_ping)

    def _frame(self, frame: Frame) -> None:
        if self._failed:  # parsed with the frame that failed the connection: not delivered
            return
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(opcode, frame.data)
            else:
                self._fragmented, self._fragments = opcode, [frame.data]
        elif opcode is Opcode.CONT:
            self._fragments.append(frame.data)
            if frame.fin and self._fragmented is not None:
                data = b"".join(self._fragments)
                opcode, self._fragmented, self._fragments = self._fragmented, None, []
                self._deliver(opcode, data)
        elif opcode is Opcode.PONG and self._ping is not None and frame.data == self._ping:
            self._ping = None

    def _deliver(self, opcode: Opcode, data: Buffer) -> None:
        if opcode is Opcode.BINARY:
            self._on_message(bytes(data))  # the parser hands out bytearrays
            return
        try:
            text = str(data, "utf-8")
        except UnicodeDecodeError as exc:
            # As websockets does for a text frame that is not UTF-8.
            self._failed = True
            self.ws.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            self._write_pending()
            self._expect_close()
            return
        self._on_message(text)

    def _send_ping(self) -> None:
        if self.ws.state is not OPEN:
            return
        self._ping = os.urandom(4)
        self.ws.send_ping(self._ping)
        self._write_pending()
        self._timer = self._loop.call_later(PING_TIMEOUT_S, self._check_pong)

    def _check_pong(self) -> None:
        if self._ping is None:  # answered: the next ping an interval after this one
            self._timer = self._loop.call_later(max(0.0, PING_INTERVAL_S - PING_TIMEOUT_S),
                                                self._send_ping)
            return
        # No pong: the agent (or the path to it) is dead.
        if self.ws.state is OPEN:
            self.ws.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._write_pending()
        self.abort()

    def _expect_close(self) -> None:
        # The agent should now close the TCP connection; if it does not, we do.
        if self._close_timer is None and not self.closed.done():
            self._close_timer = self._loop.call_later(FLUSH_TIMEOUT_S, self.abort)


class Outbox:
    """Messages for the agent, written in order as they come.

    A message is written to the socket at once, by whoever puts it, unless
    the socket's buffer is full (flow control) — then messages wait here.
    Control messages (marks, DTMF, start/stop) are always kept; audio is
    dropped while ``MAX_MEDIA_BACKLOG`` audio messages are already waiting,
    so a reader that cannot keep up costs a bounded amount of memory and
    never slows the media engine. Audio is passed as a function that builds
    the message, called only when it is sent, so that dropped audio leaves
    no gap in the protocol's sequence numbers.
    """

    def __init__(self, call: Call, connection: AgentConnection,
                 max_media: int = MAX_MEDIA_BACKLOG) -> None:
        self._call = call
        self._connection = connection
        self._max_media = max_media
        self._items: deque[tuple[bool, Message | Callable[[], Message]]] = deque()
        self._media = 0
        self._closed = False
        #: Resolves once ``close()`` was called and everything was written.
        self.flushed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection.on_writable = self._drain

    def put(self, message: Message) -> None:
        if self._items or not self._connection.writable:
            self._items.append((False, message))
            self._drain()
        else:
            self._connection.send(message)

    def put_media(self, build: Callable[..., Message], *args: Any) -> None:
        """Audio: the message ``build(*args)`` makes, built when it is sent."""
        if not self._items and self._connection.writable:
            self._connection.send(build(*args))
            return
        if self._media >= self._max_media:
            self._call.note_agent_error("slow_reader", "caller audio dropped: the agent's "
                                        "socket is not keeping up")
            return
        self._media += 1
        self._items.append((True, functools.partial(build, *args)))

    def close(self) -> None:
        self._closed = True
        self._drain()

    def _drain(self) -> None:
        connection = self._connection
        while self._items and connection.writable:
            is_media, item = self._items.popleft()
            if is_media:
                self._media -= 1
            connection.send(item() if callable(item) else item)
        if self._closed and not self._items and not self.flushed.done():
            self.flushed.set_result(None)

    async def run(self, producers: Sequence[Coroutine[Any, Any, None]]) -> None:
        """Run ``producers`` (which fill the outbox) until they end."""
        tasks = [asyncio.create_task(p) for p in producers]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            self.close()


async def connect(url: str, connect_timeout: float,
                  on_message: Callable[[Message], None]) -> AgentConnection:
    """A WebSocket connection to ``url`` (ws:// or wss://), handshake done,
    without compression (Twilio does not compress, and zlib on every 20 ms
    message would be most of the gateway's CPU per call). Raises
    ``InvalidURI``, ``InvalidHandshake`` (``ProxyError`` among them),
    ``InvalidProxy``, ``OSError`` or ``TimeoutError``.

    An HTTP(S) proxy named by the environment (``https_proxy`` /
    ``http_proxy``, ``no_proxy``; ``wss_proxy`` / ``ws_proxy`` first) is
    used as ``websockets`` itself does: an HTTP CONNECT tunnel, with TLS to
    the agent inside it for wss://. SOCKS proxies are refused
    (``InvalidProxy``): they would need another dependency."""
    uri = parse_uri(url)
    ws = ClientProtocol(uri, max_size=MAX_MESSAGE_SIZE)
    loop = asyncio.get_running_loop()
    connection = AgentConnection(ws, on_message)
    proxy_url = get_proxy(uri)
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(connect_timeout):
            if proxy_url is None:
                transport, _ = await loop.create_connection(
                    lambda: connection, uri.host, uri.port, ssl=True if uri.secure else None)
            else:
                proxy = parse_proxy(proxy_url)
                if not proxy.scheme.startswith("http"):
                    raise InvalidProxy(proxy_url, "only HTTP(S) proxies are supported")
                tunnel = await connect_http_proxy(
                    proxy, uri, ssl=True if proxy.scheme == "https" else None)
                transport = tunnel
                tunnel.set_protocol(connection)
                if uri.secure:
                    secured = await loop.start_tls(tunnel, connection,
                                                   ssl.create_default_context(),
                                                   server_hostname=uri.host)
                    if secured is None:  # the loop closed under us
                        raise ConnectionError("TLS through the proxy did not start")
                    transport = secured
                connection.connection_made(transport)
            await connection.opened
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    return connection


async def run(call: Call, url: str, connect_timeout: float, *,
              hello: Sequence[Message],
              uplink: Callable[[Outbox], Sequence[Coroutine[Any, Any, None]]],
              on_message: Callable[[Message], None],
              goodbye: Callable[[], Message | None]) -> None:
    """One call over one WebSocket connection to ``url`` (see the module doc)."""
    try:
        connection = await connect(url, connect_timeout, on_message)
    except (OSError, TimeoutError, InvalidHandshake, InvalidProxy, InvalidURI) as exc:
        log.error("agent connection failed: %s", exc, extra={
            "event": "agent_connect_failed", "call_sid": call.call_sid, "url": url})
        await call.hangup()
        return
    outbox = Outbox(call, connection)
    for message in hello:
        outbox.put(message)
    sending = asyncio.create_task(outbox.run(uplink(outbox)))
    ended = asyncio.create_task(call.ended.wait())
    waits: set[asyncio.Future[Any]] = {sending, ended, connection.closed}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        failed = sending in done and not sending.cancelled() and sending.exception() is not None
        if connection.closed in done or not connection.open or failed:
            log.info("agent closed the stream", extra={
                "event": "agent_closed", "call_sid": call.call_sid})
            await call.hangup()
            await connection.aclose(FLUSH_TIMEOUT_S)
        else:
            # The call ended: flush what is queued and say goodbye, but give
            # an agent that does not read only so long before dropping it.
            flushed, _ = await asyncio.wait({outbox.flushed}, timeout=FLUSH_TIMEOUT_S)
            last = goodbye() if flushed else None
            if last is None:
                connection.abort()
            else:
                connection.send(last)
                await connection.aclose(FLUSH_TIMEOUT_S)
    finally:
        for task in (sending, ended):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        connection.abort()
        # The outbox and the connection refer to each other (its flow
        # control calls the outbox back): undone, so that they die with
        # the call by reference counting instead of waiting for a full
        # garbage collection, which the gateway keeps rare (see cli.py).
        connection.on_writable = None
