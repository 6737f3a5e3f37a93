"""Jitter-buffer evaluation on fresh draws of the network models.

The public traces are one draw each, and P.862 is sensitive to where a
stall or a stretch lands: moving one stretch by a few frames can move a
trace's PESQ by 0.1 (see the README's evaluation section). A change to the
buffer is judged here on many draws at once. For each seed this writes the
draws of ``bench/jitter_traces.py``, computes their oracle with
``../shared/traces/oracle.py``, replays them through ``jitter_eval.py``'s
rtpcore and fixed receivers, and prints per draw, then per model over all
seeds: mean delay and PESQ of both, and on how many draws rtpcore meets each
of the issue's three targets (late loss at most 1% or the network's plus 1%,
mean delay at most the fixed buffer's, PESQ at least the fixed buffer's).

Usage::

    python bench/jitter_draws.py --seeds 2-6          # 25 draws, about 25 s
    python bench/jitter_draws.py --seeds 2-11 --models b_wifi_spikes,d_bursty_loss
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jitter_eval
import jitter_traces
from shared_data import shared_dir


def parse_seeds(text: str) -> list[int]:
    """``2-6`` or ``2,5,9``."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def write_shared_layout(folder: Path, seed: int, models: list[str], shared: Path) -> None:
    """The draws of one seed in the shared folder's layout, with their oracle."""
    jitter_traces.write_draws(folder, seed, models)
    traces = folder / "traces"
    subprocess.run(
        [sys.executable, str(shared / "traces" / "oracle.py"), "--table", str(traces),
         "--json", str(traces / "oracle_results.json")],
        check=True, stdout=subprocess.DEVNULL,
    )
    (folder / "audio").symlink_to(shared / "audio")


def report(rows: list[dict[str, Any]], models: list[str]) -> str:
    lines = [
        "| draw | delay ms rtpcore / fixed | PESQ rtpcore / fixed | late % rtpcore / fixed |",
        "|---|---|---|---|",
    ]
    for r in rows:
        o, f = r["rtpcore"], r["fixed"]
        lines.append(
            f"| {r['trace']} | {o['mean_delay_ms']:.1f} / {f['mean_delay_ms']:.1f} "
            f"| {o['pesq']:.3f} / {f['pesq']:.3f} | {o['late_pct']:.2f} / {f['late_pct']:.2f} |"
        )
    lines += [
        "",
        "| model | draws | mean delay ms rtpcore / fixed | mean PESQ rtpcore / fixed "
        "| draws meeting late / delay / PESQ / all three |",
        "|---|---|---|---|---|",
    ]
    for model in models:
        mine = [r for r in rows if r["trace"].startswith(model)]
        if not mine:
            continue
        delay = [sum(r[who]["mean_delay_ms"] for r in mine) / len(mine) for who in ("rtpcore", "fixed")]
        pesq = [sum(r[who]["pesq"] for r in mine) / len(mine) for who in ("rtpcore", "fixed")]
        met = [jitter_eval.targets_met(r) for r in mine]
        counts = [sum(m[i] for m in met) for i in range(3)] + [sum(all(m) for m in met)]
        lines.append(
            f"| {model} | {len(mine)} | {delay[0]:.1f} / {delay[1]:.1f} | {pesq[0]:.3f} / {pesq[1]:.3f} "
            f"| {' / '.join(map(str, counts))} |"
        )
    return "\n".join(lines)


def evaluate_draws(seeds: list[int], models: list[str]) -> list[dict[str, Any]]:
    """``jitter_eval.evaluate`` rows (rtpcore and fixed) for every draw."""
    shared, configured = shared_dir(), os.environ.get("RTPCORE_SHARED")
    rows = []
    with tempfile.TemporaryDirectory(prefix="jitter-draws-") as tmp:
        for seed in seeds:
            folder = Path(tmp) / f"seed{seed}"
            write_shared_layout(folder, seed, models, shared)
            os.environ["RTPCORE_SHARED"] = str(folder)  # jitter_eval reads traces and oracle there
            try:
                names = [f"{m}_seed{seed}" for m in models]
                rows += jitter_eval.evaluate(names, None, None, with_aiortc=False)
            finally:
                if configured is None:
                    del os.environ["RTPCORE_SHARED"]
                else:
                    os.environ["RTPCORE_SHARED"] = configured
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="2-6", type=parse_seeds,
                    help="e.g. 2-6 or 2,5,9 (seed 1 is the public draw)")
    ap.add_argument("--models", default=",".join(jitter_traces.MODELS), help="comma-separated trace stems")
    args = ap.parse_args(argv)
    models = args.models.split(",")
    unknown = sorted(set(models) - set(jitter_traces.MODELS))
    if unknown:
        ap.error(f"unknown models {', '.join(unknown)}; known: {', '.join(jitter_traces.MODELS)}")
    print(report(evaluate_draws(args.seeds, models), models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
