"""The embedded default agent on its own: the energy VAD, the bundled prompts,
and the agent's behaviour (greeting, echo after a pause, DTMF readback,
goodbye and hang-up on #) against a recording media side. The same agent
over a real SIP call is in tests/test_gateway.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from gateway_helpers import Frame, end_call, make_call, wait_until

from rtpcore.gateway.agent import DTMF, MarkPlayed
from rtpcore.gateway.default_agent import EnergyVAD, default_agent, prompt

RATE = 16000
FRAME = RATE // 50  # 20 ms


def tone(ms: int, dbfs: float = -20.0, rate: int = RATE) -> np.ndarray:
    n = rate * ms // 1000
    amplitude = 32767 * 10 ** (dbfs / 20) * np.sqrt(2)  # RMS at dbfs
    return np.round(amplitude * np.sin(2 * np.pi * 300 * np.arange(n) / rate)).astype(np.int16)


def silence(ms: int, rate: int = RATE) -> np.ndarray:
    return np.zeros(rate * ms // 1000, dtype=np.int16)


def frames(pcm: np.ndarray, size: int = FRAME) -> list[np.ndarray]:
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


def run_vad(vad: EnergyVAD, pcm: np.ndarray) -> list[np.ndarray]:
    return [u for f in frames(pcm) if (u := vad.push(f)) is not None]


def test_vad_cuts_one_utterance_after_the_pause() -> None:
    vad = EnergyVAD(RATE)
    speech = tone(500)
    out = run_vad(vad, np.concatenate([silence(1000), speech, silence(1000)]))
    assert len(out) == 1
    utterance = out[0]
    # pre-roll (100 ms) + speech + the 700 ms of silence that ended it
    assert len(utterance) == RATE * (100 + 500 + 700) // 1000
    start = RATE * 100 // 1000
    np.testing.assert_array_equal(utterance[start:start + len(speech)], speech)


def test_vad_ignores_clicks_and_quiet_noise() -> None:
    vad = EnergyVAD(RATE)
    rng = np.random.default_rng(1)
    noise = np.round(rng.normal(0, 32767 * 10 ** (-55 / 20), RATE * 2)).astype(np.int16)
    assert run_vad(vad, noise) == []
    click = np.concatenate([silence(500), tone(100), silence(1000)])  # too short for speech
    assert run_vad(vad, click) == []


def test_vad_separates_utterances_and_cuts_long_ones() -> None:
    vad = EnergyVAD(RATE)
    two = np.concatenate([tone(400), silence(800), tone(300), silence(800)])
    assert len(run_vad(vad, two)) == 2
    vad = EnergyVAD(RATE, max_ms=2000)
    long = run_vad(vad, tone(5000))
    assert len(long) == 2 and all(len(u) <= RATE * 2 + FRAME for u in long)


def test_prompts_are_bundled_and_resampled() -> None:
    greeting = prompt("greeting", 16000)
    assert 2.0 < len(greeting) / 16000 < 8.0
    assert np.abs(greeting.astype(np.int32)).max() > 10000  # speech, not silence
    narrow = prompt("greeting", 8000)
    assert abs(len(narrow) - len(greeting) // 2) <= 1
    assert prompt("greeting", 8000) is narrow  # decoded once per rate
    assert not narrow.flags.writeable
    for digit in "0123456789ABCD":
        assert len(prompt(f"digit-{digit}", 24000)) > 0
    assert len(prompt("digit-star", 8000)) and len(prompt("digit-pound", 8000))
    with pytest.raises(FileNotFoundError):
        prompt("nope", 8000)


async def test_default_agent_greets_echoes_reads_back_and_hangs_up() -> None:
    call, media, control = make_call(RATE)
    task = asyncio.create_task(default_agent(call))
    await wait_until(lambda: media.written)
    np.testing.assert_array_equal(media.written[0], prompt("greeting", RATE))

    # The caller says something, then pauses: it comes back.
    speech = tone(400)
    for f in frames(np.concatenate([speech, silence(800)])):
        await media.frames.put(Frame(f))
    await wait_until(lambda: len(media.written) == 2)
    echo = media.written[1]  # no pre-roll: the speech came first
    assert len(echo) == RATE * (400 + 700) // 1000
    np.testing.assert_array_equal(echo[:len(speech)], speech)

    # A key: read back as its name.
    call.deliver(DTMF("7", 100))
    await wait_until(lambda: len(media.written) == 3)
    np.testing.assert_array_equal(media.written[2], prompt("digit-7", RATE))
    call.deliver(DTMF("*", 100, "info"))
    await wait_until(lambda: len(media.written) == 4)
    np.testing.assert_array_equal(media.written[3], prompt("digit-star", RATE))

    # '#': whatever is playing stops, goodbye, hang up once it has played.
    call.deliver(DTMF("#", 100))
    await wait_until(lambda: ("mark", "goodbye") in media.actions)
    assert media.actions[-3:] == [("clear", None), ("write", len(prompt("goodbye", RATE))),
                                  ("mark", "goodbye")]
    await asyncio.sleep(0.05)
    assert not control.hung_up.is_set()  # not before the goodbye has played
    call.deliver(MarkPlayed("goodbye"))
    await asyncio.wait_for(control.hung_up.wait(), 2)
    await asyncio.wait_for(task, 2)
    await end_call(call, media)


async def test_default_agent_ends_with_the_call() -> None:
    call, media, control = make_call(8000)
    task = asyncio.create_task(default_agent(call))
    await wait_until(lambda: media.written)
    await end_call(call, media)
    await asyncio.wait_for(task, 2)
    assert not control.hung_up.is_set()


async def test_event_queues_serve_several_readers_and_stay_bounded() -> None:
    call, media, control = make_call(8000)
    got: list[list[str]] = [[], []]

    async def read(into: list[str]) -> None:
        async for event in call.events:
            into.append(event.digit)  # type: ignore[union-attr]

    readers = [asyncio.create_task(read(into)) for into in got]
    await asyncio.sleep(0)
    for digit in "123456":
        call.deliver(DTMF(digit, 100))
        await asyncio.sleep(0.01)
    await wait_until(lambda: len(got[0]) + len(got[1]) == 6)
    assert sorted(got[0] + got[1]) == list("123456")  # each event to one reader
    for task in readers:
        task.cancel()
    for i in range(300):  # nobody reads: the oldest go, counted
        call.deliver(DTMF(str(i % 10), 100))
    assert call.agent_errors == {"events_dropped": 300 - 256, "dtmf_dropped": 306 - 256}
    await end_call(call, media)
