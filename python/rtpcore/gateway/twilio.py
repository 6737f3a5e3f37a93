"""Twilio Media Streams over WebSocket, the gateway acting as Twilio.

The gateway connects to the agent's WebSocket server (as Twilio does for
``<Connect><Stream url="wss://...">``) and speaks the bidirectional Media
Streams protocol, so agents written for Twilio (Pipecat's
``TwilioFrameSerializer``, the "Twilio + OpenAI" samples) run unchanged:

to the agent (text frames, JSON)::

    {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    {"event": "start", "sequenceNumber": "1", "start": {"accountSid": "AC...",
     "streamSid": "MZ...", "callSid": "CA...", "tracks": ["inbound"],
     "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
     "customParameters": {"from_number": "...", "to_number": "..."}},
     "streamSid": "MZ..."}          (compact JSON on the wire, keys in this order)
    {"event": "media", "sequenceNumber": "2", "media": {"track": "inbound", "chunk": "1",
     "timestamp": "0", "payload": "<base64 μ-law, 20 ms>"}, "streamSid": "MZ..."}
    {"event": "dtmf", "sequenceNumber": "9", "streamSid": "MZ...",
     "dtmf": {"track": "inbound_track", "digit": "5"}}
    {"event": "mark", "sequenceNumber": "12", "streamSid": "MZ...", "mark": {"name": "x"}}
    {"event": "stop", "sequenceNumber": "99", "streamSid": "MZ...",
     "stop": {"accountSid": "AC...", "callSid": "CA..."}}

from the agent: ``media`` (base64 μ-law 8 kHz, any length), ``mark`` (echoed,
in order, once the audio sent before it has played or was cleared) and
``clear`` (drop the queued audio). Closing the socket hangs up the call.

``TwilioStream`` builds and parses the messages (no I/O); ``twilio_agent(url)``
is the agent that runs a call over a real socket with ``websockets``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from rtpcore.g711 import ulaw_encode
from rtpcore.gateway import _websocket
from rtpcore.gateway._websocket import Outbox, ProtocolError, json_event
from rtpcore.gateway.agent import DTMF, Call, MarkPlayed
from rtpcore.media import PayloadFrame

__all__ = [
    "AgentClear",
    "AgentMark",
    "AgentMedia",
    "ProtocolError",
    "TwilioStream",
    "twilio_agent",
]

SAMPLE_RATE = 8000
#: Twilio sends the caller's audio in 20 ms chunks of 160 μ-law bytes.
CHUNK_SAMPLES = 160


#: The media message agents send, in exactly the shapes Pipecat's
#: ``TwilioFrameSerializer`` (``json.dumps``' spacing) and compact encoders
#: write it: whatever matches is valid JSON holding just these keys, with a
#: payload that JSON decoding would leave as it is (only base64 characters),
#: so reading the payload straight out of it is what ``json.loads`` would
#: give. Every other message (other spacing, keys, order, escapes) is parsed
#: as JSON.
_MEDIA_MESSAGE = re.compile(
    r'\{"event": ?"media", ?"streamSid": ?"[^"\\\x00-\x1f]*", ?'
    r'"media": ?\{"payload": ?"([A-Za-z0-9+/]*={0,2})"\}\}')


def _dumps(message: dict[str, object]) -> str:
    # Compact, as Twilio sends them (and key order as in Twilio's examples).
    return json.dumps(message, separators=(",", ":"))


@dataclass(frozen=True)
class AgentMedia:
    """Audio to play: μ-law bytes at 8 kHz."""

    payload: bytes


@dataclass(frozen=True)
class AgentMark:
    name: str


@dataclass(frozen=True)
class AgentClear:
    pass


AgentMessage = AgentMedia | AgentMark | AgentClear


class TwilioStream:
    """The messages of one stream, numbered as Twilio numbers them: every
    message after ``connected`` carries ``sequenceNumber`` (a string counting
    from "1"); media chunks count from "1" and carry their timestamp in ms
    since the stream started."""

    def __init__(self, stream_sid: str, call_sid: str, account_sid: str,
                 custom_parameters: dict[str, str] | None = None) -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.custom_parameters = dict(custom_parameters or {})
        self._sequence = 0
        self._chunk = 0
        self._quoted_sid = json.dumps(stream_sid)

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    @staticmethod
    def connected() -> str:
        return _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self) -> str:
        return _dumps({
            "event": "start",
            "sequenceNumber": self._next(),
            "start": {
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": SAMPLE_RATE,
                                "channels": 1},
                "customParameters": self.custom_parameters,
            },
            "streamSid": self.stream_sid,
        })

    def media(self, ulaw: bytes, timestamp_ms: int) -> str:
        """A chunk of caller audio; ``timestamp_ms`` since the stream started."""
        self._chunk += 1
        # The message of every 20 ms, formatted directly rather than through
        # json.dumps: what goes in is digits and base64, which JSON never
        # escapes, and the stream SID, quoted by json.dumps once. The tests
        # compare it with json.dumps' output.
        return (f'{{"event":"media","sequenceNumber":"{self._next()}","media":'
                f'{{"track":"inbound","chunk":"{self._chunk}","timestamp":"{timestamp_ms}",'
                f'"payload":"{binascii.b2a_base64(ulaw, newline=False).decode("ascii")}"}},'
                f'"streamSid":{self._quoted_sid}}}')

    def dtmf(self, digit: str) -> str:
        return _dumps({
            "event": "dtmf",
            "streamSid": self.stream_sid,
            "sequenceNumber": self._next(),
            "dtmf": {"track": "inbound_track", "digit": digit},
        })

    def mark(self, name: str) -> str:
        return _dumps({
            "event": "mark",
            "sequenceNumber": self._next(),
            "streamSid": self.stream_sid,
            "mark": {"name": name},
        })

    def stop(self) -> str:
        return _dumps({
            "event": "stop",
            "sequenceNumber": self._next(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
        })

    @staticmethod
    def parse(message: str | bytes) -> AgentMessage | None:
        """One message from the agent; None for events Twilio ignores too
        (unknown ``event`` names). Raises ``ProtocolError`` for a message that
        is not JSON or lacks what its event needs."""
        if isinstance(message, bytes):
            raise ProtocolError("binary frame: Media Streams messages are JSON text")
        usual = _MEDIA_MESSAGE.fullmatch(message)
        if usual is not None:  # the message of every 20 ms, without a JSON parse
            try:
                # What b64decode(validate=True) does (strict mode: no
                # leading or excess padding, only base64 characters).
                return AgentMedia(binascii.a2b_base64(usual[1], strict_mode=True))
            except binascii.Error:
                raise ProtocolError("media: media.payload is not base64") from None
        event, data = json_event(message)
        if event == "media":
            media = data.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                raise ProtocolError("media: no media.payload string")
            try:
                return AgentMedia(base64.b64decode(payload, validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolError("media: media.payload is not base64") from None
        if event == "mark":
            mark = data.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                raise ProtocolError("mark: no mark.name string")
            return AgentMark(name)
        if event == "clear":
            return AgentClear()
        return None


def twilio_agent(url: str, *, connect_timeout: float = 5.0,
                 extra_parameters: dict[str, str] | None = None
                 ) -> Callable[[Call], Awaitable[None]]:
    """The agent that bridges a call to the Media Streams server at ``url``.

    ``customParameters`` carries ``from_number``, ``to_number`` and
    ``extra_parameters``. The call's ``sample_rate`` must be 8000."""

    async def run(call: Call) -> None:
        await _run(call, url, connect_timeout, extra_parameters or {})

    run.__qualname__ = f"twilio_agent({url!r})"
    return run


async def _run(call: Call, url: str, connect_timeout: float,
               extra_parameters: dict[str, str]) -> None:
    if call.sample_rate != SAMPLE_RATE:
        raise ValueError(f"call: Media Streams needs 8000 Hz audio, the call has "
                         f"{call.sample_rate}")
    parameters = {"from_number": call.from_number, "to_number": call.to_number,
                  **call.custom_parameters, **extra_parameters}
    stream = TwilioStream(call.stream_sid, call.call_sid, call.account_sid, parameters)

    def uplink(outbox: Outbox) -> list[Coroutine[Any, Any, None]]:
        return [_send_audio(call, stream, outbox), _send_events(call, stream, outbox)]

    def on_message(message: str | bytes) -> None:
        try:
            parsed = TwilioStream.parse(message)
        except ProtocolError as exc:
            call.note_agent_error("malformed_message", str(exc))
            return
        if isinstance(parsed, AgentMedia):
            call.play_ulaw(parsed.payload)
        elif isinstance(parsed, AgentMark):
            call.mark(parsed.name)
        elif isinstance(parsed, AgentClear):
            call.clear()

    await _websocket.run(call, url, connect_timeout, hello=[stream.connected(), stream.start()],
                         uplink=uplink, on_message=on_message, goodbye=stream.stop)


async def _send_audio(call: Call, stream: TwilioStream, outbox: Outbox) -> None:
    """Caller audio in 20 ms chunks whatever the call's ptime, as Twilio sends it."""
    position = 0  # samples of caller audio sent so far: dropped chunks still count
    pending = b""

    def on_frame(frame: Any) -> None:
        nonlocal position, pending
        # μ-law as the engine passed it through (PCMU calls), or encoded here.
        ulaw = frame.payload if isinstance(frame, PayloadFrame) else ulaw_encode(frame.pcm)
        if not pending and len(ulaw) == CHUNK_SAMPLES:  # a 20 ms frame: one chunk as it is
            outbox.put_media(stream.media, ulaw, position * 1000 // SAMPLE_RATE)
            position += CHUNK_SAMPLES
            return
        pending = pending + ulaw if pending else ulaw
        whole = len(pending) - len(pending) % CHUNK_SAMPLES
        for start in range(0, whole, CHUNK_SAMPLES):
            outbox.put_media(stream.media, pending[start:start + CHUNK_SAMPLES],
                             position * 1000 // SAMPLE_RATE)
            position += CHUNK_SAMPLES
        pending = pending[whole:]

    await call.stream_audio(on_frame)


async def _send_events(call: Call, stream: TwilioStream, outbox: Outbox) -> None:
    async for event in call.events:
        if isinstance(event, DTMF):
            outbox.put(stream.dtmf(event.digit))
        elif isinstance(event, MarkPlayed):
            outbox.put(stream.mark(event.name))
