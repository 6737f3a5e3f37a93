"""SIP user agents over real loopback sockets: UDP, TCP and TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from rtpcore.aio.sip import SIPEndpoint
from rtpcore.sip.ua import CallAnswered, CallEnded, CallEstablished, IncomingCall, UserAgent


async def next_event(endpoint: SIPEndpoint, kind: type) -> object:
    while True:
        event = await asyncio.wait_for(endpoint.events.get(), timeout=5)
        if isinstance(event, kind):
            return event


def make_tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@pytest.mark.parametrize("transport", ["UDP", "TCP", "TLS"])
async def test_call_over_loopback(transport: str, tmp_path: Path) -> None:
    server_ctx = client_ctx = None
    if transport == "TLS":
        server_ctx, client_ctx = make_tls_contexts(tmp_path)
    bob = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, transport, user="bob"),
                                  ssl_context=server_ctx)
    alice = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, transport, user="alice"),
                                    ssl_context=server_ctx, client_ssl_context=client_ctx)
    try:
        call = alice.invite(f"sip:bob@127.0.0.1:{bob.ua.port}", ("127.0.0.1", bob.ua.port),
                            "127.0.0.1", 40000)
        incoming = await next_event(bob, IncomingCall)
        bob.answer(incoming.call, "127.0.0.1", 50000)
        await next_event(alice, CallAnswered)
        await next_event(bob, CallEstablished)
        assert call.media.remote_port == 50000
        alice.hangup(call)
        ended = await next_event(bob, CallEnded)
        assert ended.reason == "remote hangup"
        await next_event(alice, CallEnded)
        if transport != "UDP":
            assert bob.stats["connections"] == 1  # responses and BYE reused the connection
    finally:
        await alice.close()
        await bob.close()


async def test_tcp_keepalive_and_framing_error() -> None:
    bob = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, "TCP"))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bob.ua.port)
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"  # pong
        writer.write(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(1000), 5)
        assert reply.startswith(b"SIP/2.0 400")
        assert await asyncio.wait_for(reader.read(1000), 5) == b""  # then the server hangs up
        writer.close()
    finally:
        await bob.close()


@pytest.mark.parametrize("client_has_certificate", [True, False])
async def test_tls_client_certificates(tmp_path: Path, client_has_certificate: bool) -> None:
    from rtpcore.sip.transaction import Timers

    server_ctx, client_ctx = make_tls_contexts(tmp_path)
    server_ctx.verify_mode = ssl.CERT_REQUIRED  # the trunk must show its certificate
    server_ctx.load_verify_locations(cafile=str(tmp_path / "cert.pem"))
    if client_has_certificate:
        client_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    fast = Timers(t1=0.05)
    bob = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, "TLS", timers=fast),
                                  ssl_context=server_ctx)
    alice = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, "TLS", timers=fast),
                                    ssl_context=server_ctx, client_ssl_context=client_ctx)
    try:
        alice.invite(f"sip:bob@127.0.0.1:{bob.ua.port}", ("127.0.0.1", bob.ua.port),
                     "127.0.0.1", 40000)
        if client_has_certificate:
            incoming = await next_event(bob, IncomingCall)
            bob.reject(incoming.call, 486)
            assert (await next_event(alice, CallEnded)).status_code == 486
        else:
            assert (await next_event(alice, CallEnded)).status_code == 408
            assert bob.events.empty()
    finally:
        await alice.close()
        await bob.close()


async def test_client_keepalive_pings_and_gives_up_without_pong() -> None:
    """On the connection it opened, an idle client pings (CRLF CRLF, RFC 5626
    section 4.4.1); a pong keeps the connection, no pong in time closes it.
    Waits on what the peer sees rather than sleeping for a number of
    intervals: on a loaded machine the event loop runs timers late."""
    received = bytearray()
    answered = 0
    answer_pings = True
    third_ping = asyncio.Event()
    closed = asyncio.Event()

    def pings() -> int:
        # what follows the OPTIONS that opened the connection is pings only
        _, options_sent, rest = bytes(received).partition(b"\r\n\r\n")
        assert rest.strip(b"\r\n") == b"", rest
        return rest.count(b"\r\n\r\n") if options_sent else 0

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        while data := await reader.read(1000):
            received.extend(data)
            if pings() > answered and answer_pings:
                writer.write(b"\r\n")  # pong
            answered = pings()
            if answered >= 3:
                third_ping.set()
        closed.set()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    alice = await SIPEndpoint.start(UserAgent("127.0.0.1", 0, "TCP"), keepalive_interval=0.2,
                                    keepalive_timeout=0.5)
    try:
        alice.options(("127.0.0.1", port))  # opens the connection
        # a third ping on the same connection: the pongs to the first two kept it open
        await asyncio.wait_for(third_ping.wait(), 10)
        assert not closed.is_set()
        assert alice.stats["keepalive_failures"] == 0
        answer_pings = False
        await asyncio.wait_for(closed.wait(), 10)  # no pong in time: alice closed it
        assert alice.stats["keepalive_failures"] == 1
    finally:
        await alice.close()
        server.close()
