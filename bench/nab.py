"""Numenta Anomaly Benchmark scoring, Standard profile, for streaming detectors.

Reimplemented from NAB's published rules (numenta/NAB, ``nab/sweeper.py`` and the
whitepaper) because NAB itself is a Python 2-era research harness with heavy
dependencies; the rules are short and are checked in ``tests/test_anomaly_nab.py``:

- every point of a file gets a weight: inside a labelled window the scaled sigmoid of
  its position (first point of the window = 1.0, right edge ~ 0), outside every window
  the false-positive weight times the sigmoid of its distance past the preceding window
  (-fp_weight when no window precedes it or it is three window widths past);
- the first 15 % of each file (at most 750 rows) is probationary and not scored;
- at a given threshold a window scores its earliest detection (max weight, since the
  sigmoid falls with position) or -fn_weight when it has none; every detection outside
  windows adds its (negative) weight;
- one threshold for the whole corpus, the one maximising the summed raw score;
- normalised so that a detector that never fires scores 0 and a perfect one 100.

Run ``python -m bench.nab`` to score ``processors.anomaly.Detector`` on ``../shared/nab``.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "nab"


@dataclass(frozen=True)
class Profile:
    tp_weight: float = 1.0
    fp_weight: float = 0.11
    fn_weight: float = 1.0


STANDARD = Profile()
PROBATION_PERCENT = 0.15


@dataclass
class DataFile:
    name: str
    timestamps: list[float]
    values: list[float]
    windows: list[tuple[int, int]]  # inclusive row indices


@dataclass
class CorpusScore:
    threshold: float
    raw: float
    null: float
    perfect: float
    normalized: float
    per_file: dict[str, float] = field(default_factory=dict)
    detections: dict[str, int] = field(default_factory=dict)


class StreamingDetector(Protocol):
    def update(self, timestamp_seconds: float, value: float) -> float: ...


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def load_corpus(root: Path = DEFAULT_DATA) -> list[DataFile]:
    """The shared subset (``windows.json`` + ``data/``) or a full NAB checkout
    (``labels/combined_windows.json`` + ``data/``)."""
    windows_path = root / "windows.json"
    if not windows_path.exists():
        windows_path = root / "labels" / "combined_windows.json"
    windows_by_file: dict[str, list[list[str]]] = json.loads(windows_path.read_text())
    files: list[DataFile] = []
    for name in sorted(windows_by_file):
        timestamps: list[float] = []
        values: list[float] = []
        with (root / "data" / name).open(newline="") as fh:
            for row in csv.DictReader(fh):
                timestamps.append(_parse_time(row["timestamp"]))
                values.append(float(row["value"]))
        windows: list[tuple[int, int]] = []
        for start, end in windows_by_file[name]:
            lo = bisect.bisect_left(timestamps, _parse_time(start))
            hi = bisect.bisect_right(timestamps, _parse_time(end)) - 1
            if lo <= hi:
                windows.append((lo, hi))
        files.append(DataFile(name, timestamps, values, windows))
    return files


def scaled_sigmoid(relative_position: float) -> float:
    """NAB's reward curve: 2*sigmoid(-5x) - 1, clamped to -1 three widths past a window."""
    if relative_position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * relative_position)) - 1.0


def probationary_length(rows: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * rows), PROBATION_PERCENT * 5000))


def point_weights(rows: int, windows: Sequence[tuple[int, int]], profile: Profile = STANDARD
                  ) -> tuple[list[float], list[int]]:
    """Per row: the weight a detection there earns, and its window index (-1 outside).

    Rows in the probationary period get window index -2 (never scored)."""
    max_tp = scaled_sigmoid(-1.0)
    weights = [0.0] * rows
    window_of = [-1] * rows
    prev_right: int | None = None
    prev_width = 0.0
    pending = list(enumerate(windows))
    current: tuple[int, int, int] | None = None  # (window index, left, right)
    for i in range(rows):
        if current is None and pending and pending[0][1][0] == i:
            w_index, (left, right) = pending.pop(0)
            current = (w_index, left, right)
        if current is not None:
            w_index, left, right = current
            width = float(right - left + 1)
            weights[i] = scaled_sigmoid(-(right - i + 1) / width) * profile.tp_weight / max_tp
            window_of[i] = w_index
            if i == right:
                prev_right, prev_width = right, width
                current = None
        else:
            past = 3.0 if prev_right is None else abs(prev_right - i) / max(prev_width - 1.0, 1.0)
            weights[i] = scaled_sigmoid(past) * profile.fp_weight
    for i in range(probationary_length(rows)):
        window_of[i] = -2
    return weights, window_of


def score_corpus(
    files: Sequence[DataFile], scores: Sequence[Sequence[float]], profile: Profile = STANDARD
) -> CorpusScore:
    """Sweep every distinct score as threshold over the pooled corpus; keep the best."""
    points: list[tuple[float, float, int]] = []  # (anomaly score, weight, global window id, -1 = none)
    window_ids = 0
    scored_windows: set[int] = set()
    for data, file_scores in zip(files, scores, strict=True):
        weights, window_of = point_weights(len(data.values), data.windows, profile)
        for i, s in enumerate(file_scores):
            w = window_of[i]
            if w == -2:
                continue
            gid = -1 if w < 0 else window_ids + w
            if gid >= 0:
                scored_windows.add(gid)
            points.append((s, weights[i], gid))
        window_ids += len(data.windows)
    n_windows = len(scored_windows)
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    points.sort(key=lambda p: p[0], reverse=True)

    best_part = dict.fromkeys(scored_windows, -profile.fn_weight)
    total = null
    best_total, best_threshold = total, math.inf
    i = 0
    while i < len(points):
        threshold = points[i][0]
        while i < len(points) and points[i][0] == threshold:
            _, weight, gid = points[i]
            if gid < 0:
                total += weight
            elif weight > best_part[gid]:
                total += weight - best_part[gid]
                best_part[gid] = weight
            i += 1
        if total > best_total:
            best_total, best_threshold = total, threshold

    result = CorpusScore(
        threshold=best_threshold,
        raw=best_total,
        null=null,
        perfect=perfect,
        normalized=100.0 * (best_total - null) / (perfect - null) if perfect > null else 0.0,
    )
    for data, file_scores in zip(files, scores, strict=True):
        raw, detections = score_file(data, file_scores, best_threshold, profile)
        result.per_file[data.name] = raw
        result.detections[data.name] = detections
    return result


def score_file(data: DataFile, scores: Sequence[float], threshold: float, profile: Profile = STANDARD
               ) -> tuple[float, int]:
    """Raw score of one file at a fixed threshold, and how many rows were detections."""
    weights, window_of = point_weights(len(data.values), data.windows, profile)
    parts = {w: -profile.fn_weight for w in set(window_of) if w >= 0}
    fp = 0.0
    detections = 0
    for i, s in enumerate(scores):
        w = window_of[i]
        if w == -2 or s < threshold:
            continue
        detections += 1
        if w < 0:
            fp += weights[i]
        else:
            parts[w] = max(parts[w], weights[i])
    return fp + sum(parts.values()), detections


def run_detector(files: Sequence[DataFile], make: Callable[[], StreamingDetector]
                 ) -> tuple[list[list[float]], float]:
    """Fresh detector per file; returns the scores and the detector's points per CPU second."""
    all_scores: list[list[float]] = []
    points = 0
    elapsed = 0.0
    for data in files:
        detector = make()
        update = detector.update
        t0 = time.process_time()  # CPU time: other load on shared cores distorts it less
        file_scores = [update(t, v) for t, v in zip(data.timestamps, data.values, strict=True)]
        elapsed += time.process_time() - t0
        points += len(file_scores)
        all_scores.append(file_scores)
    return all_scores, points / elapsed if elapsed > 0 else math.inf


def load_results(root: Path, files: Sequence[DataFile], detector: str) -> list[list[float]]:
    """Published per-point scores of ``detector`` from a NAB checkout's ``results/``, to
    check this scorer against NAB's own numbers (results/final_results.json)."""
    scores: list[list[float]] = []
    for data in files:
        group, name = data.name.split("/")
        with (root / "results" / detector / group / f"{detector}_{name}").open(newline="") as fh:
            column = [float(row["anomaly_score"]) for row in csv.DictReader(fh)]
        if len(column) != len(data.values):
            raise ValueError(f"{detector} results for {data.name} have {len(column)} rows")
        scores.append(column)
    return scores


def main(argv: Sequence[str] | None = None) -> int:
    from processors.anomaly import Detector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="NAB subset root, or a checkout of github.com/numenta/NAB")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--results", metavar="DETECTOR",
                        help="score a NAB checkout's published results of DETECTOR instead of ours")
    args = parser.parse_args(argv)
    files = load_corpus(args.data)
    if args.results:
        scores, rate = load_results(args.data, files, args.results), math.nan
    else:
        scores, rate = run_detector(files, Detector)
    result = score_corpus(files, scores)
    if args.json:
        print(json.dumps({**result.__dict__, "points_per_second": rate}))
        return 0
    print(f"NAB Standard score: {result.normalized:.1f}  (raw {result.raw:.2f}, null {result.null:.0f}, "
          f"perfect {result.perfect:.0f}, threshold {result.threshold:.4f})")
    points = sum(len(f.values) for f in files)
    if not math.isnan(rate):
        print(f"detector throughput: {rate:,.0f} points per CPU second over {points:,} points")
    for name, raw in result.per_file.items():
        windows = len(next(f for f in files if f.name == name).windows)
        print(f"  {raw:7.2f}  windows={windows}  detections={result.detections[name]:5d}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
