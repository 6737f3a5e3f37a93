"""The raw PCM WebSocket protocol: wideband PCM, no base64.

For agents (speech models) that want 16 or 24 kHz linear PCM rather than
Twilio's 8 kHz μ-law. The gateway connects to the agent's server; audio
travels in **binary** frames of little-endian int16 mono samples at the
rate announced in ``start`` (8000, 16000 or 24000 Hz); control travels in
**text** frames of JSON.

To the agent::

    {"event": "start", "callSid": "CA...", "streamSid": "MZ...", "accountSid": "AC...",
     "from": "+15550100", "to": "+15550199", "direction": "inbound",
     "encoding": "pcm_s16le", "sampleRate": 16000, "channels": 1,
     "customParameters": {...}}
    <binary: one frame of caller audio per ptime>
    {"event": "dtmf", "digit": "5", "durationMs": 120}
    {"event": "mark", "name": "x", "cleared": false}
    {"event": "transfer", "target": "sip:...", "statusCode": 200}
    {"event": "stop"}

From the agent::

    <binary: audio to play, any whole number of samples>
    {"event": "mark", "name": "x"}        echoed once the audio before it played
    {"event": "clear"}                    drop the queued audio (barge-in)
    {"event": "dtmf", "digits": "12#"}    send digits to the caller (RFC 4733)
    {"event": "transfer", "target": "sip:desk@pbx.example"}   blind transfer (REFER)
    {"event": "stop"}                     hang up (closing the socket does too)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtpcore.gateway import _websocket
from rtpcore.gateway._websocket import Outbox, ProtocolError, json_event
from rtpcore.gateway.agent import DTMF, Call, MarkPlayed, TransferResult

__all__ = ["RawPCMStream", "raw_pcm_agent", "ProtocolError", "Control", "SAMPLE_RATES"]

SAMPLE_RATES = (8000, 16000, 24000)


@dataclass(frozen=True)
class Control:
    """A control message from the agent: ``event`` is mark, clear, dtmf,
    transfer or stop; ``value`` the mark name, digits or target."""

    event: str
    value: str = ""


class RawPCMStream:
    """Builds and parses the protocol's messages (no I/O)."""

    def __init__(self, call: Call) -> None:
        if call.sample_rate not in SAMPLE_RATES:
            raise ValueError(f"call: raw PCM runs at 8000, 16000 or 24000 Hz, not "
                             f"{call.sample_rate}")
        self.call = call

    def start(self) -> str:
        call = self.call
        return json.dumps({
            "event": "start", "callSid": call.call_sid, "streamSid": call.stream_sid,
            "accountSid": call.account_sid, "from": call.from_number, "to": call.to_number,
            "direction": call.direction, "encoding": "pcm_s16le",
            "sampleRate": call.sample_rate, "channels": 1,
            "customParameters": call.custom_parameters,
        })

    @staticmethod
    def audio(pcm: np.ndarray[Any, Any]) -> bytes:
        return pcm.astype("<i2", copy=False).tobytes()

    @staticmethod
    def event(event: DTMF | MarkPlayed | TransferResult) -> str:
        if isinstance(event, DTMF):
            return json.dumps({"event": "dtmf", "digit": event.digit,
                               "durationMs": event.duration_ms})
        if isinstance(event, MarkPlayed):
            return json.dumps({"event": "mark", "name": event.name, "cleared": event.cleared})
        return json.dumps({"event": "transfer", "target": event.target,
                           "statusCode": event.status_code})

    @staticmethod
    def stop() -> str:
        return json.dumps({"event": "stop"})

    @staticmethod
    def parse(message: str | bytes) -> np.ndarray[Any, Any] | Control | None:
        """Audio (int16 samples), a ``Control``, or None for an unknown event.
        Raises ``ProtocolError`` for a malformed message."""
        if isinstance(message, bytes):
            if len(message) % 2:
                raise ProtocolError(f"audio: odd length {len(message)}, not int16 samples")
            return np.frombuffer(message, dtype="<i2").astype(np.int16)
        event, data = json_event(message)
        field = {"mark": "name", "dtmf": "digits", "transfer": "target"}.get(event)
        if field is not None:
            value = data.get(field)
            if not isinstance(value, str) or not value:
                raise ProtocolError(f"{event}: no {field!r} string")
            return Control(event, value)
        if event in ("clear", "stop"):
            return Control(event)
        return None


def raw_pcm_agent(url: str, *, connect_timeout: float = 5.0
                  ) -> Callable[[Call], Awaitable[None]]:
    """The agent that bridges a call to the raw PCM server at ``url``."""

    async def run(call: Call) -> None:
        await _run(call, url, connect_timeout)

    run.__qualname__ = f"raw_pcm_agent({url!r})"
    return run


async def _run(call: Call, url: str, connect_timeout: float) -> None:
    stream = RawPCMStream(call)
    pending: set[asyncio.Task[None]] = set()

    def uplink(outbox: Outbox) -> list[Coroutine[Any, Any, None]]:
        return [_send_audio(call, outbox), _send_events(call, outbox)]

    def spawn(coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        pending.add(task)
        task.add_done_callback(pending.discard)

    def on_message(message: str | bytes) -> None:
        try:
            parsed = RawPCMStream.parse(message)
        except ProtocolError as exc:
            call.note_agent_error("malformed_message", str(exc))
            return
        if isinstance(parsed, np.ndarray):
            call.play(parsed)
        elif isinstance(parsed, Control):
            try:
                _control(call, parsed, spawn)
            except ValueError as exc:
                call.note_agent_error("malformed_message", str(exc))

    await _websocket.run(call, url, connect_timeout, hello=[stream.start()], uplink=uplink,
                         on_message=on_message, goodbye=stream.stop)
    for task in list(pending):
        await task


def _control(call: Call, message: Control,
             spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    if message.event == "mark":
        call.mark(message.value)
    elif message.event == "clear":
        call.clear()
    elif message.event == "dtmf":
        call.send_dtmf(message.value)
    elif message.event == "transfer":
        spawn(_transfer(call, message.value))
    elif message.event == "stop":
        spawn(call.hangup())


async def _transfer(call: Call, target: str) -> None:
    try:
        await call.transfer(target)
    except ValueError as exc:  # not a SIP URI, or the call is not connected
        call.note_agent_error("bad_transfer", str(exc))


async def _send_audio(call: Call, outbox: Outbox) -> None:
    await call.stream_audio(
        lambda frame: outbox.put_media(RawPCMStream.audio, frame.pcm))


async def _send_events(call: Call, outbox: Outbox) -> None:
    async for event in call.events:
        outbox.put(RawPCMStream.event(event))
