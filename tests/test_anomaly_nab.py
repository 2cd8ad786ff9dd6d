"""NAB Standard scoring (bench/nab.py) against the published rules, and the detector's
score on the shared NAB subset."""

from __future__ import annotations

import math

import pytest

from bench.nab import (
    DEFAULT_DATA,
    DataFile,
    load_corpus,
    point_weights,
    probationary_length,
    run_detector,
    scaled_sigmoid,
    score_corpus,
    score_file,
)
from processors.anomaly import Detector


def make_file(
    rows: int = 1000, windows: list[tuple[int, int]] | None = None, name: str = "f.csv"
) -> DataFile:
    return DataFile(name, [float(i * 300) for i in range(rows)], [0.0] * rows, windows or [])


def test_scaled_sigmoid_published_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_probationary_period_is_15_percent_capped_at_750_rows() -> None:
    assert probationary_length(1000) == 150
    assert probationary_length(4032) == 604
    assert probationary_length(22695) == 750


def test_window_weights() -> None:
    weights, window_of = point_weights(1000, [(500, 599)])
    assert weights[500] == pytest.approx(1.0)  # earliest detection: full tp weight
    assert 0.0 < weights[599] < 0.1  # right edge: almost nothing
    assert weights[300] == pytest.approx(-0.11)  # before any window: full fp weight
    assert -0.01 < weights[600] < 0.0  # just past the window: a mild penalty
    assert weights[999] == pytest.approx(-0.11)  # three window widths past
    assert window_of[100] == -2 and window_of[550] == 0 and window_of[700] == -1


def test_null_and_perfect_detectors() -> None:
    files = [make_file(windows=[(400, 499)]), make_file(windows=[(300, 349), (700, 749)], name="g.csv")]
    null = score_corpus(files, [[0.0] * 1000, [0.0] * 1000])
    assert null.normalized == pytest.approx(0.0)
    perfect_scores = []
    for f in files:
        s = [0.0] * 1000
        for left, _ in f.windows:
            s[left] = 1.0
        perfect_scores.append(s)
    assert score_corpus(files, perfect_scores).normalized == pytest.approx(100.0)


def test_only_the_first_detection_in_a_window_counts() -> None:
    f = make_file(windows=[(400, 499)])
    first_only = [0.0] * 1000
    first_only[450] = 1.0
    many = list(first_only)
    for i in range(451, 500):
        many[i] = 1.0
    assert score_file(f, many, 0.5) == (score_file(f, first_only, 0.5)[0], 50)


def test_false_positives_and_missed_windows() -> None:
    f = make_file(windows=[(400, 499)])
    scores = [0.0] * 1000
    scores[200] = scores[250] = 1.0  # two false positives before the window, window missed
    raw, _ = score_file(f, scores, 0.5)
    assert raw == pytest.approx(-1.0 - 2 * 0.11)


def test_detections_in_probation_are_not_scored() -> None:
    f = make_file(windows=[(400, 499)])
    scores = [0.0] * 1000
    scores[10] = 1.0
    assert score_file(f, scores, 0.5)[0] == pytest.approx(-1.0)


def test_one_threshold_for_the_whole_corpus() -> None:
    # File a needs threshold <= 0.4 to find its window; file b has a 0.6 false positive
    # and a 0.3 false positive. Best single threshold: 0.4 (a found, one fp of b).
    a, b = make_file(windows=[(400, 499)]), make_file(name="b.csv")
    sa, sb = [0.0] * 1000, [0.0] * 1000
    sa[400] = 0.4
    sb[700], sb[800] = 0.6, 0.3
    result = score_corpus([a, b], [sa, sb])
    assert result.threshold == 0.4
    assert result.raw == pytest.approx(1.0 - 0.11)
    assert result.normalized == pytest.approx(100.0 * (1.0 - 0.11 + 1.0) / 2.0)


@pytest.mark.skipif(not (DEFAULT_DATA / "windows.json").exists(), reason="NAB subset not present")
def test_default_detector_scores_at_least_60_on_the_subset() -> None:
    files = load_corpus()
    assert len(files) == 24
    scores, rate = run_detector(files, Detector)
    result = score_corpus(files, scores)
    assert result.normalized >= 60.0, result.per_file
    assert math.isfinite(result.threshold) and rate > 0
