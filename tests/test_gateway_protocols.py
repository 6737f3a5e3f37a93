"""The agent protocols on their own: Twilio Media Streams and raw PCM messages
byte for byte, malformed input, and each adapter's translation between a
WebSocket agent (a local ``websockets`` server) and the ``Call`` API.

The media side here is ``gateway_helpers.RecordingMedia``, which records
what the adapter asks of it; tests/test_gateway.py runs the same protocols over real calls
with the media engine.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest
from gateway_helpers import (
    SIDS,
    Frame,
    RecordingControl,
    RecordingMedia,
    end_call,
    make_call,
    wait_until,
)
from websockets.asyncio.server import ServerConnection, serve

from rtpcore import g711
from rtpcore.gateway._websocket import FLUSH_TIMEOUT_S, ProtocolError
from rtpcore.gateway.agent import DTMF, FRAME_QUEUE_SIZE, Call, MarkPlayed, TransferResult
from rtpcore.gateway.rawpcm import Control, RawPCMStream, raw_pcm_agent
from rtpcore.gateway.twilio import AgentClear, AgentMark, AgentMedia, TwilioStream, twilio_agent

# --- Twilio messages ----------------------------------------------------------------

def test_twilio_messages_byte_for_byte() -> None:
    stream = TwilioStream(SIDS["stream_sid"], SIDS["call_sid"], SIDS["account_sid"],
                          {"from_number": "+15550100", "to_number": "+15550199"})
    mz, ca, ac = SIDS["stream_sid"], SIDS["call_sid"], SIDS["account_sid"]
    assert stream.connected() == '{"event":"connected","protocol":"Call","version":"1.0.0"}'
    assert stream.start() == (
        '{"event":"start","sequenceNumber":"1","start":{"accountSid":"' + ac + '",'
        '"streamSid":"' + mz + '","callSid":"' + ca + '","tracks":["inbound"],'
        '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},'
        '"customParameters":{"from_number":"+15550100","to_number":"+15550199"}},'
        '"streamSid":"' + mz + '"}')
    assert stream.media(b"\xff\x7f\x00", 0) == (
        '{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1",'
        '"timestamp":"0","payload":"/38A"},"streamSid":"' + mz + '"}')
    assert json.loads(stream.media(b"\xff", 20))["media"]["chunk"] == "2"
    # media is formatted by hand (it is the message of every 20 ms): the same
    # as json.dumps, whatever the stream SID holds.
    odd = TwilioStream('MZ"\\\u00e9', "CA1", "AC1")
    for payload in (b"", b"\x00" * 160, bytes(range(256))):
        expected = json.dumps({"event": "media", "sequenceNumber": "1", "media": {
            "track": "inbound", "chunk": "1", "timestamp": "40",
            "payload": base64.b64encode(payload).decode()}, "streamSid": 'MZ"\\\u00e9'},
            separators=(",", ":"))
        assert odd.media(payload, 40) == expected
        odd = TwilioStream('MZ"\\\u00e9', "CA1", "AC1")
    assert stream.dtmf("7") == (
        '{"event":"dtmf","streamSid":"' + mz + '","sequenceNumber":"4",'
        '"dtmf":{"track":"inbound_track","digit":"7"}}')
    assert stream.mark("m1") == (
        '{"event":"mark","sequenceNumber":"5","streamSid":"' + mz + '","mark":{"name":"m1"}}')
    assert stream.stop() == (
        '{"event":"stop","sequenceNumber":"6","streamSid":"' + mz + '",'
        '"stop":{"accountSid":"' + ac + '","callSid":"' + ca + '"}}')


def test_twilio_parses_what_agents_send() -> None:
    # The shapes Pipecat's TwilioFrameSerializer and Twilio's samples send.
    media = json.dumps({"event": "media", "streamSid": "MZ1",
                        "media": {"payload": base64.b64encode(b"\x01\x02").decode()}})
    assert TwilioStream.parse(media) == AgentMedia(b"\x01\x02")
    assert TwilioStream.parse('{"event":"mark","streamSid":"MZ1","mark":{"name":"a b"}}') \
        == AgentMark("a b")
    assert TwilioStream.parse('{"event":"clear","streamSid":"MZ1"}') == AgentClear()
    assert TwilioStream.parse('{"event":"something-new"}') is None


@pytest.mark.parametrize("message", [
    b"\x00\x01",
    "not json",
    "[1, 2]",
    '{"no": "event"}',
    '{"event": 5}',
    '{"event": "media"}',
    '{"event": "media", "media": {"payload": 5}}',
    '{"event": "media", "media": {"payload": "***"}}',
    '{"event": "mark", "mark": {}}',
    '{"event": "mark", "mark": "x"}',
])
def test_twilio_rejects_malformed(message: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        TwilioStream.parse(message)


# --- raw PCM messages -----------------------------------------------------------------

def test_raw_pcm_messages() -> None:
    pcm = np.array([1, -2, 32767, -32768], dtype=np.int16)
    assert RawPCMStream.audio(pcm) == b"\x01\x00\xfe\xff\xff\x7f\x00\x80"
    assert RawPCMStream.parse(b"\x01\x00\xfe\xff").tolist() == [1, -2]  # type: ignore[union-attr]
    assert json.loads(RawPCMStream.event(DTMF("5", 120))) == {
        "event": "dtmf", "digit": "5", "durationMs": 120}
    assert json.loads(RawPCMStream.event(MarkPlayed("x", True))) == {
        "event": "mark", "name": "x", "cleared": True}
    assert json.loads(RawPCMStream.event(TransferResult("sip:a@b", 200))) == {
        "event": "transfer", "target": "sip:a@b", "statusCode": 200}
    assert RawPCMStream.parse('{"event":"mark","name":"n"}') == Control("mark", "n")
    assert RawPCMStream.parse('{"event":"dtmf","digits":"12#"}') == Control("dtmf", "12#")
    assert RawPCMStream.parse('{"event":"transfer","target":"sip:x@y"}') == \
        Control("transfer", "sip:x@y")
    assert RawPCMStream.parse('{"event":"clear"}') == Control("clear")
    assert RawPCMStream.parse('{"event":"stop"}') == Control("stop")
    assert RawPCMStream.parse('{"event":"future"}') is None


@pytest.mark.parametrize("message", [b"\x00", "{", '{"event":"mark"}', '{"event":"dtmf",'
                                     '"digits":""}', '{"event":"transfer","target":7}'])
def test_raw_pcm_rejects_malformed(message: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        RawPCMStream.parse(message)


# --- adapters over a real WebSocket ----------------------------------------------------

async def test_twilio_adapter_both_ways() -> None:
    await twilio_adapter_both_ways()


def test_twilio_adapter_both_ways_on_uvloop() -> None:
    """The same on uvloop (what ``rtpcore gateway`` runs on when installed),
    whose transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")
    uvloop.run(twilio_adapter_both_ways())


async def twilio_adapter_both_ways() -> None:
    received: list[dict[str, Any]] = []
    tone = (8000 * np.sin(np.arange(320) / 5)).astype(np.int16)

    extensions: list[str | None] = []

    async def agent(ws: ServerConnection) -> None:
        assert ws.request is not None
        extensions.append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        async for message in ws:
            data = json.loads(message)
            received.append(data)
            if data["event"] == "start":
                await ws.send(json.dumps({"event": "media", "streamSid": data["streamSid"],
                                          "media": {"payload": base64.b64encode(
                                              g711.ulaw_encode(tone)).decode()}}))
                await ws.send(json.dumps({"event": "mark", "streamSid": data["streamSid"],
                                          "mark": {"name": "after-tone"}}))
                await ws.send(json.dumps({"event": "clear", "streamSid": data["streamSid"]}))
                await ws.send("garbage")

    async with serve(agent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        call, media, control = make_call(8000)
        task = asyncio.create_task(twilio_agent(f"ws://127.0.0.1:{port}")(call))
        # 30 ms frames: split into Twilio's 20 ms chunks (160 samples), timestamps run on.
        for _ in range(2):
            await media.frames.put(Frame(np.full(240, 1000, dtype=np.int16)))
        await wait_until(lambda: ("clear", None) in media.actions)
        call.deliver(DTMF("5", 100))
        call.deliver(MarkPlayed("after-tone", cleared=True))
        await wait_until(lambda: any(m["event"] == "mark" for m in received))
        await end_call(call, media)
        await asyncio.wait_for(task, 5)

    assert extensions == [None]  # no permessage-deflate: Twilio sends plain frames
    events = [m["event"] for m in received]
    assert events[:2] == ["connected", "start"]
    assert events[-1] == "stop"
    start = received[1]["start"]
    assert start["customParameters"] == {"from_number": "+15550100", "to_number": "+15550199"}
    chunks = [m["media"] for m in received if m["event"] == "media"]
    assert [c["chunk"] for c in chunks] == ["1", "2", "3"]
    assert [c["timestamp"] for c in chunks] == ["0", "20", "40"]
    assert [len(base64.b64decode(c["payload"])) for c in chunks] == [160, 160, 160]
    assert base64.b64decode(chunks[0]["payload"]) == g711.ulaw_encode(
        np.full(160, 1000, dtype=np.int16))
    sequence = [int(m["sequenceNumber"]) for m in received[1:]]
    assert sequence == list(range(1, len(sequence) + 1))
    dtmf = next(m for m in received if m["event"] == "dtmf")
    assert dtmf["dtmf"] == {"track": "inbound_track", "digit": "5"}
    assert next(m for m in received if m["event"] == "mark")["mark"] == {"name": "after-tone"}
    # The agent's audio, mark and clear reached the media in order.
    assert media.actions[:3] == [("write", 320), ("mark", "after-tone"), ("clear", None)]
    np.testing.assert_array_equal(media.written[0], g711.ulaw_decode(g711.ulaw_encode(tone)))
    assert call.agent_errors == {"malformed_message": 1}
    assert not control.hung_up.is_set()


def test_ulaw_passthrough_call_writes_ulaw_as_it_is() -> None:
    """On a PCMU passthrough call μ-law goes to the stream untouched and PCM
    is encoded; otherwise μ-law is decoded to PCM."""
    call, media, _ = make_call(8000)
    ulaw = bytes(range(0, 256, 3))
    assert call.play_ulaw(ulaw)
    np.testing.assert_array_equal(media.written[-1], g711.ulaw_decode(ulaw))
    call.ulaw_passthrough = True
    assert call.play_ulaw(ulaw)
    assert media.written[-1].tobytes() == ulaw
    pcm = np.array([0, 1000, -1000, 32767], dtype=np.int16)
    assert call.play(pcm)
    assert media.written[-1].tobytes() == g711.ulaw_encode(pcm)
    assert call.play_ulaw(b"") and len(media.written) == 3  # nothing to queue
    with pytest.raises(ValueError, match="8000"):
        make_call(16000)[0].play_ulaw(ulaw)


async def test_fed_call_hands_frames_to_sink_and_audio() -> None:
    """A fed call (the gateway's batched reader): frames that come before
    the agent reads are kept (the oldest beyond the bound dropped and
    counted), then the sink gets them in order and the later ones as they
    come; ``audio`` reads the same queue; both end with the call."""
    def fed_call() -> Call:
        return Call(direction="inbound", from_number="a", to_number="b", sample_rate=8000,
                    media=RecordingMedia(), control=RecordingControl(), fed=True, **SIDS)

    call = fed_call()
    for i in range(FRAME_QUEUE_SIZE + 2):
        call.feed(i)
    assert call.frames_dropped == 2
    got: list[int] = []
    task = asyncio.create_task(call.stream_audio(got.append))
    await asyncio.sleep(0)
    assert got == list(range(2, FRAME_QUEUE_SIZE + 2))
    call.feed(99)
    assert got[-1] == 99  # at once, no task in between
    call.close()
    await asyncio.wait_for(task, 1)

    call = fed_call()
    call.feed(1)

    async def read() -> list[int]:
        return [frame async for frame in call.audio]

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)
    call.feed(2)
    await asyncio.sleep(0)
    call.close()
    assert await asyncio.wait_for(reader, 1) == [1, 2]


async def test_twilio_fragmented_message_and_bad_utf8() -> None:
    """A message the agent sends in fragments arrives whole; a text frame
    that is not UTF-8 fails the connection (1007) and hangs up."""
    ulaw = bytes(range(0, 160))
    closes: list[int | None] = []

    async def agent(ws: ServerConnection) -> None:
        start = json.loads(await ws.recv())
        while start["event"] != "start":
            start = json.loads(await ws.recv())
        message = json.dumps({"event": "media", "streamSid": start["streamSid"],
                              "media": {"payload": base64.b64encode(ulaw).decode()}})
        await ws.send([message[:10], message[10:50], message[50:]])  # three frames
        await asyncio.sleep(0.1)
        # websockets will not send bad UTF-8 itself: the frame's bytes by hand.
        ws.transport.write(_unmasked_text_frame(b"\xff\xfe"))
        await ws.wait_closed()
        closes.append(ws.close_code)

    async with serve(agent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        call, media, control = make_call(8000)
        call.ulaw_passthrough = True
        await asyncio.wait_for(twilio_agent(f"ws://127.0.0.1:{port}")(call), 5)
    assert media.written[0].tobytes() == ulaw
    assert control.hung_up.is_set()
    assert closes == [1007]


def _unmasked_text_frame(payload: bytes) -> bytes:
    # A server's frames are unmasked: FIN + text opcode, then the length.
    return bytes([0x81, len(payload)]) + payload


async def test_twilio_socket_close_hangs_up() -> None:
    async def agent(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.recv()
        await ws.close()

    async with serve(agent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        call, media, control = make_call(8000)
        await asyncio.wait_for(twilio_agent(f"ws://127.0.0.1:{port}")(call), 5)
        assert control.hung_up.is_set()


async def test_unreachable_agent_hangs_up() -> None:
    call, media, control = make_call(8000)
    await asyncio.wait_for(twilio_agent("ws://127.0.0.1:9/none", connect_timeout=1)(call), 5)
    assert control.hung_up.is_set()


async def test_slow_reader_costs_bounded_memory_and_drops_audio() -> None:
    """An agent that never reads: its socket fills, caller audio beyond the
    backlog is dropped and counted, and the adapter never blocks the feed."""
    async def agent(ws: ServerConnection) -> None:
        await ws.wait_closed()  # never reads

    async with serve(agent, "127.0.0.1", 0, max_queue=1, close_timeout=0.5) as server:
        port = server.sockets[0].getsockname()[1]
        call, media, control = make_call(8000)
        task = asyncio.create_task(twilio_agent(f"ws://127.0.0.1:{port}")(call))
        big = np.full(8000, 1000, dtype=np.int16)  # 1 s per frame: fills buffers quickly
        for _ in range(400):
            media.frames.put_nowait(Frame(big))
        # The feed drains at once although nothing reaches the agent ...
        await wait_until(lambda: media.frames.empty() and
                         call.agent_errors.get("slow_reader", 0) > 0, timeout=10)
        assert not control.hung_up.is_set()
        # ... and when the call ends, the stuck socket is given up on quickly.
        started = asyncio.get_running_loop().time()
        await end_call(call, media)
        await asyncio.wait_for(task, 10)
        assert asyncio.get_running_loop().time() - started < FLUSH_TIMEOUT_S + 1


async def test_raw_pcm_adapter_both_ways() -> None:
    received: list[str | bytes] = []

    async def agent(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(message)
            if isinstance(message, str) and json.loads(message)["event"] == "start":
                await ws.send(b"\x01\x00\x02\x00")
                await ws.send('{"event":"mark","name":"m"}')
                await ws.send('{"event":"clear"}')
                await ws.send('{"event":"dtmf","digits":"12"}')
                await ws.send('{"event":"dtmf","digits":"1x"}')  # bad digit: counted
                await ws.send('{"event":"transfer","target":"sip:desk@pbx.example"}')
                await ws.send(b"\x01")  # odd length: counted

    async with serve(agent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        call, media, control = make_call(16000)
        task = asyncio.create_task(raw_pcm_agent(f"ws://127.0.0.1:{port}")(call))
        await media.frames.put(Frame(np.array([5, -6], dtype=np.int16)))
        await wait_until(lambda: control.transfers and call.agent_errors.get(
            "malformed_message") == 2)
        call.deliver(DTMF("9", 80))
        await wait_until(lambda: len(received) >= 3)
        await end_call(call, media)
        await asyncio.wait_for(task, 5)

    start = json.loads(received[0])
    assert start["sampleRate"] == 16000 and start["encoding"] == "pcm_s16le"
    assert start["callSid"] == SIDS["call_sid"] and start["from"] == "+15550100"
    assert received[1] == b"\x05\x00\xfa\xff"
    assert json.loads(received[2]) == {"event": "dtmf", "digit": "9", "durationMs": 80}
    assert json.loads(received[-1]) == {"event": "stop"}
    assert media.actions == [("write", 2), ("mark", "m"), ("clear", None), ("dtmf", "12")]
    assert control.transfers == ["sip:desk@pbx.example"]


async def test_raw_pcm_stop_hangs_up() -> None:
    async def agent(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send('{"event":"stop"}')
        await ws.wait_closed()

    async with serve(agent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        call, media, control = make_call(24000)
        task = asyncio.create_task(raw_pcm_agent(f"ws://127.0.0.1:{port}")(call))
        await asyncio.wait_for(control.hung_up.wait(), 5)
        await end_call(call, media)
        await asyncio.wait_for(task, 5)


def test_raw_pcm_refuses_other_rates() -> None:
    call, _, _ = make_call(48000)
    with pytest.raises(ValueError, match="sample_rate|Hz"):
        RawPCMStream(call)
