"""OTLP metrics -> Prometheus series, by the OpenTelemetry Collector's translation rules.

Gauges stay gauges; monotonic sums become ``_total`` counters and non-monotonic ones
gauges; histograms keep their buckets; exponential histograms are exposed as classic
buckets (the Prometheus we target scrapes native histograms only over protobuf, which
prometheus-client does not write); summaries keep their quantiles. Delta temporality is
accumulated into cumulative series. Resources become ``target_info`` plus ``job`` and
``instance`` labels. Series idle for ``metric_expiration`` are dropped.
"""

from __future__ import annotations

import json
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

import semconv
from exporters.prometheus.naming import label_name, metric_name
from exporters.prometheus.selfmetrics import ExporterSelfMetrics
from otel_receiver.attributes import any_value_to_python

# Every OTLP data point type: they share attributes, flags and time_unix_nano.
_Point = (
    metrics_pb2.NumberDataPoint
    | metrics_pb2.HistogramDataPoint
    | metrics_pb2.ExponentialHistogramDataPoint
    | metrics_pb2.SummaryDataPoint
)

DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
NO_RECORDED_VALUE = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK

JOB_LABEL = "job"
INSTANCE_LABEL = "instance"
SCOPE_NAME_LABEL = "otel_scope_name"
SCOPE_VERSION_LABEL = "otel_scope_version"
TARGET_INFO_FAMILY = "target"  # exposed as target_info
OVERFLOW_VALUE = "other"
_IDENTIFYING = frozenset({semconv.SERVICE_NAME, semconv.SERVICE_NAMESPACE, semconv.SERVICE_INSTANCE_ID})

GAUGE = "gauge"
COUNTER = "counter"
HISTOGRAM = "histogram"
SUMMARY = "summary"
INFO = "info"

LabelKey = tuple[tuple[str, str], ...]
ExemplarData = tuple[float, bytes, bytes, float]


def _help(metric: metrics_pb2.Metric) -> str:
    """The description, or the OTLP name when there is none (Prometheus lints empty help)."""
    return metric.description or f"OTLP metric {metric.name}"


def label_value(value: AnyValue) -> str:
    """A label value as the Collector writes it: scalars as text, others as JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return floatToGoString(value.double_value)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind is None:
        return ""
    return json.dumps(any_value_to_python(value), separators=(",", ":"), default=str)


def attributes_to_labels(attributes: Iterable[KeyValue], labels: dict[str, str]) -> None:
    """Adds sanitized attribute labels; keys that collide after sanitising are joined
    with ';' in key order, as the Collector does."""
    collided: dict[str, list[tuple[str, str]]] = {}
    for kv in attributes:
        name = label_name(kv.key)
        if not name or name.startswith("__"):
            continue
        collided.setdefault(name, []).append((kv.key, label_value(kv.value)))
    for name, pairs in collided.items():
        value = pairs[0][1] if len(pairs) == 1 else ";".join(v for _, v in sorted(pairs))
        if value:
            labels[name] = value


@dataclass(slots=True)
class ExpBuckets:
    """An exponential histogram held at one scale, so deltas at any scale merge."""

    scale: int
    zero_threshold: float = 0.0
    zero_count: int = 0
    positive: dict[int, int] = field(default_factory=dict)
    negative: dict[int, int] = field(default_factory=dict)

    def downscale(self, to_scale: int) -> None:
        shift = self.scale - to_scale
        if shift <= 0:
            return
        for side in ("positive", "negative"):
            merged: dict[int, int] = {}
            for index, count in getattr(self, side).items():
                merged[index >> shift] = merged.get(index >> shift, 0) + count
            setattr(self, side, merged)
        self.scale = to_scale

    def merge(self, other: ExpBuckets) -> None:
        scale = min(self.scale, other.scale)
        self.downscale(scale)
        other.downscale(scale)
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            for index, count in theirs.items():
                mine[index] = mine.get(index, 0) + count
        self.zero_count += other.zero_count
        self.zero_threshold = max(self.zero_threshold, other.zero_threshold)

    def limit(self, max_buckets: int) -> None:
        while len(self.positive) + len(self.negative) > max_buckets and self.scale > -10:
            self.downscale(self.scale - 1)

    def classic(self) -> tuple[list[float], list[int]]:
        """(upper bounds, per-bucket counts) without +Inf, ascending."""
        bounds: list[float] = []
        counts: list[int] = []
        for index in sorted(self.negative, reverse=True):
            bounds.append(-_lower_boundary(index, self.scale))
            counts.append(self.negative[index])
        if self.zero_count or self.negative:
            bounds.append(self.zero_threshold)
            counts.append(self.zero_count)
        for index in sorted(self.positive):
            bounds.append(_lower_boundary(index + 1, self.scale))
            counts.append(self.positive[index])
        return bounds, counts


def _lower_boundary(index: int, scale: int) -> float:
    """base ** index with base = 2 ** 2 ** -scale (the OTLP exponential bucket boundary)."""
    try:
        return math.ldexp(1.0, index) if scale == 0 else 2.0 ** math.ldexp(index, -scale)
    except OverflowError:
        return math.inf


def _exp_buckets(point: metrics_pb2.ExponentialHistogramDataPoint) -> ExpBuckets:
    buckets = ExpBuckets(point.scale, point.zero_threshold, point.zero_count)
    for side, target in ((point.positive, buckets.positive), (point.negative, buckets.negative)):
        offset = side.offset
        for i, count in enumerate(side.bucket_counts):
            if count:
                target[offset + i] = count
    return buckets


@dataclass(slots=True)
class Series:
    labels: dict[str, str]
    updated: float
    time_ns: int = 0
    value: float = 0.0
    bounds: tuple[float, ...] = ()
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; last = +Inf
    total: float = 0.0
    count: int = 0
    has_sum: bool = True
    exp: ExpBuckets | None = None
    quantiles: list[tuple[float, float]] = field(default_factory=list)
    exemplars: dict[int, ExemplarData] = field(default_factory=dict)


@dataclass(slots=True)
class Family:
    name: str
    kind: str
    help: str
    unit: str
    series: dict[LabelKey, Series] = field(default_factory=dict)


class TranslatedMetrics:
    def __init__(
        self,
        *,
        exporter_id: str,
        self_metrics: ExporterSelfMetrics,
        max_series: int,
        expiration: float,
        namespace: str,
        add_suffixes: bool,
        resource_labels: bool,
        exemplars: bool,
        const_labels: dict[str, str],
        max_exp_buckets: int,
        lock: threading.Lock,
    ) -> None:
        self._exporter_id = exporter_id
        self._self_metrics = self_metrics
        self._max_series = max_series
        self._expiration = expiration
        self._namespace = namespace
        self._add_suffixes = add_suffixes
        self._resource_labels = resource_labels
        self._exemplars = exemplars
        self._const_labels = dict(const_labels)
        self._max_exp_buckets = max_exp_buckets
        self._lock = lock
        self._families: dict[str, Family] = {}
        self._dropped: dict[str, int] = {}

    def series_count(self) -> int:
        return sum(len(f.series) for f in self._families.values())

    # --- ingest ------------------------------------------------------------------------

    def consume(self, batch: ExportMetricsServiceRequest) -> None:
        now = time.monotonic()
        with self._lock:
            for resource_metrics in batch.resource_metrics:
                base = self._resource(resource_metrics.resource.attributes, now)
                for scope_metrics in resource_metrics.scope_metrics:
                    scoped = dict(base)
                    if scope_metrics.scope.name:
                        scoped[SCOPE_NAME_LABEL] = scope_metrics.scope.name
                    if scope_metrics.scope.version:
                        scoped[SCOPE_VERSION_LABEL] = scope_metrics.scope.version
                    for metric in scope_metrics.metrics:
                        self._metric(metric, scoped, now)
        dropped, self._dropped = self._dropped, {}
        for reason, n in dropped.items():
            self._self_metrics.dropped_points.labels(self._exporter_id, reason).inc(n)

    def _resource(self, attributes: Iterable[KeyValue], now: float) -> dict[str, str]:
        identity: dict[str, str] = {}
        others: list[KeyValue] = []
        for kv in attributes:
            if kv.key in _IDENTIFYING:
                identity[kv.key] = label_value(kv.value)
            else:
                others.append(kv)
        base: dict[str, str] = {}
        if self._resource_labels:
            attributes_to_labels(attributes, base)
        service = identity.get(semconv.SERVICE_NAME, "")
        namespace = identity.get(semconv.SERVICE_NAMESPACE, "")
        if service:
            base[JOB_LABEL] = f"{namespace}/{service}" if namespace else service
        instance = identity.get(semconv.SERVICE_INSTANCE_ID, "")
        if instance:
            base[INSTANCE_LABEL] = instance
        if others:
            info_labels: dict[str, str] = {}
            attributes_to_labels(others, info_labels)
            for name in (JOB_LABEL, INSTANCE_LABEL):
                if name in base:
                    info_labels[name] = base[name]
            info = self._family(TARGET_INFO_FAMILY, INFO, "Target metadata", "")
            if info is not None:
                self._series(info, info_labels, now, 1)
        return base

    def _drop(self, reason: str, n: int = 1) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + n

    def _family(self, name: str, kind: str, help_text: str, unit: str) -> Family | None:
        family = self._families.get(name)
        if family is None:
            family = Family(name, kind, help_text, unit)
            self._families[name] = family
        elif family.kind != kind:
            return None
        return family

    def _series(self, family: Family, labels: dict[str, str], now: float, items: int) -> Series:
        key = tuple(sorted(labels.items()))
        series = family.series.get(key)
        if series is None:
            if len(family.series) >= self._max_series:
                self._self_metrics.overflow_items.labels(self._exporter_id, family.name).inc(items)
                labels = dict.fromkeys(labels, OVERFLOW_VALUE)
                key = tuple(sorted(labels.items()))
                series = family.series.get(key)
            if series is None:
                series = Series(labels, now)
                family.series[key] = series
        series.updated = now
        return series

    def _family_or_drop(
        self, named: tuple[str, str], kind: str, metric: metrics_pb2.Metric, n_points: int
    ) -> Family | None:
        """The family of ``named`` (name, unit); None when the name is already taken by
        another type, and then the metric's points are counted as dropped."""
        family = self._family(named[0], kind, _help(metric), named[1])
        if family is None:
            self._drop("type_conflict", n_points)
        return family

    def _labels_of_recorded(
        self, family: Family, base: dict[str, str], point: _Point, reserved: str
    ) -> dict[str, str] | None:
        """A point's labels, or None when it has no recorded value (which ends its series)."""
        labels = self._point_labels(base, point.attributes, reserved)
        if point.flags & NO_RECORDED_VALUE:
            family.series.pop(tuple(sorted(labels.items())), None)
            return None
        return labels

    def _series_in_order(
        self, family: Family, labels: dict[str, str], now: float, time_ns: int
    ) -> Series | None:
        """The point's series, stamped with its time; None (dropped) for a point older than the last."""
        series = self._series(family, labels, now, 1)
        if time_ns and time_ns < series.time_ns:
            self._drop("out_of_order")
            return None
        series.time_ns = time_ns
        return series

    def _point_labels(
        self, base: dict[str, str], attributes: Iterable[KeyValue], reserved: str
    ) -> dict[str, str]:
        labels: dict[str, str] = {}
        attributes_to_labels(attributes, labels)
        labels.pop(reserved, None)
        labels.update(base)
        return labels

    def _metric(self, metric: metrics_pb2.Metric, base: dict[str, str], now: float) -> None:
        data = metric.WhichOneof("data")
        if data == "gauge":
            named = self._name(metric, gauge=True)
            self._numbers(named, GAUGE, metric, metric.gauge.data_points, base, now, accumulate=False)
        elif data == "sum":
            s = metric.sum
            delta = s.aggregation_temporality == DELTA
            if s.is_monotonic:
                named = self._name(metric, counter=True)
                self._numbers(named, COUNTER, metric, s.data_points, base, now, accumulate=delta)
            else:
                named = self._name(metric)
                self._numbers(named, GAUGE, metric, s.data_points, base, now, accumulate=delta)
        elif data == "histogram":
            self._histograms(metric, base, now)
        elif data == "exponential_histogram":
            self._exponential_histograms(metric, base, now)
        elif data == "summary":
            self._summaries(metric, base, now)
        else:
            self._drop("no_data")

    def _name(
        self, metric: metrics_pb2.Metric, *, counter: bool = False, gauge: bool = False
    ) -> tuple[str, str]:
        return metric_name(
            metric.name,
            metric.unit,
            counter=counter,
            gauge=gauge,
            namespace=self._namespace,
            add_suffixes=self._add_suffixes,
        )

    def _numbers(
        self,
        named: tuple[str, str],
        kind: str,
        metric: metrics_pb2.Metric,
        points: Sequence[metrics_pb2.NumberDataPoint],
        base: dict[str, str],
        now: float,
        *,
        accumulate: bool,
    ) -> None:
        family = self._family_or_drop(named, kind, metric, len(points))
        if family is None:
            return
        for point in points:
            labels = self._labels_of_recorded(family, base, point, "")
            if labels is None:
                continue
            value = point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)
            if kind == COUNTER and value < 0:
                self._drop("invalid")  # a monotonic sum never goes down
                continue
            series = self._series_in_order(family, labels, now, point.time_unix_nano)
            if series is None:
                continue
            series.value = series.value + value if accumulate else value

    def _histograms(self, metric: metrics_pb2.Metric, base: dict[str, str], now: float) -> None:
        h = metric.histogram
        family = self._family_or_drop(self._name(metric), HISTOGRAM, metric, len(h.data_points))
        if family is None:
            return
        delta = h.aggregation_temporality == DELTA
        for point in h.data_points:
            labels = self._labels_of_recorded(family, base, point, "le")
            if labels is None:
                continue
            bounds = tuple(point.explicit_bounds)
            counts = list(point.bucket_counts)
            if not counts:
                counts = [point.count]
            # A count that disagrees with its buckets would make the exposition invalid
            # (OpenMetrics parsers reject the whole scrape), so such a point is dropped.
            if len(counts) != len(bounds) + 1 or sum(counts) != point.count:
                self._drop("invalid")
                continue
            series = self._series_in_order(family, labels, now, point.time_unix_nano)
            if series is None:
                continue
            if delta and series.bounds == bounds and series.counts:
                series.counts = [a + b for a, b in zip(series.counts, counts, strict=True)]
                series.total += point.sum
                series.count += point.count
            else:
                series.bounds, series.counts = bounds, counts
                series.total, series.count = point.sum, point.count
                series.exemplars = {}
            series.has_sum = point.HasField("sum")
            if self._exemplars:
                for ex in point.exemplars:
                    value = ex.as_double if ex.WhichOneof("value") == "as_double" else float(ex.as_int)
                    series.exemplars[bisect_left(bounds, value)] = (
                        value,
                        ex.trace_id,
                        ex.span_id,
                        ex.time_unix_nano / 1e9,
                    )

    def _exponential_histograms(self, metric: metrics_pb2.Metric, base: dict[str, str], now: float) -> None:
        h = metric.exponential_histogram
        family = self._family_or_drop(self._name(metric), HISTOGRAM, metric, len(h.data_points))
        if family is None:
            return
        delta = h.aggregation_temporality == DELTA
        for point in h.data_points:
            labels = self._labels_of_recorded(family, base, point, "le")
            if labels is None:
                continue
            incoming = _exp_buckets(point)
            if point.count != incoming.zero_count + sum(incoming.positive.values()) + sum(
                incoming.negative.values()
            ):
                self._drop("invalid")
                continue
            series = self._series_in_order(family, labels, now, point.time_unix_nano)
            if series is None:
                continue
            if delta and series.exp is not None:
                series.exp.merge(incoming)
                series.total += point.sum
                series.count += point.count
            else:
                series.exp = incoming
                series.total, series.count = point.sum, point.count
            series.exp.limit(self._max_exp_buckets)
            series.has_sum = point.HasField("sum")

    def _summaries(self, metric: metrics_pb2.Metric, base: dict[str, str], now: float) -> None:
        points = metric.summary.data_points
        family = self._family_or_drop(self._name(metric), SUMMARY, metric, len(points))
        if family is None:
            return
        for point in points:
            labels = self._labels_of_recorded(family, base, point, "quantile")
            if labels is None:
                continue
            series = self._series_in_order(family, labels, now, point.time_unix_nano)
            if series is None:
                continue
            series.total, series.count = point.sum, point.count
            series.quantiles = [(q.quantile, q.value) for q in point.quantile_values]

    # --- render ------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Drop idle series; call with the lock held. Returns how many were dropped."""
        if self._expiration <= 0:
            return 0
        cutoff = now - self._expiration
        dropped = 0
        for name in list(self._families):
            family = self._families[name]
            stale = [k for k, s in family.series.items() if s.updated < cutoff]
            for k in stale:
                del family.series[k]
            dropped += len(stale)
            if not family.series:
                del self._families[name]
        return dropped

    def families(self) -> Iterator[Metric]:
        """Render every family; call with the lock held."""
        const = self._const_labels
        for family in self._families.values():
            if not family.series:
                continue
            if family.kind == INFO:
                metric = Metric(family.name, family.help, INFO)
                for series in family.series.values():
                    metric.add_sample(family.name + "_info", {**series.labels, **const}, 1.0)
                yield metric
                continue
            metric = Metric(family.name, family.help, family.kind, family.unit)
            name = family.name
            for series in family.series.values():
                labels = {**series.labels, **const} if const else series.labels
                if family.kind == GAUGE:
                    metric.add_sample(name, labels, series.value)
                elif family.kind == COUNTER:
                    metric.add_sample(name + "_total", labels, series.value)
                elif family.kind == SUMMARY:
                    for q, v in series.quantiles:
                        metric.add_sample(name, {**labels, "quantile": floatToGoString(q)}, v)
                    metric.add_sample(name + "_sum", labels, series.total)
                    metric.add_sample(name + "_count", labels, series.count)
                else:
                    self._render_histogram(metric, series, labels)
            yield metric

    def _render_histogram(self, metric: Metric, series: Series, labels: dict[str, str]) -> None:
        name = metric.name
        if series.exp is not None:
            bounds, counts = series.exp.classic()
            exemplars: dict[int, ExemplarData] = {}
        else:
            bounds, counts = list(series.bounds), series.counts[:-1]
            exemplars = series.exemplars
        cumulative = 0
        for i, (bound, c) in enumerate(zip(bounds, counts, strict=True)):
            cumulative += c
            metric.add_sample(
                name + "_bucket",
                {**labels, "le": floatToGoString(bound)},
                cumulative,
                None,
                _exemplar(exemplars.get(i)),
            )
        metric.add_sample(
            name + "_bucket",
            {**labels, "le": "+Inf"},
            series.count,
            None,
            _exemplar(exemplars.get(len(bounds))),
        )
        # OpenMetrics wants _count and _sum together, and neither next to negative
        # buckets (the sum is then no counter); the +Inf bucket still carries the count.
        # Both formats get the same series.
        if series.has_sum and not (bounds and bounds[0] < 0):
            metric.add_sample(name + "_count", labels, series.count)
            metric.add_sample(name + "_sum", labels, series.total)


def _exemplar(data: ExemplarData | None) -> Exemplar | None:
    if data is None:
        return None
    value, trace_id, span_id, ts = data
    labels = {}
    if trace_id:
        labels["trace_id"] = trace_id.hex()
    if span_id:
        labels["span_id"] = span_id.hex()
    return Exemplar(labels, value, ts or None)
