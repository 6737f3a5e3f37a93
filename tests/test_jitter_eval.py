"""The evaluation harness's fixed-delay baseline (bench/jitter_eval.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import jitter_eval


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
