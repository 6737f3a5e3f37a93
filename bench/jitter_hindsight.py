"""Hindsight bounds: what a receiver that knows the future from its first
late packet on can reach, against the fixed buffer.

The fixed buffer of the evaluation sits at the oracle's D from its first
frame: it knows the whole trace in advance. A causal receiver cannot be
there before it has seen the trace's tail (a first delay spike, a first
handover). This script grants a receiver nearly everything else. It plays
at a lower step of the frame grid (``--before``, whole frames under the
fixed buffer's) until the first packet that is late there, its first
evidence; from then on it plays each 10 s PESQ chunk at a step of its
choosing (``--steps``, whole frames around the fixed buffer's), moving
between steps for free: no stretching, no stall, no learning. Two bounds,
each the best PESQ over receivers whose late loss and mean delay meet the
issue's targets (late loss at most 1%, or the network's plus 1%; mean delay
at most the fixed buffer's):

* **per chunk**: the receiver knows which chunks the tail will strike and
  picks each chunk's step accordingly;
* **time-sharing**: it chooses only how much of the rest of the call to
  spend at each step, not where: each step is scored by its mean over the
  later chunks, what a receiver gets in expectation when the tail strikes
  at random times (b's spikes: each packet starts one with probability 1%),
  since then nothing it has seen tells it where.

Where the time-sharing bound is under the fixed buffer's PESQ, a causal
receiver below the fixed step when the first evidence comes meets all
three targets only by the luck of where the tail falls.

Usage::

    python bench/jitter_hindsight.py                     # b_wifi_spikes_seed1, about 20 s
    python bench/jitter_hindsight.py --trace d_bursty_loss_seed1 --before=-3,-2,-1
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

import jitter_eval as je
from shared_data import shared_dir


@dataclass
class ChunkFigures:
    """One receiver's figures per PESQ chunk (``je.CHUNK_S`` of the reference)."""

    pesq: dict[int, float]
    delay_sum: dict[int, float]  # ms, summed over the chunk's frames of real audio
    frames: dict[int, int]
    late: dict[int, int]  # packets received but played late, by the chunk they carry


def chunk_figures(trace: je.Trace, run: je.Run, mm: je.MediaMap) -> ChunkFigures:
    """``run``'s figures by chunk; its late packets are those ``run_fixed`` lost."""
    _, delays, media = je.frame_delays(trace, run, mm)
    index = media // je.CHUNK_SAMPLES
    chunks = np.unique(index)
    late: dict[int, int] = {}
    for p in run.extra["late_packets"]:
        c = p.media_pos // je.CHUNK_SAMPLES
        late[c] = late.get(c, 0) + 1
    return ChunkFigures(
        je.pesq_by_chunk(trace, run, mm),
        {int(c): float(delays[index == c].sum()) for c in chunks},
        {int(c): int((index == c).sum()) for c in chunks},
        late,
    )


def run_switching(trace: je.Trace, fixed_d: float, low: int, high: int, switch_ms: float) -> je.Run:
    """The fixed buffer at step ``low`` for the packets sent before
    ``switch_ms`` and at ``high`` from then on (steps: frames from
    ``fixed_d``). The packets from the switch on are handed to the playout
    buffer as a new source (another SSRC): that buffer plays what it is
    handed when it is handed, and a new source starts playout afresh, so the
    jump is a stall concealed from the audio before it, not a delay the
    buffer would take back as it would a stall of one source's packets."""
    packets = [
        p if p.send_ms < switch_ms else dataclasses.replace(p, ssrc=(p.ssrc + 1) % 2**32)
        for p in trace.packets
    ]
    return je.run_fixed(
        dataclasses.replace(trace, packets=packets),
        lambda p: fixed_d + 20 * (low if p.send_ms < switch_ms else high),
        name=f"{low:+d} then {high:+d}",
    )


@dataclass
class Evidence:
    """What a receiver has seen when its first late packet arrives: the
    largest delay of any packet behind the fastest one (ms), and how far
    behind that fastest packet the fixed buffer's step plays (ms)."""

    largest_seen_ms: float
    fixed_step_behind_fastest_ms: float


def evidence(trace: je.Trace, first_late: je.Packet, fixed_delay_ms: float) -> Evidence | None:
    """The packets that arrived before ``first_late``, as a receiver knows
    them: transits told from the fastest of them, not from the trace's
    anchor, which only hindsight gives. None if none arrived before it."""
    assert first_late.arrival_ms is not None, "a late packet arrived"
    transits = np.array([
        arrival - p.ext_ts * 1000 / je.CLOCK - trace.anchors[p.seg]
        for p in je.arrivals(trace)
        if (arrival := p.arrival_ms) is not None and arrival < first_late.arrival_ms
    ])
    if transits.size == 0:
        return None
    fastest = float(transits.min())
    return Evidence(float(transits.max()) - fastest, fixed_delay_ms - fastest)


@dataclass
class Assignment:
    pesq: float
    mean_delay_ms: float
    late: int
    steps: tuple[Any, ...]  # per chunk, the key of the figures it plays


def best_assignment(
    options: list[dict[Any, ChunkFigures]], max_delay_ms: float, max_late: int
) -> Assignment | None:
    """The best mean PESQ over every choice of one option per chunk
    (``options[c]``: chunk ``c``'s figures, by key) whose mean delay over all
    frames and whose late packets stay within the limits; None if no choice
    does. A chunk's PESQ counts where the option scored it (a chunk of
    silence has none); an option that played no frame of a chunk has no
    delay there."""
    best: Assignment | None = None
    for choice in itertools.product(*(list(o.items()) for o in options)):
        delay = sum(f.delay_sum.get(c, 0.0) for c, (_, f) in enumerate(choice))
        frames = sum(f.frames.get(c, 0) for c, (_, f) in enumerate(choice))
        late = sum(f.late.get(c, 0) for c, (_, f) in enumerate(choice))
        scores = [f.pesq[c] for c, (_, f) in enumerate(choice) if c in f.pesq]
        if not frames or not scores or late > max_late or delay / frames > max_delay_ms + 1e-9:
            continue
        pesq = float(np.mean(scores))
        if best is None or pesq > best.pesq:
            best = Assignment(pesq, delay / frames, late, tuple(key for key, _ in choice))
    return best


@dataclass
class TimeShare:
    pesq: float
    mean_delay_ms: float
    late: float
    first: Any  # the key of the figures played up to the evidence chunk
    fractions: dict[int, float]  # step -> share of the later chunks


def best_time_share(
    first: dict[Any, ChunkFigures], later: dict[int, ChunkFigures], evidence_chunk: int,
    speech_chunks: set[int], max_delay_ms: float, max_late: int,
) -> TimeShare | None:
    """The best expected PESQ of a receiver that plays up to the end of
    ``evidence_chunk`` as one of ``first`` and then spends shares of the
    later chunks at each step of ``later``, every step scored by its mean
    PESQ over the later chunks with speech; within the delay and late
    limits. A step that did not score one of those chunks (P.862 gives up on
    audio that bad) is left out.

    A linear programme over the shares (sum 1, at least 0, mean delay and
    late packets linear in them once the delay limit is multiplied out), so
    its optimum is a vertex: at most three steps in use, the limits that
    bind met exactly. Every such vertex is tried."""
    chunks = sorted(set().union(*(f.frames for f in later.values())))
    tail = [c for c in chunks if c > evidence_chunk]
    scored = [c for c in tail if c in speech_chunks]
    steps = [k for k in sorted(later) if all(c in later[k].pesq for c in scored)]
    if not steps or not scored:
        return None
    gain = np.array([np.mean([later[k].pesq[c] for c in scored]) for k in steps])
    delay = np.array([sum(later[k].delay_sum.get(c, 0.0) for c in tail) for k in steps])
    frames = np.array([sum(later[k].frames.get(c, 0) for c in tail) for k in steps])
    late = np.array([sum(later[k].late.get(c, 0) for c in tail) for k in steps], dtype=float)
    # The limits as rows @ shares <= bounds; the delay limit multiplied out.
    rows = np.array([delay - max_delay_ms * frames, late])
    best: TimeShare | None = None
    for key, f in first.items():
        head = [c for c in f.pesq if c <= evidence_chunk and c in speech_chunks]
        head_pesq = sum(f.pesq[c] for c in head)
        head_delay = sum(v for c, v in f.delay_sum.items() if c <= evidence_chunk)
        head_frames = sum(v for c, v in f.frames.items() if c <= evidence_chunk)
        head_late = sum(v for c, v in f.late.items() if c <= evidence_chunk)
        bounds = np.array([max_delay_ms * head_frames - head_delay + 1e-6, max_late - head_late + 1e-9])
        for size in (1, 2, 3):
            for used in itertools.combinations(range(len(steps)), size):
                for binding in itertools.combinations(range(2), size - 1):
                    lhs = np.vstack([np.ones(size), rows[list(binding)][:, used]])
                    rhs = np.concatenate([[1.0], bounds[list(binding)]])
                    try:
                        part = np.linalg.solve(lhs, rhs)
                    except np.linalg.LinAlgError:
                        continue
                    shares = np.zeros(len(steps))
                    shares[list(used)] = part
                    if (shares < -1e-12).any() or (rows @ shares > bounds + 1e-9).any():
                        continue
                    pesq = (head_pesq + len(scored) * float(gain @ shares)) / (len(head) + len(scored))
                    if best is None or pesq > best.pesq:
                        best = TimeShare(
                            pesq,
                            (head_delay + float(delay @ shares)) / (head_frames + float(frames @ shares)),
                            head_late + float(late @ shares),
                            key,
                            {steps[i]: float(shares[i]) for i in used if shares[i] > 1e-12},
                        )
    return best


def hindsight_bounds(
    trace: je.Trace, fixed_d: float, steps: list[int], before: list[int]
) -> dict[str, Any]:
    """The fixed buffer's figures and both bounds, over receivers starting at
    one of the ``before`` steps (frames relative to ``fixed_d``; each must
    be among ``steps``, which every later chunk may play at)."""
    mm = je.MediaMap(trace)
    net_loss = trace.oracle["network_loss_rate"]
    max_late = math.floor(trace.sent * max(0.01, net_loss + 0.01) + 1e-9)
    runs = {k: je.run_fixed(trace, fixed_d + 20 * k, name=f"step {k:+d}") for k in steps}
    at_step = {k: chunk_figures(trace, run, mm) for k, run in runs.items()}
    fixed = at_step[0] if 0 in at_step else chunk_figures(trace, je.run_fixed(trace, fixed_d), mm)
    fixed_delay = sum(fixed.delay_sum.values()) / sum(fixed.frames.values())
    chunks = sorted(fixed.frames)
    by_before = {}
    for low in before:
        late = runs[low].extra["late_packets"]
        if not late:
            continue  # never any evidence: that receiver is the fixed buffer at `low`
        first = min(late, key=lambda p: p.send_ms)
        evidence_chunk = first.media_pos // je.CHUNK_SAMPLES
        switching = {}
        for k in steps:
            if k > low:
                # Before the evidence chunk it plays at `low`, as that run does.
                run = run_switching(trace, fixed_d, low, k, first.send_ms)
                switching[(low, k)] = chunk_figures(trace, run, mm)
        options = [
            {low: at_step[low]} if c < evidence_chunk else switching if c == evidence_chunk else at_step
            for c in chunks
        ]
        per_chunk = best_assignment(options, fixed_delay, max_late)
        shared = best_time_share(switching, at_step, evidence_chunk, set(fixed.pesq), fixed_delay, max_late)
        seen = evidence(trace, first, fixed_delay)
        by_before[low] = {
            "evidence_s": first.send_ms / 1000,
            "seen": None if seen is None else dataclasses.asdict(seen),
            "per_chunk": None if per_chunk is None else dataclasses.asdict(per_chunk),
            "time_sharing": None if shared is None else dataclasses.asdict(shared),
        }
    return {
        "trace": trace.name,
        "fixed": {
            "pesq": float(np.mean(list(fixed.pesq.values()))),
            "mean_delay_ms": fixed_delay,
            "late": sum(fixed.late.values()),
        },
        "steps": {
            k: {"pesq_by_chunk": [round(f.pesq.get(c, math.nan), 3) for c in chunks],
                "late": sum(f.late.values())}
            for k, f in at_step.items()
        },
        "max_late": max_late,
        "before": by_before,
    }


def public_trace(name: str) -> je.Trace:
    """A trace of the shared folder with its oracle's figures; the fixed
    buffer's delay is ``trace.oracle["fixed"]["D_late_target_ms"]``."""
    return je.load_trace(name, je.load_speech(), je.load_oracle()[name], None)


def parse_steps(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", default="b_wifi_spikes_seed1")
    ap.add_argument("--steps", type=parse_steps, default=[-1, 0, 1, 2],
                    help="steps (frames from the fixed buffer's) a chunk may play at")
    ap.add_argument("--before", type=parse_steps, default=[-5, -4, -3, -2, -1],
                    help="steps the receiver may hold until its first late packet")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    if args.trace not in je.load_oracle():
        ap.error(f"no trace {args.trace!r} in {shared_dir() / 'traces'}")
    trace = public_trace(args.trace)
    fixed_d = trace.oracle["fixed"]["D_late_target_ms"]
    before = [k for k in args.before if fixed_d + 20 * k >= 0]
    steps = sorted(set(args.steps) | set(before))
    result = hindsight_bounds(trace, fixed_d, steps, before)
    print(f"{args.trace}: fixed buffer at D = {fixed_d:.1f} ms")
    for k, s in result["steps"].items():
        print(f"  step {k:+d} ({fixed_d + 20 * k:.1f} ms): {s['late']} late, PESQ by chunk "
              + " ".join(f"{x:.2f}" for x in s["pesq_by_chunk"]))
    f = result["fixed"]
    print(f"fixed buffer: PESQ {f['pesq']:.3f}, mean delay {f['mean_delay_ms']:.1f} ms, {f['late']} late")
    print(f"bounds (at most {result['max_late']} late, mean delay at most the fixed buffer's):")
    for low, r in result["before"].items():
        seen = r["seen"]
        before_it = "nothing came before it" if seen is None else (
            f"the packets before it came at most {seen['largest_seen_ms']:.1f} ms behind the "
            f"fastest of them; the fixed step plays {seen['fixed_step_behind_fastest_ms']:.1f} ms behind it")
        head = f"  at {low:+d} until the first late packet (sent at {r['evidence_s']:.2f} s; {before_it}):"
        c, t = r["per_chunk"], r["time_sharing"]
        per_chunk = "none" if c is None else f"PESQ {c['pesq']:.3f} at {c['mean_delay_ms']:.1f} ms (steps {c['steps']})"
        if t is None:
            sharing = "none"
        else:
            shares = ", ".join(f"{v:.1%} at {k:+d}" for k, v in sorted(t["fractions"].items()))
            sharing = (f"PESQ {t['pesq']:.3f} at {t['mean_delay_ms']:.1f} ms "
                       f"({t['first'][1]:+d} to that chunk's end, then {shares})")
        print(f"{head} per chunk {per_chunk}; time-sharing {sharing}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
