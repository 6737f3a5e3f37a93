"""The embedded default agent: what the gateway does when no agent is configured.

It answers with a greeting, repeats back what the caller says after each
pause (an energy voice-activity detector cuts the utterances), reads back
each key the caller presses as a spoken digit, and on ``#`` says goodbye
and hangs up. Enough to hear the whole path work — audio both ways, DTMF,
hang-up — with a softphone and no agent of your own.

The voice prompts are bundled WAV files (``rtpcore/gateway/data``, made
with espeak-ng by ``scripts/make-prompts``), resampled to the call's rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import wave
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import numpy.typing as npt

from rtpcore.gateway.agent import DTMF, Call, MarkPlayed
from rtpcore.resample import Resampler

__all__ = ["EnergyVAD", "default_agent", "prompt"]

PROMPT_RATE = 16000
_DIGIT_NAMES = {"*": "star", "#": "pound"}
#: How long to wait for the goodbye to play out before hanging up anyway.
GOODBYE_TIMEOUT_S = 5.0
#: After the goodbye has left, before the BYE: the caller's jitter buffer
#: still holds its last words, and a BYE would cut them off.
GOODBYE_TAIL_S = 0.3


@functools.lru_cache(maxsize=64)
def prompt(name: str, sample_rate: int) -> npt.NDArray[np.int16]:
    """The bundled prompt ``name`` (greeting, goodbye, digit-0 ... digit-pound)
    as int16 PCM at ``sample_rate``."""
    data = resources.files("rtpcore.gateway").joinpath("data", f"{name}.wav")
    with data.open("rb") as f, wave.open(f) as w:
        if w.getframerate() != PROMPT_RATE or w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"prompt {name}: not 16-bit mono {PROMPT_RATE} Hz")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    if sample_rate != PROMPT_RATE:
        resampler = Resampler(PROMPT_RATE, sample_rate)
        pcm = np.concatenate([resampler.process(pcm.data),
                              resampler.flush()]).astype(np.int16, copy=False)
    pcm.setflags(write=False)
    return pcm


@dataclass
class EnergyVAD:
    """Cuts speech into utterances by frame energy.

    A frame is speech when its RMS is above ``threshold_dbfs``. An utterance
    starts after ``start_ms`` of speech (keeping ``preroll_ms`` before it),
    and ends after ``end_silence_ms`` of non-speech, or at ``max_ms``.
    Utterances with less than ``min_speech_ms`` of speech are discarded.
    ``push(frame)`` returns the finished utterance, or None.
    """

    sample_rate: int
    threshold_dbfs: float = -40.0
    start_ms: int = 60
    end_silence_ms: int = 700
    min_speech_ms: int = 200
    preroll_ms: int = 100
    max_ms: int = 10000
    _frames: list[npt.NDArray[np.int16]] = field(default_factory=list)
    _speech_ms: float = 0.0
    _run_ms: float = 0.0  # consecutive speech (before start) or silence (after)
    _active: bool = False

    def push(self, pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16] | None:
        ms = len(pcm) * 1000 / self.sample_rate
        if len(pcm) == 0:
            return None
        rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
        speech = rms > 32768 * 10 ** (self.threshold_dbfs / 20)
        self._frames.append(pcm)
        if not self._active:
            self._run_ms = self._run_ms + ms if speech else 0.0
            # Before speech starts, keep only the pre-roll and the speech so far.
            keep_ms = self.preroll_ms + self._run_ms
            while (sum(len(f) for f in self._frames) - len(self._frames[0])) * 1000 \
                    / self.sample_rate >= keep_ms:
                self._frames.pop(0)
            if self._run_ms >= self.start_ms:
                self._active = True
                self._speech_ms = self._run_ms
                self._run_ms = 0.0
            return None
        if speech:
            self._speech_ms += ms
            self._run_ms = 0.0
        else:
            self._run_ms += ms
        length_ms = sum(len(f) for f in self._frames) * 1000 / self.sample_rate
        if self._run_ms >= self.end_silence_ms or length_ms >= self.max_ms:
            utterance = np.concatenate(self._frames)
            enough = self._speech_ms >= self.min_speech_ms
            self._frames, self._active, self._run_ms, self._speech_ms = [], False, 0.0, 0.0
            return utterance if enough else None
        return None


async def default_agent(call: Call) -> None:
    """Greeting, echo after each pause, DTMF readback, goodbye and hang-up on ``#``."""
    rate = call.sample_rate
    call.play(prompt("greeting", rate))
    listening = asyncio.create_task(_echo(call))
    try:
        async for event in call.events:
            if not isinstance(event, DTMF):
                continue
            if event.digit == "#":
                call.clear()
                call.play(prompt("goodbye", rate))
                call.mark("goodbye")
                await _wait_for_mark(call, "goodbye")
                await asyncio.sleep(GOODBYE_TAIL_S)
                await call.hangup()
                return
            name = _DIGIT_NAMES.get(event.digit, event.digit)
            call.play(prompt(f"digit-{name}", rate))
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


async def _echo(call: Call) -> None:
    vad = EnergyVAD(call.sample_rate)
    async for frame in call.audio:
        utterance = vad.push(frame.pcm)
        if utterance is not None:
            call.play(utterance)


async def _wait_for_mark(call: Call, name: str) -> None:
    async def wait() -> None:
        async for event in call.events:
            if isinstance(event, MarkPlayed) and event.name == name:
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wait(), GOODBYE_TIMEOUT_S)
