r"""Fresh draws of the shared network traces, to check tuning against overfitting.

The public traces in ``../shared/traces/`` are one seed each. This module
re-implements five of their network models from that folder's README (the
generator itself is not shared, so the random streams differ: a draw here is
another sample of the same model, not a copy of seed 1) and writes them in
the same CSV format:

* ``b_wifi_spikes``: N(15, 5) ms floored at 3; each packet starts a stall of
  U(80, 150) ms with probability 1%, everything sent during it arriving
  together at its end, 0.3 ms apart;
* ``c_lte_handover``: N(45, 4) floored at 30, +8 ms (9%) or +16 ms (1%);
  one +120 ms handover of 2 s in each 20 s third;
* ``d_bursty_loss``: Gilbert loss (P(G→B) = 0.0103, P(B→G) = 1/3), delay
  N(60, 20) floored at 20;
* ``e_reordering``: N(30, 2) floored at 24, then 5% of the packets held back
  k·20 + U(1, 5) ms, k in {1, 2, 3}, outside FIFO;
* ``j_pareto_loss``: 40 ms + 2 ms·Lomax(1.5) capped at 500, 2% i.i.d. loss.

Delays are FIFO-enforced (arrival ≥ previous + 0.05 ms) except e's held-back
packets. To evaluate a draw, give it the shared folder's layout and oracle::

    python bench/jitter_traces.py /tmp/s2 --seed 2
    python ../shared/traces/oracle.py --table /tmp/s2/traces \
        --json /tmp/s2/traces/oracle_results.json
    ln -s "$PWD/../shared/audio" /tmp/s2/audio
    RTPCORE_SHARED=/tmp/s2 python bench/jitter_eval.py --traces b_wifi_spikes_seed2

or let ``bench/jitter_draws.py`` do all of it for many seeds at once.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

PACKETS = 3000
PACKET_MS = 20.0


def fifo(arrival: np.ndarray) -> np.ndarray:
    """Arrival times with no packet overtaking an earlier one (NaN = lost)."""
    out = arrival.copy()
    last = -np.inf
    for i, a in enumerate(out):
        if np.isnan(a):
            continue
        out[i] = last = max(a, last + 0.05)
    return out


def wifi_spikes(rng: np.random.Generator, send: np.ndarray) -> np.ndarray:
    arrival = send + np.maximum(rng.normal(15, 5, send.size), 3)
    for k in range(send.size):
        if rng.random() < 0.01:
            end = send[k] + rng.uniform(80, 150)
            stalled = np.flatnonzero((send >= send[k]) & (send < end))
            arrival[stalled] = np.maximum(arrival[stalled], end + 0.3 * np.arange(stalled.size))
    return fifo(arrival)


def lte_handover(rng: np.random.Generator, send: np.ndarray) -> np.ndarray:
    delay = np.maximum(rng.normal(45, 4, send.size), 30)
    harq = rng.random(send.size)
    delay += np.where(harq < 0.09, 8.0, 0.0) + np.where((harq >= 0.09) & (harq < 0.10), 16.0, 0.0)
    third = send[-1] / 3
    for i in range(3):
        start = rng.uniform(i * third, (i + 1) * third - 2000)
        delay += np.where((send >= start) & (send < start + 2000), 120.0, 0.0)
    return fifo(send + delay)


def bursty_loss(rng: np.random.Generator, send: np.ndarray) -> np.ndarray:
    arrival = fifo(send + np.maximum(rng.normal(60, 20, send.size), 20))
    bad = False
    for k in range(send.size):
        bad = rng.random() >= 1 / 3 if bad else rng.random() < 0.0103
        if bad:
            arrival[k] = np.nan
    return arrival


def reordering(rng: np.random.Generator, send: np.ndarray) -> np.ndarray:
    arrival = fifo(send + np.maximum(rng.normal(30, 2, send.size), 24))
    held = rng.random(send.size) < 0.05
    arrival[held] += rng.integers(1, 4, held.sum()) * PACKET_MS + rng.uniform(1, 5, held.sum())
    return arrival


def pareto_loss(rng: np.random.Generator, send: np.ndarray) -> np.ndarray:
    arrival = fifo(send + np.minimum(40 + 2 * rng.pareto(1.5, send.size), 500))
    arrival[rng.random(send.size) < 0.02] = np.nan
    return arrival


MODELS = {
    "b_wifi_spikes": wifi_spikes,
    "c_lte_handover": lte_handover,
    "d_bursty_loss": bursty_loss,
    "e_reordering": reordering,
    "j_pareto_loss": pareto_loss,
}


def write_trace(path: Path, rng: np.random.Generator, arrival: np.ndarray) -> None:
    """One RTP stream in the shared CSV format: random initial sequence
    number, timestamp and SSRC, marker on the first packet."""
    seq0, ts0, ssrc = (int(rng.integers(0, n)) for n in (2**16, 2**32, 2**32))
    with path.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(
            [
                "seq",
                "rtp_timestamp",
                "send_time_ms",
                "arrival_time_ms",
                "payload_type",
                "ssrc",
                "marker",
            ]
        )
        for k, a in enumerate(arrival):
            out.writerow(
                [
                    (seq0 + k) % 2**16,
                    (ts0 + 160 * k) % 2**32,
                    f"{k * PACKET_MS:.3f}",
                    "" if np.isnan(a) else f"{a:.3f}",
                    0,
                    ssrc,
                    int(k == 0),
                ]
            )


def write_draws(out: Path, seed: int, models: list[str]) -> list[Path]:
    """One draw of each model for ``seed``, as ``out/traces/<model>_seed<seed>.csv``."""
    folder = out / "traces"
    folder.mkdir(parents=True, exist_ok=True)
    send = np.arange(PACKETS) * PACKET_MS
    paths = []
    for stem in models:
        name = f"{stem}_seed{seed}"
        rng = np.random.default_rng([seed, sum(ord(c) for c in name)])
        write_trace(folder / f"{name}.csv", rng, MODELS[stem](rng, send))
        paths.append(folder / f"{name}.csv")
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="folder to create traces/ in")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated trace stems")
    args = ap.parse_args(argv)
    for path in write_draws(args.out, args.seed, args.models.split(",")):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
