"""Which test ran on which xdist worker, and when: the suite's wall time is set by how files land on workers.

With ``DISTILL_KIT_TEST_TIMELINE=<file>`` set, ``tests/conftest.py`` appends one JSON line per test (worker, node id,
start and end, seconds since the epoch) to ``<file>``; every worker appends to the same file (one short ``write``
per line, so lines do not interleave). ``python -m tests.helpers.timeline <file>`` then prints each file's span per
worker and how long each worker sat idle before the last one finished, which tells a long tail (one long file
started late), idle workers and cold caches (a file much slower than in ``tests/durations.json``) apart.
``--write-durations`` stores each test's seconds as ``tests/durations.json``, from which
:mod:`tests.helpers.schedule` orders the files (longest first).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.schedule import DURATIONS, duration_key

ENV = "DISTILL_KIT_TEST_TIMELINE"


def record(nodeid: str, start: float, end: float) -> None:
    """Append one test's span to the timeline file, when one is asked for."""
    target = os.environ.get(ENV)
    if not target:
        return
    line = json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), "nodeid": nodeid,
                       "start": round(start, 3), "end": round(end, 3)}) + "\n"
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def now() -> float:
    return time.time()


@dataclass(frozen=True)
class FileSpan:
    """One test file's stretch on one worker: first test's start to last test's end."""

    path: str
    worker: str
    start: float
    end: float
    tests: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


def file_spans(lines: list[dict]) -> list[FileSpan]:
    """Group the per-test lines by (file, worker); ``--dist loadfile`` keeps a file on one worker."""
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in lines:
        grouped[(row["nodeid"].split("::", 1)[0], row["worker"])].append(row)
    return sorted((FileSpan(path, worker, min(r["start"] for r in rows), max(r["end"] for r in rows), len(rows))
                   for (path, worker), rows in grouped.items()), key=lambda s: s.start)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(spans: list[FileSpan], top: int) -> str:
    """The longest files, each worker's busy time and its idle tail before the run's last test ended."""
    t0 = min(s.start for s in spans)
    t_end = max(s.end for s in spans)
    out = [f"{'file':60} {'worker':6} {'from':>7} {'to':>7} {'s':>7}"]
    for s in sorted(spans, key=lambda s: -s.seconds)[:top]:
        out.append(f"{s.path:60} {s.worker:6} {s.start - t0:7.1f} {s.end - t0:7.1f} {s.seconds:7.1f}")
    out.append("")
    workers: dict[str, list[FileSpan]] = defaultdict(list)
    for s in spans:
        workers[s.worker].append(s)
    for worker, own in sorted(workers.items()):
        last = max(own, key=lambda s: s.end)
        out.append(f"{worker}: {len(own)} files, {sum(s.seconds for s in own):.1f} s in tests, last file "
                   f"{last.path} ended at {last.end - t0:.1f} s, idle {t_end - last.end:.1f} s at the end")
    out.append(f"first test start to last test end: {t_end - t0:.1f} s")
    return "\n".join(out)


def durations(lines: list[dict]) -> dict[str, float]:
    """Seconds per test (setup and teardown included), keyed by :func:`~tests.helpers.schedule.duration_key` -- a
    parametrised test by the mean over its cases, no parameter id written -- sorted so the file diffs well."""
    spans: dict[str, list[float]] = defaultdict(list)
    for row in lines:
        spans[duration_key(row["nodeid"])].append(row["end"] - row["start"])
    return {k: round(sum(v) / len(v), 2) for k, v in sorted(spans.items())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("timeline", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--write-durations", action="store_true", help=f"store per-test seconds in {DURATIONS}")
    args = parser.parse_args(argv)
    lines = read(args.timeline)
    print(report(file_spans(lines), args.top))
    if args.write_durations:
        DURATIONS.write_text(json.dumps(durations(lines), indent=0) + "\n")
        print(f"wrote {DURATIONS}")


if __name__ == "__main__":
    main()
