"""The ``anomaly`` processor: flags spans whose latency, tokens, cost or error share is
anomalous for their series.

Every span updates the detectors of its series (one :class:`Detector` per enabled
kind), in event time: span timestamps, never the wall clock, so replayed data behaves
like live data. A span is flagged (``anomaly.flagged``, ``anomaly.kinds``,
``anomaly.score``) when a detector's score reaches ``threshold``; unflagged spans keep
no ``anomaly.*`` attribute, even one a client sent. Flags are counted in
``otel_receiver_anomaly_flagged_spans_total{kind, <series labels>}``, and each episode (flags of one kind
on one series with less than ``episodes.cooldown`` seconds between them) becomes one
log record in the logs pipelines when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from prometheus_client import CollectorRegistry, Counter, Gauge

from otel_receiver.attributes import (
    remove,
    set_bool,
    set_double,
    set_int,
    set_str,
    set_str_array,
)
from otel_receiver.component import Batch, ComponentSettings, Processor, RequestContext, Signal
from otel_receiver.spanscan import Edit, table
from otel_receiver.telemetry import PerRegistry
from processors.anomaly.config import SPAN_NAME, AnomalyConfig
from processors.anomaly.detector import (
    Detector,
    DetectorParams,
    ErrorShareDetector,
    native_core,
    params_to_mapping,
    score_to_z,
)
from semconv import attributes as a

# Names this processor adds (episode log records); semconv/ is owned by genai_cost.
ANOMALY_KIND: Final = "anomaly.kind"
ANOMALY_EPISODE_START: Final = "anomaly.episode.start"  # int, ns since epoch (event time)
ANOMALY_EPISODE_END: Final = "anomaly.episode.end"
ANOMALY_EPISODE_FLAGGED_SPANS: Final = "anomaly.episode.flagged_spans"
EPISODE_EVENT_NAME: Final = "anomaly.episode"
EPISODE_SCOPE: Final = "otel_receiver.anomaly"

# Not gen_ai_anomalies_total: the prometheus exporter derives that DESIGN.md series from the
# flagged spans themselves; this self-metric counts what this processor instance flagged.
ANOMALIES_METRIC: Final = "otel_receiver_anomaly_flagged_spans"
SERIES_METRIC: Final = "otel_receiver_anomaly_series"
EVICTIONS_METRIC: Final = "otel_receiver_anomaly_series_evicted"  # _total
EPISODES_METRIC: Final = "otel_receiver_anomaly_episodes"  # _total, by outcome
SNAPSHOTS_METRIC: Final = "otel_receiver_anomaly_snapshots"  # _total, by outcome

KINDS: Final = (a.ANOMALY_KIND_LATENCY, a.ANOMALY_KIND_ERROR_RATE, a.ANOMALY_KIND_TOKENS, a.ANOMALY_KIND_COST)
_VALUE_KINDS: Final = (a.ANOMALY_KIND_LATENCY, a.ANOMALY_KIND_TOKENS, a.ANOMALY_KIND_COST)
SNAPSHOT_VERSION: Final = 1

_ERROR = Status.STATUS_CODE_ERROR
_ANOMALY_KEYS = frozenset({a.ANOMALY_FLAGGED, a.ANOMALY_KINDS, a.ANOMALY_SCORE})


def label_name(dimension: str) -> str:
    """Prometheus label for a dimension, by the OTLP->Prometheus rule (non [a-zA-Z0-9_] -> _)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", dimension)


class _Metrics:
    def __init__(self, registry: CollectorRegistry, series_labels: tuple[str, ...]) -> None:
        self.series_labels = series_labels
        self.anomalies = Counter(
            ANOMALIES_METRIC,
            "Spans flagged as anomalous, by detector kind and series",
            ["kind", *series_labels],
            registry=registry,
        )
        self.series = Gauge(
            SERIES_METRIC, "Series whose baselines are held", ["component"], registry=registry
        )
        self.evictions = Counter(
            EVICTIONS_METRIC,
            "Series dropped (least recently used) because max_series was reached",
            ["component"],
            registry=registry,
        )
        self.episodes = Counter(
            EPISODES_METRIC,
            "Anomaly episode log records, by whether the logs pipelines took them",
            ["component", "outcome"],
            registry=registry,
        )
        self.snapshots = Counter(
            SNAPSHOTS_METRIC,
            "Baseline snapshots written or restored",
            ["component", "outcome"],
            registry=registry,
        )


_METRICS: PerRegistry[_Metrics] = PerRegistry()


def _metrics_for(registry: CollectorRegistry, series_labels: tuple[str, ...]) -> _Metrics:
    metrics = _METRICS.get(registry, lambda r: _Metrics(r, series_labels))
    if metrics.series_labels != series_labels:
        raise ValueError(
            f"{ANOMALIES_METRIC}_total is already labelled {list(metrics.series_labels)} by another "
            f"anomaly processor; give every instance the same dimensions"
        )
    return metrics


# Values as otel_receiver.spanscan reads them: str, bool, int, float, bytes, list, dict,
# () for an empty AnyValue, None when absent.


def _number(value: Any) -> float | None:
    t = type(value)
    if t is int:
        return float(value)
    if t is float:
        return value
    return None


def _text(value: Any) -> str:
    """A dimension's label value: scalars as text, anything else (absent, arrays, maps) ""."""
    t = type(value)
    if t is str:
        return value
    if t is bool or t is int or t is float or t is bytes:
        return str(value)
    return ""


def _spans(batch: ExportTraceServiceRequest, cache: dict[tuple[int, int], Any], ri: int, si: int) -> Any:
    """The span list of scope ``si`` of resource ``ri``, one protobuf wrapper per scope."""
    spans = cache.get((ri, si))
    if spans is None:
        spans = cache[(ri, si)] = batch.resource_spans[ri].scope_spans[si].spans
    return spans


SeriesKey = tuple[Any, ...]  # (is GenAI, *dimension values)
EpisodeKey = tuple[SeriesKey, str]  # (series, kind)
Tally = dict[tuple[str, tuple[str, ...]], int]  # (kind, series labels) -> flagged spans


class _Episode:
    __slots__ = ("end_ns", "flagged", "peak", "start_ns")

    def __init__(self, start_ns: int, score: float) -> None:
        self.start_ns = start_ns
        self.end_ns = start_ns
        self.peak = score
        self.flagged = 1


Closed = list[tuple[EpisodeKey, _Episode]]


class _Series:
    """Baselines of one series: a detector per enabled kind and the error-share state."""

    __slots__ = ("cost", "error_rate", "genai", "key", "labels", "latency", "tokens")

    def __init__(self, key: tuple[str, ...], genai: bool, labels: tuple[str, ...]) -> None:
        self.key = key
        self.genai = genai
        self.labels = labels
        self.latency: Detector | None = None
        self.tokens: Detector | None = None
        self.cost: Detector | None = None
        self.error_rate: ErrorShareDetector | None = None


class PythonSeriesTable:
    """The series, least recently used first: the fallback of the C ``SeriesTable``
    (``_series.c``), with the same methods but ``flag``."""

    def __init__(self) -> None:
        self._map: OrderedDict[SeriesKey, _Series] = OrderedDict()

    def touch(self, key: SeriesKey) -> _Series | None:
        series = self._map.get(key)
        if series is not None:
            self._map.move_to_end(key)
        return series

    def insert(self, key: SeriesKey, series: _Series) -> None:
        if key in self._map:
            raise KeyError("the series is already in the table")
        self._map[key] = series

    def pop_oldest(self) -> tuple[SeriesKey, _Series]:
        return self._map.popitem(last=False)

    def keys(self) -> list[SeriesKey]:
        return list(self._map)

    def values(self) -> list[_Series]:
        return list(self._map.values())

    def __len__(self) -> int:
        return len(self._map)


# (ri, si, i, series or None, kinds or None, score, end ns); ri -1: series (key) evicted
Event = tuple[int, int, int, Any, list[str] | None, float, int]


class AnomalyProcessor(Processor):
    signals = frozenset({Signal.TRACES})
    keeps_wire = True  # drops the wire when it flags or unflags a span
    # Reads spans from the wire; syncs lagging objects before it changes a span.
    accepts_lagging_objects = True

    def __init__(self, config: AnomalyConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.cfg = config
        self.params: DetectorParams = config.detector.params()
        self.threshold = config.threshold
        self._threshold_z = score_to_z(config.threshold, self.params.score_k)
        self._score_k = self.params.score_k
        sig = config.signals
        self._latency_on, self._tokens_on = sig.latency, sig.tokens
        self._cost_on, self._errors_on = sig.cost, sig.error_rate
        self._error_threshold_z = score_to_z(config.error_rate_threshold, self.params.score_k)
        self._dims = config.dimensions
        self._ng_dims = config.non_genai_dimensions
        names: list[str] = []
        for d in (*self._dims, *self._ng_dims):
            if label_name(d) not in names:
                names.append(label_name(d))
        self._label_names = tuple(names)
        self._label_index = {n: i for i, n in enumerate(names)}
        attr_dims = {d for d in (*self._dims, *self._ng_dims) if d != SPAN_NAME}
        self._resource_keys = frozenset(attr_dims)
        self._span_keys = frozenset(
            attr_dims
            | {a.GEN_AI_OPERATION_NAME, a.GEN_AI_PROVIDER_NAME, a.GEN_AI_USAGE_INPUT_TOKENS,
               a.GEN_AI_USAGE_OUTPUT_TOKENS, a.GEN_AI_USAGE_COST}
            | _ANOMALY_KEYS
        )
        # What the C span scan reads (otel_receiver.spanscan.table), and per dimension of
        # a series key where its value is: (slot among span values or -1 for the span
        # name, slot among resource values).
        self._scan_keys = tuple(sorted(self._span_keys))
        self._resource_scan_keys = tuple(sorted(self._resource_keys))
        slot = {k: n for n, k in enumerate(self._scan_keys)}
        resource_slot = {k: n for n, k in enumerate(self._resource_scan_keys)}

        def plan(dims: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
            return tuple((-1, -1) if d == SPAN_NAME else (slot[d], resource_slot[d]) for d in dims)

        self._genai_plan, self._ng_plan = plan(self._dims), plan(self._ng_dims)
        self._value_slots = tuple(
            slot[k]
            for k in (a.GEN_AI_OPERATION_NAME, a.GEN_AI_PROVIDER_NAME, a.GEN_AI_USAGE_INPUT_TOKENS,
                      a.GEN_AI_USAGE_OUTPUT_TOKENS, a.GEN_AI_USAGE_COST, a.ANOMALY_FLAGGED, a.ANOMALY_KINDS,
                      a.ANOMALY_SCORE)
        )  # fmt: skip
        self._series = self._new_table()
        self.native_loop = not isinstance(self._series, PythonSeriesTable)
        self._episodes: dict[EpisodeKey, _Episode] = {}
        self._clock_ns = 0  # latest span time seen: the event-time clock of episodes
        self._lock = threading.Lock()
        self._component = settings.component_id
        self._metrics = _metrics_for(settings.telemetry.registry, self._label_names)
        self._anomalies = self._metrics.anomalies
        self._series_gauge = self._metrics.series.labels(self._component)
        self._evictions = self._metrics.evictions.labels(self._component)
        self.state_path: Path | None = None
        if config.state_path:
            path = Path(config.state_path)
            self.state_path = path if path.is_absolute() else Path(settings.config_dir) / path
        self._snapshot_task: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.state_path is None:
            return
        self.restore_snapshot()
        self._snapshot_task = asyncio.get_running_loop().create_task(
            self._snapshot_loop(), name=f"{self._component}-snapshots"
        )

    async def shutdown(self) -> None:
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshot_task
            self._snapshot_task = None
        with self._lock:
            closed = list(self._episodes.items())
            self._episodes.clear()
        self._emit_episodes(closed)
        if self.state_path is not None:
            await asyncio.to_thread(self.save_snapshot)

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.snapshot_interval)
            try:
                await asyncio.to_thread(self.save_snapshot)
            except OSError as e:
                self.settings.logger.error("anomaly baseline snapshot failed: %s", e)

    # --- hot path -----------------------------------------------------------------------

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        with self._lock:
            tally, evicted, closed = self._process(batch, context)
            n_series = len(self._series)
        for (kind, labels), count in tally.items():
            self._anomalies.labels(kind, *labels).inc(count)
        if evicted:
            self._evictions.inc(evicted)
        self._series_gauge.set(n_series)
        if closed:
            self._emit_episodes(closed)
        return batch

    def _process(
        self, batch: ExportTraceServiceRequest, context: RequestContext
    ) -> tuple[Tally, int, Closed]:
        # This serialization stays the batch's, patched with the spans flagged or
        # unflagged, and serves the components after this one.
        wire = context.wire_for(batch) or batch.SerializeToString()
        context.keep_wire(batch, wire)
        if self.native_loop:
            flagged = self._series.flag(wire, self._clock_ns)
            if flagged is not None:
                events, self._clock_ns = flagged
                tally, evicted = self._apply_events(batch, context, events)
                return tally, evicted, self._close_quiet_episodes()
        context.sync_objects()
        return self._python_process(batch, context, wire)

    def _apply_events(
        self, batch: ExportTraceServiceRequest, context: RequestContext, events: list[Event]
    ) -> tuple[Tally, int]:
        """The C loop's flags, unflags and evictions, in span order."""
        tally: Tally = {}
        evicted = 0
        spans_of: dict[tuple[int, int], Any] = {}
        edits: list[Edit] = []
        if any(event[0] >= 0 for event in events):
            context.sync_objects()  # spans are changed through their objects
        for ri, si, i, series, kinds, score, end_ns in events:
            if ri < 0:
                evicted += 1
                self._forget_episodes(series)
                continue
            span = _spans(batch, spans_of, ri, si)[i]
            if kinds is None:
                remove(span.attributes, _ANOMALY_KEYS)
            else:
                self._flag(span, series, kinds, score, end_ns, tally)
            edits.append((ri, si, i, span.SerializeToString(), False))
        context.splice_wire(batch, edits)
        return tally, evicted

    def _flag(
        self, span: Any, series: _Series, kinds: list[str], score: float, end_ns: int, tally: Tally
    ) -> None:
        """Flags ``span``, counts it per kind and opens or extends the kinds' episodes."""
        attrs = span.attributes
        set_bool(attrs, a.ANOMALY_FLAGGED, True)
        set_str_array(attrs, a.ANOMALY_KINDS, kinds)  # replaces a client's value
        set_double(attrs, a.ANOMALY_SCORE, score)
        for kind in kinds:
            tk = (kind, series.labels)
            tally[tk] = tally.get(tk, 0) + 1
            self._open_or_extend(series.key, kind, end_ns, score)

    def _python_process(
        self, batch: ExportTraceServiceRequest, context: RequestContext, wire: bytes
    ) -> tuple[Tally, int, Closed]:
        """The reference of the C loop (``SeriesTable.flag``), and its fallback."""
        threshold_z = self._threshold_z
        series_map = self._series
        latency_on, tokens_on, cost_on, errors_on = (
            self._latency_on, self._tokens_on, self._cost_on, self._errors_on
        )
        error_threshold_z = self._error_threshold_z
        op_i, provider_i, in_i, out_i, cost_i, flag_i, kinds_i, score_i = self._value_slots
        genai_plan, ng_plan = self._genai_plan, self._ng_plan
        tally: Tally = {}
        evicted = 0
        clock = self._clock_ns
        spans_of: dict[tuple[int, int], Any] = {}
        edits: list[Edit] = []
        rows = table(batch, self._scan_keys, self._resource_scan_keys, wire)
        for ri, si, i, resource, name, _, code, start_ns, end_ns, values in rows:
            genai = values[op_i] is not None or values[provider_i] is not None
            plan = genai_plan if genai else ng_plan
            if not plan:
                continue
            parts: list[Any] = [genai]
            for span_slot, resource_slot in plan:
                if span_slot < 0:
                    parts.append(name)
                    continue
                v = values[span_slot]
                if v is None:
                    v = resource[resource_slot]
                parts.append(v if type(v) is str else _text(v))
            key = tuple(parts)
            series = series_map.touch(key)
            if series is None:
                series = self._make_series(key)
                series_map.insert(key, series)
                while len(series_map) > self.cfg.max_series:
                    evicted += 1
                    self._forget_episodes(series_map.pop_oldest()[0])
            end_ns = end_ns or start_ns
            if end_ns > clock:
                clock = end_ns
            t = end_ns * 1e-9
            kinds: list[str] = []
            peak = 0.0
            if latency_on and start_ns and end_ns >= start_ns:
                det = series.latency
                if det is None:
                    det = series.latency = Detector(self.params)
                det.update(t, (end_ns - start_ns) * 1e-9)
                z = det.last_z
                if z >= threshold_z:
                    kinds.append(a.ANOMALY_KIND_LATENCY)
                    peak = z
            if errors_on:
                err_det = series.error_rate
                if err_det is None:
                    err_det = series.error_rate = self._error_detector()
                failed = code == _ERROR
                # Only the failing calls of a burst are the anomalous spans: only
                # theirs is the surprise computed.
                err_det.update(t, 1.0 if failed else 0.0, failed)
                z = err_det.last_z
                if failed and z >= error_threshold_z:
                    kinds.append(a.ANOMALY_KIND_ERROR_RATE)
                    peak = max(peak, z)
            if genai:
                if tokens_on:
                    tin = _number(values[in_i])
                    tout = _number(values[out_i])
                    if tin is not None or tout is not None:
                        det = series.tokens
                        if det is None:
                            det = series.tokens = Detector(self.params)
                        det.update(t, (tin or 0.0) + (tout or 0.0))
                        z = det.last_z
                        if z >= threshold_z:
                            kinds.append(a.ANOMALY_KIND_TOKENS)
                            peak = max(peak, z)
                if cost_on:
                    cost = _number(values[cost_i])
                    if cost is not None:
                        det = series.cost
                        if det is None:
                            det = series.cost = Detector(self.params)
                        det.update(t, cost)
                        z = det.last_z
                        if z >= threshold_z:
                            kinds.append(a.ANOMALY_KIND_COST)
                            peak = max(peak, z)
            if kinds:
                span = _spans(batch, spans_of, ri, si)[i]
                self._flag(span, series, kinds, peak / (peak + self._score_k), end_ns, tally)
                edits.append((ri, si, i, span.SerializeToString(), False))
            elif values[flag_i] is not None or values[kinds_i] is not None or values[score_i] is not None:
                span = _spans(batch, spans_of, ri, si)[i]
                remove(span.attributes, _ANOMALY_KEYS)
                edits.append((ri, si, i, span.SerializeToString(), False))
        context.splice_wire(batch, edits)
        self._clock_ns = clock
        return tally, evicted, self._close_quiet_episodes()

    def _error_detector(self) -> ErrorShareDetector:
        cfg = self.cfg
        return ErrorShareDetector(
            window_s=cfg.error_rate_window,
            baseline_s=cfg.error_rate_baseline,
            min_errors=cfg.error_rate_min_errors,
            warmup=self.params.warmup,
            score_k=self.params.score_k,
        )

    def _new_table(self) -> Any:
        """The C table when the extension is built and takes this configuration, else the
        Python one (the C table refuses more than 64 dimensions or 128 keys to read)."""
        native = native_core()
        if native is None:
            return PythonSeriesTable()
        sig = self.cfg.signals
        try:
            return native.SeriesTable(
                max_series=self.cfg.max_series,
                new_series=self._make_series,
                new_detector=self._new_detector,
                kind_names=KINDS,
                keys=self._scan_keys,
                resource_keys=self._resource_scan_keys,
                genai_plan=self._genai_plan,
                non_genai_plan=self._ng_plan,
                value_slots=self._value_slots,
                kinds_on=(sig.latency, sig.error_rate, sig.tokens, sig.cost),
                threshold_z=self._threshold_z,
                error_threshold_z=self._error_threshold_z,
                score_k=self._score_k,
            )
        except ValueError:
            return PythonSeriesTable()

    def _make_series(self, key: SeriesKey) -> _Series:
        genai = bool(key[0])
        labels = [""] * len(self._label_names)
        for d, value in zip(self._dims if genai else self._ng_dims, key[1:], strict=True):
            labels[self._label_index[label_name(d)]] = value
        return _Series(key, genai, tuple(labels))

    def _new_detector(self, kind: int) -> Detector | ErrorShareDetector:
        """A detector for ``KINDS[kind]``."""
        return self._error_detector() if KINDS[kind] == a.ANOMALY_KIND_ERROR_RATE else Detector(self.params)

    def _forget_episodes(self, key: SeriesKey) -> None:
        for kind in KINDS:
            self._episodes.pop((key, kind), None)

    # --- episodes -----------------------------------------------------------------------

    def _open_or_extend(self, key: SeriesKey, kind: str, t_ns: int, score: float) -> None:
        episode = self._episodes.get((key, kind))
        if episode is None:
            self._episodes[(key, kind)] = _Episode(t_ns, score)
            return
        episode.end_ns = max(episode.end_ns, t_ns)
        episode.peak = max(episode.peak, score)
        episode.flagged += 1

    def _close_quiet_episodes(self) -> Closed:
        if not self._episodes:
            return []
        cutoff = self._clock_ns - self.cfg.episodes.cooldown * 1e9
        closed = [(k, e) for k, e in self._episodes.items() if e.end_ns < cutoff]
        for k, _ in closed:
            del self._episodes[k]
        return closed

    def _emit_episodes(self, closed: Closed) -> None:
        host = self.settings.host
        if not closed or not self.cfg.episodes.enabled or host is None:
            return
        request = self.episode_records(closed)
        accepted = host.submit(Signal.LOGS, request, RequestContext())
        outcome = "submitted" if accepted else "refused"
        self._metrics.episodes.labels(self._component, outcome).inc(len(closed))

    def episode_records(
        self, closed: Closed
    ) -> ExportLogsServiceRequest:
        """One log record per episode, grouped by the series' service (the resource)."""
        request = ExportLogsServiceRequest()
        by_service: dict[str, Any] = {}
        now = time.time_ns()
        for (key, kind), episode in closed:
            genai = bool(key[0])
            key_dims = self._dims if genai else self._ng_dims
            values = dict(zip(key_dims, key[1:], strict=True))
            service = values.get(a.SERVICE_NAME, "")
            scope = by_service.get(service)
            if scope is None:
                rl = request.resource_logs.add()
                if service:
                    set_str(rl.resource.attributes, a.SERVICE_NAME, service)
                scope = by_service[service] = rl.scope_logs.add()
                scope.scope.name = EPISODE_SCOPE
            record = scope.log_records.add()
            record.time_unix_nano = episode.start_ns
            record.observed_time_unix_nano = now
            record.severity_number = SeverityNumber.SEVERITY_NUMBER_WARN
            record.severity_text = "WARN"
            record.event_name = EPISODE_EVENT_NAME
            series_text = ", ".join(f"{d}={v}" for d, v in values.items() if v)
            record.body.string_value = (
                f"{kind} anomaly on {series_text or 'unnamed series'}: {episode.flagged} flagged span(s), "
                f"peak score {episode.peak:.3f}"
            )
            attrs = record.attributes
            set_str(attrs, ANOMALY_KIND, kind)
            set_str_array(attrs, a.ANOMALY_KINDS, [kind])
            set_double(attrs, a.ANOMALY_SCORE, episode.peak)
            set_int(attrs, ANOMALY_EPISODE_START, episode.start_ns)
            set_int(attrs, ANOMALY_EPISODE_END, episode.end_ns)
            set_int(attrs, ANOMALY_EPISODE_FLAGGED_SPANS, episode.flagged)
            for d, v in values.items():
                if v and d != a.SERVICE_NAME:
                    set_str(attrs, d, v)
        return request

    # --- snapshots ----------------------------------------------------------------------

    @property
    def series_count(self) -> int:
        return len(self._series)

    def snapshot(self) -> dict[str, Any]:
        """Everything learned, oldest series first (so restoring keeps the LRU order)."""
        with self._lock:
            series = []
            for s in self._series.values():
                detectors = {
                    kind: det.state()
                    for kind, det in (
                        (a.ANOMALY_KIND_LATENCY, s.latency), (a.ANOMALY_KIND_TOKENS, s.tokens),
                        (a.ANOMALY_KIND_COST, s.cost),
                    )
                    if det is not None
                }
                series.append({
                    "key": list(s.key),
                    "detectors": detectors,
                    "error_rate": s.error_rate.state() if s.error_rate is not None else None,
                })
            return {
                "version": SNAPSHOT_VERSION,
                "params": params_to_mapping(self.params),
                "dimensions": [list(self._dims), list(self._ng_dims)],
                "clock_ns": self._clock_ns,
                "series": series,
            }

    def save_snapshot(self) -> None:
        if self.state_path is None:
            return
        data = json.dumps(self.snapshot(), separators=(",", ":"))
        path = self.state_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError:
            self._metrics.snapshots.labels(self._component, "write_failed").inc()
            raise
        self._metrics.snapshots.labels(self._component, "written").inc()

    def restore_snapshot(self) -> bool:
        """Load baselines from ``state_path``; False (and a warning) when absent or unusable."""
        path = self.state_path
        if path is None or not path.exists():
            return False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"snapshot version {data.get('version')}")
            if data.get("params") != params_to_mapping(self.params):
                raise ValueError("detector parameters changed since the snapshot")
            if data.get("dimensions") != [list(self._dims), list(self._ng_dims)]:
                raise ValueError("series dimensions changed since the snapshot")
            restored: OrderedDict[SeriesKey, _Series] = OrderedDict()
            for item in data["series"][-self.cfg.max_series:]:
                raw_key = item["key"]
                key: SeriesKey = (bool(raw_key[0]), *(str(v) for v in raw_key[1:]))
                series = self._make_series(key)
                restored[key] = series
                for kind, state in item["detectors"].items():
                    if kind not in _VALUE_KINDS:
                        raise ValueError(f"unknown detector kind {kind!r}")
                    setattr(series, kind, Detector.from_state(state, self.params))
                if item.get("error_rate") is not None:
                    series.error_rate = self._error_detector()
                    series.error_rate.restore(item["error_rate"])
            clock = int(data.get("clock_ns", 0))
            table = self._new_table()
            for key, series in restored.items():
                table.insert(key, series)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            self.settings.logger.warning("anomaly baselines not restored from %s: %s", path, e)
            self._metrics.snapshots.labels(self._component, "restore_failed").inc()
            return False
        with self._lock:
            self._series = table
            self._clock_ns = max(self._clock_ns, clock)
            n_series = len(self._series)
        self._series_gauge.set(n_series)
        self._metrics.snapshots.labels(self._component, "restored").inc()
        return True
