"""The C update step of the detectors (``_detector.c``) against the Python reference:
the same scores, ``last_z`` and state after every point, bit for bit, and the same
exceptions where Python's float math raises."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.anomaly import detector as module
from processors.anomaly.detector import (
    Detector,
    DetectorParams,
    ErrorShareDetector,
    PythonDetector,
    PythonErrorShareDetector,
    _log_poisson_tail,
    _z_of_log_tail,
)

native = module._native


def test_the_c_core_is_built_and_used() -> None:
    """Optional at install time; here it must have been built, or the suite would test the
    reference against itself without saying so."""
    assert native is not None
    assert isinstance(Detector(), native.DetectorCore)
    assert isinstance(ErrorShareDetector(), native.ErrorShareCore)


def _same(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of floats (NaN equal to NaN), recursively."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _step(detectors: tuple[Any, Any], t: float, v: float) -> None:
    """One point into both; both return the same score or raise the same exception."""
    outcomes = []
    for d in detectors:
        try:
            outcomes.append(("ok", d.update(t, v)))
        except (ValueError, ZeroDivisionError, OverflowError) as e:
            outcomes.append(("raised", type(e)))
    assert outcomes[0][0] == outcomes[1][0], outcomes
    if outcomes[0][0] == "ok":
        assert _same(outcomes[0][1], outcomes[1][1]), outcomes
    assert _same(detectors[0].last_z, detectors[1].last_z)
    assert _same(detectors[0].state(), detectors[1].state())


def _feed(pair: tuple[Any, Any], points: list[tuple[float, float]]) -> None:
    """Points given as (gap to the previous one, value), into both detectors."""
    t = 0.0
    for gap, v in points:
        t += gap
        _step(pair, t, v)


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e3, max_value=1e3),
    st.sampled_from([0.0, -0.0, 1.0, 1e-300, 5e-324, 1e300, -1e300]),
)
gaps = st.one_of(st.floats(min_value=-10, max_value=1e4), st.sampled_from([0.0, 1.0, 0.001, math.nan]))
params = st.builds(
    DetectorParams,
    level_alpha=st.floats(min_value=1e-4, max_value=1.0),
    scale_alpha=st.floats(min_value=1e-4, max_value=1.0),
    relative_floor=st.floats(min_value=0.0, max_value=1.0),
    short_alpha=st.floats(min_value=1e-4, max_value=1.0),
    long_alpha=st.floats(min_value=1e-5, max_value=1.0),
    histogram_bins=st.integers(min_value=3, max_value=40),
    histogram_alpha=st.floats(min_value=1e-5, max_value=1.0),
    warmup=st.integers(min_value=1, max_value=30),
    alarm_z=st.floats(min_value=0.0, max_value=10.0),
    refractory=st.integers(min_value=0, max_value=20),
    score_k=st.floats(min_value=0.1, max_value=20.0),
    time_unit=st.sampled_from([0.0, 0.5, 1.0, 60.0]),
)


@settings(max_examples=300, deadline=None)
@given(params, st.lists(st.tuples(gaps, values), max_size=120))
def test_detector_matches_the_python_reference(p: DetectorParams, points: list[tuple[float, float]]) -> None:
    _feed((Detector(p), PythonDetector(p)), points)


@pytest.mark.parametrize("seed", range(6))
def test_detector_matches_on_long_realistic_series(seed: int) -> None:
    """Thousands of points with warm-up, alarms, refractory periods, level shifts, range
    widening and the histogram's rescaling: paths short random inputs rarely reach."""
    rng = random.Random(seed)
    pair = (Detector(), PythonDetector())
    base = rng.choice([1.0, 250.0, 1e-6, -40.0])
    t = 0.0
    for i in range(6000):
        t += rng.choice([0.0, 0.01, 0.5, 1.0, 300.0])
        v = base + rng.gauss(0, 1) * (abs(base) + 1) * (25 if rng.random() < 0.01 else 1)
        if i > 3000:
            v += 40 * (abs(base) + 1)  # a level shift the detector must adapt to
        _step(pair, t, v)
    assert pair[0].warmed_up and pair[1].warmed_up


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=600.0),
    st.floats(min_value=0.0, max_value=10.0),
    st.integers(min_value=1, max_value=50),
    st.floats(min_value=0.1, max_value=20.0),
    st.lists(st.tuples(gaps, st.sampled_from([0.0, 1.0, 0.5])), max_size=200),
)
def test_error_share_matches_the_python_reference(
    window: float, min_errors: float, warmup: int, k: float, points: list[tuple[float, float]]
) -> None:
    args = (window, min_errors, warmup, window * 10, k)
    _feed((ErrorShareDetector(*args), PythonErrorShareDetector(*args)), points)


@pytest.mark.parametrize("seed", range(4))
def test_error_share_matches_through_bursts(seed: int) -> None:
    """Error bursts on a busy series: the Poisson tail and the normal quantile (all three
    branches of AS241, and the asymptote past exp(-700)) run on most points."""
    rng = random.Random(seed)
    pair = (ErrorShareDetector(), PythonErrorShareDetector())
    t = 0.0
    for i in range(5000):
        t += rng.choice([0.0, 0.01, 0.2, 2.0])
        share = 0.9 if 3000 < i < 3400 else (0.3 if 2000 < i < 2100 else 0.02)
        _step(pair, t, 1.0 if rng.random() < share else 0.0)


def test_error_share_scored_only_on_failures() -> None:
    """The processor scores failing calls only (scored=False for the rest): the counts
    move as when every call is scored, an unscored call reports 0, and both cores agree."""
    rng = random.Random(9)
    lazy = (ErrorShareDetector(), PythonErrorShareDetector())
    full = PythonErrorShareDetector()
    t = 0.0
    for i in range(3000):
        t += rng.choice([0.0, 0.05, 1.0])
        failed = 1.0 if rng.random() < (0.5 if 1500 < i < 1700 else 0.03) else 0.0
        scores = [d.update(t, failed, failed == 1.0) for d in lazy]
        full_score = full.update(t, failed)
        assert scores[0] == scores[1] and lazy[0].last_z == lazy[1].last_z
        assert scores[0] == (full_score if failed else 0.0)
        assert lazy[0].state() == lazy[1].state() == full.state()


def test_tail_functions_match() -> None:
    assert native is not None
    rng = random.Random(0)
    for _ in range(20000):
        k = rng.uniform(0, 400)
        lam = rng.uniform(1e-3, k + 1)
        assert native.log_poisson_tail(k, lam) == _log_poisson_tail(k, lam)
        log_p = -rng.choice([rng.uniform(0, 2), rng.uniform(0, 800), rng.uniform(690, 710), 1e-17])
        assert native.z_of_log_tail(log_p) == _z_of_log_tail(log_p)


def test_snapshots_move_between_the_cores() -> None:
    """A snapshot written by one core restores into the other and both go on alike."""
    rng = random.Random(3)
    c, py = Detector(), PythonDetector()
    points = [(i * 1.5, rng.gauss(100, 10)) for i in range(800)]
    for t, v in points[:400]:
        c.update(t, v)
    py.restore(c.state())
    for t, v in points[400:]:
        _step((c, py), t, v)
    e, pe = ErrorShareDetector(), PythonErrorShareDetector()
    for i in range(500):
        e.update(i * 0.5, float(i % 7 == 0))
    pe.restore(e.state())
    for i in range(500, 900):
        _step((e, pe), i * 0.5, float(i % 3 == 0))


def test_bad_snapshots_are_refused_or_raise_like_python() -> None:
    d = Detector()
    with pytest.raises(ValueError, match="histogram_bins"):
        d.counts = [1.0, 2.0]
    with pytest.raises(TypeError):
        d.counts = ["x"] * d.params.histogram_bins  # type: ignore[list-item]
    with pytest.raises(AttributeError):
        del d.counts
    corrupt = {**Detector().state(), "n": 5, "err_var": -1.0, "evidence": 5.0}
    pair = (Detector(), PythonDetector())
    for det in pair:
        det.restore(corrupt)
    _step(pair, 1.0, 1.0)  # both raise "math domain error"


def test_arguments_are_checked() -> None:
    d = Detector()
    with pytest.raises(TypeError):
        d.update(1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        d.update(1.0, "x")  # type: ignore[arg-type]
    assert d.update(1, 2) == 0.0  # ints are numbers
    with pytest.raises(ValueError):
        ErrorShareDetector(window_s=0)
