"""The CI form of bench/gateway_load.py: a few calls end to end through a
gateway process, with the stand-in Twilio echo agent, per round; and the
per-message work on the agent's WebSocket, rtpcore's fast paths against the
``websockets`` library's own framing and ``json`` (what the gateway used
before), each checked to produce / read the same message.

Each round places 2 calls through the gateway, holds them 1 s with a tone
going out and the agent's echo coming back, and hangs up; the figures of
the last round (setup, audible gaps, gateway CPU and memory per call) are
recorded in ``extra_info``, and ``agrees`` says the round met the load
tool's criteria (all calls up, gap p90 < 50 ms, setup p95 < 200 ms). The
full ramp is ``python bench/gateway_load.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from rtpcore.gateway._websocket import MAX_MESSAGE_SIZE, AgentConnection, client_frame
from rtpcore.gateway.twilio import AgentMedia, TwilioStream

pytest.importorskip("rtpcore.media", reason="the media engine (engine-driver) has not landed")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_load  # noqa: E402

THINK_S = 0.05


@pytest.fixture(scope="module")
def loaded_rig() -> Iterator[tuple[asyncio.AbstractEventLoop, Any]]:
    loop = asyncio.new_event_loop()
    context = gateway_load.rig(THINK_S, agent_procs=1, workers=1)
    rig = loop.run_until_complete(context.__aenter__())
    try:
        yield loop, rig
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


@pytest.mark.benchmark(group="gateway-calls")
@pytest.mark.parametrize("implementation", ["rtpcore"])
def test_calls_through_the_gateway(benchmark: Any, implementation: str,
                                   loaded_rig: tuple[asyncio.AbstractEventLoop, Any]) -> None:
    loop, rig = loaded_rig
    results: list[gateway_load.StepResult] = []

    def two_calls() -> None:
        results.append(loop.run_until_complete(
            gateway_load.run_step(rig, calls=2, hold=1.0, cps=20, think=THINK_S)))

    benchmark.pedantic(two_calls, rounds=3, iterations=1)
    last = results[-1]
    benchmark.extra_info.update(asdict(last))
    benchmark.extra_info["agrees"] = all(r.passed for r in results)
    assert last.connected == 2


# --- one media message each way on the agent's WebSocket ------------------------------------

ULAW = bytes(range(160))
STREAM_SID = "MZ" + "0" * 32


def _read_masked(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=True, max_size=None)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


@pytest.mark.benchmark(group="agent-media-out")
@pytest.mark.parametrize("implementation", ["rtpcore", "websockets"])
def test_media_message_out(benchmark: Any, implementation: str) -> None:
    """Caller audio to the agent: the media message, framed and masked."""
    stream = TwilioStream(STREAM_SID, "CA1", "AC1")
    if implementation == "rtpcore":
        def send() -> bytes:
            return client_frame(Opcode.TEXT, stream.media(ULAW, 0).encode())
    else:
        ws = ClientProtocol(parse_uri("ws://agent.test/"), state=OPEN)

        def send() -> bytes:
            ws.send_text(json.dumps({"event": "media", "sequenceNumber": "1", "media": {
                "track": "inbound", "chunk": "1", "timestamp": "0",
                "payload": base64.b64encode(ULAW).decode()}, "streamSid": STREAM_SID},
                separators=(",", ":")).encode())
            return b"".join(ws.data_to_send())

    frame = _read_masked(benchmark(send))
    message = json.loads(bytes(frame.data))
    benchmark.extra_info["agrees"] = (frame.opcode is Opcode.TEXT and frame.fin
                                      and message["event"] == "media"
                                      and base64.b64decode(message["media"]["payload"]) == ULAW
                                      and message["streamSid"] == STREAM_SID)
    assert benchmark.extra_info["agrees"]


class _NoTransport(asyncio.Transport):
    def write(self, data: Any) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


@pytest.mark.benchmark(group="agent-media-in")
@pytest.mark.parametrize("implementation", ["rtpcore", "websockets"])
def test_media_message_in(benchmark: Any, implementation: str) -> None:
    """Agent audio to the caller: a media message's frame, read and parsed."""
    text = json.dumps({"event": "media", "streamSid": STREAM_SID,
                       "media": {"payload": base64.b64encode(ULAW).decode()}}).encode()
    data = bytes((0x81, 126)) + len(text).to_bytes(2, "big") + text  # a server's frame
    got: list[Any] = []
    uri = parse_uri("ws://agent.test/")

    async def reader() -> Any:
        if implementation == "rtpcore":
            connection = AgentConnection(ClientProtocol(uri, state=OPEN,
                                                        max_size=MAX_MESSAGE_SIZE),
                                         lambda m: got.append(TwilioStream.parse(m)))
            connection.connection_made(_NoTransport())
            return lambda: connection.data_received(data)
        ws = ClientProtocol(uri, state=OPEN, max_size=MAX_MESSAGE_SIZE)

        def receive() -> None:
            ws.receive_data(data)
            for frame in ws.events_received():
                assert isinstance(frame, Frame)  # invariant: open, so frames only
                message = json.loads(str(frame.data, "utf-8"))
                got.append(AgentMedia(base64.b64decode(message["media"]["payload"],
                                                       validate=True)))
        return receive

    loop = asyncio.new_event_loop()
    try:
        benchmark(loop.run_until_complete(reader()))
    finally:
        loop.close()
    benchmark.extra_info["agrees"] = bool(got) and all(m == AgentMedia(ULAW) for m in got)
    assert benchmark.extra_info["agrees"]
