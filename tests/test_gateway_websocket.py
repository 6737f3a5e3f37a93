"""The agent WebSocket's own fast paths against the library they stand in for.

``rtpcore.gateway._websocket`` frames what it sends itself and cuts plain
text frames out of what it receives, handing every other frame to
``websockets``' ``ClientProtocol``. These tests feed the same bytes, cut into
any TCP segments, to a connection that does that and to one that hands
everything to the library a frame at a time (how the gateway read before,
with no frame parsed ahead of one that fails the connection), and require
the same messages, the same frames sent back (pongs, closes) and the same end
state; and they read the frames the gateway sends with the library's parser.
``TwilioStream.parse`` reads the usual media message without ``json.loads``:
it must agree with the JSON path on every message, well-formed or not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader
from websockets.uri import parse_uri
from websockets.utils import accept_key

from rtpcore.gateway import twilio
from rtpcore.gateway._websocket import MAX_MESSAGE_SIZE, AgentConnection, ProtocolError, client_frame
from rtpcore.gateway.twilio import AgentMedia, TwilioStream

# --- frames the gateway sends ------------------------------------------------------------


def read_client_frames(data: bytes) -> list[Frame]:
    """Frames as a server reads them (unmasking, checks), with the library's parser."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True, max_size=None)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_client_frame_is_what_the_library_reads(opcode: Opcode, length: int) -> None:
    payload = bytes(i % 251 for i in range(length))
    data = client_frame(opcode, payload)
    (frame,) = read_client_frames(data)
    assert (frame.opcode, frame.fin, frame.data) == (opcode, True, payload)
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)
    header = 2 + (0 if length < 126 else 2 if length < 65536 else 8)
    assert len(data) == header + 4 + length
    # Masked, with a new key per frame: the same payload twice is not the same bytes.
    if length:
        assert client_frame(opcode, payload)[header:] != data[header:]


# --- frames the gateway receives ------------------------------------------------------------


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.aborted = False

    def write(self, data: Any) -> None:
        self.written += data

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


class LibraryOnly(AgentConnection):
    """Every received byte through ``websockets``, as the gateway read before."""

    def data_received(self, data: bytes) -> None:
        self._library_receive(data)


def server_frame(first: int, payload: bytes, *, masked: bool = False,
                 declared: int | None = None) -> bytes:
    """A frame as a server (or a broken one) might send it: ``first`` is the
    FIN/RSV/opcode byte; ``declared`` a length other than the payload's."""
    length = len(payload) if declared is None else declared
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    return header + (b"\x00\x00\x00\x00" if masked else b"") + payload


def text(payload: bytes) -> bytes:
    return server_frame(0x81, payload)


FRAMES = st.one_of(
    st.text(max_size=300).map(lambda t: text(t.encode())),
    st.binary(max_size=200).map(text),  # often not UTF-8: 1007
    st.binary(max_size=200).map(lambda b: server_frame(0x82, b)),
    st.binary(max_size=125).map(lambda b: server_frame(0x89, b)),  # ping
    st.binary(max_size=125).map(lambda b: server_frame(0x8A, b)),  # pong
    st.binary(min_size=126, max_size=130).map(lambda b: server_frame(0x89, b)),  # bad ping
    st.text(max_size=20).map(lambda r: server_frame(0x88, b"\x03\xe8" + r.encode())),  # close
    st.text(min_size=2, max_size=40).map(  # a message in two fragments
        lambda t: server_frame(0x01, t[:1].encode()) + server_frame(0x80, t[1:].encode())),
    st.binary(max_size=20).map(lambda b: server_frame(0x80, b)),  # stray continuation
    st.binary(max_size=20).map(lambda b: server_frame(0x81 | 0x40, b)),  # RSV1
    st.binary(max_size=20).map(lambda b: server_frame(0x83, b)),  # reserved opcode
    st.binary(max_size=20).map(lambda b: server_frame(0x81, b, masked=True)),
    st.just(server_frame(0x81, b"x" * 10, declared=MAX_MESSAGE_SIZE + 1)),  # 1009
    st.integers(126, 70000).map(lambda n: text(b"a" * n)),  # 16- and 64-bit lengths
)


async def receive(connection_class: type[AgentConnection], key: str,
                  segments: list[bytes]) -> tuple[list[Any], list[tuple[Opcode, Any]], Any]:
    """What a connection makes of ``segments`` (the handshake response, then
    frames): messages delivered, frames it wrote back, end state."""
    uri = parse_uri("ws://agent.test/stream")
    messages: list[Any] = []
    connection = connection_class(ClientProtocol(uri, max_size=MAX_MESSAGE_SIZE),
                                  messages.append)
    transport = RecordingTransport()
    connection.connection_made(transport)
    connection.ws.key = key  # both connections get the one response
    request_size = len(transport.written)
    for segment in segments:
        connection.data_received(segment)
    await connection.opened
    ws = connection.ws
    written = [(f.opcode, f.data) for f in
               read_client_frames(bytes(transport.written[request_size:]))]
    return messages, written, (ws.state, ws.close_rcvd, ws.close_sent, ws.close_expected())


def handshake_response(key: str) -> bytes:
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n")


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(FRAMES, max_size=8), cuts=st.lists(st.integers(0, 2**20), max_size=6),
       head_cut=st.integers(0, 200))
def test_received_frames_as_the_library_reads_them(frames: list[bytes], cuts: list[int],
                                                   head_cut: int) -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    response = handshake_response(key)
    # The response's head may share segments with the first frames, and its
    # blank line may be split.
    stream = response + b"".join(frames)
    points = sorted({min(head_cut, len(response))} | {c % (len(stream) + 1) for c in cuts})
    segments = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)]) if b > a]

    async def both() -> tuple[Any, Any]:
        return (await receive(AgentConnection, key, segments),
                await receive(LibraryOnly, key, [response, *frames]))

    ours, library = asyncio.run(both())
    assert ours == library


def test_plain_text_frames_skip_the_library() -> None:
    """The fast path is taken: a stream of media messages never reaches
    the library's parser (its reader stays empty, its parser unstepped)."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    message = json.dumps({"event": "media", "streamSid": "MZ1",
                          "media": {"payload": base64.b64encode(bytes(160)).decode()}})
    stream = b"".join(text(message.encode()) for _ in range(20))

    async def run() -> None:
        uri = parse_uri("ws://agent.test/stream")
        messages: list[Any] = []
        connection = AgentConnection(ClientProtocol(uri, max_size=MAX_MESSAGE_SIZE),
                                     messages.append)
        connection.connection_made(RecordingTransport())
        connection.ws.key = key
        connection.data_received(handshake_response(key) + stream[:1000])
        await connection.opened
        fed = connection.ws.receive_data
        connection.ws.receive_data = None  # type: ignore[assignment,method-assign]
        connection.data_received(stream[1000:])
        connection.ws.receive_data = fed  # type: ignore[method-assign]
        assert messages == [message] * 20

    asyncio.run(run())


# --- the media message without json.loads ----------------------------------------------------


def json_path(message: str) -> Any:
    """``TwilioStream.parse`` with the fast path's pattern matching nothing."""
    pattern, twilio._MEDIA_MESSAGE = twilio._MEDIA_MESSAGE, re.compile(r"(?!)")
    try:
        return outcome(message)
    finally:
        twilio._MEDIA_MESSAGE = pattern


def outcome(message: str) -> Any:
    try:
        return TwilioStream.parse(message)
    except ProtocolError as exc:
        return ("ProtocolError", str(exc))


SIDS_TEXT = st.one_of(st.just("MZ0123456789abcdef0123456789abcdef"),
                      st.text(max_size=6), st.sampled_from(['MZ"', "MZ\\", "MZ\\u0041", "MZ\x01"]))
PAYLOADS = st.one_of(st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
                     st.text(alphabet="AZaz09+/=-_ \\\"\n", max_size=12))


@settings(max_examples=500, deadline=None)
@given(sid=SIDS_TEXT, payload=PAYLOADS, spaced=st.booleans(), junk=st.sampled_from(
    ["", " ", "x", "}", "\n"]), shape=st.integers(0, 3))
def test_media_fast_path_agrees_with_json(sid: str, payload: str, spaced: bool, junk: str,
                                          shape: int) -> None:
    colon, comma = (": ", ", ") if spaced else (":", ",")
    q = json.dumps  # quoting as an encoder would, or not (shape 1: raw, maybe invalid)
    sid_text = q(sid) if shape != 1 else f'"{sid}"'
    payload_text = q(payload) if shape != 2 else f'"{payload}"'
    message = (f'{{"event"{colon}"media"{comma}"streamSid"{colon}{sid_text}{comma}'
               f'"media"{colon}{{"payload"{colon}{payload_text}}}}}')
    if shape == 3:  # a key more: the JSON path's business
        message = message[:-1] + f'{comma}"sequenceNumber"{colon}"7"}}'
    message += junk
    assert outcome(message) == json_path(message)


def test_media_fast_path_taken_and_precise() -> None:
    ulaw = bytes(range(160))
    encoded = base64.b64encode(ulaw).decode()
    pipecat = json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": encoded}})
    compact = json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": encoded}},
                         separators=(",", ":"))
    for message in (pipecat, compact):
        assert twilio._MEDIA_MESSAGE.fullmatch(message)
        assert TwilioStream.parse(message) == AgentMedia(ulaw)
    # Characters of base64 in a payload whose padding is wrong: the pattern
    # matches, the decoder refuses, as b64decode(validate=True) does.
    bad = compact.replace(encoded, encoded[:-1])
    assert twilio._MEDIA_MESSAGE.fullmatch(bad)
    with pytest.raises(ProtocolError, match="not base64"):
        TwilioStream.parse(bad)
    with pytest.raises(binascii.Error):
        base64.b64decode(encoded[:-1], validate=True)
    # Padding alone or in excess: refused as b64decode(validate=True) does
    # (binascii's lenient mode would give b"" and b"A").
    for payload in ("=", "==", "QQ==="):
        message = compact.replace(encoded, payload)
        assert bool(twilio._MEDIA_MESSAGE.fullmatch(message)) == (payload != "QQ===")
        assert outcome(message) == json_path(message) == ("ProtocolError",
                                                          "media: media.payload is not base64")


def test_large_frame_in_small_pieces() -> None:
    """A frame that arrives a little at a time (a slow or hostile agent) is
    delivered once, whole, and what waits is never more than the frame."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    message = "x" * 100_000
    stream = text(message.encode()) + text(b"after")

    async def run() -> None:
        messages: list[Any] = []
        connection = AgentConnection(ClientProtocol(parse_uri("ws://agent.test/stream"),
                                                    max_size=MAX_MESSAGE_SIZE), messages.append)
        connection.connection_made(RecordingTransport())
        connection.ws.key = key
        connection.data_received(handshake_response(key))
        await connection.opened
        for start in range(0, len(stream), 999):
            connection.data_received(stream[start:start + 999])
            assert len(connection._partial) <= len(message) + 10
        assert messages == [message, "after"]
        assert not connection._partial

    asyncio.run(run())
