"""asyncio transports for the sans-IO SIP user agent: UDP, TCP and TLS.

``SIPEndpoint`` binds a ``UserAgent`` to sockets: it feeds received bytes
to the agent (framing stream transports with ``StreamParser``), writes what
the agent sends, keeps one timer armed at the agent's ``next_deadline`` and
hands the agent's events to ``on_event`` (or the ``events`` queue).
Application commands go through the endpoint (``endpoint.answer(call,
...)``) so that the current time is passed and the output flushed.

Stream transports answer CRLF CRLF keep-alive pings with CRLF (RFC 5626
section 4.4.1), close a connection after a framing error (after trying to
answer it with the error's status), and open connections to destinations
they have none for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Callable
from typing import Any

from rtpcore.errors import SIPParseError
from rtpcore.sip import KEEPALIVE, Response, StreamParser
from rtpcore.sip.ua import Destination, UserAgent

__all__ = ["SIPEndpoint"]


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SIPEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # A CRLF keep-alive datagram: nothing to do. Only a datagram that
        # starts with CR or LF can be one, so the others are not copied by strip.
        if data[:1] in (b"\r", b"\n") and not data.strip(b"\r\n"):
            return
        self.endpoint._input(lambda now: self.endpoint.ua.receive(data, addr[:2], now))

    def error_received(self, exc: Exception) -> None:
        self.endpoint.stats["socket_errors"] += 1


class SIPEndpoint:
    """A user agent on real sockets. Create with ``await SIPEndpoint.start(ua)``."""

    def __init__(self, ua: UserAgent, on_event: Callable[[object], None] | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 client_ssl_context: ssl.SSLContext | None = None,
                 keepalive_interval: float | None = None,
                 keepalive_timeout: float = 10.0) -> None:
        self.ua = ua
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[object] = asyncio.Queue()
        self.on_event = on_event or self.events.put_nowait
        self.ssl_context = ssl_context
        self.client_ssl_context = client_ssl_context
        self.stats = {"socket_errors": 0, "connections": 0, "stream_errors": 0,
                      "keepalive_failures": 0}
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: dict[tuple[str, int], asyncio.StreamWriter] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    @classmethod
    async def start(cls, ua: UserAgent, on_event: Callable[[object], None] | None = None,
                    ssl_context: ssl.SSLContext | None = None,
                    client_ssl_context: ssl.SSLContext | None = None,
                    keepalive_interval: float | None = None,
                    keepalive_timeout: float = 10.0) -> SIPEndpoint:
        """Bind ``ua.host:ua.port`` (port 0 picks a free one and updates ``ua.port``).

        ``keepalive_interval``: on connections we opened, send a CRLF CRLF
        ping after that many idle seconds and close the connection when no
        pong (or anything) comes back within ``keepalive_timeout`` seconds (RFC
        5626 section 4.4.1).
        """
        endpoint = cls(ua, on_event, ssl_context, client_ssl_context, keepalive_interval,
                       keepalive_timeout)
        if ua.transport == "UDP":
            transport, _ = await endpoint.loop.create_datagram_endpoint(
                lambda: _UDPProtocol(endpoint), local_addr=(ua.host, ua.port))
            endpoint._udp = transport
            ua.port = transport.get_extra_info("sockname")[1]
        else:
            if ua.transport == "TLS" and ssl_context is None:
                raise ValueError("ssl_context: a TLS endpoint needs a server SSLContext")
            endpoint._server = await asyncio.start_server(
                endpoint._serve_connection, ua.host, ua.port,
                ssl=ssl_context if ua.transport == "TLS" else None)
            ua.port = endpoint._server.sockets[0].getsockname()[1]
        return endpoint

    def now(self) -> float:
        return self.loop.time()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        for writer in list(self._writers.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- commands: call the agent with the current time, then flush ----------

    def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``ua.<name>(*args, now=..., **kwargs)`` followed by a flush."""
        result = getattr(self.ua, name)(*args, now=self.now(), **kwargs)
        self._flush()
        return result

    def invite(self, target: str, destination: Destination | tuple[str, int],
               media_address: str, media_port: int, **kwargs: Any) -> Any:
        return self.command("invite", target, destination, media_address, media_port, **kwargs)

    def ring(self, call: Any, early_media: bool = False) -> None:
        self.command("ring", call, early_media=early_media)

    def answer(self, call: Any, media_address: str, media_port: int) -> None:
        self.command("answer", call, media_address, media_port)

    def reject(self, call: Any, status_code: int) -> None:
        self.command("reject", call, status_code)

    def hangup(self, call: Any) -> None:
        self.command("hangup", call)

    def hold(self, call: Any) -> None:
        self.command("hold", call)

    def resume(self, call: Any) -> None:
        self.command("resume", call)

    def send_dtmf(self, call: Any, digit: str) -> None:
        self.command("send_dtmf", call, digit)

    def options(self, destination: Destination | tuple[str, int]) -> None:
        self.command("options", destination)

    # --- plumbing -------------------------------------------------------------

    def _input(self, feed: Callable[[float], None]) -> None:
        feed(self.now())
        self._flush()

    def _flush(self) -> None:
        ua = self.ua
        for out in ua.take_outgoing():
            self._send(out.data, out.destination)
        for event in ua.take_events():
            self.on_event(event)
        self._arm_timer()

    def _arm_timer(self) -> None:
        # Only ever move the timer earlier: a timer that fires before anything
        # is due costs one empty on_timer, while re-arming on every message
        # costs a heap entry per message in the event loop.
        deadline = self.ua.next_deadline
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.ua.on_timer(self.now())
        self._flush()

    def _send(self, data: bytes, destination: Destination) -> None:
        _transport, host, port = destination
        if self._udp is not None:
            self._udp.sendto(data, (host, port))
            return
        writer = self._writers.get((host, port))
        if writer is not None and not writer.is_closing():
            writer.write(data)
            return
        queue = self._pending.setdefault((host, port), [])
        queue.append(data)
        if len(queue) == 1:
            self._spawn(self._connect(host, port))

    def _spawn(self, coroutine: Any) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, host: str, port: int) -> None:
        tls = self.ua.transport == "TLS"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                host, port, ssl=(self.client_ssl_context or ssl.create_default_context())
                if tls else None), timeout=10)
        except (TimeoutError, OSError, ssl.SSLError):
            self.stats["socket_errors"] += 1
            self._pending.pop((host, port), None)
            return  # the client transaction times out (or retries over another target)
        self._writers[(host, port)] = writer
        for data in self._pending.pop((host, port), []):
            writer.write(data)
        await self._read_stream(reader, writer, (host, port), self.keepalive_interval)

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        self._writers[peer] = writer
        self.stats["connections"] += 1
        await self._read_stream(reader, writer, peer)

    async def _read_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           peer: tuple[str, int], keepalive: float | None = None) -> None:
        parser = StreamParser(self.ua.limits)
        pinged = False
        try:
            while not parser.failed:
                if keepalive is None:
                    data = await reader.read(65536)
                else:
                    try:
                        data = await asyncio.wait_for(reader.read(65536),
                                                      self.keepalive_timeout if pinged
                                                      else keepalive)
                    except TimeoutError:
                        if pinged:  # no pong: the path is dead
                            self.stats["keepalive_failures"] += 1
                            break
                        writer.write(b"\r\n\r\n")
                        pinged = True
                        continue
                    pinged = False  # anything, the CRLF pong included, proves the path
                if not data:
                    break
                for event in parser.feed(data):
                    if event is KEEPALIVE:
                        writer.write(b"\r\n")
                    elif isinstance(event, SIPParseError):
                        self.stats["stream_errors"] += 1
                        writer.write(Response(event.status_code, event.reason).encode())
                    elif self.ua.admit(peer[0], self.now()):
                        self._input(functools.partial(self.ua.receive_message, event, peer))
        except (ConnectionError, ssl.SSLError, OSError):
            self.stats["socket_errors"] += 1
        finally:
            if self._writers.get(peer) is writer:
                del self._writers[peer]
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()
