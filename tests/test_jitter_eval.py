"""The evaluation harness's fixed-delay baseline (bench/jitter_eval.py) and
its hindsight bounds (bench/jitter_hindsight.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from rtpcore import g711

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import jitter_eval
import jitter_hindsight
from jitter_hindsight import ChunkFigures


def synthetic_trace(
    extra_ms: dict[int, float], lost: set[int], count: int = 1000
) -> jitter_eval.Trace:
    """`count` 20 ms packets with a 10 ms transit; packet k comes
    `extra_ms[k]` later, or never when k is in `lost`."""
    packets = []
    for k in range(count):
        send = 20.0 * k
        arrival = None if k in lost else send + 10.0 + extra_ms.get(k, 0.0)
        packets.append(jitter_eval.Packet(k, 160 * k, 160 * k, send, arrival, 1, 0, 0, 160 * k))
    reference = np.zeros(160 * count, dtype=np.int16)
    return jitter_eval.Trace("synthetic", packets, reference, {0: 10.0}, count, {})


def test_the_fixed_buffer_loses_what_comes_after_its_frame() -> None:
    # D = 20 ms puts every due time on the frame grid: 19.9 ms extra still
    # plays, 20.1 ms is late; a packet lost in the network is not late.
    trace = synthetic_trace({5: 19.9, 6: 20.1, 7: 50.0}, lost={8})
    schedule, late = jitter_eval.fixed_schedule(trace, 20.0)
    assert [p.seq for p in late] == [6, 7]
    assert len(schedule) == 1000 - 3
    due = {p.seq: t for t, p in schedule}
    assert due[5] == pytest.approx(20.0 * 5 + 30.0)


def test_late_loss_per_window_and_cumulative() -> None:
    # Two late packets in the first 10 s, one in the second; one lost.
    trace = synthetic_trace({5: 50.0, 6: 50.0, 700: 50.0}, lost={9})
    _, late = jitter_eval.fixed_schedule(trace, 20.0)
    windows = jitter_eval.late_by_window(trace, late)
    assert [w["start_s"] for w in windows] == [0.0, 10.0]
    assert windows[0]["late_pct"] == pytest.approx(100 * 2 / 500)
    assert windows[0]["cumulative_pct"] == pytest.approx(100 * 2 / 500)
    assert windows[1]["late_pct"] == pytest.approx(100 * 1 / 500)
    assert windows[1]["cumulative_pct"] == pytest.approx(100 * 3 / 1000)


def test_the_budget_receiver_plays_the_lowest_step_within_budget_so_far() -> None:
    # Odd packets come 15 ms late (so 0 ms is never within budget once one
    # is known), packets 6 and 8 50 ms late. With D = 20 ms: until 200
    # packets are known, two late ones exceed 1% at 20 and 40 ms (the frame
    # grid), so the receiver plays at 60 ms; from then on 20 ms is within
    # budget.
    extra = {k: 15.0 for k in range(1, 1000, 2)} | {6: 50.0, 8: 50.0}
    trace = synthetic_trace(extra, lost={900})
    packets, delay, step = jitter_eval.budget_receiver(trace, 20.0, horizon_ms=400.0)
    assert [p.seq for p in packets] == list(range(1000))
    sent = np.array([p.send_ms for p in packets])
    known = np.searchsorted(sent, sent - 400.0, side="right")
    # Nothing late known yet: the lowest step (0 ms, one frame under D).
    assert (delay[known <= 1] == 0.0).all() and (step[known <= 1] == -1).all()
    assert (delay[(known >= 2) & (known <= 6)] == 20.0).all()
    assert (delay[(known >= 9) & (known < 200)] == 60.0).all()
    assert (step[(known >= 9) & (known < 200)] == 2).all()
    assert (delay[known >= 200] == 20.0).all() and (step[known >= 200] == 0).all()


def figures(pesq: list[float], delay_ms: float, late: list[int] | None = None) -> ChunkFigures:
    """Chunks of 10 frames each at one delay."""
    chunks = range(len(pesq))
    return ChunkFigures(
        dict(zip(chunks, pesq)),
        {c: 10 * delay_ms for c in chunks},
        {c: 10 for c in chunks},
        dict(zip(chunks, late or [0] * len(pesq))),
    )


def test_per_chunk_bound_spends_the_delay_where_it_buys_most() -> None:
    # Two chunks; the higher step gains 0.5 in the first, 0.1 in the
    # second, and the delay allows one chunk up.
    low, high = figures([4.0, 4.4], 100.0), figures([4.5, 4.5], 140.0)
    best = jitter_hindsight.best_assignment([{0: low, 1: high}] * 2, 120.0, max_late=0)
    assert best is not None and best.steps == (1, 0)
    assert best.pesq == pytest.approx(4.45) and best.mean_delay_ms == pytest.approx(120.0)
    # Nothing meets a limit under both steps' delay.
    assert jitter_hindsight.best_assignment([{0: low, 1: high}] * 2, 99.0, max_late=0) is None


def test_time_sharing_bound_is_the_best_share_within_both_limits() -> None:
    # Chunk 0 played at 100 ms leaves 200 ms x frames of the 120 ms
    # limit, which buys half of the later 20 frames at 140 ms instead of
    # 120: PESQ (4.0 + 2 * (0.5 * 4.1 + 0.5 * 4.5)) / 3.
    first = {"start": figures([4.0, 0, 0], 100.0)}
    later = {0: figures([9, 4.0, 4.2], 120.0), 1: figures([9, 4.5, 4.5], 140.0, late=[0, 2, 2])}
    best = jitter_hindsight.best_time_share(first, later, 0, {0, 1, 2}, 120.0, max_late=10)
    assert best is not None and best.first == "start"
    assert best.fractions == pytest.approx({0: 0.5, 1: 0.5})
    assert best.pesq == pytest.approx((4.0 + 2 * 4.3) / 3)
    assert best.mean_delay_ms == pytest.approx(120.0)
    # The late limit binds first: 4 late packets at the higher step for all
    # of the later chunks, at most 1 allowed.
    best = jitter_hindsight.best_time_share(first, later, 0, {0, 1, 2}, 120.0, max_late=1)
    assert best is not None and best.fractions == pytest.approx({0: 0.75, 1: 0.25})
    assert best.late == pytest.approx(1.0)


def test_a_switch_of_step_is_a_stall_then_the_new_step() -> None:
    # Steps of 20 ms around D = 20 ms: 0 ms until packet 300 is sent, then
    # 40 ms. Every packet plays at its step; the two frames between are
    # concealed from the audio before them.
    trace = synthetic_trace({}, lost=set())
    tone = (3000 * np.sin(2 * np.pi * 200 * np.arange(160 * 1000) / 8000)).astype(np.int16)
    for p in trace.packets:
        p.payload = g711.ulaw_encode(tone[p.media_pos : p.media_pos + 160])
    run = jitter_hindsight.run_switching(trace, 20.0, -1, 1, switch_ms=300 * 20.0)
    _, delays, media = jitter_eval.frame_delays(trace, run, jitter_eval.MediaMap(trace))
    before, after = media < 300 * 160, media >= 300 * 160
    assert delays[before] == pytest.approx(np.zeros(before.sum()), abs=1e-9)
    assert delays[after] == pytest.approx(np.full(after.sum(), 40.0))
    assert before.sum() + after.sum() == 1000 and run.late == 0
    switch = int(np.flatnonzero(after)[0])
    assert run.kinds[switch : switch + 2] == ["concealed", "concealed"]
