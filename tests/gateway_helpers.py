"""Test doubles for the gateway's agent-side tests: a ``Call`` whose media
side records what the agent asks of it (no media engine involved)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtpcore.gateway.agent import Call

SIDS = {"stream_sid": "MZ" + "1" * 32, "call_sid": "CA" + "2" * 32,
        "account_sid": "AC" + "3" * 32}


@dataclass
class Frame:
    pcm: np.ndarray[Any, Any]


@dataclass
class RecordingMedia:
    """The media side of a call, recording what the adapter asks for."""

    frames: asyncio.Queue[Frame | None] = field(default_factory=asyncio.Queue)
    written: list[np.ndarray[Any, Any]] = field(default_factory=list)
    actions: list[tuple[str, Any]] = field(default_factory=list)
    queued_ms: int = 0

    async def read(self) -> Frame | None:
        frame = await self.frames.get()
        if frame is None:
            self.frames.put_nowait(None)  # closed stays closed
        return frame

    def write_nowait(self, pcm: Any) -> None:
        self.written.append(np.asarray(pcm))
        self.actions.append(("write", len(pcm)))

    def mark(self, name: str) -> None:
        self.actions.append(("mark", name))

    def clear(self) -> None:
        self.actions.append(("clear", None))

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        self.actions.append(("dtmf", digits))


class RecordingControl:
    def __init__(self) -> None:
        self.hung_up = asyncio.Event()
        self.transfers: list[str] = []

    async def hangup(self) -> None:
        self.hung_up.set()

    async def transfer(self, target: str) -> None:
        self.transfers.append(target)


def make_call(rate: int) -> tuple[Call, RecordingMedia, RecordingControl]:
    media, control = RecordingMedia(), RecordingControl()
    call = Call(direction="inbound", from_number="+15550100", to_number="+15550199",
                sample_rate=rate, media=media, control=control, **SIDS)
    return call, media, control


async def end_call(call: Call, media: RecordingMedia) -> None:
    await media.frames.put(None)
    call.close()


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
