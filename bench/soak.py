"""Soak: a million Mark jobs through two ``workerkit worker`` processes under ``procman start``; the RSS of
each worker and of procman (with its guardian) is sampled as the jobs go and plotted as an SVG.

    python3 bench/soak.py [--jobs 1000000] [--workers 2] [--warmup 0.1] [--svg docs/img/soak-rss.svg]

Growth is the median RSS of the last five samples against the median of five samples at the end of the
warm-up (the first 10% of jobs), per process. Every job is checked done at the end (lost must be 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reliability_jobs as jobs
import reliability_kit as kit
from jobs_common import load_note

import workerkit
from workerkit.keys import Keys
from workerkit.server import running_server

BATCH = 50_000
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


@dataclass
class Soak:
    """RSS samples (MiB) by process name, against jobs done."""

    done: list[int] = field(default_factory=list)
    rss: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    tally: kit.Tally | None = None

    def growth(self, warmup_jobs: int) -> dict[str, tuple[float, float, float]]:
        """Per process: RSS after warm-up, RSS at the end, and growth in percent."""
        start = next((i for i, done in enumerate(self.done) if done >= warmup_jobs), 0)
        out = {}
        for name, series in self.rss.items():
            warm = statistics.median(series[start:start + 5])
            end = statistics.median(series[-5:])
            out[name] = (warm, end, 100 * (end - warm) / warm)
        return out


def run(folder: Path, redis_url: str, total: int, workers: int, sample_every: float) -> Soak:
    """Feed ``total`` jobs in batches while sampling RSS every ``sample_every`` seconds."""
    conn = redis.Redis.from_url(redis_url)
    conn.flushall()
    workerkit.configure(redis_url=redis_url)
    fleet = kit.Fleet(folder, kit.worker_environment(redis_url, heartbeat=5.0, sweep=15.0), workers,
                      restart=False)
    soak = Soak()
    pushed: set[str] = set()
    try:
        fleet.wait_for_workers(workers, conn)
        started = next_sample = time.monotonic()
        queue = Keys().queue("default")
        while True:
            done = int(conn.scard(jobs.DONE))
            if len(pushed) < total and conn.llen(queue) < BATCH:
                pushed |= kit.push_marks(min(BATCH, total - len(pushed)))
            if time.monotonic() >= next_sample:
                next_sample += sample_every
                soak.done.append(done)
                for label, process in sorted(fleet.workers().items()):
                    soak.rss.setdefault(label, []).append(process.memory_info().rss / 2**20)
                soak.rss.setdefault("procman", []).append(kit.procman_rss_mib(fleet.procman.pid))
            if done >= total:
                break
            time.sleep(0.05)
        soak.seconds = time.monotonic() - started
        kit.wait_until(kit.settled(conn, pushed), 60, "every job done")
        soak.tally = kit.tally(conn, pushed)
        fleet.stop()
    finally:
        fleet.kill()
    return soak


def svg(soak: Soak, title: str, width: int = 720, height: int = 360) -> str:
    """A line chart of RSS (MiB) against jobs done, one line per process, as SVG text."""
    left, right, top, bottom = 60, 150, 30, 40
    top_mib = max(max(series) for series in soak.rss.values()) * 1.15
    most = max(soak.done) or 1

    def x(done: int) -> float:
        return left + (width - left - right) * done / most

    def y(mib: float) -> float:
        return height - bottom - (height - top - bottom) * mib / top_mib

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18" font-size="14">{title}</text>',
             f'<line x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}" stroke="black"/>',
             f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{top}" stroke="black"/>']
    for step in range(6):
        mib = top_mib * step / 5
        parts.append(f'<text x="{left - 6}" y="{y(mib) + 4:.1f}" text-anchor="end">{mib:.0f}</text>')
        jobs_at = most * step // 5
        parts.append(f'<text x="{x(jobs_at):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                     f'{jobs_at // 1000:,}k</text>')
    parts.append(f'<text x="14" y="{top + 120}" transform="rotate(-90 14 {top + 120})">RSS (MiB)</text>')
    parts.append(f'<text x="{(width - right + left) / 2}" y="{height - 6}" text-anchor="middle">jobs done</text>')
    for index, (name, series) in enumerate(sorted(soak.rss.items())):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join(f"{x(done):.1f},{y(mib):.1f}" for done, mib in zip(soak.done, series, strict=False))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{width - right + 10}" y="{top + 20 + 18 * index}" fill="{colour}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=0.1, help="fraction of the jobs counted as warm-up")
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds")
    parser.add_argument("--svg", type=Path, default=Path(__file__).resolve().parent.parent / "docs/img/soak-rss.svg")
    args = parser.parse_args()
    print(f"# {load_note()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "redis", kind="auto") as server:
        soak = run(Path(tmp) / "app", server.url, args.jobs, args.workers, args.sample_every)
    assert soak.tally is not None
    print(f"# {soak.tally.pushed:,} jobs in {soak.seconds:.0f} s ({soak.tally.pushed / soak.seconds:,.0f} jobs/s), "
          f"lost {soak.tally.lost}, repeated runs {soak.tally.duplicates}, {len(soak.done)} samples")
    print("| process | RSS after warm-up | RSS at the end | growth |")
    print("| --- | --- | --- | --- |")
    for name, (warm, end, growth) in sorted(soak.growth(int(args.jobs * args.warmup)).items()):
        print(f"| {name} | {warm:.1f} MiB | {end:.1f} MiB | {growth:+.1f}% |")
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(svg(soak, f"RSS over {soak.tally.pushed:,} jobs, {args.workers} workers under procman"))
    print(f"# plot: {args.svg}")


if __name__ == "__main__":
    main()
