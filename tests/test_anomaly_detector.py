"""The detector core on synthetic series, with the processor's flag rule
(``last_z`` at or above the z of the default threshold)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest

from processors.anomaly import AnomalyConfig, Detector, DetectorParams
from processors.anomaly.detector import (
    ErrorShareDetector,
    _log_poisson_tail,
    _z_of_log_tail,
    score_to_z,
)

FLAG_Z = score_to_z(AnomalyConfig().threshold)
N = 5000
SEEDS = range(4)


def flags(values: list[float], detector: Detector | None = None) -> list[int]:
    d = detector or Detector()
    out = []
    for i, v in enumerate(values):
        score = d.update(i * 60.0, v)
        assert 0.0 <= score < 1.0
        if d.last_z >= FLAG_Z:
            out.append(i)
    return out


def series(seed: int, shape: Callable[[int, random.Random], float]) -> list[float]:
    rng = random.Random(seed)
    return [shape(i, rng) for i in range(N)]


def test_no_arguments_and_documented_defaults() -> None:
    d = Detector()
    assert d.params == DetectorParams()
    assert d.update(0.0, 1.0) == 0.0
    assert not d.warmed_up


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "name,shape",
    [
        ("gaussian", lambda i, r: 10 + r.gauss(0, 1)),
        ("lognormal latency", lambda i, r: math.exp(r.gauss(0, 0.5))),
        ("poisson-ish counts", lambda i, r: float(sum(r.random() < 0.1 for _ in range(20)))),
        ("seasonal", lambda i, r: 10 + 5 * math.sin(2 * math.pi * i / 288) + r.gauss(0, 1)),
        ("slow drift", lambda i, r: 10 + i * 0.004 + r.gauss(0, 1)),  # 20 sigma over the series
    ],
)
def test_stable_seasonal_and_drifting_series_are_not_flagged(
    seed: int, name: str, shape: Callable[[int, random.Random], float]
) -> None:
    assert flags(series(seed, shape)) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_step_is_flagged_at_once_and_absorbed_once_it_persists(seed: int) -> None:
    found = flags(series(seed, lambda i, r: 10 + r.gauss(0, 1) + (8 if i >= 3000 else 0)))
    assert found, "step not flagged"
    assert 3000 <= found[0] <= 3003
    # The new level becomes normal: flags stop within a few dozen points.
    assert found[-1] < 3100


@pytest.mark.parametrize("seed", SEEDS)
def test_spike_is_flagged_on_its_point_only(seed: int) -> None:
    assert flags(series(seed, lambda i, r: 10 + r.gauss(0, 1) + (20 if i == 3000 else 0))) == [3000]


@pytest.mark.parametrize("seed", SEEDS)
def test_spike_in_seasonal_series_is_flagged(seed: int) -> None:
    values = series(seed, lambda i, r: 10 + 5 * math.sin(2 * math.pi * i / 288) + r.gauss(0, 1))
    values[3000] += 25
    assert flags(values) == [3000]


def test_step_down_to_unseen_level_is_flagged() -> None:
    found = flags(series(0, lambda i, r: 50 + r.gauss(0, 1) - (30 if i >= 3000 else 0)))
    assert found and found[0] <= 3002


def test_nothing_is_scored_during_warm_up() -> None:
    d = Detector(DetectorParams(warmup=100))
    rng = random.Random(1)
    scores = [d.update(i, rng.gauss(0, 1) + (100 if i == 50 else 0)) for i in range(100)]
    assert max(scores[:99]) == 0.0 and d.last_z == 0.0


def test_alert_view_is_silent_after_an_alarm() -> None:
    d = Detector()
    rng = random.Random(3)
    t = 0
    for t in range(2000):
        d.update(t, 10 + rng.gauss(0, 1))
    while d.quiet:  # let any refractory period from the noise run out
        t += 1
        d.update(t, 10.0)
    assert d.update(t + 1, 40.0) > 0.5
    assert d.quiet == d.params.refractory
    assert d.update(t + 2, 40.0) == 0.0 and d.last_z > FLAG_Z  # silent, yet still anomalous


def test_non_finite_values_are_ignored() -> None:
    d = Detector()
    for i in range(400):
        d.update(i, 1.0 + (i % 7) * 0.01)
    n = d.n
    assert d.update(1.0, math.nan) == 0.0
    assert d.update(1.0, math.inf) == 0.0
    assert d.n == n


@pytest.mark.parametrize("value", [-1.7e308, 1.7e308, 1e101])
def test_huge_finite_values_are_ignored_not_raised(value: float) -> None:
    """A client's double near the float limit made the histogram's range overflow to
    infinity, and the detector raise (found by hypothesis in test_anomaly_c)."""
    d = Detector()
    for i in range(50):
        d.update(i, 1.0 + (i % 7) * 0.01)
    n = d.n
    assert d.update(51.0, value) == 0.0
    assert d.update(52.0, value) == 0.0
    assert d.n == n


def test_state_round_trip_continues_identically() -> None:
    rng = random.Random(5)
    values = [10 + rng.gauss(0, 1) + (6 if i > 1500 else 0) for i in range(2000)]
    original = Detector()
    for i, v in enumerate(values[:1000]):
        original.update(i, v)
    snapshot = json.loads(json.dumps(original.state()))
    restored = Detector.from_state(snapshot)
    for i, v in enumerate(values[1000:], start=1000):
        assert restored.update(i, v) == original.update(i, v)
        assert restored.last_z == original.last_z


def test_state_with_wrong_histogram_is_refused() -> None:
    state = Detector().state()
    with pytest.raises(ValueError):
        Detector(DetectorParams(histogram_bins=12)).restore(state)


def test_invalid_params_are_refused() -> None:
    with pytest.raises(ValueError):
        DetectorParams(level_alpha=0.0)
    with pytest.raises(ValueError):
        DetectorParams(histogram_bins=2)


def test_histogram_widens_to_new_values_without_losing_mass() -> None:
    d = Detector()
    for i in range(200):
        d.update(i, 1.0 + 0.001 * (i % 10))
    before = sum(d.counts)
    d.update(200, 1000.0)
    assert d.hi > 1000.0
    assert sum(d.counts) > before  # old mass kept, the new point added


# --- error share ----------------------------------------------------------------------


@pytest.mark.parametrize("k,lam", [(1, 0.3), (3, 0.3), (5, 2.0), (12, 0.5), (20, 10.0)])
def test_poisson_tail_matches_the_exact_sum(k: int, lam: float) -> None:
    exact = 1.0 - sum(lam**j * math.exp(-lam) / math.factorial(j) for j in range(k))
    assert math.exp(_log_poisson_tail(k, lam)) == pytest.approx(exact, rel=1e-6)


def test_normal_z_of_tail() -> None:
    assert _z_of_log_tail(math.log(0.5)) == pytest.approx(0.0, abs=1e-9)
    assert _z_of_log_tail(math.log(0.0013499)) == pytest.approx(3.0, abs=1e-3)
    assert _z_of_log_tail(-800.0) == pytest.approx(math.sqrt(1600), rel=0.05)


def error_flags(seed: int, burst: tuple[float, float] | None, calls_per_s: float = 0.5) -> list[float]:
    rng = random.Random(seed)
    d = ErrorShareDetector()
    flag_z = score_to_z(AnomalyConfig().error_rate_threshold)
    t, out = 0.0, []
    while t < (6 * 3600 if calls_per_s < 10 else 4000):
        t += rng.expovariate(calls_per_s)
        p = 0.3 if burst and burst[0] <= t < burst[1] else 0.01
        d.update(t, 1.0 if rng.random() < p else 0.0)
        if d.last_z >= flag_z:
            out.append(t)
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_background_errors_are_not_flagged(seed: int) -> None:
    assert len(error_flags(seed, None)) <= 2  # six hours, 1 % errors


@pytest.mark.parametrize("seed", SEEDS)
def test_error_burst_is_flagged_within_a_minute(seed: int) -> None:
    found = [t for t in error_flags(seed, (10_000.0, 10_120.0)) if t >= 10_000.0]
    assert found and found[0] - 10_000.0 < 60.0


def test_busy_series_does_not_absorb_an_error_burst() -> None:
    # 80 calls/s: a per-call baseline would learn the burst within seconds.
    found = [t for t in error_flags(1, (3000.0, 3120.0), calls_per_s=80.0) if t >= 3000.0]
    assert found and found[0] - 3000.0 < 10.0


def test_busy_series_learns_in_time_not_in_calls() -> None:
    # 100 calls/s with time_unit 1 s: 10 seconds of calls are ~10 units of evidence, so
    # the warm-up (300 points) is passed but the baseline is still young; a level shift
    # lasting 3 s (300 calls) must not have become normal yet.
    busy = Detector()
    per_point = Detector(DetectorParams(time_unit=0.0))
    rng = random.Random(9)
    t = 0.0
    for _ in range(60_000):  # 10 minutes at 100/s
        t += 0.01
        v = 10 + rng.gauss(0, 1)
        busy.update(t, v)
        per_point.update(t, v)
    busy_flags = per_point_flags = 0
    for _ in range(300):
        t += 0.01
        v = 18 + rng.gauss(0, 1)
        busy.update(t, v)
        per_point.update(t, v)
        busy_flags += busy.last_z >= FLAG_Z
        per_point_flags += per_point.last_z >= FLAG_Z
    assert busy_flags > 150 and busy.last_z >= FLAG_Z  # flagged within a second, still after 3 s
    assert per_point_flags < 100 and per_point.last_z < FLAG_Z  # absorbed within a few dozen calls


def test_out_of_order_points_are_scored_but_not_learned() -> None:
    d = Detector()
    for i in range(400):
        d.update(1000.0 + i, 5.0 + 0.1 * (i % 3))
    state = d.state()
    d.update(900.0, 5.1)  # earlier than the latest point: zero evidence
    after = d.state()
    assert after["level"] == state["level"] and after["counts"] == state["counts"]
    assert after["n"] == state["n"] + 1
