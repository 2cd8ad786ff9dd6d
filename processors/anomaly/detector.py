"""Streaming anomaly detector for one numeric series: O(1) time and memory per point.

Two views of every point, each turned into an "anomaly likelihood" the way Numenta's
HTM detector post-processes its raw scores (a short-term average of a raw surprise
compared with that average's own long-run mean and spread, so one threshold fits
series of any scale and noise):

- **prediction error**: distance from an EWMA level, in units of the EWMA of past
  distances (a mean absolute deviation), so a spike or a step shows up at once;
- **rarity**: ``-log p`` of the value under an exponentially decayed histogram of the
  values seen so far, so a value that recurs (both levels of a square wave, a daily
  peak) is not surprising however far it is from the recent level, while a level the
  series has never held is.

The score is the larger of the two likelihood z-values mapped to [0, 1) as
``z / (z + k)``. After any excursion above ``alarm_z`` the detector stays silent for
``refractory`` points: one alert per episode, which is what the Numenta Anomaly
Benchmark rewards and what an operator wants. Nothing is scored during ``warmup``.

The method and its one configuration were chosen by the NAB Standard score on the
shared 24-file subset (``python -m bench.nab``; numbers in bench/README.md), against
plain robust z-scores, two-window comparisons and peak-hold suppression.

Written by hand because no maintained library offers a streaming detector with O(1)
updates and a serialisable state; numpy per point would be slower than this. The update
steps run in C (``_detector.c``) when the extension is built: the same arithmetic in the
same order on the same doubles, so bit-identical to the pure-Python classes here
(``PythonDetector``, ``PythonErrorShareDetector``), which stay as the reference the tests
compare it with and as the fallback of an install without a C compiler.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

_native: ModuleType | None
try:
    from processors.anomaly import _detector as _native
except ImportError:  # built without a C compiler
    _native = None

# Larger magnitudes (and NaN, infinities) are not observed: the histogram's range
# arithmetic would overflow to infinity, and no latency, token count or cost comes near.
MAX_VALUE: Final = 1e100


def native_core() -> ModuleType | None:
    """The C extension (detector steps and the processor's ``SeriesTable``), None when
    the install had no C compiler."""
    return _native

_TINY = 1e-9
# A point carries the episode's z only if it is itself unusual: at least this many mean
# absolute errors from the level, or in a region of the histogram holding < 1 % of the
# mass (-log 0.01).
POINT_MIN_ERROR = 3.0
POINT_MIN_RARITY = 4.6
HUBER = 3.0


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Tuning of :class:`Detector`; the defaults are the configuration measured on NAB."""

    level_alpha: float = 0.1  # EWMA weight of the level the prediction error is measured from
    scale_alpha: float = 0.005  # EWMA weight of the mean absolute error (the error's unit)
    relative_floor: float = 0.01  # the error unit is at least this share of |level|
    short_alpha: float = 0.1  # EWMA weight of the short-term average of each raw surprise
    long_alpha: float = 0.0003  # EWMA weight of that average's long-run mean and variance
    histogram_bins: int = 10
    histogram_alpha: float = 0.0003  # decay of the value histogram per point
    warmup: int = 300  # points (of evidence, see time_unit) learned before any score is given
    alarm_z: float = 2.0  # likelihood z that opens an episode (and the refractory period)
    refractory: int = 50  # points kept silent after an alarm
    score_k: float = 5.0  # score = z / (z + score_k)
    # A point counts as full evidence only if it comes at least this many seconds after
    # the previous one; closer points count pro rata, so a series with 80 calls/s learns
    # (and forgets) at the pace of one with 1 call/s instead of 80x faster. 0 = per point.
    # NAB's series (5 min to 1 h apart) are unaffected.
    time_unit: float = 1.0

    def __post_init__(self) -> None:
        for name in ("level_alpha", "scale_alpha", "short_alpha", "long_alpha", "histogram_alpha"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 3 <= self.histogram_bins <= 4096:  # the C core's bound (and far past useful)
            raise ValueError("histogram_bins must be in 3..4096")
        if self.warmup < 1 or self.refractory < 0 or self.score_k <= 0 or self.relative_floor < 0:
            raise ValueError("warmup >= 1, refractory >= 0, score_k > 0, relative_floor >= 0 required")
        if self.time_unit < 0:
            raise ValueError("time_unit must be >= 0")


DEFAULT_PARAMS = DetectorParams()

# Field order of a snapshot (``Detector.state``); floats and ints only, plus the histogram.
_STATE_FIELDS = (
    "n", "evidence", "level", "anchor", "scale", "err_short", "err_mean", "err_var", "rare_short",
    "rare_mean", "rare_var", "lo", "hi", "total", "weight", "quiet", "last_t",
)


def score_to_z(score: float, k: float = DEFAULT_PARAMS.score_k) -> float:
    """Inverse of the score mapping, for thresholds written as z-values."""
    return score * k / (1.0 - score) if score < 1.0 else math.inf


class _DetectorAPI:
    """What ``Detector`` adds to the state and update step of either core."""

    # Declared for the type checker only: the core class (C or Python) holds them.
    if TYPE_CHECKING:
        _p: DetectorParams
        evidence: float
        counts: list[float]
    else:
        __slots__ = ()

    @property
    def params(self) -> DetectorParams:
        return self._p

    @property
    def warmed_up(self) -> bool:
        return self.evidence >= self._p.warmup

    def state(self) -> dict[str, Any]:
        """JSON-serialisable snapshot of everything learned (not the parameters)."""
        snapshot: dict[str, Any] = {name: getattr(self, name) for name in _STATE_FIELDS}
        snapshot["counts"] = list(self.counts)
        return snapshot

    def restore(self, snapshot: dict[str, Any]) -> None:
        counts = [float(c) for c in snapshot["counts"]]
        if len(counts) != self._p.histogram_bins:
            raise ValueError("snapshot histogram does not match histogram_bins")
        for name in _STATE_FIELDS:
            setattr(self, name, type(getattr(self, name))(snapshot[name]))
        self.counts = counts


class PythonDetectorCore:
    """The state and update step of :class:`Detector` in Python: the reference."""

    __slots__ = (
        "_log_keep", "_p", "anchor", "counts", "err_mean", "err_short", "err_var", "evidence", "hi", "last_t",
        "last_z", "level", "lo", "n", "quiet", "rare_mean", "rare_short", "rare_var", "scale", "total",
        "weight",
    )

    def __init__(self, params: DetectorParams) -> None:
        self._p = params
        self.n = 0
        self.evidence = 0.0  # points so far, each weighted by its evidence (== n when sparse)
        self.level = 0.0
        self.anchor = 0.0
        self.scale = 0.0
        self.err_short = self.err_mean = self.err_var = 0.0
        self.rare_short = self.rare_mean = self.rare_var = 0.0
        self.lo = self.hi = 0.0
        self.counts = [0.0] * self._p.histogram_bins
        self.total = 0.0
        self.weight = 1.0
        self.quiet = 0
        self.last_t = 0.0
        self._log_keep = math.log1p(-self._p.histogram_alpha) if self._p.histogram_alpha < 1.0 else -math.inf
        # Likelihood z of the last point before the refractory silence (0 in warm-up, and
        # 0 when the point itself is ordinary): the processor flags spans on it, so every
        # unusual span of an ongoing episode is flagged, not only the first.
        self.last_z = 0.0

    def update(self, timestamp_seconds: float, value: float) -> float:
        x = value
        if not -MAX_VALUE <= x <= MAX_VALUE:  # NaN too
            return 0.0
        p = self._p
        n = self.n = self.n + 1
        if n == 1:
            self.evidence = 1.0
            self.level = self.anchor = x
            self.last_t = timestamp_seconds
            margin = 1e-6 * abs(x) + _TINY
            self.lo, self.hi = x - margin, x + margin
            self._rarity(x, 1.0)
            return 0.0
        w = 1.0  # evidence of this point
        if p.time_unit > 0.0:
            dt = timestamp_seconds - self.last_t
            if dt < p.time_unit:
                w = dt / p.time_unit if dt > 0.0 else 0.0
            if dt > 0.0:
                self.last_t = timestamp_seconds
        ev = self.evidence = self.evidence + w
        if ev <= 0.0:
            return 0.0

        level = self.level
        err = x - level if x >= level else level - x
        # Until 1/alpha points of evidence are in, plain (weighted) means, then EWMA.
        a = p.scale_alpha * w if ev * p.scale_alpha > 1.0 else w / ev
        scale = self.scale = self.scale + a * (err - self.scale)
        unit = scale + p.relative_floor * abs(level) + _TINY
        raw = err / unit
        self.level = level + p.level_alpha * w * (x - level)
        # The flag gate measures the point from a Huber-robust twin of the level: one
        # outlier moves it by at most HUBER error units x alpha, so the calls after a
        # slow one are not judged from a displaced level (the plain level scores better
        # on NAB, so it stays for the likelihood).
        step = x - self.anchor
        gate_error = (step if step >= 0.0 else -step) / unit
        bound = HUBER * unit
        if step > bound:
            step = bound
        elif step < -bound:
            step = -bound
        self.anchor += p.level_alpha * w * step

        la = p.long_alpha * w if ev * p.long_alpha > 1.0 else w / ev
        sa = p.short_alpha * w
        short = self.err_short = self.err_short + sa * (raw - self.err_short)
        d = short - self.err_mean
        z = d / (math.sqrt(self.err_var) + _TINY)
        self.err_mean += la * d
        self.err_var = (1.0 - la) * (self.err_var + la * d * d)

        rarity = self._rarity(x, w)
        short = self.rare_short = self.rare_short + sa * (rarity - self.rare_short)
        d = short - self.rare_mean
        z_rare = d / (math.sqrt(self.rare_var) + _TINY)
        self.rare_mean += la * d
        self.rare_var = (1.0 - la) * (self.rare_var + la * d * d)

        if z_rare > z:
            z = z_rare
        if ev < p.warmup:
            return 0.0
        # The episode z lingers for a few points after a lone outlier; only a point that is
        # unusual itself carries it, so the calls next to a slow one are not flagged.
        self.last_z = z if gate_error >= POINT_MIN_ERROR or rarity >= POINT_MIN_RARITY else 0.0
        if self.quiet > 0:
            self.quiet -= 1
            return 0.0
        if z >= p.alarm_z:
            self.quiet = p.refractory
        return z / (z + p.score_k) if z > 0.0 else 0.0

    def _rarity(self, x: float, evidence: float) -> float:
        """``-log p(x)`` under the decayed histogram, then count ``x`` in it (with weight
        ``evidence``, and forget by as much)."""
        lo, hi = self.lo, self.hi
        if x < lo or x > hi:
            lo, hi = self._widen(x)
        counts = self.counts
        bins = len(counts)
        j = int((x - lo) / (hi - lo) * bins)
        if j >= bins:
            j = bins - 1
        left = counts[j - 1] if j > 0 else 0.0
        right = counts[j + 1] if j < bins - 1 else 0.0
        mass = counts[j] + 0.5 * (left + right)
        rarity = -math.log(mass / (self.total + 1e-300) + 1e-4)
        # Exponential forgetting without touching every bin: new points weigh more and
        # more, and everything is rescaled once the weights grow large.
        if evidence <= 0.0:
            return rarity
        if evidence == 1.0:
            w = self.weight = self.weight / (1.0 - self._p.histogram_alpha)
        else:
            w = self.weight = self.weight * math.exp(-evidence * self._log_keep)
        counts[j] += w * evidence
        self.total += w * evidence
        if w > 1e100:
            for i in range(bins):
                counts[i] /= w
            self.total /= w
            self.weight = 1.0
        return rarity

    def _widen(self, x: float) -> tuple[float, float]:
        """Stretch the histogram range past ``x`` (by 10 % of the span) and re-bin."""
        lo, hi = self.lo, self.hi
        span = hi - lo
        new_lo = min(lo, x - 0.1 * span)
        new_hi = max(hi, x + 0.1 * span)
        bins = len(self.counts)
        width = span / bins
        factor = bins / (new_hi - new_lo)
        moved = [0.0] * bins
        for i, c in enumerate(self.counts):
            if c:
                j = int((lo + (i + 0.5) * width - new_lo) * factor)
                moved[min(max(j, 0), bins - 1)] += c
        self.counts = moved
        self.lo, self.hi = new_lo, new_hi
        return new_lo, new_hi


if TYPE_CHECKING:
    _DetectorBase = PythonDetectorCore
else:
    _DetectorBase = _native.DetectorCore if _native is not None else PythonDetectorCore


class Detector(_DetectorAPI, _DetectorBase):
    """``update(timestamp_seconds, value) -> score in [0, 1]``, one instance per series.

    The score is the alert view (silent during the refractory period after an alarm);
    ``last_z`` keeps the underlying likelihood z of the latest point (when the point is
    unusual itself) for callers that flag every anomalous point of an episode rather
    than its onset.

    The model advances per point, except that points closer together than
    ``time_unit`` seconds count pro rata (see :class:`DetectorParams`), so a busy span
    stream keeps a memory measured in time rather than in calls.
    """

    __slots__ = ()

    def __init__(self, params: DetectorParams | None = None) -> None:
        super().__init__(params if params is not None else DEFAULT_PARAMS)

    @classmethod
    def from_state(cls, snapshot: dict[str, Any], params: DetectorParams | None = None) -> Detector:
        detector = cls(params)
        detector.restore(snapshot)
        return detector


class PythonDetector(_DetectorAPI, PythonDetectorCore):
    """:class:`Detector` computed in Python whether or not the C core is built."""

    __slots__ = ()

    def __init__(self, params: DetectorParams | None = None) -> None:
        super().__init__(params if params is not None else DEFAULT_PARAMS)


def params_to_mapping(params: DetectorParams) -> dict[str, Any]:
    return asdict(params)


def _z_of_log_tail(log_p: float) -> float:
    """Standard-normal z whose upper tail is ``exp(log_p)``; the Mills-ratio asymptote
    past what a double can hold."""
    if log_p >= 0.0:
        return -math.inf
    if log_p > -700.0:
        p = math.exp(log_p)
        # a tail a hair below 1 rounds to 1.0, which inv_cdf refuses
        return -_NORMAL.inv_cdf(p) if p < 1.0 else -math.inf
    z = math.sqrt(-2.0 * log_p)
    for _ in range(3):
        z = math.sqrt(max(-2.0 * log_p - 2.0 * math.log(z * _SQRT_2PI), 1e-12))
    return z


def _log_poisson_tail(k: float, lam: float) -> float:
    """log P(X >= k) for X ~ Poisson(lam), k >= 0 real (decayed counts are fractional)."""
    if lam <= 0.0:
        return -math.inf if k > 0.0 else 0.0
    if k <= 0.0:
        return 0.0
    log_term = k * math.log(lam) - lam - math.lgamma(k + 1.0)
    total, term, j = 1.0, 1.0, 0
    while j < 1000:
        term *= lam / (k + j + 1.0)
        total += term
        j += 1
        if term < 1e-12 * total:
            break
    return min(0.0, log_term + math.log(total))


class PythonErrorShareCore:
    """The state and update step of :class:`ErrorShareDetector` in Python: the reference."""

    __slots__ = ("_baseline_s", "_k", "_min_errors", "_warmup", "_window_s", "last_t", "last_z",
                 "long_errors", "long_total", "n", "recent_errors", "recent_total")

    PRIOR_CALLS = 100.0
    PRIOR_SHARE = 0.01

    def __init__(
        self, window_s: float, min_errors: float, warmup: int, baseline_s: float, score_k: float
    ) -> None:
        self._window_s = window_s
        self._min_errors = min_errors
        self._warmup = warmup
        self._baseline_s = baseline_s
        self._k = score_k
        self.n = 0
        self.last_t = 0.0
        self.recent_errors = self.recent_total = 0.0
        self.long_errors = self.long_total = 0.0
        self.last_z = 0.0

    def update(self, timestamp_seconds: float, failed: float, scored: bool = True) -> float:
        """Count the call; with ``scored`` False the surprise is not computed (0): the
        processor scores failing calls only, and the tail is most of an update's cost."""
        t = timestamp_seconds
        dt = t - self.last_t
        if self.n and dt > 0.0:
            decay = math.exp(-dt / self._window_s)
            self.recent_errors *= decay
            self.recent_total *= decay
            decay = math.exp(-dt / self._baseline_s)
            self.long_errors *= decay
            self.long_total *= decay
        if dt > 0.0 or not self.n:
            self.last_t = t
        self.n += 1
        self.recent_total += 1.0
        self.recent_errors += failed
        p0 = (self.long_errors + self.PRIOR_SHARE * self.PRIOR_CALLS) / (self.long_total + self.PRIOR_CALLS)
        z = 0.0
        errors = self.recent_errors
        if scored and self.n >= self._warmup and errors >= self._min_errors:
            lam = self.recent_total * p0
            if errors > lam:
                z = _z_of_log_tail(_log_poisson_tail(errors, lam))
        self.long_total += 1.0
        self.long_errors += failed
        self.last_z = z
        return z / (z + self._k) if z > 0.0 else 0.0


class _ErrorShareAPI:
    __slots__ = ()

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _ERROR_STATE_FIELDS}

    def restore(self, snapshot: dict[str, Any]) -> None:
        for name in _ERROR_STATE_FIELDS:
            setattr(self, name, type(getattr(self, name))(snapshot[name]))


if TYPE_CHECKING:
    _ErrorShareBase = PythonErrorShareCore
else:
    _ErrorShareBase = _native.ErrorShareCore if _native is not None else PythonErrorShareCore


def _check_windows(window_s: float, baseline_s: float) -> None:
    if window_s <= 0 or baseline_s <= window_s:
        raise ValueError("window_s > 0 and baseline_s > window_s required")


class ErrorShareDetector(_ErrorShareAPI, _ErrorShareBase):
    """Surprise of the recent error count of a series under its own long-run error share.

    Errors are 0/1 events, so their share is scored with the textbook model rather than
    the value detector: the count of failures in an exponentially decayed window of
    ``window_s`` seconds (event time) against a Poisson with mean ``calls x p0``, p0
    the series' long-run share over an exponential window of ``baseline_s`` seconds
    (event time, so a busy series does not absorb a burst in seconds), with a weak 1 %
    prior so a series that never failed is not infinitely surprised by its first error. The tail probability
    is reported as a normal z (``last_z``) and as a score ``z / (z + k)``.
    """

    __slots__ = ()

    def __init__(self, window_s: float = 60.0, min_errors: float = 3.0, warmup: int = DEFAULT_PARAMS.warmup,
                 baseline_s: float = 3600.0, score_k: float = DEFAULT_PARAMS.score_k) -> None:
        _check_windows(window_s, baseline_s)
        super().__init__(window_s, min_errors, warmup, baseline_s, score_k)


class PythonErrorShareDetector(_ErrorShareAPI, PythonErrorShareCore):
    """:class:`ErrorShareDetector` computed in Python whether or not the C core is built."""

    __slots__ = ()

    def __init__(self, window_s: float = 60.0, min_errors: float = 3.0, warmup: int = DEFAULT_PARAMS.warmup,
                 baseline_s: float = 3600.0, score_k: float = DEFAULT_PARAMS.score_k) -> None:
        _check_windows(window_s, baseline_s)
        super().__init__(window_s, min_errors, warmup, baseline_s, score_k)


_ERROR_STATE_FIELDS = ("n", "last_t", "recent_errors", "recent_total", "long_errors", "long_total")
_NORMAL = NormalDist()
_SQRT_2PI = math.sqrt(2.0 * math.pi)
