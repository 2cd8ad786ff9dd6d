"""GenAI metrics derived from spans (a connector in the traces pipeline).

The hot path aggregates one batch into plain dicts keyed by label-value tuples, then
merges the result into the exporter's state once, under one lock acquisition. Nothing
here touches prometheus-client objects per span; the state is rendered into metric
families only when Prometheus scrapes. The aggregation runs in C on the request's bytes
(``_spanmetrics.c``) when the extension is built; the Python loop over the C scan's rows
is the fallback and the reference the tests compare it with.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final, TypeAlias

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

import semconv
from exporters.prometheus.naming import label_name, metric_name
from exporters.prometheus.selfmetrics import ExporterSelfMetrics
from otel_receiver.attributes import get_str, pick
from otel_receiver.component import RequestContext, merge_batches
from otel_receiver.spanscan import span_rows, to_python

log = logging.getLogger("exporters.prometheus.spanmetrics")

_spanmetrics: ModuleType | None
try:
    from exporters.prometheus import _spanmetrics
except ImportError:  # built without a C compiler
    _spanmetrics = None

# OTel GenAI semantic-convention metric names and units; the Prometheus names follow
# from the translation rules, exactly as the Collector would name them.
GEN_AI_CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"
GEN_AI_CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"

TOKEN_USAGE_NAME, _ = metric_name(GEN_AI_CLIENT_TOKEN_USAGE, "{token}")
DURATION_NAME, DURATION_UNIT = metric_name(GEN_AI_CLIENT_OPERATION_DURATION, "s")
# Our own metrics (DESIGN.md "Prometheus"); family names without the _total the
# exposition appends.
COST_NAME = "gen_ai_client_cost_usd"
ANOMALIES_NAME = "gen_ai_anomalies"
PII_REDACTIONS_NAME = "pii_redactions"

# Explicit bucket boundaries advised by the GenAI semantic conventions.
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"
ERROR_TYPE_OTHER = "_OTHER"  # semconv fallback when an operation failed without error.type
OVERFLOW_VALUE = "other"
TENANT_UNKNOWN = "unknown"

SERVICE_LABEL = label_name(semconv.SERVICE_NAME)
PROVIDER_LABEL = label_name(semconv.GEN_AI_PROVIDER_NAME)
MODEL_LABEL = label_name(semconv.GEN_AI_REQUEST_MODEL)
OPERATION_LABEL = label_name(semconv.GEN_AI_OPERATION_NAME)
TOKEN_TYPE_LABEL = label_name(semconv.GEN_AI_TOKEN_TYPE)
ERROR_TYPE_LABEL = label_name(semconv.ERROR_TYPE)
TENANT_LABEL = "tenant_id"
KIND_LABEL = "kind"
TYPE_LABEL = "type"

BASE_LABELS: tuple[str, ...] = (SERVICE_LABEL, PROVIDER_LABEL, MODEL_LABEL, OPERATION_LABEL, TENANT_LABEL)

# Plain module globals: the hot loop reads them without a semconv attribute lookup.
_TENANT = semconv.AUDIT_TENANT_ID
_OPERATION = semconv.GEN_AI_OPERATION_NAME
_PROVIDER = semconv.GEN_AI_PROVIDER_NAME
_MODEL = semconv.GEN_AI_REQUEST_MODEL
_INPUT_TOKENS = semconv.GEN_AI_USAGE_INPUT_TOKENS
_OUTPUT_TOKENS = semconv.GEN_AI_USAGE_OUTPUT_TOKENS
_ERROR_TYPE = semconv.ERROR_TYPE
_COST = semconv.GEN_AI_USAGE_COST
_ANOMALY_KINDS = semconv.ANOMALY_KINDS
_PII_TYPES = semconv.PII_REDACTED_TYPES
_PII_COUNT = semconv.PII_REDACTED_COUNT
_PII_COUNTS = semconv.PII_REDACTED_COUNTS
# The span attributes read, in the order ``aggregate_spans`` unpacks them (and
# ``_spanmetrics.c`` numbers its slots).
_SPAN_KEYS: tuple[str, ...] = (
    _TENANT,
    _OPERATION,
    _PROVIDER,
    _MODEL,
    _INPUT_TOKENS,
    _OUTPUT_TOKENS,
    _ERROR_TYPE,
    _COST,
    _ANOMALY_KINDS,
    _PII_TYPES,
    _PII_COUNT,
    _PII_COUNTS,
)
_STATUS_ERROR = Status.STATUS_CODE_ERROR
_SPAN_KIND_CLIENT = Span.SPAN_KIND_CLIENT

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FamilySpec:
    name: str
    help: str
    kind: str  # "histogram" or "counter"
    labels: tuple[str, ...]
    unit: str = ""
    bounds: tuple[float, ...] = ()
    # Label positions kept on overflow (bounded ones such as the token type); the rest
    # read "other".
    kept_on_overflow: frozenset[int] = frozenset()

    def overflow_key(self, key: Key) -> Key:
        # An absent label (empty value) stays absent: the overflow series must not invent
        # a tenant or an error the folded series did not have.
        return tuple(
            v if (i in self.kept_on_overflow or not v) else OVERFLOW_VALUE for i, v in enumerate(key)
        )


TOKEN_USAGE = FamilySpec(
    TOKEN_USAGE_NAME,
    "Number of input and output tokens used, from GenAI spans",
    "histogram",
    (*BASE_LABELS, TOKEN_TYPE_LABEL),
    bounds=TOKEN_BUCKETS,
    kept_on_overflow=frozenset({len(BASE_LABELS)}),
)
DURATION = FamilySpec(
    DURATION_NAME,
    "GenAI operation duration, from GenAI spans",
    "histogram",
    (*BASE_LABELS, ERROR_TYPE_LABEL),
    unit=DURATION_UNIT,
    bounds=DURATION_BUCKETS,
)
# Cost is summed in integer nano-USD, the precision of genai_calls.CostUsd (Decimal(18,9)):
# float sums drift (0.1 + 0.2 = 0.30000000000000004), and a total that differs from the
# stored one in the last digits makes users doubt both.
NANO_USD_PER_USD: Final = 1_000_000_000
COST = FamilySpec(COST_NAME, "Cost of GenAI calls in USD (gen_ai.usage.cost)", "counter", BASE_LABELS)
ANOMALIES = FamilySpec(
    ANOMALIES_NAME, "Spans flagged by the anomaly processor, by kind", "counter", (*BASE_LABELS, KIND_LABEL)
)
PII_REDACTIONS = FamilySpec(
    PII_REDACTIONS_NAME,
    "Values redacted by the PII processor, by type (a span's count split evenly over its types)",
    "counter",
    (*BASE_LABELS, TYPE_LABEL),
)
SPAN_FAMILIES: tuple[FamilySpec, ...] = (TOKEN_USAGE, DURATION, COST, ANOMALIES, PII_REDACTIONS)


@dataclass(slots=True)
class HistogramSeries:
    counts: list[int]  # per bucket, not cumulative; the last one is (last bound, +Inf)
    total: float = 0.0
    count: int = 0
    # Per bucket: (value, trace_id, span_id, unix seconds) of the latest exemplar.
    exemplars: list[tuple[float, bytes, bytes, float] | None] = field(default_factory=list)
    updated: float = 0.0


@dataclass(slots=True)
class CounterSeries:
    value: int = 0  # counts, or nano-USD for the cost
    updated: float = 0.0


# A batch's histogram accumulator: [bucket counts, sum, count, and of the last span
# observed (the exemplar): its value, trace id, span id, end ns]; a plain list because
# the per-span loop updates it by index, cheaper than attributes.
_HistAcc: TypeAlias = list[Any]


@dataclass(slots=True)
class BatchAggregate:
    tokens: dict[Key, _HistAcc] = field(default_factory=dict)
    duration: dict[Key, _HistAcc] = field(default_factory=dict)
    cost: dict[Key, int] = field(default_factory=dict)  # nano-USD
    cost_spans: dict[Key, int] = field(default_factory=dict)  # spans summed into ``cost``
    anomalies: dict[Key, int] = field(default_factory=dict)
    pii: dict[Key, int] = field(default_factory=dict)


def _observe(
    accs: dict[Key, _HistAcc],
    key: Key,
    bounds: tuple[float, ...],
    value: float,
    trace_id: bytes,
    span_id: bytes,
    end: int,
) -> None:
    acc = accs.get(key)
    if acc is None:
        acc = [[0] * (len(bounds) + 1), 0.0, 0, value, trace_id, span_id, end]
        accs[key] = acc
    acc[0][bisect_left(bounds, value)] += 1
    acc[1] += value
    acc[2] += 1
    acc[3] = value
    acc[4] = trace_id
    acc[5] = span_id
    acc[6] = end


# What the protobuf accessors would give for an attribute value in its scanned form
# (``otel_receiver.spanscan``): ``.string_value``, ``.int_value or .double_value`` (tokens),
# ``.double_value or .int_value`` (cost). ``type(v) is int`` keeps bools out, as their
# AnyValue has no int_value.


def _text(v: Any) -> str:
    return v if type(v) is str else ""


def _token_count(v: Any) -> float:
    t = type(v)
    if t is float:
        return v
    if t is int:
        return float(v)
    return 0.0


def _cost_nano(v: Any) -> int | None:
    """A cost value in nano-USD (a positive amount below half a nano-USD rounds to 0),
    None when it is no positive finite amount: an infinite or NaN cost is garbage a
    client sent, not a number to add."""
    t = type(v)
    if t is int:
        return v * NANO_USD_PER_USD if v > 0 else None
    if t is float and v > 0:
        nano = v * NANO_USD_PER_USD
        if math.isfinite(nano):
            return round(nano)
    return None


def _tenant_defaults(context: RequestContext, tenant_mode: str) -> tuple[str, bool]:
    """The tenant label of spans without ``audit.tenant.id``, and whether to read it."""
    if tenant_mode == "never":
        return "", False
    return context.tenant or (TENANT_UNKNOWN if tenant_mode == "always" else ""), True


def _accumulator() -> Any:
    assert _spanmetrics is not None
    return _spanmetrics.Accumulator(_SPAN_KEYS, _AGENT_OPERATIONS, TOKEN_BUCKETS, DURATION_BUCKETS)


def _wire_of(
    batch: ExportTraceServiceRequest | Sequence[ExportTraceServiceRequest], context: RequestContext
) -> tuple[bytes, ...]:
    """The batch's serialized pieces (their concatenation serializes their merge)."""
    pieces = context.wire_pieces_for(batch)
    if pieces is None:
        parts = [batch] if isinstance(batch, ExportTraceServiceRequest) else batch
        pieces = tuple(p.SerializeToString() for p in parts)
    return tuple(pieces)


def _count_extras(extras: list[tuple[Key, Any, Any, Any, Any]], counts: BatchAggregate) -> None:
    for base, kinds_v, pii_types_v, pii_count_v, pii_counts_v in extras:
        if kinds_v is not None:
            _count_anomalies(counts.anomalies, base, kinds_v)
        if pii_types_v is not None:
            _count_pii(counts.pii, base, pii_types_v, pii_count_v, pii_counts_v)


def _add_in_c(
    accumulator: Any,
    batch: ExportTraceServiceRequest | Sequence[ExportTraceServiceRequest],
    context: RequestContext,
    tenant_mode: str,
    internal_agent_usage: bool,
    counts: BatchAggregate,
) -> bool:
    """Sums a batch into ``accumulator`` in this thread, its anomaly and redaction counts
    into ``counts``; False (nothing summed) when the C code declines it (see
    _spanmetrics.c)."""
    default_tenant, read_tenant = _tenant_defaults(context, tenant_mode)
    try:
        extras = accumulator.add(_wire_of(batch, context), default_tenant, read_tenant, internal_agent_usage)
    except ValueError:
        return False
    _count_extras(extras, counts)
    return True


def aggregate_spans(
    batch: ExportTraceServiceRequest | Sequence[ExportTraceServiceRequest],
    context: RequestContext,
    tenant_mode: str,
    internal_agent_usage: bool = False,
) -> BatchAggregate:
    """One pass over a batch (a request, or the requests the sending queue coalesced,
    read as their merge): every GenAI metric observation, summed per label tuple.

    Token usage on an INTERNAL agent or tool span (``invoke_agent``, ``create_agent``,
    ``execute_tool``) is a roll-up of its child model calls and is not counted again,
    the rule the genai_cost processor prices by; ``internal_agent_usage`` counts it, for
    frameworks that emit no model spans under their agent spans.
    """
    if _spanmetrics is not None:
        accumulator, agg = _accumulator(), BatchAggregate()
        if _add_in_c(accumulator, batch, context, tenant_mode, internal_agent_usage, agg):
            agg.tokens, agg.duration, agg.cost, agg.cost_spans = accumulator.drain()
            return agg
    return _python_aggregate(batch, context, tenant_mode, internal_agent_usage)


def _python_aggregate(
    batch: ExportTraceServiceRequest | Sequence[ExportTraceServiceRequest],
    context: RequestContext,
    tenant_mode: str,
    internal_agent_usage: bool,
) -> BatchAggregate:
    default_tenant, read_tenant = _tenant_defaults(context, tenant_mode)
    pieces = context.wire_pieces_for(batch)
    wire = b"".join(pieces) if pieces is not None else None
    if wire is not None:
        # Parsed from the wire, not merged from the objects: these may lag behind it
        # (RequestContext.objects_lag).
        merged = ExportTraceServiceRequest.FromString(wire)
    else:
        parts = [batch] if isinstance(batch, ExportTraceServiceRequest) else batch
        merged = merge_batches(parts)
    assert isinstance(merged, ExportTraceServiceRequest)
    return python_aggregate_spans(merged, wire, default_tenant, read_tenant, internal_agent_usage)


_AGENT_OPERATIONS: tuple[str, ...] = tuple(sorted(semconv.AGENT_OPERATIONS))
# Label sets the C accumulator holds before it is drained early (and then forgotten):
# bounds its memory when clients send many distinct models between scrapes.
_DRAIN_AT_LABEL_SETS: Final = 8192
# Scrapes drain it too; this bounds how stale the overflow self-metric (and a scrape of
# another endpoint serving it) and the series' idle times can be.
_DRAIN_EVERY_S: Final = 1.0


def python_aggregate_spans(
    batch: ExportTraceServiceRequest,
    wire: bytes | None,
    default_tenant: str,
    read_tenant: bool,
    internal_agent_usage: bool,
) -> BatchAggregate:
    """``aggregate_spans`` from the C scan's rows (or the objects): the fallback, and the
    reference for ``_spanmetrics.c``."""
    agg = BatchAggregate()
    tokens, duration, cost, anomalies, pii = agg.tokens, agg.duration, agg.cost, agg.anomalies, agg.pii
    cost_spans = agg.cost_spans
    for row in span_rows(batch, _SPAN_KEYS, wire):
        service, kind, status_code, start, end, trace_id, span_id, values = row
        (tenant_v, operation_v, provider_v, model_v, input_v, output_v, error_v, cost_v, kinds_v, pii_types_v,
         pii_count_v, pii_counts_v) = values  # fmt: skip
        tenant = _text(tenant_v) if (tenant_v is not None and read_tenant) else default_tenant
        operation = _text(operation_v)
        provider = _text(provider_v)
        base = (service, provider, _text(model_v), operation, tenant)
        if operation or provider:  # the GenAI test of genai_calls and anomaly
            if internal_agent_usage or operation not in semconv.AGENT_OPERATIONS or kind == _SPAN_KIND_CLIENT:
                if input_v is not None:
                    key = (*base, TOKEN_TYPE_INPUT)
                    _observe(tokens, key, TOKEN_BUCKETS, _token_count(input_v), trace_id, span_id, end)
                if output_v is not None:
                    key = (*base, TOKEN_TYPE_OUTPUT)
                    _observe(tokens, key, TOKEN_BUCKETS, _token_count(output_v), trace_id, span_id, end)
            if error_v is not None:
                error_type = _text(error_v) or ERROR_TYPE_OTHER
            elif status_code == _STATUS_ERROR:
                error_type = ERROR_TYPE_OTHER
            else:
                error_type = ""
            elapsed = end - start
            if elapsed >= 0:
                key = (*base, error_type)
                _observe(duration, key, DURATION_BUCKETS, elapsed / 1e9, trace_id, span_id, end)
            if cost_v is not None:
                nano = _cost_nano(cost_v)
                if nano is not None:
                    cost[base] = cost.get(base, 0) + nano
                    cost_spans[base] = cost_spans.get(base, 0) + 1
        if type(kinds_v) is list:
            _count_anomalies(anomalies, base, kinds_v)
        if pii_types_v is not None:
            _count_pii(pii, base, pii_types_v, pii_count_v, pii_counts_v)
    return agg


def _count_anomalies(anomalies: dict[Key, int], base: Key, kinds: list[Any]) -> None:
    for kind_v in kinds:
        key = (*base, _text(kind_v))
        anomalies[key] = anomalies.get(key, 0) + 1


_LOG_WANTED = frozenset({_TENANT, _OPERATION, _PROVIDER, _MODEL, _PII_TYPES, _PII_COUNT, _PII_COUNTS})


def aggregate_logs(
    batch: ExportLogsServiceRequest, context: RequestContext, tenant_mode: str
) -> BatchAggregate:
    """PII redactions of log records (the pii_redaction processor marks them as it marks
    spans); records carry no tokens, durations or costs."""
    agg = BatchAggregate()
    pii = agg.pii
    default_tenant, read_tenant = _tenant_defaults(context, tenant_mode)
    for resource_logs in batch.resource_logs:
        service = get_str(resource_logs.resource.attributes, semconv.SERVICE_NAME) or ""
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                found = pick(record.attributes, _LOG_WANTED)
                types_value = found.get(_PII_TYPES)
                if types_value is None:
                    continue
                get = found.get
                v = get(_TENANT)
                tenant = v.string_value if (v is not None and read_tenant) else default_tenant
                base = tuple(
                    v.string_value if (v := get(k)) is not None else ""
                    for k in (_PROVIDER, _MODEL, _OPERATION)
                )
                _count_pii(
                    pii,
                    (service, *base, tenant),
                    to_python(types_value),
                    None if (v := get(_PII_COUNT)) is None else to_python(v),
                    None if (v := get(_PII_COUNTS)) is None else to_python(v),
                )
    return agg


def _count_pii(pii: dict[Key, int], base: Key, types_value: Any, count_value: Any, counts_value: Any) -> None:
    """A record's redactions by type (``pii.redacted.counts``); from a writer that left
    only the total, split evenly over its types, so that the totals stay exact. The
    values are in their scanned form (``otel_receiver.spanscan``), None when absent."""
    types = [_text(t) for t in types_value] if type(types_value) is list else []
    if not types:
        return
    if counts_value is not None:
        counts = [c if type(c) is int else 0 for c in counts_value] if type(counts_value) is list else []
        if len(counts) == len(types):
            for pii_type, n in zip(types, counts, strict=True):
                key = (*base, pii_type)
                pii[key] = pii.get(key, 0) + n
            return
    count = max(count_value if type(count_value) is int else 0, len(types))
    share, rest = divmod(count, len(types))
    for i, pii_type in enumerate(types):
        key = (*base, pii_type)
        pii[key] = pii.get(key, 0) + share + (1 if i < rest else 0)


def _drop_stale(family: dict[Key, HistogramSeries] | dict[Key, CounterSeries], cutoff: float) -> int:
    stale = [k for k, s in family.items() if s.updated < cutoff]
    for k in stale:
        del family[k]
    return len(stale)


class SpanMetricsState:
    """Cumulative span-derived series; merged into per batch, rendered per scrape."""

    def __init__(
        self,
        *,
        exporter_id: str,
        self_metrics: ExporterSelfMetrics,
        max_series: int,
        expiration: float,
        exemplars: bool,
        const_labels: dict[str, str],
        lock: threading.Lock,
    ) -> None:
        self._exporter_id = exporter_id
        self._self_metrics = self_metrics
        self._max_series = max_series
        self._expiration = expiration
        self._exemplars = exemplars
        self._const_labels = dict(const_labels)
        self._lock = lock
        self._hist: dict[str, dict[Key, HistogramSeries]] = {TOKEN_USAGE.name: {}, DURATION.name: {}}
        self._counters: dict[str, dict[Key, CounterSeries]] = {
            COST.name: {},
            ANOMALIES.name: {},
            PII_REDACTIONS.name: {},
        }
        # Sums of traces batches not yet merged into the series (see add_spans).
        self._accumulator = _accumulator() if _spanmetrics is not None else None
        # Batches handed to the accumulator's worker, by token, until their results come
        # back: what a declined one needs to be summed in Python.
        self._submitted: dict[int, tuple[tuple[bytes, ...], str, bool, bool]] = {}
        self._next_token = 0
        self._pending = BatchAggregate()
        self._drained_at = self._added_at = time.monotonic()

    def series_count(self) -> int:
        return sum(len(s) for s in self._hist.values()) + sum(len(s) for s in self._counters.values())

    def add_spans(
        self,
        batch: ExportTraceServiceRequest | Sequence[ExportTraceServiceRequest],
        context: RequestContext,
        tenant_mode: str,
        internal_agent_usage: bool = False,
    ) -> None:
        """Counts a traces batch. In C the accumulator's worker thread reads the spans
        without the GIL, and the sums stay in the accumulator until a scrape (or a large
        backlog of label sets) drains them into the series: per request, this thread
        only hands the bytes over and takes back the results of earlier ones."""
        accumulator = self._accumulator
        if accumulator is None:
            self.merge(_python_aggregate(batch, context, tenant_mode, internal_agent_usage))
            return
        default_tenant, read_tenant = _tenant_defaults(context, tenant_mode)
        pieces = _wire_of(batch, context)
        with self._lock:
            now = time.monotonic()
            # Series are stamped when drained (their idle time decides expiry): sums
            # left from before an idle gap take the time they were added.
            if now - self._added_at > _DRAIN_EVERY_S:
                self.drain()
            token = self._next_token
            self._next_token += 1
            self._submitted[token] = (pieces, default_tenant, read_tenant, internal_agent_usage)
            results = accumulator.submit(token, pieces, default_tenant, read_tenant, internal_agent_usage)
            self._take_results(results, now)
            self._added_at = now
            stale = now - self._drained_at > _DRAIN_EVERY_S
            if stale or accumulator.series_count() > _DRAIN_AT_LABEL_SETS:
                self.drain()

    def _take_results(self, results: list[tuple[int, Any]], now: float) -> None:
        """The worker's results: extras counted, declined batches summed in Python (the
        accumulator left them out). Call with the lock held."""
        for token, extras in results:
            pieces, default_tenant, read_tenant, internal_agent_usage = self._submitted.pop(token)
            if extras is not None:
                _count_extras(extras, self._pending)
                continue
            wire = b"".join(pieces)
            try:
                merged = ExportTraceServiceRequest.FromString(wire)
            except DecodeError:
                # The receiver parsed these bytes before accepting them: not expected.
                log.error(
                    "%s: a traces batch for span metrics does not parse: not counted", self._exporter_id
                )
                continue
            agg = python_aggregate_spans(merged, wire, default_tenant, read_tenant, internal_agent_usage)
            self._merge_locked(agg, now)

    def drain(self) -> None:
        """Moves the accumulator's sums into the series, stamped with the time of the
        last batch added; call with the lock held."""
        accumulator = self._accumulator
        if accumulator is None:
            return
        self._take_results(accumulator.finish(), time.monotonic())
        self._drained_at = time.monotonic()
        pending, self._pending = self._pending, BatchAggregate()
        pending.tokens, pending.duration, pending.cost, pending.cost_spans = accumulator.drain()
        self._merge_locked(pending, self._added_at)
        if accumulator.series_count() > _DRAIN_AT_LABEL_SETS:
            accumulator.clear()  # label sets of the past: found again when they recur

    def _limited_key(self, spec: FamilySpec, series: Mapping[Key, object], key: Key, items: int) -> Key:
        if key in series or len(series) < self._max_series:
            return key
        self._self_metrics.overflow_items.labels(self._exporter_id, spec.name).inc(items)
        return spec.overflow_key(key)

    def merge(self, agg: BatchAggregate) -> None:
        with self._lock:
            self._merge_locked(agg, time.monotonic())

    def _merge_locked(self, agg: BatchAggregate, now: float) -> None:
        self._merge_hist(TOKEN_USAGE, agg.tokens, now)
        self._merge_hist(DURATION, agg.duration, now)
        self._merge_counter(COST, agg.cost, now, agg.cost_spans)
        self._merge_counter(ANOMALIES, agg.anomalies, now)
        self._merge_counter(PII_REDACTIONS, agg.pii, now)

    def _merge_hist(self, spec: FamilySpec, accs: dict[Key, _HistAcc], now: float) -> None:
        if not accs:
            return
        family = self._hist[spec.name]
        nbuckets = len(spec.bounds) + 1
        for key, (counts, total, count, value, trace_id, span_id, end) in accs.items():
            key = self._limited_key(spec, family, key, count)
            series = family.get(key)
            if series is None:
                series = HistogramSeries([0] * nbuckets, exemplars=[None] * nbuckets)
                family[key] = series
            series_counts = series.counts
            for i, c in enumerate(counts):
                if c:
                    series_counts[i] += c
            series.total += total
            series.count += count
            series.updated = now
            if self._exemplars:
                series.exemplars[bisect_left(spec.bounds, value)] = (value, trace_id, span_id, end / 1e9)

    def _merge_counter(
        self, spec: FamilySpec, values: dict[Key, int], now: float, items: dict[Key, int] | None = None
    ) -> None:
        """``items``: observations behind each value where the value is not a count (the
        cost's nano-USD), so that overflow counts spans, as for the other families."""
        if not values:
            return
        family = self._counters[spec.name]
        for key, value in values.items():
            key = self._limited_key(spec, family, key, value if items is None else items[key])
            series = family.get(key)
            if series is None:
                series = CounterSeries()
                family[key] = series
            series.value += value
            series.updated = now

    def expire(self, now: float) -> int:
        """Drop idle series; call with the lock held. Returns how many were dropped."""
        if self._expiration <= 0:
            return 0
        self.drain()  # a series counted since the last scrape is not idle
        cutoff = now - self._expiration
        dropped = 0
        for hist_family in self._hist.values():
            dropped += _drop_stale(hist_family, cutoff)
        for counter_family in self._counters.values():
            dropped += _drop_stale(counter_family, cutoff)
        return dropped

    def _labels(self, spec: FamilySpec, key: Key) -> dict[str, str]:
        labels = {name: value for name, value in zip(spec.labels, key, strict=True) if value}
        if self._const_labels:
            labels.update(self._const_labels)
        return labels

    def families(self) -> Iterator[Metric]:
        """Render the state as metric families; call with the lock held."""
        self.drain()
        for spec in (TOKEN_USAGE, DURATION):
            metric = Metric(spec.name, spec.help, "histogram", spec.unit)
            les = [floatToGoString(b) for b in spec.bounds] + ["+Inf"]
            for key, series in self._hist[spec.name].items():
                labels = self._labels(spec, key)
                cumulative = 0
                for le, c, ex in zip(les, series.counts, series.exemplars, strict=True):
                    cumulative += c
                    exemplar = None
                    if ex is not None:
                        exemplar = Exemplar(
                            {"trace_id": ex[1].hex(), "span_id": ex[2].hex()}, ex[0], ex[3] or None
                        )
                    metric.add_sample(spec.name + "_bucket", {**labels, "le": le}, cumulative, None, exemplar)
                metric.add_sample(spec.name + "_count", labels, series.count)
                metric.add_sample(spec.name + "_sum", labels, series.total)
            yield metric
        for spec in (COST, ANOMALIES, PII_REDACTIONS):
            metric = Metric(spec.name, spec.help, "counter")
            scale = NANO_USD_PER_USD if spec is COST else 1
            for key, cseries in self._counters[spec.name].items():
                metric.add_sample(spec.name + "_total", self._labels(spec, key), cseries.value / scale)
            yield metric
