"""How the gateway reaches its agent: over wss:// it verifies the agent's
certificate against the system's trust store (``SSL_CERT_FILE`` points
OpenSSL at another one, as for any TLS client), and a certificate it cannot
verify fails the agent connection, which hangs the call up, as an
unreachable agent does. Through an HTTP proxy named by the environment it
tunnels with CONNECT (TLS to the agent inside the tunnel)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gateway_helpers import Caller, rms, running, wait_until
from test_aio_sip import make_tls_contexts
from test_gateway import TwilioAgent, config, media, tone
from websockets.asyncio.server import ServerConnection, serve

from rtpcore.gateway import Gateway


async def greet_with_a_tone(agent: TwilioAgent, ws: ServerConnection) -> None:
    await agent.pump(ws, until=lambda m: m["event"] == "start")
    await ws.send(media(agent.received[-1]["streamSid"], tone(600, 8000)))
    await agent.pump(ws)


class ConnectProxy:
    """An HTTP CONNECT proxy (RFC 9110 section 9.3.6) that records where it
    was asked to go and answers ``status`` (200 opens the tunnel)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.requests.append(head.split("\r\n", 1)[0])
        method, target, _ = self.requests[-1].split(" ")
        if method != "CONNECT" or self.status != 200:
            writer.write(f"HTTP/1.1 {self.status} Forbidden\r\nContent-Length: 0\r\n\r\n".encode())
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(self._pipe(reader, upstream_writer),
                             self._pipe(upstream_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.setenv("https_proxy", url)
        try:
            yield
        finally:
            server.close()


@contextlib.asynccontextmanager
async def wss_call(tmp_path: Path, agent: TwilioAgent) -> AsyncIterator[tuple[Caller, tuple[str, int]]]:
    """A gateway bridging to ``agent`` over TLS, and a caller to dial it."""
    server_ctx, _ = make_tls_contexts(tmp_path)
    async with serve(agent.handler, "127.0.0.1", 0, ssl=server_ctx) as server:
        url = f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}/stream"
        gw = Gateway(config(), agent=url)
        async with running(gw):
            caller = await Caller.start()
            try:
                yield caller, gw.address()
            finally:
                await caller.close()


async def test_agent_over_wss_carries_the_call(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # trust the test's CA
    agent = TwilioAgent(greet_with_a_tone)
    async with wss_call(tmp_path, agent) as (caller, gateway):
        await caller.dial(gateway)
        await wait_until(lambda: len(agent.events("media")) >= 25)  # 0.5 s of caller audio
        await asyncio.sleep(0.8)  # the agent's 600 ms tone plays out
        caller.endpoint.hangup(caller.call)
        await caller.wait_ended()
        await asyncio.wait_for(agent.closed.wait(), 5)
    assert [m["event"] for m in agent.received[:2]] == ["connected", "start"]
    assert agent.received[-1]["event"] == "stop"
    assert rms(caller.heard_pcm()) > 500  # the agent's tone came back through TLS


async def test_agent_with_an_untrusted_certificate_hangs_the_call_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # a self-signed cert nobody trusts
    agent = TwilioAgent(greet_with_a_tone)
    async with wss_call(tmp_path, agent) as (caller, gateway):
        with caplog.at_level(logging.ERROR, logger="rtpcore.gateway"):
            await caller.dial(gateway)
            ended = await caller.wait_ended()
    assert ended.reason == "remote hangup"
    assert not agent.received  # no handshake reached the agent
    failures = [r for r in caplog.records if getattr(r, "event", None) == "agent_connect_failed"]
    assert failures and "CERTIFICATE_VERIFY_FAILED" in failures[0].getMessage()


async def test_agent_through_an_http_proxy(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    proxy, agent = ConnectProxy(), TwilioAgent(greet_with_a_tone)
    async with proxy.serving(monkeypatch), wss_call(tmp_path, agent) as (caller, gateway):
        await caller.dial(gateway)
        await wait_until(lambda: len(agent.events("media")) >= 25)
        await asyncio.sleep(0.8)
        caller.endpoint.hangup(caller.call)
        await caller.wait_ended()
    assert len(proxy.requests) == 1 and proxy.requests[0].startswith("CONNECT 127.0.0.1:")
    assert [m["event"] for m in agent.received[:2]] == ["connected", "start"]
    assert rms(caller.heard_pcm()) > 500


async def test_a_proxy_refusing_the_tunnel_hangs_the_call_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    proxy, agent = ConnectProxy(status=403), TwilioAgent(greet_with_a_tone)
    async with proxy.serving(monkeypatch), wss_call(tmp_path, agent) as (caller, gateway):
        with caplog.at_level(logging.ERROR, logger="rtpcore.gateway"):
            await caller.dial(gateway)
            ended = await caller.wait_ended()
    assert ended.reason == "remote hangup" and not agent.received
    failures = [r for r in caplog.records if getattr(r, "event", None) == "agent_connect_failed"]
    assert failures and "403" in failures[0].getMessage()
